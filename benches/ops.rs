//! Where a digits training step spends its time, operation by operation.
//!
//! Times each primitive operation of the digits network at batch 128 on the default
//! CPU device (median of 15 runs after 3 warm-up runs) and prints one table. The shapes
//! are those of `DigitsNet`: conv 5x5 1->32 on 28x28, max-pool 2, conv 5x5 32->48 on
//! 12x12, max-pool 2, three linear layers with batch norm.
//!
//! ```sh
//! cargo bench --bench ops
//! ```
//!
//! `docs/performance.md` explains how to read it next to `train_step`.

use burn::prelude::*;
use burn::tensor::module::{
    batch_norm_train, conv2d, conv2d_weight_backward, conv_transpose2d, max_pool2d_with_indices,
    max_pool2d_with_indices_backward,
};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, MaxPoolOptions};
use burn::tensor::Distribution;
use std::time::Instant;

const B: usize = 128;

fn median_ms(mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut v: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rand<const D: usize>(shape: [usize; D], d: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), d)
}

/// Forces a lazy backend to finish: reads one value back.
fn sync<const D: usize>(t: Tensor<D>) {
    let _: f32 = t.flatten::<1>(0, D - 1).narrow(0, 0, 1).into_scalar();
}

struct Row {
    op: String,
    ms: f64,
}

fn conv_rows(d: &Device, rows: &mut Vec<Row>, name: &str, x: [usize; 4], w: [usize; 4]) {
    let opts = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let xt = rand(x, d);
    let wt = rand(w, d);
    let y = conv2d(xt.clone(), wt.clone(), None, opts.clone());
    let gy = rand(y.dims(), d);
    let flop = 2.0 * (y.dims().iter().product::<usize>() * w[1] * w[2] * w[3]) as f64;
    let ms = median_ms(|| sync(conv2d(xt.clone(), wt.clone(), None, opts.clone())));
    rows.push(Row {
        op: format!("{name} forward ({:.2} GFLOP/s)", flop / ms / 1e6),
        ms,
    });
    if x[1] > 1 {
        let topts = ConvTransposeOptions::new([1, 1], [0, 0], [0, 0], [1, 1], 1);
        let ms = median_ms(|| {
            sync(conv_transpose2d(
                gy.clone(),
                wt.clone(),
                None,
                topts.clone(),
            ))
        });
        rows.push(Row {
            op: format!("{name} backward, input ({:.2} GFLOP/s)", flop / ms / 1e6),
            ms,
        });
    }
    let ms = median_ms(|| {
        sync(conv2d_weight_backward(
            xt.clone(),
            wt.clone(),
            gy.clone(),
            opts.clone(),
        ))
    });
    rows.push(Row {
        op: format!("{name} backward, weight ({:.2} GFLOP/s)", flop / ms / 1e6),
        ms,
    });
}

fn main() {
    scarce::kernels::tune_allocator();
    let d = Device::flex();
    d.seed(0);
    // burn's own operations, whatever SCARCE_CPU_KERNELS says
    let mut rows = Vec::new();
    conv_rows(
        &d,
        &mut rows,
        "conv1 1->32 5x5 on 28x28",
        [B, 1, 28, 28],
        [32, 1, 5, 5],
    );
    conv_rows(
        &d,
        &mut rows,
        "conv2 32->48 5x5 on 12x12",
        [B, 32, 12, 12],
        [48, 32, 5, 5],
    );

    for (name, shape) in [
        ("bn1 [128,32,24,24]", [B, 32, 24, 24]),
        ("bn2 [128,48,8,8]", [B, 48, 8, 8]),
    ] {
        let x = rand(shape, &d);
        let (g, b) = (
            Tensor::<1>::ones([shape[1]], &d),
            Tensor::<1>::zeros([shape[1]], &d),
        );
        let ms = median_ms(|| sync(batch_norm_train(x.clone(), g.clone(), b.clone(), 1e-5).output));
        rows.push(Row {
            op: format!("batch norm forward, {name}"),
            ms,
        });
        let ad = d.clone().autodiff();
        let xa = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
        let (ga, ba) = (
            Tensor::<1>::ones([shape[1]], &ad).require_grad(),
            Tensor::<1>::zeros([shape[1]], &ad).require_grad(),
        );
        let total = median_ms(|| {
            let y = batch_norm_train(xa.clone(), ga.clone(), ba.clone(), 1e-5).output;
            let grads = y.sum().backward();
            sync(xa.grad(&grads).expect("input gradient"));
        });
        rows.push(Row {
            op: format!("batch norm forward+backward (autodiff), {name}"),
            ms: total,
        });
        let ms = median_ms(|| sync(burn::tensor::activation::relu(x.clone())));
        rows.push(Row {
            op: format!("relu, {name}"),
            ms,
        });
        let popts = MaxPoolOptions::new([2, 2]);
        let ms = median_ms(|| sync(max_pool2d_with_indices(x.clone(), popts.clone()).0));
        rows.push(Row {
            op: format!("max-pool 2 with indices, {name}"),
            ms,
        });
        let (y, idx) = max_pool2d_with_indices(x.clone(), popts.clone());
        let gy = rand(y.dims(), &d);
        let ms = median_ms(|| {
            sync(max_pool2d_with_indices_backward(
                x.clone(),
                [2, 2],
                [2, 2],
                [0, 0],
                [1, 1],
                false,
                gy.clone(),
                idx.clone(),
            ))
        });
        rows.push(Row {
            op: format!("max-pool 2 backward, {name}"),
            ms,
        });
    }

    for (i, o) in [(768usize, 100usize), (100, 100), (100, 10)] {
        let x = rand([B, i], &d);
        let w = rand([i, o], &d);
        let ms = median_ms(|| sync(x.clone().matmul(w.clone())));
        rows.push(Row {
            op: format!("linear {i}->{o} forward"),
            ms,
        });
    }

    print_table(&format!("burn {} operations", "flex"), &rows);
    print_table("scarce CPU kernels (scarce::kernels)", &kernel_rows());
}

fn print_table(title: &str, rows: &[Row]) {
    let total: f64 = rows.iter().map(|r| r.ms).sum();
    println!();
    println!("| {title}, batch {B} | median ms |");
    println!("|---|---|");
    for r in rows {
        println!("| {} | {:.2} |", r.op, r.ms);
    }
    println!("| sum of the rows | {total:.1} |");
}

fn seq(len: usize, a: f32) -> Vec<f32> {
    (0..len).map(|i| ((i as f32) * a).sin()).collect()
}

/// The same operations through scarce's own kernels, on plain slices.
fn kernel_rows() -> Vec<Row> {
    use scarce::kernels::{conv, norm, pool};
    let mut rows = Vec::new();
    for (name, x, w) in [
        ("conv1 1->32 5x5 on 28x28", [B, 1, 28, 28], [32, 1, 5, 5]),
        ("conv2 32->48 5x5 on 12x12", [B, 32, 12, 12], [48, 32, 5, 5]),
    ] {
        let g = conv::ConvGeom::new(x, w, [1, 1], [0, 0]).expect("valid geometry");
        let xs = seq(x.iter().product(), 0.37);
        let ws = seq(w.iter().product(), 0.71);
        let bs = seq(w[0], 1.3);
        let dy = seq(g.out_shape().iter().product(), 0.13);
        let ms = median_ms(|| drop(std::hint::black_box(conv::forward(&g, &xs, &ws, Some(&bs)))));
        rows.push(Row {
            op: format!("{name} forward ({:.2} GFLOP/s)", g.flops() / ms / 1e6),
            ms,
        });
        if x[1] > 1 {
            let ms = median_ms(|| drop(std::hint::black_box(conv::backward_input(&g, &ws, &dy))));
            rows.push(Row {
                op: format!(
                    "{name} backward, input ({:.2} GFLOP/s)",
                    g.flops() / ms / 1e6
                ),
                ms,
            });
        }
        let ms = median_ms(|| drop(std::hint::black_box(conv::backward_weight(&g, &xs, &dy))));
        rows.push(Row {
            op: format!(
                "{name} backward, weight and bias ({:.2} GFLOP/s)",
                g.flops() / ms / 1e6
            ),
            ms,
        });
    }
    for (name, shape) in [
        ("[128,32,24,24]", [B, 32, 24, 24]),
        ("[128,48,8,8]", [B, 48, 8, 8]),
    ] {
        let g = norm::NormGeom {
            n: shape[0],
            c: shape[1],
            s: shape[2] * shape[3],
        };
        let x = seq(shape.iter().product(), 0.37);
        let dy = seq(x.len(), 0.11);
        let (gamma, beta) = (vec![1.0; shape[1]], vec![0.0; shape[1]]);
        let ms = median_ms(|| {
            drop(std::hint::black_box(norm::forward(
                &g, &x, &gamma, &beta, 1e-5, true,
            )))
        });
        rows.push(Row {
            op: format!("batch norm + relu forward, {name}"),
            ms,
        });
        let f = norm::forward(&g, &x, &gamma, &beta, 1e-5, true);
        let ms = median_ms(|| {
            drop(std::hint::black_box(norm::backward(
                &g, &x, &gamma, &beta, &f.mean, &f.var, 1e-5, true, &dy,
            )))
        });
        rows.push(Row {
            op: format!("batch norm + relu backward, {name}"),
            ms,
        });
        let pg = pool::PoolGeom {
            planes: shape[0] * shape[1],
            h: shape[2],
            w: shape[3],
            k: 2,
        };
        let ms = median_ms(|| drop(std::hint::black_box(pool::forward(&pg, &x))));
        rows.push(Row {
            op: format!("max-pool 2 forward, {name}"),
            ms,
        });
        let (y, arg) = pool::forward(&pg, &x);
        let ms = median_ms(|| drop(std::hint::black_box(pool::backward(&pg, &arg, &y))));
        rows.push(Row {
            op: format!("max-pool 2 backward, {name}"),
            ms,
        });
    }
    rows
}
