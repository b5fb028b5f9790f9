//! Per-operator metrics: rows and batches in and out, late rows, malformed
//! records, the current watermark and a histogram of processing latency.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Metrics of one subtask of one dataflow node. Updated with relaxed atomics
/// on the hot path (once per batch, never per row).
#[derive(Debug)]
pub struct OperatorMetrics {
    /// Name of the node these metrics belong to.
    pub node: String,
    /// Subtask index.
    pub subtask: usize,
    /// Rows received.
    pub rows_in: AtomicU64,
    /// Rows emitted.
    pub rows_out: AtomicU64,
    /// Batches received.
    pub batches_in: AtomicU64,
    /// Batches emitted.
    pub batches_out: AtomicU64,
    /// Rows dropped because they arrived after the watermark had passed their window.
    pub late_rows_dropped: AtomicU64,
    /// Records that could not be decoded (sources) and were skipped or dead-lettered.
    pub malformed_records: AtomicU64,
    /// Last watermark seen or emitted (`i64::MIN` when none yet).
    pub watermark: AtomicI64,
    /// Processing time per batch, in nanoseconds.
    latency_ns: Mutex<Histogram<u64>>,
    /// A condition worth showing in the progress line (e.g. "broker
    /// unreachable, retry 3 in 800ms"); `None` when all is well.
    status: Mutex<Option<String>>,
    /// Operator-specific counters by name (e.g. `alerts`), see
    /// [`OperatorMetrics::add_count`].
    counts: Mutex<Vec<(&'static str, u64)>>,
}

impl OperatorMetrics {
    /// New, zeroed metrics for a subtask of `node`.
    pub fn new(node: impl Into<String>, subtask: usize) -> Self {
        Self {
            node: node.into(),
            subtask,
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            batches_in: AtomicU64::new(0),
            batches_out: AtomicU64::new(0),
            late_rows_dropped: AtomicU64::new(0),
            malformed_records: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            latency_ns: Mutex::new(new_histogram()),
            status: Mutex::new(None),
            counts: Mutex::new(Vec::new()),
        }
    }

    /// Sets (or clears, with `None`) the condition shown in the progress
    /// line for this subtask: a source retrying a broker, a sink waiting on
    /// deliveries.
    pub fn set_status(&self, status: Option<String>) {
        *self.status.lock() = status;
    }

    /// The current condition, if any.
    pub fn status(&self) -> Option<String> {
        self.status.lock().clone()
    }

    /// Adds `n` to the operator-specific counter `name` (created at 0).
    /// For what the standard counters do not cover, e.g. the `alerts` of a
    /// fraud rule; call it once per batch or watermark, not per row.
    pub fn add_count(&self, name: &'static str, n: u64) {
        let mut counts = self.counts.lock();
        match counts.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v += n,
            None => counts.push((name, n)),
        }
    }

    /// The operator-specific counter `name` (0 if never added to).
    pub fn count(&self, name: &str) -> u64 {
        self.counts
            .lock()
            .iter()
            .find(|(k, _)| *k == name)
            .map_or(0, |(_, v)| *v)
    }

    /// All operator-specific counters, in order of creation.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        self.counts.lock().clone()
    }

    /// Counts an incoming batch.
    pub fn record_in(&self, rows: usize) {
        self.rows_in.fetch_add(rows as u64, Ordering::Relaxed);
        self.batches_in.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an outgoing batch.
    pub fn record_out(&self, rows: usize) {
        self.rows_out.fetch_add(rows as u64, Ordering::Relaxed);
        self.batches_out.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts rows dropped as late.
    pub fn add_late_dropped(&self, rows: u64) {
        self.late_rows_dropped.fetch_add(rows, Ordering::Relaxed);
    }

    /// Counts malformed records.
    pub fn add_malformed(&self, records: u64) {
        self.malformed_records.fetch_add(records, Ordering::Relaxed);
    }

    /// Records the current watermark.
    pub fn set_watermark(&self, wm: i64) {
        self.watermark.store(wm, Ordering::Relaxed);
    }

    /// Records the processing time of one batch.
    pub fn record_latency_ns(&self, ns: u64) {
        let mut h = self.latency_ns.lock();
        h.saturating_record(ns.max(1));
    }

    /// A copy of the processing-latency histogram (nanoseconds per batch).
    pub fn latency_histogram(&self) -> Histogram<u64> {
        self.latency_ns.lock().clone()
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 1 hour, 3 significant digits. The bounds are constants, so
    // construction cannot fail; fall back to an auto-resizing histogram anyway.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable_histogram())
}

#[allow(clippy::panic)]
fn unreachable_histogram() -> Histogram<u64> {
    panic!("hdrhistogram rejected constant bounds")
}

/// The role of a node, for aggregating metrics in progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Reads from outside.
    Source,
    /// Transforms data.
    Operator,
    /// Writes to outside.
    Sink,
}

/// Metrics of one subtask with the role of its node.
pub type RoleMetrics = (NodeRole, Arc<OperatorMetrics>);

/// All metrics of a running job.
#[derive(Debug, Default, Clone)]
pub struct MetricsRegistry {
    entries: Arc<Mutex<Vec<RoleMetrics>>>,
    checkpoints: Arc<Mutex<CheckpointStats>>,
    alignment_held_rows: Arc<AtomicU64>,
}

/// Checkpoint figures of a job (all zero when checkpointing is off).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Checkpoints completed by this run.
    pub completed: u64,
    /// Id of the latest complete checkpoint (`None`: none yet).
    pub last_id: Option<u64>,
    /// Its duration, barrier injection to manifest write, in milliseconds.
    pub last_duration_ms: u64,
    /// Its longest barrier alignment, in milliseconds.
    pub last_alignment_ms: u64,
    /// Its state size in bytes.
    pub last_size_bytes: u64,
    /// The checkpoint this run restored from, if any.
    pub restored_from: Option<u64>,
}

impl CheckpointStats {
    /// Records a completed checkpoint.
    pub fn record(&mut self, m: &crate::checkpoint::Manifest) {
        self.completed += 1;
        self.last_id = Some(m.id);
        self.last_duration_ms = m.duration_ms;
        self.last_alignment_ms = m.alignment_ms;
        self.last_size_bytes = m.size_bytes;
    }
}

/// Totals over a job's metrics at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobTotals {
    /// Rows read by all sources.
    pub source_rows: u64,
    /// Rows written by all sinks.
    pub sink_rows: u64,
    /// Late rows dropped by all operators.
    pub late_rows_dropped: u64,
    /// Malformed records counted by all sources.
    pub malformed_records: u64,
    /// The smallest watermark seen at any sink (`None` before the first one).
    pub sink_watermark: Option<i64>,
}

impl MetricsRegistry {
    /// The job's checkpoint figures, shared with the coordinator.
    pub fn checkpoint_stats(&self) -> Arc<Mutex<CheckpointStats>> {
        self.checkpoints.clone()
    }

    /// The most rows any task held back at once while aligning checkpoint
    /// barriers (the messages of inputs whose barrier came first), since
    /// the job started. Bounded by the channel capacity per input.
    pub fn max_alignment_held_rows(&self) -> u64 {
        self.alignment_held_rows.load(Ordering::Relaxed)
    }

    /// The gauge behind [`MetricsRegistry::max_alignment_held_rows`], for
    /// the runtime's tasks.
    pub fn alignment_held_rows(&self) -> Arc<AtomicU64> {
        self.alignment_held_rows.clone()
    }

    /// The conditions subtasks report right now, as `node[subtask]: status`.
    pub fn statuses(&self) -> Vec<String> {
        self.entries
            .lock()
            .iter()
            .filter_map(|(_, m)| {
                m.status()
                    .map(|s| format!("{}[{}]: {s}", m.node, m.subtask))
            })
            .collect()
    }
}

impl MetricsRegistry {
    /// Registers (and returns) metrics for a subtask.
    pub fn register(&self, role: NodeRole, node: &str, subtask: usize) -> Arc<OperatorMetrics> {
        let m = Arc::new(OperatorMetrics::new(node, subtask));
        self.entries.lock().push((role, m.clone()));
        m
    }

    /// All registered metrics with their roles.
    pub fn all(&self) -> Vec<RoleMetrics> {
        self.entries.lock().clone()
    }

    /// Sums the counters.
    pub fn totals(&self) -> JobTotals {
        let mut t = JobTotals::default();
        let mut min_wm: Option<i64> = None;
        for (role, m) in self.entries.lock().iter() {
            t.late_rows_dropped += m.late_rows_dropped.load(Ordering::Relaxed);
            t.malformed_records += m.malformed_records.load(Ordering::Relaxed);
            match role {
                NodeRole::Source => t.source_rows += m.rows_out.load(Ordering::Relaxed),
                NodeRole::Sink => {
                    t.sink_rows += m.rows_in.load(Ordering::Relaxed);
                    let wm = m.watermark.load(Ordering::Relaxed);
                    if wm != i64::MIN {
                        min_wm = Some(min_wm.map_or(wm, |c| c.min(wm)));
                    }
                }
                NodeRole::Operator => {}
            }
        }
        t.sink_watermark = min_wm;
        t
    }

    /// Per-node sums (over subtasks): sources first, then operators, then
    /// sinks, each group in registration order (which follows the dataflow).
    pub fn per_node(&self) -> Vec<NodeSummary> {
        let mut out: Vec<NodeSummary> = Vec::new();
        for (role, m) in self.entries.lock().iter() {
            let idx = match out.iter().position(|s| s.node == m.node) {
                Some(i) => i,
                None => {
                    out.push(NodeSummary {
                        node: m.node.clone(),
                        role: *role,
                        subtasks: 0,
                        rows_in: 0,
                        rows_out: 0,
                        late_rows_dropped: 0,
                        malformed_records: 0,
                        latency_ns: new_histogram(),
                    });
                    out.len() - 1
                }
            };
            let s = &mut out[idx];
            s.subtasks += 1;
            s.rows_in += m.rows_in.load(Ordering::Relaxed);
            s.rows_out += m.rows_out.load(Ordering::Relaxed);
            s.late_rows_dropped += m.late_rows_dropped.load(Ordering::Relaxed);
            s.malformed_records += m.malformed_records.load(Ordering::Relaxed);
            // Both histograms have the same bounds; adding cannot fail.
            let _ = s.latency_ns.add(m.latency_histogram());
        }
        out.sort_by_key(|s| match s.role {
            NodeRole::Source => 0,
            NodeRole::Operator => 1,
            NodeRole::Sink => 2,
        });
        out
    }
}

/// Metrics of one node summed over its subtasks.
#[derive(Debug, Clone)]
pub struct NodeSummary {
    /// Node name.
    pub node: String,
    /// Node role.
    pub role: NodeRole,
    /// Number of subtasks.
    pub subtasks: usize,
    /// Rows in.
    pub rows_in: u64,
    /// Rows out.
    pub rows_out: u64,
    /// Late rows dropped.
    pub late_rows_dropped: u64,
    /// Malformed records.
    pub malformed_records: u64,
    /// Processing time per batch (ns), merged over subtasks.
    pub latency_ns: Histogram<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_counts_start_at_zero_and_add_up() {
        let m = OperatorMetrics::new("rule", 0);
        assert_eq!(m.count("alerts"), 0);
        m.add_count("alerts", 2);
        m.add_count("late", 1);
        m.add_count("alerts", 3);
        assert_eq!(m.count("alerts"), 5);
        assert_eq!(m.counts(), vec![("alerts", 5), ("late", 1)]);
    }
}
