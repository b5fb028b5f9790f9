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

use std::time::Duration;

use common::table;
use kafka_support::*;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
}

/// Writes ids `p * 1000 + 0..40` to partition `p` of topic `t`, for
/// partitions 0 and 1.
fn produce_ids(bootstrap: &str) -> Result<()> {
    for p in 0..2i64 {
        let values: Vec<String> = (0..40)
            .map(|i| format!(r#"{{"id": {}}}"#, p * 1000 + i))
            .collect();
        produce_values(bootstrap, "t", p as i32, &values)?;
    }
    Ok(())
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
    produce_ids(&m.bootstrap)?;
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

/// The offsets group `group` has committed for partitions 0..`partitions`
/// of topic `t` (`None`: nothing committed).
fn group_offsets(bootstrap: &str, group: &str, partitions: i32) -> Result<Vec<Option<i64>>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .map_err(|e| WeirError::Internal(format!("consumer: {e}")))?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition("t", p);
    }
    let got = consumer
        .committed_offsets(tpl, std::time::Duration::from_secs(5))
        .map_err(|e| WeirError::Internal(format!("committed offsets: {e}")))?;
    Ok((0..partitions)
        .map(|p| match got.find_partition("t", p).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect())
}

/// With checkpoints, the source commits to its group the offsets each
/// completed checkpoint stored (as Flink's Kafka source does), neither
/// before the checkpoint completes nor the offsets emitted since: a
/// cancelled job leaves the group at its last completed checkpoint. The
/// commit interval is an hour, so no periodic commit can explain what the
/// group holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_are_committed_on_checkpoint_completion() -> Result<()> {
    let m = mock(1, &[("t", 2)])?;
    produce_ids(&m.bootstrap)?;
    let opts = kafka_options(
        &m.bootstrap,
        "t",
        &[
            ("format", "json"),
            ("properties.group.id", "ck"),
            ("properties.auto.commit.interval.ms", "3600000"),
            ("scan.startup.mode", "earliest-offset"),
            ("batch.size", "7"),
        ],
    );
    let t = table("t", schema(), &opts);
    let factory = ConnectorRegistry::with_defaults().source(&t)?;
    let mut source = tokio::task::spawn_blocking(move || factory.create(0, 1))
        .await
        .map_err(|e| WeirError::Internal(e.to_string()))??;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (trigger, trigger_rx) = tokio::sync::watch::channel(0);
    let (completed, completed_rx) = tokio::sync::watch::channel(0u64);
    let cancel = Arc::new(AtomicBool::new(false));
    let out = Recorder {
        seen: seen.clone(),
        trigger,
        trigger_after: 20,
    };
    let mut ctx = SourceContext::new(
        0,
        1,
        Box::new(out),
        Arc::new(OperatorMetrics::new("kafka", 0)),
        cancel.clone(),
    );
    ctx.enable_checkpoints(trigger_rx, source.positions());
    ctx.track_completion(completed_rx);
    let run = tokio::spawn(async move { source.run(&mut ctx).await });

    let barrier = || seen.lock().ok().and_then(|s| s.barrier.clone());
    let emitted = || {
        seen.lock()
            .map(|s| s.before.len() + s.after.len())
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(20), || barrier().is_some()
            && emitted() == 80)
        .await,
        "barrier 1 and all 80 rows"
    );
    let (id, positions) = barrier().ok_or_else(|| WeirError::Internal("no barrier".into()))?;
    assert_eq!(id, 1);
    let expected: Vec<Option<i64>> = ["t/0", "t/1"]
        .iter()
        .map(|split| {
            positions
                .iter()
                .find(|p| p.split == *split)
                .and_then(|p| p.position.parse().ok())
        })
        .collect();
    let at_barrier: i64 = expected.iter().flatten().sum();
    assert!(
        expected.iter().all(Option::is_some) && at_barrier < 80,
        "the barrier came before the end of the input: {expected:?}"
    );
    // Not completed yet: nothing committed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(group_offsets(&m.bootstrap, "ck", 2)?, vec![None, None]);

    let _ = completed.send(1);
    let bootstrap = m.bootstrap.clone();
    assert!(
        wait_for(Duration::from_secs(10), || {
            group_offsets(&bootstrap, "ck", 2).ok().as_ref() == Some(&expected)
        })
        .await,
        "the group reaches checkpoint 1's offsets {expected:?}: has {:?}",
        group_offsets(&m.bootstrap, "ck", 2)
    );

    // Cancelled after emitting everything: the group stays at checkpoint 1.
    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    run.await
        .map_err(|e| WeirError::Internal(format!("source task: {e}")))??;
    assert_eq!(group_offsets(&m.bootstrap, "ck", 2)?, expected);
    Ok(())
}

fn ids_batch(ids: std::ops::Range<i64>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        schema(),
        vec![Arc::new(arrow::array::Int64Array::from_iter_values(ids))],
    )?)
}

fn exactly_once_sink(
    bootstrap: &str,
    prefix: &str,
) -> Result<Arc<dyn weir_engine::sink::SinkFactory>> {
    let o = kafka_options(
        bootstrap,
        "out",
        &[
            ("format", "json"),
            ("sink.delivery-guarantee", "exactly-once"),
            ("sink.transactional-id-prefix", prefix),
        ],
    );
    ConnectorRegistry::with_defaults().sink(&table("out", schema(), &o))
}

/// Rows committed to `out`, read with isolation.level=read_committed.
fn committed_ids(bootstrap: &str, expected: usize) -> Result<Vec<i64>> {
    let got = consume(
        bootstrap,
        "out",
        1,
        expected,
        std::time::Duration::from_secs(5),
    )?;
    let mut ids: Vec<i64> = got
        .iter()
        .filter_map(|g| {
            let t = g.text();
            t.trim_start_matches("{\"id\":")
                .trim_end_matches('}')
                .parse()
                .ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Two checkpoints, each committed when it completes; the end of input
/// leaves no transaction open; the snapshot holds the pre-committed
/// epoch's records until its commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_sink_commits_on_checkpoint_completion() -> Result<()> {
    let m = mock(1, &[("out", 1)])?;
    let f = exactly_once_sink(&m.bootstrap, "job-a")?;
    assert!(f.exactly_once());
    assert!(f.describe().contains("exactly-once"), "{}", f.describe());
    let mut sink = f.create_checkpointed(0, 1, None)?;
    sink.write_batch(ids_batch(0..3)?).await?;
    let state = sink.pre_commit(1).await?;
    assert_eq!(
        state.get("kafka_pending").map(|b| b.num_rows()),
        Some(3),
        "the pre-committed records are in the snapshot"
    );
    // Epoch 2 is written while checkpoint 1 awaits completion.
    sink.write_batch(ids_batch(3..5)?).await?;
    sink.commit(1).await?;
    let state = sink.pre_commit(2).await?;
    assert_eq!(state.get("kafka_pending").map(|b| b.num_rows()), Some(2));
    sink.commit(2).await?;
    // Nothing pending: an empty snapshot.
    assert!(sink.pre_commit(3).await?.is_empty());
    sink.commit(3).await?;
    sink.finish().await?;
    assert_eq!(committed_ids(&m.bootstrap, 5)?, (0..5).collect::<Vec<_>>());
    Ok(())
}

/// A new incarnation with the same transactional ids fences the old one.
/// Ignored: librdkafka's mock cluster (2.12) does not fence the old
/// producer in this sequence (its EndTxn ignores the epoch and the old
/// epoch's writes are accepted). Tested on a real broker instead:
/// `kafka_tansu_eos::a_restarted_sink_fences_the_previous_incarnation`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the mock cluster does not fence; needs a real broker"]
async fn a_restarted_sink_fences_the_previous_incarnation() -> Result<()> {
    let m = mock(1, &[("out", 1)])?;
    let f = exactly_once_sink(&m.bootstrap, "job-b")?;
    let mut old = f.create_checkpointed(0, 1, None)?;
    old.write_batch(ids_batch(0..3)?).await?;
    old.pre_commit(1).await?;
    let _new = f.create_checkpointed(0, 1, None)?;
    // The mock cluster fences produce requests of the old producer epoch
    // (it does not check the epoch of EndTxn): the old incarnation's next
    // epoch fails instead of being written.
    old.commit(1).await.ok();
    let sent = old.write_batch(ids_batch(3..5)?).await;
    let err = match sent {
        Err(e) => e.to_string(),
        Ok(()) => old
            .pre_commit(2)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default(),
    };
    assert!(!err.is_empty(), "the fenced incarnation wrote epoch 2");
    Ok(())
}

/// A crash after checkpoint 1 completed but before its commit: the
/// restarted sink aborts the old transaction (init_transactions) and
/// produces the checkpoint's records again in a committed transaction.
/// (The mock cluster neither hides aborted records from read_committed
/// readers nor stores transactional offset commits, so this checks the
/// recovery path runs, not the visibility a real broker gives.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_commits_a_pre_committed_epoch_again() -> Result<()> {
    let m = mock(1, &[("out", 1)])?;
    let f = exactly_once_sink(&m.bootstrap, "job-c")?;
    let mut old = f.create_checkpointed(0, 1, None)?;
    old.write_batch(ids_batch(0..3)?).await?;
    let state = old.pre_commit(1).await?;
    old.write_batch(ids_batch(3..5)?).await?; // epoch 2, never checkpointed
    drop(old);
    let recovery = weir_engine::sink::SinkRecovery {
        checkpoint_id: 1,
        state,
    };
    let mut new = f.create_checkpointed(0, 1, Some(recovery))?;
    new.write_batch(ids_batch(5..6)?).await?;
    new.pre_commit(2).await?;
    new.commit(2).await?;
    new.finish().await?;
    let got = committed_ids(&m.bootstrap, 9)?;
    for id in [0, 1, 2, 5] {
        assert!(got.contains(&id), "{id} missing from {got:?}");
    }
    Ok(())
}

/// Option errors: exactly-once needs a prefix and checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_option_errors() -> Result<()> {
    let o = kafka_options(
        "localhost:1",
        "out",
        &[
            ("format", "json"),
            ("sink.delivery-guarantee", "exactly-once"),
        ],
    );
    let err =
        common::err_text(ConnectorRegistry::with_defaults().sink(&table("out", schema(), &o)));
    assert!(err.contains("sink.transactional-id-prefix"), "{err}");
    let f = exactly_once_sink("localhost:1", "p")?;
    let err = f
        .create(0, 1)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("--checkpoint-dir"), "{err}");
    Ok(())
}
