//! The object store behind the state store, the `files` target and the dirty-data archive: a
//! local directory (object_store's `LocalFileSystem`) or an S3-compatible bucket
//! (`s3://bucket/prefix`, object_store's `AmazonS3`), behind one handle.
//!
//! Calls are made synchronously from worker threads. Local-file operations of `object_store`
//! run inline when no async runtime is present, so no runtime thread sits between a worker and
//! its disk; every local write is atomic (temporary file + rename), so a reader or a restarted
//! run never sees half a file. Remote calls run on a small runtime of their own (one thread,
//! `ferry-store`), which the calling thread waits for, so a call from inside another runtime's
//! task cannot stall that runtime. An S3 put is atomic too; a rename there is a copy and a
//! delete (done again in full if interrupted).

use bytes::Bytes;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;

/// Runs a local store future to completion on this thread. Called inside a tokio runtime
/// context (the engine's preparation runs in `block_on`), `object_store` moves file operations
/// to tokio's blocking pool and polls the join handle, which obeys tokio's cooperative budget:
/// once the enclosing task has spent it, the handle answers `Pending` and wakes itself at once,
/// forever, under this non-tokio executor. `unconstrained` exempts the store call.
fn run_local<F: Future>(f: F) -> F::Output {
    futures::executor::block_on(tokio::task::unconstrained(f))
}

/// The runtime remote store calls run on.
fn store_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ferry-store")
            .enable_all()
            .build()
            .expect("the store runtime starts")
    })
}

/// Runs a remote store future on the store runtime and waits for it on this thread.
fn run_remote<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    store_runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().expect("a store call finishes")
}

/// Errors of the object store. All are transient from the engine's point of view (retry or
/// restart), except a missing object, which callers check with [`Store::get`] returning `None`,
/// and a location that cannot be opened at all.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The root directory cannot be created or opened.
    #[error("cannot open the store at {root}: {source}")]
    Open {
        /// The root given.
        root: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An S3 location cannot be used as given.
    #[error("cannot open the store at {location}: {reason}")]
    Location {
        /// The location given.
        location: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An operation failed.
    #[error("store {op} {path}: {source}")]
    Op {
        /// What was attempted.
        op: &'static str,
        /// The object.
        path: String,
        /// The cause.
        source: object_store::Error,
    },
}

/// The piece size of a multipart upload, and the size above which a remote put uses one.
pub const MULTIPART_PART: usize = 8 << 20;

/// A handle to one store root; cheap to clone and shareable across threads.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// The local root directory; `None` for a remote store.
    local: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens (creating if needed) a local directory as a store.
    pub fn open_local(root: &str) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open { root: root.to_string(), source };
        std::fs::create_dir_all(root).map_err(open_err)?;
        let abs = std::fs::canonicalize(root).map_err(open_err)?;
        let fs = LocalFileSystem::new_with_prefix(&abs)
            .map_err(|e| open_err(std::io::Error::other(e.to_string())))?
            .with_automatic_cleanup(true);
        Ok(Store { inner: Arc::new(fs), local: Some(abs) })
    }

    /// Opens a location: `s3://bucket[/prefix]` as an S3-compatible store with `s3`'s settings
    /// (the rest from the `AWS_*` environment variables), anything else as a local directory.
    pub fn open(location: &str, s3: &S3Config) -> Result<Store, StoreError> {
        let Some(rest) = location.strip_prefix("s3://") else {
            return Self::open_local(location);
        };
        let bad = |reason: String| StoreError::Location { location: location.to_string(), reason };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket: write s3://<bucket>/<prefix>".into()));
        }
        use object_store::aws::AmazonS3Builder;
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let env_endpoint = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"].iter().find_map(|k| std::env::var(k).ok());
        if let Some(e) = s3.endpoint.as_ref().or(env_endpoint.as_ref()) {
            // An http:// endpoint (a MinIO on the LAN, say) is plain HTTP by choice.
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if let Some(r) = &s3.region {
            // Left out: AWS_REGION, else object_store's default, us-east-1.
            b = b.with_region(r);
        }
        if let Some(k) = &s3.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &s3.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        b = b.with_virtual_hosted_style_request(s3.virtual_hosted_style);
        let s3store = b.build().map_err(|e| bad(crate::secrets::redact(&e.to_string())))?;
        let inner: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
            "" => Arc::new(s3store),
            p => Arc::new(object_store::prefix::PrefixStore::new(s3store, p)),
        };
        Ok(Store { inner, local: None })
    }

    /// Runs a store call: inline for a local directory, on the store runtime for a remote one.
    fn call<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(Arc<dyn ObjectStore>) -> F,
    ) -> T {
        let f = f(self.inner.clone());
        if self.local.is_some() {
            run_local(f)
        } else {
            let start = std::time::Instant::now();
            let r = run_remote(f);
            tracing::trace!(op, micros = start.elapsed().as_micros() as u64, "remote store call");
            r
        }
    }

    /// Whether this is a local directory (where a rename is atomic).
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// Writes an object atomically: it appears whole or not at all. On a remote store an
    /// object above [`MULTIPART_PART`] goes up as a multipart upload in pieces of that size,
    /// visible only once the upload completes.
    pub fn put(&self, path: &str, data: impl Into<Bytes>) -> Result<(), StoreError> {
        let (p, data) = (Path::from(path), data.into());
        crate::runtime::fault::store_write(path);
        let multipart = self.local.is_none() && data.len() > MULTIPART_PART;
        let r = self.call("put", move |s| async move {
            if !multipart {
                return s.put(&p, PutPayload::from_bytes(data)).await.map(|_| ());
            }
            let upload = s.put_multipart(&p).await?;
            let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART);
            for piece in data.chunks(MULTIPART_PART) {
                w.wait_for_capacity(2).await?;
                w.write(piece);
            }
            w.finish().await.map(|_| ())
        });
        r.map_err(|source| StoreError::Op { op: "put", path: path.into(), source })
    }

    /// Writes an object only if none is there (the store's conditional put: create-new on a
    /// disk, `If-None-Match: *` on S3); `false` if one was.
    pub fn put_new(&self, path: &str, data: impl Into<Bytes>) -> Result<bool, StoreError> {
        let (p, data) = (Path::from(path), data.into());
        crate::runtime::fault::store_write(path);
        let r = self.call("put", move |s| async move {
            let opts = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
            s.put_opts(&p, PutPayload::from_bytes(data), opts).await.map(|_| ())
        });
        match r {
            Ok(()) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(source) => Err(StoreError::Op { op: "put", path: path.into(), source }),
        }
    }

    /// The names one level below `prefix` (its "folders" and objects), sorted.
    pub fn list_names(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        if self.local.as_ref().is_some_and(|root| !root.join(prefix).exists()) {
            return Ok(Vec::new());
        }
        let p = Path::from(prefix);
        let listed = self
            .call("list", |s| async move { s.list_with_delimiter(Some(&p)).await })
            .map_err(|source| StoreError::Op { op: "list", path: prefix.into(), source })?;
        let mut out: Vec<String> = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|l| l.filename().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Reads an object; `None` if it does not exist.
    pub fn get(&self, path: &str) -> Result<Option<Bytes>, StoreError> {
        let p = Path::from(path);
        match self.call("get", |s| async move { s.get(&p).await?.bytes().await }) {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(StoreError::Op { op: "get", path: path.into(), source }),
        }
    }

    /// Lists object paths under a prefix (recursively), sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        if self.local.as_ref().is_some_and(|root| !root.join(prefix).exists()) {
            return Ok(Vec::new());
        }
        let p = Path::from(prefix);
        let mut out: Vec<String> = self
            .call("list", |s| async move { s.list(Some(&p)).collect::<Vec<_>>().await })
            .into_iter()
            .map(|r| r.map(|m| m.location.to_string()))
            .collect::<Result<_, _>>()
            .map_err(|source| StoreError::Op { op: "list", path: prefix.into(), source })?;
        out.sort();
        Ok(out)
    }

    /// Renames an object (atomic on a local disk; a copy and a delete on S3), replacing the
    /// destination.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        crate::runtime::fault::store_write(to);
        let (f, t) = (Path::from(from), Path::from(to));
        self.call("rename", |s| async move { s.rename(&f, &t).await }).map_err(|source| StoreError::Op {
            op: "rename",
            path: from.into(),
            source,
        })
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub fn delete(&self, path: &str) -> Result<(), StoreError> {
        crate::runtime::fault::store_write(path);
        let p = Path::from(path);
        match self.call("delete", |s| async move { s.delete(&p).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StoreError::Op { op: "delete", path: path.into(), source }),
        }
    }

    /// Deletes every object under a prefix.
    pub fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let all = self.list(prefix)?;
        for p in &all {
            self.delete(p)?;
        }
        if let Some(root) = &self.local {
            let _ = std::fs::remove_dir_all(root.join(prefix));
        }
        Ok(all.len())
    }
}

/// An S3-compatible object store (AWS S3, MinIO, Ceph RGW, OSS, COS, …). A field left out is
/// taken from the standard environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), as AWS tools do.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The service's URL, e.g. `http://127.0.0.1:9000` for a MinIO; default: AWS S3 of the
    /// region. An `http://` endpoint allows unencrypted HTTP.
    pub endpoint: Option<String>,
    /// The region; default `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key; write `${env:NAME}` to keep it out of the plan file.
    pub secret_access_key: Option<String>,
    /// Address buckets as `<bucket>.<endpoint>` (virtual-hosted style) instead of
    /// `<endpoint>/<bucket>` (path style, the default, which S3-compatible services accept).
    pub virtual_hosted_style: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_rename_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_local(dir.path().to_str().unwrap()).unwrap();
        s.put("a/b/1.json", "x").unwrap();
        s.put("a/b/2.json", "y").unwrap();
        assert_eq!(s.get("a/b/1.json").unwrap().unwrap(), Bytes::from("x"));
        assert!(s.get("a/none").unwrap().is_none());
        assert_eq!(s.list("a").unwrap(), vec!["a/b/1.json", "a/b/2.json"]);
        s.rename("a/b/2.json", "a/c/2.json").unwrap();
        assert_eq!(s.list("a/c").unwrap(), vec!["a/c/2.json"]);
        assert_eq!(s.delete_prefix("a").unwrap(), 2);
        assert!(s.list("a").unwrap().is_empty());
        assert!(s.list("never").unwrap().is_empty());
    }

    #[test]
    fn an_s3_location_needs_a_bucket_and_a_plain_path_is_a_local_directory() {
        let none = S3Config::default();
        let err = Store::open("s3://", &none).unwrap_err().to_string();
        assert!(err.contains("no bucket") && err.contains("s3://<bucket>/<prefix>"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let local = Store::open(dir.path().join("a").to_str().unwrap(), &none).unwrap();
        local.put("x/1", "v").unwrap();
        assert!(dir.path().join("a/x/1").exists());
        let remote = Store::open("s3://bucket/some/prefix", &S3Config { region: Some("eu-west-1".into()), ..none });
        assert!(remote.is_ok(), "{:?}", remote.err());
    }
}
