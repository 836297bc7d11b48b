//! The body: a sequence of frames, each sealed on its own so a stream is decrypted in
//! constant memory and no plaintext of a frame is released before its tag verifies.
//!
//! ```text
//! regular frame: 0x00 │ sequence (u32) │ ciphertext (frame size) │ tag (16)
//! final frame:   0x01 │ sequence (u32) │ length (u32) │ ciphertext (length) │ tag (16)
//! ```
//!
//! Sequence numbers start at 1 and rise by one; the nonce is 8 zero bytes ‖ sequence (the
//! header tag uses sequence 0), which never repeats because every message has its own key.
//! The AAD is "kagi/v1/frame" ‖ message id ‖ kind ‖ sequence ‖ length (u64), so a frame moved
//! to another place or message, a dropped final frame, or a regular frame passed off as final
//! all fail.

use kagi_crypto::aead::{Cipher, NONCE_LEN, TAG_LEN};
use zeroize::Zeroizing;

use super::MessageError;
use super::header::BodyMode;
use super::suite::MessageKeys;

const FRAME_LABEL: &[u8] = b"kagi/v1/frame";
const REGULAR: u8 = 0x00;
const FINAL: u8 = 0x01;

/// What sealing and opening share: the message's keyed AEAD, its id and layout, and where in
/// the frame sequence they are.
struct FrameState {
    cipher: Cipher,
    message_id: [u8; 32],
    body: BodyMode,
    next: u32,
    finished: bool,
}

impl FrameState {
    fn new(keys: MessageKeys, message_id: [u8; 32], body: BodyMode) -> Self {
        Self {
            cipher: keys.cipher,
            message_id,
            body,
            next: 1,
            finished: false,
        }
    }
}

/// Seals a message's frames in order.
pub struct FrameSealer(FrameState);

impl FrameSealer {
    /// A sealer for the frames of one message.
    pub fn new(keys: MessageKeys, message_id: [u8; 32], body: BodyMode) -> Self {
        Self(FrameState::new(keys, message_id, body))
    }

    /// Seals a regular frame: exactly one frame size of plaintext (framed mode only).
    pub fn seal_regular(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, MessageError> {
        let BodyMode::Framed { frame_size } = self.0.body else {
            return Err(MessageError::FrameOrder(
                "a single-shot message has no regular frames".into(),
            ));
        };
        if plaintext.len() != frame_size as usize || self.0.finished {
            return Err(MessageError::FrameOrder(
                "a regular frame must be full and precede the final frame".into(),
            ));
        }
        Ok(self.seal(REGULAR, plaintext))
    }

    /// Seals the final frame (at most one frame size in framed mode).
    pub fn seal_final(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, MessageError> {
        if let BodyMode::Framed { frame_size } = self.0.body
            && plaintext.len() > frame_size as usize
        {
            return Err(MessageError::FrameOrder(
                "the final frame is larger than the frame size".into(),
            ));
        }
        if self.0.finished || plaintext.len() > u32::MAX as usize {
            return Err(MessageError::FrameOrder(
                "a message has one final frame of at most 4 GiB".into(),
            ));
        }
        self.0.finished = true;
        Ok(self.seal(FINAL, plaintext))
    }

    fn seal(&mut self, kind: u8, plaintext: &[u8]) -> Vec<u8> {
        let seq = self.0.next;
        self.0.next = self
            .0
            .next
            .checked_add(1)
            .expect("fewer than 2^32 frames per message");
        let mut out = Vec::with_capacity(plaintext.len() + 9 + TAG_LEN);
        out.push(kind);
        out.extend_from_slice(&seq.to_be_bytes());
        if kind == FINAL {
            out.extend_from_slice(&(plaintext.len() as u32).to_be_bytes());
        }
        let aad = frame_aad(&self.0.message_id, kind, seq, plaintext.len());
        out.extend_from_slice(&self.0.cipher.seal(&nonce(seq), &aad, plaintext));
        out
    }
}

/// A frame opened and authenticated.
pub struct OpenedFrame {
    /// Its plaintext, verified.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// How many input bytes it took.
    pub consumed: usize,
    /// Whether it was the final frame.
    pub last: bool,
}

/// Opens a message's frames in order, refusing reordered, repeated or extra frames.
pub struct FrameOpener(FrameState);

impl FrameOpener {
    /// An opener for the frames of one message.
    pub fn new(keys: MessageKeys, message_id: [u8; 32], body: BodyMode) -> Self {
        Self(FrameState::new(keys, message_id, body))
    }

    /// Whether the final frame was opened.
    pub fn is_finished(&self) -> bool {
        self.0.finished
    }

    /// How many bytes the next frame needs at most before it can be opened, for buffering.
    pub fn max_frame_len(&self) -> usize {
        match self.0.body {
            BodyMode::Single => usize::MAX,
            BodyMode::Framed { frame_size } => 9 + frame_size as usize + TAG_LEN,
        }
    }

    /// Opens the frame at the start of `bytes`; `Ok(None)` if it is not complete yet.
    pub fn open_next(&mut self, bytes: &[u8]) -> Result<Option<OpenedFrame>, MessageError> {
        if self.0.finished {
            return Err(MessageError::FrameOrder(
                "data after the final frame".into(),
            ));
        }
        if bytes.len() < 5 {
            return Ok(None);
        }
        let kind = bytes[0];
        let seq = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
        let (len, start) = match (kind, self.0.body) {
            (REGULAR, BodyMode::Framed { frame_size }) => (frame_size as usize, 5),
            (REGULAR, BodyMode::Single) => {
                return Err(MessageError::FrameOrder(
                    "a regular frame in a single-shot message".into(),
                ));
            }
            (FINAL, body) => {
                if bytes.len() < 9 {
                    return Ok(None);
                }
                let len = u32::from_be_bytes(bytes[5..9].try_into().expect("4 bytes")) as usize;
                if let BodyMode::Framed { frame_size } = body
                    && len > frame_size as usize
                {
                    return Err(MessageError::Format(
                        "the final frame is larger than the frame size".into(),
                    ));
                }
                (len, 9)
            }
            (other, _) => {
                return Err(MessageError::Format(format!(
                    "unknown frame kind 0x{other:02x}"
                )));
            }
        };
        if seq != self.0.next {
            return Err(MessageError::FrameOrder(format!(
                "frame {seq} where frame {} was expected",
                self.0.next
            )));
        }
        let end = start + len + TAG_LEN;
        if bytes.len() < end {
            return Ok(None);
        }
        let aad = frame_aad(&self.0.message_id, kind, seq, len);
        let plaintext = self
            .0
            .cipher
            .open(&nonce(seq), &aad, &bytes[start..end])
            .map_err(|_| MessageError::Authentication("body"))?;
        self.0.next = self
            .0
            .next
            .checked_add(1)
            .ok_or(MessageError::FrameOrder("too many frames".into()))?;
        self.0.finished = kind == FINAL;
        Ok(Some(OpenedFrame {
            plaintext: Zeroizing::new(plaintext),
            consumed: end,
            last: self.0.finished,
        }))
    }
}

fn nonce(seq: u32) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[8..].copy_from_slice(&seq.to_be_bytes());
    nonce
}

fn frame_aad(message_id: &[u8; 32], kind: u8, seq: u32, len: usize) -> Vec<u8> {
    let mut aad = Vec::with_capacity(FRAME_LABEL.len() + 32 + 13);
    aad.extend_from_slice(FRAME_LABEL);
    aad.extend_from_slice(message_id);
    aad.push(kind);
    aad.extend_from_slice(&seq.to_be_bytes());
    aad.extend_from_slice(&(len as u64).to_be_bytes());
    aad
}
