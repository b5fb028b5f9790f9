//! Sources: the asynchronous input edge of a dataflow.
//!
//! A source subtask owns a set of *splits* (Kafka partitions, Kinesis shards,
//! file ranges, generator ranges), chosen by Weir from the subtask index so
//! that no rebalance can surprise it. It reads them and hands batches to its
//! [`SourceContext`], naming the split each batch came from; per-split
//! watermarks are derived from that by the watermark assigner chained after
//! the source. A source reports its position per split so that a checkpoint
//! can store it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::error::Result;
use crate::metrics::OperatorMetrics;

/// The position of a source in one split, as stored in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitPosition {
    /// Split identifier (e.g. `bids/3` for partition 3 of topic bids).
    pub split: String,
    /// Position within the split (offset, sequence number, row index), exact.
    pub position: String,
}

/// A record a source could not decode: counted and reported with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRecord {
    /// Where it was (e.g. `bids.json:17`, `bids/3@1234`).
    pub location: String,
    /// Why it could not be decoded.
    pub reason: String,
}

/// Where a source sends what it reads. The runtime implements it by pushing
/// batches through the chained operators; tests can collect them.
#[async_trait]
pub trait SourceOutput: Send {
    /// Delivers a batch read from local split `split`. Awaiting it is how
    /// back-pressure reaches the source.
    async fn batch(&mut self, split: usize, batch: RecordBatch) -> Result<()>;

    /// Gives the chain a chance to run processing-time work (idleness)
    /// when the source has nothing to deliver.
    async fn tick(&mut self) -> Result<()> {
        Ok(())
    }

    /// Declares this source subtask idle downstream (it has no splits).
    async fn idle(&mut self) -> Result<()> {
        Ok(())
    }

    /// Checkpoint barrier `id`: snapshot the chain at this point, with the
    /// source at `positions`, and send the barrier downstream.
    async fn barrier(&mut self, _id: u64, _positions: Vec<SplitPosition>) -> Result<()> {
        Ok(())
    }

    /// Called by the runtime once the source has returned: flush what the
    /// chain holds and signal end of stream downstream.
    async fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The handle a running source uses to emit data and report problems.
pub struct SourceContext {
    subtask: usize,
    parallelism: usize,
    output: Box<dyn SourceOutput>,
    metrics: Arc<OperatorMetrics>,
    cancelled: Arc<AtomicBool>,
    malformed_log_limit: u64,
    checkpoint: Option<SourceCheckpointing>,
}

/// Barrier injection state of a source subtask.
struct SourceCheckpointing {
    /// The latest checkpoint the coordinator asked for.
    trigger: tokio::sync::watch::Receiver<u64>,
    /// The latest barrier injected.
    injected: u64,
    /// The position of every local split after the last emitted batch.
    positions: Vec<SplitPosition>,
    /// The latest checkpoint completed by the coordinator (`None`: the
    /// source is not told, see [`SourceContext::track_completion`]).
    completed: Option<tokio::sync::watch::Receiver<u64>>,
    /// Barriers injected whose checkpoints have not completed yet, with the
    /// positions they carried (oldest first, at most [`MAX_PENDING`]).
    pending: std::collections::VecDeque<(u64, Vec<SplitPosition>)>,
}

/// Injected barriers remembered for completion notices: a checkpoint that
/// never completes (dropped on cancellation) cannot make the list grow.
const MAX_PENDING: usize = 16;

/// A checkpoint that completed, with the positions this source subtask had
/// when it injected the checkpoint's barrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    /// Checkpoint id.
    pub id: u64,
    /// The positions the barrier carried (one per local split, or as
    /// reported by [`SourceContext::report_positions`]).
    pub positions: Vec<SplitPosition>,
}

impl SourceContext {
    /// Creates a context (used by the runtime and by tests).
    pub fn new(
        subtask: usize,
        parallelism: usize,
        output: Box<dyn SourceOutput>,
        metrics: Arc<OperatorMetrics>,
        cancelled: Arc<AtomicBool>,
    ) -> Self {
        Self {
            subtask,
            parallelism,
            output,
            metrics,
            cancelled,
            malformed_log_limit: 100,
            checkpoint: None,
        }
    }

    /// Turns on barrier injection (used by the runtime): barriers are
    /// injected for checkpoints published on `trigger`, with the source at
    /// `positions` (one per local split, as of now) and then as reported by
    /// [`SourceContext::emit_at`].
    pub fn enable_checkpoints(
        &mut self,
        trigger: tokio::sync::watch::Receiver<u64>,
        positions: Vec<SplitPosition>,
    ) {
        let injected = *trigger.borrow();
        self.checkpoint = Some(SourceCheckpointing {
            trigger,
            injected,
            positions,
            completed: None,
            pending: std::collections::VecDeque::new(),
        });
    }

    /// Lets the source learn which of its barriers' checkpoints completed
    /// (through [`SourceContext::completed_checkpoint`]), e.g. to commit
    /// the checkpointed offsets to a Kafka consumer group as Flink does.
    /// `completed` carries the latest completed checkpoint id. Call it
    /// after [`SourceContext::enable_checkpoints`].
    pub fn track_completion(&mut self, completed: tokio::sync::watch::Receiver<u64>) {
        if let Some(c) = self.checkpoint.as_mut() {
            c.completed = Some(completed);
        }
    }

    /// True when checkpoints are on: the job's state and this source's
    /// positions are stored by checkpoints.
    pub fn checkpointing(&self) -> bool {
        self.checkpoint.is_some()
    }

    /// The newest checkpoint that completed since the last call and whose
    /// barrier this subtask injected, with the positions it stored; older
    /// completed ones are skipped (the newest includes their progress).
    /// `None` without news, or when completion is not tracked.
    pub fn completed_checkpoint(&mut self) -> Option<CompletedCheckpoint> {
        let c = self.checkpoint.as_mut()?;
        let completed = c.completed.as_mut()?;
        if !completed.has_changed().unwrap_or(false) {
            return None;
        }
        let done = *completed.borrow_and_update();
        let mut newest = None;
        while c.pending.front().is_some_and(|(id, _)| *id <= done) {
            newest = c.pending.pop_front();
        }
        newest.map(|(id, positions)| CompletedCheckpoint { id, positions })
    }

    /// Emits a batch read from local split `split`, after which the split
    /// is at `position` (the position to resume from: next offset, next
    /// row). Sources that support checkpoints emit through this method; a
    /// checkpoint barrier may be injected right after the batch.
    pub async fn emit_at(
        &mut self,
        split: usize,
        batch: RecordBatch,
        position: impl ToString,
    ) -> Result<()> {
        self.emit(split, batch).await?;
        if let Some(c) = self.checkpoint.as_mut() {
            if let Some(p) = c.positions.get_mut(split) {
                p.position = position.to_string();
            }
        }
        self.maybe_inject_barrier().await
    }

    /// Replaces the positions of the source as a whole, for sources whose
    /// positions are not one per local split (Kinesis reads shards that
    /// come and go through a fixed set of splits); a checkpoint barrier may
    /// be injected right after. Call it after emitting the batches the
    /// positions include.
    pub async fn report_positions(&mut self, positions: Vec<SplitPosition>) -> Result<()> {
        if let Some(c) = self.checkpoint.as_mut() {
            c.positions = positions;
        }
        self.maybe_inject_barrier().await
    }

    async fn maybe_inject_barrier(&mut self) -> Result<()> {
        let Some(c) = self.checkpoint.as_mut() else {
            return Ok(());
        };
        let id = *c.trigger.borrow();
        if id <= c.injected {
            return Ok(());
        }
        c.injected = id;
        let positions = c.positions.clone();
        if c.completed.is_some() {
            if c.pending.len() == MAX_PENDING {
                c.pending.pop_front();
            }
            c.pending.push_back((id, positions.clone()));
        }
        self.output.barrier(id, positions).await
    }

    /// This subtask's index.
    pub fn subtask(&self) -> usize {
        self.subtask
    }

    /// Number of subtasks of this source.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// Emits a batch read from local split `split`.
    pub async fn emit(&mut self, split: usize, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.metrics.record_out(batch.num_rows());
        self.output.batch(split, batch).await
    }

    /// Lets processing-time work run while the source waits for data.
    pub async fn tick(&mut self) -> Result<()> {
        self.output.tick().await?;
        self.maybe_inject_barrier().await
    }

    /// Counts a malformed record and logs it with its position (the first
    /// hundred per subtask in full, then every thousandth).
    pub fn report_malformed(&self, record: MalformedRecord) {
        let n = self
            .metrics
            .malformed_records
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if n <= self.malformed_log_limit || n.is_multiple_of(1000) {
            tracing::warn!(
                location = %record.location,
                reason = %record.reason,
                count = n,
                "malformed record skipped"
            );
        }
    }

    /// True once the job is being cancelled: a source should return soon.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Declares this subtask idle downstream: it reads no split, so it must
    /// not hold back the watermark of the operators after it.
    pub async fn declare_idle(&mut self) -> Result<()> {
        self.output.idle().await
    }

    /// Signals the end of this source's input to everything downstream
    /// (the runtime calls this after [`Source::run`] returns).
    pub async fn end(&mut self) -> Result<()> {
        self.output.end().await
    }

    /// This source subtask's metrics.
    pub fn metrics(&self) -> &Arc<OperatorMetrics> {
        &self.metrics
    }

    /// Shows a condition in the progress line (a broker being retried, a
    /// throttled shard) until cleared with `None`.
    pub fn set_status(&self, status: Option<String>) {
        self.metrics.set_status(status);
    }
}

/// A running source subtask.
#[async_trait]
pub trait Source: Send {
    /// Number of splits this subtask reads (known after creation).
    fn split_count(&self) -> usize;

    /// Reads until the input ends (bounded sources) or the job is cancelled.
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()>;

    /// Current position per split, for checkpoints. Default: none.
    fn positions(&self) -> Vec<SplitPosition> {
        Vec::new()
    }

    /// True if the source can take part in checkpoints: it reports exact
    /// positions through [`SourceContext::emit_at`] (or
    /// [`SourceContext::report_positions`]) and resumes from them
    /// in [`Source::restore_positions`]. Default: false (the runtime then
    /// refuses to run the job with checkpoints).
    fn supports_checkpoints(&self) -> bool {
        false
    }

    /// Moves the source to positions stored by a checkpoint (called once,
    /// before [`Source::run`]; the runtime restores every subtask of a
    /// source before any of them runs). Default: an error.
    fn restore_positions(&mut self, _positions: &[SplitPosition]) -> Result<()> {
        Err(crate::WeirError::State(
            "this source cannot resume from checkpointed positions".into(),
        ))
    }
}

/// Creates one source instance per subtask.
pub trait SourceFactory: Send + Sync {
    /// The schema of the batches the source emits.
    fn schema(&self) -> SchemaRef;

    /// Creates subtask `subtask` of `parallelism`; the factory decides which
    /// splits it reads.
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>>;

    /// One line describing the source for `explain`.
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    /// Counts the barriers it is given.
    struct Barriers(Arc<parking_lot::Mutex<Vec<u64>>>);

    #[async_trait]
    impl SourceOutput for Barriers {
        async fn batch(&mut self, _split: usize, _batch: RecordBatch) -> Result<()> {
            Ok(())
        }

        async fn barrier(&mut self, id: u64, _positions: Vec<SplitPosition>) -> Result<()> {
            self.0.lock().push(id);
            Ok(())
        }
    }

    fn one_row() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1]))])
            .expect("a valid batch")
    }

    fn position(p: &str) -> Vec<SplitPosition> {
        vec![SplitPosition {
            split: "t/0".into(),
            position: p.into(),
        }]
    }

    #[tokio::test]
    async fn a_completed_checkpoint_gives_the_positions_its_barrier_carried() -> Result<()> {
        let barriers = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut ctx = SourceContext::new(
            0,
            1,
            Box::new(Barriers(barriers.clone())),
            Arc::new(OperatorMetrics::new("s", 0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (trigger, trigger_rx) = tokio::sync::watch::channel(0u64);
        let (completed, completed_rx) = tokio::sync::watch::channel(0u64);
        ctx.enable_checkpoints(trigger_rx, position("0"));
        ctx.track_completion(completed_rx);
        assert!(ctx.checkpointing());

        ctx.emit_at(0, one_row(), 10).await?;
        trigger.send(1).ok();
        ctx.emit_at(0, one_row(), 20).await?; // barrier 1 at 20
        ctx.emit_at(0, one_row(), 30).await?;
        trigger.send(2).ok();
        ctx.tick().await?; // barrier 2 at 30
        trigger.send(3).ok();
        ctx.emit_at(0, one_row(), 40).await?; // barrier 3 at 40
        assert_eq!(*barriers.lock(), vec![1, 2, 3]);
        assert_eq!(ctx.completed_checkpoint(), None, "nothing completed yet");

        completed.send(1).ok();
        let got = ctx.completed_checkpoint();
        assert_eq!(
            got,
            Some(CompletedCheckpoint {
                id: 1,
                positions: position("20")
            })
        );
        assert_eq!(ctx.completed_checkpoint(), None, "told once");

        // 2 and 3 complete before the source looks: only the newest counts.
        completed.send(2).ok();
        completed.send(3).ok();
        let got = ctx.completed_checkpoint();
        assert_eq!(
            got,
            Some(CompletedCheckpoint {
                id: 3,
                positions: position("40")
            })
        );
        assert_eq!(ctx.completed_checkpoint(), None);
        Ok(())
    }

    #[tokio::test]
    async fn without_tracking_no_completion_is_reported() -> Result<()> {
        let barriers = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut ctx = SourceContext::new(
            0,
            1,
            Box::new(Barriers(barriers.clone())),
            Arc::new(OperatorMetrics::new("s", 0)),
            Arc::new(AtomicBool::new(false)),
        );
        assert!(!ctx.checkpointing());
        let (trigger, trigger_rx) = tokio::sync::watch::channel(0u64);
        ctx.enable_checkpoints(trigger_rx, position("0"));
        trigger.send(1).ok();
        ctx.emit_at(0, one_row(), 5).await?;
        assert_eq!(*barriers.lock(), vec![1]);
        assert_eq!(ctx.completed_checkpoint(), None);
        Ok(())
    }
}
