//! The binary version of STL-10 (`stl10_binary`): 96x96 colour images stored column-major.

use std::path::Path;

use crate::error::read_file;
use crate::{Error, ImageDataset, ImageShape, Splits};

/// The STL-10 class names, in label order (labels on disk are 1-based).
pub const STL10_CLASSES: [&str; 10] = [
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
];

const SIDE: usize = 96;
const IMAGE_BYTES: usize = 3 * SIDE * SIDE;

/// Converts STL-10's on-disk images (each channel stored column by column) to `[c, h, w]`.
///
/// # Errors
/// [`Error::Truncated`] when the file is not a whole number of images, [`Error::Format`] when
/// it is empty.
pub fn parse_stl10_images(bytes: &[u8], path: &Path) -> Result<Vec<u8>, Error> {
    if bytes.is_empty() {
        return Err(Error::format(path, 0, "the file is empty"));
    }
    if !bytes.len().is_multiple_of(IMAGE_BYTES) {
        let whole = bytes.len() / IMAGE_BYTES;
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            what: format!("image {whole} ({IMAGE_BYTES} bytes each)"),
            offset: (whole * IMAGE_BYTES) as u64,
            expected: IMAGE_BYTES as u64,
            found: (bytes.len() % IMAGE_BYTES) as u64,
        });
    }
    let mut out = vec![0u8; bytes.len()];
    for (src, dst) in bytes
        .chunks_exact(SIDE * SIDE)
        .zip(out.chunks_exact_mut(SIDE * SIDE))
    {
        for x in 0..SIDE {
            for y in 0..SIDE {
                dst[y * SIDE + x] = src[x * SIDE + y];
            }
        }
    }
    Ok(out)
}

/// Reads STL-10 label bytes (1 to 10) as 0-based labels.
///
/// # Errors
/// [`Error::Format`] for a label outside 1..=10.
pub fn parse_stl10_labels(bytes: &[u8], path: &Path) -> Result<Vec<u32>, Error> {
    bytes
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if (1..=10).contains(&l) {
                Ok(l as u32 - 1)
            } else {
                Err(Error::format(
                    path,
                    i as u64,
                    format!("label {l} is not in 1..=10"),
                ))
            }
        })
        .collect()
}

fn split(dir: &Path, name: &str) -> Result<ImageDataset, Error> {
    let xp = dir.join(format!("{name}_X.bin"));
    let yp = dir.join(format!("{name}_y.bin"));
    for p in [&xp, &yp] {
        if !p.is_file() {
            return Err(Error::NotFound {
                what: p.display().to_string(),
                hint: "pass the stl10_binary folder (https://cs.stanford.edu/~acoates/stl10/)"
                    .into(),
            });
        }
    }
    let pixels = parse_stl10_images(&read_file(&xp)?, &xp)?;
    let labels = parse_stl10_labels(&read_file(&yp)?, &yp)?;
    if labels.len() * IMAGE_BYTES != pixels.len() {
        return Err(Error::format(
            &yp,
            0,
            format!(
                "{} labels for {} images",
                labels.len(),
                pixels.len() / IMAGE_BYTES
            ),
        ));
    }
    let shape = ImageShape {
        channels: 3,
        height: SIDE,
        width: SIDE,
    };
    ImageDataset::new(
        pixels,
        labels,
        shape,
        STL10_CLASSES.iter().map(|s| s.to_string()).collect(),
    )
}

/// Loads the labelled train (5,000) and test (8,000) splits of STL-10 from `stl10_binary`
/// (or its parent).
///
/// # Errors
/// [`Error::NotFound`] for a missing file, and the parse errors above.
pub fn load_stl10(dir: &Path) -> Result<Splits, Error> {
    let dir = if dir.join("train_X.bin").is_file() {
        dir.to_path_buf()
    } else {
        dir.join("stl10_binary")
    };
    Ok(Splits {
        train: split(&dir, "train")?,
        test: split(&dir, "test")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn column_major_becomes_row_major() {
        let mut bytes = vec![0u8; IMAGE_BYTES];
        // Channel 1, column x = 2, row y = 5.
        bytes[SIDE * SIDE + 2 * SIDE + 5] = 200;
        let out = parse_stl10_images(&bytes, Path::new("x")).unwrap();
        assert_eq!(out[SIDE * SIDE + 5 * SIDE + 2], 200);
        assert_eq!(out.iter().filter(|&&v| v != 0).count(), 1);
    }

    #[test]
    fn bad_sizes_and_labels() {
        let msg = parse_stl10_images(&[0; 100], Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("truncated") && msg.contains("found 100"),
            "{msg}"
        );
        let msg = parse_stl10_labels(&[1, 10, 0], Path::new("y"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("offset 2") && msg.contains("label 0"), "{msg}");
        assert_eq!(
            parse_stl10_labels(&[1, 10], Path::new("y")).unwrap(),
            vec![0, 9]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_stl10_images(&bytes, Path::new("x"));
            let _ = parse_stl10_labels(&bytes, Path::new("y"));
        }
    }
}
