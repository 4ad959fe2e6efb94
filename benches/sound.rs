//! The sound path: the A-weighted gain of one crop, one BC mix, ten-crop test input of a
//! recording, and one training step (forward, KL loss, backward, Nesterov SGD) of the
//! small EnvNet-v2 on a batch of 64 crops of 8,192 samples at 8 kHz (the FSDD
//! experiments' unit of work), plus its inference on 64 crops.
//!
//! `cargo bench --bench sound`

use burn::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion};
use scarce::audio::{bc_mix, CropConfig, GainMeter, Level};
use scarce::method::source_only::SourceOnly;
use scarce::method::{MethodConfig, MethodKind, OptimizerConfig, OptimizerKind, Schedule};
use scarce::model::envnet::{EnvNetConfig, EnvNetVariant};
use scarce::model::NetConfig;

const T: usize = 8192;
const B: usize = 64;

fn wave(n: usize, phase: f32) -> Vec<f32> {
    (0..n)
        .map(|i| 0.3 * (i as f32 * 0.031 + phase).sin() + 0.1 * (i as f32 * 0.27).sin())
        .collect()
}

fn bench(c: &mut Criterion) {
    let x1 = wave(T, 0.0);
    let x2 = wave(T, 1.0);
    let mut meter = GainMeter::new(8000);
    c.bench_function("sound/gain-8192", |b| b.iter(|| meter.gain(&x1)));
    c.bench_function("sound/bc-mix-8192", |b| {
        b.iter(|| bc_mix(&x1, &x2, -12.0, -20.0, 0.3))
    });
    let crop = CropConfig {
        length: T,
        level: Level::Peak,
        max_scale: 1.0,
        gain_db: 0.0,
    };
    let clip = wave(4000, 0.5);
    c.bench_function("sound/test-crops-10x8192", |b| {
        b.iter(|| crop.test_crops(&clip))
    });

    let device = Device::flex();
    let ad = device.clone().autodiff();
    let cfg = MethodConfig {
        kind: MethodKind::Bc,
        net: NetConfig::EnvNet(EnvNetConfig {
            variant: EnvNetVariant::Small,
            input: T,
            rate: 8000,
            num_classes: 10,
            dropout: 0.5,
            width: 1,
        }),
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: 0.01,
            schedule: Schedule::Constant,
            ..OptimizerConfig::default()
        },
        num_k: 1,
        grl: Default::default(),
        reject_below: None,
    };
    let mut m = SourceOnly::new(&cfg, &ad);
    let xs: Vec<f32> = (0..B).flat_map(|i| wave(T, i as f32)).collect();
    let x = Tensor::<4>::from_data(TensorData::new(xs.clone(), [B, 1, 1, T]), &ad);
    let t: Vec<f32> = (0..B)
        .flat_map(|i| {
            let mut row = vec![0.0f32; 10];
            row[i % 10] += 0.7;
            row[(i + 3) % 10] += 0.3;
            row
        })
        .collect();
    let t = Tensor::<2>::from_data(TensorData::new(t, [B, 10]), &ad);
    let mut g = c.benchmark_group("envnet2-small");
    g.sample_size(10);
    g.bench_function("bc-train-step-64x8192", |b| {
        b.iter(|| m.step_soft(x.clone(), t.clone()))
    });
    let net = {
        use scarce::method::Method;
        m.predictor()
    };
    let xi = Tensor::<4>::from_data(TensorData::new(xs, [B, 1, 1, T]), &device);
    g.bench_function("inference-64x8192", |b| b.iter(|| net.predict(xi.clone())));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
