//! Table names as the server resolves them. A script's unqualified names
//! are looked up on the connection that runs the change, in a clean session
//! (its search_path is the real one: server, database and role settings),
//! after replaying the script's own `SET search_path`, `SET ROLE`, … that
//! precede each name, in a transaction that is rolled back. From then on
//! every table is schema-qualified: snapshot, revert and reports agree.

use std::collections::{BTreeMap, BTreeSet};

use crate::analyze::{self, Analysis, Dialect, Kind, TableName};
use crate::{Error, Result};

use super::db::{Conn, Database};

/// Puts `db`'s session back to how it was when it connected: settings
/// (`SET`, `SET ROLE`, `SET SESSION AUTHORIZATION`), temporary tables,
/// cursors, listens. What `DISCARD ALL` does, but for releasing advisory
/// locks (the migration lock may live on this session) and deallocating
/// prepared statements (the client's own). Each change and each revert
/// starts from here, so no change sees another's settings.
pub(crate) fn clean_session(db: &mut dyn Database) -> Result<()> {
    match db.conn() {
        Conn::Postgres(client) => client
            .batch_execute(CLEAN)
            .map_err(Error::postgres("reset the session before a change")),
        Conn::Sqlite(_) => Ok(()),
    }
}

/// What [`clean_session`] runs on PostgreSQL; it may also lead the batch
/// that begins a change's transaction.
pub(crate) const CLEAN: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
                                UNLISTEN *; DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES";

/// Whether [`qualified`] asks the server anything for `analysis`: names to
/// resolve, or written tables whose triggers and foreign keys to look up.
/// When it does not, the session need not be clean before it.
pub(crate) fn asks_server(db: &dyn Database, analysis: &Analysis) -> bool {
    db.dialect() == Dialect::Postgres
        && (!analysis.settings_at.is_empty() || !analysis.written.is_empty())
}

/// Qualifies every table of `analysis` as the server would resolve it at
/// this point: an existing table by the search_path, a table the script
/// creates (or one not there yet) in the schema it would be created in (the
/// first existing schema of the path). Names that cannot be resolved make
/// the analysis uncertain, so the whole database is snapshotted. Run it on
/// a clean session ([`clean_session`]), outside a transaction. Then the
/// triggers and rules the change's own writes fire are looked up: their
/// code can change any table ([`fired_triggers`]).
pub(crate) fn qualified(db: &mut dyn Database, analysis: &Analysis) -> Result<Analysis> {
    let mut analysis = resolve_names(db, analysis)?;
    cascades(db, &mut analysis)?;
    fired_triggers(db, &mut analysis)?;
    Ok(analysis)
}

/// Tables whose rows foreign keys change when the change updates or
/// deletes rows of the tables it writes (`ON DELETE/UPDATE CASCADE`, `SET
/// NULL`, `SET DEFAULT`), transitively: they are written too, so their
/// rows are snapshotted and their triggers count.
fn cascades(db: &mut dyn Database, analysis: &mut Analysis) -> Result<()> {
    if db.dialect() != Dialect::Postgres
        || analysis.written.is_empty()
        || !analysis.has(Kind::Destructive)
    {
        return Ok(());
    }
    let Conn::Postgres(client) = db.conn() else {
        return Ok(());
    };
    let what = "look up the tables foreign keys change";
    for table in analysis.written.clone() {
        let rows = client
            .query(
                "WITH RECURSIVE r(oid) AS (
                     SELECT pg_catalog.to_regclass($1)::oid
                     UNION
                     SELECT c.conrelid FROM pg_catalog.pg_constraint c JOIN r ON c.confrelid = r.oid
                     WHERE c.contype = 'f'
                       AND (c.confdeltype IN ('c', 'n', 'd') OR c.confupdtype IN ('c', 'n', 'd'))
                 )
                 SELECT n.nspname::text, cl.relname::text FROM r
                 JOIN pg_catalog.pg_class cl ON cl.oid = r.oid
                 JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace
                 WHERE r.oid <> pg_catalog.to_regclass($1)",
                &[&table.to_string()],
            )
            .map_err(Error::postgres(what))?;
        for row in rows {
            let child = TableName::new(Some(&row.get::<_, String>(0)), &row.get::<_, String>(1));
            if !analysis.created.contains(&child) {
                analysis.tables.insert(child.clone());
                analysis.written.insert(child);
            }
        }
    }
    Ok(())
}

/// A table the change writes that has triggers (other than ripcord's own)
/// or rewrite rules runs their code on each write: code that can change
/// tables the script does not name makes the tables uncertain, and the
/// whole database is snapshotted. A trigger whose function (and `WHEN`
/// condition) only computes values for the row in hand, or is a built-in of
/// `pg_catalog`, is no risk ([`analyze::row_local`]). A trigger created by
/// the change itself is seen by the analysis.
fn fired_triggers(db: &mut dyn Database, analysis: &mut Analysis) -> Result<()> {
    if db.dialect() != Dialect::Postgres || analysis.written.is_empty() {
        return Ok(());
    }
    let Conn::Postgres(client) = db.conn() else {
        return Ok(());
    };
    let what = "look up the triggers a change fires";
    for table in analysis.written.clone() {
        let rows = client
            .query(
                "SELECT 'trigger ' || t.tgname::text, n.nspname::text, l.lanname::text,
                        p.prosrc, pg_catalog.pg_get_triggerdef(t.oid), t.tgqual IS NOT NULL
                 FROM pg_catalog.pg_trigger t
                 JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
                 JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                 JOIN pg_catalog.pg_language l ON l.oid = p.prolang
                 WHERE t.tgrelid = pg_catalog.to_regclass($1) AND NOT t.tgisinternal
                   AND t.tgenabled <> 'D' AND n.nspname <> 'ripcord'
                 UNION ALL
                 SELECT 'rule ' || r.rulename::text, '', '', '', '', false
                 FROM pg_catalog.pg_rewrite r
                 WHERE r.ev_class = pg_catalog.to_regclass($1) AND r.rulename <> '_RETURN'
                 ORDER BY 1",
                &[&table.to_string()],
            )
            .map_err(Error::postgres(what))?;
        let mut fired = Vec::new();
        for row in &rows {
            let name: String = row.get(0);
            let schema: String = row.get(1);
            let language: String = row.get(2);
            let source: String = row.get(3);
            let definition: String = row.get(4);
            let has_when: bool = row.get(5);
            let body_safe = name.starts_with("trigger ")
                && (schema == "pg_catalog"
                    || matches!(language.as_str(), "plpgsql" | "sql")
                        && analyze::row_local(&source));
            let when_safe = !has_when || when_clause(&definition).is_some_and(analyze::row_local);
            if !(body_safe && when_safe) {
                fired.push(name);
            }
        }
        if fired.is_empty() {
            continue;
        }
        analysis.findings.push(crate::analyze::Finding {
            kind: Kind::Uncertain,
            line: 0,
            statement: String::new(),
            detail: format!(
                "the change writes {table}, which fires its {}; their code can change any table",
                fired.join(", ")
            ),
        });
        analysis.certain = false;
    }
    Ok(())
}

/// The condition of `CREATE TRIGGER … WHEN (…) EXECUTE …` as
/// `pg_get_triggerdef` prints it.
fn when_clause(definition: &str) -> Option<&str> {
    let start = definition.find(" WHEN (")? + " WHEN ".len();
    let end = definition.rfind(" EXECUTE ")?;
    definition.get(start..end)
}

fn resolve_names(db: &mut dyn Database, analysis: &Analysis) -> Result<Analysis> {
    let mut analysis = analysis.clone();
    if db.dialect() != Dialect::Postgres || analysis.settings_at.is_empty() {
        return Ok(analysis);
    }
    let Conn::Postgres(client) = db.conn() else {
        return Ok(analysis);
    };
    // Group the names by how many settings precede them.
    let mut by_point: BTreeMap<usize, BTreeSet<&TableName>> = BTreeMap::new();
    for (table, points) in &analysis.settings_at {
        for point in points {
            by_point.entry(*point).or_default().insert(table);
        }
    }
    let what = "resolve the tables a change names";
    let mut resolved: BTreeMap<(TableName, usize), TableName> = BTreeMap::new();
    let mut failed = None;
    for (point, names) in &by_point {
        let mut tx = client.transaction().map_err(Error::postgres(what))?;
        let mut replayed = true;
        for setting in &analysis.settings[..*point] {
            if let Err(e) = tx.batch_execute(setting) {
                failed = Some(format!(
                    "replaying `{}` to resolve the names after it failed: {}",
                    setting.split_whitespace().collect::<Vec<_>>().join(" "),
                    e.as_db_error()
                        .map_or(e.to_string(), |d| d.message().into())
                ));
                replayed = false;
                break;
            }
        }
        if !replayed {
            let _ = tx.rollback();
            continue;
        }
        for name in names {
            let quoted = format!("\"{}\"", name.name.replace('"', "\"\""));
            let found = tx
                .query_opt(
                    "SELECT n.nspname::text FROM pg_catalog.pg_class c
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.oid = pg_catalog.to_regclass($1)",
                    &[&quoted],
                )
                .map_err(Error::postgres(what))?
                .map(|r| r.get::<_, String>(0));
            let schema = match found {
                Some(schema) => Some(schema),
                None => tx
                    .query_one("SELECT pg_catalog.current_schema()::text", &[])
                    .map_err(Error::postgres(what))?
                    .get::<_, Option<String>>(0),
            };
            match schema {
                Some(schema) => {
                    resolved.insert(
                        ((*name).clone(), *point),
                        TableName::new(Some(&schema), &name.name),
                    );
                }
                None => {
                    failed = Some(format!(
                        "{name} resolves to no schema: the search_path names none that exists"
                    ));
                }
            }
        }
        tx.rollback().map_err(Error::postgres(what))?;
    }
    let qualify = |set: &BTreeSet<TableName>| -> BTreeSet<TableName> {
        let mut out = BTreeSet::new();
        for table in set {
            match analysis.settings_at.get(table) {
                Some(points) => {
                    let mut any = false;
                    for point in points {
                        if let Some(q) = resolved.get(&(table.clone(), *point)) {
                            out.insert(q.clone());
                            any = true;
                        }
                    }
                    if !any {
                        out.insert(table.clone());
                    }
                }
                None => {
                    out.insert(table.clone());
                }
            }
        }
        out
    };
    analysis.created = qualify(&analysis.created);
    analysis.tables = qualify(&analysis.tables);
    analysis.written = qualify(&analysis.written);
    // A table named both ways (`CREATE TABLE app.t`, then `t` with app
    // first in the path) is one table.
    let created = analysis.created.clone();
    analysis.tables.retain(|t| !created.contains(t));
    analysis.written.retain(|t| !created.contains(t));
    analysis.settings_at.clear();
    if let Some(detail) = failed {
        analysis.findings.push(crate::analyze::Finding {
            kind: Kind::Uncertain,
            line: 0,
            statement: String::new(),
            detail,
        });
        analysis.certain = false;
    }
    Ok(analysis)
}
