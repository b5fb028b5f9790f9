//! Helpers of the Kafka tests: librdkafka's in-process mock cluster,
//! producing and consuming test messages, running source subtasks in the
//! background.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use weir_engine::metrics::OperatorMetrics;
use weir_engine::source::{SourceContext, SourceFactory};
use weir_engine::{Result, WeirError};

use crate::common::{Collect, Emitted};

/// A mock cluster and its bootstrap servers.
pub struct Mock {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    pub bootstrap: String,
}

/// Logs to stderr with `WEIR_LOG` (e.g. `WEIR_LOG=debug`), once per test binary.
pub fn init_log() {
    if let Ok(filter) = std::env::var("WEIR_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// A mock cluster of `brokers` brokers with `topics` (name, partitions).
pub fn mock(brokers: i32, topics: &[(&str, i32)]) -> Result<Mock> {
    init_log();
    let cluster = MockCluster::new(brokers).map_err(|e| WeirError::external("mock cluster", e))?;
    for (t, p) in topics {
        cluster
            .create_topic(t, *p, 1)
            .map_err(|e| WeirError::external("mock topic", e))?;
    }
    let bootstrap = cluster.bootstrap_servers();
    Ok(Mock { cluster, bootstrap })
}

/// A test message.
#[derive(Debug, Clone, Default)]
pub struct Msg {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl Msg {
    /// A message with this value and nothing else.
    pub fn value(v: impl AsRef<[u8]>) -> Self {
        Msg {
            value: Some(v.as_ref().to_vec()),
            ..Msg::default()
        }
    }
}

/// Produces `msgs` to `topic`/`partition` and waits for their delivery.
pub fn produce(bootstrap: &str, topic: &str, partition: i32, msgs: &[Msg]) -> Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "1")
        .create()
        .map_err(|e| WeirError::external("test producer", e))?;
    for m in msgs {
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(partition);
        if let Some(k) = &m.key {
            r = r.key(k.as_slice());
        }
        if let Some(v) = &m.value {
            r = r.payload(v.as_slice());
        }
        if let Some(ts) = m.timestamp {
            r = r.timestamp(ts);
        }
        if !m.headers.is_empty() {
            let mut h = OwnedHeaders::new();
            for (k, v) in &m.headers {
                h = h.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            r = r.headers(h);
        }
        let mut record = r;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(10));
                    record = back;
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(|e| WeirError::external("test producer flush", e))
}

/// Produces JSON lines (one message each) to `topic`/`partition`.
pub fn produce_values(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    values: &[String],
) -> Result<()> {
    let msgs: Vec<Msg> = values.iter().map(Msg::value).collect();
    produce(bootstrap, topic, partition, &msgs)
}

/// A consumed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Got {
    /// The value as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }
    /// The key as text.
    pub fn key_text(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Reads every partition of `topic` from the beginning until `expected`
/// messages arrived or `timeout` passed, then a little longer to catch
/// extra (duplicate) messages.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    timeout: Duration,
) -> Result<Vec<Got>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.auto.commit", "false")
        .set("group.id", "weir-test-reader")
        .create()
        .map_err(|e| WeirError::external("test consumer", e))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| WeirError::external("tpl", e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| WeirError::external("assign", e))?;
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut extra_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || extra_until.is_some_and(|t| now >= t) {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| (x.key.to_string(), x.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Got {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
            });
            if out.len() >= expected && extra_until.is_none() {
                extra_until = Some(Instant::now() + Duration::from_millis(300));
            }
        }
    }
    Ok(out)
}

/// A source subtask running in the background.
pub struct Running {
    pub handle: tokio::task::JoinHandle<Result<()>>,
    pub batches: Emitted,
    pub metrics: Arc<OperatorMetrics>,
    pub cancel: Arc<AtomicBool>,
    pub positions: Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Running {
    /// Waits for the subtask to end and returns its result.
    pub async fn join(&mut self) -> Result<()> {
        (&mut self.handle)
            .await
            .map_err(|e| WeirError::Internal(format!("source task: {e}")))?
    }

    /// Rows emitted so far.
    pub fn rows(&self) -> usize {
        self.batches
            .lock()
            .map(|b| b.iter().map(|(_, b)| b.num_rows()).sum())
            .unwrap_or(0)
    }

    /// Batches emitted so far.
    pub fn batches(&self) -> Vec<(usize, RecordBatch)> {
        self.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

/// Creates subtask `subtask` of `parallelism` (on the blocking pool: it may
/// wait for the brokers) and runs it in the background. The positions are
/// recorded when the run ends.
pub async fn spawn_source(
    factory: Arc<dyn SourceFactory>,
    subtask: usize,
    parallelism: usize,
) -> Running {
    let batches: Emitted = Arc::default();
    let cancel = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(OperatorMetrics::new("kafka", subtask));
    let positions: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
    let (b, c, m, p) = (
        batches.clone(),
        cancel.clone(),
        metrics.clone(),
        positions.clone(),
    );
    let handle = tokio::spawn(async move {
        let f = factory.clone();
        let mut source = tokio::task::spawn_blocking(move || f.create(subtask, parallelism))
            .await
            .map_err(|e| WeirError::Internal(e.to_string()))??;
        let collect = Collect {
            batches: b,
            cancel: None,
        };
        let mut ctx = SourceContext::new(subtask, parallelism, Box::new(collect), m, c);
        let r = source.run(&mut ctx).await;
        if let Ok(mut pos) = p.lock() {
            *pos = source
                .positions()
                .into_iter()
                .map(|s| (s.split, s.position))
                .collect();
        }
        r
    });
    Running {
        handle,
        batches,
        metrics,
        cancel,
        positions,
    }
}

/// Waits until `cond` holds, checking every 20 ms, for at most `timeout`.
pub async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// Options of a Kafka table on `bootstrap`.
pub fn kafka_options<'a>(
    bootstrap: &'a str,
    topic: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut o = vec![
        ("connector", "kafka"),
        ("topic", topic),
        ("properties.bootstrap.servers", bootstrap),
    ];
    o.extend_from_slice(extra);
    o
}

/// A map of options.
pub fn map(options: &[(&str, &str)]) -> BTreeMap<String, String> {
    options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
