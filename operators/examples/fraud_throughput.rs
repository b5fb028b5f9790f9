//! Micro-benchmark of the fraud rules on the transactions generator.
//!
//! ```text
//! cargo run --release -p weir-operators --example fraud_throughput [rows]
//! ```
//!
//! Generates `rows` transaction slots (default 2 000 000; 10 000 accounts,
//! 5 % of rows out of order by up to 5 s, 1 % duplicated, 0.1 % of slots
//! starting a case of each kind) in memory, then runs each rule alone on
//! one thread over the batches, with a watermark of max event time - 5 s
//! after every batch, and prints rows per second (operator time only:
//! generation and deduplication are not counted), alerts, and whether every
//! injected case of the rule's kind was found with no alert on a clean row.
//! Velocity and amount spike get deduplicated input (they are not
//! duplicate-tolerant); the others get the raw stream.

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

use arrow::array::{Array, AsArray, BooleanArray, Float64Array, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use weir_connectors::transactions::{generate_batches, schema, FraudKind, TransactionsOptions};
use weir_engine::operator::{Collector, Operator, OperatorContext, Output};
use weir_engine::Result;
use weir_operators::fraud::{
    haversine_km, AmountSpikeConfig, DeviceSharingConfig, FraudOperator, FraudRule,
    ImpossibleTravelConfig, SmallThenLargeConfig, VelocityConfig,
};

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
const DELAY: i64 = 5_000;

struct Outcome {
    rows: usize,
    secs: f64,
    alerts: usize,
    found: usize,
    cases: usize,
    clean: usize,
}

fn run<R: FraudRule>(
    mut op: FraudOperator<R>,
    batches: &[RecordBatch],
    kind: FraudKind,
    cases: &BTreeSet<i64>,
) -> Result<Outcome> {
    let mut ctx = OperatorContext::standalone("bench");
    let mut out = Collector::new();
    let mut max = i64::MIN;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let start = Instant::now();
    for b in batches {
        let times = b.column(TIME).as_primitive::<TimestampMillisecondType>();
        max = max.max(times.values().iter().copied().max().unwrap_or(i64::MIN));
        op.process_batch(b.clone(), &mut ctx, &mut out)?;
        let wm = max - DELAY;
        if ctx.watermark.is_none_or(|w| wm > w) {
            ctx.watermark = Some(wm);
            op.on_watermark(wm, &mut ctx, &mut out)?;
        }
    }
    op.on_end(&mut ctx, &mut out)?;
    let secs = start.elapsed().as_secs_f64();
    let mut alerts = 0;
    let mut clean = 0;
    let mut found = BTreeSet::new();
    for o in out.take() {
        if let Output::Batch(b) = o {
            alerts += b.num_rows();
            let n = b.num_columns();
            let case = b.column(n - 2).as_primitive::<Int64Type>();
            let label = b.column(n - 1).as_string::<i32>();
            for r in 0..b.num_rows() {
                if label.is_null(r) {
                    clean += 1;
                } else if label.value(r) == kind.label() {
                    found.insert(case.value(r));
                }
            }
        }
    }
    Ok(Outcome {
        rows,
        secs,
        alerts,
        found: found.intersection(cases).count(),
        cases: cases.len(),
        clean,
    })
}

fn main() -> Result<()> {
    let slots: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let options = TransactionsOptions {
        events_num: Some(slots),
        out_of_order_rate: 0.05,
        out_of_order_max_delay_ms: DELAY as u64,
        duplicate_rate: 0.01,
        batch_size: 8_192,
        ..Default::default()
    };
    let start = Instant::now();
    let raw = generate_batches(&options, &schema(), 0, 1)?;
    let gen_secs = start.elapsed().as_secs_f64();
    let raw_rows: usize = raw.iter().map(RecordBatch::num_rows).sum();
    println!(
        "generator: {raw_rows} rows in {gen_secs:.2} s = {:.2} M rows/s (all 12 columns, one split)",
        raw_rows as f64 / gen_secs / 1e6
    );

    let mut seen = HashSet::new();
    let dedup: Vec<RecordBatch> = raw
        .iter()
        .map(|b| {
            let ids = b.column(TX_ID).as_primitive::<Int64Type>();
            let keep: BooleanArray = ids
                .values()
                .iter()
                .map(|id| Some(seen.insert(*id)))
                .collect();
            filter_record_batch(b, &keep)
        })
        .collect::<std::result::Result<_, _>>()?;
    let mut cases: std::collections::BTreeMap<FraudKind, BTreeSet<i64>> = Default::default();
    for b in &dedup {
        let label = b.column(LABEL).as_string::<i32>();
        let case = b.column(CASE).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            if let Some(kind) = label
                .is_valid(r)
                .then(|| FraudKind::from_label(label.value(r)))
                .flatten()
            {
                cases.entry(kind).or_default().insert(case.value(r));
            }
        }
    }
    let schema = schema();
    let carry = vec![CASE, LABEL];
    let cases_of = |k: FraudKind| cases.get(&k).cloned().unwrap_or_default();
    let mut results = Vec::new();

    let mut c = VelocityConfig::new(vec![CARD], TIME).with_amount(AMOUNT, 20_000.0);
    c.carry = carry.clone();
    results.push((
        "velocity (card, dedup'd)",
        run(
            c.build(&schema)?,
            &dedup,
            FraudKind::Velocity,
            &cases_of(FraudKind::Velocity),
        )?,
    ));
    let mut c = AmountSpikeConfig::new(vec![CARD], TIME, AMOUNT);
    c.carry = carry.clone();
    results.push((
        "amount_spike (card, dedup'd)",
        run(
            c.build(&schema)?,
            &dedup,
            FraudKind::AmountSpike,
            &cases_of(FraudKind::AmountSpike),
        )?,
    ));
    let mut c = ImpossibleTravelConfig::new(vec![CARD], TIME, LAT, LON);
    c.carry = carry.clone();
    results.push((
        "impossible_travel (card)",
        run(
            c.build(&schema)?,
            &raw,
            FraudKind::ImpossibleTravel,
            &cases_of(FraudKind::ImpossibleTravel),
        )?,
    ));
    let mut c = SmallThenLargeConfig::new(vec![ACCOUNT], TIME, AMOUNT);
    c.carry = carry.clone();
    results.push((
        "small_then_large (account)",
        run(
            c.build(&schema)?,
            &raw,
            FraudKind::SmallThenLarge,
            &cases_of(FraudKind::SmallThenLarge),
        )?,
    ));
    let mut c = DeviceSharingConfig::new(vec![DEVICE], TIME, CARD);
    c.carry = carry;
    results.push((
        "device_sharing (device)",
        run(
            c.build(&schema)?,
            &raw,
            FraudKind::DeviceSharing,
            &cases_of(FraudKind::DeviceSharing),
        )?,
    ));

    println!(
        "{:<30} {:>10} {:>12} {:>8} {:>14} {:>12}",
        "rule", "rows", "M rows/s", "alerts", "cases found", "clean alerts"
    );
    for (name, o) in &results {
        println!(
            "{:<30} {:>10} {:>12.2} {:>8} {:>14} {:>12}",
            name,
            o.rows,
            o.rows as f64 / o.secs / 1e6,
            o.alerts,
            format!("{}/{}", o.found, o.cases),
            o.clean
        );
    }

    // The haversine kernel over consecutive rows' locations.
    let lat: Vec<&Float64Array> = raw
        .iter()
        .map(|b| b.column(LAT).as_primitive::<Float64Type>())
        .collect();
    let lon: Vec<&Float64Array> = raw
        .iter()
        .map(|b| b.column(LON).as_primitive::<Float64Type>())
        .collect();
    let start = Instant::now();
    let mut total = 0usize;
    let mut sum = 0.0;
    for (la, lo) in lat.iter().zip(&lon) {
        let n = la.len();
        if n < 2 {
            continue;
        }
        let d = haversine_km(
            &Float64Array::slice(la, 0, n - 1),
            &Float64Array::slice(lo, 0, n - 1),
            &Float64Array::slice(la, 1, n - 1),
            &Float64Array::slice(lo, 1, n - 1),
        )?;
        total += d.len();
        sum += d.values().iter().sum::<f64>();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "haversine_km kernel: {total} rows in {secs:.3} s = {:.1} M rows/s (mean {:.0} km)",
        total as f64 / secs / 1e6,
        sum / total.max(1) as f64
    );
    Ok(())
}
