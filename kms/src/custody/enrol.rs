//! Enrolling custodians (catalogue K8): the age public key their share is encrypted to, the
//! person's name, and the hash and time of their signed acknowledgement of duties.

use super::{Custody, CustodyError, share_files};
use crate::auth::token::Token;
use crate::engine::{EngineError, validate_name};
use crate::model::{Custodian, Principal, Role};

/// Longest accepted person name, in characters.
const MAX_PERSON_NAME: usize = 200;

/// What an admin gives to enrol a custodian.
#[derive(Debug, Clone)]
pub struct Enrolment<'a> {
    /// Principal name.
    pub name: &'a str,
    /// Full name of the person.
    pub person_name: &'a str,
    /// age X25519 recipient.
    pub public_key: &'a str,
    /// SHA-256 of the signed acknowledgement document.
    pub acknowledgement_sha256: &'a [u8],
    /// Ed25519 public key (hex) for approvals; empty if the custodian has none.
    pub signing_public_key: &'a str,
}

impl Custody {
    /// Creates a custodian principal and returns it with its token (shown only this once).
    pub async fn enrol(
        &self,
        enrolment: Enrolment<'_>,
    ) -> Result<(Custodian, Token), CustodyError> {
        validate_name("principal", enrolment.name, &['-', '_', '.', '@'])?;
        let person_name = enrolment.person_name.trim();
        if person_name.is_empty()
            || person_name.chars().count() > MAX_PERSON_NAME
            || person_name.chars().any(char::is_control)
        {
            return Err(CustodyError::InvalidArgument(format!(
                "person_name must be the custodian's full name: 1 to {MAX_PERSON_NAME} characters, no control characters"
            )));
        }
        let public_key = share_files::parse_recipient(enrolment.public_key)
            .map_err(CustodyError::InvalidArgument)?
            .to_string();
        let acknowledgement_sha256: [u8; 32] =
            enrolment.acknowledgement_sha256.try_into().map_err(|_| {
                CustodyError::InvalidArgument(
                    "acknowledgement_sha256 must be the 32-byte SHA-256 of the signed \
                     acknowledgement of custodian duties (catalogue K8)"
                        .into(),
                )
            })?;
        let signing_key = match enrolment.signing_public_key.trim() {
            "" => None,
            hex_key => Some(parse_signing_key(hex_key)?),
        };
        let token = Token::generate().map_err(EngineError::from)?;
        let now = self.engine.now();
        let custodian = Custodian {
            principal: Principal {
                id: uuid::Uuid::new_v4().to_string(),
                name: enrolment.name.to_owned(),
                role: Role::Custodian,
                tenant_id: None,
                created_at: now,
                revoked_at: None,
            },
            person_name: person_name.to_owned(),
            public_key,
            acknowledgement_sha256,
            acknowledged_at: now,
            share_index: None,
            signing_key,
        };
        self.engine
            .store()
            .insert_custodian(&custodian, &token.hash())
            .await?;
        Ok((custodian, token))
    }

    /// Every custodian, revoked ones included, with the share each holds now.
    pub async fn custodians(&self) -> Result<Vec<Custodian>, CustodyError> {
        Ok(self.engine.store().list_custodians().await?)
    }

    /// The active custodians owning `public_keys`, in that order; each must be distinct.
    pub(super) async fn custodians_for(
        &self,
        public_keys: &[String],
    ) -> Result<Vec<Custodian>, CustodyError> {
        let all = self.custodians().await?;
        let mut chosen: Vec<Custodian> = Vec::with_capacity(public_keys.len());
        for text in public_keys {
            let key = share_files::parse_recipient(text)
                .map_err(CustodyError::InvalidArgument)?
                .to_string();
            if chosen.iter().any(|c| c.public_key == key) {
                return Err(CustodyError::InvalidArgument(format!(
                    "public key {key} is listed twice: each custodian holds one share"
                )));
            }
            let custodian = all
                .iter()
                .find(|c| c.public_key == key && c.principal.revoked_at.is_none())
                .ok_or_else(|| {
                    CustodyError::FailedPrecondition(format!(
                        "no active custodian has public key {key}: enrol the custodian first \
                         (kagictl custodian enroll), with their acknowledgement of duties"
                    ))
                })?;
            chosen.push(custodian.clone());
        }
        Ok(chosen)
    }
}

/// Checks an Ed25519 public key given as 64 hex characters; returns it normalised.
fn parse_signing_key(text: &str) -> Result<String, CustodyError> {
    let bytes: [u8; 32] = hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            CustodyError::InvalidArgument(
                "signing_public_key must be an Ed25519 public key: 64 hex characters".into(),
            )
        })?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| {
        CustodyError::InvalidArgument("signing_public_key is not a valid Ed25519 point".into())
    })?;
    Ok(hex::encode(bytes))
}
