//! Training objectives, one file each: [`source_only`], [`mcd`], [`adr`]. A method owns
//! its networks and optimizers and performs one training iteration on a batch (source
//! only) or a source/target pair (adapting methods), returning its losses.
//!
//! Evaluation goes through a [`Predictor`]: the method's networks in eval mode, with one
//! or more prediction heads (MCD reports C1, C2 and their ensemble).

pub mod adr;
pub mod grl;
pub mod mcd;
pub mod osbp;
pub mod source_only;

use crate::item::{Batch, ItemType, PairBatch};
use crate::model::NetConfig;
use anyhow::Result;
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The optimizer section of a model stage (`optimizer = { ... }`).
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
    /// How the learning rate changes from epoch to epoch.
    #[serde(default)]
    pub schedule: Schedule,
    /// `step` schedule: the fractions of the epochs after which the rate is multiplied
    /// by `gamma` (default `[0.5, 0.75]`, the EnvNet-v2 reference's).
    #[serde(default = "default_milestones")]
    pub milestones: Vec<f64>,
    /// `step` schedule: the factor at each milestone (default 0.1).
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Epochs at the start trained with a tenth of the rate (default 0).
    #[serde(default)]
    pub warmup: usize,
    /// SGD momentum (default 0.9).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// SGD with Nesterov momentum (default true).
    #[serde(default = "default_nesterov")]
    pub nesterov: bool,
}

/// Learning-rate schedules, applied per epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// `lr` for every epoch (the reference protocols).
    #[default]
    Constant,
    /// Half a cosine from `lr` at the first epoch towards 0 after the last:
    /// `lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2`.
    Cosine,
    /// `lr` times `gamma` for every milestone passed (`epoch > milestone * epochs`).
    Step,
}

/// Optimizers a pipeline can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Kingma and Ba, 2015) with beta (0.9, 0.999).
    Adam,
    /// Stochastic gradient descent with momentum (Nesterov by default), no dampening.
    Sgd,
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
fn default_milestones() -> Vec<f64> {
    vec![0.5, 0.75]
}
fn default_gamma() -> f64 {
    0.1
}
fn default_momentum() -> f64 {
    0.9
}
fn default_nesterov() -> bool {
    true
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: default_opt_kind(),
            lr: default_lr(),
            weight_decay: default_wd(),
            schedule: Schedule::Constant,
            milestones: default_milestones(),
            gamma: default_gamma(),
            warmup: 0,
            momentum: default_momentum(),
            nesterov: default_nesterov(),
        }
    }
}

impl OptimizerConfig {
    /// The learning rate of `epoch` (1-based) in a run of `epochs`.
    pub fn lr_at(&self, epoch: usize, epochs: usize) -> f64 {
        if epoch <= self.warmup {
            return self.lr * 0.1;
        }
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => {
                let t = epoch.saturating_sub(1) as f64 / epochs.max(1) as f64;
                0.5 * self.lr * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
            Schedule::Step => {
                let passed = self
                    .milestones
                    .iter()
                    .filter(|m| epoch as f64 > **m * epochs as f64)
                    .count();
                self.lr * self.gamma.powi(passed as i32)
            }
        }
    }

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
            OptimizerKind::Sgd => {
                let mut cfg = burn::optim::SgdConfig::new().with_momentum(Some(
                    burn::optim::momentum::MomentumConfig::new()
                        .with_momentum(self.momentum)
                        .with_dampening(0.0)
                        .with_nesterov(self.nesterov),
                ));
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
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Main loss (source cross-entropy).
    pub loss: f64,
    /// Correctly classified source examples of the batch (training mode).
    pub correct: usize,
    /// Source examples in the batch.
    pub count: usize,
    /// Discrepancy on the target batch (adapting methods), after the iteration.
    pub discrepancy: Option<f64>,
    /// Seconds spent in each phase of the iteration (e.g. MCD's steps A, B, C).
    pub phases: [(&'static str, f64); 3],
}

/// Methods a `train` stage can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodKind {
    /// Supervised training on the source only.
    SourceOnly,
    /// Maximum classifier discrepancy (Saito et al., CVPR 2018).
    Mcd,
    /// Adversarial dropout regularization (Saito et al., ICLR 2018).
    Adr,
    /// Between-class learning (Tokozume et al., ICLR 2018): KL loss on the soft labels of
    /// a `bc_mix` stage.
    Bc,
    /// Open set domain adaptation by backpropagation (Saito et al., ECCV 2018): the
    /// network's last output is "unknown".
    Osbp,
}

impl MethodKind {
    /// Every method.
    pub const ALL: [MethodKind; 5] = [
        MethodKind::SourceOnly,
        MethodKind::Mcd,
        MethodKind::Adr,
        MethodKind::Bc,
        MethodKind::Osbp,
    ];

    /// Name in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::SourceOnly => "source_only",
            MethodKind::Mcd => "mcd",
            MethodKind::Adr => "adr",
            MethodKind::Bc => "bc",
            MethodKind::Osbp => "osbp",
        }
    }

    /// Looks a method up by name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// What the model stage takes: batches of source data, or source/target pairs.
    pub fn input(self) -> ItemType {
        match self {
            MethodKind::SourceOnly | MethodKind::Bc => ItemType::Batch,
            MethodKind::Mcd | MethodKind::Adr | MethodKind::Osbp => ItemType::Pair,
        }
    }

    /// Number of classifier heads of the method's network.
    pub fn heads(self) -> usize {
        match self {
            MethodKind::Mcd => 2,
            MethodKind::SourceOnly | MethodKind::Adr | MethodKind::Bc | MethodKind::Osbp => 1,
        }
    }

    /// Whether the network's last output is "unknown" (open-set methods): evaluation
    /// then counts target labels beyond the known classes as unknown.
    pub fn open_set(self) -> bool {
        self == MethodKind::Osbp
    }
}

/// Method settings from the model stage.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodConfig {
    /// Which method.
    pub kind: MethodKind,
    /// Network hyper-parameters.
    pub net: NetConfig,
    /// Optimizer settings (one optimizer each for the generator and the classifiers).
    pub optimizer: OptimizerConfig,
    /// Generator updates per iteration (MCD step C, ADR generator step); default 4.
    pub num_k: usize,
    /// Gradient reversal (OSBP).
    pub grl: grl::GrlConfig,
    /// `source_only`: evaluate as an open-set model that answers "unknown" below this
    /// top probability (the confidence-threshold baseline of open-set adaptation).
    pub reject_below: Option<f64>,
}

impl MethodConfig {
    /// How the model answers "unknown": OSBP with its last output, a source-only
    /// model with `reject_below` by its confidence; `None` for closed-set models.
    pub fn open_set(&self) -> Option<crate::openset::OpenSet> {
        if self.kind.open_set() {
            Some(crate::openset::OpenSet {
                known: self.net.num_classes().saturating_sub(1),
                reject_below: None,
            })
        } else {
            self.reject_below.map(|t| crate::openset::OpenSet {
                known: self.net.num_classes(),
                reject_below: Some(t as f32),
            })
        }
    }
}

/// One training iteration's input.
#[derive(Clone, Copy, Debug)]
pub enum StepInput<'a> {
    /// A labelled source batch.
    Source(&'a Batch),
    /// A source batch with a target batch.
    Pair(&'a PairBatch),
}

/// A training objective with its networks and optimizers.
pub trait Method: Send {
    /// One iteration on `input`, on the autodiff device the method was built on.
    fn step(&mut self, input: StepInput<'_>) -> Result<StepStats>;
    /// The networks in eval mode, on the plain device.
    fn predictor(&self) -> Box<dyn Predictor>;
    /// Writes networks and optimizer state into a checkpoint folder.
    fn save(&self, dir: &Path) -> Result<()>;
    /// Restores networks and optimizer state from a checkpoint folder.
    fn load(&mut self, dir: &Path) -> Result<()>;
    /// Restores the networks alone from a checkpoint folder (for evaluation, which
    /// needs no optimizer state).
    fn load_weights(&mut self, dir: &Path) -> Result<()>;
    /// The networks' weights as safetensors bytes.
    fn export(&self) -> Result<Vec<u8>>;
    /// Sets the learning rate of every optimizer for the following iterations.
    fn set_learning_rate(&mut self, lr: f64);
    /// Called at the start of each epoch (1-based) of `epochs`, for methods with
    /// schedules of their own (OSBP's gradient reversal weight).
    fn set_epoch(&mut self, _epoch: usize, _epochs: usize) {}
}

/// Networks in eval mode, for evaluation and streaming.
pub trait Predictor: Send {
    /// Names of the prediction heads; the first is the one reported as "the" accuracy.
    fn heads(&self) -> &'static [&'static str];
    /// Class probabilities `[batch, classes]` of every head for `x` `[batch, 1, h, w]`.
    fn predict(&self, x: Tensor<4>) -> Vec<Tensor<2>>;
    /// Generator features `[batch, features]`.
    fn features(&self, x: Tensor<4>) -> Tensor<2>;
}

/// Builds a method with fresh networks on the autodiff twin of `device`.
pub fn build(cfg: &MethodConfig, device: &Device) -> Box<dyn Method> {
    let ad = device.clone().autodiff();
    match cfg.kind {
        MethodKind::SourceOnly | MethodKind::Bc => Box::new(source_only::SourceOnly::new(cfg, &ad)),
        MethodKind::Mcd => Box::new(mcd::Mcd::new(cfg, &ad)),
        MethodKind::Adr => Box::new(adr::Adr::new(cfg, &ad)),
        MethodKind::Osbp => Box::new(osbp::Osbp::new(cfg, cfg.grl, &ad)),
    }
}

/// Loads a checkpoint's networks for evaluation on `device`.
pub fn load_predictor(
    cfg: &MethodConfig,
    ckpt: &Path,
    device: &Device,
) -> Result<Box<dyn Predictor>> {
    let mut m = build(cfg, device);
    m.load_weights(ckpt)?;
    Ok(m.predictor())
}

/// Images and labels of a batch as tensors on `device`.
pub fn batch_tensors(b: &Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let n = b.len();
    let x = Tensor::<4>::from_data(
        TensorData::new(b.pixels.clone(), [n, 1, b.height, b.width]),
        device,
    );
    let labels: Vec<i64> = b.labels.iter().map(|&l| l as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);
    (x, y)
}

/// Source images and labels and target images of an adapting method's iteration.
pub(crate) fn pair_tensors(
    input: StepInput<'_>,
    device: &Device,
    method: &str,
) -> Result<(Tensor<4>, Tensor<1, Int>, Tensor<4>)> {
    let StepInput::Pair(pair) = input else {
        anyhow::bail!(
            "{method} trains on source/target pairs: put a `pair` stage before the model stage"
        );
    };
    let (xs, ys) = batch_tensors(&pair.source, device);
    Ok((xs, ys, batch_images(&pair.target, device)))
}

/// The [`Method`] items shared by methods that keep one network in `self.net` (an
/// `Option`, taken during a step), a generator optimizer `opt_g`, a classifier optimizer
/// `opt_c` and their `cfg`: predictor, checkpoints, learning rate and export.
macro_rules! one_network_plumbing {
    () => {
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

        fn load_weights(&mut self, dir: &Path) -> Result<()> {
            crate::method::load_net(dir, &mut self.net)
        }

        fn set_learning_rate(&mut self, lr: f64) {
            self.cfg.optimizer.lr = lr;
        }

        fn export(&self) -> Result<Vec<u8>> {
            safetensors_bytes(self.net())
        }
    };
}
pub(crate) use one_network_plumbing;

/// Checkpoint of a network with a generator optimizer and a classifier optimizer.
pub(crate) fn save_two<N: burn::module::Module>(
    dir: &Path,
    net: &N,
    opt_g: &burn::optim::ModuleOptimizer,
    opt_c: &burn::optim::ModuleOptimizer,
) -> Result<()> {
    use crate::train::checkpoint::{save_module, save_optimizer};
    save_module(&dir.join("model.bpk"), net)?;
    save_optimizer(&dir.join("optimizer_g.bpk"), opt_g)?;
    save_optimizer(&dir.join("optimizer_c.bpk"), opt_c)
}

/// Restores what [`save_two`] wrote.
pub(crate) fn load_two<N: burn::module::Module>(
    dir: &Path,
    net: &mut Option<N>,
    opt_g: &mut burn::optim::ModuleOptimizer,
    opt_c: &mut burn::optim::ModuleOptimizer,
    cfg: &OptimizerConfig,
) -> Result<()> {
    use crate::train::checkpoint::load_optimizer;
    load_net(dir, net)?;
    let g = std::mem::replace(opt_g, cfg.init());
    *opt_g = load_optimizer(&dir.join("optimizer_g.bpk"), g)?;
    let c = std::mem::replace(opt_c, cfg.init());
    *opt_c = load_optimizer(&dir.join("optimizer_c.bpk"), c)?;
    Ok(())
}

/// Restores the network `net` from a checkpoint folder.
pub(crate) fn load_net<N: burn::module::Module>(dir: &Path, net: &mut Option<N>) -> Result<()> {
    let fresh = net
        .take()
        .ok_or_else(|| anyhow::anyhow!("network missing"))?;
    *net = Some(crate::train::checkpoint::load_module(
        &dir.join("model.bpk"),
        fresh,
    )?);
    Ok(())
}

/// Images of a batch as a tensor (labels are not read: target data).
pub fn batch_images(b: &Batch, device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(
        TensorData::new(b.pixels.clone(), [b.len(), 1, b.height, b.width]),
        device,
    )
}

/// Mean cross-entropy of `logits` `[b, c]` against `y` `[b]`.
pub fn cross_entropy(logits: Tensor<2>, y: Tensor<1, Int>) -> Tensor<1> {
    burn::nn::loss::CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits, y)
}

/// Correct predictions of `logits` against `y`.
pub fn count_correct(logits: &Tensor<2>, y: &Tensor<1, Int>) -> usize {
    logits
        .clone()
        .detach()
        .argmax(1)
        .flatten::<1>(0, 1)
        .equal(y.clone())
        .int()
        .sum()
        .into_scalar::<i64>() as usize
}

/// MCD's discrepancy: mean absolute difference of the two softmax outputs.
pub fn discrepancy(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    (softmax(a, 1) - softmax(b, 1)).abs().mean()
}

/// ADR's divergence between two predictions given as logits: the symmetric KL,
/// `KL(q_a || q_b) + KL(q_b || q_a)`, of `q = softmax(p)` where `p` are the softmax
/// outputs, averaged over the batch.
///
/// The second softmax is the authors' code's (it applies `log_softmax` to the class
/// probabilities): with probabilities as logits the divergence is bounded (at most about
/// 0.29 for ten classes, for two opposite one-hot predictions), so the critic that
/// maximises it cannot run away from the source task, and it is zero when the two
/// predictions agree. As in that code, the reference distribution of each direction is
/// held fixed (no gradient flows through it).
pub fn symmetric_kl(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    let (la, lb) = (log_softmax(softmax(a, 1), 1), log_softmax(softmax(b, 1), 1));
    let (la_fixed, lb_fixed) = (la.clone().detach(), lb.clone().detach());
    let (qa_fixed, qb_fixed) = (la_fixed.clone().exp(), lb_fixed.clone().exp());
    let kl_ab = qa_fixed * (la_fixed - lb); // KL(q_a || q_b), q_a fixed
    let kl_ba = qb_fixed * (lb_fixed - la); // KL(q_b || q_a), q_b fixed
    (kl_ab + kl_ba).sum_dim(1).mean()
}

/// A scalar tensor's value.
pub fn scalar(t: &Tensor<1>) -> f64 {
    t.clone().into_scalar::<f32>() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], rows: usize) -> Tensor<2> {
        let d = Device::flex();
        Tensor::from_data(TensorData::new(v.to_vec(), [rows, v.len() / rows]), &d)
    }

    #[test]
    fn discrepancy_of_equal_outputs_is_zero_and_positive_otherwise() {
        let a = t(&[1.0, 2.0, 3.0, 0.0, 0.0, 0.0], 2);
        assert!(scalar(&discrepancy(a.clone(), a.clone())).abs() < 1e-7);
        let b = t(&[3.0, 2.0, 1.0, 0.0, 0.0, 0.0], 2);
        // row 1: softmax(1,2,3) vs softmax(3,2,1); row 2 identical
        let p = [0.090_030_57f64, 0.244_728_48, 0.665_240_94];
        let row1 = (p[0] - p[2]).abs() * 2.0 / 3.0;
        let want = (row1 + 0.0) / 2.0;
        assert!((scalar(&discrepancy(a, b)) - want).abs() < 1e-5);
    }

    #[test]
    fn symmetric_kl_is_symmetric_and_zero_on_equal_inputs() {
        let a = t(&[0.5, -1.0, 2.0], 1);
        let b = t(&[1.5, 0.0, -2.0], 1);
        let ab = scalar(&symmetric_kl(a.clone(), b.clone()));
        let ba = scalar(&symmetric_kl(b, a.clone()));
        assert!(ab > 0.1);
        assert!((ab - ba).abs() < 1e-5);
        assert!(scalar(&symmetric_kl(a.clone(), a)).abs() < 1e-6);
    }

    #[test]
    fn symmetric_kl_is_bounded_and_its_references_are_fixed() {
        // opposite, confident predictions: the largest value, about 2 (e - 1) / (e + 9)
        let mut a = vec![-30.0f32; 10];
        let mut b = vec![-30.0f32; 10];
        a[0] = 30.0;
        b[1] = 30.0;
        let (ta, tb) = (t(&a, 1), t(&b, 1));
        let e = std::f64::consts::E;
        let max = 2.0 * (e - 1.0) / (e + 9.0);
        assert!((scalar(&symmetric_kl(ta, tb)) - max).abs() < 1e-4);

        // the gradient of each side is that of KL(fixed || own side) alone
        let d = Device::flex().autodiff();
        let mk = |v: &[f32]| {
            Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, 3]), &d).require_grad()
        };
        let (za, zb) = ([2.0f32, -1.0, 0.5], [0.0f32, 1.0, -0.5]);
        let (x, y) = (mk(&za), mk(&zb));
        let grads = symmetric_kl(x.clone(), y.clone()).backward();
        let gx: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        // finite differences of KL(q_b || q_a) in z_a, with q_b fixed
        let q = |z: [f32; 3]| {
            let p: Vec<f64> = {
                let m: f64 = z.iter().map(|v| (*v as f64).exp()).sum();
                z.iter().map(|v| (*v as f64).exp() / m).collect()
            };
            let m: f64 = p.iter().map(|v| v.exp()).sum();
            p.iter().map(|v| v.exp() / m).collect::<Vec<f64>>()
        };
        let qb = q(zb);
        let kl = |z: [f32; 3]| -> f64 {
            let qa = q(z);
            (0..3).map(|k| qb[k] * (qb[k].ln() - qa[k].ln())).sum()
        };
        for k in 0..3 {
            let (mut up, mut down) = (za, za);
            up[k] += 1e-3;
            down[k] -= 1e-3;
            let want = (kl(up) - kl(down)) / 2e-3;
            assert!((gx[k] as f64 - want).abs() < 1e-4, "{gx:?} vs {want}");
        }
    }

    #[test]
    fn cosine_schedule_starts_at_lr_and_falls_to_near_zero() {
        let mut o = OptimizerConfig::default();
        assert_eq!(o.lr_at(1, 200), o.lr);
        assert_eq!(o.lr_at(200, 200), o.lr);
        o.schedule = Schedule::Cosine;
        assert!((o.lr_at(1, 200) - o.lr).abs() < 1e-15);
        assert!((o.lr_at(101, 200) - o.lr / 2.0).abs() < 1e-12);
        let last = o.lr_at(200, 200);
        assert!(last > 0.0 && last < o.lr * 1e-3, "{last}");
        let lrs: Vec<f64> = (1..=200).map(|e| o.lr_at(e, 200)).collect();
        assert!(lrs.windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn step_schedule_with_warmup() {
        let o = OptimizerConfig {
            lr: 0.1,
            schedule: Schedule::Step,
            warmup: 2,
            ..OptimizerConfig::default()
        };
        let lrs: Vec<f64> = [1, 2, 3, 50, 51, 75, 76, 100]
            .iter()
            .map(|&e| o.lr_at(e, 100))
            .collect();
        let want = [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001];
        for (a, b) in lrs.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{lrs:?}");
        }
    }

    #[test]
    fn methods_declare_inputs_and_heads() {
        assert_eq!(MethodKind::parse("mcd"), Some(MethodKind::Mcd));
        assert_eq!(MethodKind::Mcd.input(), ItemType::Pair);
        assert_eq!(MethodKind::Mcd.heads(), 2);
        assert_eq!(MethodKind::SourceOnly.input(), ItemType::Batch);
        assert!(MethodKind::parse("dann").is_none());
    }
}
