//! Flink SQL types to Arrow types.

use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use sqlparser::ast::{DataType as SqlType, ExactNumberInfo, TimezoneInfo};
use weir_engine::{Result, WeirError};

/// Maps a column type as written in Flink SQL to its Arrow type.
///
/// `TIMESTAMP(p)` and `TIMESTAMP` map to `Timestamp(Millisecond)` (Flink's
/// event-time columns are `TIMESTAMP(3)`); `TIMESTAMP_LTZ(p)` to
/// `Timestamp(Millisecond, "UTC")`.
pub fn arrow_type(t: &SqlType) -> Result<DataType> {
    use SqlType as S;
    Ok(match t {
        S::Boolean | S::Bool => DataType::Boolean,
        S::TinyInt(_) => DataType::Int8,
        S::SmallInt(_) => DataType::Int16,
        S::Int(_) | S::Integer(_) => DataType::Int32,
        S::BigInt(_) => DataType::Int64,
        S::Float(_) | S::Real | S::Float4 => DataType::Float32,
        S::Double(_) | S::DoublePrecision | S::Float8 | S::Float64 => DataType::Float64,
        S::String(_)
        | S::Varchar(_)
        | S::Char(_)
        | S::Text
        | S::CharVarying(_)
        | S::CharacterVarying(_)
        | S::Character(_)
        | S::Nvarchar(_) => DataType::Utf8,
        S::Bytes(_) | S::Binary(_) | S::Varbinary(_) | S::Bytea | S::Blob(_) => DataType::Binary,
        S::Date => DataType::Date32,
        S::Decimal(info) | S::Numeric(info) | S::Dec(info) => match info {
            ExactNumberInfo::PrecisionAndScale(p, s) => DataType::Decimal128(
                u8::try_from(*p).map_err(|_| bad(t))?,
                i8::try_from(*s).map_err(|_| bad(t))?,
            ),
            ExactNumberInfo::Precision(p) => {
                DataType::Decimal128(u8::try_from(*p).map_err(|_| bad(t))?, 0)
            }
            ExactNumberInfo::None => DataType::Decimal128(10, 0),
        },
        S::Timestamp(_, tz) => match tz {
            TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => {
                DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")))
            }
            _ => DataType::Timestamp(TimeUnit::Millisecond, None),
        },
        S::Datetime(_) => DataType::Timestamp(TimeUnit::Millisecond, None),
        S::Custom(name, _) => {
            let n = name.to_string().to_ascii_uppercase();
            match n.as_str() {
                "TIMESTAMP_LTZ" => {
                    DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")))
                }
                "STRING" => DataType::Utf8,
                "BYTES" => DataType::Binary,
                "DOUBLE" => DataType::Float64,
                _ => return Err(bad(t)),
            }
        }
        _ => return Err(bad(t)),
    })
}

fn bad(t: &SqlType) -> WeirError {
    WeirError::Plan(format!("unsupported column type: {t}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_types_map_to_arrow() {
        assert_eq!(
            arrow_type(&SqlType::BigInt(None)).ok(),
            Some(DataType::Int64)
        );
        assert_eq!(
            arrow_type(&SqlType::Timestamp(Some(3), TimezoneInfo::None)).ok(),
            Some(DataType::Timestamp(TimeUnit::Millisecond, None))
        );
        assert_eq!(
            arrow_type(&SqlType::Decimal(ExactNumberInfo::PrecisionAndScale(10, 2))).ok(),
            Some(DataType::Decimal128(10, 2))
        );
        assert!(arrow_type(&SqlType::Regclass).is_err());
    }
}
