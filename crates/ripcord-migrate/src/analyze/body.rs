//! Whether code that a change's writes run (a trigger function's body, a
//! trigger's `WHEN` condition) can only touch the row being written: then
//! the trigger changes no other table and needs no wider snapshot. Read
//! from its words, on the safe side: any statement that reads or writes a
//! table, runs dynamic SQL or calls a function that is not a known
//! built-in makes it a risk.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::effects::HARMLESS_FUNCTIONS;
use super::split::keyword;

/// Words that start statements which read or change tables, or run code.
const RISKY_WORDS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "COPY", "EXECUTE", "PERFORM", "CALL", "DO",
    "SELECT", "WITH", "LOCK", "ALTER", "CREATE", "DROP", "GRANT", "REVOKE", "REFRESH", "TABLE",
    "VALUES", "NOTIFY", "LISTEN", "SET", "RESET", "DISCARD", "COMMIT", "ROLLBACK",
];

/// Words that may stand before `(` without being a function call: syntax
/// and type modifiers.
const NOT_CALLS: &[&str] = &[
    "IF",
    "ELSIF",
    "ELSEIF",
    "WHILE",
    "WHEN",
    "AND",
    "OR",
    "NOT",
    "IN",
    "ANY",
    "ALL",
    "SOME",
    "CASE",
    "THEN",
    "ELSE",
    "RETURN",
    "ROW",
    "ARRAY",
    "CAST",
    "IS",
    "DISTINCT",
    "FROM",
    "NULLIF",
    "BETWEEN",
    "LIKE",
    "ILIKE",
    "SIMILAR",
    "VARCHAR",
    "NUMERIC",
    "DECIMAL",
    "CHAR",
    "CHARACTER",
    "VARYING",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "TIME",
    "TIMETZ",
    "INTERVAL",
    "BIT",
    "VARBIT",
    "FLOAT",
    "USING",
    "MESSAGE",
    "DETAIL",
    "HINT",
    "ERRCODE",
    "OVERLAPS",
    "EXISTS",
];

/// Whether `code` (PL/pgSQL or SQL) can only compute values and change the
/// row in hand (`NEW.x := …`, `RETURN NEW`, `RAISE`).
pub fn row_local(code: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, code).tokenize() else {
        return false;
    };
    let tokens: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    for (i, token) in tokens.iter().enumerate() {
        let Some(word) = keyword(token) else {
            // A quoted name called as a function: unknown code.
            if matches!(token, Token::Word(_)) && tokens.get(i + 1) == Some(&Token::LParen) {
                return false;
            }
            continue;
        };
        if !harmless_word(&tokens, i, &word) {
            return false;
        }
    }
    true
}

/// The statements of a PL/pgSQL `DO` block that only runs them under
/// guards reading the catalog, as projects create roles:
/// `IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE …) THEN CREATE
/// ROLE …; END IF;`, or `BEGIN CREATE ROLE …; EXCEPTION WHEN
/// duplicate_object THEN NULL; END`. None when the block does anything
/// else: declares variables, loops, runs dynamic SQL, calls functions that
/// are not known built-ins, or reads tables outside the catalog. The
/// caller decides whether each statement is data-free.
pub fn guarded_statements(code: &str) -> Option<Vec<String>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, code)
        .tokenize()
        .ok()?;
    let tokens: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let mut statements = Vec::new();
    for chunk in tokens.split(|t| *t == Token::SemiColon) {
        let rest = strip_control(chunk)?;
        if !rest.is_empty() {
            let text: Vec<String> = rest.iter().map(|t| t.to_string()).collect();
            statements.push(text.join(" "));
        }
    }
    Some(statements)
}

/// What is left of one `;`-separated chunk once the control flow in front
/// of it (`BEGIN`, `IF … THEN`, `ELSE`, `EXCEPTION WHEN … THEN`) is taken
/// off and its conditions are found harmless; empty for `END …`, `NULL`
/// and `RAISE`.
fn strip_control(mut chunk: &[Token]) -> Option<&[Token]> {
    loop {
        let Some(first) = chunk.first() else {
            return Some(chunk);
        };
        match keyword(first).as_deref() {
            Some("BEGIN" | "ELSE") => chunk = &chunk[1..],
            Some("END") => return Some(&[]),
            Some("NULL") if chunk.len() == 1 => return Some(&[]),
            Some("RAISE") => return reads_only_catalog(&chunk[1..]).then_some(&[]),
            Some("IF" | "ELSIF" | "ELSEIF") => {
                let then = then_at(chunk)?;
                if !reads_only_catalog(&chunk[1..then]) {
                    return None;
                }
                chunk = &chunk[then + 1..];
            }
            Some("EXCEPTION") => {
                let then = then_at(chunk)?;
                // WHEN condition [OR condition …]: names only.
                let names_only = chunk[1..then]
                    .iter()
                    .all(|t| matches!(t, Token::Word(w) if w.quote_style.is_none()));
                if !names_only {
                    return None;
                }
                chunk = &chunk[then + 1..];
            }
            Some("DECLARE" | "LOOP" | "FOR" | "WHILE" | "FOREACH" | "CASE" | "RETURN") => {
                return None
            }
            _ if matches!(first, Token::ShiftLeft | Token::Lt) => return None,
            _ => return Some(chunk),
        }
    }
}

/// Where the `THEN` that ends a condition is, outside parentheses.
fn then_at(chunk: &[Token]) -> Option<usize> {
    let mut depth = 0i32;
    for (i, t) in chunk.iter().enumerate() {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth == 0 && keyword(t).as_deref() == Some("THEN") => return Some(i),
            _ => {}
        }
    }
    None
}

/// Whether an expression only computes values, reading nothing but the
/// catalog (`pg_catalog.*`, `information_schema.*`, unqualified `pg_*`):
/// `EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'x')`.
fn reads_only_catalog(tokens: &[Token]) -> bool {
    const QUERY_WORDS: &[&str] = &["SELECT", "FROM", "JOIN", "WHERE", "ON", "AS", "LIMIT"];
    for (i, token) in tokens.iter().enumerate() {
        let Some(word) = keyword(token) else {
            if matches!(token, Token::Word(_)) && tokens.get(i + 1) == Some(&Token::LParen) {
                return false;
            }
            continue;
        };
        if word == "FROM" || word == "JOIN" {
            // One relation, of the catalog; no list, no subquery.
            let (name, next) = match (tokens.get(i + 1), tokens.get(i + 2)) {
                (Some(q), Some(Token::Period)) => match keyword(q).as_deref() {
                    Some("PG_CATALOG" | "INFORMATION_SCHEMA") => (tokens.get(i + 3), i + 4),
                    _ => return false,
                },
                (Some(n), _) if keyword(n).is_some_and(|n| n.starts_with("PG_")) => {
                    (Some(n), i + 2)
                }
                _ => return false,
            };
            if name.and_then(keyword).is_none()
                || matches!(tokens.get(next), Some(Token::Comma | Token::LParen))
            {
                return false;
            }
            continue;
        }
        if QUERY_WORDS.contains(&word.as_str()) {
            continue;
        }
        if !harmless_word(tokens, i, &word) {
            return false;
        }
    }
    true
}

/// Whether the keyword `word` at `tokens[i]` is harmless: not a risky
/// word, and not a call, or a call of a known built-in, unqualified or in
/// pg_catalog.
fn harmless_word(tokens: &[Token], i: usize, word: &str) -> bool {
    if RISKY_WORDS.contains(&word) {
        return false;
    }
    if tokens.get(i + 1) != Some(&Token::LParen) || NOT_CALLS.contains(&word) {
        return true;
    }
    let qualifier = match (
        i.checked_sub(2).map(|j| &tokens[j]),
        i.checked_sub(1).map(|j| &tokens[j]),
    ) {
        (Some(q), Some(Token::Period)) => Some(keyword(q).unwrap_or_default()),
        _ => None,
    };
    // set_config could change how the change's later names resolve.
    let known =
        word != "SET_CONFIG" && HARMLESS_FUNCTIONS.contains(&word.to_ascii_lowercase().as_str());
    match qualifier {
        None => known,
        Some(q) => q == "PG_CATALOG" && known,
    }
}
