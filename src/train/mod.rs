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
