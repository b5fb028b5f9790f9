//! The transactions source: generator splits (account ranges) assigned to
//! subtasks, unpaced or paced by the wall clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir_engine::source::{Source, SourceContext, SourceFactory, SplitPosition};
use weir_engine::{Result, WeirError};

use super::generator::{Params, SplitGenerator};
use super::options::TransactionsOptions;

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
        Ok(Box::new(TransactionsSource {
            rate: self.options.events_rate,
            batch_size: self.options.batch_size,
            generators,
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

/// One subtask of a transactions source.
struct TransactionsSource {
    rate: Option<f64>,
    batch_size: usize,
    /// (global split index, generator), in local split order.
    generators: Vec<(usize, SplitGenerator)>,
}

#[async_trait]
impl Source for TransactionsSource {
    fn split_count(&self) -> usize {
        self.generators.len()
    }

    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        match self.rate {
            None => self.run_unpaced(ctx).await,
            Some(rate) => self.run_paced(ctx, rate).await,
        }
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    fn restore_positions(&mut self, positions: &[SplitPosition]) -> Result<()> {
        for p in positions {
            let Some((_, g)) = self
                .generators
                .iter_mut()
                .find(|(k, _)| format!("transactions/{k}") == p.split)
            else {
                return Err(WeirError::State(format!(
                    "checkpointed split {} is not read by this subtask (were the splits changed?)",
                    p.split
                )));
            };
            let rows: u64 = p.position.parse().map_err(|_| {
                WeirError::State(format!(
                    "checkpointed position '{}' of split {} is not a row count",
                    p.position, p.split
                ))
            })?;
            g.seek(rows)?;
        }
        Ok(())
    }

    fn positions(&self) -> Vec<SplitPosition> {
        self.generators
            .iter()
            .map(|(k, g)| SplitPosition {
                split: format!("transactions/{k}"),
                position: g.position().to_string(),
            })
            .collect()
    }
}

impl TransactionsSource {
    /// Batches from the local splits in turn until they are all exhausted.
    async fn run_unpaced(&mut self, ctx: &mut SourceContext) -> Result<()> {
        loop {
            let mut produced = false;
            for (local, (_, g)) in self.generators.iter_mut().enumerate() {
                if ctx.is_cancelled() {
                    return Ok(());
                }
                if let Some(batch) = g.next_batch(self.batch_size, i64::MAX)? {
                    produced = true;
                    ctx.emit_at(local, batch, g.position()).await?;
                }
            }
            if !produced {
                return Ok(());
            }
            tokio::task::consume_budget().await;
        }
    }

    /// Emits rows as their slots fall due: the row at slot `n`'s event
    /// time `(n - first) / rate` seconds after the start, where `first` is
    /// the slot of the first row this run produces (0, or where a
    /// checkpoint resumed), waking at most every millisecond.
    async fn run_paced(&mut self, ctx: &mut SourceContext, rate: f64) -> Result<()> {
        let first = self
            .generators
            .iter_mut()
            .filter_map(|(_, g)| g.next_time().map(|t| g.slot_of(t)))
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.min(s))))
            .unwrap_or(0.0)
            .max(0.0);
        let now = Instant::now();
        let start = now
            .checked_sub(Duration::from_secs_f64((first / rate).clamp(0.0, 1.0e9)))
            .unwrap_or(now);
        loop {
            if ctx.is_cancelled() {
                return Ok(());
            }
            let due_slots = (start.elapsed().as_secs_f64() * rate).floor() + 1.0;
            let mut next: Option<f64> = None;
            for (local, (_, g)) in self.generators.iter_mut().enumerate() {
                let limit = g.slot_time(due_slots);
                while let Some(batch) = g.next_batch(self.batch_size, limit)? {
                    ctx.emit_at(local, batch, g.position()).await?;
                    if ctx.is_cancelled() {
                        return Ok(());
                    }
                }
                if let Some(t) = g.next_time() {
                    let slot = g.slot_of(t);
                    next = Some(next.map_or(slot, |n| n.min(slot)));
                }
            }
            let Some(next) = next else {
                return Ok(());
            };
            let now = Instant::now();
            let due = start + Duration::from_secs_f64((next / rate).clamp(0.0, 1.0e9));
            let wake = due
                .max(now + Duration::from_millis(1))
                .min(now + Duration::from_millis(100));
            tokio::time::sleep_until(wake.into()).await;
            ctx.tick().await?;
        }
    }
}
