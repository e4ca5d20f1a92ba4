//! Choosing a backend and device from a string such as `flex`, `wgpu` or `cuda:1`.
//!
//! Library code is generic over `B: Backend`; a program turns the user's `--device` string into
//! a [`DeviceSpec`] and hands a [`BackendTask`] to [`DeviceSpec::run`], which instantiates the
//! task for the matching `Autodiff<...>` backend. Only the backends whose cargo features are on
//! are compiled, so a binary built without `wgpu` never monomorphises the task for wgpu.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::Error;

/// The backends `contrast` knows about, whether or not this build compiled them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Burn's `flex` CPU backend (default; SIMD and rayon).
    Flex,
    /// Burn's `ndarray` CPU backend.
    NdArray,
    /// Burn's `wgpu` backend on the default adapter.
    Wgpu,
    /// Burn's CUDA backend.
    Cuda,
}

impl BackendKind {
    /// Every backend, in the order they are listed to users.
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Flex,
        BackendKind::NdArray,
        BackendKind::Wgpu,
        BackendKind::Cuda,
    ];

    /// The name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::NdArray => "ndarray",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// The cargo feature of `contrast-core` that compiles this backend in.
    pub fn feature(self) -> &'static str {
        self.name()
    }

    /// Whether this build compiled the backend in.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::NdArray => cfg!(feature = "ndarray"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }
}

/// The device names this build accepts, for help texts and error messages.
pub fn available_devices() -> Vec<&'static str> {
    let mut names = Vec::new();
    for kind in BackendKind::ALL {
        if kind.is_compiled() {
            names.push(match kind {
                BackendKind::Cuda => "cuda[:N]",
                other => other.name(),
            });
        }
    }
    names
}

fn available_list() -> String {
    let names = available_devices();
    if names.is_empty() {
        "none (enable one of the features flex, ndarray, wgpu, cuda)".to_string()
    } else {
        names.join(", ")
    }
}

/// A parsed device string: a backend and, for CUDA, a device index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceSpec {
    /// Which backend runs the work.
    pub kind: BackendKind,
    /// Device index (only CUDA uses it; 0 otherwise).
    pub index: usize,
}

impl DeviceSpec {
    /// Parses a device string (`flex`, `ndarray`, `wgpu`, `cuda`, `cuda:N`), case-insensitively.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`] for a name `contrast` does not know, and
    /// [`Error::BackendNotCompiled`] for a known backend whose feature is off; both list the
    /// names this build accepts.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let text = s.trim().to_ascii_lowercase();
        let (name, index) = match text.split_once(':') {
            Some((name, idx)) => (name.to_string(), Some(idx.to_string())),
            None => (text.clone(), None),
        };
        let unknown = || Error::UnknownDevice {
            name: s.to_string(),
            available: available_list(),
        };
        let kind = BackendKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(unknown)?;
        let index = match (kind, index) {
            (_, None) => 0,
            (BackendKind::Cuda, Some(idx)) => idx.parse::<usize>().map_err(|_| unknown())?,
            (_, Some(_)) => return Err(unknown()),
        };
        if !kind.is_compiled() {
            return Err(Error::BackendNotCompiled {
                name: s.to_string(),
                feature: kind.feature(),
                available: available_list(),
            });
        }
        Ok(DeviceSpec { kind, index })
    }

    /// Runs `task` on this device's `Autodiff` backend, after checking that the device works.
    ///
    /// # Errors
    /// [`Error::DeviceUnavailable`] when the backend cannot start on this machine (no CUDA
    /// driver, no Vulkan adapter): a one-line reason instead of the backend's panic.
    pub fn run<T: BackendTask>(&self, task: T) -> Result<T::Output, Error> {
        // Without any backend feature every arm below is compiled out.
        let _ = &task;
        match self.kind {
            #[cfg(feature = "flex")]
            BackendKind::Flex => Ok(task.run::<FlexAutodiff>(Default::default())),
            #[cfg(feature = "ndarray")]
            BackendKind::NdArray => Ok(task.run::<NdArrayAutodiff>(Default::default())),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => {
                let device = burn::backend::wgpu::WgpuDevice::DefaultDevice;
                probe::<WgpuAutodiff>(&device, &self.to_string())?;
                Ok(task.run::<WgpuAutodiff>(device))
            }
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => {
                let device = burn::backend::cuda::CudaDevice::new(self.index);
                probe::<CudaAutodiff>(&device, &self.to_string())?;
                Ok(task.run::<CudaAutodiff>(device))
            }
            #[allow(unreachable_patterns)]
            _ => Err(Error::BackendNotCompiled {
                name: self.to_string(),
                feature: self.kind.feature(),
                available: available_list(),
            }),
        }
    }
}

impl DeviceSpec {
    /// This device as a value of backend `B`'s device type, for a program that runs on several
    /// devices of one backend (the first through [`run`](Self::run), which names `B`): CUDA's
    /// device `index`, the default device of every other backend.
    pub fn device<B: Backend>(&self) -> B::Device {
        #[cfg(feature = "cuda")]
        if self.kind == BackendKind::Cuda {
            let mut slot = Some(burn::backend::cuda::CudaDevice::new(self.index));
            if let Some(d) =
                (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<B::Device>>()
            {
                return d.take().expect("filled above");
            }
        }
        Default::default()
    }

    /// Parses a comma-separated list of devices of one backend (`flex,flex`, `cuda:0,cuda:1`),
    /// each at most once except the CPU and wgpu backends' single device, which may repeat
    /// (several peers sharing the processor).
    ///
    /// # Errors
    /// As [`parse`](Self::parse), and [`Error::InvalidConfig`] for an empty list, a mix of
    /// backends or a CUDA device named twice.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, Error> {
        let specs = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(DeviceSpec::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = specs.first() else {
            return Err(Error::invalid_config("devices", s, "names no device"));
        };
        if let Some(other) = specs.iter().find(|d| d.kind != first.kind) {
            return Err(Error::invalid_config(
                "devices",
                s,
                format!("mixes {first} and {other}: the peers of a run share one backend"),
            ));
        }
        for (i, d) in specs.iter().enumerate() {
            if d.kind == BackendKind::Cuda && specs[..i].contains(d) {
                return Err(Error::invalid_config(
                    "devices",
                    s,
                    format!("names {d} twice: one peer per GPU"),
                ));
            }
        }
        Ok(specs)
    }
}

impl FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        DeviceSpec::parse(s)
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            BackendKind::Cuda => write!(f, "cuda:{}", self.index),
            other => f.write_str(other.name()),
        }
    }
}

/// Work that is generic over the backend, run by [`DeviceSpec::run`].
///
/// A closure cannot be generic, so a program writes a small struct holding its inputs and
/// implements this trait once; `run` is then instantiated for each backend compiled in.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Runs the task on backend `B` and `device`.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// `Autodiff<Flex>`: the default training backend.
#[cfg(feature = "flex")]
pub type FlexAutodiff = burn::backend::Autodiff<burn::backend::Flex>;
/// `Autodiff<NdArray>`.
#[cfg(feature = "ndarray")]
pub type NdArrayAutodiff = burn::backend::Autodiff<burn::backend::NdArray>;
/// `Autodiff<Wgpu>`.
#[cfg(feature = "wgpu")]
pub type WgpuAutodiff = burn::backend::Autodiff<burn::backend::Wgpu>;
/// `Autodiff<Cuda>`.
#[cfg(feature = "cuda")]
pub type CudaAutodiff = burn::backend::Autodiff<burn::backend::Cuda>;

/// Runs one tiny operation on `device` and turns a backend panic (missing driver or library)
/// into [`Error::DeviceUnavailable`] with the panic's first line as the reason.
pub fn probe<B: Backend>(device: &B::Device, name: &str) -> Result<(), Error> {
    // Backends start runtime threads; the root cause often panics there and the caller only
    // sees a closed channel. Record every panic message while probing and report the first.
    let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = messages.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend panicked while starting".to_string());
        if let Ok(mut m) = sink.lock() {
            m.push(text);
        }
    }));
    let result = catch_unwind(AssertUnwindSafe(|| {
        Tensor::<B, 1>::ones([2], device)
            .sum()
            .try_into_scalar()
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }));
    std::panic::set_hook(previous);
    let failed = match result {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e,
        Err(_) => "the backend panicked while starting".to_string(),
    };
    let first = messages.lock().ok().and_then(|m| m.first().cloned());
    let reason = first.unwrap_or(failed);
    Err(Error::DeviceUnavailable {
        device: name.to_string(),
        reason: short_reason(&reason),
    })
}

/// The first line of a backend's failure, with the common causes said plainly.
fn short_reason(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or("").trim();
    if line.contains("dynamically load") && line.contains("cuda") {
        return "the NVIDIA driver library (libcuda.so) was not found; install the NVIDIA \
                driver or add its folder to LD_LIBRARY_PATH"
            .to_string();
    }
    const MAX: usize = 240;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_names() {
        let spec = DeviceSpec::parse(" Flex ").unwrap();
        assert_eq!(spec.kind, BackendKind::Flex);
        assert_eq!(spec.to_string(), "flex");
    }

    #[test]
    fn unknown_name_lists_choices_on_one_line() {
        let err = DeviceSpec::parse("tpu").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown device `tpu`"), "{msg}");
        assert!(msg.contains("flex"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(DeviceSpec::parse("flex:1").is_err());
        assert!(DeviceSpec::parse("cuda:x").is_err());
    }

    #[test]
    fn missing_feature_is_named() {
        for kind in BackendKind::ALL {
            if !kind.is_compiled() {
                let err = DeviceSpec::parse(kind.name()).unwrap_err();
                assert!(
                    matches!(err, Error::BackendNotCompiled { feature, .. } if feature == kind.name())
                );
                assert!(err.to_string().contains("flex"));
            }
        }
    }

    #[test]
    fn cuda_index_parses_when_compiled() {
        let parsed = DeviceSpec::parse("cuda:1");
        if BackendKind::Cuda.is_compiled() {
            let spec = parsed.unwrap();
            assert_eq!(spec.index, 1);
            assert_eq!(spec.to_string(), "cuda:1");
        } else {
            assert!(parsed.is_err());
        }
    }

    struct Sum(Vec<f32>);
    impl BackendTask for Sum {
        type Output = f32;
        fn run<B: AutodiffBackend>(self, device: B::Device) -> f32 {
            let n = self.0.len();
            Tensor::<B, 1>::from_data(burn::tensor::TensorData::new(self.0, [n]), &device)
                .sum()
                .into_scalar()
                .to_string()
                .parse()
                .unwrap()
        }
    }

    #[test]
    fn runs_a_task_on_flex() {
        let spec = DeviceSpec::parse("flex").unwrap();
        assert_eq!(spec.run(Sum(vec![1.0, 2.0, 3.5])).unwrap(), 6.5);
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn runs_a_task_on_ndarray() {
        let spec = DeviceSpec::parse("ndarray").unwrap();
        assert_eq!(spec.run(Sum(vec![1.0, 2.0, 3.5])).unwrap(), 6.5);
    }

    /// Without a GPU driver, asking for CUDA is a one-line error, not a panic.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_without_driver_is_a_one_line_error() {
        let spec = DeviceSpec::parse("cuda").unwrap();
        match spec.run(Sum(vec![1.0])) {
            Ok(v) => {
                assert_eq!(v, 1.0);
                eprintln!("a CUDA device is present; the error path was not exercised");
            }
            Err(err) => {
                let msg = err.to_string();
                eprintln!("{msg}");
                assert!(msg.starts_with("device `cuda:0` is not usable"), "{msg}");
                assert!(msg.len() < 300, "{msg}");
                assert!(!msg.contains('\n'), "{msg}");
            }
        }
    }
}
