//! Streams of any size in constant memory: [`Envelope::encrypt_stream`] and
//! [`Envelope::decrypt_stream`].
//!
//! A stream is a framed message. Encrypting holds two frames of plaintext at a time (one to
//! know whether the other is the last). Decrypting holds at most one frame and a read chunk,
//! and writes a frame's plaintext only after its tag verified. A stream that was truncated,
//! reordered or extended is reported as an error at the point it is found, after the frames
//! before it were written: treat the output as valid only when the call returns `Ok`.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::Error;
use crate::envelope::{Context, Envelope, new_header, to_context};
use crate::message::frame::{FrameOpener, FrameSealer};
use crate::message::header::{Header, MAX_WRAPPED_KEYS, MAX_WRAPPED_LEN};
use crate::message::suite::MessageKeys;
use crate::message::{BodyMode, MessageError};

/// The largest header a stream may start with (a bound for the read buffer).
const MAX_HEADER_LEN: usize = 16 * 1024 + MAX_WRAPPED_KEYS * (3 + MAX_WRAPPED_LEN);
/// How much is read at a time while decrypting.
const READ_CHUNK: usize = 64 * 1024;

/// What a stream operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamSummary {
    /// Plaintext bytes read (encrypt) or written (decrypt).
    pub plaintext_bytes: u64,
    /// Message bytes written (encrypt) or read (decrypt).
    pub message_bytes: u64,
    /// Frames sealed or opened.
    pub frames: u64,
}

impl Envelope {
    /// Encrypts everything `reader` yields into one framed message written to `writer`, under a
    /// fresh data key of `key_id` (streams never use the data-key cache).
    pub async fn encrypt_stream<R, W>(
        &self,
        key_id: &str,
        context: &Context,
        mut reader: R,
        mut writer: W,
    ) -> Result<StreamSummary, Error>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let context = to_context(context)?;
        let lease = self.fresh_data_key(key_id, &context).await?;
        let frame_size = self.frame_size();
        let mut header = new_header(
            self.suite(),
            BodyMode::Framed { frame_size },
            &lease,
            context,
        )?;
        let keys = MessageKeys::derive(header.suite, &lease.key, &header.message_id);
        header.commitment = keys.commitment;
        let head = header.encode(&keys);
        writer.write_all(&head).await?;
        let mut summary = StreamSummary {
            message_bytes: head.len() as u64,
            ..Default::default()
        };
        let mut sealer = FrameSealer::new(keys, header.message_id, header.body);

        let mut pending: Option<Zeroizing<Vec<u8>>> = None;
        loop {
            let mut next = Zeroizing::new(vec![0u8; frame_size as usize]);
            let filled = read_full(&mut reader, &mut next).await?;
            summary.plaintext_bytes += filled as u64;
            if filled == next.len() {
                // A full frame: the one before it is now known not to be the last.
                if let Some(previous) = pending.replace(next) {
                    write_frame(&mut writer, &sealer.seal_regular(&previous)?, &mut summary)
                        .await?;
                }
                continue;
            }
            match pending.take() {
                Some(previous) if filled == 0 => {
                    write_frame(&mut writer, &sealer.seal_final(&previous)?, &mut summary).await?;
                }
                Some(previous) => {
                    write_frame(&mut writer, &sealer.seal_regular(&previous)?, &mut summary)
                        .await?;
                    write_frame(
                        &mut writer,
                        &sealer.seal_final(&next[..filled])?,
                        &mut summary,
                    )
                    .await?;
                }
                None => {
                    write_frame(
                        &mut writer,
                        &sealer.seal_final(&next[..filled])?,
                        &mut summary,
                    )
                    .await?
                }
            }
            break;
        }
        writer.flush().await?;
        Ok(summary)
    }

    /// Decrypts a message from `reader` to `writer`, frame by frame. Every pair of `expected`
    /// must be in the message's context.
    ///
    /// Memory stays constant for framed messages (what `encrypt_stream` writes). A single-shot
    /// message (what [`Envelope::encrypt`] writes) is one frame, buffered whole until its tag
    /// verifies: use `decrypt_stream` on those only when their size is bounded.
    pub async fn decrypt_stream<R, W>(
        &self,
        expected: &Context,
        mut reader: R,
        mut writer: W,
    ) -> Result<StreamSummary, Error>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let parsed = loop {
            if let Some(parsed) = Header::parse(&buf)? {
                break parsed;
            }
            if buf.len() > MAX_HEADER_LEN {
                return Err(MessageError::Format(
                    "the header is longer than any valid header".into(),
                )
                .into());
            }
            if read_chunk(&mut reader, &mut buf).await? == 0 {
                return Err(MessageError::Truncated("the header is incomplete").into());
            }
        };
        let mut summary = StreamSummary {
            message_bytes: parsed.len as u64,
            ..Default::default()
        };
        let key = self.unwrap_for(&parsed, expected).await?;
        let header = &parsed.header;
        let keys = MessageKeys::derive_checked(
            header.suite,
            &key,
            &header.message_id,
            &header.commitment,
        )?;
        parsed.verify(&keys)?;
        let mut opener = FrameOpener::new(keys, header.message_id, header.body);
        buf.drain(..parsed.len);

        while !opener.is_finished() {
            match opener.open_next(&buf)? {
                Some(frame) => {
                    writer.write_all(&frame.plaintext).await?;
                    summary.plaintext_bytes += frame.plaintext.len() as u64;
                    summary.message_bytes += frame.consumed as u64;
                    summary.frames += 1;
                    buf.drain(..frame.consumed);
                }
                None => {
                    if read_chunk(&mut reader, &mut buf).await? == 0 {
                        return Err(MessageError::Truncated(
                            "the stream ends before its final frame",
                        )
                        .into());
                    }
                }
            }
        }
        if !buf.is_empty() || read_chunk(&mut reader, &mut buf).await? != 0 {
            return Err(MessageError::FrameOrder("data after the final frame".into()).into());
        }
        writer.flush().await?;
        Ok(summary)
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &[u8],
    summary: &mut StreamSummary,
) -> Result<(), Error> {
    writer.write_all(frame).await?;
    summary.message_bytes += frame.len() as u64;
    summary.frames += 1;
    Ok(())
}

/// Reads until `buf` is full or the reader ends; returns how much was read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> Result<usize, Error> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Appends up to one chunk to `buf`; returns how much was read (0 at the end).
async fn read_chunk<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<usize, Error> {
    let start = buf.len();
    buf.resize(start + READ_CHUNK, 0);
    let n = reader.read(&mut buf[start..]).await?;
    buf.truncate(start + n);
    Ok(n)
}
