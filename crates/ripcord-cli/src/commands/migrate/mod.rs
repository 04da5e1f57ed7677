//! `ripcord migrate …`: the read-only views of a folder of migrations and of
//! what the target database has recorded (plan, status, lint) here; running
//! them in [`apply`]; the rehearsal's report. The work is done by
//! `ripcord_ops::migrate` and `ripcord_ops::rehearse`.

mod apply;

pub(crate) use apply::millis;

use anyhow::Result;
use ripcord_migrate::analyze::{self, Dialect, Kind, Options};
use ripcord_migrate::engine::{Explained, Scope};
use ripcord_migrate::tracking::{self, ChangeState, Status};
use ripcord_migrate::{Change, Plan, Script};
use ripcord_ops::json::{
    AdoptOutput, LintFinding, LintReport, MigrateVerifyOutput, PlanChange, PlanReport,
};
use ripcord_ops::migrate::{shown, Setup};

use crate::cli::{
    AdoptArgs, LintArgs, MigrateArgs, MigrateCli, MigrateCommand, PlanArgs, RehearseArgs,
    RollbackArgs,
};
use crate::ctx::Ctx;
use crate::output;
use crate::CliError;

pub fn run(ctx: &Ctx, cli: MigrateCli) -> Result<()> {
    // `--format` and `--set` are `migrate`'s own (they go before or after
    // the subcommand); each subcommand reads them from its `common`.
    let common = cli.common;
    match cli.command {
        MigrateCommand::Plan(mut args) => {
            args.common = common;
            plan(ctx, &args)
        }
        MigrateCommand::Status => status(ctx, &common),
        MigrateCommand::Lint(mut args) => {
            args.common = common;
            lint(ctx, &args)
        }
        MigrateCommand::Up(mut args) => {
            args.common = common;
            apply::up(ctx, &args)
        }
        MigrateCommand::Down(mut args) => {
            args.common = common;
            apply::down(ctx, &args, "migrate down")
        }
        MigrateCommand::Rehearse(mut args) => {
            args.common = common;
            rehearse(ctx, &args)
        }
        MigrateCommand::Verify => verify(ctx, &common),
        MigrateCommand::Adopt(mut args) => {
            args.common = common;
            adopt(ctx, &args)
        }
    }
}

/// `ripcord migrate adopt`: what was recorded, and what was found.
fn adopt(ctx: &Ctx, args: &AdoptArgs) -> Result<()> {
    let req = ripcord_ops::migrate::AdoptRequest {
        format: args.common.format.clone(),
        accept: args.accept,
        dry_run: args.dry_run,
        history: args.history.clone(),
    };
    let (name, report) = ripcord_ops::migrate::adopt(ctx, &req)?;
    if ctx.json {
        output::print_json(&AdoptOutput {
            target: name.to_string(),
            report,
        });
        return Ok(());
    }
    for problem in &report.problems {
        ctx.warn(format!("accepted: {problem}"));
    }
    for n in &report.notes {
        ctx.warn(n.clone());
    }
    let rows: Vec<Vec<String>> = report
        .adopted
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.check.clone(),
                if c.down { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    if !ctx.quiet && !rows.is_empty() {
        output::table(&["CHANGE", "CHECK", "DOWN"], &rows);
    }
    let verb = if report.dry_run {
        "would be recorded"
    } else {
        "recorded"
    };
    ctx.say(format!(
        "{} from {} ({}) {verb} as applied to {name}, nothing run; {} pending",
        output::counted(report.adopted.len() as u64, "change"),
        report.history,
        report.tool,
        report.pending.len()
    ));
    Ok(())
}

/// The plan and its target, from `[migrations]` and `--format`, the
/// scripts as written: `plan` and `status` need no more.
fn setup(ctx: &Ctx, args: &MigrateArgs) -> Result<Setup> {
    Ok(ripcord_ops::migrate::setup(ctx, args.format.as_deref())?)
}

/// The plan with its scripts as they run (psql variables and Flyway
/// placeholders from `--set` resolved), for `lint`.
fn setup_scripts(ctx: &Ctx, args: &MigrateArgs) -> Result<Setup> {
    let set = sets(&args.set)?;
    Ok(ripcord_ops::migrate::setup_with(
        ctx,
        args.format.as_deref(),
        &set,
    )?)
}

/// `--set name=value`, parsed.
pub(crate) fn sets(args: &[String]) -> Result<Vec<(String, String)>> {
    Ok(args
        .iter()
        .map(|a| ripcord_migrate::psql::parse_set(a))
        .collect::<ripcord_migrate::Result<Vec<_>>>()?)
}

/// `ripcord migrate verify`: each applied change's verify script again;
/// exit 1 when one fails.
fn verify(ctx: &Ctx, args: &MigrateArgs) -> Result<()> {
    use ripcord_migrate::engine::Verdict;
    let set = sets(&args.set)?;
    let (name, report) = ripcord_ops::migrate::verify(ctx, args.format.as_deref(), &set)?;
    if ctx.json {
        output::print_json(&MigrateVerifyOutput {
            target: name.to_string(),
            change_count: report.changes.len(),
            report: report.clone(),
        });
    } else {
        for c in &report.changes {
            let drifted = if c.drifted {
                " (drifted: its files were edited since it was applied; verified as they are now)"
            } else {
                ""
            };
            match c.verdict {
                Verdict::Passed => ctx.say(format!("  {}: verified{drifted}", c.name)),
                Verdict::NoScript => ctx.say(format!("  {}: no verify script{drifted}", c.name)),
                Verdict::Failed => ctx.say(format!(
                    "  {}: FAILED{drifted}: {}",
                    c.name,
                    c.error.as_deref().unwrap_or_default()
                )),
            }
        }
    }
    let failed: Vec<&str> = report.failed().map(|c| c.name.as_str()).collect();
    let checked = report
        .changes
        .iter()
        .filter(|c| c.verdict != Verdict::NoScript)
        .count();
    if failed.is_empty() {
        ctx.say(format!(
            "{} of target {name} verified; nothing was changed",
            output::count(checked as u64, "applied change", "applied changes")
        ));
        Ok(())
    } else {
        Err(CliError::Failed {
            message: format!(
                "{} of {} of target {name} failed: {}",
                failed.len(),
                output::count(checked as u64, "verified change", "verified changes"),
                failed.join(", ")
            ),
        }
        .into())
    }
}

/// `ripcord migrate rehearse`: the report, and a failure when a change is
/// not reversible.
fn rehearse(ctx: &Ctx, args: &RehearseArgs) -> Result<()> {
    let opts = ripcord_ops::rehearse::RehearseOptions {
        format: args.common.format.clone(),
        to: args.to.clone(),
        keep: args.keep,
        set: sets(&args.common.set)?,
    };
    let Some(report) = ripcord_ops::rehearse::run(ctx, &opts)? else {
        return Ok(());
    };
    if ctx.json {
        output::print_json(&report);
    } else {
        for c in &report.irreversible {
            ctx.say(format!("not reversible: {}", c.change));
            for r in &c.reasons {
                ctx.say(format!("  {r}"));
            }
        }
    }
    if report.irreversible.is_empty() {
        ctx.say(format!(
            "rehearsal passed: {} applied ({}), reverted to an identical schema and identical \
             table contents, and applied again",
            output::counted(report.change_count as u64, "change"),
            report.verified_note()
        ));
        Ok(())
    } else {
        // Differences no change's SQL names are laid at "(the plan as a
        // whole)", which is not one of the changes counted.
        let (named, whole): (Vec<_>, Vec<_>) = report
            .irreversible
            .iter()
            .partition(|c| report.changes.iter().any(|r| r.change == c.change));
        let mut message = format!(
            "rehearsal: {} of {} {} not reversible",
            named.len(),
            output::counted(report.change_count as u64, "change"),
            if named.len() == 1 { "is" } else { "are" }
        );
        if !named.is_empty() {
            message.push_str(&format!(
                ": {}",
                named
                    .iter()
                    .map(|c| c.change.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !whole.is_empty() {
            message.push_str("; the plan as a whole also leaves differences behind");
        }
        Err(CliError::Failed { message }.into())
    }
}

/// `ripcord rollback --to …`: `migrate down` under the name operators reach for.
pub fn rollback(ctx: &Ctx, args: RollbackArgs) -> Result<()> {
    let mut down = args.down;
    down.common = args.common;
    apply::down(ctx, &down, "rollback")
}

fn state_name(state: ChangeState) -> &'static str {
    match state {
        ChangeState::Pending => "pending",
        ChangeState::Applied => "applied",
        ChangeState::Drifted => "drifted",
        ChangeState::Dirty => "dirty",
        ChangeState::Unknown => "unknown",
    }
}

fn has_script(script: &Option<Script>) -> bool {
    script.as_ref().is_some_and(|s| !s.is_blank())
}

fn phase_of(plan: &Plan, change: &Change) -> Option<String> {
    change.phase.clone().or_else(|| {
        plan.phases
            .iter()
            .find(|p| p.changes.contains(&change.name))
            .map(|p| p.name.clone())
    })
}

fn plan(ctx: &Ctx, args: &PlanArgs) -> Result<()> {
    // The explanation is of the scripts as they run: psql variables and
    // meta-commands resolved, as `up` and `lint` see them.
    let s = if args.explain {
        setup_scripts(ctx, &args.common)?
    } else {
        setup(ctx, &args.common)?
    };
    s.require_database()?;
    let (status, note): (Option<Status>, Option<String>) = match &s.target {
        None => (
            None,
            Some("no database target is configured in [migrations]".into()),
        ),
        Some((name, target)) => match tracking::recorded(target) {
            Ok(rows) => (
                Some(tracking::status(&s.plan, rows.as_deref().unwrap_or(&[]))),
                None,
            ),
            Err(e) => {
                let note = format!("cannot read the status from target {name}: {e}");
                ctx.warn(format!("{note}; the status of each change is unknown"));
                (None, Some(note))
            }
        },
    };
    let order = s.plan.order()?;
    let mut explained = if args.explain {
        ripcord_ops::migrate::explain(ctx, &s)?
    } else {
        Vec::new()
    }
    .into_iter();
    let changes: Vec<PlanChange> = order
        .iter()
        .map(|c| PlanChange {
            snapshot: explained.next(),
            change: c.name.clone(),
            phase: phase_of(&s.plan, c),
            format: s.plan.format.name().into(),
            version: c.version.clone(),
            up: shown(&c.up.path),
            down: has_script(&c.down),
            verify: has_script(&c.verify),
            requires: c.requires.clone(),
            no_transaction: c.no_transaction,
            repeatable: c.repeatable,
            state: status
                .as_ref()
                .and_then(|st| st.change(&c.name))
                .map(|cs| state_name(cs.state).into()),
        })
        .collect();
    let report = PlanReport {
        format: s.plan.format.name().into(),
        dir: shown(&s.dir),
        target: s.target_name().map(str::to_owned),
        state_known: status.is_some(),
        state_note: note.clone(),
        phase: status.as_ref().and_then(|st| st.phase.clone()),
        change_count: changes.len(),
        changes,
    };
    if ctx.json {
        output::print_json(&report);
        return Ok(());
    }
    if ctx.quiet {
        return Ok(());
    }
    println!(
        "{} in {} ({} format){}",
        output::counted(report.change_count as u64, "change"),
        report.dir,
        report.format,
        report
            .target
            .as_deref()
            .map(|t| format!(", target {t}"))
            .unwrap_or_default()
    );
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let rows: Vec<Vec<String>> = report
        .changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            vec![
                (i + 1).to_string(),
                c.change.clone(),
                c.phase.clone().unwrap_or_else(|| "-".into()),
                c.format.clone(),
                yes_no(c.down),
                yes_no(c.verify),
                c.state.clone().unwrap_or_else(|| "unknown".into()),
            ]
        })
        .collect();
    output::table(
        &["#", "CHANGE", "PHASE", "FORMAT", "DOWN", "VERIFY", "STATE"],
        &rows,
    );
    if let Some(note) = &note {
        println!("status unknown: {note}");
    } else if let Some(phase) = &report.phase {
        println!("current phase: {phase}");
    }
    if args.explain {
        println!();
        println!(
            "safety snapshots ({}):",
            snapshot_counts(report.changes.iter().filter_map(|c| c.snapshot.as_ref()))
        );
        let whole = report
            .changes
            .iter()
            .filter(|c| {
                c.snapshot
                    .as_ref()
                    .is_some_and(|e| e.scope == Scope::Database)
            })
            .count();
        if whole > 0 {
            println!(
                "  (on PostgreSQL 15 and later a whole-database snapshot reads only the tables \
                 written since the previous snapshot of the database)"
            );
        }
        for (i, c) in report.changes.iter().enumerate() {
            let Some(e) = &c.snapshot else { continue };
            println!("{} {}: {}", i + 1, console::style(&c.change).bold(), e.why);
            for step in &e.statements {
                println!("    line {}: {}", step.line, step.effect);
                println!("        {}", step.statement);
            }
        }
    }
    Ok(())
}

/// `2 whole database, 3 table-level, 5 schema-only, 90 none`.
fn snapshot_counts<'a>(explained: impl Iterator<Item = &'a Explained>) -> String {
    let (mut whole, mut tables, mut schema, mut none) = (0, 0, 0, 0);
    for e in explained {
        match e.scope {
            Scope::Database => whole += 1,
            Scope::Tables(_) => tables += 1,
            Scope::Schema(_) => schema += 1,
            Scope::None | Scope::DownScript(_) => none += 1,
        }
    }
    format!("{whole} whole database, {tables} table-level, {schema} schema-only, {none} none")
}

fn status(ctx: &Ctx, args: &MigrateArgs) -> Result<()> {
    let ripcord_ops::migrate::StatusRead {
        report,
        status: st,
        tracked,
    } = ripcord_ops::migrate::status(ctx, args.format.as_deref())?;
    let name = &report.target;
    if ctx.json {
        output::print_json(&report);
    } else if !ctx.quiet {
        if !tracked {
            println!("target {name} has no tracking tables yet: every change is pending");
        }
        let table: Vec<Vec<String>> = st
            .changes
            .iter()
            .map(|c| {
                let state = if c.transactional == Some(false) {
                    format!("{} (no transaction)", state_name(c.state))
                } else {
                    state_name(c.state).to_string()
                };
                vec![
                    c.name.clone(),
                    state,
                    c.phase.clone().unwrap_or_else(|| "-".into()),
                    c.applied_at
                        .map(|t| output::time(&t))
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        output::table(&["CHANGE", "STATE", "PHASE", "APPLIED AT"], &table);
        let c = &report.counts;
        println!(
            "{} applied, {} pending, {} drifted, {} dirty, {} unknown; current phase: {}",
            c.applied,
            c.pending,
            c.drifted,
            c.dirty,
            c.unknown,
            report.phase.as_deref().unwrap_or("none")
        );
    }

    let mut problems: Vec<String> = Vec::new();
    let mut hints: Vec<&str> = Vec::new();
    let drifted = st.in_state(ChangeState::Drifted);
    if !drifted.is_empty() {
        problems.push(format!(
            "changed after they were applied (drift): {}",
            drifted.join(", ")
        ));
        hints.push(
            "restore the applied version of each drifted script (from version control) and put \
             the edit in a new change",
        );
    }
    let dirty = st.in_state(ChangeState::Dirty);
    if !dirty.is_empty() {
        problems.push(format!("started and never finished: {}", dirty.join(", ")));
        hints.push(
            "a dirty change failed or was interrupted; check the database by hand before \
             migrating again",
        );
    }
    if let Some(m) = &st.mismatch {
        problems.push(format!("the history does not match the plan: {m}"));
        hints.push("check that [migrations] dir holds the migrations this database ran");
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError::Refused {
        message: format!("target {name}: {}", problems.join("; ")),
        hint: hints.join("; "),
    }
    .into())
}

fn lint(ctx: &Ctx, args: &LintArgs) -> Result<()> {
    let s = setup_scripts(ctx, &args.common)?;
    let options = Options {
        dialect: s.dialect(),
        server_version: None,
    };
    let order = s.plan.order()?;
    let snapshots = ripcord_ops::migrate::explain(ctx, &s)?;
    let mut findings: Vec<LintFinding> = Vec::new();
    let mut checker = SyntaxChecker::new(&s);
    for change in &order {
        let has_down = has_script(&change.down);
        let explained = snapshots.iter().find(|e| e.name == change.name);
        let scripts = [
            ("up", Some(&change.up)),
            ("down", change.down.as_ref()),
            ("verify", change.verify.as_ref()),
        ];
        for (step, script) in scripts {
            let Some(script) = script else { continue };
            let analysis = analyze::analyze(&script.sql, &options);
            let errors = checker.errors(ctx, change, script, &analysis.unparsed)?;
            let broken: Vec<usize> = errors.iter().filter_map(|e| e.line).collect();
            findings.extend(errors);
            for f in &analysis.findings {
                // A syntax error is reported as one, not as a statement
                // whose tables cannot be told.
                if f.kind == Kind::Uncertain && broken.contains(&f.line) {
                    continue;
                }
                let (kind, detail) = match f.kind {
                    Kind::Destructive if step == "up" && !has_down => (
                        "destructive-without-down",
                        format!(
                            "{}; there is no down script, so only a safety snapshot can undo it",
                            f.detail
                        ),
                    ),
                    Kind::Destructive => continue,
                    Kind::NoTransaction => (
                        "no-transaction",
                        format!(
                            "{}; a failure part-way leaves the change half done",
                            f.detail
                        ),
                    ),
                    Kind::OwnTransaction => ("own-transaction", f.detail.clone()),
                    Kind::Rewrite => ("table-rewrite", f.detail.clone()),
                    Kind::LongLock => ("long-lock", f.detail.clone()),
                    Kind::Uncertain => (
                        "uncertain-tables",
                        format!(
                            "{}; the tables it touches are not known, so the safety snapshot \
                             must cover the whole database",
                            f.detail
                        ),
                    ),
                };
                findings.push(LintFinding {
                    change: change.name.clone(),
                    kind,
                    severity: "warning",
                    file: shown(&script.path),
                    line: Some(f.line),
                    statement: Some(f.statement.clone()),
                    detail,
                });
            }
        }
        if let Some(e) = explained.filter(|e| matches!(e.scope, Scope::Schema(_))) {
            // Put back by a schema-only snapshot, unless up refuses it.
            if e.why.starts_with("refused") {
                findings.push(LintFinding {
                    change: change.name.clone(),
                    kind: "not-undone",
                    severity: "warning",
                    file: shown(&change.up.path),
                    line: None,
                    statement: None,
                    detail: e.why.clone(),
                });
            }
        } else if !has_down {
            // Definitions no table snapshot records: only a down script
            // could take them back.
            let analysis = analyze::analyze(&change.up.sql, &options);
            for step in &analysis.steps {
                let analyze::Effect::DataFree(class) = step.effect else {
                    continue;
                };
                if matches!(
                    class,
                    "a setting"
                        | "changes no table's rows"
                        | "reads or sets only"
                        | "maintenance; rows stay as they are"
                ) {
                    continue;
                }
                findings.push(LintFinding {
                    change: change.name.clone(),
                    kind: "not-undone",
                    severity: "warning",
                    file: shown(&change.up.path),
                    line: Some(step.line),
                    statement: Some(step.statement.clone()),
                    detail: format!(
                        "{class}: changes no rows, so no safety snapshot is taken, and there is no \
                         down script: a revert leaves it as it is"
                    ),
                });
            }
        }
        if s.plan.format.has_verify_scripts() && !has_script(&change.verify) {
            findings.push(LintFinding {
                change: change.name.clone(),
                kind: "no-verify",
                severity: "warning",
                file: shown(&change.up.path),
                line: None,
                statement: None,
                detail: "no verify script: nothing checks that the change worked".into(),
            });
        }
    }
    let report = LintReport {
        format: s.plan.format.name().into(),
        dialect: match options.dialect {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        },
        change_count: snapshots.len(),
        changes: snapshots,
        findings,
    };
    if ctx.json {
        output::print_json(&report);
    } else if !ctx.quiet {
        let mut current: Option<&str> = None;
        for f in &report.findings {
            if current != Some(f.change.as_str()) {
                println!("{}", console::style(&f.change).bold());
                current = Some(f.change.as_str());
            }
            let place = match f.line {
                Some(line) => format!("{}:{line}", f.file),
                None => f.file.clone(),
            };
            println!("  {place}: {}: {}", f.kind, f.detail);
            if let Some(statement) = &f.statement {
                println!("      {statement}");
            }
        }
        let with: std::collections::BTreeSet<&str> =
            report.findings.iter().map(|f| f.change.as_str()).collect();
        println!(
            "{} in {} of {}",
            output::counted(report.findings.len() as u64, "finding"),
            with.len(),
            output::counted(report.change_count as u64, "change")
        );
        // What gets a data snapshot, and why; changes without one are the rest.
        for e in &report.changes {
            if matches!(
                e.scope,
                Scope::Database | Scope::Tables(_) | Scope::Schema(_)
            ) {
                println!("snapshot before {}: {}", e.name, e.why);
            }
        }
        println!(
            "safety snapshots: {} (migrate plan --explain shows each statement)",
            snapshot_counts(report.changes.iter())
        );
    }
    let syntax_errors = report
        .findings
        .iter()
        .filter(|f| f.kind == "syntax-error")
        .count();
    if syntax_errors > 0 {
        return Err(CliError::Usage {
            message: format!(
                "lint: {} in the migrations",
                output::counted(syntax_errors as u64, "syntax error")
            ),
            hint: "fix the statements named above; `migrate up` refuses to run them".into(),
        }
        .into());
    }
    if args.strict && !report.findings.is_empty() {
        return Err(CliError::Failed {
            message: format!(
                "lint --strict: {} in the migrations",
                output::counted(report.findings.len() as u64, "finding")
            ),
        }
        .into());
    }
    Ok(())
}

/// Asks a database whether the statements `lint`'s SQL parser cannot read
/// are syntax errors, as `migrate up` does before it runs anything. Opened
/// at the first such statement; a PostgreSQL server that cannot be reached
/// is warned about once, and its statements stay `uncertain-tables`.
struct SyntaxChecker<'a> {
    setup: &'a Setup,
    db: Option<std::result::Result<Box<dyn ripcord_migrate::engine::Database>, String>>,
}

impl<'a> SyntaxChecker<'a> {
    fn new(setup: &'a Setup) -> Self {
        SyntaxChecker { setup, db: None }
    }

    fn errors(
        &mut self,
        ctx: &Ctx,
        change: &Change,
        script: &Script,
        unparsed: &[analyze::Unparsed],
    ) -> Result<Vec<LintFinding>> {
        if unparsed.is_empty() {
            return Ok(Vec::new());
        }
        let setup = self.setup;
        let db = self.db.get_or_insert_with(|| {
            let db = ripcord_ops::migrate::syntax_checker(setup);
            if let Err(why) = &db {
                ctx.warn(format!(
                    "the syntax of statements ripcord's SQL parser cannot read is not checked: \
                     {why}"
                ));
            }
            db
        });
        let Ok(db) = db else { return Ok(Vec::new()) };
        let mut found = Vec::new();
        for statement in unparsed {
            let Some(message) = ripcord_migrate::engine::check_syntax(&mut **db, &statement.sql)?
            else {
                continue;
            };
            found.push(LintFinding {
                change: change.name.clone(),
                kind: "syntax-error",
                severity: "error",
                file: shown(&script.path),
                line: Some(statement.line),
                statement: Some(excerpt(&statement.sql)),
                detail: format!(
                    "{message} (ripcord's parser: {}); `migrate up` stops here before running \
                     anything",
                    statement.error.trim_start_matches("sql parser error: ")
                ),
            });
        }
        Ok(found)
    }
}

/// The start of a statement on one line, as findings show it.
fn excerpt(sql: &str) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}
