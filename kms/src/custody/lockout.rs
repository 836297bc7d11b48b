//! Lockout after repeated invalid shares (catalogue A5): after [`MAX_FAILURES`] invalid
//! submissions, every unseal and rekey submission is refused for [`LOCKOUT_SECONDS`].

use crate::model::UnixSeconds;

/// Invalid shares tolerated before the lockout starts.
pub const MAX_FAILURES: u32 = 6;
/// How long the lockout lasts: 30 minutes.
pub const LOCKOUT_SECONDS: i64 = 30 * 60;

/// Counts invalid submissions on this node.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Lockout {
    failures: u32,
    locked_until: Option<UnixSeconds>,
}

impl Lockout {
    /// Until when submissions are refused, if they are at `now`. A lapsed lockout clears itself.
    pub fn locked_until(&mut self, now: UnixSeconds) -> Option<UnixSeconds> {
        match self.locked_until {
            Some(until) if now < until => Some(until),
            Some(_) => {
                *self = Self::default();
                None
            }
            None => None,
        }
    }

    /// Records one invalid submission; returns the lockout's end if this one started it.
    pub fn fail(&mut self, now: UnixSeconds) -> Option<UnixSeconds> {
        self.failures += 1;
        if self.failures >= MAX_FAILURES {
            let until = now + LOCKOUT_SECONDS;
            self.locked_until = Some(until);
            return Some(until);
        }
        None
    }

    /// Invalid submissions counted since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Clears the count after a successful ceremony.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixth_failure_locks_for_thirty_minutes() {
        let mut lockout = Lockout::default();
        for _ in 0..5 {
            assert_eq!(lockout.fail(100), None);
        }
        assert_eq!(lockout.locked_until(100), None);
        assert_eq!(lockout.fail(100), Some(100 + LOCKOUT_SECONDS));
        assert_eq!(lockout.locked_until(100 + LOCKOUT_SECONDS - 1), Some(1900));
        assert_eq!(lockout.locked_until(100 + LOCKOUT_SECONDS), None);
        assert_eq!(lockout.failures(), 0);
    }
}
