//! `kagi.v1.Audit`: query, verify and export the audit trail (auditors only). Reading the
//! trail is itself recorded.

use std::collections::BTreeMap;
use std::pin::Pin;

use futures::Stream;
use kagi_proto::v1 as pb;
use kagi_proto::v1::audit_server;
use tonic::{Request, Response, Status};

use super::Call;
use crate::audit::checkpoint::Checkpoint;
use crate::audit::record::{Event, Line};
use crate::audit::verify::{Options, Report, Verifier};
use crate::auth::policy::Action;
use crate::engine::Engine;
use crate::store::audit::AuditFilter;

/// Records per streamed chunk.
const CHUNK: usize = 500;
/// Default and largest page of a query.
const DEFAULT_LIMIT: u32 = 1000;
const MAX_LIMIT: u32 = 10_000;
/// Records read from the store at a time while verifying or exporting.
const SCAN: u32 = 5000;

/// A stream of query chunks.
pub type Chunks = Pin<Box<dyn Stream<Item = Result<pb::QueryResponse, Status>> + Send>>;

/// The `Audit` service.
#[derive(Debug, Clone)]
pub struct AuditService {
    engine: Engine,
}

impl AuditService {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    /// Checks every chain in the store.
    pub async fn verify_store(&self) -> Result<Report, Status> {
        let keys = self.engine.keyring().unsealed().ok();
        let options = Options {
            public_key: keys.as_ref().map(|k| k.audit_public_key()),
            mac_key: keys.as_ref().map(|k| k.audit_mac_key()),
            partial_start: false,
        };
        drop(keys);
        let mut verifier = Verifier::new(options);
        let store = self.engine.store();
        for checkpoint in store.audit_checkpoints().await? {
            verifier.checkpoint(&checkpoint);
        }
        let mut misfiled: Option<(String, u64)> = None;
        let mut after: Option<(String, u64)> = None;
        loop {
            let rows = store
                .audit_scan(after.as_ref().map(|(n, s)| (n.as_str(), *s)), SCAN)
                .await?;
            for row in &rows {
                verifier.record(&row.record);
                if misfiled.is_none() && !row.columns_match_body() {
                    misfiled = Some((row.record.node.clone(), row.record.seq));
                }
            }
            match rows.last() {
                Some(last) if rows.len() == SCAN as usize => {
                    after = Some((last.record.node.clone(), last.record.seq));
                }
                _ => break,
            }
        }
        let mut report = verifier.finish();
        if let (Some((node, seq)), None) = (misfiled, &report.first_bad) {
            report.first_bad = Some(crate::audit::verify::Finding {
                node,
                seq,
                problem: "the record's filter columns differ from its body (edited)".into(),
            });
        }
        Ok(report)
    }
}

#[tonic::async_trait]
impl audit_server::Audit for AuditService {
    type QueryStream = Chunks;
    type ExportStream = Chunks;

    async fn query(&self, request: Request<pb::QueryRequest>) -> Result<Response<Chunks>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "Query", Action::ReadAudit).await?;
        let req = request.into_inner();
        let resource = describe_query(&req);
        let result = async {
            let limit = match req.limit {
                0 => DEFAULT_LIMIT,
                n => n.min(MAX_LIMIT),
            };
            let filter = filter_of(&req)?;
            let rows = self.engine.store().audit_query(&filter, limit).await?;
            let next = match rows.last() {
                Some(last) if rows.len() == limit as usize => {
                    format!("{}:{}:{}", last.time_ms, last.record.seq, last.record.node)
                }
                _ => String::new(),
            };
            Ok(chunks(
                rows.iter()
                    .map(|r| line(&Line::of_record(&r.record)))
                    .collect(),
                next,
            ))
        }
        .await;
        call.finish(&resource, result).await.map(Response::new)
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "Verify", Action::ReadAudit).await?;
        let result = async {
            let report = self.verify_store().await?;
            let public_key = self
                .engine
                .keyring()
                .unsealed()
                .map(|k| hex::encode(k.audit_public_key().to_bytes()))
                .unwrap_or_default();
            let bad = report.first_bad.clone();
            Ok(pb::VerifyResponse {
                ok: report.ok(),
                records: report.records,
                checkpoints: report.checkpoints,
                first_bad_node: bad.as_ref().map(|b| b.node.clone()).unwrap_or_default(),
                first_bad_seq: bad.as_ref().map_or(0, |b| b.seq),
                problem: bad.map(|b| b.problem).unwrap_or_default(),
                macs_checked: report.macs_checked,
                public_key,
                heads: report
                    .nodes
                    .iter()
                    .map(|n| pb::ChainHead {
                        node: n.node.clone(),
                        first_seq: n.first_seq,
                        last_seq: n.last_seq,
                        last_hash: hex::encode(n.last_hash),
                        last_checkpoint_seq: n.last_checkpoint_seq.unwrap_or(0),
                    })
                    .collect(),
            })
        }
        .await;
        call.finish("audit trail", result).await.map(Response::new)
    }

    async fn export(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Chunks>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "Export", Action::ReadAudit).await?;
        let req = request.into_inner();
        let resource = format!(
            "tenant {} from {} to {}",
            req.tenant, req.from_ms, req.to_ms
        );
        let result = async {
            let tenant = self.engine.resolve_tenant(&req.tenant).await?;
            call.tenant(&tenant.id);
            // A fresh checkpoint, so that the export's newest records are proven too.
            let marker = Event {
                time_ms: self.engine.now_ms(),
                node: self.engine.audit().node().to_owned(),
                operation: "AuditExportStarted".into(),
                principal: Some(call.principal().id.clone()),
                role: Some(call.principal().role.as_str().to_owned()),
                tenant: Some(tenant.id.clone()),
                resource: Some(resource.clone()),
                outcome: "OK".into(),
                protocol: "internal".into(),
                request_id: String::new(),
                ..Event::default()
            };
            self.engine
                .audit()
                .append_with_checkpoint(marker)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            let lines = self
                .export_lines(&tenant.id, req.from_ms, req.to_ms)
                .await?;
            Ok(chunks(lines, String::new()))
        }
        .await;
        call.finish(&resource, result).await.map(Response::new)
    }
}

impl AuditService {
    /// The export of `tenant`'s records in `[from_ms, to_ms)`: per node, the stretch of chain
    /// from its first such record to the checkpoint after its last, other tenants' records
    /// redacted, and the checkpoints in the stretch.
    async fn export_lines(
        &self,
        tenant: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<String>, Status> {
        let store = self.engine.store();
        let filter = AuditFilter {
            from_ms: (from_ms != 0).then_some(from_ms),
            to_ms: (to_ms != 0).then_some(to_ms),
            tenant_id: Some(tenant.to_owned()),
            ..AuditFilter::default()
        };
        // First and last seq of the tenant's records per node.
        let mut spans: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut page = filter.clone();
        loop {
            let rows = store.audit_query(&page, SCAN).await?;
            for row in &rows {
                let span = spans
                    .entry(row.record.node.clone())
                    .or_insert((row.record.seq, row.record.seq));
                span.0 = span.0.min(row.record.seq);
                span.1 = span.1.max(row.record.seq);
            }
            match rows.last() {
                Some(last) if rows.len() == SCAN as usize => {
                    page.after = Some((last.time_ms, last.record.node.clone(), last.record.seq));
                }
                _ => break,
            }
        }
        let checkpoints = store.audit_checkpoints().await?;
        let mut lines = Vec::new();
        for (node, (first, last)) in spans {
            let end = checkpoints
                .iter()
                .filter(|c| c.node == node && c.seq >= last)
                .map(|c| c.seq)
                .min()
                .unwrap_or(last);
            let mut from = first;
            while from <= end {
                let rows = store
                    .audit_range(&node, from, (from + u64::from(SCAN) - 1).min(end))
                    .await?;
                for row in &rows {
                    let mine = row.tenant_id.as_deref() == Some(tenant)
                        && filter.from_ms.is_none_or(|f| row.time_ms >= f)
                        && filter.to_ms.is_none_or(|t| row.time_ms < t);
                    let record = if mine {
                        row.record.clone()
                    } else {
                        row.record.redacted()
                    };
                    lines.push(line(&Line::of_record(&record)));
                }
                from += u64::from(SCAN);
            }
            for checkpoint in checkpoints
                .iter()
                .filter(|c| c.node == node && c.seq + 1 >= first && c.seq <= end)
            {
                lines.push(line(&Line::Checkpoint(Checkpoint::clone(checkpoint))));
            }
        }
        Ok(lines)
    }
}

fn filter_of(req: &pb::QueryRequest) -> Result<AuditFilter, Status> {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let after = match req.page_token.as_str() {
        "" => None,
        token => {
            let mut parts = token.splitn(3, ':');
            let parsed = (|| {
                let time = parts.next()?.parse().ok()?;
                let seq = parts.next()?.parse().ok()?;
                Some((time, parts.next()?.to_owned(), seq))
            })();
            Some(parsed.ok_or_else(|| {
                Status::invalid_argument("page_token is not one this server returned")
            })?)
        }
    };
    Ok(AuditFilter {
        from_ms: (req.from_ms != 0).then_some(req.from_ms),
        to_ms: (req.to_ms != 0).then_some(req.to_ms),
        tenant_id: text(&req.tenant),
        principal_id: text(&req.principal),
        key_id: text(&req.key_id),
        operation: text(&req.operation),
        outcome: text(&req.outcome),
        after,
    })
}

fn describe_query(req: &pb::QueryRequest) -> String {
    let mut parts = Vec::new();
    for (name, value) in [
        ("tenant", &req.tenant),
        ("principal", &req.principal),
        ("key", &req.key_id),
        ("operation", &req.operation),
        ("outcome", &req.outcome),
    ] {
        if !value.is_empty() {
            parts.push(format!("{name}={value}"));
        }
    }
    if req.from_ms != 0 || req.to_ms != 0 {
        parts.push(format!("time={}..{}", req.from_ms, req.to_ms));
    }
    if parts.is_empty() {
        "all records".into()
    } else {
        parts.join(" ")
    }
}

fn line(line: &Line) -> String {
    serde_json::to_string(line).expect("a line serializes")
}

/// Lines in chunks of [`CHUNK`]; the last chunk carries `next`.
fn chunks(lines: Vec<String>, next: String) -> Chunks {
    let mut out: Vec<Result<pb::QueryResponse, Status>> = lines
        .chunks(CHUNK)
        .map(|c| {
            Ok(pb::QueryResponse {
                lines: c.to_vec(),
                next_page_token: String::new(),
            })
        })
        .collect();
    match out.last_mut() {
        Some(Ok(last)) => last.next_page_token = next,
        _ => out.push(Ok(pb::QueryResponse {
            lines: Vec::new(),
            next_page_token: next,
        })),
    }
    Box::pin(futures::stream::iter(out))
}
