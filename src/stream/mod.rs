//! Live sound recognition: a trained sound model listening to a stream.
//!
//! ```text
//! source (WAV replay | microphone | device) -> window -> infer (network + post-processing) -> sink
//! ```
//!
//! - The source emits [`Chunk`]s of mono samples at the model's rate, stamped with the
//!   instant their last sample arrived.
//! - [`Windower`] cuts the stream into windows of the network's input length every
//!   `hop` samples.
//! - The inference stage levels each window as the training pipeline's `crop` stage
//!   levelled its recordings, runs the network, and [`Post`] turns the class
//!   probabilities into a [`Verdict`]: a moving average over the last `smooth` windows,
//!   a silence gate on the window's RMS level and a confidence threshold below which the
//!   answer is "unknown".
//! - Sinks print one line per decision, for people or as JSON lines; with a device
//!   input ([`wire`]) each decision also goes back to the device.
//!
//! Live edges drop the oldest item when full, so latency stays bounded when inference
//! is slower than the stream; drops are counted in the graph's metrics. Replays with
//! `fast` use blocking edges instead and lose nothing.

pub mod images;
#[cfg(feature = "mic")]
pub mod mic;
pub mod replay;
pub mod run;
pub mod wire;

use crate::graph::{BoxError, Graph, GraphError, RunReport};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `g` to the end. With `stats`, prints the graph's per-stage metrics to stderr
/// once a second meanwhile, followed by `extra()` (input counters).
pub(crate) fn run_graph<T: Clone + Send + 'static>(
    g: Graph<T>,
    stats: bool,
    extra: impl Fn() -> String + Send + 'static,
) -> Result<RunReport, GraphError> {
    let metrics = g.metrics();
    let done = Arc::new(AtomicBool::new(false));
    let printer = stats.then(|| {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if last.elapsed() >= Duration::from_secs(1) {
                    eprintln!("{}{}", metrics.snapshot().table(), extra());
                    last = Instant::now();
                }
            }
        })
    });
    let result = g.run();
    done.store(true, Ordering::Relaxed);
    if let Some(p) = printer {
        let _ = p.join();
    }
    result
}

/// Writes `line` to a sink's output and flushes it; `Ok(false)` when the reader went
/// away (`scarce run ... | head`), which stops the stream quietly.
pub(crate) fn write_line(out: &mut dyn Write, line: &str) -> std::io::Result<bool> {
    match writeln!(out, "{line}").and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        r => r.map(|_| true),
    }
}

/// The last flush of a sink's output; a reader that went away is not an error.
pub(crate) fn flush_output(out: &mut dyn Write) -> Result<(), BoxError> {
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The items of a live graph.
#[derive(Clone, Debug)]
pub enum Live {
    /// Samples from a source.
    Chunk(Chunk),
    /// A window for the network.
    Window(Window),
    /// A decision for the sinks.
    Decision(Decision),
}

/// Consecutive samples of the stream.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// Index of the first sample in the stream.
    pub start: u64,
    /// Mono samples in [-1, 1] at the model's rate.
    pub samples: Vec<f32>,
    /// When the last sample arrived.
    pub arrived: Instant,
}

/// One window of the network's input length.
#[derive(Clone, Debug)]
pub struct Window {
    /// Index of the first sample in the stream.
    pub start: u64,
    /// The samples.
    pub samples: Vec<f32>,
    /// When its last sample arrived.
    pub ready: Instant,
}

/// Cuts a stream of chunks into windows of `length` samples every `hop` samples.
#[derive(Debug)]
pub struct Windower {
    length: usize,
    hop: usize,
    buf: Vec<f32>,
    /// Stream index of `buf[0]`.
    buf_start: u64,
    /// Start of the next window.
    next: u64,
    /// Samples filled with zeros where chunks were missing.
    gap_samples: u64,
}

impl Windower {
    /// Windows of `length` samples, one every `hop` (both at least 1).
    pub fn new(length: usize, hop: usize) -> Self {
        Self {
            length: length.max(1),
            hop: hop.max(1),
            buf: Vec::new(),
            buf_start: 0,
            next: 0,
            gap_samples: 0,
        }
    }

    /// Samples that were missing from the stream (filled with zeros).
    pub fn gap_samples(&self) -> u64 {
        self.gap_samples
    }

    /// Adds a chunk and appends every window it completes to `out`. A chunk that starts
    /// after the end of the previous one (lost samples) is preceded by zeros; samples
    /// already seen are ignored.
    pub fn push(&mut self, chunk: &Chunk, out: &mut Vec<Window>) {
        let end = self.buf_start + self.buf.len() as u64;
        let mut samples = &chunk.samples[..];
        if chunk.start > end {
            let gap = chunk.start - end;
            self.gap_samples += gap;
            // never hold more zeros than one window needs
            let keep = gap.min(self.length as u64 + self.hop as u64) as usize;
            if keep < gap as usize {
                self.buf.clear();
                self.buf_start = chunk.start - keep as u64;
                self.next = self.next.max(self.buf_start);
            }
            self.buf.resize(self.buf.len() + keep, 0.0);
        } else if chunk.start < end {
            let seen = ((end - chunk.start) as usize).min(samples.len());
            samples = &samples[seen..];
        }
        self.buf.extend_from_slice(samples);
        let end = self.buf_start + self.buf.len() as u64;
        while self.next + self.length as u64 <= end {
            let off = (self.next - self.buf_start) as usize;
            out.push(Window {
                start: self.next,
                samples: self.buf[off..off + self.length].to_vec(),
                ready: chunk.arrived,
            });
            self.next += self.hop as u64;
        }
        // drop what no future window needs
        let keep_from = self.next.min(end);
        let drop = (keep_from - self.buf_start) as usize;
        if drop > 0 {
            self.buf.drain(..drop);
            self.buf_start = keep_from;
        }
    }
}

/// The files of a folder input that `check` accepts, and how many it did not. Files it
/// refuses are an error naming them, before anything is streamed, unless `skip`: then
/// each is left out with a warning. A folder with no usable file is an error either way.
pub fn usable_files(
    files: Vec<std::path::PathBuf>,
    skip: bool,
    check: impl Fn(&std::path::Path) -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<std::path::PathBuf>, usize)> {
    let total = files.len();
    if let [one] = &files[..] {
        // one file given: its own error
        check(one)?;
        return Ok((files, 0));
    }
    let mut bad = Vec::new();
    let mut good = Vec::with_capacity(total);
    for f in files {
        match check(&f) {
            Ok(()) => good.push(f),
            Err(e) => bad.push(format!("{e:#}")),
        }
    }
    if bad.is_empty() {
        return Ok((good, 0));
    }
    if skip && !good.is_empty() {
        for b in &bad {
            log::warn!("skipped: {b}");
        }
        return Ok((good, bad.len()));
    }
    const SHOWN: usize = 5;
    let mut msg = format!("{} of {total} files cannot be read:", bad.len());
    for b in bad.iter().take(SHOWN) {
        msg.push_str(&format!("\n  {b}"));
    }
    if bad.len() > SHOWN {
        msg.push_str(&format!("\n  and {} more", bad.len() - SHOWN));
    }
    if good.is_empty() {
        msg.push_str("\nnone of the folder's files can be used");
    } else {
        msg.push_str("\n(leave them out with --skip-bad-files)");
    }
    anyhow::bail!(msg)
}

/// A live source followed, when it ends by itself (a device that hangs up, the end of
/// `--duration`), by `tail` samples of silence: the windows that hold its last sound
/// are then scored, as a replay's silence after each file does. A stopped stream
/// (Ctrl-C) gets none.
pub struct WithTail<S> {
    inner: S,
    tail: usize,
    /// End of the samples seen so far.
    end: u64,
    stop: crate::graph::StopFlag,
    done: bool,
}

impl<S> WithTail<S> {
    /// `inner`, then `tail` samples of silence.
    pub fn new(inner: S, tail: usize, stop: crate::graph::StopFlag) -> Self {
        Self {
            inner,
            tail,
            end: 0,
            stop,
            done: false,
        }
    }
}

impl<S: crate::graph::Source<Live>> crate::graph::Source<Live> for WithTail<S> {
    fn next(&mut self) -> Result<Option<Live>, BoxError> {
        if self.done {
            return Ok(None);
        }
        match self.inner.next()? {
            Some(Live::Chunk(c)) => {
                self.end = self.end.max(c.start + c.samples.len() as u64);
                Ok(Some(Live::Chunk(c)))
            }
            Some(other) => Ok(Some(other)),
            None => {
                self.done = true;
                if self.end == 0 || self.tail == 0 || self.stop.is_stopped() {
                    return Ok(None);
                }
                Ok(Some(Live::Chunk(Chunk {
                    start: self.end,
                    samples: vec![0.0; self.tail],
                    arrived: Instant::now(),
                })))
            }
        }
    }
}

/// Appends the mean of each frame of `channels` interleaved samples to `out` (mono).
/// An incomplete last frame is dropped.
pub fn downmix_into(samples: impl Iterator<Item = f32>, channels: usize, out: &mut Vec<f32>) {
    let ch = channels.max(1);
    if ch == 1 {
        out.extend(samples);
        return;
    }
    let scale = 1.0 / ch as f32;
    let mut acc = 0.0f32;
    for (i, v) in samples.enumerate() {
        acc += v;
        if i % ch == ch - 1 {
            out.push(acc * scale);
            acc = 0.0;
        }
    }
}

/// Root mean square level of `x` in dB relative to full scale (-inf for silence
/// is reported as -200).
pub fn rms_db(x: &[f32]) -> f32 {
    if x.is_empty() {
        return -200.0;
    }
    let ms = x.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() / x.len() as f64;
    if ms <= 0.0 {
        -200.0
    } else {
        (10.0 * ms.log10()).max(-200.0) as f32
    }
}

/// The silence gate's default, dB full scale: low enough for every recording of FSDD
/// (its quietest speaker's windows lie at -58 to -40 dB, median -49), high enough for a
/// quiet room's microphone noise.
pub const DEFAULT_GATE_DB: f32 = -60.0;

/// Post-processing settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PostConfig {
    /// Windows averaged (moving average of the class probabilities; 1 = none).
    pub smooth: usize,
    /// Windows quieter than this RMS level (dBFS) are silence.
    pub gate_db: f32,
    /// Below this averaged probability the answer is "unknown".
    pub threshold: f32,
}

impl Default for PostConfig {
    fn default() -> Self {
        Self {
            smooth: 3,
            gate_db: DEFAULT_GATE_DB,
            threshold: 0.5,
        }
    }
}

/// What the stream holds at a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A class.
    Label(usize),
    /// Sound, but no class is likely enough.
    Unknown,
    /// Below the silence gate.
    Silence,
}

/// Moving average, silence gate and confidence threshold.
#[derive(Debug)]
pub struct Post {
    cfg: PostConfig,
    history: VecDeque<Vec<f32>>,
}

impl Post {
    /// Post-processing with `cfg`.
    pub fn new(cfg: PostConfig) -> Self {
        Self {
            cfg,
            history: VecDeque::new(),
        }
    }

    /// The verdict for a window of level `level_db` whose network output is `probs`,
    /// with its confidence and the averaged class scores. Silence clears the average,
    /// so one sound's scores do not leak into the next.
    pub fn decide(&mut self, level_db: f32, probs: &[f32]) -> (Verdict, f32, Vec<f32>) {
        if level_db < self.cfg.gate_db {
            self.history.clear();
            return (Verdict::Silence, 0.0, vec![0.0; probs.len()]);
        }
        self.history.push_back(probs.to_vec());
        while self.history.len() > self.cfg.smooth.max(1) {
            self.history.pop_front();
        }
        let mut mean = vec![0.0f32; probs.len()];
        for p in &self.history {
            for (m, v) in mean.iter_mut().zip(p) {
                *m += v;
            }
        }
        let n = self.history.len() as f32;
        mean.iter_mut().for_each(|m| *m /= n);
        let best = crate::eval::argmax(&mean);
        let conf = mean.get(best).copied().unwrap_or(0.0);
        let verdict = if conf < self.cfg.threshold {
            Verdict::Unknown
        } else {
            Verdict::Label(best)
        };
        (verdict, conf, mean)
    }
}

/// One decision of the stream.
#[derive(Clone, Debug)]
pub struct Decision {
    /// Stream time of the window's start, seconds.
    pub time_s: f64,
    /// Window length, seconds.
    pub length_s: f64,
    /// What was heard.
    pub verdict: Verdict,
    /// Averaged probability of the verdict's class (0 for silence).
    pub confidence: f32,
    /// Averaged class probabilities.
    pub scores: Vec<f32>,
    /// RMS level of the window, dBFS.
    pub level_db: f32,
    /// When the window's last sample arrived.
    pub ready: Instant,
}

impl Decision {
    /// The verdict in words: a class name, `unknown` or `silence`.
    pub fn label<'a>(&self, classes: &'a [String]) -> &'a str {
        match self.verdict {
            Verdict::Label(c) => classes.get(c).map(String::as_str).unwrap_or("?"),
            Verdict::Unknown => "unknown",
            Verdict::Silence => "silence",
        }
    }

    /// A line for people: stream time, label, confidence.
    pub fn human(&self, classes: &[String]) -> String {
        format!(
            "{:>9.2} s  {:<12} {:>5.1}%",
            self.time_s,
            self.label(classes),
            100.0 * self.confidence
        )
    }

    /// A JSON line: time, label, confidence, per-class scores, level, latency.
    pub fn json(&self, classes: &[String], latency_ms: f64) -> String {
        self.json_value(classes, latency_ms).to_string()
    }

    /// The object of [`Decision::json`].
    pub fn json_value(&self, classes: &[String], latency_ms: f64) -> serde_json::Value {
        let scores: serde_json::Map<String, serde_json::Value> = classes
            .iter()
            .zip(&self.scores)
            .map(|(c, s)| (c.clone(), serde_json::json!(round4(*s as f64))))
            .collect();
        serde_json::json!({
            "time_s": round4(self.time_s),
            "label": self.label(classes),
            "confidence": round4(self.confidence as f64),
            "scores": scores,
            "level_db": round4(self.level_db as f64),
            "latency_ms": round4(latency_ms),
            // wall-clock time at which the window's last sample arrived
            "arrived_unix_s": std::time::SystemTime::now()
                .checked_sub(self.ready.elapsed())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| (d.as_secs_f64() * 1e3).round() / 1e3),
        })
    }
}

pub(crate) fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// What a file given to `scarce run --input` holds, told by its first bytes; for a
/// clear word when it does not suit the run's model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// RIFF/WAVE audio.
    Wav,
    /// A PNG or JPEG image.
    Image,
    /// An IDX file of images.
    Idx,
    /// A gzip file (the built-in IDX files are gzipped).
    Gzip,
}

impl InputKind {
    /// The kind of file `path`, or `None` for a folder, an unreadable file or another
    /// kind (whose reader then names the problem).
    pub fn of(path: &std::path::Path) -> Option<Self> {
        use std::io::Read;
        if !path.is_file() {
            return None;
        }
        let mut head = [0u8; 12];
        let mut f = std::fs::File::open(path).ok()?;
        let n = f.read(&mut head).ok()?;
        let head = &head[..n];
        if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE".as_slice()) {
            Some(InputKind::Wav)
        } else if head.starts_with(b"\x89PNG") || head.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(InputKind::Image)
        } else if head.starts_with(&[0, 0, 0x08]) {
            Some(InputKind::Idx)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(InputKind::Gzip)
        } else {
            None
        }
    }

    /// `a WAV file`, `an image`, `an IDX file`, `a gzip file`.
    pub fn words(self) -> &'static str {
        match self {
            InputKind::Wav => "a WAV file",
            InputKind::Image => "an image",
            InputKind::Idx => "an IDX file",
            InputKind::Gzip => "a gzip file",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(start: u64, n: usize) -> Chunk {
        Chunk {
            start,
            samples: (start..start + n as u64).map(|i| i as f32).collect(),
            arrived: Instant::now(),
        }
    }

    #[test]
    fn windows_have_the_length_and_hop_asked_whatever_the_chunk_sizes() {
        for sizes in [
            vec![7usize; 20],
            vec![1; 140],
            vec![50, 3, 80, 7],
            vec![140],
        ] {
            let mut w = Windower::new(20, 15);
            let mut out = Vec::new();
            let mut start = 0u64;
            for n in sizes {
                w.push(&chunk(start, n), &mut out);
                start += n as u64;
            }
            // windows start at 0, 15, ..., up to the last that fits in 140 samples
            let starts: Vec<u64> = out.iter().map(|w| w.start).collect();
            assert_eq!(starts, (0..=120).step_by(15).collect::<Vec<u64>>());
            for win in &out {
                assert_eq!(win.samples.len(), 20);
                assert_eq!(win.samples[0], win.start as f32);
                assert_eq!(win.samples[19], (win.start + 19) as f32);
            }
            assert_eq!(w.gap_samples(), 0);
            assert!(w.buf.len() <= 20 + 140, "buffer stays bounded");
        }
    }

    #[test]
    fn missing_samples_become_zeros_and_are_counted() {
        let mut w = Windower::new(10, 10);
        let mut out = Vec::new();
        w.push(&chunk(0, 5), &mut out);
        w.push(&chunk(8, 12), &mut out); // 5..8 lost
        assert_eq!(w.gap_samples(), 3);
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0].samples[4..9], &[4.0, 0.0, 0.0, 0.0, 8.0]);
        // a long gap does not allocate its length in zeros
        w.push(&chunk(1_000_000, 10), &mut out);
        assert_eq!(w.gap_samples(), 3 + 1_000_000 - 20);
        assert!(w.buf.len() <= 40);
        let last = &out.last().unwrap().samples;
        assert_eq!(last[0], 1_000_000.0);
        assert_eq!(last[9], 1_000_009.0);
    }

    #[test]
    fn silence_gate_threshold_and_moving_average() {
        let mut p = Post::new(PostConfig {
            smooth: 2,
            gate_db: -40.0,
            threshold: 0.6,
        });
        let (v, c, _) = p.decide(-60.0, &[0.9, 0.1]);
        assert_eq!((v, c), (Verdict::Silence, 0.0));
        let (v, c, _) = p.decide(-10.0, &[0.9, 0.1]);
        assert_eq!(v, Verdict::Label(0));
        assert!((c - 0.9).abs() < 1e-6);
        // averaged with the previous window: (0.9 + 0.2) / 2 = 0.55 < 0.6
        let (v, c, s) = p.decide(-10.0, &[0.2, 0.8]);
        assert_eq!(v, Verdict::Unknown);
        assert!((c - 0.55).abs() < 1e-6 && (s[1] - 0.45).abs() < 1e-6);
        // only the last two windows count
        let (v, _, _) = p.decide(-10.0, &[0.2, 0.8]);
        assert_eq!(v, Verdict::Label(1));
        // silence resets the average
        p.decide(-80.0, &[0.5, 0.5]);
        let (v, c, _) = p.decide(-10.0, &[0.7, 0.3]);
        assert_eq!(v, Verdict::Label(0));
        assert!((c - 0.7).abs() < 1e-6);
    }

    #[test]
    fn rms_level_of_a_full_scale_square_wave_is_zero_db() {
        let x: Vec<f32> = (0..100)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!(rms_db(&x).abs() < 1e-4);
        let half: Vec<f32> = x.iter().map(|v| v * 0.5).collect();
        assert!((rms_db(&half) + 6.0206).abs() < 1e-3);
        assert_eq!(rms_db(&[0.0; 10]), -200.0);
        assert_eq!(rms_db(&[]), -200.0);
    }

    #[test]
    fn decisions_print_as_lines_and_json() {
        let classes: Vec<String> = ["zero", "one"].iter().map(|s| s.to_string()).collect();
        let d = Decision {
            time_s: 1.5,
            length_s: 1.0,
            verdict: Verdict::Label(1),
            confidence: 0.8123,
            scores: vec![0.1877, 0.8123],
            level_db: -20.0,
            ready: Instant::now(),
        };
        assert!(d.human(&classes).contains("one"));
        assert!(d.human(&classes).contains("81.2%"));
        let v: serde_json::Value = serde_json::from_str(&d.json(&classes, 12.5)).unwrap();
        assert_eq!(v["label"], "one");
        assert_eq!(v["scores"]["zero"], 0.1877);
        assert_eq!(v["latency_ms"], 12.5);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((v["arrived_unix_s"].as_f64().unwrap() - now).abs() < 60.0);
        let u = Decision {
            verdict: Verdict::Unknown,
            ..d
        };
        assert_eq!(u.label(&classes), "unknown");
    }

    #[test]
    fn input_files_are_told_apart_by_their_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let wav = file("a.wav", b"RIFF\x24\0\0\0WAVEfmt ");
        assert_eq!(InputKind::of(&wav), Some(InputKind::Wav));
        let png = file("b.png", b"\x89PNG\r\n\x1a\n\0\0\0\x0d");
        assert_eq!(InputKind::of(&png), Some(InputKind::Image));
        let jpeg = file("c.jpg", &[0xff, 0xd8, 0xff, 0xe0, 0, 0x10]);
        assert_eq!(InputKind::of(&jpeg), Some(InputKind::Image));
        let idx = file("d-idx3-ubyte", &[0, 0, 8, 3, 0, 0, 0, 1]);
        assert_eq!(InputKind::of(&idx), Some(InputKind::Idx));
        let gz = file("d-idx3-ubyte.gz", &[0x1f, 0x8b, 8, 0]);
        assert_eq!(InputKind::of(&gz), Some(InputKind::Gzip));
        // a RIFF file of another kind, text, an empty file, a folder: left to the readers
        assert_eq!(InputKind::of(&file("e.avi", b"RIFF\0\0\0\0AVI LIST")), None);
        assert_eq!(InputKind::of(&file("f.txt", b"hello")), None);
        assert_eq!(InputKind::of(&file("g.wav", b"")), None);
        assert_eq!(InputKind::of(dir.path()), None);
    }

    #[test]
    fn a_source_that_ends_by_itself_is_followed_by_its_tail_of_silence() {
        use crate::graph::{Source, StopFlag};
        struct Two(u64);
        impl Source<Live> for Two {
            fn next(&mut self) -> Result<Option<Live>, BoxError> {
                if self.0 == 2 {
                    return Ok(None);
                }
                self.0 += 1;
                Ok(Some(Live::Chunk(Chunk {
                    start: (self.0 - 1) * 10,
                    samples: vec![1.0; 10],
                    arrived: Instant::now(),
                })))
            }
        }
        let chunks = |stop: StopFlag| {
            let mut s = WithTail::new(Two(0), 5, stop);
            let mut out = Vec::new();
            while let Some(Live::Chunk(c)) = s.next().unwrap() {
                out.push((c.start, c.samples));
            }
            assert!(s.next().unwrap().is_none());
            out
        };
        let got = chunks(StopFlag::new());
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], (20, vec![0.0; 5]));
        // stopped (Ctrl-C): no tail
        let stop = StopFlag::new();
        stop.stop();
        assert_eq!(chunks(stop).len(), 2);
    }
}
