//! The audit trail (catalogue L1–L6, E1): one record per call, hash-chained per node, durable
//! before the response is sent, shipped off-box, verifiable.
//!
//! A handler builds an [`record::Event`] and awaits [`Audit::append`]. The [`writer`] task
//! batches the events of concurrent calls into one transaction (group commit), links them into
//! this node's chain, MACs them with a key derived from the root, ships them to the [`sinks`],
//! and only then answers each caller. If any of that fails the call fails too (fail closed):
//! no success goes unaudited.
//!
//! - [`record`]: the event, its canonical JSON and the chain hash.
//! - [`checkpoint`]: Ed25519-signed chain heads.
//! - [`writer`]: group commit, checkpoints, health.
//! - [`retention`]: pruning old records behind a signed retention-start checkpoint.
//! - [`verify`]: checking chains, MACs and checkpoints; first bad record.
//! - [`sinks`]: JSON-lines copies to a file, stdout or syslog.

pub mod checkpoint;
pub mod record;
pub mod retention;
pub mod sinks;
pub mod verify;
pub mod writer;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::keyring::Keyring;
use crate::store::Store;
use record::Event;
use sinks::{SinkConfig, Sinks};

/// Settings of the audit trail.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Whether calls are audited at all. Off only in dev mode, for benchmarks.
    pub enabled: bool,
    /// This node's chain name: stable across restarts, unique per running node.
    pub node: String,
    /// Off-box copies.
    pub sinks: Vec<SinkConfig>,
    /// A signed checkpoint after this many records…
    pub checkpoint_records: u64,
    /// …or this much time with new records, whichever comes first.
    pub checkpoint_interval: Duration,
    /// Encryption-context keys whose values are recorded as they are; all others as HMACs.
    pub plain_context_keys: BTreeSet<String>,
    /// Most events in one group commit.
    pub max_batch: usize,
    /// Records older than this many days are pruned (at least 365).
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            node: default_node_name(),
            sinks: Vec::new(),
            checkpoint_records: 1000,
            checkpoint_interval: Duration::from_secs(60),
            plain_context_keys: BTreeSet::new(),
            max_batch: crate::store::audit::MAX_APPEND,
            retention_days: retention::DEFAULT_DAYS,
        }
    }
}

/// The host name, as the default node name.
pub fn default_node_name() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if name.is_empty() {
        "kagid".into()
    } else {
        name
    }
}

/// Why an event could not be recorded. The call it belongs to fails with `UNAVAILABLE`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The database refused the records.
    #[error("the audit trail cannot be written: {0}")]
    Store(String),
    /// A required sink did not take the records in time.
    #[error("a required audit sink failed: {0}")]
    Sink(String),
    /// The writer task is gone (kagid is shutting down).
    #[error("the audit writer has stopped")]
    Stopped,
    /// A sink could not be opened at start.
    #[error("audit sink: {0}")]
    Setup(String),
}

/// A handle on this node's audit trail; cheap to clone.
#[derive(Debug, Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: AuditConfig,
    queue: Option<mpsc::Sender<writer::Submission>>,
    healthy: Arc<AtomicBool>,
    sinks: Sinks,
}

impl Audit {
    /// Starts the writer task (needs a tokio runtime) and opens the sinks.
    pub fn start(
        config: AuditConfig,
        store: Store,
        keyring: Arc<Keyring>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuditError> {
        let healthy = Arc::new(AtomicBool::new(true));
        if !config.enabled {
            return Ok(Self {
                inner: Arc::new(Inner {
                    config,
                    queue: None,
                    healthy,
                    sinks: Sinks::none(),
                }),
            });
        }
        let sinks =
            Sinks::start(config.sinks.clone()).map_err(|e| AuditError::Setup(e.to_string()))?;
        let (tx, rx) = mpsc::channel(config.max_batch * 8);
        let (store_for_retention, keyring_for_retention, clock_for_retention) =
            (store.clone(), keyring.clone(), clock.clone());
        let clock_for_probe = clock.clone();
        let task = writer::Writer::new(
            config.clone(),
            store,
            keyring,
            clock,
            sinks.clone(),
            healthy.clone(),
        );
        tokio::spawn(task.run(rx));
        let audit = Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                queue: Some(tx),
                healthy,
                sinks,
            }),
        };
        tokio::spawn(probe(audit.clone(), clock_for_probe));
        tokio::spawn(retention::run(
            store_for_retention,
            keyring_for_retention,
            clock_for_retention,
            config.node.clone(),
            config.retention_days.max(retention::MIN_DAYS),
            audit.clone(),
        ));
        Ok(audit)
    }

    /// This node's chain name.
    pub fn node(&self) -> &str {
        &self.inner.config.node
    }

    /// Whether auditing is on.
    pub fn enabled(&self) -> bool {
        self.inner.queue.is_some()
    }

    /// Whether the last write to the store and every required sink succeeded.
    pub fn healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed) && self.inner.sinks.healthy()
    }

    /// The sinks, for their counters.
    pub fn sinks(&self) -> &Sinks {
        &self.inner.sinks
    }

    /// Whether a context key's values are recorded in clear.
    pub fn context_value_is_plain(&self, key: &str) -> bool {
        self.inner.config.plain_context_keys.contains(key)
    }

    /// Records `event` durably; returns its sequence number in this node's chain (0 when
    /// auditing is off).
    pub async fn append(&self, event: Event) -> Result<u64, AuditError> {
        let Some(queue) = &self.inner.queue else {
            return Ok(0);
        };
        let (done, result) = oneshot::channel();
        queue
            .send(writer::Submission {
                event,
                done,
                checkpoint_now: false,
            })
            .await
            .map_err(|_| AuditError::Stopped)?;
        result.await.map_err(|_| AuditError::Stopped)?
    }

    /// Records `event` and then signs a checkpoint of the chain head, if the node is unsealed
    /// (exports end on one, so that they prove their whole range).
    pub async fn append_with_checkpoint(&self, event: Event) -> Result<u64, AuditError> {
        let Some(queue) = &self.inner.queue else {
            return Ok(0);
        };
        let (done, result) = oneshot::channel();
        queue
            .send(writer::Submission {
                event,
                done,
                checkpoint_now: true,
            })
            .await
            .map_err(|_| AuditError::Stopped)?;
        result.await.map_err(|_| AuditError::Stopped)?
    }
}

/// While the trail is unwritable, calls are refused before they act. This task tries once a
/// second to write a record of the recovery; the first success makes the trail healthy again.
async fn probe(audit: Audit, clock: Arc<dyn Clock>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if audit.inner.healthy.load(Ordering::Relaxed) {
            continue;
        }
        let event = Event {
            time_ms: clock.now_ms(),
            node: audit.node().to_owned(),
            operation: "AuditRecovered".into(),
            resource: Some("the audit trail is writable again".into()),
            outcome: "OK".into(),
            protocol: "internal".into(),
            ..Event::default()
        };
        let _ = audit.append(event).await;
    }
}

/// Context entries as recorded: listed keys in clear, other values as `hmac-sha256:<hex>`.
pub fn recorded_context(
    audit: &Audit,
    keyring: &Keyring,
    context: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let unsealed = keyring.unsealed().ok();
    context
        .iter()
        .map(|(k, v)| {
            let shown = if audit.context_value_is_plain(k) {
                v.clone()
            } else {
                match &unsealed {
                    Some(keys) => format!(
                        "hmac-sha256:{}",
                        hex::encode(keys.audit_context_hmac(v.as_bytes()))
                    ),
                    None => "hmac-sha256:unavailable-while-sealed".into(),
                }
            };
            (k.clone(), shown)
        })
        .collect()
}
