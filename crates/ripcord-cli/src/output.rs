//! Terminal output: colours (off with NO_COLOR or when not a terminal),
//! progress bars (only on a terminal), sizes and tables.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

pub fn init_colors() {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if no_color || !std::io::stdout().is_terminal() {
        console::set_colors_enabled(false);
    }
    if no_color || !std::io::stderr().is_terminal() {
        console::set_colors_enabled_stderr(false);
    }
}

pub fn red(s: &str) -> String {
    console::style(s).red().bold().for_stderr().to_string()
}
pub fn bold(s: &str) -> String {
    console::style(s).bold().for_stderr().to_string()
}
pub fn green(s: &str) -> String {
    console::style(s).green().to_string()
}

pub use ripcord_ops::report::{bytes, count, counted};

/// A moment as text output shows it, in every command: local time with
/// its offset from UTC, "2026-12-01 23:39:43 +01:00". JSON has RFC 3339 UTC.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// An RFC 3339 time from the catalog as text output shows times ([`time`]);
/// one that does not read is shown as it is.
pub fn rfc3339(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| time(&t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| text.to_string())
}

/// A byte-progress bar on stderr, drawn only when stderr is a terminal.
pub struct Bar {
    pb: ProgressBar,
}

impl Bar {
    pub fn new(total: Option<u64>, message: &str, quiet: bool) -> Bar {
        let visible = !quiet && std::io::stderr().is_terminal();
        let pb = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        if !visible {
            pb.set_draw_target(ProgressDrawTarget::hidden());
        }
        // Sizes in ripcord's own format, as the rest of the output has them.
        let style = if total.is_some() {
            "{msg} [{bar:30}] {done}/{total} {rate} eta {eta}"
        } else {
            "{spinner} {msg} {done} {rate} {elapsed}"
        };
        pb.set_style(
            ProgressStyle::with_template(style)
                .expect("valid template")
                .with_key("done", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&bytes(s.pos()));
                })
                .with_key("total", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&bytes(s.len().unwrap_or(0)));
                })
                .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}/s", bytes(s.per_sec() as u64));
                })
                .progress_chars("=> "),
        );
        pb.set_message(message.to_string());
        pb.enable_steady_tick(Duration::from_millis(200));
        Bar { pb }
    }
    pub fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

impl ripcord_targets::Progress for Bar {
    fn bytes(&self, n: u64) {
        self.pb.inc(n);
    }
    fn warn(&self, message: String) {
        self.pb.suspend(|| {
            eprintln!(
                "{} {message}",
                console::style("warning:").yellow().for_stderr()
            )
        });
    }
}

impl ripcord_ops::ProgressBar for Bar {
    fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.pb.finish_and_clear();
    }
}

/// Prints rows as aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    table_indented(0, header, &[], rows)
}

/// Prints rows as aligned columns, `indent` spaces in; the columns marked
/// in `right` (numbers, sizes) are aligned on the right.
pub fn table_indented(indent: usize, header: &[&str], right: &[bool], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(console::measure_text_width(c));
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = " ".repeat(indent);
        for (i, c) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[i].saturating_sub(console::measure_text_width(c)));
            let last = i + 1 == cells.len();
            if right.get(i).copied().unwrap_or(false) {
                out.push_str(&pad);
                out.push_str(c);
            } else {
                out.push_str(c);
                if !last {
                    out.push_str(&pad);
                }
            }
            if !last {
                out.push_str("  ");
            }
        }
        println!("{}", out.trim_end());
    };
    line(
        header
            .iter()
            .map(|h| console::style(*h).bold().to_string())
            .collect(),
    );
    for r in rows {
        line(r.clone());
    }
}

/// Prints a command's JSON document: one of the types of
/// `ripcord_ops::json` (or the library result it names), whose schema
/// `ripcord_ops::json::schemas` gives.
pub fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).expect("serializable"));
}
