//! Table names as users type them and reports show them: `table` or
//! `schema.table`, each part plain or in double quotes as in SQL
//! (`"My App"."Odd.Table"`, a `""` inside quotes standing for one `"`).
//!
//! A quoted part is exact. A plain part matches a name written the same way
//! or, failing that, its lower-case form, which is what the server makes of
//! an unquoted identifier; so `Orders` finds a table called `Orders` as
//! before, and `ORDERS` finds `orders`.

use std::fmt;

/// A table name that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the table name {text:?}: {reason}")]
pub struct InvalidTableName {
    pub text: String,
    pub reason: &'static str,
}

/// One part of a name as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub text: String,
    pub quoted: bool,
}

impl Part {
    /// Whether this part names `actual`, a name as the catalog holds it.
    pub fn matches(&self, actual: &str) -> bool {
        self.text == actual || !self.quoted && self.text.to_lowercase() == actual
    }
}

/// A table name as written: `[schema.]name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub schema: Option<Part>,
    pub name: Part,
}

impl TableRef {
    /// Reads `table`, `schema.table`, with either part in double quotes.
    pub fn parse(text: &str) -> Result<TableRef, InvalidTableName> {
        let fail = |reason| {
            Err(InvalidTableName {
                text: text.to_string(),
                reason,
            })
        };
        let mut parts: Vec<Part> = Vec::new();
        let mut chars = text.trim().chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut part = Part {
                text: String::new(),
                quoted: false,
            };
            if chars.next_if_eq(&'"').is_some() {
                part.quoted = true;
                loop {
                    match chars.next() {
                        None => return fail("a double quote is not closed"),
                        Some('"') if chars.next_if_eq(&'"').is_some() => part.text.push('"'),
                        Some('"') => break,
                        Some(c) => part.text.push(c),
                    }
                }
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
            } else {
                while let Some(c) = chars.next_if(|c| *c != '.' && *c != '"') {
                    part.text.push(c);
                }
                part.text = part.text.trim_end().to_string();
            }
            if part.text.is_empty() {
                return fail("a part of it is empty");
            }
            parts.push(part);
            match chars.next() {
                None => break,
                Some('.') => continue,
                Some(_) => return fail("a double quote may only enclose a whole part"),
            }
        }
        let name = parts.pop().expect("one part at least");
        let schema = parts.pop();
        if !parts.is_empty() {
            return fail("name a table as table or schema.table");
        }
        Ok(TableRef { schema, name })
    }

    /// Whether this names the table `schema.name` of the catalog.
    pub fn matches(&self, schema: &str, name: &str) -> bool {
        self.name.matches(name) && self.schema.as_ref().is_none_or(|s| s.matches(schema))
    }
}

/// A comma-separated list of table names as `--tables` takes it: a comma
/// inside double quotes belongs to the name (`"a,b",c` is two names).
/// Blank items are left out; each item is read by [`TableRef::parse`].
pub fn split_list(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut item = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            // `""` inside quotes closes and opens again: the state is right.
            '"' => {
                quoted = !quoted;
                item.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut item)),
            _ => item.push(c),
        }
    }
    out.push(item);
    out.into_iter()
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty())
        .collect()
}

/// A name part as SQL would need it written: plain when it is lower case
/// letters, digits and `_` (not starting with a digit), quoted otherwise.
pub fn show_part(part: &str) -> String {
    let plain = part
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && part
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        part.to_string()
    } else {
        format!("\"{}\"", part.replace('"', "\"\""))
    }
}

/// `schema.name` (or `name`), each part quoted where it must be, so that
/// [`TableRef::parse`] reads it back exactly.
pub struct Shown<'a>(pub Option<&'a str>, pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = self.0 {
            write!(f, "{}.", show_part(schema))?;
        }
        f.write_str(&show_part(self.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(text: &str, quoted: bool) -> Part {
        Part {
            text: text.into(),
            quoted,
        }
    }

    /// The bug: `--tables` was split on every comma, so `"a,b"` became
    /// the names `"a` and `b"`.
    #[test]
    fn comma_in_a_quoted_table_name_is_not_split() {
        assert_eq!(
            split_list(r#""My App"."a,b", c ,, "x""y,z""#),
            [r#""My App"."a,b""#, "c", r#""x""y,z""#]
        );
        let t = TableRef::parse(&split_list(r#""My App"."a,b""#)[0]).unwrap();
        assert_eq!(t.name, part("a,b", true));
        // An unclosed quote stays one item, which parse then refuses.
        assert_eq!(split_list(r#"a,"b,c"#), ["a", r#""b,c"#]);
        assert!(TableRef::parse(r#""b,c"#).is_err());
    }

    #[test]
    fn plain_and_qualified() {
        let t = TableRef::parse("app.gadgets").unwrap();
        assert_eq!(t.schema, Some(part("app", false)));
        assert_eq!(t.name, part("gadgets", false));
        assert_eq!(TableRef::parse(" gadgets ").unwrap().schema, None);
    }

    #[test]
    fn quoted_parts_keep_dots_spaces_and_case() {
        let t = TableRef::parse(r#""My App"."Odd.""Table""""#).unwrap();
        assert_eq!(t.schema, Some(part("My App", true)));
        assert_eq!(t.name, part(r#"Odd."Table""#, true));
        assert!(t.matches("My App", r#"Odd."Table""#));
        assert!(!t.matches("my app", r#"Odd."Table""#));
    }

    #[test]
    fn plain_parts_match_as_written_or_folded() {
        let t = TableRef::parse("App.Orders").unwrap();
        assert!(t.matches("App", "Orders"));
        assert!(t.matches("app", "orders"));
        assert!(!TableRef::parse(r#""Orders""#)
            .unwrap()
            .matches("x", "orders"));
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "a.", ".a", "a.b.c", r#""open"#, r#"a"b""#, r#""a"b"#] {
            assert!(TableRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shown_names_read_back() {
        for (schema, name) in [
            (Some("public"), "orders"),
            (Some("My App"), "Odd.Table"),
            (None, "has\"quote"),
            (Some("app"), "1st"),
        ] {
            let text = Shown(schema, name).to_string();
            let back = TableRef::parse(&text).unwrap();
            assert_eq!(back.name.text, name, "{text}");
            assert_eq!(back.schema.map(|p| p.text).as_deref(), schema, "{text}");
        }
        assert_eq!(Shown(Some("public"), "orders").to_string(), "public.orders");
        assert_eq!(Shown(Some("My App"), "x").to_string(), "\"My App\".x");
    }
}
