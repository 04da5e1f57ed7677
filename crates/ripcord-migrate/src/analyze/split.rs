//! Cutting a script into statements with sqlparser's tokenizer, which knows
//! quotes, dollar quotes and comments, so a `;` inside them does not cut.

use sqlparser::ast::Statement;
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use super::Dialect;

/// One statement's tokens.
pub(super) struct Piece {
    /// Every token, comments and whitespace included, as the parser wants them.
    tokens: Vec<TokenWithSpan>,
    /// The tokens that matter for scanning: no whitespace, no comments.
    pub significant: Vec<Token>,
    pub line: usize,
    pub excerpt: String,
    /// Where the statement starts and ends in the script: (line, column),
    /// 1-based, columns in characters; the end is exclusive.
    pub start: (u64, u64),
    pub end: (u64, u64),
    /// A psql `\gexec` query: its result rows are statements to run.
    pub gexec: bool,
}

impl Piece {
    pub fn parse(&self, dialect: Dialect) -> Result<Vec<Statement>, ParserError> {
        let tokens = self.tokens.clone();
        match dialect {
            Dialect::Postgres => Parser::new(&PostgreSqlDialect {})
                .with_tokens_with_locations(tokens)
                .parse_statements(),
            Dialect::Sqlite => Parser::new(&SQLiteDialect {})
                .with_tokens_with_locations(tokens)
                .parse_statements(),
        }
    }

    /// The upper-cased unquoted word at `i` of the significant tokens.
    pub fn word(&self, i: usize) -> Option<String> {
        keyword(self.significant.get(i)?)
    }

    /// Whether the statement starts with these words.
    pub fn starts(&self, words: &[&str]) -> bool {
        words
            .iter()
            .enumerate()
            .all(|(i, w)| self.word(i).as_deref() == Some(*w))
    }

    /// Where the word appears, if anywhere.
    pub fn find(&self, word: &str) -> Option<usize> {
        (0..self.significant.len()).find(|&i| self.word(i).as_deref() == Some(word))
    }
}

/// An unquoted word, upper-cased; quoted identifiers are names, not keywords.
pub(super) fn keyword(token: &Token) -> Option<String> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

pub(super) fn split(sql: &str, dialect: Dialect) -> Result<Vec<Piece>, String> {
    let tokens = match dialect {
        Dialect::Postgres => Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location(),
        Dialect::Sqlite => Tokenizer::new(&SQLiteDialect {}, sql).tokenize_with_location(),
    }
    .map_err(|e| e.to_string())?;
    let mut pieces = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    // Inside a trigger body (`CREATE TRIGGER … BEGIN …; END`) or a
    // `BEGIN ATOMIC … END` routine body, `;` ends statements of the body,
    // not the statement itself; CASE … END nests inside.
    let mut depth = 0usize;
    for token in tokens {
        if token.token == Token::SemiColon && depth == 0 {
            push(&mut pieces, std::mem::take(&mut current));
            continue;
        }
        if token.token == Token::EOF {
            continue;
        }
        match keyword(&token.token).as_deref() {
            Some("BEGIN") if opens_block(&current) => depth += 1,
            Some("ATOMIC") if depth == 0 && last_word(&current).as_deref() == Some("BEGIN") => {
                depth = 1;
            }
            Some("CASE") if depth > 0 => depth += 1,
            Some("END") if depth > 0 => depth -= 1,
            _ => {}
        }
        current.push(token);
    }
    push(&mut pieces, current);
    Ok(pieces)
}

/// Whether a `BEGIN` here opens a body: the statement so far is a
/// `CREATE [OR REPLACE] [TEMP|TEMPORARY] TRIGGER`.
fn opens_block(so_far: &[TokenWithSpan]) -> bool {
    let words: Vec<String> = so_far
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .take(5)
        .filter_map(|t| keyword(&t.token))
        .collect();
    let mut it = words.iter().map(String::as_str).peekable();
    if it.next() != Some("CREATE") {
        return false;
    }
    while let Some(w) = it.peek() {
        if matches!(*w, "OR" | "REPLACE" | "TEMP" | "TEMPORARY") {
            it.next();
        } else {
            break;
        }
    }
    it.next() == Some("TRIGGER")
}

fn last_word(so_far: &[TokenWithSpan]) -> Option<String> {
    so_far
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_)))
        .and_then(|t| keyword(&t.token))
}

/// The comment psql expansion puts before a `\gexec` query.
fn is_gexec_marker(token: &Token) -> bool {
    matches!(token, Token::Whitespace(Whitespace::MultiLineComment(c))
        if format!("/*{c}*/") == crate::psql::GEXEC_MARKER)
}

fn push(pieces: &mut Vec<Piece>, tokens: Vec<TokenWithSpan>) {
    let significant: Vec<Token> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| t.token.clone())
        .collect();
    let Some(real) = tokens
        .iter()
        .find(|t| !matches!(t.token, Token::Whitespace(_)))
    else {
        return;
    };
    // A `\gexec` query starts at its marker, so the statement's text keeps it.
    let marker = tokens
        .iter()
        .take_while(|t| matches!(t.token, Token::Whitespace(_)))
        .find(|t| is_gexec_marker(&t.token));
    let gexec = marker.is_some();
    let first = marker.unwrap_or(real);
    let line = real.span.start.line as usize;
    let last = tokens
        .iter()
        .rfind(|t| !matches!(t.token, Token::Whitespace(_)))
        .unwrap_or(first);
    let start = (first.span.start.line, first.span.start.column);
    let end = (last.span.end.line, last.span.end.column);
    // Comments and line breaks become single spaces.
    let text: String = tokens
        .iter()
        .map(|t| match t.token {
            Token::Whitespace(_) => " ".to_string(),
            ref token => token.to_string(),
        })
        .collect();
    pieces.push(Piece {
        excerpt: excerpt(&text),
        tokens,
        significant,
        line,
        start,
        end,
        gexec,
    });
}

/// The start of a statement, on one line, short enough for a report.
pub(super) fn excerpt(sql: &str) -> String {
    const MAX: usize = 72;
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// The byte offset in `sql` of a (line, column) place of the tokenizer.
pub(super) fn offset(sql: &str, (line, column): (u64, u64)) -> usize {
    let mut offset = 0;
    for (i, text) in sql.split_inclusive('\n').enumerate() {
        if i as u64 + 1 == line {
            return offset
                + text
                    .char_indices()
                    .nth(column.saturating_sub(1) as usize)
                    .map_or(text.len(), |(b, _)| b);
        }
        offset += text.len();
    }
    sql.len()
}

/// The text of `sql` between two (line, column) places of the tokenizer.
pub(super) fn slice(sql: &str, start: (u64, u64), end: (u64, u64)) -> &str {
    let (a, b) = (offset(sql, start), offset(sql, end));
    if a <= b {
        &sql[a..b]
    } else {
        ""
    }
}
