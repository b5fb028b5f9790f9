//! The transactions source: generator splits (account ranges) assigned to
//! subtasks, unpaced or paced by the wall clock.

use arrow::record_batch::RecordBatch;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use weir_engine::source::{Source, SourceFactory};
use weir_engine::{Result, WeirError};

use super::generator::{Params, SplitGenerator};
use super::options::TransactionsOptions;
use crate::pacing::{GeneratorSource, PacedSplit};

/// Creates transactions source subtasks for one table.
pub struct TransactionsSourceFactory {
    options: Arc<TransactionsOptions>,
    params: Arc<Params>,
    schema: SchemaRef,
    columns: Arc<[usize]>,
}

impl TransactionsSourceFactory {
    pub(crate) fn new(
        options: TransactionsOptions,
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
    pub fn options(&self) -> &TransactionsOptions {
        &self.options
    }

    /// Event time of one cycle: every card transacts once per cycle (ms).
    pub fn card_period_ms(&self) -> i64 {
        self.params.period_ms()
    }
}

impl SourceFactory for TransactionsSourceFactory {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        let parallelism = parallelism.max(1);
        let splits = self.options.splits.unwrap_or(parallelism);
        if splits as u64 > self.options.accounts {
            return Err(WeirError::Config(format!(
                "transactions: {splits} splits for {} accounts: each split needs an account \
                 (set 'splits' or raise 'accounts')",
                self.options.accounts
            )));
        }
        let generators = (0..splits)
            .filter(|k| k % parallelism == subtask)
            .map(|k| {
                (
                    k,
                    SplitGenerator::new(
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
            prefix: "transactions".into(),
            unit: "row count",
            rate: self.options.events_rate,
            batch_size: self.options.batch_size,
            splits: generators,
        }))
    }

    fn describe(&self) -> String {
        let o = &self.options;
        let bound = match o.events_num {
            Some(n) => format!("{n} slots"),
            None => "unbounded".into(),
        };
        let rate = match o.events_rate {
            Some(r) => format!(", {r} events/s"),
            None => String::new(),
        };
        format!(
            "transactions ({} columns, {bound}{rate}, {} accounts × {} cards, seed {})",
            self.schema.fields().len(),
            o.accounts,
            o.cards_per_account,
            o.seed
        )
    }
}

impl PacedSplit for SplitGenerator {
    /// Slots are event times in units of the generator's interval.
    fn next_due_batch(&mut self, max_rows: usize, due: f64) -> Result<Option<RecordBatch>> {
        let limit = if due.is_finite() {
            self.slot_time(due)
        } else {
            i64::MAX
        };
        self.next_batch(max_rows, limit)
    }

    fn next_slot(&mut self) -> Option<f64> {
        self.next_time().map(|t| self.slot_of(t))
    }

    fn position(&self) -> u64 {
        SplitGenerator::position(self)
    }

    fn seek(&mut self, position: u64) -> Result<()> {
        SplitGenerator::seek(self, position)
    }
}
