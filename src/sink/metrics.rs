//! Metrics sink: appends one JSON line per epoch to `metrics.jsonl` (flushed each
//! epoch), and when the graph ends, normally or not, writes `summary.json` and the
//! learning-curve plot atomically.

use crate::fsutil::write_atomic;
use crate::graph::{BoxError, Sink};
use crate::item::{EpochMetrics, Item, Report};
use anyhow::Context;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the per-epoch metrics in a run folder.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File name of the run summary.
pub const SUMMARY_FILE: &str = "summary.json";
/// File name of the learning-curve plot.
pub const PLOT_FILE: &str = "learning_curve.svg";

/// The `summary.json` of a run.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Summary {
    /// Pipeline name.
    pub pipeline: String,
    /// `completed` or `interrupted`.
    pub status: String,
    /// Epochs finished.
    pub epochs_done: usize,
    /// Epochs asked for.
    pub epochs: usize,
    /// Seed of the run.
    pub seed: u64,
    /// Device the run trained on.
    pub device: String,
    /// Accuracy on each evaluation set after the last finished epoch.
    pub final_eval: Vec<(String, f64)>,
    /// Best accuracy on each evaluation set over all epochs, with its epoch.
    pub best_eval: Vec<(String, f64, usize)>,
    /// Open-set methods: OS, OS*, ALL, UNK and H-score on each evaluation set after the
    /// last finished epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub final_open_set: Vec<(String, crate::openset::OpenSetMetrics)>,
    /// Training wall time, seconds (over resumed sessions too).
    pub elapsed_s: f64,
    /// Data files left out as unreadable (`skip_bad_files`), with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_files: Vec<String>,
}

/// The epochs of a run's `metrics.jsonl` up to `up_to`, read without changing the file,
/// and whether the file holds anything else (later epochs, lines that do not parse).
/// A line that does not parse is named in a warning unless it is the last (a run killed
/// as it wrote it).
pub fn read_history(run: &Path, up_to: usize) -> anyhow::Result<(Vec<EpochMetrics>, bool)> {
    let path = run.join(METRICS_FILE);
    let mut kept = Vec::new();
    let mut other = false;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((kept, false)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<EpochMetrics>(line) {
            Ok(m) if m.epoch <= up_to => kept.push(m),
            Ok(_) => other = true,
            Err(e) => {
                other = true;
                if i + 1 < lines.len() {
                    log::warn!(
                        "{}:{}: not an epoch's metrics ({e}); the line is left out",
                        path.display(),
                        i + 1
                    );
                }
            }
        }
    }
    Ok((kept, other))
}

/// Reads the epochs already in a run's `metrics.jsonl`, keeping only epochs up to
/// `up_to`, and adds those of `saved` (the lines a checkpoint carries) that the file
/// lacks; rewrites the file if it held more (a run killed after writing metrics but
/// before its checkpoint) or less (killed after its checkpoint but before the metrics
/// sink wrote the line). For a training session that continues the run: reading alone
/// is [`read_history`].
pub fn load_history(
    run: &Path,
    up_to: usize,
    saved: &[EpochMetrics],
) -> anyhow::Result<Vec<EpochMetrics>> {
    let path = run.join(METRICS_FILE);
    let (mut kept, mut changed) = read_history(run, up_to)?;
    for m in saved {
        if m.epoch <= up_to && !kept.iter().any(|k| k.epoch == m.epoch) {
            kept.push(m.clone());
            changed = true;
        }
    }
    kept.sort_by_key(|m| m.epoch);
    if changed {
        let mut text = String::new();
        for m in &kept {
            text.push_str(&serde_json::to_string(m)?);
            text.push('\n');
        }
        write_atomic(&path, text.as_bytes())?;
    }
    Ok(kept)
}

/// Writes the run's metrics files.
pub struct MetricsSink {
    skipped: Vec<String>,
    run: PathBuf,
    file: Option<File>,
    history: Vec<EpochMetrics>,
    pipeline: String,
    epochs: usize,
    seed: u64,
    device: String,
}

impl MetricsSink {
    /// A sink writing into `run`, continuing `history` (epochs of earlier sessions).
    pub fn new(
        run: &Path,
        history: Vec<EpochMetrics>,
        pipeline: &str,
        epochs: usize,
        seed: u64,
        device: &str,
    ) -> Self {
        Self {
            skipped: Vec::new(),
            run: run.to_path_buf(),
            file: None,
            history,
            pipeline: pipeline.to_string(),
            epochs,
            seed,
            device: device.to_string(),
        }
    }

    fn append(&mut self, m: &EpochMetrics) -> anyhow::Result<()> {
        if self.file.is_none() {
            let path = self.run.join(METRICS_FILE);
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("opening {}", path.display()))?,
            );
        }
        let f = self.file.as_mut().expect("opened above");
        let mut line = serde_json::to_string(m)?;
        line.push('\n');
        f.write_all(line.as_bytes())?;
        f.flush()?;
        Ok(())
    }

    /// The summary of the epochs seen so far.
    pub fn summary(&self) -> Summary {
        let last = self.history.last();
        let mut best: Vec<(String, f64, usize)> = Vec::new();
        for m in &self.history {
            for (i, (name, acc)) in m.eval.iter().enumerate() {
                match best.get_mut(i) {
                    Some(b) if *acc > b.1 => *b = (name.clone(), *acc, m.epoch),
                    Some(_) => {}
                    None => best.push((name.clone(), *acc, m.epoch)),
                }
            }
        }
        let done = last.map(|m| m.epoch).unwrap_or(0);
        Summary {
            pipeline: self.pipeline.clone(),
            status: if done >= self.epochs {
                "completed"
            } else {
                "interrupted"
            }
            .into(),
            epochs_done: done,
            epochs: self.epochs,
            seed: self.seed,
            device: self.device.clone(),
            final_eval: last.map(|m| m.eval.clone()).unwrap_or_default(),
            best_eval: best,
            final_open_set: last.map(|m| m.open_set.clone()).unwrap_or_default(),
            elapsed_s: last.map(|m| m.elapsed_s).unwrap_or(0.0),
            skipped_files: self.skipped.clone(),
        }
    }

    /// Names data files that were skipped as unreadable, for the summary.
    pub fn with_skipped(mut self, skipped: Vec<String>) -> Self {
        self.skipped = skipped;
        self
    }
}

impl Sink<Item> for MetricsSink {
    fn consume(&mut self, item: Item) -> Result<(), BoxError> {
        if let Item::Report(Report::Epoch(m)) = item {
            self.append(&m)?;
            self.history.push(m);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        let summary = self.summary();
        write_atomic(
            &self.run.join(SUMMARY_FILE),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        if !self.history.is_empty() {
            let svg = super::plot::learning_curve_svg(&self.pipeline, &self.history)?;
            write_atomic(&self.run.join(PLOT_FILE), svg.as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(e: usize) -> EpochMetrics {
        EpochMetrics {
            epoch: e,
            train_loss: 1.0 / e as f64,
            train_acc: 0.5,
            discrepancy: None,
            eval: vec![("test".into(), 0.9)],
            open_set: Vec::new(),
            iterations: 3,
            phase_s: Vec::new(),
            train_s: 1.0,
            eval_s: 0.1,
            elapsed_s: e as f64,
        }
    }

    fn write_lines(run: &Path, epochs: &[usize]) {
        let text: String = epochs
            .iter()
            .map(|&e| serde_json::to_string(&epoch(e)).unwrap() + "\n")
            .collect();
        std::fs::write(run.join(METRICS_FILE), text).unwrap();
    }

    fn epochs_in_file(run: &Path) -> Vec<usize> {
        std::fs::read_to_string(run.join(METRICS_FILE))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<EpochMetrics>(l).unwrap().epoch)
            .collect()
    }

    #[test]
    fn history_drops_epochs_after_the_checkpoint_and_restores_those_it_carries() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        // killed after writing epoch 3's line but before its checkpoint (at 2)
        write_lines(run, &[1, 2, 3]);
        let h = load_history(run, 2, &[]).unwrap();
        assert_eq!(h.iter().map(|m| m.epoch).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(epochs_in_file(run), [1, 2]);
        // killed after the checkpoint of epoch 4 but before lines 3 and 4 were written
        let h = load_history(run, 4, &[epoch(3), epoch(4)]).unwrap();
        assert_eq!(h.iter().map(|m| m.epoch).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(h[3], epoch(4));
        assert_eq!(epochs_in_file(run), [1, 2, 3, 4]);
        // lines already there are kept, not doubled
        let h = load_history(run, 4, &[epoch(4)]).unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!(epochs_in_file(run), [1, 2, 3, 4]);
    }

    #[test]
    fn reading_a_history_leaves_the_file_as_it_is() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        write_lines(run, &[1, 2, 3]);
        let mut text = std::fs::read_to_string(run.join(METRICS_FILE)).unwrap();
        text.insert_str(0, "{garbled\n");
        text.push_str("{\"epoch\": 4, \"train_lo");
        std::fs::write(run.join(METRICS_FILE), &text).unwrap();
        let (h, other) = read_history(run, 2).unwrap();
        assert_eq!(h.iter().map(|m| m.epoch).collect::<Vec<_>>(), [1, 2]);
        assert!(
            other,
            "epoch 3 and the two damaged lines are more than it kept"
        );
        assert_eq!(
            std::fs::read_to_string(run.join(METRICS_FILE)).unwrap(),
            text,
            "unchanged"
        );
        let (h, _) = read_history(run, usize::MAX).unwrap();
        assert_eq!(h.len(), 3);
    }
}
