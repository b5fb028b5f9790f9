//! Writing test and benchmark input to Kafka: the Nexmark bid stream as
//! JSON messages (what `weir produce nexmark` runs), and topic creation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use weir_engine::metrics::OperatorMetrics;
use weir_engine::source::{SourceContext, SourceOutput};
use weir_engine::{Result, WeirError};

use super::options::KafkaOptions;
use super::producer::{create_producer, DeliveryContext, DeliveryState};
use crate::format::encode::JsonEncoder;
use crate::format::JsonOptions;
use crate::nexmark::NexmarkConnector;
use crate::TableDescriptor;

/// What `weir produce nexmark` writes.
#[derive(Debug, Clone)]
pub struct ProduceNexmark {
    /// `host:port[,…]` of the brokers.
    pub brokers: String,
    /// The topic written.
    pub topic: String,
    /// Nexmark events to generate, as `'events.num'` counts them: the
    /// topic gets the bids among them (46 of every 50).
    pub events: u64,
    /// Partitions of the topic when it has to be created (default 1). When
    /// the topic exists with another count, that is an error.
    pub partitions: Option<i32>,
    /// Extra librdkafka producer settings.
    pub properties: BTreeMap<String, String>,
    /// Events per second of wall-clock time (`None`: as fast as possible).
    /// With a rate, event times follow the wall clock: event 0 is "now"
    /// and events are spaced by 1/rate seconds, so a query's watermark
    /// keeps up with real time (a live stream for demos and latency runs).
    pub rate: Option<u64>,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProduceReport {
    /// Messages (bids) written.
    pub messages: u64,
    /// Partitions of the topic (bid `i` went to partition `i % partitions`).
    pub partitions: i32,
    /// Time from the first message to the last delivery.
    pub elapsed: Duration,
}

/// The bid table as JSON messages carry it: Flink's Nexmark columns.
pub fn bid_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new("bidder", DataType::Int64, true),
        Field::new("price", DataType::Int64, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new(
            "dateTime",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("extra", DataType::Utf8, true),
    ]))
}

fn admin_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// The number of partitions of `topic` (`None` when it does not exist).
pub fn partition_count(brokers: &str, topic: &str, timeout: Duration) -> Result<Option<i32>> {
    let consumer: BaseConsumer = admin_config(brokers)
        .create()
        .map_err(|e| WeirError::external("creating a Kafka client", e))?;
    let md = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| {
        WeirError::external(
            format!("reading the metadata of topic '{topic}' from {brokers}"),
            e,
        )
    })?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len() as i32))
}

/// Creates `topic` with `partitions` partitions (replication 1) unless it
/// exists; returns its partition count. An existing topic with another
/// count is an error when `partitions` was asked for explicitly.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: Option<i32>) -> Result<i32> {
    let timeout = Duration::from_secs(10);
    let (b, t) = (brokers.to_string(), topic.to_string());
    let existing = tokio::task::spawn_blocking(move || partition_count(&b, &t, timeout))
        .await
        .map_err(|e| WeirError::Internal(format!("metadata task: {e}")))??;
    if let Some(n) = existing {
        if let Some(p) = partitions.filter(|p| *p != n) {
            return Err(WeirError::Config(format!(
                "topic '{topic}' exists with {n} partitions, not {p}"
            )));
        }
        return Ok(n);
    }
    let want = partitions.unwrap_or(1);
    let admin: AdminClient<DefaultClientContext> = admin_config(brokers)
        .create()
        .map_err(|e| WeirError::external("creating a Kafka admin client", e))?;
    let new = NewTopic::new(topic, want, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(timeout)),
        )
        .await
        .map_err(|e| WeirError::external(format!("creating topic '{topic}'"), e))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(WeirError::Config(format!(
                    "creating topic '{name}': {code}"
                )))
            }
        }
    }
    // Wait until the metadata shows the new topic.
    let start = Instant::now();
    loop {
        let (b, t) = (brokers.to_string(), topic.to_string());
        let n =
            tokio::task::spawn_blocking(move || partition_count(&b, &t, Duration::from_secs(5)))
                .await
                .map_err(|e| WeirError::Internal(format!("metadata task: {e}")))??;
        if let Some(n) = n {
            return Ok(n);
        }
        if start.elapsed() > timeout {
            return Err(WeirError::Config(format!(
                "topic '{topic}' was created but does not show in the metadata after {} s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends encoded bids, bid `i` to partition `i % partitions`.
struct BidSink {
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    state: Arc<DeliveryState>,
    topic: String,
    partitions: i32,
    encoder: JsonEncoder,
    buf: Vec<u8>,
    sent: Arc<AtomicU64>,
}

#[async_trait]
impl SourceOutput for BidSink {
    async fn batch(&mut self, _split: usize, batch: RecordBatch) -> Result<()> {
        self.buf.clear();
        self.encoder.encode(&batch, &mut self.buf)?;
        let buf = std::mem::take(&mut self.buf);
        let mut start = 0;
        let mut n = self.sent.load(Ordering::Relaxed);
        while let Some(p) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + p];
            start += p + 1;
            let partition = (n % self.partitions as u64) as i32;
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic)
                .payload(line)
                .partition(partition);
            let mut wait = Duration::from_micros(100);
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        if let Some((m, _)) = self.state.failure() {
                            return Err(WeirError::Sink(m));
                        }
                        record = r;
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        return Err(WeirError::Sink(format!(
                            "sending to topic '{}': {e}",
                            self.topic
                        )))
                    }
                }
            }
            n += 1;
        }
        self.sent.store(n, Ordering::Relaxed);
        self.buf = buf;
        Ok(())
    }
}

/// Generates the Nexmark bids of `args.events` events (without a rate: the
/// same rows as a `nexmark` table with `'events.num'` = events and default
/// options) and
/// writes them to `args.topic` as JSON, one message per bid, bid `i` to
/// partition `i % partitions`, creating the topic when it is missing.
/// Returns once every message is delivered; a delivery failure is an error.
pub async fn produce_nexmark(args: &ProduceNexmark) -> Result<ProduceReport> {
    let partitions = ensure_topic(&args.brokers, &args.topic, args.partitions).await?;
    let mut options: BTreeMap<String, String> = BTreeMap::new();
    options.insert("connector".into(), "nexmark".into());
    options.insert("nexmark.table".into(), "bid".into());
    options.insert("events.num".into(), args.events.to_string());
    if let Some(rate) = args.rate.filter(|r| *r > 0) {
        options.insert("events.rate".into(), rate.to_string());
        options.insert("events.first-rate".into(), rate.to_string());
        options.insert("events.base-time".into(), "now".into());
    }
    let table = TableDescriptor::new("bid", bid_schema(), options);
    let factory = NexmarkConnector::factory(&table)?;
    let mut source = weir_engine::source::SourceFactory::create(&factory, 0, 1)?;

    let mut kafka: BTreeMap<String, String> = args
        .properties
        .iter()
        .map(|(k, v)| (format!("properties.{k}"), v.clone()))
        .collect();
    kafka.insert("connector".into(), "kafka".into());
    kafka.insert("topic".into(), args.topic.clone());
    kafka.insert("format".into(), "json".into());
    kafka.insert("properties.bootstrap.servers".into(), args.brokers.clone());
    kafka
        .entry("properties.linger.ms".into())
        .or_insert_with(|| "20".into());
    let ktable = TableDescriptor::new("produce", bid_schema(), kafka);
    let kopts = KafkaOptions::parse(&ktable)?;
    let (producer, state) = create_producer(&kopts, "produce", "weir-produce")?;
    let producer = Arc::new(producer);
    let sent = Arc::new(AtomicU64::new(0));
    let output = BidSink {
        producer: producer.clone(),
        state: state.clone(),
        topic: args.topic.clone(),
        partitions,
        encoder: JsonEncoder::new(&bid_schema(), &JsonOptions::default()),
        buf: Vec::new(),
        sent: sent.clone(),
    };
    let start = Instant::now();
    let mut ctx = SourceContext::new(
        0,
        1,
        Box::new(output),
        Arc::new(OperatorMetrics::new("produce", 0)),
        Arc::new(AtomicBool::new(false)),
    );
    source.run(&mut ctx).await?;
    let deadline = Instant::now() + Duration::from_secs(130);
    while producer.in_flight_count() > 0 {
        if let Some((m, n)) = state.failure() {
            return Err(WeirError::Sink(format!(
                "{n} message(s) not delivered: {m}"
            )));
        }
        if Instant::now() > deadline {
            return Err(WeirError::Sink(format!(
                "{} message(s) still undelivered after 130 s",
                producer.in_flight_count()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some((m, n)) = state.failure() {
        return Err(WeirError::Sink(format!(
            "{n} message(s) not delivered: {m}"
        )));
    }
    Ok(ProduceReport {
        messages: sent.load(Ordering::Relaxed),
        partitions,
        elapsed: start.elapsed(),
    })
}
