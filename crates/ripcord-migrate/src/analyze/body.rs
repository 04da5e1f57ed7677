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
        if RISKY_WORDS.contains(&word.as_str()) {
            return false;
        }
        if tokens.get(i + 1) != Some(&Token::LParen) || NOT_CALLS.contains(&word.as_str()) {
            continue;
        }
        // A call: a known built-in, unqualified or in pg_catalog.
        let qualifier = match (
            i.checked_sub(2).map(|j| &tokens[j]),
            i.checked_sub(1).map(|j| &tokens[j]),
        ) {
            (Some(q), Some(Token::Period)) => Some(keyword(q).unwrap_or_default()),
            _ => None,
        };
        // set_config could change how the change's later names resolve.
        let known = word != "SET_CONFIG"
            && HARMLESS_FUNCTIONS.contains(&word.to_ascii_lowercase().as_str());
        match qualifier {
            None if known => {}
            Some(q) if q == "PG_CATALOG" && known => {}
            _ => return false,
        }
    }
    true
}
