//! Keyword scanning: what the words of a statement say, parsed or not.
//! Used for the transaction rules, which depend on a few words, and as the
//! conservative fallback for statements sqlparser cannot read.

use sqlparser::parser::ParserError;
use sqlparser::tokenizer::Token;

use super::body;
use super::split::{keyword, split, Piece};
use super::{Dialect, Kind, Options, Report, TableName};

/// Statements that cannot run inside a transaction, and scripts that manage
/// their own.
pub(super) fn transaction_needs(piece: &Piece, options: &Options, report: &mut Report) {
    if let Some(detail) = own_transaction(piece) {
        report.finding(Kind::OwnTransaction, detail);
    }
    let reason = match options.dialect {
        Dialect::Postgres => postgres_outside_transaction(piece, options),
        Dialect::Sqlite => sqlite_outside_transaction(piece),
    };
    if let Some(reason) = reason {
        report.finding(Kind::NoTransaction, reason);
    }
}

/// Whether the statement begins or ends a transaction.
pub(super) fn controls_transaction(piece: &Piece) -> bool {
    own_transaction(piece).is_some()
}

fn own_transaction(piece: &Piece) -> Option<&'static str> {
    let first = piece.word(0)?;
    let second = piece.word(1);
    let starts = match first.as_str() {
        "BEGIN" => second.as_deref() != Some("ATOMIC"),
        "START" => second.as_deref() == Some("TRANSACTION"),
        "COMMIT" | "END" | "ABORT" => true,
        // ROLLBACK TO SAVEPOINT stays inside the transaction.
        "ROLLBACK" => second.as_deref() != Some("TO"),
        _ => false,
    };
    starts.then_some("the script begins or ends a transaction itself")
}

fn postgres_outside_transaction(piece: &Piece, options: &Options) -> Option<String> {
    let concurrently = piece.find("CONCURRENTLY").is_some();
    let reason = if (piece.starts(&["CREATE", "INDEX"])
        || piece.starts(&["CREATE", "UNIQUE", "INDEX"]))
        && concurrently
    {
        "CREATE INDEX CONCURRENTLY cannot run inside a transaction"
    } else if piece.starts(&["DROP", "INDEX"]) && concurrently {
        "DROP INDEX CONCURRENTLY cannot run inside a transaction"
    } else if piece.starts(&["REINDEX"]) && concurrently {
        "REINDEX CONCURRENTLY cannot run inside a transaction"
    } else if piece.starts(&["REINDEX", "DATABASE"]) || piece.starts(&["REINDEX", "SYSTEM"]) {
        "REINDEX DATABASE and REINDEX SYSTEM cannot run inside a transaction"
    } else if piece.starts(&["CREATE", "DATABASE"]) || piece.starts(&["DROP", "DATABASE"]) {
        "CREATE DATABASE and DROP DATABASE cannot run inside a transaction"
    } else if piece.starts(&["CREATE", "TABLESPACE"]) || piece.starts(&["DROP", "TABLESPACE"]) {
        "CREATE TABLESPACE and DROP TABLESPACE cannot run inside a transaction"
    } else if piece.starts(&["ALTER", "DATABASE"]) && piece.find("TABLESPACE").is_some() {
        "ALTER DATABASE … SET TABLESPACE cannot run inside a transaction"
    } else if piece.starts(&["VACUUM"]) {
        "VACUUM cannot run inside a transaction"
    } else if piece.starts(&["ALTER", "SYSTEM"]) {
        "ALTER SYSTEM cannot run inside a transaction"
    } else if piece.starts(&["CLUSTER"]) && piece.significant.len() == 1 {
        "CLUSTER without a table cannot run inside a transaction"
    } else if piece.starts(&["ALTER", "TABLE"]) && piece.find("DETACH").is_some() && concurrently {
        "DETACH PARTITION … CONCURRENTLY cannot run inside a transaction"
    } else if ["CREATE", "ALTER", "DROP"]
        .iter()
        .any(|verb| piece.starts(&[verb, "SUBSCRIPTION"]))
    {
        "a SUBSCRIPTION command that creates or drops a replication slot cannot run inside a \
         transaction"
    } else if piece.starts(&["ALTER", "TYPE"])
        && piece
            .find("ADD")
            .is_some_and(|i| piece.word(i + 1).as_deref() == Some("VALUE"))
        && options.server_version.is_none_or(|v| v < 12)
    {
        "ALTER TYPE … ADD VALUE cannot run inside a transaction before PostgreSQL 12"
    } else {
        return None;
    };
    Some(reason.to_string())
}

fn sqlite_outside_transaction(piece: &Piece) -> Option<String> {
    let reason = if piece.starts(&["VACUUM"]) {
        "VACUUM cannot run inside a transaction"
    } else if piece.starts(&["ATTACH"]) || piece.starts(&["DETACH"]) {
        "ATTACH and DETACH cannot run inside a transaction"
    } else {
        return None;
    };
    Some(reason.to_string())
}

/// A statement sqlparser cannot read: classified from its leading words when
/// they show it cannot change rows; otherwise uncertain, plus what its words
/// show.
pub(super) fn fallback(piece: &Piece, error: &ParserError, report: &mut Report) {
    // Maintenance and definition statements still get the findings below.
    let free = data_free(piece, report) || guarded_do_block(piece, report);
    let detail = if piece.starts(&["DO"]) {
        "a DO block runs code that can change any table".to_string()
    } else if piece.starts(&["CALL"]) {
        "a procedure can change any table".to_string()
    } else if piece.starts(&["ALTER", "EXTENSION"]) && piece.find("UPDATE").is_some() {
        "ALTER EXTENSION … UPDATE runs the extension's update script, which can change any \
         table"
            .to_string()
    } else {
        format!(
            "ripcord cannot read this statement ({error}), so cannot tell which tables it changes"
        )
    };
    if !free {
        report.finding(Kind::Uncertain, detail);
    }

    let word = |i: usize| piece.word(i);
    let w0 = word(0).unwrap_or_default();
    let w1 = word(1).unwrap_or_default();
    match (w0.as_str(), w1.as_str()) {
        ("ALTER", "TABLE") => {
            let at = skip(piece, 2, &["IF", "EXISTS", "ONLY"]);
            if let Some((table, _)) = name_at(piece, at) {
                report.table(table);
            }
            for i in 0..piece.significant.len() {
                match word(i).as_deref() {
                    Some("DROP") if drops_column(piece, i + 1) => {
                        report.finding(Kind::Destructive, "drops a column and its data");
                    }
                    Some("TYPE") => report.finding(
                        Kind::Rewrite,
                        "changing a column's type may rewrite the table under an exclusive lock",
                    ),
                    _ => {}
                }
            }
        }
        ("DROP", "TABLE") => {
            for table in names_from(piece, skip(piece, 2, &["IF", "EXISTS"])) {
                report.table(table);
            }
            report.finding(Kind::Destructive, "drops tables and their data");
        }
        ("DROP", "SCHEMA" | "DATABASE") => {
            report.finding(Kind::Destructive, "drops every table it holds");
        }
        ("DROP", "TYPE" | "DOMAIN" | "EXTENSION") if piece.find("CASCADE").is_some() => {
            report.finding(
                Kind::Destructive,
                "CASCADE also drops the columns that use what it drops",
            );
        }
        ("TRUNCATE", _) => {
            for table in names_from(piece, skip(piece, 1, &["TABLE", "ONLY"])) {
                report.table(table);
            }
            report.finding(Kind::Destructive, "empties tables");
        }
        ("UPDATE", _) => {
            if let Some((table, _)) = name_at(piece, skip(piece, 1, &["ONLY"])) {
                report.table(table);
            }
            report.finding(Kind::Destructive, "overwrites values");
        }
        ("DELETE", "FROM") => {
            if let Some((table, _)) = name_at(piece, skip(piece, 2, &["ONLY"])) {
                report.table(table);
            }
            report.finding(Kind::Destructive, "deletes rows");
        }
        ("INSERT" | "REPLACE", _) => {
            if let Some(into) = piece.find("INTO") {
                if let Some((table, _)) = name_at(piece, into + 1) {
                    report.table(table);
                }
            }
        }
        ("CREATE", _) if piece.find("INDEX").is_some() => {
            if let Some(on) = piece.find("ON") {
                if let Some((table, _)) = name_at(piece, skip(piece, on + 1, &["ONLY"])) {
                    report.table(table);
                }
            }
        }
        ("CLUSTER", _) => report.finding(
            Kind::Rewrite,
            "CLUSTER rewrites the table under an exclusive lock",
        ),
        ("VACUUM", _) if piece.find("FULL").is_some() => report.finding(
            Kind::Rewrite,
            "VACUUM FULL rewrites the table under an exclusive lock",
        ),
        _ => {}
    }
}

/// Objects whose CREATE, ALTER or DROP cannot change the rows of an
/// existing table, with the class `--explain` shows. Not here, so uncertain
/// when sqlparser cannot read them: tables (ALTER TABLE), materialized views
/// (their query runs), rules and event triggers (they run code on later
/// statements), subscriptions (they copy rows in), `ALTER EXTENSION …
/// UPDATE` (its script can do anything).
const DATA_FREE_OBJECTS: &[(&str, &str)] = &[
    ("FUNCTION", "a function"),
    ("PROCEDURE", "a procedure"),
    ("ROUTINE", "a function"),
    ("AGGREGATE", "a function"),
    ("TRIGGER", "a trigger"),
    ("POLICY", "a row-level security policy"),
    ("TYPE", "a type"),
    ("DOMAIN", "a domain"),
    ("SCHEMA", "a schema"),
    ("EXTENSION", "an extension"),
    ("SEQUENCE", "a sequence"),
    ("INDEX", "an index"),
    ("VIEW", "a view"),
    ("ROLE", "a role"),
    ("USER", "a role"),
    ("GROUP", "a role"),
    ("DATABASE", "a database"),
    ("COLLATION", "a collation"),
    ("CONVERSION", "a conversion"),
    ("OPERATOR", "an operator"),
    ("CAST", "a cast"),
    ("LANGUAGE", "a language"),
    ("TEXT", "text search configuration"),
    ("STATISTICS", "extended statistics"),
    ("PUBLICATION", "a publication"),
    ("SERVER", "a foreign server"),
    ("FOREIGN", "a foreign table or data wrapper"),
    ("TABLESPACE", "a tablespace"),
];

/// Classifies an unreadable statement from its leading words when they show
/// it cannot change the rows of existing tables; says whether it did.
fn data_free(piece: &Piece, report: &mut Report) -> bool {
    let w0 = piece.word(0).unwrap_or_default();
    let class = match w0.as_str() {
        "GRANT" | "REVOKE" => Some("grants or revokes"),
        "COMMENT" if piece.word(1).as_deref() == Some("ON") => Some("a comment"),
        "SECURITY" if piece.word(1).as_deref() == Some("LABEL") => Some("a security label"),
        "SET" | "RESET" | "SHOW" => Some("a setting"),
        "REASSIGN" => Some("changes owners"),
        "ANALYZE" | "VACUUM" | "REINDEX" | "CLUSTER" | "CHECKPOINT" | "LOCK" => {
            Some("maintenance; rows stay as they are")
        }
        "ALTER" if piece.starts(&["ALTER", "DEFAULT", "PRIVILEGES"]) => Some("grants or revokes"),
        "ALTER" if piece.starts(&["ALTER", "EXTENSION"]) && piece.find("UPDATE").is_some() => None,
        // Changing a composite type's attribute with CASCADE rewrites the
        // tables typed with it.
        "ALTER" if piece.starts(&["ALTER", "TYPE"]) && piece.find("CASCADE").is_some() => None,
        "ALTER" if piece.starts(&["ALTER", "TABLE"]) => {
            return alter_table_data_free(piece, report);
        }
        "CREATE" | "ALTER" | "DROP" => {
            return object_data_free(piece, report);
        }
        _ => None,
    };
    match class {
        Some(class) => {
            report.data_free(class);
            true
        }
        None => false,
    }
}

/// A PL/pgSQL `DO` block that only runs data-free statements under guards
/// reading the catalog (`IF NOT EXISTS (SELECT FROM pg_roles …) THEN CREATE
/// ROLE …`). Statements that name tables are left to the uncertain path:
/// their tables are not tracked from inside a block.
fn guarded_do_block(piece: &Piece, report: &mut Report) -> bool {
    if !piece.starts(&["DO"]) {
        return false;
    }
    let mut code = None;
    let mut i = 1;
    while let Some(token) = piece.significant.get(i) {
        match token {
            Token::DollarQuotedString(s) if code.is_none() => code = Some(s.value.clone()),
            Token::SingleQuotedString(s) if code.is_none() => code = Some(s.clone()),
            _ if piece.word(i).as_deref() == Some("LANGUAGE") => {
                if piece.word(i + 1).as_deref() != Some("PLPGSQL") {
                    return false;
                }
                i += 1;
            }
            _ => return false,
        }
        i += 1;
    }
    let Some(statements) = code.as_deref().and_then(body::guarded_statements) else {
        return false;
    };
    let mut scratch_free = true;
    for text in &statements {
        let Ok(pieces) = split(text, Dialect::Postgres) else {
            return false;
        };
        for inner in &pieces {
            let names_table = ["CREATE", "ALTER", "DROP"]
                .iter()
                .any(|verb| inner.starts(&[verb]))
                && inner.find("TABLE").is_some();
            if names_table || inner.gexec || !data_free(inner, report) {
                scratch_free = false;
            }
        }
    }
    if scratch_free {
        report.data_free("a DO block that only runs data-free statements under catalog checks");
    }
    scratch_free
}

/// `CREATE|ALTER|DROP <object>` for the objects of `DATA_FREE_OBJECTS`, and
/// `CREATE TABLE` without a query.
fn object_data_free(piece: &Piece, report: &mut Report) -> bool {
    let verb = piece.word(0).unwrap_or_default();
    // CREATE [OR REPLACE] [TEMP|UNLOGGED|UNIQUE|CONSTRAINT|TRUSTED …] <object>
    let at = skip(
        piece,
        1,
        &[
            "OR",
            "REPLACE",
            "TEMP",
            "TEMPORARY",
            "UNLOGGED",
            "UNIQUE",
            "CONSTRAINT",
            "TRUSTED",
            "PROCEDURAL",
            "RECURSIVE",
            "DEFAULT",
        ],
    );
    let object = piece.word(at).unwrap_or_default();
    if verb == "CREATE" && object == "TABLE" {
        return create_table_data_free(piece, at + 1, report);
    }
    if verb == "DROP" && object == "OWNED" {
        return false;
    }
    if object == "MATERIALIZED" && verb != "CREATE" {
        // Renaming or dropping derived rows; creating one runs its query.
        report.data_free("a materialized view");
        return true;
    }
    let Some((_, class)) = DATA_FREE_OBJECTS.iter().find(|(o, _)| *o == object) else {
        return false;
    };
    // DROP … CASCADE can take columns with it (a type's, a domain's, a
    // function's generated columns, a schema's tables).
    if verb == "DROP" && piece.find("CASCADE").is_some() {
        return false;
    }
    // DROP DATABASE destroys what it holds; the rest of the fallback says so.
    if verb == "DROP" && object == "DATABASE" {
        return false;
    }
    match object.as_str() {
        "INDEX" if verb == "CREATE" => {
            // Builds under a lock on its table, which the snapshot names.
            if let Some(on) = piece.find("ON") {
                if let Some((table, _)) = name_at(piece, skip(piece, on + 1, &["ONLY"])) {
                    report.table(table);
                }
            }
        }
        "TRIGGER" if verb == "CREATE" => {
            match piece
                .find("ON")
                .and_then(|on| name_at(piece, skip(piece, on + 1, &["ONLY"])))
            {
                Some((table, _)) => report.trigger(table),
                None => return false,
            }
        }
        _ => {}
    }
    report.data_free(class);
    true
}

/// `CREATE TABLE name (…)`, `… PARTITION OF …`, `… (LIKE …)`: a new, empty
/// table. `AS SELECT`/`AS EXECUTE` runs a query, `IF NOT EXISTS` may find
/// the table with rows: left to the fallback.
fn create_table_data_free(piece: &Piece, at: usize, report: &mut Report) -> bool {
    if piece.word(at).as_deref() == Some("IF") {
        return false;
    }
    let Some((table, next)) = name_at(piece, at) else {
        return false;
    };
    let runs_query = (next..piece.significant.len()).any(|i| {
        matches!(
            piece.word(i).as_deref(),
            Some("SELECT" | "EXECUTE" | "VALUES" | "WITH")
        )
    });
    if runs_query {
        return false;
    }
    report.created(table);
    report.data_free("creates a table");
    true
}

/// `ALTER TABLE [IF EXISTS] [ONLY] name` followed only by row-level
/// security or owner changes; anything else stays uncertain.
fn alter_table_data_free(piece: &Piece, report: &mut Report) -> bool {
    let at = skip(piece, 2, &["IF", "EXISTS", "ONLY"]);
    let Some((table, mut i)) = name_at(piece, at) else {
        return false;
    };
    loop {
        let w = |j: usize| piece.word(i + j);
        let level = |j: usize| {
            w(j).as_deref() == Some("ROW")
                && w(j + 1).as_deref() == Some("LEVEL")
                && w(j + 2).as_deref() == Some("SECURITY")
        };
        i += match w(0).as_deref() {
            Some("ENABLE" | "DISABLE" | "FORCE") if level(1) => 4,
            Some("NO") if w(1).as_deref() == Some("FORCE") && level(2) => 5,
            // OWNER TO role: a name or a quoted name.
            Some("OWNER")
                if w(1).as_deref() == Some("TO")
                    && matches!(piece.significant.get(i + 2), Some(Token::Word(_))) =>
            {
                3
            }
            _ => return false,
        };
        match piece.significant.get(i) {
            None => break,
            Some(Token::Comma) => i += 1,
            Some(_) => return false,
        }
    }
    report.data_free("row-level security or owner of a table");
    report.table(table);
    true
}

/// A script the tokenizer cannot cut (an unterminated quote, say): assume
/// the worst of every word in it.
pub(super) fn raw(sql: &str, error: &str, options: &Options, report: &mut Report) {
    report.finding(
        Kind::Uncertain,
        format!("ripcord cannot cut the script into statements ({error})"),
    );
    let upper = sql.to_ascii_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    let pair = |a: &str, b: &str| words.windows(2).any(|p| p[0] == a && p[1] == b);
    let outside = match options.dialect {
        Dialect::Postgres => {
            has("CONCURRENTLY")
                || pair("CREATE", "DATABASE")
                || pair("DROP", "DATABASE")
                || has("VACUUM")
                || pair("ALTER", "SYSTEM")
                || pair("ADD", "VALUE") && options.server_version.is_none_or(|v| v < 12)
        }
        Dialect::Sqlite => has("VACUUM") || has("ATTACH") || has("DETACH"),
    };
    if outside {
        report.finding(
            Kind::NoTransaction,
            "it may hold a statement that cannot run inside a transaction",
        );
    }
    if ["DROP", "TRUNCATE", "DELETE", "UPDATE"]
        .iter()
        .any(|w| has(w))
    {
        report.finding(Kind::Destructive, "it may destroy data");
    }
}

/// Whether the words after `DROP` in an ALTER TABLE name a column:
/// `DROP COLUMN c`, or `DROP c` (COLUMN is optional).
fn drops_column(piece: &Piece, i: usize) -> bool {
    match piece.significant.get(i) {
        Some(Token::Word(w)) if w.quote_style.is_some() => true,
        Some(token) => match keyword(token).as_deref() {
            Some("COLUMN") => true,
            Some(
                "CONSTRAINT" | "DEFAULT" | "NOT" | "IDENTITY" | "EXPRESSION" | "INDEX" | "PRIMARY"
                | "FOREIGN" | "PARTITION",
            ) => false,
            Some(_) => true,
            None => false,
        },
        None => false,
    }
}

/// Skips any of `optional` words from `i`.
fn skip(piece: &Piece, mut i: usize, optional: &[&str]) -> usize {
    while piece
        .word(i)
        .is_some_and(|w| optional.contains(&w.as_str()))
    {
        i += 1;
    }
    i
}

/// Reads `a`, `s.a` or `db.s.a` at `i`; returns the name and what follows.
pub(super) fn name_at(piece: &Piece, mut i: usize) -> Option<(TableName, usize)> {
    let mut parts = Vec::new();
    loop {
        match piece.significant.get(i)? {
            Token::Word(w) if w.quote_style.is_some() => parts.push(w.value.clone()),
            Token::Word(w) => parts.push(w.value.to_lowercase()),
            _ => return None,
        }
        i += 1;
        if piece.significant.get(i) != Some(&Token::Period) {
            break;
        }
        i += 1;
    }
    let name = parts.pop()?;
    Some((
        TableName {
            schema: parts.pop(),
            name,
        },
        i,
    ))
}

/// A comma-separated list of names from `i`.
fn names_from(piece: &Piece, mut i: usize) -> Vec<TableName> {
    let mut names = Vec::new();
    while let Some((name, next)) = name_at(piece, i) {
        names.push(name);
        if piece.significant.get(next) != Some(&Token::Comma) {
            break;
        }
        i = next + 1;
    }
    names
}

/// Statements that change how the server resolves the names of later ones:
/// the search_path, and the role (`$user` in the path).
pub(super) fn session_setting(piece: &Piece, sql: &str, report: &mut Report) {
    let mut i = 1;
    let setting = match piece.word(0).as_deref() {
        Some("SET") => {
            if matches!(piece.word(1).as_deref(), Some("SESSION" | "LOCAL"))
                && piece.word(2).as_deref() != Some("AUTHORIZATION")
            {
                i = 2;
            }
            match piece.word(i).as_deref() {
                Some("SEARCH_PATH" | "SCHEMA" | "ROLE") => true,
                Some("SESSION") => piece.word(i + 1).as_deref() == Some("AUTHORIZATION"),
                _ => false,
            }
        }
        Some("RESET") => matches!(
            piece.word(1).as_deref(),
            Some("SEARCH_PATH" | "ALL" | "ROLE" | "SESSION")
        ),
        Some("DISCARD") => piece.word(1).as_deref() == Some("ALL"),
        _ => false,
    };
    if setting {
        report.setting(super::split::slice(sql, piece.start, piece.end));
        return;
    }
    // set_config('search_path', …) or set_config('role', …).
    let sets = piece.significant.windows(3).any(|w| {
        keyword(&w[0]).as_deref() == Some("SET_CONFIG")
            && w[1] == Token::LParen
            && matches!(&w[2], Token::SingleQuotedString(s)
                if s.eq_ignore_ascii_case("search_path") || s.eq_ignore_ascii_case("role"))
    });
    if !sets {
        return;
    }
    // A bare SELECT can be replayed as it is; anything else (a FROM, a
    // function body) cannot be told from the SQL.
    if piece.word(0).as_deref() == Some("SELECT") && piece.find("FROM").is_none() {
        report.setting(super::split::slice(sql, piece.start, piece.end));
    } else {
        report.finding(
            Kind::Uncertain,
            "sets the search_path in a way ripcord cannot replay, so it cannot tell which \
             tables later names mean",
        );
    }
}
