//! CPU (`flex`) versus GPU (`wgpu`) parity of the digits network: the same weights give
//! the same logits and the same first training-step loss on both devices. In CI this
//! runs on Mesa's software Vulkan driver (lavapipe), which exercises the whole wgpu
//! path without a GPU. Built only with `--features wgpu`.
#![cfg(feature = "wgpu")]

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use scarce::method::source_only::SourceOnly;
use scarce::method::{MethodConfig, MethodKind, OptimizerConfig};
use scarce::model::device::DeviceChoice;
use scarce::model::digits::{DigitsNet, DigitsNetConfig};

fn input(device: &Device, n: usize) -> Tensor<4> {
    let v: Vec<f32> = (0..n * 28 * 28).map(|j| (j as f32 * 0.37).sin()).collect();
    Tensor::from_data(TensorData::new(v, [n, 1, 28, 28]), device)
}

fn copy_to(net: &DigitsNet, cfg: &DigitsNetConfig, device: &Device) -> DigitsNet {
    let bytes = net.clone().into_record().into_bytes().unwrap();
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).unwrap();
    cfg.init(device).load_record(record)
}

fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    let a: Vec<f32> = a.into_data().iter::<f32>().collect();
    let b: Vec<f32> = b.into_data().iter::<f32>().collect();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn wgpu_matches_cpu_on_inference_and_a_training_step() {
    let cpu = Device::flex();
    cpu.seed(3);
    let gpu = DeviceChoice::Wgpu(None)
        .device()
        .expect("wgpu is compiled in");
    let net_cpu = DigitsNetConfig::default().init(&cpu);
    let net_gpu = copy_to(&net_cpu, &DigitsNetConfig::default(), &gpu);

    // inference, eval mode
    let a = net_cpu.valid().forward(input(&cpu, 16));
    let b = net_gpu.valid().forward(input(&gpu, 16));
    let d = max_abs_diff(a.clone(), b.to_device(&cpu));
    assert!(d < 1e-3, "logits differ by {d}");
    let scale = a.abs().max().into_scalar::<f32>();
    assert!(scale > 1e-3, "logits are not trivially zero");

    // one training step without dropout: the same loss on both devices
    let cfg = DigitsNetConfig {
        dropout: 0.0,
        ..DigitsNetConfig::default()
    };
    let step_loss = |device: &Device| {
        let ad = device.clone().autodiff();
        let mcfg = MethodConfig {
            kind: MethodKind::SourceOnly,
            net: cfg.clone().into(),
            optimizer: OptimizerConfig::default(),
            num_k: 1,
            grl: Default::default(),
            reject_below: None,
        };
        let mut m = SourceOnly::new(&mcfg, &ad);
        m.load_net(copy_to(&net_cpu, &cfg, &ad));
        let y: Vec<i64> = (0..16).map(|i| i % 10).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(y, [16]), &ad);
        let first = m.step_tensors(input(&ad, 16), y.clone());
        let second = m.step_tensors(input(&ad, 16), y);
        (first.loss, second.loss)
    };
    let (c1, c2) = step_loss(&cpu);
    let (g1, g2) = step_loss(&gpu);
    assert!((c1 - g1).abs() < 1e-3, "first loss cpu {c1} wgpu {g1}");
    assert!(c2 < c1 && g2 < g1, "a step lowers the loss on both");
}

/// A CPU run of a build with wgpu never starts the GPU: loading a checkpoint's
/// optimizer state puts it on burn's default device, which the `scarce` binary makes
/// the CPU (a GPU start costs seconds and, without a display, prints driver noise).
#[test]
fn a_cpu_run_of_a_wgpu_build_leaves_the_gpu_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let scarce = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_scarce"))
            .current_dir(root)
            .env_remove("BURN_DEVICE")
            .env_remove("SCARCE_DATA_DIR")
            .env("RUST_LOG", "wgpu_core=debug,cubecl_wgpu=debug")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        err
    };
    let run_dir = run.to_str().unwrap();
    let pipeline = "tests/pipelines/tiny.toml";
    for err in [
        scarce(&[
            "train", pipeline, "--epochs", "1", "--out", run_dir, "--quiet",
        ]),
        scarce(&["eval", run_dir]),
        scarce(&["train", "--resume", run_dir, "--epochs", "2", "--quiet"]),
    ] {
        assert!(
            !err.contains("wgpu_core") && !err.contains("cubecl_wgpu"),
            "the GPU was started:\n{err}"
        );
    }
}
