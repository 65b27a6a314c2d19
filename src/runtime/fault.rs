//! Fault injection points for the crash tests, in one place: each is read once per process from
//! its environment variable, and does nothing when the variable is unset.
//!
//! | point | variable | effect |
//! |---|---|---|
//! | [`Fault::ChunkDelay`] | `FERRY_FAULT_CHUNK_DELAY_MS` | each snapshot chunk read waits this long first (a kill lands mid-snapshot) |
//! | [`Fault::ManifestDelay`] | `FERRY_FAULT_MANIFEST_DELAY_MS` | the coordinator waits before each manifest (sinks commit epochs no manifest covers yet) |
//! | [`Fault::DdlCrash`] | `FERRY_FAULT_DDL_CRASH` | the process aborts after a target DDL ran, before its record |
//! | [`Fault::CreateDelay`] | `FERRY_FAULT_CREATE_DELAY_MS` | each target table created beside the load waits this long first (a kill lands while tables are created) |
//! | [`Fault::StoreCrash`] | `FERRY_FAULT_STORE_CRASH` | the process aborts before its n-th object write or delete (state store, files target, archive); `<n>:<text>` counts only those whose path contains `text` |

use std::sync::OnceLock;
use std::time::Duration;

/// A fault injection point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Delay before each snapshot chunk.
    ChunkDelay,
    /// Delay before each checkpoint manifest.
    ManifestDelay,
    /// Abort between a target DDL and its record.
    DdlCrash,
    /// Abort before the n-th write or delete of an object.
    StoreCrash,
    /// Delay before each target table created beside the load.
    CreateDelay,
}

impl Fault {
    fn variable(self) -> &'static str {
        match self {
            Fault::ChunkDelay => "FERRY_FAULT_CHUNK_DELAY_MS",
            Fault::ManifestDelay => "FERRY_FAULT_MANIFEST_DELAY_MS",
            Fault::DdlCrash => "FERRY_FAULT_DDL_CRASH",
            Fault::StoreCrash => "FERRY_FAULT_STORE_CRASH",
            Fault::CreateDelay => "FERRY_FAULT_CREATE_DELAY_MS",
        }
    }

    fn value(self) -> Option<&'static str> {
        static VALUES: OnceLock<[Option<String>; 5]> = OnceLock::new();
        let all = [Fault::ChunkDelay, Fault::ManifestDelay, Fault::DdlCrash, Fault::StoreCrash, Fault::CreateDelay];
        let values = VALUES.get_or_init(|| all.map(|f| std::env::var(f.variable()).ok()));
        values[all.iter().position(|f| *f == self).expect("listed")].as_deref()
    }

    /// Whether the point is armed.
    pub fn armed(self) -> bool {
        self.value().is_some()
    }

    /// The delay of a delay point, when armed with a number of milliseconds.
    pub fn delay(self) -> Option<Duration> {
        self.value().and_then(|v| v.parse().ok()).map(Duration::from_millis)
    }
}

/// A write or delete of an object is about to happen: with `FERRY_FAULT_STORE_CRASH=<n>` the
/// n-th one (counted from 1 in this process) aborts the process first, as a kill -9 would;
/// with `<n>:<text>` the n-th one whose path contains `text`.
pub fn store_write(path: &str) {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some(v) = Fault::StoreCrash.value() else { return };
    let (n, only) = match v.split_once(':') {
        Some((n, text)) => (n, Some(text)),
        None => (v, None),
    };
    let Ok(n) = n.parse::<u64>() else { return };
    if only.is_some_and(|t| !path.contains(t)) {
        return;
    }
    if COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == n {
        eprintln!("fault injection: aborting before store write {n} ({path})");
        std::process::abort();
    }
}
