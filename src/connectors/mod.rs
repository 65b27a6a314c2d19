//! Source connectors. Today: [`datagen`], the built-in deterministic generator.
//! MySQL/MariaDB, PostgreSQL and Kafka sources plug in here.

pub mod datagen;
