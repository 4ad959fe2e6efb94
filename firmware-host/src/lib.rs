//! The wire protocol between scarce and the microcontrollers that stream audio to it.
//!
//! A device sends a [`Hello`] describing its stream, then a continuous run of
//! [`Samples`] frames; the host answers with [`Inference`] results and either side may
//! report an [`ErrorReport`]. Every message travels in one self-delimiting frame:
//!
//! ```text
//! 0x00 | COBS( VERSION u8 | postcard(Message) | CRC-32 little-endian ) | 0x00
//! ```
//!
//! * [`encode`] writes one frame into a caller-supplied slice (no allocation, no
//!   scratch buffer: a [`MAX_FRAME`]-byte slice always suffices).
//! * [`Decoder`] takes bytes one at a time as they arrive from a UART, pseudo-terminal
//!   or socket and yields a [`Frame`] (or a [`FrameError`]) whenever a frame ends. It
//!   keeps running [`Stats`] and turns gaps in the `Samples` sequence numbers into a
//!   count of lost frames.
//!
//! The crate is `#![no_std]` and allocation-free so that firmware and host compile the
//! same code. The `std` feature adds `std::error::Error` implementations and the
//! `sim` module, a software device used by the `sim-device` example and by tests.
//!
//! The CRC is CRC-32/ISO-HDLC (the zlib/Ethernet CRC: polynomial `0x04C11DB7`,
//! reflected, initial value and final XOR `0xFFFFFFFF`), computed over the version byte
//! and the postcard bytes.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

mod cobs;
mod decoder;
mod frame;
mod message;
#[cfg(feature = "std")]
pub mod sim;

pub use decoder::{Decoder, Frame, FrameError, Stats};
pub use frame::{encode, EncodeError};
pub use message::{
    ErrorCode, ErrorReport, Hello, Inference, Message, SampleData, SampleFormat, Samples,
    LABEL_SILENCE, LABEL_UNKNOWN,
};

/// The `heapless` crate whose `Vec` carries [`SampleData`], re-exported so that users
/// build sample vectors with the exact version this crate serialises.
pub use heapless;

/// Protocol version: the first byte of every frame's payload.
///
/// It changes on any incompatible change to the messages; decoders reject frames of
/// any other version ([`FrameError::Version`]).
pub const VERSION: u8 = 1;

/// Most samples one [`Samples`] message carries (all channels, interleaved).
pub const MAX_SAMPLES: usize = 256;

/// Bytes of the CRC-32 that ends every payload.
pub const CRC_LEN: usize = 4;

/// Longest postcard encoding of a [`Message`] (the worst case: a `Samples` of
/// [`MAX_SAMPLES`] `f32` values with the largest sequence number).
pub const MAX_MESSAGE: usize = message::MAX_MESSAGE;

/// Longest payload before COBS: version byte, [`MAX_MESSAGE`] and the CRC.
pub const MAX_PAYLOAD: usize = 1 + MAX_MESSAGE + CRC_LEN;

/// Longest encoded frame, both `0x00` delimiters included: the size of a buffer that
/// [`encode`] never finds too small.
pub const MAX_FRAME: usize = 2 + cobs::max_encoded_len(MAX_PAYLOAD);

/// The CRC used by every frame: CRC-32/ISO-HDLC.
pub(crate) static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_have_the_documented_values() {
        assert_eq!(MAX_MESSAGE, 1033);
        assert_eq!(MAX_PAYLOAD, 1038);
        assert_eq!(MAX_FRAME, 1045);
    }

    #[test]
    fn crc_is_iso_hdlc() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(CRC32.checksum(b"123456789"), 0xCBF4_3926);
    }
}
