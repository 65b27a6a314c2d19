//! # ferry
//!
//! A whole-database real-time migration engine: one task (a plan file) copies every selected
//! table of a source into a target, first the existing rows, then every committed change,
//! through crashes and restarts. A plan compiles into one timely dataflow whose epochs are the
//! checkpoints (see `ARCHITECTURE.md`).
//!
//! ```text
//!  plan.yaml ─► plan::load (check) ─► plan::compile (catalog) ─► engine::run ─► sinks
//!                                                                   │
//!                                                   state store ◄───┘ manifests, boundaries
//! ```

/// mimalloc: rows are allocated on the worker that reads them and freed on the worker that
/// writes them; glibc's allocator serializes such cross-thread frees, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod catalog;
pub mod checkpoint;
pub mod connectors;
pub mod engine;
pub mod plan;
pub mod runtime;
pub mod secrets;
pub mod sinks;
pub mod state;
pub mod store;
