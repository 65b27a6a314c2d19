//! The plan sections of a Kafka target (`target: {type: kafka, …}`) and a Kafka source
//! (`source: {type: kafka, …}`), and the connection settings both share. Defaults live in the
//! [`Default`] impls; cross-field rules in `validate`.

use crate::plan::config::parse_duration_ms;
use ferry_operators::template::{Template, Var};
use ferry_operators::ColumnType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The message formats ferry writes and reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Debezium's change event envelope (`before`, `after`, `op`, `source`, `ts_ms`), as its
    /// JSON converter writes it without schemas; the message key is the row key as JSON.
    #[default]
    DebeziumJson,
    /// Canal's flat message (`data[]`, `old[]`, `type`, `database`, `table`, `pkNames`,
    /// `isDdl`, `mysqlType`, `sqlType`, `es`, `ts`); every value a string, as Canal writes.
    CanalJson,
    /// Maxwell's message (`database`, `table`, `type`, `ts`, `xid`, `commit`, `position`,
    /// `data`, `old`).
    MaxwellJson,
    /// ferry's own lossless envelope: the change, its key columns and every column's
    /// record-model type, so a ferry Kafka source reads it back without a declared schema.
    FerryJson,
    /// Plain JSON objects, one row per message (Kafka sources only): each message is an
    /// insert (an upsert under `write_mode: upsert`).
    Json,
}

impl Format {
    /// The name in plans.
    pub fn name(self) -> &'static str {
        match self {
            Format::DebeziumJson => "debezium-json",
            Format::CanalJson => "canal-json",
            Format::MaxwellJson => "maxwell-json",
            Format::FerryJson => "ferry-json",
            Format::Json => "json",
        }
    }
}

/// SASL settings, passed to librdkafka (`sasl.mechanism`, `sasl.username`, `sasl.password`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// `PLAIN` (default), `SCRAM-SHA-256` or `SCRAM-SHA-512` (the SCRAM mechanisms need a
    /// build with the `kafka-tls` feature).
    #[serde(default = "SaslConfig::default_mechanism")]
    pub mechanism: String,
    /// The user name.
    pub username: String,
    /// The password; write it as `${env:NAME}` to keep it out of the plan file. Never logged.
    pub password: String,
}

impl SaslConfig {
    fn default_mechanism() -> String {
        "PLAIN".into()
    }
}

/// TLS settings, passed to librdkafka (`ssl.*`); needs a build with the `kafka-tls` feature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate file (`ssl.ca.location`); default: the system's store.
    pub ca: Option<String>,
    /// Client certificate file (`ssl.certificate.location`).
    pub certificate: Option<String>,
    /// Client key file (`ssl.key.location`).
    pub key: Option<String>,
    /// The client key's password (`ssl.key.password`).
    pub key_password: Option<String>,
}

/// How ferry reaches the brokers: the `brokers`, `sasl`, `tls` and `properties` keys a source
/// and a target section both have.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// Bootstrap brokers.
    pub brokers: &'a str,
    /// SASL authentication.
    pub sasl: Option<&'a SaslConfig>,
    /// TLS.
    pub tls: Option<&'a TlsConfig>,
    /// Further librdkafka properties.
    pub properties: &'a BTreeMap<String, String>,
}

/// Properties ferry sets itself: a plan may not override them.
const OWN_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "transactional.id",
    "enable.idempotence",
    "isolation.level",
    "enable.auto.commit",
    "group.id",
    "security.protocol",
    "sasl.username",
    "sasl.password",
];

impl Connection<'_> {
    /// Checks the connection settings; the error says how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("`brokers` is required: write the bootstrap brokers, e.g. `brokers: 127.0.0.1:9092`".into());
        }
        for b in self.brokers.split(',') {
            let b = b.trim();
            let port = b.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
            if port.is_none() {
                return Err(format!("broker `{b}` has no port: write `host:port`, e.g. `127.0.0.1:9092`"));
            }
        }
        if let Some(k) = self.properties.keys().find(|k| OWN_PROPERTIES.contains(&k.as_str())) {
            return Err(format!("`properties.{k}` is set by ferry itself: remove it (use `brokers`, `sasl`, `tls` or the plan's `semantics`)"));
        }
        if let Some(s) = &self.sasl {
            let m = s.mechanism.to_ascii_uppercase();
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&m.as_str()) {
                return Err(format!(
                    "`sasl.mechanism` `{}` is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
                    s.mechanism
                ));
            }
            if m != "PLAIN" && !cfg!(feature = "kafka-tls") {
                return Err(format!(
                    "`sasl.mechanism: {m}` needs OpenSSL, which this build lacks: build ferry with `--features kafka-tls` (needs libssl-dev)"
                ));
            }
        }
        if self.tls.is_some() && !cfg!(feature = "kafka-tls") {
            return Err("`tls` needs OpenSSL, which this build lacks: build ferry with `--features kafka-tls` (needs libssl-dev)".into());
        }
        Ok(())
    }
}

/// A Kafka target. Defaults live in [`Default`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaTarget {
    /// Bootstrap brokers, `host:port[,host:port…]`. Required.
    pub brokers: String,
    /// SASL authentication (`security.protocol` becomes `sasl_plaintext`, or `sasl_ssl` with
    /// `tls`).
    pub sasl: Option<SaslConfig>,
    /// TLS (`security.protocol` becomes `ssl`, or `sasl_ssl` with `sasl`).
    pub tls: Option<TlsConfig>,
    /// Further librdkafka properties, passed as they are (e.g. `{"socket.keepalive.enable":
    /// "true"}`); ferry's own settings (transactions, isolation, partitioning) cannot be
    /// overridden here.
    pub properties: BTreeMap<String, String>,
    /// Message format: `debezium-json` (default), `canal-json`, `maxwell-json`, `ferry-json`.
    pub format: Format,
    /// Topic name template: built-ins (`${db_name_di_src}`, `${table_name_di_src}`,
    /// `${schema_name_di_src}`, `${datasource_name_di_src}`) and any column of the target row
    /// (`${region}`). Default `${db_name_di_src}.${table_name_di_src}`.
    pub topic: String,
    /// Debezium's schema-change topic: where schema changes go under `debezium-json` (the
    /// other formats put them in the table's topic). Default `${datasource_name_di_src}`.
    pub schema_topic: String,
    /// After a delete, a tombstone (the key with an empty value) so compacted topics drop the
    /// key. Default: `true` for `debezium-json` (as Debezium does), `false` otherwise.
    pub tombstones: Option<bool>,
    /// Partitions of the topics ferry creates (a missing topic is created before its first
    /// message). Default 1.
    pub partitions: i32,
    /// Replication factor of the topics ferry creates. Default 1.
    pub replication: i32,
    /// The compacted topic holding every exactly-once sink worker's last committed epoch,
    /// written in the same transaction as the epoch's messages. Default `__ferry_progress`.
    pub progress_topic: String,
    /// `transaction.timeout.ms` of the exactly-once producers: an epoch's transaction must
    /// commit within it; must not exceed the broker's `transaction.max.timeout.ms` (checked
    /// by `ferry check`). Default `60s`.
    pub transaction_timeout: String,
}

impl Default for KafkaTarget {
    fn default() -> Self {
        KafkaTarget {
            brokers: String::new(),
            sasl: None,
            tls: None,
            properties: BTreeMap::new(),
            format: Format::DebeziumJson,
            topic: "${db_name_di_src}.${table_name_di_src}".into(),
            schema_topic: "${datasource_name_di_src}".into(),
            tombstones: None,
            partitions: 1,
            replication: 1,
            progress_topic: "__ferry_progress".into(),
            transaction_timeout: "60s".into(),
        }
    }
}

impl KafkaTarget {
    /// The connection settings.
    pub fn connection(&self) -> Connection<'_> {
        Connection {
            brokers: &self.brokers,
            sasl: self.sasl.as_ref(),
            tls: self.tls.as_ref(),
            properties: &self.properties,
        }
    }
    /// Checks the section's cross-field rules.
    pub fn validate(&self) -> Result<(), String> {
        self.connection().validate()?;
        if self.format == Format::Json {
            return Err("`format: json` is for Kafka sources: a target writes debezium-json, canal-json, maxwell-json or ferry-json".into());
        }
        for (key, text) in [("topic", &self.topic), ("schema_topic", &self.schema_topic)] {
            let t = Template::parse(text).map_err(|e| format!("`{key}`: {e}"))?;
            if t.parts.iter().any(|p| matches!(p, ferry_operators::template::Part::Var(Var::Topic, _))) {
                return Err(format!(
                    "`{key}`: `${{topic_di_src}}` is a Kafka source's variable; this source has no topic"
                ));
            }
            if key == "schema_topic" && !t.is_static() {
                return Err("`schema_topic` cannot use record fields: a schema change has no row".into());
            }
        }
        check_topic_name(&self.progress_topic).map_err(|e| format!("`progress_topic`: {e}"))?;
        if self.partitions < 1 || self.replication < 1 {
            return Err("`partitions` and `replication` must be at least 1".into());
        }
        let ms = parse_duration_ms(&self.transaction_timeout).map_err(|e| format!("`transaction_timeout`: {e}"))?;
        if !(1000..=3_600_000).contains(&ms) {
            return Err("`transaction_timeout` must be between 1s and 1h".into());
        }
        Ok(())
    }

    /// Whether deletes are followed by a tombstone.
    pub fn tombstones(&self) -> bool {
        self.tombstones.unwrap_or(self.format == Format::DebeziumJson)
    }
}

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!("topic name `{name}` must have 1 to 249 characters"));
    }
    if name == "." || name == ".." {
        return Err(format!("topic name `{name}` is not allowed"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("topic name `{name}` has `{c}`: Kafka allows letters, digits, `.`, `_` and `-`"));
    }
    Ok(())
}

/// Where a Kafka source starts reading a partition it has no offset for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The oldest message the broker keeps.
    #[default]
    Earliest,
    /// Only messages written after the first start.
    Latest,
}

/// A table a Kafka source's messages carry, declared in the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeclaredTable {
    /// Columns in order: name → type in MySQL spelling (`bigint`, `varchar(20)`,
    /// `decimal(10,2)`, `datetime(6)`, `json`, …). Columns are nullable unless in `key`.
    pub columns: serde_json::Map<String, serde_json::Value>,
    /// The key columns (default: the format's own key fields, e.g. Canal's `pkNames`).
    pub key: Vec<String>,
}

/// A Kafka source. Defaults live in [`Default`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSource {
    /// Bootstrap brokers, `host:port[,host:port…]`. Required.
    pub brokers: String,
    /// SASL authentication (`security.protocol` becomes `sasl_plaintext`, or `sasl_ssl` with
    /// `tls`).
    pub sasl: Option<SaslConfig>,
    /// TLS (`security.protocol` becomes `ssl`, or `sasl_ssl` with `sasl`).
    pub tls: Option<TlsConfig>,
    /// Further librdkafka properties, passed as they are (e.g. `{"socket.keepalive.enable":
    /// "true"}`); ferry's own settings (transactions, isolation, partitioning) cannot be
    /// overridden here.
    pub properties: BTreeMap<String, String>,
    /// The topics to read (or `topic_pattern`).
    pub topics: Vec<String>,
    /// A regular expression over topic names (whole name), instead of `topics`.
    pub topic_pattern: Option<String>,
    /// Message format: `debezium-json`, `canal-json`, `maxwell-json`, `ferry-json` or `json`
    /// (plain objects). Required.
    pub format: Option<Format>,
    /// Template of the source database a message belongs to, over the message's fields
    /// (dotted paths reach into objects: `${source.db}`) and `${topic_di_src}`. Default per
    /// format: `${database}` (Canal, Maxwell, ferry-json), `${source.db}` (Debezium), the
    /// source's `name` (plain JSON).
    pub database: Option<String>,
    /// Template of the source table a message belongs to. Default: `${table}` (Canal, Maxwell,
    /// ferry-json), `${source.table}` (Debezium), `${topic_di_src}` (plain JSON).
    pub table: Option<String>,
    /// Tables and their columns, by `database.table` as the templates render them; tables
    /// not declared are inferred from a sample of the topics' messages.
    pub tables: BTreeMap<String, DeclaredTable>,
    /// Messages read from each partition's start to infer undeclared tables (`ferry preview`
    /// shows what was inferred). Default 1000; 0 turns inference off.
    pub sample: usize,
    /// Where a first run starts in each partition: `earliest` (default) or `latest`.
    pub start: StartFrom,
    /// Stop at the end offsets the partitions had when the run started (a one-off copy, a
    /// test). Default `false`: run until stopped.
    pub bounded: bool,
}

impl Default for KafkaSource {
    fn default() -> Self {
        KafkaSource {
            brokers: String::new(),
            sasl: None,
            tls: None,
            properties: BTreeMap::new(),
            topics: Vec::new(),
            topic_pattern: None,
            format: None,
            database: None,
            table: None,
            tables: BTreeMap::new(),
            sample: 1000,
            start: StartFrom::Earliest,
            bounded: false,
        }
    }
}

impl KafkaSource {
    /// The connection settings.
    pub fn connection(&self) -> Connection<'_> {
        Connection {
            brokers: &self.brokers,
            sasl: self.sasl.as_ref(),
            tls: self.tls.as_ref(),
            properties: &self.properties,
        }
    }
    /// Checks the section's cross-field rules.
    pub fn validate(&self) -> Result<(), String> {
        self.connection().validate()?;
        if self.format.is_none() {
            return Err("`format` is required: debezium-json, canal-json, maxwell-json, ferry-json or json".into());
        }
        match (&self.topics.is_empty(), &self.topic_pattern) {
            (true, None) => return Err("name the topics: `topics: [orders]` or `topic_pattern: 'cdc\\..*'`".into()),
            (false, Some(_)) => return Err("`topics` and `topic_pattern` exclude each other: keep one".into()),
            (_, Some(p)) => {
                regex::Regex::new(p).map_err(|e| format!("`topic_pattern`: {e}"))?;
            }
            _ => {}
        }
        for t in &self.topics {
            check_topic_name(t).map_err(|e| format!("`topics`: {e}"))?;
        }
        Template::parse(&self.database_template()).map_err(|e| format!("`database`: {e}"))?;
        Template::parse(&self.table_template()).map_err(|e| format!("`table`: {e}"))?;
        for (name, t) in &self.tables {
            if name.split_once('.').is_none() {
                return Err(format!("`tables.{name}`: name tables `database.table`"));
            }
            for (c, ty) in &t.columns {
                let Some(ty) = ty.as_str() else {
                    return Err(format!("`tables.{name}.columns.{c}`: write the type as text, e.g. `bigint`"));
                };
                column_type(ty).map_err(|e| format!("`tables.{name}.columns.{c}`: {e}"))?;
            }
            if let Some(k) = t.key.iter().find(|k| !t.columns.contains_key(*k)) {
                return Err(format!("`tables.{name}.key`: `{k}` is not one of its columns"));
            }
        }
        Ok(())
    }

    /// The format (validated: present).
    pub fn format(&self) -> Format {
        self.format.unwrap_or_default()
    }

    /// The source-database template, the format's default when not set.
    pub fn database_template(&self) -> String {
        self.database.clone().unwrap_or_else(|| {
            match self.format() {
                Format::DebeziumJson => "${source.db}",
                Format::Json => "${datasource_name_di_src}",
                _ => "${database}",
            }
            .into()
        })
    }

    /// The source-table template, the format's default when not set.
    pub fn table_template(&self) -> String {
        self.table.clone().unwrap_or_else(|| {
            match self.format() {
                Format::DebeziumJson => "${source.table}",
                Format::Json => "${topic_di_src}",
                _ => "${table}",
            }
            .into()
        })
    }
}

/// A column type from its MySQL spelling (`bigint`, `varchar(20)`, `decimal(10,2)`, `json`),
/// or a record-model name the MySQL family lacks (`uuid`, `interval`, `jsonb`, `boolean`).
pub fn column_type(spelling: &str) -> Result<ColumnType, String> {
    let s = spelling.trim().to_ascii_lowercase();
    match s.as_str() {
        "uuid" => return Ok(ColumnType::Uuid),
        "interval" => return Ok(ColumnType::Interval),
        "jsonb" => return Ok(ColumnType::Json),
        "boolean" | "bool" => return Ok(ColumnType::Bool),
        "timestamptz" => return Ok(ColumnType::Timestamp { fsp: 6 }),
        _ => {}
    }
    let data_type = s.split(['(', ' ']).next().unwrap_or("");
    crate::catalog::spelling::parse_column_type(data_type, &s, None)
}
