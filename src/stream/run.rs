//! `scarce run`: a trained sound model listening to a replayed stream, through the
//! stage graph (source -> window -> infer -> print).

use super::replay::{replay_files, Replay, Timeline};
use super::wire::{ResultSender, Transport, WireInput, WireSource};
use super::{rms_db, Decision, Live, Post, PostConfig, Verdict, Window, Windower};
use crate::audio::CropConfig;
use crate::graph::{BoxError, EdgeSpec, Graph, Histogram, RunReport, Sink, Stage, StopFlag};
use crate::method::MethodKind;
use crate::model::Net;
use crate::train::checkpoint::{load_module, require_latest};
use crate::train::session::RunSettings;
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What to listen to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A WAV file, or a folder of WAV files, replayed.
    Replay(PathBuf),
    /// The microphone (`--input mic`).
    Mic,
    /// A device speaking the wire protocol (`--serial`, `--tcp`, `--stdin`).
    Wire(WireInput),
}

impl Input {
    /// `--input` as given: [`MIC`] selects the microphone, anything else is a path.
    pub fn from_arg(input: &Path) -> Self {
        if is_mic(input) {
            Input::Mic
        } else {
            Input::Replay(input.to_path_buf())
        }
    }
}

/// How to stream.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// The input.
    pub input: Input,
    /// With `input` = `mic`: the input device (index, identifier or name); `None` = the
    /// default input device.
    pub input_device: Option<String>,
    /// Stop after this many seconds of audio.
    pub duration_s: Option<f64>,
    /// Replay as fast as the graph takes it (lossless edges) instead of in real time.
    /// With the microphone, edges block too: a model that falls behind fills the capture
    /// buffer, whose overruns are counted.
    pub fast: bool,
    /// Seconds between window starts.
    pub hop_s: f64,
    /// Post-processing.
    pub post: PostConfig,
    /// JSON lines instead of lines for people.
    pub json: bool,
    /// Print the graph's per-stage metrics once a second (to stderr).
    pub stats: bool,
    /// `cpu`, `wgpu`, `cuda:N`.
    pub device: String,
    /// A folder's unreadable recordings are left out with a warning instead of
    /// stopping the stream before it starts.
    pub skip_bad_files: bool,
}

/// What a stream did.
#[derive(Debug)]
pub struct LiveSummary {
    /// Windows decided.
    pub windows: u64,
    /// Windows with a class (not silence, not unknown).
    pub labelled: u64,
    /// Windows below the silence gate.
    pub silent: u64,
    /// Unreadable files of a folder left out (`--skip-bad-files`).
    pub skipped_files: usize,
    /// The silence gate, dB full scale.
    pub gate_db: f32,
    /// Seconds of audio streamed: the input's own, without the silence added after
    /// each replayed file or at a stream's end.
    pub audio_s: f64,
    /// Seconds that went through the graph: replays count the silence after each file.
    pub stream_s: f64,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Latency from a window's last sample arriving to its line being written.
    pub latency: Histogram,
    /// Windows dropped because inference fell behind.
    pub dropped_windows: u64,
    /// The graph's final metrics.
    pub report: RunReport,
    /// The output was closed by its reader (a pipe), which stopped the stream.
    pub output_closed: bool,
    /// Microphone input: device frames lost because the capture buffer was full.
    pub overrun_samples: Option<u64>,
    /// Microphone input: overruns reported by the audio backend.
    pub xruns: u64,
    /// Microphone or device input: why the stream ended before it was stopped (the
    /// device failed or went away).
    pub input_failed: Option<String>,
    /// Device input: frames received, lost in transit, corrupt.
    pub device_frames: Option<(u64, u64, u64)>,
}

impl LiveSummary {
    /// One line: windows, latency percentiles, speed, drops.
    pub fn line(&self) -> String {
        let ms = |q: f64| self.latency.percentile_duration(q).as_secs_f64() * 1e3;
        format!(
            "{} windows ({} labelled) from {:.1} s of audio in {:.1} s ({:.1}x real time); latency p50 {:.1} ms, p99 {:.1} ms; {} windows dropped",
            self.windows,
            self.labelled,
            self.audio_s,
            self.wall_s,
            if self.wall_s > 0.0 { self.stream_s / self.wall_s } else { 0.0 },
            ms(0.5),
            ms(0.99),
            self.dropped_windows
        ) + &skipped_words(self.skipped_files)
            + &self.silence_words()
            + &self.overrun_words()
            + &self
                .device_frames
                .map(|(n, lost, bad)| {
                    format!("; {n} device frames received, {lost} lost, {bad} corrupt")
                })
                .unwrap_or_default()
    }

    fn silence_words(&self) -> String {
        if self.windows > 0 && self.silent == self.windows {
            format!(
                "; every window was below the silence gate (--gate-db {})",
                self.gate_db
            )
        } else {
            String::new()
        }
    }

    fn overrun_words(&self) -> String {
        match self.overrun_samples {
            None => String::new(),
            Some(n) if self.xruns > 0 => format!(
                "; {n} samples lost to overruns ({} reported by the audio system)",
                self.xruns
            ),
            Some(n) => format!("; {n} samples lost to overruns"),
        }
    }
}

/// `; N unreadable files skipped` (nothing for none).
pub fn skipped_words(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "; 1 unreadable file skipped".to_string(),
        n => format!("; {n} unreadable files skipped"),
    }
}

/// `--input mic`: the microphone instead of a file.
pub const MIC: &str = "mic";

/// Whether `input` selects the microphone.
pub fn is_mic(input: &Path) -> bool {
    input == Path::new(MIC)
}

/// The trained model of a run folder, ready to stream.
pub struct LiveModel {
    net: Net,
    device: Device,
    /// Sample rate the network takes.
    pub rate: u32,
    /// The training pipeline's crop settings (input length, levelling).
    pub crop: CropConfig,
    /// Class names.
    pub classes: Vec<String>,
}

impl LiveModel {
    /// Loads the latest checkpoint of `run` on `device`.
    pub fn load(run: &Path, device: &str) -> Result<Self> {
        let settings = RunSettings::load(run)?;
        let (file, plan) = settings.pipeline(run)?;
        let (rate, crop, kind) = file.sound_input(&plan)?;
        let cfg = file.method_config(&plan)?;
        if !matches!(cfg.kind, MethodKind::SourceOnly | MethodKind::Bc) {
            bail!(
                "{}: streaming takes single-network sound models (methods source_only and bc)",
                run.display()
            );
        }
        let device = device
            .parse::<crate::model::device::DeviceChoice>()?
            .device()?;
        let (ckpt, _) = require_latest(run)?;
        let net = load_module(&ckpt.join("model.bpk"), cfg.net.init(&device))?;
        let n = cfg.net.num_classes();
        let classes = match crate::data::sound::list(kind, &settings.data_dir) {
            Ok(listing) if listing.classes.len() == n => listing.classes,
            _ => (0..n).map(|c| c.to_string()).collect(),
        };
        Ok(Self {
            net,
            device,
            rate,
            crop,
            classes,
        })
    }

    /// Class probabilities of one window (levelled as in training).
    pub fn probabilities(&self, window: &[f32]) -> Vec<f32> {
        let scale = self.crop.level.scale(window);
        let x: Vec<f32> = window.iter().map(|v| v * scale).collect();
        let n = x.len();
        let x = Tensor::<4>::from_data(TensorData::new(x, [1, 1, 1, n]), &self.device);
        softmax(self.net.forward(x), 1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default()
    }
}

struct WindowStage {
    w: Windower,
    buf: Vec<Window>,
}

impl Stage<Live> for WindowStage {
    fn process(&mut self, item: Live, out: &mut Vec<Live>) -> Result<(), BoxError> {
        if let Live::Chunk(c) = item {
            self.w.push(&c, &mut self.buf);
            out.extend(self.buf.drain(..).map(Live::Window));
        }
        Ok(())
    }
}

struct Infer {
    model: LiveModel,
    post: Post,
    gate_db: f32,
}

impl Stage<Live> for Infer {
    fn process(&mut self, item: Live, out: &mut Vec<Live>) -> Result<(), BoxError> {
        let Live::Window(w) = item else {
            return Ok(());
        };
        let level_db = rms_db(&w.samples);
        // below the gate the network is not run at all
        let probs = if level_db < self.gate_db {
            vec![0.0; self.model.classes.len()]
        } else {
            self.model.probabilities(&w.samples)
        };
        let (verdict, confidence, scores) = self.post.decide(level_db, &probs);
        let rate = self.model.rate as f64;
        out.push(Live::Decision(Decision {
            time_s: w.start as f64 / rate,
            length_s: w.samples.len() as f64 / rate,
            verdict,
            confidence,
            scores,
            level_db,
            ready: w.ready,
        }));
        Ok(())
    }
}

#[derive(Default)]
struct Tally {
    windows: u64,
    labelled: u64,
    silent: u64,
    latency: Histogram,
    closed: bool,
}

/// The longest `--hop`, in seconds.
const MAX_HOP_S: f64 = 3600.0;

/// With `--fast`, how long a decision may wait for the device to read earlier ones
/// before results are dropped instead (as in real time).
const RESULT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

struct Print {
    classes: Vec<String>,
    json: bool,
    out: Box<dyn Write + Send>,
    tally: Arc<Mutex<Tally>>,
    /// Set when the reader of the output went away (`scarce run ... | head`): the
    /// stream stops quietly.
    stop: StopFlag,
    /// Device input: decisions go back to the device.
    results: Option<ResultSender>,
    /// Replays: which file each decision heard.
    files: Option<ReplayFiles>,
}

/// What a replay's sink needs to name the file a decision heard.
struct ReplayFiles {
    timeline: Timeline,
    /// The stream's sample rate.
    rate: f64,
    /// Lines for people name each file before its first decision (a folder).
    headers: bool,
    /// The file of the last header printed.
    last: Option<PathBuf>,
    /// Lines printed for it besides its header.
    lines: usize,
}

/// The line for a file of a folder whose every window was below the silence gate.
const ALL_SILENCE: &str = "  (silence throughout: every window below --gate-db)";

impl Sink<Live> for Print {
    fn consume(&mut self, item: Live) -> Result<(), BoxError> {
        let Live::Decision(d) = item else {
            return Ok(());
        };
        if let Some(r) = &mut self.results {
            r.send(d.verdict, d.confidence, d.time_s + d.length_s);
        }
        let heard = self.files.as_ref().map(|f| {
            let at = |s: f64| (s * f.rate).round() as u64;
            (f.timeline.file_of(at(d.time_s), at(d.length_s)), f.rate)
        });
        let mut lines = Vec::with_capacity(2);
        if self.json {
            let mut v = d.json_value(&self.classes, d.ready.elapsed().as_secs_f64() * 1e3);
            if let Some((placed, rate)) = &heard {
                // null: the window held only the silence between files
                v["file"] =
                    serde_json::json!(placed.as_ref().map(|p| p.path.display().to_string()));
                v["file_time_s"] = serde_json::json!(placed
                    .as_ref()
                    .map(|p| super::round4(d.time_s - p.start as f64 / rate)));
            }
            lines.push(v.to_string());
        } else {
            // each file of a folder by name, before its first window, even if every
            // window of it is silence
            if let (Some(f), Some((Some(placed), _))) = (&mut self.files, &heard) {
                if f.headers && f.last.as_ref() != Some(&placed.path) {
                    if f.last.is_some() && f.lines == 0 {
                        lines.push(ALL_SILENCE.to_string());
                    }
                    f.last = Some(placed.path.clone());
                    f.lines = 0;
                    lines.push(placed.path.display().to_string());
                }
            }
            if d.verdict != Verdict::Silence {
                if let Some(f) = &mut self.files {
                    f.lines += 1;
                }
                lines.push(d.human(&self.classes));
            }
        }
        for line in lines {
            if !super::write_line(&mut self.out, &line)? {
                self.tally.lock().expect("tally lock").closed = true;
                self.stop.stop();
                return Ok(());
            }
        }
        let latency = d.ready.elapsed();
        let mut t = self.tally.lock().expect("tally lock");
        t.windows += 1;
        t.labelled += matches!(d.verdict, Verdict::Label(_)) as u64;
        t.silent += matches!(d.verdict, Verdict::Silence) as u64;
        t.latency.record_duration(latency);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        let closed = self.tally.lock().expect("tally lock").closed;
        if let Some(f) = &self.files {
            if !self.json && !closed && f.last.is_some() && f.lines == 0 {
                // a reader that went away is not an error here either
                super::write_line(&mut self.out, ALL_SILENCE)?;
            }
        }
        super::flush_output(&mut self.out)
    }
}

/// Streams `opts.input` through the model of run folder `run`, writing one line per
/// decision to `out`, until the input ends or `stop` is set.
pub fn run_live(
    run: &Path,
    opts: &LiveOptions,
    stop: StopFlag,
    out: Box<dyn Write + Send>,
) -> Result<LiveSummary> {
    let mic = opts.input == Input::Mic;
    #[cfg(not(feature = "mic"))]
    if mic {
        bail!("--input {MIC}: {NO_MIC}");
    }
    if opts.input_device.is_some() && !mic {
        bail!("--input-device chooses a microphone: use it with --input {MIC}");
    }
    if let Some(d) = opts.duration_s {
        if !d.is_finite() || d <= 0.0 {
            bail!("--duration must be more than 0 seconds (got {d})");
        }
    }
    if !opts.hop_s.is_finite() || opts.hop_s <= 0.0 {
        bail!("--hop must be more than 0 seconds (got {})", opts.hop_s);
    }
    let model = LiveModel::load(run, &opts.device)
        .with_context(|| format!("loading the model of {}", run.display()))?;
    let rate = model.rate;
    let length = model.crop.length;
    if opts.hop_s * (rate as f64) < 1.0 {
        bail!(
            "--hop {} is shorter than one sample of the model's {rate} Hz (at least {:.6} s)",
            opts.hop_s,
            1.0 / rate as f64
        );
    }
    if opts.hop_s > MAX_HOP_S {
        bail!("--hop is too long: windows start at most {MAX_HOP_S} s apart");
    }
    let hop = ((opts.hop_s * rate as f64).round() as usize).max(1);
    let (files, skipped_files) = match &opts.input {
        Input::Replay(path) => {
            super::usable_files(replay_files(path)?, opts.skip_bad_files, |f| {
                Ok(crate::audio::check_wav(f)?)
            })?
        }
        _ => (Vec::new(), 0),
    };
    let limit = opts
        .duration_s
        .map(|d| ((d * rate as f64).round() as u64).max(1));
    // 20 ms chunks
    let chunk = (rate as usize / 50).max(1);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let streamed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // replays only: the samples with the silence after each file (else the same as
    // `streamed`)
    let through = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut g: Graph<Live> = Graph::new().with_stop(stop.clone());
    let mut mic_stats: Option<Arc<dyn CaptureStats>> = None;
    let mut results = None;
    let mut wire_failure = None;
    let mut replayed = None;
    let source = if mic {
        let tail = length + hop.min(length);
        let (id, stats) = add_mic(
            &mut g,
            opts,
            (rate, chunk, tail),
            limit,
            stop.clone(),
            &streamed,
        )?;
        mic_stats = Some(stats);
        id
    } else if let Input::Wire(w) = &opts.input {
        let t = Transport::open(w, &stop)?;
        let (s, r) = WireSource::new(t, rate, chunk, limit, stop.clone(), &g.metrics())?;
        // --fast is lossless: a device that reads its results late still gets them all
        results = r.map(|r| if opts.fast { r.waiting(RESULT_WAIT) } else { r });
        wire_failure = Some(s.failure());
        let tail = length + hop.min(length);
        g.add_source(
            "device",
            super::WithTail::new(s.counting(streamed.clone()), tail, stop.clone()),
        )
    } else {
        // a window and a hop of silence after each file: at least one window of
        // silence between two files clears the moving average, so that one file's
        // scores do not leak into the next one's (a hop longer than a window already
        // keeps windows apart)
        let timeline = Timeline::default();
        replayed = Some(ReplayFiles {
            timeline: timeline.clone(),
            rate: rate as f64,
            headers: matches!(&opts.input, Input::Replay(p) if p.is_dir()),
            last: None,
            lines: 0,
        });
        let r = Replay::new(files, rate, chunk, length + hop.min(length), opts.fast)
            .counting(streamed.clone())
            .counting_stream(through.clone())
            .placing(timeline);
        match limit {
            Some(l) => g.add_source("replay", r.limit(l)),
            None => g.add_source("replay", r),
        }
    };
    let window = g.add_stage(
        "window",
        WindowStage {
            w: Windower::new(length, hop),
            buf: Vec::new(),
        },
    );
    let classes = model.classes.clone();
    let infer = g.add_stage(
        "infer",
        Infer {
            model,
            post: Post::new(opts.post),
            gate_db: opts.post.gate_db,
        },
    );
    let replayed_input = replayed.is_some();
    let sink = g.add_sink(
        "print",
        Print {
            classes,
            json: opts.json,
            out,
            tally: tally.clone(),
            stop,
            results,
            files: replayed,
        },
    );
    // a device or a microphone sets its own pace: --fast only makes the edges block
    let (chunks, windows) = if opts.fast {
        (EdgeSpec::block(64), EdgeSpec::block(8))
    } else {
        // live: keep the newest, count what falls behind. The silence that ends a stream
        // comes as one chunk and makes a window's worth of windows at once: room for
        // those besides the usual four, so a model that keeps up loses none of them
        let burst = length.div_ceil(hop);
        (
            EdgeSpec::drop_oldest(256),
            EdgeSpec::drop_oldest(4 + burst.min(64)),
        )
    };
    g.connect(source, window, chunks)?;
    g.connect(window, infer, windows)?;
    g.connect(infer, sink, EdgeSpec::block(64))?;

    let lost = mic_stats.clone();
    let started = Instant::now();
    let report = super::run_graph(g, opts.stats, move || {
        lost.as_ref()
            .map(|s| s.overruns())
            .map(|(samples, xruns)| {
                format!(
                    "mic overruns: {samples} samples lost, {xruns} reported by the audio system\n"
                )
            })
            .unwrap_or_default()
    })?;
    let wall_s = started.elapsed().as_secs_f64();
    let dropped_windows = report
        .edges
        .iter()
        .filter(|e| e.to == "infer")
        .map(|e| e.dropped)
        .sum();
    let t = std::mem::take(&mut *tally.lock().expect("tally lock"));
    let (overrun_samples, xruns, input_failed) = match &mic_stats {
        Some(s) => {
            let (lost, xruns) = s.overruns();
            (Some(lost), xruns, s.failure())
        }
        None => (None, 0, None),
    };
    let input_failed = input_failed
        .or_else(|| wire_failure.and_then(|f| f.lock().unwrap_or_else(|e| e.into_inner()).take()));
    let device_frames = matches!(opts.input, Input::Wire(_)).then(|| {
        let c = |i: usize| report.counter(super::wire::COUNTERS[i]);
        (c(0), c(1), c(2))
    });
    Ok(LiveSummary {
        windows: t.windows,
        labelled: t.labelled,
        silent: t.silent,
        skipped_files,
        gate_db: opts.post.gate_db,
        audio_s: streamed.load(std::sync::atomic::Ordering::Relaxed) as f64 / rate as f64,
        stream_s: if replayed_input { &through } else { &streamed }
            .load(std::sync::atomic::Ordering::Relaxed) as f64
            / rate as f64,
        wall_s,
        latency: t.latency,
        dropped_windows,
        report,
        output_closed: t.closed,
        overrun_samples,
        xruns,
        input_failed,
        device_frames,
    })
}

/// Capture counters the summary reads.
trait CaptureStats: Send + Sync {
    /// (samples lost to a full capture buffer, overruns the audio system reported)
    fn overruns(&self) -> (u64, u64);
    /// Why the capture ended early.
    fn failure(&self) -> Option<String>;
}

#[cfg(feature = "mic")]
impl CaptureStats for super::mic::MicStats {
    fn overruns(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.lost_frames.load(Relaxed), self.xruns.load(Relaxed))
    }

    fn failure(&self) -> Option<String> {
        self.ended()
    }
}

/// Adds the microphone source `mic` to `g`.
#[cfg(feature = "mic")]
fn add_mic(
    g: &mut Graph<Live>,
    opts: &LiveOptions,
    (rate, chunk, tail): (u32, usize, usize),
    limit: Option<u64>,
    stop: StopFlag,
    streamed: &Arc<std::sync::atomic::AtomicU64>,
) -> Result<(crate::graph::NodeId, Arc<dyn CaptureStats>)> {
    let m = super::mic::Mic::open(
        &super::mic::MicOptions {
            device: opts.input_device.clone(),
            rate,
            chunk,
            limit,
        },
        stop.clone(),
    )?
    .counting(streamed.clone());
    eprintln!("listening to `{}` ({})", m.name, m.config);
    let stats = m.stats();
    Ok((
        g.add_source("mic", super::WithTail::new(m, tail, stop)),
        stats,
    ))
}

#[cfg(not(feature = "mic"))]
fn add_mic(
    _: &mut Graph<Live>,
    _: &LiveOptions,
    _: (u32, usize, usize),
    _: Option<u64>,
    _: StopFlag,
    _: &Arc<std::sync::atomic::AtomicU64>,
) -> Result<(crate::graph::NodeId, Arc<dyn CaptureStats>)> {
    bail!("--input {MIC}: {NO_MIC}")
}

/// Why `--input mic` and `scarce devices` do nothing in a build without the `mic` feature.
pub const NO_MIC: &str = "this scarce was built without microphone support: rebuild with the `mic` cargo feature (on by default; on Linux it needs libasound2-dev)";
