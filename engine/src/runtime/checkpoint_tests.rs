//! Checkpoints with several inputs: bounded barrier alignment, and
//! checkpoints that go on after one source ended.

use super::*;
use crate::checkpoint::manifest::{latest_manifest, list_manifests};
use crate::checkpoint::{CheckpointStorage, LocalStorage, Manifest};
use crate::graph::{JobGraph, NodeKind, Partitioning};
use crate::sink::SinkFactory;
use crate::source::{CompletedCheckpoint, Source, SourceFactory};
use arrow::array::Int64Array;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parking_lot::Mutex;
use std::sync::atomic::AtomicUsize;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

/// A checkpointing source of one split: batches `next..total` of `rows`
/// rows, `v` = row number from 0, `k` = 0; position = the next batch.
/// Sleeps `pause` after each batch; fails after batch `fail_after` if set.
/// Counts the batches it emits in `emitted`.
#[derive(Clone)]
struct SeqFactory {
    total: u64,
    rows: u64,
    pause: Duration,
    fail_after: Option<u64>,
    emitted: Arc<AtomicUsize>,
    /// The completed checkpoints the source was told of.
    completions: Arc<Mutex<Vec<CompletedCheckpoint>>>,
}

impl SeqFactory {
    fn new(total: u64, rows: u64, pause: Duration) -> Self {
        Self {
            total,
            rows,
            pause,
            fail_after: None,
            emitted: Arc::default(),
            completions: Arc::default(),
        }
    }

    /// Sum of `v` over all rows.
    fn sum(&self) -> i64 {
        let n = (self.total * self.rows) as i64;
        n * (n - 1) / 2
    }
}

struct Seq {
    f: SeqFactory,
    next: u64,
}

impl SourceFactory for SeqFactory {
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn create(&self, _subtask: usize, _p: usize) -> Result<Box<dyn Source>> {
        Ok(Box::new(Seq {
            f: self.clone(),
            next: 0,
        }))
    }
    fn describe(&self) -> String {
        "seq".into()
    }
}

#[async_trait]
impl Source for Seq {
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
        self.next = positions
            .first()
            .and_then(|p| p.position.parse().ok())
            .ok_or_else(|| WeirError::State(format!("bad positions {positions:?}")))?;
        Ok(())
    }
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        while self.next < self.f.total && !ctx.is_cancelled() {
            let first = (self.next * self.f.rows) as i64;
            let v = Int64Array::from_iter_values(first..first + self.f.rows as i64);
            let k = Int64Array::from_iter_values(std::iter::repeat_n(0, self.f.rows as usize));
            let b = RecordBatch::try_new(schema(), vec![Arc::new(k), Arc::new(v)])?;
            self.next += 1;
            ctx.emit_at(0, b, self.next).await?;
            if let Some(done) = ctx.completed_checkpoint() {
                self.f.completions.lock().push(done);
            }
            self.f.emitted.fetch_add(1, Ordering::SeqCst);
            if self.f.fail_after == Some(self.next) {
                return Err(WeirError::Source("injected failure".into()));
            }
            if self.f.pause.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(self.f.pause).await;
            }
        }
        Ok(())
    }
}

/// Counts rows and sums `v` per input; at the end emits, per input `i`,
/// the rows (k = 2i, count) and (k = 2i + 1, sum). Snapshots both.
#[derive(Default)]
struct PerInputSum {
    totals: [(i64, i64); 2],
}

impl Operator for PerInputSum {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _out: &mut Collector,
    ) -> Result<()> {
        let v = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| WeirError::Execution("v".into()))?;
        let t = self
            .totals
            .get_mut(ctx.input)
            .ok_or_else(|| WeirError::Execution("input".into()))?;
        t.0 += v.len() as i64;
        t.1 += v.values().iter().sum::<i64>();
        Ok(())
    }
    fn on_end(&mut self, _ctx: &mut OperatorContext, out: &mut Collector) -> Result<()> {
        out.collect(self.table()?);
        Ok(())
    }
    fn snapshot(&mut self) -> Result<OperatorState> {
        let mut s = OperatorState::empty();
        s.put("totals", self.table()?)?;
        Ok(s)
    }
    fn restore(&mut self, state: OperatorState) -> Result<()> {
        let t = state.require("totals")?;
        let v = t
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| WeirError::State("totals".into()))?;
        for i in 0..2 {
            self.totals[i] = (v.value(2 * i), v.value(2 * i + 1));
        }
        Ok(())
    }
}

impl PerInputSum {
    fn table(&self) -> Result<RecordBatch> {
        let v: Vec<i64> = self.totals.iter().flat_map(|t| [t.0, t.1]).collect();
        Ok(RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..4)),
                Arc::new(Int64Array::from(v)),
            ],
        )?)
    }
}

/// A sink keeping (k, v) rows.
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
        let (k, v) = (col(0)?, col(1)?);
        let mut rows = self.0.lock();
        for i in 0..batch.num_rows() {
            rows.push((k.value(i), v.value(i)));
        }
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Passes batches on.
struct Pass;

impl Operator for Pass {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        out.collect(batch);
        Ok(())
    }
}

/// Two sources into one two-input operator (hash edges: it runs in its own
/// task and aligns barriers over both), then a sink. With `pass`, source
/// `a` goes through a pass-through operator in a task of its own first.
fn two_inputs(a: &SeqFactory, b: &SeqFactory, rows: &Rows, pass: bool) -> JobGraph {
    let mut g = JobGraph::new();
    let mut a = g.add_node(
        "a",
        "seq",
        1,
        NodeKind::Source(Arc::new(a.clone())),
        schema(),
    );
    if pass {
        let p = g.add_node(
            "pass",
            "pass",
            1,
            NodeKind::Operator(Arc::new(
                |_s: usize, _p: usize| -> Result<Box<dyn Operator>> { Ok(Box::new(Pass)) },
            )),
            schema(),
        );
        g.connect(a, p, Partitioning::Hash(vec![0]));
        a = p;
    }
    let b = g.add_node(
        "b",
        "seq",
        1,
        NodeKind::Source(Arc::new(b.clone())),
        schema(),
    );
    let op = g.add_node(
        "sum",
        "per-input sum",
        1,
        NodeKind::Operator(Arc::new(
            |_s: usize, _p: usize| -> Result<Box<dyn Operator>> {
                Ok(Box::new(PerInputSum::default()))
            },
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
    g.connect(a, op, Partitioning::Hash(vec![0]));
    g.connect(b, op, Partitioning::Hash(vec![0]));
    g.connect(op, sink, Partitioning::Forward);
    g
}

fn config(storage: &Arc<dyn CheckpointStorage>, interval_ms: u64, capacity: usize) -> JobConfig {
    let mut ck = CheckpointConfig::new(storage.clone(), Duration::from_millis(interval_ms));
    ck.retained = 1000;
    JobConfig {
        channel_capacity_rows: capacity,
        checkpoint: Some(ck),
        ..JobConfig::default()
    }
}

fn expected(a: &SeqFactory, b: &SeqFactory) -> Vec<(i64, i64)> {
    vec![
        (0, (a.total * a.rows) as i64),
        (1, a.sum()),
        (2, (b.total * b.rows) as i64),
        (3, b.sum()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_input_aligned_early_is_held_to_the_channel_capacity() {
    // Input a is fast (100-row batches, no pause) and injects each barrier
    // at once; input b sends a 10-row batch every 20 ms, so its barrier
    // comes up to 20 ms later. Meanwhile a's messages after the barrier are
    // held back: at most its channel credit (the capacity, 1 000 rows),
    // after which a's source waits. Without the bound, a would push
    // thousands of rows per alignment into memory.
    let dir = tempfile::tempdir()
        .map_err(|e| WeirError::io("tempdir", e))
        .expect("tempdir");
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(LocalStorage::new(dir.path()).expect("storage"));
    let a = SeqFactory::new(3000, 100, Duration::ZERO);
    let b = SeqFactory::new(40, 10, Duration::from_millis(20));
    let rows = Rows::default();
    let job = Job::new(two_inputs(&a, &b, &rows, false), config(&storage, 10, 1000)).expect("job");
    let metrics = job.metrics();
    job.run().await.expect("run");
    assert_eq!(*rows.0.lock(), expected(&a, &b));
    let held = metrics.max_alignment_held_rows();
    assert!(
        held <= 1000,
        "held {held} rows, more than the channel capacity"
    );
    assert!(
        held >= 500,
        "alignment held only {held} rows: the test did not hold a back"
    );
    let completed = metrics.checkpoint_stats().lock().completed;
    assert!(completed >= 3, "{completed} checkpoints");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_go_on_after_a_source_ends_and_a_restore_skips_it() {
    // Source a ends after 20 batches, 10 ms apart (and with it the
    // pass-through task after it); b sends a batch every 5 ms and fails
    // after 150 of its 200 batches. Checkpoints every 20 ms. Checkpoints must go on after a ended, with a
    // recorded as finished; the restart must not read a again and must
    // give exact totals for both.
    let dir = tempfile::tempdir()
        .map_err(|e| WeirError::io("tempdir", e))
        .expect("tempdir");
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(LocalStorage::new(dir.path()).expect("storage"));
    let a = SeqFactory::new(20, 10, Duration::from_millis(10));
    let mut b = SeqFactory::new(200, 10, Duration::from_millis(5));
    b.fail_after = Some(150);
    let rows = Rows::default();
    let job = Job::new(
        two_inputs(&a, &b, &rows, true),
        config(&storage, 20, 64 * 1024),
    )
    .expect("job");
    let err = job.run().await.expect_err("b fails");
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(a.emitted.load(Ordering::SeqCst), 20);
    assert!(rows.0.lock().is_empty());

    // Checkpoints completed after a finished: a's node is marked finished
    // with its final position; b's position is where it was.
    let manifests = list_manifests(storage.as_ref()).expect("manifests");
    let node = |m: &Manifest, name: &str| {
        m.nodes
            .iter()
            .find(|n| n.node == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in checkpoint {}", m.id))
    };
    let after_a: Vec<&Manifest> = manifests.iter().filter(|m| node(m, "a").finished).collect();
    assert!(
        after_a.len() >= 5,
        "{} checkpoints after a ended",
        after_a.len()
    );
    for m in &after_a {
        let na = node(m, "a");
        assert_eq!(na.positions[0].position, "20");
        assert!(na.file.is_none());
        assert!(node(m, "pass").finished, "pass ended with a");
        assert!(!node(m, "b").finished && !node(m, "sum").finished);
    }
    // Before a finished, a was not marked so.
    let first = manifests.first().expect("a checkpoint");
    assert!(
        !node(first, "a").finished,
        "the first checkpoint (id {}) came before a ended",
        first.id
    );
    let latest = latest_manifest(storage.as_ref())
        .expect("latest")
        .expect("some");
    assert!(node(&latest, "a").finished);
    let b_at: u64 = node(&latest, "b").positions[0]
        .position
        .parse()
        .expect("position");
    assert!((21..=150).contains(&b_at), "{b_at}");

    // The restart: a is not run (nor pass: it only forwards end of
    // stream), b resumes; the totals are exact.
    let a2 = SeqFactory::new(20, 10, Duration::ZERO);
    let b2 = SeqFactory::new(200, 10, Duration::from_millis(1));
    let rows = Rows::default();
    let job = Job::new(
        two_inputs(&a2, &b2, &rows, true),
        config(&storage, 20, 64 * 1024),
    )
    .expect("job");
    assert_eq!(job.recovery(), &Recovery::Resumed(latest.id));
    job.run().await.expect("second run");
    assert_eq!(a2.emitted.load(Ordering::SeqCst), 0, "a was read again");
    assert_eq!(b2.emitted.load(Ordering::SeqCst), (200 - b_at) as usize);
    assert_eq!(*rows.0.lock(), expected(&a2, &b2));
    // The final checkpoint has every task finished.
    let last = latest_manifest(storage.as_ref())
        .expect("latest")
        .expect("some");
    assert!(last.finished);
    assert!(last.nodes.iter().all(|n| n.finished), "{:?}", last.nodes);
}

/// A sink that records its commits.
#[derive(Clone, Default)]
struct CommitLog {
    rows: Arc<Mutex<u64>>,
    commits: Arc<Mutex<Vec<u64>>>,
}

impl SinkFactory for CommitLog {
    fn create(&self, _subtask: usize, _p: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(self.clone()))
    }
    fn describe(&self) -> String {
        "commit-log".into()
    }
}

#[async_trait]
impl Sink for CommitLog {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        *self.rows.lock() += batch.num_rows() as u64;
        Ok(())
    }
    async fn commit(&mut self, checkpoint_id: u64) -> Result<()> {
        self.commits.lock().push(checkpoint_id);
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_input_ended_commits_at_the_next_checkpoint_not_at_the_job_end() {
    // a -> sink_a and b -> sink_b, each chained in one task. a ends after
    // 5 batches; b runs about 0.5 s. Sink a's last pre-commit goes into the
    // next checkpoint, which b's barriers complete: it commits then, before
    // the job's final checkpoint.
    let dir = tempfile::tempdir()
        .map_err(|e| WeirError::io("tempdir", e))
        .expect("tempdir");
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(LocalStorage::new(dir.path()).expect("storage"));
    let a = SeqFactory::new(5, 10, Duration::ZERO);
    let b = SeqFactory::new(100, 10, Duration::from_millis(5));
    let (sink_a, sink_b) = (CommitLog::default(), CommitLog::default());
    let mut g = JobGraph::new();
    for (name, src, sink) in [("a", &a, &sink_a), ("b", &b, &sink_b)] {
        let s = g.add_node(
            name,
            "seq",
            1,
            NodeKind::Source(Arc::new(src.clone())),
            schema(),
        );
        let k = g.add_node(
            format!("out_{name}"),
            "commit-log",
            1,
            NodeKind::Sink(Arc::new(sink.clone())),
            schema(),
        );
        g.connect(s, k, Partitioning::Forward);
    }
    let job = Job::new(g, config(&storage, 20, 64 * 1024)).expect("job");
    job.run().await.expect("run");
    assert_eq!(*sink_a.rows.lock(), 50);
    assert_eq!(*sink_b.rows.lock(), 1000);
    let last = latest_manifest(storage.as_ref())
        .expect("latest")
        .expect("some");
    assert!(last.finished);
    let a_commits = sink_a.commits.lock().clone();
    let b_commits = sink_b.commits.lock().clone();
    let a_last = *a_commits.last().expect("sink a committed");
    assert!(
        a_last < last.id,
        "sink a's last commit {a_last} waited for the final checkpoint {}",
        last.id
    );
    assert_eq!(b_commits.last(), Some(&last.id));
    // The checkpoint sink a committed at is a regular one, with a and its
    // sink marked finished and b running.
    let m = list_manifests(storage.as_ref())
        .expect("manifests")
        .into_iter()
        .find(|m| m.id == a_last)
        .expect("the checkpoint sink a committed at");
    assert!(!m.finished);
    let finished = |name: &str| m.nodes.iter().any(|n| n.node == name && n.finished);
    assert!(finished("a") && finished("out_a"), "{:?}", m.nodes);
    assert!(!finished("b") && !finished("out_b"), "{:?}", m.nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_learn_which_checkpoints_completed_with_the_positions_stored() {
    // Both sources are told of completed checkpoints (as the Kafka source
    // commits them to its group): each one they hear of is in storage
    // with the very positions it was told, ids only grow, and the last
    // ones come close to the end of the input.
    let dir = tempfile::tempdir()
        .map_err(|e| WeirError::io("tempdir", e))
        .expect("tempdir");
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(LocalStorage::new(dir.path()).expect("storage"));
    let a = SeqFactory::new(100, 10, Duration::from_millis(5));
    let b = SeqFactory::new(100, 10, Duration::from_millis(5));
    let rows = Rows::default();
    let job = Job::new(
        two_inputs(&a, &b, &rows, false),
        config(&storage, 20, 64 * 1024),
    )
    .expect("job");
    job.run().await.expect("run");
    assert_eq!(*rows.0.lock(), expected(&a, &b));
    for (name, f) in [("a", &a), ("b", &b)] {
        let told = f.completions.lock().clone();
        assert!(
            told.len() >= 3,
            "{name} was told of {} checkpoints",
            told.len()
        );
        assert!(told.windows(2).all(|w| w[0].id < w[1].id), "{told:?}");
        for c in &told {
            let m = crate::checkpoint::manifest::read_manifest(storage.as_ref(), c.id)
                .expect("read")
                .unwrap_or_else(|| panic!("checkpoint {} is stored", c.id));
            let node = m.nodes.iter().find(|n| n.node == name).expect("node");
            assert_eq!(node.positions, c.positions, "{name}, checkpoint {}", c.id);
        }
        let last: u64 = told
            .last()
            .and_then(|c| c.positions[0].position.parse().ok())
            .expect("a position");
        assert!(
            last >= 50,
            "{name}: the last checkpoint it heard of is at {last}"
        );
    }
}
