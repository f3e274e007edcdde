//! Small metadata files (recovery point, leader epochs) written atomically and protected by a CRC32,
//! so a torn or flipped checkpoint is noticed and ignored rather than trusted.
//!
//! ```text
//! offset  size  field
//!      0     4  crc32 (IEEE, crc32fast) of the bytes from offset 4 to the end
//!      4     2  format version (1)
//!      6     …  payload (owner-defined)
//! ```
//! Written to `<name>.tmp`, fsync'd, renamed over `<name>`, then the directory is fsync'd.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

const VERSION: u16 = 1;

/// Atomically replaces `path` with a checkpoint holding `payload`.
pub fn write(path: &Path, payload: &[u8]) -> Result<()> {
    let mut body = Vec::with_capacity(6 + payload.len());
    body.extend_from_slice(&[0; 4]);
    body.extend_from_slice(&VERSION.to_be_bytes());
    body.extend_from_slice(payload);
    let crc = crc32fast::hash(&body[4..]);
    body[..4].copy_from_slice(&crc.to_be_bytes());

    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).io_context("create checkpoint", &tmp)?;
    f.write_all(&body).io_context("write checkpoint", &tmp)?;
    f.sync_all().io_context("fsync checkpoint", &tmp)?;
    drop(f);
    fs::rename(&tmp, path).io_context("rename checkpoint", path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Reads a checkpoint: `Ok(None)` when it is missing or fails its CRC (logged once here); the
/// caller then falls back to a full recovery, which is always safe.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    let body = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).io_context("read checkpoint", path),
    };
    if body.len() < 6 {
        tracing::warn!(path = %path.display(), "checkpoint is truncated; ignoring it");
        return Ok(None);
    }
    let stored = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    if crc32fast::hash(&body[4..]) != stored {
        tracing::warn!(path = %path.display(), "checkpoint fails its CRC32; ignoring it");
        return Ok(None);
    }
    if u16::from_be_bytes([body[4], body[5]]) != VERSION {
        tracing::warn!(path = %path.display(), "checkpoint has an unknown version; ignoring it");
        return Ok(None);
    }
    Ok(Some(body[6..].to_vec()))
}

/// fsyncs a directory so that renames, creations and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .io_context("fsync directory", dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cp");
        assert_eq!(read(&p).unwrap(), None);
        write(&p, b"hello").unwrap();
        assert_eq!(read(&p).unwrap().as_deref(), Some(&b"hello"[..]));
        assert!(!p.with_extension("tmp").exists());
        let mut raw = fs::read(&p).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        fs::write(&p, &raw).unwrap();
        assert_eq!(read(&p).unwrap(), None);
        fs::write(&p, [1, 2]).unwrap();
        assert_eq!(read(&p).unwrap(), None);
    }
}
