//! Arbitrary bytes as a KMS ciphertext: `Header::parse`, then `open` with a fixed key and an
//! empty encryption context. Either may refuse the input; neither may panic.

#![no_main]

use kagi_kms::crypto::SecretKey;
use kagi_kms::crypto::ciphertext::{Header, open};
use kagi_kms::crypto::context::EncryptionContext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((header, body)) = Header::parse(data) else {
        return;
    };
    // The header must encode back to the bytes it was parsed from.
    assert_eq!(header.encode()[..], data[..data.len() - body.len()]);
    let key = SecretKey::from_bytes([0x42; 32]);
    // Random bytes essentially never authenticate; the point is that opening returns an error.
    let _ = open(&key, &header, body, &EncryptionContext::default());
});
