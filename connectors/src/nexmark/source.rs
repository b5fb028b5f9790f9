//! The nexmark source: generator splits assigned to subtasks, unthrottled or
//! paced by the wall clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir_engine::source::{Source, SourceContext, SourceFactory, SplitPosition};
use weir_engine::{Result, WeirError};

use super::generator::{Params, SplitGenerator};
use super::options::NexmarkOptions;

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
            None => self.run_unthrottled(ctx).await,
            Some(rate) => self.run_throttled(ctx, rate).await,
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
                .find(|(k, _)| format!("nexmark-{}/{k}", self.table) == p.split)
            else {
                return Err(WeirError::State(format!(
                    "checkpointed split {} is not read by this subtask (were the splits changed?)",
                    p.split
                )));
            };
            let offset: u64 = p.position.parse().map_err(|_| {
                WeirError::State(format!(
                    "checkpointed position '{}' of split {} is not a row offset",
                    p.position, p.split
                ))
            })?;
            g.seek(offset)?;
        }
        Ok(())
    }

    fn positions(&self) -> Vec<SplitPosition> {
        self.generators
            .iter()
            .map(|(k, g)| SplitPosition {
                split: format!("nexmark-{}/{k}", self.table),
                position: g.position().to_string(),
            })
            .collect()
    }
}

impl NexmarkSource {
    /// Batches from the local splits in turn until they are all exhausted.
    async fn run_unthrottled(&mut self, ctx: &mut SourceContext) -> Result<()> {
        loop {
            let mut produced = false;
            for (local, (_, g)) in self.generators.iter_mut().enumerate() {
                if ctx.is_cancelled() {
                    return Ok(());
                }
                if let Some(batch) = g.next_batch(self.batch_size, u64::MAX)? {
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

    /// Emits each row when its event becomes due: event number `n` at
    /// `(n - first) / rate` seconds after the start, where `first` is the
    /// first event this run produces (0, or where a checkpoint resumed),
    /// waking at most every millisecond.
    async fn run_throttled(&mut self, ctx: &mut SourceContext, rate: f64) -> Result<()> {
        let first = self
            .generators
            .iter()
            .filter_map(|(_, g)| g.next_event_number())
            .min()
            .unwrap_or(0);
        let start = Instant::now() - Duration::from_secs_f64(first as f64 / rate);
        loop {
            if ctx.is_cancelled() {
                return Ok(());
            }
            let elapsed = start.elapsed().as_secs_f64();
            // Event n is due when n / rate <= elapsed.
            let limit = (elapsed * rate).floor().min(u64::MAX as f64 / 2.0) as u64 + 1;
            for (local, (_, g)) in self.generators.iter_mut().enumerate() {
                while let Some(batch) = g.next_batch(self.batch_size, limit)? {
                    ctx.emit_at(local, batch, g.position()).await?;
                    if ctx.is_cancelled() {
                        return Ok(());
                    }
                }
            }
            let next = self
                .generators
                .iter()
                .filter_map(|(_, g)| g.next_event_number())
                .min();
            let Some(next) = next else {
                return Ok(());
            };
            let now = Instant::now();
            let due = start + Duration::from_secs_f64((next as f64 / rate).min(1.0e9));
            // Wake when the next row is due, at least 1 ms from now, and at
            // least every 100 ms to notice cancellation.
            let wake = due
                .max(now + Duration::from_millis(1))
                .min(now + Duration::from_millis(100));
            tokio::time::sleep_until(wake.into()).await;
            ctx.tick().await?;
        }
    }
}
