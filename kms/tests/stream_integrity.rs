//! The integrity of streams (`Envelope::encrypt_stream` / `decrypt_stream`) against a real
//! kagid served in-process: round trips around the frame size, and truncation, reordered,
//! duplicated, dropped or foreign frames, trailing bytes, a context that does not match and
//! modified bytes all fail. Decrypting never writes the plaintext of a frame whose tag did not
//! verify, nor of any frame after it.
//!
//! Frames are cut apart by their layout (client-sdk/src/message/frame.rs): a regular frame is
//! kind (1) ‖ sequence (4) ‖ ciphertext (frame size) ‖ tag (16); the final frame is kind (1) ‖
//! sequence (4) ‖ length (4) ‖ ciphertext (length) ‖ tag (16).

mod common;

use common::{Backend, TestServer};
use kagi_sdk::message::Header;
use kagi_sdk::{Context, Envelope, Error, MessageError, StreamSummary, Suite, context, pb};

const FRAME: usize = 1024;
/// A regular frame's length with a 1024-byte frame size.
const REGULAR: usize = 1 + 4 + FRAME + 16;
const KEY: &str = "school-1/records";

const SUITES: [Suite; 2] = [
    Suite::Aes256GcmHkdfSha256Commit,
    Suite::ChaCha20Poly1305HkdfSha256Commit,
];

/// A kagid with a tenant, a key and a service; the envelope of that service (1 KiB frames).
async fn setup(suite: Suite) -> (TestServer, Envelope) {
    let server = TestServer::start(Backend::Sqlite).await;
    let admin = server.admin().await;
    let tenant = common::tenant(&admin, "school-1").await;
    common::key(&admin, &tenant, "records").await;
    let token = common::principal(&admin, "records-app", pb::Role::TenantService, &tenant).await;
    let envelope = Envelope::new(server.client(&token).await)
        .with_suite(suite)
        .with_frame_size(FRAME as u32)
        .expect("1 KiB frames");
    (server, envelope)
}

fn ctx() -> Context {
    context([("record", "grades"), ("school", "tokyo-01")])
}

/// Distinct bytes for every offset, so that a misplaced frame cannot pass for another.
fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

async fn seal(envelope: &Envelope, plaintext: &[u8]) -> (Vec<u8>, StreamSummary) {
    let mut message = Vec::new();
    let summary = envelope
        .encrypt_stream(KEY, &ctx(), plaintext, &mut message)
        .await
        .expect("encrypt_stream");
    (message, summary)
}

/// Decrypts `message` expecting `expected`; returns the result and everything written.
async fn open_with(
    envelope: &Envelope,
    message: &[u8],
    expected: &Context,
) -> (Result<StreamSummary, Error>, Vec<u8>) {
    let mut out = Vec::new();
    let result = envelope.decrypt_stream(expected, message, &mut out).await;
    (result, out)
}

async fn open(envelope: &Envelope, message: &[u8]) -> (Result<StreamSummary, Error>, Vec<u8>) {
    open_with(envelope, message, &ctx()).await
}

/// The header and the frames of a message.
fn split(message: &[u8]) -> (&[u8], Vec<&[u8]>) {
    let parsed = Header::parse(message)
        .expect("a valid header")
        .expect("a complete header");
    let (head, mut rest) = message.split_at(parsed.len);
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let len = match rest[0] {
            0x00 => REGULAR,
            0x01 => 9 + u32::from_be_bytes(rest[5..9].try_into().unwrap()) as usize + 16,
            other => panic!("frame kind {other:#04x}"),
        };
        let (frame, tail) = rest.split_at(len);
        frames.push(frame);
        rest = tail;
    }
    (head, frames)
}

fn join(head: &[u8], frames: &[&[u8]]) -> Vec<u8> {
    let mut out = head.to_vec();
    for frame in frames {
        out.extend_from_slice(frame);
    }
    out
}

/// Which message errors a case expects.
type Matcher = fn(&MessageError) -> bool;

/// Fails the test unless `result` is the message error `matches` accepts.
fn assert_message_error(result: &Result<StreamSummary, Error>, matches: Matcher, what: &str) {
    match result {
        Err(Error::Message(err)) if matches(err) => {}
        other => panic!("{what}: expected a matching message error, got {other:?}"),
    }
}

#[tokio::test]
async fn streams_round_trip_around_the_frame_size() {
    for suite in SUITES {
        let (server, envelope) = setup(suite).await;
        for len in [0, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME] {
            let input = plaintext(len);
            let (message, sealed) = seal(&envelope, &input).await;
            let frames = len.div_ceil(FRAME).max(1);
            assert_eq!(sealed.plaintext_bytes, len as u64);
            assert_eq!(sealed.frames, frames as u64, "{len} bytes");
            assert_eq!(sealed.message_bytes, message.len() as u64);

            // Full regular frames, then one final frame with what is left (a full one when the
            // size is a multiple of the frame size; an empty one only for an empty stream).
            let (head, parts) = split(&message);
            assert_eq!(parts.len(), frames, "{len} bytes");
            let (last, regular) = parts.split_last().unwrap();
            assert!(regular.iter().all(|f| f[0] == 0x00 && f.len() == REGULAR));
            assert_eq!(last[0], 0x01);
            assert_eq!(last.len(), 9 + (len - regular.len() * FRAME) + 16);
            for (i, frame) in parts.iter().enumerate() {
                assert_eq!(
                    frame[1..5],
                    (i as u32 + 1).to_be_bytes(),
                    "sequence numbers"
                );
            }
            assert_eq!(
                head.len() + parts.iter().map(|f| f.len()).sum::<usize>(),
                message.len()
            );

            let (opened, out) = open(&envelope, &message).await;
            let opened = opened.unwrap_or_else(|e| panic!("{suite:?}, {len} bytes: {e}"));
            assert!(out == input, "{suite:?}, {len} bytes");
            assert_eq!(opened, sealed, "both sides count the same");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn a_truncated_stream_fails() {
    let (server, envelope) = setup(Suite::default()).await;
    let input = plaintext(3 * FRAME - 72);
    let (message, _) = seal(&envelope, &input).await;
    let (head, frames) = split(&message);
    assert_eq!(frames.len(), 3);
    let h = head.len();
    let cuts = [
        0,
        1,
        2,
        h / 2,
        h - 17, // inside the header tag
        h - 1,
        h, // header only
        h + 1,
        h + 5,
        h + REGULAR - 1,
        h + REGULAR, // after frame 1
        h + REGULAR + 700,
        h + 2 * REGULAR, // after both regular frames: no final frame
        h + 2 * REGULAR + 8,
        message.len() - 16, // the final frame's tag missing
        message.len() - 1,
    ];
    for cut in cuts {
        let (result, out) = open(&envelope, &message[..cut]).await;
        assert!(
            result.is_err(),
            "a stream cut at {cut} of {} decrypted",
            message.len()
        );
        // Only whole, verified frames came out, in order.
        assert_eq!(
            out.len() % FRAME,
            0,
            "cut at {cut}: part of a frame was written"
        );
        assert!(out == input[..out.len()], "cut at {cut}");
        if cut >= h + REGULAR {
            assert_message_error(&result, |e| matches!(e, MessageError::Truncated(_)), "cut");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn reordered_duplicated_dropped_or_foreign_frames_fail() {
    let (server, envelope) = setup(Suite::default()).await;
    let input = plaintext(4 * FRAME - 100);
    let (message, _) = seal(&envelope, &input).await;
    let (head, f) = split(&message);
    assert_eq!(f.len(), 4);
    let (other, _) = seal(&envelope, &input).await;
    let (_, g) = split(&other);

    let order = |e: &MessageError| matches!(e, MessageError::FrameOrder(_));
    let tag = |e: &MessageError| matches!(e, MessageError::Authentication(_));
    // (frames, how many whole frames may come out before the failure, the failure)
    let cases: [(&str, Vec<&[u8]>, usize, Matcher); 8] = [
        (
            "frames 1 and 2 swapped",
            vec![f[1], f[0], f[2], f[3]],
            0,
            order,
        ),
        (
            "frames 2 and 3 swapped",
            vec![f[0], f[2], f[1], f[3]],
            1,
            order,
        ),
        (
            "frame 1 twice",
            vec![f[0], f[0], f[1], f[2], f[3]],
            1,
            order,
        ),
        (
            "frame 2 twice",
            vec![f[0], f[1], f[1], f[2], f[3]],
            2,
            order,
        ),
        ("frame 2 dropped", vec![f[0], f[2], f[3]], 1, order),
        ("final frame first", vec![f[3], f[0], f[1], f[2]], 0, order),
        // Same key, same sequence number, another message: the AAD binds the message id.
        (
            "frame 2 of another message",
            vec![f[0], g[1], f[2], f[3]],
            1,
            tag,
        ),
        (
            "final frame of another message",
            vec![f[0], f[1], f[2], g[3]],
            3,
            tag,
        ),
    ];
    for (what, frames, released, matches) in cases {
        let (result, out) = open(&envelope, &join(head, &frames)).await;
        assert_message_error(&result, matches, what);
        assert!(
            out == input[..released * FRAME],
            "{what}: {} bytes out",
            out.len()
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn bytes_after_the_final_frame_fail() {
    let (server, envelope) = setup(Suite::default()).await;
    let input = plaintext(2 * FRAME + 10);
    let (message, _) = seal(&envelope, &input).await;
    let (_, frames) = split(&message);
    let (other, _) = seal(&envelope, b"another message").await;
    let extras: [(&str, Vec<u8>); 5] = [
        ("one zero byte", vec![0]),
        ("the final frame again", frames[2].to_vec()),
        ("a regular frame again", frames[0].to_vec()),
        ("another whole message", other),
        ("1 MiB of zeros", vec![0; 1 << 20]),
    ];
    for (what, extra) in extras {
        let mut extended = message.clone();
        extended.extend_from_slice(&extra);
        let (result, out) = open(&envelope, &extended).await;
        assert_message_error(&result, |e| matches!(e, MessageError::FrameOrder(_)), what);
        // Every frame verified, so all of it was written; the error says not to trust it.
        assert!(out == input, "{what}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_context_that_does_not_match_fails_before_any_output() {
    let (server, envelope) = setup(Suite::default()).await;
    let input = plaintext(2 * FRAME);
    let (message, _) = seal(&envelope, &input).await;
    for wrong in [
        context([("record", "attendance")]),
        context([("term", "1")]),
        context([("record", "grades"), ("school", "osaka-02")]),
        context([
            ("record", "grades"),
            ("school", "tokyo-01"),
            ("year", "2026"),
        ]),
    ] {
        let (result, out) = open_with(&envelope, &message, &wrong).await;
        assert_message_error(
            &result,
            |e| matches!(e, MessageError::ContextMismatch(_)),
            &format!("{wrong:?}"),
        );
        assert!(out.is_empty(), "{wrong:?}");
    }
    // The expected pairs are a subset of the message's: any subset decrypts.
    for subset in [ctx(), context([("record", "grades")]), Context::new()] {
        let (result, out) = open_with(&envelope, &message, &subset).await;
        result.unwrap_or_else(|e| panic!("{subset:?}: {e}"));
        assert!(out == input);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_frame_that_fails_its_tag_is_never_written() {
    for suite in SUITES {
        let (server, envelope) = setup(suite).await;
        let input = plaintext(3 * FRAME);
        let (message, _) = seal(&envelope, &input).await;
        let (head, frames) = split(&message);
        assert_eq!(frames.len(), 3);
        // Offsets in frame 2 (the kind and sequence bytes fail as out of order instead).
        let start = head.len() + REGULAR;
        for (what, offset) in [
            ("first ciphertext byte", 5),
            ("middle ciphertext byte", 5 + FRAME / 2),
            ("last ciphertext byte", 5 + FRAME - 1),
            ("first tag byte", 5 + FRAME),
            ("last tag byte", REGULAR - 1),
        ] {
            let mut modified = message.clone();
            modified[start + offset] ^= 0x01;
            let (result, out) = open(&envelope, &modified).await;
            assert_message_error(
                &result,
                |e| *e == MessageError::Authentication("body"),
                what,
            );
            assert!(
                out == input[..FRAME],
                "{suite:?}, frame 2's {what}: {} bytes out, expected frame 1's {FRAME}",
                out.len()
            );
        }
        // A bit flipped in frame 1: nothing at all comes out; in the final frame: the two
        // frames before it.
        for (frame, released) in [(0, 0), (2, 2 * FRAME)] {
            let mut modified = message.clone();
            modified[head.len() + frame * REGULAR + 100] ^= 0x80;
            let (result, out) = open(&envelope, &modified).await;
            assert!(result.is_err());
            assert!(out == input[..released], "frame {} modified", frame + 1);
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn any_modified_header_byte_fails_before_any_output() {
    let (server, envelope) = setup(Suite::default()).await;
    let input = plaintext(FRAME + 1);
    let (message, _) = seal(&envelope, &input).await;
    let (head, _) = split(&message);
    for at in 0..head.len() {
        let mut modified = message.clone();
        modified[at] ^= 0x01;
        let (result, out) = open(&envelope, &modified).await;
        assert!(
            result.is_err(),
            "header byte {at} of {} modified",
            head.len()
        );
        assert!(out.is_empty(), "header byte {at}: {} bytes out", out.len());
    }
    server.stop().await;
}
