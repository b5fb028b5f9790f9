//! End-to-end tests against a real Kafka-protocol broker process, tansu.
//!
//! The broker is `$WEIR_TANSU_BOOTSTRAP` when set (`.ci/tansu.sh start`
//! prints it); otherwise the tests start their own from the `tansu` binary
//! (`$TANSU`, `PATH` or `~/.cargo/bin/tansu`) on a free loopback port. When
//! neither exists they print why and skip, or fail when
//! `$WEIR_REQUIRE_BROKERS` is set, as `.ci/run` does (install tansu with
//! `cargo install tansu --locked --features dynostore`).

mod common;
mod kafka_support;
mod tansu_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use weir_connectors::kafka::produce::ensure_topic;
use weir_connectors::ConnectorRegistry;
use weir_engine::{Result, WeirError};

use common::table;
use kafka_support::*;
use tansu_support::unique;

/// `$WEIR_TANSU_BOOTSTRAP`, or a tansu started here, or `None` (skip).
fn broker(test: &str) -> Result<Option<tansu_support::Broker>> {
    init_log();
    tansu_support::broker(test)
}

/// The issue's end-to-end test: a Nexmark bid stream in a 4-partition
/// topic, a hopping window into an output topic, the output read back and
/// compared row for row with the same query on the in-process generator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_hop_window_matches_in_process_generator() -> Result<()> {
    let Some(b) = broker("tansu_hop_window_matches_in_process_generator")? else {
        return Ok(());
    };
    let (input, output) = (unique("bids"), unique("hop"));
    let started = Instant::now();
    // tansu 0.6 answers ListOffsets(latest) with the last record batch's
    // base offset + 1, so the job is bounded by the produced counts.
    let r = hop_end_to_end(
        &b.bootstrap,
        &input,
        &output,
        200_000,
        2,
        InputEnd::ProducedCounts,
    )
    .await?;
    println!(
        "tansu {}: {} bids in, {} window rows out, {:.1} s",
        b.bootstrap,
        r.bids,
        r.kafka_rows.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(r.bids, 184_000);
    assert!(r.reference_rows.len() > 10_000);
    assert_eq!(r.kafka_rows.len(), r.reference_rows.len(), "row count");
    let first_diff = r
        .kafka_rows
        .iter()
        .zip(&r.reference_rows)
        .position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "first differing row");
    assert_eq!(r.bad_keys, 0);
    Ok(())
}

fn id_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
}

async fn read_ids(
    bootstrap: &str,
    topic: &str,
    extra: &[(&str, &str)],
) -> Result<(Vec<i64>, Vec<(String, String)>)> {
    let mut o = kafka_options(bootstrap, topic, &[("format", "json")]);
    o.extend_from_slice(extra);
    let f = ConnectorRegistry::with_defaults().source(&table("t", id_schema(), &o))?;
    let mut r = spawn_source(f, 0, 1).await;
    tokio::time::timeout(Duration::from_secs(60), r.join())
        .await
        .map_err(|_| WeirError::Internal("source did not end".into()))??;
    let mut ids = Vec::new();
    for (_, b) in r.batches() {
        ids.extend(
            b.column(0)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    ids.sort_unstable();
    let pos = r.positions.lock().map(|p| p.clone()).unwrap_or_default();
    Ok((ids, pos))
}

/// Group offsets committed by one job and resumed by the next, a bounded
/// read stopping at the end seen at start, against a real broker.
/// (Timestamp modes are not tested against a broker: neither librdkafka's
/// mock cluster nor tansu 0.6 looks offsets up by time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_group_offsets_and_bounded_reads() -> Result<()> {
    let Some(b) = broker("tansu_group_offsets_and_bounded_reads")? else {
        return Ok(());
    };
    let topic = unique("group");
    ensure_topic(&b.bootstrap, &topic, Some(2)).await?;
    let value = |id: i64| Msg::value(format!(r#"{{"id": {id}}}"#));
    for p in 0..2 {
        let msgs: Vec<Msg> = (0..10).map(|i| value(i64::from(p) * 100 + i)).collect();
        produce_one_by_one(&b.bootstrap, &topic, p, &msgs)?;
    }
    let bounded = ("scan.bounded.mode", "latest-offset");
    let (ids, pos) = read_ids(&b.bootstrap, &topic, &[bounded]).await?;
    assert_eq!(ids.len(), 20);
    assert_eq!(
        pos.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>(),
        vec!["10", "10"]
    );
    let group = unique("g");
    let (ids, _) = read_ids(
        &b.bootstrap,
        &topic,
        &[
            ("properties.group.id", &group),
            ("scan.startup.mode", "specific-offsets"),
            (
                "scan.startup.specific-offsets",
                "partition:0,offset:5;partition:1,offset:5",
            ),
            bounded,
        ],
    )
    .await?;
    assert_eq!(ids, vec![5, 6, 7, 8, 9, 105, 106, 107, 108, 109]);
    for p in 0..2 {
        produce_one_by_one(&b.bootstrap, &topic, p, &[value(i64::from(p) * 100 + 10)])?;
    }
    let (ids, pos) = read_ids(
        &b.bootstrap,
        &topic,
        &[("properties.group.id", &group), bounded],
    )
    .await?;
    assert_eq!(ids, vec![10, 110], "resumes at the committed offsets");
    assert_eq!(
        pos.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>(),
        vec!["11", "11"]
    );
    Ok(())
}

/// A source started at an offset inside a record batch reads from that
/// offset: the broker returns the batch that holds it and the consumer
/// skips the records before it; and a bounded read to the latest offset
/// reads the whole batch. (tansu 0.6 returned only the batches after the
/// offset, skipping the rest of its batch, so a job resumed from a
/// checkpoint lost messages; and its latest offset was the last batch's
/// base offset + 1. `.ci/tansu/storage-offsets.patch` fixes both; this
/// test keeps the fixes in place.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_a_start_inside_a_record_batch_reads_from_there() -> Result<()> {
    let Some(b) = broker("tansu_a_start_inside_a_record_batch_reads_from_there")? else {
        return Ok(());
    };
    let topic = unique("in-batch");
    ensure_topic(&b.bootstrap, &topic, Some(1)).await?;
    // Ten messages sent together: one record batch.
    let msgs: Vec<Msg> = (0..10)
        .map(|i| Msg::value(format!(r#"{{"id": {i}}}"#)))
        .collect();
    produce(&b.bootstrap, &topic, 0, &msgs)?;
    for start in [4, 9] {
        let offsets = format!("partition:0,offset:{start}");
        let (ids, pos) = read_ids(
            &b.bootstrap,
            &topic,
            &[
                ("scan.startup.mode", "specific-offsets"),
                ("scan.startup.specific-offsets", &offsets),
                ("scan.bounded.mode", "specific-offsets"),
                ("scan.bounded.specific-offsets", "partition:0,offset:10"),
            ],
        )
        .await?;
        assert_eq!(
            ids,
            (start..10).collect::<Vec<i64>>(),
            "from offset {start}"
        );
        assert_eq!(pos, vec![(format!("{topic}/0"), "10".to_string())]);
    }
    let (ids, _) = read_ids(
        &b.bootstrap,
        &topic,
        &[
            ("scan.startup.mode", "earliest-offset"),
            ("scan.bounded.mode", "latest-offset"),
        ],
    )
    .await?;
    assert_eq!(ids, (0..10).collect::<Vec<i64>>(), "to the latest offset");
    Ok(())
}
