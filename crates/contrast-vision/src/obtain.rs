//! Finding Fashion-MNIST on a Debian or Ubuntu machine without root.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::idx::{FASHION_MNIST_CLASSES, load_mnist_format};
use crate::{Error, Splits};

/// Where Debian's `dataset-fashion-mnist` package installs its files.
pub const SYSTEM_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

fn has_files(dir: &Path) -> bool {
    dir.join("train-images-idx3-ubyte.gz").is_file()
        || dir.join("train-images-idx3-ubyte").is_file()
}

/// Returns a folder holding Fashion-MNIST, in this order of preference:
/// 1. the system copy in [`SYSTEM_FASHION_MNIST`] (`apt install dataset-fashion-mnist`);
/// 2. a copy unpacked earlier under `cache`;
/// 3. a fresh one: `apt-get download dataset-fashion-mnist` and `dpkg-deb -x` into `cache`
///    (no root needed).
///
/// # Errors
/// [`Error::NotFound`] with the manual steps when none of these works.
pub fn fashion_mnist_dir(cache: &Path) -> Result<PathBuf, Error> {
    let system = PathBuf::from(SYSTEM_FASHION_MNIST);
    if has_files(&system) {
        return Ok(system);
    }
    let unpacked = cache.join("fashion-mnist-deb");
    let local = unpacked.join("usr/share/datasets/fashion-mnist");
    if has_files(&local) {
        return Ok(local);
    }
    let hint = format!(
        "install it with `sudo apt install dataset-fashion-mnist`, or run `apt-get download \
         dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb {}`, or download the \
         four files from https://github.com/zalandoresearch/fashion-mnist and pass --data DIR",
        unpacked.display()
    );
    let not_found = |why: String| Error::NotFound {
        what: format!("Fashion-MNIST ({why})"),
        hint: hint.clone(),
    };
    std::fs::create_dir_all(&unpacked).map_err(|e| Error::io(&unpacked, e))?;
    let download = Command::new("apt-get")
        .args(["download", "dataset-fashion-mnist"])
        .current_dir(&unpacked)
        .output()
        .map_err(|e| not_found(format!("cannot run apt-get: {e}")))?;
    if !download.status.success() {
        let err = String::from_utf8_lossy(&download.stderr);
        return Err(not_found(format!(
            "`apt-get download dataset-fashion-mnist` failed: {}",
            err.lines().last().unwrap_or("").trim()
        )));
    }
    let deb = std::fs::read_dir(&unpacked)
        .map_err(|e| Error::io(&unpacked, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| not_found("apt-get download left no .deb file".into()))?;
    let unpack = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .map_err(|e| not_found(format!("cannot run dpkg-deb: {e}")))?;
    let _ = std::fs::remove_file(&deb);
    if !unpack.success() || !has_files(&local) {
        return Err(not_found("dpkg-deb did not produce the files".into()));
    }
    Ok(local)
}

/// Loads Fashion-MNIST from `data` if given, else from [`fashion_mnist_dir`].
///
/// # Errors
/// As [`fashion_mnist_dir`] and [`load_mnist_format`].
pub fn load_fashion_mnist(data: Option<&Path>, cache: &Path) -> Result<Splits, Error> {
    let dir = match data {
        Some(d) => d.to_path_buf(),
        None => fashion_mnist_dir(cache)?,
    };
    load_mnist_format(&dir, &FASHION_MNIST_CLASSES)
}
