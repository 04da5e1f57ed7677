//! The psql part of a script: meta-commands and variable interpolation,
//! resolved before anything runs, so that what is left is SQL for ripcord's
//! own connection and transaction.
//!
//! The scanner follows psql's lexer where it matters: a `:name`, a `;` or a
//! backslash means nothing inside a quoted string (`'…'`, `E'…'`), a quoted
//! identifier, a dollar quote or a comment. Lines are kept: a meta-command
//! becomes an empty line and a skipped `\if` branch keeps its line breaks,
//! so database errors point at the file's own lines (an `\i` adds the
//! included lines).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Put in front of a query whose result rows are statements to run
/// (`\gexec`); the engine runs such a statement with [`crate::psql::gexec`].
pub const GEXEC_MARKER: &str = "/*ripcord:gexec*/";

/// The meta-commands that are interpreted; any other one is refused.
const SUPPORTED: &[&str] = &[
    "set",
    "unset",
    "if",
    "elif",
    "else",
    "endif",
    "i",
    "include",
    "ir",
    "include_relative",
    "echo",
    "qecho",
    "warn",
    "q",
    "quit",
    "gexec",
];

/// How deep `\i` may nest: psql has no limit, but a file including itself
/// must stop.
const MAX_DEPTH: usize = 32;

/// A script with its psql parts resolved.
#[derive(Debug, Default)]
pub struct Expanded {
    pub sql: String,
    /// What `\echo`, `\qecho` and `\warn` print, as `file:line: text`.
    pub messages: Vec<String>,
}

/// Resolves the psql parts of `text`, read from `path`. `vars` are the
/// variables set before the script starts; `base` is the folder `\i` paths
/// are relative to (psql's working folder).
pub fn expand(
    path: &Path,
    text: &str,
    vars: &BTreeMap<String, String>,
    base: &Path,
) -> Result<Expanded> {
    let mut x = Expander {
        vars: vars.clone(),
        base: base.to_path_buf(),
        out: String::with_capacity(text.len()),
        buffer_start: 0,
        previous: None,
        messages: Vec::new(),
        depth: 0,
    };
    x.file(path, text)?;
    Ok(Expanded {
        sql: x.out,
        messages: x.messages,
    })
}

struct Expander {
    vars: BTreeMap<String, String>,
    base: PathBuf,
    out: String,
    /// Where the statement being written started in `out` (after the last `;`).
    buffer_start: usize,
    /// The last statement sent, for a `\gexec` on an empty buffer.
    previous: Option<String>,
    messages: Vec<String>,
    depth: usize,
}

/// A `\if` block of the file being read.
struct Branch {
    line: usize,
    /// This branch runs.
    active: bool,
    /// A branch of the block ran already (or the block sits in a skipped
    /// branch): the later ones do not.
    done: bool,
    in_else: bool,
}

enum Flow {
    Go,
    Quit,
}

/// One file being scanned.
struct Cursor<'a> {
    path: &'a Path,
    text: &'a str,
    at: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn peek(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn line(&self) -> usize {
        self.line_at(self.at)
    }

    fn line_at(&self, at: usize) -> usize {
        self.text[..at].matches('\n').count() + 1
    }

    fn error(&self, line: usize, detail: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::malformed(self.path, line, detail, hint)
    }
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c as u32 >= 0x80
}

impl Expander {
    fn file(&mut self, path: &Path, text: &str) -> Result<Flow> {
        let mut cur = Cursor { path, text, at: 0 };
        let mut branches: Vec<Branch> = Vec::new();
        let mut parens = 0usize;
        while let Some(c) = cur.peek(0) {
            let active = branches.last().is_none_or(|b| b.active);
            let start = cur.at;
            match c {
                '-' if cur.rest().starts_with("--") => {
                    let end = cur.rest().find('\n').map_or(text.len(), |i| cur.at + i);
                    cur.at = end;
                }
                '/' if cur.rest().starts_with("/*") => {
                    let mut depth = 0usize;
                    let bytes = text.as_bytes();
                    let mut i = cur.at;
                    while i < bytes.len() {
                        if bytes[i..].starts_with(b"/*") {
                            depth += 1;
                            i += 2;
                        } else if bytes[i..].starts_with(b"*/") {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        } else {
                            i += 1;
                        }
                    }
                    cur.at = i.min(bytes.len());
                }
                '\'' => {
                    let mut back = text[..cur.at].chars().rev();
                    let (p, pp) = (back.next(), back.next());
                    let escapes = matches!(p, Some('e' | 'E')) && !pp.is_some_and(ident_char);
                    cur.at = quoted_end(text, cur.at, '\'', escapes);
                }
                '"' => cur.at = quoted_end(text, cur.at, '"', false),
                '$' => {
                    let prev = text[..cur.at].chars().next_back();
                    match dollar_tag(cur.rest()).filter(|_| !prev.is_some_and(ident_char)) {
                        Some(tag) => {
                            let body = cur.at + tag.len();
                            cur.at = text[body..]
                                .find(tag)
                                .map_or(text.len(), |i| body + i + tag.len());
                        }
                        None => cur.at += 1,
                    }
                }
                ':' => {
                    if cur.rest().starts_with("::") {
                        cur.at += 2;
                    } else if active {
                        if let Some((value, quote, len)) = self.reference(&cur)? {
                            let text = match quote {
                                Some('\'') => literal(&value),
                                Some(_) => identifier(&value),
                                None => value,
                            };
                            self.out.push_str(&text);
                            cur.at += len;
                            continue;
                        }
                        cur.at += 1;
                    } else {
                        cur.at += 1;
                    }
                }
                '(' => {
                    parens += 1;
                    cur.at += 1;
                }
                ')' => {
                    parens = parens.saturating_sub(1);
                    cur.at += 1;
                }
                ';' if parens == 0 => {
                    cur.at += 1;
                    if active {
                        self.out.push(';');
                        self.end_statement();
                        continue;
                    }
                }
                '\\' => {
                    if let Flow::Quit = self.meta(&mut cur, &mut branches)? {
                        return Ok(Flow::Quit);
                    }
                    continue;
                }
                c => cur.at += c.len_utf8(),
            }
            let piece = &text[start..cur.at];
            if active {
                self.out.push_str(piece);
            } else {
                self.out.extend(piece.chars().filter(|&c| c == '\n'));
            }
        }
        if let Some(open) = branches.first() {
            return Err(cur.error(
                open.line,
                "\\if has no matching \\endif before the end of the file",
                "close every \\if with \\endif in the same file, as psql requires",
            ));
        }
        Ok(Flow::Go)
    }

    /// The statement being written was sent (a `;` or `\gexec`).
    fn end_statement(&mut self) {
        let sent = self.out[self.buffer_start..].trim();
        if !sent.trim_end_matches(';').trim().is_empty() {
            self.previous = Some(sent.trim_end_matches(';').to_string());
        }
        self.buffer_start = self.out.len();
    }

    /// `:name`, `:'name'`, `:"name"` or `:{?name}` at the cursor: the variable's value,
    /// the quote used (if any) and the length of the reference. `None` for
    /// a colon that is not a reference, and for an undefined `:name`, which
    /// psql leaves as written; an undefined quoted reference is an error.
    fn reference(&self, cur: &Cursor) -> Result<Option<(String, Option<char>, usize)>> {
        let after = &cur.rest()[1..];
        // `:{?name}`: whether the variable is set.
        if let Some(inner) = after.strip_prefix("{?") {
            let name: String = inner.chars().take_while(|&c| ident_char(c)).collect();
            if !name.is_empty() && inner[name.len()..].starts_with('}') {
                let set = if self.vars.contains_key(&name) {
                    "TRUE"
                } else {
                    "FALSE"
                };
                return Ok(Some((set.to_string(), None, name.len() + 4)));
            }
            return Ok(None);
        }
        if let Some(q @ ('\'' | '"')) = after.chars().next() {
            let name: String = after[1..].chars().take_while(|&c| ident_char(c)).collect();
            if name.is_empty() || !after[1 + name.len()..].starts_with(q) {
                return Ok(None);
            }
            let Some(value) = self.vars.get(&name) else {
                return Err(cur.error(
                    cur.line(),
                    format!("variable {name} is not set (used as :{q}{name}{q})"),
                    format!(
                        "set it with \\set {name} VALUE in the script, with --set {name}=VALUE, \
                         or in sqitch.conf [core.variables]"
                    ),
                ));
            };
            return Ok(Some((value.clone(), Some(q), name.len() + 3)));
        }
        let name: String = after.chars().take_while(|&c| ident_char(c)).collect();
        if name.is_empty() {
            return Ok(None);
        }
        Ok(self
            .vars
            .get(&name)
            .map(|value| (value.clone(), None, name.len() + 1)))
    }

    /// A backslash command at the cursor, up to the end of its line (or a
    /// `\\` separator, after which SQL goes on).
    fn meta(&mut self, cur: &mut Cursor, branches: &mut Vec<Branch>) -> Result<Flow> {
        let line = cur.line();
        let active = branches.last().is_none_or(|b| b.active);
        let name: String = cur.rest()[1..]
            .chars()
            .take_while(|&c| !c.is_whitespace() && c != '\\')
            .collect();
        cur.at += 1 + name.len();
        if !SUPPORTED.contains(&name.as_str()) {
            let shown = if name.is_empty() { "\\" } else { &name };
            return Err(cur.error(
                line,
                format!("psql meta-command \\{shown} is not supported"),
                "ripcord interprets \\set, \\unset, \\if/\\elif/\\else/\\endif, \\i, \\ir, \
                 \\echo, \\qecho, \\warn, \\q and \\gexec; do the rest in SQL, or in a step \
                 outside the migration",
            ));
        }
        // Branch bookkeeping needs the arguments only where they are evaluated.
        let evaluate = match name.as_str() {
            "if" => active,
            "elif" => branches.last().is_some_and(|b| !b.done && !b.in_else),
            _ => active,
        };
        let args = if evaluate {
            self.arguments(cur)?
        } else {
            skip_arguments(cur);
            Vec::new()
        };
        let no_if = |what: &str| {
            cur.error(
                line,
                format!("\\{what} without a matching \\if"),
                "open the block with \\if in the same file",
            )
        };
        match name.as_str() {
            "if" => {
                let value = if active {
                    bool_arg(cur, line, &args)?
                } else {
                    false
                };
                branches.push(Branch {
                    line,
                    active: active && value,
                    done: !active || value,
                    in_else: false,
                });
            }
            "elif" => {
                let b = branches.last().ok_or_else(|| no_if("elif"))?;
                if b.in_else {
                    return Err(cur.error(line, "\\elif after \\else", "put \\else last"));
                }
                let value = if b.done {
                    false
                } else {
                    bool_arg(cur, line, &args)?
                };
                let b = branches.last_mut().ok_or_else(|| no_if("elif"))?;
                b.active = value;
                b.done |= value;
            }
            "else" => {
                let b = branches.last_mut().ok_or_else(|| no_if("else"))?;
                if b.in_else {
                    return Err(cur.error(line, "a second \\else", "keep one \\else per \\if"));
                }
                b.in_else = true;
                b.active = !b.done;
                b.done = true;
            }
            "endif" => {
                branches.pop().ok_or_else(|| no_if("endif"))?;
            }
            _ if !active => {}
            "set" => {
                let mut args = args.into_iter();
                if let Some(var) = args.next() {
                    if !var.chars().all(ident_char) {
                        return Err(cur.error(
                            line,
                            format!("invalid variable name {var:?}"),
                            "variable names hold letters, digits and _",
                        ));
                    }
                    let value: String = args.collect();
                    self.vars.insert(var, value);
                }
            }
            "unset" => {
                let var = args.into_iter().next().ok_or_else(|| {
                    cur.error(line, "\\unset needs a variable name", "\\unset NAME")
                })?;
                self.vars.remove(&var);
            }
            "echo" | "qecho" | "warn" => {
                let words = match args.split_first() {
                    Some((n, rest)) if n == "-n" => rest,
                    _ => args.as_slice(),
                };
                self.messages.push(format!(
                    "{}:{line}: {}",
                    cur.path.display(),
                    words.join(" ")
                ));
            }
            "q" | "quit" => return Ok(Flow::Quit),
            "i" | "include" | "ir" | "include_relative" => {
                let file = args.into_iter().next().ok_or_else(|| {
                    cur.error(line, format!("\\{name} needs a file name"), "\\i FILE")
                })?;
                let relative_to = if name.starts_with("ir") || name == "include_relative" {
                    cur.path.parent().unwrap_or(Path::new(".")).to_path_buf()
                } else {
                    self.base.clone()
                };
                let target = relative_to.join(&file);
                if self.depth >= MAX_DEPTH {
                    return Err(cur.error(
                        line,
                        format!("\\{name} {file}: files include each other too deeply"),
                        "an included file must not include itself",
                    ));
                }
                let included = crate::script::read_text(&target).map_err(|e| {
                    cur.error(
                        line,
                        format!("\\{name} {file}: {e}"),
                        format!(
                            "\\i reads paths relative to {}, \\ir relative to the script's folder",
                            self.base.display()
                        ),
                    )
                })?;
                self.depth += 1;
                let flow = self.file(&target, &included)?;
                self.depth -= 1;
                if let Flow::Quit = flow {
                    return Ok(Flow::Quit);
                }
            }
            "gexec" => {
                let buffer = self.out[self.buffer_start..].to_string();
                let lead = buffer.len() - buffer.trim_start().len();
                if buffer.trim().is_empty() {
                    let query = self.previous.clone().ok_or_else(|| {
                        cur.error(
                            line,
                            "\\gexec with no query before it",
                            "write the query that generates the statements before \\gexec",
                        )
                    })?;
                    self.out.push_str(GEXEC_MARKER);
                    self.out.push_str(&query);
                } else {
                    self.out.insert_str(self.buffer_start + lead, GEXEC_MARKER);
                }
                self.out.push(';');
                self.end_statement();
            }
            _ => unreachable!("every supported command is handled"),
        }
        Ok(Flow::Go)
    }

    /// The arguments of a meta-command, evaluated as psql does: words split
    /// at whitespace; `'…'` with psql's escapes, `"…"` kept with its quotes,
    /// `` `cmd` `` replaced by the command's output, variables interpolated;
    /// parts that touch make one word.
    fn arguments(&self, cur: &mut Cursor) -> Result<Vec<String>> {
        let line = cur.line();
        let mut args = Vec::new();
        loop {
            while cur
                .peek(0)
                .is_some_and(|c| c == ' ' || c == '\t' || c == '\r')
            {
                cur.at += 1;
            }
            match cur.peek(0) {
                None | Some('\n') => break,
                Some('\\') if cur.peek(1) == Some('\\') => {
                    cur.at += 2;
                    break;
                }
                _ => {}
            }
            let mut word = String::new();
            while let Some(c) = cur.peek(0) {
                match c {
                    ' ' | '\t' | '\r' | '\n' => break,
                    '\\' if cur.peek(1) == Some('\\') => break,
                    '\'' => {
                        let (value, len) = psql_string(cur.rest()).ok_or_else(|| {
                            cur.error(line, "unterminated quoted string", "close the quote")
                        })?;
                        word.push_str(&value);
                        cur.at += len;
                    }
                    '"' => {
                        let end = quoted_end(cur.text, cur.at, '"', false);
                        word.push_str(&cur.text[cur.at..end]);
                        cur.at = end;
                    }
                    '`' => {
                        let body_start = cur.at + 1;
                        let Some(len) = cur.text[body_start..].find('`') else {
                            return Err(cur.error(
                                line,
                                "unterminated backtick command",
                                "close the command with `",
                            ));
                        };
                        let mut command = String::new();
                        let mut inner = Cursor {
                            path: cur.path,
                            text: &cur.text[..body_start + len],
                            at: body_start,
                        };
                        while let Some(c) = inner.peek(0) {
                            if c == ':' {
                                if let Some((value, quote, n)) = self.reference(&inner)? {
                                    command.push_str(&match quote {
                                        Some('\'') => shell_quote(&value),
                                        Some(_) => identifier(&value),
                                        None => value,
                                    });
                                    inner.at += n;
                                    continue;
                                }
                            }
                            command.push(c);
                            inner.at += c.len_utf8();
                        }
                        word.push_str(&self.backtick(cur, line, &command)?);
                        cur.at = body_start + len + 1;
                    }
                    ':' => match self.reference(cur)? {
                        Some((value, quote, len)) => {
                            // In arguments :'name' is the value itself.
                            if quote == Some('"') {
                                word.push_str(&identifier(&value));
                            } else {
                                word.push_str(&value);
                            }
                            cur.at += len;
                        }
                        None => {
                            word.push(':');
                            cur.at += 1;
                        }
                    },
                    c => {
                        word.push(c);
                        cur.at += c.len_utf8();
                    }
                }
            }
            args.push(word);
        }
        Ok(args)
    }

    /// Runs a backtick command in the script's folder, as psql does from
    /// its own: its output without the last line break.
    fn backtick(&self, cur: &Cursor, line: usize, command: &str) -> Result<String> {
        let folder = cur
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let output = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(folder)
            .output()
            .map_err(|e| {
                cur.error(
                    line,
                    format!("cannot run backtick command `{command}`: {e}"),
                    "check that sh is installed",
                )
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(cur.error(
                line,
                format!(
                    "backtick command `{command}` failed ({}){}",
                    output.status,
                    match stderr.trim() {
                        "" => String::new(),
                        s => format!(": {s}"),
                    }
                ),
                format!(
                    "the command runs in {}; fix it or set the variable with --set",
                    folder.display()
                ),
            ));
        }
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    }
}

/// Skips the arguments of a meta-command in a branch that does not run.
fn skip_arguments(cur: &mut Cursor) {
    let rest = cur.rest();
    let end = rest.find('\n').unwrap_or(rest.len());
    cur.at += rest[..end].find("\\\\").map_or(end, |i| i + 2);
}

/// psql's boolean: a prefix of true/false/yes/no, on/off, 1/0, any case.
fn bool_arg(cur: &Cursor, line: usize, args: &[String]) -> Result<bool> {
    let value = args.join(" ");
    let v = value.trim().to_ascii_lowercase();
    let prefix = |word: &str, min: usize| v.len() >= min && word.starts_with(v.as_str());
    if prefix("true", 1) || prefix("yes", 1) || prefix("on", 2) || v == "1" {
        Ok(true)
    } else if prefix("false", 1) || prefix("no", 1) || prefix("off", 2) || v == "0" {
        Ok(false)
    } else {
        Err(cur.error(
            line,
            format!("unrecognized value {value:?} for \\if expression: Boolean expected"),
            "psql's \\if takes true/false, on/off, yes/no or 1/0, usually from a variable",
        ))
    }
}

/// A quoted identifier holding `value`.
fn identifier(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// `value` quoted for sh.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// A SQL string literal holding `value`.
fn literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

/// The end of the quoted text starting at `at` (the quote itself), past the
/// closing quote; a doubled quote stays inside. `escapes`: a backslash
/// escapes the next character (`E'…'`).
fn quoted_end(text: &str, at: usize, quote: char, escapes: bool) -> usize {
    let mut chars = text[at + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        if escapes && c == '\\' {
            chars.next();
        } else if c == quote {
            if text[at + 1 + i + 1..].starts_with(quote) {
                chars.next();
            } else {
                return at + 1 + i + 1;
            }
        }
    }
    text.len()
}

/// `$tag$` or `$$` at the start of `rest`.
fn dollar_tag(rest: &str) -> Option<&str> {
    let inner = &rest[1..];
    let end = inner.find('$')?;
    let tag = &inner[..end];
    let valid = tag
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c as u32 >= 0x80)
        && !tag.starts_with(|c: char| c.is_ascii_digit());
    valid.then(|| &rest[..end + 2])
}

/// A single-quoted meta-command argument: its value (with psql's escapes)
/// and its length.
fn psql_string(rest: &str) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = rest.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => {
                if let Some(&(_, '\'')) = chars.peek() {
                    chars.next();
                    value.push('\'');
                } else {
                    return Some((value, i + 1));
                }
            }
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'b' => value.push('\u{8}'),
                    'r' => value.push('\r'),
                    'f' => value.push('\u{c}'),
                    '0'..='7' => {
                        let mut n = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            match chars.peek() {
                                Some(&(_, d @ '0'..='7')) => {
                                    n = n * 8 + d.to_digit(8).unwrap_or(0);
                                    chars.next();
                                }
                                _ => break,
                            }
                        }
                        value.extend(char::from_u32(n));
                    }
                    other => value.push(other),
                }
            }
            c => value.push(c),
        }
    }
    None
}
