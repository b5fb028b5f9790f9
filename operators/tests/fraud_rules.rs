//! Every fraud rule on the transactions generator's output, with rows out
//! of order and duplicated: each rule alerts on every injected case of its
//! kind and never on a clean row, no row is late under a watermark of the
//! generator's documented delay, and a snapshot taken midway changes
//! nothing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::OnceLock;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use weir_connectors::transactions::{generate_batches, schema, FraudKind, TransactionsOptions};
use weir_engine::operator::{Collector, Operator, OperatorContext, Output};
use weir_engine::state::OperatorState;
use weir_engine::Result;
use weir_operators::fraud::{
    AlertMode, AmountSpikeConfig, DeviceSharingConfig, FraudOperator, FraudRule,
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

/// The watermark delay: the generator's out-of-order bound.
const MAX_DELAY_MS: u64 = 5_000;

/// 200 accounts, a card every 200 s, 5 % of rows late by up to 5 s, 2 %
/// duplicated, about 0.3 % of slots starting a case of each kind; two splits.
fn input() -> &'static Vec<Vec<RecordBatch>> {
    static INPUT: OnceLock<Vec<Vec<RecordBatch>>> = OnceLock::new();
    INPUT.get_or_init(|| {
        let o = TransactionsOptions {
            events_num: Some(150_000),
            accounts: 200,
            event_interval_ms: 500,
            out_of_order_rate: 0.05,
            out_of_order_max_delay_ms: MAX_DELAY_MS,
            duplicate_rate: 0.02,
            batch_size: 1_024,
            seed: 11,
            ..Default::default()
        }
        .with_fraud_rate(0.003);
        (0..2)
            .map(|s| generate_batches(&o, &schema(), s, 2).expect("generate"))
            .collect()
    })
}

/// The injected cases by kind.
fn cases() -> BTreeMap<FraudKind, BTreeSet<i64>> {
    let mut out: BTreeMap<FraudKind, BTreeSet<i64>> = BTreeMap::new();
    for b in input().iter().flatten() {
        let label = b.column(LABEL).as_string::<i32>();
        let case = b.column(CASE).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            if label.is_valid(r) {
                let kind = FraudKind::from_label(label.value(r)).expect("a known label");
                out.entry(kind).or_default().insert(case.value(r));
            }
        }
    }
    out
}

/// Runs `op` over both splits interleaved, as the runtime would: per-split
/// watermarks of max event time - MAX_DELAY, the minimum forwarded;
/// optionally dropping rows whose tx_id was seen (deduplication first);
/// optionally snapshotting after `checkpoint_at` batches and continuing in
/// a new operator restored from it. Returns the alerts and the late count.
fn run<R: FraudRule>(
    make: impl Fn() -> FraudOperator<R>,
    dedupe: bool,
    checkpoint_at: Option<usize>,
) -> Result<(Vec<RecordBatch>, u64)> {
    let mut op = make();
    let mut ctx = OperatorContext::standalone("rule");
    let mut alerts = Vec::new();
    let collect = |c: &mut Collector, alerts: &mut Vec<RecordBatch>| {
        for o in c.take() {
            if let Output::Batch(b) = o {
                alerts.push(b);
            }
        }
    };
    let splits = input();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut max = [i64::MIN; 2];
    let mut fed = 0;
    let longest = splits.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for (s, batches) in splits.iter().enumerate() {
            let Some(batch) = batches.get(i) else {
                max[s] = i64::MAX; // ended: no longer holds the watermark
                continue;
            };
            let times = batch
                .column(TIME)
                .as_primitive::<TimestampMillisecondType>();
            max[s] = max[s].max(times.values().iter().copied().max().unwrap_or(i64::MIN));
            let batch = if dedupe {
                let ids = batch.column(TX_ID).as_primitive::<Int64Type>();
                let keep: arrow::array::BooleanArray = ids
                    .values()
                    .iter()
                    .map(|id| Some(seen.insert(*id)))
                    .collect();
                filter_record_batch(batch, &keep)?
            } else {
                batch.clone()
            };
            let mut c = Collector::new();
            op.process_batch(batch, &mut ctx, &mut c)?;
            collect(&mut c, &mut alerts);
            let wm = max.iter().min().copied().unwrap_or(i64::MIN);
            if wm != i64::MIN && wm != i64::MAX {
                let wm = wm - MAX_DELAY_MS as i64;
                if ctx.watermark.is_none_or(|w| wm > w) {
                    ctx.watermark = Some(wm);
                    op.on_watermark(wm, &mut ctx, &mut c)?;
                    collect(&mut c, &mut alerts);
                }
            }
            fed += 1;
            if checkpoint_at == Some(fed) {
                let bytes = op.snapshot()?.to_bytes()?;
                op = make();
                op.restore(OperatorState::from_bytes(&bytes)?)?;
            }
        }
    }
    let mut c = Collector::new();
    op.on_end(&mut ctx, &mut c)?;
    collect(&mut c, &mut alerts);
    let late = ctx
        .metrics
        .late_rows_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    let rows: usize = alerts.iter().map(RecordBatch::num_rows).sum();
    if checkpoint_at.is_none() {
        assert_eq!(ctx.metrics.count("alerts"), rows as u64);
    }
    Ok((alerts, late))
}

/// Alerts by the label of their triggering row (`None`: a clean row), as
/// sets of case ids, plus the number of alerts on clean rows.
fn by_label(alerts: &[RecordBatch]) -> (BTreeMap<FraudKind, BTreeSet<i64>>, usize) {
    let mut out: BTreeMap<FraudKind, BTreeSet<i64>> = BTreeMap::new();
    let mut clean = 0;
    for b in alerts {
        let n = b.num_columns();
        // The carried columns are the last two: fraud_case, fraud_label.
        let case = b.column(n - 2).as_primitive::<Int64Type>();
        let label = b.column(n - 1).as_string::<i32>();
        for r in 0..b.num_rows() {
            match label
                .is_valid(r)
                .then(|| FraudKind::from_label(label.value(r)))
                .flatten()
            {
                Some(kind) => {
                    out.entry(kind).or_default().insert(case.value(r));
                }
                None => clean += 1,
            }
        }
    }
    (out, clean)
}

/// Checks one rule: every case of `kind` found, no clean row alerted, no
/// row late; the same alerts with a snapshot taken midway.
fn check<R: FraudRule>(
    name: &str,
    kind: FraudKind,
    make: impl Fn() -> FraudOperator<R>,
    dedupe: bool,
) -> Result<()> {
    let expected = cases();
    let want = expected.get(&kind).cloned().unwrap_or_default();
    assert!(
        want.len() >= 100,
        "{name}: only {} cases injected",
        want.len()
    );
    let (alerts, late) = run(&make, dedupe, None)?;
    assert_eq!(late, 0, "{name}: late rows");
    let (found, clean) = by_label(&alerts);
    assert_eq!(clean, 0, "{name}: alerts on clean rows");
    let got = found.get(&kind).cloned().unwrap_or_default();
    let missed: Vec<&i64> = want.difference(&got).collect();
    assert!(
        missed.is_empty(),
        "{name}: missed {} of {} cases: {missed:?}",
        missed.len(),
        want.len()
    );
    let other: BTreeMap<&str, usize> = found
        .iter()
        .filter(|(k, _)| **k != kind)
        .map(|(k, v)| (k.label(), v.len()))
        .collect();
    eprintln!(
        "{name}: {} alerts, all {} {} cases found; cases of other kinds alerted: {other:?}",
        alerts.iter().map(RecordBatch::num_rows).sum::<usize>(),
        want.len(),
        kind.label()
    );
    let (restored, _) = run(&make, dedupe, Some(150))?;
    assert_eq!(
        arrow::compute::concat_batches(&alerts[0].schema(), &alerts)?,
        arrow::compute::concat_batches(&alerts[0].schema(), &restored)?,
        "{name}: a snapshot midway changes the alerts"
    );
    Ok(())
}

#[test]
fn velocity_finds_every_burst_and_no_clean_row() -> Result<()> {
    let make = |mode: AlertMode| {
        move || {
            let mut c = VelocityConfig::new(vec![CARD], TIME).with_amount(AMOUNT, 20_000.0);
            c.alert_mode = mode;
            c.carry = vec![CASE, LABEL];
            c.build(&schema()).expect("rule")
        }
    };
    // Not duplicate-tolerant: deduplicate first.
    check(
        "velocity",
        FraudKind::Velocity,
        make(AlertMode::OnBreach),
        true,
    )?;
    check(
        "velocity (every row)",
        FraudKind::Velocity,
        make(AlertMode::EveryRow),
        true,
    )
}

#[test]
fn amount_spike_finds_every_spike_and_no_clean_row() -> Result<()> {
    let make = || {
        let mut c = AmountSpikeConfig::new(vec![CARD], TIME, AMOUNT);
        c.carry = vec![CASE, LABEL];
        c.build(&schema()).expect("rule")
    };
    check("amount_spike", FraudKind::AmountSpike, make, true)
}

#[test]
fn impossible_travel_finds_every_trip_with_duplicates_in_the_input() -> Result<()> {
    let make = || {
        let mut c = ImpossibleTravelConfig::new(vec![CARD], TIME, LAT, LON);
        c.carry = vec![CASE, LABEL];
        c.build(&schema()).expect("rule")
    };
    check(
        "impossible_travel",
        FraudKind::ImpossibleTravel,
        make,
        false,
    )
}

#[test]
fn small_then_large_by_account_and_by_card_with_duplicates_in_the_input() -> Result<()> {
    for key in [ACCOUNT, CARD] {
        let make = move || {
            let mut c = SmallThenLargeConfig::new(vec![key], TIME, AMOUNT);
            c.carry = vec![CASE, LABEL];
            c.build(&schema()).expect("rule")
        };
        check("small_then_large", FraudKind::SmallThenLarge, make, false)?;
    }
    Ok(())
}

#[test]
fn device_sharing_finds_every_shared_device_with_duplicates_in_the_input() -> Result<()> {
    let make = || {
        let mut c = DeviceSharingConfig::new(vec![DEVICE], TIME, CARD);
        c.carry = vec![CASE, LABEL];
        c.build(&schema()).expect("rule")
    };
    check("device_sharing", FraudKind::DeviceSharing, make, false)
}
