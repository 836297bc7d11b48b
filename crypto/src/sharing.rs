//! Splitting the root key among custodians: Feldman verifiable secret sharing over P-256
//! (`vsss-rs`), so each share can be checked on its own against public commitments.
//!
//! The shared secret is a random P-256 scalar; the 256-bit root key is derived from it with
//! HKDF ([`SharedSecret::root_key`]). A share travels as a [`ShareRecord`]: the share plus the
//! initialisation and generation it belongs to, so a share of another initialisation or of a
//! generation replaced by a rekey is told apart from a damaged one.
//!
//! ```text
//! ShareRecord v1 (59 bytes)
//!   0..4    magic "KGSH"
//!   4       format version (1)
//!   5..21   init id (16 random bytes, fixed at Init, kept across rekeys)
//!   21..25  generation (u32, big-endian; 1 at Init, +1 per rekey)
//!   25      threshold M of the generation
//!   26      share index x (1..=255)
//!   27..59  share value y (P-256 scalar, big-endian)
//! ```

use elliptic_curve::ff::{Field, PrimeField};
use elliptic_curve::group::GroupEncoding;
use p256::{ProjectivePoint, Scalar};
use vsss_rs::{
    DefaultShare, FeldmanVerifierSet, IdentifierPrimeField, ReadableShareSet, ShareVerifierGroup,
    feldman,
};
use zeroize::{Zeroize, Zeroizing};

use crate::SecretKey;
use crate::derive;

/// Fewest shares a quorum may have outside dev mode (catalogue K6).
pub const MIN_THRESHOLD: u8 = 2;
/// Length of an encoded [`ShareRecord`].
pub const RECORD_LEN: usize = 59;
/// Length of an initialisation id.
pub const INIT_ID_LEN: usize = 16;

const MAGIC: &[u8; 4] = b"KGSH";
const FORMAT_VERSION: u8 = 1;
const ROOT_INFO: &[u8] = b"kagi/v1/root-key";
const ROOT_CHECK_INFO: &[u8] = b"kagi/v1/root-check";
const ESCROW_INFO: &[u8] = b"kagi/v1/escrow-key";
const POINT_LEN: usize = 33;

type Share = DefaultShare<IdentifierPrimeField<Scalar>, IdentifierPrimeField<Scalar>>;
type Verifier = ShareVerifierGroup<ProjectivePoint>;

/// Why sharing, checking or combining failed. Messages never contain share values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharingError {
    /// Threshold or share count out of range.
    #[error("{0}")]
    InvalidParameters(String),
    /// The bytes are not a share record or commitment set of this format.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The share does not lie on the committed polynomial: altered, damaged, or of another set.
    #[error("share {index} does not match the commitments")]
    InvalidShare {
        /// The share's index.
        index: u8,
    },
    /// Two shares with one index were given to combine.
    #[error("share {index} was given twice")]
    DuplicateShare {
        /// The repeated index.
        index: u8,
    },
    /// Fewer shares than the threshold were given to combine.
    #[error("{given} shares given; {needed} are needed")]
    TooFewShares {
        /// Shares given.
        given: usize,
        /// The threshold.
        needed: u8,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
}

/// The secret scalar behind the root key. Zeroized on drop.
pub struct SharedSecret {
    scalar: Scalar,
}

impl Drop for SharedSecret {
    fn drop(&mut self) {
        self.scalar.zeroize();
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

impl SharedSecret {
    /// A fresh random non-zero scalar from the OS CSPRNG.
    pub fn generate() -> Result<Self, SharingError> {
        loop {
            let mut bytes =
                Zeroizing::new(crate::random::array::<32>().map_err(|_| SharingError::Random)?);
            let candidate: Option<Scalar> = Scalar::from_repr((*bytes).into()).into();
            bytes.zeroize();
            // Rejection sampling: about 2^-32 of 256-bit strings are ≥ the group order.
            if let Some(scalar) = candidate
                && !bool::from(scalar.is_zero())
            {
                return Ok(Self { scalar });
            }
        }
    }

    /// The 256-bit root key: HKDF-SHA-256 of the scalar, salted with the initialisation id.
    pub fn root_key(&self, init_id: &[u8; INIT_ID_LEN]) -> SecretKey {
        let ikm = SecretKey::from_bytes(self.scalar.to_repr().into());
        derive::expand(Some(init_id), &ikm, &[ROOT_INFO])
    }

    /// The 256-bit key that seals an escrow bundle: HKDF-SHA-256 of the scalar, salted with the
    /// bundle id, under its own label so an escrow secret can never serve as a root key.
    pub fn escrow_key(&self, bundle_id: &[u8; INIT_ID_LEN]) -> SecretKey {
        let ikm = SecretKey::from_bytes(self.scalar.to_repr().into());
        derive::expand(Some(bundle_id), &ikm, &[ESCROW_INFO])
    }

    /// Splits into `count` shares, any `threshold` of which recover the secret, and the
    /// public commitments that check each share.
    pub fn split(
        &self,
        threshold: u8,
        count: u8,
    ) -> Result<(Vec<ShareValue>, Commitments), SharingError> {
        check_parameters(threshold, count)?;
        let secret = IdentifierPrimeField(self.scalar);
        // Coefficients come from the OS CSPRNG; if it fails there is nothing safe to do but stop.
        let mut rng = rand::rand_core::UnwrapErr(rand::rngs::SysRng);
        let (mut shares, verifiers) = feldman::split_secret::<Share, Verifier>(
            usize::from(threshold),
            usize::from(count),
            &secret,
            None,
            &mut rng,
        )
        .map_err(|e| SharingError::InvalidParameters(format!("cannot split: {e}")))?;
        let values = shares
            .iter_mut()
            .zip(1..=count)
            .map(|(share, index)| {
                let value = ShareValue {
                    index,
                    value: Zeroizing::new(share.value.0.to_repr().into()),
                };
                share.value.0.zeroize();
                value
            })
            .collect();
        let points = verifiers.iter().map(|v| v.0).collect();
        Ok((values, Commitments { points }))
    }
}

/// Checks `2 ≤ threshold ≤ count ≤ 255`.
pub fn check_parameters(threshold: u8, count: u8) -> Result<(), SharingError> {
    if threshold < MIN_THRESHOLD || threshold > count {
        return Err(SharingError::InvalidParameters(format!(
            "threshold {threshold} of {count} shares is not allowed: need 2 ≤ threshold ≤ shares ≤ 255"
        )));
    }
    Ok(())
}

/// The value that confirms a reconstructed root key without revealing it.
pub fn root_check(root: &SecretKey) -> [u8; 32] {
    *derive::expand(None, root, &[ROOT_CHECK_INFO]).expose()
}

/// One share: its index (the x-coordinate) and value. Zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareValue {
    index: u8,
    value: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ShareValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ShareValue {{ index: {}, value: <redacted> }}",
            self.index
        )
    }
}

impl ShareValue {
    /// The share's index, 1..=255.
    pub fn index(&self) -> u8 {
        self.index
    }

    fn scalar(&self) -> Result<Scalar, SharingError> {
        Option::from(Scalar::from_repr((*self.value).into()))
            .ok_or(SharingError::Malformed("share"))
    }

    fn to_vsss(&self) -> Result<Share, SharingError> {
        Ok(Share {
            identifier: IdentifierPrimeField(Scalar::from(u64::from(self.index))),
            value: IdentifierPrimeField(self.scalar()?),
        })
    }
}

/// A share with the initialisation and generation it belongs to: what a custodian holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    /// The initialisation that made the root key.
    pub init_id: [u8; INIT_ID_LEN],
    /// The custodian-set generation.
    pub generation: u32,
    /// Shares needed to recover the root in this generation.
    pub threshold: u8,
    /// The share.
    pub share: ShareValue,
}

impl ShareRecord {
    /// The 59-byte encoding (zeroized on drop).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(RECORD_LEN));
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.init_id);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.push(self.threshold);
        out.push(self.share.index);
        out.extend_from_slice(&*self.share.value);
        out
    }

    /// Parses an encoded record. Checks the layout, not the share's validity.
    pub fn parse(bytes: &[u8]) -> Result<Self, SharingError> {
        let malformed = SharingError::Malformed("share: not a Kagi share record (KGSH v1)");
        if bytes.len() != RECORD_LEN || &bytes[..4] != MAGIC || bytes[4] != FORMAT_VERSION {
            return Err(malformed);
        }
        let init_id = bytes[5..21].try_into().expect("16 bytes");
        let generation = u32::from_be_bytes(bytes[21..25].try_into().expect("4 bytes"));
        let (threshold, index) = (bytes[25], bytes[26]);
        let mut value = Zeroizing::new([0u8; 32]);
        value.copy_from_slice(&bytes[27..59]);
        if index == 0 || threshold < MIN_THRESHOLD || generation == 0 {
            return Err(malformed);
        }
        let share = ShareValue { index, value };
        share.scalar()?;
        Ok(Self {
            init_id,
            generation,
            threshold,
            share,
        })
    }
}

/// Feldman commitments: the generator and `g^a_i` for each polynomial coefficient. Public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commitments {
    points: Vec<ProjectivePoint>,
}

impl Commitments {
    /// Shares needed to recover the secret.
    pub fn threshold(&self) -> u8 {
        u8::try_from(self.points.len() - 1).expect("threshold fits in u8")
    }

    /// Compressed SEC1 points, 33 bytes each, generator first.
    pub fn encode(&self) -> Vec<u8> {
        self.points
            .iter()
            .flat_map(|p| p.to_bytes().to_vec())
            .collect()
    }

    /// Parses [`Commitments::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, SharingError> {
        let malformed = SharingError::Malformed("commitments");
        if !bytes.len().is_multiple_of(POINT_LEN)
            || bytes.len() / POINT_LEN < 1 + usize::from(MIN_THRESHOLD)
        {
            return Err(malformed);
        }
        let points = bytes
            .chunks(POINT_LEN)
            .map(|chunk| {
                let encoded = chunk.try_into().expect("33-byte chunk");
                Option::<ProjectivePoint>::from(ProjectivePoint::from_bytes(encoded))
                    // The identity point would make every check pass.
                    .filter(|p| !bool::from(elliptic_curve::group::Group::is_identity(p)))
                    .ok_or(malformed.clone())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if points.len() - 1 > usize::from(u8::MAX) {
            return Err(malformed);
        }
        Ok(Self { points })
    }

    /// Whether `share` lies on the committed polynomial.
    pub fn verify(&self, share: &ShareValue) -> Result<(), SharingError> {
        let invalid = SharingError::InvalidShare { index: share.index };
        let mut vsss = share.to_vsss().map_err(|_| invalid.clone())?;
        let result = self.verifier_set().verify_share(&vsss);
        vsss.value.0.zeroize();
        result.map_err(|_| invalid)
    }

    /// Recovers the secret from at least `threshold` shares, each checked first, and confirms
    /// the result against the commitment to the secret itself.
    pub fn combine(&self, shares: &[ShareValue]) -> Result<SharedSecret, SharingError> {
        let needed = self.threshold();
        if shares.len() < usize::from(needed) {
            return Err(SharingError::TooFewShares {
                given: shares.len(),
                needed,
            });
        }
        let mut seen = [false; 256];
        for share in shares {
            if std::mem::replace(&mut seen[usize::from(share.index)], true) {
                return Err(SharingError::DuplicateShare { index: share.index });
            }
            self.verify(share)?;
        }
        let mut vsss = shares
            .iter()
            .map(ShareValue::to_vsss)
            .collect::<Result<Vec<_>, _>>()?;
        let combined = vsss.combine();
        for share in &mut vsss {
            share.value.0.zeroize();
        }
        let secret = SharedSecret {
            scalar: combined
                .map_err(|e| SharingError::InvalidParameters(format!("cannot combine: {e}")))?
                .0,
        };
        // points[1] = g^secret: a final check that the verified shares really recover it.
        if self.points[0] * secret.scalar != self.points[1] {
            return Err(SharingError::InvalidParameters(
                "the shares do not recover the committed secret".into(),
            ));
        }
        Ok(secret)
    }

    fn verifier_set(&self) -> Vec<Verifier> {
        self.points
            .iter()
            .map(|p| vsss_rs::ValueGroup(*p))
            .collect()
    }
}

/// A fresh random initialisation id.
pub fn new_init_id() -> Result<[u8; INIT_ID_LEN], SharingError> {
    crate::random::array().map_err(|_| SharingError::Random)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(m: u8, n: u8) -> (SharedSecret, Vec<ShareValue>, Commitments) {
        let secret = SharedSecret::generate().unwrap();
        let (shares, commitments) = secret.split(m, n).unwrap();
        (secret, shares, commitments)
    }

    #[test]
    fn every_quorum_recovers_and_smaller_sets_do_not() {
        let (secret, shares, commitments) = split(3, 5);
        let id = [7; INIT_ID_LEN];
        let root = secret.root_key(&id);
        for a in 0..5 {
            for b in a + 1..5 {
                let pair = [shares[a].clone(), shares[b].clone()];
                assert!(matches!(
                    commitments.combine(&pair),
                    Err(SharingError::TooFewShares { .. })
                ));
                for c in b + 1..5 {
                    let trio = [shares[a].clone(), shares[b].clone(), shares[c].clone()];
                    let got = commitments.combine(&trio).unwrap().root_key(&id);
                    assert_eq!(got.expose(), root.expose());
                }
            }
        }
    }

    #[test]
    fn an_altered_share_is_named() {
        let (_, mut shares, commitments) = split(2, 3);
        shares[1].value[31] ^= 1;
        assert_eq!(
            commitments.verify(&shares[1]),
            Err(SharingError::InvalidShare { index: 2 })
        );
        assert_eq!(
            commitments.combine(&shares).unwrap_err(),
            SharingError::InvalidShare { index: 2 }
        );
    }

    #[test]
    fn a_share_of_another_split_fails_its_check() {
        let (_, shares, _) = split(2, 3);
        let (_, _, other) = split(2, 3);
        assert!(other.verify(&shares[0]).is_err());
    }

    #[test]
    fn resplitting_keeps_the_secret() {
        let (secret, _, _) = split(3, 5);
        let id = [1; INIT_ID_LEN];
        let (shares, commitments) = secret.split(2, 3).unwrap();
        let again = commitments.combine(&shares[1..]).unwrap();
        assert_eq!(again.root_key(&id).expose(), secret.root_key(&id).expose());
    }

    #[test]
    fn records_and_commitments_round_trip() {
        let (_, shares, commitments) = split(2, 3);
        let record = ShareRecord {
            init_id: [9; INIT_ID_LEN],
            generation: 4,
            threshold: 2,
            share: shares[2].clone(),
        };
        let encoded = record.encode();
        assert_eq!(encoded.len(), RECORD_LEN);
        assert_eq!(ShareRecord::parse(&encoded).unwrap(), record);
        assert!(ShareRecord::parse(&encoded[1..]).is_err());
        let decoded = Commitments::decode(&commitments.encode()).unwrap();
        assert_eq!(decoded, commitments);
        assert_eq!(decoded.threshold(), 2);
        assert!(Commitments::decode(&[0; 33 * 3]).is_err());
    }

    #[test]
    fn parameters_are_checked() {
        let secret = SharedSecret::generate().unwrap();
        assert!(secret.split(1, 3).is_err());
        assert!(secret.split(4, 3).is_err());
        assert!(secret.split(2, 255).is_ok());
    }

    #[test]
    fn escrow_and_root_keys_differ() {
        let secret = SharedSecret::generate().unwrap();
        let id = [4; INIT_ID_LEN];
        let escrow = secret.escrow_key(&id);
        assert_ne!(escrow.expose(), secret.root_key(&id).expose());
        assert_eq!(escrow.expose(), secret.escrow_key(&id).expose());
        assert_ne!(
            escrow.expose(),
            secret.escrow_key(&[5; INIT_ID_LEN]).expose()
        );
    }

    #[test]
    fn debug_output_hides_values() {
        let (secret, shares, _) = split(2, 2);
        assert_eq!(format!("{secret:?}"), "SharedSecret(<redacted>)");
        assert!(format!("{:?}", shares[0]).contains("redacted"));
    }
}
