//! Training runs: the model stage ([`trainer`]), checkpoints ([`checkpoint`]) and the
//! run folder that holds everything needed to reload a run.
//!
//! A run folder holds `pipeline.toml` (the pipeline as used), `metrics.jsonl` (one line
//! per epoch), `checkpoints/`, `summary.json`, `learning_curve.svg` and, at the end,
//! `model.safetensors` (the final weights in a portable format).

pub mod checkpoint;
pub mod session;
pub mod trainer;
