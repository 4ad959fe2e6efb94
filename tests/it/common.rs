//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The built-in data folder.
pub fn builtin_data() -> PathBuf {
    root().join("data")
}

/// A `scarce` command with a clean environment for data-dir resolution and log lines.
pub fn scarce() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scarce"));
    c.env_remove("SCARCE_DATA_DIR")
        .env_remove("RUST_LOG")
        .current_dir(root());
    c
}

/// Runs `scarce` with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    scarce().args(args).output().expect("scarce runs")
}

/// `scarce run RUN --input INPUT EXTRA...`.
pub fn run_on(run_dir: &Path, input: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        run_dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a user error: exit code 2, an `error:` message (at the start of stderr or of
/// a line after progress lines) that mentions every needle, and no panic.
pub fn assert_user_error(o: &Output, needles: &[&str]) {
    let all = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit code; stderr:\n{all}");
    let at = all
        .find("error: ")
        .filter(|&i| i == 0 || all[..i].ends_with('\n'));
    assert!(at.is_some(), "stderr:\n{all}");
    let err = all[at.unwrap_or(0)..].to_string();
    assert!(!err.contains("panicked"), "stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in stderr:\n{err}");
    }
}

/// Copies the built-in data into a fresh temporary folder that a test may change.
pub fn copy_builtin_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&builtin_data(), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Trains shipped pipeline `pipeline` (a path from the repository root) for one epoch on
/// the built-in data into `run_dir`, asserting that it succeeds.
pub fn train_one_epoch(pipeline: &str, run_dir: &Path) -> Output {
    let o = run(&[
        "train",
        pipeline,
        "--epochs",
        "1",
        "--out",
        run_dir.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// The small test pipeline.
pub fn tiny_pipeline() -> PathBuf {
    root().join("tests/pipelines/tiny.toml")
}

/// A data folder with tiny sound sets in their published layouts: FSDD (6 speakers x
/// 10 digits, one 0.3 s tone each) and ESC-50 (one clip per fold), for checking sound
/// pipelines without the real data.
pub fn sound_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("fsdd/recordings");
    std::fs::create_dir_all(&rec).unwrap();
    let tone = |f: f32, rate: f32, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * f * i as f32 / rate).sin())
            .collect()
    };
    for speaker in ["ann", "bob", "cy", "dee", "eve", "fay"] {
        for digit in 0..10 {
            let x = tone(200.0 + 100.0 * digit as f32, 8000.0, 2400);
            scarce::audio::write_wav_i16(&rec.join(format!("{digit}_{speaker}_0.wav")), &x, 8000)
                .unwrap();
        }
    }
    let esc = dir.path().join("esc50");
    std::fs::create_dir_all(esc.join("meta")).unwrap();
    std::fs::create_dir_all(esc.join("audio")).unwrap();
    let mut csv = String::from("filename,fold,target,category,esc10,src_file,take\n");
    for fold in 1..=5 {
        let name = format!("{fold}-1-A-0.wav");
        csv += &format!("{name},{fold},0,dog,True,1,A\n");
        scarce::audio::write_wav_i16(
            &esc.join("audio").join(&name),
            &tone(440.0, 44_100.0, 4410),
            44_100,
        )
        .unwrap();
    }
    std::fs::write(esc.join("meta/esc50.csv"), csv).unwrap();
    dir
}

/// The epoch lines of a run's `metrics.jsonl`.
pub fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Puts a finished run of three or more epochs back to where a run stopped after its
/// second-last epoch would be (that epoch's checkpoint and metrics lines, no summary, no
/// weights), resumes it, and checks that the last epoch trains to the same losses,
/// accuracies and final weights as before.
pub fn assert_resumed_run_repeats_the_last_epoch(run_dir: &Path) {
    let whole = metrics(run_dir);
    let last = whole.len();
    let weights = std::fs::read(run_dir.join("model.safetensors")).unwrap();
    let ckpts = run_dir.join("checkpoints");
    std::fs::remove_dir_all(ckpts.join(format!("epoch-{last:04}"))).unwrap();
    std::fs::write(ckpts.join("latest"), format!("epoch-{:04}", last - 1)).unwrap();
    let lines: Vec<String> = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .take(last - 1)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(run_dir.join("metrics.jsonl"), lines.concat()).unwrap();
    for f in ["summary.json", "model.safetensors"] {
        std::fs::remove_file(run_dir.join(f)).unwrap();
    }
    let o = run(&["train", "--resume", run_dir.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let resumed = metrics(run_dir);
    assert_eq!(resumed.len(), last);
    for key in ["train_loss", "train_acc", "eval"] {
        assert_eq!(
            resumed[last - 1][key],
            whole[last - 1][key],
            "epoch {last}'s {key}"
        );
    }
    assert!(
        std::fs::read(run_dir.join("model.safetensors")).unwrap() == weights,
        "the same final weights"
    );
}
