//! JSON: one object per record (JSON lines in files, one object per message
//! in queues) decoded straight into Arrow builders for a declared schema.
//!
//! Semantics follow Flink's `json` format: fields are matched to columns by
//! exact name; a missing field is NULL (an error with
//! `'json.fail-on-missing-field'`); fields that are not columns are ignored;
//! a value of the wrong type is an error for the record. Lenient conversions
//! as Flink's: numbers and booleans written as strings (`"42"`, `"true"`)
//! are read; any value read into a `STRING` column keeps its JSON text.
//! Timestamps are strings in SQL or ISO-8601 form or epoch-millisecond
//! numbers; decimals are numbers or strings.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use weir_engine::Result;

use super::columns::{truncate, Cell, Kind, RowBuilder};
use super::text::{millis_to_unit, SqlMillisCache};
use super::JsonOptions;

/// Decodes JSON records into batches of a declared schema.
pub struct JsonDecoder {
    /// Builds the columns that are read.
    builder: RowBuilder,
    /// The names of all columns (read or not).
    names: Vec<String>,
    /// Per column, `"name":` when the name needs no escaping: a field
    /// written so (the usual form) is recognised with one comparison.
    keys: Vec<Option<KeyPattern>>,
    index: HashMap<String, usize>,
    /// Per column, its place among the columns read (`None`: not read,
    /// emitted as NULL).
    places: Vec<Option<usize>>,
    /// The whole schema, when some columns are not read.
    full: Option<SchemaRef>,
    options: JsonOptions,
    /// The cells of the record being decoded (one per column read), kept
    /// between records for their allocation (always empty between calls).
    cells: Vec<Cell<'static>>,
    /// Per column read, the last minute of its `YYYY-MM-DD HH:MM:SS.fff`
    /// timestamps.
    minutes: Vec<SqlMillisCache>,
}

impl JsonDecoder {
    /// A decoder for `schema`. Unsupported column types are a
    /// [`weir_engine::WeirError::Config`] naming the column.
    pub fn new(schema: SchemaRef, options: JsonOptions, batch_size: usize) -> Result<Self> {
        Self::with_unread(schema, options, batch_size, &[])
    }

    /// A decoder for `schema` that emits the nullable columns named in
    /// `unread` as NULL without decoding them: their fields are skipped
    /// as fields that are no column are (projection push-down: as in
    /// Flink, a bad value in a field the job does not read is no error).
    pub fn with_unread(
        full_schema: SchemaRef,
        options: JsonOptions,
        batch_size: usize,
        unread: &[String],
    ) -> Result<Self> {
        let skip = |f: &arrow::datatypes::Field| f.is_nullable() && unread.contains(f.name());
        let mut places = Vec::with_capacity(full_schema.fields().len());
        let mut read = Vec::new();
        for f in full_schema.fields() {
            if skip(f) {
                places.push(None);
            } else {
                places.push(Some(read.len()));
                read.push(f.as_ref().clone());
            }
        }
        let names: Vec<String> = full_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let read_count = read.len();
        let (schema, full) = if read_count == names.len() {
            (full_schema, None)
        } else {
            (
                Arc::new(arrow::datatypes::Schema::new(read)),
                Some(full_schema),
            )
        };
        let builder = RowBuilder::new(schema, "json", batch_size)?;
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let keys = names
            .iter()
            .map(|n| {
                let plain = n.bytes().all(|c| c != b'"' && c != b'\\' && c >= 0x20);
                plain.then(|| KeyPattern::new(format!("\"{n}\":").into_bytes()))
            })
            .collect();
        Ok(Self {
            minutes: vec![SqlMillisCache::default(); read_count],
            builder,
            names,
            keys,
            index,
            places,
            full,
            options,
            cells: Vec::new(),
        })
    }

    /// Decodes one record and appends it. Blank input (only whitespace)
    /// is no record: `Ok(false)`. A malformed record appends nothing and
    /// returns why.
    pub fn decode(&mut self, record: &[u8]) -> std::result::Result<bool, String> {
        self.decode_with(record, true)
    }

    /// [`JsonDecoder::decode`], with or without the fast path (tests
    /// compare both).
    fn decode_with(&mut self, record: &[u8], fast: bool) -> std::result::Result<bool, String> {
        if record.iter().all(u8::is_ascii_whitespace) {
            return Ok(false);
        }
        let mut cells: Vec<Cell<'_>> = recycle(std::mem::take(&mut self.cells));
        cells.extend((0..self.minutes.len()).map(|_| Cell::Missing));
        if !fast || self.decode_flat(record, &mut cells).is_none() {
            // Anything the fast path does not handle (escapes, nesting,
            // non-integer numbers, errors): serde_json decides, with its
            // error messages.
            cells.iter_mut().for_each(|c| *c = Cell::Missing);
            let mut de = serde_json::Deserializer::from_slice(record);
            let seed = RowSeed {
                names: &self.names,
                index: &self.index,
                places: &self.places,
                kinds: self.builder.kinds(),
                cells: &mut cells,
            };
            de.deserialize_map(seed).map_err(|e| e.to_string())?;
            de.end().map_err(|e| e.to_string())?;
        }
        self.builder
            .push(&mut cells, self.options.fail_on_missing_field)?;
        self.cells = recycle(cells);
        Ok(true)
    }

    /// The column of a field name; `hint` is the column expected next
    /// (fields usually come in the schema's order).
    fn column(&self, key: &str, hint: usize) -> Option<usize> {
        // Names are short: a byte loop beats a call to `memcmp`.
        let same =
            |n: &String| n.len() == key.len() && n.bytes().zip(key.bytes()).all(|(a, b)| a == b);
        if self.names.get(hint).is_some_and(same) {
            Some(hint)
        } else if self.names.len() <= 12 {
            self.names.iter().position(same)
        } else {
            self.index.get(key).copied()
        }
    }

    /// The fast path for the common shape of records: one flat object
    /// whose keys and strings have no escapes, whose numbers are integers
    /// of up to 18 digits, with literals `true`, `false`, `null`. Fills
    /// `cells` exactly as the serde path would; `None` (cells then
    /// undefined) for anything else, including every malformed record.
    fn decode_flat<'a>(&mut self, record: &'a [u8], cells: &mut [Cell<'a>]) -> Option<()> {
        let kinds = self.builder.kinds();
        // Checked once for the whole record; strings are then slices of it.
        let text = simdutf8::basic::from_utf8(record).ok()?;
        // Without a backslash or control character anywhere (the usual
        // case), a string ends at the next quote. The fold has no early
        // exit, so it is vectorised.
        let plain = !record
            .iter()
            .fold(false, |any, &c| any | (c == b'\\') | (c < 0x20));
        let mut p = Flat {
            b: record,
            text,
            plain,
            i: 0,
        };
        p.ws();
        p.eat(b'{')?;
        p.ws();
        if p.eat(b'}').is_none() {
            let mut hint = 0;
            loop {
                // The field expected next, written `"name":`, or any key.
                let expected = self.keys.get(hint).and_then(Option::as_ref);
                let field = if let Some(k) = expected.filter(|k| k.matches(p.rest())) {
                    p.i += k.bytes.len();
                    Some(hint)
                } else {
                    let key = p.string()?;
                    p.ws();
                    p.eat(b':')?;
                    self.column(key, hint)
                };
                if let Some(f) = field {
                    hint = f + 1;
                }
                // The column's place among those read.
                let col = field.and_then(|f| self.places[f]);
                p.ws();
                let cell = match p.peek()? {
                    b'"' => {
                        let v = p.string()?;
                        match col {
                            Some(i) => Some(match &kinds[i] {
                                Kind::Timestamp(unit, _) => {
                                    match self.minutes[i].millis(v.as_bytes()) {
                                        Some(ms) => Cell::Int(millis_to_unit(ms, *unit)?),
                                        None => kinds[i].text_cell(Cow::Borrowed(v)).ok()?,
                                    }
                                }
                                kind => kind.text_cell(Cow::Borrowed(v)).ok()?,
                            }),
                            None => None,
                        }
                    }
                    b'-' | b'0'..=b'9' => {
                        let v = p.integer()?;
                        match col {
                            Some(i) => Some(kinds[i].integer_cell(v.into()).ok()?),
                            None => None,
                        }
                    }
                    b't' | b'f' => {
                        let v = p.boolean()?;
                        match col.map(|i| &kinds[i]) {
                            Some(Kind::Bool) => Some(Cell::Bool(v)),
                            Some(Kind::Utf8) => {
                                Some(Cell::Str(Cow::Borrowed(if v { "true" } else { "false" })))
                            }
                            Some(_) => return None,
                            None => None,
                        }
                    }
                    b'n' => {
                        p.literal(b"null")?;
                        col.map(|_| Cell::Null)
                    }
                    _ => return None,
                };
                if let (Some(i), Some(cell)) = (col, cell) {
                    cells[i] = cell;
                }
                p.ws();
                match p.peek()? {
                    b',' => {
                        p.i += 1;
                        p.ws();
                    }
                    b'}' => {
                        p.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        p.ws();
        (p.i == record.len()).then_some(())
    }

    /// Rows decoded since the last [`JsonDecoder::flush`].
    pub fn len(&self) -> usize {
        self.builder.len()
    }

    /// True when no row is pending.
    pub fn is_empty(&self) -> bool {
        self.builder.is_empty()
    }

    /// The pending rows as a batch (`None` when there are none).
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        let Some(batch) = self.builder.finish()? else {
            return Ok(None);
        };
        let Some(schema) = &self.full else {
            return Ok(Some(batch));
        };
        let rows = batch.num_rows();
        let columns = self
            .places
            .iter()
            .zip(schema.fields())
            .map(|(place, f)| match place {
                Some(i) => batch.column(*i).clone(),
                None => arrow::array::new_null_array(f.data_type(), rows),
            })
            .collect();
        let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(Some(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &options,
        )?))
    }
}

struct RowSeed<'s, 'de> {
    names: &'s [String],
    index: &'s HashMap<String, usize>,
    places: &'s [Option<usize>],
    /// Of the columns read, as `cells`.
    kinds: &'s [Kind],
    cells: &'s mut Vec<Cell<'de>>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(col) = map.next_key_seed(KeySeed {
            names: self.names,
            index: self.index,
        })? {
            match col.and_then(|f| Some((f, self.places[f]?))) {
                Some((f, i)) => {
                    self.cells[i] = map.next_value_seed(CellSeed {
                        kind: &self.kinds[i],
                        name: &self.names[f],
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Resolves a key to its column without allocating.
struct KeySeed<'s> {
    names: &'s [String],
    index: &'s HashMap<String, usize>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        if self.names.len() <= 12 {
            Ok(self.names.iter().position(|n| n == v))
        } else {
            Ok(self.index.get(v).copied())
        }
    }
}

/// Reads one field value as a cell of its column's kind.
struct CellSeed<'s> {
    kind: &'s Kind,
    name: &'s str,
}

impl CellSeed<'_> {
    fn err<E: de::Error>(&self, msg: impl fmt::Display) -> E {
        E::custom(format!("field '{}': {msg}", self.name))
    }
    fn wrong<E: de::Error>(&self, found: impl fmt::Display) -> E {
        self.err(format!("expected {}, found {found}", self.kind.sql_name()))
    }
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = Cell<'de>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = Cell<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} value", self.kind.sql_name())
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(Cell::Null)
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(Cell::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Self::Value, E> {
        match self.kind {
            Kind::Bool => Ok(Cell::Bool(v)),
            Kind::Utf8 => Ok(Cell::Str(Cow::Borrowed(if v { "true" } else { "false" }))),
            _ => Err(self.wrong(format_args!("boolean {v}"))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
        self.kind.integer_cell(v.into()).map_err(|m| self.err(m))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
        self.kind.integer_cell(v.into()).map_err(|m| self.err(m))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
        match self.kind {
            Kind::F32 | Kind::F64 => Ok(Cell::Float(v)),
            Kind::Utf8 => Ok(Cell::Str(Cow::Owned(super::text::format_float(v)))),
            Kind::Decimal(p, s) => super::text::parse_decimal(&format!("{v}"), *p, *s)
                .map(Cell::Dec)
                .map_err(|m| self.err(m)),
            Kind::Timestamp(..) if v.fract() == 0.0 && v.abs() < 9.0e15 => {
                self.kind.integer_cell(v as i128).map_err(|m| self.err(m))
            }
            _ => Err(self.wrong(format_args!("number {v}"))),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        self.kind
            .text_cell(Cow::Borrowed(v))
            .map_err(|m| self.err(m))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        self.kind
            .text_cell(Cow::Borrowed(v))
            .map(Cell::into_owned)
            .map_err(|m| self.err(m))
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
        match self.kind {
            Kind::Utf8 => Ok(Cell::Str(Cow::Owned(v))),
            _ => self.visit_str(&v),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Self::Value, A::Error> {
        match self.kind {
            Kind::Utf8 => {
                let v: serde_json::Value =
                    serde::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Cell::Str(Cow::Owned(v.to_string())))
            }
            _ => Err(self.wrong("an object")),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Self::Value, A::Error> {
        match self.kind {
            Kind::Utf8 => {
                let v: serde_json::Value =
                    serde::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Cell::Str(Cow::Owned(v.to_string())))
            }
            _ => Err(self.wrong("an array")),
        }
    }
}

/// Reuses the allocation of an emptied vector of cells for cells of
/// another lifetime (in-place collection keeps the buffer).
fn recycle<'x, 'y>(mut v: Vec<Cell<'x>>) -> Vec<Cell<'y>> {
    v.clear();
    v.into_iter().map(|_| Cell::Missing).collect()
}

/// The bytes `"name":` of a column, with their first 16 bytes as two
/// masked words: matching a key of up to 16 bytes is two comparisons.
struct KeyPattern {
    bytes: Vec<u8>,
    words: [u64; 2],
    masks: [u64; 2],
}

impl KeyPattern {
    fn new(bytes: Vec<u8>) -> Self {
        let mut padded = [0u8; 16];
        let mut mask = [0u8; 16];
        for (i, &b) in bytes.iter().take(16).enumerate() {
            padded[i] = b;
            mask[i] = 0xff;
        }
        Self {
            words: [le_word(&padded[..8]), le_word(&padded[8..])],
            masks: [le_word(&mask[..8]), le_word(&mask[8..])],
            bytes,
        }
    }

    /// Whether `rest` starts with the pattern.
    fn matches(&self, rest: &[u8]) -> bool {
        if self.bytes.len() <= 16 {
            if let Some(chunk) = rest.get(..16) {
                return (le_word(&chunk[..8]) & self.masks[0]) == self.words[0]
                    && (le_word(&chunk[8..]) & self.masks[1]) == self.words[1];
            }
        }
        rest.starts_with(&self.bytes)
    }
}

/// The first 8 bytes of `b` (at least 8) as a little-endian word.
fn le_word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// A cursor of [`JsonDecoder::decode_flat`]: every method returns `None`
/// where the input leaves the fast path's subset of JSON.
struct Flat<'a> {
    b: &'a [u8],
    /// `b` as text (valid UTF-8).
    text: &'a str,
    /// `b` has no backslash and no control character.
    plain: bool,
    i: usize,
}

/// The position of the first `"`, `\\` or control character (below
/// 0x20) in `bytes`, eight bytes at a time.
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Nonzero when some byte of `x` is below `n` (n <= 0x80).
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        if below(quote, 1) | below(backslash, 1) | below(w, 0x20) != 0 {
            break;
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

impl<'a> Flat<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// The bytes not read yet.
    fn rest(&self) -> &'a [u8] {
        self.b.get(self.i..).unwrap_or_default()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b
            .get(self.i..)?
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.literal(b"true").is_some() {
            Some(true)
        } else {
            self.literal(b"false").map(|()| false)
        }
    }

    /// A string without escapes or control characters, valid UTF-8.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = self.b.get(start..)?;
        let len = if self.plain {
            memchr::memchr(b'"', rest)?
        } else {
            string_end(rest)?
        };
        if self.b[start + len] != b'"' {
            return None;
        }
        self.i += len + 1;
        self.text.get(start..start + len)
    }

    /// An integer of 1 to 18 digits in JSON's syntax (not followed by a
    /// fraction or an exponent), not `-0`.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.eat(b'-').is_some();
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            v = v.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 || digits > 18 || (digits > 1 && self.b[start] == b'0') {
            return None;
        }
        // serde_json reads `-0` as a float.
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) || (negative && v == 0) {
            return None;
        }
        Some(if negative { -v } else { v })
    }
}

/// Describes a record for an error message: its start, shortened.
pub fn preview(record: &[u8]) -> String {
    truncate(&String::from_utf8_lossy(record))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMillisecondType};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new("n", DataType::Int32, false),
        ]))
    }

    #[test]
    fn decodes_fields_by_name_with_flink_conversions() -> Result<()> {
        let mut d = JsonDecoder::new(schema(), JsonOptions::default(), 16)?;
        let lines: [&[u8]; 4] = [
            br#"{"id": 1, "name": "a", "ts": "2026-01-01 00:00:00.123", "ok": true, "amount": 1.5, "n": 1}"#,
            br#"{"n": 2, "extra": {"x": [1, 2]}, "id": "7", "ts": 1767225600000, "name": {"k": 1}}"#,
            br#"{"n": 3, "ts": "2026-01-01T00:00:01Z", "name": "esc\"aped", "amount": "-0.005"}"#,
            b"   ",
        ];
        for l in lines {
            d.decode(l).map_err(weir_engine::WeirError::Internal)?;
        }
        let b = d
            .flush()?
            .ok_or_else(|| weir_engine::WeirError::Internal("no batch".into()))?;
        assert_eq!(b.num_rows(), 3);
        let ids = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!((ids.value(0), ids.value(1), ids.is_null(2)), (1, 7, true));
        let names = b.column(1).as_string::<i32>();
        assert_eq!(names.value(1), r#"{"k":1}"#);
        assert_eq!(names.value(2), "esc\"aped");
        let ts = b.column(2).as_primitive::<TimestampMillisecondType>();
        assert_eq!(
            ts.values().to_vec(),
            vec![1_767_225_600_123, 1_767_225_600_000, 1_767_225_601_000]
        );
        let dec = b
            .column(4)
            .as_primitive::<arrow::datatypes::Decimal128Type>();
        assert_eq!(
            (dec.value(0), dec.is_null(1), dec.value(2)),
            (150, true, -1)
        );
        Ok(())
    }

    #[test]
    fn malformed_records_say_why_and_append_nothing() -> Result<()> {
        let mut d = JsonDecoder::new(schema(), JsonOptions::default(), 16)?;
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{"n": 1, "id": "x"}"#,
                "field 'id': expected BIGINT, found 'x'",
            ),
            (
                br#"{"n": 1, "id": 1.5}"#,
                "field 'id': expected BIGINT, found number 1.5",
            ),
            (
                br#"{"n": 1, "ts": "yesterday"}"#,
                "field 'ts': expected TIMESTAMP(3)",
            ),
            (
                br#"{"id": 1}"#,
                "field 'n' is null but the column is NOT NULL",
            ),
            (br#"{"n": 1"#, "EOF"),
            (br#"[1, 2]"#, "expected a JSON object"),
        ];
        for (line, want) in cases {
            let got = d.decode(line).err().unwrap_or_default();
            assert!(got.contains(want), "{got:?} should contain {want:?}");
        }
        assert_eq!(d.len(), 0);
        let mut strict = JsonDecoder::new(
            schema(),
            JsonOptions {
                fail_on_missing_field: true,
                ..JsonOptions::default()
            },
            16,
        )?;
        let got = strict.decode(br#"{"n": 1}"#).err().unwrap_or_default();
        assert_eq!(got, "field 'id' is missing");
        Ok(())
    }
    #[test]
    fn unread_columns_are_null_and_not_decoded() -> Result<()> {
        let records: [&[u8]; 3] = [
            br#"{"id": 1, "name": "a", "ts": "2026-01-01 00:00:00.123", "ok": true, "amount": 1.5, "n": 1}"#,
            // A bad value in a column that is not read is no error.
            br#"{"id": 2, "name": "b", "amount": "not a number", "n": 2}"#,
            br#"{"n": 3, "ts": 1767225600000, "name": {"k": 1}}"#,
        ];
        let unread = ["name".to_string(), "amount".to_string(), "n".to_string()];
        let mut d = JsonDecoder::with_unread(schema(), JsonOptions::default(), 16, &unread)?;
        for r in records {
            assert_eq!(d.decode(r), Ok(true), "{}", String::from_utf8_lossy(r));
        }
        let got = d
            .flush()?
            .ok_or_else(|| weir_engine::WeirError::Internal("no batch".into()))?;
        // What a decoder reading everything gives for the records it
        // accepts, with `name` and `amount` NULL (`n` is NOT NULL: read).
        let mut all = JsonDecoder::new(schema(), JsonOptions::default(), 16)?;
        for r in records {
            let _ = all.decode(r);
        }
        assert_eq!(all.len(), 2, "the full decoder rejects the bad amount");
        let mut full = all
            .flush()?
            .ok_or_else(|| weir_engine::WeirError::Internal("no batch".into()))?
            .columns()
            .to_vec();
        for i in [1, 4] {
            full[i] = arrow::array::new_null_array(full[i].data_type(), 2);
        }
        assert_eq!(got.schema(), schema());
        assert_eq!(got.num_rows(), 3);
        // Rows 0 and 2 are the full decoder's rows 0 and 1.
        for (c, want) in full.iter().enumerate() {
            for (g, w) in [(0, 0), (2, 1)] {
                assert_eq!(
                    got.column(c).slice(g, 1).to_data(),
                    want.slice(w, 1).to_data(),
                    "column {c}, row {g}"
                );
            }
        }
        let ids = got.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(
            (ids.value(1), ids.is_null(2), got.column(1).null_count()),
            (2, true, 3)
        );
        let ns = got.column(5).as_primitive::<arrow::datatypes::Int32Type>();
        assert_eq!(ns.values().to_vec(), vec![1, 2, 3]);
        Ok(())
    }

    #[test]
    fn key_patterns_match_as_starts_with() {
        let keys = [
            "\"a\":",
            "\"auction\":",
            "\"fifteen_chars\":",
            "\"sixteen_chars_\":",
            "\"a_much_longer_key_name\":",
        ];
        for key in keys {
            let k = KeyPattern::new(key.as_bytes().to_vec());
            let mut inputs: Vec<Vec<u8>> = Vec::new();
            for tail in ["", "1", "1234567890123456789", "\"x\":2}"] {
                inputs.push(format!("{key}{tail}").into_bytes());
                // The key changed at every position, and cut short.
                for i in 0..key.len() {
                    let mut b = format!("{key}{tail}").into_bytes();
                    b[i] ^= 0x20;
                    inputs.push(b);
                    inputs.push(key.as_bytes()[..i].to_vec());
                }
            }
            for input in &inputs {
                assert_eq!(
                    k.matches(input),
                    input.starts_with(key.as_bytes()),
                    "{key} {:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn string_end_finds_what_a_byte_scan_finds() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let fillers = [
            b'a', b' ', 0x7f, 0x80, 0xc3, 0xff, b'!', b'#', b'[', b']', 0x21, 0x5d,
        ];
        let specials = [b'"', b'\\', 0x00, 0x1f, b'\n', b'\t'];
        for len in 0..40 {
            for &f in &fillers {
                let plain = vec![f; len];
                assert_eq!(string_end(&plain), naive(&plain), "{plain:?}");
                for at in 0..len {
                    for &c in &specials {
                        let mut b = plain.clone();
                        b[at] = c;
                        assert_eq!(string_end(&b), Some(at), "{b:?}");
                        // A second special later changes nothing.
                        if at + 3 < len {
                            b[at + 3] = b'"';
                            assert_eq!(string_end(&b), Some(at), "{b:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fast_path_agrees_with_serde() -> Result<()> {
        let records: &[&[u8]] = &[
            br#"{"id": 1, "name": "a", "ts": "2026-01-01 00:00:00.123", "ok": true, "amount": 1, "n": 1}"#,
            r#" {"n":-0,"id":-42,"ok":false,"name":"é ü","amount":"12.345"} "#.as_bytes(),
            br#"{"n":1,"id":012}"#,
            br#"{"n":1,"id":1.0}"#,
            br#"{"n":1,"id":1e3}"#,
            br#"{"n":1,"id":-}"#,
            br#"{"n":1,"id":123456789012345678}"#,
            br#"{"n":1,"id":1234567890123456789}"#,
            br#"{"n":1,"id":99999999999999999999}"#,
            br#"{"n":2147483648}"#,
            br#"{"n":1,"name":"tab\there"}"#,
            br#"{"n":1,"name":"raw	tab"}"#,
            b"{\"n\":1,\"name\":\"\xff\"}",
            b"{\"n\":1,\"x\xff\":1}",
            br#"{"n":1,"n":2}"#,
            br#"{"n":null}"#,
            br#"{"n":1,"id":null,"name":null}"#,
            br#"{"n":1,"name":true,"ok":"TRUE"}"#,
            br#"{"n":1,"name":12,"ts":1767225600000}"#,
            br#"{"n":1,"id":true}"#,
            br#"{"n":1,"ok":1}"#,
            br#"{"n":1,"name":{"a":[1,2]},"extra":[1,{"b":null}]}"#,
            br#"{"n":1,"extra":"x","other":false,"more":null,"num":-5}"#,
            br#"{"n":1}x"#,
            br#"{"n":1,}"#,
            br#"{"n":1 "id":2}"#,
            br#"{"n" 1}"#,
            br#"{"n":tru}"#,
            br#"{"n":1,"ok":truex}"#,
            br#"{}"#,
            br#"{ }"#,
            br#"{"#,
            br#"[]"#,
            br#""n""#,
            b"{\"n\":1}\n",
            br#"{"n":1,"ts":"yesterday"}"#,
            br#"{"n":1,"ts":"2026-01-01T00:00:01Z"}"#,
            br#"{"n":1,"amount":"1e400"}"#,
            br#"{"n":"7","id":" 8 "}"#,
            br#"{"n":1,"na\u006de":"k"}"#,
            // Keys in the schema's order (matched as `"name":`), and keys
            // that only start like a column's.
            br#"{"id":1,"name":"a","ts":"2026-01-01 00:00:07.123","ok":true,"n":1}"#,
            br#"{"id" :1,"name" : "b","n":1}"#,
            br#"{"idx":5,"id":2,"n":1,"nn":3}"#,
            // Timestamps of the minute cached by the record above.
            br#"{"id":1,"ts":"2026-01-01 00:00:60.000","n":1}"#,
            br#"{"id":1,"ts":"2026-01-01 00:00:59.999","n":1}"#,
            br#"{"id":1,"ts":"2026-01-01 00:00:07.12","n":1}"#,
            br#"{"id":1,"ts":"2026-01-01 00:00:07.1234","n":1}"#,
        ];
        let unread_sets = [vec![], vec!["name".to_string(), "id".to_string()]];
        for (strict, unread) in [false, true]
            .into_iter()
            .flat_map(|s| unread_sets.iter().map(move |u| (s, u)))
        {
            let options = JsonOptions {
                fail_on_missing_field: strict,
                ..JsonOptions::default()
            };
            let mut fast = JsonDecoder::with_unread(schema(), options.clone(), 64, unread)?;
            let mut slow = JsonDecoder::with_unread(schema(), options, 64, unread)?;
            for r in records {
                let (a, b) = (fast.decode_with(r, true), slow.decode_with(r, false));
                assert_eq!(a, b, "{}", String::from_utf8_lossy(r));
            }
            assert_eq!(fast.flush()?, slow.flush()?);
        }
        Ok(())
    }
}
