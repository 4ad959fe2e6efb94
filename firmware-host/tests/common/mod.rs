//! Helpers shared by the integration tests: framing shortcuts, a reference decoder
//! written independently of the crate's, and proptest strategies for messages.

#![allow(dead_code)]

use firmware_host::heapless;
use firmware_host::{
    encode, Decoder, ErrorCode, ErrorReport, Frame, FrameError, Hello, Inference, Message,
    SampleData, SampleFormat, Samples, MAX_FRAME, MAX_SAMPLES, VERSION,
};
use proptest::prelude::*;

/// The encoded frame of `msg`, delimiters included.
pub fn frame(msg: &Message) -> Vec<u8> {
    let mut buf = [0u8; MAX_FRAME];
    let n = encode(msg, &mut buf).expect("MAX_FRAME always suffices");
    buf[..n].to_vec()
}

/// Pushes `bytes` one by one and collects every result.
pub fn feed(d: &mut Decoder, bytes: &[u8]) -> Vec<Result<Frame, FrameError>> {
    bytes.iter().filter_map(|&b| d.push(b)).collect()
}

/// The messages of the frames that decoded.
pub fn messages(results: &[Result<Frame, FrameError>]) -> Vec<Message> {
    results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|f| f.message.clone())
        .collect()
}

/// Equality that treats floats by their bits (NaN equals itself): the encodings match.
pub fn same(a: &Message, b: &Message) -> bool {
    frame(a) == frame(b)
}

/// A `Samples` message of I16 data.
pub fn samples_i16(seq: u32, data: &[i16]) -> Message {
    Message::Samples(Samples {
        seq,
        data: SampleData::I16(heapless::Vec::from_slice(data).unwrap()),
    })
}

/// CRC-32/ISO-HDLC, bit by bit: the reference for the crate's table-driven CRC.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Reference COBS decoding of one segment (no zeros inside); `None` if malformed.
pub fn cobs_decode(seg: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < seg.len() {
        let code = seg[i] as usize;
        if code == 0 || i + code > seg.len() {
            return None;
        }
        out.extend_from_slice(&seg[i + 1..i + code]);
        i += code;
        if code != 0xFF && i < seg.len() {
            out.push(0);
        }
    }
    Some(out)
}

/// What a correct decoder must make of one non-empty segment of at most
/// `MAX_FRAME - 2` bytes: the message if COBS, CRC and version all check out and
/// postcard decodes it, `None` otherwise.
pub fn reference_decode(seg: &[u8]) -> Option<Message> {
    let payload = cobs_decode(seg)?;
    if payload.len() < 6 {
        return None;
    }
    let (body, crc) = payload.split_at(payload.len() - 4);
    if crc32(body) != u32::from_le_bytes(crc.try_into().unwrap()) || body[0] != VERSION {
        return None;
    }
    postcard::from_bytes(&body[1..]).ok()
}

fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>(),
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(f32::MAX),
        Just(-0.0),
        -1.0f32..1.0,
    ]
}

fn format() -> impl Strategy<Value = SampleFormat> {
    prop_oneof![Just(SampleFormat::I16), Just(SampleFormat::F32)]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::Overrun),
        Just(ErrorCode::Unsupported),
        Just(ErrorCode::Busy),
        Just(ErrorCode::Internal),
    ]
}

/// Sample data of any format and length up to `MAX_SAMPLES`.
pub fn sample_data() -> impl Strategy<Value = SampleData> {
    prop_oneof![
        proptest::collection::vec(any::<i16>(), 0..=MAX_SAMPLES)
            .prop_map(|v| SampleData::I16(heapless::Vec::from_slice(&v).unwrap())),
        proptest::collection::vec(any_f32(), 0..=MAX_SAMPLES)
            .prop_map(|v| SampleData::F32(heapless::Vec::from_slice(&v).unwrap())),
    ]
}

/// Any message.
pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), any::<u32>(), format(), any::<u8>()).prop_map(
            |(device_id, sample_rate, format, channels)| Message::Hello(Hello {
                device_id,
                sample_rate,
                format,
                channels,
            })
        ),
        (any::<u32>(), sample_data())
            .prop_map(|(seq, data)| Message::Samples(Samples { seq, data })),
        (any::<u32>(), any::<u16>(), any_f32()).prop_map(|(seq, label, confidence)| {
            Message::Result(Inference {
                seq,
                label,
                confidence,
            })
        }),
        (error_code(), any::<u32>())
            .prop_map(|(code, detail)| Message::Error(ErrorReport { code, detail })),
    ]
}
