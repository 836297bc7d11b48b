//! Conversions between the model and the protobuf messages of `kagi.v1`.

use kagi_proto::v1 as pb;
use tonic::Status;

use crate::model::{
    Algorithm, Domain, ImportanceClass, Key, KeyState, KeyVersion, Principal, Purpose, Role,
    Tenant, VersionState,
};

/// A protobuf tenant.
pub fn tenant(t: &Tenant) -> pb::Tenant {
    pb::Tenant {
        id: t.id.clone(),
        name: t.name.clone(),
        created_at: t.created_at,
    }
}

/// The protobuf form of a version state.
pub fn version_state(state: VersionState) -> pb::VersionState {
    match state {
        VersionState::Active => pb::VersionState::Active,
        VersionState::Deactivated => pb::VersionState::Deactivated,
        VersionState::Destroyed => pb::VersionState::VersionDestroyed,
        VersionState::Compromised => pb::VersionState::VersionCompromised,
        VersionState::DestroyedCompromised => pb::VersionState::VersionDestroyedCompromised,
    }
}

/// A protobuf key with the given versions (empty for listings).
pub fn key(k: &Key, versions: &[KeyVersion]) -> pb::Key {
    pb::Key {
        id: k.id.clone(),
        tenant_id: k.tenant_id.clone(),
        name: k.name.clone(),
        purpose: purpose_to_pb(k.purpose) as i32,
        importance_class: class_to_pb(k.class) as i32,
        domain: domain_to_pb(k.domain) as i32,
        algorithm: match k.algorithm {
            Algorithm::Aes256GcmHkdfSha256 => pb::Algorithm::Aes256GcmHkdfSha256 as i32,
        },
        rotation_period_days: k.rotation_period_days,
        state: match k.state {
            KeyState::Enabled => pb::KeyState::Enabled,
            KeyState::Disabled => pb::KeyState::Disabled,
            KeyState::PendingDestruction => pb::KeyState::PendingDestruction,
            KeyState::Destroyed => pb::KeyState::Destroyed,
        } as i32,
        primary_version: k.primary_version,
        created_at: k.created_at,
        updated_at: k.updated_at,
        next_rotation_at: k.next_rotation_at(),
        versions: versions
            .iter()
            .map(|v| pb::KeyVersion {
                version: v.version,
                state: version_state(v.state) as i32,
                created_at: v.created_at,
            })
            .collect(),
    }
}

/// A protobuf principal.
pub fn principal(p: &Principal) -> pb::Principal {
    pb::Principal {
        id: p.id.clone(),
        name: p.name.clone(),
        role: role_to_pb(p.role) as i32,
        tenant_id: p.tenant_id.clone().unwrap_or_default(),
        created_at: p.created_at,
        revoked_at: p.revoked_at.unwrap_or(0),
    }
}

fn purpose_to_pb(p: Purpose) -> pb::Purpose {
    match p {
        Purpose::PersonalInformation => pb::Purpose::PersonalInformation,
        Purpose::LearningRecord => pb::Purpose::LearningRecord,
        Purpose::SchoolAdministration => pb::Purpose::SchoolAdministration,
        Purpose::Other => pb::Purpose::Other,
    }
}

fn class_to_pb(c: ImportanceClass) -> pb::ImportanceClass {
    match c {
        ImportanceClass::I => pb::ImportanceClass::ClassI,
        ImportanceClass::Ii => pb::ImportanceClass::ClassIi,
        ImportanceClass::Iii => pb::ImportanceClass::ClassIii,
        ImportanceClass::Iv => pb::ImportanceClass::ClassIv,
    }
}

fn domain_to_pb(d: Domain) -> pb::Domain {
    match d {
        Domain::Komu => pb::Domain::Komu,
        Domain::Gakushu => pb::Domain::Gakushu,
        Domain::KomuExternal => pb::Domain::KomuExternal,
    }
}

fn role_to_pb(r: Role) -> pb::Role {
    match r {
        Role::Admin => pb::Role::Admin,
        Role::TenantService => pb::Role::TenantService,
        Role::Auditor => pb::Role::Auditor,
        Role::Custodian => pb::Role::Custodian,
    }
}

/// The purpose a request names; unspecified or unknown is `INVALID_ARGUMENT`.
pub fn purpose_from_pb(value: i32) -> Result<Purpose, Status> {
    match pb::Purpose::try_from(value) {
        Ok(pb::Purpose::PersonalInformation) => Ok(Purpose::PersonalInformation),
        Ok(pb::Purpose::LearningRecord) => Ok(Purpose::LearningRecord),
        Ok(pb::Purpose::SchoolAdministration) => Ok(Purpose::SchoolAdministration),
        Ok(pb::Purpose::Other) => Ok(Purpose::Other),
        _ => Err(Status::invalid_argument(
            "purpose is required: PERSONAL_INFORMATION, LEARNING_RECORD, SCHOOL_ADMINISTRATION or OTHER",
        )),
    }
}

/// The importance class a request names; required.
pub fn class_from_pb(value: i32) -> Result<ImportanceClass, Status> {
    match pb::ImportanceClass::try_from(value) {
        Ok(pb::ImportanceClass::ClassI) => Ok(ImportanceClass::I),
        Ok(pb::ImportanceClass::ClassIi) => Ok(ImportanceClass::Ii),
        Ok(pb::ImportanceClass::ClassIii) => Ok(ImportanceClass::Iii),
        Ok(pb::ImportanceClass::ClassIv) => Ok(ImportanceClass::Iv),
        _ => Err(Status::invalid_argument(
            "importance_class is required: CLASS_I to CLASS_IV",
        )),
    }
}

/// The domain a request names; unspecified means the default.
pub fn domain_from_pb(value: i32) -> Result<Option<Domain>, Status> {
    match pb::Domain::try_from(value) {
        Ok(pb::Domain::Unspecified) => Ok(None),
        Ok(pb::Domain::Komu) => Ok(Some(Domain::Komu)),
        Ok(pb::Domain::Gakushu) => Ok(Some(Domain::Gakushu)),
        Ok(pb::Domain::KomuExternal) => Ok(Some(Domain::KomuExternal)),
        Err(_) => Err(Status::invalid_argument(
            "unknown domain: use KOMU, GAKUSHU or KOMU_EXTERNAL",
        )),
    }
}

/// The algorithm a request names; unspecified means the default.
pub fn algorithm_from_pb(value: i32) -> Result<Option<Algorithm>, Status> {
    match pb::Algorithm::try_from(value) {
        Ok(pb::Algorithm::Unspecified) => Ok(None),
        Ok(pb::Algorithm::Aes256GcmHkdfSha256) => Ok(Some(Algorithm::Aes256GcmHkdfSha256)),
        Err(_) => Err(Status::invalid_argument(
            "unknown algorithm: use AES_256_GCM_HKDF_SHA256",
        )),
    }
}

/// The role a request names; required.
pub fn role_from_pb(value: i32) -> Result<Role, Status> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::TenantService) => Ok(Role::TenantService),
        Ok(pb::Role::Auditor) => Ok(Role::Auditor),
        Ok(pb::Role::Custodian) => Err(Status::invalid_argument(
            "custodians are created by enrolment, which records their public key and \
             acknowledgement of duties: use Custodian.Enroll (kagictl custodian enroll)",
        )),
        _ => Err(Status::invalid_argument(
            "role is required: ADMIN, TENANT_SERVICE or AUDITOR",
        )),
    }
}
