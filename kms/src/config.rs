//! kagid's settings, from flags, `KAGI_*` environment variables and a TOML file (in that order
//! of precedence), validated once into a [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

use crate::audit::AuditConfig;
use crate::audit::sinks::{SinkConfig, SinkTarget};
use crate::tls::TlsFiles;

/// Address kagid listens on when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// Data directory in dev mode when none is given.
pub const DEFAULT_DEV_DIR: &str = "kagi-dev";
/// Data directory outside dev mode when none is given.
pub const DEFAULT_DATA_DIR: &str = "kagi-data";

/// kagid, the Kagi key management service.
///
/// Every flag can also be set by the environment variable shown, or by the same name (with
/// underscores) in the TOML file given to --config. Flags win over variables, variables over
/// the file.
#[derive(Debug, Default, Parser, Deserialize)]
#[command(name = "kagid", version)]
#[serde(deny_unknown_fields, default)]
pub struct Args {
    /// TOML file with settings (keys as the long flag names, with underscores).
    #[arg(long, env = "KAGI_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Dev mode: embedded SQLite in the data directory, a local root key file (INSECURE),
    /// unsealed at start, and an admin token printed as `export KAGI_TOKEN=…`.
    #[arg(long, env = "KAGI_DEV")]
    pub dev: bool,

    /// Address to listen on [default: 127.0.0.1:7878]. Port 0 picks a free port; the chosen
    /// endpoint is printed as `export KAGI_ENDPOINT=…`.
    #[arg(long, env = "KAGI_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Data directory [default: ./kagi-dev in dev mode, ./kagi-data otherwise].
    #[arg(long, env = "KAGI_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB
    /// [default: sqlite://DATA_DIR/kagi.db].
    #[arg(long, env = "KAGI_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// PEM certificate chain: serve TLS 1.3 (needs --tls-key).
    #[arg(long, env = "KAGI_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "KAGI_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA of client certificates: require mutual TLS (needs --tls-cert).
    #[arg(
        long,
        env = "KAGI_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub client_ca: Option<PathBuf>,

    /// Log as JSON lines instead of text.
    #[arg(long, env = "KAGI_LOG_JSON")]
    pub log_json: bool,

    /// Most unwrapped key versions kept in memory [default: 10000].
    #[arg(long, env = "KAGI_KEY_CACHE_SIZE", value_name = "N")]
    pub key_cache_size: Option<usize>,

    /// Rotate keys whose rotation period has passed from this node's scheduler, every minute
    /// [default: on]. Turn it off to rotate only with `kagictl rotate --due` (a cron job).
    #[arg(
        long,
        env = "KAGI_ROTATION_SCHEDULER",
        value_name = "ON|OFF",
        value_enum
    )]
    pub rotation_scheduler: Option<OnOff>,

    /// This node's name in the audit trail: each node keeps its own chain, so keep it stable
    /// across restarts and unique among running nodes [default: the host name].
    #[arg(
        long,
        env = "KAGI_NODE_ID",
        value_name = "NAME",
        help_heading = "Audit"
    )]
    pub node_id: Option<String>,

    /// Copy the audit trail as JSON lines to FILE (rotated by size; each file verifiable).
    #[arg(
        long,
        env = "KAGI_AUDIT_FILE",
        value_name = "FILE",
        help_heading = "Audit"
    )]
    pub audit_file: Option<PathBuf>,

    /// Rotate the audit file at this size, in MiB [default: 100].
    #[arg(
        long,
        env = "KAGI_AUDIT_FILE_MAX_MB",
        value_name = "MIB",
        help_heading = "Audit"
    )]
    pub audit_file_max_mb: Option<u64>,

    /// Rotated audit files kept [default: 10].
    #[arg(
        long,
        env = "KAGI_AUDIT_FILE_KEEP",
        value_name = "N",
        help_heading = "Audit"
    )]
    pub audit_file_keep: Option<usize>,

    /// Copy the audit trail as JSON lines to standard output.
    #[arg(long, env = "KAGI_AUDIT_STDOUT", help_heading = "Audit")]
    pub audit_stdout: bool,

    /// Copy the audit trail to syslog (/dev/log, facility authpriv).
    #[arg(long, env = "KAGI_AUDIT_SYSLOG", help_heading = "Audit")]
    pub audit_syslog: bool,

    /// Sinks that must take every record before a call succeeds (fail closed), comma-separated:
    /// file, stdout, syslog. The others are best-effort [default: none].
    #[arg(
        long,
        env = "KAGI_AUDIT_REQUIRED_SINKS",
        value_name = "LIST",
        value_delimiter = ',',
        help_heading = "Audit"
    )]
    pub audit_required_sinks: Option<Vec<String>>,

    /// Encryption-context keys whose values the audit trail shows in clear, comma-separated;
    /// other values are recorded as HMACs [default: none].
    #[arg(
        long,
        env = "KAGI_AUDIT_PLAIN_CONTEXT_KEYS",
        value_name = "LIST",
        value_delimiter = ',',
        help_heading = "Audit"
    )]
    pub audit_plain_context_keys: Option<Vec<String>>,

    /// Sign a checkpoint after this many records [default: 1000].
    #[arg(
        long,
        env = "KAGI_AUDIT_CHECKPOINT_RECORDS",
        value_name = "N",
        help_heading = "Audit"
    )]
    pub audit_checkpoint_records: Option<u64>,

    /// …or after this many seconds with new records [default: 60].
    #[arg(
        long,
        env = "KAGI_AUDIT_CHECKPOINT_SECONDS",
        value_name = "S",
        help_heading = "Audit"
    )]
    pub audit_checkpoint_seconds: Option<u64>,

    /// Prune audit records older than this many days; at least 365 [default: 400].
    #[arg(
        long,
        env = "KAGI_AUDIT_RETENTION_DAYS",
        value_name = "DAYS",
        help_heading = "Audit"
    )]
    pub audit_retention_days: Option<u32>,

    /// Turn the audit trail off. Dev mode only, for benchmarks.
    #[arg(long, env = "KAGI_NO_AUDIT", help_heading = "Audit")]
    pub no_audit: bool,
}

/// A setting that is on or off, written `on` or `off` (flag, variable and TOML file alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Dev mode.
    pub dev: bool,
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL.
    pub database_url: String,
    /// TLS files, if TLS is on.
    pub tls: Option<TlsFiles>,
    /// JSON logs.
    pub log_json: bool,
    /// Key cache capacity.
    pub key_cache_size: usize,
    /// Whether the scheduler rotates keys whose rotation period has passed.
    pub rotation_scheduler: bool,
    /// The audit trail's settings.
    pub audit: AuditConfig,
}

/// Why the settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for kagid.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A combination of settings is refused.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Merges flags and environment (already in `args`) over the config file, then validates.
    pub fn load(args: Args) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => Args::default(),
        };
        let dev = args.dev || file.dev;
        let audit = audit_config(&args, &file, dev)?;
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address"));
        let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(|| {
            PathBuf::from(if dev {
                DEFAULT_DEV_DIR
            } else {
                DEFAULT_DATA_DIR
            })
        });
        let database_url = args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("kagi.db").display()));
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca: args.client_ca.or(file.client_ca),
            }),
            (None, None) if args.client_ca.is_some() || file.client_ca.is_some() => {
                return Err(ConfigError::Invalid(
                    "client_ca needs tls_cert and tls_key".into(),
                ));
            }
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "tls_cert and tls_key go together".into(),
                ));
            }
        };
        if tls.is_none() && !listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "refusing to serve without TLS on {listen}: give --tls-cert and --tls-key, or listen on a loopback address"
            )));
        }
        Ok(Self {
            audit,
            dev,
            listen,
            data_dir,
            database_url,
            tls,
            log_json: args.log_json || file.log_json,
            key_cache_size: args
                .key_cache_size
                .or(file.key_cache_size)
                .unwrap_or(10_000),
            rotation_scheduler: args
                .rotation_scheduler
                .or(file.rotation_scheduler)
                .unwrap_or(OnOff::On)
                == OnOff::On,
        })
    }
}

/// The audit settings from flags over the file.
fn audit_config(args: &Args, file: &Args, dev: bool) -> Result<AuditConfig, ConfigError> {
    let invalid = |why: String| Err(ConfigError::Invalid(why));
    let no_audit = args.no_audit || file.no_audit;
    if no_audit && !dev {
        return invalid(
            "no_audit is allowed only in dev mode: production calls are always audited".into(),
        );
    }
    let required: Vec<String> = args
        .audit_required_sinks
        .clone()
        .or_else(|| file.audit_required_sinks.clone())
        .unwrap_or_default();
    for name in &required {
        if !["file", "stdout", "syslog"].contains(&name.as_str()) {
            return invalid(format!(
                "audit_required_sinks: unknown sink {name:?}: use file, stdout or syslog"
            ));
        }
    }
    let is_required = |name: &str| required.iter().any(|r| r == name);
    let mut sinks = Vec::new();
    if let Some(path) = args.audit_file.clone().or_else(|| file.audit_file.clone()) {
        let max_mb = args
            .audit_file_max_mb
            .or(file.audit_file_max_mb)
            .unwrap_or(100);
        sinks.push(sink(
            SinkTarget::File {
                path,
                max_bytes: max_mb.max(1) * 1024 * 1024,
                keep: args.audit_file_keep.or(file.audit_file_keep).unwrap_or(10),
            },
            is_required("file"),
        ));
    } else if is_required("file") {
        return invalid("audit_required_sinks names file, but no audit_file is set".into());
    }
    if args.audit_stdout || file.audit_stdout {
        sinks.push(sink(SinkTarget::Stdout, is_required("stdout")));
    } else if is_required("stdout") {
        return invalid("audit_required_sinks names stdout, but audit_stdout is off".into());
    }
    if args.audit_syslog || file.audit_syslog {
        sinks.push(sink(
            SinkTarget::Syslog {
                socket: PathBuf::from("/dev/log"),
            },
            is_required("syslog"),
        ));
    } else if is_required("syslog") {
        return invalid("audit_required_sinks names syslog, but audit_syslog is off".into());
    }
    let defaults = AuditConfig::default();
    let retention_days = args
        .audit_retention_days
        .or(file.audit_retention_days)
        .unwrap_or(defaults.retention_days);
    if retention_days < crate::audit::retention::MIN_DAYS {
        return invalid(format!(
            "audit_retention_days {retention_days} is too short: keep audit records at least {} days (catalogue L4)",
            crate::audit::retention::MIN_DAYS
        ));
    }
    Ok(AuditConfig {
        retention_days,
        enabled: !no_audit,
        node: args
            .node_id
            .clone()
            .or_else(|| file.node_id.clone())
            .unwrap_or(defaults.node),
        sinks,
        checkpoint_records: args
            .audit_checkpoint_records
            .or(file.audit_checkpoint_records)
            .unwrap_or(defaults.checkpoint_records)
            .max(1),
        checkpoint_interval: args
            .audit_checkpoint_seconds
            .or(file.audit_checkpoint_seconds)
            .map_or(defaults.checkpoint_interval, |s| {
                std::time::Duration::from_secs(s.max(1))
            }),
        plain_context_keys: args
            .audit_plain_context_keys
            .clone()
            .or_else(|| file.audit_plain_context_keys.clone())
            .unwrap_or_default()
            .into_iter()
            .collect(),
        max_batch: defaults.max_batch,
    })
}

fn sink(target: SinkTarget, required: bool) -> SinkConfig {
    SinkConfig {
        target,
        required,
        queue_lines: 10_000,
        timeout: std::time::Duration::from_secs(5),
    }
}

fn read_file(path: &Path) -> Result<Args, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Config, ConfigError> {
        Config::load(
            Args::try_parse_from(std::iter::once("kagid").chain(argv.iter().copied())).unwrap(),
        )
    }

    #[test]
    fn dev_defaults() {
        let config = parse(&["--dev"]).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DEV_DIR));
        assert_eq!(config.database_url, "sqlite://kagi-dev/kagi.db");
    }

    #[test]
    fn file_settings_are_overridden_by_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kagid.toml");
        std::fs::write(
            &file,
            "dev = true\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/var/x\"\n",
        )
        .unwrap();
        let config = parse(&["--config", file.to_str().unwrap(), "--data-dir", "/tmp/y"]).unwrap();
        assert!(config.dev);
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/y"));
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kagid.toml");
        std::fs::write(&file, "listn = \"127.0.0.1:9000\"\n").unwrap();
        let err = parse(&["--config", file.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
    }

    #[test]
    fn the_rotation_scheduler_is_on_unless_turned_off() {
        assert!(parse(&[]).unwrap().rotation_scheduler);
        assert!(
            !parse(&["--rotation-scheduler", "off"])
                .unwrap()
                .rotation_scheduler
        );
        assert!(Args::try_parse_from(["kagid", "--rotation-scheduler", "maybe"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kagid.toml");
        std::fs::write(&file, "rotation_scheduler = \"off\"\n").unwrap();
        let path = file.to_str().unwrap();
        assert!(!parse(&["--config", path]).unwrap().rotation_scheduler);
        let flag_wins = parse(&["--config", path, "--rotation-scheduler", "on"]).unwrap();
        assert!(flag_wins.rotation_scheduler);
    }

    #[test]
    fn plaintext_on_a_public_address_is_refused() {
        assert!(parse(&["--listen", "0.0.0.0:7878"]).is_err());
        assert!(parse(&["--dev", "--listen", "0.0.0.0:7878"]).is_err());
        assert!(parse(&["--listen", "127.0.0.1:7878"]).is_ok());
    }

    #[test]
    fn audit_settings_are_checked() {
        let ok = parse(&[
            "--audit-file",
            "/tmp/a.jsonl",
            "--audit-required-sinks",
            "file",
            "--audit-plain-context-keys",
            "record,school",
            "--node-id",
            "kagi-1",
        ])
        .unwrap();
        assert_eq!(ok.audit.node, "kagi-1");
        assert_eq!(ok.audit.sinks.len(), 1);
        assert!(ok.audit.sinks[0].required);
        assert!(ok.audit.plain_context_keys.contains("school"));
        assert_eq!(ok.audit.retention_days, 400);
        for bad in [
            &["--audit-retention-days", "364"][..],
            &["--audit-required-sinks", "file"],
            &["--audit-required-sinks", "printer"],
            &["--no-audit"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(!parse(&["--dev", "--no-audit"]).unwrap().audit.enabled);
    }
}
