//! The engine's own operators, between the sources and the sinks the connectors build: the
//! transform stage, the sink stage (driving a connector's `SinkWriter`) and the DDL stage
//! (driving a connector's `SchemaApplier`).

pub mod ddl;
pub mod sink;
pub mod transform;
