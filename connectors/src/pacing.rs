//! What the generator sources (`nexmark`, `transactions`) share: the run
//! loops over a subtask's local splits (as fast as possible, or paced by
//! the wall clock, every batch emitted with its split's resume position),
//! and their checkpoint positions (`<prefix>/<split>` = a row number).

use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use weir_engine::source::{Source, SourceContext, SplitPosition};
use weir_engine::{Result, WeirError};

/// One generator split as the run loops drive it. A split's rows sit in
/// numbered "slots" (event numbers, or event time in units of the
/// generator's interval); pacing at `rate` makes slot `n` due `n / rate`
/// seconds after the start.
pub(crate) trait PacedSplit: Send {
    /// The next batch of at most `max_rows` rows among the slots below
    /// `due` (`f64::INFINITY`: all of them); `None` when nothing is due.
    fn next_due_batch(&mut self, max_rows: usize, due: f64) -> Result<Option<RecordBatch>>;

    /// The slot of the next row (`None`: the split is done).
    fn next_slot(&mut self) -> Option<f64>;

    /// Where to resume after the rows produced so far.
    fn position(&self) -> u64;

    /// Moves the split to a value of [`PacedSplit::position`].
    fn seek(&mut self, position: u64) -> Result<()>;
}

/// One subtask of a generator source: its local splits, run unpaced or at
/// `rate` events/s, checkpointed as `<prefix>/<split>` = a row number.
pub(crate) struct GeneratorSource<G> {
    /// The split-name prefix of checkpoint positions.
    pub(crate) prefix: String,
    /// What a position counts, for errors ("row offset").
    pub(crate) unit: &'static str,
    /// Events per second over all splits of the subtask; `None`: unpaced.
    pub(crate) rate: Option<f64>,
    /// Rows per batch at most.
    pub(crate) batch_size: usize,
    /// (global split index, split), in local split order.
    pub(crate) splits: Vec<(usize, G)>,
}

#[async_trait]
impl<G: PacedSplit> Source for GeneratorSource<G> {
    fn split_count(&self) -> usize {
        self.splits.len()
    }

    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        match self.rate {
            None => run_unpaced(&mut self.splits, self.batch_size, ctx).await,
            Some(rate) => run_paced(&mut self.splits, self.batch_size, rate, ctx).await,
        }
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    fn restore_positions(&mut self, positions: &[SplitPosition]) -> Result<()> {
        restore_split_positions(&mut self.splits, &self.prefix, self.unit, positions)
    }

    fn positions(&self) -> Vec<SplitPosition> {
        split_positions(&self.splits, &self.prefix)
    }
}

/// The positions of `splits` (global split index, split), named
/// `<prefix>/<index>`.
fn split_positions<G: PacedSplit>(splits: &[(usize, G)], prefix: &str) -> Vec<SplitPosition> {
    splits
        .iter()
        .map(|(k, g)| SplitPosition {
            split: format!("{prefix}/{k}"),
            position: g.position().to_string(),
        })
        .collect()
}

/// Seeks each split named in `positions` (as [`split_positions`] names
/// them) to its position; `unit` says what a position counts in errors. A
/// split this subtask does not read, or a position that is not a number,
/// is a state error.
fn restore_split_positions<G: PacedSplit>(
    splits: &mut [(usize, G)],
    prefix: &str,
    unit: &str,
    positions: &[SplitPosition],
) -> Result<()> {
    for p in positions {
        let Some((_, g)) = splits
            .iter_mut()
            .find(|(k, _)| format!("{prefix}/{k}") == p.split)
        else {
            return Err(WeirError::State(format!(
                "checkpointed split {} is not read by this subtask (were the splits changed?)",
                p.split
            )));
        };
        let position: u64 = p.position.parse().map_err(|_| {
            WeirError::State(format!(
                "checkpointed position '{}' of split {} is not a {unit}",
                p.position, p.split
            ))
        })?;
        g.seek(position)?;
    }
    Ok(())
}

/// Batches from the splits in turn until they are all exhausted.
async fn run_unpaced<G: PacedSplit>(
    splits: &mut [(usize, G)],
    batch_size: usize,
    ctx: &mut SourceContext,
) -> Result<()> {
    loop {
        let mut produced = false;
        for (local, (_, g)) in splits.iter_mut().enumerate() {
            if ctx.is_cancelled() {
                return Ok(());
            }
            if let Some(batch) = g.next_due_batch(batch_size, f64::INFINITY)? {
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

/// Emits rows as their slots fall due at `rate` slots per second, counted
/// from the first slot this run produces (0, or where a checkpoint
/// resumed), waking when the next row is due but at least 1 ms apart and
/// at least every 100 ms (to notice cancellation).
async fn run_paced<G: PacedSplit>(
    splits: &mut [(usize, G)],
    batch_size: usize,
    rate: f64,
    ctx: &mut SourceContext,
) -> Result<()> {
    let first = splits
        .iter_mut()
        .filter_map(|(_, g)| g.next_slot())
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
        let due = (start.elapsed().as_secs_f64() * rate).floor() + 1.0;
        let mut next: Option<f64> = None;
        for (local, (_, g)) in splits.iter_mut().enumerate() {
            while let Some(batch) = g.next_due_batch(batch_size, due)? {
                ctx.emit_at(local, batch, g.position()).await?;
                if ctx.is_cancelled() {
                    return Ok(());
                }
            }
            if let Some(slot) = g.next_slot() {
                next = Some(next.map_or(slot, |n| n.min(slot)));
            }
        }
        let Some(next) = next else {
            return Ok(());
        };
        let now = Instant::now();
        let due_at = start + Duration::from_secs_f64((next / rate).clamp(0.0, 1.0e9));
        let wake = due_at
            .max(now + Duration::from_millis(1))
            .min(now + Duration::from_millis(100));
        tokio::time::sleep_until(wake.into()).await;
        ctx.tick().await?;
    }
}
