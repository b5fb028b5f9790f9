//! Checkpoints on an object store (`s3://bucket/prefix`), through the
//! `object_store` crate.
//!
//! Keys of the [`CheckpointStorage`] map to objects under the URL's prefix
//! (`chk-0000000012/manifest.json` → `s3://bucket/prefix/chk-0000000012/manifest.json`).
//! A PUT is atomic on S3 (a reader sees the whole old object or the whole
//! new one) and durable once acknowledged, so [`CheckpointStorage::put_atomic`]
//! is a plain PUT. What makes a checkpoint complete is the order the
//! coordinator follows: every state object is PUT (and acknowledged) before
//! the manifest.
//!
//! Settings come from the usual AWS variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` /
//! `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` for an S3-compatible service,
//! `AWS_ALLOW_HTTP=true` for a plain-HTTP one), overridden by explicit
//! options (`aws_endpoint`, `aws_allow_http`, `aws_region`, …: the keys of
//! `object_store`'s `AmazonS3ConfigKey`).
//!
//! [`CheckpointStorage`] is blocking (the runtime calls it from tokio's
//! blocking pool, the CLI from plain threads); the store is async, so each
//! call runs on a small runtime owned by the storage and the caller waits
//! for its result. That works from any thread, inside a tokio runtime or not.

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::storage::CheckpointStorage;
use crate::error::{Result, WeirError};

/// State objects of one checkpoint written at once.
const PARALLEL_PUTS: usize = 16;

/// A checkpoint store on an object store, under a key prefix.
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    root: Path,
    location: String,
    /// Runs the store's requests (taken out on drop, see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("location", &self.location)
            .finish()
    }
}

impl ObjectStorage {
    /// Opens `s3://bucket/prefix` (or `s3a://`), with settings from the
    /// `AWS_*` environment variables overridden by `options` (keys as in
    /// `object_store`'s `AmazonS3ConfigKey`, e.g. `aws_endpoint`,
    /// `aws_allow_http`, `aws_region`, `aws_access_key_id`).
    pub fn open_s3(location: &str, options: &[(String, String)]) -> Result<Self> {
        let url = url::Url::parse(location)
            .map_err(|e| WeirError::Config(format!("checkpoint storage {location}: {e}")))?;
        if !matches!(url.scheme(), "s3" | "s3a") || url.host_str().is_none_or(str::is_empty) {
            return Err(WeirError::Config(format!(
                "checkpoint storage {location}: expected s3://BUCKET/PREFIX"
            )));
        }
        let mut builder = AmazonS3Builder::from_env().with_url(location);
        for (k, v) in options {
            let key: AmazonS3ConfigKey = k.to_ascii_lowercase().parse().map_err(|_| {
                WeirError::Config(format!(
                    "checkpoint storage {location}: unknown S3 option '{k}'"
                ))
            })?;
            builder = builder.with_config(key, v.clone());
        }
        let store = builder
            .build()
            .map_err(|e| WeirError::Config(format!("checkpoint storage {location}: {e}")))?;
        let root = Path::from(url.path());
        Self::new(Arc::new(store), root, location.trim_end_matches('/'))
    }

    /// A store over any `object_store` implementation, under `root`;
    /// `location` names it in messages.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path, location: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weir-checkpoint-io")
            .enable_all()
            .build()
            .map_err(|e| WeirError::io("starting the checkpoint storage runtime", e))?;
        Ok(Self {
            store,
            root,
            location: location.to_string(),
            runtime: Some(runtime),
        })
    }

    fn path(&self, key: &str) -> Path {
        let key = Path::from(key);
        Path::from_iter(self.root.parts().chain(key.parts()))
    }

    /// Runs `fut` on the storage's runtime and waits for it.
    fn run<T, F>(&self, fut: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| WeirError::Internal("checkpoint storage used after drop".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| {
            WeirError::Internal(format!(
                "checkpoint storage {}: request task stopped",
                self.location
            ))
        })?
    }
}

impl Drop for ObjectStorage {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside async code; the
        // storage may be dropped there, so let its threads end on their own.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl CheckpointStorage for ObjectStorage {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let (store, path) = (self.store.clone(), self.path(key));
        let what = format!("writing {}/{key}", self.location);
        let payload = PutPayload::from(bytes.to_vec());
        self.run(async move {
            store
                .put(&path, payload)
                .await
                .map(|_| ())
                .map_err(|e| WeirError::external(what, e))
        })
    }

    fn put_all(&self, items: Vec<(String, Vec<u8>)>) -> Result<()> {
        let requests: Vec<_> = items
            .into_iter()
            .map(|(key, bytes)| {
                let what = format!("writing {}/{key}", self.location);
                (self.path(&key), PutPayload::from(bytes), what)
            })
            .collect();
        let store = self.store.clone();
        self.run(async move {
            futures::stream::iter(requests)
                .map(|(path, payload, what)| {
                    let store = store.clone();
                    async move {
                        store
                            .put(&path, payload)
                            .await
                            .map(|_| ())
                            .map_err(|e| WeirError::external(what, e))
                    }
                })
                .buffer_unordered(PARALLEL_PUTS)
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        })
    }

    fn put_atomic(&self, key: &str, bytes: &[u8]) -> Result<()> {
        // A PUT replaces an object atomically on S3 and S3-compatible stores.
        self.put(key, bytes)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let (store, path) = (self.store.clone(), self.path(key));
        let what = format!("reading {}/{key}", self.location);
        self.run(async move {
            match store.get(&path).await {
                Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
            .map_err(|e| WeirError::external(what, e))
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let (store, path) = (self.store.clone(), self.path(prefix));
        let what = format!("listing {}/{prefix}", self.location);
        let listed = self.run(async move {
            store
                .list_with_delimiter(Some(&path))
                .await
                .map_err(|e| WeirError::external(what, e))
        })?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let (store, path) = (self.store.clone(), self.path(prefix));
        let what = format!("deleting {}/{prefix}", self.location);
        self.run(async move {
            let locations = store.list(Some(&path)).map_ok(|m| m.location).boxed();
            let mut deleted = store.delete_stream(locations);
            while let Some(r) = deleted.next().await {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(WeirError::external(what, e)),
                }
            }
            Ok(())
        })
    }

    fn describe(&self) -> String {
        self.location.clone()
    }
}
