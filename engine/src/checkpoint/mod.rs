//! Checkpoints: aligned barriers, state snapshots, source positions and
//! sink pre-commits made durable by one atomic manifest write.
//!
//! - [`storage`]: where checkpoints live ([`CheckpointStorage`], a local
//!   directory by default).
//! - [`objects`]: checkpoints on an object store (`s3://bucket/prefix`).
//! - [`manifest`]: the manifest format, listing, the job fingerprint.
//! - [`coordinator`]: the protocol (see its docs) and the coordinator task.
//!
//! The runtime ([`crate::runtime`]) injects barriers at sources, aligns them
//! at tasks with several inputs, snapshots operators and calls the sinks'
//! pre-commit and commit.

pub mod coordinator;
pub mod manifest;
pub mod objects;
pub mod storage;

use std::sync::Arc;
use std::time::Duration;

pub use coordinator::{CheckpointEvent, CheckpointHandle, NodeState, RestoredState};
pub use manifest::{fingerprint, latest_manifest, list_manifests, Manifest, NodeSnapshot};
pub use objects::ObjectStorage;
pub use storage::{open_storage, open_storage_with_options, CheckpointStorage, LocalStorage};

/// Checkpoint settings of a job.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// The store.
    pub storage: Arc<dyn CheckpointStorage>,
    /// Time between checkpoints.
    pub interval: Duration,
    /// Complete checkpoints kept (older ones are pruned).
    pub retained: usize,
    /// Start fresh instead of failing when the latest checkpoint was
    /// written by a different job graph.
    pub allow_state_reset: bool,
}

impl CheckpointConfig {
    /// Checkpoints in `storage` every `interval`, keeping 3.
    pub fn new(storage: Arc<dyn CheckpointStorage>, interval: Duration) -> Self {
        Self {
            storage,
            interval,
            retained: 3,
            allow_state_reset: false,
        }
    }
}
