//! Fault injection points for the crash tests, in one place: each is read once per process from
//! its environment variable, and does nothing when the variable is unset.
//!
//! | point | variable | effect |
//! |---|---|---|
//! | [`Fault::ChunkDelay`] | `FERRY_FAULT_CHUNK_DELAY_MS` | each snapshot chunk read waits this long first (a kill lands mid-snapshot) |
//! | [`Fault::ManifestDelay`] | `FERRY_FAULT_MANIFEST_DELAY_MS` | the coordinator waits before each manifest (sinks commit epochs no manifest covers yet) |
//! | [`Fault::DdlCrash`] | `FERRY_FAULT_DDL_CRASH` | the process aborts after a target DDL ran, before its record |

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
}

impl Fault {
    fn variable(self) -> &'static str {
        match self {
            Fault::ChunkDelay => "FERRY_FAULT_CHUNK_DELAY_MS",
            Fault::ManifestDelay => "FERRY_FAULT_MANIFEST_DELAY_MS",
            Fault::DdlCrash => "FERRY_FAULT_DDL_CRASH",
        }
    }

    fn value(self) -> Option<&'static str> {
        static VALUES: OnceLock<[Option<String>; 3]> = OnceLock::new();
        let all = [Fault::ChunkDelay, Fault::ManifestDelay, Fault::DdlCrash];
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
