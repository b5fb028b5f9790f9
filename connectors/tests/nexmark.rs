//! The nexmark source: determinism across parallelism, exact counts,
//! declared columns, throttling, cancellation and option errors.

mod common;

use std::sync::Arc;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use common::{err_text, rows, run_source, run_source_cancelling, table};
use weir_connectors::{generate_batches, ConnectorRegistry, NexmarkOptions, NexmarkTable};
use weir_engine::{Result, WeirError};

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn bid_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new("bidder", DataType::Int64, true),
        Field::new("price", DataType::Int64, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new("dateTime", ts(), true),
        Field::new("extra", DataType::Utf8, true),
    ]))
}

/// All rows of all subtasks of a nexmark table, sorted.
async fn all_rows(
    schema: SchemaRef,
    options: &[(&str, &str)],
    parallelism: usize,
) -> Result<Vec<String>> {
    let registry = ConnectorRegistry::with_defaults();
    let factory = registry.source(&table("bid", schema, options))?;
    let mut out = Vec::new();
    for s in 0..parallelism {
        let run = run_source(factory.as_ref(), s, parallelism).await?;
        run.result?;
        out.extend(rows(run.batches.iter().map(|(_, b)| b))?);
    }
    out.sort();
    Ok(out)
}

#[tokio::test]
async fn the_same_bids_whatever_the_parallelism() -> Result<()> {
    let options = [
        ("connector", "nexmark"),
        ("nexmark.table", "bid"),
        ("events.num", "20000"),
        ("batch.size", "1000"),
    ];
    let one = all_rows(bid_schema(), &options, 1).await?;
    assert_eq!(one.len(), 18_400);
    for p in [2, 4] {
        let many = all_rows(bid_schema(), &options, p).await?;
        assert_eq!(many, one, "parallelism {p}");
    }
    // Explicit splits, independent of the parallelism.
    let mut with_splits = options.to_vec();
    with_splits.push(("splits", "3"));
    assert_eq!(all_rows(bid_schema(), &with_splits, 2).await?, one);

    // The pre-generation helper gives the same rows.
    let mut opts = NexmarkOptions::new(NexmarkTable::Bid);
    opts.events_num = Some(20_000);
    let mut helper = Vec::new();
    for split in 0..4 {
        let batches = generate_batches(&opts, &bid_schema(), split, 4, usize::MAX)?;
        helper.extend(rows(&batches)?);
    }
    helper.sort();
    assert_eq!(helper, one);

    // The first bid, for the record: base time 2026-01-01 00:00:00 UTC,
    // event 4 at 0.1 ms per event.
    let first = generate_batches(&opts, &bid_schema(), 0, 1, 1)?;
    let b = &first[0];
    assert_eq!(b.num_rows(), 1);
    let t = b
        .column(5)
        .as_primitive::<TimestampMillisecondType>()
        .value(0);
    assert_eq!(t, 1_767_225_600_000);
    Ok(())
}

#[tokio::test]
async fn event_counts_are_exact_per_table() -> Result<()> {
    let registry = ConnectorRegistry::with_defaults();
    let cases: [(&str, Vec<Field>, usize); 3] = [
        (
            "bid",
            vec![Field::new("auction", DataType::Int64, true)],
            920,
        ),
        (
            "person",
            vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
            ],
            20,
        ),
        (
            "auction",
            vec![
                Field::new("id", DataType::Int64, true),
                Field::new("expires", ts(), true),
            ],
            60,
        ),
    ];
    for (kind, fields, expected) in cases {
        let schema = Arc::new(Schema::new(fields));
        for parallelism in [1, 3] {
            let t = table(
                kind,
                schema.clone(),
                &[
                    ("connector", "nexmark"),
                    ("nexmark.table", kind),
                    ("events.num", "1000"),
                    ("batch.size", "7"),
                ],
            );
            let factory = registry.source(&t)?;
            let mut n = 0;
            let mut ids = Vec::new();
            for s in 0..parallelism {
                let run = run_source(factory.as_ref(), s, parallelism).await?;
                run.result?;
                assert_eq!(run.split_count, 1);
                for (_, b) in &run.batches {
                    assert!(b.num_rows() <= 7);
                    n += b.num_rows();
                    ids.extend(
                        b.column(0)
                            .as_primitive::<Int64Type>()
                            .values()
                            .iter()
                            .copied(),
                    );
                }
            }
            assert_eq!(n, expected, "{kind} rows with parallelism {parallelism}");
            if kind != "bid" {
                // Person and auction ids are consecutive from 1000.
                ids.sort_unstable();
                assert_eq!(
                    ids,
                    (1000..1000 + expected as i64).collect::<Vec<_>>(),
                    "{kind} ids"
                );
            }
        }
    }
    let mut opts = NexmarkOptions::new(NexmarkTable::Bid);
    opts.events_num = Some(1000);
    assert_eq!(opts.row_count(), Some(920));
    Ok(())
}

#[tokio::test]
async fn declared_columns_in_declared_order() -> Result<()> {
    let subset = Arc::new(Schema::new(vec![
        Field::new("dateTime", ts(), false),
        Field::new("price", DataType::Int64, true),
        Field::new("auction", DataType::Int64, true),
    ]));
    let options = [
        ("connector", "nexmark"),
        ("nexmark.table", "bid"),
        ("events.num", "500"),
    ];
    let registry = ConnectorRegistry::with_defaults();
    let run = run_source(
        registry
            .source(&table("bid", subset.clone(), &options))?
            .as_ref(),
        0,
        1,
    )
    .await?;
    run.result?;
    let full = run_source(
        registry
            .source(&table("bid", bid_schema(), &options))?
            .as_ref(),
        0,
        1,
    )
    .await?;
    full.result?;
    assert_eq!(run.batches.len(), full.batches.len());
    for ((_, b), (_, f)) in run.batches.iter().zip(full.batches.iter()) {
        assert_eq!(b.schema(), subset);
        assert_eq!(b.num_columns(), 3);
        assert_eq!(b.column(0).as_ref(), f.column(5).as_ref());
        assert_eq!(b.column(1).as_ref(), f.column(2).as_ref());
        assert_eq!(b.column(2).as_ref(), f.column(0).as_ref());
    }
    Ok(())
}

#[tokio::test]
async fn base_time_and_rate_set_event_times() -> Result<()> {
    let schema = Arc::new(Schema::new(vec![Field::new("dateTime", ts(), true)]));
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "bid",
        schema,
        &[
            ("connector", "nexmark"),
            ("nexmark.table", "bid"),
            ("events.num", "100"),
            ("events.base-time", "2026-03-01 12:00:00"),
            ("events.first-rate", "1000"),
        ],
    );
    let run = run_source(registry.source(&t)?.as_ref(), 0, 1).await?;
    run.result?;
    let times: Vec<i64> = run
        .batches
        .iter()
        .flat_map(|(_, b)| {
            b.column(0)
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .to_vec()
        })
        .collect();
    // 1000 events per second of event time: event n at base + n ms; bids are events 4..49, 54..99.
    let base = 1_772_366_400_000;
    assert_eq!(times.first(), Some(&(base + 4)));
    assert_eq!(times.last(), Some(&(base + 99)));
    assert_eq!(times.len(), 92);
    Ok(())
}

#[tokio::test]
async fn throttled_source_paces_rows_by_the_wall_clock() -> Result<()> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "auction",
        DataType::Int64,
        true,
    )]));
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "bid",
        schema,
        &[
            ("connector", "nexmark"),
            ("nexmark.table", "bid"),
            ("events.num", "300"),
            ("events.rate", "2000"),
        ],
    );
    let factory = registry.source(&t)?;
    let start = Instant::now();
    let run = run_source(factory.as_ref(), 0, 1).await?;
    run.result?;
    let elapsed = start.elapsed();
    let n: usize = run.batches.iter().map(|(_, b)| b.num_rows()).sum();
    assert_eq!(n, 276);
    // Event 299 is due 149.5 ms after the start.
    assert!(elapsed.as_millis() >= 140, "took {elapsed:?}");
    assert!(run.batches.len() > 5, "rows arrive in many small batches");
    Ok(())
}

#[tokio::test]
async fn an_unbounded_source_returns_when_cancelled() -> Result<()> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "price",
        DataType::Int64,
        true,
    )]));
    let registry = ConnectorRegistry::with_defaults();
    let t = table(
        "bid",
        schema,
        &[
            ("connector", "nexmark"),
            ("nexmark.table", "bid"),
            ("batch.size", "100"),
        ],
    );
    let factory = registry.source(&t)?;
    let run = run_source_cancelling(factory.as_ref(), 0, 1, Some(5)).await?;
    run.result?;
    assert_eq!(run.batches.len(), 5);
    Ok(())
}

#[test]
fn bad_options_and_columns_are_config_errors() {
    let registry = ConnectorRegistry::with_defaults();
    let check = |schema: SchemaRef, options: &[(&str, &str)], want: &str| {
        let mut all = vec![("connector", "nexmark")];
        all.extend_from_slice(options);
        let got = err_text(registry.source(&table("bid", schema, &all)));
        assert!(got.starts_with("config error: "), "{got}");
        assert!(got.contains(want), "{got:?} should contain {want:?}");
    };
    let bid = bid_schema;
    check(
        bid(),
        &[],
        "table bid: option 'nexmark.table' is required for connector 'nexmark'",
    );
    check(
        bid(),
        &[("nexmark.table", "bids")],
        "table bid: option 'nexmark.table' = 'bids' is not valid for connector 'nexmark': expected one of 'bid', 'person', 'auction'",
    );
    check(
        bid(),
        &[("nexmark.table", "bid"), ("evnets.num", "10")],
        "table bid: unknown option 'evnets.num' for connector 'nexmark' (did you mean 'events.num'? known: ",
    );
    check(
        bid(),
        &[("nexmark.table", "bid"), ("events.num", "lots")],
        "option 'events.num' = 'lots' is not valid for connector 'nexmark': expected a whole number of events",
    );
    check(
        bid(),
        &[("nexmark.table", "bid"), ("events.rate", "0")],
        "option 'events.rate' = '0'",
    );
    check(
        bid(),
        &[("nexmark.table", "bid"), ("batch.size", "0")],
        "option 'batch.size' = '0'",
    );
    check(
        bid(),
        &[("nexmark.table", "bid"), ("events.base-time", "soon")],
        "option 'events.base-time' = 'soon'",
    );
    check(
        bid(),
        &[
            ("nexmark.table", "bid"),
            ("events.first-rate", "10"),
            ("events.next-rate", "20"),
        ],
        "'events.next-rate' (20) must not exceed 'events.first-rate' (10)",
    );
    let wrong_name = Arc::new(Schema::new(vec![Field::new(
        "prize",
        DataType::Int64,
        true,
    )]));
    check(
        wrong_name,
        &[("nexmark.table", "bid")],
        "table bid: column 'prize' is not a column of the nexmark bid table (columns: auction BIGINT, bidder BIGINT, price BIGINT",
    );
    let wrong_case = Arc::new(Schema::new(vec![Field::new("datetime", ts(), true)]));
    check(
        wrong_case,
        &[("nexmark.table", "bid")],
        "did you mean 'dateTime'?",
    );
    let wrong_type = Arc::new(Schema::new(vec![Field::new("price", DataType::Utf8, true)]));
    check(
        wrong_type,
        &[("nexmark.table", "bid")],
        "table bid: column 'price' is declared as Utf8, but the nexmark bid table's 'price' is BIGINT",
    );
    let sink = err_text(registry.sink(&table(
        "bid",
        bid(),
        &[("connector", "nexmark"), ("nexmark.table", "bid")],
    )));
    assert_eq!(
        sink,
        "config error: table bid: connector 'nexmark' cannot be used as a sink"
    );
}

#[test]
fn generate_batches_checks_its_arguments() {
    let opts = NexmarkOptions::new(NexmarkTable::Bid);
    assert!(matches!(
        generate_batches(&opts, &bid_schema(), 2, 2, 10),
        Err(WeirError::Config(_))
    ));
    let person = Arc::new(Schema::new(vec![Field::new(
        "auction",
        DataType::Int64,
        true,
    )]));
    let mut p = NexmarkOptions::new(NexmarkTable::Person);
    p.events_num = Some(10);
    assert!(matches!(
        generate_batches(&p, &person, 0, 1, 10),
        Err(WeirError::Config(_))
    ));
}
