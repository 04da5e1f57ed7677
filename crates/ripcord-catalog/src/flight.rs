//! Single flight: one run acts at a time. The holder is named by run,
//! host, process and start time; a holder on this host whose process is
//! gone (or is another process under a reused pid) is dead, and its run
//! can be resumed.

use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Holder {
    pub run: String,
    pub host: String,
    pub pid: u32,
    /// When the process started, in clock ticks since boot (Linux), to
    /// tell a reused pid from the holder.
    pub pid_start: Option<u64>,
    /// RFC 3339, UTC.
    pub started: String,
}

/// What [`crate::Catalog::acquire_flight`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The lock was free and is now ours.
    Taken,
    /// A dead holder on this host was replaced.
    TakenOver(Holder),
    /// A live run (or one on another host) holds it.
    Held(Holder),
}

impl Holder {
    /// The current process, for `run`.
    pub fn this_process(run: &str) -> Holder {
        let pid = std::process::id();
        Holder {
            run: run.to_string(),
            host: host(),
            pid,
            pid_start: process_start(pid),
            started: now(),
        }
    }

    /// Whether the holder's process still runs; `None` when that cannot
    /// be told from here (another host).
    pub fn is_alive(&self) -> Option<bool> {
        if self.host != host() {
            return None;
        }
        match (process_start(self.pid), self.pid_start) {
            (None, _) => Some(false),
            (Some(now), Some(then)) => Some(now == then),
            (Some(_), None) => Some(true),
        }
    }
}

/// This host's name, as holders and runs record it (`RIPCORD_HOSTNAME`
/// overrides it).
pub(crate) fn host() -> String {
    ripcord_core::host::name()
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Field 22 of /proc/PID/stat: the process's start time. `None` when the
/// process does not exist (or there is no /proc).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::Holder;

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_not() {
        assert_eq!(Holder::this_process("r").is_alive(), Some(true));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = Holder {
            pid,
            ..Holder::this_process("r")
        };
        assert_eq!(gone.is_alive(), Some(false));
        let elsewhere = Holder {
            host: "another-host".into(),
            ..Holder::this_process("r")
        };
        assert_eq!(elsewhere.is_alive(), None);
    }
}
