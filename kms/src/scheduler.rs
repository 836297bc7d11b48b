//! Each kagid node's background jobs, run every [`INTERVAL`]: carrying out destructions whose
//! waiting period has ended ([`Engine::destroy_due`]) and dropping cached keys that any node
//! destroyed ([`Engine::forget_destroyed`]). Every node runs them; the store's compare-and-set
//! makes each destruction happen once. Tests call [`tick`] with an injected clock instead.

use std::time::Duration;

use crate::engine::{Engine, EngineError};

/// How often the jobs run.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// Runs the jobs once. Failures are logged; a sealed node skips destruction until unsealed.
pub async fn tick(engine: &Engine) {
    match engine.destroy_due().await {
        Ok(_) | Err(EngineError::Sealed) => {}
        Err(err) => tracing::error!(event = "destruction_failed", error = %err),
    }
    if let Err(err) = engine.forget_destroyed().await {
        tracing::warn!(event = "forget_destroyed_failed", error = %err);
    }
}

/// Runs [`tick`] every [`INTERVAL`], forever.
pub async fn run(engine: Engine) {
    loop {
        tick(&engine).await;
        tokio::time::sleep(INTERVAL).await;
    }
}
