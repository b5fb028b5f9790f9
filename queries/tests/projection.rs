//! Projection push-down: the columns a job never reads are named to the
//! source's connector (`TableDescriptor::unread`), for every way a table
//! is read: a plain scan, a window TVF, a view, and never a column the
//! watermark or a `NOT NULL` constraint needs.

use std::sync::{Arc, Mutex};

use weir_connectors::{Connector, ConnectorRegistry, TableDescriptor};
use weir_engine::source::SourceFactory;
use weir_engine::Result;
use weir_queries::{plan_script, PlanOptions};

/// A connector that records what each source is told is unread, and reads
/// through the built-in filesystem connector.
struct Capture {
    unread: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Connector for Capture {
    fn name(&self) -> &str {
        "capture"
    }

    fn source(&self, table: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
        if let Ok(mut u) = self.unread.lock() {
            u.push(table.unread.clone());
        }
        let mut inner = table.clone();
        inner
            .options
            .insert("connector".to_string(), "filesystem".to_string());
        ConnectorRegistry::with_defaults().source(&inner)
    }
}

/// The unread columns of each source of `sql` (after the table DDL), in
/// the order the sources were planned.
fn unread(url_type: &str, sql: &str) -> Vec<Vec<String>> {
    let data = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(
            || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            std::path::PathBuf::from,
        )
        .join("tests/data/bids.json");
    let script = format!(
        "CREATE TABLE bid (
           auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url {url_type},
           dateTime TIMESTAMP(3), extra STRING,
           WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
         ) WITH ('connector' = 'capture', 'path' = '{}', 'format' = 'json');
         {sql}",
        data.display()
    );
    let captured = Arc::new(Mutex::new(Vec::new()));
    let mut registry = ConnectorRegistry::with_defaults();
    registry.register(Arc::new(Capture {
        unread: captured.clone(),
    }));
    let options = PlanOptions {
        registry: Arc::new(registry),
        ..PlanOptions::new()
    };
    if let Err(e) = plan_script(&script, &options) {
        panic!("{sql}: {e}");
    }
    let got = captured.lock().map(|u| u.clone()).unwrap_or_default();
    got
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_scan_reads_its_projection_and_the_watermark_column() {
    assert_eq!(
        unread("STRING", "SELECT auction, price FROM bid;"),
        vec![names(&["bidder", "channel", "url", "extra"])]
    );
    assert_eq!(
        unread(
            "STRING",
            "SELECT price * 2 AS p FROM bid WHERE channel = 'web';"
        ),
        vec![names(&["auction", "bidder", "url", "extra"])]
    );
    assert_eq!(
        unread("STRING", "SELECT * FROM bid;"),
        vec![Vec::<String>::new()]
    );
}

#[test]
fn a_window_tvf_reads_the_columns_used_downstream_and_its_time_column() {
    let hop = "SELECT auction, window_start, window_end, COUNT(*) AS num
               FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
               GROUP BY auction, window_start, window_end;";
    assert_eq!(
        unread("STRING", hop),
        vec![names(&["bidder", "price", "channel", "url", "extra"])]
    );
    let tumble = "SELECT window_start, MAX(price) AS top, MIN(extra) AS e
                  FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
                  GROUP BY window_start, window_end;";
    assert_eq!(
        unread("STRING", tumble),
        vec![names(&["auction", "bidder", "channel", "url"])]
    );
}

#[test]
fn views_two_statements_and_not_null_columns() {
    // Each statement plans its own source.
    let two = "CREATE TABLE out1 (a BIGINT) WITH ('connector' = 'blackhole');
               CREATE TABLE out2 (u STRING) WITH ('connector' = 'blackhole');
               INSERT INTO out1 SELECT auction FROM bid;
               INSERT INTO out2 SELECT url FROM bid;";
    assert_eq!(
        unread("STRING", two),
        vec![
            names(&["bidder", "price", "channel", "url", "extra"]),
            names(&["auction", "bidder", "price", "channel", "extra"]),
        ]
    );
    // The query over a view reads only what it uses of the view.
    let view = "CREATE VIEW v AS SELECT auction, bidder FROM bid;
                SELECT auction FROM v;";
    assert_eq!(
        unread("STRING", view),
        vec![names(&["bidder", "price", "channel", "url", "extra"])]
    );
    // A NOT NULL column is always read (its constraint is checked).
    assert_eq!(
        unread("STRING NOT NULL", "SELECT auction FROM bid;"),
        vec![names(&["bidder", "price", "channel", "extra"])]
    );
}
