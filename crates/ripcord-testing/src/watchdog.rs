//! The shell watchdogs that keep test servers (PostgreSQL, Prometheus,
//! Garage, chromedriver) from outliving the tests: each script starts its
//! server, prints a line (the server's pid, or that it is ready), and
//! cleans up when the test drops its stdin, however the test ends.

use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// `/bin/sh -c SCRIPT NAME`, ready for the script's own arguments: stdin
/// and stdout piped, out of the terminal's process group (Ctrl-C kills the
/// tests, and the watchdog still cleans up after them).
pub fn command(script: &str, name: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .arg(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    cmd
}

/// Starts `cmd` and reads the first line the script prints.
pub fn spawn(cmd: &mut Command) -> io::Result<(Child, String)> {
    let mut child = cmd.spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("watchdog stdout")).read_line(&mut line)?;
    Ok((child, line))
}

/// The pid the script printed first.
pub fn pid(line: &str) -> io::Result<u32> {
    line.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("the watchdog printed {line:?}, not a pid")))
}
