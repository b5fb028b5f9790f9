//! `weir bench --checkpoints`: the throughput cost of checkpointing.
//!
//! One windowed query (Nexmark bids, bids and top price per auction in
//! 10-second tumbling windows, into a `blackhole` sink) runs on the real
//! `nexmark` source, unbounded and unpaced, for a fixed wall-clock time
//! with checkpoints off, every 10 s and every 1 s (to a local directory).
//! Rounds are interleaved (off, 10 s, 1 s, off, …) so that a noisy machine
//! hurts every configuration alike. Throughput is the rows the source
//! emitted over the run's duration; the overhead is relative to the mean
//! of the runs without checkpoints.

use std::time::{Duration, Instant};

use weir_engine::checkpoint::CheckpointConfig;
use weir_engine::runtime::{Job, JobConfig};
use weir_queries::{plan_script, PlanOptions};

/// The windowed query of the benchmark.
const QUERY: &str = r#"
CREATE TABLE bid (
  auction  BIGINT,
  bidder   BIGINT,
  price    BIGINT,
  dateTime TIMESTAMP(3),
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid');

CREATE TABLE out (
  auction   BIGINT,
  bids      BIGINT,
  top       BIGINT,
  endtime   TIMESTAMP(3)
) WITH ('connector' = 'blackhole');

INSERT INTO out
SELECT auction, count(*), max(price), window_end
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
"#;

/// What one run measured.
#[derive(Debug, Clone)]
struct Measured {
    rows: u64,
    seconds: f64,
    checkpoints: u64,
    /// Largest state size and longest duration of the checkpoints seen
    /// while running (sampled every 200 ms).
    max_size_bytes: u64,
    max_duration_ms: u64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }
}

/// Runs the query for `seconds` with checkpoints every `interval` (`None`:
/// off) and measures it.
async fn run_once(interval: Option<Duration>, seconds: f64) -> anyhow::Result<Measured> {
    let planned = plan_script(QUERY, &PlanOptions::new())?;
    let mut config = JobConfig::default();
    let dir = interval.map(|i| {
        std::env::temp_dir().join(format!(
            "weir-bench-checkpoints-{}-{}ms",
            std::process::id(),
            i.as_millis()
        ))
    });
    if let (Some(i), Some(d)) = (interval, &dir) {
        // Start fresh: a left-over directory would be resumed from.
        let _ = std::fs::remove_dir_all(d);
        let storage = weir_engine::checkpoint::open_storage(&d.display().to_string())?;
        config.checkpoint = Some(CheckpointConfig::new(storage, i));
    }
    let job = Job::new(planned.graph, config)?;
    let metrics = job.metrics();
    let cancel = job.cancel_handle();
    let start = Instant::now();
    let handle = tokio::spawn(job.run());
    let stats = metrics.checkpoint_stats();
    let (mut max_size_bytes, mut max_duration_ms) = (0, 0);
    let end = start + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        tokio::time::sleep((end - Instant::now()).min(Duration::from_millis(200))).await;
        let s = stats.lock().clone();
        max_size_bytes = max_size_bytes.max(s.last_size_bytes);
        max_duration_ms = max_duration_ms.max(s.last_duration_ms);
    }
    let rows = metrics.totals().source_rows;
    let elapsed = start.elapsed().as_secs_f64();
    cancel.cancel();
    handle.await??;
    let stats = stats.lock().clone();
    if let Some(d) = &dir {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(Measured {
        rows,
        seconds: elapsed,
        // The last one is the final checkpoint of the cancelled job.
        checkpoints: stats.completed.saturating_sub(1),
        max_size_bytes,
        max_duration_ms,
    })
}

fn interval_of(name: &str, configs: &[(&str, Option<Duration>)]) -> Option<Duration> {
    configs
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, i)| *i)
}

/// Runs the checkpoint benchmark: `rounds` rounds of `seconds` per
/// configuration, then a table of the means.
pub async fn run(seconds: f64, rounds: usize) -> anyhow::Result<()> {
    let configs: [(&str, Option<Duration>); 3] = [
        ("none", None),
        ("every 10 s", Some(Duration::from_secs(10))),
        ("every 1 s", Some(Duration::from_secs(1))),
    ];
    let mut results: Vec<Vec<Measured>> = vec![Vec::new(); configs.len()];
    for round in 0..rounds.max(1) {
        for (i, (name, interval)) in configs.iter().enumerate() {
            let m = run_once(*interval, seconds).await?;
            eprintln!(
                "round {} checkpoints {name}: {} rows in {:.1}s = {:.0} rows/s, {} checkpoints (largest {} bytes, longest {} ms)",
                round + 1,
                m.rows,
                m.seconds,
                m.rate(),
                m.checkpoints,
                m.max_size_bytes,
                m.max_duration_ms
            );
            results[i].push(m);
        }
    }
    let mean = |ms: &[Measured]| ms.iter().map(Measured::rate).sum::<f64>() / ms.len() as f64;
    let base = mean(&results[0]);
    println!(
        "checkpoint cost: nexmark bids -> 10 s tumbling count/max per auction -> blackhole, \
         parallelism 1, one core, {seconds} s per run, {} round(s)",
        rounds.max(1)
    );
    println!("| checkpoints | events/s (mean) | per round | checkpoints per run | largest state | longest checkpoint | overhead |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for ((name, _), ms) in configs.iter().zip(&results) {
        let rate = mean(ms);
        let per_round: Vec<String> = ms.iter().map(|m| format!("{:.0}", m.rate())).collect();
        let cks = ms.iter().map(|m| m.checkpoints).sum::<u64>() as f64 / ms.len() as f64;
        let size = ms.iter().map(|m| m.max_size_bytes).max().unwrap_or(0);
        let longest = ms.iter().map(|m| m.max_duration_ms).max().unwrap_or(0);
        let (size, longest) = if interval_of(name, &configs).is_some() {
            (
                format!("{:.0} KiB", size as f64 / 1024.0),
                format!("{longest} ms"),
            )
        } else {
            ("–".into(), "–".into())
        };
        println!(
            "| {name} | {rate:.0} | {} | {cks:.1} | {size} | {longest} | {:+.1}% |",
            per_round.join(", "),
            (1.0 - rate / base) * 100.0
        );
    }
    Ok(())
}
