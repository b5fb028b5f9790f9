//! Checkpoints on an object store: the storage against a real S3 API
//! emulator (moto's server, see `tests/s3_support`), and a job that
//! checkpoints there, fails, and resumes exactly.

#[path = "../../tests/s3_support/mod.rs"]
mod s3_support;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::ObjectStore;
use parking_lot::Mutex;

use weir_engine::checkpoint::manifest::{checkpoint_ids, latest_manifest, list_manifests};
use weir_engine::checkpoint::{
    open_storage_with_options, CheckpointConfig, CheckpointStorage, Manifest, NodeSnapshot,
    RestoredState,
};
use weir_engine::graph::{JobGraph, NodeKind, Partitioning};
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::runtime::{Job, JobConfig, Recovery};
use weir_engine::sink::{Sink, SinkFactory};
use weir_engine::source::{Source, SourceContext, SourceFactory, SplitPosition};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

fn storage(emu: &s3_support::S3Emulator, bucket: &str, prefix: &str) -> Arc<dyn CheckpointStorage> {
    open_storage_with_options(&format!("s3://{bucket}/{prefix}"), &emu.options())
        .expect("open s3 storage")
}

/// Every object key in the bucket, read with a separate client.
async fn keys(emu: &s3_support::S3Emulator, bucket: &str) -> Vec<String> {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_endpoint(&emu.endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("weir")
        .with_secret_access_key("weir")
        .build()
        .expect("client");
    let mut keys: Vec<String> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_round_trips_lists_and_deletes() {
    let Some(emu) = s3_support::emulator() else {
        return;
    };
    let bucket = emu.new_bucket("store");
    let s = storage(emu, &bucket, "jobs/a");
    assert_eq!(s.describe(), format!("s3://{bucket}/jobs/a"));
    s.put("chk-0000000001/op-0.state", b"abc").expect("put");
    s.put("chk-0000000001/op-1.state", b"").expect("put empty");
    s.put_atomic("chk-0000000001/manifest.json", b"{}")
        .expect("put manifest");
    s.put("chk-0000000002/op-0.state", b"xyz").expect("put");
    assert_eq!(
        s.get("chk-0000000001/op-0.state").expect("get").as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(
        s.get("chk-0000000001/op-1.state").expect("get").as_deref(),
        Some(&b""[..])
    );
    assert_eq!(s.get("chk-0000000003/manifest.json").expect("get"), None);
    assert_eq!(
        s.list("").expect("list"),
        vec!["chk-0000000001", "chk-0000000002"]
    );
    assert_eq!(
        s.list("chk-0000000001").expect("list"),
        vec!["manifest.json", "op-0.state", "op-1.state"]
    );
    assert_eq!(checkpoint_ids(s.as_ref()).expect("ids"), vec![1, 2]);
    // Another prefix of the same bucket is another store.
    let other = storage(emu, &bucket, "jobs/b");
    assert!(other.list("").expect("list").is_empty());
    other.put("chk-0000000001/x.state", b"1").expect("put");
    assert_eq!(
        keys(emu, &bucket).await,
        vec![
            "jobs/a/chk-0000000001/manifest.json",
            "jobs/a/chk-0000000001/op-0.state",
            "jobs/a/chk-0000000001/op-1.state",
            "jobs/a/chk-0000000002/op-0.state",
            "jobs/b/chk-0000000001/x.state",
        ]
    );
    // Many objects at once (written concurrently), all there when it returns.
    let many: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("chk-0000000003/op-{i:02}.state"), vec![i as u8; i]))
        .collect();
    s.put_all(many.clone()).expect("put_all");
    let names: Vec<String> = (0..40).map(|i| format!("op-{i:02}.state")).collect();
    assert_eq!(s.list("chk-0000000003").expect("list"), names);
    for (key, bytes) in &many {
        assert_eq!(s.get(key).expect("get").as_ref(), Some(bytes));
    }
    s.delete_prefix("chk-0000000003").expect("delete");
    s.delete_prefix("chk-0000000001").expect("delete");
    s.delete_prefix("chk-0000000009").expect("delete missing");
    assert_eq!(s.list("").expect("list"), vec!["chk-0000000002"]);
    assert_eq!(
        keys(emu, &bucket).await,
        vec![
            "jobs/a/chk-0000000002/op-0.state",
            "jobs/b/chk-0000000001/x.state",
        ]
    );
}

fn manifest(id: u64, nodes: Vec<NodeSnapshot>) -> Manifest {
    Manifest {
        id,
        fingerprint: "f".into(),
        graph: vec!["[0] g".into()],
        completed_at_ms: 1,
        duration_ms: 2,
        alignment_ms: 0,
        size_bytes: 3,
        finished: false,
        nodes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_without_manifest_is_ignored_and_restore_reads_the_latest_complete() {
    let Some(emu) = s3_support::emulator() else {
        return;
    };
    let bucket = emu.new_bucket("restore");
    let s = storage(emu, &bucket, "ck");
    for (id, state) in [(4u64, &b"four"[..]), (5, &b"five"[..])] {
        let dir = format!("chk-{id:010}");
        s.put(&format!("{dir}/sum-0.state"), state).expect("put");
        let m = manifest(
            id,
            vec![NodeSnapshot {
                node: "sum".into(),
                subtask: 0,
                file: Some("sum-0.state".into()),
                bytes: state.len() as u64,
                positions: vec![SplitPosition {
                    split: "seq/0".into(),
                    position: id.to_string(),
                }],
                finished: false,
            }],
        );
        s.put_atomic(
            &format!("{dir}/manifest.json"),
            &serde_json::to_vec(&m).expect("json"),
        )
        .expect("manifest");
    }
    // Checkpoint 6 wrote its state but not its manifest: incomplete.
    s.put("chk-0000000006/sum-0.state", b"six").expect("put");
    assert_eq!(checkpoint_ids(s.as_ref()).expect("ids"), vec![4, 5, 6]);
    let all: Vec<u64> = list_manifests(s.as_ref())
        .expect("list")
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(all, vec![4, 5]);
    let latest = latest_manifest(s.as_ref()).expect("latest").expect("some");
    assert_eq!(latest.id, 5);
    let r = RestoredState::load(s.as_ref(), &latest).expect("load");
    assert_eq!(r.state("sum", 0), Some(&b"five"[..]));
    assert_eq!(
        r.positions("sum", 0),
        Some(
            &[SplitPosition {
                split: "seq/0".into(),
                position: "5".into()
            }][..]
        )
    );
    // A manifest naming a state object that is gone is an error, not an
    // empty state.
    s.delete_prefix("chk-0000000005").expect("delete");
    s.put_atomic(
        "chk-0000000005/manifest.json",
        &serde_json::to_vec(&latest).expect("json"),
    )
    .expect("manifest");
    let err = RestoredState::load(s.as_ref(), &latest).expect_err("missing state");
    assert!(err.to_string().contains("sum-0.state is missing"), "{err}");
}

// --- A job checkpointing to S3 ---------------------------------------------

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
}

/// Emits batches `next..total` of 10 rows (values 10b..10b+9), position =
/// the next batch; fails after batch `fail_after` when set.
struct SeqFactory {
    total: u64,
    fail_after: Option<u64>,
}

struct SeqSource {
    next: u64,
    total: u64,
    fail_after: Option<u64>,
}

impl SourceFactory for SeqFactory {
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn create(&self, _subtask: usize, _p: usize) -> Result<Box<dyn Source>> {
        Ok(Box::new(SeqSource {
            next: 0,
            total: self.total,
            fail_after: self.fail_after,
        }))
    }
    fn describe(&self) -> String {
        "seq".into()
    }
}

#[async_trait]
impl Source for SeqSource {
    fn split_count(&self) -> usize {
        1
    }
    fn supports_checkpoints(&self) -> bool {
        true
    }
    fn positions(&self) -> Vec<SplitPosition> {
        vec![SplitPosition {
            split: "seq/0".into(),
            position: self.next.to_string(),
        }]
    }
    fn restore_positions(&mut self, positions: &[SplitPosition]) -> Result<()> {
        let p = positions
            .first()
            .ok_or_else(|| WeirError::State("no position".into()))?;
        self.next = p
            .position
            .parse()
            .map_err(|_| WeirError::State(format!("bad position {}", p.position)))?;
        Ok(())
    }
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        while self.next < self.total && !ctx.is_cancelled() {
            let b = self.next as i64;
            let values = Int64Array::from_iter_values(b * 10..b * 10 + 10);
            let batch = RecordBatch::try_new(schema(), vec![Arc::new(values)])?;
            self.next += 1;
            ctx.emit_at(0, batch, self.next).await?;
            if self.fail_after == Some(self.next) {
                return Err(WeirError::Source("injected failure".into()));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }
}

/// Counts and sums `v`; emits (count, sum) at the end. State: both.
#[derive(Default)]
struct Sum {
    count: i64,
    sum: i64,
}

impl Operator for Sum {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        _out: &mut Collector,
    ) -> Result<()> {
        let v = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| WeirError::Execution("v".into()))?;
        self.count += v.len() as i64;
        self.sum += v.values().iter().sum::<i64>();
        Ok(())
    }
    fn on_end(&mut self, _ctx: &mut OperatorContext, out: &mut Collector) -> Result<()> {
        out.collect(self.row()?);
        Ok(())
    }
    fn snapshot(&mut self) -> Result<OperatorState> {
        let mut s = OperatorState::empty();
        s.put("sum", self.row()?)?;
        Ok(s)
    }
    fn restore(&mut self, state: OperatorState) -> Result<()> {
        let t = state.require("sum")?;
        let col = |i: usize| {
            t.column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .map(|a| a.value(0))
                .ok_or_else(|| WeirError::State("sum state".into()))
        };
        self.count = col(0)?;
        self.sum = col(1)?;
        Ok(())
    }
}

impl Sum {
    fn row(&self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("count", DataType::Int64, false),
                Field::new("sum", DataType::Int64, false),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![self.count])),
                Arc::new(Int64Array::from(vec![self.sum])),
            ],
        )?)
    }
}

#[derive(Clone, Default)]
struct Rows(Arc<Mutex<Vec<(i64, i64)>>>);

impl SinkFactory for Rows {
    fn create(&self, _subtask: usize, _p: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(self.clone()))
    }
    fn describe(&self) -> String {
        "rows".into()
    }
}

#[async_trait]
impl Sink for Rows {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let col = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .ok_or_else(|| WeirError::Sink("column".into()))
        };
        let (c, s) = (col(0)?, col(1)?);
        let mut rows = self.0.lock();
        for i in 0..batch.num_rows() {
            rows.push((c.value(i), s.value(i)));
        }
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

fn graph(fail_after: Option<u64>, rows: &Rows) -> JobGraph {
    let mut g = JobGraph::new();
    let src = g.add_node(
        "seq",
        "seq",
        1,
        NodeKind::Source(Arc::new(SeqFactory {
            total: 400,
            fail_after,
        })),
        schema(),
    );
    let sum = g.add_node(
        "sum",
        "sum",
        1,
        NodeKind::Operator(Arc::new(
            |_s: usize, _p: usize| -> Result<Box<dyn Operator>> { Ok(Box::new(Sum::default())) },
        )),
        schema(),
    );
    let sink = g.add_node(
        "out",
        "rows",
        1,
        NodeKind::Sink(Arc::new(rows.clone())),
        schema(),
    );
    // A hash edge: the operator runs in its own task and aligns barriers.
    g.connect(src, sum, Partitioning::Hash(vec![0]));
    g.connect(sum, sink, Partitioning::Forward);
    g
}

fn config(s: &Arc<dyn CheckpointStorage>) -> JobConfig {
    let mut ck = CheckpointConfig::new(s.clone(), Duration::from_millis(30));
    ck.retained = 2;
    JobConfig {
        checkpoint: Some(ck),
        ..JobConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_checkpointing_to_s3_fails_resumes_exactly_and_prunes() {
    let Some(emu) = s3_support::emulator() else {
        return;
    };
    let bucket = emu.new_bucket("job");
    let s = storage(emu, &bucket, "jobs/sum");

    // First run: fails after 250 of 400 batches, with checkpoints taken.
    let rows = Rows::default();
    let job = Job::new(graph(Some(250), &rows), config(&s)).expect("job");
    assert_eq!(job.recovery(), &Recovery::Fresh);
    let err = job.run().await.expect_err("injected failure");
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(rows.0.lock().is_empty());
    let latest = latest_manifest(s.as_ref())
        .expect("latest")
        .expect("a complete checkpoint before the failure");
    let pos = &latest
        .nodes
        .iter()
        .find(|n| n.node == "seq")
        .expect("source positions")
        .positions[0]
        .position;
    let pos: u64 = pos.parse().expect("position");
    assert!((1..=250).contains(&pos), "{pos}");

    // A later checkpoint whose manifest was never written is ignored.
    let broken = latest.id + 1;
    s.put(&format!("chk-{broken:010}/sum-0.state"), b"garbage")
        .expect("put");

    // Second run: resumes from the latest complete checkpoint and gives the
    // exact totals of all 400 batches (nothing lost, nothing counted twice).
    let rows = Rows::default();
    let job = Job::new(graph(None, &rows), config(&s)).expect("job");
    assert_eq!(job.recovery(), &Recovery::Resumed(latest.id));
    let metrics = job.metrics();
    job.run().await.expect("second run");
    let n = 4000i64;
    assert_eq!(*rows.0.lock(), vec![(n, n * (n - 1) / 2)]);
    let stats = metrics.checkpoint_stats().lock().clone();
    assert_eq!(stats.restored_from, Some(latest.id));

    // Pruned to the 2 newest complete checkpoints (the last one final); the
    // incomplete one and everything older are deleted from the bucket.
    let ids = checkpoint_ids(s.as_ref()).expect("ids");
    let manifests = list_manifests(s.as_ref()).expect("manifests");
    assert_eq!(manifests.len(), 2, "{ids:?}");
    assert_eq!(
        manifests.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids,
        "only complete checkpoints remain"
    );
    assert!(ids[0] > broken, "{ids:?}");
    assert!(!manifests[0].finished && manifests[1].finished);
    let expected_keys: Vec<String> = {
        let mut k = Vec::new();
        for m in &manifests {
            let dir = format!("jobs/sum/chk-{:010}", m.id);
            k.push(format!("{dir}/manifest.json"));
            for n in &m.nodes {
                if let Some(f) = &n.file {
                    k.push(format!("{dir}/{f}"));
                }
            }
        }
        k.sort();
        k
    };
    assert_eq!(keys(emu, &bucket).await, expected_keys);
    assert!(expected_keys.iter().any(|k| k.ends_with("/sum-0.state")));
}
