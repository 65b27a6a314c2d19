//! Alerts (F9.5): the service's monitor looks at every task once a second, evaluates the
//! rules of the plan version it runs (`alerts:`; by default `failed`, `restarted` and
//! `table-stopped`), and opens one incident per rule (and table) while the condition holds,
//! closing it when it no longer does. Each incident is sent twice at most: `fired` and
//! `resolved`.
//!
//! ```text
//!  monitor (1 s) ──► Observation (record, run status, metrics.json, stops, verify/last.json)
//!        │                 │
//!        │           evaluate(rules) ──► Fire / Resolve ──► <state>/tasks/<t>/alerts.json
//!        │                                                 └─► the log (warn / info)
//!        │                                                 └─► Sender: JSON POST to the webhook,
//!        │                                                     X-Ferry-Signature: sha256=HMAC(body),
//!        ▼                                                     retried 1 s, 2 s, 4 s … 60 s
//!  GET /api/tasks/{task}/alerts
//! ```
//!
//! "Once per incident": an incident is persisted before it is sent, so a service restarted
//! does not fire it again; a delivery lost with the service (killed mid-retry) is not resent.
//! Each POST carries `X-Ferry-Delivery` (`<incident>/<event>`) for receivers that dedupe.

use crate::plan::config::{AlertKind, AlertRule, WebhookConfig};
use crate::runtime::metrics::Published;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// One incident of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `<task>-<n>`.
    pub id: String,
    /// The rule's kind.
    pub kind: AlertKind,
    /// The rule, as `kind` or `kind > threshold`.
    pub rule: String,
    /// The table, for `table-stopped`.
    pub subject: Option<String>,
    /// What was seen when it fired.
    pub message: String,
    /// When it fired, microseconds since the Unix epoch.
    pub fired_micros: i64,
    /// When it resolved (`None`: open).
    pub resolved_micros: Option<i64>,
    /// The committed epoch when it fired (a `failed` or `restarted` incident resolves once a
    /// run has committed past it).
    pub epoch_at_fire: u64,
    /// Deliveries to the webhook: `fired`, then `resolved`.
    pub deliveries: Vec<Delivery>,
}

impl Incident {
    fn key(&self) -> String {
        key(&self.rule, self.subject.as_deref())
    }
}

/// One webhook delivery of an incident's event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// `fired` or `resolved`.
    pub event: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When a receiver answered 2xx (`None`: not yet, or given up).
    pub delivered_micros: Option<i64>,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

/// What the monitor sees of a task at one look.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The task's state in the service is `failed`.
    pub failed: bool,
    /// The task's state is `running` or `finished`, and its run says `running` or `finished`.
    pub healthy: bool,
    /// A run is alive.
    pub alive: bool,
    /// The run's restarts (its status file).
    pub restarts: Option<u64>,
    /// The newest committed epoch.
    pub committed_epoch: u64,
    /// The run's counters (fresh: written within the last few seconds).
    pub metrics: Option<Published>,
    /// Tables stopped by `partial-stop`: table and reason.
    pub stopped_tables: Vec<(String, String)>,
    /// The newest background verification found a difference (its summary).
    pub verify_difference: Option<String>,
}

/// What the monitor keeps per task between looks (not persisted).
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// Since when each rule's condition holds (microseconds), by incident key.
    pending: HashMap<String, i64>,
    /// Restarts already accounted for.
    restarts_seen: Option<u64>,
    /// The restart count grew since the last look.
    restarted: bool,
}

/// A change to a task's incidents.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new incident (already in the list).
    Fired(Incident),
    /// An incident resolved (its new state).
    Resolved(Incident),
}

fn key(rule: &str, subject: Option<&str>) -> String {
    match subject {
        Some(s) => format!("{rule}@{s}"),
        None => rule.to_string(),
    }
}

fn rule_name(r: &AlertRule) -> String {
    match r.above {
        Some(v) => format!("{} > {v}", r.kind.as_str()),
        None => r.kind.as_str().to_string(),
    }
}

/// One look: evaluates `rules` against `obs`, opens and resolves `incidents` (in place) and
/// returns what changed. `next_id` numbers new incidents.
pub fn evaluate(
    task: &str,
    rules: &[AlertRule],
    obs: &Observation,
    watch: &mut Watch,
    incidents: &mut Vec<Incident>,
    now: i64,
) -> Vec<Change> {
    // Restarts: a new run starts counting from 0 again.
    if let Some(r) = obs.restarts {
        let seen = watch.restarts_seen.get_or_insert(r);
        if r > *seen {
            watch.restarted = true;
        }
        *seen = r;
    }
    let mut changes = Vec::new();
    let mut next =
        incidents.iter().filter_map(|i| i.id.rsplit('-').next().and_then(|n| n.parse::<u64>().ok())).max().unwrap_or(0)
            + 1;
    for rule in rules {
        let name = rule_name(rule);
        let above = rule.above.unwrap_or(0.0);
        let hold_for = crate::plan::config::parse_duration_ms(&rule.r#for).unwrap_or(0) as i64 * 1000;
        // (subject, condition holds, message) for each subject the rule watches.
        let mut seen: Vec<(Option<String>, bool, String)> = Vec::new();
        match rule.kind {
            AlertKind::Failed => seen.push((None, obs.failed, format!("task {task} failed"))),
            AlertKind::Restarted => seen.push((
                None,
                watch.restarted,
                format!("task {task}'s run restarted from its checkpoint ({} restarts)", obs.restarts.unwrap_or(0)),
            )),
            AlertKind::TableStopped => {
                for (t, why) in &obs.stopped_tables {
                    seen.push((Some(t.clone()), true, format!("table {t} stopped: {why}")));
                }
                // Open incidents of tables no longer stopped.
                for i in incidents.iter().filter(|i| i.kind == AlertKind::TableStopped && i.resolved_micros.is_none()) {
                    if !seen.iter().any(|(s, _, _)| s == &i.subject) {
                        seen.push((i.subject.clone(), false, String::new()));
                    }
                }
            }
            AlertKind::Lag => {
                let lag = obs.metrics.as_ref().filter(|_| obs.alive).and_then(|m| m.lag_seconds);
                let holds = lag.is_some_and(|l| l > above);
                seen.push((None, holds, format!("task {task}: source lag {:.1}s above {above}s", lag.unwrap_or(0.0))));
            }
            AlertKind::Dirty => {
                let dirty = obs.metrics.as_ref().map_or(0, |m| m.dirty);
                seen.push((None, dirty as f64 > above, format!("task {task}: {dirty} dirty rows, above {above}")));
            }
            AlertKind::VerifyDifference => seen.push((
                None,
                obs.verify_difference.is_some(),
                format!(
                    "task {task}: verification found a difference: {}",
                    obs.verify_difference.clone().unwrap_or_default()
                ),
            )),
        }
        for (subject, holds, message) in seen {
            let k = key(&name, subject.as_deref());
            let open = incidents.iter_mut().find(|i| i.resolved_micros.is_none() && i.key() == k);
            match (open, holds) {
                (Some(_), true) => {}
                (Some(i), false) => {
                    // A failure or a restart resolves on evidence of health: a run that has
                    // committed past the epoch of the incident.
                    let recovered = match rule.kind {
                        AlertKind::Failed | AlertKind::Restarted => {
                            obs.healthy && obs.committed_epoch > i.epoch_at_fire
                        }
                        _ => true,
                    };
                    if recovered {
                        i.resolved_micros = Some(now);
                        watch.pending.remove(&k);
                        changes.push(Change::Resolved(i.clone()));
                    }
                }
                (None, true) => {
                    let since = *watch.pending.entry(k.clone()).or_insert(now);
                    if now - since >= hold_for {
                        let i = Incident {
                            id: format!("{task}-{next}"),
                            kind: rule.kind,
                            rule: name.clone(),
                            subject,
                            message,
                            fired_micros: now,
                            resolved_micros: None,
                            epoch_at_fire: obs.committed_epoch,
                            deliveries: Vec::new(),
                        };
                        next += 1;
                        incidents.push(i.clone());
                        changes.push(Change::Fired(i));
                    }
                }
                (None, false) => {
                    watch.pending.remove(&k);
                }
            }
        }
    }
    watch.restarted = false;
    // Keep the newest 200 (open ones always).
    while incidents.len() > 200 {
        match incidents.iter().position(|i| i.resolved_micros.is_some()) {
            Some(p) => {
                incidents.remove(p);
            }
            None => break,
        }
    }
    changes
}

/// The body of a webhook POST for `incident`'s `event` (`fired` or `resolved`).
pub fn payload(task: &str, incident: &Incident, event: &str) -> Vec<u8> {
    json!({
        "task": task,
        "alert": incident.id,
        "event": event,
        "rule": incident.rule,
        "kind": incident.kind.as_str(),
        "table": incident.subject,
        "message": incident.message,
        "fired_micros": incident.fired_micros,
        "resolved_micros": incident.resolved_micros,
    })
    .to_string()
    .into_bytes()
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `body`): the `X-Ferry-Signature` header.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Mac, SimpleHmac};
    let mut mac = SimpleHmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A webhook delivery to make.
pub struct Job {
    /// The task.
    pub task: String,
    /// The incident.
    pub incident: String,
    /// `fired` or `resolved`.
    pub event: String,
    /// The body.
    pub body: Vec<u8>,
    /// Where and how.
    pub webhook: WebhookConfig,
}

/// What became of one attempt: `(task, incident, event, attempts, delivered, error)`.
pub type Outcome = (String, String, String, u32, bool, Option<String>);

/// Sends webhook deliveries on a thread of its own (each delivery a task: one receiver's
/// retries do not hold up another's), reporting every attempt to `report`.
pub struct Sender {
    tx: tokio::sync::mpsc::UnboundedSender<Job>,
}

impl Sender {
    /// Starts the sending thread.
    pub fn start(report: impl Fn(Outcome) + Send + Sync + 'static) -> Sender {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let report = std::sync::Arc::new(report);
        std::thread::Builder::new()
            .name("ferry-alerts".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                rt.block_on(async move {
                    let client = reqwest::Client::new();
                    while let Some(job) = rx.recv().await {
                        let (client, report) = (client.clone(), report.clone());
                        tokio::spawn(async move { deliver(client, job, move |o| report(o)).await });
                    }
                });
            })
            .expect("the alerts thread starts");
        Sender { tx }
    }

    /// Queues a delivery.
    pub fn send(&self, job: Job) {
        let _ = self.tx.send(job);
    }
}

async fn deliver(client: reqwest::Client, job: Job, report: impl Fn(Outcome)) {
    let timeout = Duration::from_millis(crate::plan::config::parse_duration_ms(&job.webhook.timeout).unwrap_or(5000));
    let attempts = job.webhook.retries.saturating_add(1);
    for attempt in 1..=attempts {
        let mut req = client
            .post(&job.webhook.url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("x-ferry-event", job.event.as_str())
            .header("x-ferry-delivery", format!("{}/{}", job.incident, job.event))
            .body(job.body.clone());
        if let Some(secret) = &job.webhook.secret {
            req = req.header("x-ferry-signature", signature(secret, &job.body));
        }
        let error = match req.send().await {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("the receiver answered {}", r.status())),
            Err(e) => {
                // The causes too: "error sending request" alone says nothing.
                let e = e.without_url();
                let mut text = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    text.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                Some(crate::secrets::redact(&text))
            }
        };
        let ok = error.is_none();
        if let Some(e) = &error {
            tracing::warn!(task = %job.task, alert = %job.incident, attempt, error = %e, "alert delivery failed");
        }
        report((job.task.clone(), job.incident.clone(), job.event.clone(), attempt, ok, error));
        if ok {
            return;
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_secs(1u64 << (attempt - 1).min(6)).min(Duration::from_secs(60))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: AlertKind, above: Option<f64>, r#for: &str) -> AlertRule {
        AlertRule { kind, above, r#for: r#for.into() }
    }

    #[test]
    fn a_failure_fires_once_and_resolves_only_after_a_run_commits_past_it() {
        let rules = [rule(AlertKind::Failed, None, "0s")];
        let (mut w, mut inc) = (Watch::default(), Vec::new());
        let failed = Observation { failed: true, committed_epoch: 5, ..Default::default() };
        let c = evaluate("t", &rules, &failed, &mut w, &mut inc, 1);
        assert!(matches!(&c[..], [Change::Fired(i)] if i.id == "t-1" && i.epoch_at_fire == 5));
        assert!(evaluate("t", &rules, &failed, &mut w, &mut inc, 2).is_empty(), "once per incident");
        // Started again, not committed yet: still open.
        let starting = Observation { healthy: true, committed_epoch: 5, ..Default::default() };
        assert!(evaluate("t", &rules, &starting, &mut w, &mut inc, 3).is_empty());
        let ok = Observation { healthy: true, committed_epoch: 6, ..Default::default() };
        let c = evaluate("t", &rules, &ok, &mut w, &mut inc, 4);
        assert!(matches!(&c[..], [Change::Resolved(i)] if i.resolved_micros == Some(4)));
        let c = evaluate("t", &rules, &failed, &mut w, &mut inc, 5);
        assert!(matches!(&c[..], [Change::Fired(i)] if i.id == "t-2"), "a new incident: {c:?}");
    }

    #[test]
    fn a_lag_rule_waits_for_its_duration_and_resolves_when_the_lag_is_gone() {
        let rules = [rule(AlertKind::Lag, Some(10.0), "2s")];
        let (mut w, mut inc) = (Watch::default(), Vec::new());
        let lag = |l: f64| Observation {
            alive: true,
            metrics: Some(Published { lag_seconds: Some(l), ..Default::default() }),
            ..Default::default()
        };
        assert!(evaluate("t", &rules, &lag(30.0), &mut w, &mut inc, 0).is_empty());
        assert!(evaluate("t", &rules, &lag(5.0), &mut w, &mut inc, 1_000_000).is_empty(), "the condition broke");
        assert!(evaluate("t", &rules, &lag(30.0), &mut w, &mut inc, 2_000_000).is_empty());
        assert!(evaluate("t", &rules, &lag(30.0), &mut w, &mut inc, 3_000_000).is_empty());
        let c = evaluate("t", &rules, &lag(30.0), &mut w, &mut inc, 4_000_000);
        assert!(matches!(&c[..], [Change::Fired(i)] if i.rule == "lag > 10"), "{c:?}");
        let c = evaluate("t", &rules, &lag(1.0), &mut w, &mut inc, 5_000_000);
        assert!(matches!(&c[..], [Change::Resolved(_)]));
    }

    #[test]
    fn a_restart_counts_only_when_the_count_grows_and_stopped_tables_each_get_one() {
        let rules = [rule(AlertKind::Restarted, None, "0s"), rule(AlertKind::TableStopped, None, "0s")];
        let (mut w, mut inc) = (Watch::default(), Vec::new());
        let o = |r: u64, e: u64, stops: &[&str]| Observation {
            healthy: true,
            restarts: Some(r),
            committed_epoch: e,
            stopped_tables: stops.iter().map(|t| (t.to_string(), "bad row".to_string())).collect(),
            ..Default::default()
        };
        // Restarts seen at the first look are history, not news.
        assert!(evaluate("t", &rules, &o(3, 1, &[]), &mut w, &mut inc, 0).is_empty());
        let c = evaluate("t", &rules, &o(4, 1, &["d.a", "d.b"]), &mut w, &mut inc, 1);
        assert_eq!(c.len(), 3, "{c:?}");
        let c = evaluate("t", &rules, &o(4, 2, &["d.b"]), &mut w, &mut inc, 2);
        assert_eq!(c.len(), 2, "the restart resolved by a commit, d.a by its lifted stop: {c:?}");
        assert!(c.iter().all(|c| matches!(c, Change::Resolved(_))));
    }

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body_in_hex() {
        // RFC 4231 test case 2.
        let s = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(s, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
