//! One training step (forward, cross-entropy, backward, Adam) and one inference batch of
//! the digits network, batch 128, on the default CPU backend. The same step in PyTorch
//! is `benches/pytorch_digits.py`; `benches/compare.sh` runs both and prints them side
//! by side.
//!
//! Also one MCD iteration (step A, step B and four generator updates, source and target
//! batches of 128), the unit of the domain-adaptation runs' wall time. With the `tch`
//! feature the same benches run on LibTorch's CPU backend as `digits-tch/...`.
//!
//! Also prints, once, where the step's time goes (forward+loss, backward, optimizer).

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion};
use scarce::method::mcd::Mcd;
use scarce::method::source_only::SourceOnly;
use scarce::method::{MethodConfig, MethodKind, OptimizerConfig};
use scarce::model::digits::{DigitsNet, DigitsNetConfig};
use std::time::Instant;

const B: usize = 128;

fn input(d: &Device, phase: f32) -> Tensor<4> {
    let v: Vec<f32> = (0..B * 28 * 28)
        .map(|j| (j as f32 * 0.37 + phase).sin())
        .collect();
    Tensor::from_data(TensorData::new(v, [B, 1, 28, 28]), d)
}

fn labels(d: &Device) -> Tensor<1, Int> {
    let l: Vec<i64> = (0..B as i64).map(|i| i % 10).collect();
    Tensor::from_data(TensorData::new(l, [B]), d)
}

fn breakdown(net: DigitsNet, x: &Tensor<4>, y: &Tensor<1, Int>) -> DigitsNet {
    let cfg = OptimizerConfig::default();
    let mut opt = cfg.init();
    let mut net = net;
    let (mut f, mut b, mut o) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..23 {
        let t0 = Instant::now();
        let logits = net.forward(x.clone());
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, y.clone());
        let _: f32 = loss.clone().into_scalar();
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let t2 = Instant::now();
        net = opt.step(cfg.lr, net, grads);
        let _: f32 = net
            .c
            .forward(net.g.forward(x.clone().narrow(0, 0, 1)))
            .sum()
            .into_scalar();
        let t3 = Instant::now();
        if i >= 3 {
            f.push((t1 - t0).as_secs_f64() * 1e3);
            b.push((t2 - t1).as_secs_f64() * 1e3);
            o.push((t3 - t2).as_secs_f64() * 1e3);
        }
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "train_step breakdown (median of 20): forward+loss {:.1} ms, backward {:.1} ms, optimizer {:.1} ms",
        med(f),
        med(b),
        med(o)
    );
    net
}

fn bench(c: &mut Criterion) {
    scarce::kernels::tune_allocator();
    bench_device(c, "digits", Device::flex(), true);
    #[cfg(feature = "tch")]
    bench_device(c, "digits-tch", Device::libtorch(), false);
}

/// Training step, MCD iteration and inference of the digits net on `base` (and its
/// autodiff twin); `breakdown` also prints where a step's time goes.
fn bench_device(c: &mut Criterion, group: &str, base: Device, with_breakdown: bool) {
    base.seed(0);
    let ad = base.clone().autodiff();
    let x = input(&ad, 0.0);
    let y = labels(&ad);
    let net = DigitsNetConfig::default().init(&ad);
    let net = if with_breakdown {
        breakdown(net, &x, &y)
    } else {
        net
    };

    let cfg = MethodConfig {
        kind: MethodKind::SourceOnly,
        net: DigitsNetConfig::default().into(),
        optimizer: OptimizerConfig::default(),
        num_k: 4,
        grl: Default::default(),
        reject_below: None,
    };
    let mut method = SourceOnly::new(&cfg, &ad);
    let mut g = c.benchmark_group(group);
    g.sample_size(20);
    g.bench_function("train_step/batch128", |bch| {
        bch.iter(|| {
            let stats = method.step_tensors(x.clone(), y.clone());
            assert!(stats.loss.is_finite());
        })
    });
    // one MCD iteration: step A, step B and num_k = 4 generator updates (step C)
    let mut mcd = Mcd::new(
        &MethodConfig {
            kind: MethodKind::Mcd,
            ..cfg.clone()
        },
        &ad,
    );
    let xt = input(&ad, 1.0);
    g.sample_size(10);
    g.bench_function("mcd_iteration/batch128", |bch| {
        bch.iter(|| {
            let stats = mcd.step_tensors(x.clone(), y.clone(), xt.clone());
            assert!(stats.loss.is_finite());
        })
    });
    g.sample_size(20);
    let valid = net.valid();
    let xi = input(&base, 2.0);
    g.bench_function("inference/batch128", |bch| {
        bch.iter(|| {
            let out = valid.forward(xi.clone()).into_data();
            assert_eq!(out.shape().len(), 2);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
