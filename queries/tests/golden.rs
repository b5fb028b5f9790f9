//! Golden SQL tests: every `tests/slt/*.slt` file is run with sqllogictest.
//!
//! Statements (`CREATE TABLE`, `CREATE VIEW`, `SET`) accumulate into a
//! script; each `query` runs that script plus the query as one bounded job
//! and compares the exact rows. `SHOW LATE ROWS` returns the late rows the
//! previous query's job dropped.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use sqllogictest::{DBOutput, DefaultColumnType};
use weir_engine::runtime::{Job, JobConfig};
use weir_queries::collect::{format_rows, CollectSink};
use weir_queries::{plan_script, PlanOptions};

#[derive(Debug)]
struct TestError(String);

impl std::fmt::Display for TestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for TestError {}

struct WeirDb {
    ddl: Vec<String>,
    last_late: u64,
    last_malformed: u64,
}

impl WeirDb {
    async fn run_query(&mut self, sql: &str) -> Result<Vec<Vec<String>>, TestError> {
        let mut script = self.ddl.join(";\n");
        script.push_str(";\n");
        script.push_str(sql);
        let sink = CollectSink::new();
        let options = PlanOptions {
            parallelism: 2,
            select_sink: Some(Arc::new(sink.clone())),
            ..PlanOptions::new()
        };
        let planned = plan_script(&script, &options).map_err(|e| TestError(e.to_string()))?;
        let job =
            Job::new(planned.graph, JobConfig::default()).map_err(|e| TestError(e.to_string()))?;
        let metrics = job.metrics();
        job.run().await.map_err(|e| TestError(e.to_string()))?;
        let totals = metrics.totals();
        self.last_late = totals.late_rows_dropped;
        self.last_malformed = totals.malformed_records;
        format_rows(&sink.batches()).map_err(|e| TestError(e.to_string()))
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for WeirDb {
    type Error = TestError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let head = sql.trim_start().to_ascii_uppercase();
        if head.starts_with("CREATE") || head.starts_with("SET") {
            weir_dialect::parse_script(sql).map_err(|e| TestError(e.to_string()))?;
            self.ddl.push(sql.to_string());
            return Ok(DBOutput::StatementComplete(0));
        }
        let rows = if head.starts_with("SHOW LATE ROWS") {
            vec![vec![self.last_late.to_string()]]
        } else if head.starts_with("SHOW MALFORMED RECORDS") {
            vec![vec![self.last_malformed.to_string()]]
        } else {
            self.run_query(sql).await?
        };
        let width = rows.first().map_or(1, |r| r.len());
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Text; width],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "weir"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_files() {
    // Resolved when the test runs (see `manifest_dir` in tests/cli.rs).
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {}", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async {
            Ok(WeirDb {
                ddl: Vec::new(),
                last_late: 0,
                last_malformed: 0,
            })
        });
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden file(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    eprintln!("{} golden files passed", files.len());
}
