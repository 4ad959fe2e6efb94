//! Edges of a stage graph: bounded `crossbeam_channel`s with a full-queue policy.
//!
//! Responsibility: move items between node threads. [`Outlet`] is the sending end
//! (owned by the upstream node's thread) and applies the [`Policy`]; [`Inlets`] is the
//! receiving side of a node, merging all its input edges (fan-in). Each message carries
//! the [`Instant`] it was sent, from which the receiver computes latency.
//!
//! Contact points: `node.rs` drives both ends and decides what to do when a send would
//! block (it polls the stop flags, see `Worker::send_to`); `metrics.rs` receives the
//! per-edge counters through [`Outlet::flush`].
//!
//! End of stream is the channel's disconnection: each edge has exactly one `Sender`,
//! owned by the upstream node's thread, and dropping it (when that node ends) closes
//! the edge once it is drained.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{
    Receiver, RecvTimeoutError, Select, SendTimeoutError, Sender, TryRecvError, TrySendError,
};

use super::metrics::EdgeMetrics;

/// What a sender does when the edge is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Wait for room (backpressure). Nothing is lost.
    Block,
    /// Evict the oldest queued item to make room: never blocks, keeps the newest items
    /// (live streaming). Evictions are counted in [`super::EdgeStats::dropped`].
    DropOldest,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Policy::Block => "block",
            Policy::DropOldest => "drop_oldest",
        })
    }
}

/// Capacity and full-queue policy of an edge.
#[derive(Clone, Copy, Debug)]
pub struct EdgeSpec {
    /// Maximum number of queued items (must be at least 1).
    pub capacity: usize,
    /// What to do when the queue is full.
    pub policy: Policy,
}

impl EdgeSpec {
    /// A [`Policy::Block`] edge of `capacity` items.
    pub fn block(capacity: usize) -> Self {
        EdgeSpec {
            capacity,
            policy: Policy::Block,
        }
    }

    /// A [`Policy::DropOldest`] edge of `capacity` items.
    pub fn drop_oldest(capacity: usize) -> Self {
        EdgeSpec {
            capacity,
            policy: Policy::DropOldest,
        }
    }
}

/// An item in flight with the instant it was sent.
pub(crate) struct Msg<T> {
    pub(crate) item: T,
    pub(crate) sent: Instant,
}

/// Result of a non-blocking send attempt.
pub(crate) enum Pushed<T> {
    /// Queued, evicted-and-queued, or discarded because the receiver is gone.
    Done,
    /// `Block` edge full: the caller must wait (see `Worker::send_to`).
    Full(Msg<T>),
}

/// Sending end of one edge, owned by the upstream node's thread.
pub(crate) struct Outlet<T> {
    tx: Sender<Msg<T>>,
    /// `DropOldest` only: a receiver clone used to evict the oldest item.
    evict: Option<Receiver<Msg<T>>>,
    capacity: usize,
    metrics: Arc<EdgeMetrics>,
    /// Deltas not yet published to `metrics`.
    sent: u64,
    dropped: u64,
    max_depth: usize,
    /// Total sends, to sample the depth every `DEPTH_SAMPLE` sends.
    count: u64,
    /// The receiver is gone; further items are discarded.
    closed: bool,
}

/// Reading a channel's length touches the consumer's cache line, so the depth is
/// sampled (and set exactly to the capacity whenever a send finds the edge full).
const DEPTH_SAMPLE: u64 = 16;

impl<T> Outlet<T> {
    pub(crate) fn new(
        tx: Sender<Msg<T>>,
        evict: Option<Receiver<Msg<T>>>,
        capacity: usize,
        metrics: Arc<EdgeMetrics>,
    ) -> Self {
        Outlet {
            tx,
            evict,
            capacity,
            metrics,
            sent: 0,
            dropped: 0,
            max_depth: 0,
            count: 0,
            closed: false,
        }
    }

    #[inline]
    fn on_sent(&mut self) {
        self.sent += 1;
        self.count += 1;
        if self.count % DEPTH_SAMPLE == 1 {
            // At least 1: the item was queued, even if the consumer took it already.
            self.max_depth = self.max_depth.max(self.tx.len().max(1));
        }
    }

    /// Tries to queue `msg` without blocking. `DropOldest` always completes here.
    #[inline]
    pub(crate) fn try_push(&mut self, msg: Msg<T>) -> Pushed<T> {
        if self.closed {
            return Pushed::Done;
        }
        if self.evict.is_none() {
            return match self.tx.try_send(msg) {
                Ok(()) => {
                    self.on_sent();
                    Pushed::Done
                }
                Err(TrySendError::Full(m)) => {
                    self.max_depth = self.capacity;
                    Pushed::Full(m)
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.closed = true;
                    Pushed::Done
                }
            };
        }
        let mut msg = msg;
        // Terminates: this thread is the edge's only sender, so once an item is popped
        // only the consumer can change the queue, and it only makes more room.
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) => {
                    self.max_depth = self.capacity;
                    if let Some(evict) = &self.evict {
                        if evict.try_recv().is_ok() {
                            self.dropped += 1;
                        }
                    }
                    msg = m;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.closed = true;
                    return Pushed::Done;
                }
            }
        }
        self.on_sent();
        Pushed::Done
    }

    /// Waits up to `timeout` for room; gives the message back on timeout so the caller
    /// can check the stop flags between attempts (a blocked sender must never hang an
    /// errored or stopped graph).
    pub(crate) fn push_timeout(&mut self, msg: Msg<T>, timeout: Duration) -> Result<(), Msg<T>> {
        match self.tx.send_timeout(msg, timeout) {
            Ok(()) => {
                self.on_sent();
                Ok(())
            }
            Err(SendTimeoutError::Timeout(m)) => Err(m),
            Err(SendTimeoutError::Disconnected(_)) => {
                self.closed = true;
                Ok(())
            }
        }
    }

    /// Publishes the counters accumulated since the last flush.
    pub(crate) fn flush(&mut self) {
        let m = &self.metrics;
        if self.sent != 0 {
            m.sent.fetch_add(self.sent, Ordering::Relaxed);
            self.sent = 0;
        }
        if self.dropped != 0 {
            m.dropped.fetch_add(self.dropped, Ordering::Relaxed);
            self.dropped = 0;
        }
        if self.max_depth != 0 {
            m.max_depth.fetch_max(self.max_depth, Ordering::Relaxed);
        }
    }
}

/// Outcome of [`Inlets::recv`].
pub(crate) enum Recv<T> {
    /// An item.
    Item(Msg<T>),
    /// Nothing arrived within the timeout; inputs still open.
    Idle,
    /// All inputs are closed and drained: end of stream.
    Closed,
}

/// Receiving side of a node: all its input edges, merged.
pub(crate) struct Inlets<T> {
    rxs: Vec<Receiver<Msg<T>>>,
    /// Round-robin start for the non-blocking pass, so a busy input cannot starve the
    /// others.
    cursor: usize,
}

impl<T> Inlets<T> {
    pub(crate) fn new(rxs: Vec<Receiver<Msg<T>>>) -> Self {
        Inlets { rxs, cursor: 0 }
    }

    /// Next item from any open input, waiting at most about `timeout`. An input is
    /// dropped from the set only once it is disconnected *and* drained (crossbeam
    /// reports `Disconnected` only on an empty channel), so no item is lost at the end.
    pub(crate) fn recv(&mut self, timeout: Duration) -> Recv<T> {
        loop {
            match self.rxs.len() {
                0 => return Recv::Closed,
                1 => {
                    let rx = &self.rxs[0];
                    // try_recv first: recv_timeout reads the clock to build a deadline,
                    // which the common (non-empty) case does not need.
                    let r = match rx.try_recv() {
                        Ok(m) => return Recv::Item(m),
                        Err(TryRecvError::Empty) => rx.recv_timeout(timeout),
                        Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                    };
                    return match r {
                        Ok(m) => Recv::Item(m),
                        Err(RecvTimeoutError::Timeout) => Recv::Idle,
                        Err(RecvTimeoutError::Disconnected) => {
                            self.rxs.clear();
                            Recv::Closed
                        }
                    };
                }
                n => {
                    let mut closed = None;
                    for k in 0..n {
                        let i = (self.cursor + k) % n;
                        match self.rxs[i].try_recv() {
                            Ok(m) => {
                                self.cursor = (i + 1) % n;
                                return Recv::Item(m);
                            }
                            Err(TryRecvError::Empty) => {}
                            Err(TryRecvError::Disconnected) => {
                                closed = Some(i);
                                break;
                            }
                        }
                    }
                    if let Some(i) = closed {
                        self.rxs.swap_remove(i);
                        self.cursor = 0;
                        continue;
                    }
                    // All empty: block on whichever becomes ready first (Select), with
                    // a timeout so the caller can check the stop flags.
                    let selected = {
                        let mut sel = Select::new();
                        for rx in &self.rxs {
                            sel.recv(rx);
                        }
                        match sel.select_timeout(timeout) {
                            Ok(op) => {
                                let i = op.index();
                                Some((i, op.recv(&self.rxs[i])))
                            }
                            Err(_) => None,
                        }
                    };
                    match selected {
                        None => return Recv::Idle,
                        Some((i, Ok(m))) => {
                            self.cursor = (i + 1) % n;
                            return Recv::Item(m);
                        }
                        Some((i, Err(_))) => {
                            self.rxs.swap_remove(i);
                            self.cursor = 0;
                        }
                    }
                }
            }
        }
    }
}
