//! kagid: flags and config → a running server. Nothing else lives here.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kagi_kms::clock::SystemClock;
use kagi_kms::config::{Args, Config};
use kagi_kms::custody::Custody;
use kagi_kms::engine::Engine;
use kagi_kms::keyring::Keyring;
use kagi_kms::store::Store;
use kagi_kms::{bootstrap, dev, server, tls};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load(Args::parse()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("kagid: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_json);
    for problem in kagi_kms::hygiene::disable_core_dumps() {
        tracing::warn!("process hygiene: {problem}");
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("kagid stopped: {err:#}");
            eprintln!("kagid: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let store = Store::open(&config.database_url).await?;
    let keyring = Arc::new(Keyring::sealed(config.key_cache_size));
    let engine = Engine::with_audit(
        store,
        keyring.clone(),
        Arc::new(SystemClock),
        config.audit.clone(),
    )?;
    // The trail's first record of this run marks its initialisation (catalogue L1).
    engine
        .audit_internal(
            "Started",
            format!(
                "kagid {} started{}",
                env!("CARGO_PKG_VERSION"),
                if config.dev { " in DEV MODE" } else { "" }
            ),
        )
        .await;
    let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };

    let initialised = engine.store().seal_config().await?.is_some();
    if config.dev && initialised {
        anyhow::bail!(
            "the store at {} was initialised for custodians; dev mode would use another root key: run kagid without --dev",
            config.database_url
        );
    }
    if config.dev {
        tracing::warn!(
            "DEV MODE: the root key is stored unprotected in {}. Never use dev mode for real data.",
            config.data_dir.display()
        );
        keyring.unseal(dev::load_or_create_root(&config.data_dir)?);
        let token = dev::admin_token(&engine, &config.data_dir).await?;
        println!("export KAGI_ENDPOINT={scheme}://{local}");
        println!("export KAGI_TOKEN={}", token.expose());
    } else {
        if let Some(path) = bootstrap::ensure_admin(&engine, &config.data_dir).await? {
            println!("# bootstrap admin token written to {}", path.display());
            tracing::warn!(
                file = %path.display(),
                "no admin existed: created {} (create named admins with it, then revoke it and delete the file)",
                bootstrap::NAME
            );
        }
        println!("export KAGI_ENDPOINT={scheme}://{local}");
        if initialised {
            tracing::warn!(
                "kagid is sealed: key and crypto calls answer UNAVAILABLE until custodians unseal it (kagictl unseal)"
            );
        } else {
            tracing::warn!(
                "kagid is not initialised: enrol custodians, then run kagictl operator init (docs/custodians.md)"
            );
        }
    }
    let custody = Arc::new(Custody::new(engine.clone(), config.dev));
    // Due destructions, dropping keys other nodes destroyed, due rotations and usage counts
    // (kagi_kms::scheduler).
    let jobs = kagi_kms::scheduler::Jobs {
        rotation: config.rotation_scheduler,
    };
    if !jobs.rotation {
        tracing::warn!(
            "the rotation scheduler is off: rotate due keys with kagictl rotate --due (a cron job)"
        );
    }
    tokio::spawn(kagi_kms::scheduler::run(engine.clone(), jobs));
    tracing::info!(endpoint = %format!("{scheme}://{local}"), database = backend_name(&engine), "kagid listening");

    let shutdown = async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    };
    server::serve(engine.clone(), custody, listener, tls, shutdown).await?;
    // Usage counted since the scheduler's last flush.
    if let Err(err) = engine.flush_version_usage().await {
        tracing::warn!(event = "version_usage_flush_failed", error = %err);
    }
    engine
        .audit_internal(
            "Shutdown",
            "kagid stopping; the root key is zeroized".into(),
        )
        .await;
    keyring.seal();
    engine.store().close().await;
    Ok(())
}

fn backend_name(engine: &Engine) -> &'static str {
    match engine.store().backend() {
        kagi_kms::store::Backend::Sqlite => "sqlite",
        kagi_kms::store::Backend::Postgres => "postgres",
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KAGI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
