//! Secrets: values read from the environment with `${env:NAME}` are registered here, and every
//! line the engine prints (logs, errors) passes through [`redact`], so a password never shows.
//! The state store keeps the plan as written (with `${env:NAME}`), never the substituted text.

use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret value (values shorter than 4 characters are too common to mask safely
/// and are still registered: masking a short word in a log is better than leaking it).
pub fn register(value: &str) {
    if value.is_empty() {
        return;
    }
    let mut s = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !s.iter().any(|v| v == value) {
        s.push(value.to_string());
        s.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }
}

/// Replaces every registered secret and every URL password (`scheme://user:PASSWORD@host`)
/// in `text` with `****`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for s in SECRETS.read().unwrap_or_else(|e| e.into_inner()).iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "****");
        }
    }
    redact_url_passwords(&out)
}

fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'').unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str("****");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A log writer that masks secrets: it collects one formatted event and writes it, redacted,
/// to `inner` when dropped (tracing's formatter makes one writer per event).
pub struct RedactingWriter<W: std::io::Write> {
    buf: Vec<u8>,
    inner: W,
}

impl<W: std::io::Write> RedactingWriter<W> {
    /// A writer into `inner`.
    pub fn new(inner: W) -> Self {
        RedactingWriter { buf: Vec::new(), inner }
    }
}

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: std::io::Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let text = redact(&String::from_utf8_lossy(&self.buf));
            let _ = self.inner.write_all(text.as_bytes());
            let _ = self.inner.flush();
        }
    }
}

/// The engine's log destination: stderr, through [`RedactingWriter`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactedStderr {
    type Writer = RedactingWriter<std::io::Stderr>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(std::io::stderr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn log_lines_are_masked_before_they_are_written() {
        register("s3cr3t-token-value");
        let mut out = Vec::new();
        {
            let mut w = RedactingWriter::new(&mut out);
            write!(w, "connecting with s3cr3t-token-value to ").unwrap();
            writeln!(w, "postgres://u:pw@h/db").unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), "connecting with **** to postgres://u:****@h/db\n");
    }

    #[test]
    fn registered_secrets_and_url_passwords_are_masked() {
        register("hunter2-secret");
        let s = redact("connect failed: mysql://root:pw@127.0.0.1:3306/db token hunter2-secret");
        assert_eq!(s, "connect failed: mysql://root:****@127.0.0.1:3306/db token ****");
        assert_eq!(redact("http://host:80/x"), "http://host:80/x");
    }
}
