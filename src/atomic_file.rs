//! Whole-file writes that are never seen half-done.
//!
//! Takes a path, the bytes and a Unix mode; writes a temp file beside the target with that
//! mode, fsyncs it, renames it over the target and fsyncs the directory, so after a crash the
//! path holds either the old or the new content. Fails with the I/O error of the step that
//! failed; the target is then unchanged.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Mode for files that hold secrets (keys, tokens): owner read/write only.
pub const PRIVATE: u32 = 0o600;
/// Mode for files anyone on the host may read (certificates, public keys).
pub const PUBLIC: u32 = 0o644;

pub fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_with_the_mode_and_replaces_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.pem");
        write(&path, b"one", PRIVATE).unwrap();
        write(&path, b"two", PRIVATE).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
