//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`, which
//! `scripts/test` installs): the W3C protocol's few calls the console tests need, spoken with
//! the service's own small HTTP client.

use ferry::service::client::call;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; the driver process ends with it.
pub struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
    /// Where screenshots go (`target/console-screenshots`).
    pub shots: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session of `width`×900.
    pub fn start(width: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (apt: chromium-driver; scripts/test installs it)");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while call(&base, None, "GET", "/status", &[], b"").map_or(true, |r| r.status != 200) {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        // No background traffic: this machine's network is closed.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            &format!("--window-size={width},900"),
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium(), "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            _profile: profile,
            shots: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots"),
        };
        let v = b.post("/session", caps);
        b.session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        std::fs::create_dir_all(&b.shots).unwrap();
        b
    }

    fn send(&self, method: &str, path: &str, body: Option<Json>) -> Json {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = call(&self.base, None, method, path, &[("content-type", "application/json")], body.as_bytes())
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        let v = r.json();
        assert!(r.status < 400, "webdriver {method} {path}: {} {}", r.status, r.body);
        v
    }

    fn post(&self, path: &str, body: Json) -> Json {
        self.send("POST", path, Some(body))["value"].clone()
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.post(&self.at("/url"), json!({ "url": url }));
    }

    /// The elements `css` selects now.
    pub fn all(&self, css: &str) -> Vec<String> {
        let v = self.post(&self.at("/elements"), json!({ "using": "css selector", "value": css }));
        let list = v.as_array().unwrap_or_else(|| panic!("find {css}: {v}"));
        list.iter()
            .map(|e| {
                let id = e.get(ELEMENT).or_else(|| e.get("ELEMENT")).and_then(|i| i.as_str());
                id.unwrap_or_else(|| panic!("an element without an id: {e}")).to_string()
            })
            .collect()
    }

    /// Waits (up to `secs`) for an element `css` selects, and returns it.
    pub fn wait(&self, css: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(e) = self.all(css).into_iter().next() {
                return e;
            }
            assert!(Instant::now() < deadline, "no `{css}` on the page after {secs}s: {}", self.body_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the text of `css`'s first element contains `want`; returns the text.
    pub fn wait_text(&self, css: &str, want: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let text = self.text_of(css).unwrap_or_default();
            if text.contains(want) {
                return text;
            }
            assert!(Instant::now() < deadline, "`{css}` never says `{want}` (says `{text}`)");
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Clicks the element `css` selects (waiting for it; found again when the page redrew it
    /// in between).
    pub fn click(&self, css: &str) {
        for _ in 0..20 {
            let e = self.wait(css, 20);
            let body = json!({}).to_string();
            let path = self.at(&format!("/element/{e}/click"));
            let r = call(&self.base, None, "POST", &path, &[("content-type", "application/json")], body.as_bytes())
                .unwrap();
            if r.status < 400 {
                return;
            }
            assert!(r.body.contains("stale element"), "click {css}: {} {}", r.status, r.body);
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("`{css}` kept going stale");
    }

    /// The visible text of the first element `css` selects (`None`: none).
    pub fn text_of(&self, css: &str) -> Option<String> {
        let v =
            self.script("const e = document.querySelector(arguments[0]); return e ? e.innerText : null", json!([css]));
        v.as_str().map(str::to_string)
    }

    /// Types `text` into the element `css` selects.
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.wait(css, 20);
        self.post(&self.at(&format!("/element/{e}/value")), json!({ "text": text }));
    }

    /// An element's visible text.
    pub fn text(&self, element: &str) -> String {
        self.send("GET", &self.at(&format!("/element/{element}/text")), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's text.
    pub fn body_text(&self) -> String {
        self.script("return document.body ? document.body.innerText : ''", json!([])).as_str().unwrap_or("").to_string()
    }

    /// Runs `script` (a function body) with `args`; its return value.
    pub fn script(&self, script: &str, args: Json) -> Json {
        self.post(&self.at("/execute/sync"), json!({ "script": script, "args": args }))
    }

    /// Saves a screenshot as `<shots>/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let v = self.send("GET", &self.at("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD.decode(v["value"].as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The browser console's entries since the last call (level, message).
    pub fn console(&self) -> Vec<(String, String)> {
        let v = self.post(&self.at("/se/log"), json!({ "type": "browser" }));
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (e["level"].as_str().unwrap_or("").to_string(), e["message"].as_str().unwrap_or("").to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts the console shows no error since the last look.
    pub fn assert_no_console_errors(&self) {
        let errors: Vec<(String, String)> = self.console().into_iter().filter(|(l, _)| l == "SEVERE").collect();
        assert!(errors.is_empty(), "the browser's console has errors: {errors:?}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = call(&self.base, None, "DELETE", &format!("/session/{}", self.session), &[], b"");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The Chromium binary: Debian's.
fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("chromium")
}
