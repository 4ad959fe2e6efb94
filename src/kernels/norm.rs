//! Batch normalisation in training mode on the CPU, for contiguous `[n, c, spatial]`
//! activations: per-channel statistics in one parallel pass over channels, the affine
//! map (optionally followed by ReLU) in one parallel pass over images.

use super::pool::wins;
use super::simd::{self, multiversion};
use rayon::prelude::*;

/// Shape of a batch-norm input: `n` images of `c` channels of `s` values each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormGeom {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Values per channel and image (height x width; 1 for `[n, c]`).
    pub s: usize,
}

impl NormGeom {
    fn count(&self) -> f64 {
        (self.n * self.s) as f64
    }
}

/// What the forward pass returns: the output, the batch mean and the biased batch
/// variance per channel.
pub struct NormForward {
    /// Normalised (and, if asked, rectified) output, same layout as the input.
    pub y: Vec<f32>,
    /// Batch mean per channel.
    pub mean: Vec<f32>,
    /// Biased (population) batch variance per channel.
    pub var: Vec<f32>,
}

/// Per-channel sums over the batch: `f(channel, value-run)` summed in f64.
fn channel_sums<F>(g: &NormGeom, f: F) -> Vec<[f64; 2]>
where
    F: Fn(usize, usize, &mut [f64; 2]) + Sync,
{
    (0..g.c)
        .into_par_iter()
        .map(|ch| {
            let mut acc = [0.0f64; 2];
            for img in 0..g.n {
                f(ch, (img * g.c + ch) * g.s, &mut acc);
            }
            acc
        })
        .collect()
}

/// `y = gamma * (x - mean) / sqrt(var + eps) + beta`, then `max(y, 0)` if `relu`.
pub fn forward(
    g: &NormGeom,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    relu: bool,
) -> NormForward {
    let s = g.s;
    let (mean, var) = statistics(g, x);
    let (scale, shift) = affine(&mean, &var, gamma, beta, eps);
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(g.c * s)
        .zip(x.par_chunks(g.c * s))
        .for_each(|(yb, xb)| {
            for ch in 0..g.c {
                let run = ch * s..(ch + 1) * s;
                simd::scale_shift(&mut yb[run.clone()], &xb[run], scale[ch], shift[ch], relu);
            }
        });
    NormForward { y, mean, var }
}

/// Batch mean and biased variance per channel.
fn statistics(g: &NormGeom, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let s = g.s;
    let sums = channel_sums(g, |_, start, acc| {
        let (a, b) = simd::sum_and_squares(&x[start..start + s]);
        acc[0] += a as f64;
        acc[1] += b as f64;
    });
    let count = g.count();
    let mean = sums.iter().map(|a| (a[0] / count) as f32).collect();
    let var = sums
        .iter()
        .map(|a| {
            let m = a[0] / count;
            (a[1] / count - m * m).max(0.0) as f32
        })
        .collect();
    (mean, var)
}

/// Per-channel `scale = gamma / sqrt(var + eps)` and `shift = beta - mean * scale`.
fn affine(
    mean: &[f32],
    var: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = var
        .iter()
        .zip(gamma)
        .map(|(v, g)| (*g as f64 / (*v as f64 + eps).sqrt()) as f32)
        .collect();
    let shift = beta
        .iter()
        .zip(mean.iter().zip(&scale))
        .map(|(b, (m, s))| b - m * s)
        .collect();
    (scale, shift)
}

/// Gradients of the input, gamma and beta.
pub struct NormBackward {
    /// Gradient of the input.
    pub dx: Vec<f32>,
    /// Gradient of gamma.
    pub dgamma: Vec<f32>,
    /// Gradient of beta.
    pub dbeta: Vec<f32>,
}

/// Backward pass of [`forward`]. With `relu`, `dy` is the gradient of the rectified
/// output and the mask is recomputed from `x` and the statistics.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    g: &NormGeom,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
    relu: bool,
    dy: &[f32],
) -> NormBackward {
    let s = g.s;
    let inv = inverse_std(var, eps);
    let (scale, shift) = affine(mean, var, gamma, beta, eps);
    // dy' = the gradient reaching the affine output: dy, zeroed where ReLU cut it off.
    // sums[ch] = [sum dy', sum dy' * x]; then sum dy' * xhat = inv * (sum dy' x - mean sum dy')
    let sums = channel_sums(g, |ch, start, acc| {
        let run = start..start + s;
        let (a, b) = simd::masked_sums(&x[run.clone()], &dy[run], scale[ch], shift[ch], relu);
        acc[0] += a as f64;
        acc[1] += b as f64;
    });
    let (dgamma, dbeta, coef) = gradient_coefficients(g, &sums, gamma, mean, &inv);
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(g.c * s)
        .zip(x.par_chunks(g.c * s).zip(dy.par_chunks(g.c * s)))
        .for_each(|(dxb, (xb, dyb))| {
            for (ch, c) in coef.iter().enumerate() {
                let run = ch * s..(ch + 1) * s;
                simd::masked_affine(
                    &mut dxb[run.clone()],
                    &xb[run.clone()],
                    &dyb[run],
                    scale[ch],
                    shift[ch],
                    relu,
                    *c,
                );
            }
        });
    NormBackward { dx, dgamma, dbeta }
}

/// From the per-channel `[sum dy', sum dy' x]`: the gradients of gamma and beta, and
/// `[ca, cb, cc]` with `dx = ca dy' + cb x + cc` (the batch-norm input gradient
/// `k (N dy' - dbeta - xhat dgamma)`, `k = gamma inv / N`, expanded).
#[allow(clippy::type_complexity)]
fn gradient_coefficients(
    g: &NormGeom,
    sums: &[[f64; 2]],
    gamma: &[f32],
    mean: &[f32],
    inv: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<[f32; 3]>) {
    let dbeta: Vec<f32> = sums.iter().map(|a| a[0] as f32).collect();
    let dgamma: Vec<f32> = sums
        .iter()
        .enumerate()
        .map(|(ch, a)| ((a[1] - mean[ch] as f64 * a[0]) * inv[ch] as f64) as f32)
        .collect();
    let count = g.count() as f32;
    let coef = (0..g.c)
        .map(|ch| {
            let k = gamma[ch] * inv[ch] / count;
            let cb = -k * dgamma[ch] * inv[ch];
            [k * count, cb, -k * dbeta[ch] - cb * mean[ch]]
        })
        .collect();
    (dgamma, dbeta, coef)
}

fn inverse_std(var: &[f32], eps: f64) -> Vec<f32> {
    var.iter()
        .map(|v| (1.0 / (*v as f64 + eps).sqrt()) as f32)
        .collect()
}

/// What [`forward_relu_pool`] returns.
pub struct NormPoolForward {
    /// `pool(relu(bn(x)))`, `[n, c, h / k, w / k]`.
    pub y: Vec<f32>,
    /// Position of each maximum in its window (`dy * k + dx`).
    pub arg: Vec<u8>,
    /// Batch mean per channel.
    pub mean: Vec<f32>,
    /// Biased batch variance per channel.
    pub var: Vec<f32>,
}

/// Batch norm (training mode), ReLU and `k` x `k` max pooling in one: the normalised
/// activations are never written out, only the pooled ones. `g.s` must be `h * w`.
#[allow(clippy::too_many_arguments)]
pub fn forward_relu_pool(
    g: &NormGeom,
    h: usize,
    w: usize,
    k: usize,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
) -> NormPoolForward {
    let (oh, ow) = (h / k, w / k);
    let (mean, var) = statistics(g, x);
    let (scale, shift) = affine(&mean, &var, gamma, beta, eps);
    let olen = oh * ow;
    let mut y = vec![0.0f32; g.n * g.c * olen];
    let mut arg = vec![0u8; g.n * g.c * olen];
    y.par_chunks_mut(olen.max(1))
        .zip(arg.par_chunks_mut(olen.max(1)))
        .zip(x.par_chunks(g.s.max(1)))
        .enumerate()
        .for_each(|(plane, ((yp, ap), xp))| {
            let ch = plane % g.c;
            relu_pool_plane(xp, w, k, scale[ch], shift[ch], yp, ap);
        });
    NormPoolForward { y, arg, mean, var }
}

multiversion! {
    /// One `h` x `w` plane: `t = x * a + b`, the maximum of `t` over each `k` x `k`
    /// window (first on ties, NaN wins) and its position, then ReLU.
    pub fn relu_pool_plane(xp: &[f32], w: usize, k: usize, a: f32, b: f32, yp: &mut [f32], ap: &mut [u8]) {
        let ow = w / k;
        let oh = yp.len().checked_div(ow).unwrap_or(0);
        let relu = |v: f32| if v.is_nan() { v } else { v.max(0.0) };
        if k == 2 {
            for oy in 0..oh {
                let r0 = &xp[2 * oy * w..][..2 * ow];
                let r1 = &xp[(2 * oy + 1) * w..][..2 * ow];
                for ox in 0..ow {
                    let t = [
                        r0[2 * ox] * a + b,
                        r0[2 * ox + 1] * a + b,
                        r1[2 * ox] * a + b,
                        r1[2 * ox + 1] * a + b,
                    ];
                    let (mut best, mut at) = (t[0], 0u8);
                    for (i, v) in t.iter().enumerate().skip(1) {
                        if wins(*v, best) {
                            best = *v;
                            at = i as u8;
                        }
                    }
                    yp[oy * ow + ox] = relu(best);
                    ap[oy * ow + ox] = at;
                }
            }
            return;
        }
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = xp[oy * k * w + ox * k] * a + b;
                let mut at = 0u8;
                for dy in 0..k {
                    let row = &xp[(oy * k + dy) * w + ox * k..][..k];
                    for (dx, v) in row.iter().enumerate() {
                        let t = v * a + b;
                        if wins(t, best) {
                            best = t;
                            at = (dy * k + dx) as u8;
                        }
                    }
                }
                yp[oy * ow + ox] = relu(best);
                ap[oy * ow + ox] = at;
            }
        }
    }
}

/// Backward pass of [`forward_relu_pool`] from the pooled gradient `dy`.
#[allow(clippy::too_many_arguments)]
pub fn backward_relu_pool(
    g: &NormGeom,
    h: usize,
    w: usize,
    k: usize,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
    arg: &[u8],
    dy: &[f32],
) -> NormBackward {
    let (oh, ow) = (h / k, w / k);
    let olen = oh * ow;
    let inv = inverse_std(var, eps);
    let (scale, shift) = affine(mean, var, gamma, beta, eps);
    // the gradient reaches the normalised value at each window's maximum, if it was > 0
    let position = |oy: usize, ox: usize, a: u8| {
        let a = a as usize;
        (oy * k + a / k) * w + ox * k + a % k
    };
    let sums: Vec<[f64; 2]> = (0..g.c)
        .into_par_iter()
        .map(|ch| {
            let (sc, sh) = (scale[ch], shift[ch]);
            let mut acc = [0.0f64; 2];
            for img in 0..g.n {
                let plane = img * g.c + ch;
                let xp = &x[plane * g.s..(plane + 1) * g.s];
                let (dp, ap) = (&dy[plane * olen..][..olen], &arg[plane * olen..][..olen]);
                let (mut s0, mut s1) = (0.0f32, 0.0f32);
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = oy * ow + ox;
                        let xv = xp[position(oy, ox, ap[o])];
                        if xv * sc + sh > 0.0 {
                            s0 += dp[o];
                            s1 += dp[o] * xv;
                        }
                    }
                }
                acc[0] += s0 as f64;
                acc[1] += s1 as f64;
            }
            acc
        })
        .collect();
    let (dgamma, dbeta, coef) = gradient_coefficients(g, &sums, gamma, mean, &inv);
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(g.s.max(1))
        .zip(x.par_chunks(g.s.max(1)))
        .enumerate()
        .for_each(|(plane, (dxp, xp))| {
            let ch = plane % g.c;
            let [ca, cb, cc] = coef[ch];
            simd::scale_shift(dxp, xp, cb, cc, false);
            let (dp, ap) = (&dy[plane * olen..][..olen], &arg[plane * olen..][..olen]);
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = oy * ow + ox;
                    let at = position(oy, ox, ap[o]);
                    if xp[at] * scale[ch] + shift[ch] > 0.0 {
                        dxp[at] += ca * dp[o];
                    }
                }
            }
        });
    NormBackward { dx, dgamma, dbeta }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_channels_have_zero_mean_and_unit_variance() {
        let g = NormGeom { n: 3, c: 2, s: 5 };
        let x: Vec<f32> = (0..30)
            .map(|i| (i as f32 * 0.7).sin() * 3.0 + 1.0)
            .collect();
        let out = forward(&g, &x, &[1.0, 1.0], &[0.0, 0.0], 1e-5, false);
        for ch in 0..2 {
            let vals: Vec<f32> = (0..3)
                .flat_map(|n| out.y[(n * 2 + ch) * 5..(n * 2 + ch + 1) * 5].to_vec())
                .collect();
            let m: f32 = vals.iter().sum::<f32>() / 15.0;
            let v: f32 = vals.iter().map(|a| (a - m) * (a - m)).sum::<f32>() / 15.0;
            assert!(m.abs() < 1e-5, "{m}");
            assert!((v - 1.0).abs() < 1e-3, "{v}");
        }
        let relu = forward(&g, &x, &[1.0, 1.0], &[0.0, 0.0], 1e-5, true);
        assert!(relu.y.iter().all(|v| *v >= 0.0));
        assert!(relu.y.iter().zip(&out.y).all(|(r, y)| *r == y.max(0.0)));
    }
}
