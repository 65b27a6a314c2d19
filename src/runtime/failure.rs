//! How a run fails. Every operator, reader task and writer reports its failure into the run's
//! one [`Failure`] slot (the first report wins) and stops; the worker loop sees the slot, drops
//! the dataflow, and the task decides by the error's class:
//!
//! - [`TaskError::Transient`]: a server went away, a connection dropped, the state store did
//!   not answer — the task restarts from its last checkpoint, with backoff, up to
//!   `errors.max_restarts` times;
//! - [`TaskError::Definite`]: the plan's policy refused a change (`error`), the source lost the
//!   position the task needs, the data cannot be read by this build — restarting would fail the
//!   same way, so the task stops `failed` with the cause.
//!
//! Bad *rows* are neither: they go to the dirty-data archive and the run goes on.

use std::sync::{Arc, Mutex};

/// Why a run failed, by what a restart can do about it. Messages are masked (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// A restart from the last checkpoint may succeed.
    #[error("{0}")]
    Transient(String),
    /// A restart would fail the same way: the task stops.
    #[error("{0}")]
    Definite(String),
}

impl TaskError {
    /// A transient failure (restart), its message masked.
    pub fn transient(msg: impl std::fmt::Display) -> Self {
        TaskError::Transient(crate::secrets::redact(&msg.to_string()))
    }

    /// A definite failure (the task stops), its message masked.
    pub fn definite(msg: impl std::fmt::Display) -> Self {
        TaskError::Definite(crate::secrets::redact(&msg.to_string()))
    }

    /// Whether a restart may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, TaskError::Transient(_))
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            TaskError::Transient(m) | TaskError::Definite(m) => m,
        }
    }
}

/// The run's failure slot, shared by every worker, operator and I/O task of one process.
#[derive(Debug, Clone, Default)]
pub struct Failure(Arc<Mutex<Option<TaskError>>>);

impl Failure {
    /// Records `e` unless a failure was recorded before (the first cause is the one reported).
    pub fn report(&self, e: TaskError) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            tracing::debug!(error = %e, transient = e.is_transient(), "run failure reported");
            *slot = Some(e);
        }
    }

    /// Whether the run has failed.
    pub fn is_set(&self) -> bool {
        self.0.lock().map(|f| f.is_some()).unwrap_or(true)
    }

    /// The failure, taken out of the slot.
    pub fn take(&self) -> Option<TaskError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reported_failure_is_the_one_kept() {
        let f = Failure::default();
        assert!(!f.is_set());
        f.report(TaskError::transient("binlog: connection lost"));
        f.report(TaskError::definite("later"));
        assert!(f.is_set());
        assert_eq!(f.take(), Some(TaskError::Transient("binlog: connection lost".into())));
        assert!(!f.is_set());
    }
}
