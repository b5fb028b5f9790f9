//! Options of the `transactions` connector, parsed once into
//! [`TransactionsOptions`].

use weir_engine::Result;

use crate::nexmark::options::{parse_base_time, DEFAULT_BASE_TIME_MS};
use crate::options::ConnectorOptions;
use crate::TableDescriptor;

/// The kinds of injected fraud, each the case of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FraudKind {
    /// A burst of transactions of one card (the velocity rule).
    Velocity,
    /// One amount far above the card's usual ones (the amount-spike rule).
    AmountSpike,
    /// A transaction far from home right after one at home, and one back
    /// home right after it (the impossible-travel rule).
    ImpossibleTravel,
    /// An amount below 1.00 immediately followed by one above 500 (Flink's
    /// tutorial rule).
    SmallThenLarge,
    /// One device used by five cards within a minute (the device-sharing
    /// rule).
    DeviceSharing,
}

impl FraudKind {
    /// Every kind, in label order.
    pub const ALL: [FraudKind; 5] = [
        FraudKind::Velocity,
        FraudKind::AmountSpike,
        FraudKind::ImpossibleTravel,
        FraudKind::SmallThenLarge,
        FraudKind::DeviceSharing,
    ];

    /// The value of the `fraud_label` column for this kind.
    pub fn label(self) -> &'static str {
        match self {
            FraudKind::Velocity => "velocity",
            FraudKind::AmountSpike => "amount_spike",
            FraudKind::ImpossibleTravel => "impossible_travel",
            FraudKind::SmallThenLarge => "small_then_large",
            FraudKind::DeviceSharing => "device_sharing",
        }
    }

    /// The kind of a `fraud_label` value.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.label() == label)
    }

    /// The option setting this kind's rate (`'fraud.<kind>.rate'`).
    pub fn rate_option(self) -> &'static str {
        match self {
            FraudKind::Velocity => "fraud.velocity.rate",
            FraudKind::AmountSpike => "fraud.amount-spike.rate",
            FraudKind::ImpossibleTravel => "fraud.impossible-travel.rate",
            FraudKind::SmallThenLarge => "fraud.small-then-large.rate",
            FraudKind::DeviceSharing => "fraud.device-sharing.rate",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Default number of accounts.
pub const DEFAULT_ACCOUNTS: u64 = 10_000;
/// Default cards per account.
pub const DEFAULT_CARDS_PER_ACCOUNT: u64 = 2;
/// Default number of merchants.
pub const DEFAULT_MERCHANTS: u64 = 10_000;
/// Default event time between consecutive transaction slots, ms.
pub const DEFAULT_EVENT_INTERVAL_MS: u64 = 10;
/// Default bound of the out-of-order delay, ms.
pub const DEFAULT_OUT_OF_ORDER_MAX_DELAY_MS: u64 = 5_000;
/// Default rate of injected cases of each kind, per transaction slot.
pub const DEFAULT_FRAUD_RATE: f64 = 0.001;
/// Default rows per batch.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// The option keys the `transactions` connector knows.
pub const TRANSACTIONS_OPTION_KEYS: [&str; 19] = [
    "events.num",
    "events.rate",
    "seed",
    "base-time",
    "accounts",
    "cards-per-account",
    "merchants",
    "event-interval",
    "out-of-order.rate",
    "out-of-order.max-delay",
    "duplicate.rate",
    "fraud.rate",
    "fraud.velocity.rate",
    "fraud.amount-spike.rate",
    "fraud.impossible-travel.rate",
    "fraud.small-then-large.rate",
    "fraud.device-sharing.rate",
    "splits",
    "batch.size",
];

/// Typed options of a `transactions` table. See the
/// [connector docs](super) for what the generator makes of them.
///
/// | option | meaning | default |
/// |---|---|---|
/// | `'events.num'` | transaction slots over all splits (≈ distinct rows; exactly, without fraud) | unbounded |
/// | `'events.rate'` | wall-clock pacing, slots per second over all splits | unpaced |
/// | `'seed'` | seed of every random choice | 0 |
/// | `'base-time'` | event time of slot 0: epoch ms, `YYYY-MM-DD HH:MM:SS[.fff]` (UTC) or `now` | `2026-01-01 00:00:00` |
/// | `'accounts'` | accounts | 10000 |
/// | `'cards-per-account'` | cards of each account (1 to 100) | 2 |
/// | `'merchants'` | merchants (at least 40: one city each at least) | 10000 |
/// | `'event-interval'` | event time between consecutive slots (ms, or with a unit: `10 ms`, `1 s`) | 10 ms |
/// | `'out-of-order.rate'` | fraction of rows emitted late | 0 |
/// | `'out-of-order.max-delay'` | bound of that delay, in event time (also of duplicates) | 5 s |
/// | `'duplicate.rate'` | fraction of rows emitted a second time, later | 0 |
/// | `'fraud.rate'` | cases of each kind per transaction slot | 0.001 |
/// | `'fraud.<kind>.rate'` | the same for one kind: `velocity`, `amount-spike`, `impossible-travel`, `small-then-large`, `device-sharing` | `'fraud.rate'` |
/// | `'splits'` | generator splits (account ranges) | the parallelism |
/// | `'batch.size'` | maximum rows per batch | 8192 |
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionsOptions {
    /// Transaction slots over all splits; `None`: unbounded.
    pub events_num: Option<u64>,
    /// Wall-clock pacing, slots per second over all splits; `None`: unpaced.
    pub events_rate: Option<f64>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Event time of slot 0, epoch milliseconds.
    pub base_time_ms: u64,
    /// Number of accounts.
    pub accounts: u64,
    /// Cards per account.
    pub cards_per_account: u64,
    /// Number of merchants.
    pub merchants: u64,
    /// Event time between consecutive slots, ms.
    pub event_interval_ms: u64,
    /// Fraction of rows delayed in emission order.
    pub out_of_order_rate: f64,
    /// Largest delay of a late or duplicated row, in event time (ms).
    pub out_of_order_max_delay_ms: u64,
    /// Fraction of rows emitted twice.
    pub duplicate_rate: f64,
    /// Cases per transaction slot, by [`FraudKind`] (in `FraudKind::ALL` order).
    pub fraud_rates: [f64; 5],
    /// Number of generator splits; `None`: one per subtask.
    pub splits: Option<usize>,
    /// Maximum rows per batch.
    pub batch_size: usize,
}

impl Default for TransactionsOptions {
    fn default() -> Self {
        Self {
            events_num: None,
            events_rate: None,
            seed: 0,
            base_time_ms: DEFAULT_BASE_TIME_MS,
            accounts: DEFAULT_ACCOUNTS,
            cards_per_account: DEFAULT_CARDS_PER_ACCOUNT,
            merchants: DEFAULT_MERCHANTS,
            event_interval_ms: DEFAULT_EVENT_INTERVAL_MS,
            out_of_order_rate: 0.0,
            out_of_order_max_delay_ms: DEFAULT_OUT_OF_ORDER_MAX_DELAY_MS,
            duplicate_rate: 0.0,
            fraud_rates: [DEFAULT_FRAUD_RATE; 5],
            splits: None,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

impl TransactionsOptions {
    /// The rate of injected cases of `kind` per transaction slot.
    pub fn fraud_rate(&self, kind: FraudKind) -> f64 {
        self.fraud_rates[kind.index()]
    }

    /// Sets the rate of every kind.
    pub fn with_fraud_rate(mut self, rate: f64) -> Self {
        self.fraud_rates = [rate; 5];
        self
    }

    /// Parses the options of `table` (unknown options are errors) and
    /// checks that the generator can work with them.
    pub fn parse(table: &TableDescriptor) -> Result<Self> {
        let o = ConnectorOptions::new(table, "transactions", &TRANSACTIONS_OPTION_KEYS, &[])?;
        let mut opts = TransactionsOptions {
            events_num: o.parse::<u64>("events.num", "a whole number of transaction slots")?,
            ..Default::default()
        };
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
        if let Some(seed) = o.parse::<u64>("seed", "a whole number")? {
            opts.seed = seed;
        }
        if let Some(raw) = o.get("base-time") {
            opts.base_time_ms = parse_base_time(raw).ok_or_else(|| {
                o.invalid(
                    "base-time",
                    raw,
                    "epoch milliseconds, 'YYYY-MM-DD HH:MM:SS' (UTC, not before 1970) or 'now'",
                )
            })?;
        }
        if let Some(n) = o.positive("accounts")? {
            opts.accounts = n;
        }
        if let Some(n) = o.positive("cards-per-account")? {
            opts.cards_per_account = n;
        }
        if let Some(n) = o.positive("merchants")? {
            opts.merchants = n;
        }
        if let Some(ms) = o.duration_ms("event-interval")? {
            if ms == 0 {
                return Err(o.invalid("event-interval", "0", "at least 1 ms"));
            }
            opts.event_interval_ms = ms;
        }
        if let Some(f) = o.fraction("out-of-order.rate")? {
            opts.out_of_order_rate = f;
        }
        if let Some(ms) = o.duration_ms("out-of-order.max-delay")? {
            opts.out_of_order_max_delay_ms = ms;
        }
        if let Some(f) = o.fraction("duplicate.rate")? {
            opts.duplicate_rate = f;
        }
        if let Some(f) = o.fraction("fraud.rate")? {
            opts.fraud_rates = [f; 5];
        }
        for kind in FraudKind::ALL {
            if let Some(f) = o.fraction(kind.rate_option())? {
                opts.fraud_rates[kind.index()] = f;
            }
        }
        opts.splits = o.positive_usize("splits")?;
        if let Some(b) = o.positive_usize("batch.size")? {
            opts.batch_size = b;
        }
        super::generator::Params::new(&opts).map_err(|m| o.error(m))?;
        Ok(opts)
    }
}
