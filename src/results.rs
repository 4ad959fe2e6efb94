//! Results tables from run folders: groups finished runs by pipeline, and reports the
//! final accuracy of the primary head on the first evaluation set (or a named one;
//! cross-validation tables follow for each further set) as mean ± standard
//! deviation over seeds, with the best epoch, the wall time, optionally the time to
//! first reach an accuracy, the pipeline's reference figure and the command that
//! reproduces the row. `scarce results runs/` prints it as Markdown.

use crate::item::EpochMetrics;
use crate::openset::OpenSetMetrics;
use crate::pipeline::PipelineFile;
use crate::sink::metrics::{read_history, Summary, SUMMARY_FILE};
use crate::train::session::{RunSettings, PIPELINE_FILE};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One finished run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Run folder.
    pub dir: PathBuf,
    /// Pipeline name.
    pub pipeline: String,
    /// Task and reference figure, from the pipeline's `[pipeline]` table.
    pub task: String,
    /// Published figure.
    pub reference: String,
    /// Method of the model stage.
    pub method: String,
    /// Seed.
    pub seed: u64,
    /// Epochs run.
    pub epochs: usize,
    /// Name of the reported evaluation (primary head of the first evaluation set).
    pub data: String,
    /// Final accuracy on it.
    pub final_acc: f64,
    /// Mean accuracy over the last `min(50, epochs)` epochs (less sensitive to the last epoch's noise).
    pub tail_acc: f64,
    /// Best accuracy and its epoch.
    pub best: (f64, usize),
    /// Training wall time, seconds.
    pub wall_s: f64,
    /// Seconds until the accuracy first reached the threshold, if asked and reached.
    pub time_to: Option<f64>,
    /// The epoch at which the accuracy first reached the threshold.
    pub epoch_to: Option<usize>,
    /// The command line that reproduces the run, with `--seed N` for the seed.
    pub command: String,
    /// The pipeline file as the run used it, without comments or layout: runs of a
    /// file whose settings were edited are another row.
    pub pipeline_text: String,
    /// The held-out fold, for cross-validated (sound) pipelines.
    pub fold: Option<usize>,
    /// How many folds the cross-validated set has (FSDD 6, ESC-50 5, UrbanSound8K 10).
    pub set_folds: Option<usize>,
    /// Epoch by epoch: (epoch, training loss, accuracy on the reported evaluation set
    /// where the epoch was evaluated).
    pub curve: Vec<(usize, f64, Option<f64>)>,
    /// Open-set models: the final epoch's open-set metrics on the reported set.
    pub open_set: Option<OpenSetMetrics>,
    /// Every evaluation set of the final epoch, in the pipeline's order (without the
    /// single heads of a multi-head model).
    pub evals: Vec<String>,
    /// The device the run trained on.
    pub device: String,
}

/// Finds run folders (folders with a `summary.json`) at or up to two levels below each
/// path (`runs/NAME`, and `runs/CV/fold-K` of `scarce cv`).
pub fn find_runs(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(p: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if p.join(SUMMARY_FILE).is_file() {
            out.push(p.to_path_buf());
        } else if depth > 0 {
            if let Ok(rd) = std::fs::read_dir(p) {
                let mut v: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|d| d.is_dir())
                    .collect();
                v.sort();
                for d in v {
                    walk(&d, depth - 1, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, 2, &mut out);
    }
    out
}

/// The evaluation sets that `runs` evaluate on besides the one each reports, in the
/// order they first appear: `scarce cv` and `scarce results` print a table for each.
pub fn further_evals<'a>(runs: impl IntoIterator<Item = &'a RunResult>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in runs {
        for name in &r.evals {
            if *name != r.data && !out.contains(name) {
                out.push(name.clone());
            }
        }
    }
    out
}

/// Reads one completed run; `threshold` asks for the time to first reach an accuracy.
pub fn read_run(dir: &Path, threshold: Option<f64>) -> Result<Option<RunResult>> {
    read_run_on(dir, threshold, None)
}

/// [`read_run`] reporting the evaluation set named `eval` (`None`: the first). A run
/// that does not evaluate on it is `None`; its task names the set, so that runs
/// reported on another set than their first are rows and pairs of their own.
pub fn read_run_on(
    dir: &Path,
    threshold: Option<f64>,
    eval: Option<&str>,
) -> Result<Option<RunResult>> {
    let summary: Summary = serde_json::from_str(
        &std::fs::read_to_string(dir.join(SUMMARY_FILE))
            .with_context(|| format!("reading {}", dir.join(SUMMARY_FILE).display()))?,
    )
    .with_context(|| format!("{} is damaged", dir.join(SUMMARY_FILE).display()))?;
    if summary.status != "completed" {
        return Ok(None);
    }
    let settings = RunSettings::load(dir)?;
    let file = PipelineFile::load(&dir.join(PIPELINE_FILE))?;
    let method = file
        .spec
        .stage
        .values()
        .find_map(|s| s.get_ref().method.as_ref().map(|m| m.get_ref().clone()))
        .unwrap_or_default();
    // read only: a results table changes no run folder
    let (history, _) = read_history(dir, usize::MAX)?;
    let Some(last) = history.last() else {
        return Ok(None);
    };
    let pick = |m: &EpochMetrics| -> Option<(String, f64)> {
        match eval {
            None => m.eval.first().cloned(),
            Some(name) => m.eval.iter().find(|e| e.0 == name).cloned(),
        }
    };
    let Some((data, final_acc)) = pick(last) else {
        return Ok(None);
    };
    let acc = |m: &EpochMetrics| pick(m).map(|e| e.1).unwrap_or(0.0);
    // epochs without evaluation (`eval_every`) do not count
    let evaluated: Vec<&EpochMetrics> = history.iter().filter(|m| pick(m).is_some()).collect();
    let best = evaluated
        .iter()
        .map(|m| (acc(m), m.epoch))
        .fold((f64::MIN, 0), |a, b| if b.0 > a.0 { b } else { a });
    let tail = &evaluated[evaluated.len().saturating_sub(50)..];
    let tail_acc = tail.iter().map(|m| acc(m)).sum::<f64>() / tail.len() as f64;
    let reached = threshold.and_then(|t| evaluated.iter().find(|m| acc(m) >= t));
    let (time_to, epoch_to) = (reached.map(|m| m.elapsed_s), reached.map(|m| m.epoch));
    let set_folds = file
        .spec
        .data
        .values()
        .find_map(|d| d.get_ref().set.get_ref().sound())
        // the folds found when the run started; the set's usual number for older runs
        .map(|k| settings.folds.unwrap_or(k.folds()));
    let cross_validated = set_folds.is_some();
    let fold = cross_validated.then(|| settings.fold.unwrap_or_else(|| file.fold()));
    let mut command = format!(
        "scarce {} {}",
        if cross_validated { "cv" } else { "train" },
        settings.pipeline_source.display()
    );
    let own_epochs = file
        .spec
        .train
        .as_ref()
        .map(|t| *t.get_ref().epochs.get_ref());
    if own_epochs != Some(settings.epochs) {
        let _ = write!(command, " --epochs {}", settings.epochs);
    }
    let builtin = std::fs::canonicalize(crate::data::BUILTIN_DATA_DIR).ok();
    if builtin.as_deref() != Some(settings.data_dir.as_path()) {
        let _ = write!(
            command,
            " --data-dir {}",
            relative_to_cwd(&settings.data_dir).display()
        );
    }
    if cross_validated {
        if settings.seed
            != file
                .spec
                .train
                .as_ref()
                .map(|t| t.get_ref().seed)
                .unwrap_or(1)
        {
            let _ = write!(command, " --seed {}", settings.seed);
        }
    } else {
        command.push_str(" --seed N");
    }
    // The task and reference texts come from the pipeline file the command names, where
    // it still exists with the same settings (its descriptions may have been reworded).
    let described = match PipelineFile::load(&settings.pipeline_source) {
        Ok(current)
            if current.spec.pipeline.name == file.spec.pipeline.name
                && canonical(&current.text) == canonical(&file.text) =>
        {
            current.spec.pipeline.clone()
        }
        _ => file.spec.pipeline.clone(),
    };
    let open_set = last
        .open_set
        .iter()
        .find(|(name, _)| *name == data)
        .map(|(_, m)| *m);
    Ok(Some(RunResult {
        dir: dir.to_path_buf(),
        device: summary.device.clone(),
        pipeline: summary.pipeline,
        // the tables of cross-validated runs have no column for the set
        task: match eval {
            Some(name) if cross_validated && last.eval.first().is_some_and(|e| e.0 != name) => {
                format!("{}, evaluated on {name}", described.task)
            }
            _ => described.task,
        },
        reference: described.reference,
        method,
        seed: summary.seed,
        epochs: summary.epochs_done,
        data,
        final_acc,
        tail_acc,
        best,
        wall_s: summary.elapsed_s,
        time_to,
        epoch_to,
        command,
        pipeline_text: canonical(&file.text),
        fold,
        set_folds,
        curve: history
            .iter()
            .map(|m| (m.epoch, m.train_loss, pick(m).map(|e| e.1)))
            .collect(),
        open_set,
        // the evaluation sets, not the single heads of a multi-head model (`SET/c1`)
        evals: last
            .eval
            .iter()
            .filter(|e| !e.0.contains('/'))
            .map(|e| e.0.clone())
            .collect(),
    }))
}

/// A pipeline's settings as text with comments, key order and layout removed.
/// The `[pipeline]` table's descriptions (`description`, `task`, `reference`) are left
/// out: rewording them does not change what a run does.
pub(crate) fn canonical(text: &str) -> String {
    match toml::from_str::<toml::Table>(text) {
        Ok(mut t) => {
            if let Some(toml::Value::Table(p)) = t.get_mut("pipeline") {
                p.retain(|k, _| k == "name");
            }
            t.to_string()
        }
        Err(_) => text.to_string(),
    }
}

/// `path` relative to the current directory where that is shorter (`../shared/data`).
fn relative_to_cwd(path: &Path) -> PathBuf {
    let Ok(cwd) = std::env::current_dir().and_then(std::fs::canonicalize) else {
        return path.to_path_buf();
    };
    let (a, b): (Vec<_>, Vec<_>) = (cwd.components().collect(), path.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common <= 1 {
        return path.to_path_buf();
    }
    let mut rel = PathBuf::new();
    for _ in common..a.len() {
        rel.push("..");
    }
    for c in &b[common..] {
        rel.push(c);
    }
    rel
}

/// `1, 2, 3`.
fn comma_list<T: std::fmt::Display>(v: impl IntoIterator<Item = T>) -> String {
    v.into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The run's reference figure, or `-`.
fn reference_or_dash(r: &RunResult) -> &str {
    if r.reference.is_empty() {
        "-"
    } else {
        r.reference.as_str()
    }
}

/// `mean ± std` of `n` values to one decimal; the mean alone for one value, whose
/// spread is unknown.
fn mean_pm(mean: f64, sd: f64, n: usize) -> String {
    if n > 1 {
        format!("{mean:.1} ± {sd:.1}")
    } else {
        format!("{mean:.1}")
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Leaves out runs that repeat another of `runs`: the same pipeline settings and
/// command, seed, fold and device (a `train --out` run and a `compare` run of one
/// pipeline, or two cross-validation folders holding the same fold), which would count
/// one result twice. Of repeats the newest is kept (the latest `summary.json`; on a
/// tie, the later in `runs`, whose timestamped folder names sort by age). Returns the
/// runs kept, in order, and for each left out its folder and the one kept.
pub fn drop_repeats(runs: Vec<RunResult>) -> (Vec<RunResult>, Vec<(PathBuf, PathBuf)>) {
    let written = |r: &RunResult| {
        std::fs::metadata(r.dir.join(SUMMARY_FILE))
            .and_then(|m| m.modified())
            .ok()
    };
    let mut kept: Vec<RunResult> = Vec::new();
    let mut dropped = Vec::new();
    for r in runs {
        let same = |k: &RunResult| {
            k.pipeline == r.pipeline
                && k.command == r.command
                && k.pipeline_text == r.pipeline_text
                && k.seed == r.seed
                && k.fold == r.fold
                && k.data == r.data
                && k.device == r.device
        };
        match kept.iter().position(same) {
            Some(i) if written(&kept[i]) > written(&r) => {
                dropped.push((r.dir, kept[i].dir.clone()))
            }
            Some(i) => {
                let older = std::mem::replace(&mut kept[i], r);
                dropped.push((older.dir, kept[i].dir.clone()));
            }
            None => kept.push(r),
        }
    }
    (kept, dropped)
}

/// Runs by `key`, in key order.
fn group_by<'a, K: Ord>(
    runs: impl Iterator<Item = &'a RunResult>,
    key: impl Fn(&'a RunResult) -> K,
) -> BTreeMap<K, Vec<&'a RunResult>> {
    let mut groups = BTreeMap::new();
    for r in runs {
        groups.entry(key(r)).or_insert_with(Vec::new).push(r);
    }
    groups
}

/// Runs by (pipeline, command, settings): the seeds or folds of one row.
type Groups<'a> = BTreeMap<(&'a str, &'a str, &'a str), Vec<&'a RunResult>>;

fn group<'a>(runs: impl Iterator<Item = &'a RunResult>) -> Groups<'a> {
    group_by(runs, |r| {
        (
            r.pipeline.as_str(),
            r.command.as_str(),
            r.pipeline_text.as_str(),
        )
    })
}

/// Runs by (pipeline, command, settings, evaluation set): the seeds of one row of a
/// table with a column for the set.
type SetGroups<'a> = BTreeMap<(&'a str, &'a str, &'a str, &'a str), Vec<&'a RunResult>>;

fn group_by_set<'a>(runs: impl Iterator<Item = &'a RunResult>) -> SetGroups<'a> {
    group_by(runs, |r| {
        (
            r.pipeline.as_str(),
            r.command.as_str(),
            r.pipeline_text.as_str(),
            r.data.as_str(),
        )
    })
}

/// The Markdown table of cross-validated runs, one row per pipeline and seed: error rate
/// (100 - accuracy) on the held-out fold as mean ± sample std over folds, each fold's
/// error, epochs, wall time per fold.
pub fn cv_table(runs: &[RunResult]) -> String {
    let groups = group(runs.iter().filter(|r| r.fold.is_some()));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| task | method | error % (mean ± std over folds) | error % per fold | best-epoch error % (mean) | folds | epochs | wall time per fold (min) | reference | command |"
    );
    let _ = writeln!(s, "|{}", "---|".repeat(10));
    for ((pipeline, command, _), mut rs) in groups {
        rs.sort_by_key(|r| r.fold);
        let errs: Vec<f64> = rs.iter().map(|r| 100.0 * (1.0 - r.final_acc)).collect();
        let (m, sd) = mean_std(&errs);
        let (best, _) = mean_std(
            &rs.iter()
                .map(|r| 100.0 * (1.0 - r.best.0))
                .collect::<Vec<_>>(),
        );
        let (wall, _) = mean_std(&rs.iter().map(|r| r.wall_s / 60.0).collect::<Vec<_>>());
        let first = rs[0];
        let (task, method) = cv_labels(pipeline, first);
        let _ = writeln!(
            s,
            "| {task} | {method} | {} | {} | {best:.1} | {} | {} | {wall:.1} | {} | `{command}{}` |",
            mean_pm(m, sd, errs.len()),
            errs.iter().map(|e| format!("{e:.1}")).collect::<Vec<_>>().join(" / "),
            comma_list(rs.iter().map(|r| r.fold.unwrap_or(0))),
            first.epochs,
            reference_or_dash(first),
            folds_option(first, rs.iter().filter_map(|r| r.fold)),
        );
    }
    s
}

/// ` --folds 1,3` where a row has only some of its set's folds (nothing for all), so
/// that its command reproduces it.
fn folds_option(r: &RunResult, folds: impl IntoIterator<Item = usize>) -> String {
    let mut folds: Vec<usize> = folds.into_iter().collect();
    folds.sort_unstable();
    folds.dedup();
    let all = r
        .set_folds
        .is_some_and(|n| folds == (1..=n).collect::<Vec<_>>());
    if all {
        String::new()
    } else {
        let list: Vec<String> = folds.iter().map(|f| f.to_string()).collect();
        format!(" --folds {}", list.join(","))
    }
}

/// Task and method columns of a cross-validated row: the pipeline's task (else its
/// name), and "standard" for supervised training without mixing (standard learning).
fn cv_labels<'a>(pipeline: &'a str, first: &'a RunResult) -> (&'a str, &'a str) {
    let task = if first.task.is_empty() {
        pipeline
    } else {
        first.task.as_str()
    };
    let method = match first.method.as_str() {
        "source_only" => "standard",
        other => other,
    };
    (task, method)
}

/// The command line of a cross-validated run without its `--seed K`.
fn without_seed(command: &str) -> String {
    let mut out = Vec::new();
    let mut words = command.split(' ');
    while let Some(w) = words.next() {
        if w == "--seed" {
            words.next();
        } else {
            out.push(w);
        }
    }
    out.join(" ")
}

/// What the seeds of one cross-validated row share: pipeline, command without its
/// `--seed K`, and pipeline settings.
type SeedsKey<'a> = (&'a str, String, &'a str);

fn seeds_key(r: &RunResult) -> SeedsKey<'_> {
    (
        r.pipeline.as_str(),
        without_seed(&r.command),
        r.pipeline_text.as_str(),
    )
}

/// The Markdown table of cross-validated pipelines run with several seeds (`scarce cv
/// ... --seed K`), one row per pipeline: each fold's error averaged over the seeds, the
/// mean ± sample std of those over the folds, and the seed-to-seed spread (sample std
/// over the seeds, averaged over the folds). Only folds that every seed finished count;
/// the command is `scarce cv ... --seeds S1,S2,...`. Empty when no pipeline has more
/// than one seed.
pub fn cv_seed_table(runs: &[RunResult]) -> String {
    let mut groups: BTreeMap<SeedsKey, BTreeMap<u64, BTreeMap<usize, &RunResult>>> =
        BTreeMap::new();
    for r in runs {
        let Some(fold) = r.fold else { continue };
        groups
            .entry(seeds_key(r))
            .or_default()
            .entry(r.seed)
            .or_default()
            .insert(fold, r);
    }
    let mut s = String::new();
    for ((pipeline, command, _), seeds) in groups {
        if seeds.len() < 2 {
            continue;
        }
        let mut folds: Vec<usize> = seeds.values().next().unwrap().keys().copied().collect();
        folds.retain(|f| seeds.values().all(|by_fold| by_fold.contains_key(f)));
        if folds.is_empty() {
            continue;
        }
        let (mut per_fold, mut spread) = (Vec::new(), Vec::new());
        for f in &folds {
            let errs: Vec<f64> = seeds
                .values()
                .map(|by_fold| 100.0 * (1.0 - by_fold[f].final_acc))
                .collect();
            let (m, sd) = mean_std(&errs);
            per_fold.push(m);
            spread.push(sd);
        }
        let (m, sd) = mean_std(&per_fold);
        let (seed_sd, _) = mean_std(&spread);
        let first = seeds.values().next().unwrap()[&folds[0]];
        if s.is_empty() {
            let _ = writeln!(
                s,
                "| task | method | error % (mean ± std over folds) | error % per fold (mean over seeds) | seed-to-seed std (mean over folds) | folds | seeds | epochs | command |"
            );
            let _ = writeln!(s, "|{}", "---|".repeat(9));
        }
        let (task, method) = cv_labels(pipeline, first);
        let _ = writeln!(
            s,
            "| {task} | {method} | {} | {} | {seed_sd:.1} | {} | {} | {} | `{command}{} --seeds {}` |",
            mean_pm(m, sd, per_fold.len()),
            per_fold
                .iter()
                .map(|e| format!("{e:.1}"))
                .collect::<Vec<_>>()
                .join(" / "),
            comma_list(&folds),
            comma_list(seeds.keys()),
            first.epochs,
            folds_option(first, folds.iter().copied()),
            seeds.keys().map(|k| k.to_string()).collect::<Vec<_>>().join(","),
        );
    }
    s
}

/// The Markdown table that pairs each cross-validated pipeline with standard learning on
/// the same task (the pipelines' `task`): for every (fold, seed) that both finished, the
/// two held-out errors side by side. Per pair of rows: the number of pairs, both mean
/// errors over them, their ratio, the mean ± sample std of the difference (this row minus
/// standard learning, points) with its standard error, and on how many pairs this row's
/// error is lower. Seeds of a row are its runs with `--seed K`. Empty when no task has
/// both standard learning and another row.
pub fn cv_paired_table(runs: &[RunResult]) -> String {
    struct Row<'a> {
        pipeline: &'a str,
        epochs: usize,
        task: &'a str,
        standard: bool,
        /// (seed, fold) -> held-out error %
        errors: BTreeMap<(u64, usize), f64>,
    }
    let mut rows: BTreeMap<SeedsKey, Row> = BTreeMap::new();
    for r in runs {
        let Some(fold) = r.fold else { continue };
        let (task, method) = cv_labels(&r.pipeline, r);
        rows.entry(seeds_key(r))
            .or_insert_with(|| Row {
                pipeline: &r.pipeline,
                epochs: r.epochs,
                task,
                standard: method == "standard",
                errors: BTreeMap::new(),
            })
            .errors
            .insert((r.seed, fold), 100.0 * (1.0 - r.final_acc));
    }
    let mut s = String::new();
    for row in rows.values().filter(|r| !r.standard) {
        for base in rows.values().filter(|b| b.standard && b.task == row.task) {
            let pairs: Vec<(f64, f64)> = row
                .errors
                .iter()
                .filter_map(|(k, &e)| base.errors.get(k).map(|&b| (e, b)))
                .collect();
            if pairs.is_empty() {
                continue;
            }
            let n = pairs.len();
            let (e, _) = mean_std(&pairs.iter().map(|p| p.0).collect::<Vec<_>>());
            let (b, _) = mean_std(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
            let (d, sd) = mean_std(&pairs.iter().map(|p| p.0 - p.1).collect::<Vec<_>>());
            let (spread, se) = if n > 1 {
                (format!("{sd:.1}"), format!("{:.1}", sd / (n as f64).sqrt()))
            } else {
                ("-".to_string(), "-".to_string())
            };
            let lower = pairs.iter().filter(|p| p.0 < p.1).count();
            let ratio = if b > 0.0 {
                format!("{:.2}", e / b)
            } else {
                "-".to_string()
            };
            if s.is_empty() {
                let _ = writeln!(
                    s,
                    "| task | pipeline | standard learning | (fold, seed) pairs | error % | standard error % | ratio | difference, points (mean ± std over pairs) | standard error of the difference | pairs with lower error |"
                );
                let _ = writeln!(s, "|{}", "---|".repeat(10));
            }
            let _ = writeln!(
                s,
                "| {} | {} ({}) | {} ({}) | {n} | {e:.1} | {b:.1} | {ratio} | {d:+.1} ± {spread} | {se} | {lower} of {n} |",
                row.task,
                row.pipeline,
                epochs_label(row.epochs),
                base.pipeline,
                epochs_label(base.epochs)
            );
        }
    }
    s
}

/// "1 epoch", "24 epochs".
fn epochs_label(n: usize) -> String {
    if n == 1 {
        "1 epoch".to_string()
    } else {
        format!("{n} epochs")
    }
}

/// The mean learning curve of one cross-validated pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct CvCurve {
    /// Pipeline name.
    pub name: String,
    /// Folds averaged.
    pub folds: usize,
    /// Seeds averaged (runs with `--seed K` of the same command); 1 for a single seed.
    pub seeds: usize,
    /// Epochs of the runs.
    pub epochs: usize,
    /// (epoch, training loss), mean over folds and seeds.
    pub loss: Vec<(usize, f64)>,
    /// (epoch, held-out error %), mean over folds and seeds.
    pub error: Vec<(usize, f64)>,
}

/// Mean learning curves of each cross-validated row (pipeline, command and settings, as
/// in the tables), means over the folds (and the seeds of a command run with several,
/// `scarce cv --seeds`) at the epochs every one of those runs reached (and, for the
/// error, evaluated). With several seeds only the folds that every seed finished count,
/// as in [`cv_seed_table`].
pub fn cv_curves(runs: &[RunResult]) -> Vec<CvCurve> {
    let mut groups: BTreeMap<SeedsKey, Vec<&RunResult>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.fold.is_some()) {
        groups.entry(seeds_key(r)).or_default().push(r);
    }
    let mut out = Vec::new();
    for ((pipeline, _, _), mut rs) in groups {
        let seeds: std::collections::BTreeSet<u64> = rs.iter().map(|r| r.seed).collect();
        let every_seed = |fold: Option<usize>| {
            seeds
                .iter()
                .all(|&s| rs.iter().any(|r| r.seed == s && r.fold == fold))
        };
        let complete: std::collections::BTreeSet<Option<usize>> = rs
            .iter()
            .map(|r| r.fold)
            .filter(|&f| every_seed(f))
            .collect();
        rs.retain(|r| complete.contains(&r.fold));
        if rs.is_empty() {
            continue;
        }
        let mut loss: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        let mut err: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for r in &rs {
            for &(epoch, l, acc) in &r.curve {
                loss.entry(epoch).or_default().push(l);
                if let Some(a) = acc {
                    err.entry(epoch).or_default().push(100.0 * (1.0 - a));
                }
            }
        }
        let mean_where_all = |m: BTreeMap<usize, Vec<f64>>| -> Vec<(usize, f64)> {
            m.into_iter()
                .filter(|(_, v)| v.len() == rs.len())
                .map(|(e, v)| (e, v.iter().sum::<f64>() / v.len() as f64))
                .collect()
        };
        let folds: std::collections::BTreeSet<_> = rs.iter().map(|r| r.fold).collect();
        out.push(CvCurve {
            name: pipeline.to_string(),
            folds: folds.len(),
            seeds: seeds.len(),
            epochs: rs[0].epochs,
            loss: mean_where_all(loss),
            error: mean_where_all(err),
        });
    }
    out
}

/// The Markdown table of `runs`, one row per pipeline (mean ± sample std over seeds).
pub fn table(runs: &[RunResult], threshold: Option<f64>) -> String {
    // runs of one pipeline file with the same command line (epochs, data) are seeds of
    // one row
    let groups = group_by_set(runs.iter().filter(|r| r.fold.is_none()));
    let mut s = String::new();
    let _ = write!(
        s,
        "| task | method | evaluated on | final accuracy % (mean ± std) | last-50-epoch mean % | best % | seeds | epochs | wall time (min) |"
    );
    if let Some(t) = threshold {
        let _ = write!(s, " time to {:.0}% (min) |", 100.0 * t);
    }
    let _ = writeln!(s, " reference | command |");
    let cols = 11 + usize::from(threshold.is_some());
    let _ = writeln!(s, "|{}", "---|".repeat(cols));
    for ((pipeline, command, _, _), rs) in groups {
        let pct = |f: fn(&RunResult) -> f64| {
            mean_std(&rs.iter().map(|r| 100.0 * f(r)).collect::<Vec<_>>())
        };
        let (fm, fs) = pct(|r| r.final_acc);
        let (tm, _) = pct(|r| r.tail_acc);
        let best = rs.iter().map(|r| r.best.0).fold(f64::MIN, f64::max);
        let (wall, _) = mean_std(&rs.iter().map(|r| r.wall_s / 60.0).collect::<Vec<_>>());
        let mut seeds: Vec<u64> = rs.iter().map(|r| r.seed).collect();
        seeds.sort();
        let first = rs[0];
        let task = if first.task.is_empty() {
            pipeline
        } else {
            first.task.as_str()
        };
        let _ = write!(
            s,
            "| {task} | {} | {} | {} | {tm:.1} | {:.1} | {} | {} | {wall:.1} |",
            first.method,
            first.data,
            mean_pm(fm, fs, rs.len()),
            100.0 * best,
            comma_list(&seeds),
            first.epochs,
        );
        if threshold.is_some() {
            let times: Vec<f64> = rs
                .iter()
                .filter_map(|r| r.time_to.map(|t| t / 60.0))
                .collect();
            if times.len() == rs.len() {
                let epochs: Vec<f64> = rs
                    .iter()
                    .filter_map(|r| r.epoch_to)
                    .map(|e| e as f64)
                    .collect();
                let _ = write!(
                    s,
                    " {:.1} (epoch {:.0}) |",
                    mean_std(&times).0,
                    mean_std(&epochs).0
                );
            } else {
                let _ = write!(
                    s,
                    " not reached by {} of {} |",
                    rs.len() - times.len(),
                    rs.len()
                );
            }
        }
        let _ = writeln!(s, " {} | `{command}` |", reference_or_dash(first),);
    }
    s
}

/// A Markdown table of the open-set runs among `runs` (seeds grouped as in [`table`]):
/// OS, OS*, ALL, UNK and H-score of the final epoch, mean ± sample std over seeds.
/// Empty when no run is an open-set one.
pub fn open_set_table(runs: &[RunResult]) -> String {
    let groups = group_by_set(
        runs.iter()
            .filter(|r| r.fold.is_none() && r.open_set.is_some()),
    );
    if groups.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "| task | method | evaluated on | OS % | OS* % | ALL % | UNK % | H-score % | seeds | epochs | reference | command |\n",
    );
    let _ = writeln!(s, "|{}", "---|".repeat(12));
    for ((pipeline, command, _, _), rs) in groups {
        let metrics: Vec<OpenSetMetrics> = rs.iter().filter_map(|r| r.open_set).collect();
        let cell = |f: fn(&OpenSetMetrics) -> Option<f64>| {
            let v: Option<Vec<f64>> = metrics.iter().map(|m| f(m).map(|x| 100.0 * x)).collect();
            match v {
                Some(v) => {
                    let (m, sd) = mean_std(&v);
                    mean_pm(m, sd, v.len())
                }
                None => "-".to_string(),
            }
        };
        let mut seeds: Vec<u64> = rs.iter().map(|r| r.seed).collect();
        seeds.sort();
        let first = rs[0];
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | `{command}` |",
            if first.task.is_empty() {
                pipeline
            } else {
                first.task.as_str()
            },
            first.method,
            first.data,
            cell(|m| Some(m.os)),
            cell(|m| Some(m.os_star)),
            cell(|m| Some(m.all)),
            cell(|m| m.unk),
            cell(|m| m.h_score),
            comma_list(&seeds),
            first.epochs,
            reference_or_dash(first),
        );
    }
    s
}

/// A plain-text table of open-set metrics (as `scarce train` and `scarce compare` print
/// them after their accuracy tables): a row per `(label, metrics)`, headed `heading`;
/// empty without rows. UNK and H-score read `-` where the set had no unknown examples.
pub fn open_set_lines(heading: &str, rows: &[(String, OpenSetMetrics)]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let w = rows
        .iter()
        .map(|r| r.0.len())
        .chain([heading.len()])
        .max()
        .unwrap_or(0);
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let mut s = format!(
        "{heading:<w$}  {:>6} {:>6} {:>6} {:>6} {:>6}\n",
        "OS", "OS*", "ALL", "UNK", "H"
    );
    for (label, m) in rows {
        let _ = writeln!(
            s,
            "{label:<w$}  {:>6} {:>6} {:>6} {:>6} {:>6}",
            pct(Some(m.os)),
            pct(Some(m.os_star)),
            pct(Some(m.all)),
            pct(m.unk),
            pct(m.h_score)
        );
    }
    s
}

/// A plain-text table of runs side by side (as `scarce compare` prints it): method,
/// evaluation set, final and best accuracy, wall time, and the change of the final
/// accuracy against the first run in points (where both were evaluated on the same set).
pub fn comparison(runs: &[RunResult]) -> String {
    let mut s = String::new();
    let width =
        |f: fn(&RunResult) -> usize, least: usize| runs.iter().map(f).max().unwrap_or(0).max(least);
    let (named, wide) = (width(|r| r.pipeline.len(), 8), width(|r| r.method.len(), 6));
    let _ = writeln!(
        s,
        "{:<named$}  {:<wide$}  {:<12} {:>8} {:>8} {:>9}  {:>6}",
        "pipeline", "method", "evaluated on", "final", "best", "wall time", "change"
    );
    for (i, r) in runs.iter().enumerate() {
        let change = if i == 0 {
            "-".to_string()
        } else if r.data != runs[0].data {
            "n/a".to_string() // different evaluation sets do not compare
        } else {
            format!("{:+.1}", 100.0 * (r.final_acc - runs[0].final_acc))
        };
        let _ = writeln!(
            s,
            "{:<named$}  {:<wide$}  {:<12} {:>7.2}% {:>7.2}% {:>7.1} s  {:>6}",
            r.pipeline,
            r.method,
            r.data,
            100.0 * r.final_acc,
            100.0 * r.best.0,
            r.wall_s,
            change
        );
    }
    let open: Vec<(String, OpenSetMetrics)> = runs
        .iter()
        .filter_map(|r| r.open_set.map(|m| (r.pipeline.clone(), m)))
        .collect();
    if !open.is_empty() {
        s.push('\n');
        s.push_str(&open_set_lines("open set (final)", &open));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(pipeline: &str, seed: u64, acc: f64) -> RunResult {
        RunResult {
            dir: PathBuf::new(),
            device: "cpu".into(),
            pipeline: pipeline.into(),
            task: "MNIST -> USPS".into(),
            reference: "94.2".into(),
            method: "mcd".into(),
            seed,
            epochs: 200,
            data: "usps_test".into(),
            final_acc: acc,
            tail_acc: acc,
            best: (acc + 0.01, 150),
            wall_s: 600.0,
            time_to: Some(120.0),
            epoch_to: Some(40),
            command: "scarce train pipelines/x.toml --seed N".into(),
            fold: None,
            set_folds: None,
            pipeline_text: format!("[pipeline]\nname = \"{pipeline}\""),
            curve: Vec::new(),
            open_set: None,
            evals: vec!["usps_test".into()],
        }
    }

    #[test]
    fn further_evals_are_the_sets_besides_each_reported_one_once_each() {
        let mut a = r("a", 1, 0.5);
        a.evals = vec!["usps_test".into(), "seen".into()];
        let mut b = r("b", 1, 0.5);
        b.data = "seen".into();
        b.evals = vec!["usps_test".into(), "seen".into(), "other".into()];
        assert_eq!(further_evals(&[a.clone()]), vec!["seen"]);
        assert_eq!(further_evals(&[a, b]), vec!["seen", "usps_test", "other"]);
        assert!(further_evals(&[r("c", 1, 0.5)]).is_empty());
    }

    #[test]
    fn open_set_rows_give_every_metric_over_seeds() {
        let m = |os: f64, unk: Option<f64>| OpenSetMetrics {
            os,
            os_star: 0.9,
            all: 0.8,
            unk,
            h_score: unk.map(|u| 2.0 * 0.9 * u / (0.9 + u)),
        };
        let mut a1 = r("osbp", 1, 0.8);
        a1.open_set = Some(m(0.86, Some(0.5)));
        let mut a2 = r("osbp", 2, 0.8);
        a2.open_set = Some(m(0.88, Some(0.7)));
        let mut b = r("so", 1, 0.7);
        b.open_set = Some(m(0.7, None));
        let closed = r("mcd", 1, 0.9);
        assert_eq!(open_set_table(std::slice::from_ref(&closed)), "");
        let t = open_set_table(&[a1, a2, b, closed]);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 4, "header, rule, two open-set rows: {t}");
        assert!(
            rows[0].contains("| OS % | OS* % | ALL % | UNK % | H-score % |"),
            "{t}"
        );
        let osbp = rows.iter().find(|l| l.contains("| 1, 2 |")).unwrap();
        assert!(
            osbp.contains("| 87.0 ± 1.4 | 90.0 ± 0.0 | 80.0 ± 0.0 | 60.0 ± 14.1 |"),
            "{t}"
        );
        // one seed: no spread to give
        let so = rows
            .iter()
            .find(|l| l.contains("| usps_test | 70.0 |"))
            .unwrap();
        assert!(so.contains("| - | - |"), "no unknown examples: {t}");
        // a second evaluation set of the same runs is a row of its own
        let mut on_mnist = r("osbp", 1, 0.8);
        on_mnist.data = "mnist_test".into();
        on_mnist.open_set = Some(m(0.6, Some(0.2)));
        let mut with_set = vec![on_mnist];
        let mut a1 = r("osbp", 1, 0.8);
        a1.open_set = Some(m(0.86, Some(0.5)));
        with_set.push(a1);
        let t = open_set_table(&with_set);
        assert_eq!(t.lines().count(), 4, "{t}");
        assert!(t.contains("| mnist_test | 60.0 |"), "{t}");
        assert!(t.contains("| usps_test | 86.0 |"), "{t}");
    }

    #[test]
    fn seeds_of_a_cross_validation_average_per_fold_first() {
        let run = |seed: u64, fold: usize, err: f64| {
            let mut x = r("bc", seed, 1.0 - err / 100.0);
            x.method = "source_only".into();
            x.fold = Some(fold);
            x.set_folds = Some(3);
            x.command = if seed == 1 {
                "scarce cv pipelines/x.toml --data-dir d".into()
            } else {
                format!("scarce cv pipelines/x.toml --seed {seed} --data-dir d")
            };
            x
        };
        assert_eq!(
            without_seed("scarce cv p.toml --seed 3 --data-dir d"),
            "scarce cv p.toml --data-dir d"
        );
        // one seed: nothing to average
        assert!(cv_seed_table(&[run(1, 1, 40.0), run(1, 2, 20.0)]).is_empty());
        // fold 1: 40 and 50 (mean 45, std 7.07); fold 2: 20 and 30 (25, 7.07); seed 2's
        // fold 3 has no seed-1 partner and is left out
        let runs = [
            run(1, 1, 40.0),
            run(1, 2, 20.0),
            run(2, 1, 50.0),
            run(2, 2, 30.0),
            run(2, 3, 90.0),
        ];
        let t = cv_seed_table(&runs);
        let rows: Vec<&str> = t.lines().skip(2).collect();
        assert_eq!(rows.len(), 1, "{t}");
        assert!(
            rows[0].contains("| standard | 35.0 ± 14.1 | 45.0 / 25.0 | 7.1 | 1, 2 | 1, 2 |"),
            "{t}"
        );
        // two of the set's three folds: the command names them
        assert!(
            rows[0].contains("`scarce cv pipelines/x.toml --data-dir d --folds 1,2 --seeds 1,2`"),
            "{t}"
        );
        // per seed: seed 2 has every fold, seed 1 two of them
        let t = cv_table(&runs);
        assert!(
            t.contains("| 30.0 ± 14.1 | 40.0 / 20.0 |")
                && t.contains("`scarce cv pipelines/x.toml --data-dir d --folds 1,2` |"),
            "{t}"
        );
        assert!(
            t.contains("`scarce cv pipelines/x.toml --seed 2 --data-dir d` |"),
            "{t}"
        );
        // one fold: its error, with no spread to give
        let t = cv_table(&[run(1, 3, 40.0)]);
        assert!(t.contains("| standard | 40.0 | 40.0 |"), "{t}");
    }

    #[test]
    fn paired_rows_compare_each_fold_and_seed_with_standard_learning() {
        let run = |pipeline: &str, method: &str, task: &str, seed: u64, fold: usize, err: f64| {
            let mut x = r(pipeline, seed, 1.0 - err / 100.0);
            x.method = method.into();
            x.task = task.into();
            x.fold = Some(fold);
            x.command = format!("scarce cv pipelines/{pipeline}.toml --seed {seed}");
            x
        };
        let (full, small) = ("FSDD", "FSDD, limited");
        let mut runs = vec![
            // BC: 30, 50 (seed 1), 40 (seed 2, fold 1); standard: 40, 40, 60
            run("bc", "bc", full, 1, 1, 30.0),
            run("bc", "bc", full, 1, 2, 50.0),
            run("bc", "bc", full, 2, 1, 40.0),
            run("std", "source_only", full, 1, 1, 40.0),
            run("std", "source_only", full, 1, 2, 40.0),
            run("std", "source_only", full, 2, 1, 60.0),
            // no standard partner for this fold and seed: left out
            run("bc", "bc", full, 2, 2, 99.0),
            // another task's standard learning is not paired with the first task's BC
            run("std-small", "source_only", small, 1, 1, 10.0),
        ];
        assert!(cv_paired_table(&runs[3..6]).is_empty(), "standard alone");
        let t = cv_paired_table(&runs);
        let rows: Vec<&str> = t.lines().skip(2).collect();
        assert_eq!(rows.len(), 1, "{t}");
        // differences -10, +10, -20: mean -6.7, std 15.3, standard error 8.8
        assert!(
            rows[0].contains(
                "| FSDD | bc (200 epochs) | std (200 epochs) | 3 | 40.0 | 46.7 | 0.86 | -6.7 ± 15.3 | 8.8 | 2 of 3 |"
            ),
            "{t}"
        );
        // standard learning run again with other epochs: a second baseline row
        let mut longer = run("std", "source_only", full, 1, 1, 35.0);
        longer.epochs = 400;
        longer.command.push_str(" --epochs 400");
        let mut with_longer = runs.clone();
        with_longer.push(longer);
        let t = cv_paired_table(&with_longer);
        assert_eq!(t.lines().count(), 4, "{t}");
        assert!(
            t.contains("| bc (200 epochs) | std (400 epochs) | 1 | 30.0 | 35.0 |"),
            "{t}"
        );
        runs.push(run("bc-small", "bc", small, 1, 1, 20.0));
        let t = cv_paired_table(&runs);
        assert!(
            t.contains("| FSDD, limited | bc-small (200 epochs) | std-small (200 epochs) | 1 | 20.0 | 10.0 | 2.00 | +10.0 ± - | - | 0 of 1 |"),
            "{t}"
        );
    }

    #[test]
    fn cv_curves_average_the_folds_at_the_epochs_all_of_them_have() {
        let fold = |f: usize, loss: f64, acc: f64, last: usize| {
            let mut x = r("bc", 1, acc);
            x.fold = Some(f);
            x.curve = (1..=last)
                .map(|e| (e, loss / e as f64, (e % 2 == 0).then_some(acc)))
                .collect();
            x
        };
        let mut other = fold(1, 1.0, 0.5, 2);
        other.pipeline = "std".into();
        let c = cv_curves(&[fold(1, 1.0, 0.8, 4), fold(2, 3.0, 0.6, 4), other]);
        assert_eq!(c.len(), 2);
        let (name, loss, err) = (&c[0].name, &c[0].loss, &c[0].error);
        assert_eq!(name, "bc");
        assert_eq!(loss.len(), 4);
        assert!((loss[0].1 - 2.0).abs() < 1e-9 && (loss[3].1 - 0.5).abs() < 1e-9);
        assert_eq!(err.iter().map(|e| e.0).collect::<Vec<_>>(), vec![2, 4]);
        assert!((err[0].1 - 30.0).abs() < 1e-9, "{err:?}");
        // a fold that stopped early limits the mean to the epochs it has
        let short = fold(3, 1.0, 0.7, 2);
        let c = cv_curves(&[fold(1, 1.0, 0.8, 4), short]);
        assert_eq!(c[0].loss.len(), 2);
        assert_eq!(c[0].error.len(), 1);
        // seeds of one command are one curve over every (fold, seed)
        // (the pipeline's own seed has the bare command, as `scarce cv --seeds` writes it)
        let seeded = |f: usize, seed: u64, acc: f64| {
            let mut x = fold(f, 1.0, acc, 4);
            x.seed = seed;
            x.command = if seed == 1 {
                "scarce cv bc.toml".to_string()
            } else {
                format!("scarce cv bc.toml --seed {seed}")
            };
            x
        };
        let c = cv_curves(&[
            seeded(1, 1, 0.8),
            seeded(2, 1, 0.6),
            seeded(3, 1, 0.1),
            seeded(1, 2, 0.7),
            seeded(2, 2, 0.5),
        ]);
        assert_eq!(c.len(), 1, "{c:?}");
        // fold 3 has seed 1 only, so it is left out
        assert_eq!((c[0].folds, c[0].seeds, c[0].epochs), (2, 2, 200));
        assert!((c[0].error[0].1 - 35.0).abs() < 1e-9, "{:?}", c[0].error);
    }

    #[test]
    fn comparison_reports_change_against_the_first_run() {
        let mut base = r("so", 1, 0.605);
        base.method = "source_only".into();
        let t = comparison(&[base, r("mcd", 1, 0.93)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("pipeline  method"), "{t}");
        // each row names its pipeline: two of one method are told apart
        assert!(
            lines[1].starts_with("so        source_only") && lines[1].contains("60.50%"),
            "{t}"
        );
        assert!(lines[2].starts_with("mcd       mcd"), "{t}");
        assert!(lines[1].trim_end().ends_with('-'), "{t}");
        assert!(
            lines[2].contains("93.00%") && lines[2].contains("+32.5"),
            "{t}"
        );
        let mut other = r("mcd", 1, 0.93);
        other.data = "mnist_test".into();
        let t = comparison(&[r("so", 1, 0.6), other]);
        assert!(t.lines().nth(2).unwrap().trim_end().ends_with("n/a"), "{t}");
    }

    #[test]
    fn comparison_of_open_set_runs_adds_their_metrics() {
        let m = OpenSetMetrics {
            os: 0.721,
            os_star: 0.838,
            all: 0.565,
            unk: Some(0.133),
            h_score: Some(0.229),
        };
        let mut osbp = r("digits-osbp", 1, 0.565);
        osbp.open_set = Some(m);
        let closed = r("mcd", 1, 0.93);
        // closed-set runs alone: no open-set block
        assert!(!comparison(std::slice::from_ref(&closed)).contains("OS*"));
        let t = comparison(&[closed, osbp]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 6, "{t}");
        assert!(lines[3].is_empty(), "{t}");
        assert!(
            lines[4].starts_with("open set (final)") && lines[4].contains("OS*"),
            "{t}"
        );
        let row: Vec<&str> = lines[5].split_whitespace().collect();
        assert_eq!(
            row,
            ["digits-osbp", "72.1%", "83.8%", "56.5%", "13.3%", "22.9%"],
            "{t}"
        );
        // a set without unknown examples has no UNK or H-score
        let known_only = OpenSetMetrics {
            unk: None,
            h_score: None,
            ..m
        };
        let t = open_set_lines("data", &[("usps_test".into(), known_only)]);
        assert!(
            t.lines().nth(1).unwrap().trim_end().ends_with("-      -"),
            "{t}"
        );
        assert_eq!(open_set_lines("data", &[]), "");
    }

    #[test]
    fn a_run_repeating_another_counts_once() {
        let at = |dir: &str, seed: u64, fold: Option<usize>| RunResult {
            dir: PathBuf::from(dir),
            fold,
            ..r("a", seed, 0.9)
        };
        let (kept, dropped) = drop_repeats(vec![
            at("runs/a1", 1, None),
            at("runs/compare/1-a", 1, None),
            at("runs/a2", 2, None),
            at("runs/cv/fold-1", 1, Some(1)),
            at("runs/cv-old/fold-1", 1, Some(1)),
            at("runs/cv/fold-2", 1, Some(2)),
        ]);
        // without summaries to date them, the later of two repeats is the newer
        let dirs: Vec<&str> = kept.iter().map(|r| r.dir.to_str().unwrap()).collect();
        assert_eq!(
            dirs,
            [
                "runs/compare/1-a",
                "runs/a2",
                "runs/cv-old/fold-1",
                "runs/cv/fold-2"
            ]
        );
        assert_eq!(
            dropped,
            [
                (PathBuf::from("runs/a1"), PathBuf::from("runs/compare/1-a")),
                (
                    PathBuf::from("runs/cv/fold-1"),
                    PathBuf::from("runs/cv-old/fold-1")
                ),
            ]
        );
        // another setting or device is another run, not a repeat
        let mut edited = at("runs/b", 1, None);
        edited.pipeline_text = "edited".into();
        assert_eq!(
            drop_repeats(vec![at("runs/a1", 1, None), edited]).0.len(),
            2
        );
        let mut gpu = at("runs/g", 1, None);
        gpu.device = "cuda:0".into();
        assert_eq!(drop_repeats(vec![at("runs/a1", 1, None), gpu]).0.len(), 2);
        // the run whose summary was written last is kept, wherever it is in the list
        let tmp = tempfile::tempdir().unwrap();
        for (name, age) in [("new", 0), ("old", 3600)] {
            std::fs::create_dir(tmp.path().join(name)).unwrap();
            let f = std::fs::File::create(tmp.path().join(name).join(SUMMARY_FILE)).unwrap();
            f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age))
                .unwrap();
        }
        let dated = |name: &str| RunResult {
            dir: tmp.path().join(name),
            ..r("a", 1, 0.9)
        };
        let (kept, _) = drop_repeats(vec![dated("new"), dated("old")]);
        assert_eq!(kept[0].dir, tmp.path().join("new"));
    }

    #[test]
    fn groups_by_pipeline_with_mean_and_sample_std() {
        let t = table(
            &[
                r("a", 1, 0.90),
                r("a", 2, 0.92),
                r("a", 3, 0.94),
                r("b", 1, 0.5),
            ],
            Some(0.9),
        );
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 4, "{t}");
        assert!(rows[2].contains("| 92.0 ± 2.0 |"), "{t}");
        assert!(rows[2].contains("| 1, 2, 3 |"), "{t}");
        assert!(rows[2].contains("| 2.0 (epoch 40) |"), "time to 90%: {t}");
        // one seed: no spread to give
        assert!(rows[3].contains("| usps_test | 50.0 | 50.0 |"), "{t}");
        assert!(rows[2].contains("`scarce train pipelines/x.toml --seed N`"));
    }

    #[test]
    fn canonical_settings_ignore_comments_and_order() {
        let a = canonical("# one\n[t]\nb = 2 # two\na = 1\n");
        assert_eq!(a, canonical("[t]\na = 1\n\n\nb = 2\n"));
        assert_ne!(a, canonical("[t]\na = 1\nb = 3\n"));
        let p = canonical("[pipeline]\nname = \"x\"\ntask = \"A\"\n");
        assert_eq!(p, canonical("[pipeline]\nname = \"x\"\ntask = \"B\"\n"));
        assert_ne!(p, canonical("[pipeline]\nname = \"y\"\ntask = \"A\"\n"));
    }

    #[test]
    fn runs_of_an_edited_pipeline_file_are_another_row() {
        let mut edited = r("a", 3, 0.5);
        edited.pipeline_text.push_str("\nepochs = 5");
        let t = table(&[r("a", 1, 0.9), r("a", 2, 0.9), edited], None);
        assert_eq!(t.lines().count(), 4, "{t}");
        assert!(
            t.contains("| 90.0 ± 0.0 |") && t.contains("| usps_test | 50.0 |"),
            "{t}"
        );
    }
}
