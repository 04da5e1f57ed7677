//! Running a user's shell command (`sh -c`) with a time limit: hooks,
//! probes and runbook steps. The command runs in its own process group, so
//! a timeout stops what it started too, and never sees ripcord's
//! passphrases or configuration overrides (which may hold database
//! passwords).

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

/// What a finished command left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Its standard output and error, interleaved by stream (output first),
    /// at most the last `tail` bytes.
    pub output: String,
    /// Its standard output alone (a probe reads a number from it), at most
    /// the last `tail` bytes.
    pub stdout: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("cannot start `sh -c {command:?}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` was still running after {}, and was stopped", humantime::format_duration(*.timeout))]
    TimedOut { command: String, timeout: Duration },
}

/// Runs `command`, killing it and its children after `timeout`; keeps the
/// last `tail` bytes of what it printed.
pub fn run(command: &str, timeout: Duration, tail: usize) -> Result<Finished, ShellError> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (var, _) in std::env::vars_os() {
        if var.to_str().is_some_and(|v| v.starts_with("RIPCORD_")) {
            cmd.env_remove(var);
        }
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|source| ShellError::Spawn {
        command: command.to_string(),
        source,
    })?;
    // Read on threads: a full pipe would block the command, and a
    // grandchild may hold a pipe open after a kill.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        other => {
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::KILL,
            );
            let _ = child.kill();
            let _ = child.wait();
            return Err(match other {
                Err(source) => ShellError::Spawn {
                    command: command.to_string(),
                    source,
                },
                _ => ShellError::TimedOut {
                    command: command.to_string(),
                    timeout,
                },
            });
        }
    };
    let mut bytes = out.join().unwrap_or_default();
    let stdout = last_bytes(&String::from_utf8_lossy(&bytes), tail);
    bytes.extend(err.join().unwrap_or_default());
    Ok(Finished {
        status,
        output: last_bytes(&String::from_utf8_lossy(&bytes), tail),
        stdout,
    })
}

/// The end of `text`, at most `n` bytes, cut at a character boundary.
pub fn last_bytes(text: &str, n: usize) -> String {
    if text.len() <= n {
        return text.to_string();
    }
    let mut cut = text.len() - n;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    text[cut..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn exit_code_and_output_tail() {
        let f = run(
            "echo hello; echo oops >&2; exit 3",
            Duration::from_secs(5),
            100,
        )
        .unwrap();
        assert_eq!(f.status.code(), Some(3));
        assert_eq!(f.output, "hello\noops\n");
        assert_eq!(f.stdout, "hello\n");
        let f = run("printf 0123456789", Duration::from_secs(5), 4).unwrap();
        assert_eq!(f.output, "6789");
    }

    #[test]
    fn a_hanging_command_and_its_children_are_stopped() {
        let start = Instant::now();
        let e = run("sleep 30 & sleep 30", Duration::from_millis(300), 100).unwrap_err();
        assert!(matches!(e, ShellError::TimedOut { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn ripcord_variables_are_not_passed_on() {
        // Set for this process only through the command's own shell.
        let f = run(
            "env | grep -c '^RIPCORD_' || true",
            Duration::from_secs(5),
            100,
        )
        .unwrap();
        assert_eq!(f.output.trim(), "0");
    }
}
