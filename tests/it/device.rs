//! Device input: the firmware-host simulator plays recordings to `scarce run` over a
//! pseudo-terminal (as a microcontroller on a USB serial port would), a TCP connection
//! and a pipe; the labels equal those of the same recordings replayed from the file,
//! and corrupted bytes lose only the frames they hit, as the metrics count.

use crate::common::*;
use crate::live::trained;
use firmware_host::sim::{play, SimOptions};
use firmware_host::{Message, SampleData, Samples, MAX_FRAME};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Output, Stdio};

/// A pseudo-terminal pair in raw mode: (master, slave, slave path). The slave end is
/// what a USB serial device looks like to the host.
fn pty() -> (std::fs::File, OwnedFd, String) {
    // both ends are opened close-on-exec from the start: a `scarce` started meanwhile by
    // another test would otherwise keep the master open, and the hang-up that ends the
    // stream would never come
    // SAFETY: posix_openpt opens a new descriptor; the flags are valid.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    assert!(
        master >= 0,
        "posix_openpt: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: master was just opened and is owned here.
    let master = unsafe { std::fs::File::from_raw_fd(master) };
    use std::os::fd::AsRawFd;
    // SAFETY: grantpt and unlockpt on the master we own.
    unsafe {
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0, "grantpt");
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0, "unlockpt");
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: the buffer is large enough for a pts path and NUL-terminated on success.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    assert_eq!(rc, 0, "ptsname_r");
    // SAFETY: ptsname_r wrote a NUL-terminated string.
    let cpath = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    let path = cpath.to_string_lossy().into_owned();
    // SAFETY: open with a NUL-terminated path and valid flags.
    let slave = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    assert!(
        slave >= 0,
        "open {path}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: slave was just opened and is owned here.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    // raw mode before any byte flows: no echo, no line editing, no CR/LF translation
    // SAFETY: termios is plain data filled by tcgetattr.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave_fd(&slave), &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(slave_fd(&slave), libc::TCSANOW, &t), 0);
    }
    (master, slave, path)
}

fn slave_fd(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// Ten recordings of the held-out speaker, one after the other, as 16-bit samples.
fn talk(data: &Path) -> Vec<i16> {
    let mut all = Vec::new();
    for digit in 0..10 {
        let clip =
            scarce::audio::read_wav(&data.join(format!("fsdd/recordings/{digit}_bob_0.wav")))
                .unwrap();
        all.extend(
            clip.samples
                .iter()
                .map(|&v| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
        );
    }
    all
}

const ARGS: [&str; 8] = [
    "--json",
    "--hop",
    "0.1",
    "--smooth",
    "1",
    "--threshold",
    "0",
    "--stats",
];

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The `counter value` rows of the final metrics table on stderr.
fn counter(o: &Output, name: &str) -> u64 {
    let err = stderr(o);
    err.lines()
        .rev()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?;
            rest.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no counter {name:?} in\n{err}"))
}

/// Streams through a pty with the simulator on the master side; `extra` is written
/// after the simulated stream (before the device hangs up).
/// The host answers every window; once `windows` results came back it has read the
/// whole stream, and the device hangs up.
fn over_pty(
    run_dir: &Path,
    samples: &[i16],
    opts: SimOptions,
    windows: u64,
    extra: impl FnOnce(u64) -> Vec<u8>,
) -> (Output, firmware_host::sim::SimReport) {
    let (mut master, slave, path) = pty();
    let child = scarce()
        .args([
            "run",
            run_dir.to_str().unwrap(),
            "--serial",
            &path,
            "--fast",
        ])
        .args(ARGS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // results come back on the master side: read them so the host never blocks, until
    // told to let go of the master (the device hanging up)
    let mut back = master.try_clone().unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let results = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (done2, results2) = (done.clone(), results.clone());
    let reader = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let mut d = firmware_host::Decoder::new();
        let mut buf = [0u8; 4096];
        while !done2.load(std::sync::atomic::Ordering::Relaxed) {
            let mut p = libc::pollfd {
                fd: back.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, 50) } <= 0 || p.revents & libc::POLLIN == 0 {
                continue;
            }
            let Ok(k) = std::io::Read::read(&mut back, &mut buf) else {
                break;
            };
            let n = buf[..k]
                .iter()
                .filter_map(|&b| d.push(b))
                .filter(|f| matches!(f, Ok(f) if matches!(f.message, Message::Result(_))))
                .count() as u64;
            results2.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let report = play(&mut master, samples, &opts).unwrap();
    master.write_all(&extra(report.frames)).unwrap();
    master.flush().unwrap();
    // the host reads everything before it sees the hang-up
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while results.load(std::sync::atomic::Ordering::Relaxed) < windows
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    drop(master);
    let o = child.wait_with_output().unwrap();
    drop(slave);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        results.load(std::sync::atomic::Ordering::Relaxed),
        windows,
        "every decision before the hang-up goes back to the device; stderr:\n{}",
        stderr(&o)
    );
    (o, report)
}

#[test]
fn a_device_on_a_serial_port_streams_the_labels_of_offline_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run_dir) = trained(tmp.path());
    let samples = talk(&data);
    let wav = tmp.path().join("talk.wav");
    let f: Vec<f32> = samples.iter().map(|&v| v as f32 / 32768.0).collect();
    scarce::audio::write_wav_i16(&wav, &f, 8000).unwrap();

    // offline: the same recording replayed from its file
    let o = run(&[
        &[
            "run",
            run_dir.to_str().unwrap(),
            "--input",
            wav.to_str().unwrap(),
            "--fast",
        ][..],
        &ARGS[..],
    ]
    .concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let offline = json_lines(&o);

    // live: a simulated device at real-time pace on a pseudo-terminal
    let opts = SimOptions {
        rate: 8000,
        ..SimOptions::default()
    };
    assert!(opts.realtime);
    // the windows the device's samples fill go back to it; when it hangs up, a window
    // and a hop of silence follow its last sample, as they follow the file in a
    // replay: the same windows, to the last
    let filled = (samples.len() - 8192) / 800 + 1;
    let (o, report) = over_pty(&run_dir, &samples, opts, filled as u64, |_| Vec::new());
    let live = json_lines(&o);
    assert!(offline.len() > filled);
    assert_eq!(live.len(), offline.len(), "{}", stderr(&o));
    for (a, b) in live.iter().zip(&offline) {
        assert_eq!(a["time_s"], b["time_s"]);
        assert_eq!(a["label"], b["label"], "{a} vs {b}");
        let (ca, cb) = (
            a["confidence"].as_f64().unwrap(),
            b["confidence"].as_f64().unwrap(),
        );
        assert!((ca - cb).abs() < 1e-4, "{a} vs {b}");
    }
    assert!(live.iter().any(|l| l["label"] != "silence"));
    assert_eq!(counter(&o, "device frames"), report.frames);
    assert_eq!(counter(&o, "device frames lost"), 0);
    assert_eq!(counter(&o, "device frames corrupt"), 0);
    assert!(
        stderr(&o).contains("device 1 on serial port"),
        "{}",
        stderr(&o)
    );

    // the same bytes through a pipe (--stdin) give the same decisions
    let mut bytes = Vec::new();
    play(
        &mut bytes,
        &samples,
        &SimOptions {
            rate: 8000,
            realtime: false,
            ..SimOptions::default()
        },
    )
    .unwrap();
    let mut child = scarce()
        .args(["run", run_dir.to_str().unwrap(), "--stdin", "--fast"])
        .args(ARGS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let piped = json_lines(&o);
    assert_eq!(piped.len(), live.len());
    for (a, b) in piped.iter().zip(&live) {
        assert_eq!((&a["time_s"], &a["label"]), (&b["time_s"], &b["label"]));
    }

    // and through TCP: the host listens, the device connects
    let mut args = vec![
        "run",
        run_dir.to_str().unwrap(),
        "--tcp",
        "127.0.0.1:0",
        "--fast",
    ];
    args.extend_from_slice(&ARGS);
    let (child, mut err, first) = listen(&args);
    let addr = first
        .trim()
        .strip_prefix("waiting for a device to connect to ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(&bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let rest = std::thread::spawn(move || {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut err, &mut t).unwrap();
        t
    });
    let o = child.wait_with_output().unwrap();
    let err = rest.join().unwrap();
    assert!(o.status.success(), "{err}");
    let tcp = json_lines(&o);
    assert_eq!(tcp.len(), live.len(), "{err}");
    assert!(tcp.iter().zip(&live).all(|(a, b)| a["label"] == b["label"]));

    // Ctrl-C while no device has connected yet: an interruption (130), not a failure
    let (child, mut err, first) =
        listen(&["run", run_dir.to_str().unwrap(), "--tcp", "127.0.0.1:0"]);
    assert!(first.starts_with("waiting for a device"), "{first}");
    // SAFETY: signals the child this test started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{rest}");
    assert!(rest.contains("ending the stream"), "{rest}");
    assert!(
        rest.contains("stopped while waiting for a device"),
        "{rest}"
    );

    // `scarce run RUN --stdin --fast` fed `bytes`
    let piped = |bytes: &[u8]| {
        let mut child = scarce()
            .args(["run", run_dir.to_str().unwrap(), "--stdin", "--fast"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        child.wait_with_output().unwrap()
    };
    // a WAV file piped where the wire protocol is read: said, not a quiet success
    assert_user_error(
        &piped(&std::fs::read(&wav).unwrap()),
        &["no samples of the wire protocol came in", "--input FILE"],
    );
    // nothing at all, or text without one frame: the same, not exit 0
    for input in [&b""[..], &b"hello world\n"[..]] {
        assert_user_error(
            &piped(input),
            &["no samples of the wire protocol came in (the input ended without one frame)"],
        );
    }
}

#[test]
fn corrupted_bytes_lose_only_the_frames_they_hit_and_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run_dir) = trained(tmp.path());
    let samples = talk(&data);
    let opts = SimOptions {
        rate: 8000,
        frame: 32,
        realtime: false,
        corrupt: 0.01,
        seed: 11,
        ..SimOptions::default()
    };
    // lost frames are silence of the same length: the stream keeps its length (and
    // the hang-up adds a window and a hop of silence: 8,192 + 800 samples)
    let total = samples.len() + 32;
    let windows = (total - 8192) / 800 + 1;
    let with_tail = (total + 8192 + 800 - 8192) / 800 + 1;
    // a clean last frame, so that a hit on the final frames shows as a sequence gap too
    let (o, report) = over_pty(&run_dir, &samples, opts, windows as u64, |frames| {
        let mut buf = [0u8; MAX_FRAME];
        let m = Message::Samples(Samples {
            seq: frames as u32,
            data: SampleData::I16(firmware_host::heapless::Vec::from_slice(&[0; 32]).unwrap()),
        });
        let n = firmware_host::encode(&m, &mut buf).unwrap();
        buf[..n].to_vec()
    });
    assert!(
        report.corrupted_bytes > 0 && report.frames_hit > 0,
        "{report:?}"
    );
    assert!(report.frames_hit < report.frames, "{report:?}");
    let received = counter(&o, "device frames");
    let lost = counter(&o, "device frames lost");
    assert_eq!(
        received,
        report.frames - report.frames_hit + 1,
        "{}",
        stderr(&o)
    );
    assert_eq!(lost, report.frames_hit, "{}", stderr(&o));
    assert!(counter(&o, "device frames corrupt") >= 1);
    assert_eq!(json_lines(&o).len(), with_tail);
    assert!(
        stderr(&o).contains(&format!("{lost} lost")),
        "{}",
        stderr(&o)
    );

    // errors name the port and the options
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--serial",
        "/dev/scarce-no-such-port",
    ]);
    assert_user_error(&o, &["/dev/scarce-no-such-port"]);
    let o = run(&[
        "run",
        run_dir.to_str().unwrap(),
        "--serial",
        "/dev/ttyACM0",
        "--input",
        "mic",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = run(&["run", run_dir.to_str().unwrap()]);
    assert_user_error(&o, &["--serial", "--tcp", "--stdin"]);
}

/// Starts `scarce ARGS` (a `--tcp` listener) and reads its first line on stderr; returns
/// the child, the rest of its stderr and that line.
fn listen(
    args: &[&str],
) -> (
    std::process::Child,
    BufReader<std::process::ChildStderr>,
    String,
) {
    let mut child = scarce()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    (child, err, first)
}
