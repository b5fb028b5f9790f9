//! Row generation for the `transactions` table: the clean schedule, the
//! injected cases, and the out-of-order and duplicate perturbation of the
//! emission order. The model is described in the [connector docs](super).
//!
//! Every random choice is a hash of the seed and of what it is about (an
//! account, a card, a cycle, a transaction id), never the state of a
//! running generator, so a row is the same whichever split makes it, and
//! the union of the splits does not depend on their number.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::f64::consts::PI;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringBuilder, TimestampMillisecondArray};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use weir_engine::{Result, WeirError};

use super::options::{FraudKind, TransactionsOptions};

/// Event time one episode of a card covers at least, ms: an episode holds
/// at most one injected case per account.
pub const EPISODE_MS: i64 = 300_000;
/// Amount-spike cases of one account are at least this many episodes apart.
pub const SPIKE_SPACING_EPISODES: u64 = 64;
/// An amount-spike case needs this many cycles of history before it.
pub const SPIKE_MIN_CYCLES: u64 = 30;
/// Accounts per device-sharing group: a case's device is used by one card
/// of each.
pub const DEVICE_GROUP: u64 = 5;
/// Transactions in a velocity burst.
pub const VELOCITY_BURST: u64 = 8;
/// Largest spacing of the rows of a velocity burst, ms (so a burst spans at
/// most 16 s).
pub const VELOCITY_SPACING_MS: i64 = 2_000;
/// After a velocity burst the card has no transaction for this long, ms.
pub const VELOCITY_QUIET_MS: i64 = 90_000;
/// Largest spacing of the rows of a device-sharing case, ms (so a case
/// spans at most 50 s).
pub const DEVICE_SPACING_MS: i64 = 10_000;
/// Device ids of injected device-sharing cases are this plus the case id.
pub const FRAUD_DEVICE_BASE: i64 = 1 << 62;
/// Transaction ids per slot: slot `n`'s clean row is `16 n`, rows of a case
/// attached to it `16 n + 1 …`.
pub const TX_IDS_PER_SLOT: i64 = 16;
/// Merchants lie within this distance of their city's centre, km.
pub const CITY_RADIUS_KM: f64 = 15.0;
/// A far city of an impossible-travel case is at least this far from home, km.
pub const FAR_CITY_KM: f64 = 2_000.0;

/// The cities merchants are in (latitude, longitude).
pub const CITIES: [(f64, f64); 40] = [
    (40.7128, -74.0060),  // New York
    (34.0522, -118.2437), // Los Angeles
    (41.8781, -87.6298),  // Chicago
    (43.6532, -79.3832),  // Toronto
    (19.4326, -99.1332),  // Mexico City
    (-23.5505, -46.6333), // São Paulo
    (-34.6037, -58.3816), // Buenos Aires
    (-12.0464, -77.0428), // Lima
    (4.7110, -74.0721),   // Bogotá
    (51.5074, -0.1278),   // London
    (48.8566, 2.3522),    // Paris
    (52.5200, 13.4050),   // Berlin
    (40.4168, -3.7038),   // Madrid
    (41.9028, 12.4964),   // Rome
    (52.3676, 4.9041),    // Amsterdam
    (59.3293, 18.0686),   // Stockholm
    (52.2297, 21.0122),   // Warsaw
    (41.0082, 28.9784),   // Istanbul
    (55.7558, 37.6173),   // Moscow
    (30.0444, 31.2357),   // Cairo
    (6.5244, 3.3792),     // Lagos
    (-1.2921, 36.8219),   // Nairobi
    (-26.2041, 28.0473),  // Johannesburg
    (25.2048, 55.2708),   // Dubai
    (19.0760, 72.8777),   // Mumbai
    (28.7041, 77.1025),   // Delhi
    (13.7563, 100.5018),  // Bangkok
    (1.3521, 103.8198),   // Singapore
    (-6.2088, 106.8456),  // Jakarta
    (22.3193, 114.1694),  // Hong Kong
    (31.2304, 121.4737),  // Shanghai
    (39.9042, 116.4074),  // Beijing
    (37.5665, 126.9780),  // Seoul
    (35.6762, 139.6503),  // Tokyo
    (14.5995, 120.9842),  // Manila
    (-33.8688, 151.2093), // Sydney
    (-37.8136, 144.9631), // Melbourne
    (-36.8485, 174.7633), // Auckland
    (49.2827, -123.1207), // Vancouver
    (21.3069, -157.8583), // Honolulu
];

const NC: u64 = CITIES.len() as u64;
const KM_PER_DEGREE: f64 = 111.195;

// Hash tags: one per kind of random choice.
const T_HOME: u64 = 1;
const T_MEAN: u64 = 2;
const T_PERM: u64 = 3;
const T_JITTER: u64 = 4;
const T_MERCHANT: u64 = 5;
const T_MERCHANT_POS: u64 = 6;
const T_DRAW: u64 = 7;
const T_CARD: u64 = 8;
const T_GROUP: u64 = 9;
const T_GROUP_CARD: u64 = 10;
const T_SPIKE_PHASE: u64 = 11;
const T_CASE: u64 = 12;
const T_OOO: u64 = 13;
const T_DUP: u64 = 14;

#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` from a hash.
#[inline]
fn unit(u: u64) -> f64 {
    (u >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The `i`-th of the 24 orders of four things.
fn perm4(i: u64) -> [usize; 4] {
    let mut items = vec![0usize, 1, 2, 3];
    let mut i = (i % 24) as usize;
    let mut out = [0usize; 4];
    for (slot, f) in out.iter_mut().zip([6usize, 2, 1, 1]) {
        let idx = i / f;
        i %= f;
        *slot = items.remove(idx.min(items.len() - 1));
    }
    out
}

/// The great-circle distance in km (the same formula as the operators'
/// `haversine_km`, radius 6371 km).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (p1, p2) = (a.0.to_radians(), b.0.to_radians());
    let dl = (b.1 - a.1).to_radians();
    let h = ((p2 - p1) / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// The columns of the table, with their SQL types.
pub(crate) const COLUMNS: [(&str, ColType); 12] = [
    ("tx_id", ColType::BigInt),
    ("account_id", ColType::BigInt),
    ("card_id", ColType::BigInt),
    ("device_id", ColType::BigInt),
    ("merchant_id", ColType::BigInt),
    ("amount", ColType::Double),
    ("merchant_lat", ColType::Double),
    ("merchant_lon", ColType::Double),
    ("seq", ColType::BigInt),
    ("event_time", ColType::Ts),
    ("fraud_label", ColType::Str),
    ("fraud_case", ColType::BigInt),
];

/// The SQL type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColType {
    BigInt,
    Double,
    Str,
    Ts,
}

impl ColType {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            ColType::BigInt => "BIGINT",
            ColType::Double => "DOUBLE",
            ColType::Str => "STRING",
            ColType::Ts => "TIMESTAMP(3)",
        }
    }

    pub(crate) fn arrow(self) -> DataType {
        match self {
            ColType::BigInt => DataType::Int64,
            ColType::Double => DataType::Float64,
            ColType::Str => DataType::Utf8,
            ColType::Ts => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }

    fn matches(self, dt: &DataType) -> bool {
        match self {
            ColType::Ts => matches!(dt, DataType::Timestamp(TimeUnit::Millisecond, _)),
            other => *dt == other.arrow(),
        }
    }
}

/// Maps the declared columns to the table's (indices into [`COLUMNS`]).
pub(crate) fn resolve_columns(schema: &SchemaRef) -> std::result::Result<Vec<usize>, String> {
    let list = || {
        COLUMNS
            .iter()
            .map(|(n, t)| format!("{n} {}", t.sql()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let name = f.name();
        let Some(i) = COLUMNS.iter().position(|(n, _)| n == name) else {
            let hint = COLUMNS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(n, _)| format!("did you mean '{n}'? "))
                .unwrap_or_default();
            return Err(format!(
                "column '{name}' is not a column of the transactions table ({hint}columns: {})",
                list()
            ));
        };
        if !COLUMNS[i].1.matches(f.data_type()) {
            return Err(format!(
                "column '{name}' is declared as {}, but the transactions table's '{name}' is {}",
                f.data_type(),
                COLUMNS[i].1.sql()
            ));
        }
        out.push(i);
    }
    Ok(out)
}

/// What an account does in one episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Draw {
    /// Nothing injected.
    Clean,
    /// A case of this kind on this card (index within the account).
    Own(FraudKind, u64),
    /// This card takes part in its group's device-sharing case.
    Shared(u64),
}

/// The generator's derived parameters, shared by all splits.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    seed: u64,
    base: i64,
    iv: i64,
    accounts: u64,
    cards: u64,
    /// Slots per cycle: accounts × cards.
    per_cycle: u64,
    /// Event time of a cycle: per_cycle × iv.
    period: i64,
    /// Cycles per episode.
    episode: u64,
    merchants: u64,
    end: Option<u64>,
    /// Per account-episode probability of a case of each kind; the
    /// amount-spike entry applies to eligible episodes only, the
    /// device-sharing entry per group-episode.
    p: [f64; 5],
    ooo_rate: f64,
    dup_rate: f64,
    max_delay: i64,
    /// Per city, the cities at least FAR_CITY_KM away.
    far: Vec<Vec<u8>>,
}

impl Params {
    /// Validates the options for the generator and derives its parameters.
    pub(crate) fn new(o: &TransactionsOptions) -> std::result::Result<Self, String> {
        if o.cards_per_account > 100 {
            return Err(format!(
                "'cards-per-account' = {} is too many: at most 100",
                o.cards_per_account
            ));
        }
        if o.merchants < NC {
            return Err(format!(
                "'merchants' = {} is too few: at least {NC} (one per city)",
                o.merchants
            ));
        }
        let per_cycle = o
            .accounts
            .checked_mul(o.cards_per_account)
            .filter(|k| *k < (1 << 40))
            .ok_or_else(|| "'accounts' × 'cards-per-account' is too large".to_string())?;
        let iv = i64::try_from(o.event_interval_ms)
            .ok()
            .filter(|v| *v > 0 && *v < (1 << 32))
            .ok_or_else(|| "'event-interval' must be between 1 ms and 49 days".to_string())?;
        let period = (per_cycle as i64).checked_mul(iv).ok_or_else(|| {
            "'accounts' × 'cards-per-account' × 'event-interval' is too large".to_string()
        })?;
        let episode = (EPISODE_MS as u64).div_ceil(period as u64).max(1);
        let base =
            i64::try_from(o.base_time_ms).map_err(|_| "'base-time' is too large".to_string())?;
        let max_delay = i64::try_from(o.out_of_order_max_delay_ms)
            .ok()
            .filter(|d| *d < (1 << 40))
            .ok_or_else(|| "'out-of-order.max-delay' is too large".to_string())?;
        if o.out_of_order_rate > 0.0 && max_delay == 0 {
            return Err(
                "'out-of-order.rate' needs a positive 'out-of-order.max-delay'".to_string(),
            );
        }
        let cards = o.cards_per_account;
        let per_episode = (cards * episode) as f64;
        let mut p = [0.0; 5];
        for kind in FraudKind::ALL {
            p[kind.index()] = o.fraud_rate(kind) * per_episode;
        }
        p[FraudKind::AmountSpike.index()] *= SPIKE_SPACING_EPISODES as f64;
        p[FraudKind::DeviceSharing.index()] *= DEVICE_GROUP as f64;
        if p.iter().any(|x| *x > 0.0) {
            let gap = (per_cycle as i64 - (DEVICE_GROUP * cards) as i64 + 1) * iv;
            if gap <= 1_000 {
                return Err(format!(
                    "injecting fraud needs more than 1 s of event time between the cycles of a \
                     group of {DEVICE_GROUP} accounts: ('accounts' - {DEVICE_GROUP}) × \
                     'cards-per-account' × 'event-interval' is {} ms; raise 'accounts' or \
                     'event-interval', or set 'fraud.rate' = '0'",
                    gap - iv
                ));
            }
        }
        let own: f64 = [
            FraudKind::Velocity,
            FraudKind::AmountSpike,
            FraudKind::ImpossibleTravel,
            FraudKind::SmallThenLarge,
        ]
        .iter()
        .map(|k| p[k.index()])
        .sum();
        if own > 1.0 || p[FraudKind::DeviceSharing.index()] > 1.0 {
            let max = 1.0 / (per_episode * (3 + SPIKE_SPACING_EPISODES) as f64);
            return Err(format!(
                "the fraud rates are too high for {} slots per account episode: at most one \
                 case fits an account's episode, and amount spikes come at most every \
                 {SPIKE_SPACING_EPISODES} episodes; keep each rate at or below about {max:.6}",
                cards * episode
            ));
        }
        let far = CITIES
            .iter()
            .map(|&home| {
                CITIES
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| distance_km(home, c) >= FAR_CITY_KM + 2.0 * CITY_RADIUS_KM)
                    .map(|(i, _)| i as u8)
                    .collect()
            })
            .collect();
        Ok(Self {
            seed: o.seed,
            base,
            iv,
            accounts: o.accounts,
            cards,
            per_cycle,
            period,
            episode,
            merchants: o.merchants,
            end: o.events_num,
            p,
            ooo_rate: o.out_of_order_rate,
            dup_rate: o.duplicate_rate,
            max_delay,
            far,
        })
    }

    /// Event time of one cycle (every card transacts once per cycle), ms.
    pub(crate) fn period_ms(&self) -> i64 {
        self.period
    }

    #[inline]
    fn h(&self, tag: u64, x: u64, y: u64) -> u64 {
        mix(mix(mix(self.seed ^ tag.wrapping_mul(0xd6e8_feb8_6659_fd93)) ^ x) ^ y)
    }

    #[inline]
    fn time(&self, slot: u64) -> i64 {
        self.base
            .saturating_add((slot as i64).saturating_mul(self.iv))
    }

    #[inline]
    fn within_end(&self, slot: u64) -> bool {
        self.end.is_none_or(|n| slot < n)
    }

    fn home_city(&self, account: u64) -> u64 {
        self.h(T_HOME, account, 0) % NC
    }

    /// A card's mean amount: log-uniform in [10, 300).
    fn card_mean(&self, card: u64) -> f64 {
        10.0 * 30f64.powf(unit(self.h(T_MEAN, card, 0)))
    }

    /// The clean amount of `card` in cycle `j`, in cents: within ±50 % of
    /// the card's mean, every block of four cycles spread over the band.
    fn clean_cents(&self, card: u64, j: u64) -> i64 {
        const LEVELS: [f64; 4] = [-0.9, -0.3, 0.3, 0.9];
        let order = perm4(self.h(T_PERM, card, j / 4));
        let jitter = (unit(self.h(T_JITTER, card, j)) - 0.5) * 0.2;
        let v = LEVELS[order[(j % 4) as usize]] + jitter;
        (self.card_mean(card) * (1.0 + 0.5 * v) * 100.0).round() as i64
    }

    /// An amount in the card's band (±50 % of its mean), in cents.
    fn band_cents(&self, card: u64, salt: u64) -> i64 {
        let v = unit(self.h(T_JITTER, card, salt)) * 2.0 - 1.0;
        (self.card_mean(card) * (1.0 + 0.5 * v) * 100.0).round() as i64
    }

    /// A merchant of `city`, chosen by `pick`.
    fn merchant_in(&self, city: u64, pick: u64) -> u64 {
        let count = (self.merchants - city).div_ceil(NC);
        city + NC * (pick % count.max(1))
    }

    /// A merchant of the home city of `account`.
    fn home_merchant(&self, account: u64, card: u64, salt: u64) -> u64 {
        self.merchant_in(self.home_city(account), self.h(T_MERCHANT, card, salt))
    }

    /// Where merchant `m` (0-based) is: within CITY_RADIUS_KM of its city.
    pub(crate) fn merchant_location(&self, m: u64) -> (f64, f64) {
        let (clat, clon) = CITIES[(m % NC) as usize];
        let u = self.h(T_MERCHANT_POS, m, 0);
        let bearing = unit(u) * 2.0 * PI;
        let r = CITY_RADIUS_KM * 0.95 * unit(mix(u)).sqrt();
        let (s, c) = bearing.sin_cos();
        let lat = clat + r * c / KM_PER_DEGREE;
        let lon = clon + r * s / (KM_PER_DEGREE * clat.to_radians().cos());
        (lat, lon)
    }

    /// What `account` does in episode `e`.
    pub(crate) fn draw(&self, account: u64, e: u64) -> Draw {
        let j0 = e * self.episode;
        let pc = self.per_cycle;
        let g = account / DEVICE_GROUP;
        let p_group = self.p[FraudKind::DeviceSharing.index()];
        if p_group > 0.0 && (g + 1) * DEVICE_GROUP <= self.accounts {
            let group_last = j0 * pc + (g + 1) * DEVICE_GROUP * self.cards - 1;
            if self.within_end(group_last) && unit(self.h(T_GROUP, g, e)) < p_group {
                return Draw::Shared(self.h(T_GROUP_CARD, account, e) % self.cards);
            }
        }
        if !self.within_end(j0 * pc + (account + 1) * self.cards - 1) {
            return Draw::Clean;
        }
        let u = unit(self.h(T_DRAW, account, e));
        let card = self.h(T_CARD, account, e) % self.cards;
        let mut acc = 0.0;
        for kind in [
            FraudKind::Velocity,
            FraudKind::ImpossibleTravel,
            FraudKind::SmallThenLarge,
        ] {
            acc += self.p[kind.index()];
            if u < acc {
                return Draw::Own(kind, card);
            }
        }
        let eligible = e % SPIKE_SPACING_EPISODES
            == self.h(T_SPIKE_PHASE, account, 0) % SPIKE_SPACING_EPISODES
            && j0 >= SPIKE_MIN_CYCLES;
        if eligible && u < acc + self.p[FraudKind::AmountSpike.index()] {
            return Draw::Own(FraudKind::AmountSpike, card);
        }
        Draw::Clean
    }

    /// Event time of the last slot of `account`'s block in cycle `j`.
    fn block_end(&self, account: u64, j: u64) -> i64 {
        self.time(j * self.per_cycle + (account + 1) * self.cards - 1)
    }

    /// Free event time after an account's block before its next one, ms.
    fn account_gap(&self) -> i64 {
        (self.per_cycle as i64 - self.cards as i64 + 1) * self.iv - 1
    }

    /// Spacing of the rows of a velocity burst.
    fn burst_spacing(&self) -> i64 {
        (self.account_gap() / (VELOCITY_BURST as i64 + 1)).clamp(1, VELOCITY_SPACING_MS)
    }

    /// The last event time of the card's quiet stretch after a burst.
    fn quiet_end(&self, account: u64, e: u64) -> i64 {
        self.block_end(account, e * self.episode)
            + self.burst_spacing() * VELOCITY_BURST as i64
            + VELOCITY_QUIET_MS
    }

    /// True when the clean slot of `card` (within `account`) in cycle `j`
    /// is left out: the card is quiet after a velocity burst.
    fn suppressed(&self, account: u64, card: u64, j: u64, draw: Draw) -> bool {
        let e = j / self.episode;
        j > e * self.episode
            && draw == Draw::Own(FraudKind::Velocity, card)
            && self.time(j * self.per_cycle + account * self.cards + card)
                <= self.quiet_end(account, e)
    }

    fn row(&self, tx_id: i64, account: u64, card: u64, t: i64, merchant: u64, cents: i64) -> Row {
        let k = account * self.cards + card;
        Row {
            t,
            tx_id,
            account,
            card: k,
            device: k as i64 + 1,
            merchant,
            cents,
            seq: 0,
            label: None,
            case: None,
        }
    }

    /// The clean row of slot `n` (cycle `j`, `account`, `card`).
    fn clean_row(&self, n: u64, j: u64, account: u64, card: u64) -> Row {
        let k = account * self.cards + card;
        self.row(
            n as i64 * TX_IDS_PER_SLOT,
            account,
            card,
            self.time(n),
            self.home_merchant(account, k, j),
            self.clean_cents(k, j),
        )
    }

    /// The injected rows of `account` in episode `e` (made when its block
    /// of the episode's first cycle ends), appended to `out`.
    fn case_rows(&self, account: u64, e: u64, draw: Draw, out: &mut Vec<Row>) {
        let j0 = e * self.episode;
        let last_slot = j0 * self.per_cycle + (account + 1) * self.cards - 1;
        let id0 = last_slot as i64 * TX_IDS_PER_SLOT;
        let end = self.time(last_slot);
        let gap = self.account_gap();
        let salt = e.wrapping_mul(31);
        let push = |out: &mut Vec<Row>, mut r: Row, kind: FraudKind, case: i64| {
            r.label = Some(kind);
            r.case = Some(case);
            out.push(r);
        };
        match draw {
            Draw::Clean => {}
            Draw::Own(kind, card) => {
                let k = account * self.cards + card;
                let case = id0 + 1;
                let home = |s: u64| self.home_merchant(account, k, salt + s);
                match kind {
                    FraudKind::Velocity => {
                        let s = self.burst_spacing();
                        for i in 0..VELOCITY_BURST {
                            let r = self.row(
                                id0 + 1 + i as i64,
                                account,
                                card,
                                end + s * (i as i64 + 1),
                                home(i),
                                self.band_cents(k, salt + i),
                            );
                            push(out, r, kind, case);
                        }
                    }
                    FraudKind::AmountSpike => {
                        let cents = 800_000 + (self.h(T_CASE, k, e) % 200_000) as i64;
                        let r = self.row(
                            id0 + 1,
                            account,
                            card,
                            end + (gap / 2).min(30_000),
                            home(0),
                            cents,
                        );
                        push(out, r, kind, case);
                    }
                    FraudKind::ImpossibleTravel => {
                        let d = (gap / 3).min(600_000);
                        let far = &self.far[self.home_city(account) as usize];
                        let city = far
                            .get((self.h(T_CASE, k, e) % far.len().max(1) as u64) as usize)
                            .copied()
                            .unwrap_or(0) as u64;
                        let away = self.merchant_in(city, self.h(T_MERCHANT, k, salt + 1));
                        let r = self.row(
                            id0 + 1,
                            account,
                            card,
                            end + d,
                            away,
                            self.band_cents(k, salt),
                        );
                        push(out, r, kind, case);
                        let r = self.row(
                            id0 + 2,
                            account,
                            card,
                            end + 2 * d,
                            home(2),
                            self.band_cents(k, salt + 2),
                        );
                        push(out, r, kind, case);
                    }
                    FraudKind::SmallThenLarge => {
                        let d = (gap / 3).min(20_000);
                        let d2 = (gap / 3).min(30_000);
                        let u = self.h(T_CASE, k, e);
                        let small = 10 + (u % 90) as i64;
                        let large = 50_001 + ((u >> 8) % 49_999) as i64;
                        let r = self.row(id0 + 1, account, card, end + d, home(0), small);
                        push(out, r, kind, case);
                        let r = self.row(id0 + 2, account, card, end + d + d2, home(1), large);
                        push(out, r, kind, case);
                    }
                    FraudKind::DeviceSharing => {}
                }
            }
            Draw::Shared(card) => {
                let k = account * self.cards + card;
                let g = account / DEVICE_GROUP;
                let first = g * DEVICE_GROUP;
                let group_end = self.block_end(first + DEVICE_GROUP - 1, j0);
                let group_gap =
                    (self.per_cycle as i64 - (DEVICE_GROUP * self.cards) as i64 + 1) * self.iv - 1;
                let s = (group_gap / (DEVICE_GROUP as i64 + 1)).clamp(1, DEVICE_SPACING_MS);
                let case = (j0 * self.per_cycle + (first + 1) * self.cards - 1) as i64
                    * TX_IDS_PER_SLOT
                    + 1;
                let i = (account - first) as i64;
                let mut r = self.row(
                    id0 + 1,
                    account,
                    card,
                    group_end + s * (i + 1),
                    self.home_merchant(account, k, salt),
                    self.band_cents(k, salt),
                );
                r.device = FRAUD_DEVICE_BASE + case;
                push(out, r, FraudKind::DeviceSharing, case);
            }
        }
    }
}

/// One generated transaction (before the output columns are chosen).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    t: i64,
    tx_id: i64,
    account: u64,
    /// Global card index (0-based).
    card: u64,
    device: i64,
    merchant: u64,
    cents: i64,
    seq: i64,
    label: Option<FraudKind>,
    case: Option<i64>,
}

/// A row in a heap, ordered by (key, tie-break).
#[derive(Debug)]
struct Keyed {
    key: (i64, i64),
    row: Row,
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Keyed {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// The rows of one split (a range of accounts), in emission order.
pub(crate) struct SplitGenerator {
    params: Arc<Params>,
    schema: SchemaRef,
    columns: Arc<[usize]>,
    /// First account and number of accounts of the split.
    first: u64,
    count: u64,
    /// Next clean slot: cycle and position among the split's slots.
    cycle: u64,
    pos: u64,
    clean_done: bool,
    /// Injected rows not yet merged, by (time, tx id).
    cases: BinaryHeap<Reverse<Keyed>>,
    /// The next row in event-time order.
    lookahead: Option<Row>,
    /// Rows held back (late or duplicated), by (release time, order).
    held: BinaryHeap<Reverse<Keyed>>,
    held_order: i64,
    /// Per account of the split: rows so far (the last seq).
    seq: Vec<i64>,
    /// Per account of the split: (episode, draw) cache.
    draws: Vec<(u64, Draw)>,
    scratch: Vec<Row>,
    /// Rows emitted so far: the split's position.
    emitted: u64,
}

impl SplitGenerator {
    /// Split `split` of `splits`: accounts `[A·split/splits, A·(split+1)/splits)`.
    pub(crate) fn new(
        params: Arc<Params>,
        schema: SchemaRef,
        columns: Arc<[usize]>,
        split: usize,
        splits: usize,
    ) -> Self {
        let a = params.accounts as u128;
        let s = splits.max(1) as u128;
        let first = (a * split as u128 / s) as u64;
        let last = (a * (split as u128 + 1) / s) as u64;
        let count = last.saturating_sub(first);
        Self {
            params,
            schema,
            columns,
            first,
            count,
            cycle: 0,
            pos: 0,
            clean_done: count == 0,
            cases: BinaryHeap::new(),
            lookahead: None,
            held: BinaryHeap::new(),
            held_order: 0,
            seq: vec![0; count as usize],
            draws: vec![(u64::MAX, Draw::Clean); count as usize],
            scratch: Vec::new(),
            emitted: 0,
        }
    }

    /// The split's position: the number of rows emitted so far (the
    /// emission order does not depend on the limits rows were asked with).
    pub(crate) fn position(&self) -> u64 {
        self.emitted
    }

    /// Moves the split to position `rows` (a value of [`Self::position`]).
    /// Every row depends on the split's history (per-account sequence
    /// numbers, held late and duplicate rows, injected cases), so the
    /// generator is run forward without building batches: a resume costs
    /// the generation, not the encoding, of the rows skipped.
    pub(crate) fn seek(&mut self, rows: u64) -> Result<()> {
        if rows < self.emitted {
            return Err(WeirError::State(format!(
                "cannot seek a transactions split back from row {} to row {rows}",
                self.emitted
            )));
        }
        while self.emitted < rows {
            if self.next_row(i64::MAX).is_none() {
                return Err(WeirError::State(format!(
                    "transactions split has {} rows, cannot resume at row {rows} \
                     (were the options changed?)",
                    self.emitted
                )));
            }
            self.emitted += 1;
        }
        Ok(())
    }

    fn slot(&self) -> u64 {
        self.cycle * self.params.per_cycle + self.first * self.params.cards + self.pos
    }

    fn draw(&mut self, account: u64, e: u64) -> Draw {
        let i = (account - self.first) as usize;
        match self.draws.get(i) {
            Some(&(ce, d)) if ce == e => d,
            _ => {
                let d = self.params.draw(account, e);
                if let Some(c) = self.draws.get_mut(i) {
                    *c = (e, d);
                }
                d
            }
        }
    }

    /// The next row in event-time order, with its seq.
    fn next_merged(&mut self) -> Option<Row> {
        let p = self.params.clone();
        loop {
            let n = self.slot();
            if !self.clean_done && !p.within_end(n) {
                self.clean_done = true;
            }
            let clean_key = (!self.clean_done).then(|| (p.time(n), n as i64 * TX_IDS_PER_SLOT));
            let case_first = match (self.cases.peek(), clean_key) {
                (Some(Reverse(c)), Some(k)) => c.key < k,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let mut row = if case_first {
                self.cases.pop().map(|Reverse(k)| k.row)?
            } else {
                if self.clean_done {
                    return None;
                }
                let j = self.cycle;
                let account = self.first + self.pos / p.cards;
                let card = self.pos % p.cards;
                self.pos += 1;
                if self.pos == self.count * p.cards {
                    self.pos = 0;
                    self.cycle += 1;
                }
                let e = j / p.episode;
                let draw = self.draw(account, e);
                if j.is_multiple_of(p.episode) && card == p.cards - 1 && draw != Draw::Clean {
                    p.case_rows(account, e, draw, &mut self.scratch);
                    for r in self.scratch.drain(..) {
                        self.cases.push(Reverse(Keyed {
                            key: (r.t, r.tx_id),
                            row: r,
                        }));
                    }
                }
                if p.suppressed(account, card, j, draw) {
                    continue;
                }
                p.clean_row(n, j, account, card)
            };
            if let Some(s) = self.seq.get_mut((row.account - self.first) as usize) {
                *s += 1;
                row.seq = *s;
            }
            return Some(row);
        }
    }

    /// The next row in emission order whose (or whose successor's) event
    /// time is below `limit`; `None`: nothing due (or the split is done).
    fn next_row(&mut self, limit: i64) -> Option<Row> {
        let p = self.params.clone();
        loop {
            if self.lookahead.is_none() {
                self.lookahead = self.next_merged();
            }
            let Some(next_t) = self.lookahead.as_ref().map(|r| r.t) else {
                return self.held.pop().map(|Reverse(k)| k.row);
            };
            if next_t >= limit {
                return None;
            }
            if self.held.peek().is_some_and(|Reverse(k)| k.key.0 <= next_t) {
                return self.held.pop().map(|Reverse(k)| k.row);
            }
            let row = self.lookahead.take()?;
            let id = row.tx_id as u64;
            let mut release = row.t;
            let delayed = p.ooo_rate > 0.0 && unit(p.h(T_OOO, id, 0)) < p.ooo_rate;
            if delayed {
                release = row.t + 1 + (p.h(T_OOO, id, 1) % p.max_delay as u64) as i64;
            }
            // A duplicate is released at or after its original, and after
            // it when both are released together (held rows keep order).
            let duplicate = (p.dup_rate > 0.0 && unit(p.h(T_DUP, id, 0)) < p.dup_rate).then(|| {
                let d = if p.max_delay > 0 {
                    1 + (p.h(T_DUP, id, 1) % p.max_delay as u64) as i64
                } else {
                    0
                };
                (row.clone(), release.max(row.t + d))
            });
            if delayed {
                self.hold(row, release);
                if let Some((copy, at)) = duplicate {
                    self.hold(copy, at);
                }
                continue;
            }
            if let Some((copy, at)) = duplicate {
                self.hold(copy, at);
            }
            return Some(row);
        }
    }

    fn hold(&mut self, row: Row, release: i64) {
        self.held_order += 1;
        self.held.push(Reverse(Keyed {
            key: (release, self.held_order),
            row,
        }));
    }

    /// The event time of the next row in event-time order (`None`: done).
    pub(crate) fn next_time(&mut self) -> Option<i64> {
        if self.lookahead.is_none() {
            self.lookahead = self.next_merged();
        }
        match &self.lookahead {
            Some(r) => Some(r.t),
            None => self.held.peek().map(|Reverse(k)| k.key.0),
        }
    }

    /// The (fractional) slot number of event time `t` (for pacing).
    pub(crate) fn slot_of(&self, t: i64) -> f64 {
        (t - self.params.base) as f64 / self.params.iv as f64
    }

    /// The event time of slot `n` (for pacing).
    pub(crate) fn slot_time(&self, n: f64) -> i64 {
        self.params
            .base
            .saturating_add((n * self.params.iv as f64).min(i64::MAX as f64 / 2.0) as i64)
    }

    /// The next batch of at most `max_rows` rows due before event time
    /// `limit` (`None`: nothing due now, or the split is done).
    pub(crate) fn next_batch(
        &mut self,
        max_rows: usize,
        limit: i64,
    ) -> Result<Option<RecordBatch>> {
        let mut rows = Vec::with_capacity(max_rows.min(65_536));
        while rows.len() < max_rows {
            match self.next_row(limit) {
                Some(r) => rows.push(r),
                None => break,
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        self.emitted += rows.len() as u64;
        Ok(Some(self.build(&rows)?))
    }

    fn build(&self, rows: &[Row]) -> Result<RecordBatch> {
        let p = &self.params;
        let locations: Option<Vec<(f64, f64)>> =
            self.columns.iter().any(|c| *c == 6 || *c == 7).then(|| {
                rows.iter()
                    .map(|r| p.merchant_location(r.merchant))
                    .collect()
            });
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (&c, f) in self.columns.iter().zip(self.schema.fields()) {
            let ints = |g: &dyn Fn(&Row) -> i64| -> ArrayRef {
                Arc::new(Int64Array::from_iter_values(rows.iter().map(g)))
            };
            let array: ArrayRef = match c {
                0 => ints(&|r| r.tx_id),
                1 => ints(&|r| r.account as i64 + 1),
                2 => ints(&|r| r.card as i64 + 1),
                3 => ints(&|r| r.device),
                4 => ints(&|r| r.merchant as i64 + 1),
                5 => Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| r.cents as f64 / 100.0),
                )),
                6 | 7 => {
                    let loc = locations.as_deref().unwrap_or(&[]);
                    Arc::new(Float64Array::from_iter_values(loc.iter().map(|l| {
                        if c == 6 {
                            l.0
                        } else {
                            l.1
                        }
                    })))
                }
                8 => ints(&|r| r.seq),
                9 => {
                    let tz = match f.data_type() {
                        DataType::Timestamp(_, tz) => tz.clone(),
                        _ => None,
                    };
                    Arc::new(
                        TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.t))
                            .with_timezone_opt(tz),
                    )
                }
                10 => {
                    let mut b = StringBuilder::with_capacity(rows.len(), rows.len());
                    for r in rows {
                        b.append_option(r.label.map(FraudKind::label));
                    }
                    Arc::new(b.finish())
                }
                _ => Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.case))),
            };
            arrays.push(array);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &options,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_all_distinct() {
        let mut all: Vec<[usize; 4]> = (0..24).map(perm4).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 24);
    }

    #[test]
    fn every_city_has_far_cities_and_merchants_stay_near_their_city(
    ) -> std::result::Result<(), String> {
        let p = Params::new(&TransactionsOptions::default())?;
        assert!(p.far.iter().all(|f| !f.is_empty()));
        for m in 0..2_000 {
            let d = distance_km(p.merchant_location(m), CITIES[(m % NC) as usize]);
            assert!(d <= CITY_RADIUS_KM, "merchant {m} is {d} km from its city");
        }
        Ok(())
    }

    #[test]
    fn clean_amounts_stay_in_the_band_and_above_one() -> std::result::Result<(), String> {
        let p = Params::new(&TransactionsOptions::default())?;
        for card in 0..500 {
            let mean = p.card_mean(card);
            for j in 0..40 {
                let a = p.clean_cents(card, j) as f64 / 100.0;
                assert!(a >= 1.0 && a >= 0.5 * mean - 0.01 && a <= 1.5 * mean + 0.01);
            }
        }
        Ok(())
    }

    /// The z-score of a clean amount against the card's earlier clean
    /// amounts (at least ten), also with cycles left out (velocity pauses).
    #[test]
    fn clean_z_scores_stay_below_three() -> std::result::Result<(), String> {
        let p = Params::new(&TransactionsOptions::default())?;
        let mut worst: f64 = 0.0;
        for card in 0..3_000u64 {
            let skip = card % 3; // 0: none, 1: every 7th cycle, 2: two in a row every 11
            let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
            for j in 0..300u64 {
                if (skip == 1 && j % 7 == 3) || (skip == 2 && j % 11 < 2) {
                    continue;
                }
                let x = p.clean_cents(card, j) as f64 / 100.0;
                if n >= 10 {
                    let sd = (m2 / (n - 1) as f64).sqrt();
                    worst = worst.max((x - mean) / sd);
                }
                n += 1;
                let d = x - mean;
                mean += d / n as f64;
                m2 += d * (x - mean);
            }
        }
        assert!(worst < 3.0, "worst clean z-score {worst}");
        Ok(())
    }

    #[test]
    fn rates_and_gaps_are_validated() {
        let o = TransactionsOptions {
            accounts: 6,
            ..Default::default()
        };
        let e = Params::new(&o).err().unwrap_or_default();
        assert!(e.contains("more than 1 s of event time"), "{e}");
        assert!(Params::new(&o.clone().with_fraud_rate(0.0)).is_ok());
        let e = Params::new(&TransactionsOptions::default().with_fraud_rate(0.01))
            .err()
            .unwrap_or_default();
        assert!(e.contains("fraud rates are too high"), "{e}");
    }
}
