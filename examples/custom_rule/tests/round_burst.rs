//! The custom rule on a small deterministic input: exact alerts through SQL
//! (rows out of order, two subtasks), and the same alerts when the operator
//! is snapshotted and restored midway.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use weir_engine::operator::{Collector, Operator, OperatorContext, Output};
use weir_engine::runtime::{Job, JobConfig};
use weir_engine::state::OperatorState;
use weir_example_custom_rule::{plan_options, RoundBurst, BURSTS_COUNTER};
use weir_queries::collect::{format_rows, CollectSink};

/// (tx_id, card, amount, seconds after 2026-01-01 00:00:00), out of order.
const ROWS: [(i64, i64, &str, i64); 12] = [
    (1, 7, "100.00", 0),
    (3, 7, "20.00", 120),
    (2, 7, "13.37", 60),  // not round: ignored
    (4, 7, "50.00", 200), // 3rd round of card 7 within 1 h: alert
    (5, 7, "10.00", 300), // 4th: same burst, no alert
    (6, 9, "1.00", 10),
    (7, 9, "5.00", 4000), // more than 1 h after card 9's first
    (8, 9, "7.00", 4100),
    (9, 9, "3.00", 4200),   // alert: 4000, 4100, 4200
    (11, 7, "30.00", 9000), // card 7 again, much later: a new burst
    (10, 7, "40.00", 8000),
    (12, 7, "60.00", 9500), // alert: 8000, 9000, 9500
];

const BASE: i64 = 1_767_225_600_000; // 2026-01-01 00:00:00 UTC

#[tokio::test]
async fn round_bursts_from_sql_are_exact() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tx.json");
    let lines: Vec<String> = ROWS
        .iter()
        .map(|(id, card, amount, s)| {
            let secs = s % 60;
            let mins = (s / 60) % 60;
            let hours = s / 3600;
            format!(
                r#"{{"tx_id": {id}, "card_id": {card}, "amount": {amount}, "event_time": "2026-01-01 {hours:02}:{mins:02}:{secs:02}"}}"#
            )
        })
        .collect();
    std::fs::write(&path, lines.join("\n"))?;
    let sql = format!(
        "CREATE TABLE tx (tx_id BIGINT, card_id BIGINT, amount DOUBLE, event_time TIMESTAMP(3),
           WATERMARK FOR event_time AS event_time - INTERVAL '1' HOUR)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
         CREATE VIEW round_tx AS SELECT * FROM tx WHERE is_round(amount, 1.0);
         SELECT card_id, round_count, burst_start, event_time, tx_id
         FROM TABLE(ROUND_BURST(TABLE round_tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time),
                                DESCRIPTOR(tx_id), 3, INTERVAL '1' HOUR));",
        path.display()
    );
    let sink = CollectSink::new();
    let mut options = plan_options();
    options.parallelism = 2;
    options.select_sink = Some(Arc::new(sink.clone()));
    let planned = weir_queries::plan_script(&sql, &options)?;
    assert!(planned.explain()?.contains("ROUND_BURST"));
    let job = Job::new(planned.graph, JobConfig::default())?;
    let metrics = job.metrics();
    job.run().await?;
    let mut rows = format_rows(&sink.batches())?;
    rows.sort();
    let want: Vec<Vec<String>> = [
        [
            "7",
            "3",
            "2026-01-01 00:00:00.000",
            "2026-01-01 00:03:20.000",
            "4",
        ],
        [
            "7",
            "3",
            "2026-01-01 02:13:20.000",
            "2026-01-01 02:38:20.000",
            "12",
        ],
        [
            "9",
            "3",
            "2026-01-01 01:06:40.000",
            "2026-01-01 01:10:00.000",
            "9",
        ],
    ]
    .iter()
    .map(|r| r.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(rows, want);
    let bursts: u64 = metrics
        .all()
        .iter()
        .map(|(_, m)| m.count(BURSTS_COUNTER))
        .sum();
    assert_eq!(bursts, 3);
    Ok(())
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("tx_id", DataType::Int64, true),
        Field::new("card_id", DataType::Int64, true),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
    ]))
}

fn batch(rows: &[(i64, i64, &str, i64)]) -> RecordBatch {
    let round: Vec<_> = rows.iter().filter(|r| !r.2.contains(".37")).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(round.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(round.iter().map(|r| r.1))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                round.iter().map(|r| BASE + r.3 * 1000),
            )),
        ],
    )
    .expect("batch")
}

fn alerts(out: &mut Collector) -> Vec<RecordBatch> {
    out.take()
        .into_iter()
        .filter_map(|o| match o {
            Output::Batch(b) => Some(b),
            _ => None,
        })
        .collect()
}

#[test]
fn snapshot_and_restore_midway_change_nothing() -> anyhow::Result<()> {
    let make = || RoundBurst::try_new(&schema(), 1, 2, 0, 3, 3_600_000);
    let run = |restore_midway: bool| -> anyhow::Result<Vec<Vec<String>>> {
        let mut op = make()?;
        let mut ctx = OperatorContext::standalone("round_burst");
        let mut out = Collector::new();
        let mut got = Vec::new();
        op.process_batch(batch(&ROWS[..6]), &mut ctx, &mut out)?;
        op.on_watermark(BASE + 100_000, &mut ctx, &mut out)?;
        got.extend(alerts(&mut out));
        if restore_midway {
            let bytes = op.snapshot()?.to_bytes()?;
            op = make()?;
            op.restore(OperatorState::from_bytes(&bytes)?)?;
        }
        op.process_batch(batch(&ROWS[6..]), &mut ctx, &mut out)?;
        op.on_end(&mut ctx, &mut out)?;
        got.extend(alerts(&mut out));
        Ok(format_rows(&got)?)
    };
    let plain = run(false)?;
    assert_eq!(plain.len(), 3, "{plain:?}");
    assert_eq!(
        plain[0],
        [
            "7",
            "3",
            "2026-01-01 00:00:00.000",
            "2026-01-01 00:03:20.000",
            "4"
        ]
    );
    assert_eq!(run(true)?, plain);
    Ok(())
}
