//! Scalar functions Weir adds to DataFusion's for Flink compatibility.
//!
//! - `MOD(a, b)`: remainder, as Flink's `MOD`.
//! - `DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm:ss')`: formats a timestamp with a
//!   Java `SimpleDateFormat`-style pattern (the letters `yyyy MM dd HH mm ss SSS`).
//! - `haversine_km(lat1, lon1, lat2, lon2)`: great-circle distance in km
//!   ([`HaversineKmFunc`](crate::fraud_functions::HaversineKmFunc)).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringBuilder, TimestampMillisecondArray};
use arrow::compute::kernels::numeric::rem;
use arrow::datatypes::{DataType, TimeUnit};
use datafusion_common::{exec_err, plan_err, Result, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// Weir's extra scalar functions.
pub fn weir_functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::new_from_impl(ModFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(DateFormatFunc::new())),
        crate::fraud_functions::HaversineKmFunc::udf(),
    ]
}

/// Flink's `MOD(a, b)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ModFunc {
    signature: Signature,
}

impl ModFunc {
    /// Creates the function.
    pub fn new() -> Self {
        use DataType::*;
        Self {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![Int64, Int64]),
                    TypeSignature::Exact(vec![Int32, Int32]),
                    TypeSignature::Exact(vec![Float64, Float64]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl Default for ModFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for ModFunc {
    fn name(&self) -> &str {
        "mod"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(t) => Ok(t.clone()),
            None => plan_err!("MOD takes two arguments"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a, b] = arrays.as_slice() else {
            return exec_err!("MOD takes two arguments");
        };
        let out: ArrayRef = rem(a, b)?;
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// Flink's `DATE_FORMAT(timestamp, pattern)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateFormatFunc {
    signature: Signature,
}

impl DateFormatFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![TypeSignature::Exact(vec![
                    DataType::Timestamp(TimeUnit::Millisecond, None),
                    DataType::Utf8,
                ])],
                Volatility::Immutable,
            ),
        }
    }
}

impl Default for DateFormatFunc {
    fn default() -> Self {
        Self::new()
    }
}

/// Translates a Java date pattern to a chrono format string.
fn java_to_chrono(pattern: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let piece = match (c, n) {
            ('y', 4) | ('y', 3) => "%Y".to_string(),
            ('y', 2) => "%y".to_string(),
            ('M', 2) => "%m".to_string(),
            ('M', 1) => "%-m".to_string(),
            ('d', 2) => "%d".to_string(),
            ('d', 1) => "%-d".to_string(),
            ('H', 2) => "%H".to_string(),
            ('H', 1) => "%-H".to_string(),
            ('m', 2) => "%M".to_string(),
            ('s', 2) => "%S".to_string(),
            ('S', 3) => "%3f".to_string(),
            ('%', _) => "%%".repeat(n),
            _ => std::iter::repeat_n(c, n).collect(),
        };
        out.push_str(&piece);
        i += n;
    }
    out
}

impl ScalarUDFImpl for DateFormatFunc {
    fn name(&self) -> &str {
        "date_format"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let pattern = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(p)))) => java_to_chrono(p),
            _ => return exec_err!("DATE_FORMAT needs a constant pattern"),
        };
        let arrays = ColumnarValue::values_to_arrays(&args.args[..1])?;
        let Some(ts) = arrays
            .first()
            .and_then(|a| a.as_any().downcast_ref::<TimestampMillisecondArray>())
        else {
            return exec_err!("DATE_FORMAT expects TIMESTAMP(3)");
        };
        let mut b = StringBuilder::with_capacity(ts.len(), ts.len() * pattern.len());
        for i in 0..ts.len() {
            match ts.is_valid(i).then(|| ts.value_as_datetime(i)).flatten() {
                Some(dt) => b.append_value(dt.format(&pattern).to_string()),
                None => b.append_null(),
            }
        }
        let out: ArrayRef = Arc::new(b.finish());
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_patterns_translate() {
        assert_eq!(java_to_chrono("yyyy-MM-dd"), "%Y-%m-%d");
        assert_eq!(
            java_to_chrono("yyyy-MM-dd HH:mm:ss.SSS"),
            "%Y-%m-%d %H:%M:%S.%3f"
        );
    }
}
