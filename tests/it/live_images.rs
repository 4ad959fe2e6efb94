//! `scarce run` with an image model: an open-set (OSBP) digits model streams MNIST
//! images, from an IDX file and from PNG files, and answers `unknown` as a label of its
//! own, exactly as `scarce eval` counts it.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn decisions(o: &std::process::Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", stderr(o));
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn stream(run_dir: &Path, input: &Path, extra: &[&str]) -> Vec<Value> {
    decisions(&run_on(
        run_dir,
        input,
        &[&["--fast", "--json"], extra].concat(),
    ))
}

#[test]
fn an_open_set_image_model_streams_unknown_as_eval_counts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    train_one_epoch("pipelines/digits-osbp-usps-mnist.toml", &run_dir);

    // the target's test set, streamed from its IDX file: the same answers as `eval`
    let idx = builtin_data().join("mnist/t10k-images-idx3-ubyte.gz");
    let all = stream(&run_dir, &idx, &[]);
    assert_eq!(all.len(), 10_000);
    let mut streamed: BTreeMap<String, u64> = BTreeMap::new();
    for (i, d) in all.iter().enumerate() {
        assert_eq!(d["index"], i as u64);
        assert_eq!(d["source"], format!("t10k-images-idx3-ubyte.gz#{i}"));
        let scores = d["scores"].as_object().unwrap();
        assert_eq!(scores.len(), 6, "five digits and unknown: {d}");
        assert!(scores.contains_key("unknown"));
        *streamed
            .entry(d["label"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let o = run(&[
        "eval",
        run_dir.to_str().unwrap(),
        "--data",
        "mnist_test",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let confusion = e[0]["confusion"].as_array().unwrap();
    let predicted = |c: usize| -> u64 {
        confusion
            .iter()
            .map(|r| r[c].as_u64().unwrap())
            .sum::<u64>()
    };
    for c in 0..6 {
        let name = if c == 5 {
            "unknown".to_string()
        } else {
            c.to_string()
        };
        assert_eq!(
            streamed.get(&name).copied().unwrap_or(0),
            predicted(c),
            "answers `{name}`: stream {streamed:?}, eval {confusion:?}"
        );
    }

    // the first images as PNG files, as they are and inverted: the same answers
    let plain = tmp.path().join("png");
    let inverted = tmp.path().join("inverted");
    std::fs::create_dir(&plain).unwrap();
    std::fs::create_dir(&inverted).unwrap();
    let images = scarce::data::idx::read_idx(&idx).unwrap();
    for i in 0..12 {
        let px = &images.data[i * 784..(i + 1) * 784];
        let img = image::GrayImage::from_raw(28, 28, px.to_vec()).unwrap();
        img.save(plain.join(format!("{i:02}.png"))).unwrap();
        let inv = image::GrayImage::from_raw(28, 28, px.iter().map(|v| 255 - v).collect()).unwrap();
        inv.save(inverted.join(format!("{i:02}.png"))).unwrap();
    }
    for (dir, extra) in [(&plain, vec![]), (&inverted, vec!["--invert"])] {
        let pngs = stream(&run_dir, dir, &extra);
        assert_eq!(pngs.len(), 12);
        for (i, d) in pngs.iter().enumerate() {
            assert_eq!(d["source"], format!("{i:02}.png"));
            assert_eq!(d["label"], all[i]["label"], "{d} vs {}", all[i]);
            let (a, b) = (
                d["confidence"].as_f64().unwrap(),
                all[i]["confidence"].as_f64().unwrap(),
            );
            assert!((a - b).abs() < 1e-3, "{d} vs {}", all[i]);
        }
    }
    // a threshold turns low-confidence answers into unknown
    let strict = stream(&run_dir, &plain, &["--threshold", "0.999"]);
    let unknown = |v: &[Value]| v.iter().filter(|d| d["label"] == "unknown").count();
    assert!(unknown(&strict) >= unknown(&all[..12]));
    assert!(strict
        .iter()
        .filter(|d| d["label"] != "unknown")
        .all(|d| d["confidence"].as_f64().unwrap() >= 0.999));

    // --limit, and the lines for people
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--input",
        idx.to_str().unwrap(),
        "--fast",
        "--limit",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3);
    assert!(stderr(&o).contains("3 images ("), "{}", stderr(&o));

    // bad input is named; sound inputs are refused
    std::fs::write(plain.join("00.png"), b"not a picture").unwrap();
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--input",
        plain.to_str().unwrap(),
        "--fast",
    ]);
    assert_user_error(&o, &["00.png", "--skip-bad-files"]);
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--input",
        plain.to_str().unwrap(),
        "--fast",
        "--skip-bad-files",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("; 1 unreadable file skipped"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("00.png"), "{}", stdout(&o));
    let lines = stdout(&o).lines().count();
    // an image cut short passes the header check: skipped when reached, or named
    let good = std::fs::read_dir(&plain)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "png") && !p.ends_with("00.png"))
        .unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = plain.join("01-cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = run_on(&run_dir, &plain, &["--fast", "--skip-bad-files"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("; 2 unreadable files skipped"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o).lines().count(), lines, "{}", stdout(&o));
    let o = run_on(&run_dir, &cut, &["--fast"]);
    assert_user_error(&o, &["01-cut.png"]);
    std::fs::remove_file(&cut).unwrap();
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--input",
        plain.to_str().unwrap(),
        "--hop",
        "0.5",
    ]);
    assert_user_error(&o, &["--hop is for a sound model", "holds an image model"]);
    let o = run_on(&run_dir, &plain, &["--fps", "1e-300"]);
    assert_user_error(&o, &["--fps must be between"]);
    let o = run(&["run", run_dir.to_str().unwrap(), "--input", "mic"]);
    assert_user_error(&o, &["image model", "--input"]);
    let o = run(&["run", run_dir.to_str().unwrap(), "--stdin"]);
    assert_user_error(&o, &["image model"]);
    let wav = plain.join("talk.wav");
    scarce::audio::write_wav_i16(&wav, &[0.1; 800], 8000).unwrap();
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--input",
        wav.to_str().unwrap(),
    ]);
    assert_user_error(&o, &["talk.wav is a WAV file", "holds an image model"]);
}
