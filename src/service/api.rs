//! The REST API over HTTP/1.1 (hyper): routes to [`Service`] calls, JSON answers, plans as
//! YAML bodies. Every route but `GET /healthz` and the console's assets needs
//! `Authorization: Bearer <token>` (401).
//!
//! ```text
//! GET    /healthz                               200 ok (no token)
//! GET    / , /app.js, /app.css                  the web console (no token: it asks for one)
//! POST   /api/tasks                             plan YAML → 201 {task, version: 1} | 400 | 409
//! GET    /api/tasks                             every task: state, phase, counters, run status
//! GET    /api/tasks/{task}                      the same with tables, history, series
//! PUT    /api/tasks/{task}/plan                 If-Match: <version> → 200 {version} | 409 | 428 | 423
//! GET    /api/tasks/{task}/versions[/{n}]       the versions; one version's plan (YAML)
//! POST   /api/tasks/{task}/lock                 {holder, ttl_seconds} → 200 | 423
//! DELETE /api/tasks/{task}/lock                 Ferry-Lock-Holder: <holder> → 200 | 423
//! POST   /api/tasks/{task}/check                {acknowledge?} → the checks; check-error on an error
//! POST   /api/check                             plan YAML (not saved) → the checks, located errors, mapping
//! POST   /api/tasks/{task}/start                {version?, from?: default|latest|savepoint|timestamp|…}
//! POST   /api/tasks/{task}/stop                 {mode?: savepoint|cancel} → 202
//! POST   /api/tasks/{task}/resume|restart
//! GET    /api/tasks/{task}/alerts               the incidents, newest first
//! GET    /api/tasks/{task}/dirty                dirty rows per table and reason, the first rows
//! POST   /api/tasks/{task}/dirty/replay         `ferry dirty replay` of the run's plan
//! DELETE /api/tasks/{task}                      without a live run only
//! GET    /metrics                               Prometheus text
//! ```

use super::{Answer, Refusal, Service};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response};
use serde_json::{json, Value};
use std::sync::Arc;

/// The largest request body taken (a plan).
const MAX_BODY: usize = 4 << 20;

/// Serves the API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, svc: Arc<Service>, token: Arc<String>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                continue;
            }
        };
        let (svc, token) = (svc.clone(), token.clone());
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let handler = hyper::service::service_fn(move |req| {
                let (svc, token) = (svc.clone(), token.clone());
                async move { Ok::<_, std::convert::Infallible>(handle(req, svc, &token).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, handler).await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

async fn handle(req: Request<hyper::body::Incoming>, svc: Arc<Service>, token: &str) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if method == Method::GET && path == "/healthz" {
        return text(200, "ok\n");
    }
    // The console's assets (compiled in); its data comes from the API with the token.
    if method == Method::GET {
        let asset = match path.as_str() {
            "/" | "/index.html" => Some((CONSOLE_HTML, "text/html; charset=utf-8")),
            "/app.js" => Some((CONSOLE_JS, "text/javascript; charset=utf-8")),
            "/app.css" => Some((CONSOLE_CSS, "text/css; charset=utf-8")),
            _ => None,
        };
        if let Some((body, kind)) = asset {
            let mut r = text(200, body);
            let h = r.headers_mut();
            h.insert("content-type", hyper::header::HeaderValue::from_static(kind));
            h.insert(
                "content-security-policy",
                hyper::header::HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
                ),
            );
            h.insert("x-content-type-options", hyper::header::HeaderValue::from_static("nosniff"));
            return r;
        }
    }
    if !authorized(req.headers(), token) {
        let mut r =
            json_response(401, &json!({ "error": "send Authorization: Bearer <token> (the service's token file)" }));
        r.headers_mut().insert("www-authenticate", hyper::header::HeaderValue::from_static("Bearer"));
        return r;
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (if_match, holder) = (header("if-match"), header("ferry-lock-holder"));
    let body = match read_body(req.into_body()).await {
        Ok(b) => b,
        Err(r) => return refusal(r),
    };
    // The service's calls do file I/O and start processes: off the runtime's threads.
    let answer = tokio::task::spawn_blocking(move || route(&svc, &method, &path, if_match, holder, &body))
        .await
        .unwrap_or_else(|e| Err(Refusal { status: 500, body: json!({ "error": e.to_string() }) }).map(Reply::Json));
    match answer {
        Ok(Reply::Json((status, v))) => json_response(status, &v),
        Ok(Reply::Yaml(t)) => {
            let mut r = text(200, &t);
            r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/yaml"));
            r
        }
        Ok(Reply::Prometheus(t)) => {
            let mut r = text(200, &t);
            let kind = hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
            r.headers_mut().insert("content-type", kind);
            r
        }
        Err(r) => refusal(r),
    }
}

/// The web console (F10, plain HTML, CSS and JavaScript written for it; see `console/`).
const CONSOLE_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/app.js");
const CONSOLE_CSS: &str = include_str!("console/app.css");

enum Reply {
    Json((u16, Value)),
    Yaml(String),
    Prometheus(String),
}

fn route(
    svc: &Arc<Service>,
    method: &Method,
    path: &str,
    if_match: Option<String>,
    holder: Option<String>,
    body: &[u8],
) -> Result<Reply, Refusal> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let json_of = |a: Answer| a.map(Reply::Json);
    match (method, parts.as_slice()) {
        (&Method::GET, ["metrics"]) => Ok(Reply::Prometheus(svc.prometheus())),
        (&Method::POST, ["api", "tasks"]) => json_of(svc.submit(utf8(body)?)),
        (&Method::GET, ["api", "tasks"]) => json_of(svc.list()),
        (&Method::GET, ["api", "tasks", t]) => json_of(svc.get(t)),
        (&Method::DELETE, ["api", "tasks", t]) => json_of(svc.delete(t)),
        (&Method::PUT, ["api", "tasks", t, "plan"]) => {
            json_of(svc.put_plan(t, if_match.as_deref(), holder.as_deref(), utf8(body)?))
        }
        (&Method::GET, ["api", "tasks", t, "versions"]) => json_of(svc.versions(t)),
        (&Method::GET, ["api", "tasks", t, "versions", n]) => {
            let n: u32 = n.parse().map_err(|_| Refusal::new(400, format!("version `{n}`: a number")))?;
            svc.version(t, n).map(Reply::Yaml)
        }
        (&Method::POST, ["api", "tasks", t, "lock"]) => {
            let b = object(body)?;
            let holder = b["holder"].as_str().unwrap_or_default();
            json_of(svc.take_lock(t, holder, b["ttl_seconds"].as_u64().unwrap_or(300)))
        }
        (&Method::DELETE, ["api", "tasks", t, "lock"]) => json_of(svc.release_lock(t, holder.as_deref())),
        (&Method::POST, ["api", "tasks", t, "start"]) => {
            let b = object(body)?;
            let version = match &b["version"] {
                Value::Null => None,
                v => Some(v.as_u64().ok_or_else(|| Refusal::new(400, "`version`: a number"))? as u32),
            };
            json_of(svc.start_at(t, version, b["from"].as_str(), &b))
        }
        (&Method::POST, ["api", "tasks", t, "stop"]) => json_of(svc.stop(t, object(body)?["mode"].as_str())),
        (&Method::POST, ["api", "tasks", t, "check"]) => {
            let body = object(body)?;
            let ack: Vec<String> = body["acknowledge"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                .unwrap_or_default();
            json_of(svc.check(t, &ack))
        }
        (&Method::POST, ["api", "check"]) => json_of(svc.check_draft(utf8(body)?)),
        (&Method::GET, ["api", "tasks", t, "dirty"]) => json_of(svc.dirty(t)),
        (&Method::POST, ["api", "tasks", t, "dirty", "replay"]) => json_of(svc.replay_dirty(t)),
        (&Method::GET, ["api", "tasks", t, "alerts"]) => json_of(svc.alerts(t)),
        (&Method::POST, ["api", "tasks", t, "resume"]) => json_of(svc.resume(t)),
        (&Method::POST, ["api", "tasks", t, "restart"]) => json_of(svc.restart(t)),
        _ => Err(Refusal::new(404, format!("no route {method} {path}"))),
    }
}

fn utf8(body: &[u8]) -> Result<&str, Refusal> {
    std::str::from_utf8(body).map_err(|_| Refusal::new(400, "the body is not UTF-8"))
}

/// A JSON object body (an empty body is `{}`).
fn object(body: &[u8]) -> Result<Value, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| Refusal::new(400, format!("the body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(Refusal::new(400, "the body must be a JSON object"));
    }
    Ok(v)
}

async fn read_body(body: hyper::body::Incoming) -> Result<Vec<u8>, Refusal> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes().to_vec()),
        Err(e) => Err(Refusal::new(413, format!("the body could not be read (at most {MAX_BODY} bytes): {e}"))),
    }
}

/// Whether the request carries the token (compared in constant time).
fn authorized(headers: &hyper::HeaderMap, token: &str) -> bool {
    let Some(got) = headers.get("authorization").and_then(|v| v.to_str().ok()) else { return false };
    let Some(got) = got.strip_prefix("Bearer ") else { return false };
    let (a, b) = (got.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn text(status: u16, t: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(t.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn json_response(status: u16, v: &Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_string_pretty(v).expect("JSON serializes");
    body.push('\n');
    let mut r = text(status, &body);
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn refusal(r: Refusal) -> Response<Full<Bytes>> {
    json_response(r.status, &r.body)
}
