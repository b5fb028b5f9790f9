//! The Kafka source against librdkafka's mock cluster: partition
//! assignment, positions, startup and bounded modes, metadata columns,
//! formats and malformed messages.

mod common;
mod kafka_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit};
use weir_connectors::kafka::{headers_type, KafkaConnector};
use weir_connectors::{ConnectorRegistry, MetadataColumn, TableDescriptor};
use weir_engine::source::SourceFactory;
use weir_engine::{Result, WeirError};

use common::{err_text, rows, table};
use kafka_support::*;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]))
}

fn line(id: i64) -> String {
    format!(
        r#"{{"id": {id}, "name": "n{id}", "ts": {}}}"#,
        1_767_225_600_000 + id
    )
}

fn source(t: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
    ConnectorRegistry::with_defaults().source(t)
}

fn ids(batches: &[(usize, arrow::record_batch::RecordBatch)]) -> Vec<i64> {
    let mut out = Vec::new();
    for (_, b) in batches {
        let c = b.column(0).as_primitive::<Int64Type>();
        out.extend(c.values().iter().copied());
    }
    out
}

/// Four partitions, two subtasks: subtask s reads partitions p with
/// p % 2 == s, one split each, every message exactly once, in order within
/// a partition; positions are the next offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_assigned_by_index_one_split_each() -> Result<()> {
    let m = mock(1, &[("t", 4)])?;
    for p in 0..4 {
        let values: Vec<String> = (0..25).map(|i| line(i64::from(p) * 100 + i)).collect();
        produce_values(&m.bootstrap, "t", p, &values)?;
    }
    let t = table(
        "t",
        schema(),
        &kafka_options(
            &m.bootstrap,
            "t",
            &[
                ("format", "json"),
                ("scan.bounded.mode", "latest-offset"),
                ("batch.size", "10"),
            ],
        ),
    );
    let f = source(&t)?;
    for subtask in 0..2 {
        let mut r = spawn_source(f.clone(), subtask, 2).await;
        r.join().await?;
        let batches = r.batches();
        assert!(
            batches.iter().all(|(_, b)| b.num_rows() <= 10),
            "batch.size respected"
        );
        for local in 0..2 {
            let p = (local * 2 + subtask) as i64;
            let got: Vec<i64> = ids(&batches
                .iter()
                .filter(|(s, _)| *s == local)
                .cloned()
                .collect::<Vec<_>>());
            let want: Vec<i64> = (0..25).map(|i| p * 100 + i).collect();
            assert_eq!(
                got, want,
                "subtask {subtask} split {local} is partition {p}, in order"
            );
        }
        let pos = r.positions.lock().map(|p| p.clone()).unwrap_or_default();
        assert_eq!(
            pos,
            vec![
                (format!("t/{subtask}"), "25".to_string()),
                (format!("t/{}", subtask + 2), "25".to_string())
            ]
        );
    }
    // Three subtasks for four partitions: 0 gets two, 1 and 2 one each;
    // five subtasks: the fifth gets none and ends at once.
    let counts: Vec<usize> = (0..5)
        .map(|s| f.create(s, 5).map(|src| src.split_count()))
        .collect::<Result<_>>()?;
    assert_eq!(counts, vec![1, 1, 1, 1, 0]);
    let mut r = spawn_source(f.clone(), 4, 5).await;
    r.join().await?;
    assert_eq!(r.rows(), 0);
    Ok(())
}

/// Metadata columns are filled and cast to their declared types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_columns() -> Result<()> {
    let m = mock(1, &[("t", 2)])?;
    produce(
        &m.bootstrap,
        "t",
        1,
        &[
            Msg {
                key: Some(b"k1".to_vec()),
                value: Some(line(1).into_bytes()),
                headers: vec![("h".into(), Some(b"v".to_vec())), ("n".into(), None)],
                timestamp: Some(1_767_225_600_123),
            },
            Msg {
                key: None,
                value: Some(line(2).into_bytes()),
                headers: vec![],
                timestamp: Some(1_767_225_600_456),
            },
        ],
    )?;
    let mut t = table(
        "t",
        schema(),
        &kafka_options(
            &m.bootstrap,
            "t",
            &[("format", "json"), ("scan.bounded.mode", "latest-offset")],
        ),
    );
    let meta = |name: &str, key: &str, t: DataType| MetadataColumn {
        name: name.into(),
        key: key.into(),
        data_type: t,
    };
    t.metadata = vec![
        meta("topic", "topic", DataType::Utf8),
        meta("part", "partition", DataType::Int32),
        meta("off", "offset", DataType::Int64),
        meta(
            "kts",
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, None),
        ),
        meta("tst", "timestamp-type", DataType::Utf8),
        meta("k", "key", DataType::Utf8),
        meta("kb", "key", DataType::Binary),
        meta("hs", "headers", headers_type()),
        meta("part64", "partition", DataType::Int64),
    ];
    let f = source(&t)?;
    assert_eq!(f.schema().fields().len(), 12);
    let mut all = Vec::new();
    for s in 0..2 {
        let mut r = spawn_source(f.clone(), s, 2).await;
        r.join().await?;
        all.extend(r.batches());
    }
    let batches: Vec<_> = all.iter().map(|(_, b)| b).collect();
    let text = rows(batches.iter().copied())?;
    assert_eq!(
        text,
        vec![
            "1|n1|2026-01-01T00:00:00.001|t|1|0|2026-01-01T00:00:00.123|CreateTime|k1|6b31|{h: 76, n: ∅}|1",
            "2|n2|2026-01-01T00:00:00.002|t|1|1|2026-01-01T00:00:00.456|CreateTime|∅|∅|{}|1",
        ]
    );
    let b = batches[0];
    assert_eq!(b.column(4).as_primitive::<Int32Type>().value(0), 1);
    assert!(b.column(10).as_map().value(0).len() == 2);
    // An unknown key is a config error listing the keys.
    let mut bad = t.clone();
    bad.metadata = vec![meta("x", "leader", DataType::Int32)];
    assert!(err_text(source(&bad)).contains(
        "connector 'kafka' has no metadata key 'leader' (available: topic, partition, offset, timestamp, timestamp-type, key, headers)"
    ));
    Ok(())
}

/// Each startup mode starts where Flink's does; bounded modes stop where
/// they say (timestamps: see kafka_tansu.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_and_bounded_modes() -> Result<()> {
    let m = mock(1, &[("t", 2)])?;
    for p in 0..2 {
        let msgs: Vec<Msg> = (0..10)
            .map(|i| Msg {
                value: Some(line(i64::from(p) * 100 + i).into_bytes()),
                timestamp: Some(1_000 + i * 10),
                ..Msg::default()
            })
            .collect();
        produce(&m.bootstrap, "t", p, &msgs)?;
    }
    let run = |extra: Vec<(&'static str, String)>| {
        let bootstrap = m.bootstrap.clone();
        async move {
            let mut opts: Vec<(&str, &str)> = kafka_options(&bootstrap, "t", &[("format", "json")]);
            let extra_ref: Vec<(&str, &str)> =
                extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            opts.extend(extra_ref);
            let t = table("t", schema(), &opts);
            let f = source(&t)?;
            let mut r = spawn_source(f, 0, 1).await;
            r.join().await?;
            let mut got = ids(&r.batches());
            got.sort_unstable();
            let pos = r.positions.lock().map(|p| p.clone()).unwrap_or_default();
            Ok::<_, WeirError>((got, pos))
        }
    };
    let bounded = ("scan.bounded.mode", "latest-offset".to_string());
    let (got, _) = run(vec![bounded.clone()]).await?;
    assert_eq!(got.len(), 20);
    let (got, pos) = run(vec![
        bounded.clone(),
        ("scan.startup.mode", "latest-offset".into()),
    ])
    .await?;
    assert!(got.is_empty());
    assert_eq!(
        pos,
        vec![("t/0".into(), "10".into()), ("t/1".into(), "10".into())]
    );
    let (got, _) = run(vec![
        bounded.clone(),
        ("scan.startup.mode", "specific-offsets".into()),
        (
            "scan.startup.specific-offsets",
            "partition:0,offset:7;partition:1,offset:9".into(),
        ),
    ])
    .await?;
    // Partition 0 from offset 7, partition 1 from 9.
    assert_eq!(got, vec![7, 8, 9, 109]);
    // Timestamp modes are tested against tansu (kafka_tansu.rs): the mock
    // cluster does not look offsets up by timestamp.
    let (got, _) = run(vec![
        ("scan.bounded.mode", "specific-offsets".into()),
        (
            "scan.bounded.specific-offsets",
            "partition:0,offset:1".into(),
        ),
    ])
    .await?;
    // Partition 1 is not listed: it stops at the end seen at start.
    assert_eq!(got.len(), 11);

    // Group offsets: a first bounded run commits what it emitted; a second
    // run of the same group starts there.
    let group = vec![
        ("properties.group.id", "g1".to_string()),
        ("scan.startup.mode", "specific-offsets".into()),
        (
            "scan.startup.specific-offsets",
            "partition:0,offset:4;partition:1,offset:6".into(),
        ),
        ("scan.bounded.mode", "latest-offset".into()),
    ];
    let (got, _) = run(group).await?;
    assert_eq!(got.len(), 10);
    for p in 0..2 {
        produce_values(&m.bootstrap, "t", p, &[line(i64::from(p) * 100 + 10)])?;
    }
    let (got, pos) = run(vec![
        ("properties.group.id", "g1".to_string()),
        ("scan.bounded.mode", "latest-offset".into()),
    ])
    .await?;
    assert_eq!(got, vec![10, 110]);
    assert_eq!(
        pos,
        vec![("t/0".into(), "11".into()), ("t/1".into(), "11".into())]
    );
    // A group without committed offsets and no reset policy is an error.
    let r = run(vec![
        ("properties.group.id", "fresh".to_string()),
        ("scan.startup.mode", "group-offsets".into()),
        ("scan.bounded.mode", "latest-offset".into()),
    ])
    .await;
    assert!(err_text(r).contains("group 'fresh' has no committed offset for t/0"));
    let (got, _) = run(vec![
        ("properties.group.id", "fresh".to_string()),
        ("properties.auto.offset.reset", "earliest".into()),
        ("scan.bounded.mode", "latest-offset".into()),
    ])
    .await?;
    assert_eq!(got.len(), 22);
    Ok(())
}

/// Malformed messages: skipped and counted with their location, copied to
/// a dead-letter topic with the reason in headers, or failing the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_skip_dead_letter_or_fail() -> Result<()> {
    let m = mock(1, &[("t", 1), ("dlq", 1)])?;
    produce(
        &m.bootstrap,
        "t",
        0,
        &[
            Msg::value(line(1)),
            Msg {
                key: Some(b"bad-key".to_vec()),
                value: Some(br#"{"id": "x"}"#.to_vec()),
                headers: vec![("trace".into(), Some(b"42".to_vec()))],
                timestamp: None,
            },
            Msg::default(), // a tombstone: skipped silently
            Msg::value("not json"),
            Msg::value(line(2)),
        ],
    )?;
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut o = kafka_options(
            &m.bootstrap,
            "t",
            &[("format", "json"), ("scan.bounded.mode", "latest-offset")],
        );
        o.extend_from_slice(extra);
        table("t", schema(), &o)
    };
    let mut r = spawn_source(source(&base(&[]))?, 0, 1).await;
    r.join().await?;
    assert_eq!(ids(&r.batches()), vec![1, 2]);
    assert_eq!(
        r.metrics
            .malformed_records
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        r.positions.lock().map(|p| p.clone()).unwrap_or_default(),
        vec![("t/0".into(), "5".into())]
    );

    let mut r = spawn_source(source(&base(&[("dead-letter.topic", "dlq")]))?, 0, 1).await;
    r.join().await?;
    assert_eq!(ids(&r.batches()), vec![1, 2]);
    let dead = consume(&m.bootstrap, "dlq", 1, 2, Duration::from_secs(10))?;
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].text(), r#"{"id": "x"}"#);
    assert_eq!(dead[0].key_text(), "bad-key");
    let header = |g: &Got, k: &str| {
        g.headers
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    assert_eq!(header(&dead[0], "trace").as_deref(), Some("42"));
    assert_eq!(header(&dead[0], "weir.error.offset").as_deref(), Some("1"));
    assert_eq!(header(&dead[0], "weir.error.topic").as_deref(), Some("t"));
    assert!(header(&dead[0], "weir.error.reason")
        .is_some_and(|r| r.contains("field 'id': expected BIGINT, found 'x'")));
    assert_eq!(dead[1].text(), "not json");
    assert_eq!(header(&dead[1], "weir.error.offset").as_deref(), Some("3"));

    let mut r = spawn_source(source(&base(&[("format.on-error", "fail")]))?, 0, 1).await;
    let e = err_text(r.join().await);
    assert!(
        e.contains(
            "kafka table t: malformed message at t/0@1: field 'id': expected BIGINT, found 'x'"
        ),
        "{e}"
    );
    let mut r = spawn_source(
        source(&base(&[("json.ignore-parse-errors", "false")]))?,
        0,
        1,
    )
    .await;
    assert!(r.join().await.is_err());
    Ok(())
}

/// CSV and raw values; raw BYTES keeps NULL messages as NULL rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_raw_formats() -> Result<()> {
    let m = mock(1, &[("c", 1), ("r", 1)])?;
    produce_values(
        &m.bootstrap,
        "c",
        0,
        &[
            "1,a,1970-01-01 00:00:01".into(),
            "2,\"b,c\",".into(),
            "x,y,z".into(),
        ],
    )?;
    let t = table(
        "c",
        schema(),
        &kafka_options(
            &m.bootstrap,
            "c",
            &[("format", "csv"), ("scan.bounded.mode", "latest-offset")],
        ),
    );
    let mut r = spawn_source(source(&t)?, 0, 1).await;
    r.join().await?;
    let b = r.batches();
    assert_eq!(
        rows(b.iter().map(|(_, b)| b))?,
        vec!["1|a|1970-01-01T00:00:01", "2|b,c|∅"]
    );
    assert_eq!(
        r.metrics
            .malformed_records
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    produce(
        &m.bootstrap,
        "r",
        0,
        &[
            Msg::value("héllo"),
            Msg::default(),
            Msg::value([0xff, 0xfe]),
        ],
    )?;
    let raw = |t: DataType| {
        table(
            "r",
            Arc::new(Schema::new(vec![Field::new("v", t, true)])),
            &kafka_options(
                &m.bootstrap,
                "r",
                &[("format", "raw"), ("scan.bounded.mode", "latest-offset")],
            ),
        )
    };
    let mut r = spawn_source(source(&raw(DataType::Utf8))?, 0, 1).await;
    r.join().await?;
    assert_eq!(
        rows(r.batches().iter().map(|(_, b)| b))?,
        vec!["héllo", "∅"]
    );
    assert_eq!(
        r.metrics
            .malformed_records
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let mut r = spawn_source(source(&raw(DataType::Binary))?, 0, 1).await;
    r.join().await?;
    let got = r.batches();
    let col = got[0].1.column(0).as_binary::<i32>();
    assert_eq!(col.len(), 3);
    assert!(col.is_null(1));
    assert_eq!(col.value(2), &[0xff, 0xfe]);
    assert!(err_text(source(&raw(DataType::Int64)))
        .contains("the 'raw' value format reads STRING or BYTES"));
    Ok(())
}

/// With `EXCEPT_KEY`, key columns are read from the message key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_fields_read_from_the_key() -> Result<()> {
    let m = mock(1, &[("t", 1)])?;
    produce(
        &m.bootstrap,
        "t",
        0,
        &[
            Msg {
                key: Some(br#"{"id": 7}"#.to_vec()),
                value: Some(br#"{"name": "a", "ts": 0}"#.to_vec()),
                ..Msg::default()
            },
            Msg {
                key: None,
                value: Some(br#"{"name": "b"}"#.to_vec()),
                ..Msg::default()
            },
            Msg {
                key: Some(b"{bad".to_vec()),
                value: Some(br#"{"name": "c"}"#.to_vec()),
                ..Msg::default()
            },
            Msg {
                key: Some(br#"{"id": 9}"#.to_vec()),
                value: Some(br#"{"name": 5"#.to_vec()),
                ..Msg::default()
            },
            Msg {
                key: Some(br#"{"id": 10}"#.to_vec()),
                value: Some(br#"{"name": "d"}"#.to_vec()),
                ..Msg::default()
            },
        ],
    )?;
    let t = table(
        "t",
        schema(),
        &kafka_options(
            &m.bootstrap,
            "t",
            &[
                ("format", "json"),
                ("key.format", "json"),
                ("key.fields", "id"),
                ("value.fields-include", "EXCEPT_KEY"),
                ("scan.bounded.mode", "latest-offset"),
            ],
        ),
    );
    let mut r = spawn_source(source(&t)?, 0, 1).await;
    r.join().await?;
    assert_eq!(
        rows(r.batches().iter().map(|(_, b)| b))?,
        vec!["7|a|1970-01-01T00:00:00", "∅|b|∅", "10|d|∅"]
    );
    assert_eq!(
        r.metrics
            .malformed_records
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    Ok(())
}

/// An unbounded source keeps running on an idle topic, picks up new
/// messages, and stops when cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_reads_new_messages_until_cancelled() -> Result<()> {
    let m = mock(1, &[("t", 2)])?;
    let t = table(
        "t",
        schema(),
        &kafka_options(&m.bootstrap, "t", &[("format", "json")]),
    );
    let mut r = spawn_source(source(&t)?, 0, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!r.handle.is_finished());
    produce_values(&m.bootstrap, "t", 1, &[line(1), line(2)])?;
    assert!(wait_for(Duration::from_secs(10), || r.rows() == 2).await);
    assert!(r.batches().iter().all(|(split, _)| *split == 1));
    r.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(5), r.join())
        .await
        .map_err(|_| WeirError::Internal("source did not stop when cancelled".into()))??;
    let pos = r.positions.lock().map(|p| p.clone()).unwrap_or_default();
    assert_eq!(
        pos,
        vec![("t/0".into(), "0".into()), ("t/1".into(), "2".into())]
    );
    Ok(())
}

/// Configuration errors are plan-time errors naming the option; a missing
/// topic fails the job start after 'scan.startup.timeout'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors() -> Result<()> {
    let m = mock(1, &[("t", 1)])?;
    let e = err_text(source(&table(
        "t",
        schema(),
        &kafka_options(
            &m.bootstrap,
            "t",
            &[("format", "json"), ("scan.startup.mode", "earliest")],
        ),
    )));
    assert!(e.contains("option 'scan.startup.mode' = 'earliest' is not valid for connector 'kafka': expected one of 'earliest-offset'"), "{e}");
    let e = err_text(source(&table(
        "t",
        schema(),
        &kafka_options(&m.bootstrap, "t", &[("fromat", "json")]),
    )));
    assert!(
        e.contains("unknown option 'fromat' for connector 'kafka' (did you mean 'format'?"),
        "{e}"
    );
    let t = table(
        "t",
        schema(),
        &kafka_options(
            &m.bootstrap,
            "missing",
            &[("format", "json"), ("scan.startup.timeout", "1 s")],
        ),
    );
    let f = KafkaConnector::source_factory(&t)?;
    let e = err_text(
        tokio::task::spawn_blocking(move || f.create(0, 1).map(|_| ()))
            .await
            .map_err(|e| WeirError::Internal(e.to_string()))?,
    );
    assert!(e.contains("topic 'missing' does not exist"), "{e}");
    let _ = BTreeMap::<String, String>::new();
    Ok(())
}
