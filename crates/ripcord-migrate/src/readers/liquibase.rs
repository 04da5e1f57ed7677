//! Liquibase formatted SQL: files that start with `--liquibase formatted sql`
//! and hold `--changeset author:id [attributes]` sections, each a change
//! named `author:id`. A section's `--rollback` lines and
//! `/* liquibase rollback … */` blocks are its down script.
//!
//! Which files: those a master changelog (`*.xml`, `*.yaml` or `*.yml` at the
//! top of the folder holding `databaseChangeLog`) includes, in its order
//! (`include file=` and `includeAll path=`); without one, every formatted SQL
//! file at the top of the folder, by name, as `includeAll` would take them.
//!
//! Attributes: `runInTransaction:false` runs the change outside a
//! transaction; `endDelimiter` (and `rollbackEndDelimiter`) ends statements
//! instead of `;`; `runOnChange:true` makes the change repeatable (it runs
//! again when edited) and `runAlways:true` runs it on every `up`;
//! `splitStatements`, `stripComments`, `context`, `labels` and
//! `logicalFilePath` are accepted. What would change what runs and that
//! ripcord does not do (preconditions, `--property`, `failOnError:false`,
//! `runWith`, a `dbms` other than PostgreSQL or SQLite, a rollback that
//! names another changeset) is refused with its file and line.

use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::{list, walk};
use crate::error::{Error, Result};
use crate::plan::{Change, Format, Plan};
use crate::script::{read_text, Script};

const HINT: &str = "a Liquibase formatted SQL file starts with `--liquibase formatted sql`, then \
                    `--changeset author:id [runInTransaction:false] [endDelimiter:X] \
                    [runOnChange:true] [runAlways:true]` sections with their SQL and \
                    `--rollback SQL` lines";

/// Whether `text` is a formatted SQL changelog: its first non-blank line is
/// `--liquibase formatted …`, as Liquibase decides.
pub(crate) fn is_formatted_sql(text: &str) -> bool {
    let Some(first) = text.lines().find(|l| !l.trim().is_empty()) else {
        return false;
    };
    let Some(rest) = first.trim_start().strip_prefix("--") else {
        return false;
    };
    let rest = rest.trim_start();
    rest.get(..9)
        .is_some_and(|w| w.eq_ignore_ascii_case("liquibase"))
        && rest[9..]
            .trim_start()
            .get(..9)
            .is_some_and(|w| w.eq_ignore_ascii_case("formatted"))
}

/// Whether `text` is a master changelog in XML or YAML.
pub(crate) fn is_master(name: &str, text: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    (lower.ends_with(".xml") || lower.ends_with(".yaml") || lower.ends_with(".yml"))
        && text.contains("databaseChangeLog")
}

pub(super) fn read(dir: &Path) -> Result<Plan> {
    let entries = list(dir)?;
    let masters: Vec<_> = entries
        .iter()
        .filter(|e| !e.is_dir)
        .filter(|e| {
            let lower = e.name.to_ascii_lowercase();
            (lower.ends_with(".xml") || lower.ends_with(".yaml") || lower.ends_with(".yml"))
                && read_text(&e.path).is_ok_and(|t| is_master(&e.name, &t))
        })
        .collect();
    let files: Vec<(PathBuf, String)> = match masters.as_slice() {
        [] => {
            let mut files = Vec::new();
            for e in entries
                .iter()
                .filter(|e| !e.is_dir && e.name.ends_with(".sql"))
            {
                if is_formatted_sql(&read_text(&e.path)?) {
                    files.push((e.path.clone(), e.name.clone()));
                }
            }
            files
        }
        [master] => includes(dir, &master.path)?,
        [first, second, ..] => {
            return Err(Error::misnamed(
                dir,
                format!("two master changelogs, {} and {}", first.name, second.name),
                "keep one master changelog in the migrations folder",
            ))
        }
    };
    let mut changes = Vec::new();
    for (path, logical) in files {
        changes.extend(read_file(&path, &logical)?);
    }
    Ok(Plan {
        format: Format::Liquibase,
        changes,
        phases: Vec::new(),
    })
}

/// The formatted SQL files a master changelog includes, in its order, each
/// with the path Liquibase records for it (relative to the folder).
fn includes(dir: &Path, master: &Path) -> Result<Vec<(PathBuf, String)>> {
    let text = read_text(master)?;
    let xml = master
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"));
    let mut files = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let bad = |detail: String| {
            Error::malformed(
                master,
                line_no,
                detail,
                "the master changelog may only include formatted SQL files (`include file=`) \
                 and folders of them (`includeAll path=`)",
            )
        };
        let (kind, value) = if xml {
            let t = line.trim();
            if t.starts_with("<changeSet") {
                return Err(bad(
                    "changesets written in XML are not read; only formatted SQL changelogs are"
                        .into(),
                ));
            }
            if t.starts_with("<includeAll") {
                ("all", xml_attribute(t, "path"))
            } else if t.starts_with("<include") {
                ("file", xml_attribute(t, "file"))
            } else {
                continue;
            }
        } else {
            let t = line.trim().trim_start_matches('-').trim();
            if t.starts_with("changeSet:") {
                return Err(bad(
                    "changesets written in YAML are not read; only formatted SQL changelogs are"
                        .into(),
                ));
            }
            let Some((key, value)) = t.split_once(':') else {
                continue;
            };
            match key.trim() {
                "file" => ("file", Some(unquote(value.trim()).to_string())),
                "path" => ("all", Some(unquote(value.trim()).to_string())),
                _ => continue,
            }
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Err(bad(format!("an include without its {kind}")));
        };
        let rel = value
            .trim_start_matches("classpath:")
            .trim_start_matches('/');
        let path = dir.join(rel);
        if kind == "file" {
            if !path.is_file() {
                return Err(bad(format!("{value} does not exist")));
            }
            if !is_formatted_sql(&read_text(&path)?) {
                return Err(bad(format!(
                    "{value} is not a formatted SQL changelog (its first line is not \
                     `--liquibase formatted sql`)"
                )));
            }
            files.push((path, rel.to_string()));
        } else {
            if !path.is_dir() {
                return Err(bad(format!("{value} is not a folder")));
            }
            for f in walk(&path)? {
                if f.name.ends_with(".sql") && is_formatted_sql(&read_text(&f.path)?) {
                    let shown = f.path.strip_prefix(dir).unwrap_or(&f.path);
                    files.push((f.path.clone(), shown.display().to_string()));
                }
            }
        }
    }
    Ok(files)
}

fn xml_attribute(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!("{name}="))? + name.len() + 1;
    let rest = &tag[at..];
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let end = rest[1..].find(quote)?;
    Some(rest[1..1 + end].to_string())
}

fn unquote(s: &str) -> &str {
    s.trim_matches(|c| c == '"' || c == '\'')
}

/// One changeset while its lines are read.
struct Section {
    line: usize,
    author: String,
    id: String,
    body: String,
    rollback: String,
    end_delimiter: Option<String>,
    rollback_end_delimiter: Option<String>,
    no_transaction: bool,
    run_on_change: bool,
    run_always: bool,
    ignore: bool,
    logical: Option<String>,
    /// `--rollback changesetId:… changesetAuthor:…`: another changeset of
    /// this file whose SQL undoes this one, and the line that names it.
    rollback_ref: Option<(String, String, usize)>,
}

/// The changesets of one formatted SQL file; `logical` is the path
/// Liquibase records for it.
fn read_file(path: &Path, logical: &str) -> Result<Vec<Change>> {
    let text = read_text(path)?;
    let malformed = |line: usize, detail: String| Error::malformed(path, line, detail, HINT);
    let mut sections: Vec<Section> = Vec::new();
    let mut file_logical: Option<String> = None;
    let mut lines = text.lines().enumerate();
    let mut header_seen = false;
    while let Some((i, line)) = lines.next() {
        let line_no = i + 1;
        let found = directive(line);
        if !header_seen {
            if line.trim().is_empty() {
                continue;
            }
            header_seen = true;
            // The header may name the file as Liquibase should record it.
            file_logical = attribute(line, "logicalFilePath");
            continue;
        }
        match found {
            Some(("changeset", rest)) => {
                let (author, id) = author_id(rest)
                    .ok_or_else(|| malformed(line_no, "expected `--changeset author:id`".into()))?;
                let mut s = Section {
                    line: line_no,
                    author,
                    id,
                    body: String::new(),
                    rollback: String::new(),
                    end_delimiter: None,
                    rollback_end_delimiter: None,
                    no_transaction: false,
                    run_on_change: false,
                    run_always: false,
                    ignore: false,
                    logical: None,
                    rollback_ref: None,
                };
                for (key, value) in attributes(rest) {
                    let flag = |v: &str| -> Result<bool> {
                        match v.to_ascii_lowercase().as_str() {
                            "true" => Ok(true),
                            "false" => Ok(false),
                            _ => Err(malformed(
                                line_no,
                                format!("{key}:{v}: expected true or false"),
                            )),
                        }
                    };
                    match key.to_ascii_lowercase().as_str() {
                        "runintransaction" => s.no_transaction = !flag(&value)?,
                        "runonchange" => s.run_on_change = flag(&value)?,
                        "runalways" => s.run_always = flag(&value)?,
                        "splitstatements" | "stripcomments" | "rollbacksplitstatements" => {
                            flag(&value)?;
                        }
                        "enddelimiter" => s.end_delimiter = Some(value),
                        "rollbackenddelimiter" => s.rollback_end_delimiter = Some(value),
                        "logicalfilepath" => s.logical = Some(value),
                        "context" | "contextfilter" | "labels" => {}
                        "ignore" => s.ignore = flag(&value)?,
                        "dbms" => {
                            let wanted = value.to_ascii_lowercase();
                            let ours = wanted
                                .split(',')
                                .any(|d| matches!(d.trim(), "postgresql" | "sqlite" | "all"));
                            if !ours {
                                return Err(malformed(
                                    line_no,
                                    format!(
                                        "dbms:{value}: this changeset is not for PostgreSQL or \
                                         SQLite, and ripcord does not skip changesets by dbms"
                                    ),
                                ));
                            }
                        }
                        "failonerror" if !flag(&value)? => {
                            return Err(malformed(
                                line_no,
                                "failOnError:false is not supported: a failing change is \
                                 always undone"
                                    .into(),
                            ))
                        }
                        "failonerror" => {}
                        "runwith" if value.eq_ignore_ascii_case("jdbc") => {}
                        _ => {
                            return Err(malformed(
                                line_no,
                                format!("unknown or unsupported changeset attribute {key}:{value}"),
                            ))
                        }
                    }
                }
                sections.push(s);
            }
            Some(("rollback", rest)) => {
                let s = sections.last_mut().ok_or_else(|| {
                    malformed(line_no, "--rollback before the first --changeset".into())
                })?;
                let lower = rest.trim().to_ascii_lowercase();
                if lower.starts_with("changesetid:") || lower.starts_with("changesetauthor:") {
                    // The rollback is another changeset's SQL, run again.
                    let attrs = attributes(&format!("x:x {rest}"));
                    let get = |k: &str| {
                        attrs
                            .iter()
                            .find(|(key, _)| key.eq_ignore_ascii_case(k))
                            .map(|(_, v)| v.clone())
                    };
                    if get("changesetPath")
                        .is_some_and(|p| p != logical && !logical.ends_with(&format!("/{p}")))
                    {
                        return Err(malformed(
                            line_no,
                            "a rollback that names a changeset of another file is not supported"
                                .into(),
                        ));
                    }
                    let (Some(id), Some(author)) = (get("changesetId"), get("changesetAuthor"))
                    else {
                        return Err(malformed(
                            line_no,
                            "a rollback naming a changeset needs changesetId: and changesetAuthor:"
                                .into(),
                        ));
                    };
                    s.rollback_ref = Some((author, id, line_no));
                    continue;
                }
                // `not required` and `empty`: nothing to run; the change is
                // then put back from its safety snapshot where it has one.
                if lower != "not required" && lower != "empty" {
                    s.rollback.push_str(rest);
                    s.rollback.push('\n');
                }
            }
            Some(("rollback-block", _)) => {
                let s = sections.last_mut().ok_or_else(|| {
                    malformed(
                        line_no,
                        "a rollback block before the first --changeset".into(),
                    )
                })?;
                let mut closed = false;
                for (_, inner) in lines.by_ref() {
                    let t = inner.trim_end();
                    if let Some(before) = t.strip_suffix("*/") {
                        if !before.trim().is_empty() {
                            s.rollback.push_str(before);
                            s.rollback.push('\n');
                        }
                        closed = true;
                        break;
                    }
                    s.rollback.push_str(inner);
                    s.rollback.push('\n');
                }
                if !closed {
                    return Err(malformed(
                        line_no,
                        "the /* liquibase rollback block has no closing */".into(),
                    ));
                }
            }
            Some(("comment", _)) | Some(("validchecksum", _)) => {
                if sections.is_empty() {
                    return Err(malformed(
                        line_no,
                        "--comment outside a changeset; put it after its --changeset line".into(),
                    ));
                }
            }
            Some(("ignorelines", rest)) => {
                let arg = rest.trim();
                if arg.eq_ignore_ascii_case("start") {
                    let mut closed = false;
                    for (_, inner) in lines.by_ref() {
                        if matches!(directive(inner), Some(("ignorelines", a)) if a.trim().eq_ignore_ascii_case("end"))
                        {
                            closed = true;
                            break;
                        }
                    }
                    if !closed {
                        return Err(malformed(
                            line_no,
                            "--ignoreLines:start has no --ignoreLines:end".into(),
                        ));
                    }
                } else {
                    let n: usize = arg.parse().map_err(|_| {
                        malformed(
                            line_no,
                            format!("--ignoreLines:{arg}: expected a count, start or end"),
                        )
                    })?;
                    for _ in 0..n {
                        lines.next();
                    }
                }
            }
            Some((what @ ("include" | "includeall"), _)) => {
                return Err(malformed(
                    line_no,
                    format!(
                        "--{what} in a SQL changelog is not read; list the files in a master \
                         changelog (include file=) instead"
                    ),
                ))
            }
            Some((what @ ("preconditions" | "precondition" | "property"), _)) => {
                return Err(malformed(
                    line_no,
                    format!("--{what} is not supported: ripcord runs every changeset as written"),
                ))
            }
            _ => match sections.last_mut() {
                Some(s) => {
                    s.body.push_str(line);
                    s.body.push('\n');
                }
                None if crate::script::is_blank(line) => {}
                None => {
                    return Err(malformed(
                        line_no,
                        "SQL before the first --changeset belongs to no changeset".into(),
                    ))
                }
            },
        }
    }
    // Rollbacks that name another changeset take its SQL.
    for i in 0..sections.len() {
        let Some((author, id, line)) = sections[i].rollback_ref.clone() else {
            continue;
        };
        let body = sections
            .iter()
            .find(|o| o.author == author && o.id == id)
            .map(|o| o.body.clone())
            .ok_or_else(|| {
                malformed(
                    line,
                    format!(
                        "the rollback names changeset {author}:{id}, which this file does not have"
                    ),
                )
            })?;
        sections[i].rollback.push_str(&body);
    }
    let mut changes = Vec::new();
    for s in sections {
        if s.ignore {
            continue;
        }
        let name = format!("{}:{}", s.author, s.id);
        if s.body.trim().is_empty() {
            return Err(malformed(s.line, format!("changeset {name} has no SQL")));
        }
        // Blank lines between changesets belong to neither.
        let up = delimited(&tidy(&s.body), s.end_delimiter.as_deref());
        let mut change = Change::new(name, Script::new(path, up));
        if !s.rollback.trim().is_empty() {
            let delimiter = s
                .rollback_end_delimiter
                .as_deref()
                .or(s.end_delimiter.as_deref());
            change.down = Some(Script::new(path, delimited(&tidy(&s.rollback), delimiter)));
        }
        change.no_transaction = s.no_transaction;
        change.repeatable = s.run_on_change || s.run_always;
        change.run_always = s.run_always;
        change.source = Some(
            s.logical
                .or_else(|| file_logical.clone())
                .unwrap_or_else(|| logical.to_string()),
        );
        change.tool_checksum = Some(checksum_v9(&s.body));
        changes.push(change);
    }
    Ok(changes)
}

fn tidy(sql: &str) -> String {
    format!("{}\n", sql.trim_end())
}

/// A Liquibase directive line: `--changeset …`, `--rollback …`, `--comment …`
/// and the others, as `(lowercase keyword, rest)`; `("rollback-block", "")`
/// for the line that opens `/* liquibase rollback`.
fn directive(line: &str) -> Option<(&'static str, &str)> {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix("/*") {
        let mut words = rest.split_whitespace();
        let is_block = words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("liquibase"))
            && words
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("rollback"))
            && words.next().is_none();
        return is_block.then_some(("rollback-block", ""));
    }
    let rest = t.strip_prefix("--")?.trim_start();
    const WORDS: [(&str, &str); 11] = [
        ("changeset", "changeset"),
        ("rollback", "rollback"),
        ("comment", "comment"),
        ("validchecksum", "validchecksum"),
        ("ignorelines:", "ignorelines"),
        ("preconditions", "preconditions"),
        ("precondition-", "precondition"),
        ("property", "property"),
        ("includeall", "includeall"),
        ("include", "include"),
        ("liquibase", "liquibase"),
    ];
    for (prefix, keyword) in WORDS {
        let Some(head) = rest.get(..prefix.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(prefix) {
            continue;
        }
        let after = &rest[prefix.len()..];
        // A keyword is a whole word: `--rollbacks` or `--commentary` are
        // ordinary comments.
        let whole = prefix.ends_with([':', '-'])
            || after.is_empty()
            || after.starts_with(char::is_whitespace)
            || (keyword == "comment" || keyword == "validchecksum") && after.starts_with(':');
        if !whole {
            continue;
        }
        let after = if keyword == "comment" || keyword == "validchecksum" {
            after.strip_prefix(':').unwrap_or(after)
        } else {
            after
        };
        if keyword == "liquibase" {
            return None;
        }
        return Some((keyword, after.strip_prefix(' ').unwrap_or(after)));
    }
    None
}

/// `author:id` at the start of a changeset line; a part in double quotes may
/// hold blanks and colons.
fn author_id(rest: &str) -> Option<(String, String)> {
    let rest = rest.trim_start();
    let (author, after) = if let Some(q) = rest.strip_prefix('"') {
        let end = q.find('"')?;
        (&q[..end], q[end + 1..].strip_prefix(':')?)
    } else {
        // As Liquibase reads it: everything up to the first colon, blanks
        // and all.
        let colon = rest.find(':')?;
        (rest[..colon].trim(), &rest[colon + 1..])
    };
    let after = after.trim_start();
    let id = if let Some(q) = after.strip_prefix('"') {
        &q[..q.find('"')?]
    } else {
        after.split_whitespace().next()?
    };
    if id.replace(':', "").trim().is_empty() || author.trim().is_empty() {
        return None;
    }
    Some((author.to_string(), id.to_string()))
}

/// The `key:value` attributes after `author:id` on a changeset line.
fn attributes(rest: &str) -> Vec<(String, String)> {
    let rest = rest.trim_start();
    // Skip author:id, quotes and all.
    let mut quoted = false;
    let mut colon_seen = false;
    let mut start = rest.len();
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => colon_seen = true,
            c if c.is_whitespace() && !quoted && colon_seen => {
                start = i;
                break;
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut rest = rest[start..].trim_start();
    while !rest.is_empty() {
        let end = token_end(rest);
        let token = &rest[..end];
        if let Some((k, v)) = token.split_once(':') {
            out.push((k.to_string(), unquote(v).to_string()));
        } else {
            out.push((token.to_string(), String::new()));
        }
        rest = rest[end..].trim_start();
    }
    out
}

/// Where a blank-separated token ends, a `"…"` part taken whole.
fn token_end(s: &str) -> usize {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return i,
            _ => {}
        }
    }
    s.len()
}

/// The value of `key:` on a line, if there.
fn attribute(line: &str, key: &str) -> Option<String> {
    attributes(&format!("x:x {line}"))
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The SQL with statements ended by `;`: an `endDelimiter` other than `;`
/// (`GO`, `/`, `$$`) that ends a line becomes `;`, as Liquibase would have
/// cut the statements there.
fn delimited(sql: &str, delimiter: Option<&str>) -> String {
    let Some(d) = delimiter.filter(|d| !d.is_empty() && *d != ";") else {
        return sql.to_string();
    };
    // Liquibase reads `\n` in the attribute as a line break.
    let d = d.replace("\\n", "\n");
    let d = d.trim();
    let mut out = String::with_capacity(sql.len());
    // A word (`GO`) ends a statement only as a word of its own.
    let word = d.chars().all(char::is_alphanumeric);
    for line in sql.split_inclusive('\n') {
        let cut = line.trim_end().strip_suffix(d).filter(|before| {
            !word || before.trim().is_empty() || before.ends_with(char::is_whitespace)
        });
        match cut {
            Some(before) => {
                out.push_str(before);
                out.push_str(";\n");
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The MD5SUM Liquibase 4.24 and later (checksum version 9) records for a
/// formatted SQL changeset: the MD5 of its SQL without blanks, then the MD5
/// of that checksum followed by `:`.
pub(crate) fn checksum_v9(body: &str) -> String {
    let compact: Vec<u8> = body
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        .collect();
    let inner = format!("9:{}:", hex(&Md5::digest(&compact)));
    format!("9:{}", hex(&Md5::digest(inner.as_bytes())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives() {
        assert_eq!(
            directive("--changeset ann:1 runInTransaction:false"),
            Some(("changeset", "ann:1 runInTransaction:false"))
        );
        assert_eq!(
            directive("  -- rollback drop table t;"),
            Some(("rollback", "drop table t;"))
        );
        assert_eq!(directive("--comment: why"), Some(("comment", "why")));
        assert_eq!(directive("--rollbacks are fun"), None);
        assert_eq!(directive("-- a comment"), None);
        assert_eq!(
            directive("/* liquibase rollback"),
            Some(("rollback-block", ""))
        );
        assert_eq!(directive("/* liquibase rollback x */"), None);
    }

    #[test]
    fn author_and_id() {
        assert_eq!(
            author_id("ann:1 runAlways:true"),
            Some(("ann".into(), "1".into()))
        );
        assert_eq!(
            author_id("\"Ann Lee\":create-users"),
            Some(("Ann Lee".into(), "create-users".into()))
        );
        assert_eq!(
            author_id("John Doe:1:2"),
            Some(("John Doe".into(), "1:2".into()))
        );
        assert_eq!(author_id("ann"), None);
        assert_eq!(author_id("ann:"), None);
        assert_eq!(
            attributes("ann:1 runInTransaction:false context:\"a and b\""),
            vec![
                ("runInTransaction".to_string(), "false".to_string()),
                ("context".to_string(), "a and b".to_string())
            ]
        );
    }

    #[test]
    fn end_delimiters_become_semicolons() {
        assert_eq!(
            delimited("select 1\nGO\nselect 2\nGO\n", Some("GO")),
            "select 1\n;\nselect 2\n;\n"
        );
        assert_eq!(delimited("select 1;\n", None), "select 1;\n");
        assert_eq!(delimited("select 1 /\n", Some("/")), "select 1 ;\n");
    }

    #[test]
    fn header() {
        assert!(is_formatted_sql("\n--liquibase formatted sql\n"));
        assert!(is_formatted_sql("-- Liquibase Formatted SQL\n"));
        assert!(!is_formatted_sql(
            "-- a comment\n--liquibase formatted sql\n"
        ));
        assert!(!is_formatted_sql("select 1;\n"));
    }
}
