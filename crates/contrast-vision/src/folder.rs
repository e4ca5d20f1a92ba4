//! An image folder: one sub-folder per class, any PNG, JPEG or BMP files inside.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::{Error, ImageDataset, ImageShape};

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

fn list(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(dir, err)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    Ok(entries)
}

/// Decodes one image file and resizes it to `shape` (bilinear), as grayscale when
/// `shape.channels == 1`, else RGB.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Image`] when it cannot be decoded.
pub fn decode_image(path: &Path, shape: ImageShape) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_image_bytes(&bytes, path, shape)
}

/// [`decode_image`] of a file's bytes; `path` names the file in errors.
///
/// # Errors
/// [`Error::Image`] when the bytes cannot be decoded (including an image whose announced size
/// exceeds the decoder's default memory limit).
pub fn decode_image_bytes(bytes: &[u8], path: &Path, shape: ImageShape) -> Result<Vec<u8>, Error> {
    let img = image::load_from_memory(bytes).map_err(|e| Error::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (w, h) = (shape.width as u32, shape.height as u32);
    let img = if img.width() == w && img.height() == h {
        img
    } else {
        img.resize_exact(w, h, FilterType::Triangle)
    };
    let plane = shape.height * shape.width;
    let mut out = vec![0u8; shape.len()];
    if shape.channels == 1 {
        out.copy_from_slice(img.to_luma8().as_raw());
    } else {
        for (i, px) in img.to_rgb8().pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = px.0[c];
            }
        }
    }
    Ok(out)
}

/// Loads every image below `dir/<class>/`, classes in sorted order, each resized to `shape`.
///
/// # Errors
/// [`Error::NotFound`] when `dir` has no class sub-folder or no image, [`Error::Image`] naming
/// the first file that fails to decode, `InvalidConfig` for a shape with other than 1 or 3
/// channels.
pub fn load_image_folder(dir: &Path, shape: ImageShape) -> Result<ImageDataset, Error> {
    if shape.channels != 1 && shape.channels != 3 {
        return Err(contrast_core::Error::invalid_config(
            "channels",
            shape.channels,
            "image folders load as 1 (grayscale) or 3 (RGB) channels",
        )
        .into());
    }
    if !dir.is_dir() {
        return Err(Error::NotFound {
            what: dir.display().to_string(),
            hint: "pass a folder with one sub-folder of images per class".into(),
        });
    }
    let mut class_names = Vec::new();
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for class_dir in list(dir)?.into_iter().filter(|p| p.is_dir()) {
        let label = class_names.len() as u32;
        class_names.push(
            class_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        for file in list(&class_dir)? {
            let ext = file
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if file.is_file() && EXTENSIONS.contains(&ext.as_str()) {
                pixels.extend(decode_image(&file, shape)?);
                labels.push(label);
            }
        }
    }
    if labels.is_empty() {
        return Err(Error::NotFound {
            what: format!(
                "images (.png, .jpg, .bmp) in the class sub-folders of {}",
                dir.display()
            ),
            hint: "lay the folder out as <dir>/<class>/<image>".into(),
        });
    }
    ImageDataset::new(pixels, labels, shape, class_names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_with_two_classes_and_a_corrupt_file() {
        let dir = std::env::temp_dir().join(format!("contrast-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (class, value) in [("cats", 10u8), ("dogs", 200u8)] {
            std::fs::create_dir_all(dir.join(class)).unwrap();
            for i in 0..2 {
                let img = image::RgbImage::from_pixel(6, 4, image::Rgb([value, value / 2, i]));
                img.save(dir.join(class).join(format!("{i}.png"))).unwrap();
            }
        }
        std::fs::write(dir.join("cats/notes.txt"), "ignored").unwrap();
        let shape = ImageShape {
            channels: 3,
            height: 4,
            width: 6,
        };
        let ds = load_image_folder(&dir, shape).unwrap();
        assert_eq!(ds.len(), 4);
        assert_eq!(ds.class_names(), &["cats".to_string(), "dogs".to_string()]);
        assert_eq!(ds.labels(), &[0, 0, 1, 1]);
        // Red plane of a dog, green plane, blue plane of the second dog.
        assert_eq!(ds.image(2)[0], 200);
        assert_eq!(ds.image(2)[24], 100);
        assert_eq!(ds.image(3)[48], 1);

        let gray = load_image_folder(
            &dir,
            ImageShape {
                channels: 1,
                height: 2,
                width: 3,
            },
        )
        .unwrap();
        assert_eq!(gray.image(0).len(), 6);

        std::fs::write(dir.join("dogs/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let msg = load_image_folder(&dir, shape).unwrap_err().to_string();
        assert!(msg.contains("broken.png"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_or_missing_folder() {
        let shape = ImageShape {
            channels: 1,
            height: 2,
            width: 2,
        };
        let msg = load_image_folder(Path::new("/nonexistent/x"), shape)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("not found"), "{msg}");
        let dir = std::env::temp_dir().join(format!("contrast-empty-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a")).unwrap();
        let msg = load_image_folder(&dir, shape).unwrap_err().to_string();
        assert!(msg.contains("images"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
