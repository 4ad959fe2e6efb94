//! Proof that `firmware-host` builds without the standard library.
//!
//! This crate is `#![no_std]` and defines its own `#[panic_handler]`. If
//! `firmware-host` or any of its dependencies linked `std` (which brings its own panic
//! handler), building this crate would fail with "found duplicate lang item
//! `panic_impl`". It is a workspace of its own, so that the main workspace's features
//! (the host enables `firmware-host/std`) cannot leak in. CI builds it on the host
//! target, which is enough to catch a std dependency:
//!
//! ```text
//! cargo build --release --manifest-path firmware-host/nostd-check/Cargo.toml
//! ```
//!
//! Cross-compiling it for a bare-metal target (for instance
//! `--target thumbv7em-none-eabihf`, after `rustup target add`) checks the same on a
//! real microcontroller target.
#![no_std]

use core::panic::PanicInfo;
use firmware_host::{encode, Decoder, ErrorCode, ErrorReport, Message, MAX_FRAME};

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {}
}

/// Encodes a message and decodes it again with the crate's public API, as firmware
/// would: a static-sized buffer, a `Decoder`, no allocation. Returns whether the
/// message came back intact.
pub fn round_trip(detail: u32) -> bool {
    let msg = Message::Error(ErrorReport {
        code: ErrorCode::Overrun,
        detail,
    });
    let mut buf = [0u8; MAX_FRAME];
    let Ok(n) = encode(&msg, &mut buf) else {
        return false;
    };
    let mut decoder = Decoder::new();
    let mut ok = false;
    for &b in &buf[..n] {
        if let Some(Ok(frame)) = decoder.push(b) {
            ok = frame.message == msg;
        }
    }
    ok && decoder.stats().frames == 1
}
