//! Verifying audit chains: sequence, links, digests, hashes, MACs and signed checkpoints, and
//! the first bad record.
//!
//! [`Verifier`] is pure (no I/O, no async) and incremental: records and checkpoints stream
//! through it in the order they are stored or shipped, and it keeps per node only the chain's
//! ends, the hashes of the latest [`HASH_WINDOW`] records and the checkpoints still waiting
//! for their record, so that a trail of any length verifies in bounded memory.
//! [`verify_jsonl`] runs it over a JSON-lines copy or export (each line a [`Line`]).
//!
//! What is checked, per node chain:
//!
//! - **sequence**: each record is the previous one's `seq + 1`. A gap is a deletion, a repeat or
//!   a step back is an insertion or a reordering. A chain starts at record 1 (its `prev_hash`
//!   is [`GENESIS`]), or right after a `retention-start` checkpoint whose head is the first
//!   record's `prev_hash` (its older records were pruned), or anywhere with
//!   [`Options::partial_start`] (exports);
//! - **links and hashes**: `prev_hash` is the previous record's hash, `digest` is the SHA-256
//!   of the event (unless the record is redacted), `hash` is [`chain_hash`] of the fields, and
//!   the event is an [`Event`] of the record's node;
//! - **MACs**, with [`Options::mac_key`]: a record that carries a MAC carries
//!   HMAC-SHA-256(key, hash). Records written while the node was sealed carry none, which is
//!   allowed (and counted in [`Report::records_without_mac`]);
//! - **checkpoints**, in any order relative to the records: the signature, with
//!   [`Options::public_key`]; the head hash against the record it names; and a checkpoint
//!   beyond the chain's last record means that the records after it were cut off (truncation).
//!
//! Anyone can recompute hashes, so a chain rewritten from some record on is consistent in
//! itself: it is caught by the MACs (with the key, which never leaves kagid) or by the next
//! signed checkpoint (with the public key). Checkpoints are what makes a copy verifiable
//! offline; a copy whose newest records are after its last checkpoint is only as good as its
//! hashes, which [`NodeSummary::last_checkpoint_seq`] shows.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::BufRead;

use ed25519_dalek::VerifyingKey;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::checkpoint::{Checkpoint, Kind};
use super::record::{Event, GENESIS, Hash, Line, Record, chain_hash, digest};
use crate::clock::rfc3339;

/// How many of each chain's latest record hashes are kept, to check a checkpoint that comes
/// after its record in the input (kagid writes a checkpoint right after the record it names).
/// A checkpoint that comes later than this cannot be compared, and is counted in
/// [`Report::checkpoints_not_compared`]. 262,144 hashes are 10 MiB per node at most.
pub const HASH_WINDOW: usize = 1 << 18;

/// The operation that starts a node's run: it is sealed (outside dev mode) until unsealed.
const STARTED: &str = "Started";
/// Operations recorded just before the root key is dropped.
const SEALING: [&str; 2] = ["Sealing", "Shutdown"];

/// HMAC-SHA-256 with the audit MAC key.
type HmacSha256 = Hmac<Sha256>;

/// The MAC of a record: HMAC-SHA-256(`mac_key`, `hash`).
pub fn record_mac(mac_key: &[u8; 32], hash: &Hash) -> Hash {
    crate::keyring::hmac_sha256(mac_key, hash)
}

/// What to check beyond the chains themselves.
#[derive(Clone, Default)]
pub struct Options {
    /// The instance's Ed25519 audit public key. With it every checkpoint's signature must
    /// verify; without it checkpoints are still compared with the chains, but anyone could
    /// have made them ([`Report::signatures_checked`] is false).
    pub public_key: Option<VerifyingKey>,
    /// The audit MAC key (HMAC-SHA-256). With it, every record that carries a MAC must carry
    /// HMAC(key, hash); records without one (written while sealed) are allowed.
    pub mac_key: Option<Zeroizing<[u8; 32]>>,
    /// The input need not start at the beginning of each chain: a node's first record may have
    /// any `seq` and `prev_hash` (exports, which hold a stretch of each chain).
    pub partial_start: bool,
}

/// Shows everything but the MAC key.
impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field(
                "public_key",
                &self.public_key.map(|k| hex::encode(k.to_bytes())),
            )
            .field("mac_key", &self.mac_key.as_ref().map(|_| "<redacted>"))
            .field("partial_start", &self.partial_start)
            .finish()
    }
}

/// A problem: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The node whose chain it is in.
    pub node: String,
    /// The first record concerned: the bad record, the first missing one, or the record a
    /// checkpoint names.
    pub seq: u64,
    /// What is wrong, in a sentence.
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {}, record {}: {}",
            self.node, self.seq, self.problem
        )
    }
}

/// One node's chain as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSummary {
    /// The node.
    pub node: String,
    /// Its first record in the input. For a node whose records were all pruned, the record
    /// after its retention-start checkpoint (then `first_seq = last_seq + 1`).
    pub first_seq: u64,
    /// Its last record in the input (records out of order or inserted do not count).
    pub last_seq: u64,
    /// The last record's hash.
    pub last_hash: Hash,
    /// The highest checkpoint of the node that matched a record of the input (or anchors its
    /// start): records up to it are proven by a signature, when signatures were checked.
    pub last_checkpoint_seq: Option<u64>,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records read (all of them, bad ones included).
    pub records: u64,
    /// Checkpoints read.
    pub checkpoints: u64,
    /// Every node's chain, by node name.
    pub nodes: Vec<NodeSummary>,
    /// The first problem: in input order, then, for those only seen at the end (truncation,
    /// an unanchored start), by `seq`.
    pub first_bad: Option<Finding>,
    /// How many problems were found in all (only the first is described).
    pub problems: u64,
    /// Whether checkpoint signatures were checked ([`Options::public_key`] given).
    pub signatures_checked: bool,
    /// Whether record MACs were checked ([`Options::mac_key`] given).
    pub macs_checked: bool,
    /// Records without a MAC (written while their node was sealed).
    pub records_without_mac: u64,
    /// Checkpoints that could not be compared with a record: they name a record before the
    /// start of the input's chain (exports), one that is missing (already reported), or one
    /// more than [`HASH_WINDOW`] records before them in the input.
    pub checkpoints_not_compared: u64,
}

impl Report {
    /// Whether no problem was found.
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// A checkpoint's claim about one record of its chain.
#[derive(Debug, Clone)]
struct Claim {
    /// The record's hash, as signed.
    head: Hash,
    /// When it was signed, Unix milliseconds.
    time_ms: i64,
    /// Periodic or retention-start.
    kind: Kind,
}

/// The records seen of a chain.
#[derive(Debug, Clone)]
struct Span {
    /// The first record's seq.
    first_seq: u64,
    /// The first record's `prev_hash`.
    first_prev_hash: Hash,
    /// The last record (in sequence) and its hash.
    last_seq: u64,
    /// Hash of record `last_seq`.
    last_hash: Hash,
    /// Whether the start is accounted for: record 1 at genesis, a matching retention-start
    /// checkpoint, `partial_start`, or a problem already reported.
    anchored: bool,
    /// The first record that would be missing if the start stays unanchored: 1, or the record
    /// after the latest retention-start checkpoint before the chain's start.
    missing_from: u64,
    /// The latest gap reported, so that a record found later in it is one reordering, not a
    /// second problem.
    last_gap: Option<(u64, u64)>,
}

/// What is known of one node's chain.
#[derive(Debug, Default)]
struct Chain {
    /// The records seen, once there is one.
    span: Option<Span>,
    /// `(seq, hash)` of the latest records, oldest first.
    recent: VecDeque<(u64, Hash)>,
    /// Checkpoints naming records not seen yet, by seq.
    pending: BTreeMap<u64, Vec<Claim>>,
    /// The highest checkpoint that matched.
    last_checkpoint_seq: Option<u64>,
}

impl Chain {
    /// Notes a checkpoint that matched.
    fn matched(&mut self, seq: u64) {
        self.last_checkpoint_seq = self.last_checkpoint_seq.max(Some(seq));
    }
}

/// Incremental verifier: feed it records and checkpoints in input order, then
/// [`Verifier::finish`].
pub struct Verifier {
    /// What to check.
    options: Options,
    /// The keyed MAC, ready to be cloned for each record.
    mac: Option<HmacSha256>,
    /// Per node, the first seq of the current run of records without a MAC (MAC key given).
    unmaced_since: BTreeMap<String, u64>,
    /// Per node, whether the next record may lack a MAC (the node was sealed).
    unmaced_allowed: BTreeMap<String, bool>,
    /// Chains by node.
    chains: BTreeMap<String, Chain>,
    /// Hashes kept per chain.
    window: usize,
    /// Counters and the first finding.
    records: u64,
    /// Checkpoints read.
    checkpoints: u64,
    /// Records without a MAC.
    records_without_mac: u64,
    /// Checkpoints not compared.
    not_compared: u64,
    /// Problems found.
    problems: u64,
    /// The first of them.
    first_bad: Option<Finding>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("options", &self.options)
            .field("records", &self.records)
            .field("checkpoints", &self.checkpoints)
            .field("first_bad", &self.first_bad)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with nothing seen yet.
    pub fn new(options: Options) -> Self {
        Self::with_window(options, HASH_WINDOW)
    }

    /// A verifier keeping `window` hashes per chain (tests use a small one).
    fn with_window(options: Options, window: usize) -> Self {
        let mac = options.mac_key.as_ref().map(|key| {
            <HmacSha256 as hmac::KeyInit>::new_from_slice(key.as_slice())
                .expect("HMAC takes keys of any length")
        });
        Self {
            options,
            mac,
            unmaced_since: BTreeMap::new(),
            unmaced_allowed: BTreeMap::new(),
            chains: BTreeMap::new(),
            window: window.max(1),
            records: 0,
            checkpoints: 0,
            records_without_mac: 0,
            not_compared: 0,
            problems: 0,
            first_bad: None,
        }
    }

    /// Notes a problem; the first one is kept.
    fn report(&mut self, node: &str, seq: u64, problem: String) {
        self.problems += 1;
        if self.first_bad.is_none() {
            self.first_bad = Some(Finding {
                node: node.to_owned(),
                seq,
                problem,
            });
        }
    }

    /// Feeds one line of a JSONL copy or export. `Err` if a field is not well-formed (not
    /// hex, not 32 bytes).
    pub fn line(&mut self, line: &Line) -> Result<(), String> {
        match line {
            Line::Checkpoint(checkpoint) => self.checkpoint(checkpoint),
            record => {
                if let Some(record) = record.to_record()? {
                    self.record(&record);
                }
            }
        }
        Ok(())
    }

    /// Feeds the next record.
    pub fn record(&mut self, record: &Record) {
        self.records += 1;
        if record.mac.is_none() {
            self.records_without_mac += 1;
        }
        let (node, seq) = (record.node.as_str(), record.seq);
        // Records written while sealed carry no MAC, so a forger can insert one without a MAC;
        // the record after it then fails its MAC. Blame the run of MAC-less records before it.
        let unmaced_run = self.unmaced_since.get(node).copied();
        if self.mac.is_some() && record.mac.is_none() {
            self.unmaced_since.entry(node.to_owned()).or_insert(seq);
        } else {
            self.unmaced_since.remove(node);
        }
        // A record may lack a MAC only while the node is sealed: after a record that marks the
        // root going (`Sealing`, `Shutdown`), at a start (`Started`), after another record
        // without one, or at the start of what is verified.
        let operation = record.event().map(|e| e.operation);
        let may_lack_mac = self.unmaced_allowed.get(node).copied().unwrap_or(true)
            || operation.as_deref() == Some(STARTED);
        self.unmaced_allowed.insert(
            node.to_owned(),
            record.mac.is_none()
                || matches!(operation.as_deref(), Some(op) if SEALING.contains(&op)),
        );
        if let Some(problem) = self.content_problem(record) {
            self.report(node, seq, problem);
        } else if self.mac.is_some()
            && record.mac.is_none()
            && !may_lack_mac
            && record.body.is_some()
        {
            self.report(
                node,
                seq,
                format!(
                    "record {seq} carries no MAC, yet the node was unsealed (the record before it \
                     has one and no seal was recorded between): it was forged or its MAC stripped"
                ),
            );
        } else if self.mac_is_wrong(record) {
            match unmaced_run {
                Some(start) if start < seq => self.report(
                    node,
                    start,
                    format!(
                        "records {start}..={} carry no MAC and record {seq} after them fails its MAC: \
                         a record was inserted or forged from record {start} on",
                        seq - 1
                    ),
                ),
                _ => self.report(
                    node,
                    seq,
                    format!("record {seq}'s MAC is wrong: the record was forged or modified"),
                ),
            }
        }
        if seq == 0 {
            self.report(node, 0, "record 0 cannot exist: chains start at 1".into());
            return;
        }
        let partial_start = self.options.partial_start;
        let chain = chain_of(&mut self.chains, node);
        let mut problems: Vec<(u64, String)> = Vec::new();
        match &mut chain.span {
            None => {
                let (span, problem, not_compared) = start_span(chain, record, partial_start);
                chain.span = Some(span);
                problems.extend(problem);
                self.not_compared += not_compared;
            }
            Some(span) => {
                let next = span.last_seq.saturating_add(1);
                if seq < next {
                    let gap = span.last_gap.filter(|(a, b)| (*a..=*b).contains(&seq));
                    let last = span.last_seq;
                    if let Some((a, b)) = gap {
                        // The same problem as the gap it falls in, not another one. If that gap
                        // is the first problem, say what it really is.
                        if let Some(first) = &mut self.first_bad
                            && first.node == node
                            && first.seq == a
                            && first.problem == missing(a, b)
                        {
                            first.seq = seq;
                            first.problem = format!(
                                "record {seq} is out of order: it comes after record {last}"
                            );
                        }
                    } else {
                        self.report(
                            node,
                            seq,
                            format!("record {seq} is out of order or inserted"),
                        );
                    }
                    // Out of sequence: the chain goes on from the record before it.
                    return;
                }
                if seq > next {
                    span.last_gap = Some((next, seq - 1));
                    problems.push((next, missing(next, seq - 1)));
                } else if record.prev_hash != span.last_hash {
                    problems.push((
                        seq,
                        format!(
                            "record {seq} does not link to record {}: it was modified or \
                             inserted, or the record before it was",
                            span.last_seq
                        ),
                    ));
                }
                span.last_seq = seq;
                span.last_hash = record.hash;
            }
        }
        chain.recent.push_back((seq, record.hash));
        if chain.recent.len() > self.window {
            chain.recent.pop_front();
        }
        // Checkpoints that were waiting for this record, and those for records skipped by a
        // gap (already reported as missing).
        let mut not_compared = 0;
        while let Some(entry) = chain.pending.first_entry() {
            match (*entry.key()).cmp(&seq) {
                std::cmp::Ordering::Less => not_compared += entry.remove().len() as u64,
                std::cmp::Ordering::Equal => {
                    for claim in entry.remove() {
                        if claim.head == record.hash {
                            chain.matched(seq);
                        } else {
                            problems.push((seq, mismatch(seq, &claim)));
                        }
                    }
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        self.not_compared += not_compared;
        for (seq, problem) in problems {
            self.report(node, seq, problem);
        }
    }

    /// Problems of a record on its own: event, digest, hash, MAC.
    fn content_problem(&self, record: &Record) -> Option<String> {
        let seq = record.seq;
        if let Some(body) = &record.body {
            if digest(body) != record.digest {
                return Some(format!(
                    "record {seq} was modified: its event does not match its digest"
                ));
            }
            match serde_json::from_str::<Event>(body) {
                Err(_) => return Some(format!("record {seq}'s event cannot be read")),
                Ok(event) if event.node != record.node => {
                    return Some(format!(
                        "record {seq}'s event names node {:?}, not {:?}",
                        event.node, record.node
                    ));
                }
                Ok(_) => {}
            }
        }
        if chain_hash(&record.node, seq, &record.prev_hash, &record.digest) != record.hash {
            return Some(format!(
                "record {seq} was modified: its hash does not match its fields"
            ));
        }
        None
    }

    /// Whether the record carries a MAC that does not match its hash.
    fn mac_is_wrong(&self, record: &Record) -> bool {
        let (Some(keyed), Some(mac)) = (&self.mac, &record.mac) else {
            return false;
        };
        let mut keyed = keyed.clone();
        keyed.update(&record.hash);
        let expected = keyed.finalize().into_bytes();
        !bool::from(expected.as_slice().ct_eq(mac))
    }

    /// Feeds the next checkpoint.
    pub fn checkpoint(&mut self, checkpoint: &Checkpoint) {
        self.checkpoints += 1;
        let (node, seq) = (checkpoint.node.as_str(), checkpoint.seq);
        let head = match checkpoint.head() {
            Ok(head) => head,
            Err(err) => {
                self.report(node, seq, format!("checkpoint {seq}: head_hash {err}"));
                return;
            }
        };
        if let Some(key) = &self.options.public_key
            && let Err(err) = checkpoint.verify(key)
        {
            // Not trusted for anything else.
            self.report(node, seq, err);
            return;
        }
        let claim = Claim {
            head,
            time_ms: checkpoint.time_ms,
            kind: checkpoint.kind,
        };
        let chain = chain_of(&mut self.chains, node);
        let Some(span) = &mut chain.span else {
            chain.pending.entry(seq).or_default().push(claim);
            return;
        };
        let problem = if seq > span.last_seq {
            chain.pending.entry(seq).or_default().push(claim);
            None
        } else if seq >= span.first_seq {
            let found = chain
                .recent
                .binary_search_by_key(&seq, |(s, _)| *s)
                .ok()
                .map(|i| chain.recent[i].1);
            match found {
                Some(hash) if hash == claim.head => {
                    chain.matched(seq);
                    None
                }
                Some(_) => Some((seq, mismatch(seq, &claim))),
                None => {
                    // Missing (already reported) or out of the window.
                    self.not_compared += 1;
                    None
                }
            }
        } else if seq + 1 == span.first_seq {
            if claim.head == span.first_prev_hash {
                if claim.kind == Kind::RetentionStart {
                    span.anchored = true;
                }
                chain.matched(seq);
                None
            } else {
                span.anchored = true;
                Some((span.first_seq, unlinked(span.first_seq, &claim)))
            }
        } else {
            if claim.kind == Kind::RetentionStart {
                span.missing_from = span.missing_from.max(seq + 1);
            }
            self.not_compared += 1;
            None
        };
        if let Some((seq, problem)) = problem {
            self.report(node, seq, problem);
        }
    }

    /// Ends the input: reports unanchored starts and truncations, and sums up.
    pub fn finish(mut self) -> Report {
        let mut late: Vec<Finding> = Vec::new();
        let mut nodes = Vec::with_capacity(self.chains.len());
        for (node, chain) in &self.chains {
            let finding = |seq: u64, problem: String| Finding {
                node: node.clone(),
                seq,
                problem,
            };
            let summary = match &chain.span {
                Some(span) => {
                    if !span.anchored {
                        let first = span.first_seq;
                        late.push(finding(
                            span.missing_from,
                            format!(
                                "{}: the chain of node {node} starts at record {first} and no \
                                 retention-start checkpoint accounts for the records before it",
                                missing(span.missing_from, first - 1)
                            ),
                        ));
                    }
                    if let Some((&beyond, claims)) = chain.pending.last_key_value() {
                        let last = span.last_seq;
                        late.push(finding(last + 1, truncated(node, last, beyond, &claims[0])));
                    }
                    NodeSummary {
                        node: node.clone(),
                        first_seq: span.first_seq,
                        last_seq: span.last_seq,
                        last_hash: span.last_hash,
                        last_checkpoint_seq: chain.last_checkpoint_seq,
                    }
                }
                None => {
                    // No records: fine after a retention-start checkpoint (all pruned), as long
                    // as no checkpoint claims records after it.
                    let base = chain
                        .pending
                        .iter()
                        .rev()
                        .find_map(|(seq, claims)| {
                            claims
                                .iter()
                                .find(|c| c.kind == Kind::RetentionStart)
                                .map(|c| (*seq, c.head))
                        })
                        .unwrap_or((0, GENESIS));
                    if let Some((&beyond, claims)) = chain.pending.last_key_value()
                        && beyond > base.0
                    {
                        late.push(finding(
                            base.0 + 1,
                            format!(
                                "node {node} has no records after {}, but checkpoint {beyond} \
                                 (signed at {}) covers more: {} removed (truncated)",
                                base.0,
                                signed_at(&claims[0]),
                                were(base.0 + 1, beyond)
                            ),
                        ));
                    }
                    NodeSummary {
                        node: node.clone(),
                        first_seq: base.0 + 1,
                        last_seq: base.0,
                        last_hash: base.1,
                        last_checkpoint_seq: (base.0 > 0).then_some(base.0),
                    }
                }
            };
            nodes.push(summary);
        }
        late.sort_by(|a, b| (a.seq, &a.node).cmp(&(b.seq, &b.node)));
        for finding in late {
            self.report(&finding.node, finding.seq, finding.problem);
        }
        Report {
            records: self.records,
            checkpoints: self.checkpoints,
            nodes,
            first_bad: self.first_bad,
            problems: self.problems,
            signatures_checked: self.options.public_key.is_some(),
            macs_checked: self.options.mac_key.is_some(),
            records_without_mac: self.records_without_mac,
            checkpoints_not_compared: self.not_compared,
        }
    }
}

/// The chain of `node`, made empty the first time (without allocating the name again for
/// every record).
fn chain_of<'a>(chains: &'a mut BTreeMap<String, Chain>, node: &str) -> &'a mut Chain {
    if !chains.contains_key(node) {
        chains.insert(node.to_owned(), Chain::default());
    }
    chains.get_mut(node).expect("just inserted")
}

/// The span a chain's first record starts, the problem with its start, if any, and how many
/// checkpoints waiting for records before it cannot be compared (the one for the record just
/// before it is compared with its `prev_hash`).
fn start_span(
    chain: &mut Chain,
    record: &Record,
    partial_start: bool,
) -> (Span, Option<(u64, String)>, u64) {
    let seq = record.seq;
    let mut span = Span {
        first_seq: seq,
        first_prev_hash: record.prev_hash,
        last_seq: seq,
        last_hash: record.hash,
        anchored: partial_start || (seq == 1 && record.prev_hash == GENESIS),
        missing_from: 1,
        last_gap: None,
    };
    let mut problem = None;
    let mut not_compared = 0;
    if seq == 1 && record.prev_hash != GENESIS && !partial_start {
        span.anchored = true;
        problem = Some((
            1,
            "record 1 does not start the chain: its prev_hash is not the genesis hash".to_owned(),
        ));
    }
    // Checkpoints before the start: the one just before must be the record's prev_hash; a
    // retention-start one anchors the chain; older ones cannot be compared.
    let later = chain.pending.split_off(&seq);
    let earlier = std::mem::replace(&mut chain.pending, later);
    for (claim_seq, claims) in earlier {
        for claim in claims {
            if claim_seq + 1 == seq {
                if claim.head == record.prev_hash {
                    span.anchored |= claim.kind == Kind::RetentionStart;
                    chain.matched(claim_seq);
                } else if problem.is_none() {
                    span.anchored = true;
                    problem = Some((seq, unlinked(seq, &claim)));
                }
            } else {
                if claim.kind == Kind::RetentionStart {
                    span.missing_from = span.missing_from.max(claim_seq + 1);
                }
                not_compared += 1;
            }
        }
    }
    (span, problem, not_compared)
}

/// "record N is missing (deleted?)" or "records A..B are missing (deleted?)".
fn missing(from: u64, to: u64) -> String {
    if from == to {
        format!("record {from} is missing (deleted?)")
    } else {
        format!("records {from}..{to} are missing (deleted?)")
    }
}

/// "record N was" or "records A..B were".
fn were(from: u64, to: u64) -> String {
    if from == to {
        format!("record {from} was")
    } else {
        format!("records {from}..{to} were")
    }
}

/// When a checkpoint was signed, RFC 3339.
fn signed_at(claim: &Claim) -> String {
    rfc3339(claim.time_ms.div_euclid(1000))
}

/// A checkpoint naming a record with another hash.
fn mismatch(seq: u64, claim: &Claim) -> String {
    format!(
        "checkpoint {seq} (signed at {}) does not match record {seq}: the record, or the chain \
         before it, was modified",
        signed_at(claim)
    )
}

/// A chain's first record whose `prev_hash` is not the head of the checkpoint before it.
fn unlinked(seq: u64, claim: &Claim) -> String {
    format!(
        "record {seq} does not link to {} checkpoint {} (signed at {}): it was modified, or \
         records were deleted",
        claim.kind.as_str(),
        seq - 1,
        signed_at(claim)
    )
}

/// A chain that ends before a checkpoint.
fn truncated(node: &str, last: u64, beyond: u64, claim: &Claim) -> String {
    format!(
        "the chain of node {node} ends at {last} but checkpoint {beyond} (signed at {}) covers \
         more: {} removed (truncated)",
        signed_at(claim),
        were(last + 1, beyond)
    )
}

/// Verifies a JSON-lines text, a kagid JSONL copy or an export: each line a [`Line`] (blank
/// lines are skipped). `Err` names the first line that cannot be read or parsed; problems of
/// the trail itself are in the [`Report`].
pub fn verify_jsonl(mut text: impl BufRead, options: Options) -> Result<Report, String> {
    let mut verifier = Verifier::new(options);
    let mut buf = String::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        number += 1;
        match text.read_line(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => return Err(format!("line {number} cannot be read: {err}")),
        }
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(text)
            .map_err(|err| format!("line {number} is not an audit record or checkpoint: {err}"))?;
        verifier
            .line(&line)
            .map_err(|err| format!("line {number}: {err}"))?;
    }
    Ok(verifier.finish())
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey};

    use super::*;

    const MAC_KEY: [u8; 32] = [7; 32];
    const T0: i64 = 1_775_035_800_000;

    /// One item of an input.
    #[derive(Debug, Clone)]
    enum Item {
        R(Record),
        C(Checkpoint),
    }

    fn signer() -> SigningKey {
        SigningKey::from_bytes(&[5; 32])
    }

    fn event(node: &str, seq: u64) -> Event {
        Event {
            time_ms: T0 + seq as i64,
            node: node.into(),
            // Record 2 marks a seal: 3 and 4 are written sealed, without a MAC.
            operation: if seq == 2 {
                "Sealing"
            } else if seq.is_multiple_of(2) {
                "Encrypt"
            } else {
                "Decrypt"
            }
            .into(),
            principal: Some("svc".into()),
            tenant: Some(if seq.is_multiple_of(3) { "t2" } else { "t1" }.into()),
            outcome: "OK".into(),
            protocol: "grpc".into(),
            request_id: format!("r{seq}"),
            ..Event::default()
        }
    }

    /// Records 1..=n of `node`, MACed except 3 and 4 (written while sealed, after record 2's
    /// `Sealing`).
    fn chain(node: &str, n: u64) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        let mut head = (0, GENESIS);
        for seq in 1..=n {
            let mut record = Record::link(node, head, &event(node, seq));
            if !(3..=4).contains(&seq) {
                record.mac = Some(record_mac(&MAC_KEY, &record.hash));
            }
            head = (record.seq, record.hash);
            out.push(record);
        }
        out
    }

    fn sign(key: &SigningKey, node: &str, kind: Kind, seq: u64, head: Hash) -> Checkpoint {
        let time_ms = T0 + 1000 * seq as i64;
        let bytes = Checkpoint::signed_bytes(node, kind, seq, &head, time_ms);
        Checkpoint {
            node: node.into(),
            kind,
            seq,
            head_hash: hex::encode(head),
            time_ms,
            public_key: hex::encode(key.verifying_key().to_bytes()),
            signature: hex::encode(key.sign(&bytes).to_bytes()),
        }
    }

    fn periodic(record: &Record) -> Checkpoint {
        sign(
            &signer(),
            &record.node,
            Kind::Periodic,
            record.seq,
            record.hash,
        )
    }

    /// n1: 20 records, checkpoints after 5, 10, 15, 20; n2: 6 records interleaved, a
    /// checkpoint after 6.
    fn trail() -> Vec<Item> {
        let n1 = chain("n1", 20);
        let n2 = chain("n2", 6);
        let mut items = Vec::new();
        for record in &n1 {
            items.push(Item::R(record.clone()));
            if record.seq.is_multiple_of(5) {
                items.push(Item::C(periodic(record)));
            }
            if record.seq.is_multiple_of(3) {
                let other = &n2[(record.seq / 3 - 1) as usize];
                items.push(Item::R(other.clone()));
                if other.seq == 6 {
                    items.push(Item::C(periodic(other)));
                }
            }
        }
        items
    }

    fn all() -> Options {
        Options {
            public_key: Some(signer().verifying_key()),
            mac_key: Some(Zeroizing::new(MAC_KEY)),
            partial_start: false,
        }
    }

    fn run(items: &[Item], options: Options) -> Report {
        let mut verifier = Verifier::new(options);
        for item in items {
            match item {
                Item::R(r) => verifier.record(r),
                Item::C(c) => verifier.checkpoint(c),
            }
        }
        verifier.finish()
    }

    fn jsonl(items: &[Item]) -> String {
        items
            .iter()
            .map(|item| {
                let line = match item {
                    Item::R(r) => Line::of_record(r),
                    Item::C(c) => Line::Checkpoint(c.clone()),
                };
                serde_json::to_string(&line).unwrap() + "\n"
            })
            .collect()
    }

    /// Position of record `seq` of `node`.
    fn at(items: &[Item], node: &str, seq: u64) -> usize {
        items
            .iter()
            .position(|i| matches!(i, Item::R(r) if r.node == node && r.seq == seq))
            .unwrap()
    }

    fn record_mut<'a>(items: &'a mut [Item], node: &str, seq: u64) -> &'a mut Record {
        let i = at(items, node, seq);
        match &mut items[i] {
            Item::R(r) => r,
            Item::C(_) => unreachable!(),
        }
    }

    /// Asserts the first finding's place and that its text says `what`; checks the JSONL path
    /// finds the same.
    #[track_caller]
    fn assert_bad(items: &[Item], options: Options, node: &str, seq: u64, what: &str) {
        let report = run(items, options.clone());
        let finding = report.first_bad.clone().expect("a problem is found");
        assert_eq!(
            (finding.node.as_str(), finding.seq),
            (node, seq),
            "{finding}"
        );
        assert!(finding.problem.contains(what), "{finding}");
        assert!(!report.ok());
        let text = jsonl(items);
        let from_text = verify_jsonl(text.as_bytes(), options).unwrap();
        assert_eq!(from_text.first_bad, Some(finding));
    }

    #[test]
    fn an_untouched_trail_verifies() {
        let items = trail();
        let report = run(&items, all());
        assert!(report.ok(), "{:?}", report.first_bad);
        assert_eq!((report.records, report.checkpoints), (26, 5));
        assert_eq!(report.problems, 0);
        assert!(report.signatures_checked && report.macs_checked);
        assert_eq!(report.records_without_mac, 4);
        assert_eq!(report.checkpoints_not_compared, 0);
        let n1 = chain("n1", 20);
        assert_eq!(
            report.nodes,
            vec![
                NodeSummary {
                    node: "n1".into(),
                    first_seq: 1,
                    last_seq: 20,
                    last_hash: n1[19].hash,
                    last_checkpoint_seq: Some(20),
                },
                NodeSummary {
                    node: "n2".into(),
                    first_seq: 1,
                    last_seq: 6,
                    last_hash: chain("n2", 6)[5].hash,
                    last_checkpoint_seq: Some(6),
                },
            ]
        );
        let from_text = verify_jsonl(jsonl(&items).as_bytes(), all()).unwrap();
        assert_eq!(from_text, report);
    }

    #[test]
    fn without_keys_the_chains_and_checkpoints_are_still_checked() {
        let report = run(&trail(), Options::default());
        assert!(report.ok());
        assert!(!report.signatures_checked && !report.macs_checked);
        assert_eq!(report.nodes[0].last_checkpoint_seq, Some(20));
    }

    #[test]
    fn checkpoints_may_come_before_or_after_their_records() {
        let items = trail();
        let (checkpoints, records): (Vec<Item>, Vec<Item>) =
            items.into_iter().partition(|i| matches!(i, Item::C(_)));
        let first: Vec<Item> = checkpoints.iter().chain(&records).cloned().collect();
        let last: Vec<Item> = records.iter().chain(&checkpoints).cloned().collect();
        for items in [first, last] {
            let report = run(&items, all());
            assert!(report.ok(), "{:?}", report.first_bad);
            assert_eq!(report.nodes[0].last_checkpoint_seq, Some(20));
            assert_eq!(report.checkpoints_not_compared, 0);
        }
    }

    #[test]
    fn an_edited_body_is_found() {
        let mut items = trail();
        let record = record_mut(&mut items, "n1", 8);
        record.body = Some(record.body.as_ref().unwrap().replace("Encrypt", "Decrypt"));
        assert_bad(&items, all(), "n1", 8, "does not match its digest");
    }

    #[test]
    fn an_edited_hash_is_found() {
        let mut items = trail();
        record_mut(&mut items, "n1", 8).hash[0] ^= 1;
        assert_bad(&items, all(), "n1", 8, "hash does not match");
    }

    #[test]
    fn a_rewritten_chain_is_found_by_its_mac_or_the_next_checkpoint() {
        // Record 7 changed and every later record re-hashed, as anyone could.
        let mut items = trail();
        let mut head = None;
        for item in &mut items {
            if let Item::R(r) = item
                && r.node == "n1"
                && r.seq >= 7
            {
                let mut event = r.event().unwrap();
                if r.seq == 7 {
                    event.outcome = "PERMISSION_DENIED".into();
                }
                let prev = head.unwrap_or((r.seq - 1, r.prev_hash));
                let mac = r.mac;
                *r = Record::link("n1", prev, &event);
                r.mac = mac;
                head = Some((r.seq, r.hash));
            }
        }
        assert_bad(&items, all(), "n1", 7, "MAC is wrong");
        assert_bad(&items, Options::default(), "n1", 10, "checkpoint 10");
    }

    #[test]
    fn a_deleted_record_is_found() {
        let mut items = trail();
        items.remove(at(&items, "n1", 9));
        assert_bad(&items, all(), "n1", 9, "record 9 is missing (deleted?)");
        let mut items = trail();
        items.remove(at(&items, "n1", 9));
        items.remove(at(&items, "n1", 10));
        assert_bad(&items, all(), "n1", 9, "records 9..10 are missing");
        let report = run(&items, all());
        // Checkpoint 10 named a deleted record: it could not be compared.
        assert_eq!(report.checkpoints_not_compared, 1);
        assert_eq!(report.problems, 1);
    }

    #[test]
    fn a_deleted_first_record_is_found() {
        let mut items = trail();
        items.remove(at(&items, "n2", 1));
        assert_bad(&items, all(), "n2", 1, "record 1 is missing");
    }

    #[test]
    fn an_inserted_record_is_found() {
        let items = trail();
        let n1 = chain("n1", 20);
        let mut forged = Record::link("n1", (10, n1[9].hash), &event("n1", 99));
        forged.mac = Some([1; 32]);
        let mut with_mac = items.clone();
        with_mac.insert(at(&items, "n1", 11), Item::R(forged.clone()));
        assert_bad(&with_mac, all(), "n1", 11, "MAC is wrong");
        // Without a MAC (as if written while sealed): no seal was recorded before it.
        forged.mac = None;
        let mut without_mac = items.clone();
        without_mac.insert(at(&items, "n1", 11), Item::R(forged));
        assert_bad(&without_mac, all(), "n1", 11, "carries no MAC");
    }

    #[test]
    fn swapped_records_are_found() {
        let mut items = trail();
        let (i, j) = (at(&items, "n1", 5), at(&items, "n1", 6));
        items.swap(i, j);
        assert_bad(&items, all(), "n1", 5, "record 5 is out of order");
        assert_eq!(run(&items, all()).problems, 1);
    }

    #[test]
    fn a_later_reordering_does_not_hide_an_earlier_deletion() {
        let mut items = trail();
        items.remove(at(&items, "n1", 5));
        let (i, j) = (at(&items, "n1", 12), at(&items, "n1", 13));
        items.swap(i, j);
        assert_bad(&items, all(), "n1", 5, "record 5 is missing (deleted?)");
        assert_eq!(run(&items, all()).problems, 2);
    }

    #[test]
    fn a_truncated_tail_is_found() {
        // Records 16..20 cut off; checkpoint 20 had been shipped and stays.
        let mut items = trail();
        items.retain(|i| !matches!(i, Item::R(r) if r.node == "n1" && r.seq > 15));
        assert_bad(
            &items,
            all(),
            "n1",
            16,
            "the chain of node n1 ends at 15 but checkpoint 20 (signed at 2026-04-01T09:30:20Z) \
             covers more: records 16..20 were removed (truncated)",
        );
        // Also when the checkpoint comes first.
        let checkpoint = items.iter().rposition(|i| matches!(i, Item::C(_))).unwrap();
        let moved = items.remove(checkpoint);
        items.insert(0, moved);
        assert_bad(&items, all(), "n1", 16, "records 16..20 were removed");
    }

    #[test]
    fn a_node_with_checkpoints_and_no_records_is_truncated() {
        let n3 = chain("n3", 3);
        let items = vec![Item::C(periodic(&n3[2]))];
        assert_bad(&items, all(), "n3", 1, "records 1..3 were removed");
    }

    #[test]
    fn a_forged_mac_is_found() {
        let mut items = trail();
        record_mut(&mut items, "n1", 12).mac = Some([0; 32]);
        assert_bad(&items, all(), "n1", 12, "MAC is wrong");
        // Without the key it cannot be.
        assert!(run(&items, Options::default()).ok());
    }

    #[test]
    fn a_bad_signature_is_found() {
        let n1 = chain("n1", 20);
        let other = SigningKey::from_bytes(&[6; 32]);
        let mut items = trail();
        let i = items
            .iter()
            .position(|i| matches!(i, Item::C(c) if c.node == "n1" && c.seq == 10))
            .unwrap();
        items[i] = Item::C(sign(&other, "n1", Kind::Periodic, 10, n1[9].hash));
        assert_bad(&items, all(), "n1", 10, "signed by another key");
        let mut tampered = periodic(&n1[9]);
        tampered.time_ms += 1;
        items[i] = Item::C(tampered);
        assert_bad(&items, all(), "n1", 10, "bad signature");
        // Unchecked without the public key.
        assert!(run(&items, Options::default()).ok());
    }

    #[test]
    fn a_checkpoint_that_does_not_match_is_found_without_the_public_key() {
        let n1 = chain("n1", 20);
        let mut items = trail();
        let forged = sign(&signer(), "n1", Kind::Periodic, 15, n1[13].hash);
        items.push(Item::C(forged));
        let options = Options {
            public_key: None,
            ..all()
        };
        assert_bad(&items, options, "n1", 15, "does not match record 15");
    }

    #[test]
    fn a_pruned_chain_with_a_retention_start_checkpoint_verifies() {
        let n1 = chain("n1", 20);
        let anchor = sign(&signer(), "n1", Kind::RetentionStart, 5, n1[4].hash);
        let records: Vec<Item> = n1[5..].iter().cloned().map(Item::R).collect();
        let mut before = vec![Item::C(anchor.clone())];
        before.extend(records.iter().cloned());
        let mut after = records.clone();
        after.push(Item::C(anchor.clone()));
        for items in [&before, &after] {
            let report = run(items, all());
            assert!(report.ok(), "{:?}", report.first_bad);
            assert_eq!(report.nodes[0].first_seq, 6);
            assert_eq!(report.nodes[0].last_checkpoint_seq, Some(5));
            let text = verify_jsonl(jsonl(items).as_bytes(), all()).unwrap();
            assert!(text.ok());
        }
        // Without the checkpoint, records 1..5 are missing.
        assert_bad(&records, all(), "n1", 1, "records 1..5 are missing");
        // A periodic checkpoint does not account for pruned records.
        let mut items = records.clone();
        items.push(Item::C(periodic(&n1[4])));
        assert_bad(&items, all(), "n1", 1, "records 1..5 are missing");
        // Checkpoints of pruned records cannot be compared, before or after the records.
        let mut items = vec![Item::C(periodic(&n1[1])), Item::C(anchor.clone())];
        items.extend(records.iter().cloned());
        items.push(Item::C(periodic(&n1[2])));
        let report = run(&items, all());
        assert!(report.ok(), "{:?}", report.first_bad);
        assert_eq!(report.checkpoints_not_compared, 2);
        // An older retention-start: the records between are missing.
        let mut items = records.clone();
        items.push(Item::C(sign(
            &signer(),
            "n1",
            Kind::RetentionStart,
            2,
            n1[1].hash,
        )));
        assert_bad(&items, all(), "n1", 3, "records 3..5 are missing");
        // A retention-start that does not match the first record.
        let mut items = records.clone();
        items.push(Item::C(sign(
            &signer(),
            "n1",
            Kind::RetentionStart,
            5,
            [3; 32],
        )));
        assert_bad(
            &items,
            all(),
            "n1",
            6,
            "does not link to retention-start checkpoint 5",
        );
    }

    #[test]
    fn a_node_pruned_to_nothing_verifies() {
        let n1 = chain("n1", 5);
        let items = vec![Item::C(sign(
            &signer(),
            "n1",
            Kind::RetentionStart,
            5,
            n1[4].hash,
        ))];
        let report = run(&items, all());
        assert!(report.ok());
        assert_eq!(
            (report.nodes[0].first_seq, report.nodes[0].last_seq),
            (6, 5)
        );
    }

    #[test]
    fn an_export_with_redacted_records_verifies_with_partial_start() {
        // Records 4..=15 of n1, those of tenant t2 redacted, anchored by checkpoint 15.
        let n1 = chain("n1", 20);
        let mut items: Vec<Item> = n1[3..15]
            .iter()
            .map(|r| {
                let own = r.event().unwrap().tenant.as_deref() == Some("t1");
                Item::R(if own { r.clone() } else { r.redacted() })
            })
            .collect();
        items.push(Item::C(periodic(&n1[14])));
        let partial = Options {
            partial_start: true,
            ..all()
        };
        let report = run(&items, partial.clone());
        assert!(report.ok(), "{:?}", report.first_bad);
        assert_eq!(report.nodes[0].last_checkpoint_seq, Some(15));
        let text = jsonl(&items);
        assert!(text.contains("\"event\":null"));
        assert!(verify_jsonl(text.as_bytes(), partial.clone()).unwrap().ok());
        // Not a full chain.
        assert_bad(&items, all(), "n1", 1, "records 1..3 are missing");
        // A redacted record is still chained: changing its digest is found.
        let i = items
            .iter()
            .position(|i| matches!(i, Item::R(r) if r.body.is_none()))
            .unwrap();
        let Item::R(redacted) = &mut items[i] else {
            unreachable!()
        };
        redacted.digest[0] ^= 1;
        let seq = redacted.seq;
        assert_bad(&items, partial, "n1", seq, "hash does not match");
    }

    #[test]
    fn an_event_of_another_node_is_found() {
        let mut items = trail();
        let n1 = chain("n1", 20);
        let mut moved = Record::link("n1", (6, n1[5].hash), &event("n2", 7));
        moved.mac = Some(record_mac(&MAC_KEY, &moved.hash));
        *record_mut(&mut items, "n1", 7) = moved;
        assert_bad(&items, all(), "n1", 7, "names node \"n2\"");
    }

    #[test]
    fn the_first_problem_in_input_order_is_reported_and_the_rest_counted() {
        let mut items = trail();
        record_mut(&mut items, "n1", 14).mac = Some([0; 32]);
        record_mut(&mut items, "n2", 2).mac = Some([0; 32]);
        let report = run(&items, all());
        // n2's record 2 comes after n1's record 6, before n1's 14.
        assert_eq!(report.first_bad.unwrap().seq, 2);
        assert_eq!(report.problems, 2);
    }

    #[test]
    fn a_checkpoint_later_than_the_window_is_not_compared() {
        let items = trail();
        let (checkpoints, records): (Vec<Item>, Vec<Item>) =
            items.into_iter().partition(|i| matches!(i, Item::C(_)));
        let mut verifier = Verifier::with_window(all(), 4);
        for item in records.iter().chain(&checkpoints) {
            match item {
                Item::R(r) => verifier.record(r),
                Item::C(c) => verifier.checkpoint(c),
            }
        }
        let report = verifier.finish();
        assert!(report.ok());
        // n1's 5, 10 and 15 were out of the window; 20 and n2's 6 were in it.
        assert_eq!(report.checkpoints_not_compared, 3);
        assert_eq!(report.nodes[0].last_checkpoint_seq, Some(20));
    }

    #[test]
    fn unreadable_lines_are_errors() {
        let mut text = jsonl(&trail());
        text.insert(0, '\n');
        assert!(verify_jsonl(text.as_bytes(), all()).unwrap().ok());
        text.push_str("{\"type\":\"record\"}\n");
        let err = verify_jsonl(text.as_bytes(), all()).unwrap_err();
        assert!(err.starts_with("line 33 is not an audit record"), "{err}");
        let bad_hex = jsonl(&trail()).replacen("\"hash\":\"", "\"hash\":\"zz", 1);
        let err = verify_jsonl(bad_hex.as_bytes(), all()).unwrap_err();
        assert!(err.starts_with("line 1: "), "{err}");
    }

    #[test]
    fn options_do_not_show_the_mac_key() {
        let shown = format!("{:?}", all());
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains("7, 7"));
    }
}
