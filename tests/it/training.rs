//! Training runs end to end on the built-in data: run folder contents, evaluation,
//! repeatability with a seed, Ctrl-C, and resuming a killed run.

use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn train(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        tiny_pipeline().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|s| s.to_string()));
    scarce().args(&args).output().unwrap()
}

fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn train_writes_a_complete_run_folder_and_eval_reloads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let o = train(&run_dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "pipeline.toml",
        "run.json",
        "metrics.jsonl",
        "summary.json",
        "learning_curve.svg",
        "model.safetensors",
        "checkpoints/latest",
    ] {
        assert!(run_dir.join(f).is_file(), "{f} missing");
    }
    let m = metrics(&run_dir);
    assert_eq!(m.len(), 3);
    assert_eq!(m[2]["epoch"], 3);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["status"], "completed");
    let mnist_acc = summary["final_eval"][0][1].as_f64().unwrap();
    // 512 training images, 3 epochs: far above chance (10%) already.
    assert!(mnist_acc > 0.6, "accuracy {mnist_acc}");
    assert!(stdout(&o).contains("mnist_test"));

    // eval reloads the checkpoint and gets the same accuracy as the last epoch
    let o = run(&["eval", run_dir.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let evals: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(evals[0]["data"], "mnist_test");
    assert_eq!(evals[0]["total"], 500);
    assert!((evals[0]["accuracy"].as_f64().unwrap() - mnist_acc).abs() < 1e-9);
    let confusion = evals[1]["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    let total: u64 = confusion
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 300);

    let o = run(&["eval", run_dir.to_str().unwrap(), "--data", "usps_test"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("confusion"), "{}", stdout(&o));

    // a finished run cannot be resumed without more epochs
    let o = run(&["train", "--resume", run_dir.to_str().unwrap()]);
    assert_user_error(&o, &["already finished all 3 epochs"]);
    // and --out refuses to overwrite it
    let o = train(&run_dir, &[]);
    assert_user_error(&o, &["already holds a run", "--resume"]);
}

#[test]
fn same_seed_same_run() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let c = tmp.path().join("c");
    for (dir, seed) in [(&a, "3"), (&b, "3"), (&c, "4")] {
        let o = train(dir, &["--epochs", "1", "--seed", seed]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let key = |d: &Path| {
        let m = &metrics(d)[0];
        (m["train_loss"].as_f64().unwrap(), m["eval"].to_string())
    };
    assert_eq!(key(&a), key(&b), "same seed, same losses and accuracies");
    assert_ne!(key(&a).0, key(&c).0, "another seed gives another run");
}

#[test]
fn unknown_or_missing_device_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = train(&tmp.path().join("r"), &["--device", "tpu:0"]);
    assert_user_error(&o, &["unknown device `tpu:0`"]);
    if !cfg!(feature = "cuda") {
        let o = train(&tmp.path().join("r2"), &["--device", "cuda:0"]);
        assert_user_error(&o, &["not compiled into this binary", "--features cuda"]);
    }
}

fn spawn_train(run_dir: &Path, epochs: &str) -> std::process::Child {
    scarce()
        .args([
            "train",
            tiny_pipeline().to_str().unwrap(),
            "--out",
            run_dir.to_str().unwrap(),
            "--epochs",
            epochs,
            "--quiet",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for_epoch(run_dir: &Path, epoch: usize, child: &mut std::process::Child) {
    let t = Instant::now();
    loop {
        let latest =
            std::fs::read_to_string(run_dir.join("checkpoints/latest")).unwrap_or_default();
        if latest.trim() >= format!("epoch-{epoch:04}").as_str() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("training ended early: {status}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no checkpoint for epoch {epoch}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killed_run_resumes_from_its_last_checkpoint_and_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let mut child = spawn_train(&run_dir, "6");
    wait_for_epoch(&run_dir, 2, &mut child);
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let before = metrics(&run_dir).len();
    assert!(before < 6, "killed before the end ({before} epochs logged)");

    let o = run(&["train", "--resume", run_dir.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = metrics(&run_dir);
    let epochs: Vec<u64> = m.iter().map(|v| v["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, vec![1, 2, 3, 4, 5, 6], "each epoch logged once");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["epochs_done"], 6);
    assert!(run_dir.join("model.safetensors").is_file());
    // no half-written checkpoint folders are left behind
    for e in std::fs::read_dir(run_dir.join("checkpoints")).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.ends_with(".partial"), "{n}");
    }
}

#[test]
fn ctrl_c_stops_cleanly_and_flushes_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let mut child = spawn_train(&run_dir, "200");
    wait_for_epoch(&run_dir, 1, &mut child);
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scarce train --resume"), "{err}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["status"], "interrupted");
    assert!(summary["epochs_done"].as_u64().unwrap() >= 1);
    assert!(run_dir.join("learning_curve.svg").is_file());
}
