//! `weir bench --fraud`: throughput and alert latency of the fraud rules.
//!
//! Each rule runs as its SQL example (`queries/examples/fraud/<rule>.sql`,
//! a bare `SELECT` over a table function) on one core (a one-worker tokio
//! runtime, parallelism 1). The transactions are generated once, up front,
//! by the `transactions` connector's own generator (10 000 accounts, 5 % of
//! rows out of order by up to 5 s, 1 % duplicated, 0.1 % of slots starting
//! a case of each kind); its rate is reported separately. The job's
//! `transactions` table then replays those Arrow batches:
//!
//! 1. **Throughput**: as fast as possible, into a counting sink; events/s
//!    is the rows replayed over the job's wall-clock time (engine cost
//!    only: the source hands over ready batches).
//! 2. **Latency**: the first `rate/2 × latency-seconds` rows replayed at
//!    half the measured maximum rate, paced by the wall clock. The source
//!    logs the wall-clock instant at which it emits each batch; the sink
//!    takes the instant at which it receives each alert. Two figures per
//!    alert, both wall clock:
//!    - **arrival → alert**: from the emission of the batch holding the
//!      alert's triggering row (found by its `tx_id`) to the alert at the
//!      sink. The rules wait for the watermark (event time − 5 s) to pass
//!      a row before judging it, so this includes the time the replay
//!      takes to advance event time by 5 s: at the replay speed that is a
//!      fraction of a millisecond, whereas a live stream whose event time
//!      follows the wall clock would add the full 5 s of out-of-order
//!      allowance.
//!    - **beyond the watermark**: from the emission of the first batch
//!      whose largest event time reaches the triggering row's + 5 s (the
//!      batch that moved the watermark past it) to the alert at the sink:
//!      the engine's own latency, comparable across input speeds.
//!
//! Alerts flushed at the end of input (no batch moved the watermark past
//! them) count only in the first figure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use weir_connectors::transactions::{generate_batches, schema, TransactionsOptions};
use weir_connectors::{Connector, ConnectorRegistry, TableDescriptor};
use weir_engine::runtime::{Job, JobConfig};
use weir_engine::sink::{Sink, SinkFactory};
use weir_engine::source::SourceFactory;
use weir_engine::{Result, WeirError};
use weir_queries::{plan_script, PlanOptions};

use crate::harness::BenchArgs;
use crate::replay::{ReleaseLog, ReplayConnector};

/// The watermark delay of the examples' `transactions` table.
const WATERMARK_DELAY_MS: i64 = 5_000;
/// Index of `event_time` in the generated batches (all twelve columns).
const TIME_COLUMN: usize = 9;

fn rules() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "velocity",
            include_str!("../../queries/examples/fraud/velocity.sql"),
        ),
        (
            "amount_spike",
            include_str!("../../queries/examples/fraud/amount_spike.sql"),
        ),
        (
            "impossible_travel",
            include_str!("../../queries/examples/fraud/impossible_travel.sql"),
        ),
        (
            "small_then_large",
            include_str!("../../queries/examples/fraud/small_then_large.sql"),
        ),
        (
            "device_sharing",
            include_str!("../../queries/examples/fraud/device_sharing.sql"),
        ),
    ]
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable_histogram())
}

#[allow(clippy::panic)]
fn unreachable_histogram() -> Histogram<u64> {
    panic!("hdrhistogram rejected constant bounds")
}

/// What the alert sink measures.
struct AlertStats {
    rows: AtomicU64,
    arrival_us: Mutex<Histogram<u64>>,
    beyond_watermark_us: Mutex<Histogram<u64>>,
}

/// Where the sink finds when a triggering row arrived.
struct Releases {
    log: Arc<ReleaseLog>,
    /// tx_id → index of the first replayed batch holding it.
    batch_of: HashMap<i64, usize>,
}

struct AlertSinkConnector {
    stats: Arc<AlertStats>,
    releases: Option<Arc<Releases>>,
}

impl Connector for AlertSinkConnector {
    fn name(&self) -> &str {
        "print"
    }
    fn source(&self, table: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
        Err(WeirError::Config(format!(
            "bench sink: {} is not a source",
            table.name
        )))
    }
    fn sink(&self, _table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        Ok(Arc::new(AlertSinkFactory {
            stats: self.stats.clone(),
            releases: self.releases.clone(),
        }))
    }
}

struct AlertSinkFactory {
    stats: Arc<AlertStats>,
    releases: Option<Arc<Releases>>,
}

impl SinkFactory for AlertSinkFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(AlertSink {
            stats: self.stats.clone(),
            releases: self.releases.clone(),
        }))
    }
    fn describe(&self) -> String {
        "bench sink (counts alerts, measures alert latency)".into()
    }
}

struct AlertSink {
    stats: Arc<AlertStats>,
    releases: Option<Arc<Releases>>,
}

#[async_trait]
impl Sink for AlertSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let now = Instant::now();
        self.stats
            .rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        let Some(r) = &self.releases else {
            return Ok(());
        };
        let column = |name: &str| {
            batch.column_by_name(name).cloned().ok_or_else(|| {
                WeirError::Config(format!("fraud bench: alerts need a {name} column"))
            })
        };
        let ids = column("tx_id")?;
        let ids = ids.as_primitive::<Int64Type>();
        let times = arrow::compute::cast(
            &column("event_time")?,
            &DataType::Timestamp(TimeUnit::Millisecond, None),
        )?;
        let times = times.as_primitive::<TimestampMillisecondType>();
        let log = r.log.entries.lock();
        let mut arrival = self.stats.arrival_us.lock();
        let mut beyond = self.stats.beyond_watermark_us.lock();
        for i in 0..batch.num_rows() {
            if let Some(at) = ids
                .is_valid(i)
                .then(|| r.batch_of.get(&ids.value(i)))
                .flatten()
                .and_then(|b| log.get(*b))
            {
                let us = now.saturating_duration_since(at.1).as_micros() as u64;
                arrival.saturating_record(us.max(1));
            }
            if times.is_valid(i) {
                let due = times.value(i) + WATERMARK_DELAY_MS;
                let k = log.partition_point(|(ts, _)| *ts < due);
                if let Some((_, at)) = log.get(k) {
                    let us = now.saturating_duration_since(*at).as_micros() as u64;
                    beyond.saturating_record(us.max(1));
                }
            }
        }
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The figures of one run.
struct Outcome {
    rows_per_sec: f64,
    alerts: u64,
    arrival: (u64, u64),
    beyond: (u64, u64),
}

async fn run_once(
    sql: &str,
    batches: Arc<Vec<RecordBatch>>,
    rate: Option<f64>,
) -> anyhow::Result<Outcome> {
    let log = Arc::new(ReleaseLog::default());
    let stats = Arc::new(AlertStats {
        rows: AtomicU64::new(0),
        arrival_us: Mutex::new(histogram()),
        beyond_watermark_us: Mutex::new(histogram()),
    });
    let releases = rate.map(|_| {
        let mut batch_of = HashMap::new();
        for (b, batch) in batches.iter().enumerate() {
            if let Some(ids) = batch.column_by_name("tx_id") {
                for id in ids.as_primitive::<Int64Type>().iter().flatten() {
                    batch_of.entry(id).or_insert(b);
                }
            }
        }
        Arc::new(Releases {
            log: log.clone(),
            batch_of,
        })
    });
    let mut registry = ConnectorRegistry::with_defaults();
    registry.register(Arc::new(ReplayConnector {
        name: "transactions",
        batches: batches.clone(),
        rate,
        log: log.clone(),
        time_column: TIME_COLUMN,
    }));
    registry.register(Arc::new(AlertSinkConnector {
        stats: stats.clone(),
        releases,
    }));
    let options = PlanOptions {
        parallelism: 1,
        registry: Arc::new(registry),
        select_sink: None,
        ..PlanOptions::new()
    };
    let planned = plan_script(sql, &options)?;
    let job = Job::new(planned.graph, JobConfig::default())?;
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let t = Instant::now();
    job.run().await?;
    let secs = t.elapsed().as_secs_f64();
    let q = |h: &Histogram<u64>| (h.value_at_quantile(0.5), h.value_at_quantile(0.99));
    let arrival = q(&stats.arrival_us.lock());
    let beyond = q(&stats.beyond_watermark_us.lock());
    Ok(Outcome {
        rows_per_sec: rows as f64 / secs,
        alerts: stats.rows.load(Ordering::Relaxed),
        arrival,
        beyond,
    })
}

fn fmt_us(us: u64) -> String {
    if us >= 1000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// Runs the fraud benchmark and prints a table (see the module docs).
pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let options = TransactionsOptions {
        events_num: Some(args.transactions),
        out_of_order_rate: 0.05,
        duplicate_rate: 0.01,
        ..Default::default()
    };
    eprintln!("generating {} transaction slots ...", args.transactions);
    let t = Instant::now();
    let batches = generate_batches(&options, &schema(), 0, 1)?;
    let gen_secs = t.elapsed().as_secs_f64();
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    println!(
        "generator: {rows} transaction rows, {:.2}M rows/s (generation cost, not in the figures below)",
        rows as f64 / gen_secs / 1e6
    );
    let batches = Arc::new(batches);
    println!(
        "| rule | rows | alerts | events/s (1 core) | latency rows | arrival→alert p50 | p99 | beyond watermark p50 | p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let all = rules();
    for name in &args.rules {
        let (_, sql) = all
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| anyhow::anyhow!("unknown fraud rule {name}"))?;
        let full = run_once(sql, batches.clone(), None).await?;
        let (latency_rows, latency) = if args.no_latency {
            (0, None)
        } else {
            let half = full.rows_per_sec / 2.0;
            let want = (half * args.latency_seconds) as u64;
            let mut taken = 0u64;
            let subset: Vec<RecordBatch> = batches
                .iter()
                .take_while(|b| {
                    let keep = taken < want;
                    taken += b.num_rows() as u64;
                    keep
                })
                .cloned()
                .collect();
            let n: u64 = subset.iter().map(|b| b.num_rows() as u64).sum();
            (n, Some(run_once(sql, Arc::new(subset), Some(half)).await?))
        };
        let cell = |f: fn(&Outcome) -> u64| {
            latency
                .as_ref()
                .map(|o| fmt_us(f(o)))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "| {name} | {rows} | {} | {:.2}M | {latency_rows} | {} | {} | {} | {} |",
            full.alerts,
            full.rows_per_sec / 1e6,
            cell(|o| o.arrival.0),
            cell(|o| o.arrival.1),
            cell(|o| o.beyond.0),
            cell(|o| o.beyond.1),
        );
    }
    Ok(())
}
