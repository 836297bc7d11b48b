//! kagi-sdk: the client of the Kagi KMS.
//!
//! [`Kagi`] is an authenticated gRPC channel to kagid. It hands out the generated clients of
//! `kagi.v1` with the bearer token attached to every call:
//!
//! ```no_run
//! # async fn demo() -> Result<(), kagi_sdk::Error> {
//! use kagi_sdk::{Kagi, pb};
//!
//! let kagi = Kagi::connect("http://127.0.0.1:7878").token("kagi_…").build().await?;
//! let encrypted = kagi
//!     .crypto()
//!     .encrypt(pb::EncryptRequest {
//!         key_id: "school-1/grades".into(),
//!         plaintext: b"pupil record".to_vec(),
//!         context: [("record".to_owned(), "grades".to_owned())].into(),
//!     })
//!     .await?
//!     .into_inner();
//! # let _ = encrypted; Ok(()) }
//! ```
//!
//! - [`client`]: the connection builder, TLS settings and the token interceptor.
//! - [`envelope`]: [`Envelope`], envelope encryption of records and (with `encrypt_stream`)
//!   streams.
//! - [`cache`]: the opt-in data-key cache.
//! - [`message`]: the envelope message format v1.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod client;
pub mod envelope;
pub mod message;
pub mod record;
pub mod stream;

pub use cache::{CacheLimits, CacheStats};
pub use client::{Kagi, KagiBuilder, Tls};
pub use envelope::{Context, Envelope, context};
/// The generated protobuf types and clients of `kagi.v1`.
pub use kagi_proto::v1 as pb;
pub use message::{MessageError, Suite};
pub use record::{DataClass, FieldRule, RecordCipher, RecordError};
pub use stream::StreamSummary;

/// Why the client could not connect or call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint URL is not valid.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// What was given.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The token cannot be sent as a header.
    #[error("the token contains characters that cannot be sent in a header")]
    Token,
    /// The connection failed.
    #[error("cannot connect to kagid: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// kagid answered with an error.
    #[error("{:?}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// A message could not be read or failed to authenticate.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// An argument is out of range.
    #[error("{0}")]
    InvalidArgument(String),
    /// kagid answered something this SDK does not understand.
    #[error("unexpected answer from kagid: {0}")]
    Protocol(String),
    /// Reading or writing a stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A record could not be encrypted or decrypted field by field.
    #[error(transparent)]
    Record(#[from] RecordError),
}
