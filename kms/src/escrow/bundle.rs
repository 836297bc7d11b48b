//! The escrow bundle (format 1): one JSON file that carries a tenant's key material from one
//! kagid instance to another, readable only when M of its N escrow custodians bring their shares.
//!
//! ```text
//! bundle id   16 random bytes; also the init id of every share record (generation 1)
//! secret      a fresh P-256 scalar, split M of N (Feldman); commitments in the metadata
//! escrow key  HKDF-SHA-256(salt = bundle id, ikm = secret, info = "kagi/v1/escrow-key")
//! shares      one ShareRecord per custodian, age-encrypted (X25519) to that custodian
//! payload     base64(nonce ‖ AES-256-GCM(escrow key, nonce, aad, material))
//! aad         "kagi-escrow-bundle-v1" 0x00 ‖ SHA-256(JSON of metadata)
//! signed      "kagi-escrow-bundle-v1" 0x00 ‖ JSON of {metadata, shares, payload, signer}
//! signature   Ed25519 over the signed bytes with the source instance's key
//! digest      SHA-256 of the signed bytes: the bundle's identity in quorum proposals
//! ```
//!
//! JSON of a struct is `serde_json` of it: its field order is fixed by the struct, so the bytes
//! are canonical. The signature covers strings exactly as they appear, and the one field it
//! cannot cover (the signature itself) must be lowercase hex, so no edit of the file survives
//! [`Bundle::from_json`]. The AAD binds the payload to its metadata, so even a bundle re-signed
//! by someone else cannot move the payload under other metadata without failing to open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::crypto::aead::{self, NONCE_LEN, TAG_LEN};
use crate::crypto::random;
use crate::crypto::sharing::{self, Commitments, INIT_ID_LEN, ShareRecord, SharedSecret};
use crate::custody::share_files;

/// The bundle format this code writes and the only one it reads.
pub const FORMAT: u32 = 1;
/// Generation of every escrow share record: an escrow split is made once and never rekeyed.
pub const SHARE_GENERATION: u32 = 1;
/// Domain label in front of the signed bytes and the payload's AAD.
const LABEL: &[u8] = b"kagi-escrow-bundle-v1\0";

/// Why a bundle could not be made, read, checked or opened. Messages never contain key
/// material or share values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscrowError {
    /// The text is not a bundle of this format, or it was damaged.
    #[error("not a Kagi escrow bundle, or damaged: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("the bundle's signature does not verify: it was modified after it was made")]
    BadSignature,
    /// The bundle verifies, but under another key than the source instance's.
    #[error(
        "the bundle is signed by key {found}, not by the source instance's key {expected}: it was not made by that instance; do not import it"
    )]
    UnexpectedSigner {
        /// The key the caller trusts (hex).
        expected: String,
        /// The key the bundle names (hex).
        found: String,
    },
    /// The share belongs to another bundle.
    #[error(
        "this is a share of escrow bundle {share_bundle}, not of bundle {bundle}: bring the share made with this bundle"
    )]
    ForeignShare {
        /// The bundle id inside the share (hex).
        share_bundle: String,
        /// This bundle's id (hex).
        bundle: String,
    },
    /// The share does not lie on the bundle's committed polynomial.
    #[error("share {index} does not verify against the bundle's commitments: altered or damaged")]
    InvalidShare {
        /// The share's index.
        index: u8,
    },
    /// One share was given twice.
    #[error("share {index} was given twice: each custodian's share counts once")]
    DuplicateShare {
        /// The repeated index.
        index: u8,
    },
    /// Fewer valid shares than the threshold.
    #[error("{have} shares given; this bundle needs {need}: ask more of its custodians")]
    NotEnoughShares {
        /// Distinct valid shares given.
        have: usize,
        /// The bundle's threshold.
        need: u8,
    },
    /// The payload does not open with the recovered escrow key.
    #[error("the bundle's payload does not open: the payload or its metadata was modified")]
    Decrypt,
    /// The caller's parameters cannot make or open a bundle.
    #[error("{0}")]
    InvalidParameters(String),
    /// A cryptographic primitive failed (for example the OS random number generator).
    #[error("cryptographic failure: {0}")]
    Crypto(String),
}

/// A person who holds one share of the escrow key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowCustodian {
    /// The custodian's principal name; unique in the bundle.
    pub name: String,
    /// The custodian's principal id on the source instance.
    pub principal_id: String,
    /// The age X25519 recipient (`age1…`) the share is encrypted to.
    pub public_key: String,
}

/// One key whose material the payload carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySummary {
    /// The key id.
    pub key_id: String,
    /// The key's name in its tenant.
    pub name: String,
    /// The versions carried.
    pub versions: Vec<u32>,
}

/// What the bundle is; readable without any share, and bound to the payload as its AAD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Bundle format, [`FORMAT`].
    pub format: u32,
    /// 16 random bytes, lowercase hex.
    pub bundle_id: String,
    /// The tenant's id on the source instance.
    pub tenant_id: String,
    /// The tenant's name.
    pub tenant_name: String,
    /// Which kagid instance made the bundle.
    pub source_instance: String,
    /// When it was made, in Unix seconds.
    pub created_at: i64,
    /// The keys carried.
    pub keys: Vec<KeySummary>,
    /// Shares needed to open the bundle.
    pub threshold: u8,
    /// The custodians; the one at position i holds share index i + 1.
    pub custodians: Vec<EscrowCustodian>,
    /// Feldman commitments of the split, lowercase hex of `Commitments::encode`.
    pub commitments: String,
}

/// One custodian's share, encrypted to them with age.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedShare {
    /// Share index, 1..=N.
    pub index: u8,
    /// The custodian it is encrypted to.
    pub custodian_name: String,
    /// The age file, ASCII-armoured; holds an encoded `ShareRecord`.
    pub armored_age: String,
}

/// A signed escrow bundle. One obtained from [`Bundle::from_json`] has a valid signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// What the bundle is.
    pub metadata: Metadata,
    /// One sealed share per custodian, in custodian order.
    pub shares: Vec<SealedShare>,
    /// Standard base64 of the 12-byte nonce followed by the AES-256-GCM ciphertext and tag.
    pub payload: String,
    /// The source instance's Ed25519 public key, lowercase hex.
    pub signer: String,
    /// Ed25519 signature over the signed bytes, lowercase hex.
    pub signature: String,
}

/// Exactly what the signature covers, borrowed so the bytes are defined by this one struct.
#[derive(Serialize)]
struct Signed<'a> {
    metadata: &'a Metadata,
    shares: &'a [SealedShare],
    payload: &'a str,
    signer: &'a str,
}

/// Seals `payload` (a tenant's key material) into a bundle that any `threshold` of
/// `custodians` can open, signed with `signer`, the source instance's key.
#[allow(clippy::too_many_arguments)] // one flat call that mirrors the metadata it fills in
pub fn seal(
    tenant_id: &str,
    tenant_name: &str,
    source_instance: &str,
    created_at: i64,
    keys: Vec<KeySummary>,
    custodians: Vec<EscrowCustodian>,
    threshold: u8,
    payload: &[u8],
    signer: &SigningKey,
) -> Result<Bundle, EscrowError> {
    let count = check_custodians(&custodians, threshold)?;
    let bundle_id = random::array::<INIT_ID_LEN>().map_err(crypto_error)?;
    let secret = SharedSecret::generate().map_err(crypto_error)?;
    let (values, commitments) = secret.split(threshold, count).map_err(crypto_error)?;
    let metadata = Metadata {
        format: FORMAT,
        bundle_id: hex::encode(bundle_id),
        tenant_id: tenant_id.to_owned(),
        tenant_name: tenant_name.to_owned(),
        source_instance: source_instance.to_owned(),
        created_at,
        keys,
        threshold,
        custodians,
        commitments: hex::encode(commitments.encode()),
    };
    let shares = values
        .into_iter()
        .zip(&metadata.custodians)
        .map(|(share, custodian)| {
            let index = share.index();
            let record = ShareRecord {
                init_id: bundle_id,
                generation: SHARE_GENERATION,
                threshold,
                share,
            };
            let armored_age = share_files::encrypt(&record, &custodian.public_key)
                .map_err(EscrowError::Crypto)?;
            Ok(SealedShare {
                index,
                custodian_name: custodian.name.clone(),
                armored_age,
            })
        })
        .collect::<Result<Vec<_>, EscrowError>>()?;
    let nonce = random::array::<NONCE_LEN>().map_err(crypto_error)?;
    let key = secret.escrow_key(&bundle_id);
    let mut sealed = nonce.to_vec();
    sealed.extend(aead::seal(&key, &nonce, &payload_aad(&metadata), payload));
    let mut bundle = Bundle {
        metadata,
        shares,
        payload: BASE64.encode(sealed),
        signer: hex::encode(signer.verifying_key().to_bytes()),
        signature: String::new(),
    };
    bundle.signature = hex::encode(signer.sign(&bundle.signed_bytes()).to_bytes());
    Ok(bundle)
}

/// Opens `custodian_name`'s share of `bundle` with their age identity (for kagictl), and
/// checks it against the bundle before anyone relies on it.
pub fn open_share(
    bundle: &Bundle,
    identity: &age::x25519::Identity,
    custodian_name: &str,
) -> Result<ShareRecord, EscrowError> {
    let sealed = bundle.share_for(custodian_name).ok_or_else(|| {
        EscrowError::InvalidParameters(format!(
            "escrow bundle {} has no share for {custodian_name:?}; its custodians are {}",
            bundle.metadata.bundle_id,
            bundle.custodian_names()
        ))
    })?;
    let plaintext = age::decrypt(identity, sealed.armored_age.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => EscrowError::InvalidParameters(format!(
                "this age identity does not open the share of {custodian_name:?}: give {custodian_name}'s own key file"
            )),
            other => malformed(format!("the share of {custodian_name:?}: {other}")),
        })?;
    let record = ShareRecord::parse(&plaintext)
        .map_err(|e| malformed(format!("the share of {custodian_name:?}: {e}")))?;
    bundle.check_share(&record)?;
    // A valid share of another custodian in this one's slot means the shares were swapped.
    if record.share.index() != sealed.index {
        return Err(EscrowError::InvalidShare {
            index: record.share.index(),
        });
    }
    Ok(record)
}

impl Bundle {
    /// Pretty JSON, ending with a newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a bundle always serializes");
        text.push('\n');
        text
    }

    /// Parses a bundle, checks its structure and verifies its signature: a parsed bundle is
    /// always a verified one. Whom it is signed by is [`Bundle::check_signer`]'s question.
    pub fn from_json(text: &str) -> Result<Self, EscrowError> {
        let bundle: Bundle = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        bundle.check_structure()?;
        bundle.verify()?;
        Ok(bundle)
    }

    /// Verifies the signature against the key the bundle names.
    pub fn verify(&self) -> Result<(), EscrowError> {
        let signer: [u8; 32] = decode_hex_array(&self.signer, "signer")?;
        let key = VerifyingKey::from_bytes(&signer)
            .map_err(|_| malformed("the signer is not an Ed25519 public key"))?;
        let signature: [u8; 64] = decode_hex_array(&self.signature, "signature")?;
        // verify_strict refuses malleable signatures, so one bundle has one valid signature.
        key.verify_strict(&self.signed_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| EscrowError::BadSignature)
    }

    /// SHA-256 of the signed bytes; its hex form names the bundle in quorum proposals.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.signed_bytes()).into()
    }

    /// Checks that the bundle is signed by `expected_hex`, the source instance's public key,
    /// and that the signature verifies.
    pub fn check_signer(&self, expected_hex: &str) -> Result<(), EscrowError> {
        let expected = expected_hex.trim().to_ascii_lowercase();
        if self.signer != expected {
            return Err(EscrowError::UnexpectedSigner {
                expected,
                found: self.signer.clone(),
            });
        }
        self.verify()
    }

    /// The sealed share of the custodian named `custodian_name`.
    pub fn share_for(&self, custodian_name: &str) -> Option<&SealedShare> {
        self.shares
            .iter()
            .find(|s| s.custodian_name == custodian_name)
    }

    /// Checks one share against this bundle: its bundle id, generation, threshold, that a
    /// listed custodian holds its index, and that it verifies against the commitments.
    pub fn check_share(&self, record: &ShareRecord) -> Result<(), EscrowError> {
        if record.init_id != self.bundle_id()? {
            return Err(EscrowError::ForeignShare {
                share_bundle: hex::encode(record.init_id),
                bundle: self.metadata.bundle_id.clone(),
            });
        }
        let index = record.share.index();
        let invalid = EscrowError::InvalidShare { index };
        // With the right bundle id, any other generation, threshold or index was altered.
        if record.generation != SHARE_GENERATION
            || record.threshold != self.metadata.threshold
            || !self.shares.iter().any(|s| s.index == index)
        {
            return Err(invalid);
        }
        self.commitments()?
            .verify(&record.share)
            .map_err(|_| invalid)
    }

    /// Opens the payload with at least the threshold of distinct shares, each checked first.
    /// A repeated share is refused, never counted twice.
    pub fn open(&self, shares: &[ShareRecord]) -> Result<Zeroizing<Vec<u8>>, EscrowError> {
        // Verified again here because a Bundle may also be built or edited in code.
        self.verify()?;
        let mut seen = [false; 256];
        for record in shares {
            self.check_share(record)?;
            let index = record.share.index();
            if std::mem::replace(&mut seen[usize::from(index)], true) {
                return Err(EscrowError::DuplicateShare { index });
            }
        }
        let (have, need) = (shares.len(), self.metadata.threshold);
        if have < usize::from(need) {
            return Err(EscrowError::NotEnoughShares { have, need });
        }
        let values: Vec<_> = shares.iter().map(|r| r.share.clone()).collect();
        let secret = self.commitments()?.combine(&values).map_err(crypto_error)?;
        let key = secret.escrow_key(&self.bundle_id()?);
        let (nonce, sealed) = self.sealed_payload()?;
        aead::open(&key, &nonce, &payload_aad(&self.metadata), &sealed)
            .map(Zeroizing::new)
            .map_err(|_| EscrowError::Decrypt)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let signed = Signed {
            metadata: &self.metadata,
            shares: &self.shares,
            payload: &self.payload,
            signer: &self.signer,
        };
        let mut bytes = LABEL.to_vec();
        serde_json::to_writer(&mut bytes, &signed).expect("a bundle always serializes");
        bytes
    }

    /// Everything a signature cannot say: format, encodings, and that shares, custodians,
    /// threshold and commitments agree with each other.
    fn check_structure(&self) -> Result<(), EscrowError> {
        let metadata = &self.metadata;
        if metadata.format != FORMAT {
            return Err(malformed(format!(
                "format {} (this version reads format {FORMAT} only)",
                metadata.format
            )));
        }
        self.bundle_id()?;
        self.commitments()?;
        check_custodians(&metadata.custodians, metadata.threshold)
            .map_err(|e| malformed(e.to_string()))?;
        let mut slots = self
            .shares
            .iter()
            .zip(&metadata.custodians)
            .zip(1..=u8::MAX);
        let in_order = slots.all(|((s, c), i)| s.index == i && s.custodian_name == c.name);
        if self.shares.len() != metadata.custodians.len() || !in_order {
            return Err(malformed("the shares do not match the custodian list"));
        }
        self.sealed_payload()?;
        decode_hex_array::<32>(&self.signer, "signer")?;
        decode_hex_array::<64>(&self.signature, "signature")?;
        Ok(())
    }

    fn bundle_id(&self) -> Result<[u8; INIT_ID_LEN], EscrowError> {
        decode_hex_array(&self.metadata.bundle_id, "bundle_id")
    }

    fn commitments(&self) -> Result<Commitments, EscrowError> {
        let bytes = decode_hex(&self.metadata.commitments, "commitments")?;
        let commitments = Commitments::decode(&bytes).map_err(|e| malformed(e.to_string()))?;
        if commitments.threshold() != self.metadata.threshold {
            return Err(malformed("the commitments do not match the threshold"));
        }
        Ok(commitments)
    }

    fn sealed_payload(&self) -> Result<([u8; NONCE_LEN], Vec<u8>), EscrowError> {
        let bytes = BASE64
            .decode(&self.payload)
            .map_err(|_| malformed("payload is not standard base64"))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(malformed("payload is too short"));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        Ok((nonce.try_into().expect("12 bytes"), sealed.to_vec()))
    }

    fn custodian_names(&self) -> String {
        let names = self.shares.iter().map(|s| s.custodian_name.as_str());
        names.collect::<Vec<_>>().join(", ")
    }
}

/// Checks the threshold and that custodians have non-empty distinct names and distinct valid
/// age keys; returns their count.
fn check_custodians(custodians: &[EscrowCustodian], threshold: u8) -> Result<u8, EscrowError> {
    let count = u8::try_from(custodians.len()).map_err(|_| {
        EscrowError::InvalidParameters(format!(
            "{} escrow custodians: at most 255 are allowed",
            custodians.len()
        ))
    })?;
    sharing::check_parameters(threshold, count)
        .map_err(|e| EscrowError::InvalidParameters(e.to_string()))?;
    let mut names = std::collections::BTreeSet::new();
    let mut keys = std::collections::BTreeSet::new();
    for custodian in custodians {
        let key = share_files::parse_recipient(&custodian.public_key)
            .map_err(|e| EscrowError::InvalidParameters(format!("{}: {e}", custodian.name)))?;
        if custodian.name.is_empty() || !names.insert(custodian.name.as_str()) {
            return Err(EscrowError::InvalidParameters(format!(
                "escrow custodian name {:?} is empty or given twice: each custodian needs a name of their own",
                custodian.name
            )));
        }
        // Two shares to one key would give one person two votes.
        if !keys.insert(key.to_string()) {
            return Err(EscrowError::InvalidParameters(format!(
                "the public key of {} is given twice: each custodian needs a key of their own",
                custodian.name
            )));
        }
    }
    Ok(count)
}

fn payload_aad(metadata: &Metadata) -> Vec<u8> {
    let json = serde_json::to_vec(metadata).expect("metadata always serializes");
    [LABEL, Sha256::digest(json).as_slice()].concat()
}

/// Lowercase hex only: with uppercase accepted too, the unsigned signature field could be
/// edited without the bundle noticing.
fn decode_hex(text: &str, what: &str) -> Result<Vec<u8>, EscrowError> {
    let lowercase = text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    hex::decode(text)
        .ok()
        .filter(|_| lowercase)
        .ok_or_else(|| malformed(format!("{what} is not lowercase hex")))
}

fn decode_hex_array<const N: usize>(text: &str, what: &str) -> Result<[u8; N], EscrowError> {
    decode_hex(text, what)?
        .try_into()
        .map_err(|_| malformed(format!("{what} is not {N} bytes")))
}

fn malformed(reason: impl Into<String>) -> EscrowError {
    EscrowError::Malformed(reason.into())
}

fn crypto_error(e: impl std::fmt::Display) -> EscrowError {
    EscrowError::Crypto(e.to_string())
}

#[cfg(test)]
mod tests {
    use age::x25519::Identity;

    use super::EscrowError::*;
    use super::*;

    const MATERIAL: &[u8] = b"tenant key material: three version keys, wrapped for transport";
    const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

    /// A sealed bundle, its custodians' age identities (in NAMES order) and the source key.
    struct Fixture(Bundle, Vec<Identity>, SigningKey);

    fn signing_key() -> SigningKey {
        SigningKey::from_bytes(&random::array::<32>().unwrap())
    }

    fn fixture(m: u8, n: usize) -> Fixture {
        let ids: Vec<_> = (0..n).map(|_| Identity::generate()).collect();
        let custodians = (ids.iter().zip(NAMES))
            .map(|(id, name)| EscrowCustodian {
                name: name.into(),
                principal_id: format!("p-{name}"),
                public_key: id.to_public().to_string(),
            })
            .collect();
        let keys = vec![KeySummary {
            key_id: "k-1".into(),
            name: "grades".into(),
            versions: vec![1, 2, 3],
        }];
        let key = signing_key();
        let bundle = seal(
            "t-1", "school-1", "kagid-a", 7, keys, custodians, m, MATERIAL, &key,
        );
        Fixture(bundle.unwrap(), ids, key)
    }

    /// Every custodian's share, opened the way kagictl opens it.
    fn records(f: &Fixture) -> Vec<ShareRecord> {
        (f.1.iter().zip(NAMES))
            .map(|(id, name)| open_share(&f.0, id, name).unwrap())
            .collect()
    }

    fn err<T: std::fmt::Debug>(result: Result<T, EscrowError>) -> EscrowError {
        result.expect_err("must be refused")
    }

    fn resign(bundle: &mut Bundle, key: &SigningKey) {
        bundle.signer = hex::encode(key.verifying_key().to_bytes());
        bundle.signature = hex::encode(key.sign(&bundle.signed_bytes()).to_bytes());
    }

    /// The record with encoded byte `at` set to `value` (25 threshold, 26 index, 27.. value).
    fn with_byte(record: &ShareRecord, at: usize, value: u8) -> ShareRecord {
        let mut bytes = record.encode();
        bytes[at] = value;
        ShareRecord::parse(&bytes).unwrap()
    }

    #[test]
    fn every_quorum_opens_a_round_tripped_bundle() {
        let f = fixture(2, 3);
        let text = f.0.to_json();
        assert!(text.ends_with("}\n"));
        let parsed = Bundle::from_json(&text).unwrap();
        assert_eq!((&parsed, parsed.digest()), (&f.0, f.0.digest()));
        parsed
            .check_signer(&hex::encode(f.2.verifying_key().to_bytes()))
            .unwrap();
        let r = records(&f);
        for [a, b] in [[0, 1], [0, 2], [1, 2], [2, 0]] {
            let opened = parsed.open(&[r[a].clone(), r[b].clone()]).unwrap();
            assert_eq!(opened.as_slice(), MATERIAL);
        }
        assert_eq!(parsed.open(&r).unwrap().as_slice(), MATERIAL);
    }

    /// A repeated share is refused outright, even beside enough distinct ones.
    #[test]
    fn too_few_or_repeated_shares_do_not_open() {
        let f = fixture(3, 5);
        let r = records(&f);
        assert_eq!(
            err(f.0.open(&r[1..3])),
            NotEnoughShares { have: 2, need: 3 }
        );
        assert_eq!(err(f.0.open(&[])), NotEnoughShares { have: 0, need: 3 });
        let twice = [r[0].clone(), r[1].clone(), r[0].clone()];
        assert_eq!(err(f.0.open(&twice)), DuplicateShare { index: 1 });
        assert_eq!(
            err(f.0.open(&[&twice[..], &r[2..3]].concat())),
            DuplicateShare { index: 1 }
        );
        assert_eq!(f.0.open(&r[2..]).unwrap().as_slice(), MATERIAL);
    }

    #[test]
    fn a_share_of_another_bundle_is_named_foreign() {
        let (f, g) = (fixture(2, 3), fixture(2, 3));
        let (ours, theirs) = (records(&f), records(&g));
        let share_bundle = g.0.metadata.bundle_id.clone();
        let bundle = f.0.metadata.bundle_id.clone();
        let foreign = ForeignShare {
            share_bundle,
            bundle,
        };
        assert_eq!(err(f.0.check_share(&theirs[1])), foreign);
        assert_eq!(
            err(f.0.open(&[ours[0].clone(), theirs[1].clone()])),
            foreign
        );
        // Relabelled with our bundle id, their share still fails our commitments.
        let relabelled = ShareRecord {
            init_id: ours[0].init_id,
            ..theirs[1].clone()
        };
        assert_eq!(err(f.0.check_share(&relabelled)), InvalidShare { index: 2 });
    }

    #[test]
    fn an_altered_share_is_invalid() {
        let f = fixture(2, 3);
        let r = records(&f);
        let changed = with_byte(&r[1], 58, r[1].encode()[58] ^ 1);
        assert_eq!(err(f.0.check_share(&changed)), InvalidShare { index: 2 });
        assert_eq!(
            err(f.0.open(&[r[0].clone(), changed])),
            InvalidShare { index: 2 }
        );
        let threshold = with_byte(&r[1], 25, 3);
        assert_eq!(err(f.0.check_share(&threshold)), InvalidShare { index: 2 });
        let unlisted = with_byte(&r[1], 26, 9);
        assert_eq!(err(f.0.check_share(&unlisted)), InvalidShare { index: 9 });
    }

    /// Every byte, two flips each (0x01, and 0x20, the ASCII case bit). The text is ASCII, so
    /// every flip stays a valid &str. No position is skipped: a flipped space or newline is no
    /// longer JSON whitespace, and an uppercased hex digit is refused as non-canonical.
    #[test]
    fn any_flipped_byte_is_refused() {
        let text = fixture(2, 3).0.to_json();
        assert!(text.is_ascii());
        for at in 0..text.len() {
            for mask in [0x01, 0x20] {
                let mut bytes = text.clone().into_bytes();
                bytes[at] ^= mask;
                let flipped = String::from_utf8(bytes).unwrap();
                let result = Bundle::from_json(&flipped);
                assert!(result.is_err(), "byte {at} ^ {mask:#x} was accepted");
            }
        }
    }

    #[test]
    fn a_resigned_bundle_fails_its_signer_check_and_does_not_open() {
        let f = fixture(2, 3);
        let r = records(&f);
        let attacker = signing_key();
        let mut sealed = BASE64.decode(&f.0.payload).unwrap();
        sealed[NONCE_LEN] ^= 1;
        let mut forged = f.0.clone();
        forged.payload = BASE64.encode(&sealed);
        resign(&mut forged, &attacker);
        let forged = Bundle::from_json(&forged.to_json()).unwrap();
        let source = hex::encode(f.2.verifying_key().to_bytes());
        assert!(matches!(
            err(forged.check_signer(&source)),
            UnexpectedSigner { .. }
        ));
        assert_eq!(err(forged.open(&r[..2])), Decrypt);
        // The untouched payload under other metadata: the AAD no longer matches.
        let mut moved = f.0.clone();
        moved.metadata.tenant_id = "t-2".into();
        resign(&mut moved, &attacker);
        assert_eq!(err(moved.open(&r[..2])), Decrypt);
        // An edit that is not re-signed is caught before any share is used.
        let mut edited = f.0.clone();
        edited.metadata.tenant_name = "school-2".into();
        assert_eq!(err(edited.open(&r[..2])), BadSignature);
    }

    #[test]
    fn only_the_custodians_identity_opens_their_share() {
        let f = fixture(2, 3);
        let record = open_share(&f.0, &f.1[1], "bob").unwrap();
        assert_eq!(
            (record.share.index(), record.generation),
            (2, SHARE_GENERATION)
        );
        assert!(matches!(
            err(open_share(&f.0, &f.1[0], "bob")),
            InvalidParameters(_)
        ));
        assert!(matches!(
            err(open_share(&f.0, &f.1[1], "mallory")),
            InvalidParameters(_)
        ));
        // Alice's share moved into Bob's slot (and re-signed) opens with her key, but not as his.
        let mut swapped = f.0.clone();
        swapped.shares[1].armored_age = swapped.shares[0].armored_age.clone();
        resign(&mut swapped, &f.2);
        assert_eq!(
            err(open_share(&swapped, &f.1[0], "bob")),
            InvalidShare { index: 1 }
        );
    }

    #[test]
    fn debug_output_never_shows_share_bytes() {
        let f = fixture(2, 3);
        let r = records(&f);
        let value = r[0].encode()[27..].to_vec();
        let printed = format!("{r:?} {:?}", open_share(&f.0, &f.1[0], "alice"));
        assert!(printed.contains("redacted"));
        assert!(!printed.contains(&hex::encode(&value)));
        assert!(!printed.contains(&format!("{value:?}")[1..40]));
    }

    #[test]
    fn seal_checks_its_parameters() {
        let good = fixture(2, 3).0.metadata.custodians;
        let refused = |threshold: u8, edit: &dyn Fn(&mut Vec<EscrowCustodian>)| {
            let mut custodians = good.clone();
            edit(&mut custodians);
            let r = seal(
                "t",
                "n",
                "s",
                0,
                vec![],
                custodians,
                threshold,
                b"x",
                &signing_key(),
            );
            matches!(r, Err(InvalidParameters(_)))
        };
        assert!(refused(1, &|_| {}) && refused(4, &|_| {}));
        assert!(refused(2, &|c| c[2].name = "alice".into()));
        assert!(refused(2, &|c| c[2].public_key = c[0].public_key.clone()));
        assert!(refused(2, &|c| c[1].public_key = "age1nope".into()));
        assert!(!refused(3, &|_| {}));
    }

    #[test]
    fn other_formats_fields_and_encodings_are_malformed() {
        let bundle = fixture(2, 3).0;
        let value: serde_json::Value = serde_json::from_str(&bundle.to_json()).unwrap();
        let parse = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v = value.clone();
            edit(&mut v);
            Bundle::from_json(&v.to_string())
        };
        let upper = bundle.signature.to_uppercase();
        for result in [
            parse(&|v| v["extra"] = 1.into()),
            parse(&|v| v["metadata"]["format"] = 2.into()),
            parse(&|v| v["signature"] = upper.clone().into()),
            parse(&|v| v["payload"] = "***".into()),
            parse(&|v| v["shares"].as_array_mut().unwrap().truncate(2)),
        ] {
            let message = err(result).to_string();
            assert!(message.starts_with("not a Kagi escrow bundle"), "{message}");
        }
        assert_eq!(parse(&|_| {}), Ok(bundle));
    }
}
