//! Tests of the graph runtime: policies, fan-out/in, errors, panics, shutdown, wiring,
//! metrics. Every run goes through [`run_limited`], so a hang fails instead of
//! blocking the test suite.

use super::*;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

/// Runs `g` on another thread; panics if it does not return within `limit`.
fn run_limited<T: Clone + Send + 'static>(
    g: Graph<T>,
    limit: Duration,
) -> Result<RunReport, GraphError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(g.run());
    });
    rx.recv_timeout(limit)
        .expect("graph did not terminate in time (hang)")
}

const LIMIT: Duration = Duration::from_secs(20);

/// Emits `next..end` (`end = u64::MAX`: practically infinite).
struct Range {
    next: u64,
    end: u64,
}

fn range(end: u64) -> Range {
    Range { next: 0, end }
}

impl Source<u64> for Range {
    fn next(&mut self) -> Result<Option<u64>, BoxError> {
        if self.next >= self.end {
            return Ok(None);
        }
        self.next += 1;
        Ok(Some(self.next - 1))
    }
}

struct Add(u64);
impl Stage<u64> for Add {
    fn process(&mut self, item: u64, out: &mut Vec<u64>) -> Result<(), BoxError> {
        out.push(item + self.0);
        Ok(())
    }
}

/// Collects items into a shared Vec, optionally sleeping per item; records `finish`.
#[derive(Clone, Default)]
struct Collect {
    items: Arc<Mutex<Vec<u64>>>,
    finished: Arc<AtomicBool>,
    delay: Duration,
}

impl Collect {
    fn slow(delay: Duration) -> Self {
        Collect {
            delay,
            ..Default::default()
        }
    }
    fn items(&self) -> Vec<u64> {
        self.items.lock().unwrap().clone()
    }
    fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

impl Sink<u64> for Collect {
    fn consume(&mut self, item: u64) -> Result<(), BoxError> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.items.lock().unwrap().push(item);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), BoxError> {
        self.finished.store(true, Ordering::SeqCst);
        Ok(())
    }
}

fn is_strictly_increasing(v: &[u64]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn block_policy_loses_nothing_and_keeps_order() {
    const N: u64 = 3000;
    let sink = Collect::slow(Duration::from_micros(20));
    let mut g = Graph::new();
    let s = g.add_source("src", range(N));
    let a = g.add_stage("add0", Add(0));
    let k = g.add_sink("sink", sink.clone());
    g.connect(s, a, EdgeSpec::block(8)).unwrap();
    g.connect(a, k, EdgeSpec::block(8)).unwrap();
    let r = run_limited(g, LIMIT).unwrap();

    assert_eq!(sink.items(), (0..N).collect::<Vec<_>>());
    assert!(sink.finished());
    assert!(!r.stopped);
    let e = r.edge("add0", "sink").unwrap();
    assert_eq!(e.sent, N);
    assert_eq!(e.dropped, 0);
    assert_eq!(e.depth, 0);
    // The source is much faster than the sink, so the queue filled up.
    assert_eq!(e.max_depth, 8);
    assert_eq!(r.stage("sink").unwrap().items_in, N);
    assert_eq!(r.edge("src", "add0").unwrap().sent, N);
}

#[test]
fn drop_oldest_keeps_newest_and_counts_drops() {
    const N: u64 = 5000;
    let sink = Collect::slow(Duration::from_micros(200));
    let mut g = Graph::new();
    let s = g.add_source("src", range(N));
    let k = g.add_sink("sink", sink.clone());
    g.connect(s, k, EdgeSpec::drop_oldest(4)).unwrap();
    let r = run_limited(g, LIMIT).unwrap();

    let got = sink.items();
    let e = r.edge("src", "sink").unwrap();
    assert!(e.dropped > 0, "nothing dropped: {e:?}");
    assert_eq!(got.len() as u64 + e.dropped, N, "{e:?}");
    assert_eq!(e.sent, N);
    assert_eq!(e.max_depth, 4);
    assert!(is_strictly_increasing(&got));
    assert_eq!(got.last(), Some(&(N - 1)), "newest item must survive");
    assert_eq!(r.stage("sink").unwrap().items_in, got.len() as u64);
    assert!(sink.finished());
}

#[test]
fn fan_out_and_fan_in() {
    const N: u64 = 2000;
    let merged = Collect::default();
    let direct = Collect::default();
    let mut g = Graph::new();
    let s = g.add_source("src", range(N));
    let a = g.add_stage("a", Add(0));
    let b = g.add_stage("b", Add(1_000_000));
    let m = g.add_sink("merged", merged.clone());
    let d = g.add_sink("direct", direct.clone());
    for to in [a, b, d] {
        g.connect(s, to, EdgeSpec::block(16)).unwrap();
    }
    g.connect(a, m, EdgeSpec::block(4)).unwrap();
    g.connect(b, m, EdgeSpec::block(4)).unwrap();
    let r = run_limited(g, LIMIT).unwrap();

    assert_eq!(direct.items(), (0..N).collect::<Vec<_>>());
    let got = merged.items();
    assert_eq!(got.len() as u64, 2 * N);
    // Each branch keeps its own order in the merge.
    let (low, high): (Vec<u64>, Vec<u64>) = got.iter().partition(|&&x| x < 1_000_000);
    assert_eq!(low, (0..N).collect::<Vec<_>>());
    assert_eq!(high, (0..N).map(|x| x + 1_000_000).collect::<Vec<_>>());
    assert!(merged.finished() && direct.finished());
    assert_eq!(r.stage("src").unwrap().items_out, N);
    assert_eq!(r.stage("merged").unwrap().items_in, 2 * N);
    for (f, t) in [
        ("src", "a"),
        ("src", "b"),
        ("src", "direct"),
        ("a", "merged"),
    ] {
        assert_eq!(r.edge(f, t).unwrap().sent, N, "{f} -> {t}");
    }
}

/// Fails (or panics) on item `at`; may set an external stop flag first.
struct FailAt {
    at: u64,
    panic: bool,
    also_stop: Option<StopFlag>,
}

impl Stage<u64> for FailAt {
    fn process(&mut self, item: u64, out: &mut Vec<u64>) -> Result<(), BoxError> {
        if item == self.at {
            if let Some(s) = &self.also_stop {
                s.stop();
            }
            if self.panic {
                panic!("kaboom at {item}");
            }
            anyhow::bail!("bad item {item}");
        }
        out.push(item);
        Ok(())
    }
}

fn failing_graph(fail: FailAt, sink: &Collect) -> Graph<u64> {
    let mut g = Graph::new();
    let s = g.add_source("forever", range(u64::MAX));
    let f = g.add_stage("boom", fail);
    let k = g.add_sink("sink", sink.clone());
    g.connect(s, f, EdgeSpec::block(4)).unwrap();
    g.connect(f, k, EdgeSpec::block(4)).unwrap();
    g
}

#[test]
fn stage_error_stops_graph_and_is_reported() {
    let sink = Collect::default();
    let fail = FailAt {
        at: 10,
        panic: false,
        also_stop: None,
    };
    let err = run_limited(failing_graph(fail, &sink), LIMIT).unwrap_err();
    match &err {
        GraphError::Stage { stage, error } => {
            assert_eq!(stage, "boom");
            assert_eq!(error.to_string(), "bad item 10");
        }
        other => panic!("wrong error: {other:?}"),
    }
    assert_eq!(err.to_string(), "stage `boom` failed: bad item 10");
    // printed with its chain (as the command line does), the node's error comes once
    assert_eq!(
        format!("{:#}", anyhow::Error::new(err)),
        "stage `boom` failed: bad item 10"
    );
    assert!(sink.finished(), "sink finish must run after an error");
    // What reached the sink is an in-order prefix of 0..10 (queued items may be
    // discarded on a stop).
    let got = sink.items();
    assert!(got.len() <= 10 && got.iter().enumerate().all(|(i, &x)| x == i as u64));
}

#[test]
fn error_wins_over_stop_flag() {
    let sink = Collect::default();
    let stop = StopFlag::new();
    let fail = FailAt {
        at: 10,
        panic: false,
        also_stop: Some(stop.clone()),
    };
    let g = failing_graph(fail, &sink).with_stop(stop.clone());
    let err = run_limited(g, LIMIT).unwrap_err();
    assert!(matches!(err, GraphError::Stage { ref stage, .. } if stage == "boom"));
    assert!(stop.is_stopped());
    assert!(sink.finished());
}

#[test]
fn stage_panic_is_caught_and_reported() {
    let sink = Collect::default();
    let fail = FailAt {
        at: 5,
        panic: true,
        also_stop: None,
    };
    let err = run_limited(failing_graph(fail, &sink), LIMIT).unwrap_err();
    match &err {
        GraphError::Panic { stage, message } => {
            assert_eq!(stage, "boom");
            assert!(message.contains("kaboom at 5"), "{message}");
        }
        other => panic!("wrong error: {other:?}"),
    }
    assert!(sink.finished());
}

#[test]
fn sink_error_is_reported_with_its_name() {
    struct Picky(Arc<AtomicBool>);
    impl Sink<u64> for Picky {
        fn consume(&mut self, item: u64) -> Result<(), BoxError> {
            anyhow::ensure!(item < 3, "too big: {item}");
            Ok(())
        }
        fn finish(&mut self) -> Result<(), BoxError> {
            self.0.store(true, Ordering::SeqCst);
            Ok(())
        }
    }
    let finished = Arc::new(AtomicBool::new(false));
    let mut g = Graph::new();
    let s = g.add_source("forever", range(u64::MAX));
    let k = g.add_sink("picky", Picky(finished.clone()));
    g.connect(s, k, EdgeSpec::block(2)).unwrap();
    let err = run_limited(g, LIMIT).unwrap_err();
    assert_eq!(err.to_string(), "stage `picky` failed: too big: 3");
    assert!(finished.load(Ordering::SeqCst), "best-effort flush");
}

fn stop_after(stop: &StopFlag, after: Duration) -> std::thread::JoinHandle<Instant> {
    let stop = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        stop.stop();
        Instant::now()
    })
}

#[test]
fn stop_flag_shuts_down_promptly() {
    let stop = StopFlag::new();
    let sink = Collect::default();
    let mut g = Graph::new().with_stop(stop.clone());
    let s = g.add_source("forever", range(u64::MAX));
    let a = g.add_stage("add", Add(0));
    let k = g.add_sink("sink", sink.clone());
    g.connect(s, a, EdgeSpec::block(64)).unwrap();
    g.connect(a, k, EdgeSpec::block(64)).unwrap();
    let stopper = stop_after(&stop, Duration::from_millis(100));
    let r = run_limited(g, LIMIT).unwrap();
    let returned = Instant::now();
    let stopped_at = stopper.join().unwrap();
    assert!(r.stopped);
    assert!(
        returned.duration_since(stopped_at) < Duration::from_secs(1),
        "took {:?} to stop",
        returned.duration_since(stopped_at)
    );
    assert!(sink.finished());
    let n = sink.items().len() as u64;
    assert!(n > 0);
    assert_eq!(r.stage("sink").unwrap().items_in, n);
}

#[test]
fn stop_flag_unblocks_full_edges() {
    // A slow sink keeps every Block edge full, so upstream threads are parked in send.
    let stop = StopFlag::new();
    let sink = Collect::slow(Duration::from_millis(2));
    let mut g = Graph::new().with_stop(stop.clone());
    let s = g.add_source("forever", range(u64::MAX));
    let a = g.add_stage("a", Add(0));
    let b = g.add_stage("b", Add(0));
    let k = g.add_sink("sink", sink.clone());
    g.connect(s, a, EdgeSpec::block(2)).unwrap();
    g.connect(a, b, EdgeSpec::block(2)).unwrap();
    g.connect(b, k, EdgeSpec::block(2)).unwrap();
    // stop once the sink has taken 20 items (40 ms of its work, in which the fast
    // upstream fills its edge), not after a fixed time that a loaded machine may spend
    // before the threads even run
    let stopper = {
        let (stop, sink) = (stop.clone(), sink.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while sink.items().len() < 20 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            stop.stop();
            Instant::now()
        })
    };
    let r = run_limited(g, LIMIT).unwrap();
    let took = Instant::now().duration_since(stopper.join().unwrap());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(r.stopped);
    assert!(sink.finished());
    assert!(sink.items().len() >= 20);
    assert!(is_strictly_increasing(&sink.items()));
    assert_eq!(r.edge("b", "sink").unwrap().max_depth, 2);
}

#[test]
fn wiring_errors() {
    fn wiring<X: std::fmt::Debug>(r: Result<X, GraphError>, needle: &str) {
        match r {
            Err(GraphError::Wiring(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
            other => panic!("expected wiring error with {needle:?}, got {other:?}"),
        }
    }
    let mut g = Graph::<u64>::new();
    let s = g.add_source("src", range(10));
    let a = g.add_stage("a", Add(1));
    let k = g.add_sink("sink", Collect::default());
    wiring(g.connect(s, a, EdgeSpec::block(0)), "capacity 0");
    wiring(g.connect(k, a, EdgeSpec::block(1)), "sink `sink`");
    wiring(g.connect(a, s, EdgeSpec::block(1)), "source `src`");
    wiring(
        g.connect(s, NodeId(99), EdgeSpec::block(1)),
        "unknown node id 99",
    );
    g.connect(s, a, EdgeSpec::block(1)).unwrap();
    wiring(g.connect(s, a, EdgeSpec::drop_oldest(3)), "duplicate edge");
    let k2 = g.add_sink("other_sink", Collect::default());
    g.connect(a, k2, EdgeSpec::block(1)).unwrap();
    // `sink` has no input.
    wiring(run_limited(g, LIMIT), "sink `sink` has no input");

    // A stage without output.
    let mut g = Graph::<u64>::new();
    let s = g.add_source("src", range(10));
    let a = g.add_stage("dead_end", Add(1));
    let k = g.add_sink("sink", Collect::default());
    g.connect(s, a, EdgeSpec::block(1)).unwrap();
    g.connect(s, k, EdgeSpec::block(1)).unwrap();
    wiring(run_limited(g, LIMIT), "stage `dead_end` has no output");

    // A cycle a -> b -> a (all degrees fine).
    let mut g = Graph::<u64>::new();
    let s = g.add_source("src", range(10));
    let a = g.add_stage("a", Add(1));
    let b = g.add_stage("b", Add(1));
    let k = g.add_sink("sink", Collect::default());
    g.connect(s, a, EdgeSpec::block(1)).unwrap();
    g.connect(a, b, EdgeSpec::block(1)).unwrap();
    g.connect(b, a, EdgeSpec::block(1)).unwrap();
    g.connect(b, k, EdgeSpec::block(1)).unwrap();
    wiring(run_limited(g, LIMIT), "cycle through `a`, `b`");
}

/// Keeps even items, duplicated; emits a trailer item in `finish`.
struct EvenTwiceThenTrailer;
impl Stage<u64> for EvenTwiceThenTrailer {
    fn process(&mut self, item: u64, out: &mut Vec<u64>) -> Result<(), BoxError> {
        if item & 1 == 0 {
            out.push(item);
            out.push(item);
        }
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<u64>) -> Result<(), BoxError> {
        out.push(u64::MAX);
        Ok(())
    }
}

#[test]
fn metrics_match_real_counts() {
    const N: u64 = 20_000;
    let sink = Collect::default();
    let mut g = Graph::new();
    let s = g.add_source("src", range(N));
    let f = g.add_stage("even2", EvenTwiceThenTrailer);
    let a = g.add_stage("add", Add(0));
    let k = g.add_sink("sink", sink.clone());
    g.connect(s, f, EdgeSpec::block(32)).unwrap();
    g.connect(f, a, EdgeSpec::block(32)).unwrap();
    g.connect(a, k, EdgeSpec::block(32)).unwrap();
    let live = g.metrics();
    let before = live.snapshot();
    assert_eq!(before.stages.len(), 4);
    assert_eq!(before.edges.len(), 3);
    assert_eq!(before.stage("sink").unwrap().items_in, 0);

    // Poll live snapshots while running: counters never go down and never exceed the
    // final values. The poller takes its first snapshot before the graph starts (a
    // loaded machine may not schedule it again before the graph is done) and its last
    // after the graph has finished, which must show every item.
    let done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(std::sync::Barrier::new(2));
    let poller = {
        let (live, done, started) = (live.clone(), done.clone(), started.clone());
        std::thread::spawn(move || {
            let sink_in = || live.snapshot().stage("sink").unwrap().items_in;
            let mut last = sink_in();
            started.wait();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let now = sink_in();
                assert!(now >= last && now <= N + 1, "{last} then {now}");
                last = now;
                if finished {
                    return last;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    started.wait();
    let r = run_limited(g, LIMIT).unwrap();
    done.store(true, Ordering::SeqCst);
    assert_eq!(poller.join().unwrap(), N + 1);

    let items = sink.items();
    assert_eq!(items.len() as u64, N + 1);
    assert_eq!(items.last(), Some(&u64::MAX));
    let st = |name: &str| r.stage(name).unwrap().clone();
    assert_eq!((st("src").items_in, st("src").items_out), (0, N));
    assert_eq!((st("even2").items_in, st("even2").items_out), (N, N + 1));
    assert_eq!((st("add").items_in, st("add").items_out), (N + 1, N + 1));
    assert_eq!((st("sink").items_in, st("sink").items_out), (N + 1, 0));
    assert_eq!(r.edge("src", "even2").unwrap().sent, N);
    assert_eq!(r.edge("even2", "add").unwrap().sent, N + 1);
    assert_eq!(r.edge("add", "sink").unwrap().sent, N + 1);
    for e in &r.edges {
        assert_eq!((e.dropped, e.depth), (0, 0), "{e:?}");
        assert!(e.max_depth >= 1 && e.max_depth <= 32, "{e:?}");
    }
    for s in &r.stages {
        assert!(s.latency_p50 <= s.latency_p99, "{s:?}");
        assert!(s.busy <= r.wall, "{s:?}");
    }
    assert!(st("sink").latency_p99 > Duration::ZERO);
    assert!(r.wall > Duration::ZERO && !r.stopped);

    // The handle taken before the run now shows the same final numbers.
    let after = live.snapshot();
    for (x, y) in after.stages.iter().zip(&r.stages) {
        assert_eq!(
            (x.items_in, x.items_out, x.busy),
            (y.items_in, y.items_out, y.busy)
        );
    }
    for (x, y) in after.edges.iter().zip(&r.edges) {
        assert_eq!(
            (x.sent, x.dropped, x.max_depth),
            (y.sent, y.dropped, y.max_depth)
        );
    }
    assert_eq!(after.wall, r.wall);
    let table = r.table();
    assert!(
        table.contains("even2 -> add") && table.contains("sink"),
        "{table}"
    );
}

#[test]
fn latency_reflects_queue_wait() {
    // Sink takes ~2 ms per item behind a full queue of 4: each item waits for the ones
    // ahead, so its latency is several ms; the source's own latency (time in `next`)
    // stays tiny.
    let sink = Collect::slow(Duration::from_millis(2));
    let mut g = Graph::new();
    let s = g.add_source("src", range(40));
    let k = g.add_sink("sink", sink.clone());
    g.connect(s, k, EdgeSpec::block(4)).unwrap();
    let r = run_limited(g, LIMIT).unwrap();
    let sink_stats = r.stage("sink").unwrap();
    assert!(
        sink_stats.latency_p50 >= Duration::from_millis(6),
        "{sink_stats:?}"
    );
    assert!(
        sink_stats.busy >= Duration::from_millis(80),
        "{sink_stats:?}"
    );
    assert!(r.stage("src").unwrap().latency_p99 < Duration::from_millis(2));
}

#[test]
fn fan_out_clones_are_neither_leaked_nor_duplicated() {
    // Fan-out of a counted clone type: every clone is delivered or dropped, none leaks
    // or is duplicated.
    static LIVE: AtomicU64 = AtomicU64::new(0);
    struct Tracked(u64);
    impl Clone for Tracked {
        fn clone(&self) -> Self {
            LIVE.fetch_add(1, Ordering::SeqCst);
            Tracked(self.0)
        }
    }
    impl Drop for Tracked {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
    struct Gen(u64);
    impl Source<Tracked> for Gen {
        fn next(&mut self) -> Result<Option<Tracked>, BoxError> {
            if self.0 == 0 {
                return Ok(None);
            }
            self.0 -= 1;
            LIVE.fetch_add(1, Ordering::SeqCst);
            Ok(Some(Tracked(self.0)))
        }
    }
    struct Slow(Arc<AtomicU64>);
    impl Sink<Tracked> for Slow {
        fn consume(&mut self, _: Tracked) -> Result<(), BoxError> {
            std::thread::sleep(Duration::from_micros(50));
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
    let (n1, n2) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut g = Graph::new();
    let s = g.add_source("gen", Gen(3000));
    let k1 = g.add_sink("k1", Slow(n1.clone()));
    let k2 = g.add_sink("k2", Slow(n2.clone()));
    g.connect(s, k1, EdgeSpec::drop_oldest(8)).unwrap();
    g.connect(s, k2, EdgeSpec::block(8)).unwrap();
    let r = run_limited(g, LIMIT).unwrap();
    let e1 = r.edge("gen", "k1").unwrap();
    assert_eq!(n1.load(Ordering::SeqCst) + e1.dropped, 3000);
    assert_eq!(n2.load(Ordering::SeqCst), 3000);
    assert_eq!(
        LIVE.load(Ordering::SeqCst),
        0,
        "items leaked or double-dropped"
    );
}
