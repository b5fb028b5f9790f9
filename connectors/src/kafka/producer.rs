//! Producers of the connector (the sink and the dead-letter copier): an
//! idempotent librdkafka producer whose delivery reports are collected, so
//! that a message librdkafka gave up on (after its own retries, within
//! `delivery.timeout.ms`) becomes a job error instead of vanishing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use weir_engine::{Result, WeirError};

use super::client::{describe_client_error, log_librdkafka, Reporter};
use super::options::KafkaOptions;

/// librdkafka's default `delivery.timeout.ms` is 5 minutes; Weir uses the
/// Java client's (and so Flink's) 2 minutes unless the table sets it.
pub(crate) const DEFAULT_DELIVERY_TIMEOUT_MS: u64 = 120_000;

/// Delivery outcomes of one producer.
#[derive(Debug, Default)]
pub(crate) struct DeliveryState {
    /// The first failure, described.
    failed: Mutex<Option<String>>,
    /// Messages that failed.
    failures: AtomicU64,
    /// Messages delivered.
    delivered: AtomicU64,
}

impl DeliveryState {
    fn fail(&self, message: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut f = self.failed.lock();
        if f.is_none() {
            *f = Some(message);
        }
    }

    /// The first failure and how many messages failed, if any did.
    pub(crate) fn failure(&self) -> Option<(String, u64)> {
        self.failed
            .lock()
            .clone()
            .map(|m| (m, self.failures.load(Ordering::Relaxed)))
    }

    /// Messages delivered so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
}

/// The context of Weir's producers.
pub(crate) struct DeliveryContext {
    pub(crate) state: Arc<DeliveryState>,
    reporter: Reporter,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.state
                .fail(format!("fatal producer error: {error}: {reason}"));
        }
        self.reporter.problem(describe_client_error(&error, reason));
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.state.delivered.fetch_add(1, Ordering::Relaxed);
                self.reporter.clear();
            }
            Err((e, m)) => self.state.fail(format!(
                "delivery to {}/{} failed after librdkafka's retries: {e}",
                m.topic(),
                m.partition()
            )),
        }
    }
}

/// The producer settings of a table: idempotence, `acks=all`, a short
/// linger for batching, the Java client's partitioner and delivery
/// timeout; the table's `'properties.*'` win over these.
pub(crate) fn producer_config(options: &KafkaOptions, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .set(
            "delivery.timeout.ms",
            DEFAULT_DELIVERY_TIMEOUT_MS.to_string(),
        )
        .set("client.id", client_id);
    c.set("bootstrap.servers", &options.bootstrap_servers);
    for (k, v) in &options.properties {
        if is_consumer_only(k) {
            continue;
        }
        c.set(k, v);
    }
    c
}

/// Consumer settings a table may carry that a producer would only warn about.
fn is_consumer_only(key: &str) -> bool {
    matches!(
        key,
        "auto.offset.reset"
            | "enable.auto.commit"
            | "auto.commit.interval.ms"
            | "session.timeout.ms"
            | "heartbeat.interval.ms"
            | "max.poll.interval.ms"
            | "fetch.min.bytes"
            | "fetch.max.bytes"
            | "fetch.wait.max.ms"
            | "fetch.message.max.bytes"
            | "max.partition.fetch.bytes"
            | "queued.min.messages"
            | "queued.max.messages.kbytes"
            | "isolation.level"
            | "check.crcs"
            | "partition.assignment.strategy"
            | "group.instance.id"
            | "group.protocol"
    )
}

/// How long to wait for outstanding deliveries: the delivery timeout
/// (after which librdkafka reports them failed) plus a margin.
pub(crate) fn flush_timeout(options: &KafkaOptions) -> Duration {
    let ms = options
        .properties
        .get("delivery.timeout.ms")
        .or_else(|| options.properties.get("message.timeout.ms"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_DELIVERY_TIMEOUT_MS);
    Duration::from_millis(ms) + Duration::from_secs(10)
}

/// Creates a producer for `options` with delivery tracking.
pub(crate) fn create_producer(
    options: &KafkaOptions,
    table: &str,
    client_id: &str,
) -> Result<(ThreadedProducer<DeliveryContext>, Arc<DeliveryState>)> {
    let state = Arc::new(DeliveryState::default());
    let context = DeliveryContext {
        state: state.clone(),
        reporter: Reporter::new(table, None),
    };
    let producer = producer_config(options, client_id)
        .create_with_context(context)
        .map_err(|e| {
            WeirError::Config(format!(
                "table {table}: cannot create a Kafka producer: {e}"
            ))
        })?;
    Ok((producer, state))
}
