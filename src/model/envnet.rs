//! EnvNet-v2 (Tokozume, Ushiku and Harada, ICLR 2018): a raw-waveform network. Two 1-D
//! convolutions learn a filter bank, max pooling turns their outputs into a
//! time-frequency map, and 2-D convolutions classify it.
//!
//! Two variants (`network = { kind = "envnet2" }` and `kind = "envnet2_small"`):
//!
//! | layer | `envnet2` (published; 44.1 kHz, 66,650 samples) | `envnet2_small` (16 kHz, 16,384 samples, ~1 s) |
//! |---|---|---|
//! | conv1 (1-D) | 32 x 64, stride 2 | 16 x 64, stride 2 |
//! | conv2 (1-D) | 64 x 16, stride 2 | 32 x 16, stride 2 |
//! | pool2 | 64 (then channels become rows) | rate / 500 (32 at 16 kHz, 16 at 8 kHz) |
//! | conv3, conv4 | 32 x (8, 8) each | 16 x (8, 8) each |
//! | pool4 | (5, 3) | (3, 3) |
//! | conv5, conv6 | 64 x (1, 4) each | 32 x (1, 4) each |
//! | pool6 | (1, 2) | (1, 2) |
//! | conv7, conv8 | 128 x (1, 2) each | 64 x (1, 2) each |
//! | pool8 | (1, 2) | (1, 2) |
//! | conv9, conv10 | 256 x (1, 2) each, pool (1, 2) | - |
//! | fully connected | 4096, 4096 (ReLU, dropout 0.5 each) | 256 (ReLU, dropout 0.5) |
//! | output | classes | classes |
//!
//! Every convolution is followed by batch normalisation and ReLU. The small variant takes
//! any input length of at least about 0.46 s (its flattened width follows the length);
//! at 8 kHz with 8,192 samples it is the network of the FSDD experiments (638k
//! parameters for ten classes).
//!
//! `network = { kind = "envnet2_small", width = 2 }` multiplies every channel count and
//! the hidden fully connected width by 2 (6.5 M parameters at 8 kHz, most of them in the
//! fully connected layer).

use super::digits::conv;
use crate::kernels;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::ops::MaxPoolOptions;
use serde::{Deserialize, Serialize};

/// Input length of the published EnvNet-v2 (about 1.5 s at 44.1 kHz).
pub const ENVNET2_INPUT: usize = 66_650;

/// Which EnvNet-v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvNetVariant {
    /// As published, for 66,650 samples at 44.1 kHz.
    V2,
    /// Half the channels and one fully connected layer of 256, for short clips.
    Small,
}

/// Hyper-parameters of an EnvNet-v2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvNetConfig {
    /// Which variant.
    pub variant: EnvNetVariant,
    /// Input length in samples.
    pub input: usize,
    /// Sample rate of the input, Hz.
    pub rate: u32,
    /// Output classes.
    pub num_classes: usize,
    /// Dropout probability after each hidden fully connected layer.
    pub dropout: f64,
    /// Multiplier of the channels of every convolution and of the hidden fully
    /// connected widths (1 = the table above).
    #[serde(default = "one")]
    pub width: usize,
}

fn one() -> usize {
    1
}

/// The layer plan of a variant.
struct Plan {
    front: [(usize, usize); 2], // (channels, kernel), stride 2
    pool2: usize,
    back: Vec<(usize, [usize; 2])>, // pairs share a pool
    pools: Vec<[usize; 2]>,         // one per pair of back convolutions
    hidden: Vec<usize>,
}

impl EnvNetConfig {
    fn plan(&self) -> Plan {
        let mut p = self.base_plan();
        let k = self.width.max(1);
        if k > 1 {
            for (c, _) in p.front.iter_mut() {
                *c *= k;
            }
            for (c, _) in p.back.iter_mut() {
                *c *= k;
            }
            for h in p.hidden.iter_mut() {
                *h *= k;
            }
        }
        p
    }

    fn base_plan(&self) -> Plan {
        match self.variant {
            EnvNetVariant::V2 => Plan {
                front: [(32, 64), (64, 16)],
                pool2: 64,
                back: vec![
                    (32, [8, 8]),
                    (32, [8, 8]),
                    (64, [1, 4]),
                    (64, [1, 4]),
                    (128, [1, 2]),
                    (128, [1, 2]),
                    (256, [1, 2]),
                    (256, [1, 2]),
                ],
                pools: vec![[5, 3], [1, 2], [1, 2], [1, 2]],
                hidden: vec![4096, 4096],
            },
            EnvNetVariant::Small => Plan {
                front: [(16, 64), (32, 16)],
                pool2: ((self.rate as f64 / 500.0).round() as usize).max(1),
                back: vec![
                    (16, [8, 8]),
                    (16, [8, 8]),
                    (32, [1, 4]),
                    (32, [1, 4]),
                    (64, [1, 2]),
                    (64, [1, 2]),
                ],
                pools: vec![[3, 3], [1, 2], [1, 2]],
                hidden: vec![256],
            },
        }
    }

    /// The shape `(channels, height, width)` before flattening, or why the input is too
    /// short.
    pub fn feature_shape(&self) -> Result<(usize, usize, usize), String> {
        let p = self.plan();
        let too_short = || {
            format!(
                "an input of {} samples is too short for `{}`",
                self.input,
                match self.variant {
                    EnvNetVariant::V2 => "envnet2",
                    EnvNetVariant::Small => "envnet2_small",
                }
            )
        };
        let mut len = self.input;
        for (_, k) in p.front {
            len = len.checked_sub(k).ok_or_else(too_short)? / 2 + 1;
        }
        let (mut h, mut w) = (p.front[1].0, len / p.pool2);
        let mut c = 1;
        for (i, (ch, k)) in p.back.iter().enumerate() {
            h = (h + 1).checked_sub(k[0]).ok_or_else(too_short)?;
            w = (w + 1).checked_sub(k[1]).ok_or_else(too_short)?;
            c = *ch;
            if i % 2 == 1 {
                let pool = p.pools[i / 2];
                (h, w) = (h / pool[0], w / pool[1]);
            }
            if h == 0 || w == 0 {
                return Err(too_short());
            }
        }
        Ok((c, h, w))
    }

    /// Builds the network with fresh weights on `device`.
    ///
    /// # Panics
    /// If the input is too short ([`Self::feature_shape`]); pipelines are validated first.
    pub fn init(&self, device: &Device) -> EnvNet {
        let p = self.plan();
        let (c, h, w) = self.feature_shape().expect("validated input length");
        let block = |cin: usize, cout: usize, k: [usize; 2], stride: [usize; 2]| ConvBn {
            conv: Conv2dConfig::new([cin, cout], k)
                .with_stride(stride)
                .init(device),
            bn: BatchNormConfig::new(cout).init(device),
        };
        let front = vec![
            block(1, p.front[0].0, [1, p.front[0].1], [1, 2]),
            block(p.front[0].0, p.front[1].0, [1, p.front[1].1], [1, 2]),
        ];
        let mut back = Vec::new();
        let mut cin = 1;
        for (ch, k) in &p.back {
            back.push(block(cin, *ch, *k, [1, 1]));
            cin = *ch;
        }
        let mut fc = Vec::new();
        let mut width = c * h * w;
        for hidden in &p.hidden {
            fc.push(LinearConfig::new(width, *hidden).init(device));
            width = *hidden;
        }
        EnvNet {
            front,
            back,
            fc,
            out: LinearConfig::new(width, self.num_classes).init(device),
            drop: DropoutConfig::new(self.dropout).init(),
            pool2: p.pool2,
            pools: p.pools,
        }
    }
}

/// Convolution, batch normalisation, ReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        kernels::batch_norm(&self.bn, conv(&self.conv, x), true)
    }
}

/// An EnvNet-v2 (see the module documentation for the layers).
#[derive(Module, Debug)]
pub struct EnvNet {
    front: Vec<ConvBn>,
    back: Vec<ConvBn>,
    fc: Vec<Linear>,
    out: Linear,
    drop: Dropout,
    pool2: usize,
    pools: Vec<[usize; 2]>,
}

fn pool(x: Tensor<4>, k: [usize; 2]) -> Tensor<4> {
    if k == [1, 1] {
        return x;
    }
    burn::tensor::module::max_pool2d(x, MaxPoolOptions::new(k))
}

impl EnvNet {
    /// Features before the first fully connected layer, flattened: `[batch, 1, 1, len]`
    /// waveforms -> `[batch, c * h * w]`.
    fn conv_features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x; // [b, 1, 1, T]
        for b in &self.front {
            x = b.forward(x); // [b, C, 1, L]
        }
        let x = pool(x, [1, self.pool2]); // [b, C, 1, L / pool2]
        let mut x = x.swap_dims(1, 2); // [b, 1, C, L']: channels become rows
        for (i, b) in self.back.iter().enumerate() {
            x = b.forward(x);
            if i % 2 == 1 {
                x = pool(x, self.pools[i / 2]);
            }
        }
        x.flatten(1, 3)
    }

    /// The last hidden layer's activations `[batch, hidden]` (for embeddings).
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut h = self.conv_features(x);
        for fc in &self.fc {
            h = kernels::dropout(&self.drop, burn::tensor::activation::relu(fc.forward(h)));
        }
        h
    }

    /// Logits `[batch, classes]` of waveforms `[batch, 1, 1, len]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.out.forward(self.features(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_envnet2_has_the_published_shapes() {
        let cfg = EnvNetConfig {
            variant: EnvNetVariant::V2,
            input: ENVNET2_INPUT,
            rate: 44_100,
            num_classes: 50,
            dropout: 0.5,
            width: 1,
        };
        // 256 channels x 10 x 8 before fc11 (20,480 inputs), as in the paper's table
        assert_eq!(cfg.feature_shape().unwrap(), (256, 10, 8));
        let short = EnvNetConfig {
            input: 20_000,
            ..cfg.clone()
        };
        assert!(short.feature_shape().is_err());
        // the whole network runs on one input (about 1.5 G multiply-adds)
        let device = Device::flex();
        let net = cfg.init(&device);
        let x = Tensor::<4>::random(
            [1, 1, 1, ENVNET2_INPUT],
            burn::tensor::Distribution::Normal(0.0, 0.1),
            &device,
        );
        let y = net.valid().forward(x);
        assert_eq!(y.dims(), [1, 50]);
        let v: Vec<f32> = y.into_data().try_to_vec().unwrap();
        assert!(v.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn small_variant_runs_forward_at_8_and_16_khz() {
        let device = Device::flex();
        for (rate, input) in [(8_000, 8_192), (16_000, 16_384)] {
            let cfg = EnvNetConfig {
                variant: EnvNetVariant::Small,
                input,
                rate,
                num_classes: 10,
                dropout: 0.5,
                width: 1,
            };
            assert_eq!(cfg.feature_shape().unwrap(), (64, 6, 6));
            let net = cfg.init(&device);
            let x = Tensor::<4>::random(
                [2, 1, 1, input],
                burn::tensor::Distribution::Normal(0.0, 0.1),
                &device,
            );
            assert_eq!(net.valid().forward(x).dims(), [2, 10]);
            if rate == 8_000 {
                // conv (w + b) + bn (gamma, beta, running mean and var) per layer
                let convs = [(1, 16, 64), (16, 32, 16), (1, 16, 64), (16, 16, 64)];
                let mut n: usize = convs.iter().map(|(i, o, k)| i * o * k + o + 4 * o).sum();
                n += [(16, 32, 4), (32, 32, 4), (32, 64, 2), (64, 64, 2)]
                    .iter()
                    .map(|(i, o, k)| i * o * k + o + 4 * o)
                    .sum::<usize>();
                n += 64 * 6 * 6 * 256 + 256 + 256 * 10 + 10;
                assert_eq!(net.num_params(), n);
            }
        }
    }

    #[test]
    fn width_multiplies_every_channel_count_and_the_hidden_layer() {
        let cfg = EnvNetConfig {
            variant: EnvNetVariant::Small,
            input: 8_192,
            rate: 8_000,
            num_classes: 10,
            dropout: 0.5,
            width: 2,
        };
        // conv2's 64 channels become 64 rows: (64 + 1 - 8 + 1 - 8) / 3 = 16
        assert_eq!(cfg.feature_shape().unwrap(), (128, 16, 6));
        let net = cfg.init(&Device::flex());
        assert_eq!(net.fc[0].weight.dims(), [128 * 16 * 6, 512]);
        // old configurations without the field read as width 1
        let json = serde_json::to_string(&cfg)
            .unwrap()
            .replace(",\"width\":2", "");
        let old: EnvNetConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(old.width, 1);
    }
}
