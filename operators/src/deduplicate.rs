//! [`Deduplicate`]: Flink's event-time keep-first deduplication,
//! `ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime ASC) = 1`, insert-only.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, UInt64Array};
use arrow::datatypes::SchemaRef;
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use crate::key_map::KeyMap;
use crate::ordering::{
    advance_watermark, check_time_column, count_null_times, field, opt_i64, put_time_meta,
    read_time_meta, state_batch, with_keys, TimerQueue, Times,
};
use crate::row_store::{Loc, RowStore};
use crate::window::{int64_column, uint64_column};

/// The configuration of a [`Deduplicate`].
#[derive(Debug, Clone)]
pub struct DeduplicateConfig {
    /// The input schema (also the output schema).
    pub input_schema: SchemaRef,
    /// Input columns of the `PARTITION BY` key (empty: one key for all rows).
    pub key_columns: Vec<usize>,
    /// Input column of the time attribute in `ORDER BY` (`TIMESTAMP` or
    /// `BIGINT` epoch ms). Rows with a NULL time are dropped and counted as
    /// late.
    pub time_column: usize,
    /// Flink's `table.exec.state.ttl`, in event time: the state that a key
    /// was emitted is dropped once the watermark passes the emitted row's
    /// time plus this (ms). A later row of the key is then a first row
    /// again. `None` (or 0, as in Flink): kept forever.
    pub state_ttl_ms: Option<i64>,
}

impl DeduplicateConfig {
    /// A configuration without state TTL.
    pub fn new(input_schema: SchemaRef, key_columns: Vec<usize>, time_column: usize) -> Self {
        Self {
            input_schema,
            key_columns,
            time_column,
            state_ttl_ms: None,
        }
    }

    /// Checks column indices and types and the TTL.
    pub fn validate(&self) -> Result<()> {
        const WHAT: &str = "deduplication";
        check_time_column(&self.input_schema, self.time_column, WHAT)?;
        for &k in &self.key_columns {
            field(&self.input_schema, k, WHAT, "key column")?;
        }
        if let Some(ttl) = self.state_ttl_ms {
            if ttl < 0 {
                return Err(WeirError::Plan(format!(
                    "{WHAT}: state TTL must not be negative, got {ttl} ms"
                )));
            }
        }
        Ok(())
    }

    fn ttl(&self) -> Option<i64> {
        self.state_ttl_ms.filter(|t| *t > 0)
    }
}

/// Counters of a [`Deduplicate`] (they survive snapshot/restore).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeduplicateStats {
    /// First rows emitted.
    pub emitted_rows: u64,
    /// Rows dropped as duplicates: rows of a key that are not its first (by
    /// time, ties by arrival; a waiting row replaced by an earlier one counts
    /// when replaced) and rows of keys already emitted.
    pub duplicate_rows: u64,
    /// Rows dropped as late (time below the watermark); also counted in the
    /// `late_rows_dropped` metric, with rows of NULL time.
    pub late_rows: u64,
    /// Keys whose emitted state expired by the TTL.
    pub expired_keys: u64,
}

/// The state of one key.
#[derive(Debug, Clone, Copy)]
enum DedupKey {
    /// The earliest row so far, waiting for the watermark.
    Waiting {
        /// Its event time.
        ts: i64,
        /// Its arrival number (timer tiebreak and identity).
        seq: u64,
        /// The row.
        loc: Loc,
    },
    /// The first row was emitted; later rows are duplicates.
    Emitted {
        /// When the state expires (`None`: never).
        expires_at: Option<i64>,
    },
}

/// Keeps the first row per key by event time, emitting it once the watermark
/// passes it (insert-only output, the input schema).
///
/// Flink semantics (`RowTimeDeduplicateKeepFirstRowFunction`, used for
/// `ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime ASC) = 1` on an
/// insert-only input): a row with a time below the current watermark is late
/// (dropped, counted); a key keeps its earliest row (a later row replaces it
/// only with a strictly smaller time, so ties keep the first arrival); that
/// row is emitted when the watermark reaches its time, and from then on every
/// row of the key is dropped. Rows fire in order of time, ties by arrival,
/// before the watermark is forwarded. The emitted state expires by
/// [`DeduplicateConfig::state_ttl_ms`] (Flink's state TTL, here in event
/// time); rows still waiting never expire. At end of input every waiting row
/// is emitted.
pub struct Deduplicate {
    config: DeduplicateConfig,
    ttl: Option<i64>,
    keys: KeyMap<DedupKey>,
    store: RowStore,
    /// Waiting rows by (time, arrival).
    timers: TimerQueue<u32>,
    /// Emitted keys by expiry time.
    expiry: TimerQueue<u32>,
    watermark: Option<EventTime>,
    /// Next arrival number.
    next_seq: u64,
    stats: DeduplicateStats,
    warned_null_time: bool,
    /// Scratch: keys whose candidate is a row of the current batch.
    current: Vec<u32>,
}

impl fmt::Debug for Deduplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deduplicate")
            .field("keys", &self.keys.len())
            .field("waiting", &self.store.len())
            .field("stats", &self.stats)
            .field("watermark", &self.watermark)
            .finish()
    }
}

impl Deduplicate {
    /// A deduplication operator; fails for invalid columns or TTL.
    pub fn try_new(config: DeduplicateConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            ttl: config.ttl(),
            keys: KeyMap::try_new(
                &config.input_schema,
                config.key_columns.clone(),
                "deduplication",
            )?,
            store: RowStore::new(config.input_schema.clone()),
            timers: TimerQueue::new(),
            expiry: TimerQueue::new(),
            watermark: None,
            next_seq: 0,
            stats: DeduplicateStats::default(),
            warned_null_time: false,
            current: Vec::new(),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DeduplicateConfig {
        &self.config
    }

    /// The output schema (the input schema).
    pub fn output_schema(&self) -> SchemaRef {
        self.config.input_schema.clone()
    }

    /// The counters.
    pub fn stats(&self) -> DeduplicateStats {
        self.stats
    }

    /// Number of keys with state (waiting or emitted).
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Takes one row that is not late.
    fn accept(&mut self, key: &[u8], ts: i64, loc: Loc) -> Result<()> {
        let seq = self.next_seq;
        let (id, inserted) = self
            .keys
            .get_or_insert(key, || DedupKey::Waiting { ts, seq, loc });
        let state = self.keys.value_mut(id)?;
        if !inserted {
            match *state {
                DedupKey::Waiting {
                    ts: old_ts,
                    loc: old,
                    ..
                } if ts < old_ts => {
                    *state = DedupKey::Waiting { ts, seq, loc };
                    self.stats.duplicate_rows += 1;
                    if let Loc::Stored(r) = old {
                        self.store.release(r)?;
                    }
                }
                _ => {
                    self.stats.duplicate_rows += 1;
                    return Ok(());
                }
            }
        }
        self.next_seq += 1;
        self.timers.push(ts, seq, id);
        if matches!(loc, Loc::Current(_)) {
            self.current.push(id);
        }
        Ok(())
    }

    /// Moves the candidates that are rows of `batch` into the store.
    fn store_current(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut rows = Vec::new();
        let mut ids = Vec::new();
        for &id in &self.current {
            if let Some(DedupKey::Waiting {
                loc: Loc::Current(row),
                ..
            }) = self.keys.get(id)
            {
                rows.push(*row);
                ids.push(id);
            }
        }
        self.current.clear();
        let refs = self.store.insert(batch, &rows)?;
        for (id, r) in ids.into_iter().zip(refs) {
            if let Some(DedupKey::Waiting { loc, .. }) = self.keys.get_mut(id) {
                *loc = Loc::Stored(r);
            }
        }
        Ok(())
    }

    /// Emits the waiting rows with time `<= limit`, in (time, arrival) order.
    fn fire(&mut self, limit: EventTime, out: &mut Collector) -> Result<()> {
        let mut fired = Vec::new();
        while let Some((ts, seq, id)) = self.timers.pop_until(limit) {
            let Some(state) = self.keys.get_mut(id) else {
                continue;
            };
            match *state {
                DedupKey::Waiting { seq: s, loc, .. } if s == seq => {
                    fired.push(loc);
                    let expires_at = self.ttl.map(|t| ts.saturating_add(t));
                    *state = DedupKey::Emitted { expires_at };
                    if let Some(e) = expires_at {
                        self.expiry.push(e, u64::from(id), id);
                    }
                }
                _ => {} // replaced by an earlier row
            }
        }
        if fired.is_empty() {
            return Ok(());
        }
        out.collect(self.store.gather(None, &fired)?);
        self.stats.emitted_rows += fired.len() as u64;
        for loc in fired {
            if let Loc::Stored(r) = loc {
                self.store.release(r)?;
            }
        }
        Ok(())
    }

    /// Drops the emitted keys whose state expired: expiry time `< watermark`.
    fn expire(&mut self, watermark: EventTime) {
        let Some(limit) = watermark.checked_sub(1) else {
            return;
        };
        while let Some((at, _, id)) = self.expiry.pop_until(limit) {
            if let Some(DedupKey::Emitted {
                expires_at: Some(e),
            }) = self.keys.get(id)
            {
                if *e == at {
                    self.keys.remove(id);
                    self.stats.expired_keys += 1;
                }
            }
        }
    }
}

impl Operator for Deduplicate {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _out: &mut Collector,
    ) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        if let Some(w) = ctx.watermark {
            advance_watermark(&mut self.watermark, w);
        }
        let times = Times::read(&batch, self.config.time_column)?;
        let keys = self.keys.encode(&batch)?;
        let (mut nulls, mut late) = (0u64, 0u64);
        for row in 0..n {
            let Some(ts) = times.get(row) else {
                nulls += 1;
                continue;
            };
            if self.watermark.is_some_and(|w| ts < w) {
                late += 1;
                continue;
            }
            self.accept(keys.key(row), ts, Loc::Current(row as u32))?;
        }
        count_null_times(ctx, nulls, &mut self.warned_null_time);
        if late > 0 {
            self.stats.late_rows += late;
            ctx.metrics.add_late_dropped(late);
        }
        self.store_current(&batch)
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        _ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        let w = advance_watermark(&mut self.watermark, watermark);
        self.fire(w, out)?;
        self.expire(w);
        out.emit_watermark(watermark);
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext, out: &mut Collector) -> Result<()> {
        self.fire(EventTime::MAX, out)
    }

    fn snapshot(&mut self) -> Result<OperatorState> {
        let mut state = OperatorState::empty();
        put_time_meta(&mut state, &[("watermark", self.watermark)])?;
        let s = self.stats;
        state.put(
            "counters",
            state_batch(vec![(
                "value",
                Arc::new(UInt64Array::from(vec![
                    s.emitted_rows,
                    s.duplicate_rows,
                    s.late_rows,
                    s.expired_keys,
                ])),
            )])?,
        )?;
        let mut waiting: Vec<(i64, u64, Loc)> = Vec::new();
        let mut emitted_ids = Vec::new();
        let mut expires = Vec::new();
        for (id, k) in self.keys.iter() {
            match *k {
                DedupKey::Waiting { ts, seq, loc } => waiting.push((ts, seq, loc)),
                DedupKey::Emitted { expires_at } => {
                    emitted_ids.push(id);
                    expires.push(expires_at);
                }
            }
        }
        waiting.sort_by_key(|w| (w.1, w.0));
        let refs = waiting
            .iter()
            .map(|w| match w.2 {
                Loc::Stored(r) => Ok(r),
                Loc::Current(_) => Err(WeirError::Internal(
                    "deduplication: a waiting row is not stored".into(),
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        state.put("waiting", self.store.gather_stored(refs.into_iter())?)?;
        state.put(
            "emitted",
            with_keys(
                self.keys.state_fields(),
                self.keys.decode(&emitted_ids)?,
                vec![("expires_at", Arc::new(Int64Array::from(expires)))],
            )?,
        )?;
        Ok(state)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        [self.watermark] = read_time_meta(&state, ["watermark"])?;
        let c = uint64_column(state.require("counters")?, "value")?;
        if c.len() != 4 {
            return Err(WeirError::State(format!(
                "state table 'counters' has {} rows, expected 4",
                c.len()
            )));
        }
        let c = c.values();
        self.stats = DeduplicateStats {
            emitted_rows: c[0],
            duplicate_rows: c[1],
            late_rows: c[2],
            expired_keys: c[3],
        };
        let emitted = state.require("emitted")?;
        let expires = int64_column(emitted, "expires_at")?;
        let encoded = self.keys.encode_state(emitted)?;
        for i in 0..emitted.num_rows() {
            let expires_at = opt_i64(expires, i);
            let (id, _) = self
                .keys
                .get_or_insert(encoded.key(i), || DedupKey::Emitted { expires_at });
            if let Some(e) = expires_at {
                self.expiry.push(e, u64::from(id), id);
            }
        }
        let waiting = state.require("waiting")?.clone();
        let waiting = waiting
            .with_schema(self.config.input_schema.clone())
            .map_err(|e| WeirError::State(format!("state table 'waiting': {e}")))?;
        let times = Times::read(&waiting, self.config.time_column)?;
        let keys = self.keys.encode(&waiting)?;
        for row in 0..waiting.num_rows() {
            let ts = times
                .get(row)
                .ok_or_else(|| WeirError::State("a waiting row has a NULL time".into()))?;
            self.accept(keys.key(row), ts, Loc::Current(row as u32))?;
        }
        // Restored rows are not duplicates of anything.
        self.store_current(&waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::agg::{input, input_schema};
    use crate::test_util::{self, rows_of, Event, Harness, Step};

    fn op(ttl: Option<i64>) -> Harness<Deduplicate> {
        let mut c = DeduplicateConfig::new(input_schema(), vec![1], 0);
        c.state_ttl_ms = ttl;
        Harness::new(Deduplicate::try_new(c).expect("operator"))
    }

    fn rows(v: &[&str]) -> Event {
        Event::Rows(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn keeps_the_earliest_row_per_key_and_emits_it_when_the_watermark_passes() {
        let mut h = op(None);
        h.batch(input(&[
            (20, "a", 1),
            (10, "b", 2),
            (15, "a", 3),
            (15, "a", 4),
        ]))
        .expect("batch");
        assert!(h.take_events().is_empty());
        h.watermark(12).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![rows(&["10,b,2"]), Event::Watermark(12)]
        );
        // A row earlier than the candidate (and not late) replaces it.
        h.batch(input(&[(13, "a", 5), (30, "b", 6)]))
            .expect("batch");
        h.watermark(14).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![rows(&["13,a,5"]), Event::Watermark(14)]
        );
        h.batch(input(&[(14, "a", 7), (40, "c", 8)]))
            .expect("batch");
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["40,c,8"]);
        let s = h.op.stats();
        assert_eq!((s.emitted_rows, s.duplicate_rows, s.late_rows), (3, 5, 0));
    }

    #[test]
    fn ties_keep_the_first_arrival_and_rows_fire_in_time_order() {
        let mut h = op(None);
        h.batch(input(&[(5, "x", 1), (3, "y", 2), (5, "x", 3), (3, "z", 4)]))
            .expect("batch");
        h.watermark(5).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![rows(&["3,y,2", "3,z,4", "5,x,1"]), Event::Watermark(5)]
        );
    }

    #[test]
    fn rows_below_the_watermark_are_late_rows_at_it_are_not() {
        let mut h = op(None);
        h.watermark(100).expect("wm");
        h.take_events();
        h.batch(input(&[(99, "a", 1), (100, "b", 2), (101, "a", 3)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 1);
        assert_eq!(h.op.stats().late_rows, 1);
        // Flink: a timer at 100 registered at watermark 100 fires at the next watermark.
        h.watermark(101).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![rows(&["100,b,2", "101,a,3"]), Event::Watermark(101)]
        );
    }

    #[test]
    fn emitted_state_expires_after_the_ttl_in_event_time() {
        let mut h = op(Some(50));
        h.batch(input(&[(10, "a", 1)])).expect("batch");
        h.watermark(10).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["10,a,1"]);
        h.watermark(60).expect("wm"); // 10 + 50 is not passed yet
        h.batch(input(&[(60, "a", 2)])).expect("batch");
        assert_eq!(h.op.stats().duplicate_rows, 1);
        h.watermark(61).expect("wm");
        assert_eq!(h.op.keys(), 0);
        assert_eq!(h.op.stats().expired_keys, 1);
        h.batch(input(&[(61, "a", 3)])).expect("batch");
        h.watermark(70).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["61,a,3"]);
    }

    #[test]
    fn no_key_columns_keeps_one_row_overall() {
        let c = DeduplicateConfig::new(input_schema(), vec![], 0);
        let mut h = Harness::new(Deduplicate::try_new(c).expect("operator"));
        h.batch(input(&[(7, "a", 1), (3, "b", 2), (5, "c", 3)]))
            .expect("batch");
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["3,b,2"]);
    }

    #[test]
    fn invalid_configs_are_plan_errors() {
        assert!(Deduplicate::try_new(DeduplicateConfig::new(input_schema(), vec![1], 1)).is_err());
        assert!(Deduplicate::try_new(DeduplicateConfig::new(input_schema(), vec![9], 0)).is_err());
        let mut c = DeduplicateConfig::new(input_schema(), vec![1], 0);
        c.state_ttl_ms = Some(-5);
        assert!(Deduplicate::try_new(c).is_err());
    }

    fn replay(
        ttl: Option<i64>,
        steps: &[Step],
        cut: Option<usize>,
    ) -> (Vec<Event>, DeduplicateStats) {
        let make = || {
            let mut c = DeduplicateConfig::new(input_schema(), vec![1], 0);
            c.state_ttl_ms = ttl;
            Deduplicate::try_new(c).expect("operator")
        };
        let (events, h) = test_util::replay(make, steps, cut);
        (events, h.op.stats())
    }

    #[test]
    fn snapshot_round_trip_gives_identical_output() {
        let steps = vec![
            Ok(input(&[
                (10, "a", 1),
                (12, "b", 2),
                (9, "a", 3),
                (30, "c", 4),
            ])),
            Ok(input(&[(11, "b", 5), (25, "d", 6), (9, "a", 7)])),
            Err(11),
            Ok(input(&[
                (10, "e", 8),
                (20, "c", 9),
                (15, "d", 10),
                (40, "a", 11),
            ])),
            Err(26),
            Ok(input(&[(60, "b", 12), (27, "c", 13), (90, "f", 14)])),
            Err(80),
            Ok(input(&[(85, "a", 15), (95, "f", 16), (100, "b", 17)])),
        ];
        for ttl in [None, Some(30)] {
            let (expected, stats) = replay(ttl, &steps, None);
            assert!(
                stats.emitted_rows > 4 && stats.duplicate_rows > 2,
                "{stats:?}"
            );
            for cut in 1..steps.len() {
                let (got, got_stats) = replay(ttl, &steps, Some(cut));
                assert_eq!(got, expected, "ttl {ttl:?} cut at {cut}");
                assert_eq!(got_stats, stats);
            }
        }
    }
}
