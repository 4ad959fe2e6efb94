//! Deterministic corruption of a long stream from the simulator: every frame is either
//! received or counted as lost, and the frames lost are exactly those that were hit.

mod common;

use common::feed;
use firmware_host::sim::{play, SimOptions};
use firmware_host::{Decoder, Message};

/// Sine plus noise, as an ADC would deliver.
fn audio(n: usize) -> Vec<i16> {
    let mut x = 0x9E37_79B9u32;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let noise = (x % 401) as f32 - 200.0;
            (3000.0 * (i as f32 * 0.07).sin() + noise) as i16
        })
        .collect()
}

/// Byte ranges of the frames in a clean stream (each from its opening to its closing
/// zero): the Hello first, then the Samples frames.
fn frame_ranges(clean: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < clean.len() {
        assert_eq!(clean[start], 0);
        let end = start + 1 + clean[start + 1..].iter().position(|&b| b == 0).unwrap() + 1;
        ranges.push(start..end);
        start = end;
    }
    ranges
}

fn run(frames: usize, frame: usize, corrupt: f64, seed: u64) {
    let samples = audio(frames * frame);
    let opts = SimOptions {
        frame,
        realtime: false,
        corrupt,
        seed,
        ..SimOptions::default()
    };
    let mut clean = Vec::new();
    play(
        &mut clean,
        &samples,
        &SimOptions {
            corrupt: 0.0,
            ..opts.clone()
        },
    )
    .unwrap();
    let mut dirty = Vec::new();
    let report = play(&mut dirty, &samples, &opts).unwrap();
    assert_eq!(report.frames, frames as u64);
    assert_eq!(clean.len(), dirty.len());

    // Which Samples frames were hit, from the corrupted positions.
    let ranges = frame_ranges(&clean);
    assert_eq!(ranges.len(), frames + 1);
    let hit: Vec<bool> = ranges[1..]
        .iter()
        .map(|r| clean[r.clone()] != dirty[r.clone()])
        .collect();
    assert_eq!(
        clean[ranges[0].clone()],
        dirty[ranges[0].clone()],
        "Hello untouched"
    );
    let n_hit = hit.iter().filter(|&&h| h).count();
    assert_eq!(report.frames_hit, n_hit as u64);
    let changed = clean.iter().zip(&dirty).filter(|(a, b)| a != b).count();
    assert_eq!(report.corrupted_bytes, changed as u64);

    let mut d = Decoder::new();
    let results = feed(&mut d, &dirty);
    let mut received = Vec::new();
    for r in results.iter().filter_map(|r| r.as_ref().ok()) {
        match &r.message {
            Message::Hello(_) => assert!(received.is_empty()),
            Message::Samples(s) => received.push(s.seq as usize),
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<usize> = (0..frames).filter(|&i| !hit[i]).collect();
    assert_eq!(received, expected, "frames lost are exactly the frames hit");

    // Sequence numbers account for every frame up to the last received (numbering
    // starts at 0 after the hello); those after the last cannot be seen by any receiver.
    let stats = d.stats();
    let unseen = match received.last() {
        Some(&last) => frames - 1 - last,
        None => frames,
    };
    assert_eq!(stats.lost as usize + received.len() + unseen, frames);
    assert_eq!(stats.frames as usize, received.len() + 1);
    assert!(stats.corrupt > 0);
    assert_eq!(stats.bytes, dirty.len() as u64);
    eprintln!(
        "{frames} frames of {frame} samples, {corrupt} corruption: {n_hit} hit, {} received, \
         {} counted lost, {} corrupt segments",
        received.len(),
        stats.lost,
        stats.corrupt
    );
}

/// 1,000 small frames (16 samples, about 45 bytes) with 1% of bytes corrupted: about a
/// third of the frames are hit.
#[test]
fn one_percent_of_bytes_small_frames() {
    run(1000, 16, 0.01, 7);
}

/// 1,000 full frames (256 samples, about 650 bytes) at a lower byte error rate, so
/// that most frames still arrive.
#[test]
fn sparse_corruption_full_frames() {
    run(1000, 256, 0.0003, 11);
}

/// 1,000 full frames with 1% of bytes corrupted: nearly every frame is hit, yet the
/// few that arrive intact are exactly the untouched ones.
#[test]
fn one_percent_of_bytes_full_frames() {
    run(1000, 256, 0.01, 3);
}
