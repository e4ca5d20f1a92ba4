//! NumPy's `.npy` format (version 1.0) for the arrays a run hands to other tools: embeddings and
//! labels that `numpy.load` reads as they are (the graph jobs' `--save-embeddings`, read by
//! `benches/peers/svm_sklearn.py`).

use std::path::Path;

use crate::Error;

/// The values of an array, with the element type NumPy is told.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NpyData<'a> {
    /// `<f4`.
    F32(&'a [f32]),
    /// `<u4`.
    U32(&'a [u32]),
    /// `<i4`.
    I32(&'a [i32]),
}

impl NpyData<'_> {
    fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::U32(v) => v.len(),
            NpyData::I32(v) => v.len(),
        }
    }

    fn descr(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "<f4",
            NpyData::U32(_) => "<u4",
            NpyData::I32(_) => "<i4",
        }
    }
}

/// The bytes of a C-ordered `.npy` file of `data` with `shape`: the magic string, version 1.0,
/// a header padded with spaces to a multiple of 64 bytes and ended by a newline, then the values
/// little-endian.
///
/// # Panics
/// If `shape`'s product is not `data`'s length.
pub(crate) fn npy_bytes(shape: &[usize], data: NpyData<'_>) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "npy: shape {shape:?} does not hold {} values",
        data.len()
    );
    let dims: String = match shape {
        [one] => format!("{one},"),
        _ => shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({dims}), }}",
        data.descr()
    );
    // magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match data {
        NpyData::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::U32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    out
}

/// Writes [`npy_bytes`] to `path`.
///
/// # Errors
/// `Io` naming the path.
pub(crate) fn write_npy(path: &Path, shape: &[usize], data: NpyData<'_>) -> Result<(), Error> {
    std::fs::write(path, npy_bytes(shape, data)).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_values_follow_it() {
        let bytes = npy_bytes(&[2, 3], NpyData::F32(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.5]));
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(bytes.len(), 10 + hlen + 24);
        assert_eq!(&bytes[bytes.len() - 4..], &5.5f32.to_le_bytes());

        let labels = npy_bytes(&[3], NpyData::U32(&[0, 1, 2]));
        let hlen = u16::from_le_bytes([labels[8], labels[9]]) as usize;
        assert!(
            std::str::from_utf8(&labels[10..10 + hlen])
                .unwrap()
                .contains("'<u4'")
        );
        assert!(
            std::str::from_utf8(&labels[10..10 + hlen])
                .unwrap()
                .contains("(3,)")
        );
    }

    #[test]
    #[should_panic(expected = "does not hold")]
    fn a_shape_that_does_not_fit_panics() {
        npy_bytes(&[2, 2], NpyData::U32(&[1, 2, 3]));
    }
}
