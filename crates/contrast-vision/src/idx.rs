//! The IDX format of MNIST and Fashion-MNIST, plain or gzipped.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::read_file;
use crate::{Error, ImageDataset, ImageShape, Splits};

/// The Fashion-MNIST class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// An IDX array of unsigned bytes: its dimensions and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (`[n, rows, cols]` for images, `[n]` for labels).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Gunzips `bytes` if they start with the gzip magic number, else returns them unchanged.
///
/// The inflated size is bounded by what the IDX header inside announces (read first), so a
/// small file that inflates to gigabytes (a "gzip bomb") is refused after the announced size,
/// not after it has filled memory.
///
/// # Errors
/// [`Error::Format`] when the gzip stream is corrupt or truncated, or inflates past the size
/// its IDX header announces.
pub fn maybe_gunzip(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>, Error> {
    if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Ok(bytes);
    }
    let corrupt = |e: std::io::Error| Error::format(path, 0, format!("corrupt gzip stream: {e}"));
    let mut stream = flate2::read::GzDecoder::new(&bytes[..]);
    // The magic number, then one 4-byte size per dimension.
    let mut out = Vec::new();
    (&mut stream)
        .take(4)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() == 4 && out[3] <= 4 {
        (&mut stream)
            .take(4 * out[3] as u64)
            .read_to_end(&mut out)
            .map_err(corrupt)?;
    }
    let announced = (out.len() >= 4 && out.len() == 4 + 4 * out[3] as usize)
        .then(|| {
            out[4..].chunks(4).try_fold(1u64, |acc, d| {
                acc.checked_mul(u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as u64)
            })
        })
        .flatten()
        .and_then(|n| n.checked_add(out.len() as u64));
    // Without a readable header, parse_idx will reject the bytes: inflate only what it needs to
    // say why.
    let limit = announced.unwrap_or(out.len() as u64);
    let before = out.len() as u64;
    (&mut stream)
        .take(limit - before + 1)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() as u64 > limit && announced.is_some() {
        return Err(Error::format(
            path,
            0,
            format!(
                "the gzip stream inflates past the {limit} bytes its IDX header announces (a \
                 damaged or malicious file)"
            ),
        ));
    }
    Ok(out)
}

/// Parses an IDX file's bytes (already gunzipped). Only the unsigned-byte type (0x08) is
/// accepted, which is what MNIST-like datasets use.
///
/// # Errors
/// [`Error::Truncated`] when the header or the data is shorter than announced,
/// [`Error::Format`] for a wrong magic number, type, dimension count, or trailing bytes.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray, Error> {
    let truncated = |what: &str, offset: usize, expected: usize| Error::Truncated {
        path: path.to_path_buf(),
        what: what.to_string(),
        offset: offset as u64,
        expected: expected as u64,
        found: bytes.len().saturating_sub(offset) as u64,
    };
    if bytes.len() < 4 {
        return Err(truncated("the IDX magic number", 0, 4));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::format(
            path,
            0,
            format!(
                "IDX magic must start with two zero bytes, found {:#04x} {:#04x} (not an IDX file?)",
                bytes[0], bytes[1]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(Error::format(
            path,
            2,
            format!(
                "IDX type {:#04x} is not supported (expected 0x08, unsigned bytes)",
                bytes[2]
            ),
        ));
    }
    let ndims = bytes[3] as usize;
    if ndims == 0 || ndims > 4 {
        return Err(Error::format(
            path,
            3,
            format!(
                "IDX files of images or labels have 1 to 4 dimensions, this one claims {ndims}"
            ),
        ));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(truncated("the IDX dimension header", 4, 4 * ndims));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::format(path, 4, format!("dimensions {dims:?} overflow")))?;
    let data = &bytes[header..];
    if data.len() < total {
        return Err(truncated(
            &format!("IDX data of shape {dims:?}"),
            header,
            total,
        ));
    }
    if data.len() > total {
        return Err(Error::format(
            path,
            (header + total) as u64,
            format!(
                "{} bytes follow the {total} that the shape {dims:?} announces",
                data.len() - total
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: data.to_vec(),
    })
}

/// Reads an IDX file from disk (gzipped or not).
///
/// # Errors
/// As [`parse_idx`], plus [`Error::Io`].
pub fn read_idx(path: &Path) -> Result<IdxArray, Error> {
    let bytes = maybe_gunzip(read_file(path)?, path)?;
    parse_idx(&bytes, path)
}

/// Reads an image file and a label file into a dataset, checking that they agree.
///
/// # Errors
/// As [`read_idx`], plus [`Error::Format`] when the image file is not `[n, rows, cols]`, the
/// label file not `[n]`, the counts differ, or a label is not below `class_names.len()`.
pub fn load_idx_pair(
    images: &Path,
    labels: &Path,
    class_names: &[&str],
) -> Result<ImageDataset, Error> {
    let img = read_idx(images)?;
    let lab = read_idx(labels)?;
    if img.dims.len() != 3 {
        return Err(Error::format(
            images,
            3,
            format!(
                "an image file has 3 dimensions [n, rows, cols], found {:?}",
                img.dims
            ),
        ));
    }
    if lab.dims.len() != 1 {
        return Err(Error::format(
            labels,
            3,
            format!("a label file has 1 dimension [n], found {:?}", lab.dims),
        ));
    }
    if img.dims[0] != lab.dims[0] {
        return Err(Error::format(
            labels,
            4,
            format!(
                "{} labels for the {} images of {}",
                lab.dims[0],
                img.dims[0],
                images.display()
            ),
        ));
    }
    if let Some(pos) = lab
        .data
        .iter()
        .position(|&l| l as usize >= class_names.len())
    {
        return Err(Error::format(
            labels,
            8 + pos as u64,
            format!(
                "label {} is not below the {} classes",
                lab.data[pos],
                class_names.len()
            ),
        ));
    }
    let shape = ImageShape {
        channels: 1,
        height: img.dims[1],
        width: img.dims[2],
    };
    ImageDataset::new(
        img.data,
        lab.data.iter().map(|&l| l as u32).collect(),
        shape,
        class_names.iter().map(|s| s.to_string()).collect(),
    )
}

/// Finds `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stem: &str) -> Result<PathBuf, Error> {
    for name in [stem.to_string(), format!("{stem}.gz")] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::NotFound {
        what: format!("{stem}[.gz] in {}", dir.display()),
        hint: "pass the folder that holds the four MNIST-format files (train-images-idx3-ubyte, \
               train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte)"
            .into(),
    })
}

/// Loads the train and test splits of an MNIST-format folder (Fashion-MNIST, MNIST,
/// KMNIST...), files gzipped or not.
///
/// # Errors
/// [`Error::NotFound`] when a file is missing, and the errors of [`load_idx_pair`].
pub fn load_mnist_format(dir: &Path, class_names: &[&str]) -> Result<Splits, Error> {
    let train = load_idx_pair(
        &find(dir, "train-images-idx3-ubyte")?,
        &find(dir, "train-labels-idx1-ubyte")?,
        class_names,
    )?;
    let test_images = find(dir, "t10k-images-idx3-ubyte")?;
    let test = load_idx_pair(
        &test_images,
        &find(dir, "t10k-labels-idx1-ubyte")?,
        class_names,
    )?;
    if test.shape() != train.shape() {
        let s = |d: &ImageDataset| format!("{}x{}", d.shape().height, d.shape().width);
        return Err(Error::format(
            &test_images,
            8,
            format!(
                "its images are {}, the training images ({}) are {}: both splits must have one \
                 shape",
                s(&test),
                find(dir, "train-images-idx3-ubyte")?.display(),
                s(&train)
            ),
        ));
    }
    Ok(Splits { train, test })
}

/// Encodes an array as IDX bytes (for tests and for writing subsets).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("mem.idx")
    }

    #[test]
    fn round_trip_plain_and_gzipped() {
        let bytes = encode_idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let a = parse_idx(&bytes, p()).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 12);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(parse_idx(&maybe_gunzip(gz, p()).unwrap(), p()).unwrap(), a);
    }

    #[test]
    fn truncated_data_names_offset_and_sizes() {
        let mut bytes = encode_idx(&[2, 2, 3], &[0; 12]);
        bytes.truncate(bytes.len() - 5);
        let msg = parse_idx(&bytes, p()).unwrap_err().to_string();
        assert!(msg.contains("truncated"), "{msg}");
        assert!(msg.contains("offset 16"), "{msg}");
        assert!(
            msg.contains("needs 12 bytes") && msg.contains("found 7"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_magic_type_and_trailing_bytes_are_named() {
        let msg = parse_idx(b"\x89PNG\r\n", p()).unwrap_err().to_string();
        assert!(msg.contains("magic"), "{msg}");
        let msg = parse_idx(&[0, 0, 0x0d, 1, 0, 0, 0, 0], p())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("type 0x0d"), "{msg}");
        let mut bytes = encode_idx(&[3], &[1, 2, 3]);
        bytes.push(9);
        let msg = parse_idx(&bytes, p()).unwrap_err().to_string();
        assert!(msg.contains("1 bytes follow"), "{msg}");
        let msg = maybe_gunzip(vec![0x1f, 0x8b, 8, 0, 1, 2], p())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("corrupt gzip"), "{msg}");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_size_its_header_announces() {
        // Announces 2 bytes of data, inflates to 64 MiB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &encode_idx(&[2], &[1, 1])).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            std::io::Write::write_all(&mut gz, &zeros).unwrap();
        }
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 1 << 20, "{}", gz.len());
        let msg = maybe_gunzip(gz, p()).unwrap_err().to_string();
        assert!(msg.contains("inflates past the 10 bytes"), "{msg}");
    }

    #[test]
    fn splits_of_different_shapes_are_refused_naming_both_files() {
        let dir = std::env::temp_dir().join(format!("contrast-idx-shape-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
        // The same byte count: 1x4 and 2x2 images.
        w("train-images-idx3-ubyte", encode_idx(&[2, 1, 4], &[0; 8]));
        w("train-labels-idx1-ubyte", encode_idx(&[2], &[0, 1]));
        w("t10k-images-idx3-ubyte", encode_idx(&[2, 2, 2], &[0; 8]));
        w("t10k-labels-idx1-ubyte", encode_idx(&[2], &[0, 1]));
        let msg = load_mnist_format(&dir, &["a", "b"])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("t10k-images-idx3-ubyte")
                && msg.contains("train-images-idx3-ubyte")
                && msg.contains("are 2x2")
                && msg.contains("are 1x4"),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pair_checks_counts_and_labels() {
        let dir = std::env::temp_dir().join(format!("contrast-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("i");
        let lab = dir.join("l");
        std::fs::write(&img, encode_idx(&[2, 1, 1], &[7, 8])).unwrap();
        std::fs::write(&lab, encode_idx(&[2], &[0, 1])).unwrap();
        let ds = load_idx_pair(&img, &lab, &["a", "b"]).unwrap();
        assert_eq!(
            (ds.len(), ds.image(1), ds.labels()),
            (2, &[8u8][..], &[0u32, 1][..])
        );
        std::fs::write(&lab, encode_idx(&[2], &[0, 5])).unwrap();
        let msg = load_idx_pair(&img, &lab, &["a", "b"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("offset 9") && msg.contains("label 5"), "{msg}");
        std::fs::write(&lab, encode_idx(&[3], &[0, 1, 1])).unwrap();
        let msg = load_idx_pair(&img, &lab, &["a", "b"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("3 labels for the 2 images"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_idx(&bytes, p());
            let _ = maybe_gunzip(bytes, p());
        }

        #[test]
        fn corrupted_valid_files_never_panic(flip in 0usize..40, value: u8, cut in 0usize..40) {
            let mut bytes = encode_idx(&[2, 3, 4], &[5; 24]);
            let i = flip % bytes.len();
            bytes[i] = value;
            bytes.truncate(bytes.len() - cut.min(bytes.len()));
            let _ = parse_idx(&bytes, p());
        }
    }
}
