//! Pins the Flink forms the dialect layer accepts, rewrites and rejects.

use sqlparser::ast::{
    AfterMatchSkip, DataType, ExactNumberInfo, Ident, ObjectName, Query, TimezoneInfo,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use weir_dialect::{
    check_supported, parse_script, ColumnDef, CreateTable, DialectError, FlinkDialect, PatternTerm,
    Quantifier, ScriptStatement, StatementKind, TableFunctionArg, TvfKind, WindowTvf,
};

fn parse(sql: &str) -> Vec<ScriptStatement> {
    match parse_script(sql) {
        Ok(s) => s,
        Err(e) => panic!("{sql}\nfailed: {e}"),
    }
}

fn error(sql: &str) -> DialectError {
    match parse_script(sql) {
        Ok(s) => panic!("{sql}\nparsed, expected an error: {s:?}"),
        Err(e) => e,
    }
}

/// The single query statement of `sql`: (query, tvfs).
fn query(sql: &str) -> (Box<Query>, Vec<WindowTvf>) {
    let mut stmts = parse(sql);
    assert_eq!(stmts.len(), 1, "{sql}");
    match stmts.remove(0).kind {
        StatementKind::Query { query, tvfs } => (query, tvfs),
        other => panic!("not a query: {other:?}"),
    }
}

fn create_table(sql: &str) -> CreateTable {
    let mut stmts = parse(sql);
    assert_eq!(stmts.len(), 1, "{sql}");
    match stmts.remove(0).kind {
        StatementKind::CreateTable(t) => t,
        other => panic!("not a CREATE TABLE: {other:?}"),
    }
}

fn unsupported(construct: &str, line: usize) -> DialectError {
    DialectError::Unsupported {
        construct: construct.into(),
        line,
    }
}

fn invalid(line: usize, message: &str) -> DialectError {
    DialectError::Invalid {
        line,
        message: message.into(),
    }
}

fn ltz(precision: &str) -> DataType {
    DataType::Custom(
        ObjectName::from(vec![Ident::new("TIMESTAMP_LTZ")]),
        vec![precision.into()],
    )
}

fn tvf(n: usize, kind: TvfKind, input: &str, time_column: &str, line: usize) -> WindowTvf {
    WindowTvf {
        table_name: format!("__weir_tvf_{n}"),
        kind,
        input: input.into(),
        time_column: time_column.into(),
        partition_by: vec![],
        alias: None,
        match_recognize: None,
        function: match kind {
            TvfKind::Tumble { .. } => "TUMBLE",
            TvfKind::Hop { .. } => "HOP",
            TvfKind::Cumulate { .. } => "CUMULATE",
            TvfKind::Session { .. } => "SESSION",
            TvfKind::Sequence { gaps: false, .. } => "SEQUENCE_ORDER",
            TvfKind::Sequence { gaps: true, .. } => "SEQUENCE_GAPS",
            TvfKind::MatchRecognize => "MATCH_RECOGNIZE",
            TvfKind::Function => "",
        }
        .into(),
        args: vec![],
        line,
    }
}

// ---------------------------------------------------------------- CREATE TABLE

const BID_DDL: &str = "\
CREATE TABLE bid (
  auction BIGINT NOT NULL,
  bidder BIGINT,
  price DECIMAL(10, 2) COMMENT 'in cents',
  `dateTime` TIMESTAMP(3),
  ingest TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  `partition` INT METADATA VIRTUAL,
  kafka_offset BIGINT METADATA FROM 'offset',
  price_eur AS price * 0.9,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '5' SECOND,
  PRIMARY KEY (auction, bidder) NOT ENFORCED
) WITH (
  'connector' = 'kafka',
  'properties.bootstrap.servers' = 'localhost:9092',
  'format' = 'json'
)";

#[test]
fn create_table_with_every_element() {
    let t = create_table(BID_DDL);
    assert_eq!(t.name, "bid");
    assert_eq!(t.line, 1);
    assert_eq!(t.columns.len(), 8);
    assert_eq!(
        t.columns[0],
        ColumnDef::Physical {
            name: "auction".into(),
            data_type: DataType::BigInt(None),
            nullable: false,
            line: 2
        }
    );
    // A primary key column is NOT NULL, as in Flink.
    assert_eq!(
        t.columns[1],
        ColumnDef::Physical {
            name: "bidder".into(),
            data_type: DataType::BigInt(None),
            nullable: false,
            line: 3
        }
    );
    assert_eq!(
        t.columns[2],
        ColumnDef::Physical {
            name: "price".into(),
            data_type: DataType::Decimal(ExactNumberInfo::PrecisionAndScale(10, 2)),
            nullable: true,
            line: 4
        }
    );
    assert_eq!(
        t.columns[3],
        ColumnDef::Physical {
            name: "dateTime".into(),
            data_type: DataType::Timestamp(Some(3), TimezoneInfo::None),
            nullable: true,
            line: 5
        }
    );
    assert_eq!(
        t.columns[4],
        ColumnDef::Metadata {
            name: "ingest".into(),
            data_type: ltz("3"),
            key: Some("timestamp".into()),
            is_virtual: true,
            line: 6
        }
    );
    assert_eq!(
        t.columns[5],
        ColumnDef::Metadata {
            name: "partition".into(),
            data_type: DataType::Int(None),
            key: None,
            is_virtual: true,
            line: 7
        }
    );
    assert_eq!(
        t.columns[6],
        ColumnDef::Metadata {
            name: "kafka_offset".into(),
            data_type: DataType::BigInt(None),
            key: Some("offset".into()),
            is_virtual: false,
            line: 8
        }
    );
    let ColumnDef::Computed { name, expr, line } = &t.columns[7] else {
        panic!("not computed: {:?}", t.columns[7]);
    };
    assert_eq!(
        (name.as_str(), expr.to_string().as_str(), *line),
        ("price_eur", "price * 0.9", 9)
    );

    let wm = t.watermark.as_ref().expect("watermark");
    assert_eq!(wm.column, "dateTime");
    assert_eq!(wm.expr.to_string(), "`dateTime` - INTERVAL '5' SECOND");
    assert_eq!(wm.line, 10);

    assert_eq!(t.primary_key, vec!["auction", "bidder"]);
    assert_eq!(
        t.options,
        vec![
            ("connector".to_string(), "kafka".to_string()),
            (
                "properties.bootstrap.servers".to_string(),
                "localhost:9092".to_string()
            ),
            ("format".to_string(), "json".to_string()),
        ]
    );
}

#[test]
fn create_table_flink_types() {
    let t = create_table(
        "CREATE TEMPORARY TABLE IF NOT EXISTS t (
            a STRING, b VARCHAR(10), c CHAR, d BOOLEAN, e TINYINT, f SMALLINT, g INT,
            h INTEGER, i BIGINT, j FLOAT, k DOUBLE, l DECIMAL(5, 1), m DATE, n TIME,
            o TIMESTAMP, p TIMESTAMP(3), q TIMESTAMP_LTZ(3), r BYTES,
            s TIMESTAMP(3) WITH LOCAL TIME ZONE, u INT NULL
        ) WITH ('connector' = 'datagen')",
    );
    let types: Vec<DataType> = t
        .columns
        .iter()
        .map(|c| match c {
            ColumnDef::Physical { data_type, .. } => data_type.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        types,
        vec![
            DataType::String(None),
            DataType::Varchar(Some(sqlparser::ast::CharacterLength::IntegerLength {
                length: 10,
                unit: None
            })),
            DataType::Char(None),
            DataType::Boolean,
            DataType::TinyInt(None),
            DataType::SmallInt(None),
            DataType::Int(None),
            DataType::Integer(None),
            DataType::BigInt(None),
            DataType::Float(ExactNumberInfo::None),
            DataType::Double(ExactNumberInfo::None),
            DataType::Decimal(ExactNumberInfo::PrecisionAndScale(5, 1)),
            DataType::Date,
            DataType::Time(None, TimezoneInfo::None),
            DataType::Timestamp(None, TimezoneInfo::None),
            DataType::Timestamp(Some(3), TimezoneInfo::None),
            ltz("3"),
            DataType::Bytes(None),
            ltz("3"),
            DataType::Int(None),
        ]
    );
    assert!(t.watermark.is_none());
    assert!(t.primary_key.is_empty());
}

#[test]
fn create_table_inline_primary_key_and_constraint_name() {
    let t = create_table(
        "CREATE TABLE t (id BIGINT PRIMARY KEY NOT ENFORCED COMMENT 'key', v STRING) WITH ()",
    );
    assert_eq!(t.primary_key, vec!["id"]);
    assert!(t.options.is_empty());
    let t = create_table(
        "CREATE TABLE t (a INT, b INT, CONSTRAINT pk PRIMARY KEY (b, a) NOT ENFORCED)",
    );
    assert_eq!(t.primary_key, vec!["b", "a"]);
}

#[test]
fn create_table_backticks_and_case() {
    let t = create_table(
        "CREATE TABLE `Order` (`from` INT, `select` STRING, camelCase BIGINT, \"Quoted\" INT) \
         WITH ('Connector.Key' = 'Some Value')",
    );
    assert_eq!(t.name, "Order");
    let names: Vec<&str> = t.columns.iter().map(|c| c.name()).collect();
    assert_eq!(names, vec!["from", "select", "camelCase", "Quoted"]);
    assert_eq!(
        t.options,
        vec![("Connector.Key".into(), "Some Value".into())]
    );
}

#[test]
fn create_table_errors() {
    assert_eq!(
        error("CREATE TABLE t (\n  a INT,\n  WATERMARK FOR ts AS ts\n)"),
        invalid(3, "WATERMARK FOR ts: no such column in table t")
    );
    assert_eq!(
        error("CREATE TABLE t (a INT,\n  PRIMARY KEY (a))"),
        invalid(
            2,
            "PRIMARY KEY must be declared NOT ENFORCED (Flink does not own the data, so the key is not checked)"
        )
    );
    assert_eq!(
        error("CREATE TABLE t (a INT, PRIMARY KEY (b) NOT ENFORCED)"),
        invalid(1, "PRIMARY KEY column `b` is not a column of table t")
    );
    assert_eq!(
        error("CREATE TABLE t (a INT,\n a STRING)"),
        invalid(2, "column `a` is defined twice in table t")
    );
    assert_eq!(
        error("CREATE TABLE t (a INT) WITH ('k' = 'v', 'k' = 'w')"),
        invalid(1, "option 'k' is given twice")
    );
    assert_eq!(
        error("CREATE TABLE t (a INT)\nPARTITIONED BY (a) WITH ('k' = 'v')"),
        unsupported("PARTITIONED BY", 2)
    );
    assert_eq!(
        error("CREATE TABLE t AS SELECT * FROM u"),
        unsupported("CREATE TABLE AS SELECT", 1)
    );
    assert_eq!(
        error("CREATE TABLE t (a INT) WITH ('k' = 5)"),
        DialectError::Syntax {
            line: 1,
            column: 36,
            message: "Expected: a quoted string, found: 5".into()
        }
    );
}

// ---------------------------------------------------------------- window TVFs

#[test]
fn tumble_is_replaced_by_a_synthetic_table() {
    let (q, tvfs) =
        query("SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))");
    assert_eq!(q.to_string(), "SELECT * FROM __weir_tvf_0");
    assert_eq!(
        tvfs,
        vec![tvf(
            0,
            TvfKind::Tumble {
                size_ms: 10_000,
                offset_ms: 0
            },
            "bid",
            "dateTime",
            1
        )]
    );
}

#[test]
fn tumble_with_offset_and_lowercase_names() {
    let (q, tvfs) = query(
        "select window_start, count(*) from table(\n  tumble(table Bid, descriptor(dateTime), interval '1' hour, interval '15' minute))\n\
         group by window_start, window_end",
    );
    assert_eq!(
        q.to_string(),
        "SELECT window_start, count(*) FROM __weir_tvf_0 GROUP BY window_start, window_end"
    );
    assert_eq!(
        tvfs,
        vec![tvf(
            0,
            TvfKind::Tumble {
                size_ms: 3_600_000,
                offset_ms: 900_000
            },
            "Bid",
            "dateTime",
            2
        )]
    );
}

#[test]
fn hop_takes_slide_then_size() {
    let (q, tvfs) = query(
        "SELECT * FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))",
    );
    assert_eq!(q.to_string(), "SELECT * FROM __weir_tvf_0");
    assert_eq!(
        tvfs[0].kind,
        TvfKind::Hop {
            slide_ms: 2_000,
            size_ms: 10_000,
            offset_ms: 0
        }
    );
}

#[test]
fn cumulate_takes_step_then_size() {
    let (_, tvfs) = query(
        "SELECT * FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '1' MINUTE, INTERVAL '1' HOUR))",
    );
    assert_eq!(
        tvfs[0].kind,
        TvfKind::Cumulate {
            step_ms: 60_000,
            size_ms: 3_600_000,
            offset_ms: 0
        }
    );
}

#[test]
fn session_with_partition_by() {
    let (q, tvfs) = query(
        "SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))",
    );
    assert_eq!(q.to_string(), "SELECT * FROM __weir_tvf_0");
    assert_eq!(
        tvfs,
        vec![WindowTvf {
            partition_by: vec!["bidder".into()],
            ..tvf(0, TvfKind::Session { gap_ms: 10_000 }, "bid", "dateTime", 1)
        }]
    );

    let (_, tvfs) = query(
        "SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, `auction`, DESCRIPTOR(dateTime), INTERVAL '1' MINUTE))",
    );
    assert_eq!(tvfs[0].partition_by, vec!["bidder", "auction"]);
    let (_, tvfs) = query(
        "SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY (bidder, auction), DESCRIPTOR(dateTime), INTERVAL '1' MINUTE))",
    );
    assert_eq!(tvfs[0].partition_by, vec!["bidder", "auction"]);
    let (_, tvfs) = query(
        "SELECT * FROM TABLE(SESSION(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '5' MINUTES))",
    );
    assert_eq!(tvfs[0].kind, TvfKind::Session { gap_ms: 300_000 });
    assert!(tvfs[0].partition_by.is_empty());
}

#[test]
fn named_arguments() {
    let (_, tvfs) = query(
        "SELECT * FROM TABLE(TUMBLE(DATA => TABLE bid, TIMECOL => DESCRIPTOR(dateTime), SIZE => INTERVAL '10' MINUTES))",
    );
    assert_eq!(
        tvfs,
        vec![tvf(
            0,
            TvfKind::Tumble {
                size_ms: 600_000,
                offset_ms: 0
            },
            "bid",
            "dateTime",
            1
        )]
    );
    let (_, tvfs) = query(
        "SELECT * FROM TABLE(HOP(DATA => TABLE bid, SIZE => INTERVAL '10' SECOND, \
         slide => INTERVAL '5' SECOND, TIMECOL => DESCRIPTOR(ts), \"OFFSET\" => INTERVAL '1' SECOND))",
    );
    assert_eq!(
        tvfs[0].kind,
        TvfKind::Hop {
            slide_ms: 5_000,
            size_ms: 10_000,
            offset_ms: 1_000
        }
    );
    let (_, tvfs) = query(
        "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), SIZE => INTERVAL '1' SECOND))",
    );
    assert_eq!(
        tvfs[0].kind,
        TvfKind::Tumble {
            size_ms: 1_000,
            offset_ms: 0
        }
    );
}

#[test]
fn tvf_alias_subquery_and_insert() {
    let stmts = parse(
        "INSERT INTO bid_counts
SELECT bidder, COUNT(*) AS n, window_start, window_end
FROM (
  SELECT * FROM TABLE(
    HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '5' SECOND, INTERVAL '10' SECOND)) AS w
) AS t
GROUP BY bidder, window_start, window_end",
    );
    let StatementKind::Insert { table, query, tvfs } = &stmts[0].kind else {
        panic!("{stmts:?}");
    };
    assert_eq!(table, "bid_counts");
    assert_eq!(
        query.to_string(),
        "SELECT bidder, COUNT(*) AS n, window_start, window_end \
         FROM (SELECT * FROM __weir_tvf_0 AS w) AS t GROUP BY bidder, window_start, window_end"
    );
    assert_eq!(
        tvfs,
        &vec![WindowTvf {
            alias: Some("w".into()),
            ..tvf(
                0,
                TvfKind::Hop {
                    slide_ms: 5_000,
                    size_ms: 10_000,
                    offset_ms: 0
                },
                "bid",
                "dateTime",
                5
            )
        }]
    );
}

#[test]
fn tvfs_in_ctes_and_union_all_branches() {
    let (q, tvfs) = query(
        "WITH w AS (SELECT * FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(ts), INTERVAL '1' SECOND)))
SELECT * FROM w
UNION ALL
SELECT * FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '2' SECOND)) AS x (c1, c2)",
    );
    assert_eq!(
        q.to_string(),
        "WITH w AS (SELECT * FROM __weir_tvf_0) SELECT * FROM w UNION ALL SELECT * FROM __weir_tvf_1 AS x (c1, c2)"
    );
    let summary: Vec<(&str, &str, Option<&str>, usize)> = tvfs
        .iter()
        .map(|t| {
            (
                t.table_name.as_str(),
                t.input.as_str(),
                t.alias.as_deref(),
                t.line,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("__weir_tvf_0", "a", None, 1),
            ("__weir_tvf_1", "b", Some("x"), 4)
        ]
    );
}

#[test]
fn window_tvf_without_table_wrapper() {
    let (q, tvfs) = query("SELECT * FROM TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '1' DAY) t");
    assert_eq!(q.to_string(), "SELECT * FROM __weir_tvf_0 t");
    assert_eq!(
        tvfs[0].kind,
        TvfKind::Tumble {
            size_ms: 86_400_000,
            offset_ms: 0
        }
    );
}

#[test]
fn intervals() {
    let cases = [
        ("INTERVAL '10' SECOND", 10_000),
        ("INTERVAL '10' SECONDS", 10_000),
        ("INTERVAL '5' MINUTE", 300_000),
        ("INTERVAL '2' MINUTES", 120_000),
        ("INTERVAL '1' HOUR", 3_600_000),
        ("INTERVAL '3' HOURS", 10_800_000),
        ("INTERVAL '1' DAY", 86_400_000),
        ("INTERVAL '0.5' SECOND", 500),
        ("INTERVAL '1.25' SECOND", 1_250),
        ("INTERVAL '100' MILLISECOND", 100),
        ("INTERVAL 3 SECOND", 3_000),
        ("INTERVAL '1 02:00:00' DAY TO SECOND", 93_600_000),
        ("INTERVAL '1:30' MINUTE TO SECOND", 90_000),
        ("INTERVAL '2:15' HOUR TO MINUTE", 8_100_000),
        ("(INTERVAL '7' SECOND)", 7_000),
    ];
    for (interval, ms) in cases {
        let sql = format!("SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), {interval}))");
        let (_, tvfs) = query(&sql);
        assert_eq!(
            tvfs[0].kind,
            TvfKind::Tumble {
                size_ms: ms,
                offset_ms: 0
            },
            "{interval}"
        );
    }
    // Negative offsets are allowed, within the size.
    let (_, tvfs) = query(
        "SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' HOUR, -INTERVAL '10' MINUTE))",
    );
    assert_eq!(
        tvfs[0].kind,
        TvfKind::Tumble {
            size_ms: 3_600_000,
            offset_ms: -600_000
        }
    );
}

#[test]
fn invalid_window_tvfs() {
    let tumble = |args: &str| {
        error(&format!(
            "SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), {args}))"
        ))
    };
    assert_eq!(
        error("SELECT *\nFROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '3' SECOND, INTERVAL '10' SECOND))"),
        invalid(2, "HOP size (10000 ms) must be an integral multiple of slide (3000 ms)")
    );
    assert_eq!(
        error("SELECT * FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(ts), INTERVAL '7' SECOND, INTERVAL '1' MINUTE))"),
        invalid(1, "CUMULATE size (60000 ms) must be an integral multiple of step (7000 ms)")
    );
    assert_eq!(
        tumble("INTERVAL '1' MONTH"),
        invalid(
            1,
            "SIZE of TUMBLE: a year-month interval (MONTH) is not allowed here: months and years \
             have no fixed length; use a day-time interval (DAY, HOUR, MINUTE, SECOND)"
        )
    );
    assert!(matches!(
        tumble("INTERVAL '1' YEAR"),
        DialectError::Invalid { .. }
    ));
    assert!(matches!(
        tumble("INTERVAL '1-2' YEAR TO MONTH"),
        DialectError::Invalid { .. }
    ));
    assert_eq!(
        tumble("INTERVAL '0' SECOND"),
        invalid(1, "TUMBLE size must be positive, got 0 ms")
    );
    assert_eq!(
        tumble("INTERVAL '0.0001' SECOND"),
        invalid(
            1,
            "SIZE of TUMBLE: invalid interval value '0.0001' for unit SECOND"
        )
    );
    assert_eq!(
        tumble("INTERVAL '10'"),
        invalid(
            1,
            "SIZE of TUMBLE: INTERVAL '10' needs a unit, e.g. INTERVAL '10' SECOND"
        )
    );
    assert_eq!(
        tumble("INTERVAL '1' MINUTE, INTERVAL '1' MINUTE"),
        invalid(
            1,
            "TUMBLE offset (60000 ms) must be smaller in absolute value than the window size (60000 ms)"
        )
    );
    assert_eq!(
        tumble("10"),
        invalid(
            1,
            "SIZE of TUMBLE: expected a day-time INTERVAL literal such as INTERVAL '10' SECOND, found: 10"
        )
    );
    assert_eq!(
        tumble("WIDTH => INTERVAL '1' SECOND"),
        invalid(
            1,
            "unknown argument WIDTH of TUMBLE (expected one of DATA, TIMECOL, SIZE, OFFSET)"
        )
    );
    assert_eq!(
        tumble("INTERVAL '1' SECOND, SIZE => INTERVAL '1' SECOND"),
        invalid(1, "argument SIZE of TUMBLE is given twice")
    );
    assert_eq!(
        tumble("INTERVAL '1' SECOND, INTERVAL '0' SECOND, INTERVAL '0' SECOND"),
        invalid(
            1,
            "TUMBLE takes at most 4 arguments, got 5; expected TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])"
        )
    );
    assert_eq!(
        error("SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts)))"),
        invalid(
            1,
            "TUMBLE is missing its SIZE argument; expected TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])"
        )
    );
    assert_eq!(
        error("SELECT * FROM TABLE(TUMBLE(t, DESCRIPTOR(ts), INTERVAL '1' SECOND))"),
        invalid(
            1,
            "the DATA argument of TUMBLE must be TABLE <name>, found: t"
        )
    );
    assert_eq!(
        error("SELECT * FROM TABLE(TUMBLE(TABLE t, ts, INTERVAL '1' SECOND))"),
        invalid(
            1,
            "the TIMECOL argument of TUMBLE must be DESCRIPTOR(<column>), found: ts"
        )
    );
    assert_eq!(
        error("SELECT * FROM TABLE(TUMBLE(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '1' SECOND))"),
        invalid(
            1,
            "PARTITION BY is only allowed in SESSION windows, not in TUMBLE"
        )
    );
    assert_eq!(
        error("SELECT a\nFROM t\nWHERE f(TABLE u) > 0"),
        invalid(
            3,
            "TABLE u is only allowed as the first argument of a table-valued function in FROM, \
             e.g. TABLE(TUMBLE(TABLE t, ...))"
        )
    );
    // Flink's legacy group-window functions.
    assert_eq!(
        error("SELECT COUNT(*)\nFROM bid\nGROUP BY TUMBLE(dateTime, INTERVAL '10' SECOND)"),
        unsupported("group window function TUMBLE", 3)
    );
    assert_eq!(
        error("SELECT COUNT(*)\nFROM bid\nGROUP BY TUMBLE(dateTime, INTERVAL '10' SECOND)")
            .to_string(),
        "line 3: unsupported construct: group window function TUMBLE (use the window \
         table-valued functions: FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size)))"
    );
}

// ---------------------------------------------------------------- scripts

const SCRIPT: &str = "\
-- A Nexmark-like script; this comment has a ; in it
SET 'parallelism.default' = '2';

/* a block comment
   spanning lines; with a semicolon */
CREATE TABLE bid (
  auction BIGINT,
  `dateTime` TIMESTAMP(3),
  extra STRING,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '1' SECOND
) WITH ('connector' = 'nexmark', 'note' = 'a;b');
;
CREATE TEMPORARY VIEW v AS
  SELECT auction, extra FROM bid WHERE extra <> 'x;y';  -- trailing; comment
INSERT INTO sink
SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND));
   SELECT * FROM TABLE(
     SESSION(TABLE v PARTITION BY auction, DESCRIPTOR(`dateTime`), INTERVAL '1' MINUTE))
-- no semicolon at the end
";

#[test]
fn multi_statement_script() {
    let stmts = parse(SCRIPT);
    let lines: Vec<usize> = stmts.iter().map(|s| s.line).collect();
    assert_eq!(lines, vec![2, 6, 13, 15, 17]);

    assert_eq!(
        stmts[0].kind,
        StatementKind::Set {
            key: "parallelism.default".into(),
            value: "2".into()
        }
    );
    let StatementKind::CreateTable(t) = &stmts[1].kind else {
        panic!("{:?}", stmts[1]);
    };
    assert_eq!(t.line, 6);
    assert_eq!(t.options[1], ("note".into(), "a;b".into()));
    assert_eq!(t.watermark.as_ref().map(|w| w.line), Some(10));

    let StatementKind::CreateView { name, query, tvfs } = &stmts[2].kind else {
        panic!("{:?}", stmts[2]);
    };
    assert_eq!(name, "v");
    assert_eq!(
        query.to_string(),
        "SELECT auction, extra FROM bid WHERE extra <> 'x;y'"
    );
    assert!(tvfs.is_empty());

    let StatementKind::Insert { table, query, tvfs } = &stmts[3].kind else {
        panic!("{:?}", stmts[3]);
    };
    assert_eq!(table, "sink");
    assert_eq!(query.to_string(), "SELECT * FROM __weir_tvf_0");
    assert_eq!(
        tvfs,
        &vec![tvf(
            0,
            TvfKind::Tumble {
                size_ms: 10_000,
                offset_ms: 0
            },
            "bid",
            "dateTime",
            16
        )]
    );

    // The TVF counter runs over the whole script.
    let StatementKind::Query { query, tvfs } = &stmts[4].kind else {
        panic!("{:?}", stmts[4]);
    };
    assert_eq!(query.to_string(), "SELECT * FROM __weir_tvf_1");
    assert_eq!(
        tvfs,
        &vec![WindowTvf {
            partition_by: vec!["auction".into()],
            ..tvf(1, TvfKind::Session { gap_ms: 60_000 }, "v", "dateTime", 18)
        }]
    );
}

#[test]
fn empty_scripts() {
    assert_eq!(parse(""), vec![]);
    assert_eq!(parse(" ;; -- nothing\n/* at all */ ;"), vec![]);
}

#[test]
fn set_statements() {
    let set = |sql: &str| match parse(sql).remove(0).kind {
        StatementKind::Set { key, value } => (key, value),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        set("SET 'parallelism.default' = '2';"),
        ("parallelism.default".into(), "2".into())
    );
    assert_eq!(
        set("SET 'table.exec.mini-batch.enabled'='true'"),
        ("table.exec.mini-batch.enabled".into(), "true".into())
    );
    assert_eq!(
        set("set execution.runtime-mode = streaming"),
        ("execution.runtime-mode".into(), "streaming".into())
    );
    assert_eq!(
        set("SET table.exec.state.ttl = 1 h"),
        ("table.exec.state.ttl".into(), "1 h".into())
    );
    assert_eq!(
        error("SET"),
        DialectError::Syntax {
            line: 1,
            column: 4,
            message: "Expected: SET 'key' = 'value', found: end of statement".into()
        }
    );
    assert!(matches!(
        error("SET 'a' = 'b' 'c'"),
        DialectError::Syntax {
            line: 1,
            column: 15,
            ..
        }
    ));
}

// ---------------------------------------------------------------- errors

#[test]
fn syntax_errors_report_line_and_column() {
    let e = error("SELECT a\nFROM t\nWHERE a = = 1");
    assert_eq!(
        e,
        DialectError::Syntax {
            line: 3,
            column: 11,
            message: "Expected: an expression, found: =".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "line 3, column 11: syntax error: Expected: an expression, found: ="
    );
    assert_eq!(
        error("SET 'a' = '1';\nCREATE TABLE t (\n  a INT,\n  b INT INT\n)"),
        DialectError::Syntax {
            line: 4,
            column: 9,
            message: "Expected: ',' or ')', found: INT".into()
        }
    );
    assert_eq!(
        error("SELECT a FROM t WHERE"),
        DialectError::Syntax {
            line: 1,
            column: 22,
            message: "Expected: an expression, found: end of statement".into()
        }
    );
    assert!(matches!(
        error("SELECT 1;\n\nSELECT 'abc"),
        DialectError::Syntax { line: 3, .. }
    ));
    assert_eq!(
        error("SELECT a FROM t t2 t3"),
        DialectError::Syntax {
            line: 1,
            column: 20,
            message: "Expected: end of statement, found: t3".into()
        }
    );
    assert!(matches!(
        error("42"),
        DialectError::Syntax {
            line: 1,
            column: 1,
            ..
        }
    ));
}

#[test]
fn join_is_reported_on_its_line() {
    let e = error("SELECT a.x, b.y\nFROM a\nJOIN b ON a.id = b.id");
    assert_eq!(e, unsupported("JOIN", 3));
    assert_eq!(
        e.to_string(),
        "line 3: unsupported construct: JOIN (joins are not supported yet)"
    );
    // In a script, with the statement starting on line 2; a comma join.
    assert_eq!(
        error("SET 'a' = 'b';\nSELECT *\nFROM a,\n  b"),
        unsupported("JOIN", 4)
    );
    assert_eq!(
        error("SELECT * FROM (a\n LEFT JOIN b ON a.k = b.k)"),
        unsupported("JOIN", 2)
    );
    assert_eq!(
        error("SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '1' SECOND)) w\n  JOIN person p ON w.bidder = p.id"),
        unsupported("JOIN", 2)
    );
}

#[test]
fn unsupported_constructs_are_named() {
    let cases: &[(&str, &str, usize)] = &[
        ("SELECT DISTINCT a FROM t", "SELECT DISTINCT", 1),
        ("SELECT COUNT(*) FROM t\nLIMIT 10", "LIMIT", 2),
        ("SELECT a FROM t OFFSET 5", "OFFSET", 1),
        ("SELECT a FROM t FETCH FIRST 10 ROWS ONLY", "FETCH", 1),
        (
            "SELECT a FROM t\nWHERE a IN (SELECT b FROM u)",
            "subquery in expression",
            2,
        ),
        (
            "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u)",
            "subquery in expression",
            1,
        ),
        (
            "SELECT (SELECT MAX(b) FROM u) FROM t",
            "subquery in expression",
            1,
        ),
        (
            "SELECT a FROM t\nUNION\nSELECT a FROM u",
            "UNION (without ALL)",
            3,
        ),
        (
            "SELECT a FROM t UNION DISTINCT SELECT a FROM u",
            "UNION (without ALL)",
            1,
        ),
        ("SELECT a FROM t INTERSECT SELECT a FROM u", "INTERSECT", 1),
        ("SELECT a FROM t EXCEPT SELECT a FROM u", "EXCEPT", 1),
        (
            "SELECT a, b, COUNT(*) FROM t GROUP BY GROUPING SETS ((a), (b))",
            "GROUPING SETS",
            1,
        ),
        (
            "SELECT a, COUNT(*) FROM t GROUP BY ROLLUP (a, b)",
            "ROLLUP",
            1,
        ),
        ("SELECT a, COUNT(*) FROM t GROUP BY CUBE (a, b)", "CUBE", 1),
        (
            "SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY a ORDER BY ts MEASURES A.x AS x \
             PATTERN (^ A B) DEFINE A AS A.x > 0)",
            "MATCH_RECOGNIZE anchors (^, $)",
            1,
        ),
        ("SELECT * FROM LATERAL (SELECT a FROM t) AS x", "LATERAL", 1),
        ("VALUES (1, 2)", "VALUES", 1),
        ("INSERT INTO t\nVALUES (1, 2)", "VALUES", 2),
        (
            "SELECT * FROM u WHERE a > 0\nUNION ALL\nSELECT * FROM (VALUES (1)) v",
            "VALUES",
            3,
        ),
        (
            "WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r",
            "WITH RECURSIVE",
            1,
        ),
        (
            "SELECT /*+ STATE_TTL('t' = '1d') */ a FROM t",
            "SQL hint (/*+ ... */)",
            1,
        ),
        (
            "SELECT * FROM generate_series(1, 10)",
            "table function generate_series(...)",
            1,
        ),
        ("DROP TABLE t", "DROP TABLE statement", 1),
        ("ALTER TABLE t RENAME TO u", "ALTER TABLE statement", 1),
        ("EXPLAIN SELECT 1", "EXPLAIN statement", 1),
        ("USE cat1", "USE statement", 1),
        (
            "CREATE FUNCTION f AS 'com.example.F'",
            "CREATE FUNCTION statement",
            1,
        ),
        (
            "CREATE TEMPORARY SYSTEM FUNCTION f AS 'com.example.F'",
            "CREATE FUNCTION statement",
            1,
        ),
        ("SELECT 1;\n\nSHOW TABLES", "SHOW TABLES statement", 3),
        (
            "CREATE OR REPLACE TEMPORARY VIEW v AS SELECT 1",
            "CREATE OR REPLACE VIEW statement",
            1,
        ),
        ("DROP TEMPORARY VIEW IF EXISTS v", "DROP VIEW statement", 1),
        ("RESET 'parallelism.default'", "RESET statement", 1),
        ("EXECUTE STATEMENT SET BEGIN", "STATEMENT SET statement", 1),
        ("INSERT OVERWRITE t SELECT * FROM u", "INSERT OVERWRITE", 1),
        (
            "INSERT INTO t (a, b) SELECT a, b FROM u",
            "INSERT with a column list",
            1,
        ),
        (
            "CREATE VIEW v (a) AS SELECT a FROM t",
            "CREATE VIEW with a column list",
            1,
        ),
    ];
    for (sql, construct, line) in cases {
        assert_eq!(error(sql), unsupported(construct, *line), "{sql}");
    }
    assert_eq!(
        error("SELECT a FROM t LIMIT 1").to_string(),
        "line 1: unsupported construct: LIMIT (LIMIT, OFFSET and FETCH are not supported on streams yet)"
    );
    assert_eq!(
        error("SELECT a FROM t UNION SELECT a FROM u").to_string(),
        "line 1: unsupported construct: UNION (without ALL) (only UNION ALL is supported)"
    );
}

#[test]
fn the_first_unsupported_construct_in_the_source_is_reported() {
    assert_eq!(
        error("SELECT DISTINCT a\nFROM t\nJOIN u ON t.k = u.k\nORDER BY a"),
        unsupported("SELECT DISTINCT", 1)
    );
    assert_eq!(
        error("SELECT a\nFROM t\nJOIN u ON t.k = u.k\nORDER BY a"),
        unsupported("JOIN", 3)
    );
}

#[test]
fn supported_query_shapes() {
    for sql in [
        "SELECT a, b + 1 AS c FROM t WHERE a > 0",
        "SELECT a, COUNT(*), SUM(b) FILTER (WHERE b > 0) FROM t GROUP BY a HAVING COUNT(*) > 1",
        "SELECT * FROM (SELECT a FROM t) AS s",
        "SELECT * FROM (SELECT a FROM t)",
        "WITH s AS (SELECT a FROM t) SELECT * FROM s",
        "SELECT a FROM t UNION ALL SELECT a FROM u UNION ALL SELECT a FROM v",
        "(SELECT a FROM t)",
        "SELECT CASE WHEN a IN (1, 2) THEN 'x' ELSE 'y' END FROM t",
        "SELECT CAST(a AS STRING), `from`, \"Quoted\" FROM `order`",
        "SELECT /*! this is a comment, not a hint */ a FROM t",
        "SELECT a FROM t WHERE s LIKE 'a;b%'",
    ] {
        let (q, tvfs) = query(sql);
        assert!(tvfs.is_empty(), "{sql}");
        assert_eq!(check_supported(&q), Ok(()), "{sql}");
    }
}

#[test]
fn check_supported_on_a_query_parsed_elsewhere() {
    let parse_one = |sql: &str| -> Query {
        let mut stmts = Parser::parse_sql(&FlinkDialect, sql).expect("parses");
        match stmts.remove(0) {
            sqlparser::ast::Statement::Query(q) => *q,
            other => panic!("{other:?}"),
        }
    };
    // A raw, not rewritten, window TVF is fine.
    let q =
        parse_one("SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '1' SECOND))");
    assert_eq!(check_supported(&q), Ok(()));
    let q = parse_one("SELECT *\nFROM a\n\nCROSS JOIN b");
    assert_eq!(check_supported(&q), Err(unsupported("JOIN", 4)));
    let q = parse_one("\n\nSELECT DISTINCT a FROM t");
    assert_eq!(check_supported(&q), Err(unsupported("SELECT DISTINCT", 3)));
}

#[test]
fn flink_forms_sqlparser_parses() {
    let match_recognize = "SELECT * FROM bid MATCH_RECOGNIZE (
  PARTITION BY auction
  ORDER BY dateTime
  MEASURES FIRST(A.price) AS first_price, LAST(B.price) AS last_price
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (A B+)
  DEFINE B AS B.price > A.price
)";
    let over = "SELECT auction, SUM(price) OVER (
  PARTITION BY auction ORDER BY dateTime
  RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW) AS total
FROM bid";
    for sql in [match_recognize, over] {
        assert!(Parser::parse_sql(&GenericDialect, sql).is_ok(), "{sql}");
        assert!(Parser::parse_sql(&FlinkDialect, sql).is_ok(), "{sql}");
    }
    // MATCH_RECOGNIZE is rewritten by the dialect (see
    // match_recognize_with_within_and_reluctant_quantifiers).
    assert_eq!(parse(match_recognize).len(), 1);
    // ORDER BY and OVER are the planner's to check (streaming ORDER BY
    // rowtime, OVER windows, ROW_NUMBER deduplication).
    assert_eq!(parse(over).len(), 1);
    assert_eq!(parse("SELECT a FROM t ORDER BY a").len(), 1);
    // The TVF form GenericDialect rejects.
    assert!(Parser::parse_sql(
        &GenericDialect,
        "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '1' SECOND))"
    )
    .is_err());
}

#[test]
fn case_is_preserved() {
    let (q, tvfs) = query(
        "SELECT bidderId, window_start FROM TABLE(TUMBLE(TABLE BidStream, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))",
    );
    assert_eq!(
        q.to_string(),
        "SELECT bidderId, window_start FROM __weir_tvf_0"
    );
    assert_eq!(tvfs[0].input, "BidStream");
    assert_eq!(tvfs[0].time_column, "dateTime");
    let t =
        create_table("CREATE TABLE MyTable (camelCase INT, WATERMARK FOR camelCase AS camelCase)");
    assert_eq!(t.name, "MyTable");
    assert_eq!(t.columns[0].name(), "camelCase");
    let stmts = parse("INSERT INTO db.SinkTable SELECT * FROM src");
    assert!(
        matches!(&stmts[0].kind, StatementKind::Insert { table, .. } if table == "db.SinkTable")
    );
}

#[test]
fn backtick_identifiers_in_queries() {
    let (q, tvfs) = query(
        "SELECT `from`, `window_start` FROM TABLE(TUMBLE(TABLE `order`, DESCRIPTOR(`time`), INTERVAL '1' SECOND)) AS `w`",
    );
    assert_eq!(
        q.to_string(),
        "SELECT `from`, `window_start` FROM __weir_tvf_0 AS `w`"
    );
    assert_eq!(tvfs[0].input, "order");
    assert_eq!(tvfs[0].time_column, "time");
    assert_eq!(tvfs[0].alias.as_deref(), Some("w"));
}

// ---------------------------------------------------------------- robustness

#[test]
fn long_operator_chains_are_rejected_not_crashed_on() {
    let chain = |n: usize| vec!["a"; n].join(" + ");
    let (q, _) = query(&format!("SELECT {} FROM t", chain(900)));
    assert!(q.to_string().starts_with("SELECT a + a"));
    assert_eq!(
        error(&format!("SELECT 1;\nSELECT {} FROM t", chain(5000))),
        unsupported("expression with more than 1000 chained operators", 2)
    );
    let (q, _) = query(&format!("SELECT SUM({}) OVER () FROM t", chain(900)));
    assert!(q.to_string().contains("OVER ()"));
    assert!(matches!(
        error(&format!(
            "SELECT {}a{} FROM t",
            "(".repeat(500),
            ")".repeat(500)
        )),
        DialectError::Syntax { .. }
    ));
}

#[test]
fn no_panic_on_any_prefix_or_mutation() {
    let texts = [SCRIPT, BID_DDL];
    for text in texts {
        for (i, _) in text.char_indices() {
            let _ = parse_script(&text[..i]);
            let _ = parse_script(&text[i..]);
        }
    }
    for junk in [
        "'", "`", "\"", "/*", "--", "(", ")", "TABLE", "TABLE(", "TABLE(TUMBLE(", "SELECT * FROM TABLE(TUMBLE(TABLE",
        "CREATE", "CREATE TABLE", "CREATE TABLE t (", "CREATE TABLE t (WATERMARK FOR", "INSERT", "INSERT INTO",
        "SET =", "SET = =", "SET 'a' =", "\u{0}", "SELECT \u{feff}1", "SELECT 'é;ü' FROM t",
        "SELECT * FROM TABLE(SESSION(TABLE t PARTITION BY", "SELECT * FROM TABLE(SESSION(TABLE t PARTITION BY (",
        "SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '99999999999999999999999' DAY))",
        "SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '-9223372036854775808' MILLISECOND))",
        "SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND, -INTERVAL '9223372036854775807' MILLISECOND))",
        "SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL ' 1 : 2 ' MINUTE TO SECOND))",
        "SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1.5 2' DAY TO HOUR))",
    ] {
        let _ = parse_script(junk);
    }
    assert!(matches!(
        error("SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '99999999999999999999' DAY))"),
        DialectError::Invalid { .. }
    ));
}

#[test]
fn sequence_order_and_gaps_tvfs() {
    let (q, tvfs) = query(
        "SELECT * FROM TABLE(SEQUENCE_ORDER(TABLE tx, DESCRIPTOR(account_id, card_id), \
         DESCRIPTOR(seq), INTERVAL '5' SECOND))",
    );
    assert_eq!(q.to_string(), "SELECT * FROM __weir_tvf_0");
    let mut expected = tvf(
        0,
        TvfKind::Sequence {
            max_delay_ms: 5_000,
            max_buffer_rows: None,
            first_sequence: None,
            gaps: false,
        },
        "tx",
        "seq",
        1,
    );
    expected.partition_by = vec!["account_id".into(), "card_id".into()];
    assert_eq!(tvfs, vec![expected]);

    let (_, tvfs) = query(
        "SELECT * FROM TABLE(SEQUENCE_GAPS(TABLE tx, DESCRIPTOR(account_id), \
         DESCRIPTOR(seq), INTERVAL '1' MINUTE, 1000, 1)) AS g",
    );
    assert_eq!(
        tvfs[0].kind,
        TvfKind::Sequence {
            max_delay_ms: 60_000,
            max_buffer_rows: Some(1000),
            first_sequence: Some(1),
            gaps: true,
        }
    );
    assert_eq!(tvfs[0].alias.as_deref(), Some("g"));

    let e = error(
        "SELECT * FROM TABLE(SEQUENCE_ORDER(TABLE tx, DESCRIPTOR(seq), INTERVAL '5' SECOND))",
    );
    assert!(
        e.to_string()
            .contains("SEQUENCE_ORDER is missing its MAX_DELAY argument"),
        "{e}"
    );
    let e = error(
        "SELECT * FROM TABLE(SEQUENCE_ORDER(TABLE tx, DESCRIPTOR(a), DESCRIPTOR(seq), \
         INTERVAL '5' SECOND, 0))",
    );
    assert!(
        e.to_string()
            .contains("MAX_BUFFER of SEQUENCE_ORDER must be a positive integer"),
        "{e}"
    );
}

#[test]
fn match_recognize_with_within_and_reluctant_quantifiers() {
    let (q, tvfs) = query(
        "SELECT * FROM tx MATCH_RECOGNIZE (
  PARTITION BY card_id
  ORDER BY event_time
  MEASURES FIRST(A.amount) AS small, LAST(B.amount) AS large
  ONE ROW PER MATCH
  AFTER MATCH SKIP TO NEXT ROW
  PATTERN (A C*? B{2,3} D+? E??) WITHIN INTERVAL '1' MINUTE
  DEFINE A AS A.amount < 1, B AS B.amount > 500
) AS m",
    );
    assert_eq!(q.to_string(), "SELECT * FROM __weir_tvf_0 AS m");
    let t = &tvfs[0];
    assert_eq!(t.kind, TvfKind::MatchRecognize);
    assert_eq!(t.input, "tx");
    assert_eq!(t.alias.as_deref(), Some("m"));
    let mr = t.match_recognize.as_deref().expect("clause");
    assert_eq!(mr.within_ms, Some(60_000));
    assert_eq!(mr.measures.len(), 2);
    assert_eq!(mr.define.len(), 2);
    assert_eq!(mr.after_match_skip, AfterMatchSkip::ToNextRow);
    let q = |term: &str, min: u32, max: Option<u32>, greedy: bool| PatternTerm::Quantified {
        term: Box::new(PatternTerm::Var(term.into())),
        quantifier: Quantifier { min, max, greedy },
    };
    assert_eq!(
        mr.pattern,
        PatternTerm::Concat(vec![
            PatternTerm::Var("A".into()),
            q("C", 0, None, false),
            q("B", 2, Some(3), true),
            q("D", 1, None, false),
            q("E", 0, Some(1), false),
        ])
    );

    // Without WITHIN; no AFTER MATCH: TO NEXT ROW (Flink's actual default).
    let (_, tvfs) = query(
        "SELECT * FROM tx MATCH_RECOGNIZE (PARTITION BY k ORDER BY ts \
         MEASURES A.v AS v PATTERN (A B) DEFINE A AS v > 1)",
    );
    let mr = tvfs[0].match_recognize.as_deref().expect("clause");
    assert_eq!(mr.within_ms, None);
    assert_eq!(mr.after_match_skip, AfterMatchSkip::ToNextRow);

    let e = error(
        "SELECT * FROM tx MATCH_RECOGNIZE (PARTITION BY k ORDER BY ts \
         MEASURES A.v AS v ALL ROWS PER MATCH PATTERN (A B) DEFINE A AS v > 1)",
    );
    assert_eq!(e, unsupported("MATCH_RECOGNIZE ALL ROWS PER MATCH", 1));
    let e = error(
        "SELECT * FROM tx MATCH_RECOGNIZE (PARTITION BY k ORDER BY ts \
         MEASURES A.v AS v PATTERN (A | B) DEFINE A AS v > 1)",
    );
    assert_eq!(e, unsupported("MATCH_RECOGNIZE alternation (|)", 1));
}

#[test]
fn other_table_functions_are_calls_with_descriptors_and_literals() {
    let (q, tvfs) = query(
        "SELECT * FROM TABLE(velocity(TABLE tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time), \
         INTERVAL '1' MINUTE, 5, 'x')) AS v",
    );
    assert_eq!(q.to_string(), "SELECT * FROM __weir_tvf_0 AS v");
    let t = &tvfs[0];
    assert_eq!(t.kind, TvfKind::Function);
    assert_eq!(t.function, "velocity");
    assert_eq!(t.input, "tx");
    assert_eq!(t.args.len(), 5);
    assert_eq!(
        t.args[0],
        TableFunctionArg::Descriptor(vec!["card_id".into()])
    );
    assert_eq!(
        t.args[1],
        TableFunctionArg::Descriptor(vec!["event_time".into()])
    );
    let TableFunctionArg::Expr(e) = &t.args[3] else {
        panic!("literal expected")
    };
    assert_eq!(e.to_string(), "5");
    // Named arguments are not supported for table functions.
    let e = error("SELECT * FROM TABLE(velocity(TABLE tx, n => 5))");
    assert!(e.to_string().contains("only positional arguments"), "{e}");
}
