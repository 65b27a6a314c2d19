//! The `ferry` command line: `run`, `check`, `preview`, `ddl`, `create-tables`, `links`, `verify`, `dirty`, `serve`.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ferry::catalog::{self, DdlDialect};
use ferry::engine::{self, RunOptions};
use ferry::plan;
use std::process::ExitCode;

/// ferry copies whole databases: the existing rows, then every committed change, without a gap
/// or a duplicate, through crashes and restarts.
///
/// A task is one plan file (YAML). `ferry check PLAN` shows every mistake in it at once;
/// `ferry run PLAN` runs it; `ferry links` lists the sources and targets this build has.
#[derive(Parser, Debug)]
#[command(name = "ferry", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a plan: snapshot and changes from the source into the target.
    ///
    /// The run resumes from the newest checkpoint in the state store (the plan's
    /// `runtime.state`, default `./.ferry`): nothing committed is written again. A bounded
    /// source (e.g. datagen with `changes: N`) ends the run once its last epoch is committed;
    /// an unbounded one runs until stopped (Ctrl-C, or kill: a restart resumes).
    ///
    /// Scale: `-w N` worker threads; a cluster is the same command on every machine with
    /// `--hostfile` (one `host:port` per line, one line per process) and `--process I`.
    /// Every process must see the same state store and target directory.
    Run {
        /// The plan file.
        plan: String,
        /// Worker threads in this process (default: the plan's `runtime.workers`).
        #[arg(short = 'w', long)]
        workers: Option<usize>,
        /// Cluster: file with one `host:port` per process.
        #[arg(long, short = 'f')]
        hostfile: Option<String>,
        /// Cluster: this process's index (line number in the hostfile, from 0).
        #[arg(long, short = 'p', default_value_t = 0)]
        process: usize,
        /// Discard the task's state and start from the source's default position; with a
        /// `files` target, also delete the task's output tables.
        #[arg(long)]
        from_scratch: bool,
        /// No live progress line.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Write the run's counters, state and per-table progress as JSON to this file every
        /// second (what `ferry serve` reads).
        #[arg(long)]
        metrics_file: Option<std::path::PathBuf>,
    },
    /// Check a plan without running it: prints every error with file:line:column and exits 1.
    ///
    /// Checks syntax, unknown or misspelled keys, wrong types, missing required keys, source
    /// and target types, table patterns, name templates (unknown variables, empty or illegal
    /// resolved names), filters and function fields against the source's tables, and the
    /// primary-key rule for exactly-once and upsert.
    Check {
        /// The plan file.
        plan: String,
    },
    /// List the source and target types this build has.
    Links,
    /// Show how every selected table maps: one line per source table with its target, whether
    /// the target exists, the key used (primary key or unique index), what `create-tables`
    /// would do, and the primary-key verdict for the plan's semantics × write mode; below a
    /// table, every column whose values cannot all survive the target's types (type loss).
    ///
    /// Exits 1 when a table breaks the primary-key rule for the plan (no primary key or unique
    /// index with exactly-once or upsert), 0 otherwise.
    Preview {
        /// The plan file.
        plan: String,
        /// Print JSON (one object per table, with the verdicts of all four semantics × write
        /// mode combinations) for tools.
        #[arg(long)]
        json: bool,
        /// The dialect of the type-loss report when the target has none (files, null):
        /// mysql, mariadb, postgres or doris.
        #[arg(long)]
        dialect: Option<String>,
    },
    /// Print the target DDL: `CREATE DATABASE`/`SCHEMA` and `CREATE TABLE` per target table, in
    /// the target's dialect (or the table's `ddl_file` from the plan's `target_tables`).
    ///
    /// Save a table's DDL to a file, edit it, and name the file in the plan
    /// (`target_tables: {tables: [{tables: 'db\.t', ddl_file: t.sql}]}`) to create that table
    /// your way.
    Ddl {
        /// The plan file.
        plan: String,
        /// Only this source table (`db.table`).
        #[arg(long)]
        table: Option<String>,
        /// Another dialect than the target's: mysql, mariadb, postgres or doris.
        #[arg(long)]
        dialect: Option<String>,
    },
    /// Create the target tables in one go, each by its strategy (`target_tables` in the plan):
    /// missing → `create` (default) or `skip`; present → `use-existing` (default) or
    /// `drop-and-recreate`. Prints per table created / recreated / exists / skipped / failed
    /// with the target's error; exits 1 if any failed.
    CreateTables {
        /// The plan file.
        plan: String,
        /// Confirms dropping the present tables whose strategy is `drop-and-recreate`; without
        /// it nothing is done when any would be dropped.
        #[arg(long)]
        yes: bool,
        /// Only the tables that failed in the last `create-tables` of this task.
        #[arg(long)]
        retry_failed: bool,
    },
    /// Compare the target with the source, row by row, through the plan (F6): for every
    /// selected table, the rows the target must hold (source rows through the plan's filters,
    /// renames, dropped, constant and function columns) against the rows it holds. Columns
    /// computed from a change's time or position are not compared (named in the summary).
    ///
    /// Prints a summary per table; with `--output DIR` also writes `summary.json`,
    /// `diff.jsonl` (key, column, source and target value), `missing.jsonl`, `extra.jsonl`
    /// and `repair.sql` (statements that make a database target equal). While the task runs, a
    /// differing key is read again once the task's checkpoint has passed the source's position;
    /// only differences that persist are reported. Exit 0: equal; 1: different; 2: error.
    Verify {
        /// The plan file.
        plan: String,
        /// Only source tables (`db.table`) matching this regular expression.
        #[arg(long)]
        tables: Option<String>,
        /// Directory for the detailed results.
        #[arg(long)]
        output: Option<String>,
        /// Threads, each with one session on either side.
        #[arg(short = 'w', long, default_value_t = 2)]
        workers: usize,
        /// Re-reads of a differing key while the task runs (default: the plan's `verify.retries`).
        #[arg(long)]
        retries: Option<u32>,
        /// No progress line.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Read no server: show the newest background sweep of the running task
        /// (`verify.continuous`), from its state store.
        #[arg(long)]
        last: bool,
    },
    /// Run the task service: many tasks kept in a state directory, driven over a REST API
    /// (`/api/tasks`; every route but `/healthz` needs `Authorization: Bearer <token>`).
    ///
    /// Each running task is a `ferry run` child process (a crash takes no other task along);
    /// started again, even after kill -9, the service resumes the tasks it had running from
    /// their checkpoints.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: String,
        /// The state: a directory (tasks, their plan versions and their runs), or
        /// `s3://bucket/prefix` for the tasks and versions (S3 settings from the `AWS_*`
        /// environment: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …).
        #[arg(long, default_value = "./ferry-service")]
        state: String,
        /// With an `s3://` state: the local directory the runs work in (default
        /// `./ferry-service-work`).
        #[arg(long)]
        work: Option<String>,
        /// File holding the API token (default: `token` in the state directory, or in the work
        /// directory with an `s3://` state; made with a random token on the first start).
        #[arg(long)]
        token_file: Option<String>,
    },
    /// Talk to a running task service (`ferry serve`): list, submit, start, stop, resume and
    /// show tasks. The service's address and token come from `--url`/`--token` or
    /// `FERRY_URL`/`FERRY_TOKEN` (`--token-file` reads the token from a file).
    Task {
        /// The service's address.
        #[arg(long, env = "FERRY_URL", default_value = "http://127.0.0.1:7070")]
        url: String,
        /// The API token.
        #[arg(long, env = "FERRY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A file holding the API token (e.g. the service's `<state>/token`).
        #[arg(long)]
        token_file: Option<String>,
        #[command(subcommand)]
        what: TaskCommand,
    },
    /// Inspect the dirty-data archive: rows that could not be transformed or written, kept
    /// under the state store with the table, row, position, commit time and reason.
    Dirty {
        #[command(subcommand)]
        what: DirtyCommand,
    },
}

#[derive(Subcommand, Debug)]
enum TaskCommand {
    /// Every task: state, version, run state, committed epoch.
    List,
    /// Submit a plan file as a new task (version 1).
    Submit {
        /// The plan file.
        plan: String,
    },
    /// Run the pre-submit checks of a task's newest version: one line per check (ok, warning,
    /// error); exits 1 when one is an error (the task is then `check-error`).
    Check {
        /// The task.
        task: String,
        /// Warnings to acknowledge (check names, e.g. `type-loss`).
        #[arg(long)]
        acknowledge: Vec<String>,
    },
    /// Start a task (the newest version unless `--version`).
    Start {
        /// The task.
        task: String,
        /// Where from: default (the source's default position), latest, savepoint, or a source
        /// position: timestamp, position, gtid, lsn (with `--at`).
        #[arg(long)]
        from: Option<String>,
        /// The position of `--from timestamp|position|gtid|lsn`: `'2026-12-01 10:00:00'`,
        /// `mysql-bin.000003:1234`, `0-1-100`, `0/16B3748`.
        #[arg(long)]
        at: Option<String>,
        /// The version to run.
        #[arg(long)]
        version: Option<u32>,
    },
    /// Stop a task at its next checkpoint (→ paused), or at once with `--cancel` (→ stopped).
    Stop {
        /// The task.
        task: String,
        /// Stop now instead of at a savepoint.
        #[arg(long)]
        cancel: bool,
    },
    /// Resume a paused, stopped or failed task from its last checkpoint.
    Resume {
        /// The task.
        task: String,
    },
    /// A task's state, run status and state history, as JSON.
    Status {
        /// The task.
        task: String,
    },
}

#[derive(Subcommand, Debug)]
enum DirtyCommand {
    /// One line per archive file: its rows, and the rows per table and reason.
    List {
        /// The plan file (names the task and its state store).
        plan: String,
    },
    /// Print archived rows as JSON lines.
    Show {
        /// The plan file (names the task and its state store).
        plan: String,
        /// Only rows of this source table (`db.table`).
        #[arg(long)]
        table: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Re-apply the archived rows to the database target after the cause is fixed (a column
    /// widened, a constraint relaxed): rows refused by the transform go through it again,
    /// rows refused by the target are written again, in archive order. Rows that fail again
    /// are archived anew; replayed files move to `dirty-replayed/`; stopped tables
    /// (`write_error: partial-stop`) are released. Run it while the task is stopped.
    Replay {
        /// The plan file.
        plan: String,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ferry::secrets::RedactedStderr)
        .with_target(false)
        .init();
    // A failing worker stops the whole process at once with a clear message: the state store is
    // consistent at every moment, and a restart resumes from the last checkpoint.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a worker failed".into());
        let place = info.location().map(|l| format!(" ({}:{})", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: {}{place}", ferry::secrets::redact(&msg));
        std::process::exit(3);
    }));
    let cli = Cli::parse();
    if let Command::Run { .. } = cli.command {
        if let Err(e) = ferry::service::runner::die_with_parent() {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", ferry::secrets::redact(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

/// Maps SIGTERM and the first Ctrl-C (SIGINT) to a savepoint stop of the task, a second one to
/// a cancel; the returned handle ends the signal thread once the task has ended.
fn stop_on_signals(stopper: engine::Stopper) -> anyhow::Result<signal_hook::iterator::Handle> {
    use ferry::runtime::StopMode;
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    let handle = signals.handle();
    std::thread::spawn(move || {
        for (n, _) in signals.forever().enumerate() {
            if n == 0 {
                eprintln!(
                    "stopping at the next checkpoint… (Ctrl-C again to stop now; the next run resumes from the last checkpoint)"
                );
                stopper.stop(StopMode::Savepoint);
            } else {
                eprintln!("stopping now…");
                stopper.stop(StopMode::Cancel);
            }
        }
    });
    Ok(handle)
}

/// `ferry task …`: one API call, its answer printed; exit 1 when the service refused.
fn task_client(
    url: &str,
    token: Option<String>,
    token_file: Option<String>,
    what: TaskCommand,
) -> anyhow::Result<ExitCode> {
    let token = match (token, token_file) {
        (Some(t), _) => t,
        (None, Some(f)) => std::fs::read_to_string(&f).with_context(|| format!("reading {f}"))?.trim().to_string(),
        (None, None) => bail!("no token: pass --token, --token-file or set FERRY_TOKEN"),
    };
    let (method, path, body) = match &what {
        TaskCommand::List => ("GET", "/api/tasks".to_string(), String::new()),
        TaskCommand::Submit { plan } => (
            "POST",
            "/api/tasks".to_string(),
            std::fs::read_to_string(plan).with_context(|| format!("reading {plan}"))?,
        ),
        TaskCommand::Start { task, from, version, at } => {
            let mut body = serde_json::json!({ "from": from, "version": version });
            if let (Some(f), Some(at)) = (from.as_deref(), at) {
                match f {
                    "position" => {
                        let (file, pos) = at.rsplit_once(':').context("--at for a position: FILE:OFFSET")?;
                        body["file"] = file.into();
                        body["position"] =
                            pos.parse::<u64>().context("--at FILE:OFFSET: the offset is a number")?.into();
                    }
                    key => body[key] = at.as_str().into(),
                }
            }
            ("POST", format!("/api/tasks/{task}/start"), body.to_string())
        }
        TaskCommand::Stop { task, cancel } => (
            "POST",
            format!("/api/tasks/{task}/stop"),
            serde_json::json!({ "mode": if *cancel { "cancel" } else { "savepoint" } }).to_string(),
        ),
        TaskCommand::Resume { task } => ("POST", format!("/api/tasks/{task}/resume"), String::new()),
        TaskCommand::Check { task, acknowledge } => {
            ("POST", format!("/api/tasks/{task}/check"), serde_json::json!({ "acknowledge": acknowledge }).to_string())
        }
        TaskCommand::Status { task } => ("GET", format!("/api/tasks/{task}"), String::new()),
    };
    let reply = ferry::service::client::call(url, Some(&token), method, &path, &[], body.as_bytes())
        .with_context(|| format!("calling the service at {url}"))?;
    let v = reply.json();
    if reply.status >= 400 {
        eprintln!("error ({}): {}", reply.status, v["error"].as_str().unwrap_or(&reply.body));
        for e in v["errors"].as_array().into_iter().flatten() {
            eprintln!("  {}", e.as_str().unwrap_or_default());
        }
        if let Some(allowed) = v["allowed"].as_array() {
            eprintln!("  allowed: {}", allowed.iter().filter_map(|a| a.as_str()).collect::<Vec<_>>().join(", "));
        }
        return Ok(ExitCode::from(1));
    }
    match what {
        TaskCommand::List => {
            for t in v["tasks"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<12} v{:<4} {:<9} {:>12} rows {:>10.0}/s lag {} dirty {} epoch {}{}",
                    t["task"].as_str().unwrap_or_default(),
                    t["state"].as_str().unwrap_or_default(),
                    t["version"],
                    t["phase"].as_str().unwrap_or("-"),
                    t["rows_out"].as_u64().unwrap_or(0),
                    t["rows_per_second"].as_f64().unwrap_or(0.0),
                    t["lag_seconds"].as_f64().map_or("-".to_string(), |l| format!("{l:.1}s")),
                    t["dirty"].as_u64().unwrap_or(0),
                    t["run"]["epoch"].as_u64().unwrap_or(0),
                    t["last_error"].as_str().map(|e| format!("; last error: {e}")).unwrap_or_default()
                );
            }
        }
        TaskCommand::Check { .. } => {
            for c in v["checks"].as_array().into_iter().flatten() {
                let level = c["level"].as_str().unwrap_or_default();
                let ack = if c["acknowledged"] == serde_json::json!(true) { " (acknowledged)" } else { "" };
                let mut lines = c["message"].as_str().unwrap_or_default().lines();
                println!(
                    "{level:<8} {:<16} {}{ack}",
                    c["name"].as_str().unwrap_or_default(),
                    lines.next().unwrap_or("")
                );
                for l in lines {
                    println!("{:<25} {l}", "");
                }
            }
            if v["ok"] != serde_json::json!(true) {
                eprintln!("the check found errors: task {} is check-error", v["task"].as_str().unwrap_or_default());
                return Ok(ExitCode::from(1));
            }
        }
        TaskCommand::Status { .. } => println!("{}", serde_json::to_string_pretty(&v)?),
        _ => println!(
            "{}: {}{}",
            v["task"].as_str().unwrap_or_default(),
            v["state"].as_str().map(str::to_string).unwrap_or_else(|| format!("version {}", v["version"])),
            v["version"].as_u64().map(|n| format!(" (version {n})")).unwrap_or_default()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The sink connector of a compiled plan.
fn sink_of(compiled: &plan::Compiled) -> &'static dyn ferry::connector::SinkConnector {
    ferry::connectors::registry()
        .sink(&compiled.plan.target.kind)
        .expect("the plan's target was parsed by its connector")
}

/// The plan, or `None` after printing its errors.
fn shown<T>(loaded: Result<T, plan::PlanErrors>) -> Option<T> {
    loaded.map_err(|errors| eprintln!("{errors}")).ok()
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Task { url, token, token_file, what } => task_client(&url, token, token_file, what),
        Command::Serve { listen, state, work, token_file } => {
            ferry::service::serve(ferry::service::ServeOptions {
                listen,
                state,
                work: work.map(Into::into),
                token_file: token_file.map(Into::into),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { plan: path, last: true, .. } => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
            let Some(plan) = shown(ferry::connectors::load(&path, &text)) else {
                return Ok(ExitCode::from(2));
            };
            let store = plan.settings.state_store()?;
            let state = ferry::state::TaskState::new(store, &plan.settings.task);
            match ferry::verify::continuous::last(&state).map_err(anyhow::Error::msg)? {
                None => {
                    println!("no background verification yet for task {} (verify.continuous)", plan.settings.task);
                    Ok(ExitCode::SUCCESS)
                }
                Some((last, summary)) => {
                    let at = ferry_operators::Value::Timestamp(last["finished_micros"].as_i64().unwrap_or(0));
                    println!("background sweep {} finished at {at} UTC", last["sweep"]);
                    print!("{summary}");
                    Ok(if last["equal"] == true { ExitCode::SUCCESS } else { ExitCode::from(1) })
                }
            }
        }
        Command::Verify { plan: path, tables, output, workers, retries, quiet, last: false } => {
            let Some(compiled) = shown(ferry::connectors::load_file(&path)) else {
                return Ok(ExitCode::from(2));
            };
            let tables = match tables {
                Some(t) => Some(regex::Regex::new(&format!("^(?:{t})$")).with_context(|| format!("--tables `{t}`"))?),
                None => None,
            };
            let settings = &compiled.plan.settings;
            let store = settings.state_store()?;
            let state = ferry::state::TaskState::new(store, &settings.task);
            let opts = ferry::verify::VerifyOptions {
                tables,
                workers,
                retries,
                progress: !quiet,
                max_rows_per_second: 0,
                only: None,
                cancel: None,
            };
            let report = ferry::verify::verify(&compiled, &state, &opts)?;
            print!("{}", report.summary());
            if let Some(dir) = output {
                report.write(std::path::Path::new(&dir)).with_context(|| format!("writing {dir}"))?;
                println!("details in {dir}/ (summary.json, diff.jsonl, missing.jsonl, extra.jsonl, repair.sql)");
            }
            Ok(if report.differs() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Dirty { what: DirtyCommand::Replay { plan: path } } => {
            let Some(compiled) = shown(ferry::connectors::load_file(&path)) else {
                return Ok(ExitCode::from(1));
            };
            let s = ferry::engine::replay_dirty(compiled)?;
            if s.files == 0 {
                println!("no dirty rows to replay");
            } else {
                println!(
                    "replayed {} rows from {} files: {} written, {} failed again (archived anew){}",
                    s.rows,
                    s.files,
                    s.written,
                    s.failed_again,
                    if s.unstopped > 0 { format!("; {} stopped tables released", s.unstopped) } else { String::new() }
                );
            }
            Ok(if s.failed_again > 0 { ExitCode::from(4) } else { ExitCode::SUCCESS })
        }
        Command::Dirty { what } => {
            let (plan_path, table, limit) = match &what {
                DirtyCommand::List { plan } => (plan, None, usize::MAX),
                DirtyCommand::Show { plan, table, limit } => (plan, table.clone(), *limit),
                DirtyCommand::Replay { .. } => unreachable!("handled above"),
            };
            let text = std::fs::read_to_string(plan_path).with_context(|| format!("reading {plan_path}"))?;
            let plan = match ferry::connectors::load(plan_path, &text) {
                Ok(p) => p,
                Err(errors) => {
                    eprintln!("{errors}");
                    return Ok(ExitCode::from(1));
                }
            };
            let store = plan.settings.state_store()?;
            let state = ferry::engine::dirty_archive(
                &plan.settings,
                &ferry::state::TaskState::new(store, &plan.settings.task),
            )?;
            let files = ferry::engine::archive_files(&state)?;
            if files.is_empty() {
                println!("no dirty rows for task {}", plan.settings.task);
                return Ok(ExitCode::SUCCESS);
            }
            let mut shown = 0usize;
            for f in &files {
                let data = state.store().get(f)?.unwrap_or_default();
                let text = String::from_utf8_lossy(&data);
                let mut per: std::collections::BTreeMap<(String, String), usize> = Default::default();
                let mut rows = 0usize;
                for line in text.lines() {
                    let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("{f}: bad line"))?;
                    let t = v["table"].as_str().unwrap_or("").to_string();
                    if table.as_ref().is_some_and(|want| *want != t) {
                        continue;
                    }
                    rows += 1;
                    match &what {
                        DirtyCommand::List { .. } => {
                            *per.entry((t, v["reason"].as_str().unwrap_or("").to_string())).or_default() += 1
                        }
                        DirtyCommand::Show { .. } if shown < limit => {
                            println!("{line}");
                            shown += 1;
                        }
                        DirtyCommand::Show { .. } | DirtyCommand::Replay { .. } => {}
                    }
                }
                if let DirtyCommand::List { .. } = what {
                    println!("{f}: {rows} rows");
                    for ((t, reason), n) in per {
                        println!("  {n:>8}  {t}: {reason}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Preview { plan: path, json, dialect } => {
            let Some(compiled) = shown(ferry::connectors::load_file_lenient(&path)) else {
                return Ok(ExitCode::from(1));
            };
            let dialect = match dialect {
                Some(d) => Some(DdlDialect::parse(&d).map_err(anyhow::Error::msg)?),
                None => DdlDialect::of_plan(&compiled),
            };
            let mut admin = sink_of(&compiled).admin(&compiled).map_err(anyhow::Error::msg)?;
            let rows = catalog::preview::preview(
                &compiled,
                dialect,
                admin.as_deref_mut().map(|a| a as &mut dyn catalog::create::TableAdmin),
            )
            .map_err(anyhow::Error::msg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", catalog::preview::render(&rows, &compiled, dialect));
            }
            Ok(if rows.iter().any(|r| r.verdict.is_some()) { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Ddl { plan: path, table, dialect } => {
            let Some(compiled) = shown(ferry::connectors::load_file_lenient(&path)) else {
                return Ok(ExitCode::from(1));
            };
            let dialect = match dialect {
                Some(d) => DdlDialect::parse(&d).map_err(anyhow::Error::msg)?,
                None => DdlDialect::of_plan(&compiled).context(
                    "this plan's target has no tables (files, null): name a dialect with --dialect mysql|mariadb|postgres|doris",
                )?,
            };
            if dialect == DdlDialect::Postgres {
                println!("-- target_tables.postgres: {}\n", compiled.plan.settings.target_tables.postgres.describe());
            }
            let mut shown = 0;
            for (id, s) in compiled.catalog.tables.iter().enumerate() {
                if table.as_ref().is_some_and(|t| *t != s.name.to_string()) {
                    continue;
                }
                shown += 1;
                match catalog::ddl::table_ddl(&compiled, id as u32, dialect) {
                    Ok(d) => {
                        let from = d.file.as_ref().map(|f| format!(" (from {f})")).unwrap_or_default();
                        println!("-- {} → {}.{}{from}", d.source, d.database, d.table);
                        println!("{}", d.script());
                    }
                    Err(e) => println!("-- {e}\n"),
                }
            }
            if shown == 0 {
                bail!("no selected source table is named {}", table.unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CreateTables { plan: path, yes, retry_failed } => {
            let Some(compiled) = shown(ferry::connectors::load_file(&path)) else {
                return Ok(ExitCode::from(1));
            };
            let mut admin = match DdlDialect::of_plan(&compiled) {
                Some(_) => sink_of(&compiled).admin(&compiled).map_err(anyhow::Error::msg)?,
                None => None,
            };
            let opts = catalog::create::CreateOptions { yes, retry_failed };
            let reports = match catalog::create::create_tables(
                &compiled,
                admin.as_deref_mut().map(|a| a as &mut dyn catalog::create::TableAdmin),
                opts,
            ) {
                Ok(r) => r,
                Err(e @ catalog::create::CreateError::NeedsYes(_)) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(1));
                }
                Err(e) => return Err(e.into()),
            };
            if reports.is_empty() {
                println!("nothing to do{}", if retry_failed { ": no table failed last time" } else { "" });
            }
            let mut failed = 0;
            for r in &reports {
                use catalog::create::Outcome as O;
                let what = match &r.outcome {
                    O::Created => "created".to_string(),
                    O::Recreated => "dropped and created anew".to_string(),
                    O::Existing => "exists, used as it is".to_string(),
                    O::Skipped => "missing, skipped".to_string(),
                    O::Failed(e) => {
                        failed += 1;
                        format!("FAILED: {e}")
                    }
                };
                println!("{} → {}: {what}", r.source, r.target);
            }
            if failed > 0 {
                println!("{failed} failed; fix the cause and run `ferry create-tables {path} --retry-failed`");
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Links => {
            use ferry::plan::Connectors;
            let registry = ferry::connectors::registry();
            println!("sources: {}", registry.source_types().join(", "));
            println!("targets: {}", registry.target_types().join(", "));
            println!("links:   every source × every target");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { plan: path } => match ferry::connectors::load_file(&path) {
            Ok(c) => {
                println!("{path}: ok — {} tables", c.tables.len());
                for (s, t) in c.catalog.tables.iter().zip(&c.tables) {
                    println!("  {} → {}", s.name, t.target_schema.name);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{} error(s)", errors.0.len());
                Ok(ExitCode::from(1))
            }
        },
        Command::Run { plan: path, workers, hostfile, process, from_scratch, quiet, metrics_file } => {
            let compiled = match ferry::connectors::load_file(&path) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    eprintln!("{} error(s); nothing was run", errors.0.len());
                    return Ok(ExitCode::from(1));
                }
            };
            let hosts = match &hostfile {
                Some(f) => std::fs::read_to_string(f)
                    .with_context(|| format!("reading hostfile {f}"))?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from)
                    .collect(),
                None => Vec::new(),
            };
            if process > 0 && process >= hosts.len().max(1) {
                bail!("--process {process} is not a line of the hostfile ({} processes)", hosts.len());
            }
            let task =
                engine::Task::start(compiled, RunOptions { workers, hosts, process, from_scratch, progress: !quiet });
            let signals = stop_on_signals(task.stopper())?;
            let metrics = metrics_file.map(|f| task.metrics_file(f));
            let summary = task.wait();
            drop(metrics);
            signals.close();
            let summary = summary?;
            if process == 0 {
                println!(
                    "{} {} changes in, {} rows out, {} dirty, in {:.2}s; committed epoch {} → {}",
                    if summary.finished { "done:" } else { "stopped:" },
                    summary.rows_in,
                    summary.rows_out,
                    summary.dirty,
                    summary.elapsed.as_secs_f64(),
                    summary.epoch,
                    summary.output
                );
                for (t, n) in summary.tables.iter().filter(|(_, n)| *n > 0) {
                    println!("  {t}: {n}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
