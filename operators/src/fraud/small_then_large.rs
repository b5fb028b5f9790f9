//! The small-then-large rule of Flink's fraud-detection tutorial: a small
//! amount (a card being tested) immediately followed by a large one.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, SchemaRef};
use weir_engine::message::EventTime;
use weir_engine::{Result, WeirError};

use super::{
    ts_field, FraudOperator, FraudRule, RuleColumns, RuleInput, RuleRow, StateReader, StateWriter,
};

/// Default small amount: below 1.00.
pub const DEFAULT_SMALL_BELOW: f64 = 1.0;
/// Default large amount: above 500.00.
pub const DEFAULT_LARGE_ABOVE: f64 = 500.0;
/// Default window: one minute.
pub const DEFAULT_SMALL_THEN_LARGE_WINDOW_MS: i64 = 60_000;

/// Configuration of the small-then-large rule.
///
/// Flink's `FraudDetector`, in event time: a row of a key with an amount
/// below `small_below` sets a flag; the key's next row (in event-time
/// order) clears it and alerts if its amount is above `large_above` and it
/// comes at most `window_ms` after the small one. So a large amount alerts
/// only when it *immediately* follows the small one. A NULL amount is a
/// row that is neither small nor large.
///
/// **Duplicates:** tolerated. A duplicated small row re-sets the flag it
/// cleared; a duplicated large row follows the large one, not a small one.
///
/// Alert measures: `small_amount DOUBLE`, `small_event_time TIMESTAMP(3)`,
/// `amount DOUBLE` (the large amount).
#[derive(Debug, Clone, PartialEq)]
pub struct SmallThenLargeConfig {
    /// Key columns (Flink's tutorial: the account).
    pub keys: Vec<usize>,
    /// The event-time column.
    pub time_column: usize,
    /// The amount column (numeric).
    pub amount_column: usize,
    /// A small amount is below this.
    pub small_below: f64,
    /// A large amount is above this.
    pub large_above: f64,
    /// The large amount must come at most this long after the small one.
    pub window_ms: i64,
    /// Input columns copied into each alert.
    pub carry: Vec<usize>,
}

impl SmallThenLargeConfig {
    /// Flink's tutorial rule: below 1.00, then above 500.00, within a minute.
    pub fn new(keys: Vec<usize>, time_column: usize, amount_column: usize) -> Self {
        Self {
            keys,
            time_column,
            amount_column,
            small_below: DEFAULT_SMALL_BELOW,
            large_above: DEFAULT_LARGE_ABOVE,
            window_ms: DEFAULT_SMALL_THEN_LARGE_WINDOW_MS,
            carry: Vec::new(),
        }
    }

    /// The schema of the alerts over `input_schema` (what
    /// [`FraudOperator::output_schema`] of the built operator returns).
    pub fn output_schema(&self, input_schema: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.clone().build(input_schema)?.output_schema())
    }

    /// Checks thresholds and builds the operator over `input_schema`.
    pub fn build(self, input_schema: &SchemaRef) -> Result<FraudOperator<SmallThenLargeRule>> {
        let err = |m: &str| Err(WeirError::Plan(format!("small_then_large: {m}")));
        if !(self.small_below.is_finite() && self.large_above.is_finite()) {
            return err("the amounts must be finite numbers");
        }
        if self.small_below > self.large_above {
            return err("the small amount must not exceed the large amount");
        }
        if self.window_ms < 0 {
            return err("the window must not be negative");
        }
        let columns = RuleColumns {
            keys: self.keys.clone(),
            time_column: self.time_column,
            carry: self.carry.clone(),
        };
        FraudOperator::try_new(SmallThenLargeRule { config: self }, columns, input_schema)
    }
}

/// The small-then-large rule (see [`SmallThenLargeConfig`]).
#[derive(Debug, Clone)]
pub struct SmallThenLargeRule {
    config: SmallThenLargeConfig,
}

/// The flag: the key's last row was small (its time and amount).
#[derive(Debug, Default, Clone, Copy)]
pub struct SmallThenLargeState {
    small: Option<(EventTime, f64)>,
}

/// The measures of a small-then-large alert.
#[derive(Debug, Clone, Copy)]
pub struct SmallThenLargeAlert {
    small: (EventTime, f64),
    amount: f64,
}

impl FraudRule for SmallThenLargeRule {
    type State = SmallThenLargeState;
    type Alert = SmallThenLargeAlert;

    fn name(&self) -> &'static str {
        "small_then_large"
    }

    fn inputs(&self) -> Vec<RuleInput> {
        vec![RuleInput::Float64(self.config.amount_column)]
    }

    fn measure_fields(&self) -> Vec<Field> {
        vec![
            Field::new("small_amount", DataType::Float64, false),
            ts_field("small_event_time", false),
            Field::new("amount", DataType::Float64, false),
        ]
    }

    fn new_state(&self) -> SmallThenLargeState {
        SmallThenLargeState::default()
    }

    fn on_row(
        &self,
        s: &mut SmallThenLargeState,
        row: &RuleRow<'_>,
    ) -> Option<SmallThenLargeAlert> {
        let t = row.time();
        let amount = row.f64(0);
        let alert = match (s.small.take(), amount) {
            (Some(small), Some(x))
                if x > self.config.large_above
                    && t.saturating_sub(small.0) <= self.config.window_ms =>
            {
                Some(SmallThenLargeAlert { small, amount: x })
            }
            _ => None,
        };
        if let Some(x) = amount.filter(|x| *x < self.config.small_below) {
            s.small = Some((t, x));
        }
        alert
    }

    fn expires_at(&self, s: &SmallThenLargeState) -> EventTime {
        s.small.map_or(EventTime::MIN, |(t, _)| {
            t.saturating_add(self.config.window_ms)
        })
    }

    fn measure_columns(&self, alerts: &[SmallThenLargeAlert]) -> Result<Vec<ArrayRef>> {
        Ok(vec![
            Arc::new(Float64Array::from_iter_values(
                alerts.iter().map(|a| a.small.1),
            )),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                alerts.iter().map(|a| a.small.0),
            )),
            Arc::new(Float64Array::from_iter_values(
                alerts.iter().map(|a| a.amount),
            )),
        ])
    }

    fn encode_state(&self, s: &SmallThenLargeState, out: &mut StateWriter) {
        out.bool(s.small.is_some());
        if let Some((t, x)) = s.small {
            out.i64(t);
            out.f64(x);
        }
    }

    fn decode_state(&self, input: &mut StateReader<'_>) -> Result<SmallThenLargeState> {
        let small = if input.bool()? {
            Some((input.i64()?, input.f64()?))
        } else {
            None
        };
        Ok(SmallThenLargeState { small })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fraud::test_support::{tx, tx_schema, Tx, AMOUNT, ID, KEY, TS};
    use crate::test_util::{rows_of, Harness};
    use weir_engine::operator::Operator;
    use weir_engine::state::OperatorState;

    fn rule() -> FraudOperator<SmallThenLargeRule> {
        let mut c = SmallThenLargeConfig::new(vec![KEY], TS, AMOUNT);
        c.carry = vec![ID];
        c.build(&tx_schema()).expect("rule")
    }

    #[test]
    fn small_immediately_followed_by_large_within_a_minute() {
        let mut h = Harness::new(rule());
        h.batch(tx(&[
            // Key 1: 0.5 then 600 after 30 s: alert.
            Tx::new(0, 1).amount(0.5).id(1),
            Tx::new(30_000, 1).amount(600.0).id(2),
            // Key 2: 0.5, 20 (clears), 600: no alert.
            Tx::new(0, 2).amount(0.5).id(3),
            Tx::new(1_000, 2).amount(20.0).id(4),
            Tx::new(2_000, 2).amount(600.0).id(5),
            // Key 3: 0.99 then 501 after 60.001 s: too late.
            Tx::new(0, 3).amount(0.99).id(6),
            Tx::new(60_001, 3).amount(501.0).id(7),
            // Key 4: 0.1, then 0.2 (small again), then 500.01 at exactly 60 s.
            Tx::new(0, 4).amount(0.1).id(8),
            Tx::new(10_000, 4).amount(0.2).id(9),
            Tx::new(70_000, 4).amount(500.01).id(10),
            // Key 5: exactly 1.00 and exactly 500 are neither.
            Tx::new(0, 5).amount(1.0).id(11),
            Tx::new(1, 5).amount(900.0).id(12),
        ]))
        .expect("batch");
        h.watermark(100_000).expect("wm");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec![
                "1,0.5,0,600.0,30000,70000,2",
                "4,0.2,10000,500.01,70000,70000,10",
            ]
        );
        assert_eq!(h.op.keys_in_state(), 0);
    }

    #[test]
    fn out_of_order_arrival_is_ordered_first_and_duplicates_are_harmless() {
        let mut h = Harness::new(rule());
        let small = Tx::new(100, 1).amount(0.5).id(1);
        let large = Tx::new(200, 1).amount(700.0).id(2);
        h.batch(tx(&[large, small])).expect("batch");
        h.batch(tx(&[small, large])).expect("batch");
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["1,0.5,100,700.0,200,200,2"]
        );
    }

    #[test]
    fn snapshot_keeps_the_flag() {
        let mut a = Harness::new(rule());
        a.batch(tx(&[
            Tx::new(100, 1).amount(0.5),
            Tx::new(300, 1).amount(800.0),
        ]))
        .expect("batch");
        a.watermark(150).expect("wm");
        assert_eq!(a.op.keys_in_state(), 1);
        let snap =
            a.op.snapshot()
                .expect("snapshot")
                .to_bytes()
                .expect("bytes");
        let mut b = Harness::new(rule());
        b.op.restore(OperatorState::from_bytes(&snap).expect("decode"))
            .expect("restore");
        b.end().expect("end");
        assert_eq!(
            rows_of(&b.take_batches()),
            vec!["1,0.5,100,800.0,300,300,0"]
        );
    }
}
