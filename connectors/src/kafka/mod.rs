//! The `kafka` connector: topics read as partitioned streams and written
//! by an idempotent producer, with Flink's option names (see
//! [`KafkaOptions`] for all of them).
//!
//! ```sql
//! CREATE TABLE bids (
//!   auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
//!   dateTime TIMESTAMP(3), extra STRING,
//!   `partition` INT METADATA VIRTUAL,
//!   `offset` BIGINT METADATA VIRTUAL,
//!   WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
//! ) WITH (
//!   'connector' = 'kafka',
//!   'topic' = 'bids',
//!   'properties.bootstrap.servers' = '127.0.0.1:9092',
//!   'scan.startup.mode' = 'earliest-offset',
//!   'format' = 'json'
//! );
//! ```
//!
//! **Source.** Weir assigns partitions itself (librdkafka `assign`, never a
//! group subscription, so no rebalance can move a partition): the
//! partitions of the topics, in topic order then partition order, are the
//! splits, and split `i` is read by subtask `i % parallelism`. The list is
//! fetched when the job starts (retried with backoff for
//! `'scan.startup.timeout'` while the brokers are unreachable; `explain`
//! needs no broker). Each split has its own watermark in the watermark
//! assigner chained to the source, which forwards the minimum; a partition
//! without data for `'scan.watermark.idle-timeout'` stops holding it back.
//! A split's position ([`Source::positions`](weir_engine::source::Source::positions))
//! is the offset of the next message to emit. With a group id, emitted
//! offsets are committed to the group every
//! `'properties.auto.commit.interval.ms'` (5 s) and at the end, unless
//! `'properties.enable.auto.commit'` is `false`. A bounded read
//! (`'scan.bounded.mode'`) ends when every partition reached its stop offset.
//!
//! Each subtask decodes on its own reader thread, straight into Arrow
//! builders, up to `'batch.size'` rows of one partition per batch; a batch
//! leaves as soon as the consumer has nothing more buffered, or after
//! 20 ms while other partitions keep it busy.
//!
//! **Metadata columns** (`METADATA FROM 'key'`): `topic` STRING,
//! `partition` INT, `offset` BIGINT, `timestamp` TIMESTAMP_LTZ(3),
//! `timestamp-type` STRING, `key` BYTES (or STRING), `headers`
//! MAP<STRING, BYTES>.
//!
//! **Bad input.** A message that cannot be decoded is counted, logged with
//! `topic/partition@offset` and skipped; copied to `'dead-letter.topic'`
//! (with `weir.error.*` headers); or fails the job, per `'format.on-error'`.
//! A tombstone (no value) in a JSON or CSV table is skipped silently.
//!
//! **Brokers down.** librdkafka reconnects with backoff; the subtask's
//! progress line shows the problem until data flows again. Offset lookups
//! are retried with backoff (100 ms doubling to 5 s) until they succeed.
//! Nothing is lost or read twice: the consumer resumes at its position.
//!
//! **Sink.** One idempotent producer per subtask (`enable.idempotence`,
//! `acks=all`; librdkafka retries within `delivery.timeout.ms`, 2 min by
//! default); JSON, CSV or raw values; the message key from `'key.fields'`
//! in `'key.format'`. Every checkpoint barrier (with `at-least-once`) and
//! the end of input wait until everything sent is delivered; a message
//! librdkafka gave up on is a job error naming the topic and partition.

mod client;
mod dead_letter;
pub mod decode;
pub mod options;
pub mod produce;
mod producer;
pub mod sink;
pub mod source;
mod transactional;

use std::sync::Arc;

use arrow::datatypes::DataType;
use weir_engine::sink::SinkFactory;
use weir_engine::source::SourceFactory;
use weir_engine::Result;

pub use client::TopicPartition;
pub use decode::{headers_type, MetadataKey};
pub use options::{
    BoundedMode, DeliveryGuarantee, FieldsInclude, KafkaFormat, KafkaOptions, OnMalformed,
    SinkPartitioner, StartupMode,
};
pub use sink::KafkaSinkFactory;
pub use source::KafkaSourceFactory;

use crate::{Connector, TableDescriptor};

/// The `kafka` connector (source and sink).
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaConnector;

impl KafkaConnector {
    /// The typed source factory for `table`.
    pub fn source_factory(table: &TableDescriptor) -> Result<KafkaSourceFactory> {
        KafkaSourceFactory::new(table, KafkaOptions::parse(table)?)
    }

    /// The typed sink factory for `table`.
    pub fn sink_factory(table: &TableDescriptor) -> Result<KafkaSinkFactory> {
        KafkaSinkFactory::new(table, KafkaOptions::parse(table)?)
    }
}

impl Connector for KafkaConnector {
    fn name(&self) -> &str {
        "kafka"
    }

    fn metadata_keys(&self) -> Vec<(&'static str, DataType)> {
        MetadataKey::all()
            .into_iter()
            .map(|(_, name, t)| (name, t))
            .collect()
    }

    fn source(&self, table: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
        Ok(Arc::new(Self::source_factory(table)?))
    }

    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        Ok(Arc::new(Self::sink_factory(table)?))
    }
}
