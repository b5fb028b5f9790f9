//! Helpers shared by the integration tests: a collecting source output and
//! a way to run a source subtask to its end.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use weir_connectors::TableDescriptor;
use weir_engine::metrics::OperatorMetrics;
use weir_engine::source::{SourceContext, SourceFactory, SourceOutput, SplitPosition};
use weir_engine::{Result, WeirError};

/// Batches a source emitted, with their local split.
pub type Emitted = Arc<Mutex<Vec<(usize, RecordBatch)>>>;

/// A source output that keeps every batch; optionally sets the cancel flag
/// after `cancel_after` batches.
pub struct Collect {
    pub batches: Emitted,
    pub cancel: Option<(usize, Arc<AtomicBool>)>,
}

#[async_trait]
impl SourceOutput for Collect {
    async fn batch(&mut self, split: usize, batch: RecordBatch) -> Result<()> {
        let mut b = self
            .batches
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?;
        b.push((split, batch));
        if let Some((n, flag)) = &self.cancel {
            if b.len() >= *n {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// What running a source subtask produced.
pub struct Run {
    pub batches: Vec<(usize, RecordBatch)>,
    pub metrics: Arc<OperatorMetrics>,
    pub result: Result<()>,
    pub split_count: usize,
}

/// Runs subtask `subtask` of `parallelism` to its end.
pub async fn run_source(
    factory: &dyn SourceFactory,
    subtask: usize,
    parallelism: usize,
) -> Result<Run> {
    run_source_cancelling(factory, subtask, parallelism, None).await
}

/// Runs a source subtask, cancelling it after `cancel_after` batches.
pub async fn run_source_cancelling(
    factory: &dyn SourceFactory,
    subtask: usize,
    parallelism: usize,
    cancel_after: Option<usize>,
) -> Result<Run> {
    let mut source = factory.create(subtask, parallelism)?;
    let batches: Emitted = Arc::default();
    let cancelled = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(OperatorMetrics::new("t", subtask));
    let collect = Collect {
        batches: batches.clone(),
        cancel: cancel_after.map(|n| (n, cancelled.clone())),
    };
    let mut ctx = SourceContext::new(
        subtask,
        parallelism,
        Box::new(collect),
        metrics.clone(),
        cancelled,
    );
    let result = source.run(&mut ctx).await;
    let batches = std::mem::take(
        &mut *batches
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?,
    );
    Ok(Run {
        batches,
        metrics,
        result,
        split_count: source.split_count(),
    })
}

/// A table descriptor.
pub fn table(name: &str, schema: SchemaRef, options: &[(&str, &str)]) -> TableDescriptor {
    let options: BTreeMap<String, String> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TableDescriptor::new(name, schema, options)
}

/// Every row of `batches` as text (`v1|v2|…`, NULL as `∅`), in order.
pub fn rows<'a>(batches: impl IntoIterator<Item = &'a RecordBatch>) -> Result<Vec<String>> {
    let options = FormatOptions::default().with_null("∅");
    let mut out = Vec::new();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for r in 0..b.num_rows() {
            let cells: Vec<String> = fmts.iter().map(|f| f.value(r).to_string()).collect();
            out.push(cells.join("|"));
        }
    }
    Ok(out)
}

/// The error message of a result that must be an error.
pub fn err_text<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => "<no error>".into(),
        Err(e) => e.to_string(),
    }
}

/// Where a barrier came: batches emitted before it, and its positions.
type BarrierAt = Arc<Mutex<Option<(usize, Vec<SplitPosition>)>>>;

/// When a test asks for a checkpoint.
#[derive(Debug, Clone, Copy)]
pub enum TriggerAfter {
    /// Once this many batches were emitted.
    Batches(usize),
    /// Once this many rows were emitted.
    Rows(usize),
}

impl TriggerAfter {
    fn reached(self, batches: &[(usize, RecordBatch)]) -> bool {
        match self {
            TriggerAfter::Batches(n) => batches.len() >= n,
            TriggerAfter::Rows(n) => batches.iter().map(|(_, b)| b.num_rows()).sum::<usize>() >= n,
        }
    }
}

/// A source output that keeps every batch, asks for checkpoint 1 after
/// `trigger_after`, records the positions of its barrier and cancels the
/// source there.
struct CollectUntilBarrier {
    batches: Emitted,
    trigger_after: TriggerAfter,
    trigger: tokio::sync::watch::Sender<u64>,
    barrier: BarrierAt,
    cancel: Arc<AtomicBool>,
}

#[async_trait]
impl SourceOutput for CollectUntilBarrier {
    async fn batch(&mut self, split: usize, batch: RecordBatch) -> Result<()> {
        let mut b = self
            .batches
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?;
        b.push((split, batch));
        if self.trigger_after.reached(&b) {
            self.trigger.send_replace(1);
        }
        Ok(())
    }

    async fn tick(&mut self) -> Result<()> {
        let reached = self.trigger_after.reached(
            &self
                .batches
                .lock()
                .map_err(|_| WeirError::Internal("poisoned".into()))?,
        );
        if reached {
            self.trigger.send_replace(1);
        }
        Ok(())
    }

    async fn barrier(&mut self, _id: u64, positions: Vec<SplitPosition>) -> Result<()> {
        let n = self
            .batches
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?
            .len();
        let mut slot = self
            .barrier
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?;
        if slot.is_none() {
            *slot = Some((n, positions));
        }
        self.cancel
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// A run interrupted by a checkpoint: the batches emitted before the
/// barrier and the positions it carried.
pub struct Interrupted {
    pub batches: Vec<(usize, RecordBatch)>,
    pub positions: Vec<SplitPosition>,
}

/// Runs subtask `subtask` with checkpoints on (first restoring `restore`,
/// if given); asks for a checkpoint after `trigger_after` batches and stops
/// at its barrier. `None`: the source ended before a barrier.
pub async fn run_until_checkpoint(
    factory: &dyn SourceFactory,
    subtask: usize,
    parallelism: usize,
    restore: Option<&[SplitPosition]>,
    trigger_after: usize,
) -> Result<Option<Interrupted>> {
    run_until(
        factory,
        subtask,
        parallelism,
        restore,
        TriggerAfter::Batches(trigger_after),
    )
    .await
}

/// [`run_until_checkpoint`] with any trigger.
pub async fn run_until(
    factory: &dyn SourceFactory,
    subtask: usize,
    parallelism: usize,
    restore: Option<&[SplitPosition]>,
    trigger_after: TriggerAfter,
) -> Result<Option<Interrupted>> {
    let mut source = factory.create(subtask, parallelism)?;
    if let Some(p) = restore {
        source.restore_positions(p)?;
    }
    let batches: Emitted = Arc::default();
    let barrier: BarrierAt = Arc::default();
    let cancelled = Arc::new(AtomicBool::new(false));
    let (trigger, rx) = tokio::sync::watch::channel(0u64);
    let output = CollectUntilBarrier {
        batches: batches.clone(),
        trigger_after,
        trigger,
        barrier: barrier.clone(),
        cancel: cancelled.clone(),
    };
    let metrics = Arc::new(OperatorMetrics::new("t", subtask));
    let mut ctx = SourceContext::new(subtask, parallelism, Box::new(output), metrics, cancelled);
    ctx.enable_checkpoints(rx, source.positions());
    source.run(&mut ctx).await?;
    let taken = barrier
        .lock()
        .map_err(|_| WeirError::Internal("poisoned".into()))?
        .take();
    let mut batches = std::mem::take(
        &mut *batches
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?,
    );
    Ok(taken.map(|(n, positions)| {
        batches.truncate(n);
        Interrupted { batches, positions }
    }))
}

/// Runs subtask `subtask` to its end after restoring `restore`.
pub async fn run_restored(
    factory: &dyn SourceFactory,
    subtask: usize,
    parallelism: usize,
    restore: &[SplitPosition],
) -> Result<Vec<(usize, RecordBatch)>> {
    let mut source = factory.create(subtask, parallelism)?;
    source.restore_positions(restore)?;
    let batches: Emitted = Arc::default();
    let collect = Collect {
        batches: batches.clone(),
        cancel: None,
    };
    let metrics = Arc::new(OperatorMetrics::new("t", subtask));
    let cancelled = Arc::new(AtomicBool::new(false));
    let mut ctx = SourceContext::new(subtask, parallelism, Box::new(collect), metrics, cancelled);
    source.run(&mut ctx).await?;
    let out = std::mem::take(
        &mut *batches
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?,
    );
    Ok(out)
}

/// Every row of `batches` as text, grouped by local split, each split in
/// emission order.
pub fn rows_by_split(batches: &[(usize, RecordBatch)]) -> Result<BTreeMap<usize, Vec<String>>> {
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (s, b) in batches {
        out.entry(*s).or_default().extend(rows([b])?);
    }
    Ok(out)
}
