//! Adversarial Dropout Regularization (Saito, Ushiku, Harada, Saenko, ICLR 2018).
//!
//! One classifier C with dropout acts as a critic: two forward passes with different
//! dropout masks give two predictions, whose divergence (symmetric KL) measures how
//! sensitive C is to its own noise on a target example. Each iteration:
//! - G and C minimise source cross-entropy;
//! - with G fixed, C minimises source cross-entropy *minus* the divergence on target
//!   data (it learns to be sensitive there, finding features near its boundary);
//! - with C fixed, G minimises the divergence, `num_k` times (it moves target features
//!   away from the boundary).
//!
//! Two details follow the authors' code: in the first two steps G sees the source and
//! target batches as one batch (batch normalisation with both domains' statistics), and
//! the divergence is bounded ([`super::symmetric_kl`]), which keeps the critic from
//! trading the source task for an ever larger divergence.

use super::{
    count_correct, cross_entropy, load_two, pair_tensors, save_two, scalar, symmetric_kl, Method,
    MethodConfig, Predictor, StepInput, StepStats,
};
use crate::model::digits::DigitsNet;
use crate::train::checkpoint::safetensors_bytes;
use anyhow::Result;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use std::path::Path;

/// ADR's networks and optimizers.
pub struct Adr {
    cfg: MethodConfig,
    device: Device,
    net: Option<DigitsNet>,
    opt_g: ModuleOptimizer,
    opt_c: ModuleOptimizer,
}

impl Adr {
    /// Fresh networks and optimizers on `device` (an autodiff device).
    pub fn new(cfg: &MethodConfig, device: &Device) -> Self {
        Self {
            cfg: cfg.clone(),
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

    /// One ADR iteration on tensors; `xt` are target images (no labels).
    pub fn step_tensors(&mut self, xs: Tensor<4>, ys: Tensor<1, Int>, xt: Tensor<4>) -> StepStats {
        let lr = self.cfg.optimizer.lr;
        let DigitsNet { g, c } = self.net.take().expect("network present");
        let t0 = std::time::Instant::now();

        // G and C on source cross-entropy. As in the authors' code, G sees the source
        // and target batches as one batch here and in the critic's step, so batch
        // normalisation uses the statistics of both domains together.
        let ns = ys.dims()[0];
        let nt = xt.dims()[0];
        let both = Tensor::cat(vec![xs, xt.clone()], 0);
        let o = c.forward(g.forward(both.clone())).narrow(0, 0, ns);
        let correct = count_correct(&o, &ys);
        let loss = cross_entropy(o, ys.clone());
        let loss_s = scalar(&loss);
        let mut grads = loss.backward();
        let gg = GradientsParams::from_module(&mut grads, &g);
        let gc = GradientsParams::from_module(&mut grads, &c);
        let g = self.opt_g.step(lr, g, gg);
        let c = self.opt_c.step(lr, c, gc);

        let t1 = std::time::Instant::now();
        // C as the critic: classify source, be sensitive to dropout on target (two
        // passes through C, with independent dropout masks)
        let f = g.forward(both).detach();
        let (o1, o2) = (c.forward(f.clone()), c.forward(f));
        let div = symmetric_kl(o1.clone().narrow(0, ns, nt), o2.narrow(0, ns, nt));
        let loss = cross_entropy(o1.narrow(0, 0, ns), ys) - div;
        let gc = GradientsParams::from_grads(loss.backward(), &c);
        let c = self.opt_c.step(lr, c, gc);

        let t2 = std::time::Instant::now();
        // G: make target features insensitive to C's dropout
        let mut g = g;
        let mut d = 0.0;
        for _ in 0..self.cfg.num_k.max(1) {
            let ft = g.forward(xt.clone());
            let loss = symmetric_kl(c.forward(ft.clone()), c.forward(ft));
            d = scalar(&loss);
            let mut grads = loss.backward();
            let gg = GradientsParams::from_module(&mut grads, &g);
            g = self.opt_g.step(lr, g, gg);
        }
        self.net = Some(DigitsNet { g, c });
        StepStats {
            loss: loss_s,
            correct,
            count: ns,
            discrepancy: Some(d),
            phases: [
                ("source", (t1 - t0).as_secs_f64()),
                ("critic", (t2 - t1).as_secs_f64()),
                ("generator", t2.elapsed().as_secs_f64()),
            ],
        }
    }
}

impl Method for Adr {
    fn step(&mut self, input: StepInput<'_>) -> Result<StepStats> {
        let (xs, ys, xt) = pair_tensors(input, &self.device, "ADR")?;
        Ok(self.step_tensors(xs, ys, xt))
    }

    super::one_network_plumbing!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{MethodKind, OptimizerConfig};
    use burn::tensor::Distribution;

    #[test]
    fn adr_learns_the_source_on_joint_batches() {
        let device = Device::flex();
        device.seed(3);
        crate::kernels::seed_dropout(3);
        let cfg = MethodConfig {
            kind: MethodKind::Adr,
            net: Default::default(),
            optimizer: OptimizerConfig {
                lr: 1e-3,
                ..Default::default()
            },
            num_k: 2,
            grl: Default::default(),
            reject_below: None,
        };
        let mut adr = Adr::new(&cfg, &device.clone().autodiff());
        let ad = device.autodiff();
        let xs = Tensor::<4>::random([16, 1, 28, 28], Distribution::Normal(0.0, 1.0), &ad);
        let labels: Vec<i64> = (0..16).map(|i| i % 4).collect();
        let ys = Tensor::<1, Int>::from_data(TensorData::new(labels, [16]), &ad);
        let xt = Tensor::<4>::random([16, 1, 28, 28], Distribution::Normal(0.5, 1.0), &ad);
        let mut stats = Vec::new();
        for _ in 0..25 {
            stats.push(adr.step_tensors(xs.clone(), ys.clone(), xt.clone()));
        }
        let first = stats[..3].iter().map(|s| s.loss).sum::<f64>() / 3.0;
        let last = stats[22..].iter().map(|s| s.loss).sum::<f64>() / 3.0;
        assert!(last < 0.7 * first, "source loss {first} -> {last}");
        for s in &stats {
            let d = s.discrepancy.unwrap();
            assert!(d.is_finite() && d >= 0.0, "divergence {d}");
            assert_eq!(s.count, 16);
        }
    }
}
