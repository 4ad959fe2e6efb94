//! Consistent Overhead Byte Stuffing (COBS), the part of it this crate needs.
//!
//! COBS rewrites a byte string so that it contains no `0x00`, which then serves as an
//! unambiguous frame delimiter. The encoding is a run of blocks: a code byte `c`
//! (1..=255) followed by `c - 1` data bytes. A block with `c < 255` stands for its data
//! followed by a zero, except at the very end of the frame; a block with `c == 255`
//! stands for its 254 data bytes alone.
//!
//! Encoding works in place ([`encode_in_place`]) so that [`crate::encode`] needs no
//! scratch buffer; decoding is done byte by byte inside [`crate::Decoder`], which is why
//! there is no decode routine here outside the tests.

/// Longest data run one block carries.
const MAX_RUN: usize = 254;

/// Upper bound on the encoded length of `n` bytes (without delimiters).
pub(crate) const fn max_encoded_len(n: usize) -> usize {
    n + 1 + n / MAX_RUN
}

/// Exact encoded length of `data` (without delimiters), as [`encode_in_place`] writes it.
pub(crate) fn encoded_len(data: &[u8]) -> usize {
    let mut run = 0;
    let mut full_runs = 0;
    for &b in data {
        if b == 0 {
            run = 0;
        } else {
            run += 1;
            if run == MAX_RUN {
                full_runs += 1;
                run = 0;
            }
        }
    }
    1 + data.len() + full_runs
}

/// Encodes `buf[start..]` into `buf[..]` and returns the encoded length.
///
/// `start` must be `encoded_len(&buf[start..]) - (buf.len() - start)`, i.e. the data
/// sits at the end of `buf` and `buf` is exactly as long as its encoding. Then the write
/// position never passes the read position: before data byte `i` is read, at most
/// `1 + i + (full runs so far)` bytes have been written, and the data byte sits at
/// `start + i = 1 + (all full runs) + i`.
pub(crate) fn encode_in_place(buf: &mut [u8], start: usize) -> usize {
    let mut code_at = 0;
    let mut write = 1;
    let mut code: u8 = 1;
    for read in start..buf.len() {
        let b = buf[read];
        if b == 0 {
            buf[code_at] = code;
            code_at = write;
            write += 1;
            code = 1;
        } else {
            buf[write] = b;
            write += 1;
            code += 1;
            if code == 0xFF {
                buf[code_at] = code;
                code_at = write;
                write += 1;
                code = 1;
            }
        }
    }
    buf[code_at] = code;
    write
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Plain out-of-place decoder, the reference for the tests.
    fn decode(enc: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < enc.len() {
            let code = enc[i] as usize;
            if code == 0 || i + code > enc.len() {
                return None;
            }
            out.extend_from_slice(&enc[i + 1..i + code]);
            i += code;
            if code != 0xFF && i < enc.len() {
                out.push(0);
            }
        }
        Some(out)
    }

    fn encode(data: &[u8]) -> Vec<u8> {
        let len = encoded_len(data);
        let start = len - data.len();
        let mut buf = vec![0xAA; len];
        buf[start..].copy_from_slice(data);
        assert_eq!(encode_in_place(&mut buf, start), len);
        buf
    }

    #[test]
    fn known_vectors() {
        assert_eq!(encode(&[]), [0x01]);
        assert_eq!(encode(&[0x00]), [0x01, 0x01]);
        assert_eq!(encode(&[0x00, 0x00]), [0x01, 0x01, 0x01]);
        assert_eq!(
            encode(&[0x11, 0x22, 0x00, 0x33]),
            [0x03, 0x11, 0x22, 0x02, 0x33]
        );
        assert_eq!(encode(&[0x11, 0x00]), [0x02, 0x11, 0x01]);
        let run: Vec<u8> = (1..=254).collect();
        let enc = encode(&run);
        assert_eq!(enc.len(), 256);
        assert_eq!(enc[0], 0xFF);
        assert_eq!(enc[255], 0x01);
        let run: Vec<u8> = (0..=254).collect();
        let enc = encode(&run);
        assert_eq!(&enc[..2], &[0x01, 0xFF]);
        assert_eq!(enc.len(), 257);
    }

    #[test]
    fn round_trips_and_bounds() {
        let mut state = 0x1234_5678_u32;
        for len in 0..1200 {
            for zeros in [0u32, 1, 16, 256] {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        if zeros != 0 && state.is_multiple_of(zeros) {
                            0
                        } else {
                            (state >> 8) as u8 | 1
                        }
                    })
                    .collect();
                let enc = encode(&data);
                assert!(!enc.contains(&0));
                assert!(enc.len() <= max_encoded_len(len));
                assert_eq!(decode(&enc).as_deref(), Some(&data[..]));
            }
        }
    }
}
