//! The impossible-travel rule: two consecutive rows of a key further apart
//! than anyone could travel in the time between them.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, SchemaRef};
use weir_engine::message::EventTime;
use weir_engine::{Result, WeirError};

use super::haversine::{haversine_km_value, MAX_DISTANCE_KM};
use super::{
    ts_field, FraudOperator, FraudRule, RuleColumns, RuleInput, RuleRow, StateReader, StateWriter,
};

/// Default speed limit: 900 km/h, an airliner's cruising speed.
pub const DEFAULT_TRAVEL_MAX_SPEED_KMH: f64 = 900.0;
/// Default minimum distance: moves of 50 km or less never alert (location
/// noise, merchants of one city).
pub const DEFAULT_TRAVEL_MIN_DISTANCE_KM: f64 = 50.0;

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Configuration of the impossible-travel rule.
///
/// For each row of a key (in event-time order) with a non-NULL latitude
/// and longitude, the rule takes the great-circle distance `d`
/// ([`haversine_km`](super::haversine::haversine_km)) from the key's
/// previous located row and the event time `dt` between them, and alerts
/// when `d > min_distance_km` and `d / dt > max_speed_kmh` (`dt = 0` is an
/// infinite speed). Rows without a location are ignored.
///
/// The previous location is kept only as long as it can still matter:
/// `π R / max_speed_kmh` hours (no two points on Earth are further apart
/// than half its circumference), so the state expires by itself.
///
/// **Duplicates:** tolerated. An exact duplicate has distance 0 from its
/// original, and the following row is compared with the same location and
/// time.
///
/// Alert measures: `prev_event_time TIMESTAMP(3)`, `prev_lat DOUBLE`,
/// `prev_lon DOUBLE`, `lat DOUBLE`, `lon DOUBLE`, `distance_km DOUBLE`,
/// `speed_kmh DOUBLE` (`inf` when both rows have one event time).
#[derive(Debug, Clone, PartialEq)]
pub struct ImpossibleTravelConfig {
    /// Key columns (e.g. `card_id`).
    pub keys: Vec<usize>,
    /// The event-time column.
    pub time_column: usize,
    /// Latitude in degrees (numeric).
    pub lat_column: usize,
    /// Longitude in degrees (numeric).
    pub lon_column: usize,
    /// Alert above this speed, km/h (positive).
    pub max_speed_kmh: f64,
    /// Alert only on moves longer than this, km (at least 0).
    pub min_distance_km: f64,
    /// Input columns copied into each alert.
    pub carry: Vec<usize>,
}

impl ImpossibleTravelConfig {
    /// The default thresholds: above [`DEFAULT_TRAVEL_MAX_SPEED_KMH`] over
    /// more than [`DEFAULT_TRAVEL_MIN_DISTANCE_KM`].
    pub fn new(keys: Vec<usize>, time_column: usize, lat_column: usize, lon_column: usize) -> Self {
        Self {
            keys,
            time_column,
            lat_column,
            lon_column,
            max_speed_kmh: DEFAULT_TRAVEL_MAX_SPEED_KMH,
            min_distance_km: DEFAULT_TRAVEL_MIN_DISTANCE_KM,
            carry: Vec::new(),
        }
    }

    /// The schema of the alerts over `input_schema` (what
    /// [`FraudOperator::output_schema`] of the built operator returns).
    pub fn output_schema(&self, input_schema: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.clone().build(input_schema)?.output_schema())
    }

    /// Checks thresholds and builds the operator over `input_schema`.
    pub fn build(self, input_schema: &SchemaRef) -> Result<FraudOperator<ImpossibleTravelRule>> {
        let err = |m: &str| Err(WeirError::Plan(format!("impossible_travel: {m}")));
        if !(self.max_speed_kmh.is_finite() && self.max_speed_kmh > 0.0) {
            return err("the speed limit must be a positive number of km/h");
        }
        if !(self.min_distance_km.is_finite() && self.min_distance_km >= 0.0) {
            return err("the minimum distance must be a number of km, at least 0");
        }
        let columns = RuleColumns {
            keys: self.keys.clone(),
            time_column: self.time_column,
            carry: self.carry.clone(),
        };
        let horizon_ms = (MAX_DISTANCE_KM / self.max_speed_kmh * MS_PER_HOUR)
            .ceil()
            .min(i64::MAX as f64 / 2.0) as i64;
        FraudOperator::try_new(
            ImpossibleTravelRule {
                config: self,
                horizon_ms,
            },
            columns,
            input_schema,
        )
    }
}

/// The impossible-travel rule (see [`ImpossibleTravelConfig`]).
#[derive(Debug, Clone)]
pub struct ImpossibleTravelRule {
    config: ImpossibleTravelConfig,
    /// How long a location can still produce an alert.
    horizon_ms: i64,
}

/// A key's last location.
#[derive(Debug, Default, Clone, Copy)]
pub struct TravelState {
    last: Option<(EventTime, f64, f64)>,
}

/// The measures of an impossible-travel alert.
#[derive(Debug, Clone, Copy)]
pub struct TravelAlert {
    prev: (EventTime, f64, f64),
    lat: f64,
    lon: f64,
    distance: f64,
    speed: f64,
}

impl FraudRule for ImpossibleTravelRule {
    type State = TravelState;
    type Alert = TravelAlert;

    fn name(&self) -> &'static str {
        "impossible_travel"
    }

    fn inputs(&self) -> Vec<RuleInput> {
        vec![
            RuleInput::Float64(self.config.lat_column),
            RuleInput::Float64(self.config.lon_column),
        ]
    }

    fn measure_fields(&self) -> Vec<Field> {
        vec![
            ts_field("prev_event_time", false),
            Field::new("prev_lat", DataType::Float64, false),
            Field::new("prev_lon", DataType::Float64, false),
            Field::new("lat", DataType::Float64, false),
            Field::new("lon", DataType::Float64, false),
            Field::new("distance_km", DataType::Float64, false),
            Field::new("speed_kmh", DataType::Float64, false),
        ]
    }

    fn new_state(&self) -> TravelState {
        TravelState::default()
    }

    fn on_row(&self, s: &mut TravelState, row: &RuleRow<'_>) -> Option<TravelAlert> {
        let (lat, lon) = (row.f64(0)?, row.f64(1)?);
        let t = row.time();
        let prev = s.last.replace((t, lat, lon))?;
        let distance = haversine_km_value(prev.1, prev.2, lat, lon);
        // NaN distances (non-finite coordinates) never alert.
        if distance.is_nan() || distance <= self.config.min_distance_km {
            return None;
        }
        let dt = t.saturating_sub(prev.0);
        let speed = if dt <= 0 {
            f64::INFINITY
        } else {
            distance / (dt as f64 / MS_PER_HOUR)
        };
        (speed > self.config.max_speed_kmh).then_some(TravelAlert {
            prev,
            lat,
            lon,
            distance,
            speed,
        })
    }

    fn expires_at(&self, s: &TravelState) -> EventTime {
        s.last.map_or(EventTime::MIN, |(t, _, _)| {
            t.saturating_add(self.horizon_ms)
        })
    }

    fn measure_columns(&self, alerts: &[TravelAlert]) -> Result<Vec<ArrayRef>> {
        let f = |g: fn(&TravelAlert) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(alerts.iter().map(g)))
        };
        Ok(vec![
            Arc::new(TimestampMillisecondArray::from_iter_values(
                alerts.iter().map(|a| a.prev.0),
            )),
            f(|a| a.prev.1),
            f(|a| a.prev.2),
            f(|a| a.lat),
            f(|a| a.lon),
            f(|a| a.distance),
            f(|a| a.speed),
        ])
    }

    fn encode_state(&self, s: &TravelState, out: &mut StateWriter) {
        out.bool(s.last.is_some());
        if let Some((t, lat, lon)) = s.last {
            out.i64(t);
            out.f64(lat);
            out.f64(lon);
        }
    }

    fn decode_state(&self, input: &mut StateReader<'_>) -> Result<TravelState> {
        let last = if input.bool()? {
            Some((input.i64()?, input.f64()?, input.f64()?))
        } else {
            None
        };
        Ok(TravelState { last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fraud::test_support::{tx, tx_schema, Tx, ID, KEY, LAT, LON, TS};
    use crate::test_util::{rows_of, Harness};
    use weir_engine::operator::Operator;
    use weir_engine::state::OperatorState;

    const PARIS: (f64, f64) = (48.8566, 2.3522);
    const LONDON: (f64, f64) = (51.5074, -0.1278);
    const NEW_YORK: (f64, f64) = (40.7128, -74.0060);
    const HOUR: i64 = 3_600_000;

    fn rule() -> FraudOperator<ImpossibleTravelRule> {
        let mut c = ImpossibleTravelConfig::new(vec![KEY], TS, LAT, LON);
        c.carry = vec![ID];
        c.build(&tx_schema()).expect("rule")
    }

    #[test]
    fn consecutive_rows_faster_than_the_limit_alert() {
        let mut h = Harness::new(rule());
        h.batch(tx(&[
            Tx::new(0, 1).at(PARIS.0, PARIS.1).id(1),
            // London 1 h later: 344 km/h, fine.
            Tx::new(HOUR, 1).at(LONDON.0, LONDON.1).id(2),
            // New York 2 h after London: ~2785 km/h.
            Tx::new(3 * HOUR, 1).at(NEW_YORK.0, NEW_YORK.1).id(3),
            // No location: ignored.
            Tx::new(3 * HOUR + 1, 1).id(4),
            // 30 km away at once: under the minimum distance.
            Tx::new(3 * HOUR + 2, 1)
                .at(NEW_YORK.0 + 0.27, NEW_YORK.1)
                .id(5),
            // Key 2 is only ever in Paris.
            Tx::new(10, 2).at(PARIS.0, PARIS.1).id(6),
            Tx::new(20, 2).at(PARIS.0, PARIS.1).id(7),
        ]))
        .expect("batch");
        h.end().expect("end");
        let rows = rows_of(&h.take_batches());
        assert_eq!(rows.len(), 1, "{rows:?}");
        let f: Vec<&str> = rows[0].split(',').collect();
        assert_eq!(
            &f[..6],
            ["1", "3600000", "51.5074", "-0.1278", "40.7128", "-74.006"]
        );
        let d: f64 = f[6].parse().unwrap_or(0.0);
        let v: f64 = f[7].parse().unwrap_or(0.0);
        assert!((d - 5570.0).abs() < 10.0, "{d}");
        assert!((v - d / 2.0).abs() < 1e-6, "{v}");
        assert_eq!(&f[8..], ["10800000", "10800002", "3"]);
    }

    #[test]
    fn same_time_elsewhere_is_infinite_speed_and_duplicates_are_harmless() {
        let mut h = Harness::new(rule());
        let london = Tx::new(5, 1).at(LONDON.0, LONDON.1).id(2);
        h.batch(tx(&[
            Tx::new(5, 1).at(PARIS.0, PARIS.1).id(1),
            london,
            london,
        ]))
        .expect("batch");
        h.end().expect("end");
        let rows = rows_of(&h.take_batches());
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].contains(",inf,5,5,2"), "{}", rows[0]);
    }

    #[test]
    fn state_lasts_as_long_as_a_location_can_matter() {
        let mut h = Harness::new(rule());
        h.batch(tx(&[Tx::new(0, 1).at(PARIS.0, PARIS.1)]))
            .expect("batch");
        // 20 015 km / 900 km/h = 22.24 h.
        h.watermark(22 * HOUR).expect("wm");
        assert_eq!(h.op.keys_in_state(), 1);
        h.watermark(23 * HOUR).expect("wm");
        assert_eq!(h.op.keys_in_state(), 0);
    }

    #[test]
    fn snapshot_round_trip() {
        let rows = [
            Tx::new(0, 1).at(PARIS.0, PARIS.1),
            Tx::new(10, 2).at(LONDON.0, LONDON.1),
            Tx::new(HOUR / 2, 1).at(NEW_YORK.0, NEW_YORK.1),
            Tx::new(HOUR, 2).at(NEW_YORK.0, NEW_YORK.1),
        ];
        let mut a = Harness::new(rule());
        a.batch(tx(&rows[..2])).expect("batch");
        a.watermark(100).expect("wm");
        let snap =
            a.op.snapshot()
                .expect("snapshot")
                .to_bytes()
                .expect("bytes");
        let mut b = Harness::new(rule());
        b.op.restore(OperatorState::from_bytes(&snap).expect("decode"))
            .expect("restore");
        assert_eq!(b.op.keys_in_state(), 2);
        b.batch(tx(&rows[2..])).expect("batch");
        b.end().expect("end");
        assert_eq!(rows_of(&b.take_batches()).len(), 2);
    }
}
