//! The object store behind the state store and the `files` target: a local directory today
//! (object_store's `LocalFileSystem`), S3-compatible storage through the same trait later.
//!
//! Calls are made synchronously from worker threads: local-file operations of `object_store` run
//! inline when no async runtime is present, so no runtime thread sits between a worker and its
//! disk. Every write is atomic (temporary file + rename), so a reader or a restarted run never
//! sees half a file.

use bytes::Bytes;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;

/// Runs a store future to completion on this thread. Called inside a tokio runtime context
/// (the engine's preparation runs in `block_on`), `object_store` moves file operations to
/// tokio's blocking pool and polls the join handle, which obeys tokio's cooperative budget:
/// once the enclosing task has spent it, the handle answers `Pending` and wakes itself at once,
/// forever, under this non-tokio executor. `unconstrained` exempts the store call.
fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(tokio::task::unconstrained(f))
}

/// Errors of the object store. All are transient from the engine's point of view (retry or
/// restart), except a missing object, which callers check with [`Store::get`] returning `None`.
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

/// A handle to one store root; cheap to clone and shareable across threads.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<LocalFileSystem>,
    root: std::path::PathBuf,
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
        Ok(Store { inner: Arc::new(fs), root: abs })
    }

    /// The absolute root directory.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Writes an object atomically.
    pub fn put(&self, path: &str, data: impl Into<Bytes>) -> Result<(), StoreError> {
        let p = Path::from(path);
        run(self.inner.put(&p, PutPayload::from_bytes(data.into()))).map(|_| ()).map_err(|source| StoreError::Op {
            op: "put",
            path: path.into(),
            source,
        })
    }

    /// Reads an object; `None` if it does not exist.
    pub fn get(&self, path: &str) -> Result<Option<Bytes>, StoreError> {
        let p = Path::from(path);
        match run(async { self.inner.get(&p).await?.bytes().await }) {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(StoreError::Op { op: "get", path: path.into(), source }),
        }
    }

    /// Lists object paths under a prefix (recursively), sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let p = Path::from(prefix);
        if !self.root.join(prefix).exists() {
            return Ok(Vec::new());
        }
        let mut out: Vec<String> = run(self.inner.list(Some(&p)).collect::<Vec<_>>())
            .into_iter()
            .map(|r| r.map(|m| m.location.to_string()))
            .collect::<Result<_, _>>()
            .map_err(|source| StoreError::Op { op: "list", path: prefix.into(), source })?;
        out.sort();
        Ok(out)
    }

    /// Renames an object (atomic on a local disk), replacing the destination.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        run(self.inner.rename(&Path::from(from), &Path::from(to))).map_err(|source| StoreError::Op {
            op: "rename",
            path: from.into(),
            source,
        })
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub fn delete(&self, path: &str) -> Result<(), StoreError> {
        match run(self.inner.delete(&Path::from(path))) {
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
        let _ = std::fs::remove_dir_all(self.root.join(prefix));
        Ok(all.len())
    }
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
}
