//! Kinesis emulators for the integration tests, and helpers around them.
//!
//! An emulator is found, in order: from `WEIR_KINESALITE_ENDPOINT` /
//! `WEIR_KINESIS_LOCAL_ENDPOINT` (e.g. started by `.ci/kinesis.sh start`),
//! else started here from `.ci/kinesis/node_modules` (`npm ci` there, or
//! `.ci/kinesis.sh install`) on a free loopback port, once per test binary.
//! A started emulator runs under a small shell watchdog that stops it when
//! the test process exits (its stdin closes). When neither is available the
//! tests print why and pass without running.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use weir_connectors::kinesis::options::{AwsOptions, Credentials};
use weir_engine::metrics::OperatorMetrics;
use weir_engine::source::{SourceContext, SourceFactory, SourceOutput, SplitPosition};
use weir_engine::{Result, WeirError};

/// Which emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// kinesalite: most tests.
    Kinesalite,
    /// kinesis-local (kinesis-mock): UpdateShardCount, ChildShards.
    KinesisLocal,
}

/// A running emulator.
pub struct Emulator {
    pub endpoint: String,
    /// Keeps the watchdog's stdin open while the tests run.
    _child: Option<Mutex<Child>>,
}

/// The package directory of the running test, as cargo gives it when it
/// runs the test (the compile-time value is only a fallback: a test binary
/// reused from a checkout at another path, through a shared target
/// directory, would otherwise look in that checkout).
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `.ci/kinesis/node_modules` of the workspace: this module is compiled
/// into the connectors' tests and into the workspace root's crash tests.
fn emulators_dir() -> PathBuf {
    let crate_dir = manifest_dir();
    let root = if crate_dir.join(".ci").is_dir() {
        crate_dir
    } else {
        crate_dir.join("..")
    };
    root.join(".ci/kinesis/node_modules")
}

fn free_port() -> Option<u16> {
    TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

fn start(kind: Kind) -> std::result::Result<Emulator, String> {
    let (var, name) = match kind {
        Kind::Kinesalite => ("WEIR_KINESALITE_ENDPOINT", "kinesalite"),
        Kind::KinesisLocal => ("WEIR_KINESIS_LOCAL_ENDPOINT", "kinesis-local"),
    };
    if let Ok(e) = std::env::var(var) {
        if !e.trim().is_empty() {
            return Ok(Emulator {
                endpoint: e.trim().to_string(),
                _child: None,
            });
        }
    }
    let dir = emulators_dir();
    let port = free_port().ok_or("no free port")?;
    let (script, env): (PathBuf, Vec<(String, String)>) = match kind {
        Kind::Kinesalite => (dir.join("kinesalite/cli.js"), Vec::new()),
        Kind::KinesisLocal => {
            let pkg = dir.join("kinesis-local");
            let tls = free_port().ok_or("no free port")?;
            let mut env = vec![
                (
                    "KINESIS_MOCK_CERT_PATH".to_string(),
                    pkg.join("server.json").display().to_string(),
                ),
                ("KINESIS_MOCK_PLAIN_PORT".into(), port.to_string()),
                ("KINESIS_MOCK_TLS_PORT".into(), tls.to_string()),
                ("LOG_LEVEL".into(), "WARN".into()),
            ];
            for d in [
                "CREATE_STREAM_DURATION",
                "DELETE_STREAM_DURATION",
                "MERGE_SHARDS_DURATION",
                "SPLIT_SHARD_DURATION",
                "UPDATE_SHARD_COUNT_DURATION",
                "START_STREAM_ENCRYPTION_DURATION",
                "STOP_STREAM_ENCRYPTION_DURATION",
                "REGISTER_STREAM_CONSUMER_DURATION",
                "DEREGISTER_STREAM_CONSUMER_DURATION",
                "UPDATE_STREAM_MODE_DURATION",
            ] {
                env.push((d.into(), "0ms".into()));
            }
            (pkg.join("main.js"), env)
        }
    };
    if !script.exists() {
        return Err(format!(
            "{name} not installed ({} missing; run `bash .ci/kinesis.sh install` or set {var})",
            script.display()
        ));
    }
    let args = match kind {
        Kind::Kinesalite => format!(
            "--port {port} --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0 --shardLimit 100"
        ),
        Kind::KinesisLocal => String::new(),
    };
    // The watchdog: runs node in the background and kills it when our end
    // of its stdin closes (this process exited).
    let cmd = format!(
        "node '{}' {args} >/dev/null 2>&1 & p=$!; cat >/dev/null; kill $p 2>/dev/null",
        script.display()
    );
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.spawn().map_err(|e| format!("starting {name}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{name} did not listen on port {port} within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Emulator {
        endpoint: format!("http://127.0.0.1:{port}"),
        _child: Some(Mutex::new(child)),
    })
}

static KINESALITE: OnceLock<std::result::Result<Emulator, String>> = OnceLock::new();
static KINESIS_LOCAL: OnceLock<std::result::Result<Emulator, String>> = OnceLock::new();

/// The emulator of `kind`, started on first use; `None` (with a printed
/// reason) when it is not available, or a failed test when
/// `$WEIR_REQUIRE_BROKERS` is set (as `.ci/run` does).
pub fn emulator(kind: Kind) -> Option<&'static Emulator> {
    let cell = match kind {
        Kind::Kinesalite => &KINESALITE,
        Kind::KinesisLocal => &KINESIS_LOCAL,
    };
    match cell.get_or_init(|| start(kind)) {
        Ok(e) => Some(e),
        Err(why) => {
            assert!(
                std::env::var_os("WEIR_REQUIRE_BROKERS").is_none(),
                "WEIR_REQUIRE_BROKERS is set but the emulator is unavailable: {why}"
            );
            let mut out = std::io::stdout();
            let _ = writeln!(out, "SKIPPED: {why}");
            None
        }
    }
}

/// AWS options for an emulator (static keys, fixed region).
pub fn aws(endpoint: &str) -> AwsOptions {
    AwsOptions {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.to_string()),
        credentials: Credentials::Basic {
            access_key_id: "weir".into(),
            secret_key: "weir".into(),
        },
    }
}

/// An SDK client for an emulator.
pub async fn client(endpoint: &str) -> Result<aws_sdk_kinesis::Client> {
    weir_connectors::kinesis::client::connect(&aws(endpoint)).await
}

static STREAMS: AtomicUsize = AtomicUsize::new(0);

/// A stream name no other test of this run uses.
pub fn unique_stream(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        STREAMS.fetch_add(1, Ordering::Relaxed)
    )
}

fn ext<E: std::error::Error + Send + Sync + 'static>(
    what: &str,
) -> impl FnOnce(E) -> WeirError + '_ {
    move |e| WeirError::external(what.to_string(), e)
}

/// Creates a stream with `shards` shards and waits until it is ACTIVE.
pub async fn create_stream(c: &aws_sdk_kinesis::Client, name: &str, shards: i32) -> Result<()> {
    c.create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .map_err(ext("CreateStream"))?;
    wait_active(c, name).await
}

/// Waits until the stream is ACTIVE (after create or reshard).
pub async fn wait_active(c: &aws_sdk_kinesis::Client, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = c
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(ext("DescribeStreamSummary"))?;
        let status = d
            .stream_description_summary()
            .map(|s| s.stream_status().clone());
        if status == Some(StreamStatus::Active) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(WeirError::Internal(format!(
                "stream {name} not ACTIVE: {status:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Puts `(partition key, data)` records in order, 500 per call, retrying
/// failed entries one call at a time so that per-key order holds.
pub async fn put(
    c: &aws_sdk_kinesis::Client,
    stream: &str,
    records: &[(String, String)],
) -> Result<()> {
    for chunk in records.chunks(100) {
        let mut pending: Vec<&(String, String)> = chunk.iter().collect();
        let mut attempts = 0;
        while !pending.is_empty() {
            attempts += 1;
            if attempts > 20 {
                return Err(WeirError::Internal("PutRecords keeps failing".into()));
            }
            let mut req = c.put_records().stream_name(stream);
            for (k, d) in &pending {
                req = req.records(
                    PutRecordsRequestEntry::builder()
                        .partition_key(k)
                        .data(Blob::new(d.as_bytes().to_vec()))
                        .build()
                        .map_err(ext("entry"))?,
                );
            }
            let out = req.send().await.map_err(ext("PutRecords"))?;
            // Keep order: retry from the first failed entry on.
            match out.records().iter().position(|r| r.error_code().is_some()) {
                None => pending.clear(),
                Some(first) => {
                    pending.drain(..first);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    Ok(())
}

/// Reads every record of a stream (all shards from TRIM_HORIZON, to the
/// current end), as (shard id, partition key, data), shard by shard.
pub async fn read_all(
    c: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<(String, String, String)>> {
    let shards = c
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .map_err(ext("ListShards"))?;
    let mut out = Vec::new();
    for s in shards.shards() {
        let mut it = c
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(s.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(ext("GetShardIterator"))?
            .shard_iterator()
            .map(str::to_string);
        while let Some(i) = it {
            let r = c
                .get_records()
                .shard_iterator(i)
                .send()
                .await
                .map_err(ext("GetRecords"))?;
            for rec in r.records() {
                out.push((
                    s.shard_id().to_string(),
                    rec.partition_key().unwrap_or_default().to_string(),
                    String::from_utf8_lossy(rec.data().as_ref()).to_string(),
                ));
            }
            if r.records().is_empty() {
                break;
            }
            it = r.next_shard_iterator().map(str::to_string);
        }
    }
    Ok(out)
}

/// Table options for a Kinesis table on an emulator.
pub fn options(endpoint: &str, stream: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = [
        ("connector", "kinesis"),
        ("stream", stream),
        ("aws.region", "us-east-1"),
        ("aws.endpoint", endpoint),
        ("aws.credentials.provider", "BASIC"),
        ("aws.credentials.basic.accesskeyid", "weir"),
        ("aws.credentials.basic.secretkey", "weir"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

/// Batches emitted by a source subtask, with their split, in order.
pub type Emitted = Arc<Mutex<Vec<(usize, RecordBatch)>>>;

/// A source output that keeps batches and cancels every subtask sharing
/// `total` once `stop_at` rows arrived.
pub struct Collect {
    pub batches: Emitted,
    pub total: Arc<AtomicUsize>,
    pub stop_at: Option<usize>,
    pub cancel: Arc<AtomicBool>,
}

#[async_trait]
impl SourceOutput for Collect {
    async fn batch(&mut self, split: usize, batch: RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        self.batches
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?
            .push((split, batch));
        let total = self.total.fetch_add(rows, Ordering::SeqCst) + rows;
        if self.stop_at.is_some_and(|n| total >= n) {
            self.cancel.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// What one subtask produced.
pub struct SubtaskRun {
    pub batches: Vec<(usize, RecordBatch)>,
    pub split_count: usize,
    pub positions: Vec<SplitPosition>,
    pub metrics: Arc<OperatorMetrics>,
    pub result: Result<()>,
}

/// Runs every subtask of `factory` at once until they end (bounded) or
/// `stop_at` rows arrived in total (then they are cancelled), or `timeout`.
pub async fn run_subtasks(
    factory: Arc<dyn SourceFactory>,
    parallelism: usize,
    stop_at: Option<usize>,
    timeout: Duration,
) -> Result<Vec<SubtaskRun>> {
    let total = Arc::new(AtomicUsize::new(0));
    let cancel = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for s in 0..parallelism {
        let mut source = factory.create(s, parallelism)?;
        let batches: Emitted = Arc::default();
        let metrics = Arc::new(OperatorMetrics::new("kinesis", s));
        let out = Collect {
            batches: batches.clone(),
            total: total.clone(),
            stop_at,
            cancel: cancel.clone(),
        };
        let mut ctx = SourceContext::new(
            s,
            parallelism,
            Box::new(out),
            metrics.clone(),
            cancel.clone(),
        );
        handles.push(tokio::spawn(async move {
            let result = source.run(&mut ctx).await;
            let split_count = source.split_count();
            let positions = source.positions();
            let batches = batches
                .lock()
                .map(|mut b| std::mem::take(&mut *b))
                .unwrap_or_default();
            SubtaskRun {
                batches,
                split_count,
                positions,
                metrics,
                result,
            }
        }));
    }
    let watchdog = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            cancel.store(true, Ordering::SeqCst);
        })
    };
    let mut runs = Vec::new();
    for h in handles {
        runs.push(
            h.await
                .map_err(|e| WeirError::Internal(format!("subtask panicked: {e}")))?,
        );
    }
    watchdog.abort();
    Ok(runs)
}
