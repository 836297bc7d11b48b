//! kagi-load: end-to-end load on a running kagid.
//!
//! It measures how many calls per second one kagid completes, and their latency, as seen by
//! gRPC clients: the whole request path (HTTP/2, bearer-token authentication, authorisation,
//! the key cache, the cryptography, the audit record written durably before the answer) for
//! one operation, `GenerateDataKey` (the default), `Encrypt` or `Decrypt`, under N concurrent
//! clients that each send their next call as soon as the previous one is answered (a closed
//! loop: no think time, so the figure is the server's saturated throughput at that
//! concurrency, not a latency at a given rate).
//!
//! Set-up, with an admin token (kagid prints one in dev mode): a new tenant `load-<random>`, a
//! key in it (learning record, class II) and a tenant-service principal; the load itself runs
//! with that principal's token, as a platform service would. The principal is revoked at the
//! end; the tenant and key are left (kagid has no way to delete them). N tokio tasks share a
//! few HTTP/2 connections (one per 8 clients unless `--channels` says otherwise) and call in a
//! loop for `--warmup` + `--duration` seconds; only the calls that complete inside the
//! measured window (after the warm-up) are counted. It prints the throughput, the latency
//! percentiles (exact: every latency is kept and sorted) and the errors by gRPC code. Tokens
//! and key bytes are never printed.
//!
//! To reproduce (see docs/performance.md, "Audit trail: throughput with auditing on and off"):
//!
//! ```text
//! cargo build --release -p kagi-kms -p kagi-benches
//! target/release/kagid --dev --data-dir /tmp/kagi-perf --listen 127.0.0.1:0 > /tmp/kagid.env &
//! sleep 2; . /tmp/kagid.env          # export KAGI_ENDPOINT=… and KAGI_TOKEN=… (the dev admin)
//! target/release/kagi-load --clients 64 --duration 20 --operation generate-data-key
//! ```
//!
//! The load generator runs on the same machine as kagid unless you put it elsewhere, and then
//! competes with it for the CPU: say so with the figures.

#![forbid(unsafe_code)]

use kagi_kms::service::call::code_name;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use clap::{Parser, ValueEnum};
use kagi_sdk::{Kagi, pb};

/// Closed-loop load on one kagid operation, with a fresh tenant, key and service principal.
#[derive(Parser)]
#[command(name = "kagi-load")]
struct Args {
    /// kagid's endpoint, e.g. http://127.0.0.1:7878.
    #[arg(long, env = "KAGI_ENDPOINT", value_name = "URL")]
    endpoint: String,

    /// An admin token (creates the tenant, key and service principal; never printed).
    #[arg(long, env = "KAGI_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    token: String,

    /// Concurrent clients, each with one call in flight at a time.
    #[arg(long, default_value_t = 64, value_name = "N")]
    clients: usize,

    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    duration: u64,

    /// Warm-up seconds, not counted.
    #[arg(long, default_value_t = 3, value_name = "SECS")]
    warmup: u64,

    /// The call to make.
    #[arg(long, value_enum, default_value_t = Operation::GenerateDataKey)]
    operation: Operation,

    /// HTTP/2 connections the clients share [default: one per 8 clients].
    #[arg(long, value_name = "N")]
    channels: Option<usize>,

    /// Plaintext size of encrypt and decrypt calls, in bytes.
    #[arg(long, default_value_t = 1024, value_name = "BYTES")]
    plaintext_bytes: usize,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Operation {
    /// GenerateDataKey (AES-256 data key), what `Envelope::encrypt` calls.
    GenerateDataKey,
    /// Encrypt of `--plaintext-bytes` bytes.
    Encrypt,
    /// Decrypt of a ciphertext of `--plaintext-bytes` bytes made once at set-up.
    Decrypt,
}

impl Operation {
    fn rpc(self) -> &'static str {
        match self {
            Self::GenerateDataKey => "GenerateDataKey",
            Self::Encrypt => "Encrypt",
            Self::Decrypt => "Decrypt",
        }
    }
}

/// One prepared request, cloned for every call.
#[derive(Clone)]
enum Call {
    GenerateDataKey(pb::GenerateDataKeyRequest),
    Encrypt(pb::EncryptRequest),
    Decrypt(pb::DecryptRequest),
}

/// What one client saw inside the measured window.
#[derive(Default)]
struct Tally {
    /// Latency of each successful call completed in the window, in nanoseconds.
    latencies: Vec<u64>,
    /// Failed calls completed in the window, by gRPC code.
    errors: BTreeMap<&'static str, u64>,
    /// Failed calls during the warm-up.
    warmup_errors: u64,
}

/// What was set up for the run.
struct Setup {
    tenant: String,
    key_id: String,
    principal_id: String,
    service_token: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kagi-load: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.clients == 0 || args.duration == 0 {
        return Err(anyhow!("--clients and --duration must be at least 1"));
    }
    let channels = args
        .channels
        .unwrap_or(args.clients.div_ceil(8))
        .clamp(1, args.clients);

    let admin = Kagi::connect(args.endpoint.clone())
        .token(args.token.clone())
        .build()
        .await
        .context("connecting with the admin token")?;
    let setup = set_up(&admin).await?;

    let mut connections = Vec::with_capacity(channels);
    for _ in 0..channels {
        connections.push(
            Kagi::connect(args.endpoint.clone())
                .token(setup.service_token.clone())
                .build()
                .await
                .context("connecting with the service token")?,
        );
    }
    let call = prepare(&args, &setup, &connections[0]).await?;

    if !args.json {
        println!(
            "kagi-load: {} on {}: {} clients on {} HTTP/2 connection{} ({}), {} s warm-up + {} s measured",
            args.operation.rpc(),
            args.endpoint,
            args.clients,
            channels,
            if channels == 1 { "" } else { "s" },
            per_channel(args.clients, channels),
            args.warmup,
            args.duration,
        );
        println!(
            "set-up: tenant {}, key {}, tenant-service principal {}",
            setup.tenant, setup.key_id, setup.principal_id
        );
    }

    let begin = Instant::now();
    let start = begin + Duration::from_secs(args.warmup);
    let end = start + Duration::from_secs(args.duration);
    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let kagi = connections[i % channels].clone();
        let call = call.clone();
        tasks.push(tokio::spawn(client(kagi, call, start, end)));
    }
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.context("a client task panicked")?;
        total.latencies.extend(tally.latencies);
        for (code, n) in tally.errors {
            *total.errors.entry(code).or_default() += n;
        }
        total.warmup_errors += tally.warmup_errors;
    }

    // Tidy up: the service token stops working; the tenant and key stay.
    let revoked = admin
        .principals()
        .revoke_principal(pb::RevokePrincipalRequest {
            principal: setup.principal_id.clone(),
        })
        .await;
    if let Err(status) = &revoked {
        eprintln!(
            "kagi-load: could not revoke the service principal {}: {}",
            setup.principal_id,
            code_name(status.code())
        );
    }

    report(&args, channels, &setup, total);
    Ok(())
}

/// "8 clients each" or "8 or 9 clients each".
fn per_channel(clients: usize, channels: usize) -> String {
    let low = clients / channels;
    if clients.is_multiple_of(channels) {
        format!("{low} client{} each", if low == 1 { "" } else { "s" })
    } else {
        format!("{low} or {} clients each", low + 1)
    }
}

/// Creates the tenant, key and tenant-service principal with the admin connection.
async fn set_up(admin: &Kagi) -> anyhow::Result<Setup> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let tenant = format!("load-{}", &suffix[..12]);
    admin
        .keys()
        .create_tenant(pb::CreateTenantRequest {
            name: tenant.clone(),
        })
        .await
        .map_err(|s| anyhow!("CreateTenant: {}: {}", code_name(s.code()), s.message()))?;
    let key = admin
        .keys()
        .create_key(pb::CreateKeyRequest {
            tenant: tenant.clone(),
            name: "load".into(),
            purpose: pb::Purpose::LearningRecord as i32,
            importance_class: pb::ImportanceClass::ClassIi as i32,
            domain: pb::Domain::Unspecified as i32,
            algorithm: pb::Algorithm::Unspecified as i32,
            rotation_period_days: 0,
        })
        .await
        .map_err(|s| anyhow!("CreateKey: {}: {}", code_name(s.code()), s.message()))?
        .into_inner()
        .key
        .ok_or_else(|| anyhow!("CreateKey answered without a key"))?;
    let created = admin
        .principals()
        .create_principal(pb::CreatePrincipalRequest {
            name: "load-service".into(),
            role: pb::Role::TenantService as i32,
            tenant: tenant.clone(),
        })
        .await
        .map_err(|s| anyhow!("CreatePrincipal: {}: {}", code_name(s.code()), s.message()))?
        .into_inner();
    let principal_id = created
        .principal
        .map(|p| p.id)
        .ok_or_else(|| anyhow!("CreatePrincipal answered without a principal"))?;
    Ok(Setup {
        tenant,
        key_id: key.id,
        principal_id,
        service_token: created.token,
    })
}

/// The request every client repeats (for decrypt, after encrypting its ciphertext once).
async fn prepare(args: &Args, setup: &Setup, kagi: &Kagi) -> anyhow::Result<Call> {
    let context: std::collections::HashMap<String, String> =
        [("bench".to_owned(), "kagi-load".to_owned())].into();
    // Not secret: a fixed pattern.
    let plaintext: Vec<u8> = (0..args.plaintext_bytes).map(|i| i as u8).collect();
    let encrypt = pb::EncryptRequest {
        key_id: setup.key_id.clone(),
        plaintext,
        context: context.clone(),
    };
    Ok(match args.operation {
        Operation::GenerateDataKey => Call::GenerateDataKey(pb::GenerateDataKeyRequest {
            key_id: setup.key_id.clone(),
            context,
            spec: pb::DataKeySpec::Aes256 as i32,
        }),
        Operation::Encrypt => Call::Encrypt(encrypt),
        Operation::Decrypt => {
            let ciphertext = kagi
                .crypto()
                .encrypt(encrypt)
                .await
                .map_err(|s| anyhow!("Encrypt: {}: {}", code_name(s.code()), s.message()))?
                .into_inner()
                .ciphertext;
            Call::Decrypt(pb::DecryptRequest {
                ciphertext,
                context,
            })
        }
    })
}

/// One client: calls in a loop until `end`, tallying what completes in `start..end`.
async fn client(kagi: Kagi, call: Call, start: Instant, end: Instant) -> Tally {
    let mut crypto = kagi.crypto();
    let mut tally = Tally::default();
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        // Responses (data keys, plaintexts) are dropped unread.
        let outcome = match &call {
            Call::GenerateDataKey(r) => crypto.generate_data_key(r.clone()).await.map(drop),
            Call::Encrypt(r) => crypto.encrypt(r.clone()).await.map(drop),
            Call::Decrypt(r) => crypto.decrypt(r.clone()).await.map(drop),
        };
        let done = Instant::now();
        if done < start {
            if outcome.is_err() {
                tally.warmup_errors += 1;
            }
            continue;
        }
        if done >= end {
            break;
        }
        match outcome {
            Ok(()) => tally
                .latencies
                .push(u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX)),
            Err(status) => *tally.errors.entry(code_name(status.code())).or_default() += 1,
        }
    }
    tally
}

/// The `p`-quantile (0 < p ≤ 1) of sorted `values` by nearest rank, in milliseconds.
fn quantile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

fn report(args: &Args, channels: usize, setup: &Setup, mut total: Tally) {
    total.latencies.sort_unstable();
    let lat = &total.latencies;
    let completed = lat.len() as u64;
    let errors: u64 = total.errors.values().sum();
    let ops = completed as f64 / args.duration as f64;
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().map(|&n| n as f64).sum::<f64>() / lat.len() as f64 / 1e6
    };
    let (p50, p90, p99, p999) = (
        quantile_ms(lat, 0.50),
        quantile_ms(lat, 0.90),
        quantile_ms(lat, 0.99),
        quantile_ms(lat, 0.999),
    );
    let max = lat.last().map_or(0.0, |&n| n as f64 / 1e6);
    if args.json {
        let value = serde_json::json!({
            "operation": args.operation.rpc(),
            "endpoint": args.endpoint,
            "clients": args.clients,
            "channels": channels,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "plaintext_bytes": if args.operation == Operation::GenerateDataKey {
                serde_json::Value::Null
            } else {
                args.plaintext_bytes.into()
            },
            "tenant": setup.tenant,
            "completed": completed,
            "ops_per_s": ops,
            "latency_ms": {
                "mean": mean, "p50": p50, "p90": p90, "p99": p99, "p999": p999, "max": max,
            },
            "errors": errors,
            "errors_by_code": total.errors,
            "warmup_errors": total.warmup_errors,
        });
        println!("{value}");
        return;
    }
    println!(
        "completed: {completed} calls in {} s = {ops:.1} ops/s",
        args.duration
    );
    println!(
        "latency (ms): p50 {p50:.2}, p90 {p90:.2}, p99 {p99:.2}, p99.9 {p999:.2}, max {max:.2}, mean {mean:.2}"
    );
    if errors == 0 {
        println!("errors: none");
    } else {
        let by_code: Vec<String> = total
            .errors
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        println!("errors: {errors} ({})", by_code.join(", "));
    }
    if total.warmup_errors > 0 {
        println!(
            "errors during the warm-up (not counted): {}",
            total.warmup_errors
        );
    }
}
