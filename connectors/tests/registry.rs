//! The connector registry, and the print and blackhole sinks.

mod common;

use std::sync::Arc;

use arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use common::{err_text, table};
use weir_connectors::print::{PrintOptions, PrintSinkFactory};
use weir_connectors::{Connector, ConnectorRegistry, TableDescriptor};
use weir_engine::sink::SinkFactory;
use weir_engine::{Result, WeirError};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]))
}

#[test]
fn registry_names_and_lookup_errors() {
    let registry = ConnectorRegistry::with_defaults();
    assert_eq!(
        registry.names(),
        vec![
            "blackhole",
            "filesystem",
            "kafka",
            "kinesis",
            "nexmark",
            "print",
            "transactions"
        ]
    );
    assert_eq!(
        err_text(registry.source(&table("t", schema(), &[("connector", "kafak")]))),
        "config error: table t: unknown connector 'kafak' (did you mean 'kafka'? known: blackhole, filesystem, kafka, kinesis, nexmark, print, transactions)"
    );
    assert_eq!(
        err_text(registry.sink(&table("t", schema(), &[("connector", "prnt")]))),
        "config error: table t: unknown connector 'prnt' (did you mean 'print'? known: blackhole, filesystem, kafka, kinesis, nexmark, print, transactions)"
    );
    assert_eq!(
        err_text(registry.source(&table("t", schema(), &[("path", "x")]))),
        "config error: table t: 'connector' is missing"
    );
    let e = err_text(registry.source(&table(
        "bid",
        schema(),
        &[
            ("connector", "nexmark"),
            ("nexmark.table", "bid"),
            ("evnets.num", "10"),
        ],
    )));
    assert_eq!(
        e,
        "config error: table bid: unknown option 'evnets.num' for connector 'nexmark' (did you mean 'events.num'? \
         known: 'batch.size', 'events.base-time', 'events.first-rate', 'events.next-rate', 'events.num', \
         'events.rate', 'events.rate-period', 'events.rate-shape', 'nexmark.table', 'splits')"
    );
    assert_eq!(
        err_text(registry.source(&table("t", schema(), &[("connector", "print")]))),
        "config error: table t: connector 'print' cannot be used as a source"
    );
    assert_eq!(
        err_text(registry.sink(&table(
            "t",
            schema(),
            &[("connector", "blackhole"), ("rows", "1")]
        ))),
        "config error: table t: unknown option 'rows' for connector 'blackhole' (known: none)"
    );
    assert_eq!(
        err_text(registry.sink(&table("t", schema(), &[("connector", "print"), ("standard-error", "yes")]))),
        "config error: table t: option 'standard-error' = 'yes' is not valid for connector 'print': expected 'true' or 'false'"
    );
}

/// A connector registered later replaces the built-in one of that name.
#[test]
fn registered_connectors_replace_by_name() -> Result<()> {
    struct Fake;
    impl Connector for Fake {
        fn name(&self) -> &str {
            "print"
        }
        fn sink(&self, _table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
            Err(WeirError::Config("fake".into()))
        }
    }
    let mut registry = ConnectorRegistry::with_defaults();
    registry.register(Arc::new(Fake));
    assert_eq!(registry.names().len(), 7);
    assert_eq!(
        err_text(registry.sink(&table("t", schema(), &[("connector", "print")]))),
        "config error: fake"
    );
    Ok(())
}

fn batch() -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(vec![Some(1007), None])),
            Arc::new(StringArray::from(vec![Some("a, b"), Some("")])),
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_767_225_602_000),
                None,
            ])),
        ],
    )?)
}

#[tokio::test]
async fn print_writes_flink_rows_with_prefixes() -> Result<()> {
    let (factory, out) = PrintSinkFactory::to_buffer(PrintOptions::default());
    let mut sink = factory.create(0, 1)?;
    sink.write_batch(batch()?).await?;
    sink.finish().await?;
    let text = String::from_utf8_lossy(
        &out.lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?,
    )
    .to_string();
    assert_eq!(
        text,
        "+I[1007, a, b, 2026-01-01 00:00:02.000]\n+I[null, , null]\n"
    );

    let (factory, out) = PrintSinkFactory::to_buffer(PrintOptions {
        identifier: Some("hot".into()),
        standard_error: false,
    });
    let mut sink = factory.create(1, 2)?;
    sink.write_batch(batch()?.slice(0, 1)).await?;
    let text = String::from_utf8_lossy(
        &out.lock()
            .map_err(|_| WeirError::Internal("poisoned".into()))?,
    )
    .to_string();
    assert_eq!(text, "hot:2> +I[1007, a, b, 2026-01-01 00:00:02.000]\n");

    // Through the registry, printing to stdout.
    let registry = ConnectorRegistry::with_defaults();
    let factory = registry.sink(&table(
        "t",
        schema(),
        &[("connector", "print"), ("print-identifier", "x")],
    ))?;
    assert_eq!(factory.describe(), "print to stdout (x)");
    let mut sink = factory.create(0, 1)?;
    sink.write_batch(batch()?).await?;
    sink.finish().await
}

#[tokio::test]
async fn blackhole_discards() -> Result<()> {
    let registry = ConnectorRegistry::with_defaults();
    let factory = registry.sink(&table("t", schema(), &[("connector", "blackhole")]))?;
    let mut sink = factory.create(0, 1)?;
    sink.write_batch(batch()?).await?;
    sink.on_barrier(1).await?;
    sink.finish().await?;
    assert_eq!(
        err_text(registry.source(&table("t", schema(), &[("connector", "blackhole")]))),
        "config error: table t: connector 'blackhole' cannot be used as a source"
    );
    Ok(())
}
