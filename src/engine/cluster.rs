//! A cluster's connections (`ferry run --hostfile H --process P`): forming the cluster, the
//! run identity its processes agree on, noticing a lost peer, and tearing the mesh down so
//! every process restarts from the last checkpoint together.
//!
//! ```text
//!  form(): listen on own address ─► accept later processes ─┐  handshake, both sides:
//!          connect earlier ones (every 0.5 s) ──────────────┤  Hello {identity, process,
//!          until every peer is here, or cluster_timeout ────┘        established}
//!                  │  same identity: keep the socket; otherwise see `verdict`
//!                  ▼
//!  Mesh ─► timely's allocators and communication threads (over `PeerStream`s, which note
//!          the first read or write that fails or ends)
//!                  │  a peer's socket ends, a worker panics, this run fails or is cancelled
//!                  ▼
//!  MeshLink::teardown(): every socket shut down, so every peer's run fails at once too
//!          (a peer that only saw a clean close would wait forever); the task restarts:
//!          form() again, then every process resumes from the last checkpoint.
//! ```
//!
//! timely's own connection set-up retries forever and its communication threads end a run
//! with a panic ("timely communication error: …"); here the panics are expected, kept out of
//! the terminal ([`quiet_timely_panics`]), and the run's failure says which peer was lost.

use crate::runtime::{now_micros, RunControl};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timely::communication::allocator::zero_copy::initialize::{initialize_networking_from_sockets, CommsGuard};
use timely::communication::allocator::zero_copy::stream::Stream;
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};

/// The handshake's protocol version.
const PROTOCOL: u32 = 1;
/// How long a handshake may take once connected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Between two connection attempts to the same peer.
const RETRY: Duration = Duration::from_millis(500);
/// A silent connection is probed after this long, every [`KEEPALIVE_INTERVAL`], and given up
/// after [`KEEPALIVE_PROBES`] unanswered probes: a machine that is gone (no FIN, no RST) is
/// noticed in about 20 s.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// See [`KEEPALIVE_IDLE`].
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(3);
/// See [`KEEPALIVE_IDLE`].
const KEEPALIVE_PROBES: u32 = 3;
/// Data a peer does not acknowledge for this long ends the connection (TCP_USER_TIMEOUT).
const UNACKED_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of forming and keeping a cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// A peer's connection ended or failed during the run (transient: the task restarts and
    /// waits for it).
    #[error("lost process {process} ({address}) of the cluster: {what}")]
    Lost {
        /// The peer's index.
        process: usize,
        /// Its address from the hostfile.
        address: String,
        /// What happened to the connection.
        what: String,
    },
    /// Peers did not join within `runtime.cluster_timeout`.
    #[error(
        "{} did not join the cluster within runtime.cluster_timeout ({}): start {} with the same command as the others (a supervisor restarts a lost process), or raise runtime.cluster_timeout",
        missing.join(", "), span(*timeout), if missing.len() == 1 { "it" } else { "them" }
    )]
    Timeout {
        /// The missing peers, as `process <i> (<host:port>)`.
        missing: Vec<String>,
        /// `runtime.cluster_timeout`.
        timeout: Duration,
    },
    /// This process and a peer are not of the same run (plan, workers, hostfile, version).
    #[error("{0}")]
    Mismatch(String),
    /// This process cannot listen on its own address.
    #[error("cannot listen on {address} (line {} of the hostfile, --process {process}): {reason}", process + 1)]
    Listen {
        /// The address.
        address: String,
        /// This process's index.
        process: usize,
        /// The system's error.
        reason: String,
    },
    /// The hostfile names an address that does not resolve.
    #[error("process {process}'s address `{address}` in the hostfile does not resolve: {reason}")]
    Address {
        /// The peer's index.
        process: usize,
        /// The address.
        address: String,
        /// The resolver's error.
        reason: String,
    },
    /// timely could not take the sockets over.
    #[error("cannot start the cluster's communication: {0}")]
    Start(String),
    /// A stop was asked while waiting for peers.
    #[error("stopped while waiting for the cluster")]
    Stopped,
}

impl ClusterError {
    /// Whether a restart may help: a lost peer may come back; the rest are the setup's.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClusterError::Lost { .. })
    }
}

/// A duration as a plan writes it (`300ms`, `45s`, `5m`).
fn span(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        _ if ms.is_multiple_of(60_000) && ms > 0 => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// What every process of one run has in common; a process joins only peers with the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// ferry's version.
    pub version: String,
    /// The task's name.
    pub task: String,
    /// A hash of the plan file's text (FNV-1a, hex).
    pub plan: String,
    /// A hash of the hostfile's addresses, in order.
    pub hosts: String,
    /// Processes in the cluster.
    pub processes: usize,
    /// Worker threads per process.
    pub workers: usize,
}

impl Identity {
    /// The identity of a run of `plan_text` on `hosts` with `workers` per process.
    pub fn new(task: &str, plan_text: &str, hosts: &[String], workers: usize) -> Identity {
        Identity {
            version: env!("CARGO_PKG_VERSION").into(),
            task: task.into(),
            plan: format!("{:016x}", fnv1a(plan_text.as_bytes())),
            hosts: format!("{:016x}", fnv1a(hosts.join("\n").as_bytes())),
            processes: hosts.len(),
            workers,
        }
    }

    /// What differs from `other`'s run, in words (`theirs` first, then this process's).
    fn differences(&self, theirs: &Identity) -> Vec<String> {
        let mut d = Vec::new();
        let mut pair = |what: &str, t: &dyn std::fmt::Display, m: &dyn std::fmt::Display| {
            d.push(format!("{what} {t} there, {m} here"));
        };
        if theirs.version != self.version {
            pair("ferry version", &theirs.version, &self.version);
        }
        if theirs.task != self.task {
            pair("task", &theirs.task, &self.task);
        }
        if theirs.plan != self.plan {
            pair("plan file hash", &theirs.plan, &self.plan);
        }
        if theirs.processes != self.processes || theirs.hosts != self.hosts {
            pair("hostfile (processes)", &theirs.processes, &self.processes);
        }
        if theirs.workers != self.workers {
            pair("workers per process", &theirs.workers, &self.workers);
        }
        d
    }
}

/// FNV-1a, 64 bits: a hash every build computes alike (std's hasher may change between
/// compilers, and the processes of a cluster may be built apart).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// One side's handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hello {
    /// [`PROTOCOL`].
    ferry_cluster: u32,
    /// The run's identity.
    identity: Identity,
    /// The sender's index.
    process: usize,
    /// Whether the sender has already run with this identity in its lifetime (it is one of
    /// the processes waiting for a lost peer, not a newcomer).
    established: bool,
}

/// What a process does with a peer after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// The same run: keep the socket.
    Join,
    /// The peer is a newcomer of another run and stops by itself; this process waits on for
    /// the right one.
    WaitOn(String),
    /// This process cannot be part of the peer's run: the task fails with the message.
    Refuse(String),
}

/// The verdict on `theirs` (which should be process `expected`) for a process with `mine`.
fn verdict(mine: &Hello, theirs: &Hello, expected: Option<usize>, hosts: &[String]) -> Verdict {
    let address = |p: usize| hosts.get(p).cloned().unwrap_or_else(|| "?".into());
    let mut diffs = if theirs.ferry_cluster != PROTOCOL {
        vec![format!("cluster protocol {} there, {PROTOCOL} here", theirs.ferry_cluster)]
    } else {
        mine.identity.differences(&theirs.identity)
    };
    let index_ok = match expected {
        Some(p) => theirs.process == p,
        None => theirs.process > mine.process && theirs.process < mine.identity.processes,
    };
    if !index_ok {
        diffs.push(format!(
            "it says it is process {}{}",
            theirs.process,
            expected.map_or(String::new(), |p| format!(" where the hostfile has process {p}"))
        ));
    }
    if diffs.is_empty() {
        return Verdict::Join;
    }
    let msg = format!(
        "process {} ({}) and this process {} are not the same run: {}. Every process of a cluster runs the same plan file, hostfile and worker count: start each with the same command, changing only --process",
        theirs.process,
        address(theirs.process),
        mine.process,
        diffs.join("; ")
    );
    if mine.established && !theirs.established {
        Verdict::WaitOn(msg)
    } else {
        Verdict::Refuse(msg)
    }
}

/// Writes `hello` as a length-prefixed JSON frame.
fn send_hello(s: &mut TcpStream, hello: &Hello) -> io::Result<()> {
    let body = serde_json::to_vec(hello).map_err(io::Error::other)?;
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame)
}

/// Reads a peer's hello frame.
fn read_hello(s: &mut TcpStream) -> io::Result<Hello> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 64 << 10 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a ferry cluster process (bad handshake)"));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not a ferry cluster process ({e})")))
}

/// Sets what a cluster connection needs: no Nagle delay, keepalive probes and an unacked-data
/// timeout (a machine that is gone is noticed), blocking without timeouts for timely.
fn tune(s: &TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    let sock = socket2::SockRef::from(s);
    sock.set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_PROBES),
    )?;
    #[cfg(target_os = "linux")]
    sock.set_tcp_user_timeout(Some(UNACKED_TIMEOUT))?;
    s.set_read_timeout(None)?;
    s.set_write_timeout(None)
}

/// Whether a held connection still stands (its peer has not closed it).
fn alive(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return false;
    }
    let r = s.peek(&mut [0u8; 1]);
    let _ = s.set_nonblocking(false);
    match r {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}

/// Acts on the verdict on a handshaken connection `s` from process `p`: keeps it as that
/// peer's connection (joined), notes a process of another run once (this one waits on), or
/// ends the formation (this process is refused).
fn settle(
    v: Verdict,
    s: TcpStream,
    p: usize,
    sockets: &mut [Option<TcpStream>],
    notes: &mut [Option<String>],
    describe: &dyn Fn(usize) -> String,
) -> Result<(), ClusterError> {
    match v {
        Verdict::Join => {
            tune(&s).map_err(|e| ClusterError::Start(e.to_string()))?;
            tracing::info!("{} joined the cluster", describe(p));
            notes[p] = None;
            sockets[p] = Some(s);
        }
        Verdict::WaitOn(msg) => {
            if p < notes.len() && notes[p].as_deref() != Some(msg.as_str()) {
                tracing::warn!("refused a process of another run; waiting on for the right one: {msg}");
                notes[p] = Some(msg);
            }
        }
        Verdict::Refuse(msg) => return Err(ClusterError::Mismatch(msg)),
    }
    Ok(())
}

/// How to form the cluster.
#[derive(Debug)]
pub struct Formation<'a> {
    /// Every process's address, in process order.
    pub hosts: &'a [String],
    /// This process's index.
    pub process: usize,
    /// The run's identity.
    pub identity: &'a Identity,
    /// Whether this process already ran with this identity (see [`Hello::established`]).
    pub established: bool,
    /// How long to wait for the peers.
    pub timeout: Duration,
    /// A stop ends the wait.
    pub control: &'a RunControl,
}

/// Forms the cluster: returns once a connection to every peer stands and passed the handshake.
/// `waiting` is called when the set of missing peers changes (and every few seconds while it
/// does not), with the missing peers and since when this process waits, and once more with
/// none when the cluster is formed.
pub fn form(f: &Formation, mut waiting: impl FnMut(&[String], i64)) -> Result<Mesh, ClusterError> {
    let n = f.hosts.len();
    let me = f.process;
    let mine = Hello { ferry_cluster: PROTOCOL, identity: f.identity.clone(), process: me, established: f.established };
    let listener = if me + 1 < n {
        let l = TcpListener::bind(f.hosts[me].as_str()).map_err(|e| ClusterError::Listen {
            address: f.hosts[me].clone(),
            process: me,
            reason: e.to_string(),
        })?;
        l.set_nonblocking(true).map_err(|e| ClusterError::Start(e.to_string()))?;
        Some(l)
    } else {
        None
    };
    let mut addrs: Vec<Option<SocketAddr>> = vec![None; n];
    for (p, slot) in addrs.iter_mut().enumerate().take(me) {
        let resolved = f.hosts[p].to_socket_addrs().map_err(|e| ClusterError::Address {
            process: p,
            address: f.hosts[p].clone(),
            reason: e.to_string(),
        })?;
        *slot = Some(resolved.into_iter().next().ok_or_else(|| ClusterError::Address {
            process: p,
            address: f.hosts[p].clone(),
            reason: "no address".into(),
        })?);
    }
    let describe = |p: usize| format!("process {p} ({})", f.hosts[p]);
    let mut sockets: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let mut next_try = vec![Instant::now(); n];
    let mut notes: Vec<Option<String>> = vec![None; n];
    let started = Instant::now();
    let since = now_micros();
    let mut last_missing: Option<Vec<String>> = None;
    let mut last_report = Instant::now();
    loop {
        if f.control.stopping() {
            return Err(ClusterError::Stopped);
        }
        // Later processes connect to this one.
        while let Some(l) = &listener {
            let mut s = match l.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "accepting a cluster connection failed");
                    break;
                }
            };
            let theirs = (|| {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
                s.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
                let theirs = read_hello(&mut s)?;
                send_hello(&mut s, &mine)?;
                Ok::<_, io::Error>(theirs)
            })();
            let theirs = match theirs {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(error = %e, "a cluster handshake failed");
                    continue;
                }
            };
            let v = verdict(&mine, &theirs, None, f.hosts);
            settle(v, s, theirs.process, &mut sockets, &mut notes, &describe)?;
        }
        // This process connects to the earlier ones.
        for p in 0..me {
            if sockets[p].is_some() || Instant::now() < next_try[p] {
                continue;
            }
            next_try[p] = Instant::now() + RETRY;
            let addr = addrs[p].expect("resolved above");
            let attempt = (|| {
                let mut s = TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT)?;
                s.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
                s.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
                send_hello(&mut s, &mine)?;
                let theirs = read_hello(&mut s)?;
                Ok::<_, io::Error>((s, theirs))
            })();
            let (s, theirs) = match attempt {
                Ok(x) => x,
                Err(e) => {
                    tracing::trace!(error = %e, "connecting to {} failed", describe(p));
                    continue;
                }
            };
            settle(verdict(&mine, &theirs, Some(p), f.hosts), s, p, &mut sockets, &mut notes, &describe)?;
        }
        // A peer that went away while this process waited for the others is missing again.
        for (p, slot) in sockets.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|s| !alive(s)) {
                tracing::info!("{} left while the cluster formed", describe(p));
                *slot = None;
            }
        }
        let missing: Vec<String> = (0..n)
            .filter(|&p| p != me && sockets[p].is_none())
            .map(|p| match &notes[p] {
                Some(_) => format!("{} (refused one of another run)", describe(p)),
                None => describe(p),
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        if last_missing.as_ref() != Some(&missing) || last_report.elapsed() >= Duration::from_secs(5) {
            if last_missing.as_ref() != Some(&missing) {
                tracing::info!(
                    timeout_secs = f.timeout.as_secs(),
                    "waiting for {} to join the cluster",
                    missing.join(", ")
                );
            }
            waiting(&missing, since);
            last_missing = Some(missing.clone());
            last_report = Instant::now();
        }
        if started.elapsed() >= f.timeout {
            return Err(ClusterError::Timeout {
                missing: (0..n).filter(|&p| p != me && sockets[p].is_none()).map(describe).collect(),
                timeout: f.timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(listener);
    waiting(&[], 0);
    let link = MeshLink(Arc::new(LinkInner {
        hosts: f.hosts.to_vec(),
        handles: Mutex::new(Vec::new()),
        down: AtomicBool::new(false),
        first: Mutex::new(None),
    }));
    let mut streams = Vec::with_capacity(n);
    for (p, s) in sockets.into_iter().enumerate() {
        streams.push(match s {
            Some(s) => {
                let handle = s.try_clone().map_err(|e| ClusterError::Start(e.to_string()))?;
                link.0.handles.lock().unwrap_or_else(|e| e.into_inner()).push(handle);
                Some(PeerStream { stream: s, peer: p, link: link.clone() })
            }
            None => None,
        });
    }
    tracing::info!(processes = n, "the cluster is formed");
    Ok(Mesh { streams, process: me, link })
}

/// The connections of a formed cluster, before timely takes them.
#[derive(Debug)]
pub struct Mesh {
    streams: Vec<Option<PeerStream>>,
    process: usize,
    link: MeshLink,
}

impl Mesh {
    /// The handle the workers and the run keep.
    pub fn link(&self) -> MeshLink {
        self.link.clone()
    }

    /// timely's allocators for `workers` local workers over these connections, and the guard
    /// of its communication threads (drop it with [`drop_comms`]).
    pub fn into_timely(self, workers: usize) -> Result<(Vec<AllocatorBuilder>, CommsGuard), ClusterError> {
        let hooks = Hooks::default();
        let local = ProcessBuilder::new_typed_vector(workers, hooks.refill.clone(), hooks.spill.clone());
        let (builders, guard) = initialize_networking_from_sockets(local, self.streams, self.process, workers, hooks)
            .map_err(|e| ClusterError::Start(e.to_string()))?;
        Ok((builders.into_iter().map(AllocatorBuilder::Tcp).collect(), guard))
    }
}

/// Joins timely's communication threads; a thread that ended with a panic (a connection that
/// failed or was shut down) is expected after a failed run and does not take this thread down.
pub fn drop_comms(guard: CommsGuard) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(guard))).is_err() {
        tracing::debug!("a cluster communication thread ended with an error");
    }
}

/// Shared by the run, its workers and every [`PeerStream`] of one mesh.
#[derive(Debug, Clone)]
pub struct MeshLink(Arc<LinkInner>);

#[derive(Debug)]
struct LinkInner {
    hosts: Vec<String>,
    /// A clone of every connection, to shut them down.
    handles: Mutex<Vec<TcpStream>>,
    /// Set by [`MeshLink::teardown`]: later connection ends are its own doing.
    down: AtomicBool,
    /// The first connection that ended or failed before the teardown: peer and what happened.
    first: Mutex<Option<(usize, String)>>,
}

impl MeshLink {
    /// Shuts every connection down (idempotent): the local communication threads end, and
    /// every peer sees its connection end and fails its run too.
    pub fn teardown(&self) {
        if self.0.down.swap(true, Ordering::SeqCst) {
            return;
        }
        for s in self.0.handles.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Whether [`MeshLink::teardown`] ran.
    pub fn is_down(&self) -> bool {
        self.0.down.load(Ordering::SeqCst)
    }

    /// The peer whose connection ended or failed first, before this process tore the mesh
    /// down, as the run's failure.
    pub fn lost(&self) -> Option<ClusterError> {
        let first = self.0.first.lock().unwrap_or_else(|e| e.into_inner()).clone();
        first.map(|(p, what)| ClusterError::Lost {
            process: p,
            address: self.0.hosts.get(p).cloned().unwrap_or_default(),
            what,
        })
    }

    fn record(&self, peer: usize, what: impl FnOnce() -> String) {
        if self.is_down() {
            return;
        }
        let mut first = self.0.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some((peer, what()));
        }
    }
}

/// A connection to one peer as timely's communication threads use it; notes the first read or
/// write that fails or finds the connection closed.
#[derive(Debug)]
pub struct PeerStream {
    stream: TcpStream,
    peer: usize,
    link: MeshLink,
}

impl Read for PeerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.stream.read(buf);
        match &r {
            // After a clean end of the run this is the expected end of the stream; the note
            // is read only when the run failed.
            Ok(0) if !buf.is_empty() => self.link.record(self.peer, || "the connection was closed".into()),
            Err(e) => self.link.record(self.peer, || e.to_string()),
            Ok(_) => {}
        }
        r
    }
}

impl Write for PeerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.stream.write(buf);
        if let Err(e) = &r {
            self.link.record(self.peer, || e.to_string());
        }
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.stream.flush();
        if let Err(e) = &r {
            self.link.record(self.peer, || e.to_string());
        }
        r
    }
}

impl Stream for PeerStream {
    fn try_clone(&self) -> io::Result<Self> {
        Ok(PeerStream { stream: self.stream.try_clone()?, peer: self.peer, link: self.link.clone() })
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.stream.set_nonblocking(nonblocking)
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.stream.shutdown(how)
    }
}

/// The text of a panic's payload.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Whether a panic message is timely's reaction to a failed connection (its communication
/// threads' "timely communication error: …", a worker's "MergeQueue poisoned.").
pub fn is_communication_panic(msg: &str) -> bool {
    msg.starts_with("timely communication error")
        || msg.contains("MergeQueue poisoned")
        || msg.starts_with("Send thread panic")
        || msg.starts_with("Recv thread panic")
}

/// Installs (once) a panic hook that logs timely's communication panics (in its threads, and
/// the join of its communication threads) at debug level instead of printing them: they are
/// how timely ends a run whose connection failed, and the run's failure names the lost peer.
/// Every other panic goes to the hook installed before.
pub fn quiet_timely_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            let msg = panic_text(info.payload());
            if is_communication_panic(&msg) {
                tracing::debug!(thread = name, "{msg}");
                return;
            }
            previous(info)
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(process: usize, workers: usize, plan: &str, established: bool) -> Hello {
        let hosts = vec!["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string(), "127.0.0.1:3".to_string()];
        Hello { ferry_cluster: PROTOCOL, identity: Identity::new("t", plan, &hosts, workers), process, established }
    }

    #[test]
    fn the_same_run_joins_and_a_changed_plan_or_worker_count_does_not() {
        let hosts: Vec<String> = vec!["a:1".into(), "b:2".into(), "c:3".into()];
        let me = hello(0, 1, "plan", false);
        assert_eq!(verdict(&me, &hello(2, 1, "plan", false), None, &hosts), Verdict::Join);
        let Verdict::Refuse(msg) = verdict(&me, &hello(1, 2, "plan", false), None, &hosts) else { panic!() };
        assert!(msg.contains("workers per process 2 there, 1 here"), "{msg}");
        assert!(msg.contains("process 1 (b:2)"), "{msg}");
        let Verdict::Refuse(msg) = verdict(&me, &hello(1, 1, "plan 2", false), None, &hosts) else { panic!() };
        assert!(msg.contains("plan file hash"), "{msg}");
    }

    #[test]
    fn an_established_process_waits_on_while_the_newcomer_of_another_run_is_refused() {
        let hosts: Vec<String> = vec!["a:1".into(), "b:2".into()];
        let old = hello(0, 1, "plan", true);
        let new = hello(1, 1, "changed plan", false);
        assert!(matches!(verdict(&old, &new, None, &hosts), Verdict::WaitOn(_)));
        assert!(matches!(verdict(&new, &old, Some(0), &hosts), Verdict::Refuse(_)));
        // Both established (two clusters on one address) or both new: both refuse.
        let other = hello(1, 1, "changed plan", true);
        assert!(matches!(verdict(&old, &other, None, &hosts), Verdict::Refuse(_)));
    }

    #[test]
    fn a_peer_claiming_another_index_is_not_joined() {
        let hosts: Vec<String> = vec!["a:1".into(), "b:2".into(), "c:3".into()];
        let me = hello(1, 1, "plan", false);
        let Verdict::Refuse(msg) = verdict(&me, &hello(2, 1, "plan", false), Some(0), &hosts) else { panic!() };
        assert!(msg.contains("it says it is process 2 where the hostfile has process 0"), "{msg}");
        assert!(matches!(verdict(&me, &hello(0, 1, "plan", false), None, &hosts), Verdict::Refuse(_)));
    }

    #[test]
    fn identity_hash_is_fnv1a() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn two_processes_form_a_mesh_and_a_lost_peer_is_named() {
        let port = |l: TcpListener| l.local_addr().unwrap().port();
        let p0 = port(TcpListener::bind("127.0.0.1:0").unwrap());
        let hosts = vec![format!("127.0.0.1:{p0}"), "127.0.0.1:1".to_string()];
        let id = Identity::new("t", "plan", &hosts, 1);
        let control = RunControl::default();
        let (h, i, c) = (hosts.clone(), id.clone(), control.clone());
        let other = std::thread::spawn(move || {
            let f = Formation {
                hosts: &h,
                process: 1,
                identity: &i,
                established: false,
                timeout: Duration::from_secs(20),
                control: &c,
            };
            form(&f, |_, _| {}).unwrap()
        });
        let f = Formation {
            hosts: &hosts,
            process: 0,
            identity: &id,
            established: false,
            timeout: Duration::from_secs(20),
            control: &control,
        };
        let mesh0 = form(&f, |_, _| {}).unwrap();
        let mesh1 = other.join().unwrap();
        let (link0, mut s1) = (mesh0.link(), mesh1.streams.into_iter().flatten().next().unwrap());
        // Process 1 goes away: process 0's read sees the end and names it.
        mesh1.link.teardown();
        let mut s0 = mesh0.streams.into_iter().flatten().next().unwrap();
        assert_eq!(s0.read(&mut [0u8; 8]).unwrap(), 0);
        let lost = link0.lost().expect("a loss is noted");
        assert!(lost.to_string().contains("lost process 1 (127.0.0.1:1)"), "{lost}");
        // Its own teardown is not a loss.
        assert!(mesh1.link.lost().is_none());
        let _ = s1.write(b"x");
    }

    #[test]
    fn a_missing_peer_ends_the_wait_after_the_timeout_naming_it() {
        let hosts = vec!["127.0.0.1:9".to_string(), "127.0.0.1:0".to_string()];
        let id = Identity::new("t", "plan", &hosts, 1);
        let control = RunControl::default();
        let f = Formation {
            hosts: &hosts,
            process: 1,
            identity: &id,
            established: false,
            timeout: Duration::from_secs(1),
            control: &control,
        };
        let mut reported = Vec::new();
        let e = form(&f, |m, _| reported.push(m.to_vec())).unwrap_err();
        assert!(matches!(&e, ClusterError::Timeout { missing, .. } if missing == &["process 0 (127.0.0.1:9)"]), "{e}");
        assert!(e.to_string().contains("within runtime.cluster_timeout (1s)"), "{e}");
        assert_eq!(span(Duration::from_secs(300)), "5m");
        assert_eq!(reported.first().map(|m| m.len()), Some(1));
    }
}
