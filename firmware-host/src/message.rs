//! The messages exchanged between a device and the host, and their worst-case sizes.
//!
//! All types serialise with serde's derive in postcard's format: integers wider than a
//! byte as LEB128 varints (signed ones zigzagged first), `u8` as one byte, `f32` as four
//! little-endian bytes, enum variants as a varint index, sequences as a varint length
//! followed by the elements.
//!
//! Compatibility rule: fields are only ever appended to the end of a message, and
//! variants only appended to the end of an enum. Decoders ignore bytes after the
//! message they know, so a field appended at the end reaches older hosts harmlessly;
//! anything else that changes the encoding bumps [`crate::VERSION`].

use crate::MAX_SAMPLES;
use serde::{Deserialize, Serialize};

/// Label of an [`Inference`] when the model recognised none of its classes.
pub const LABEL_UNKNOWN: u16 = 0xFFFF;

/// Label of an [`Inference`] when the window held only silence.
pub const LABEL_SILENCE: u16 = 0xFFFE;

/// How a device represents its samples.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    /// Signed 16-bit integers, full scale ±32768.
    I16,
    /// 32-bit floats, full scale ±1.0.
    F32,
}

/// First message of a device after it starts (or reconnects): what its stream is.
///
/// Receiving a `Hello` makes the [`crate::Decoder`] forget the last sequence number,
/// since the device's counter starts again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Device identity, chosen by the firmware (a serial number, a board id).
    pub device_id: u32,
    /// Sampling rate in Hz.
    pub sample_rate: u32,
    /// Format of the [`Samples`] frames that follow.
    pub format: SampleFormat,
    /// Interleaved channels per sample instant.
    pub channels: u8,
}

/// The samples of one [`Samples`] frame, channels interleaved.
// Inline storage is the point (no heap on a microcontroller), so variants differ in size.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum SampleData {
    /// Signed 16-bit samples.
    I16(heapless::Vec<i16, MAX_SAMPLES>),
    /// 32-bit float samples.
    F32(heapless::Vec<f32, MAX_SAMPLES>),
}

impl SampleData {
    /// Number of samples (all channels together).
    pub fn len(&self) -> usize {
        match self {
            SampleData::I16(v) => v.len(),
            SampleData::F32(v) => v.len(),
        }
    }

    /// Whether the frame carries no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The format of these samples.
    pub fn format(&self) -> SampleFormat {
        match self {
            SampleData::I16(_) => SampleFormat::I16,
            SampleData::F32(_) => SampleFormat::F32,
        }
    }
}

/// One block of samples from the device.
///
/// Devices send blocks of constant length (the last one before a stop may be shorter),
/// so that the host can replace each lost frame by the right number of zeros.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Samples {
    /// Frame counter: +1 for every `Samples` frame, wrapping at `u32::MAX`. It starts
    /// at 0 after a [`Hello`], though the host does not rely on that.
    pub seq: u32,
    /// The samples.
    pub data: SampleData,
}

/// A classification result, from the host to the device.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Inference {
    /// `seq` of the last [`Samples`] frame in the window that was classified.
    pub seq: u32,
    /// Class index, or [`LABEL_UNKNOWN`] / [`LABEL_SILENCE`].
    pub label: u16,
    /// Confidence in `0.0..=1.0`.
    pub confidence: f32,
}

/// What went wrong, in an [`ErrorReport`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Data was dropped because a buffer overflowed.
    Overrun,
    /// The peer asked for something this side does not support.
    Unsupported,
    /// This side cannot keep up right now.
    Busy,
    /// Any other failure; `detail` says more.
    Internal,
}

/// An error report, in either direction.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorReport {
    /// Kind of error.
    pub code: ErrorCode,
    /// Sender-specific detail (a count, an address, an error number).
    pub detail: u32,
}

/// Everything that travels in a frame. Variants are only ever appended.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Message {
    /// Device → host, variant 0: stream description.
    Hello(Hello),
    /// Device → host, variant 1: a block of samples.
    Samples(Samples),
    /// Host → device, variant 2: a classification result.
    Result(Inference),
    /// Either direction, variant 3: an error report.
    Error(ErrorReport),
}

/// Bytes of the LEB128 varint encoding `v`.
const fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Largest enum variant index in any message type (`Message` has four variants).
const TAG: usize = varint_len(3);
const U32: usize = varint_len(u32::MAX as u64);
const U16: usize = varint_len(u16::MAX as u64);
/// An `i16` is zigzagged, so its largest varint is that of 65535.
const I16: usize = varint_len(u16::MAX as u64);
const F32: usize = 4;

const HELLO: usize = U32 + U32 + TAG + 1;
const SAMPLES: usize = U32 + TAG + varint_len(MAX_SAMPLES as u64) + MAX_SAMPLES * max(I16, F32);
const INFERENCE: usize = U32 + U16 + F32;
const ERROR_REPORT: usize = TAG + U32;

/// Longest postcard encoding of a [`Message`].
pub(crate) const MAX_MESSAGE: usize = TAG + max(max(HELLO, SAMPLES), max(INFERENCE, ERROR_REPORT));

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded_len(msg: &Message) -> usize {
        let mut buf = [0u8; MAX_MESSAGE + 16];
        postcard::to_slice(msg, &mut buf).unwrap().len()
    }

    #[test]
    fn worst_cases_reach_the_bounds() {
        let hello = Message::Hello(Hello {
            device_id: u32::MAX,
            sample_rate: u32::MAX,
            format: SampleFormat::F32,
            channels: u8::MAX,
        });
        assert_eq!(encoded_len(&hello), TAG + HELLO);

        let mut f = heapless::Vec::new();
        while f.push(f32::NAN).is_ok() {}
        let samples = Message::Samples(Samples {
            seq: u32::MAX,
            data: SampleData::F32(f),
        });
        assert_eq!(encoded_len(&samples), MAX_MESSAGE);

        let mut i = heapless::Vec::new();
        while i.push(i16::MIN).is_ok() {}
        let samples = Message::Samples(Samples {
            seq: u32::MAX,
            data: SampleData::I16(i),
        });
        assert_eq!(
            encoded_len(&samples),
            TAG + U32 + TAG + 2 + MAX_SAMPLES * I16
        );

        let result = Message::Result(Inference {
            seq: u32::MAX,
            label: LABEL_UNKNOWN,
            confidence: f32::MAX,
        });
        assert_eq!(encoded_len(&result), TAG + INFERENCE);

        let error = Message::Error(ErrorReport {
            code: ErrorCode::Internal,
            detail: u32::MAX,
        });
        assert_eq!(encoded_len(&error), TAG + ERROR_REPORT);
    }

    #[test]
    fn variant_indices_are_stable() {
        let mut buf = [0u8; 32];
        let tag = |m: &Message, buf: &mut [u8]| postcard::to_slice(m, buf).unwrap()[0];
        let hello = Message::Hello(Hello {
            device_id: 0,
            sample_rate: 0,
            format: SampleFormat::I16,
            channels: 1,
        });
        let samples = Message::Samples(Samples {
            seq: 0,
            data: SampleData::I16(heapless::Vec::new()),
        });
        let result = Message::Result(Inference {
            seq: 0,
            label: 0,
            confidence: 0.0,
        });
        let error = Message::Error(ErrorReport {
            code: ErrorCode::Overrun,
            detail: 0,
        });
        assert_eq!(tag(&hello, &mut buf), 0);
        assert_eq!(tag(&samples, &mut buf), 1);
        assert_eq!(tag(&result, &mut buf), 2);
        assert_eq!(tag(&error, &mut buf), 3);
    }

    #[test]
    fn wire_encoding_of_a_small_samples_frame() {
        let mut v = heapless::Vec::new();
        v.extend_from_slice(&[1, -1, 300]).unwrap();
        let msg = Message::Samples(Samples {
            seq: 128,
            data: SampleData::I16(v),
        });
        let mut buf = [0u8; 32];
        let bytes = postcard::to_slice(&msg, &mut buf).unwrap();
        // tag 1, seq 128 = 0x80 0x01, I16 tag 0, len 3, zigzag(1)=2, zigzag(-1)=1,
        // zigzag(300)=600 = 0xD8 0x04.
        assert_eq!(bytes, &[1, 0x80, 0x01, 0, 3, 2, 1, 0xD8, 0x04]);
    }

    #[test]
    fn sample_data_helpers() {
        let d = SampleData::F32(heapless::Vec::from_slice(&[0.5, -0.5]).unwrap());
        assert_eq!(d.len(), 2);
        assert!(!d.is_empty());
        assert_eq!(d.format(), SampleFormat::F32);
        assert!(SampleData::I16(heapless::Vec::new()).is_empty());
    }
}
