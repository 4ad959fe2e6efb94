//! Sound for between-class learning: WAV reading, resampling, A-weighted gain, the BC
//! mixing formula, padding and cropping (random for training, ten even crops for
//! testing) and the "strong" augmentation of EnvNet-v2 (random time scale and gain).
//!
//! Signals are mono `f32` in [-1, 1]. Formulas follow Tokozume, Ushiku and Harada,
//! "Learning from Between-class Examples for Deep Sound Recognition" (ICLR 2018).

use rand::Rng;
use realfft::{RealFftPlanner, RealToComplex};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A decoded recording: mono samples in [-1, 1] at `rate` Hz.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// Samples, channels averaged.
    pub samples: Vec<f32>,
    /// Sample rate in Hz.
    pub rate: u32,
}

/// A sound file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// Not a WAV file, or a damaged one.
    #[error("{}: not a readable WAV file: {reason}", .path.display())]
    BadWav {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// A WAV file without samples.
    #[error("{}: the WAV file holds no samples", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A sample rate outside [`RATES`].
    #[error("{}: a sample rate of {rate} Hz: scarce takes {} to {} Hz (the header may be damaged)", .path.display(), RATES.start(), RATES.end())]
    Rate {
        /// The file.
        path: PathBuf,
        /// The rate its header gives.
        rate: u32,
    },
    /// A sample format WAV allows but this reader does not.
    #[error("{}: unsupported WAV sample format: {what} ({READS})", .path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The format, in words.
        what: String,
    },
    /// Resampling failed.
    #[error("cannot resample from {from} Hz to {to} Hz: {reason}")]
    Resample {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
        /// What the resampler said.
        reason: String,
    },
}

/// The sample rates scarce takes from a file or a device, in Hz: a header that claims
/// another is damaged (resampling from it would need absurd amounts of memory).
pub const RATES: std::ops::RangeInclusive<u32> = 1_000..=768_000;

/// A rate outside [`RATES`] in the header of `path`.
fn check_rate(path: &Path, rate: u32) -> Result<(), AudioError> {
    if RATES.contains(&rate) {
        return Ok(());
    }
    Err(AudioError::Rate {
        path: path.to_path_buf(),
        rate,
    })
}

/// The sample formats [`read_wav`] reads, in words.
const READS: &str = "scarce reads WAV files of 8, 16, 24 or 32-bit integer or 32-bit float samples; convert others, e.g. `sox in.wav -b 16 out.wav`";

/// What the WAV decoder's error means for the user.
fn decoder_reason(e: hound::Error) -> String {
    match e {
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file is cut short".to_string()
        }
        // a sample format the decoder does not take (e.g. 64-bit float): say which it
        // takes; a damaged or foreign file gets no advice to convert it
        e @ hound::Error::Unsupported => format!("{e} ({READS})"),
        hound::Error::FormatError(why) if why.starts_with("bits per sample") => {
            format!("{why} ({READS})")
        }
        other => other.to_string(),
    }
}

/// Reads a WAV file (8, 16, 24 or 32-bit PCM, or 32-bit float; any number of channels),
/// averages its channels to mono and scales integer samples to [-1, 1].
pub fn read_wav(path: &Path) -> Result<Clip, AudioError> {
    let bad = |e: hound::Error| AudioError::BadWav {
        path: path.to_path_buf(),
        reason: decoder_reason(e),
    };
    let reader = hound::WavReader::open(path).map_err(bad)?;
    let spec = reader.spec();
    check_rate(path, spec.sample_rate)?;
    let channels = spec.channels.max(1) as usize;
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(bad)?,
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| (v as f64 * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(bad)?
        }
        (format, bits) => {
            return Err(AudioError::Unsupported {
                path: path.to_path_buf(),
                what: format!("{bits}-bit {format:?}"),
            })
        }
    };
    if interleaved.len() < channels {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    let samples = if channels == 1 {
        interleaved
    } else {
        interleaved
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() / channels as f32)
            .collect()
    };
    Ok(Clip {
        samples,
        rate: spec.sample_rate,
    })
}

/// Checks what [`read_wav`] would refuse without decoding the samples: a file that is
/// not WAV, a format it does not read, no samples, or fewer bytes than the header
/// announces (a file cut short).
pub fn check_wav(path: &Path) -> Result<(), AudioError> {
    let bad = |reason: String| AudioError::BadWav {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let reader =
        hound::WavReader::new(std::io::BufReader::new(file)).map_err(|e| bad(decoder_reason(e)))?;
    let spec = reader.spec();
    check_rate(path, spec.sample_rate)?;
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) | (hound::SampleFormat::Int, 8 | 16 | 24 | 32) => {}
        (format, bits) => {
            return Err(AudioError::Unsupported {
                path: path.to_path_buf(),
                what: format!("{bits}-bit {format:?}"),
            })
        }
    }
    let samples = u64::from(reader.len());
    if samples < u64::from(spec.channels.max(1)) {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    let data = samples * u64::from(spec.bits_per_sample).div_ceil(8);
    // where the samples start: after the header and any chunk before them
    let start = {
        use std::io::Seek;
        reader
            .into_inner()
            .stream_position()
            .map_err(|e| bad(e.to_string()))?
    };
    let size = std::fs::metadata(path)
        .map_err(|e| bad(e.to_string()))?
        .len();
    if size < start + data {
        return Err(bad("the file is cut short".to_string()));
    }
    Ok(())
}

/// Writes mono samples in [-1, 1] as a 16-bit PCM WAV file (for tests and fixtures).
pub fn write_wav_i16(path: &Path, samples: &[f32], rate: u32) -> std::io::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(std::io::Error::other)?;
    for &s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        w.write_sample(v).map_err(std::io::Error::other)?;
    }
    w.finalize().map_err(std::io::Error::other)
}

/// `samples` resampled from `from` Hz to `to` Hz (band-limited, FFT resampler), with the
/// resampler's delay removed, so the output has `ceil(len * to / from)` samples aligned
/// with the input.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    use rubato::audioadapter_buffers::direct::InterleavedSlice;
    use rubato::{Fft, FixedSync, Resampler};
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let err = |e: &dyn std::fmt::Display| AudioError::Resample {
        from,
        to,
        reason: e.to_string(),
    };
    let mut r = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| err(&e))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| err(&e))?;
    let out = r
        .process_all(&input, samples.len(), None)
        .map_err(|e| err(&e))?;
    Ok(out.take_data())
}

/// A resampler for a stream that arrives in pieces of any size (a microphone): each
/// [`StreamResampler::push`] appends what the samples pushed so far complete. The
/// resampler's start-up delay is dropped, so output sample `k` lines up with input time
/// `k / to`; samples still held inside the resampler come out with later pushes.
/// From a rate to itself it copies.
pub struct StreamResampler {
    from: u32,
    to: u32,
    inner: Option<rubato::Fft<f32>>,
    /// Input not yet resampled.
    pending: Vec<f32>,
    /// Output buffer of one `process` call.
    scratch: Vec<f32>,
    /// Output samples of the start-up delay still to drop.
    delay: usize,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// Mono samples from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, AudioError> {
        use rubato::{Fft, FixedSync, Resampler};
        let err = |e: &dyn std::fmt::Display| AudioError::Resample {
            from,
            to,
            reason: e.to_string(),
        };
        if from == 0 || to == 0 {
            return Err(err(&"a rate of 0 Hz"));
        }
        let inner = if from == to {
            None
        } else {
            // about 20 ms of input per FFT chunk: short enough for live latency
            let chunk = (from as usize / 50).max(64);
            Some(
                Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Input)
                    .map_err(|e| err(&e))?,
            )
        };
        let (scratch, delay) = match &inner {
            Some(r) => (vec![0.0; r.output_frames_max()], r.output_delay()),
            None => (Vec::new(), 0),
        };
        Ok(Self {
            from,
            to,
            inner,
            pending: Vec::new(),
            scratch,
            delay,
        })
    }

    /// Input rate, Hz.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Output rate, Hz.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Feeds `input` and appends the output it completes to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        use rubato::audioadapter_buffers::direct::InterleavedSlice;
        use rubato::Resampler;
        let Some(r) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            return Ok(());
        };
        let (from, to) = (self.from, self.to);
        let err = |e: &dyn std::fmt::Display| AudioError::Resample {
            from,
            to,
            reason: e.to_string(),
        };
        self.pending.extend_from_slice(input);
        let mut used = 0;
        loop {
            let need = r.input_frames_next();
            if self.pending.len() - used < need {
                break;
            }
            let frames_out = r.output_frames_next();
            let src = InterleavedSlice::new(&self.pending[used..used + need], 1, need)
                .map_err(|e| err(&e))?;
            let mut dst = InterleavedSlice::new_mut(&mut self.scratch[..frames_out], 1, frames_out)
                .map_err(|e| err(&e))?;
            let (n_in, n_out) = r
                .process_into_buffer(&src, &mut dst, None)
                .map_err(|e| err(&e))?;
            used += n_in;
            let skip = self.delay.min(n_out);
            self.delay -= skip;
            out.extend_from_slice(&self.scratch[skip..n_out]);
        }
        self.pending.drain(..used);
        Ok(())
    }
}

/// The standard A-weighting curve in dB at `freq` Hz (IEC 61672: 0 dB at 1 kHz).
pub fn a_weighting_db(freq: f64) -> f64 {
    let f2 = freq * freq;
    let ra = 12194f64.powi(2) * f2 * f2
        / ((f2 + 20.6f64.powi(2))
            * ((f2 + 107.7f64.powi(2)) * (f2 + 737.9f64.powi(2))).sqrt()
            * (f2 + 12194f64.powi(2)));
    20.0 * ra.max(1e-30).log10() + 2.0
}

/// Lowest gain (dB) a frame can have: silence is not minus infinity.
pub const MIN_GAIN_DB: f64 = -80.0;

/// Measures a signal's A-weighted sound pressure: the power spectrum of Hann-windowed
/// frames (about 128 ms, half overlapping) weighted by the A curve, summed per frame, in
/// dB. Reuses its FFT plan and buffers; one per thread.
pub struct GainMeter {
    n_fft: usize,
    window: Vec<f32>,
    weights: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    frame: Vec<f32>,
    spectrum: Vec<realfft::num_complex::Complex<f32>>,
}

impl GainMeter {
    /// A meter for signals at `rate` Hz: frames of the power of two nearest 128 ms.
    pub fn new(rate: u32) -> Self {
        let n_fft = 1usize << ((rate as f64 * 0.128).max(16.0).log2().round() as u32);
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(n_fft);
        // periodic Hann window
        let window = (0..n_fft)
            .map(|i| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos()) as f32
            })
            .collect();
        let weights = (0..=n_fft / 2)
            .map(|k| {
                let f = k as f64 * rate as f64 / n_fft as f64;
                let db = if k == 0 {
                    MIN_GAIN_DB
                } else {
                    a_weighting_db(f).max(MIN_GAIN_DB)
                };
                10f64.powf(db / 10.0) as f32
            })
            .collect();
        let spectrum = fft.make_output_vec();
        Self {
            n_fft,
            window,
            weights,
            frame: vec![0.0; n_fft],
            spectrum,
            fft,
        }
    }

    /// Frame length in samples.
    pub fn frame_len(&self) -> usize {
        self.n_fft
    }

    /// A-weighted gain of every frame, in dB (a signal shorter than one frame is
    /// zero-padded to one).
    pub fn frame_gains(&mut self, x: &[f32]) -> Vec<f64> {
        let n = self.n_fft;
        let stride = n / 2;
        let frames = if x.len() <= n {
            1
        } else {
            (x.len() - n) / stride + 1
        };
        let floor = 10f64.powf(MIN_GAIN_DB / 10.0);
        (0..frames)
            .map(|i| {
                let start = i * stride;
                for (k, v) in self.frame.iter_mut().enumerate() {
                    *v = x.get(start + k).copied().unwrap_or(0.0) * self.window[k];
                }
                self.fft
                    .process(&mut self.frame, &mut self.spectrum)
                    .expect("buffers are sized by the plan");
                let g: f64 = self
                    .spectrum
                    .iter()
                    .zip(&self.weights)
                    .map(|(c, w)| c.norm_sqr() as f64 * *w as f64)
                    .sum();
                10.0 * g.max(floor).log10()
            })
            .collect()
    }

    /// The signal's gain: the loudest frame's A-weighted power, in dB.
    pub fn gain(&mut self, x: &[f32]) -> f64 {
        self.frame_gains(x)
            .into_iter()
            .fold(MIN_GAIN_DB, |a, b| a.max(b))
    }
}

/// The mixing weight of the first sound for a ratio `r` (the share of the first class in
/// the label) given the two sounds' gains in dB:
/// `p = 1 / (1 + 10^((g1 - g2) / 20) * (1 - r) / r)`, so that the first sound is
/// perceived with ratio `r` whatever the two recording levels.
pub fn mix_weight(g1: f64, g2: f64, r: f64) -> f64 {
    if r <= 0.0 {
        return 0.0;
    }
    1.0 / (1.0 + 10f64.powf((g1 - g2) / 20.0) * (1.0 - r) / r)
}

/// Between-class mix of two equally long sounds: `(p x1 + (1 - p) x2) / sqrt(p^2 +
/// (1 - p)^2)` with `p` from [`mix_weight`].
pub fn bc_mix(x1: &[f32], x2: &[f32], g1: f64, g2: f64, r: f64) -> Vec<f32> {
    let p = mix_weight(g1, g2, r);
    let norm = (p * p + (1.0 - p) * (1.0 - p)).sqrt();
    let (a, b) = ((p / norm) as f32, ((1.0 - p) / norm) as f32);
    x1.iter().zip(x2).map(|(u, v)| a * u + b * v).collect()
}

/// Scales `x` by a random gain drawn uniformly in `[-db, db]` decibels (strong
/// augmentation); `db` must be positive.
pub fn random_gain(x: &mut [f32], db: f64, rng: &mut impl Rng) {
    let g = 10f32.powf(rng.random_range(-db..=db) as f32 / 20.0);
    x.iter_mut().for_each(|v| *v *= g);
}

/// How clips are levelled before cropping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// As recorded.
    #[default]
    None,
    /// Each clip scaled so that its largest absolute sample is 1 (silent clips unchanged).
    Peak,
}

/// Cropping and augmentation settings of a `crop` stage, shared by training (random
/// crops) and evaluation (ten even crops), so both see the same preprocessing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropConfig {
    /// Input length of the network, in samples.
    pub length: usize,
    /// Level normalisation of each clip.
    pub level: Level,
    /// Random time scale factor range `[1 / s, s]` (strong augmentation), 1 = off.
    pub max_scale: f64,
    /// Random gain in `[-g, g]` dB after cropping (strong augmentation), 0 = off.
    pub gain_db: f64,
}

impl Level {
    /// The factor that levels `x`: 1 for `None` (and for silence), 1 / peak for `Peak`.
    pub fn scale(&self, x: &[f32]) -> f32 {
        match self {
            Level::None => 1.0,
            Level::Peak => {
                let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                if peak > 0.0 {
                    1.0 / peak
                } else {
                    1.0
                }
            }
        }
    }
}

impl CropConfig {
    /// The clip after level normalisation, padded with `length / 2` zeros on each side.
    pub fn padded(&self, clip: &[f32]) -> Vec<f32> {
        let half = self.length / 2;
        let scale = self.level.scale(clip);
        // at least one input long (an empty clip, an odd length)
        let mut out = vec![0.0f32; (clip.len() + 2 * half).max(self.length)];
        for (o, v) in out[half..].iter_mut().zip(clip) {
            *o = v * scale;
        }
        out
    }

    /// A training crop: level, optional random time scaling, padding, a random window of
    /// `length` samples, optional random gain.
    pub fn train_crop(&self, clip: &[f32], rng: &mut impl Rng) -> Vec<f32> {
        let scaled;
        let clip = if self.max_scale > 1.0 {
            let s = self.max_scale.powf(rng.random_range(-1.0..=1.0));
            scaled = time_scale(clip, s);
            &scaled[..]
        } else {
            clip
        };
        let padded = self.padded(clip);
        let start = rng.random_range(0..=padded.len() - self.length);
        let mut out = padded[start..start + self.length].to_vec();
        if self.gain_db > 0.0 {
            random_gain(&mut out, self.gain_db, rng);
        }
        out
    }

    /// The ten test crops of a clip, evenly spaced over the padded clip, one after the
    /// other (`10 * length` samples).
    pub fn test_crops(&self, clip: &[f32]) -> Vec<f32> {
        let padded = self.padded(clip);
        let step = (padded.len() - self.length) / (TEST_CROPS - 1);
        let mut out = Vec::with_capacity(TEST_CROPS * self.length);
        for k in 0..TEST_CROPS {
            out.extend_from_slice(&padded[k * step..k * step + self.length]);
        }
        out
    }
}

/// Crops per test clip.
pub const TEST_CROPS: usize = 10;

/// `x` stretched in time by `scale` (output length `floor(len * scale)`) with linear
/// interpolation.
pub fn time_scale(x: &[f32], scale: f64) -> Vec<f32> {
    let n = (x.len() as f64 * scale) as usize;
    (0..n)
        .map(|i| {
            let pos = i as f64 / scale;
            let j = pos as usize;
            let frac = (pos - j as f64) as f32;
            let a = x.get(j).copied().unwrap_or(0.0);
            let b = x.get(j + 1).copied().unwrap_or(0.0);
            a * (1.0 - frac) + b * frac
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sine(freq: f64, rate: u32, n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin() as f32
            })
            .collect()
    }

    /// Frequency from the zero crossings of `x` at `rate`.
    fn crossing_freq(x: &[f32], rate: u32) -> f64 {
        let ups = x.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        ups as f64 * rate as f64 / x.len() as f64
    }

    #[test]
    fn a_stream_resampled_in_odd_pieces_keeps_its_frequency_and_timing() {
        let x = sine(440.0, 16_000, 16_000, 0.5);
        let mut r = StreamResampler::new(16_000, 8_000).unwrap();
        let mut out = Vec::new();
        let mut pos = 0;
        for (i, n) in [1usize, 37, 101, 999, 3, 4_001, 77]
            .iter()
            .cycle()
            .enumerate()
        {
            if pos >= x.len() || i > 10_000 {
                break;
            }
            let end = (pos + n).min(x.len());
            r.push(&x[pos..end], &mut out).unwrap();
            pos = end;
        }
        // about half as many samples (less what the resampler still holds: < 40 ms)
        assert!(
            out.len() <= 8_000 && out.len() > 8_000 - 320,
            "{}",
            out.len()
        );
        let body = &out[400..out.len() - 100];
        assert!((crossing_freq(body, 8_000) - 440.0).abs() < 5.0);
        // no start-up delay: the output lines up with a sine sampled at 8 kHz
        let want = sine(440.0, 8_000, out.len(), 0.5);
        let err = body
            .iter()
            .zip(&want[400..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 0.02, "max error {err}");
        // the same rate passes samples through
        let mut same = StreamResampler::new(8_000, 8_000).unwrap();
        let mut o = Vec::new();
        same.push(&[0.1, 0.2], &mut o).unwrap();
        assert_eq!(o, vec![0.1, 0.2]);
        assert!(StreamResampler::new(0, 8_000).is_err());
    }

    #[test]
    fn a_weighting_matches_the_standard_curve() {
        // IEC 61672-1 table values
        assert!((a_weighting_db(100.0) - (-19.1)).abs() < 0.1);
        assert!(a_weighting_db(1000.0).abs() < 0.01);
        assert!((a_weighting_db(10_000.0) - (-2.5)).abs() < 0.1);
        assert!((a_weighting_db(31.5) - (-39.4)).abs() < 0.2);
    }

    #[test]
    fn a_wav_check_refuses_what_reading_would() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.wav");
        write_wav_i16(&good, &[0.1; 800], 8000).unwrap();
        assert!(check_wav(&good).is_ok());
        let bytes = std::fs::read(&good).unwrap();
        let file = |name: &str, b: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, b).unwrap();
            p
        };
        // each refused by the check and by the reader alike
        // short by less than its header is long: the samples' start counts
        let cut = file("cut.wav", &bytes[..bytes.len() - 20]);
        let text = file("text.wav", b"not a recording");
        let empty_file = file("empty.wav", b"");
        let no_samples = dir.path().join("none.wav");
        write_wav_i16(&no_samples, &[], 8000).unwrap();
        for p in [&cut, &text, &empty_file, &no_samples] {
            let e = check_wav(p).unwrap_err().to_string();
            assert!(e.contains(p.file_name().unwrap().to_str().unwrap()), "{e}");
            assert!(read_wav(p).is_err(), "{}", p.display());
        }
        assert!(check_wav(&cut)
            .unwrap_err()
            .to_string()
            .contains("cut short"));
        // 64-bit float samples: named as a format to convert, by both
        let mut wav = b"RIFF".to_vec();
        let fmt: Vec<u8> = [3u16.to_le_bytes(), 1u16.to_le_bytes()]
            .concat()
            .into_iter()
            .chain(8000u32.to_le_bytes())
            .chain(64_000u32.to_le_bytes())
            .chain(8u16.to_le_bytes())
            .chain(64u16.to_le_bytes())
            .collect();
        let samples = [0.25f64; 4].map(f64::to_le_bytes).concat();
        wav.extend(((4 + 8 + fmt.len() + 8 + samples.len()) as u32).to_le_bytes());
        wav.extend(b"WAVEfmt ");
        wav.extend((fmt.len() as u32).to_le_bytes());
        wav.extend(&fmt);
        wav.extend(b"data");
        wav.extend((samples.len() as u32).to_le_bytes());
        wav.extend(&samples);
        let f64_wav = file("f64.wav", &wav);
        // a header claiming two billion samples a second: refused before resampling
        let mut huge = bytes.clone();
        huge[24..28].copy_from_slice(&2_147_483_647u32.to_le_bytes());
        // and the byte rate that goes with it (16-bit mono: two bytes a sample)
        huge[28..32].copy_from_slice(&4_294_967_294u32.to_le_bytes());
        let huge = file("huge-rate.wav", &huge);
        // what the check and the reader each say of `p`
        let both = |p: &Path| {
            [
                check_wav(p).unwrap_err().to_string(),
                read_wav(p).unwrap_err().to_string(),
            ]
        };
        for e in both(&huge) {
            assert!(
                e.contains("huge-rate.wav") && e.contains("2147483647 Hz"),
                "{e}"
            );
        }
        for e in both(&f64_wav) {
            assert!(
                e.contains("f64.wav") && e.contains("32-bit float samples; convert"),
                "{e}"
            );
        }
    }

    #[test]
    fn mixing_weight_and_formula() {
        // equal gains: p = r
        assert!((mix_weight(-20.0, -20.0, 0.3) - 0.3).abs() < 1e-12);
        // first sound 20 dB louder: p = 1 / (1 + 10 (1 - r) / r)
        let p = mix_weight(0.0, -20.0, 0.5);
        assert!((p - 1.0 / 11.0).abs() < 1e-12);
        let x1 = [1.0f32, 0.0, 2.0];
        let x2 = [0.0f32, 1.0, 2.0];
        let m = bc_mix(&x1, &x2, 0.0, -20.0, 0.5);
        let norm = (p * p + (1.0 - p) * (1.0 - p)).sqrt();
        assert!((m[0] as f64 - p / norm).abs() < 1e-6);
        assert!((m[1] as f64 - (1.0 - p) / norm).abs() < 1e-6);
        assert!((m[2] as f64 - 2.0 / norm).abs() < 1e-5);
        // r = 1 is the first sound alone
        assert_eq!(bc_mix(&x1, &x2, 0.0, 0.0, 1.0), x1.to_vec());
    }

    #[test]
    fn gains_before_mixing_change_only_the_level_of_the_mix() {
        let rate = 16_000;
        let mut m = GainMeter::new(rate);
        let a = sine(440.0, rate, 4000, 0.3);
        let b = sine(2500.0, rate, 4000, 0.1);
        let (ga, gb) = (m.gain(&a), m.gain(&b));
        let plain = bc_mix(&a, &b, ga, gb, 0.3);
        for (da, db) in [(6.0f32, -6.0f32), (-6.0, 3.0), (2.0, 2.0)] {
            let scale = |x: &[f32], d: f32| -> Vec<f32> {
                x.iter().map(|v| v * 10f32.powf(d / 20.0)).collect()
            };
            let (a2, b2) = (scale(&a, da), scale(&b, db));
            let (g2a, g2b) = (m.gain(&a2), m.gain(&b2));
            assert!(
                (g2a - ga - da as f64).abs() < 1e-3,
                "the meter follows the gain"
            );
            let gained = bc_mix(&a2, &b2, g2a, g2b, 0.3);
            // one factor maps the plain mix onto the gained one: same composition
            let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(u, v)| u * v).sum::<f32>();
            let k = dot(&gained, &plain) / dot(&plain, &plain);
            for (u, v) in plain.iter().zip(&gained) {
                assert!(
                    (u * k - v).abs() < 1e-4,
                    "gains {da} / {db} dB: {u} * {k} != {v}"
                );
            }
            let k_db = 20.0 * k.log10();
            let lo = da.min(db) - 1e-3;
            let hi = da.max(db) + 1e-3;
            // a weighted mean of the two gains, give or take the normalisation's 3 dB
            assert!(k_db > lo - 3.1 && k_db < hi + 3.1, "level change {k_db} dB");
        }
    }

    #[test]
    fn gain_is_a_weighted_and_follows_the_level() {
        let rate = 16_000;
        let mut m = GainMeter::new(rate);
        assert_eq!(m.frame_len(), 2048);
        let loud = m.gain(&sine(1000.0, rate, 8000, 0.5));
        let quiet = m.gain(&sine(1000.0, rate, 8000, 0.05));
        assert!((loud - quiet - 20.0).abs() < 0.01, "{loud} {quiet}");
        // the same level at 100 Hz reads about 19 dB lower than at 1 kHz
        let low = m.gain(&sine(100.0, rate, 8000, 0.5));
        assert!((loud - low - 19.1).abs() < 1.0, "{loud} {low}");
        assert_eq!(m.gain(&vec![0.0; 4000]), MIN_GAIN_DB);
        assert_eq!(GainMeter::new(44_100).frame_len(), 4096);
        assert_eq!(GainMeter::new(8_000).frame_len(), 1024);
    }

    #[test]
    fn crops_cover_the_padded_clip() {
        let cfg = CropConfig {
            length: 4,
            level: Level::Peak,
            max_scale: 1.0,
            gain_db: 0.0,
        };
        let clip: Vec<f32> = (1..=10).map(|v| v as f32 / 20.0).collect();
        let padded = cfg.padded(&clip);
        assert_eq!(padded.len(), 14);
        assert_eq!(&padded[..2], &[0.0, 0.0]);
        assert!((padded[11] - 1.0).abs() < 1e-6, "peak levelled to 1");
        let crops = cfg.test_crops(&clip);
        assert_eq!(crops.len(), 40);
        assert_eq!(&crops[..4], &padded[..4]);
        assert_eq!(&crops[36..], &padded[9..13]); // step (14 - 4) / 9 = 1
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let c = cfg.train_crop(&clip, &mut rng);
            assert_eq!(c.len(), 4);
            assert!(padded.windows(4).any(|w| w == &c[..]));
        }
    }

    #[test]
    fn empty_and_one_sample_clips_still_give_full_crops() {
        let cfg = CropConfig {
            length: 9,
            level: Level::Peak,
            max_scale: 1.25,
            gain_db: 6.0,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for clip in [vec![], vec![0.5f32]] {
            for _ in 0..20 {
                assert_eq!(cfg.train_crop(&clip, &mut rng).len(), 9);
            }
            assert_eq!(cfg.test_crops(&clip).len(), 90);
        }
    }

    #[test]
    fn strong_augmentation_scales_time_and_gain() {
        let x: Vec<f32> = (0..100).map(|v| v as f32).collect();
        let y = time_scale(&x, 1.25);
        assert_eq!(y.len(), 125);
        assert!((y[5] - 4.0).abs() < 1e-6);
        let z = time_scale(&x, 0.8);
        assert_eq!(z.len(), 80);
        assert!((z[4] - 5.0).abs() < 1e-5);
        let cfg = CropConfig {
            length: 50,
            level: Level::None,
            max_scale: 1.25,
            gain_db: 6.0,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let ones = vec![1.0f32; 400];
        let mut gains = Vec::new();
        for _ in 0..100 {
            let c = cfg.train_crop(&ones, &mut rng);
            gains.extend(c.iter().copied().filter(|v| *v > 0.0));
        }
        let (lo, hi) = gains
            .iter()
            .fold((f32::MAX, 0.0f32), |(a, b), v| (a.min(*v), b.max(*v)));
        assert!(lo >= 0.5 && hi <= 2.0 && hi / lo > 2.0, "{lo} {hi}");
    }

    #[test]
    fn wav_round_trip_downmix_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let x = sine(440.0, 8000, 800, 0.5);
        write_wav_i16(&p, &x, 8000).unwrap();
        let c = read_wav(&p).unwrap();
        assert_eq!(c.rate, 8000);
        assert_eq!(c.samples.len(), 800);
        assert!(c.samples.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-4));

        // stereo 24-bit: channels averaged
        let p2 = dir.path().join("b.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p2, spec).unwrap();
        for _ in 0..10 {
            w.write_sample(1 << 22).unwrap(); // 0.5
            w.write_sample(0).unwrap();
        }
        w.finalize().unwrap();
        let c2 = read_wav(&p2).unwrap();
        assert_eq!(c2.samples, vec![0.25; 10]);

        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"this is not a wav file at all").unwrap();
        let e = read_wav(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.wav") && e.contains("not a readable WAV"),
            "{e}"
        );
        let short = dir.path().join("short.wav");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&short, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_wav(&short).unwrap_err().to_string();
        assert!(e.contains("short.wav"), "{e}");
        let empty = dir.path().join("empty.wav");
        write_wav_i16(&empty, &[], 8000).unwrap();
        assert!(matches!(read_wav(&empty), Err(AudioError::Empty { .. })));
    }

    #[test]
    fn resampling_keeps_a_tone_and_its_length() {
        let x = sine(440.0, 8000, 8000, 0.5);
        let y = resample(&x, 8000, 16_000).unwrap();
        assert_eq!(y.len(), 16_000);
        let want = sine(440.0, 16_000, 16_000, 0.5);
        let err = y[200..15_000]
            .iter()
            .zip(&want[200..15_000])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 1e-3, "{err}");
        let z = resample(&x, 8000, 8000).unwrap();
        assert_eq!(z, x);
    }
}
