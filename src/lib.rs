//! # ferry
//!
//! A whole-database real-time migration engine: one task (a plan file) copies every selected
//! table of a source into a target, first the existing rows, then every committed change,
//! through crashes and restarts. A plan compiles into one timely dataflow whose epochs are the
//! checkpoints (see `ARCHITECTURE.md`).
//!
//! ```text
//!  plan.yaml ─► plan::load (check; sections parsed by connectors) ─► plan::compile (catalog)
//!                                                                        │
//!        engine::Task ◄──────────────────────────────────────────────────┘
//!          └─ run: connector sources → transform → sinks (connector writers) → checkpoints
//! ```
//!
//! Layers, each importing only those below it:
//!
//! ```text
//!  main.rs (CLI)
//!  service     `ferry serve`: tasks with versions, runs as child processes, the REST API
//!  engine      task lifecycle, runs, the engine's operators (transform, sink, DDL stages)
//!  connectors  one folder per connector + the registry
//!  connector   the seam: SourceConnector, SinkConnector, SinkWriter, contexts
//!  catalog     target types, DDL, preview, table creation (through a TableAdmin)
//!  checkpoint  epochs, manifests, restore
//!  plan        plan files: check, discovery types, compile
//!  runtime     I/O runtimes, metrics, dirty archive, failures, stop requests, faults
//!  state, store, secrets
//! ```

/// mimalloc: rows are allocated on the worker that reads them and freed on the worker that
/// writes them; glibc's allocator serializes such cross-thread frees, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod catalog;
pub mod checkpoint;
pub mod connector;
pub mod connectors;
pub mod engine;
pub mod plan;
pub mod runtime;
pub mod secrets;
pub mod service;
pub mod state;
pub mod store;
pub mod verify;
