//! Kafka on both sides: a target that publishes every change of the selected tables
//! (Debezium, Canal, Maxwell or ferry's own JSON; exactly-once through Kafka transactions),
//! and a source that lands change messages (or plain JSON rows) in any target.
//!
//! - [`config`]: the `source:` and `target:` sections (`type: kafka`).
//! - [`client`]: librdkafka settings, topic administration, error classes, the Java client's
//!   partitioner (murmur2).
//! - [`format`]: changes → messages, per format; [`decode`]: messages → changes, and the
//!   schemas a sample implies.
//! - [`sink`]: the writer (one producer per sink worker; transactions with a progress topic).
//! - [`discover`]: the source's partitions, tables (declared or sampled), start and end
//!   offsets; `source`: the source operator and its reader thread.

pub mod client;
pub mod config;
pub mod decode;
pub mod discover;
pub mod format;
pub mod sink;
mod source;

use crate::connector::{
    PreparedSink, PreparedSource, SinkConnector, SinkWriter, SourceConnector, SourceCtx, SourcePrepare, WriterCtx,
};
use crate::plan::config::{parse_duration_ms, Semantics};
use crate::plan::{Compiled, DiscoverError, Section, SourceCatalog, SourceConfig, TargetConfig, Wanted};
use crate::runtime::TaskError;
use config::{KafkaSource, KafkaTarget};
use ferry_operators::template::{Names, Template};
use ferry_operators::{Change, SchemaEvent};
use serde_json::Value as Json;
use source::KafkaRun;
use std::sync::Arc;
use timely::dataflow::{Scope, StreamVec};

/// The Kafka source connector.
#[derive(Debug)]
pub struct Kafka;

/// The Kafka sink connector.
#[derive(Debug)]
pub struct KafkaSink;

fn config(plan: &Compiled) -> &KafkaTarget {
    plan.plan.target.config_as::<KafkaTarget>().expect("a Kafka target's config")
}

/// The topic each selected table's rows go to, when the template names no record field.
fn static_topics(cfg: &KafkaTarget, plan: &Compiled) -> Result<Vec<String>, String> {
    let t = Template::parse(&cfg.topic).map_err(|e| e.message)?;
    if !t.is_static() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for s in &plan.catalog.tables {
        let names = Names::of(&plan.plan.source_name, &s.name);
        let name = t.render(&names, None).map_err(|e| e.message)?;
        config::check_topic_name(&name).map_err(|e| format!("table {}: {e}", s.name))?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

impl TargetConfig for KafkaTarget {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn describe(&self) -> String {
        format!("Kafka at {} ({}, topics {})", self.brokers, self.format.name(), self.topic)
    }

    fn check_compiled(&self, plan: &Compiled) -> Result<(), DiscoverError> {
        let refused = |key: &'static str, message: String| DiscoverError { key, message, transient: false };
        // Record fields of the topic template must be columns of every selected table.
        let t = Template::parse(&self.topic).map_err(|e| refused("target.topic", e.message))?;
        for tp in &plan.tables {
            t.check_fields(&tp.target_schema).map_err(|e| refused("target.topic", e.message))?;
        }
        static_topics(self, plan).map_err(|e| refused("target.topic", e))?;
        let conn = self.connection();
        let fail = |e: client::KafkaClientError| DiscoverError {
            key: "target.brokers",
            transient: e.is_transient(),
            message: e.to_string(),
        };
        let consumer = client::consumer(&conn).map_err(fail)?;
        let admin = client::admin(&conn).map_err(fail)?;
        client::topic_names(&consumer, &self.brokers).map_err(fail)?;
        if plan.plan.settings.semantics == Semantics::ExactlyOnce {
            let ms = parse_duration_ms(&self.transaction_timeout).expect("validated");
            if let Some(max) = client::max_transaction_timeout_ms(&admin, &consumer, &self.brokers).map_err(fail)? {
                if ms > max {
                    return Err(refused(
                        "target.transaction_timeout",
                        format!(
                            "`transaction_timeout` {ms} ms exceeds the broker's transaction.max.timeout.ms ({max} ms): lower it or raise the broker's limit"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl SinkConnector for KafkaSink {
    fn types(&self) -> &'static [&'static str] {
        &["kafka"]
    }

    fn parse(&self, _kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn TargetConfig>> {
        let c = at.parse_checked(section, KafkaTarget::validate)?;
        Some(Arc::new(c))
    }

    fn prepare(&self, plan: &Compiled, from_scratch: bool, fresh: bool) -> Result<PreparedSink, TaskError> {
        let cfg = config(plan);
        let conn = cfg.connection();
        let err = |e: client::KafkaClientError| {
            if e.is_transient() {
                TaskError::transient(e)
            } else {
                TaskError::definite(e)
            }
        };
        let admin = client::admin(&conn).map_err(err)?;
        let topics = static_topics(cfg, plan).map_err(TaskError::definite)?;
        client::create_topics(&admin, &cfg.brokers, &topics, cfg.partitions, cfg.replication, false).map_err(err)?;
        if plan.plan.settings.semantics == Semantics::ExactlyOnce {
            client::create_topics(
                &admin,
                &cfg.brokers,
                std::slice::from_ref(&cfg.progress_topic),
                1,
                cfg.replication,
                true,
            )
            .map_err(err)?;
        }
        let store = plan.plan.settings.state_store().map_err(TaskError::definite)?;
        let state = crate::state::TaskState::new(store, &plan.plan.settings.task);
        sink::prepare_instance(&state, from_scratch || fresh).map_err(TaskError::transient)?;
        Ok(PreparedSink::default())
    }

    fn writer(&self, cx: &WriterCtx) -> Result<Box<dyn SinkWriter>, TaskError> {
        match sink::KafkaWriter::new(cx, config(&cx.plan)) {
            Ok(w) => Ok(Box::new(w)),
            Err(crate::connector::SinkError::Fatal(e)) => Err(TaskError::definite(e)),
            Err(e) => Err(TaskError::transient(e)),
        }
    }
}

impl SourceConfig for KafkaSource {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn discover(&self, _wanted: Wanted<'_>) -> Result<SourceCatalog, DiscoverError> {
        // The data source's name is not known here: `${datasource_name_di_src}` renders as
        // `kafka` while sampling (the plan's default name).
        discover::discover(self, "kafka")
    }
}

impl SourceConnector for Kafka {
    fn types(&self) -> &'static [&'static str] {
        &["kafka"]
    }

    fn parse(&self, _kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn SourceConfig>> {
        let c = at.parse_checked(section, KafkaSource::validate)?;
        Some(Arc::new(c))
    }

    fn prepare(&self, cx: &SourcePrepare<'_>) -> Result<Arc<dyn PreparedSource>, TaskError> {
        let cfg = cx.plan.plan.source.config_as::<KafkaSource>().expect("a Kafka source's config").clone();
        let consumer = client::consumer(&cfg.connection()).map_err(|e| {
            if e.is_transient() {
                TaskError::transient(e)
            } else {
                TaskError::definite(e)
            }
        })?;
        let as_task = |e: DiscoverError| if e.transient { TaskError::transient(e) } else { TaskError::definite(e) };
        let topics = discover::topics(&cfg, &consumer).map_err(as_task)?;
        let parts = discover::partitions(&cfg, &consumer, &topics).map_err(as_task)?;
        let start =
            discover::start_offsets(&cfg, &consumer, &parts, cx.state, cx.process).map_err(TaskError::transient)?;
        let end = if cfg.bounded {
            Some(discover::end_offsets(&cfg, &consumer, &parts).map_err(TaskError::transient)?)
        } else {
            None
        };
        Ok(Arc::new(KafkaRun { cfg, parts, start, end }))
    }
}

impl PreparedSource for KafkaRun {
    fn build<'s>(
        &self,
        scope: Scope<'s, u64>,
        cx: &SourceCtx,
    ) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
        (source::kafka_source(scope, cx, self.clone()), timely::dataflow::operators::generic::operator::empty(scope))
    }
}
