//! Property tests of the framing: round trips, arbitrary input, truncation, bit flips
//! and resynchronisation.

mod common;

use common::{feed, frame, message, messages, reference_decode, same, samples_i16};
use firmware_host::{Decoder, FrameError, MAX_FRAME};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Splits a stream at its zeros: the non-empty segments, in order.
fn segments(stream: &[u8]) -> Vec<&[u8]> {
    stream
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .collect()
}

proptest! {
    #![proptest_config(config(512))]

    /// (a) Any message, encoded and decoded byte by byte, comes back identical.
    #[test]
    fn round_trip(msg in message()) {
        let bytes = frame(&msg);
        prop_assert!(bytes.len() <= MAX_FRAME);
        let mut d = Decoder::new();
        let results = feed(&mut d, &bytes);
        prop_assert_eq!(results.len(), 1);
        let got = results[0].as_ref().unwrap();
        prop_assert!(same(&got.message, &msg));
    }

    /// (a) Several messages back to back come back in order.
    #[test]
    fn round_trip_stream(msgs in proptest::collection::vec(message(), 1..8)) {
        let stream: Vec<u8> = msgs.iter().flat_map(frame).collect();
        let mut d = Decoder::new();
        let got = messages(&feed(&mut d, &stream));
        prop_assert_eq!(got.len(), msgs.len());
        for (a, b) in got.iter().zip(&msgs) {
            prop_assert!(same(a, b));
        }
    }

    /// (b) Arbitrary bytes, with valid frames mixed in, never panic; every segment is
    /// judged exactly as an independent reference decoder judges it (COBS, bit-wise
    /// CRC-32, version, postcard), so every frame yielded is one whose CRC matched.
    #[test]
    fn arbitrary_bytes_agree_with_reference(
        chunks in proptest::collection::vec(
            prop_oneof![
                3 => proptest::collection::vec(any::<u8>(), 0..200),
                1 => proptest::collection::vec(1u8..=255, 0..1500),
                2 => message().prop_map(|m| frame(&m)),
                // A valid frame with one byte replaced by another non-zero byte.
                2 => (message(), any::<prop::sample::Index>(), 1u8..=255).prop_map(
                    |(m, at, x)| {
                        let mut f = frame(&m);
                        let at = 1 + at.index(f.len() - 2);
                        f[at] = f[at].wrapping_add(x).max(1);
                        f
                    }
                ),
            ],
            0..12,
        )
    ) {
        let stream: Vec<u8> = chunks.concat();
        let mut d = Decoder::new();
        let results = feed(&mut d, &stream);
        // Segments closed by a zero yield one result each; an unfinished one only if
        // it is already too long.
        let closed = stream.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
        let mut segs = segments(&stream[..closed]);
        if stream.len() - closed > MAX_FRAME - 2 {
            segs.push(&stream[closed..]);
        }
        let expected: Vec<Option<_>> = segs
            .into_iter()
            .map(|seg| {
                if seg.len() > MAX_FRAME - 2 {
                    Err(())
                } else {
                    Ok(reference_decode(seg))
                }
            })
            .map(|r| r.ok().flatten())
            .collect();
        prop_assert_eq!(results.len(), expected.len());
        for (r, e) in results.iter().zip(&expected) {
            match (r, e) {
                (Ok(f), Some(m)) => prop_assert!(same(&f.message, m)),
                (Err(_), None) => {}
                _ => prop_assert!(false, "decoder {:?} vs reference {:?}", r, e),
            }
        }
        let stats = d.stats();
        prop_assert_eq!(stats.bytes, stream.len() as u64);
        prop_assert_eq!(stats.frames + stats.corrupt, results.len() as u64);
    }

    /// (b) Pure noise never panics and statistics stay consistent.
    #[test]
    fn noise_never_panics(noise in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let mut d = Decoder::new();
        let results = feed(&mut d, &noise);
        let stats = d.stats();
        prop_assert_eq!(stats.bytes, noise.len() as u64);
        prop_assert_eq!(stats.frames + stats.corrupt, results.len() as u64);
        for r in results.iter().filter_map(|r| r.as_ref().ok()) {
            // Whatever decoded must have passed the same checks as the reference.
            prop_assert!(segments(&noise).iter().any(|s| reference_decode(s)
                .is_some_and(|m| same(&m, &r.message))));
        }
    }

    /// (c) A frame cut short yields no message, and the frame after it decodes.
    #[test]
    fn truncated_frames(first in message(), next in message(), cut in any::<prop::sample::Index>()) {
        let a = frame(&first);
        let cut = 1 + cut.index(a.len() - 2);
        let mut stream = a[..cut].to_vec();
        let mut d = Decoder::new();
        let alone = feed(&mut d, &stream);
        prop_assert!(alone.is_empty(), "nothing can end before a zero arrives");
        stream = frame(&next);
        let results = feed(&mut d, &stream);
        // The truncated segment ends at the next frame's opening zero: an error (or
        // nothing, if only the opening zero was sent), then the next frame.
        let got = messages(&results);
        prop_assert_eq!(got.len(), 1);
        prop_assert!(same(&got[0], &next));
        prop_assert!(results.len() <= 2);
        if results.len() == 2 {
            prop_assert!(results[0].is_err());
        }
    }

    /// (d) Bit flips: every frame that comes out equals one that was sent, every frame
    /// whose bytes (delimiters included) were untouched comes out, and lost frames are
    /// counted from the sequence numbers.
    #[test]
    fn bit_flips(
        lens in proptest::collection::vec(0usize..64, 2..40),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..20),
    ) {
        let sent: Vec<_> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let data: Vec<i16> = (0..n).map(|k| (k as i16 - 20) * 37).collect();
                samples_i16(i as u32, &data)
            })
            .collect();
        let frames: Vec<Vec<u8>> = sent.iter().map(frame).collect();
        let mut stream: Vec<u8> = frames.concat();
        let mut owner = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            owner.extend(std::iter::repeat_n(i, f.len()));
        }
        let mut hit = vec![false; sent.len()];
        for (at, bit) in &flips {
            let at = at.index(stream.len());
            stream[at] ^= 1 << bit;
            hit[owner[at]] = true;
        }

        let mut d = Decoder::new();
        let results = feed(&mut d, &stream);
        let mut got_seqs = Vec::new();
        for f in results.iter().filter_map(|r| r.as_ref().ok()) {
            let idx = sent.iter().position(|m| same(m, &f.message));
            prop_assert!(idx.is_some(), "decoded a frame never sent: {:?}", f.message);
            got_seqs.push(idx.unwrap());
        }
        let untouched: Vec<usize> = (0..sent.len()).filter(|&i| !hit[i]).collect();
        for i in &untouched {
            prop_assert!(got_seqs.contains(i), "untouched frame {} not delivered", i);
        }
        prop_assert!(got_seqs.windows(2).all(|w| w[0] < w[1]));
        if let (Some(first), Some(last)) = (got_seqs.first(), got_seqs.last()) {
            let missing = (last - first + 1 - got_seqs.len()) as u64;
            prop_assert_eq!(d.stats().lost, missing);
        }
    }

    /// (e) After arbitrary garbage, with or without zeros and of any length, the first
    /// complete frame decodes.
    #[test]
    fn resynchronises_after_garbage(
        garbage in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..3000),
            proptest::collection::vec(1u8..=255, 0..3000),
        ],
        msg in message(),
    ) {
        let mut d = Decoder::new();
        feed(&mut d, &garbage);
        let results = feed(&mut d, &frame(&msg));
        let last = results.last().expect("the frame's closing zero yields a result");
        prop_assert!(same(&last.as_ref().unwrap().message, &msg));
        prop_assert!(results.len() <= 2);
        if results.len() == 2 {
            // The garbage's unfinished segment, ended by the frame's opening zero.
            // A too-long segment was already reported while the garbage arrived.
            prop_assert!(results[0] != Err(FrameError::TooLong));
        }
    }
}
