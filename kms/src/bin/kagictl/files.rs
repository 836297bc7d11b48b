//! The files of `encrypt` and `decrypt`: --in and --out as async streams, a progress bar for
//! large inputs, and an --out that appears only when the command succeeded.
//!
//! A file named by --out is written to a temporary file beside it (same directory, so the
//! rename cannot cross file systems), and renamed over --out only once everything was written
//! and synced. On any failure, including Ctrl-C, the temporary file is removed: a decrypt that
//! fails half way never leaves partial plaintext behind, and an existing --out is left as it
//! was. Outputs that cannot be renamed over (stdout, a FIFO, `/dev/null`) are written directly.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};

use crate::output::{CliError, Format};

/// Inputs larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_THRESHOLD: u64 = 4 << 20;

/// How many of the first bytes through a [`Tap`] are kept: more than any message header.
const HEAD_MAX: usize = 64 * 1024;

/// Whether a --in or --out path means stdin or stdout.
pub fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// An opened --in.
pub struct Input {
    /// The bytes, from a file or stdin.
    pub reader: Box<dyn AsyncRead + Unpin + Send>,
    /// The size, when --in is a regular file.
    pub len: Option<u64>,
}

impl Input {
    /// Opens --in: a file, or stdin for `-`.
    pub async fn open(path: &Path) -> Result<Self, CliError> {
        if is_stdio(path) {
            return Ok(Self {
                reader: Box::new(tokio::io::stdin()),
                len: None,
            });
        }
        let what = format!("reading --in {}", path.display());
        let file = tokio::fs::File::open(path)
            .await
            .map_err(CliError::io(what.clone()))?;
        let metadata = file.metadata().await.map_err(CliError::io(what))?;
        Ok(Self {
            reader: Box::new(file),
            len: metadata.is_file().then_some(metadata.len()),
        })
    }
}

/// A progress bar on stderr, or nothing.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for an input of `len` bytes, shown only for a regular file over 4 MiB, in human
    /// mode, and when stderr is a terminal (never in scripts, never with --json).
    pub fn for_input(len: Option<u64>, format: Format) -> Self {
        use std::io::IsTerminal as _;
        let show = format == Format::Human && std::io::stderr().is_terminal();
        Self(
            len.filter(|&len| show && len > PROGRESS_THRESHOLD)
                .map(|len| {
                    let style = ProgressStyle::with_template(
                        "{bar:40.cyan/blue} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> ");
                    ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
                        .with_style(style)
                }),
        )
    }

    /// `reader`, counting what is read on the bar.
    pub fn wrap<R>(&self, reader: R) -> Box<dyn AsyncRead + Unpin + Send>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        match &self.0 {
            Some(bar) => Box::new(bar.wrap_async_read(reader)),
            None => Box::new(reader),
        }
    }

    /// Removes the bar, so that what follows on stderr (an error) starts on a clean line.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// A stream that names itself in its I/O errors ("reading --in x.bin: …") and, on request,
/// keeps a copy of its first bytes, so that the message header can be read after the stream
/// went through. (Only ciphertext is ever kept: plaintext is not copied out of the SDK's
/// zeroizing buffers.)
pub struct Tap<T> {
    inner: T,
    what: String,
    head: Vec<u8>,
    head_max: usize,
}

/// An I/O error with what kagictl was doing.
#[derive(Debug)]
struct Labeled {
    what: String,
    source: io::Error,
}

impl std::fmt::Display for Labeled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for Labeled {}

impl<T> Tap<T> {
    /// Wraps `inner`; `what` says what it is for ("reading --in x.bin").
    pub fn new(inner: T, what: impl Into<String>) -> Self {
        Self {
            inner,
            what: what.into(),
            head: Vec::new(),
            head_max: 0,
        }
    }

    /// Keeps the first 64 KiB that go through, for [`Tap::head`].
    pub fn keeping_head(mut self) -> Self {
        self.head_max = HEAD_MAX;
        self
    }

    /// The first bytes that went through (up to 64 KiB, if [`Tap::keeping_head`]).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    fn record(&mut self, bytes: &[u8]) {
        let room = self.head_max - self.head.len();
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn label(&self, source: io::Error) -> io::Error {
        io::Error::new(
            source.kind(),
            Labeled {
                what: self.what.clone(),
                source,
            },
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tap<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.record(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(this.label(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tap<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.record(&buf[..n]);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(this.label(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_flush(cx)
            .map_err(|e| this.label(e))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_shutdown(cx)
            .map_err(|e| this.label(e))
    }
}

/// Turns an I/O error that went through a [`Tap`] into the CLI's error, with its label.
pub fn io_failure(err: io::Error) -> CliError {
    let kind = err.kind();
    match err.into_inner().map(|inner| inner.downcast::<Labeled>()) {
        Some(Ok(labeled)) => CliError::Io {
            what: labeled.what,
            source: labeled.source,
        },
        Some(Err(other)) => CliError::Io {
            what: "streaming".into(),
            source: io::Error::new(kind, other),
        },
        None => CliError::Io {
            what: "streaming".into(),
            source: io::Error::from(kind),
        },
    }
}

/// Where --out bytes go.
pub enum Sink {
    /// `--out -`.
    Stdout(tokio::io::Stdout),
    /// A file (the temporary file, or a FIFO or device written directly).
    File(tokio::fs::File),
}

impl AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Sink::Stdout(s) => Pin::new(s).poll_write(cx, buf),
            Sink::File(f) => Pin::new(f).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Sink::Stdout(s) => Pin::new(s).poll_flush(cx),
            Sink::File(f) => Pin::new(f).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Sink::Stdout(s) => Pin::new(s).poll_shutdown(cx),
            Sink::File(f) => Pin::new(f).poll_shutdown(cx),
        }
    }
}

/// --out while it is being written. Dropped without [`Output::commit`], it removes its
/// temporary file and --out is untouched.
pub struct Output {
    /// The bytes go here.
    pub writer: Tap<Sink>,
    /// The temporary file and the path it becomes, for a regular --out.
    rename: Option<Rename>,
}

/// A temporary file that becomes `target` on success and is removed otherwise.
struct Rename {
    temp: PathBuf,
    target: PathBuf,
    done: bool,
}

impl Drop for Rename {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

impl Output {
    /// Prepares --out: stdout for `-`, a temporary file beside a regular (or new) file, or the
    /// file itself when it exists and is not a regular file (a FIFO, `/dev/null`).
    pub fn create(path: &Path) -> Result<Self, CliError> {
        let what = format!("writing --out {}", path.display());
        if is_stdio(path) {
            return Ok(Self {
                writer: Tap::new(Sink::Stdout(tokio::io::stdout()), "writing stdout"),
                rename: None,
            });
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        // New files are readable by their owner only: --out is often decrypted plaintext.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        // Through a symbolic link, the file it points to is written, not the link replaced.
        let target = follow_links(path);
        if std::fs::metadata(&target).is_ok_and(|m| !m.is_file()) {
            // Renaming over a device or a FIFO would replace it with a file.
            let file = options.open(&target).map_err(CliError::io(what.clone()))?;
            return Ok(Self {
                writer: Tap::new(Sink::File(tokio::fs::File::from_std(file)), what),
                rename: None,
            });
        }
        let temp = temp_path(&target);
        let file = options
            .create_new(true)
            .open(&temp)
            .map_err(CliError::io(what.clone()))?;
        Ok(Self {
            writer: Tap::new(Sink::File(tokio::fs::File::from_std(file)), what),
            rename: Some(Rename {
                temp,
                target,
                done: false,
            }),
        })
    }

    /// Flushes and syncs what was written, then moves the temporary file to --out.
    pub async fn commit(mut self) -> Result<(), CliError> {
        self.writer.flush().await.map_err(io_failure)?;
        let what = self.writer.what.clone();
        // Devices and FIFOs are not synced (fsync of /dev/null fails); they are not renamed
        // either.
        if let (Sink::File(file), Some(rename)) = (&mut self.writer.inner, &mut self.rename) {
            file.sync_all().await.map_err(CliError::io(what.clone()))?;
            std::fs::rename(&rename.temp, &rename.target).map_err(CliError::io(what))?;
            rename.done = true;
        }
        Ok(())
    }
}

/// The path at the end of a chain of symbolic links (at most 40, as the kernel allows).
fn follow_links(path: &Path) -> PathBuf {
    let mut target = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&target) {
            Ok(link) => target = target.parent().unwrap_or(Path::new("")).join(link),
            Err(_) => break,
        }
    }
    target
}

/// `DIR/.NAME.kagictl-RANDOM.tmp` beside `target`: hidden, and recognisable if kagictl is
/// killed before it can remove it.
fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    target.with_file_name(format!(".{name}.kagictl-{}.tmp", &random[..12]))
}
