//! Shares leave kagid only encrypted to their custodian with age (X25519, ASCII armour), so a
//! custodian can also open one with the standard `age` tool.

use std::str::FromStr;

use crate::crypto::sharing::ShareRecord;

/// One share encrypted to its custodian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedShare {
    /// Share index.
    pub index: u8,
    /// The custodian's principal name.
    pub custodian_name: String,
    /// The age recipient it is encrypted to.
    pub public_key: String,
    /// The age file, ASCII-armoured.
    pub armored_age: String,
}

/// Parses an age X25519 recipient (`age1…`), with a message a person can act on.
pub fn parse_recipient(text: &str) -> Result<age::x25519::Recipient, String> {
    age::x25519::Recipient::from_str(text.trim()).map_err(|_| {
        format!(
            "{:?} is not an age X25519 public key (age1…): give the .pub file made by kagictl custodian keygen",
            text.chars().take(80).collect::<String>()
        )
    })
}

/// Encrypts an encoded share record to `public_key`.
pub fn encrypt(record: &ShareRecord, public_key: &str) -> Result<String, String> {
    let recipient = parse_recipient(public_key)?;
    let plaintext = record.encode();
    age::encrypt_and_armor(&recipient, &plaintext)
        .map_err(|e| format!("encrypting a share failed: {e}"))
}

#[cfg(test)]
mod tests {
    use age::secrecy::ExposeSecret;

    use super::*;
    use crate::crypto::sharing::SharedSecret;

    #[test]
    fn only_the_custodian_opens_a_share() {
        let identity = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let (shares, _) = SharedSecret::generate().unwrap().split(2, 2).unwrap();
        let record = ShareRecord {
            init_id: [3; 16],
            generation: 1,
            threshold: 2,
            share: shares[0].clone(),
        };
        let file = encrypt(&record, &identity.to_public().to_string()).unwrap();
        assert!(file.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        let opened = age::decrypt(&identity, file.as_bytes()).unwrap();
        assert_eq!(ShareRecord::parse(&opened).unwrap(), record);
        assert!(age::decrypt(&other, file.as_bytes()).is_err());
        assert!(parse_recipient(identity.to_string().expose_secret()).is_err());
    }
}
