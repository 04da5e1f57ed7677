//! Reading a rule's text into an [`Expr`].
//!
//! Why winnow: it is already in every ripcord build (the TOML reader is
//! built on it), so the rule language adds no second parser library; it
//! parses a plain `&str` with ordinary functions, which keeps this grammar
//! readable top to bottom; and it takes our own error type, so every
//! failure carries the message written for that place rather than a
//! generic "parse error" assembled afterwards.
//!
//! The grammar (keywords, function names and units in any case):
//!
//! ```text
//! rule       = or EOF
//! or         = and ("or" and)*
//! and        = primary ("and" primary)*
//! primary    = "(" or ")" | comparison
//! comparison = call op threshold
//! call       = share   "(" probe "," window ")"            availability, error_rate
//!            | pct     "(" probe ".latency" "," window ")" p50, p95, p99
//!            | "value" "(" probe ")"
//!            | number  "(" probe "," window ")"            last, avg, min, max
//! op         = "<=" | ">=" | "==" | "!=" | "<" | ">"
//! threshold  = "-"? digits ("." digits)? ("%" | "ms" | "s")?
//! window     = digits ("ms" | "s" | "m" | "h")
//! probe      = [A-Za-z0-9_-]+
//! ```
//!
//! A unit sits right against its number (`95%`, `30s`); whitespace may
//! go anywhere else. The grammar needs one token of look-ahead, so nothing
//! backtracks over a token: the first token that does not fit is where the
//! error points, and the message names what fits there and what was found.

use std::time::Duration;

use winnow::ascii::{digit1, Caseless};
use winnow::combinator::{alt, not, opt, terminated};
use winnow::error::{ErrMode, ParserError};
use winnow::token::{literal, one_of, take_while};
use winnow::Parser;

use crate::ast::{Call, Comparison, Expr, Function, Kind, Op, Quantity, Unit};
use crate::error::ParseError;

/// How deep parentheses may nest; deeper is refused rather than risking
/// the stack on hostile text.
pub const MAX_DEPTH: usize = 48;

/// Parses a rule's `when`.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut input = src;
    rule(&mut input).map_err(|e| {
        let fail = match e {
            ErrMode::Backtrack(f) | ErrMode::Cut(f) => f,
            ErrMode::Incomplete(_) => Fail {
                rest: 0,
                message: String::new(),
                open: None,
            },
        };
        let offset = src.len().saturating_sub(fail.rest);
        let at = src.get(offset..).unwrap_or("");
        let mut message = if fail.message.is_empty() {
            format!("unexpected {}", found(at))
        } else {
            fail.message
        };
        if let Some(open) = fail.open {
            let open = column(src, src.len().saturating_sub(open));
            message.push_str(&format!(": the `(` at column {open} is not closed"));
        }
        ParseError {
            column: column(src, offset),
            message,
        }
    })
}

impl std::str::FromStr for Expr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Expr, ParseError> {
        parse(s)
    }
}

/// A failure at the place where `rest` bytes of the text were left.
#[derive(Debug)]
struct Fail {
    rest: usize,
    message: String,
    /// Where an unclosed `(` is, as `rest` is.
    open: Option<usize>,
}

impl<'a> ParserError<&'a str> for Fail {
    type Inner = Self;

    fn from_input(input: &&'a str) -> Self {
        Fail {
            rest: input.len(),
            message: String::new(),
            open: None,
        }
    }

    fn into_inner(self) -> Result<Self, Self> {
        Ok(self)
    }
}

type Res<T> = Result<T, ErrMode<Fail>>;

fn fail<T>(at: &str, message: impl Into<String>) -> Res<T> {
    Err(ErrMode::Cut(Fail {
        rest: at.len(),
        message: message.into(),
        open: None,
    }))
}

/// The 1-based character column of byte `offset` in `src`.
fn column(src: &str, offset: usize) -> usize {
    src.char_indices().take_while(|(i, _)| *i < offset).count() + 1
}

/// The token at `at`, quoted, for "found …": a word, an operator, one
/// other character, or the end.
fn found(at: &str) -> String {
    const OPERATOR: &str = "<>=!&|";
    let Some(first) = at.chars().next() else {
        return "the end".into();
    };
    let token: String = if is_word(first) {
        at.chars().take_while(|c| is_word(*c)).collect()
    } else if OPERATOR.contains(first) {
        at.chars()
            .take_while(|c| OPERATOR.contains(*c))
            .take(2)
            .collect()
    } else {
        first.to_string()
    };
    let shown = short(&token);
    let hint = match token.as_str() {
        "&&" | "&" => " (write `and`)",
        "||" | "|" => " (write `or`)",
        "=" => " (equal is `==`)",
        _ => "",
    };
    format!("`{shown}`{hint}")
}

/// `text`, cut to 24 characters.
fn short(text: &str) -> String {
    let mut shown: String = text.chars().take(24).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '%')
}

/// A character of a probe's name, of a keyword's or of a function's
/// (`-` is none of a function's, but reading it in lets `error-rate` be
/// told apart and get its suggestion).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

fn skip_space(input: &mut &str) {
    *input = input.trim_start();
}

fn rule(input: &mut &str) -> Res<Expr> {
    skip_space(input);
    if input.is_empty() {
        return fail(
            input,
            "the rule is empty: expected a comparison such as availability(api, 30s) < 95%",
        );
    }
    let expr = or_expr(input, 0)?;
    skip_space(input);
    if input.starts_with(')') {
        return fail(input, "found `)` with no `(` open before it");
    }
    if !input.is_empty() {
        return fail(
            input,
            format!(
                "expected `and`, `or` or the end of the rule, found {}",
                found(input)
            ),
        );
    }
    Ok(expr)
}

fn or_expr(input: &mut &str, depth: usize) -> Res<Expr> {
    let mut items = vec![and_expr(input, depth, None)?];
    while keyword(input, "or") {
        items.push(and_expr(input, depth, Some("or"))?);
    }
    Ok(Expr::or(items))
}

fn and_expr(input: &mut &str, depth: usize, after: Option<&str>) -> Res<Expr> {
    let mut items = vec![primary(input, depth, after)?];
    while keyword(input, "and") {
        items.push(primary(input, depth, Some("and"))?);
    }
    Ok(Expr::and(items))
}

/// Takes the keyword `word` (any case, not the start of a longer word)
/// when it comes next.
fn keyword(input: &mut &str, word: &'static str) -> bool {
    let before = *input;
    skip_space(input);
    let taken: Res<&str> =
        terminated(literal(Caseless(word)), not(one_of(is_name_char))).parse_next(input);
    if taken.is_err() {
        *input = before;
    }
    taken.is_ok()
}

fn primary(input: &mut &str, depth: usize, after: Option<&str>) -> Res<Expr> {
    skip_space(input);
    let open = *input;
    if opt('(').parse_next(input)?.is_none() {
        return comparison(input, after);
    }
    if depth >= MAX_DEPTH {
        return fail(
            open,
            format!("parentheses nest deeper than {MAX_DEPTH} levels"),
        );
    }
    let expr = or_expr(input, depth + 1)?;
    skip_space(input);
    if opt(')').parse_next(input)?.is_none() {
        return Err(ErrMode::Cut(Fail {
            rest: input.len(),
            message: format!("expected `and`, `or` or `)`, found {}", found(input)),
            open: Some(open.len()),
        }));
    }
    Ok(expr)
}

fn comparison(input: &mut &str, after: Option<&str>) -> Res<Expr> {
    let call = call(input, after)?;
    skip_space(input);
    let op: Option<Op> = opt(alt((
        "<=".value(Op::Le),
        ">=".value(Op::Ge),
        "==".value(Op::Eq),
        "!=".value(Op::Ne),
        "<".value(Op::Lt),
        ">".value(Op::Gt),
    )))
    .parse_next(input)?;
    let Some(op) = op else {
        return fail(
            input,
            format!(
                "expected a comparison (<, <=, >, >=, ==, !=) after {call}, found {}",
                found(input)
            ),
        );
    };
    let threshold = threshold(input, call.function(), op)?;
    Ok(Expr::Compare(Comparison {
        call,
        op,
        threshold,
    }))
}

/// `function(probe[.latency][, window])`; `after` is the keyword before
/// it, if any, for the message when there is no function.
fn call(input: &mut &str, after: Option<&str>) -> Res<Call> {
    skip_space(input);
    let start = *input;
    let name: Option<&str> = opt((
        one_of(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(0.., is_name_char),
    )
        .take())
    .parse_next(input)?;
    let Some(name) = name else {
        let after = after.map(|w| format!(" after `{w}`")).unwrap_or_default();
        return fail(
            input,
            format!(
                "expected a comparison such as availability(api, 30s) < 95% or `(`{after}, found {}",
                found(input)
            ),
        );
    };
    let Some(function) = Function::from_name(name) else {
        if name.eq_ignore_ascii_case("and") || name.eq_ignore_ascii_case("or") {
            let after = after.map(|w| format!(" after `{w}`")).unwrap_or_default();
            return fail(
                start,
                format!(
                    "expected a comparison such as availability(api, 30s) < 95% or `(`{after}, found `{name}`"
                ),
            );
        }
        return fail(start, unknown_function(name));
    };
    skip_space(input);
    if opt('(').parse_next(input)?.is_none() {
        return fail(
            input,
            format!(
                "expected `(` after {function}, as in {}, found {}",
                example(function, "api"),
                found(input)
            ),
        );
    }
    skip_space(input);
    let probe: Option<&str> = opt(take_while(1.., is_name_char)).parse_next(input)?;
    let Some(probe) = probe else {
        return fail(
            input,
            format!(
                "expected a probe name (letters, digits, `_` and `-`) after `{function}(`, found {}",
                found(input)
            ),
        );
    };
    if function.kind() == Kind::Latency {
        let latency: Option<&str> = opt(terminated(
            literal(Caseless(".latency")),
            not(one_of(is_name_char)),
        ))
        .parse_next(input)?;
        if latency.is_none() {
            return fail(
                input,
                format!(
                    "{function} reads the samples' latency: expected `.latency` after {probe}, as in {}, found {}",
                    example(function, probe),
                    found(input)
                ),
            );
        }
    } else if input.starts_with('.') {
        return fail(
            input,
            format!(
                "`.latency` goes with p50, p95 and p99 only: expected `{}` after {probe}, as in {}, found {}",
                if function.takes_window() { "," } else { ")" },
                example(function, probe),
                found(input)
            ),
        );
    }
    skip_space(input);
    let window = if function.takes_window() {
        if opt(',').parse_next(input)?.is_none() {
            return fail(
                input,
                format!(
                    "expected `,` and a window after {probe}, as in {}, found {}",
                    example(function, probe),
                    found(input)
                ),
            );
        }
        Some(window(input)?)
    } else {
        if input.starts_with(',') {
            return fail(
                input,
                format!(
                    "{function} takes no window: expected `)` after {probe}, as in {}, found `,`",
                    example(function, probe)
                ),
            );
        }
        None
    };
    skip_space(input);
    if opt(')').parse_next(input)?.is_none() {
        return fail(
            input,
            format!("expected `)` to close {function}(, found {}", found(input)),
        );
    }
    Ok(Call::new(function, probe.to_string(), window))
}

/// How `function` is called, for messages: `availability(api, 30s)`.
fn example(function: Function, probe: &str) -> String {
    let window = match function.kind() {
        Kind::Share => Some(Duration::from_secs(30)),
        Kind::Latency => Some(Duration::from_secs(60)),
        Kind::Number => Some(Duration::from_secs(300)),
    };
    let window = window.filter(|_| function.takes_window());
    Call::new(function, probe.to_string(), window).to_string()
}

/// Names people reach for, and the function they mean.
const ALIASES: [(&str, Function); 10] = [
    ("average", Function::Avg),
    ("mean", Function::Avg),
    ("median", Function::P50),
    ("uptime", Function::Availability),
    ("errors", Function::ErrorRate),
    ("errorrate", Function::ErrorRate),
    ("minimum", Function::Min),
    ("maximum", Function::Max),
    ("latest", Function::Last),
    ("current", Function::Value),
];

fn unknown_function(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let mut near: Vec<(usize, &str)> = Function::ALL
        .iter()
        .map(|f| (strsim::levenshtein(&lower, f.name()), f.name()))
        .filter(|(distance, known)| *distance <= if known.len() <= 4 { 1 } else { 2 })
        .collect();
    near.sort();
    let mut names: Vec<&str> = near.into_iter().map(|(_, n)| n).collect();
    for (alias, function) in ALIASES {
        if alias == lower && !names.contains(&function.name()) {
            names.push(function.name());
        }
    }
    let all: Vec<&str> = Function::ALL.iter().map(|f| f.name()).collect();
    let mut message = format!(
        "expected a function ({}), found `{}`",
        all.join(", "),
        short(name)
    );
    if !names.is_empty() {
        let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        message.push_str(&format!("; did you mean {}?", one_of_list(&quoted)));
    }
    message
}

/// `a`, `a or b`, `a, b or c`.
fn one_of_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// A window: a whole number and its unit, longer than 0.
fn window(input: &mut &str) -> Res<Duration> {
    skip_space(input);
    let at = *input;
    let digits: Option<&str> = opt(digit1).parse_next(input)?;
    let Some(digits) = digits else {
        return fail(
            input,
            format!(
                "expected a window such as 500ms, 30s, 5m or 1h, found {}",
                found(input)
            ),
        );
    };
    if input.starts_with('.') {
        return fail(
            at,
            format!(
                "a window is a whole number of ms, s, m or h (90s, not 1.5m), found {}",
                found(at)
            ),
        );
    }
    let unit_at = *input;
    let unit: &str = take_while(0.., char::is_alphabetic).parse_next(input)?;
    let size: u64 = match unit.to_ascii_lowercase().as_str() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => {
            let digits = short(digits);
            return fail(
                unit_at,
                format!(
                    "the window {digits} needs a unit right after it: expected ms, s, m or h (as in {digits}s), found {}",
                    found(unit_at)
                ),
            );
        }
        _ => {
            return fail(
                unit_at,
                format!(
                    "expected a window unit (ms, s, m or h) after {}, found `{}`",
                    short(digits),
                    short(unit)
                ),
            )
        }
    };
    let ms = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(size))
        .filter(|ms| i64::try_from(*ms).is_ok());
    let Some(ms) = ms else {
        return fail(
            at,
            format!("the window `{}{unit}` is too long", short(digits)),
        );
    };
    if ms == 0 {
        return fail(
            at,
            format!(
                "a window must be longer than 0, found `{}{unit}`",
                short(digits)
            ),
        );
    }
    Ok(Duration::from_millis(ms))
}

/// A threshold and its unit, checked against what `function` measures.
fn threshold(input: &mut &str, function: Function, op: Op) -> Res<Quantity> {
    skip_space(input);
    let at = *input;
    let text: Option<&str> =
        opt((opt('-'), digit1, opt(('.', digit1))).take()).parse_next(input)?;
    let Some(text) = text else {
        let such_as = match function.kind() {
            Kind::Share => "95%",
            Kind::Latency => "250ms",
            Kind::Number => "0",
        };
        return fail(
            input,
            format!(
                "expected a number after {op}, such as {such_as}, found {}",
                found(input)
            ),
        );
    };
    let unit_at = *input;
    let unit = if opt('%').parse_next(input)?.is_some() {
        Unit::Percent
    } else {
        let word: &str = take_while(0.., char::is_alphabetic).parse_next(input)?;
        match word.to_ascii_lowercase().as_str() {
            "" => Unit::None,
            "ms" => Unit::Millis,
            "s" => Unit::Seconds,
            _ => {
                return fail(
                    unit_at,
                    format!(
                        "expected a unit (%, ms or s) or none after {}, found `{}`",
                        short(text),
                        short(word)
                    ),
                )
            }
        }
    };
    let Some(number) = text.parse::<f64>().ok().filter(|n| n.is_finite()) else {
        return fail(at, format!("the number `{}` is too large", short(text)));
    };
    let quantity = Quantity { number, unit };
    match fits(function, quantity) {
        Ok(()) => Ok(quantity),
        Err(message) => fail(at, message),
    }
}

/// Whether `q` is a threshold `function` can be compared with.
///
/// - availability and error_rate are shares: `95%`, or a plain fraction
///   such as `0.95`, between 0 and 1 (so `95` is refused, not read as 9500%).
/// - p50, p95 and p99 are latencies: `250ms` or `2s`; a plain number is
///   refused, since it could mean either.
/// - value, last, avg, min and max compare the probe's own number, whose
///   unit ripcord does not know: plain numbers only.
fn fits(function: Function, q: Quantity) -> Result<(), String> {
    match (function.kind(), q.unit) {
        (Kind::Share, Unit::Percent) if (0.0..=100.0).contains(&q.number) => Ok(()),
        (Kind::Share, Unit::None) if (0.0..=1.0).contains(&q.number) => Ok(()),
        (Kind::Share, Unit::Percent) => Err(format!(
            "{function} is a share between 0% and 100%, found `{q}`"
        )),
        (Kind::Share, Unit::None) => Err(format!(
            "{function} is a share: expected a percentage such as 95% or a fraction between 0 and 1 such as 0.95, found `{q}` (did you mean `{q}%`?)"
        )),
        (Kind::Share, _) => Err(format!(
            "{function} is a share, not a time: expected a percentage such as 95% or a fraction such as 0.95, found `{q}`"
        )),
        (Kind::Latency, Unit::Millis | Unit::Seconds) => Ok(()),
        (Kind::Latency, _) => Err(format!(
            "{function} is a latency: expected a threshold in ms or s such as 250ms or 2s, found `{q}`"
        )),
        (Kind::Number, Unit::None) => Ok(()),
        (Kind::Number, _) => Err(format!(
            "{function} compares the probe's number as it is, whose unit ripcord does not know: expected a plain number, found `{q}`"
        )),
    }
}
