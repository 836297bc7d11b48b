//! Call counts per operation, since start: what the metrics endpoint and tests read (e.g. to
//! check that the SDK's data-key cache saves KMS calls).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counts of calls per operation, successes and failures alike.
#[derive(Debug, Default)]
pub struct CallCounts(Mutex<BTreeMap<&'static str, u64>>);

impl CallCounts {
    /// Counts one call of `operation`.
    pub fn count(&self, operation: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(operation)
            .or_default() += 1;
    }

    /// How many calls of `operation` were made.
    pub fn get(&self, operation: &str) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Every operation's count.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
