//! The `weir bench` command.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use parking_lot::Mutex;
use weir_connectors::{ConnectorRegistry, TableDescriptor};
use weir_engine::metrics::OperatorMetrics;
use weir_engine::runtime::{Job, JobConfig};
use weir_engine::source::{SourceContext, SourceOutput};
use weir_queries::{plan_script, PlanOptions};

use crate::replay::{BenchSinkConnector, LatencyKey, ReleaseLog, ReplayConnector, SinkStats};

/// Options of `weir bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Nexmark queries to run, from queries/examples/nexmark.
    #[arg(long, value_delimiter = ',', default_value = "q0,q1,q2,q5,q11")]
    pub queries: Vec<String>,
    /// Nexmark events to generate (all kinds; about 92% are bids).
    #[arg(long, default_value_t = 5_000_000)]
    pub events: u64,
    /// Skip the latency run at half the maximum rate.
    #[arg(long)]
    pub no_latency: bool,
    /// Seconds of the latency run.
    #[arg(long, default_value_t = 10.0)]
    pub latency_seconds: f64,
    /// Instead of the queries: the throughput cost of checkpointing (a
    /// windowed query with checkpoints off, every 10 s, every 1 s).
    #[arg(long)]
    pub checkpoints: bool,
    /// Seconds of each run of `--checkpoints`.
    #[arg(long, default_value_t = 30.0)]
    pub run_seconds: f64,
    /// Rounds of `--checkpoints` (each runs every configuration once).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Run the fraud rules (queries/examples/fraud) on the transactions
    /// generator instead of the Nexmark queries.
    #[arg(long)]
    pub fraud: bool,
    /// Fraud rules to run (with --fraud).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "velocity,amount_spike,impossible_travel,small_then_large,device_sharing"
    )]
    pub rules: Vec<String>,
    /// Transaction slots to generate (with --fraud).
    #[arg(long, default_value_t = 2_000_000)]
    pub transactions: u64,
}

/// The figures of one query.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Query name.
    pub query: String,
    /// Bid rows replayed.
    pub rows: u64,
    /// Rows the query produced.
    pub output_rows: u64,
    /// Engine throughput, rows/s on one core.
    pub rows_per_sec: f64,
    /// Latency percentiles (µs) at half the maximum rate, if measured.
    pub latency_p50_p99_us: Option<(u64, u64)>,
}

/// Where the bench finds a query and how it measures latency.
struct QuerySpec {
    name: &'static str,
    sql: &'static str,
    /// Output column with the window end (windowed queries only).
    latency_column: Option<usize>,
}

const WATERMARK_DELAY_MS: i64 = 4_000;

fn specs() -> Vec<QuerySpec> {
    vec![
        QuerySpec {
            name: "q0",
            sql: include_str!("../../queries/examples/nexmark/q0.sql"),
            latency_column: None,
        },
        QuerySpec {
            name: "q1",
            sql: include_str!("../../queries/examples/nexmark/q1.sql"),
            latency_column: None,
        },
        QuerySpec {
            name: "q2",
            sql: include_str!("../../queries/examples/nexmark/q2.sql"),
            latency_column: None,
        },
        QuerySpec {
            name: "q5",
            sql: include_str!("../../queries/examples/nexmark/q5.sql"),
            latency_column: Some(3),
        },
        QuerySpec {
            name: "q7",
            sql: include_str!("../../queries/examples/nexmark/q7.sql"),
            latency_column: Some(1),
        },
        QuerySpec {
            name: "q11",
            sql: include_str!("../../queries/examples/nexmark/q11.sql"),
            latency_column: Some(3),
        },
        QuerySpec {
            name: "q12",
            sql: include_str!("../../queries/examples/nexmark/q12.sql"),
            latency_column: Some(3),
        },
    ]
}

/// Collects what a source emits.
struct Collect(Arc<Mutex<Vec<RecordBatch>>>);

#[async_trait]
impl SourceOutput for Collect {
    async fn batch(&mut self, _split: usize, batch: RecordBatch) -> weir_engine::Result<()> {
        self.0.lock().push(batch);
        Ok(())
    }
}

/// Generates the bid stream of `events` events with the real nexmark connector.
async fn generate(events: u64) -> anyhow::Result<(Vec<RecordBatch>, f64)> {
    let registry = ConnectorRegistry::with_defaults();
    let spec = &specs()[0];
    // The bid table as declared in the examples (all columns).
    let planned = weir_dialect::parse_script(spec.sql)?;
    let ddl = planned
        .iter()
        .find_map(|s| match &s.kind {
            weir_dialect::StatementKind::CreateTable(t) if t.name == "bid" => Some(t.clone()),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("q0.sql has no bid table"))?;
    let catalog = weir_queries::catalog::Catalog::new();
    let (physical, _) = weir_queries::source_table::table_schemas(&ddl, &catalog)?;
    let mut options: std::collections::BTreeMap<String, String> =
        ddl.options.iter().cloned().collect();
    options.insert("events.num".into(), events.to_string());
    let factory = registry.source(&TableDescriptor::new("bid", physical, options))?;
    let mut source = factory.create(0, 1)?;
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut ctx = SourceContext::new(
        0,
        1,
        Box::new(Collect(out.clone())),
        Arc::new(OperatorMetrics::new("gen", 0)),
        Arc::new(AtomicBool::new(false)),
    );
    let t = Instant::now();
    source.run(&mut ctx).await?;
    let secs = t.elapsed().as_secs_f64();
    let batches = std::mem::take(&mut *out.lock());
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    Ok((batches, rows as f64 / secs))
}

async fn run_once(
    spec: &QuerySpec,
    batches: Arc<Vec<RecordBatch>>,
    rate: Option<f64>,
) -> anyhow::Result<(f64, u64, Option<(u64, u64)>)> {
    let log = Arc::new(ReleaseLog::default());
    let stats = Arc::new(SinkStats::new());
    let key = rate.map(|_| LatencyKey {
        column: spec.latency_column,
        offset_ms: WATERMARK_DELAY_MS - 1,
    });
    let mut registry = ConnectorRegistry::with_defaults();
    registry.register(Arc::new(ReplayConnector {
        name: "nexmark",
        batches: batches.clone(),
        rate,
        log: log.clone(),
        time_column: 5,
    }));
    for name in ["print", "blackhole"] {
        registry.register(Arc::new(BenchSinkConnector {
            stats: stats.clone(),
            log: log.clone(),
            key,
            name: name.into(),
        }));
    }
    let options = PlanOptions {
        parallelism: 1,
        registry: Arc::new(registry),
        select_sink: None,
        ..PlanOptions::new()
    };
    let planned = plan_script(spec.sql, &options)?;
    let job = Job::new(planned.graph, JobConfig::default())?;
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let t = Instant::now();
    job.run().await?;
    let secs = t.elapsed().as_secs_f64();
    let latency = key.map(|_| {
        let h = stats.latency_us.lock();
        (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
    });
    Ok((
        rows as f64 / secs,
        stats.rows.load(Ordering::Relaxed),
        latency,
    ))
}

/// Runs the benchmark and prints a table. Must be called on a runtime with
/// one worker thread for per-core figures (the `weir bench` command does).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.checkpoints {
        return crate::checkpoints::run(args.run_seconds, args.rounds).await;
    }
    if args.fraud {
        return crate::fraud::run(&args).await;
    }
    eprintln!("generating {} Nexmark events ...", args.events);
    let (batches, gen_rate) = generate(args.events).await?;
    let batches = Arc::new(batches);
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    println!(
        "generator: {rows} bid rows, {:.2}M rows/s (generation cost, not in the figures below)",
        gen_rate / 1e6
    );
    println!("| query | bid rows | output rows | events/s (1 core) | p50 latency | p99 latency |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut results = Vec::new();
    for name in &args.queries {
        let spec = specs()
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| anyhow::anyhow!("unknown query {name}"))?;
        let (rate, out_rows, _) = run_once(&spec, batches.clone(), None).await?;
        let latency = if args.no_latency {
            None
        } else {
            // Replay only as many batches as the latency run needs.
            let half = rate / 2.0;
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
            run_once(&spec, Arc::new(subset), Some(half)).await?.2
        };
        let fmt_us = |us: u64| {
            if us >= 1000 {
                format!("{:.2} ms", us as f64 / 1000.0)
            } else {
                format!("{us} µs")
            }
        };
        println!(
            "| {} | {} | {} | {:.2}M | {} | {} |",
            spec.name,
            rows,
            out_rows,
            rate / 1e6,
            latency.map(|l| fmt_us(l.0)).unwrap_or_else(|| "-".into()),
            latency.map(|l| fmt_us(l.1)).unwrap_or_else(|| "-".into()),
        );
        results.push(BenchResult {
            query: spec.name.into(),
            rows,
            output_rows: out_rows,
            rows_per_sec: rate,
            latency_p50_p99_us: latency,
        });
    }
    Ok(())
}
