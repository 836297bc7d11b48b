//! The global options (endpoint, token, TLS) and the connection to kagid built from them.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::Args;
use kagi_sdk::{Kagi, Tls};

use crate::output::CliError;

/// Help heading of the options that every command takes, apart from each command's own.
pub const HEADING: &str = "Global options";

/// kagid's address when neither `--endpoint` nor `KAGI_ENDPOINT` is given (kagid's default).
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7878";

/// Where kagid is and how to authenticate to it. Every option can also come from the
/// environment, which is the better place for the token: command lines are visible to other
/// users of the machine.
#[derive(Args)]
#[command(next_help_heading = HEADING)]
pub struct Global {
    /// kagid's address: http://HOST:PORT, or https://HOST:PORT with --ca-cert.
    #[arg(long, global = true, env = "KAGI_ENDPOINT", default_value = DEFAULT_ENDPOINT, value_name = "URL")]
    endpoint: String,

    /// Bearer token of the principal to act as (prefer KAGI_TOKEN).
    // hide_env_values: `--help` would otherwise print the token from the environment.
    #[arg(
        long,
        global = true,
        env = "KAGI_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,

    /// PEM CA certificate that issued kagid's certificate (needs an https:// endpoint).
    #[arg(long, global = true, env = "KAGI_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,

    /// PEM client certificate, for kagid configured with mutual TLS (needs --client-key).
    #[arg(
        long,
        global = true,
        env = "KAGI_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(
        long,
        global = true,
        env = "KAGI_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
}

/// Shows everything but the token, so that debug output can never leak it.
impl fmt::Debug for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Global")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish()
    }
}

impl Global {
    /// Connects to kagid with the token and TLS settings given.
    pub async fn connect(self) -> Result<Kagi, CliError> {
        let token = self.bearer_token()?;
        self.build(Some(token)).await
    }

    /// Connects like [`Global::connect`], but without a token when none is given, for the
    /// calls that need none (`operator status`).
    pub async fn connect_token_optional(self) -> Result<Kagi, CliError> {
        let token = self.bearer_token().ok();
        self.build(token).await
    }

    /// Connects with `token`, if any, and the TLS settings given.
    async fn build(self, token: Option<String>) -> Result<Kagi, CliError> {
        let tls = self.tls()?;
        let mut builder = Kagi::connect(self.endpoint);
        if let Some(token) = token {
            builder = builder.token(token);
        }
        if let Some(tls) = tls {
            builder = builder.tls(tls);
        }
        Ok(builder.build().await?)
    }

    /// The token, without the whitespace a file or a copy-paste may add. Nearly every call needs
    /// one, so a missing token is reported here rather than by the server.
    fn bearer_token(&self) -> Result<String, CliError> {
        match self.token.as_deref().map(str::trim) {
            Some(token) if !token.is_empty() => Ok(token.to_owned()),
            _ => Err(CliError::Usage(
                "no token: set KAGI_TOKEN (or pass --token) to a principal's token".into(),
            )),
        }
    }

    /// TLS settings from --ca-cert and the client certificate options, if any are given.
    fn tls(&self) -> Result<Option<Tls>, CliError> {
        let is_https = self.endpoint.starts_with("https://");
        let Some(ca_cert) = &self.ca_cert else {
            if self.client_cert.is_some() {
                return Err(CliError::Usage(
                    "--client-cert needs --ca-cert and an https:// endpoint".into(),
                ));
            }
            return Ok(None);
        };
        // tonic ignores TLS settings for http:// and would send the token in the clear; say so
        // instead of letting the operator believe the connection is protected.
        if !is_https {
            return Err(CliError::Usage(format!(
                "--ca-cert is set but the endpoint {} is not https://",
                self.endpoint
            )));
        }
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                Some((read(cert, "--client-cert")?, read(key, "--client-key")?))
            }
            _ => None,
        };
        Ok(Some(Tls {
            ca_pem: read(ca_cert, "--ca-cert")?,
            identity,
            domain: None,
        }))
    }
}

/// Reads a PEM file named by `option`.
fn read(path: &Path, option: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(CliError::io(format!("reading {option} {}", path.display())))
}
