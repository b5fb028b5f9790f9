//! Encoding batches as text rows: JSON lines, CSV lines, and Flink's print
//! form (`+I[v1, v2]`).
//!
//! Values print as Flink prints them: timestamps `2026-01-01 00:00:10.000`
//! (milliseconds for `TIMESTAMP(3)`; `T` instead of the space with
//! `'json.timestamp-format.standard' = 'ISO-8601'`), dates `2026-01-01`,
//! decimals as plain numbers, doubles like Java (`1.0`, `1e300`; `NaN` and
//! `Infinity` are strings in JSON, where numbers cannot be).

use std::fmt::Write as _;

use arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Date64Array, Decimal128Array, LargeStringArray,
    PrimitiveArray, StringArray, StringViewArray,
};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Schema,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use weir_engine::Result;

use super::text::{format_decimal, format_float, write_date_days, write_timestamp};
use super::{CsvOptions, JsonOptions, TimestampStandard};

/// A rendered value: where its text is and whether it is a string.
enum Rendered<'a> {
    /// SQL NULL.
    Null,
    /// A number or boolean, in the scratch buffer (JSON: written bare).
    Bare,
    /// Text in the scratch buffer (JSON: quoted).
    Text,
    /// Text borrowed from the array (JSON: quoted).
    Str(&'a str),
}

/// One column of a batch, downcast once per batch.
enum Col<'a> {
    Bool(&'a BooleanArray),
    I8(&'a PrimitiveArray<Int8Type>),
    I16(&'a PrimitiveArray<Int16Type>),
    I32(&'a PrimitiveArray<Int32Type>),
    I64(&'a PrimitiveArray<Int64Type>),
    U8(&'a PrimitiveArray<UInt8Type>),
    U16(&'a PrimitiveArray<UInt16Type>),
    U32(&'a PrimitiveArray<UInt32Type>),
    U64(&'a PrimitiveArray<UInt64Type>),
    F32(&'a PrimitiveArray<Float32Type>),
    F64(&'a PrimitiveArray<Float64Type>),
    Str(&'a StringArray),
    LargeStr(&'a LargeStringArray),
    View(&'a StringViewArray),
    Ts(&'a dyn Array, &'a [i64], TimeUnit),
    Date32(&'a Date32Array),
    Date64(&'a Date64Array),
    Dec(&'a Decimal128Array, i8),
    Other(&'a dyn Array, ArrayFormatter<'a>),
}

impl<'a> Col<'a> {
    fn new(array: &'a dyn Array) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Boolean => Col::Bool(array.as_boolean()),
            DataType::Int8 => Col::I8(array.as_primitive()),
            DataType::Int16 => Col::I16(array.as_primitive()),
            DataType::Int32 => Col::I32(array.as_primitive()),
            DataType::Int64 => Col::I64(array.as_primitive()),
            DataType::UInt8 => Col::U8(array.as_primitive()),
            DataType::UInt16 => Col::U16(array.as_primitive()),
            DataType::UInt32 => Col::U32(array.as_primitive()),
            DataType::UInt64 => Col::U64(array.as_primitive()),
            DataType::Float32 => Col::F32(array.as_primitive()),
            DataType::Float64 => Col::F64(array.as_primitive()),
            DataType::Utf8 => Col::Str(array.as_string()),
            DataType::LargeUtf8 => Col::LargeStr(array.as_string()),
            DataType::Utf8View => Col::View(array.as_string_view()),
            DataType::Timestamp(unit, _) => {
                let values: &[i64] = match unit {
                    TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
                    TimeUnit::Millisecond => {
                        array.as_primitive::<TimestampMillisecondType>().values()
                    }
                    TimeUnit::Microsecond => {
                        array.as_primitive::<TimestampMicrosecondType>().values()
                    }
                    TimeUnit::Nanosecond => {
                        array.as_primitive::<TimestampNanosecondType>().values()
                    }
                };
                Col::Ts(array, values, *unit)
            }
            DataType::Date32 => Col::Date32(array.as_primitive()),
            DataType::Date64 => Col::Date64(array.as_primitive()),
            DataType::Decimal128(_, s) => Col::Dec(array.as_primitive(), *s),
            _ => Col::Other(
                array,
                ArrayFormatter::try_new(array, &FormatOptions::default())?,
            ),
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Col::Bool(a) => a.is_null(row),
            Col::I8(a) => a.is_null(row),
            Col::I16(a) => a.is_null(row),
            Col::I32(a) => a.is_null(row),
            Col::I64(a) => a.is_null(row),
            Col::U8(a) => a.is_null(row),
            Col::U16(a) => a.is_null(row),
            Col::U32(a) => a.is_null(row),
            Col::U64(a) => a.is_null(row),
            Col::F32(a) => a.is_null(row),
            Col::F64(a) => a.is_null(row),
            Col::Str(a) => a.is_null(row),
            Col::LargeStr(a) => a.is_null(row),
            Col::View(a) => a.is_null(row),
            Col::Ts(a, ..) => a.is_null(row),
            Col::Date32(a) => a.is_null(row),
            Col::Date64(a) => a.is_null(row),
            Col::Dec(a, _) => a.is_null(row),
            Col::Other(a, _) => a.is_null(row),
        }
    }

    /// Renders the value at `row` (into `scratch`, cleared first, unless
    /// borrowed from the array).
    fn render(&self, row: usize, scratch: &mut String, iso: bool) -> Rendered<'a> {
        scratch.clear();
        if self.is_null(row) {
            return Rendered::Null;
        }
        // Writing to a String cannot fail.
        let _ = match self {
            Col::Bool(a) => scratch.write_str(if a.value(row) { "true" } else { "false" }),
            Col::I8(a) => write!(scratch, "{}", a.value(row)),
            Col::I16(a) => write!(scratch, "{}", a.value(row)),
            Col::I32(a) => write!(scratch, "{}", a.value(row)),
            Col::I64(a) => write!(scratch, "{}", a.value(row)),
            Col::U8(a) => write!(scratch, "{}", a.value(row)),
            Col::U16(a) => write!(scratch, "{}", a.value(row)),
            Col::U32(a) => write!(scratch, "{}", a.value(row)),
            Col::U64(a) => write!(scratch, "{}", a.value(row)),
            Col::F32(a) => return float(f64::from(a.value(row)), scratch),
            Col::F64(a) => return float(a.value(row), scratch),
            Col::Str(a) => return Rendered::Str(a.value(row)),
            Col::LargeStr(a) => return Rendered::Str(a.value(row)),
            Col::View(a) => return Rendered::Str(a.value(row)),
            Col::Ts(_, v, unit) => {
                write_timestamp(scratch, v[row], *unit, iso);
                return Rendered::Text;
            }
            Col::Date32(a) => {
                write_date_days(scratch, a.value(row).into());
                return Rendered::Text;
            }
            Col::Date64(a) => {
                write_date_days(scratch, a.value(row).div_euclid(86_400_000));
                return Rendered::Text;
            }
            Col::Dec(a, s) => scratch.write_str(&format_decimal(a.value(row), *s)),
            Col::Other(_, f) => {
                let _ = write!(scratch, "{}", f.value(row));
                return Rendered::Text;
            }
        };
        Rendered::Bare
    }
}

fn float(v: f64, scratch: &mut String) -> Rendered<'static> {
    scratch.push_str(&format_float(v));
    if v.is_finite() {
        Rendered::Bare
    } else {
        Rendered::Text
    }
}

fn columns(batch: &RecordBatch) -> Result<Vec<Col<'_>>> {
    batch
        .columns()
        .iter()
        .map(|a| Col::new(a.as_ref()))
        .collect()
}

/// Appends `s` as a JSON string (quoted, escaped).
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Encodes batches as JSON lines: one object per row, keys in column order.
#[derive(Debug, Clone)]
pub struct JsonEncoder {
    keys: Vec<Vec<u8>>,
    iso: bool,
}

impl JsonEncoder {
    /// An encoder writing the column names of `schema` as keys.
    pub fn new(schema: &Schema, options: &JsonOptions) -> Self {
        let keys = schema
            .fields()
            .iter()
            .map(|f| {
                let mut k = Vec::new();
                write_json_string(&mut k, f.name());
                k.push(b':');
                k
            })
            .collect();
        Self {
            keys,
            iso: options.timestamp_standard == TimestampStandard::Iso8601,
        }
    }

    /// Appends one line per row of `batch` to `out`. When the batch has a
    /// different number of columns than the schema, its own names are used.
    pub fn encode(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
        let cols = columns(batch)?;
        let own_keys;
        let keys = if cols.len() == self.keys.len() {
            &self.keys
        } else {
            own_keys = JsonEncoder::new(batch.schema().as_ref(), &JsonOptions::default()).keys;
            &own_keys
        };
        let mut scratch = String::new();
        for row in 0..batch.num_rows() {
            out.push(b'{');
            for (i, col) in cols.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&keys[i]);
                match col.render(row, &mut scratch, self.iso) {
                    Rendered::Null => out.extend_from_slice(b"null"),
                    Rendered::Bare => out.extend_from_slice(scratch.as_bytes()),
                    Rendered::Text => write_json_string(out, &scratch),
                    Rendered::Str(s) => write_json_string(out, s),
                }
            }
            out.extend_from_slice(b"}\n");
        }
        Ok(())
    }
}

/// Encodes batches as CSV lines (`\n`-terminated), quoting fields that
/// hold the delimiter, the quote character or a line break.
#[derive(Debug, Clone)]
pub struct CsvEncoder {
    options: CsvOptions,
}

impl CsvEncoder {
    /// An encoder for these options.
    pub fn new(options: &CsvOptions) -> Self {
        Self {
            options: options.clone(),
        }
    }

    fn field(&self, out: &mut Vec<u8>, s: &str) {
        let d = self.options.field_delimiter;
        let q = self.options.quote_character;
        let needs = s
            .bytes()
            .any(|b| b == d || b == q || b == b'\n' || b == b'\r')
            || (self.options.allow_comments && s.starts_with('#'));
        if !needs {
            out.extend_from_slice(s.as_bytes());
            return;
        }
        out.push(q);
        for b in s.bytes() {
            if b == q {
                out.push(q);
            }
            out.push(b);
        }
        out.push(q);
    }

    /// Appends a header line with the column names of `schema`.
    pub fn encode_header(&self, schema: &Schema, out: &mut Vec<u8>) {
        for (i, f) in schema.fields().iter().enumerate() {
            if i > 0 {
                out.push(self.options.field_delimiter);
            }
            self.field(out, f.name());
        }
        out.push(b'\n');
    }

    /// Appends one line per row of `batch` to `out`. NULL is an empty
    /// field (or `'csv.null-literal'`).
    pub fn encode(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
        let cols = columns(batch)?;
        let mut scratch = String::new();
        for row in 0..batch.num_rows() {
            for (i, col) in cols.iter().enumerate() {
                if i > 0 {
                    out.push(self.options.field_delimiter);
                }
                match col.render(row, &mut scratch, false) {
                    Rendered::Null => {
                        if let Some(n) = &self.options.null_literal {
                            out.extend_from_slice(n.as_bytes());
                        }
                    }
                    Rendered::Bare | Rendered::Text => self.field(out, &scratch),
                    Rendered::Str(s) => self.field(out, s),
                }
            }
            out.push(b'\n');
        }
        Ok(())
    }
}

/// Appends rows in Flink's print form, `<prefix>+I[v1, v2, …]`, one per
/// line; NULL prints as `null`.
pub fn encode_print_rows(batch: &RecordBatch, prefix: &str, out: &mut String) -> Result<()> {
    let cols = columns(batch)?;
    let mut scratch = String::new();
    for row in 0..batch.num_rows() {
        out.push_str(prefix);
        out.push_str("+I[");
        for (i, col) in cols.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match col.render(row, &mut scratch, false) {
                Rendered::Null => out.push_str("null"),
                Rendered::Bare | Rendered::Text => out.push_str(&scratch),
                Rendered::Str(s) => out.push_str(s),
            }
        }
        out.push_str("]\n");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::Field;

    use super::*;

    fn batch() -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("x", DataType::Float64, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(1), None])),
            Arc::new(StringArray::from(vec![Some("a \"q\",\n"), None])),
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_767_225_610_000),
                None,
            ])),
            Arc::new(Float64Array::from(vec![Some(1.0), Some(f64::NAN)])),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    #[test]
    fn json_csv_and_print_forms() -> Result<()> {
        let b = batch()?;
        let mut out = Vec::new();
        JsonEncoder::new(b.schema().as_ref(), &JsonOptions::default()).encode(&b, &mut out)?;
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"id\":1,\"name\":\"a \\\"q\\\",\\n\",\"ts\":\"2026-01-01 00:00:10.000\",\"x\":1.0}\n\
             {\"id\":null,\"name\":null,\"ts\":null,\"x\":\"NaN\"}\n"
        );
        let mut out = Vec::new();
        CsvEncoder::new(&CsvOptions::default()).encode(&b, &mut out)?;
        assert_eq!(
            String::from_utf8_lossy(&out),
            "1,\"a \"\"q\"\",\n\",2026-01-01 00:00:10.000,1.0\n,,,NaN\n"
        );
        let mut s = String::new();
        encode_print_rows(&b, "2> ", &mut s)?;
        assert_eq!(
            s,
            "2> +I[1, a \"q\",\n, 2026-01-01 00:00:10.000, 1.0]\n2> +I[null, null, null, NaN]\n"
        );
        Ok(())
    }
}
