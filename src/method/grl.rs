//! Gradient reversal (Ganin and Lempitsky, ICML 2015): the identity on the way
//! forward, the gradient times `-lambda` on the way back. Placed between a feature
//! generator and a classifier, one backward pass trains the classifier to *minimise* a
//! loss while the generator *maximises* it (OSBP's adversarial unknown-class loss).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// `x` unchanged, with the gradient flowing back through it multiplied by `-lambda`.
///
/// Written with `detach`: `x_fixed + (x - x_fixed) * -lambda` equals `x` exactly (the
/// difference is exactly zero) and its derivative in `x` is `-lambda`.
pub fn grad_reverse<const D: usize>(x: Tensor<D>, lambda: f64) -> Tensor<D> {
    let fixed = x.clone().detach();
    fixed.clone() + (x - fixed).mul_scalar(-lambda)
}

/// How the reversal weight changes over training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrlSchedule {
    /// `lambda` throughout (OSBP's setting).
    #[default]
    Constant,
    /// DANN's ramp: `lambda * (2 / (1 + exp(-10 p)) - 1)` with `p` the fraction of
    /// training done, from 0 at the start towards `lambda` at the end: the generator
    /// is not pushed around while the classifier is still random.
    Ramp,
}

/// Where the reversal sits in a generator + classifier network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrlAt {
    /// Between the generator and the whole classifier (default): the classifier's
    /// hidden layers play on the classifier's side.
    #[default]
    Classifier,
    /// Before the classifier's last layer: its hidden layers play on the generator's
    /// side, and the adversary is one linear layer.
    LastLayer,
}

/// The gradient reversal settings of a model stage (`grl = { lambda = 1.0, schedule = "ramp" }`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrlConfig {
    /// Weight of the reversed gradient (default 1).
    #[serde(default = "one")]
    pub lambda: f64,
    /// Schedule (default constant).
    #[serde(default)]
    pub schedule: GrlSchedule,
    /// Where the reversal sits (default: before the classifier).
    #[serde(default)]
    pub at: GrlAt,
}

fn one() -> f64 {
    1.0
}

impl Default for GrlConfig {
    fn default() -> Self {
        Self {
            lambda: 1.0,
            schedule: GrlSchedule::Constant,
            at: GrlAt::Classifier,
        }
    }
}

impl GrlConfig {
    /// The weight during `epoch` (1-based) of `epochs`.
    pub fn lambda_at(&self, epoch: usize, epochs: usize) -> f64 {
        match self.schedule {
            GrlSchedule::Constant => self.lambda,
            GrlSchedule::Ramp => {
                let p = epoch.saturating_sub(1) as f64 / epochs.max(1) as f64;
                self.lambda * (2.0 / (1.0 + (-10.0 * p).exp()) - 1.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_is_the_identity_and_the_gradient_is_reversed_and_scaled() {
        let d = Device::flex().autodiff();
        let v = vec![0.5f32, -1.25, 3.0, 1e-3];
        let x = Tensor::<2>::from_data(TensorData::new(v.clone(), [2, 2]), &d).require_grad();
        let y = grad_reverse(x.clone(), 0.7);
        let out: Vec<f32> = y.clone().into_data().try_to_vec().unwrap();
        assert_eq!(out, v, "forward is exact");
        // loss = sum(w * y): dloss/dy = w, so dloss/dx = -0.7 w
        let w = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, -3.0, 0.5], [2, 2]), &d);
        let g = (y * w).sum().backward();
        let gx: Vec<f32> = x.grad(&g).unwrap().into_data().try_to_vec().unwrap();
        for (a, b) in gx.iter().zip([1.0f32, 2.0, -3.0, 0.5]) {
            assert!((a + 0.7 * b).abs() < 1e-6, "{gx:?}");
        }
    }

    #[test]
    fn parameters_before_the_layer_climb_the_loss_that_those_after_descend() {
        // loss = (a * grl(b * x))^2 at x = 1: a (after) gets the true gradient, b (before)
        // the reversed one
        let d = Device::flex().autodiff();
        let s = |v: f32| Tensor::<1>::from_data(TensorData::new(vec![v], [1]), &d).require_grad();
        let (a, b) = (s(2.0), s(3.0));
        let loss = (a.clone() * grad_reverse(b.clone(), 1.0))
            .powi_scalar(2)
            .sum();
        let g = loss.backward();
        let ga = a.grad(&g).unwrap().into_scalar::<f32>();
        let gb = b.grad(&g).unwrap().into_scalar::<f32>();
        assert!((ga - 2.0 * 2.0 * 9.0).abs() < 1e-4, "{ga}"); // 2 a b^2
        assert!((gb + 2.0 * 4.0 * 3.0).abs() < 1e-4, "{gb}"); // -(2 a^2 b)
    }

    #[test]
    fn ramp_rises_from_zero_towards_lambda() {
        let c = GrlConfig {
            lambda: 0.5,
            schedule: GrlSchedule::Ramp,
            ..GrlConfig::default()
        };
        assert_eq!(c.lambda_at(1, 100), 0.0);
        let l: Vec<f64> = (1..=100).map(|e| c.lambda_at(e, 100)).collect();
        assert!(l.windows(2).all(|w| w[1] > w[0]));
        assert!(l[99] > 0.49 && l[99] < 0.5, "{}", l[99]);
        assert_eq!(GrlConfig::default().lambda_at(7, 10), 1.0);
    }
}
