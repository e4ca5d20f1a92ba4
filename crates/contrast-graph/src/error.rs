use std::path::{Path, PathBuf};

/// What can go wrong while reading graph data or fetching it.
///
/// Format errors name the file and the 1-based line, so a user can open the file at the place
/// that is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused a read, a write or a directory listing.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line does not follow the file's format: a malformed number, a wrong field count, a
    /// blank line inside a per-node file, bytes that are not UTF-8.
    #[error("{path}:{line}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was expected and what was found.
        reason: String,
    },
    /// An edge or a split names a node that does not exist.
    #[error("{path}:{line}: node {node} does not exist (the dataset has {nodes} nodes{base})")]
    NoSuchNode {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The node as written in the file.
        node: i64,
        /// How many nodes there are.
        nodes: usize,
        /// How nodes are numbered (", numbered from 1").
        base: &'static str,
    },
    /// A TU `_graph_indicator` file is not sorted, or skips a graph id (a graph without nodes).
    #[error("{path}:{line}: {reason}")]
    GraphIndicator {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Which graph is out of order or has no node.
        reason: String,
    },
    /// A per-graph or per-node file has another number of rows than there are graphs or nodes.
    #[error("{path}: {found} {what} for {expected} {of}")]
    Count {
        /// The file.
        path: PathBuf,
        /// What the rows are ("labels", "attribute rows").
        what: &'static str,
        /// Rows found.
        found: usize,
        /// Rows expected.
        expected: usize,
        /// What they are for ("graphs", "nodes").
        of: &'static str,
    },
    /// The file holds nothing to load.
    #[error("{path}: {reason}")]
    Empty {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// A wheel is corrupt or lacks an expected member.
    #[error("cannot read archive {path}: {reason}")]
    Archive {
        /// The file.
        path: PathBuf,
        /// What went wrong, in one line.
        reason: String,
    },
    /// A dataset is not where it was looked for.
    #[error("{what} not found: {hint}")]
    NotFound {
        /// The dataset or file.
        what: String,
        /// How to get it.
        hint: String,
    },
    /// A configuration value is out of range (from `contrast-core`).
    #[error(transparent)]
    Core(#[from] contrast_core::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: &Path, line: usize, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_path_buf(),
            line,
            reason: reason.into(),
        }
    }

    pub(crate) fn archive(path: &Path, reason: impl Into<String>) -> Self {
        Error::Archive {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// The lines of a text file with their 1-based numbers, without `\n` / `\r\n` and without the
/// empty piece after a final newline; a leading byte-order mark is dropped.
///
/// # Errors
/// [`Error::Format`] naming the line where the UTF-8 encoding breaks.
pub(crate) fn lines<'a>(bytes: &'a [u8], path: &Path) -> Result<Vec<(usize, &'a str)>, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        Error::format(path, line, "not valid UTF-8")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return Ok(Vec::new());
    }
    Ok(text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .collect())
}

/// The non-blank lines of a file with one record per line (trimmed). Blank lines at the end
/// are dropped; a blank line before a record is an error, since line numbers are node or graph
/// ids in the TU format.
pub(crate) fn records<'a>(bytes: &'a [u8], path: &Path) -> Result<Vec<(usize, &'a str)>, Error> {
    let mut out: Vec<(usize, &str)> = lines(bytes, path)?
        .into_iter()
        .map(|(n, l)| (n, l.trim()))
        .collect();
    while out.last().is_some_and(|(_, l)| l.is_empty()) {
        out.pop();
    }
    if let Some((n, _)) = out.iter().find(|(_, l)| l.is_empty()) {
        return Err(Error::format(path, *n, "blank line"));
    }
    Ok(out)
}

/// Parses an integer field, naming it in the error.
pub(crate) fn int(field: &str, path: &Path, line: usize, what: &str) -> Result<i64, Error> {
    field.trim().parse::<i64>().map_err(|_| {
        Error::format(
            path,
            line,
            format!("{what} `{}` is not an integer", field.trim()),
        )
    })
}

/// Parses a float field, naming it in the error; NaN and infinities are refused.
pub(crate) fn float(field: &str, path: &Path, line: usize, what: &str) -> Result<f32, Error> {
    match field.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Error::format(
            path,
            line,
            format!("{what} `{}` is not a finite number", field.trim()),
        )),
    }
}
