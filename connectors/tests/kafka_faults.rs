//! The Kafka source and sink under faults, on librdkafka's mock cluster:
//! brokers down at start and mid-run, request errors injected. Bounded
//! inputs check that nothing is lost or read twice.

mod common;
mod kafka_support;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use weir_connectors::ConnectorRegistry;
use weir_engine::source::SourceFactory;
use weir_engine::{Result, WeirError};

use common::{err_text, table};
use kafka_support::*;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
}

fn values(from: i64, to: i64) -> Vec<String> {
    (from..to).map(|i| format!(r#"{{"id": {i}}}"#)).collect()
}

fn source(bootstrap: &str, extra: &[(&str, &str)]) -> Result<Arc<dyn SourceFactory>> {
    let mut o = kafka_options(bootstrap, "t", &[("format", "json")]);
    o.extend_from_slice(extra);
    ConnectorRegistry::with_defaults().source(&table("t", schema(), &o))
}

/// Every id once: no loss, no duplicate.
fn assert_exactly(batches: &[(usize, RecordBatch)], want: impl Iterator<Item = i64>) {
    let mut got: Vec<i64> = Vec::new();
    for (_, b) in batches {
        got.extend(
            b.column(0)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    let want: Vec<i64> = want.collect();
    let unique: BTreeSet<i64> = got.iter().copied().collect();
    assert_eq!(got.len(), unique.len(), "no duplicates");
    let missing: Vec<i64> = want
        .iter()
        .filter(|w| !unique.contains(w))
        .copied()
        .collect();
    let extra: Vec<i64> = unique
        .iter()
        .filter(|u| !want.contains(u))
        .copied()
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} missing (first {:?}), {} unexpected (first {:?})",
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first()
    );
}

/// The broker is down when the job starts: the start waits (with backoff)
/// and the job reads everything once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_at_start() -> Result<()> {
    let m = mock(1, &[("t", 2)])?;
    produce_values(&m.bootstrap, "t", 0, &values(0, 100))?;
    produce_values(&m.bootstrap, "t", 1, &values(100, 200))?;
    m.cluster
        .broker_down(1)
        .map_err(|e| WeirError::external("broker down", e))?;
    let f = source(
        &m.bootstrap,
        &[
            ("scan.bounded.mode", "latest-offset"),
            ("scan.startup.timeout", "60 s"),
        ],
    )?;
    let mut r = spawn_source(f, 0, 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!r.handle.is_finished(), "waits for the broker");
    assert_eq!(r.rows(), 0);
    m.cluster
        .broker_up(1)
        .map_err(|e| WeirError::external("broker up", e))?;
    tokio::time::timeout(Duration::from_secs(60), r.join())
        .await
        .map_err(|_| WeirError::Internal("no progress after the broker came back".into()))??;
    assert_exactly(&r.batches(), 0..200);
    assert_eq!(r.metrics.status(), None, "status cleared");
    Ok(())
}

/// Down longer than 'scan.startup.timeout': a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_longer_than_the_startup_timeout() -> Result<()> {
    let m = mock(1, &[("t", 1)])?;
    m.cluster
        .broker_down(1)
        .map_err(|e| WeirError::external("broker down", e))?;
    let f = source(&m.bootstrap, &[("scan.startup.timeout", "2 s")])?;
    let started = Instant::now();
    let e = err_text(
        tokio::task::spawn_blocking(move || f.create(0, 1).map(|_| ()))
            .await
            .map_err(|e| WeirError::Internal(e.to_string()))?,
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        e.contains("kafka table t: cannot read the partitions of topic 't' from")
            && e.contains("within 2 s ('scan.startup.timeout')"),
        "{e}"
    );
    Ok(())
}

/// The broker goes down mid-run: the progress status says so, the job
/// waits, and resumes where it was when the broker is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_mid_run_resumes_without_loss_or_duplicates() -> Result<()> {
    let m = mock(1, &[("t", 4)])?;
    for p in 0..4 {
        produce_values(
            &m.bootstrap,
            "t",
            p,
            &values(i64::from(p) * 10_000, i64::from(p) * 10_000 + 500),
        )?;
    }
    // Stop offsets beyond what exists now: the job waits for the rest.
    let f = source(
        &m.bootstrap,
        &[
            ("scan.bounded.mode", "specific-offsets"),
            (
                "scan.bounded.specific-offsets",
                "partition:0,offset:1000;partition:1,offset:1000;partition:2,offset:1000;partition:3,offset:1000",
            ),
            ("batch.size", "64"),
        ],
    )?;
    let mut r = spawn_source(f, 0, 1).await;
    assert!(
        wait_for(Duration::from_secs(20), || r.rows() == 2000).await,
        "first half read"
    );
    m.cluster
        .broker_down(1)
        .map_err(|e| WeirError::external("broker down", e))?;
    let saw_status = wait_for(Duration::from_secs(15), || {
        r.metrics.status().is_some_and(|s| s.starts_with("kafka:"))
    })
    .await;
    assert!(saw_status, "the outage shows in the progress status");
    let status = r.metrics.status().unwrap_or_default();
    assert!(!r.handle.is_finished());
    m.cluster
        .broker_up(1)
        .map_err(|e| WeirError::external("broker up", e))?;
    for p in 0..4 {
        produce_values(
            &m.bootstrap,
            "t",
            p,
            &values(i64::from(p) * 10_000 + 500, i64::from(p) * 10_000 + 1000),
        )?;
    }
    tokio::time::timeout(Duration::from_secs(60), r.join())
        .await
        .map_err(|_| {
            WeirError::Internal(format!(
                "no progress after the broker came back (status {status})"
            ))
        })??;
    let want = (0..4).flat_map(|p| (p * 10_000)..(p * 10_000 + 1000));
    let mut want: Vec<i64> = want.collect();
    want.sort_unstable();
    assert_exactly(&r.batches(), want.into_iter());
    assert!(
        wait_for(Duration::from_secs(5), || r.metrics.status().is_none()).await,
        "status cleared once data flows: {:?}",
        r.metrics.status()
    );
    println!("status during the outage: {status}");
    Ok(())
}

/// Fetch and offset requests failing (not leader, transport errors) are
/// retried: the result is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors_are_retried() -> Result<()> {
    let m = mock(1, &[("t", 2)])?;
    produce_values(&m.bootstrap, "t", 0, &values(0, 300))?;
    produce_values(&m.bootstrap, "t", 1, &values(300, 600))?;
    use RDKafkaRespErr::*;
    m.cluster.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        ],
    );
    m.cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let f = source(
        &m.bootstrap,
        &[("scan.bounded.mode", "latest-offset"), ("batch.size", "50")],
    )?;
    let mut r = spawn_source(f, 0, 1).await;
    tokio::time::timeout(Duration::from_secs(60), r.join())
        .await
        .map_err(|_| WeirError::Internal("stalled on request errors".into()))??;
    assert_exactly(&r.batches(), 0..600);
    assert_eq!(r.metrics.malformed_records.load(Ordering::Relaxed), 0);
    Ok(())
}

/// A partition whose messages are all malformed does not stall: its
/// position advances past them and the bounded read ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_malformed_partition_does_not_stall() -> Result<()> {
    let m = mock(1, &[("t", 2)])?;
    produce_values(&m.bootstrap, "t", 0, &values(0, 10))?;
    let junk: Vec<String> = (0..50).map(|i| format!("junk {i}")).collect();
    produce_values(&m.bootstrap, "t", 1, &junk)?;
    let f = source(&m.bootstrap, &[("scan.bounded.mode", "latest-offset")])?;
    let mut r = spawn_source(f, 0, 1).await;
    tokio::time::timeout(Duration::from_secs(30), r.join())
        .await
        .map_err(|_| WeirError::Internal("stalled".into()))??;
    assert_exactly(&r.batches(), 0..10);
    assert_eq!(r.metrics.malformed_records.load(Ordering::Relaxed), 50);
    assert_eq!(
        r.positions.lock().map(|p| p.clone()).unwrap_or_default(),
        vec![("t/0".into(), "10".into()), ("t/1".into(), "50".into())]
    );
    let _ = Int64Array::from(vec![0]);
    Ok(())
}
