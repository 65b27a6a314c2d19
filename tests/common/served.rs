//! A running `ferry serve` for the tests that talk to it over HTTP (the service's and the
//! console's).

use super::*;
use ferry::service::client::{call, Reply};
use serde_json::Value as Json;
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

/// A running `ferry serve` on a free port, killed when dropped.
pub struct Served {
    child: KillOnDrop,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The API token.
    pub token: String,
}

impl Served {
    /// Starts the service on `state` (its token file inside it) and waits for its address.
    pub fn start(state: &Path) -> Served {
        Self::start_with(state, &[])
    }

    /// [`Served::start`] with these environment variables (its runs inherit them).
    pub fn start_with(state: &Path, env: &[(&str, &str)]) -> Served {
        Self::start_at(&state.to_string_lossy(), &[], env, &state.join("token"))
    }

    /// `ferry serve --state <state> <args>` with `env`; its token in `token`.
    pub fn start_at(state: &str, args: &[&str], env: &[(&str, &str)], token: &Path) -> Served {
        let mut child = ferry()
            .args(["serve", "--listen", "127.0.0.1:0", "--state", state])
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        let token = std::fs::read_to_string(token).unwrap();
        Served { child: KillOnDrop(child), base, token }
    }

    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        call(&self.base, Some(&self.token), method, path, headers, body.as_bytes()).unwrap()
    }

    pub fn get(&self, path: &str) -> Json {
        let r = self.call("GET", path, &[], "");
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.json()
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        self.call("POST", path, &[], body)
    }

    /// Waits until the task is in `state` (at most `secs`), and returns its summary.
    pub fn wait_state(&self, task: &str, state: &str, secs: u64) -> Json {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.get(&format!("/api/tasks/{task}"));
            if t["state"] == state {
                return t;
            }
            assert!(Instant::now() < deadline, "task {task} did not become {state}: {t}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the task's run has committed an epoch past `epoch`.
    pub fn wait_epoch_past(&self, task: &str, epoch: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let t = self.get(&format!("/api/tasks/{task}"));
            let e = t["run"]["epoch"].as_u64().unwrap_or(0);
            if e > epoch {
                return e;
            }
            assert!(Instant::now() < deadline, "task {task} commits nothing past epoch {epoch}: {t}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// kill -9 of the service.
    pub fn kill(mut self) {
        self.child.0.kill().unwrap();
        self.child.0.wait().unwrap();
    }
}
