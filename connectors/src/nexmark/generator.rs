//! Row generation for the nexmark tables, straight into Arrow arrays.
//!
//! People and auctions (8% of events) come from the `nexmark` crate's
//! [`EventGenerator`]. Bids (92%) come from a generator here that
//! reproduces the crate's `Bid::new` bit for bit (same `rand` 0.8
//! `SmallRng`, same seeds, same draws; a test compares them) but computes
//! only the declared columns: the random draws stop after the last
//! declared field, and strings are written into the Arrow builders without
//! the crate's per-event `String`s.
//!
//! Event numbering follows the crate with one generator
//! (`num_event_generators = 1`) whatever the parallelism, so rows do not
//! depend on how many splits produce them: a table's rows are its events in
//! event-number order; split `k` of `n` produces rows `k, k+n, k+2n, …`.

use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, Int64Array, StringBuilder, TimestampMillisecondArray};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use nexmark::config::NexmarkConfig;
use nexmark::event::{Event, EventType};
use nexmark::EventGenerator;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use weir_engine::{Result, WeirError};

use super::options::{NexmarkOptions, NexmarkTable, RateShape};

/// The SQL type of a nexmark column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColType {
    BigInt,
    Str,
    Ts,
}

impl ColType {
    fn sql(self) -> &'static str {
        match self {
            ColType::BigInt => "BIGINT",
            ColType::Str => "STRING",
            ColType::Ts => "TIMESTAMP(3)",
        }
    }
    fn matches(self, dt: &DataType) -> bool {
        match self {
            ColType::BigInt => *dt == DataType::Int64,
            ColType::Str => *dt == DataType::Utf8,
            ColType::Ts => matches!(dt, DataType::Timestamp(TimeUnit::Millisecond, _)),
        }
    }
}

/// Columns of the bid table (Flink's Nexmark DDL names).
pub(crate) const BID_COLUMNS: [(&str, ColType); 7] = [
    ("auction", ColType::BigInt),
    ("bidder", ColType::BigInt),
    ("price", ColType::BigInt),
    ("channel", ColType::Str),
    ("url", ColType::Str),
    ("dateTime", ColType::Ts),
    ("extra", ColType::Str),
];

/// Columns of the person table.
pub(crate) const PERSON_COLUMNS: [(&str, ColType); 8] = [
    ("id", ColType::BigInt),
    ("name", ColType::Str),
    ("emailAddress", ColType::Str),
    ("creditCard", ColType::Str),
    ("city", ColType::Str),
    ("state", ColType::Str),
    ("dateTime", ColType::Ts),
    ("extra", ColType::Str),
];

/// Columns of the auction table.
pub(crate) const AUCTION_COLUMNS: [(&str, ColType); 10] = [
    ("id", ColType::BigInt),
    ("itemName", ColType::Str),
    ("description", ColType::Str),
    ("initialBid", ColType::BigInt),
    ("reserve", ColType::BigInt),
    ("dateTime", ColType::Ts),
    ("expires", ColType::Ts),
    ("seller", ColType::BigInt),
    ("category", ColType::BigInt),
    ("extra", ColType::Str),
];

/// The columns of a nexmark table.
pub(crate) fn table_columns(table: NexmarkTable) -> &'static [(&'static str, ColType)] {
    match table {
        NexmarkTable::Bid => &BID_COLUMNS,
        NexmarkTable::Person => &PERSON_COLUMNS,
        NexmarkTable::Auction => &AUCTION_COLUMNS,
    }
}

/// Maps the declared columns to the table's columns (indices into
/// [`table_columns`]), checking names and types.
pub(crate) fn resolve_columns(
    table: NexmarkTable,
    schema: &SchemaRef,
) -> std::result::Result<Vec<usize>, String> {
    let cols = table_columns(table);
    let list = || {
        cols.iter()
            .map(|(n, t)| format!("{n} {}", t.sql()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let name = f.name();
        let Some(i) = cols.iter().position(|(n, _)| n == name) else {
            let hint = cols
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(n, _)| format!("did you mean '{n}'? "))
                .unwrap_or_default();
            return Err(format!(
                "column '{name}' is not a column of the nexmark {} table ({hint}columns: {})",
                table.name(),
                list()
            ));
        };
        let ty = cols[i].1;
        if !ty.matches(f.data_type()) {
            return Err(format!(
                "column '{name}' is declared as {}, but the nexmark {} table's '{name}' is {}",
                f.data_type(),
                table.name(),
                ty.sql()
            ));
        }
        out.push(i);
    }
    Ok(out)
}

/// Where a table's events sit among all events: of every `den` events,
/// `count` starting at position `start` are of this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TypeLayout {
    start: u64,
    count: u64,
    den: u64,
}

impl TypeLayout {
    /// The layout of a table with the crate's default proportions (1:3:46).
    pub(crate) fn of(table: NexmarkTable) -> Self {
        let (p, a, b) = (1, 3, 46);
        let (start, count) = match table {
            NexmarkTable::Person => (0, p),
            NexmarkTable::Auction => (p, a),
            NexmarkTable::Bid => (p + a, b),
        };
        Self {
            start,
            count,
            den: p + a + b,
        }
    }

    /// The event number of this table's row `offset`.
    pub(crate) fn global(&self, offset: u64) -> u64 {
        offset / self.count * self.den + self.start + offset % self.count
    }

    /// How many of this table's rows have event numbers below `n`.
    pub(crate) fn rows_below(&self, n: u64) -> u64 {
        (n / self.den) * self.count + (n % self.den).saturating_sub(self.start).min(self.count)
    }
}

const HOT_AUCTION_RATIO: usize = 100;
const HOT_BIDDER_RATIO: usize = 100;

/// The generator configuration, with the crate's derived values computed
/// exactly as the crate computes them (f32 arithmetic included).
#[derive(Debug, Clone)]
pub(crate) struct Params {
    config: NexmarkConfig,
    base_time: u64,
    inter_event_delays: Vec<f32>,
    step_length: usize,
    events_per_epoch: usize,
    epoch_period: f32,
    proportion_denominator: usize,
}

impl Params {
    /// Validates the options for the generator and derives its parameters.
    pub(crate) fn new(opts: &NexmarkOptions) -> std::result::Result<Self, String> {
        if opts.rate_shape == RateShape::Sine && opts.next_rate > opts.first_rate {
            return Err(format!(
                "'events.next-rate' ({}) must not exceed 'events.first-rate' ({}) with \
                 'events.rate-shape' = 'sine' (use 'square', or swap the rates)",
                opts.next_rate, opts.first_rate
            ));
        }
        let config = NexmarkConfig {
            base_time: opts.base_time_ms,
            first_rate: opts.first_rate,
            next_rate: opts.next_rate,
            rate_shape: match opts.rate_shape {
                RateShape::Sine => nexmark::config::RateShape::Sine,
                RateShape::Square => nexmark::config::RateShape::Square,
            },
            rate_period: opts.rate_period_secs,
            num_event_generators: 1,
            ..NexmarkConfig::default()
        };
        let proportion_denominator =
            config.person_proportion + config.auction_proportion + config.bid_proportion;
        let generators = config.num_event_generators as f32;
        let rate_to_period = |r: usize| config.us_per_unit as f32 / r as f32;
        let mut inter_event_delays = Vec::new();
        if config.first_rate == config.next_rate {
            inter_event_delays.push(rate_to_period(config.first_rate) * generators);
        } else {
            match opts.rate_shape {
                RateShape::Square => {
                    inter_event_delays.push(rate_to_period(config.first_rate) * generators);
                    inter_event_delays.push(rate_to_period(config.next_rate) * generators);
                }
                RateShape::Sine => {
                    let mid = (config.first_rate + config.next_rate) as f64 / 2.0;
                    let amp = (config.first_rate - config.next_rate) as f64 / 2.0;
                    for i in 0..config.sine_approx_steps {
                        let r = (2.0 * std::f64::consts::PI * i as f64)
                            / config.sine_approx_steps as f64;
                        let rate = mid + amp * r.cos();
                        inter_event_delays.push(rate_to_period(rate.round() as usize) * generators);
                    }
                }
            }
        }
        let n = if opts.rate_shape == RateShape::Square {
            2
        } else {
            config.sine_approx_steps
        };
        let step_length = config.rate_period.div_ceil(n);
        let mut events_per_epoch = 0;
        let mut epoch_period = 0.0;
        if inter_event_delays.len() > 1 {
            for d in &inter_event_delays {
                let events = (step_length * 1_000_000) as f32 / d;
                if (events.round() as usize) <= config.out_of_order_group_size {
                    return Err(format!(
                        "'events.rate-period' of {} s is too short for the rates {} and {} \
                         (each step of the rate shape needs at least two events)",
                        opts.rate_period_secs, opts.first_rate, opts.next_rate
                    ));
                }
                events_per_epoch += events.round() as usize;
                epoch_period += (events * d) / 1000.0;
            }
        }
        Ok(Self {
            base_time: config.base_time,
            config,
            inter_event_delays,
            step_length,
            events_per_epoch,
            epoch_period,
            proportion_denominator,
        })
    }

    /// The crate configuration these parameters derive from.
    pub(crate) fn config(&self) -> &NexmarkConfig {
        &self.config
    }

    /// The event time of event `n` (the crate's `event_timestamp`).
    fn event_timestamp(&self, n: usize) -> u64 {
        if self.inter_event_delays.len() == 1 {
            return self.base_time
                + ((n as f32 * self.inter_event_delays[0]) / 1000.0).round() as u64;
        }
        let epoch = n / self.events_per_epoch;
        let mut event_i = n % self.events_per_epoch;
        let mut offset_in_epoch = 0.0;
        for d in &self.inter_event_delays {
            let events = (self.step_length * 1_000_000) as f32 / d;
            if self.config.out_of_order_group_size < events.round() as usize {
                let offset_in_cycle = event_i as f32 * d;
                return self.base_time
                    + (epoch as f32 * self.epoch_period
                        + offset_in_epoch
                        + offset_in_cycle / 1000.0)
                        .round() as u64;
            }
            event_i = event_i.saturating_sub(events.round() as usize);
            offset_in_epoch += (events * d) / 1000.0;
        }
        0
    }

    fn person_last_id(&self, event_id: usize) -> usize {
        let epoch = event_id / self.proportion_denominator;
        let offset =
            (event_id % self.proportion_denominator).min(self.config.person_proportion - 1);
        epoch * self.config.person_proportion + offset
    }

    fn person_next_id(&self, event_id: usize, rng: &mut SmallRng) -> usize {
        let people = self.person_last_id(event_id) + 1;
        let active = people.min(self.config.active_people);
        people - active + rng.gen_range(0..active + self.config.person_id_lead)
    }

    fn auction_last_id(&self, event_id: usize) -> usize {
        let c = &self.config;
        let mut epoch = event_id / self.proportion_denominator;
        let mut offset = event_id % self.proportion_denominator;
        if offset < c.person_proportion {
            epoch = epoch.saturating_sub(1);
            offset = c.auction_proportion - 1;
        } else if c.person_proportion + c.auction_proportion <= offset {
            offset = c.auction_proportion - 1;
        } else {
            offset -= c.person_proportion;
        }
        epoch * c.auction_proportion + offset
    }

    fn auction_next_id(&self, event_id: usize, rng: &mut SmallRng) -> usize {
        let max_auction = self.auction_last_id(event_id);
        let min_auction = max_auction.saturating_sub(self.config.in_flight_auctions);
        min_auction + rng.gen_range(0..max_auction - min_auction + 1 + self.config.auction_id_lead)
    }
}

/// The crate's `gen_price`.
fn gen_price(rng: &mut SmallRng) -> usize {
    (10.0_f32.powf(rng.gen::<f32>() * 6.0) * 100.0).round() as usize
}

/// The crate's `gen_string_with_delimiter`.
fn gen_string_with_delimiter(rng: &mut SmallRng, max: usize, delimiter: char) -> String {
    let len = rng.gen_range(3..max);
    (0..len)
        .map(|_| {
            if rng.gen_range(0..13) == 0 {
                delimiter
            } else {
                rng.gen_range(b'a'..=b'z') as char
            }
        })
        .collect()
}

/// The crate's `get_base_url`.
fn base_url(seed: u64) -> String {
    let mut rng = SmallRng::seed_from_u64(seed);
    let id0 = gen_string_with_delimiter(&mut rng, 5, '_');
    let id1 = gen_string_with_delimiter(&mut rng, 5, '_');
    let id2 = gen_string_with_delimiter(&mut rng, 5, '_');
    format!("https://www.nexmark.com/{id0}/{id1}/{id2}/item.htm?query=1")
}

/// The crate's `CHANNEL_URL_MAP` (10 000 channels), built once.
fn channel_url_map() -> &'static [(String, String)] {
    static MAP: OnceLock<Vec<(String, String)>> = OnceLock::new();
    MAP.get_or_init(|| {
        (0..10_000usize)
            .map(|i| {
                let mut url = base_url(i as u64);
                let mut rng = SmallRng::seed_from_u64(i as u64);
                if rng.gen_range(0..10) > 0 {
                    url.push_str("&channel_id=");
                    url.push_str(&i64::abs((i as i32).reverse_bits() as i64).to_string());
                }
                (format!("channel-{i}"), url)
            })
            .collect()
    })
}

/// An output column being filled.
enum Buf {
    I64(Vec<i64>),
    Ts(Vec<i64>, Option<Arc<str>>),
    Str(StringBuilder),
}

impl Buf {
    fn finish(self) -> ArrayRef {
        match self {
            Buf::I64(v) => Arc::new(Int64Array::from(v)),
            Buf::Ts(v, tz) => Arc::new(TimestampMillisecondArray::from(v).with_timezone_opt(tz)),
            Buf::Str(mut b) => Arc::new(b.finish()),
        }
    }
    #[inline]
    fn int(&mut self, v: i64) {
        if let Buf::I64(x) | Buf::Ts(x, _) = self {
            x.push(v);
        }
    }
    #[inline]
    fn str(&mut self, v: &str) {
        if let Buf::Str(b) = self {
            b.append_value(v);
        }
    }
}

/// Rows of one split of a nexmark table.
pub(crate) struct SplitGenerator {
    table: NexmarkTable,
    layout: TypeLayout,
    params: Arc<Params>,
    schema: SchemaRef,
    columns: Arc<[usize]>,
    /// Next row offset (within the table's rows) this split produces.
    next: u64,
    step: u64,
    /// Row offsets at or beyond this are not produced (`u64::MAX`: unbounded).
    end: u64,
    /// The crate's generator (person and auction tables), in step with `next`.
    crate_gen: Option<EventGenerator>,
    /// How far the bid draws must go: 0 none, 1 auction, 2 bidder, 3 price,
    /// 4 channel and url, 5 extra.
    bid_stage: u8,
    /// The extra string of the current bid (ASCII letters).
    scratch: Vec<u8>,
}

impl SplitGenerator {
    /// Split `split` of `splits` of the table described by `opts`, emitting
    /// the table columns `columns` as `schema`.
    pub(crate) fn new(
        opts: &NexmarkOptions,
        params: Arc<Params>,
        schema: SchemaRef,
        columns: Arc<[usize]>,
        split: usize,
        splits: usize,
    ) -> Self {
        let layout = TypeLayout::of(opts.table);
        let end = opts.row_count().unwrap_or(u64::MAX);
        let crate_gen = match opts.table {
            NexmarkTable::Bid => None,
            NexmarkTable::Person | NexmarkTable::Auction => {
                let kind = if opts.table == NexmarkTable::Person {
                    EventType::Person
                } else {
                    EventType::Auction
                };
                Some(
                    EventGenerator::new(params.config().clone())
                        .with_type_filter(kind)
                        .with_offset(split as u64)
                        .with_step(splits.max(1) as u64),
                )
            }
        };
        let bid_stage = columns
            .iter()
            .map(|c| match c {
                0 => 1,
                1 => 2,
                2 => 3,
                3 | 4 => 4,
                6 => 5,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        Self {
            table: opts.table,
            layout,
            params,
            schema,
            columns,
            next: split as u64,
            step: splits.max(1) as u64,
            end,
            crate_gen,
            bid_stage,
            scratch: Vec::new(),
        }
    }

    /// True when the split has produced all its rows.
    pub(crate) fn exhausted(&self) -> bool {
        self.next >= self.end
    }

    /// The offset (within the table's rows) of the next row.
    pub(crate) fn position(&self) -> u64 {
        self.next
    }

    /// Moves the split to row offset `offset` (a value of [`Self::position`]):
    /// bids are computed from their row number alone; persons and auctions
    /// come from the crate's stateful generator, which is run forward.
    pub(crate) fn seek(&mut self, offset: u64) -> Result<()> {
        if offset < self.next || !(offset - self.next).is_multiple_of(self.step) {
            return Err(WeirError::State(format!(
                "cannot seek a nexmark split from row {} to row {offset}",
                self.next
            )));
        }
        if self.crate_gen.is_none() {
            self.next = offset;
            return Ok(());
        }
        while self.next < offset {
            let rows = ((offset - self.next) / self.step).min(8192) as usize;
            if self.next_batch(rows, u64::MAX)?.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// The event number of the next row, if any.
    pub(crate) fn next_event_number(&self) -> Option<u64> {
        (!self.exhausted()).then(|| self.layout.global(self.next))
    }

    /// The next batch of at most `max_rows` rows whose event numbers are
    /// below `event_limit` (`None`: nothing to produce now).
    pub(crate) fn next_batch(
        &mut self,
        max_rows: usize,
        event_limit: u64,
    ) -> Result<Option<RecordBatch>> {
        let end = self.end.min(self.layout.rows_below(event_limit));
        if self.next >= end || max_rows == 0 {
            return Ok(None);
        }
        let available = (end - self.next).div_ceil(self.step);
        let rows = usize::try_from(available)
            .unwrap_or(usize::MAX)
            .min(max_rows);
        let cols = table_columns(self.table);
        let mut bufs: Vec<Buf> = self
            .columns
            .iter()
            .zip(self.schema.fields())
            .map(|(&c, f)| {
                let (name, ty) = cols[c];
                match ty {
                    ColType::BigInt => Buf::I64(Vec::with_capacity(rows)),
                    ColType::Ts => Buf::Ts(
                        Vec::with_capacity(rows),
                        match f.data_type() {
                            DataType::Timestamp(_, tz) => tz.clone(),
                            _ => None,
                        },
                    ),
                    ColType::Str => {
                        let bytes = match name {
                            "url" => 80,
                            "extra" => 80,
                            "description" => 100,
                            "channel" | "itemName" | "name" | "emailAddress" | "creditCard" => 20,
                            _ => 12,
                        };
                        Buf::Str(StringBuilder::with_capacity(rows, rows * bytes))
                    }
                }
            })
            .collect();
        match self.table {
            NexmarkTable::Bid => self.bids(rows, &mut bufs),
            NexmarkTable::Person | NexmarkTable::Auction => self.crate_rows(rows, &mut bufs)?,
        }
        let arrays: Vec<ArrayRef> = bufs.into_iter().map(Buf::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(Some(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &options,
        )?))
    }

    fn bids(&mut self, rows: usize, bufs: &mut [Buf]) {
        let p = self.params.clone();
        let c = p.config();
        let channels = if self.bid_stage >= 4 {
            channel_url_map()
        } else {
            &[]
        };
        let stage = self.bid_stage;
        for _ in 0..rows {
            let event_number = self.layout.global(self.next) as usize;
            self.next += self.step;
            let id = c.first_event_id + event_number;
            let ts = p.event_timestamp(c.first_event_number + event_number) as i64;
            let (mut auction, mut bidder, mut price) = (0usize, 0usize, 0usize);
            let (mut channel, mut url): (&str, &str) = ("", "");
            self.scratch.clear();
            if stage >= 1 {
                let rng = &mut SmallRng::seed_from_u64(id as u64);
                auction = if 0 < rng.gen_range(0..c.hot_auction_ratio) {
                    (p.auction_last_id(id) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
                } else {
                    p.auction_next_id(id, rng)
                };
                if stage >= 2 {
                    bidder = if 0 < rng.gen_range(0..c.hot_bidder_ratio) {
                        (p.person_last_id(id) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
                    } else {
                        p.person_next_id(id, rng)
                    };
                }
                if stage >= 3 {
                    price = gen_price(rng);
                }
                if stage >= 4 {
                    if rng.gen_range(0..c.hot_channel_ratio) > 0 {
                        let index = rng.gen_range(0..c.hot_channels.len());
                        channel = &c.hot_channels[index];
                        url = &c.hot_urls[index];
                    } else if let Some((ch, u)) = channels.choose(rng) {
                        channel = ch;
                        url = u;
                    }
                }
                if stage >= 5 {
                    let current_size = 8 + 8 + 8 + 8;
                    if current_size <= c.avg_bid_byte_size {
                        let desired = c.avg_bid_byte_size - current_size;
                        let delta = (desired + 2) / 5;
                        let size = desired - delta
                            + if delta == 0 {
                                0
                            } else {
                                rng.gen_range(0..2 * delta)
                            };
                        for _ in 0..size {
                            self.scratch.push(rng.gen_range(b'a'..=b'z'));
                        }
                    }
                }
            }
            for (buf, col) in bufs.iter_mut().zip(self.columns.iter()) {
                match col {
                    0 => buf.int((auction + c.first_auction_id) as i64),
                    1 => buf.int((bidder + c.first_person_id) as i64),
                    2 => buf.int(price as i64),
                    3 => buf.str(channel),
                    4 => buf.str(url),
                    5 => buf.int(ts),
                    // Only ASCII letters were pushed.
                    _ => buf.str(std::str::from_utf8(&self.scratch).unwrap_or_default()),
                }
            }
        }
    }

    fn crate_rows(&mut self, rows: usize, bufs: &mut [Buf]) -> Result<()> {
        let generator = self
            .crate_gen
            .as_mut()
            .ok_or_else(|| WeirError::Internal("nexmark: no event generator".into()))?;
        for _ in 0..rows {
            let event = generator
                .next()
                .ok_or_else(|| WeirError::Internal("nexmark: generator ended".into()))?;
            self.next += self.step;
            match event {
                Event::Person(p) => {
                    for (buf, col) in bufs.iter_mut().zip(self.columns.iter()) {
                        match col {
                            0 => buf.int(p.id as i64),
                            1 => buf.str(&p.name),
                            2 => buf.str(&p.email_address),
                            3 => buf.str(&p.credit_card),
                            4 => buf.str(&p.city),
                            5 => buf.str(&p.state),
                            6 => buf.int(p.date_time as i64),
                            _ => buf.str(&p.extra),
                        }
                    }
                }
                Event::Auction(a) => {
                    for (buf, col) in bufs.iter_mut().zip(self.columns.iter()) {
                        match col {
                            0 => buf.int(a.id as i64),
                            1 => buf.str(&a.item_name),
                            2 => buf.str(&a.description),
                            3 => buf.int(a.initial_bid as i64),
                            4 => buf.int(a.reserve as i64),
                            5 => buf.int(a.date_time as i64),
                            6 => buf.int(a.expires as i64),
                            7 => buf.int(a.seller as i64),
                            8 => buf.int(a.category as i64),
                            _ => buf.str(&a.extra),
                        }
                    }
                }
                Event::Bid(_) => {
                    return Err(WeirError::Internal(
                        "nexmark: the generator produced a bid for a person/auction table".into(),
                    ))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{Field, Int64Type, Schema, TimestampMillisecondType};

    use super::*;

    fn full_schema(table: NexmarkTable) -> SchemaRef {
        let fields: Vec<Field> = table_columns(table)
            .iter()
            .map(|(n, t)| {
                let dt = match t {
                    ColType::BigInt => DataType::Int64,
                    ColType::Str => DataType::Utf8,
                    ColType::Ts => DataType::Timestamp(TimeUnit::Millisecond, None),
                };
                Field::new(*n, dt, false)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The fast bid generator gives exactly the crate's bids, for constant,
    /// sine and square rates.
    #[test]
    fn bids_match_the_nexmark_crate() -> Result<()> {
        let mut configs = vec![NexmarkOptions::new(NexmarkTable::Bid)];
        let mut sine = NexmarkOptions::new(NexmarkTable::Bid);
        (sine.first_rate, sine.next_rate, sine.rate_period_secs) = (20_000, 5_000, 2);
        configs.push(sine);
        let mut square = NexmarkOptions::new(NexmarkTable::Bid);
        square.rate_shape = RateShape::Square;
        (square.first_rate, square.next_rate, square.rate_period_secs) = (1_000, 7_000, 2);
        configs.push(square);
        for opts in configs {
            let params = Arc::new(Params::new(&opts).map_err(WeirError::Config)?);
            let schema = full_schema(NexmarkTable::Bid);
            let columns: Arc<[usize]> = (0..7).collect();
            let mut g = SplitGenerator::new(&opts, params.clone(), schema, columns, 0, 1);
            let n = 30_000;
            let batch = g
                .next_batch(n, u64::MAX)?
                .ok_or_else(|| WeirError::Internal("no rows".into()))?;
            let reference = EventGenerator::new(params.config().clone())
                .with_type_filter(EventType::Bid)
                .take(n);
            for (i, event) in reference.enumerate() {
                let Event::Bid(b) = event else {
                    return Err(WeirError::Internal("not a bid".into()));
                };
                let int = |c: usize| batch.column(c).as_primitive::<Int64Type>().value(i);
                let s = |c: usize| batch.column(c).as_string::<i32>().value(i).to_string();
                assert_eq!(int(0), b.auction as i64, "auction of bid {i}");
                assert_eq!(int(1), b.bidder as i64, "bidder of bid {i}");
                assert_eq!(int(2), b.price as i64, "price of bid {i}");
                assert_eq!(s(3), b.channel, "channel of bid {i}");
                assert_eq!(s(4), b.url, "url of bid {i}");
                let ts = batch
                    .column(5)
                    .as_primitive::<TimestampMillisecondType>()
                    .value(i);
                assert_eq!(ts, b.date_time as i64, "dateTime of bid {i}");
                assert_eq!(s(6), b.extra, "extra of bid {i}");
            }
        }
        Ok(())
    }

    #[test]
    fn partial_columns_consume_no_more_draws_than_needed() -> Result<()> {
        let opts = NexmarkOptions::new(NexmarkTable::Bid);
        let params = Arc::new(Params::new(&opts).map_err(WeirError::Config)?);
        let schema = Arc::new(Schema::new(vec![
            Field::new("price", DataType::Int64, true),
            Field::new("auction", DataType::Int64, true),
        ]));
        let mut g = SplitGenerator::new(&opts, params.clone(), schema, Arc::from([2, 0]), 0, 1);
        let b = g
            .next_batch(100, u64::MAX)?
            .ok_or_else(|| WeirError::Internal("no rows".into()))?;
        let mut full = SplitGenerator::new(
            &opts,
            params,
            full_schema(NexmarkTable::Bid),
            (0..7).collect(),
            0,
            1,
        );
        let f = full
            .next_batch(100, u64::MAX)?
            .ok_or_else(|| WeirError::Internal("no rows".into()))?;
        assert_eq!(b.column(0).as_ref(), f.column(2).as_ref());
        assert_eq!(b.column(1).as_ref(), f.column(0).as_ref());
        let _: &Int64Array = b.column(0).as_primitive();
        Ok(())
    }

    #[test]
    fn layout_counts_rows_per_kind() {
        let bid = TypeLayout::of(NexmarkTable::Bid);
        assert_eq!(bid.global(0), 4);
        assert_eq!(bid.global(46), 54);
        assert_eq!(bid.rows_below(1000), 920);
        assert_eq!(bid.rows_below(54), 46);
        assert_eq!(bid.rows_below(55), 47);
        assert_eq!(TypeLayout::of(NexmarkTable::Person).rows_below(1000), 20);
        assert_eq!(TypeLayout::of(NexmarkTable::Auction).rows_below(1000), 60);
        assert_eq!(TypeLayout::of(NexmarkTable::Auction).rows_below(2), 1);
    }
}
