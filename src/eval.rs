//! Evaluation of a classifier on a labelled image set or sound set: accuracy, per-class
//! accuracy and the confusion matrix. Runs the network in eval mode (no dropout,
//! BatchNorm running statistics) in large batches, with the preprocessing the model was
//! trained with. Sound clips are classified by the mean softmax output of ten crops
//! spread evenly over the clip.

use crate::audio::{CropConfig, TEST_CROPS};
use crate::data::sound::SoundSet;
use crate::data::ImageSet;
use crate::method::Predictor;
use crate::openset::{open_label, OpenSet, OpenSetMetrics};
use crate::stage::normalize::Normalize;
use burn::prelude::*;
use serde::Serialize;

/// Images per inference batch during evaluation.
pub const EVAL_BATCH: usize = 256;

/// Results of evaluating one data set.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Evaluation {
    /// Data set name.
    pub data: String,
    /// Examples evaluated.
    pub total: usize,
    /// Correctly classified examples.
    pub correct: usize,
    /// `correct / total`.
    pub accuracy: f64,
    /// Accuracy of each true class; `None` (JSON `null`) for a class without examples.
    pub per_class: Vec<Option<f64>>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Open-set models: OS, OS*, ALL, UNK and H-score (the last class is unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_set: Option<OpenSetMetrics>,
}

impl Evaluation {
    /// Builds the summary from `(true, predicted)` pairs.
    pub fn from_predictions(data: &str, num_classes: usize, truth: &[u8], pred: &[u8]) -> Self {
        let mut confusion = vec![vec![0usize; num_classes]; num_classes];
        for (&t, &p) in truth.iter().zip(pred) {
            if (t as usize) < num_classes && (p as usize) < num_classes {
                confusion[t as usize][p as usize] += 1;
            }
        }
        let correct = (0..num_classes).map(|c| confusion[c][c]).sum();
        let total = truth.len();
        let per_class = confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let n: usize = row.iter().sum();
                (n > 0).then(|| row[c] as f64 / n as f64)
            })
            .collect();
        Self {
            data: data.to_string(),
            total,
            correct,
            accuracy: if total == 0 {
                0.0
            } else {
                correct as f64 / total as f64
            },
            per_class,
            confusion,
            open_set: None,
        }
    }

    /// The evaluation of an open-set model with `known` classes plus unknown (output
    /// `known`): true labels at or above `known` count as unknown.
    pub fn open_set(data: &str, known: usize, truth: &[u8], pred: &[u8]) -> Self {
        let truth: Vec<u8> = truth
            .iter()
            .map(|&t| open_label(t as usize, known) as u8)
            .collect();
        let mut e = Self::from_predictions(data, known + 1, &truth, pred);
        let counts: Vec<Vec<u64>> = e
            .confusion
            .iter()
            .map(|r| r.iter().map(|&v| v as u64).collect())
            .collect();
        e.open_set = OpenSetMetrics::from_confusion(&counts);
        e
    }

    /// A human-readable report: accuracy, per-class accuracy and the confusion matrix.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: accuracy {:.2}% ({} / {})",
            self.data,
            100.0 * self.accuracy,
            self.correct,
            self.total
        );
        let _ = write!(s, "  per class:");
        for (c, a) in self.per_class.iter().enumerate() {
            // a class with no example in the set has no accuracy
            let a = a.map_or("-".to_string(), |a| format!("{:.1}", 100.0 * a));
            let _ = write!(s, " {c}:{a}");
        }
        let _ = writeln!(s);
        if let Some(m) = &self.open_set {
            let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}", 100.0 * v));
            let _ = writeln!(
                s,
                "  open set (class {} = unknown): OS {} OS* {} ALL {} UNK {} H {}",
                self.confusion.len() - 1,
                pct(Some(m.os)),
                pct(Some(m.os_star)),
                pct(Some(m.all)),
                pct(m.unk),
                pct(m.h_score)
            );
        }
        let _ = writeln!(s, "  confusion (rows: true class, columns: predicted):");
        let _ = write!(s, "       ");
        for c in 0..self.confusion.len() {
            let _ = write!(s, "{c:>6}");
        }
        let _ = writeln!(s);
        for (t, row) in self.confusion.iter().enumerate() {
            let _ = write!(s, "  {t:>4} ");
            for v in row {
                let _ = write!(s, "{v:>6}");
            }
            let _ = writeln!(s);
        }
        s
    }
}

/// Told how many examples of a set are evaluated so far, after each batch (for a
/// progress display; `&|_| {}` for none).
pub type Tick<'a> = &'a dyn Fn(usize);

/// Predicted classes of every image of `set` for each head of `net`, after
/// `normalize`, on `device` (a plain, non-autodiff device).
///
/// With `open` rejecting below a probability, a top probability below it is answered
/// with class `open.known` (unknown).
pub fn predict(
    net: &dyn Predictor,
    set: &ImageSet,
    normalize: Option<Normalize>,
    device: &Device,
    open: Option<OpenSet>,
    done: Tick<'_>,
) -> Vec<Vec<u8>> {
    let pix = set.height * set.width;
    let mut pred = vec![Vec::with_capacity(set.len()); net.heads().len()];
    for start in (0..set.len()).step_by(EVAL_BATCH) {
        let end = (start + EVAL_BATCH).min(set.len());
        let x = image_batch(set, start..end, normalize, device);
        for (head, probs) in net.predict(x).into_iter().enumerate() {
            let classes = probs.clone().argmax(1).into_data();
            let classes = classes.iter::<i64>().map(|c| c as u8);
            match open.and_then(|o| o.reject_below.map(|t| (o.known as u8, t))) {
                Some((unknown, t)) => {
                    let top = probs.max_dim(1).into_data();
                    pred[head].extend(classes.zip(top.iter::<f32>()).map(|(c, p)| {
                        if p < t {
                            unknown
                        } else {
                            c
                        }
                    }));
                }
                None => pred[head].extend(classes),
            }
        }
        done(end);
    }
    debug_assert!(pred.iter().all(|p| p.len() == set.len()) || pix == 0);
    pred
}

/// Images `range` of `set` as a `[n, 1, h, w]` tensor, after `normalize`.
pub fn image_batch(
    set: &ImageSet,
    range: std::ops::Range<usize>,
    normalize: Option<Normalize>,
    device: &Device,
) -> Tensor<4> {
    let pix = set.height * set.width;
    let mut buf = set.pixels[range.start * pix..range.end * pix].to_vec();
    if let Some(n) = normalize {
        n.apply(&mut buf);
    }
    Tensor::<4>::from_data(
        TensorData::new(buf, [range.len(), 1, set.height, set.width]),
        device,
    )
}

/// Evaluates every head of `net` (already in eval mode) on `set`. The first result is
/// the primary head, named after the data set; the others are named `DATA/HEAD`. With
/// `open` the model is an open-set one: the answer `open.known` is unknown, and labels at
/// or above it count as unknown.
pub fn evaluate(
    net: &dyn Predictor,
    set: &ImageSet,
    normalize: Option<Normalize>,
    device: &Device,
    open: Option<OpenSet>,
    done: Tick<'_>,
) -> Vec<Evaluation> {
    per_head(
        net,
        &set.name,
        set.num_classes,
        &set.labels,
        predict(net, set, normalize, device, open, done),
        open.map(|o| o.known),
    )
}

/// One evaluation per head: the first named after the data set, the others `DATA/HEAD`.
fn per_head(
    net: &dyn Predictor,
    data: &str,
    num_classes: usize,
    labels: &[u8],
    predictions: Vec<Vec<u8>>,
    known: Option<usize>,
) -> Vec<Evaluation> {
    let heads = net.heads();
    predictions
        .into_iter()
        .enumerate()
        .map(|(i, pred)| {
            let name = if i == 0 {
                data.to_string()
            } else {
                format!("{data}/{}", heads[i])
            };
            match known {
                Some(k) => Evaluation::open_set(&name, k, labels, &pred),
                None => Evaluation::from_predictions(&name, num_classes, labels, &pred),
            }
        })
        .collect()
}

/// A set evaluated after every epoch, with its test-time preprocessing.
#[derive(Clone, Debug)]
pub enum EvalSet {
    /// Images, through the normalisation of the training path.
    Images(std::sync::Arc<ImageSet>),
    /// Sound clips, ten crops each.
    Sound(std::sync::Arc<SoundSet>, CropConfig),
}

impl EvalSet {
    /// Evaluates every head of `net` on the set; `open`: see [`evaluate`] (images).
    /// `done` is told how many examples are evaluated, after each batch.
    pub fn evaluate(
        &self,
        net: &dyn Predictor,
        normalize: Option<Normalize>,
        device: &Device,
        open: Option<OpenSet>,
        done: Tick<'_>,
    ) -> Vec<Evaluation> {
        match self {
            EvalSet::Images(set) => evaluate(net, set, normalize, device, open, done),
            EvalSet::Sound(set, crop) => evaluate_sound(net, set, crop, device, done),
        }
    }

    /// The set's name.
    pub fn name(&self) -> &str {
        match self {
            EvalSet::Images(s) => &s.name,
            EvalSet::Sound(s, _) => &s.name,
        }
    }
}

impl EvalSet {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            EvalSet::Images(s) => s.len(),
            EvalSet::Sound(s, _) => s.len(),
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The network inputs of the first `n` examples, for feature pictures: images after
    /// `normalize`, or the middle test crop of each clip.
    pub fn inputs(&self, n: usize, normalize: Option<Normalize>, device: &Device) -> Tensor<4> {
        let n = n.min(self.len());
        match self {
            EvalSet::Images(s) => image_batch(s, 0..n, normalize, device),
            EvalSet::Sound(s, crop) => {
                let mut buf = Vec::with_capacity(n * crop.length);
                let mid = TEST_CROPS / 2;
                for clip in &s.clips[..n] {
                    let crops = crop.test_crops(clip);
                    buf.extend_from_slice(&crops[mid * crop.length..(mid + 1) * crop.length]);
                }
                Tensor::<4>::from_data(TensorData::new(buf, [n, 1, 1, crop.length]), device)
            }
        }
    }
}

/// Clips per inference batch (times ten crops).
const SOUND_EVAL_CLIPS: usize = 32;

/// Mean class probabilities over the ten test crops of each clip of `set`, for each
/// head: `[head][clip][class]`.
pub fn predict_sound(
    net: &dyn Predictor,
    set: &SoundSet,
    crop: &CropConfig,
    device: &Device,
    done: Tick<'_>,
) -> Vec<Vec<Vec<f32>>> {
    let heads = net.heads().len();
    let mut out = vec![Vec::with_capacity(set.len()); heads];
    for start in (0..set.len()).step_by(SOUND_EVAL_CLIPS) {
        let end = (start + SOUND_EVAL_CLIPS).min(set.len());
        let mut buf = Vec::with_capacity((end - start) * TEST_CROPS * crop.length);
        for clip in &set.clips[start..end] {
            buf.extend(crop.test_crops(clip));
        }
        let n = (end - start) * TEST_CROPS;
        let x = Tensor::<4>::from_data(TensorData::new(buf, [n, 1, 1, crop.length]), device);
        for (h, probs) in net.predict(x).into_iter().enumerate() {
            let classes = probs.dims()[1];
            let p: Vec<f32> = probs
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 probabilities");
            for clip in p.chunks(TEST_CROPS * classes) {
                let mut mean = vec![0.0f32; classes];
                for row in clip.chunks(classes) {
                    for (m, v) in mean.iter_mut().zip(row) {
                        *m += v / TEST_CROPS as f32;
                    }
                }
                out[h].push(mean);
            }
        }
        done(end);
    }
    out
}

/// Evaluates every head of `net` on the clips of `set` (ten crops each).
pub fn evaluate_sound(
    net: &dyn Predictor,
    set: &SoundSet,
    crop: &CropConfig,
    device: &Device,
    done: Tick<'_>,
) -> Vec<Evaluation> {
    let predictions = predict_sound(net, set, crop, device, done)
        .into_iter()
        .map(|probs| probs.iter().map(|p| argmax(p) as u8).collect())
        .collect();
    per_head(
        net,
        &set.name,
        set.num_classes,
        &set.labels,
        predictions,
        None,
    )
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network that answers class 0 for everything.
    struct Zero;

    impl Predictor for Zero {
        fn heads(&self) -> &'static [&'static str] {
            &["c"]
        }
        fn predict(&self, x: Tensor<4>) -> Vec<Tensor<2>> {
            let n = x.dims()[0];
            let p: Vec<f32> = (0..n).flat_map(|_| [1.0, 0.0]).collect();
            vec![Tensor::<2>::from_data(
                TensorData::new(p, [n, 2]),
                &x.device(),
            )]
        }
        fn features(&self, x: Tensor<4>) -> Tensor<2> {
            x.flatten(1, 3)
        }
    }

    #[test]
    fn evaluation_tells_its_progress_after_each_batch() {
        let n = EVAL_BATCH * 2 + 88;
        let set = EvalSet::Images(std::sync::Arc::new(ImageSet {
            name: "t".into(),
            height: 2,
            width: 2,
            pixels: vec![0.5; n * 4],
            labels: (0..n).map(|i| (i % 2) as u8).collect(),
            num_classes: 2,
        }));
        let ticks = std::cell::RefCell::new(Vec::new());
        let e = set.evaluate(&Zero, None, &Device::flex(), None, &|done| {
            ticks.borrow_mut().push(done)
        });
        assert_eq!(
            ticks.into_inner(),
            [EVAL_BATCH, 2 * EVAL_BATCH, n],
            "one tick per batch, the last at the whole set"
        );
        assert_eq!((e[0].correct, e[0].total), (n / 2, n));
    }

    #[test]
    fn confusion_and_per_class_accuracy() {
        let e = Evaluation::from_predictions("t", 3, &[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0]);
        assert_eq!(e.correct, 3);
        assert_eq!(e.total, 5);
        assert!((e.accuracy - 0.6).abs() < 1e-12);
        assert_eq!(
            e.confusion,
            vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
        );
        assert_eq!(e.per_class, vec![Some(0.5), Some(1.0), Some(0.0)]);
        assert!(e.render().contains("accuracy 60.00% (3 / 5)"));
        // a class absent from the set: no accuracy, not 0
        let e = Evaluation::from_predictions("t", 3, &[0, 1], &[0, 0]);
        assert_eq!(e.per_class, vec![Some(1.0), Some(0.0), None]);
        assert!(
            e.render().contains("per class: 0:100.0 1:0.0 2:-"),
            "{}",
            e.render()
        );
    }
}
