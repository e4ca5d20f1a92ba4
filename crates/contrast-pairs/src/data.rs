//! Image-caption pairs in memory: the images (decoded and resized once) and, per image, the
//! captions it may be paired with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use contrast_vision::{ImageDataset, ImageShape, decode_image};

use crate::{Error, PairsFormat, parse_pairs};

/// Images, their captions (each caption once), and which captions belong to which image.
#[derive(Debug, Clone)]
pub struct ImageCaptions {
    /// The images (labels are the classes for captions made from labels, else all 0).
    pub images: ImageDataset,
    /// Whether `images` carries real class labels (kNN and zero-shot need them).
    pub labelled: bool,
    /// Every distinct caption.
    pub captions: Vec<String>,
    /// For each image, the indices into `captions` it is paired with (at least one).
    pub caption_of: Vec<Vec<usize>>,
}

impl ImageCaptions {
    /// Captions made from class names: every template with `{}` replaced by the class name of
    /// the image's label (as CLIP's prompts are; the captions then say only the class).
    ///
    /// # Panics
    /// If `templates` is empty or a template lacks `{}`.
    pub fn from_labels(images: ImageDataset, templates: &[&str]) -> Self {
        assert!(
            !templates.is_empty(),
            "ImageCaptions::from_labels: no template"
        );
        assert!(
            templates.iter().all(|t| t.contains("{}")),
            "ImageCaptions::from_labels: every template needs a {{}} for the class name"
        );
        let per_class = class_prompts(images.class_names(), templates);
        let t = templates.len();
        let caption_of = images
            .labels()
            .iter()
            .map(|&l| (l as usize * t..(l as usize + 1) * t).collect())
            .collect();
        ImageCaptions {
            images,
            labelled: true,
            captions: per_class,
            caption_of,
        }
    }

    /// The images at `indices`, with their captions (re-indexed).
    pub fn subset(&self, indices: &[usize]) -> ImageCaptions {
        ImageCaptions {
            images: self.images.subset(indices),
            labelled: self.labelled,
            captions: self.captions.clone(),
            caption_of: indices
                .iter()
                .map(|&i| self.caption_of[i].clone())
                .collect(),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True without images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// `templates` filled with each class name, class by class: row `c * templates.len() + t` is
/// template `t` of class `c`.
pub fn class_prompts(class_names: &[String], templates: &[&str]) -> Vec<String> {
    class_names
        .iter()
        .flat_map(|c| templates.iter().map(move |t| t.replace("{}", c)))
        .collect()
}

/// Loads a pairs file (see [`parse_pairs`]) and its images, each decoded and resized to
/// `shape` once; relative image paths are resolved against `images_dir`. Rows naming the same
/// image give it several captions; identical captions are stored once.
///
/// # Errors
/// The errors of [`parse_pairs`], [`Error::Io`] when the file cannot be read, and
/// [`Error::Image`] naming the row of an image that is missing or cannot be decoded.
pub fn load_pairs(
    file: &Path,
    images_dir: &Path,
    shape: ImageShape,
    format: &PairsFormat,
) -> Result<ImageCaptions, Error> {
    let bytes = std::fs::read(file).map_err(|source| Error::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let rows = parse_pairs(&bytes, file, format)?;
    let mut image_index: HashMap<&str, usize> = HashMap::new();
    let mut caption_index: HashMap<&str, usize> = HashMap::new();
    let mut paths: Vec<(usize, PathBuf)> = Vec::new();
    let mut captions: Vec<String> = Vec::new();
    let mut caption_of: Vec<Vec<usize>> = Vec::new();
    for row in &rows {
        let next = paths.len();
        let i = *image_index.entry(row.image.as_str()).or_insert_with(|| {
            paths.push((row.line, images_dir.join(&row.image)));
            caption_of.push(Vec::new());
            next
        });
        let next = captions.len();
        let c = *caption_index
            .entry(row.caption.as_str())
            .or_insert_with(|| {
                captions.push(row.caption.clone());
                next
            });
        if !caption_of[i].contains(&c) {
            caption_of[i].push(c);
        }
    }
    // Grows as images decode: a bogus file with many rows fails at its first missing image,
    // not at an allocation sized by its row count.
    let mut pixels = Vec::new();
    for (line, path) in &paths {
        let bad = |reason: String| Error::Image {
            path: file.to_path_buf(),
            line: *line,
            image: path.clone(),
            reason,
        };
        if !path.is_file() {
            return Err(bad(format!(
                "not found (relative paths are resolved against {})",
                images_dir.display()
            )));
        }
        pixels.extend(decode_image(path, shape).map_err(|e| bad(e.to_string()))?);
    }
    let n = paths.len();
    let images = ImageDataset::new(pixels, vec![0; n], shape, vec!["image".into()])?;
    Ok(ImageCaptions {
        images,
        labelled: false,
        captions,
        caption_of,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> ImageShape {
        ImageShape {
            channels: 3,
            height: 4,
            width: 4,
        }
    }

    #[test]
    fn images_with_several_captions_and_a_missing_image() {
        let dir = std::env::temp_dir().join(format!("contrast-pairs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("img")).unwrap();
        for (name, v) in [("a.png", 10u8), ("b.png", 200)] {
            image::RgbImage::from_pixel(6, 5, image::Rgb([v, v, v]))
                .save(dir.join("img").join(name))
                .unwrap();
        }
        let tsv = dir.join("pairs.tsv");
        std::fs::write(
            &tsv,
            "filepath\ttitle\na.png\tA dark square.\nb.png\tA light square.\na.png\tSomething dark.\nb.png\tA light square.\n",
        )
        .unwrap();
        let p = load_pairs(&tsv, &dir.join("img"), shape(), &PairsFormat::default()).unwrap();
        assert_eq!((p.len(), p.captions.len()), (2, 3));
        assert_eq!(p.caption_of, vec![vec![0, 2], vec![1]]);
        assert!(p.images.image(1).iter().all(|&v| v == 200));
        std::fs::write(&tsv, "filepath\ttitle\na.png\tok\nmissing.png\tno\n").unwrap();
        let e = load_pairs(&tsv, &dir.join("img"), shape(), &PairsFormat::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pairs.tsv:3: image") && e.contains("missing.png"),
            "{e}"
        );
        std::fs::write(dir.join("img/bad.png"), b"not a png").unwrap();
        std::fs::write(&tsv, "filepath\ttitle\nbad.png\tno\n").unwrap();
        let e = load_pairs(&tsv, &dir.join("img"), shape(), &PairsFormat::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pairs.tsv:2: image") && e.contains("bad.png"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn captions_from_labels_follow_the_classes() {
        let images = ImageDataset::new(
            vec![0; 3 * 48],
            vec![1, 0, 1],
            shape(),
            vec!["cat".into(), "dog".into()],
        )
        .unwrap();
        let p = ImageCaptions::from_labels(images, &["a {}", "the {} here"]);
        assert_eq!(
            p.captions,
            ["a cat", "the cat here", "a dog", "the dog here"]
        );
        assert_eq!(p.caption_of, vec![vec![2, 3], vec![0, 1], vec![2, 3]]);
        let s = p.subset(&[1]);
        assert_eq!((s.len(), s.caption_of.clone()), (1, vec![vec![0, 1]]));
    }
}
