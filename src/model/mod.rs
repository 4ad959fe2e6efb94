//! Networks: feature generators and classifier heads, built on a burn [`Device`].
//!
//! burn 0.22 picks its backend at run time through the device, so models are plain
//! structs with no backend parameter. [`device`] turns the `--device` option into a
//! device; [`digits`] holds the digits network of the MCD reference code, [`envnet`]
//! the raw-waveform EnvNet-v2 for sound. Losses and training steps live in
//! [`crate::method`], not here.

pub mod device;
pub mod digits;
pub mod envnet;

pub use burn::prelude::Device;

use burn::prelude::*;
use digits::{DigitsNet, DigitsNetConfig};
use envnet::{EnvNet, EnvNetConfig};

/// The network of a model stage.
#[derive(Clone, Debug, PartialEq)]
pub enum NetConfig {
    /// The digits network (images, 28 x 28).
    Digits(DigitsNetConfig),
    /// An EnvNet-v2 (raw waveforms).
    EnvNet(EnvNetConfig),
}

impl From<DigitsNetConfig> for NetConfig {
    fn from(c: DigitsNetConfig) -> Self {
        NetConfig::Digits(c)
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig::Digits(DigitsNetConfig::default())
    }
}

impl NetConfig {
    /// The digits settings (the defaults for another network: the adapting methods
    /// only build digits networks, which validation enforces).
    pub fn digits(&self) -> DigitsNetConfig {
        match self {
            NetConfig::Digits(d) => d.clone(),
            NetConfig::EnvNet(_) => DigitsNetConfig::default(),
        }
    }

    /// Output classes.
    pub fn num_classes(&self) -> usize {
        match self {
            NetConfig::Digits(d) => d.num_classes,
            NetConfig::EnvNet(e) => e.num_classes,
        }
    }

    /// A fresh network on `device`.
    pub fn init(&self, device: &Device) -> Net {
        match self {
            NetConfig::Digits(d) => Net::Digits(d.init(device)),
            NetConfig::EnvNet(e) => Net::EnvNet(e.init(device)),
        }
    }
}

/// A single-head classifier network.
// One network per method, moved only between optimizer steps: the size difference of
// the variants costs nothing worth a box (which burn's Module derive does not take).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Net {
    /// See [`DigitsNet`].
    Digits(DigitsNet),
    /// See [`EnvNet`].
    EnvNet(EnvNet),
}

impl Net {
    /// Logits `[batch, classes]` of inputs `[batch, 1, h, w]` (waveforms: `h = 1`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Net::Digits(n) => n.forward(x),
            Net::EnvNet(n) => n.forward(x),
        }
    }

    /// Features of the layer before the output, `[batch, features]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Net::Digits(n) => n.g.forward(x),
            Net::EnvNet(n) => n.features(x),
        }
    }
}

impl From<DigitsNet> for Net {
    fn from(n: DigitsNet) -> Self {
        Net::Digits(n)
    }
}

impl From<EnvNet> for Net {
    fn from(n: EnvNet) -> Self {
        Net::EnvNet(n)
    }
}
