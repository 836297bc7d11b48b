//! Audit sinks (catalogue L3): off-box copies of the audit trail as JSON lines, written to a
//! file (rotated by size), stdout or syslog.
//!
//! The audit writer commits a batch of records to the database, hands the batch's JSON lines
//! (`serde_json::to_string(&Line)`, one document per line) to [`Sinks::ship`] and only then
//! acknowledges the requests. Each sink has its own tokio task, which does the blocking I/O on
//! the blocking pool, so one sink never holds up another.
//!
//! # Required and best-effort sinks
//!
//! - A **required** sink fails closed: `ship` waits until the sink's task has written *and
//!   flushed* the lines (a file: `write_all`, `flush`, `sync_data`) and returns `Err` if that
//!   fails or does not happen within the sink's timeout. The caller then fails the request
//!   rather than answer a call whose record is missing from the copy it relies on.
//! - A **best-effort** sink never makes `ship` wait or fail: the lines are queued and written
//!   later. When its queue is full the lines are dropped and counted.
//!
//! # Why bounded queues
//!
//! A sink can be slow (a disk stalling on `fsync`) or broken (a full disk, a dead syslog daemon).
//! An unbounded queue would turn that into memory growth without limit and, once the process
//! dies, into silent loss of everything queued. Each sink's queue instead holds at most
//! `queue_lines` lines (waiting or being written): a best-effort sink drops what does not fit,
//! a required sink makes `ship` wait for room, but never longer than its timeout. Nothing
//! blocks requests indefinitely.
//!
//! # Alerts and counters
//!
//! Every sink counts the lines it shipped and dropped and its failures ([`Sinks::stats`]), and
//! knows whether its last write succeeded ([`Sinks::healthy`]). Lost lines and failures raise an
//! alert in the log (`error!` for a required sink, `warn!` for a best-effort one), at most one
//! per sink per 10 s, with the number of lines dropped and failures since the previous alert; a
//! recovery after an alert is logged once. Alerts name the sink and the kind of failure, never
//! the lines' contents.
//!
//! # Failure semantics
//!
//! A batch whose write fails is not retried by the sink: its lines are counted as dropped (and a
//! required sink's `ship` fails, so the caller knows). The next batch tries again (a file is
//! reopened, a syslog socket reconnected). A file sink first truncates whatever part of the
//! failed batch reached the file, so every file holds whole lines only. Because each record
//! carries its chain fields, a gap in a copy is visible to a verifier, and the database still
//! holds the records. When a required sink times out, its lines stay queued and may still be
//! written later.
//!
//! Each file of a rotated file sink is verifiable on its own: rotation happens between lines,
//! never inside one, and every line carries `seq`, `prev_hash` and `hash`. kagid must be the
//! only writer of a sink's file (do not point an external log rotator at it).

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::{Instant, timeout_at};

/// Default size of a sink's queue, in lines.
pub const DEFAULT_QUEUE_LINES: usize = 10_000;

/// Default time a required sink may take to confirm a batch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default syslog socket.
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";

/// At most one alert per sink in this interval.
const ALERT_INTERVAL: Duration = Duration::from_secs(10);

/// RFC 5424 priority: facility authpriv (10) × 8 + severity info (6).
const SYSLOG_PRIORITY: u8 = 10 * 8 + 6;

/// Where a sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    /// JSON lines appended to a file (mode 0600), rotated by size.
    File {
        /// The file; its directory is created (mode 0700) if missing.
        path: PathBuf,
        /// Rotate before the file would grow beyond this many bytes (0: never rotate). A
        /// single line longer than this still goes into a file of its own.
        max_bytes: u64,
        /// How many rotated files (`path.1` newest … `path.<keep>` oldest) to keep.
        keep: usize,
    },
    /// JSON lines on standard output.
    Stdout,
    /// RFC 5424 messages (facility authpriv, severity info, app-name `kagid`, MSGID `audit`)
    /// over a Unix datagram socket.
    Syslog {
        /// The syslog daemon's socket, usually [`DEFAULT_SYSLOG_SOCKET`].
        socket: PathBuf,
    },
}

impl SinkTarget {
    /// Syslog on [`DEFAULT_SYSLOG_SOCKET`].
    pub fn syslog() -> Self {
        SinkTarget::Syslog {
            socket: PathBuf::from(DEFAULT_SYSLOG_SOCKET),
        }
    }

    /// The sink's name in logs, errors and stats: `file:<path>`, `stdout` or `syslog:<socket>`.
    pub fn name(&self) -> String {
        match self {
            SinkTarget::File { path, .. } => format!("file:{}", path.display()),
            SinkTarget::Stdout => "stdout".to_owned(),
            SinkTarget::Syslog { socket } => format!("syslog:{}", socket.display()),
        }
    }
}

/// One sink's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// Where it writes.
    pub target: SinkTarget,
    /// Fail closed: [`Sinks::ship`] fails unless this sink has written and flushed the lines
    /// within `timeout`. Otherwise best-effort: lines that do not fit the queue are dropped.
    pub required: bool,
    /// Lines the queue holds, waiting or being written (default [`DEFAULT_QUEUE_LINES`];
    /// at least 1). A batch longer than the queue takes the whole queue.
    pub queue_lines: usize,
    /// How long a required sink may take to queue, write and flush a batch (default
    /// [`DEFAULT_TIMEOUT`]); also the send timeout of a syslog socket.
    pub timeout: Duration,
}

impl SinkConfig {
    /// A best-effort sink with the default queue and timeout.
    pub fn new(target: SinkTarget) -> Self {
        Self {
            target,
            required: false,
            queue_lines: DEFAULT_QUEUE_LINES,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Why a sink could not start or did not take a batch. Every message names the sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A file sink's directory or file could not be created or opened.
    #[error("audit sink {sink}: cannot open {path}: {source}")]
    Open {
        /// The sink.
        sink: String,
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// A required syslog sink's socket cannot be reached.
    #[error(
        "audit sink {sink}: cannot reach the syslog socket {socket}: {source} \
         (is a syslog daemon running? configure another socket or make the sink best-effort)"
    )]
    SyslogUnavailable {
        /// The sink.
        sink: String,
        /// The socket.
        socket: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// [`Sinks::start`] was called outside a tokio runtime.
    #[error("audit sinks must be started inside a tokio runtime")]
    NoRuntime,
    /// A required sink's write or flush failed.
    #[error("audit sink {sink}: write failed: {source}")]
    Write {
        /// The sink.
        sink: String,
        /// The failure (shared by every batch written together).
        source: Arc<io::Error>,
    },
    /// A required sink did not confirm the batch in time.
    #[error("audit sink {sink}: lines not written within {timeout:?}")]
    Timeout {
        /// The sink.
        sink: String,
        /// Its timeout.
        timeout: Duration,
    },
    /// A sink's task is gone (it panicked); the sink takes no more lines.
    #[error("audit sink {sink}: stopped")]
    Stopped {
        /// The sink.
        sink: String,
    },
}

/// One sink's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStats {
    /// The sink's name ([`SinkTarget::name`]).
    pub name: String,
    /// Whether it is required (fail closed).
    pub required: bool,
    /// Lines written and flushed.
    pub shipped: u64,
    /// Lines lost: queue full, write failed, or never queued by a required sink in time.
    pub dropped: u64,
    /// Failed writes and required batches that timed out.
    pub failures: u64,
    /// Whether its last write succeeded (or, before any write, whether it opened).
    pub healthy: bool,
}

/// The running audit sinks. Cheap to clone: every clone ships to the same sinks. The sinks'
/// tasks end once every clone is dropped and their queues are written.
#[derive(Clone)]
pub struct Sinks {
    sinks: Arc<[Sink]>,
}

impl fmt::Debug for Sinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.sinks.iter().map(|s| &s.shared.name))
            .finish()
    }
}

impl Sinks {
    /// Opens every sink (a file sink creates its directory and file, mode 0600, appending) and
    /// starts one tokio task per sink. Fails if a file cannot be opened, if a required syslog
    /// sink's socket cannot be reached (a best-effort one starts unhealthy, with a warning, and
    /// retries on every batch), or outside a tokio runtime. Nothing is started on failure.
    pub fn start(configs: Vec<SinkConfig>) -> Result<Self, SinkError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SinkError::NoRuntime)?;
        let mut opened = Vec::with_capacity(configs.len());
        for config in configs {
            let name = config.target.name();
            let (writer, healthy) = Writer::open(&name, &config)?;
            opened.push((config, name, writer, healthy));
        }
        let sinks = opened
            .into_iter()
            .map(|(config, name, writer, healthy)| {
                let capacity = config.queue_lines.clamp(1, u32::MAX as usize);
                let shared = Arc::new(Shared {
                    name,
                    required: config.required,
                    timeout: config.timeout,
                    shipped: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    healthy: AtomicBool::new(healthy),
                    alerts: Mutex::new(AlertState::default()),
                });
                let (tx, rx) = mpsc::unbounded_channel();
                runtime.spawn(run(Arc::clone(&shared), rx, writer));
                tracing::info!(
                    sink = %shared.name,
                    required = shared.required,
                    queue_lines = capacity,
                    "audit sink started"
                );
                Sink {
                    shared,
                    queue: Arc::new(Semaphore::new(capacity)),
                    // At most u32::MAX by the clamp above.
                    capacity: capacity as u32,
                    tx,
                }
            })
            .collect();
        Ok(Self { sinks })
    }

    /// No sinks: `ship` does nothing and always succeeds.
    pub fn none() -> Self {
        Self {
            sinks: Arc::from(Vec::new()),
        }
    }

    /// Ships `lines` (each one JSON document without a trailing newline) to every sink.
    ///
    /// For each required sink, waits until its task has written and flushed them, or its
    /// timeout passes (`Err`: fail closed). Best-effort sinks get the lines queued without
    /// waiting; if a queue is full the lines are dropped for that sink, counted and alerted.
    /// Returns `Ok` when every required sink has the lines; otherwise the first required
    /// sink's error (each failing sink also alerts in the log).
    pub async fn ship(&self, lines: Arc<Vec<String>>) -> Result<(), SinkError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut required = Vec::new();
        for sink in self.sinks.iter() {
            if sink.shared.required {
                required.push(sink.ship_required(Arc::clone(&lines)));
            } else {
                sink.offer(Arc::clone(&lines));
            }
        }
        futures::future::join_all(required)
            .await
            .into_iter()
            .collect()
    }

    /// Every sink's counters, in configuration order.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.sinks
            .iter()
            .map(|sink| {
                let s = &sink.shared;
                SinkStats {
                    name: s.name.clone(),
                    required: s.required,
                    shipped: s.shipped.load(Ordering::Relaxed),
                    dropped: s.dropped.load(Ordering::Relaxed),
                    failures: s.failures.load(Ordering::Relaxed),
                    healthy: s.healthy.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Whether every required sink is healthy (its last write succeeded). Best-effort sinks
    /// do not count; see [`Sinks::stats`] for them.
    pub fn healthy(&self) -> bool {
        self.sinks
            .iter()
            .filter(|s| s.shared.required)
            .all(|s| s.shared.healthy.load(Ordering::Relaxed))
    }
}

/// The shipping side of one sink.
struct Sink {
    shared: Arc<Shared>,
    /// One permit per line queued or being written.
    queue: Arc<Semaphore>,
    capacity: u32,
    tx: mpsc::UnboundedSender<Job>,
}

/// A batch queued for a sink's task.
struct Job {
    lines: Arc<Vec<String>>,
    /// Released once the batch is written (or has failed): the room it took in the queue.
    _room: OwnedSemaphorePermit,
    /// Where a required sink's `ship` waits for the outcome.
    done: Option<oneshot::Sender<Result<(), Arc<io::Error>>>>,
}

impl Sink {
    /// Permits a batch of `lines` lines takes.
    fn room_for(&self, lines: usize) -> u32 {
        u32::try_from(lines).map_or(self.capacity, |n| n.min(self.capacity))
    }

    /// Best-effort: queues the lines if there is room, else drops them.
    fn offer(&self, lines: Arc<Vec<String>>) {
        let count = lines.len() as u64;
        match Arc::clone(&self.queue).try_acquire_many_owned(self.room_for(lines.len())) {
            Ok(room) => {
                let job = Job {
                    lines,
                    _room: room,
                    done: None,
                };
                if self.tx.send(job).is_err() {
                    self.shared.lost(count, 0, "sink task stopped");
                }
            }
            Err(_) => self.shared.lost(count, 0, "queue full"),
        }
    }

    /// Required: queues the lines (waiting for room) and waits for them to be written.
    async fn ship_required(&self, lines: Arc<Vec<String>>) -> Result<(), SinkError> {
        let shared = &self.shared;
        let deadline = Instant::now() + shared.timeout;
        let count = lines.len() as u64;
        let room = Arc::clone(&self.queue).acquire_many_owned(self.room_for(lines.len()));
        let room = match timeout_at(deadline, room).await {
            Ok(Ok(room)) => room,
            Ok(Err(_closed)) => return Err(shared.stopped(count)),
            Err(_elapsed) => {
                // Never queued: these lines will not reach the sink.
                shared.healthy.store(false, Ordering::Relaxed);
                shared.lost(count, 1, "queue full until the timeout");
                return Err(shared.timed_out());
            }
        };
        let (done, outcome) = oneshot::channel();
        let job = Job {
            lines,
            _room: room,
            done: Some(done),
        };
        if self.tx.send(job).is_err() {
            return Err(shared.stopped(count));
        }
        match timeout_at(deadline, outcome).await {
            Ok(Ok(Ok(()))) => Ok(()),
            // Counted and alerted by the task.
            Ok(Ok(Err(source))) => Err(SinkError::Write {
                sink: shared.name.clone(),
                source,
            }),
            Ok(Err(_task_gone)) => Err(shared.stopped(0)),
            Err(_elapsed) => {
                // Still queued: the lines may be written later, so they are not counted as
                // dropped, but the batch failed and the sink is not keeping up.
                shared.healthy.store(false, Ordering::Relaxed);
                shared.lost(0, 1, "write not confirmed within the timeout");
                Err(shared.timed_out())
            }
        }
    }
}

/// What a sink's shipping side and its task share: counters and the alert limiter.
struct Shared {
    name: String,
    required: bool,
    timeout: Duration,
    shipped: AtomicU64,
    dropped: AtomicU64,
    failures: AtomicU64,
    healthy: AtomicBool,
    alerts: Mutex<AlertState>,
}

impl Shared {
    fn alerts(&self) -> MutexGuard<'_, AlertState> {
        self.alerts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `dropped` lines and `failures`, and alerts unless one was raised recently.
    fn lost(&self, dropped: u64, failures: u64, reason: impl Into<String>) {
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        self.failures.fetch_add(failures, Ordering::Relaxed);
        let alert =
            self.alerts()
                .record(std::time::Instant::now(), dropped, failures, reason.into());
        if let Some(alert) = alert {
            self.raise(&alert);
        }
    }

    fn timed_out(&self) -> SinkError {
        SinkError::Timeout {
            sink: self.name.clone(),
            timeout: self.timeout,
        }
    }

    fn stopped(&self, dropped: u64) -> SinkError {
        self.healthy.store(false, Ordering::Relaxed);
        self.lost(dropped, 1, "sink task stopped");
        SinkError::Stopped {
            sink: self.name.clone(),
        }
    }

    /// After a successful write: back to healthy, logging the recovery once after an alert.
    fn recovered(&self) {
        if self.healthy.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some((dropped, failures)) = self.alerts().recover() {
            tracing::info!(
                sink = %self.name,
                required = self.required,
                lines_dropped_since_last_alert = dropped,
                failures_since_last_alert = failures,
                "audit sink recovered"
            );
        }
    }

    /// Raises an alert for losses counted since the last one, once the interval has passed.
    fn alert_if_due(&self) {
        let alert = self.alerts().due(std::time::Instant::now());
        if let Some(alert) = alert {
            self.raise(&alert);
        }
    }

    fn raise(&self, alert: &Alert) {
        if self.required {
            tracing::error!(
                sink = %self.name,
                required = true,
                lines_dropped_since_last_alert = alert.dropped,
                failures_since_last_alert = alert.failures,
                reason = %alert.reason,
                "required audit sink failing: requests fail until it recovers \
                 (at most one alert per sink per 10 s)"
            );
        } else {
            tracing::warn!(
                sink = %self.name,
                required = false,
                lines_dropped_since_last_alert = alert.dropped,
                failures_since_last_alert = alert.failures,
                reason = %alert.reason,
                "best-effort audit sink losing lines: this copy of the audit trail has gaps \
                 (at most one alert per sink per 10 s)"
            );
        }
    }
}

/// Rate limiter of one sink's alerts: losses accumulate until an alert may be raised.
#[derive(Debug, Default)]
struct AlertState {
    /// When the last alert was raised.
    last: Option<std::time::Instant>,
    /// Lines dropped since the last alert.
    dropped: u64,
    /// Failures since the last alert.
    failures: u64,
    /// The latest failure's kind.
    reason: String,
    /// Whether an alert was raised since the sink was last healthy.
    alerted: bool,
}

/// An alert to raise.
#[derive(Debug, PartialEq, Eq)]
struct Alert {
    dropped: u64,
    failures: u64,
    reason: String,
}

impl AlertState {
    /// Adds losses; returns the alert to raise, if one is due.
    fn record(
        &mut self,
        now: std::time::Instant,
        dropped: u64,
        failures: u64,
        reason: String,
    ) -> Option<Alert> {
        self.dropped += dropped;
        self.failures += failures;
        self.reason = reason;
        self.due(now)
    }

    /// The alert for the losses not yet reported, if there are some and none was raised in the
    /// last [`ALERT_INTERVAL`].
    fn due(&mut self, now: std::time::Instant) -> Option<Alert> {
        if self.dropped == 0 && self.failures == 0 {
            return None;
        }
        if let Some(last) = self.last
            && now.saturating_duration_since(last) < ALERT_INTERVAL
        {
            return None;
        }
        self.last = Some(now);
        self.alerted = true;
        Some(Alert {
            dropped: std::mem::take(&mut self.dropped),
            failures: std::mem::take(&mut self.failures),
            reason: self.reason.clone(),
        })
    }

    /// On recovery: the losses not yet reported, if an alert was raised since the sink was
    /// last healthy (so that a flapping sink logs at most one recovery per alert).
    fn recover(&mut self) -> Option<(u64, u64)> {
        if !std::mem::take(&mut self.alerted) {
            return None;
        }
        Some((
            std::mem::take(&mut self.dropped),
            std::mem::take(&mut self.failures),
        ))
    }
}

/// A sink's task: takes every batch waiting in the queue, writes them together on the
/// blocking pool and reports the outcome to the waiting `ship` calls.
async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Job>, mut writer: Writer) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while let Ok(job) = rx.try_recv() {
            jobs.push(job);
        }
        let batches: Vec<Arc<Vec<String>>> = jobs.iter().map(|j| Arc::clone(&j.lines)).collect();
        let written = tokio::task::spawn_blocking(move || {
            let outcome = writer.write(&batches);
            (writer, outcome)
        })
        .await;
        let total: u64 = jobs.iter().map(|j| j.lines.len() as u64).sum();
        let outcome = match written {
            Ok((w, outcome)) => {
                writer = w;
                outcome
            }
            Err(_panicked) => {
                tracing::error!(sink = %shared.name, "audit sink task failed; sink stopped");
                shared.healthy.store(false, Ordering::Relaxed);
                shared.lost(total, 1, "sink task stopped");
                // Dropping the jobs tells the waiting `ship` calls; later ones fail to queue.
                return;
            }
        };
        match outcome {
            Ok(()) => {
                shared.shipped.fetch_add(total, Ordering::Relaxed);
                shared.recovered();
                for job in jobs {
                    if let Some(done) = job.done {
                        let _ = done.send(Ok(()));
                    }
                }
            }
            Err(WriteFailure { delivered, error }) => {
                shared.healthy.store(false, Ordering::Relaxed);
                shared
                    .shipped
                    .fetch_add(delivered as u64, Ordering::Relaxed);
                shared.lost(
                    total - delivered as u64,
                    1,
                    format!("write failed ({:?}): {error}", error.kind()),
                );
                let error = Arc::new(error);
                let mut before = 0;
                for job in jobs {
                    before += job.lines.len();
                    if let Some(done) = job.done {
                        let result = if before <= delivered {
                            Ok(())
                        } else {
                            Err(Arc::clone(&error))
                        };
                        let _ = done.send(result);
                    }
                }
            }
        }
        shared.alert_if_due();
    }
}

/// A failed write: how many lines (from the start) made it, and why the rest did not.
#[derive(Debug)]
struct WriteFailure {
    delivered: usize,
    error: io::Error,
}

impl WriteFailure {
    fn new(delivered: usize, error: io::Error) -> Self {
        Self { delivered, error }
    }
}

/// The blocking side of a sink; runs on the blocking pool, one batch at a time.
enum Writer {
    File(FileWriter),
    Stdout,
    Syslog(SyslogWriter),
}

impl Writer {
    /// Opens the sink; the flag says whether it starts healthy.
    fn open(name: &str, config: &SinkConfig) -> Result<(Self, bool), SinkError> {
        match &config.target {
            SinkTarget::File {
                path,
                max_bytes,
                keep,
            } => {
                let writer =
                    FileWriter::open(path, *max_bytes, *keep).map_err(|(path, source)| {
                        SinkError::Open {
                            sink: name.to_owned(),
                            path,
                            source,
                        }
                    })?;
                Ok((Writer::File(writer), true))
            }
            SinkTarget::Stdout => Ok((Writer::Stdout, true)),
            SinkTarget::Syslog { socket } => {
                let mut writer = SyslogWriter::new(socket.clone(), config.timeout);
                match writer.connect() {
                    Ok(conn) => {
                        writer.conn = Some(conn);
                        Ok((Writer::Syslog(writer), true))
                    }
                    Err(source) if config.required => Err(SinkError::SyslogUnavailable {
                        sink: name.to_owned(),
                        socket: socket.clone(),
                        source,
                    }),
                    Err(error) => {
                        tracing::warn!(
                            sink = %name,
                            error = %error,
                            "best-effort audit sink cannot reach its syslog socket; its lines \
                             are dropped until it can (retried on every batch)"
                        );
                        Ok((Writer::Syslog(writer), false))
                    }
                }
            }
        }
    }

    fn write(&mut self, batches: &[Arc<Vec<String>>]) -> Result<(), WriteFailure> {
        let lines = batches.iter().flat_map(|b| b.iter().map(String::as_str));
        match self {
            Writer::File(file) => file.write(lines),
            Writer::Stdout => write_stdout(lines),
            Writer::Syslog(syslog) => syslog.write(lines),
        }
    }
}

/// Writes a batch to stdout under one lock.
fn write_stdout<'a>(lines: impl Iterator<Item = &'a str>) -> Result<(), WriteFailure> {
    let mut buf = Vec::new();
    for line in lines {
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
    }
    let mut out = io::stdout().lock();
    out.write_all(&buf)
        .and_then(|()| out.flush())
        .map_err(|e| WriteFailure::new(0, e))
}

/// A JSON-lines file, rotated by size.
struct FileWriter {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    /// `None` after a failure: reopened (and cleaned up) by the next batch.
    file: Option<File>,
    /// Bytes of whole, synced lines in the current file.
    size: u64,
}

impl FileWriter {
    /// Creates the directory and opens the file for appending; `Err` names the failing path.
    fn open(path: &Path, max_bytes: u64, keep: usize) -> Result<Self, (PathBuf, io::Error)> {
        if let Some(dir) = parent(path) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| (dir.to_owned(), e))?;
        }
        let at = |e| (path.to_owned(), e);
        let file = open_append(path).map_err(at)?;
        let size = file.metadata().map_err(at)?.len();
        sync_dir(path).map_err(at)?;
        Ok(Self {
            path: path.to_owned(),
            max_bytes,
            keep,
            file: Some(file),
            size,
        })
    }

    fn write<'a>(&mut self, lines: impl Iterator<Item = &'a str>) -> Result<(), WriteFailure> {
        let result = self.write_lines(lines);
        if result.is_err() {
            self.file = None;
        }
        result
    }

    fn write_lines<'a>(
        &mut self,
        lines: impl Iterator<Item = &'a str>,
    ) -> Result<(), WriteFailure> {
        self.reopen().map_err(|e| WriteFailure::new(0, e))?;
        let mut delivered = 0;
        let mut buf = Vec::new();
        let mut buffered = 0;
        for line in lines {
            let need = line.len() as u64 + 1;
            let pending = self.size + buf.len() as u64;
            if self.max_bytes > 0 && pending > 0 && pending + need > self.max_bytes {
                self.commit(&buf)
                    .map_err(|e| WriteFailure::new(delivered, e))?;
                delivered += buffered;
                buffered = 0;
                buf.clear();
                self.rotate().map_err(|e| WriteFailure::new(delivered, e))?;
            }
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            buffered += 1;
        }
        self.commit(&buf)
            .map_err(|e| WriteFailure::new(delivered, e))
    }

    /// Reopens the file after a failure, first cutting off whatever part of the failed batch
    /// reached it, so that the file holds whole lines only.
    fn reopen(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let file = open_append(&self.path)?;
        let meta = file.metadata()?;
        if meta.is_file() {
            if meta.len() > self.size {
                file.set_len(self.size)?;
                file.sync_data()?;
            } else {
                self.size = meta.len();
            }
        }
        self.file = Some(file);
        Ok(())
    }

    /// Appends `buf` and makes it durable.
    fn commit(&mut self, buf: &[u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("audit file not open after a failed rotation"))?;
        file.write_all(buf)?;
        file.flush()?;
        file.sync_data()?;
        self.size += buf.len() as u64;
        Ok(())
    }

    /// `path.<keep-1>` → `path.<keep>` (replacing the oldest) … `path` → `path.1`, then a
    /// fresh `path`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            ignore_missing(fs::remove_file(&self.path))?;
        } else {
            for n in (1..self.keep).rev() {
                ignore_missing(fs::rename(self.numbered(n), self.numbered(n + 1)))?;
            }
            fs::rename(&self.path, self.numbered(1))?;
        }
        self.size = 0;
        self.file = Some(open_append(&self.path)?);
        sync_dir(&self.path)
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = OsString::from(self.path.as_os_str());
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }
}

/// Opens `path` for appending, creating it with mode 0600; an existing regular file is made
/// 0600 too (devices such as `/dev/full` are left alone).
fn open_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() && meta.permissions().mode() & 0o777 != 0o600 {
        file.set_permissions(Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// The directory of `path`, unless it is the current one.
fn parent(path: &Path) -> Option<&Path> {
    path.parent().filter(|p| !p.as_os_str().is_empty())
}

/// Makes the creation or renaming of `path` durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(parent(path).unwrap_or(Path::new(".")))?.sync_all()
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// RFC 5424 over a Unix datagram socket.
struct SyslogWriter {
    socket: PathBuf,
    /// `None` until connected, and after a failed send: reconnected by the next line.
    conn: Option<UnixDatagram>,
    send_timeout: Duration,
    /// `HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA`, which follow the timestamp.
    header: String,
}

impl SyslogWriter {
    fn new(socket: PathBuf, send_timeout: Duration) -> Self {
        Self {
            socket,
            conn: None,
            send_timeout: send_timeout.max(Duration::from_millis(1)),
            header: format!("{} kagid {} audit -", hostname(), std::process::id()),
        }
    }

    fn connect(&self) -> io::Result<UnixDatagram> {
        let conn = UnixDatagram::unbound()?;
        // A daemon that stops reading must not hang the sink: a full socket fails the send.
        conn.set_write_timeout(Some(self.send_timeout))?;
        conn.connect(&self.socket)?;
        Ok(conn)
    }

    /// One message: `<86>1 TIMESTAMP HOSTNAME kagid PROCID audit - MSG`.
    fn message(&self, line: &str, now: SystemTime) -> String {
        format!(
            "<{SYSLOG_PRIORITY}>1 {} {} {line}",
            syslog_timestamp(now),
            self.header
        )
    }

    fn write<'a>(&mut self, lines: impl Iterator<Item = &'a str>) -> Result<(), WriteFailure> {
        for (delivered, line) in lines.enumerate() {
            let conn = match self.conn.take() {
                Some(conn) => conn,
                None => self
                    .connect()
                    .map_err(|e| WriteFailure::new(delivered, e))?,
            };
            let message = self.message(line, SystemTime::now());
            conn.send(message.as_bytes())
                .map_err(|e| WriteFailure::new(delivered, e))?;
            self.conn = Some(conn);
        }
        Ok(())
    }
}

/// RFC 3339 UTC with milliseconds (`2026-04-01T09:30:00.123Z`), as RFC 5424 wants.
fn syslog_timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let text = crate::clock::rfc3339(seconds);
    let without_z = text.strip_suffix('Z').unwrap_or(&text);
    format!("{without_z}.{:03}Z", since.subsec_millis())
}

/// This host's name as an RFC 5424 HOSTNAME (printable ASCII, no spaces), or `-`.
fn hostname() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if name.is_empty() {
        "-".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    use super::*;
    use crate::audit::record::{Event, GENESIS, Line, Record};

    /// `n` chained records of node `n1` as JSON lines.
    fn chain(n: usize) -> Vec<String> {
        let mut head = (0, GENESIS);
        (0..n)
            .map(|i| {
                let event = Event {
                    node: "n1".into(),
                    operation: "Encrypt".into(),
                    outcome: "OK".into(),
                    protocol: "grpc".into(),
                    request_id: format!("req-{i}"),
                    ..Event::default()
                };
                let record = Record::link("n1", head, &event);
                head = (record.seq, record.hash);
                serde_json::to_string(&Line::of_record(&record)).unwrap()
            })
            .collect()
    }

    fn file_sink(path: &Path, max_bytes: u64, keep: usize, required: bool) -> SinkConfig {
        SinkConfig {
            required,
            ..SinkConfig::new(SinkTarget::File {
                path: path.to_owned(),
                max_bytes,
                keep,
            })
        }
    }

    fn numbered(path: &Path, n: usize) -> PathBuf {
        PathBuf::from(format!("{}.{n}", path.display()))
    }

    /// Waits (up to 5 s) until `check` holds for the first sink's stats.
    async fn wait_for(sinks: &Sinks, check: impl Fn(&SinkStats) -> bool) -> SinkStats {
        let deadline = StdInstant::now() + Duration::from_secs(5);
        loop {
            let stats = sinks.stats().remove(0);
            if check(&stats) || StdInstant::now() > deadline {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn lines_arrive_in_a_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/nested/audit.jsonl");
        let sinks = Sinks::start(vec![file_sink(&path, 0, 3, true)]).unwrap();
        let lines = chain(10);
        for batch in lines.chunks(3) {
            sinks.ship(Arc::new(batch.to_vec())).await.unwrap();
        }
        sinks.ship(Arc::new(Vec::new())).await.unwrap();

        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, lines.join("\n") + "\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let stats = sinks.stats();
        assert_eq!(stats[0].shipped, 10);
        assert_eq!((stats[0].dropped, stats[0].failures), (0, 0));
        assert!(stats[0].healthy && stats[0].required);
        assert!(sinks.healthy());

        // A restart appends.
        drop(sinks);
        let sinks = Sinks::start(vec![file_sink(&path, 0, 3, true)]).unwrap();
        sinks.ship(Arc::new(vec!["{}".into()])).await.unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, lines.join("\n") + "\n{}\n");
    }

    #[tokio::test]
    async fn rotation_keeps_keep_files_and_never_splits_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let lines = chain(40);
        let longest = lines.iter().map(|l| l.len() as u64 + 1).max().unwrap();
        let max_bytes = longest * 3;
        let sinks = Sinks::start(vec![file_sink(&path, max_bytes, 2, true)]).unwrap();
        for batch in lines.chunks(4) {
            sinks.ship(Arc::new(batch.to_vec())).await.unwrap();
        }

        assert!(numbered(&path, 2).exists());
        assert!(!numbered(&path, 3).exists());
        let mut kept = Vec::new();
        for file in [numbered(&path, 2), numbered(&path, 1), path.clone()] {
            let text = fs::read_to_string(&file).unwrap();
            assert!(text.len() as u64 <= max_bytes, "{} too big", file.display());
            assert!(text.ends_with('\n'));
            let mode = fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            // Every file is verifiable on its own: whole records, chained.
            let records: Vec<Record> = text
                .lines()
                .map(|l| {
                    let line: Line = serde_json::from_str(l).unwrap();
                    line.to_record().unwrap().unwrap()
                })
                .collect();
            assert!(!records.is_empty());
            for pair in records.windows(2) {
                assert_eq!(pair[1].prev_hash, pair[0].hash);
                assert_eq!(pair[1].seq, pair[0].seq + 1);
            }
            kept.extend(text.lines().map(str::to_owned));
        }
        // The kept files hold the newest lines, in order.
        assert!(lines.ends_with(&kept), "kept lines are not a suffix");
        assert_eq!(sinks.stats()[0].shipped, 40);
    }

    #[tokio::test]
    async fn required_sink_on_a_full_disk_fails_within_its_timeout() {
        let timeout = Duration::from_millis(500);
        let sinks = Sinks::start(vec![SinkConfig {
            timeout,
            ..file_sink(Path::new("/dev/full"), 0, 0, true)
        }])
        .unwrap();
        let started = StdInstant::now();
        let err = sinks.ship(Arc::new(chain(3))).await.unwrap_err();
        assert!(started.elapsed() < timeout + Duration::from_millis(500));
        assert!(matches!(err, SinkError::Write { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("file:/dev/full"), "{message}");
        assert!(!sinks.healthy());
        let stats = sinks.stats().remove(0);
        assert_eq!((stats.shipped, stats.dropped, stats.failures), (0, 3, 1));
        assert!(!stats.healthy);

        // It keeps trying, and keeps failing closed.
        assert!(sinks.ship(Arc::new(chain(1))).await.is_err());
        assert_eq!(sinks.stats()[0].failures, 2);
        // /dev/full was left alone.
        let mode = fs::metadata("/dev/full").unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
    }

    #[tokio::test]
    async fn best_effort_sink_on_a_full_disk_never_fails_ship() {
        let sinks = Sinks::start(vec![file_sink(Path::new("/dev/full"), 0, 0, false)]).unwrap();
        for _ in 0..5 {
            sinks.ship(Arc::new(chain(2))).await.unwrap();
        }
        let stats = wait_for(&sinks, |s| s.dropped == 10).await;
        assert_eq!(stats.dropped, 10);
        assert_eq!(stats.shipped, 0);
        assert!(stats.failures >= 1);
        assert!(!stats.healthy && !stats.required);
        // No required sink, so nothing requests depend on is unhealthy.
        assert!(sinks.healthy());
    }

    #[test]
    fn a_failed_file_write_leaves_no_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut writer = FileWriter::open(&path, 0, 0).unwrap();
        writer.write(["{\"a\":1}"].into_iter()).unwrap();
        // A batch failed part-way: a torn line follows the synced ones.
        writer.file = None;
        fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
        writer.write(["{\"c\":3}"].into_iter()).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"c\":3}\n");
    }

    #[tokio::test]
    async fn best_effort_sink_with_a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("log.sock");
        // Nobody reads it: once its few datagrams are queued, sends block.
        let receiver = UnixDatagram::bind(&socket).unwrap();
        let sinks = Sinks::start(vec![SinkConfig {
            queue_lines: 2,
            timeout: Duration::from_secs(30),
            ..SinkConfig::new(SinkTarget::Syslog {
                socket: socket.clone(),
            })
        }])
        .unwrap();
        let mut offered = 0;
        while sinks.stats()[0].dropped == 0 && offered < 500 {
            sinks
                .ship(Arc::new(vec!["{\"x\":1}".into()]))
                .await
                .unwrap();
            offered += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stats = sinks.stats().remove(0);
        assert!(stats.dropped > 0, "nothing dropped after {offered} lines");
        assert!(stats.shipped < offered);
        // A batch that does not fit is dropped whole, at once.
        let before = stats.dropped;
        sinks.ship(Arc::new(chain(5))).await.unwrap();
        assert_eq!(sinks.stats()[0].dropped, before + 5);
        // Closing the socket unblocks the sink's send.
        drop(receiver);
        let stats = wait_for(&sinks, |s| s.failures > 0).await;
        assert!(stats.failures > 0);
    }

    #[tokio::test]
    async fn required_sink_that_blocks_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("log.sock");
        let receiver = UnixDatagram::bind(&socket).unwrap();
        let timeout = Duration::from_millis(300);
        let sinks = Sinks::start(vec![SinkConfig {
            required: true,
            timeout,
            ..SinkConfig::new(SinkTarget::Syslog { socket })
        }])
        .unwrap();
        let mut result = Ok(());
        for _ in 0..500 {
            let started = StdInstant::now();
            result = sinks.ship(Arc::new(vec!["{}".into()])).await;
            assert!(started.elapsed() < timeout + Duration::from_millis(500));
            if result.is_err() {
                break;
            }
        }
        let err = result.unwrap_err();
        assert!(
            matches!(err, SinkError::Timeout { .. } | SinkError::Write { .. }),
            "{err}"
        );
        assert!(!sinks.healthy());
        drop(receiver);
    }

    #[tokio::test]
    async fn syslog_lines_arrive_as_rfc5424() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("log.sock");
        let receiver = UnixDatagram::bind(&socket).unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let sinks = Sinks::start(vec![SinkConfig {
            required: true,
            ..SinkConfig::new(SinkTarget::Syslog { socket })
        }])
        .unwrap();
        let lines = chain(2);
        sinks.ship(Arc::new(lines.clone())).await.unwrap();

        let mut buf = vec![0; 65_536];
        for line in &lines {
            let n = receiver.recv(&mut buf).unwrap();
            let message = std::str::from_utf8(&buf[..n]).unwrap();
            assert!(message.starts_with("<86>1 "), "{message}");
            let fields: Vec<&str> = message.splitn(8, ' ').collect();
            let [_, time, host, app, pid, msgid, sd, msg] = fields[..] else {
                panic!("{message}")
            };
            assert!(time.ends_with('Z') && time.len() == "2026-04-01T09:30:00.123Z".len());
            assert!(!host.is_empty());
            assert_eq!(app, "kagid");
            assert_eq!(pid, std::process::id().to_string());
            assert_eq!((msgid, sd), ("audit", "-"));
            assert_eq!(msg, line);
        }
        assert_eq!(sinks.stats()[0].shipped, 2);
    }

    #[tokio::test]
    async fn missing_syslog_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("no-such.sock");
        let required = SinkConfig {
            required: true,
            ..SinkConfig::new(SinkTarget::Syslog {
                socket: socket.clone(),
            })
        };
        let err = Sinks::start(vec![required]).unwrap_err();
        assert!(matches!(err, SinkError::SyslogUnavailable { .. }));
        assert!(err.to_string().contains("no-such.sock"), "{err}");

        let sinks = Sinks::start(vec![SinkConfig::new(SinkTarget::Syslog { socket })]).unwrap();
        assert!(!sinks.stats()[0].healthy);
        sinks.ship(Arc::new(chain(3))).await.unwrap();
        let stats = wait_for(&sinks, |s| s.dropped == 3).await;
        assert_eq!((stats.dropped, stats.shipped), (3, 0));
        assert!(stats.failures >= 1);
    }

    #[tokio::test]
    async fn unopenable_file_fails_start() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "").unwrap();
        let err =
            Sinks::start(vec![file_sink(&blocker.join("audit.jsonl"), 0, 0, false)]).unwrap_err();
        assert!(matches!(err, SinkError::Open { .. }), "{err}");
    }

    #[test]
    fn start_needs_a_runtime() {
        assert!(matches!(
            Sinks::start(Vec::new()),
            Err(SinkError::NoRuntime)
        ));
    }

    #[tokio::test]
    async fn no_sinks() {
        let sinks = Sinks::none();
        sinks.ship(Arc::new(chain(1))).await.unwrap();
        assert!(sinks.healthy());
        assert!(sinks.stats().is_empty());
    }

    #[test]
    fn alerts_are_rate_limited() {
        let t0 = StdInstant::now();
        let mut state = AlertState::default();
        let first = state.record(t0, 3, 1, "queue full".into()).unwrap();
        assert_eq!((first.dropped, first.failures), (3, 1));
        assert!(
            state
                .record(t0 + Duration::from_secs(1), 2, 0, "x".into())
                .is_none()
        );
        assert!(
            state
                .record(t0 + Duration::from_secs(9), 4, 1, "y".into())
                .is_none()
        );
        assert!(state.due(t0 + Duration::from_secs(9)).is_none());
        let next = state.due(t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(
            next,
            Alert {
                dropped: 6,
                failures: 1,
                reason: "y".into()
            }
        );
        // Nothing new: nothing to say.
        assert!(state.due(t0 + Duration::from_secs(30)).is_none());
        assert_eq!(state.recover(), Some((0, 0)));
        assert_eq!(state.recover(), None);
    }

    #[test]
    fn syslog_timestamps() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_042);
        assert_eq!(syslog_timestamp(t), "2023-11-14T22:13:20.042Z");
        let writer = SyslogWriter::new(PathBuf::from("/nowhere"), DEFAULT_TIMEOUT);
        let message = writer.message("{}", t);
        assert!(message.starts_with("<86>1 2023-11-14T22:13:20.042Z "));
        assert!(message.ends_with(&format!(" kagid {} audit - {{}}", std::process::id())));
    }
}
