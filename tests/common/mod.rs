//! Helpers shared by the integration tests: running the `ferry` binary, reading the `files`
//! sink's output, computing what the generator's changes should produce.
#![allow(dead_code)]

pub mod browser;
pub mod items;
pub mod kafka;
pub mod mysql;
pub mod pg;
pub mod served;
pub mod sql;

use ferry::connectors::datagen::{catalog, DatagenConfig, ShardGen};
use ferry_operators::{json, Change, Op, TableSchema, Value};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

/// Runs `ferry` with `args` in `dir`, returning its output.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    ferry().current_dir(dir).args(args).output().expect("ferry runs")
}

/// Asserts a successful exit, showing stderr otherwise.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ferry failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every output line of one table, in file-name order, parsed.
pub fn table_lines(out_root: &Path, db: &str, table: &str) -> Vec<Json> {
    let dir = out_root.join(db).join(table);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            lines.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", f.display())));
        }
    }
    lines
}

/// The JSON object the files sink writes for `row` of `schema` (without `__deleted`).
pub fn row_json(schema: &TableSchema, row: &[Value]) -> Json {
    let mut out = Vec::new();
    out.push(b'{');
    for (i, (c, v)) in schema.columns.iter().zip(row).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_str(&c.name, &mut out);
        out.push(b':');
        json::write_value(v, &mut out);
    }
    out.push(b'}');
    serde_json::from_slice(&out).unwrap()
}

/// Applies upsert-mode lines in order: the key columns pick the row, `__deleted` removes it.
/// Returns the final rows (without `__deleted`) sorted by their text.
pub fn materialize_upsert(lines: &[Json], key: &[&str]) -> Vec<String> {
    let mut state: BTreeMap<String, Json> = BTreeMap::new();
    for l in lines {
        let k: Vec<String> = key.iter().map(|c| l[*c].to_string()).collect();
        let k = k.join("|");
        let mut row = l.clone();
        let deleted = row.as_object_mut().unwrap().shift_remove("__deleted").expect("__deleted");
        if deleted == Json::Bool(true) {
            state.remove(&k);
        } else {
            state.insert(k, row);
        }
    }
    let mut rows: Vec<String> = state.values().map(|v| v.to_string()).collect();
    rows.sort();
    rows
}

/// The expected final rows of every selected table of a bounded datagen config, as sorted
/// JSON texts, keyed by `db.table`.
pub fn expected_rows(cfg: &DatagenConfig, select: impl Fn(&str) -> bool) -> BTreeMap<String, Vec<String>> {
    ferry::connectors::datagen::expected_state(cfg)
        .into_iter()
        .filter(|(s, _)| select(&s.name.to_string()))
        .map(|(s, rows)| {
            let mut v: Vec<String> = rows.iter().map(|r| row_json(&s, r).to_string()).collect();
            v.sort();
            (s.name.to_string(), v)
        })
        .collect()
}

/// Every change the generator emits for the selected tables, with key-changing updates split
/// into a delete and an insert as the engine does, per table.
pub fn all_changes(cfg: &DatagenConfig, select: impl Fn(&str) -> bool) -> BTreeMap<String, (TableSchema, Vec<Change>)> {
    let cat = catalog(cfg);
    let mut out = BTreeMap::new();
    for (t, schema) in cat.iter().enumerate() {
        let name = schema.name.to_string();
        if !select(&name) {
            continue;
        }
        let mut changes = Vec::new();
        for s in 0..cfg.shards_per_table {
            let mut g = ShardGen::new(cfg, &cat, t as u32, s);
            let mut buf = Vec::new();
            while g.next_transaction(&mut buf) {}
            for c in buf {
                let (a, b) = c.split_key_change(schema);
                changes.push(a);
                changes.extend(b);
            }
        }
        out.insert(name, (schema.clone(), changes));
    }
    out
}

/// The image an append-mode line holds for a change.
pub fn change_image(c: &Change) -> &[Value] {
    match c.op {
        Op::Delete => c.before.as_deref().unwrap(),
        _ => c.after.as_deref().unwrap(),
    }
}

/// A fresh working directory for one test.
pub fn workdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Writes a plan file into `dir` and returns its path as a string.
pub fn write_plan(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, with_handoff(text)).unwrap();
    p.to_str().unwrap().to_string()
}

/// `text` with the MariaDB source's `handoff:` set to `$FERRY_TEST_HANDOFF` when that is set
/// (scripts/test runs the source suite once per handoff), after the source's `url:` line so
/// the lines above keep their numbers; `text` as it is otherwise.
pub fn with_handoff(text: &str) -> String {
    let h = match std::env::var("FERRY_TEST_HANDOFF") {
        Ok(h) if !h.is_empty() && !text.contains("\n  handoff:") => h,
        _ => return text.to_string(),
    };
    let Some(src) = text.find("source:\n  type: mariadb\n  url: ") else { return text.to_string() };
    let end = src + text[src..].find("  url: ").expect("found above");
    let end = end + text[end..].find('\n').map_or(text.len() - end, |n| n + 1);
    format!("{}  handoff: {h}\n{}", &text[..end], &text[end..])
}

/// A child process that is killed if the test panics first (so no engine outlives its test).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A xorshift PRNG seeded from the clock; the seed is printed as `<what> seed N` so a failing
/// random workload can be told apart.
pub fn seeded_rng(what: &str) -> impl FnMut() -> u64 {
    let mut x = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("{what} seed {x}");
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// A small deterministic PRNG for the kill moments (seeded from the clock, printed).
pub fn kill_moments(n: usize) -> Vec<Duration> {
    let mut x = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("kill seed {x}");
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_millis(250 + x % 900)
        })
        .collect()
}

/// Runs the plan with `env`, killing it (SIGKILL) at 5 random moments, then lets it finish. Returns how many kills hit a
/// running engine.
pub fn run_with_kills(dir: &Path, plan_path: &str, env: &[(&str, &str)]) -> usize {
    let mut kills = 0;
    for d in kill_moments(5) {
        // Manifests lag the sinks' commits by a few epochs, so most kills land where a restart
        // must replay epochs that some sinks already committed.
        let mut guard = KillOnDrop(
            ferry().current_dir(dir).envs(env.iter().copied()).args(["run", "-q", plan_path]).spawn().unwrap(),
        );
        let child = &mut guard.0;
        let start = Instant::now();
        let mut exited = None;
        while start.elapsed() < d {
            if let Some(s) = child.try_wait().unwrap() {
                exited = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match exited {
            Some(s) => assert!(s.success(), "run ended with {s} before the kill"),
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
        }
    }
    let out = run_in(dir, &["run", "-q", plan_path]);
    let stdout = ok(&out);
    assert!(stdout.starts_with("done:"), "{stdout}");
    kills
}

/// The task's `status.json` under `state`.
pub fn status_json(state: &Path, task: &str) -> Json {
    let path = state.join(task).join("status.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Sends SIGTERM to a running `ferry run` and waits for it to exit; returns how long that took
/// and its exit status.
pub fn sigterm_and_wait(child: &mut std::process::Child) -> (Duration, std::process::ExitStatus) {
    let sent = Instant::now();
    let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(st.success(), "kill -TERM failed");
    let status = child.wait().expect("ferry exits");
    (sent.elapsed(), status)
}

/// The S3-compatible test server (scripts/servers): a plan's `s3` section for it (the secret
/// from the environment, as a user would write it), and where its objects lie on disk.
pub mod s3 {
    use super::*;

    fn var(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test"))
    }

    /// The plan's `s3:` section for the test server.
    pub fn section() -> String {
        format!(
            "s3:\n  endpoint: {}\n  region: us-east-1\n  access_key_id: {}\n  secret_access_key: ${{env:FERRY_TEST_S3_SECRET}}\n",
            var("FERRY_TEST_S3_ENDPOINT"),
            var("FERRY_TEST_S3_KEY")
        )
    }

    /// A bucket of its own for one test run, created (the server's objects outlive a test's
    /// directory, and the test server lists a bucket by walking all of it).
    pub fn prefix(tag: &str) -> String {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let bucket = format!("{tag}-{}", nanos % 1_000_000_000_000);
        // The test server keeps a bucket as a directory of its root.
        std::fs::create_dir_all(Path::new(&var("FERRY_TEST_S3_DIR")).join(&bucket)).unwrap();
        bucket
    }

    /// `s3://<bucket>/<under>`.
    pub fn url(bucket: &str, under: &str) -> String {
        format!("s3://{bucket}/{under}")
    }

    /// The directory the server keeps `s3://<bucket>/<under>`'s objects in.
    pub fn disk(bucket: &str, under: &str) -> PathBuf {
        Path::new(&var("FERRY_TEST_S3_DIR")).join(bucket).join(under)
    }
}

/// The files the commit manifests (`_committed/<task>/*.json`) of an exactly-once files target under
/// `root` on disk list for `db.table`, in name order: what a reader of committed data reads.
pub fn committed_files(root: &Path, db: &str, table: &str) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    let mut manifests = Vec::new();
    let mut dirs = vec![root.join("_committed")];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                manifests.push(p);
            }
        }
    }
    for p in manifests {
        let m: Json =
            serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        files.extend(m["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()));
    }
    let dir = format!("{db}/{table}/");
    files.retain(|f| f.starts_with(&dir));
    files.sort();
    let before = files.len();
    files.dedup();
    assert_eq!(before, files.len(), "a file is listed by two commit manifests");
    files
}

/// Every line of one table of an exactly-once files target whose objects are under `root` on
/// disk, as a reader that sees only committed data reads them: the files the commit manifests
/// list, in name order. A part no manifest lists is not read.
pub fn committed_lines(root: &Path, db: &str, table: &str) -> Vec<Json> {
    let mut lines = Vec::new();
    for f in committed_files(root, db, table) {
        let path = root.join(&f);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("committed file {f}: {e}"));
        for line in text.lines() {
            lines.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{f}: {e}: {line}")));
        }
    }
    lines
}
