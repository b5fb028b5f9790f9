//! The `transactions` connector: card transactions with injected fraud and
//! a ground-truth label, generated in-process (see
//! [`TransactionsOptions`] for the options).
//!
//! ```sql
//! CREATE TABLE tx (
//!   tx_id BIGINT, account_id BIGINT, card_id BIGINT, device_id BIGINT,
//!   merchant_id BIGINT, amount DOUBLE, merchant_lat DOUBLE, merchant_lon DOUBLE,
//!   seq BIGINT, event_time TIMESTAMP(3), fraud_label STRING, fraud_case BIGINT,
//!   WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
//! ) WITH ('connector' = 'transactions', 'events.num' = '1000000',
//!         'out-of-order.rate' = '0.05', 'duplicate.rate' = '0.01');
//! ```
//!
//! # Columns
//!
//! A table may declare any subset, in any order; the source emits exactly
//! the declared columns.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `tx_id` | BIGINT | unique per transaction (a duplicate repeats it); `16 n` for the clean transaction of slot `n`, `16 n + 1…` for injected ones |
//! | `account_id` | BIGINT | `1..=accounts` |
//! | `card_id` | BIGINT | `1..=accounts × cards-per-account`; account `a`'s cards are `(a-1)·C + 1 … a·C` |
//! | `device_id` | BIGINT | the card's own device (`= card_id`), or `2^62 + fraud_case` for the shared device of a device-sharing case |
//! | `merchant_id` | BIGINT | `1..=merchants`; merchant `m` is in city `(m-1) mod 40` |
//! | `amount` | DOUBLE | two decimals |
//! | `merchant_lat`, `merchant_lon` | DOUBLE | the merchant's location: within 15 km of its city's centre |
//! | `seq` | BIGINT | per account, dense from 1 in event-time order (a duplicate repeats it) |
//! | `event_time` | TIMESTAMP(3) | when the transaction happened |
//! | `fraud_label` | STRING | NULL for clean rows; `velocity`, `amount_spike`, `impossible_travel`, `small_then_large` or `device_sharing` on every row of an injected case |
//! | `fraud_case` | BIGINT | the case's id (the `tx_id` of its first row), NULL for clean rows |
//!
//! # The clean schedule
//!
//! Time is cut into *cycles*; in each cycle every card transacts once, at
//! its *slot*: slot `n = cycle · K + card_index` (K = accounts × cards)
//! happens at `base-time + n · event-interval`. So one card transacts every
//! `P = K · event-interval` of event time (200 s with the defaults), and an
//! account's cards transact back to back. Clean data is built so that no
//! rule fires on it at the operators' default thresholds:
//!
//! - each card has a mean amount (10 to 300) and its amounts stay within
//!   ±50 % of it, every four consecutive cycles spread over that band, so
//!   amounts are never below 1.00 and a z-score of a clean amount against
//!   at least ten earlier clean amounts stays below 3;
//! - an account has a home city; its cards buy from merchants of that
//!   city, all within 30 km of one another (below the 50 km minimum of the
//!   travel rule);
//! - each card has its own device.
//!
//! # Injected fraud
//!
//! Each account's timeline is cut into *episodes* of
//! `E = ceil(300 s / P)` cycles. In an episode an account carries at most
//! one injected case, on one of its cards, placed in the quiet time right
//! after the account's slots of the episode's first cycle; a case's rows
//! are labelled with its kind and id. With probability `rate × C × E` per
//! account-episode (so about `rate` cases of each kind per slot):
//!
//! | kind | rows | triggers (default thresholds) |
//! |---|---|---|
//! | `velocity` | 8 transactions of the card at most 2 s apart; the card then pauses for 90 s | > 5 transactions in 1 minute |
//! | `amount_spike` | one amount of 8 000 to 10 000 (only after ≥ 30 cycles of history, at most every 64 episodes per account) | z > 4 after ≥ 10 amounts |
//! | `impossible_travel` | one transaction in a city ≥ 2 000 km away, then one back home, at most 10 minutes apart each | > 900 km/h over > 50 km (both rows alert) |
//! | `small_then_large` | an amount of 0.10–0.99, then the account's next transaction, 500.01–999.99, at most 30 s later | < 1.00 then > 500 within 1 minute (keyed by account or card) |
//! | `device_sharing` | one card of each of 5 consecutive accounts on one new device, at most 10 s apart | > 3 cards per device in 10 minutes |
//!
//! Device-sharing cases are drawn per group of 5 accounts (with
//! probability `5 × rate × C × E`), the others per account. A case's rows
//! may also trip other rules (a large amount of `small_then_large` is a
//! spike too), never a clean row.
//!
//! The guarantees hold when a card's period `P` is at least 60 s and
//! `cards-per-account × event-interval` is small against a minute (true
//! for the defaults); injecting fraud needs more than 1 s between the
//! cycles of 5 accounts, and rates low enough that cases fit the episodes
//! (the options are checked).
//!
//! # Emission order: out of order and duplicates
//!
//! Without perturbation a split emits its rows in event-time order. With
//! `'out-of-order.rate'` a row is held back with that probability and
//! emitted just before the first row whose event time is at least its own
//! plus a delay `d` in `[1, max-delay]` ms; with `'duplicate.rate'` an
//! exact copy (same `tx_id` and `seq`) is emitted the same way, after its
//! original. So every row is emitted before any row `max-delay` or more
//! later than it: **a watermark of `event_time - max-delay` (per split)
//! makes no row late.** Rows of one account are reordered when the delay
//! exceeds the gap between them (its cards are `event-interval` apart), so
//! the sequence-ordering operator has work.
//!
//! # Splits and determinism
//!
//! Split `s` of `S` generates the accounts
//! `[accounts · s / S, accounts · (s+1) / S)`. Every value is a hash of the
//! seed and of what it describes, so the rows do not depend on the number
//! of splits or the parallelism, only their interleaving does. The split's
//! position is its next slot. `'events.num'` = N stops the schedule at
//! slot N: the table has N clean slots (minus those a velocity pause
//! skips) plus the injected rows of cases whose slots are below N.

mod generator;
pub mod options;
pub mod source;

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use weir_engine::source::SourceFactory;
use weir_engine::{Result, WeirError};

pub use generator::{distance_km, CITIES, FRAUD_DEVICE_BASE, TX_IDS_PER_SLOT};
pub use options::{FraudKind, TransactionsOptions, TRANSACTIONS_OPTION_KEYS};
pub use source::TransactionsSourceFactory;

use crate::{Connector, TableDescriptor};

/// The `transactions` connector (source only).
#[derive(Debug, Clone, Copy, Default)]
pub struct TransactionsConnector;

impl TransactionsConnector {
    /// The typed source factory for `table` (what [`Connector::source`]
    /// returns, without the trait object).
    pub fn factory(table: &TableDescriptor) -> Result<TransactionsSourceFactory> {
        let options = TransactionsOptions::parse(table)?;
        let params = generator::Params::new(&options)
            .map_err(|m| WeirError::Config(format!("table {}: {m}", table.name)))?;
        let columns = generator::resolve_columns(&table.schema)
            .map_err(|m| WeirError::Config(format!("table {}: {m}", table.name)))?;
        if params.period_ms() < 60_000 && options.fraud_rates.iter().any(|r| *r > 0.0) {
            tracing::warn!(
                table = %table.name,
                card_period_ms = params.period_ms(),
                "transactions: a card transacts more often than once a minute; clean data may \
                 trip the velocity rule at its default thresholds (raise 'accounts' or \
                 'event-interval')"
            );
        }
        Ok(TransactionsSourceFactory::new(
            options,
            params,
            table.schema.clone(),
            columns,
        ))
    }
}

impl Connector for TransactionsConnector {
    fn name(&self) -> &str {
        "transactions"
    }

    fn source(&self, table: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
        Ok(Arc::new(Self::factory(table)?))
    }
}

/// The schema of all twelve columns, in the documented order.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        generator::COLUMNS
            .iter()
            .map(|(n, t)| Field::new(*n, t.arrow(), true))
            .collect::<Vec<_>>(),
    ))
}

/// Generates split `split` of `splits` of a transactions table without a
/// running job, for tests and benchmarks: every row (in emission order,
/// out-of-order and duplicates included) in batches of
/// `options.batch_size`, with exactly the columns of `schema` (validated as
/// for a `CREATE TABLE`). `options.events_num` must bound the table;
/// `events.rate`, `splits` and the parallelism are ignored.
pub fn generate_batches(
    options: &TransactionsOptions,
    schema: &SchemaRef,
    split: usize,
    splits: usize,
) -> Result<Vec<RecordBatch>> {
    if splits == 0 || split >= splits || splits as u64 > options.accounts {
        return Err(WeirError::Config(format!(
            "transactions: split {split} of {splits} does not exist for {} accounts",
            options.accounts
        )));
    }
    if options.events_num.is_none() {
        return Err(WeirError::Config(
            "transactions: generate_batches needs 'events.num'".into(),
        ));
    }
    let params = generator::Params::new(options).map_err(WeirError::Config)?;
    let columns = generator::resolve_columns(schema).map_err(WeirError::Config)?;
    let mut g = generator::SplitGenerator::new(
        Arc::new(params),
        schema.clone(),
        columns.into(),
        split,
        splits,
    );
    let mut out = Vec::new();
    while let Some(b) = g.next_batch(options.batch_size, i64::MAX)? {
        out.push(b);
    }
    Ok(out)
}

/// The accounts (1-based ids, inclusive range) split `split` of `splits`
/// generates.
pub fn split_accounts(accounts: u64, split: usize, splits: usize) -> (u64, u64) {
    let a = accounts as u128;
    let s = splits.max(1) as u128;
    let first = (a * split as u128 / s) as u64;
    let last = (a * (split as u128 + 1) / s) as u64;
    (first + 1, last)
}
