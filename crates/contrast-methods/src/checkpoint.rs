//! Checkpoint files: written to a temporary file, flushed to disk and renamed over the previous
//! checkpoint, so a run killed at any moment leaves either the old or the new checkpoint, never
//! a partial one. A checksum catches files damaged later.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Error;

const MAGIC: &[u8; 12] = b"CONTRASTCKPT";
const VERSION: u32 = 3;

/// The sections of a checkpoint: a JSON header and binary records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointData {
    /// Loop state as JSON (epoch, step, sampler, history, configuration).
    pub header: Vec<u8>,
    /// The record of the model and the method's state (key encoder, queue, memory bank).
    pub model: Vec<u8>,
    /// The optimiser record.
    pub optimizer: Vec<u8>,
    /// The index sampler's state (position, BatchSampler graph and embeddings).
    pub sampler: Vec<u8>,
}

/// FNV-1a, 64 bit: enough to notice a damaged file, not a cryptographic hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Serialises the sections.
pub fn encode(data: &CheckpointData) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        64 + data.header.len() + data.model.len() + data.optimizer.len() + data.sampler.len(),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    for s in [&data.header, &data.model, &data.optimizer, &data.sampler] {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s);
    }
    let h = fnv1a(&out);
    out.extend_from_slice(&h.to_le_bytes());
    out
}

/// Parses bytes written by [`encode`].
///
/// # Errors
/// [`Error::Checkpoint`] naming what is wrong (magic, version, a section running past the end,
/// checksum) and where.
pub fn decode(bytes: &[u8], path: &Path) -> Result<CheckpointData, Error> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < MAGIC.len() + 4 + 8 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("not a contrast checkpoint (wrong magic bytes)".into()));
    }
    let body = &bytes[..bytes.len() - 8];
    let stored = u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().expect("8 bytes"));
    let version = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    if version < VERSION {
        return Err(bad(format!(
            "it has format version {version}, written by an earlier contrast (before method state was saved with the model); this build reads version {VERSION} only: start the run again in a new --out folder"
        )));
    }
    if version != VERSION {
        return Err(bad(format!(
            "format version {version}, this build reads {VERSION}"
        )));
    }
    let mut pos = 16usize;
    let mut sections = Vec::with_capacity(4);
    for name in ["header", "model", "optimizer", "sampler state"] {
        if pos + 8 > body.len() {
            return Err(bad(format!(
                "truncated: the {name} section's length at offset {pos} is missing ({} bytes in the file)",
                bytes.len()
            )));
        }
        let len = u64::from_le_bytes(body[pos..pos + 8].try_into().expect("8 bytes")) as usize;
        pos += 8;
        if len > body.len() - pos {
            return Err(bad(format!(
                "truncated: the {name} section needs {len} bytes from offset {pos}, found {}",
                body.len() - pos
            )));
        }
        sections.push(body[pos..pos + len].to_vec());
        pos += len;
    }
    if pos != body.len() {
        return Err(bad(format!(
            "{} unexpected bytes after the sections",
            body.len() - pos
        )));
    }
    if fnv1a(body) != stored {
        return Err(bad(
            "checksum mismatch: the file was damaged after it was written".into(),
        ));
    }
    let sampler = sections.pop().expect("4 sections");
    let optimizer = sections.pop().expect("4 sections");
    let model = sections.pop().expect("4 sections");
    let header = sections.pop().expect("4 sections");
    Ok(CheckpointData {
        header,
        model,
        optimizer,
        sampler,
    })
}

/// Writes `data` to `path` atomically: a temporary file in the same folder, `fsync`, rename.
///
/// # Errors
/// [`Error::Io`]; the previous checkpoint is left untouched on failure.
pub fn write_atomic(path: &Path, data: &CheckpointData) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp: PathBuf = path.with_extension("tmp");
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&encode(data)).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if let Err(e) = written {
        // A full disk or a failed rename must not leave a partial file beside the checkpoint.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

thread_local! {
    /// True while this thread decodes under [`catch_decode_panic`].
    static DECODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once per process, a panic hook that stays silent for panics of a thread inside
/// [`catch_decode_panic`] and hands every other panic to the hook that was there before.
static QUIET_HOOK: std::sync::Once = std::sync::Once::new();

/// Runs `f`, turning a panic into `Err` with its message: Burn's record decoders panic on some
/// malformed bytes (a `Vec` record of the wrong length, a record that does not fit the
/// module), and a damaged or foreign checkpoint must end in an error, not an abort. The panic's
/// standard message is not printed; panics of other threads meanwhile are reported as usual
/// (the silence is per thread, so concurrent decodes cannot leave it switched on).
pub(crate) fn catch_decode_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DECODING.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let was = DECODING.with(|d| d.replace(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    DECODING.with(|d| d.set(was));
    out.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the decoder panicked".into())
    })
}

/// A lock on a run folder, held while a run writes into it, so two runs cannot race on one
/// checkpoint and one set of reports. It is an advisory `flock` on `DIR/.lock` (which records
/// the holder's process id): the operating system releases it when the process ends, however it
/// ends, so a killed run never leaves a stale lock behind.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl RunLock {
    /// Creates `dir` if needed, checks that files can be created in it, and locks it.
    ///
    /// # Errors
    /// [`Error::Io`] when `dir` cannot be created or written (a read-only folder, a full disk),
    /// [`Error::Locked`] when another process holds the lock (with its process id).
    pub fn acquire(dir: &Path) -> Result<RunLock, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(".lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                    holder: holder.trim().to_string(),
                });
            }
            // File systems without locks (some network and FUSE mounts): run unlocked rather
            // than refuse the folder, and say so.
            Err(std::fs::TryLockError::Error(e)) if locks_unsupported(&e) => {
                eprintln!(
                    "warning: {} cannot be locked ({e}); two runs into it would not be stopped",
                    dir.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        use std::io::Seek;
        let pid = std::process::id();
        let wrote = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "process {pid}"))
            .and_then(|()| file.sync_all());
        wrote.map_err(|e| Error::io(&path, e))?;
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `e` says the file system has no locks (`Unsupported`, or `ENOLCK`: "no locks
/// available", whose number differs between systems).
fn locks_unsupported(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    let enolck = e.raw_os_error() == Some(libc::ENOLCK);
    #[cfg(not(unix))]
    let enolck = false;
    e.kind() == std::io::ErrorKind::Unsupported || enolck
}

/// Reads a checkpoint written by [`write_atomic`].
///
/// # Errors
/// [`Error::Io`] when it cannot be read, [`Error::Checkpoint`] when it is damaged.
pub fn read(path: &Path) -> Result<CheckpointData, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CheckpointData {
        CheckpointData {
            header: b"{\"epoch\":3}".to_vec(),
            model: vec![1, 2, 3, 4, 5],
            optimizer: vec![9; 100],
            sampler: vec![1; 16],
        }
    }

    #[test]
    fn round_trip_and_atomic_replace() {
        let dir = std::env::temp_dir().join(format!("contrast-ckpt-{}", std::process::id()));
        let path = dir.join("checkpoint.bin");
        write_atomic(&path, &sample()).unwrap();
        assert_eq!(read(&path).unwrap(), sample());
        let mut next = sample();
        next.model = vec![7; 10];
        write_atomic(&path, &next).unwrap();
        assert_eq!(read(&path).unwrap(), next);
        assert!(!path.with_extension("tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_no_partial_file() {
        let dir = std::env::temp_dir().join(format!("contrast-ckpt-fail-{}", std::process::id()));
        // The rename fails: the target is a folder that is not empty.
        let path = dir.join("checkpoint.bin");
        std::fs::create_dir_all(path.join("inside")).unwrap();
        let err = write_atomic(&path, &sample()).unwrap_err().to_string();
        assert!(err.contains("checkpoint.bin"), "{err}");
        assert!(!path.with_extension("tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_lock_on_one_folder_is_refused_and_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("contrast-lock-{}", std::process::id()));
        let first = RunLock::acquire(&dir).unwrap();
        let err = RunLock::acquire(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("process {}", std::process::id())) && err.contains("in use"),
            "{err}"
        );
        drop(first);
        let again = RunLock::acquire(&dir).unwrap();
        assert!(again.path().ends_with(".lock"));
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn panics_in_a_decoder_become_errors() {
        let r: Result<(), String> = catch_decode_panic(|| panic!("vec record of length 3"));
        assert_eq!(r.unwrap_err(), "vec record of length 3");
        assert_eq!(catch_decode_panic(|| 7).unwrap(), 7);
    }

    #[test]
    fn damage_is_reported_not_panicked() {
        let p = Path::new("ckpt.bin");
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            let err = decode(&bytes[..cut], p).unwrap_err().to_string();
            assert!(err.contains("ckpt.bin"), "{err}");
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 0x40;
        let err = decode(&flipped, p).unwrap_err().to_string();
        assert!(
            err.contains("checksum") || err.contains("truncated"),
            "{err}"
        );
        let mut old = bytes.clone();
        old[12..16].copy_from_slice(&2u32.to_le_bytes());
        let err = decode(&old, p).unwrap_err().to_string();
        assert!(
            err.contains("version 2") && err.contains("new --out"),
            "{err}"
        );
        let err = decode(b"PK\x03\x04 a zip file, not ours", p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("magic"), "{err}");
    }
}
