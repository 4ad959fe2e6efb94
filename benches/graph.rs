//! Per-item overhead of the stage graph runtime.
//!
//! `chain4_block/N`: source -> 4 pass-through stages (add 1) -> sink, 5 `Block` edges
//! of capacity 1024, N `u64` items per iteration (thread start-up included, negligible
//! at this size). `chain4_drop_oldest/N`: the same with `DropOldest` edges; its
//! throughput counts items emitted by the source, most of which are evicted on the way,
//! so it measures the never-blocking send path rather than end-to-end delivery.
//!
//! After the criterion group (only under `cargo bench`), a few plain timed runs print
//! items/s and ns per item per edge, the figures the runtime is tuned for
//! (target: >= 500k items/s on 2 cores).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use scarce::graph::{BoxError, EdgeSpec, Graph, Sink, Source, Stage};

const ITEMS: u64 = 200_000;
const STAGES: usize = 4;
const EDGES: usize = STAGES + 1;

struct Count {
    next: u64,
    end: u64,
}

impl Source<u64> for Count {
    fn next(&mut self) -> Result<Option<u64>, BoxError> {
        if self.next == self.end {
            return Ok(None);
        }
        self.next += 1;
        Ok(Some(self.next))
    }
}

struct AddOne;

impl Stage<u64> for AddOne {
    fn process(&mut self, item: u64, out: &mut Vec<u64>) -> Result<(), BoxError> {
        out.push(item + 1);
        Ok(())
    }
}

struct Sum(u64);

impl Sink<u64> for Sum {
    fn consume(&mut self, item: u64) -> Result<(), BoxError> {
        self.0 = self.0.wrapping_add(item);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), BoxError> {
        black_box(self.0);
        Ok(())
    }
}

fn chain(items: u64, edge: EdgeSpec) -> Graph<u64> {
    let mut g = Graph::new();
    let mut prev = g.add_source(
        "source",
        Count {
            next: 0,
            end: items,
        },
    );
    for i in 0..STAGES {
        let s = g.add_stage(&format!("add{i}"), AddOne);
        g.connect(prev, s, edge).expect("wiring");
        prev = s;
    }
    let sink = g.add_sink("sink", Sum(0));
    g.connect(prev, sink, edge).expect("wiring");
    g
}

fn run_chain(items: u64, edge: EdgeSpec) {
    let report = chain(items, edge).run().expect("graph run");
    black_box(report);
}

fn bench_chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("graph");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(ITEMS));
    for (label, edge) in [
        ("chain4_block", EdgeSpec::block(1024)),
        ("chain4_drop_oldest", EdgeSpec::drop_oldest(1024)),
    ] {
        group.bench_with_input(BenchmarkId::new(label, ITEMS), &edge, |b, &edge| {
            b.iter(|| run_chain(ITEMS, edge))
        });
    }
    group.finish();
}

/// Median of a few plain runs of the `Block` chain: items/s and ns/item/edge.
fn print_summary() {
    let runs = 7;
    let mut secs: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            run_chain(ITEMS, EdgeSpec::block(1024));
            t.elapsed().as_secs_f64()
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    let median = secs[runs / 2];
    let per_s = ITEMS as f64 / median;
    let ns_item = median * 1e9 / ITEMS as f64;
    println!(
        "chain4_block/{ITEMS}: median of {runs} runs {:.1} ms -> {:.0} items/s, \
         {:.0} ns/item, {:.1} ns/item/edge ({EDGES} edges)",
        median * 1e3,
        per_s,
        ns_item,
        ns_item / EDGES as f64
    );
    // The per-node view of one run, as `--stats` would show it.
    let report = chain(ITEMS, EdgeSpec::block(1024))
        .run()
        .expect("graph run");
    println!("{}", report.table());
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_chain(&mut c);
    c.final_summary();
    // Under `cargo test --benches` criterion runs each bench once (no `--bench`
    // argument); skip the extra timing there.
    if std::env::args().any(|a| a == "--bench") {
        print_summary();
    }
}
