//! Stage graph runtime: sources, stages and sinks on their own threads, joined by
//! bounded channels.
//!
//! Responsibility: the generic dataflow engine under every pipeline. A [`Graph`] is
//! built with [`Graph::add_source`] / [`Graph::add_stage`] / [`Graph::add_sink`] and
//! [`Graph::connect`]; [`Graph::run`] validates it, spawns one named thread per node,
//! waits for all of them and returns a [`RunReport`] (or the first error).
//!
//! - Edges (`edge.rs`) are bounded `crossbeam_channel`s with a [`Policy`]: `Block`
//!   (backpressure) or `DropOldest` (keep the newest, for live streams). A node with
//!   several outputs sends a clone to each (fan-out); one with several inputs merges
//!   them (fan-in) and sees end of stream once all are closed.
//! - Shutdown: the first error or panic, or the external [`StopFlag`] (Ctrl-C), stops
//!   the graph: sources are no longer polled, every wait is bounded so all threads
//!   notice within ~20 ms, every sink's `finish` still runs, all threads are joined.
//! - Metrics (`metrics.rs`): per node items in/out, busy time, latency p50/p99; per edge
//!   sent, dropped, depth. Live through [`Graph::metrics`], final in the report.
//!
//! Contact points: `pipeline` assembles graphs from pipeline files; `main.rs` installs
//! the Ctrl-C handler on a [`StopFlag`] and prints [`RunReport::table`].

mod edge;
mod metrics;
mod node;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::bounded;

pub use edge::{EdgeSpec, Policy};
pub use metrics::{EdgeStats, GraphMetrics, Histogram, NodeKind, RunReport, StageStats};

use edge::{Inlets, Outlet};
use metrics::{EdgeMetrics, NodeMetrics};
use node::{panic_message, Control, NodeImpl, Worker};

/// Error type of user node code.
pub type BoxError = anyhow::Error;

/// Emits items.
pub trait Source<T>: Send {
    /// The next item; `Ok(None)` = end of stream.
    fn next(&mut self) -> Result<Option<T>, BoxError>;
}

/// Transforms items.
pub trait Stage<T>: Send {
    /// Handles one input; may push 0..n outputs into `out` (a reused buffer).
    fn process(&mut self, item: T, out: &mut Vec<T>) -> Result<(), BoxError>;
    /// Called once at end of stream (all inputs closed); may emit more. Not called when
    /// the graph is stopped or failed.
    fn finish(&mut self, _out: &mut Vec<T>) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Consumes items.
pub trait Sink<T>: Send {
    /// Handles one item.
    fn consume(&mut self, item: T) -> Result<(), BoxError>;
    /// Flushes. Called at end of stream, and also after a stop (Ctrl-C) or an error
    /// elsewhere in the graph (best effort: flush what was consumed).
    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Identifies a node of one [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(pub usize);

/// Shared cancellation flag (the Ctrl-C handler sets it). Clones share the same flag.
#[derive(Clone, Default, Debug)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A new, unset flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every graph using this flag to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether [`StopFlag::stop`] was called.
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Why a graph could not be built or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// A node returned an error (the first one; it stopped the graph).
    /// Its message includes the node's (with that error's own causes), so the node's
    /// error is not also given as its source: a chain printed in full would say it twice.
    #[error("stage `{stage}` failed: {error:#}")]
    Stage {
        /// Node name.
        stage: String,
        /// The node's error.
        error: BoxError,
    },
    /// A node panicked; the panic was caught and stopped the graph.
    #[error("stage `{stage}` panicked: {message}")]
    Panic {
        /// Node name.
        stage: String,
        /// The panic message.
        message: String,
    },
    /// The graph is malformed (bad edge, missing input or output, cycle).
    #[error("invalid graph: {0}")]
    Wiring(String),
}

struct NodeEntry<T> {
    name: String,
    node: NodeImpl<T>,
    metrics: Arc<NodeMetrics>,
}

impl<T> NodeEntry<T> {
    fn kind(&self) -> NodeKind {
        self.metrics.kind
    }
}

struct EdgeEntry {
    from: usize,
    to: usize,
    spec: EdgeSpec,
    metrics: Arc<EdgeMetrics>,
}

/// A dataflow graph of items of type `T`, run with [`Graph::run`].
pub struct Graph<T> {
    nodes: Vec<NodeEntry<T>>,
    edges: Vec<EdgeEntry>,
    stop: StopFlag,
    metrics: GraphMetrics,
}

impl<T: Clone + Send + 'static> Default for Graph<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Send + 'static> Graph<T> {
    /// An empty graph with its own (never set) stop flag.
    pub fn new() -> Self {
        Graph {
            nodes: Vec::new(),
            edges: Vec::new(),
            stop: StopFlag::new(),
            metrics: GraphMetrics::new(),
        }
    }

    /// Uses `stop` (e.g. set by a Ctrl-C handler) to stop the graph from outside.
    pub fn with_stop(mut self, stop: StopFlag) -> Self {
        self.metrics.set_stop(stop.clone());
        self.stop = stop;
        self
    }

    fn add(&mut self, name: &str, node: NodeImpl<T>, kind: NodeKind) -> NodeId {
        let metrics = Arc::new(NodeMetrics::new(name, kind));
        self.metrics.add_node(metrics.clone());
        self.nodes.push(NodeEntry {
            name: name.to_string(),
            node,
            metrics,
        });
        NodeId(self.nodes.len() - 1)
    }

    /// Adds a source node.
    pub fn add_source(&mut self, name: &str, s: impl Source<T> + 'static) -> NodeId {
        self.add(name, NodeImpl::Source(Box::new(s)), NodeKind::Source)
    }

    /// Adds a stage node.
    pub fn add_stage(&mut self, name: &str, s: impl Stage<T> + 'static) -> NodeId {
        self.add(name, NodeImpl::Stage(Box::new(s)), NodeKind::Stage)
    }

    /// Adds a sink node.
    pub fn add_sink(&mut self, name: &str, s: impl Sink<T> + 'static) -> NodeId {
        self.add(name, NodeImpl::Sink(Box::new(s)), NodeKind::Sink)
    }

    /// Adds an edge `from -> to`.
    ///
    /// Errors ([`GraphError::Wiring`]) for: a sink as `from`, a source as `to`, unknown
    /// ids, capacity 0, a duplicate edge.
    pub fn connect(&mut self, from: NodeId, to: NodeId, edge: EdgeSpec) -> Result<(), GraphError> {
        let wiring = |m: String| Err(GraphError::Wiring(m));
        let n = self.nodes.len();
        if from.0 >= n || to.0 >= n {
            let bad = if from.0 >= n { from } else { to };
            return wiring(format!("unknown node id {} (graph has {n} nodes)", bad.0));
        }
        let (f, t) = (&self.nodes[from.0], &self.nodes[to.0]);
        if f.kind() == NodeKind::Sink {
            return wiring(format!("sink `{}` cannot be the start of an edge", f.name));
        }
        if t.kind() == NodeKind::Source {
            return wiring(format!("source `{}` cannot be the end of an edge", t.name));
        }
        if edge.capacity == 0 {
            return wiring(format!(
                "edge `{}` -> `{}` has capacity 0 (must be at least 1)",
                f.name, t.name
            ));
        }
        if self.edges.iter().any(|e| e.from == from.0 && e.to == to.0) {
            return wiring(format!("duplicate edge `{}` -> `{}`", f.name, t.name));
        }
        let metrics = Arc::new(EdgeMetrics::new(
            &f.name,
            &t.name,
            edge.capacity,
            edge.policy,
        ));
        self.metrics.add_edge(metrics.clone());
        self.edges.push(EdgeEntry {
            from: from.0,
            to: to.0,
            spec: edge,
            metrics,
        });
        Ok(())
    }

    /// Live metrics handle, usable from another thread while [`Graph::run`] executes
    /// (e.g. to print `--stats` once a second). Stays valid after the run.
    pub fn metrics(&self) -> GraphMetrics {
        self.metrics.clone()
    }

    /// Checks: every stage and sink has an input, every source and stage an output, and
    /// there is no cycle (a cycle of bounded `Block` edges could deadlock and would never
    /// see end of stream).
    fn validate(&self) -> Result<(), GraphError> {
        let n = self.nodes.len();
        let mut indeg = vec![0usize; n];
        let mut outdeg = vec![0usize; n];
        for e in &self.edges {
            outdeg[e.from] += 1;
            indeg[e.to] += 1;
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let kind = node.kind();
            if kind != NodeKind::Source && indeg[i] == 0 {
                return Err(GraphError::Wiring(format!(
                    "{kind} `{}` has no input",
                    node.name
                )));
            }
            if kind != NodeKind::Sink && outdeg[i] == 0 {
                return Err(GraphError::Wiring(format!(
                    "{kind} `{}` has no output",
                    node.name
                )));
            }
        }
        // Kahn's algorithm: nodes never freed are on (or behind) a cycle.
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        for e in &self.edges {
            succ[e.from].push(e.to);
        }
        let mut remaining = indeg;
        let mut ready: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
        let mut done = 0;
        while let Some(i) = ready.pop() {
            done += 1;
            for &j in &succ[i] {
                remaining[j] -= 1;
                if remaining[j] == 0 {
                    ready.push(j);
                }
            }
        }
        if done < n {
            let names: Vec<String> = (0..n)
                .filter(|&i| remaining[i] > 0)
                .map(|i| format!("`{}`", self.nodes[i].name))
                .collect();
            return Err(GraphError::Wiring(format!(
                "cycle through {}",
                names.join(", ")
            )));
        }
        Ok(())
    }

    /// Validates the graph, spawns one named thread per node, waits for all of them and
    /// returns the report.
    ///
    /// The first node error stops the graph and is returned as [`GraphError::Stage`]
    /// with that node's name; a panic in a node is caught and returned as
    /// [`GraphError::Panic`]. A stop through the [`StopFlag`] returns `Ok` with
    /// `stopped = true` (queued items may be discarded, sinks are flushed). An error is
    /// returned even if the stop flag was set as well.
    pub fn run(self) -> Result<RunReport, GraphError> {
        self.validate()?;
        let Graph {
            nodes,
            edges,
            stop,
            metrics,
        } = self;

        let n = nodes.len();
        let mut inputs: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
        let mut outputs: Vec<Vec<Outlet<T>>> = (0..n).map(|_| Vec::new()).collect();
        for e in &edges {
            let (tx, rx) = bounded(e.spec.capacity);
            let probe = rx.clone();
            e.metrics.set_probe(Box::new(move || probe.len()));
            let evict = match e.spec.policy {
                Policy::Block => None,
                Policy::DropOldest => Some(rx.clone()),
            };
            // `tx` is moved into the outlet, which only the upstream thread owns: no
            // other sender clone may survive here, or downstream would never see end
            // of stream.
            outputs[e.from].push(Outlet::new(tx, evict, e.spec.capacity, e.metrics.clone()));
            inputs[e.to].push(rx);
        }
        let names: HashSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        if names.len() < n {
            log::warn!("graph has duplicate node names; metrics will be ambiguous");
        }

        let ctl = Control::new(stop.clone());
        let start = Instant::now();
        metrics.mark_started(start);
        std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(n);
            let wiring = inputs.into_iter().zip(outputs);
            for (entry, (ins, outs)) in nodes.into_iter().zip(wiring) {
                let NodeEntry {
                    name,
                    node,
                    metrics,
                } = entry;
                let worker = Worker::new(name.clone(), &ctl, metrics, Inlets::new(ins), outs);
                let spawned = std::thread::Builder::new()
                    .name(name.replace('\0', " "))
                    .spawn_scoped(scope, move || worker.run(node));
                match spawned {
                    Ok(h) => handles.push((name, h)),
                    // The closure (with its channel ends) is dropped: neighbours see
                    // their edges close, and the stop makes everyone else wind down.
                    Err(e) => ctl.fail(GraphError::Stage {
                        stage: name,
                        error: anyhow::Error::new(e).context("cannot spawn thread"),
                    }),
                }
            }
            for (name, h) in handles {
                // Worker code catches user panics; this only fires on a bug in the
                // runtime itself, and is still reported rather than propagated.
                if let Err(p) = h.join() {
                    ctl.fail(GraphError::Panic {
                        stage: name,
                        message: panic_message(p.as_ref()),
                    });
                }
            }
        });
        let wall = start.elapsed();
        metrics.mark_finished(wall);
        let mut report = metrics.snapshot();
        report.stopped = stop.is_stopped();
        match ctl.take_error() {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

#[cfg(test)]
mod tests;
