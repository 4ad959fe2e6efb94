//! Open Set Domain Adaptation by Backpropagation (Saito, Yamamoto, Ushiku, Harada,
//! ECCV 2018).
//!
//! The target domain holds classes the source never had. The classifier C has `K + 1`
//! outputs, the last one "unknown". Each iteration, in one backward pass:
//! - G and C minimise the cross-entropy of labelled source examples (known classes);
//! - on target examples, C is trained to output `p(unknown) = t = 0.5` (binary
//!   cross-entropy), while G, behind a gradient reversal layer ([`super::grl`]), is
//!   trained the other way: to push `p(unknown)` away from 0.5, so that each target
//!   example is either aligned with a known class or rejected as unknown.

use super::grl::{grad_reverse, GrlAt, GrlConfig};
use super::{
    count_correct, cross_entropy, load_two, pair_tensors, save_two, scalar, Method, MethodConfig,
    Predictor, StepInput, StepStats,
};
use crate::model::digits::{DigitsClassifier, DigitsGenerator, DigitsNet};
use crate::train::checkpoint::safetensors_bytes;
use anyhow::Result;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use std::path::Path;

/// OSBP's target for `p(unknown)` on target examples.
pub const UNKNOWN_TARGET: f64 = 0.5;

/// Binary cross-entropy of `p` (probabilities `[batch]`) against the constant `t`,
/// averaged; `p` is clamped away from 0 and 1 so the logarithms stay finite.
pub fn bce_to(p: Tensor<1>, t: f64) -> Tensor<1> {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    let one_minus = p.clone().neg().add_scalar(1.0);
    (p.log().mul_scalar(-t) - one_minus.log().mul_scalar(1.0 - t)).mean()
}

/// Logits of target images `xt` with the gradient reversal (weight `lambda`) where `at`
/// puts it: the layers before it learn to push `p(unknown)` away from 0.5, those after
/// it to hold it there.
pub fn adversarial_logits(
    at: GrlAt,
    lambda: f64,
    g: &DigitsGenerator,
    c: &DigitsClassifier,
    xt: Tensor<4>,
) -> Tensor<2> {
    match at {
        GrlAt::Classifier => c.forward(grad_reverse(g.forward(xt), lambda)),
        GrlAt::LastLayer => c.last(grad_reverse(c.hidden(g.forward(xt)), lambda)),
    }
}

/// OSBP's network (G and a `K + 1`-way C) and optimizers.
pub struct Osbp {
    cfg: MethodConfig,
    grl: GrlConfig,
    lambda: f64,
    device: Device,
    net: Option<DigitsNet>,
    opt_g: ModuleOptimizer,
    opt_c: ModuleOptimizer,
}

impl Osbp {
    /// Fresh networks and optimizers on `device` (an autodiff device); the network's
    /// last output is "unknown".
    pub fn new(cfg: &MethodConfig, grl: GrlConfig, device: &Device) -> Self {
        Self {
            cfg: cfg.clone(),
            grl,
            lambda: grl.lambda_at(1, 1),
            device: device.clone(),
            net: Some(cfg.net.digits().init(device)),
            opt_g: cfg.optimizer.init(),
            opt_c: cfg.optimizer.init(),
        }
    }

    fn net(&self) -> &DigitsNet {
        self.net
            .as_ref()
            .expect("the network is only taken during a step")
    }

    /// Sets the reversal weight for `epoch` of `epochs`.
    pub fn set_epoch(&mut self, epoch: usize, epochs: usize) {
        self.lambda = self.grl.lambda_at(epoch, epochs);
    }

    /// One OSBP iteration; `ys` in `0..K`, `xt` unlabelled target images. The
    /// discrepancy reported is the mean `|p(unknown) - 0.5|` on the target batch.
    pub fn step_tensors(&mut self, xs: Tensor<4>, ys: Tensor<1, Int>, xt: Tensor<4>) -> StepStats {
        let lr = self.cfg.optimizer.lr;
        let DigitsNet { g, c } = self.net.take().expect("network present");
        let t0 = std::time::Instant::now();
        let ns = ys.dims()[0];
        let os = c.forward(g.forward(xs));
        let correct = count_correct(&os, &ys);
        let loss_s = cross_entropy(os, ys);
        // target: C learns p(unknown) = 0.5, G (reversed) learns the opposite
        let ot = adversarial_logits(self.grl.at, self.lambda, &g, &c, xt);
        let k = ot.dims()[1] - 1;
        let p_unk = softmax(ot, 1).narrow(1, k, 1).flatten::<1>(0, 1);
        let spread = scalar(
            &p_unk
                .clone()
                .detach()
                .sub_scalar(UNKNOWN_TARGET)
                .abs()
                .mean(),
        );
        let loss_adv = bce_to(p_unk, UNKNOWN_TARGET);
        let source = scalar(&loss_s);
        let mut grads = (loss_s + loss_adv).backward();
        let gg = GradientsParams::from_module(&mut grads, &g);
        let gc = GradientsParams::from_module(&mut grads, &c);
        let g = self.opt_g.step(lr, g, gg);
        let c = self.opt_c.step(lr, c, gc);
        self.net = Some(DigitsNet { g, c });
        StepStats {
            loss: source,
            correct,
            count: ns,
            discrepancy: Some(spread),
            phases: [("step", t0.elapsed().as_secs_f64()), ("", 0.0), ("", 0.0)],
        }
    }
}

impl Method for Osbp {
    fn step(&mut self, input: StepInput<'_>) -> Result<StepStats> {
        let (xs, ys, xt) = pair_tensors(input, &self.device, "OSBP")?;
        Ok(self.step_tensors(xs, ys, xt))
    }

    super::one_network_plumbing!();

    fn set_epoch(&mut self, epoch: usize, epochs: usize) {
        Osbp::set_epoch(self, epoch, epochs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{MethodKind, OptimizerConfig};
    use crate::model::digits::DigitsNetConfig;
    use crate::model::NetConfig;
    use burn::tensor::Distribution;

    #[test]
    fn bce_to_a_half_is_smallest_at_a_half() {
        let d = Device::flex();
        let at = |p: f32| scalar(&bce_to(Tensor::<1>::from_data([p], &d), 0.5));
        assert!((at(0.5) - std::f64::consts::LN_2).abs() < 1e-6);
        assert!(at(0.9) > at(0.6) && at(0.6) > at(0.5));
        assert!((at(0.1) - at(0.9)).abs() < 1e-5, "symmetric around 0.5");
        assert!(at(0.0).is_finite() && at(1.0).is_finite());
    }

    fn osbp() -> (Osbp, Device) {
        let device = Device::flex();
        device.seed(5);
        crate::kernels::seed_dropout(5);
        let cfg = MethodConfig {
            kind: MethodKind::Osbp,
            net: NetConfig::Digits(DigitsNetConfig {
                num_classes: 4, // three known classes and unknown
                ..DigitsNetConfig::default()
            }),
            optimizer: OptimizerConfig {
                lr: 1e-3,
                ..Default::default()
            },
            num_k: 1,
            grl: GrlConfig::default(),
            reject_below: None,
        };
        let ad = device.clone().autodiff();
        (Osbp::new(&cfg, GrlConfig::default(), &ad), ad)
    }

    #[test]
    fn osbp_learns_the_source_and_keeps_unknown_for_the_target() {
        let (mut m, ad) = osbp();
        let xs = Tensor::<4>::random([24, 1, 28, 28], Distribution::Normal(0.0, 1.0), &ad);
        let labels: Vec<i64> = (0..24).map(|i| i % 3).collect();
        let ys = Tensor::<1, Int>::from_data(TensorData::new(labels, [24]), &ad);
        let xt = Tensor::<4>::random([24, 1, 28, 28], Distribution::Normal(0.5, 1.0), &ad);
        let stats: Vec<StepStats> = (0..25)
            .map(|_| m.step_tensors(xs.clone(), ys.clone(), xt.clone()))
            .collect();
        let first = stats[..3].iter().map(|s| s.loss).sum::<f64>() / 3.0;
        let last = stats[22..].iter().map(|s| s.loss).sum::<f64>() / 3.0;
        assert!(last < 0.7 * first, "source loss {first} -> {last}");
        assert!(stats.iter().all(|s| s.discrepancy.unwrap().is_finite()));
        // the source never names the unknown class: its probability there stays low
        let plain = Tensor::<4>::from_data(xs.to_data(), &Device::flex());
        let p = m.predictor().predict(plain)[0].clone();
        let p_unk: f32 = p.narrow(1, 3, 1).mean().into_scalar();
        assert!(p_unk < 0.2, "p(unknown) on source {p_unk}");
    }

    #[test]
    fn the_classifier_moves_towards_a_half_and_the_generator_away() {
        // one step with only the adversarial term, from the same start: the loss
        // towards p(unknown) = 0.5 falls when C alone is updated and rises when G alone
        // is (same dropout masks for every measurement; batch statistics in training mode)
        let (m, ad) = osbp();
        let xt = Tensor::<4>::random([16, 1, 28, 28], Distribution::Normal(0.0, 1.0), &ad);
        let DigitsNet { g, c } = m.net.clone().unwrap();
        let adv = |g: &crate::model::digits::DigitsGenerator,
                   c: &crate::model::digits::DigitsClassifier,
                   lambda: f64| {
            crate::kernels::seed_dropout(9);
            ad.seed(9);
            let ot = adversarial_logits(GrlAt::Classifier, lambda, g, c, xt.clone());
            let p = softmax(ot, 1).narrow(1, 3, 1).flatten::<1>(0, 1);
            bce_to(p, 0.5)
        };
        let before = scalar(&adv(&g, &c, 1.0));
        let lr = 1e-3;
        let mut opt = OptimizerConfig::default().init();
        let mut grads = adv(&g, &c, 1.0).backward();
        let gc = GradientsParams::from_module(&mut grads, &c);
        let c2 = opt.step(lr, c.clone(), gc);
        let after_c = scalar(&adv(&g, &c2, 1.0));
        assert!(after_c < before, "C: {before} -> {after_c}");
        let mut opt = OptimizerConfig::default().init();
        let mut grads = adv(&g, &c, 1.0).backward();
        let gg = GradientsParams::from_module(&mut grads, &g);
        let g2 = opt.step(lr, g.clone(), gg);
        let after_g = scalar(&adv(&g2, &c, 1.0));
        assert!(after_g > before, "G: {before} -> {after_g}");
    }

    #[test]
    fn the_reversal_sits_before_the_classifier_or_before_its_last_layer() {
        // gradients of the adversarial loss with lambda = 1: layers before the reversal
        // get exactly the negated gradient of the plain loss, layers after it the same
        let (m, ad) = osbp();
        let xt = Tensor::<4>::random([16, 1, 28, 28], Distribution::Normal(0.0, 1.0), &ad);
        let DigitsNet { g, c } = m.net.clone().unwrap();
        let grads = |at: Option<GrlAt>| {
            crate::kernels::seed_dropout(3);
            let ot = match at {
                Some(at) => adversarial_logits(at, 1.0, &g, &c, xt.clone()),
                None => c.forward(g.forward(xt.clone())),
            };
            let p = softmax(ot, 1).narrow(1, 3, 1).flatten::<1>(0, 1);
            let gr = bce_to(p, 0.5).backward();
            let v = |t: Option<Tensor<4>>| -> Vec<f32> {
                t.unwrap().into_data().try_to_vec::<f32>().unwrap()
            };
            let w = |t: Option<Tensor<2>>| -> Vec<f32> {
                t.unwrap().into_data().try_to_vec::<f32>().unwrap()
            };
            (
                v(g.conv1.weight.grad(&gr)),
                w(c.fc2.as_ref().unwrap().weight.grad(&gr)),
                w(c.fc3.weight.grad(&gr)),
            )
        };
        let plain = grads(None);
        let close = |a: &[f32], b: &[f32], sign: f32| {
            let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!(scale > 0.0, "a gradient flows");
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - sign * y).abs() <= 1e-4 * scale)
        };
        let before_c = grads(Some(GrlAt::Classifier));
        assert!(close(&plain.0, &before_c.0, -1.0), "G reversed");
        assert!(close(&plain.1, &before_c.1, 1.0), "C's hidden layer not");
        assert!(close(&plain.2, &before_c.2, 1.0), "C's last layer not");
        let before_last = grads(Some(GrlAt::LastLayer));
        assert!(close(&plain.0, &before_last.0, -1.0), "G reversed");
        assert!(
            close(&plain.1, &before_last.1, -1.0),
            "C's hidden layer reversed"
        );
        assert!(close(&plain.2, &before_last.2, 1.0), "C's last layer not");
    }
}
