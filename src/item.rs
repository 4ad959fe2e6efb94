//! The items that flow along a pipeline's edges: plain CPU data, never tensors.
//!
//! Stage kinds declare which [`ItemType`] they take and emit; the pipeline loader
//! checks every edge against them before any thread starts, so a stage never sees an
//! item of the wrong variant in a validated graph.

use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// The type of items on an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    /// One labelled example.
    Example,
    /// A batch of examples.
    Batch,
    /// A source batch and a target batch, for domain adaptation.
    Pair,
    /// Training progress and epoch metrics.
    Report,
}

impl fmt::Display for ItemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ItemType::Example => "example",
            ItemType::Batch => "batch",
            ItemType::Pair => "pair",
            ItemType::Report => "report",
        })
    }
}

/// Which domain data comes from. Only source labels are ever used for training; target
/// labels, where a data set has them, serve evaluation only.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// Labelled training data.
    Source,
    /// Unlabelled data of the domain to adapt to.
    Target,
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Domain::Source => "source",
            Domain::Target => "target",
        })
    }
}

/// One example: a single-channel image (row-major) and its label.
#[derive(Clone, Debug)]
pub struct Example {
    /// Pixel values, `height * width`.
    pub pixels: Vec<f32>,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Class label.
    pub label: u8,
    /// Epoch (1-based) in which the example was emitted.
    pub epoch: usize,
    /// Domain of the data set it comes from.
    pub domain: Domain,
    /// A between-class mix: the second class and the ratio `r` of the first, so the
    /// soft label is `r` for `label` and `1 - r` for the second class.
    pub mix: Option<(u8, f32)>,
    /// The recording group the example comes from: a sound clip's fold (FSDD's
    /// speaker), 0 for sets without folds.
    pub group: u32,
}

impl Example {
    /// An unmixed example.
    pub fn new(
        pixels: Vec<f32>,
        height: usize,
        width: usize,
        label: u8,
        epoch: usize,
        domain: Domain,
    ) -> Self {
        Self {
            pixels,
            height,
            width,
            label,
            epoch,
            domain,
            mix: None,
            group: 0,
        }
    }

    /// The example with its recording group set.
    pub fn with_group(mut self, group: u32) -> Self {
        self.group = group;
        self
    }
}

/// A batch of examples in one contiguous buffer, `[len, 1, height, width]`.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Pixel values of all examples, example after example.
    pub pixels: Vec<f32>,
    /// Labels, one per example.
    pub labels: Vec<u8>,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Epoch (1-based).
    pub epoch: usize,
    /// Domain of the examples.
    pub domain: Domain,
    /// The second class and ratio of each example (see [`Example::mix`]; `(label, 1.0)`
    /// for a plain example); may be empty for a batch of plain examples.
    pub mix: Vec<(u8, f32)>,
}

/// A source batch with a target batch of the same epoch: one iteration of an adapting
/// method.
#[derive(Clone, Debug)]
pub struct PairBatch {
    /// Labelled source batch.
    pub source: Arc<Batch>,
    /// Target batch (its labels must not be used for training).
    pub target: Arc<Batch>,
}

impl Batch {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the batch holds no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Soft labels `[len, classes]`, row after row: one-hot for plain examples, `r` and
    /// `1 - r` for between-class mixes.
    pub fn soft_labels(&self, classes: usize) -> Vec<f32> {
        let mut t = vec![0.0f32; self.len() * classes];
        for (i, &l) in self.labels.iter().enumerate() {
            let row = &mut t[i * classes..(i + 1) * classes];
            match self.mix.get(i) {
                Some(&(second, r)) => {
                    row[(l as usize).min(classes - 1)] += r;
                    row[(second as usize).min(classes - 1)] += 1.0 - r;
                }
                None => row[(l as usize).min(classes - 1)] = 1.0,
            }
        }
        t
    }
}

/// Metrics of one finished epoch.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Mean training loss over the epoch's iterations.
    pub train_loss: f64,
    /// Training accuracy (with dropout active).
    pub train_acc: f64,
    /// Mean discrepancy (MCD) or divergence (ADR) on target batches, for adapting methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discrepancy: Option<f64>,
    /// Accuracy on each evaluation set, by data set name, in pipeline order.
    pub eval: Vec<(String, f64)>,
    /// Open-set methods: OS, OS*, ALL, UNK and H-score on each evaluation set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_set: Vec<(String, crate::openset::OpenSetMetrics)>,
    /// Iterations in this epoch.
    pub iterations: usize,
    /// Seconds per iteration spent in each phase of the method (e.g. MCD's A, B, C).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phase_s: Vec<(String, f64)>,
    /// Seconds spent training in this epoch.
    pub train_s: f64,
    /// Seconds spent evaluating in this epoch.
    pub eval_s: f64,
    /// Seconds since the start of the run (over resumed sessions too).
    pub elapsed_s: f64,
}

/// What the model stage reports downstream.
#[derive(Clone, Debug)]
pub enum Report {
    /// Training has started (or resumed) at `first_epoch` of `epochs`, with
    /// `iterations_per_epoch` iterations each.
    Start {
        /// First epoch this session trains.
        first_epoch: usize,
        /// Total epochs.
        epochs: usize,
        /// Iterations per epoch (an estimate when unknown up front).
        iterations_per_epoch: usize,
    },
    /// One iteration finished.
    Step {
        /// Epoch (1-based).
        epoch: usize,
        /// Loss of this iteration.
        loss: f64,
        /// Running training accuracy of the epoch so far.
        acc: f64,
    },
    /// One epoch finished and was evaluated (and checkpointed).
    Epoch(EpochMetrics),
}

/// The value that travels on every edge.
#[derive(Clone, Debug)]
pub enum Item {
    /// See [`Example`].
    Example(Arc<Example>),
    /// See [`Batch`].
    Batch(Arc<Batch>),
    /// See [`PairBatch`].
    Pair(Arc<PairBatch>),
    /// See [`Report`].
    Report(Report),
    /// End of an epoch of one domain's data: stages flush what they hold for it, the
    /// model stage evaluates.
    EpochEnd(usize, Domain),
}

impl Item {
    /// The item's type, `None` for control markers.
    pub fn item_type(&self) -> Option<ItemType> {
        match self {
            Item::Example(_) => Some(ItemType::Example),
            Item::Batch(_) => Some(ItemType::Batch),
            Item::Pair(_) => Some(ItemType::Pair),
            Item::Report(_) => Some(ItemType::Report),
            Item::EpochEnd(..) => None,
        }
    }
}
