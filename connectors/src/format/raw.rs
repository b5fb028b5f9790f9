//! Raw: a whole message is the value of the table's single column, as
//! Flink's `raw` format: `STRING` (the message must be UTF-8) or `BYTES`.
//! A NULL value is written as an empty message.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, StringBuilder};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use weir_engine::{Result, WeirError};

/// The column type of a raw table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawKind {
    Utf8,
    Binary,
}

fn kind_of(schema: &SchemaRef) -> Result<RawKind> {
    let fields = schema.fields();
    if fields.len() != 1 {
        return Err(WeirError::Config(format!(
            "format 'raw' needs exactly one column (STRING or BYTES), the table has {}",
            fields.len()
        )));
    }
    match fields[0].data_type() {
        DataType::Utf8 => Ok(RawKind::Utf8),
        DataType::Binary => Ok(RawKind::Binary),
        other => Err(WeirError::Config(format!(
            "format 'raw': column '{}' is {other}; it must be STRING or BYTES",
            fields[0].name()
        ))),
    }
}

enum Builder {
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
}

/// Decodes messages into a one-column batch.
pub struct RawDecoder {
    schema: SchemaRef,
    builder: Builder,
    rows: usize,
}

impl RawDecoder {
    /// A decoder for `schema` (one `STRING` or `BYTES` column, else a
    /// [`WeirError::Config`]).
    pub fn new(schema: SchemaRef) -> Result<Self> {
        let builder = match kind_of(&schema)? {
            RawKind::Utf8 => Builder::Utf8(StringBuilder::new()),
            RawKind::Binary => Builder::Binary(BinaryBuilder::new()),
        };
        Ok(Self {
            schema,
            builder,
            rows: 0,
        })
    }

    /// Appends one message. A `STRING` column needs UTF-8: other bytes
    /// append nothing and return why.
    pub fn decode(&mut self, message: &[u8]) -> std::result::Result<(), String> {
        match &mut self.builder {
            Builder::Utf8(b) => {
                let s = std::str::from_utf8(message)
                    .map_err(|e| format!("not valid UTF-8 (at byte {})", e.valid_up_to()))?;
                b.append_value(s);
            }
            Builder::Binary(b) => b.append_value(message),
        }
        self.rows += 1;
        Ok(())
    }

    /// Rows decoded since the last [`RawDecoder::flush`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row is pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The pending rows as a batch (`None` when there are none).
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let array: ArrayRef = match &mut self.builder {
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
        };
        let rows = std::mem::take(&mut self.rows);
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(Some(RecordBatch::try_new_with_options(
            self.schema.clone(),
            vec![array],
            &options,
        )?))
    }
}

/// Appends the raw message of row `row` of `batch` (its single column) to
/// `out`; NULL appends nothing (an empty message).
pub fn encode_raw_row(batch: &RecordBatch, row: usize, out: &mut Vec<u8>) -> Result<()> {
    let col = batch
        .columns()
        .first()
        .ok_or_else(|| WeirError::Internal("format 'raw': a batch without columns".into()))?;
    if col.is_null(row) {
        return Ok(());
    }
    match col.data_type() {
        DataType::Utf8 => out.extend_from_slice(col.as_string::<i32>().value(row).as_bytes()),
        DataType::LargeUtf8 => out.extend_from_slice(col.as_string::<i64>().value(row).as_bytes()),
        DataType::Utf8View => out.extend_from_slice(col.as_string_view().value(row).as_bytes()),
        DataType::Binary => out.extend_from_slice(col.as_binary::<i32>().value(row)),
        DataType::LargeBinary => out.extend_from_slice(col.as_binary::<i64>().value(row)),
        other => {
            return Err(WeirError::Sink(format!(
                "format 'raw' writes STRING or BYTES, not {other}"
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn strings_must_be_utf8_bytes_need_not() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let mut d = RawDecoder::new(schema)?;
        d.decode(b"hello").map_err(WeirError::Internal)?;
        assert!(d.decode(&[0xff, 0xfe]).is_err());
        d.decode(b"").map_err(WeirError::Internal)?;
        let b = d
            .flush()?
            .ok_or_else(|| WeirError::Internal("no batch".into()))?;
        assert_eq!(b.num_rows(), 2);
        let mut out = Vec::new();
        encode_raw_row(&b, 0, &mut out)?;
        assert_eq!(out, b"hello");

        let schema = Arc::new(Schema::new(vec![Field::new("b", DataType::Binary, true)]));
        let mut d = RawDecoder::new(schema)?;
        d.decode(&[0xff, 0xfe]).map_err(WeirError::Internal)?;
        assert_eq!(d.len(), 1);
        let bad = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        assert!(RawDecoder::new(bad).is_err());
        Ok(())
    }
}
