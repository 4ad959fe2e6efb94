//! Source only: plain supervised training with cross-entropy on labelled source batches.
//! It is the baseline row of every domain-adaptation table.

use super::{
    batch_tensors, count_correct, cross_entropy, scalar, Method, MethodConfig, Predictor,
    StepInput, StepStats,
};
use crate::model::digits::DigitsNet;
use crate::train::checkpoint::{
    load_module, load_optimizer, safetensors_bytes, save_module, save_optimizer,
};
use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use std::path::Path;

/// One optimizer over the whole network, stepping on the mean cross-entropy of a batch.
pub struct SourceOnly {
    cfg: MethodConfig,
    device: Device,
    net: Option<DigitsNet>,
    optimizer: ModuleOptimizer,
}

impl SourceOnly {
    /// Fresh network and optimizer on `device` (an autodiff device).
    pub fn new(cfg: &MethodConfig, device: &Device) -> Self {
        Self {
            cfg: cfg.clone(),
            device: device.clone(),
            net: Some(cfg.net.init(device)),
            optimizer: cfg.optimizer.init(),
        }
    }

    /// Replaces the network (e.g. with weights from elsewhere).
    pub fn load_net(&mut self, net: DigitsNet) {
        self.net = Some(net);
    }

    fn net(&self) -> &DigitsNet {
        self.net
            .as_ref()
            .expect("the network is only taken during a step")
    }

    /// One iteration on tensors: `x` `[batch, 1, 28, 28]`, `y` `[batch]`.
    pub fn step_tensors(&mut self, x: Tensor<4>, y: Tensor<1, Int>) -> StepStats {
        let net = self
            .net
            .take()
            .expect("the network is only taken during a step");
        let count = y.dims()[0];
        let t0 = std::time::Instant::now();
        let logits = net.forward(x); // [b, classes]
        let correct = count_correct(&logits, &y);
        let loss = cross_entropy(logits, y);
        let loss_value = scalar(&loss);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        self.net = Some(self.optimizer.step(self.cfg.optimizer.lr, net, grads));
        StepStats {
            loss: loss_value,
            correct,
            count,
            discrepancy: None,
            phases: [("step", t0.elapsed().as_secs_f64()), ("", 0.0), ("", 0.0)],
        }
    }
}

impl Method for SourceOnly {
    fn step(&mut self, input: StepInput<'_>) -> Result<StepStats> {
        let batch = match input {
            StepInput::Source(b) => b,
            // Trained on source data only; the target half of a pair is ignored.
            StepInput::Pair(p) => &p.source,
        };
        let (x, y) = batch_tensors(batch, &self.device);
        Ok(self.step_tensors(x, y))
    }

    fn predictor(&self) -> Box<dyn Predictor> {
        Box::new(self.net().valid())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        save_module(&dir.join("model.bpk"), self.net())?;
        save_optimizer(&dir.join("optimizer.bpk"), &self.optimizer)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        let fresh = self.net.take().context("network missing")?;
        self.net = Some(load_module(&dir.join("model.bpk"), fresh)?);
        let opt = std::mem::replace(&mut self.optimizer, self.cfg.optimizer.init());
        self.optimizer = load_optimizer(&dir.join("optimizer.bpk"), opt)?;
        Ok(())
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.optimizer.lr = lr;
    }

    fn export(&self) -> Result<Vec<u8>> {
        safetensors_bytes(self.net())
    }
}

impl Predictor for DigitsNet {
    fn heads(&self) -> &'static [&'static str] {
        &["c"]
    }

    fn predict(&self, x: Tensor<4>) -> Vec<Tensor<2>> {
        vec![softmax(self.forward(x), 1)]
    }

    fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.g.forward(x)
    }
}
