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
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&encode(data)).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
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
