//! Maximum Classifier Discrepancy (Saito, Watanabe, Ushiku, Harada, CVPR 2018).
//!
//! A generator G and two classifiers C1, C2. Each iteration:
//! - (A) G, C1, C2 minimise the cross-entropy of both classifiers on the source batch;
//! - (B) with G fixed, C1 and C2 minimise source cross-entropy *minus* their
//!   discrepancy on the target batch (they learn to disagree on target data);
//! - (C) with C1, C2 fixed, G minimises the discrepancy, `num_k` times (it learns
//!   features on which the classifiers agree).
//!
//! The discrepancy is the mean absolute difference of the two softmax outputs. As in
//! the reference code, G and the classifiers have separate Adam optimizers.

use super::{
    count_correct, cross_entropy, discrepancy, load_two, pair_tensors, save_two, scalar, Method,
    MethodConfig, Predictor, StepInput, StepStats,
};
use crate::model::digits::TwinDigitsNet;
use crate::train::checkpoint::safetensors_bytes;
use anyhow::Result;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use std::path::Path;

/// MCD's networks and optimizers.
pub struct Mcd {
    cfg: MethodConfig,
    device: Device,
    net: Option<TwinDigitsNet>,
    opt_g: ModuleOptimizer,
    opt_c: ModuleOptimizer,
}

impl Mcd {
    /// Fresh networks and optimizers on `device` (an autodiff device).
    pub fn new(cfg: &MethodConfig, device: &Device) -> Self {
        Self {
            cfg: cfg.clone(),
            device: device.clone(),
            net: Some(cfg.net.digits().init_twin(device)),
            opt_g: cfg.optimizer.init(),
            opt_c: cfg.optimizer.init(),
        }
    }

    fn net(&self) -> &TwinDigitsNet {
        self.net
            .as_ref()
            .expect("the network is only taken during a step")
    }

    /// One MCD iteration on tensors; `xt` are target images (no labels).
    pub fn step_tensors(&mut self, xs: Tensor<4>, ys: Tensor<1, Int>, xt: Tensor<4>) -> StepStats {
        let lr = self.cfg.optimizer.lr;
        let TwinDigitsNet { g, c1, c2 } = self.net.take().expect("network present");
        let count = ys.dims()[0];
        let t0 = std::time::Instant::now();

        // (A) G, C1, C2 on source cross-entropy
        let fs = g.forward(xs.clone()); // [b, 768]
        let (o1, o2) = (c1.forward(fs.clone()), c2.forward(fs));
        let correct = count_correct(&o1, &ys);
        let loss = cross_entropy(o1, ys.clone()) + cross_entropy(o2, ys.clone());
        let loss_a = scalar(&loss) / 2.0;
        let mut grads = loss.backward();
        let gg = GradientsParams::from_module(&mut grads, &g);
        let g1 = GradientsParams::from_module(&mut grads, &c1);
        let g2 = GradientsParams::from_module(&mut grads, &c2);
        let g = self.opt_g.step(lr, g, gg);
        let c1 = self.opt_c.step(lr, c1, g1);
        let c2 = self.opt_c.step(lr, c2, g2);

        let t1 = std::time::Instant::now();
        // (B) classifiers only: source cross-entropy minus target discrepancy
        let fs = g.forward(xs).detach();
        let ft = g.forward(xt.clone()).detach();
        let ce =
            cross_entropy(c1.forward(fs.clone()), ys.clone()) + cross_entropy(c2.forward(fs), ys);
        let loss = ce - discrepancy(c1.forward(ft.clone()), c2.forward(ft));
        let mut grads = loss.backward();
        let g1 = GradientsParams::from_module(&mut grads, &c1);
        let g2 = GradientsParams::from_module(&mut grads, &c2);
        let c1 = self.opt_c.step(lr, c1, g1);
        let c2 = self.opt_c.step(lr, c2, g2);

        let t2 = std::time::Instant::now();
        // (C) generator only: minimise the discrepancy, num_k times
        let mut g = g;
        let mut disc = 0.0;
        for _ in 0..self.cfg.num_k.max(1) {
            let ft = g.forward(xt.clone());
            let loss = discrepancy(c1.forward(ft.clone()), c2.forward(ft));
            disc = scalar(&loss);
            let mut grads = loss.backward();
            let gg = GradientsParams::from_module(&mut grads, &g);
            g = self.opt_g.step(lr, g, gg);
        }
        self.net = Some(TwinDigitsNet { g, c1, c2 });
        StepStats {
            loss: loss_a,
            correct,
            count,
            discrepancy: Some(disc),
            phases: [
                ("A", (t1 - t0).as_secs_f64()),
                ("B", (t2 - t1).as_secs_f64()),
                ("C", t2.elapsed().as_secs_f64()),
            ],
        }
    }
}

impl Method for Mcd {
    fn step(&mut self, input: StepInput<'_>) -> Result<StepStats> {
        let (xs, ys, xt) = pair_tensors(input, &self.device, "MCD")?;
        Ok(self.step_tensors(xs, ys, xt))
    }

    super::one_network_plumbing!();
}

impl Predictor for TwinDigitsNet {
    fn heads(&self) -> &'static [&'static str] {
        &["ensemble", "c1", "c2"]
    }

    fn predict(&self, x: Tensor<4>) -> Vec<Tensor<2>> {
        let f = self.g.forward(x);
        let p1 = softmax(self.c1.forward(f.clone()), 1);
        let p2 = softmax(self.c2.forward(f), 1);
        // the ensemble: sum of the two softmax outputs (argmax-equivalent to their mean)
        vec![(p1.clone() + p2.clone()) / 2.0, p1, p2]
    }

    fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.g.forward(x)
    }
}
