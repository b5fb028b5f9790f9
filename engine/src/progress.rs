//! Progress lines for a running job, and its final summary.

use std::time::{Duration, Instant};

use crate::metrics::{JobTotals, MetricsRegistry, NodeRole};
use crate::time::format_millis;

/// Formats a rate with K/M suffixes.
pub fn human_rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2}M", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.1}K", per_second / 1e3)
    } else {
        format!("{per_second:.0}")
    }
}

/// Computes per-interval rates from successive metric totals.
#[derive(Debug)]
pub struct Progress {
    metrics: MetricsRegistry,
    started: Instant,
    last: (Instant, JobTotals),
}

impl Progress {
    /// Starts measuring now.
    pub fn new(metrics: MetricsRegistry) -> Self {
        let now = Instant::now();
        let totals = metrics.totals();
        Self {
            metrics,
            started: now,
            last: (now, totals),
        }
    }

    /// One progress line covering the time since the previous call:
    /// events/s in and out, the watermark at the sinks, late rows dropped
    /// and malformed records so far.
    pub fn line(&mut self) -> String {
        let now = Instant::now();
        let totals = self.metrics.totals();
        let dt = now.duration_since(self.last.0).as_secs_f64().max(1e-9);
        let rate_in = (totals.source_rows - self.last.1.source_rows) as f64 / dt;
        let rate_out = (totals.sink_rows - self.last.1.sink_rows) as f64 / dt;
        self.last = (now, totals);
        let wm = totals
            .sink_watermark
            .map(format_millis)
            .unwrap_or_else(|| "-".into());
        let mut line = format!(
            "[weir {:>6.1}s] in {}/s  out {}/s  watermark {}  late {}  malformed {}  (total in {} out {})",
            now.duration_since(self.started).as_secs_f64(),
            human_rate(rate_in),
            human_rate(rate_out),
            wm,
            totals.late_rows_dropped,
            totals.malformed_records,
            totals.source_rows,
            totals.sink_rows
        );
        let ck = self.metrics.checkpoint_stats().lock().clone();
        if let Some(id) = ck.last_id {
            line.push_str(&format!(
                "  checkpoint {id} ({}ms, {}, align {}ms)",
                ck.last_duration_ms,
                human_bytes(ck.last_size_bytes),
                ck.last_alignment_ms
            ));
        }
        for status in self.metrics.statuses() {
            line.push_str("  | ");
            line.push_str(&status);
        }
        line
    }

    /// A multi-line summary: totals, average rates, and per node the rows in
    /// and out and the p50/p99 processing time per batch.
    pub fn summary(&self) -> String {
        let elapsed = self.started.elapsed();
        let totals = self.metrics.totals();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ck = self.metrics.checkpoint_stats().lock().clone();
        let mut s = String::new();
        if let Some(id) = ck.restored_from {
            s.push_str(&format!("[weir] restored from checkpoint {id}\n"));
        }
        if ck.completed > 0 {
            s.push_str(&format!(
                "[weir] {} checkpoints completed, last {} ({}ms, {}, align {}ms)\n",
                ck.completed,
                ck.last_id.unwrap_or(0),
                ck.last_duration_ms,
                human_bytes(ck.last_size_bytes),
                ck.last_alignment_ms
            ));
        }
        s.push_str(&format!(
            "[weir] finished in {:.2}s: {} events in ({}/s), {} rows out, {} late rows dropped, {} malformed records\n",
            secs,
            totals.source_rows,
            human_rate(totals.source_rows as f64 / secs),
            totals.sink_rows,
            totals.late_rows_dropped,
            totals.malformed_records
        ));
        for n in self.metrics.per_node() {
            let role = match n.role {
                NodeRole::Source => "source",
                NodeRole::Operator => "operator",
                NodeRole::Sink => "sink",
            };
            let (p50, p99) = if n.latency_ns.is_empty() {
                ("-".to_string(), "-".to_string())
            } else {
                (
                    fmt_ns(n.latency_ns.value_at_quantile(0.5)),
                    fmt_ns(n.latency_ns.value_at_quantile(0.99)),
                )
            };
            s.push_str(&format!(
                "  {:<28} {:<8} x{:<2} in {:>12} out {:>12} late {:>6} per-batch p50 {:>8} p99 {:>8}\n",
                n.node, role, n.subtasks, n.rows_in, n.rows_out, n.late_rows_dropped, p50, p99
            ));
        }
        s
    }
}

/// Formats a byte count with KiB/MiB suffixes.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1}MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1}KiB", b / 1024.0)
    } else {
        format!("{bytes}B")
    }
}

/// Formats nanoseconds as ns/µs/ms.
pub fn fmt_ns(ns: u64) -> String {
    let d = Duration::from_nanos(ns);
    if ns >= 1_000_000 {
        format!("{:.2}ms", d.as_secs_f64() * 1e3)
    } else if ns >= 1_000 {
        format!("{:.1}µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{ns}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_human_readable() {
        assert_eq!(human_rate(1_234_567.0), "1.23M");
        assert_eq!(human_rate(45_600.0), "45.6K");
        assert_eq!(human_rate(12.0), "12");
        assert_eq!(fmt_ns(1_500_000), "1.50ms");
    }

    #[test]
    fn progress_line_shows_reported_conditions_until_cleared() {
        let registry = MetricsRegistry::default();
        let m = registry.register(NodeRole::Source, "source:bid", 1);
        let mut p = Progress::new(registry);
        m.set_status(Some("broker unreachable, retry 2 in 400ms".into()));
        let line = p.line();
        assert!(
            line.ends_with("  | source:bid[1]: broker unreachable, retry 2 in 400ms"),
            "{line}"
        );
        m.set_status(None);
        assert!(!p.line().contains('|'));
    }
}
