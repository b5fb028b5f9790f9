//! The velocity rule: more than N rows, or a total amount above X, of one
//! key within a sliding event-time window.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, TimestampMillisecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, SchemaRef};
use weir_engine::message::EventTime;
use weir_engine::{Result, WeirError};

use super::{
    ts_field, AlertMode, FraudOperator, FraudRule, RuleColumns, RuleInput, RuleRow, StateReader,
    StateWriter,
};

/// Default window: one minute.
pub const DEFAULT_VELOCITY_WINDOW_MS: i64 = 60_000;
/// Default count threshold: alert on more than 5 rows in the window.
pub const DEFAULT_VELOCITY_MAX_COUNT: u64 = 5;
/// Default amount threshold, when an amount column is given: alert on a
/// total above 20 000.00 in the window.
pub const DEFAULT_VELOCITY_MAX_AMOUNT: f64 = 20_000.0;

/// Configuration of the velocity rule.
///
/// For each row of a key (in event-time order) the window holds the key's
/// rows with event time in `[t - window_ms, t]`, both ends included, the
/// current row among them (Flink's `RANGE BETWEEN INTERVAL … PRECEDING AND
/// CURRENT ROW`). The condition holds when the window has more than
/// `max_count` rows or, with an amount column, a total amount above
/// `max_amount`; [`AlertMode`] says on which rows that alerts (default:
/// once per breach). NULL amounts count as rows adding 0.
///
/// **Duplicates:** not tolerated; an exact duplicate counts twice.
/// Deduplicate first.
///
/// Alert measures: `tx_count BIGINT UNSIGNED`, `total_amount DOUBLE` (NULL
/// without an amount column), `window_first_time TIMESTAMP(3)` (the
/// earliest row in the window).
#[derive(Debug, Clone, PartialEq)]
pub struct VelocityConfig {
    /// Key columns (e.g. `card_id`).
    pub keys: Vec<usize>,
    /// The event-time column.
    pub time_column: usize,
    /// The amount column (needed for `max_amount`).
    pub amount_column: Option<usize>,
    /// Window length `T` in milliseconds (positive).
    pub window_ms: i64,
    /// Alert when the window holds more than this many rows.
    pub max_count: Option<u64>,
    /// Alert when the window's total amount exceeds this.
    pub max_amount: Option<f64>,
    /// Which rows of a breach alert.
    pub alert_mode: AlertMode,
    /// Input columns copied into each alert.
    pub carry: Vec<usize>,
}

impl VelocityConfig {
    /// More than [`DEFAULT_VELOCITY_MAX_COUNT`] rows per key in
    /// [`DEFAULT_VELOCITY_WINDOW_MS`], once per breach, no amount check.
    pub fn new(keys: Vec<usize>, time_column: usize) -> Self {
        Self {
            keys,
            time_column,
            amount_column: None,
            window_ms: DEFAULT_VELOCITY_WINDOW_MS,
            max_count: Some(DEFAULT_VELOCITY_MAX_COUNT),
            max_amount: None,
            alert_mode: AlertMode::OnBreach,
            carry: Vec::new(),
        }
    }

    /// Also alerts on a window total above `max_amount` of `amount_column`.
    pub fn with_amount(mut self, amount_column: usize, max_amount: f64) -> Self {
        self.amount_column = Some(amount_column);
        self.max_amount = Some(max_amount);
        self
    }

    /// The schema of the alerts over `input_schema` (what
    /// [`FraudOperator::output_schema`] of the built operator returns).
    pub fn output_schema(&self, input_schema: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.clone().build(input_schema)?.output_schema())
    }

    /// Checks thresholds and builds the operator over `input_schema`.
    pub fn build(self, input_schema: &SchemaRef) -> Result<FraudOperator<VelocityRule>> {
        let err = |m: &str| Err(WeirError::Plan(format!("velocity: {m}")));
        if self.window_ms <= 0 {
            return err("the window must be positive");
        }
        if self.max_count.is_none() && self.max_amount.is_none() {
            return err("give a count threshold, an amount threshold or both");
        }
        if self.max_amount.is_some() && self.amount_column.is_none() {
            return err("an amount threshold needs an amount column");
        }
        if self.max_amount.is_some_and(|x| !x.is_finite()) {
            return err("the amount threshold must be a finite number");
        }
        let columns = RuleColumns {
            keys: self.keys.clone(),
            time_column: self.time_column,
            carry: self.carry.clone(),
        };
        FraudOperator::try_new(VelocityRule { config: self }, columns, input_schema)
    }
}

/// The velocity rule (see [`VelocityConfig`]).
#[derive(Debug, Clone)]
pub struct VelocityRule {
    config: VelocityConfig,
}

/// A key's window.
#[derive(Debug, Default)]
pub struct VelocityState {
    rows: VecDeque<(EventTime, f64)>,
    total: f64,
    in_breach: bool,
}

/// The measures of a velocity alert.
#[derive(Debug, Clone, Copy)]
pub struct VelocityAlert {
    count: u64,
    total: Option<f64>,
    first: EventTime,
}

impl FraudRule for VelocityRule {
    type State = VelocityState;
    type Alert = VelocityAlert;

    fn name(&self) -> &'static str {
        "velocity"
    }

    fn inputs(&self) -> Vec<RuleInput> {
        self.config
            .amount_column
            .map(RuleInput::Float64)
            .into_iter()
            .collect()
    }

    fn measure_fields(&self) -> Vec<Field> {
        vec![
            Field::new("tx_count", DataType::UInt64, false),
            Field::new("total_amount", DataType::Float64, true),
            ts_field("window_first_time", false),
        ]
    }

    fn new_state(&self) -> VelocityState {
        VelocityState::default()
    }

    fn on_row(&self, s: &mut VelocityState, row: &RuleRow<'_>) -> Option<VelocityAlert> {
        let t = row.time();
        let amount = if self.config.amount_column.is_some() {
            row.f64(0).unwrap_or(0.0)
        } else {
            0.0
        };
        let from = t.saturating_sub(self.config.window_ms);
        while s.rows.front().is_some_and(|(ts, _)| *ts < from) {
            if let Some((_, a)) = s.rows.pop_front() {
                s.total -= a;
            }
        }
        if s.rows.is_empty() {
            // Start from an exact zero: no drift across windows.
            s.total = 0.0;
        }
        s.rows.push_back((t, amount));
        s.total += amount;
        let count = s.rows.len() as u64;
        let breach = self.config.max_count.is_some_and(|n| count > n)
            || self.config.max_amount.is_some_and(|x| s.total > x);
        let alert = breach
            && match self.config.alert_mode {
                AlertMode::OnBreach => !s.in_breach,
                AlertMode::EveryRow => true,
            };
        s.in_breach = breach;
        alert.then(|| VelocityAlert {
            count,
            total: self.config.amount_column.map(|_| s.total),
            first: s.rows.front().map_or(t, |(ts, _)| *ts),
        })
    }

    fn expires_at(&self, s: &VelocityState) -> EventTime {
        // Once the watermark reaches last + T, every later row's window
        // starts after the last row held.
        s.rows.back().map_or(EventTime::MIN, |(t, _)| {
            t.saturating_add(self.config.window_ms)
        })
    }

    fn measure_columns(&self, alerts: &[VelocityAlert]) -> Result<Vec<ArrayRef>> {
        Ok(vec![
            Arc::new(UInt64Array::from_iter_values(
                alerts.iter().map(|a| a.count),
            )),
            Arc::new(Float64Array::from_iter(alerts.iter().map(|a| a.total))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                alerts.iter().map(|a| a.first),
            )),
        ])
    }

    fn encode_state(&self, s: &VelocityState, out: &mut StateWriter) {
        out.bool(s.in_breach);
        out.f64(s.total);
        out.u64(s.rows.len() as u64);
        for (t, a) in &s.rows {
            out.i64(*t);
            out.f64(*a);
        }
    }

    fn decode_state(&self, input: &mut StateReader<'_>) -> Result<VelocityState> {
        let in_breach = input.bool()?;
        let total = input.f64()?;
        let n = input.u64()?;
        let mut rows = VecDeque::new();
        for _ in 0..n {
            rows.push_back((input.i64()?, input.f64()?));
        }
        Ok(VelocityState {
            rows,
            total,
            in_breach,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fraud::test_support::{tx, tx_schema, Tx, AMOUNT, ID, KEY, TS};
    use crate::test_util::{rows_of, Harness};
    use weir_engine::operator::Operator;

    fn rule(config: VelocityConfig) -> FraudOperator<VelocityRule> {
        config.build(&tx_schema()).expect("velocity")
    }

    #[test]
    fn counts_rows_in_an_inclusive_sliding_window_once_per_breach() {
        let mut c = VelocityConfig::new(vec![KEY], TS);
        c.max_count = Some(2);
        c.window_ms = 1_000;
        c.carry = vec![ID];
        let mut h = Harness::new(rule(c));
        // Key 1: rows at 0, 500, 1000 -> 3 in [0, 1000]: alert at 1000.
        // 1200 (window [200,1200]: 500,1000,1200) still in breach: no alert.
        // 2300 ([1300, 2300]: 1 row) ends it; 2400, 2500 -> 3 rows again.
        // Key 2 never has more than 2.
        h.batch(tx(&[
            Tx::new(0, 1).id(1),
            Tx::new(500, 1).id(2),
            Tx::new(100, 2).id(3),
            Tx::new(1_000, 1).id(4),
            Tx::new(1_200, 1).id(5),
            Tx::new(1_150, 2).id(6),
            Tx::new(2_300, 1).id(7),
            Tx::new(2_400, 1).id(8),
            Tx::new(2_500, 1).id(9),
        ]))
        .expect("batch");
        h.watermark(10_000).expect("wm");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["1,3,null,0,1000,2500,4", "1,3,null,2300,2500,2500,9",]
        );
        assert_eq!(h.ctx.metrics.count("alerts"), 2);
        assert_eq!(h.op.keys_in_state(), 0, "state expired at the watermark");
    }

    #[test]
    fn every_row_mode_and_amount_threshold() {
        let mut c = VelocityConfig::new(vec![KEY], TS).with_amount(AMOUNT, 100.0);
        c.max_count = None;
        c.window_ms = 60_000;
        c.alert_mode = AlertMode::EveryRow;
        let mut h = Harness::new(rule(c));
        h.batch(tx(&[
            Tx::new(1_000, 7).amount(60.0),
            Tx::new(2_000, 7).amount(50.0),
            Tx::new(3_000, 7).amount(1.0),
            Tx::new(70_000, 7).amount(99.0),
        ]))
        .expect("batch");
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["7,2,110.0,1000,2000,70000", "7,3,111.0,1000,3000,70000"]
        );
    }

    #[test]
    fn rows_are_processed_in_event_time_order_and_late_rows_dropped() {
        let mut c = VelocityConfig::new(vec![KEY], TS);
        c.max_count = Some(1);
        c.window_ms = 10;
        let mut h = Harness::new(rule(c));
        // Arrives 20, 5, 12; processed 5, 12, 20: 5 and 12 within 10 ms.
        h.batch(tx(&[Tx::new(20, 1), Tx::new(5, 1)]))
            .expect("batch");
        h.batch(tx(&[Tx::new(12, 1)])).expect("batch");
        h.watermark(15).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["1,2,null,5,12,15"]);
        assert_eq!(h.op.pending_rows(), 1);
        h.batch(tx(&[Tx::new(15, 1), Tx::new(16, 1)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 1);
        h.watermark(30).expect("wm");
        // 16: window [6, 16] = {12, 16}, 20: {12, 16, 20}: the breach
        // that began at 12 goes on, so no new alert.
        assert!(h.take_batches().is_empty());
    }

    #[test]
    fn snapshot_and_restore_continue_exactly() {
        let make = || {
            let mut c = VelocityConfig::new(vec![KEY], TS);
            c.max_count = Some(2);
            c.window_ms = 100;
            rule(c)
        };
        let rows = [
            Tx::new(10, 1),
            Tx::new(20, 2),
            Tx::new(50, 1),
            Tx::new(90, 1),
            Tx::new(95, 2),
            Tx::new(99, 2),
            Tx::new(140, 1),
        ];
        let mut straight = Harness::new(make());
        straight.batch(tx(&rows)).expect("batch");
        straight.watermark(60).expect("wm");
        straight.end().expect("end");
        let expected = rows_of(&straight.take_batches());
        assert_eq!(expected.len(), 2);

        let mut first = Harness::new(make());
        first.batch(tx(&rows[..4])).expect("batch");
        first.watermark(60).expect("wm");
        let mut out = rows_of(&first.take_batches());
        let bytes = first
            .op
            .snapshot()
            .expect("snapshot")
            .to_bytes()
            .expect("bytes");
        let mut second = Harness::new(make());
        second
            .op
            .restore(weir_engine::state::OperatorState::from_bytes(&bytes).expect("decode"))
            .expect("restore");
        second.ctx.watermark = Some(60);
        second.batch(tx(&rows[4..])).expect("batch");
        second.end().expect("end");
        out.extend(rows_of(&second.take_batches()));
        assert_eq!(out, expected);
        assert_eq!(second.op.alerts_emitted(), 2);
    }

    #[test]
    fn output_schema_is_keys_measures_times_carry() {
        let mut c = VelocityConfig::new(vec![KEY], TS).with_amount(AMOUNT, 1.0);
        c.carry = vec![ID];
        let s = c.output_schema(&tx_schema()).expect("schema");
        let names: Vec<String> = s.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(
            names,
            [
                "k",
                "tx_count",
                "total_amount",
                "window_first_time",
                "event_time",
                "alert_time",
                "id"
            ]
        );
    }

    #[test]
    fn configuration_errors_name_the_problem() {
        let s = tx_schema();
        let mut c = VelocityConfig::new(vec![KEY], TS);
        c.max_count = None;
        let e = c.build(&s).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("give a count threshold"), "{e}");
        let e = VelocityConfig::new(vec![KEY], 99)
            .build(&s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("time column index 99 is out of range"), "{e}");
        let e = VelocityConfig::new(vec![KEY], AMOUNT)
            .build(&s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("must be a TIMESTAMP or BIGINT"), "{e}");
        let mut c = VelocityConfig::new(vec![KEY], TS);
        c.carry = vec![KEY];
        let e = c.build(&s).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("two columns named 'k'"), "{e}");
    }
}
