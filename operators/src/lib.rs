//! # weir-operators: Weir's built-in operators
//!
//! One operator per module, each implementing
//! [`weir_engine::operator::Operator`] on Arrow record batches:
//!
//! - [`filter::FilterOperator`] and [`project::ProjectOperator`], stateless
//!   `WHERE` and `SELECT` lists over DataFusion [`PhysicalExpr`]s;
//! - [`watermark_assigner::WatermarkAssigner`], Flink's
//!   `WATERMARK FOR ts AS <expr>`, per source split, with idleness;
//! - [`window_assigner::WindowAssigner`], the window TVFs (`TUMBLE`, `HOP`,
//!   `CUMULATE`) used without aggregation;
//! - [`window_aggregate::WindowAggregate`] and
//!   [`session_window_aggregate::SessionWindowAggregate`], window TVF
//!   aggregation with DataFusion accumulators, final results only;
//! - [`match_recognize::MatchRecognize`], Flink's `MATCH_RECOGNIZE`, on the
//!   NFA of [`cep`] (also usable on its own: [`cep::Matcher`]);
//! - [`fraud`]: fraud-detection rules (velocity, amount spike, impossible
//!   travel, small-then-large, device sharing), keyed and in event time,
//!   and the `haversine_km` kernel;
//! - [`sequence_order::SequenceOrder`], per-key ordering by a sequence
//!   number with duplicate removal and gap markers (`SEQUENCE_ORDER`,
//!   `SEQUENCE_GAPS`);
//! - [`deduplicate::Deduplicate`], Flink's event-time keep-first
//!   deduplication (`ROW_NUMBER() OVER (PARTITION BY … ORDER BY rowtime) = 1`);
//! - [`temporal_sort::TemporalSort`], streaming `ORDER BY rowtime, …`;
//! - [`over_aggregate::OverAggregate`], event-time `OVER` windows
//!   (`RANGE`/`ROWS … PRECEDING`, unbounded).
//!
//! [`window`] holds the window definitions shared by them.
//!
//! [`PhysicalExpr`]: datafusion_physical_expr::PhysicalExpr

pub mod cep;
pub mod deduplicate;
pub mod filter;
pub mod fraud;
pub mod match_recognize;
pub mod over_aggregate;
pub mod project;
pub mod sequence_order;
pub mod session_window_aggregate;
pub mod temporal_sort;
pub mod watermark_assigner;
pub mod window;
pub mod window_aggregate;
pub mod window_assigner;

mod groups;
mod key_map;
mod ordering;
mod row_store;
#[cfg(test)]
mod test_util;
mod util;
