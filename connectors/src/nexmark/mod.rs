//! The `nexmark` connector: Nexmark's bid, person and auction streams,
//! generated in-process (the `nexmark` crate's generator; see
//! [`NexmarkOptions`] for the options).
//!
//! ```sql
//! CREATE TABLE bid (
//!   auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
//!   dateTime TIMESTAMP(3), extra STRING
//! ) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events.num' = '1000000');
//! ```
//!
//! Columns use Flink's Nexmark names: bid `(auction, bidder, price, channel,
//! url, dateTime, extra)`, person `(id, name, emailAddress, creditCard, city,
//! state, dateTime, extra)`, auction `(id, itemName, description,
//! initialBid, reserve, dateTime, expires, seller, category, extra)`; ids and
//! prices `BIGINT`, times `TIMESTAMP(3)`, text `STRING`. A table may declare
//! any subset in any order; the source emits exactly the declared columns
//! (bid columns that are not declared are not generated at all).
//!
//! Output is deterministic: the same options give the same rows whatever
//! the parallelism and the number of splits (each split generates every
//! n-th row of the single-generator sequence). Positions are the split's
//! next row offset within the table's rows.

mod generator;
pub mod options;
pub mod source;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use weir_engine::source::SourceFactory;
use weir_engine::{Result, WeirError};

pub use options::{NexmarkOptions, NexmarkTable, RateShape};
pub use source::NexmarkSourceFactory;

use crate::{Connector, TableDescriptor};

/// The `nexmark` connector (source only).
#[derive(Debug, Clone, Copy, Default)]
pub struct NexmarkConnector;

impl NexmarkConnector {
    /// The typed source factory for `table` (what [`Connector::source`]
    /// returns, without the trait object).
    pub fn factory(table: &TableDescriptor) -> Result<NexmarkSourceFactory> {
        let options = NexmarkOptions::parse(table)?;
        let params = generator::Params::new(&options)
            .map_err(|m| WeirError::Config(format!("table {}: {m}", table.name)))?;
        let columns = generator::resolve_columns(options.table, &table.schema)
            .map_err(|m| WeirError::Config(format!("table {}: {m}", table.name)))?;
        Ok(NexmarkSourceFactory::new(
            options,
            params,
            table.schema.clone(),
            columns,
        ))
    }
}

impl Connector for NexmarkConnector {
    fn name(&self) -> &str {
        "nexmark"
    }

    fn source(&self, table: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
        Ok(Arc::new(Self::factory(table)?))
    }
}

/// Generates rows of split `split` of `splits` of a nexmark table without a
/// running job, for benchmarks that pre-generate their input and replay it.
///
/// Returns at most `max_rows` rows (fewer when `options.events_num` ends the
/// split first) in batches of `options.batch_size` rows, with exactly the
/// columns of `schema` (validated as for a `CREATE TABLE`). The union over
/// `split in 0..splits` is the same whatever `splits` is; `events.rate`,
/// `splits` and the parallelism of `options` are ignored.
pub fn generate_batches(
    options: &NexmarkOptions,
    schema: &SchemaRef,
    split: usize,
    splits: usize,
    max_rows: usize,
) -> Result<Vec<RecordBatch>> {
    if splits == 0 || split >= splits {
        return Err(WeirError::Config(format!(
            "nexmark: split {split} of {splits} does not exist"
        )));
    }
    let params = generator::Params::new(options).map_err(WeirError::Config)?;
    let columns = generator::resolve_columns(options.table, schema).map_err(WeirError::Config)?;
    let mut g = generator::SplitGenerator::new(
        options,
        Arc::new(params),
        schema.clone(),
        columns.into(),
        split,
        splits,
    );
    let mut out = Vec::new();
    let mut left = max_rows;
    while left > 0 {
        match g.next_batch(options.batch_size.min(left), u64::MAX)? {
            Some(b) => {
                left -= b.num_rows();
                out.push(b);
            }
            None => break,
        }
    }
    Ok(out)
}
