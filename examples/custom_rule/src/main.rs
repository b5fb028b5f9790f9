//! Runs a SQL file (default: `examples/custom_rule/rule.sql`) with the
//! custom `ROUND_BURST` table function and `is_round` UDF registered; the
//! bare `SELECT` prints its alerts to stdout.
//!
//! ```text
//! cargo run -p weir-example-custom-rule -- examples/custom_rule/rule.sql
//! ```

use weir_engine::runtime::{Job, JobConfig};
use weir_example_custom_rule::{plan_options, BURSTS_COUNTER};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/custom_rule/rule.sql".into());
    let sql =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))?;
    let planned = weir_queries::plan_script(&sql, &plan_options())?;
    eprint!("{}", planned.explain()?);
    let job = Job::new(planned.graph, JobConfig::default())?;
    let metrics = job.metrics();
    tokio::runtime::Runtime::new()?.block_on(job.run())?;
    let bursts: u64 = metrics
        .all()
        .iter()
        .map(|(_, m)| m.count(BURSTS_COUNTER))
        .sum();
    eprintln!("{bursts} round-amount bursts");
    Ok(())
}
