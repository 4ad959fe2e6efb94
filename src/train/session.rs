//! A training session from the command line's point of view: resolve the pipeline, the
//! data directory, the device and the run folder; run the graph; report the outcome.
//! Also reloading a finished run for evaluation.

use super::checkpoint::{self, CheckpointState};
use super::TrainStop;
use crate::data::{resolve_data_dir, DataDir, DataDirOrigin};
use crate::eval::Evaluation;
use crate::fsutil::write_atomic;
use crate::graph::RunReport;
use crate::pipeline::assemble::RunContext;
use crate::pipeline::{PipelineFile, Plan};
use crate::sink::metrics::{load_history, MetricsSink, Summary, SUMMARY_FILE};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// File name of the pipeline copy in a run folder.
pub const PIPELINE_FILE: &str = "pipeline.toml";
/// File name of the resolved run settings.
pub const RUN_FILE: &str = "run.json";
/// File name of the exported final weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Settings resolved when a run started; a resumed run uses them again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSettings {
    /// Seed.
    pub seed: u64,
    /// Epochs (the pipeline's, or `--epochs`).
    pub epochs: usize,
    /// Device name.
    pub device: String,
    /// Data directory used.
    pub data_dir: PathBuf,
    /// Where the pipeline came from.
    pub pipeline_source: PathBuf,
    /// Held-out fold of sound sets (`--fold`; `None`: the pipeline's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<usize>,
    /// How many folds the sound set had when the run started (FSDD: its speakers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folds: Option<usize>,
}

impl RunSettings {
    /// The run's pipeline copy, with the run's epochs and fold applied.
    pub fn pipeline(&self, run: &Path) -> Result<(PipelineFile, Plan)> {
        let (mut file, plan) = load_pipeline(&run.join(PIPELINE_FILE), Some(self.epochs))?;
        if let Some(f) = self.fold {
            file.set_fold(f);
        }
        Ok((file, plan))
    }
}

impl RunSettings {
    /// Reads `RUN/run.json`.
    pub fn load(run: &Path) -> Result<Self> {
        let path = run.join(RUN_FILE);
        let text = fs::read_to_string(&path).with_context(|| {
            // the folder of a cross-validation or a comparison holds run folders
            let mut runs: Vec<String> = fs::read_dir(run)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().join(RUN_FILE).is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            runs.sort();
            let inside = match runs.first() {
                Some(first) => format!(
                    " (it holds {} run folder{}: give one, e.g. {})",
                    runs.len(),
                    if runs.len() == 1 { "" } else { "s" },
                    run.join(first).display()
                ),
                None => String::new(),
            };
            format!(
                "{} is not a run folder: cannot read {}{inside}",
                run.display(),
                path.display()
            )
        })?;
        let settings: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged", path.display()))?;
        if settings.epochs == 0 || settings.fold == Some(0) {
            bail!(
                "{} is damaged: `epochs` and `fold` count from 1",
                path.display()
            );
        }
        Ok(settings)
    }
}

/// What `scarce train` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct TrainRequest {
    /// Pipeline file (fresh run).
    pub pipeline: Option<PathBuf>,
    /// Run folder to resume.
    pub resume: Option<PathBuf>,
    /// Run folder for a fresh run (default `runs/NAME-TIMESTAMP`).
    pub out: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--epochs`.
    pub epochs: Option<usize>,
    /// `--fold`: the held-out fold of sound sets.
    pub fold: Option<usize>,
    /// `--device`.
    pub device: String,
    /// No progress output.
    pub quiet: bool,
    /// Words to add to each finished epoch's progress line.
    pub epoch_note: Option<crate::sink::progress::EpochNote>,
}

/// The outcome of a training session.
pub struct TrainOutcome {
    /// The run folder.
    pub run_dir: PathBuf,
    /// The run summary.
    pub summary: Summary,
    /// Graph metrics.
    pub report: RunReport,
}

fn data_dir_for(flag: Option<&Path>, recorded: Option<&Path>) -> DataDir {
    let d = resolve_data_dir(flag);
    match (d.origin, recorded) {
        (DataDirOrigin::BuiltIn, Some(r)) => DataDir {
            path: r.to_path_buf(),
            origin: DataDirOrigin::Flag,
        },
        _ => d,
    }
}

/// The current UTC time as `YYYYMMDD-HHMMSS`, for run folder names.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil-from-days (proleptic Gregorian calendar), UTC
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Loads and validates a pipeline, with `--epochs` applied.
pub fn load_pipeline(path: &Path, epochs: Option<usize>) -> Result<(PipelineFile, Plan)> {
    let mut file = PipelineFile::load(path)?;
    if let (Some(e), Some(t)) = (epochs, file.spec.train.as_mut()) {
        if e == 0 {
            bail!("--epochs must be at least 1");
        }
        *t.get_mut().epochs.get_mut() = e;
    }
    let plan = file.validate()?;
    Ok((file, plan))
}

/// The first entry of an existing folder `dir` that a run did not write, where the
/// folder is not a run folder (one with `run.json`): a run must not be written among
/// other files. `None` for a missing or empty folder, a run folder, or one a run
/// started in and left before writing `run.json` (its pipeline copy, a temporary file).
fn foreign_entry(dir: &Path) -> Option<String> {
    if dir.join(RUN_FILE).exists() {
        return None;
    }
    crate::fsutil::first_foreign_entry(dir, |name| {
        name == PIPELINE_FILE || name == crate::sink::metrics::METRICS_FILE
    })
}

/// Whether the pipeline has a sound data set, whose folds `--fold` chooses from.
fn has_folds(file: &PipelineFile) -> bool {
    file.spec
        .data
        .values()
        .any(|d| d.get_ref().set.get_ref().sound().is_some())
}

/// What a folder holds for a run that is asked for again (as `scarce compare --out`
/// does for each of its pipelines).
#[derive(Debug)]
pub enum EarlierRun {
    /// No run was started there: train one.
    Absent,
    /// The run finished: keep it.
    Finished(Box<crate::results::RunResult>),
    /// The run stopped after a checkpoint: resume it.
    Interrupted,
}

/// What is asked of a run: the command line's `--seed`, `--epochs`, `--fold` and
/// `--data-dir` (`None`: the pipeline's own, or the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct Wanted<'a> {
    /// Seed.
    pub seed: Option<u64>,
    /// Epochs.
    pub epochs: Option<usize>,
    /// Held-out fold.
    pub fold: Option<usize>,
    /// Data directory.
    pub data_dir: Option<&'a Path>,
}

/// Whether a finished run folder holds what the end of training writes besides the
/// metrics (the weights and the embedding's points).
fn has_outputs(run: &Path) -> bool {
    run.join(WEIGHTS_FILE).is_file() && run.join(EMBED_POINTS_FILE).is_file()
}

/// Looks in `dir` for a run of `pipeline` with the settings `wanted`. A run of another
/// pipeline file, of an edited one, or with other settings or data is an error naming
/// what differs: it is neither kept nor resumed. A finished run whose weights or
/// embedding are missing (stopped while writing them) is resumed, which writes them.
pub fn earlier_run(dir: &Path, pipeline: &Path, wanted: &Wanted<'_>) -> Result<EarlierRun> {
    let Ok(earlier) = RunSettings::load(dir) else {
        return Ok(EarlierRun::Absent);
    };
    let (seed, epochs, fold) = (wanted.seed, wanted.epochs, wanted.fold);
    let (file, _) = load_pipeline(pipeline, epochs)?;
    let train = file
        .spec
        .train
        .as_ref()
        .context("this pipeline has no [train] section, so it cannot be trained")?
        .get_ref();
    let used = fs::read_to_string(dir.join(PIPELINE_FILE))
        .with_context(|| format!("reading {}", dir.join(PIPELINE_FILE).display()))?;
    let differs = |what: String| {
        anyhow::anyhow!(
            "{} holds a run {what}: it is neither kept nor continued (choose another --out, or remove the folder)",
            dir.display()
        )
    };
    if crate::results::canonical(&used) != crate::results::canonical(&file.text) {
        return Err(differs(format!(
            "of another pipeline than {} (or of an earlier version of it)",
            pipeline.display()
        )));
    }
    let wanted_seed = seed.unwrap_or(train.seed);
    if earlier.seed != wanted_seed {
        return Err(differs(format!(
            "with seed {}, not {wanted_seed}",
            earlier.seed
        )));
    }
    let wanted_epochs = *train.epochs.get_ref();
    if earlier.epochs != wanted_epochs {
        return Err(differs(format!(
            "of {} epochs, not {wanted_epochs}",
            earlier.epochs
        )));
    }
    if earlier.fold != fold {
        let name =
            |f: Option<usize>| f.map_or("the pipeline's fold".to_string(), |f| format!("fold {f}"));
        return Err(differs(format!(
            "holding out {}, not {}",
            name(earlier.fold),
            name(fold)
        )));
    }
    let data = data_dir_for(wanted.data_dir, Some(&earlier.data_dir));
    let data = fs::canonicalize(&data.path).unwrap_or(data.path);
    if data != earlier.data_dir {
        return Err(differs(format!(
            "on the data in {}, not {}",
            earlier.data_dir.display(),
            data.display()
        )));
    }
    if dir.join(crate::sink::metrics::SUMMARY_FILE).exists() && has_outputs(dir) {
        if let Some(r) = crate::results::read_run(dir, None)? {
            return Ok(EarlierRun::Finished(Box::new(r)));
        }
    }
    Ok(if checkpoint::latest(dir)?.is_some() {
        EarlierRun::Interrupted
    } else {
        EarlierRun::Absent
    })
}

/// Runs (or resumes) a training session. `stop` is set by Ctrl-C.
pub fn train(req: &TrainRequest, stop: TrainStop) -> Result<TrainOutcome> {
    let choice: crate::model::device::DeviceChoice = req.device.parse()?;
    let mut created = false;
    let (run_dir, settings, resume) = if let Some(run) = &req.resume {
        let mut settings = RunSettings::load(run)?;
        if let Some(seed) = req.seed.filter(|&s| s != settings.seed) {
            bail!(
                "{} was started with seed {} and continues with it: --seed {seed} applies to a new run (give the pipeline file and another --out)",
                run.display(),
                settings.seed
            );
        }
        if let Some(fold) = req.fold {
            let file = settings.pipeline(run)?.0;
            if !has_folds(&file) {
                bail!(
                    "--fold chooses the held-out fold of a sound data set, but the pipeline of {} has none",
                    run.display()
                );
            }
            let held_out = settings.fold.unwrap_or_else(|| file.fold());
            if fold != held_out {
                bail!(
                    "{} holds out fold {held_out} and continues with it: --fold {fold} applies to a new run (give the pipeline file and another --out)",
                    run.display()
                );
            }
        }
        if let Some(e) = req.epochs.filter(|&e| e != settings.epochs) {
            log::warn!(
                "{}: {} epochs instead of {}: what is set as a share of the epochs (learning-rate milestones, `until` of a bc_mix stage) now follows the new total",
                run.display(),
                e,
                settings.epochs
            );
            settings.epochs = e;
        }
        let resume = checkpoint::latest(run)?;
        (run.clone(), settings, resume)
    } else {
        let pipeline = req
            .pipeline
            .as_ref()
            .context("give a pipeline file, or --resume RUN_DIR")?;
        let (mut file, _) = load_pipeline(pipeline, req.epochs)?;
        if let Some(f) = req.fold {
            if !has_folds(&file) {
                bail!(
                    "--fold chooses the held-out fold of a sound data set, but {} has none",
                    pipeline.display()
                );
            }
            file.set_fold(f);
        }
        let train = file
            .spec
            .train
            .as_ref()
            .context("this pipeline has no [train] section, so it cannot be trained")?;
        let data_dir = resolve_data_dir(req.data_dir.as_deref());
        let run_dir = req.out.clone().unwrap_or_else(|| {
            PathBuf::from("runs").join(format!("{}-{}", file.spec.pipeline.name, timestamp()))
        });
        if run_dir.exists() && !run_dir.is_dir() {
            bail!(
                "{} is a file: --out names the run folder to create",
                run_dir.display()
            );
        }
        if let Some(other) = foreign_entry(&run_dir) {
            bail!(
                "{} holds {other} and is not a run folder: a run is written to a new or empty folder (remove what it holds, or choose another)",
                run_dir.display()
            );
        }
        if checkpoint::latest(&run_dir)?.is_some() {
            bail!(
                "{} already holds a run: continue it with `scarce train --resume {}` or choose another --out",
                run_dir.display(),
                run_dir.display()
            );
        }
        // Check what can be checked before a run folder appears on disk.
        file.check_data(&data_dir)?;
        choice.device()?;
        created = !run_dir.exists();
        fs::create_dir_all(&run_dir)
            .with_context(|| format!("creating the run folder {}", run_dir.display()))?;
        let settings = RunSettings {
            seed: req.seed.unwrap_or(train.get_ref().seed),
            epochs: *train.get_ref().epochs.get_ref(),
            device: choice.to_string(),
            data_dir: fs::canonicalize(&data_dir.path).unwrap_or(data_dir.path.clone()),
            pipeline_source: pipeline.clone(),
            fold: req.fold,
            folds: file.sound_folds(&data_dir),
        };
        write_atomic(&run_dir.join(PIPELINE_FILE), file.text.as_bytes())?;
        (run_dir, settings, None)
    };
    write_atomic(
        &run_dir.join(RUN_FILE),
        serde_json::to_string_pretty(&settings)?.as_bytes(),
    )?;

    let result = run_session(req, stop, &run_dir, &settings, resume, &choice);
    if result.is_err() && created && checkpoint::latest(&run_dir).ok().flatten().is_none() {
        // A fresh run that failed before its first checkpoint leaves nothing worth keeping.
        let _ = fs::remove_dir_all(&run_dir);
    }
    result
}

fn run_session(
    req: &TrainRequest,
    stop: TrainStop,
    run_dir: &Path,
    settings: &RunSettings,
    resume: Option<(PathBuf, CheckpointState)>,
    choice: &crate::model::device::DeviceChoice,
) -> Result<TrainOutcome> {
    let run_dir = run_dir.to_path_buf();
    let (file, plan) = settings.pipeline(&run_dir)?;
    let data_dir = data_dir_for(req.data_dir.as_deref(), Some(&settings.data_dir));
    file.check_data(&data_dir)?;
    let embed_dir = data_dir.clone();
    let device = choice.device()?;
    let done = resume
        .as_ref()
        .map(|(_, s): &(PathBuf, CheckpointState)| s.epoch)
        .unwrap_or(0);
    let saved = resume
        .as_ref()
        .map(|(ckpt, _)| checkpoint::saved_epochs(ckpt))
        .unwrap_or_default();
    let history = load_history(&run_dir, done, &saved)?;
    if done >= settings.epochs {
        let trained = (run_dir.as_path(), &file, &plan, &data_dir);
        if let Some(outcome) = finish_trained(trained, settings, history, &device)? {
            return Ok(outcome);
        }
        bail!(
            "{} already finished all {} epochs; evaluate it with `scarce eval {}` or give more with --epochs",
            run_dir.display(),
            settings.epochs,
            run_dir.display()
        );
    }
    let ctx = RunContext {
        data_dir,
        run_dir: run_dir.clone(),
        device: device.clone(),
        device_name: settings.device.clone(),
        seed: settings.seed,
        resume,
        history,
        quiet: req.quiet,
        epoch_note: req.epoch_note.clone(),
        stop: stop.clone(),
    };
    let graph = file.assemble_train(&plan, ctx)?;
    if stop.requested() {
        // asked to stop while the data loaded: no epoch is under way to finish
        stop.now.stop();
    }
    let report = graph.run()?;
    let summary_path = run_dir.join(SUMMARY_FILE);
    let mut summary: Summary = serde_json::from_str(
        &fs::read_to_string(&summary_path)
            .with_context(|| format!("reading {}", summary_path.display()))?,
    )?;
    summary = catch_up_with_checkpoint(&run_dir, &file.spec.pipeline.name, settings, summary)?;
    if summary.status == "completed" {
        write_outputs((&run_dir, &file, &plan, &embed_dir), &device)?;
    }
    Ok(TrainOutcome {
        run_dir,
        summary,
        report,
    })
}

/// A stop that comes as an epoch ends: the model stage may finish the epoch and write
/// its checkpoint after the metrics sink has gone. The checkpoint carries the epoch's
/// line; this adds it to `metrics.jsonl` and writes the summary again (which says
/// `completed` if that epoch was the last). `summary` is returned as it is when the
/// latest checkpoint is not ahead of it.
pub fn catch_up_with_checkpoint(
    run_dir: &Path,
    pipeline: &str,
    settings: &RunSettings,
    summary: Summary,
) -> Result<Summary> {
    let Some((ckpt, state)) = checkpoint::latest(run_dir)? else {
        return Ok(summary);
    };
    if state.epoch <= summary.epochs_done {
        return Ok(summary);
    }
    let history = load_history(run_dir, state.epoch, &checkpoint::saved_epochs(&ckpt))?;
    write_summary(run_dir, pipeline, settings, history, summary.skipped_files)
}

/// Writes the summary and the learning curve of `history` (as the metrics sink does
/// when a graph ends) and returns the summary.
fn write_summary(
    run_dir: &Path,
    pipeline: &str,
    settings: &RunSettings,
    history: Vec<crate::item::EpochMetrics>,
    skipped: Vec<String>,
) -> Result<Summary> {
    use crate::graph::Sink;
    let mut sink = MetricsSink::new(
        run_dir,
        history,
        pipeline,
        settings.epochs,
        settings.seed,
        &settings.device,
    )
    .with_skipped(skipped);
    let summary = sink.summary();
    sink.finish()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", run_dir.join(SUMMARY_FILE).display()))?;
    Ok(summary)
}

/// A run whose last checkpoint holds every epoch but whose summary does not say so (the
/// process was killed between its last checkpoint and its summary): writes the summary
/// and learning curve from the metrics lines, then the weights and the embedding, as
/// the end of training would have. `None` if the summary already says `completed`.
fn finish_trained(
    (run_dir, file, plan, data_dir): (&Path, &PipelineFile, &Plan, &DataDir),
    settings: &RunSettings,
    history: Vec<crate::item::EpochMetrics>,
    device: &burn::prelude::Device,
) -> Result<Option<TrainOutcome>> {
    let summary_path = run_dir.join(SUMMARY_FILE);
    let earlier: Option<Summary> = fs::read_to_string(&summary_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    if let Some(summary) = earlier.as_ref().filter(|s| s.status == "completed") {
        if has_outputs(run_dir) {
            return Ok(None);
        }
        // stopped while writing what follows the metrics
        write_outputs((run_dir, file, plan, data_dir), device)?;
        return Ok(Some(TrainOutcome {
            run_dir: run_dir.to_path_buf(),
            summary: summary.clone(),
            report: RunReport::default(),
        }));
    }
    let summary = write_summary(
        run_dir,
        &file.spec.pipeline.name,
        settings,
        history,
        earlier.map(|s| s.skipped_files).unwrap_or_default(),
    )?;
    write_outputs((run_dir, file, plan, data_dir), device)?;
    log::info!(
        "{}: every epoch was trained; wrote the summary the run lacked",
        run_dir.display()
    );
    Ok(Some(TrainOutcome {
        run_dir: run_dir.to_path_buf(),
        summary,
        report: RunReport::default(),
    }))
}

/// What a completed run leaves besides its metrics: the weights (`model.safetensors`)
/// and the embedding picture.
fn write_outputs(
    (run_dir, file, plan, data_dir): (&Path, &PipelineFile, &Plan, &DataDir),
    device: &burn::prelude::Device,
) -> Result<()> {
    export_weights(run_dir, file, plan, device)?;
    write_embedding(run_dir, file, plan, data_dir, device)?;
    Ok(())
}

/// Writes the latest checkpoint's network as `model.safetensors` (portable weights).
pub fn export_weights(
    run: &Path,
    file: &PipelineFile,
    plan: &Plan,
    device: &burn::prelude::Device,
) -> Result<()> {
    let (ckpt, _) = checkpoint::require_latest(run)?;
    let mut method = crate::method::build(&file.method_config(plan)?, device);
    method.load_weights(&ckpt)?;
    let bytes = method.export()?;
    write_atomic(&run.join(WEIGHTS_FILE), &bytes)?;
    Ok(())
}

/// Examples per domain in the embedding plot.
pub const EMBED_POINTS: usize = 300;
/// File name of the embedding plot.
pub const EMBED_FILE: &str = "embedding.svg";
/// File name of the embedding's points (JSON).
pub const EMBED_POINTS_FILE: &str = "embedding.json";

/// Embeds the generator's features of source and target examples in 2-D (t-SNE) and
/// writes `RUN/embedding.svg`. Source: the first examples of the source dataset; target:
/// those of the target dataset, or, for a run without one, of the first evaluation set
/// that is not the source data (so a source-only run shows the unadapted picture).
pub fn write_embedding(
    run: &Path,
    file: &PipelineFile,
    plan: &Plan,
    data_dir: &DataDir,
    device: &burn::prelude::Device,
) -> Result<PathBuf> {
    use crate::item::Domain;
    use crate::pipeline::StageKind;
    let (ckpt, state) = checkpoint::require_latest(run)?;
    let cfg = file.method_config(plan)?;
    // open-set runs: target examples of classes the source never had get their own colour
    let known = cfg.open_set().map(|o| o.known);
    let net = crate::method::load_predictor(&cfg, &ckpt, device)?;
    let mut chosen: Vec<(String, bool)> = Vec::new();
    for sp in plan.stages.iter().filter(|s| s.kind == StageKind::Dataset) {
        let st = file.spec.stage[&sp.name].get_ref();
        let domain = st
            .domain
            .as_ref()
            .map(|d| *d.get_ref())
            .unwrap_or(Domain::Source);
        if let Some(d) = &st.data {
            chosen.push((d.get_ref().clone(), domain == Domain::Target));
        }
    }
    if !chosen.iter().any(|(_, t)| *t) {
        let sources: Vec<String> = chosen.iter().map(|(n, _)| n.clone()).collect();
        let eval = file.spec.train.as_ref().and_then(|t| {
            t.get_ref()
                .eval
                .iter()
                .map(|e| e.get_ref().clone())
                .find(|e| !sources.contains(e))
        });
        chosen.extend(eval.map(|e| (e, true)));
    }
    let train_stage = plan.train_stage()?;
    let normalize = file.preprocessing_before(plan, &train_stage.name);
    let mut features = Vec::new();
    let mut targets = Vec::new();
    let mut unknown = Vec::new();
    let mut dim = 0;
    for (name, target) in &chosen {
        let set = file.eval_set(plan, name, data_dir)?;
        let n = set.len().min(EMBED_POINTS);
        let x = set.inputs(n, normalize, device);
        let f = net.features(x);
        dim = f.dims()[1];
        features.extend(f.into_data().iter::<f32>());
        targets.extend(std::iter::repeat_n(*target, n));
        unknown.extend((0..n).map(|i| match (&set, known) {
            (crate::eval::EvalSet::Images(s), Some(k)) => *target && s.labels[i] as usize >= k,
            _ => false,
        }));
    }
    let n = targets.len();
    let xy = crate::embed::tsne(&features, n, dim, crate::embed::TsneConfig::default());
    let points: Vec<crate::sink::plot::EmbeddedPoint> = xy
        .into_iter()
        .zip(targets)
        .zip(unknown)
        .map(|((xy, target), unknown)| crate::sink::plot::EmbeddedPoint {
            xy,
            target,
            unknown,
        })
        .collect();
    let names: Vec<&str> = chosen.iter().map(|(n, _)| n.as_str()).collect();
    let title = format!(
        "{}, epoch {}: t-SNE of generator features ({})",
        file.spec.pipeline.name,
        state.epoch,
        names.join(" vs ")
    );
    let svg = crate::sink::plot::embedding_svg(&title, &points)?;
    let path = run.join(EMBED_FILE);
    write_atomic(&path, svg.as_bytes())?;
    let saved = SavedEmbedding { title, points };
    write_atomic(
        &run.join(EMBED_POINTS_FILE),
        serde_json::to_string(&saved)?.as_bytes(),
    )?;
    Ok(path)
}

/// The 2-D points of a run's embedding picture, kept beside it so that pictures of
/// several runs can be drawn side by side without running t-SNE again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedEmbedding {
    /// The picture's title.
    pub title: String,
    /// The points.
    pub points: Vec<crate::sink::plot::EmbeddedPoint>,
}

/// Reads `RUN/embedding.json`.
pub fn load_embedding(run: &Path) -> Result<SavedEmbedding> {
    let path = run.join(EMBED_POINTS_FILE);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
}

/// Redraws `RUN/embedding.svg` from the run's latest checkpoint.
pub fn embed_run(run: &Path, data_dir: Option<&Path>, device: &str) -> Result<PathBuf> {
    let settings = RunSettings::load(run)?;
    let (file, plan) = settings.pipeline(run)?;
    let device = device
        .parse::<crate::model::device::DeviceChoice>()?
        .device()?;
    let data_dir = data_dir_for(data_dir, Some(&settings.data_dir));
    write_embedding(run, &file, &plan, &data_dir, &device)
}

/// Evaluates a run's latest checkpoint on the named data sets (default: the pipeline's
/// `[train] eval` sets).
pub fn evaluate_run(
    run: &Path,
    data: &[String],
    data_dir: Option<&Path>,
    device: &str,
) -> Result<Vec<Evaluation>> {
    let settings = RunSettings::load(run)?;
    let (file, plan) = settings.pipeline(run)?;
    let (ckpt, _) = checkpoint::require_latest(run)?;
    let device = device
        .parse::<crate::model::device::DeviceChoice>()?
        .device()?;
    let cfg = file.method_config(&plan)?;
    let open = cfg.open_set();
    let net = crate::method::load_predictor(&cfg, &ckpt, &device)?;
    let names: Vec<String> = if data.is_empty() {
        file.spec
            .train
            .as_ref()
            .map(|t| {
                t.get_ref()
                    .eval
                    .iter()
                    .map(|e| e.get_ref().clone())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        data.to_vec()
    };
    let declared = file
        .spec
        .data
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.is_empty() {
        bail!(
            "nothing to evaluate: name a data set with --data (the pipeline declares: {})",
            declared
        );
    }
    let data_dir = data_dir_for(data_dir, Some(&settings.data_dir));
    let train_stage = plan.train_stage()?;
    let normalize = file.preprocessing_before(&plan, &train_stage.name);
    names
        .iter()
        .map(|n| {
            if !file.spec.data.contains_key(n) {
                bail!(
                    "data set `{n}` is not declared in the run's pipeline (declared: {})",
                    file.spec
                        .data
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let set = file.eval_set(&plan, n, &data_dir)?;
            // a bar on a terminal only: large sound sets take minutes on a CPU
            let bar = indicatif::ProgressBar::new(set.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "evaluating {prefix} [{bar:30}] {pos}/{len} ({elapsed}, about {eta} left)",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(n.clone());
            let evals = set.evaluate(net.as_ref(), normalize, &device, open, &|done| {
                bar.set_position(done as u64)
            });
            bar.finish_and_clear();
            Ok(evals)
        })
        .collect::<Result<Vec<_>>>()
        .map(|v| v.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_behind_the_last_checkpoint_catches_up_with_it() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let req = TrainRequest {
            pipeline: Some(PathBuf::from("tests/pipelines/tiny.toml")),
            resume: None,
            out: Some(run.clone()),
            data_dir: Some(PathBuf::from("data")),
            seed: None,
            epochs: Some(2),
            fold: None,
            device: "cpu".into(),
            quiet: true,
            epoch_note: None,
        };
        let trained = train(&req, TrainStop::new()).unwrap().summary;
        // what a stop as epoch 2 ended leaves of a 3-epoch run: epoch 2 checkpointed,
        // but neither its metrics line nor the summary written
        let mut settings = RunSettings::load(&run).unwrap();
        settings.epochs = 3;
        let metrics = run.join(crate::sink::metrics::METRICS_FILE);
        let lines = fs::read_to_string(&metrics).unwrap();
        fs::write(&metrics, lines.lines().next().unwrap().to_string() + "\n").unwrap();
        let behind = Summary {
            status: "interrupted".into(),
            epochs_done: 1,
            epochs: 3,
            ..trained.clone()
        };
        let caught_up = catch_up_with_checkpoint(&run, "tiny", &settings, behind).unwrap();
        assert_eq!(caught_up.epochs_done, 2);
        assert_eq!(
            caught_up.status, "interrupted",
            "one of three epochs is left"
        );
        assert_eq!(caught_up.final_eval, trained.final_eval);
        assert_eq!(
            fs::read_to_string(&metrics).unwrap(),
            lines,
            "epoch 2's line is back"
        );
        let written: Summary =
            serde_json::from_str(&fs::read_to_string(run.join(SUMMARY_FILE)).unwrap()).unwrap();
        assert_eq!(written.epochs_done, 2);
        // a summary that is not behind is left as it is
        let same = catch_up_with_checkpoint(&run, "tiny", &settings, caught_up.clone()).unwrap();
        assert_eq!(same.epochs_done, 2);
        // when the checkpointed epoch is the last, the run is complete
        settings.epochs = 2;
        let behind = Summary {
            status: "interrupted".into(),
            epochs_done: 1,
            ..trained
        };
        let done = catch_up_with_checkpoint(&run, "tiny", &settings, behind).unwrap();
        assert_eq!((done.status.as_str(), done.epochs_done), ("completed", 2));
    }
}
