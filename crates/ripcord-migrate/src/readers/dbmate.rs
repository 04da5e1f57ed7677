//! dbmate: one `<version>_<name>.sql` per change, holding a `-- migrate:up`
//! section and optionally a `-- migrate:down` one, in file-name order as
//! dbmate runs them. `transaction:false` on a marker line runs the change
//! outside a transaction.

use std::path::Path;

use super::list;
use crate::error::{Error, Result};
use crate::plan::{Change, Format, Plan};
use crate::script::{is_blank, read_text, Script};

const HINT: &str = "a dbmate migration holds `-- migrate:up`, its SQL, then optionally \
                    `-- migrate:down` and the SQL that undoes it";

#[derive(Clone, Copy, PartialEq)]
enum Marker {
    Up,
    Down,
}

/// Reads a marker line; returns its kind and whether it asks for no transaction.
fn marker(line: &str) -> Option<(Marker, bool)> {
    let rest = line.strip_prefix("--")?.trim_start();
    let (kind, options) = if let Some(o) = rest.strip_prefix("migrate:up") {
        (Marker::Up, o)
    } else {
        (Marker::Down, rest.strip_prefix("migrate:down")?)
    };
    if !options.is_empty() && !options.starts_with(char::is_whitespace) {
        return None;
    }
    Some((
        kind,
        options.split_whitespace().any(|o| o == "transaction:false"),
    ))
}

/// Whether `text` has a `-- migrate:up` line, which makes it a dbmate file.
pub(crate) fn has_marker(text: &str) -> bool {
    text.lines()
        .any(|l| matches!(marker(l.trim_end()), Some((Marker::Up, _))))
}

pub(super) fn read(dir: &Path) -> Result<Plan> {
    let mut changes = Vec::new();
    for file in list(dir)?.into_iter().filter(|e| !e.is_dir) {
        let digits = file.name.bytes().take_while(u8::is_ascii_digit).count();
        let Some(stem) = file.name.strip_suffix(".sql").filter(|_| digits > 0) else {
            continue;
        };
        let text = read_text(&file.path)?;
        let mut change = split(&file.path, &text)?;
        change.name = stem.to_string();
        change.version = Some(file.name[..digits].to_string());
        changes.push(change);
    }
    Ok(Plan {
        format: Format::Dbmate,
        changes,
        phases: Vec::new(),
    })
}

/// Cuts a file into its up and down sections.
fn split(path: &Path, text: &str) -> Result<Change> {
    let malformed = |line: usize, detail: &str| Error::malformed(path, line, detail, HINT);
    // Where the up SQL starts; where the down marker and its SQL start.
    let mut up: Option<usize> = None;
    let mut down: Option<(usize, usize)> = None;
    let mut no_transaction = false;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        if let Some((kind, no_tx)) = marker(line.trim_end()) {
            match kind {
                Marker::Up if up.is_some() => {
                    return Err(malformed(line_no, "a second -- migrate:up"))
                }
                Marker::Up if !is_blank(&text[..offset]) => {
                    return Err(malformed(
                        line_no,
                        "SQL before -- migrate:up belongs to no section",
                    ))
                }
                Marker::Up => up = Some(offset + line.len()),
                Marker::Down if up.is_none() => {
                    return Err(malformed(line_no, "-- migrate:down before -- migrate:up"))
                }
                Marker::Down if down.is_some() => {
                    return Err(malformed(line_no, "a second -- migrate:down"))
                }
                Marker::Down => down = Some((offset, offset + line.len())),
            }
            no_transaction |= no_tx;
        }
        offset += line.len();
    }
    let up_start = up.ok_or_else(|| malformed(1, "no -- migrate:up section"))?;
    let up_end = down.map_or(text.len(), |(marker, _)| marker);
    let mut change = Change::new(String::new(), Script::new(path, &text[up_start..up_end]));
    change.down = down.map(|(_, start)| Script::new(path, &text[start..]));
    change.no_transaction = no_transaction;
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        assert!(matches!(marker("-- migrate:up"), Some((Marker::Up, false))));
        assert!(matches!(
            marker("--migrate:down transaction:false"),
            Some((Marker::Down, true))
        ));
        assert!(marker("-- migrate:upgrade").is_none());
        assert!(marker("select 1; -- migrate:up").is_none());
    }

    #[test]
    fn sections() {
        let p = Path::new("1_x.sql");
        let c = split(
            p,
            "-- migrate:up\r\ncreate table t();\r\n\r\n-- migrate:down\r\ndrop table t;\r\n",
        )
        .unwrap();
        assert_eq!(c.up.sql, "create table t();\r\n\r\n");
        assert_eq!(c.down.unwrap().sql, "drop table t;\r\n");
        let c = split(
            p,
            "-- a comment\n-- migrate:up transaction:false\ncreate index concurrently i on t(a);\n",
        )
        .unwrap();
        assert!(c.no_transaction);
        assert!(c.down.is_none());
        for bad in [
            "create table t();\n",
            "select 1;\n-- migrate:up\n",
            "-- migrate:down\n-- migrate:up\n",
            "-- migrate:up\n-- migrate:up\n",
            "-- migrate:up\n-- migrate:down\n-- migrate:down\n",
        ] {
            assert!(split(p, bad).is_err(), "{bad}");
        }
    }
}
