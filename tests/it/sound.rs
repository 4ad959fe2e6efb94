//! Sound pipelines end to end on a synthesised FSDD-layout folder (tones, one pitch per
//! digit): BC learning lowers its loss, cross-validation runs every fold, and unreadable
//! files are named or skipped.

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// An FSDD-layout folder: `speakers` x 10 digits x `per` recordings of 0.4 s tones at
/// 8 kHz, each digit its own pitch, each speaker its own level.
pub(crate) fn tones(dir: &Path, speakers: &[&str], per: usize) {
    let rec = dir.join("fsdd/recordings");
    std::fs::create_dir_all(&rec).unwrap();
    for (s, speaker) in speakers.iter().enumerate() {
        for digit in 0..10 {
            for i in 0..per {
                let f = 200.0 + 150.0 * digit as f32 + 7.0 * i as f32;
                let amp = 0.1 + 0.2 * s as f32;
                let x: Vec<f32> = (0..3200)
                    .map(|n| amp * (2.0 * std::f32::consts::PI * f * n as f32 / 8000.0).sin())
                    .collect();
                scarce::audio::write_wav_i16(
                    &rec.join(format!("{digit}_{speaker}_{i}.wav")),
                    &x,
                    8000,
                )
                .unwrap();
            }
        }
    }
}

/// The BC pipeline of the repository, shortened for tests.
pub(crate) fn pipeline(
    dir: &Path,
    method: &str,
    epochs: usize,
    extra_data: &str,
) -> std::path::PathBuf {
    let mix = if method == "bc" {
        "[stage.mix]\nkind = \"bc_mix\"\ninput = \"crop\"\n"
    } else {
        ""
    };
    let text = format!(
        r#"
[pipeline]
name = "tones-{method}"
task = "tones, unseen speaker"

[train]
epochs = {epochs}
seed = 3
eval = ["test"]

[data.train]
set = "fsdd"
split = "train"
{extra_data}

[data.test]
set = "fsdd"
split = "test"

[stage.source]
kind = "dataset"
data = "train"

[stage.crop]
kind = "crop"
input = "source"
length = 8192
level = "peak"

{mix}
[stage.batch]
kind = "batcher"
input = "{batch_input}"
batch_size = 16

[stage.model]
kind = "train"
input = "batch"
network = {{ kind = "envnet2_small" }}
method = "{method}"
optimizer = {{ kind = "sgd", lr = 0.01, weight_decay = 5e-4 }}

[stage.metrics]
kind = "metrics"
input = "model"
"#,
        batch_input = if method == "bc" { "mix" } else { "crop" },
    );
    let p = dir.join(format!("tones-{method}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// `scarce train PIPELINE --data-dir DATA --fold 2 --out OUT --quiet`.
pub(crate) fn train_fold_2(p: &Path, data: &Path, out: &Path) -> std::process::Output {
    run(&[
        "train",
        p.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--fold",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
}

#[test]
fn bc_learning_on_synthesised_tones_lowers_its_loss() {
    let tmp = tempfile::tempdir().unwrap();
    tones(tmp.path(), &["ann", "bob"], 3);
    let p = pipeline(tmp.path(), "bc", 4, "");
    let out = tmp.path().join("run");
    let o = train_fold_2(&p, tmp.path(), &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = metrics(&out);
    assert_eq!(m.len(), 4);
    let loss = |i: usize| m[i]["train_loss"].as_f64().unwrap();
    // 30 mixes per epoch (one speaker's recordings), 2 iterations each
    assert_eq!(m[0]["iterations"], 2);
    assert!(loss(3) < loss(0), "loss {} -> {}", loss(0), loss(3));
    let acc = m[3]["eval"][0][1].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["fold"], 2);
    // evaluation of the run reloads the same held-out fold (10 x 3 recordings of bob)
    let o = run(&["eval", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let evals: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(evals[0]["total"], 30);
    assert!((evals[0]["accuracy"].as_f64().unwrap() - acc).abs() < 1e-9);
    // resuming it holds the same speaker out: another --fold is refused, not ignored
    let dir = out.to_str().unwrap();
    let o = run(&["train", "--resume", dir, "--epochs", "5", "--fold", "1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("holds out fold 2") && stderr(&o).contains("--fold 1 applies"),
        "{}",
        stderr(&o)
    );
    assert_eq!(metrics(&out).len(), 4);
}

#[test]
fn a_resumed_bc_run_mixes_and_trains_as_an_uninterrupted_one() {
    // crops, gains, mixing partners and ratios follow the seed and the epoch alone
    let tmp = tempfile::tempdir().unwrap();
    tones(tmp.path(), &["ann", "bob"], 2);
    let text = std::fs::read_to_string(pipeline(tmp.path(), "bc", 3, "")).unwrap();
    let p = tmp.path().join("tones-bc-gain.toml");
    let gain = "level = \"peak\"\ngain_db = 6\n";
    std::fs::write(&p, text.replace("level = \"peak\"\n", gain)).unwrap();
    let out = tmp.path().join("run");
    let o = train_fold_2(&p, tmp.path(), &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_resumed_run_repeats_the_last_epoch(&out);
}

#[test]
fn a_seen_speaker_set_holds_the_recordings_a_limited_set_leaves_out() {
    let tmp = tempfile::tempdir().unwrap();
    tones(tmp.path(), &["ann", "bob", "cy"], 3);
    let p = pipeline(tmp.path(), "source_only", 1, "per_class_per_fold = 1");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "eval = [\"test\"]",
        "eval = [\"test\", \"seen\"]\n\n[data.seen]\nset = \"fsdd\"\nsplit = \"train\"\nskip_per_class_per_fold = 1",
    );
    std::fs::write(&p, text).unwrap();
    let out = tmp.path().join("run");
    let o = train_fold_2(&p, tmp.path(), &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["eval", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let evals: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // bob's 30 recordings; ann's and cy's recordings 1 and 2 of each digit (their 0s train)
    assert_eq!(
        (&evals[0]["data"], &evals[0]["total"]),
        (&Value::from("test"), &Value::from(30))
    );
    assert_eq!(
        (&evals[1]["data"], &evals[1]["total"]),
        (&Value::from("seen"), &Value::from(40))
    );
    // `scarce results --eval` reports the second set, as a task of its own
    let seen_error = 100.0 * (1.0 - evals[1]["accuracy"].as_f64().unwrap());
    let o = run(&["results", out.to_str().unwrap(), "--eval", "seen"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.contains(", evaluated on seen |"), "{table}");
    assert!(table.contains(&format!("| {seen_error:.1} |")), "{table}");
    // without --eval: the held-out speaker's tables, then the seen set's
    let test_error = 100.0 * (1.0 - evals[0]["accuracy"].as_f64().unwrap());
    let o = run(&["results", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let (first, further) = table
        .split_once("Evaluated on seen")
        .unwrap_or_else(|| panic!("no table of the seen set: {table}"));
    assert!(first.contains(&format!("| {test_error:.1} |")), "{table}");
    assert!(!first.contains("evaluated on seen"), "{table}");
    assert!(further.contains(", evaluated on seen |"), "{table}");
    assert!(further.contains(&format!("| {seen_error:.1} |")), "{table}");
    let o = run(&["results", out.to_str().unwrap(), "--eval", "elsewhere"]);
    assert_user_error(&o, &["no finished runs evaluated on `elsewhere`"]);
    // a folder that does not exist is named, not taken for one without runs
    let typo = tmp.path().join("ruin");
    let o = run(&["results", out.to_str().unwrap(), typo.to_str().unwrap()]);
    assert_user_error(&o, &["ruin: no such run folder"]);
    // accuracies are shares: 92 is taken for the 92% it means, and refused
    let o = run(&["results", out.to_str().unwrap(), "--threshold", "92"]);
    assert_user_error(&o, &["between 0 and 1", "0.92"]);
    // skipping every recording leaves nothing, and the error says why
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("skip_per_class_per_fold = 1", "skip_per_class_per_fold = 3");
    std::fs::write(&p, text).unwrap();
    let o = train_fold_2(&p, tmp.path(), &tmp.path().join("run2"));
    assert_user_error(&o, &["no recordings selected", "skipping the first 3"]);
}

/// Tones of three speakers (ann, bob, cy) in `dir`, a one-epoch pipeline that keeps one
/// recording per digit per speaker, and `scarce cv` arguments for it with `--out DIR/cv`.
fn cv_setup(dir: &Path) -> (PathBuf, PathBuf, Vec<String>) {
    tones(dir, &["ann", "bob", "cy"], 2);
    let p = pipeline(dir, "source_only", 1, "per_class_per_fold = 1");
    let out = dir.join("cv");
    let args = [
        "cv",
        p.to_str().unwrap(),
        "--data-dir",
        dir.to_str().unwrap(),
    ]
    .iter()
    .map(|a| a.to_string())
    .chain(["--out".to_string(), out.display().to_string()])
    .collect();
    (p, out, args)
}

#[test]
fn cross_validation_runs_every_fold_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, out, args) = cv_setup(tmp.path());
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--quiet");
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.contains("error % per fold"), "{table}");
    assert!(table.contains("| 1, 2, 3 |"), "{table}");
    // every fold the data has (three speakers here): the command needs no --folds
    assert!(!table.contains("--folds"), "{table}");
    // each fold's end: its error, and the time the others should take at its pace
    let log = stderr(&o);
    assert_eq!(log.matches(": error ").count(), 3, "{log}");
    assert!(log.contains("[1/3] fold 1: error "), "{log}");
    assert!(log.contains("; 2 folds left, "), "{log}");
    assert!(log.contains("; 1 fold left, "), "{log}");
    assert!(
        !log.contains("(rough)"),
        "one pipeline is timed by itself: {log}"
    );
    for fold in 1..=3 {
        let m = metrics(&out.join(format!("fold-{fold}")));
        // per_class_per_fold = 1: 2 training speakers x 10 digits = 20 crops, 2 batches
        assert_eq!(m[0]["iterations"], 2, "fold {fold}");
    }
    // a second call finds every fold finished
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("finished earlier").count(), 3);
    let o = run(&[
        "cv",
        p.to_str().unwrap(),
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--out",
        tmp.path().join("cv2").to_str().unwrap(),
        "--folds",
        "2",
        "--epochs",
        "1",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("fold 2 (bob held out)"),
        "{}",
        stderr(&o)
    );
    // several seeds: the pipeline's own (3) reuses the folds above, seed 4 gets cv-s4
    let seeds = |extra: &[&str]| {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--folds", "1,2"]);
        a.extend_from_slice(extra);
        run(&a)
    };
    let o = seeds(&["--seeds", "3,4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // two of the three: the rows' commands name them
    assert!(
        stdout(&o).contains("--folds 1,2 --seeds 3,4`"),
        "{}",
        stdout(&o)
    );
    assert_eq!(stderr(&o).matches("finished earlier").count(), 2);
    assert!(
        stderr(&o).contains("[3/4] seed 4, fold 1 (ann held out)"),
        "{}",
        stderr(&o)
    );
    for fold in 1..=2 {
        let summary: Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join(format!("cv-s4/fold-{fold}/summary.json")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(summary["seed"], 4);
    }
    let table = stdout(&o);
    assert!(table.contains("Over seeds"), "{table}");
    assert!(table.contains("| 1, 2 | 3, 4 | 1 |"), "{table}");
    assert_user_error(&seeds(&["--seeds", "4,4"]), &["--seeds names seed 4 twice"]);
    let mut twice = args.to_vec();
    twice.extend_from_slice(&["--folds", "2,1,2"]);
    assert_user_error(&run(&twice), &["--folds names fold 2 twice"]);
    let mut range = args.to_vec();
    range.extend_from_slice(&["--folds", "1-2"]);
    assert_user_error(&run(&range), &["'1-2'", "such as 1,2,3"]);
    // another seed into the folder of seed 3 is refused, not mixed with it
    assert_user_error(
        &seeds(&["--seed", "5"]),
        &["fold-1", "seed 3, not 5", "--out"],
    );
    assert_user_error(
        &seeds(&["--epochs", "2"]),
        &["fold-1", "1 epochs, not 2", "--out"],
    );
    assert_user_error(&seeds(&["--seeds", "3,4", "--seed", "4"]), &["--seed"]);
    // `scarce data` lists the sound sets it finds
    let o = run(&["data", "--data-dir", tmp.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listing = stdout(&o);
    assert!(
        listing.contains("present: 60 recordings, 3 folds"),
        "{listing}"
    );
    assert!(
        listing.contains("esc50") && listing.contains("missing: "),
        "{listing}"
    );
    // a missing set's line says where and how to get it, once
    let esc50 = listing
        .lines()
        .find(|l| l.trim_start().starts_with("esc50"))
        .unwrap();
    assert!(esc50.contains("esc50.csv not found"), "{esc50}");
    // into the folder listed, not the built-in one
    assert!(
        esc50.contains("scarce data fetch esc50 --data-dir DIR"),
        "{esc50}"
    );
    assert!(!esc50.contains("point --data-dir"), "{esc50}");
    // a data directory that is not there is named, not listed as eight missing sets
    let nowhere = tmp.path().join("nowhere");
    let o = run(&["data", "--data-dir", nowhere.to_str().unwrap()]);
    assert_user_error(
        &o,
        &["nowhere", "is not a folder", "scarce data fetch fsdd"],
    );
    let o = run(&["data", "--data-dir", out.to_str().unwrap()]);
    let fsdd = stdout(&o);
    let fsdd = fsdd.lines().find(|l| l.trim_start().starts_with("fsdd"));
    assert!(
        fsdd.is_some_and(|l| l.contains("scarce data fetch fsdd")),
        "{fsdd:?}"
    );
    let o = run(&["results", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("scarce cv"), "{}", stdout(&o));
    // a fold that does not exist
    let o = run(&[
        "cv",
        p.to_str().unwrap(),
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--folds",
        "4",
    ]);
    assert_user_error(&o, &["fold 4 does not exist", "1-3"]);
    // an image pipeline has no folds: the error names the file
    let digits = root().join("pipelines/digits-source-only.toml");
    let o = run(&["cv", digits.to_str().unwrap()]);
    assert_user_error(
        &o,
        &["digits-source-only.toml: no sound data set with folds"],
    );
    // cv picks the folds: --fold (of `train`) is refused and not in its help
    let o = run(&["cv", p.to_str().unwrap(), "--fold", "2"]);
    assert_user_error(&o, &["use --folds 1,2,... instead of --fold"]);
    let help = stdout(&run(&["cv", "--help"]));
    assert!(
        help.contains("--folds") && !help.contains("--fold "),
        "{help}"
    );
}

#[test]
fn cross_validation_keeps_no_fold_of_an_edited_pipeline_or_other_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, out, args) = cv_setup(tmp.path());
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--folds", "2"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    // the same command again: kept
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("finished earlier"), "{}", stderr(&o));
    assert_eq!(stdout(&o), table);
    // the same data in another folder: refused, not taken for the same
    let copy = tempfile::tempdir().unwrap();
    tones(copy.path(), &["ann", "bob", "cy"], 2);
    let mut elsewhere = args.clone();
    let at = elsewhere.iter().position(|a| *a == "--data-dir").unwrap() + 1;
    elsewhere[at] = copy.path().to_str().unwrap();
    assert_user_error(
        &run(&elsewhere),
        &["fold-2", "on the data in", "another --out"],
    );
    // the pipeline edited (another learning rate): refused, not reported as its result
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("lr = 0.01"));
    std::fs::write(&p, text.replace("lr = 0.01", "lr = 0.02")).unwrap();
    let o = run(&args);
    assert_user_error(&o, &["fold-2", "of another pipeline", "another --out"]);
    assert!(!stderr(&o).contains("finished earlier"), "{}", stderr(&o));
    assert!(
        out.join("fold-2/summary.json").is_file(),
        "the earlier fold is left as it was"
    );
    // the cross-validation's folder is not a run: its folds are named
    let o = run(&["eval", out.to_str().unwrap()]);
    assert_user_error(
        &o,
        &["is not a run folder", "it holds 1 run folder", "fold-2"],
    );
}

#[test]
fn cross_validation_with_jobs_trains_folds_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, args) = cv_setup(tmp.path());
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--folds", "1,3", "--seeds", "3,4", "--jobs", "2"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    // four folds (2 folds x 2 seeds), each announced when it starts and when it ends
    assert_eq!(log.matches(" held out) -> ").count(), 4, "{log}");
    assert_eq!(log.matches(": error ").count(), 4, "{log}");
    assert!(log.contains("seed 4, fold 3 (cy held out)"), "{log}");
    // the first to end leaves one running and two queued
    assert!(log.contains("; 3 folds left, "), "{log}");
    assert_eq!(log.matches(" left, ").count(), 3, "{log}");
    for (dir, seed) in [("cv", 3), ("cv-s4", 4)] {
        for fold in [1, 3] {
            let summary: Value = serde_json::from_str(
                &std::fs::read_to_string(
                    tmp.path().join(format!("{dir}/fold-{fold}/summary.json")),
                )
                .unwrap(),
            )
            .unwrap();
            assert_eq!(summary["seed"], seed);
            assert_eq!(summary["status"], "completed");
        }
    }
    let table = stdout(&o);
    assert!(table.contains("| 1, 3 | 3, 4 | 1 |"), "{table}");
    // a one-epoch fold has no evaluated epoch before its last
    assert!(!log.contains(": epoch "), "{log}");
    // the same command again runs nothing
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("finished earlier").count(), 4);
    let mut zero = args.to_vec();
    let last = zero.len() - 1;
    zero[last] = "0";
    assert_user_error(&run(&zero), &["--jobs"]);
    let bad = tmp.path().join("cv-bad");
    let mut failing = args.to_vec();
    assert_eq!(failing[4], "--out");
    failing[5] = bad.to_str().unwrap();
    // a device this binary cannot use is refused once, before any fold starts
    let mut no_device = failing.clone();
    no_device.extend(["--device", "nonsense"]);
    let o = run(&no_device);
    assert_user_error(&o, &["unknown device `nonsense`"]);
    assert!(!stderr(&o).contains(" held out) -> "), "{}", stderr(&o));
    // a fold that fails (bob, a training speaker of folds 1 and 3, has a broken
    // recording): its messages come through, no further fold starts, and the error
    // names the fold
    let rec = tmp.path().join("fsdd/recordings");
    for i in 0..2 {
        std::fs::write(rec.join(format!("0_bob_{i}.wav")), b"").unwrap();
    }
    let o = run(&failing);
    assert_eq!(o.status.code(), Some(2));
    let log = stderr(&o);
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: seed 3, fold ")
            && last.contains("cv-bad/fold-")
            && last.contains("failed"),
        "{log}"
    );
    assert!(log.contains("  seed 3, fold 1: error: "), "{log}");
    assert!(log.contains("0_bob_"), "{log}");
    assert_eq!(log.matches(" held out) -> ").count(), 2, "{log}");
}

#[test]
fn a_stopped_cv_with_jobs_checkpoints_each_running_fold_at_the_end_of_its_epoch() {
    // Ctrl-C to the parent alone (not its process group): it passes the signal on to
    // the folds, which finish their epoch, checkpoint it (the pipeline's checkpoint_every
    // is far off) and stop
    let tmp = tempfile::tempdir().unwrap();
    tones(tmp.path(), &["ann", "bob", "cy"], 2);
    let text = std::fs::read_to_string(pipeline(tmp.path(), "source_only", 5000, "")).unwrap();
    let p = tmp.path().join("tones-rare-checkpoints.toml");
    let text = text.replace("[train]\n", "[train]\ncheckpoint_every = 1000\n");
    std::fs::write(&p, text.replace("tones-source_only", "tones-rare")).unwrap();
    let out = tmp.path().join("cv");
    let mut child = scarce()
        .args(["cv", p.to_str().unwrap(), "--data-dir"])
        .arg(tmp.path())
        .arg("--out")
        .arg(&out)
        .args(["--folds", "1,2,3", "--jobs", "2", "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    let trained = |fold: usize| {
        std::fs::read_to_string(out.join(format!("fold-{fold}/metrics.jsonl")))
            .unwrap_or_default()
            .lines()
            .count()
    };
    while trained(1) == 0 || trained(2) == 0 {
        assert!(child.try_wait().unwrap().is_none(), "cv ended early");
        assert!(t.elapsed().as_secs() < 300, "no epoch finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    let log = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{log}");
    for fold in [1, 2] {
        let summary: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("fold-{fold}/summary.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(summary["status"], "interrupted");
        let done = summary["epochs_done"].as_u64().unwrap() as usize;
        assert_eq!(trained(fold), done);
        let latest =
            std::fs::read_to_string(out.join(format!("fold-{fold}/checkpoints/latest"))).unwrap();
        assert_eq!(latest.trim(), format!("epoch-{done:04}"), "{log}");
        assert!(
            log.contains(&format!(
                "fold {fold}: stopped; it continues from epoch {} (its checkpoint of epoch {done})",
                done + 1
            )),
            "{log}"
        );
    }
    assert!(
        !out.join("fold-3").exists(),
        "no further fold starts: {log}"
    );
    assert!(
        log.contains("run the same command again to continue"),
        "{log}"
    );
}

#[test]
fn folds_side_by_side_report_each_evaluated_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    tones(tmp.path(), &["ann", "bob", "cy"], 1);
    let p = pipeline(tmp.path(), "source_only", 3, "");
    let cv = |out: &str, quiet: bool| {
        let out = tmp.path().join(out);
        let mut a = vec![
            "cv",
            p.to_str().unwrap(),
            "--data-dir",
            tmp.path().to_str().unwrap(),
            "--folds",
            "1,3",
            "--jobs",
            "2",
            "--out",
            out.to_str().unwrap(),
        ];
        if quiet {
            a.push("--quiet");
        }
        let o = run(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    // epochs 1 and 2 of each fold (3 is in the fold's end line), with the error the
    // run folder's metrics hold
    let log = cv("cv", false);
    for fold in [1, 3] {
        let metrics = metrics(&tmp.path().join(format!("cv/fold-{fold}")));
        for epoch in [1, 2] {
            let accuracy = metrics[epoch - 1]["eval"][0][1].as_f64().unwrap();
            let line = format!(
                "  fold {fold}: epoch {epoch} of 3, test error {:.1}%",
                100.0 * (1.0 - accuracy)
            );
            assert_eq!(log.matches(&line).count(), 1, "{line}\n{log}");
        }
        assert!(
            !log.contains(&format!("fold {fold}: epoch 3 of 3")),
            "{log}"
        );
    }
    assert_eq!(log.matches(": epoch ").count(), 4, "{log}");
    assert!(!cv("cv-quiet", true).contains(": epoch "));
}

#[test]
fn folds_one_at_a_time_give_the_queues_time_left_at_each_evaluated_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    tones(tmp.path(), &["ann", "bob", "cy"], 1);
    let p = pipeline(tmp.path(), "source_only", 3, "");
    // the epoch lines come from a progress stage
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        text + "\n[stage.progress]\nkind = \"progress\"\ninput = \"model\"\n",
    )
    .unwrap();
    let out = tmp.path().join("cv");
    let o = run(&[
        "cv",
        p.to_str().unwrap(),
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--folds",
        "1,3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    let epoch_lines: Vec<&str> = log.lines().filter(|l| l.starts_with("epoch ")).collect();
    assert_eq!(epoch_lines.len(), 6, "{log}");
    // fold 1, the first: the pace of its own epochs so far; fold 3: fold 1's pace
    for (line, note) in epoch_lines.iter().zip([
        Some("; 2 folds left, "),
        Some("; 2 folds left, "),
        None,
        Some("; 1 fold left, "),
        Some("; 1 fold left, "),
        None,
    ]) {
        match note {
            Some(note) => {
                assert!(line.contains(note), "{line}");
                assert_eq!(line.ends_with(" (rough)"), note.contains('2'), "{line}");
            }
            // the last epoch's error is in the fold's end line, with the time left
            None => assert!(!line.contains("left"), "{line}"),
        }
    }
}

#[test]
fn a_folds_training_and_test_recordings_are_counted_for_the_time_left() {
    let tmp = tempfile::tempdir().unwrap();
    tones(tmp.path(), &["ann", "bob", "cy"], 3);
    // cy lacks one recording of digit 0
    std::fs::remove_file(tmp.path().join("fsdd/recordings/0_cy_2.wav")).unwrap();
    let data = scarce::data::resolve_data_dir(Some(tmp.path()));
    let count = |extra: &str| {
        let p = pipeline(tmp.path(), "bc", 1, extra);
        let (file, _) = scarce::train::session::load_pipeline(&p, None).unwrap();
        file.fold_counts(&data).unwrap()
    };
    // every recording of the two speakers not held out: 30 each, 29 for cy
    let all = count("");
    assert_eq!(all.names, ["ann", "bob", "cy"]);
    assert_eq!(all.train, [59, 59, 60]);
    // the evaluation set is the held-out speaker, whatever the training set keeps
    assert_eq!(all.evaluated, [30, 30, 29]);
    // two per digit per speaker, which cy still has for every digit
    let two = count("per_class_per_fold = 2");
    assert_eq!(two.train, [40, 40, 40]);
    assert_eq!(two.evaluated, [30, 30, 29]);
    // the third recording of each: cy's digit 0 is missing
    assert_eq!(count("skip_per_class_per_fold = 2").train, [19, 19, 20]);
    assert_eq!(count("limit = 25").train, [25, 25, 25]);
}

#[test]
fn cross_validation_of_several_pipelines_makes_one_queue_and_one_table() {
    let tmp = tempfile::tempdir().unwrap();
    tones(tmp.path(), &["ann", "bob", "cy"], 2);
    let bc = pipeline(tmp.path(), "bc", 1, "per_class_per_fold = 1");
    let standard = pipeline(tmp.path(), "source_only", 1, "per_class_per_fold = 1");
    // run from the temporary folder, so that the default runs/cv-NAME folders go there
    let cv = |extra: &[&str]| {
        let mut a = vec!["cv", bc.to_str().unwrap(), standard.to_str().unwrap()];
        a.extend_from_slice(&["--data-dir", tmp.path().to_str().unwrap(), "--folds", "1,3"]);
        a.extend_from_slice(extra);
        scarce()
            .current_dir(tmp.path())
            .args(&a)
            .output()
            .expect("scarce runs")
    };
    let o = cv(&["--jobs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(
        log.contains("[1/4] tones-bc, fold 1 (ann held out) -> runs/cv-tones-bc/fold-1"),
        "{log}"
    );
    assert!(
        log.contains("[4/4] tones-source_only, fold 3 (cy held out)"),
        "{log}"
    );
    assert_eq!(log.matches(": error ").count(), 4, "{log}");
    assert!(log.contains("trained 4 of 4 folds in "), "{log}");
    // when the first BC fold ends, no standard-learning fold has: its time is a guess
    assert!(
        log.contains("tones-bc, fold 1: error ") || log.contains("tones-bc, fold 3: error "),
        "{log}"
    );
    assert!(log.contains("; 3 folds left, "), "{log}");
    assert!(log.contains(" (rough)"), "{log}");
    for name in ["tones-bc", "tones-source_only"] {
        for fold in [1, 3] {
            let dir = tmp.path().join(format!("runs/cv-{name}/fold-{fold}"));
            assert_eq!(metrics(&dir)[0]["iterations"], 2, "{}", dir.display());
        }
    }
    let table = stdout(&o);
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("| 1, 3 |")).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows.iter().any(|r| r.contains("| bc |")), "{table}");
    assert!(rows.iter().any(|r| r.contains("| standard |")), "{table}");
    // BC and standard learning of the same task, paired fold by fold
    let paired: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("| tones-bc (1 epoch) | tones-source_only (1 epoch) | 2 |"))
        .collect();
    assert_eq!(paired.len(), 1, "{table}");
    assert!(paired[0].ends_with(" of 2 |"), "{table}");
    // the same command again trains nothing and prints the same table
    let o = cv(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("finished earlier").count(), 4);
    assert!(!stderr(&o).contains("trained "), "{}", stderr(&o));
    assert_eq!(stdout(&o), table);
    // one --out cannot hold two pipelines, and one pipeline twice would share its folders
    assert_user_error(&cv(&["--out", "x"]), &["--out", "several pipelines"]);
    let twice = scarce()
        .current_dir(tmp.path())
        .args([
            "cv",
            bc.to_str().unwrap(),
            bc.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_user_error(&twice, &["both write their folds to runs/cv-tones-bc"]);
}

#[test]
fn unreadable_recordings_are_named_or_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    tones(tmp.path(), &["ann", "bob"], 2);
    let rec = tmp.path().join("fsdd/recordings");
    std::fs::write(rec.join("4_ann_0.wav"), b"").unwrap(); // empty
    std::fs::write(rec.join("5_ann_0.wav"), b"ID3\x04 an mp3 in disguise").unwrap();
    let good = std::fs::read(rec.join("6_ann_0.wav")).unwrap();
    std::fs::write(rec.join("6_ann_0.wav"), &good[..good.len() / 3]).unwrap(); // truncated
    let p = pipeline(tmp.path(), "source_only", 1, "");
    let o = train_fold_2(&p, tmp.path(), &tmp.path().join("r1"));
    assert_user_error(&o, &["4_ann_0.wav", "skip_bad_files"]);
    assert_eq!(stderr(&o).matches("4_ann_0.wav").count(), 1, "said once");

    let p = pipeline(tmp.path(), "source_only", 1, "skip_bad_files = true");
    let out = tmp.path().join("r2");
    let o = train_fold_2(&p, tmp.path(), &out);
    assert!(o.status.success(), "{}", stderr(&o));
    // warnings read like errors: no time stamp, level or module (those come with RUST_LOG)
    assert!(
        stderr(&o)
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains("3 unreadable data file(s) skipped")),
        "{}",
        stderr(&o)
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let skipped = summary["skipped_files"].as_array().unwrap();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for f in ["4_ann_0.wav", "5_ann_0.wav", "6_ann_0.wav"] {
        assert!(
            skipped.iter().any(|s| s.as_str().unwrap().contains(f)),
            "{f}"
        );
    }
}
