//! Sinks: the asynchronous output edge of a dataflow.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::error::Result;
use crate::message::EventTime;

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

    /// End of input: flush and close.
    async fn finish(&mut self) -> Result<()>;
}

/// Creates one sink instance per subtask.
pub trait SinkFactory: Send + Sync {
    /// Creates subtask `subtask` of `parallelism`.
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Sink>>;

    /// One line describing the sink for `explain`.
    fn describe(&self) -> String;
}
