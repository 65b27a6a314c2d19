//! `GET /metrics`: every task's state and its run's counters in the Prometheus text format
//! (version 0.0.4), names prefixed `ferry_`.
//!
//! ```text
//!  <state>/tasks/<t>/task.json ─┐
//!  <state>/tasks/<t>/work/metrics.json (the run's, every second) ─┴─► render ─► text
//! ```
//!
//! Counters (`_total`) count what the task's current (or last) run did: a new run starts them
//! at 0 again, which Prometheus' `rate()` reads as a counter reset.

use super::record::TaskStatus;
use crate::runtime::metrics::Published;
use std::fmt::Write;

/// What one task shows.
#[derive(Debug, Clone)]
pub struct TaskMetrics {
    /// The task.
    pub task: String,
    /// Its state in the service.
    pub state: TaskStatus,
    /// Its newest plan version.
    pub version: u32,
    /// Restarts of its run (the run's own, after failures).
    pub restarts: u64,
    /// Its run's counters, if a run wrote them.
    pub run: Option<Published>,
    /// Whether a run is alive now (rates and lag are only shown then).
    pub alive: bool,
}

const STATES: [TaskStatus; 10] = [
    TaskStatus::Initialized,
    TaskStatus::Running,
    TaskStatus::Stopping,
    TaskStatus::Paused,
    TaskStatus::Stopped,
    TaskStatus::Finished,
    TaskStatus::Failed,
    TaskStatus::Operating,
    TaskStatus::Checking,
    TaskStatus::CheckError,
];

/// The text of `GET /metrics`.
pub fn render(tasks: &[TaskMetrics]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &mut dyn Iterator<Item = (String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {}", number(v));
        }
    };
    let task = |t: &TaskMetrics| format!("{{task=\"{}\"}}", escape(&t.task));
    let table = |t: &TaskMetrics, table: &str| format!("{{task=\"{}\",table=\"{}\"}}", escape(&t.task), escape(table));
    let runs = || tasks.iter().filter_map(|t| t.run.as_ref().map(|r| (t, r)));

    family(
        "ferry_task_state",
        "gauge",
        "The task's state: 1 for the state it is in, 0 for the others.",
        &mut tasks.iter().flat_map(|t| {
            STATES.iter().map(move |s| {
                (
                    format!("{{task=\"{}\",state=\"{}\"}}", escape(&t.task), s.as_str()),
                    f64::from(u8::from(*s == t.state)),
                )
            })
        }),
    );
    family(
        "ferry_task_version",
        "gauge",
        "The task's newest plan version.",
        &mut tasks.iter().map(|t| (task(t), f64::from(t.version))),
    );
    family(
        "ferry_task_running",
        "gauge",
        "1 while a run of the task is alive.",
        &mut tasks.iter().map(|t| (task(t), f64::from(u8::from(t.alive)))),
    );
    family(
        "ferry_task_restarts_total",
        "counter",
        "Restarts of the task's run from its last checkpoint after a failure.",
        &mut tasks.iter().map(|t| (task(t), t.restarts as f64)),
    );
    family(
        "ferry_task_workers",
        "gauge",
        "Timely workers of the task's run.",
        &mut runs().map(|(t, r)| (task(t), r.workers as f64)),
    );
    family(
        "ferry_task_snapshot",
        "gauge",
        "1 while the run has snapshot chunks left to read (phase snapshot), 0 when streaming.",
        &mut runs().map(|(t, r)| (task(t), f64::from(u8::from(r.phase == "snapshot")))),
    );
    family(
        "ferry_task_rows_read_total",
        "counter",
        "Changes read from the source by the run.",
        &mut runs().map(|(t, r)| (task(t), r.rows_in as f64)),
    );
    family(
        "ferry_task_rows_written_total",
        "counter",
        "Changes written to the target by the run.",
        &mut runs().map(|(t, r)| (task(t), r.rows_out as f64)),
    );
    family(
        "ferry_task_dirty_rows_total",
        "counter",
        "Rows the run sent to the dirty-data archive.",
        &mut runs().map(|(t, r)| (task(t), r.dirty as f64)),
    );
    family(
        "ferry_task_rows_per_second",
        "gauge",
        "Rows written per second over the last second.",
        &mut runs().filter(|(t, _)| t.alive).map(|(t, r)| (task(t), r.rows_per_second)),
    );
    family(
        "ferry_task_source_lag_seconds",
        "gauge",
        "How far the target is behind the source: now minus the source time of the newest change or heartbeat the last checkpoint covers.",
        &mut runs().filter(|(t, _)| t.alive).filter_map(|(t, r)| r.lag_seconds.map(|l| (task(t), l))),
    );
    family(
        "ferry_task_read_lag_seconds",
        "gauge",
        "How far the newest change read is behind now (the reader's own lag).",
        &mut runs().filter(|(t, _)| t.alive).filter_map(|(t, r)| r.read_lag_seconds.map(|l| (task(t), l))),
    );
    family(
        "ferry_task_epoch",
        "gauge",
        "The newest epoch the run opened.",
        &mut runs().map(|(t, r)| (task(t), r.epoch as f64)),
    );
    let mut commit = String::new();
    let _ = writeln!(commit, "# HELP ferry_task_epoch_commit_seconds Time from an epoch's close to its checkpoint.");
    let _ = writeln!(commit, "# TYPE ferry_task_epoch_commit_seconds summary");
    for (t, r) in runs() {
        let _ = writeln!(commit, "ferry_task_epoch_commit_seconds_sum{} {}", task(t), number(r.commit_seconds_sum));
        let _ = writeln!(commit, "ferry_task_epoch_commit_seconds_count{} {}", task(t), r.commits);
    }
    let tables = || runs().flat_map(|(t, r)| r.tables.iter().map(move |p| (t, p)));
    family(
        "ferry_table_rows_written_total",
        "counter",
        "Rows the run wrote to the table.",
        &mut tables().map(|(t, p)| (table(t, &p.source), p.rows as f64)),
    );
    family(
        "ferry_table_snapshot_chunks_total",
        "gauge",
        "Snapshot chunks planned for the table.",
        &mut tables().map(|(t, p)| (table(t, &p.source), p.chunks_total as f64)),
    );
    family(
        "ferry_table_snapshot_chunks_remaining",
        "gauge",
        "Snapshot chunks of the table not read yet.",
        &mut tables().map(|(t, p)| (table(t, &p.source), p.chunks_total.saturating_sub(p.chunks_done) as f64)),
    );
    family(
        "ferry_table_last_change_timestamp_seconds",
        "gauge",
        "When the run last wrote a row of the table (Unix time).",
        &mut tables()
            .filter(|(_, p)| p.last_change_micros > 0)
            .map(|(t, p)| (table(t, &p.source), p.last_change_micros as f64 / 1e6)),
    );
    out.push_str(&commit);
    out
}

/// A label value escaped as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A sample value: integers without a fraction.
fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::metrics::TableProgress;

    #[test]
    fn labels_are_escaped_and_each_family_is_typed_once() {
        let run = Published {
            phase: "snapshot".into(),
            rows_out: 7,
            commits: 2,
            commit_seconds_sum: 0.5,
            tables: vec![TableProgress {
                source: "d.\"q\"\\t".into(),
                chunks_total: 3,
                chunks_done: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        let t = TaskMetrics {
            task: "a".into(),
            state: TaskStatus::Running,
            version: 2,
            restarts: 1,
            run: Some(run),
            alive: true,
        };
        let text = render(&[t]);
        assert!(
            text.contains("ferry_table_snapshot_chunks_remaining{task=\"a\",table=\"d.\\\"q\\\"\\\\t\"} 2"),
            "{text}"
        );
        assert!(text.contains("ferry_task_state{task=\"a\",state=\"running\"} 1"));
        assert!(text.contains("ferry_task_state{task=\"a\",state=\"failed\"} 0"));
        assert!(text.contains("ferry_task_epoch_commit_seconds_sum{task=\"a\"} 0.5"));
        let types = text.lines().filter(|l| l.starts_with("# TYPE ferry_task_rows_written_total ")).count();
        assert_eq!(types, 1);
    }
}
