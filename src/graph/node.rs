//! The thread body of one graph node: the source, stage and sink loops.
//!
//! Responsibility: call the user's [`Source`]/[`Stage`]/[`Sink`] code, move items
//! between [`Inlets`] and [`Outlet`]s, time everything for the metrics, and obey the
//! shared [`Control`] (stop flags, first error). User code runs under `catch_unwind`,
//! so a panic becomes a [`GraphError::Panic`] and the node shuts down like on an error.
//!
//! Contact points: `Graph::run` (mod.rs) builds one [`Worker`] per node and spawns it;
//! the node's metrics go through [`LocalStats`] to its `NodeMetrics`.
//!
//! No-hang rule: every wait in here (receiving, or sending into a full `Block` edge) is
//! bounded by [`POLL`], after which the stop flags are checked again.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::edge::{Inlets, Msg, Outlet, Pushed, Recv};
use super::metrics::{lock, LocalStats, NodeMetrics};
use super::{BoxError, GraphError, Sink, Source, Stage, StopFlag};

/// Longest a node waits on a channel before re-checking the stop flags. Bounds the
/// reaction time to Ctrl-C and to errors elsewhere in the graph.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// The user object behind a node.
pub(crate) enum NodeImpl<T> {
    Source(Box<dyn Source<T>>),
    Stage(Box<dyn Stage<T>>),
    Sink(Box<dyn Sink<T>>),
}

/// Run-wide shutdown state shared by all node threads.
pub(crate) struct Control {
    /// Set on the first error or panic. Kept apart from `external` so that a run
    /// stopped by Ctrl-C (Ok, `stopped = true`) is told apart from a failed one.
    internal: AtomicBool,
    external: StopFlag,
    /// The first error; later ones are only logged.
    error: Mutex<Option<GraphError>>,
}

impl Control {
    pub(crate) fn new(external: StopFlag) -> Self {
        Control {
            internal: AtomicBool::new(false),
            external,
            error: Mutex::new(None),
        }
    }

    #[inline]
    pub(crate) fn should_stop(&self) -> bool {
        self.internal.load(Ordering::Acquire) || self.external.is_stopped()
    }

    /// Records `err` (if it is the first) and stops the graph.
    pub(crate) fn fail(&self, err: GraphError) {
        {
            let mut slot = lock(&self.error);
            if slot.is_none() {
                log::debug!("graph stopping: {err}");
                *slot = Some(err);
            } else {
                log::warn!("further error while the graph stops: {err}");
            }
        }
        self.internal.store(true, Ordering::Release);
    }

    pub(crate) fn take_error(&self) -> Option<GraphError> {
        lock(&self.error).take()
    }
}

/// Text of a panic payload.
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(e) = p.downcast_ref::<BoxError>() {
        format!("{e:#}")
    } else {
        "non-string panic payload".to_string()
    }
}

#[inline]
fn nanos(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_nanos()).unwrap_or(u64::MAX)
}

/// Everything one node thread owns.
pub(crate) struct Worker<'c, T> {
    name: String,
    ctl: &'c Control,
    metrics: Arc<NodeMetrics>,
    stats: LocalStats,
    inlets: Inlets<T>,
    outlets: Vec<Outlet<T>>,
    /// Output buffer handed to `Stage::process`, reused for every item.
    out: Vec<T>,
}

impl<'c, T: Clone + Send + 'static> Worker<'c, T> {
    pub(crate) fn new(
        name: String,
        ctl: &'c Control,
        metrics: Arc<NodeMetrics>,
        inlets: Inlets<T>,
        outlets: Vec<Outlet<T>>,
    ) -> Self {
        Worker {
            name,
            ctl,
            metrics,
            stats: LocalStats::new(),
            inlets,
            outlets,
            out: Vec::new(),
        }
    }

    /// Runs the node to completion. Returns when the input ends, the node fails, or the
    /// graph is stopped. Dropping `self` at the end drops this node's senders, which is
    /// what signals end of stream downstream.
    pub(crate) fn run(mut self, node: NodeImpl<T>) {
        log::debug!("node `{}` started", self.name);
        match node {
            NodeImpl::Source(mut s) => self.run_source(s.as_mut()),
            NodeImpl::Stage(mut s) => self.run_stage(s.as_mut()),
            NodeImpl::Sink(mut s) => self.run_sink(s.as_mut()),
        }
        self.flush_all();
        log::debug!("node `{}` ended", self.name);
    }

    fn fail(&self, err: BoxError) {
        self.ctl.fail(GraphError::Stage {
            stage: self.name.clone(),
            error: err,
        });
    }

    fn fail_panic(&self, payload: Box<dyn Any + Send>) {
        self.ctl.fail(GraphError::Panic {
            stage: self.name.clone(),
            message: panic_message(payload.as_ref()),
        });
    }

    fn flush_all(&mut self) {
        self.stats.flush(&self.metrics);
        for o in &mut self.outlets {
            o.flush();
        }
    }

    #[inline]
    fn tick(&mut self, now: Instant) {
        if self.stats.tick(now) {
            self.flush_all();
        }
    }

    fn run_source(&mut self, src: &mut dyn Source<T>) {
        loop {
            // Checked before each poll: a stopped graph stops pulling from sources.
            if self.ctl.should_stop() {
                return;
            }
            let t0 = Instant::now();
            let r = catch_unwind(AssertUnwindSafe(|| src.next()));
            let t1 = Instant::now();
            let ns = nanos(t0, t1);
            self.stats.busy_ns += ns;
            match r {
                Ok(Ok(Some(item))) => {
                    self.stats.latency.record(ns);
                    self.stats.items_out += 1;
                    if !self.emit(item, t1) {
                        return;
                    }
                }
                Ok(Ok(None)) => return,
                Ok(Err(e)) => return self.fail(e),
                Err(p) => return self.fail_panic(p),
            }
            self.tick(t1);
        }
    }

    fn run_stage(&mut self, stage: &mut dyn Stage<T>) {
        loop {
            if self.ctl.should_stop() {
                // Stopped: no `finish`, its output could not be delivered anyway.
                return;
            }
            match self.inlets.recv(POLL) {
                Recv::Item(Msg { item, sent }) => {
                    let t0 = Instant::now();
                    let out = &mut self.out;
                    let r = catch_unwind(AssertUnwindSafe(|| stage.process(item, out)));
                    let t1 = Instant::now();
                    self.stats.busy_ns += nanos(t0, t1);
                    self.stats.latency.record(nanos(sent, t1));
                    self.stats.items_in += 1;
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return self.fail(e),
                        Err(p) => return self.fail_panic(p),
                    }
                    if !self.emit_out(t1) {
                        return;
                    }
                    self.tick(t1);
                }
                Recv::Idle => self.flush_all(),
                Recv::Closed => break,
            }
        }
        // End of stream: all inputs closed and drained.
        let t0 = Instant::now();
        let out = &mut self.out;
        let r = catch_unwind(AssertUnwindSafe(|| stage.finish(out)));
        let t1 = Instant::now();
        self.stats.busy_ns += nanos(t0, t1);
        match r {
            Ok(Ok(())) => {
                self.emit_out(t1);
            }
            Ok(Err(e)) => self.fail(e),
            Err(p) => self.fail_panic(p),
        }
    }

    fn run_sink(&mut self, sink: &mut dyn Sink<T>) {
        let mut panicked = false;
        loop {
            // On stop, queued items are abandoned but `finish` below still runs.
            if self.ctl.should_stop() {
                break;
            }
            match self.inlets.recv(POLL) {
                Recv::Item(Msg { item, sent }) => {
                    let t0 = Instant::now();
                    let r = catch_unwind(AssertUnwindSafe(|| sink.consume(item)));
                    let t1 = Instant::now();
                    self.stats.busy_ns += nanos(t0, t1);
                    self.stats.latency.record(nanos(sent, t1));
                    self.stats.items_in += 1;
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            self.fail(e);
                            break;
                        }
                        Err(p) => {
                            self.fail_panic(p);
                            panicked = true;
                            break;
                        }
                    }
                    self.tick(t1);
                }
                Recv::Idle => self.flush_all(),
                Recv::Closed => break,
            }
        }
        // Always flush what was consumed: at end of stream, after a stop and after an
        // error (even this sink's own `consume` error, best effort). Skipped only if
        // this sink panicked, since its state may be inconsistent.
        if panicked {
            return;
        }
        let t0 = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| sink.finish()));
        self.stats.busy_ns += nanos(t0, Instant::now());
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fail(e.context("finish")),
            Err(p) => self.fail_panic(p),
        }
    }

    /// Sends everything in `self.out` (emitted at `t`), clearing it. False if the graph
    /// stopped meanwhile (remaining items are discarded).
    #[inline]
    fn emit_out(&mut self, t: Instant) -> bool {
        if self.out.is_empty() {
            return true;
        }
        self.stats.items_out += self.out.len() as u64;
        // Taken out of `self` so `emit` can borrow `self` mutably; put back afterwards
        // to keep its capacity (no allocation per item).
        let mut out = std::mem::take(&mut self.out);
        let mut ok = true;
        for item in out.drain(..) {
            if !self.emit(item, t) {
                ok = false;
                break;
            }
        }
        out.clear();
        self.out = out;
        ok
    }

    /// Sends `item` to every outlet (clones for all but the last: fan-out).
    #[inline]
    fn emit(&mut self, item: T, t: Instant) -> bool {
        let n = self.outlets.len();
        if n == 0 {
            return true;
        }
        for i in 0..n - 1 {
            let msg = Msg {
                item: item.clone(),
                sent: t,
            };
            if !self.send_to(i, msg) {
                return false;
            }
        }
        self.send_to(n - 1, Msg { item, sent: t })
    }

    /// Sends on outlet `i`, waiting for room on a full `Block` edge. The wait is a loop of
    /// bounded `send_timeout`s that re-checks the stop flags: without it a node blocked
    /// on a consumer that stopped (error, Ctrl-C) would never return and `run` would hang
    /// joining it. False if the graph stopped before the item could be queued.
    #[inline]
    fn send_to(&mut self, i: usize, msg: Msg<T>) -> bool {
        let mut msg = match self.outlets[i].try_push(msg) {
            Pushed::Done => return true,
            Pushed::Full(m) => m,
        };
        loop {
            if self.ctl.should_stop() {
                return false;
            }
            match self.outlets[i].push_timeout(msg, POLL) {
                Ok(()) => return true,
                Err(m) => {
                    msg = m;
                    // Blocked for a while: keep the live metrics current.
                    self.flush_all();
                }
            }
        }
    }
}
