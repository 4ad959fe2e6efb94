//! A software device (feature `std`): plays samples as protocol frames into any writer.
//!
//! [`play`] behaves like firmware that has just booted: a [`Hello`], then the samples in
//! [`Samples`] frames numbered from 0, paced at the sampling rate if asked. It can also
//! corrupt bytes at random, to exercise the host's loss handling. The `sim-device`
//! example wraps it with a WAV reader and a pseudo-terminal, TCP or stdout output.

use crate::{encode, Hello, Message, SampleData, SampleFormat, Samples, MAX_FRAME, MAX_SAMPLES};
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// How [`play`] behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    /// `device_id` of the [`Hello`].
    pub device_id: u32,
    /// Sampling rate in Hz: announced in the [`Hello`] and used for pacing.
    pub rate: u32,
    /// Samples per [`Samples`] frame, 1 to [`MAX_SAMPLES`].
    pub frame: usize,
    /// Pace the frames at the sampling rate, as a real device would.
    pub realtime: bool,
    /// Probability that each byte of a `Samples` frame (delimiters included) is
    /// replaced by a random different byte.
    pub corrupt: f64,
    /// Seed of the corruption's random numbers.
    pub seed: u64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            device_id: 1,
            rate: 16_000,
            frame: MAX_SAMPLES,
            realtime: true,
            corrupt: 0.0,
            seed: 1,
        }
    }
}

/// What [`play`] sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// `Samples` frames sent.
    pub frames: u64,
    /// `Samples` frames with at least one corrupted byte.
    pub frames_hit: u64,
    /// Bytes written, the `Hello` included.
    pub bytes: u64,
    /// Bytes replaced by corruption.
    pub corrupted_bytes: u64,
}

/// Sends a [`Hello`] (format I16, 1 channel) then `samples` as [`Samples`] frames (seq
/// from 0) to `w`, flushing each frame.
///
/// With `realtime`, a frame is written no earlier than the moment its last sample would
/// have been captured: start + (samples up to and including this frame) / rate, i.e.
/// start + (n+1)·frame/rate for frame `n`. Corruption never touches the `Hello`. The
/// last frame may be shorter. Invalid options (`frame` of 0 or above [`MAX_SAMPLES`],
/// `rate` of 0 with `realtime`, `corrupt` outside 0..=1) give
/// [`io::ErrorKind::InvalidInput`].
pub fn play<W: Write>(w: &mut W, samples: &[i16], opts: &SimOptions) -> io::Result<SimReport> {
    let invalid = |msg: &'static str| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    if opts.frame == 0 || opts.frame > MAX_SAMPLES {
        return invalid("sim: frame must be between 1 and MAX_SAMPLES samples");
    }
    if opts.realtime && opts.rate == 0 {
        return invalid("sim: realtime playback needs a sample rate above 0");
    }
    if !(0.0..=1.0).contains(&opts.corrupt) {
        return invalid("sim: corrupt must be a probability between 0 and 1");
    }

    let mut report = SimReport::default();
    let mut buf = [0u8; MAX_FRAME];
    let mut rng = SplitMix64(opts.seed);

    let hello = Message::Hello(Hello {
        device_id: opts.device_id,
        sample_rate: opts.rate,
        format: SampleFormat::I16,
        channels: 1,
    });
    let n = encode(&hello, &mut buf).map_err(io::Error::other)?;
    w.write_all(&buf[..n])?;
    w.flush()?;
    report.bytes += n as u64;

    let start = Instant::now();
    let mut sent_samples = 0u64;
    for (i, chunk) in samples.chunks(opts.frame).enumerate() {
        let data = heapless::Vec::from_slice(chunk)
            .map_err(|_| io::Error::other("sim: frame larger than MAX_SAMPLES"))?;
        let msg = Message::Samples(Samples {
            seq: i as u32,
            data: SampleData::I16(data),
        });
        let n = encode(&msg, &mut buf).map_err(io::Error::other)?;
        let frame = &mut buf[..n];

        if opts.corrupt > 0.0 {
            let mut hit = false;
            for byte in frame.iter_mut() {
                if rng.next_f64() < opts.corrupt {
                    // One of the 255 other values, uniformly.
                    *byte = byte.wrapping_add(1 + (rng.next_u64() % 255) as u8);
                    report.corrupted_bytes += 1;
                    hit = true;
                }
            }
            report.frames_hit += u64::from(hit);
        }

        sent_samples += chunk.len() as u64;
        if opts.realtime {
            let due = start + Duration::from_secs_f64(sent_samples as f64 / f64::from(opts.rate));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        w.write_all(frame)?;
        w.flush()?;
        report.frames += 1;
        report.bytes += n as u64;
    }
    Ok(report)
}

/// The splitmix64 generator: tiny, fast and good enough to place corruption.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decoder;
    use std::vec::Vec;

    fn fast() -> SimOptions {
        SimOptions {
            realtime: false,
            ..SimOptions::default()
        }
    }

    #[test]
    fn plays_hello_then_numbered_frames() {
        let samples: Vec<i16> = (0..1000).map(|i| i as i16).collect();
        let mut out = Vec::new();
        let report = play(&mut out, &samples, &fast()).unwrap();
        assert_eq!(report.frames, 4);
        assert_eq!(report.bytes, out.len() as u64);
        let mut d = Decoder::new();
        let msgs: Vec<Message> = out
            .iter()
            .filter_map(|&b| d.push(b))
            .map(|r| r.unwrap().message)
            .collect();
        assert!(
            matches!(&msgs[0], Message::Hello(h) if h.sample_rate == 16_000 && h.channels == 1)
        );
        let mut got = Vec::new();
        for (i, m) in msgs[1..].iter().enumerate() {
            let Message::Samples(s) = m else {
                panic!("not samples")
            };
            assert_eq!(s.seq, i as u32);
            let SampleData::I16(v) = &s.data else {
                panic!("not i16")
            };
            got.extend_from_slice(v);
        }
        assert_eq!(got, samples);
        assert_eq!(msgs.len(), 5);
    }

    #[test]
    fn realtime_paces_frames() {
        let opts = SimOptions {
            rate: 8000,
            frame: 200,
            ..SimOptions::default()
        };
        let t = Instant::now();
        play(&mut Vec::new(), &[0; 800], &opts).unwrap();
        // 800 samples at 8 kHz: the last frame is due at 100 ms.
        assert!(t.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn rejects_bad_options() {
        for opts in [
            SimOptions { frame: 0, ..fast() },
            SimOptions {
                frame: MAX_SAMPLES + 1,
                ..fast()
            },
            SimOptions {
                corrupt: 1.5,
                ..fast()
            },
            SimOptions {
                corrupt: f64::NAN,
                ..fast()
            },
            SimOptions {
                rate: 0,
                ..SimOptions::default()
            },
        ] {
            let err = play(&mut Vec::new(), &[1, 2, 3], &opts).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn corruption_replaces_bytes_and_spares_the_hello() {
        let samples = [7i16; 2560];
        let mut clean = Vec::new();
        play(&mut clean, &samples, &fast()).unwrap();
        let mut dirty = Vec::new();
        let opts = SimOptions {
            corrupt: 0.05,
            seed: 9,
            ..fast()
        };
        let report = play(&mut dirty, &samples, &opts).unwrap();
        assert_eq!(clean.len(), dirty.len());
        let diff = clean.iter().zip(&dirty).filter(|(a, b)| a != b).count();
        assert_eq!(diff as u64, report.corrupted_bytes);
        assert!(report.frames_hit > 0);
        let hello_len = clean[1..].iter().position(|&b| b == 0).unwrap() + 2;
        assert_eq!(clean[..hello_len], dirty[..hello_len]);
        // Same seed, same corruption.
        let mut again = Vec::new();
        assert_eq!(play(&mut again, &samples, &opts).unwrap(), report);
        assert_eq!(again, dirty);
    }

    #[test]
    fn uniform_floats_stay_in_range() {
        let mut rng = SplitMix64(3);
        let mean = (0..10_000).map(|_| rng.next_f64()).sum::<f64>() / 10_000.0;
        assert!((0.45..0.55).contains(&mean));
    }
}
