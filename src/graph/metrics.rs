//! Run-time measurements of a stage graph: per-node counters and latency histograms,
//! per-edge counters and queue depths, and the [`RunReport`] built from them.
//!
//! Responsibility: collect metrics cheaply on the hot path and expose them live.
//! Node threads (see `node.rs`) accumulate into a thread-local [`LocalStats`] and
//! flush it into the shared [`NodeMetrics`] / [`EdgeMetrics`] every
//! [`FLUSH_EVERY`] items or [`FLUSH_INTERVAL`], whichever comes first, and always at
//! the end of the node. [`GraphMetrics::snapshot`] can be called from any thread
//! (e.g. the `--stats` printer) while [`super::Graph::run`] executes; it then sees
//! values that lag by at most one flush. The report returned by `run` is exact.
//!
//! Latencies go into a [`Histogram`] with log-linear buckets (32 linear sub-buckets
//! per power of two, about 1.6 % relative error), so memory is fixed (15 KiB per
//! histogram) however many items flow.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::edge::Policy;
use super::StopFlag;

/// A node's local counters are pushed to the shared ones after this many items...
pub(crate) const FLUSH_EVERY: u32 = 1024;
/// ...or after this much time, so a slow node still shows live progress.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Locks a metrics mutex, ignoring poisoning: metrics stay readable even if a thread
/// panicked while holding the lock (user code never runs under these locks).
pub(crate) fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// Histogram
// ---------------------------------------------------------------------------

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Bounded-memory histogram of `u64` values (nanoseconds here).
///
/// Values below 32 are exact; above, each power of two `[2^k, 2^(k+1))` is split in
/// 32 equal buckets, so a percentile is reported with at most ~1.6 % relative error
/// (bucket midpoint). Memory is fixed: 1920 counters.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    min: u64,
    max: u64,
    /// Lowest and highest touched bucket, so merge/clear only walk the used range.
    lo: usize,
    hi: usize,
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("min", &self.min())
            .field("max", &self.max())
            .field("p50", &self.percentile(0.5))
            .field("p99", &self.percentile(0.99))
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let exp = msb - SUB_BITS;
    let mantissa = (v >> exp) as usize; // in [SUB, 2 * SUB)
    (exp as usize + 1) * SUB + (mantissa - SUB)
}

/// Lowest value and width of bucket `idx`.
fn bucket_range(idx: usize) -> (u64, u64) {
    if idx < SUB {
        (idx as u64, 1)
    } else {
        let exp = (idx / SUB - 1) as u32;
        let mantissa = (idx % SUB + SUB) as u64;
        (mantissa << exp, 1u64 << exp)
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            min: u64::MAX,
            max: 0,
            lo: BUCKETS,
            hi: 0,
        }
    }

    /// Adds one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        let b = bucket_of(v);
        self.counts[b] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.lo = self.lo.min(b);
        self.hi = self.hi.max(b);
    }

    /// Adds one duration, in nanoseconds (saturating at `u64::MAX` ns).
    #[inline]
    pub fn record_duration(&mut self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Smallest recorded value (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// Largest recorded value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` in `[0, 1]` (0 when empty): the midpoint of the bucket
    /// holding the `ceil(q * count)`-th smallest value, clamped to `[min, max]`.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        // The extremes are known exactly.
        if rank == 1 {
            return self.min;
        }
        if rank == self.total {
            return self.max;
        }
        let mut seen = 0u64;
        for idx in self.lo..=self.hi {
            seen += self.counts[idx];
            if seen >= rank {
                let (low, width) = bucket_range(idx);
                let mid = low.saturating_add(width / 2);
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// [`Histogram::percentile`] as a [`Duration`] of nanoseconds.
    pub fn percentile_duration(&self, q: f64) -> Duration {
        Duration::from_nanos(self.percentile(q))
    }

    /// Adds all values of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        for idx in other.lo..=other.hi {
            self.counts[idx] += other.counts[idx];
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.lo = self.lo.min(other.lo);
        self.hi = self.hi.max(other.hi);
    }

    /// Removes all values (touching only the used buckets).
    pub fn clear(&mut self) {
        if self.total != 0 {
            self.counts[self.lo..=self.hi].fill(0);
        }
        self.total = 0;
        self.min = u64::MAX;
        self.max = 0;
        self.lo = BUCKETS;
        self.hi = 0;
    }
}

// ---------------------------------------------------------------------------
// Shared per-node / per-edge metrics
// ---------------------------------------------------------------------------

/// What a node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Emits items ([`super::Source`]).
    Source,
    /// Transforms items ([`super::Stage`]).
    Stage,
    /// Consumes items ([`super::Sink`]).
    Sink,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Source => "source",
            NodeKind::Stage => "stage",
            NodeKind::Sink => "sink",
        })
    }
}

/// Shared counters of one node, written by its thread (in batches), read by snapshots.
pub(crate) struct NodeMetrics {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    items_in: AtomicU64,
    items_out: AtomicU64,
    busy_ns: AtomicU64,
    latency: Mutex<Histogram>,
}

impl NodeMetrics {
    pub(crate) fn new(name: &str, kind: NodeKind) -> Self {
        NodeMetrics {
            name: name.to_string(),
            kind,
            items_in: AtomicU64::new(0),
            items_out: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            latency: Mutex::new(Histogram::new()),
        }
    }

    fn stats(&self) -> StageStats {
        let (p50, p99) = {
            let h = lock(&self.latency);
            (h.percentile_duration(0.5), h.percentile_duration(0.99))
        };
        StageStats {
            name: self.name.clone(),
            kind: self.kind,
            items_in: self.items_in.load(Ordering::Relaxed),
            items_out: self.items_out.load(Ordering::Relaxed),
            busy: Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed)),
            latency_p50: p50,
            latency_p99: p99,
        }
    }
}

/// Thread-local accumulator of one node, flushed into its [`NodeMetrics`]; batching
/// keeps atomics and the histogram lock off the per-item path.
pub(crate) struct LocalStats {
    pub(crate) items_in: u64,
    pub(crate) items_out: u64,
    pub(crate) busy_ns: u64,
    pub(crate) latency: Histogram,
    pending: u32,
    last_flush: Instant,
}

impl LocalStats {
    pub(crate) fn new() -> Self {
        LocalStats {
            items_in: 0,
            items_out: 0,
            busy_ns: 0,
            latency: Histogram::new(),
            pending: 0,
            last_flush: Instant::now(),
        }
    }

    /// Counts one handled item; true when a flush is due (`now` is a time the caller
    /// already took, so this costs no clock read).
    #[inline]
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        self.pending += 1;
        self.pending >= FLUSH_EVERY
            || now.saturating_duration_since(self.last_flush) >= FLUSH_INTERVAL
    }

    /// Publishes the accumulated deltas into `shared` and resets them.
    pub(crate) fn flush(&mut self, shared: &NodeMetrics) {
        if self.items_in != 0 {
            shared.items_in.fetch_add(self.items_in, Ordering::Relaxed);
        }
        if self.items_out != 0 {
            shared
                .items_out
                .fetch_add(self.items_out, Ordering::Relaxed);
        }
        if self.busy_ns != 0 {
            shared.busy_ns.fetch_add(self.busy_ns, Ordering::Relaxed);
        }
        if self.latency.count() != 0 {
            lock(&shared.latency).merge(&self.latency);
            self.latency.clear();
        }
        self.items_in = 0;
        self.items_out = 0;
        self.busy_ns = 0;
        self.pending = 0;
        self.last_flush = Instant::now();
    }
}

/// How the current depth of an edge is read.
enum DepthProbe {
    /// Not running (yet or any more): the last known depth.
    Fixed(usize),
    /// Running: reads the channel's length through a receiver clone.
    Live(Box<dyn Fn() -> usize + Send + Sync>),
}

/// Shared counters of one edge.
pub(crate) struct EdgeMetrics {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) capacity: usize,
    pub(crate) policy: Policy,
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) max_depth: AtomicUsize,
    depth: Mutex<DepthProbe>,
}

impl EdgeMetrics {
    pub(crate) fn new(from: &str, to: &str, capacity: usize, policy: Policy) -> Self {
        EdgeMetrics {
            from: from.to_string(),
            to: to.to_string(),
            capacity,
            policy,
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            max_depth: AtomicUsize::new(0),
            depth: Mutex::new(DepthProbe::Fixed(0)),
        }
    }

    /// Installs the live depth reader while the graph runs.
    pub(crate) fn set_probe(&self, probe: Box<dyn Fn() -> usize + Send + Sync>) {
        *lock(&self.depth) = DepthProbe::Live(probe);
    }

    /// Records the final depth and drops the live reader. The reader owns a receiver
    /// clone: dropping it here frees the items left in the channel after a stop
    /// instead of keeping them alive as long as any `GraphMetrics` handle.
    pub(crate) fn freeze(&self) {
        let mut d = lock(&self.depth);
        let now = match &*d {
            DepthProbe::Fixed(v) => *v,
            DepthProbe::Live(f) => f(),
        };
        *d = DepthProbe::Fixed(now);
    }

    fn stats(&self) -> EdgeStats {
        let depth = match &*lock(&self.depth) {
            DepthProbe::Fixed(v) => *v,
            DepthProbe::Live(f) => f(),
        };
        let max_depth = self.max_depth.load(Ordering::Relaxed).max(depth);
        EdgeStats {
            from: self.from.clone(),
            to: self.to.clone(),
            capacity: self.capacity,
            policy: self.policy,
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            depth,
            max_depth,
        }
    }
}

// ---------------------------------------------------------------------------
// GraphMetrics handle and reports
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Clock {
    started: Option<Instant>,
    wall: Option<Duration>,
}

#[derive(Default)]
struct Shared {
    nodes: Mutex<Vec<Arc<NodeMetrics>>>,
    edges: Mutex<Vec<Arc<EdgeMetrics>>>,
    stop: Mutex<StopFlag>,
    clock: Mutex<Clock>,
    counters: Mutex<Vec<(String, Arc<AtomicU64>)>>,
}

/// Live metrics of a graph: cheap to clone, readable from any thread while
/// [`super::Graph::run`] executes (e.g. to print `--stats` once a second).
#[derive(Clone)]
pub struct GraphMetrics {
    inner: Arc<Shared>,
}

impl fmt::Debug for GraphMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphMetrics").finish_non_exhaustive()
    }
}

impl GraphMetrics {
    pub(crate) fn new() -> Self {
        GraphMetrics {
            inner: Arc::default(),
        }
    }

    pub(crate) fn add_node(&self, m: Arc<NodeMetrics>) {
        lock(&self.inner.nodes).push(m);
    }

    pub(crate) fn add_edge(&self, m: Arc<EdgeMetrics>) {
        lock(&self.inner.edges).push(m);
    }

    /// A named event counter that a stage or source keeps (frames lost, samples
    /// overrun, ...), reported with the graph's metrics. Asking twice for the same name
    /// gives the same counter.
    pub fn counter(&self, name: &str) -> Arc<AtomicU64> {
        let mut c = lock(&self.inner.counters);
        if let Some((_, v)) = c.iter().find(|(n, _)| n == name) {
            return v.clone();
        }
        let v = Arc::new(AtomicU64::new(0));
        c.push((name.to_string(), v.clone()));
        v
    }

    pub(crate) fn set_stop(&self, stop: StopFlag) {
        *lock(&self.inner.stop) = stop;
    }

    pub(crate) fn mark_started(&self, at: Instant) {
        let mut c = lock(&self.inner.clock);
        c.started = Some(at);
        c.wall = None;
    }

    /// Freezes the wall time and edge depths at the end of a run.
    pub(crate) fn mark_finished(&self, wall: Duration) {
        for e in lock(&self.inner.edges).iter() {
            e.freeze();
        }
        lock(&self.inner.clock).wall = Some(wall);
    }

    /// Current values of all counters. During a run, node counters lag by at most
    /// one flush (1024 items or 50 ms); after `run` returned they are exact.
    pub fn snapshot(&self) -> RunReport {
        let stages = lock(&self.inner.nodes).iter().map(|n| n.stats()).collect();
        let edges = lock(&self.inner.edges).iter().map(|e| e.stats()).collect();
        let stopped = lock(&self.inner.stop).is_stopped();
        let wall = {
            let c = lock(&self.inner.clock);
            match (c.wall, c.started) {
                (Some(w), _) => w,
                (None, Some(s)) => s.elapsed(),
                (None, None) => Duration::ZERO,
            }
        };
        let counters = lock(&self.inner.counters)
            .iter()
            .map(|(n, v)| (n.clone(), v.load(Ordering::Relaxed)))
            .collect();
        RunReport {
            stages,
            edges,
            counters,
            stopped,
            wall,
        }
    }
}

/// Metrics of a whole run (or of a running graph, through [`GraphMetrics::snapshot`]).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunReport {
    /// One entry per node, in the order they were added.
    pub stages: Vec<StageStats>,
    /// One entry per edge, in the order they were connected.
    pub edges: Vec<EdgeStats>,
    /// Named event counters kept by the nodes ([`GraphMetrics::counter`]), in the order
    /// they were created.
    pub counters: Vec<(String, u64)>,
    /// The external [`StopFlag`] was set (Ctrl-C).
    pub stopped: bool,
    /// Wall-clock time of the run (so far, for a live snapshot).
    pub wall: Duration,
}

/// Metrics of one node.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StageStats {
    /// Node name.
    pub name: String,
    /// Source, stage or sink.
    pub kind: NodeKind,
    /// Items received (0 for sources).
    pub items_in: u64,
    /// Items emitted (0 for sinks); for stages, including those emitted by `finish`.
    pub items_out: u64,
    /// Time spent inside `next` / `process` / `finish` / `consume`.
    pub busy: Duration,
    /// Median latency: from an item's send on the input edge until this node finished
    /// processing it (queue wait + processing); for sources, the time inside `next`.
    pub latency_p50: Duration,
    /// 99th percentile latency, same definition as `latency_p50`.
    pub latency_p99: Duration,
}

/// Metrics of one edge.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EdgeStats {
    /// Name of the sending node.
    pub from: String,
    /// Name of the receiving node.
    pub to: String,
    /// Channel capacity.
    pub capacity: usize,
    /// Behaviour when full.
    pub policy: Policy,
    /// Items put into the channel (with `DropOldest`, including ones dropped later).
    pub sent: u64,
    /// Items evicted by `DropOldest` (always 0 for `Block`).
    pub dropped: u64,
    /// Items queued now (at the end of the run for a final report).
    pub depth: usize,
    /// Largest queue length observed (sampled, and exact when the channel was full).
    pub max_depth: usize,
}

impl RunReport {
    /// The stats of the node called `name`.
    pub fn stage(&self, name: &str) -> Option<&StageStats> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The stats of the edge `from -> to`.
    pub fn edge(&self, from: &str, to: &str) -> Option<&EdgeStats> {
        self.edges.iter().find(|e| e.from == from && e.to == to)
    }

    /// The value of counter `name` (0 when no node keeps it).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// Human-readable table of stages and edges, columns aligned (for `--stats` and the
    /// end-of-run summary). `items/s` is what a node handles per second: its output for
    /// a source, its input for a stage or a sink (a stage that merges many items into
    /// few, such as windows of chunks, is rated by what it takes).
    pub fn table(&self) -> String {
        let wall_s = self.wall.as_secs_f64();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "wall {}{}",
            fmt_duration(self.wall),
            if self.stopped { " (stopped)" } else { "" }
        );

        let mut rows = vec![[
            "stage", "kind", "in", "out", "items/s", "busy", "busy%", "p50", "p99",
        ]
        .map(String::from)
        .to_vec()];
        for s in &self.stages {
            let busy_pct = if wall_s > 0.0 {
                format!("{:.1}", 100.0 * s.busy.as_secs_f64() / wall_s)
            } else {
                "-".to_string()
            };
            let rate = if wall_s > 0.0 {
                fmt_rate(s.items_out.max(s.items_in) as f64 / wall_s)
            } else {
                "-".to_string()
            };
            rows.push(vec![
                s.name.clone(),
                s.kind.to_string(),
                s.items_in.to_string(),
                s.items_out.to_string(),
                rate,
                fmt_duration(s.busy),
                busy_pct,
                fmt_duration(s.latency_p50),
                fmt_duration(s.latency_p99),
            ]);
        }
        push_aligned(&mut out, &rows, 2);

        if !self.edges.is_empty() {
            out.push('\n');
            let mut rows = vec![["edge", "policy", "cap", "sent", "dropped", "depth", "max"]
                .map(String::from)
                .to_vec()];
            for e in &self.edges {
                rows.push(vec![
                    format!("{} -> {}", e.from, e.to),
                    e.policy.to_string(),
                    e.capacity.to_string(),
                    e.sent.to_string(),
                    e.dropped.to_string(),
                    e.depth.to_string(),
                    e.max_depth.to_string(),
                ]);
            }
            push_aligned(&mut out, &rows, 2);
        }
        if !self.counters.is_empty() {
            out.push('\n');
            let mut rows = vec![["counter", "value"].map(String::from).to_vec()];
            for (n, v) in &self.counters {
                rows.push(vec![n.clone(), v.to_string()]);
            }
            push_aligned(&mut out, &rows, 1);
        }
        out
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.table())
    }
}

/// Appends `rows` with aligned columns: the first `left` columns left-aligned, the
/// others (numbers) right-aligned.
fn push_aligned(out: &mut String, rows: &[Vec<String>], left: usize) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let w = widths[c];
            if c < left {
                let _ = write!(line, "{cell:<w$}");
            } else {
                let _ = write!(line, "{cell:>w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

fn fmt_rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2}M", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1}k", per_s / 1e3)
    } else {
        format!("{per_s:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(actual: u64, expected: u64, rel: f64) -> bool {
        (actual as f64 - expected as f64).abs() <= rel * expected as f64
    }

    #[test]
    fn histogram_percentiles_uniform() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.min(), 1);
        assert_eq!(h.max(), 100_000);
        for (q, want) in [(0.5, 50_000), (0.9, 90_000), (0.99, 99_000), (0.01, 1_000)] {
            let got = h.percentile(q);
            assert!(within(got, want, 0.02), "p{q}: got {got}, want {want}");
        }
        assert_eq!(h.percentile(1.0), 100_000);
        assert_eq!(h.percentile(0.0), 1);
    }

    #[test]
    fn histogram_percentiles_bimodal_and_small() {
        let mut h = Histogram::new();
        for _ in 0..990 {
            h.record_duration(Duration::from_micros(1));
        }
        for _ in 0..10 {
            h.record_duration(Duration::from_millis(5));
        }
        assert!(within(h.percentile(0.5), 1_000, 0.02));
        assert!(within(h.percentile(0.99), 1_000, 0.02));
        assert!(within(h.percentile(0.995), 5_000_000, 0.02));
        // Small values are exact.
        let mut s = Histogram::new();
        for v in [3u64, 7, 7, 9, 12] {
            s.record(v);
        }
        assert_eq!(s.percentile(0.5), 7);
        assert_eq!(s.percentile(0.8), 9);
        assert_eq!(Histogram::new().percentile(0.5), 0);
    }

    #[test]
    fn histogram_relative_error_is_bounded() {
        // Every value lands in a bucket whose midpoint is within 1/64 of it.
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            for x in [v, v + v / 3, v + v / 2, v * 2 - 1] {
                let (low, width) = bucket_range(bucket_of(x));
                assert!(low <= x && x - low < width, "{x} not in [{low}, +{width})");
                let mid = low + width / 2;
                let err = (mid as f64 - x as f64).abs() / x as f64;
                assert!(err <= 1.0 / 64.0 + 1e-12, "{x}: error {err}");
            }
            v = v * 3 / 2 + 1;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn histogram_merge_and_clear() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 0..1000u64 {
            if v % 2 == 0 {
                a.record(v * 1000);
            } else {
                b.record(v * 1000);
            }
        }
        a.merge(&b);
        assert_eq!(a.count(), 1000);
        assert!(within(a.percentile(0.5), 499_000, 0.02));
        assert_eq!(a.max(), 999_000);
        a.clear();
        assert_eq!(a.count(), 0);
        assert!(a.counts.iter().all(|&c| c == 0));
        a.record(42);
        assert_eq!(a.percentile(0.5), 42);
    }

    #[test]
    fn table_is_aligned_and_complete() {
        let r = RunReport {
            stages: vec![
                StageStats {
                    name: "src".into(),
                    kind: NodeKind::Source,
                    items_in: 0,
                    items_out: 1234,
                    busy: Duration::from_millis(3),
                    latency_p50: Duration::from_nanos(150),
                    latency_p99: Duration::from_micros(12),
                },
                StageStats {
                    name: "a_long_sink_name".into(),
                    kind: NodeKind::Sink,
                    items_in: 1234,
                    items_out: 0,
                    busy: Duration::from_millis(500),
                    latency_p50: Duration::from_micros(40),
                    latency_p99: Duration::from_millis(2),
                },
            ],
            edges: vec![EdgeStats {
                from: "src".into(),
                to: "a_long_sink_name".into(),
                capacity: 64,
                policy: Policy::DropOldest,
                sent: 1234,
                dropped: 5,
                depth: 3,
                max_depth: 64,
            }],
            counters: vec![("frames lost".into(), 7)],
            stopped: true,
            wall: Duration::from_secs(1),
        };
        let t = r.table();
        assert!(t.starts_with("wall 1.00s (stopped)"), "{t}");
        for needle in [
            "stage",
            "items/s",
            "p99",
            "a_long_sink_name",
            "src -> a_long_sink_name",
            "drop_oldest",
            "1234",
            "50.0",
            "1.2k",
            "frames lost",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in\n{t}");
        }
        // Header and rows of the stage table have the `kind` column at the same offset.
        let lines: Vec<&str> = t.lines().collect();
        let col = lines[1].find("kind").unwrap();
        assert_eq!(&lines[2][col..col + 6], "source", "\n{t}");
        assert_eq!(&lines[3][col..col + 4], "sink", "\n{t}");
        // Numbers are right-aligned: all rows end at the same column.
        assert_eq!(lines[1].len(), lines[2].chars().count(), "\n{t}");
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"policy\":\"drop_oldest\""), "{json}");
        assert!(json.contains("\"kind\":\"source\""), "{json}");
        assert_eq!(r.counter("frames lost"), 7);
        assert_eq!(r.counter("absent"), 0);
    }

    #[test]
    fn counters_are_shared_by_name_and_reported() {
        let m = GraphMetrics::new();
        let a = m.counter("frames lost");
        let b = m.counter("frames lost");
        a.fetch_add(2, Ordering::Relaxed);
        b.fetch_add(3, Ordering::Relaxed);
        m.counter("frames corrupt").fetch_add(1, Ordering::Relaxed);
        let r = m.snapshot();
        assert_eq!(
            r.counters,
            vec![
                ("frames lost".to_string(), 5),
                ("frames corrupt".to_string(), 1)
            ]
        );
        assert!(r.table().contains("frames corrupt"), "{}", r.table());
    }
}
