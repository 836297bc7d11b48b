//! How kagictl shows results and failures: human text or one JSON document on stdout, errors
//! on stderr, RFC 3339 times.

use std::error::Error as _;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::ValueEnum;
use serde::Serialize;

/// Exit status of a failed call, a failed connection or a failed local read or write.
const EXIT_FAILURE: u8 = 1;
/// Exit status of a command line kagictl cannot act on (clap uses the same for its errors).
const EXIT_USAGE: u8 = 2;
/// Exit status after Ctrl-C, as shells report a process killed by SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for people.
    Human,
    /// One JSON document per command, for scripts.
    Json,
}

impl Format {
    /// The format the `--json` flag asks for.
    pub fn from_json_flag(json: bool) -> Self {
        if json { Self::Json } else { Self::Human }
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// kagid answered with an error status.
    Status(tonic::Status),
    /// kagictl could not connect to kagid.
    Connect(kagi_sdk::Error),
    /// A local file or stream could not be read or written.
    Io {
        /// What kagictl was doing, e.g. "reading --in secrets.txt".
        what: String,
        /// The failure.
        source: io::Error,
    },
    /// The options make no sense together; nothing was sent.
    Usage(String),
    /// The data is not what it should be: not a Kagi ciphertext, modified, truncated, or
    /// bound to another encryption context.
    Data(String),
    /// Ctrl-C stopped an encrypt or decrypt (its partial --out was removed).
    Interrupted,
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}

impl From<kagi_sdk::Error> for CliError {
    fn from(err: kagi_sdk::Error) -> Self {
        match err {
            kagi_sdk::Error::Status(status) => Self::Status(status),
            other => Self::Connect(other),
        }
    }
}

impl CliError {
    /// A failed local read or write of `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    /// Prints the error to stderr as `kagictl: …` and gives the exit status.
    pub fn report(self) -> ExitCode {
        let (message, code) = match self {
            // A reader that stopped early (`kagictl key list | head`) is not worth a message.
            Self::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe => {
                return ExitCode::from(EXIT_FAILURE);
            }
            Self::Status(status) => (status_message(&status), EXIT_FAILURE),
            Self::Connect(err) => (error_chain(&err), EXIT_FAILURE),
            Self::Io { what, source } => (format!("{what}: {source}"), EXIT_FAILURE),
            Self::Usage(message) => (message, EXIT_USAGE),
            Self::Data(message) => (message, EXIT_FAILURE),
            Self::Interrupted => ("interrupted".to_owned(), EXIT_INTERRUPTED),
        };
        eprintln!("kagictl: {message}");
        ExitCode::from(code)
    }
}

/// `<code>: <message>`. The code is tonic's variant name (`FailedPrecondition`), the spelling
/// grpcurl uses too; `Code`'s `Display` would give a long English sentence instead.
fn status_message(status: &tonic::Status) -> String {
    let code = format!("{:?}", status.code());
    let text = match status.message() {
        "" => code,
        message => format!("{code}: {message}"),
    };
    // Statuses made on this side of the connection (TLS refused, connection reset) carry
    // their cause as a source; kagid's own answers have none.
    append_sources(text, status.source())
}

/// An error and its sources, `a: b: c`. tonic's transport errors say little at the top
/// ("transport error"); the cause (e.g. "Connection refused") is further down.
fn error_chain(err: &kagi_sdk::Error) -> String {
    append_sources(err.to_string(), err.source())
}

/// `text: source: its source: …`.
fn append_sources(mut text: String, first: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut source = first;
    while let Some(cause) = source {
        let part = cause.to_string();
        // Wrappers often repeat their source's text; say each thing once.
        if !text.ends_with(&part) {
            let _ = write!(text, ": {part}");
        }
        source = cause.source();
    }
    text
}

/// Writes `text` to stdout.
pub fn print(text: &str) -> Result<(), CliError> {
    write_stdout(text.as_bytes())
}

/// Writes raw bytes to stdout (ciphertext or plaintext of `--out -`).
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(CliError::io("writing stdout"))
}

/// Prints `value` as one pretty JSON document.
pub fn json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(value)
        .expect("kagictl's views serialize: string keys, no maps with other keys");
    text.push('\n');
    print(&text)
}

/// Prints `{"<name>": [items…]}`: lists are wrapped in an object so that fields can be added
/// beside them later without breaking scripts.
pub fn json_list<T: Serialize>(name: &str, items: &[T]) -> Result<(), CliError> {
    // A one-entry map, rather than `json!`, keeps each item's fields in declaration order.
    json(&std::collections::BTreeMap::from([(name, items)]))
}

/// The kebab-case word that clap accepts for `value`, or "unknown" for a value this build of
/// kagictl does not know (a newer server). Input and output use the same words.
pub fn word<E: ValueEnum>(value: Option<E>) -> String {
    value
        .and_then(|v| v.to_possible_value())
        .map_or_else(|| "unknown".to_owned(), |v| v.get_name().to_owned())
}

/// A table with a header row; columns are padded to their widest cell.
#[derive(Debug)]
pub struct Table {
    /// Column titles.
    header: Vec<&'static str>,
    /// Cells, row by row; each row as long as the header.
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column titles.
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    /// The table as text, two spaces between columns, no trailing spaces.
    pub fn render(&self) -> String {
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        let lines: Vec<&Vec<String>> = std::iter::once(&header).chain(&self.rows).collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|col| lines.iter().map(|l| width(&l[col])).max().unwrap_or(0))
            .collect();
        let mut text = String::new();
        for line in lines {
            text.push_str(&pad_line(line, &widths));
            text.push('\n');
        }
        text
    }
}

/// One table line: every cell padded but the last.
fn pad_line(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (cell, column_width) in cells.iter().zip(widths) {
        line.push_str(cell);
        line.extend(std::iter::repeat_n(' ', column_width - width(cell) + 2));
    }
    line.truncate(line.trim_end().len());
    line
}

/// Display width of a cell. Counting chars is right for the ASCII that kagid allows in names.
fn width(cell: &str) -> usize {
    cell.chars().count()
}

/// `label  value` lines with the values aligned, for one record.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let widest = pairs
        .iter()
        .map(|(label, _)| width(label))
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (label, value) in pairs {
        let _ = writeln!(text, "{label:<widest$}  {value}");
    }
    text
}

pub use kagi_kms::clock::rfc3339;

/// A time that the server leaves at 0 when it does not apply (e.g. `revoked_at`).
pub fn optional_time(unix_seconds: i64) -> Option<String> {
    (unix_seconds != 0).then(|| rfc3339(unix_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(1_775_035_800), "2026-04-01T09:30:00Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let mut table = Table::new(&["ID", "NAME"]);
        table.row(vec!["1".into(), "school-1".into()]);
        table.row(vec!["1234".into(), "x".into()]);
        assert_eq!(table.render(), "ID    NAME\n1     school-1\n1234  x\n");
    }

    #[test]
    fn status_messages_name_the_code() {
        let status = tonic::Status::failed_precondition("key k is disabled");
        assert_eq!(
            status_message(&status),
            "FailedPrecondition: key k is disabled"
        );
    }
}
