//! Each kagid node's background jobs, run every [`INTERVAL`]: carrying out destructions whose
//! waiting period has ended ([`Engine::destroy_due`]), dropping cached keys that any node
//! destroyed ([`Engine::forget_destroyed`]), rotating keys whose rotation period has passed
//! ([`Engine::rotate_due`], unless [`Jobs::rotation`] is off) and adding this node's
//! per-version usage counts to the store ([`Engine::flush_version_usage`]). Every node runs
//! them; the store's compare-and-sets make each destruction and each rotation happen once.
//! Tests call [`tick`] (or [`tick_with`]) with an injected clock instead.

use std::time::Duration;

use crate::engine::{Engine, EngineError};

/// How often the jobs run.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// Which optional jobs run (kagid's `--rotation-scheduler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jobs {
    /// Rotate keys whose rotation period has passed.
    pub rotation: bool,
}

impl Default for Jobs {
    /// Every job on.
    fn default() -> Self {
        Self { rotation: true }
    }
}

/// Runs every job once (as [`Jobs::default`]). Failures are logged; a sealed node skips
/// destruction and rotation until unsealed.
pub async fn tick(engine: &Engine) {
    tick_with(engine, Jobs::default()).await;
}

/// Runs the jobs `jobs` turns on, once.
pub async fn tick_with(engine: &Engine, jobs: Jobs) {
    match engine.destroy_due().await {
        Ok(_) | Err(EngineError::Sealed) => {}
        Err(err) => tracing::error!(event = "destruction_failed", error = %err),
    }
    if let Err(err) = engine.forget_destroyed().await {
        tracing::warn!(event = "forget_destroyed_failed", error = %err);
    }
    if jobs.rotation {
        match engine.rotate_due(None, false).await {
            Ok(report) => {
                if !report.rotated.is_empty() || !report.failed.is_empty() {
                    tracing::info!(
                        event = "rotation_run",
                        rotated = report.rotated.len(),
                        already_rotated = report.already_rotated.len(),
                        failed = report.failed.len(),
                        checked = report.checked,
                    );
                }
            }
            Err(EngineError::Sealed) => {}
            Err(err) => tracing::error!(event = "rotation_run_failed", error = %err),
        }
    }
    if let Err(err) = engine.flush_version_usage().await {
        tracing::warn!(event = "version_usage_flush_failed", error = %err);
    }
}

/// Runs [`tick_with`] every [`INTERVAL`], forever.
pub async fn run(engine: Engine, jobs: Jobs) {
    loop {
        tick_with(&engine, jobs).await;
        tokio::time::sleep(INTERVAL).await;
    }
}
