//! `scarce cv --jobs N`: trains several folds at once, each in its own `scarce train`
//! process with its share of the cores.
//!
//! One training process per core pair or per core uses a small machine better than one
//! process with every core: the network's layers are too small to keep several threads
//! busy, and separate processes share nothing. Each child is told how many threads to
//! use (`RAYON_NUM_THREADS`, unless the caller set it), runs quietly, and writes its
//! usual run folder, so finished folds are reused and an interrupted one resumes exactly
//! as in a sequential cross-validation.

use scarce::graph::StopFlag;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One fold of one seed to train.
pub struct CvTask {
    /// Place in the whole plan (1-based), for `[step/total]` lines.
    pub step: usize,
    /// `--seed` for the run (`None`: the pipeline's).
    pub seed: Option<u64>,
    /// `"seed S, "` when several seeds run, else empty.
    pub seed_note: String,
    /// Held-out fold.
    pub fold: usize,
    /// Name of the held-out fold (FSDD: the speaker).
    pub fold_name: String,
    /// Run folder.
    pub dir: PathBuf,
    /// The folder holds a checkpoint to resume from.
    pub resume: bool,
}

impl CvTask {
    /// The line announcing the fold: `[step/total] seed S, fold K (NAME held out) -> DIR`.
    pub fn start_line(&self, total: usize) -> String {
        format!(
            "[{}/{total}] {}fold {} ({} held out) -> {}{}",
            self.step,
            self.seed_note,
            self.fold,
            self.fold_name,
            self.dir.display(),
            if self.resume { " (resuming)" } else { "" }
        )
    }
}

/// Settings every child gets.
pub struct ChildOptions<'a> {
    /// The pipeline file.
    pub pipeline: &'a Path,
    /// `--data-dir`.
    pub data_dir: Option<&'a Path>,
    /// `--epochs`.
    pub epochs: Option<usize>,
    /// `--device`.
    pub device: &'a str,
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
        a.push(opts.pipeline.display().to_string());
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

struct Running {
    task: usize,
    child: Child,
    started: Instant,
    forward: std::thread::JoinHandle<()>,
}

/// Runs `tasks` with at most `jobs` children at once. `done(i)` is called in the parent
/// for each task that finished; it reads the run folder's result and returns a line to
/// print. After a failure no further task starts, and the error comes once the running
/// ones have ended. Ctrl-C (the `stop` flag) starts no further task and waits for the
/// running ones, which stop on the same signal after their current step; a child that
/// did not see the signal (the parent alone was signalled) is sent one after a grace
/// period.
pub fn run_parallel(
    tasks: &[CvTask],
    jobs: usize,
    total: usize,
    opts: &ChildOptions,
    stop: &StopFlag,
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
    loop {
        while failure.is_none() && !stop.is_stopped() && running.len() < jobs && next < tasks.len()
        {
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
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    // the folds already running are let finish
                    failure = Some(format!("cannot start {}: {e}", exe.display()));
                    break;
                }
            };
            let prefix = format!("  {}fold {}: ", t.seed_note, t.fold);
            let stderr = child.stderr.take().expect("piped");
            let forward = std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if !line.trim().is_empty() {
                        eprintln!("{prefix}{line}");
                    }
                }
            });
            running.push(Running {
                task: next,
                child,
                started: Instant::now(),
                forward,
            });
            next += 1;
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if stop.is_stopped() {
            let since = *stop_seen.get_or_insert_with(Instant::now);
            if !signalled && since.elapsed() > Duration::from_secs(30) {
                for r in &running {
                    interrupt(&r.child);
                }
                signalled = true;
            }
        }
        let mut i = 0;
        while i < running.len() {
            let status = running[i].child.try_wait()?;
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let r = running.swap_remove(i);
            let _ = r.forward.join();
            let t = &tasks[r.task];
            let minutes = r.started.elapsed().as_secs_f64() / 60.0;
            if status.success() {
                match done(r.task) {
                    Ok(line) => eprintln!(
                        "[{}/{total}] {}fold {}: {line} ({minutes:.1} min)",
                        t.step, t.seed_note, t.fold
                    ),
                    Err(e) => {
                        failure.get_or_insert(format!("{e:#}"));
                    }
                }
            } else if stop.is_stopped() || interrupted(&status) {
                eprintln!(
                    "[{}/{total}] {}fold {}: stopped at its last checkpoint",
                    t.step, t.seed_note, t.fold
                );
                stop.stop();
            } else if failure.is_none() {
                failure = Some(format!(
                    "{}fold {} ({}) failed ({status}): its messages are above, prefixed with its fold (no further fold was started; those already running were let finish)",
                    t.seed_note,
                    t.fold,
                    t.dir.display()
                ));
            }
        }
    }
    if let Some(f) = failure {
        anyhow::bail!(f);
    }
    Ok(if stop.is_stopped() {
        Outcome::Interrupted
    } else {
        Outcome::Done
    })
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
            seed: Some(3),
            seed_note: String::new(),
            fold: 2,
            fold_name: "jackson".into(),
            dir: PathBuf::from("runs/cv-x/fold-2"),
            resume,
        }
    }

    #[test]
    fn children_train_the_fold_or_resume_it() {
        let opts = ChildOptions {
            pipeline: Path::new("p.toml"),
            data_dir: Some(Path::new("data")),
            epochs: Some(4),
            device: "cpu",
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
