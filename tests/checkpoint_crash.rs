//! Crash test: a `weir run` with checkpoints is killed with SIGKILL at
//! random moments and restarted; its committed output must equal, row for
//! row, the output of an uninterrupted run (nothing lost, nothing
//! duplicated).
//!
//! Pipeline: nexmark bids (2 generator splits, paced by `events.rate`) →
//! watermark → hash shuffle on `auction` (2 subtasks: barriers are aligned
//! over two channels) → tumbling-window aggregation → exactly-once
//! filesystem sink.
//!
//! The same with the `transactions` generator (late and duplicate rows,
//! injected fraud cases) → hash shuffle on `account_id` → `SEQUENCE_ORDER`
//! per account (duplicates dropped, rows released in sequence order) →
//! one-minute tumbling-window aggregation → filesystem sink. Its reference
//! run is checked on its own first: every account's sequence 1..n counted
//! exactly once. A third test runs that job with an exactly-once Kafka
//! sink beside the file sink, on a tansu broker (skipped without one,
//! failed when `WEIR_REQUIRE_BROKERS` is set), and compares the topic's
//! committed view with the uninterrupted run's rows too.
//!
//! `WEIR_CRASH_KILLS` sets the number of kills (default 20);
//! `WEIR_CRASH_SEED` the seed of the kill moments (default: the clock; the
//! seed is printed).

mod crash_support;
#[path = "../connectors/tests/tansu_support/mod.rs"]
mod tansu_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crash_support::{
    checkpointed_run, committed_rows, every_sequence_number_once, kill_settings,
    kill_settings_from, run_to_success, uninterrupted_run, weir, write, Lcg,
};

fn job_sql(out: &Path, events: u64, rate: Option<u64>) -> String {
    let rate = rate
        .map(|r| format!(",\n  'events.rate' = '{r}'"))
        .unwrap_or_default();
    format!(
        "CREATE TABLE bid (
  auction  BIGINT,
  bidder   BIGINT,
  price    BIGINT,
  dateTime TIMESTAMP(3),
  WATERMARK FOR dateTime AS dateTime - INTERVAL '1' SECOND
) WITH (
  'connector' = 'nexmark',
  'nexmark.table' = 'bid',
  'events.num' = '{events}'{rate}
);
CREATE TABLE results (
  auction BIGINT,
  num BIGINT,
  total BIGINT,
  top_bidder BIGINT,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3)
) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO results
SELECT auction, count(*) AS num, sum(price) AS total, max(bidder) AS top_bidder,
       window_start, window_end
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '100' MILLISECOND))
GROUP BY auction, window_start, window_end;
",
        out.display()
    )
}

/// The transactions job's window query over the `ordered` view (the
/// `SEQUENCE_ORDER` output).
const TX_WINDOW_QUERY: &str =
    "SELECT account_id, count(*) AS num, max(seq) AS last_seq, sum(seq) AS seq_total,
       window_start, window_end
FROM TABLE(TUMBLE(TABLE ordered, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY account_id, window_start, window_end";

/// The columns of the transactions job's output tables.
const TX_RESULT_COLUMNS: &str = "account_id BIGINT,
  num BIGINT,
  last_seq BIGINT,
  seq_total BIGINT,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3)";

/// The transactions job: `events` slots, paced at `rate` slots/s if given.
fn transactions_sql(out: &Path, events: u64, rate: Option<u64>) -> String {
    let rate = rate
        .map(|r| format!(",\n  'events.rate' = '{r}'"))
        .unwrap_or_default();
    format!(
        "CREATE TABLE tx (
  account_id BIGINT,
  seq        BIGINT,
  amount     DOUBLE,
  event_time TIMESTAMP(3),
  WATERMARK FOR event_time AS event_time - INTERVAL '6' SECOND
) WITH (
  'connector' = 'transactions',
  'accounts' = '1000',
  'out-of-order.rate' = '0.05',
  'duplicate.rate' = '0.02',
  'fraud.rate' = '0.0004',
  'batch.size' = '500',
  'events.num' = '{events}'{rate}
);
CREATE TABLE results (
  {TX_RESULT_COLUMNS}
) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE VIEW ordered AS
SELECT * FROM TABLE(SEQUENCE_ORDER(TABLE tx, DESCRIPTOR(account_id), DESCRIPTOR(seq),
                                   INTERVAL '6' SECOND, 100000, 1));
INSERT INTO results
{TX_WINDOW_QUERY};
",
        out.display()
    )
}

#[test]
fn killed_and_restarted_job_matches_an_uninterrupted_run() {
    crash_test(job_sql, "nexmark-bid/", None);
}

#[test]
fn killed_and_restarted_transactions_job_matches_an_uninterrupted_run() {
    crash_test(
        transactions_sql,
        "transactions/",
        Some(every_sequence_number_once),
    );
}

/// The transactions job killed and restarted as above, writing the same
/// window rows to the file sink and to an exactly-once Kafka sink on a
/// tansu broker (2 partitions, keyed by account; `'sink.partitioner' =
/// 'fixed'`: sink subtask `s` writes partition `s`).
///
/// Why fixed: tansu 0.6 materializes a transaction's offset commit (the
/// sink's commit marker) only once every transaction that overlaps it on
/// the same partitions has ended, and ignores OffsetFetch's
/// `require_stable`; with both subtasks writing both partitions, a
/// restart could read a stale marker while the other subtask's old
/// transaction is still open, and commit an epoch twice (seen once in 40
/// kills: 523 duplicate rows). Kafka answers `require_stable` reads with
/// UNSTABLE_OFFSET_COMMIT until the offsets are materialized. The topic's committed
/// view (read by `tansu_support::committed_view`, which does not trust
/// the broker's aborted list) must equal the uninterrupted run's rows as a
/// multiset, every account's windows must be in one partition in window
/// order, and no transaction may be left open.
#[test]
fn killed_and_restarted_transactions_job_with_a_kafka_sink_matches_an_uninterrupted_run() {
    let test =
        "killed_and_restarted_transactions_job_with_a_kafka_sink_matches_an_uninterrupted_run";
    let Some(broker) = tansu_support::broker(test).expect("a tansu broker") else {
        return;
    };
    let topic = tansu_support::unique("crash-out");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime
        .block_on(weir_connectors::kafka::produce::ensure_topic(
            &broker.bootstrap,
            &topic,
            Some(2),
        ))
        .expect("create the output topic");
    let statements = format!(
        "CREATE TABLE kresults (
  {TX_RESULT_COLUMNS}
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic}',
  'properties.bootstrap.servers' = '{}',
  'format' = 'json',
  'key.format' = 'json',
  'key.fields' = 'account_id',
  'sink.partitioner' = 'fixed',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '{}'
);
INSERT INTO kresults
{TX_WINDOW_QUERY};
",
        broker.bootstrap,
        tansu_support::unique("crash")
    );
    let (bootstrap, t) = (broker.bootstrap.clone(), topic.clone());
    let after_kills = move || {
        let logs = tansu_support::committed_view(&bootstrap, &t, 2).expect("committed view");
        let rows: usize = logs.iter().map(|l| l.committed.len()).sum();
        let aborted: usize = logs.iter().map(|l| l.aborted_records).sum();
        eprintln!(
            "crash test: after the kills, the kafka committed view has {rows} rows ({aborted} records aborted)"
        );
        assert!(rows > 0, "the killed runs committed nothing to Kafka");
    };
    let bootstrap = broker.bootstrap.clone();
    let check = move |expected: &[String]| {
        let logs = tansu_support::committed_view(&bootstrap, &topic, 2).expect("committed view");
        let mut rows = Vec::new();
        let mut partition_of: std::collections::BTreeMap<i64, usize> = Default::default();
        let (mut aborted, mut committed) = (0, 0);
        for (p, log) in logs.iter().enumerate() {
            assert_eq!(log.open_records, 0, "partition {p}: an open transaction");
            aborted += log.aborted_records;
            committed += log.committed_transactions;
            // Per account: windows in increasing order.
            let mut last: std::collections::BTreeMap<i64, String> = Default::default();
            for r in &log.committed {
                let v: serde_json::Value = serde_json::from_str(&r.text()).expect("a JSON row");
                let account = v["account_id"].as_i64().expect("account_id");
                assert_eq!(r.key_text(), format!(r#"{{"account_id":{account}}}"#));
                assert_eq!(
                    *partition_of.entry(account).or_insert(p),
                    p,
                    "account {account}"
                );
                let start = v["window_start"]
                    .as_str()
                    .expect("window_start")
                    .to_string();
                if let Some(prev) = last.insert(account, start.clone()) {
                    assert!(
                        prev < start,
                        "account {account}: window {start} after {prev}"
                    );
                }
                rows.push(r.text());
            }
        }
        eprintln!(
            "crash test: kafka committed view: {} rows, {committed} committed transactions, {aborted} aborted records",
            rows.len()
        );
        rows.sort();
        assert_eq!(rows.len(), expected.len(), "kafka row count");
        let first_diff = rows.iter().zip(expected).position(|(a, b)| a != b);
        assert_eq!(
            first_diff, None,
            "first kafka row differing from the uninterrupted run"
        );
    };
    crash_test_with(
        transactions_sql,
        "transactions/",
        Some(every_sequence_number_once),
        Some(KafkaOutput {
            statements,
            life_ms: (400, 1600),
            after_kills: Box::new(after_kills),
            check: Box::new(check),
        }),
    );
    drop(broker);
}

/// Runs the job `sql` makes uninterrupted, then killed and restarted many
/// times with checkpoints; compares the committed rows. `marker` is in the
/// positions `weir checkpoints` lists.
fn crash_test(
    sql_for: fn(&Path, u64, Option<u64>) -> String,
    marker: &str,
    check_reference: Option<fn(&[String])>,
) {
    crash_test_with(sql_for, marker, check_reference, None);
}

/// An exactly-once Kafka sink added to the crash run: `statements` (the
/// table and its INSERT) are appended to the crash run's script, and after
/// the run `check` compares the topic's committed view with the
/// uninterrupted run's rows.
struct KafkaOutput {
    statements: String,
    /// The range of a killed run's life, in ms (the job has two pipelines
    /// and transactional producers to start: longer than the file-only
    /// tests' 150..900, so that killed runs commit to Kafka too).
    life_ms: (u64, u64),
    /// Called after the kills, before the run that finishes the job.
    after_kills: Box<dyn Fn()>,
    /// Compares the topic with the uninterrupted run's rows.
    check: RowsCheck,
}

/// A check of the committed rows against the uninterrupted run's.
type RowsCheck = Box<dyn Fn(&[String])>;

/// [`crash_test`], with a Kafka output written by the crash runs as well.
fn crash_test_with(
    sql_for: fn(&Path, u64, Option<u64>) -> String,
    marker: &str,
    check_reference: Option<fn(&[String])>,
    kafka: Option<KafkaOutput>,
) {
    let (kills, seed) = kill_settings("crash test");
    let rate = 20_000;
    // Enough input that the job outlives the kills (each life makes about
    // 0.3-0.5 s of progress on average).
    let events = 40_000 + kills * 15_000;
    let tmp = tempfile::tempdir().expect("tempdir");

    // The reference: one uninterrupted run without checkpoints, unpaced.
    let reference_out = tmp.path().join("reference");
    let sql = write(
        &tmp.path().join("reference.sql"),
        &sql_for(&reference_out, events, None),
    );
    uninterrupted_run(&sql);
    let expected = committed_rows(&reference_out);
    assert!(expected.len() > 1000, "{} rows", expected.len());
    if let Some(check) = check_reference {
        check(&expected);
    }

    // The crash run.
    let crash_out = tmp.path().join("crash");
    let ckpt = tmp.path().join("checkpoints");
    let mut crash_sql = sql_for(&crash_out, events, Some(rate));
    if let Some(k) = &kafka {
        crash_sql.push_str(&k.statements);
    }
    let sql = write(&tmp.path().join("crash.sql"), &crash_sql);
    let run = || checkpointed_run(&ckpt, &sql, "200ms");
    let mut rng = Lcg(seed);
    let mut killed = 0;
    let started = Instant::now();
    while killed < kills {
        let mut child = run()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir");
        let (lo, hi) = kafka.as_ref().map_or((150, 900), |k| k.life_ms);
        std::thread::sleep(Duration::from_millis(rng.next_in(lo, hi)));
        match child.try_wait().expect("try_wait") {
            None => {
                child.kill().expect("SIGKILL");
                let _ = child.wait();
                killed += 1;
            }
            Some(status) => {
                let out = child.wait_with_output().expect("output");
                assert!(
                    status.success(),
                    "weir failed after {killed} kills: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                break;
            }
        }
    }
    eprintln!(
        "crash test: {killed} kills in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        killed >= kills.min(20),
        "only {killed} kills: the job ended too soon"
    );
    eprintln!(
        "crash test: after the kills, {} rows committed to files",
        committed_rows(&crash_out).len()
    );
    if let Some(k) = &kafka {
        (k.after_kills)();
    }
    // Let it finish (a run after the end only completes the last commit).
    run_to_success(&mut run());
    let got = committed_rows(&crash_out);
    assert_eq!(got.len(), expected.len(), "row counts differ");
    assert!(got == expected, "rows differ from the uninterrupted run");
    if let Some(k) = &kafka {
        (k.check)(&expected);
    }

    // `weir checkpoints` lists the retained checkpoints, the last one final.
    let out = weir()
        .arg("checkpoints")
        .arg(&ckpt)
        .output()
        .expect("run weir");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("(final: job finished)"), "{text}");
    assert!(text.contains(marker), "{text}");
}

#[test]
fn changed_query_is_refused_unless_state_reset_is_allowed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_dir = tmp.path().join("out");
    let ckpt = tmp.path().join("ck");
    let sql = write(&tmp.path().join("a.sql"), &job_sql(&out_dir, 20_000, None));
    let run = |sql: &Path, extra: &[&str]| {
        weir()
            .args(["run", "--quiet", "--checkpoint-interval", "50ms"])
            .args(extra)
            .arg("--checkpoint-dir")
            .arg(&ckpt)
            .arg(sql)
            .output()
            .expect("run weir")
    };
    let out = run(&sql, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changed = job_sql(&out_dir, 20_000, None).replace("'100' MILLISECOND", "'1' SECOND");
    let sql2 = write(&tmp.path().join("b.sql"), &changed);
    let out = run(&sql2, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("different job"), "{err}");
    assert!(err.contains("--allow-state-reset"), "{err}");
    let out = run(&sql2, &["--allow-state-reset"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!committed_rows(&out_dir).is_empty());
}

mod s3_support;

/// The crash test with checkpoints on S3 (`--checkpoint-dir s3://…`, on
/// moto's S3 server): a few kills (`WEIR_S3_CRASH_KILLS`, default 4) are
/// enough here, the many-kill runs above use local directories.
#[test]
fn killed_and_restarted_job_with_checkpoints_on_s3_matches_an_uninterrupted_run() {
    let Some(emu) = s3_support::emulator() else {
        return;
    };
    let (kills, seed) = kill_settings_from("WEIR_S3_CRASH_KILLS", 4, "s3 crash test");
    let events = 40_000 + kills * 15_000;
    let tmp = tempfile::tempdir().expect("tempdir");
    let reference_out = tmp.path().join("reference");
    let sql = write(
        &tmp.path().join("reference.sql"),
        &job_sql(&reference_out, events, None),
    );
    uninterrupted_run(&sql);
    let expected = committed_rows(&reference_out);
    assert!(expected.len() > 1000, "{} rows", expected.len());

    let bucket = emu.new_bucket("crash");
    let ckpt = format!("s3://{bucket}/jobs/bids");
    let crash_out = tmp.path().join("crash");
    let sql = write(
        &tmp.path().join("crash.sql"),
        &job_sql(&crash_out, events, Some(20_000)),
    );
    let with_env = |mut c: Command| {
        for (k, v) in emu.env() {
            c.env(k, v);
        }
        c
    };
    let run = || {
        let mut c = weir();
        // Not --quiet: the "resuming from checkpoint" line is wanted.
        c.args([
            "run",
            "-p",
            "2",
            "--checkpoint-interval",
            "200ms",
            "--checkpoint-dir",
            &ckpt,
        ])
        .arg(&sql);
        with_env(c)
    };
    let mut rng = Lcg(seed);
    let mut killed = 0;
    let mut resumed = 0;
    while killed < kills {
        let mut child = run()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir");
        std::thread::sleep(Duration::from_millis(rng.next_in(500, 1200)));
        match child.try_wait().expect("try_wait") {
            None => {
                child.kill().expect("SIGKILL");
                let out = child.wait_with_output().expect("output");
                if String::from_utf8_lossy(&out.stderr).contains("resuming from checkpoint") {
                    resumed += 1;
                }
                killed += 1;
            }
            Some(status) => {
                let out = child.wait_with_output().expect("output");
                assert!(
                    status.success(),
                    "weir failed after {killed} kills: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                break;
            }
        }
    }
    assert_eq!(killed, kills, "the job ended too soon");
    assert!(resumed >= 1, "no run resumed from an S3 checkpoint");
    run_to_success(&mut run());
    let got = committed_rows(&crash_out);
    assert_eq!(got.len(), expected.len(), "row counts differ");
    assert!(got == expected, "rows differ from the uninterrupted run");

    // `weir checkpoints s3://…` lists the 3 retained checkpoints, the last
    // one final.
    let mut c = weir();
    c.arg("checkpoints").arg(&ckpt);
    let out = with_env(c).output().expect("run weir");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("checkpoint "))
        .collect();
    assert_eq!(listed.len(), 3, "{text}");
    assert!(listed[2].contains("(final: job finished)"), "{text}");
    assert!(text.contains("nexmark-bid/"), "{text}");
}
