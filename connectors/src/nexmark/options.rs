//! Options of the `nexmark` connector, parsed once into [`NexmarkOptions`].

use std::time::{SystemTime, UNIX_EPOCH};

use weir_engine::Result;

use crate::format::text::parse_timestamp_nanos;
use crate::options::ConnectorOptions;
use crate::TableDescriptor;

/// Which Nexmark event kind a table holds (`'nexmark.table'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NexmarkTable {
    /// `'bid'`: bids (46 of every 50 events).
    Bid,
    /// `'person'`: new people (1 of every 50 events).
    Person,
    /// `'auction'`: new auctions (3 of every 50 events).
    Auction,
}

impl NexmarkTable {
    /// The option value naming this table.
    pub fn name(self) -> &'static str {
        match self {
            NexmarkTable::Bid => "bid",
            NexmarkTable::Person => "person",
            NexmarkTable::Auction => "auction",
        }
    }
}

/// How the generator's event rate moves between `first_rate` and
/// `next_rate` (event-time spacing only; `'events.rate-shape'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateShape {
    /// A sine wave over the rate period (10 steps).
    Sine,
    /// Half the period at the first rate, half at the next.
    Square,
}

/// The default base time: 2026-01-01 00:00:00 UTC, so runs are reproducible.
pub const DEFAULT_BASE_TIME_MS: u64 = 1_767_225_600_000;

/// Default rows per batch.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// Default generator event rate (events per second of *event time*): the
/// nexmark crate's default, 10 000, i.e. 0.1 ms of event time per event.
pub const DEFAULT_FIRST_RATE: usize = 10_000;

/// Default rate period of the rate shape, in seconds (the crate's default).
pub const DEFAULT_RATE_PERIOD_SECS: usize = 600;

/// The option keys the `nexmark` connector knows.
pub const NEXMARK_OPTION_KEYS: [&str; 10] = [
    "nexmark.table",
    "events.num",
    "events.rate",
    "events.base-time",
    "events.first-rate",
    "events.next-rate",
    "events.rate-shape",
    "events.rate-period",
    "splits",
    "batch.size",
];

/// Typed options of a `nexmark` table.
///
/// | option | meaning | default |
/// |---|---|---|
/// | `'nexmark.table'` | `bid`, `person` or `auction` | required |
/// | `'events.num'` | total events over all kinds, as Nexmark counts them (a table gets its share: 46/50 bids, 3/50 auctions, 1/50 people) | unbounded |
/// | `'events.rate'` | wall-clock throttle, events per second over all splits (all kinds counted) | unthrottled |
/// | `'events.base-time'` | event time of event 0: epoch millis, `YYYY-MM-DD HH:MM:SS[.fff]` (UTC) or `now` | `2026-01-01 00:00:00` |
/// | `'events.first-rate'` | generator rate in events per second of event time (inter-event delay = 1/rate) | 10000 |
/// | `'events.next-rate'` | second rate of the rate shape | = first rate |
/// | `'events.rate-shape'` | `sine` or `square` (only matters when the rates differ) | `sine` |
/// | `'events.rate-period'` | period of the rate shape, seconds | 600 |
/// | `'splits'` | generator splits; split k of n generates the table's rows k, k+n, k+2n… | the parallelism |
/// | `'batch.size'` | maximum rows per batch | 8192 |
#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkOptions {
    /// The event kind of the table.
    pub table: NexmarkTable,
    /// Total events over all kinds; `None`: unbounded.
    pub events_num: Option<u64>,
    /// Wall-clock throttle in events per second over all splits; `None`: unthrottled.
    pub events_rate: Option<f64>,
    /// Event time of event number 0, epoch milliseconds.
    pub base_time_ms: u64,
    /// Generator rate (events per second of event time).
    pub first_rate: usize,
    /// Second generator rate of the rate shape.
    pub next_rate: usize,
    /// Shape of the generator rate between `first_rate` and `next_rate`.
    pub rate_shape: RateShape,
    /// Period of the rate shape in seconds.
    pub rate_period_secs: usize,
    /// Number of generator splits; `None`: one per subtask.
    pub splits: Option<usize>,
    /// Maximum rows per batch.
    pub batch_size: usize,
}

impl NexmarkOptions {
    /// Defaults for `table`: unbounded, unthrottled, base time
    /// 2026-01-01 00:00:00 UTC, 10 000 events per second of event time.
    pub fn new(table: NexmarkTable) -> Self {
        Self {
            table,
            events_num: None,
            events_rate: None,
            base_time_ms: DEFAULT_BASE_TIME_MS,
            first_rate: DEFAULT_FIRST_RATE,
            next_rate: DEFAULT_FIRST_RATE,
            rate_shape: RateShape::Sine,
            rate_period_secs: DEFAULT_RATE_PERIOD_SECS,
            splits: None,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// Parses the options of `table` (unknown options are errors).
    pub fn parse(table: &TableDescriptor) -> Result<Self> {
        let o = ConnectorOptions::new(table, "nexmark", &NEXMARK_OPTION_KEYS, &[])?;
        let kind = match o.choice("nexmark.table", &["bid", "person", "auction"])? {
            Some("person") => NexmarkTable::Person,
            Some("auction") => NexmarkTable::Auction,
            Some(_) => NexmarkTable::Bid,
            None => {
                o.required("nexmark.table")?;
                NexmarkTable::Bid
            }
        };
        let mut opts = NexmarkOptions::new(kind);
        opts.events_num = o.parse::<u64>("events.num", "a whole number of events")?;
        if let Some(raw) = o.get("events.rate") {
            let rate: f64 = o
                .parse("events.rate", "a positive number of events per second")?
                .unwrap_or(0.0);
            if !(rate.is_finite() && rate > 0.0) {
                return Err(o.invalid(
                    "events.rate",
                    raw,
                    "a positive number of events per second",
                ));
            }
            opts.events_rate = Some(rate);
        }
        if let Some(raw) = o.get("events.base-time") {
            opts.base_time_ms = parse_base_time(raw).ok_or_else(|| {
                o.invalid(
                    "events.base-time",
                    raw,
                    "epoch milliseconds, 'YYYY-MM-DD HH:MM:SS' (UTC, not before 1970) or 'now'",
                )
            })?;
        }
        if let Some(r) = o.positive_usize("events.first-rate")? {
            opts.first_rate = r;
            opts.next_rate = r;
        }
        if let Some(r) = o.positive_usize("events.next-rate")? {
            opts.next_rate = r;
        }
        opts.rate_shape = match o.choice("events.rate-shape", &["sine", "square"])? {
            Some("square") => RateShape::Square,
            _ => RateShape::Sine,
        };
        if let Some(p) = o.positive_usize("events.rate-period")? {
            opts.rate_period_secs = p;
        }
        opts.splits = o.positive_usize("splits")?;
        if let Some(b) = o.positive_usize("batch.size")? {
            opts.batch_size = b;
        }
        super::generator::Params::new(&opts).map_err(|m| o.error(m))?;
        Ok(opts)
    }

    /// Number of rows of this table among `events.num` events (`None`: unbounded).
    pub fn row_count(&self) -> Option<u64> {
        self.events_num
            .map(|n| super::generator::TypeLayout::of(self.table).rows_below(n))
    }
}

/// Parses a base time: epoch millis, a UTC date-time, or `now` (also
/// used by the `transactions` connector).
pub(crate) fn parse_base_time(raw: &str) -> Option<u64> {
    let t = raw.trim();
    if t.eq_ignore_ascii_case("now") {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_millis();
        return u64::try_from(ms).ok();
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    let nanos = parse_timestamp_nanos(t)?;
    u64::try_from(nanos.div_euclid(1_000_000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_time_forms() {
        assert_eq!(parse_base_time("0"), Some(0));
        assert_eq!(
            parse_base_time("2026-01-01 00:00:00"),
            Some(DEFAULT_BASE_TIME_MS)
        );
        assert_eq!(
            parse_base_time("2026-01-01T00:00:01.5Z"),
            Some(DEFAULT_BASE_TIME_MS + 1500)
        );
        assert!(parse_base_time("now").is_some_and(|t| t > DEFAULT_BASE_TIME_MS / 2));
        assert_eq!(parse_base_time("1960-01-01 00:00:00"), None);
        assert_eq!(parse_base_time("yesterday"), None);
    }
}
