//! A rule that does not parse: where, and what was expected there.
//!
//! Rules are written by hand in ripcord.toml and refused when the
//! configuration loads, so the error is for a person: a column they can
//! count to, and a picture with a caret under it.

/// Why a rule does not parse. `column` counts characters from 1 over the
/// whole text (a line break counts as one); the end of the text is one
/// past its last character.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

impl ParseError {
    /// The rule on one line and a caret under the column:
    ///
    /// ```text
    /// availability(api, 30s) < 95ms
    ///                          ^
    /// ```
    ///
    /// Tabs and line breaks show as spaces so the caret stays under its
    /// character.
    pub fn render(&self, source: &str) -> String {
        let line: String = source
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect();
        let pad = " ".repeat(self.column.saturating_sub(1));
        format!("{line}\n{pad}^")
    }
}
