//! `kagictl key create|list|show|rotate|enable|disable|cancel-destruction|hold`.
//!
//! Keys are named by id or `TENANT/NAME`, tenants by id or name; kagid resolves both, so the
//! strings are passed through as given.

use clap::{Args, Subcommand, ValueEnum};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;

use crate::output::{self, CliError, Format, Table};

/// Keys per ListKeys call: the server's maximum, to list many keys in few round trips.
const PAGE_SIZE: u32 = 1000;

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key in a tenant.
    Create(CreateArgs),
    /// List keys, of one tenant or (admins and auditors) of all tenants.
    List {
        /// Tenant id or name; all tenants if omitted.
        #[arg(long)]
        tenant: Option<String>,
        /// Keys per request (tests use a small size to cover paging).
        #[arg(long, hide = true, default_value_t = PAGE_SIZE)]
        page_size: u32,
    },
    /// Show a key and all its versions.
    Show {
        /// Key id or TENANT/NAME.
        key: String,
    },
    /// Add a new primary version; older versions still decrypt (compromised ones only to
    /// re-encrypt).
    Rotate {
        /// Key id or TENANT/NAME.
        key: String,
        /// Rotate only if this is still the primary version (guards against a concurrent
        /// rotation; fails with Aborted otherwise).
        #[arg(long, value_name = "V")]
        expected_version: Option<u32>,
    },
    /// Enable a disabled key.
    Enable {
        /// Key id or TENANT/NAME.
        key: String,
    },
    /// Disable a key: encrypt and decrypt with it fail until it is enabled again.
    Disable {
        /// Key id or TENANT/NAME.
        key: String,
    },
    /// Cancel a key's scheduled destruction before its date (scheduling one needs a quorum:
    /// `kagictl quorum propose destroy-key`); the key gets back the state it had.
    CancelDestruction {
        /// Key id or TENANT/NAME.
        key: String,
    },
    /// Set or lengthen a retention hold: the key may not be destroyed before DATE (a hold is
    /// never shortened).
    Hold {
        /// Key id or TENANT/NAME.
        key: String,
        /// The end of the hold: YYYY-MM-DD (midnight UTC) or RFC 3339 (2036-04-01T09:30:00Z,
        /// 2036-04-01T18:30:00+09:00); in the future, within 100 years.
        #[arg(long, value_name = "DATE", value_parser = parse_until)]
        until: i64,
        /// The law, contract or case that requires the hold (recorded).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

/// Options of `key create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Tenant id or name.
    #[arg(long)]
    tenant: String,
    /// 1–64 letters, digits, '-', '_' or '.'; unique within the tenant.
    #[arg(long)]
    name: String,
    /// What the key protects.
    #[arg(long, value_enum)]
    purpose: Purpose,
    /// Importance class of the information (I is the most important).
    #[arg(long, value_enum, ignore_case = true)]
    class: Class,
    /// Network domain [default: gakushu for learning records, komu otherwise].
    #[arg(long, value_enum)]
    domain: Option<Domain>,
    /// Days between rotations, 1–365 [default: 365].
    #[arg(long, value_name = "D", value_parser = clap::value_parser!(u32).range(1..=365))]
    rotation_days: Option<u32>,
}

/// What a key protects.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Purpose {
    /// Personal information.
    PersonalInformation,
    /// Learning records.
    LearningRecord,
    /// School administration.
    SchoolAdministration,
    /// Anything else.
    Other,
}

impl Purpose {
    /// The protobuf purpose.
    fn to_pb(self) -> pb::Purpose {
        match self {
            Self::PersonalInformation => pb::Purpose::PersonalInformation,
            Self::LearningRecord => pb::Purpose::LearningRecord,
            Self::SchoolAdministration => pb::Purpose::SchoolAdministration,
            Self::Other => pb::Purpose::Other,
        }
    }

    /// The purpose of a protobuf value; `None` for unspecified or unknown.
    fn from_pb(value: i32) -> Option<Self> {
        match pb::Purpose::try_from(value).ok()? {
            pb::Purpose::PersonalInformation => Some(Self::PersonalInformation),
            pb::Purpose::LearningRecord => Some(Self::LearningRecord),
            pb::Purpose::SchoolAdministration => Some(Self::SchoolAdministration),
            pb::Purpose::Other => Some(Self::Other),
            pb::Purpose::Unspecified => None,
        }
    }
}

/// Importance class, written as a Roman numeral like the catalogue does.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Class {
    /// Class I, the most important.
    #[value(name = "I")]
    I,
    /// Class II.
    #[value(name = "II")]
    Ii,
    /// Class III.
    #[value(name = "III")]
    Iii,
    /// Class IV, the least important.
    #[value(name = "IV")]
    Iv,
}

impl Class {
    /// The protobuf class.
    fn to_pb(self) -> pb::ImportanceClass {
        match self {
            Self::I => pb::ImportanceClass::ClassI,
            Self::Ii => pb::ImportanceClass::ClassIi,
            Self::Iii => pb::ImportanceClass::ClassIii,
            Self::Iv => pb::ImportanceClass::ClassIv,
        }
    }

    /// The class of a protobuf value; `None` for unspecified or unknown.
    fn from_pb(value: i32) -> Option<Self> {
        match pb::ImportanceClass::try_from(value).ok()? {
            pb::ImportanceClass::ClassI => Some(Self::I),
            pb::ImportanceClass::ClassIi => Some(Self::Ii),
            pb::ImportanceClass::ClassIii => Some(Self::Iii),
            pb::ImportanceClass::ClassIv => Some(Self::Iv),
            pb::ImportanceClass::Unspecified => None,
        }
    }
}

/// Network domain of a key.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Domain {
    /// 校務系: school administration; pupils never access.
    Komu,
    /// 学習系: learning; pupils access.
    Gakushu,
    /// 校務外部接続系: school administration systems connected outside.
    KomuExternal,
}

impl Domain {
    /// The protobuf domain.
    fn to_pb(self) -> pb::Domain {
        match self {
            Self::Komu => pb::Domain::Komu,
            Self::Gakushu => pb::Domain::Gakushu,
            Self::KomuExternal => pb::Domain::KomuExternal,
        }
    }

    /// The domain of a protobuf value; `None` for unspecified or unknown.
    fn from_pb(value: i32) -> Option<Self> {
        match pb::Domain::try_from(value).ok()? {
            pb::Domain::Komu => Some(Self::Komu),
            pb::Domain::Gakushu => Some(Self::Gakushu),
            pb::Domain::KomuExternal => Some(Self::KomuExternal),
            pb::Domain::Unspecified => None,
        }
    }
}

/// The word for a key's algorithm (output only: there is one algorithm to choose from).
fn algorithm_word(value: i32) -> &'static str {
    match pb::Algorithm::try_from(value) {
        Ok(pb::Algorithm::Aes256GcmHkdfSha256) => "aes-256-gcm-hkdf-sha256",
        _ => "unknown",
    }
}

/// The word for a key's state (output only).
fn key_state_word(value: i32) -> &'static str {
    match pb::KeyState::try_from(value) {
        Ok(pb::KeyState::Enabled) => "enabled",
        Ok(pb::KeyState::Disabled) => "disabled",
        Ok(pb::KeyState::PendingDestruction) => "pending-destruction",
        Ok(pb::KeyState::Destroyed) => "destroyed",
        _ => "unknown",
    }
}

/// The word for a key version's state (output only).
pub fn version_state_word(value: i32) -> &'static str {
    match pb::VersionState::try_from(value) {
        Ok(pb::VersionState::Active) => "active",
        Ok(pb::VersionState::Deactivated) => "deactivated",
        Ok(pb::VersionState::VersionDestroyed) => "destroyed",
        Ok(pb::VersionState::VersionCompromised) => "compromised",
        Ok(pb::VersionState::VersionDestroyedCompromised) => "destroyed-compromised",
        _ => "unknown",
    }
}

/// A key as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct KeyView {
    /// Key id (UUID).
    id: String,
    /// Id of the owning tenant.
    tenant_id: String,
    /// Key name, unique within the tenant.
    name: String,
    /// personal-information, learning-record, school-administration or other.
    purpose: String,
    /// I, II, III or IV.
    class: String,
    /// komu, gakushu or komu-external.
    domain: String,
    /// Always aes-256-gcm-hkdf-sha256 for now.
    algorithm: &'static str,
    /// Days between rotations.
    rotation_period_days: u32,
    /// enabled or disabled.
    state: &'static str,
    /// The version new ciphertexts use.
    primary_version: u32,
    /// RFC 3339 UTC.
    created_at: String,
    /// RFC 3339 UTC.
    updated_at: String,
    /// When the primary version is due for rotation, RFC 3339 UTC.
    next_rotation_at: String,
    /// Every version, oldest first; left out where kagid does not send them (list, enable,
    /// disable).
    #[serde(skip_serializing_if = "Option::is_none")]
    versions: Option<Vec<VersionView>>,
}

/// A key version as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct VersionView {
    /// Version number, from 1.
    version: u32,
    /// active or deactivated.
    state: &'static str,
    /// RFC 3339 UTC.
    created_at: String,
}

impl From<&pb::Key> for KeyView {
    fn from(k: &pb::Key) -> Self {
        let versions: Vec<VersionView> = k.versions.iter().map(VersionView::from).collect();
        Self {
            id: k.id.clone(),
            tenant_id: k.tenant_id.clone(),
            name: k.name.clone(),
            purpose: output::word(Purpose::from_pb(k.purpose)),
            class: output::word(Class::from_pb(k.importance_class)),
            domain: output::word(Domain::from_pb(k.domain)),
            algorithm: algorithm_word(k.algorithm),
            rotation_period_days: k.rotation_period_days,
            state: key_state_word(k.state),
            primary_version: k.primary_version,
            created_at: output::rfc3339(k.created_at),
            updated_at: output::rfc3339(k.updated_at),
            next_rotation_at: output::rfc3339(k.next_rotation_at),
            // Every key has at least version 1, so an empty list means "not sent".
            versions: (!versions.is_empty()).then_some(versions),
        }
    }
}

impl From<&pb::KeyVersion> for VersionView {
    fn from(v: &pb::KeyVersion) -> Self {
        Self {
            version: v.version,
            state: version_state_word(v.state),
            created_at: output::rfc3339(v.created_at),
        }
    }
}

/// Runs a key command. Every command but `list` answers with one key, printed the same way.
pub async fn run(command: KeyCommand, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let mut client = kagi.keys();
    let key = match command {
        KeyCommand::List { tenant, page_size } => {
            return list(kagi, tenant.unwrap_or_default(), page_size, format).await;
        }
        KeyCommand::Hold { key, until, reason } => {
            let request = pb::SetRetentionHoldRequest { key, until, reason };
            let hold = client.set_retention_hold(request).await?.into_inner();
            return print_hold(&HoldView::from(&hold), format);
        }
        KeyCommand::Create(args) => {
            let request = create_request(args);
            client.create_key(request).await?.into_inner().key
        }
        KeyCommand::Show { key } => {
            let request = pb::GetKeyRequest { key };
            client.get_key(request).await?.into_inner().key
        }
        KeyCommand::Rotate {
            key,
            expected_version,
        } => {
            let request = pb::RotateKeyRequest {
                key,
                // 0 means "whatever the primary version is".
                expected_current_version: expected_version.unwrap_or(0),
            };
            client.rotate_key(request).await?.into_inner().key
        }
        KeyCommand::Enable { key } => {
            let request = pb::EnableKeyRequest { key };
            client.enable_key(request).await?.into_inner().key
        }
        KeyCommand::Disable { key } => {
            let request = pb::DisableKeyRequest { key };
            client.disable_key(request).await?.into_inner().key
        }
        KeyCommand::CancelDestruction { key } => {
            let request = pb::CancelKeyDestructionRequest { key };
            client
                .cancel_key_destruction(request)
                .await?
                .into_inner()
                .key
        }
    };
    print_key(&key.unwrap_or_default(), format)
}

/// The CreateKey request for `key create`.
fn create_request(args: CreateArgs) -> pb::CreateKeyRequest {
    pb::CreateKeyRequest {
        tenant: args.tenant,
        name: args.name,
        purpose: args.purpose.to_pb() as i32,
        importance_class: args.class.to_pb() as i32,
        domain: args.domain.map_or(pb::Domain::Unspecified, Domain::to_pb) as i32,
        // Left to kagid's default: it has one algorithm.
        algorithm: pb::Algorithm::Unspecified as i32,
        // 0 asks for kagid's default period.
        rotation_period_days: args.rotation_days.unwrap_or(0),
    }
}

/// Prints one key: every field and, when kagid sent them, its versions.
fn print_key(key: &pb::Key, format: Format) -> Result<(), CliError> {
    let view = KeyView::from(key);
    if format == Format::Json {
        return output::json(&view);
    }
    let mut text = output::fields(&[
        ("id", view.id),
        ("tenant", view.tenant_id),
        ("name", view.name),
        ("purpose", view.purpose),
        ("class", view.class),
        ("domain", view.domain),
        ("algorithm", view.algorithm.to_owned()),
        ("state", view.state.to_owned()),
        ("primary version", view.primary_version.to_string()),
        (
            "rotation period",
            format!("{} days", view.rotation_period_days),
        ),
        ("next rotation", view.next_rotation_at),
        ("created", view.created_at),
        ("updated", view.updated_at),
    ]);
    if let Some(versions) = &view.versions {
        text.push_str("versions:\n");
        text.push_str(&versions_table(versions));
    }
    output::print(&text)
}

/// The versions of a key as an indented table.
fn versions_table(versions: &[VersionView]) -> String {
    let mut table = Table::new(&["VERSION", "STATE", "CREATED"]);
    for v in versions {
        table.row(vec![
            v.version.to_string(),
            v.state.to_owned(),
            v.created_at.clone(),
        ]);
    }
    table.render().lines().map(|l| format!("  {l}\n")).collect()
}

/// A retention hold as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct HoldView {
    /// The key's id.
    key_id: String,
    /// The end of the hold, RFC 3339 UTC.
    until: String,
    /// Why the key is held.
    reason: String,
}

impl From<&pb::SetRetentionHoldResponse> for HoldView {
    fn from(h: &pb::SetRetentionHoldResponse) -> Self {
        Self {
            key_id: h.key_id.clone(),
            until: output::rfc3339(h.until),
            reason: h.reason.clone(),
        }
    }
}

/// Prints the hold kagid set.
fn print_hold(view: &HoldView, format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => output::json(view),
        Format::Human => output::print(&output::fields(&[
            ("key", view.key_id.clone()),
            ("until", view.until.clone()),
            ("reason", view.reason.clone()),
        ])),
    }
}

/// `--until`: `YYYY-MM-DD` (its midnight UTC) or RFC 3339
/// (`YYYY-MM-DD(T| )HH:MM:SS[.fraction](Z|±HH:MM)`), as Unix seconds. A fraction of a second
/// is dropped: kagid keeps whole seconds.
fn parse_until(text: &str) -> Result<i64, String> {
    parse_date_time(text.trim()).ok_or_else(|| {
        "expected YYYY-MM-DD (midnight UTC) or RFC 3339 (2036-04-01T09:30:00Z, \
         2036-04-01T18:30:00+09:00)"
            .into()
    })
}

/// The Unix seconds of a date (midnight UTC) or of an RFC 3339 date and time; `None` if
/// `text` is neither. The same parser as `audit query --from/--to`, to whole seconds.
fn parse_date_time(text: &str) -> Option<i64> {
    crate::audit::parse_rfc3339(text).map(|ms| ms.div_euclid(1000))
}

/// `key list [--tenant T]`: follows next_page_token until every key is listed.
async fn list(kagi: &Kagi, tenant: String, page_size: u32, format: Format) -> Result<(), CliError> {
    let mut client = kagi.keys();
    let mut keys = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListKeysRequest {
            tenant: tenant.clone(),
            page_size,
            page_token,
        };
        let page = client.list_keys(request).await?.into_inner();
        keys.extend(page.keys.iter().map(KeyView::from));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    match format {
        Format::Json => output::json_list("keys", &keys),
        Format::Human => output::print(&keys_table(keys)),
    }
}

/// The human table of `key list`. The tenant id comes last: it is the widest column and the
/// least read, so a narrow terminal wraps it rather than the key's name and state.
fn keys_table(keys: Vec<KeyView>) -> String {
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "PURPOSE",
        "CLASS",
        "DOMAIN",
        "STATE",
        "VERSION",
        "NEXT ROTATION",
        "TENANT",
    ]);
    for k in keys {
        table.row(vec![
            k.id,
            k.name,
            k.purpose,
            k.class,
            k.domain,
            k.state.to_owned(),
            k.primary_version.to_string(),
            k.next_rotation_at,
            k.tenant_id,
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_dates_parse_as_dates_and_as_rfc3339() {
        let t = 2_090_655_000; // 2036-04-01T09:30:00Z
        assert_eq!(output::rfc3339(t), "2036-04-01T09:30:00Z");
        assert_eq!(parse_until("2036-04-01"), Ok(t - 34_200));
        assert_eq!(parse_until(" 2036-04-01 "), Ok(t - 34_200));
        assert_eq!(parse_until("2036-04-01T09:30:00Z"), Ok(t));
        assert_eq!(parse_until("2036-04-01t09:30:00z"), Ok(t));
        assert_eq!(parse_until("2036-04-01 09:30:00Z"), Ok(t));
        assert_eq!(parse_until("2036-04-01T18:30:00+09:00"), Ok(t));
        assert_eq!(parse_until("2036-04-01T05:00:00-04:30"), Ok(t));
        assert_eq!(parse_until("2036-04-01T09:30:00.999Z"), Ok(t));
        assert_eq!(parse_until("1970-01-01"), Ok(0));
        assert_eq!(parse_until("2000-02-29"), Ok(951_782_400));
        assert_eq!(parse_until("2100-03-01"), Ok(4_107_542_400));
        for bad in [
            "",
            "tomorrow",
            "2036-4-1",
            "2036/04/01",
            "2035-02-29",
            "2100-02-29",
            "2036-13-01",
            "2036-04-31",
            "2036-04-00",
            "2036-04-01T24:00:00Z",
            "2036-04-01T09:60:00Z",
            "2036-04-01T09:30:00",
            "2036-04-01T09:30Z",
            "2036-04-01T09:30:00.Z",
            "2036-04-01T09:30:00+0900",
            "2036-04-01T09:30:00+24:00",
            "2036-04-01Z",
            "2090655000",
        ] {
            assert!(parse_until(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn holds_print_the_key_the_date_and_the_reason() {
        let view = HoldView::from(&pb::SetRetentionHoldResponse {
            key_id: "0b3c".into(),
            until: 2_090_620_800,
            reason: "学校教育法施行規則 28 条".into(),
        });
        assert_eq!(view.until, "2036-04-01T00:00:00Z");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["key_id"], "0b3c");
        assert_eq!(json["until"], "2036-04-01T00:00:00Z");
        assert_eq!(json["reason"], "学校教育法施行規則 28 条");
    }
}
