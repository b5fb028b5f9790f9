//! The checkpoint coordinator: triggers checkpoints, collects the tasks'
//! acknowledgements, writes state files and the manifest, tells sinks to
//! commit, and prunes old checkpoints.
//!
//! Protocol (aligned barriers, one checkpoint in flight at a time):
//! 1. every `interval` the coordinator publishes checkpoint id `n` on the
//!    trigger channel; each source subtask injects `Barrier(n)` between two
//!    batches and acknowledges with its split positions and the snapshots
//!    of the operators chained to it;
//! 2. a task with several input channels aligns: once a channel delivered
//!    the barrier, its later messages are held back until every channel
//!    has delivered it; then the task snapshots its operators, its sink (if
//!    any) pre-commits, it acknowledges and forwards the barrier;
//! 3. when every task acknowledged `n`, the state files are written and one
//!    atomic manifest write makes `n` complete; `n` is published on the
//!    completion channel and sinks commit what they pre-committed up to `n`.
//!
//! Checkpoints after tasks finish (as Flink's FLIP-147): a task whose
//! input ended (a source that read all its splits, an operator whose
//! inputs all ended) tells the coordinator so, with its final positions
//! (sources) or last pre-commit (sinks), before it sends end of stream on.
//! A checkpoint then needs an acknowledgement from every task still
//! running; a finished task counts with what it reported, marked
//! finished, so a restore does not run it again (its downstream aligned
//! only over its live inputs and has all of its output in its state).
//! New checkpoints start while some source task still runs and the job
//! is not being cancelled. When every task has finished, a final manifest
//! (`finished`) records the sinks' last pre-commits so that a restart
//! after a crash in the commit only completes it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::manifest::{
    checkpoint_dir, checkpoint_ids, state_file_name, Manifest, NodeSnapshot, MANIFEST,
};
use super::storage::CheckpointStorage;
use crate::error::{Result, WeirError};
use crate::metrics::CheckpointStats;
use crate::source::SplitPosition;

/// The snapshot of one node subtask, as sent by a task.
#[derive(Debug, Clone)]
pub struct NodeState {
    /// Node name.
    pub node: String,
    /// Subtask index.
    pub subtask: usize,
    /// Encoded [`OperatorState`](crate::state::OperatorState) (empty: no state).
    pub state: Vec<u8>,
    /// Source positions (sources only).
    pub positions: Vec<SplitPosition>,
    /// The subtask had finished when it reported this.
    pub finished: bool,
}

/// What tasks tell the coordinator. Tasks are numbered `0..tasks` (one per
/// chain subtask, see [`CoordinatorSettings::tasks`]).
#[derive(Debug)]
pub enum CheckpointEvent {
    /// Task `task` processed barrier `id`.
    Ack {
        /// The task.
        task: usize,
        /// Checkpoint id.
        id: u64,
        /// Snapshots of the task's nodes.
        nodes: Vec<NodeState>,
        /// How long the task's inputs were blocked for alignment.
        alignment: Duration,
    },
    /// Task `task` reached the end of its input and is about to send end of
    /// stream on (or, as a sink, to commit and finish): it takes part in
    /// later checkpoints with `nodes` (marked finished).
    Finished {
        /// The task.
        task: usize,
        /// Its final report: source positions, the last pre-commit of a
        /// sink; operators report no state.
        nodes: Vec<NodeState>,
        /// For a sink: the epoch of its last pre-commit, which it commits
        /// once a checkpoint with an id at least this one completed.
        epoch: Option<u64>,
    },
}

/// The task side of checkpointing: where to send events, and the ids of
/// triggered and completed checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointHandle {
    /// Events to the coordinator.
    pub events: mpsc::UnboundedSender<CheckpointEvent>,
    /// The latest triggered checkpoint id (sources inject barriers for it).
    pub trigger: watch::Receiver<u64>,
    /// The latest completed checkpoint id (sinks commit up to it).
    pub completed: watch::Receiver<u64>,
}

/// Settings of the coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorSettings {
    /// The store.
    pub storage: Arc<dyn CheckpointStorage>,
    /// Time between checkpoints.
    pub interval: Duration,
    /// How many complete checkpoints to keep.
    pub retained: usize,
    /// Job fingerprint and its readable lines.
    pub fingerprint: (String, Vec<String>),
    /// Number of tasks (chain subtasks): a checkpoint needs an
    /// acknowledgement from each one that has not finished.
    pub tasks: usize,
    /// The tasks headed by a source: barriers are injected there, so new
    /// checkpoints start only while one of them runs.
    pub source_tasks: Vec<usize>,
    /// Set when the job is being cancelled: no new checkpoint starts and
    /// the one in flight is dropped (cancelled sources end early, their
    /// positions are not final).
    pub cancelled: Arc<std::sync::atomic::AtomicBool>,
    /// The last checkpoint id used before this run (restored or pruned
    /// history): new ids start after it.
    pub last_id: u64,
}

/// Creates the channels and the coordinator future.
pub fn start(
    settings: CoordinatorSettings,
    stats: Arc<parking_lot::Mutex<CheckpointStats>>,
) -> (
    CheckpointHandle,
    impl std::future::Future<Output = Result<()>> + Send,
) {
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (trigger_tx, trigger_rx) = watch::channel(settings.last_id);
    let (completed_tx, completed_rx) = watch::channel(settings.last_id);
    let handle = CheckpointHandle {
        events: events_tx,
        trigger: trigger_rx,
        completed: completed_rx,
    };
    let fut = run(settings, events_rx, trigger_tx, completed_tx, stats);
    (handle, fut)
}

struct InFlight {
    id: u64,
    started: Instant,
    nodes: Vec<NodeState>,
    acked: Vec<bool>,
    alignment: Duration,
}

async fn run(
    s: CoordinatorSettings,
    mut events: mpsc::UnboundedReceiver<CheckpointEvent>,
    trigger: watch::Sender<u64>,
    completed: watch::Sender<u64>,
    stats: Arc<parking_lot::Mutex<CheckpointStats>>,
) -> Result<()> {
    use std::sync::atomic::Ordering;
    let mut next_id = s.last_id + 1;
    let mut last_completed = s.last_id;
    let mut in_flight: Option<InFlight> = None;
    // What finished tasks reported, by task.
    let mut finished: Vec<Option<Vec<NodeState>>> = vec![None; s.tasks];
    let mut last_epoch = 0u64;
    let mut ticker = tokio::time::interval(s.interval);
    // Checkpoints at a fixed rate, as Flink's: a tick seen late (this task
    // waits its turn behind busy operators) does not push the later ones
    // back, and ticks that pass while a checkpoint is in flight are skipped.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let sources_running = s.source_tasks.iter().any(|&t| finished.get(t).is_some_and(Option::is_none));
                if in_flight.is_none() && sources_running && !s.cancelled.load(Ordering::Relaxed) {
                    in_flight = Some(InFlight {
                        id: next_id,
                        started: Instant::now(),
                        nodes: Vec::new(),
                        acked: vec![false; s.tasks],
                        alignment: Duration::ZERO,
                    });
                    let _ = trigger.send(next_id);
                    tracing::debug!(id = next_id, "checkpoint triggered");
                    next_id += 1;
                } else if let Some(f) = &in_flight {
                    tracing::debug!(
                        id = f.id,
                        elapsed_ms = f.started.elapsed().as_millis() as u64,
                        acked = f.acked.iter().filter(|a| **a).count(),
                        tasks = f.acked.len(),
                        "checkpoint still in flight at the next tick"
                    );
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { return Ok(()) };
                match ev {
                    CheckpointEvent::Ack { task, id, nodes, alignment } => {
                        let Some(f) = in_flight.as_mut().filter(|f| f.id == id) else {
                            continue;
                        };
                        let slot = f.acked.get_mut(task).ok_or_else(|| WeirError::Internal(format!("ack from unknown task {task}")))?;
                        *slot = true;
                        f.nodes.extend(nodes);
                        f.alignment = f.alignment.max(alignment);
                    }
                    CheckpointEvent::Finished { task, nodes, epoch } => {
                        let slot = finished.get_mut(task).ok_or_else(|| WeirError::Internal(format!("end of unknown task {task}")))?;
                        *slot = Some(nodes);
                        last_epoch = last_epoch.max(epoch.unwrap_or(0));
                        if s.cancelled.load(Ordering::Relaxed) {
                            in_flight = None;
                        }
                        if finished.iter().all(Option::is_some) {
                            // Every task finished: the final checkpoint.
                            in_flight = None;
                            let id = last_epoch.max(last_completed + 1).max(next_id);
                            let nodes = finished.iter().flatten().flatten().cloned().collect();
                            let manifest = write_checkpoint(&s, id, nodes, Duration::ZERO, Duration::ZERO, true).await?;
                            stats.lock().record(&manifest);
                            let _ = completed.send(id);
                            prune(&s, id).await?;
                            continue;
                        }
                    }
                }
                // Complete the checkpoint in flight once every task acked
                // it or had finished.
                let done = in_flight.as_ref().is_some_and(|f| {
                    f.acked.iter().zip(&finished).all(|(acked, fin)| *acked || fin.is_some())
                });
                if done {
                    let mut f = in_flight.take().ok_or_else(|| WeirError::Internal("no checkpoint in flight".into()))?;
                    for (t, fin) in finished.iter().enumerate() {
                        if let (false, Some(nodes)) = (f.acked[t], fin) {
                            f.nodes.extend(nodes.iter().cloned());
                        }
                    }
                    let id = f.id;
                    let manifest = write_checkpoint(&s, id, f.nodes, f.started.elapsed(), f.alignment, false).await?;
                    last_completed = id;
                    stats.lock().record(&manifest);
                    let _ = completed.send(id);
                    prune(&s, id).await?;
                    tracing::debug!(id, "checkpoint complete");
                }
            }
        }
    }
}

async fn write_checkpoint(
    s: &CoordinatorSettings,
    id: u64,
    nodes: Vec<NodeState>,
    started: Duration,
    alignment: Duration,
    finished: bool,
) -> Result<Manifest> {
    let storage = s.storage.clone();
    let fingerprint = s.fingerprint.clone();
    let t0 = Instant::now();
    tokio::task::spawn_blocking(move || {
        let dir = checkpoint_dir(id);
        let mut snapshots = Vec::with_capacity(nodes.len());
        let mut files = Vec::new();
        let mut size = 0u64;
        for n in nodes {
            let bytes = n.state.len() as u64;
            let file = if n.state.is_empty() {
                None
            } else {
                let name = state_file_name(&n.node, n.subtask);
                files.push((format!("{dir}/{name}"), n.state));
                size += bytes;
                Some(name)
            };
            snapshots.push(NodeSnapshot {
                node: n.node,
                subtask: n.subtask,
                file,
                bytes,
                positions: n.positions,
                finished: n.finished,
            });
        }
        // Every state file is durable before the manifest is written.
        storage.put_all(files)?;
        snapshots.sort_by(|a, b| (&a.node, a.subtask).cmp(&(&b.node, b.subtask)));
        let completed_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let manifest = Manifest {
            id,
            fingerprint: fingerprint.0,
            graph: fingerprint.1,
            completed_at_ms,
            duration_ms: (started + t0.elapsed()).as_millis() as u64,
            alignment_ms: alignment.as_millis() as u64,
            size_bytes: size,
            finished,
            nodes: snapshots,
        };
        let bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| WeirError::Internal(format!("encoding manifest: {e}")))?;
        storage.put_atomic(&format!("{dir}/{MANIFEST}"), &bytes)?;
        Ok(manifest)
    })
    .await
    .map_err(|e| WeirError::Internal(format!("checkpoint writer failed: {e}")))?
}

/// Keeps the `retained` newest complete checkpoints up to `latest`;
/// removes older ones and incomplete ones below `latest`.
async fn prune(s: &CoordinatorSettings, latest: u64) -> Result<()> {
    let storage = s.storage.clone();
    let retained = s.retained.max(1);
    tokio::task::spawn_blocking(move || {
        let ids = checkpoint_ids(storage.as_ref())?;
        let mut complete_seen = 0usize;
        for id in ids.into_iter().rev() {
            if id > latest {
                continue;
            }
            let complete = storage
                .get(&format!("{}/{MANIFEST}", checkpoint_dir(id)))?
                .is_some();
            if complete && complete_seen < retained {
                complete_seen += 1;
                continue;
            }
            storage.delete_prefix(&checkpoint_dir(id))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| WeirError::Internal(format!("checkpoint pruning failed: {e}")))?
}

/// Restored state by (node, subtask).
#[derive(Debug, Default)]
pub struct RestoredState {
    /// The checkpoint it came from.
    pub id: u64,
    /// Whether that checkpoint was the final one of a finished job.
    pub finished: bool,
    states: HashMap<(String, usize), Vec<u8>>,
    positions: HashMap<(String, usize), Vec<SplitPosition>>,
    finished_nodes: std::collections::HashSet<(String, usize)>,
}

impl RestoredState {
    /// Loads the state files of `manifest`.
    pub fn load(storage: &dyn CheckpointStorage, manifest: &Manifest) -> Result<Self> {
        let dir = checkpoint_dir(manifest.id);
        let mut r = RestoredState {
            id: manifest.id,
            finished: manifest.finished,
            ..Default::default()
        };
        for n in &manifest.nodes {
            if let Some(file) = &n.file {
                let key = format!("{dir}/{file}");
                let bytes = storage.get(&key)?.ok_or_else(|| {
                    WeirError::State(format!(
                        "checkpoint {}: state file {key} is missing in {}",
                        manifest.id,
                        storage.describe()
                    ))
                })?;
                r.states.insert((n.node.clone(), n.subtask), bytes);
            }
            if !n.positions.is_empty() {
                r.positions
                    .insert((n.node.clone(), n.subtask), n.positions.clone());
            }
            if n.finished {
                r.finished_nodes.insert((n.node.clone(), n.subtask));
            }
        }
        Ok(r)
    }

    /// True if the node subtask had finished when the checkpoint was taken
    /// (it is not run again).
    pub fn is_finished(&self, node: &str, subtask: usize) -> bool {
        self.finished_nodes.contains(&(node.to_string(), subtask))
    }

    /// What a finished node subtask reported, to report again in the
    /// checkpoints of the restored run.
    pub fn finished_node(&self, node: &str, subtask: usize) -> NodeState {
        NodeState {
            node: node.to_string(),
            subtask,
            state: self
                .state(node, subtask)
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            positions: self
                .positions(node, subtask)
                .map(<[SplitPosition]>::to_vec)
                .unwrap_or_default(),
            finished: true,
        }
    }

    /// The encoded state of a node subtask (`None`: empty).
    pub fn state(&self, node: &str, subtask: usize) -> Option<&[u8]> {
        self.states
            .get(&(node.to_string(), subtask))
            .map(|v| v.as_slice())
    }

    /// The source positions of a node subtask.
    pub fn positions(&self, node: &str, subtask: usize) -> Option<&[SplitPosition]> {
        self.positions
            .get(&(node.to_string(), subtask))
            .map(|v| v.as_slice())
    }
}
