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

/// Produces `msgs` one at a time, each in its own record batch (tansu 0.6
/// reports the end of a partition as the last batch's base offset + 1, so
/// bounded reads of it need single-record batches).
pub fn produce_one_by_one(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    msgs: &[Msg],
) -> Result<()> {
    for m in msgs {
        produce(bootstrap, topic, partition, std::slice::from_ref(m))?;
    }
    Ok(())
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

/// The hopping-window query of the end-to-end tests: bids per auction in
/// 10-second windows sliding by 2 seconds, with the highest price.
pub const HOP_QUERY: &str =
    "SELECT auction, window_start, window_end, COUNT(*) AS num, MAX(price) AS max_price
FROM TABLE(HOP(TABLE bids, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end";

const BID_COLUMNS: &str = "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  dateTime TIMESTAMP(3), extra STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND";

const OUT_COLUMNS: &str =
    "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), num BIGINT, max_price BIGINT";

/// What the end-to-end run produced.
pub struct EndToEnd {
    /// Output messages of the Kafka job, sorted.
    pub kafka_rows: Vec<String>,
    /// The same query on the in-process generator, encoded the same way, sorted.
    pub reference_rows: Vec<String>,
    /// Bids written to the input topic.
    pub bids: u64,
    /// Output messages whose key is not `{"auction":<the row's auction>}`.
    pub bad_keys: usize,
}

/// How the end-to-end job knows where the input ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEnd {
    /// `'scan.bounded.mode' = 'latest-offset'` (the end of each partition
    /// when the job starts, from the broker's ListOffsets).
    LatestOffset,
    /// `'scan.bounded.mode' = 'specific-offsets'` with the number of
    /// messages produced to each partition.
    ProducedCounts,
}

/// Produces the bids of `events` Nexmark events to `input` (4 partitions),
/// runs [`HOP_QUERY`] from Kafka into `output` with `parallelism`, reads
/// the output back, and runs the same query on the in-process generator.
/// Topics must exist or be creatable (`partitions`: 4 for the input, 2 for
/// the output).
pub async fn hop_end_to_end(
    bootstrap: &str,
    input: &str,
    output: &str,
    events: u64,
    parallelism: usize,
    end: InputEnd,
) -> Result<EndToEnd> {
    use weir_connectors::kafka::produce::{ensure_topic, produce_nexmark, ProduceNexmark};
    use weir_engine::runtime::{Job, JobConfig};
    use weir_queries::collect::CollectSink;
    use weir_queries::{plan_script, PlanOptions};

    let report = produce_nexmark(&ProduceNexmark {
        brokers: bootstrap.to_string(),
        topic: input.to_string(),
        events,
        partitions: Some(4),
        properties: BTreeMap::new(),
        rate: None,
    })
    .await?;
    ensure_topic(bootstrap, output, Some(2)).await?;
    let bounded = match end {
        InputEnd::LatestOffset => "'scan.bounded.mode' = 'latest-offset'".to_string(),
        InputEnd::ProducedCounts => {
            // Bid i went to partition i % partitions.
            let n = report.messages;
            let parts = report.partitions as u64;
            let offsets: Vec<String> = (0..parts)
                .map(|p| {
                    format!(
                        "partition:{p},offset:{}",
                        n / parts + u64::from(p < n % parts)
                    )
                })
                .collect();
            format!(
                "'scan.bounded.mode' = 'specific-offsets', 'scan.bounded.specific-offsets' = '{}'",
                offsets.join(";")
            )
        }
    };

    let script = format!(
        "CREATE TABLE bids ({BID_COLUMNS}) WITH (
           'connector' = 'kafka', 'topic' = '{input}',
           'properties.bootstrap.servers' = '{bootstrap}',
           'scan.startup.mode' = 'earliest-offset', {bounded},
           'format' = 'json');
         CREATE TABLE out ({OUT_COLUMNS}) WITH (
           'connector' = 'kafka', 'topic' = '{output}',
           'properties.bootstrap.servers' = '{bootstrap}',
           'format' = 'json', 'key.format' = 'json', 'key.fields' = 'auction');
         INSERT INTO out {HOP_QUERY};"
    );
    let options = PlanOptions {
        parallelism,
        ..PlanOptions::new()
    };
    let planned = plan_script(&script, &options)?;
    let job = Job::new(planned.graph, JobConfig::default())?;
    tokio::time::timeout(Duration::from_secs(300), job.run())
        .await
        .map_err(|_| WeirError::Internal("the Kafka job did not finish in 300 s".into()))??;

    // The reference: the same query on the in-process generator.
    let sink = CollectSink::new();
    let reference = format!(
        "CREATE TABLE bids ({BID_COLUMNS}) WITH (
           'connector' = 'nexmark', 'nexmark.table' = 'bid', 'events.num' = '{events}');
         {HOP_QUERY};"
    );
    let options = PlanOptions {
        parallelism: 1,
        select_sink: Some(Arc::new(sink.clone())),
        ..PlanOptions::new()
    };
    let planned = plan_script(&reference, &options)?;
    Job::new(planned.graph, JobConfig::default())?.run().await?;
    let out_schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("auction", arrow::datatypes::DataType::Int64, true),
        arrow::datatypes::Field::new(
            "window_start",
            arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            true,
        ),
        arrow::datatypes::Field::new(
            "window_end",
            arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            true,
        ),
        arrow::datatypes::Field::new("num", arrow::datatypes::DataType::Int64, true),
        arrow::datatypes::Field::new("max_price", arrow::datatypes::DataType::Int64, true),
    ]));
    let encoder = weir_connectors::format::encode::JsonEncoder::new(
        &out_schema,
        &weir_connectors::format::JsonOptions::default(),
    );
    let mut buf = Vec::new();
    for b in sink.batches() {
        encoder.encode(&b, &mut buf)?;
    }
    let mut reference_rows: Vec<String> = String::from_utf8_lossy(&buf)
        .lines()
        .map(str::to_string)
        .collect();
    reference_rows.sort();

    let (b, o, n) = (
        bootstrap.to_string(),
        output.to_string(),
        reference_rows.len(),
    );
    let got = tokio::task::spawn_blocking(move || consume(&b, &o, 2, n, Duration::from_secs(60)))
        .await
        .map_err(|e| WeirError::Internal(e.to_string()))??;
    let mut bad_keys = 0;
    for g in &got {
        let v: serde_json::Value =
            serde_json::from_slice(g.value.as_deref().unwrap_or_default())
                .map_err(|e| WeirError::Internal(format!("output is not JSON: {e}")))?;
        let want = format!(r#"{{"auction":{}}}"#, v["auction"]);
        if g.key_text() != want {
            bad_keys += 1;
        }
    }
    let mut kafka_rows: Vec<String> = got.iter().map(Got::text).collect();
    kafka_rows.sort();
    Ok(EndToEnd {
        kafka_rows,
        reference_rows,
        bids: report.messages,
        bad_keys,
    })
}
