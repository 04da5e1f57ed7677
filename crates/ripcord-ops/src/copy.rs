//! `copy`: snapshots copied to another repository (its own passphrase and
//! keys), then read back there. The work is [`ripcord_repo::copy`]'s; this
//! opens and locks both repositories, picks the snapshots and reports.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ripcord_repo::copy::{Copier, Copies, CopyStats};
use ripcord_repo::manifest::Snapshot;
use ripcord_repo::saver::SaverOptions;
use ripcord_repo::{Id, Repository};
use ripcord_targets::Progress;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::ctx::{secret_env, Ctx};
use crate::{Error, Result};

/// What to copy where, as a front end asks for it.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// The destination repository: a path or URL.
    pub to: String,
    /// Prints the destination's passphrase (else `RIPCORD_TO_PASSWORD`,
    /// else a prompt).
    pub to_password_command: Option<String>,
    /// Snapshot ids, prefixes or `latest`; empty: every snapshot.
    pub snapshots: Vec<String>,
    /// Say what would be copied; write nothing.
    pub dry_run: bool,
}

/// One snapshot of a copy.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CopiedSnapshot {
    /// The snapshot in the source repository.
    pub snapshot: Id,
    pub time: DateTime<Utc>,
    #[serde(serialize_with = "crate::json::target_list")]
    #[schemars(with = "Vec<crate::json::TargetName>")]
    pub targets: Vec<String>,
    /// The destination held a copy already, which was left as it is.
    pub present: bool,
    /// The copy in the destination; `null` in a dry run for one not there yet.
    pub copy_snapshot: Option<Id>,
}

/// What `copy` read back from the destination.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct CopyVerify {
    /// Copied snapshots whose manifests, trees and index entries were checked.
    pub snapshot_count: usize,
    /// Blobs sent, read back, decrypted and re-hashed.
    pub blobs_checked: usize,
    pub packs_read: usize,
    pub read_bytes: u64,
}

/// `copy --json`.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CopyReport {
    pub dry_run: bool,
    /// The source repository.
    pub repository: String,
    /// The destination repository.
    pub destination: String,
    pub snapshots: Vec<CopiedSnapshot>,
    /// Snapshots copied (in a dry run: that would be).
    pub copied_count: usize,
    /// Snapshots the destination held already.
    pub present_count: usize,
    pub stats: CopyStats,
    /// Packs an interrupted copy or snapshot had left in the destination,
    /// indexed and reused.
    pub recovered_packs: usize,
    /// `null` when nothing was copied.
    pub verify: Option<CopyVerify>,
    pub seconds: f64,
}

/// `ripcord copy`: copies snapshots from the configured repository to
/// `opts.to`, sending only the blobs it lacks, and reads back what was sent.
/// Every check (snapshots exist, the destination opens and is another
/// repository) comes before anything is written.
pub fn copy(ctx: &Ctx, opts: &CopyOptions) -> Result<CopyReport> {
    let start = Instant::now();
    let src = ctx.open_repo()?;
    let chosen = choose(ctx, &src, &opts.snapshots)?;
    let dst = open_destination(ctx, &src, opts)?;
    copy_chosen(ctx, &src, &dst, chosen, opts.dry_run, start)
}

/// Copies `ids` (each once) from `src` to `dst`, both opened already: what
/// a geo tier of `schedule run` does.
pub fn copy_between(
    ctx: &Ctx,
    src: &Repository,
    dst: &Repository,
    ids: &[Id],
) -> Result<CopyReport> {
    let start = Instant::now();
    let selectors: Vec<String> = ids.iter().map(|id| id.to_hex()).collect();
    let chosen = choose(ctx, src, &selectors)?;
    copy_chosen(ctx, src, dst, chosen, false, start)
}

fn copy_chosen(
    ctx: &Ctx,
    src: &Repository,
    dst: &Repository,
    chosen: Vec<(Id, Snapshot)>,
    dry_run: bool,
    start: Instant,
) -> Result<CopyReport> {
    if dry_run {
        let copies = Copies::of(dst)?;
        warn_damaged(ctx, &copies);
        let snapshots: Vec<CopiedSnapshot> = chosen
            .iter()
            .map(|(id, snap)| entry(*id, snap, copies.find(*id, snap), None))
            .collect();
        let present_count = snapshots.iter().filter(|s| s.present).count();
        ctx.say(format!(
            "dry run: would copy {} to {}; {} there already; nothing was changed",
            crate::report::counted((snapshots.len() - present_count) as u64, "snapshot"),
            dst.location(),
            present_count
        ));
        return Ok(CopyReport {
            dry_run: true,
            repository: src.location(),
            destination: dst.location(),
            copied_count: snapshots.len() - present_count,
            present_count,
            snapshots,
            stats: CopyStats::default(),
            recovered_packs: 0,
            verify: None,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    let _src_lock = ctx.lock(src, false, "copy")?;
    let _dst_lock = ctx.lock(dst, false, "copy")?;
    let src_index = src.load_index()?;
    let saver = SaverOptions {
        compression: ctx.config.snapshot.compression,
        jobs: ctx.config.snapshot.jobs,
    };
    let mut copier = Copier::new(src, &src_index, dst, saver)?;
    warn_damaged(ctx, copier.copies());
    if copier.recovered_packs() > 0 {
        ctx.say(format!(
            "reusing {} left by an interrupted run in the destination",
            crate::report::counted(copier.recovered_packs() as u64, "pack")
        ));
    }
    let mut snapshots = Vec::with_capacity(chosen.len());
    let mut copied = Vec::new();
    for (id, snap) in &chosen {
        let existing = copier.existing(*id, snap);
        let copy = match existing {
            Some(c) => {
                ctx.say(format!(
                    "snapshot {} is in the destination already, as {}",
                    id.short(),
                    c.short()
                ));
                c
            }
            None => {
                let bar = Mutex::new(ctx.bar(None, &format!("copy {}", id.short())));
                let progress = |n: u64| bar.lock().expect("bar").bytes(n);
                let c = copier.copy(*id, snap, &progress)?;
                bar.lock().expect("bar").finish();
                ctx.say(format!("copied snapshot {} as {}", id.short(), c.short()));
                copied.push(c);
                c
            }
        };
        snapshots.push(entry(*id, snap, existing, Some(copy)));
    }
    let verify = if copied.is_empty() {
        None
    } else {
        Some(read_back(ctx, dst, &copied, &copier)?)
    };
    let present_count = snapshots.iter().filter(|s| s.present).count();
    Ok(CopyReport {
        dry_run: false,
        repository: src.location(),
        destination: dst.location(),
        copied_count: snapshots.len() - present_count,
        present_count,
        snapshots,
        stats: copier.stats(),
        recovered_packs: copier.recovered_packs(),
        verify,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn entry(id: Id, snap: &Snapshot, existing: Option<Id>, copy: Option<Id>) -> CopiedSnapshot {
    CopiedSnapshot {
        snapshot: id,
        time: snap.time,
        targets: snap.target_names(),
        present: existing.is_some(),
        copy_snapshot: existing.or(copy),
    }
}

fn warn_damaged(ctx: &Ctx, copies: &Copies) {
    for d in copies.damaged() {
        ctx.warn(format!("in the destination: {}", d.warning()));
    }
}

/// The snapshots named (each once), or every one that reads; oldest first,
/// so that a parent's copy exists before its child's.
fn choose(ctx: &Ctx, src: &Repository, selectors: &[String]) -> Result<Vec<(Id, Snapshot)>> {
    let mut chosen = if selectors.is_empty() {
        let list = src.snapshot_list()?;
        for d in &list.damaged {
            ctx.warn(d.warning());
        }
        list.snapshots
    } else {
        let mut v: Vec<(Id, Snapshot)> = Vec::new();
        for s in selectors {
            let found = ctx.find_snapshot(src, s)?;
            if !v.iter().any(|(id, _)| *id == found.0) {
                v.push(found);
            }
        }
        v
    };
    chosen.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    Ok(chosen)
}

/// Opens the destination with its own passphrase: `--to-password-command`,
/// else `RIPCORD_TO_PASSWORD`, else a prompt. Refuses the source itself.
fn open_destination(ctx: &Ctx, src: &Repository, opts: &CopyOptions) -> Result<Repository> {
    let backend = ctx.backend_at(&opts.to)?;
    let location = backend.location();
    // Compared before any passphrase is asked: the same config bytes are
    // the same repository (or a byte-for-byte copy of it).
    let read = |b: &dyn ripcord_repo::backend::Backend| b.get("config").ok();
    if read(&*backend).is_some() && read(&**src.backend()) == read(&*backend) {
        return Err(same_repository(&location));
    }
    let dst = open_with(ctx, backend, &opts.to, opts.to_password_command.as_deref())?;
    if dst.config().id == src.config().id {
        return Err(same_repository(&location));
    }
    Ok(dst)
}

/// Opens another repository than the configured one (a geo tier's):
/// `password_command`, else `RIPCORD_TO_PASSWORD`, else a prompt.
pub fn open_other(ctx: &Ctx, url: &str, password_command: Option<&str>) -> Result<Repository> {
    let backend = ctx.backend_at(url)?;
    open_with(ctx, backend, url, password_command)
}

fn open_with(
    ctx: &Ctx,
    backend: std::sync::Arc<dyn ripcord_repo::backend::Backend>,
    url: &str,
    password_command: Option<&str>,
) -> Result<Repository> {
    let env = secret_env(2);
    let configured = env.is_some() || password_command.is_some();
    let encrypted =
        Repository::is_encrypted_at(&*backend).map_err(|e| destination_error(e, url))?;
    let pass: Option<Zeroizing<String>> = if configured || encrypted {
        match (password_command, env) {
            (Some(cmd), _) => Some(ripcord_core::password::from_command(
                cmd,
                ctx.config.repository.password_timeout(),
            )?),
            (None, Some(p)) => Some(p),
            (None, None) => ctx
                .reporter
                .passphrase("destination passphrase: ")
                .map_err(|e| Error::failed(format!("cannot read the passphrase: {e}")))?
                .map(Zeroizing::new),
        }
    } else {
        None
    };
    Repository::open(backend, pass.as_ref().map(|p| p.as_str()))
        .map_err(|e| destination_error(e, url))
}

fn same_repository(location: &str) -> Error {
    Error::usage(
        format!("the destination {location} is the source repository itself"),
        "copy to another repository: `ripcord copy --to PATH`",
    )
}

/// The repository's own errors speak of the configured repository; these
/// say how to fix the destination.
fn destination_error(e: ripcord_repo::Error, to: &str) -> Error {
    use ripcord_repo::Error as R;
    let hint = match &e {
        R::NotARepository { .. } => format!(
            "create it first with its own passphrase: `RIPCORD_PASSWORD=… ripcord init --repository {to}`"
        ),
        R::WrongPassword { .. } | R::PasswordRequired { .. } => {
            "give the destination's passphrase in RIPCORD_TO_PASSWORD or with --to-password-command"
                .into()
        }
        _ => return e.into(),
    };
    Error::usage(format!("destination: {e}"), hint)
}

/// Reads back what was copied: manifests, trees and index entries of every
/// copied snapshot, and every blob sent, decrypted and re-hashed.
fn read_back(ctx: &Ctx, dst: &Repository, copied: &[Id], copier: &Copier) -> Result<CopyVerify> {
    let bar = Mutex::new(ctx.bar(None, "verify copy"));
    let last = std::sync::atomic::AtomicU64::new(0);
    let report =
        ripcord_repo::verify::verify_snapshots(dst, copied, Some(copier.written()), &|done, _| {
            let prev = last.swap(done, std::sync::atomic::Ordering::Relaxed);
            bar.lock().expect("bar").bytes(done.saturating_sub(prev));
        })?;
    bar.lock().expect("bar").finish();
    if !report.ok() {
        let lines: Vec<String> = report
            .problems
            .iter()
            .map(|p| {
                let mut line = format!("{}: {}", p.object, p.detail);
                if !p.affects.is_empty() {
                    line.push_str(&format!(" (affects {})", p.affects.join(", ")));
                }
                line
            })
            .collect();
        return Err(Error::failed(format!(
            "the copy does not verify in the destination ({}): {}; run `ripcord verify --deep` \
             on the destination, and copy again once it is repaired",
            crate::report::counted(report.problems.len() as u64, "problem"),
            lines.join("; ")
        )));
    }
    Ok(CopyVerify {
        snapshot_count: report.snapshots,
        blobs_checked: report.blobs_checked,
        packs_read: report.packs_read,
        read_bytes: report.bytes_read,
    })
}
