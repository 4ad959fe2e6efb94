//! `scarce run` for image models: digits from a replayed source, one decision per image.
//!
//! ```text
//! images (PNG/JPEG files, a folder of them, an IDX file) -> preprocess -> infer -> print
//! ```
//!
//! Every image is made grey (luma, 0-1; `invert` for dark digits on a light background),
//! resized to the side and padding of the run's target data set (the first `eval` set
//! of its pipeline: a USPS target is 20x20 in a 28x28 frame) and normalised as the
//! training pipeline normalised it. The answer is the model's own: an open-set model
//! (OSBP) answers `unknown` when its last output wins, a source-only model trained with
//! `reject_below` when its top probability is below that; `threshold` adds a rejection
//! below a top probability to any model.

use crate::data::idx::read_idx;
use crate::data::usps::resize_bilinear;
use crate::eval::argmax;
use crate::graph::{
    BoxError, EdgeSpec, Graph, Histogram, RunReport, Sink, Source, Stage, StopFlag,
};
use crate::method::{load_predictor, Predictor};
use crate::model::NetConfig;
use crate::openset::OpenSet;
use crate::stage::normalize::Normalize;
use crate::train::checkpoint::require_latest;
use crate::train::session::RunSettings;
use anyhow::{bail, Context, Result};
use burn::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// File extensions read as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// The trained image model of a run folder, with the preprocessing of its target data.
pub struct ImageModel {
    net: Box<dyn Predictor>,
    device: Device,
    /// Side the image is resized to, before padding.
    pub side: usize,
    /// Background pixels added on every side after resizing.
    pub pad: usize,
    normalize: Option<Normalize>,
    open: Option<OpenSet>,
    /// Names of the known classes (the network's outputs, less "unknown").
    pub classes: Vec<String>,
}

impl ImageModel {
    /// Whether run folder `run` holds an image model (not a sound one).
    pub fn is_image_run(run: &Path) -> Result<bool> {
        let settings = RunSettings::load(run)?;
        let (file, plan) = settings.pipeline(run)?;
        Ok(matches!(file.network_config(&plan)?, NetConfig::Digits(_)))
    }

    /// Loads the latest checkpoint of `run` on `device` (`cpu`, `wgpu`, `cuda:N`).
    pub fn load(run: &Path, device: &str) -> Result<Self> {
        let settings = RunSettings::load(run)?;
        let (file, plan) = settings.pipeline(run)?;
        let cfg = file.method_config(&plan)?;
        if !matches!(cfg.net, NetConfig::Digits(_)) {
            bail!("{}: not an image model", run.display());
        }
        let device = device
            .parse::<crate::model::device::DeviceChoice>()?
            .device()?;
        let (ckpt, _) = require_latest(run)?;
        let net = load_predictor(&cfg, &ckpt, &device)?;
        let train = plan.train_stage()?;
        let normalize = file.preprocessing_before(&plan, &train.name);
        // the target domain's geometry: the first evaluation set, else any image set
        let eval = file
            .spec
            .train
            .as_ref()
            .and_then(|t| t.get_ref().eval.first().map(|e| e.get_ref().clone()));
        let spec = eval
            .and_then(|e| file.spec.data.get(&e))
            .or_else(|| file.spec.data.values().next())
            .map(|d| d.get_ref())
            .context("the run's pipeline declares no data set")?;
        let open = cfg.open_set();
        let known = match open {
            Some(o) => o.known,
            None => cfg.net.num_classes(),
        };
        Ok(Self {
            net,
            device,
            side: spec.resize_side(),
            pad: spec.pad(),
            normalize,
            open,
            classes: (0..known).map(|c| c.to_string()).collect(),
        })
    }

    /// The preprocessing of this model's input.
    pub fn prep(&self) -> Prep {
        Prep {
            side: self.side,
            pad: self.pad,
            normalize: self.normalize,
        }
    }

    /// Output probabilities of one prepared image (`K` known classes, then unknown for
    /// an open-set model).
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let side = self.side + 2 * self.pad;
        let t = Tensor::<4>::from_data(
            TensorData::new(x.to_vec(), [1, 1, side, side]),
            &self.device,
        );
        self.net
            .predict(t)
            .into_iter()
            .next()
            .and_then(|p| p.into_data().try_to_vec::<f32>().ok())
            .unwrap_or_default()
    }

    /// The answer for `probs`: a known class (`Some`) or unknown (`None`), and its
    /// probability (for unknown: the unknown output's, or the top known probability
    /// that fell short).
    pub fn decide(&self, probs: &[f32], threshold: Option<f32>) -> (Option<usize>, f32) {
        let known = self.classes.len();
        let top = argmax(probs);
        let p = probs.get(top).copied().unwrap_or(0.0);
        if top >= known {
            return (None, p);
        }
        let below = self
            .open
            .and_then(|o| o.reject_below)
            .into_iter()
            .chain(threshold)
            .any(|t| p < t);
        (if below { None } else { Some(top) }, p)
    }
}

/// Resizing, padding and normalisation of a grey image for the network.
#[derive(Clone, Copy, Debug)]
pub struct Prep {
    /// Side the image is resized to, before padding.
    pub side: usize,
    /// Background pixels added on every side after resizing.
    pub pad: usize,
    /// Applied last.
    pub normalize: Option<Normalize>,
}

impl Prep {
    /// Side of the prepared image.
    pub fn out_side(&self) -> usize {
        self.side + 2 * self.pad
    }

    /// `gray` (`height` x `width`, 0-1) resized and padded to the network's input and
    /// normalised.
    pub fn apply(&self, gray: &[f32], height: usize, width: usize) -> Vec<f32> {
        let resized = if (height, width) == (self.side, self.side) {
            gray.to_vec()
        } else {
            resize_bilinear(gray, height, width, self.side, self.side)
        };
        let out = self.out_side();
        let mut x = vec![0.0f32; out * out];
        for r in 0..self.side {
            let at = (r + self.pad) * out + self.pad;
            x[at..at + self.side].copy_from_slice(&resized[r * self.side..(r + 1) * self.side]);
        }
        if let Some(n) = self.normalize {
            n.apply(&mut x);
        }
        x
    }
}

/// Where images come from.
enum Images {
    /// Image files, played in this order.
    Files(Vec<PathBuf>),
    /// The images of one IDX file (`count x rows x columns` bytes).
    Idx {
        path: PathBuf,
        rows: usize,
        cols: usize,
        data: Vec<u8>,
    },
}

impl Images {
    /// The images of `path`, and how many of a folder's were left out as unreadable
    /// (`skip`; else any is an error).
    fn open(path: &Path, skip: bool) -> Result<(Self, usize)> {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading folder {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image_file(p))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!(
                    "{}: no image files ({}) in this folder",
                    path.display(),
                    IMAGE_EXTENSIONS.join(", ")
                );
            }
            let (files, skipped) = super::usable_files(files, skip, check_image)?;
            return Ok((Images::Files(files), skipped));
        }
        if !path.is_file() {
            bail!("{}: no such file or folder", path.display());
        }
        if is_image_file(path) {
            return Ok((Images::Files(vec![path.to_path_buf()]), 0));
        }
        // anything else must be an IDX file of images
        let a = read_idx(path).map_err(|e| {
            anyhow::anyhow!(
                "{e}\n(an image input is a PNG or JPEG file, a folder of them, or an IDX file of images such as MNIST's t10k-images-idx3-ubyte.gz)"
            )
        })?;
        let [n, rows, cols] = a.dims[..] else {
            bail!(
                "{}: an IDX file of images has 3 dimensions (count, rows, columns), this one has {} ({:?})",
                path.display(),
                a.dims.len(),
                a.dims
            );
        };
        if n == 0 || rows == 0 || cols == 0 {
            bail!(
                "{}: holds no images ({n} x {rows} x {cols})",
                path.display()
            );
        }
        Ok((
            Images::Idx {
                path: path.to_path_buf(),
                rows,
                cols,
                data: a.data,
            },
            0,
        ))
    }

    fn len(&self) -> usize {
        match self {
            Images::Files(f) => f.len(),
            Images::Idx {
                rows, cols, data, ..
            } => data.len() / (rows * cols),
        }
    }

    /// Image `i`: its name, grey pixels (0-1), height, width.
    fn get(&self, i: usize) -> Result<(String, Vec<f32>, usize, usize)> {
        match self {
            Images::Files(files) => {
                let p = &files[i];
                use image::ImageDecoder;
                let unreadable = not_an_image(p);
                let mut decoder = image::ImageReader::open(p)
                    .with_context(|| format!("{}: cannot open", p.display()))?
                    .with_guessed_format()
                    .with_context(|| format!("{}: cannot read", p.display()))?
                    .into_decoder()
                    .map_err(unreadable)?;
                // a camera's EXIF orientation: the picture as it was taken, not as stored
                let orientation = decoder.orientation().map_err(unreadable)?;
                let mut img = image::DynamicImage::from_decoder(decoder).map_err(unreadable)?;
                img.apply_orientation(orientation);
                let img = img.to_luma8();
                let (w, h) = (img.width() as usize, img.height() as usize);
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Ok((
                    name,
                    img.into_raw().iter().map(|&v| v as f32 / 255.0).collect(),
                    h,
                    w,
                ))
            }
            Images::Idx {
                path,
                rows,
                cols,
                data,
            } => {
                let n = rows * cols;
                let name = format!(
                    "{}#{i}",
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                );
                let px = data[i * n..(i + 1) * n].iter().map(|&v| v as f32 / 255.0);
                Ok((name, px.collect(), *rows, *cols))
            }
        }
    }
}

/// Whether image file `p` can be opened and its header read (without decoding it).
fn check_image(p: &Path) -> Result<()> {
    image::ImageReader::open(p)
        .with_context(|| format!("{}: cannot open", p.display()))?
        .with_guessed_format()
        .with_context(|| format!("{}: cannot read", p.display()))?
        .into_dimensions()
        .map_err(not_an_image(p))?;
    Ok(())
}

/// The error of an image file the decoder refused. The decoder's words go into the
/// message, and its error is not kept as the source: its own text already holds that of
/// its source, which would say the same thing twice.
fn not_an_image(p: &Path) -> impl Fn(image::ImageError) -> anyhow::Error + Copy + '_ {
    move |e| anyhow::anyhow!("{}: not a readable PNG or JPEG image: {e}", p.display())
}

fn is_image_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The items of an image stream.
#[derive(Clone, Debug)]
pub enum Shot {
    /// An image as read.
    Raw(Picture),
    /// An image ready for the network.
    Ready(Picture),
    /// What the model answered.
    Decision(ImageDecision),
}

/// One image.
#[derive(Clone, Debug)]
pub struct Picture {
    /// Position in the stream, from 0.
    pub index: u64,
    /// File name, or `FILE#i` for the i-th image of an IDX file.
    pub name: String,
    /// Pixels, row-major.
    pub pixels: Vec<f32>,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// When the image was read.
    pub ready: Instant,
}

/// The answer for one image.
#[derive(Clone, Debug)]
pub struct ImageDecision {
    /// Position in the stream.
    pub index: u64,
    /// Where the image came from.
    pub name: String,
    /// A known class, or `None` for unknown.
    pub class: Option<usize>,
    /// Probability of the answer.
    pub confidence: f32,
    /// The network's output probabilities (known classes, then unknown if it has one).
    pub scores: Vec<f32>,
    /// When the image was read.
    pub ready: Instant,
}

impl ImageDecision {
    /// The answer in words: a class name or `unknown`.
    pub fn label<'a>(&self, classes: &'a [String]) -> &'a str {
        match self.class {
            Some(c) => classes.get(c).map(String::as_str).unwrap_or("?"),
            None => "unknown",
        }
    }

    /// A line for people: index, source, label, confidence.
    pub fn human(&self, classes: &[String]) -> String {
        format!(
            "{:>6}  {:<28} {:<8} {:>5.1}%",
            self.index,
            self.name,
            self.label(classes),
            100.0 * self.confidence
        )
    }

    /// A JSON line: index, source, label, confidence, scores per output, latency.
    pub fn json(&self, classes: &[String], latency_ms: f64) -> String {
        let round4 = |x: f64| (x * 1e4).round() / 1e4;
        let scores: serde_json::Map<String, serde_json::Value> = self
            .scores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let name = classes.get(i).map(String::as_str).unwrap_or("unknown");
                (name.to_string(), serde_json::json!(round4(*s as f64)))
            })
            .collect();
        serde_json::json!({
            "index": self.index,
            "source": self.name,
            "label": self.label(classes),
            "confidence": round4(self.confidence as f64),
            "scores": scores,
            "latency_ms": round4(latency_ms),
        })
        .to_string()
    }
}

/// Reads images, paced at `interval` unless `fast`.
struct ImageSource {
    images: Images,
    next: usize,
    end: usize,
    interval: Option<Duration>,
    started: Option<Instant>,
    /// `--skip-bad-files`: a file whose header read but whose image does not decode
    /// (cut short, damaged further in) is left out and counted here instead of
    /// stopping the stream.
    skip_bad: Option<Arc<std::sync::atomic::AtomicUsize>>,
}

impl Source<Shot> for ImageSource {
    fn next(&mut self) -> Result<Option<Shot>, BoxError> {
        loop {
            if self.next >= self.end {
                return Ok(None);
            }
            let i = self.next;
            if let Some(every) = self.interval {
                let start = *self.started.get_or_insert_with(Instant::now);
                let due = start + every * i as u32;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            self.next += 1;
            match (self.images.get(i), &self.skip_bad) {
                (Ok((name, pixels, height, width)), _) => {
                    return Ok(Some(Shot::Raw(Picture {
                        index: i as u64,
                        name,
                        pixels,
                        height,
                        width,
                        ready: Instant::now(),
                    })))
                }
                (Err(e), Some(skipped)) => {
                    log::warn!("skipped: {e:#}");
                    skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                (Err(e), None) => return Err(e),
            }
        }
    }
}

/// Inverts (optionally), resizes, pads and normalises.
struct Prepare {
    prep: Prep,
    invert: bool,
}

impl Stage<Shot> for Prepare {
    fn process(&mut self, item: Shot, out: &mut Vec<Shot>) -> Result<(), BoxError> {
        if let Shot::Raw(mut p) = item {
            if self.invert {
                p.pixels.iter_mut().for_each(|v| *v = 1.0 - *v);
            }
            p.pixels = self.prep.apply(&p.pixels, p.height, p.width);
            p.height = self.prep.out_side();
            p.width = p.height;
            out.push(Shot::Ready(p));
        }
        Ok(())
    }
}

struct InferImage {
    model: ImageModel,
    threshold: Option<f32>,
}

impl Stage<Shot> for InferImage {
    fn process(&mut self, item: Shot, out: &mut Vec<Shot>) -> Result<(), BoxError> {
        if let Shot::Ready(p) = item {
            let scores = self.model.probabilities(&p.pixels);
            let (class, confidence) = self.model.decide(&scores, self.threshold);
            out.push(Shot::Decision(ImageDecision {
                index: p.index,
                name: p.name,
                class,
                confidence,
                scores,
                ready: p.ready,
            }));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Tally {
    images: u64,
    unknown: u64,
    latency: Histogram,
    closed: bool,
}

struct PrintImage {
    classes: Vec<String>,
    json: bool,
    out: Box<dyn Write + Send>,
    tally: Arc<Mutex<Tally>>,
    stop: StopFlag,
}

impl Sink<Shot> for PrintImage {
    fn consume(&mut self, item: Shot) -> Result<(), BoxError> {
        let Shot::Decision(d) = item else {
            return Ok(());
        };
        let line = if self.json {
            d.json(&self.classes, d.ready.elapsed().as_secs_f64() * 1e3)
        } else {
            d.human(&self.classes)
        };
        if !super::write_line(&mut self.out, &line)? {
            self.tally.lock().expect("tally lock").closed = true;
            self.stop.stop();
            return Ok(());
        }
        let mut t = self.tally.lock().expect("tally lock");
        t.images += 1;
        t.unknown += d.class.is_none() as u64;
        t.latency.record_duration(d.ready.elapsed());
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        super::flush_output(&mut self.out)
    }
}

/// How to stream images.
#[derive(Clone, Debug)]
pub struct ImageOptions {
    /// An image file, a folder of images, or an IDX file of images.
    pub input: PathBuf,
    /// Images per second (ignored with `fast`).
    pub fps: f64,
    /// As fast as the model goes (lossless edges) instead of at `fps`.
    pub fast: bool,
    /// Stop after this many images.
    pub limit: Option<usize>,
    /// Light digits on a dark background are what the model knows: invert dark-on-light
    /// images first.
    pub invert: bool,
    /// Also answer unknown below this top probability.
    pub threshold: Option<f32>,
    /// JSON lines instead of lines for people.
    pub json: bool,
    /// Print the graph's per-stage metrics once a second (to stderr).
    pub stats: bool,
    /// `cpu`, `wgpu`, `cuda:N`.
    pub device: String,
    /// A folder's unreadable images are left out with a warning instead of stopping
    /// the stream before it starts.
    pub skip_bad_files: bool,
}

/// What an image stream did.
#[derive(Debug)]
pub struct ImageSummary {
    /// Images answered.
    pub images: u64,
    /// Of those, answered unknown.
    pub unknown: u64,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Latency from an image being read to its line being written.
    pub latency: Histogram,
    /// Images dropped because inference fell behind.
    pub dropped: u64,
    /// The graph's final metrics.
    pub report: RunReport,
    /// The output was closed by its reader (a pipe), which stopped the stream.
    pub output_closed: bool,
    /// Unreadable images of a folder left out (`--skip-bad-files`).
    pub skipped_files: usize,
}

impl ImageSummary {
    /// One line: images, unknown, speed, latency percentiles, drops.
    pub fn line(&self) -> String {
        let ms = |q: f64| self.latency.percentile_duration(q).as_secs_f64() * 1e3;
        format!(
            "{} image{} ({} unknown) in {:.1} s ({:.0} images/s); latency p50 {:.1} ms, p99 {:.1} ms; {} images dropped",
            self.images,
            if self.images == 1 { "" } else { "s" },
            self.unknown,
            self.wall_s,
            if self.wall_s > 0.0 { self.images as f64 / self.wall_s } else { 0.0 },
            ms(0.5),
            ms(0.99),
            self.dropped
        ) + &super::run::skipped_words(self.skipped_files)
    }
}

/// The slowest pace of `--fps`: an image every 1,000 s.
const MIN_FPS: f64 = 0.001;
/// The fastest pace of `--fps` (faster is `--fast`).
const MAX_FPS: f64 = 100_000.0;

/// Streams the images of `opts.input` through the model of run folder `run`, one line
/// per image to `out`, until the input ends or `stop` is set.
pub fn run_images(
    run: &Path,
    opts: &ImageOptions,
    stop: StopFlag,
    out: Box<dyn Write + Send>,
) -> Result<ImageSummary> {
    let paced = (MIN_FPS..=MAX_FPS).contains(&opts.fps);
    if !opts.fast && !paced {
        bail!(
            "--fps must be between {MIN_FPS} and {MAX_FPS} images per second (got {}); --fast goes as fast as the model can",
            opts.fps
        );
    }
    if let Some(t) = opts.threshold {
        if !(0.0..=1.0).contains(&t) {
            bail!("--threshold must be between 0 and 1 (got {t})");
        }
    }
    let model = ImageModel::load(run, &opts.device)
        .with_context(|| format!("loading the model of {}", run.display()))?;
    let prep = model.prep();
    let classes = model.classes.clone();
    let (images, skipped_files) = Images::open(&opts.input, opts.skip_bad_files)?;
    let end = opts.limit.unwrap_or(usize::MAX).min(images.len());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let skipped_later = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut g: Graph<Shot> = Graph::new().with_stop(stop.clone());
    let source = g.add_source(
        "images",
        ImageSource {
            images,
            next: 0,
            end,
            interval: (!opts.fast).then(|| Duration::from_secs_f64(1.0 / opts.fps)),
            started: None,
            skip_bad: opts.skip_bad_files.then(|| skipped_later.clone()),
        },
    );
    let prepare = g.add_stage(
        "preprocess",
        Prepare {
            prep,
            invert: opts.invert,
        },
    );
    let infer = g.add_stage(
        "infer",
        InferImage {
            model,
            threshold: opts.threshold,
        },
    );
    let sink = g.add_sink(
        "print",
        PrintImage {
            classes,
            json: opts.json,
            out,
            tally: tally.clone(),
            stop,
        },
    );
    let live = if opts.fast {
        EdgeSpec::block(8)
    } else {
        EdgeSpec::drop_oldest(4)
    };
    g.connect(source, prepare, EdgeSpec::block(8))?;
    g.connect(prepare, infer, live)?;
    g.connect(infer, sink, EdgeSpec::block(64))?;
    let started = Instant::now();
    let report = super::run_graph(g, opts.stats, String::new)?;
    let dropped = report
        .edges
        .iter()
        .filter(|e| e.to == "infer")
        .map(|e| e.dropped)
        .sum();
    let t = std::mem::take(&mut *tally.lock().expect("tally lock"));
    Ok(ImageSummary {
        images: t.images,
        unknown: t.unknown,
        wall_s: started.elapsed().as_secs_f64(),
        skipped_files: skipped_files + skipped_later.load(std::sync::atomic::Ordering::Relaxed),
        latency: t.latency,
        dropped,
        report,
        output_closed: t.closed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_models_own_rule_and_the_threshold() {
        let model = |open: Option<OpenSet>, known: usize| ImageModel {
            net: Box::new(NoNet),
            device: Device::flex(),
            side: 28,
            pad: 0,
            normalize: None,
            open,
            classes: (0..known).map(|c| c.to_string()).collect(),
        };
        // OSBP: three known classes and unknown, the argmax decides
        let osbp = model(
            Some(OpenSet {
                known: 3,
                reject_below: None,
            }),
            3,
        );
        assert_eq!(osbp.decide(&[0.1, 0.2, 0.1, 0.6], None), (None, 0.6));
        assert_eq!(osbp.decide(&[0.1, 0.5, 0.1, 0.3], None), (Some(1), 0.5));
        assert_eq!(osbp.decide(&[0.1, 0.4, 0.2, 0.3], Some(0.45)), (None, 0.4));
        // a closed-set model made open by reject_below
        let so = model(
            Some(OpenSet {
                known: 3,
                reject_below: Some(0.5),
            }),
            3,
        );
        assert_eq!(so.decide(&[0.2, 0.45, 0.35], None), (None, 0.45));
        assert_eq!(so.decide(&[0.2, 0.7, 0.1], None), (Some(1), 0.7));
        // a closed-set model: always a class unless the threshold says otherwise
        let closed = model(None, 3);
        assert_eq!(closed.decide(&[0.2, 0.45, 0.35], None), (Some(1), 0.45));
        assert_eq!(closed.decide(&[0.2, 0.45, 0.35], Some(0.5)), (None, 0.45));
    }

    #[test]
    fn preparation_resizes_pads_and_normalises() {
        let m = ImageModel {
            net: Box::new(NoNet),
            device: Device::flex(),
            side: 4,
            pad: 2,
            normalize: Some(Normalize {
                mean: 0.5,
                std: 0.5,
            }),
            open: None,
            classes: vec!["0".into()],
        };
        // an all-white 2x2 image: white 4x4 in the middle of an 8x8 frame of black
        let x = m.prep().apply(&[1.0; 4], 2, 2);
        assert_eq!(x.len(), 64);
        for r in 0..8 {
            for c in 0..8 {
                let inside = (2..6).contains(&r) && (2..6).contains(&c);
                let want = if inside { 1.0 } else { -1.0 };
                assert!(
                    (x[r * 8 + c] - want).abs() < 1e-6,
                    "({r}, {c}) = {}",
                    x[r * 8 + c]
                );
            }
        }
    }

    #[test]
    fn decisions_print_for_people_and_as_json() {
        let classes: Vec<String> = (0..2).map(|c| c.to_string()).collect();
        let d = ImageDecision {
            index: 7,
            name: "a.png".into(),
            class: None,
            confidence: 0.8,
            scores: vec![0.1, 0.1, 0.8],
            ready: Instant::now(),
        };
        assert!(d.human(&classes).contains("unknown"));
        let v: serde_json::Value = serde_json::from_str(&d.json(&classes, 1.5)).unwrap();
        assert_eq!(v["label"], "unknown");
        assert_eq!(v["index"], 7);
        assert_eq!(v["source"], "a.png");
        assert_eq!(v["scores"]["unknown"], 0.8);
        assert_eq!(v["scores"]["1"], 0.1);
    }

    #[test]
    fn inputs_are_image_files_folders_or_idx_files_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let e = Images::open(&empty, false).err().unwrap().to_string();
        assert!(e.contains("no image files"), "{e}");
        let e = Images::open(&dir.path().join("nope"), false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
        // a PNG in a folder, and a broken one
        let img = image::GrayImage::from_fn(3, 2, |x, y| image::Luma([(x * 100 + y * 10) as u8]));
        let good = dir.path().join("b.png");
        img.save(&good).unwrap();
        let bad = dir.path().join("a.png");
        std::fs::write(&bad, b"not a png").unwrap();
        // named before any is read, or left out when asked
        let e = format!("{:#}", Images::open(dir.path(), false).err().unwrap());
        assert!(e.contains("a.png") && e.contains("1 of 2 files"), "{e}");
        let (files, skipped) = Images::open(dir.path(), true).unwrap();
        assert_eq!((files.len(), skipped), (1, 1));
        // one that breaks after its header is named when it is read
        let e = format!(
            "{:#}",
            Images::Files(vec![bad.clone()]).get(0).err().unwrap()
        );
        assert!(e.contains("a.png"), "{e}");
        let (name, px, h, w) = files.get(0).unwrap();
        assert_eq!((name.as_str(), h, w), ("b.png", 2, 3));
        assert!((px[4] - 110.0 / 255.0).abs() < 1e-6, "{px:?}");
        // an IDX file of two 2x3 images
        let idx = dir.path().join("imgs-idx3-ubyte.gz");
        crate::data::idx::write_idx_gz(&idx, &[2, 2, 3], &(0..12).collect::<Vec<u8>>()).unwrap();
        let (i, _) = Images::open(&idx, false).unwrap();
        assert_eq!(i.len(), 2);
        let (name, px, h, w) = i.get(1).unwrap();
        assert_eq!((name.as_str(), h, w), ("imgs-idx3-ubyte.gz#1", 2, 3));
        assert!((px[0] - 6.0 / 255.0).abs() < 1e-6);
        // an IDX file of labels is not one of images
        let labels = dir.path().join("labels-idx1-ubyte.gz");
        crate::data::idx::write_idx_gz(&labels, &[3], &[1, 2, 3]).unwrap();
        let e = Images::open(&labels, false).err().unwrap().to_string();
        assert!(e.contains("3 dimensions"), "{e}");
        // neither an image nor IDX
        let txt = dir.path().join("notes.txt");
        std::fs::write(&txt, b"hello").unwrap();
        let e = Images::open(&txt, false).err().unwrap().to_string();
        assert!(e.contains("notes.txt") && e.contains("IDX"), "{e}");
    }

    #[test]
    fn a_photos_exif_orientation_is_applied() {
        use image::ImageEncoder;
        // 16 x 8, left half white; stored with EXIF orientation 6 (turn 90 degrees
        // clockwise to show), so it is shown 8 wide and 16 high with the white half on top
        let img =
            image::GrayImage::from_fn(16, 8, |x, _| image::Luma([if x < 8 { 255 } else { 0 }]));
        let mut exif = b"MM\0*\0\0\0\x08\0\x01".to_vec();
        exif.extend([0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]); // orientation (SHORT) = 6
        exif.extend([0, 0, 0, 0]); // no next IFD
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("photo.jpg");
        let mut bytes = Vec::new();
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
        enc.set_exif_metadata(exif).unwrap();
        enc.write_image(img.as_raw(), 16, 8, image::ExtendedColorType::L8)
            .unwrap();
        std::fs::write(&path, bytes).unwrap();
        let (_, px, h, w) = Images::open(&path, false).unwrap().0.get(0).unwrap();
        assert_eq!((h, w), (16, 8));
        let mean = |rows: std::ops::Range<usize>| {
            let v = &px[rows.start * w..rows.end * w];
            v.iter().sum::<f32>() / v.len() as f32
        };
        assert!(mean(0..8) > 0.9 && mean(8..16) < 0.1, "{px:?}");
    }

    struct NoNet;

    impl Predictor for NoNet {
        fn heads(&self) -> &'static [&'static str] {
            &["c"]
        }
        fn predict(&self, _: Tensor<4>) -> Vec<Tensor<2>> {
            Vec::new()
        }
        fn features(&self, x: Tensor<4>) -> Tensor<2> {
            x.flatten(1, 3)
        }
    }
}
