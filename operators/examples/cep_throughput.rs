//! Throughput of the `MATCH_RECOGNIZE` operator on a fraud-like workload.
//!
//! ```text
//! cargo run --release -p weir-operators --example cep_throughput -- [rows] [keys] [query]
//! ```
//!
//! Transactions `(card BIGINT, ts TIMESTAMP(3), amount DOUBLE)` for `keys`
//! cards (default 100 000), one millisecond apart, in batches of 8192 rows
//! with a watermark one second behind after each batch. Two queries:
//!
//! - `small-then-large`: Flink's fraud tutorial rule,
//!   `PATTERN (A B) WITHIN INTERVAL '1' MINUTE
//!    DEFINE A AS A.amount < 1, B AS B.amount > 500`
//!   (conditions on the current row only: evaluated vectorized);
//! - `rising-run`: `PATTERN (A B{3,} C) WITHIN INTERVAL '1' MINUTE
//!    DEFINE B AS B.amount > LAST(B.amount, 1) OR LAST(B.amount, 1) IS NULL,
//!    C AS C.amount < LAST(B.amount)` with `SUM(B.amount)` as a measure
//!   (conditions that navigate: evaluated per partial match and row).
//!
//! Reports rows per second of one core (input generation excluded). The
//! optional `query` argument runs only one of them.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion_expr::Operator as Op;
use datafusion_physical_expr::expressions::Column;
use weir_engine::operator::{Collector, Operator, OperatorContext, Output};
use weir_engine::Result;
use weir_operators::cep::{
    expr, AggFunc, CompiledMatch, ExprCondition, ExprMeasure, MatchSpec, Navigation, Pattern,
    SkipStrategy, VarRef,
};
use weir_operators::match_recognize::MatchRecognize;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("card", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("amount", DataType::Float64, false),
    ]))
}

/// Deterministic transactions: 1% below 1.00, 1% above 500, the rest in
/// between.
fn generate(rows: usize, keys: u64) -> Vec<RecordBatch> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    let mut done = 0;
    while done < rows {
        let n = (rows - done).min(8192);
        let mut card = Vec::with_capacity(n);
        let mut ts = Vec::with_capacity(n);
        let mut amount = Vec::with_capacity(n);
        for i in 0..n {
            card.push((next() % keys) as i64);
            ts.push((done + i) as i64);
            let r = next() % 100;
            amount.push(match r {
                0 => (next() % 100) as f64 / 100.0,
                1 => 500.0 + (next() % 1000) as f64,
                _ => 1.0 + (next() % 49_900) as f64 / 100.0,
            });
        }
        out.push(
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from(card)),
                    Arc::new(TimestampMillisecondArray::from(ts)),
                    Arc::new(Float64Array::from(amount)),
                ],
            )
            .expect("batch"),
        );
        done += n;
    }
    out
}

fn small_then_large() -> Result<MatchSpec> {
    let s = schema();
    let amount = expr::col("amount", &s)?;
    let a = expr::binary(amount.clone(), Op::Lt, expr::lit(1.0), &s)?;
    let b = expr::binary(amount.clone(), Op::Gt, expr::lit(500.0), &s)?;
    Ok(MatchSpec::new(Pattern::parse("A B")?)
        .define("A", ExprCondition::row(a))
        .define("B", ExprCondition::row(b))
        .measure(ExprMeasure::navigation(
            "small",
            Navigation::last(VarRef::var("A"), amount.clone(), 0),
        ))
        .measure(ExprMeasure::navigation(
            "large",
            Navigation::last(VarRef::var("B"), amount, 0),
        ))
        .measure(ExprMeasure::navigation("at", Navigation::match_rowtime()))
        .skip(SkipStrategy::PastLastRow)
        .within_ms(60_000))
}

fn rising_run() -> Result<MatchSpec> {
    let s = schema();
    let amount = expr::col("amount", &s)?;
    let prev_b = vec![(
        "prev_b".to_string(),
        Navigation::last(VarRef::var("B"), amount.clone(), 1),
    )];
    let bs = expr::define_schema(&s, &prev_b)?;
    let prev = Arc::new(Column::new("prev_b", 3));
    let b = expr::or(
        expr::binary(amount.clone(), Op::Gt, prev.clone(), &bs)?,
        expr::is_null(prev)?,
        &bs,
    )?;
    let last_b = vec![(
        "last_b".to_string(),
        Navigation::last(VarRef::var("B"), amount.clone(), 0),
    )];
    let cs = expr::define_schema(&s, &last_b)?;
    let c = expr::binary(
        amount.clone(),
        Op::Lt,
        Arc::new(Column::new("last_b", 3)),
        &cs,
    )?;
    Ok(MatchSpec::new(Pattern::parse("A B{3,} C")?)
        .define("B", ExprCondition::new(b, prev_b))
        .define("C", ExprCondition::new(c, last_b))
        .measure(ExprMeasure::navigation(
            "total",
            Navigation::aggregate(AggFunc::Sum, VarRef::var("B"), Some(amount), &s)?,
        ))
        .skip(SkipStrategy::PastLastRow)
        .within_ms(60_000))
}

fn run(name: &str, spec: MatchSpec, batches: &[RecordBatch]) -> Result<()> {
    let compiled = Arc::new(CompiledMatch::try_new(spec, schema(), 1)?);
    let mut op = MatchRecognize::try_new(compiled, vec![0])?;
    let mut ctx = OperatorContext::standalone(name);
    let mut out = Collector::new();
    let mut matches = 0usize;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let start = Instant::now();
    let mut peak_rows = 0;
    for b in batches {
        let max = b.num_rows() as i64 - 1
            + b.column(1)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .map_or(0, |t| t.value(0));
        op.process_batch(b.clone(), &mut ctx, &mut out)?;
        let wm = max - 1_000;
        ctx.watermark = Some(wm);
        op.on_watermark(wm, &mut ctx, &mut out)?;
        for o in out.drain() {
            if let Output::Batch(b) = o {
                matches += b.num_rows();
            }
        }
        peak_rows = peak_rows.max(op.rows_kept());
    }
    op.on_end(&mut ctx, &mut out)?;
    for o in out.drain() {
        if let Output::Batch(b) = o {
            matches += b.num_rows();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:>16}: {rows} rows in {secs:.3} s = {:.0} rows/s; {matches} matches; \
         peak rows kept {peak_rows}; partitions at end {}",
        rows as f64 / secs,
        op.partitions()
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let keys: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    println!("generating {rows} transactions over {keys} cards");
    let only = args.get(3).map(String::as_str);
    let batches = generate(rows, keys);
    if only.is_none_or(|q| q == "small-then-large") {
        run("small-then-large", small_then_large()?, &batches)?;
    }
    if only.is_none_or(|q| q == "rising-run") {
        run("rising-run", rising_run()?, &batches)?;
    }
    Ok(())
}
