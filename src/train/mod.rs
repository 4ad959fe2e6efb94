//! Training runs: the model stage ([`trainer`]), checkpoints ([`checkpoint`]), and
//! sessions ([`session`]: run folders, resuming, evaluation, embeddings).
//!
//! A run folder holds `pipeline.toml` (the pipeline as used), `run.json` (resolved
//! settings), `metrics.jsonl` (one line per epoch), `checkpoints/`, `summary.json`,
//! `learning_curve.svg` and, at the end, `embedding.svg` and `model.safetensors` (the
//! final weights in a portable format).

pub mod checkpoint;
pub mod session;
pub mod trainer;

use crate::graph::StopFlag;

/// How a training run is asked to stop (Ctrl-C). Clones share the same flags.
///
/// The first request ([`TrainStop::at_epoch_end`]) lets the epoch under way finish and
/// checkpoints it, whatever the pipeline's `checkpoint_every`, so that nothing trained
/// is lost and a resumed run continues exactly where this one stopped. The second
/// ([`TrainStop::now`]) stops the graph after the current step; the epoch under way is
/// then lost and a resumed run goes back to the last checkpoint.
#[derive(Clone, Default, Debug)]
pub struct TrainStop {
    /// Finish the epoch under way, checkpoint it, then stop.
    pub at_epoch_end: StopFlag,
    /// Stop after the current step (the graph's own stop flag).
    pub now: StopFlag,
}

impl TrainStop {
    /// Flags that nothing has set yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether either stop was asked for: nothing further should start.
    pub fn requested(&self) -> bool {
        self.at_epoch_end.is_stopped() || self.now.is_stopped()
    }
}
