//! Run-time choice of the compute device (`--device cpu|tch|wgpu|wgpu:N|cuda:N`).
//!
//! Backends are compiled in by cargo features (`flex` CPU always; `tch`, `wgpu`, `cuda`
//! optional) and picked here by name; asking for one that this binary was built
//! without is an error that says which feature to build with.

use burn::prelude::Device;
use std::fmt;
use std::str::FromStr;

/// A parsed `--device` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// burn's `flex` CPU backend (always compiled in).
    Cpu,
    /// A GPU through wgpu (Vulkan, Metal or GL): `None` lets wgpu pick the best adapter.
    Wgpu(Option<usize>),
    /// An NVIDIA GPU through CUDA, by index.
    Cuda(usize),
    /// LibTorch's CPU backend (PyTorch's own kernels), for machines with PyTorch.
    Tch,
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Wgpu(None) => write!(f, "wgpu"),
            DeviceChoice::Wgpu(Some(i)) => write!(f, "wgpu:{i}"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceChoice::Tch => write!(f, "tch"),
        }
    }
}

/// Why a device could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The text is not a device name.
    #[error("unknown device `{0}`: expected cpu, tch, wgpu, wgpu:N or cuda:N")]
    Unknown(String),
    /// The backend exists but this binary was built without it.
    #[error(
        "device `{device}` is not compiled into this binary: rebuild with `cargo build --release --features {feature}`{note}"
    )]
    NotCompiled {
        /// The device asked for.
        device: String,
        /// The cargo feature that enables it.
        feature: &'static str,
        /// Extra advice.
        note: &'static str,
    },
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let (name, index) = match lower.split_once(':') {
            Some((n, i)) => {
                let i: usize = i.parse().map_err(|_| DeviceError::Unknown(s.to_string()))?;
                (n.to_string(), Some(i))
            }
            None => (lower.clone(), None),
        };
        match (name.as_str(), index) {
            ("cpu" | "flex", None) => Ok(DeviceChoice::Cpu),
            ("wgpu" | "gpu" | "vulkan", i) => Ok(DeviceChoice::Wgpu(i)),
            ("cuda", i) => Ok(DeviceChoice::Cuda(i.unwrap_or(0))),
            ("tch" | "libtorch" | "torch", None) => Ok(DeviceChoice::Tch),
            _ => Err(DeviceError::Unknown(s.to_string())),
        }
    }
}

impl DeviceChoice {
    /// The burn device, or an error if its backend is not compiled in.
    pub fn device(&self) -> Result<Device, DeviceError> {
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            DeviceChoice::Wgpu(index) => wgpu_device(*index, self),
            DeviceChoice::Cuda(index) => cuda_device(*index, self),
            DeviceChoice::Tch => tch_device(self),
        }
    }

    /// Names of the backends compiled into this binary.
    pub fn compiled_in() -> Vec<&'static str> {
        let mut v = vec!["cpu"];
        if cfg!(feature = "wgpu") {
            v.push("wgpu");
        }
        if cfg!(feature = "cuda") {
            v.push("cuda");
        }
        if cfg!(feature = "tch") {
            v.push("tch");
        }
        v
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device(index: Option<usize>, _choice: &DeviceChoice) -> Result<Device, DeviceError> {
    use burn::tensor::DeviceKind;
    Ok(match index {
        None => Device::wgpu(DeviceKind::DefaultDevice),
        Some(i) => Device::wgpu(DeviceKind::DiscreteGpu(i)),
    })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(_index: Option<usize>, choice: &DeviceChoice) -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled {
        device: choice.to_string(),
        feature: "wgpu",
        note: "",
    })
}

#[cfg(feature = "cuda")]
fn cuda_device(index: usize, _choice: &DeviceChoice) -> Result<Device, DeviceError> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(_index: usize, choice: &DeviceChoice) -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled {
        device: choice.to_string(),
        feature: "cuda",
        note: " (the cuda build downloads LLVM, so it needs internet access while building)",
    })
}

#[cfg(feature = "tch")]
fn tch_device(_choice: &DeviceChoice) -> Result<Device, DeviceError> {
    Ok(Device::libtorch())
}

#[cfg(not(feature = "tch"))]
fn tch_device(choice: &DeviceChoice) -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled {
        device: choice.to_string(),
        feature: "tch",
        note: " with PyTorch installed and LIBTORCH_USE_PYTORCH=1 set (see docs/performance.md)",
    })
}

/// Makes the CPU burn's default device unless `BURN_DEVICE` names another. burn puts
/// the optimizer state it loads from a checkpoint on its default device, which in a
/// build with a GPU backend is that GPU: starting it takes seconds and, on a machine
/// without a display, prints the graphics driver's complaints, even for a CPU run.
/// The state moves to the parameters' device at the next step, so nothing else
/// changes. Call once at the start of the process, before any other thread.
pub fn cpu_by_default() {
    if std::env::var_os("BURN_DEVICE").is_none() {
        std::env::set_var("BURN_DEVICE", "flex");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "WGPU".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Wgpu(None)
        );
        assert_eq!(
            "wgpu:1".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Wgpu(Some(1))
        );
        assert_eq!(
            "cuda:0".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!("tch".parse::<DeviceChoice>().unwrap(), DeviceChoice::Tch);
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn missing_backend_names_the_feature() {
        let err = DeviceChoice::Cuda(0).device().err();
        if cfg!(feature = "cuda") {
            assert!(err.is_none());
        } else {
            let msg = err.unwrap().to_string();
            assert!(msg.contains("--features cuda"), "{msg}");
        }
    }
}
