use std::path::PathBuf;

/// Errors shared by every `contrast` crate: configuration, device selection, shapes and files.
///
/// Each variant carries the value that was wrong so that its message alone tells a user what to
/// fix. Forward passes that receive tensors of the wrong shape panic instead (Burn's choice);
/// their `# Panics` sections say so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A device string names no backend known to `contrast`.
    #[error("unknown device `{name}`; valid choices in this build: {available}")]
    UnknownDevice {
        /// The string the user gave.
        name: String,
        /// The device names this build accepts, comma separated.
        available: String,
    },
    /// A device string names a backend that exists but was not compiled into this build.
    #[error(
        "device `{name}` needs the `{feature}` cargo feature, which this build lacks; valid choices in this build: {available}"
    )]
    BackendNotCompiled {
        /// The string the user gave.
        name: String,
        /// The cargo feature that would compile it in.
        feature: &'static str,
        /// The device names this build accepts, comma separated.
        available: String,
    },
    /// The backend is compiled in but its device cannot be used on this machine.
    #[error("device `{device}` is not usable on this machine: {reason}")]
    DeviceUnavailable {
        /// The device that was asked for.
        device: String,
        /// What went wrong, in one line.
        reason: String,
    },
    /// A configuration value is outside what the algorithm allows.
    #[error("invalid configuration: `{field}` = {value}: {reason}")]
    InvalidConfig {
        /// The field's name, as written in the config.
        field: &'static str,
        /// The offending value, formatted.
        value: String,
        /// What the value must satisfy.
        reason: String,
    },
    /// Two tensors or collections that must agree in size do not.
    #[error("shape mismatch in {op}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// The operation that checked the shapes.
        op: &'static str,
        /// The shape that was required.
        expected: String,
        /// The shape that was given.
        found: String,
    },
    /// A request would allocate more memory than allowed.
    #[error("{what} needs {requested_bytes} bytes, over the limit of {limit_bytes} bytes")]
    OutOfMemory {
        /// What was being allocated.
        what: String,
        /// Bytes the allocation needs.
        requested_bytes: u64,
        /// Bytes available or allowed.
        limit_bytes: u64,
    },
    /// A file was read but its content is not what it should be (a missing or mis-shaped tensor
    /// in a model checkpoint, an unknown architecture in its configuration).
    #[error("{path}: {reason}")]
    InvalidFile {
        /// The file (or folder) concerned.
        path: PathBuf,
        /// What was wrong, in one line.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

impl Error {
    /// Builds an [`Error::InvalidConfig`] from a field name, its value and the rule it breaks.
    pub fn invalid_config(
        field: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidConfig {
            field,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Checks that a float is finite and strictly positive, as temperatures and scales must be.
pub fn ensure_positive(field: &'static str, value: f64) -> Result<(), Error> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid_config(
            field,
            value,
            "must be finite and > 0",
        ))
    }
}

/// Checks that a float is finite and within `[lo, hi]`.
pub fn ensure_in_range(field: &'static str, value: f64, lo: f64, hi: f64) -> Result<(), Error> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid_config(
            field,
            value,
            format!("must be finite and within [{lo}, {hi}]"),
        ))
    }
}

/// Checks that a float is finite (not NaN, not infinite).
pub fn ensure_finite(field: &'static str, value: f64) -> Result<(), Error> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid_config(field, value, "must be finite"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_value() {
        let e = ensure_positive("temperature", 0.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: `temperature` = 0: must be finite and > 0"
        );
        assert!(ensure_positive("t", f64::NAN).is_err());
        assert!(ensure_positive("t", 0.5).is_ok());
        assert!(ensure_in_range("m", 1.5, 0.0, 1.0).is_err());
        assert!(ensure_in_range("m", 1.0, 0.0, 1.0).is_ok());
        assert!(ensure_finite("w", f64::INFINITY).is_err());
    }
}
