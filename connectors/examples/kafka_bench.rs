//! Kafka → Weir benchmark: Nexmark q0 (pass-through), q1 (currency
//! conversion) and a hopping window read from a Kafka topic, next to a raw
//! librdkafka consumer reading the same topic (the ceiling).
//!
//! ```text
//! cargo run --release -p weir-connectors --example kafka_bench -- \
//!     [--brokers HOST:PORT] [--events 2000000] [--partitions 4] \
//!     [--latency-rate 100000] [--latency-seconds 20] \
//!     [--latency-warmup-seconds 2] [--no-latency] \
//!     [--only q0,hop] [--no-raw] [--fetch-wait-ms 5]
//! ```
//!
//! The broker is `--brokers`, else `$WEIR_TANSU_BOOTSTRAP`, else a tansu
//! started here from `~/.cargo/bin/tansu` (or `$TANSU`).
//!
//! Every consumer (the raw one and the jobs' tables) gets
//! `fetch.wait.max.ms` = `--fetch-wait-ms` (5 by default; librdkafka's
//! default is 500): tansu 0.6 holds every fetch for about that long (half
//! of it when it is 250 ms or more), also when data is there, where Kafka
//! answers as soon as `fetch.min.bytes` are available. With librdkafka's
//! default, a message waits up to half a second in the broker.
//!
//! **Throughput.** The bids of `--events` Nexmark events are produced once
//! to a fresh topic (JSON, bid i in partition i % partitions). The raw
//! consumer polls every message (no decoding) on one thread. Each query
//! then runs as a Weir job with parallelism 1 on a one-worker tokio runtime
//! (the source's reader thread decodes beside it), bounded by the produced
//! counts, into a `blackhole` sink. Reported: events/s of wall-clock time,
//! and events per CPU-second of this process (user + system time of all
//! its threads, librdkafka's included; the broker is another process).
//!
//! **Latency.** A job reads a fresh topic while this process produces to it
//! at `--latency-rate` events/s with event times following the wall clock
//! (`weir produce nexmark --rate`). For q0 the latency of a row is its
//! arrival at the sink minus its event time (producer batching, the
//! broker, the fetch, decoding, the job); for the window, the arrival of
//! a window's row minus the moment the event that closed it was created
//! (`window_end` + 4 s watermark delay − 1 ms): the latency beyond the
//! watermark delay. Latencies are in whole milliseconds (0 when the
//! row, or the window's closing event, was made a little ahead of its
//! event time by the paced generator). Besides all rows, the figures are
//! given for the rows whose event (or closing event) was made after the
//! first `--latency-warmup-seconds` (2) of production and before its last
//! second: the producer's and consumer's start-up (metadata, first
//! fetches) is then left out, and so are the windows that no event closes
//! (flushed when the job is cancelled, 2 s after production ends). Unless
//! `--no-raw`, a bare librdkafka consumer reads a live topic the same way
//! first, timing each message by the `dateTime` in its JSON: the latency
//! of the producer, the broker and the fetch without Weir.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::AsArray;
use arrow::datatypes::TimestampMillisecondType;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use weir_connectors::kafka::produce::{produce_nexmark, ProduceNexmark, ProduceReport};
use weir_engine::metrics::NodeRole;
use weir_engine::runtime::{Job, JobConfig};
use weir_engine::sink::{Sink, SinkFactory};
use weir_engine::{Result, WeirError};
use weir_queries::{plan_script, PlanOptions};

const BID_COLUMNS: &str = "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  dateTime TIMESTAMP(3), extra STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND";

/// (name, what, SELECT for throughput, SELECT for latency, latency column is a window end)
const QUERIES: [(&str, &str, &str, &str, bool); 3] = [
    (
        "q0",
        "pass-through",
        "SELECT auction, bidder, price, dateTime, extra FROM bids",
        "SELECT dateTime FROM bids",
        false,
    ),
    (
        "q1",
        "currency conversion",
        "SELECT auction, bidder, 0.908 * price AS price, dateTime, extra FROM bids",
        "SELECT dateTime, 0.908 * price AS price FROM bids",
        false,
    ),
    (
        "hop",
        "HOP 10 s / 2 s count per auction",
        "SELECT auction, window_start, window_end, COUNT(*) AS num FROM TABLE(HOP(TABLE bids, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end",
        "SELECT window_end, auction, COUNT(*) AS num FROM TABLE(HOP(TABLE bids, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end",
        true,
    ),
];

struct Args {
    brokers: Option<String>,
    events: u64,
    partitions: i32,
    latency_rate: u64,
    latency_seconds: u64,
    /// Rows made in the first seconds of production are left out of the
    /// steady-state figures.
    latency_warmup_seconds: u64,
    latency: bool,
    /// Queries to run (all when empty).
    only: Vec<String>,
    raw: bool,
    /// `fetch.wait.max.ms` of every consumer.
    fetch_wait_ms: u64,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut a = Args {
        brokers: None,
        events: 2_000_000,
        partitions: 4,
        latency_rate: 100_000,
        latency_seconds: 20,
        latency_warmup_seconds: 2,
        latency: true,
        only: Vec::new(),
        raw: true,
        fetch_wait_ms: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
        match k.as_str() {
            "--brokers" => a.brokers = Some(v()?),
            "--events" => a.events = num(v()?)?,
            "--partitions" => a.partitions = num(v()?)? as i32,
            "--latency-rate" => a.latency_rate = num(v()?)?,
            "--latency-seconds" => a.latency_seconds = num(v()?)?,
            "--latency-warmup-seconds" => a.latency_warmup_seconds = num(v()?)?,
            "--no-latency" => a.latency = false,
            "--only" => a.only = v()?.split(',').map(str::to_string).collect(),
            "--no-raw" => a.raw = false,
            "--fetch-wait-ms" => a.fetch_wait_ms = num(v()?)?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// User + system CPU time of each thread of this process: thread id →
/// (name, ticks of 10 ms).
fn thread_ticks() -> BTreeMap<u32, (String, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map(|(n, _)| n.to_string())
            .unwrap_or_default();
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        out.insert(tid, (name, ticks(11) + ticks(12)));
    }
    out
}

/// CPU time per thread name between two [`thread_ticks`] readings
/// (threads that ended in between are not counted), largest first.
fn threads_between(
    before: &BTreeMap<u32, (String, u64)>,
    after: &BTreeMap<u32, (String, u64)>,
) -> Vec<(String, Duration)> {
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    for (tid, (name, t)) in after {
        let t0 = before.get(tid).map_or(0, |(_, t0)| *t0);
        *by_name.entry(name.clone()).or_default() += t.saturating_sub(t0);
    }
    let mut v: Vec<(String, Duration)> = by_name
        .into_iter()
        .filter(|(_, t)| *t > 0)
        .map(|(n, t)| (n, Duration::from_millis(t * 10)))
        .collect();
    v.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
    v
}

/// Reads [`thread_ticks`] every 50 ms until dropped, keeping the last
/// reading of every thread (also of threads that end during the run).
struct ThreadSampler {
    before: BTreeMap<u32, (String, u64)>,
    last: Arc<Mutex<BTreeMap<u32, (String, u64)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ThreadSampler {
    fn start() -> Self {
        let before = thread_ticks();
        let last = Arc::new(Mutex::new(before.clone()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (l, st) = (last.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("bench-sampler".into())
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    let now = thread_ticks();
                    l.lock().extend(now);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
            .ok();
        Self {
            before,
            last,
            stop,
            handle,
        }
    }

    /// CPU time per thread name since [`ThreadSampler::start`].
    fn finish(mut self) -> Vec<(String, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let mut last = self.last.lock().clone();
        last.extend(thread_ticks());
        last.retain(|_, (name, _)| name != "bench-sampler");
        threads_between(&self.before, &last)
    }
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which ends with ')'): utime is the
    // 12th, stime the 13th, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn unique(name: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("weir-bench-{name}-{n}")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Starts tansu when no broker was given.
fn start_tansu() -> Result<(String, std::process::Child)> {
    let bin = std::env::var_os("TANSU")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo/bin/tansu"))
        })
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            WeirError::Config(
                "no broker: pass --brokers, set WEIR_TANSU_BOOTSTRAP, or install tansu".into(),
            )
        })?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| WeirError::io("free port", e))?
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = std::process::Command::new(bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| WeirError::io("starting tansu", e))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(WeirError::Internal("tansu did not start".into()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((format!("127.0.0.1:{port}"), child))
}

/// One measured run.
struct Measured {
    events: u64,
    wall: Duration,
    cpu: Duration,
    /// p99 processing time per batch of the slowest operator, if any.
    batch_p99: Option<Duration>,
    /// CPU time per thread name (threads that ended during the run, as
    /// a job's reader threads do, are missing).
    threads: Vec<(String, Duration)>,
}

/// A bare consumer assigned every partition of `topic` from the beginning.
fn raw_assigned(
    brokers: &str,
    topic: &str,
    partitions: i32,
    fetch_wait_ms: u64,
    group: &str,
) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| WeirError::external("raw consumer", e))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| WeirError::external("tpl", e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| WeirError::external("assign", e))?;
    Ok(consumer)
}

/// Polls every message of the topic on this thread.
fn raw_consumer(
    brokers: &str,
    topic: &str,
    partitions: i32,
    total: u64,
    fetch_wait_ms: u64,
) -> Result<Measured> {
    let consumer = raw_assigned(brokers, topic, partitions, fetch_wait_ms, "weir-bench-raw")?;
    let (t, c, th) = (Instant::now(), cpu_time(), ThreadSampler::start());
    let mut n = 0u64;
    let mut bytes = 0usize;
    while n < total {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            n += 1;
            bytes += m.payload().map_or(0, <[u8]>::len);
        }
        if t.elapsed() > Duration::from_secs(600) {
            return Err(WeirError::Internal(format!(
                "raw consumer read {n} of {total} in 600 s"
            )));
        }
    }
    let _ = bytes;
    Ok(Measured {
        events: n,
        wall: t.elapsed(),
        cpu: cpu_time().saturating_sub(c),
        batch_p99: None,
        threads: th.finish(),
    })
}

fn kafka_table(args: &Args, brokers: &str, topic: &str, bounded: &str, startup: &str) -> String {
    let wait = args.fetch_wait_ms;
    format!(
        "CREATE TABLE bids ({BID_COLUMNS}) WITH (
           'connector' = 'kafka', 'topic' = '{topic}',
           'properties.bootstrap.servers' = '{brokers}',
           'properties.fetch.wait.max.ms' = '{wait}',
           'scan.startup.mode' = '{startup}'{bounded},
           'format' = 'json');"
    )
}

fn bounded_by(report: &ProduceReport) -> String {
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
        ", 'scan.bounded.mode' = 'specific-offsets', 'scan.bounded.specific-offsets' = '{}'",
        offsets.join(";")
    )
}

/// Runs one query from the topic into a blackhole.
async fn weir_query(
    args: &Args,
    brokers: &str,
    topic: &str,
    report: &ProduceReport,
    select: &str,
) -> Result<Measured> {
    let sink = Arc::new(CountSink::default());
    let script = format!(
        "{}
         {select};",
        kafka_table(args, brokers, topic, &bounded_by(report), "earliest-offset")
    );
    let options = PlanOptions {
        parallelism: 1,
        select_sink: Some(sink.clone()),
        ..PlanOptions::new()
    };
    let planned = plan_script(&script, &options)?;
    let job = Job::new(planned.graph, JobConfig::default())?;
    let metrics = job.metrics();
    let (t, c, th) = (Instant::now(), cpu_time(), ThreadSampler::start());
    job.run().await?;
    let (wall, cpu) = (t.elapsed(), cpu_time().saturating_sub(c));
    let threads = th.finish();
    let batch_p99 = metrics
        .per_node()
        .iter()
        .filter(|n| n.role == NodeRole::Operator)
        .map(|n| n.latency_ns.value_at_quantile(0.99))
        .max()
        .map(Duration::from_nanos);
    Ok(Measured {
        events: metrics.totals().source_rows,
        wall,
        cpu,
        batch_p99,
        threads,
    })
}

/// Counts rows (the sink of the bare SELECT).
#[derive(Default)]
struct CountSink {
    rows: Arc<Mutex<u64>>,
}

struct CountSubtask(Arc<Mutex<u64>>);

#[async_trait]
impl Sink for CountSubtask {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        *self.0.lock() += batch.num_rows() as u64;
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

impl SinkFactory for CountSink {
    fn create(&self, _s: usize, _p: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(CountSubtask(self.rows.clone())))
    }
    fn describe(&self) -> String {
        "count".into()
    }
}

/// Records `now - column 0 (+ offset)` for every row, in microseconds:
/// in `all`, and in `steady` when `column 0 + offset` (when the row's
/// event, or the event closing its window, was made) is within
/// `[steady_from, steady_until]` (epoch ms).
struct LatencySink {
    all: Arc<Mutex<Histogram<u64>>>,
    steady: Arc<Mutex<Histogram<u64>>>,
    steady_from: Arc<AtomicI64>,
    steady_until: Arc<AtomicI64>,
    offset_ms: i64,
}

impl LatencySink {
    /// Records the rows whose times (column 0) are `times`, arrived `now`.
    fn record(&self, times: impl Iterator<Item = i64>, now: i64) {
        let from = self.steady_from.load(Ordering::Relaxed);
        let until = self.steady_until.load(Ordering::Relaxed);
        let (mut all, mut steady) = (self.all.lock(), self.steady.lock());
        for t in times {
            let made = t + self.offset_ms;
            let us = ((now - made).max(0) as u64) * 1000;
            all.saturating_record(us);
            if made >= from && made <= until {
                steady.saturating_record(us);
            }
        }
    }
}

#[async_trait]
impl Sink for LatencySubtask {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let now = now_ms();
        let col = batch.column(0).as_primitive::<TimestampMillisecondType>();
        self.0.record(col.iter().flatten(), now);
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

struct LatencySubtask(Arc<LatencySink>);

/// Shares one [`LatencySink`] between subtasks.
struct LatencySinks(Arc<LatencySink>);

impl SinkFactory for LatencySinks {
    fn create(&self, _s: usize, _p: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(LatencySubtask(self.0.clone())))
    }
    fn describe(&self) -> String {
        "latency".into()
    }
}

impl Latency {
    /// The run's line of the latency table.
    fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            self.rows,
            fmt_us(self.p50),
            fmt_us(self.p99),
            self.steady_rows,
            fmt_us(self.steady_p50),
            fmt_us(self.steady_p99)
        )
    }
}

/// A running reader of the live topic.
enum Running {
    Job(
        weir_engine::runtime::CancelHandle,
        tokio::task::JoinHandle<Result<()>>,
    ),
    Raw(std::thread::JoinHandle<Result<u64>>),
}

/// Latency of one run: rows and (p50, p99) in µs, over all rows and over
/// the rows after the warm-up.
struct Latency {
    rows: u64,
    p50: u64,
    p99: u64,
    steady_rows: u64,
    steady_p50: u64,
    steady_p99: u64,
}

/// What reads the live topic in a latency run.
enum LiveReader<'a> {
    /// A Weir job running this SELECT (`true`: column 0 is a window end).
    Job(&'a str, bool),
    /// A bare librdkafka consumer on its own thread, timing each message
    /// by the `dateTime` in its JSON (as q0 times its rows): the latency
    /// of the producer, the broker and the fetch alone.
    Raw,
}

/// The event time in a bid's JSON (`"dateTime":"YYYY-MM-DD HH:MM:SS.fff"`),
/// epoch ms.
fn bid_time(payload: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"dateTime\":\"";
    let at = payload.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let text = std::str::from_utf8(payload.get(at..at + 23)?).ok()?;
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.3f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// Reads `topic` from the beginning until `stop`, recording each message's
/// latency into `sink`.
fn raw_live_consumer(
    brokers: &str,
    topic: &str,
    partitions: i32,
    fetch_wait_ms: u64,
    sink: &LatencySink,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<u64> {
    let consumer = raw_assigned(
        brokers,
        topic,
        partitions,
        fetch_wait_ms,
        "weir-bench-raw-live",
    )?;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let now = now_ms();
            if let Some(t) = m.payload().and_then(bid_time) {
                sink.record(std::iter::once(t), now);
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Reads a fresh topic with `reader` while producing to it at `rate`.
async fn latency_run(brokers: &str, args: &Args, reader: LiveReader<'_>) -> Result<Latency> {
    let window = matches!(reader, LiveReader::Job(_, true));
    let topic = unique("live");
    weir_connectors::kafka::produce::ensure_topic(brokers, &topic, Some(args.partitions)).await?;
    let histogram = || {
        Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .map(|h| Arc::new(Mutex::new(h)))
            .map_err(|e| WeirError::Internal(e.to_string()))
    };
    let latency = Arc::new(LatencySink {
        all: histogram()?,
        steady: histogram()?,
        steady_from: Arc::new(AtomicI64::new(i64::MAX)),
        steady_until: Arc::new(AtomicI64::new(i64::MIN)),
        offset_ms: if window { 3_999 } else { 0 },
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = match reader {
        LiveReader::Job(select, _) => {
            let sink = Arc::new(LatencySinks(latency.clone()));
            let script = format!(
                "{}
                 {select};",
                kafka_table(args, brokers, &topic, "", "latest-offset")
            );
            let options = PlanOptions {
                parallelism: 1,
                select_sink: Some(sink),
                ..PlanOptions::new()
            };
            let planned = plan_script(&script, &options)?;
            let job = Job::new(planned.graph, JobConfig::default())?;
            let cancel = job.cancel_handle();
            let handle = tokio::spawn(job.run());
            Running::Job(cancel, handle)
        }
        LiveReader::Raw => {
            let (b, t, l, st) = (
                brokers.to_string(),
                topic.clone(),
                latency.clone(),
                stop.clone(),
            );
            let (parts, wait) = (args.partitions, args.fetch_wait_ms);
            Running::Raw(std::thread::spawn(move || {
                raw_live_consumer(&b, &t, parts, wait, &l, &st)
            }))
        }
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = now_ms();
    latency.steady_from.store(
        start + args.latency_warmup_seconds as i64 * 1000,
        Ordering::Relaxed,
    );
    // Windows still open when production stops are only flushed when the
    // job is cancelled: their rows are left out by ending a second early.
    latency.steady_until.store(
        start + (args.latency_seconds as i64 - 1) * 1000,
        Ordering::Relaxed,
    );
    let mut properties = BTreeMap::new();
    properties.insert("linger.ms".to_string(), "1".to_string());
    let produce = ProduceNexmark {
        brokers: brokers.to_string(),
        topic: topic.clone(),
        events: args.latency_rate * args.latency_seconds,
        partitions: Some(args.partitions),
        properties,
        rate: Some(args.latency_rate),
    };
    // The producer gets its own runtime thread so that it is not starved
    // by the job's single worker.
    let producer = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| WeirError::io("producer runtime", e))?
            .block_on(produce_nexmark(&produce))
    });
    let report = tokio::task::spawn_blocking(move || producer.join())
        .await
        .map_err(|e| WeirError::Internal(e.to_string()))?
        .map_err(|_| WeirError::Internal("producer thread panicked".into()))??;
    tokio::time::sleep(Duration::from_secs(2)).await;
    match running {
        Running::Job(cancel, handle) => {
            cancel.cancel();
            handle
                .await
                .map_err(|e| WeirError::Internal(e.to_string()))??;
        }
        Running::Raw(thread) => {
            stop.store(true, Ordering::Relaxed);
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| WeirError::Internal(e.to_string()))?
                .map_err(|_| WeirError::Internal("raw consumer thread panicked".into()))??;
        }
    }
    let _ = report;
    let (all, steady) = (latency.all.lock(), latency.steady.lock());
    Ok(Latency {
        rows: all.len(),
        p50: all.value_at_quantile(0.5),
        p99: all.value_at_quantile(0.99),
        steady_rows: steady.len(),
        steady_p50: steady.value_at_quantile(0.5),
        steady_p99: steady.value_at_quantile(0.99),
    })
}

fn human(v: f64) -> String {
    weir_engine::progress::human_rate(v)
}

fn fmt_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else if us >= 1000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

fn main() -> Result<()> {
    let args = parse_args().map_err(WeirError::Config)?;
    let mut tansu = None;
    let brokers = match args.brokers.clone().or_else(|| {
        std::env::var("WEIR_TANSU_BOOTSTRAP")
            .ok()
            .filter(|s| !s.is_empty())
    }) {
        Some(b) => b,
        None => {
            let (b, child) = start_tansu()?;
            tansu = Some(child);
            b
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| WeirError::io("tokio runtime", e))?;
    let result = rt.block_on(bench(&brokers, &args));
    if let Some(mut c) = tansu {
        let _ = c.kill();
        let _ = c.wait();
    }
    result
}

async fn bench(brokers: &str, args: &Args) -> Result<()> {
    let topic = unique("bids");
    eprintln!(
        "producing {} Nexmark events to {topic} on {brokers} ({} partitions)…",
        args.events, args.partitions
    );
    let report = produce_nexmark(&ProduceNexmark {
        brokers: brokers.to_string(),
        topic: topic.clone(),
        events: args.events,
        partitions: Some(args.partitions),
        properties: BTreeMap::new(),
        rate: None,
    })
    .await?;
    println!(
        "input: {} bids (JSON, {} partitions), produced in {:.2} s ({}/s)",
        report.messages,
        report.partitions,
        report.elapsed.as_secs_f64(),
        human(report.messages as f64 / report.elapsed.as_secs_f64().max(1e-9))
    );
    println!(
        "consumers: fetch.wait.max.ms = {} (see --fetch-wait-ms)",
        args.fetch_wait_ms
    );
    let (b, t, n, p) = (
        brokers.to_string(),
        topic.clone(),
        report.messages,
        args.partitions,
    );
    let mut rows = Vec::new();
    let wait = args.fetch_wait_ms;
    let raw = |when: &str| {
        let (b, t) = (b.clone(), t.clone());
        let name = format!("raw rdkafka consumer (poll only, no decoding){when}");
        async move {
            let m = tokio::task::spawn_blocking(move || raw_consumer(&b, &t, p, n, wait))
                .await
                .map_err(|e| WeirError::Internal(e.to_string()))??;
            Ok::<_, WeirError>((name, m))
        }
    };
    if args.raw {
        rows.push(raw("").await?);
    }
    for (name, what, select, _, _) in QUERIES {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        eprintln!("running {name}…");
        let m = weir_query(args, brokers, &topic, &report, select).await?;
        if m.events != report.messages {
            return Err(WeirError::Internal(format!(
                "{name} read {} of {} bids",
                m.events, report.messages
            )));
        }
        rows.push((format!("Kafka → {name} ({what})"), m));
    }
    // The same topic read again by the raw consumer: the broker serves
    // later reads of the topic a little slower, so each query is between
    // these two ceilings.
    if args.raw {
        rows.push(raw(", again after the queries").await?);
    }
    println!();
    println!(
        "| run | bids | wall time | events/s | CPU time | events per CPU-second | p99 batch time |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, m) in &rows {
        let secs = m.wall.as_secs_f64().max(1e-9);
        let cpu = m.cpu.as_secs_f64().max(1e-9);
        println!(
            "| {name} | {} | {:.2} s | {} | {:.2} s | {} | {} |",
            m.events,
            secs,
            human(m.events as f64 / secs),
            cpu,
            human(m.events as f64 / cpu),
            m.batch_p99
                .map(|d| fmt_us(d.as_micros() as u64))
                .unwrap_or_else(|| "–".into())
        );
    }
    println!();
    println!("CPU time per thread (the sampler's own thread left out):");
    println!();
    for (name, m) in &rows {
        let per: Vec<String> = m
            .threads
            .iter()
            .map(|(t, d)| format!("{t} {:.2} s", d.as_secs_f64()))
            .collect();
        println!("- {name}: {}", per.join(", "));
    }
    if args.latency {
        println!();
        println!(
            "end-to-end latency, producing {} events/s with wall-clock event times for {} s:",
            args.latency_rate, args.latency_seconds
        );
        println!();
        println!(
            "| query | rows | p50 | p99 | rows made from {} s to {} s | p50 | p99 |",
            args.latency_warmup_seconds,
            args.latency_seconds.saturating_sub(1)
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        if args.raw {
            eprintln!("latency run raw consumer…");
            let l = latency_run(brokers, args, LiveReader::Raw).await?;
            println!("{}", l.row("raw consumer (no Weir)"));
        }
        for (name, what, _, select, window) in QUERIES {
            if name == "q1" || (!args.only.is_empty() && !args.only.iter().any(|o| o == name)) {
                continue;
            }
            eprintln!("latency run {name}…");
            let l = latency_run(brokers, args, LiveReader::Job(select, window)).await?;
            println!("{}", l.row(&format!("{name} ({what})")));
        }
    }
    Ok(())
}
