use super::*;
use crate::graph::{JobGraph, NodeKind, Partitioning};
use crate::sink::SinkFactory;
use crate::source::{Source, SourceFactory};
use arrow::array::{Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parking_lot::Mutex;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

fn batch(rows: &[(i64, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .expect("batch")
}

/// Emits `batches` (per subtask: the same list, keys offset by subtask*1000).
struct VecSourceFactory {
    batches: Vec<Vec<(i64, i64)>>,
}

struct VecSource {
    batches: Vec<RecordBatch>,
}

impl SourceFactory for VecSourceFactory {
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn create(&self, subtask: usize, _p: usize) -> Result<Box<dyn Source>> {
        let off = subtask as i64 * 1000;
        Ok(Box::new(VecSource {
            batches: self
                .batches
                .iter()
                .map(|rows| {
                    let shifted: Vec<_> = rows.iter().map(|(k, v)| (*k, v + off)).collect();
                    batch(&shifted)
                })
                .collect(),
        }))
    }
    fn describe(&self) -> String {
        "vec".into()
    }
}

#[async_trait]
impl Source for VecSource {
    fn split_count(&self) -> usize {
        1
    }
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        for b in self.batches.drain(..) {
            if ctx.is_cancelled() {
                break;
            }
            ctx.emit(0, b).await?;
        }
        Ok(())
    }
}

#[derive(Default, Clone)]
struct Collected {
    rows: Arc<Mutex<Vec<(usize, i64, i64)>>>,
    watermarks: Arc<Mutex<Vec<(usize, i64)>>>,
    finished: Arc<Mutex<usize>>,
}

struct CollectSinkFactory {
    collected: Collected,
    delay: Duration,
}

struct CollectSink {
    subtask: usize,
    collected: Collected,
    delay: Duration,
}

impl SinkFactory for CollectSinkFactory {
    fn create(&self, subtask: usize, _p: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(CollectSink {
            subtask,
            collected: self.collected.clone(),
            delay: self.delay,
        }))
    }
    fn describe(&self) -> String {
        "collect".into()
    }
}

#[async_trait]
impl Sink for CollectSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let k = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("k");
        let v = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("v");
        let mut rows = self.collected.rows.lock();
        for i in 0..batch.num_rows() {
            rows.push((self.subtask, k.value(i), v.value(i)));
        }
        Ok(())
    }
    async fn on_watermark(&mut self, w: i64) -> Result<()> {
        self.collected.watermarks.lock().push((self.subtask, w));
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        *self.collected.finished.lock() += 1;
        Ok(())
    }
}

/// Adds 1 to `v` and emits a watermark equal to the largest `v` seen.
struct AddOne {
    max: i64,
}

impl Operator for AddOne {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        let v = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("v");
        let plus: Int64Array = v.iter().map(|x| x.map(|x| x + 1)).collect();
        self.max = self.max.max(arrow::compute::max(&plus).unwrap_or(i64::MIN));
        out.collect(RecordBatch::try_new(
            batch.schema(),
            vec![batch.column(0).clone(), Arc::new(plus)],
        )?);
        out.emit_watermark(self.max);
        Ok(())
    }
}

fn add_one_factory() -> NodeKind {
    NodeKind::Operator(Arc::new(
        |_s: usize, _p: usize| -> Result<Box<dyn Operator>> {
            Ok(Box::new(AddOne { max: i64::MIN }))
        },
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_and_hashed_pipeline_delivers_every_row_to_the_right_subtask() {
    let batches: Vec<Vec<(i64, i64)>> = (0..20)
        .map(|b| (0..50).map(|i| ((b * 50 + i) % 7, b * 50 + i)).collect())
        .collect();
    let collected = Collected::default();
    let mut g = JobGraph::new();
    let src = g.add_node(
        "src",
        "",
        2,
        NodeKind::Source(Arc::new(VecSourceFactory { batches })),
        schema(),
    );
    let op = g.add_node("add_one", "", 2, add_one_factory(), schema());
    let sink = g.add_node(
        "sink",
        "",
        3,
        NodeKind::Sink(Arc::new(CollectSinkFactory {
            collected: collected.clone(),
            delay: Duration::ZERO,
        })),
        schema(),
    );
    g.connect(src, op, Partitioning::Forward);
    g.connect(op, sink, Partitioning::Hash(vec![0]));
    let chains = g.chains().expect("chains");
    assert_eq!(
        chains.len(),
        2,
        "source and map chain; the sink is behind a hash edge"
    );
    assert_eq!(chains[0].nodes, vec![src, op]);

    Job::new(g, JobConfig::default())
        .expect("job")
        .run()
        .await
        .expect("run");

    let mut rows = collected.rows.lock().clone();
    assert_eq!(rows.len(), 2 * 1000);
    // Every key went to exactly one sink subtask.
    let mut owner = std::collections::HashMap::new();
    for (s, k, _) in &rows {
        assert_eq!(
            *owner.entry(*k).or_insert(*s),
            *s,
            "key {k} on two subtasks"
        );
    }
    // Exact values: v+1 for both source subtasks.
    let mut values: Vec<i64> = rows.drain(..).map(|r| r.2).collect();
    values.sort_unstable();
    let mut expected: Vec<i64> = (0..1000)
        .map(|v| v + 1)
        .chain((0..1000).map(|v| v + 1001))
        .collect();
    expected.sort_unstable();
    assert_eq!(values, expected);
    assert_eq!(*collected.finished.lock(), 3);
    // Watermarks only advance. An ended input no longer holds the minimum
    // back, so the last watermark a sink subtask sees is the maximum of the
    // upstream subtask that ended last: 2000 when the one with the smaller
    // maximum (1000) ends first, 1000 when the other one does (a race).
    for s in 0..3 {
        let wms: Vec<i64> = collected
            .watermarks
            .lock()
            .iter()
            .filter(|w| w.0 == s)
            .map(|w| w.1)
            .collect();
        assert!(wms.windows(2).all(|p| p[0] < p[1]), "subtask {s}: {wms:?}");
        assert!(
            matches!(wms.last(), Some(&1000) | Some(&2000)),
            "subtask {s}: {wms:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sink_bounds_rows_in_flight() {
    // 200 batches of 100 rows into a sink that takes 2 ms per batch, through a
    // channel of 1 000 rows. Rows read but not yet written must stay bounded
    // by the channel plus what one task holds, not grow to the whole input.
    let batches: Vec<Vec<(i64, i64)>> = (0..200)
        .map(|b| (0..100).map(|i| (i, b * 100 + i)).collect())
        .collect();
    let collected = Collected::default();
    let mut g = JobGraph::new();
    let src = g.add_node(
        "src",
        "",
        1,
        NodeKind::Source(Arc::new(VecSourceFactory { batches })),
        schema(),
    );
    let sink = g.add_node(
        "sink",
        "",
        1,
        NodeKind::Sink(Arc::new(CollectSinkFactory {
            collected: collected.clone(),
            delay: Duration::from_millis(2),
        })),
        schema(),
    );
    g.connect(src, sink, Partitioning::Rebalance);
    let job = Job::new(
        g,
        JobConfig {
            channel_capacity_rows: 1000,
            ..Default::default()
        },
    )
    .expect("job");
    let metrics = job.metrics();
    let handle = tokio::spawn(job.run());
    let mut max_in_flight = 0u64;
    while !handle.is_finished() {
        let t = metrics.totals();
        max_in_flight = max_in_flight.max(t.source_rows - t.sink_rows);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    handle.await.expect("join").expect("run");
    assert_eq!(collected.rows.lock().len(), 20_000);
    // channel (1 000) + the batch the source is blocked on (100) + the batch in the sink (100)
    assert!(max_in_flight <= 1_200, "in flight: {max_in_flight}");
    assert!(
        max_in_flight >= 500,
        "the channel did fill: {max_in_flight}"
    );
}

#[test]
fn combined_watermark_ignores_idle_and_ended_channels() {
    let c = |w: Option<i64>, idle: bool, ended: bool| ChannelState {
        input: 0,
        watermark: w,
        idle,
        ended,
    };
    // Minimum over active channels.
    assert_eq!(
        combined(&[c(Some(10), false, false), c(Some(5), false, false)]),
        Some(Watermark::EventTime(5))
    );
    // A channel without a watermark yet holds everything back.
    assert_eq!(
        combined(&[c(Some(10), false, false), c(None, false, false)]),
        None
    );
    // Idle and ended channels do not hold back.
    assert_eq!(
        combined(&[c(Some(10), false, false), c(Some(1), true, false)]),
        Some(Watermark::EventTime(10))
    );
    assert_eq!(
        combined(&[c(Some(10), false, false), c(None, false, true)]),
        Some(Watermark::EventTime(10))
    );
    // All idle: idle.
    assert_eq!(
        combined(&[c(Some(10), true, false), c(None, true, false)]),
        Some(Watermark::Idle)
    );
}

#[tokio::test]
async fn a_failing_operator_fails_the_job_with_its_error() {
    struct Fails;
    impl Operator for Fails {
        fn process_batch(
            &mut self,
            _b: RecordBatch,
            _c: &mut OperatorContext,
            _o: &mut Collector,
        ) -> Result<()> {
            Err(WeirError::Execution("boom on purpose".into()))
        }
    }
    let batches = vec![vec![(1, 1)]; 10];
    let mut g = JobGraph::new();
    let src = g.add_node(
        "src",
        "",
        1,
        NodeKind::Source(Arc::new(VecSourceFactory { batches })),
        schema(),
    );
    let op = g.add_node(
        "fails",
        "",
        2,
        NodeKind::Operator(Arc::new(
            |_s: usize, _p: usize| -> Result<Box<dyn Operator>> { Ok(Box::new(Fails)) },
        )),
        schema(),
    );
    let sink = g.add_node(
        "sink",
        "",
        2,
        NodeKind::Sink(Arc::new(CollectSinkFactory {
            collected: Collected::default(),
            delay: Duration::ZERO,
        })),
        schema(),
    );
    g.connect(src, op, Partitioning::Rebalance);
    g.connect(op, sink, Partitioning::Forward);
    let err = Job::new(g, JobConfig::default())
        .expect("job")
        .run()
        .await
        .expect_err("must fail");
    assert!(err.to_string().contains("boom on purpose"), "{err}");
    assert!(
        err.to_string().contains("fails"),
        "names the operator: {err}"
    );
}

#[test]
fn explain_shows_tasks_and_edges() {
    let mut g = JobGraph::new();
    let src = g.add_node(
        "src",
        "vec",
        2,
        NodeKind::Source(Arc::new(VecSourceFactory { batches: vec![] })),
        schema(),
    );
    let op = g.add_node("agg", "window", 2, add_one_factory(), schema());
    g.connect(src, op, Partitioning::Hash(vec![0]));
    let text = g.explain().expect("explain");
    assert!(text.contains("task 0 (parallelism 2)"), "{text}");
    assert!(text.contains("[0] src --hash[0]--> [1] agg"), "{text}");
}

/// One split: a batch, then idle, then another batch.
struct IdleThenActiveFactory;

struct IdleThenActive;

impl SourceFactory for IdleThenActiveFactory {
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn create(&self, _subtask: usize, _p: usize) -> Result<Box<dyn Source>> {
        Ok(Box::new(IdleThenActive))
    }
    fn describe(&self) -> String {
        "idle-then-active".into()
    }
}

#[async_trait]
impl Source for IdleThenActive {
    fn split_count(&self) -> usize {
        1
    }
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        ctx.emit(0, batch(&[(1, 10)])).await?;
        ctx.declare_idle().await?;
        ctx.emit(0, batch(&[(2, 3)])).await?;
        Ok(())
    }
}

#[tokio::test]
async fn an_input_active_again_after_idle_is_announced_downstream() {
    // src -> add_one (watermark = max v + 1 = 11 after both batches) ->
    // rebalance -> sink. After the idle status, the second batch brings the
    // watermark 11 again: not an advance, but the sink's task must hear it
    // so it counts its input as active again.
    let collected = Collected::default();
    let mut g = JobGraph::new();
    let src = g.add_node(
        "src",
        "",
        1,
        NodeKind::Source(Arc::new(IdleThenActiveFactory)),
        schema(),
    );
    let op = g.add_node("add_one", "", 1, add_one_factory(), schema());
    let sink = g.add_node(
        "sink",
        "",
        1,
        NodeKind::Sink(Arc::new(CollectSinkFactory {
            collected: collected.clone(),
            delay: Duration::ZERO,
        })),
        schema(),
    );
    g.connect(src, op, Partitioning::Forward);
    g.connect(op, sink, Partitioning::Rebalance);
    Job::new(g, JobConfig::default())
        .expect("job")
        .run()
        .await
        .expect("run");
    let rows = collected.rows.lock().clone();
    assert_eq!(rows, vec![(0, 1, 11), (0, 2, 4)]);
    let wms: Vec<i64> = collected.watermarks.lock().iter().map(|w| w.1).collect();
    assert_eq!(wms, vec![11, 11]);
}
