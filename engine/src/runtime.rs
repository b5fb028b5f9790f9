//! Running a [`JobGraph`]: one task per chain per subtask.
//!
//! Each [`Chain`](crate::graph::Chain) of the graph runs as one tokio task per
//! subtask. Inside a task, operators call each other through their
//! collectors (no queue between chained operators). Between tasks, each
//! subtask reads one row-bounded [`channel`](crate::channel) into which all
//! of its upstream subtasks send, so a slow sink slows the sources instead of
//! growing memory.
//!
//! Watermarks: a task tracks the watermark of every input channel and
//! forwards the minimum over channels that are neither idle nor ended; an
//! idle channel does not hold the watermark back. When every input has
//! ended the chain is ended (`on_end`, so open windows fire) and end of
//! stream is sent on.
//!
//! Checkpoints (see [`crate::checkpoint::coordinator`]): a task with
//! several input channels aligns barriers. Messages that follow a barrier
//! on a channel are held back until the barrier arrived on every live
//! channel; each held message keeps its input's channel credit, so at most
//! `channel_capacity_rows` rows are held per input and the sender of an
//! aligned input then waits (Flink stops reading such a channel). A task
//! whose input ended reports itself finished before sending end of stream
//! on; checkpoints go on without it, and a restore does not run it again.
//!
//! The first task to fail cancels the job; its error is the job's error.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use tokio::task::JoinSet;

use crate::channel::{channel_with_inputs, Envelope, Receiver, Sender};
use crate::checkpoint::coordinator::{self, CoordinatorSettings};
use crate::checkpoint::manifest::{checkpoint_ids, fingerprint, latest_manifest};
use crate::checkpoint::{
    CheckpointConfig, CheckpointEvent, CheckpointHandle, NodeState, RestoredState,
};
use crate::error::{Result, WeirError};
use crate::graph::{JobGraph, NodeKind, Partitioning};
use crate::message::{Barrier, Message, Watermark};
use crate::metrics::{MetricsRegistry, NodeRole, OperatorMetrics};
use crate::operator::{Collector, Operator, OperatorContext, Output};
use crate::partition::HashPartitioner;
use crate::sink::{Sink, SinkRecovery};
use crate::source::{Source, SourceContext, SourceOutput, SplitPosition};
use crate::state::OperatorState;

/// Settings of the runtime.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Capacity of each channel between tasks, in rows.
    pub channel_capacity_rows: usize,
    /// How often operators get `on_tick` (processing time).
    pub tick_interval: Duration,
    /// Checkpointing (`None`: off).
    pub checkpoint: Option<CheckpointConfig>,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            channel_capacity_rows: 64 * 1024,
            tick_interval: Duration::from_millis(100),
            checkpoint: None,
        }
    }
}

/// Cancels a running job: sources stop reading, what is in flight drains
/// as at the end of a bounded input.
#[derive(Debug, Clone)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// True once cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Where a job with checkpoints starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Checkpointing is off.
    Disabled,
    /// No complete checkpoint: a fresh start.
    Fresh,
    /// Resuming from this checkpoint.
    Resumed(u64),
    /// The latest checkpoint was written by a different job graph and
    /// `allow_state_reset` was given: a fresh start.
    Reset(u64),
    /// The job already finished (final checkpoint `id`): running it only
    /// completes the sinks' last commit.
    Finished(u64),
}

/// A job ready to run.
pub struct Job {
    graph: JobGraph,
    config: JobConfig,
    metrics: MetricsRegistry,
    cancelled: Arc<AtomicBool>,
    recovery: Recovery,
    restored: Option<RestoredState>,
    /// The highest checkpoint id in the store before this run.
    last_id: u64,
}

impl Job {
    /// Validates the graph and prepares the job.
    ///
    /// With checkpointing on, this reads the latest complete checkpoint:
    /// its graph fingerprint must match this graph (else a state error,
    /// unless `allow_state_reset`), and its state is loaded for `run`.
    pub fn new(graph: JobGraph, config: JobConfig) -> Result<Self> {
        graph.validate()?;
        let mut recovery = Recovery::Disabled;
        let mut restored = None;
        let mut last_id = 0;
        if let Some(ck) = &config.checkpoint {
            let storage = ck.storage.as_ref();
            last_id = checkpoint_ids(storage)?.last().copied().unwrap_or(0);
            recovery = Recovery::Fresh;
            if let Some(m) = latest_manifest(storage)? {
                let (fp, lines) = fingerprint(&graph);
                if m.fingerprint != fp {
                    if !ck.allow_state_reset {
                        return Err(WeirError::State(format!(
                            "checkpoint {} in {} was written by a different job (fingerprint {} vs {fp}); \
                             the query, its parallelism or its schemas changed. Use --allow-state-reset to \
                             start from empty state, or another --checkpoint-dir.\n  checkpointed graph:\n    {}\n  this graph:\n    {}",
                            m.id,
                            storage.describe(),
                            m.fingerprint,
                            m.graph.join("\n    "),
                            lines.join("\n    ")
                        )));
                    }
                    tracing::warn!(
                        checkpoint = m.id,
                        "job graph changed: starting from empty state (--allow-state-reset)"
                    );
                    recovery = Recovery::Reset(m.id);
                } else {
                    let r = RestoredState::load(storage, &m)?;
                    recovery = if r.finished {
                        Recovery::Finished(m.id)
                    } else {
                        Recovery::Resumed(m.id)
                    };
                    restored = Some(r);
                }
            }
        }
        let metrics = MetricsRegistry::default();
        if let Recovery::Resumed(id) = recovery {
            metrics.checkpoint_stats().lock().restored_from = Some(id);
        }
        Ok(Self {
            graph,
            config,
            metrics,
            cancelled: Arc::new(AtomicBool::new(false)),
            recovery,
            restored,
            last_id,
        })
    }

    /// Where this job starts from (see [`Recovery`]).
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Completes the sinks' commits of a finished job's final checkpoint.
    fn finish_restored(&self) -> Result<()> {
        let Some(r) = &self.restored else {
            return Ok(());
        };
        for node in &self.graph.nodes {
            if let NodeKind::Sink(f) = &node.kind {
                for subtask in 0..node.parallelism {
                    let state = match r.state(&node.name, subtask) {
                        Some(b) => OperatorState::from_bytes(b)?,
                        None => OperatorState::empty(),
                    };
                    let recovery = SinkRecovery {
                        checkpoint_id: r.id,
                        state,
                    };
                    drop(f.create_checkpointed(subtask, node.parallelism, Some(recovery))?);
                }
            }
        }
        Ok(())
    }

    /// The job's metrics (live while it runs).
    pub fn metrics(&self) -> MetricsRegistry {
        self.metrics.clone()
    }

    /// A handle to cancel the job.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(self.cancelled.clone())
    }

    /// Runs the job on the current tokio runtime until every sink has
    /// finished, or until the first error.
    pub async fn run(self) -> Result<()> {
        if let Recovery::Finished(_) = self.recovery {
            return self.finish_restored();
        }
        let graph = &self.graph;
        let chains = graph.chains()?;
        // Tasks are numbered chain by chain, subtask by subtask.
        let task_base: Vec<usize> = chains
            .iter()
            .scan(0, |next, c| {
                let base = *next;
                *next += c.parallelism;
                Some(base)
            })
            .collect();
        let held_gauge = self.metrics.alignment_held_rows();
        let mut tasks: JoinSet<Result<()>> = JoinSet::new();
        let ckpt: Option<CheckpointHandle> = match &self.config.checkpoint {
            None => None,
            Some(cfg) => {
                let settings = CoordinatorSettings {
                    storage: cfg.storage.clone(),
                    interval: cfg.interval,
                    retained: cfg.retained,
                    fingerprint: fingerprint(graph),
                    tasks: chains.iter().map(|c| c.parallelism).sum(),
                    source_tasks: chains
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| {
                            matches!(graph.nodes[c.nodes[0]].kind, NodeKind::Source(_))
                        })
                        .flat_map(|(ci, c)| {
                            let base = task_base[ci];
                            (0..c.parallelism).map(move |j| base + j)
                        })
                        .collect(),
                    cancelled: self.cancelled.clone(),
                    last_id: self.last_id,
                };
                let (handle, fut) = coordinator::start(settings, self.metrics.checkpoint_stats());
                tasks.spawn(fut);
                Some(handle)
            }
        };
        let restored = self.restored.as_ref();
        // Source subtasks start only once every one of them is created and
        // restored: subtasks of one source may share state (Kinesis's shard
        // coordinator) that all restored positions must reach first.
        let mut sources = Vec::new();
        let chain_of = |node: usize| chains.iter().position(|c| c.nodes.contains(&node));

        // One receiver per subtask of every chain that starts with an
        // operator or sink, and the list of input channels it has.
        let mut receivers: Vec<Vec<Option<TaskInput>>> = Vec::new();
        for c in &chains {
            let head = c.nodes[0];
            let mut per_subtask = Vec::new();
            for j in 0..c.parallelism {
                if matches!(graph.nodes[head].kind, NodeKind::Source(_)) {
                    per_subtask.push(None);
                    continue;
                }
                let mut inputs = Vec::new();
                for (k, e) in graph.inputs(head).iter().enumerate() {
                    let up = graph.nodes[e.from].parallelism;
                    if e.partitioning == Partitioning::Forward {
                        let _ = j;
                        inputs.push(k);
                    } else {
                        inputs.extend(std::iter::repeat_n(k, up));
                    }
                }
                let (tx, rx) = channel_with_inputs(self.config.channel_capacity_rows, inputs.len());
                per_subtask.push(Some((tx, rx, inputs)));
            }
            receivers.push(per_subtask);
        }

        // The index of the channel (edge e, upstream subtask i) at a receiver.
        let channel_index = |head: usize, edge_to: (usize, usize), up_subtask: usize| -> usize {
            let mut idx = 0;
            for e in graph.inputs(head) {
                if (e.from, e.to) == edge_to {
                    return if e.partitioning == Partitioning::Forward {
                        idx
                    } else {
                        idx + up_subtask
                    };
                }
                idx += if e.partitioning == Partitioning::Forward {
                    1
                } else {
                    graph.nodes[e.from].parallelism
                };
            }
            idx
        };

        for (ci, c) in chains.iter().enumerate() {
            for subtask in 0..c.parallelism {
                let task = task_base[ci] + subtask;
                // A task that had finished in the restored checkpoint is
                // not run again: it reports what it reported then and
                // signals end of stream on (its sink, if any, finishes).
                let head_name = &graph.nodes[c.nodes[0]].name;
                let restored_finished: Option<Vec<NodeState>> = restored
                    .filter(|r| r.is_finished(head_name, subtask))
                    .map(|r| {
                        c.nodes
                            .iter()
                            .map(|&n| &graph.nodes[n])
                            .filter(|n| !matches!(n.kind, NodeKind::Sink(_)))
                            .map(|n| r.finished_node(&n.name, subtask))
                            .collect()
                    });
                // Operators of the chain.
                let mut ops = Vec::new();
                for &n in &c.nodes {
                    let node = &graph.nodes[n];
                    if let NodeKind::Operator(f) = &node.kind {
                        let mut op = f
                            .create(subtask, c.parallelism)
                            .map_err(|e| e.context(format!("creating {}", node.name)))?;
                        if let Some(bytes) = restored.and_then(|r| r.state(&node.name, subtask)) {
                            op.restore(OperatorState::from_bytes(bytes)?).map_err(|e| {
                                e.context(format!("restoring {}[{subtask}]", node.name))
                            })?;
                        }
                        let metrics =
                            self.metrics
                                .register(NodeRole::Operator, &node.name, subtask);
                        ops.push(ChainedOperator {
                            op,
                            ctx: OperatorContext {
                                node: node.name.clone(),
                                subtask,
                                parallelism: c.parallelism,
                                split: None,
                                split_count: 0,
                                input: 0,
                                watermark: None,
                                metrics,
                            },
                        });
                    }
                }
                let mut chain = OperatorChain { ops };

                // Tail: a sink, or the edges out of the last node.
                let last = *c.nodes.last().unwrap_or(&c.nodes[0]);
                let tail = match &graph.nodes[last].kind {
                    NodeKind::Sink(f) => {
                        let node = &graph.nodes[last];
                        let sink = match &ckpt {
                            None => f.create(subtask, c.parallelism),
                            Some(_) => {
                                let recovery = match restored {
                                    None => None,
                                    Some(r) => Some(SinkRecovery {
                                        checkpoint_id: r.id,
                                        state: match r.state(&node.name, subtask) {
                                            Some(b) => OperatorState::from_bytes(b)?,
                                            None => OperatorState::empty(),
                                        },
                                    }),
                                };
                                f.create_checkpointed(subtask, c.parallelism, recovery)
                            }
                        }
                        .map_err(|e| e.context(format!("creating {}", node.name)))?;
                        let metrics = self.metrics.register(NodeRole::Sink, &node.name, subtask);
                        let last = restored.map_or(self.last_id, |r| r.id).max(self.last_id);
                        Tail::Sink {
                            sink,
                            metrics,
                            ckpt: ckpt.as_ref().map(|h| SinkCheckpointing {
                                handle: h.clone(),
                                task,
                                node: node.name.clone(),
                                subtask,
                                last_barrier: last,
                                committed: last,
                            }),
                        }
                    }
                    _ => {
                        let mut edges = Vec::new();
                        for e in graph.outputs(last) {
                            let down = chain_of(e.to)
                                .ok_or_else(|| WeirError::Internal("edge to no chain".into()))?;
                            let down_par = chains[down].parallelism;
                            let from = channel_index(e.to, (e.from, e.to), subtask);
                            let targets: Vec<usize> = if e.partitioning == Partitioning::Forward {
                                vec![subtask]
                            } else {
                                (0..down_par).collect()
                            };
                            let mut senders = Vec::new();
                            for t in targets {
                                let (tx, _, _) = receivers[down][t].as_ref().ok_or_else(|| {
                                    WeirError::Internal("edge into a source".into())
                                })?;
                                senders.push(tx.with_input(from));
                            }
                            let partitioner = match &e.partitioning {
                                Partitioning::Hash(keys) => {
                                    Some(HashPartitioner::new(keys.clone(), down_par))
                                }
                                _ => None,
                            };
                            edges.push(OutEdge {
                                partitioning: e.partitioning.clone(),
                                senders,
                                partitioner,
                                next: subtask,
                            });
                        }
                        Tail::Edges {
                            edges,
                            last_watermark: None,
                        }
                    }
                };

                let tick = self.config.tick_interval;
                let head = c.nodes[0];
                match &graph.nodes[head].kind {
                    NodeKind::Source(f) => {
                        let node = &graph.nodes[head];
                        let mut source = f
                            .create(subtask, c.parallelism)
                            .map_err(|e| e.context(format!("creating {}", node.name)))?;
                        if ckpt.is_some() && !source.supports_checkpoints() {
                            return Err(WeirError::Config(format!(
                                "source {} ({}) does not support checkpoints yet; run the job without --checkpoint-dir",
                                node.name,
                                f.describe()
                            )));
                        }
                        if let Some(p) = restored
                            .filter(|_| restored_finished.is_none())
                            .and_then(|r| r.positions(&node.name, subtask))
                        {
                            source.restore_positions(p).map_err(|e| {
                                e.context(format!("restoring {}[{subtask}]", node.name))
                            })?;
                        }
                        let split_count = source.split_count();
                        for op in &mut chain.ops {
                            op.ctx.split_count = split_count;
                        }
                        let metrics = self.metrics.register(NodeRole::Source, &node.name, subtask);
                        let end_positions = Arc::new(parking_lot::Mutex::new(Vec::new()));
                        let finished = restored_finished.is_some();
                        let output = RuntimeSourceOutput {
                            chain,
                            tail,
                            tick,
                            last_tick: Instant::now(),
                            ckpt: ckpt.as_ref().map(|h| TaskCheckpointing {
                                handle: h.clone(),
                                task,
                                source: Some((node.name.clone(), subtask)),
                            }),
                            end_positions: end_positions.clone(),
                            restored_finished,
                        };
                        let mut ctx = SourceContext::new(
                            subtask,
                            c.parallelism,
                            Box::new(output),
                            metrics,
                            self.cancelled.clone(),
                        );
                        if let Some(h) = &ckpt {
                            ctx.enable_checkpoints(h.trigger.clone(), source.positions());
                            ctx.track_completion(h.completed.clone());
                        }
                        let name = node.name.clone();
                        sources.push(run_source_task(source, ctx, name, end_positions, finished));
                    }
                    _ => {
                        let (_, rx, inputs) = receivers[ci][subtask]
                            .take()
                            .ok_or_else(|| WeirError::Internal("receiver taken twice".into()))?;
                        let task_ckpt = ckpt.as_ref().map(|h| TaskCheckpointing {
                            handle: h.clone(),
                            task,
                            source: None,
                        });
                        let task = ChannelTask {
                            rx,
                            inputs,
                            chain,
                            tail,
                            tick,
                            ckpt: task_ckpt,
                            restored_finished,
                            held_gauge: held_gauge.clone(),
                        };
                        tasks.spawn(task.run());
                    }
                }
            }
        }
        for source in sources {
            tasks.spawn(source);
        }
        // Drop the original senders so receivers see the end when producers
        // finish, and the coordinator's handle so it ends with the tasks.
        drop(receivers);
        drop(ckpt);

        let mut first_error: Option<WeirError> = None;
        while let Some(joined) = tasks.join_next().await {
            let result = match joined {
                Ok(r) => r,
                Err(e) if e.is_cancelled() => Ok(()),
                Err(e) => Err(WeirError::Internal(format!("task panicked: {e}"))),
            };
            if let Err(e) = result {
                let secondary =
                    matches!(&e, WeirError::Execution(m) if m == "downstream channel closed");
                match &first_error {
                    None => first_error = Some(e),
                    Some(WeirError::Execution(m))
                        if m == "downstream channel closed" && !secondary =>
                    {
                        first_error = Some(e)
                    }
                    _ => {}
                }
                self.cancelled.store(true, Ordering::Relaxed);
                tasks.abort_all();
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

async fn run_source_task(
    mut source: Box<dyn Source>,
    mut ctx: SourceContext,
    name: String,
    end_positions: Arc<parking_lot::Mutex<Vec<SplitPosition>>>,
    restored_finished: bool,
) -> Result<()> {
    if !restored_finished {
        if source.split_count() == 0 {
            // No splits: nothing will ever come from this subtask, so it must
            // not hold back the watermark downstream (Flink marks it idle).
            ctx.declare_idle().await?;
        }
        source
            .run(&mut ctx)
            .await
            .map_err(|e| e.context(format!("source {name}")))?;
        *end_positions.lock() = source.positions();
    }
    ctx.end().await
}

/// Checkpointing state of a task.
struct TaskCheckpointing {
    handle: CheckpointHandle,
    /// The task's number (see [`CoordinatorSettings::tasks`]).
    task: usize,
    /// The source node and subtask heading the task, if any.
    source: Option<(String, usize)>,
}

/// What a task reports when it finishes (see [`CheckpointEvent::Finished`]).
struct TaskEnd {
    handle: CheckpointHandle,
    task: usize,
    /// The source's final positions and the chained operators, marked
    /// finished (a sink tail adds its last pre-commit).
    nodes: Vec<NodeState>,
}

impl TaskCheckpointing {
    /// The report of a task that reached the end of its input: its source
    /// at `positions` (if it has one) and its operators, all finished.
    /// Operator state is not kept: a finished task is not run again.
    fn end(&self, chain: &OperatorChain, positions: Vec<SplitPosition>) -> TaskEnd {
        let mut nodes = Vec::new();
        if let Some((node, subtask)) = &self.source {
            nodes.push(NodeState {
                node: node.clone(),
                subtask: *subtask,
                state: Vec::new(),
                positions,
                finished: true,
            });
        }
        nodes.extend(chain.ops.iter().map(|op| NodeState {
            node: op.ctx.node.clone(),
            subtask: op.ctx.subtask,
            state: Vec::new(),
            positions: Vec::new(),
            finished: true,
        }));
        self.end_with(nodes)
    }

    /// The report of a task with `nodes` (a task restored as finished
    /// repeats what it reported before).
    fn end_with(&self, nodes: Vec<NodeState>) -> TaskEnd {
        TaskEnd {
            handle: self.handle.clone(),
            task: self.task,
            nodes,
        }
    }

    /// Snapshots the chain, pre-commits the tail's sink or forwards the
    /// barrier, and acknowledges the checkpoint.
    async fn checkpoint(
        &self,
        id: u64,
        chain: &mut OperatorChain,
        tail: &mut Tail,
        positions: Vec<SplitPosition>,
        alignment: Duration,
    ) -> Result<()> {
        let mut nodes = Vec::new();
        if let Some((node, subtask)) = &self.source {
            nodes.push(NodeState {
                node: node.clone(),
                subtask: *subtask,
                state: Vec::new(),
                positions,
                finished: false,
            });
        }
        nodes.extend(chain.snapshot()?);
        if let Some(n) = tail.barrier(id).await? {
            nodes.push(n);
        }
        self.handle
            .events
            .send(CheckpointEvent::Ack {
                task: self.task,
                id,
                nodes,
                alignment,
            })
            .map_err(|_| WeirError::Internal("checkpoint coordinator stopped".into()))
    }
}

/// Checkpointing state of a sink subtask.
struct SinkCheckpointing {
    handle: CheckpointHandle,
    /// The task the sink ends.
    task: usize,
    node: String,
    subtask: usize,
    /// The last barrier the sink pre-committed for.
    last_barrier: u64,
    /// The last checkpoint it committed.
    committed: u64,
}

/// The channel a task reads: a sender to clone for upstream tasks, the
/// receiver, and the input index of each of its channels.
type TaskInput = (Sender, Receiver, Vec<usize>);

/// An operator with its context, inside a chain.
struct ChainedOperator {
    op: Box<dyn Operator>,
    ctx: OperatorContext,
}

/// Operators called one after the other, by function call.
struct OperatorChain {
    ops: Vec<ChainedOperator>,
}

impl OperatorChain {
    /// Feeds `pending` into operator `start` and on through the chain;
    /// returns what comes out of the last operator.
    fn feed(
        &mut self,
        start: usize,
        mut pending: Vec<Output>,
        split: Option<usize>,
        input: usize,
    ) -> Result<Vec<Output>> {
        for i in start..self.ops.len() {
            if pending.is_empty() {
                break;
            }
            let op = &mut self.ops[i];
            op.ctx.split = split;
            op.ctx.input = if i == start { input } else { 0 };
            let mut out = Collector::new();
            for item in pending.drain(..) {
                match item {
                    Output::Batch(b) => {
                        op.ctx.metrics.record_in(b.num_rows());
                        let t = Instant::now();
                        op.op
                            .process_batch(b, &mut op.ctx, &mut out)
                            .map_err(|e| e.context(&op.ctx.node))?;
                        op.ctx
                            .metrics
                            .record_latency_ns(t.elapsed().as_nanos() as u64);
                    }
                    Output::Watermark(Watermark::EventTime(w)) => {
                        if op.ctx.watermark.is_none_or(|c| w > c) {
                            op.ctx.watermark = Some(w);
                            op.op
                                .on_watermark(w, &mut op.ctx, &mut out)
                                .map_err(|e| e.context(&op.ctx.node))?;
                        }
                    }
                    Output::Watermark(Watermark::Idle) => out.emit_idle(),
                }
            }
            pending = out.take();
            record_outputs(&op.ctx.metrics, &pending);
        }
        Ok(pending)
    }

    /// The encoded state of every operator of the chain.
    fn snapshot(&mut self) -> Result<Vec<NodeState>> {
        let mut nodes = Vec::with_capacity(self.ops.len());
        for op in &mut self.ops {
            let state = op
                .op
                .snapshot()
                .map_err(|e| e.context(format!("snapshot of {}", op.ctx.node)))?;
            nodes.push(NodeState {
                node: op.ctx.node.clone(),
                subtask: op.ctx.subtask,
                state: if state.is_empty() {
                    Vec::new()
                } else {
                    state.to_bytes()?
                },
                positions: Vec::new(),
                finished: false,
            });
        }
        Ok(nodes)
    }

    fn tick(&mut self, now: Instant) -> Result<Vec<Output>> {
        let mut result = Vec::new();
        for i in 0..self.ops.len() {
            let mut out = Collector::new();
            {
                let op = &mut self.ops[i];
                op.op
                    .on_tick(now, &mut op.ctx, &mut out)
                    .map_err(|e| e.context(&op.ctx.node))?;
            }
            let emitted = out.take();
            record_outputs(&self.ops[i].ctx.metrics, &emitted);
            result.extend(self.feed(i + 1, emitted, None, 0)?);
        }
        Ok(result)
    }

    fn end(&mut self) -> Result<Vec<Output>> {
        let mut result = Vec::new();
        for i in 0..self.ops.len() {
            let mut out = Collector::new();
            {
                let op = &mut self.ops[i];
                op.ctx.split = None;
                op.op
                    .on_end(&mut op.ctx, &mut out)
                    .map_err(|e| e.context(&op.ctx.node))?;
            }
            let emitted = out.take();
            record_outputs(&self.ops[i].ctx.metrics, &emitted);
            result.extend(self.feed(i + 1, emitted, None, 0)?);
        }
        Ok(result)
    }
}

fn record_outputs(metrics: &OperatorMetrics, outputs: &[Output]) {
    for o in outputs {
        match o {
            Output::Batch(b) => metrics.record_out(b.num_rows()),
            Output::Watermark(Watermark::EventTime(w)) => metrics.set_watermark(*w),
            Output::Watermark(Watermark::Idle) => {}
        }
    }
}

/// One edge out of a task.
struct OutEdge {
    partitioning: Partitioning,
    senders: Vec<Sender>,
    partitioner: Option<HashPartitioner>,
    next: usize,
}

/// Where a task's output goes.
enum Tail {
    Sink {
        sink: Box<dyn Sink>,
        metrics: Arc<OperatorMetrics>,
        ckpt: Option<SinkCheckpointing>,
    },
    Edges {
        edges: Vec<OutEdge>,
        last_watermark: Option<Watermark>,
    },
}

impl Tail {
    async fn emit(&mut self, outputs: Vec<Output>) -> Result<()> {
        self.poll_commit().await?;
        for o in outputs {
            match o {
                Output::Batch(b) => self.batch(b).await?,
                Output::Watermark(w) => self.watermark(w).await?,
            }
        }
        Ok(())
    }

    async fn batch(&mut self, batch: RecordBatch) -> Result<()> {
        match self {
            Tail::Sink { sink, metrics, .. } => {
                metrics.record_in(batch.num_rows());
                let t = Instant::now();
                sink.write_batch(batch).await?;
                metrics.record_latency_ns(t.elapsed().as_nanos() as u64);
                Ok(())
            }
            Tail::Edges { edges, .. } => {
                for e in edges.iter_mut() {
                    match &e.partitioning {
                        Partitioning::Forward => {
                            if let Some(s) = e.senders.first() {
                                s.send(Message::Batch(batch.clone())).await?;
                            }
                        }
                        Partitioning::Hash(_) => {
                            let parts = match e.partitioner.as_mut() {
                                Some(p) => p.partition(&batch)?,
                                None => vec![(0, batch.clone())],
                            };
                            for (p, b) in parts {
                                e.senders[p].send(Message::Batch(b)).await?;
                            }
                        }
                        Partitioning::Broadcast => {
                            for s in &e.senders {
                                s.send(Message::Batch(batch.clone())).await?;
                            }
                        }
                        Partitioning::Rebalance => {
                            let n = e.senders.len();
                            if n > 0 {
                                e.senders[e.next % n]
                                    .send(Message::Batch(batch.clone()))
                                    .await?;
                                e.next = e.next.wrapping_add(1);
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }

    async fn watermark(&mut self, w: Watermark) -> Result<()> {
        match self {
            Tail::Sink { sink, metrics, .. } => {
                if let Watermark::EventTime(t) = w {
                    metrics.set_watermark(t);
                    sink.on_watermark(t).await?;
                }
                Ok(())
            }
            Tail::Edges {
                edges,
                last_watermark,
            } => {
                if *last_watermark == Some(w) {
                    return Ok(());
                }
                *last_watermark = Some(w);
                for e in edges.iter() {
                    for s in &e.senders {
                        s.send(Message::Watermark(w)).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Commits the sink up to the latest completed checkpoint.
    async fn poll_commit(&mut self) -> Result<()> {
        if let Tail::Sink {
            sink,
            ckpt: Some(c),
            ..
        } = self
        {
            let done = *c.handle.completed.borrow();
            if done > c.committed {
                sink.commit(done).await?;
                c.committed = done;
            }
        }
        Ok(())
    }

    /// Barrier `id` reached the tail: a sink pre-commits (its state is
    /// returned), edges forward the barrier.
    async fn barrier(&mut self, id: u64) -> Result<Option<NodeState>> {
        self.poll_commit().await?;
        match self {
            Tail::Sink { sink, ckpt, .. } => {
                let state = sink.pre_commit(id).await?;
                let Some(c) = ckpt.as_mut() else {
                    return Ok(None);
                };
                c.last_barrier = id;
                Ok(Some(NodeState {
                    node: c.node.clone(),
                    subtask: c.subtask,
                    state: if state.is_empty() {
                        Vec::new()
                    } else {
                        state.to_bytes()?
                    },
                    positions: Vec::new(),
                    finished: false,
                }))
            }
            Tail::Edges { edges, .. } => {
                for e in edges.iter() {
                    for s in &e.senders {
                        s.send(Message::Barrier(Barrier { checkpoint_id: id }))
                            .await?;
                    }
                }
                Ok(None)
            }
        }
    }

    /// End of the task's input: a sink pre-commits its last epoch, reports
    /// it with `report` and commits once a checkpoint covers it; edges
    /// forward end of stream (after `report` is sent).
    async fn end(&mut self, report: Option<TaskEnd>) -> Result<()> {
        let stopped = || WeirError::Internal("checkpoint coordinator stopped".into());
        match self {
            Tail::Sink {
                sink,
                ckpt: Some(c),
                ..
            } => {
                // The end of input is a last checkpoint: pre-commit, let the
                // coordinator record it, then commit.
                let epoch = c.last_barrier + 1;
                let state = sink.pre_commit(epoch).await?;
                let mut nodes = report.map(|r| r.nodes).unwrap_or_default();
                nodes.push(NodeState {
                    node: c.node.clone(),
                    subtask: c.subtask,
                    state: if state.is_empty() {
                        Vec::new()
                    } else {
                        state.to_bytes()?
                    },
                    positions: Vec::new(),
                    finished: true,
                });
                c.handle
                    .events
                    .send(CheckpointEvent::Finished {
                        task: c.task,
                        nodes,
                        epoch: Some(epoch),
                    })
                    .map_err(|_| stopped())?;
                let mut completed = c.handle.completed.clone();
                let done = *completed.wait_for(|v| *v >= epoch).await.map_err(|_| {
                    WeirError::Execution(
                        "the checkpoint coordinator stopped before the final checkpoint".into(),
                    )
                })?;
                sink.commit(done).await?;
                c.committed = done;
                sink.finish().await
            }
            Tail::Sink { sink, .. } => sink.finish().await,
            Tail::Edges { edges, .. } => {
                if let Some(r) = report {
                    r.handle
                        .events
                        .send(CheckpointEvent::Finished {
                            task: r.task,
                            nodes: r.nodes,
                            epoch: None,
                        })
                        .map_err(|_| stopped())?;
                }
                for e in edges.iter() {
                    for s in &e.senders {
                        s.send(Message::EndOfStream).await?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// The output of a source task: its chain and tail.
struct RuntimeSourceOutput {
    chain: OperatorChain,
    tail: Tail,
    tick: Duration,
    last_tick: Instant,
    ckpt: Option<TaskCheckpointing>,
    /// The source's positions once it returned (set by the source task).
    end_positions: Arc<parking_lot::Mutex<Vec<SplitPosition>>>,
    /// Set when the restored checkpoint had this task finished: what it
    /// reported then.
    restored_finished: Option<Vec<NodeState>>,
}

impl RuntimeSourceOutput {
    async fn maybe_tick(&mut self) -> Result<()> {
        let now = Instant::now();
        if now.duration_since(self.last_tick) >= self.tick {
            self.last_tick = now;
            let outs = self.chain.tick(now)?;
            self.tail.emit(outs).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl SourceOutput for RuntimeSourceOutput {
    async fn batch(&mut self, split: usize, batch: RecordBatch) -> Result<()> {
        let outs = self
            .chain
            .feed(0, vec![Output::Batch(batch)], Some(split), 0)?;
        self.tail.emit(outs).await?;
        self.maybe_tick().await
    }

    async fn tick(&mut self) -> Result<()> {
        self.tail.poll_commit().await?;
        self.maybe_tick().await
    }

    async fn barrier(&mut self, id: u64, positions: Vec<SplitPosition>) -> Result<()> {
        match &self.ckpt {
            Some(c) => {
                c.checkpoint(
                    id,
                    &mut self.chain,
                    &mut self.tail,
                    positions,
                    Duration::ZERO,
                )
                .await
            }
            None => Ok(()),
        }
    }

    async fn idle(&mut self) -> Result<()> {
        self.tail.watermark(Watermark::Idle).await
    }

    async fn end(&mut self) -> Result<()> {
        if let Some(nodes) = self.restored_finished.take() {
            let report = self.ckpt.as_ref().map(|c| c.end_with(nodes));
            return self.tail.end(report).await;
        }
        let outs = self.chain.end()?;
        self.tail.emit(outs).await?;
        let positions = std::mem::take(&mut *self.end_positions.lock());
        let report = self.ckpt.as_ref().map(|c| c.end(&self.chain, positions));
        self.tail.end(report).await
    }
}

/// Watermark bookkeeping of one input channel.
#[derive(Debug, Clone, Copy, Default)]
struct ChannelState {
    input: usize,
    watermark: Option<i64>,
    idle: bool,
    ended: bool,
}

/// The combined watermark status over channels.
fn combined(channels: &[ChannelState]) -> Option<Watermark> {
    let mut min: Option<i64> = None;
    let mut any_active = false;
    let mut any_idle = false;
    for c in channels.iter().filter(|c| !c.ended) {
        if c.idle {
            any_idle = true;
            continue;
        }
        any_active = true;
        match c.watermark {
            None => return None,
            Some(w) => min = Some(min.map_or(w, |m| m.min(w))),
        }
    }
    if any_active {
        min.map(Watermark::EventTime)
    } else if any_idle {
        Some(Watermark::Idle)
    } else {
        None
    }
}

/// A task that reads a channel: its input, chain and tail.
struct ChannelTask {
    rx: Receiver,
    /// The input index of each channel.
    inputs: Vec<usize>,
    chain: OperatorChain,
    tail: Tail,
    tick: Duration,
    ckpt: Option<TaskCheckpointing>,
    /// Set when the restored checkpoint had this task finished: what it
    /// reported then.
    restored_finished: Option<Vec<NodeState>>,
    /// The job's gauge of the most rows held back by alignment.
    held_gauge: Arc<std::sync::atomic::AtomicU64>,
}

impl ChannelTask {
    async fn run(mut self) -> Result<()> {
        if let Some(nodes) = self.restored_finished.take() {
            // Its upstream tasks finished too: they only send end of stream.
            self.drain_finished_inputs().await?;
            let report = self.ckpt.as_ref().map(|c| c.end_with(nodes));
            return self.tail.end(report).await;
        }
        self.process().await?;
        let outs = self.chain.end()?;
        self.tail.emit(outs).await?;
        let report = self.ckpt.as_ref().map(|c| c.end(&self.chain, Vec::new()));
        self.tail.end(report).await
    }

    /// Reads until every channel ended, for a task restored as finished.
    async fn drain_finished_inputs(&mut self) -> Result<()> {
        let mut open = self.inputs.len();
        while open > 0 {
            let env = self.rx.recv().await.ok_or_else(|| {
                WeirError::Execution("an upstream task stopped without end of stream".into())
            })?;
            match env.message {
                Message::EndOfStream => open -= 1,
                Message::Batch(_) | Message::Barrier(_) => {
                    return Err(WeirError::Internal(
                        "a task restored as finished received data: its upstream was not finished"
                            .into(),
                    ))
                }
                Message::Watermark(_) => {}
            }
        }
        Ok(())
    }

    /// Processes the input until every channel ended.
    async fn process(&mut self) -> Result<()> {
        let chain = &mut self.chain;
        let tail = &mut self.tail;
        let mut channels: Vec<ChannelState> = self
            .inputs
            .iter()
            .map(|&input| ChannelState {
                input,
                ..Default::default()
            })
            .collect();
        // Barrier alignment: channels that delivered the barrier of the
        // checkpoint being aligned, the messages held back from them, and
        // messages released after an alignment, processed before new ones.
        // A held message keeps its input's channel credit until processed,
        // so a channel whose barrier came first is held to at most the
        // channel capacity, then its sender waits (see `crate::channel`).
        let mut barrier_seen = vec![false; channels.len()];
        let mut held: Vec<VecDeque<Envelope>> = channels.iter().map(|_| VecDeque::new()).collect();
        let mut held_rows = 0u64;
        let mut released: VecDeque<Envelope> = VecDeque::new();
        let mut aligning: Option<(u64, Instant)> = None;
        let mut forwarded: Option<Watermark> = None;
        let mut current: Option<i64> = None;
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while channels.iter().any(|c| !c.ended) || !released.is_empty() {
            let env = match released.pop_front() {
                Some(m) => m,
                None => tokio::select! {
                    env = self.rx.recv() => {
                        let Some(env) = env else {
                            return Err(WeirError::Execution(
                                "an upstream task stopped without end of stream".into(),
                            ));
                        };
                        env
                    }
                    _ = ticker.tick() => {
                        let outs = chain.tick(Instant::now())?;
                        tail.emit(outs).await?;
                        continue;
                    }
                },
            };
            let from = env.from;
            if from >= channels.len() {
                return Err(WeirError::Internal(format!(
                    "message from unknown channel {from}"
                )));
            }
            if barrier_seen[from] {
                held_rows += env.weight() as u64;
                self.held_gauge
                    .fetch_max(held_rows, std::sync::atomic::Ordering::Relaxed);
                held[from].push_back(env);
                continue;
            }
            // The envelope (and with it the input's credit) goes when the
            // message is processed.
            let message = env.message;
            let state = &mut channels[from];
            match message {
                Message::Batch(b) => {
                    let input = state.input;
                    if state.idle {
                        state.idle = false;
                    }
                    let outs = chain.feed(0, vec![Output::Batch(b)], None, input)?;
                    tail.emit(outs).await?;
                    continue;
                }
                Message::Watermark(Watermark::EventTime(w)) => {
                    state.idle = false;
                    state.watermark = Some(state.watermark.map_or(w, |c| c.max(w)));
                }
                Message::Watermark(Watermark::Idle) => state.idle = true,
                Message::Barrier(b) => {
                    if aligning.is_none() {
                        aligning = Some((b.checkpoint_id, Instant::now()));
                    }
                    barrier_seen[from] = true;
                }
                Message::EndOfStream => state.ended = true,
            }
            if let Some((id, started)) = aligning {
                // Aligned once every live channel delivered the barrier;
                // ended channels are not waited for.
                let aligned = channels
                    .iter()
                    .zip(&barrier_seen)
                    .all(|(c, seen)| c.ended || *seen);
                if aligned {
                    match &self.ckpt {
                        Some(c) => {
                            c.checkpoint(id, chain, tail, Vec::new(), started.elapsed())
                                .await?
                        }
                        None => {
                            tail.barrier(id).await?;
                        }
                    }
                    aligning = None;
                    held_rows = 0;
                    for (k, seen) in barrier_seen.iter_mut().enumerate() {
                        *seen = false;
                        released.extend(held[k].drain(..));
                    }
                }
            }
            let status = combined(&channels);
            match status {
                Some(Watermark::EventTime(w)) if current.is_none_or(|c| w > c) => {
                    current = Some(w);
                    forwarded = status;
                    let outs =
                        chain.feed(0, vec![Output::Watermark(Watermark::EventTime(w))], None, 0)?;
                    tail.emit(outs).await?;
                }
                Some(Watermark::EventTime(w)) if forwarded == Some(Watermark::Idle) => {
                    // Active again but not past the watermark already
                    // forwarded: re-forward that one so downstream
                    // counts this input as active again (Flink's
                    // stream status going back to ACTIVE).
                    let w = current.map_or(w, |c| c.max(w));
                    current = Some(w);
                    forwarded = Some(Watermark::EventTime(w));
                    let outs =
                        chain.feed(0, vec![Output::Watermark(Watermark::EventTime(w))], None, 0)?;
                    tail.emit(outs).await?;
                }
                Some(Watermark::Idle) if forwarded != Some(Watermark::Idle) => {
                    forwarded = status;
                    let outs = chain.feed(0, vec![Output::Watermark(Watermark::Idle)], None, 0)?;
                    tail.emit(outs).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod checkpoint_tests;
#[cfg(test)]
mod tests;
