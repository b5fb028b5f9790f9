//! The `kinesis` connector: Amazon Kinesis Data Streams as source and sink,
//! on `aws-sdk-kinesis` (see [`KinesisSourceOptions`] and
//! [`KinesisSinkOptions`] for every option).
//!
//! ```sql
//! CREATE TABLE orders (
//!   order_id BIGINT, customer STRING, amount DOUBLE, ts TIMESTAMP(3),
//!   shard STRING METADATA FROM 'shard_id' VIRTUAL,
//!   seq STRING METADATA FROM 'sequence_number' VIRTUAL,
//!   WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
//! ) WITH (
//!   'connector' = 'kinesis', 'stream' = 'orders', 'aws.region' = 'us-east-1',
//!   'scan.stream.initpos' = 'TRIM_HORIZON', 'format' = 'json'
//! );
//! ```
//!
//! **Source.** Shards are listed when the job starts and every
//! `'scan.shard.discovery.intervalmillis'`, and assigned to subtasks
//! deterministically: a shard created by a split or merge goes to the
//! subtask that reads its (first) parent, and is read only after *every*
//! parent has been read to its end, so records of one partition key keep
//! their order across resharding ([`shards`]). Each shard has its own
//! watermark (through the subtask's watermark lanes, see [`shards`]); a
//! shard without records for `'scan.watermark.idle-timeout'` stops holding
//! the watermark back. Throttling and expired iterators are retried with
//! backoff and resumed after the last sequence number read; malformed
//! records are counted, logged with `stream/shard@sequence`, skipped (or
//! sent to `'dead-letter.stream'`), or fail the job with
//! `'format.on-error' = 'fail'` ([`source`]). With `'scan.bounded' = 'true'`
//! the source ends once every shard is read to its end (closed shards) or
//! to where the reader caught up (open shards): for tests and backfills.
//! Its subtasks end together, once every shard of the source is done (a
//! subtask left without shards keeps running meanwhile: the runtime starts
//! no checkpoint once a source subtask has ended).
//!
//! Metadata columns (`METADATA FROM '<key>'`): `shard_id` STRING,
//! `sequence_number` STRING (exact, up to 129 digits), `partition_key`
//! STRING, `arrival_time` TIMESTAMP(3) (Kinesis' approximate arrival time);
//! Flink's spellings `shard-id`, `sequence-number`, `partition-key` and
//! `timestamp` are accepted too.
//!
//! **Sink.** One record per row (`json`, `csv` or `raw`), partition key
//! from `'sink.partition-key'` columns (else random), PutRecords calls of at
//! most 500 records and 5 MiB, failed entries retried in order; see
//! [`sink`] for what that means for order, and `'sink.preserve-key-order'`.
//!
//! Credentials: `'aws.credentials.provider'` = `AUTO` (AWS' default chain:
//! environment, profile, SSO, web identity, container and instance roles) or
//! `BASIC` with `'aws.credentials.basic.accesskeyid'` / `'…secretkey'`
//! (static keys, e.g. for kinesalite or kinesis-local with `'aws.endpoint'`).

pub mod client;
pub mod decode;
pub mod options;
pub mod sequence;
pub mod shards;
pub mod sink;
pub mod source;

use std::sync::Arc;

use arrow::datatypes::DataType;
use weir_engine::sink::SinkFactory;
use weir_engine::source::SourceFactory;
use weir_engine::Result;

pub use client::{ApiError, ApiWrapper, AwsKinesis, KinesisApi};
pub use options::{KinesisSinkOptions, KinesisSourceOptions};
pub use sequence::SequenceNumber;
pub use sink::KinesisSinkFactory;
pub use source::KinesisSourceFactory;

use crate::{Connector, TableDescriptor};

/// The `kinesis` connector (source and sink).
#[derive(Debug, Clone, Copy, Default)]
pub struct KinesisConnector;

impl KinesisConnector {
    /// The typed source factory for `table`.
    pub fn source_factory(table: &TableDescriptor) -> Result<KinesisSourceFactory> {
        KinesisSourceFactory::new(table, KinesisSourceOptions::parse(table)?)
    }

    /// The typed sink factory for `table`.
    pub fn sink_factory(table: &TableDescriptor) -> Result<KinesisSinkFactory> {
        KinesisSinkFactory::new(table, KinesisSinkOptions::parse(table)?)
    }
}

impl Connector for KinesisConnector {
    fn name(&self) -> &str {
        options::CONNECTOR
    }

    fn metadata_keys(&self) -> Vec<(&'static str, DataType)> {
        decode::metadata_keys()
    }

    fn source(&self, table: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
        Ok(Arc::new(Self::source_factory(table)?))
    }

    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        Ok(Arc::new(Self::sink_factory(table)?))
    }
}

/// `text` cut to 64 characters for a log line.
fn truncate_for_log(text: &str) -> String {
    if text.chars().count() <= 64 {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(64).collect();
        s.push('…');
        s
    }
}
