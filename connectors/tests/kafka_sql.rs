//! Kafka tables in SQL jobs on librdkafka's mock cluster: a hopping window
//! from a 4-partition topic into another topic gives exactly the rows of
//! the same query on the in-process generator; an idle partition stops
//! holding the watermark back after 'scan.watermark.idle-timeout';
//! metadata columns through the planner.

mod common;
mod kafka_support;

use std::sync::Arc;
use std::time::Duration;

use weir_engine::runtime::{Job, JobConfig};
use weir_engine::{Result, WeirError};
use weir_queries::collect::{format_rows, CollectSink};
use weir_queries::{plan_script, PlanOptions};

use kafka_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_window_kafka_to_kafka_matches_in_process_generator() -> Result<()> {
    let m = mock(1, &[("bids", 4), ("out", 2)])?;
    let r = hop_end_to_end(
        &m.bootstrap,
        "bids",
        "out",
        50_000,
        2,
        InputEnd::LatestOffset,
    )
    .await?;
    assert_eq!(r.bids, 46_000);
    assert!(
        r.reference_rows.len() > 1000,
        "{} rows",
        r.reference_rows.len()
    );
    assert_eq!(r.kafka_rows.len(), r.reference_rows.len(), "row count");
    assert!(r.kafka_rows == r.reference_rows, "rows differ");
    assert_eq!(r.bad_keys, 0);
    Ok(())
}

fn line(id: i64, ms: i64) -> String {
    format!(r#"{{"id": {id}, "ts": {ms}}}"#)
}

async fn tumble_while_running(
    bootstrap: &str,
    topic: &str,
    idle: Option<&str>,
) -> Result<Vec<Vec<String>>> {
    let idle = idle
        .map(|d| format!(", 'scan.watermark.idle-timeout' = '{d}'"))
        .unwrap_or_default();
    let script = format!(
        "CREATE TABLE t (id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH (
           'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{bootstrap}',
           'format' = 'json'{idle});
         SELECT window_start, COUNT(*) AS n
         FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND))
         GROUP BY window_start, window_end;"
    );
    let sink = CollectSink::new();
    let options = PlanOptions {
        parallelism: 1,
        select_sink: Some(Arc::new(sink.clone())),
        ..PlanOptions::new()
    };
    let planned = plan_script(&script, &options)?;
    let job = Job::new(planned.graph, JobConfig::default())?;
    let cancel = job.cancel_handle();
    let handle = tokio::spawn(job.run());
    // Give the job time to read, go idle and fire what it can.
    // Until every row is in (2.5 s) and the last window that can close has.
    let _ = wait_for(Duration::from_secs(8), || {
        format_rows(&sink.batches()).is_ok_and(|r| r.len() >= 4)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = format_rows(&sink.batches())?;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .map_err(|_| WeirError::Internal("job did not stop when cancelled".into()))?
        .map_err(|e| WeirError::Internal(e.to_string()))??;
    Ok(rows)
}

/// Partition 1 never gets data while partition 0 keeps getting some: with
/// an idle timeout the windows fire from partition 0's watermark while the
/// job runs; without, nothing fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partition_stops_holding_the_watermark_back() -> Result<()> {
    let m = mock(1, &[("t", 2), ("u", 2)])?;
    let run = |topic: &'static str, idle: Option<&'static str>| {
        let bootstrap = m.bootstrap.clone();
        async move {
            // Rows at 0.0, 0.1, … 4.9 s of event time, 10 per window,
            // trickling in over 2.5 s of wall-clock time.
            let b = bootstrap.clone();
            let producer = tokio::task::spawn_blocking(move || {
                for i in 0..50 {
                    produce_values(&b, topic, 0, &[line(i, 100 * i)])?;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok::<_, WeirError>(())
            });
            let rows = tumble_while_running(&bootstrap, topic, idle).await?;
            producer
                .await
                .map_err(|e| WeirError::Internal(e.to_string()))??;
            Ok::<_, WeirError>(rows)
        }
    };
    let rows = run("t", Some("300 ms")).await?;
    let mut rows: Vec<String> = rows.into_iter().map(|r| r.join("|")).collect();
    rows.sort();
    // Windows [0,1) … [3,4) are closed by partition 0's watermark (4.9 s)
    // alone; [4,5) is still open when the job is cancelled.
    assert_eq!(
        rows,
        vec![
            "1970-01-01 00:00:00.000|10",
            "1970-01-01 00:00:01.000|10",
            "1970-01-01 00:00:02.000|10",
            "1970-01-01 00:00:03.000|10"
        ]
    );
    let rows = run("u", None).await?;
    assert!(
        rows.is_empty(),
        "without an idle timeout the empty partition holds the watermark: {rows:?}"
    );
    Ok(())
}

/// `METADATA FROM` columns declared in SQL reach the connector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_columns_in_sql() -> Result<()> {
    let m = mock(1, &[("t", 2)])?;
    produce(
        &m.bootstrap,
        "t",
        1,
        &[Msg {
            key: Some(b"k".to_vec()),
            value: Some(line(7, 0).into_bytes()),
            timestamp: Some(1_767_225_600_000),
            headers: vec![],
        }],
    )?;
    let script = format!(
        "CREATE TABLE t (
           id BIGINT, ts TIMESTAMP(3),
           `partition` INT METADATA VIRTUAL,
           off BIGINT METADATA FROM 'offset' VIRTUAL,
           kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
           k STRING METADATA FROM 'key'
         ) WITH (
           'connector' = 'kafka', 'topic' = 't', 'properties.bootstrap.servers' = '{}',
           'format' = 'json', 'scan.bounded.mode' = 'latest-offset');
         SELECT id, `partition`, off, kts, k FROM t;",
        m.bootstrap
    );
    let sink = CollectSink::new();
    let options = PlanOptions {
        parallelism: 1,
        select_sink: Some(Arc::new(sink.clone())),
        ..PlanOptions::new()
    };
    let planned = plan_script(&script, &options)?;
    Job::new(planned.graph, JobConfig::default())?.run().await?;
    let rows = format_rows(&sink.batches())?;
    assert_eq!(
        rows,
        vec![vec!["7", "1", "0", "2026-01-01 00:00:00.000", "k"]]
    );
    Ok(())
}
