//! Every fraud rule called from SQL on the transactions generator, with rows
//! out of order and duplicated, at parallelism 2 (two generator splits, the
//! rule's input hash-partitioned by key): each rule alerts on every injected
//! case of its kind (by the ground-truth `fraud_case`/`fraud_label`
//! columns) and never on a clean row, and the SQL job emits exactly the
//! alerts of the same rule configured in Rust and run directly on the same
//! rows (all columns but `alert_time`, which depends on when watermarks
//! arrive).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, SchemaRef};
use weir_connectors::transactions::{generate_batches, schema, FraudKind, TransactionsOptions};
use weir_engine::operator::{Collector, Operator, OperatorContext, Output};
use weir_engine::runtime::{Job, JobConfig};
use weir_engine::Result;
use weir_operators::fraud::{
    AmountSpikeConfig, DeviceSharingConfig, ImpossibleTravelConfig, SmallThenLargeConfig,
    VelocityConfig,
};
use weir_queries::collect::{format_rows, CollectSink};
use weir_queries::{plan_script, PlanOptions};

const TX_ID: usize = 0;
const ACCOUNT: usize = 1;
const CARD: usize = 2;
const DEVICE: usize = 3;
const AMOUNT: usize = 5;
const LAT: usize = 6;
const LON: usize = 7;
const TIME: usize = 9;
const LABEL: usize = 10;
const CASE: usize = 11;

/// 200 accounts (a card every 200 s), 5 % of rows late by up to 5 s, 2 %
/// duplicated, about 0.3 % of slots starting a case of each kind.
const TABLE: &str = "CREATE TABLE tx (
  tx_id BIGINT, account_id BIGINT, card_id BIGINT, device_id BIGINT, merchant_id BIGINT,
  amount DOUBLE, merchant_lat DOUBLE, merchant_lon DOUBLE, seq BIGINT,
  event_time TIMESTAMP(3), fraud_label STRING, fraud_case BIGINT,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'transactions', 'events.num' = '150000', 'accounts' = '200',
  'event-interval' = '500 ms', 'out-of-order.rate' = '0.05', 'out-of-order.max-delay' = '5 s',
  'duplicate.rate' = '0.02', 'fraud.rate' = '0.003', 'seed' = '11', 'batch.size' = '1024');
";

/// The same table, generated without a job (both splits).
fn input() -> &'static Vec<RecordBatch> {
    static INPUT: OnceLock<Vec<RecordBatch>> = OnceLock::new();
    INPUT.get_or_init(|| {
        let o = TransactionsOptions {
            events_num: Some(150_000),
            accounts: 200,
            event_interval_ms: 500,
            out_of_order_rate: 0.05,
            out_of_order_max_delay_ms: 5_000,
            duplicate_rate: 0.02,
            batch_size: 1_024,
            seed: 11,
            ..Default::default()
        }
        .with_fraud_rate(0.003);
        (0..2)
            .flat_map(|s| generate_batches(&o, &schema(), s, 2).expect("generate"))
            .collect()
    })
}

/// The injected cases of `kind`.
fn cases(kind: FraudKind) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for b in input() {
        let label = b.column(LABEL).as_string::<i32>();
        let case = b.column(CASE).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            if label.is_valid(r) && label.value(r) == kind.label() {
                out.insert(case.value(r));
            }
        }
    }
    out
}

/// Runs `SELECT * FROM TABLE(<call>)` at parallelism 2.
async fn run_sql(call: &str) -> Result<Vec<RecordBatch>> {
    let sink = CollectSink::new();
    let options = PlanOptions {
        parallelism: 2,
        select_sink: Some(std::sync::Arc::new(sink.clone())),
        ..PlanOptions::new()
    };
    let planned = plan_script(&format!("{TABLE}SELECT * FROM TABLE({call});"), &options)?;
    let job = Job::new(planned.graph, JobConfig::default())?;
    let metrics = job.metrics();
    job.run().await?;
    assert_eq!(metrics.totals().late_rows_dropped, 0, "{call}: late rows");
    Ok(sink.batches())
}

/// Runs `op` directly over every row, processed at end of input.
fn run_direct(mut op: Box<dyn Operator>) -> Result<Vec<RecordBatch>> {
    let mut ctx = OperatorContext::standalone("direct");
    let mut out = Collector::new();
    for b in input() {
        op.process_batch(b.clone(), &mut ctx, &mut out)?;
    }
    op.on_end(&mut ctx, &mut out)?;
    Ok(out
        .take()
        .into_iter()
        .filter_map(|o| match o {
            Output::Batch(b) => Some(b),
            _ => None,
        })
        .collect())
}

/// Rows as strings without `alert_time`, sorted.
fn rows_without_alert_time(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let at = first.schema().index_of("alert_time")?;
    let mut rows = format_rows(batches)?;
    for r in &mut rows {
        r.remove(at);
    }
    rows.sort();
    Ok(rows)
}

/// Runs one rule through SQL and checks it (see the module docs).
async fn check(
    kind: FraudKind,
    call: &str,
    direct: impl FnOnce(&SchemaRef) -> Result<Box<dyn Operator>>,
) -> Result<()> {
    let want = cases(kind);
    assert!(want.len() >= 100, "{call}: only {} cases", want.len());
    let alerts = run_sql(call).await?;
    let mut found = BTreeSet::new();
    let mut clean = 0;
    let mut total = 0;
    for b in &alerts {
        let label = b
            .column_by_name("fraud_label")
            .expect("label")
            .as_string::<i32>();
        let case = b
            .column_by_name("fraud_case")
            .expect("case")
            .as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            total += 1;
            if label.is_null(r) {
                clean += 1;
            } else if label.value(r) == kind.label() {
                found.insert(case.value(r));
            }
        }
    }
    assert_eq!(clean, 0, "{call}: alerts on clean rows");
    assert_eq!(found, want, "{call}: cases found != cases injected");
    let expected = run_direct(direct(&schema())?)?;
    let got_rows = rows_without_alert_time(&alerts)?;
    let want_rows = rows_without_alert_time(&expected)?;
    assert_eq!(
        got_rows.len(),
        want_rows.len(),
        "{call}: alert count differs from the Rust operator's"
    );
    assert_eq!(got_rows, want_rows, "{call}: alerts differ");
    eprintln!(
        "{}: {total} alerts, all {} cases found, 0 on clean rows",
        kind.label(),
        want.len()
    );
    Ok(())
}

const CARRY: &str = "DESCRIPTOR(tx_id, fraud_case, fraud_label)";

#[tokio::test]
async fn velocity_from_sql_finds_every_burst_and_no_clean_row() -> Result<()> {
    check(
        FraudKind::Velocity,
        &format!(
            "VELOCITY(TABLE tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time), \
             INTERVAL '1' MINUTE, 5, DESCRIPTOR(amount), 20000, {CARRY})"
        ),
        |s| {
            let mut c = VelocityConfig::new(vec![CARD], TIME).with_amount(AMOUNT, 20_000.0);
            c.carry = vec![TX_ID, CASE, LABEL];
            Ok(Box::new(c.build(s)?))
        },
    )
    .await
}

#[tokio::test]
async fn amount_spike_from_sql_finds_every_spike_and_no_clean_row() -> Result<()> {
    check(
        FraudKind::AmountSpike,
        &format!(
            "AMOUNT_SPIKE(TABLE tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time), \
             DESCRIPTOR(amount), 4.0, 10, INTERVAL '30' DAY, {CARRY})"
        ),
        |s| {
            let mut c = AmountSpikeConfig::new(vec![CARD], TIME, AMOUNT);
            c.carry = vec![TX_ID, CASE, LABEL];
            Ok(Box::new(c.build(s)?))
        },
    )
    .await
}

#[tokio::test]
async fn impossible_travel_from_sql_finds_every_trip_and_no_clean_row() -> Result<()> {
    check(
        FraudKind::ImpossibleTravel,
        &format!(
            "IMPOSSIBLE_TRAVEL(TABLE tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time), \
             DESCRIPTOR(merchant_lat), DESCRIPTOR(merchant_lon), 900, 50, {CARRY})"
        ),
        |s| {
            let mut c = ImpossibleTravelConfig::new(vec![CARD], TIME, LAT, LON);
            c.carry = vec![TX_ID, CASE, LABEL];
            Ok(Box::new(c.build(s)?))
        },
    )
    .await
}

#[tokio::test]
async fn small_then_large_from_sql_finds_every_case_and_no_clean_row() -> Result<()> {
    check(
        FraudKind::SmallThenLarge,
        &format!(
            "SMALL_THEN_LARGE(TABLE tx, DESCRIPTOR(account_id), DESCRIPTOR(event_time), \
             DESCRIPTOR(amount), 1.00, 500.00, INTERVAL '1' MINUTE, {CARRY})"
        ),
        |s| {
            let mut c = SmallThenLargeConfig::new(vec![ACCOUNT], TIME, AMOUNT);
            c.carry = vec![TX_ID, CASE, LABEL];
            Ok(Box::new(c.build(s)?))
        },
    )
    .await
}

#[tokio::test]
async fn device_sharing_from_sql_finds_every_shared_device_and_no_clean_row() -> Result<()> {
    check(
        FraudKind::DeviceSharing,
        &format!(
            "DEVICE_SHARING(TABLE tx, DESCRIPTOR(device_id), DESCRIPTOR(event_time), \
             DESCRIPTOR(card_id), 3, INTERVAL '10' MINUTE, {CARRY})"
        ),
        |s| {
            let mut c = DeviceSharingConfig::new(vec![DEVICE], TIME, CARD);
            c.carry = vec![TX_ID, CASE, LABEL];
            Ok(Box::new(c.build(s)?))
        },
    )
    .await
}

#[test]
fn haversine_km_is_a_default_scalar_function() -> Result<()> {
    let planned = plan_script(
        &format!(
            "{TABLE}SELECT tx_id, haversine_km(merchant_lat, merchant_lon, 48.8566, 2.3522) AS km FROM tx;"
        ),
        &PlanOptions::new(),
    )?;
    assert!(planned.explain()?.contains("haversine_km"));
    Ok(())
}

#[test]
fn fraud_function_plan_errors_name_the_argument_and_the_signature() {
    let err = |call: &str| match plan_script(
        &format!("{TABLE}SELECT * FROM TABLE({call});"),
        &PlanOptions::new(),
    ) {
        Ok(_) => panic!("{call}: planned"),
        Err(e) => e.to_string(),
    };
    let e = err("VELOCITY(TABLE tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time), 'sometimes')");
    assert!(
        e.contains("line 9: VELOCITY: argument 4: alert mode 'sometimes'")
            && e.contains("signature: VELOCITY(TABLE t"),
        "{e}"
    );
    let e = err("AMOUNT_SPIKE(TABLE tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time), DESCRIPTOR(fraud_label))");
    assert!(e.contains("column 'fraud_label' must be numeric"), "{e}");
    let e = err("IMPOSSIBLE_TRAVEL(TABLE tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time), DESCRIPTOR(merchant_lat))");
    assert!(e.contains("argument 5 (lon) is missing"), "{e}");
    let e = err("SMALL_THEN_LARGE(TABLE tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time), DESCRIPTOR(amount), 1.0)");
    assert!(
        e.contains("small_below must be followed by large_above"),
        "{e}"
    );
    let e = err("DEVICE_SHARING(TABLE tx, DESCRIPTOR(device_id), DESCRIPTOR(event_time), DESCRIPTOR(card_id), 3, INTERVAL '0' SECOND)");
    assert!(e.contains("the window must be positive"), "{e}");
    let e = err(
        "VELOCITY(TABLE tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time), DESCRIPTOR(event_time))",
    );
    assert!(e.contains("two columns named 'event_time'"), "{e}");
}
