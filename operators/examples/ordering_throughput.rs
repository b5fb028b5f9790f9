//! Rough single-core throughput check of the ordering operators: sequence
//! ordering, deduplication, temporal sort and OVER aggregation, each over the
//! same 3.3M generated rows in 8192-row batches with a watermark after every
//! batch (not a benchmark; the benches crate owns those).
//!
//! The stream: 10,000 keys, a dense sequence number per key, event time
//! advancing 1 ms per 4 rows, rows displaced by up to 8,000 positions (2 s of
//! event time), 1% of rows duplicated later; watermark = max time - 3 s.
//!
//! `cargo run --release -p weir-operators --example ordering_throughput [-- NAME]`
//! (NAME filters the runs by substring, e.g. `over`).
#![allow(missing_docs, clippy::unwrap_used)]
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use weir_engine::operator::{Collector, Operator, OperatorContext, Output};
use weir_operators::deduplicate::{Deduplicate, DeduplicateConfig};
use weir_operators::over_aggregate::{
    OverAggregate, OverAggregateCall, OverAggregateConfig, OverFrame, OverFunction,
};
use weir_operators::sequence_order::{
    SequenceOrder, SequenceOrderConfig, SequenceOutput, SequenceStart,
};
use weir_operators::temporal_sort::{SortKey, TemporalSort, TemporalSortConfig};

const KEYS: i64 = 10_000;
const ROWS: usize = 400 * 8192;
const BATCH: usize = 8192;
const JITTER: u64 = 8_000;
const WATERMARK_DELAY: i64 = 3_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("k", DataType::Int64, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
        Field::new("d", DataType::Float64, false),
        Field::new("id", DataType::Int64, false),
    ]))
}

/// Batches of (ts, k, seq, v, d, id) in arrival order.
fn generate() -> Vec<RecordBatch> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut next_seq = vec![1i64; KEYS as usize];
    // (arrival position, row index, key, seq)
    let mut events: Vec<(u64, i64, i64, i64)> = Vec::with_capacity(ROWS + ROWS / 50);
    for i in 0..ROWS as i64 {
        let k = (i * 7919) % KEYS;
        let seq = next_seq[k as usize];
        next_seq[k as usize] += 1;
        let pos = i as u64 + rng.next() % JITTER;
        events.push((pos, i, k, seq));
        if rng.next().is_multiple_of(100) {
            events.push((pos + 1 + rng.next() % JITTER, i, k, seq));
        }
    }
    events.sort_by_key(|e| e.0);
    events
        .chunks(BATCH)
        .map(|c| {
            let idx = || c.iter().map(|e| e.1);
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(TimestampMillisecondArray::from_iter_values(
                        idx().map(|i| i / 4),
                    )),
                    Arc::new(Int64Array::from_iter_values(c.iter().map(|e| e.2))),
                    Arc::new(Int64Array::from_iter_values(c.iter().map(|e| e.3))),
                    Arc::new(Int64Array::from_iter_values(idx().map(|i| i % 100))),
                    Arc::new(Float64Array::from_iter_values(
                        idx().map(|i| (i % 100) as f64 * 1.5),
                    )),
                    Arc::new(Int64Array::from_iter_values(idx())),
                ],
            )
            .unwrap()
        })
        .collect()
}

/// CPU time of this thread in seconds (Linux; 0 elsewhere). The machine
/// may be shared: rows per CPU second is the steadier figure.
/// Builds a fresh operator for one run.
type OperatorMaker<'a> = Box<dyn Fn() -> Box<dyn Operator> + 'a>;

fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn run(name: &str, batches: &[RecordBatch], mut op: Box<dyn Operator>) {
    let mut ctx = OperatorContext::standalone(name);
    let mut out = Collector::new();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut max_ts = i64::MIN;
    let mut emitted = 0usize;
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    for b in batches {
        let ts = b
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        max_ts = max_ts.max(ts.values().iter().copied().max().unwrap_or(i64::MIN));
        op.process_batch(b.clone(), &mut ctx, &mut out).unwrap();
        let wm = max_ts - WATERMARK_DELAY;
        if ctx.watermark.is_none_or(|w| wm > w) {
            ctx.watermark = Some(wm);
            op.on_watermark(wm, &mut ctx, &mut out).unwrap();
        }
        emitted += count(&mut out);
    }
    op.on_end(&mut ctx, &mut out).unwrap();
    emitted += count(&mut out);
    let el = start.elapsed();
    let cpu = cpu_seconds() - cpu_start;
    let late = ctx
        .metrics
        .late_rows_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{name:<32} {rows} rows in {:>7.1?} ({cpu:.2} s CPU): {:>6.2} M rows/s, {:>6.2} M rows/CPU-s ({emitted} out, {late} late)",
        el,
        rows as f64 / el.as_secs_f64() / 1e6,
        if cpu > 0.0 { rows as f64 / cpu / 1e6 } else { f64::NAN },
    );
}

fn count(out: &mut Collector) -> usize {
    out.take()
        .iter()
        .map(|o| match o {
            Output::Batch(b) => b.num_rows(),
            Output::Watermark(_) => 0,
        })
        .sum()
}

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let batches = generate();
    let s = schema();
    let seq = |output| {
        let mut c = SequenceOrderConfig::new(s.clone(), vec![1], 2, 0);
        c.max_delay_ms = 1_000;
        c.start = SequenceStart::EXPECT_ONE;
        c.output = output;
        Box::new(SequenceOrder::try_new(c).unwrap()) as Box<dyn Operator>
    };
    let over = |frame| {
        let aggs = vec![
            OverAggregateCall::count_star("c"),
            OverAggregateCall::new(OverFunction::Sum, 3, "s"),
            OverAggregateCall::new(OverFunction::Avg, 4, "a"),
            OverAggregateCall::new(OverFunction::Max, 3, "mx"),
            OverAggregateCall::new(OverFunction::StddevSamp, 4, "sd"),
        ];
        let c = OverAggregateConfig {
            input_schema: s.clone(),
            partition_keys: vec![1],
            time_column: 0,
            frame,
            aggregates: aggs,
            state_ttl_ms: Some(60_000),
        };
        Box::new(OverAggregate::try_new(c).unwrap()) as Box<dyn Operator>
    };
    let runs: Vec<(&str, OperatorMaker<'_>)> = vec![
        (
            "sequence_order rows",
            Box::new(move || seq(SequenceOutput::Rows)),
        ),
        (
            "sequence_order gaps",
            Box::new(move || seq(SequenceOutput::Gaps)),
        ),
        (
            "deduplicate by id (ttl 10 s)",
            Box::new(|| {
                let mut c = DeduplicateConfig::new(schema(), vec![5], 0);
                c.state_ttl_ms = Some(10_000);
                Box::new(Deduplicate::try_new(c).unwrap())
            }),
        ),
        (
            "temporal_sort ts",
            Box::new(|| {
                Box::new(
                    TemporalSort::try_new(TemporalSortConfig {
                        input_schema: schema(),
                        time_column: 0,
                        sort_keys: vec![],
                    })
                    .unwrap(),
                )
            }),
        ),
        (
            "temporal_sort ts, k desc",
            Box::new(|| {
                Box::new(
                    TemporalSort::try_new(TemporalSortConfig {
                        input_schema: schema(),
                        time_column: 0,
                        sort_keys: vec![SortKey::desc(1)],
                    })
                    .unwrap(),
                )
            }),
        ),
        (
            "over range 10 s (5 aggs)",
            Box::new(move || {
                over(OverFrame::RangePreceding {
                    preceding_ms: 10_000,
                })
            }),
        ),
        (
            "over rows 5 preceding (5 aggs)",
            Box::new(move || over(OverFrame::RowsPreceding { preceding: 5 })),
        ),
        (
            "over rows unbounded (5 aggs)",
            Box::new(move || over(OverFrame::RowsUnbounded)),
        ),
    ];
    for (name, make) in runs {
        if name.contains(filter.as_str()) {
            run(name, &batches, make());
        }
    }
}
