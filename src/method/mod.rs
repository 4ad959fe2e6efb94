//! Training objectives, one file each. A method performs one training iteration on a
//! batch (and, for adapting methods, a target batch) and returns its losses.
//!
//! Methods take the network by value and hand it back updated: burn's optimizers
//! consume a module and return the stepped one.

pub mod source_only;

use serde::{Deserialize, Serialize};

/// The optimizer section of a model stage (`[stage.NAME.optimizer]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Optimizer kind; `adam` is the one the reference protocols use.
    #[serde(default = "default_opt_kind")]
    pub kind: OptimizerKind,
    /// Learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// L2 penalty added to the gradient (PyTorch `weight_decay`).
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
}

/// Optimizers a pipeline can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Kingma and Ba, 2015) with beta (0.9, 0.999).
    Adam,
}

fn default_opt_kind() -> OptimizerKind {
    OptimizerKind::Adam
}
fn default_lr() -> f64 {
    2e-4
}
fn default_wd() -> f64 {
    5e-4
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: default_opt_kind(),
            lr: default_lr(),
            weight_decay: default_wd(),
        }
    }
}

impl OptimizerConfig {
    /// A fresh optimizer for this configuration.
    pub fn init(&self) -> burn::optim::ModuleOptimizer {
        match self.kind {
            OptimizerKind::Adam => {
                let mut cfg = burn::optim::AdamConfig::new().with_epsilon(1e-8);
                if self.weight_decay > 0.0 {
                    cfg = cfg.with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
                        self.weight_decay as f32,
                    )));
                }
                cfg.init()
            }
        }
    }
}

/// Losses and counts of one training iteration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StepStats {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Correctly classified examples of the batch (training mode, with dropout).
    pub correct: usize,
    /// Examples in the batch.
    pub count: usize,
}
