//! The bottom layer every other part of a run may use, and which uses nothing above the state
//! store: the shared I/O runtimes, the run's metrics, the dirty-data archive, the typed failure
//! of a run ([`failure`]), the stop request ([`control`]), fault injection points for tests
//! ([`fault`]) and the live status line.
//!
//! ```text
//!  connectors, engine, catalog ──► runtime (this) ──► state ──► store ──► secrets
//! ```

pub mod control;
pub mod dirty;
pub mod failure;
pub mod fault;
pub mod metrics;
pub mod status_line;

pub use control::{RunControl, StopMode};
pub use dirty::DirtyArchive;
pub use failure::{Failure, TaskError};
pub use metrics::Metrics;

/// The shared I/O runtime of the source readers (two threads): rows reach the operators through
/// bounded channels, so a slow dataflow blocks these threads, never the other way round.
pub fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| two_threads("ferry-io"))
}

/// The runtime of the database writers' I/O tasks. It is their own: the source readers send
/// into bounded channels from the shared I/O runtime and may block its threads while the
/// workers wait for a commit, which must still make progress.
pub fn sink_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| two_threads("ferry-sink"))
}

/// Runs `fut` on a new thread `name` with a single-threaded runtime of its own: a reader whose
/// connection task shares its thread hands data over without waking another thread per
/// message.
pub fn run_on_own_thread<F>(name: &str, fut: F) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name(name.to_string()).spawn(move || rt.block_on(fut))?;
    Ok(())
}

/// A single-threaded runtime for one thread's sessions (a `ferry verify` reader): its
/// connection tasks run while that thread waits on them, so a result is handed over without
/// waking another thread per network read.
pub fn own_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn two_threads(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("the {name} runtime cannot start: {e}"))
}

/// Microseconds since the Unix epoch, by the wall clock.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}
