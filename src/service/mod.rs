//! The task service (`ferry serve`): many tasks, each a plan with immutable versions, kept in
//! a state directory and driven over a REST API (see [`api`]).
//!
//! ```text
//!  HTTP (api) ──► Service ──► Records (record::)          <state>/tasks/<task>/task.json, versions/
//!                   │   └───► runs (runner::)             one `ferry run` child per running task
//!                   │              │ exits
//!                   └──────────────┘ on_exit: the run's status.json → paused | stopped |
//!                                    finished | failed
//! ```
//!
//! States (F10.5): `initialized` → `running` → `stopping` → `paused` (savepoint) or `stopped`
//! (cancel); a run ends `finished` (bounded) or `failed`. Which start is allowed depends on the
//! state (F10.4): never run — from the source's default position; paused — resume from the
//! savepoint (`savepoint`/`latest`) or start over (`default`); stopped or failed — from the last
//! checkpoint (`latest`) or over (`default`); finished — over. A refused combination is a 409
//! that lists the allowed ones.
//!
//! The service restarted (even after kill -9) loads every record; a task it had running is
//! started again and resumes from its checkpoint; one it was stopping is `stopped`.

pub mod alerts;
pub mod api;
pub mod check;
pub mod client;
pub mod metrics;
pub mod record;
pub mod runner;

use record::{EditLock, RecordError, Records, StopKind, TaskRecord, TaskStatus};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// An API answer other than success: the HTTP status and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The HTTP status code.
    pub status: u16,
    /// The JSON body (`{"error": …}` and details).
    pub body: Value,
}

impl Refusal {
    fn new(status: u16, msg: impl Into<String>) -> Refusal {
        Refusal { status, body: json!({ "error": msg.into() }) }
    }

    fn with(mut self, key: &str, v: Value) -> Refusal {
        self.body[key] = v;
        self
    }
}

impl From<RecordError> for Refusal {
    fn from(e: RecordError) -> Refusal {
        match e {
            RecordError::VersionTaken(n) => Refusal::new(409, format!("version {n} was written by another editor")),
            other => Refusal::new(500, other.to_string()),
        }
    }
}

/// A successful answer: status and JSON body.
pub type Answer = Result<(u16, Value), Refusal>;

/// A task's samples: `(micros, rows/s, lag seconds)`, oldest first.
type Series = std::collections::VecDeque<(i64, f64, Option<f64>)>;

/// Numbers the draft files of `POST /api/check`.
static DRAFTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A task as the service holds it: its record and its run, if one is alive.
struct Entry {
    record: TaskRecord,
    run: Option<runner::RunHandle>,
    /// Start again from the last checkpoint once the run has ended (`restart`).
    restart: bool,
    /// The run is stopping at a savepoint to go on with the streaming workers (by-phase).
    switch: bool,
    /// When the current run was launched (µs): a status older than that is an earlier run's.
    launched_micros: i64,
}

/// The service: every task's record and run.
pub struct Service {
    records: Records,
    tasks: Mutex<BTreeMap<String, Entry>>,
    /// Per task: the monitor's memory and the incidents (`alerts.json`), loaded on first look.
    alerts: Mutex<BTreeMap<String, (alerts::Watch, Vec<alerts::Incident>)>>,
    /// The webhook sender, once the monitor runs.
    sender: std::sync::OnceLock<alerts::Sender>,
    /// What each task's plan reads and writes, by the version it was computed for.
    footprints: Mutex<BTreeMap<String, (u32, check::Footprint)>>,
    /// Per task, a sample every 10 s of the last hour: `(micros, rows/s, lag seconds)`.
    series: Mutex<BTreeMap<String, Series>>,
    /// Per task, its run's plan and state store, by that plan's text: status reads (every
    /// `GET /api/tasks`, `/metrics` and monitor tick) load a plan only when it changed.
    run_states: Mutex<BTreeMap<String, (String, Arc<RunOf>)>>,
}

/// A task's run as the service reads it: the plan in its work directory and its state store.
type RunOf = (crate::plan::Plan, crate::state::TaskState);

/// Where a start begins (F10.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The source's default position (a new snapshot).
    Default,
    /// The last checkpoint (the savepoint of a paused task).
    Latest,
}

impl Service {
    /// Opens the state store (a directory or `s3://…`; runs work under `work`) and starts
    /// again the runs that were running.
    pub fn open(state: &str, work: &Path) -> Result<Arc<Service>, RecordError> {
        let records = Records::open(state, work)?;
        let mut tasks = BTreeMap::new();
        for r in records.load_all()? {
            tasks.insert(
                r.task.clone(),
                Entry { record: r, run: None, restart: false, switch: false, launched_micros: 0 },
            );
        }
        let svc = Arc::new(Service {
            records,
            tasks: Mutex::new(tasks),
            alerts: Mutex::new(BTreeMap::new()),
            sender: std::sync::OnceLock::new(),
            footprints: Mutex::new(BTreeMap::new()),
            series: Mutex::new(BTreeMap::new()),
            run_states: Mutex::new(BTreeMap::new()),
        });
        let names: Vec<String> = svc.lock().keys().cloned().collect();
        for name in names {
            let mut tasks = svc.lock();
            let e = tasks.get_mut(&name).expect("listed");
            match e.record.state {
                TaskStatus::Running | TaskStatus::Operating => {
                    // A state change in flight (the by-phase switch) is over: the run starts
                    // again from the last checkpoint with the phase's workers.
                    e.record.stop = None;
                    e.record.enter(TaskStatus::Running, "the service started again: resuming from the last checkpoint");
                    if let Err(r) = svc.launch(e, false) {
                        e.record.last_error = Some(r.body["error"].as_str().unwrap_or_default().to_string());
                        e.record.enter(TaskStatus::Failed, "could not start the run again");
                    }
                    let _ = svc.records.save(&e.record);
                }
                TaskStatus::Checking => {
                    let back = e.record.before_check.take().unwrap_or(TaskStatus::Initialized);
                    e.record.enter(back, "the service stopped during a check");
                    let _ = svc.records.save(&e.record);
                }
                TaskStatus::Stopping => {
                    e.record.enter(TaskStatus::Stopped, "the service stopped while the run was stopping");
                    e.record.stop = None;
                    let _ = svc.records.save(&e.record);
                }
                _ => {}
            }
        }
        Ok(svc)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `POST /api/tasks`: a new task from a plan (version 1).
    pub fn submit(&self, yaml: &str) -> Answer {
        let plan = check_plan(yaml)?;
        let task = plan.settings.task.clone();
        if !valid_name(&task) {
            return Err(Refusal::new(400, format!("task name `{task}`: use letters, digits, `-`, `_` and `.`")));
        }
        let mut tasks = self.lock();
        if tasks.contains_key(&task) {
            return Err(Refusal::new(409, format!("task {task} exists; edit it with PUT /api/tasks/{task}/plan")));
        }
        self.records.put_version(&task, 1, yaml)?;
        let record = TaskRecord::new(&task);
        self.records.save(&record)?;
        tasks.insert(task.clone(), Entry { record, run: None, restart: false, switch: false, launched_micros: 0 });
        Ok((201, json!({ "task": task, "version": 1 })))
    }

    /// `GET /api/tasks`: every task's summary.
    pub fn list(self: &Arc<Self>) -> Answer {
        let names: Vec<String> = self.lock().keys().cloned().collect();
        let all: Vec<Value> = names.iter().filter_map(|n| self.summary(n, false).ok()).collect();
        Ok((200, json!({ "tasks": all })))
    }

    /// `GET /api/tasks/{task}`: the summary with the run's status and the state history.
    pub fn get(&self, task: &str) -> Answer {
        Ok((200, self.summary(task, true)?))
    }

    fn summary(&self, task: &str, full: bool) -> Result<Value, Refusal> {
        let (record, run_pid) = {
            let tasks = self.lock();
            let e = tasks.get(task).ok_or_else(|| missing(task))?;
            (e.record.clone(), e.run.as_ref().filter(|r| !r.exited()).map(|r| r.pid()))
        };
        let status = self.run_status(&record);
        let metrics = self.run_metrics(task);
        let now = crate::runtime::now_micros();
        let mut v = json!({
            "task": record.task,
            "state": record.state.as_str(),
            "version": record.version,
            "run_version": record.run_version,
            "last_error": record.last_error.clone().or_else(|| status.as_ref().and_then(|s| s.last_error.clone())),
            "lock": record.lock_holder(now),
            "run_pid": run_pid,
        });
        if let Some(s) = &status {
            v["run"] = json!({
                "state": s.state.as_str(),
                "restarts": s.restarts,
                "epoch": s.epoch,
                "updated_micros": s.updated_micros,
            });
        }
        let alive = run_pid.is_some();
        if let Some(m) = &metrics {
            v["phase"] = json!(m.phase);
            v["workers"] = json!(m.workers);
            v["rows_in"] = json!(m.rows_in);
            v["rows_out"] = json!(m.rows_out);
            v["rows_per_second"] = json!(if alive { m.rows_per_second } else { 0.0 });
            v["lag_seconds"] = json!(if alive { m.lag_seconds } else { None });
            v["dirty"] = json!(m.dirty);
            if full {
                v["tables"] = serde_json::to_value(&m.tables).expect("tables serialize");
            }
        }
        if full {
            v["history"] = serde_json::to_value(&record.history).expect("history serializes");
            let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
            v["series"] = json!(series.get(task).map(|s| s.iter().collect::<Vec<_>>()).unwrap_or_default());
            v["authors"] = json!(record.authors);
        }
        Ok(v)
    }

    /// The counters the task's run last wrote (`work/metrics.json`), if any.
    fn run_metrics(&self, task: &str) -> Option<crate::runtime::metrics::Published> {
        let text = std::fs::read_to_string(self.records.work_dir(task).join("metrics.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// `GET /metrics`: every task in the Prometheus text format.
    pub fn prometheus(&self) -> String {
        let tasks: Vec<(TaskRecord, bool)> =
            self.lock().values().map(|e| (e.record.clone(), e.run.as_ref().is_some_and(|r| !r.exited()))).collect();
        let all: Vec<metrics::TaskMetrics> = tasks
            .into_iter()
            .map(|(record, alive)| {
                let run = self.run_metrics(&record.task);
                let restarts = self.run_status(&record).map_or(0, |s| u64::from(s.restarts));
                metrics::TaskMetrics {
                    task: record.task,
                    state: record.state,
                    version: record.version,
                    restarts,
                    run,
                    alive,
                }
            })
            .collect();
        metrics::render(&all)
    }

    /// The run's own status (its `status.json`, with the newest checkpoint's epoch), if it
    /// wrote one.
    fn run_status(&self, record: &TaskRecord) -> Option<crate::state::RunStatus> {
        Self::status_of(&self.cached_run_state(&record.task)?.1)
    }

    /// The plan the task's run runs (`work/plan.yaml`) and its state store, kept while that
    /// file keeps its text.
    fn cached_run_state(&self, task: &str) -> Option<Arc<RunOf>> {
        let yaml = std::fs::read_to_string(self.records.work_dir(task).join("plan.yaml")).ok()?;
        let cached = {
            let states = self.run_states.lock().unwrap_or_else(|p| p.into_inner());
            states.get(task).filter(|(text, _)| *text == yaml).map(|(_, s)| s.clone())
        };
        match cached {
            Some(s) => Some(s),
            None => {
                let state = Arc::new(self.run_state(task, &yaml)?);
                let mut states = self.run_states.lock().unwrap_or_else(|p| p.into_inner());
                states.insert(task.to_string(), (yaml, state.clone()));
                Some(state)
            }
        }
    }

    /// The plan of text `yaml` (the task's `work/plan.yaml`) and its state store.
    fn run_state(&self, task: &str, yaml: &str) -> Option<RunOf> {
        let work = self.records.work_dir(task);
        let plan = crate::connectors::load("plan.yaml", yaml).ok()?;
        let loc = &plan.settings.runtime.state;
        let loc = if loc.contains("://") || Path::new(loc).is_absolute() {
            loc.clone()
        } else {
            work.join(loc).to_string_lossy().into_owned()
        };
        let store = crate::store::Store::open(&loc, &plan.settings.s3).ok()?;
        let state = crate::state::TaskState::new(store, &plan.settings.task);
        Some((plan, state))
    }

    fn status_of(state: &crate::state::TaskState) -> Option<crate::state::RunStatus> {
        let mut status = state.status().ok().flatten()?;
        // The status file is written when the run's state changes; the newest checkpoint is
        // the committed epoch now.
        if let Ok(Some(m)) = state.latest_manifest() {
            status.epoch = status.epoch.max(m.epoch);
        }
        Some(status)
    }

    /// `PUT /api/tasks/{task}/plan`: a new version, if `if_match` is the newest one and no
    /// other holder has the edit lock.
    pub fn put_plan(&self, task: &str, if_match: Option<&str>, holder: Option<&str>, yaml: &str) -> Answer {
        let Some(if_match) = if_match else {
            return Err(Refusal::new(428, "send If-Match: <version> (the version you edited)"));
        };
        let base: u32 = if_match
            .trim()
            .trim_matches('"')
            .parse()
            .map_err(|_| Refusal::new(400, format!("If-Match `{if_match}`: a version number")))?;
        let plan = check_plan(yaml)?;
        let mut tasks = self.lock();
        let e = tasks.get_mut(task).ok_or_else(|| missing(task))?;
        if plan.settings.task != task {
            return Err(Refusal::new(400, format!("the plan names task `{}`, not `{task}`", plan.settings.task)));
        }
        if let Some(h) = e.record.lock_holder(crate::runtime::now_micros()) {
            if Some(h) != holder {
                return Err(Refusal::new(423, format!("{h} holds the edit lock")).with("holder", json!(h)));
            }
        }
        if base != e.record.version {
            let by = e
                .record
                .authors
                .iter()
                .rev()
                .find(|(n, _, _)| *n == e.record.version)
                .and_then(|(_, h, _)| h.clone())
                .map(|h| format!(", saved by {h}"))
                .unwrap_or_default();
            return Err(Refusal::new(
                409,
                format!("version {base} is not the newest ({}{by}): read it and edit that", e.record.version),
            )
            .with("version", json!(e.record.version)));
        }
        let next = base + 1;
        self.records.put_version(task, next, yaml)?;
        e.record.version = next;
        e.record.authors.push((next, holder.map(str::to_string), crate::runtime::now_micros()));
        e.record.acknowledged.clear();
        if e.record.state == TaskStatus::CheckError {
            let back = e.record.before_check.take().unwrap_or(TaskStatus::Initialized);
            e.record.enter(back, &format!("edited (version {next}): check it again"));
        }
        self.records.save(&e.record)?;
        Ok((200, json!({ "task": task, "version": next })))
    }

    /// `GET /api/tasks/{task}/versions`.
    pub fn versions(&self, task: &str) -> Answer {
        let tasks = self.lock();
        let e = tasks.get(task).ok_or_else(|| missing(task))?;
        Ok((200, json!({ "task": task, "versions": (1..=e.record.version).collect::<Vec<_>>() })))
    }

    /// `GET /api/tasks/{task}/versions/{n}`: the plan text of version `n`.
    pub fn version(&self, task: &str, n: u32) -> Result<String, Refusal> {
        if !self.lock().contains_key(task) {
            return Err(missing(task));
        }
        self.records.version(task, n)?.ok_or_else(|| Refusal::new(404, format!("task {task} has no version {n}")))
    }

    /// `POST /api/tasks/{task}/lock`: takes (or extends) the edit lock.
    pub fn take_lock(&self, task: &str, holder: &str, ttl_seconds: u64) -> Answer {
        if holder.is_empty() {
            return Err(Refusal::new(400, "name the lock's holder"));
        }
        let mut tasks = self.lock();
        let e = tasks.get_mut(task).ok_or_else(|| missing(task))?;
        let now = crate::runtime::now_micros();
        if let Some(h) = e.record.lock_holder(now) {
            if h != holder {
                return Err(Refusal::new(423, format!("{h} holds the edit lock")).with("holder", json!(h)));
            }
        }
        let expires_micros = now + (ttl_seconds.clamp(1, 86_400) as i64) * 1_000_000;
        e.record.lock = Some(EditLock { holder: holder.to_string(), expires_micros });
        self.records.save(&e.record)?;
        Ok((200, json!({ "task": task, "holder": holder, "expires_micros": expires_micros })))
    }

    /// `DELETE /api/tasks/{task}/lock`: releases the lock (its holder, or anyone once expired).
    pub fn release_lock(&self, task: &str, holder: Option<&str>) -> Answer {
        let mut tasks = self.lock();
        let e = tasks.get_mut(task).ok_or_else(|| missing(task))?;
        if let Some(h) = e.record.lock_holder(crate::runtime::now_micros()) {
            if Some(h) != holder {
                return Err(Refusal::new(423, format!("{h} holds the edit lock")).with("holder", json!(h)));
            }
        }
        e.record.lock = None;
        self.records.save(&e.record)?;
        Ok((200, json!({ "task": task, "lock": null })))
    }

    /// `POST /api/tasks/{task}/start`: runs `version` (default the newest) from `from`.
    pub fn start(self: &Arc<Self>, task: &str, version: Option<u32>, from: Option<&str>) -> Answer {
        self.start_at(task, version, from, &Value::Null)
    }

    /// [`Service::start`]; a start from a source position (`timestamp`, `position`, `gtid`,
    /// `lsn`) takes it from `at` (`timestamp`, `file` and `position`, `gtid`, `lsn`: the
    /// source's `start` keys) and runs the version with that `source.start`.
    pub fn start_at(self: &Arc<Self>, task: &str, version: Option<u32>, from: Option<&str>, at: &Value) -> Answer {
        let mut tasks = self.lock();
        let e = tasks.get_mut(task).ok_or_else(|| missing(task))?;
        busy(task, &e.record)?;
        const POSITIONS: [&str; 4] = ["timestamp", "position", "gtid", "lsn"];
        let allowed: &[&str] = match e.record.state {
            TaskStatus::Initialized => &["default", "timestamp", "position", "gtid", "lsn"],
            TaskStatus::Paused => &["savepoint", "latest", "default", "timestamp", "position", "gtid", "lsn"],
            TaskStatus::Stopped | TaskStatus::Failed => &["latest", "default", "timestamp", "position", "gtid", "lsn"],
            TaskStatus::Finished => &["default", "timestamp", "position", "gtid", "lsn"],
            TaskStatus::Running
            | TaskStatus::Stopping
            | TaskStatus::Operating
            | TaskStatus::Checking
            | TaskStatus::CheckError => &[],
        };
        let want = from.unwrap_or(allowed.first().copied().unwrap_or("default"));
        if !allowed.contains(&want) {
            return Err(Refusal::new(
                409,
                format!("task {task} is {}: a start from `{want}` is not possible", e.record.state.as_str()),
            )
            .with("allowed", json!(allowed)));
        }
        let positioned = POSITIONS.contains(&want);
        let from = if want == "default" || positioned { StartFrom::Default } else { StartFrom::Latest };
        let n = version.unwrap_or(e.record.version);
        let mut yaml = self
            .records
            .version(task, n)?
            .ok_or_else(|| Refusal::new(404, format!("task {task} has no version {n}")))?;
        if positioned {
            yaml = with_start(&yaml, want, at)?;
        }
        let work = self.records.work_dir(task);
        std::fs::create_dir_all(&work).map_err(|e| Refusal::new(500, format!("{}: {e}", work.display())))?;
        std::fs::write(work.join("plan.yaml"), &yaml)
            .map_err(|e| Refusal::new(500, format!("{}: {e}", work.display())))?;
        // A never-run task starts from the source's default position anyway: no state to drop.
        let fresh = from == StartFrom::Default && e.record.state != TaskStatus::Initialized;
        if from == StartFrom::Default {
            e.record.streaming_phase = false;
        }
        e.record.run_version = Some(n);
        e.record.last_error = None;
        e.record.stop = None;
        self.launch(e, fresh)?;
        let how = match (from, positioned) {
            (_, true) => format!("from the source {want} {}", at_text(want, at)),
            (StartFrom::Default, _) => "from the source's default position".to_string(),
            (StartFrom::Latest, _) => "from the last checkpoint".to_string(),
        };
        e.record.enter(TaskStatus::Running, &format!("started version {n} {how}"));
        self.records.save(&e.record)?;
        Ok((200, json!({ "task": task, "state": "running", "version": n })))
    }

    /// Starts the entry's run (its `work/plan.yaml`).
    fn launch(self: &Arc<Self>, e: &mut Entry, fresh: bool) -> Result<(), Refusal> {
        let task = e.record.task.clone();
        let me = Arc::downgrade(self);
        let work = self.records.work_dir(&task);
        // By phase (F7): the snapshot's worker count until it is committed, then the stream's.
        let workers = std::fs::read_to_string(work.join("plan.yaml"))
            .ok()
            .and_then(|y| crate::connectors::load("plan.yaml", &y).ok())
            .and_then(|p| p.settings.runtime.resources.by_phase())
            .map(|(snapshot, streaming)| if e.record.streaming_phase { streaming } else { snapshot });
        let run = runner::start(&work, fresh, workers, move |exit| {
            if let Some(svc) = me.upgrade() {
                svc.ended(&task, exit);
            }
        })
        .map_err(|err| Refusal::new(500, format!("cannot start the run: {err}")))?;
        e.run = Some(run);
        e.launched_micros = crate::runtime::now_micros();
        Ok(())
    }

    /// A run ended: the task's state from what the run recorded and what was asked.
    fn ended(self: &Arc<Self>, task: &str, exit: runner::Exit) {
        let status = {
            let tasks = self.lock();
            match tasks.get(task) {
                // A status from before this run's launch is an earlier run's: this one wrote none.
                Some(e) => self.run_status(&e.record).filter(|s| s.updated_micros >= e.launched_micros),
                None => return,
            }
        };
        let mut tasks = self.lock();
        let Some(e) = tasks.get_mut(task) else { return };
        e.run = None;
        use crate::state::RunState as R;
        let run_state = status.as_ref().map(|s| s.state);
        let (state, note) = match (run_state, e.record.stop) {
            (Some(R::Finished), _) => (TaskStatus::Finished, "the source was read to its end".to_string()),
            (Some(R::Failed), _) => {
                e.record.last_error = status.as_ref().and_then(|s| s.last_error.clone());
                (TaskStatus::Failed, "the run failed".to_string())
            }
            (Some(R::Stopped), Some(StopKind::Savepoint)) => (
                TaskStatus::Paused,
                format!("stopped with a savepoint at epoch {}", status.as_ref().map_or(0, |s| s.epoch)),
            ),
            (_, Some(StopKind::Cancel)) => (TaskStatus::Stopped, "cancelled".to_string()),
            (Some(R::Stopped), None) => (TaskStatus::Stopped, "the run was stopped from outside".to_string()),
            _ => {
                let code = exit.code.map_or("a signal".to_string(), |c| format!("code {c}"));
                e.record.last_error =
                    Some(crate::secrets::redact(&format!("the run ended with {code}: {}", exit.log_tail.trim())));
                (TaskStatus::Failed, format!("the run ended with {code}"))
            }
        };
        e.record.stop = None;
        if std::mem::take(&mut e.switch) && state == TaskStatus::Paused {
            // The by-phase switch: the savepoint is taken, the stream goes on with its workers.
            e.record.state = TaskStatus::Paused;
            let version = e.record.run_version;
            let _ = self.records.save(&e.record);
            drop(tasks);
            if let Err(r) = self.start(task, version, Some("savepoint")) {
                tracing::warn!(task, error = %r.body, "resources: the run could not go on with its streaming workers");
            }
            return;
        }
        e.record.enter(state, &note);
        let restart = std::mem::take(&mut e.restart) && state == TaskStatus::Stopped;
        let _ = self.records.save(&e.record);
        drop(tasks);
        if restart {
            if let Err(r) = self.start(task, None, Some("latest")) {
                tracing::warn!(task, error = %r.body, "restart: the run could not start again");
            }
        }
    }

    /// `POST /api/tasks/{task}/stop` with `mode` savepoint (default) or cancel.
    pub fn stop(&self, task: &str, mode: Option<&str>) -> Answer {
        let kind = match mode.unwrap_or("savepoint") {
            "savepoint" => StopKind::Savepoint,
            "cancel" => StopKind::Cancel,
            other => return Err(Refusal::new(400, format!("mode `{other}`: savepoint or cancel"))),
        };
        let mut tasks = self.lock();
        let e = tasks.get_mut(task).ok_or_else(|| missing(task))?;
        busy(task, &e.record)?;
        let run = match (&e.record.state, &e.run) {
            (TaskStatus::Running, Some(run)) => run.clone(),
            // A cancel overtakes a savepoint stop in flight.
            (TaskStatus::Stopping, Some(run)) if kind == StopKind::Cancel => run.clone(),
            (s, _) => {
                return Err(Refusal::new(409, format!("task {task} is {}: nothing runs to stop", s.as_str()))
                    .with("allowed", json!(["start"])))
            }
        };
        e.record.stop = Some(kind);
        match kind {
            StopKind::Savepoint => run.stop_at_savepoint(),
            StopKind::Cancel => run.cancel(),
        }
        let note = if kind == StopKind::Savepoint { "stop with a savepoint asked" } else { "cancel asked" };
        e.record.enter(TaskStatus::Stopping, note);
        self.records.save(&e.record)?;
        Ok((202, json!({ "task": task, "state": "stopping" })))
    }

    /// `POST /api/tasks/{task}/resume`: a paused, stopped or failed task from its last
    /// checkpoint.
    pub fn resume(self: &Arc<Self>, task: &str) -> Answer {
        self.start(task, None, Some("latest"))
    }

    /// `POST /api/tasks/{task}/restart`: cancel the run, then start it again from the last
    /// checkpoint (a task that does not run: like resume).
    pub fn restart(self: &Arc<Self>, task: &str) -> Answer {
        {
            let mut tasks = self.lock();
            let e = tasks.get_mut(task).ok_or_else(|| missing(task))?;
            if e.record.state == TaskStatus::Running {
                e.restart = true;
            } else {
                drop(tasks);
                return self.resume(task);
            }
        }
        self.stop(task, Some("cancel")).map(|_| (202, json!({ "task": task, "state": "stopping", "restart": true })))
    }

    /// `DELETE /api/tasks/{task}`: only without a live run.
    pub fn delete(&self, task: &str) -> Answer {
        let mut tasks = self.lock();
        let e = tasks.get(task).ok_or_else(|| missing(task))?;
        if matches!(
            e.record.state,
            TaskStatus::Running | TaskStatus::Stopping | TaskStatus::Operating | TaskStatus::Checking
        ) {
            return Err(Refusal::new(409, format!("task {task} is {}: stop it first", e.record.state.as_str()))
                .with("allowed", json!(["stop"])));
        }
        self.records.delete(task)?;
        tasks.remove(task);
        self.footprints.lock().unwrap_or_else(|p| p.into_inner()).remove(task);
        self.alerts_lock().remove(task);
        self.series.lock().unwrap_or_else(|p| p.into_inner()).remove(task);
        self.run_states.lock().unwrap_or_else(|p| p.into_inner()).remove(task);
        Ok((200, json!({ "task": task, "deleted": true })))
    }
}

impl Service {
    /// `POST /api/tasks/{task}/check`: the pre-submit checks of the newest version (see
    /// [`check`]); `acknowledge` names warnings to mark acknowledged.
    pub fn check(&self, task: &str, acknowledge: &[String]) -> Answer {
        let (version, prev) = {
            let mut tasks = self.lock();
            let e = tasks.get_mut(task).ok_or_else(|| missing(task))?;
            let prev = e.record.state;
            if matches!(prev, TaskStatus::Running | TaskStatus::Stopping | TaskStatus::Operating | TaskStatus::Checking)
            {
                return Err(Refusal::new(
                    409,
                    format!("task {task} is {}: check it when it is stopped", prev.as_str()),
                )
                .with("allowed", json!(["stop"])));
            }
            let before = if prev == TaskStatus::CheckError { e.record.before_check.unwrap_or(prev) } else { prev };
            e.record.before_check = Some(before);
            for a in acknowledge {
                if !e.record.acknowledged.contains(a) {
                    e.record.acknowledged.push(a.clone());
                }
            }
            e.record.enter(TaskStatus::Checking, &format!("checking version {}", e.record.version));
            self.records.save(&e.record)?;
            (e.record.version, before)
        };
        let yaml = self.records.version(task, version)?.unwrap_or_default();
        // The other tasks' footprints (computed once per version; a plan that no longer
        // compiles has none).
        let (theirs, busy) = self.others(task);
        let dir = self.records.dir(task).join("check");
        let _ = std::fs::create_dir_all(&dir);
        let outcome = check::run(&dir.join("plan.yaml"), &yaml, &theirs, busy);
        let (mut checks, mine) = (outcome.checks, outcome.footprint);
        let mut tasks = self.lock();
        let e = tasks.get_mut(task).ok_or_else(|| missing(task))?;
        for c in checks.iter_mut().filter(|c| c.level == check::Level::Warning) {
            c.acknowledged = e.record.acknowledged.iter().any(|a| a == c.name);
        }
        if let Some(f) = mine {
            self.footprints.lock().unwrap_or_else(|p| p.into_inner()).insert(task.to_string(), (version, f));
        }
        let errors = checks.iter().filter(|c| c.level == check::Level::Error).count();
        let warnings = checks.iter().filter(|c| c.level == check::Level::Warning).count();
        let summary = format!("check of version {version}: {errors} error(s), {warnings} warning(s)");
        if errors > 0 {
            e.record.enter(TaskStatus::CheckError, &summary);
        } else {
            e.record.before_check = None;
            e.record.enter(prev, &summary);
        }
        self.records.save(&e.record)?;
        Ok((
            200,
            json!({
                "task": task,
                "version": version,
                "ok": errors == 0,
                "state": e.record.state.as_str(),
                "checks": checks,
                "located": outcome.located,
                "preview": outcome.preview,
            }),
        ))
    }

    /// `POST /api/check`: the checks of a plan text that is not saved (the console's form):
    /// plan errors with their lines, every check against the other tasks, the mapping
    /// preview.
    pub fn check_draft(&self, yaml: &str) -> Answer {
        let name = crate::plan::yaml::parse(yaml)
            .ok()
            .and_then(|d| d.root.get("task").and_then(|t| t.as_str()).map(str::to_string))
            .unwrap_or_default();
        let (theirs, busy) = self.others(&name);
        let dir = self.records.dir("_drafts");
        std::fs::create_dir_all(&dir).map_err(|e| Refusal::new(500, format!("{}: {e}", dir.display())))?;
        let n = DRAFTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = dir.join(format!("draft-{n}.yaml"));
        let outcome = check::run(&file, yaml, &theirs, busy);
        let _ = std::fs::remove_file(&file);
        let ok = !outcome.checks.iter().any(|c| c.level == check::Level::Error);
        Ok((
            200,
            json!({ "task": name, "ok": ok, "checks": outcome.checks, "located": outcome.located, "preview": outcome.preview }),
        ))
    }

    /// The footprints of every task but `except` (the version each runs, else its newest), and
    /// the workers of their live runs: what a check compares a plan with.
    fn others(&self, except: &str) -> (Vec<(String, check::Footprint)>, usize) {
        let others: Vec<(String, u32, bool)> = self
            .lock()
            .iter()
            .filter(|(n, _)| n.as_str() != except)
            .map(|(n, e)| {
                let alive = e.run.as_ref().is_some_and(|r| !r.exited());
                (n.clone(), e.record.run_version.unwrap_or(e.record.version), alive)
            })
            .collect();
        let mut theirs = Vec::new();
        let mut busy = 0;
        for (other, v, alive) in others {
            if let Some(f) = self.footprint(&other, v) {
                if alive {
                    busy += f.workers;
                }
                theirs.push((other, f));
            }
        }
        (theirs, busy)
    }

    /// What `task`'s plan version `v` reads and writes (compiled against its source once).
    fn footprint(&self, task: &str, v: u32) -> Option<check::Footprint> {
        if let Some((fv, f)) = self.footprints.lock().unwrap_or_else(|p| p.into_inner()).get(task) {
            if *fv == v {
                return Some(f.clone());
            }
        }
        let yaml = self.records.version(task, v).ok().flatten()?;
        let dir = self.records.dir(task).join("check");
        std::fs::create_dir_all(&dir).ok()?;
        let n = DRAFTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = dir.join(format!("footprint-{n}.yaml"));
        std::fs::write(&file, yaml).ok()?;
        let compiled = crate::connectors::load_file_lenient(&file.to_string_lossy());
        let _ = std::fs::remove_file(&file);
        let compiled = compiled.ok()?;
        let f = check::footprint(&compiled);
        self.footprints.lock().unwrap_or_else(|p| p.into_inner()).insert(task.to_string(), (v, f.clone()));
        Some(f)
    }

    fn alerts_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (alerts::Watch, Vec<alerts::Incident>)>> {
        self.alerts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the monitor: every second, each task's alert rules are evaluated (see
    /// [`alerts`]).
    pub fn start_monitor(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let report = me.clone();
        let sender = alerts::Sender::start(move |outcome| {
            if let Some(svc) = report.upgrade() {
                svc.delivered(outcome);
            }
        });
        if self.sender.set(sender).is_err() {
            return;
        }
        std::thread::Builder::new()
            .name("ferry-monitor".into())
            .spawn(move || loop {
                let Some(svc) = me.upgrade() else { return };
                let names: Vec<String> = svc.lock().keys().cloned().collect();
                for task in names {
                    svc.look(&task);
                }
                drop(svc);
                std::thread::sleep(std::time::Duration::from_secs(1));
            })
            .expect("the monitor thread starts");
    }

    /// One look at `task`: its observation against its rules; incidents saved, logged, sent.
    fn look(&self, task: &str) {
        let Some((record, alive)) =
            self.lock().get(task).map(|e| (e.record.clone(), e.run.as_ref().is_some_and(|r| !r.exited())))
        else {
            return;
        };
        if record.run_version.is_none() {
            return;
        }
        let Some(run) = self.cached_run_state(task) else { return };
        let (plan, state) = &*run;
        let cfg = &plan.settings.alerts;
        let status = Self::status_of(state);
        let now = crate::runtime::now_micros();
        let metrics = self.run_metrics(task).filter(|m| now - m.updated_micros < 5_000_000);
        use crate::state::RunState as R;
        let run_ok = status.as_ref().is_some_and(|s| matches!(s.state, R::Running | R::Finished));
        let obs = alerts::Observation {
            failed: record.state == TaskStatus::Failed,
            healthy: (record.state == TaskStatus::Running && run_ok) || record.state == TaskStatus::Finished,
            alive,
            restarts: status.as_ref().map(|s| u64::from(s.restarts)),
            committed_epoch: status.as_ref().map_or(0, |s| s.epoch),
            metrics,
            stopped_tables: crate::connector::sink::TableStops::list(state)
                .unwrap_or_default()
                .into_iter()
                .map(|s| (s.table, s.reason))
                .collect(),
            verify_difference: crate::verify::continuous::last(state)
                .ok()
                .flatten()
                .filter(|(last, _)| last["equal"] == json!(false))
                .map(|(_, summary)| summary.lines().next().unwrap_or_default().to_string()),
        };
        if let Some(m) = obs.metrics.as_ref().filter(|_| alive) {
            let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
            let s = series.entry(task.to_string()).or_default();
            if s.back().is_none_or(|(t, _, _)| now - t >= 10_000_000) {
                s.push_back((now, m.rows_per_second, m.lag_seconds));
                while s.front().is_some_and(|(t, _, _)| now - t > 3_600_000_000) {
                    s.pop_front();
                }
            }
        }
        if let (Some((_, streaming)), Some(m)) = (plan.settings.runtime.resources.by_phase(), &obs.metrics) {
            // After a checkpoint: the snapshot's chunks are planned by then (before, no table
            // has chunks yet and the phase reads as streaming).
            if m.phase == "streaming" && m.commits > 0 && m.workers as usize != streaming {
                self.switch_to_streaming(task, m.workers as usize, streaming);
            }
        }
        let rules = cfg.effective_rules();
        let changes = {
            let mut all = self.alerts_lock();
            let (watch, incidents) =
                all.entry(task.to_string()).or_insert_with(|| (alerts::Watch::default(), self.load_incidents(task)));
            let changes = alerts::evaluate(task, &rules, &obs, watch, incidents, now);
            if !changes.is_empty() {
                for c in &changes {
                    let (i, event) = match c {
                        alerts::Change::Fired(i) => (i, "fired"),
                        alerts::Change::Resolved(i) => (i, "resolved"),
                    };
                    if cfg.webhook.is_some() {
                        if let Some(stored) = incidents.iter_mut().find(|s| s.id == i.id) {
                            stored.deliveries.push(alerts::Delivery {
                                event: event.into(),
                                attempts: 0,
                                delivered_micros: None,
                                last_error: None,
                            });
                        }
                    }
                }
                self.save_incidents(task, incidents);
            }
            changes
        };
        for c in changes {
            let (i, event) = match &c {
                alerts::Change::Fired(i) => {
                    tracing::warn!(task, alert = %i.id, rule = %i.rule, "alert fired: {}", i.message);
                    (i, "fired")
                }
                alerts::Change::Resolved(i) => {
                    tracing::info!(task, alert = %i.id, rule = %i.rule, "alert resolved: {}", i.message);
                    (i, "resolved")
                }
            };
            if let (Some(webhook), Some(sender)) = (&cfg.webhook, self.sender.get()) {
                sender.send(alerts::Job {
                    task: task.to_string(),
                    incident: i.id.clone(),
                    event: event.to_string(),
                    body: alerts::payload(task, i, event),
                    webhook: webhook.clone(),
                });
            }
        }
    }

    /// By phase (F7): the run has read its snapshot with `from` workers; it stops at a
    /// savepoint (state `operating`) and goes on with `to` (see [`Service::ended`]).
    fn switch_to_streaming(&self, task: &str, from: usize, to: usize) {
        let mut tasks = self.lock();
        let Some(e) = tasks.get_mut(task) else { return };
        if e.record.state != TaskStatus::Running || e.record.streaming_phase {
            return;
        }
        let Some(run) = e.run.clone().filter(|r| !r.exited()) else { return };
        e.record.streaming_phase = true;
        e.record.stop = Some(StopKind::Savepoint);
        e.switch = true;
        run.stop_at_savepoint();
        e.record.enter(
            TaskStatus::Operating,
            &format!("resources by phase: the snapshot is read; a savepoint, then {to} streaming worker(s) instead of {from}"),
        );
        let _ = self.records.save(&e.record);
    }

    /// A delivery attempt's outcome, recorded with its incident.
    fn delivered(&self, (task, incident, event, attempts, ok, error): alerts::Outcome) {
        let mut all = self.alerts_lock();
        let Some((_, incidents)) = all.get_mut(&task) else { return };
        let Some(d) = incidents
            .iter_mut()
            .find(|i| i.id == incident)
            .and_then(|i| i.deliveries.iter_mut().rev().find(|d| d.event == event))
        else {
            return;
        };
        d.attempts = attempts;
        d.last_error = error;
        if ok {
            d.delivered_micros = Some(crate::runtime::now_micros());
        }
        self.save_incidents(&task, incidents);
    }

    fn load_incidents(&self, task: &str) -> Vec<alerts::Incident> {
        self.records
            .get_doc(task, "alerts.json")
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_incidents(&self, task: &str, incidents: &[alerts::Incident]) {
        let body = serde_json::to_vec_pretty(incidents).expect("incidents serialize");
        if let Err(e) = self.records.put_doc(task, "alerts.json", body) {
            tracing::warn!(task, error = %e, "cannot record the task's alerts");
        }
    }

    /// `GET /api/tasks/{task}/dirty`: the run's dirty-data archive — rows per table and
    /// reason, and the first 100 rows.
    pub fn dirty(&self, task: &str) -> Answer {
        if !self.lock().contains_key(task) {
            return Err(missing(task));
        }
        let Some(run) = self.cached_run_state(task) else {
            return Ok((200, json!({ "task": task, "total": 0, "per": [], "rows": [] })));
        };
        let (plan, state) = &*run;
        let fail = |e: crate::engine::EngineError| Refusal::new(500, e.to_string());
        let archive = crate::engine::dirty_archive(&plan.settings, state).map_err(fail)?;
        let mut per: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut rows = Vec::new();
        let mut total = 0u64;
        for f in crate::engine::archive_files(&archive).map_err(fail)? {
            let data = archive.store().get(&f).map_err(|e| Refusal::new(500, e.to_string()))?.unwrap_or_default();
            for line in String::from_utf8_lossy(&data).lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
                total += 1;
                let key =
                    (v["table"].as_str().unwrap_or("").to_string(), v["reason"].as_str().unwrap_or("").to_string());
                *per.entry(key).or_default() += 1;
                if rows.len() < 100 {
                    rows.push(v);
                }
            }
        }
        let per: Vec<Value> = per
            .into_iter()
            .map(|((table, reason), n)| json!({ "table": table, "reason": reason, "rows": n }))
            .collect();
        Ok((200, json!({ "task": task, "total": total, "per": per, "rows": rows })))
    }

    /// `POST /api/tasks/{task}/dirty/replay`: `ferry dirty replay` of the run's plan (after the
    /// cause is fixed), in the task's run directory; its output as the answer.
    pub fn replay_dirty(&self, task: &str) -> Answer {
        {
            let tasks = self.lock();
            let e = tasks.get(task).ok_or_else(|| missing(task))?;
            busy(task, &e.record)?;
            // A stopped table's archived changes must land before its later ones.
            if e.run.as_ref().is_some_and(|r| !r.exited()) || e.record.state == TaskStatus::Checking {
                return Err(Refusal::new(
                    409,
                    format!("task {task} is {}: stop it (with a savepoint) before replaying", e.record.state.as_str()),
                )
                .with("allowed", json!(["stop"])));
            }
        }
        let work = self.records.work_dir(task);
        if !work.join("plan.yaml").is_file() {
            return Err(Refusal::new(409, format!("task {task} has never run: nothing to replay")));
        }
        let exe = std::env::current_exe().map_err(|e| Refusal::new(500, e.to_string()))?;
        let out = std::process::Command::new(exe)
            .current_dir(&work)
            .args(["dirty", "replay", "plan.yaml"])
            .output()
            .map_err(|e| Refusal::new(500, format!("cannot start the replay: {e}")))?;
        let text = crate::secrets::redact(&format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
        let ok = out.status.success();
        if let Some(e) = self.lock().get_mut(task) {
            let note = format!("dirty rows replayed: {}", text.lines().next().unwrap_or_default());
            e.record.history.push(record::Transition {
                at_micros: crate::runtime::now_micros(),
                state: e.record.state,
                note,
            });
            let _ = self.records.save(&e.record);
        }
        Ok((if ok { 200 } else { 422 }, json!({ "task": task, "ok": ok, "output": text.trim() })))
    }

    /// `GET /api/tasks/{task}/alerts`: the task's incidents, newest first.
    pub fn alerts(&self, task: &str) -> Answer {
        if !self.lock().contains_key(task) {
            return Err(missing(task));
        }
        let mut list = match self.alerts_lock().get(task) {
            Some((_, incidents)) => incidents.clone(),
            None => self.load_incidents(task),
        };
        list.reverse();
        Ok((200, json!({ "task": task, "alerts": list })))
    }
}

/// `ferry serve`'s options.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to listen on (`host:port`).
    pub listen: String,
    /// The state: a local directory (tasks, versions, runs) or `s3://bucket/prefix` (tasks
    /// and versions; the `AWS_*` environment's settings).
    pub state: String,
    /// Where runs work with an `s3://` state (default `./ferry-service-work`); a local state
    /// keeps them in itself.
    pub work: Option<std::path::PathBuf>,
    /// The file holding the API token (default: `token` in the state directory, or in the
    /// work directory with an `s3://` state; made on first start).
    pub token_file: Option<std::path::PathBuf>,
}

/// Errors of starting the service.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The state directory could not be opened or read.
    #[error(transparent)]
    Records(#[from] RecordError),
    /// The token file could not be read or made.
    #[error("token file {path}: {source}")]
    Token {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The address could not be listened on.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A local directory could not be made.
    #[error("{path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs the service until the process ends; prints where it listens and the token's file.
pub fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    let remote = opts.state.contains("://");
    let work = match (&opts.work, remote) {
        (Some(w), _) => w.clone(),
        (None, true) => std::path::PathBuf::from("./ferry-service-work"),
        (None, false) => std::path::PathBuf::from(&opts.state),
    };
    std::fs::create_dir_all(&work).map_err(|source| ServeError::Dir { path: work.display().to_string(), source })?;
    let token_dir = if remote { work.clone() } else { std::path::PathBuf::from(&opts.state) };
    let token_file = opts.token_file.clone().unwrap_or_else(|| token_dir.join("token"));
    let token =
        token(&token_file).map_err(|source| ServeError::Token { path: token_file.display().to_string(), source })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ferry-serve")
        .enable_all()
        .build()
        .map_err(|source| ServeError::Listen { addr: opts.listen.clone(), source })?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(&opts.listen))
        .map_err(|source| ServeError::Listen { addr: opts.listen.clone(), source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: opts.listen.clone(), source })?;
    let svc = Service::open(&opts.state, &work)?;
    svc.start_monitor();
    println!("ferry serve: listening on http://{addr} (token in {})", token_file.display());
    rt.block_on(api::serve(listener, svc, Arc::new(token)));
    Ok(())
}

/// The token in `path`, or a new random one written there (readable by its owner only).
fn token(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty")),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let mut raw = [0u8; 24];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut raw))?;
    let t: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    std::io::Write::write_all(&mut f, t.as_bytes())?;
    Ok(t)
}

/// The plan parsed and checked without a server (its located errors as a 400).
fn check_plan(yaml: &str) -> Result<crate::plan::Plan, Refusal> {
    crate::connectors::load("plan.yaml", yaml).map_err(|errors| {
        let list: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
        Refusal::new(400, format!("the plan has {} error(s)", list.len()))
            .with("errors", json!(list))
            .with("located", json!(check::located(&errors)))
    })
}

/// The plan text with `source.start` set to `{from: <from>, <keys of at>}` (JSON is YAML: the
/// run's copy of the plan, never a version), checked.
fn with_start(yaml: &str, from: &str, at: &Value) -> Result<String, Refusal> {
    let mut doc = crate::plan::yaml::parse(yaml)
        .map_err(|e| Refusal::new(400, format!("the plan does not parse: {}", e.message)))?
        .root;
    let mut start = json!({ "from": from });
    for key in ["timestamp", "file", "position", "gtid", "lsn"] {
        if let Some(v) = at.get(key).filter(|v| !v.is_null()) {
            start[key] = v.clone();
        }
    }
    match doc.get_mut("source").and_then(|s| s.as_object_mut()) {
        Some(source) => {
            source.insert("start".into(), start);
        }
        None => return Err(Refusal::new(400, "the plan has no source section")),
    }
    let text = serde_json::to_string_pretty(&doc).expect("a plan serializes");
    check_plan(&text).map_err(|mut r| {
        r.body["error"] = json!(format!("a start from `{from}`: {}", r.body["error"].as_str().unwrap_or_default()));
        r
    })?;
    Ok(text)
}

/// The position keys of a positioned start, for the history.
fn at_text(from: &str, at: &Value) -> String {
    let keys: &[&str] = match from {
        "position" => &["file", "position"],
        other => std::slice::from_ref(match other {
            "timestamp" => &"timestamp",
            "gtid" => &"gtid",
            _ => &"lsn",
        }),
    };
    keys.iter().filter_map(|k| at.get(*k).filter(|v| !v.is_null()).map(|v| v.to_string())).collect::<Vec<_>>().join(" ")
}

/// A 409 while a state change is in flight (`operating`).
fn busy(task: &str, record: &TaskRecord) -> Result<(), Refusal> {
    if record.state == TaskStatus::Operating {
        let doing = record.history.last().map(|h| h.note.as_str()).unwrap_or_default();
        return Err(Refusal::new(409, format!("task {task} is operating ({doing}): try again once it is done"))
            .with("allowed", json!([])));
    }
    Ok(())
}

fn missing(task: &str) -> Refusal {
    Refusal::new(404, format!("no task {task}"))
}

/// A task name that is safe as a folder name.
fn valid_name(task: &str) -> bool {
    !task.is_empty()
        && task != "."
        && task != ".."
        && task.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
