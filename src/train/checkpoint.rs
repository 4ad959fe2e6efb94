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
use std::collections::BTreeMap;
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // the pointer lost (a copy that left it out, a hand that removed it): the
            // newest whole checkpoint folder is the latest
            let Some(name) = newest_whole(&dir(run)) else {
                return Ok(None);
            };
            log::warn!(
                "{} is missing: using the newest checkpoint, {name}",
                pointer.display()
            );
            name
        }
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

/// The name of the newest whole `epoch-N` folder in `checkpoints` (not one still being
/// written, `.partial`), by its epoch number.
fn newest_whole(checkpoints: &Path) -> Option<String> {
    fs::read_dir(checkpoints)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|n| {
            let epoch: usize = n.strip_prefix("epoch-")?.parse().ok()?;
            checkpoints
                .join(&n)
                .join("state.json")
                .is_file()
                .then_some((epoch, n))
        })
        .max()
        .map(|(_, n)| n)
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

/// A module's weights as safetensors bytes, the same bytes for the same weights.
pub fn safetensors_bytes<M: Module>(module: &M) -> Result<Vec<u8>> {
    use burn::store::ModuleSnapshot;
    let mut store = burn::store::SafetensorsStore::from_bytes(None);
    module
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("exporting weights: {e:?}"))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| anyhow::anyhow!("exporting weights: {e:?}"))?;
    sorted_header(&bytes).context("exporting weights")
}

/// A safetensors buffer with the keys of its JSON header in sorted order. burn writes
/// the metadata from a hash map, in an order that changes from run to run; sorted, the
/// same weights give the same file. The data section is kept as it is: the header's
/// tensor offsets count from its start.
fn sorted_header(bytes: &[u8]) -> Result<Vec<u8>> {
    // tensor name (or `__metadata__`) -> field -> value; no value is itself a table
    type Header = BTreeMap<String, BTreeMap<String, serde_json::Value>>;
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .and_then(|n| usize::try_from(n).ok())
        .context("a safetensors buffer starts with its header's length")?;
    let data = 8usize
        .checked_add(n)
        .filter(|&end| end <= bytes.len())
        .context("the safetensors header runs past the buffer")?;
    let header: Header =
        serde_json::from_slice(&bytes[8..data]).context("reading the safetensors header")?;
    let mut json = serde_json::to_vec(&header)?;
    // the format pads the header with spaces to a multiple of 8 bytes
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - data);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[data..]);
    Ok(out)
}

/// Finds the run's checkpoint or explains how to get one.
pub fn require_latest(run: &Path) -> Result<(PathBuf, CheckpointState)> {
    match latest(run)? {
        Some(x) => Ok(x),
        // a finished run whose checkpoints were removed
        None if run.join(crate::sink::metrics::SUMMARY_FILE).is_file() => bail!(
            "{} has no checkpoint left in {}, which scarce reads its weights from: train it again (its pipeline.toml is in the folder)",
            run.display(),
            dir(run).display()
        ),
        None => bail!(
            "{} has no checkpoint yet: train first (`scarce train PIPELINE --out {}`), or wait for its first checkpoint (every `checkpoint_every` epochs of the pipeline; `scarce train --resume {}` continues a stopped run)",
            run.display(),
            run.display(),
            run.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::digits::DigitsNetConfig;
    use burn::prelude::Device;

    /// A safetensors buffer with the given header text and data.
    fn buffer(header: &str, data: &[u8]) -> Vec<u8> {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn header_keys_are_sorted_and_the_data_kept() {
        let data: Vec<u8> = [1.5f32, -2.0, 0.25]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a = buffer(
            r#"{"__metadata__":{"z":"1","a":"2"},"w":{"shape":[3],"dtype":"F32","data_offsets":[0,12]}}"#,
            &data,
        );
        let b = buffer(
            r#"{"w":{"data_offsets":[0,12],"dtype":"F32","shape":[3]},"__metadata__":{"a":"2","z":"1"}}"#,
            &data,
        );
        let (sa, sb) = (sorted_header(&a).unwrap(), sorted_header(&b).unwrap());
        assert_eq!(
            sa, sb,
            "the same table in another order gives the same bytes"
        );
        let n = u64::from_le_bytes(sa[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0, "header padded to 8 bytes");
        let text = std::str::from_utf8(&sa[8..8 + n]).unwrap();
        assert!(text.find(r#""a":"2""#).unwrap() < text.find(r#""z":"1""#).unwrap());
        assert_eq!(&sa[8 + n..], &data[..]);
        // an independent reader finds the tensor and the metadata
        let st = safetensors::SafeTensors::deserialize(&sa).unwrap();
        let w = st.tensor("w").unwrap();
        assert_eq!(w.shape(), &[3]);
        assert_eq!(w.data(), &data[..]);
        let (_, meta) = safetensors::SafeTensors::read_metadata(&sa).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["z"], "1");
    }

    #[test]
    fn bad_buffers_are_refused() {
        assert!(sorted_header(&[1, 2, 3]).is_err());
        assert!(sorted_header(&buffer("{}", &[])[..6]).is_err());
        let mut long = buffer("{}", &[]);
        long[..8].copy_from_slice(&1000u64.to_le_bytes());
        assert!(sorted_header(&long).is_err());
        assert!(sorted_header(&buffer("not json", &[])).is_err());
    }

    #[test]
    fn a_network_exports_the_same_bytes_every_time() {
        let net = DigitsNetConfig::default().init(&Device::flex());
        let first = safetensors_bytes(&net).unwrap();
        for _ in 0..4 {
            assert!(safetensors_bytes(&net).unwrap() == first);
        }
        let st = safetensors::SafeTensors::deserialize(&first).unwrap();
        assert!(st.len() > 4, "the network's tensors are there");
    }
}
