//! Lockdowns: a quorum can refuse every decrypt and plaintext data key of a tenant, or of all
//! tenants, for an attack in progress. Every node reads the lockdowns from the store at most a
//! second old, so one approved on any node holds on all within a second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Engine, EngineError};
use crate::clock::rfc3339;
use crate::model::UnixSeconds;

/// How stale the cached lockdowns may be.
const REFRESH: Duration = Duration::from_secs(1);

/// Lockdowns in force: scope (tenant id or `*`) → (reason, since).
type Lockdowns = HashMap<String, (String, UnixSeconds)>;

/// Lockdowns by scope, as last read, and when.
#[derive(Debug, Default)]
pub struct LockdownCache {
    state: Mutex<Option<(Instant, Lockdowns)>>,
}

impl Engine {
    /// Drops the cached lockdowns, so the next check reads the store (after a change here).
    pub fn forget_lockdowns(&self) {
        *self
            .lockdowns
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Refuses with `FAILED_PRECONDITION` if `tenant_id` (or every tenant) is locked down.
    pub async fn check_lockdown(&self, tenant_id: &str) -> Result<(), EngineError> {
        let fresh = {
            let state = self
                .lockdowns
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            state
                .as_ref()
                .filter(|(at, _)| at.elapsed() < REFRESH)
                .map(|(_, map)| find(map, tenant_id))
        };
        let found = match fresh {
            Some(found) => found,
            None => {
                let map: HashMap<_, _> = self
                    .store
                    .lockdowns()
                    .await?
                    .into_iter()
                    .map(|(scope, reason, since)| (scope, (reason, since)))
                    .collect();
                let found = find(&map, tenant_id);
                *self
                    .lockdowns
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), map));
                found
            }
        };
        match found {
            None => Ok(()),
            Some((scope, reason, since)) => Err(EngineError::FailedPrecondition(format!(
                "{} is locked down since {} ({reason}): decrypts and data keys are refused until \
                 a quorum lifts it (kagictl quorum propose lift-lockdown)",
                if scope == "*" {
                    "every tenant".to_owned()
                } else {
                    format!("tenant {scope}")
                },
                rfc3339(since)
            ))),
        }
    }
}

fn find(map: &Lockdowns, tenant_id: &str) -> Option<(String, String, UnixSeconds)> {
    map.get(tenant_id)
        .map(|(r, s)| (tenant_id.to_owned(), r.clone(), *s))
        .or_else(|| map.get("*").map(|(r, s)| ("*".to_owned(), r.clone(), *s)))
}
