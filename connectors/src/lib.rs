//! # weir-connectors: where Weir's data comes from and goes to
//!
//! A connector turns a `CREATE TABLE … WITH ('connector' = '…', …)` into a
//! [`SourceFactory`] (the table is read) or a [`SinkFactory`] (the table is
//! written). The planner hands each table to the [`ConnectorRegistry`] as a
//! [`TableDescriptor`]; the registry picks the connector named by the
//! `'connector'` option, which parses the remaining options once into a typed
//! struct and validates the declared columns. Unknown options are errors.
//!
//! | `'connector'` | source | sink | module |
//! |---|---|---|---|
//! | `nexmark` | yes | – | [`nexmark`] |
//! | `transactions` | yes | – | [`transactions`] |
//! | `filesystem` | JSON lines, CSV, Parquet | JSON lines, CSV, Parquet | [`filesystem`] |
//! | `kafka` | JSON, CSV, raw; per-partition splits, metadata columns | JSON, CSV, raw; idempotent producer | [`kafka`] |
//! | `kinesis` | JSON, CSV, raw; shards in lineage order | JSON, CSV, raw (PutRecords) | [`kinesis`] |
//! | `print` | – | yes | [`print`] |
//! | `blackhole` | – | yes | [`blackhole`] |
//!
//! The record formats (JSON lines, CSV) live in [`format`], shared by the
//! filesystem connector and the message-queue connectors (`kafka`).
//!
//! Errors are [`WeirError::Config`] with messages that name the table, the
//! option and what was expected, e.g.
//! `table bid: unknown option 'evnets.num' for connector 'nexmark' (did you mean 'events.num'? known: …)`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use weir_engine::sink::SinkFactory;
use weir_engine::source::SourceFactory;
use weir_engine::{Result, WeirError};

pub mod blackhole;
pub mod filesystem;
pub mod format;
pub mod kafka;
pub mod kinesis;
pub mod nexmark;
pub mod options;
mod pacing;
pub mod print;
pub mod transactions;

pub use filesystem::{FilesystemConnector, FilesystemOptions};
pub use kinesis::KinesisConnector;

pub use nexmark::{generate_batches, NexmarkConnector, NexmarkOptions, NexmarkTable};

pub use transactions::{FraudKind, TransactionsConnector, TransactionsOptions};

/// What the planner knows about a `CREATE TABLE` when asking for a connector.
#[derive(Debug, Clone)]
pub struct TableDescriptor {
    /// The table's name (used in error messages).
    pub name: String,
    /// Physical columns only (no computed columns), in declared order, with
    /// Arrow types: `TIMESTAMP(3)` is `Timestamp(Millisecond, None)`,
    /// `STRING` is `Utf8`, `BIGINT` `Int64`, `INT` `Int32`, `DOUBLE`
    /// `Float64`, `BOOLEAN` `Boolean`, `DECIMAL(p,s)` `Decimal128(p,s)`,
    /// `DATE` `Date32`.
    pub schema: SchemaRef,
    /// `WITH` options as written (`'connector'` included), keys exact.
    pub options: BTreeMap<String, String>,
    /// `METADATA` columns, in declared order. A source appends one column
    /// per entry after the physical columns (see
    /// [`TableDescriptor::source_schema`]); sinks get none (the planner
    /// rejects writable metadata columns in sink tables).
    pub metadata: Vec<MetadataColumn>,
    /// Physical columns the job never reads (projection push-down, as
    /// Flink's): a source may emit them as NULL instead of decoding them.
    /// Only nullable columns are named; empty when every column is read.
    pub unread: Vec<String>,
}

/// A `name TYPE METADATA [FROM 'key'] [VIRTUAL]` column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataColumn {
    /// The column name.
    pub name: String,
    /// The connector's metadata key (`FROM 'key'`, or the column name).
    pub key: String,
    /// The declared type, as Arrow.
    pub data_type: DataType,
}

impl TableDescriptor {
    /// A descriptor with physical columns and options and no metadata
    /// columns.
    pub fn new(
        name: impl Into<String>,
        schema: SchemaRef,
        options: BTreeMap<String, String>,
    ) -> Self {
        Self {
            name: name.into(),
            schema,
            options,
            metadata: Vec::new(),
            unread: Vec::new(),
        }
    }

    /// Whether the job reads physical column `name` (see
    /// [`TableDescriptor::unread`]).
    pub fn reads(&self, name: &str) -> bool {
        !self.unread.iter().any(|u| u == name)
    }

    /// The schema of the batches a source of this table emits: the physical
    /// columns, then one nullable column per metadata column.
    pub fn source_schema(&self) -> SchemaRef {
        if self.metadata.is_empty() {
            return self.schema.clone();
        }
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(
            self.metadata
                .iter()
                .map(|m| Field::new(&m.name, m.data_type.clone(), true)),
        );
        Arc::new(Schema::new(fields))
    }
}

/// A connector: makes sources and/or sinks for the tables that name it.
pub trait Connector: Send + Sync {
    /// The value of the `'connector'` option that selects this connector.
    fn name(&self) -> &str;

    /// The metadata keys a source of this connector can fill, with the type
    /// each has. [`ConnectorRegistry::source`] checks a table's `METADATA`
    /// columns against this list (key known, type castable) before calling
    /// [`Connector::source`]. None by default.
    fn metadata_keys(&self) -> Vec<(&'static str, DataType)> {
        Vec::new()
    }

    /// A source factory reading `table`. By default the connector cannot be
    /// read: a [`WeirError::Config`] says so.
    fn source(&self, table: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
        Err(WeirError::Config(format!(
            "table {}: connector '{}' cannot be used as a source",
            table.name,
            self.name()
        )))
    }

    /// A sink factory writing `table`. By default the connector cannot be
    /// written: a [`WeirError::Config`] says so.
    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        Err(WeirError::Config(format!(
            "table {}: connector '{}' cannot be used as a sink",
            table.name,
            self.name()
        )))
    }
}

/// Connectors by name (the value of the `'connector'` option).
#[derive(Clone, Default)]
pub struct ConnectorRegistry {
    connectors: BTreeMap<String, Arc<dyn Connector>>,
}

impl std::fmt::Debug for ConnectorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorRegistry")
            .field("connectors", &self.names())
            .finish()
    }
}

impl ConnectorRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with Weir's built-in connectors: `nexmark`,
    /// `transactions`, `filesystem`, `kafka`, `kinesis`, `print` and
    /// `blackhole`.
    pub fn with_defaults() -> Self {
        let mut r = Self::new();
        r.register(Arc::new(nexmark::NexmarkConnector));
        r.register(Arc::new(transactions::TransactionsConnector));
        r.register(Arc::new(filesystem::FilesystemConnector));
        r.register(Arc::new(kafka::KafkaConnector));
        r.register(Arc::new(kinesis::KinesisConnector));
        r.register(Arc::new(print::PrintConnector));
        r.register(Arc::new(blackhole::BlackholeConnector));
        r
    }

    /// Adds a connector, replacing any with the same name.
    pub fn register(&mut self, connector: Arc<dyn Connector>) {
        self.connectors
            .insert(connector.name().to_string(), connector);
    }

    /// The source factory for `table`, from the connector its `'connector'`
    /// option names.
    pub fn source(&self, table: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
        let connector = self.lookup(table)?;
        let keys = connector.metadata_keys();
        for m in &table.metadata {
            match keys.iter().find(|(k, _)| *k == m.key) {
                None => {
                    let known: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
                    return Err(WeirError::Config(format!(
                        "table {}: column {}: connector '{}' has no metadata key '{}' (available: {})",
                        table.name,
                        m.name,
                        connector.name(),
                        m.key,
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    )));
                }
                Some((_, t)) if !arrow::compute::can_cast_types(t, &m.data_type) => {
                    return Err(WeirError::Config(format!(
                        "table {}: column {}: metadata key '{}' is {t}, cannot be read as {}",
                        table.name, m.name, m.key, m.data_type
                    )));
                }
                Some(_) => {}
            }
        }
        connector.source(table)
    }

    /// The sink factory for `table`, from the connector its `'connector'`
    /// option names.
    pub fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        self.lookup(table)?.sink(table)
    }

    /// The registered connector names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.connectors.keys().cloned().collect()
    }

    fn lookup(&self, table: &TableDescriptor) -> Result<&Arc<dyn Connector>> {
        let name = table.options.get("connector").ok_or_else(|| {
            WeirError::Config(format!("table {}: 'connector' is missing", table.name))
        })?;
        if let Some(c) = self.connectors.get(name.as_str()) {
            return Ok(c);
        }
        let names = self.names();
        let known: Vec<&str> = names.iter().map(String::as_str).collect();
        let hint = options::closest(name, &known)
            .map(|k| format!("did you mean '{k}'? "))
            .unwrap_or_default();
        Err(WeirError::Config(format!(
            "table {}: unknown connector '{name}' ({hint}known: {})",
            table.name,
            names.join(", ")
        )))
    }
}
