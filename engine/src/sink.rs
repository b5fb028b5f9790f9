//! Sinks: the asynchronous output edge of a dataflow.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::error::Result;
use crate::message::EventTime;
use crate::state::OperatorState;

/// A running sink subtask.
///
/// The runtime calls [`Sink::write_batch`] for every batch, [`Sink::on_barrier`]
/// when a checkpoint barrier arrives (flush / pre-commit), and
/// [`Sink::finish`] exactly once at the end of input, after which the sink
/// must have made everything durable. Errors are job errors: a sink retries
/// what it can retry before returning one, and never drops data silently.
#[async_trait]
pub trait Sink: Send {
    /// Writes a batch.
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()>;

    /// Informs the sink of watermark progress. Default: nothing.
    async fn on_watermark(&mut self, _watermark: EventTime) -> Result<()> {
        Ok(())
    }

    /// A checkpoint barrier arrived: flush and pre-commit. Default: nothing.
    async fn on_barrier(&mut self, _checkpoint_id: u64) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id`: make everything written so far durable
    /// but not yet visible (two-phase commit, phase one) and return what a
    /// restart needs to finish or discard it. Default: `on_barrier` and an
    /// empty state (an at-least-once sink).
    async fn pre_commit(&mut self, checkpoint_id: u64) -> Result<OperatorState> {
        self.on_barrier(checkpoint_id).await?;
        Ok(OperatorState::empty())
    }

    /// Checkpoint `checkpoint_id` is complete: publish everything
    /// pre-committed up to it (phase two). Must be idempotent. Default: nothing.
    async fn commit(&mut self, _checkpoint_id: u64) -> Result<()> {
        Ok(())
    }

    /// End of input: flush and close.
    async fn finish(&mut self) -> Result<()>;
}

/// What a sink subtask resumes from when its job restarts from a checkpoint.
#[derive(Debug, Clone)]
pub struct SinkRecovery {
    /// The checkpoint restored.
    pub checkpoint_id: u64,
    /// The state the sink's `pre_commit` returned for it.
    pub state: OperatorState,
}

/// Creates one sink instance per subtask.
pub trait SinkFactory: Send + Sync {
    /// Creates subtask `subtask` of `parallelism`.
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Sink>>;

    /// One line describing the sink for `explain`.
    fn describe(&self) -> String;

    /// Creates subtask `subtask` for a job with checkpoints: the sink
    /// should write so that `pre_commit`/`commit` give exactly-once output,
    /// and, when `recovery` is given, first commit what that checkpoint
    /// pre-committed and discard what came after it. Default: `create`
    /// (the sink is at-least-once).
    fn create_checkpointed(
        &self,
        subtask: usize,
        parallelism: usize,
        _recovery: Option<SinkRecovery>,
    ) -> Result<Box<dyn Sink>> {
        self.create(subtask, parallelism)
    }

    /// True if `create_checkpointed` gives exactly-once output.
    fn exactly_once(&self) -> bool {
        false
    }
}
