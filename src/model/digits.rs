//! The digits network of the MCD reference code (Saito et al., CVPR 2018, `model/usps.py`):
//! a small convolutional feature generator and a classifier head, for 1x28x28 inputs.

use crate::kernels;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Side length of the square input images.
pub const INPUT_SIZE: usize = 28;
/// Width of the generator's feature vector: 48 channels x 4 x 4.
pub const FEATURE_DIM: usize = 768;

/// Hyper-parameters of the digits network; lives in the pipeline file under the model stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigitsNetConfig {
    /// Number of output classes.
    #[serde(default = "default_classes")]
    pub num_classes: usize,
    /// Dropout probability before each fully connected layer but the last.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Width of the classifier's hidden layers.
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    /// Hidden layers of the classifier: 2 (the MCD head, default), 1, or 0 (one linear
    /// layer on the generator's features).
    #[serde(default = "default_hidden_layers")]
    pub hidden_layers: usize,
}

fn default_classes() -> usize {
    10
}
fn default_dropout() -> f64 {
    0.5
}
fn default_hidden() -> usize {
    100
}
fn default_hidden_layers() -> usize {
    2
}

impl Default for DigitsNetConfig {
    fn default() -> Self {
        Self {
            num_classes: default_classes(),
            dropout: default_dropout(),
            hidden: default_hidden(),
            hidden_layers: default_hidden_layers(),
        }
    }
}

impl DigitsNetConfig {
    /// Builds the network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> DigitsNet {
        DigitsNet {
            g: DigitsGenerator::new(device),
            c: DigitsClassifier::new(self, device),
        }
    }

    /// Builds a generator with two classifiers (MCD's twin heads) on `device`.
    pub fn init_twin(&self, device: &Device) -> TwinDigitsNet {
        TwinDigitsNet {
            g: DigitsGenerator::new(device),
            c1: DigitsClassifier::new(self, device),
            c2: DigitsClassifier::new(self, device),
        }
    }
}

/// Feature generator G: conv5x5 1->32, BN, ReLU, maxpool 2; conv5x5 32->48, BN, ReLU,
/// maxpool 2; flatten to 768.
#[derive(Module, Debug)]
pub struct DigitsGenerator {
    pub(crate) conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
}

impl DigitsGenerator {
    fn new(device: &Device) -> Self {
        Self {
            conv1: Conv2dConfig::new([1, 32], [5, 5]).init(device),
            bn1: BatchNormConfig::new(32).init(device),
            conv2: Conv2dConfig::new([32, 48], [5, 5]).init(device),
            bn2: BatchNormConfig::new(48).init(device),
        }
    }

    /// `[batch, 1, 28, 28]` -> `[batch, 768]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        // [b, 1, 28, 28] -> conv -> [b, 32, 24, 24] -> pool -> [b, 32, 12, 12]
        let x = kernels::batch_norm_relu_pool(&self.bn1, conv(&self.conv1, x), 2);
        // [b, 32, 12, 12] -> conv -> [b, 48, 8, 8] -> pool -> [b, 48, 4, 4]
        let x = kernels::batch_norm_relu_pool(&self.bn2, conv(&self.conv2, x), 2);
        x.flatten(1, 3) // [b, 768]
    }
}

/// `layer` applied to `x`, through the CPU kernels when the layer is one they cover
/// (bias, symmetric or no padding, no dilation, no groups), else burn's own forward.
pub(crate) fn conv(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match layer.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    };
    match (&layer.bias, padding) {
        (Some(bias), Some(padding)) if layer.dilation == [1, 1] && layer.groups == 1 => {
            kernels::conv2d(x, layer.weight.val(), bias.val(), layer.stride, padding)
        }
        _ => layer.forward(x),
    }
}

/// Classifier C: dropout, 768->100, BN, ReLU, dropout, 100->100, BN, ReLU, 100->classes
/// (`hidden_layers` = 2); with fewer hidden layers the first ones are left out, down to
/// dropout, 768->classes.
#[derive(Module, Debug)]
pub struct DigitsClassifier {
    drop: Dropout,
    fc1: Option<Linear>,
    bn1: Option<BatchNorm>,
    pub(crate) fc2: Option<Linear>,
    bn2: Option<BatchNorm>,
    pub(crate) fc3: Linear,
}

impl DigitsClassifier {
    fn new(cfg: &DigitsNetConfig, device: &Device) -> Self {
        let layers = cfg.hidden_layers.min(2);
        let h = cfg.hidden;
        let in2 = if layers == 2 { h } else { FEATURE_DIM };
        let out = if layers == 0 { FEATURE_DIM } else { h };
        Self {
            drop: DropoutConfig::new(cfg.dropout).init(),
            fc1: (layers == 2).then(|| LinearConfig::new(FEATURE_DIM, h).init(device)),
            bn1: (layers == 2).then(|| BatchNormConfig::new(h).init(device)),
            fc2: (layers >= 1).then(|| LinearConfig::new(in2, h).init(device)),
            bn2: (layers >= 1).then(|| BatchNormConfig::new(h).init(device)),
            fc3: LinearConfig::new(out, cfg.num_classes).init(device),
        }
    }

    /// `[batch, 768]` -> logits `[batch, classes]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.last(self.hidden(x))
    }

    /// The last layer: `[batch, hidden]` (`[batch, 768]` without hidden layers) ->
    /// logits.
    pub fn last(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc3.forward(x)
    }

    /// Everything before the last layer: `[batch, 768]` -> `[batch, hidden]`.
    pub fn hidden(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = kernels::dropout(&self.drop, x);
        if let (Some(fc), Some(bn)) = (&self.fc1, &self.bn1) {
            x = kernels::batch_norm(bn, fc.forward(x), true); // [b, hidden]
            x = kernels::dropout(&self.drop, x);
        }
        if let (Some(fc), Some(bn)) = (&self.fc2, &self.bn2) {
            x = kernels::batch_norm(bn, fc.forward(x), true); // [b, hidden]
        }
        x
    }
}

/// Generator and one classifier: the source-only network.
#[derive(Module, Debug)]
pub struct DigitsNet {
    /// Feature generator.
    pub g: DigitsGenerator,
    /// Classifier head.
    pub c: DigitsClassifier,
}

impl DigitsNet {
    /// `[batch, 1, 28, 28]` -> logits `[batch, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.c.forward(self.g.forward(x))
    }
}

/// Generator and two classifiers: the networks of MCD (Saito et al., CVPR 2018).
#[derive(Module, Debug)]
pub struct TwinDigitsNet {
    /// Feature generator.
    pub g: DigitsGenerator,
    /// First classifier.
    pub c1: DigitsClassifier,
    /// Second classifier.
    pub c2: DigitsClassifier,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_shapes_and_parameter_count() {
        let device = Device::flex();
        let net = DigitsNetConfig::default().init(&device);
        let x = Tensor::<4>::zeros([3, 1, 28, 28], &device);
        let f = net.g.forward(x.clone());
        assert_eq!(f.dims(), [3, FEATURE_DIM]);
        assert_eq!(net.valid().forward(x).dims(), [3, 10]);
        // conv1 1*32*25+32, conv2 32*48*25+48, bn 2*(32+48); fc 768*100+100, 100*100+100,
        // 100*10+10, bn 2*(100+100); plus the BatchNorm running mean and variance
        let running = 2 * (32 + 48 + 100 + 100);
        let expected =
            (800 + 32) + (38_400 + 48) + 160 + (76_800 + 100) + 10_100 + 1_010 + 400 + running;
        assert_eq!(net.num_params(), expected);
    }

    #[test]
    fn fewer_hidden_layers_shrink_the_classifier() {
        let device = Device::flex();
        let x = Tensor::<4>::zeros([2, 1, 28, 28], &device);
        let conv = (800 + 32) + (38_400 + 48) + 160 + 2 * (32 + 48);
        for (layers, head) in [(0, 768 * 10 + 10), (1, (76_800 + 100) + 200 + 200 + 1_010)] {
            let net = DigitsNetConfig {
                hidden_layers: layers,
                ..DigitsNetConfig::default()
            }
            .init(&device);
            assert_eq!(net.valid().forward(x.clone()).dims(), [2, 10]);
            assert_eq!(net.num_params(), conv + head, "{layers} hidden layers");
        }
    }
}
