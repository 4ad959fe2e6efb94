//! Training runs end to end on the built-in data: run folder contents, evaluation,
//! repeatability with a seed, Ctrl-C, and resuming a killed run.

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn train(out: &Path, extra: &[&str]) -> std::process::Output {
    train_of(&tiny_pipeline(), out, extra)
}

/// `scarce train PIPELINE --out OUT --quiet EXTRA...`.
fn train_of(pipeline: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        pipeline.to_str().unwrap(),
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
    assert!(
        stdout(&o).contains("the checkpoint of epoch 3"),
        "{}",
        stdout(&o)
    );

    // the results table has a row for each evaluation set; one seed has no spread
    let o = run(&["results", run_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let usps_acc = summary["final_eval"][1][1].as_f64().unwrap();
    for (set, acc) in [("mnist_test", mnist_acc), ("usps_test", usps_acc)] {
        let cells = format!("| tiny | source_only | {set} | {:.1} |", 100.0 * acc);
        assert!(table.contains(&cells), "{cells}\n{table}");
    }

    // a finished run cannot be resumed without more epochs
    let o = run(&["train", "--resume", run_dir.to_str().unwrap()]);
    assert_user_error(&o, &["already finished all 3 epochs"]);
    // and --out refuses to overwrite it
    let o = train(&run_dir, &[]);
    assert_user_error(&o, &["already holds a run", "--resume"]);
    // nor does it write a run among other files, or over a file
    let notes = tmp.path().join("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(notes.join("todo.txt"), "keep").unwrap();
    let o = train(&notes, &[]);
    assert_user_error(&o, &["holds todo.txt and is not a run folder"]);
    assert_eq!(std::fs::read_dir(&notes).unwrap().count(), 1);
    let o = train(&notes.join("todo.txt"), &[]);
    assert_user_error(&o, &["todo.txt is a file"]);
    // a folder a run was stopped in before it wrote run.json is a run's to take again
    let left = tmp.path().join("left");
    std::fs::create_dir(&left).unwrap();
    std::fs::copy(tiny_pipeline(), left.join("pipeline.toml")).unwrap();
    std::fs::write(left.join(".run.json.tmp-1"), "{").unwrap();
    let o = train(&left, &["--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(left.join("summary.json").exists());
    // a resumed run keeps its seed: another one is refused, not ignored
    let dir = run_dir.to_str().unwrap();
    let o = run(&["train", "--resume", dir, "--epochs", "4", "--seed", "3"]);
    assert_user_error(
        &o,
        &["started with seed 7", "--seed 3 applies to a new run"],
    );
    let o = run(&["train", "--resume", dir, "--epochs", "4", "--fold", "2"]);
    assert_user_error(&o, &["--fold chooses", "has none"]);
    assert_eq!(metrics(&run_dir).len(), 3);
    // more epochs continue it, with a word on the schedules that follow the new total
    let o = run(&[
        "train",
        "--resume",
        run_dir.to_str().unwrap(),
        "--epochs",
        "4",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("4 epochs instead of 3") && stderr(&o).contains("milestones"),
        "{}",
        stderr(&o)
    );
    assert_eq!(metrics(&run_dir).len(), 4);

    // checkpoints/latest lost: the newest checkpoint folder serves, with a warning
    let eval = |dir: &Path| run(&["eval", dir.to_str().unwrap(), "--json"]);
    let before = stdout(&eval(&run_dir));
    std::fs::remove_file(run_dir.join("checkpoints/latest")).unwrap();
    // a checkpoint still being written when a run died is not one
    let partial = run_dir.join("checkpoints/epoch-0009.partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::copy(
        run_dir.join("checkpoints/epoch-0004/state.json"),
        partial.join("state.json"),
    )
    .unwrap();
    let o = eval(&run_dir);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("is missing: using the newest checkpoint, epoch-0004"));
    assert_eq!(stdout(&o), before);
    // a run.json edited to nonsense is named as damaged, not blamed on a flag
    let settings = std::fs::read_to_string(run_dir.join("run.json")).unwrap();
    let zero = settings.replace("\"epochs\": 4", "\"epochs\": 0");
    assert_ne!(zero, settings);
    std::fs::write(run_dir.join("run.json"), zero).unwrap();
    assert_user_error(&eval(&run_dir), &["run.json is damaged", "`epochs`"]);
    std::fs::write(run_dir.join("run.json"), settings).unwrap();
    // no checkpoint at all in a finished run: said so, not "train first"
    std::fs::remove_dir_all(run_dir.join("checkpoints")).unwrap();
    assert_user_error(&eval(&run_dir), &["no checkpoint left", "train it again"]);
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
    // the thread count does not change the sums, so neither does it change the run
    for threads in ["1", "3"] {
        let d = tmp.path().join(format!("threads-{threads}"));
        let o = scarce()
            .env("RAYON_NUM_THREADS", threads)
            .args(["train", tiny_pipeline().to_str().unwrap(), "--out"])
            .arg(&d)
            .args(["--epochs", "1", "--seed", "3", "--quiet"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(key(&d), key(&a), "{threads} threads");
    }
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
    spawn_train_of(&tiny_pipeline(), run_dir, epochs)
}

fn spawn_train_of(pipeline: &Path, run_dir: &Path, epochs: &str) -> std::process::Child {
    scarce()
        .args([
            "train",
            pipeline.to_str().unwrap(),
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

/// Sends the process a Ctrl-C (SIGINT).
fn interrupt(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
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
fn a_resumed_run_trains_the_epochs_an_uninterrupted_one_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let o = train(&run_dir, &["--epochs", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_resumed_run_repeats_the_last_epoch(&run_dir);
}

#[test]
fn run_killed_after_its_last_checkpoint_is_finished_without_training_again() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let o = train(&run_dir, &["--epochs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    // the state a kill leaves between the last checkpoint and the end of training: the
    // summary of the epoch before, no exported weights
    let path = run_dir.join("summary.json");
    let mut summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let final_eval = summary["final_eval"].clone();
    summary["status"] = "interrupted".into();
    summary["epochs_done"] = 1.into();
    summary["final_eval"] = Value::Array(Vec::new());
    std::fs::write(&path, summary.to_string()).unwrap();
    std::fs::remove_file(run_dir.join("model.safetensors")).unwrap();

    let o = run(&["train", "--resume", run_dir.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("2 epochs of 2"), "{}", stdout(&o));
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["epochs_done"], 2);
    assert_eq!(summary["final_eval"], final_eval);
    assert!(run_dir.join("model.safetensors").is_file());
    // no epoch was trained again
    assert_eq!(
        std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap(),
        lines
    );
    // now it is finished, and says so
    let o = run(&["train", "--resume", run_dir.to_str().unwrap()]);
    assert_user_error(&o, &["already finished all 2 epochs"]);
}

#[test]
fn ctrl_c_stops_cleanly_and_flushes_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let mut child = spawn_train(&run_dir, "200");
    wait_for_epoch(&run_dir, 1, &mut child);
    interrupt(&child);
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

#[test]
fn ctrl_c_finishes_the_epoch_under_way_and_checkpoints_it() {
    // checkpoints only every 1000 epochs: the one a resumed run starts from is the stop's
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(tiny_pipeline()).unwrap();
    let pipeline = tmp.path().join("rare-checkpoints.toml");
    std::fs::write(
        &pipeline,
        text.replace("[train]\n", "[train]\ncheckpoint_every = 1000\n"),
    )
    .unwrap();
    let run_dir = tmp.path().join("run");
    let mut child = spawn_train_of(&pipeline, &run_dir, "200");
    let t = Instant::now();
    while std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .next()
        .is_none()
    {
        assert!(child.try_wait().unwrap().is_none(), "training ended early");
        assert!(t.elapsed() < Duration::from_secs(300), "no epoch finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("stopping: finishing the epoch under way and checkpointing it"),
        "{err}"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["status"], "interrupted");
    let done = summary["epochs_done"].as_u64().unwrap() as usize;
    assert!(done >= 1);
    let latest = std::fs::read_to_string(run_dir.join("checkpoints/latest")).unwrap();
    assert_eq!(
        latest.trim(),
        format!("epoch-{done:04}"),
        "the last epoch is kept"
    );
    assert_eq!(metrics(&run_dir).len(), done);
    assert!(
        err.contains(&format!("interrupted after epoch {done}: continue with")),
        "{err}"
    );
    // the resumed run takes up the next epoch
    let next = (done + 1).to_string();
    let o = run(&[
        "train",
        "--resume",
        run_dir.to_str().unwrap(),
        "--epochs",
        &next,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let epochs: Vec<usize> = metrics(&run_dir)
        .iter()
        .map(|m| m["epoch"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(
        epochs,
        (1..=done + 1).collect::<Vec<_>>(),
        "each epoch once"
    );
}

#[test]
fn an_interrupt_that_arrives_twice_at_once_still_stops_cleanly() {
    // a signal sent to the process and to its group (`timeout`, a terminal) arrives
    // twice within a moment: that is one Ctrl-C, not a forced stop
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let mut child = spawn_train(&run_dir, "200");
    wait_for_epoch(&run_dir, 1, &mut child);
    for _ in 0..2 {
        interrupt(&child);
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(!err.contains("forced stop"), "{err}");
    assert!(err.contains("scarce train --resume"), "{err}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["status"], "interrupted");
}

/// Rewrites the USPS training file of a data folder with its labels permuted.
fn shuffle_usps_train_labels(data: &Path) {
    use std::io::{Read, Write};
    let p = data.join("usps/zip.train.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&std::fs::read(&p).unwrap()[..])
        .read_to_string(&mut text)
        .unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let labels: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let mut out = String::new();
    let mut changed = 0;
    for (i, l) in lines.iter().enumerate() {
        let new_label = labels[(i * 7 + 3) % labels.len()];
        changed += usize::from(new_label != labels[i]);
        let rest = l.trim_start().split_once(char::is_whitespace).unwrap().1;
        out.push_str(&format!("{new_label} {rest}\n"));
    }
    assert!(changed > lines.len() / 2, "most labels changed");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(out.as_bytes()).unwrap();
    std::fs::write(&p, enc.finish().unwrap()).unwrap();
}

#[test]
fn target_labels_never_reach_training() {
    let tmp = tempfile::tempdir().unwrap();
    let shuffled = copy_builtin_data();
    shuffle_usps_train_labels(shuffled.path());
    let pipeline = root().join("tests/pipelines/tiny-mcd.toml");
    let mut weights = Vec::new();
    for (name, data) in [
        ("plain", builtin_data()),
        ("shuffled", shuffled.path().to_path_buf()),
    ] {
        let run_dir = tmp.path().join(name);
        let o = run(&[
            "train",
            pipeline.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            run_dir.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        weights.push(std::fs::read(run_dir.join("model.safetensors")).unwrap());
        if name == "plain" {
            // MCD reports the ensemble and both classifiers on the target
            let m = &metrics(&run_dir)[0];
            let names: Vec<String> = m["eval"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e[0].as_str().unwrap().to_string())
                .collect();
            assert_eq!(names, vec!["usps_test", "usps_test/c1", "usps_test/c2"]);
            assert!(m["discrepancy"].as_f64().unwrap() >= 0.0);
        }
    }
    assert!(weights[0].len() > 100_000, "weights are there");
    assert!(
        weights[0] == weights[1],
        "target labels changed the trained weights"
    );
}

#[test]
fn compare_trains_each_pipeline_and_prints_the_change() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let mcd = root().join("tests/pipelines/tiny-mcd.toml");
    // the baseline evaluated on USPS first, like the MCD pipeline
    let base = tmp.path().join("tiny.toml");
    let text = std::fs::read_to_string(tiny_pipeline()).unwrap();
    let swapped = text.replace(
        r#"eval = ["mnist_test", "usps_test"]"#,
        r#"eval = ["usps_test", "mnist_test"]"#,
    );
    assert_ne!(text, swapped);
    std::fs::write(&base, swapped).unwrap();
    // the two pipelines for one epoch into `out`
    let compare = |out: &Path| {
        run(&[
            "compare",
            base.to_str().unwrap(),
            mcd.to_str().unwrap(),
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
    };
    let o = compare(&out);
    assert!(o.status.success(), "stderr:\n{}", stderr(&o));
    let text = stdout(&o);
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("pipeline"))
        .take_while(|l| !l.starts_with("generator features"))
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[1].starts_with("tiny "), "{text}");
    assert!(rows[1].contains(" source_only "), "{text}");
    assert!(
        rows[2].starts_with("tiny-mcd ")
            && rows[2].contains(" mcd ")
            && rows[2].contains("usps_test"),
        "{text}"
    );
    // the change column is the difference of the two final accuracies
    let pct = |row: &str| -> f64 {
        row.split_whitespace()
            .nth(3)
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap()
    };
    let change: f64 = rows[2].split_whitespace().last().unwrap().parse().unwrap();
    assert!(
        (change - (pct(rows[2]) - pct(rows[1]))).abs() < 0.051,
        "{text}"
    );
    for d in ["1-tiny", "2-tiny-mcd"] {
        assert!(out.join(d).join("summary.json").is_file(), "{d} missing");
        assert!(
            out.join(d).join("embedding.json").is_file(),
            "{d} points missing"
        );
    }
    // the results table: MCD is reported by its ensemble
    // alone, not a row for each of its two classifiers
    let o = run(&["results", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert_eq!(table.matches("| mcd |").count(), 1, "{table}");
    assert!(!table.contains("/c1"), "{table}");
    // both runs' features side by side: two panels, each titled with its method
    let svg = std::fs::read_to_string(out.join("embedding.svg")).unwrap();
    assert!(
        svg.contains("source_only: ") && svg.contains("mcd: "),
        "{svg}"
    );

    // a bad pipeline anywhere in the list stops the comparison before any training
    let out2 = tmp.path().join("cmp2");
    let bad = root().join("tests/pipelines/bad/unknown_method.toml");
    let o = run(&[
        "compare",
        tiny_pipeline().to_str().unwrap(),
        bad.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert_user_error(&o, &["unknown_method.toml"]);
    assert!(!out2.exists());

    // a run's folder given as --out: refused, its embedding left alone
    let inner = out.join("1-tiny");
    let picture = std::fs::read(inner.join("embedding.svg")).unwrap();
    let o = compare(&inner);
    assert_user_error(&o, &["1-tiny holds a run (run.json)", "--out"]);
    assert_eq!(std::fs::read(inner.join("embedding.svg")).unwrap(), picture);
    assert!(!inner.join("1-tiny").exists());
}

#[test]
fn compare_stopped_by_ctrl_c_continues_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let second = tmp.path().join("tiny2.toml");
    std::fs::copy(tiny_pipeline(), &second).unwrap();
    let data = builtin_data();
    // no --out: the comparison picks runs/compare-TIMESTAMP under the working folder
    let in_tmp = |args: &[&str]| -> std::process::Output {
        scarce()
            .current_dir(tmp.path())
            .args(args)
            .output()
            .unwrap()
    };
    let mut child = scarce()
        .current_dir(tmp.path())
        .args([
            "compare",
            "--epochs",
            "30",
            "--data-dir",
            data.to_str().unwrap(),
            "--quiet",
            "--",
            tiny_pipeline().to_str().unwrap(),
            second.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wait_for_folder = |child: &mut std::process::Child| -> PathBuf {
        let t = Instant::now();
        loop {
            let found = std::fs::read_dir(tmp.path().join("runs"))
                .ok()
                .and_then(|mut d| d.next())
                .map(|e| e.unwrap().path());
            if let Some(root) = found {
                return root;
            }
            assert!(child.try_wait().unwrap().is_none(), "compare ended early");
            assert!(t.elapsed() < Duration::from_secs(300), "no run folder");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let root = wait_for_folder(&mut child);
    let stopped = root.join("2-tiny2");
    wait_for_epoch(&stopped, 2, &mut child);
    interrupt(&child);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let err = stderr(&o);
    // the hint is the command that continues the whole comparison, with the folder the
    // comparison chose right after the subcommand (the pipelines follow a `--`)
    let command = err
        .split("continue the comparison with `scarce ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no command in {err}"));
    let args: Vec<&str> = command.split_whitespace().collect();
    let relative = root.strip_prefix(tmp.path()).unwrap().to_str().unwrap();
    assert_eq!(args[..3], ["compare", "--out", relative], "{err}");
    let done = metrics(&stopped).len();
    assert!(done < 30, "stopped early ({done} epochs)");

    // another seed, epoch count or data directory does not reuse these runs
    fn with<'a>(args: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [&args[..3], extra, &args[3..]].concat()
    }
    assert_user_error(
        &in_tmp(&with(&args, &["--seed", "9"])),
        &["1-tiny", "seed 7, not 9"],
    );
    let other_data = copy_builtin_data();
    let moved: Vec<&str> = args
        .iter()
        .map(|&a| {
            if a == data.to_str().unwrap() {
                other_data.path().to_str().unwrap()
            } else {
                a
            }
        })
        .collect();
    assert_ne!(moved, args);
    assert_user_error(&in_tmp(&moved), &["1-tiny", "on the data in"]);
    // an edited second pipeline is refused before the first is looked at again
    let text = std::fs::read_to_string(&second).unwrap();
    std::fs::write(&second, text.replace("lr = 1e-3", "lr = 2e-3")).unwrap();
    let o = in_tmp(&args);
    assert_user_error(&o, &["2-tiny2", "earlier version"]);
    assert!(!stderr(&o).contains("[1/2]"), "{}", stderr(&o));
    std::fs::write(&second, text).unwrap();

    // the finished run lost its weights and points (a stop while they were written):
    // it is continued, which writes them
    let first = root.join("1-tiny");
    std::fs::remove_file(first.join("model.safetensors")).unwrap();
    std::fs::remove_file(first.join("embedding.json")).unwrap();
    let o = in_tmp(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("1-tiny (continuing it)"), "{err}");
    assert!(err.contains("2-tiny2 (continuing it)"), "{err}");
    assert!(first.join("model.safetensors").is_file());
    let epochs: Vec<u64> = metrics(&stopped)
        .iter()
        .map(|v| v["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(
        epochs,
        (1..=30).collect::<Vec<u64>>(),
        "each epoch logged once"
    );
    let table = stdout(&o);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("tiny ") && l.contains("+0.0")),
        "the same pipeline twice, with the same seed: no change\n{table}"
    );
    // and now both are kept as they are
    let o = in_tmp(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches(": finished earlier").count(),
        2,
        "{}",
        stderr(&o)
    );
}

#[test]
fn fold_is_refused_for_a_pipeline_without_folds() {
    let tmp = tempfile::tempdir().unwrap();
    let o = train(&tmp.path().join("run"), &["--fold", "2"]);
    assert_user_error(&o, &["--fold", "has none"]);
    assert!(!tmp.path().join("run").exists());
}

#[test]
fn osbp_trains_on_the_known_classes_and_reports_open_set_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let o = train_one_epoch("pipelines/digits-osbp-mnist-usps.toml", &run_dir);
    let m = metrics(&run_dir);
    let (name, os) = (&m[0]["open_set"][0][0], &m[0]["open_set"][0][1]);
    assert_eq!(name, "usps_test");
    for k in ["os", "os_star", "all", "unk", "h_score"] {
        let v = os[k].as_f64().unwrap_or_else(|| panic!("{k} in {os}"));
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    // ALL is the plain accuracy with digits 5-9 counted as the unknown class
    assert_eq!(os["all"], m[0]["eval"][0][1]);
    // the run's summary carries them, and `train` prints them after the accuracies
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["final_open_set"][0][1], *os);
    let printed = stdout(&o);
    let row = printed
        .lines()
        .skip_while(|l| !l.starts_with("open set (final)"))
        .nth(1)
        .unwrap_or_else(|| panic!("no open-set rows in {printed}"));
    assert!(
        row.starts_with("usps_test")
            && row.contains(&format!("{:.1}%", 100.0 * os["os"].as_f64().unwrap())),
        "{printed}"
    );

    // the source set holds the known classes only: nothing in the unknown row
    let o = run(&[
        "eval",
        run_dir.to_str().unwrap(),
        "--data",
        "mnist_train",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let confusion = e[0]["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 6, "five known classes and unknown");
    let row_total = |r: &Value| -> u64 {
        r.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(row_total(&confusion[5]), 0);
    assert_eq!(e[0]["total"], 2000);
    assert!(confusion[..5].iter().all(|r| row_total(r) > 0));
    assert!(
        e[0]["open_set"]["unk"].is_null(),
        "no unknown example in the source"
    );
    let o = run(&["eval", run_dir.to_str().unwrap()]);
    assert!(
        stdout(&o).contains("open set (class 5 = unknown): OS"),
        "{}",
        stdout(&o)
    );
    // the embedding picture gives the target's unknown digits a colour of their own
    let e: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("embedding.json")).unwrap())
            .unwrap();
    let points = e["points"].as_array().unwrap();
    let unknown = points.iter().filter(|p| p["unknown"] == true).count();
    assert!(unknown > 0 && unknown < points.len(), "{unknown} unknown");
    assert!(points
        .iter()
        .filter(|p| p["unknown"] == true)
        .all(|p| p["target"] == true));
    let svg = std::fs::read_to_string(run_dir.join("embedding.svg")).unwrap();
    assert!(svg.contains("target, unknown"));
}

#[test]
fn a_confidence_threshold_makes_a_source_only_model_open_set() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    train_one_epoch(
        "pipelines/digits-source-only-open-mnist-usps.toml",
        &run_dir,
    );
    let o = run(&["eval", run_dir.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // five outputs, and a sixth answer: unknown, for confidences below 0.5
    let confusion = e[0]["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 6);
    let unknown_answers: u64 = confusion.iter().map(|r| r[5].as_u64().unwrap()).sum();
    assert!(
        unknown_answers > 0,
        "after one epoch some digits are rejected"
    );
    assert!(e[0]["open_set"]["h_score"].is_number());
}

#[test]
fn an_epoch_without_a_training_batch_is_an_error_not_a_finished_run() {
    let tmp = tempfile::tempdir().unwrap();
    // 512 images never fill a batch of 1,000 that drops its incomplete last batch
    let p = tmp.path().join("empty-epochs.toml");
    let text = std::fs::read_to_string(tiny_pipeline())
        .unwrap()
        .replace("batch_size = 64", "batch_size = 1000\ndrop_last = true");
    std::fs::write(&p, text).unwrap();
    let out = tmp.path().join("run");
    let o = train_of(&p, &out, &["--epochs", "1"]);
    assert_user_error(&o, &["epoch 1 had no training batch", "drop_last"]);
    assert!(!out.join("summary.json").exists());
}

#[test]
fn evaluation_reads_the_weights_alone_and_resuming_names_a_missing_optimizer() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let o = train(&run_dir, &["--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ckpt = run_dir.join("checkpoints/epoch-0001");
    std::fs::remove_file(ckpt.join("optimizer.bpk")).unwrap();
    // evaluating needs no optimizer state
    let o = run(&["eval", run_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("mnist_test: accuracy"),
        "{}",
        stdout(&o)
    );
    // training on does, and says which file it lacks
    let o = run(&[
        "train",
        "--resume",
        run_dir.to_str().unwrap(),
        "--epochs",
        "2",
        "--quiet",
    ]);
    assert_user_error(&o, &["optimizer.bpk"]);
}

#[test]
fn labels_beyond_the_networks_outputs_are_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(tiny_pipeline()).unwrap();
    let p = tmp.path().join("five-outputs.toml");
    let five = text.replace(
        "network = { kind = \"digits\"",
        "network = { kind = \"digits\", num_classes = 5",
    );
    assert_ne!(five, text);
    std::fs::write(&p, five).unwrap();
    let out = tmp.path().join("run");
    let o = train_of(&p, &out, &[]);
    assert_user_error(
        &o,
        &["the training data has class", "5 outputs", "num_classes"],
    );
    assert!(
        !out.exists(),
        "a run that failed before its first checkpoint leaves no folder"
    );
}
