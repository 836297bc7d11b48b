//! One audit record: the event (who, what, where from, how it went) and the chain fields that
//! make the trail tamper-evident.
//!
//! ```text
//! digest = SHA-256(event as canonical JSON: serde_json of Event, fields in declaration order)
//! hash   = SHA-256("kagi-audit-v1" 0x00 ‖ node ‖ 0x00 ‖ seq (u64 BE) ‖ prev_hash ‖ digest)
//! mac    = HMAC-SHA-256(audit MAC key, hash)      (the key is derived from the root; absent
//!                                                  while the node is sealed)
//! ```
//!
//! Each node keeps its own chain: `prev_hash` of record 1 is 32 zero bytes, of record n the hash
//! of record n−1. Because the hash covers only the digest of the event, a record can be shown
//! redacted (chain fields and digest, no event) and the chain still checks: that is how a
//! tenant's export proves its records without showing other tenants' events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain separation of record hashes.
const HASH_LABEL: &[u8] = b"kagi-audit-v1";

/// A 32-byte hash, shown as lowercase hex in JSON.
pub type Hash = [u8; 32];

/// `prev_hash` of a chain's first record.
pub const GENESIS: Hash = [0; 32];

/// What happened, as recorded. Never holds plaintext, keys, tokens or shares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When, in Unix milliseconds (UTC).
    pub time_ms: i64,
    /// The kagid node that served the call.
    pub node: String,
    /// The operation: the RPC's name (`Encrypt`, `Unseal`, …) or an internal action.
    pub operation: String,
    /// Principal id; `None` when the caller did not authenticate.
    pub principal: Option<String>,
    /// The principal's role.
    pub role: Option<String>,
    /// The tenant the call touched, if any.
    pub tenant: Option<String>,
    /// The key the call touched, if any.
    pub key_id: Option<String>,
    /// The key version, if one was used.
    pub key_version: Option<u32>,
    /// Other resource the call named (a tenant name, a principal, a ceremony's progress).
    pub resource: Option<String>,
    /// `OK`, or the gRPC status code's name (`PERMISSION_DENIED`, …).
    pub outcome: String,
    /// The status message of a failure.
    pub reason: Option<String>,
    /// The caller's network address.
    pub peer: Option<String>,
    /// `grpc` (plaintext on loopback) or `grpc+tls`.
    pub protocol: String,
    /// `sha256:<hex>` of the TLS client certificate (DER), with mutual TLS.
    pub tls_identity: Option<String>,
    /// The caller's `x-request-id`, or one made by kagid.
    pub request_id: String,
    /// Encryption-context keys with their value, or `hmac-sha256:<hex>` of the value.
    pub context: BTreeMap<String, String>,
}

impl Event {
    /// The canonical JSON that the digest covers (and the store keeps).
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("an Event always serializes")
    }

    /// Whether the call succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcome == "OK"
    }
}

/// SHA-256 of canonical JSON text.
pub fn digest(canonical_json: &str) -> Hash {
    Sha256::digest(canonical_json.as_bytes()).into()
}

/// The chain hash of record `seq` of `node`.
pub fn chain_hash(node: &str, seq: u64, prev_hash: &Hash, digest: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(HASH_LABEL);
    h.update([0]);
    h.update(node.as_bytes());
    h.update([0]);
    h.update(seq.to_be_bytes());
    h.update(prev_hash);
    h.update(digest);
    h.finalize().into()
}

/// A record as stored and shipped: chain fields and the event's canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Node whose chain this is.
    pub node: String,
    /// Position in the node's chain, from 1.
    pub seq: u64,
    /// Hash of the previous record (or [`GENESIS`]).
    pub prev_hash: Hash,
    /// SHA-256 of `body`.
    pub digest: Hash,
    /// Chain hash (see the module docs).
    pub hash: Hash,
    /// HMAC of `hash` under the audit MAC key, if the node was unsealed.
    pub mac: Option<Hash>,
    /// The event's canonical JSON; `None` in a redacted record of an export.
    pub body: Option<String>,
}

impl Record {
    /// Links `event` after `prev` (`(seq, hash)` of the chain head).
    pub fn link(node: &str, prev: (u64, Hash), event: &Event) -> Self {
        let body = event.canonical_json();
        let digest = digest(&body);
        let seq = prev.0 + 1;
        Self {
            node: node.to_owned(),
            seq,
            prev_hash: prev.1,
            digest,
            hash: chain_hash(node, seq, &prev.1, &digest),
            mac: None,
            body: Some(body),
        }
    }

    /// The event, parsed from the body.
    pub fn event(&self) -> Option<Event> {
        self.body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
    }

    /// The same record without its event (for exports).
    pub fn redacted(&self) -> Self {
        Self {
            body: None,
            ..self.clone()
        }
    }
}

/// One line of a JSONL copy or export: a record or a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// A record; `event` is absent when redacted.
    Record {
        /// Node.
        node: String,
        /// Sequence number.
        seq: u64,
        /// Previous hash, hex.
        prev_hash: String,
        /// Event digest, hex.
        digest: String,
        /// Chain hash, hex.
        hash: String,
        /// MAC, hex.
        mac: Option<String>,
        /// The event (boxed: it is much larger than a checkpoint).
        event: Option<Box<Event>>,
    },
    /// A signed checkpoint.
    Checkpoint(super::checkpoint::Checkpoint),
}

impl Line {
    /// The JSONL form of a record.
    pub fn of_record(record: &Record) -> Self {
        Line::Record {
            node: record.node.clone(),
            seq: record.seq,
            prev_hash: hex::encode(record.prev_hash),
            digest: hex::encode(record.digest),
            hash: hex::encode(record.hash),
            mac: record.mac.map(hex::encode),
            event: record.event().map(Box::new),
        }
    }

    /// Back to a record: `Err` with what is wrong if a field is not well-formed.
    pub fn to_record(&self) -> Result<Option<Record>, String> {
        let Line::Record {
            node,
            seq,
            prev_hash,
            digest,
            hash,
            mac,
            event,
        } = self
        else {
            return Ok(None);
        };
        Ok(Some(Record {
            node: node.clone(),
            seq: *seq,
            prev_hash: hash_from_hex(prev_hash)?,
            digest: hash_from_hex(digest)?,
            hash: hash_from_hex(hash)?,
            mac: mac.as_deref().map(hash_from_hex).transpose()?,
            body: event.as_deref().map(Event::canonical_json),
        }))
    }
}

/// Parses 64 hex characters.
pub fn hash_from_hex(text: &str) -> Result<Hash, String> {
    let bytes = hex::decode(text).map_err(|_| format!("{text:?} is not hex"))?;
    bytes
        .try_into()
        .map_err(|_| format!("{text:?} is not 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(op: &str) -> Event {
        Event {
            time_ms: 1,
            node: "n1".into(),
            operation: op.into(),
            outcome: "OK".into(),
            protocol: "grpc".into(),
            request_id: "r".into(),
            ..Event::default()
        }
    }

    #[test]
    fn records_link_and_round_trip_through_jsonl() {
        let first = Record::link("n1", (0, GENESIS), &event("Encrypt"));
        let second = Record::link("n1", (first.seq, first.hash), &event("Decrypt"));
        assert_eq!((first.seq, second.seq), (1, 2));
        assert_eq!(second.prev_hash, first.hash);
        for record in [&first, &second] {
            let line = serde_json::to_string(&Line::of_record(record)).unwrap();
            let parsed: Line = serde_json::from_str(&line).unwrap();
            assert_eq!(parsed.to_record().unwrap().unwrap(), *record);
        }
        let redacted = Line::of_record(&first.redacted());
        let back = redacted.to_record().unwrap().unwrap();
        assert_eq!(back.body, None);
        assert_eq!(
            chain_hash("n1", 1, &back.prev_hash, &back.digest),
            first.hash
        );
    }

    #[test]
    fn any_field_changes_the_hash() {
        let base = Record::link("n1", (0, GENESIS), &event("Encrypt"));
        assert_ne!(
            Record::link("n2", (0, GENESIS), &event("Encrypt")).hash,
            base.hash
        );
        assert_ne!(
            Record::link("n1", (1, GENESIS), &event("Encrypt")).hash,
            base.hash
        );
        assert_ne!(
            Record::link("n1", (0, [1; 32]), &event("Encrypt")).hash,
            base.hash
        );
        assert_ne!(
            Record::link("n1", (0, GENESIS), &event("Decrypt")).hash,
            base.hash
        );
    }
}
