//! The binary versions of CIFAR-10 and CIFAR-100 (`cifar-10-batches-bin`, `cifar-100-binary`).

use std::path::{Path, PathBuf};

use crate::error::read_file;
use crate::{Error, ImageDataset, ImageShape, Splits};

/// The CIFAR-10 class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const IMAGE_BYTES: usize = 3 * 32 * 32;
const SHAPE: ImageShape = ImageShape {
    channels: 3,
    height: 32,
    width: 32,
};

/// Parses CIFAR binary records: `label_bytes` leading bytes per record (1 for CIFAR-10; 2 for
/// CIFAR-100, coarse then fine), then 3072 bytes of red, green and blue 32x32 planes. The label
/// kept is the last of the leading bytes (the fine label for CIFAR-100).
///
/// Appends to `pixels` and `labels`.
///
/// # Errors
/// [`Error::Truncated`] when the file ends inside a record, [`Error::Format`] for a label not
/// below `num_classes`, or an empty file.
pub fn parse_cifar_records(
    bytes: &[u8],
    path: &Path,
    label_bytes: usize,
    num_classes: usize,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<(), Error> {
    let record = label_bytes + IMAGE_BYTES;
    if bytes.is_empty() {
        return Err(Error::format(path, 0, "the file is empty"));
    }
    let whole = bytes.len() / record;
    if !bytes.len().is_multiple_of(record) {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            what: format!("record {} ({record} bytes each)", whole),
            offset: (whole * record) as u64,
            expected: record as u64,
            found: (bytes.len() % record) as u64,
        });
    }
    pixels.reserve(whole * IMAGE_BYTES);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[label_bytes - 1] as usize;
        if label >= num_classes {
            return Err(Error::format(
                path,
                (i * record + label_bytes - 1) as u64,
                format!("label {label} of record {i} is not below the {num_classes} classes"),
            ));
        }
        labels.push(label as u32);
        pixels.extend_from_slice(&rec[label_bytes..]);
    }
    Ok(())
}

fn load_files(
    dir: &Path,
    files: &[&str],
    label_bytes: usize,
    classes: &[String],
) -> Result<ImageDataset, Error> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        let path = dir.join(f);
        if !path.is_file() {
            return Err(Error::NotFound {
                what: path.display().to_string(),
                hint: "pass the folder of the binary version (cifar-10-batches-bin or \
                       cifar-100-binary, from https://www.cs.toronto.edu/~kriz/cifar.html)"
                    .into(),
            });
        }
        let bytes = read_file(&path)?;
        parse_cifar_records(
            &bytes,
            &path,
            label_bytes,
            classes.len(),
            &mut pixels,
            &mut labels,
        )?;
    }
    ImageDataset::new(pixels, labels, SHAPE, classes.to_vec())
}

/// Looks for the files in `dir` itself or in the archive's usual sub-folder.
fn resolve(dir: &Path, sub: &str, probe: &str) -> PathBuf {
    if dir.join(probe).is_file() {
        dir.to_path_buf()
    } else {
        dir.join(sub)
    }
}

/// Loads CIFAR-10 (`data_batch_1.bin` ... `data_batch_5.bin`, `test_batch.bin`).
///
/// # Errors
/// [`Error::NotFound`] for a missing file, and the errors of [`parse_cifar_records`].
pub fn load_cifar10(dir: &Path) -> Result<Splits, Error> {
    let dir = resolve(dir, "cifar-10-batches-bin", "test_batch.bin");
    let classes: Vec<String> = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
    let train_files = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ];
    Ok(Splits {
        train: load_files(&dir, &train_files, 1, &classes)?,
        test: load_files(&dir, &["test_batch.bin"], 1, &classes)?,
    })
}

/// Loads CIFAR-100 with its 100 fine labels (`train.bin`, `test.bin`); class names are the
/// label numbers.
///
/// # Errors
/// As [`load_cifar10`].
pub fn load_cifar100(dir: &Path) -> Result<Splits, Error> {
    let dir = resolve(dir, "cifar-100-binary", "test.bin");
    let classes: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    Ok(Splits {
        train: load_files(&dir, &["train.bin"], 2, &classes)?,
        test: load_files(&dir, &["test.bin"], 2, &classes)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_and_errors() {
        let p = Path::new("data_batch_1.bin");
        let mut bytes = vec![3u8];
        bytes.extend((0..IMAGE_BYTES).map(|i| (i % 251) as u8));
        let (mut px, mut lb) = (Vec::new(), Vec::new());
        parse_cifar_records(&bytes, p, 1, 10, &mut px, &mut lb).unwrap();
        assert_eq!(
            (lb.clone(), px.len(), px[1024]),
            (vec![3], IMAGE_BYTES, (1024 % 251) as u8)
        );

        bytes.extend_from_slice(&[1, 2, 3]);
        let msg = parse_cifar_records(&bytes, p, 1, 10, &mut px, &mut lb)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("truncated") && msg.contains("offset 3073"),
            "{msg}"
        );
        assert!(
            msg.contains("needs 3073 bytes") && msg.contains("found 3"),
            "{msg}"
        );

        bytes.truncate(IMAGE_BYTES + 1);
        bytes[0] = 12;
        let msg = parse_cifar_records(&bytes, p, 1, 10, &mut px, &mut lb)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("label 12 of record 0"), "{msg}");
    }

    #[test]
    fn cifar100_keeps_fine_label() {
        let mut bytes = vec![4u8, 77];
        bytes.extend(std::iter::repeat_n(0u8, IMAGE_BYTES));
        let (mut px, mut lb) = (Vec::new(), Vec::new());
        parse_cifar_records(&bytes, Path::new("train.bin"), 2, 100, &mut px, &mut lb).unwrap();
        assert_eq!(lb, vec![77]);
    }

    #[test]
    fn missing_folder_says_where_to_get_it() {
        let msg = load_cifar10(Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("not found") && msg.contains("cifar"), "{msg}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_bytes_never_panic(len in 0usize..7000, label: u8, lb in 1usize..3) {
            let mut bytes = vec![0u8; len];
            if let Some(b) = bytes.first_mut() { *b = label; }
            let _ = parse_cifar_records(&bytes, Path::new("x"), lb, 10, &mut Vec::new(), &mut Vec::new());
        }
    }
}
