//! The device-sharing rule: one device used with more than M distinct
//! cards within a sliding event-time window.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use arrow::array::{ArrayRef, TimestampMillisecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, SchemaRef};
use weir_engine::message::EventTime;
use weir_engine::{Result, WeirError};

use super::{
    ts_field, AlertMode, FraudOperator, FraudRule, RuleColumns, RuleInput, RuleRow, StateReader,
    StateWriter,
};

/// Default threshold: alert when more than 3 distinct cards use a device.
pub const DEFAULT_DEVICE_MAX_CARDS: u64 = 3;
/// Default window: ten minutes.
pub const DEFAULT_DEVICE_WINDOW_MS: i64 = 600_000;

/// Configuration of the device-sharing rule.
///
/// For each row of a key (the device, in event-time order) with a
/// non-NULL card, the window holds the key's rows with event time in
/// `[t - window_ms, t]`; the condition holds when they name more than
/// `max_cards` distinct cards (compared by value, any type). [`AlertMode`]
/// says on which rows that alerts (default: once per breach). Rows with a
/// NULL card are ignored.
///
/// **Duplicates:** tolerated with [`AlertMode::OnBreach`]: a duplicate adds
/// no distinct card. With [`AlertMode::EveryRow`] a duplicate row during a
/// breach alerts again.
///
/// Alert measures: `distinct_cards BIGINT UNSIGNED`, `tx_count BIGINT
/// UNSIGNED` (rows in the window), `window_first_time TIMESTAMP(3)`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSharingConfig {
    /// Key columns (e.g. `device_id`).
    pub keys: Vec<usize>,
    /// The event-time column.
    pub time_column: usize,
    /// The column whose distinct values are counted (e.g. `card_id`).
    pub card_column: usize,
    /// Alert when more than this many distinct cards are in the window.
    pub max_cards: u64,
    /// Window length in milliseconds (positive).
    pub window_ms: i64,
    /// Which rows of a breach alert.
    pub alert_mode: AlertMode,
    /// Input columns copied into each alert.
    pub carry: Vec<usize>,
}

impl DeviceSharingConfig {
    /// More than [`DEFAULT_DEVICE_MAX_CARDS`] cards per key within
    /// [`DEFAULT_DEVICE_WINDOW_MS`], once per breach.
    pub fn new(keys: Vec<usize>, time_column: usize, card_column: usize) -> Self {
        Self {
            keys,
            time_column,
            card_column,
            max_cards: DEFAULT_DEVICE_MAX_CARDS,
            window_ms: DEFAULT_DEVICE_WINDOW_MS,
            alert_mode: AlertMode::OnBreach,
            carry: Vec::new(),
        }
    }

    /// The schema of the alerts over `input_schema` (what
    /// [`FraudOperator::output_schema`] of the built operator returns).
    pub fn output_schema(&self, input_schema: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.clone().build(input_schema)?.output_schema())
    }

    /// Checks thresholds and builds the operator over `input_schema`.
    pub fn build(self, input_schema: &SchemaRef) -> Result<FraudOperator<DeviceSharingRule>> {
        if self.window_ms <= 0 {
            return Err(WeirError::Plan(
                "device_sharing: the window must be positive".into(),
            ));
        }
        let columns = RuleColumns {
            keys: self.keys.clone(),
            time_column: self.time_column,
            carry: self.carry.clone(),
        };
        FraudOperator::try_new(DeviceSharingRule { config: self }, columns, input_schema)
    }
}

/// The device-sharing rule (see [`DeviceSharingConfig`]).
#[derive(Debug, Clone)]
pub struct DeviceSharingRule {
    config: DeviceSharingConfig,
}

/// A device's window: its rows and how many of them name each card.
#[derive(Debug, Default)]
pub struct DeviceSharingState {
    rows: VecDeque<(EventTime, Arc<[u8]>)>,
    cards: HashMap<Arc<[u8]>, u64, BuildHasherDefault<ahash::AHasher>>,
    in_breach: bool,
}

/// The measures of a device-sharing alert.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSharingAlert {
    distinct: u64,
    count: u64,
    first: EventTime,
}

impl FraudRule for DeviceSharingRule {
    type State = DeviceSharingState;
    type Alert = DeviceSharingAlert;

    fn name(&self) -> &'static str {
        "device_sharing"
    }

    fn inputs(&self) -> Vec<RuleInput> {
        vec![RuleInput::Value(self.config.card_column)]
    }

    fn measure_fields(&self) -> Vec<Field> {
        vec![
            Field::new("distinct_cards", DataType::UInt64, false),
            Field::new("tx_count", DataType::UInt64, false),
            ts_field("window_first_time", false),
        ]
    }

    fn new_state(&self) -> DeviceSharingState {
        DeviceSharingState::default()
    }

    fn on_row(&self, s: &mut DeviceSharingState, row: &RuleRow<'_>) -> Option<DeviceSharingAlert> {
        let card = row.value(0)?;
        let t = row.time();
        let from = t.saturating_sub(self.config.window_ms);
        while s.rows.front().is_some_and(|(ts, _)| *ts < from) {
            if let Some((_, old)) = s.rows.pop_front() {
                if let Some(n) = s.cards.get_mut(&old) {
                    *n -= 1;
                    if *n == 0 {
                        s.cards.remove(&old);
                    }
                }
            }
        }
        // One allocation per distinct card in the window: rows share it.
        let card: Arc<[u8]> = match s.cards.get_key_value(card) {
            Some((k, _)) => k.clone(),
            None => card.into(),
        };
        *s.cards.entry(card.clone()).or_insert(0) += 1;
        s.rows.push_back((t, card));
        let distinct = s.cards.len() as u64;
        let breach = distinct > self.config.max_cards;
        let alert = breach
            && match self.config.alert_mode {
                AlertMode::OnBreach => !s.in_breach,
                AlertMode::EveryRow => true,
            };
        s.in_breach = breach;
        alert.then(|| DeviceSharingAlert {
            distinct,
            count: s.rows.len() as u64,
            first: s.rows.front().map_or(t, |(ts, _)| *ts),
        })
    }

    fn expires_at(&self, s: &DeviceSharingState) -> EventTime {
        s.rows.back().map_or(EventTime::MIN, |(t, _)| {
            t.saturating_add(self.config.window_ms)
        })
    }

    fn measure_columns(&self, alerts: &[DeviceSharingAlert]) -> Result<Vec<ArrayRef>> {
        Ok(vec![
            Arc::new(UInt64Array::from_iter_values(
                alerts.iter().map(|a| a.distinct),
            )),
            Arc::new(UInt64Array::from_iter_values(
                alerts.iter().map(|a| a.count),
            )),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                alerts.iter().map(|a| a.first),
            )),
        ])
    }

    fn encode_state(&self, s: &DeviceSharingState, out: &mut StateWriter) {
        out.bool(s.in_breach);
        out.u64(s.rows.len() as u64);
        for (t, card) in &s.rows {
            out.i64(*t);
            out.bytes(card);
        }
    }

    fn decode_state(&self, input: &mut StateReader<'_>) -> Result<DeviceSharingState> {
        let in_breach = input.bool()?;
        let n = input.u64()?;
        let mut s = DeviceSharingState {
            in_breach,
            ..Default::default()
        };
        for _ in 0..n {
            let t = input.i64()?;
            let bytes = input.bytes()?;
            let card: Arc<[u8]> = match s.cards.get_key_value(bytes) {
                Some((k, _)) => k.clone(),
                None => bytes.into(),
            };
            *s.cards.entry(card.clone()).or_insert(0) += 1;
            s.rows.push_back((t, card));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fraud::test_support::{tx, tx_schema, Tx, CARD, ID, KEY, TS};
    use crate::test_util::{rows_of, Harness};
    use weir_engine::operator::Operator;
    use weir_engine::state::OperatorState;

    fn config() -> DeviceSharingConfig {
        let mut c = DeviceSharingConfig::new(vec![KEY], TS, CARD);
        c.max_cards = 2;
        c.window_ms = 1_000;
        c.carry = vec![ID];
        c
    }

    #[test]
    fn distinct_cards_per_device_in_a_sliding_window() {
        let mut h = Harness::new(config().build(&tx_schema()).expect("rule"));
        h.batch(tx(&[
            // Device 9: cards 1, 1, 2 then 3 at 900: 3 distinct -> alert.
            Tx::new(0, 9).card(1).id(1),
            Tx::new(100, 9).card(1).id(2),
            Tx::new(500, 9).card(2).id(3),
            Tx::new(900, 9).card(3).id(4),
            // 950, card 3: still in breach. 1600: window [600, 1600] has
            // cards 3, 3, 5: the breach is over; 1700 card 6 -> 3 again.
            Tx::new(950, 9).card(3).id(5),
            Tx::new(1_600, 9).card(5).id(6),
            Tx::new(1_700, 9).card(6).id(7),
            // Device 8 has two cards only.
            Tx::new(0, 8).card(1).id(8),
            Tx::new(10, 8).card(2).id(9),
            Tx::new(20, 8).card(1).id(10),
        ]))
        .expect("batch");
        h.watermark(5_000).expect("wm");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["9,3,4,0,900,1700,4", "9,3,4,900,1700,1700,7"]
        );
        assert_eq!(h.op.keys_in_state(), 0);
    }

    #[test]
    fn duplicates_add_no_card_and_every_row_mode() {
        let rows = [
            Tx::new(0, 9).card(1),
            Tx::new(1, 9).card(2),
            Tx::new(2, 9).card(3).id(3),
            Tx::new(2, 9).card(3).id(3),
            Tx::new(3, 9).card(1).id(4),
        ];
        let mut h = Harness::new(config().build(&tx_schema()).expect("rule"));
        h.batch(tx(&rows)).expect("batch");
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["9,3,3,0,2,3,3"]);
        let mut c = config();
        c.alert_mode = AlertMode::EveryRow;
        let mut h = Harness::new(c.build(&tx_schema()).expect("rule"));
        h.batch(tx(&rows)).expect("batch");
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()).len(), 3);
    }

    #[test]
    fn snapshot_round_trip() {
        let rows = [
            Tx::new(0, 9).card(1),
            Tx::new(1, 9).card(2),
            Tx::new(2, 9).card(2),
            Tx::new(3, 9).card(3),
        ];
        let mut a = Harness::new(config().build(&tx_schema()).expect("rule"));
        a.batch(tx(&rows[..3])).expect("batch");
        a.watermark(1).expect("wm");
        let snap =
            a.op.snapshot()
                .expect("snapshot")
                .to_bytes()
                .expect("bytes");
        let mut b = Harness::new(config().build(&tx_schema()).expect("rule"));
        b.op.restore(OperatorState::from_bytes(&snap).expect("decode"))
            .expect("restore");
        b.batch(tx(&rows[3..])).expect("batch");
        b.end().expect("end");
        assert_eq!(rows_of(&b.take_batches()), vec!["9,3,4,0,3,3,0"]);
    }
}
