//! The one query path of probes and the guard: read-only and bounded. SQLite
//! opens the file read-only and is interrupted at the deadline; PostgreSQL
//! sessions are read-only with a `statement_timeout`, and connect within
//! the time left.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use postgres::types::{Kind, Type};
use ripcord_core::config::{Config, TargetConfig};

/// The first column of the first row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    NoRow,
    Null,
    Some {
        /// As the database prints it (`42`, `t`, `up`).
        text: String,
        /// The number it is: a number, a boolean as 1 or 0, text that is
        /// one finite number. Never NaN nor infinite.
        number: Option<f64>,
    },
}

impl Value {
    /// As recovery-run probes compare it: `NULL` for null, `(no row)`.
    pub fn text(&self) -> &str {
        match self {
            Value::NoRow => "(no row)",
            Value::Null => "NULL",
            Value::Some { text, .. } => text,
        }
    }
}

/// Runs `query` on database target `target`, all within `timeout`.
pub(crate) fn first_value(
    config: &Config,
    target: &str,
    query: &str,
    timeout: Duration,
) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    match config.target(target).map_err(|e| e.to_string())? {
        TargetConfig::Sqlite { path, .. } => sqlite(path, query, deadline, timeout),
        TargetConfig::Postgres { url, .. } => postgres(url, query, deadline),
        TargetConfig::Dir { .. } => Err(format!(
            "{target} is a dir target: a query needs a database"
        )),
    }
}

/// The time left before `deadline`, at least a millisecond.
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

fn sqlite(
    path: &std::path::Path,
    query: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<Value, String> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(left(deadline))
        .map_err(|e| e.to_string())?;
    // A query that runs past the deadline is interrupted.
    let interrupt = conn.get_interrupt_handle();
    let (done, finished) = mpsc::channel::<()>();
    let wait = left(deadline);
    let timer = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(wait) {
            interrupt.interrupt();
        }
    });
    let result = sqlite_first(&conn, query);
    drop(done);
    let _ = timer.join();
    result.map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::OperationInterrupted) => format!(
            "still running after {}, and was interrupted",
            humantime::format_duration(timeout)
        ),
        _ => e.to_string(),
    })
}

fn sqlite_first(conn: &rusqlite::Connection, query: &str) -> rusqlite::Result<Value> {
    use rusqlite::types::ValueRef;
    let mut stmt = conn.prepare(query)?;
    let mut rows = stmt.query([])?;
    let Some(row) = rows.next()? else {
        return Ok(Value::NoRow);
    };
    Ok(match row.get_ref(0)? {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Some {
            text: i.to_string(),
            number: Some(i as f64),
        },
        ValueRef::Real(f) => Value::Some {
            text: f.to_string(),
            number: Some(f).filter(|f| f.is_finite()),
        },
        ValueRef::Text(t) => {
            let text = String::from_utf8_lossy(t).into_owned();
            Value::Some {
                number: number(&text),
                text,
            }
        }
        ValueRef::Blob(b) => Value::Some {
            text: format!("({} byte blob)", b.len()),
            number: None,
        },
    })
}

fn postgres(url: &str, query: &str, deadline: Instant) -> Result<Value, String> {
    let mut target = ripcord_targets::postgres::Target::parse(url).map_err(|e| e.to_string())?;
    // Connecting, and a server that stops answering mid-query (sent data
    // left unacknowledged), take no longer than the sample may.
    let within = left(deadline);
    if target
        .config
        .get_connect_timeout()
        .is_none_or(|t| *t > within)
    {
        target.config.connect_timeout(within);
    }
    if target
        .config
        .get_tcp_user_timeout()
        .is_none_or(|t| t.is_zero() || *t > within)
    {
        target.config.tcp_user_timeout(within);
    }
    let mut client = target.connect().map_err(|e| e.to_string())?;
    // Read-only, and bounded: a probe never writes and never hangs.
    client
        .batch_execute(&format!(
            "SET default_transaction_read_only = on; SET statement_timeout = {}",
            left(deadline).as_millis()
        ))
        .map_err(|e| e.to_string())?;
    // The simple protocol gives every value as text, and runs what a person
    // would type into psql; the column's type, which says whether `t` is
    // true or a letter, comes from describing the query first. A query that
    // cannot be described (several statements) has no known type.
    let column_type = client
        .prepare(query)
        .ok()
        .and_then(|s| s.columns().first().map(|c| c.type_().clone()));
    let messages = client.simple_query(query).map_err(|e| {
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string())
    })?;
    for m in messages {
        if let postgres::SimpleQueryMessage::Row(row) = m {
            return Ok(match row.get(0) {
                None => Value::Null,
                Some(text) => Value::Some {
                    number: pg_number(text, column_type.as_ref()),
                    text: text.to_string(),
                },
            });
        }
    }
    Ok(Value::NoRow)
}

/// The number of a PostgreSQL value printed as `text`, of type `ty`.
fn pg_number(text: &str, ty: Option<&Type>) -> Option<f64> {
    let Some(ty) = ty else {
        return number(text);
    };
    if let Kind::Domain(inner) = ty.kind() {
        return pg_number(text, Some(inner));
    }
    const NUMERIC_OR_TEXT: [Type; 12] = [
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::OID,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::NUMERIC,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
    ];
    if *ty == Type::BOOL {
        match text {
            "t" => Some(1.0),
            "f" => Some(0.0),
            _ => None,
        }
    } else if NUMERIC_OR_TEXT.contains(ty) {
        number(text)
    } else {
        None
    }
}

/// `text` as one finite number, surrounding blanks aside: `42`, `-0.5`,
/// `1e3`. `NaN`, `inf` and anything else are none.
pub(crate) fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}
