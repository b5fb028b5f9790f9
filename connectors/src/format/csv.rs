//! CSV: fields by position in the declared column order.
//!
//! Semantics (Flink's `csv` format where it has one): the delimiter and
//! quote character are configurable; a record must have exactly one field
//! per column; an empty field is NULL for every type except `STRING`, where
//! it is NULL too unless `'csv.null-literal'` is set (then only that literal
//! is NULL and an empty field is the empty string). Values are parsed as in
//! [`super::text`] (timestamps in SQL or ISO form or epoch millis).

use std::borrow::Cow;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use weir_engine::Result;

use super::columns::{Cell, Kind, RowBuilder};
use super::CsvOptions;

/// Decodes CSV records into batches of a declared schema.
pub struct CsvDecoder {
    builder: RowBuilder,
    names: Vec<String>,
    options: CsvOptions,
}

impl CsvDecoder {
    /// A decoder for `schema`. Unsupported column types are a
    /// [`weir_engine::WeirError::Config`] naming the column.
    pub fn new(schema: SchemaRef, options: CsvOptions, batch_size: usize) -> Result<Self> {
        let builder = RowBuilder::new(schema.clone(), "csv", batch_size)?;
        let names = schema.fields().iter().map(|f| f.name().clone()).collect();
        Ok(Self {
            builder,
            names,
            options,
        })
    }

    /// A `csv` reader builder configured for these options (no header
    /// handling: callers skip the first line themselves; records may have
    /// any number of fields, checked per record).
    pub fn reader_builder(&self) -> ::csv::ReaderBuilder {
        let mut b = ::csv::ReaderBuilder::new();
        b.has_headers(false)
            .flexible(true)
            .delimiter(self.options.field_delimiter)
            .quote(self.options.quote_character);
        if self.options.allow_comments {
            b.comment(Some(b'#'));
        }
        b
    }

    /// Decodes one parsed record (its fields) and appends it. A malformed
    /// record appends nothing and returns why.
    pub fn decode_record(&mut self, record: &::csv::ByteRecord) -> std::result::Result<(), String> {
        if record.len() != self.names.len() {
            return Err(format!(
                "expected {} fields, found {}",
                self.names.len(),
                record.len()
            ));
        }
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(record.len());
        for (i, raw) in record.iter().enumerate() {
            let kind = &self.builder.kinds()[i];
            let cell = self
                .field(kind, raw)
                .map_err(|m| format!("field '{}': {m}", self.names[i]))?;
            cells.push(cell);
        }
        self.builder.push(&mut cells, false)?;
        Ok(())
    }

    /// Decodes one message holding a single CSV record (a queue message).
    /// An empty message is no record: `Ok(false)`.
    pub fn decode_message(&mut self, message: &[u8]) -> std::result::Result<bool, String> {
        if message.iter().all(|b| *b == b'\n' || *b == b'\r') {
            return Ok(false);
        }
        let mut reader = self.reader_builder().from_reader(message);
        let mut record = ::csv::ByteRecord::new();
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => return Err(e.to_string()),
        }
        let mut extra = ::csv::ByteRecord::new();
        if matches!(reader.read_byte_record(&mut extra), Ok(true)) {
            return Err("more than one record in the message".into());
        }
        self.decode_record(&record)?;
        Ok(true)
    }

    fn field<'a>(&self, kind: &Kind, raw: &'a [u8]) -> std::result::Result<Cell<'a>, String> {
        let text = std::str::from_utf8(raw).map_err(|_| "not valid UTF-8".to_string())?;
        if let Some(null) = &self.options.null_literal {
            if text == null {
                return Ok(Cell::Null);
            }
            if text.is_empty() && *kind == Kind::Utf8 {
                return Ok(Cell::Str(Cow::Borrowed("")));
            }
        }
        if text.is_empty() {
            return Ok(Cell::Null);
        }
        kind.text_cell(Cow::Borrowed(text))
    }

    /// Rows decoded since the last [`CsvDecoder::flush`].
    pub fn len(&self) -> usize {
        self.builder.len()
    }

    /// True when no row is pending.
    pub fn is_empty(&self) -> bool {
        self.builder.is_empty()
    }

    /// The pending rows as a batch (`None` when there are none).
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        self.builder.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn fields_by_position_quotes_and_nulls() -> Result<()> {
        let mut d = CsvDecoder::new(schema(), CsvOptions::default(), 8)?;
        for msg in ["1,a", "2,\"b,c\"", ",", "3,"] {
            d.decode_message(msg.as_bytes())
                .map_err(weir_engine::WeirError::Internal)?;
        }
        assert_eq!(
            d.decode_message(b"x,y").err().unwrap_or_default(),
            "field 'id': expected BIGINT, found 'x'"
        );
        assert_eq!(
            d.decode_message(b"1").err().unwrap_or_default(),
            "expected 2 fields, found 1"
        );
        let b = d
            .flush()?
            .ok_or_else(|| weir_engine::WeirError::Internal("no batch".into()))?;
        assert_eq!(b.num_rows(), 4);
        let ids = b.column(0).as_primitive::<Int64Type>();
        assert!(ids.is_null(2));
        let names = b.column(1).as_string::<i32>();
        assert_eq!(names.value(1), "b,c");
        assert!(names.is_null(3));

        let opts = CsvOptions {
            field_delimiter: b';',
            null_literal: Some("\\N".into()),
            ..CsvOptions::default()
        };
        let mut d = CsvDecoder::new(schema(), opts, 8)?;
        d.decode_message(b"1;")
            .map_err(weir_engine::WeirError::Internal)?;
        d.decode_message(b"\\N;\\N")
            .map_err(weir_engine::WeirError::Internal)?;
        let b = d
            .flush()?
            .ok_or_else(|| weir_engine::WeirError::Internal("no batch".into()))?;
        let names = b.column(1).as_string::<i32>();
        assert_eq!((names.value(0), names.is_null(1)), ("", true));
        Ok(())
    }
}
