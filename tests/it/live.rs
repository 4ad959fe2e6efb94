//! `scarce run`: a model trained on synthesised tones streams a replayed folder; the
//! labels it prints agree with the recordings, and bad input gives clear errors.

use crate::common::*;
use crate::sound::{pipeline, tones, train_fold_2};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Trains standard learning on two "speakers" of tones and returns (data dir, run dir).
pub(crate) fn trained(tmp: &Path) -> (PathBuf, PathBuf) {
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
    let o = run_on(
        &run_dir,
        &replay,
        &[
            "--fast",
            "--json",
            "--hop",
            "0.1",
            "--smooth",
            "1",
            "--threshold",
            "0",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // each file: 3,200 samples of tone, then a window and a hop of silence (8,192 +
    // 800); windows of 8,192 every 800
    const PERIOD: usize = 3200 + 8192 + 800;
    let total = 10 * PERIOD;
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
        stream.resize(stream.len() + 8192 + 800, 0.0);
    }
    for digit in 0..10usize {
        let tone_mid = digit * PERIOD + 1600;
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
        // it names the recording, and where in it the window starts
        let file = replay.join(format!("{digit:02}.wav"));
        assert_eq!(line["file"], file.display().to_string(), "{line}");
        let in_file = start as f64 - (digit * PERIOD) as f64;
        let file_time = line["file_time_s"].as_f64().unwrap();
        assert!((file_time - in_file / 8000.0).abs() < 1e-3, "{line}");
    }
    // silence between recordings is reported as such (at least one window after each
    // recording, which clears the moving average), and belongs to no recording
    for digit in 0..10 {
        assert!(
            lines.iter().any(|l| l["label"] == "silence"
                && (l["time_s"].as_f64().unwrap() * 8000.0).round() as usize / PERIOD == digit),
            "no silence after recording {digit}"
        );
    }
    let between = lines
        .iter()
        .filter(|l| {
            let start = (l["time_s"].as_f64().unwrap() * 8000.0).round() as usize;
            start % PERIOD >= 3200 && start % PERIOD + 8192 <= PERIOD
        })
        .collect::<Vec<_>>();
    assert!(!between.is_empty());
    for l in between {
        assert!(l["file"].is_null() && l["file_time_s"].is_null(), "{l}");
    }
    // every window holding tone names its recording: ten in the stream's order
    let mut named: Vec<String> = lines
        .iter()
        .filter_map(|l| l["file"].as_str().map(str::to_owned))
        .collect();
    named.dedup();
    assert_eq!(named.len(), 10, "{named:?}");

    // lines for people name each recording of a folder before its first line
    let o = run_on(&run_dir, &replay, &["--fast", "--threshold", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let headers: Vec<&str> = text.lines().filter(|l| l.ends_with(".wav")).collect();
    let expected: Vec<String> = (0..10)
        .map(|d| replay.join(format!("{d:02}.wav")).display().to_string())
        .collect();
    assert_eq!(headers, expected, "{text}");

    // lines for people: labels without the silent windows, and a summary on stderr
    let o = run_on(&run_dir, &replay.join("03.wav"), &["--fast"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("silence"), "{}", stdout(&o));
    // one recording: no header
    assert!(!stdout(&o).contains("03.wav"), "{}", stdout(&o));
    assert!(stderr(&o).contains("latency p50"), "{}", stderr(&o));

    // bad input: a damaged file in the folder is named; bad options are explained
    std::fs::write(replay.join("99.wav"), b"RIFF0000WAVEjunk").unwrap();
    let o = run_on(&run_dir, &replay, &["--fast"]);
    assert_user_error(&o, &["99.wav", "not a readable WAV file"]);
    assert_eq!(
        stderr(&o).matches("not a readable WAV file").count(),
        1,
        "said once"
    );
    // before anything is streamed, with the way round it
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("1 of 11 files cannot be read"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--skip-bad-files"), "{}", stderr(&o));
    let o = run_on(&run_dir, &replay, &["--fast", "--skip-bad-files"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("skipped: "), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("; 1 unreadable file skipped"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o).matches(".wav\n").count(), 10, "{}", stdout(&o));
    // an image model's option is not silently ignored
    let o = run_on(&run_dir, &replay.join("03.wav"), &["--fps", "5"]);
    assert_user_error(&o, &["--fps is for an image model", "holds a sound model"]);
    let o = run_on(&run_dir, &tmp.path().join("missing.wav"), &[]);
    assert_user_error(&o, &["missing.wav", "no such file"]);
    let o = run_on(&run_dir, &replay.join("03.wav"), &["--threshold", "2"]);
    assert_user_error(&o, &["--threshold", "between 0 and 1"]);
    let o = run_on(&run_dir, &replay.join("03.wav"), &["--threshold", "-0.1"]);
    assert_user_error(&o, &["--threshold", "between 0 and 1"]);
    let o = run_on(&run_dir, &replay.join("03.wav"), &["--hop", "1e300"]);
    assert_user_error(&o, &["--hop is too long"]);
    let o = run_on(&run_dir, &replay.join("03.wav"), &["--baud", "9600"]);
    assert_user_error(&o, &["--baud sets the speed of a --serial port"]);
    // a recording quieter than the gate: its name, a line saying so, and a word in the
    // summary when nothing was louder
    let quiet = tmp.path().join("quiet");
    std::fs::create_dir(&quiet).unwrap();
    std::fs::copy(replay.join("03.wav"), quiet.join("a.wav")).unwrap();
    scarce::audio::write_wav_i16(&quiet.join("b.wav"), &[0.0; 4000], 8000).unwrap();
    let o = run_on(&run_dir, &quiet, &["--fast"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let b = out
        .lines()
        .position(|l| l.ends_with("b.wav"))
        .expect("b.wav named");
    assert_eq!(
        out.lines().nth(b + 1),
        Some("  (silence throughout: every window below --gate-db)"),
        "{out}"
    );
    assert!(
        !stderr(&o).contains("below the silence gate"),
        "{}",
        stderr(&o)
    );
    let o = run_on(&run_dir, &quiet.join("b.wav"), &["--fast"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("every window was below the silence gate (--gate-db -60)"),
        "{}",
        stderr(&o)
    );
    // an image file is named as one, not taken for a damaged recording
    let idx = builtin_data().join("mnist/t10k-images-idx3-ubyte.gz");
    let o = run_on(&run_dir, &idx, &[]);
    assert_user_error(&o, &["is a gzip file", "holds a sound model"]);
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

/// The decisions of `scarce run ... --json` as JSON values.
#[cfg(all(feature = "mic", target_os = "linux"))]
fn decisions(o: &std::process::Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `--input mic` through a real capture device: ALSA's `file` PCM plugin, set up as the
/// `default` PCM in `~/.asoundrc` of a temporary home, reads a raw recording over the
/// `null` device. The microphone path (cpal, ring buffer, capture source) must label the
/// stream exactly as a replay of the same samples does. The plugin delivers the file as
/// fast as it is read (no real-time pacing; stale samples after its end), so the stream
/// is cut with `--duration` at the end of the recording and edges block (`--fast`).
#[cfg(all(feature = "mic", target_os = "linux"))]
#[test]
fn mic_path_reads_an_alsa_file_capture_device() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run_dir) = trained(tmp.path());
    // 0.125 s of silence, then six held-out recordings with 0.5 s of silence after each
    let mut stream: Vec<i16> = vec![0; 1000];
    for digit in [0, 3, 5, 7, 9, 2] {
        let mut r = hound::WavReader::open(data.join(format!("fsdd/recordings/{digit}_bob_0.wav")))
            .unwrap();
        stream.extend(r.samples::<i16>().map(Result::unwrap));
        stream.extend(std::iter::repeat_n(0, 4000));
    }
    assert!(stream.len() < 8000 * 8, "the capture buffer holds 10 s");
    let raw: Vec<u8> = stream.iter().flat_map(|s| s.to_le_bytes()).collect();
    let raw_path = tmp.path().join("capture.raw");
    std::fs::write(&raw_path, raw).unwrap();
    let wav = tmp.path().join("same.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    stream.iter().for_each(|s| w.write_sample(*s).unwrap());
    w.finalize().unwrap();
    // the stream opens at the model's rate, mono, 16-bit: the raw file's format
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".asoundrc"),
        format!(
            "pcm.!default {{\n  type file\n  slave.pcm \"null\"\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n}}\n",
            raw_path.display()
        ),
    )
    .unwrap();
    let duration = format!("{}", stream.len() as f64 / 8000.0);
    let args = |input: &str| -> Vec<String> {
        [
            "run",
            run_dir.to_str().unwrap(),
            "--input",
            input,
            "--duration",
            &duration,
            "--fast",
            "--json",
            "--hop",
            "0.1",
            "--smooth",
            "1",
            "--threshold",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let t = std::time::Instant::now();
    let mic = scarce()
        .env("HOME", &home)
        .args(args("mic"))
        .output()
        .unwrap();
    let mic_s = t.elapsed().as_secs_f64();
    assert!(
        mic.status.success(),
        "the ALSA file plugin must work here as the default capture device:\n{}",
        stderr(&mic)
    );
    let err = stderr(&mic);
    assert!(
        err.contains("listening to `") && err.contains("1 channel, 8000 Hz, i16"),
        "{err}"
    );
    assert!(err.contains("samples lost to overruns"), "{err}");
    let replay = run(&args(wav.to_str().unwrap())
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(replay.status.success(), "{}", stderr(&replay));
    let (m, r) = (decisions(&mic), decisions(&replay));
    let first_sound = |d: &[Value]| {
        d.iter()
            .position(|l| l["label"] != "silence")
            .expect("some windows hold sound")
    };
    let (fm, fr) = (first_sound(&m), first_sound(&r));
    // the capture may start at another offset: align on the first window with sound
    let exact = m[fm]["level_db"] == r[fr]["level_db"];
    let pairs: Vec<(&Value, &Value)> = m[fm..].iter().zip(&r[fr..]).collect();
    assert!(pairs.len() >= 40, "{} windows compared", pairs.len());
    if exact {
        assert_eq!(m.len(), r.len(), "the same windows");
    }
    for (a, b) in &pairs {
        assert_eq!(a["label"], b["label"], "mic {a}\nreplay {b}");
        if exact {
            assert_eq!(a["time_s"], b["time_s"]);
            assert_eq!(a["level_db"], b["level_db"]);
            let (ca, cb) = (a["confidence"].as_f64(), b["confidence"].as_f64());
            assert!(
                (ca.unwrap() - cb.unwrap()).abs() < 1e-3,
                "mic {a}\nreplay {b}"
            );
        }
    }
    let labels = |d: &[Value]| {
        let mut seq: Vec<String> = Vec::new();
        for l in d.iter().filter(|l| l["label"] != "silence") {
            let s = l["label"].as_str().unwrap().to_string();
            if seq.last() != Some(&s) {
                seq.push(s);
            }
        }
        seq
    };
    assert_eq!(labels(&m), labels(&r));
    eprintln!(
        "mic path: {} windows in {mic_s:.2} s, sample-exact alignment: {exact}",
        m.len()
    );

    // `scarce devices` lists the plugin as the default input device
    let o = scarce().env("HOME", &home).arg("devices").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let list = stdout(&o);
    assert!(
        list.lines()
            .any(|l| l.starts_with("  *") && l.contains("default")),
        "{list}"
    );
    assert!(list.contains("i16"), "{list}");
    // without the plugin (and on a machine without a sound card, as CI's), the devices
    // ALSA cannot open are listed without ALSA's own error lines
    let bare = tempfile::tempdir().unwrap();
    let o = scarce()
        .env("HOME", bare.path())
        .env_remove("SCARCE_ALSA_ERRORS")
        .arg("devices")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("ALSA lib"), "{}", stderr(&o));
    // a device that does not exist is named, with the ones that do
    for want in ["99", "no-such-microphone"] {
        let o = scarce()
            .env("HOME", &home)
            .args(["run", run_dir.to_str().unwrap(), "--input", "mic"])
            .args(["--input-device", want])
            .output()
            .unwrap();
        assert_user_error(&o, &[want, "no such device", "input devices:", "default"]);
    }
    let o = run_on(&run_dir, &wav, &["--input-device", "0"]);
    assert_user_error(&o, &["--input-device", "--input mic"]);
}

#[cfg(not(feature = "mic"))]
#[test]
fn a_build_without_the_mic_feature_says_so() {
    let o = run(&["devices"]);
    assert_user_error(&o, &["without microphone support", "mic"]);
    let o = run(&["run", "no-run", "--input", "mic"]);
    assert_user_error(&o, &["without microphone support"]);
}
