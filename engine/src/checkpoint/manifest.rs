//! The checkpoint manifest: the one file whose atomic write makes a
//! checkpoint complete, and the job-graph fingerprint it carries.

use serde::{Deserialize, Serialize};

use super::storage::CheckpointStorage;
use crate::error::{Result, WeirError};
use crate::graph::{JobGraph, NodeKind};
use crate::source::SplitPosition;

/// The name of the manifest inside a checkpoint's directory.
pub const MANIFEST: &str = "manifest.json";

/// What one node subtask stored in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// Node name (unique in the graph).
    pub node: String,
    /// Subtask index.
    pub subtask: usize,
    /// The state file (relative to the checkpoint directory); `None` when
    /// the state was empty.
    pub file: Option<String>,
    /// Size of the state file in bytes.
    pub bytes: u64,
    /// Source positions per split (sources only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub positions: Vec<SplitPosition>,
    /// The subtask had finished (all its input read, end of stream sent
    /// on) before this checkpoint: a restore does not run it again, it
    /// only signals end of stream downstream.
    #[serde(default, skip_serializing_if = "is_false")]
    pub finished: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A complete checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Checkpoint id (increasing over the life of a job, across restarts).
    pub id: u64,
    /// Fingerprint of the job graph that wrote it.
    pub fingerprint: String,
    /// The graph, one line per node, for mismatch messages.
    pub graph: Vec<String>,
    /// Completion time, milliseconds since the Unix epoch.
    pub completed_at_ms: i64,
    /// From barrier injection to manifest write, in milliseconds.
    pub duration_ms: u64,
    /// The longest barrier alignment of any task, in milliseconds.
    pub alignment_ms: u64,
    /// Total size of the state files.
    pub size_bytes: u64,
    /// True for the final checkpoint written when every input ended: the
    /// job is done, a restart only completes the sinks' commits.
    pub finished: bool,
    /// What every node subtask stored.
    pub nodes: Vec<NodeSnapshot>,
}

/// The directory of checkpoint `id`.
pub fn checkpoint_dir(id: u64) -> String {
    format!("chk-{id:010}")
}

fn parse_checkpoint_dir(name: &str) -> Option<u64> {
    name.strip_prefix("chk-")?.parse().ok()
}

/// The ids of checkpoint directories in the store (complete or not),
/// ascending.
pub fn checkpoint_ids(storage: &dyn CheckpointStorage) -> Result<Vec<u64>> {
    let mut ids: Vec<u64> = storage
        .list("")?
        .iter()
        .filter_map(|n| parse_checkpoint_dir(n))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Reads the manifest of checkpoint `id` (`None`: incomplete checkpoint).
pub fn read_manifest(storage: &dyn CheckpointStorage, id: u64) -> Result<Option<Manifest>> {
    let key = format!("{}/{MANIFEST}", checkpoint_dir(id));
    match storage.get(&key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            WeirError::State(format!(
                "checkpoint manifest {}/{key} is corrupt: {e}",
                storage.describe()
            ))
        }),
    }
}

/// All complete checkpoints, oldest first.
pub fn list_manifests(storage: &dyn CheckpointStorage) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for id in checkpoint_ids(storage)? {
        if let Some(m) = read_manifest(storage, id)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// The latest complete checkpoint, if any.
pub fn latest_manifest(storage: &dyn CheckpointStorage) -> Result<Option<Manifest>> {
    for id in checkpoint_ids(storage)?.into_iter().rev() {
        if let Some(m) = read_manifest(storage, id)? {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

/// A stable fingerprint of a job graph: node names, kinds, descriptions,
/// parallelism and output schemas, and the edges with their partitioning.
/// Returns the fingerprint (hex FNV-1a 64) and one readable line per node.
pub fn fingerprint(graph: &JobGraph) -> (String, Vec<String>) {
    let mut lines = Vec::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        let kind = match n.kind {
            NodeKind::Source(_) => "source",
            NodeKind::Operator(_) => "operator",
            NodeKind::Sink(_) => "sink",
        };
        let fields: Vec<String> = n
            .schema
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), f.data_type()))
            .collect();
        lines.push(format!(
            "[{i}] {} ({kind}) x{}: {} [{}]",
            n.name,
            n.parallelism,
            n.description,
            fields.join(", ")
        ));
    }
    let mut all = lines.join("\n");
    for e in &graph.edges {
        all.push_str(&format!("\n{}->{} {}", e.from, e.to, e.partitioning));
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in all.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (format!("{h:016x}"), lines)
}

/// A file-name-safe form of a node name.
pub fn state_file_name(node: &str, subtask: usize) -> String {
    let safe: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}-{subtask}.state")
}
