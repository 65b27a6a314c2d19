//! Preparing a PostgreSQL run, before the workers start: the server's preconditions, each
//! selected table's (privileges, replica identity), the publication (made before the slot),
//! the task's slot, and the snapshot's chunk plan. Process 0 decides and records
//! `<task>/source/pg.json`; other processes and later runs read it.
//!
//! | state | slot | what happens |
//! |---|---|---|
//! | no `pg.json` | missing | publication, then the slot (its consistent point is the stream's start), then the chunk plan |
//! | no `pg.json` | exists, idle | a first run that died before recording its plan: the slot is dropped and made again |
//! | `pg.json` | exists | the run resumes |
//! | `pg.json` | missing | definite error: the slot was dropped, the changes since the checkpoint are gone; `--from-scratch` starts over |

use super::config::{PostgresSourceConfig, PublicationMode, ReplicaIdentityPolicy, StartFrom};
use super::discover::{self as d, Endpoint, PgSourceError};
use super::slot;
use super::snapshot::{self, Chunk, UNSELECTED};
use crate::plan::config::ReadMode;
use crate::plan::Compiled;
use crate::runtime::{io_runtime, TaskError};
use crate::state::TaskState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Everything the PostgreSQL operators need, prepared before the dataflow starts.
#[derive(Clone, Debug)]
pub struct PgRun {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// The task's slot.
    pub slot: String,
    /// The publication it streams.
    pub publication: String,
    /// The snapshot's chunks (empty in `incremental` mode).
    pub chunks: Arc<Vec<Chunk>>,
    /// Where the stream starts when no checkpoint says otherwise (`0`: the slot's confirmed
    /// position).
    pub start: u64,
    /// Stop once the stream passes this position (bounded runs).
    pub stop_at: Option<u64>,
    /// The logical-message heartbeat period.
    pub heartbeat: Option<Duration>,
    /// The snapshot this process's readers read under, one handle per local worker (each
    /// takes one when its operators are built; the last reader to finish ends the export).
    pub exported: Arc<std::sync::Mutex<Vec<Arc<slot::Exported>>>>,
    /// Sessions that read a big whole-table chunk in `ctid` ranges together at most: this
    /// process's workers.
    pub sessions: usize,
    /// Helper sessions the process's range reads may still open (`sessions - 1` in all: the
    /// source sees at most twice the workers' sessions).
    pub helpers: Arc<std::sync::atomic::AtomicUsize>,
}

/// The recorded plan.
#[derive(serde::Serialize, serde::Deserialize)]
struct PgPlan {
    /// The selected tables when the plan was made, `db.schema.table`.
    tables: Vec<String>,
    /// The chunks.
    chunks: Vec<Chunk>,
    /// The slot.
    slot: String,
    /// Where the stream starts (the slot's consistent point, or the configured LSN).
    start: u64,
}

fn src(e: PgSourceError) -> TaskError {
    if e.is_transient() {
        TaskError::transient(format!("source: {e}"))
    } else {
        TaskError::definite(format!("source: {e}"))
    }
}

/// Prepares a PostgreSQL run (see the module doc).
pub fn prepare(
    cfg: &PostgresSourceConfig,
    plan: &Compiled,
    state: &TaskState,
    process: usize,
    workers: usize,
) -> Result<PgRun, TaskError> {
    let sto = |e: crate::store::StoreError| TaskError::transient(format!("state store: {e}"));
    let ep = d::endpoint(cfg).map_err(src)?;
    let task = &plan.plan.settings.task;
    let slot_name = cfg.slot_for(task);
    let publication = cfg.publication_for(task);
    let path = state.path("source/pg.json");
    let full = plan.plan.settings.mode == ReadMode::FullIncremental && cfg.start.from == StartFrom::Default;
    io_runtime().block_on(async {
        let c = d::connect(&ep).await.map_err(src)?;
        d::check_preconditions(&c, &ep.user).await.map_err(src)?;
        let saved: Option<PgPlan> = match state.store().get(&path).map_err(sto)? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(|e| TaskError::definite(format!("{path}: {e}")))?),
            None => None,
        };
        let info = slot::slot_info(&c, &slot_name).await.map_err(src)?;
        let recorded = match saved {
            Some(mut p) => {
                if p.slot != slot_name {
                    return Err(TaskError::definite(format!(
                        "source.slot: the task reads slot `{}`, the plan now names `{slot_name}`: \
                         name the old slot again, or start over with `ferry run --from-scratch`",
                        p.slot
                    )));
                }
                if info.is_none() {
                    return Err(TaskError::definite(format!(
                        "source: the task's replication slot `{slot_name}` is gone (dropped, or the server was \
                         restored or failed over): the changes since the last checkpoint cannot be read any more. \
                         ferry never makes a new slot over a lost one; start over with `ferry run --from-scratch`"
                    )));
                }
                ensure_publication(&c, cfg, &publication, plan, false).await.map_err(src)?;
                if !covers(&p, plan) {
                    if process == 0 {
                        // Tables the plan took since the first run (new in the source, or a
                        // wider selection): read whole under snapshots taken now, after the
                        // publication holds them; the stream skips what those reads saw.
                        add_tables(&c, &mut p, plan, cfg.chunk_rows).await.map_err(src)?;
                        state.store().put(&path, serde_json::to_vec(&p).expect("plan serializes")).map_err(sto)?;
                    } else {
                        p = wait_for_plan(state, &path, plan).await?;
                    }
                }
                p
            }
            None if process == 0 => {
                ensure_publication(&c, cfg, &publication, plan, true).await.map_err(src)?;
                if let Some(i) = &info {
                    if i.active {
                        return Err(TaskError::definite(format!(
                            "source.slot: slot `{slot_name}` is in use by another session (another task of the same \
                             name?): name another `slot`, or stop the other reader"
                        )));
                    }
                    if i.plugin != "pgoutput" {
                        return Err(TaskError::definite(format!(
                            "source.slot: slot `{slot_name}` uses the `{}` plugin; ferry reads pgoutput: name another slot",
                            i.plugin
                        )));
                    }
                }
                let start = match (cfg.start.from, &info) {
                    (StartFrom::Lsn, Some(i)) => {
                        let want = super::config::parse_lsn(cfg.start.lsn.as_deref().unwrap_or_default())
                            .map_err(TaskError::definite)?;
                        if want < i.confirmed {
                            return Err(TaskError::definite(format!(
                                "source.start.lsn: {} is behind slot `{slot_name}`'s confirmed position {}: \
                                 that WAL is gone",
                                super::config::format_lsn(want),
                                super::config::format_lsn(i.confirmed)
                            )));
                        }
                        want
                    }
                    (StartFrom::Lsn, None) => {
                        return Err(TaskError::definite(format!(
                            "source.start.lsn needs the existing slot `{slot_name}` (a new slot starts where the WAL \
                             is now): create it first, or use `start.from: latest`"
                        )))
                    }
                    (StartFrom::Latest, Some(i)) if !full => i.confirmed,
                    (_, existing) => {
                        if existing.is_some() {
                            // A first run that died before recording its plan: nothing of
                            // the slot was used.
                            tracing::info!(slot = %slot_name, "dropping the slot a first run left before recording its plan");
                            slot::drop_slot(&c, &slot_name).await.map_err(src)?;
                        }
                        slot::create_slot(&ep, &slot_name).await.map_err(src)?
                    }
                };
                let mut p = PgPlan { tables: Vec::new(), chunks: Vec::new(), slot: slot_name.clone(), start };
                if full {
                    add_tables(&c, &mut p, plan, cfg.chunk_rows).await.map_err(src)?;
                } else {
                    p.tables = plan.catalog.tables.iter().map(|t| t.name.to_string()).collect();
                }
                state.store().put(&path, serde_json::to_vec(&p).expect("plan serializes")).map_err(sto)?;
                p
            }
            // Process 0 plans; wait for its plan.
            None => wait_for_plan(state, &path, plan).await?,
        };
        // Chunks follow their table's place in the current catalog.
        let now: std::collections::HashMap<String, u32> =
            plan.catalog.tables.iter().enumerate().map(|(i, t)| (t.name.to_string(), i as u32)).collect();
        let chunks: Vec<Chunk> = recorded
            .chunks
            .into_iter()
            .map(|mut ch| {
                let name = recorded.tables.get(ch.table as usize);
                ch.table = name.and_then(|n| now.get(n)).copied().unwrap_or(UNSELECTED);
                ch
            })
            .collect();
        let stop_at = if cfg.bounded {
            // The insert position: with `synchronous_commit = off` a committed transaction may
            // not be written out yet (`pg_current_wal_lsn()` would be behind it).
            let row = c
                .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
                .await
                .map_err(|e| src(PgSourceError::from_pg(e)))?;
            let at = super::config::parse_lsn(row.get::<_, &str>(0)).map_err(TaskError::definite)?;
            // A commit after the stop position, so the stream reaches it even if the source
            // is idle from now on.
            c.batch_execute("SELECT pg_logical_emit_message(true, 'ferry_bound', '')")
                .await
                .map_err(|e| src(PgSourceError::from_pg(e)))?;
            Some(at)
        } else {
            None
        };
        // One snapshot for all of this process's readers, exported before any worker runs: a
        // slot waits for every transaction open on the server to end before it exports, and
        // the target's open epoch transaction on the same cluster (PostgreSQL → PostgreSQL)
        // would never end while a reader waited (its epoch needs that reader's chunks).
        let done = chunks_done(state)?;
        let unread = chunks.iter().any(|ch| ch.table != UNSELECTED && !done.contains(&ch.id));
        let exported = if unread {
            let e = Arc::new(slot::export(&ep, &slot::temp_slot_name(&slot_name, process)).await.map_err(src)?);
            tracing::debug!(point = %super::config::format_lsn(e.lsn), "snapshot exported");
            vec![e; workers.max(1)]
        } else {
            Vec::new()
        };
        Ok(PgRun {
            exported: Arc::new(std::sync::Mutex::new(exported)),
            sessions: workers.max(1),
            helpers: Arc::new(std::sync::atomic::AtomicUsize::new(workers.max(1) - 1)),
            endpoint: ep.clone(),
            slot: slot_name.clone(),
            publication: publication.clone(),
            chunks: Arc::new(chunks),
            start: recorded.start,
            stop_at,
            heartbeat: cfg.heartbeat(),
        })
    })
}

/// The chunks the newest checkpoint has as done (replayed epochs read theirs again).
fn chunks_done(state: &TaskState) -> Result<std::collections::HashSet<u32>, TaskError> {
    let manifest = state.latest_manifest().map_err(|e| TaskError::transient(format!("state store: {e}")))?;
    Ok(manifest
        .map(|m| crate::connector::snapshot::done_chunks::<snapshot::Point>(&m.offsets).map(|(c, _)| c).collect())
        .unwrap_or_default())
}

/// Adds the catalog's tables that `p` lacks to it, with their chunks.
async fn add_tables(c: &Client, p: &mut PgPlan, plan: &Compiled, chunk_rows: u64) -> Result<(), PgSourceError> {
    let later = !p.tables.is_empty();
    for schema in &plan.catalog.tables {
        let name = schema.name.to_string();
        if p.tables.contains(&name) {
            continue;
        }
        if later {
            tracing::info!(table = %name, "a table the task did not read before: its rows are copied");
        }
        let t = p.tables.len() as u32;
        p.tables.push(name);
        let first = p.chunks.len() as u32;
        p.chunks.extend(snapshot::plan_table(c, t, schema, chunk_rows, first).await?);
    }
    Ok(())
}

/// Whether the recorded plan has every table of the current catalog.
fn covers(p: &PgPlan, plan: &Compiled) -> bool {
    plan.catalog.tables.iter().all(|t| p.tables.contains(&t.name.to_string()))
}

/// The plan process 0 records, once it has every table of the current catalog.
async fn wait_for_plan(state: &TaskState, path: &str, plan: &Compiled) -> Result<PgPlan, TaskError> {
    let started = Instant::now();
    loop {
        let saved = state.store().get(path).map_err(|e| TaskError::transient(format!("state store: {e}")))?;
        if let Some(b) = saved {
            let p: PgPlan = serde_json::from_slice(&b).map_err(|e| TaskError::definite(format!("{path}: {e}")))?;
            if covers(&p, plan) {
                return Ok(p);
            }
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(TaskError::definite("process 0 did not record the source plan within 10 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each selected table: `SELECT` granted, and a replica identity that identifies its rows
/// (the policy decides about `DEFAULT`). One error lists every table with its fix.
pub async fn check_tables(
    c: &Client,
    tables: &[ferry_operators::TableSchema],
    cfg: &PostgresSourceConfig,
    user: &str,
) -> Result<(), PgSourceError> {
    let mut problems = Vec::new();
    for t in tables {
        let q = snapshot::qualified(t);
        let row = c
            .query_one(
                "SELECT has_table_privilege($1::text::regclass, 'SELECT'), relreplident::text FROM pg_class WHERE oid = $1::text::regclass",
                &[&q],
            )
            .await
            .map_err(PgSourceError::from_pg)?;
        let (select, identity): (bool, String) = (row.get(0), row.get(1));
        if !select {
            problems.push(format!("`GRANT SELECT ON {q} TO \"{user}\";`"));
        }
        let keyed = !t.primary_key.is_empty();
        match identity.as_str() {
            "f" => {}
            "n" => problems.push(format!("{q} has REPLICA IDENTITY NOTHING: `ALTER TABLE {q} REPLICA IDENTITY FULL;`")),
            "d" if !keyed => problems
                .push(format!("{q} has no primary key to identify its rows: `ALTER TABLE {q} REPLICA IDENTITY FULL;`")),
            _ if cfg.replica_identity == ReplicaIdentityPolicy::RequireFull => problems.push(format!(
                "{q} has REPLICA IDENTITY DEFAULT and `replica_identity: require-full` is set: \
                 `ALTER TABLE {q} REPLICA IDENTITY FULL;`"
            )),
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PgSourceError::Precondition(format!("the source tables need: {}", problems.join("; "))))
    }
}

/// The publication: created for the selected tables (`create` mode, on a first run: before
/// the slot) or extended with tables the selection gained; in `existing` mode, checked to
/// hold every selected table. After the first run a missing publication is a definite error
/// (one made now cannot decode the WAL the slot still holds).
async fn ensure_publication(
    c: &Client,
    cfg: &PostgresSourceConfig,
    name: &str,
    plan: &Compiled,
    first_run: bool,
) -> Result<(), PgSourceError> {
    let err = PgSourceError::from_pg;
    let row = c.query_opt("SELECT puballtables FROM pg_publication WHERE pubname = $1", &[&name]).await.map_err(err)?;
    let tables: Vec<String> = plan.catalog.tables.iter().map(snapshot::qualified).collect();
    let Some(row) = row else {
        if cfg.publication_mode == PublicationMode::Existing {
            return Err(PgSourceError::Precondition(format!(
                "source.publication: publication `{name}` does not exist: `CREATE PUBLICATION {name} FOR TABLE {};`",
                tables.join(", ")
            )));
        }
        if !first_run {
            return Err(PgSourceError::Precondition(format!(
                "source.publication: publication `{name}` is gone: the slot's changes since the last checkpoint \
                 cannot be decoded with a publication made now; start over with `ferry run --from-scratch`"
            )));
        }
        c.batch_execute(&format!(
            "CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)",
            snapshot::ident(name),
            tables.join(", ")
        ))
        .await
        .map_err(|e| {
            PgSourceError::Precondition(format!(
                "source.publication: cannot create publication `{name}` ({}): a table owner or superuser can run \
                 `CREATE PUBLICATION {name} FOR TABLE {};` and the plan set `publication_mode: existing`",
                crate::secrets::redact(&e.to_string()),
                tables.join(", ")
            ))
        })?;
        return Ok(());
    };
    if row.get::<_, bool>(0) {
        return Ok(());
    }
    let have: std::collections::HashSet<String> = c
        .query("SELECT format('%I.%I', schemaname, tablename) FROM pg_publication_tables WHERE pubname = $1", &[&name])
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let quoted_have: std::collections::HashSet<String> = have
        .iter()
        .map(|h| {
            let (s, t) = h.split_once('.').unwrap_or(("", h));
            format!("{}.{}", snapshot::ident(s.trim_matches('"')), snapshot::ident(t.trim_matches('"')))
        })
        .collect();
    let missing: Vec<&String> = tables.iter().filter(|t| !quoted_have.contains(*t)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    if cfg.publication_mode == PublicationMode::Existing {
        return Err(PgSourceError::Precondition(format!(
            "source.publication: publication `{name}` lacks {list}: `ALTER PUBLICATION {name} ADD TABLE {list};`"
        )));
    }
    c.batch_execute(&format!("ALTER PUBLICATION {} ADD TABLE {list}", snapshot::ident(name))).await.map_err(err)?;
    Ok(())
}
