//! Incremental frame decoder: bytes in as they arrive, messages out.
//!
//! The decoder undoes COBS byte by byte into a fixed buffer, so it holds at most one
//! frame and never allocates. At each `0x00` it checks the finished segment (length,
//! CRC, version, postcard) and reports either a [`Frame`] or a [`FrameError`]. Errors
//! are per frame: the next delimiter starts afresh, so a corrupted byte costs exactly
//! the frame it hits.

use crate::{Message, CRC32, CRC_LEN, MAX_FRAME, VERSION};
use core::fmt;

/// Longest segment between two delimiters.
const MAX_SEGMENT: usize = MAX_FRAME - 2;

/// Shortest payload: version, a one-byte message, CRC.
const MIN_PAYLOAD: usize = 1 + 1 + CRC_LEN;

/// One decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// The message it carried.
    pub message: Message,
    /// `Samples` frames missing just before this one, judged from the sequence numbers;
    /// 0 for every other message and when nothing was lost.
    pub lost: u32,
}

/// Why a segment between two delimiters did not yield a message.
///
/// Each of these counts once in [`Stats::corrupt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The COBS encoding is broken: the segment ended inside a block.
    Cobs,
    /// The payload is too short to hold a version, a message and a CRC.
    TooShort,
    /// The segment is longer than any valid frame; it is dropped up to the next `0x00`.
    TooLong,
    /// The CRC does not match.
    Crc {
        /// CRC computed over the received version and message bytes.
        expected: u32,
        /// CRC carried by the frame.
        found: u32,
    },
    /// The CRC matches but the frame is of another protocol version (this crate
    /// speaks [`VERSION`]).
    Version(u8),
    /// The CRC and version match but postcard could not decode a message.
    Message,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Cobs => f.write_str("corrupt frame: bad COBS encoding"),
            FrameError::TooShort => f.write_str("corrupt frame: too short"),
            FrameError::TooLong => write!(f, "corrupt frame: longer than {MAX_FRAME} bytes"),
            FrameError::Crc { expected, found } => write!(
                f,
                "corrupt frame: CRC mismatch (computed {expected:#010x}, frame says {found:#010x})"
            ),
            FrameError::Version(v) => write!(
                f,
                "frame of protocol version {v}, this host speaks version {VERSION}"
            ),
            FrameError::Message => f.write_str("corrupt frame: undecodable message"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FrameError {}

/// Running counters of a [`Decoder`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes pushed, delimiters and garbage included.
    pub bytes: u64,
    /// Frames decoded successfully.
    pub frames: u64,
    /// Segments rejected (each [`FrameError`] returned).
    pub corrupt: u64,
    /// `Samples` frames missing according to the sequence numbers (sum of
    /// [`Frame::lost`]).
    pub lost: u64,
}

/// Incremental decoder: bytes in as they arrive, frames out.
///
/// It uses a fixed buffer of about [`MAX_FRAME`] bytes and never allocates or panics,
/// whatever the input.
///
/// ```
/// use firmware_host::{encode, Decoder, ErrorCode, ErrorReport, Message, MAX_FRAME};
///
/// let msg = Message::Error(ErrorReport { code: ErrorCode::Busy, detail: 3 });
/// let mut buf = [0u8; MAX_FRAME];
/// let n = encode(&msg, &mut buf).unwrap();
///
/// let mut decoder = Decoder::new();
/// let frames: Vec<_> = buf[..n].iter().filter_map(|&b| decoder.push(b)).collect();
/// assert_eq!(frames.len(), 1);
/// assert_eq!(frames[0].as_ref().unwrap().message, msg);
/// ```
#[derive(Clone, Debug)]
pub struct Decoder {
    /// Decoded (un-stuffed) bytes of the current segment.
    buf: [u8; MAX_SEGMENT],
    /// Valid bytes in `buf`.
    len: usize,
    /// Encoded bytes received in the current segment.
    seg_len: usize,
    /// Data bytes left in the current COBS block; 0 when the next byte is a code.
    block_left: u8,
    /// The current block ends with an implicit zero, written once another block follows.
    pending_zero: bool,
    /// The segment overflowed and was reported; drop bytes up to the next delimiter.
    discarding: bool,
    /// `seq` of the last `Samples` frame, if tracking.
    last_seq: Option<u32>,
    stats: Stats,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder waiting for its first frame.
    pub const fn new() -> Self {
        Decoder {
            buf: [0; MAX_SEGMENT],
            len: 0,
            seg_len: 0,
            block_left: 0,
            pending_zero: false,
            discarding: false,
            last_seq: None,
            stats: Stats {
                bytes: 0,
                frames: 0,
                corrupt: 0,
                lost: 0,
            },
        }
    }

    /// Feeds one byte. Returns `Some` when the byte completes a frame (a `0x00` after a
    /// non-empty segment) or makes the current one too long; `None` otherwise. Empty
    /// segments (two zeros in a row) are ignored.
    pub fn push(&mut self, byte: u8) -> Option<Result<Frame, FrameError>> {
        self.stats.bytes += 1;
        if byte == 0 {
            return self.end_segment();
        }
        if self.discarding {
            return None;
        }
        self.seg_len += 1;
        if self.seg_len > MAX_SEGMENT {
            self.discarding = true;
            return Some(self.reject(FrameError::TooLong));
        }
        if self.block_left == 0 {
            // A code byte: it closes the previous block and opens the next.
            if self.pending_zero && !self.store(0) {
                return Some(self.overflow());
            }
            self.pending_zero = byte != 0xFF;
            self.block_left = byte - 1;
        } else {
            if !self.store(byte) {
                return Some(self.overflow());
            }
            self.block_left -= 1;
        }
        None
    }

    /// Counters since the decoder was created.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Forgets the last `Samples` sequence number, so that the next one counts no loss
    /// (for instance after a reconnection). Receiving a [`crate::Hello`] restarts the
    /// count instead: the next frame is expected to be number 0.
    pub fn reset_sequence(&mut self) {
        self.last_seq = None;
    }

    /// Appends a decoded byte; false if the buffer is full (cannot happen, since every
    /// segment byte yields at most one decoded byte, but the decoder must not panic).
    fn store(&mut self, byte: u8) -> bool {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    fn overflow(&mut self) -> Result<Frame, FrameError> {
        self.discarding = true;
        self.reject(FrameError::TooLong)
    }

    fn reject(&mut self, error: FrameError) -> Result<Frame, FrameError> {
        self.stats.corrupt += 1;
        Err(error)
    }

    fn end_segment(&mut self) -> Option<Result<Frame, FrameError>> {
        let (len, seg_len, block_left, discarding) =
            (self.len, self.seg_len, self.block_left, self.discarding);
        self.len = 0;
        self.seg_len = 0;
        self.block_left = 0;
        self.pending_zero = false;
        self.discarding = false;
        if discarding || seg_len == 0 {
            return None;
        }
        if block_left != 0 {
            return Some(self.reject(FrameError::Cobs));
        }
        Some(self.finish(len))
    }

    fn finish(&mut self, len: usize) -> Result<Frame, FrameError> {
        if len < MIN_PAYLOAD {
            return self.reject(FrameError::TooShort);
        }
        let (body, crc) = self.buf[..len].split_at(len - CRC_LEN);
        let found = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let expected = CRC32.checksum(body);
        if expected != found {
            return self.reject(FrameError::Crc { expected, found });
        }
        if body[0] != VERSION {
            let version = body[0];
            return self.reject(FrameError::Version(version));
        }
        // Bytes after the message are ignored: fields appended by newer devices.
        let message: Message = match postcard::from_bytes(&body[1..]) {
            Ok(message) => message,
            Err(_) => return self.reject(FrameError::Message),
        };
        let lost = self.track(&message);
        self.stats.frames += 1;
        self.stats.lost += u64::from(lost);
        Ok(Frame { message, lost })
    }

    /// Updates sequence tracking and returns the number of frames lost before `message`.
    fn track(&mut self, message: &Message) -> u32 {
        match message {
            Message::Hello(_) => {
                // a device numbers its frames from 0 after each hello: frames lost
                // between the hello and the first one received count too
                self.last_seq = Some(u32::MAX);
                0
            }
            Message::Samples(samples) => {
                let lost = match self.last_seq {
                    Some(last) => {
                        let step = samples.seq.wrapping_sub(last);
                        if step > 1 && step < 1 << 31 {
                            step - 1
                        } else {
                            // In order (step 1), or a repeat or a jump backwards: the
                            // device restarted, so tracking restarts here.
                            0
                        }
                    }
                    None => 0,
                };
                self.last_seq = Some(samples.seq);
                lost
            }
            Message::Result(_) | Message::Error(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::{encode, ErrorCode, ErrorReport, Hello, SampleData, SampleFormat, Samples};
    use std::string::ToString;
    use std::vec::Vec;

    fn samples(seq: u32) -> Message {
        Message::Samples(Samples {
            seq,
            data: SampleData::I16(heapless::Vec::from_slice(&[1, 2, 3]).unwrap()),
        })
    }

    fn frame(msg: &Message) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME];
        let n = encode(msg, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn feed(d: &mut Decoder, bytes: &[u8]) -> Vec<Result<Frame, FrameError>> {
        bytes.iter().filter_map(|&b| d.push(b)).collect()
    }

    /// Re-frames a raw payload (version, message, CRC) without any checks.
    fn raw_frame(payload: &[u8]) -> Vec<u8> {
        let len = crate::cobs::encoded_len(payload);
        let mut buf = std::vec![0u8; len];
        buf[len - payload.len()..].copy_from_slice(payload);
        crate::cobs::encode_in_place(&mut buf, len - payload.len());
        let mut out = std::vec![0];
        out.extend_from_slice(&buf);
        out.push(0);
        out
    }

    fn with_crc(body: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.extend_from_slice(&CRC32.checksum(body).to_le_bytes());
        v
    }

    #[test]
    fn sequence_gaps() {
        let mut d = Decoder::new();
        let seqs = [5u32, 6, 9, 10, 3, 4, u32::MAX, 1, 1, 2];
        let lost: Vec<u32> = seqs
            .iter()
            .flat_map(|&s| feed(&mut d, &frame(&samples(s))))
            .map(|r| r.unwrap().lost)
            .collect();
        // 6->9 loses 2; 10->3 is a restart; 4->MAX is a jump of 2^32-5 (backwards);
        // MAX->1 wraps and loses 1; 1->1 repeats (restart).
        assert_eq!(lost, [0, 0, 2, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(d.stats().lost, 3);
        assert_eq!(d.stats().frames, 10);
    }

    #[test]
    fn largest_gap_counted_and_next_treated_as_restart() {
        let mut d = Decoder::new();
        feed(&mut d, &frame(&samples(0)));
        let r = feed(&mut d, &frame(&samples((1 << 31) - 1)));
        assert_eq!(r[0].as_ref().unwrap().lost, (1 << 31) - 2);
        let mut d = Decoder::new();
        feed(&mut d, &frame(&samples(0)));
        let r = feed(&mut d, &frame(&samples(1 << 31)));
        assert_eq!(r[0].as_ref().unwrap().lost, 0);
    }

    #[test]
    fn hello_and_reset_forget_the_sequence() {
        let hello = Message::Hello(Hello {
            device_id: 1,
            sample_rate: 16_000,
            format: SampleFormat::I16,
            channels: 1,
        });
        let mut d = Decoder::new();
        feed(&mut d, &frame(&samples(10)));
        feed(&mut d, &frame(&hello));
        let r = feed(&mut d, &frame(&samples(0)));
        assert_eq!(r[0].as_ref().unwrap().lost, 0);
        // after a hello, numbering starts at 0: frames 0-2 were lost
        feed(&mut d, &frame(&hello));
        let r = feed(&mut d, &frame(&samples(3)));
        assert_eq!(r[0].as_ref().unwrap().lost, 3);
        d.reset_sequence();
        let r = feed(&mut d, &frame(&samples(30)));
        assert_eq!(r[0].as_ref().unwrap().lost, 0);
        let r = feed(&mut d, &frame(&samples(32)));
        assert_eq!(r[0].as_ref().unwrap().lost, 1);
        // Other messages leave tracking alone.
        let err = Message::Error(ErrorReport {
            code: ErrorCode::Overrun,
            detail: 0,
        });
        feed(&mut d, &frame(&err));
        let r = feed(&mut d, &frame(&samples(34)));
        assert_eq!(r[0].as_ref().unwrap().lost, 1);
    }

    #[test]
    fn empty_segments_are_silent() {
        let mut d = Decoder::new();
        assert!(feed(&mut d, &[0, 0, 0, 0]).is_empty());
        assert_eq!(d.stats().corrupt, 0);
        assert_eq!(d.stats().bytes, 4);
    }

    #[test]
    fn each_error_kind() {
        let mut d = Decoder::new();
        // Segment ends inside a block.
        assert_eq!(feed(&mut d, &[0, 5, 1, 2, 0]), [Err(FrameError::Cobs)]);
        // Valid COBS, payload too short.
        assert_eq!(
            feed(&mut d, &raw_frame(&[1, 2, 3])),
            [Err(FrameError::TooShort)]
        );
        // Bad CRC.
        let mut p = with_crc(&[VERSION, 3, 0, 0]);
        p[4] ^= 1;
        let r = feed(&mut d, &raw_frame(&p));
        assert!(matches!(r[..], [Err(FrameError::Crc { .. })]));
        // Good CRC, wrong version.
        let r = feed(&mut d, &raw_frame(&with_crc(&[VERSION + 1, 3, 0, 0])));
        assert_eq!(r, [Err(FrameError::Version(VERSION + 1))]);
        // Good CRC and version, unknown variant.
        let r = feed(&mut d, &raw_frame(&with_crc(&[VERSION, 9, 0, 0])));
        assert_eq!(r, [Err(FrameError::Message)]);
        // Good CRC and version, truncated message.
        let r = feed(&mut d, &raw_frame(&with_crc(&[VERSION, 1, 0x80])));
        assert_eq!(r, [Err(FrameError::Message)]);
        // Too many samples for a heapless::Vec.
        let mut body = std::vec![VERSION, 1, 0, 0, 0x81, 0x02];
        body.resize(body.len() + 257, 0);
        let r = feed(&mut d, &raw_frame(&with_crc(&body)));
        assert_eq!(r, [Err(FrameError::Message)]);
        assert_eq!(d.stats().corrupt, 7);
        assert_eq!(d.stats().frames, 0);
        // Trailing bytes after a known message are accepted.
        let r = feed(
            &mut d,
            &raw_frame(&with_crc(&[VERSION, 3, 2, 7, 0xAA, 0xBB])),
        );
        assert_eq!(
            r[0].as_ref().unwrap().message,
            Message::Error(ErrorReport {
                code: ErrorCode::Busy,
                detail: 7
            })
        );
        for e in [
            FrameError::Cobs,
            FrameError::Version(9),
            FrameError::TooLong,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn too_long_counts_once_and_recovers() {
        let mut d = Decoder::new();
        let garbage = std::vec![0x42u8; 3 * MAX_FRAME];
        let r = feed(&mut d, &garbage);
        assert_eq!(r, [Err(FrameError::TooLong)]);
        let good = frame(&samples(1));
        // The first 0x00 of the frame ends the discarded segment silently.
        let r = feed(&mut d, &good);
        assert_eq!(r.len(), 1);
        assert!(r[0].is_ok());
        assert_eq!(d.stats().corrupt, 1);
    }

    #[test]
    fn new_is_const_and_default() {
        static D: Decoder = Decoder::new();
        assert_eq!(*D.stats(), Stats::default());
        assert_eq!(*Decoder::default().stats(), Stats::default());
    }
}
