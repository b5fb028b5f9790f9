//! The Kafka sink against librdkafka's mock cluster: encodings, keys,
//! partitioners, flush on barrier, retries without duplicates, delivery
//! failures as job errors.

mod common;
mod kafka_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BinaryArray, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use weir_connectors::ConnectorRegistry;
use weir_engine::sink::{Sink, SinkFactory};
use weir_engine::{Result, WeirError};

use common::{err_text, table};
use kafka_support::*;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]))
}

fn batch(ids: std::ops::Range<i64>) -> Result<RecordBatch> {
    let n = ids.clone().count();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.clone())),
        Arc::new(StringArray::from_iter(ids.clone().map(|i| {
            if i % 7 == 3 {
                None
            } else {
                Some(format!("n\"{i}\n"))
            }
        }))),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            ids.map(|i| 1_767_225_600_000 + i),
        )),
    ];
    let b = RecordBatch::try_new(schema(), columns)?;
    assert_eq!(b.num_rows(), n);
    Ok(b)
}

fn sink_factory(
    bootstrap: &str,
    topic: &str,
    s: SchemaRef,
    extra: &[(&str, &str)],
) -> Result<Arc<dyn SinkFactory>> {
    let mut o = kafka_options(bootstrap, topic, extra);
    if !extra.iter().any(|(k, _)| *k == "format") {
        o.push(("format", "json"));
    }
    ConnectorRegistry::with_defaults().sink(&table("out", s, &o))
}

async fn write(sink: &mut Box<dyn Sink>, batches: Vec<RecordBatch>) -> Result<()> {
    for b in batches {
        sink.write_batch(b).await?;
    }
    Ok(())
}

/// JSON values in column order (timestamps as Flink writes them), the key
/// from 'key.fields' in 'key.format', `EXCEPT_KEY` leaving it out of the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_values_and_keys() -> Result<()> {
    let m = mock(1, &[("out", 1), ("raw-key", 1)])?;
    let f = sink_factory(
        &m.bootstrap,
        "out",
        schema(),
        &[("key.fields", "id"), ("key.format", "json")],
    )?;
    let mut s = f.create(0, 1)?;
    write(&mut s, vec![batch(0..3)?, batch(3..5)?]).await?;
    s.finish().await?;
    let got = consume(&m.bootstrap, "out", 1, 5, Duration::from_secs(10))?;
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[0].text(),
        r#"{"id":0,"name":"n\"0\n","ts":"2026-01-01 00:00:00.000"}"#
    );
    assert_eq!(
        got[3].text(),
        r#"{"id":3,"name":null,"ts":"2026-01-01 00:00:00.003"}"#
    );
    assert_eq!(got[0].key_text(), r#"{"id":0}"#);
    assert_eq!(got[4].key_text(), r#"{"id":4}"#);

    let f = sink_factory(
        &m.bootstrap,
        "raw-key",
        schema(),
        &[
            ("key.fields", "name"),
            ("key.format", "raw"),
            ("value.fields-include", "EXCEPT_KEY"),
        ],
    )?;
    let mut s = f.create(0, 1)?;
    write(&mut s, vec![batch(3..5)?]).await?;
    s.finish().await?;
    let got = consume(&m.bootstrap, "raw-key", 1, 2, Duration::from_secs(10))?;
    assert_eq!(got[0].key, None, "NULL key column: no key");
    assert_eq!(got[1].key_text(), "n\"4\n");
    assert_eq!(got[1].text(), r#"{"id":4,"ts":"2026-01-01 00:00:00.004"}"#);
    Ok(())
}

/// CSV values (a quoted field may hold a line break) and raw values (a
/// NULL is a message without payload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_raw_values() -> Result<()> {
    let m = mock(1, &[("c", 1), ("r", 1)])?;
    let f = sink_factory(&m.bootstrap, "c", schema(), &[("format", "csv")])?;
    let mut s = f.create(0, 1)?;
    write(&mut s, vec![batch(2..5)?]).await?;
    s.finish().await?;
    let got = consume(&m.bootstrap, "c", 1, 3, Duration::from_secs(10))?;
    let texts: Vec<String> = got.iter().map(Got::text).collect();
    assert_eq!(
        texts,
        vec![
            "2,\"n\"\"2\n\",2026-01-01 00:00:00.002",
            "3,,2026-01-01 00:00:00.003",
            "4,\"n\"\"4\n\",2026-01-01 00:00:00.004"
        ]
    );

    let bytes = Arc::new(Schema::new(vec![Field::new("v", DataType::Binary, true)]));
    let f = sink_factory(&m.bootstrap, "r", bytes.clone(), &[("format", "raw")])?;
    let mut s = f.create(0, 1)?;
    let b = RecordBatch::try_new(
        bytes,
        vec![Arc::new(BinaryArray::from(vec![
            Some(&b"\x00\x01"[..]),
            None,
            Some(&b""[..]),
        ]))],
    )?;
    s.write_batch(b).await?;
    s.finish().await?;
    let got = consume(&m.bootstrap, "r", 1, 3, Duration::from_secs(10))?;
    assert_eq!(got[0].value.as_deref(), Some(&b"\x00\x01"[..]));
    assert_eq!(got[1].value, None);
    assert_eq!(got[2].value.as_deref().map(<[u8]>::len).unwrap_or(1), 0);
    let e = err_text(sink_factory(
        &m.bootstrap,
        "r",
        schema(),
        &[("format", "raw")],
    ));
    assert!(
        e.contains("the 'raw' format writes exactly one column, found 3"),
        "{e}"
    );
    Ok(())
}

/// 'sink.partitioner': `fixed` writes partition subtask % n; `round-robin`
/// spreads rows evenly; `default` hashes keys (same key, same partition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioners() -> Result<()> {
    let m = mock(1, &[("fixed", 3), ("rr", 3), ("hash", 3)])?;
    let f = sink_factory(
        &m.bootstrap,
        "fixed",
        schema(),
        &[("sink.partitioner", "fixed")],
    )?;
    let mut s = f.create(4, 5)?;
    write(&mut s, vec![batch(0..10)?]).await?;
    s.finish().await?;
    let got = consume(&m.bootstrap, "fixed", 3, 10, Duration::from_secs(10))?;
    assert!(
        got.iter().all(|g| g.partition == 1),
        "subtask 4 of 3 partitions → 1"
    );

    let f = sink_factory(
        &m.bootstrap,
        "rr",
        schema(),
        &[("sink.partitioner", "round-robin")],
    )?;
    let mut s = f.create(0, 1)?;
    write(&mut s, vec![batch(0..30)?]).await?;
    s.finish().await?;
    let got = consume(&m.bootstrap, "rr", 3, 30, Duration::from_secs(10))?;
    let per: Vec<usize> = (0..3)
        .map(|p| got.iter().filter(|g| g.partition == p).count())
        .collect();
    assert_eq!(per, vec![10, 10, 10]);

    let f = sink_factory(
        &m.bootstrap,
        "hash",
        schema(),
        &[("key.fields", "id"), ("key.format", "raw")],
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(f.contains("the 'raw' format writes STRING or BYTES"), "{f}");
    let f = sink_factory(
        &m.bootstrap,
        "hash",
        schema(),
        &[("key.fields", "name"), ("key.format", "raw")],
    )?;
    let mut s = f.create(0, 1)?;
    write(&mut s, vec![batch(0..3)?, batch(0..3)?]).await?;
    s.finish().await?;
    let got = consume(&m.bootstrap, "hash", 3, 6, Duration::from_secs(10))?;
    let mut by_key: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for g in &got {
        if g.key.is_some() {
            by_key.entry(g.key_text()).or_default().push(g.partition);
        }
    }
    assert!(by_key
        .values()
        .all(|ps| ps.windows(2).all(|w| w[0] == w[1])));
    Ok(())
}

/// A barrier returns only when everything written before it is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_flushes() -> Result<()> {
    let m = mock(1, &[("out", 2)])?;
    let f = sink_factory(
        &m.bootstrap,
        "out",
        schema(),
        &[("properties.linger.ms", "2000")],
    )?;
    let mut s = f.create(0, 1)?;
    write(&mut s, vec![batch(0..100)?]).await?;
    let t = Instant::now();
    s.on_barrier(1).await?;
    assert!(t.elapsed() < Duration::from_secs(5));
    // Delivered: a reader finds all of them right away.
    let got = consume(&m.bootstrap, "out", 2, 100, Duration::from_secs(2))?;
    assert_eq!(got.len(), 100);
    s.finish().await?;
    Ok(())
}

/// Produce requests failing transiently are retried by the idempotent
/// producer: every row exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_are_retried_without_duplicates() -> Result<()> {
    let m = mock(1, &[("out", 2)])?;
    use RDKafkaRespErr::*;
    m.cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR__TRANSPORT,
        ],
    );
    let f = sink_factory(&m.bootstrap, "out", schema(), &[])?;
    let mut s = f.create(0, 1)?;
    for k in 0..10 {
        s.write_batch(batch(k * 100..(k + 1) * 100)?).await?;
    }
    s.finish().await?;
    let got = consume(&m.bootstrap, "out", 2, 1000, Duration::from_secs(20))?;
    let mut ids: Vec<String> = got.iter().map(Got::text).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(got.len(), 1000, "no loss, no duplicates");
    assert_eq!(ids.len(), 1000);
    Ok(())
}

/// The broker is down briefly: the sink waits and delivers everything once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_briefly_then_delivered() -> Result<()> {
    let m = mock(1, &[("out", 1)])?;
    let f = sink_factory(&m.bootstrap, "out", schema(), &[])?;
    let mut s = f.create(0, 1)?;
    s.write_batch(batch(0..50)?).await?;
    s.on_barrier(1).await?;
    m.cluster
        .broker_down(1)
        .map_err(|e| WeirError::external("down", e))?;
    s.write_batch(batch(50..100)?).await?;
    let up = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        m.cluster
            .broker_up(1)
            .map_err(|e| WeirError::external("up", e))
    };
    let (finished, up) = tokio::join!(s.finish(), up);
    up?;
    finished?;
    let got = consume(&m.bootstrap, "out", 1, 100, Duration::from_secs(20))?;
    assert_eq!(got.len(), 100);
    Ok(())
}

/// The broker stays down past 'delivery.timeout.ms': finishing is a sink
/// error naming the topic, never a silent loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_is_a_job_error() -> Result<()> {
    let m = mock(1, &[("out", 1)])?;
    let f = sink_factory(
        &m.bootstrap,
        "out",
        schema(),
        &[("properties.delivery.timeout.ms", "2000")],
    )?;
    let mut s = f.create(0, 1)?;
    m.cluster
        .broker_down(1)
        .map_err(|e| WeirError::external("down", e))?;
    s.write_batch(batch(0..10)?).await?;
    let e = err_text(s.finish().await);
    assert!(
        e.contains("sink error: kafka table out: 10 message(s) to topic 'out' were not delivered: delivery to out/")
            && e.contains("failed after librdkafka's retries"),
        "{e}"
    );
    // Once failed, further writes fail too.
    assert!(s.write_batch(batch(0..1)?).await.is_err());
    Ok(())
}
