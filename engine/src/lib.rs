//! # weir-engine: the Weir runtime
//!
//! A Weir job is a dataflow graph ([`graph::JobGraph`]) of sources, operators
//! and sinks. Everything that flows between them is an Arrow
//! [`RecordBatch`](arrow::record_batch::RecordBatch), with control travelling
//! in-band on the same edges ([`message::Message`]): watermarks, checkpoint
//! barriers and end of stream.
//!
//! - [`operator`]: the synchronous [`Operator`](operator::Operator) trait
//!   (only `process_batch` is required) and its [`Collector`](operator::Collector).
//! - [`source`] / [`sink`]: the asynchronous IO edge.
//! - [`state`]: operator snapshots as named Arrow tables (Arrow IPC bytes).
//! - [`graph`]: nodes, edges (forward, hash, broadcast, rebalance), chaining
//!   and `explain`.
//! - [`runtime`]: runs a graph: one task per chain per subtask, channels
//!   bounded by rows, watermark alignment over inputs, metrics.
//! - [`metrics`]: per-operator counters and latency histograms.
//!
//! Nothing here knows SQL or any broker.

pub mod channel;
pub mod checkpoint;
pub mod error;
pub mod graph;
pub mod message;
pub mod metrics;
pub mod operator;
pub mod partition;
pub mod progress;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod state;
pub mod time;

pub use error::{Result, WeirError};
