//! Rough single-core throughput check of window aggregation: COUNT and SUM
//! by key over 3.3M rows in 8192-row batches, a watermark after every batch
//! (not a benchmark; the benches crate owns those).
//!
//! `cargo run --release -p weir-operators --example window_throughput -- [--strings] [--hop | --session]`
//! (`GAP=<ms>` sets the session gap, default 500).
#![allow(missing_docs, clippy::unwrap_used)]
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion_functions_aggregate::count::count_udaf;
use datafusion_functions_aggregate::sum::sum_udaf;
use datafusion_physical_expr::aggregate::AggregateExprBuilder;
use datafusion_physical_expr::expressions::col;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_operators::session_window_aggregate::SessionWindowAggregate;
use weir_operators::window::{OutputColumn, WindowAggregateConfig, WindowSpec};
use weir_operators::window_aggregate::WindowAggregate;

fn main() {
    let string_keys = std::env::args().any(|a| a == "--strings");
    let session = std::env::args().any(|a| a == "--session");
    let hop = std::env::args().any(|a| a == "--hop");
    let keys: i64 = 10_000;
    let ktype = if string_keys {
        DataType::Utf8
    } else {
        DataType::Int64
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("k", ktype.clone(), false),
        Field::new("v", DataType::Int64, false),
    ]));
    let n_batches = 400;
    let rows = 8192;
    let batches: Vec<RecordBatch> = (0..n_batches)
        .map(|b| {
            let base = b as i64 * rows as i64;
            let ts: Vec<i64> = (0..rows as i64).map(|i| (base + i) / 4).collect();
            let k: Vec<i64> = (0..rows as i64)
                .map(|i| ((base + i) * 7919) % keys)
                .collect();
            let kcol: arrow::array::ArrayRef = if string_keys {
                Arc::new(StringArray::from(
                    k.iter().map(|x| format!("key-{x}")).collect::<Vec<_>>(),
                ))
            } else {
                Arc::new(Int64Array::from(k))
            };
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(TimestampMillisecondArray::from(ts)),
                    kcol,
                    Arc::new(Int64Array::from_iter_values(
                        (0..rows as i64).map(|i| i % 100),
                    )),
                ],
            )
            .unwrap()
        })
        .collect();
    let agg = |f, alias: &str| {
        Arc::new(
            AggregateExprBuilder::new(f, vec![col("v", &schema).unwrap()])
                .schema(schema.clone())
                .alias(alias)
                .build()
                .unwrap(),
        )
    };
    let c = agg(count_udaf(), "c");
    let s = agg(sum_udaf(), "s");
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let out_schema = Arc::new(Schema::new(vec![
        Field::new("window_start", ts.clone(), false),
        Field::new("window_end", ts, false),
        Field::new("k", ktype, false),
        c.field().as_ref().clone(),
        s.field().as_ref().clone(),
    ]));
    let window = if session {
        WindowSpec::Session {
            gap_ms: std::env::var("GAP")
                .ok()
                .and_then(|g| g.parse().ok())
                .unwrap_or(500),
        }
    } else if hop {
        WindowSpec::Hop {
            size_ms: 10_000,
            slide_ms: 2_000,
            offset_ms: 0,
        }
    } else {
        WindowSpec::Tumble {
            size_ms: 10_000,
            offset_ms: 0,
        }
    };
    let config = WindowAggregateConfig {
        window,
        time_column: 0,
        keys: vec![col("k", &schema).unwrap()],
        session_keys: vec![0],
        aggregates: vec![(c, None), (s, None)],
        output: vec![
            OutputColumn::WindowStart,
            OutputColumn::WindowEnd,
            OutputColumn::Key(0),
            OutputColumn::Aggregate(0),
            OutputColumn::Aggregate(1),
        ],
        output_schema: out_schema,
    };
    let mut op: Box<dyn Operator> = if session {
        Box::new(SessionWindowAggregate::try_new(config).unwrap())
    } else {
        Box::new(WindowAggregate::try_new(config).unwrap())
    };
    let mut ctx = OperatorContext::standalone("bench");
    let mut out = Collector::new();
    let start = Instant::now();
    let mut emitted = 0;
    for b in &batches {
        let wm = {
            let t = b
                .column(0)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap();
            t.value(t.len() - 1) - 1000
        };
        op.process_batch(b.clone(), &mut ctx, &mut out).unwrap();
        ctx.watermark = Some(wm);
        op.on_watermark(wm, &mut ctx, &mut out).unwrap();
        emitted += out.take().len();
    }
    op.on_end(&mut ctx, &mut out).unwrap();
    let el = start.elapsed();
    let total = (n_batches * rows) as f64;
    println!(
        "{} rows in {:?}: {:.2} M rows/s ({} outputs)",
        total,
        el,
        total / el.as_secs_f64() / 1e6,
        emitted
    );
}
