//! Supervised training of a single-head network on labelled batches:
//!
//! - **source only** (`method = "source_only"`): cross-entropy on hard labels, the
//!   baseline row of every domain-adaptation table and the "standard learning" of sound
//!   recognition;
//! - **between-class learning** (`method = "bc"`): the batches come from a `bc_mix` stage
//!   and carry soft labels `r t1 + (1 - r) t2`; the loss is the KL divergence from them
//!   to the network's softmax output (Tokozume et al., ICLR 2018).

use super::{
    batch_tensors, count_correct, cross_entropy, scalar, Method, MethodConfig, MethodKind,
    Predictor, StepInput, StepStats,
};
use crate::item::Batch;
use crate::model::digits::DigitsNet;
use crate::model::Net;
use crate::train::checkpoint::{
    load_module, load_optimizer, safetensors_bytes, save_module, save_optimizer,
};
use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use std::path::Path;

/// One optimizer over the whole network, stepping on the mean cross-entropy (or, for BC
/// learning, KL divergence) of a batch.
pub struct SourceOnly {
    cfg: MethodConfig,
    device: Device,
    net: Option<Net>,
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
    pub fn load_net(&mut self, net: impl Into<Net>) {
        self.net = Some(net.into());
    }

    fn net(&self) -> &Net {
        self.net
            .as_ref()
            .expect("the network is only taken during a step")
    }

    /// One iteration on tensors: `x` `[batch, 1, 28, 28]`, `y` `[batch]`.
    pub fn step_tensors(&mut self, x: Tensor<4>, y: Tensor<1, Int>) -> StepStats {
        self.step_with(x, |logits| {
            (count_correct(&logits, &y), cross_entropy(logits, y.clone()))
        })
    }

    /// One BC iteration: `x` `[batch, 1, h, w]`, soft labels `t` `[batch, classes]`
    /// (rows summing to 1). Accuracy counts the larger share of each mix.
    pub fn step_soft(&mut self, x: Tensor<4>, t: Tensor<2>) -> StepStats {
        let major = t.clone().argmax(1).flatten::<1>(0, 1);
        self.step_with(x, |logits| {
            (
                count_correct(&logits, &major),
                kl_divergence(logits, t.clone()),
            )
        })
    }

    /// Forward `x`, the loss and correct count from `loss_of(logits)`, one optimizer step.
    fn step_with(
        &mut self,
        x: Tensor<4>,
        loss_of: impl FnOnce(Tensor<2>) -> (usize, Tensor<1>),
    ) -> StepStats {
        let net = self
            .net
            .take()
            .expect("the network is only taken during a step");
        let count = x.dims()[0];
        let t0 = std::time::Instant::now();
        let (correct, loss) = loss_of(net.forward(x)); // logits [b, classes]
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

/// `KL(t || softmax(logits))` summed over classes, averaged over the batch (PyTorch's
/// `kl_div(log_softmax(y), t, reduction="batchmean")`); `0 log 0 = 0`.
pub fn kl_divergence(logits: Tensor<2>, t: Tensor<2>) -> Tensor<1> {
    let b = logits.dims()[0].max(1) as f64;
    let logp = log_softmax(logits, 1);
    // t log t, with 0 log 0 = 0 (clamping keeps the log finite; the product is 0 there)
    let entropy = t.clone() * t.clone().clamp_min(1e-12).log();
    (entropy - t * logp).sum().div_scalar(b)
}

/// Soft labels of a batch as a tensor `[batch, classes]`.
pub fn soft_label_tensor(b: &Batch, classes: usize, device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(
        TensorData::new(b.soft_labels(classes), [b.len(), classes]),
        device,
    )
}

impl Method for SourceOnly {
    fn step(&mut self, input: StepInput<'_>) -> Result<StepStats> {
        let batch = match input {
            StepInput::Source(b) => b,
            // Trained on source data only; the target half of a pair is ignored.
            StepInput::Pair(p) => &p.source,
        };
        let (x, y) = batch_tensors(batch, &self.device);
        if self.cfg.kind == MethodKind::Bc {
            let t = soft_label_tensor(batch, self.cfg.net.num_classes(), &self.device);
            return Ok(self.step_soft(x, t));
        }
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
        self.load_weights(dir)?;
        let opt = std::mem::replace(&mut self.optimizer, self.cfg.optimizer.init());
        self.optimizer = load_optimizer(&dir.join("optimizer.bpk"), opt)?;
        Ok(())
    }

    fn load_weights(&mut self, dir: &Path) -> Result<()> {
        let fresh = self.net.take().context("network missing")?;
        self.net = Some(load_module(&dir.join("model.bpk"), fresh)?);
        Ok(())
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.optimizer.lr = lr;
    }

    fn export(&self) -> Result<Vec<u8>> {
        safetensors_bytes(self.net())
    }
}

impl Predictor for Net {
    fn heads(&self) -> &'static [&'static str] {
        &["c"]
    }

    fn predict(&self, x: Tensor<4>) -> Vec<Tensor<2>> {
        vec![softmax(self.forward(x), 1)]
    }

    fn features(&self, x: Tensor<4>) -> Tensor<2> {
        Net::features(self, x)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_divergence_matches_a_hand_computation() {
        let d = Device::flex();
        let logits =
            Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 0.5, 0.0], [2, 2]), &d);
        let t = Tensor::<2>::from_data(TensorData::new(vec![0.3f32, 0.7, 1.0, 0.0], [2, 2]), &d);
        let got = scalar(&kl_divergence(logits, t));
        let lsm = |a: f64, b: f64| {
            let m = a.max(b);
            let z = m + ((a - m).exp() + (b - m).exp()).ln();
            (a - z, b - z)
        };
        let (p0, p1) = lsm(1.0, 2.0);
        let (q0, _) = lsm(0.5, 0.0);
        let row1 = 0.3 * (0.3f64.ln() - p0) + 0.7 * (0.7f64.ln() - p1);
        let row2 = 1.0 * (0.0 - q0);
        assert!((got - (row1 + row2) / 2.0).abs() < 1e-5, "{got}");
    }
}
