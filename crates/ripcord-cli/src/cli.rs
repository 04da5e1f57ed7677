//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The heading of the flags every command takes, apart from its own.
const GLOBAL: &str = "Global options";

#[derive(Parser, Debug)]
#[command(
    name = "ripcord",
    version,
    about = "Make changes to production systems reversible: verified, encrypted snapshots of databases and directories, and restores you can trust."
)]
pub struct Cli {
    /// Configuration file [default: ./ripcord.toml]
    #[arg(long, global = true, env = "RIPCORD_CONFIG", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Print only errors
    #[arg(long, short, global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a commented ripcord.toml (if there is none) and create the repository
    Init(InitArgs),
    /// Check that this host is ready: the repository opens, every target answers, the
    /// migration plan reads, the catalog works, and ripcord is not in safe mode
    Check,
    /// Snapshot targets (all configured targets when none are named)
    Snapshot(SnapshotArgs),
    /// List snapshots
    Snapshots(SnapshotsArgs),
    /// Show one snapshot: when and where it was taken, and each target's files, tables and rows
    Show {
        /// Snapshot id (or a unique prefix, `latest`, or `latest:TAG`)
        snapshot: String,
    },
    /// Compare two snapshots: files added, removed and modified; tables changed
    Diff(DiffArgs),
    /// Restore a snapshot, in place (after a safety snapshot) or --into a folder
    #[command(after_help = RESTORE_HELP)]
    Restore(RestoreArgs),
    /// List what a snapshot holds: files and folders with sizes, tables with rows
    Ls(LsArgs),
    /// Check the repository; --deep also reads and re-hashes the data
    Verify(VerifyArgs),
    /// Remove snapshots by id or by a retention policy
    Forget(ForgetArgs),
    /// Delete data that no snapshot references
    Prune(PruneArgs),
    /// Copy snapshots to another repository, which has its own passphrase: only the data it
    /// lacks is sent, and what was sent is read back and checked there
    Copy(CopyArgs),
    /// Manage the passphrases that open the repository
    #[command(subcommand)]
    Key(KeyCommand),
    /// Take due snapshots, apply retention and fill geo tiers, on a timer
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Manage the API tokens the HTTP server accepts: each has a name and a role, and the
    /// catalog keeps only its hash
    #[command(subcommand)]
    Token(TokenCommand),
    /// Remove stale locks left by processes that died
    Unlock {
        /// Remove every lock, also live ones
        #[arg(long)]
        all: bool,
        /// Show which locks would be removed; change nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// Repair repository structures
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Run a recovery runbook level: its steps in order, each journaled; a failed level
    /// escalates, and when none is left ripcord enters safe mode
    Recover(RecoverArgs),
    /// Go on with a recovery run that a crash or a kill stopped: finished steps are skipped
    Resume(ResumeArgs),
    /// List runs (recoveries, and restores and rollbacks by hand), newest first
    Runs,
    /// The recovery run in progress (its step, elapsed time and ETA) and safe mode
    Status {
        /// Show it again every second until no run is in progress
        #[arg(long)]
        watch: bool,
    },
    /// The incident report of a run: trigger, timeline, escalations, data, RTO and RPO, checklist, KPIs
    Report {
        /// The run's id (or a unique prefix, or `latest`)
        run: String,
        /// md (Markdown) or json
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
        /// Write the report to this file instead of printing it
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// Leave safe mode (entered when every recovery level failed), with a reason for the audit
    Ack {
        /// What was checked or done: it goes into the audit
        #[arg(long)]
        reason: String,
    },
    /// The audit trail: who changed what, when and why, hash-chained
    Audit {
        /// Only entries written since: a duration back from now (`24h`, `7d`) or an RFC 3339 time
        #[arg(long)]
        since: Option<String>,
        /// Recompute the chain; exit 1 and name the first entry that was edited, removed,
        /// reordered or inserted
        #[arg(long)]
        verify: bool,
    },
    /// The guard: sample health probes, judge them by rules, and act (alert, roll back,
    /// escalate)
    #[command(subcommand)]
    Guard(GuardCommand),
    /// Prove the backups restore: the latest snapshot of each target restored into scratch,
    /// checked, timed against [objectives] rto, and removed
    Drill {
        /// Targets to drill [default: every configured target]
        targets: Vec<String>,
        /// Also write the report, in Markdown, to this file
        #[arg(long, value_name = "FILE")]
        report: Option<std::path::PathBuf>,
    },
    /// Serve the HTTP API, the dashboard, /metrics and /health (docs/server.md)
    Serve(ServeArgs),
    /// Run a folder of migrations: plan, status, up, down, rehearse, lint
    Migrate(MigrateCli),
    /// Revert the database's migrations back to a change or phase, data included
    Rollback(RollbackArgs),
    /// Run the whole story on a throwaway app in a temporary folder
    Demo {
        /// Keep the demo folder instead of deleting it
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Repository location (a path or file:// URL); overrides the configuration
    #[arg(long)]
    pub repository: Option<String>,
    /// Create a repository without encryption
    #[arg(long)]
    pub insecure_no_encryption: bool,
    /// Print the commented example configuration and exit
    #[arg(long)]
    pub print_config: bool,
    /// Check the passphrase and the location; write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// Which targets and snapshots a command works on: the same flags for
/// `snapshot`, `restore`, `snapshots`, `forget` and `diff`.
#[derive(Args, Debug, Default, Clone)]
pub struct Selection {
    /// Only these targets, by name from ripcord.toml (repeatable, or comma-separated:
    /// --target app,config); a name no target has is an error
    #[arg(long = "target", value_name = "NAME", value_delimiter = ',')]
    pub targets: Vec<String>,
    /// `snapshot`: tag the new snapshot; the others: only snapshots with every one of these
    /// tags (repeatable, or comma-separated); a tag no snapshot has is an error
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    pub tags: Vec<String>,
}

impl Selection {
    pub fn to_ops(&self) -> ripcord_ops::select::Selection {
        ripcord_ops::select::Selection {
            targets: self.targets.clone(),
            tags: self.tags.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Targets to snapshot, by name from ripcord.toml (the same as --target)
    #[arg(id = "target_args", value_name = "TARGET")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub select: Selection,
    /// The tier this snapshot belongs to
    #[arg(long)]
    pub tier: Option<String>,
    /// Only these tables of a database target (comma-separated, `table` or `schema.table`;
    /// a part in double quotes keeps its case, dots, spaces and commas: '"My App"."Odd.Table"')
    #[arg(long)]
    pub tables: Vec<String>,
    /// Parallel database workers, at most 256 [default: one per core]
    #[arg(long, value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Show what would be snapshot, and from where; read and write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Snapshots to copy: ids, unique prefixes, `latest` or `latest:TAG` [default: every
    /// snapshot, safety snapshots included]
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// The destination repository: a path or file:// URL. Create it first with
    /// `ripcord init --repository URL`
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// A command that prints the destination's passphrase [default: RIPCORD_TO_PASSWORD,
    /// else a prompt on a terminal]
    #[arg(long, value_name = "CMD")]
    pub to_password_command: Option<String>,
    /// Show which snapshots would be copied and which are there already; write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub select: Selection,
    /// Only snapshots of this tier
    #[arg(long)]
    pub tier: Option<String>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The older snapshot: id (or a unique prefix, `latest`, or `latest:TAG`)
    pub a: String,
    /// The newer snapshot: id (or a unique prefix, `latest`, or `latest:TAG`)
    pub b: String,
    /// --target: compare only these targets; --tag: `latest` means the newest snapshot
    /// with these tags (and targets)
    #[command(flatten)]
    pub select: Selection,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id (or a unique prefix); `latest`, the newest snapshot that
    /// is not a safety snapshot; `latest:TAG`, the newest with that tag
    /// (`latest:safety`, `latest:pre-deploy`)
    pub snapshot: String,
    /// --target: restore only these targets; --tag: `latest` means the newest snapshot with
    /// these tags
    #[command(flatten)]
    pub select: Selection,
    /// Restore into this folder instead of over the live targets: each target goes to
    /// DIR/<target name> (a SQLite database to DIR/<target name>/<file name>); DIR is
    /// created when missing. A PostgreSQL target takes a postgres:// URL instead
    #[arg(long, value_name = "DIR|URL")]
    pub into: Option<PathBuf>,
    /// Only these tables of one database target, PostgreSQL or SQLite (comma-separated,
    /// as for `snapshot --tables`)
    #[arg(long)]
    pub tables: Vec<String>,
    /// Only the paths of one dir target that this glob matches, relative to the target's
    /// root (`config/*.toml`, `a/b.txt`, a folder); repeatable. In place, files not
    /// matched are left untouched
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// PostgreSQL: create the --into database first
    #[arg(long)]
    pub create: bool,
    /// PostgreSQL: replace what a non-empty --into database holds
    #[arg(long)]
    pub clean: bool,
    /// Parallel database workers, at most 256 [default: one per core]
    #[arg(long, value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Restore what is intact from a damaged snapshot, skipping damaged files
    #[arg(long)]
    pub partial: bool,
    /// Why: kept in the run's journal, the audit and the report
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Show what would be restored, and where; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// Shown after `restore --help`.
const RESTORE_HELP: &str = "\
Destinations:
  in place        each target over its configured path or database, after a safety snapshot
  --into DIR      each target at DIR/<target name>, for one target as for many:
                    a dir target     DIR/<name>/ holds its tree
                    a SQLite target  DIR/<name>/<its file name>, e.g. DIR/shop/shop.db
                  DIR is created when missing; DIR/<name> must be missing or empty
  --into URL      one PostgreSQL target into the database postgres://user@host/db

Parts of a target:
  --include PATTERN   dir target: only matching paths; in place, nothing else is touched
                      and nothing is deleted (live files the snapshot lacks stay)
  --tables T1,T2      database target: only these tables, with their indexes and
                      triggers; foreign keys must still find their rows

Examples:
  ripcord restore latest --into /tmp/check            # /tmp/check/<target>/...
  ripcord restore latest --target app --include 'config/*.toml'
  ripcord restore latest --target shop --tables orders,customers
  ripcord ls latest app/config                         # what a snapshot holds";

#[derive(Args, Debug)]
pub struct RecoverArgs {
    /// The runbook level to start at, from [runbooks.LEVEL] in ripcord.toml
    #[arg(long)]
    pub level: String,
    /// Why: it goes into the journal, the audit and the report
    #[arg(long)]
    pub reason: String,
    /// Show the steps that would run, level by level; run nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// The run (`ripcord runs`); the newest unfinished one when left out
    pub run: Option<String>,
    /// Run an interrupted, non-idempotent command step again (it may have taken effect)
    #[arg(long, conflicts_with = "skip")]
    pub rerun: bool,
    /// Go on without an interrupted, non-idempotent command step
    #[arg(long)]
    pub skip: bool,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id (or a unique prefix, `latest`, or `latest:TAG`)
    pub snapshot: String,
    /// Only this target, or a path inside one: TARGET/PATH (`app/config`); a table for
    /// a database target (`shop/orders`)
    pub path: Option<String>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Only this snapshot
    pub snapshot: Option<String>,
    /// Read every pack, decrypt and re-hash every blob
    #[arg(long)]
    pub deep: bool,
    /// With --deep: read only this share of the packs, e.g. 10%
    #[arg(long, value_parser = parse_percent)]
    pub subset: Option<f64>,
}

/// Checked while parsing, so that a bad value stops the command before it
/// takes a lock or starts a thread.
fn parse_jobs(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of jobs such as 4"))?;
    ripcord_core::limits::check_jobs(n)
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage such as 10%"))?;
    if n > 0.0 && n <= 100.0 {
        Ok(n)
    } else {
        Err(format!("{s:?} must be more than 0% and at most 100%"))
    }
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to forget, by id; without ids the keep policy decides
    pub snapshots: Vec<String>,
    /// Keep the newest N snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<usize>,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<usize>,
    /// Keep the newest snapshot of each of the last N weeks that have one
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<usize>,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<usize>,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<usize>,
    /// Keep every snapshot within this duration of the newest, e.g. 72h
    #[arg(long)]
    pub keep_within: Option<String>,
    /// Keep snapshots with this tag; `a,b` keeps those with both (repeatable)
    #[arg(long = "keep-tag", value_name = "TAGLIST")]
    pub keep_tags: Vec<String>,
    /// Safety snapshots: keep the newest N of each target [default: [safety.keep], else 5]
    #[arg(long, value_name = "N")]
    pub keep_safety_last: Option<usize>,
    /// Safety snapshots: keep the newest of each of the last N days
    #[arg(long, value_name = "N")]
    pub keep_safety_daily: Option<usize>,
    /// Safety snapshots: keep those within this duration of the newest [default: [safety.keep], else 14d]
    #[arg(long, value_name = "DURATION")]
    pub keep_safety_within: Option<String>,
    /// Only snapshots of this tier; its [tiers.T] keep policy applies when no --keep-* is given
    #[arg(long)]
    pub tier: Option<String>,
    /// Only snapshots holding these targets and tags; the keep policy judges only them
    #[command(flatten)]
    pub select: Selection,
    /// Also remove safety snapshots that applied migrations need to roll back
    #[arg(long)]
    pub force: bool,
    /// Also delete the data no snapshot references any more
    #[arg(long)]
    pub prune: bool,
    /// Show what would be removed and change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Show what would be removed and change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// One pass: a snapshot of each tier's targets whose newest is older than `every`, the
    /// tier's keep policy, and copies to geo tiers; a second pass at once does nothing, and
    /// one that finds another running exits 0
    Run,
    /// Print what runs a pass every minute: systemd units (--systemd) or a crontab line
    /// (--cron), for this binary and configuration file
    Install {
        /// Print ripcord-schedule.service and ripcord-schedule.timer
        #[arg(long, required_unless_present = "cron")]
        systemd: bool,
        /// Print a crontab line
        #[arg(long)]
        cron: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a passphrase (RIPCORD_NEW_PASSWORD, or asked on a terminal)
    Add {
        /// Check the passphrases; add nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// List keys
    List,
    /// Remove a key by id
    Remove {
        /// Key id, or a unique prefix of it (`ripcord key list` shows them)
        id: String,
        /// Check that the key may be removed; remove nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// Change the passphrase of the key in use
    Passwd {
        /// Check the passphrases; change nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token and print it, this once: it is not kept and cannot be shown again
    Add {
        /// The token's name: 1 to 64 letters, digits, `.`, `_` or `-`; no active token may have
        /// it already
        #[arg(long)]
        name: String,
        /// What it may do; each role may do all that the one before it may, and more
        #[arg(long, value_parser = parse_role())]
        role: ripcord_ops::tokens::Role,
    },
    /// List the tokens, active and revoked: name, role, when and by whom made (never the
    /// token itself)
    List,
    /// Revoke the active token with this name: it is refused from then on
    Revoke {
        /// The token's name (`ripcord token list` shows them)
        name: String,
    },
}

/// A role by its name; help and errors list the names.
fn parse_role() -> impl clap::builder::TypedValueParser<Value = ripcord_ops::tokens::Role> {
    use clap::builder::TypedValueParser as _;
    use ripcord_ops::tokens::Role;
    clap::builder::PossibleValuesParser::new(Role::ALL.map(Role::as_str))
        .map(|s| s.parse::<Role>().expect("one of the possible values"))
}

#[derive(Subcommand, Debug)]
pub enum MigrateCommand {
    /// List the changes in the order they run, with their status when the database is reachable
    Plan(PlanArgs),
    /// Compare the plan with what the database has recorded; exits 3 on drift, dirty changes or a diverging history
    Status,
    /// Report risky statements: destruction without a way back, no-transaction DDL, rewrites and long locks; exit 2 on a syntax error
    Lint(LintArgs),
    /// Apply pending changes, each after a safety snapshot of the tables it touches
    Up(UpArgs),
    /// Revert applied changes back to a change or phase, newest first, data included
    Down(DownArgs),
    /// On a scratch copy of the database: up (with each verify script there is), down, compare with before, up again
    Rehearse(RehearseArgs),
    /// Run the verify script of every applied change again, read-only and rolled back;
    /// exits 1 when any fails
    Verify,
    /// Take over a database another tool migrated (sqitch, Flyway, golang-migrate, dbmate,
    /// Liquibase): check its history against the files and record it, running nothing
    Adopt(AdoptArgs),
}

#[derive(Args, Debug)]
pub struct AdoptArgs {
    /// Set from `migrate`'s own --format and --set
    #[arg(skip)]
    pub common: MigrateArgs,
    /// Record the history although it disagrees with the files (edited scripts, unknown or
    /// failed entries), taking the files as they are now
    #[arg(long)]
    pub accept: bool,
    /// Check and show what would be recorded; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Where the other tool keeps its history when not in its default place: a table
    /// (`schema.table`), sqitch's registry schema, or on SQLite sqitch's registry file
    #[arg(long, value_name = "TABLE")]
    pub history: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum GuardCommand {
    /// One evaluation: a sample of every probe now, then every rule over its window; exit 0
    /// ok, 1 when a critical rule is breached, 4 when a rule is inconclusive
    Check,
    /// Sample every probe at its interval, judge the rules as samples arrive, and act
    Watch {
        /// Let rollback rules start their recovery run (without it they alert and say what
        /// they would have done)
        #[arg(long)]
        auto_rollback: bool,
        /// Stop after this long, e.g. 10m [default: until stopped]
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
    },
    /// The newest sample of every probe and what every rule says now, from the catalog
    Status,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Set from `migrate`'s own --format and --set
    #[arg(skip)]
    pub common: MigrateArgs,
    /// Stop after this change, version or @phase [default: the end of the plan]
    #[arg(long)]
    pub to: Option<String>,
    /// Run every check and show what would run, and which changes get a safety snapshot;
    /// change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Go on although applied scripts were edited since they ran
    #[arg(long)]
    pub allow_drift: bool,
    /// Apply changes although some tables they touch cannot be protected (a foreign table, no
    /// SELECT right, row-level security the role cannot bypass); those are left out of the
    /// safety snapshot and `down` cannot put them back
    #[arg(long)]
    pub allow_unprotected: bool,
    /// How long to wait for a table's lock before giving up with nothing changed, e.g. 5s
    /// [default: [migrations] lock_timeout, else 5s]
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// After applying, watch the guard's rules for this long (e.g. 10m); a critical rule
    /// breached reverts exactly the changes applied, data included
    #[arg(long, value_name = "DURATION")]
    pub bake: Option<String>,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Set from `migrate`'s own --format and --set
    #[arg(skip)]
    pub common: MigrateArgs,
    /// The change, version or @phase to go back to (it stays applied); @root reverts
    /// everything; @last-good, the state before the latest `migrate up`. The same as --to
    #[arg(
        value_name = "TO",
        required_unless_present = "to",
        conflicts_with = "to"
    )]
    pub to_arg: Option<String>,
    /// The change, version or @phase to go back to (it stays applied); @root reverts
    /// everything; @last-good, the state before the latest `migrate up`
    #[arg(long, value_name = "TO")]
    pub to: Option<String>,
    /// Why: kept in the run's journal, the audit and the report
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Run every check and show what would be reverted, and how; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Go on although applied scripts were edited since they ran
    #[arg(long)]
    pub allow_drift: bool,
    /// Rows written since a change, for every table: snapshot, keep-new or review
    /// [default: [migrations] on_conflict]
    #[arg(long)]
    pub on_conflict: Option<String>,
    /// How long to wait for a table's lock before giving up with nothing changed, e.g. 5s
    /// [default: [migrations] lock_timeout, else 5s]
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
}

#[derive(Args, Debug)]
pub struct RehearseArgs {
    /// Set from `migrate`'s own --format and --set
    #[arg(skip)]
    pub common: MigrateArgs,
    /// Rehearse the changes up to this change, version or @phase
    #[arg(long)]
    pub to: Option<String>,
    /// Keep the scratch database (its name or path is printed)
    #[arg(long)]
    pub keep: bool,
}

impl DownArgs {
    /// The destination, given as an argument or with --to (clap requires one).
    pub fn destination(&self) -> &str {
        self.to_arg
            .as_deref()
            .or(self.to.as_deref())
            .expect("clap requires TO or --to")
    }
}

/// `ripcord migrate`: its options go before or after the subcommand.
#[derive(Args, Debug)]
pub struct MigrateCli {
    #[command(flatten)]
    pub common: MigrateArgs,
    #[command(subcommand)]
    pub command: MigrateCommand,
}

/// `ripcord rollback`, the short form of `migrate down`.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub common: MigrateArgs,
    #[command(flatten)]
    pub down: DownArgs,
}

#[derive(Args, Debug, Default, Clone)]
pub struct MigrateArgs {
    /// Read the plan as this format instead of detecting it
    /// (native, sqitch, flyway, golang-migrate, dbmate, timestamp, liquibase)
    #[arg(long, global = true)]
    pub format: Option<String>,
    /// Set a psql variable (`:name`, `:'name'`) or a Flyway placeholder (`${name}`) for the
    /// scripts; overrides sqitch.conf and flyway.conf. Repeat for several
    #[arg(long = "set", value_name = "NAME=VALUE", global = true)]
    pub set: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Set from `migrate`'s own --format and --set
    #[arg(skip)]
    pub common: MigrateArgs,
    /// Show for each change what its safety snapshot will cover and why, statement by statement
    #[arg(long)]
    pub explain: bool,
}

#[derive(Args, Debug)]
pub struct LintArgs {
    /// Set from `migrate`'s own --format and --set
    #[arg(skip)]
    pub common: MigrateArgs,
    /// Exit 1 when there is any finding (a syntax error exits 2 without it too)
    #[arg(long)]
    pub strict: bool,
}

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the packs' own headers
    Index {
        /// Read the packs' headers and say what the index would hold; write nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The address and port to listen on; anything but localhost needs --tls-cert
    /// or a proxy in front that speaks TLS
    #[arg(long, default_value = "127.0.0.1:8420", value_name = "HOST:PORT")]
    pub listen: std::net::SocketAddr,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Also run the guard's watch in this process
    #[arg(long)]
    pub guard: bool,
    /// Let the guard's rollback rules start recovery runs (with --guard)
    #[arg(long, requires = "guard")]
    pub auto_rollback: bool,
    /// Also run a schedule pass every minute in this process
    #[arg(long)]
    pub schedule: bool,
}
