//! What a script does, read from its SQL before it runs: the tables a safety
//! snapshot must cover, and what `lint` and the engine must know (statements
//! that cannot run in a transaction, destroyed data, table rewrites and long
//! locks).
//!
//! Statements are parsed with sqlparser one at a time, so one statement it
//! cannot read does not hide the others. What it cannot read is classified
//! from its leading keywords: statements that cannot change the rows of
//! existing tables (grants, roles, comments, functions, policies, …) stay
//! certain; anything else makes the table set uncertain, and the engine then
//! snapshots the whole database.
//!
//! A function body is a risk only where the script runs it: a call from a
//! query, or a trigger created earlier in the script that the script's own
//! DML fires. Not seen from the SQL alone, added by the engine from the
//! catalog (`engine::resolve`): the tables whose rows foreign keys with `ON
//! DELETE/UPDATE CASCADE` change, and writes made by triggers that already
//! exist (see `Analysis::written`).

mod body;
mod effects;
mod scan;
mod split;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use body::row_local;

/// The SQL dialect a script is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    #[default]
    Postgres,
    Sqlite,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub dialect: Dialect,
    /// The PostgreSQL major version, when known. `ALTER TYPE … ADD VALUE` is
    /// taken to need no transaction unless it is 12 or later (the safe side);
    /// any default is taken to rewrite a table only when it is known to be
    /// before 11 (which no supported server is).
    pub server_version: Option<u32>,
}

/// A table as the database names it: unquoted parts folded to lower case.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn new(schema: Option<&str>, name: &str) -> TableName {
        TableName {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        }
    }
}

/// `schema.name`, a part in double quotes where SQL would need them
/// (`"My App"."Odd.Table"`), so that the text names the table exactly.
impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ripcord_core::table_name::Shown(self.schema.as_deref(), &self.name).fmt(f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The statement may change tables that cannot be named from its SQL.
    Uncertain,
    /// The statement cannot run inside a transaction.
    NoTransaction,
    /// The script begins or ends transactions itself (`BEGIN`, `COMMIT`).
    OwnTransaction,
    /// The statement destroys data: dropped tables or columns, deleted or
    /// overwritten rows, converted values.
    Destructive,
    /// The statement rewrites a whole table while holding an exclusive lock.
    Rewrite,
    /// The statement scans a table or builds an index while blocking writes
    /// or reads; harmless on small tables, an outage on large ones.
    LongLock,
}

/// One thing worth knowing about one statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    /// The line of the script the statement starts on.
    pub line: usize,
    /// The start of the statement, whitespace collapsed.
    pub statement: String,
    pub detail: String,
}

/// What a script does.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// Existing tables whose rows or definition the script changes (tables it
    /// creates are left out: there is nothing of them to save).
    pub tables: BTreeSet<TableName>,
    /// False when some statement may change other tables too; the safety
    /// snapshot must then cover the whole database.
    pub certain: bool,
    pub findings: Vec<Finding>,
    /// Statements found, empty ones not counted.
    pub statements: usize,
    /// Tables the script creates: a revert without a down script drops them.
    pub created: BTreeSet<TableName>,
    /// Statements sqlparser could not read, for the database to check their
    /// syntax before anything runs.
    pub unparsed: Vec<Unparsed>,
    /// Statements that change how the server resolves names (`SET
    /// search_path`, `SET LOCAL`, `RESET`, `SET ROLE`, `set_config`), in
    /// script order, as written: the engine replays them to resolve names.
    pub settings: Vec<String>,
    /// For each unqualified table of `tables` and `created`: how many of
    /// `settings` were in effect at each place the script names it.
    pub settings_at: BTreeMap<TableName, BTreeSet<usize>>,
    /// Existing tables whose rows the script's DML writes (INSERT, UPDATE,
    /// DELETE, MERGE, COPY FROM, TRUNCATE): the triggers already on them run
    /// too, which the engine looks up in the catalog.
    pub written: BTreeSet<TableName>,
    /// What each statement does, in script order, for `--explain`.
    pub steps: Vec<Step>,
}

/// One statement and what it does to existing tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    /// The start of the statement, whitespace collapsed.
    pub statement: String,
    pub effect: Effect,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Cannot change the rows of any existing table; the text says which
    /// class of statement it is.
    DataFree(&'static str),
    /// Creates these tables, which hold nothing yet.
    Creates(Vec<TableName>),
    /// Changes the definition of these existing tables, not their rows (an
    /// index, row-level security): the class says which.
    Defines {
        class: &'static str,
        tables: Vec<TableName>,
    },
    /// Changes these existing tables (rows or definition); `destroys` when
    /// it drops or overwrites data.
    Changes {
        tables: Vec<TableName>,
        destroys: bool,
    },
    /// May change tables its SQL does not name: the reason.
    Uncertain(String),
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |tables: &[TableName]| {
            tables
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Effect::DataFree(class) => write!(f, "changes no rows ({class})"),
            Effect::Creates(tables) => write!(f, "creates {}", list(tables)),
            Effect::Defines { class, tables } => {
                write!(f, "changes no rows of {} ({class})", list(tables))
            }
            Effect::Changes { tables, destroys } => write!(
                f,
                "changes {}{}",
                list(tables),
                if *destroys { ", destroying data" } else { "" }
            ),
            Effect::Uncertain(why) => write!(f, "uncertain: {why}"),
        }
    }
}

/// A statement sqlparser could not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unparsed {
    pub line: usize,
    /// The whole statement, as written.
    pub sql: String,
    pub error: String,
}

impl Analysis {
    pub fn has(&self, kind: Kind) -> bool {
        self.findings.iter().any(|f| f.kind == kind)
    }

    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// Whether the script must run outside a transaction.
    pub fn no_transaction(&self) -> bool {
        self.has(Kind::NoTransaction)
    }
}

/// Reads `sql` and says what it does; never fails: what cannot be read is
/// reported as uncertain.
pub fn analyze(sql: &str, options: &Options) -> Analysis {
    let mut analysis = Analysis {
        certain: true,
        ..Analysis::default()
    };
    let mut created = BTreeSet::new();
    let mut triggered = BTreeMap::new();
    match split::split(sql, options.dialect) {
        Ok(pieces) => {
            for piece in &pieces {
                analysis.statements += 1;
                let settings = analysis.settings.len();
                let mut report = Report {
                    analysis: &mut analysis,
                    created: &mut created,
                    triggered: &mut triggered,
                    line: piece.line,
                    statement: &piece.excerpt,
                    settings,
                    step: StepSeen::default(),
                };
                scan::session_setting(piece, sql, &mut report);
                scan::transaction_needs(piece, options, &mut report);
                if piece.gexec {
                    gexec(piece, options, &mut report);
                }
                match piece.parse(options.dialect) {
                    Ok(statements) => {
                        for statement in &statements {
                            effects::statement(statement, options, &mut report);
                        }
                    }
                    Err(error) => {
                        scan::fallback(piece, &error, &mut report);
                        report.analysis.unparsed.push(Unparsed {
                            line: piece.line,
                            sql: split::slice(sql, piece.start, piece.end).to_string(),
                            error: error.to_string(),
                        });
                    }
                }
                report.step_done();
            }
        }
        Err(error) => {
            // Without tokens there are no statement boundaries either: scan
            // the whole text for the words that matter.
            analysis.statements = 1;
            let excerpt = split::excerpt(sql);
            let mut report = Report {
                analysis: &mut analysis,
                created: &mut created,
                triggered: &mut triggered,
                line: 1,
                statement: &excerpt,
                settings: 0,
                step: StepSeen::default(),
            };
            scan::raw(sql, &error, options, &mut report);
            report.step_done();
            analysis.unparsed.push(Unparsed {
                line: 1,
                sql: sql.to_string(),
                error,
            });
        }
    }
    analysis.certain = !analysis.has(Kind::Uncertain);
    analysis.tables.retain(|t| !created.contains(t));
    analysis.written.retain(|t| !created.contains(t));
    analysis.created = created;
    analysis
}

/// A psql `\gexec` query runs the statements its rows hold. When the query
/// only selects whole statements written as string literals (`SELECT
/// 'CREATE DATABASE app' WHERE NOT EXISTS …`), those are what it does; a
/// statement it builds (`format(…)`, `||`) cannot be told from the SQL.
fn gexec(piece: &split::Piece, options: &Options, report: &mut Report) {
    use sqlparser::tokenizer::Token;
    let mut literals = Vec::new();
    for token in &piece.significant {
        match token {
            Token::SingleQuotedString(s)
            | Token::EscapedStringLiteral(s)
            | Token::NationalStringLiteral(s) => literals.push(s.clone()),
            Token::DollarQuotedString(d) => literals.push(d.value.clone()),
            _ => {}
        }
    }
    let builds = piece.significant.iter().any(|t| {
        matches!(t, Token::StringConcat)
            || split::keyword(t).is_some_and(|w| {
                matches!(
                    w.as_str(),
                    "FORMAT" | "CONCAT" | "CONCAT_WS" | "QUOTE_IDENT"
                )
            })
    });
    // Literals that compare (`datname = 'app'`) are not statements.
    const STARTS: &[&str] = &[
        "CREATE", "ALTER", "DROP", "GRANT", "REVOKE", "COMMENT", "INSERT", "UPDATE", "DELETE",
        "SELECT", "TRUNCATE", "SET", "DO", "CALL", "VACUUM", "ANALYZE", "REINDEX", "CLUSTER",
        "REFRESH", "SECURITY", "WITH",
    ];
    let statements: Vec<Analysis> = literals
        .iter()
        .filter(|sql| {
            let first = sql.split_whitespace().next().unwrap_or_default();
            STARTS.contains(&first.to_ascii_uppercase().as_str())
        })
        .map(|sql| analyze(sql, options))
        .filter(|a| a.statements > 0)
        .collect();
    // Built from quoted names only (`format('CREATE DATABASE %I OWNER %I',
    // …)`, `'GRANT … ' || quote_ident(r)`), a statement whose own words say
    // it changes no rows still changes none: the names cannot add a statement.
    let data_free = !statements.is_empty()
        && statements.iter().all(|a| {
            a.certain
                && a.tables.is_empty()
                && a.created.is_empty()
                && a.steps
                    .iter()
                    .all(|s| matches!(s.effect, Effect::DataFree(_)))
        });
    if builds && data_free && built_from_quoted_names(piece, &literals) {
        report.data_free("statements built from quoted names by \\gexec");
        for a in statements {
            for f in a.findings {
                report.finding(f.kind, format!("\\gexec: {}", f.detail));
            }
        }
        return;
    }
    if builds || statements.is_empty() {
        report.finding(
            Kind::Uncertain,
            "\\gexec runs statements its query builds, which cannot be told from the SQL",
        );
        // The start of a built statement still tells whether it can run in
        // a transaction (`'CREATE DATABASE ' || quote_ident(…)`).
        for a in statements {
            for f in a.of_kind(Kind::NoTransaction) {
                report.finding(f.kind, format!("\\gexec: {}", f.detail));
            }
        }
        return;
    }
    for a in statements {
        for t in a.tables {
            report.table(t);
        }
        for t in a.created {
            report.created(t);
        }
        for f in a.findings {
            report.finding(f.kind, format!("\\gexec: {}", f.detail));
        }
    }
}

/// Whether a `\gexec` query builds its statements only by putting quoted
/// names or literals into fixed text: `format` with `%I`, `%L` and `%%`
/// only, and `||` whose operands are literals or `quote_ident`,
/// `quote_literal` and `quote_nullable` calls. Anything else (a column
/// spliced in as it is) could carry a statement of its own.
fn built_from_quoted_names(piece: &split::Piece, literals: &[String]) -> bool {
    use sqlparser::tokenizer::Token;
    const QUOTES: &[&str] = &["QUOTE_IDENT", "QUOTE_LITERAL", "QUOTE_NULLABLE"];
    let formats_safely = literals.iter().all(|l| {
        let mut chars = l.chars();
        while let Some(c) = chars.next() {
            if c == '%' && !matches!(chars.next(), Some('I' | 'L' | '%')) {
                return false;
            }
        }
        true
    });
    if !formats_safely {
        return false;
    }
    let tokens = &piece.significant;
    let literal = |t: Option<&Token>| {
        matches!(
            t,
            Some(
                Token::SingleQuotedString(_)
                    | Token::EscapedStringLiteral(_)
                    | Token::NationalStringLiteral(_)
                    | Token::DollarQuotedString(_)
            )
        )
    };
    let quote_call = |i: usize| {
        tokens
            .get(i)
            .and_then(split::keyword)
            .is_some_and(|w| QUOTES.contains(&w.as_str()))
            && tokens.get(i + 1) == Some(&Token::LParen)
    };
    // For each `)`, whether its `(` opened a quoting call.
    let mut open = Vec::new();
    let mut closes_quote = std::collections::HashSet::new();
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::LParen => open.push(i),
            Token::RParen => {
                if let Some(o) = open.pop() {
                    if o > 0 && quote_call(o - 1) {
                        closes_quote.insert(i);
                    }
                }
            }
            _ => {}
        }
    }
    tokens.iter().enumerate().all(|(i, t)| {
        if *t != Token::StringConcat {
            return true;
        }
        let left = i
            .checked_sub(1)
            .is_some_and(|l| literal(tokens.get(l)) || closes_quote.contains(&l));
        let right = literal(tokens.get(i + 1)) || quote_call(i + 1);
        left && right
    })
}

/// One statement of a script, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub line: usize,
    pub sql: String,
}

/// The statements of a script, for running them one at a time; `None` when
/// the script cannot be cut into statements.
pub fn statements(sql: &str, dialect: Dialect) -> Option<Vec<Statement>> {
    let pieces = split::split(sql, dialect).ok()?;
    Some(
        pieces
            .iter()
            .map(|p| Statement {
                line: p.line,
                sql: split::slice(sql, p.start, p.end).to_string(),
            })
            .collect(),
    )
}

/// A script wrapped in its own `BEGIN; … COMMIT;` (sqitch's templates): the
/// statements between, to run in ripcord's transaction. `None` when the
/// script is not wrapped that way, ends in `ROLLBACK` (which undoes its
/// work), or controls transactions anywhere else.
pub fn unwrap_transaction(sql: &str, dialect: Dialect) -> Option<String> {
    let pieces = split::split(sql, dialect).ok()?;
    let (first, rest) = pieces.split_first()?;
    let (last, inner) = rest.split_last()?;
    let begins = first.starts(&["BEGIN"]) && first.word(1).as_deref() != Some("ATOMIC")
        || first.starts(&["START", "TRANSACTION"]);
    let ends =
        last.significant.len() <= 2 && matches!(last.word(0).as_deref(), Some("COMMIT" | "END"));
    if !begins || !ends || inner.iter().any(scan::controls_transaction) {
        return None;
    }
    let mut out = String::new();
    for piece in inner {
        out.push_str(split::slice(sql, piece.start, piece.end));
        out.push_str(";\n");
    }
    Some(out)
}

/// How a script's own transaction control is run inside ripcord's
/// transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocks {
    /// Deploy and revert scripts: each `BEGIN … COMMIT` block becomes a
    /// savepoint that is released, `ROLLBACK` rolls back to it. A block left
    /// open at the end is an error.
    Change,
    /// Verify scripts: the same, and a block left open is rolled back, as
    /// psql does when the script ends.
    Verify,
    /// For analysis: the control statements are left out.
    Strip,
}

/// `sql` with its `BEGIN`/`COMMIT`/`ROLLBACK` turned into savepoints (see
/// [`Blocks`]), so that it runs inside ripcord's transaction and can never
/// end it. `Ok(None)` when the script controls no transaction; `Err((line,
/// why))` for what cannot be run that way: `PREPARE TRANSACTION`, `COMMIT
/// AND CHAIN`, a block never closed.
pub fn transaction_blocks(
    sql: &str,
    dialect: Dialect,
    mode: Blocks,
) -> Result<Option<String>, (usize, String)> {
    let Ok(pieces) = split::split(sql, dialect) else {
        return Ok(None);
    };
    let mut out = String::with_capacity(sql.len() + 64);
    let mut copied = 0usize;
    let mut open: Option<(usize, String)> = None;
    let mut blocks = 0usize;
    let mut any = false;
    for piece in &pieces {
        let w0 = piece.word(0).unwrap_or_default();
        let w1 = piece.word(1).unwrap_or_default();
        let chained = piece.find("CHAIN").is_some() && piece.find("NO").is_none();
        let prepared = matches!(
            (w0.as_str(), w1.as_str()),
            ("PREPARE", "TRANSACTION") | ("COMMIT" | "ROLLBACK", "PREPARED")
        );
        if prepared || chained && scan::controls_transaction(piece) {
            return Err((
                piece.line,
                format!("{} cannot run inside ripcord's transaction", piece.excerpt),
            ));
        }
        if !scan::controls_transaction(piece) {
            continue;
        }
        any = true;
        let begins = matches!(w0.as_str(), "BEGIN" | "START");
        let rolls_back = matches!(w0.as_str(), "ROLLBACK" | "ABORT");
        let replacement = match (&open, begins, mode) {
            (_, _, Blocks::Strip) => String::new(),
            // psql warns and goes on: there is already a transaction.
            (Some(_), true, _) => String::new(),
            (None, true, _) => {
                blocks += 1;
                let name = format!("ripcord_block_{blocks}");
                let text = format!("SAVEPOINT {name}");
                open = Some((piece.line, name));
                text
            }
            // psql warns: there is no transaction in progress.
            (None, false, _) => String::new(),
            (Some((_, name)), false, _) => {
                let text = if rolls_back {
                    format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}")
                } else {
                    format!("RELEASE SAVEPOINT {name}")
                };
                open = None;
                text
            }
        };
        let start = split::offset(sql, piece.start);
        let end = split::offset(sql, piece.end);
        out.push_str(&sql[copied..start]);
        out.push_str(&replacement);
        copied = end;
    }
    if !any {
        return Ok(None);
    }
    out.push_str(&sql[copied..]);
    if let Some((line, name)) = open {
        match mode {
            Blocks::Change => {
                return Err((
                    line,
                    "this BEGIN is never committed: psql would roll its work back when the \
                     script ends"
                        .into(),
                ))
            }
            Blocks::Verify => {
                out.push_str(&format!(
                    "\n;ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
                ));
            }
            Blocks::Strip => {}
        }
    }
    Ok(Some(out))
}

/// Collects what one statement does.
pub(crate) struct Report<'a> {
    analysis: &'a mut Analysis,
    /// Tables created earlier in the script: empty, so locks on them are
    /// harmless and there is nothing to snapshot.
    created: &'a mut BTreeSet<TableName>,
    /// Tables given a trigger earlier in the script, with the line: DML on
    /// them later runs the trigger's function.
    triggered: &'a mut BTreeMap<TableName, usize>,
    line: usize,
    statement: &'a str,
    /// How many name-resolution settings precede this statement.
    settings: usize,
    step: StepSeen,
}

/// What the statement being read was seen to do, for its `Step`.
#[derive(Default)]
struct StepSeen {
    tables: Vec<TableName>,
    created: Vec<TableName>,
    destroys: bool,
    uncertain: Option<String>,
    class: Option<&'static str>,
}

impl Report<'_> {
    fn table(&mut self, table: TableName) {
        self.where_named(&table);
        if !self.step.tables.contains(&table) {
            self.step.tables.push(table.clone());
        }
        self.analysis.tables.insert(table);
    }

    /// A table whose rows the statement writes.
    fn written(&mut self, table: TableName) {
        // `t` and `public.t` may be the same table: match on the name
        // unless both schemas are given and differ.
        let fired = self.triggered.iter().find(|(t, _)| {
            t.name == table.name
                && (t.schema.is_none() || table.schema.is_none() || t.schema == table.schema)
        });
        if let Some((_, line)) = fired {
            self.finding(
                Kind::Uncertain,
                format!(
                    "writes {table}, which fires the trigger created on it at line {line}; \
                     its function can change any table"
                ),
            );
        }
        self.analysis.written.insert(table.clone());
        self.table(table);
    }

    fn created(&mut self, table: TableName) {
        self.where_named(&table);
        self.step.created.push(table.clone());
        self.created.insert(table);
    }

    /// A trigger put on `table`: the script's later DML on it runs code.
    fn trigger(&mut self, table: TableName) {
        self.triggered.entry(table).or_insert(self.line);
    }

    /// The statement cannot change rows of existing tables: which class.
    fn data_free(&mut self, class: &'static str) {
        self.step.class.get_or_insert(class);
    }

    /// Records the statement's `Step` from what was seen.
    fn step_done(&mut self) {
        let seen = std::mem::take(&mut self.step);
        let effect = if let Some(why) = seen.uncertain {
            Effect::Uncertain(why)
        } else if let (Some(class), false, false) =
            (seen.class, seen.tables.is_empty(), seen.destroys)
        {
            Effect::Defines {
                class,
                tables: seen.tables,
            }
        } else if !seen.tables.is_empty() {
            Effect::Changes {
                tables: seen.tables,
                destroys: seen.destroys,
            }
        } else if !seen.created.is_empty() {
            Effect::Creates(seen.created)
        } else {
            Effect::DataFree(seen.class.unwrap_or("reads or sets only"))
        };
        self.analysis.steps.push(Step {
            line: self.line,
            statement: self.statement.to_string(),
            effect,
        });
    }

    /// An unqualified name resolves through the search_path in effect here.
    fn where_named(&mut self, table: &TableName) {
        if table.schema.is_none() {
            self.analysis
                .settings_at
                .entry(table.clone())
                .or_default()
                .insert(self.settings);
        }
    }

    /// A statement that changes name resolution, replayed by the engine.
    fn setting(&mut self, sql: &str) {
        self.analysis.settings.push(sql.to_string());
    }

    fn is_new(&self, table: &TableName) -> bool {
        self.created.contains(table)
    }

    fn finding(&mut self, kind: Kind, detail: impl Into<String>) {
        let detail = detail.into();
        match kind {
            Kind::Uncertain if self.step.uncertain.is_none() => {
                self.step.uncertain = Some(detail.clone())
            }
            Kind::Destructive => self.step.destroys = true,
            _ => {}
        }
        let finding = Finding {
            kind,
            line: self.line,
            statement: self.statement.to_string(),
            detail,
        };
        if !self.analysis.findings.contains(&finding) {
            self.analysis.findings.push(finding);
        }
    }
}

#[cfg(test)]
mod tests;
