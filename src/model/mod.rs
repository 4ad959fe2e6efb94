//! Networks: feature generators and classifier heads, built on a burn [`Device`].
//!
//! burn 0.22 picks its backend at run time through the device, so models are plain
//! structs with no backend parameter. [`device`] turns the `--device` option into a
//! device; [`digits`] holds the digits network of the MCD reference code. Losses and
//! training steps live in [`crate::method`], not here.

pub mod device;
pub mod digits;

pub use burn::prelude::Device;
