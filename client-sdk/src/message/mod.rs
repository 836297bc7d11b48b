//! The envelope message format, v1: what `Envelope::encrypt` writes and every later version of
//! the SDK must still read (catalogue K10). `docs/message-format.md` gives it byte by byte;
//! `docs/vectors/message-v1.json` fixes it with test vectors.
//!
//! ```text
//! authenticated header │ header tag │ key section │ body (frames)
//! ```
//!
//! - [`suite`]: algorithm suites and the per-message key derivation with key commitment.
//! - [`header`]: the header codec (authenticated part, tag, key section).
//! - [`frame`]: the body's frames, sealed and opened one at a time.
//! - [`seal`]: whole messages in memory (single-shot or framed), and re-wrapping.

pub mod frame;
pub mod header;
pub mod seal;
pub mod suite;

pub use header::{BodyMode, Header, WrappedDataKey, WrappedKeyKind};
pub use suite::Suite;

/// Why a message could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The bytes are not a Kagi envelope message of a version this SDK reads.
    #[error("not a Kagi envelope message: {0}")]
    Format(String),
    /// The message ended early: a truncated header, frame, or a missing final frame.
    #[error("the message is truncated: {0}")]
    Truncated(&'static str),
    /// A frame is out of order, repeated, or follows the final frame.
    #[error("the message's frames are out of order, repeated or extended: {0}")]
    FrameOrder(String),
    /// The data key does not match the key commitment in the header.
    #[error("key commitment mismatch: the data key does not belong to this message")]
    Commitment,
    /// A tag did not verify: the header or a frame was modified.
    #[error("authentication failed: the {0} was modified")]
    Authentication(&'static str),
    /// The message's context lacks a pair the caller expects.
    #[error("the message's encryption context does not contain the expected pair {0:?}")]
    ContextMismatch(String),
}
