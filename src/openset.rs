//! Open-set evaluation (Saito et al., ECCV 2018): a classifier with `K` known classes
//! and one more output, "unknown", for everything else. Target labels at or above `K`
//! (classes the source never had) all count as "unknown".
//!
//! From the confusion matrix over the `K + 1` classes:
//! - **OS**: mean per-class accuracy over the known classes and unknown;
//! - **OS\***: mean per-class accuracy over the known classes only;
//! - **ALL**: accuracy over all examples;
//! - **UNK**: accuracy on the unknown examples (the share rejected);
//! - **H-score**: harmonic mean of OS\* and UNK (high only when both are).
//!
//! Classes with no example in the data are left out of the means.

use serde::{Deserialize, Serialize};

/// How a model answers "unknown".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpenSet {
    /// Known classes; the answer `known` is unknown.
    pub known: usize,
    /// A closed-set model made open (a baseline): below this top probability the answer
    /// is unknown. `None` for models with an unknown output of their own (OSBP).
    pub reject_below: Option<f32>,
}

/// The class index of a target label for a classifier of `known` classes plus unknown.
pub fn open_label(label: usize, known: usize) -> usize {
    label.min(known)
}

/// Open-set metrics, as fractions in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenSetMetrics {
    /// Mean per-class accuracy over the known classes and unknown.
    pub os: f64,
    /// Mean per-class accuracy over the known classes.
    pub os_star: f64,
    /// Overall accuracy.
    pub all: f64,
    /// Accuracy on unknown examples (`None` when there are none).
    pub unk: Option<f64>,
    /// Harmonic mean of OS* and UNK (`None` without unknown examples).
    pub h_score: Option<f64>,
}

impl OpenSetMetrics {
    /// Metrics of a confusion matrix `counts[true][predicted]` over `K + 1` classes,
    /// the last being unknown. `None` when the matrix is empty or not square.
    pub fn from_confusion(counts: &[Vec<u64>]) -> Option<Self> {
        let n = counts.len();
        if n < 2 || counts.iter().any(|r| r.len() != n) {
            return None;
        }
        let k = n - 1;
        let acc = |c: usize| {
            let total: u64 = counts[c].iter().sum();
            (total > 0).then(|| counts[c][c] as f64 / total as f64)
        };
        let known: Vec<f64> = (0..k).filter_map(acc).collect();
        let unk = acc(k);
        let total: u64 = counts.iter().flatten().sum();
        if total == 0 {
            return None;
        }
        let correct: u64 = (0..n).map(|c| counts[c][c]).sum();
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let os_star = mean(&known);
        let mut with_unk = known.clone();
        with_unk.extend(unk);
        let h_score = unk.map(|u| {
            if os_star + u > 0.0 {
                2.0 * os_star * u / (os_star + u)
            } else {
                0.0
            }
        });
        Some(Self {
            os: mean(&with_unk),
            os_star,
            all: correct as f64 / total as f64,
            unk,
            h_score,
        })
    }

    /// Metrics of predictions against target labels: `labels` are the data set's
    /// (any class number; those at or above `known` are unknown), `predicted` in
    /// `0..=known` (`known` = unknown).
    pub fn from_predictions(labels: &[usize], predicted: &[usize], known: usize) -> Option<Self> {
        let mut counts = vec![vec![0u64; known + 1]; known + 1];
        for (&l, &p) in labels.iter().zip(predicted) {
            counts[open_label(l, known)][p.min(known)] += 1;
        }
        Self::from_confusion(&counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn metrics_of_a_hand_made_confusion_matrix() {
        // two known classes and unknown; rows are the truth
        let m = OpenSetMetrics::from_confusion(&[
            vec![8, 1, 1],  // class 0: 8 of 10
            vec![0, 3, 1],  // class 1: 3 of 4
            vec![2, 0, 18], // unknown: 18 of 20
        ])
        .unwrap();
        assert!(close(m.os_star, (0.8 + 0.75) / 2.0));
        assert!(close(m.os, (0.8 + 0.75 + 0.9) / 3.0));
        assert!(close(m.all, 29.0 / 34.0));
        assert!(close(m.unk.unwrap(), 0.9));
        let h = 2.0 * 0.775 * 0.9 / (0.775 + 0.9);
        assert!(close(m.h_score.unwrap(), h));
    }

    #[test]
    fn rejecting_everything_scores_unk_but_no_h() {
        let m = OpenSetMetrics::from_confusion(&[vec![0, 5], vec![0, 5]]).unwrap();
        assert_eq!(m.unk, Some(1.0));
        assert_eq!(m.os_star, 0.0);
        assert_eq!(m.h_score, Some(0.0));
        assert!(close(m.os, 0.5));
        assert!(close(m.all, 0.5));
    }

    #[test]
    fn labels_beyond_the_known_classes_are_unknown_and_empty_classes_are_left_out() {
        // known classes 0-2; labels 3..9 are unknown; class 2 has no example
        let labels = [0, 0, 1, 3, 7, 9];
        let predicted = [0, 3, 1, 3, 3, 0];
        let m = OpenSetMetrics::from_predictions(&labels, &predicted, 3).unwrap();
        assert!(close(m.os_star, (0.5 + 1.0) / 2.0));
        assert!(close(m.unk.unwrap(), 2.0 / 3.0));
        assert!(close(m.os, (0.5 + 1.0 + 2.0 / 3.0) / 3.0));
        assert!(close(m.all, 4.0 / 6.0));
        // without unknown examples there is no UNK and no H-score
        let m = OpenSetMetrics::from_predictions(&[0, 1], &[0, 1], 3).unwrap();
        assert_eq!((m.unk, m.h_score), (None, None));
        assert!(close(m.os, 1.0));
        assert!(OpenSetMetrics::from_confusion(&[]).is_none());
        assert!(OpenSetMetrics::from_confusion(&[vec![0, 0], vec![0, 0]]).is_none());
    }
}
