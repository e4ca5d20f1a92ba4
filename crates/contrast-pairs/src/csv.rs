//! The pairs file: one image path and one caption per row, in columns named by a header
//! (open_clip's `CsvDataset` convention: `--csv-img-key`, `--csv-caption-key`,
//! `--csv-separator`, tab-separated by default).

use std::path::Path;

use contrast_text::csv_records;

use crate::Error;

/// How a pairs file is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairsFormat {
    /// The field separator (open_clip's default: a tab).
    pub separator: char,
    /// The header name of the image-path column (open_clip's default: `filepath`).
    pub image_key: String,
    /// The header name of the caption column (open_clip's default: `title`).
    pub caption_key: String,
}

impl Default for PairsFormat {
    fn default() -> Self {
        PairsFormat {
            separator: '\t',
            image_key: "filepath".into(),
            caption_key: "title".into(),
        }
    }
}

/// One row of a pairs file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRow {
    /// 1-based line of the row.
    pub line: usize,
    /// The image path as written (relative paths are resolved against an images folder).
    pub image: String,
    /// The caption, trimmed.
    pub caption: String,
}

/// Parses a pairs file: a header naming the columns, then one image path and one caption per
/// row (RFC 4180 quoting with `format.separator`; other columns are ignored). An image may
/// appear on several rows, one per caption (COCO Captions has five per image).
///
/// # Errors
/// [`Error::Empty`] for a file without rows; [`Error::Format`] naming the line for text that is
/// not UTF-8, a header without one of the two keys (listing the columns it has), a row with
/// too few fields, an empty image path or an empty caption.
pub fn parse_pairs(bytes: &[u8], path: &Path, format: &PairsFormat) -> Result<Vec<PairRow>, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        Error::format(path, line, "not UTF-8 text")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = csv_records(text, path, format.separator)?;
    let Some(((header_line, header), rows)) = records.split_first() else {
        return Err(Error::Empty {
            path: path.to_path_buf(),
            reason: "the file is empty (expected a header, then one image and caption per row)"
                .into(),
        });
    };
    let column = |key: &str| {
        header.iter().position(|h| h.trim() == key).ok_or_else(|| {
            Error::format(
                path,
                *header_line,
                format!(
                    "the header has no column `{key}` (columns: {}; separator {:?})",
                    header
                        .iter()
                        .map(|h| format!("`{}`", h.trim()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    format.separator
                ),
            )
        })
    };
    let (image_col, caption_col) = (column(&format.image_key)?, column(&format.caption_key)?);
    if rows.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
            reason: "a header but no pair".into(),
        });
    }
    let needed = image_col.max(caption_col) + 1;
    rows.iter()
        .map(|(line, fields)| {
            if fields.len() < needed {
                return Err(Error::format(
                    path,
                    *line,
                    format!(
                        "{} field(s), the header's columns need {needed}",
                        fields.len()
                    ),
                ));
            }
            let image = fields[image_col].trim();
            let caption = fields[caption_col].trim();
            if image.is_empty() {
                return Err(Error::format(path, *line, "the image path is empty"));
            }
            if caption.is_empty() {
                return Err(Error::format(path, *line, "the caption is empty"));
            }
            Ok(PairRow {
                line: *line,
                image: image.to_string(),
                caption: caption.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("pairs.tsv")
    }

    #[test]
    fn rows_by_header_names_with_quotes_and_extra_columns() {
        let tsv =
            "\u{feff}id\ttitle\tfilepath\n1\t\"A cat,\tsitting\"\tcat.png\n2\tA dog.\tdog.png\n";
        let rows = parse_pairs(tsv.as_bytes(), p(), &PairsFormat::default()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].caption, "A cat,\tsitting");
        assert_eq!((rows[1].line, rows[1].image.as_str()), (3, "dog.png"));
        let csv = PairsFormat {
            separator: ',',
            image_key: "image".into(),
            caption_key: "caption".into(),
        };
        let rows = parse_pairs(b"image,caption\na.jpg,\"x, y\"\n", p(), &csv).unwrap();
        assert_eq!(rows[0].caption, "x, y");
    }

    #[test]
    fn errors_name_the_line_and_what_is_wrong() {
        let f = PairsFormat::default();
        let e = parse_pairs(b"path\ttext\na\tb\n", p(), &f)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pairs.tsv:1") && e.contains("no column `filepath`") && e.contains("`path`"),
            "{e}"
        );
        let e = parse_pairs(b"filepath\ttitle\na.png\t \n", p(), &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pairs.tsv:2: the caption is empty"), "{e}");
        let e = parse_pairs(b"filepath\ttitle\na.png\tok\nb.png\n", p(), &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains(":3: 1 field(s)"), "{e}");
        let e = parse_pairs(b"filepath\ttitle\n", p(), &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no pair"), "{e}");
        let e = parse_pairs(b"filepath\ttitle\nok\tfine\n\xff\tx\n", p(), &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains(":3: not UTF-8"), "{e}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_pairs(&bytes, p(), &PairsFormat::default());
        }
    }
}
