//! Property tests of the envelope message format, with the KMS's part played by
//! `kagi_crypto::ciphertext` in-process (the wrapped data key is a real KMS ciphertext under a
//! version key, bound to the context), so every byte of a message is covered: round trips of any
//! size and context, and every bit flip, truncation, frame reorder or duplication, header-field
//! swap and context change fails without a panic.

use std::collections::BTreeMap;

use kagi_crypto::SecretKey;
use kagi_crypto::ciphertext::{self, Header as KmsHeader};
use kagi_crypto::context::EncryptionContext;
use kagi_sdk::message::seal::{open_message, parse_header, seal_message};
use kagi_sdk::message::{BodyMode, Header, MessageError, Suite, WrappedDataKey, WrappedKeyKind};
use proptest::prelude::*;

const KEY_ID: [u8; 16] = [0x42; 16];

/// The tenant version key the emulated KMS wraps data keys under.
fn version_key() -> SecretKey {
    SecretKey::from_bytes([0x17; 32])
}

/// Seals like `Envelope::encrypt`, with a data key wrapped the way kagid wraps it.
fn seal(
    suite: Suite,
    body: BodyMode,
    context: &EncryptionContext,
    plaintext: &[u8],
    seed: u8,
) -> Vec<u8> {
    let data_key = SecretKey::from_bytes([seed; 32]);
    let kms_header = KmsHeader::random(KEY_ID, 1).unwrap();
    let wrapped = ciphertext::seal(&version_key(), &kms_header, context, data_key.expose());
    let header = Header {
        suite,
        body,
        message_id: [seed.wrapping_add(1); 32],
        tenant_id: "tenant-a".into(),
        key_id: KEY_ID,
        context: context.clone(),
        commitment: [0; 32],
        wrapped_keys: vec![WrappedDataKey {
            kind: WrappedKeyKind::Tenant,
            bytes: wrapped,
        }],
    };
    seal_message(&data_key, header, plaintext).unwrap()
}

/// Opens like `Envelope::decrypt`: parse, unwrap the data key (KMS), open.
fn open(message: &[u8], expected: &EncryptionContext) -> Result<Vec<u8>, String> {
    let parsed = parse_header(message).map_err(|e| e.to_string())?;
    let header = &parsed.header;
    if !header.context.contains_all(expected) {
        return Err(MessageError::ContextMismatch(String::new()).to_string());
    }
    let wrapped = &header
        .tenant_wrapped_key()
        .map_err(|e| e.to_string())?
        .bytes;
    let (kms_header, body) = KmsHeader::parse(wrapped).map_err(|e| e.to_string())?;
    if kms_header.key_id != header.key_id {
        return Err("wrapped key of another key".into());
    }
    let plain = ciphertext::open(&version_key(), &kms_header, body, &header.context)
        .map_err(|e| e.to_string())?;
    let data_key = SecretKey::from_slice(&plain).ok_or("bad data key length")?;
    open_message(&data_key, &parsed, message)
        .map(|p| p.to_vec())
        .map_err(|e| e.to_string())
}

fn context_strategy() -> impl Strategy<Value = EncryptionContext> {
    proptest::collection::btree_map("[a-z:-]{1,12}", "\\PC{0,16}", 0..6)
        .prop_map(|m: BTreeMap<String, String>| EncryptionContext::new(m).unwrap())
}

fn suite_strategy() -> impl Strategy<Value = Suite> {
    prop_oneof![
        Just(Suite::Aes256GcmHkdfSha256Commit),
        Just(Suite::ChaCha20Poly1305HkdfSha256Commit)
    ]
}

fn body_strategy() -> impl Strategy<Value = BodyMode> {
    prop_oneof![
        Just(BodyMode::Single),
        (1024u32..4096).prop_map(|frame_size| BodyMode::Framed { frame_size })
    ]
}

/// Deterministic bytes, so large plaintexts cost no shrinking.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A small framed message with three regular frames and a final one.
fn framed_sample() -> (Vec<u8>, EncryptionContext, usize) {
    let context = EncryptionContext::new([("record".to_owned(), "grades".to_owned())]).unwrap();
    let message = seal(
        Suite::default(),
        BodyMode::Framed { frame_size: 1024 },
        &context,
        &bytes(3 * 1024 + 100, 7),
        9,
    );
    let header_len = parse_header(&message).unwrap().len;
    (message, context, header_len)
}

const REGULAR_FRAME: usize = 1 + 4 + 1024 + 16;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn round_trips_small(suite in suite_strategy(), body in body_strategy(), context in context_strategy(),
                         len in 0usize..10_000, seed in any::<u8>()) {
        let plaintext = bytes(len, seed);
        let message = seal(suite, body, &context, &plaintext, seed);
        prop_assert_eq!(open(&message, &context).unwrap(), plaintext);
        prop_assert_eq!(open(&message, &EncryptionContext::default()).map(|p| p.len()), Ok(len));
    }

    #[test]
    fn any_bit_flip_fails(suite in suite_strategy(), body in body_strategy(), len in 0usize..3000, bit in any::<prop::sample::Index>()) {
        let context = EncryptionContext::new([("k".to_owned(), "v".to_owned())]).unwrap();
        let mut message = seal(suite, body, &context, &bytes(len, 1), 3);
        let bit = bit.index(message.len() * 8);
        message[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(open(&message, &context).is_err(), "bit {} flipped still opens", bit);
    }

    #[test]
    fn any_truncation_fails(body in body_strategy(), len in 0usize..3000, cut in any::<prop::sample::Index>()) {
        let context = EncryptionContext::default();
        let message = seal(Suite::default(), body, &context, &bytes(len, 2), 4);
        let cut = cut.index(message.len());
        prop_assert!(open(&message[..cut], &context).is_err());
    }

    #[test]
    fn a_changed_context_fails(context in context_strategy(), other in context_strategy()) {
        prop_assume!(context != other);
        let message = seal(Suite::default(), BodyMode::Single, &context, b"grades", 5);
        // The caller expects pairs the message lacks...
        if !context.contains_all(&other) {
            prop_assert!(open(&message, &other).is_err());
        }
        // ...or the header's context is replaced (the KMS then refuses the wrapped key, and the
        // header tag fails).
        let parsed = parse_header(&message).unwrap();
        let swapped = Header { context: other.clone(), ..parsed.header.clone() };
        let forged = reassemble(&message, &parsed, &swapped);
        prop_assert!(open(&forged, &EncryptionContext::default()).is_err());
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = open(&data, &EncryptionContext::default());
        let mut prefixed = b"KE\x01\x01\x01\0\0\0\0".to_vec();
        prefixed.extend_from_slice(&data);
        let _ = open(&prefixed, &EncryptionContext::default());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn round_trips_megabytes(suite in suite_strategy(), len in (1usize << 20)..(4 << 20), frame in prop_oneof![Just(0u32), Just(65_536u32)]) {
        let body = if frame == 0 { BodyMode::Single } else { BodyMode::Framed { frame_size: frame } };
        let context = EncryptionContext::default();
        let plaintext = bytes(len, 9);
        let message = seal(suite, body, &context, &plaintext, 11);
        prop_assert_eq!(open(&message, &context).unwrap(), plaintext);
    }
}

/// The message with `header`'s authenticated part instead of the original one, keeping the
/// original tag, key section and body.
fn reassemble(
    message: &[u8],
    parsed: &kagi_sdk::message::header::ParsedHeader,
    header: &Header,
) -> Vec<u8> {
    let section = parsed.header.key_section_bytes();
    let tag_end = parsed.len - section.len();
    let tag = &message[tag_end - 16..tag_end];
    [
        &header.authenticated_bytes()[..],
        tag,
        &section,
        &message[parsed.len..],
    ]
    .concat()
}

#[test]
fn reordered_or_duplicated_frames_fail() {
    let (message, context, start) = framed_sample();
    assert!(open(&message, &context).is_ok());
    let frame = |i: usize| &message[start + i * REGULAR_FRAME..start + (i + 1) * REGULAR_FRAME];
    let tail = &message[start + 3 * REGULAR_FRAME..];
    let swapped = [&message[..start], frame(1), frame(0), frame(2), tail].concat();
    assert!(
        open(&swapped, &context)
            .unwrap_err()
            .contains("out of order")
    );
    let duplicated = [
        &message[..start],
        frame(0),
        frame(0),
        frame(1),
        frame(2),
        tail,
    ]
    .concat();
    assert!(open(&duplicated, &context).is_err());
    let dropped = [&message[..start], frame(0), frame(2), tail].concat();
    assert!(open(&dropped, &context).is_err());
    let no_final = [&message[..start], frame(0), frame(1), frame(2)].concat();
    assert!(open(&no_final, &context).unwrap_err().contains("truncated"));
    let extended = [&message[..], &[0u8][..]].concat();
    assert!(open(&extended, &context).is_err());
}

#[test]
fn every_header_field_swapped_from_another_message_fails() {
    let context = EncryptionContext::new([("record".to_owned(), "grades".to_owned())]).unwrap();
    let message = seal(
        Suite::default(),
        BodyMode::Single,
        &context,
        b"pupil 42: A",
        1,
    );
    let other = seal(
        Suite::ChaCha20Poly1305HkdfSha256Commit,
        BodyMode::Framed { frame_size: 2048 },
        &context,
        b"x",
        2,
    );
    let parsed = parse_header(&message).unwrap();
    let donor = parse_header(&other).unwrap().header;
    let base = parsed.header.clone();
    let forgeries = [
        Header {
            suite: donor.suite,
            ..base.clone()
        },
        Header {
            body: donor.body,
            ..base.clone()
        },
        Header {
            message_id: donor.message_id,
            ..base.clone()
        },
        Header {
            tenant_id: "tenant-b".into(),
            ..base.clone()
        },
        Header {
            key_id: [0x43; 16],
            ..base.clone()
        },
        Header {
            commitment: donor.commitment,
            ..base.clone()
        },
    ];
    for forged in forgeries {
        let bytes = reassemble(&message, &parsed, &forged);
        assert!(open(&bytes, &context).is_err(), "{forged:?}");
    }
    // The other message's wrapped key (another data key) in this message's key section.
    let hybrid = kagi_sdk::message::seal::replace_wrapped_keys(
        &message,
        &parsed,
        donor.wrapped_keys.clone(),
    );
    assert!(open(&hybrid, &context).unwrap_err().contains("commitment"));
}
