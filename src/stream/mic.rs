//! Microphone input through cpal (ALSA on Linux, CoreAudio on macOS, WASAPI on Windows).
//!
//! ```text
//! audio thread: cpal callback -> convert to f32 -> rtrb ring  (never blocks, never allocates)
//! graph thread: ring -> downmix to mono -> resample to the model's rate -> Chunk
//! ```
//!
//! The callback only converts samples and pushes whole frames into a lock-free ring
//! buffer; when the ring is full the frames that do not fit are counted as overruns
//! ([`MicStats::lost_frames`]) and reported, never silently dropped. The capture side
//! ([`Mic`], a graph source) drains the ring with short sleeps, checking the stop flag
//! and the error flag that the stream's error callback sets, so a device that disappears
//! ends the stream with a message naming it instead of hanging.
//!
//! The stream is opened at the model's rate when the device offers it (no resampling),
//! preferring 16-bit integer samples and the fewest channels.

use super::{Chunk, Live};
use crate::audio::StreamResampler;
use crate::graph::{BoxError, Source, StopFlag};
use anyhow::{anyhow, bail, Context, Result};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{
    FromSample, SampleFormat, SizedSample, SupportedStreamConfig, SupportedStreamConfigRange,
};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds of device audio the ring buffer holds.
pub const RING_SECONDS: usize = 10;
/// A device that delivers nothing for this long is taken as gone.
const STALL: Duration = Duration::from_secs(5);
/// Pause between looks at the ring.
const NAP: Duration = Duration::from_millis(2);

/// Sample formats in order of preference.
const FORMATS: [SampleFormat; 12] = [
    SampleFormat::I16,
    SampleFormat::F32,
    SampleFormat::I32,
    SampleFormat::I24,
    SampleFormat::U16,
    SampleFormat::I8,
    SampleFormat::U8,
    SampleFormat::U24,
    SampleFormat::U32,
    SampleFormat::F64,
    SampleFormat::I64,
    SampleFormat::U64,
];

fn format_rank(f: SampleFormat) -> Option<usize> {
    FORMATS.iter().position(|&x| x == f)
}

/// What the capture did, shared between the audio callback, the source and the summary.
#[derive(Debug, Default)]
pub struct MicStats {
    /// Frames (samples per channel, at the device's rate) the callback could not store
    /// because the ring was full.
    pub lost_frames: AtomicU64,
    /// Overruns reported by the audio backend itself (xruns).
    pub xruns: AtomicU64,
    failed: AtomicBool,
    /// Why the stream ended early (the device failed or went away).
    pub ended: Mutex<Option<String>>,
}

impl MicStats {
    fn fail(&self, why: String) {
        let mut slot = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(why);
        }
        self.failed.store(true, Ordering::Release);
    }

    /// Why the stream ended early, if it did.
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One input device as `scarce devices` lists it.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Position in the host's list (what `--input-device N` takes).
    pub index: usize,
    /// Name for people.
    pub name: String,
    /// The host's identifier of the device (`--input-device` takes it too).
    pub id: String,
    /// The host's default input device.
    pub is_default: bool,
    /// The default input configuration, in words (or why there is none).
    pub default_config: String,
    /// The supported configuration ranges, in words.
    pub ranges: Vec<String>,
}

/// An audio host and its input devices.
#[derive(Clone, Debug)]
pub struct HostInfo {
    /// Host name (ALSA, JACK, CoreAudio, WASAPI, ...).
    pub name: String,
    /// The host `scarce run --input mic` uses.
    pub is_default: bool,
    /// Its input devices.
    pub devices: Vec<DeviceInfo>,
    /// Why the host or its devices could not be listed.
    pub error: Option<String>,
}

fn device_id(d: &cpal::Device) -> String {
    d.id()
        .map(|id| id.id().to_string())
        .unwrap_or_else(|_| String::new())
}

fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|desc| desc.name().to_string())
        .unwrap_or_else(|_| device_id(d))
}

/// The input devices of `host`, with the default input device first if the host's
/// enumeration leaves it out.
fn input_devices(host: &cpal::Host) -> Result<Vec<(cpal::Device, bool)>> {
    let default = host.default_input_device();
    let default_id = default.as_ref().map(device_id);
    let mut list: Vec<(cpal::Device, bool)> = host
        .input_devices()
        .with_context(|| format!("listing the input devices of {}", host.id().name()))?
        .map(|d| {
            let is_default = default_id.as_deref() == Some(device_id(&d).as_str());
            (d, is_default)
        })
        .collect();
    if let Some(d) = default {
        if !list.iter().any(|(_, is_default)| *is_default) {
            list.insert(0, (d, true));
        }
    }
    Ok(list)
}

fn describe_config(c: &SupportedStreamConfig) -> String {
    format!(
        "{} channel{}, {} Hz, {}",
        c.channels(),
        if c.channels() == 1 { "" } else { "s" },
        c.sample_rate(),
        c.sample_format()
    )
}

/// The supported configuration ranges in words, one line per sample format and rate
/// range with its channel counts.
fn describe_ranges(ranges: &[SupportedStreamConfigRange]) -> Vec<String> {
    let mut groups: Vec<((String, u32, u32), Vec<u16>)> = Vec::new();
    for r in ranges {
        let key = (
            r.sample_format().to_string(),
            r.min_sample_rate(),
            r.max_sample_rate(),
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ch)) => ch.push(r.channels()),
            None => groups.push((key, vec![r.channels()])),
        }
    }
    groups
        .into_iter()
        .map(|((fmt, lo, hi), mut ch)| {
            ch.sort_unstable();
            ch.dedup();
            let ch = if ch.len() > 4 && ch.windows(2).all(|w| w[1] == w[0] + 1) {
                format!("{}-{}", ch[0], ch[ch.len() - 1])
            } else {
                ch.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
            };
            let rate = if lo == hi {
                format!("{lo} Hz")
            } else {
                format!("{lo}-{hi} Hz")
            };
            format!("{fmt}, {rate}, {ch} channels")
        })
        .collect()
}

/// Turns off ALSA's printing of its own errors on this thread (on a machine without a
/// sound card, a dozen `ALSA lib ...` lines for each device probed), where the errors
/// cpal returns say what went wrong; `SCARCE_ALSA_ERRORS=1` keeps them.
fn quiet_alsa() {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::{c_char, c_int};
        unsafe extern "C" fn ignore(
            _: *const c_char,
            _: c_int,
            _: *const c_char,
            _: c_int,
            _: *const c_char,
            _: *mut alsa_sys::__va_list_tag,
        ) {
        }
        if std::env::var_os("SCARCE_ALSA_ERRORS").is_none() {
            // SAFETY: sets this thread's handler to a function that ignores its
            // arguments and matches the handler's signature.
            unsafe {
                alsa_sys::snd_lib_error_set_local(Some(ignore));
            }
        }
    }
}

/// Every audio host and its input devices.
pub fn list_hosts() -> Vec<HostInfo> {
    quiet_alsa();
    let default_host = cpal::default_host().id();
    cpal::available_hosts()
        .into_iter()
        .map(|id| {
            let mut info = HostInfo {
                name: id.name().to_string(),
                is_default: id == default_host,
                devices: Vec::new(),
                error: None,
            };
            let host = match cpal::host_from_id(id) {
                Ok(h) => h,
                Err(e) => {
                    info.error = Some(e.to_string());
                    return info;
                }
            };
            match input_devices(&host) {
                Ok(list) => {
                    for (index, (d, is_default)) in list.into_iter().enumerate() {
                        let default_config = match d.default_input_config() {
                            Ok(c) => describe_config(&c),
                            Err(e) => format!("none ({e})"),
                        };
                        let ranges = match d.supported_input_configs() {
                            Ok(r) => describe_ranges(&r.collect::<Vec<_>>()),
                            Err(e) => vec![format!("unknown ({e})")],
                        };
                        info.devices.push(DeviceInfo {
                            index,
                            name: device_name(&d),
                            id: device_id(&d),
                            is_default,
                            default_config,
                            ranges,
                        });
                    }
                }
                Err(e) => info.error = Some(format!("{e:#}")),
            }
            info
        })
        .collect()
}

/// What to check when no input device shows up.
pub fn no_device_hints() -> &'static str {
    if cfg!(target_os = "linux") {
        "check that the system sees a capture device (ALSA: `arecord -l`), that your user is \
         in the `audio` group, that PulseAudio or PipeWire is running if you use one, and \
         that ~/.asoundrc (if any) defines a working capture PCM"
    } else {
        "check that a microphone is connected and that this program may use it (the \
         system's privacy settings)"
    }
}

/// The report `scarce devices` prints.
pub fn devices_report(hosts: &[HostInfo]) -> String {
    let mut out = String::new();
    if hosts.is_empty() {
        let _ = writeln!(out, "no audio hosts available: {}", no_device_hints());
        return out;
    }
    let mut any = false;
    for h in hosts {
        let _ = writeln!(
            out,
            "host {}{}",
            h.name,
            if h.is_default {
                " (default: `scarce run --input mic` uses it)"
            } else {
                ""
            }
        );
        if let Some(e) = &h.error {
            let _ = writeln!(out, "  cannot list its devices: {e}");
        }
        if h.devices.is_empty() {
            let _ = writeln!(out, "  no input devices");
        }
        for d in &h.devices {
            any = true;
            let _ = writeln!(
                out,
                "  {} {:>2}  {}{}",
                if d.is_default { "*" } else { " " },
                d.index,
                d.name,
                if d.id.is_empty() || d.id == d.name {
                    String::new()
                } else {
                    format!("  [{}]", d.id)
                }
            );
            let _ = writeln!(out, "        default: {}", d.default_config);
            for (i, r) in d.ranges.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "        {} {r}",
                    if i == 0 { "supports:" } else { "         " }
                );
            }
        }
    }
    if any {
        let _ = writeln!(
            out,
            "* = default input device. Choose another with `scarce run RUN --input mic --input-device INDEX|NAME`."
        );
    } else {
        let _ = writeln!(out, "no input devices found: {}", no_device_hints());
    }
    out
}

/// The device `--input-device` names (an index in the list of `scarce devices`, an
/// identifier, a name, or a unique part of a name), else the default input device.
fn find_device(host: &cpal::Host, want: Option<&str>) -> Result<cpal::Device> {
    let list = input_devices(host)?;
    let listing = |list: &[(cpal::Device, bool)]| -> String {
        if list.is_empty() {
            return format!("none ({})", no_device_hints());
        }
        list.iter()
            .enumerate()
            .map(|(i, (d, is_default))| {
                format!(
                    "{i}: {}{}{}",
                    device_name(d),
                    match device_id(d) {
                        id if id.is_empty() || id == device_name(d) => String::new(),
                        id => format!(" [{id}]"),
                    },
                    if *is_default { " (default)" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let Some(want) = want else {
        return match host.default_input_device() {
            Some(d) => Ok(d),
            None => bail!(
                "no default input device on host {}: {}; input devices: {}",
                host.id().name(),
                no_device_hints(),
                listing(&list)
            ),
        };
    };
    if let Ok(i) = want.parse::<usize>() {
        return match list.get(i) {
            Some((d, _)) => Ok(d.clone()),
            None => bail!(
                "--input-device {i}: no such device; input devices: {}",
                listing(&list)
            ),
        };
    }
    let full_id = |d: &cpal::Device| d.id().map(|id| id.to_string()).unwrap_or_default();
    if let Some((d, _)) = list
        .iter()
        .find(|(d, _)| device_id(d) == want || full_id(d) == want || device_name(d) == want)
    {
        return Ok(d.clone());
    }
    let lower = want.to_lowercase();
    let partial: Vec<&(cpal::Device, bool)> = list
        .iter()
        .filter(|(d, _)| device_name(d).to_lowercase().contains(&lower))
        .collect();
    match partial.as_slice() {
        [(d, _)] => Ok(d.clone()),
        [] => bail!(
            "--input-device {want:?}: no such device; input devices: {}",
            listing(&list)
        ),
        _ => bail!(
            "--input-device {want:?} matches several devices; give its index or identifier; input devices: {}",
            listing(&list)
        ),
    }
}

/// The configuration to open: the model's rate if the device offers it, else the
/// default configuration (or the nearest rate); 16-bit samples and few channels first.
fn choose_config(device: &cpal::Device, name: &str, rate: u32) -> Result<SupportedStreamConfig> {
    let ranges: Vec<SupportedStreamConfigRange> = device
        .supported_input_configs()
        .with_context(|| {
            format!(
                "input device `{name}` cannot be used ({}; `scarce devices` lists the others, `--input-device` chooses one)",
                no_device_hints()
            )
        })?
        .collect();
    let usable: Vec<&SupportedStreamConfigRange> = ranges
        .iter()
        .filter(|r| format_rank(r.sample_format()).is_some() && r.channels() > 0)
        .collect();
    if usable.is_empty() {
        let offers = describe_ranges(&ranges);
        bail!(
            "input device `{name}` offers no sample format this program reads (it offers: {})",
            if offers.is_empty() {
                "nothing".to_string()
            } else {
                offers.join("; ")
            }
        );
    }
    let key = |r: &SupportedStreamConfigRange| {
        (
            format_rank(r.sample_format()).unwrap_or(usize::MAX),
            r.channels(),
        )
    };
    if let Some(r) = usable
        .iter()
        .filter(|r| r.contains_rate(rate))
        .min_by_key(|r| key(r))
    {
        return Ok((**r).with_sample_rate(rate));
    }
    if let Ok(c) = device.default_input_config() {
        if format_rank(c.sample_format()).is_some() {
            return Ok(c);
        }
    }
    let r = usable
        .iter()
        .min_by_key(|r| key(r))
        .expect("usable is not empty");
    Ok((**r).with_sample_rate(rate.clamp(r.min_sample_rate(), r.max_sample_rate())))
}

/// The audio callback's work: converts `data` (interleaved, `channels` per frame) to
/// f32 and stores the whole frames that fit into the ring; counts the others as lost.
/// Never blocks and never allocates.
fn store_frames<T>(
    producer: &mut rtrb::Producer<f32>,
    data: &[T],
    channels: usize,
    stats: &MicStats,
) where
    T: Copy,
    f32: FromSample<T>,
{
    let frames = data.len() / channels;
    let fit = (producer.slots() / channels).min(frames);
    if fit > 0 {
        if let Ok(chunk) = producer.write_chunk_uninit(fit * channels) {
            chunk.fill_from_iter(data[..fit * channels].iter().map(|&s| f32::from_sample_(s)));
        }
    }
    if fit < frames {
        stats
            .lost_frames
            .fetch_add((frames - fit) as u64, Ordering::Relaxed);
    }
}

fn build_stream<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut producer: rtrb::Producer<f32>,
    stats: Arc<MicStats>,
    name: String,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    let channels = config.channels.max(1) as usize;
    let lost = stats.clone();
    device.build_input_stream::<T, _, _>(
        *config,
        // the audio thread: convert and store whole frames, count what does not fit
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            store_frames(&mut producer, data, channels, &lost)
        },
        move |e: cpal::Error| match e.kind() {
            cpal::ErrorKind::Xrun => {
                stats.xruns.fetch_add(1, Ordering::Relaxed);
            }
            cpal::ErrorKind::DeviceChanged | cpal::ErrorKind::RealtimeDenied => {
                log::warn!("input device `{name}`: {e}");
            }
            _ => stats.fail(format!("input device `{name}` stopped: {e}")),
        },
        Some(Duration::from_secs(5)),
    )
}

/// Where and how to capture.
#[derive(Clone, Debug)]
pub struct MicOptions {
    /// `--input-device`: index, identifier or name; `None` = the default input device.
    pub device: Option<String>,
    /// The model's rate, Hz.
    pub rate: u32,
    /// Samples per chunk at the model's rate.
    pub chunk: usize,
    /// Stop after this many samples at the model's rate.
    pub limit: Option<u64>,
}

/// The capture side: drains the ring into chunks at the model's rate.
struct Capture {
    consumer: rtrb::Consumer<f32>,
    channels: usize,
    /// Device frames per look at the ring (about one chunk).
    frames_per_read: usize,
    resampler: StreamResampler,
    mono: Vec<f32>,
    out: Vec<f32>,
    chunk: usize,
    emitted: u64,
    limit: Option<u64>,
    stats: Arc<MicStats>,
    last_data: Instant,
    /// Device name, for messages.
    name: String,
}

impl Capture {
    /// Moves up to `max_frames` whole frames from the ring into `self.out`, downmixed
    /// and resampled. Returns the number of frames read.
    fn drain(&mut self, max_frames: usize) -> Result<usize> {
        let frames = (self.consumer.slots() / self.channels).min(max_frames);
        if frames == 0 {
            return Ok(0);
        }
        let chunk = self
            .consumer
            .read_chunk(frames * self.channels)
            .map_err(|e| anyhow!("reading the capture buffer: {e}"))?;
        let (a, b) = chunk.as_slices();
        self.mono.clear();
        super::downmix_into(
            a.iter().chain(b.iter()).copied(),
            self.channels,
            &mut self.mono,
        );
        chunk.commit_all();
        self.resampler.push(&self.mono, &mut self.out)?;
        Ok(frames)
    }

    /// The next chunk; `None` at the end of the stream: `--duration` reached, `stop`
    /// set, or the device failed (after what it captured before failing). Waits in
    /// short naps, so it returns within milliseconds of a stop or a failure.
    fn next_chunk(&mut self, stop: &StopFlag) -> Result<Option<Chunk>> {
        loop {
            let left = self.limit.map(|l| l.saturating_sub(self.emitted));
            if left == Some(0) || stop.is_stopped() {
                return Ok(None);
            }
            if self.out.len() >= self.chunk {
                break;
            }
            if self.stats.failed.load(Ordering::Acquire) {
                // what was captured before the failure still counts
                self.drain(usize::MAX)?;
                if self.out.is_empty() {
                    return Ok(None);
                }
                break;
            }
            if self.drain(self.frames_per_read)? > 0 {
                self.last_data = Instant::now();
                continue;
            }
            if self.last_data.elapsed() > STALL {
                self.stats.fail(format!(
                    "input device `{}` delivered no audio for {} s",
                    self.name,
                    STALL.as_secs()
                ));
                continue;
            }
            std::thread::sleep(NAP);
        }
        let left = self
            .limit
            .map_or(u64::MAX, |l| l.saturating_sub(self.emitted));
        let n = self.chunk.min(self.out.len()).min(left as usize);
        let samples: Vec<f32> = self.out.drain(..n).collect();
        let start = self.emitted;
        self.emitted += n as u64;
        Ok(Some(Chunk {
            start,
            samples,
            arrived: Instant::now(),
        }))
    }
}

/// The microphone as a graph source of [`Chunk`]s at the model's rate.
pub struct Mic {
    stream: Option<cpal::Stream>,
    cap: Capture,
    stop: StopFlag,
    counter: Option<Arc<AtomicU64>>,
    /// Device name, for messages.
    pub name: String,
    /// The configuration the stream was opened with, in words.
    pub config: String,
}

impl Mic {
    /// Opens the device and starts capturing; `stop` ends the stream.
    pub fn open(opts: &MicOptions, stop: StopFlag) -> Result<Self> {
        quiet_alsa();
        let host = cpal::default_host();
        let device = find_device(&host, opts.device.as_deref())?;
        let name = match device_id(&device) {
            id if id.is_empty() || id == device_name(&device) => device_name(&device),
            id => format!("{} [{id}]", device_name(&device)),
        };
        let supported = choose_config(&device, &name, opts.rate)?;
        let config = supported.config();
        let channels = config.channels.max(1) as usize;
        let device_rate = config.sample_rate;
        let capacity = RING_SECONDS * device_rate as usize * channels;
        let (producer, consumer) = rtrb::RingBuffer::<f32>::new(capacity.max(channels));
        let stats = Arc::new(MicStats::default());
        let n = name.clone();
        let s = stats.clone();
        let stream = match supported.sample_format() {
            SampleFormat::I8 => build_stream::<i8>(&device, &config, producer, s, n),
            SampleFormat::I16 => build_stream::<i16>(&device, &config, producer, s, n),
            SampleFormat::I24 => build_stream::<cpal::I24>(&device, &config, producer, s, n),
            SampleFormat::I32 => build_stream::<i32>(&device, &config, producer, s, n),
            SampleFormat::I64 => build_stream::<i64>(&device, &config, producer, s, n),
            SampleFormat::U8 => build_stream::<u8>(&device, &config, producer, s, n),
            SampleFormat::U16 => build_stream::<u16>(&device, &config, producer, s, n),
            SampleFormat::U24 => build_stream::<cpal::U24>(&device, &config, producer, s, n),
            SampleFormat::U32 => build_stream::<u32>(&device, &config, producer, s, n),
            SampleFormat::U64 => build_stream::<u64>(&device, &config, producer, s, n),
            SampleFormat::F32 => build_stream::<f32>(&device, &config, producer, s, n),
            SampleFormat::F64 => build_stream::<f64>(&device, &config, producer, s, n),
            other => bail!("input device `{name}`: sample format {other} is not supported"),
        }
        .map_err(|e| {
            anyhow!(
                "opening input device `{name}` ({}): {e}",
                describe_config(&supported)
            )
        })?;
        stream
            .play()
            .map_err(|e| anyhow!("starting input device `{name}`: {e}"))?;
        let cap = Capture {
            consumer,
            channels,
            frames_per_read: (device_rate as usize / 50).max(1),
            resampler: StreamResampler::new(device_rate, opts.rate)?,
            mono: Vec::new(),
            out: Vec::new(),
            chunk: opts.chunk.max(1),
            emitted: 0,
            limit: opts.limit,
            stats,
            last_data: Instant::now(),
            name: name.clone(),
        };
        Ok(Self {
            stream: Some(stream),
            cap,
            stop,
            counter: None,
            name,
            config: describe_config(&supported),
        })
    }

    /// Also adds the number of samples emitted to `counter`.
    pub fn counting(mut self, counter: Arc<AtomicU64>) -> Self {
        self.counter = Some(counter);
        self
    }

    /// The capture's counters (overruns, why it ended).
    pub fn stats(&self) -> Arc<MicStats> {
        self.cap.stats.clone()
    }
}

impl Source<Live> for Mic {
    fn next(&mut self) -> Result<Option<Live>, BoxError> {
        if self.stream.is_none() {
            return Ok(None);
        }
        match self.cap.next_chunk(&self.stop)? {
            Some(c) => {
                if let Some(n) = &self.counter {
                    n.fetch_add(c.samples.len() as u64, Ordering::Relaxed);
                }
                Ok(Some(Live::Chunk(c)))
            }
            None => {
                // stop the audio thread now rather than when the graph is dropped
                self.stream = None;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(
        channels: usize,
        capacity: usize,
        from: u32,
        to: u32,
        limit: Option<u64>,
    ) -> (rtrb::Producer<f32>, Capture) {
        let (producer, consumer) = rtrb::RingBuffer::<f32>::new(capacity);
        let cap = Capture {
            consumer,
            channels,
            frames_per_read: (from as usize / 50).max(1),
            resampler: StreamResampler::new(from, to).unwrap(),
            mono: Vec::new(),
            out: Vec::new(),
            chunk: (to as usize / 50).max(1),
            emitted: 0,
            limit,
            stats: Arc::new(MicStats::default()),
            last_data: Instant::now(),
            name: "test mic".into(),
        };
        (producer, cap)
    }

    #[test]
    fn the_callback_stores_whole_frames_and_counts_what_does_not_fit() {
        let (mut p, cap) = capture(2, 9, 8000, 8000, None);
        // i16 stereo: 4 frames fit in 9 slots (whole frames only), 2 are lost
        let data: [i16; 12] = [i16::MAX, 0, -16384, 16384, 0, 0, 1, 1, 2, 2, 3, 3];
        store_frames(&mut p, &data, 2, &cap.stats);
        assert_eq!(p.slots(), 1);
        assert_eq!(cap.stats.lost_frames.load(Ordering::Relaxed), 2);
        let mut c = cap.consumer;
        assert!((c.pop().unwrap() - 1.0).abs() < 1e-4);
        assert_eq!(c.pop().unwrap(), 0.0);
        assert_eq!(c.pop().unwrap(), -0.5);
        // unsigned samples are centred
        let (mut p, cap) = capture(1, 4, 8000, 8000, None);
        store_frames(&mut p, &[32768u16, 0, u16::MAX], 1, &cap.stats);
        let mut c = cap.consumer;
        assert_eq!(c.pop().unwrap(), 0.0);
        assert_eq!(c.pop().unwrap(), -1.0);
        assert!((c.pop().unwrap() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn capture_downmixes_resamples_and_stops_at_the_duration() {
        // 16 kHz stereo, left 0.5 and right -0.1: mono 0.2 at 8 kHz
        let (mut p, mut cap) = capture(2, 64_000, 16_000, 8_000, Some(4_000));
        let frames: Vec<f32> = (0..16_000).flat_map(|_| [0.5f32, -0.1]).collect();
        store_frames(&mut p, &frames, 2, &cap.stats);
        let stop = StopFlag::new();
        let mut all = Vec::new();
        let mut next = 0;
        while let Some(c) = cap.next_chunk(&stop).unwrap() {
            assert_eq!(c.start, next);
            next += c.samples.len() as u64;
            all.extend(c.samples);
        }
        assert_eq!(all.len(), 4_000, "--duration cuts the stream");
        assert!(all[200..].iter().all(|v| (v - 0.2).abs() < 0.01));
    }

    #[test]
    fn a_failed_device_ends_the_stream_after_what_it_captured() {
        let (mut p, mut cap) = capture(1, 8_000, 8_000, 8_000, None);
        store_frames(&mut p, &[0.25f32; 500], 1, &cap.stats);
        cap.stats
            .fail("input device `test mic` stopped: unplugged".into());
        let stop = StopFlag::new();
        let t = Instant::now();
        let mut n = 0;
        while let Some(c) = cap.next_chunk(&stop).unwrap() {
            n += c.samples.len();
        }
        assert_eq!(n, 500);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(cap.stats.ended().unwrap().contains("test mic"));
        // a stop ends a stream that has no data without waiting for it
        let (_p, mut cap) = capture(1, 8_000, 8_000, 8_000, None);
        let stop = StopFlag::new();
        let s = stop.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            s.stop();
        });
        let t = Instant::now();
        assert!(cap.next_chunk(&stop).unwrap().is_none());
        assert!(t.elapsed() < Duration::from_secs(1));
        h.join().unwrap();
    }

    #[test]
    fn configs_are_described_for_people() {
        let ranges = [
            SupportedStreamConfigRange::new(
                1,
                8000,
                48000,
                cpal::SupportedBufferSize::Unknown,
                SampleFormat::I16,
            ),
            SupportedStreamConfigRange::new(
                2,
                8000,
                48000,
                cpal::SupportedBufferSize::Unknown,
                SampleFormat::I16,
            ),
            SupportedStreamConfigRange::new(
                2,
                44100,
                44100,
                cpal::SupportedBufferSize::Unknown,
                SampleFormat::F32,
            ),
        ];
        assert_eq!(
            describe_ranges(&ranges),
            vec![
                "i16, 8000-48000 Hz, 1,2 channels".to_string(),
                "f32, 44100 Hz, 2 channels".to_string()
            ]
        );
        let report = devices_report(&[HostInfo {
            name: "ALSA".into(),
            is_default: true,
            devices: Vec::new(),
            error: None,
        }]);
        assert!(report.contains("no input devices found"), "{report}");
        if cfg!(target_os = "linux") {
            assert!(report.contains("arecord -l") && report.contains("audio` group"));
        }
    }
}
