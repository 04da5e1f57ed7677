//! The name of this host, as locks, runs, audit entries and snapshot seals
//! record it. `RIPCORD_HOSTNAME` overrides the system's name, so that every
//! part of one process goes by one identity, and two processes on one
//! machine can stand for two hosts (sharing a catalog, in tests).

/// The variable that overrides the host name.
pub const OVERRIDE_VAR: &str = "RIPCORD_HOSTNAME";

/// `RIPCORD_HOSTNAME` when set and not blank, else the system's host name.
pub fn name() -> String {
    std::env::var(OVERRIDE_VAR)
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
}
