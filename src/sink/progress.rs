//! Progress sink: a progress bar over the iterations of each epoch with the running
//! loss and accuracy (on a terminal only), and one line per finished epoch on stderr.

use crate::graph::{BoxError, Sink};
use crate::item::{EpochMetrics, Item, Report};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

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

/// The progress bar of the epoch under way, shared with the model stage so that it can
/// say what it does between the epoch's last step and the epoch's line (evaluating,
/// which takes long on large sound sets). Without a bar (quiet, not on a terminal, or
/// no progress stage) it says nothing.
#[derive(Clone, Default)]
pub struct StatusLine(Arc<Mutex<Option<ProgressBar>>>);

impl StatusLine {
    /// Shows `msg` in place of the running loss and accuracy.
    pub fn say(&self, msg: impl FnOnce() -> String) {
        if let Some(b) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            b.set_message(msg());
        }
    }

    fn set(&self, bar: Option<ProgressBar>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = bar;
    }
}

impl fmt::Debug for StatusLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StatusLine(..)")
    }
}

/// Shows training progress.
pub struct ProgressSink {
    bar: Option<ProgressBar>,
    status: StatusLine,
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
            status: StatusLine::default(),
        }
    }

    /// Lends each epoch's bar to `status`.
    pub fn with_status(mut self, status: StatusLine) -> Self {
        self.status = status;
        self
    }

    /// Adds `note`'s words to each finished epoch's line.
    pub fn with_note(mut self, note: Option<EpochNote>) -> Self {
        self.note = note;
        self
    }

    fn bar(&mut self, epoch: usize) -> &ProgressBar {
        let epochs = self.epochs;
        let per_epoch = self.per_epoch as u64;
        if self.bar.is_none() {
            let b = ProgressBar::new(per_epoch);
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.set_prefix(format!("epoch {epoch}/{epochs}"));
            self.status.set(Some(b.clone()));
            self.bar = Some(b);
        }
        self.bar.as_ref().expect("created above")
    }

    fn end_bar(&mut self) {
        self.status.set(None);
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
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
                self.end_bar();
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
        self.end_bar();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openset::OpenSetMetrics;

    #[test]
    fn the_model_stage_speaks_through_the_bar_of_the_epoch_under_way() {
        let status = StatusLine::default();
        status.say(|| panic!("nothing to say without a bar"));
        let mut sink = ProgressSink::new(false).with_status(status.clone());
        sink.consume(Item::Report(Report::Start {
            first_epoch: 1,
            epochs: 2,
            iterations_per_epoch: 3,
        }))
        .unwrap();
        sink.consume(Item::Report(Report::Step {
            epoch: 1,
            loss: 1.0,
            acc: 0.5,
        }))
        .unwrap();
        status.say(|| "evaluating t: 32/500".into());
        assert_eq!(sink.bar.as_ref().unwrap().message(), "evaluating t: 32/500");
        sink.finish().unwrap();
        status.say(|| panic!("the epoch's bar is gone"));
        // a quiet sink draws no bar
        let mut quiet = ProgressSink::new(true).with_status(status.clone());
        quiet
            .consume(Item::Report(Report::Step {
                epoch: 1,
                loss: 1.0,
                acc: 0.5,
            }))
            .unwrap();
        status.say(|| panic!("quiet"));
    }

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
