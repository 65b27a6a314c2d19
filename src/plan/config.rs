//! The plan file's shape: config structs exactly as a user writes them (YAML), with defaults in
//! one place ([`Default`] impls) and a doc comment on every field. Nothing here runs anything;
//! [`super::compile`] turns a checked [`PlanFile`] into the runtime [`super::Plan`].

pub use crate::store::S3Config;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// A task: one plan file (F1.1).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// Task name: names the state kept under the state store (`<state>/<task>/`). Letters,
    /// digits, `_`, `-`.
    pub task: String,
    /// Free text describing this task version (F10.1).
    #[serde(default)]
    pub description: Option<String>,
    /// The source data source: `type` (`datagen`; `mysql`, `postgres`, `kafka` to come), an
    /// optional `name` (the `${datasource_name_di_src}` variable, default: the type), and the
    /// connector's own keys.
    pub source: Json,
    /// The target data source: `type` (`files`, `null`; database targets to come), an optional
    /// `name`, and the connector's own keys.
    pub target: Json,
    /// Which source tables the task copies (F2.1).
    #[serde(default)]
    pub tables: TableSelection,
    /// Read mode (F2.2): `full+incremental` (default) or `incremental`.
    #[serde(default)]
    pub mode: ReadMode,
    /// Consistency semantics (F2.3): `at-least-once` (default) or `exactly-once`.
    #[serde(default)]
    pub semantics: Semantics,
    /// Write mode (F3.1): `upsert` (default) or `append`.
    #[serde(default)]
    pub write_mode: WriteMode,
    /// Target database and table names (F3.2); default: same as the source.
    #[serde(default)]
    pub route: RouteConfig,
    /// Change kinds to skip (F2.4).
    #[serde(default)]
    pub operations: OperationFilter,
    /// Metadata columns added to every target table (F8.2).
    #[serde(default)]
    pub metadata: Vec<MetadataColumn>,
    /// Per-table edits (F4.3): the first entry whose `tables` pattern matches a table applies.
    #[serde(default)]
    pub transforms: Vec<TableTransform>,
    /// Workers, checkpoints, state store.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// What happens to rows the target rejects, restarts, the dirty-data archive (F9.2–F9.4).
    #[serde(default)]
    pub errors: ErrorsConfig,
    /// Settings of the S3-compatible object storage that `s3://bucket/prefix` locations of
    /// this plan use (today: `errors.dirty_archive`).
    #[serde(default)]
    pub s3: S3Config,
    /// Target tables (F5): created when missing, kept or recreated when present, by
    /// `ferry create-tables` and (missing ones) by `ferry run`.
    #[serde(default)]
    pub target_tables: TargetTablesConfig,
    /// What a source schema change does to the target (F8.1).
    #[serde(default)]
    pub schema_changes: SchemaChangesConfig,
    /// How `ferry verify` compares the target with the source (F6).
    #[serde(default)]
    pub verify: VerifyConfig,
    /// Alerts of the task service (F9.5): rules and the webhook they are sent to.
    #[serde(default)]
    pub alerts: AlertsConfig,
}

/// Alerts (F9.5), evaluated by `ferry serve` for a task it runs. Defaults live in [`Default`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where alerts go besides the service's log and `GET /api/tasks/{task}/alerts`: a
    /// JSON `POST` to this webhook (none: the log and the API only).
    pub webhook: Option<WebhookConfig>,
    /// The default rules on top of `rules`: `failed`, `restarted` and `table-stopped`
    /// (default true).
    pub defaults: bool,
    /// Further rules.
    pub rules: Vec<AlertRule>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig { webhook: None, defaults: true, rules: Vec::new() }
    }
}

impl AlertsConfig {
    /// The rules in force: the defaults (when on) and then `rules`, without repeats.
    pub fn effective_rules(&self) -> Vec<AlertRule> {
        let mut out: Vec<AlertRule> = Vec::new();
        if self.defaults {
            for kind in [AlertKind::Failed, AlertKind::Restarted, AlertKind::TableStopped] {
                out.push(AlertRule { kind, above: None, r#for: "0s".into() });
            }
        }
        for r in &self.rules {
            if !out.iter().any(|o| o.kind == r.kind && o.above == r.above) {
                out.push(r.clone());
            }
        }
        out
    }
}

/// The webhook alerts are posted to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Ferry-Signature: sha256=<hex>` header, computed over the
    /// body (`${env:NAME}` reads it from the environment; none: unsigned).
    #[serde(default)]
    pub secret: Option<String>,
    /// Attempts after the first failed one, with backoff 1 s, 2 s, 4 s … 60 s (default 8).
    #[serde(default = "WebhookConfig::default_retries")]
    pub retries: u32,
    /// How long one attempt may take, e.g. `5s` (default).
    #[serde(default = "WebhookConfig::default_timeout")]
    pub timeout: String,
}

impl WebhookConfig {
    fn default_retries() -> u32 {
        8
    }
    fn default_timeout() -> String {
        "5s".into()
    }
}

/// One alert rule: fires once when its condition has held for `for`, and once more when it
/// no longer holds (resolved).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// What it watches.
    pub kind: AlertKind,
    /// The threshold of `lag` (seconds) and `dirty` (rows); the others take none.
    #[serde(default)]
    pub above: Option<f64>,
    /// How long the condition must hold before the alert fires, e.g. `30s` (default `0s`).
    #[serde(default = "AlertRule::default_for")]
    pub r#for: String,
}

impl AlertRule {
    fn default_for() -> String {
        "0s".into()
    }
}

/// What an alert rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// The task failed (a definite error, or past `errors.max_restarts`); resolved once a
    /// started run has committed an epoch.
    Failed,
    /// The run restarted from its checkpoint after a failure; resolved once it has committed
    /// an epoch after the restart.
    Restarted,
    /// A table was stopped by the `partial-stop` write-error policy; resolved when the stop
    /// is lifted (`ferry dirty replay`).
    TableStopped,
    /// The source lag is above `above` seconds.
    Lag,
    /// The run's dirty rows are above `above`.
    Dirty,
    /// The continuous verifier (`verify.continuous`) found a difference.
    VerifyDifference,
}

impl AlertKind {
    /// The name the plan and the alerts use.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Failed => "failed",
            AlertKind::Restarted => "restarted",
            AlertKind::TableStopped => "table-stopped",
            AlertKind::Lag => "lag",
            AlertKind::Dirty => "dirty",
            AlertKind::VerifyDifference => "verify-difference",
        }
    }
}

/// `ferry verify` settings (F6). Defaults live in [`Default`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyConfig {
    /// Rows per key-range chunk: the unit that is counted and hashed on both sides and, when
    /// it differs, compared row by row.
    pub chunk_rows: u64,
    /// How many times a key that differs is read again on both sides (after the running task's
    /// checkpoint has passed the source's position) before it is reported.
    pub retries: u32,
    /// Seconds to wait for the running task's checkpoint to pass the source position of a
    /// re-read before the re-read is compared anyway.
    pub wait_seconds: u64,
    /// Per-table rules: the first entry whose `tables` pattern matches a source table applies.
    pub tables: Vec<VerifyTable>,
    /// A running task verifies itself in the background: every `interval` the chunks its
    /// stream changed since the previous pass, every `full_sweep_interval` every chunk of every
    /// verified table (all rate-limited by `max_rows_per_second`); results in the state store
    /// (`verify/last.json`, `verify/events.jsonl`) and the log.
    pub continuous: bool,
    /// Time between the starts of two background passes over the changed chunks (`30s`, `10m`).
    pub interval: String,
    /// Time between the starts of two background full sweeps (the first one runs one
    /// `interval` after the start).
    pub full_sweep_interval: String,
    /// Rows per second (both sides together) a background sweep reads at most; 0: no limit.
    pub max_rows_per_second: u64,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            chunk_rows: 50_000,
            retries: 3,
            wait_seconds: 60,
            tables: Vec::new(),
            continuous: false,
            interval: "10m".into(),
            full_sweep_interval: "6h".into(),
            max_rows_per_second: 100_000,
        }
    }
}

/// What `ferry verify` does with the tables a pattern matches.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyTable {
    /// Regular expression over the source `db.table`.
    pub tables: String,
    /// Leave these tables out of verification.
    #[serde(default)]
    pub skip: bool,
    /// Compare only the rows for which this condition (the filter language, over the source
    /// table's columns) is true, on both sides: the columns it reads must reach the target
    /// unchanged (copied or renamed), so target rows can be tested too.
    #[serde(default, rename = "where")]
    pub condition: Option<String>,
}

/// Target table strategies (F5.2–F5.4). Defaults live in [`Default`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetTablesConfig {
    /// A target table that does not exist: `create` (default) or `skip` (not now).
    pub missing: MissingTable,
    /// A target table that exists: `use-existing` (default) or `drop-and-recreate` (only
    /// `ferry create-tables --yes` drops; `ferry run` never does).
    pub existing: ExistingTable,
    /// `ferry run` creates the missing target tables whose strategy is `create` before it
    /// starts (default `true`); `false`: a missing table stops the run.
    pub create_on_run: bool,
    /// Doris/StarRocks tables: `DISTRIBUTED BY … BUCKETS n` (default: `AUTO`).
    pub doris_buckets: Option<u32>,
    /// Doris/StarRocks tables: `PROPERTIES (…)`, e.g. `{replication_num: "1"}` for a
    /// one-backend cluster.
    pub doris_properties: BTreeMap<String, String>,
    /// PostgreSQL targets: how the MySQL values PostgreSQL's own types cannot hold arrive
    /// (TIME beyond a day or negative, zero dates, text with NUL). Shown by `ferry preview`
    /// and `ferry ddl`.
    pub postgres: PostgresTypes,
    /// Per-table strategies and DDL files; the first entry whose `tables` pattern matches the
    /// source `db.table` applies.
    pub tables: Vec<TargetTableOverride>,
}

impl Default for TargetTablesConfig {
    fn default() -> Self {
        TargetTablesConfig {
            missing: MissingTable::Create,
            existing: ExistingTable::UseExisting,
            create_on_run: true,
            doris_buckets: None,
            doris_properties: BTreeMap::new(),
            postgres: PostgresTypes::default(),
            tables: Vec::new(),
        }
    }
}

impl TargetTablesConfig {
    /// The first per-table entry whose pattern matches the source `db.table`.
    pub fn table(&self, source: &str) -> Option<&TargetTableOverride> {
        self.tables.iter().find(|o| regex::Regex::new(&format!("^(?:{})$", o.tables)).is_ok_and(|r| r.is_match(source)))
    }
}

/// The type choices of a PostgreSQL target for MySQL values PostgreSQL's types cannot hold
/// (`target_tables.postgres`). The defaults keep each column's natural type and change no
/// value: a value the type cannot hold is refused (dirty data), as the type-loss report says
/// before the run. Every other choice changes values only as the report says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresTypes {
    /// A MySQL `TIME` column: `time` (default; negative times and times past 24:00:00 are
    /// refused) or `interval` (every MySQL time, −838:59:59.999999 … 838:59:59.999999, exactly).
    pub time: TimeAs,
    /// Zero dates and date-times (`0000-00-00`, a zero month or day, the zero `TIMESTAMP`):
    /// `refuse` (default), `null` (the column is created nullable) or `infinity` (`-infinity`).
    /// A bare YAML `null` means the `null` choice too.
    #[serde(deserialize_with = "zero_dates_or_null")]
    pub zero_dates: ZeroDates,
    /// Text with the NUL character (U+0000): `refuse` (default), `strip` (removed) or `escape`
    /// (written as the two characters `\0`, MySQL's own escape for it).
    pub nul_in_text: NulInText,
}

/// `zero_dates: null` is YAML's null: the `null` choice, as if quoted.
fn zero_dates_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ZeroDates, D::Error> {
    Ok(Option::<ZeroDates>::deserialize(d)?.unwrap_or(ZeroDates::Null))
}

impl PostgresTypes {
    /// `time: time, zero_dates: refuse, nul_in_text: refuse`, as a plan spells them.
    pub fn describe(&self) -> String {
        let time = match self.time {
            TimeAs::Time => "time",
            TimeAs::Interval => "interval",
        };
        let zero = match self.zero_dates {
            ZeroDates::Refuse => "refuse",
            ZeroDates::Null => "null",
            ZeroDates::Infinity => "infinity",
        };
        let nul = match self.nul_in_text {
            NulInText::Refuse => "refuse",
            NulInText::Strip => "strip",
            NulInText::Escape => "escape",
        };
        format!("time: {time}, zero_dates: {zero}, nul_in_text: {nul}")
    }
}

/// The PostgreSQL type of a MySQL `TIME` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeAs {
    /// `time(n)`: a time of day; negative times and times past 24:00:00 are refused.
    #[default]
    Time,
    /// `interval(n)`: every MySQL time, exactly.
    Interval,
}

/// How zero dates arrive in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroDates {
    /// Refused: the row is dirty data.
    #[default]
    Refuse,
    /// NULL (key columns cannot be NULL: refused there).
    Null,
    /// `-infinity`.
    Infinity,
}

/// How text with the NUL character arrives in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NulInText {
    /// Refused: the row is dirty data.
    #[default]
    Refuse,
    /// Each NUL removed.
    Strip,
    /// Each NUL written as the two characters `\0`.
    Escape,
}

/// A missing target table (F5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingTable {
    /// Create it from the generated DDL (or the table's `ddl_file`).
    #[default]
    Create,
    /// Leave it missing (not now).
    Skip,
}

/// An existing target table (F5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExistingTable {
    /// Write into it as it is.
    #[default]
    UseExisting,
    /// Drop it and create it anew (`ferry create-tables --yes`).
    DropAndRecreate,
}

/// Strategies and DDL of the tables a pattern matches.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetTableOverride {
    /// Regular expression over the source `db.table`.
    pub tables: String,
    /// Overrides `target_tables.missing`.
    #[serde(default)]
    pub missing: Option<MissingTable>,
    /// Overrides `target_tables.existing`.
    #[serde(default)]
    pub existing: Option<ExistingTable>,
    /// A file with the DDL to create the target table with instead of the generated one
    /// (statements separated by `;`), relative to the plan file. `ferry ddl` prints the
    /// generated DDL to start from.
    #[serde(default)]
    pub ddl_file: Option<String>,
}

/// The policy for a source schema change (F8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DdlPolicy {
    /// Follow the source: the target gets the same change.
    #[default]
    Auto,
    /// Let it pass silently: the target keeps its shape.
    Ignore,
    /// Let it pass with a warning that shows the statement and the table.
    Log,
    /// Fail the task (and every restart) with the statement in the message.
    Error,
}

/// Schema-change policies (F8.1): one for the task, overridden per change kind. Defaults live
/// in [`Default`]. Under `auto`, database targets take the same change (`ALTER TABLE`,
/// `TRUNCATE`) exactly between the rows before and after it, and the `files` target records
/// it; a new table is picked up at the next start.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchemaChangesConfig {
    /// The task's policy: `auto` (default), `ignore`, `log` or `error`.
    pub policy: DdlPolicy,
    /// `ADD COLUMN`.
    pub add_column: Option<DdlPolicy>,
    /// `DROP COLUMN`.
    pub drop_column: Option<DdlPolicy>,
    /// `RENAME COLUMN` / `CHANGE old new`.
    pub rename_column: Option<DdlPolicy>,
    /// `MODIFY` / `CHANGE` to another type.
    pub modify_column: Option<DdlPolicy>,
    /// `TRUNCATE TABLE`.
    pub truncate: Option<DdlPolicy>,
    /// `CREATE TABLE` of a table the selection (`tables`) matches: under `auto` the run ends
    /// at the statement and starts again with the table (its rows all come from the binlog,
    /// after the statement; a missing target table is created as at any start).
    pub create_table: Option<DdlPolicy>,
    /// Any other statement on a selected table (indexes, options, `DROP TABLE`, `RENAME
    /// TABLE`): `auto` means `log` for these.
    pub other: Option<DdlPolicy>,
    /// Under `auto`, a dropped source column stays in the target, made nullable, and gets
    /// NULL in rows written after the drop (instead of being dropped there too). Default false.
    pub keep_dropped_columns: bool,
}

impl SchemaChangesConfig {
    /// Whether columns dropped in the source leave the target's rows (`auto` drops that do
    /// not keep the column): the target schema of later rows then has no such column.
    pub fn follows_drops(&self) -> bool {
        let drop = ferry_operators::SchemaChangeKind::DropColumn { column: String::new() };
        self.policy_for(&drop) == DdlPolicy::Auto && !self.keep_dropped_columns
    }

    /// The policy for one kind of change: its override, else the task's (`auto` means `log`
    /// for the kinds ferry does not follow: `other`).
    pub fn policy_for(&self, kind: &ferry_operators::SchemaChangeKind) -> DdlPolicy {
        use ferry_operators::SchemaChangeKind as K;
        let own = match kind {
            K::AddColumn { .. } => self.add_column,
            K::DropColumn { .. } => self.drop_column,
            K::RenameColumn { .. } => self.rename_column,
            K::ModifyColumn { .. } => self.modify_column,
            K::Truncate => self.truncate,
            K::CreateTable => self.create_table,
            K::Other => self.other,
        };
        match (own.unwrap_or(self.policy), kind) {
            (DdlPolicy::Auto, K::Other) => DdlPolicy::Log,
            (p, _) => p,
        }
    }
}

/// Include and exclude patterns over `db.table` (F2.1).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableSelection {
    /// Regular expressions matched against the whole `db.table` name; a table is selected if
    /// any matches. Default: `[".*"]` (every table).
    #[serde(default = "TableSelection::all")]
    pub include: Vec<String>,
    /// Regular expressions over `db.table`; a matching table is left out even if included.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl TableSelection {
    fn all() -> Vec<String> {
        vec![".*".into()]
    }
}

impl Default for TableSelection {
    fn default() -> Self {
        TableSelection { include: Self::all(), exclude: Vec::new() }
    }
}

/// Read mode (F2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum ReadMode {
    /// Snapshot, then changes from the snapshot's position.
    #[default]
    #[serde(rename = "full+incremental")]
    FullIncremental,
    /// Changes only, from the latest position (or the start position chosen at submit).
    #[serde(rename = "incremental")]
    Incremental,
}

/// Consistency semantics (F2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Semantics {
    /// Sinks write as batches fill; a crash replays from the last checkpoint.
    #[default]
    AtLeastOnce,
    /// Sinks commit an epoch once, together with their progress, after the epoch is complete.
    ExactlyOnce,
}

/// Write mode (F3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Insert or replace by primary key; deletes delete.
    #[default]
    Upsert,
    /// Every change becomes a new row.
    Append,
}

/// Target name templates (F3.2).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Target database template; default `${db_name_di_src}`.
    #[serde(default)]
    pub database: Option<String>,
    /// Target table template; default `${table_name_di_src}`.
    #[serde(default)]
    pub table: Option<String>,
}

/// A change kind, for the operation filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Row inserts.
    Insert,
    /// Row updates.
    Update,
    /// Row deletes.
    Delete,
    /// Schema changes.
    Ddl,
}

/// The operation filter (F2.4).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OperationFilter {
    /// Change kinds dropped before the sink: any of `insert`, `update`, `delete`, `ddl`.
    #[serde(default)]
    pub skip: Vec<OpKind>,
}

/// A system field for a metadata column (F8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaField {
    /// `insert`, `update` or `delete`.
    OpType,
    /// Source commit time (a timestamp).
    EventTime,
    /// Source data source name.
    Datasource,
    /// Source database.
    Database,
    /// Source schema (PostgreSQL).
    Schema,
    /// Source table.
    Table,
    /// Source position (binlog file:offset, GTID, LSN, generator partition:sequence).
    Position,
}

impl MetaField {
    /// The expression that computes the field.
    pub fn expr(&self) -> &'static str {
        match self {
            MetaField::OpType => "op_type()",
            MetaField::EventTime => "event_time()",
            MetaField::Datasource => "source_datasource()",
            MetaField::Database => "source_database()",
            MetaField::Schema => "source_schema()",
            MetaField::Table => "source_table()",
            MetaField::Position => "source_position()",
        }
    }
}

/// One metadata column (F8.2).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataColumn {
    /// Target column name.
    pub column: String,
    /// The system field: `op_type`, `event_time`, `datasource`, `database`, `schema`, `table`,
    /// `position`.
    pub field: MetaField,
}

/// Edits for the tables a pattern matches (F4.3).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableTransform {
    /// Regular expression over `db.table` choosing the tables this entry edits.
    pub tables: String,
    /// Row filter: only rows for which it is true reach the target (see the expression
    /// language in `ferry_operators::expr`).
    #[serde(default)]
    pub filter: Option<String>,
    /// Source column → target column renames.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Source columns left out of the target.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Added columns: target column → expression (a constant like `'eu'` or a function like
    /// `concat(a, '-', b)`), in file order.
    #[serde(default)]
    pub add: serde_json::Map<String, Json>,
    /// Name templates for these tables, overriding the task's `route`.
    #[serde(default)]
    pub route: Option<RouteConfig>,
}

/// Runtime settings (F7, F9.1).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads per process (default 1; `ferry run -w N` overrides).
    #[serde(default = "RuntimeConfig::default_workers")]
    pub workers: usize,
    /// Checkpoint interval (F9.1), e.g. `500ms`, `1s`, `2m`; default `1s`.
    #[serde(default = "RuntimeConfig::default_interval")]
    pub checkpoint_interval: String,
    /// State store root: a local directory (default `./.ferry`) or `s3://bucket/prefix` (an
    /// S3-compatible store with the `s3` section's settings).
    #[serde(default = "RuntimeConfig::default_state")]
    pub state: String,
    /// Rows a sink buffers per table before it writes a batch (default 10000).
    #[serde(default = "RuntimeConfig::default_batch")]
    pub batch_rows: usize,
    /// A cluster (`ferry run --hostfile`): how long a process waits for its peers to join, at
    /// the start and after one was lost, before the task ends `failed` naming the missing ones;
    /// e.g. `30s`, `5m`; default `5m`.
    #[serde(default = "RuntimeConfig::default_cluster_timeout")]
    pub cluster_timeout: String,
    /// Workers by phase (F7), under `ferry serve`: `{mode: fixed}` (default: `workers`
    /// throughout) or `{mode: by-phase, snapshot_workers: N, streaming_workers: M}` (the
    /// snapshot with N, then a savepoint and the change stream with M). A plain `ferry run`
    /// uses `workers`.
    #[serde(default)]
    pub resources: ResourcesConfig,
}

/// `runtime.resources` (F7).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourcesConfig {
    /// `fixed` (default) or `by-phase`.
    pub mode: ResourceMode,
    /// Workers while snapshot chunks are left (`by-phase`).
    pub snapshot_workers: Option<usize>,
    /// Workers once the snapshot is committed (`by-phase`).
    pub streaming_workers: Option<usize>,
}

impl ResourcesConfig {
    /// The workers of each phase, `(snapshot, streaming)`, when they differ by phase.
    pub fn by_phase(&self) -> Option<(usize, usize)> {
        match (self.mode, self.snapshot_workers, self.streaming_workers) {
            (ResourceMode::ByPhase, Some(a), Some(b)) => Some((a, b)),
            _ => None,
        }
    }
}

/// How a task's workers are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceMode {
    /// `runtime.workers` throughout.
    #[default]
    Fixed,
    /// One count for the snapshot, another for the change stream.
    ByPhase,
}

impl RuntimeConfig {
    fn default_workers() -> usize {
        1
    }
    fn default_interval() -> String {
        "1s".into()
    }
    fn default_state() -> String {
        "./.ferry".into()
    }
    fn default_batch() -> usize {
        10_000
    }
    fn default_cluster_timeout() -> String {
        "5m".into()
    }

    /// `cluster_timeout` (checked by `ferry check`: at least 1s).
    pub fn cluster_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(parse_duration_ms(&self.cluster_timeout).unwrap_or(300_000))
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            workers: Self::default_workers(),
            checkpoint_interval: Self::default_interval(),
            state: Self::default_state(),
            batch_rows: Self::default_batch(),
            cluster_timeout: Self::default_cluster_timeout(),
            resources: ResourcesConfig::default(),
        }
    }
}

/// Error policies (F9.2–F9.4).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErrorsConfig {
    /// A row the target rejects (too long, NOT NULL, duplicate key, bad value): `ignore`
    /// (default: the row becomes dirty data, the table goes on), `partial-stop` (that table
    /// stops: its changes are archived as dirty data, in order, until `ferry dirty replay`;
    /// the other tables go on) or `restart` (the run fails and restarts until the row writes;
    /// counts toward `max_restarts`).
    pub write_error: WriteErrorPolicy,
    /// Restarts after a failure (target or source down, connection lost, `restart` policy):
    /// `-1` unlimited, `0` none, up to `100`; with backoff 1 s, 2 s, 4 s … 30 s. Past the limit
    /// the run ends `failed` with the last error. Default 10.
    pub max_restarts: i32,
    /// Dirty data (F9.3): `archive` (default: JSON lines under `<archive>/<task>/dirty/`, see
    /// `ferry dirty`) or `drop` (counted and logged, not kept).
    pub dirty: DirtyMode,
    /// Where the dirty-data archive is kept: a local directory, or an S3-compatible location
    /// `s3://bucket/prefix` (settings in the plan's `s3` section). Default: the state store
    /// (`runtime.state`).
    pub dirty_archive: Option<String>,
}

impl Default for ErrorsConfig {
    fn default() -> Self {
        ErrorsConfig {
            write_error: WriteErrorPolicy::Ignore,
            max_restarts: 10,
            dirty: DirtyMode::Archive,
            dirty_archive: None,
        }
    }
}

/// The write-error policy (F9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteErrorPolicy {
    /// Rejected rows become dirty data.
    #[default]
    Ignore,
    /// The table with a rejected row stops; the others go on.
    PartialStop,
    /// The run restarts until every row writes.
    Restart,
}

/// What becomes of dirty rows (F9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DirtyMode {
    /// Kept in the task's dirty-data archive.
    #[default]
    Archive,
    /// Counted and logged only.
    Drop,
}

/// Parses `500ms`, `2s`, `1m`, `1h` into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration: write e.g. `500ms`, `1s`, `2m`"))?;
    let mult = match unit.trim() {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        u => return Err(format!("unknown unit `{u}` in `{s}`: use ms, s, m or h")),
    };
    Ok(n * mult)
}
