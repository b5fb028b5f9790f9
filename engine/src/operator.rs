//! The operator trait: the synchronous hot path of a dataflow.
//!
//! An operator receives Arrow batches and watermarks from the runtime and
//! emits batches and watermarks into a [`Collector`]. Only
//! [`Operator::process_batch`] is required; the rest have defaults that suit
//! a stateless operator:
//!
//! - watermarks are forwarded unchanged,
//! - snapshots are empty and restoring a non-empty state is an error,
//! - end of input emits nothing.
//!
//! Operators in a chain call each other through the collector: the runtime
//! drains one operator's collector into the next operator, with no queue or
//! task switch between them. An operator must not block: CPU-bound work is
//! fine, I/O belongs in sources and sinks.

use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;

use crate::error::{Result, WeirError};
use crate::message::{EventTime, Watermark};
use crate::metrics::OperatorMetrics;
use crate::state::OperatorState;

/// What an operator emits: a batch or a watermark status.
#[derive(Debug, Clone)]
pub enum Output {
    /// A batch of rows.
    Batch(RecordBatch),
    /// Event-time progress, or idleness.
    Watermark(Watermark),
}

/// Where an operator writes its output.
#[derive(Debug, Default)]
pub struct Collector {
    out: Vec<Output>,
}

impl Collector {
    /// A new, empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Emits a batch (empty batches are dropped).
    pub fn collect(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.out.push(Output::Batch(batch));
        }
    }

    /// Emits a watermark.
    pub fn emit_watermark(&mut self, watermark: EventTime) {
        self.out
            .push(Output::Watermark(Watermark::EventTime(watermark)));
    }

    /// Declares the output idle: it must not hold back downstream
    /// watermarks until the next watermark or batch. Used by watermark
    /// assigners when every split is idle; the runtime forwards it past
    /// the operators chained after.
    pub fn emit_idle(&mut self) {
        self.out.push(Output::Watermark(Watermark::Idle));
    }

    /// Takes everything emitted so far.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Output> {
        self.out.drain(..)
    }

    /// True if nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Takes everything emitted so far as a vector.
    pub fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }
}

/// What the runtime tells an operator about where and when it runs.
#[derive(Debug, Clone)]
pub struct OperatorContext {
    /// Name of the dataflow node.
    pub node: String,
    /// This subtask's index, `0..parallelism`.
    pub subtask: usize,
    /// Number of subtasks of this node.
    pub parallelism: usize,
    /// For operators chained to a source: the source split the current batch
    /// came from (Kafka partition, Kinesis shard, generator range), as an
    /// index into the splits this subtask reads. `None` otherwise.
    pub split: Option<usize>,
    /// Number of splits the chained source reads in this subtask (0 when not
    /// chained to a source).
    pub split_count: usize,
    /// Index of the input the current batch came from (operators with several inputs).
    pub input: usize,
    /// The current input watermark (`None` before the first one).
    pub watermark: Option<EventTime>,
    /// This subtask's metrics.
    pub metrics: Arc<OperatorMetrics>,
}

impl OperatorContext {
    /// A context for tests and for running an operator outside a job.
    pub fn standalone(node: &str) -> Self {
        Self {
            node: node.to_string(),
            subtask: 0,
            parallelism: 1,
            split: None,
            split_count: 0,
            input: 0,
            watermark: None,
            metrics: Arc::new(OperatorMetrics::new(node, 0)),
        }
    }
}

/// A dataflow operator. See the [module docs](self) for the contract.
pub trait Operator: Send {
    /// Processes one batch of input rows.
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()>;

    /// Called when the input watermark advances to `watermark` (the minimum
    /// over all inputs). Operators that fire timers (windows) emit their
    /// results first and then forward the watermark. The default forwards it.
    fn on_watermark(
        &mut self,
        watermark: EventTime,
        _ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        out.emit_watermark(watermark);
        Ok(())
    }

    /// Called periodically in processing time (about every 100 ms), also
    /// when no data arrives. Used for idleness detection. Default: nothing.
    fn on_tick(
        &mut self,
        _now: Instant,
        _ctx: &mut OperatorContext,
        _out: &mut Collector,
    ) -> Result<()> {
        Ok(())
    }

    /// Called when every input has ended, after the final watermark. An
    /// operator flushes what it still holds (open windows fire). Default: nothing.
    fn on_end(&mut self, _ctx: &mut OperatorContext, _out: &mut Collector) -> Result<()> {
        Ok(())
    }

    /// Writes this operator's state. Stateful operators MUST override this
    /// and [`Operator::restore`]. Default: empty state.
    fn snapshot(&mut self) -> Result<OperatorState> {
        Ok(OperatorState::empty())
    }

    /// Restores state written by [`Operator::snapshot`] into a freshly
    /// created operator. Default: accepts only an empty state.
    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(WeirError::State(
                "a stateless operator was given state to restore".into(),
            ))
        }
    }
}

/// Creates one operator instance per subtask.
pub trait OperatorFactory: Send + Sync {
    /// Creates the operator of subtask `subtask` of `parallelism`.
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Operator>>;
}

impl<F> OperatorFactory for F
where
    F: Fn(usize, usize) -> Result<Box<dyn Operator>> + Send + Sync,
{
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Operator>> {
        self(subtask, parallelism)
    }
}
