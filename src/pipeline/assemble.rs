//! Assembly: turns a validated [`Plan`] into a [`Graph`] of live stage objects, loading
//! the data sets it uses and building the model stage on the chosen device.

use super::{PipelineFile, Plan, StageKind};
use crate::data::{DataDir, ImageSet};
use crate::graph::{EdgeSpec, Graph, NodeId};
use crate::item::{Domain, EpochMetrics, Item, ItemType};
use crate::method::{MethodConfig, MethodKind};
use crate::model::digits::DigitsNetConfig;
use crate::sink::metrics::MetricsSink;
use crate::sink::progress::ProgressSink;
use crate::stage::batcher::Batcher;
use crate::stage::dataset::DatasetSource;
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
}

impl PipelineFile {
    /// Loads one `[data.NAME]` set (with its `limit`), named after the entry.
    pub fn load_data(&self, name: &str, dir: &DataDir) -> Result<ImageSet> {
        let spec = self
            .spec
            .data
            .get(name)
            .with_context(|| {
                format!(
                    "data set `{name}` is not declared in {}",
                    self.path.display()
                )
            })?
            .get_ref();
        let mut set = dir.load_digits_at(
            *spec.set.get_ref(),
            *spec.split.get_ref(),
            spec.resize_side(),
        )?;
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
        })
    }

    /// The network configuration of the model stage.
    pub fn network_config(&self, plan: &Plan) -> Result<DigitsNetConfig> {
        let st = plan.train_stage()?;
        let n = self.spec.stage[&st.name]
            .get_ref()
            .network
            .as_ref()
            .expect("validated")
            .get_ref();
        let d = DigitsNetConfig::default();
        Ok(DigitsNetConfig {
            num_classes: n.num_classes.unwrap_or(d.num_classes),
            dropout: n.dropout.unwrap_or(d.dropout),
            hidden: n.hidden.unwrap_or(d.hidden),
        })
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
        let mut sets: BTreeMap<String, Arc<ImageSet>> = BTreeMap::new();
        let mut load = |name: &str| -> Result<Arc<ImageSet>> {
            if let Some(s) = sets.get(name) {
                return Ok(s.clone());
            }
            let s = Arc::new(self.load_data(name, &ctx.data_dir)?);
            sets.insert(name.to_string(), s.clone());
            Ok(s)
        };

        let mut graph = Graph::new();
        let mut ids: BTreeMap<String, NodeId> = BTreeMap::new();
        let mut lens: Vec<usize> = Vec::new();
        for sp in &plan.stages {
            let st = self.spec.stage[&sp.name].get_ref();
            let id = match sp.kind {
                StageKind::Dataset => {
                    let set = load(st.data.as_ref().expect("validated").get_ref())?;
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
                    let eval_sets = train
                        .eval
                        .iter()
                        .map(|e| load(e.get_ref()))
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
                        resume_from: ctx.resume.clone(),
                    };
                    graph.add_stage(&sp.name, Trainer::new(setup)?)
                }
                StageKind::Metrics => graph.add_sink(
                    &sp.name,
                    MetricsSink::new(
                        &ctx.run_dir,
                        ctx.history.clone(),
                        &self.spec.pipeline.name,
                        epochs,
                        ctx.seed,
                        &ctx.device_name,
                    ),
                ),
                StageKind::Progress => graph.add_sink(
                    &sp.name,
                    ProgressSink::new(
                        ctx.quiet || st.quiet.as_ref().map(|q| *q.get_ref()).unwrap_or(false),
                    ),
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
