//! `kagictl rewrap`: moves stored wrapped data keys (KMS ciphertexts, one per line) onto a
//! key's current version in bulk, through kagid's `ReEncryptBatch`, and can be resumed.
//!
//! The lines go in batches. For each batch, the lines that failed are appended to
//! `OUT.failed` and synced, then the re-wrapped lines to --out, synced. A run that stops
//! (killed, Ctrl-C, a lost connection) leaves whole batches behind, and perhaps a partial last
//! line. The next run with the same --in and --out drops the partial line, counts the lines
//! already in --out and in `OUT.failed`, skips that many input lines and carries on: no line
//! is written twice and none is left out. Nothing is ever re-wrapped on this side: the data
//! keys stay inside kagid.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Args;
use futures::{StreamExt as _, stream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::files::is_stdio;
use crate::output::{self, CliError, Format};

/// kagid's limit of items per `ReEncryptBatch` call.
const MAX_BATCH: u16 = 1000;

/// Request bytes per call, well below gRPC's 4 MiB message limit, whatever the lines hold
/// (wrapped data keys are about 120 bytes; a KMS ciphertext can be 64 KiB).
const MAX_REQUEST_BYTES: usize = 2 << 20;

/// Batches in flight at once: kagid works on the next while this side writes the last.
const PIPELINE: usize = 2;

/// The code of a line kagictl could not read (never sent).
const BAD_LINE: &str = "INVALID_ARGUMENT";

/// Options of `rewrap`.
#[derive(Debug, Args)]
pub struct RewrapArgs {
    /// Wrapped data keys: one base64 KMS ciphertext per line, or with --json-lines one JSON
    /// object per line.
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// Where the re-wrapped lines go, in the format and order of --in. Lines that fail go to
    /// OUT.failed instead, with the reason. Appended to: run the same command again to resume
    /// a run that stopped.
    #[arg(long = "out", value_name = "FILE")]
    output: PathBuf,
    /// Key id or TENANT/NAME to re-wrap under [default: each ciphertext's own key], at its
    /// current (primary) version.
    #[arg(long, value_name = "KEY")]
    to_key: Option<String>,
    /// A KEY=VALUE pair of the encryption context the ciphertexts were made with (repeatable);
    /// the re-wrapped ones keep it.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_pair)]
    context: Vec<(String, String)>,
    /// Lines per call to kagid, 1 to 1000.
    #[arg(
        long,
        value_name = "N",
        default_value_t = MAX_BATCH,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_BATCH))
    )]
    batch: u16,
    /// Lines are JSON objects {"id": …, "ciphertext": "<base64>", "context": {…}}; a line's
    /// "context" replaces --context. Other fields are kept.
    #[arg(long)]
    json_lines: bool,
}

/// Splits `KEY=VALUE` at the first '='; the value may itself contain '='.
fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

/// What `rewrap` prints at the end.
#[derive(Debug, Serialize)]
struct RewrapView {
    /// Lines re-wrapped by this run.
    rewrapped: u64,
    /// Lines that failed in this run.
    failed: u64,
    /// Lines skipped because an earlier run had done them (re-wrapped or failed).
    skipped: u64,
    /// Lines listed in the failures file, by this run and earlier ones.
    failed_total: u64,
    /// --out.
    out: String,
    /// The failures file (it exists only when a line failed).
    failed_file: String,
}

/// `rewrap --in FILE --out FILE [--to-key KEY] [--context k=v]… [--batch N] [--json-lines]`.
pub async fn run(args: RewrapArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    if is_stdio(&args.input) || is_stdio(&args.output) {
        return Err(CliError::Usage(
            "rewrap needs files for --in and --out (not -): it resumes from what --out holds"
                .into(),
        ));
    }
    if same_file(&args.input, &args.output) {
        return Err(CliError::Usage(
            "--in and --out are the same file: write the re-wrapped lines to another".into(),
        ));
    }
    let context = context_map(&args.context)?;
    let failed_path = failed_path(&args.output);
    let (total, resume) = resume(&args.input, &args.output, &failed_path)?;
    let mut job = Job {
        out: append(&args.output)?,
        out_name: args.output.display().to_string(),
        failed: None,
        failed_path,
        failed_total: resume.failed_before,
        rewrapped: 0,
        failed_now: 0,
    };
    let skipped = resume.first_line - 1;
    let how = How {
        json_lines: args.json_lines,
        context,
        to_key: args.to_key.unwrap_or_default(),
    };
    let mut lines = Lines::open(&args.input, skipped, how)?;
    let bar = progress(total - skipped, skipped, format);

    let batch = usize::from(args.batch);
    let batches = stream::iter(std::iter::from_fn(|| lines.next_batch(batch).transpose()));
    let mut results = batches
        .map(|batch| async {
            let batch = batch?;
            let answers = send(kagi, &batch).await?;
            Ok::<_, CliError>((batch, answers))
        })
        .buffered(PIPELINE);
    // The first batch of a job is checked for a wrong command (see `Job::write`).
    let mut first = skipped == 0;
    let outcome = loop {
        let next = tokio::select! {
            next = results.next() => next,
            _ = tokio::signal::ctrl_c() => break Err(CliError::Interrupted),
        };
        let Some(done) = next else { break Ok(()) };
        let written = done.and_then(|(batch, answers)| {
            let written = job.write(batch, answers, first);
            first = false;
            written
        });
        match written {
            Ok(lines) => bar.inc(lines),
            Err(err) => break Err(err),
        }
    };
    drop(results);
    bar.finish_and_clear();
    job.close()?;
    if let Err(err) = outcome {
        if matches!(err, CliError::Usage(_) | CliError::Data(_)) {
            return Err(err);
        }
        eprintln!(
            "kagictl: stopped after {} lines ({} re-wrapped, {} failed in this run); run the \
             same command again to carry on",
            skipped + job.rewrapped + job.failed_now,
            job.rewrapped,
            job.failed_now,
        );
        return Err(err);
    }
    let view = RewrapView {
        rewrapped: job.rewrapped,
        failed: job.failed_now,
        skipped,
        failed_total: job.failed_total,
        out: job.out_name.clone(),
        failed_file: job.failed_path.display().to_string(),
    };
    match format {
        Format::Json => output::json(&view)?,
        Format::Human => {
            let mut pairs = vec![
                ("re-wrapped", view.rewrapped.to_string()),
                ("failed", view.failed.to_string()),
                (
                    "skipped",
                    format!("{} (done by an earlier run)", view.skipped),
                ),
            ];
            if view.failed_total > 0 {
                pairs.push((
                    "failures",
                    format!(
                        "{} in all, listed in {}",
                        view.failed_total, view.failed_file
                    ),
                ));
            }
            output::print(&output::fields(&pairs))?;
        }
    }
    if view.failed_total > 0 {
        return Err(CliError::Data(format!(
            "{} lines could not be re-wrapped: {} lists each with its line number and the reason \
             (they are not in --out)",
            view.failed_total, view.failed_file
        )));
    }
    Ok(())
}

/// The pairs of --context as a map; a key given twice is refused.
fn context_map(pairs: &[(String, String)]) -> Result<HashMap<String, String>, CliError> {
    let mut map = HashMap::new();
    for (key, value) in pairs {
        if map.insert(key.clone(), value.clone()).is_some() {
            return Err(CliError::Usage(format!(
                "--context {key:?} is given more than once"
            )));
        }
    }
    Ok(map)
}

/// `OUT.failed`, beside --out.
fn failed_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".failed");
    PathBuf::from(name)
}

/// Whether two paths name one existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Opens a file to append to, creating it (owner-only) if it does not exist.
fn append(path: &Path) -> Result<File, CliError> {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(CliError::io(format!("opening {}", path.display())))
}

/// Where an earlier run stopped.
#[derive(Debug, PartialEq, Eq)]
struct Resume {
    /// The first input line (from 1) still to do.
    first_line: u64,
    /// Failures recorded for the lines before it.
    failed_before: u64,
}

/// Reads what earlier runs left: drops a partial last line of --out and of the failures file,
/// drops failures recorded past the lines --out accounts for (a batch whose re-wrapped lines
/// were never written), and finds the first input line to do. Returns the number of input
/// lines too.
fn resume(input: &Path, out: &Path, failed: &Path) -> Result<(u64, Resume), CliError> {
    let total = count_lines(input)?;
    let done = complete_lines(out)?;
    let failures = failure_lines(failed)?;
    let numbers: BTreeSet<u64> = failures.iter().map(|(line, _)| *line).collect();
    let mut first_line = 1;
    let mut accounted = 0;
    while first_line <= total && (numbers.contains(&first_line) || accounted < done) {
        if !numbers.contains(&first_line) {
            accounted += 1;
        }
        first_line += 1;
    }
    if accounted < done {
        return Err(CliError::Data(format!(
            "--out {} holds {done} lines, but --in {} has only {total} lines ({} of them \
             failed earlier): --out is not the output of this --in; give a new --out",
            out.display(),
            input.display(),
            numbers.len(),
        )));
    }
    // Failures are appended in line order: keep those before `first_line`.
    let kept = failures.iter().take_while(|(line, _)| *line < first_line);
    let keep_bytes = kept.clone().last().map_or(0, |(_, end)| *end);
    let failed_before = kept.count() as u64;
    if failed.exists() {
        truncate(failed, keep_bytes)?;
        if keep_bytes == 0 {
            std::fs::remove_file(failed)
                .map_err(CliError::io(format!("removing {}", failed.display())))?;
        }
    }
    Ok((
        total,
        Resume {
            first_line,
            failed_before,
        },
    ))
}

/// Lines in a file; a last line without a newline counts.
fn count_lines(path: &Path) -> Result<u64, CliError> {
    let what = format!("reading --in {}", path.display());
    let file = File::open(path).map_err(CliError::io(what.clone()))?;
    Ok(scan(file).map_err(CliError::io(what))?.lines())
}

/// Where the newlines of a file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    /// Newlines.
    newlines: u64,
    /// Bytes.
    len: u64,
    /// Bytes up to and including the last newline: the complete lines.
    complete: u64,
}

impl Scan {
    /// Lines, counting a last one without a newline.
    fn lines(self) -> u64 {
        self.newlines + u64::from(self.complete < self.len)
    }
}

/// Counts the newlines of a stream.
fn scan(mut reader: impl Read) -> io::Result<Scan> {
    let mut buf = vec![0; 1 << 16];
    let mut scan = Scan {
        newlines: 0,
        len: 0,
        complete: 0,
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(scan),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, b)| **b == b'\n') {
            scan.newlines += 1;
            scan.complete = scan.len + i as u64 + 1;
        }
        scan.len += n as u64;
    }
}

/// Complete lines of --out, after dropping a partial last line (a write cut by a kill).
fn complete_lines(path: &Path) -> Result<u64, CliError> {
    let what = format!("reading --out {}", path.display());
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(CliError::io(what)(e)),
    };
    let scan = scan(file).map_err(CliError::io(what))?;
    if scan.complete < scan.len {
        truncate(path, scan.complete)?;
    }
    Ok(scan.newlines)
}

/// The failures file's records: (input line, offset just past the record), in file order,
/// after dropping a partial last record.
fn failure_lines(path: &Path) -> Result<Vec<(u64, u64)>, CliError> {
    let what = format!("reading {}", path.display());
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CliError::io(what)(e)),
    };
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut offset = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(CliError::io(what.clone()))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        offset += n as u64;
        let number = serde_json::from_slice::<Value>(&line)
            .ok()
            .and_then(|record| record.get("line").and_then(Value::as_u64))
            .ok_or_else(|| {
                CliError::Data(format!(
                    "{} has a record without a line number: it was not written by kagictl \
                     rewrap; move it away",
                    path.display()
                ))
            })?;
        records.push((number, offset));
    }
    Ok(records)
}

/// Cuts a file to `len` bytes and syncs it.
fn truncate(path: &Path, len: u64) -> Result<(), CliError> {
    let what = format!("truncating {} to its complete lines", path.display());
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(CliError::io(what.clone()))?;
    file.set_len(len).map_err(CliError::io(what.clone()))?;
    file.sync_all().map_err(CliError::io(what))
}

/// The progress bar: lines of this run, with the rate and the time left, on stderr when it is
/// a terminal (and not with --json).
fn progress(remaining: u64, skipped: u64, format: Format) -> ProgressBar {
    use std::io::IsTerminal as _;
    if format != Format::Human || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{bar:40.cyan/blue} {human_pos}/{human_len} lines {per_sec} ETA {eta} {msg}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(Some(remaining), ProgressDrawTarget::stderr())
        .with_style(style);
    if skipped > 0 {
        bar.set_message(format!("({skipped} done earlier)"));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// How lines are read and what is asked for them.
struct How {
    json_lines: bool,
    /// --context.
    context: HashMap<String, String>,
    /// --to-key, or empty.
    to_key: String,
}

/// The input, line by line, from the first line still to do.
struct Lines {
    reader: BufReader<File>,
    what: String,
    how: How,
    /// The number (from 1) of the next line.
    next: u64,
}

impl Lines {
    /// Opens --in and skips the `skip` lines done earlier.
    fn open(path: &Path, skip: u64, how: How) -> Result<Self, CliError> {
        let what = format!("reading --in {}", path.display());
        let file = File::open(path).map_err(CliError::io(what.clone()))?;
        let mut lines = Self {
            reader: BufReader::with_capacity(1 << 16, file),
            what,
            how,
            next: 1,
        };
        let mut sink = Vec::new();
        while lines.next <= skip {
            sink.clear();
            if !lines.read(&mut sink)? {
                break;
            }
        }
        Ok(lines)
    }

    /// Reads one line into `buf` without its line ending; false at the end.
    fn read(&mut self, buf: &mut Vec<u8>) -> Result<bool, CliError> {
        let n = self
            .reader
            .read_until(b'\n', buf)
            .map_err(CliError::io(self.what.clone()))?;
        if n == 0 {
            return Ok(false);
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        self.next += 1;
        Ok(true)
    }

    /// The next batch: at most `size` lines and [`MAX_REQUEST_BYTES`]; `None` at the end.
    fn next_batch(&mut self, size: usize) -> Result<Option<Batch>, CliError> {
        let mut batch = Batch::default();
        let mut bytes = 0;
        let mut buf = Vec::new();
        while batch.lines.len() < size && bytes < MAX_REQUEST_BYTES {
            buf.clear();
            let number = self.next;
            if !self.read(&mut buf)? {
                break;
            }
            let line = parse(number, &buf, &self.how);
            if let Item::Send { request, .. } = &line.item {
                bytes += request_size(request);
            }
            batch.lines.push(line);
        }
        Ok((!batch.lines.is_empty()).then_some(batch))
    }
}

/// About how many bytes an item adds to a request.
fn request_size(request: &pb::ReEncryptRequest) -> usize {
    let context: usize = request
        .source_context
        .iter()
        .map(|(k, v)| k.len() + v.len() + 8)
        .sum();
    request.ciphertext.len() + request.destination_key_id.len() + 2 * context + 16
}

/// Lines read for one call.
#[derive(Default)]
struct Batch {
    lines: Vec<Line>,
}

/// One input line.
struct Line {
    /// Its number in --in, from 1.
    number: u64,
    item: Item,
}

/// A line to send, or one that cannot be.
enum Item {
    Send {
        request: pb::ReEncryptRequest,
        /// With --json-lines, the line's object, to write back with the new ciphertext.
        object: Option<Map<String, Value>>,
    },
    Bad {
        /// The failure record's fields (without "line" and "error").
        record: Map<String, Value>,
        message: String,
    },
}

/// Reads one line: a base64 ciphertext, or with --json-lines a JSON object.
fn parse(number: u64, bytes: &[u8], how: &How) -> Line {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let bad = |record: Map<String, Value>, message: String| Line {
        number,
        item: Item::Bad { record, message },
    };
    let as_input = |key: &str| Map::from_iter([(key.to_owned(), Value::from(text))]);
    let request = |ciphertext: Vec<u8>, context: HashMap<String, String>| pb::ReEncryptRequest {
        ciphertext,
        source_context: context.clone(),
        destination_key_id: how.to_key.clone(),
        destination_context: context,
    };
    if !how.json_lines {
        if text.is_empty() {
            return bad(as_input("ciphertext"), format!("line {number} is empty"));
        }
        return match BASE64.decode(text) {
            Ok(ciphertext) => Line {
                number,
                item: Item::Send {
                    request: request(ciphertext, how.context.clone()),
                    object: None,
                },
            },
            Err(e) => bad(
                as_input("ciphertext"),
                format!("line {number} is not base64 ({e}); with JSON lines, use --json-lines"),
            ),
        };
    }
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return bad(
                as_input("input"),
                format!("line {number} is not a JSON object"),
            );
        }
        Err(e) => {
            return bad(
                as_input("input"),
                format!("line {number} is not JSON ({e})"),
            );
        }
    };
    let ciphertext = match object.get("ciphertext") {
        Some(Value::String(text)) => BASE64
            .decode(text.trim())
            .map_err(|e| format!("line {number}: \"ciphertext\" is not base64 ({e})")),
        _ => Err(format!(
            "line {number} has no \"ciphertext\" string (base64)"
        )),
    };
    let context = match object.get("context") {
        None | Some(Value::Null) => Ok(how.context.clone()),
        Some(Value::Object(pairs)) => pairs
            .iter()
            .map(|(k, v)| match v {
                Value::String(v) => Ok((k.clone(), v.clone())),
                _ => Err(format!(
                    "line {number}: the value of context key {k:?} is not a string"
                )),
            })
            .collect(),
        Some(_) => Err(format!("line {number}: \"context\" is not an object")),
    };
    match (ciphertext, context) {
        (Ok(ciphertext), Ok(context)) => Line {
            number,
            item: Item::Send {
                request: request(ciphertext, context),
                object: Some(object),
            },
        },
        (Err(message), _) | (_, Err(message)) => bad(object, message),
    }
}

/// One `ReEncryptBatch` call for the lines of `batch` that can be sent (retried while kagid
/// is unavailable); one answer per such line, in order.
async fn send(kagi: &Kagi, batch: &Batch) -> Result<Vec<pb::ReEncryptResult>, CliError> {
    let items: Vec<pb::ReEncryptRequest> = batch
        .lines
        .iter()
        .filter_map(|line| match &line.item {
            Item::Send { request, .. } => Some(request.clone()),
            Item::Bad { .. } => None,
        })
        .collect();
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let sent = items.len();
    let request = pb::ReEncryptBatchRequest { items };
    let results = kagi
        .retry(|| {
            let request = request.clone();
            async move { kagi.crypto().re_encrypt_batch(request).await }
        })
        .await?
        .into_inner()
        .results;
    if results.len() != sent {
        return Err(CliError::Data(format!(
            "kagid answered {} results for {sent} ciphertexts: is it a version that has \
             ReEncryptBatch?",
            results.len()
        )));
    }
    Ok(results)
}

/// The run: where lines go, and what was done.
struct Job {
    out: File,
    out_name: String,
    /// The failures file, opened at the first failure.
    failed: Option<File>,
    failed_path: PathBuf,
    failed_total: u64,
    rewrapped: u64,
    failed_now: u64,
}

impl Job {
    /// Writes a batch's failures, synced, then its re-wrapped lines, synced: so that --out
    /// never holds a line whose batch's failures are not recorded. Returns the lines done.
    ///
    /// If every line of a job's first batch failed, and only with codes that a wrong command
    /// gives (a wrong --context, --to-key, token or endpoint, JSON lines without --json-lines),
    /// nothing is written and the run stops. Lines that fail because of their key's state (a
    /// disabled or destroyed key: `FAILED_PRECONDITION`) never stop it.
    fn write(
        &mut self,
        batch: Batch,
        answers: Vec<pb::ReEncryptResult>,
        first: bool,
    ) -> Result<u64, CliError> {
        let count = batch.lines.len() as u64;
        let mut answers = answers.into_iter();
        let mut out = Vec::new();
        let mut failures = Vec::new();
        let mut codes: BTreeMap<String, u64> = BTreeMap::new();
        let mut first_failure = None;
        for line in batch.lines {
            let (record, code, message) = match line.item {
                Item::Bad { record, message } => (record, BAD_LINE.to_owned(), message),
                Item::Send { request, object } => {
                    use pb::re_encrypt_result::Result as Answer;
                    let answer = answers.next().and_then(|a| a.result);
                    match answer {
                        Some(Answer::Ok(done)) => {
                            self.line(&mut out, object, &done.ciphertext);
                            continue;
                        }
                        Some(Answer::Error(e)) => {
                            let record = object.unwrap_or_else(|| {
                                Map::from_iter([(
                                    "ciphertext".to_owned(),
                                    Value::from(BASE64.encode(&request.ciphertext)),
                                )])
                            });
                            (record, e.code, e.message)
                        }
                        None => (
                            Map::new(),
                            "UNKNOWN".to_owned(),
                            "kagid's answer had neither a ciphertext nor an error".to_owned(),
                        ),
                    }
                }
            };
            *codes.entry(code.clone()).or_default() += 1;
            first_failure.get_or_insert_with(|| format!("line {}: {code}: {message}", line.number));
            let mut record = record;
            record.insert("line".into(), Value::from(line.number));
            record.insert("error".into(), json!({ "code": code, "message": message }));
            let mut text = Value::Object(record).to_string();
            text.push('\n');
            failures.push(text);
        }
        let failed = failures.len() as u64;
        let command_codes = ["INVALID_ARGUMENT", "PERMISSION_DENIED", "NOT_FOUND"];
        if first && failed == count && codes.keys().all(|c| command_codes.contains(&c.as_str())) {
            return Err(CliError::Data(format!(
                "every line of the first batch failed ({}), the first with {}; nothing was \
                 written. Check --context, --to-key, --json-lines and the token",
                codes
                    .iter()
                    .map(|(code, n)| format!("{code} x{n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                first_failure.unwrap_or_default()
            )));
        }
        if !failures.is_empty() {
            let file = match &mut self.failed {
                Some(file) => file,
                None => self.failed.insert(append(&self.failed_path)?),
            };
            let what = format!("writing {}", self.failed_path.display());
            file.write_all(failures.concat().as_bytes())
                .and_then(|()| file.sync_data())
                .map_err(CliError::io(what))?;
        }
        let what = format!("writing --out {}", self.out_name);
        self.out
            .write_all(&out)
            .and_then(|()| self.out.sync_data())
            .map_err(CliError::io(what))?;
        self.rewrapped += count - failed;
        self.failed_now += failed;
        self.failed_total += failed;
        Ok(count)
    }

    /// Appends one re-wrapped line: the base64 ciphertext, or the line's object with it.
    fn line(&self, out: &mut Vec<u8>, object: Option<Map<String, Value>>, ciphertext: &[u8]) {
        let encoded = BASE64.encode(ciphertext);
        match object {
            None => out.extend_from_slice(encoded.as_bytes()),
            Some(mut object) => {
                object.insert("ciphertext".into(), Value::from(encoded));
                out.extend_from_slice(Value::Object(object).to_string().as_bytes());
            }
        }
        out.push(b'\n');
    }

    /// Syncs both files a last time.
    fn close(&mut self) -> Result<(), CliError> {
        let what = format!("writing --out {}", self.out_name);
        self.out.sync_all().map_err(CliError::io(what))?;
        if let Some(file) = &self.failed {
            let what = format!("writing {}", self.failed_path.display());
            file.sync_all().map_err(CliError::io(what))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str) -> u64 {
        scan(text.as_bytes()).unwrap().lines()
    }

    /// Files of an interrupted job: --in with `lines` lines, --out and OUT.failed as given.
    fn job(lines: u64, out: &str, failed: &[u64]) -> (tempfile::TempDir, [PathBuf; 3]) {
        let dir = tempfile::tempdir().unwrap();
        let paths = ["in", "out", "out.failed"].map(|name| dir.path().join(name));
        let input: String = (1..=lines).map(|n| format!("line-{n}\n")).collect();
        std::fs::write(&paths[0], input).unwrap();
        std::fs::write(&paths[1], out).unwrap();
        if !failed.is_empty() {
            let records: String = failed
                .iter()
                .map(|n| format!("{{\"line\":{n},\"error\":{{}}}}\n"))
                .collect();
            std::fs::write(&paths[2], records + "{\"line\":").unwrap();
        }
        (dir, paths)
    }

    #[test]
    fn a_resume_skips_what_out_and_the_failures_account_for() {
        // Lines 1-4 done (2 and 4 failed), then lines 5-8: 6 failed and was recorded, but the
        // kill came while --out was written (half of line 5's output).
        let (_dir, [input, out, failed]) = job(8, "a\nc\nhalf-of-e", &[2, 4, 6]);
        let (total, resume) = super::resume(&input, &out, &failed).unwrap();
        assert_eq!(total, 8);
        assert_eq!(
            resume,
            Resume {
                first_line: 5,
                failed_before: 2
            }
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "a\nc\n");
        let kept = std::fs::read_to_string(&failed).unwrap();
        assert_eq!(kept.lines().count(), 2, "{kept}");
        assert!(!kept.contains("\"line\":6"), "{kept}");

        // A failure recorded right after the last line in --out is kept: it was that line's
        // batch's, or its own batch failed whole before --out was written.
        let (_dir, [input, out, failed]) = job(8, "a\nc\n", &[2, 4, 5, 7]);
        let (_, resume) = super::resume(&input, &out, &failed).unwrap();
        assert_eq!(
            resume,
            Resume {
                first_line: 6,
                failed_before: 3
            }
        );

        // Nothing to do: every line is accounted for.
        let (_dir, [input, out, failed]) = job(3, "a\nb\n", &[3]);
        let (_, resume) = super::resume(&input, &out, &failed).unwrap();
        assert_eq!(resume.first_line, 4);

        // No failures left before the resume point: the file goes.
        let (_dir, [input, out, failed]) = job(3, "a\n", &[3]);
        let (_, resume) = super::resume(&input, &out, &failed).unwrap();
        assert_eq!(resume.first_line, 2);
        assert!(!failed.exists());

        // An --out longer than --in is someone else's.
        let (_dir, [input, out, failed]) = job(2, "a\nb\nc\n", &[]);
        assert!(super::resume(&input, &out, &failed).is_err());
    }

    #[test]
    fn lines_are_counted_with_or_without_a_final_newline() {
        assert_eq!(lines_of(""), 0);
        assert_eq!(lines_of("a"), 1);
        assert_eq!(lines_of("a\n"), 1);
        assert_eq!(lines_of("a\nb"), 2);
        assert_eq!(lines_of("a\nb\n"), 2);
        assert_eq!(lines_of("\n\n"), 2);
    }
}
