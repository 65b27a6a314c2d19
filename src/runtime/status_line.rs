//! The live status line of `ferry run`: epoch, rows in and out, rows/s, per-table counts.

use super::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stops the status line thread when dropped or stopped.
pub struct StatusLine {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl StatusLine {
    /// Stops the thread and ends the line.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn human(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Prints a live line on stderr every second: epoch, rows in and out, rows/s, per-table counts.
pub fn spawn_status_line(metrics: Arc<Metrics>, tables: Vec<String>) -> StatusLine {
    use std::io::IsTerminal;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let tty = std::io::stderr().is_terminal();
        let start = Instant::now();
        let mut last = (Instant::now(), 0u64);
        let mut printed = false;
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if last.0.elapsed() < Duration::from_secs(1) {
                continue;
            }
            let out = metrics.rows_out.load(Ordering::Relaxed);
            let rate = (out - last.1) as f64 / last.0.elapsed().as_secs_f64();
            last = (Instant::now(), out);
            let mut per: Vec<(u64, &String)> =
                metrics.per_table.iter().map(|c| c.load(Ordering::Relaxed)).zip(tables.iter()).collect();
            per.sort_by_key(|p| std::cmp::Reverse(p.0));
            let top: Vec<String> = per.iter().take(4).map(|(n, t)| format!("{t} {}", human(*n as f64))).collect();
            let more = if per.len() > 4 { format!(" +{} tables", per.len() - 4) } else { String::new() };
            let line = format!(
                "[{:>4}s] epoch {} | in {} | out {} | {}/s | dirty {} | {}{}",
                start.elapsed().as_secs(),
                metrics.epoch.load(Ordering::Relaxed),
                human(metrics.rows_in.load(Ordering::Relaxed) as f64),
                human(out as f64),
                human(rate),
                metrics.dirty.load(Ordering::Relaxed),
                top.join(", "),
                more
            );
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
            printed = true;
        }
        if tty && printed {
            eprintln!();
        }
    });
    StatusLine { stop, handle: Some(handle) }
}
