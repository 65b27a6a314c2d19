//! Source connectors: [`datagen`], the built-in deterministic generator, and [`mysql`]
//! (MySQL/MariaDB). PostgreSQL and Kafka sources plug in here.

pub mod datagen;
pub mod mysql;
