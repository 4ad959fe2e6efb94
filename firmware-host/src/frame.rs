//! Encoding a [`Message`] into one delimited frame.

use crate::{cobs, Message, CRC32, CRC_LEN, VERSION};
use core::fmt;

/// Why [`encode`] could not produce a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// `out` cannot hold the frame. A buffer of [`crate::MAX_FRAME`] bytes always can.
    BufferTooSmall,
    /// postcard refused the message (not expected with this crate's types).
    Serialize,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall => f.write_str("output buffer too small for the frame"),
            EncodeError::Serialize => f.write_str("message could not be serialised"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// Encodes one frame into `out`: `0x00`, COBS(`VERSION`, postcard(`msg`), CRC-32
/// little-endian over `VERSION` and the postcard bytes), `0x00`. Returns the length.
///
/// The frame is built inside `out` itself: no other buffer is used, and a slice of
/// [`crate::MAX_FRAME`] bytes always suffices. A smaller slice gives
/// [`EncodeError::BufferTooSmall`] when the frame does not fit (the content of `out` is
/// then unspecified).
pub fn encode(msg: &Message, out: &mut [u8]) -> Result<usize, EncodeError> {
    // Room for the opening delimiter, the version, the CRC and the closing delimiter.
    const FIXED: usize = 1 + 1 + CRC_LEN + 1;
    if out.len() <= FIXED {
        return Err(EncodeError::BufferTooSmall);
    }
    // Build the payload at out[1..1 + n].
    out[1] = VERSION;
    let limit = out.len() - CRC_LEN - 1;
    let body = match postcard::to_slice(msg, &mut out[2..limit]) {
        Ok(bytes) => bytes.len(),
        Err(postcard::Error::SerializeBufferFull) => return Err(EncodeError::BufferTooSmall),
        Err(_) => return Err(EncodeError::Serialize),
    };
    let crc_at = 2 + body;
    let crc = CRC32.checksum(&out[1..crc_at]);
    out[crc_at..crc_at + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    let n = 1 + body + CRC_LEN;

    // Move the payload to the end of the encoded area and encode it forwards in place.
    let encoded = cobs::encoded_len(&out[1..1 + n]);
    let total = encoded + 2;
    if total > out.len() {
        return Err(EncodeError::BufferTooSmall);
    }
    let shift = encoded - n;
    out.copy_within(1..1 + n, 1 + shift);
    let written = cobs::encode_in_place(&mut out[1..1 + encoded], shift);
    debug_assert_eq!(written, encoded);
    out[0] = 0;
    out[total - 1] = 0;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorCode, ErrorReport, SampleData, Samples, MAX_FRAME, MAX_SAMPLES};

    fn worst_case() -> Message {
        let mut v = heapless::Vec::new();
        let extremes = [
            f32::NAN,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            -0.0,
            f32::MIN_POSITIVE,
        ];
        for i in 0..MAX_SAMPLES {
            v.push(extremes[i % extremes.len()]).unwrap();
        }
        Message::Samples(Samples {
            seq: u32::MAX,
            data: SampleData::F32(v),
        })
    }

    #[test]
    fn worst_case_fits_max_frame() {
        let mut out = [0u8; MAX_FRAME];
        let n = encode(&worst_case(), &mut out).unwrap();
        assert!(n <= MAX_FRAME);
        assert_eq!(out[0], 0);
        assert_eq!(out[n - 1], 0);
        assert!(!out[1..n - 1].contains(&0));
    }

    #[test]
    fn zero_free_worst_case_reaches_max_frame() {
        // All-0xFF NaNs: no zero anywhere in the message, so COBS adds a code byte
        // every 254 bytes. The CRC decides the last few bytes, so try seeds until the
        // whole payload is zero-free.
        let mut found = false;
        for seq in (0..u32::MAX).rev().take(4096) {
            let mut v = heapless::Vec::new();
            while v.push(f32::from_bits(0xFFFF_FFFF)).is_ok() {}
            let msg = Message::Samples(Samples {
                seq: seq | 0x1000_0000,
                data: SampleData::F32(v),
            });
            let mut out = [0u8; MAX_FRAME];
            let n = encode(&msg, &mut out).unwrap();
            if n == MAX_FRAME {
                found = true;
                break;
            }
        }
        assert!(found, "MAX_FRAME is not tight");
    }

    #[test]
    fn too_small_is_an_error_at_every_length() {
        let msg = worst_case();
        let mut big = [0u8; MAX_FRAME];
        let need = encode(&msg, &mut big).unwrap();
        let mut out = [0u8; MAX_FRAME];
        for len in 0..need {
            assert_eq!(
                encode(&msg, &mut out[..len]),
                Err(EncodeError::BufferTooSmall)
            );
        }
        assert_eq!(encode(&msg, &mut out[..need]), Ok(need));
        assert_eq!(&out[..need], &big[..need]);

        let small = Message::Error(ErrorReport {
            code: ErrorCode::Busy,
            detail: 7,
        });
        let need = encode(&small, &mut big).unwrap();
        for len in 0..need {
            assert_eq!(
                encode(&small, &mut out[..len]),
                Err(EncodeError::BufferTooSmall)
            );
        }
        assert_eq!(encode(&small, &mut out[..need]), Ok(need));
    }

    #[test]
    fn display() {
        extern crate std;
        use std::string::ToString;
        assert!(EncodeError::BufferTooSmall
            .to_string()
            .contains("too small"));
    }
}
