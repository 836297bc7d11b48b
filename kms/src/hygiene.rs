//! Process hygiene for processes that hold the root key or shares: no core dumps, and no
//! ptrace attach by other processes of the same user (Linux `PR_SET_DUMPABLE`).

/// Disables core dumps and, on Linux, marks the process not dumpable. Returns what could not
/// be done, for a warning; failing here must not stop the process.
pub fn disable_core_dumps() -> Vec<String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let mut problems = Vec::new();
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = setrlimit(Resource::Core, none) {
        problems.push(format!("cannot set RLIMIT_CORE to 0: {e}"));
    }
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        problems.push(format!("cannot clear PR_SET_DUMPABLE: {e}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    #[test]
    fn core_dumps_end_up_disabled() {
        assert!(super::disable_core_dumps().is_empty());
        let limit = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!(limit.current, Some(0));
        assert_eq!(limit.maximum, Some(0));
    }
}
