//! Connecting: URL handling, error classification, and the environment that
//! passes the password to pg_dump without putting it on a command line.

use std::str::FromStr;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

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

fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}{}", &rest[at..])
        }
        None => url.to_string(),
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
            redact("postgres://app:secret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(redact("postgres://app@db/app"), "postgres://app@db/app");
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
        assert_eq!(redact("host=db password=secret"), "host=db password=***");
        let t = Target::parse("postgres://u:p@h:1/a?sslmode=disable").unwrap();
        assert_eq!(
            t.with_dbname("b").redacted(),
            "postgres://u:***@h:1/b?sslmode=disable"
        );
    }
}
