//! The amount-spike rule: an amount far above the key's running mean, in
//! standard deviations of the key's earlier amounts.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, UInt64Array};
use arrow::datatypes::{DataType, Field, SchemaRef};
use weir_engine::message::EventTime;
use weir_engine::{Result, WeirError};

use super::{FraudOperator, FraudRule, RuleColumns, RuleInput, RuleRow, StateReader, StateWriter};

/// Default minimum history: the key's 10 earlier amounts.
pub const DEFAULT_SPIKE_MIN_HISTORY: u64 = 10;
/// Default z-score threshold: alert above 4 standard deviations.
pub const DEFAULT_SPIKE_Z_THRESHOLD: f64 = 4.0;
/// Default time a key's statistics are kept after its last row: 30 days.
pub const DEFAULT_SPIKE_STATE_TTL_MS: i64 = 30 * 24 * 3_600_000;

/// Configuration of the amount-spike rule.
///
/// For each row of a key (in event-time order) with a non-NULL amount `x`,
/// once the key has at least `min_history` earlier amounts, the rule
/// computes `z = (x - mean) / stddev` over those earlier amounts only
/// (the current row excluded; `stddev` is the sample standard deviation,
/// SQL's `STDDEV`), kept with Welford's online algorithm, and alerts when
/// `z > z_threshold` (one-sided: only amounts above the mean). A zero
/// standard deviation gives `z = +inf` for any amount above the mean. Then
/// `x` joins the statistics (unless it alerted and `learn_from_alerts` is
/// false). Rows with a NULL amount are ignored. A key without rows for
/// `state_ttl_ms` of event time starts over.
///
/// **Duplicates:** not tolerated; an exact duplicate enters the statistics
/// twice. Deduplicate first.
///
/// Alert measures: `amount DOUBLE`, `mean DOUBLE`, `stddev DOUBLE`,
/// `z_score DOUBLE`, `history BIGINT UNSIGNED` (earlier amounts counted).
#[derive(Debug, Clone, PartialEq)]
pub struct AmountSpikeConfig {
    /// Key columns (e.g. `card_id`).
    pub keys: Vec<usize>,
    /// The event-time column.
    pub time_column: usize,
    /// The amount column (numeric).
    pub amount_column: usize,
    /// Earlier amounts needed before the rule can alert (at least 2).
    pub min_history: u64,
    /// Alert when the z-score is above this.
    pub z_threshold: f64,
    /// Whether an amount that alerted joins the statistics (true: the
    /// statistics are those of all earlier rows, like
    /// `STDDEV(amount) OVER (… ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)`).
    pub learn_from_alerts: bool,
    /// Event time a key's statistics are kept after its last row.
    pub state_ttl_ms: i64,
    /// Input columns copied into each alert.
    pub carry: Vec<usize>,
}

impl AmountSpikeConfig {
    /// The default thresholds: z above [`DEFAULT_SPIKE_Z_THRESHOLD`] after
    /// [`DEFAULT_SPIKE_MIN_HISTORY`] amounts, learning from every row.
    pub fn new(keys: Vec<usize>, time_column: usize, amount_column: usize) -> Self {
        Self {
            keys,
            time_column,
            amount_column,
            min_history: DEFAULT_SPIKE_MIN_HISTORY,
            z_threshold: DEFAULT_SPIKE_Z_THRESHOLD,
            learn_from_alerts: true,
            state_ttl_ms: DEFAULT_SPIKE_STATE_TTL_MS,
            carry: Vec::new(),
        }
    }

    /// The schema of the alerts over `input_schema` (what
    /// [`FraudOperator::output_schema`] of the built operator returns).
    pub fn output_schema(&self, input_schema: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.clone().build(input_schema)?.output_schema())
    }

    /// Checks thresholds and builds the operator over `input_schema`.
    pub fn build(self, input_schema: &SchemaRef) -> Result<FraudOperator<AmountSpikeRule>> {
        let err = |m: &str| Err(WeirError::Plan(format!("amount_spike: {m}")));
        if self.min_history < 2 {
            return err("the minimum history must be at least 2 amounts");
        }
        if !self.z_threshold.is_finite() {
            return err("the z-score threshold must be a finite number");
        }
        if self.state_ttl_ms <= 0 {
            return err("the state TTL must be positive");
        }
        let columns = RuleColumns {
            keys: self.keys.clone(),
            time_column: self.time_column,
            carry: self.carry.clone(),
        };
        FraudOperator::try_new(AmountSpikeRule { config: self }, columns, input_schema)
    }
}

/// The amount-spike rule (see [`AmountSpikeConfig`]).
#[derive(Debug, Clone)]
pub struct AmountSpikeRule {
    config: AmountSpikeConfig,
}

/// A key's running statistics (Welford).
#[derive(Debug, Default, Clone, Copy)]
pub struct AmountSpikeState {
    count: u64,
    mean: f64,
    m2: f64,
    last: EventTime,
}

impl AmountSpikeState {
    fn stddev(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            (self.m2 / (self.count - 1) as f64).max(0.0).sqrt()
        }
    }

    fn add(&mut self, x: f64) {
        self.count += 1;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
    }
}

/// The measures of an amount-spike alert.
#[derive(Debug, Clone, Copy)]
pub struct AmountSpikeAlert {
    amount: f64,
    mean: f64,
    stddev: f64,
    z: f64,
    history: u64,
}

/// The one-sided z-score of `x` against `mean` and `stddev`.
fn z_score(x: f64, mean: f64, stddev: f64) -> f64 {
    if stddev > 0.0 {
        (x - mean) / stddev
    } else if x > mean {
        f64::INFINITY
    } else if x < mean {
        f64::NEG_INFINITY
    } else {
        0.0
    }
}

impl FraudRule for AmountSpikeRule {
    type State = AmountSpikeState;
    type Alert = AmountSpikeAlert;

    fn name(&self) -> &'static str {
        "amount_spike"
    }

    fn inputs(&self) -> Vec<RuleInput> {
        vec![RuleInput::Float64(self.config.amount_column)]
    }

    fn measure_fields(&self) -> Vec<Field> {
        vec![
            Field::new("amount", DataType::Float64, false),
            Field::new("mean", DataType::Float64, false),
            Field::new("stddev", DataType::Float64, false),
            Field::new("z_score", DataType::Float64, false),
            Field::new("history", DataType::UInt64, false),
        ]
    }

    fn new_state(&self) -> AmountSpikeState {
        AmountSpikeState::default()
    }

    fn on_row(&self, s: &mut AmountSpikeState, row: &RuleRow<'_>) -> Option<AmountSpikeAlert> {
        let x = row.f64(0)?;
        if !x.is_finite() {
            return None;
        }
        s.last = row.time();
        let mut alert = None;
        if s.count >= self.config.min_history {
            let stddev = s.stddev();
            let z = z_score(x, s.mean, stddev);
            if z > self.config.z_threshold {
                alert = Some(AmountSpikeAlert {
                    amount: x,
                    mean: s.mean,
                    stddev,
                    z,
                    history: s.count,
                });
            }
        }
        if alert.is_none() || self.config.learn_from_alerts {
            s.add(x);
        }
        alert
    }

    fn expires_at(&self, s: &AmountSpikeState) -> EventTime {
        if s.count == 0 {
            EventTime::MIN
        } else {
            s.last.saturating_add(self.config.state_ttl_ms)
        }
    }

    fn measure_columns(&self, alerts: &[AmountSpikeAlert]) -> Result<Vec<ArrayRef>> {
        let f = |g: fn(&AmountSpikeAlert) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(alerts.iter().map(g)))
        };
        Ok(vec![
            f(|a| a.amount),
            f(|a| a.mean),
            f(|a| a.stddev),
            f(|a| a.z),
            Arc::new(UInt64Array::from_iter_values(
                alerts.iter().map(|a| a.history),
            )),
        ])
    }

    fn encode_state(&self, s: &AmountSpikeState, out: &mut StateWriter) {
        out.u64(s.count);
        out.f64(s.mean);
        out.f64(s.m2);
        out.i64(s.last);
    }

    fn decode_state(&self, input: &mut StateReader<'_>) -> Result<AmountSpikeState> {
        Ok(AmountSpikeState {
            count: input.u64()?,
            mean: input.f64()?,
            m2: input.f64()?,
            last: input.i64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fraud::test_support::{tx, tx_schema, Tx, AMOUNT, ID, KEY, TS};
    use crate::test_util::{rows_of, Harness};
    use weir_engine::operator::Operator;
    use weir_engine::state::OperatorState;

    fn config() -> AmountSpikeConfig {
        let mut c = AmountSpikeConfig::new(vec![KEY], TS, AMOUNT);
        c.min_history = 4;
        c.z_threshold = 3.0;
        c.carry = vec![ID];
        c
    }

    #[test]
    fn z_score_against_earlier_rows_only_after_min_history() {
        let mut h = Harness::new(config().build(&tx_schema()).expect("rule"));
        // History 10, 12, 10, 12: mean 11, sample stddev 1.1547.
        // 14.4 -> z = 2.94 (no), joins; then 100 -> alert.
        // 1000 in the 3rd row: history too short, no alert.
        h.batch(tx(&[
            Tx::new(1, 1).amount(10.0).id(1),
            Tx::new(2, 1).amount(12.0).id(2),
            Tx::new(3, 1).amount(1000.0).id(3),
            Tx::new(3, 2).amount(5.0).id(4),
            Tx::new(4, 1).amount(10.0).id(5),
            Tx::new(5, 1).amount(12.0).id(6),
            Tx::new(6, 1).null_amount().id(7),
        ]))
        .expect("batch");
        h.watermark(6).expect("wm");
        assert!(h.take_batches().is_empty(), "1000 came with 2 earlier rows");
        let mut h = Harness::new(config().build(&tx_schema()).expect("rule"));
        h.batch(tx(&[
            Tx::new(1, 1).amount(10.0),
            Tx::new(2, 1).amount(12.0),
            Tx::new(3, 1).amount(10.0),
            Tx::new(4, 1).amount(12.0),
            Tx::new(5, 1).amount(14.4).id(5),
            Tx::new(6, 1).amount(100.0).id(6),
        ]))
        .expect("batch");
        h.end().expect("end");
        let rows = rows_of(&h.take_batches());
        assert_eq!(rows.len(), 1);
        let f: Vec<&str> = rows[0].split(',').collect();
        let num = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
        // mean of 10, 12, 10, 12, 14.4 = 11.68; sample stddev 1.81990...
        assert_eq!((f[0], num(1)), ("1", 100.0));
        assert!((num(2) - 11.68).abs() < 1e-9, "{}", rows[0]);
        assert!((num(3) - 3.312_f64.sqrt()).abs() < 1e-9, "{}", rows[0]);
        assert!(
            (num(4) - 88.32 / 3.312_f64.sqrt()).abs() < 1e-9,
            "{}",
            rows[0]
        );
        assert_eq!(&f[5..], ["5", "6", "6", "6"]);
    }

    #[test]
    fn zero_stddev_and_learning_from_alerts() {
        let rows = [
            Tx::new(1, 1).amount(5.0),
            Tx::new(2, 1).amount(5.0),
            Tx::new(3, 1).amount(5.0),
            Tx::new(4, 1).amount(5.0),
            Tx::new(5, 1).amount(5.0).id(5),
            Tx::new(6, 1).amount(50.0).id(6),
            Tx::new(7, 1).amount(50.0).id(7),
        ];
        let mut h = Harness::new(config().build(&tx_schema()).expect("rule"));
        h.batch(tx(&rows)).expect("batch");
        h.end().expect("end");
        // 50 after five 5s: z = inf. The second 50 is 2.04 sd above the
        // mean of 5,5,5,5,5,50: no alert when the first one was learned.
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["1,50.0,5.0,0.0,inf,5,6,7,6"]
        );
        let mut c = config();
        c.learn_from_alerts = false;
        let mut h = Harness::new(c.build(&tx_schema()).expect("rule"));
        h.batch(tx(&rows)).expect("batch");
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["1,50.0,5.0,0.0,inf,5,6,7,6", "1,50.0,5.0,0.0,inf,5,7,7,7"]
        );
    }

    #[test]
    fn state_expires_after_the_ttl() {
        let mut c = config();
        c.state_ttl_ms = 100;
        let mut h = Harness::new(c.build(&tx_schema()).expect("rule"));
        h.batch(tx(&[
            Tx::new(1, 1).amount(10.0),
            Tx::new(2, 1).amount(12.0),
            Tx::new(3, 1).amount(10.0),
            Tx::new(4, 1).amount(12.0),
        ]))
        .expect("batch");
        h.watermark(50).expect("wm");
        assert_eq!(h.op.keys_in_state(), 1);
        h.watermark(104).expect("wm");
        assert_eq!(h.op.keys_in_state(), 0);
        h.batch(tx(&[Tx::new(105, 1).amount(1000.0)]))
            .expect("batch");
        h.end().expect("end");
        assert!(h.take_batches().is_empty(), "history was forgotten");
    }

    #[test]
    fn snapshot_round_trip() {
        let rows: Vec<Tx> = (0..12)
            .map(|i| {
                Tx::new(i, i % 2).amount(if i == 11 {
                    500.0
                } else {
                    10.0 + (i % 3) as f64
                })
            })
            .collect();
        let mut straight = Harness::new(config().build(&tx_schema()).expect("rule"));
        straight.batch(tx(&rows)).expect("batch");
        straight.end().expect("end");
        let expected = rows_of(&straight.take_batches());
        assert_eq!(expected.len(), 1);

        let mut a = Harness::new(config().build(&tx_schema()).expect("rule"));
        a.batch(tx(&rows[..8])).expect("batch");
        a.watermark(5).expect("wm");
        let snap =
            a.op.snapshot()
                .expect("snapshot")
                .to_bytes()
                .expect("bytes");
        let mut b = Harness::new(config().build(&tx_schema()).expect("rule"));
        b.op.restore(OperatorState::from_bytes(&snap).expect("decode"))
            .expect("restore");
        b.batch(tx(&rows[8..])).expect("batch");
        b.end().expect("end");
        assert_eq!(rows_of(&b.take_batches()), expected);
    }
}
