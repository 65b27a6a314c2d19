//! The web console in a real headless Chromium (WebDriver), against a running `ferry serve`:
//! log in, a wrong plan's error on its line, checks, a datagen task started and watched to
//! `finished` with its per-table counts; a MariaDB → PostgreSQL task stopped with a savepoint,
//! edited under the edit lock, resumed, a dirty row seen and replayed, two versions compared;
//! no error in the browser's console. Screenshots under `target/console-screenshots/`.

mod common;

use common::browser::Browser;
use common::items::{fresh_source, source_rows};
use common::mysql::{exec, main_url};
use common::served::Served;
use common::sql::{pg_append_log, replay_strictly, Target};
use common::*;
use std::time::{Duration, Instant};

fn log_in(b: &Browser, svc: &Served) {
    b.goto(&format!("{}/#/login", svc.base));
    b.type_into("#token", &svc.token);
    b.click("#login-btn");
    b.wait("#tasks", 20);
}

/// Puts `text` into the plan form's text area.
fn set_plan(b: &Browser, text: &str) {
    b.wait("#plan", 20);
    b.script("document.getElementById('plan').value = arguments[0]; return true", serde_json::json!([text]));
}

const DATAGEN: &str = "task: web-gen\nsource:\n  type: datagen\n  seed: 5\n  databases: 1\n  tables_per_database: 2\n  \
initial_rows: 300\n  changes: 3000\ntarget:\n  type: files\n  path: ./out\ntables:\n  include: ['.*\\.(customers|orders)']\n";

#[test]
fn the_console_creates_checks_and_runs_a_task_to_finished_and_shows_a_wrong_plan_on_its_line() {
    let dir = workdir();
    let svc = Served::start(&dir.path().join("svc"));
    let b = Browser::start(1280);
    // Without the token, the console asks for it.
    b.goto(&svc.base);
    b.wait("#token", 20);
    b.screenshot("login");
    log_in(&b, &svc);

    // A wrong plan: the error on its line (line 4: a misspelled key).
    b.goto(&format!("{}/#/new", svc.base));
    set_plan(&b, &DATAGEN.replace("  seed: 5", "  sed: 5"));
    b.click("#save-btn");
    b.wait("li.error-line[data-line='4']", 20);
    assert_eq!(b.all("#plan-view li.bad").len(), 1, "one line marked");
    b.wait_text("#plan-view li.bad", "sed: 5", 5);
    b.screenshot("new-task-error");

    // The right plan: checked (every check shown, none an error), saved, started, finished.
    set_plan(&b, DATAGEN);
    b.click("#check-btn");
    b.wait("#check-table tr.check[data-name='target-conflict']", 30);
    assert!(b.all("#check-table .level-error").is_empty(), "{}", b.body_text());
    b.wait("#preview", 5);
    b.screenshot("new-task-checks");
    b.click("#save-btn");
    b.wait("#start-btn", 20);
    b.click("#start-btn");
    b.wait_text("#task-state", "finished", 60);
    b.wait("tr.table-row", 10);
    let api = svc.get("/api/tasks/web-gen");
    for t in api["tables"].as_array().unwrap() {
        let rows = t["rows"].as_u64().unwrap();
        assert!(rows > 0, "{t}");
        let css = format!("tr.table-row[data-table='{}'] td.rows", t["source"].as_str().unwrap());
        b.wait_text(&css, &grouped(rows), 10);
    }
    b.screenshot("task-finished");
    b.goto(&format!("{}/#/", svc.base));
    b.wait_text("#tasks tr[data-task='web-gen']", "finished", 20);
    b.screenshot("tasks");
    b.assert_no_console_errors();

    // A narrow screen: the same pages render.
    drop(b);
    let narrow = Browser::start(420);
    log_in(&narrow, &svc);
    narrow.wait("#tasks tr[data-task='web-gen']", 20);
    narrow.screenshot("tasks-narrow");
    narrow.goto(&format!("{}/#/task/web-gen", svc.base));
    narrow.wait_text("#task-state", "finished", 20);
    narrow.screenshot("task-narrow");
    narrow.assert_no_console_errors();
}

/// `n` as the console prints it (`1,234`).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pg_plan(task: &str, db: &str, interval: &str) -> String {
    format!(
        "task: {task}\nsource:\n  type: mariadb\n  url: {}\n  heartbeat: 200ms\n\
         target:\n  type: postgres\n  url: {}\ntables:\n  include: ['{db}\\.items']\n\
         semantics: exactly-once\nwrite_mode: append\nmetadata:\n  - {{column: _op, field: op_type}}\n\
         runtime:\n  checkpoint_interval: {interval}\n",
        main_url(),
        Target::Pg.pg_url()
    )
}

#[test]
fn the_console_stops_edits_and_resumes_a_mariadb_task_and_replays_a_dirty_row() {
    let db = "web_items";
    fresh_source(db, 1000);
    // The target refuses big values: a row of the source becomes dirty until that is lifted.
    Target::Pg.exec(&[format!("ALTER TABLE \"{db}\".items ADD CONSTRAINT small CHECK (v < 1000000000)")]);
    let dir = workdir();
    let svc = Served::start(&dir.path().join("svc"));
    let task = "web-items";
    assert_eq!(svc.post("/api/tasks", &pg_plan(task, db, "300ms")).status, 201);
    let b = Browser::start(1280);
    log_in(&b, &svc);
    let page = format!("{}/#/task/{task}", svc.base);
    b.goto(&page);
    b.click("#start-btn");
    b.wait_text("#task-state", "running", 30);
    exec(&[&format!("INSERT INTO {db}.items VALUES (5001, 2000000000), (5002, 7)")]);
    // The dirty row shows (the section loads with the page).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        b.goto(&format!("{}/#/", svc.base));
        b.goto(&page);
        let text = b.wait_text("#dirty-total", "", 20);
        if text.contains("1 dirty row") {
            break;
        }
        assert!(Instant::now() < deadline, "no dirty row shown: {text}");
        std::thread::sleep(Duration::from_millis(500));
    }
    b.wait_text("#dirty-rows", "5001", 5);
    b.screenshot("task-dirty");

    // Stop with a savepoint, edit (the edit lock is taken), resume.
    b.click("#stop-btn");
    b.wait_text("#task-state", "paused", 60);
    b.click("#edit-link");
    b.wait_text(".msg.ok", "You hold the edit lock", 20);
    b.screenshot("edit");
    set_plan(&b, &pg_plan(task, db, "200ms"));
    b.click("#save-btn");
    b.wait("#resume-btn", 20);
    let t = svc.get(&format!("/api/tasks/{task}"));
    assert_eq!((t["version"].as_u64(), t["lock"].as_str()), (Some(2), None), "saved, and the lock released: {t}");

    // The cause lifted, the dirty row replayed while the task is paused (with a
    // confirmation); then resumed.
    Target::Pg.exec(&[format!("ALTER TABLE \"{db}\".items DROP CONSTRAINT small")]);
    b.click("#replay-btn");
    b.click("#confirm-yes");
    b.wait_text("#replay-msg", "1 written", 60);
    b.wait_text("#dirty-total", "No dirty rows", 20);
    b.click("#resume-btn");
    b.wait_text("#task-state", "running", 30);

    // Two versions side by side.
    b.click("#diff-btn");
    b.wait("#diff-table td.del", 20);
    b.wait_text("#diff-table td.add", "200ms", 5);
    b.screenshot("task-versions");
    b.assert_no_console_errors();

    // The target holds the source, each change once.
    let want = source_rows(db);
    let deadline = Instant::now() + Duration::from_secs(60);
    while replay_strictly(&pg_append_log(db)) != want {
        assert!(Instant::now() < deadline, "the target never equals the source");
        std::thread::sleep(Duration::from_millis(300));
    }
}
