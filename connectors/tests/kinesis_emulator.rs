//! The Kinesis connector against kinesalite: ordered reads of every shard,
//! metadata and positions, start positions, faults (throttling, expired
//! iterators) injected by a wrapper, malformed records and the dead-letter
//! stream, and the sink's round trip. See `kinesis_support` for how the
//! emulator is found or started.

mod kinesis_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use kinesis_support::{
    aws, client, create_stream, emulator, options, put, read_all, run_subtasks, unique_stream,
    Kind, SubtaskRun,
};
use weir_connectors::kinesis::client::{
    ApiResult, IteratorStart, KinesisApi, PutEntry, PutOutcome, RecordsPage, ShardDescription,
};
use weir_connectors::kinesis::{ApiError, KinesisConnector, SequenceNumber};
use weir_connectors::{ConnectorRegistry, MetadataColumn, TableDescriptor};
use weir_engine::{Result, WeirError};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]))
}

fn source_table(
    name: &str,
    endpoint: &str,
    stream: &str,
    extra: &[(&str, &str)],
) -> TableDescriptor {
    let mut t = TableDescriptor::new(name, schema(), options(endpoint, stream, extra));
    t.metadata = vec![
        MetadataColumn {
            name: "shard".into(),
            key: "shard_id".into(),
            data_type: DataType::Utf8,
        },
        MetadataColumn {
            name: "seq".into(),
            key: "sequence_number".into(),
            data_type: DataType::Utf8,
        },
        MetadataColumn {
            name: "pk".into(),
            key: "partition_key".into(),
            data_type: DataType::Utf8,
        },
        MetadataColumn {
            name: "arrival".into(),
            key: "arrival_time".into(),
            data_type: DataType::Timestamp(TimeUnit::Millisecond, None),
        },
    ];
    t
}

/// `keys` keys, `per_key` records each, interleaved; record i of key k has
/// `n` = i and event time 1 s × i.
fn events(keys: usize, per_key: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..per_key {
        for k in 0..keys {
            let key = format!("key-{k}");
            let ts = 1_767_225_600_000i64 + (i as i64) * 1000;
            out.push((key.clone(), format!(r#"{{"k":"{key}","n":{i},"ts":{ts}}}"#)));
        }
    }
    out
}

/// One row read: key, n, shard, sequence number, partition key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    k: String,
    n: i64,
    shard: String,
    seq: String,
    pk: String,
}

fn rows_of(batches: &[(usize, RecordBatch)]) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for (_, b) in batches {
        let col = |name: &str| {
            b.column_by_name(name)
                .cloned()
                .ok_or_else(|| WeirError::Internal(format!("no column {name}")))
        };
        let k = col("k")?;
        let n = col("n")?;
        let shard = col("shard")?;
        let seq = col("seq")?;
        let pk = col("pk")?;
        let (k, n, shard, seq, pk) = (
            k.as_string::<i32>(),
            n.as_primitive::<Int64Type>(),
            shard.as_string::<i32>(),
            seq.as_string::<i32>(),
            pk.as_string::<i32>(),
        );
        for r in 0..b.num_rows() {
            out.push(Row {
                k: k.value(r).to_string(),
                n: n.value(r),
                shard: shard.value(r).to_string(),
                seq: seq.value(r).to_string(),
                pk: pk.value(r).to_string(),
            });
        }
    }
    Ok(out)
}

fn seq(s: &str) -> Result<SequenceNumber> {
    SequenceNumber::parse(s).map_err(WeirError::Internal)
}

/// Every record exactly once, each key's records in order, each shard's
/// sequence numbers increasing.
fn check_exactly_once_in_order(rows: &[Row], keys: usize, per_key: usize) -> Result<()> {
    assert_eq!(rows.len(), keys * per_key, "every record exactly once");
    let mut next: HashMap<&str, i64> = HashMap::new();
    for r in rows {
        let want = next.entry(r.k.as_str()).or_insert(0);
        assert_eq!(r.n, *want, "key {} out of order", r.k);
        *want += 1;
        assert_eq!(r.pk, r.k);
    }
    assert_eq!(next.len(), keys);
    let mut last: HashMap<&str, SequenceNumber> = HashMap::new();
    for r in rows {
        let s = seq(&r.seq)?;
        if let Some(prev) = last.get(r.shard.as_str()) {
            assert!(
                s > *prev,
                "shard {} sequence numbers not increasing",
                r.shard
            );
        }
        last.insert(r.shard.as_str(), s);
    }
    Ok(())
}

fn all_rows(runs: &[SubtaskRun]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for r in runs {
        if let Err(e) = &r.result {
            return Err(WeirError::Internal(format!("subtask failed: {e}")));
        }
        for (split, _) in &r.batches {
            assert!(*split < r.split_count, "split {split} of {}", r.split_count);
        }
        rows.extend(rows_of(&r.batches)?);
    }
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_every_record_once_in_order_with_metadata_and_positions() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("four");
    create_stream(&c, &stream, 4).await?;
    let (keys, per_key) = (40, 50);
    put(&c, &stream, &events(keys, per_key)).await?;

    let table = source_table(
        "orders",
        &emu.endpoint,
        &stream,
        &[
            ("format", "json"),
            ("scan.bounded", "true"),
            ("scan.shard.getrecords.maxrecordcount", "100"),
            ("scan.shard.getrecords.intervalmillis", "5"),
        ],
    );
    // Through the registry, as the planner does.
    let factory = ConnectorRegistry::with_defaults().source(&table)?;
    let runs = run_subtasks(factory, 2, None, Duration::from_secs(60)).await?;
    // Four shards over two subtasks, two lanes per shard.
    assert_eq!(runs[0].split_count + runs[1].split_count, 8);
    // Per subtask: its records in order.
    for r in &runs {
        let rows = rows_of(&r.batches)?;
        let mut next: HashMap<String, i64> = HashMap::new();
        for row in &rows {
            let want = next.entry(row.k.clone()).or_insert(0);
            assert_eq!(row.n, *want, "key {} out of order", row.k);
            *want += 1;
        }
    }
    let rows = all_rows(&runs)?;
    check_exactly_once_in_order(&rows, keys, per_key)?;
    // Positions: one per shard, the last sequence number read (exact text).
    let mut positions: BTreeMap<String, String> = BTreeMap::new();
    for r in &runs {
        for p in &r.positions {
            positions.insert(p.split.clone(), p.position.clone());
        }
    }
    assert_eq!(positions.len(), 4, "{positions:?}");
    let mut max_seq: BTreeMap<String, SequenceNumber> = BTreeMap::new();
    for row in &rows {
        let s = seq(&row.seq)?;
        let e = max_seq
            .entry(format!("{stream}/{}", row.shard))
            .or_insert(s.clone());
        if s > *e {
            *e = s;
        }
    }
    for (split, s) in &max_seq {
        assert_eq!(positions.get(split), Some(&s.to_string()), "{split}");
    }
    // Arrival times are filled.
    for (_, b) in &runs[0].batches {
        let a = b
            .column_by_name("arrival")
            .ok_or_else(|| WeirError::Internal("no arrival".into()))?;
        let a = a
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| WeirError::Internal("arrival type".into()))?;
        assert_eq!(a.null_count(), 0);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_timestamp_and_latest_start_where_asked() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("start");
    create_stream(&c, &stream, 2).await?;
    put(&c, &stream, &events(4, 5)).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as f64 / 1000.0)
        .unwrap_or(0.0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let later: Vec<(String, String)> = (0..8)
        .map(|i| {
            (
                format!("late-{i}"),
                format!(r#"{{"k":"late-{i}","n":0,"ts":0}}"#),
            )
        })
        .collect();
    put(&c, &stream, &later).await?;

    let ts = format!("{t:.3}");
    let table = source_table(
        "t",
        &emu.endpoint,
        &stream,
        &[
            ("format", "json"),
            ("scan.bounded", "true"),
            ("scan.stream.initpos", "AT_TIMESTAMP"),
            ("scan.stream.initpos-timestamp", &ts),
            ("scan.shard.getrecords.intervalmillis", "5"),
        ],
    );
    let factory = Arc::new(KinesisConnector::source_factory(&table)?);
    let rows = all_rows(&run_subtasks(factory, 1, None, Duration::from_secs(30)).await?)?;
    let mut keys: Vec<String> = rows.iter().map(|r| r.k.clone()).collect();
    keys.sort();
    assert_eq!(
        keys,
        (0..8).map(|i| format!("late-{i}")).collect::<Vec<_>>()
    );

    // LATEST: only what is written after the source started.
    let table = source_table(
        "t",
        &emu.endpoint,
        &stream,
        &[
            ("format", "json"),
            ("scan.stream.initpos", "LATEST"),
            ("scan.shard.getrecords.intervalmillis", "5"),
        ],
    );
    let factory = Arc::new(KinesisConnector::source_factory(&table)?);
    let runner = tokio::spawn(run_subtasks(factory, 1, Some(3), Duration::from_secs(30)));
    // Give the source time to take its LATEST iterators.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let newest: Vec<(String, String)> = (0..3)
        .map(|i| {
            (
                format!("new-{i}"),
                format!(r#"{{"k":"new-{i}","n":0,"ts":0}}"#),
            )
        })
        .collect();
    put(&c, &stream, &newest).await?;
    let runs = runner
        .await
        .map_err(|e| WeirError::Internal(e.to_string()))??;
    let mut keys: Vec<String> = all_rows(&runs)?.iter().map(|r| r.k.clone()).collect();
    keys.sort();
    assert_eq!(keys, vec!["new-0", "new-1", "new-2"]);
    Ok(())
}

/// Injects faults into a real client: every `throttle_every`-th
/// GetRecords is throttled, every `expire_every`-th fails with an expired
/// iterator, every `iterator_throttle_every`-th GetShardIterator is
/// throttled, the first ListShards fails transiently; PutRecords entries
/// fail once each when `fail_entries_once`, always when `fail_entries_always`.
struct Faulty {
    inner: Arc<dyn KinesisApi>,
    throttle_every: u64,
    expire_every: u64,
    iterator_throttle_every: u64,
    fail_entries_once: bool,
    fail_entries_always: bool,
    get_records_calls: AtomicU64,
    iterator_calls: AtomicU64,
    list_calls: AtomicU64,
    put_calls: AtomicU64,
    injected: AtomicU64,
    max_put_entries: AtomicU64,
    child_shards_seen: AtomicU64,
}

impl Faulty {
    fn new(inner: Arc<dyn KinesisApi>) -> Self {
        Self {
            inner,
            throttle_every: 0,
            expire_every: 0,
            iterator_throttle_every: 0,
            fail_entries_once: false,
            fail_entries_always: false,
            get_records_calls: AtomicU64::new(0),
            iterator_calls: AtomicU64::new(0),
            list_calls: AtomicU64::new(0),
            put_calls: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            max_put_entries: AtomicU64::new(0),
            child_shards_seen: AtomicU64::new(0),
        }
    }
}

fn every(n: u64, k: u64) -> bool {
    k > 0 && n.is_multiple_of(k)
}

#[async_trait]
impl KinesisApi for Faulty {
    async fn list_shards(&self, stream: &str) -> ApiResult<Vec<ShardDescription>> {
        if self.list_calls.fetch_add(1, Ordering::SeqCst) == 0 && self.throttle_every > 0 {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(ApiError::Transient("injected: connection reset".into()));
        }
        self.inner.list_shards(stream).await
    }

    async fn get_shard_iterator(
        &self,
        stream: &str,
        shard_id: &str,
        start: &IteratorStart,
    ) -> ApiResult<String> {
        let n = self.iterator_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if every(n, self.iterator_throttle_every) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(ApiError::Throttled(
                "injected: LimitExceededException".into(),
            ));
        }
        self.inner.get_shard_iterator(stream, shard_id, start).await
    }

    async fn get_records(&self, iterator: &str, limit: u32) -> ApiResult<RecordsPage> {
        let n = self.get_records_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if every(n, self.throttle_every) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(ApiError::Throttled(
                "injected: ProvisionedThroughputExceededException".into(),
            ));
        }
        if every(n, self.expire_every) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(ApiError::ExpiredIterator(
                "injected: ExpiredIteratorException".into(),
            ));
        }
        let page = self.inner.get_records(iterator, limit).await?;
        if !page.child_shards.is_empty() {
            self.child_shards_seen.fetch_add(1, Ordering::SeqCst);
        }
        Ok(page)
    }

    async fn put_records(&self, stream: &str, entries: &[PutEntry]) -> ApiResult<Vec<PutOutcome>> {
        let call = self.put_calls.fetch_add(1, Ordering::SeqCst);
        self.max_put_entries
            .fetch_max(entries.len() as u64, Ordering::SeqCst);
        let failing =
            self.fail_entries_always || (self.fail_entries_once && call.is_multiple_of(2));
        if !failing {
            return self.inner.put_records(stream, entries).await;
        }
        // Fail every third entry (always), write the rest.
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut keep = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if i % 3 == 0 {
                self.injected.fetch_add(1, Ordering::SeqCst);
                outcomes.push(Some(PutOutcome::Failed {
                    code: "ProvisionedThroughputExceededException".into(),
                    message: "injected".into(),
                }));
            } else {
                outcomes.push(None);
                keep.push(e.clone());
            }
        }
        let written = if keep.is_empty() {
            Vec::new()
        } else {
            self.inner.put_records(stream, &keep).await?
        };
        let mut written = written.into_iter();
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.or_else(|| written.next()).unwrap_or(PutOutcome::Failed {
                    code: "Missing".into(),
                    message: "no outcome".into(),
                })
            })
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_expired_iterators_lose_and_repeat_nothing() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("faults");
    create_stream(&c, &stream, 3).await?;
    let (keys, per_key) = (12, 40);
    put(&c, &stream, &events(keys, per_key)).await?;
    let table = source_table(
        "t",
        &emu.endpoint,
        &stream,
        &[
            ("format", "json"),
            ("scan.bounded", "true"),
            // Small pages: many calls, many faults.
            ("scan.shard.getrecords.maxrecordcount", "7"),
            ("scan.shard.getrecords.intervalmillis", "1"),
            ("scan.shard.getrecords.backoff.base", "5"),
            ("scan.shard.getrecords.backoff.max", "40"),
        ],
    );
    let faulty: Arc<std::sync::Mutex<Option<Arc<Faulty>>>> = Arc::default();
    let slot = faulty.clone();
    let factory = KinesisConnector::source_factory(&table)?.with_api_wrapper(Arc::new(
        move |inner: Arc<dyn KinesisApi>| -> Arc<dyn KinesisApi> {
            let mut f = Faulty::new(inner);
            f.throttle_every = 3;
            f.expire_every = 5;
            f.iterator_throttle_every = 4;
            let f = Arc::new(f);
            if let Ok(mut s) = slot.lock() {
                *s = Some(f.clone());
            }
            f
        },
    ));
    let runs = run_subtasks(Arc::new(factory), 2, None, Duration::from_secs(60)).await?;
    let rows = all_rows(&runs)?;
    check_exactly_once_in_order(&rows, keys, per_key)?;
    let f = faulty
        .lock()
        .ok()
        .and_then(|f| f.clone())
        .ok_or_else(|| WeirError::Internal("wrapper not used".into()))?;
    let injected = f.injected.load(Ordering::SeqCst);
    assert!(injected >= 20, "only {injected} faults injected");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_throttling_fails_the_job() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("throttled");
    create_stream(&c, &stream, 1).await?;
    put(&c, &stream, &events(2, 2)).await?;
    let table = source_table(
        "t",
        &emu.endpoint,
        &stream,
        &[
            ("format", "json"),
            ("scan.bounded", "true"),
            ("scan.shard.getrecords.maxretries", "3"),
            ("scan.shard.getrecords.backoff.base", "1"),
            ("scan.shard.getrecords.backoff.max", "5"),
        ],
    );
    let factory = KinesisConnector::source_factory(&table)?.with_api_wrapper(Arc::new(
        |inner: Arc<dyn KinesisApi>| -> Arc<dyn KinesisApi> {
            let mut f = Faulty::new(inner);
            f.throttle_every = 1;
            Arc::new(f)
        },
    ));
    let runs = run_subtasks(Arc::new(factory), 1, None, Duration::from_secs(30)).await?;
    let err = match &runs[0].result {
        Ok(()) => String::from("<no error>"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with("source error: kinesis ")
            && err.contains("4 consecutive failed calls")
            && err.contains("'scan.shard.getrecords.maxretries' = 3")
            && err.contains("ProvisionedThroughputExceededException"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_are_counted_skipped_and_dead_lettered() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("malformed");
    let dlq = unique_stream("dlq");
    create_stream(&c, &stream, 2).await?;
    create_stream(&c, &dlq, 1).await?;
    let mut records = events(3, 4);
    records.insert(2, ("bad-1".into(), "not json".into()));
    records.insert(7, ("bad-2".into(), r#"{"k":"x","n":"seven"}"#.into()));
    records.push(("bad-3".into(), "{".into()));
    put(&c, &stream, &records).await?;
    let extra = [
        ("format", "json"),
        ("scan.bounded", "true"),
        ("scan.shard.getrecords.intervalmillis", "5"),
        ("dead-letter.stream", dlq.as_str()),
    ];
    let table = source_table("t", &emu.endpoint, &stream, &extra);
    let factory = Arc::new(KinesisConnector::source_factory(&table)?);
    let runs = run_subtasks(factory, 1, None, Duration::from_secs(30)).await?;
    let rows = all_rows(&runs)?;
    check_exactly_once_in_order(&rows, 3, 4)?;
    assert_eq!(runs[0].metrics.malformed_records.load(Ordering::Relaxed), 3);
    let mut dead: Vec<(String, String)> = read_all(&c, &dlq)
        .await?
        .into_iter()
        .map(|(_, k, d)| (k, d))
        .collect();
    dead.sort();
    assert_eq!(
        dead,
        vec![
            ("bad-1".to_string(), "not json".to_string()),
            ("bad-2".into(), r#"{"k":"x","n":"seven"}"#.into()),
            ("bad-3".into(), "{".into()),
        ]
    );

    // 'format.on-error' = 'fail': the job fails naming shard and sequence number.
    let table = source_table(
        "t",
        &emu.endpoint,
        &stream,
        &[
            ("format", "json"),
            ("scan.bounded", "true"),
            ("format.on-error", "fail"),
        ],
    );
    let factory = Arc::new(KinesisConnector::source_factory(&table)?);
    let runs = run_subtasks(factory, 1, None, Duration::from_secs(30)).await?;
    let err = match &runs[0].result {
        Ok(()) => String::from("<no error>"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("kinesis {stream}/shardId-00000000000"))
            && err.contains("@")
            && err.contains("malformed record"),
        "{err}"
    );
    Ok(())
}

fn sink_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
        Field::new("note", DataType::Utf8, true),
    ]))
}

fn sink_batch(keys: usize, per_key: usize) -> Result<RecordBatch> {
    let mut k = Vec::new();
    let mut n = Vec::new();
    let mut note = Vec::new();
    for i in 0..per_key {
        for key in 0..keys {
            k.push(format!("key-{key}"));
            n.push(i as i64);
            note.push(if i % 5 == 0 {
                None
            } else {
                Some(format!("line\nbreak, \"quoted\" {i}"))
            });
        }
    }
    Ok(RecordBatch::try_new(
        sink_schema(),
        vec![
            Arc::new(StringArray::from(k)),
            Arc::new(Int64Array::from(n)),
            Arc::new(StringArray::from(note)),
        ],
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_round_trip_exact_rows_in_calls_of_at_most_500() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    for format in ["json", "csv"] {
        let stream = unique_stream(&format!("sink-{format}"));
        create_stream(&c, &stream, 2).await?;
        let sink_table = TableDescriptor::new(
            "out",
            sink_schema(),
            options(
                &emu.endpoint,
                &stream,
                &[("format", format), ("sink.partition-key", "k")],
            ),
        );
        let faulty: Arc<std::sync::Mutex<Option<Arc<Faulty>>>> = Arc::default();
        let slot = faulty.clone();
        let factory = KinesisConnector::sink_factory(&sink_table)?.with_api_wrapper(Arc::new(
            move |inner: Arc<dyn KinesisApi>| -> Arc<dyn KinesisApi> {
                let mut f = Faulty::new(inner);
                // Every other call fails a third of its entries once.
                f.fail_entries_once = true;
                let f = Arc::new(f);
                if let Ok(mut s) = slot.lock() {
                    *s = Some(f.clone());
                }
                f
            },
        ));
        let mut sink = weir_engine::sink::SinkFactory::create(&factory, 0, 1)?;
        let batch = sink_batch(7, 180)?;
        sink.write_batch(batch.slice(0, 600)).await?;
        sink.write_batch(batch.slice(600, 660)).await?;
        sink.finish().await?;
        let f = faulty
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .ok_or_else(|| WeirError::Internal("wrapper not used".into()))?;
        assert!(f.max_put_entries.load(Ordering::SeqCst) <= 500);
        assert!(f.injected.load(Ordering::SeqCst) > 0);

        // Read back with the source: exact rows, all of them.
        let mut table = TableDescriptor::new(
            "back",
            sink_schema(),
            options(
                &emu.endpoint,
                &stream,
                &[
                    ("format", format),
                    ("scan.bounded", "true"),
                    ("scan.shard.getrecords.intervalmillis", "5"),
                ],
            ),
        );
        table.metadata = vec![MetadataColumn {
            name: "pk".into(),
            key: "partition_key".into(),
            data_type: DataType::Utf8,
        }];
        let factory = Arc::new(KinesisConnector::source_factory(&table)?);
        let runs = run_subtasks(factory, 1, None, Duration::from_secs(30)).await?;
        if let Err(e) = &runs[0].result {
            return Err(WeirError::Internal(format!("read back: {e}")));
        }
        let mut got = Vec::new();
        for (_, b) in &runs[0].batches {
            got.extend(kinesis_rows(b)?);
        }
        let mut want = kinesis_rows(&batch)?;
        want.iter_mut()
            .for_each(|r| r.push_str(&format!("|{}", r.split('|').next().unwrap_or(""))));
        got.sort();
        want.sort();
        assert_eq!(got.len(), 1260, "{format}");
        assert_eq!(got, want, "{format}");
    }
    Ok(())
}

/// Rows as `k|n|note` (`∅` for NULL), plus any further columns.
fn kinesis_rows(b: &RecordBatch) -> Result<Vec<String>> {
    let opts = arrow::util::display::FormatOptions::default().with_null("∅");
    let fmts = b
        .columns()
        .iter()
        .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((0..b.num_rows())
        .map(|r| {
            fmts.iter()
                .map(|f| f.value(r).to_string())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_persistent_entry_failure_is_a_job_error() -> Result<()> {
    let Some(emu) = emulator(Kind::Kinesalite) else {
        return Ok(());
    };
    let c = client(&emu.endpoint).await?;
    let stream = unique_stream("sink-fail");
    create_stream(&c, &stream, 1).await?;
    let table = TableDescriptor::new(
        "out",
        sink_schema(),
        options(
            &emu.endpoint,
            &stream,
            &[
                ("format", "json"),
                ("sink.partition-key", "k"),
                ("sink.retries", "2"),
                ("sink.retry.backoff.base", "1"),
            ],
        ),
    );
    let factory = KinesisConnector::sink_factory(&table)?.with_api_wrapper(Arc::new(
        |inner: Arc<dyn KinesisApi>| -> Arc<dyn KinesisApi> {
            let mut f = Faulty::new(inner);
            f.fail_entries_always = true;
            Arc::new(f)
        },
    ));
    let mut sink = weir_engine::sink::SinkFactory::create(&factory, 0, 1)?;
    let err = match sink.write_batch(sink_batch(2, 3)?).await {
        Ok(()) => "<no error>".to_string(),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        err,
        format!(
            "sink error: kinesis stream '{stream}': PutRecords still failing after 2 retries: \
             1 record(s) failed: ProvisionedThroughputExceededException: injected"
        )
    );
    Ok(())
}

#[test]
fn aws_options_for_emulators_are_static() {
    let a = aws("http://127.0.0.1:1");
    assert_eq!(a.region.as_deref(), Some("us-east-1"));
}
