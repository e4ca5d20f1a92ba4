//! Free space on a file system, so that a run can refuse a disk too full for its checkpoints
//! before it trains rather than at the end of its first epoch.

use std::path::Path;

/// Bytes available to this (unprivileged) process on the file system holding `path`; `None`
/// where it cannot be known (a path that does not exist, a platform without `statvfs`).
pub fn available_space(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statvfs.
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return None;
        }
        #[allow(clippy::useless_conversion)]
        Some(u64::from(s.f_bavail).saturating_mul(u64::from(s.f_frsize)))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_folder_has_some_space_and_a_missing_path_none() {
        #[cfg(unix)]
        assert!(available_space(&std::env::temp_dir()).is_some_and(|b| b > 0));
        assert!(available_space(Path::new("/no/such/folder/anywhere")).is_none());
    }
}
