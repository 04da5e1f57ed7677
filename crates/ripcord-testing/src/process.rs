//! Killing processes for real, and waiting without fixed sleeps.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Sends SIGKILL to `pid` (like `kill -9`). Returns whether the signal was
/// delivered (false when the process is already gone).
pub fn kill9(pid: u32) -> bool {
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Kills `child` with SIGKILL unless it has already exited, and reaps it.
/// Returns its exit status and whether it was killed by this call.
pub fn kill9_child(child: &mut Child) -> (ExitStatus, bool) {
    if let Some(status) = child.try_wait().expect("poll child") {
        return (status, false);
    }
    kill9(child.id());
    let status = child.wait().expect("reap child");
    let killed = status.signal() == Some(9);
    (status, killed)
}

/// Polls `cond` every few milliseconds until it holds or `timeout` passes.
/// Returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// A pid that belonged to a process that has exited (and was reaped).
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("run true");
    let pid = child.id();
    child.wait().expect("reap true");
    pid
}

/// Whether a process with this pid exists.
pub fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
