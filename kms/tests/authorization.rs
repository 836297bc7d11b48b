//! Tenant isolation and roles for every RPC: one row per RPC, one column per kind of caller.
//! A row for every RPC in the .proto files is required, so a new RPC cannot slip in untested.

mod common;

use std::collections::BTreeSet;

use common::{TestServer, backends, ctx};
use kagi_sdk::{Kagi, pb};
use tonic::{Code, Status};

/// The callers, in column order.
const CALLERS: [&str; 7] = [
    "admin",
    "auditor",
    "service-a",
    "service-b",
    "no-token",
    "revoked",
    "custodian",
];

/// Expected outcome per caller: `Ok` or the refusal code.
type Row = [Option<Code>; 7];

const OK: Option<Code> = None;
const DENIED: Option<Code> = Some(Code::PermissionDenied);
const UNAUTH: Option<Code> = Some(Code::Unauthenticated);
/// Allowed, but refused by the server's state (this server was unsealed without a ceremony).
const STATE: Option<Code> = Some(Code::FailedPrecondition);

/// Everything an RPC call needs: tenant A's resources and tenant B's key.
struct Fixtures {
    key_a: String,
    spare_key_a: String,
    key_b: String,
    ciphertext_a: Vec<u8>,
    custodian_keys: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Rpc {
    CreateTenant,
    ListTenants,
    CreateKey,
    GetKey,
    ListKeys,
    RotateKey,
    DisableKey,
    EnableKey,
    CancelKeyDestruction,
    SetRetentionHold,
    GetDestructionRecord,
    RotateDue,
    VersionUsage,
    Encrypt,
    Decrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    ReEncrypt,
    ReEncryptToOtherTenant,
    ReEncryptBatch,
    ReEncryptBatchToOtherTenant,
    CreatePrincipal,
    ListPrincipals,
    RevokePrincipal,
    Status,
    Enroll,
    ListCustodians,
    Init,
    Unseal,
    CancelUnseal,
    StartRekey,
    SubmitRekeyShare,
    VerifyRekeyShare,
    GetRekey,
    CancelRekey,
    Seal,
    Query,
    Verify,
    Export,
    Propose,
    Approve,
    GetProposal,
    ListProposals,
    CancelProposal,
    GetBundle,
    GetSigner,
    StageImport,
    GetImport,
    SubmitEscrowShare,
}

/// The authorization table.
fn table() -> Vec<(Rpc, Row)> {
    use Rpc::*;
    let admin_only = [OK, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, DENIED];
    let readers = [OK, OK, DENIED, DENIED, UNAUTH, UNAUTH, DENIED];
    let tenant_readers = [OK, OK, OK, DENIED, UNAUTH, UNAUTH, DENIED];
    let service_a_only = [DENIED, DENIED, OK, DENIED, UNAUTH, UNAUTH, DENIED];
    let custody_readers = [OK, OK, DENIED, DENIED, UNAUTH, UNAUTH, OK];
    let ceremony_leads = [OK, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, OK];
    let share_holders = [DENIED, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, STATE];
    let not_found = Some(Code::NotFound);
    let auditors = [DENIED, OK, DENIED, DENIED, UNAUTH, UNAUTH, DENIED];
    vec![
        (CreateTenant, admin_only),
        (ListTenants, readers),
        (CreateKey, admin_only),
        (GetKey, tenant_readers),
        (ListKeys, tenant_readers),
        (RotateKey, admin_only),
        (DisableKey, admin_only),
        (EnableKey, admin_only),
        // No destruction is scheduled: the admin passes authorization and meets the state.
        (
            CancelKeyDestruction,
            [STATE, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, DENIED],
        ),
        (SetRetentionHold, admin_only),
        // The key is not destroyed: readers pass authorization and meet its state.
        (
            GetDestructionRecord,
            [STATE, STATE, STATE, DENIED, UNAUTH, UNAUTH, DENIED],
        ),
        // Nothing is due: the admin's run rotates nothing.
        (RotateDue, admin_only),
        (VersionUsage, tenant_readers),
        (Encrypt, service_a_only),
        (Decrypt, service_a_only),
        (GenerateDataKey, service_a_only),
        (GenerateDataKeyWithoutPlaintext, service_a_only),
        (ReEncrypt, service_a_only),
        // Even tenant A's own service may not re-encrypt into tenant B's key.
        (
            ReEncryptToOtherTenant,
            [DENIED, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, DENIED],
        ),
        // One item; an item's refusal is the row's outcome (and the record's).
        (ReEncryptBatch, service_a_only),
        (
            ReEncryptBatchToOtherTenant,
            [DENIED, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, DENIED],
        ),
        (CreatePrincipal, admin_only),
        (ListPrincipals, readers),
        (RevokePrincipal, admin_only),
        // Seal status is public: it reveals nothing secret and custodians need it before
        // they hold a token that works.
        (Status, [OK; 7]),
        (Enroll, admin_only),
        (ListCustodians, custody_readers),
        // The store already holds keys (made under a test root), so Init refuses it.
        (
            Init,
            [STATE, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, DENIED],
        ),
        // Already unsealed.
        (Unseal, share_holders),
        (CancelUnseal, ceremony_leads),
        // Not initialised: nothing to rekey.
        (
            StartRekey,
            [STATE, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, STATE],
        ),
        (SubmitRekeyShare, share_holders),
        (VerifyRekeyShare, share_holders),
        (
            GetRekey,
            [
                not_found, not_found, DENIED, DENIED, UNAUTH, UNAUTH, not_found,
            ],
        ),
        (CancelRekey, ceremony_leads),
        // Only auditors read the audit trail; admins are audited, not auditors (A2).
        (Query, auditors),
        (Verify, auditors),
        (Export, auditors),
        (Propose, ceremony_leads),
        // The custodian has the role, but enrolled no signing key.
        (
            Approve,
            [DENIED, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, DENIED],
        ),
        (GetProposal, custody_readers),
        (ListProposals, custody_readers),
        // Only the proposer (here the admin) may cancel.
        (
            CancelProposal,
            [OK, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, DENIED],
        ),
        // Escrow: nothing was exported or staged, so readers meet NOT_FOUND.
        (
            GetBundle,
            [not_found, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, not_found],
        ),
        (GetSigner, [OK, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, OK]),
        // The admin passes authorization and meets the validation of "{}".
        (
            StageImport,
            [
                Some(Code::InvalidArgument),
                DENIED,
                DENIED,
                DENIED,
                UNAUTH,
                UNAUTH,
                DENIED,
            ],
        ),
        (
            GetImport,
            [not_found, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, not_found],
        ),
        // Only custodians bring escrow shares (admins never hold key material, A2).
        (
            SubmitEscrowShare,
            [DENIED, DENIED, DENIED, DENIED, UNAUTH, UNAUTH, not_found],
        ),
        // Last: it seals the server.
        (Seal, ceremony_leads),
    ]
}

impl Rpc {
    /// The gRPC method this row covers.
    fn method(self) -> &'static str {
        match self {
            Rpc::ReEncryptToOtherTenant => "ReEncrypt",
            Rpc::ReEncryptBatchToOtherTenant => "ReEncryptBatch",
            other => {
                let name = format!("{other:?}");
                Box::leak(name.into_boxed_str())
            }
        }
    }

    async fn call(self, client: &Kagi, admin: &Kagi, f: &Fixtures, n: usize) -> Result<(), Status> {
        let context = ctx(&[("record", "grades")]);
        let (mut keys, mut crypto, mut principals) =
            (client.keys(), client.crypto(), client.principals());
        let mut custodians = client.custodians();
        let two_keys = || f.custodian_keys.clone();
        match self {
            Rpc::CreateTenant => keys
                .create_tenant(pb::CreateTenantRequest {
                    name: format!("t-{n}"),
                })
                .await
                .map(drop),
            Rpc::ListTenants => keys.list_tenants(pb::ListTenantsRequest {}).await.map(drop),
            Rpc::CreateKey => keys
                .create_key(pb::CreateKeyRequest {
                    tenant: "tenant-a".into(),
                    name: format!("k-{n}"),
                    purpose: pb::Purpose::PersonalInformation as i32,
                    importance_class: pb::ImportanceClass::ClassI as i32,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::GetKey => keys
                .get_key(pb::GetKeyRequest {
                    key: f.key_a.clone(),
                })
                .await
                .map(drop),
            Rpc::ListKeys => keys
                .list_keys(pb::ListKeysRequest {
                    tenant: "tenant-a".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::RotateKey => keys
                .rotate_key(pb::RotateKeyRequest {
                    key: f.key_a.clone(),
                    expected_current_version: 0,
                })
                .await
                .map(drop),
            Rpc::DisableKey => keys
                .disable_key(pb::DisableKeyRequest {
                    key: f.spare_key_a.clone(),
                })
                .await
                .map(drop),
            Rpc::EnableKey => keys
                .enable_key(pb::EnableKeyRequest {
                    key: f.spare_key_a.clone(),
                })
                .await
                .map(drop),
            Rpc::CancelKeyDestruction => keys
                .cancel_key_destruction(pb::CancelKeyDestructionRequest {
                    key: f.spare_key_a.clone(),
                })
                .await
                .map(drop),
            Rpc::SetRetentionHold => keys
                .set_retention_hold(pb::SetRetentionHoldRequest {
                    key: f.spare_key_a.clone(),
                    // Each call lengthens the hold a little (a hold never shortens).
                    until: 2_000_000_000 + n as i64,
                    reason: "school records law".into(),
                })
                .await
                .map(drop),
            Rpc::GetDestructionRecord => keys
                .get_destruction_record(pb::GetDestructionRecordRequest {
                    key: f.key_a.clone(),
                })
                .await
                .map(drop),
            Rpc::RotateDue => keys
                .rotate_due(pb::RotateDueRequest {
                    tenant: "tenant-a".into(),
                    dry_run: false,
                })
                .await
                .map(drop),
            Rpc::VersionUsage => keys
                .version_usage(pb::VersionUsageRequest {
                    key: f.key_a.clone(),
                })
                .await
                .map(drop),
            Rpc::Encrypt => crypto
                .encrypt(pb::EncryptRequest {
                    key_id: f.key_a.clone(),
                    plaintext: b"x".to_vec(),
                    context,
                })
                .await
                .map(drop),
            Rpc::Decrypt => crypto
                .decrypt(pb::DecryptRequest {
                    ciphertext: f.ciphertext_a.clone(),
                    context,
                })
                .await
                .map(drop),
            Rpc::GenerateDataKey => crypto
                .generate_data_key(pb::GenerateDataKeyRequest {
                    key_id: f.key_a.clone(),
                    context,
                    spec: 0,
                })
                .await
                .map(drop),
            Rpc::GenerateDataKeyWithoutPlaintext => crypto
                .generate_data_key_without_plaintext(pb::GenerateDataKeyRequest {
                    key_id: f.key_a.clone(),
                    context,
                    spec: 0,
                })
                .await
                .map(drop),
            Rpc::ReEncrypt | Rpc::ReEncryptToOtherTenant => {
                let destination = if matches!(self, Rpc::ReEncrypt) {
                    f.key_a.clone()
                } else {
                    f.key_b.clone()
                };
                crypto
                    .re_encrypt(pb::ReEncryptRequest {
                        ciphertext: f.ciphertext_a.clone(),
                        source_context: context.clone(),
                        destination_key_id: destination,
                        destination_context: context,
                    })
                    .await
                    .map(drop)
            }
            Rpc::ReEncryptBatch | Rpc::ReEncryptBatchToOtherTenant => {
                let destination = if matches!(self, Rpc::ReEncryptBatch) {
                    f.key_a.clone()
                } else {
                    f.key_b.clone()
                };
                let item = pb::ReEncryptRequest {
                    ciphertext: f.ciphertext_a.clone(),
                    source_context: context.clone(),
                    destination_key_id: destination,
                    destination_context: context,
                };
                let results = crypto
                    .re_encrypt_batch(pb::ReEncryptBatchRequest { items: vec![item] })
                    .await?
                    .into_inner()
                    .results;
                let [one] = results.as_slice() else {
                    panic!("one result expected: {results:?}");
                };
                use pb::re_encrypt_result::Result as Item;
                match one.result.clone() {
                    Some(Item::Ok(_)) => Ok(()),
                    Some(Item::Error(e)) => Err(Status::new(code_named(&e.code), e.message)),
                    None => panic!("a result with neither answer nor error"),
                }
            }
            Rpc::CreatePrincipal => principals
                .create_principal(pb::CreatePrincipalRequest {
                    name: format!("p-{n}"),
                    role: pb::Role::Auditor as i32,
                    tenant: String::new(),
                })
                .await
                .map(drop),
            Rpc::ListPrincipals => principals
                .list_principals(pb::ListPrincipalsRequest {})
                .await
                .map(drop),
            Rpc::RevokePrincipal => {
                // A fresh victim each time, made by the admin.
                let victim = format!("victim-{n}");
                common::principal(admin, &victim, pb::Role::Auditor, "").await;
                principals
                    .revoke_principal(pb::RevokePrincipalRequest { principal: victim })
                    .await
                    .map(drop)
            }
            Rpc::Status => custodians.status(pb::StatusRequest {}).await.map(drop),
            Rpc::Enroll => custodians
                .enroll(pb::EnrollRequest {
                    name: format!("c-{n}"),
                    person_name: "Someone".into(),
                    public_key: age::x25519::Identity::generate().to_public().to_string(),
                    acknowledgement_sha256: vec![1; 32],
                    signing_public_key: String::new(),
                })
                .await
                .map(drop),
            Rpc::ListCustodians => custodians
                .list_custodians(pb::ListCustodiansRequest {})
                .await
                .map(drop),
            Rpc::Init => custodians
                .init(pb::InitRequest {
                    custodian_public_keys: two_keys(),
                    threshold: 2,
                })
                .await
                .map(drop),
            Rpc::Unseal => custodians
                .unseal(pb::UnsealRequest {
                    share: vec![0; 59],
                    session_id: String::new(),
                })
                .await
                .map(drop),
            Rpc::CancelUnseal => custodians
                .cancel_unseal(pb::CancelUnsealRequest {})
                .await
                .map(drop),
            Rpc::StartRekey => custodians
                .start_rekey(pb::StartRekeyRequest {
                    custodian_public_keys: two_keys(),
                    threshold: 2,
                })
                .await
                .map(drop),
            Rpc::SubmitRekeyShare => custodians
                .submit_rekey_share(pb::SubmitRekeyShareRequest {
                    session_id: "none".into(),
                    share: vec![0; 59],
                })
                .await
                .map(drop),
            Rpc::VerifyRekeyShare => custodians
                .verify_rekey_share(pb::VerifyRekeyShareRequest {
                    session_id: "none".into(),
                    share: vec![0; 59],
                })
                .await
                .map(drop),
            Rpc::GetRekey => custodians.get_rekey(pb::GetRekeyRequest {}).await.map(drop),
            Rpc::CancelRekey => custodians
                .cancel_rekey(pb::CancelRekeyRequest {})
                .await
                .map(drop),
            Rpc::Seal => custodians.seal(pb::SealRequest {}).await.map(drop),
            Rpc::Propose => client
                .quorum()
                .propose(pb::ProposeRequest {
                    operation: Some(lockdown_of_tenant_a()),
                    ttl_seconds: 0,
                })
                .await
                .map(drop),
            Rpc::GetBundle => client
                .escrow()
                .get_bundle(pb::GetBundleRequest {
                    proposal_id: "00000000-0000-0000-0000-000000000000".into(),
                })
                .await
                .map(drop),
            Rpc::GetSigner => client
                .escrow()
                .get_signer(pb::GetSignerRequest {})
                .await
                .map(drop),
            Rpc::StageImport => client
                .escrow()
                .stage_import(pb::StageImportRequest {
                    bundle: "{}".into(),
                    expected_signer: String::new(),
                })
                .await
                .map(drop),
            Rpc::GetImport => client
                .escrow()
                .get_import(pb::GetImportRequest {
                    bundle_digest: "ab".repeat(32),
                })
                .await
                .map(drop),
            Rpc::SubmitEscrowShare => client
                .escrow()
                .submit_escrow_share(pb::SubmitEscrowShareRequest {
                    bundle_digest: "ab".repeat(32),
                    share: vec![0; 8],
                })
                .await
                .map(drop),
            Rpc::Approve | Rpc::GetProposal | Rpc::CancelProposal => {
                // A fresh proposal by the admin each time.
                let id = admin
                    .quorum()
                    .propose(pb::ProposeRequest {
                        operation: Some(lockdown_of_tenant_a()),
                        ttl_seconds: 0,
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .proposal
                    .unwrap()
                    .id;
                let mut quorum = client.quorum();
                match self {
                    Rpc::Approve => quorum
                        .approve(pb::ApproveRequest {
                            proposal_id: id,
                            signature: vec![0; 64],
                        })
                        .await
                        .map(drop),
                    Rpc::GetProposal => quorum
                        .get_proposal(pb::GetProposalRequest { proposal_id: id })
                        .await
                        .map(drop),
                    _ => quorum
                        .cancel_proposal(pb::CancelProposalRequest { proposal_id: id })
                        .await
                        .map(drop),
                }
            }
            Rpc::ListProposals => client
                .quorum()
                .list_proposals(pb::ListProposalsRequest { pending_only: true })
                .await
                .map(drop),
            Rpc::Query => {
                drain(
                    client
                        .audit()
                        .query(pb::QueryRequest {
                            limit: 10,
                            ..Default::default()
                        })
                        .await,
                )
                .await
            }
            Rpc::Verify => client.audit().verify(pb::VerifyRequest {}).await.map(drop),
            Rpc::Export => {
                drain(
                    client
                        .audit()
                        .export(pb::ExportRequest {
                            tenant: "tenant-a".into(),
                            ..Default::default()
                        })
                        .await,
                )
                .await
            }
        }
    }
}

/// The code a batch item's error names (`PERMISSION_DENIED`).
fn code_named(name: &str) -> Code {
    (0..=16)
        .map(Code::from_i32)
        .find(|code| kagi_kms::service::call::code_name(*code) == name)
        .unwrap_or_else(|| panic!("no gRPC code is named {name:?}"))
}

/// A lockdown of tenant A, as a proposal's operation (never approved here).
fn lockdown_of_tenant_a() -> pb::Operation {
    pb::Operation {
        kind: Some(pb::operation::Kind::Lockdown(pb::Lockdown {
            tenant: "tenant-a".into(),
            reason: "authorization table".into(),
        })),
    }
}

/// The head seq of the server's audit chain.
async fn head(server: &TestServer) -> u64 {
    let node = server.engine.audit().node();
    server
        .engine
        .store()
        .audit_head(node)
        .await
        .unwrap()
        .map_or(0, |(seq, _)| seq)
}

/// Checks the audit record the call just made: operation, outcome, who, from where, and what
/// it touched.
async fn check_audit(
    server: &TestServer,
    before: u64,
    rpc: Rpc,
    column: usize,
    got: Option<Code>,
    f: &Fixtures,
) -> Result<(), String> {
    let node = server.engine.audit().node();
    let seq = head(server).await;
    if seq <= before {
        return Err("no record was written".into());
    }
    let row = server
        .engine
        .store()
        .audit_range(node, seq, seq)
        .await
        .unwrap()
        .remove(0);
    let event = row.record.event().ok_or("the body does not parse")?;
    let expect = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("{what}: {event:?}"))
        }
    };
    expect(event.operation == rpc.method(), "operation")?;
    let outcome = got.map_or("OK", kagi_kms::service::call::code_name);
    expect(event.outcome == outcome, "outcome")?;
    expect(event.reason.is_some() == got.is_some(), "reason")?;
    let authenticated =
        !matches!(CALLERS[column], "no-token" | "revoked") && !matches!(rpc, Rpc::Status);
    expect(event.principal.is_some() == authenticated, "principal")?;
    expect(event.role.is_some() == authenticated, "role")?;
    expect(event.node == node && event.time_ms > 0, "node and time")?;
    expect(
        event
            .peer
            .as_deref()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "peer",
    )?;
    expect(
        event.protocol == "grpc" && !event.request_id.is_empty(),
        "origin",
    )?;
    let uses_key_a = matches!(
        rpc,
        Rpc::Encrypt
            | Rpc::GenerateDataKey
            | Rpc::GenerateDataKeyWithoutPlaintext
            | Rpc::GetKey
            | Rpc::RotateKey
    );
    if uses_key_a && authenticated && got != Some(Code::Unauthenticated) {
        // Roles that may not use keys at all are refused before any lookup.
        if event.key_id.is_some() {
            expect(event.key_id.as_deref() == Some(f.key_a.as_str()), "key")?;
        }
    }
    if matches!(rpc, Rpc::Encrypt | Rpc::Decrypt | Rpc::GenerateDataKey) && got.is_none() {
        expect(event.key_id.as_deref() == Some(f.key_a.as_str()), "key")?;
        expect(event.key_version.is_some(), "version")?;
        expect(event.tenant.is_some(), "tenant")?;
        let value = event.context.get("record").ok_or("no context key")?;
        expect(
            value.starts_with("hmac-sha256:") && !value.contains("grades"),
            "context value",
        )?;
    }
    Ok(())
}

/// Reads a server stream to its end.
async fn drain(
    response: Result<tonic::Response<tonic::Streaming<pb::QueryResponse>>, Status>,
) -> Result<(), Status> {
    let mut stream = response?.into_inner();
    while stream.message().await?.is_some() {}
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rpc_obeys_the_authorization_table() {
    for backend in backends() {
        let server = TestServer::start(backend).await;
        let admin = server.admin().await;
        common::tenant(&admin, "tenant-a").await;
        common::tenant(&admin, "tenant-b").await;
        let key_a = common::key(&admin, "tenant-a", "grades").await.id;
        let spare_key_a = common::key(&admin, "tenant-a", "spare").await.id;
        let key_b = common::key(&admin, "tenant-b", "grades").await.id;
        let auditor = common::principal(&admin, "auditor-1", pb::Role::Auditor, "").await;
        let service_a =
            common::principal(&admin, "svc-a", pb::Role::TenantService, "tenant-a").await;
        let service_b =
            common::principal(&admin, "svc-b", pb::Role::TenantService, "tenant-b").await;
        let revoked = common::principal(&admin, "gone", pb::Role::Admin, "").await;
        admin
            .principals()
            .revoke_principal(pb::RevokePrincipalRequest {
                principal: "gone".into(),
            })
            .await
            .unwrap();
        let client_a = server.client(&service_a).await;
        let ciphertext_a = client_a
            .crypto()
            .encrypt(pb::EncryptRequest {
                key_id: key_a.clone(),
                plaintext: b"x".to_vec(),
                context: ctx(&[("record", "grades")]),
            })
            .await
            .unwrap()
            .into_inner()
            .ciphertext;
        let mut custodian_keys = Vec::new();
        let mut custodian_tokens = Vec::new();
        for name in ["custodian-1", "custodian-2"] {
            let public_key = age::x25519::Identity::generate().to_public().to_string();
            let enrolled = admin
                .custodians()
                .enroll(pb::EnrollRequest {
                    name: name.into(),
                    person_name: name.into(),
                    public_key: public_key.clone(),
                    acknowledgement_sha256: vec![9; 32],
                    signing_public_key: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            custodian_keys.push(public_key);
            custodian_tokens.push(enrolled.token);
        }
        let fixtures = Fixtures {
            key_a,
            spare_key_a,
            key_b,
            ciphertext_a,
            custodian_keys,
        };
        let no_token = kagi_sdk::Kagi::connect(server.endpoint.clone())
            .build()
            .await
            .unwrap();
        let clients = [
            admin.clone(),
            server.client(&auditor).await,
            client_a,
            server.client(&service_b).await,
            no_token,
            server.client(&revoked).await,
            server.client(&custodian_tokens[0]).await,
        ];

        let mut n = 0;
        let mut failures = Vec::new();
        for (rpc, row) in table() {
            for (column, expected) in row.iter().enumerate() {
                n += 1;
                let before = head(&server).await;
                let outcome = rpc.call(&clients[column], &admin, &fixtures, n).await;
                let got = outcome.as_ref().err().map(Status::code);
                if got != *expected {
                    failures.push(format!(
                        "{backend:?} {rpc:?} as {}: expected {expected:?}, got {outcome:?}",
                        CALLERS[column]
                    ));
                }
                if let Err(problem) =
                    check_audit(&server, before, rpc, column, got, &fixtures).await
                {
                    failures.push(format!(
                        "{backend:?} {rpc:?} as {}: audit record: {problem}",
                        CALLERS[column]
                    ));
                }
                if let Err(status) = &outcome
                    && status.code() == Code::PermissionDenied
                {
                    assert!(!status.message().is_empty());
                }
            }
        }
        assert!(
            failures.is_empty(),
            "authorization table violations:\n{}",
            failures.join("\n")
        );
        server.stop().await;
    }
}

#[test]
fn the_table_covers_every_rpc_in_the_protos() {
    let protos = [
        include_str!("../../proto/kagi/v1/key_management.proto"),
        include_str!("../../proto/kagi/v1/crypto.proto"),
        include_str!("../../proto/kagi/v1/principals.proto"),
        include_str!("../../proto/kagi/v1/custodian.proto"),
        include_str!("../../proto/kagi/v1/audit.proto"),
        include_str!("../../proto/kagi/v1/quorum.proto"),
        include_str!("../../proto/kagi/v1/escrow.proto"),
    ];
    let declared: BTreeSet<String> = protos
        .iter()
        .flat_map(|text| text.lines())
        .filter_map(|line| line.trim().strip_prefix("rpc "))
        .map(|rest| rest.split('(').next().unwrap().trim().to_owned())
        .collect();
    let covered: BTreeSet<String> = table()
        .iter()
        .map(|(rpc, _)| rpc.method().to_owned())
        .collect();
    assert_eq!(declared, covered);
}
