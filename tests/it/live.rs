//! `scarce run`: a model trained on synthesised tones streams a replayed folder; the
//! labels it prints agree with the recordings, and bad input gives clear errors.

use crate::common::*;
use crate::sound::{pipeline, tones, train_fold_2};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Trains standard learning on two "speakers" of tones and returns (data dir, run dir).
fn trained(tmp: &Path) -> (PathBuf, PathBuf) {
    tones(tmp, &["ann", "bob"], 3);
    let p = pipeline(tmp, "source_only", 2, "");
    let out = tmp.join("run");
    let o = train_fold_2(&p, tmp, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    (tmp.to_path_buf(), out)
}

#[test]
fn replayed_recordings_stream_their_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run_dir) = trained(tmp.path());
    // the held-out speaker's first recording of each digit, in digit order
    let replay = tmp.path().join("replay");
    std::fs::create_dir_all(&replay).unwrap();
    for digit in 0..10 {
        std::fs::copy(
            data.join(format!("fsdd/recordings/{digit}_bob_0.wav")),
            replay.join(format!("{digit:02}.wav")),
        )
        .unwrap();
    }
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--input",
        replay.to_str().unwrap(),
        "--fast",
        "--json",
        "--hop",
        "0.1",
        "--smooth",
        "1",
        "--threshold",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // each file: 3,200 samples of tone + 8,192 of silence; windows of 8,192 every 800
    let total = 10 * (3200 + 8192);
    assert_eq!(lines.len(), (total - 8192) / 800 + 1);
    for l in &lines {
        assert_eq!(l["scores"].as_object().unwrap().len(), 10, "{l}");
        assert!(l["latency_ms"].as_f64().unwrap() >= 0.0);
    }
    // the window centred on each recording says what the network says of exactly those
    // samples: windows are cut at the right places, levelled and scored as in training
    let model = scarce::stream::run::LiveModel::load(&run_dir, "cpu").unwrap();
    let mut stream = Vec::new();
    for digit in 0..10 {
        let clip = scarce::audio::read_wav(&replay.join(format!("{digit:02}.wav"))).unwrap();
        stream.extend(clip.samples);
        stream.resize(stream.len() + 8192, 0.0);
    }
    for digit in 0..10usize {
        let tone_mid = digit * (3200 + 8192) + 1600;
        let line = lines
            .iter()
            .min_by_key(|l| {
                let start = (l["time_s"].as_f64().unwrap() * 8000.0).round() as i64;
                (start + 4096 - tone_mid as i64).abs()
            })
            .unwrap();
        let start = (line["time_s"].as_f64().unwrap() * 8000.0).round() as usize;
        let probs = model.probabilities(&stream[start..start + 8192]);
        let best = scarce::eval::argmax(&probs);
        assert_eq!(line["label"], model.classes[best], "digit {digit}: {line}");
        let conf = line["confidence"].as_f64().unwrap();
        assert!(
            (conf - probs[best] as f64).abs() < 1e-3,
            "{conf} vs {}",
            probs[best]
        );
    }
    // silence between recordings is reported as such
    assert!(lines.iter().any(|l| l["label"] == "silence"));

    // lines for people: labels without the silent windows, and a summary on stderr
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--input",
        replay.join("03.wav").to_str().unwrap(),
        "--fast",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("silence"), "{}", stdout(&o));
    assert!(stderr(&o).contains("latency p50"), "{}", stderr(&o));

    // bad input: a damaged file in the folder is named; bad options are explained
    std::fs::write(replay.join("99.wav"), b"RIFF0000WAVEjunk").unwrap();
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--input",
        replay.to_str().unwrap(),
        "--fast",
    ]);
    assert_user_error(&o, &["99.wav"]);
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--input",
        tmp.path().join("missing.wav").to_str().unwrap(),
    ]);
    assert_user_error(&o, &["missing.wav", "no such file"]);
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--input",
        replay.join("03.wav").to_str().unwrap(),
        "--threshold",
        "2",
    ]);
    assert_user_error(&o, &["--threshold", "between 0 and 1"]);
}

#[test]
fn streaming_needs_a_run_folder_with_a_sound_model() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("a.wav");
    scarce::audio::write_wav_i16(&wav, &[0.1; 800], 8000).unwrap();
    let o = run(&[
        "run",
        tmp.path().join("no-run").to_str().unwrap(),
        "--input",
        wav.to_str().unwrap(),
    ]);
    assert_user_error(&o, &["no-run"]);
}
