//! The transactions generator: determinism, splits, dense per-account
//! sequence numbers, out-of-order and duplicate rates and bounds, labels and
//! the shape of each injected case, options.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use common::{
    err_text, rows, rows_by_split, run_restored, run_source, run_until_checkpoint, table,
};
use weir_connectors::transactions::{
    generate_batches, schema, split_accounts, FraudKind, TransactionsOptions, FRAUD_DEVICE_BASE,
};
use weir_connectors::ConnectorRegistry;
use weir_engine::Result;

/// One row of the full schema.
#[derive(Debug, Clone, PartialEq)]
struct Tx {
    tx_id: i64,
    account: i64,
    card: i64,
    device: i64,
    merchant: i64,
    amount: f64,
    lat: f64,
    lon: f64,
    seq: i64,
    t: i64,
    label: Option<String>,
    case: Option<i64>,
}

fn decode(batches: &[RecordBatch]) -> Vec<Tx> {
    let mut out = Vec::new();
    for b in batches {
        let i = |c: usize| b.column(c).as_primitive::<Int64Type>().clone();
        let f = |c: usize| b.column(c).as_primitive::<Float64Type>().clone();
        let (tx, acc, card, dev, mer, seq, case) = (i(0), i(1), i(2), i(3), i(4), i(8), i(11));
        let (amount, lat, lon) = (f(5), f(6), f(7));
        let t = b.column(9).as_primitive::<TimestampMillisecondType>();
        let label = b.column(10).as_string::<i32>();
        for r in 0..b.num_rows() {
            out.push(Tx {
                tx_id: tx.value(r),
                account: acc.value(r),
                card: card.value(r),
                device: dev.value(r),
                merchant: mer.value(r),
                amount: amount.value(r),
                lat: lat.value(r),
                lon: lon.value(r),
                seq: seq.value(r),
                t: t.value(r),
                label: label.is_valid(r).then(|| label.value(r).to_string()),
                case: case.is_valid(r).then(|| case.value(r)),
            });
        }
    }
    out
}

/// 200 accounts of 2 cards every 500 ms: a card transacts every 200 s,
/// an episode is 2 cycles.
fn options(events: u64) -> TransactionsOptions {
    TransactionsOptions {
        events_num: Some(events),
        accounts: 200,
        event_interval_ms: 500,
        batch_size: 1000,
        ..Default::default()
    }
    .with_fraud_rate(0.003)
}

fn generate(o: &TransactionsOptions, splits: usize) -> Result<Vec<Vec<Tx>>> {
    (0..splits)
        .map(|s| Ok(decode(&generate_batches(o, &schema(), s, splits)?)))
        .collect()
}

#[test]
fn same_seed_same_rows_other_seed_other_rows() -> Result<()> {
    let o = options(20_000);
    assert_eq!(generate(&o, 1)?, generate(&o, 1)?);
    let other = TransactionsOptions {
        seed: 7,
        ..o.clone()
    };
    assert_ne!(generate(&o, 1)?, generate(&other, 1)?);
    Ok(())
}

#[test]
fn splits_partition_the_accounts_and_the_rows() -> Result<()> {
    let mut o = options(30_000);
    o.out_of_order_rate = 0.1;
    o.duplicate_rate = 0.05;
    let one: Vec<Tx> = generate(&o, 1)?.concat();
    let three = generate(&o, 3)?;
    for (s, rows) in three.iter().enumerate() {
        let (lo, hi) = split_accounts(o.accounts, s, 3);
        assert!(!rows.is_empty());
        assert!(rows
            .iter()
            .all(|r| (lo as i64..=hi as i64).contains(&r.account)));
    }
    let key = |r: &Tx| (r.tx_id, r.t, r.seq);
    let mut a: Vec<Tx> = one.clone();
    let mut b: Vec<Tx> = three.concat();
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert_eq!(a, b, "the union of the splits is the single split");
    // Per account, even the emission order is the same.
    let per_account = |rows: &[Tx]| {
        let mut m: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for r in rows {
            m.entry(r.account).or_default().push(r.tx_id);
        }
        m
    };
    assert_eq!(per_account(&one), per_account(&three.concat()));
    Ok(())
}

#[test]
fn seq_is_dense_per_account_in_event_time_order() -> Result<()> {
    let mut o = options(40_000);
    o.out_of_order_rate = 0.2;
    o.out_of_order_max_delay_ms = 3_000;
    o.duplicate_rate = 0.1;
    let rows = generate(&o, 2)?.concat();
    let mut distinct: BTreeMap<i64, Tx> = BTreeMap::new();
    for r in &rows {
        if let Some(first) = distinct.get(&r.tx_id) {
            assert_eq!(first, r, "a duplicate is an exact copy");
        } else {
            distinct.insert(r.tx_id, r.clone());
        }
    }
    let mut by_account: BTreeMap<i64, Vec<&Tx>> = BTreeMap::new();
    for r in distinct.values() {
        by_account.entry(r.account).or_default().push(r);
    }
    assert_eq!(by_account.len(), 200);
    for (a, mut txs) in by_account {
        txs.sort_by_key(|r| r.seq);
        for (i, w) in txs.iter().enumerate() {
            assert_eq!(w.seq, i as i64 + 1, "account {a}");
        }
        assert!(
            txs.windows(2).all(|w| w[0].t < w[1].t),
            "account {a}: seq follows strictly increasing event time"
        );
    }
    Ok(())
}

#[test]
fn out_of_order_and_duplicates_match_their_rates_and_bounds() -> Result<()> {
    let mut o = options(100_000);
    o.out_of_order_rate = 0.05;
    o.out_of_order_max_delay_ms = 2_000;
    o.duplicate_rate = 0.02;
    for rows in generate(&o, 2)? {
        let n = rows.len() as f64;
        // Lateness: with a watermark of max - 2 s, no row is at or below it.
        let mut max = i64::MIN;
        let mut late = 0;
        let mut behind = 0;
        for r in &rows {
            if r.t <= max.saturating_sub(2_000) {
                late += 1;
            }
            if r.t < max {
                behind += 1;
            }
            max = max.max(r.t);
        }
        assert_eq!(late, 0);
        // Rows emitted behind the maximum: the delayed ones (and duplicates).
        let frac = behind as f64 / n;
        assert!((0.03..0.09).contains(&frac), "{frac}");
        let mut seen: HashMap<i64, usize> = HashMap::new();
        let mut dups = 0;
        for (i, r) in rows.iter().enumerate() {
            if let Some(first) = seen.insert(r.tx_id, i) {
                dups += 1;
                assert!(first < i, "a duplicate comes after its original");
            }
        }
        let dup_frac = dups as f64 / (n - dups as f64);
        assert!((0.015..0.025).contains(&dup_frac), "{dup_frac}");
        // Rows of one account come out of seq order sometimes.
        let mut last: HashMap<i64, i64> = HashMap::new();
        let mut swapped = 0;
        for r in &rows {
            let prev = last.entry(r.account).or_insert(0);
            if r.seq < *prev {
                swapped += 1;
            }
            *prev = (*prev).max(r.seq);
        }
        assert!(swapped > 100, "{swapped}");
    }
    Ok(())
}

#[test]
fn without_fraud_exactly_events_num_clean_rows() -> Result<()> {
    let o = options(12_345).with_fraud_rate(0.0);
    let rows = generate(&o, 3)?.concat();
    assert_eq!(rows.len(), 12_345);
    assert!(rows.iter().all(|r| r.label.is_none() && r.case.is_none()));
    assert!(rows.iter().all(|r| r.device == r.card && r.tx_id % 16 == 0));
    Ok(())
}

#[test]
fn clean_rows_and_every_case_look_as_documented() -> Result<()> {
    let o = options(200_000);
    let rows = generate(&o, 1)?.concat();
    let mut cases: BTreeMap<i64, Vec<&Tx>> = BTreeMap::new();
    let mut home: HashMap<i64, BTreeSet<i64>> = HashMap::new();
    for r in &rows {
        assert_eq!(r.label.is_some(), r.case.is_some());
        match r.case {
            Some(c) => cases.entry(c).or_default().push(r),
            None => {
                assert!(r.amount >= 1.0, "clean amount {}", r.amount);
                assert_eq!(r.device, r.card);
                assert_eq!(r.card, (r.account - 1) * 2 + 1 + (r.card - 1) % 2);
                home.entry(r.account)
                    .or_default()
                    .insert((r.merchant - 1) % 40);
            }
        }
        assert_eq!((r.amount * 100.0).round() / 100.0, r.amount);
    }
    assert!(
        home.values().all(|cities| cities.len() == 1),
        "one home city per account"
    );
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (id, rs) in &cases {
        let label = rs[0].label.clone().unwrap_or_default();
        assert!(rs
            .iter()
            .all(|r| r.label.as_deref() == Some(label.as_str())));
        assert_eq!(rs[0].tx_id, *id, "the case id is its first row's tx_id");
        *per_kind.entry(label.clone()).or_default() += 1;
        let span = rs.iter().map(|r| r.t).max().unwrap_or(0) - rs[0].t;
        let one_card = rs.iter().all(|r| r.card == rs[0].card);
        match FraudKind::from_label(&label) {
            Some(FraudKind::Velocity) => {
                assert!(rs.len() == 8 && one_card && span <= 16_000);
            }
            Some(FraudKind::AmountSpike) => {
                assert!(rs.len() == 1 && (8_000.0..10_000.0).contains(&rs[0].amount));
            }
            Some(FraudKind::ImpossibleTravel) => {
                assert!(rs.len() == 2 && one_card);
                let d = weir_connectors::transactions::distance_km(
                    (rs[0].lat, rs[0].lon),
                    (rs[1].lat, rs[1].lon),
                );
                assert!(d >= 2_000.0, "{d}");
            }
            Some(FraudKind::SmallThenLarge) => {
                assert!(rs.len() == 2 && rs[0].amount < 1.0 && rs[1].amount > 500.0);
                assert!(rs[1].t - rs[0].t <= 30_000);
            }
            Some(FraudKind::DeviceSharing) => {
                let cards: BTreeSet<i64> = rs.iter().map(|r| r.card).collect();
                assert!(rs.len() == 5 && cards.len() == 5 && span <= 50_000);
                assert!(rs.iter().all(|r| r.device == FRAUD_DEVICE_BASE + id));
            }
            None => panic!("unknown label {label}"),
        }
    }
    // About rate × slots cases of each kind (spikes start after 30 cycles).
    for kind in FraudKind::ALL {
        let n = per_kind.get(kind.label()).copied().unwrap_or(0);
        assert!((300..=900).contains(&n), "{}: {n} cases", kind.label());
    }
    Ok(())
}

#[test]
fn declared_columns_any_subset_any_order() -> Result<()> {
    let s: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("fraud_label", DataType::Utf8, true),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("account_id", DataType::Int64, true),
    ]));
    let o = options(1_000);
    let part = generate_batches(&o, &s, 0, 1)?;
    let full = generate_batches(&o, &schema(), 0, 1)?;
    let project = |b: &RecordBatch| b.project(&[10, 9, 1]);
    let expected: Vec<RecordBatch> = full
        .iter()
        .map(project)
        .collect::<std::result::Result<_, _>>()?;
    assert_eq!(rows(&part)?, rows(&expected)?);
    let bad: SchemaRef = Arc::new(Schema::new(vec![Field::new(
        "amount",
        DataType::Int64,
        true,
    )]));
    let e = err_text(generate_batches(&o, &bad, 0, 1));
    assert!(
        e.contains(
            "column 'amount' is declared as Int64, but the transactions table's 'amount' is DOUBLE"
        ),
        "{e}"
    );
    let bad: SchemaRef = Arc::new(Schema::new(vec![Field::new(
        "Amount",
        DataType::Float64,
        true,
    )]));
    let e = err_text(generate_batches(&o, &bad, 0, 1));
    assert!(e.contains("did you mean 'amount'?"), "{e}");
    Ok(())
}

#[test]
fn options_are_typed_and_checked() {
    let registry = ConnectorRegistry::with_defaults();
    let src = |opts: &[(&str, &str)]| {
        let mut all = vec![("connector", "transactions")];
        all.extend_from_slice(opts);
        registry.source(&table("tx", schema(), &all)).map(|_| ())
    };
    assert!(src(&[]).is_ok());
    assert!(src(&[
        ("events.num", "10"),
        ("event-interval", "20 ms"),
        ("out-of-order.rate", "0.1"),
        ("out-of-order.max-delay", "2s"),
        ("fraud.velocity.rate", "0"),
        ("base-time", "2025-06-01 00:00:00"),
    ])
    .is_ok());
    let e = err_text(src(&[("fraud.rte", "0.1")]));
    assert!(
        e.contains(
            "unknown option 'fraud.rte' for connector 'transactions' (did you mean 'fraud.rate'?"
        ),
        "{e}"
    );
    let e = err_text(src(&[("duplicate.rate", "2")]));
    assert!(e.contains("option 'duplicate.rate' = '2' is not valid for connector 'transactions': expected a number between 0 and 1"), "{e}");
    let e = err_text(src(&[("event-interval", "fast")]));
    assert!(e.contains("expected a duration"), "{e}");
    let e = err_text(src(&[("accounts", "5")]));
    assert!(e.contains("more than 1 s of event time"), "{e}");
    assert!(src(&[("accounts", "5"), ("fraud.rate", "0")]).is_ok());
    let e = err_text(src(&[("fraud.rate", "0.05")]));
    assert!(e.contains("fraud rates are too high"), "{e}");
    let e = err_text(src(&[("merchants", "10")]));
    assert!(e.contains("at least 40"), "{e}");
    let e = err_text(src(&[
        ("out-of-order.rate", "0.1"),
        ("out-of-order.max-delay", "0"),
    ]));
    assert!(
        e.contains("needs a positive 'out-of-order.max-delay'"),
        "{e}"
    );
}

#[tokio::test]
async fn the_source_runs_its_splits_and_reports_positions() -> Result<()> {
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "tx",
        schema(),
        &[
            ("connector", "transactions"),
            ("events.num", "5000"),
            ("accounts", "200"),
            ("event-interval", "500"),
            ("fraud.rate", "0.003"),
            ("splits", "3"),
            ("batch.size", "700"),
        ],
    );
    let factory = registry.source(&t)?;
    assert!(factory
        .describe()
        .starts_with("transactions (12 columns, 5000 slots"));
    let mut all = Vec::new();
    for subtask in 0..2 {
        let run = run_source(factory.as_ref(), subtask, 2).await?;
        run.result?;
        assert_eq!(run.split_count, if subtask == 0 { 2 } else { 1 });
        all.extend(decode(
            &run.batches.into_iter().map(|(_, b)| b).collect::<Vec<_>>(),
        ));
    }
    let mut expected = generate(&options(5_000), 1)?.concat();
    let key = |r: &Tx| r.tx_id;
    all.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(all, expected);
    Ok(())
}

#[tokio::test]
async fn paced_source_takes_about_rows_over_rate() -> Result<()> {
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "tx",
        schema(),
        &[
            ("connector", "transactions"),
            ("events.num", "300"),
            ("events.rate", "1000"),
            ("fraud.rate", "0"),
        ],
    );
    let factory = registry.source(&t)?;
    let start = std::time::Instant::now();
    let run = run_source(factory.as_ref(), 0, 1).await?;
    run.result?;
    let took = start.elapsed().as_secs_f64();
    let n: usize = run.batches.iter().map(|(_, b)| b.num_rows()).sum();
    assert_eq!(n, 300);
    assert!((0.2..3.0).contains(&took), "{took}");
    Ok(())
}

/// Snapshot midway (through a real barrier, late and duplicate rows held
/// back at that moment), restore into a new source: the rows before plus
/// the rows after are, split by split, those of an uninterrupted run.
#[tokio::test]
async fn a_restored_source_continues_exactly_where_the_checkpoint_was() -> Result<()> {
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "tx",
        schema(),
        &[
            ("connector", "transactions"),
            ("events.num", "20000"),
            ("accounts", "200"),
            ("event-interval", "500"),
            ("fraud.rate", "0.003"),
            ("out-of-order.rate", "0.2"),
            ("out-of-order.max-delay", "5000"),
            ("duplicate.rate", "0.1"),
            ("splits", "3"),
            ("batch.size", "333"),
        ],
    );
    let factory = registry.source(&t)?;
    for subtask in 0..2 {
        let whole = run_source(factory.as_ref(), subtask, 2).await?;
        whole.result?;
        let expected = rows_by_split(&whole.batches)?;
        for after in [1, 7, 20] {
            let Some(cut) = run_until_checkpoint(factory.as_ref(), subtask, 2, None, after).await?
            else {
                panic!("subtask {subtask} ended before a checkpoint after {after} batches");
            };
            assert!(cut
                .positions
                .iter()
                .all(|p| p.split.starts_with("transactions/")));
            let rest = run_restored(factory.as_ref(), subtask, 2, &cut.positions).await?;
            let mut joined = cut.batches;
            joined.extend(rest);
            assert_eq!(
                rows_by_split(&joined)?,
                expected,
                "subtask {subtask}, cut after {after}"
            );
        }
    }
    // A position past the split's end, or not a number, is a state error.
    let mut s = factory.create(0, 1)?;
    let e = err_text(s.restore_positions(&[weir_engine::source::SplitPosition {
        split: "transactions/0".into(),
        position: "many".into(),
    }]));
    assert!(e.contains("is not a row count"), "{e}");
    let e = err_text(s.restore_positions(&[weir_engine::source::SplitPosition {
        split: "transactions/9".into(),
        position: "1".into(),
    }]));
    assert!(e.contains("not read by this subtask"), "{e}");
    Ok(())
}
