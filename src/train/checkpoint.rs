//! Checkpoints of a training run: the network and optimizer state after an epoch, in
//! burn's burnpack format (it keeps parameter ids, which the optimizer state is keyed
//! by), plus a small JSON state file.
//!
//! Layout: `RUN/checkpoints/epoch-0007/{model.bpk, optimizer*.bpk, state.json}`; what a
//! method stores is up to it (through [`save_module`] and [`save_optimizer`]). A
//! checkpoint is written into a `.partial` folder, synced, and renamed into place; the
//! `RUN/checkpoints/latest` pointer is replaced atomically afterwards. A run killed at
//! any moment therefore resumes from a complete checkpoint.

use crate::fsutil::write_atomic;
use crate::item::EpochMetrics;
use crate::method::Method;
use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// How many epoch checkpoints are kept (older ones are deleted).
pub const KEEP: usize = 2;

/// What a checkpoint records besides tensors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    /// Last finished epoch.
    pub epoch: usize,
    /// Training wall time so far, seconds.
    pub elapsed_s: f64,
    /// The run's seed.
    pub seed: u64,
    /// Version of scarce that wrote it.
    pub version: String,
}

/// The checkpoint folder of a run.
pub fn dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// File in a checkpoint holding the metrics lines of the epochs since the previous
/// checkpoint: a run killed after its checkpoint but before the metrics sink wrote those
/// lines gets them back on resume.
pub const EPOCHS_FILE: &str = "epochs.jsonl";

/// The epoch metrics a checkpoint holds (none for checkpoints written before they did).
pub fn saved_epochs(ckpt: &Path) -> Vec<EpochMetrics> {
    fs::read_to_string(ckpt.join(EPOCHS_FILE))
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Saves a checkpoint after `state.epoch`, with the metrics of the epochs since the
/// previous checkpoint, and points `latest` at it.
pub fn save(
    run: &Path,
    method: &dyn Method,
    state: &CheckpointState,
    epochs: &[EpochMetrics],
) -> Result<PathBuf> {
    let root = dir(run);
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let name = format!("epoch-{:04}", state.epoch);
    let final_dir = root.join(&name);
    let partial = root.join(format!("{name}.partial"));
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial)?;
    method.save(&partial)?;
    write_atomic(
        &partial.join("state.json"),
        serde_json::to_string_pretty(state)?.as_bytes(),
    )?;
    let mut lines = String::new();
    for m in epochs {
        lines.push_str(&serde_json::to_string(m)?);
        lines.push('\n');
    }
    write_atomic(&partial.join(EPOCHS_FILE), lines.as_bytes())?;
    let _ = fs::remove_dir_all(&final_dir);
    fs::rename(&partial, &final_dir)
        .with_context(|| format!("moving checkpoint into {}", final_dir.display()))?;
    write_atomic(&root.join("latest"), name.as_bytes())?;
    prune(&root, &name);
    Ok(final_dir)
}

fn prune(root: &Path, keep_latest: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("epoch-") && !n.ends_with(".partial"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(KEEP);
    for n in names.into_iter().take(excess) {
        if n != keep_latest {
            let _ = fs::remove_dir_all(root.join(n));
        }
    }
}

/// The latest complete checkpoint of a run, if any.
pub fn latest(run: &Path) -> Result<Option<(PathBuf, CheckpointState)>> {
    let pointer = dir(run).join("latest");
    let name = match fs::read_to_string(&pointer) {
        Ok(n) => n.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", pointer.display())),
    };
    let d = dir(run).join(&name);
    let state_path = d.join("state.json");
    let text = fs::read_to_string(&state_path).with_context(|| {
        format!(
            "checkpoint {} is incomplete: cannot read {}",
            name,
            state_path.display()
        )
    })?;
    let state: CheckpointState = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid checkpoint state", state_path.display()))?;
    Ok(Some((d, state)))
}

/// Writes a module (weights, BatchNorm statistics, parameter ids) to `path`.
pub fn save_module<M: Module>(path: &Path, module: &M) -> Result<()> {
    let bytes = module
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("serialising {}: {e:?}", path.display()))?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// Loads a module written by [`save_module`] into `fresh` (same architecture).
pub fn load_module<M: Module>(path: &Path, fresh: M) -> Result<M> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let record =
        burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| {
            anyhow::anyhow!("{} is not a valid model checkpoint: {e:?}", path.display())
        })?;
    fresh.try_load_record(record).map_err(|e| {
        // the loader lists every tensor that is missing or misshapen: keep the start
        let mut why = format!("{e:?}");
        if why.chars().count() > 240 {
            why = why.chars().take(240).collect::<String>() + " ...";
        }
        anyhow::anyhow!(
            "{} does not fit the pipeline's network (a checkpoint of another pipeline?): {why}",
            path.display()
        )
    })
}

/// Writes an optimizer's state to `path`.
pub fn save_optimizer(path: &Path, opt: &ModuleOptimizer) -> Result<()> {
    let bytes = opt
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("serialising {}: {e:?}", path.display()))?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// Loads optimizer state written by [`save_optimizer`] into `fresh`.
pub fn load_optimizer(path: &Path, fresh: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    fresh.from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a valid optimizer checkpoint: {e:?}",
            path.display()
        )
    })
}

/// A module's weights as safetensors bytes.
pub fn safetensors_bytes<M: Module>(module: &M) -> Result<Vec<u8>> {
    use burn::store::ModuleSnapshot;
    let mut store = burn::store::SafetensorsStore::from_bytes(None);
    module
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("exporting weights: {e:?}"))?;
    store
        .get_bytes()
        .map_err(|e| anyhow::anyhow!("exporting weights: {e:?}"))
}

/// Finds the run's checkpoint or explains how to get one.
pub fn require_latest(run: &Path) -> Result<(PathBuf, CheckpointState)> {
    match latest(run)? {
        Some(x) => Ok(x),
        None => bail!(
            "{} has no checkpoint yet: train first (`scarce train PIPELINE --out {}`), or wait for the first epoch to finish",
            run.display(),
            run.display()
        ),
    }
}
