//! The `weir` command line: run, explain and benchmark streaming SQL jobs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use weir_engine::checkpoint::CheckpointConfig;
use weir_engine::progress::Progress;
use weir_engine::runtime::{Job, JobConfig, Recovery};
use weir_queries::{plan_script, PlanOptions};

/// Weir: a real-time stream processing engine.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the statements of a SQL file as one streaming job.
    Run {
        /// The .sql file.
        file: PathBuf,
        /// Parallelism of sources and keyed operators.
        #[arg(long, short = 'p', default_value_t = 1)]
        parallelism: usize,
        /// No progress lines on stderr.
        #[arg(long)]
        quiet: bool,
        /// Take checkpoints in this directory and resume from its latest
        /// complete checkpoint: a local path, a `file://` URL, or an S3
        /// prefix `s3://BUCKET/PREFIX` (settings from the AWS_* variables:
        /// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
        /// AWS_ENDPOINT_URL and AWS_ALLOW_HTTP=true for an S3-compatible
        /// service).
        #[arg(long)]
        checkpoint_dir: Option<String>,
        /// Time between checkpoints: `200ms`, `10s`, `1m` (default 10s).
        #[arg(long, value_parser = parse_duration)]
        checkpoint_interval: Option<Duration>,
        /// Complete checkpoints to keep.
        #[arg(long, default_value_t = 3)]
        checkpoints_retained: usize,
        /// Start from empty state when the latest checkpoint was written by a
        /// different query (instead of failing).
        #[arg(long)]
        allow_state_reset: bool,
    },
    /// Lists the complete checkpoints in a checkpoint directory.
    Checkpoints {
        /// The checkpoint directory (a path, `file://` or `s3://BUCKET/PREFIX`).
        dir: String,
    },
    /// Prints the plan of a SQL file: logical plans and the dataflow graph.
    Explain {
        /// The .sql file.
        file: PathBuf,
        /// Parallelism of sources and keyed operators.
        #[arg(long, short = 'p', default_value_t = 1)]
        parallelism: usize,
    },
    /// Measures throughput and latency of Nexmark queries.
    Bench(weir_benches::BenchArgs),
    /// Writes generated input to a message queue.
    Produce {
        #[command(subcommand)]
        what: Produce,
    },
}

/// What `weir produce` writes.
#[derive(Subcommand)]
enum Produce {
    /// Nexmark bids as JSON messages to a Kafka topic (bid i to partition
    /// i % partitions; the topic is created when missing).
    Nexmark {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// Bootstrap brokers, host:port[,host:port...].
        #[arg(long)]
        brokers: String,
        /// Nexmark events to generate (as 'events.num' counts them: 46 of
        /// every 50 are bids).
        #[arg(long)]
        events: u64,
        /// Partitions of the topic when it is created (default 1).
        #[arg(long)]
        partitions: Option<i32>,
        /// Events per second, paced by the wall clock, with event times
        /// following the wall clock (default: as fast as possible, with
        /// the generator's reproducible event times).
        #[arg(long)]
        rate: Option<u64>,
        /// A librdkafka producer setting, KEY=VALUE (repeatable).
        #[arg(long = "property", short = 'X')]
        properties: Vec<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `200ms`, `10s`, `2m` or a plain number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}': expected a duration such as 200ms, 10s or 1m"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        other => return Err(format!("'{s}': unknown unit '{other}' (ms, s, m)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("'{s}': the duration must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Prints the checkpoints of a directory.
fn list_checkpoints(dir: &str) -> anyhow::Result<()> {
    use weir_engine::checkpoint::{list_manifests, open_storage};
    use weir_engine::progress::human_bytes;
    if !dir.contains("://") && !std::path::Path::new(dir).is_dir() {
        anyhow::bail!("{dir}: no such checkpoint directory");
    }
    let storage = open_storage(dir)?;
    let manifests = list_manifests(storage.as_ref())?;
    if manifests.is_empty() {
        println!("no complete checkpoint in {dir}");
        return Ok(());
    }
    for m in manifests {
        let when = weir_engine::time::format_millis(m.completed_at_ms);
        println!(
            "checkpoint {}{}  completed {when}  duration {}ms  alignment {}ms  size {}  job {}",
            m.id,
            if m.finished {
                " (final: job finished)"
            } else {
                ""
            },
            m.duration_ms,
            m.alignment_ms,
            human_bytes(m.size_bytes),
            m.fingerprint
        );
        for n in &m.nodes {
            if !n.positions.is_empty() {
                let pos: Vec<String> = n
                    .positions
                    .iter()
                    .map(|p| format!("{}@{}", p.split, p.position))
                    .collect();
                println!(
                    "  {}[{}] positions {}{}",
                    n.node,
                    n.subtask,
                    pos.join(" "),
                    if n.finished { " (finished)" } else { "" }
                );
            } else if n.bytes > 0 {
                println!("  {}[{}] state {}", n.node, n.subtask, human_bytes(n.bytes));
            }
        }
    }
    Ok(())
}

fn read(file: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir-worker")
        .build()?;
    match cli.command {
        Command::Explain { file, parallelism } => {
            let sql = read(&file)?;
            let options = PlanOptions {
                parallelism,
                ..PlanOptions::new()
            };
            let job = plan_script(&sql, &options)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            print!("{}", job.explain()?);
            Ok(())
        }
        Command::Checkpoints { dir } => list_checkpoints(&dir),
        Command::Run {
            file,
            parallelism,
            quiet,
            checkpoint_dir,
            checkpoint_interval,
            checkpoints_retained,
            allow_state_reset,
        } => {
            let sql = read(&file)?;
            let options = PlanOptions {
                parallelism,
                ..PlanOptions::new()
            };
            let planned = plan_script(&sql, &options)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let mut config = JobConfig::default();
            match (&checkpoint_dir, checkpoint_interval) {
                (Some(dir), interval) => {
                    let storage = weir_engine::checkpoint::open_storage(dir)?;
                    let mut ck =
                        CheckpointConfig::new(storage, interval.unwrap_or(Duration::from_secs(10)));
                    ck.retained = checkpoints_retained.max(1);
                    ck.allow_state_reset = allow_state_reset;
                    config.checkpoint = Some(ck);
                }
                (None, Some(_)) => {
                    anyhow::bail!("--checkpoint-interval needs --checkpoint-dir")
                }
                (None, None) => {}
            }
            let job = Job::new(planned.graph, config)?;
            match job.recovery() {
                Recovery::Resumed(id) if !quiet => {
                    eprintln!("[weir] resuming from checkpoint {id}")
                }
                Recovery::Reset(id) => eprintln!(
                    "[weir] the query changed since checkpoint {id}: starting from empty state (--allow-state-reset)"
                ),
                Recovery::Finished(id) => eprintln!(
                    "[weir] the job already finished (final checkpoint {id}): completing its output, nothing to run"
                ),
                _ => {}
            }
            let metrics = job.metrics();
            let cancel = job.cancel_handle();
            runtime.block_on(async move {
                let mut progress = Progress::new(metrics);
                let handle = tokio::spawn(job.run());
                tokio::pin!(handle);
                let mut ticker = tokio::time::interval(Duration::from_secs(1));
                ticker.tick().await;
                let result = loop {
                    tokio::select! {
                        r = &mut handle => break r,
                        _ = ticker.tick() => if !quiet { eprintln!("{}", progress.line()) },
                        _ = tokio::signal::ctrl_c() => {
                            eprintln!("[weir] interrupted: stopping sources and draining");
                            cancel.cancel();
                        }
                    }
                };
                if !quiet {
                    eprint!("{}", progress.summary());
                }
                match result {
                    Ok(r) => r.map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::anyhow!("job task failed: {e}")),
                }
            })
        }
        Command::Produce {
            what:
                Produce::Nexmark {
                    topic,
                    brokers,
                    events,
                    partitions,
                    rate,
                    properties,
                },
        } => {
            use weir_connectors::kafka::produce::{produce_nexmark, ProduceNexmark};
            let mut props = std::collections::BTreeMap::new();
            for p in properties {
                let (k, v) = p
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--property {p}: expected KEY=VALUE"))?;
                props.insert(k.trim().to_string(), v.trim().to_string());
            }
            let args = ProduceNexmark {
                brokers,
                topic,
                events,
                partitions,
                properties: props,
                rate,
            };
            let report = runtime.block_on(produce_nexmark(&args))?;
            let secs = report.elapsed.as_secs_f64().max(1e-9);
            eprintln!(
                "[weir] produced {} bids ({} Nexmark events) to '{}' ({} partitions) in {:.2}s ({}/s)",
                report.messages,
                args.events,
                args.topic,
                report.partitions,
                secs,
                weir_engine::progress::human_rate(report.messages as f64 / secs)
            );
            Ok(())
        }
        Command::Bench(args) => {
            // One worker thread: the figures are per core.
            drop(runtime);
            let one_core = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            one_core.block_on(weir_benches::run(args))
        }
    }
}
