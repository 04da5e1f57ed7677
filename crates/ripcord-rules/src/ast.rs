//! What a parsed rule is: comparisons of a function over a probe's samples
//! with a threshold, joined by `and` and `or`.
//!
//! The tree keeps what the rule means, not how it was spelled: `AND`,
//! `60s` and redundant parentheses are gone, and [`Expr`]'s `Display`
//! prints one canonical spelling that parses back to the same tree. That
//! spelling is what evidence and reports quote.

use std::fmt;
use std::time::Duration;

/// A rule's condition. True (breached) is the bad case.
///
/// The parser builds `And` and `Or` with two items or more and never nests
/// an `And` directly in an `And` (nor an `Or` in an `Or`): `a and (b and c)`
/// is `And[a, b, c]`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Compare(Comparison),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    /// `items` joined with `and`, flattening nested `And`s; one item is itself.
    pub fn and(items: Vec<Expr>) -> Expr {
        Expr::join(items, true)
    }

    /// `items` joined with `or`, flattening nested `Or`s; one item is itself.
    pub fn or(items: Vec<Expr>) -> Expr {
        Expr::join(items, false)
    }

    fn join(items: Vec<Expr>, and: bool) -> Expr {
        let mut flat = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Expr::And(inner) if and => flat.extend(inner),
                Expr::Or(inner) if !and => flat.extend(inner),
                other => flat.push(other),
            }
        }
        if flat.len() == 1 {
            if let Some(only) = flat.pop() {
                return only;
            }
        }
        if and {
            Expr::And(flat)
        } else {
            Expr::Or(flat)
        }
    }

    /// The probes the rule reads, each once, in the order they first
    /// appear: the caller checks them against the configured probes.
    pub fn probes(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for comparison in self.comparisons() {
            let name = comparison.call.probe();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Every comparison in the rule, left to right.
    pub fn comparisons(&self) -> Vec<&Comparison> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Comparison>) {
        match self {
            Expr::Compare(c) => out.push(c),
            Expr::And(items) | Expr::Or(items) => {
                for item in items {
                    item.collect(out);
                }
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Compare(c) => write!(f, "{c}"),
            Expr::And(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    // `and` binds tighter than `or`: an `or` inside needs
                    // its parentheses back.
                    match item {
                        Expr::Or(_) => write!(f, "({item})")?,
                        _ => write!(f, "{item}")?,
                    }
                }
                Ok(())
            }
            Expr::Or(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    write!(f, "{item}")?;
                }
                Ok(())
            }
        }
    }
}

/// `call op threshold`, such as `availability(api, 30s) < 95%`.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub call: Call,
    pub op: Op,
    pub threshold: Quantity,
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.call, self.op, self.threshold)
    }
}

/// What a function reads from a probe's samples, and so which thresholds fit it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Whether samples passed: a share between 0 and 1.
    Share,
    /// The samples' latency, in milliseconds.
    Latency,
    /// The samples' numbers, whose unit only the probe's author knows.
    Number,
}

/// The functions of the language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    /// Share of the window's samples that passed.
    Availability,
    /// Share of the window's samples that failed.
    ErrorRate,
    P50,
    P95,
    P99,
    /// The newest sample's number; no window.
    Value,
    /// The newest number in the window.
    Last,
    Avg,
    Min,
    Max,
}

impl Function {
    pub const ALL: [Function; 10] = [
        Function::Availability,
        Function::ErrorRate,
        Function::P50,
        Function::P95,
        Function::P99,
        Function::Value,
        Function::Last,
        Function::Avg,
        Function::Min,
        Function::Max,
    ];

    /// The name as written in rules (lower case).
    pub fn name(self) -> &'static str {
        match self {
            Function::Availability => "availability",
            Function::ErrorRate => "error_rate",
            Function::P50 => "p50",
            Function::P95 => "p95",
            Function::P99 => "p99",
            Function::Value => "value",
            Function::Last => "last",
            Function::Avg => "avg",
            Function::Min => "min",
            Function::Max => "max",
        }
    }

    /// The function called `name`, in any case.
    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    pub fn kind(self) -> Kind {
        match self {
            Function::Availability | Function::ErrorRate => Kind::Share,
            Function::P50 | Function::P95 | Function::P99 => Kind::Latency,
            Function::Value | Function::Last | Function::Avg | Function::Min | Function::Max => {
                Kind::Number
            }
        }
    }

    /// Every function but `value` reads a window of samples.
    pub fn takes_window(self) -> bool {
        self != Function::Value
    }

    /// The percentile a latency function takes (50, 95, 99).
    pub fn percentile(self) -> Option<u8> {
        match self {
            Function::P50 => Some(50),
            Function::P95 => Some(95),
            Function::P99 => Some(99),
            _ => None,
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A function applied to a probe: `availability(api, 30s)`,
/// `p95(api.latency, 1m)`, `value(orders)`.
///
/// Built by the parser only, which keeps its invariant: a window exactly
/// when the function takes one.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    function: Function,
    probe: String,
    window: Option<Duration>,
}

impl Call {
    pub(crate) fn new(function: Function, probe: String, window: Option<Duration>) -> Call {
        Call {
            function,
            probe,
            window,
        }
    }

    pub fn function(&self) -> Function {
        self.function
    }

    pub fn probe(&self) -> &str {
        &self.probe
    }

    /// The window, for every function but `value`: samples with `at_ms`
    /// in `(now - window, now]`.
    pub fn window(&self) -> Option<Duration> {
        self.window
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({}", self.function, self.probe)?;
        if self.function.kind() == Kind::Latency {
            f.write_str(".latency")?;
        }
        if let Some(window) = self.window {
            write!(f, ", {}", DurationText(window))?;
        }
        f.write_str(")")
    }
}

/// A window in the largest unit that says it exactly: `90s`, `1m`, `1500ms`.
pub(crate) struct DurationText(pub Duration);

impl fmt::Display for DurationText {
    // `is_multiple_of` is newer than the workspace's rust-version (1.80).
    #[allow(clippy::manual_is_multiple_of)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
            if ms > 0 && ms % size == 0 {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// Whether `measured op threshold` holds, exactly as floating point
    /// compares (evaluation first takes a measure within rounding of the
    /// threshold for the threshold).
    pub fn holds(self, measured: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => measured < threshold,
            Op::Le => measured <= threshold,
            Op::Gt => measured > threshold,
            Op::Ge => measured >= threshold,
            Op::Eq => measured == threshold,
            Op::Ne => measured != threshold,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A threshold's unit as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A plain number.
    None,
    /// `%`: hundredths.
    Percent,
    /// `ms`.
    Millis,
    /// `s`: a thousand milliseconds.
    Seconds,
}

impl Unit {
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::None => "",
            Unit::Percent => "%",
            Unit::Millis => "ms",
            Unit::Seconds => "s",
        }
    }
}

/// A threshold as written: `95%`, `250ms`, `2s`, `0.5`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantity {
    /// The number as written, before its unit.
    pub number: f64,
    pub unit: Unit,
}

impl Quantity {
    /// The number in the function's terms: a share for `%` (95% is 0.95),
    /// milliseconds for `ms` and `s` (2s is 2000).
    pub fn value(&self) -> f64 {
        match self.unit {
            Unit::None | Unit::Millis => self.number,
            Unit::Percent => self.number / 100.0,
            Unit::Seconds => self.number * 1000.0,
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // f64's Display is the shortest text that reads back to the same
        // number, and never uses an exponent: the grammar reads it back.
        write!(f, "{}{}", self.number, self.unit.suffix())
    }
}
