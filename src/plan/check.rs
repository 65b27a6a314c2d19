//! Checking a plan file: YAML with every node's place, `${env:NAME}` substitution, the plan's
//! structs (serde, `deny_unknown_fields`), the connector sections (parsed by the connectors the
//! caller passes in) and the cross-field rules; every error with its file, line, column and key.

use super::config::*;
use super::yaml::{self, Doc, Pos};
use super::{relative_to, Connectors, Plan, PlanError, PlanErrors, Section, Settings, SourceSpec, TargetSpec};
use crate::secrets;
use ferry_operators::template::Template;
use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

pub(super) struct Ctx<'a> {
    pub(super) file: &'a str,
    pub(super) doc: &'a Doc,
    pub(super) errors: Vec<PlanError>,
}

impl Ctx<'_> {
    pub(super) fn err_at(&mut self, path: &str, want_key: bool, message: impl Into<String>) {
        let p = self.doc.pos(path, want_key);
        self.push(p, path, message.into());
    }

    pub(super) fn push(&mut self, p: Pos, path: &str, message: String) {
        self.errors.push(PlanError { file: self.file.into(), line: p.line, col: p.col, key: path.into(), message });
    }

    /// An error inside a scalar string value, `offset` bytes into its text.
    pub(super) fn err_in_scalar(&mut self, path: &str, offset: usize, message: String) {
        let mut p = self.doc.pos(path, false);
        let text = path_value(&self.doc.root, path).and_then(|v| v.as_str().map(str::to_string));
        // Plain and quoted one-line scalars: the column of the offending character.
        if let Some(t) = text.filter(|t| !t.contains('\n')) {
            p.col += t[..offset.min(t.len())].chars().count() + usize::from(p.quoted);
        }
        self.push(p, path, message);
    }

    pub(super) fn de<T: DeserializeOwned>(&mut self, value: &Json, path: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let inner = if inner == "." { String::new() } else { inner };
                let full = match (path.is_empty(), inner.is_empty()) {
                    (_, true) => path.to_string(),
                    (true, false) => inner,
                    (false, false) if inner.starts_with('[') => format!("{path}{inner}"),
                    (false, false) => format!("{path}.{inner}"),
                };
                let msg = e.into_inner().to_string();
                self.serde_error(&full, msg);
                None
            }
        }
    }

    pub(super) fn serde_error(&mut self, path: &str, msg: String) {
        // Point unknown keys at the key itself, missing keys at their parent.
        if let Some(rest) = msg.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or("");
            let key_path = if path.ends_with(field) { path.to_string() } else { join(path, field) };
            let expected = rest.split_once(", expected ").map(|(_, e)| e).unwrap_or("");
            let hint = if expected.is_empty() { String::new() } else { format!("; expected {expected}") };
            self.err_at(&key_path, true, format!("unknown key `{field}`: remove it or fix its spelling{hint}"));
        } else if let Some(rest) = msg.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or("");
            self.err_at(path, true, format!("missing required key `{field}`: add `{field}:` here"));
        } else {
            self.err_at(path, false, msg);
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.into()
    } else {
        format!("{path}.{key}")
    }
}

fn path_value<'a>(root: &'a Json, path: &str) -> Option<&'a Json> {
    let mut cur = root;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, idx) = match seg.find('[') {
            Some(i) => (&seg[..i], Some(&seg[i..])),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(idx) = idx {
            for part in idx.split(']').filter(|s| !s.is_empty()) {
                cur = cur.get(part.trim_start_matches('[').parse::<usize>().ok()?)?;
            }
        }
    }
    Some(cur)
}

/// Replaces `${env:NAME}` in every string of the tree; registers the values as secrets.
fn substitute_env(value: &mut Json, path: &str, ctx: &mut Ctx<'_>) {
    match value {
        Json::String(s) if s.contains("${env:") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${env:") {
                out.push_str(&rest[..i]);
                let Some(end) = rest[i..].find('}') else {
                    ctx.err_at(path, false, "unclosed `${env:`: write `${env:NAME}`".to_string());
                    return;
                };
                let name = &rest[i + 6..i + end];
                match std::env::var(name) {
                    Ok(v) => {
                        secrets::register(&v);
                        out.push_str(&v);
                    }
                    Err(_) => ctx.err_at(
                        path,
                        false,
                        format!("environment variable `{name}` is not set: export it before running ferry"),
                    ),
                }
                rest = &rest[i + end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Json::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                substitute_env(v, &format!("{path}[{i}]"), ctx);
            }
        }
        Json::Object(map) => {
            for (k, v) in map.iter_mut() {
                substitute_env(v, &join(path, k), ctx);
            }
        }
        _ => {}
    }
}

fn connector_section(
    ctx: &mut Ctx<'_>,
    value: &Json,
    path: &str,
    known: &[&'static str],
    planned: &[&str],
) -> Option<(String, Option<String>, Json)> {
    let Some(obj) = value.as_object() else {
        ctx.err_at(path, false, format!("`{path}` must be a mapping with a `type` key"));
        return None;
    };
    let kind = match obj.get("type") {
        Some(Json::String(t)) => t.clone(),
        // YAML reads a bare `null` as the null value: that is the `null` connector.
        Some(Json::Null) => "null".to_string(),
        Some(_) => {
            ctx.err_at(&format!("{path}.type"), false, "`type` must be a string".to_string());
            return None;
        }
        None => {
            ctx.err_at(path, true, format!("missing required key `type`: one of {}", known.join(", ")));
            return None;
        }
    };
    if !known.contains(&kind.as_str()) {
        let msg = if planned.contains(&kind.as_str()) {
            format!(
                "{path} type `{kind}` is not in this build yet; this build has: {} (see `ferry links`)",
                known.join(", ")
            )
        } else {
            format!("unknown {path} type `{kind}`: use one of {} (see `ferry links`)", known.join(", "))
        };
        ctx.err_at(&format!("{path}.type"), false, msg);
        return None;
    }
    let name = match obj.get("name") {
        None | Some(Json::Null) => None,
        Some(Json::String(n)) => Some(n.clone()),
        Some(_) => {
            ctx.err_at(&format!("{path}.name"), false, "`name` must be a string".to_string());
            None
        }
    };
    let mut rest = obj.clone();
    rest.shift_remove("type");
    rest.shift_remove("name");
    Some((kind, name, Json::Object(rest)))
}

fn compile_regex(ctx: &mut Ctx<'_>, pattern: &str, path: &str) -> Option<Regex> {
    match Regex::new(&format!("^(?:{pattern})$")) {
        Ok(r) => Some(r),
        Err(e) => {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or("").trim().to_string();
            ctx.err_at(path, false, format!("bad regular expression `{pattern}`: {last}"));
            None
        }
    }
}

/// Loads and checks a plan file's text, without contacting the source. Returns every error.
pub fn load(connectors: &dyn Connectors, file: &str, text: &str) -> Result<Plan, PlanErrors> {
    let doc = match yaml::parse(text) {
        Ok(d) => d,
        Err(e) => {
            return Err(PlanErrors(vec![PlanError {
                file: file.into(),
                line: e.pos.line,
                col: e.pos.col,
                key: String::new(),
                message: format!("YAML syntax: {}", e.message),
            }]))
        }
    };
    let mut ctx = Ctx { file, doc: &doc, errors: Vec::new() };
    let mut root = doc.root.clone();
    if !root.is_object() {
        ctx.err_at("", false, "a plan is a mapping with at least `task`, `source` and `target`".to_string());
        return Err(PlanErrors(ctx.errors));
    }
    substitute_env(&mut root, "", &mut ctx);
    // Deserialize; after an error in an optional section, drop that section and go on, so one
    // `check` shows the errors of every section at once.
    let raw = loop {
        let before = ctx.errors.len();
        if let Some(raw) = ctx.de::<PlanFile>(&root, "") {
            break Some(raw);
        }
        let failed = ctx.errors[before..].first().map(|e| e.key.clone()).unwrap_or_default();
        let top = failed.split(['.', '[']).next().unwrap_or("").to_string();
        let optional = !matches!(top.as_str(), "" | "task" | "source" | "target");
        let removed = optional && root.as_object_mut().is_some_and(|obj| obj.shift_remove(&top).is_some());
        if !removed {
            break None;
        }
    };
    let Some(raw) = raw else {
        return Err(PlanErrors(dedupe(ctx.errors)));
    };
    if raw.task.is_empty() || !raw.task.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        ctx.err_at("task", false, format!("task name `{}` must be letters, digits, `_` or `-`", raw.task));
    }
    let (sources, targets) = (connectors.source_types(), connectors.target_types());
    let source = connector_section(&mut ctx, &raw.source, "source", &sources, connectors.planned_sources()).and_then(
        |(kind, name, rest)| {
            let mut at = Section { ctx: &mut ctx, path: "source" };
            let config = connectors.parse_source(&kind, &rest, &mut at)?;
            Some((SourceSpec { kind: kind.clone(), config }, name.unwrap_or(kind)))
        },
    );
    let target = connector_section(&mut ctx, &raw.target, "target", &targets, connectors.planned_targets()).and_then(
        |(kind, _name, rest)| {
            let mut at = Section { ctx: &mut ctx, path: "target" };
            let config = connectors.parse_target(&kind, &rest, &mut at)?;
            Some(TargetSpec { kind, config })
        },
    );
    let checkpoint_ms = match parse_duration_ms(&raw.runtime.checkpoint_interval) {
        Ok(ms) if ms >= 10 => ms,
        Ok(_) => {
            ctx.err_at(
                "runtime.checkpoint_interval",
                false,
                "the checkpoint interval must be at least 10ms".to_string(),
            );
            0
        }
        Err(e) => {
            ctx.err_at("runtime.checkpoint_interval", false, e);
            0
        }
    };
    match parse_duration_ms(&raw.runtime.cluster_timeout) {
        Ok(ms) if ms >= 1000 => {}
        Ok(_) => ctx.err_at(
            "runtime.cluster_timeout",
            false,
            "the cluster timeout must be at least 1s (how long a process waits for its peers)".to_string(),
        ),
        Err(e) => ctx.err_at("runtime.cluster_timeout", false, e),
    }
    if raw.runtime.workers == 0 || raw.runtime.workers > 256 {
        ctx.err_at("runtime.workers", false, format!("workers must be 1..=256, got {}", raw.runtime.workers));
    }
    if !(-1..=100).contains(&raw.errors.max_restarts) {
        ctx.err_at(
            "errors.max_restarts",
            false,
            format!("max_restarts must be -1 (unlimited), 0 (none) or up to 100, got {}", raw.errors.max_restarts),
        );
    }
    {
        let r = &raw.runtime.resources;
        let key = "runtime.resources";
        match r.mode {
            super::config::ResourceMode::ByPhase => {
                for (name, v) in [("snapshot_workers", r.snapshot_workers), ("streaming_workers", r.streaming_workers)]
                {
                    match v {
                        None => ctx.err_at(
                            key,
                            false,
                            format!("mode by-phase needs `{name}`: e.g. {{mode: by-phase, snapshot_workers: 4, streaming_workers: 1}}"),
                        ),
                        Some(n) if n == 0 || n > 256 => {
                            ctx.err_at(&format!("{key}.{name}"), false, format!("workers must be 1..=256, got {n}"))
                        }
                        _ => {}
                    }
                }
            }
            super::config::ResourceMode::Fixed => {
                if r.snapshot_workers.is_some() || r.streaming_workers.is_some() {
                    ctx.err_at(
                        key,
                        false,
                        "worker counts by phase need `mode: by-phase` (with `mode: fixed`, set runtime.workers)"
                            .to_string(),
                    );
                }
            }
        }
    }
    if raw.runtime.batch_rows == 0 {
        ctx.err_at("runtime.batch_rows", false, "batch_rows must be at least 1".to_string());
    }
    for (i, p) in raw.tables.include.iter().enumerate() {
        compile_regex(&mut ctx, p, &format!("tables.include[{i}]"));
    }
    for (i, p) in raw.tables.exclude.iter().enumerate() {
        compile_regex(&mut ctx, p, &format!("tables.exclude[{i}]"));
    }
    for (i, t) in raw.transforms.iter().enumerate() {
        compile_regex(&mut ctx, &t.tables, &format!("transforms[{i}].tables"));
    }
    for (i, t) in raw.verify.tables.iter().enumerate() {
        compile_regex(&mut ctx, &t.tables, &format!("verify.tables[{i}].tables"));
    }
    if let Some(w) = &raw.alerts.webhook {
        if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
            ctx.err_at("alerts.webhook.url", false, format!("`{}`: an http:// or https:// URL", w.url));
        }
        if let Err(e) = parse_duration_ms(&w.timeout) {
            ctx.err_at("alerts.webhook.timeout", false, e);
        }
    }
    for (i, r) in raw.alerts.rules.iter().enumerate() {
        use super::config::AlertKind;
        if let Err(e) = parse_duration_ms(&r.r#for) {
            ctx.err_at(&format!("alerts.rules[{i}].for"), false, e);
        }
        let needs = matches!(r.kind, AlertKind::Lag | AlertKind::Dirty);
        match (needs, r.above) {
            (true, None) => ctx.err_at(
                &format!("alerts.rules[{i}]"),
                false,
                format!("a `{}` rule needs `above:` (seconds of lag, or dirty rows)", r.kind.as_str()),
            ),
            (false, Some(_)) => ctx.err_at(
                &format!("alerts.rules[{i}].above"),
                true,
                format!("a `{}` rule takes no threshold: remove `above`", r.kind.as_str()),
            ),
            (true, Some(v)) if v.is_nan() || v < 0.0 => {
                ctx.err_at(&format!("alerts.rules[{i}].above"), false, "a threshold of 0 or more".to_string())
            }
            _ => {}
        }
    }
    for (key, text) in
        [("verify.interval", &raw.verify.interval), ("verify.full_sweep_interval", &raw.verify.full_sweep_interval)]
    {
        if let Err(e) = parse_duration_ms(text) {
            ctx.err_at(key, false, e);
        }
    }
    if raw.verify.chunk_rows == 0 {
        ctx.err_at("verify.chunk_rows", false, "must be at least 1 (rows per compared chunk)".to_string());
    }
    for (i, t) in raw.target_tables.tables.iter().enumerate() {
        compile_regex(&mut ctx, &t.tables, &format!("target_tables.tables[{i}].tables"));
        if let Some(f) = &t.ddl_file {
            let path = relative_to(file, f);
            if !std::path::Path::new(&path).is_file() {
                ctx.err_at(
                    &format!("target_tables.tables[{i}].ddl_file"),
                    false,
                    format!("no DDL file `{path}`: write one (`ferry ddl PLAN --table db.table` prints the generated DDL to start from) or remove the key"),
                );
            }
        }
    }
    if raw.target_tables.doris_buckets == Some(0) {
        ctx.err_at(
            "target_tables.doris_buckets",
            false,
            "buckets must be at least 1 (leave the key out for AUTO)".to_string(),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, m) in raw.metadata.iter().enumerate() {
        if !seen.insert(m.column.clone()) {
            ctx.err_at(
                &format!("metadata[{i}].column"),
                false,
                format!("metadata column `{}` is named twice", m.column),
            );
        }
    }
    // Templates parse on their own; unknown fields are checked against the catalog later.
    let routes = std::iter::once(("route".to_string(), &raw.route)).chain(
        raw.transforms
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.route.as_ref().map(|r| (format!("transforms[{i}].route"), r))),
    );
    let mut template_errors = Vec::new();
    for (path, r) in routes {
        for (k, t) in [("database", &r.database), ("table", &r.table)] {
            if let Some(t) = t {
                if let Err(e) = Template::parse(t) {
                    template_errors.push((format!("{path}.{k}"), e));
                }
            }
        }
    }
    for (p, e) in template_errors {
        ctx.err_in_scalar(&p, e.offset, e.message);
    }
    match (source, target, ctx.errors.is_empty()) {
        (Some((source, source_name)), Some(target), true) => {
            let settings = Settings::of(&raw);
            Ok(Plan { file: file.into(), text: text.into(), raw, settings, source, source_name, target, checkpoint_ms })
        }
        _ => Err(PlanErrors(dedupe(ctx.errors))),
    }
}

/// One error per place and key: the same mistake found for many tables is reported once, with
/// a count.
pub(super) fn dedupe(errors: Vec<PlanError>) -> Vec<PlanError> {
    let mut out: Vec<(PlanError, usize)> = Vec::new();
    for e in errors {
        match out.iter_mut().find(|(o, _)| o.line == e.line && o.col == e.col && o.key == e.key) {
            Some((_, n)) => *n += 1,
            None => out.push((e, 0)),
        }
    }
    out.into_iter()
        .map(|(mut e, n)| {
            if n > 0 {
                e.message.push_str(&format!(" (and {n} more like it)"));
            }
            e
        })
        .collect()
}
