//! Progress sink: a progress bar over the iterations of each epoch with the running
//! loss and accuracy (on a terminal only), and one line per finished epoch on stderr.

use crate::graph::{BoxError, Sink};
use crate::item::{Item, Report};
use indicatif::{ProgressBar, ProgressStyle};

/// Shows training progress.
pub struct ProgressSink {
    bar: Option<ProgressBar>,
    epochs: usize,
    per_epoch: usize,
    quiet: bool,
}

impl ProgressSink {
    /// A progress display; `quiet` prints nothing at all.
    pub fn new(quiet: bool) -> Self {
        Self {
            bar: None,
            epochs: 0,
            per_epoch: 0,
            quiet,
        }
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
                    .map(|(n, a)| format!("{n} {:.2}%", 100.0 * a))
                    .collect();
                eprintln!(
                    "epoch {:>3}/{}  loss {:.4}  train {:.1}%  {}  ({:.1}s train, {:.1}s eval)",
                    m.epoch,
                    self.epochs,
                    m.train_loss,
                    100.0 * m.train_acc,
                    evals.join("  "),
                    m.train_s,
                    m.eval_s
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
