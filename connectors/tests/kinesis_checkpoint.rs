//! The Kinesis source resumed from a checkpoint: a checkpoint taken after a
//! reshard (parent finished, children being read), a restore after a second
//! reshard; every record exactly once, in order per key. Against
//! kinesis-local (kinesis-mock, `UpdateShardCount`) and kinesalite
//! (`SplitShard`, `MergeShards`).

mod common;
mod kinesis_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use aws_sdk_kinesis::types::ScalingType;
use common::{err_text, run_restored, run_until, TriggerAfter};
use kinesis_support::{
    client, create_stream, emulator, options, put, unique_stream, wait_active, Kind,
};
use weir_connectors::kinesis::KinesisConnector;
use weir_connectors::TableDescriptor;
use weir_engine::source::{SourceFactory, SplitPosition};
use weir_engine::{Result, WeirError};

fn events(keys: usize, from: usize, to: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in from..to {
        for k in 0..keys {
            out.push((format!("key-{k}"), format!(r#"{{"k":"key-{k}","n":{i}}}"#)));
        }
    }
    out
}

async fn update_shard_count(c: &aws_sdk_kinesis::Client, stream: &str, n: i32) -> Result<()> {
    c.update_shard_count()
        .stream_name(stream)
        .target_shard_count(n)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .map_err(|e| WeirError::external("UpdateShardCount", e))?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    wait_active(c, stream).await
}

fn records(batches: &[(usize, RecordBatch)]) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (_, b) in batches {
        let (k, n) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        for r in 0..b.num_rows() {
            out.push((k.value(r).to_string(), n.value(r)));
        }
    }
    out
}

fn factory(endpoint: &str, stream: &str) -> Result<Arc<dyn SourceFactory>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
    ]));
    let table = TableDescriptor::new(
        "t",
        schema,
        options(
            endpoint,
            stream,
            &[
                ("format", "json"),
                ("scan.bounded", "true"),
                ("scan.shard.getrecords.intervalmillis", "20"),
                ("scan.shard.discovery.intervalmillis", "60000"),
            ],
        ),
    );
    Ok(Arc::new(KinesisConnector::source_factory(&table)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_after_reshards_every_record_exactly_once() -> Result<()> {
    let Some(emu) = emulator(Kind::KinesisLocal) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("ckpt");
    create_stream(&c, &stream, 1).await?;
    let keys = 8;
    // Shard 0 gets 0..5, then splits into two children that get 5..10.
    put(&c, &stream, &events(keys, 0, 5)).await?;
    update_shard_count(&c, &stream, 2).await?;
    put(&c, &stream, &events(keys, 5, 10)).await?;

    // A checkpoint once some child records were read: children are read
    // only after their parent finished.
    let first = factory(&emu.endpoint, &stream)?;
    let Some(cut) = run_until(first.as_ref(), 0, 1, None, TriggerAfter::Rows(keys * 5 + 3)).await?
    else {
        return Err(WeirError::Internal(
            "the source ended before a checkpoint".into(),
        ));
    };
    let parent = cut
        .positions
        .iter()
        .find(|p| p.split.ends_with("shardId-000000000000"))
        .ok_or_else(|| WeirError::Internal(format!("no parent in {:?}", cut.positions)))?;
    assert!(
        parent.position.starts_with("SHARD_END:"),
        "{:?}",
        cut.positions
    );
    assert_eq!(cut.positions.len(), 3, "{:?}", cut.positions);
    let before = records(&cut.batches);
    assert!(
        before.len() > keys * 5 && before.len() < keys * 10,
        "{}",
        before.len()
    );

    // The children merge into one; more records.
    update_shard_count(&c, &stream, 1).await?;
    put(&c, &stream, &events(keys, 10, 15)).await?;

    // A new source (a new coordinator: a restarted process) from the cut.
    let second = factory(&emu.endpoint, &stream)?;
    let rest = tokio::time::timeout(
        Duration::from_secs(90),
        run_restored(second.as_ref(), 0, 1, &cut.positions),
    )
    .await
    .map_err(|_| WeirError::Internal("the restored source did not end".into()))??;
    let mut all = before;
    all.extend(records(&rest));
    assert_eq!(all.len(), keys * 15, "every record exactly once");
    let mut next: HashMap<&str, i64> = HashMap::new();
    for (k, n) in &all {
        let want = next.entry(k.as_str()).or_insert(0);
        assert_eq!(*n, *want, "key {k} out of order or repeated");
        *want += 1;
    }
    Ok(())
}

/// (id, open, first hash key) of every shard.
async fn shards(c: &aws_sdk_kinesis::Client, stream: &str) -> Result<Vec<(String, bool, u128)>> {
    let out = c
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| WeirError::external("ListShards", e))?;
    Ok(out
        .shards()
        .iter()
        .map(|s| {
            let open = s
                .sequence_number_range()
                .is_none_or(|r| r.ending_sequence_number().is_none());
            let lo = s
                .hash_key_range()
                .and_then(|h| h.starting_hash_key().parse().ok())
                .unwrap_or(0);
            (s.shard_id().to_string(), open, lo)
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_after_split_and_merge_on_kinesalite() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("ckptlite");
    create_stream(&c, &stream, 1).await?;
    let keys = 16;
    put(&c, &stream, &events(keys, 0, 5)).await?;
    c.split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((u128::MAX / 2).to_string())
        .send()
        .await
        .map_err(|e| WeirError::external("SplitShard", e))?;
    wait_active(&c, &stream).await?;
    put(&c, &stream, &events(keys, 5, 10)).await?;

    let first = factory(&emu.endpoint, &stream)?;
    let Some(cut) = run_until(first.as_ref(), 0, 1, None, TriggerAfter::Rows(keys * 5 + 3)).await?
    else {
        return Err(WeirError::Internal(
            "the source ended before a checkpoint".into(),
        ));
    };
    assert!(
        cut.positions
            .iter()
            .any(|p| p.split.ends_with("shardId-000000000000")
                && p.position.starts_with("SHARD_END:")),
        "{:?}",
        cut.positions
    );
    let before = records(&cut.batches);

    let mut children: Vec<(String, bool, u128)> = shards(&c, &stream)
        .await?
        .into_iter()
        .filter(|s| s.1)
        .collect();
    children.sort_by_key(|s| s.2);
    assert_eq!(children.len(), 2, "{children:?}");
    c.merge_shards()
        .stream_name(&stream)
        .shard_to_merge(&children[0].0)
        .adjacent_shard_to_merge(&children[1].0)
        .send()
        .await
        .map_err(|e| WeirError::external("MergeShards", e))?;
    wait_active(&c, &stream).await?;
    put(&c, &stream, &events(keys, 10, 15)).await?;

    let second = factory(&emu.endpoint, &stream)?;
    let rest = tokio::time::timeout(
        Duration::from_secs(90),
        run_restored(second.as_ref(), 0, 1, &cut.positions),
    )
    .await
    .map_err(|_| WeirError::Internal("the restored source did not end".into()))??;
    let mut all = before;
    all.extend(records(&rest));
    assert_eq!(all.len(), keys * 15, "every record exactly once");
    let mut next: HashMap<&str, i64> = HashMap::new();
    for (k, n) in &all {
        let want = next.entry(k.as_str()).or_insert(0);
        assert_eq!(*n, *want, "key {k} out of order or repeated");
        *want += 1;
    }
    Ok(())
}

#[tokio::test]
async fn bad_checkpointed_shard_positions_are_state_errors() -> Result<()> {
    let Some(emu) = emulator(Kind::KinesisLocal) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("ckptbad");
    create_stream(&c, &stream, 1).await?;
    let f = factory(&emu.endpoint, &stream)?;
    let mut s = f.create(0, 1)?;
    let at = |split: String, position: &str| SplitPosition {
        split,
        position: position.into(),
    };
    let e = err_text(s.restore_positions(&[at("other/shardId-000000000000".into(), "1")]));
    assert!(e.contains("is not a shard of stream"), "{e}");
    let e = err_text(s.restore_positions(&[at(
        format!("{stream}/shardId-000000000000"),
        "AT_TIMESTAMP:soon",
    )]));
    assert!(e.contains("is not epoch milliseconds"), "{e}");
    Ok(())
}

/// Where a subtask's barrier came: batches before it, and its positions.
type BarrierAt = Arc<std::sync::Mutex<Option<(usize, Vec<SplitPosition>)>>>;

/// Barrier positions and the batches before them, per subtask.
type Cut = Vec<(Vec<(usize, RecordBatch)>, Vec<SplitPosition>)>;

/// A source output for one of several subtasks: keeps batches, asks every
/// subtask for checkpoint 1 once `trigger_rows` arrived in total, and at
/// its own barrier records the positions and cancels its subtask.
struct CutOutput {
    batches: Arc<std::sync::Mutex<Vec<(usize, RecordBatch)>>>,
    total: Arc<std::sync::atomic::AtomicUsize>,
    trigger_rows: usize,
    trigger: Arc<tokio::sync::watch::Sender<u64>>,
    barrier: BarrierAt,
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl weir_engine::source::SourceOutput for CutOutput {
    async fn batch(&mut self, split: usize, batch: RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        self.batches
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?
            .push((split, batch));
        let total = self
            .total
            .fetch_add(rows, std::sync::atomic::Ordering::SeqCst)
            + rows;
        if total >= self.trigger_rows {
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
        let mut b = self
            .barrier
            .lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?;
        b.get_or_insert((n, positions));
        self.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// Runs every subtask at once (restoring `restore[s]` first, all before
/// any runs, as the runtime does) until its barrier for a checkpoint asked
/// once `trigger_rows` rows arrived in total, or to its end (bounded).
async fn run_all(
    factory: Arc<dyn SourceFactory>,
    parallelism: usize,
    restore: Option<&[Vec<SplitPosition>]>,
    trigger_rows: usize,
) -> Result<Cut> {
    let (trigger, _rx) = tokio::sync::watch::channel(0u64);
    let trigger = Arc::new(trigger);
    let total = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut sources = Vec::new();
    for s in 0..parallelism {
        let mut source = factory.create(s, parallelism)?;
        if let Some(p) = restore.and_then(|r| r.get(s)) {
            source.restore_positions(p)?;
        }
        sources.push(source);
    }
    let mut handles = Vec::new();
    for (s, mut source) in sources.into_iter().enumerate() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let barrier: BarrierAt = Arc::default();
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let out = CutOutput {
            batches: batches.clone(),
            total: total.clone(),
            trigger_rows,
            trigger: trigger.clone(),
            barrier: barrier.clone(),
            cancel: cancel.clone(),
        };
        let metrics = Arc::new(weir_engine::metrics::OperatorMetrics::new("k", s));
        let mut ctx =
            weir_engine::source::SourceContext::new(s, parallelism, Box::new(out), metrics, cancel);
        ctx.enable_checkpoints(trigger.subscribe(), source.positions());
        handles.push(tokio::spawn(async move {
            let result = tokio::time::timeout(Duration::from_secs(90), source.run(&mut ctx))
                .await
                .map_err(|_| WeirError::Internal(format!("subtask {s} did not end")))
                .and_then(|r| r);
            let mut batches = batches
                .lock()
                .map(|mut b| std::mem::take(&mut *b))
                .unwrap_or_default();
            let cut = barrier.lock().ok().and_then(|mut b| b.take());
            let positions = match cut {
                Some((n, p)) => {
                    batches.truncate(n);
                    p
                }
                None => source.positions(),
            };
            result.map(|()| (batches, positions))
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(
            h.await
                .map_err(|e| WeirError::Internal(format!("subtask panicked: {e}")))??,
        );
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subtasks_resume_across_a_merge_of_parents_they_each_read() -> Result<()> {
    let Some(emu) = emulator(Kind::KinesisLocal) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("ckpt2");
    create_stream(&c, &stream, 2).await?;
    let keys = 12;
    put(&c, &stream, &events(keys, 0, 4)).await?;
    update_shard_count(&c, &stream, 4).await?;
    put(&c, &stream, &events(keys, 4, 8)).await?;

    let first = run_all(factory(&emu.endpoint, &stream)?, 2, None, keys * 4 + 5).await?;
    let before: usize = first.iter().map(|(b, _)| records(b).len()).sum();
    assert!(before > keys * 4 && before < keys * 8, "{before}");
    let ends = first
        .iter()
        .flat_map(|(_, p)| p)
        .filter(|p| p.position.starts_with("SHARD_END"))
        .count();
    assert!(
        ends >= 1,
        "{:?}",
        first.iter().map(|(_, p)| p).collect::<Vec<_>>()
    );

    // Four shards merge back into two, then one: merges of shards the two
    // subtasks read.
    update_shard_count(&c, &stream, 2).await?;
    put(&c, &stream, &events(keys, 8, 10)).await?;
    update_shard_count(&c, &stream, 1).await?;
    put(&c, &stream, &events(keys, 10, 12)).await?;

    let positions: Vec<Vec<SplitPosition>> = first.iter().map(|(_, p)| p.clone()).collect();
    let second = run_all(
        factory(&emu.endpoint, &stream)?,
        2,
        Some(&positions),
        usize::MAX,
    )
    .await?;
    let mut all: Vec<(String, i64)> = Vec::new();
    for (b, _) in first.iter().chain(&second) {
        all.extend(records(b));
    }
    // Per key: every record exactly once (order across the two runs of a
    // subtask is preserved; a key's shards are read in lineage order).
    let mut per_key: HashMap<String, Vec<i64>> = HashMap::new();
    for (k, n) in all {
        per_key.entry(k).or_default().push(n);
    }
    assert_eq!(per_key.len(), keys);
    for (k, ns) in &per_key {
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..12).collect::<Vec<_>>(), "key {k}: {ns:?}");
    }
    Ok(())
}

/// Puts `n` records on the shard whose hash key range holds `hash_key`.
async fn put_at(c: &aws_sdk_kinesis::Client, stream: &str, hash_key: u128, n: usize) -> Result<()> {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut req = c.put_records().stream_name(stream);
        for i in chunk {
            req = req.records(
                PutRecordsRequestEntry::builder()
                    .partition_key("k")
                    .explicit_hash_key(hash_key.to_string())
                    .data(Blob::new(format!(r#"{{"k":"k","n":{i}}}"#)))
                    .build()
                    .map_err(|e| WeirError::external("entry", e))?,
            );
        }
        let out = req
            .send()
            .await
            .map_err(|e| WeirError::external("PutRecords", e))?;
        assert_eq!(out.failed_record_count(), Some(0));
    }
    Ok(())
}

/// Regression (found by tests/kinesis_crash.rs): a bounded source's subtask
/// whose shards were done ended at once, and the runtime starts no
/// checkpoint once a source subtask has ended, so a job whose other subtask
/// still read (e.g. the child of a merge) took no checkpoint any more, and
/// every restart after a crash began again from the last one. The subtasks
/// now end together, once every shard is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_subtasks_end_together_when_every_shard_is_done() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("together");
    create_stream(&c, &stream, 2).await?;
    // Shard 0 (subtask 0) gets one record, shard 1 (subtask 1) 2,000 read
    // ten per call.
    put_at(&c, &stream, 0, 1).await?;
    put_at(&c, &stream, (1u128 << 127) + 1, 2_000).await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
    ]));
    let table = TableDescriptor::new(
        "t",
        schema,
        options(
            &emu.endpoint,
            &stream,
            &[
                ("format", "json"),
                ("scan.bounded", "true"),
                ("scan.stream.initpos", "TRIM_HORIZON"),
                ("scan.shard.getrecords.maxrecordcount", "10"),
                ("scan.shard.getrecords.intervalmillis", "20"),
            ],
        ),
    );
    let factory = Arc::new(KinesisConnector::source_factory(&table)?);
    let mut handles = Vec::new();
    let mut rows = Vec::new();
    for s in 0..2 {
        let mut source = factory.create(s, 2)?;
        let batches: kinesis_support::Emitted = Arc::default();
        rows.push(batches.clone());
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let out = kinesis_support::Collect {
            batches,
            total: Arc::default(),
            stop_at: None,
            cancel: cancel.clone(),
        };
        let metrics = Arc::new(weir_engine::metrics::OperatorMetrics::new("k", s));
        let mut ctx = weir_engine::source::SourceContext::new(s, 2, Box::new(out), metrics, cancel);
        handles.push(tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(60), source.run(&mut ctx))
                .await
                .map_err(|_| WeirError::Internal(format!("subtask {s} did not end")))?
        }));
    }
    let mut handles = handles.into_iter();
    let (first, second) = (handles.next(), handles.next());
    let (Some(first), Some(second)) = (first, second) else {
        return Err(WeirError::Internal("two subtasks".into()));
    };
    first
        .await
        .map_err(|e| WeirError::Internal(e.to_string()))??;
    // When subtask 0 ends, subtask 1's shard is done too.
    assert!(
        factory.coordinator().is_finished("shardId-000000000001")?,
        "subtask 0 ended while shard 1 was still being read"
    );
    second
        .await
        .map_err(|e| WeirError::Internal(e.to_string()))??;
    let count = |b: &kinesis_support::Emitted| -> usize {
        b.lock()
            .map(|b| b.iter().map(|(_, b)| b.num_rows()).sum())
            .unwrap_or(0)
    };
    assert_eq!((count(&rows[0]), count(&rows[1])), (1, 2_000));
    Ok(())
}
