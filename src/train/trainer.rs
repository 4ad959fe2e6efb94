//! The model stage of a training graph: owns the device and the method (its networks and
//! optimizers); steps on every batch or source/target pair, and at each epoch end
//! evaluates, checkpoints and reports.

use super::checkpoint::{self, CheckpointState};
use super::TrainStop;
use crate::eval::EvalSet;
use crate::graph::{BoxError, Stage};
use crate::item::{EpochMetrics, Item, Report};
use crate::method::{self, Method, MethodConfig, StepInput, StepStats};
use crate::stage::dataset::epoch_seed;
use crate::stage::normalize::Normalize;
use burn::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

/// Everything the trainer needs, resolved from the pipeline and the command line.
pub struct TrainerSetup {
    /// Method, network and optimizer settings.
    pub method: MethodConfig,
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
    pub eval_sets: Vec<EvalSet>,
    /// Preprocessing applied before the network (the same as on the training path).
    pub normalize: Option<Normalize>,
    /// Run folder; checkpoints go to `RUN/checkpoints`.
    pub run_dir: PathBuf,
    /// Save a checkpoint every N epochs (and always after the last one).
    pub checkpoint_every: usize,
    /// Evaluate every N epochs (and always after the last one).
    pub eval_every: usize,
    /// Checkpoint to resume from.
    pub resume_from: Option<(PathBuf, CheckpointState)>,
    /// The progress display's line, told how far each evaluation is.
    pub status: crate::sink::progress::StatusLine,
    /// Ctrl-C: [`TrainStop::at_epoch_end`] is honoured here (the epoch under way is
    /// finished and checkpointed, then [`TrainStop::now`] stops the graph).
    pub stop: TrainStop,
}

/// The training model stage.
pub struct Trainer {
    setup: TrainerSetup,
    method: Box<dyn Method>,
    started: bool,
    epoch_started: Option<Instant>,
    seeded_epoch: usize,
    loss_sum: f64,
    disc_sum: f64,
    phase_sum: [(&'static str, f64); 3],
    correct: usize,
    seen: usize,
    iterations: usize,
    elapsed_before: f64,
    session_start: Instant,
    /// Metrics of the epochs since the last checkpoint.
    unsaved: Vec<EpochMetrics>,
}

impl Trainer {
    /// Builds the method's networks (fresh, or from the resume checkpoint).
    pub fn new(setup: TrainerSetup) -> anyhow::Result<Self> {
        setup.device.seed(setup.seed);
        crate::kernels::seed_dropout(setup.seed);
        let mut method = method::build(&setup.method, &setup.device);
        let elapsed_before = match &setup.resume_from {
            Some((dir, state)) => {
                method.load(dir)?;
                state.elapsed_s
            }
            None => 0.0,
        };
        Ok(Self {
            method,
            started: false,
            epoch_started: None,
            seeded_epoch: 0,
            loss_sum: 0.0,
            disc_sum: 0.0,
            phase_sum: [("", 0.0); 3],
            correct: 0,
            seen: 0,
            iterations: 0,
            elapsed_before,
            session_start: Instant::now(),
            unsaved: Vec::new(),
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

    fn train(
        &mut self,
        epoch: usize,
        input: StepInput<'_>,
        out: &mut Vec<Item>,
    ) -> anyhow::Result<()> {
        self.start(out);
        if self.setup.stop.now.is_stopped() {
            return Ok(());
        }
        if self.seeded_epoch != epoch {
            // a stop asked for between two epochs: the last one is kept, this one not
            // begun (steps counted since the last epoch end mean that end never came: the
            // weights are past it, so nothing is checkpointed)
            if self.setup.stop.at_epoch_end.is_stopped() {
                if self.iterations == 0 {
                    self.stop_at_epoch_boundary()?;
                } else {
                    self.setup.stop.now.stop();
                }
                return Ok(());
            }
            // Dropout masks depend only on (seed, epoch): a resumed run repeats them.
            self.setup
                .device
                .seed(epoch_seed(self.setup.seed, epoch) ^ 1);
            crate::kernels::seed_dropout(epoch_seed(self.setup.seed, epoch) ^ 2);
            // the learning rate of this epoch (a resumed run continues the schedule)
            let lr = self.setup.method.optimizer.lr_at(epoch, self.setup.epochs);
            self.method.set_learning_rate(lr);
            self.method.set_epoch(epoch, self.setup.epochs);
            self.seeded_epoch = epoch;
            self.epoch_started = Some(Instant::now());
        }
        let stats: StepStats = self.method.step(input)?;
        anyhow::ensure!(
            stats.loss.is_finite(),
            "training diverged at epoch {epoch}: the loss is {} (try a lower learning rate)",
            stats.loss
        );
        self.loss_sum += stats.loss;
        self.disc_sum += stats.discrepancy.unwrap_or(0.0);
        for (sum, (name, secs)) in self.phase_sum.iter_mut().zip(stats.phases) {
            *sum = (name, sum.1 + secs);
        }
        self.correct += stats.correct;
        self.seen += stats.count;
        self.iterations += 1;
        out.push(Item::Report(Report::Step {
            epoch,
            loss: stats.loss,
            acc: self.correct as f64 / self.seen.max(1) as f64,
        }));
        Ok(())
    }

    fn end_epoch(&mut self, epoch: usize, out: &mut Vec<Item>) -> anyhow::Result<()> {
        self.start(out);
        if self.setup.stop.now.is_stopped() {
            // the graph is stopping: a partly trained epoch is neither evaluated nor kept
            return Ok(());
        }
        anyhow::ensure!(
            self.iterations > 0,
            "epoch {epoch} had no training batch: the training data gave too few examples for one batch (check the training sets' filters and limits, or a batcher's drop_last)"
        );
        let train_s = self
            .epoch_started
            .take()
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let t_eval = Instant::now();
        let predictor = self.method.predictor();
        let evaluate =
            epoch.is_multiple_of(self.setup.eval_every.max(1)) || epoch == self.setup.epochs;
        let sets: &[crate::eval::EvalSet] = if evaluate { &self.setup.eval_sets } else { &[] };
        let open = self.setup.method.open_set();
        let evals: Vec<crate::eval::Evaluation> = sets
            .iter()
            .flat_map(|set| {
                let (name, total) = (set.name(), set.len());
                let status = &self.setup.status;
                status.say(|| format!("evaluating {name}: 0/{total}"));
                set.evaluate(
                    predictor.as_ref(),
                    self.setup.normalize,
                    &self.setup.device,
                    open,
                    &|done| status.say(|| format!("evaluating {name}: {done}/{total}")),
                )
            })
            .collect();
        let open_set = evals
            .iter()
            .filter_map(|e| e.open_set.map(|m| (e.data.clone(), m)))
            .collect();
        let eval = evals.into_iter().map(|e| (e.data, e.accuracy)).collect();
        let eval_s = t_eval.elapsed().as_secs_f64();
        let elapsed_s = self.elapsed_before + self.session_start.elapsed().as_secs_f64();
        let n = self.iterations.max(1) as f64;
        let metrics = EpochMetrics {
            epoch,
            train_loss: self.loss_sum / n,
            train_acc: self.correct as f64 / self.seen.max(1) as f64,
            discrepancy: (self.disc_sum > 0.0).then_some(self.disc_sum / n),
            eval,
            open_set,
            iterations: self.iterations,
            phase_s: self
                .phase_sum
                .iter()
                .filter(|(name, _)| !name.is_empty())
                .map(|(name, secs)| (name.to_string(), secs / n))
                .collect(),
            train_s,
            eval_s,
            elapsed_s,
        };
        // the checkpoint carries this epoch's line, in case the process dies before the
        // metrics sink writes it
        self.unsaved.push(metrics.clone());
        if epoch.is_multiple_of(self.setup.checkpoint_every.max(1)) || epoch == self.setup.epochs {
            self.save_checkpoint()?;
        }
        self.loss_sum = 0.0;
        self.disc_sum = 0.0;
        self.phase_sum = [("", 0.0); 3];
        self.correct = 0;
        self.seen = 0;
        self.iterations = 0;
        out.push(Item::Report(Report::Epoch(metrics)));
        if epoch < self.setup.epochs && self.setup.stop.at_epoch_end.is_stopped() {
            self.stop_at_epoch_boundary()?;
        }
        Ok(())
    }

    /// Checkpoints the epochs trained since the last checkpoint (the weights are those
    /// of the last one's end); nothing to do when there are none.
    fn save_checkpoint(&mut self) -> anyhow::Result<()> {
        let Some(last) = self.unsaved.last() else {
            return Ok(());
        };
        let state = CheckpointState {
            epoch: last.epoch,
            elapsed_s: last.elapsed_s,
            seed: self.setup.seed,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        checkpoint::save(
            &self.setup.run_dir,
            self.method.as_ref(),
            &state,
            &self.unsaved,
        )?;
        self.unsaved.clear();
        Ok(())
    }

    /// Between two epochs after the first Ctrl-C: checkpoints the finished epoch (if
    /// `checkpoint_every` skipped it) and stops the graph.
    fn stop_at_epoch_boundary(&mut self) -> anyhow::Result<()> {
        self.save_checkpoint()?;
        self.setup.stop.now.stop();
        Ok(())
    }

    /// The method being trained.
    pub fn method(&self) -> &dyn Method {
        self.method.as_ref()
    }
}

impl Trainer {
    /// A labelled batch whose classes the network has outputs for.
    fn check_labels(&self, b: &crate::item::Batch) -> anyhow::Result<()> {
        let outputs = self.setup.method.net.num_classes();
        let labels = b.labels.iter().chain(b.mix.iter().map(|(l, _)| l));
        if let Some(&l) = labels.max().filter(|&&l| usize::from(l) >= outputs) {
            anyhow::bail!(
                "the training data has class {l}, but the network has {outputs} outputs (classes 0-{}): set `num_classes` of the model stage's `network` to at least {}, or keep fewer classes of the data",
                outputs - 1,
                usize::from(l) + 1
            );
        }
        Ok(())
    }
}

impl Stage<Item> for Trainer {
    fn process(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), BoxError> {
        match item {
            Item::Batch(b) => {
                self.check_labels(&b)?;
                self.train(b.epoch, StepInput::Source(&b), out)
            }
            Item::Pair(p) => {
                self.check_labels(&p.source)?;
                self.train(p.source.epoch, StepInput::Pair(&p), out)
            }
            Item::EpochEnd(e, _) => self.end_epoch(e, out),
            other => Err(crate::stage::unexpected("train", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::{Batch, Domain};
    use crate::method::{MethodKind, OptimizerConfig};
    use std::path::Path;
    use std::sync::Arc;

    /// A digits trainer that checkpoints every 10 epochs of 3, with no evaluation set.
    fn trainer(run_dir: &Path, stop: &TrainStop) -> Trainer {
        Trainer::new(TrainerSetup {
            method: MethodConfig {
                kind: MethodKind::SourceOnly,
                net: Default::default(),
                optimizer: OptimizerConfig::default(),
                num_k: 4,
                grl: Default::default(),
                reject_below: None,
            },
            device: Device::flex(),
            seed: 1,
            epochs: 3,
            first_epoch: 1,
            iterations_per_epoch: 2,
            eval_sets: Vec::new(),
            normalize: None,
            run_dir: run_dir.to_path_buf(),
            checkpoint_every: 10,
            eval_every: 1,
            resume_from: None,
            status: Default::default(),
            stop: stop.clone(),
        })
        .unwrap()
    }

    fn batch(epoch: usize) -> Item {
        let n = 8;
        Item::Batch(Arc::new(Batch {
            pixels: (0..n * 28 * 28)
                .map(|i| ((i * 37) % 101) as f32 / 101.0)
                .collect(),
            labels: (0..n as u8).map(|i| i % 10).collect(),
            height: 28,
            width: 28,
            epoch,
            domain: Domain::Source,
            mix: Vec::new(),
        }))
    }

    /// A [`trainer`] after epoch 1 (two batches; no checkpoint yet).
    fn trained_one_epoch(run_dir: &Path, stop: &TrainStop) -> Trainer {
        let mut t = trainer(run_dir, stop);
        for item in [batch(1), batch(1), Item::EpochEnd(1, Domain::Source)] {
            t.process(item, &mut Vec::new()).unwrap();
        }
        t
    }

    fn steps(out: &[Item]) -> usize {
        out.iter()
            .filter(|i| matches!(i, Item::Report(Report::Step { .. })))
            .count()
    }

    fn checkpoint_epoch(run_dir: &Path) -> Option<usize> {
        checkpoint::latest(run_dir).unwrap().map(|(_, s)| s.epoch)
    }

    #[test]
    fn a_stop_asked_for_mid_epoch_finishes_the_epoch_and_checkpoints_it() {
        let tmp = tempfile::tempdir().unwrap();
        let stop = TrainStop::new();
        let mut t = trained_one_epoch(tmp.path(), &stop);
        let mut out = Vec::new();
        assert_eq!(checkpoint_epoch(tmp.path()), None, "checkpoint_every 10");
        t.process(batch(2), &mut out).unwrap();
        stop.at_epoch_end.stop();
        assert!(!stop.now.is_stopped(), "the epoch under way goes on");
        out.clear();
        t.process(batch(2), &mut out).unwrap();
        assert_eq!(steps(&out), 1, "the rest of the epoch is trained");
        t.process(Item::EpochEnd(2, Domain::Source), &mut out)
            .unwrap();
        assert!(stop.now.is_stopped(), "then the graph is stopped");
        let (ckpt, state) = checkpoint::latest(tmp.path()).unwrap().unwrap();
        assert_eq!(state.epoch, 2);
        let lines: Vec<usize> = checkpoint::saved_epochs(&ckpt)
            .iter()
            .map(|m| m.epoch)
            .collect();
        assert_eq!(lines, vec![1, 2], "both epochs' lines travel with it");
        assert!(matches!(out.last(), Some(Item::Report(Report::Epoch(m))) if m.epoch == 2));
        // what still reaches the stage before the graph stops is not trained
        out.clear();
        t.process(batch(3), &mut out).unwrap();
        t.process(Item::EpochEnd(3, Domain::Source), &mut out)
            .unwrap();
        assert_eq!(steps(&out), 0);
        assert!(!out
            .iter()
            .any(|i| matches!(i, Item::Report(Report::Epoch(_)))));
        assert_eq!(checkpoint_epoch(tmp.path()), Some(2));
    }

    #[test]
    fn a_stop_between_epochs_keeps_the_finished_one_and_begins_no_other() {
        let tmp = tempfile::tempdir().unwrap();
        let stop = TrainStop::new();
        let mut t = trained_one_epoch(tmp.path(), &stop);
        let mut out = Vec::new();
        stop.at_epoch_end.stop();
        t.process(batch(2), &mut out).unwrap();
        assert_eq!(steps(&out), 0, "epoch 2 is not begun");
        assert!(stop.now.is_stopped());
        assert_eq!(checkpoint_epoch(tmp.path()), Some(1));
        // an epoch whose end never came (a dropping edge): the weights are past epoch 1's
        // end, so no checkpoint is labelled with it
        let tmp = tempfile::tempdir().unwrap();
        let stop = TrainStop::new();
        let mut t = trainer(tmp.path(), &stop);
        t.process(batch(1), &mut out).unwrap();
        stop.at_epoch_end.stop();
        out.clear();
        t.process(batch(2), &mut out).unwrap();
        assert_eq!(steps(&out), 0);
        assert!(stop.now.is_stopped());
        assert_eq!(checkpoint_epoch(tmp.path()), None);
        // a stop at once (the second Ctrl-C) neither evaluates nor keeps a partial epoch
        let tmp = tempfile::tempdir().unwrap();
        let stop = TrainStop::new();
        let mut t = trainer(tmp.path(), &stop);
        t.process(batch(1), &mut out).unwrap();
        stop.now.stop();
        out.clear();
        t.process(Item::EpochEnd(1, Domain::Source), &mut out)
            .unwrap();
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(checkpoint_epoch(tmp.path()), None);
    }

    #[test]
    fn a_stop_during_the_last_epoch_lets_the_run_finish() {
        let tmp = tempfile::tempdir().unwrap();
        let stop = TrainStop::new();
        let mut t = trainer(tmp.path(), &stop);
        let mut out = Vec::new();
        for epoch in 1..=3 {
            t.process(batch(epoch), &mut out).unwrap();
            if epoch == 3 {
                stop.at_epoch_end.stop();
            }
            t.process(Item::EpochEnd(epoch, Domain::Source), &mut out)
                .unwrap();
        }
        assert_eq!(
            checkpoint_epoch(tmp.path()),
            Some(3),
            "the last epoch's checkpoint"
        );
        assert!(
            !stop.now.is_stopped(),
            "nothing to stop: the graph ends by itself"
        );
    }
}
