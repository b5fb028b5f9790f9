//! Column kinds the text formats support, decoded cells, and the Arrow
//! builders rows are appended to.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder, StringBuilder,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use weir_engine::{Result, WeirError};

use super::text;

/// A SQL column type a text format can decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `BOOLEAN`.
    Bool,
    /// `TINYINT`.
    I8,
    /// `SMALLINT`.
    I16,
    /// `INT`.
    I32,
    /// `BIGINT`.
    I64,
    /// `FLOAT`.
    F32,
    /// `DOUBLE`.
    F64,
    /// `STRING`.
    Utf8,
    /// `TIMESTAMP(p)` in this Arrow unit, with the Arrow time zone if any.
    Timestamp(TimeUnit, Option<Arc<str>>),
    /// `DATE`.
    Date,
    /// `DECIMAL(p, s)`.
    Decimal(u8, i8),
}

impl Kind {
    /// The kind of an Arrow type, if supported.
    pub fn of(dt: &DataType) -> Option<Kind> {
        Some(match dt {
            DataType::Boolean => Kind::Bool,
            DataType::Int8 => Kind::I8,
            DataType::Int16 => Kind::I16,
            DataType::Int32 => Kind::I32,
            DataType::Int64 => Kind::I64,
            DataType::Float32 => Kind::F32,
            DataType::Float64 => Kind::F64,
            DataType::Utf8 => Kind::Utf8,
            DataType::Timestamp(u, tz) => Kind::Timestamp(*u, tz.clone()),
            DataType::Date32 => Kind::Date,
            DataType::Decimal128(p, s) => Kind::Decimal(*p, *s),
            _ => return None,
        })
    }

    /// The SQL name of the kind, for messages.
    pub fn sql_name(&self) -> String {
        match self {
            Kind::Bool => "BOOLEAN".into(),
            Kind::I8 => "TINYINT".into(),
            Kind::I16 => "SMALLINT".into(),
            Kind::I32 => "INT".into(),
            Kind::I64 => "BIGINT".into(),
            Kind::F32 => "FLOAT".into(),
            Kind::F64 => "DOUBLE".into(),
            Kind::Utf8 => "STRING".into(),
            Kind::Timestamp(u, _) => format!("TIMESTAMP({})", precision(*u)),
            Kind::Date => "DATE".into(),
            Kind::Decimal(p, s) => format!("DECIMAL({p}, {s})"),
        }
    }

    /// Converts an integer of a JSON document to a cell of this kind.
    pub fn integer_cell<'a>(&self, v: i128) -> std::result::Result<Cell<'a>, String> {
        let range = |lo: i128, hi: i128| {
            if (lo..=hi).contains(&v) {
                Ok(Cell::Int(v as i64))
            } else {
                Err(format!("{v} is out of range for {}", self.sql_name()))
            }
        };
        match self {
            Kind::I8 => range(i8::MIN.into(), i8::MAX.into()),
            Kind::I16 => range(i16::MIN.into(), i16::MAX.into()),
            Kind::I32 => range(i32::MIN.into(), i32::MAX.into()),
            Kind::I64 => range(i64::MIN.into(), i64::MAX.into()),
            Kind::F32 | Kind::F64 => Ok(Cell::Float(v as f64)),
            Kind::Utf8 => Ok(Cell::Str(Cow::Owned(v.to_string()))),
            Kind::Timestamp(unit, _) => i64::try_from(v)
                .ok()
                .and_then(|ms| text::millis_to_unit(ms, *unit))
                .map(Cell::Int)
                .ok_or_else(|| format!("{v} is out of range for {}", self.sql_name())),
            Kind::Date => i32::try_from(v)
                .map(|d| Cell::Int(d.into()))
                .map_err(|_| format!("{v} is out of range for DATE")),
            Kind::Decimal(p, s) => text::parse_decimal(&v.to_string(), *p, *s).map(Cell::Dec),
            Kind::Bool => Err(format!("expected BOOLEAN, found number {v}")),
        }
    }

    /// Converts a text value (a CSV field, a JSON string) to a cell of this kind.
    pub fn text_cell<'a>(&self, s: Cow<'a, str>) -> std::result::Result<Cell<'a>, String> {
        let fail = |s: &str| format!("expected {}, found '{}'", self.sql_name(), truncate(s));
        match self {
            Kind::Utf8 => Ok(Cell::Str(s)),
            Kind::Bool => text::parse_bool(&s).map(Cell::Bool).ok_or_else(|| fail(&s)),
            Kind::I8 | Kind::I16 | Kind::I32 | Kind::I64 => match text::parse_integer(&s) {
                Some(v) => self.integer_cell(v.into()),
                None => Err(fail(&s)),
            },
            Kind::F32 | Kind::F64 => text::parse_float(&s)
                .map(Cell::Float)
                .ok_or_else(|| fail(&s)),
            Kind::Timestamp(unit, _) => text::parse_timestamp(&s, *unit)
                .map(Cell::Int)
                .ok_or_else(|| fail(&s)),
            Kind::Date => text::parse_date(&s)
                .map(|d| Cell::Int(d.into()))
                .ok_or_else(|| fail(&s)),
            Kind::Decimal(p, sc) => text::parse_decimal(&s, *p, *sc).map(Cell::Dec),
        }
    }
}

/// Shortens a value quoted in an error message.
pub fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(40).collect();
        format!("{head}…")
    } else {
        s.to_string()
    }
}

/// The SQL precision of a timestamp unit.
pub fn precision(unit: TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// One decoded value, already converted for its column (timestamps in the
/// column's unit, dates in days, decimals unscaled).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// The field was absent from the record.
    Missing,
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer, timestamp or date.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An unscaled decimal.
    Dec(i128),
}

impl Cell<'_> {
    /// The same cell, owning its string.
    pub fn into_owned(self) -> Cell<'static> {
        match self {
            Cell::Missing => Cell::Missing,
            Cell::Null => Cell::Null,
            Cell::Bool(b) => Cell::Bool(b),
            Cell::Int(i) => Cell::Int(i),
            Cell::Float(f) => Cell::Float(f),
            Cell::Str(s) => Cell::Str(Cow::Owned(s.into_owned())),
            Cell::Dec(d) => Cell::Dec(d),
        }
    }
}

enum ColumnBuilder {
    Bool(BooleanBuilder),
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Utf8(StringBuilder),
    Timestamp(Int64Builder, TimeUnit, Option<Arc<str>>),
    Date(Date32Builder),
    Decimal(Decimal128Builder, u8, i8),
}

impl ColumnBuilder {
    /// A builder for `capacity` rows; `bytes`: the string bytes expected
    /// (for `STRING` columns).
    fn new(kind: &Kind, capacity: usize, bytes: usize) -> Self {
        match kind {
            Kind::Bool => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::I8 => Self::I8(Int8Builder::with_capacity(capacity)),
            Kind::I16 => Self::I16(Int16Builder::with_capacity(capacity)),
            Kind::I32 => Self::I32(Int32Builder::with_capacity(capacity)),
            Kind::I64 => Self::I64(Int64Builder::with_capacity(capacity)),
            Kind::F32 => Self::F32(Float32Builder::with_capacity(capacity)),
            Kind::F64 => Self::F64(Float64Builder::with_capacity(capacity)),
            Kind::Utf8 => Self::Utf8(StringBuilder::with_capacity(capacity, bytes)),
            Kind::Timestamp(u, tz) => {
                Self::Timestamp(Int64Builder::with_capacity(capacity), *u, tz.clone())
            }
            Kind::Date => Self::Date(Date32Builder::with_capacity(capacity)),
            Kind::Decimal(p, s) => {
                Self::Decimal(Decimal128Builder::with_capacity(capacity), *p, *s)
            }
        }
    }

    /// Appends a cell that was converted for this column's kind.
    fn append(&mut self, cell: &Cell<'_>) {
        match (self, cell) {
            (Self::Bool(b), Cell::Bool(v)) => b.append_value(*v),
            (Self::I8(b), Cell::Int(v)) => b.append_value(*v as i8),
            (Self::I16(b), Cell::Int(v)) => b.append_value(*v as i16),
            (Self::I32(b), Cell::Int(v)) => b.append_value(*v as i32),
            (Self::I64(b), Cell::Int(v)) => b.append_value(*v),
            (Self::F32(b), Cell::Float(v)) => b.append_value(*v as f32),
            (Self::F64(b), Cell::Float(v)) => b.append_value(*v),
            (Self::Utf8(b), Cell::Str(v)) => b.append_value(v),
            (Self::Timestamp(b, ..), Cell::Int(v)) => b.append_value(*v),
            (Self::Date(b), Cell::Int(v)) => b.append_value(*v as i32),
            (Self::Decimal(b, ..), Cell::Dec(v)) => b.append_value(*v),
            (this, _) => this.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::I8(b) => b.append_null(),
            Self::I16(b) => b.append_null(),
            Self::I32(b) => b.append_null(),
            Self::I64(b) => b.append_null(),
            Self::F32(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
            Self::Utf8(b) => b.append_null(),
            Self::Timestamp(b, ..) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Decimal(b, ..) => b.append_null(),
        }
    }

    fn finish(&mut self) -> Result<ArrayRef> {
        Ok(match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::I8(b) => Arc::new(b.finish()),
            Self::I16(b) => Arc::new(b.finish()),
            Self::I32(b) => Arc::new(b.finish()),
            Self::I64(b) => Arc::new(b.finish()),
            Self::F32(b) => Arc::new(b.finish()),
            Self::F64(b) => Arc::new(b.finish()),
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::Timestamp(b, unit, tz) => {
                let (_, values, nulls) = b.finish().into_parts();
                let tz = tz.clone();
                match unit {
                    TimeUnit::Second => {
                        Arc::new(TimestampSecondArray::new(values, nulls).with_timezone_opt(tz))
                    }
                    TimeUnit::Millisecond => Arc::new(
                        TimestampMillisecondArray::new(values, nulls).with_timezone_opt(tz),
                    ),
                    TimeUnit::Microsecond => Arc::new(
                        TimestampMicrosecondArray::new(values, nulls).with_timezone_opt(tz),
                    ),
                    TimeUnit::Nanosecond => {
                        Arc::new(TimestampNanosecondArray::new(values, nulls).with_timezone_opt(tz))
                    }
                }
            }
            Self::Date(b) => Arc::new(b.finish()),
            Self::Decimal(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s)?),
        })
    }
}

/// Rows of a declared schema being assembled into a [`RecordBatch`].
pub struct RowBuilder {
    schema: SchemaRef,
    kinds: Vec<Kind>,
    nullable: Vec<bool>,
    columns: Vec<ColumnBuilder>,
    rows: usize,
    capacity: usize,
    /// Per column, the string bytes to reserve for the next batch: those of
    /// the last full batch plus an eighth, so that the value buffer is
    /// rarely regrown (each regrowth copies it).
    string_bytes: Vec<usize>,
}

impl RowBuilder {
    /// A builder for `schema`; `format` names the format in the error when
    /// a column's type is not supported.
    pub fn new(schema: SchemaRef, format: &str, capacity: usize) -> Result<Self> {
        let mut kinds = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let kind = Kind::of(f.data_type()).ok_or_else(|| {
                WeirError::Config(format!(
                    "column '{}' has type {}, which the {format} format does not support \
                     (supported: BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, STRING, \
                     TIMESTAMP, DATE, DECIMAL)",
                    f.name(),
                    f.data_type()
                ))
            })?;
            kinds.push(kind);
        }
        let nullable = schema.fields().iter().map(|f| f.is_nullable()).collect();
        let string_bytes = vec![capacity * 16; kinds.len()];
        let columns = kinds
            .iter()
            .map(|k| ColumnBuilder::new(k, capacity, capacity * 16))
            .collect();
        Ok(Self {
            schema,
            kinds,
            nullable,
            columns,
            rows: 0,
            capacity,
            string_bytes,
        })
    }

    /// The schema rows are built for.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The kind of each column.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// Rows appended since the last [`RowBuilder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was appended since the last [`RowBuilder::finish`].
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row of cells (one per column, converted for its kind).
    /// `Missing` becomes NULL, or an error when `missing_is_error`. A NULL
    /// in a `NOT NULL` column is an error; nothing is appended then.
    pub fn push(
        &mut self,
        cells: &mut [Cell<'_>],
        missing_is_error: bool,
    ) -> std::result::Result<(), String> {
        for (i, cell) in cells.iter_mut().enumerate() {
            if matches!(cell, Cell::Missing) {
                if missing_is_error {
                    return Err(format!(
                        "field '{}' is missing",
                        self.schema.field(i).name()
                    ));
                }
                *cell = Cell::Null;
            }
            if matches!(cell, Cell::Null) && !self.nullable[i] {
                return Err(format!(
                    "field '{}' is null but the column is NOT NULL",
                    self.schema.field(i).name()
                ));
            }
        }
        for (b, cell) in self.columns.iter_mut().zip(cells.iter()) {
            b.append(cell);
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows appended so far as a batch (`None` when there are none);
    /// the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let arrays = self
            .columns
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<Result<Vec<_>>>()?;
        let rows = self.rows;
        self.rows = 0;
        if rows >= self.capacity {
            for (bytes, a) in self.string_bytes.iter_mut().zip(&arrays) {
                if let Some(strings) = a.as_string_opt::<i32>() {
                    let used = strings.value_data().len();
                    *bytes = used + used / 8;
                }
            }
        }
        // Fresh builders sized for the next batch.
        self.columns = self
            .kinds
            .iter()
            .zip(&self.string_bytes)
            .map(|(k, &bytes)| ColumnBuilder::new(k, self.capacity, bytes))
            .collect();
        let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(Some(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &options,
        )?))
    }
}
