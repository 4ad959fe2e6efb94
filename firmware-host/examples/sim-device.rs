//! A simulated microcontroller: plays a WAV file as protocol frames, like a board with a
//! microphone would, and prints the results the host sends back.
//!
//! ```text
//! cargo run -p firmware-host --features std --example sim-device -- \
//!     speech.wav (--pty | --tcp HOST:PORT | --stdout) [--fast] [--frame 256] \
//!     [--corrupt 0.01] [--seed N] [--device-id N]
//! ```
//!
//! See `--help` for the outputs. The WAV file may be 8/16/24/32-bit integer or 32-bit
//! float, any channel count (mixed down to mono) and any rate (sent as is: the host
//! resamples).

use firmware_host::sim::{play, SimOptions, SimReport};
use firmware_host::{Decoder, Message, MAX_SAMPLES};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const HELP: &str = "\
sim-device: a simulated microcontroller streaming a WAV file to scarce.

USAGE:
    sim-device FILE.wav (--pty | --tcp HOST:PORT | --stdout) [OPTIONS]

OUTPUT (exactly one):
    --pty             Open a pseudo-terminal and stream into it, like a USB serial
                      device. Its path (e.g. /dev/pts/5) is printed as the first line
                      of stdout; streaming starts 1 s later.
    --tcp HOST:PORT   Connect to a host listening on HOST:PORT and stream over TCP.
    --stdout          Write raw frames to stdout, e.g.
                      sim-device x.wav --stdout | scarce run RUN --stdin

OPTIONS:
    --fast            Send as fast as possible instead of at the file's sample rate.
    --frame N         Samples per frame, 1 to 256 (default 256).
    --corrupt P       Replace each byte of a Samples frame by a random other byte
                      with probability P (default 0), to exercise loss handling.
    --seed N          Seed of the corruption (default 1).
    --device-id N     Device id announced in the Hello (default 1).
    -h, --help        Print this help.

Results the host sends back (over the pseudo-terminal or TCP) are printed to stderr as
`result seq=.. label=.. confidence=..`; a one-line summary follows the stream.";

enum Output {
    Pty,
    Tcp(String),
    Stdout,
}

struct Args {
    file: String,
    output: Output,
    opts: SimOptions,
}

fn set_output(o: Output, output: &mut Option<Output>) -> Result<(), String> {
    if output.replace(o).is_some() {
        Err("choose only one of --pty, --tcp and --stdout".to_string())
    } else {
        Ok(())
    }
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut file = None;
    let mut output = None;
    let mut opts = SimOptions::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--pty" => set_output(Output::Pty, &mut output)?,
            "--stdout" => set_output(Output::Stdout, &mut output)?,
            "--tcp" => {
                let addr = value("--tcp")?;
                set_output(Output::Tcp(addr), &mut output)?;
            }
            "--fast" => opts.realtime = false,
            "--frame" => {
                let v = value("--frame")?;
                opts.frame = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_SAMPLES).contains(n))
                    .ok_or_else(|| format!("--frame {v}: expected 1 to {MAX_SAMPLES}"))?;
            }
            "--corrupt" => {
                let v = value("--corrupt")?;
                opts.corrupt = v
                    .parse()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| format!("--corrupt {v}: expected a probability 0 to 1"))?;
            }
            "--seed" => {
                let v = value("--seed")?;
                opts.seed = v
                    .parse()
                    .map_err(|_| format!("--seed {v}: expected an integer"))?;
            }
            "--device-id" => {
                let v = value("--device-id")?;
                opts.device_id = v
                    .parse()
                    .map_err(|_| format!("--device-id {v}: expected an integer up to 2^32-1"))?;
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown option {s} (see --help)"))
            }
            _ if file.is_none() => file = Some(arg),
            _ => return Err(format!("unexpected argument {arg} (one WAV file only)")),
        }
    }
    let file = file.ok_or("missing the WAV file (see --help)")?;
    let output = output.ok_or("choose an output: --pty, --tcp HOST:PORT or --stdout")?;
    Ok(Some(Args { file, output, opts }))
}

/// Reads a WAV file as mono i16 at its own rate.
fn read_wav(path: &str) -> Result<(Vec<i16>, u32), String> {
    let err = |e: hound::Error| format!("{path}: cannot read as WAV: {e}");
    let reader = hound::WavReader::open(path).map_err(err)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let bits = u32::from(spec.bits_per_sample);
    // Each sample on a common scale: i16 full scale, as f64 for the mixdown.
    let scaled: Vec<f64> = match spec.sample_format {
        hound::SampleFormat::Int => {
            if !(8..=32).contains(&bits) {
                return Err(format!("{path}: unsupported {bits}-bit integer samples"));
            }
            let scale = 2f64.powi(16 - bits as i32);
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| f64::from(v) * scale))
                .collect::<Result<_, _>>()
                .map_err(err)?
        }
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .map(|s| s.map(|v| f64::from(v) * 32768.0))
            .collect::<Result<_, _>>()
            .map_err(err)?,
    };
    let mono = scaled
        .chunks(channels)
        .map(|c| {
            let mean = c.iter().sum::<f64>() / c.len() as f64;
            mean.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
        })
        .collect();
    Ok((mono, spec.sample_rate))
}

/// Prints the results coming back from the host, until the connection closes.
fn print_results(mut from_host: impl Read) {
    let mut decoder = Decoder::new();
    let mut buf = [0u8; 512];
    loop {
        let n = match from_host.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            match decoder.push(b) {
                Some(Ok(frame)) => match frame.message {
                    Message::Result(r) => eprintln!(
                        "result seq={} label={} confidence={:.3}",
                        r.seq, r.label, r.confidence
                    ),
                    Message::Error(e) => {
                        eprintln!("host reports {:?} (detail {})", e.code, e.detail)
                    }
                    other => eprintln!("unexpected message from host: {other:?}"),
                },
                Some(Err(e)) => eprintln!("from host: {e}"),
                None => {}
            }
        }
    }
}

/// A pseudo-terminal in raw mode: the master side, and the slave's path.
#[cfg(unix)]
fn open_pty() -> io::Result<(std::fs::File, std::fs::File, String)> {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors into the provided ints; the name, termios
    // and window size pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by nothing else.
    let (master_file, slave_file) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    // SAFETY: termios is plain data, filled by tcgetattr before use; `slave` is open.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(slave, &mut t) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(slave, libc::TCSANOW, &t) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let mut name = [0 as libc::c_char; 256];
    // SAFETY: the buffer is writable for its whole length, which is passed.
    let rc = unsafe { libc::ttyname_r(slave, name.as_mut_ptr(), name.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: ttyname_r succeeded, so the buffer holds a NUL-terminated string.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Ok((master_file, slave_file, path))
}

#[cfg(not(unix))]
fn open_pty() -> io::Result<(std::fs::File, std::fs::File, String)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "--pty needs a Unix system; use --tcp or --stdout",
    ))
}

fn run(args: Args) -> Result<(), String> {
    let (samples, rate) = read_wav(&args.file)?;
    let opts = SimOptions { rate, ..args.opts };
    let started = Instant::now();
    let stream = |what: &str, e: io::Error| format!("{what}: {e}");
    // Keep the pty's slave side open for the whole run, so that the master never sees
    // a hang-up while the host opens and closes it.
    let mut _slave = None;
    let report: io::Result<SimReport> = match &args.output {
        Output::Stdout => play(&mut io::stdout().lock(), &samples, &opts),
        Output::Tcp(addr) => {
            let mut socket =
                TcpStream::connect(addr).map_err(|e| stream(&format!("connect {addr}"), e))?;
            socket.set_nodelay(true).map_err(|e| stream("TCP", e))?;
            let back = socket.try_clone().map_err(|e| stream("TCP", e))?;
            std::thread::spawn(move || print_results(back));
            play(&mut socket, &samples, &opts)
        }
        Output::Pty => {
            let (mut master, slave, path) = open_pty().map_err(|e| stream("pty", e))?;
            _slave = Some(slave);
            println!("{path}");
            io::stdout().flush().map_err(|e| stream("stdout", e))?;
            let back = master.try_clone().map_err(|e| stream("pty", e))?;
            std::thread::spawn(move || print_results(back));
            std::thread::sleep(Duration::from_secs(1));
            play(&mut master, &samples, &opts)
        }
    };
    let report = match report {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            eprintln!("sim-device: the host closed the connection");
            return Ok(());
        }
        Err(e) => return Err(stream("sending", e)),
    };
    eprintln!(
        "sim-device: {} frames ({} hit by corruption, {} bytes corrupted), {} bytes, {:.1} s",
        report.frames,
        report.frames_hit,
        report.corrupted_bytes,
        report.bytes,
        started.elapsed().as_secs_f64()
    );
    if !matches!(args.output, Output::Stdout) {
        // Give the host a moment to answer the last window.
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(None) => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        Ok(Some(args)) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sim-device: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("sim-device: {e}");
            ExitCode::FAILURE
        }
    }
}
