//! The destruction record (catalogue D2): signed evidence that a key's material was destroyed,
//! by whose request and approval, when and how.
//!
//! ```text
//! signed    "kagi-destruction-record-v1" 0x00 ‖ JSON of the record without its signature
//! signature Ed25519 with the instance's audit signing key (the key that signs checkpoints)
//! ```
//!
//! The JSON of a struct is `serde_json` of it, so its bytes are fixed by the field order here.
//! [`Record::render`] gives the same facts as text in English and Japanese, for printing and
//! filing; the JSON is what verifies.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;

/// The record format this code writes and reads.
pub const FORMAT: u32 = 1;
/// Domain label in front of the signed bytes.
const LABEL: &[u8] = b"kagi-destruction-record-v1\0";

/// Why a record does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not a record of this format.
    #[error("not a Kagi destruction record: {0}")]
    Malformed(String),
    /// The signature does not verify: the record was changed after it was signed.
    #[error(
        "the destruction record's signature does not verify: it was modified after it was signed"
    )]
    BadSignature,
    /// Signed by another key than the one the caller trusts.
    #[error("the destruction record is signed by key {found}, not by the expected key {expected}")]
    UnexpectedSigner {
        /// The trusted key (hex).
        expected: String,
        /// The key the record names (hex).
        found: String,
    },
}

/// One destroyed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestroyedVersion {
    /// Version number.
    pub version: u32,
    /// Its state before destruction.
    pub state: String,
    /// When it was created.
    pub created_at: i64,
}

/// A destruction record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// [`FORMAT`].
    pub format: u32,
    /// The key's id.
    pub key_id: String,
    /// Its name.
    pub key_name: String,
    /// Its tenant's id.
    pub tenant_id: String,
    /// Its tenant's name.
    pub tenant_name: String,
    /// What it protected (purpose).
    pub purpose: String,
    /// Importance class of what it protected.
    pub class: String,
    /// Every version destroyed.
    pub versions: Vec<DestroyedVersion>,
    /// The proposal that scheduled it.
    pub proposal_id: String,
    /// Who requested it (principal name).
    pub requested_by: String,
    /// Who approved it (custodian names).
    pub approved_by: Vec<String>,
    /// When it was scheduled (Unix seconds).
    pub scheduled_at: i64,
    /// When it was destroyed (Unix seconds).
    pub destroyed_at: i64,
    /// How.
    pub method: String,
    /// The instance that destroyed it.
    pub instance: String,
    /// Public key (hex) of the signer.
    pub signer: String,
    /// Ed25519 signature (hex) over the signed bytes.
    pub signature: String,
}

/// Exactly what the signature covers: the record without its signature.
#[derive(Serialize)]
struct Signed<'a> {
    format: u32,
    key_id: &'a str,
    key_name: &'a str,
    tenant_id: &'a str,
    tenant_name: &'a str,
    purpose: &'a str,
    class: &'a str,
    versions: &'a [DestroyedVersion],
    proposal_id: &'a str,
    requested_by: &'a str,
    approved_by: &'a [String],
    scheduled_at: i64,
    destroyed_at: i64,
    method: &'a str,
    instance: &'a str,
    signer: &'a str,
}

impl Record {
    /// Signs the record with `key` (filling in `signer` and `signature`).
    pub fn sign(mut self, key: &SigningKey) -> Self {
        self.format = FORMAT;
        self.signer = hex::encode(key.verifying_key().to_bytes());
        self.signature = hex::encode(key.sign(&self.signed_bytes()).to_bytes());
        self
    }

    /// Parses a record's JSON and verifies its signature against the key it names.
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        let record: Record =
            serde_json::from_str(text).map_err(|e| RecordError::Malformed(e.to_string()))?;
        if record.format != FORMAT {
            return Err(RecordError::Malformed(format!(
                "format {} (this version reads format {FORMAT})",
                record.format
            )));
        }
        record.verify()?;
        Ok(record)
    }

    /// Pretty JSON, ending with a newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a record serializes");
        text.push('\n');
        text
    }

    /// Verifies the signature against the key the record names.
    pub fn verify(&self) -> Result<(), RecordError> {
        let signer: [u8; 32] = decode_hex(&self.signer, "signer")?;
        let key = VerifyingKey::from_bytes(&signer)
            .map_err(|_| RecordError::Malformed("the signer is not an Ed25519 key".into()))?;
        let signature: [u8; 64] = decode_hex(&self.signature, "signature")?;
        key.verify_strict(&self.signed_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| RecordError::BadSignature)
    }

    /// Verifies the signature and that it was made with `expected_hex`.
    pub fn verify_signer(&self, expected_hex: &str) -> Result<(), RecordError> {
        let expected = expected_hex.trim().to_ascii_lowercase();
        if self.signer != expected {
            return Err(RecordError::UnexpectedSigner {
                expected,
                found: self.signer.clone(),
            });
        }
        self.verify()
    }

    /// The record as text, English then Japanese.
    pub fn render(&self) -> String {
        let versions = self
            .versions
            .iter()
            .map(|v| format!("{} ({}, {})", v.version, v.state, rfc3339(v.created_at)))
            .collect::<Vec<_>>()
            .join(", ");
        let approvers = self.approved_by.join(", ");
        format!(
            "# Key destruction record\n\n\
             - Key: {key} ({id})\n\
             - Tenant: {tenant} ({tenant_id})\n\
             - Purpose / class: {purpose} / {class}\n\
             - Versions destroyed: {versions}\n\
             - Requested by: {requested}\n\
             - Approved by: {approvers}\n\
             - Proposal: {proposal}\n\
             - Scheduled: {scheduled}\n\
             - Destroyed: {destroyed}\n\
             - Method: {method}\n\
             - Instance: {instance}\n\
             - Signed by: {signer}\n\n\
             # 鍵の消去記録\n\n\
             - 鍵: {key} ({id})\n\
             - テナント: {tenant} ({tenant_id})\n\
             - 用途 / 重要性分類: {purpose} / {class}\n\
             - 消去した版: {versions}\n\
             - 申請者: {requested}\n\
             - 承認者: {approvers}\n\
             - 提案: {proposal}\n\
             - 予定登録日時: {scheduled}\n\
             - 消去日時: {destroyed}\n\
             - 方法: {method}\n\
             - インスタンス: {instance}\n\
             - 署名鍵: {signer}\n",
            key = self.key_name,
            id = self.key_id,
            tenant = self.tenant_name,
            tenant_id = self.tenant_id,
            purpose = self.purpose,
            class = self.class,
            requested = self.requested_by,
            proposal = self.proposal_id,
            scheduled = rfc3339(self.scheduled_at),
            destroyed = rfc3339(self.destroyed_at),
            method = self.method,
            instance = self.instance,
            signer = self.signer,
        )
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let signed = Signed {
            format: self.format,
            key_id: &self.key_id,
            key_name: &self.key_name,
            tenant_id: &self.tenant_id,
            tenant_name: &self.tenant_name,
            purpose: &self.purpose,
            class: &self.class,
            versions: &self.versions,
            proposal_id: &self.proposal_id,
            requested_by: &self.requested_by,
            approved_by: &self.approved_by,
            scheduled_at: self.scheduled_at,
            destroyed_at: self.destroyed_at,
            method: &self.method,
            instance: &self.instance,
            signer: &self.signer,
        };
        let mut bytes = LABEL.to_vec();
        serde_json::to_writer(&mut bytes, &signed).expect("a record serializes");
        bytes
    }
}

/// Lowercase hex of exactly `N` bytes (uppercase would let the unsigned signature field be
/// edited without the record noticing).
fn decode_hex<const N: usize>(text: &str, field: &str) -> Result<[u8; N], RecordError> {
    let bad = || RecordError::Malformed(format!("{field} is not {N} bytes of lowercase hex"));
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            format: FORMAT,
            key_id: "k".into(),
            key_name: "grades".into(),
            tenant_id: "t".into(),
            tenant_name: "board-a".into(),
            purpose: "learning-record".into(),
            class: "II".into(),
            versions: vec![DestroyedVersion {
                version: 1,
                state: "active".into(),
                created_at: 1_800_000_000,
            }],
            proposal_id: "p".into(),
            requested_by: "admin".into(),
            approved_by: vec!["alice".into(), "bob".into()],
            scheduled_at: 1_800_000_000,
            destroyed_at: 1_802_592_000,
            method: "overwritten and deleted".into(),
            instance: "kagi:dev".into(),
            signer: String::new(),
            signature: String::new(),
        }
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    #[test]
    fn a_signed_record_verifies_and_a_changed_one_does_not() {
        let signed = record().sign(&key());
        let text = signed.to_json();
        assert_eq!(Record::from_json(&text).unwrap(), signed);
        signed
            .verify_signer(&hex::encode(key().verifying_key().to_bytes()))
            .unwrap();
        let changed = text.replace("\"bob\"", "\"eve\"");
        assert_eq!(
            Record::from_json(&changed).unwrap_err(),
            RecordError::BadSignature
        );
        let later = text.replace("1802592000", "1802592001");
        assert_eq!(
            Record::from_json(&later).unwrap_err(),
            RecordError::BadSignature
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(matches!(
            signed.verify_signer(&hex::encode(other.verifying_key().to_bytes())),
            Err(RecordError::UnexpectedSigner { .. })
        ));
    }

    #[test]
    fn the_text_form_names_the_facts_in_both_languages() {
        let text = record().sign(&key()).render();
        for needle in ["grades", "board-a", "alice, bob", "2027-02-14", "消去日時"] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }
}
