//! Progress sink: a progress bar over the iterations of each epoch with the running
//! loss and accuracy (on a terminal only), and one line per finished epoch on stderr.

use crate::graph::{BoxError, Sink};
use crate::item::{EpochMetrics, Item, Report};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt;
use std::sync::Arc;

/// What gives the words for a finished epoch's line.
pub type NoteFn = dyn Fn(&EpochMetrics) -> Option<String> + Send + Sync;

/// Words to add to a finished epoch's line, or `None` (`scarce cv` adds the time its
/// queue of folds has left).
#[derive(Clone)]
pub struct EpochNote(pub Arc<NoteFn>);

impl fmt::Debug for EpochNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EpochNote(..)")
    }
}

/// Shows training progress.
pub struct ProgressSink {
    bar: Option<ProgressBar>,
    epochs: usize,
    per_epoch: usize,
    quiet: bool,
    note: Option<EpochNote>,
}

impl ProgressSink {
    /// A progress display; `quiet` prints nothing at all.
    pub fn new(quiet: bool) -> Self {
        Self {
            bar: None,
            epochs: 0,
            per_epoch: 0,
            quiet,
            note: None,
        }
    }

    /// Adds `note`'s words to each finished epoch's line.
    pub fn with_note(mut self, note: Option<EpochNote>) -> Self {
        self.note = note;
        self
    }

    fn bar(&mut self, epoch: usize) -> &ProgressBar {
        let epochs = self.epochs;
        let per_epoch = self.per_epoch as u64;
        self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new(per_epoch);
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.set_prefix(format!("epoch {epoch}/{epochs}"));
            b
        })
    }
}

/// `" (OS 72.1, UNK 13.3)"`: what an epoch line adds after an open-set evaluation's
/// overall accuracy.
fn open_set_note(m: &crate::openset::OpenSetMetrics) -> String {
    match m.unk {
        Some(unk) => format!(" (OS {:.1}, UNK {:.1})", 100.0 * m.os, 100.0 * unk),
        None => format!(" (OS {:.1})", 100.0 * m.os),
    }
}

impl Sink<Item> for ProgressSink {
    fn consume(&mut self, item: Item) -> Result<(), BoxError> {
        if self.quiet {
            return Ok(());
        }
        let Item::Report(r) = item else {
            return Ok(());
        };
        match r {
            Report::Start {
                first_epoch,
                epochs,
                iterations_per_epoch,
            } => {
                self.epochs = epochs;
                self.per_epoch = iterations_per_epoch;
                if first_epoch > 1 {
                    eprintln!("resuming at epoch {first_epoch}/{epochs}");
                }
            }
            Report::Step { epoch, loss, acc } => {
                let b = self.bar(epoch);
                b.inc(1);
                b.set_message(format!("loss {loss:.4} acc {:.1}%", 100.0 * acc));
            }
            Report::Epoch(m) => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                let evals: Vec<String> = m
                    .eval
                    .iter()
                    .map(|(n, a)| {
                        let open = m.open_set.iter().find(|(o, _)| o == n);
                        format!(
                            "  {n} {:.2}%{}",
                            100.0 * a,
                            open.map(|(_, o)| open_set_note(o)).unwrap_or_default()
                        )
                    })
                    .collect();
                let note = self.note.as_ref().and_then(|n| (n.0)(&m));
                eprintln!(
                    "epoch {:>3}/{}  loss {:.4}  train {:.1}%{}  ({:.1}s train, {:.1}s eval){}",
                    m.epoch,
                    self.epochs,
                    m.train_loss,
                    100.0 * m.train_acc,
                    evals.concat(),
                    m.train_s,
                    m.eval_s,
                    note.unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openset::OpenSetMetrics;

    #[test]
    fn open_set_note_gives_os_and_unk_where_there_are_unknowns() {
        let m = OpenSetMetrics {
            os: 0.7214,
            os_star: 0.838,
            all: 0.565,
            unk: Some(0.1333),
            h_score: Some(0.229),
        };
        assert_eq!(open_set_note(&m), " (OS 72.1, UNK 13.3)");
        let known_only = OpenSetMetrics {
            unk: None,
            h_score: None,
            ..m
        };
        assert_eq!(open_set_note(&known_only), " (OS 72.1)");
    }
}
