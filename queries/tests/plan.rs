//! Planning: the shape of the dataflow graph for typical queries, and plan
//! errors that name the construct and the line.

use weir_queries::{plan_script, PlanOptions};

const BID: &str = "CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  dateTime TIMESTAMP(3), extra STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events.num' = '1000');
CREATE TABLE out2 (a BIGINT, b BIGINT) WITH ('connector' = 'blackhole');
";

fn explain(sql: &str, parallelism: usize) -> String {
    let options = PlanOptions {
        parallelism,
        ..PlanOptions::new()
    };
    let script = format!("{BID}{sql}");
    plan_script(&script, &options)
        .and_then(|j| j.explain())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn plan_error(sql: &str) -> String {
    let script = format!("{BID}{sql}");
    match plan_script(&script, &PlanOptions::new()) {
        Ok(_) => panic!("{sql}: planned, expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn stateless_query_is_one_chained_task() {
    let text = explain(
        "INSERT INTO out2 SELECT auction, price * 2 FROM bid WHERE price > 10;",
        4,
    );
    // source -> watermark -> filter -> project -> sink, all forward: one task.
    assert!(text.contains("task 0 (parallelism 4)"), "{text}");
    assert!(!text.contains("task 1"), "{text}");
    assert!(!text.contains("edges between tasks"), "{text}");
}

#[test]
fn keyed_window_aggregate_is_behind_a_hash_edge() {
    let text = explain(
        "INSERT INTO out2 SELECT auction, COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end;",
        2,
    );
    assert!(text.contains("window_aggregate"), "{text}");
    assert!(text.contains("--hash["), "{text}");
}

#[test]
fn keyless_window_aggregate_runs_with_parallelism_one() {
    let text = explain(
        "INSERT INTO out2 SELECT COUNT(*), MAX(price) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY window_start, window_end;",
        3,
    );
    assert!(text.contains("(parallelism 1)"), "{text}");
    assert!(text.contains("--rebalance-->"), "{text}");
}

#[test]
fn plan_errors_name_the_construct_and_line() {
    let lines_before = BID.lines().count();
    let err = plan_error("INSERT INTO out2\nSELECT auction, COUNT(*) FROM bid GROUP BY auction;");
    assert!(
        err.contains("GROUP BY without window_start, window_end"),
        "{err}"
    );
    assert!(err.contains(&format!("line {}", lines_before + 1)), "{err}");
    let err = plan_error("INSERT INTO out2 SELECT auction FROM bid;");
    assert!(
        err.contains("the query has 1 columns, the table has 2"),
        "{err}"
    );
    let err = plan_error("INSERT INTO nowhere SELECT auction, bidder FROM bid;");
    assert!(err.contains("nowhere"), "{err}");
    let err = plan_error("SELECT x FROM bid;");
    assert!(err.contains("x"), "{err}");
    let err = plan_error("SET 'state.backend' = 'rocksdb';\nSELECT auction FROM bid;");
    assert!(err.contains("unsupported SET key 'state.backend'"), "{err}");
}

#[test]
fn metadata_columns_are_checked_against_the_connector() {
    // The nexmark generator has no metadata: the error names column and key.
    let script = "CREATE TABLE b2 (
  auction BIGINT,
  part INT METADATA FROM 'partition' VIRTUAL
) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid');
SELECT auction, part FROM b2;";
    let err = match plan_script(script, &PlanOptions::new()) {
        Ok(_) => panic!("planned a metadata column the connector lacks"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("column part") && err.contains("no metadata key 'partition'"),
        "{err}"
    );
    // A writable metadata column in a sink table is a plan error naming it.
    let err = plan_error(
        "CREATE TABLE out3 (a BIGINT, ts TIMESTAMP(3) METADATA FROM 'timestamp') WITH ('connector' = 'blackhole');
INSERT INTO out3 SELECT auction FROM bid;",
    );
    assert!(err.contains("writing METADATA column ts"), "{err}");
}

#[test]
fn match_recognize_and_sequence_order_are_named_until_wired() {
    // MATCH_RECOGNIZE is wired: keyed by its PARTITION BY columns.
    let plan = explain(
        "SELECT * FROM bid MATCH_RECOGNIZE (PARTITION BY auction ORDER BY dateTime
  MEASURES A.price AS p PATTERN (A B) DEFINE A AS A.price > 0);",
        2,
    );
    assert!(
        plan.contains("MATCH_RECOGNIZE") && plan.contains("hash"),
        "{plan}"
    );
    // SEQUENCE_ORDER is wired now (tests/ordering.rs has its rows).
    let text = explain(
        "SELECT * FROM TABLE(SEQUENCE_ORDER(TABLE bid, DESCRIPTOR(auction), DESCRIPTOR(price), INTERVAL '1' SECOND));",
        2,
    );
    assert!(text.contains("--hash[0]--> [2] SEQUENCE_ORDER"), "{text}");
}
