//! Passphrases: reading one from `password_command`, and the rules for a new one.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;
use zeroize::Zeroizing;

use crate::{Class, Classify};

/// How long `password_command` may run when the configuration does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Variables a child process must never see.
const SECRET_VARS: &[&str] = &[
    "RIPCORD_PASSWORD",
    "RIPCORD_NEW_PASSWORD",
    "RIPCORD_TO_PASSWORD",
];

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot run password_command {command:?}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("password_command {command:?} did not finish within {}s and was stopped", timeout.as_secs_f64())]
    TimedOut { command: String, timeout: Duration },
    #[error("password_command {command:?} failed with {status}")]
    Failed { command: String, status: String },
    #[error("password_command {command:?} printed something that is not UTF-8")]
    NotUtf8 { command: String },
    #[error("password_command {command:?} printed an empty passphrase")]
    EmptyOutput { command: String },
    #[error("the new passphrase is empty")]
    EmptyNew,
}

impl Classify for PasswordError {
    fn class(&self) -> Class {
        match self {
            PasswordError::Spawn { .. } | PasswordError::TimedOut { .. } => Class::Failed,
            _ => Class::Usage,
        }
    }
    fn hint(&self) -> Option<String> {
        Some(
            match self {
                PasswordError::TimedOut { .. } => {
                    "the command may be waiting for input; make it print the passphrase without asking, or raise [repository] password_command_timeout"
                }
                PasswordError::NotUtf8 { .. } => "print the passphrase as text",
                PasswordError::EmptyNew => {
                    "choose a non-empty passphrase (RIPCORD_PASSWORD for init, RIPCORD_NEW_PASSWORD for key add and key passwd)"
                }
                _ => "fix the command in [repository] password_command, or set RIPCORD_PASSWORD",
            }
            .to_string(),
        )
    }
}

/// Runs `command` with `sh -c` and returns the first line of what it prints.
/// The command and everything it started are killed after `timeout`: a
/// command that waits for input must not hang every ripcord command.
pub fn from_command(command: &str, timeout: Duration) -> Result<Zeroizing<String>, PasswordError> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Neither the passphrases nor configuration overrides, which may hold
    // database passwords (RIPCORD_TARGETS__APP__URL): the command needs none.
    for var in SECRET_VARS {
        cmd.env_remove(var);
    }
    for (var, _) in std::env::vars_os() {
        if var.to_str().is_some_and(|v| v.starts_with("RIPCORD_")) {
            cmd.env_remove(var);
        }
    }
    // Its own process group, so that a timeout stops its children too.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|source| PasswordError::Spawn {
        command: command.to_string(),
        source,
    })?;
    // Read on a thread: a grandchild may hold the pipe open after a kill.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Zeroizing::new(Vec::new());
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::KILL,
            );
            let _ = child.kill();
            let _ = child.wait();
            return Err(PasswordError::TimedOut {
                command: command.to_string(),
                timeout,
            });
        }
        Err(source) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PasswordError::Spawn {
                command: command.to_string(),
                source,
            });
        }
    };
    if !status.success() {
        return Err(PasswordError::Failed {
            command: command.to_string(),
            status: status.to_string(),
        });
    }
    let bytes = reader
        .join()
        .unwrap_or_else(|_| Ok(Zeroizing::new(Vec::new())))
        .map_err(|source| PasswordError::Spawn {
            command: command.to_string(),
            source,
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| PasswordError::NotUtf8 {
        command: command.to_string(),
    })?;
    let pass = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string());
    if pass.is_empty() {
        return Err(PasswordError::EmptyOutput {
            command: command.to_string(),
        });
    }
    Ok(pass)
}

/// A new passphrase (for a new repository or a new key) must not be empty:
/// an empty one encrypts with a key anyone can derive.
pub fn check_new(passphrase: &str) -> Result<(), PasswordError> {
    if passphrase.is_empty() {
        Err(PasswordError::EmptyNew)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn reads_the_first_line() {
        let p = from_command("printf 'hunter2\\n'", DEFAULT_TIMEOUT).unwrap();
        assert_eq!(p.as_str(), "hunter2");
    }

    #[test]
    fn password_command_that_hangs_is_stopped_after_the_timeout() {
        let start = Instant::now();
        // The grandchild `sleep` keeps the pipe open: it must be killed too.
        let err = from_command("sleep 60; echo late", Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, PasswordError::TimedOut { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(err.class(), Class::Failed);
    }

    #[test]
    fn failing_and_empty_commands_are_errors() {
        assert!(matches!(
            from_command("exit 3", DEFAULT_TIMEOUT),
            Err(PasswordError::Failed { .. })
        ));
        assert!(matches!(
            from_command("true", DEFAULT_TIMEOUT),
            Err(PasswordError::EmptyOutput { .. })
        ));
    }

    #[test]
    fn child_never_sees_the_passphrase_variables() {
        // SAFETY of the test: only this test reads the variable back.
        std::env::set_var("RIPCORD_NEW_PASSWORD", "canary");
        let p = from_command("echo \"x${RIPCORD_NEW_PASSWORD}\"", DEFAULT_TIMEOUT).unwrap();
        assert_eq!(p.as_str(), "x");
    }

    #[test]
    fn empty_new_passphrase_is_refused() {
        assert!(check_new("").is_err());
        assert!(check_new("x").is_ok());
    }
}
