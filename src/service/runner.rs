//! A task's run as a child process: `ferry run -q plan.yaml` in the task's run directory,
//! with its output appended to `run.log`. A child process, not a thread of the service: a run
//! that crashes, aborts or runs out of memory takes no other task and not the service with it,
//! and the engine's "a failing worker ends the process" rule stays as it is.
//!
//! The child dies with the service (Linux `PR_SET_PDEATHSIG`, which the run sets itself, see
//! [`die_with_parent`]; children are spawned by one thread that lives as long as the service,
//! since the signal follows the spawning thread's end): after a kill -9 of the service no run
//! is left behind writing, and the service, started again, starts the runs it had running,
//! which resume from their checkpoints (exactly-once holds through a kill).
//!
//! Stops are the CLI's signals: SIGINT once asks for a savepoint stop (the run ends at its next
//! checkpoint, everything read committed); a second SIGINT cancels (the dataflow is dropped;
//! the next run resumes from the last checkpoint). A cancel that has not ended within
//! [`CANCEL_GRACE`] is a SIGKILL.

use rustix::process::Signal;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a cancelled run has to end before it is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(20);

/// The environment variable that names a run's service (its process id).
pub const PARENT_ENV: &str = "FERRY_SERVICE_PID";

/// In a run the service started (`FERRY_SERVICE_PID` set): asks the kernel to kill this process
/// when the service's spawning thread ends, and ends at once if the service is gone already.
/// (The parent-death signal follows the thread that spawned the child, which lives as long as
/// the service.)
pub fn die_with_parent() -> std::io::Result<()> {
    let Ok(parent) = std::env::var(PARENT_ENV) else { return Ok(()) };
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    let alive = rustix::process::getppid().map(|p| p.as_raw_nonzero().get().to_string()) == Some(parent);
    if !alive {
        return Err(std::io::Error::other("the task service that started this run is gone"));
    }
    Ok(())
}

/// A running child.
#[derive(Debug, Clone)]
pub struct RunHandle {
    pid: rustix::process::Pid,
    exited: Arc<AtomicBool>,
}

/// How a child ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Its exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// The end of its output, for the error of a run that wrote no status.
    pub log_tail: String,
}

/// Starts `ferry run -q plan.yaml` (with `--from-scratch` when `fresh`, `--workers` when
/// given) in `work`; `on_exit` runs on a thread of its own once the child has ended.
pub fn start(
    work: &Path,
    fresh: bool,
    workers: Option<usize>,
    on_exit: impl FnOnce(Exit) + Send + 'static,
) -> std::io::Result<RunHandle> {
    let exe = std::env::current_exe()?;
    // The last run's counters are not this one's.
    let _ = std::fs::remove_file(work.join("metrics.json"));
    let log_path = work.join("run.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(work).args(["run", "-q", "plan.yaml", "--metrics-file", "metrics.json"]);
    if fresh {
        cmd.arg("--from-scratch");
    }
    if let Some(w) = workers {
        cmd.args(["--workers", &w.to_string()]);
    }
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    // The run sets its parent-death signal itself (see [`die_with_parent`]).
    cmd.env(PARENT_ENV, std::process::id().to_string());
    let mut child: Child = spawn(cmd)?;
    let pid = rustix::process::Pid::from_child(&child);
    let exited = Arc::new(AtomicBool::new(false));
    let done = exited.clone();
    std::thread::Builder::new().name("ferry-serve-run".into()).spawn(move || {
        let code = child.wait().ok().and_then(|s| s.code());
        done.store(true, Ordering::SeqCst);
        on_exit(Exit { code, log_tail: tail(&log_path, 2000) });
    })?;
    Ok(RunHandle { pid, exited })
}

type Spawn = (Command, std::sync::mpsc::SyncSender<std::io::Result<Child>>);

/// Spawns `cmd` from one thread that lives as long as the service: the parent-death signal
/// follows the thread that spawned a child, and a request thread may end any time.
fn spawn(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Spawn>>> = std::sync::OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Spawn>();
        std::thread::Builder::new()
            .name("ferry-serve-spawn".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("the spawning thread starts");
        std::sync::Mutex::new(tx)
    });
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    tx.lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, reply))
        .map_err(|_| std::io::Error::other("the spawning thread ended"))?;
    answer.recv().map_err(|_| std::io::Error::other("the spawning thread ended"))?
}

impl RunHandle {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw_nonzero().get()
    }

    /// Whether the child has ended.
    pub fn exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }

    /// Asks for a savepoint stop (SIGINT).
    pub fn stop_at_savepoint(&self) {
        self.signal(Signal::INT);
    }

    /// Cancels: SIGINT twice (the second one drops the dataflow), SIGKILL after
    /// [`CANCEL_GRACE`]; returns at once.
    pub fn cancel(&self) {
        let me = self.clone();
        std::thread::spawn(move || {
            me.signal(Signal::INT);
            // The run's signal thread takes the first one before a second counts apart.
            std::thread::sleep(Duration::from_millis(200));
            me.signal(Signal::INT);
            let until = Instant::now() + CANCEL_GRACE;
            while !me.exited() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !me.exited() {
                me.signal(Signal::KILL);
            }
        });
    }

    fn signal(&self, sig: Signal) {
        // A pid this service started and has not reaped yet (its waiter sets `exited` first).
        if !self.exited() {
            let _ = rustix::process::kill_process(self.pid, sig);
        }
    }
}

/// The last `n` bytes of a file, from a line start.
fn tail(path: &Path, n: u64) -> String {
    let data = std::fs::read(path).unwrap_or_default();
    let from = data.len().saturating_sub(n as usize);
    let text = String::from_utf8_lossy(&data[from..]).into_owned();
    match (from > 0, text.find('\n')) {
        (true, Some(i)) => text[i + 1..].to_string(),
        _ => text,
    }
}
