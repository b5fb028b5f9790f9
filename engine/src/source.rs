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
#[derive(Debug, Clone, PartialEq, Eq)]
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
        }
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
        self.output.tick().await
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
