//! Assembly: turns a validated [`Plan`] into a [`Graph`] of live stage objects, loading
//! the data sets it uses and building the model stage on the chosen device.

use super::{PipelineFile, Plan, StageKind};
use crate::audio::CropConfig;
use crate::data::{sound, DataDir, Dataset, ImageSet};
use crate::eval::EvalSet;
use crate::graph::{EdgeSpec, Graph, NodeId};
use crate::item::{Domain, EpochMetrics, Item, ItemType};
use crate::method::{MethodConfig, MethodKind};
use crate::model::digits::DigitsNetConfig;
use crate::model::envnet::{EnvNetConfig, EnvNetVariant};
use crate::model::NetConfig;
use crate::sink::metrics::MetricsSink;
use crate::sink::progress::ProgressSink;
use crate::stage::batcher::Batcher;
use crate::stage::crop::Crop;
use crate::stage::dataset::DatasetSource;
use crate::stage::mix::BcMix;
use crate::stage::normalize::Normalize;
use crate::stage::pair::Pair;
use crate::train::checkpoint::CheckpointState;
use crate::train::trainer::{Trainer, TrainerSetup};
use anyhow::{Context, Result};
use burn::prelude::Device;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What the command line resolved for a run.
pub struct RunContext {
    /// Where data files are read from.
    pub data_dir: DataDir,
    /// The run folder.
    pub run_dir: PathBuf,
    /// The compute device (plain; training uses its autodiff twin).
    pub device: Device,
    /// The device's name as the user gave it.
    pub device_name: String,
    /// Seed (the pipeline's unless overridden).
    pub seed: u64,
    /// Checkpoint to resume from.
    pub resume: Option<(PathBuf, CheckpointState)>,
    /// Epoch metrics of earlier sessions of this run.
    pub history: Vec<EpochMetrics>,
    /// Silence progress output.
    pub quiet: bool,
    /// Words to add to each finished epoch's progress line.
    pub epoch_note: Option<crate::sink::progress::EpochNote>,
    /// Ctrl-C: the graph runs until [`TrainStop::now`]; the model stage turns
    /// [`TrainStop::at_epoch_end`] into it once the epoch under way is checkpointed.
    pub stop: crate::train::TrainStop,
}

impl PipelineFile {
    /// The held-out fold of sound sets (`[train] fold`, default 1).
    pub fn fold(&self) -> usize {
        self.spec
            .train
            .as_ref()
            .and_then(|t| t.get_ref().fold.as_ref().map(|f| *f.get_ref()))
            .unwrap_or(1)
    }

    /// Sets the held-out fold (`--fold`).
    pub fn set_fold(&mut self, fold: usize) {
        if let Some(t) = self.spec.train.as_mut() {
            t.get_mut().fold = Some(toml::Spanned::new(0..0, fold));
        }
    }

    /// The `[data.NAME]` entry.
    fn data_spec(&self, name: &str) -> Result<&super::DataSpec> {
        Ok(self
            .spec
            .data
            .get(name)
            .with_context(|| {
                format!(
                    "data set `{name}` is not declared in {}",
                    self.path.display()
                )
            })?
            .get_ref())
    }

    /// Loads one `[data.NAME]` set, images or sound, named after the entry.
    pub fn load_dataset(&self, name: &str, dir: &DataDir) -> Result<Dataset> {
        let spec = self.data_spec(name)?;
        let Some(kind) = spec.set.get_ref().sound() else {
            return Ok(Dataset::Images(Arc::new(self.load_data(name, dir)?)));
        };
        let listing = sound::list(kind, &dir.path)?;
        let fold = self.fold();
        anyhow::ensure!(
            (1..=listing.folds.len()).contains(&fold),
            "fold {fold} does not exist: {kind} has folds 1-{} ({})",
            listing.folds.len(),
            listing.folds.join(", ")
        );
        let sel = spec.sound_selection(fold);
        let mut set = sound::load(&listing, &sel, spec.rate(), spec.skip_bad_files)
            .with_context(|| format!("loading data set `{name}`"))?;
        if let Some(limit) = &spec.limit {
            let n = (*limit.get_ref()).min(set.len());
            set.clips.truncate(n);
            set.labels.truncate(n);
            set.folds.truncate(n);
        }
        set.name = name.to_string();
        Ok(Dataset::Sound(Arc::new(set)))
    }

    /// How many folds the pipeline's sound set has in `dir` (FSDD: one per speaker
    /// found); `None` without a sound set or where it cannot be listed.
    pub fn sound_folds(&self, dir: &DataDir) -> Option<usize> {
        let kind = self
            .spec
            .data
            .values()
            .find_map(|d| d.get_ref().set.get_ref().sound())?;
        sound::list(kind, &dir.path).ok().map(|l| l.folds.len())
    }

    /// What a run holding out each fold reads from the sound data set the folds come
    /// from: its training examples per epoch and the recordings it evaluates (counted
    /// from the set's listing, before any file that fails to decode is left out).
    pub fn fold_counts(&self, dir: &DataDir) -> Result<FoldCounts> {
        let kind = self
            .spec
            .data
            .values()
            .find_map(|d| d.get_ref().set.get_ref().sound())
            .with_context(|| {
                format!(
                    "{}: no sound data set with folds to cross-validate (FSDD, ESC-50, ESC-10, UrbanSound8K)",
                    self.path.display()
                )
            })?;
        let listing = sound::list(kind, &dir.path)?;
        let folds = listing.folds.len();
        // adds the recordings `[data.NAME]` selects with each fold held out
        let add = |counts: &mut Vec<usize>, name: &str| -> Result<()> {
            let spec = self.data_spec(name)?;
            if spec.set.get_ref().sound() != Some(kind) {
                return Ok(());
            }
            let limit = spec.limit.as_ref().map_or(usize::MAX, |n| *n.get_ref());
            for (i, c) in counts.iter_mut().enumerate() {
                *c += listing
                    .select(&spec.sound_selection(i + 1))
                    .len()
                    .min(limit);
            }
            Ok(())
        };
        let mut train = vec![0usize; folds];
        for st in self.spec.stage.values().map(|s| s.get_ref()) {
            if StageKind::parse(st.kind.get_ref()) != Some(StageKind::Dataset) {
                continue;
            }
            if let Some(name) = &st.data {
                add(&mut train, name.get_ref())?;
            }
        }
        let mut evaluated = vec![0usize; folds];
        for name in self.spec.train.iter().flat_map(|t| &t.get_ref().eval) {
            add(&mut evaluated, name.get_ref())?;
        }
        Ok(FoldCounts {
            names: listing.folds,
            train,
            evaluated,
        })
    }

    /// The crop settings of the `crop` stage upstream of `stage`, if there is one.
    pub fn crop_before(&self, plan: &Plan, stage: &str) -> Option<CropConfig> {
        let mut cur = stage.to_string();
        while let Some(e) = plan.edges.iter().find(|e| e.to == cur) {
            cur = e.from.clone();
            let st = self.spec.stage[&cur].get_ref();
            if StageKind::parse(st.kind.get_ref()) == Some(StageKind::Crop) {
                return Some(crop_config(st));
            }
        }
        None
    }

    /// What a sound model takes, for streaming: the sample rate, the crop settings and
    /// the data set it was trained on. An error for pipelines without a sound model.
    pub fn sound_input(
        &self,
        plan: &Plan,
    ) -> Result<(u32, CropConfig, crate::data::sound::SoundSetKind)> {
        let train = plan.train_stage()?;
        let spec = self
            .source_data_before(plan, &train.name)
            .context("the pipeline's model stage reads no data set")?;
        let kind = spec.set.get_ref().sound().with_context(|| {
            format!(
                "pipeline `{}` trains on images; live streaming takes sound models",
                self.spec.pipeline.name
            )
        })?;
        let crop = self
            .crop_before(plan, &train.name)
            .context("a sound model needs a `crop` stage before it")?;
        Ok((spec.rate(), crop, kind))
    }

    /// The `[data]` entry read by the first dataset source upstream of `stage`.
    fn source_data_before(&self, plan: &Plan, stage: &str) -> Option<&super::DataSpec> {
        let mut cur = stage.to_string();
        while let Some(e) = plan.edges.iter().find(|e| e.to == cur) {
            cur = e.from.clone();
        }
        let st = self.spec.stage[&cur].get_ref();
        let data = st.data.as_ref()?;
        self.spec.data.get(data.get_ref()).map(|d| d.get_ref())
    }

    /// An evaluation set with its test-time preprocessing.
    pub fn eval_set(&self, plan: &Plan, name: &str, dir: &DataDir) -> Result<EvalSet> {
        let train = plan.train_stage()?;
        Ok(match self.load_dataset(name, dir)? {
            Dataset::Images(s) => EvalSet::Images(s),
            Dataset::Sound(s) => {
                let crop = self
                    .crop_before(plan, &train.name)
                    .context("a sound model needs a `crop` stage before it")?;
                EvalSet::Sound(s, crop)
            }
        })
    }

    /// Loads one `[data.NAME]` image set (with its `limit`), named after the entry.
    pub fn load_data(&self, name: &str, dir: &DataDir) -> Result<ImageSet> {
        let spec = self.data_spec(name)?;
        let digits =
            spec.set.get_ref().digits().with_context(|| {
                format!("data set `{name}` is a sound set, not a set of images")
            })?;
        let mut set = dir.load_digits_at(digits, *spec.split.get_ref(), spec.resize_side())?;
        if let Some(classes) = &spec.classes {
            let keep: Vec<usize> = (0..set.len())
                .filter(|&i| classes.get_ref().contains(&set.labels[i]))
                .collect();
            set = set.subset(&keep);
        }
        if let Some(limit) = &spec.limit {
            let n = (*limit.get_ref()).min(set.len());
            set = set.subset(&(0..n).collect::<Vec<_>>());
        }
        set = set.padded(spec.pad());
        set.name = name.to_string();
        Ok(set)
    }

    /// The `normalize` stages between the sources and `stage`, composed into one.
    pub fn preprocessing_before(&self, plan: &Plan, stage: &str) -> Option<Normalize> {
        let mut chain = Vec::new();
        let mut cur = stage.to_string();
        while let Some(e) = plan.edges.iter().find(|e| e.to == cur) {
            cur = e.from.clone();
            let st = self.spec.stage[&cur].get_ref();
            if StageKind::parse(st.kind.get_ref()) == Some(StageKind::Normalize) {
                chain.push(Normalize {
                    mean: *st.mean.as_ref().expect("validated").get_ref(),
                    std: *st.std.as_ref().expect("validated").get_ref(),
                });
            }
        }
        // chain is downstream-first; (x - m1)/s1 then (y - m2)/s2 = (x - (m1 + m2 s1)) / (s1 s2)
        chain.into_iter().rev().reduce(|a, b| Normalize {
            mean: a.mean + b.mean * a.std,
            std: a.std * b.std,
        })
    }

    /// The method configuration of the model stage.
    pub fn method_config(&self, plan: &Plan) -> Result<MethodConfig> {
        let st = plan.train_stage()?;
        let st = self.spec.stage[&st.name].get_ref();
        let kind = st
            .method
            .as_ref()
            .and_then(|m| MethodKind::parse(m.get_ref()))
            .context("validated pipelines name a known method")?;
        Ok(MethodConfig {
            kind,
            net: self.network_config(plan)?,
            optimizer: st
                .optimizer
                .as_ref()
                .map(|o| o.get_ref().clone())
                .unwrap_or_default(),
            num_k: st.num_k.as_ref().map(|k| *k.get_ref()).unwrap_or(4),
            grl: st.grl.as_ref().map(|g| *g.get_ref()).unwrap_or_default(),
            reject_below: st.reject_below.as_ref().map(|t| *t.get_ref()),
        })
    }

    /// The network configuration of the model stage.
    pub fn network_config(&self, plan: &Plan) -> Result<NetConfig> {
        let st = plan.train_stage()?;
        let n = self.spec.stage[&st.name]
            .get_ref()
            .network
            .as_ref()
            .expect("validated")
            .get_ref();
        if n.is_sound() {
            let crop = self
                .crop_before(plan, &st.name)
                .context("a sound model needs a `crop` stage before it")?;
            let data = self
                .source_data_before(plan, &st.name)
                .context("a sound model needs a dataset source")?;
            let variant = if n.kind.get_ref() == "envnet2" {
                EnvNetVariant::V2
            } else {
                EnvNetVariant::Small
            };
            let classes = data
                .set
                .get_ref()
                .sound()
                .map(|k| k.num_classes())
                .unwrap_or(10);
            return Ok(NetConfig::EnvNet(EnvNetConfig {
                variant,
                input: crop.length,
                rate: data.rate(),
                num_classes: n.num_classes.unwrap_or(classes),
                dropout: n.dropout.unwrap_or(0.5),
                width: n.width.unwrap_or(1).max(1),
            }));
        }
        let d = DigitsNetConfig::default();
        Ok(NetConfig::Digits(DigitsNetConfig {
            num_classes: n.num_classes.unwrap_or(d.num_classes),
            dropout: n.dropout.unwrap_or(d.dropout),
            hidden: n.hidden.unwrap_or(d.hidden),
            hidden_layers: n
                .hidden_layers
                .as_ref()
                .map(|l| *l.get_ref())
                .unwrap_or(d.hidden_layers),
        }))
    }

    /// Builds the graph of a training run.
    pub fn assemble_train(&self, plan: &Plan, ctx: RunContext) -> Result<Graph<Item>> {
        let train = self
            .spec
            .train
            .as_ref()
            .context("a training pipeline needs a [train] section")?
            .get_ref();
        let epochs = *train.epochs.get_ref();
        let first_epoch = ctx.resume.as_ref().map(|(_, s)| s.epoch + 1).unwrap_or(1);
        let mut sets: BTreeMap<String, Dataset> = BTreeMap::new();
        // the progress sink's bar, lent to the model stage to show its evaluations
        let status = crate::sink::progress::StatusLine::default();
        let load = |sets: &mut BTreeMap<String, Dataset>, name: &str| -> Result<Dataset> {
            if let Some(s) = sets.get(name) {
                return Ok(s.clone());
            }
            let s = self.load_dataset(name, &ctx.data_dir)?;
            sets.insert(name.to_string(), s.clone());
            Ok(s)
        };

        let mut graph = Graph::new().with_stop(ctx.stop.now.clone());
        let mut ids: BTreeMap<String, NodeId> = BTreeMap::new();
        let mut lens: Vec<usize> = Vec::new();
        for sp in &plan.stages {
            let st = self.spec.stage[&sp.name].get_ref();
            let id = match sp.kind {
                StageKind::Dataset => {
                    let set = load(&mut sets, st.data.as_ref().expect("validated").get_ref())?;
                    lens.push(set.len());
                    let shuffle = st.shuffle.as_ref().map(|s| *s.get_ref()).unwrap_or(true);
                    let domain = st
                        .domain
                        .as_ref()
                        .map(|d| *d.get_ref())
                        .unwrap_or(Domain::Source);
                    graph.add_source(
                        &sp.name,
                        DatasetSource::new(set, domain, shuffle, ctx.seed, first_epoch, epochs),
                    )
                }
                StageKind::Pair => graph.add_stage(&sp.name, Pair::new()),
                StageKind::Crop => graph.add_stage(&sp.name, Crop::new(crop_config(st), ctx.seed)),
                StageKind::BcMix => {
                    let rate = self
                        .source_data_before(plan, &sp.name)
                        .map(|d| d.rate())
                        .context("a `bc_mix` stage needs a sound dataset upstream")?;
                    graph.add_stage(&sp.name, bc_mix_stage(st, rate, ctx.seed, epochs))
                }
                StageKind::Normalize => graph.add_stage(
                    &sp.name,
                    Normalize {
                        mean: *st.mean.as_ref().expect("validated").get_ref(),
                        std: *st.std.as_ref().expect("validated").get_ref(),
                    },
                ),
                StageKind::Batcher => graph.add_stage(
                    &sp.name,
                    Batcher::new(
                        *st.batch_size.as_ref().expect("validated").get_ref(),
                        st.drop_last.as_ref().map(|d| *d.get_ref()).unwrap_or(false),
                    ),
                ),
                StageKind::Train => {
                    let batch = self.batch_size_before(plan, &sp.name);
                    let drop_last = self.drop_last_before(plan, &sp.name);
                    let method = self.method_config(plan)?;
                    // pairs stop with the shorter domain; plain batches come from one set
                    let len = if method.kind.input() == ItemType::Pair {
                        lens.iter().copied().min().unwrap_or(0)
                    } else {
                        lens.iter().copied().max().unwrap_or(0)
                    };
                    let iterations_per_epoch = if drop_last {
                        len / batch
                    } else {
                        len.div_ceil(batch)
                    };
                    let crop = self.crop_before(plan, &sp.name);
                    let eval_sets = train
                        .eval
                        .iter()
                        .map(|e| {
                            Ok(match load(&mut sets, e.get_ref())? {
                                Dataset::Images(s) => EvalSet::Images(s),
                                Dataset::Sound(s) => EvalSet::Sound(
                                    s,
                                    crop.context("a sound model needs a `crop` stage")?,
                                ),
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let setup = TrainerSetup {
                        method,
                        device: ctx.device.clone(),
                        seed: ctx.seed,
                        epochs,
                        first_epoch,
                        iterations_per_epoch,
                        eval_sets,
                        normalize: self.preprocessing_before(plan, &sp.name),
                        run_dir: ctx.run_dir.clone(),
                        checkpoint_every: train
                            .checkpoint_every
                            .as_ref()
                            .map(|c| *c.get_ref())
                            .unwrap_or(1),
                        eval_every: train.eval_every.as_ref().map(|c| *c.get_ref()).unwrap_or(1),
                        resume_from: ctx.resume.clone(),
                        status: status.clone(),
                        stop: ctx.stop.clone(),
                    };
                    graph.add_stage(&sp.name, Trainer::new(setup)?)
                }
                StageKind::Metrics => {
                    // the sets are loaded by the time the sinks come (sinks are last)
                    let skipped: Vec<String> = sets
                        .values()
                        .filter_map(|d| match d {
                            Dataset::Sound(s) => Some(s.skipped.clone()),
                            Dataset::Images(_) => None,
                        })
                        .flatten()
                        .collect();
                    if !skipped.is_empty() {
                        log::warn!(
                            "{} unreadable data file(s) skipped (skip_bad_files)",
                            skipped.len()
                        );
                    }
                    graph.add_sink(
                        &sp.name,
                        MetricsSink::new(
                            &ctx.run_dir,
                            ctx.history.clone(),
                            &self.spec.pipeline.name,
                            epochs,
                            ctx.seed,
                            &ctx.device_name,
                        )
                        .with_skipped(skipped),
                    )
                }
                StageKind::Progress => graph.add_sink(
                    &sp.name,
                    ProgressSink::new(
                        ctx.quiet || st.quiet.as_ref().map(|q| *q.get_ref()).unwrap_or(false),
                    )
                    .with_note(ctx.epoch_note.clone())
                    .with_status(status.clone()),
                ),
            };
            ids.insert(sp.name.clone(), id);
        }
        for e in &plan.edges {
            graph.connect(
                ids[&e.from],
                ids[&e.to],
                EdgeSpec {
                    capacity: e.capacity,
                    policy: e.policy,
                },
            )?;
        }
        Ok(graph)
    }

    /// Whether a data set named in the pipeline is a sound set.
    pub fn is_sound_data(&self, name: &str) -> bool {
        self.spec
            .data
            .get(name)
            .is_some_and(|d| d.get_ref().set.get_ref().sound().is_some())
    }

    fn upstream_batcher(&self, plan: &Plan, stage: &str) -> Option<&super::StageSpec> {
        let mut cur = stage.to_string();
        while let Some(e) = plan.edges.iter().find(|e| e.to == cur) {
            cur = e.from.clone();
            let st = self.spec.stage[&cur].get_ref();
            if StageKind::parse(st.kind.get_ref()) == Some(StageKind::Batcher) {
                return Some(st);
            }
        }
        None
    }

    fn batch_size_before(&self, plan: &Plan, stage: &str) -> usize {
        self.upstream_batcher(plan, stage)
            .and_then(|b| b.batch_size.as_ref().map(|s| *s.get_ref()))
            .unwrap_or(1)
            .max(1)
    }

    fn drop_last_before(&self, plan: &Plan, stage: &str) -> bool {
        self.upstream_batcher(plan, stage)
            .and_then(|b| b.drop_last.as_ref().map(|s| *s.get_ref()))
            .unwrap_or(false)
    }
}

/// The mixer of a `bc_mix` stage (settings checked by validation) for sounds at `rate`
/// Hz in a run of `epochs` epochs.
pub fn bc_mix_stage(st: &super::StageSpec, rate: u32, seed: u64, epochs: usize) -> BcMix {
    let partners = st
        .partners
        .as_ref()
        .map(|p| *p.get_ref())
        .unwrap_or_default();
    let alpha = st.alpha.as_ref().map(|a| *a.get_ref()).unwrap_or(1.0);
    let until = st.until.as_ref().map(|u| *u.get_ref()).unwrap_or(1.0);
    let last_mixed = (until * epochs as f64).round() as usize;
    let prob = st.prob.as_ref().map(|p| *p.get_ref()).unwrap_or(1.0);
    let gain_db = st.gain_db.as_ref().map(|g| *g.get_ref()).unwrap_or(0.0);
    BcMix::with_partners(rate, seed, partners)
        .with_alpha(alpha)
        .mixing_until(last_mixed)
        .with_prob(prob)
        .with_gain(gain_db)
}

/// The settings of a `crop` stage.
pub fn crop_config(st: &super::StageSpec) -> CropConfig {
    CropConfig {
        length: st.length.as_ref().map(|l| *l.get_ref()).unwrap_or(0),
        level: st.level.as_ref().map(|l| *l.get_ref()).unwrap_or_default(),
        max_scale: st.max_scale.as_ref().map(|m| *m.get_ref()).unwrap_or(1.0),
        gain_db: st.gain_db.as_ref().map(|g| *g.get_ref()).unwrap_or(0.0),
    }
}

/// Per fold of a sound data set (by fold - 1), what a run holding that fold out reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoldCounts {
    /// The folds' names (FSDD: the speakers).
    pub names: Vec<String>,
    /// Examples its `dataset` stages train on per epoch.
    pub train: Vec<usize>,
    /// Recordings of its `[train] eval` sets, tested at each evaluated epoch.
    pub evaluated: Vec<usize>,
}
