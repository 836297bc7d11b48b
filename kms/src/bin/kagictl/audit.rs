//! `kagictl audit query|verify|export`: reading and checking the audit trail.
//!
//! - `query` lists records matching filters (Audit.Query), as a table or as the JSON lines
//!   kagid sends;
//! - `verify` has kagid check its store (Audit.Verify), or, with `--file`, checks a JSONL copy
//!   or an export here with [`kagi_kms::audit::verify`], then compares the file's chains with
//!   kagid's latest checkpoints to catch a copy whose newest records were cut off. It works
//!   offline too (signatures are then checked only with `--public-key`);
//! - `export` writes a tenant's records with their chain proof (Audit.Export) to a JSONL file,
//!   atomically (see [`crate::files`]), and verifies the file it wrote.
//!
//! A failed verification prints its report and exits with 1.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use kagi_kms::audit::record::Line;
use kagi_kms::audit::verify::{Finding, NodeSummary, Options, Report, verify_jsonl};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;

use crate::connect::Global;
use crate::files::{Output, io_failure, is_stdio};
use crate::output::{self, CliError, Format, Table};

/// The most records per Query page that kagid serves.
const MAX_LIMIT: u32 = 10_000;

/// Outcomes that name no gRPC code.
const OUTCOME_WORDS: [&str; 2] = ["OK", "FAILED"];

/// gRPC status code names, as records spell them.
const CODES: [&str; 16] = [
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Audit commands (auditors only).
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List the records that match filters, oldest first.
    Query(QueryArgs),
    /// Verify the trail in kagid's store, or (--file) a JSONL copy or an export, here.
    Verify(VerifyArgs),
    /// Write a tenant's records with their chain proof to a JSONL file, and verify it.
    Export(ExportArgs),
}

/// A time range, in Unix milliseconds (0 = unbounded).
#[derive(Debug, Args)]
pub struct Range {
    /// From this time, inclusive: RFC 3339 (2026-04-01T09:30:00Z, 2026-04-01T18:30:00+09:00,
    /// 2026-04-01) or Unix milliseconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    from: Option<i64>,
    /// Up to this time, exclusive (same forms as --from).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to: Option<i64>,
}

impl Range {
    /// `(from_ms, to_ms)` for a request; a usage error if the range is empty.
    fn to_ms(&self) -> Result<(i64, i64), CliError> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(CliError::Usage(format!(
                "--from ({}) must be before --to ({})",
                time_text(from),
                time_text(to)
            )));
        }
        Ok((self.from.unwrap_or(0), self.to.unwrap_or(0)))
    }
}

/// Options of `audit query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The time range.
    #[command(flatten)]
    range: Range,
    /// Only records of this tenant (id).
    #[arg(long, value_name = "ID")]
    tenant: Option<String>,
    /// Only records of this principal (id).
    #[arg(long, value_name = "ID")]
    principal: Option<String>,
    /// Only records of this key (id).
    #[arg(long, value_name = "KEY_ID")]
    key: Option<String>,
    /// Only this operation: the RPC's name (Encrypt, Decrypt, Unseal, …).
    #[arg(long, value_name = "OP")]
    operation: Option<String>,
    /// OK, FAILED (any failure), or a gRPC code (PERMISSION_DENIED, PermissionDenied,
    /// permission-denied).
    #[arg(long, value_name = "OK|FAILED|CODE", value_parser = parse_outcome)]
    outcome: Option<String>,
    /// Records per page, 1–10000 [default: kagid's, 1000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT)))]
    limit: Option<u32>,
    /// Follow the pages until every matching record is listed (without it, one page).
    #[arg(long)]
    all: bool,
}

/// Options of `audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A JSONL copy (kagid's audit file sink) or an export, verified here instead of kagid's
    /// store.
    #[arg(long, value_name = "JSONL")]
    file: Option<PathBuf>,
    /// The instance's Ed25519 audit public key (64 hex digits) that must have signed the file's
    /// checkpoints [default: the key kagid reports; without one, signatures are not checked].
    #[arg(long, value_name = "HEX", requires = "file", value_parser = parse_public_key)]
    public_key: Option<VerifyingKey>,
    /// The file holds stretches of the chains (an export): they may start anywhere, and need
    /// not reach kagid's latest checkpoints.
    #[arg(long, requires = "file")]
    partial: bool,
    /// Do not ask kagid for its public key and latest checkpoints.
    #[arg(long, requires = "file")]
    offline: bool,
}

impl VerifyArgs {
    /// Whether a file is verified here (and kagid is optional).
    pub fn is_local(&self) -> bool {
        self.file.is_some()
    }
}

/// Options of `audit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Tenant id or name.
    #[arg(long)]
    tenant: String,
    /// The time range.
    #[command(flatten)]
    range: Range,
    /// The JSONL file to write (replaced if it exists; it appears only when complete).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The Ed25519 audit public key (hex) that must have signed the export's checkpoints
    /// [default: the key the checkpoints name, shown to be compared].
    #[arg(long, value_name = "HEX", value_parser = parse_public_key)]
    public_key: Option<VerifyingKey>,
}

/// Runs an audit command with a connection. (`verify --file` goes to [`verify_file`] before
/// connecting, since kagid is optional for it.)
pub async fn run(command: AuditCommand, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    match command {
        AuditCommand::Query(args) => query(args, kagi, format).await,
        AuditCommand::Verify(args) if args.is_local() => {
            verify_local(args, Some(kagi.clone()), Vec::new(), format).await
        }
        AuditCommand::Verify(_) => verify_store(kagi, format).await,
        AuditCommand::Export(args) => export(args, kagi, format).await,
    }
}

/// `audit query`: one page, or with --all every page; a table, or the JSON lines as received.
async fn query(args: QueryArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let (from_ms, to_ms) = args.range.to_ms()?;
    let mut request = pb::QueryRequest {
        from_ms,
        to_ms,
        tenant: args.tenant.unwrap_or_default(),
        principal: args.principal.unwrap_or_default(),
        key_id: args.key.unwrap_or_default(),
        operation: args.operation.unwrap_or_default(),
        outcome: args.outcome.unwrap_or_default(),
        limit: args.limit.unwrap_or(0),
        page_token: String::new(),
    };
    let mut client = kagi.audit();
    let mut table = records_table();
    loop {
        let mut stream = client.query(request.clone()).await?.into_inner();
        let mut next = String::new();
        while let Some(chunk) = stream.message().await? {
            match format {
                // Streamed as they come: --all may be long.
                Format::Json => output::print(&jsonl_text(&chunk.lines)?)?,
                Format::Human => {
                    for line in &chunk.lines {
                        if let Some(row) = record_row(&parse_line(line)?) {
                            table.row(row);
                        }
                    }
                }
            }
            if !chunk.next_page_token.is_empty() {
                next = chunk.next_page_token;
            }
        }
        if next.is_empty() {
            break;
        }
        if !args.all {
            warn("more records match: add --all to list them all, or narrow the filters");
            break;
        }
        request.page_token = next;
    }
    match format {
        Format::Json => Ok(()),
        Format::Human => output::print(&table.render()),
    }
}

/// The lines as JSONL text, each checked to be one line of JSON.
fn jsonl_text(lines: &[String]) -> Result<String, CliError> {
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        if line.contains('\n') {
            return Err(CliError::Data(
                "kagid sent an audit line that spans several lines".into(),
            ));
        }
        text.push_str(line);
        text.push('\n');
    }
    Ok(text)
}

/// A line from kagid, parsed.
fn parse_line(line: &str) -> Result<Line, CliError> {
    serde_json::from_str(line).map_err(|err| {
        CliError::Data(format!(
            "kagid sent a line that is not an audit record or checkpoint: {err}"
        ))
    })
}

/// The table of `audit query`.
fn records_table() -> Table {
    Table::new(&[
        "TIME",
        "NODE",
        "SEQ",
        "OPERATION",
        "OUTCOME",
        "PRINCIPAL",
        "TENANT",
        "KEY",
        "VERSION",
        "PEER",
    ])
}

/// A record's row (`None` for a checkpoint). A redacted record shows its place only.
fn record_row(line: &Line) -> Option<Vec<String>> {
    let Line::Record {
        node, seq, event, ..
    } = line
    else {
        return None;
    };
    let dash = || "-".to_owned();
    let text = |value: &Option<String>| value.clone().unwrap_or_else(dash);
    Some(match event {
        Some(e) => vec![
            time_text(e.time_ms),
            node.clone(),
            seq.to_string(),
            e.operation.clone(),
            e.outcome.clone(),
            text(&e.principal),
            text(&e.tenant),
            text(&e.key_id),
            e.key_version.map_or_else(dash, |v| v.to_string()),
            text(&e.peer),
        ],
        None => {
            let mut row = vec![dash(), node.clone(), seq.to_string(), "(redacted)".into()];
            row.resize(10, dash());
            row
        }
    })
}

/// A verification as printed: kagid's (of its store) or one made here (of a file).
#[derive(Debug, Serialize)]
struct ReportView {
    /// Whether no problem was found.
    ok: bool,
    /// The file verified; null for kagid's store.
    file: Option<String>,
    /// The first problem.
    first_bad: Option<FindingView>,
    /// How many problems were found (null: kagid does not say).
    problems: Option<u64>,
    /// Records read.
    records: u64,
    /// Checkpoints read.
    checkpoints: u64,
    /// Checkpoints that could not be compared with a record (null: kagid does not say).
    checkpoints_not_compared: Option<u64>,
    /// Records without a MAC, written while sealed (null: kagid does not say).
    records_without_mac: Option<u64>,
    /// Whether checkpoint signatures were checked.
    signatures_checked: bool,
    /// The public key they were checked with, hex.
    public_key: Option<String>,
    /// Whether record MACs were checked (only kagid can, while unsealed).
    macs_checked: bool,
    /// Whether the file was compared with kagid's chain heads (null for kagid's store).
    compared_with_kagid: Option<bool>,
    /// Each node's chain.
    heads: Vec<HeadView>,
    /// What was not checked, and why.
    warnings: Vec<String>,
}

/// Where a problem is.
#[derive(Debug, Clone, Serialize)]
struct FindingView {
    /// Node.
    node: String,
    /// Record.
    seq: u64,
    /// What is wrong.
    problem: String,
}

/// One node's chain.
#[derive(Debug, Serialize)]
struct HeadView {
    /// Node.
    node: String,
    /// First record.
    first_seq: u64,
    /// Last record.
    last_seq: u64,
    /// The last record's hash, hex.
    last_hash: String,
    /// The latest checkpoint that matched (null if none).
    last_checkpoint_seq: Option<u64>,
}

impl From<&Finding> for FindingView {
    fn from(f: &Finding) -> Self {
        Self {
            node: f.node.clone(),
            seq: f.seq,
            problem: f.problem.clone(),
        }
    }
}

impl From<&NodeSummary> for HeadView {
    fn from(n: &NodeSummary) -> Self {
        Self {
            node: n.node.clone(),
            first_seq: n.first_seq,
            last_seq: n.last_seq,
            last_hash: hex::encode(n.last_hash),
            last_checkpoint_seq: n.last_checkpoint_seq,
        }
    }
}

impl ReportView {
    /// kagid's verification of its store.
    fn from_store(r: &pb::VerifyResponse) -> Self {
        let mut warnings = Vec::new();
        if r.public_key.is_empty() {
            warnings.push("kagid has no audit public key (sealed): signatures not checked".into());
        }
        if !r.macs_checked {
            warnings.push("kagid is sealed: record MACs not checked".into());
        }
        Self {
            ok: r.ok,
            file: None,
            first_bad: (!r.ok).then(|| FindingView {
                node: r.first_bad_node.clone(),
                seq: r.first_bad_seq,
                problem: r.problem.clone(),
            }),
            problems: None,
            records: r.records,
            checkpoints: r.checkpoints,
            checkpoints_not_compared: None,
            records_without_mac: None,
            signatures_checked: !r.public_key.is_empty(),
            public_key: (!r.public_key.is_empty()).then(|| r.public_key.clone()),
            macs_checked: r.macs_checked,
            compared_with_kagid: None,
            heads: r
                .heads
                .iter()
                .map(|h| HeadView {
                    node: h.node.clone(),
                    first_seq: h.first_seq,
                    last_seq: h.last_seq,
                    last_hash: h.last_hash.clone(),
                    last_checkpoint_seq: (h.last_checkpoint_seq != 0)
                        .then_some(h.last_checkpoint_seq),
                })
                .collect(),
            warnings,
        }
    }

    /// A verification made here, with the findings of the comparison with kagid appended.
    fn from_local(
        file: &Path,
        report: &Report,
        public_key: Option<&VerifyingKey>,
        compared: Vec<Finding>,
        compared_with_kagid: bool,
        mut warnings: Vec<String>,
    ) -> Self {
        let first_bad = report.first_bad.as_ref().or(compared.first());
        if !report.signatures_checked {
            warnings.push(
                "no public key: checkpoint signatures not checked (anyone could have made them); \
                 give --public-key"
                    .into(),
            );
        }
        for node in &report.nodes {
            let anchored = node.last_checkpoint_seq.unwrap_or(0);
            if anchored < node.last_seq {
                warnings.push(format!(
                    "records {}..{} of node {} come after its last checkpoint in the file: no \
                     signature vouches for them",
                    anchored.max(node.first_seq.saturating_sub(1)) + 1,
                    node.last_seq,
                    node.node
                ));
            }
        }
        if report.checkpoints_not_compared > 0 {
            warnings.push(format!(
                "{} checkpoints name records that are not in the file, or too far back in it: \
                 they were not compared",
                report.checkpoints_not_compared
            ));
        }
        Self {
            ok: first_bad.is_none(),
            file: Some(file.display().to_string()),
            first_bad: first_bad.map(FindingView::from),
            problems: Some(report.problems + compared.len() as u64),
            records: report.records,
            checkpoints: report.checkpoints,
            checkpoints_not_compared: Some(report.checkpoints_not_compared),
            records_without_mac: Some(report.records_without_mac),
            signatures_checked: report.signatures_checked,
            public_key: public_key.map(|k| hex::encode(k.to_bytes())),
            macs_checked: report.macs_checked,
            compared_with_kagid: Some(compared_with_kagid),
            heads: report.nodes.iter().map(HeadView::from).collect(),
            warnings,
        }
    }

    /// The text report.
    fn render(&self) -> String {
        let result = match (&self.first_bad, self.problems) {
            (None, _) => "ok".to_owned(),
            (Some(_), Some(n)) if n > 1 => format!("FAILED ({n} problems)"),
            (Some(_), _) => "FAILED".to_owned(),
        };
        let mut pairs = vec![("result", result)];
        if let Some(bad) = &self.first_bad {
            pairs.push((
                "first bad",
                format!("node {}, record {}: {}", bad.node, bad.seq, bad.problem),
            ));
        }
        if let Some(file) = &self.file {
            pairs.push(("file", file.clone()));
        }
        let mut records = self.records.to_string();
        if let Some(n) = self.records_without_mac.filter(|&n| n > 0) {
            records.push_str(&format!(" ({n} without MAC, written while sealed)"));
        }
        pairs.push(("records", records));
        let mut checkpoints = self.checkpoints.to_string();
        if let Some(n) = self.checkpoints_not_compared.filter(|&n| n > 0) {
            checkpoints.push_str(&format!(" ({n} not compared)"));
        }
        pairs.push(("checkpoints", checkpoints));
        pairs.push((
            "signatures",
            match &self.public_key {
                Some(key) if self.signatures_checked => format!("checked with {key}"),
                _ => "not checked".into(),
            },
        ));
        pairs.push((
            "MACs",
            if self.macs_checked {
                "checked".into()
            } else if self.file.is_some() {
                "not checked (only kagid has the MAC key: kagictl audit verify)".into()
            } else {
                "not checked".into()
            },
        ));
        if let Some(compared) = self.compared_with_kagid {
            let text = if compared { "yes" } else { "no" };
            pairs.push(("compared with kagid", text.into()));
        }
        let mut text = output::fields(&pairs);
        if !self.heads.is_empty() {
            text.push_str("chains:\n");
            let mut table = Table::new(&["NODE", "FIRST", "LAST", "LAST CHECKPOINT", "LAST HASH"]);
            for h in &self.heads {
                table.row(vec![
                    h.node.clone(),
                    h.first_seq.to_string(),
                    h.last_seq.to_string(),
                    h.last_checkpoint_seq
                        .map_or_else(|| "-".into(), |s| s.to_string()),
                    h.last_hash.clone(),
                ]);
            }
            text.extend(table.render().lines().map(|l| format!("  {l}\n")));
        }
        text
    }

    /// Prints the report (warnings go to stderr), and fails when a problem was found.
    fn print(&self, format: Format, what: &str) -> Result<(), CliError> {
        for warning in &self.warnings {
            warn(warning);
        }
        match format {
            Format::Json => output::json(self)?,
            Format::Human => output::print(&self.render())?,
        }
        self.outcome(what)
    }

    /// `Ok` when no problem was found, else the error that exits with 1.
    fn outcome(&self, what: &str) -> Result<(), CliError> {
        match &self.first_bad {
            None => Ok(()),
            Some(bad) => Err(CliError::Data(format!(
                "{what} failed verification: node {}, record {}: {}",
                bad.node, bad.seq, bad.problem
            ))),
        }
    }
}

/// `audit verify`: kagid verifies its store.
async fn verify_store(kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let response = kagi
        .audit()
        .verify(pb::VerifyRequest {})
        .await?
        .into_inner();
    ReportView::from_store(&response).print(format, "the audit trail")
}

/// `audit verify --file F`: connects to kagid if it can (with a token if one is given), and
/// verifies the file here; without kagid, with a warning.
pub async fn verify_file(args: VerifyArgs, global: Global, format: Format) -> Result<(), CliError> {
    let mut warnings = Vec::new();
    let kagi = if args.offline {
        None
    } else {
        match global.connect_token_optional().await {
            Ok(kagi) => Some(kagi),
            // Options that make no sense are still an error.
            Err(err @ CliError::Usage(_)) => return Err(err),
            Err(err) => {
                warnings.push(format!(
                    "cannot reach kagid ({}): verifying offline",
                    describe(&err)
                ));
                None
            }
        }
    };
    verify_local(args, kagi, warnings, format).await
}

/// Verifies `--file` here, with kagid's public key and chain heads if `kagi` answers;
/// `warnings` holds what is already known not to be checked.
async fn verify_local(
    args: VerifyArgs,
    kagi: Option<Kagi>,
    mut warnings: Vec<String>,
    format: Format,
) -> Result<(), CliError> {
    let path = args.file.clone().expect("verify_local runs with --file");
    let server = match kagi {
        Some(kagi) => match kagi.audit().verify(pb::VerifyRequest {}).await {
            Ok(response) => Some(response.into_inner()),
            Err(status) => {
                warnings.push(format!(
                    "kagid did not answer Verify ({}): verifying offline",
                    describe(&CliError::Status(status))
                ));
                None
            }
        },
        None => None,
    };
    let mut public_key = args.public_key;
    if let Some(server) = &server {
        if !server.ok {
            warnings.push(format!(
                "kagid's own trail fails verification: node {}, record {}: {} (kagictl audit \
                 verify)",
                server.first_bad_node, server.first_bad_seq, server.problem
            ));
        }
        match (&public_key, parse_public_key(&server.public_key)) {
            (None, Ok(key)) => public_key = Some(key),
            (Some(given), Ok(key)) if *given != key => warnings.push(format!(
                "--public-key is not kagid's audit public key ({})",
                server.public_key
            )),
            _ => {}
        }
    }
    let options = Options {
        public_key,
        mac_key: None,
        partial_start: args.partial,
    };
    let report = verify_path(&path, options).await?;
    let compared = match &server {
        Some(server) => compare_with_kagid(&report.nodes, &server.heads, args.partial),
        None => Vec::new(),
    };
    let view = ReportView::from_local(
        &path,
        &report,
        public_key.as_ref(),
        compared,
        server.is_some(),
        warnings,
    );
    view.print(format, &path.display().to_string())
}

/// Verifies a JSONL file on tokio's blocking pool: it may be large.
async fn verify_path(path: &Path, options: Options) -> Result<Report, CliError> {
    let what = format!("reading {}", path.display());
    let file = std::fs::File::open(path).map_err(CliError::io(what))?;
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || {
        verify_jsonl(BufReader::with_capacity(1 << 16, file), options)
            .map_err(|err| CliError::Data(format!("{shown}: {err}")))
    })
    .await
    .expect("verifying does not panic")
}

/// Problems found by comparing the file's chains with kagid's: a file chain that ends before
/// kagid's latest checkpoint of its node was cut off (unless `partial`: an export ends where
/// its range does); a kagid chain that ends before a checkpoint in the file lost records; the same last
/// record with another hash differs. Nodes of kagid that the file does not have are not
/// compared: each node ships its own copy.
fn compare_with_kagid(
    nodes: &[NodeSummary],
    heads: &[pb::ChainHead],
    partial: bool,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for node in nodes {
        let name = &node.node;
        let finding = |seq: u64, problem: String| Finding {
            node: name.clone(),
            seq,
            problem,
        };
        let Some(head) = heads.iter().find(|h| h.node == *name) else {
            findings.push(finding(
                node.first_seq,
                format!(
                    "kagid has no chain of node {name}, which the file has up to record {}: \
                     kagid's store lost it, or the file comes from another instance",
                    node.last_seq
                ),
            ));
            continue;
        };
        let last = node.last_seq;
        if !partial && head.last_checkpoint_seq > last {
            findings.push(finding(
                last + 1,
                format!(
                    "the file's chain of node {name} ends at {last}, but kagid has checkpoint {}: \
                     {} missing from the file (truncated, or copied before that checkpoint)",
                    head.last_checkpoint_seq,
                    are(last + 1, head.last_checkpoint_seq)
                ),
            ));
        } else if let Some(signed) = node.last_checkpoint_seq.filter(|c| *c > head.last_seq) {
            // Records past kagid's head may simply be newer than its answer; a checkpoint past
            // it proves kagid had them.
            findings.push(finding(
                head.last_seq + 1,
                format!(
                    "kagid's chain of node {name} ends at {}, but the file has a checkpoint \
                     signed at record {signed}: {} missing from kagid's store (truncated)",
                    head.last_seq,
                    are(head.last_seq + 1, signed)
                ),
            ));
        } else if head.last_seq == last && head.last_hash != hex::encode(node.last_hash) {
            findings.push(finding(
                last,
                format!("record {last} of node {name} differs between the file and kagid's store"),
            ));
        }
    }
    findings.sort_by(|a, b| (a.seq, &a.node).cmp(&(b.seq, &b.node)));
    findings
}

/// "record N is" or "records A..B are".
fn are(from: u64, to: u64) -> String {
    if from == to {
        format!("record {from} is")
    } else {
        format!("records {from}..{to} are")
    }
}

/// What `audit export` prints.
#[derive(Debug, Serialize)]
struct ExportView {
    /// The file written.
    file: String,
    /// Lines written.
    lines: u64,
    /// Records of them whose event is shown (the tenant's).
    records_shown: u64,
    /// Records of them redacted to their hashes (other tenants', same stretch of chain).
    records_redacted: u64,
    /// Where the public key came from: `option` (--public-key) or `export` (the key named in
    /// the export's checkpoints); null without checkpoints.
    public_key_source: Option<&'static str>,
    /// The verification of the file written.
    verification: ReportView,
}

/// `audit export`: streams Export to --out (atomically), then verifies the file.
async fn export(args: ExportArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let path = args.out;
    if is_stdio(&path) || std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
        return Err(CliError::Usage(format!(
            "--out {} is not a regular file: an export is written to a file, then verified",
            path.display()
        )));
    }
    let (from_ms, to_ms) = args.range.to_ms()?;
    let request = pb::ExportRequest {
        tenant: args.tenant,
        from_ms,
        to_ms,
    };
    let mut out = Output::create(&path)?;
    let counts = interruptible(async {
        let mut counts = ExportCounts::default();
        let mut stream = kagi.audit().export(request).await?.into_inner();
        while let Some(chunk) = stream.message().await? {
            for line in &chunk.lines {
                counts.add(&parse_line(line)?);
            }
            let text = jsonl_text(&chunk.lines)?;
            out.writer
                .write_all(text.as_bytes())
                .await
                .map_err(io_failure)?;
        }
        Ok::<_, CliError>(counts)
    })
    .await??;
    out.commit().await?;
    let (public_key, source) = match (args.public_key, &counts.signer) {
        (Some(key), _) => (Some(key), Some("option")),
        (None, Some(hex_key)) => {
            let key = parse_public_key(hex_key).map_err(|err| {
                CliError::Data(format!(
                    "the export's checkpoints name an invalid key: {err}"
                ))
            })?;
            (Some(key), Some("export"))
        }
        (None, None) => (None, None),
    };
    let options = Options {
        public_key,
        mac_key: None,
        partial_start: true,
    };
    let report = verify_path(&path, options).await?;
    let mut warnings = Vec::new();
    if source == Some("export") {
        warnings.push(
            "signatures checked with the key the export's checkpoints name: compare it with the \
             instance's audit public key, or give --public-key"
                .into(),
        );
    }
    let verification = ReportView::from_local(
        &path,
        &report,
        public_key.as_ref(),
        Vec::new(),
        false,
        warnings,
    );
    let view = ExportView {
        file: path.display().to_string(),
        lines: counts.lines,
        records_shown: counts.shown,
        records_redacted: counts.redacted,
        public_key_source: source,
        verification,
    };
    for warning in &view.verification.warnings {
        warn(warning);
    }
    match format {
        Format::Json => output::json(&view)?,
        Format::Human => output::print(&format!(
            "wrote {} lines to {}: {} records of the tenant, {} redacted records of the same \
             stretch of chain, {} checkpoints\n{}",
            view.lines,
            view.file,
            view.records_shown,
            view.records_redacted,
            view.verification.checkpoints,
            view.verification.render()
        ))?,
    }
    view.verification
        .outcome(&format!("the export in {}", view.file))
}

/// What went into an export file.
#[derive(Debug, Default)]
struct ExportCounts {
    /// Lines.
    lines: u64,
    /// Records with their event.
    shown: u64,
    /// Redacted records.
    redacted: u64,
    /// The public key named by the first checkpoint, hex.
    signer: Option<String>,
}

impl ExportCounts {
    /// Counts one line.
    fn add(&mut self, line: &Line) {
        self.lines += 1;
        match line {
            Line::Record { event: Some(_), .. } => self.shown += 1,
            Line::Record { event: None, .. } => self.redacted += 1,
            Line::Checkpoint(c) => {
                self.signer.get_or_insert_with(|| c.public_key.clone());
            }
        }
    }
}

/// Runs `work` to its end, or stops it on Ctrl-C (dropping the partial --out).
async fn interruptible<T>(work: impl Future<Output = T>) -> Result<T, CliError> {
    tokio::select! {
        done = work => Ok(done),
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
    }
}

/// Prints `kagictl: warning: …` on stderr.
fn warn(message: &str) {
    eprintln!("kagictl: warning: {message}");
}

/// A short description of a failure, for a warning.
fn describe(err: &CliError) -> String {
    match err {
        CliError::Status(status) => format!("{:?}: {}", status.code(), status.message()),
        CliError::Connect(err) => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                let part = cause.to_string();
                if !text.ends_with(&part) {
                    text.push_str(": ");
                    text.push_str(&part);
                }
                source = cause.source();
            }
            text
        }
        CliError::Io { what, source } => format!("{what}: {source}"),
        CliError::Usage(message) | CliError::Data(message) => message.clone(),
        CliError::Interrupted => "interrupted".into(),
    }
}

/// An Ed25519 public key from 64 hex digits.
fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "expected 64 hex digits (an Ed25519 public key)".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key".to_owned())
}

/// `OK`, `FAILED`, or a gRPC code name in any of its spellings, as records spell it
/// (`PermissionDenied`, `permission-denied` → `PERMISSION_DENIED`).
fn parse_outcome(text: &str) -> Result<String, String> {
    let mut word = String::with_capacity(text.len() + 4);
    let mut previous_lower = false;
    for c in text.trim().chars() {
        if c.is_ascii_uppercase() && previous_lower {
            word.push('_');
        }
        previous_lower = c.is_ascii_lowercase();
        word.push(if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        });
    }
    if OUTCOME_WORDS.contains(&word.as_str()) || CODES.contains(&word.as_str()) {
        Ok(word)
    } else {
        Err("expected OK, FAILED or a gRPC code such as PERMISSION_DENIED".into())
    }
}

/// Unix milliseconds from Unix milliseconds or RFC 3339 (a date alone is its midnight UTC).
fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| "too large for Unix milliseconds".into());
    }
    parse_rfc3339(text).ok_or_else(|| {
        "expected RFC 3339 (2026-04-01T09:30:00Z, 2026-04-01T18:30:00+09:00, 2026-04-01) or Unix \
         milliseconds"
            .into()
    })
}

/// `YYYY-MM-DD[(T| )HH:MM:SS[.fraction](Z|±HH:MM)]` as Unix milliseconds.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter().all(u8::is_ascii_digit).then_some(())?;
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0..4)?;
    let month = num(5..7)?;
    let day = num(8..10)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date_ms = days_from_civil(year, month, day) * 86_400_000;
    if b.len() == 10 {
        return Some(date_ms);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (k, c) in b[i + 1..i + 1 + digits.min(3)].iter().enumerate() {
            millis += i64::from(c - b'0') * 10_i64.pow(2 - k as u32);
        }
        i += 1 + digits;
    }
    let offset_minutes = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    Some(date_ms + ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000 + millis)
}

/// Days in a month of the proleptic Gregorian calendar.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date, after Howard Hinnant's `days_from_civil`
/// (<https://howardhinnant.github.io/date_algorithms.html>), the inverse of the calendar
/// arithmetic behind [`output::rfc3339`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`2026-04-01T09:30:00.123Z`).
fn time_text(ms: i64) -> String {
    let seconds = output::rfc3339(ms.div_euclid(1000));
    format!(
        "{}.{:03}Z",
        seconds.trim_end_matches('Z'),
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use kagi_kms::audit::record::{Event, GENESIS, Record};

    use super::*;

    #[test]
    fn times_parse_in_every_form() {
        let t = 1_775_035_800_000;
        assert_eq!(parse_time("1775035800000"), Ok(t));
        assert_eq!(parse_time("2026-04-01T09:30:00Z"), Ok(t));
        assert_eq!(parse_time("2026-04-01t09:30:00z"), Ok(t));
        assert_eq!(parse_time("2026-04-01 09:30:00Z"), Ok(t));
        assert_eq!(parse_time("2026-04-01T18:30:00+09:00"), Ok(t));
        assert_eq!(parse_time("2026-04-01T05:00:00-04:30"), Ok(t));
        assert_eq!(parse_time("2026-04-01T09:30:00.5Z"), Ok(t + 500));
        assert_eq!(parse_time("2026-04-01T09:30:00.123456Z"), Ok(t + 123));
        assert_eq!(parse_time("2026-04-01"), Ok(t - 34_200_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2000-02-29"), Ok(951_782_400_000));
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), Ok(-1000));
        for bad in [
            "",
            "yesterday",
            "2026-02-29",
            "2026-13-01",
            "2026-04-01T24:00:00Z",
            "2026-04-01T09:30:00",
            "2026-04-01T09:30:00.Z",
            "2026-04-01T09:30Z",
            "2026-04-01T09:30:00+0900",
            "-5",
            "99999999999999999999",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
        assert_eq!(time_text(t + 7), "2026-04-01T09:30:00.007Z");
        assert_eq!(time_text(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn outcomes_accept_every_spelling() {
        assert_eq!(parse_outcome("ok").unwrap(), "OK");
        assert_eq!(parse_outcome("failed").unwrap(), "FAILED");
        for spelling in ["PERMISSION_DENIED", "PermissionDenied", "permission-denied"] {
            assert_eq!(parse_outcome(spelling).unwrap(), "PERMISSION_DENIED");
        }
        assert_eq!(parse_outcome("Unauthenticated").unwrap(), "UNAUTHENTICATED");
        assert!(parse_outcome("denied").is_err());
    }

    #[test]
    fn public_keys_are_64_hex_digits() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key();
        assert_eq!(parse_public_key(&hex::encode(key.to_bytes())), Ok(key));
        assert!(parse_public_key("abcd").is_err());
        assert!(parse_public_key(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn ranges_must_not_be_empty() {
        let range = Range {
            from: Some(2),
            to: Some(2),
        };
        assert!(matches!(range.to_ms(), Err(CliError::Usage(_))));
        let open = Range {
            from: None,
            to: Some(5),
        };
        assert_eq!(open.to_ms().unwrap(), (0, 5));
    }

    fn record(seq: u64, event: &Event) -> Record {
        Record::link("n1", (seq - 1, GENESIS), event)
    }

    #[test]
    fn records_become_rows() {
        let event = Event {
            time_ms: 1_775_035_800_123,
            node: "n1".into(),
            operation: "Decrypt".into(),
            principal: Some("p".into()),
            tenant: Some("t".into()),
            key_id: Some("k".into()),
            key_version: Some(2),
            outcome: "PERMISSION_DENIED".into(),
            peer: Some("10.0.0.5:4242".into()),
            ..Event::default()
        };
        let line = Line::of_record(&record(3, &event));
        let mut table = records_table();
        table.row(record_row(&line).unwrap());
        table.row(record_row(&Line::of_record(&record(4, &event).redacted())).unwrap());
        assert_eq!(
            table.render(),
            "TIME                      NODE  SEQ  OPERATION   OUTCOME            PRINCIPAL  \
             TENANT  KEY  VERSION  PEER\n\
             2026-04-01T09:30:00.123Z  n1    3    Decrypt     PERMISSION_DENIED  p          \
             t       k    2        10.0.0.5:4242\n\
             -                         n1    4    (redacted)  -                  -          \
             -       -    -        -\n"
        );
    }

    #[test]
    fn lines_must_be_single_lines() {
        let lines = vec!["{\"a\":1}".to_owned(), "{\"b\":2}".to_owned()];
        assert_eq!(jsonl_text(&lines).unwrap(), "{\"a\":1}\n{\"b\":2}\n");
        assert!(jsonl_text(&["{\n}".to_owned()]).is_err());
    }

    fn summary(node: &str, last_seq: u64, hash: u8) -> NodeSummary {
        NodeSummary {
            node: node.into(),
            first_seq: 1,
            last_seq,
            last_hash: [hash; 32],
            last_checkpoint_seq: Some(last_seq),
        }
    }

    fn head(node: &str, last_seq: u64, checkpoint: u64, hash: u8) -> pb::ChainHead {
        pb::ChainHead {
            node: node.into(),
            first_seq: 1,
            last_seq,
            last_hash: hex::encode([hash; 32]),
            last_checkpoint_seq: checkpoint,
        }
    }

    #[test]
    fn a_file_that_ends_before_kagids_checkpoint_is_truncated() {
        let file = [summary("n1", 15, 1), summary("n2", 6, 2)];
        let heads = [
            head("n1", 23, 20, 9),
            head("n2", 6, 6, 2),
            head("n3", 4, 4, 3),
        ];
        let findings = compare_with_kagid(&file, &heads, false);
        assert_eq!(findings.len(), 1);
        assert_eq!((findings[0].node.as_str(), findings[0].seq), ("n1", 16));
        assert!(
            findings[0]
                .problem
                .contains("records 16..20 are missing from the file")
        );
        // An export ends where its range does.
        assert!(compare_with_kagid(&file, &heads, true).is_empty());
        // The file goes beyond the store: the store lost records.
        let heads = [head("n1", 12, 10, 9), head("n2", 6, 6, 2)];
        let findings = compare_with_kagid(&file, &heads, false);
        assert_eq!(findings[0].seq, 13);
        assert!(findings[0].problem.contains("missing from kagid's store"));
        // Same head, other hash; a node kagid does not know.
        let heads = [head("n1", 15, 15, 1), head("n2", 6, 6, 7)];
        let findings = compare_with_kagid(&file, &heads, false);
        assert_eq!((findings[0].node.as_str(), findings[0].seq), ("n2", 6));
        assert!(findings[0].problem.contains("differs"));
        let findings = compare_with_kagid(&file, &heads[..1], false);
        assert_eq!((findings[0].node.as_str(), findings[0].seq), ("n2", 1));
        assert!(findings[0].problem.contains("no chain of node n2"));
    }

    #[test]
    fn a_local_report_fails_on_a_comparison_finding_and_says_what_was_not_checked() {
        let report = Report {
            records: 21,
            checkpoints: 5,
            nodes: vec![NodeSummary {
                last_checkpoint_seq: Some(10),
                ..summary("n1", 15, 1)
            }],
            first_bad: None,
            problems: 0,
            signatures_checked: false,
            macs_checked: false,
            records_without_mac: 2,
            checkpoints_not_compared: 1,
        };
        let compared = compare_with_kagid(&report.nodes, &[head("n1", 20, 20, 9)], false);
        let view = ReportView::from_local(
            Path::new("copy.jsonl"),
            &report,
            None,
            compared,
            true,
            Vec::new(),
        );
        assert!(!view.ok);
        assert_eq!(view.first_bad.as_ref().unwrap().seq, 16);
        assert_eq!(view.problems, Some(1));
        assert!(view.warnings.iter().any(|w| w.contains("no public key")));
        assert!(
            view.warnings
                .iter()
                .any(|w| w.contains("records 11..15 of node n1"))
        );
        let text = view.render();
        assert!(
            text.starts_with(
                "result               FAILED\nfirst bad            node n1, record 16: "
            )
        );
        assert!(text.contains("records              21 (2 without MAC, written while sealed)\n"));
        assert!(text.contains("checkpoints          5 (1 not compared)\n"));
        assert!(text.contains("signatures           not checked\n"));
        assert!(text.contains("compared with kagid  yes\n"));
        assert!(text.contains("  n1    1      15    10               0101"));
        assert!(matches!(
            view.outcome("copy.jsonl"),
            Err(CliError::Data(message))
                if message.starts_with("copy.jsonl failed verification: node n1, record 16: ")
        ));
    }

    #[test]
    fn kagids_report_shows_the_first_bad_record() {
        let response = pb::VerifyResponse {
            ok: false,
            records: 100,
            checkpoints: 9,
            first_bad_node: "n2".into(),
            first_bad_seq: 42,
            problem: "record 42 is missing (deleted?)".into(),
            public_key: "ab".repeat(32),
            macs_checked: true,
            heads: vec![head("n2", 99, 90, 4)],
        };
        let view = ReportView::from_store(&response);
        assert!(view.warnings.is_empty());
        let text = view.render();
        assert_eq!(
            text,
            "result       FAILED\n\
             first bad    node n2, record 42: record 42 is missing (deleted?)\n\
             records      100\n\
             checkpoints  9\n\
             signatures   checked with abababababababababababababababababababababababababababababababab\n\
             MACs         checked\n\
             chains:\n  \
             NODE  FIRST  LAST  LAST CHECKPOINT  LAST HASH\n  \
             n2    1      99    90               0404040404040404040404040404040404040404040404040404040404040404\n"
        );
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["first_bad"]["seq"], 42);
        assert_eq!(json["heads"][0]["last_checkpoint_seq"], 90);
    }

    #[test]
    fn export_counts_tell_shown_from_redacted_records() {
        let event = Event {
            node: "n1".into(),
            ..Event::default()
        };
        let mut counts = ExportCounts::default();
        counts.add(&Line::of_record(&record(1, &event)));
        counts.add(&Line::of_record(&record(2, &event).redacted()));
        assert_eq!((counts.lines, counts.shown, counts.redacted), (2, 1, 1));
        assert_eq!(counts.signer, None);
    }
}
