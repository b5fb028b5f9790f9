//! The nexmark source: generator splits assigned to subtasks, unthrottled or
//! paced by the wall clock.

use arrow::record_batch::RecordBatch;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use weir_engine::source::{Source, SourceFactory};
use weir_engine::Result;

use super::generator::{Params, SplitGenerator};
use super::options::NexmarkOptions;
use crate::pacing::{GeneratorSource, PacedSplit};

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
        Ok(Box::new(GeneratorSource {
            prefix: format!("nexmark-{}", self.options.table.name()),
            unit: "row offset",
            rate: self.options.events_rate,
            batch_size: self.options.batch_size,
            splits: generators,
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
