//! Turning a page of Kinesis records into one Arrow batch of the table's
//! source schema: the physical columns decoded from each record's data
//! (JSON, CSV or raw), then the metadata columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use weir_engine::{Result, WeirError};

use super::client::KinesisRecord;
use super::options::RecordFormat;
use crate::format::csv::CsvDecoder;
use crate::format::json::JsonDecoder;
use crate::format::raw::RawDecoder;
use crate::TableDescriptor;

/// What a metadata column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKey {
    /// `shard_id` (Flink: `shard-id`): the shard the record was read from.
    ShardId,
    /// `sequence_number` (Flink: `sequence-number`): exactly as Kinesis sent it.
    SequenceNumber,
    /// `partition_key` (Flink: `partition-key`).
    PartitionKey,
    /// `arrival_time` (Flink: `timestamp`): when Kinesis accepted the record.
    ArrivalTime,
}

/// The metadata keys a Kinesis source fills, with their types (Weir's
/// names first, then Flink's).
pub fn metadata_keys() -> Vec<(&'static str, DataType)> {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    vec![
        ("shard_id", DataType::Utf8),
        ("sequence_number", DataType::Utf8),
        ("partition_key", DataType::Utf8),
        ("arrival_time", ts.clone()),
        ("shard-id", DataType::Utf8),
        ("sequence-number", DataType::Utf8),
        ("partition-key", DataType::Utf8),
        ("timestamp", ts),
    ]
}

impl MetadataKey {
    /// The key named `name` (either spelling).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "shard_id" | "shard-id" => MetadataKey::ShardId,
            "sequence_number" | "sequence-number" => MetadataKey::SequenceNumber,
            "partition_key" | "partition-key" => MetadataKey::PartitionKey,
            "arrival_time" | "timestamp" => MetadataKey::ArrivalTime,
            _ => return None,
        })
    }
}

enum Physical {
    Json(JsonDecoder),
    Csv(CsvDecoder),
    Raw(RawDecoder),
}

impl Physical {
    /// Appends one record; `Err` says why it is malformed.
    fn decode(&mut self, data: &[u8]) -> std::result::Result<(), String> {
        let appended = match self {
            Physical::Json(d) => d.decode(data)?,
            Physical::Csv(d) => d.decode_message(data)?,
            Physical::Raw(d) => {
                d.decode(data)?;
                true
            }
        };
        if appended {
            Ok(())
        } else {
            Err("empty record".into())
        }
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>> {
        match self {
            Physical::Json(d) => d.flush(),
            Physical::Csv(d) => d.flush(),
            Physical::Raw(d) => d.flush(),
        }
    }
}

/// A record of a page that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedEntry {
    /// Its index in the page.
    pub index: usize,
    /// Why.
    pub reason: String,
}

/// What decoding a page produced.
#[derive(Debug)]
pub struct DecodedPage {
    /// The decoded records as one batch of the source schema (`None` when
    /// none decoded).
    pub batch: Option<RecordBatch>,
    /// The records that could not be decoded, in page order.
    pub malformed: Vec<MalformedEntry>,
}

/// Decodes pages of records into batches of a table's source schema.
pub struct PageDecoder {
    physical: Physical,
    metadata: Vec<(MetadataKey, DataType)>,
    schema: SchemaRef,
}

impl PageDecoder {
    /// A decoder for `table` (its physical columns in `format`, then its
    /// metadata columns). Unsupported column types and unknown metadata
    /// keys are [`WeirError::Config`] errors.
    pub fn new(table: &TableDescriptor, format: &RecordFormat) -> Result<Self> {
        let capacity = 1024;
        let physical_schema = table.schema.clone();
        let physical = match format {
            RecordFormat::Json(o) => {
                Physical::Json(JsonDecoder::new(physical_schema, o.clone(), capacity)?)
            }
            RecordFormat::Csv(o) => {
                Physical::Csv(CsvDecoder::new(physical_schema, o.clone(), capacity)?)
            }
            RecordFormat::Raw => Physical::Raw(RawDecoder::new(physical_schema)?),
        };
        let mut metadata = Vec::with_capacity(table.metadata.len());
        for m in &table.metadata {
            let key = MetadataKey::parse(&m.key).ok_or_else(|| {
                WeirError::Config(format!(
                    "table {}: column {}: connector 'kinesis' has no metadata key '{}'",
                    table.name, m.name, m.key
                ))
            })?;
            metadata.push((key, m.data_type.clone()));
        }
        Ok(Self {
            physical,
            metadata,
            schema: table.source_schema(),
        })
    }

    /// The schema of the batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Decodes `records` read from `shard_id`: one batch with the records
    /// that decoded, in order, and the ones that did not.
    pub fn decode(&mut self, shard_id: &str, records: &[KinesisRecord]) -> Result<DecodedPage> {
        let mut malformed = Vec::new();
        let want_metadata = !self.metadata.is_empty();
        let mut seqs = StringBuilder::new();
        let mut keys = StringBuilder::new();
        let mut arrivals = TimestampMillisecondBuilder::new();
        let mut rows = 0usize;
        for (index, r) in records.iter().enumerate() {
            match self.physical.decode(&r.data) {
                Ok(()) => {
                    rows += 1;
                    if want_metadata {
                        seqs.append_value(&r.sequence_number);
                        keys.append_value(&r.partition_key);
                        arrivals.append_option(r.arrival_ms);
                    }
                }
                Err(reason) => malformed.push(MalformedEntry { index, reason }),
            }
        }
        let physical = self.physical.flush()?;
        let Some(physical) = physical else {
            return Ok(DecodedPage {
                batch: None,
                malformed,
            });
        };
        if self.metadata.is_empty() {
            return Ok(DecodedPage {
                batch: Some(physical),
                malformed,
            });
        }
        let mut columns: Vec<ArrayRef> = physical.columns().to_vec();
        let seqs: ArrayRef = Arc::new(seqs.finish());
        let keys: ArrayRef = Arc::new(keys.finish());
        let arrivals: ArrayRef = Arc::new(arrivals.finish());
        let shard: ArrayRef = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            shard_id, rows,
        )));
        for (key, declared) in &self.metadata {
            let array = match key {
                MetadataKey::ShardId => &shard,
                MetadataKey::SequenceNumber => &seqs,
                MetadataKey::PartitionKey => &keys,
                MetadataKey::ArrivalTime => &arrivals,
            };
            if array.data_type() == declared {
                columns.push(array.clone());
            } else {
                columns.push(arrow::compute::cast(array, declared)?);
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        Ok(DecodedPage {
            batch: Some(batch),
            malformed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::format::JsonOptions;
    use crate::MetadataColumn;

    fn record(data: &str, seq: &str) -> KinesisRecord {
        KinesisRecord {
            data: data.as_bytes().to_vec(),
            sequence_number: seq.to_string(),
            partition_key: format!("pk-{seq}"),
            arrival_ms: Some(1_767_225_600_000),
        }
    }

    #[test]
    fn physical_then_metadata_columns_and_malformed_records_skipped() -> Result<()> {
        let mut table = TableDescriptor::new(
            "t",
            Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)])),
            BTreeMap::new(),
        );
        table.metadata = vec![
            MetadataColumn {
                name: "seq".into(),
                key: "sequence_number".into(),
                data_type: DataType::Utf8,
            },
            MetadataColumn {
                name: "shard".into(),
                key: "shard-id".into(),
                data_type: DataType::Utf8,
            },
            MetadataColumn {
                name: "at".into(),
                key: "timestamp".into(),
                data_type: DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
            },
        ];
        let mut d = PageDecoder::new(&table, &RecordFormat::Json(JsonOptions::default()))?;
        let page = d.decode(
            "shardId-000000000001",
            &[
                record(r#"{"v": 1}"#, "0001"),
                record("not json", "2"),
                record("", "3"),
                record(
                    r#"{"v": 4}"#,
                    "49590338271490256608559692538361571095921575989136588898",
                ),
            ],
        )?;
        let malformed: Vec<usize> = page.malformed.iter().map(|m| m.index).collect();
        assert_eq!(malformed, vec![1, 2]);
        assert_eq!(page.malformed[1].reason, "empty record");
        let batch = page
            .batch
            .ok_or_else(|| WeirError::Internal("no batch".into()))?;
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.num_columns(), 4);
        let rows = arrow::util::pretty::pretty_format_batches(&[batch])?.to_string();
        assert!(rows.contains("| 1 | 0001 "), "{rows}");
        assert!(
            rows.contains("49590338271490256608559692538361571095921575989136588898"),
            "{rows}"
        );
        assert!(rows.contains("shardId-000000000001"), "{rows}");
        assert!(rows.contains("2026-01-01T00:00:00Z"), "{rows}");
        Ok(())
    }
}
