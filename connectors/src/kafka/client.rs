//! librdkafka clients for the connector: contexts that route librdkafka's
//! logs and errors to `tracing` and to the progress line, a retry loop with
//! exponential backoff for the requests Weir makes itself (metadata,
//! offsets), and partition discovery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaErrorCode;
use weir_engine::metrics::OperatorMetrics;
use weir_engine::{Result, WeirError};

use super::options::KafkaOptions;

/// First wait of the retry loop; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait of the retry loop.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest a single metadata or offset request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The same problem is logged again at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Reports connection problems of one client: a `tracing` warning (at most
/// every ten seconds for the same problem) and the subtask's status in the
/// progress line, cleared when data flows again.
#[derive(Debug)]
pub(crate) struct Reporter {
    /// `kafka table <name>` (what the messages start with).
    what: String,
    metrics: Option<Arc<OperatorMetrics>>,
    /// The problem being shown, and when it was last logged.
    current: Mutex<Option<(String, Instant)>>,
}

impl Reporter {
    /// A reporter for `table`, showing its problems in `metrics`' status.
    pub(crate) fn new(table: &str, metrics: Option<Arc<OperatorMetrics>>) -> Self {
        Self {
            what: format!("kafka table {table}"),
            metrics,
            current: Mutex::new(None),
        }
    }

    /// Reports a problem (shown until [`Reporter::clear`]).
    pub(crate) fn problem(&self, message: String) {
        let mut cur = self.current.lock();
        let log = match &*cur {
            Some((m, at)) => *m != message || at.elapsed() >= LOG_EVERY,
            None => true,
        };
        if log {
            tracing::warn!("{}: {message}", self.what);
            *cur = Some((message.clone(), Instant::now()));
        }
        if let Some(m) = &self.metrics {
            m.set_status(Some(format!("kafka: {message}")));
        }
    }

    /// Clears the problem shown, logging the recovery once.
    pub(crate) fn clear(&self) {
        let mut cur = self.current.lock();
        if cur.take().is_some() {
            tracing::info!("{}: broker reachable again, reading resumed", self.what);
            if let Some(m) = &self.metrics {
                m.set_status(None);
            }
        }
    }

    /// True while a problem is shown.
    pub(crate) fn has_problem(&self) -> bool {
        self.current.lock().is_some()
    }
}

/// The context of Weir's consumers: librdkafka's logs go to `tracing` at
/// debug level, its errors (broker down, all brokers down, …) to the
/// [`Reporter`].
#[derive(Debug, Clone)]
pub(crate) struct WeirConsumerContext {
    pub(crate) reporter: Arc<Reporter>,
    /// Set when librdkafka reports a fatal error.
    pub(crate) fatal: Arc<Mutex<Option<String>>>,
}

impl WeirConsumerContext {
    pub(crate) fn new(reporter: Arc<Reporter>) -> Self {
        Self {
            reporter,
            fatal: Arc::new(Mutex::new(None)),
        }
    }
}

/// Routes a librdkafka log line to `tracing` (debug level unless severe:
/// librdkafka logs every failed reconnect, which the [`Reporter`]
/// summarizes).
pub(crate) fn log_librdkafka(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
            tracing::warn!(target: "librdkafka", "{fac}: {message}")
        }
        _ => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
    }
}

impl ClientContext for WeirConsumerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            // Reaching the end of a partition is news, not a problem.
            Some(RDKafkaErrorCode::PartitionEOF) => return,
            Some(RDKafkaErrorCode::Fatal) => {
                *self.fatal.lock() = Some(format!("{error}: {reason}"))
            }
            _ => {}
        }
        self.reporter.problem(describe_client_error(&error, reason));
    }
}

impl ConsumerContext for WeirConsumerContext {}

/// A short description of a client error for the progress line.
pub(crate) fn describe_client_error(error: &KafkaError, reason: &str) -> String {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::AllBrokersDown) => {
            format!("all brokers down ({reason}); reconnecting with backoff")
        }
        Some(RDKafkaErrorCode::BrokerTransportFailure) => {
            format!("broker connection failed ({reason}); reconnecting with backoff")
        }
        Some(RDKafkaErrorCode::Resolve) => {
            format!("cannot resolve broker address ({reason}); retrying")
        }
        _ => format!("{error} ({reason})"),
    }
}

/// Calls `op` until it succeeds, waiting 100 ms, 200 ms, … up to 5 s
/// between attempts and reporting each failure. Gives up with the last
/// error when `deadline` passes, when `stop` is set, or when `permanent`
/// says the error will not go away by retrying.
pub(crate) fn retry<T>(
    what: &str,
    reporter: &Reporter,
    stop: Option<&AtomicBool>,
    deadline: Option<Instant>,
    permanent: impl Fn(&KafkaError) -> bool,
    mut op: impl FnMut() -> KafkaResult<T>,
) -> std::result::Result<T, KafkaError> {
    let mut wait = FIRST_BACKOFF;
    let mut attempt = 1u32;
    loop {
        match op() {
            Ok(v) => return Ok(v),
            Err(e) => {
                let stopped = stop.is_some_and(|s| s.load(Ordering::Relaxed));
                let late = deadline.is_some_and(|d| Instant::now() + wait >= d);
                if permanent(&e) || stopped || late {
                    return Err(e);
                }
                reporter.problem(format!(
                    "{what} failed (attempt {attempt}): {e}; retrying in {} ms",
                    wait.as_millis()
                ));
                sleep_unless_stopped(wait, stop);
                wait = (wait * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
        }
    }
}

/// Sleeps `d`, waking early when `stop` is set.
pub(crate) fn sleep_unless_stopped(d: Duration, stop: Option<&AtomicBool>) {
    let end = Instant::now() + d;
    loop {
        let now = Instant::now();
        if now >= end || stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// The error code of a Kafka error, if it has one.
pub(crate) fn code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// A `(topic, partition)` a source reads: one split.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A consumer with the table's settings, for metadata requests.
pub(crate) fn metadata_consumer(
    options: &KafkaOptions,
    table: &str,
    reporter: Arc<Reporter>,
) -> Result<BaseConsumer<WeirConsumerContext>> {
    let mut config = options.client_config();
    config.set("client.id", format!("weir-{table}-metadata"));
    config
        .create_with_context(WeirConsumerContext::new(reporter))
        .map_err(|e| WeirError::Config(format!("table {table}: cannot create a Kafka client: {e}")))
}

/// The partitions of `topics` (sorted by topic as listed, then partition),
/// retried with backoff until `timeout` while the brokers cannot be reached.
pub(crate) fn discover_partitions(
    options: &KafkaOptions,
    table: &str,
    timeout: Duration,
) -> Result<Vec<TopicPartition>> {
    let reporter = Arc::new(Reporter::new(table, None));
    let consumer = metadata_consumer(options, table, reporter.clone())?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    for topic in &options.topics {
        let what = format!("reading the partitions of topic '{topic}'");
        let result = retry(
            &what,
            &reporter,
            None,
            Some(deadline),
            |_| false,
            || {
                let left = deadline.saturating_duration_since(Instant::now());
                let md = consumer.fetch_metadata(Some(topic), left.min(REQUEST_TIMEOUT))?;
                let t = md.topics().iter().find(|t| t.name() == topic).ok_or(
                    KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition),
                )?;
                if let Some(err) = t.error() {
                    return Err(KafkaError::MetadataFetch(err.into()));
                }
                if t.partitions().is_empty() {
                    return Err(KafkaError::MetadataFetch(
                        RDKafkaErrorCode::UnknownTopicOrPartition,
                    ));
                }
                let mut ps: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                ps.sort_unstable();
                Ok(ps)
            },
        );
        match result {
            Ok(ps) => out.extend(ps.into_iter().map(|partition| TopicPartition {
                topic: topic.clone(),
                partition,
            })),
            Err(e) => {
                let hint = if code(&e) == Some(RDKafkaErrorCode::UnknownTopicOrPartition) {
                    format!("topic '{topic}' does not exist")
                } else {
                    format!("{e}")
                };
                return Err(WeirError::Source(format!(
                    "kafka table {table}: cannot read the partitions of topic '{topic}' from {} within {} s ('scan.startup.timeout'): {hint}",
                    options.bootstrap_servers,
                    timeout.as_secs_f64()
                )));
            }
        }
    }
    reporter.clear();
    Ok(out)
}

/// Whether `stop` is set (a convenience for optional flags).
pub(crate) fn is_set(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
}
