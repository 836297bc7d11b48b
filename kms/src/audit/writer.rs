//! The audit writer: one task per node that turns queued events into chained records.
//!
//! Group commit: the task takes one submission, then every other already waiting (up to
//! `max_batch`), links them all, writes them with one INSERT and ships them to the sinks;
//! only then does it answer each caller. While one batch is being written the next one queues
//! up, so under load each transaction carries many records and auditing costs little
//! throughput, yet every response still waits for its own record to be durable.
//!
//! After each batch it signs a checkpoint when one is due (every N records or T seconds) and
//! the node is unsealed: the signing key is derived from the root.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::checkpoint::{Checkpoint, Kind};
use super::record::{Event, GENESIS, Hash, Line, Record};
use super::sinks::Sinks;
use super::{AuditConfig, AuditError};
use crate::clock::Clock;
use crate::keyring::Keyring;
use crate::store::audit::AuditRow;
use crate::store::{Store, StoreError};

/// One event waiting to be recorded, and where to send its sequence number.
#[derive(Debug)]
pub struct Submission {
    /// The event.
    pub event: Event,
    /// Receives the record's sequence number, or why it could not be recorded.
    pub done: oneshot::Sender<Result<u64, AuditError>>,
    /// Sign a checkpoint right after this record.
    pub checkpoint_now: bool,
}

/// The state of this node's chain as the writer knows it.
pub(super) struct Writer {
    config: AuditConfig,
    store: Store,
    keyring: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    sinks: Sinks,
    healthy: Arc<AtomicBool>,
    /// `None` until loaded from the store; reloaded after a failure.
    head: Option<Option<(u64, Hash)>>,
    /// Head at the last checkpoint, and when it was signed.
    checkpointed: (u64, Instant),
}

impl Writer {
    pub(super) fn new(
        config: AuditConfig,
        store: Store,
        keyring: Arc<Keyring>,
        clock: Arc<dyn Clock>,
        sinks: Sinks,
        healthy: Arc<AtomicBool>,
    ) -> Self {
        Self {
            config,
            store,
            keyring,
            clock,
            sinks,
            healthy,
            head: None,
            checkpointed: (0, Instant::now()),
        }
    }

    /// Runs until every sender is dropped.
    pub(super) async fn run(mut self, mut queue: mpsc::Receiver<Submission>) {
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            while batch.len() < self.config.max_batch.min(crate::store::audit::MAX_APPEND) {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let checkpoint_now = batch.iter().any(|s| s.checkpoint_now);
            let events: Vec<&Event> = batch.iter().map(|s| &s.event).collect();
            let result = self.commit(&events).await;
            match &result {
                Ok(_) => {
                    if !self.healthy.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            event = "audit_recovered",
                            "the audit trail is writable again"
                        );
                    }
                }
                Err(err) => {
                    if self.healthy.swap(false, Ordering::Relaxed) {
                        tracing::error!(
                            event = "audit_unwritable",
                            error = %err,
                            "the audit trail cannot be written: calls fail with UNAVAILABLE until it can"
                        );
                    }
                }
            }
            if result.is_ok() {
                self.maybe_checkpoint(checkpoint_now).await;
            }
            for (submission, outcome) in batch.into_iter().zip(expand(result)) {
                let _ = submission.done.send(outcome);
            }
        }
    }

    /// Links, stores and ships one batch; returns each record's sequence number.
    async fn commit(&mut self, events: &[&Event]) -> Result<Vec<u64>, AuditError> {
        let node = self.config.node.clone();
        for attempt in 0..2 {
            let head = match self.head {
                Some(head) => head,
                None => {
                    let head = self.store.audit_head(&node).await.map_err(store_error)?;
                    self.head = Some(head);
                    head
                }
            };
            let rows = self.link(&node, head, events);
            match self.store.append_audit(&node, head, &rows).await {
                Ok(()) => {
                    let last = rows.last().expect("a batch is never empty");
                    self.head = Some(Some((last.record.seq, last.record.hash)));
                    let lines: Vec<String> = rows
                        .iter()
                        .map(|r| {
                            serde_json::to_string(&Line::of_record(&r.record))
                                .expect("a line serializes")
                        })
                        .collect();
                    self.sinks
                        .ship(Arc::new(lines))
                        .await
                        .map_err(|e| AuditError::Sink(e.to_string()))?;
                    return Ok(rows.iter().map(|r| r.record.seq).collect());
                }
                Err(StoreError::Conflict(why)) if attempt == 0 => {
                    tracing::warn!(event = "audit_head_moved", reason = %why);
                    self.head = None;
                }
                Err(err) => {
                    self.head = None;
                    return Err(store_error(err));
                }
            }
        }
        Err(AuditError::Store(
            "the audit chain head keeps moving: two kagid nodes share a node name".into(),
        ))
    }

    /// Chains `events` after `head`, MACing each hash while unsealed.
    fn link(&self, node: &str, head: Option<(u64, Hash)>, events: &[&Event]) -> Vec<AuditRow> {
        let keys = self.keyring.unsealed().ok();
        let mut prev = head.unwrap_or((0, GENESIS));
        events
            .iter()
            .map(|event| {
                let mut record = Record::link(node, prev, event);
                record.mac = keys.as_ref().map(|k| k.audit_mac(&record.hash));
                prev = (record.seq, record.hash);
                AuditRow::new(record, event)
            })
            .collect()
    }

    /// Signs a checkpoint when one is due (or asked for) and the node is unsealed.
    async fn maybe_checkpoint(&mut self, now: bool) {
        let Some(Some((seq, hash))) = self.head else {
            return;
        };
        let due = seq > self.checkpointed.0
            && (now
                || seq - self.checkpointed.0 >= self.config.checkpoint_records
                || self.checkpointed.1.elapsed() >= self.config.checkpoint_interval);
        let Ok(keys) = self.keyring.unsealed() else {
            return;
        };
        if !due {
            return;
        }
        let time_ms = self.clock.now_ms();
        let node = &self.config.node;
        let bytes = Checkpoint::signed_bytes(node, Kind::Periodic, seq, &hash, time_ms);
        let checkpoint = Checkpoint {
            node: node.clone(),
            kind: Kind::Periodic,
            seq,
            head_hash: hex::encode(hash),
            time_ms,
            public_key: hex::encode(keys.audit_public_key().to_bytes()),
            signature: hex::encode(keys.sign_checkpoint(&bytes)),
        };
        drop(keys);
        if let Err(err) = self.store.insert_checkpoint(&checkpoint).await {
            tracing::error!(event = "audit_checkpoint_failed", error = %err);
            return;
        }
        let line = serde_json::to_string(&Line::Checkpoint(checkpoint)).expect("serializes");
        if let Err(err) = self.sinks.ship(Arc::new(vec![line])).await {
            tracing::error!(event = "audit_checkpoint_not_shipped", error = %err);
        }
        self.checkpointed = (seq, Instant::now());
    }
}

/// One outcome per submission: its own sequence number, or the batch's error.
fn expand(
    result: Result<Vec<u64>, AuditError>,
) -> Box<dyn Iterator<Item = Result<u64, AuditError>>> {
    match result {
        Ok(seqs) => Box::new(seqs.into_iter().map(Ok)),
        Err(err) => Box::new(std::iter::repeat(Err(err))),
    }
}

fn store_error(err: StoreError) -> AuditError {
    AuditError::Store(err.to_string())
}
