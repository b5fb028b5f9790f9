//! The dataflow graph of a job: nodes, edges, and how nodes are chained.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use crate::error::{Result, WeirError};
use crate::operator::OperatorFactory;
use crate::sink::SinkFactory;
use crate::source::SourceFactory;

/// Index of a node in a [`JobGraph`].
pub type NodeId = usize;

/// What a node does.
#[derive(Clone)]
pub enum NodeKind {
    /// Reads from outside.
    Source(Arc<dyn SourceFactory>),
    /// Transforms batches.
    Operator(Arc<dyn OperatorFactory>),
    /// Writes to outside.
    Sink(Arc<dyn SinkFactory>),
}

impl std::fmt::Debug for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeKind::Source(s) => write!(f, "Source({})", s.describe()),
            NodeKind::Operator(_) => write!(f, "Operator"),
            NodeKind::Sink(s) => write!(f, "Sink({})", s.describe()),
        }
    }
}

/// A node of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// Short name, unique in the graph (used in metrics).
    pub name: String,
    /// One line for `explain` (expressions, window, options).
    pub description: String,
    /// Number of parallel subtasks.
    pub parallelism: usize,
    /// What it does.
    pub kind: NodeKind,
    /// Schema of its output (sinks: of their input).
    pub schema: SchemaRef,
}

/// How rows travel along an edge from upstream to downstream subtasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// Subtask i sends to subtask i (same parallelism); chainable.
    Forward,
    /// Rows go to the subtask chosen by a hash of these columns.
    Hash(Vec<usize>),
    /// Every row goes to every downstream subtask.
    Broadcast,
    /// Batches are spread round-robin.
    Rebalance,
}

impl std::fmt::Display for Partitioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Partitioning::Forward => write!(f, "forward"),
            Partitioning::Hash(k) => write!(f, "hash{k:?}"),
            Partitioning::Broadcast => write!(f, "broadcast"),
            Partitioning::Rebalance => write!(f, "rebalance"),
        }
    }
}

/// A directed edge.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Upstream node.
    pub from: NodeId,
    /// Downstream node.
    pub to: NodeId,
    /// How rows are distributed.
    pub partitioning: Partitioning,
}

/// A dataflow graph. Build it with [`JobGraph::add_node`] and
/// [`JobGraph::connect`]; the runtime runs it.
#[derive(Debug, Clone, Default)]
pub struct JobGraph {
    /// The nodes, indexed by [`NodeId`].
    pub nodes: Vec<Node>,
    /// The edges.
    pub edges: Vec<Edge>,
}

/// A maximal run of nodes connected by forward edges, run by one task per
/// subtask with no channel inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The nodes, upstream first.
    pub nodes: Vec<NodeId>,
    /// Their common parallelism.
    pub parallelism: usize,
}

impl JobGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node and returns its id. Names are made unique by suffixing.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        parallelism: usize,
        kind: NodeKind,
        schema: SchemaRef,
    ) -> NodeId {
        let mut name = name.into();
        if self.nodes.iter().any(|n| n.name == name) {
            let base = name.clone();
            let mut i = 2;
            while self.nodes.iter().any(|n| n.name == name) {
                name = format!("{base}#{i}");
                i += 1;
            }
        }
        self.nodes.push(Node {
            name,
            description: description.into(),
            parallelism: parallelism.max(1),
            kind,
            schema,
        });
        self.nodes.len() - 1
    }

    /// Connects two nodes. A forward edge between nodes of different
    /// parallelism becomes a rebalance edge.
    pub fn connect(&mut self, from: NodeId, to: NodeId, partitioning: Partitioning) {
        let partitioning = match partitioning {
            Partitioning::Forward if self.nodes[from].parallelism != self.nodes[to].parallelism => {
                Partitioning::Rebalance
            }
            p => p,
        };
        self.edges.push(Edge {
            from,
            to,
            partitioning,
        });
    }

    /// Edges into `node`, in insertion order (the input index of an edge).
    pub fn inputs(&self, node: NodeId) -> Vec<&Edge> {
        self.edges.iter().filter(|e| e.to == node).collect()
    }

    /// Edges out of `node`.
    pub fn outputs(&self, node: NodeId) -> Vec<&Edge> {
        self.edges.iter().filter(|e| e.from == node).collect()
    }

    /// Checks that the graph is well formed: sources have no inputs, sinks
    /// no outputs, every operator and sink has an input, edges point at
    /// existing nodes, and there is no cycle.
    pub fn validate(&self) -> Result<()> {
        for e in &self.edges {
            if e.from >= self.nodes.len() || e.to >= self.nodes.len() {
                return Err(WeirError::Internal(format!("edge {e:?} out of range")));
            }
        }
        for (id, n) in self.nodes.iter().enumerate() {
            let ins = self.inputs(id).len();
            let outs = self.outputs(id).len();
            match n.kind {
                NodeKind::Source(_) if ins > 0 => {
                    return Err(WeirError::Internal(format!("source {} has inputs", n.name)))
                }
                NodeKind::Sink(_) if outs > 0 => {
                    return Err(WeirError::Internal(format!("sink {} has outputs", n.name)))
                }
                NodeKind::Operator(_) | NodeKind::Sink(_) if ins == 0 => {
                    return Err(WeirError::Internal(format!("{} has no input", n.name)))
                }
                _ => {}
            }
        }
        self.topological_order().map(|_| ())
    }

    /// Nodes in an order where every edge goes forward.
    pub fn topological_order(&self) -> Result<Vec<NodeId>> {
        let mut indegree = vec![0usize; self.nodes.len()];
        for e in &self.edges {
            indegree[e.to] += 1;
        }
        let mut ready: Vec<NodeId> = (0..self.nodes.len())
            .filter(|&i| indegree[i] == 0)
            .rev()
            .collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(n) = ready.pop() {
            order.push(n);
            for e in self.edges.iter().filter(|e| e.from == n) {
                indegree[e.to] -= 1;
                if indegree[e.to] == 0 {
                    ready.push(e.to);
                }
            }
        }
        if order.len() != self.nodes.len() {
            return Err(WeirError::Internal("the dataflow graph has a cycle".into()));
        }
        Ok(order)
    }

    /// Groups nodes into chains: `b` joins the chain of `a` when the only
    /// edge out of `a` is a forward edge to `b`, it is the only edge into
    /// `b`, and `a` is not a sink.
    pub fn chains(&self) -> Result<Vec<Chain>> {
        let order = self.topological_order()?;
        let mut chain_of: Vec<Option<usize>> = vec![None; self.nodes.len()];
        let mut chains: Vec<Chain> = Vec::new();
        for n in order {
            let ins = self.inputs(n);
            let joined = if let [edge] = ins.as_slice() {
                let up = edge.from;
                edge.partitioning == Partitioning::Forward
                    && self.outputs(up).len() == 1
                    && !matches!(self.nodes[up].kind, NodeKind::Sink(_))
                    && chain_of[up].is_some_and(|c| chains[c].nodes.last() == Some(&up))
            } else {
                false
            };
            if joined {
                let c = chain_of[ins[0].from].unwrap_or_default();
                chains[c].nodes.push(n);
                chain_of[n] = Some(c);
            } else {
                chains.push(Chain {
                    nodes: vec![n],
                    parallelism: self.nodes[n].parallelism,
                });
                chain_of[n] = Some(chains.len() - 1);
            }
        }
        Ok(chains)
    }

    /// A readable description: chains (tasks), nodes with their
    /// parallelism, and the edges between chains.
    pub fn explain(&self) -> Result<String> {
        let chains = self.chains()?;
        let mut s = String::new();
        for (i, c) in chains.iter().enumerate() {
            let _ = writeln!(s, "task {i} (parallelism {}):", c.parallelism);
            for (j, &n) in c.nodes.iter().enumerate() {
                let node = &self.nodes[n];
                let kind = match node.kind {
                    NodeKind::Source(_) => "source",
                    NodeKind::Operator(_) => "operator",
                    NodeKind::Sink(_) => "sink",
                };
                let arrow = if j == 0 { "  " } else { "  -> " };
                let _ = writeln!(
                    s,
                    "{arrow}[{n}] {} ({kind}): {}",
                    node.name, node.description
                );
            }
        }
        let cross: Vec<_> = self
            .edges
            .iter()
            .filter(|e| {
                let cf = chains.iter().position(|c| c.nodes.contains(&e.from));
                let ct = chains.iter().position(|c| c.nodes.contains(&e.to));
                cf != ct
            })
            .collect();
        if !cross.is_empty() {
            let _ = writeln!(s, "edges between tasks:");
            for e in cross {
                let _ = writeln!(
                    s,
                    "  [{}] {} --{}--> [{}] {}",
                    e.from, self.nodes[e.from].name, e.partitioning, e.to, self.nodes[e.to].name
                );
            }
        }
        Ok(s)
    }
}
