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
            net: Some(cfg.net.init(device)),
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
        let count = ys.dims()[0];
        let t0 = std::time::Instant::now();

        // G and C on source cross-entropy
        let o = c.forward(g.forward(xs.clone()));
        let correct = count_correct(&o, &ys);
        let loss = cross_entropy(o, ys.clone());
        let loss_s = scalar(&loss);
        let mut grads = loss.backward();
        let gg = GradientsParams::from_module(&mut grads, &g);
        let gc = GradientsParams::from_module(&mut grads, &c);
        let g = self.opt_g.step(lr, g, gg);
        let c = self.opt_c.step(lr, c, gc);

        let t1 = std::time::Instant::now();
        // C as the critic: classify source, be sensitive to dropout on target
        let fs = g.forward(xs).detach();
        let ft = g.forward(xt.clone()).detach();
        let div = symmetric_kl(c.forward(ft.clone()), c.forward(ft));
        let loss = cross_entropy(c.forward(fs), ys) - div;
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
            count,
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

    fn predictor(&self) -> Box<dyn Predictor> {
        Box::new(self.net().valid())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        save_two(dir, self.net(), &self.opt_g, &self.opt_c)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        load_two(
            dir,
            &mut self.net,
            &mut self.opt_g,
            &mut self.opt_c,
            &self.cfg.optimizer,
        )
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.optimizer.lr = lr;
    }

    fn export(&self) -> Result<Vec<u8>> {
        safetensors_bytes(self.net())
    }
}
