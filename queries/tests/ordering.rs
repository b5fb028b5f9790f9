//! SQL forms of the ordering operators, with exact rows: `SEQUENCE_ORDER` /
//! `SEQUENCE_GAPS`, `ROW_NUMBER() … = 1` deduplication, streaming
//! `ORDER BY rowtime`, and `OVER` windows; plus the plan errors of the forms
//! Weir does not run.
//!
//! Inputs are one row per batch on one subtask, so the watermark
//! (max `ts` − 2 s) advances after every row and the results are exact.
//!
//! Checked against Flink 2.2.0 (PyFlink, Java 17, parallelism 1,
//! `pipeline.auto-watermark-interval` = 0 so the watermark also advances
//! after every row): on `tests/data/ordering/tx.json` the three
//! deduplications (`rn = 1`, `rn = 1 AND amount > 9`, `rn <= 1` with `rn`
//! selected), the two sorts (`ORDER BY ts, amount`, `ts ASC, amount DESC`)
//! and the four `OVER` queries below (RANGE with a named window and integer
//! AVG, AVG of a CAST to DOUBLE, ROWS with a computed argument, the default
//! unbounded frame) give exactly these rows, in this order, late rows
//! dropped. `SEQUENCE_ORDER`/`SEQUENCE_GAPS` are Weir's own (Flink has none).

use std::sync::Arc;

use weir_engine::runtime::{Job, JobConfig};
use weir_queries::collect::{format_rows, CollectSink};
use weir_queries::{plan_script, PlanOptions};

/// `tests/data/ordering/seq.json`: (account, seq, amount, second)
const SEQ: &str = "CREATE TABLE tx (
  account BIGINT, seq BIGINT, amount BIGINT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'tests/data/ordering/seq.json',
        'format' = 'json', 'batch.size' = '1');
";

/// `tests/data/ordering/tx.json`: (account, amount, second)
const TX: &str = "CREATE TABLE tx (
  account BIGINT, amount BIGINT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'tests/data/ordering/tx.json',
        'format' = 'json', 'batch.size' = '1');
";

struct Run {
    rows: Vec<Vec<String>>,
    late: u64,
    counts: Vec<(&'static str, u64)>,
    explain: String,
}

impl Run {
    fn count(&self, name: &str) -> u64 {
        self.counts
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .sum()
    }
}

async fn run(sql: &str) -> Run {
    let sink = CollectSink::new();
    let options = PlanOptions {
        parallelism: 1,
        select_sink: Some(Arc::new(sink.clone())),
        ..PlanOptions::new()
    };
    let planned = plan_script(sql, &options).unwrap_or_else(|e| panic!("{sql}\n{e}"));
    let explain = planned.explain().expect("explain");
    let job = Job::new(planned.graph, JobConfig::default()).expect("job");
    let metrics = job.metrics();
    job.run().await.expect("run");
    let mut counts = Vec::new();
    for (_, m) in metrics.all() {
        counts.extend(m.counts());
    }
    Run {
        rows: format_rows(&sink.batches()).expect("rows"),
        late: metrics.totals().late_rows_dropped,
        counts,
        explain,
    }
}

fn plan_error(sql: &str) -> String {
    let options = PlanOptions::new();
    match plan_script(sql, &options) {
        Ok(_) => panic!("planned: {sql}"),
        Err(e) => e.to_string(),
    }
}

fn rows(expected: &[&str]) -> Vec<Vec<String>> {
    expected
        .iter()
        .map(|r| r.split(' ').map(|s| s.replace('_', " ")).collect())
        .collect()
}

fn sorted(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.sort();
    rows
}

// --- SEQUENCE_ORDER / SEQUENCE_GAPS --------------------------------------
//
// seq.json, watermark = max ts - 2 s, max delay 1 s:
// account 1: 1, 3 (held), 2 (releases 2, 3), 2 again (duplicate), 5 (held:
// 4 is missing), 6 (held); at watermark 7 (row at 9 s) the gap 4 is given up
// (5 s + 1 s delay passed): a marker, then 5 and 6; 4 arriving at 10 s is
// behind the released sequence (a duplicate); then 7.
// account 2: 1, 2, 3 in order.

#[tokio::test]
async fn sequence_order_releases_rows_in_sequence_drops_and_counts_duplicates() {
    let r = run(&format!(
        "{SEQ}SELECT account, seq, amount
FROM TABLE(SEQUENCE_ORDER(TABLE tx, DESCRIPTOR(account), DESCRIPTOR(seq), INTERVAL '1' SECOND));"
    ))
    .await;
    // Arrival order across keys, sequence order within a key.
    assert_eq!(
        r.rows,
        rows(&[
            "1 1 10", "2 1 100", "1 2 20", "1 3 30", "2 2 200", "2 3 300", "1 5 50", "1 6 60",
            "1 7 70",
        ])
    );
    assert_eq!(r.count("duplicate_rows"), 2);
    assert_eq!(r.count("gaps"), 1);
    assert_eq!(r.count("missing_sequences"), 1);
    assert!(
        r.explain
            .contains("SEQUENCE_ORDER keys [account] sequence seq time ts max_delay 1000 ms"),
        "{}",
        r.explain
    );
}

#[tokio::test]
async fn sequence_gaps_emits_one_marker_per_given_up_gap() {
    let r = run(&format!(
        "{SEQ}SELECT *
FROM TABLE(SEQUENCE_GAPS(TABLE tx, DESCRIPTOR(account), DESCRIPTOR(seq), INTERVAL '1' SECOND, 100));"
    ))
    .await;
    // account, first_missing, last_missing, detected_at (the watermark that
    // gave the gap up: 9 s - 2 s).
    assert_eq!(r.rows, rows(&["1 4 4 2026-01-01_00:00:07.000"]));
}

#[tokio::test]
async fn a_small_buffer_gives_gaps_up_early() {
    // One held row per key: account 1's 5 waits for 4; when 6 arrives (the
    // second held row) the gap is given up at once, long before the delay;
    // detected_at is the watermark then (6 s - 2 s).
    let r = run(&format!(
        "{SEQ}SELECT *
FROM TABLE(SEQUENCE_GAPS(TABLE tx, DESCRIPTOR(account), DESCRIPTOR(seq), INTERVAL '1' MINUTE, 1));"
    ))
    .await;
    assert_eq!(r.rows, rows(&["1 4 4 2026-01-01_00:00:04.000"]));
}

#[tokio::test]
async fn first_sequence_makes_a_missing_start_a_gap() {
    // Every key expects 0 first: its 1 waits for 0 until 1 s + 1 s delay
    // (account 1; watermark 2 s after the row at 4 s) and 2 s + 1 s
    // (account 2; watermark 3 s after the row at 5 s).
    let r = run(&format!(
        "{SEQ}SELECT *
FROM TABLE(SEQUENCE_GAPS(TABLE tx, DESCRIPTOR(account), DESCRIPTOR(seq), INTERVAL '1' SECOND, 100, 0));"
    ))
    .await;
    assert_eq!(
        r.rows,
        rows(&[
            "1 0 0 2026-01-01_00:00:02.000",
            "2 0 0 2026-01-01_00:00:03.000",
            "1 4 4 2026-01-01_00:00:07.000",
        ])
    );
}

#[tokio::test]
async fn ordered_rows_and_gap_markers_in_one_job_read_the_table_twice() {
    let r = run(&format!(
        "{SEQ}SELECT account, seq, amount
FROM TABLE(SEQUENCE_ORDER(TABLE tx, DESCRIPTOR(account), DESCRIPTOR(seq), INTERVAL '1' SECOND));
SELECT account, first_missing, last_missing
FROM TABLE(SEQUENCE_GAPS(TABLE tx, DESCRIPTOR(account), DESCRIPTOR(seq), INTERVAL '1' SECOND));"
    ))
    .await;
    let rows = sorted(r.rows);
    assert_eq!(rows.len(), 10, "{rows:?}");
    assert!(
        rows.contains(&vec!["1".into(), "4".into(), "4".into()]),
        "{rows:?}"
    );
    assert!(r.explain.contains("SEQUENCE_GAPS") && r.explain.contains("SEQUENCE_ORDER"));
}

// --- Deduplication -------------------------------------------------------
//
// tx.json, watermark = max ts - 2 s after every row; late rows (behind the
// watermark): account 2 at 1.5 s, account 1 at 2.5 s, account 2 at 6 s.

#[tokio::test]
async fn row_number_equals_one_keeps_the_first_row_by_event_time() {
    let r = run(&format!(
        "{TX}SELECT account, amount, ts
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY account ORDER BY ts ASC) AS rn FROM tx)
WHERE rn = 1;"
    ))
    .await;
    // Account 3: 7 at 5 s arrives first, 8 at 4.5 s (not late) replaces it.
    assert_eq!(
        r.rows,
        rows(&[
            "1 10 2026-01-01_00:00:01.000",
            "2 20 2026-01-01_00:00:02.000",
            "3 8 2026-01-01_00:00:04.500",
        ])
    );
    assert_eq!(r.late, 3);
    // Account 1: 5 rows after its first, account 2: 2, account 3: 1.
    assert_eq!(r.count("duplicate_rows"), 8);
    assert!(r.explain.contains("deduplicate"), "{}", r.explain);
}

#[tokio::test]
async fn deduplication_then_another_condition() {
    // Keep-first per account, then only the kept rows above 9.
    let r = run(&format!(
        "{TX}SELECT account, amount FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY account ORDER BY ts) AS rn FROM tx)
WHERE rn = 1 AND amount > 9;"
    ))
    .await;
    assert_eq!(r.rows, rows(&["1 10", "2 20"]));
}

#[tokio::test]
async fn deduplication_with_rn_selected_and_rn_le_one() {
    let r = run(&format!(
        "{TX}SELECT * FROM (
  SELECT account, amount, ts,
    ROW_NUMBER() OVER (PARTITION BY account ORDER BY ts) AS rn
  FROM tx WHERE amount > 5)
WHERE rn <= 1;"
    ))
    .await;
    assert_eq!(
        r.rows,
        rows(&[
            "1 10 2026-01-01_00:00:01.000 1",
            "2 20 2026-01-01_00:00:02.000 1",
            "3 8 2026-01-01_00:00:04.500 1",
        ])
    );
}

// --- ORDER BY rowtime ----------------------------------------------------

#[tokio::test]
async fn order_by_rowtime_then_other_columns_sorts_under_the_watermark() {
    let r = run(&format!(
        "{TX}SELECT account, amount, ts FROM tx ORDER BY ts, amount;"
    ))
    .await;
    // Out-of-order rows (3.5 s after 4 s, 4.5 s after 5 s) are sorted in;
    // rows equal in time (12 s) by amount; late rows are dropped.
    assert_eq!(
        r.rows,
        rows(&[
            "1 10 2026-01-01_00:00:01.000",
            "2 20 2026-01-01_00:00:02.000",
            "1 5 2026-01-01_00:00:03.500",
            "1 30 2026-01-01_00:00:04.000",
            "3 8 2026-01-01_00:00:04.500",
            "3 7 2026-01-01_00:00:05.000",
            "1 60 2026-01-01_00:00:07.000",
            "2 70 2026-01-01_00:00:08.000",
            "1 80 2026-01-01_00:00:09.000",
            "2 90 2026-01-01_00:00:12.000",
            "1 100 2026-01-01_00:00:12.000",
        ])
    );
    assert_eq!(r.late, 3);
    assert!(r.explain.contains("temporal_sort"), "{}", r.explain);
}

#[tokio::test]
async fn order_by_rowtime_with_descending_second_key() {
    let r = run(&format!(
        "{TX}SELECT account, amount FROM tx WHERE ts >= TIMESTAMP '2026-01-01 00:00:09' ORDER BY ts ASC, amount DESC;"
    ))
    .await;
    assert_eq!(r.rows, rows(&["1 80", "1 100", "2 90"]));
}

#[tokio::test]
async fn order_by_window_time_after_a_window_aggregation() {
    // window_time is a time attribute of a window aggregation's output.
    let r = run(&format!(
        "{TX}SELECT account, window_time, c FROM (
  SELECT account, window_start, window_end, window_time, COUNT(*) AS c
  FROM TABLE(TUMBLE(TABLE tx, DESCRIPTOR(ts), INTERVAL '5' SECOND))
  GROUP BY account, window_start, window_end, window_time)
ORDER BY window_time, account;"
    ))
    .await;
    assert_eq!(
        r.rows,
        rows(&[
            "1 2026-01-01_00:00:04.999 3",
            "2 2026-01-01_00:00:04.999 2",
            "3 2026-01-01_00:00:04.999 1",
            "1 2026-01-01_00:00:09.999 2",
            "2 2026-01-01_00:00:09.999 1",
            "3 2026-01-01_00:00:09.999 1",
            "1 2026-01-01_00:00:14.999 1",
            "2 2026-01-01_00:00:14.999 1",
        ])
    );
}

// --- OVER windows --------------------------------------------------------

#[tokio::test]
async fn over_range_interval_preceding_with_named_window() {
    let r = run(&format!(
        "{TX}SELECT account, ts, amount,
  COUNT(*) OVER w AS c, SUM(amount) OVER w AS s, AVG(amount) OVER w AS a
FROM tx
WINDOW w AS (PARTITION BY account ORDER BY ts
             RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW);"
    ))
    .await;
    // AVG of a BIGINT is a BIGINT (35 / 2 = 17), as in Flink.
    assert_eq!(
        r.rows,
        rows(&[
            "1 2026-01-01_00:00:01.000 10 1 10 10",
            "2 2026-01-01_00:00:02.000 20 1 20 20",
            "1 2026-01-01_00:00:03.500 5 1 5 5",
            "1 2026-01-01_00:00:04.000 30 2 35 17",
            "3 2026-01-01_00:00:04.500 8 1 8 8",
            "3 2026-01-01_00:00:05.000 7 2 15 7",
            "1 2026-01-01_00:00:07.000 60 1 60 60",
            "2 2026-01-01_00:00:08.000 70 1 70 70",
            "1 2026-01-01_00:00:09.000 80 2 140 70",
            "2 2026-01-01_00:00:12.000 90 1 90 90",
            "1 2026-01-01_00:00:12.000 100 1 100 100",
        ])
    );
    assert_eq!(r.late, 3);
}

#[tokio::test]
async fn over_avg_of_a_cast_to_double_is_a_double() {
    let r = run(&format!(
        "{TX}SELECT account, AVG(CAST(amount AS DOUBLE)) OVER w AS a
FROM tx WHERE account = 1
WINDOW w AS (PARTITION BY account ORDER BY ts
             RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW);"
    ))
    .await;
    // DataFusion cannot also take AVG(amount) in the same window here: both
    // columns would get the same name (a CAST is named after its argument).
    assert_eq!(
        r.rows,
        rows(&["1 10.0", "1 5.0", "1 17.5", "1 60.0", "1 70.0", "1 100.0"])
    );
}

#[tokio::test]
async fn over_rows_preceding_with_a_computed_argument() {
    let r = run(&format!(
        "{TX}SELECT account, ts,
  COUNT(*) OVER w AS c, SUM(amount * 2) OVER w AS s, MIN(amount) OVER w AS mn
FROM tx
WINDOW w AS (PARTITION BY account ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW);"
    ))
    .await;
    // ROWS counts rows, not time: account 1 at 7 s still sees 4 s.
    assert_eq!(
        r.rows,
        rows(&[
            "1 2026-01-01_00:00:01.000 1 20 10",
            "2 2026-01-01_00:00:02.000 1 40 20",
            "1 2026-01-01_00:00:03.500 2 30 5",
            "1 2026-01-01_00:00:04.000 2 70 5",
            "3 2026-01-01_00:00:04.500 1 16 8",
            "3 2026-01-01_00:00:05.000 2 30 7",
            "1 2026-01-01_00:00:07.000 2 180 30",
            "2 2026-01-01_00:00:08.000 2 180 20",
            "1 2026-01-01_00:00:09.000 2 280 60",
            "2 2026-01-01_00:00:12.000 2 320 70",
            "1 2026-01-01_00:00:12.000 2 360 80",
        ])
    );
}

#[tokio::test]
async fn over_unbounded_preceding_is_the_default_frame() {
    let r = run(&format!(
        "{TX}SELECT account, ts,
  COUNT(*) OVER (PARTITION BY account ORDER BY ts) AS c,
  MAX(amount) OVER (PARTITION BY account ORDER BY ts) AS mx
FROM tx;"
    ))
    .await;
    assert_eq!(
        r.rows,
        rows(&[
            "1 2026-01-01_00:00:01.000 1 10",
            "2 2026-01-01_00:00:02.000 1 20",
            "1 2026-01-01_00:00:03.500 2 10",
            "1 2026-01-01_00:00:04.000 3 30",
            "3 2026-01-01_00:00:04.500 1 8",
            "3 2026-01-01_00:00:05.000 2 8",
            "1 2026-01-01_00:00:07.000 4 60",
            "2 2026-01-01_00:00:08.000 2 70",
            "1 2026-01-01_00:00:09.000 5 80",
            "2 2026-01-01_00:00:12.000 3 90",
            "1 2026-01-01_00:00:12.000 6 100",
        ])
    );
}

// --- Plan errors ---------------------------------------------------------

#[test]
fn unsupported_ordering_forms_are_plan_errors_naming_them() {
    let err = |q: &str| plan_error(&format!("{TX}{q}"));
    let cases: &[(&str, &str)] = &[
        (
            "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY account ORDER BY ts DESC) AS rn FROM tx) WHERE rn = 1;",
            "deduplication keeping the last row",
        ),
        (
            "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY account ORDER BY amount) AS rn FROM tx) WHERE rn = 1;",
            "amount is not a time attribute",
        ),
        (
            "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY account ORDER BY ts) AS rn FROM tx) WHERE rn <= 3;",
            "ROW_NUMBER() OVER (...) outside the deduplication form",
        ),
        ("SELECT * FROM tx ORDER BY amount;", "ORDER BY tx.amount ASC on a stream: the first sort key must be a time attribute, ascending (time attributes here: ts)"),
        ("SELECT * FROM tx ORDER BY ts DESC;", "ORDER BY tx.ts DESC on a stream"),
        ("SELECT account, amount FROM (SELECT account, amount, ts + INTERVAL '1' SECOND AS t2 FROM tx) ORDER BY t2;", "the first sort key must be a time attribute"),
        (
            "SELECT SUM(amount) OVER (PARTITION BY account ORDER BY ts ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM tx;",
            "FOLLOWING",
        ),
        (
            "SELECT SUM(amount) OVER (PARTITION BY account ORDER BY amount) FROM tx;",
            "OVER (ORDER BY tx.amount): tx.amount is not a time attribute",
        ),
        (
            "SELECT SUM(amount) OVER (PARTITION BY account) FROM tx;",
            "OVER without ORDER BY",
        ),
        (
            "SELECT SUM(amount) OVER (PARTITION BY account ORDER BY ts DESC) FROM tx;",
            "an OVER window must be ordered by a time attribute, ascending",
        ),
        (
            "SELECT COUNT(*) OVER (PARTITION BY account ORDER BY ts), SUM(amount) OVER (PARTITION BY account ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM tx;",
            "all aggregates must be computed on the same window",
        ),
        (
            "SELECT COUNT(DISTINCT amount) OVER (PARTITION BY account ORDER BY ts) FROM tx;",
            "DISTINCT in an OVER aggregate",
        ),
        ("SELECT * FROM tx ORDER BY ts LIMIT 3;", "LIMIT"),
        (
            "SELECT RANK() OVER (PARTITION BY account ORDER BY ts) FROM tx;",
            "RANK() OVER (...): OVER supports aggregate functions",
        ),
        (
            "SELECT LAG(amount) OVER (PARTITION BY account ORDER BY ts) FROM tx;",
            "LAG() OVER (...)",
        ),
        (
            "SELECT SUM(amount) OVER (PARTITION BY account ORDER BY ts GROUPS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM tx;",
            "GROUPS frames are not supported",
        ),
        (
            "SELECT * FROM TABLE(SEQUENCE_ORDER(TABLE tx, DESCRIPTOR(account), DESCRIPTOR(nope), INTERVAL '1' SECOND));",
            "SEQUENCE_ORDER: sequence column nope: table tx has no such column",
        ),
        (
            "SELECT * FROM TABLE(SEQUENCE_GAPS(TABLE tx, DESCRIPTOR(account), DESCRIPTOR(ts), INTERVAL '1' SECOND));",
            "SEQUENCE_GAPS: sequence column 'ts' must be an integer",
        ),
    ];
    for (q, want) in cases {
        let e = err(q);
        assert!(e.contains("line 6") && e.contains(want), "{q}\n{e}");
    }
    let e = plan_error(
        "CREATE TABLE t (k BIGINT, seq BIGINT, ts TIMESTAMP(3))
WITH ('connector' = 'filesystem', 'path' = 'x.json', 'format' = 'json');
SELECT * FROM TABLE(SEQUENCE_ORDER(TABLE t, DESCRIPTOR(k), DESCRIPTOR(seq), INTERVAL '1' SECOND));",
    );
    assert!(e.contains("the input has no time attribute"), "{e}");
}

#[test]
fn keyed_forms_hash_partition_and_keyless_forms_run_on_one_subtask() {
    let options = PlanOptions {
        parallelism: 4,
        ..PlanOptions::new()
    };
    let explain = |q: &str| {
        plan_script(&format!("{TX}{q}"), &options)
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .explain()
            .expect("explain")
    };
    let e = explain("SELECT account, COUNT(*) OVER (PARTITION BY account ORDER BY ts) FROM tx;");
    assert!(
        e.contains("--hash[0]--> [3] over_aggregate") && e.contains("(parallelism 4)"),
        "{e}"
    );
    let e = explain("SELECT COUNT(*) OVER (ORDER BY ts) FROM tx;");
    assert!(e.contains("--rebalance--> [3] over_aggregate"), "{e}");
    let e = explain("SELECT * FROM tx ORDER BY ts;");
    assert!(e.contains("--rebalance--> [2] temporal_sort"), "{e}");
    let e = explain(
        "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY account ORDER BY ts) AS rn FROM tx) WHERE rn = 1;",
    );
    assert!(e.contains("--hash[0]--> [2] deduplicate"), "{e}");
}
