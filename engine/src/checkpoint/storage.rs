//! Where checkpoints are kept: a small byte-store trait, its local
//! directory implementation, and [`open_storage`], which picks the local
//! directory or the object store ([`ObjectStorage`]) from a location.
//!
//! Paths are `/`-separated keys relative to the store's root
//! (`chk-00000012/manifest.json`). The one operation that must be atomic is
//! [`CheckpointStorage::put_atomic`], used for manifests: a reader sees the
//! whole old content or the whole new one, never a torn file. An object
//! store gives that for free (a PUT is atomic); a local directory gets it
//! from write-to-temp + fsync + rename + fsync of the directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::objects::ObjectStorage;
use crate::error::{Result, WeirError};

/// A byte store for checkpoint files. Calls are blocking: the runtime calls
/// them from tokio's blocking pool.
pub trait CheckpointStorage: Send + Sync + std::fmt::Debug {
    /// Writes `bytes` under `key` (durable when it returns).
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;

    /// Writes every `(key, bytes)`; all are durable when it returns (on
    /// error, some may be written). Default: one [`CheckpointStorage::put`]
    /// after the other; object stores write them concurrently.
    fn put_all(&self, items: Vec<(String, Vec<u8>)>) -> Result<()> {
        for (key, bytes) in items {
            self.put(&key, &bytes)?;
        }
        Ok(())
    }

    /// Writes `bytes` under `key` atomically: readers see all or nothing.
    fn put_atomic(&self, key: &str, bytes: &[u8]) -> Result<()>;

    /// Reads `key`; `None` if it does not exist.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// The names of the entries directly under `prefix` (a "directory").
    fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Removes `prefix` and everything under it (missing is fine).
    fn delete_prefix(&self, prefix: &str) -> Result<()>;

    /// Where the store is, for messages.
    fn describe(&self) -> String;
}

/// A checkpoint store in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// A store rooted at `root` (created when missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| WeirError::io(format!("creating {}", root.display()), e))?;
        Ok(Self { root })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Makes a rename or a new entry durable. Opening a directory for reading
    // and fsyncing it is the POSIX way; ignore platforms that refuse.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl CheckpointStorage for LocalStorage {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| WeirError::io(format!("creating {}", parent.display()), e))?;
        }
        let mut f = std::fs::File::create(&path)
            .map_err(|e| WeirError::io(format!("creating {}", path.display()), e))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| WeirError::io(format!("writing {}", path.display()), e))
    }

    fn put_atomic(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key);
        let tmp = path.with_extension("tmp");
        let tmp_key = tmp
            .strip_prefix(&self.root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("{key}.tmp"));
        self.put(&tmp_key, bytes)?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            WeirError::io(
                format!("renaming {} to {}", tmp.display(), path.display()),
                e,
            )
        })?;
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(WeirError::io(format!("reading {}", path.display()), e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = self.path(prefix);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(WeirError::io(format!("listing {}", dir.display()), e)),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let path = self.path(prefix);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(WeirError::io(format!("removing {}", path.display()), e)),
        }
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

/// Opens the store named by `location`: a local directory (a path or a
/// `file://` URL) or an S3 prefix (`s3://bucket/prefix`, settings from the
/// `AWS_*` environment variables, see [`ObjectStorage`]).
pub fn open_storage(location: &str) -> Result<std::sync::Arc<dyn CheckpointStorage>> {
    open_storage_with_options(location, &[])
}

/// Like [`open_storage`], with object store options (`aws_endpoint`,
/// `aws_allow_http`, `aws_region`, …) that override the environment.
pub fn open_storage_with_options(
    location: &str,
    options: &[(String, String)],
) -> Result<std::sync::Arc<dyn CheckpointStorage>> {
    if let Some((scheme, rest)) = location.split_once("://") {
        return match scheme {
            "file" => Ok(std::sync::Arc::new(LocalStorage::new(rest)?)),
            "s3" | "s3a" => Ok(std::sync::Arc::new(ObjectStorage::open_s3(
                location, options,
            )?)),
            _ => Err(WeirError::Config(format!(
                "--checkpoint-dir {location}: '{scheme}://' checkpoint storage is not supported \
                 (a local directory, file:// or s3://BUCKET/PREFIX)"
            ))),
        };
    }
    Ok(std::sync::Arc::new(LocalStorage::new(location)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_store_round_trips_and_lists() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| WeirError::io("tempdir", e))?;
        let s = LocalStorage::new(dir.path())?;
        s.put("chk-1/a.state", b"abc")?;
        s.put_atomic("chk-1/manifest.json", b"{}")?;
        assert_eq!(s.get("chk-1/a.state")?.as_deref(), Some(&b"abc"[..]));
        assert_eq!(s.get("chk-2/x")?, None);
        assert_eq!(s.list("chk-1")?, vec!["a.state", "manifest.json"]);
        assert_eq!(s.list("")?, vec!["chk-1"]);
        s.delete_prefix("chk-1")?;
        assert!(s.list("")?.is_empty());
        assert!(open_storage("gs://bucket/x").is_err());
        assert!(open_storage("s3:///no-bucket").is_err());
        Ok(())
    }
}
