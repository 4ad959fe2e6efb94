//! `scarce cv --jobs N`: trains several folds at once, each in its own `scarce train`
//! process with its share of the cores.
//!
//! One training process per core pair or per core uses a small machine better than one
//! process with every core: the network's layers are too small to keep several threads
//! busy, and separate processes share nothing. Each child is told how many threads to
//! use (`RAYON_NUM_THREADS`, unless the caller set it), runs quietly, and writes its
//! usual run folder, so finished folds are reused and an interrupted one resumes exactly
//! as in a sequential cross-validation.

use scarce::item::EpochMetrics;
use scarce::pipeline::assemble::FoldCounts;
use scarce::results::RunResult;
use scarce::sink::progress::EpochNote;
use scarce::train::session;
use scarce::train::TrainStop;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One fold of one seed of one pipeline to train.
#[derive(Clone)]
pub struct CvTask {
    /// Place in the whole plan (1-based), for `[step/total]` lines.
    pub step: usize,
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// `--seed` for the run (`None`: the pipeline's).
    pub seed: Option<u64>,
    /// What tells the task apart besides its fold: `"NAME, "` when several pipelines
    /// run, `"seed S, "` when several seeds do, else empty.
    pub note: String,
    /// Held-out fold.
    pub fold: usize,
    /// Name of the held-out fold (FSDD: the speaker).
    pub fold_name: String,
    /// Run folder.
    pub dir: PathBuf,
    /// The folder holds a checkpoint to resume from.
    pub resume: bool,
    /// The work the run has left, which the time it takes follows: the examples it
    /// trains on (epochs left x training examples per epoch) and the recordings it tests
    /// (evaluations left x recordings evaluated), each test weighing [`EVAL_WEIGHT`]
    /// training examples.
    pub work: f64,
    /// The run's epochs in all.
    pub epochs: usize,
    /// Epochs its checkpoint holds (0 for a fold not started).
    pub done: usize,
    /// Examples it trains on per epoch.
    pub train_examples: usize,
    /// Recordings it tests at each evaluated epoch.
    pub tested: usize,
}

impl CvTask {
    /// The line announcing the fold: `[step/total] NOTE fold K (NAME held out) -> DIR`.
    pub fn start_line(&self, total: usize) -> String {
        format!(
            "[{}/{total}] {}fold {} ({} held out) -> {}{}",
            self.step,
            self.note,
            self.fold,
            self.fold_name,
            self.dir.display(),
            if self.resume { " (resuming)" } else { "" }
        )
    }
}

/// What `scarce cv` does with one pipeline file: the run folder of each seed and the
/// folds to hold out.
pub struct CvPlan {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// The pipeline's name.
    pub name: String,
    /// Run folder of the pipeline's own seed (`--out`, else `runs/cv-NAME`).
    pub base: PathBuf,
    /// (`--seed` for the runs, their folder): the pipeline's own seed keeps `base`,
    /// another seed S gets `base-sS`.
    pub roots: Vec<(Option<u64>, PathBuf)>,
    folds: Vec<usize>,
    /// What a run holding out each fold trains on and tests.
    counts: FoldCounts,
    /// `[train] eval_every`.
    eval_every: usize,
    several_seeds: bool,
    own_seed: Option<u64>,
    own_epochs: Option<usize>,
    /// `--epochs`, as given.
    epochs_arg: Option<usize>,
    /// `--data-dir`, as given.
    data_dir_arg: Option<PathBuf>,
}

impl CvPlan {
    /// Reads the pipeline and its data set's folds. `folds` and `seeds` empty: every
    /// fold, and `seed_epochs.0` (else the pipeline's seed); `seed_epochs` are `--seed`
    /// and `--epochs`.
    pub fn new(
        pipeline: &Path,
        folds: &[usize],
        seeds: &[u64],
        out: Option<PathBuf>,
        seed_epochs: (Option<u64>, Option<usize>),
        data_dir: &scarce::data::DataDir,
        data_dir_arg: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let (seed, epochs) = seed_epochs;
        let (file, _) = session::load_pipeline(pipeline, epochs)?;
        let counts = file.fold_counts(data_dir)?;
        let available = counts.names.len();
        let folds: Vec<usize> = if folds.is_empty() {
            (1..=available).collect()
        } else {
            folds.to_vec()
        };
        if let Some(bad) = folds.iter().find(|f| !(1..=available).contains(*f)) {
            anyhow::bail!(
                "fold {bad} does not exist: the data set of {} has folds 1-{available}",
                pipeline.display()
            );
        }
        let name = file.spec.pipeline.name.clone();
        let base = out.unwrap_or_else(|| PathBuf::from("runs").join(format!("cv-{name}")));
        let own_seed = file.spec.train.as_ref().map(|t| t.get_ref().seed);
        // (--epochs is already applied to the loaded pipeline)
        let own_epochs = file
            .spec
            .train
            .as_ref()
            .map(|t| *t.get_ref().epochs.get_ref());
        let eval_every = file
            .spec
            .train
            .as_ref()
            .and_then(|t| t.get_ref().eval_every.as_ref())
            .map_or(1, |e| *e.get_ref());
        let roots = if seeds.is_empty() {
            vec![(seed, base.clone())]
        } else {
            seeds
                .iter()
                .map(|&s| {
                    let root = if Some(s) == own_seed {
                        base.clone()
                    } else {
                        let mut name = base.clone().into_os_string();
                        name.push(format!("-s{s}"));
                        PathBuf::from(name)
                    };
                    (Some(s), root)
                })
                .collect()
        };
        Ok(Self {
            pipeline: pipeline.to_path_buf(),
            name,
            base,
            roots,
            folds,
            counts,
            eval_every,
            several_seeds: !seeds.is_empty(),
            own_seed,
            own_epochs,
            epochs_arg: epochs,
            data_dir_arg: data_dir_arg.map(Path::to_path_buf),
        })
    }

    /// Folds to hold out over all seeds.
    pub fn len(&self) -> usize {
        self.roots.len() * self.folds.len()
    }

    /// Appends the folds still to train to `tasks` and the finished ones (by step) to
    /// `finished`, numbering them from `*step + 1` on. `name`: the pipeline's name,
    /// to tell it apart from the others in the lines printed.
    pub fn tasks(
        &self,
        name: Option<&str>,
        step: &mut usize,
        total: usize,
        tasks: &mut Vec<CvTask>,
        finished: &mut Vec<(usize, RunResult)>,
    ) -> anyhow::Result<()> {
        for (seed, root) in &self.roots {
            for &fold in &self.folds {
                *step += 1;
                let mut note = name.map_or(String::new(), |n| format!("{n}, "));
                if let (true, Some(s)) = (self.several_seeds, seed) {
                    note.push_str(&format!("seed {s}, "));
                }
                let dir = root.join(format!("fold-{fold}"));
                // a fold folder left by another seed, epoch count, data folder or
                // pipeline (another file, or this one since edited) is neither reused
                // nor resumed
                let wanted = seed.or(self.own_seed).unwrap_or(1);
                if let Ok(earlier) = session::RunSettings::load(&dir) {
                    anyhow::ensure!(
                        earlier.seed == wanted,
                        "{} holds a run with seed {}, not {wanted}: choose another --out (or --seeds, which gives each seed its own folder)",
                        dir.display(),
                        earlier.seed
                    );
                }
                let asked = session::Wanted {
                    seed: *seed,
                    epochs: self.epochs_arg,
                    fold: Some(fold),
                    data_dir: self.data_dir_arg.as_deref(),
                };
                if let session::EarlierRun::Finished(r) =
                    session::earlier_run(&dir, &self.pipeline, &asked)?
                {
                    eprintln!(
                        "[{step}/{total}] {note}fold {fold}: finished earlier ({})",
                        dir.display()
                    );
                    finished.push((*step, *r));
                    continue;
                }
                let latest = scarce::train::checkpoint::latest(&dir)?;
                // a resumed fold has only the epochs after its checkpoint left to train
                let epochs_done = latest.as_ref().map_or(0, |(_, state)| state.epoch);
                let epochs = self.own_epochs.unwrap_or(1);
                tasks.push(CvTask {
                    step: *step,
                    pipeline: self.pipeline.clone(),
                    seed: *seed,
                    note,
                    fold,
                    fold_name: self.counts.names[fold - 1].clone(),
                    dir,
                    resume: latest.is_some(),
                    work: fold_work(
                        epochs_done,
                        epochs,
                        self.eval_every,
                        self.counts.train[fold - 1],
                        self.counts.evaluated[fold - 1],
                    ),
                    epochs,
                    done: epochs_done,
                    train_examples: self.counts.train[fold - 1],
                    tested: self.counts.evaluated[fold - 1],
                });
            }
        }
        Ok(())
    }
}

/// What testing one recording weighs against training on one example, in time: ten
/// crops, each a forward pass, where training is a forward and a backward pass.
/// Measured on FSDD's small EnvNet-v2 (BC learning, one thread, two folds side by side):
/// 4.4-5.5 ms per training example and 15-25 ms per recording tested, a ratio of 3.0 to
/// 5.7 (the lower end on a quiet machine).
pub const EVAL_WEIGHT: f64 = 3.0;

/// The work left to a run after `done` of its `epochs` epochs (see [`CvTask::work`]):
/// it evaluates every `eval_every` epochs and after the last.
pub fn fold_work(
    done: usize,
    epochs: usize,
    eval_every: usize,
    train: usize,
    evaluated: usize,
) -> f64 {
    let every = eval_every.max(1);
    let evals =
        |upto: usize| upto / every + usize::from(upto == epochs && !upto.is_multiple_of(every));
    let evals_left = evals(epochs).saturating_sub(evals(done.min(epochs)));
    let epochs_left = epochs.saturating_sub(done);
    (epochs_left * train) as f64 + evals_left as f64 * evaluated as f64 * EVAL_WEIGHT
}

/// Time left in a queue of folds. A fold's time is taken to follow its work
/// ([`CvTask::work`]): each pipeline's folds are expected to go at the pace its finished
/// ones went, in minutes per unit of work. A pipeline none of whose folds has finished
/// yet is counted at the pace of all finished folds; before any fold has finished, at
/// the pace the running folds have kept so far (their epochs in `metrics.jsonl`). Both
/// make the estimate rough.
#[derive(Clone, Default)]
pub struct QueueClock {
    /// (pipeline, minutes, work) of every finished fold.
    timed: Vec<(PathBuf, f64, f64)>,
}

/// What a running fold's metrics show done in this session.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    /// Minutes from the fold's start to its latest epoch line.
    pub minutes: f64,
    /// Work done by then, in the units of [`CvTask::work`].
    pub work: f64,
}

impl Progress {
    /// Adds epoch `m` of `task`, written `minutes` into the fold.
    fn add(&mut self, task: &CvTask, m: &EpochMetrics, minutes: f64) {
        self.minutes = minutes;
        self.work += task.train_examples as f64;
        if !m.eval.is_empty() {
            self.work += task.tested as f64 * EVAL_WEIGHT;
        }
    }
}

/// A fold under way.
pub struct UnderWay<'a> {
    /// The fold.
    pub task: &'a CvTask,
    /// Minutes since it started.
    pub minutes: f64,
    /// What it has done.
    pub done: Progress,
}

/// How long folds take.
#[derive(Clone, Copy)]
enum Pace {
    /// Minutes per unit of work.
    PerWork(f64),
    /// Minutes per fold, where folds have no count of their work.
    PerFold(f64),
}

impl QueueClock {
    /// Records a finished fold that took `minutes` (a resumed one: for the work it had
    /// left).
    pub fn finished(&mut self, task: &CvTask, minutes: f64) {
        self.timed.push((task.pipeline.clone(), minutes, task.work));
    }

    /// The pace of `pipeline`'s folds, and whether it comes from its own finished folds;
    /// `None` before any fold has finished or shown progress.
    fn pace(&self, pipeline: &Path, running: &[UnderWay]) -> Option<(Pace, bool)> {
        let finished = |own: bool| {
            let folds = self.timed.iter().filter(|t| !own || t.0 == pipeline);
            let (n, minutes, work) =
                folds.fold((0usize, 0.0, 0.0), |(n, m, w), t| (n + 1, m + t.1, w + t.2));
            match n {
                0 => None,
                // without a count of examples, the mean time of a fold
                _ if work <= 0.0 => Some(Pace::PerFold(minutes / n as f64)),
                _ => Some(Pace::PerWork(minutes / work)),
            }
        };
        let partial = |own: bool| {
            let (minutes, work) = running
                .iter()
                .filter(|r| r.done.work > 0.0 && (!own || r.task.pipeline == pipeline))
                .fold((0.0, 0.0), |(m, w), r| {
                    (m + r.done.minutes, w + r.done.work)
                });
            (work > 0.0).then(|| Pace::PerWork(minutes / work))
        };
        finished(true)
            .map(|p| (p, true))
            .or_else(|| finished(false).map(|p| (p, false)))
            .or_else(|| partial(true).map(|p| (p, false)))
            .or_else(|| partial(false).map(|p| (p, false)))
    }

    /// Minutes until the queue is done with `jobs` folds at a time: `running` are the
    /// folds under way, `queued` the folds not started, in order; each starts on the
    /// first free slot. With the estimate comes whether it is rough. `None` before any
    /// fold has finished or shown progress.
    pub fn left(
        &self,
        jobs: usize,
        running: &[UnderWay],
        queued: &[CvTask],
    ) -> Option<(f64, bool)> {
        let mut rough = false;
        let mut pace = |t: &CvTask| {
            let (p, own) = self.pace(&t.pipeline, running)?;
            rough |= !own;
            Some(p)
        };
        let mut slots = vec![0.0f64; jobs.max(running.len()).max(1)];
        for (slot, r) in slots.iter_mut().zip(running) {
            *slot = match pace(r.task)? {
                // from the work still to do after its latest epoch, less the time
                // since that epoch
                Pace::PerWork(p) if r.done.work > 0.0 => {
                    p * (r.task.work - r.done.work) - (r.minutes - r.done.minutes)
                }
                Pace::PerWork(p) => p * r.task.work - r.minutes,
                Pace::PerFold(m) => m - r.minutes,
            }
            .max(0.0);
        }
        for t in queued {
            let m = match pace(t)? {
                Pace::PerWork(p) => p * t.work,
                Pace::PerFold(m) => m,
            };
            let first_free = slots
                .iter_mut()
                .min_by(|a, b| a.total_cmp(b))
                .expect("at least one slot");
            *first_free += m;
        }
        let end = slots.iter().copied().fold(0.0, f64::max);
        Some((end, rough))
    }
}

/// `; N folds left, about T` for a finished fold's line (nothing when none is left or
/// no estimate exists yet).
pub fn left_note(folds_left: usize, estimate: Option<(f64, bool)>) -> String {
    if folds_left == 0 {
        return String::new();
    }
    let plural = if folds_left == 1 { "" } else { "s" };
    match estimate {
        Some((minutes, rough)) => format!(
            "; {folds_left} fold{plural} left, {}{}",
            duration_text(minutes),
            if rough { " (rough)" } else { "" }
        ),
        None => format!("; {folds_left} fold{plural} left"),
    }
}

/// `about 25 min`, `about 1 h`, `about 1 h 40 min`, rounded to the minute, or `under
/// 1 min`.
fn duration_text(minutes: f64) -> String {
    let m = minutes.max(0.0).round() as u64;
    match (m / 60, m % 60) {
        (0, 0) => "under 1 min".to_string(),
        (0, m) => format!("about {m} min"),
        (h, 0) => format!("about {h} h"),
        (h, m) => format!("about {h} h {m} min"),
    }
}

/// For a fold trained in this process (`--jobs 1`), starting now: at each evaluated
/// epoch before its last, the note `; N folds left, about T` for its epoch line, counting
/// it and the `queued` folds after it.
pub fn queue_note(task: &CvTask, clock: &QueueClock, queued: &[CvTask]) -> EpochNote {
    let (task, clock, queued) = (task.clone(), clock.clone(), queued.to_vec());
    let started = Instant::now();
    // (the last epoch counted, the progress): each progress stage of the pipeline
    // shows every epoch, and each is counted once
    let progress = Mutex::new((0usize, Progress::default()));
    EpochNote(Arc::new(move |m: &EpochMetrics| {
        let minutes = started.elapsed().as_secs_f64() / 60.0;
        let mut guard = progress.lock().unwrap_or_else(|e| e.into_inner());
        let (seen, done) = &mut *guard;
        if m.epoch > *seen {
            *seen = m.epoch;
            done.add(&task, m, minutes);
        }
        if m.eval.is_empty() || m.epoch >= task.epochs {
            return None;
        }
        let running = [UnderWay {
            task: &task,
            minutes,
            done: *done,
        }];
        drop(guard);
        Some(left_note(
            1 + queued.len(),
            clock.left(1, &running, &queued),
        ))
    }))
}

/// Settings every child gets.
pub struct ChildOptions<'a> {
    /// `--data-dir`.
    pub data_dir: Option<&'a Path>,
    /// `--epochs`.
    pub epochs: Option<usize>,
    /// `--device`.
    pub device: &'a str,
    /// `--quiet`: no line at each evaluated epoch of a fold.
    pub quiet: bool,
}

/// Reads the evaluated epochs a running fold writes to its `metrics.jsonl`.
struct EvalFollower {
    path: PathBuf,
    /// The last epoch seen.
    seen: usize,
    /// What the epochs seen add up to in this session.
    progress: Progress,
}

impl EvalFollower {
    /// Follows the metrics of run folder `dir` after epoch `done`, the epoch its
    /// checkpoint holds. The epochs after it that a stopped run had written are taken
    /// out of the file first, as the resumed run does, so they are not reported before
    /// they are trained again.
    fn new(dir: &Path, done: usize) -> Self {
        if dir.exists() {
            // the child trims them too; a failure here only loses progress lines
            let _ = scarce::sink::metrics::load_history(dir, done, &[]);
        }
        Self {
            path: dir.join("metrics.jsonl"),
            seen: done,
            progress: Progress::default(),
        }
    }

    /// (epoch, first evaluation set, its accuracy) of each evaluated epoch of `task`
    /// written since the last call, `minutes` into the fold; adds the epochs to its
    /// progress.
    fn new_evals(&mut self, task: &CvTask, minutes: f64) -> Vec<(usize, String, f64)> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let fresh: Vec<EpochMetrics> = text
            .lines()
            // a line still being written does not parse, and waits for the next look
            .filter_map(|l| serde_json::from_str::<EpochMetrics>(l).ok())
            .filter(|m| m.epoch > self.seen)
            .collect();
        for m in &fresh {
            self.seen = m.epoch;
            self.progress.add(task, m, minutes);
        }
        fresh
            .into_iter()
            .filter_map(|m| {
                let (set, accuracy) = m.eval.into_iter().next()?;
                Some((m.epoch, set, accuracy))
            })
            .collect()
    }
}

/// The line for an evaluated epoch of a running fold (not its last, whose error the
/// fold's end line gives).
fn eval_line(task: &CvTask, epoch: usize, set: &str, accuracy: f64) -> Option<String> {
    (epoch < task.epochs).then(|| {
        format!(
            "  {}fold {}: epoch {epoch} of {}, {set} error {:.1}%",
            task.note,
            task.fold,
            task.epochs,
            100.0 * (1.0 - accuracy)
        )
    })
}

/// A child's own words on an interrupt (its `stopping:` line and its resume hint),
/// which the parent says once for the whole queue instead.
fn is_interrupt_line(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("stopping: ")
        || line.starts_with("interrupted after epoch ")
        || line.starts_with("forced stop")
}

/// Writes the state of a checkpoint of `epoch` into run folder `run` and points
/// `latest` at it (no weights: enough for what reads only the state).
#[cfg(test)]
pub(crate) fn checkpoint_state_at(run: &Path, epoch: usize) {
    let name = format!("epoch-{epoch:04}");
    let ckpt = run.join("checkpoints").join(&name);
    std::fs::create_dir_all(&ckpt).unwrap();
    let state = scarce::train::checkpoint::CheckpointState {
        epoch,
        elapsed_s: 1.0,
        seed: 1,
        version: "test".into(),
    };
    std::fs::write(
        ckpt.join("state.json"),
        serde_json::to_string(&state).unwrap(),
    )
    .unwrap();
    std::fs::write(run.join("checkpoints/latest"), name).unwrap();
}

/// How the parallel part ended.
pub enum Outcome {
    /// Every task finished.
    Done,
    /// Ctrl-C: the running folds stopped after checkpointing.
    Interrupted,
}

/// Threads per child: the caller's `RAYON_NUM_THREADS` if set, else the machine's
/// cores shared evenly (at least one each).
pub fn threads_per_job(jobs: usize) -> Option<usize> {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some((cores / jobs.max(1)).max(1))
}

/// The `scarce train` arguments of one task.
pub fn child_args(task: &CvTask, opts: &ChildOptions) -> Vec<String> {
    let mut a = vec!["train".to_string()];
    if task.resume {
        a.extend(["--resume".into(), task.dir.display().to_string()]);
    } else {
        a.push(task.pipeline.display().to_string());
        a.extend(["--out".into(), task.dir.display().to_string()]);
    }
    a.extend(["--fold".into(), task.fold.to_string()]);
    if let Some(s) = task.seed {
        a.extend(["--seed".into(), s.to_string()]);
    }
    if let Some(e) = opts.epochs {
        a.extend(["--epochs".into(), e.to_string()]);
    }
    if let Some(d) = opts.data_dir {
        a.extend(["--data-dir".into(), d.display().to_string()]);
    }
    a.extend(["--device".into(), opts.device.to_string(), "--quiet".into()]);
    a
}

/// How often `run_parallel` reads the running folds' metrics.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// The folds still to start, from `next` on; none once the queue is `stopping` (after
/// a failure or Ctrl-C no queued fold starts).
fn still_queued(tasks: &[CvTask], next: usize, stopping: bool) -> &[CvTask] {
    if stopping {
        &tasks[tasks.len()..]
    } else {
        &tasks[next..]
    }
}

/// The folds under way, for the clock.
fn under_way<'a>(running: &[Running], tasks: &'a [CvTask]) -> Vec<UnderWay<'a>> {
    running
        .iter()
        .map(|r| UnderWay {
            task: &tasks[r.task],
            minutes: r.started.elapsed().as_secs_f64() / 60.0,
            done: r.evals.progress,
        })
        .collect()
}

struct Running {
    task: usize,
    child: Child,
    started: Instant,
    forward: std::thread::JoinHandle<()>,
    /// The child said it is stopping (it saw a Ctrl-C).
    saw_stop: Arc<AtomicBool>,
    /// The parent passed a Ctrl-C on to it (it did not see the terminal's).
    signalled: bool,
    evals: EvalFollower,
}

/// Runs `tasks` with at most `jobs` children at once. `done(i)` is called in the parent
/// for each task that finished; it reads the run folder's result and returns a line to
/// print. After a failure no further task starts, and the error comes once the running
/// ones have ended. Ctrl-C (the `stop` flags) starts no further task and waits for the
/// running ones, which stop on the same signal (the first at the end of their epoch,
/// after checkpointing it; the second at once); a child that did not say that it saw
/// the signal (the parent alone was signalled) is sent one after a moment.
pub fn run_parallel(
    tasks: &[CvTask],
    jobs: usize,
    total: usize,
    opts: &ChildOptions,
    stop: &TrainStop,
    mut done: impl FnMut(usize) -> anyhow::Result<String>,
) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find the scarce executable to start folds: {e}"))?;
    let threads = threads_per_job(jobs);
    let mut next = 0;
    let mut running: Vec<Running> = Vec::new();
    let mut failure: Option<String> = None;
    let mut stop_seen: Option<Instant> = None;
    let mut signalled = false;
    let mut signalled_again = false;
    let mut stopped_folds = 0;
    let mut clock = QueueClock::default();
    let mut last_look = Instant::now();
    loop {
        while failure.is_none() && !stop.requested() && running.len() < jobs && next < tasks.len() {
            let t = &tasks[next];
            let mut cmd = Command::new(&exe);
            cmd.args(child_args(t, opts))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if let Some(n) = threads {
                cmd.env("RAYON_NUM_THREADS", n.to_string());
            }
            eprintln!(
                "{}{}",
                t.start_line(total),
                threads.map_or(String::new(), |n| format!(
                    ", {n} thread{}",
                    if n == 1 { "" } else { "s" }
                )),
            );
            // before the child starts, so that none of its lines is taken for an old one
            let evals = EvalFollower::new(&t.dir, t.done);
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    // the folds already running are let finish
                    failure = Some(format!("cannot start {}: {e}", exe.display()));
                    break;
                }
            };
            let prefix = format!("  {}fold {}: ", t.note, t.fold);
            let stderr = child.stderr.take().expect("piped");
            let saw_stop = Arc::new(AtomicBool::new(false));
            let seen = Arc::clone(&saw_stop);
            let forward = std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.starts_with("stopping: ") {
                        seen.store(true, Ordering::Release);
                    }
                    // on Ctrl-C the parent says what stops and how to go on, once for all
                    if !line.trim().is_empty() && !is_interrupt_line(&line) {
                        eprintln!("{prefix}{line}");
                    }
                }
            });
            running.push(Running {
                task: next,
                child,
                started: Instant::now(),
                forward,
                saw_stop,
                signalled: false,
                evals,
            });
            next += 1;
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if stop.requested() {
            // a child that got the terminal's signal says so at once; one that did not
            // is sent it (a second signal would stop it without finishing its epoch)
            let since = *stop_seen.get_or_insert_with(Instant::now);
            if !signalled && since.elapsed() > Duration::from_secs(3) {
                for r in running
                    .iter_mut()
                    .filter(|r| !r.saw_stop.load(Ordering::Acquire))
                {
                    interrupt(&r.child);
                    r.signalled = true;
                }
                signalled = true;
            }
            // the second Ctrl-C (stop at once) reaches the children signalled above the
            // same way, a moment after the first so that it is not taken for a repeat
            if stop.now.is_stopped() && !signalled_again && since.elapsed() > Duration::from_secs(5)
            {
                for r in running.iter().filter(|r| r.signalled) {
                    interrupt(&r.child);
                }
                signalled_again = true;
            }
        }
        // each running fold's evaluated epochs since the last look (every few seconds:
        // the files grow with every epoch), with the time left
        let mut lines = Vec::new();
        if last_look.elapsed() >= LOOK_EVERY {
            last_look = Instant::now();
            for r in &mut running {
                let t = &tasks[r.task];
                let minutes = r.started.elapsed().as_secs_f64() / 60.0;
                for (epoch, set, accuracy) in r.evals.new_evals(t, minutes) {
                    lines.extend(eval_line(t, epoch, &set, accuracy));
                }
            }
        }
        if !lines.is_empty() && !opts.quiet {
            let under_way = under_way(&running, tasks);
            let queued = still_queued(tasks, next, failure.is_some() || stop.requested());
            let estimate = clock.left(jobs, &under_way, queued);
            let left = left_note(under_way.len() + queued.len(), estimate);
            for line in lines {
                eprintln!("{line}{left}");
            }
        }
        let mut i = 0;
        while i < running.len() {
            let status = running[i].child.try_wait()?;
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let mut r = running.swap_remove(i);
            let _ = r.forward.join();
            let t = &tasks[r.task];
            let minutes = r.started.elapsed().as_secs_f64() / 60.0;
            // what it wrote since the last look (the fold's end line follows)
            for (epoch, set, accuracy) in r.evals.new_evals(t, minutes) {
                if let (Some(line), false) = (eval_line(t, epoch, &set, accuracy), opts.quiet) {
                    eprintln!("{line}");
                }
            }
            if status.success() {
                clock.finished(t, minutes);
                match done(r.task) {
                    Ok(line) => {
                        let under_way = under_way(&running, tasks);
                        let stopping = failure.is_some() || stop.requested();
                        let queued = still_queued(tasks, next, stopping);
                        let estimate = clock.left(jobs, &under_way, queued);
                        let left = left_note(under_way.len() + queued.len(), estimate);
                        eprintln!(
                            "[{}/{total}] {}fold {}: {line} ({minutes:.1} min){left}",
                            t.step, t.note, t.fold
                        );
                    }
                    Err(e) => {
                        failure.get_or_insert(format!("{e:#}"));
                    }
                }
            } else if stop.requested() || interrupted(&status) {
                eprintln!(
                    "[{}/{total}] {}fold {}: stopped; {}",
                    t.step,
                    t.note,
                    t.fold,
                    where_it_continues(&t.dir)
                );
                stop.at_epoch_end.stop();
                stopped_folds += 1;
            } else if failure.is_none() {
                failure = Some(format!(
                    "{}fold {} ({}) failed ({status}): its messages are above, prefixed with its fold (no further fold was started; those already running were let finish)",
                    t.note,
                    t.fold,
                    t.dir.display()
                ));
            }
        }
    }
    if let Some(f) = failure {
        anyhow::bail!(f);
    }
    // a stop as the last folds finished their last epoch leaves nothing to continue
    Ok(
        if stopped_folds > 0 || (stop.requested() && next < tasks.len()) {
            Outcome::Interrupted
        } else {
            Outcome::Done
        },
    )
}

/// Where a stopped fold in `dir` is taken up again.
fn where_it_continues(dir: &Path) -> String {
    match scarce::train::checkpoint::latest(dir) {
        Ok(Some((_, state))) => format!(
            "it continues from epoch {} (its checkpoint of epoch {})",
            state.epoch.saturating_add(1),
            state.epoch
        ),
        Ok(None) => "it had no checkpoint yet and starts again from epoch 1".to_string(),
        Err(_) => "it continues from its last checkpoint".to_string(),
    }
}

fn interrupted(status: &ExitStatus) -> bool {
    if status.code() == Some(130) {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(libc::SIGINT)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Asks a child to stop as Ctrl-C would (it checkpoints and exits with 130).
fn interrupt(child: &Child) {
    #[cfg(unix)]
    {
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on our own child's pid; no memory is touched.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = child;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(resume: bool) -> CvTask {
        CvTask {
            step: 1,
            pipeline: PathBuf::from("p.toml"),
            seed: Some(3),
            note: String::new(),
            fold: 2,
            fold_name: "jackson".into(),
            dir: PathBuf::from("runs/cv-x/fold-2"),
            resume,
            work: 0.0,
            epochs: 8,
            done: 0,
            train_examples: 0,
            tested: 0,
        }
    }

    /// `estimate` is `minutes`, within rounding, and `rough` or not.
    #[track_caller]
    fn close(estimate: Option<(f64, bool)>, minutes: f64, rough: bool) {
        let (m, r) = estimate.expect("an estimate");
        assert!((m - minutes).abs() < 1e-9, "{m} minutes, not {minutes}");
        assert_eq!(r, rough);
    }

    /// A fold of `pipeline` training on `work` examples in all.
    fn fold(pipeline: &str, work: f64, resume: bool) -> CvTask {
        CvTask {
            pipeline: PathBuf::from(pipeline),
            work,
            ..task(resume)
        }
    }

    #[test]
    fn queue_clock_schedules_the_folds_left_on_free_slots() {
        let bc = |work| fold("bc.toml", work, false);
        let std = |work| fold("std.toml", work, false);
        let mut clock = QueueClock::default();
        assert_eq!(clock.left(2, &[], &[bc(100.0)]), None, "nothing timed yet");
        clock.finished(&bc(100.0), 8.0);
        clock.finished(&bc(100.0), 10.0);
        // one BC fold 3 minutes in (6 left), three queued at 9 each on two slots:
        // [6, 0] -> [6, 9] -> [15, 9] -> [15, 18]
        let running = bc(100.0);
        close(
            clock.left(
                2,
                &[under(&running, 3.0)],
                &[bc(100.0), bc(100.0), bc(100.0)],
            ),
            18.0,
            false,
        );
        // a fold past its estimate has nothing left
        close(clock.left(2, &[under(&running, 12.0)], &[]), 0.0, false);
        // one fold at a time: the sum
        close(clock.left(1, &[], &[bc(100.0), bc(100.0)]), 18.0, false);
        // a fold of a fifth of the work (fewer examples or epochs) takes a fifth
        close(clock.left(1, &[], &[bc(20.0)]), 1.8, false);
        // a pipeline with no finished fold goes at the pace of all folds, and is rough:
        // half BC's work, half its time
        close(clock.left(2, &[], &[std(50.0), std(50.0)]), 4.5, true);
        // once one of its folds is timed, at its own pace (twice BC's here)
        clock.finished(&std(50.0), 9.0);
        close(
            clock.left(2, &[], &[std(50.0), std(50.0), bc(100.0)]),
            9.0 + 9.0,
            false,
        );
    }

    /// `task` under way for `minutes`, with no epoch seen yet.
    fn under(task: &CvTask, minutes: f64) -> UnderWay<'_> {
        UnderWay {
            task,
            minutes,
            done: Progress::default(),
        }
    }

    #[test]
    fn queue_clock_follows_running_folds_progress() {
        let bc = |work| fold("bc.toml", work, false);
        let std = |work| fold("std.toml", work, false);
        let (a, b) = (bc(100.0), bc(100.0));
        let mut clock = QueueClock::default();
        // nothing finished and no epoch seen: no estimate
        assert_eq!(clock.left(2, &[under(&a, 1.0), under(&b, 1.0)], &[]), None);
        // before any fold has finished, the pace of the running folds' epochs (rough):
        // a fifth of a's work in 2 minutes, a tenth of b's in 1: 0.1 min per unit
        let seen = |task, minutes, at, work| UnderWay {
            task,
            minutes,
            done: Progress { minutes: at, work },
        };
        let running = [seen(&a, 2.5, 2.0, 20.0), seen(&b, 1.0, 1.0, 10.0)];
        // a: 80 left = 8 min less the 0.5 since its last epoch: 7.5; b: 9; then a
        // queued standard-learning fold of 50 (5 min) starts on a's slot: 12.5
        close(clock.left(2, &running, &[std(50.0)]), 12.5, true);
        // once a fold has finished, its pace counts (not rough for its pipeline), and
        // running folds take it for the work they have left
        clock.finished(&bc(100.0), 20.0);
        let running = [seen(&a, 10.0, 10.0, 50.0)];
        close(clock.left(1, &running, &[]), 10.0, false);
        // a running fold past its estimate has nothing left
        let running = [seen(&a, 30.0, 25.0, 99.0)];
        close(clock.left(1, &running, &[]), 0.0, false);
    }

    #[test]
    fn queue_clock_times_resumed_folds_by_the_work_they_had_left() {
        let mut clock = QueueClock::default();
        // resumed with a quarter of its epochs left: 2 minutes for a quarter of the work
        clock.finished(&fold("bc.toml", 25.0, true), 2.0);
        close(
            clock.left(1, &[], &[fold("bc.toml", 100.0, false)]),
            8.0,
            false,
        );
        // one resumed at its last checkpoint, with nothing left to train
        close(
            clock.left(1, &[], &[fold("bc.toml", 0.0, true)]),
            0.0,
            false,
        );
    }

    #[test]
    fn queue_clock_without_a_count_of_examples_takes_the_mean_fold() {
        let mut clock = QueueClock::default();
        clock.finished(&fold("a.toml", 0.0, false), 4.0);
        clock.finished(&fold("a.toml", 0.0, false), 6.0);
        close(
            clock.left(1, &[], &[fold("a.toml", 0.0, false)]),
            5.0,
            false,
        );
    }

    #[test]
    fn a_folds_work_is_its_epochs_and_evaluations_left() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = tmp.path().join("fsdd/recordings");
        std::fs::create_dir_all(&rec).unwrap();
        // two speakers, two recordings of each digit
        for speaker in ["ann", "bob"] {
            for digit in 0..10 {
                for i in 0..2 {
                    let x = vec![0.1f32; 800];
                    let p = rec.join(format!("{digit}_{speaker}_{i}.wav"));
                    scarce::audio::write_wav_i16(&p, &x, 8000).unwrap();
                }
            }
        }
        let data = scarce::data::resolve_data_dir(Some(tmp.path()));
        let pipeline = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pipelines/fsdd-envnet2-standard-limited.toml");
        let out = tmp.path().join("cv");
        let plan = CvPlan::new(
            &pipeline,
            &[],
            &[],
            Some(out.clone()),
            (None, Some(8)),
            &data,
            Some(tmp.path()),
        )
        .unwrap();
        // fold 2 was stopped after its checkpoint of epoch 6
        checkpoint_state_at(&out.join("fold-2"), 6);
        let (mut tasks, mut finished, mut step) = (Vec::new(), Vec::new(), 0);
        plan.tasks(None, &mut step, 2, &mut tasks, &mut finished)
            .unwrap();
        assert_eq!(tasks.len(), 2);
        // trains on the other speaker's 20 recordings (the pipeline keeps up to 10 per
        // digit) and tests the held-out speaker's 20 at epoch 8 (`eval_every = 8`)
        assert!(!tasks[0].resume);
        assert_eq!(tasks[0].work, 8.0 * 20.0 + 20.0 * EVAL_WEIGHT);
        assert!(tasks[1].resume);
        assert_eq!(tasks[1].work, 2.0 * 20.0 + 20.0 * EVAL_WEIGHT);
    }

    #[test]
    fn a_folds_work_counts_each_evaluation_left() {
        let w = EVAL_WEIGHT;
        // 10 epochs of 100 examples, 30 recordings tested every 4 epochs and after
        // the last: at 4, 8 and 10
        assert_eq!(fold_work(0, 10, 4, 100, 30), 1000.0 + 3.0 * 30.0 * w);
        // after epoch 4's checkpoint: 8 and 10 are left; after 8's, only 10
        assert_eq!(fold_work(4, 10, 4, 100, 30), 600.0 + 2.0 * 30.0 * w);
        assert_eq!(fold_work(8, 10, 4, 100, 30), 200.0 + 30.0 * w);
        // the last epoch a multiple of eval_every is evaluated once
        assert_eq!(fold_work(0, 8, 4, 100, 30), 800.0 + 2.0 * 30.0 * w);
        // every epoch (eval_every 1, or 0 read as 1)
        assert_eq!(fold_work(0, 3, 1, 100, 30), 300.0 + 3.0 * 30.0 * w);
        assert_eq!(fold_work(0, 3, 0, 100, 30), 300.0 + 3.0 * 30.0 * w);
        // nothing left, and no evaluation set
        assert_eq!(fold_work(10, 10, 4, 100, 30), 0.0);
        assert_eq!(fold_work(0, 10, 4, 100, 0), 1000.0);
    }

    #[test]
    fn a_childs_own_interrupt_lines_are_left_to_the_parent() {
        let said = |what: &str| format!("stopping: {what}");
        for line in [
            said(crate::STOP_TRAINING[0]),
            said(crate::STOP_TRAINING[1]),
            "interrupted after epoch 3: continue with `scarce train --resume runs/cv/fold-1`"
                .to_string(),
            "forced stop: what was not checkpointed is lost".to_string(),
        ] {
            assert!(is_interrupt_line(&line), "{line}");
        }
        for line in [
            "epoch   3/48  loss 1.2",
            "error: fsdd/recordings/x.wav: not a readable WAV file",
            "[2026-12-01T00:00:00Z WARN  scarce] skipped: x.wav",
            "warning: 1 unreadable data file(s) skipped (skip_bad_files)",
        ] {
            assert!(!is_interrupt_line(line), "{line}");
        }
    }

    #[test]
    fn left_notes_read_well() {
        assert_eq!(left_note(0, Some((5.0, false))), "");
        assert_eq!(left_note(3, None), "; 3 folds left");
        assert_eq!(
            left_note(1, Some((100.2, false))),
            "; 1 fold left, about 1 h 40 min"
        );
        assert_eq!(
            left_note(2, Some((0.2, true))),
            "; 2 folds left, under 1 min (rough)"
        );
        assert_eq!(
            left_note(2, Some((0.6, false))),
            "; 2 folds left, about 1 min"
        );
        assert_eq!(
            left_note(2, Some((59.6, false))),
            "; 2 folds left, about 1 h"
        );
    }

    fn epoch_metrics(epoch: usize, eval: &[(&str, f64)]) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 1.0,
            train_acc: 0.5,
            discrepancy: None,
            eval: eval.iter().map(|(s, a)| (s.to_string(), *a)).collect(),
            open_set: Vec::new(),
            iterations: 4,
            phase_s: Vec::new(),
            train_s: 1.0,
            eval_s: 0.1,
            elapsed_s: epoch as f64,
        }
    }

    #[test]
    fn a_fold_in_process_notes_the_queues_time_left_at_evaluated_epochs() {
        // 3 epochs of 100 examples, 10 recordings tested after epochs 2 and 3
        let t = CvTask {
            train_examples: 100,
            tested: 10,
            epochs: 3,
            work: fold_work(0, 3, 2, 100, 10),
            ..fold("bc.toml", 0.0, false)
        };
        let mut clock = QueueClock::default();
        // an earlier fold went at 0.01 minutes per unit of work
        clock.finished(
            &CvTask {
                work: 1000.0,
                ..t.clone()
            },
            10.0,
        );
        let note = queue_note(&t, &clock, std::slice::from_ref(&t));
        assert_eq!((note.0)(&epoch_metrics(1, &[])), None);
        let evaluated = epoch_metrics(2, &[("fsdd_test", 0.5)]);
        // this fold's 360 units less the 230 done, and the next fold's 360: 4.9 minutes
        assert_eq!(
            (note.0)(&evaluated).as_deref(),
            Some("; 2 folds left, about 5 min")
        );
        // a second progress stage shows the same epoch: it is not counted again
        assert_eq!(
            (note.0)(&evaluated).as_deref(),
            Some("; 2 folds left, about 5 min")
        );
        // the last epoch's error and time are in the fold's end line
        assert_eq!((note.0)(&epoch_metrics(3, &[("fsdd_test", 0.6)])), None);
        // before any fold has finished: the pace of this one's epochs so far, rough
        let note = queue_note(&t, &QueueClock::default(), &[]);
        let line = (note.0)(&evaluated).unwrap();
        assert!(
            line.starts_with("; 1 fold left, ") && line.ends_with(" (rough)"),
            "{line}"
        );
    }

    #[test]
    fn a_running_folds_evaluated_epochs_are_read_as_they_come() {
        let tmp = tempfile::tempdir().unwrap();
        let metrics = tmp.path().join("metrics.jsonl");
        let line = |epoch: usize, eval: &[(&str, f64)]| {
            serde_json::to_string(&epoch_metrics(epoch, eval)).unwrap() + "\n"
        };
        // a fold resumed from its checkpoint of epoch 1, stopped after writing epoch 2:
        // epoch 1 is not read again, and epoch 2 is taken out until it is trained again
        std::fs::write(
            &metrics,
            line(1, &[("fsdd_test", 0.5)]) + &line(2, &[("fsdd_test", 0.6)]),
        )
        .unwrap();
        let t = CvTask {
            note: "seed 2, ".into(),
            train_examples: 100,
            tested: 10,
            ..task(false)
        };
        let mut f = EvalFollower::new(tmp.path(), 1);
        assert!(f.new_evals(&t, 0.5).is_empty());
        assert_eq!(f.progress, Progress::default());
        let mut text = std::fs::read_to_string(&metrics).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        text.push_str(&line(2, &[]));
        text.push_str(&line(3, &[("fsdd_test", 0.75), ("fsdd_seen", 0.9)]));
        // half of epoch 4's line: read once it is whole
        let four = line(4, &[("fsdd_test", 0.8)]);
        text.push_str(&four[..10]);
        std::fs::write(&metrics, &text).unwrap();
        assert_eq!(f.new_evals(&t, 2.0), [(3, "fsdd_test".to_string(), 0.75)]);
        // epochs 2 and 3, the one evaluated: 200 examples and 10 tests
        let two = 200.0 + 10.0 * EVAL_WEIGHT;
        assert_eq!(
            f.progress,
            Progress {
                minutes: 2.0,
                work: two
            }
        );
        assert!(f.new_evals(&t, 2.5).is_empty());
        assert_eq!(f.progress.minutes, 2.0);
        text.push_str(&four[10..]);
        std::fs::write(&metrics, &text).unwrap();
        assert_eq!(f.new_evals(&t, 3.0), [(4, "fsdd_test".to_string(), 0.8)]);
        assert_eq!(
            f.progress,
            Progress {
                minutes: 3.0,
                work: two + 100.0 + 10.0 * EVAL_WEIGHT
            }
        );
        // a fold whose metrics do not exist yet
        let none = tmp.path().join("none");
        assert!(EvalFollower::new(&none, 0).new_evals(&t, 1.0).is_empty());
        assert!(!none.exists());
        // the line: all but the last epoch, whose error the fold's end line gives
        assert_eq!(
            eval_line(&t, 3, "fsdd_test", 0.75).unwrap(),
            "  seed 2, fold 2: epoch 3 of 8, fsdd_test error 25.0%"
        );
        assert_eq!(eval_line(&t, 8, "fsdd_test", 0.75), None);
    }

    #[test]
    fn children_train_the_fold_or_resume_it() {
        let opts = ChildOptions {
            data_dir: Some(Path::new("data")),
            epochs: Some(4),
            device: "cpu",
            quiet: false,
        };
        assert_eq!(
            child_args(&task(false), &opts).join(" "),
            "train p.toml --out runs/cv-x/fold-2 --fold 2 --seed 3 --epochs 4 --data-dir data --device cpu --quiet"
        );
        assert_eq!(
            child_args(&task(true), &opts).join(" "),
            "train --resume runs/cv-x/fold-2 --fold 2 --seed 3 --epochs 4 --data-dir data --device cpu --quiet"
        );
    }
}
