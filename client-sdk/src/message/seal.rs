//! Whole messages in memory: sealing, opening, and replacing the key section.

use kagi_crypto::SecretKey;
use zeroize::Zeroizing;

use super::MessageError;
use super::frame::{FrameOpener, FrameSealer};
use super::header::{BodyMode, Header, ParsedHeader, WrappedDataKey};
use super::suite::MessageKeys;

/// Seals `plaintext` under `data_key`. The header's commitment is computed here; whatever
/// it held is replaced.
pub fn seal_message(
    data_key: &SecretKey,
    mut header: Header,
    plaintext: &[u8],
) -> Result<Vec<u8>, MessageError> {
    let keys = MessageKeys::derive(header.suite, data_key, &header.message_id);
    header.commitment = keys.commitment;
    let mut out = header.encode(&keys);
    let mut sealer = FrameSealer::new(keys, header.message_id, header.body);
    match header.body {
        BodyMode::Single => out.extend(sealer.seal_final(plaintext)?),
        BodyMode::Framed { frame_size } => {
            let frame_size = frame_size as usize;
            // Every full frame is regular; what is left (possibly nothing) is the final frame.
            let full = plaintext.len() / frame_size;
            for chunk in plaintext[..full * frame_size].chunks(frame_size) {
                out.extend(sealer.seal_regular(chunk)?);
            }
            out.extend(sealer.seal_final(&plaintext[full * frame_size..])?);
        }
    }
    Ok(out)
}

/// Reads a message's header; the caller then unwraps the data key it names.
pub fn parse_header(message: &[u8]) -> Result<ParsedHeader, MessageError> {
    Header::parse(message)?.ok_or(MessageError::Truncated("the header is incomplete"))
}

/// Opens a whole message whose header was parsed, with its (unwrapped) data key: checks the
/// commitment, then the header tag, then every frame in order.
pub fn open_message(
    data_key: &SecretKey,
    parsed: &ParsedHeader,
    message: &[u8],
) -> Result<Zeroizing<Vec<u8>>, MessageError> {
    let header = &parsed.header;
    let keys = MessageKeys::derive_checked(
        header.suite,
        data_key,
        &header.message_id,
        &header.commitment,
    )?;
    parsed.verify(&keys)?;
    let mut opener = FrameOpener::new(keys, header.message_id, header.body);
    let mut rest = &message[parsed.len..];
    let mut plaintext = Zeroizing::new(Vec::with_capacity(rest.len()));
    while !opener.is_finished() {
        let frame = opener.open_next(rest)?.ok_or(MessageError::Truncated(
            "the body ends before its final frame",
        ))?;
        plaintext.extend_from_slice(&frame.plaintext);
        rest = &rest[frame.consumed..];
    }
    if !rest.is_empty() {
        return Err(MessageError::FrameOrder(
            "data after the final frame".into(),
        ));
    }
    Ok(plaintext)
}

/// The same message with another key section (for re-wrapping); header tag and body are
/// kept byte for byte.
pub fn replace_wrapped_keys(
    message: &[u8],
    parsed: &ParsedHeader,
    wrapped_keys: Vec<WrappedDataKey>,
) -> Vec<u8> {
    let old_section = parsed.header.key_section_bytes();
    let tagged_len = parsed.len - old_section.len();
    let header = Header {
        wrapped_keys,
        ..parsed.header.clone()
    };
    [
        &message[..tagged_len],
        &header.key_section_bytes(),
        &message[parsed.len..],
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use kagi_crypto::context::EncryptionContext;

    use super::*;
    use crate::message::Suite;
    use crate::message::header::WrappedKeyKind;

    fn header(body: BodyMode, suite: Suite) -> Header {
        Header {
            suite,
            body,
            message_id: [3; 32],
            tenant_id: "tenant-1".into(),
            key_id: [4; 16],
            context: EncryptionContext::new([("record".to_owned(), "grades".to_owned())]).unwrap(),
            commitment: [0; 32],
            wrapped_keys: vec![WrappedDataKey {
                kind: WrappedKeyKind::Tenant,
                bytes: vec![9; 40],
            }],
        }
    }

    fn round_trip(body: BodyMode, suite: Suite, plaintext: &[u8]) {
        let key = SecretKey::from_bytes([5; 32]);
        let message = seal_message(&key, header(body, suite), plaintext).unwrap();
        let parsed = parse_header(&message).unwrap();
        assert_eq!(
            open_message(&key, &parsed, &message).unwrap().as_slice(),
            plaintext
        );
    }

    #[test]
    fn round_trips_in_both_modes_and_suites() {
        for suite in [
            Suite::Aes256GcmHkdfSha256Commit,
            Suite::ChaCha20Poly1305HkdfSha256Commit,
        ] {
            for len in [0, 1, 1023, 1024, 1025, 4096, 5000] {
                let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
                round_trip(BodyMode::Single, suite, &plaintext);
                round_trip(BodyMode::Framed { frame_size: 1024 }, suite, &plaintext);
            }
        }
    }

    #[test]
    fn replacing_the_key_section_keeps_the_message_valid() {
        let key = SecretKey::from_bytes([5; 32]);
        let message =
            seal_message(&key, header(BodyMode::Single, Suite::default()), b"abc").unwrap();
        let parsed = parse_header(&message).unwrap();
        let new_keys = vec![WrappedDataKey {
            kind: WrappedKeyKind::Tenant,
            bytes: vec![7; 100],
        }];
        let rewrapped = replace_wrapped_keys(&message, &parsed, new_keys.clone());
        let reparsed = parse_header(&rewrapped).unwrap();
        assert_eq!(reparsed.header.wrapped_keys, new_keys);
        assert_eq!(
            open_message(&key, &reparsed, &rewrapped)
                .unwrap()
                .as_slice(),
            b"abc"
        );
    }

    #[test]
    fn the_wrong_data_key_fails_the_commitment() {
        let message = seal_message(
            &SecretKey::from_bytes([5; 32]),
            header(BodyMode::Single, Suite::default()),
            b"x",
        )
        .unwrap();
        let parsed = parse_header(&message).unwrap();
        let wrong = SecretKey::from_bytes([6; 32]);
        assert_eq!(
            open_message(&wrong, &parsed, &message).unwrap_err(),
            MessageError::Commitment
        );
    }
}
