//! The output folder of a reproduction: locked for one process, checked writable, and never
//! written over by a run that did not ask for it.

use std::path::{Path, PathBuf};

use contrast_methods::{RunDir, RunLock};

use crate::Error;

/// Checkpoint files of earlier runs in `out` and its sub-folders (a paradigms run keeps one per
/// method, a graph run one per seed and sampler).
fn checkpoints_under(out: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(out.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && depth < 3 {
                stack.push((p, depth + 1));
            } else if p.file_name().is_some_and(|n| n == "checkpoint.bin") {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// Opens `out` for a run before any data is loaded: creates it, locks it against a second run
/// (the lock file is also the check that files can be written there), and refuses a folder that
/// holds an earlier run's checkpoints unless the run resumes or overwrites them.
///
/// # Errors
/// [`contrast_methods::Error::Locked`] naming the process that holds the folder, `Io` for a
/// folder that cannot be created or written, `InvalidConfig` for `resume` with `overwrite` or
/// for an earlier run's checkpoints without either.
pub(crate) fn open_run(out: &Path, resume: bool, overwrite: bool) -> Result<RunLock, Error> {
    if resume && overwrite {
        return Err(contrast_core::Error::invalid_config(
            "resume",
            "with --overwrite",
            "--resume continues the run in --out, --overwrite starts it again: pass one",
        )
        .into());
    }
    let lock = RunLock::acquire(out)?;
    if !resume && !overwrite {
        let earlier = checkpoints_under(out);
        if let Some(first) = earlier.first() {
            return Err(contrast_core::Error::invalid_config(
                "out",
                out.display(),
                format!(
                    "it holds an earlier run ({} checkpoint(s), e.g. {}): continue it with \
                     --resume (same settings), start again over it with --overwrite, or pick \
                     another --out",
                    earlier.len(),
                    first.display()
                ),
            )
            .into());
        }
    }
    Ok(lock)
}

/// The loop's run folder for `dir`, with what the loop cannot see about the data and model.
pub(crate) fn run_dir(
    dir: &Path,
    resume: bool,
    overwrite: bool,
    identity: &[(&str, String)],
) -> RunDir {
    RunDir {
        dir: Some(dir.to_path_buf()),
        resume,
        overwrite,
        progress: true,
        identity: identity
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        peer: None,
        start_embeddings: None,
    }
}

/// A training subset of `Some(0)` is a mistake, not "everything" (leave the option out for
/// that).
pub(crate) fn check_subset(name: &'static str, subset: Option<usize>) -> Result<(), Error> {
    if subset == Some(0) {
        return Err(contrast_core::Error::invalid_config(
            name,
            0,
            "must be at least 1 (leave it out to use every instance)",
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_run_is_refused_without_resume_or_overwrite() {
        let out = std::env::temp_dir().join(format!("contrast-open-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        drop(open_run(&out, false, false).unwrap());
        std::fs::create_dir_all(out.join("seed-0/shuffled")).unwrap();
        std::fs::write(out.join("seed-0/shuffled/checkpoint.bin"), b"x").unwrap();
        let err = open_run(&out, false, false).unwrap_err().to_string();
        assert!(
            err.contains("--resume") && err.contains("--overwrite"),
            "{err}"
        );
        drop(open_run(&out, true, false).unwrap());
        drop(open_run(&out, false, true).unwrap());
        let err = open_run(&out, true, true).unwrap_err().to_string();
        assert!(err.contains("pass one"), "{err}");
        // A second run while the first holds the folder.
        let held = open_run(&out, true, false).unwrap();
        let err = open_run(&out, true, false).unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
        drop(held);
        assert!(check_subset("train_subset", Some(0)).is_err());
        assert!(check_subset("train_subset", None).is_ok());
        std::fs::remove_dir_all(&out).unwrap();
    }
}
