//! Kafka connectors with checkpoints, against librdkafka's mock cluster:
//! the source's positions through barriers and its resumption from them;
//! the exactly-once sink's transactions.

mod common;
mod kafka_support;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use weir_connectors::ConnectorRegistry;
use weir_engine::metrics::OperatorMetrics;
use weir_engine::source::{SourceContext, SourceFactory, SourceOutput, SplitPosition};
use weir_engine::{Result, WeirError};

use common::table;
use kafka_support::*;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
}

/// What a checkpointed source run saw: ids emitted before the first
/// barrier, ids after it, and the positions the barrier carried.
#[derive(Default)]
struct Seen {
    before: Vec<i64>,
    after: Vec<i64>,
    barrier: Option<(u64, Vec<SplitPosition>)>,
}

/// Records batches and barriers; triggers checkpoint 1 once `trigger_after`
/// rows were emitted.
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    trigger: tokio::sync::watch::Sender<u64>,
    trigger_after: usize,
}

#[async_trait]
impl SourceOutput for Recorder {
    async fn batch(&mut self, _split: usize, batch: RecordBatch) -> Result<()> {
        let mut s = self
            .seen
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?;
        let ids = batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        if s.barrier.is_none() {
            s.before.extend(ids);
            if s.before.len() >= self.trigger_after {
                let _ = self.trigger.send(1);
            }
        } else {
            s.after.extend(ids);
        }
        Ok(())
    }

    async fn barrier(&mut self, id: u64, positions: Vec<SplitPosition>) -> Result<()> {
        let mut s = self
            .seen
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?;
        if s.barrier.is_none() {
            s.barrier = Some((id, positions));
        }
        Ok(())
    }
}

/// Runs subtask 0 of 1 to its end with checkpoints on, resuming from
/// `restore` when given.
async fn run_checkpointed(
    factory: Arc<dyn SourceFactory>,
    restore: Option<Vec<SplitPosition>>,
    trigger_after: usize,
) -> Result<Seen> {
    let mut source = tokio::task::spawn_blocking(move || factory.create(0, 1))
        .await
        .map_err(|e| WeirError::Internal(e.to_string()))??;
    assert!(source.supports_checkpoints());
    if let Some(p) = &restore {
        source.restore_positions(p)?;
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (trigger, rx) = tokio::sync::watch::channel(0);
    let out = Recorder {
        seen: seen.clone(),
        trigger,
        trigger_after,
    };
    let mut ctx = SourceContext::new(
        0,
        1,
        Box::new(out),
        Arc::new(OperatorMetrics::new("kafka", 0)),
        Arc::new(AtomicBool::new(false)),
    );
    ctx.enable_checkpoints(rx, source.positions());
    source.run(&mut ctx).await?;
    let s = std::mem::take(
        &mut *seen
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?,
    );
    Ok(s)
}

/// A bounded job checkpointed mid-way and resumed from the checkpoint's
/// positions reads exactly the messages after them: the rows before the
/// barrier plus the resumed run's rows are every message once. A
/// partition missing from the checkpoint starts per 'scan.startup.mode'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_resumes_exactly_after_the_checkpointed_offsets() -> Result<()> {
    let m = mock(1, &[("t", 2)])?;
    for p in 0..2i64 {
        let values: Vec<String> = (0..40)
            .map(|i| format!(r#"{{"id": {}}}"#, p * 1000 + i))
            .collect();
        produce_values(&m.bootstrap, "t", p as i32, &values)?;
    }
    let mut all: Vec<i64> = (0..40).chain(1000..1040).collect();
    all.sort_unstable();
    let opts = kafka_options(
        &m.bootstrap,
        "t",
        &[
            ("format", "json"),
            ("scan.startup.mode", "earliest-offset"),
            ("scan.bounded.mode", "latest-offset"),
            ("batch.size", "7"),
        ],
    );
    let t = table("t", schema(), &opts);
    let factory = ConnectorRegistry::with_defaults().source(&t)?;

    let first = run_checkpointed(factory.clone(), None, 20).await?;
    let (id, positions) = first
        .barrier
        .clone()
        .ok_or_else(|| WeirError::Internal("no barrier was injected".into()))?;
    assert_eq!(id, 1);
    assert_eq!(positions.len(), 2, "{positions:?}");
    // The barrier's positions are the next offsets after the rows before it.
    for sp in &positions {
        let p: i64 = if sp.split == "t/0" { 0 } else { 1 };
        let next = first.before.iter().filter(|i| **i / 1000 == p).count();
        assert_eq!(sp.position, next.to_string(), "{positions:?}");
    }

    let resumed = run_checkpointed(factory.clone(), Some(positions.clone()), usize::MAX).await?;
    let mut got = first.before.clone();
    got.extend(&resumed.before);
    got.sort_unstable();
    assert_eq!(got, all, "rows before the checkpoint + resumed rows");

    // Only t/0 in the checkpoint: t/1 starts at the earliest offset.
    let only_p0: Vec<SplitPosition> = positions.into_iter().filter(|p| p.split == "t/0").collect();
    let next0: usize = only_p0[0]
        .position
        .parse()
        .map_err(|_| WeirError::Internal("pos".into()))?;
    let partial = run_checkpointed(factory.clone(), Some(only_p0), usize::MAX).await?;
    assert_eq!(partial.before.len(), (40 - next0) + 40);

    // A partition this subtask does not read is a clear error.
    let mut source = factory.create(0, 1)?;
    let err = source
        .restore_positions(&[SplitPosition {
            split: "t/9".into(),
            position: "3".into(),
        }])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("t/9"), "{err}");
    Ok(())
}
