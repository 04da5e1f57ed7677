//! What every command gets: the library's context, and the terminal it
//! reports to (`--json` keeps stdout for the result, `--quiet` says nothing).

use std::io::IsTerminal;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use ripcord_core::config::Config;
use ripcord_ops::{ProgressBar, Reporter};

use crate::output::Bar;

pub struct Ctx {
    pub ops: ripcord_ops::Ctx,
    pub json: bool,
    pub quiet: bool,
}

impl Ctx {
    pub fn new(config: Config, config_path: Option<PathBuf>, json: bool, quiet: bool) -> Ctx {
        let terminal = Arc::new(Terminal { json, quiet });
        Ctx {
            ops: ripcord_ops::Ctx::new(config, config_path, terminal),
            json,
            quiet,
        }
    }

    pub fn load(config_path: Option<PathBuf>, json: bool, quiet: bool) -> Result<Ctx> {
        let config = Config::discover(config_path.as_deref())?;
        Ok(Ctx::new(config, config_path, json, quiet))
    }
}

impl Deref for Ctx {
    type Target = ripcord_ops::Ctx;
    fn deref(&self) -> &ripcord_ops::Ctx {
        &self.ops
    }
}

/// Progress text on stdout, warnings and bars on stderr.
pub struct Terminal {
    pub json: bool,
    pub quiet: bool,
}

impl Reporter for Terminal {
    /// Printed unless --quiet or --json.
    fn say(&self, text: &str) {
        if !self.quiet && !self.json {
            println!("{text}");
        }
    }

    fn warn(&self, text: &str) {
        if !self.quiet {
            eprintln!(
                "{} {text}",
                console::style("warning:").yellow().for_stderr()
            );
        }
    }

    fn progress(&self, total: Option<u64>, message: &str) -> Box<dyn ProgressBar> {
        Box::new(Bar::new(total, message, self.quiet || self.json))
    }

    /// A prompt, when a person is at the terminal.
    fn passphrase(&self, prompt: &str) -> std::io::Result<Option<String>> {
        if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            return rpassword::prompt_password(prompt).map(Some);
        }
        Ok(None)
    }
}
