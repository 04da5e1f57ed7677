//! What both directions check before anything runs: the scripts, read and
//! analysed once, and the recorded history against the plan.

use std::collections::{HashMap, HashSet};

use crate::analyze::{
    self, Analysis, Blocks, Dialect, Effect, Finding, Kind, Options, Step, Unparsed,
};
use crate::tracking::{self, AppliedChange, ChangeState, Status};
use crate::{Change, Error, Plan, Result, Script};

use super::db::{check_syntax, Database};
use super::{names, Scope};

/// A change ready to run: its scripts without their own `BEGIN`/`COMMIT`
/// wrapper, and what its SQL does.
pub(crate) struct Prepared<'p> {
    pub change: &'p Change,
    /// Position in the plan order.
    pub order: i32,
    pub up: String,
    pub analysis: Analysis,
    /// The up script's statements as the file has them: `analysis.steps`
    /// less a `BEGIN`/`COMMIT` wrapper, one for one, at the file's lines.
    pub file_steps: Vec<Step>,
    /// A line of the analysed script (its wrapper taken off) to the file's.
    file_lines: HashMap<usize, usize>,
    pub transactional: bool,
    pub verify: Option<String>,
    /// Statements of the verify script sqlparser could not read.
    pub verify_unparsed: Vec<Unparsed>,
    pub down: Option<String>,
    /// What the down script does; `None` without one.
    pub down_analysis: Option<Analysis>,
    pub down_transactional: bool,
    dialect: Dialect,
}

/// Data-free classes with nothing to put back.
const TRIVIAL_CLASSES: &[&str] = &[
    "a setting",
    "changes no table's rows",
    "reads or sets only",
    "maintenance; rows stay as they are",
    "creates a table",
];

impl<'p> Prepared<'p> {
    pub fn new(change: &'p Change, order: i32, options: &Options) -> Prepared<'p> {
        let (up, analysis, transactional) = runnable(&change.up, change.no_transaction, options);
        let file_steps = file_steps(change, &analysis, options);
        // A verify script only looks: it runs under a savepoint that is
        // rolled back, its own transaction blocks under savepoints of their
        // own, so it can neither undo nor commit the change it verifies.
        let verify_script = change.verify.as_ref().filter(|s| !s.is_blank());
        let verify = verify_script.map(|s| verify_sql(&s.sql, options.dialect));
        let verify_unparsed = verify_script
            .map(|s| {
                let stripped = analyze::transaction_blocks(&s.sql, options.dialect, Blocks::Strip)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| s.sql.clone());
                analyze::analyze(&stripped, options).unparsed
            })
            .unwrap_or_default();
        let down_parts = change
            .down
            .as_ref()
            .filter(|s| !s.is_blank())
            .map(|s| runnable(s, change.no_transaction, options));
        let down_transactional = down_parts.as_ref().is_none_or(|(_, _, tx)| *tx);
        let (down, down_analysis) = match down_parts {
            Some((sql, analysis, _)) => (Some(sql), Some(analysis)),
            None => (None, None),
        };
        Prepared {
            change,
            order,
            up,
            file_lines: analysis
                .steps
                .iter()
                .zip(&file_steps)
                .map(|(a, f)| (a.line, f.line))
                .collect(),
            file_steps,
            analysis,
            transactional,
            verify,
            verify_unparsed,
            down,
            down_analysis,
            down_transactional,
            dialect: options.dialect,
        }
    }

    pub fn name(&self) -> &str {
        &self.change.name
    }

    /// Whether the down script alone is the way back: the change destroys
    /// no data, its tables are known, and both run in transactions (so it
    /// can never be left half done). Its safety snapshot would never be
    /// used, so none is taken.
    pub fn down_is_enough(&self) -> bool {
        self.down.is_some()
            && self.transactional
            && self.down_transactional
            && self.analysis.certain
            && !self.analysis.has(Kind::Destructive)
    }

    /// Whether the way back is a schema-only snapshot: no down script, a
    /// transaction, every statement known to change no rows, and at least
    /// one that defines something (a grant, a function, a policy, …).
    pub fn schema_only(&self) -> bool {
        self.down.is_none()
            && self.transactional
            && self.analysis.certain
            && !self.analysis.has(Kind::Destructive)
            && self.analysis.steps.iter().all(|s| match &s.effect {
                Effect::DataFree(_) | Effect::Creates(_) | Effect::Defines { .. } => true,
                // Rows of a table the change creates go with the table.
                // (Steps keep the names as written; `created` may be
                // qualified by the server.)
                Effect::Changes { tables, .. } => tables.iter().all(|t| {
                    self.analysis.created.iter().any(|c| {
                        c.name == t.name
                            && (c.schema.is_none() || t.schema.is_none() || c.schema == t.schema)
                    })
                }),
                Effect::Uncertain(_) => false,
            })
            && !self.defining_steps().is_empty()
    }

    /// The statements a schema-only snapshot is for, at the file's lines:
    /// `class (line n)`.
    fn defining_steps(&self) -> Vec<String> {
        self.analysis
            .steps
            .iter()
            .zip(&self.file_steps)
            .filter_map(|(a, f)| {
                match a.effect {
                    Effect::DataFree(class) if !TRIVIAL_CLASSES.contains(&class) => Some(class),
                    Effect::Defines { class, .. } => Some(class),
                    _ => None,
                }
                .map(|class| format!("{class} (line {})", f.line))
            })
            .collect()
    }

    /// For a schema-only change, the first statement whose definitions a
    /// schema-only snapshot does not record, at its line in the file.
    pub fn schema_refusal(&self, dialect: Dialect) -> Option<String> {
        if !self.schema_only() {
            return None;
        }
        let statements = analyze::statements(&self.up, dialect)?;
        statements.iter().find_map(|st| {
            let why = super::schema::unsupported(&st.sql, dialect)?;
            let line = self.file_lines.get(&st.line).copied().unwrap_or(st.line);
            Some(format!("line {line}: {why}"))
        })
    }

    /// Why the whole database must be snapshotted, if it must.
    pub fn uncertain(&self) -> Option<String> {
        self.analysis
            .of_kind(Kind::Uncertain)
            .next()
            .map(|f| self.at_line(f))
    }

    /// The finding, at its line in the file.
    fn at_line(&self, f: &Finding) -> String {
        let line = self.file_lines.get(&f.line).copied().unwrap_or(f.line);
        if line == 0 {
            f.detail.clone()
        } else {
            format!("line {line}: {}", f.detail)
        }
    }

    /// What the safety snapshot before the change covers.
    pub fn scope(&self, snapshot_always: bool) -> Scope {
        if !self.analysis.certain {
            Scope::Database
        } else if self.schema_only() {
            Scope::Schema(self.defining_steps())
        } else if self.analysis.tables.is_empty() {
            Scope::None
        } else if self.down_is_enough() && !snapshot_always {
            Scope::DownScript(names(&self.analysis.tables))
        } else {
            Scope::Tables(names(&self.analysis.tables))
        }
    }

    /// Why the change gets the snapshot `scope` says, in a sentence.
    pub fn why(&self, scope: &Scope, snapshot_always: bool) -> String {
        match scope {
            Scope::Database => format!("whole database: {}", self.uncertain().unwrap_or_default()),
            Scope::Schema(what) => match self.schema_refusal(self.dialect) {
                Some(why) => {
                    format!("refused by up: it has no down script, and {why}; write a down script")
                }
                None => format!(
                    "schema-only snapshot of {}: the change changes no rows and has no down \
                     script; no data is read",
                    what.join(", ")
                ),
            },
            Scope::None => "none: the change touches no existing table; its statements \
                            change no rows or create new tables"
                .to_string(),
            Scope::DownScript(tables) => format!(
                "none: the change alters {} without destroying data, and its down script, \
                 run in a transaction, undoes it",
                tables.join(", ")
            ),
            Scope::Tables(tables) => {
                let why = if let Some(f) = self.analysis.of_kind(Kind::Destructive).next() {
                    self.at_line(f)
                } else if self.down.is_none() {
                    "there is no down script to undo the change".to_string()
                } else if !self.transactional || !self.down_transactional {
                    "the change or its down script runs outside a transaction".to_string()
                } else if snapshot_always {
                    "snapshot = \"always\"".to_string()
                } else {
                    "its down script alone cannot be relied on".to_string()
                };
                format!("tables {}: {why}", tables.join(", "))
            }
        }
    }
}

/// The statements of the up script at the file's lines. The analysis is of
/// the script as it runs: without a `BEGIN`/`COMMIT` wrapper, whose
/// statements are the file's less the first and the last; otherwise, when
/// the statements are the file's one for one, at the file's lines.
fn file_steps(change: &Change, analysis: &Analysis, options: &Options) -> Vec<Step> {
    let file = analyze::analyze(&change.up.sql, options).steps;
    if file.len() == analysis.steps.len() + 2
        && analyze::unwrap_transaction(&change.up.sql, options.dialect).is_some()
    {
        return file[1..file.len() - 1].to_vec();
    }
    if file.len() == analysis.steps.len()
        && file
            .iter()
            .zip(&analysis.steps)
            .all(|(f, a)| f.statement == a.statement)
    {
        return file;
    }
    analysis.steps.clone()
}

/// The script's SQL without a `BEGIN … COMMIT` wrapper.
fn unwrap(script: &Script, dialect: Dialect) -> String {
    analyze::unwrap_transaction(&script.sql, dialect).unwrap_or_else(|| script.sql.clone())
}

/// A deploy or revert script as it runs, what it does, and whether it runs
/// in ripcord's transaction. A `BEGIN … COMMIT` wrapper is taken off;
/// transaction blocks elsewhere become savepoints, so the change stays one
/// transaction with its tracking row. A script that also needs to run
/// outside a transaction (`CREATE INDEX CONCURRENTLY` after a `COMMIT`), or
/// whose blocks cannot be savepoints, runs as written, statement by
/// statement, outside ripcord's.
fn runnable(script: &Script, no_transaction: bool, options: &Options) -> (String, Analysis, bool) {
    let sql = unwrap(script, options.dialect);
    let analysis = analyze::analyze(&sql, options);
    if analysis.has(Kind::OwnTransaction) && !no_transaction && !analysis.no_transaction() {
        if let Ok(Some(nested)) = analyze::transaction_blocks(&sql, options.dialect, Blocks::Change)
        {
            let nested_analysis = analyze::analyze(&nested, options);
            if !nested_analysis.has(Kind::OwnTransaction) && !nested_analysis.no_transaction() {
                return (nested, nested_analysis, true);
            }
        }
    }
    let transactional =
        !no_transaction && !analysis.no_transaction() && !analysis.has(Kind::OwnTransaction);
    (sql, analysis, transactional)
}

/// The savepoint a verify script runs under.
const VERIFY_SAVEPOINT: &str = "ripcord_verify";

/// A verify script as it runs: under a savepoint that is rolled back, with
/// its own transaction blocks nested as savepoints.
pub(crate) fn verify_sql(sql: &str, dialect: Dialect) -> String {
    let body = analyze::transaction_blocks(sql, dialect, Blocks::Verify)
        .ok()
        .flatten()
        .unwrap_or_else(|| sql.to_string());
    format!(
        "SAVEPOINT {VERIFY_SAVEPOINT};\n{body}\n;\nROLLBACK TO SAVEPOINT {VERIFY_SAVEPOINT}; \
         RELEASE SAVEPOINT {VERIFY_SAVEPOINT}"
    )
}

/// Refuses syntax errors before anything runs: each script with the
/// statements sqlparser could not read in it.
pub(crate) fn check_scripts(
    db: &mut dyn Database,
    checks: &[(&Change, &Script, &[Unparsed])],
) -> Result<()> {
    for (change, script, unparsed) in checks {
        for statement in unparsed.iter() {
            if let Some(detail) = check_syntax(db, &statement.sql)? {
                // The statement is a verbatim slice of the file, found there
                // unless a BEGIN/COMMIT wrapper moved its lines.
                let line = script
                    .sql
                    .find(&statement.sql)
                    .map_or(statement.line, |at| {
                        script.sql[..at].matches('\n').count() + 1
                    });
                return Err(Error::SyntaxError {
                    change: change.name.clone(),
                    file: script.path.clone(),
                    line,
                    detail,
                });
            }
        }
    }
    Ok(())
}

/// The recorded history, or an empty one when nothing has run yet.
pub(crate) fn recorded(db: &mut dyn Database) -> Result<Vec<AppliedChange>> {
    if db.has_schema()? {
        db.applied()
    } else {
        Ok(Vec::new())
    }
}

/// Refuses a history the plan cannot continue: changes the plan does not
/// know, a different order, dirty changes (unless `dirty_ok`), and edited
/// scripts (unless `allow_drift`).
pub(crate) fn check_history(
    plan: &Plan,
    status: &Status,
    allow_drift: bool,
    dirty_ok: bool,
) -> Result<()> {
    let unknown = status.in_state(ChangeState::Unknown);
    if !unknown.is_empty() {
        return Err(Error::Refused {
            message: format!(
                "the plan does not match the database's history: the database has run {}, which \
                 the plan does not have",
                unknown.join(", ")
            ),
            hint: "point [migrations] dir at the migrations this database ran".into(),
        });
    }
    if let Some(m) = &status.mismatch {
        return Err(Error::Refused {
            message: format!("the plan does not match the database's history: {m}"),
            hint: "point [migrations] dir at the migrations this database ran, in their order"
                .into(),
        });
    }
    let dirty = status.in_state(ChangeState::Dirty);
    if !dirty.is_empty() && !dirty_ok {
        return Err(Error::Refused {
            message: format!(
                "change {} started and never finished (dirty)",
                dirty.join(", ")
            ),
            hint: "revert it with `ripcord migrate down --to CHANGE` naming the change before \
                   it (or @root), which puts its tables back from its safety snapshot; then run \
                   up again"
                .into(),
        });
    }
    let repeatable: HashSet<&str> = plan
        .changes
        .iter()
        .filter(|c| c.repeatable)
        .map(|c| c.name.as_str())
        .collect();
    let drifted: Vec<&str> = status
        .in_state(ChangeState::Drifted)
        .into_iter()
        .filter(|c| !repeatable.contains(c))
        .collect();
    if !drifted.is_empty() && !allow_drift {
        return Err(Error::Refused {
            message: format!(
                "{} changed after {} applied (drift)",
                drifted.join(", "),
                if drifted.len() == 1 {
                    "it was"
                } else {
                    "they were"
                }
            ),
            hint: "restore the applied version of the script and put the edit in a new change, \
                   or pass --allow-drift to go on with the edited files"
                .into(),
        });
    }
    Ok(())
}

/// Analysis options for the database at hand.
pub(crate) fn options(db: &mut dyn Database) -> Options {
    Options {
        dialect: db.dialect(),
        server_version: db.server_version(),
    }
}

/// `status` over the recorded history.
pub(crate) fn status(plan: &Plan, applied: &[AppliedChange]) -> Status {
    tracking::status(plan, applied)
}
