//! Throughput of the frame decoder and encoder on realistic audio frames.
//!
//! The stream is 256-sample I16 `Samples` frames of a 440 Hz sine plus noise at
//! 16 kHz, about the traffic of one microphone. Run with
//! `cargo bench -p firmware-host --bench decode`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use firmware_host::{encode, Decoder, Message, SampleData, Samples, MAX_FRAME, MAX_SAMPLES};
use std::hint::black_box;

const FRAMES: usize = 256;

fn audio_frame(seq: u32, noise: &mut u32) -> Message {
    let mut v = firmware_host::heapless::Vec::new();
    for i in 0..MAX_SAMPLES {
        let t = (seq as usize * MAX_SAMPLES + i) as f32 / 16_000.0;
        *noise ^= *noise << 13;
        *noise ^= *noise >> 17;
        *noise ^= *noise << 5;
        let n = (*noise % 2001) as f32 - 1000.0;
        let s = 8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin() + n;
        v.push(s as i16).unwrap();
    }
    Message::Samples(Samples {
        seq,
        data: SampleData::I16(v),
    })
}

fn stream() -> (Vec<Message>, Vec<u8>) {
    let mut noise = 0x2545_F491;
    let msgs: Vec<Message> = (0..FRAMES as u32)
        .map(|s| audio_frame(s, &mut noise))
        .collect();
    let mut bytes = Vec::new();
    let mut buf = [0u8; MAX_FRAME];
    for m in &msgs {
        let n = encode(m, &mut buf).unwrap();
        bytes.extend_from_slice(&buf[..n]);
    }
    (msgs, bytes)
}

fn decode_all(bytes: &[u8]) -> u64 {
    let mut d = Decoder::new();
    for &b in bytes {
        if let Some(r) = d.push(b) {
            black_box(r.unwrap());
        }
    }
    d.stats().frames
}

fn bench(c: &mut Criterion) {
    let (msgs, bytes) = stream();
    assert_eq!(decode_all(&bytes), FRAMES as u64);

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("bytes", |b| b.iter(|| decode_all(black_box(&bytes))));
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("frames", |b| b.iter(|| decode_all(black_box(&bytes))));
    g.finish();

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(FRAMES as u64));
    let mut buf = [0u8; MAX_FRAME];
    g.bench_function("frames", |b| {
        b.iter(|| {
            let mut total = 0;
            for m in &msgs {
                total += encode(black_box(m), &mut buf).unwrap();
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
