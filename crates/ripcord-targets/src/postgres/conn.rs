//! Connecting: URL handling, error classification, and the environment that
//! passes the password to pg_dump without putting it on a command line.

use std::str::FromStr;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

use super::redact::redact;
use crate::error::{Error, Result};

/// A parsed connection URL.
#[derive(Clone)]
pub struct Target {
    pub config: Config,
    /// The same settings for the async driver (bulk COPY).
    pub async_config: tokio_postgres::Config,
    url: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let mut config = Config::from_str(url).map_err(|e| Error::BadUrl {
            url: redact(url),
            detail: e.to_string(),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let mut async_config =
            tokio_postgres::Config::from_str(url).map_err(|e| Error::BadUrl {
                url: redact(url),
                detail: e.to_string(),
            })?;
        if async_config.get_connect_timeout().is_none() {
            async_config.connect_timeout(Duration::from_secs(10));
        }
        Ok(Target {
            config,
            async_config,
            url: url.to_string(),
        })
    }

    /// The URL without its password, for manifests, logs and tools.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    pub fn dbname(&self) -> String {
        self.config
            .get_dbname()
            .map(str::to_string)
            .or_else(|| self.config.get_user().map(str::to_string))
            .unwrap_or_else(|| "postgres".into())
    }

    /// The same server, another database.
    pub fn with_dbname(&self, db: &str) -> Target {
        let mut config = self.config.clone();
        config.dbname(db);
        let mut async_config = self.async_config.clone();
        async_config.dbname(db);
        let url = url_with_dbname(&self.url, db);
        Target {
            config,
            async_config,
            url,
        }
    }

    pub fn connect(&self) -> Result<Client> {
        self.config
            .connect(NoTls)
            .map_err(|e| classify(e, &self.redacted()))
    }

    /// A libpq connection string for pg_dump and pg_restore, without the
    /// password: that travels in [`tool_env`](Self::tool_env), never on a
    /// command line that `ps` shows.
    pub fn tool_conninfo(&self) -> String {
        let c = &self.config;
        let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut parts = Vec::new();
        // Several hosts (and ports) are one comma-separated value in libpq.
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        if !hosts.is_empty() {
            parts.push(format!("host={}", quote(&hosts.join(","))));
        }
        let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
        if !ports.is_empty() {
            parts.push(format!("port={}", quote(&ports.join(","))));
        }
        if let Some(u) = c.get_user() {
            parts.push(format!("user={}", quote(u)));
        }
        parts.push(format!("dbname={}", quote(&self.dbname())));
        // The URL's other settings that matter to the tools.
        let sslmode = match c.get_ssl_mode() {
            postgres::config::SslMode::Disable => Some("disable"),
            postgres::config::SslMode::Require => Some("require"),
            _ => None,
        };
        if let Some(mode) = sslmode {
            parts.push(format!("sslmode={mode}"));
        }
        if let Some(name) = c.get_application_name() {
            parts.push(format!("application_name={}", quote(name)));
        }
        if let Some(options) = c.get_options() {
            parts.push(format!("options={}", quote(options)));
        }
        parts.join(" ")
    }

    /// Environment for pg_dump and pg_restore: the password goes in PGPASSWORD.
    pub fn tool_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(p) = self.config.get_password() {
            env.push(("PGPASSWORD".into(), String::from_utf8_lossy(p).into_owned()));
        }
        env
    }
}

/// `url` naming database `db` instead: the path of a `postgres://` URL (its
/// query kept), or a last `dbname=` in the key=value form, which wins. A URL
/// the `url` crate cannot read (several hosts: `postgres://a:1,b:2/app`)
/// gets a `dbname` query parameter, which libpq and the driver read after
/// the path.
pub fn url_with_dbname(url: &str, db: &str) -> String {
    if !url.contains("://") {
        return format!("{url} dbname={db}");
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_path(&format!("/{db}"));
            parsed.to_string()
        }
        Err(_) => {
            let value =
                percent_encoding::utf8_percent_encode(db, percent_encoding::NON_ALPHANUMERIC);
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}dbname={value}")
        }
    }
}

/// Turns a driver error into one that says what to do.
pub fn classify(e: postgres::Error, target: &str) -> Error {
    if let Some(code) = e.code() {
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return Error::PgAuth {
                target: target.to_string(),
                detail: e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string()),
            };
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return Error::PgMissingDatabase {
                target: target.to_string(),
            };
        }
    }
    if e.as_db_error().is_none() {
        return Error::PgUnreachable {
            target: target.to_string(),
            detail: source_chain(&e),
        };
    }
    Error::Pg {
        context: target.to_string(),
        detail: e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string()),
    }
}

fn is_io(e: &postgres::Error) -> bool {
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = cur {
        if s.is::<std::io::Error>() {
            return true;
        }
        cur = s.source();
    }
    false
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Maps a driver error during work (not connecting) with context.
pub fn pg_err(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> Error {
    let context = context.into();
    move |e| {
        if e.is_closed() || is_io(&e) {
            Error::PgUnreachable {
                target: context,
                detail: source_chain(&e),
            }
        } else {
            Error::Pg {
                context,
                detail: e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string()),
            }
        }
    }
}

/// Quotes an identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            url_with_dbname("postgres://u:p%40ss@h:1/a?sslmode=disable", "b"),
            "postgres://u:p%40ss@h:1/b?sslmode=disable"
        );
        assert_eq!(
            url_with_dbname("host=h dbname=a", "b"),
            "host=h dbname=a dbname=b"
        );
        let several = url_with_dbname("postgres://u@a:1,b:2/app", "scratch db");
        assert_eq!(several, "postgres://u@a:1,b:2/app?dbname=scratch%20db");
        let config: postgres::Config = several.parse().unwrap();
        assert_eq!(config.get_dbname(), Some("scratch db"));
        let t = Target::parse("postgres://u:p@h:1/a?sslmode=disable").unwrap();
        assert_eq!(
            t.with_dbname("b").redacted(),
            "postgres://u:***@h:1/b?sslmode=disable"
        );
        let t = Target::parse("postgres://u@h:1/a?password=secret").unwrap();
        assert_eq!(t.redacted(), "postgres://u@h:1/a?password=***");
        assert_eq!(
            t.with_dbname("b").redacted(),
            "postgres://u@h:1/b?password=***"
        );
        let t = Target::parse("host=h user=u password='s e' dbname=a").unwrap();
        assert_eq!(t.redacted(), "host=h user=u password=*** dbname=a");
    }

    #[test]
    fn tools_get_no_password_on_the_command_line() {
        for url in [
            "postgres://u:secret@h:1/a",
            "postgres://u@h:1/a?password=secret&sslmode=disable",
            "host=h port=1 user=u password=secret dbname=a",
        ] {
            let t = Target::parse(url).unwrap();
            let info = t.tool_conninfo();
            assert!(!info.contains("secret"), "{info}");
            assert!(info.contains("dbname='a'"), "{info}");
            assert!(info.starts_with("host='h' port='1' user='u'"), "{info}");
            assert_eq!(
                t.tool_env(),
                [("PGPASSWORD".to_string(), "secret".to_string())]
            );
        }
        let t = Target::parse("postgres://u@h/a?sslmode=disable&application_name=x").unwrap();
        let info = t.tool_conninfo();
        assert!(
            info.ends_with("sslmode=disable application_name='x'"),
            "{info}"
        );
    }
}
