//! # weir-benches: throughput and latency of Nexmark queries
//!
//! `weir bench` runs each Nexmark query of `queries/examples/nexmark/` in
//! two ways, on one core (a tokio runtime with one worker thread,
//! parallelism 1):
//!
//! 1. **Throughput.** The bid stream is generated once, up front, by the
//!    real `nexmark` connector (its own rate is reported separately as the
//!    generator cost). The job then replays those batches as fast as it can
//!    into a counting sink: events/s is engine cost only.
//! 2. **Latency.** The same batches are replayed at half the measured
//!    maximum rate, paced by the wall clock. For each output row the
//!    latency is the time from the release of the input batch that made the
//!    row possible to the row's arrival at the sink: for stateless queries
//!    the batch holding the row's event; for windowed queries the batch that
//!    moved the watermark past the window's end (so the watermark delay
//!    itself is not counted: this is the latency *beyond* the watermark).
//!
//! Latencies go into an hdrhistogram; p50/p99 are reported.
//!
//! `weir bench --fraud` does the same for the fraud rules of
//! `queries/examples/fraud/` on the `transactions` generator; see the
//! `fraud` module for how its alert latency is measured.

mod checkpoints;
mod fraud;
mod harness;
mod replay;

pub use harness::{run, BenchArgs, BenchResult};
