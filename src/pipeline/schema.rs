//! The pipeline file schema. Every table rejects unknown keys; values that errors must
//! point at are kept with their position ([`Spanned`]).

use crate::audio::Level;
use crate::data::{SetName, Split};
use crate::item::{Domain, ItemType};
use crate::method::OptimizerConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// `[pipeline]`: name and description.
    pub pipeline: PipelineMeta,
    /// `[train]`: settings of a training run.
    pub train: Option<Spanned<TrainSpec>>,
    /// `[data.NAME]`: data sets that sources and evaluation refer to by name.
    #[serde(default)]
    pub data: BTreeMap<String, Spanned<DataSpec>>,
    /// `[stage.NAME]`: the graph's stages.
    #[serde(default)]
    pub stage: BTreeMap<String, Spanned<StageSpec>>,
}

/// `[pipeline]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineMeta {
    /// Short name, used for run folders.
    pub name: String,
    /// One line on what the pipeline does.
    #[serde(default)]
    pub description: String,
    /// The task, for results tables (e.g. "MNIST -> USPS").
    #[serde(default)]
    pub task: String,
    /// The published figure this pipeline reproduces, for results tables.
    #[serde(default)]
    pub reference: String,
}

/// `[train]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Passes over the training data.
    pub epochs: Spanned<usize>,
    /// Seed for weights, dropout and data order (`--seed` overrides it).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Checkpoint every N epochs (the last epoch is always checkpointed).
    pub checkpoint_every: Option<Spanned<usize>>,
    /// Data sets (names from `[data]`) evaluated after every epoch.
    #[serde(default)]
    pub eval: Vec<Spanned<String>>,
    /// Evaluate every N epochs only (default 1; the last epoch is always evaluated).
    pub eval_every: Option<Spanned<usize>>,
    /// Sound sets with folds: the held-out fold (1-based, default 1; `--fold` overrides
    /// it). `split = "test"` is that fold, `split = "train"` the others.
    pub fold: Option<Spanned<usize>>,
}

fn default_seed() -> u64 {
    1
}

/// `[data.NAME]`: one split of a data set.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Which data set: `mnist`, `usps` (images); `fsdd`, `esc50`, `esc10`, `us8k` (sound).
    pub set: Spanned<SetName>,
    /// `train` or `test` (sound sets: the training folds or the held-out fold).
    pub split: Spanned<Split>,
    /// Use only the first N examples.
    pub limit: Option<Spanned<usize>>,
    /// Side of the square images after bilinear resizing, in pixels (default 28, the
    /// digits sets' common size; USPS is resized once, from its 16x16 originals).
    pub size: Option<Spanned<usize>>,
    /// Background pixels added on every side after resizing (default 0): `size = 20`
    /// with `pad = 4` puts USPS digits in MNIST's layout (a 20x20 digit in a 28x28 frame).
    pub pad: Option<Spanned<usize>>,
    /// Sound: sample rate to resample to, Hz (default: the set's own, 8 kHz for FSDD,
    /// 44.1 kHz for the others).
    pub rate: Option<Spanned<u32>>,
    /// Sound: keep at most N recordings per class in each fold (FSDD: per digit per
    /// speaker), the lowest-numbered first; for "limited data" experiments.
    pub per_class_per_fold: Option<Spanned<usize>>,
    /// Sound: leave out the first N recordings per class in each fold before
    /// `per_class_per_fold` keeps its share of the rest. With `split = "train"` and the N
    /// of a limited training set, the recordings of the training folds that it leaves
    /// out: a held-out set of seen speakers.
    pub skip_per_class_per_fold: Option<Spanned<usize>>,
    /// Sound: leave out files that cannot be decoded, with a warning and a count in the
    /// summary, instead of stopping with an error (default false).
    #[serde(default)]
    pub skip_bad_files: bool,
    /// Images: keep only these classes (labels unchanged), e.g. `[0, 1, 2, 3, 4]` for
    /// the known classes of an open-set source domain; applied before `limit`.
    pub classes: Option<Spanned<Vec<u8>>>,
}

impl DataSpec {
    /// Sample rate of a sound set after resampling.
    pub fn rate(&self) -> u32 {
        self.rate
            .as_ref()
            .map(|r| *r.get_ref())
            .unwrap_or_else(|| self.set.get_ref().native_rate())
    }

    /// Sound: the recordings this set takes from its data set's listing when `fold` is
    /// held out (before `limit`).
    pub fn sound_selection(&self, fold: usize) -> crate::data::sound::Selection {
        crate::data::sound::Selection {
            fold,
            train: *self.split.get_ref() == Split::Train,
            per_class_per_fold: self.per_class_per_fold.as_ref().map(|n| *n.get_ref()),
            skip_per_class_per_fold: self
                .skip_per_class_per_fold
                .as_ref()
                .map_or(0, |n| *n.get_ref()),
        }
    }

    /// Side of the digit after resizing, before padding.
    pub fn resize_side(&self) -> usize {
        self.size
            .as_ref()
            .map(|s| *s.get_ref())
            .unwrap_or(crate::data::DIGITS_SIDE)
    }

    /// Background pixels on every side.
    pub fn pad(&self) -> usize {
        self.pad.as_ref().map(|p| *p.get_ref()).unwrap_or(0)
    }

    /// Side of the images this set yields (resized, then padded).
    pub fn side(&self) -> usize {
        self.resize_side() + 2 * self.pad()
    }
}

/// `[stage.NAME]`: every key any stage kind takes; which apply depends on `kind`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// The stage kind (see [`StageKind`]).
    pub kind: Spanned<String>,
    /// Upstream stage(s): `"name"`, `{ from = "name", capacity = 64, policy = "block" }`,
    /// or a list of those.
    pub input: Option<Spanned<toml::Value>>,
    /// `dataset`: name of a `[data.NAME]` entry.
    pub data: Option<Spanned<String>>,
    /// `dataset`: reshuffle every epoch (default true).
    pub shuffle: Option<Spanned<bool>>,
    /// `dataset`: `source` (labelled, default) or `target` (labels never used to train).
    pub domain: Option<Spanned<Domain>>,
    /// `normalize`: subtracted from each pixel.
    pub mean: Option<Spanned<f32>>,
    /// `normalize`: divides each pixel after the mean.
    pub std: Option<Spanned<f32>>,
    /// `batcher`: examples per batch.
    pub batch_size: Option<Spanned<usize>>,
    /// `batcher`: drop the last incomplete batch of an epoch (default false).
    pub drop_last: Option<Spanned<bool>>,
    /// `train`: the network.
    pub network: Option<Spanned<NetworkSpec>>,
    /// `train`: the training objective.
    pub method: Option<Spanned<String>>,
    /// `train`: optimizer settings.
    pub optimizer: Option<Spanned<OptimizerConfig>>,
    /// `train`: generator updates per iteration of an adapting method (default 4).
    pub num_k: Option<Spanned<usize>>,
    /// `train`, `source_only` on images: evaluate as an open-set model that answers
    /// "unknown" below this top probability (a baseline for open-set adaptation).
    pub reject_below: Option<Spanned<f64>>,
    /// `train`: gradient reversal of `osbp` (`{ lambda = 1.0, schedule = "constant" }`).
    pub grl: Option<Spanned<crate::method::grl::GrlConfig>>,
    /// `progress`: print nothing.
    pub quiet: Option<Spanned<bool>>,
    /// `crop`: input length of the network, in samples.
    pub length: Option<Spanned<usize>>,
    /// `crop`: level normalisation of each clip, `none` (default) or `peak`.
    pub level: Option<Spanned<Level>>,
    /// `crop`: "strong" augmentation, random time scale in `[1 / s, s]` (1 = off, default;
    /// the EnvNet-v2 reference uses 1.25).
    pub max_scale: Option<Spanned<f64>>,
    /// `crop`, `bc_mix`: "strong" augmentation, random gain in `[-g, g]` dB (0 = off,
    /// default; the reference uses 6, after mixing).
    pub gain_db: Option<Spanned<f64>>,
    /// `bc_mix`: which examples may be mixed, `any` (default: any of another class),
    /// `same_group` or `other_group` (the clip's fold; FSDD: its speaker).
    pub partners: Option<Spanned<crate::stage::mix::Partners>>,
    /// `bc_mix`: the mixing ratio is drawn as `r ~ Beta(alpha, alpha)`; 1 (default) is the
    /// paper's `U(0, 1)`, smaller values keep most mixes close to one of the two crops.
    pub alpha: Option<Spanned<f64>>,
    /// `bc_mix`: the share of the epochs that train on mixes, 1 (default) for all; the
    /// crops of later epochs pass plain, with their own labels.
    pub until: Option<Spanned<f64>>,
    /// `bc_mix`: the probability that a crop is mixed, 1 (default) for every crop; the
    /// others pass plain, with their own labels, in the same batches as the mixes.
    pub prob: Option<Spanned<f64>>,
}

/// `network = { kind = "digits", ... }` of a model stage.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Network kind: `digits`.
    pub kind: Spanned<String>,
    /// Output classes (default 10).
    pub num_classes: Option<usize>,
    /// Dropout probability (default 0.5).
    pub dropout: Option<f64>,
    /// Hidden width of the classifier (default 100).
    pub hidden: Option<usize>,
    /// Digits: hidden layers of the classifier, 0 to 2 (default 2).
    pub hidden_layers: Option<Spanned<usize>>,
    /// EnvNet: channel multiplier of every convolution and of the hidden fully
    /// connected layers (default 1).
    pub width: Option<usize>,
    /// Classifier heads; must match the method (MCD: 2, others: 1).
    pub heads: Option<Spanned<usize>>,
}

impl NetworkSpec {
    /// Whether this is a raw-waveform EnvNet.
    pub fn is_sound(&self) -> bool {
        self.kind.get_ref().starts_with("envnet")
    }
}

/// Where a stage sits in the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Emits only.
    Source,
    /// Takes and emits.
    Stage,
    /// Takes only.
    Sink,
}

/// The closed set of stage kinds a pipeline can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// Source: the examples of a data set, epoch after epoch.
    Dataset,
    /// Per-example `(x - mean) / std`.
    Normalize,
    /// Groups examples into batches.
    Batcher,
    /// Joins a source batch and a target batch.
    Pair,
    /// Sound clip -> training crop of the network's input length.
    Crop,
    /// Between-class mixing of two sounds of different classes.
    BcMix,
    /// Model stage: trains a method on batches or source/target pairs, evaluates each epoch.
    Train,
    /// Sink: metrics.jsonl, summary.json, learning curve.
    Metrics,
    /// Sink: progress bar and epoch lines.
    Progress,
}

impl StageKind {
    /// Every kind, for messages and `--help`.
    pub const ALL: [StageKind; 9] = [
        StageKind::Dataset,
        StageKind::Normalize,
        StageKind::Crop,
        StageKind::BcMix,
        StageKind::Batcher,
        StageKind::Pair,
        StageKind::Train,
        StageKind::Metrics,
        StageKind::Progress,
    ];

    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Dataset => "dataset",
            StageKind::Normalize => "normalize",
            StageKind::Batcher => "batcher",
            StageKind::Pair => "pair",
            StageKind::Crop => "crop",
            StageKind::BcMix => "bc_mix",
            StageKind::Train => "train",
            StageKind::Metrics => "metrics",
            StageKind::Progress => "progress",
        }
    }

    /// Looks a kind up by name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Source, stage or sink.
    pub fn role(self) -> Role {
        match self {
            StageKind::Dataset => Role::Source,
            StageKind::Normalize
            | StageKind::Batcher
            | StageKind::Pair
            | StageKind::Crop
            | StageKind::BcMix
            | StageKind::Train => Role::Stage,
            StageKind::Metrics | StageKind::Progress => Role::Sink,
        }
    }

    /// Item type taken on the input (for `train`, that of source-only training; the
    /// method decides, see [`crate::method::MethodKind::input`]).
    pub fn input(self) -> Option<ItemType> {
        match self {
            StageKind::Dataset => None,
            StageKind::Normalize | StageKind::Batcher | StageKind::Crop | StageKind::BcMix => {
                Some(ItemType::Example)
            }
            StageKind::Pair | StageKind::Train => Some(ItemType::Batch),
            StageKind::Metrics | StageKind::Progress => Some(ItemType::Report),
        }
    }

    /// Item type emitted on the output.
    pub fn output(self) -> Option<ItemType> {
        match self {
            StageKind::Dataset | StageKind::Normalize | StageKind::Crop | StageKind::BcMix => {
                Some(ItemType::Example)
            }
            StageKind::Batcher => Some(ItemType::Batch),
            StageKind::Pair => Some(ItemType::Pair),
            StageKind::Train => Some(ItemType::Report),
            StageKind::Metrics | StageKind::Progress => None,
        }
    }

    /// Keys (besides `kind` and `input`) this kind takes, and which of them are required.
    pub fn keys(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            StageKind::Dataset => (&["data", "shuffle", "domain"], &["data"]),
            StageKind::Normalize => (&["mean", "std"], &["mean", "std"]),
            StageKind::Batcher => (&["batch_size", "drop_last"], &["batch_size"]),
            StageKind::Pair => (&[], &[]),
            StageKind::BcMix => (&["partners", "alpha", "until", "prob", "gain_db"], &[]),
            StageKind::Crop => (&["length", "level", "max_scale", "gain_db"], &["length"]),
            StageKind::Train => (
                &[
                    "network",
                    "method",
                    "optimizer",
                    "num_k",
                    "grl",
                    "reject_below",
                ],
                &["network", "method"],
            ),
            StageKind::Metrics => (&[], &[]),
            StageKind::Progress => (&["quiet"], &[]),
        }
    }

    /// One line for help texts.
    pub fn describe(self) -> &'static str {
        match self {
            StageKind::Dataset => {
                "source: the examples of a [data.NAME] set, reshuffled each epoch"
            }
            StageKind::Normalize => "example -> example: (x - mean) / std on every pixel",
            StageKind::Batcher => "example -> batch: groups examples, never across epochs",
            StageKind::Pair => {
                "batch -> pair: joins a source batch and a target batch of the same epoch"
            }
            StageKind::Crop => {
                "example -> example: sound clip -> random crop of the input length (pad, level, augment)"
            }
            StageKind::BcMix => {
                "example -> example: mixes two sounds of different classes (A-weighted, soft label)"
            }
            StageKind::Train => {
                "batch or pair -> report: trains a method, evaluates and checkpoints each epoch"
            }
            StageKind::Metrics => {
                "sink: metrics.jsonl, summary.json and learning_curve.svg in the run folder"
            }
            StageKind::Progress => "sink: progress bar and one line per epoch on stderr",
        }
    }
}

/// Networks a `train` stage can build.
pub const NETWORKS: [&str; 3] = ["digits", "envnet2", "envnet2_small"];

impl StageSpec {
    /// The keys that are set, with their spans (for per-kind checks).
    pub fn present_keys(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut v = Vec::new();
        macro_rules! key {
            ($($f:ident),*) => {$(
                if let Some(x) = &self.$f {
                    v.push((stringify!($f), x.span()));
                }
            )*};
        }
        key!(
            data,
            shuffle,
            domain,
            mean,
            std,
            batch_size,
            drop_last,
            network,
            method,
            optimizer,
            num_k,
            grl,
            reject_below,
            quiet,
            length,
            level,
            max_scale,
            gain_db,
            partners,
            alpha,
            until,
            prob
        );
        v
    }
}
