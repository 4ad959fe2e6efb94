//! Device input: a microcontroller (or the simulator) streams samples to the host over
//! the `firmware-host` wire protocol, from a serial port, a TCP connection or stdin.
//!
//! ```text
//! transport reader thread -> bytes -> WireSource (decode, fill gaps, downmix, resample) -> Chunk
//!                                                       print sink -> ResultSender -> device
//! ```
//!
//! - A reader thread owns the blocking transport and hands blocks of bytes to the source
//!   over a bounded channel, so a stop (Ctrl-C, `--duration`) never waits on a read.
//! - [`WireSource`] feeds the bytes to a [`firmware_host::Decoder`]. A `Hello` gives the
//!   device's rate, channels and sample format (samples before any `Hello` are taken as
//!   mono at the model's rate, with a warning). Frames lost in transit (sequence gaps)
//!   become as many frames of zeros, so stream time stays right; frames received, lost
//!   and corrupt are counted in the graph's metrics ([`COUNTERS`]).
//! - Decisions go back to the device as `Result` messages through a [`ResultSender`]
//!   (serial and TCP): a writer thread behind a small bounded queue, so a device that
//!   does not read never slows the graph (what does not fit is counted and dropped).
//!   With `--fast` the graph is lossless, and a result first waits a while for room
//!   ([`ResultSender::waiting`]).

use super::{downmix_into, Chunk, Live, Verdict};
use crate::audio::StreamResampler;
use crate::graph::{BoxError, GraphMetrics, Source, StopFlag};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{
    bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError,
};
use firmware_host::{
    Decoder, Frame, Inference, Message, SampleData, SampleFormat, LABEL_SILENCE, LABEL_UNKNOWN,
    MAX_FRAME,
};
use std::fmt;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default serial speed (`--baud`).
pub const DEFAULT_BAUD: u32 = 921_600;

/// Names of the graph counters a device input keeps, in report order: Samples frames
/// received, frames lost in transit (sequence gaps), frames that failed their CRC or
/// framing, results to the device dropped because it did not keep up.
pub const COUNTERS: [&str; 4] = [
    "device frames",
    "device frames lost",
    "device frames corrupt",
    "results dropped",
];

/// Longest run of lost frames filled with silence, seconds.
const MAX_GAP_S: u64 = 10;
/// How often a waiting source or accept loop looks at the stop flag.
const NAP: Duration = Duration::from_millis(50);
/// Read timeout of serial ports and sockets: bounds how long a reader thread takes to
/// notice that the stream is over.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// Where the device's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireInput {
    /// A serial port (`/dev/ttyACM0`, `COM3`) at `baud` bits per second.
    Serial {
        /// Port path or name.
        port: String,
        /// Bits per second.
        baud: u32,
    },
    /// Listen on this address (`0.0.0.0:7878`) and take the first device that connects.
    Tcp {
        /// Address to listen on.
        listen: String,
    },
    /// Protocol bytes on standard input (`sim-device x.wav --stdout | scarce run ...`).
    Stdin,
}

impl fmt::Display for WireInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireInput::Serial { port, baud } => write!(f, "serial port {port} ({baud} baud)"),
            WireInput::Tcp { listen } => write!(f, "TCP {listen}"),
            WireInput::Stdin => f.write_str("stdin"),
        }
    }
}

/// What the reader thread hands to the source.
enum Block {
    Bytes(Vec<u8>),
    /// The transport ended: `None` = cleanly (end of file, the device closed the
    /// connection or hung up the port), `Some(why)` = it failed.
    End(Option<String>),
}

/// An opened transport: bytes in, and where results go back (serial and TCP).
pub struct Transport {
    reader: Box<dyn Read + Send>,
    writer: Option<Box<dyn Write + Send>>,
    /// In words, for messages.
    pub name: String,
}

impl Transport {
    /// Opens `input`. For TCP this waits until a device connects (or `stop` is set).
    pub fn open(input: &WireInput, stop: &StopFlag) -> Result<Self> {
        match input {
            WireInput::Serial { port, baud } => {
                let p = serialport::new(port, *baud)
                    .timeout(READ_TIMEOUT)
                    .open()
                    .map_err(|e| {
                        anyhow!(
                            "opening serial port {port}: {e} (is the device plugged in? \
                             on Linux, ports are /dev/ttyACM* or /dev/ttyUSB* and need the \
                             `dialout` group)"
                        )
                    })?;
                let writer = p
                    .try_clone()
                    .map_err(|e| anyhow!("serial port {port}: {e}"))?;
                Ok(Self {
                    reader: Box::new(p),
                    writer: Some(Box::new(writer)),
                    name: format!("serial port {port}"),
                })
            }
            WireInput::Tcp { listen } => {
                let l = std::net::TcpListener::bind(listen)
                    .with_context(|| format!("listening on {listen}"))?;
                l.set_nonblocking(true)
                    .with_context(|| format!("listening on {listen}"))?;
                let local = l.local_addr().map(|a| a.to_string());
                eprintln!(
                    "waiting for a device to connect to {}",
                    local.as_deref().unwrap_or(listen)
                );
                let (s, peer) = loop {
                    match l.accept() {
                        Ok(c) => break c,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            if stop.is_stopped() {
                                bail!("stopped while waiting for a device on {listen}");
                            }
                            std::thread::sleep(NAP);
                        }
                        Err(e) => return Err(e).context(format!("accepting on {listen}")),
                    }
                };
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(READ_TIMEOUT))?;
                s.set_nodelay(true)?;
                let w = s.try_clone().context("cloning the device's connection")?;
                Ok(Self {
                    reader: Box::new(s),
                    writer: Some(Box::new(w)),
                    name: format!("a TCP connection from {peer}"),
                })
            }
            WireInput::Stdin => Ok(Self {
                reader: Box::new(std::io::stdin()),
                writer: None,
                name: "stdin".to_string(),
            }),
        }
    }

    /// A transport over any reader and writer (tests).
    pub fn from_parts(
        reader: Box<dyn Read + Send>,
        writer: Option<Box<dyn Write + Send>>,
        name: &str,
    ) -> Self {
        Self {
            reader,
            writer,
            name: name.to_string(),
        }
    }
}

/// Whether a read error means the other side went away rather than a failure: a
/// closed socket, or a serial port (or pseudo-terminal) that was hung up.
fn is_hang_up(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
    ) || e.raw_os_error() == Some(5) // EIO: the far end of a pty closed
}

/// Reads `reader` into blocks until it ends, the source goes away or `stop` is set.
fn read_loop(mut reader: Box<dyn Read + Send>, tx: Sender<Block>, stop: StopFlag) {
    let mut buf = vec![0u8; 4096];
    loop {
        if stop.is_stopped() {
            return;
        }
        match reader.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Block::End(None));
                return;
            }
            Ok(n) => {
                if tx.send(Block::Bytes(buf[..n].to_vec())).is_err() {
                    return; // the source is gone
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) if is_hang_up(&e) => {
                let _ = tx.send(Block::End(None));
                return;
            }
            Err(e) => {
                let _ = tx.send(Block::End(Some(e.to_string())));
                return;
            }
        }
    }
}

/// The device's stream format, from its `Hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Format {
    rate: u32,
    channels: usize,
}

/// Counters shared with the graph's metrics.
#[derive(Clone)]
struct Counters {
    frames: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
    corrupt: Arc<AtomicU64>,
}

/// Device frames as a graph source of [`Chunk`]s at the model's rate.
pub struct WireSource {
    rx: Receiver<Block>,
    decoder: Decoder,
    stop: StopFlag,
    name: String,
    rate: u32,
    chunk: usize,
    limit: Option<u64>,
    format: Option<Format>,
    /// The device's last hello.
    hello: Option<firmware_host::Hello>,
    resampler: StreamResampler,
    /// Mono samples per device frame (of the last frame), to fill sequence gaps.
    frame_len: usize,
    mono: Vec<f32>,
    out: Vec<f32>,
    emitted: u64,
    ended: bool,
    counters: Counters,
    frames: Arc<Mutex<FrameEnds>>,
    /// A frame of another protocol version was named in a warning.
    told_version: bool,
    streamed: Option<Arc<AtomicU64>>,
    failure: Arc<Mutex<Option<String>>>,
}

impl WireSource {
    /// A source reading `transport` for a model at `rate` Hz, in chunks of `chunk`
    /// samples, stopping after `limit` samples; counters go into `metrics`. Returns the
    /// source and, for transports that can answer, the sender of results to the device.
    pub fn new(
        transport: Transport,
        rate: u32,
        chunk: usize,
        limit: Option<u64>,
        stop: StopFlag,
        metrics: &GraphMetrics,
    ) -> Result<(Self, Option<ResultSender>)> {
        let counters = Counters {
            frames: metrics.counter(COUNTERS[0]),
            lost: metrics.counter(COUNTERS[1]),
            corrupt: metrics.counter(COUNTERS[2]),
        };
        let frames = Arc::new(Mutex::new(FrameEnds::default()));
        let results = transport
            .writer
            .map(|w| ResultSender::spawn(w, frames.clone(), rate, metrics.counter(COUNTERS[3])));
        // about a second of bytes at full serial speed: bounded memory if the graph stalls
        let (tx, rx) = bounded(32);
        let reader = transport.reader;
        let s = stop.clone();
        std::thread::Builder::new()
            .name("wire-reader".into())
            .spawn(move || read_loop(reader, tx, s))
            .context("starting the device reader")?;
        Ok((
            Self {
                rx,
                decoder: Decoder::new(),
                stop,
                name: transport.name,
                rate,
                chunk: chunk.max(1),
                limit,
                format: None,
                hello: None,
                resampler: StreamResampler::new(rate, rate)?,
                frame_len: 0,
                mono: Vec::new(),
                out: Vec::new(),
                emitted: 0,
                ended: false,
                counters,
                frames,
                told_version: false,
                streamed: None,
                failure: Arc::default(),
            },
            results,
        ))
    }

    /// Also adds the number of samples emitted to `counter`.
    pub fn counting(mut self, counter: Arc<AtomicU64>) -> Self {
        self.streamed = Some(counter);
        self
    }

    /// Where the reason goes when the transport fails (not when it simply ends).
    pub fn failure(&self) -> Arc<Mutex<Option<String>>> {
        self.failure.clone()
    }

    fn set_format(&mut self, f: Format) -> Result<()> {
        if self.format != Some(f) {
            self.resampler = StreamResampler::new(f.rate, self.rate)?;
            self.format = Some(f);
        }
        Ok(())
    }

    fn frame(&mut self, frame: Frame) -> Result<()> {
        match frame.message {
            Message::Hello(h) => {
                if !crate::audio::RATES.contains(&h.sample_rate) || h.channels == 0 {
                    log::warn!(
                        "{}: ignoring a hello with {} Hz and {} channels",
                        self.name,
                        h.sample_rate,
                        h.channels
                    );
                    return Ok(());
                }
                // devices may repeat their hello (for hosts that connect late): say it once
                if self.hello.as_ref() == Some(&h) {
                    return Ok(());
                }
                eprintln!(
                    "device {} on {}: {} Hz, {} channel{}, {}",
                    h.device_id,
                    self.name,
                    h.sample_rate,
                    h.channels,
                    if h.channels == 1 { "" } else { "s" },
                    match h.format {
                        SampleFormat::I16 => "16-bit",
                        SampleFormat::F32 => "32-bit float",
                    }
                );
                self.set_format(Format {
                    rate: h.sample_rate,
                    channels: h.channels as usize,
                })?;
                self.hello = Some(h);
            }
            Message::Samples(s) => {
                if self.format.is_none() {
                    log::warn!(
                        "{}: samples before any hello from the device: taking them as mono at {} Hz",
                        self.name,
                        self.rate
                    );
                    self.set_format(Format {
                        rate: self.rate,
                        channels: 1,
                    })?;
                }
                let ch = self.format.map_or(1, |f| f.channels);
                self.counters.frames.fetch_add(1, Ordering::Relaxed);
                self.mono.clear();
                let n = match &s.data {
                    SampleData::I16(v) => v.len(),
                    SampleData::F32(v) => v.len(),
                } / ch;
                if frame.lost > 0 {
                    // lost frames become silence of the same length: stream time stays
                    // right (up to MAX_GAP_S; a longer gap is a restart more than a loss)
                    let len = if self.frame_len > 0 {
                        self.frame_len
                    } else {
                        n
                    };
                    let rate = self.format.map_or(self.rate, |f| f.rate) as u64;
                    let fill = (len as u64 * frame.lost as u64).min(rate * MAX_GAP_S);
                    self.mono.resize(fill as usize, 0.0);
                }
                match &s.data {
                    SampleData::I16(v) => {
                        downmix_into(v.iter().map(|&x| x as f32 / 32768.0), ch, &mut self.mono)
                    }
                    SampleData::F32(v) => downmix_into(v.iter().copied(), ch, &mut self.mono),
                }
                self.frame_len = n;
                self.resampler.push(&self.mono, &mut self.out)?;
                // the stream so far, at the model's rate, ends with this frame
                let end = self.emitted + self.out.len() as u64;
                self.frames
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(end, s.seq);
            }
            Message::Error(e) => {
                log::warn!("{} reports {:?} (detail {})", self.name, e.code, e.detail)
            }
            Message::Result(_) => {} // results travel to devices, not from them
        }
        Ok(())
    }

    fn take_chunk(&mut self, n: usize) -> Chunk {
        let samples: Vec<f32> = self.out.drain(..n).collect();
        let start = self.emitted;
        self.emitted += n as u64;
        if let Some(c) = &self.streamed {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        Chunk {
            start,
            samples,
            arrived: Instant::now(),
        }
    }

    /// The next chunk; `None` when the transport ended, `--duration` was reached or
    /// `stop` was set.
    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        loop {
            let left = self
                .limit
                .map_or(u64::MAX, |l| l.saturating_sub(self.emitted));
            if left == 0 || self.stop.is_stopped() {
                return Ok(None);
            }
            let want = (self.chunk as u64).min(left) as usize;
            if self.out.len() >= want || (self.ended && !self.out.is_empty()) {
                let n = want.min(self.out.len());
                return Ok(Some(self.take_chunk(n)));
            }
            if self.ended {
                return Ok(None);
            }
            match self.rx.recv_timeout(NAP) {
                Ok(Block::Bytes(bytes)) => {
                    for b in bytes {
                        match self.decoder.push(b) {
                            Some(Ok(frame)) => self.frame(frame)?,
                            // a device of another protocol version: said once, counted
                            // as corrupt like any frame that cannot be read
                            Some(Err(e @ firmware_host::FrameError::Version(_)))
                                if !self.told_version =>
                            {
                                self.told_version = true;
                                log::warn!("{}: {e}", self.name);
                            }
                            _ => {}
                        }
                    }
                    let st = self.decoder.stats();
                    self.counters.lost.store(st.lost, Ordering::Relaxed);
                    self.counters.corrupt.store(st.corrupt, Ordering::Relaxed);
                }
                Ok(Block::End(why)) => {
                    self.ended = true;
                    if let Some(why) = why {
                        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(format!("reading {}: {why}", self.name));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.ended = true,
            }
        }
    }
}

impl Source<Live> for WireSource {
    fn next(&mut self) -> Result<Option<Live>, BoxError> {
        Ok(self.next_chunk()?.map(Live::Chunk))
    }
}

/// Where each device frame's samples end in the stream (at the model's rate), newest
/// last: the frame a window's last sample came from is the `seq` its result carries.
#[derive(Debug, Default)]
struct FrameEnds {
    /// `(end, seq)`: the frame's samples end before stream sample `end`.
    ends: std::collections::VecDeque<(u64, u32)>,
}

impl FrameEnds {
    /// How many frames are remembered (minutes of audio in the frames devices send).
    const KEEP: usize = 8192;

    fn push(&mut self, end: u64, seq: u32) {
        if self.ends.len() == Self::KEEP {
            self.ends.pop_front();
        }
        self.ends.push_back((end, seq));
    }

    /// The frame that holds stream sample `at` (the newest one when `at` is past them
    /// all: the silence after the stream); frames before it are forgotten, since results
    /// come in stream order.
    fn seq_of(&mut self, at: u64) -> Option<u32> {
        while self.ends.len() > 1 && self.ends[0].0 <= at {
            self.ends.pop_front();
        }
        self.ends.front().map(|&(_, seq)| seq)
    }
}

/// Sends decisions back to the device as `Result` messages from a writer thread.
pub struct ResultSender {
    tx: Sender<Inference>,
    frames: Arc<Mutex<FrameEnds>>,
    rate: u32,
    dropped: Arc<AtomicU64>,
    /// With `--fast`: how long a result may wait for room in the queue. The first one
    /// that waits in vain turns waiting off, so a device that stopped reading never
    /// holds the graph up more than once.
    patience: Option<Duration>,
}

impl ResultSender {
    fn spawn(
        mut w: Box<dyn Write + Send>,
        frames: Arc<Mutex<FrameEnds>>,
        rate: u32,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        // a few windows' worth: a device that stops reading costs nothing but these
        let (tx, rx) = bounded::<Inference>(16);
        let _ = std::thread::Builder::new()
            .name("wire-results".into())
            .spawn(move || {
                let mut buf = [0u8; MAX_FRAME];
                for r in rx {
                    let Ok(n) = firmware_host::encode(&Message::Result(r), &mut buf) else {
                        continue;
                    };
                    if w.write_all(&buf[..n]).and_then(|_| w.flush()).is_err() {
                        return; // the device went away; the source will notice too
                    }
                }
            });
        Self {
            tx,
            frames,
            rate,
            dropped,
            patience: None,
        }
    }

    /// Waits up to `wait` for room in the queue instead of dropping a result at once:
    /// for `--fast`, where the graph is lossless and a device that reads its results
    /// late (a loaded host, a slow link) should still get every one.
    pub fn waiting(mut self, wait: Duration) -> Self {
        self.patience = Some(wait);
        self
    }

    /// Queues the decision `verdict` (with its confidence) on the window that ends at
    /// `end_s` seconds of stream time for the device, tagged with the `seq` of the frame
    /// that held the window's last sample; drops it when the queue is full (after
    /// waiting, if [`ResultSender::waiting`]).
    pub fn send(&mut self, verdict: Verdict, confidence: f32, end_s: f64) {
        let label = match verdict {
            Verdict::Label(i) => i.min(LABEL_SILENCE as usize - 1) as u16,
            Verdict::Unknown => LABEL_UNKNOWN,
            Verdict::Silence => LABEL_SILENCE,
        };
        let last = ((end_s * f64::from(self.rate)).round() as u64).saturating_sub(1);
        let seq = self
            .frames
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .seq_of(last)
            .unwrap_or(0);
        let r = Inference {
            seq,
            label,
            confidence,
        };
        let full = match self.patience {
            None => matches!(self.tx.try_send(r), Err(TrySendError::Full(_))),
            Some(wait) => matches!(
                self.tx.send_timeout(r, wait),
                Err(SendTimeoutError::Timeout(_))
            ),
        };
        if full {
            self.patience = None;
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_host::{Hello, Samples};

    fn encode_all(msgs: &[Message]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; MAX_FRAME];
        for m in msgs {
            let n = firmware_host::encode(m, &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    fn hello(rate: u32, channels: u8) -> Message {
        Message::Hello(Hello {
            device_id: 7,
            sample_rate: rate,
            format: SampleFormat::I16,
            channels,
        })
    }

    fn samples(seq: u32, v: &[i16]) -> Message {
        Message::Samples(Samples {
            seq,
            data: SampleData::I16(firmware_host::heapless::Vec::from_slice(v).unwrap()),
        })
    }

    /// A source over `bytes` (an in-memory transport that then ends).
    fn source(bytes: Vec<u8>, rate: u32, chunk: usize) -> (WireSource, GraphMetrics) {
        let g: crate::graph::Graph<Live> = crate::graph::Graph::new();
        let m = g.metrics();
        let t = Transport::from_parts(Box::new(std::io::Cursor::new(bytes)), None, "memory");
        let (s, r) = WireSource::new(t, rate, chunk, None, StopFlag::new(), &m).unwrap();
        assert!(r.is_none());
        (s, m)
    }

    fn drain(s: &mut WireSource) -> Vec<f32> {
        let mut all = Vec::new();
        let mut next = 0;
        while let Some(c) = s.next_chunk().unwrap() {
            assert_eq!(c.start, next, "chunks are contiguous");
            next += c.samples.len() as u64;
            all.extend(c.samples);
        }
        all
    }

    #[test]
    fn frames_become_chunks_and_gaps_become_silence() {
        let a: Vec<i16> = (0..100).map(|i| i * 100).collect();
        // frame 1 never arrives: it was lost on the way
        let bytes = encode_all(&[hello(8000, 1), samples(0, &a), samples(2, &a)]);
        let (mut s, m) = source(bytes, 8000, 64);
        let got = drain(&mut s);
        assert_eq!(got.len(), 300);
        assert_eq!(got[1], 100.0 / 32768.0);
        assert!(
            got[100..200].iter().all(|&v| v == 0.0),
            "the lost frame is silence"
        );
        assert_eq!(got[201], got[1]);
        let r = m.snapshot();
        assert_eq!(r.counter("device frames"), 2);
        assert_eq!(r.counter("device frames lost"), 1);
        assert_eq!(r.counter("device frames corrupt"), 0);
    }

    #[test]
    fn stereo_is_mixed_down_and_other_rates_resampled() {
        let st: Vec<i16> = (0..200)
            .map(|i| if i % 2 == 0 { 1000 } else { 3000 })
            .collect();
        let bytes = encode_all(&[hello(8000, 2), samples(0, &st)]);
        let (mut s, _) = source(bytes, 8000, 64);
        let got = drain(&mut s);
        assert_eq!(got.len(), 100);
        assert!(got.iter().all(|&v| (v - 2000.0 / 32768.0).abs() < 1e-6));

        // 16 kHz device, 8 kHz model: about half the samples come out
        let tone: Vec<i16> = (0..256)
            .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
            .collect();
        let mut msgs = vec![hello(16000, 1)];
        msgs.extend((0..40).map(|k| samples(k, &tone)));
        let (mut s, _) = source(encode_all(&msgs), 8000, 64);
        let got = drain(&mut s);
        let want = 40 * 256 / 2;
        assert!(got.len() > want - 400 && got.len() <= want, "{}", got.len());
    }

    #[test]
    fn corrupt_bytes_are_counted_and_the_stream_goes_on() {
        let a = [500i16; 64];
        let mut bytes = encode_all(&[hello(8000, 1), samples(0, &a)]);
        let bad_at = bytes.len() + 10;
        bytes.extend(encode_all(&[samples(1, &a), samples(2, &a)]));
        bytes[bad_at] ^= 0x5a;
        let (mut s, m) = source(bytes, 8000, 32);
        let got = drain(&mut s);
        assert_eq!(got.len(), 3 * 64, "the hit frame is filled with silence");
        assert!(got[64..128].iter().all(|&v| v == 0.0));
        let r = m.snapshot();
        assert_eq!(r.counter("device frames"), 2);
        assert_eq!(r.counter("device frames lost"), 1);
        assert_eq!(r.counter("device frames corrupt"), 1);
    }

    #[test]
    fn a_repeated_hello_restarts_the_numbering_without_a_gap() {
        let a = [700i16; 100];
        let bytes = encode_all(&[
            hello(8000, 1),
            samples(0, &a),
            hello(8000, 1),
            samples(0, &a),
        ]);
        let (mut s, m) = source(bytes, 8000, 64);
        assert_eq!(drain(&mut s).len(), 200);
        let r = m.snapshot();
        assert_eq!(r.counter("device frames"), 2);
        assert_eq!(r.counter("device frames lost"), 0);
    }

    #[test]
    fn samples_without_a_hello_are_taken_at_the_model_rate() {
        let bytes = encode_all(&[samples(0, &[1000; 50])]);
        let (mut s, _) = source(bytes, 8000, 16);
        assert_eq!(drain(&mut s).len(), 50);
    }

    #[test]
    fn results_go_back_to_the_device_as_frames() {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        // frames 40, 41 and 42 of 100 samples each at 1 kHz: stream samples 0-99,
        // 100-199 and 200-299
        let frames = Arc::new(Mutex::new(FrameEnds::default()));
        for (end, seq) in [(100, 40), (200, 41), (300, 42)] {
            frames.lock().unwrap().push(end, seq);
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let mut r = ResultSender::spawn(Box::new(Shared(buf.clone())), frames, 1000, dropped);
        // a window ending at 0.15 s: its last sample, 149, came in frame 41
        r.send(Verdict::Label(3), 0.75, 0.15);
        // one ending with the stream's last sample (0.3 s: sample 299), then one past it
        // (the silence after the stream): frame 42 both
        r.send(Verdict::Unknown, 0.2, 0.3);
        r.send(Verdict::Silence, 0.0, 0.4);
        drop(r); // the writer finishes the queue, then ends
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            let mut d = Decoder::new();
            got = buf
                .lock()
                .unwrap()
                .iter()
                .filter_map(|&b| d.push(b))
                .map(|f| f.unwrap().message)
                .collect();
        }
        assert_eq!(
            got,
            vec![
                Message::Result(Inference {
                    seq: 41,
                    label: 3,
                    confidence: 0.75
                }),
                Message::Result(Inference {
                    seq: 42,
                    label: LABEL_UNKNOWN,
                    confidence: 0.2
                }),
                Message::Result(Inference {
                    seq: 42,
                    label: LABEL_SILENCE,
                    confidence: 0.0
                }),
            ]
        );
    }

    /// A device that reads a result every 5 ms: `n` results sent at once, with or without
    /// waiting for room. Returns (results it got, results counted as dropped).
    fn slow_device(n: usize, wait: Option<Duration>) -> (usize, u64) {
        struct Slow(Arc<Mutex<usize>>);
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(5));
                *self.0.lock().unwrap() += 1;
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let writes = Arc::new(Mutex::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut r = ResultSender::spawn(
            Box::new(Slow(writes.clone())),
            Arc::default(),
            8000,
            dropped.clone(),
        );
        if let Some(w) = wait {
            r = r.waiting(w);
        }
        for _ in 0..n {
            r.send(Verdict::Label(1), 0.5, 1.0);
        }
        drop(r);
        let got = n - dropped.load(Ordering::Relaxed) as usize;
        let deadline = Instant::now() + Duration::from_secs(30);
        while *writes.lock().unwrap() < got && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let w = *writes.lock().unwrap();
        (w, dropped.load(Ordering::Relaxed))
    }

    #[test]
    fn live_results_are_dropped_for_a_slow_device_and_fast_ones_wait_for_it() {
        // in real time a burst larger than the queue loses what does not fit
        let (got, dropped) = slow_device(64, None);
        assert!(dropped > 0, "{got} {dropped}");
        assert_eq!(got as u64 + dropped, 64);
        // with --fast every result reaches the device
        assert_eq!(slow_device(64, Some(Duration::from_secs(10))), (64, 0));
        // a device that does not read within the wait loses results
        let (got, dropped) = slow_device(64, Some(Duration::from_micros(1)));
        assert!(dropped > 0 && got as u64 + dropped == 64, "{got} {dropped}");
    }

    #[test]
    fn a_missing_serial_port_is_named_in_the_error() {
        let e = Transport::open(
            &WireInput::Serial {
                port: "/dev/scarce-no-such-port".into(),
                baud: DEFAULT_BAUD,
            },
            &StopFlag::new(),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("/dev/scarce-no-such-port"), "{e}");
    }
}
