//! 2-D embeddings of feature vectors with t-SNE (van der Maaten and Hinton, JMLR 2008),
//! for pictures of source and target features like the domain-adaptation papers' figures.
//!
//! Exact t-SNE: Gaussian affinities with a per-point bandwidth found by bisection to
//! match the perplexity, Student-t similarities in the embedding, gradient descent with
//! momentum, early exaggeration and gains. O(n^2) per iteration: meant for a few
//! thousand points at most.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// t-SNE settings.
#[derive(Clone, Copy, Debug)]
pub struct TsneConfig {
    /// Effective number of neighbours (default 30).
    pub perplexity: f64,
    /// Gradient steps (default 1000).
    pub iterations: usize,
    /// Step size (default 200).
    pub learning_rate: f64,
    /// Seed of the initial layout.
    pub seed: u64,
}

impl Default for TsneConfig {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            iterations: 1000,
            learning_rate: 200.0,
            seed: 1,
        }
    }
}

/// Embeds `n` points of `dim` dimensions (`data` row after row) into the plane.
pub fn tsne(data: &[f32], n: usize, dim: usize, cfg: TsneConfig) -> Vec<[f64; 2]> {
    assert_eq!(data.len(), n * dim, "data must hold n * dim values");
    if n < 2 {
        return vec![[0.0, 0.0]; n];
    }
    // squared distances
    let mut d2 = vec![0.0f64; n * n];
    for i in 0..n {
        let a = &data[i * dim..(i + 1) * dim];
        for j in (i + 1)..n {
            let b = &data[j * dim..(j + 1) * dim];
            let d: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
            d2[i * n + j] = d;
            d2[j * n + i] = d;
        }
    }
    let p = affinities(&d2, n, cfg.perplexity.min((n - 1) as f64 / 3.0).max(1.0));

    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut y: Vec<[f64; 2]> = (0..n)
        .map(|_| {
            [
                rng.random::<f64>() * 1e-2 - 5e-3,
                rng.random::<f64>() * 1e-2 - 5e-3,
            ]
        })
        .collect();
    let mut velocity = vec![[0.0f64; 2]; n];
    let mut gains = vec![[1.0f64; 2]; n];
    let mut q = vec![0.0f64; n * n];
    let exaggeration_until = (cfg.iterations / 4).min(250);
    for it in 0..cfg.iterations {
        let exaggeration = if it < exaggeration_until { 12.0 } else { 1.0 };
        let momentum = if it < exaggeration_until { 0.5 } else { 0.8 };
        // Student-t kernel
        let mut sum_q = 0.0;
        for i in 0..n {
            for j in (i + 1)..n {
                let dx = y[i][0] - y[j][0];
                let dy = y[i][1] - y[j][1];
                let k = 1.0 / (1.0 + dx * dx + dy * dy);
                q[i * n + j] = k;
                q[j * n + i] = k;
                sum_q += 2.0 * k;
            }
        }
        let sum_q = sum_q.max(1e-12);
        for i in 0..n {
            let mut grad = [0.0f64; 2];
            for j in 0..n {
                if i == j {
                    continue;
                }
                let k = q[i * n + j];
                let mult = (exaggeration * p[i * n + j] - k / sum_q) * k;
                grad[0] += 4.0 * mult * (y[i][0] - y[j][0]);
                grad[1] += 4.0 * mult * (y[i][1] - y[j][1]);
            }
            for d in 0..2 {
                let same_sign = (grad[d] > 0.0) == (velocity[i][d] > 0.0);
                gains[i][d] = if same_sign {
                    gains[i][d] * 0.8
                } else {
                    gains[i][d] + 0.2
                }
                .max(0.01);
                velocity[i][d] =
                    momentum * velocity[i][d] - cfg.learning_rate * gains[i][d] * grad[d];
            }
        }
        for i in 0..n {
            y[i][0] += velocity[i][0];
            y[i][1] += velocity[i][1];
        }
        // keep the layout centred
        let (mx, my) = y.iter().fold((0.0, 0.0), |(a, b), p| (a + p[0], b + p[1]));
        for p in &mut y {
            p[0] -= mx / n as f64;
            p[1] -= my / n as f64;
        }
    }
    y
}

/// Symmetrised Gaussian affinities `p_ij` with a bandwidth per point matching `perplexity`.
fn affinities(d2: &[f64], n: usize, perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let mut p = vec![0.0f64; n * n];
    let mut row = vec![0.0f64; n];
    for i in 0..n {
        let (mut lo, mut hi, mut beta) = (0.0f64, f64::INFINITY, 1.0f64);
        // distances relative to the nearest neighbour keep exp() in range
        let dmin = (0..n)
            .filter(|&j| j != i)
            .map(|j| d2[i * n + j])
            .fold(f64::INFINITY, f64::min);
        for _ in 0..64 {
            let mut sum = 0.0;
            for j in 0..n {
                row[j] = if j == i {
                    0.0
                } else {
                    (-(d2[i * n + j] - dmin) * beta).exp()
                };
                sum += row[j];
            }
            let sum = sum.max(1e-300);
            let mut h = 0.0; // entropy of the row distribution
            for (j, &r) in row.iter().enumerate() {
                if j != i && r > 0.0 {
                    let pj = r / sum;
                    h -= pj * pj.ln();
                }
            }
            for v in row.iter_mut() {
                *v /= sum;
            }
            if (h - target).abs() < 1e-5 {
                break;
            }
            if h > target {
                lo = beta;
                beta = if hi.is_finite() {
                    (beta + hi) / 2.0
                } else {
                    beta * 2.0
                };
            } else {
                hi = beta;
                beta = (beta + lo) / 2.0;
            }
        }
        p[i * n..(i + 1) * n].copy_from_slice(&row);
    }
    let mut sym = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            sym[i * n + j] = ((p[i * n + j] + p[j * n + i]) / (2.0 * n as f64)).max(1e-12);
        }
    }
    sym
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_two_clusters() {
        let (n, dim) = (60, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut data = Vec::new();
        for i in 0..n {
            let centre = if i < n / 2 { 0.0 } else { 8.0 };
            for _ in 0..dim {
                data.push(centre + rng.random::<f32>() - 0.5);
            }
        }
        let cfg = TsneConfig {
            perplexity: 10.0,
            iterations: 400,
            ..TsneConfig::default()
        };
        let y = tsne(&data, n, dim, cfg);
        let dist =
            |a: [f64; 2], b: [f64; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        let (mut within, mut between, mut nw, mut nb) = (0.0, 0.0, 0, 0);
        for i in 0..n {
            for j in (i + 1)..n {
                if (i < n / 2) == (j < n / 2) {
                    within += dist(y[i], y[j]);
                    nw += 1;
                } else {
                    between += dist(y[i], y[j]);
                    nb += 1;
                }
            }
        }
        let (within, between) = (within / nw as f64, between / nb as f64);
        assert!(
            between > 2.0 * within,
            "within {within:.2}, between {between:.2}"
        );
        assert!(y.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
    }

    #[test]
    fn affinity_rows_match_the_perplexity() {
        let n = 20;
        let d2: Vec<f64> = (0..n * n)
            .map(|k| ((k / n) as f64 - (k % n) as f64).powi(2))
            .collect();
        let p = affinities(&d2, n, 5.0);
        let total: f64 = p.iter().sum();
        assert!(
            (total - 1.0).abs() < 1e-6,
            "joint probabilities sum to one: {total}"
        );
        for i in 0..n {
            assert!((p[i * n + (i + 1) % n] - p[((i + 1) % n) * n + i]).abs() < 1e-12);
        }
    }
}
