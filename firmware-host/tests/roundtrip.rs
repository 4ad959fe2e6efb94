//! Every message type survives encode → byte-by-byte decode unchanged.

mod common;

use common::{feed, frame, messages, same, samples_i16};
use firmware_host::heapless;
use firmware_host::{
    encode, Decoder, EncodeError, ErrorCode, ErrorReport, Hello, Inference, Message, SampleData,
    SampleFormat, Samples, LABEL_SILENCE, LABEL_UNKNOWN, MAX_FRAME, MAX_SAMPLES,
};

fn one_of_each() -> Vec<Message> {
    vec![
        Message::Hello(Hello {
            device_id: 0xDEAD_BEEF,
            sample_rate: 16_000,
            format: SampleFormat::I16,
            channels: 1,
        }),
        Message::Hello(Hello {
            device_id: 0,
            sample_rate: 48_000,
            format: SampleFormat::F32,
            channels: 2,
        }),
        samples_i16(0, &[]),
        samples_i16(7, &[0, 1, -1, i16::MAX, i16::MIN, 0, 0, 0]),
        samples_i16(u32::MAX, &[i16::MIN; MAX_SAMPLES]),
        Message::Samples(Samples {
            seq: 12_345,
            data: SampleData::F32(
                heapless::Vec::from_slice(&[0.0, -0.0, 0.5, -1.0, f32::NAN, f32::INFINITY])
                    .unwrap(),
            ),
        }),
        Message::Result(Inference {
            seq: 99,
            label: 3,
            confidence: 0.87,
        }),
        Message::Result(Inference {
            seq: 100,
            label: LABEL_UNKNOWN,
            confidence: 0.0,
        }),
        Message::Result(Inference {
            seq: 101,
            label: LABEL_SILENCE,
            confidence: 1.0,
        }),
        Message::Error(ErrorReport {
            code: ErrorCode::Overrun,
            detail: 17,
        }),
        Message::Error(ErrorReport {
            code: ErrorCode::Unsupported,
            detail: 0,
        }),
        Message::Error(ErrorReport {
            code: ErrorCode::Busy,
            detail: u32::MAX,
        }),
        Message::Error(ErrorReport {
            code: ErrorCode::Internal,
            detail: 1,
        }),
    ]
}

#[test]
fn each_message_round_trips_alone() {
    for msg in one_of_each() {
        let bytes = frame(&msg);
        assert!(bytes.len() <= MAX_FRAME);
        assert_eq!(bytes[0], 0);
        assert_eq!(*bytes.last().unwrap(), 0);
        assert!(!bytes[1..bytes.len() - 1].contains(&0));
        let mut d = Decoder::new();
        let results = feed(&mut d, &bytes);
        assert_eq!(results.len(), 1, "{msg:?}");
        let got = results[0].as_ref().unwrap();
        assert!(
            same(&got.message, &msg),
            "{msg:?} came back as {:?}",
            got.message
        );
        assert_eq!(got.lost, 0);
        assert_eq!(d.stats().frames, 1);
        assert_eq!(d.stats().bytes, bytes.len() as u64);
        assert_eq!(d.stats().corrupt, 0);
    }
}

#[test]
fn back_to_back_stream_round_trips() {
    let msgs = one_of_each();
    let stream: Vec<u8> = msgs.iter().flat_map(frame).collect();
    let mut d = Decoder::new();
    let got = messages(&feed(&mut d, &stream));
    assert_eq!(got.len(), msgs.len());
    for (a, b) in got.iter().zip(&msgs) {
        assert!(same(a, b));
    }
    assert_eq!(d.stats().corrupt, 0);
}

#[test]
fn worst_case_message_fits_max_frame() {
    let extremes = [
        f32::NAN,
        f32::MAX,
        f32::MIN,
        f32::NEG_INFINITY,
        f32::from_bits(!0),
    ];
    let v: Vec<f32> = (0..MAX_SAMPLES).map(|i| extremes[i % 5]).collect();
    let msg = Message::Samples(Samples {
        seq: u32::MAX,
        data: SampleData::F32(heapless::Vec::from_slice(&v).unwrap()),
    });
    let mut buf = [0u8; MAX_FRAME];
    let n = encode(&msg, &mut buf).unwrap();
    assert!(n <= MAX_FRAME);
    let mut d = Decoder::new();
    let got = messages(&feed(&mut d, &buf[..n]));
    assert!(same(&got[0], &msg));
}

#[test]
fn encode_into_too_small_buffer_is_an_error() {
    let msg = samples_i16(1, &[1000; 100]);
    let need = frame(&msg).len();
    for len in [0, 1, 7, 8, need / 2, need - 1] {
        let mut buf = vec![0u8; len];
        assert_eq!(encode(&msg, &mut buf), Err(EncodeError::BufferTooSmall));
    }
}
