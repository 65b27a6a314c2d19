//! What the service keeps per task, in its state store (a local directory, or `s3://…`):
//!
//! ```text
//! <state>/tasks/<task>/task.json         the record: state, newest version, history, edit lock
//! <state>/tasks/<task>/versions/<n>.yaml the plan of version n, written once, never changed
//! <state>/tasks/<task>/alerts.json       the alert incidents and their deliveries
//! ```
//!
//! and, on local disk (`<state>` itself for a local state, else `--work`):
//!
//! ```text
//! <work>/tasks/<task>/work/              the run's directory: plan.yaml (the version it runs),
//!                                        run.log, metrics.json, and the run's state store
//!                                        (`./.ferry` unless the plan names another)
//! <work>/tasks/<task>/check/             the plans the checks compile
//! ```
//!
//! A version is created with the store's conditional put (create-new), so two editors that
//! both read version n cannot both write n + 1: the second gets a conflict (the
//! compare-and-swap of `If-Match`). A record is written whole (a local write goes through a
//! temporary file and a rename; an S3 put is atomic).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A task's state as the service shows it (F10.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    /// Saved, never started.
    Initialized,
    /// Its run is reading and writing (the phase is in the run's status).
    Running,
    /// A stop was asked; the run ends at its next checkpoint (savepoint) or at once (cancel).
    Stopping,
    /// Stopped with a savepoint: a resume goes on from it.
    Paused,
    /// Stopped by force (cancel), or after the service lost the run while stopping: a resume
    /// goes on from the last checkpoint.
    Stopped,
    /// A bounded source was read to its end and everything committed.
    Finished,
    /// Ended by an error a restart cannot fix, or past `errors.max_restarts`.
    Failed,
    /// A state change is in flight: no other action is accepted.
    Operating,
    /// The pre-submit checks are running (`POST …/check`).
    Checking,
    /// The last check found an error: a start is refused until a check passes (or the plan
    /// is edited).
    CheckError,
}

impl TaskStatus {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Initialized => "initialized",
            TaskStatus::Running => "running",
            TaskStatus::Stopping => "stopping",
            TaskStatus::Paused => "paused",
            TaskStatus::Stopped => "stopped",
            TaskStatus::Finished => "finished",
            TaskStatus::Failed => "failed",
            TaskStatus::Operating => "operating",
            TaskStatus::Checking => "checking",
            TaskStatus::CheckError => "check-error",
        }
    }
}

/// One state change, as the history lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// When, microseconds since the Unix epoch.
    pub at_micros: i64,
    /// The state entered.
    pub state: TaskStatus,
    /// Why (the action, the run's end, its error).
    pub note: String,
}

/// The edit lock: who holds it and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditLock {
    /// The holder's name, as it asked for the lock.
    pub holder: String,
    /// When it expires, microseconds since the Unix epoch.
    pub expires_micros: i64,
}

/// How a stop was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopKind {
    /// At the next checkpoint: everything read is committed first.
    Savepoint,
    /// Now: the run is dropped; a resume goes on from the last checkpoint.
    Cancel,
}

/// A task's record (`task.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task's name (the plan's `task`).
    pub task: String,
    /// The newest version.
    pub version: u32,
    /// The version the current or last run ran (none before the first start).
    #[serde(default)]
    pub run_version: Option<u32>,
    /// Where the task is.
    pub state: TaskStatus,
    /// The stop asked for while `stopping`.
    #[serde(default)]
    pub stop: Option<StopKind>,
    /// The last error of a run (secrets masked).
    #[serde(default)]
    pub last_error: Option<String>,
    /// The edit lock, if one was taken (it may have expired).
    #[serde(default)]
    pub lock: Option<EditLock>,
    /// Every state change, oldest first.
    pub history: Vec<Transition>,
    /// The state before a check (`checking`, `check-error`): where a passing check, or an
    /// edit, returns to.
    #[serde(default)]
    pub before_check: Option<TaskStatus>,
    /// Warnings acknowledged by a client (check names), for the newest version.
    #[serde(default)]
    pub acknowledged: Vec<String>,
    /// Under `runtime.resources: by-phase`: the snapshot is committed, runs take the
    /// streaming worker count (cleared by a start from the default position).
    #[serde(default)]
    pub streaming_phase: bool,
    /// Who saved each version after the first (the lock holder that sent it, if any) and
    /// when: `(version, holder, micros)`.
    #[serde(default)]
    pub authors: Vec<(u32, Option<String>, i64)>,
}

impl TaskRecord {
    /// A new task at version 1.
    pub fn new(task: &str) -> TaskRecord {
        let mut r = TaskRecord {
            task: task.to_string(),
            version: 1,
            run_version: None,
            state: TaskStatus::Initialized,
            stop: None,
            last_error: None,
            lock: None,
            history: Vec::new(),
            before_check: None,
            acknowledged: Vec::new(),
            streaming_phase: false,
            authors: Vec::new(),
        };
        r.enter(TaskStatus::Initialized, "submitted (version 1)");
        r
    }

    /// Enters `state`, noting why in the history.
    pub fn enter(&mut self, state: TaskStatus, note: &str) {
        self.state = state;
        self.history.push(Transition { at_micros: crate::runtime::now_micros(), state, note: note.to_string() });
    }

    /// The live edit lock's holder (none, or expired: none).
    pub fn lock_holder(&self, now_micros: i64) -> Option<&str> {
        self.lock.as_ref().filter(|l| l.expires_micros > now_micros).map(|l| l.holder.as_str())
    }
}

/// Errors of the service's own records.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A record that does not parse.
    #[error("{path}: not a task record: {source}")]
    Bad {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The version exists already (another editor wrote it first).
    #[error("version {0} exists already")]
    VersionTaken(u32),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io { path: path.display().to_string(), source }
}

/// The service's records (in a state store: a local directory or `s3://…`) and its runs'
/// local working directories.
#[derive(Debug, Clone)]
pub struct Records {
    store: crate::store::Store,
    work_root: PathBuf,
}

impl Records {
    /// Opens the state store `location` (a directory, created if needed, or `s3://bucket/prefix`
    /// with the `AWS_*` environment's settings); runs work under `work_root`.
    pub fn open(location: &str, work_root: &Path) -> Result<Records, RecordError> {
        let store = crate::store::Store::open(location, &crate::store::S3Config::default())?;
        std::fs::create_dir_all(work_root).map_err(io(work_root))?;
        Ok(Records { store, work_root: work_root.to_path_buf() })
    }

    /// A task's local folder (its run directory and check files).
    pub fn dir(&self, task: &str) -> PathBuf {
        self.work_root.join("tasks").join(task)
    }

    /// A task's run directory (the child's working directory).
    pub fn work_dir(&self, task: &str) -> PathBuf {
        self.dir(task).join("work")
    }

    fn path(task: &str, name: &str) -> String {
        format!("tasks/{task}/{name}")
    }

    /// Every task's record, by name.
    pub fn load_all(&self) -> Result<Vec<TaskRecord>, RecordError> {
        let mut out = Vec::new();
        for task in self.store.list_names("tasks")? {
            let path = Self::path(&task, "task.json");
            // A task folder without a record: a submission that did not finish.
            if let Some(data) = self.store.get(&path)? {
                out.push(serde_json::from_slice(&data).map_err(|source| RecordError::Bad { path, source })?);
            }
        }
        out.sort_by(|a: &TaskRecord, b| a.task.cmp(&b.task));
        Ok(out)
    }

    /// Writes a task's record (whole or not at all).
    pub fn save(&self, r: &TaskRecord) -> Result<(), RecordError> {
        let data = serde_json::to_vec_pretty(r).expect("a record serializes");
        Ok(self.store.put(&Self::path(&r.task, "task.json"), data)?)
    }

    /// Writes version `n` of a task's plan; fails with [`RecordError::VersionTaken`] if it
    /// exists (versions are immutable: the store's conditional put).
    pub fn put_version(&self, task: &str, n: u32, yaml: &str) -> Result<(), RecordError> {
        let path = Self::path(task, &format!("versions/{n}.yaml"));
        if self.store.put_new(&path, yaml.as_bytes().to_vec())? {
            Ok(())
        } else {
            Err(RecordError::VersionTaken(n))
        }
    }

    /// Version `n` of a task's plan.
    pub fn version(&self, task: &str, n: u32) -> Result<Option<String>, RecordError> {
        let b = self.store.get(&Self::path(task, &format!("versions/{n}.yaml")))?;
        Ok(b.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Another document of a task's (`alerts.json`), if written.
    pub fn get_doc(&self, task: &str, name: &str) -> Result<Option<Vec<u8>>, RecordError> {
        Ok(self.store.get(&Self::path(task, name))?.map(|b| b.to_vec()))
    }

    /// Writes another document of a task's.
    pub fn put_doc(&self, task: &str, name: &str, data: Vec<u8>) -> Result<(), RecordError> {
        Ok(self.store.put(&Self::path(task, name), data)?)
    }

    /// Deletes a task: its records and its local folder.
    pub fn delete(&self, task: &str) -> Result<(), RecordError> {
        self.store.delete_prefix(&format!("tasks/{task}/"))?;
        let dir = self.dir(task);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&dir)(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_written_once_and_a_second_writer_gets_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let r = Records::open(dir.path().to_str().unwrap(), dir.path()).unwrap();
        r.put_version("t", 2, "a").unwrap();
        assert!(matches!(r.put_version("t", 2, "b"), Err(RecordError::VersionTaken(2))));
        assert_eq!(r.version("t", 2).unwrap().as_deref(), Some("a"));
        assert_eq!(r.version("t", 3).unwrap(), None);
    }

    #[test]
    fn records_round_trip_and_list_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let r = Records::open(dir.path().to_str().unwrap(), dir.path()).unwrap();
        let mut b = TaskRecord::new("b");
        b.enter(TaskStatus::Running, "started");
        r.save(&b).unwrap();
        r.save(&TaskRecord::new("a")).unwrap();
        let all = r.load_all().unwrap();
        assert_eq!(all.iter().map(|t| t.task.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(all[1], b);
        assert_eq!(all[1].history.len(), 2);
    }

    #[test]
    fn an_expired_lock_has_no_holder() {
        let mut t = TaskRecord::new("t");
        t.lock = Some(EditLock { holder: "ann".into(), expires_micros: 100 });
        assert_eq!(t.lock_holder(99), Some("ann"));
        assert_eq!(t.lock_holder(100), None);
    }
}
