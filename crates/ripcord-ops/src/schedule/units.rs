//! `ripcord schedule install`: the systemd units (or the crontab line)
//! that run a pass every minute.

use std::path::{Path, PathBuf};

use ripcord_core::config::{Config, TargetConfig};

/// What the units run: this binary, with this configuration file, both
/// absolute.
pub struct Invocation {
    pub binary: PathBuf,
    pub config: PathBuf,
}

/// The service and the timer, each with its file name.
pub struct Units {
    pub service: String,
    pub timer: String,
}

pub const SERVICE: &str = "ripcord-schedule.service";
pub const TIMER: &str = "ripcord-schedule.timer";

/// systemd's command lines split on spaces and treat `%` and `\` specially:
/// quote a path that has any of them.
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '%' | '$'))
    {
        format!(
            "\"{}\"",
            text.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('%', "%%")
                .replace('$', "$$")
        )
    } else {
        text
    }
}

/// Folders a pass writes to: the repository (a local one), the catalog,
/// and SQLite targets' folders (SQLite writes its `-wal` and `-shm` files
/// beside the database even to read it). With `ProtectSystem=full` /etc
/// and /usr are read-only otherwise.
fn writable(config: &Config) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Ok(url) = config.repository_url() {
        if let Ok(root) = ripcord_repo::backend::local_root(url) {
            paths.push(root);
        }
    }
    for tier in config.tiers.values() {
        if let Some(url) = &tier.repository {
            if let Ok(root) = ripcord_repo::backend::local_root(url) {
                paths.push(root);
            }
        }
    }
    if let Some(dir) = config.catalog_path().parent() {
        paths.push(dir.to_path_buf());
    }
    for target in config.targets.values() {
        if let TargetConfig::Sqlite { path, .. } = target {
            if let Some(dir) = path.parent() {
                paths.push(dir.to_path_buf());
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| p.is_absolute() && !p.as_os_str().is_empty())
        .collect()
}

/// Whether something the pass reads or writes lives under /tmp, which
/// `PrivateTmp=` would hide from it.
fn uses_tmp(config: &Config) -> bool {
    let under_tmp = |p: &Path| p.starts_with("/tmp") || p.starts_with("/var/tmp");
    writable(config).iter().any(|p| under_tmp(p))
        || config.targets.values().any(|t| match t {
            TargetConfig::Dir { path, .. } | TargetConfig::Sqlite { path, .. } => under_tmp(path),
            TargetConfig::Postgres { .. } => false,
        })
}

pub fn systemd(config: &Config, run: &Invocation) -> Units {
    let exec = format!(
        "{} --config {} schedule run",
        quoted(&run.binary),
        quoted(&run.config)
    );
    let rw: Vec<String> = writable(config)
        .iter()
        .map(|p| format!("-{}", quoted(p)))
        .collect();
    let private_tmp = if uses_tmp(config) {
        "# PrivateTmp= is left out: a target, the repository or the catalog is under /tmp.\n"
    } else {
        "PrivateTmp=yes\n"
    };
    let service = format!(
        "# {SERVICE}: one pass of `ripcord schedule run` (due snapshots, retention, geo copies).\n\
         # Put it and {TIMER} in /etc/systemd/system/, then:\n\
         #   systemctl daemon-reload && systemctl enable --now {TIMER}\n\
         # The passphrase comes from [repository] password_command, or from RIPCORD_PASSWORD in\n\
         # an EnvironmentFile= readable by root only.\n\
         [Unit]\n\
         Description=ripcord scheduled snapshots, retention and geo copies\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={exec}\n\
         # User=ripcord  (a user that may read the targets and write the repository)\n\
         # EnvironmentFile=-/etc/ripcord/env\n\
         Nice=10\n\
         IOSchedulingClass=best-effort\n\
         IOSchedulingPriority=7\n\
         NoNewPrivileges=yes\n\
         {private_tmp}\
         PrivateDevices=yes\n\
         ProtectSystem=full\n\
         {}\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectKernelLogs=yes\n\
         ProtectControlGroups=yes\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         RestrictSUIDSGID=yes\n\
         RestrictRealtime=yes\n\
         RestrictNamespaces=yes\n\
         LockPersonality=yes\n\
         SystemCallArchitectures=native\n\
         UMask=0077\n",
        if rw.is_empty() {
            String::new()
        } else {
            format!("ReadWritePaths={}\n", rw.join(" "))
        }
    );
    let timer = format!(
        "# {TIMER}: starts {SERVICE} every minute; a pass with nothing due ends at once,\n\
         # and a pass missed while the machine was off runs when it is back (Persistent=).\n\
         [Unit]\n\
         Description=ripcord schedule, every minute\n\
         \n\
         [Timer]\n\
         OnCalendar=minutely\n\
         Persistent=true\n\
         AccuracySec=1s\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    );
    Units { service, timer }
}

/// A crontab line (for `crontab -e` of the user that runs the passes).
pub fn cron(run: &Invocation) -> String {
    let sh = |p: &Path| {
        let t = p.display().to_string();
        if t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
        {
            t
        } else {
            format!("'{}'", t.replace('\'', "'\\''"))
        }
    };
    // cron treats `%` as a newline: none may stay unescaped.
    let line = format!(
        "* * * * * {} --config {} --quiet schedule run",
        sh(&run.binary),
        sh(&run.config)
    )
    .replace('%', "\\%");
    format!(
        "# ripcord schedule: one pass every minute (add with `crontab -e`); cron mails any output,\n\
         # and --quiet keeps it to errors.\n{line}\n"
    )
}

/// One file `schedule install` prints.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct UnitFile {
    /// Its name: `ripcord-schedule.service`, `ripcord-schedule.timer`.
    pub file: String,
    pub text: String,
}

/// `schedule install --json`.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct InstallOutput {
    /// With `--systemd`: the service and the timer; else empty.
    pub files: Vec<UnitFile>,
    /// With `--cron`: the crontab line, with its comment.
    pub cron: Option<String>,
}

/// What `schedule install` prints for `run`.
pub fn install(config: &Config, run: &Invocation, systemd: bool, cron: bool) -> InstallOutput {
    let files = if systemd {
        let u = self::systemd(config, run);
        vec![
            UnitFile {
                file: SERVICE.into(),
                text: u.service,
            },
            UnitFile {
                file: TIMER.into(),
                text: u.timer,
            },
        ]
    } else {
        Vec::new()
    };
    InstallOutput {
        files,
        cron: cron.then(|| self::cron(run)),
    }
}
