//! The model stage of a training graph: owns the device, the network and the method;
//! steps on every batch, and at each epoch end evaluates, checkpoints and reports.

use super::checkpoint::{self, CheckpointState};
use crate::data::ImageSet;
use crate::eval::evaluate;
use crate::graph::{BoxError, Stage};
use crate::item::{Batch, EpochMetrics, Item, Report};
use crate::method::source_only::SourceOnly;
use crate::method::OptimizerConfig;
use crate::model::digits::{DigitsNet, DigitsNetConfig};
use crate::stage::dataset::epoch_seed;
use crate::stage::normalize::Normalize;
use anyhow::Context;
use burn::module::Module;
use burn::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Everything the trainer needs, resolved from the pipeline and the command line.
pub struct TrainerSetup {
    /// Network hyper-parameters.
    pub net: DigitsNetConfig,
    /// Optimizer settings.
    pub optimizer: OptimizerConfig,
    /// Plain (non-autodiff) device; training runs on its autodiff twin.
    pub device: Device,
    /// Run seed (weights, dropout).
    pub seed: u64,
    /// Total epochs.
    pub epochs: usize,
    /// First epoch to train (1 for a fresh run).
    pub first_epoch: usize,
    /// Iterations per epoch, for progress reporting.
    pub iterations_per_epoch: usize,
    /// Evaluation sets, evaluated after every epoch.
    pub eval_sets: Vec<Arc<ImageSet>>,
    /// Preprocessing applied before the network (the same as on the training path).
    pub normalize: Option<Normalize>,
    /// Run folder; checkpoints go to `RUN/checkpoints`.
    pub run_dir: PathBuf,
    /// Save a checkpoint every N epochs (and always after the last one).
    pub checkpoint_every: usize,
    /// Checkpoint to resume from.
    pub resume_from: Option<(PathBuf, CheckpointState)>,
}

/// The training model stage.
pub struct Trainer {
    setup: TrainerSetup,
    ad: Device,
    net: Option<DigitsNet>,
    method: SourceOnly,
    started: bool,
    epoch_started: Option<Instant>,
    seeded_epoch: usize,
    loss_sum: f64,
    correct: usize,
    seen: usize,
    iterations: usize,
    elapsed_before: f64,
    session_start: Instant,
}

impl Trainer {
    /// Builds the network (fresh, or from the resume checkpoint).
    pub fn new(setup: TrainerSetup) -> anyhow::Result<Self> {
        let ad = setup.device.clone().autodiff();
        setup.device.seed(setup.seed);
        let mut method = SourceOnly::new(&setup.optimizer);
        let (net, elapsed_before) = match &setup.resume_from {
            Some((dir, state)) => {
                let net = checkpoint::load_net(dir, &setup.net, &ad)?;
                let opt = method.take_optimizer(&setup.optimizer);
                method.set_optimizer(checkpoint::load_optimizer(dir, opt)?);
                (net, state.elapsed_s)
            }
            None => (setup.net.init(&ad), 0.0),
        };
        Ok(Self {
            ad,
            net: Some(net),
            method,
            started: false,
            epoch_started: None,
            seeded_epoch: 0,
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
            iterations: 0,
            elapsed_before,
            session_start: Instant::now(),
            setup,
        })
    }

    fn start(&mut self, out: &mut Vec<Item>) {
        if !self.started {
            self.started = true;
            out.push(Item::Report(Report::Start {
                first_epoch: self.setup.first_epoch,
                epochs: self.setup.epochs,
                iterations_per_epoch: self.setup.iterations_per_epoch,
            }));
        }
    }

    fn train_batch(&mut self, batch: &Batch, out: &mut Vec<Item>) -> anyhow::Result<()> {
        self.start(out);
        if self.seeded_epoch != batch.epoch {
            // Dropout masks depend only on (seed, epoch): a resumed run repeats them.
            self.setup
                .device
                .seed(epoch_seed(self.setup.seed, batch.epoch) ^ 1);
            self.seeded_epoch = batch.epoch;
            self.epoch_started = Some(Instant::now());
        }
        let n = batch.len();
        let x = Tensor::<4>::from_data(
            TensorData::new(batch.pixels.clone(), [n, 1, batch.height, batch.width]),
            &self.ad,
        );
        let labels: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &self.ad);
        let net = self
            .net
            .take()
            .context("network lost after a failed step")?;
        let (net, stats) = self.method.step(net, x, y);
        self.net = Some(net);
        anyhow::ensure!(
            stats.loss.is_finite(),
            "training diverged at epoch {}: the loss is {} (try a lower learning rate)",
            batch.epoch,
            stats.loss
        );
        self.loss_sum += stats.loss;
        self.correct += stats.correct;
        self.seen += stats.count;
        self.iterations += 1;
        out.push(Item::Report(Report::Step {
            epoch: batch.epoch,
            loss: stats.loss,
            acc: self.correct as f64 / self.seen.max(1) as f64,
        }));
        Ok(())
    }

    fn end_epoch(&mut self, epoch: usize, out: &mut Vec<Item>) -> anyhow::Result<()> {
        self.start(out);
        let train_s = self
            .epoch_started
            .take()
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let t_eval = Instant::now();
        let net = self
            .net
            .as_ref()
            .context("network lost after a failed step")?;
        let valid = net.valid();
        let eval = self
            .setup
            .eval_sets
            .iter()
            .map(|set| {
                let e = evaluate(&valid, set, self.setup.normalize, &self.setup.device);
                (set.name.clone(), e.accuracy)
            })
            .collect();
        let eval_s = t_eval.elapsed().as_secs_f64();
        let elapsed_s = self.elapsed_before + self.session_start.elapsed().as_secs_f64();
        if epoch % self.setup.checkpoint_every.max(1) == 0 || epoch == self.setup.epochs {
            let state = CheckpointState {
                epoch,
                elapsed_s,
                seed: self.setup.seed,
                version: env!("CARGO_PKG_VERSION").to_string(),
            };
            checkpoint::save(&self.setup.run_dir, net, self.method.optimizer(), &state)?;
        }
        let metrics = EpochMetrics {
            epoch,
            train_loss: self.loss_sum / self.iterations.max(1) as f64,
            train_acc: self.correct as f64 / self.seen.max(1) as f64,
            eval,
            iterations: self.iterations,
            train_s,
            eval_s,
            elapsed_s,
        };
        self.loss_sum = 0.0;
        self.correct = 0;
        self.seen = 0;
        self.iterations = 0;
        out.push(Item::Report(Report::Epoch(metrics)));
        Ok(())
    }
}

impl Stage<Item> for Trainer {
    fn process(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), BoxError> {
        match item {
            Item::Batch(b) => self.train_batch(&b, out),
            Item::EpochEnd(e) => self.end_epoch(e, out),
            other => Err(crate::stage::unexpected("train", &other)),
        }
    }
}
