//! The `weir` binary: run, explain, errors and exit codes.

use std::path::PathBuf;
use std::process::Command;

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// The workspace root, as cargo gives it when it runs the test (the
/// compile-time value is only a fallback: a test binary reused from a
/// checkout at another path, through a shared target directory, would
/// otherwise read that checkout's files).
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn example(name: &str) -> PathBuf {
    manifest_dir().join("queries/examples/nexmark").join(name)
}

/// Writes `sql` to a temporary .sql file.
fn script(dir: &tempfile::TempDir, sql: &str) -> PathBuf {
    let path = dir.path().join("job.sql");
    std::fs::write(&path, sql).expect("write script");
    path
}

#[test]
fn explain_shows_tasks_parallelism_and_edges() {
    let out = weir()
        .args(["explain", "--parallelism", "2"])
        .arg(example("q5.sql"))
        .output()
        .expect("run weir");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("source:bid"), "{text}");
    assert!(text.contains("watermark"), "{text}");
    assert!(text.contains("window_aggregate"), "{text}");
    assert!(text.contains("(parallelism 2)"), "{text}");
    // The aggregation is keyed by auction: a hash edge on the auction column.
    assert!(text.contains("--hash[0]-->"), "{text}");
}

#[test]
fn every_nexmark_example_plans() {
    let dir = manifest_dir().join("queries/examples/nexmark");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "sql") {
            let out = weir().arg("explain").arg(&path).output().expect("run weir");
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert_eq!(n, 9, "q0 q1 q2 q5 q7 q11 q12 q15 q17");
}

#[test]
fn run_writes_exact_window_counts_to_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = manifest_dir().join("queries/tests/data/bids.json");
    let out_dir = dir.path().join("out");
    let sql = format!(
        "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, dateTime TIMESTAMP(3),
           WATERMARK FOR dateTime AS dateTime - INTERVAL '5' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
         CREATE TABLE counts (auction BIGINT, window_end TIMESTAMP(3), c BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO counts
         SELECT auction, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
         GROUP BY auction, window_start, window_end;",
        data.display(),
        out_dir.display()
    );
    let out = weir()
        .args(["run", "--quiet"])
        .arg(script(&dir, &sql))
        .output()
        .expect("run weir");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = Vec::new();
    for f in std::fs::read_dir(&out_dir).expect("out dir") {
        let text = std::fs::read_to_string(f.expect("file").path()).expect("read");
        lines.extend(text.lines().map(|l| l.to_string()));
    }
    lines.sort();
    // bids.json: auction 1 at 1, 9.999 | 10, 15 | 29 | 31 ; auction 2 at 3, 8 | 21, 25 ; auction 3 at 14 | 33.5
    assert_eq!(
        lines,
        vec![
            "1,2026-01-01 00:00:10.000,2",
            "1,2026-01-01 00:00:20.000,2",
            "1,2026-01-01 00:00:30.000,1",
            "1,2026-01-01 00:00:40.000,1",
            "2,2026-01-01 00:00:10.000,2",
            "2,2026-01-01 00:00:30.000,2",
            "3,2026-01-01 00:00:20.000,1",
            "3,2026-01-01 00:00:40.000,1",
        ]
    );
}

#[test]
fn unsupported_construct_is_one_line_naming_it_with_nonzero_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sql =
        "CREATE TABLE a (x BIGINT) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid');\n\
               CREATE TABLE b (x BIGINT) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid');\n\
               SELECT a.x FROM a\n  JOIN b ON a.x = b.x;\n";
    let out = weir()
        .arg("run")
        .arg(script(&dir, sql))
        .output()
        .expect("run weir");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("JOIN"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn missing_file_and_bad_option_are_clear_errors() {
    let out = weir()
        .args(["run", "/nonexistent/job.sql"])
        .output()
        .expect("run weir");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/job.sql"));

    let dir = tempfile::tempdir().expect("tempdir");
    let sql = "CREATE TABLE bid (auction BIGINT) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'evnets.num' = '10');\n\
               SELECT auction FROM bid;";
    let out = weir()
        .arg("run")
        .arg(script(&dir, sql))
        .output()
        .expect("run weir");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("evnets.num"), "{err}");
}
