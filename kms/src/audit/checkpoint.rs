//! Signed checkpoints: `(node, seq, head hash, time, kind)` signed with the instance's Ed25519
//! audit key. A checkpoint shipped off-box proves how long a chain was, so cutting its newest
//! records is detected; a `retention-start` checkpoint anchors a chain whose oldest records
//! were pruned.
//!
//! ```text
//! signed bytes = "kagi-audit-checkpoint-v1" 0x00 ‖ node ‖ 0x00 ‖ kind ‖ 0x00
//!                ‖ seq (u64 BE) ‖ head_hash ‖ time_ms (i64 BE)
//! ```

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::record::{Hash, hash_from_hex};

const SIGN_LABEL: &[u8] = b"kagi-audit-checkpoint-v1";

/// Why a checkpoint was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Every N records or T seconds.
    Periodic,
    /// Records up to `seq` were pruned; the chain goes on from `seq + 1`, whose `prev_hash` is
    /// `head_hash`.
    RetentionStart,
}

impl Kind {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Periodic => "periodic",
            Kind::RetentionStart => "retention-start",
        }
    }

    /// From the stored text form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "periodic" => Some(Kind::Periodic),
            "retention-start" => Some(Kind::RetentionStart),
            _ => None,
        }
    }
}

/// A signed statement of a chain's head. Public: holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Node whose chain it covers.
    pub node: String,
    /// Why it was made.
    pub kind: Kind,
    /// Sequence number of the head record.
    pub seq: u64,
    /// Hash of the head record, hex.
    pub head_hash: String,
    /// When, Unix milliseconds.
    pub time_ms: i64,
    /// Ed25519 public key that signed it, hex.
    pub public_key: String,
    /// Ed25519 signature, hex.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes that are signed.
    pub fn signed_bytes(
        node: &str,
        kind: Kind,
        seq: u64,
        head_hash: &Hash,
        time_ms: i64,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + node.len());
        out.extend_from_slice(SIGN_LABEL);
        out.push(0);
        out.extend_from_slice(node.as_bytes());
        out.push(0);
        out.extend_from_slice(kind.as_str().as_bytes());
        out.push(0);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(head_hash);
        out.extend_from_slice(&time_ms.to_be_bytes());
        out
    }

    /// The head hash as bytes.
    pub fn head(&self) -> Result<Hash, String> {
        hash_from_hex(&self.head_hash)
    }

    /// Checks the signature against `trusted` (the instance's audit public key), and that the
    /// checkpoint names that key.
    pub fn verify(&self, trusted: &VerifyingKey) -> Result<(), String> {
        if self.public_key != hex::encode(trusted.to_bytes()) {
            return Err(format!(
                "checkpoint {} of node {} is signed by another key ({})",
                self.seq, self.node, self.public_key
            ));
        }
        let signature: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("checkpoint {}: malformed signature", self.seq))?;
        let bytes =
            Self::signed_bytes(&self.node, self.kind, self.seq, &self.head()?, self.time_ms);
        trusted
            .verify_strict(&bytes, &Signature::from_bytes(&signature))
            .map_err(|_| {
                format!(
                    "checkpoint {} of node {}: bad signature",
                    self.seq, self.node
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    #[test]
    fn a_checkpoint_verifies_and_any_change_breaks_it() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let head = [9; 32];
        let bytes = Checkpoint::signed_bytes("n1", Kind::Periodic, 42, &head, 7);
        let checkpoint = Checkpoint {
            node: "n1".into(),
            kind: Kind::Periodic,
            seq: 42,
            head_hash: hex::encode(head),
            time_ms: 7,
            public_key: hex::encode(key.verifying_key().to_bytes()),
            signature: hex::encode(key.sign(&bytes).to_bytes()),
        };
        checkpoint.verify(&key.verifying_key()).unwrap();
        let mut moved = checkpoint.clone();
        moved.seq = 41;
        assert!(moved.verify(&key.verifying_key()).is_err());
        let other = SigningKey::from_bytes(&[6; 32]);
        assert!(checkpoint.verify(&other.verifying_key()).is_err());
    }
}
