//! The nexmark source: generator splits assigned to subtasks, unthrottled or
//! paced by the wall clock.

use arrow::record_batch::RecordBatch;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir_engine::source::{Source, SourceContext, SourceFactory, SplitPosition};
use weir_engine::Result;

use super::generator::{Params, SplitGenerator};
use super::options::NexmarkOptions;
use crate::pacing::{restore_split_positions, run_paced, run_unpaced, split_positions, PacedSplit};

/// Creates nexmark source subtasks for one table.
pub struct NexmarkSourceFactory {
    options: Arc<NexmarkOptions>,
    params: Arc<Params>,
    schema: SchemaRef,
    columns: Arc<[usize]>,
}

impl NexmarkSourceFactory {
    pub(crate) fn new(
        options: NexmarkOptions,
        params: Params,
        schema: SchemaRef,
        columns: Vec<usize>,
    ) -> Self {
        Self {
            options: Arc::new(options),
            params: Arc::new(params),
            schema,
            columns: columns.into(),
        }
    }

    /// The parsed options.
    pub fn options(&self) -> &NexmarkOptions {
        &self.options
    }
}

impl SourceFactory for NexmarkSourceFactory {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        let parallelism = parallelism.max(1);
        let splits = self.options.splits.unwrap_or(parallelism);
        let generators: Vec<(usize, SplitGenerator)> = (0..splits)
            .filter(|k| k % parallelism == subtask)
            .map(|k| {
                (
                    k,
                    SplitGenerator::new(
                        &self.options,
                        self.params.clone(),
                        self.schema.clone(),
                        self.columns.clone(),
                        k,
                        splits,
                    ),
                )
            })
            .collect();
        Ok(Box::new(NexmarkSource {
            table: self.options.table.name(),
            rate: self.options.events_rate,
            batch_size: self.options.batch_size,
            generators,
        }))
    }

    fn describe(&self) -> String {
        let o = &self.options;
        let bound = match o.events_num {
            Some(n) => format!("{n} events"),
            None => "unbounded".into(),
        };
        let rate = match o.events_rate {
            Some(r) => format!(", {r} events/s"),
            None => String::new(),
        };
        let splits = match o.splits {
            Some(s) => format!(", {s} splits"),
            None => String::new(),
        };
        format!(
            "nexmark {} ({} columns, {bound}{rate}{splits})",
            o.table.name(),
            self.schema.fields().len()
        )
    }
}

/// One subtask of a nexmark source.
struct NexmarkSource {
    table: &'static str,
    rate: Option<f64>,
    batch_size: usize,
    /// (global split index, generator), in local split order.
    generators: Vec<(usize, SplitGenerator)>,
}

#[async_trait]
impl Source for NexmarkSource {
    fn split_count(&self) -> usize {
        self.generators.len()
    }

    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        match self.rate {
            None => run_unpaced(&mut self.generators, self.batch_size, ctx).await,
            Some(rate) => run_paced(&mut self.generators, self.batch_size, rate, ctx).await,
        }
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    fn restore_positions(&mut self, positions: &[SplitPosition]) -> Result<()> {
        let prefix = format!("nexmark-{}", self.table);
        restore_split_positions(&mut self.generators, &prefix, "row offset", positions)
    }

    fn positions(&self) -> Vec<SplitPosition> {
        split_positions(&self.generators, &format!("nexmark-{}", self.table))
    }
}

impl PacedSplit for SplitGenerator {
    /// Slots are event numbers.
    fn next_due_batch(&mut self, max_rows: usize, due: f64) -> Result<Option<RecordBatch>> {
        let limit = if due.is_finite() {
            due.clamp(0.0, u64::MAX as f64 / 2.0) as u64
        } else {
            u64::MAX
        };
        self.next_batch(max_rows, limit)
    }

    fn next_slot(&mut self) -> Option<f64> {
        self.next_event_number().map(|n| n as f64)
    }

    fn position(&self) -> u64 {
        SplitGenerator::position(self)
    }

    fn seek(&mut self, position: u64) -> Result<()> {
        SplitGenerator::seek(self, position)
    }
}
