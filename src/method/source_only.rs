//! Source only: plain supervised training with cross-entropy on labelled source batches.
//! It is the baseline row of every domain-adaptation table.

use super::{OptimizerConfig, StepStats};
use crate::model::digits::DigitsNet;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

/// One optimizer over the whole network, stepping on the mean cross-entropy of a batch.
pub struct SourceOnly {
    optimizer: ModuleOptimizer,
    lr: f64,
}

impl SourceOnly {
    /// A fresh method state.
    pub fn new(cfg: &OptimizerConfig) -> Self {
        Self {
            optimizer: cfg.init(),
            lr: cfg.lr,
        }
    }

    /// The optimizer, for checkpoints.
    pub fn optimizer(&self) -> &ModuleOptimizer {
        &self.optimizer
    }

    /// Replaces the optimizer state (resuming from a checkpoint).
    pub fn set_optimizer(&mut self, optimizer: ModuleOptimizer) {
        self.optimizer = optimizer;
    }

    /// Takes the optimizer out, leaving a fresh one (for loading state into it).
    pub fn take_optimizer(&mut self, cfg: &OptimizerConfig) -> ModuleOptimizer {
        std::mem::replace(&mut self.optimizer, cfg.init())
    }

    /// One iteration: `x` is `[batch, 1, 28, 28]` on an autodiff device, `y` the labels `[batch]`.
    pub fn step(
        &mut self,
        net: DigitsNet,
        x: Tensor<4>,
        y: Tensor<1, Int>,
    ) -> (DigitsNet, StepStats) {
        let count = y.dims()[0];
        let logits = net.forward(x); // [b, classes]
        let ce = CrossEntropyLossConfig::new().init(&logits.device());
        let loss = ce.forward(logits.clone(), y.clone());
        let correct = logits
            .detach()
            .argmax(1)
            .flatten::<1>(0, 1)
            .equal(y)
            .int()
            .sum()
            .into_scalar::<i64>() as usize;
        let loss_value = loss.clone().into_scalar::<f32>() as f64;
        let grads = loss.backward();
        let grads = GradientsParams::from_grads(grads, &net);
        let net = self.optimizer.step(self.lr, net, grads);
        (
            net,
            StepStats {
                loss: loss_value,
                correct,
                count,
            },
        )
    }
}
