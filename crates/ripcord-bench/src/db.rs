//! The benchmark's SQLite database: an application database with users,
//! events (text) and attachments (blobs).
//!
//! At scale 1.0: 100,000 users, 1,200,000 events and 12,000 attachments of
//! 1 to 24 KiB (half random, half text), about 480 MB on disk.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::rng::Rng;
use crate::scaled;
use crate::text::{self, LogWriter};

const STREAM_USERS: u64 = 10;
const STREAM_EVENTS: u64 = 11;
const STREAM_ATTACH: u64 = 12;
const STREAM_MUTATE: u64 = 13;

const SCHEMA: &str = "
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    bio TEXT
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX events_by_user ON events(user_id, ts);
CREATE TABLE attachments (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL REFERENCES events(id),
    mime TEXT NOT NULL,
    data BLOB NOT NULL
);
";

const KINDS: &[&str] = &[
    "login", "logout", "purchase", "view", "update", "comment", "upload",
];

/// What [`create`] wrote.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DbSummary {
    /// Size of the database file in bytes.
    pub bytes: u64,
    /// Rows in `users`.
    pub users: u64,
    /// Rows in `events`.
    pub events: u64,
    /// Rows in `attachments`.
    pub attachments: u64,
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // The database is rebuilt if generation fails, so durability is not needed
    // while writing; the file is complete and consistent once closed.
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;")?;
    Ok(conn)
}

fn attachment(rng: &mut Rng) -> (&'static str, Vec<u8>) {
    let len = rng.range(1024, 24 * 1024 + 1) as usize;
    let mut data = Vec::with_capacity(len + 512);
    let mime = if rng.chance(0.5) {
        data.resize(len, 0);
        rng.fill(&mut data);
        "image/jpeg"
    } else {
        LogWriter::new(1_700_000_000 + rng.below(10_000_000)).lines(rng, &mut data, len);
        "text/plain"
    };
    data.truncate(len);
    (mime, data)
}

/// Creates the database at `path`.
pub fn create(path: &Path, scale: f64, seed: u64) -> Result<DbSummary> {
    let users = scaled(100_000, scale, 10);
    let events = scaled(1_200_000, scale, 100);
    let attachments = scaled(12_000, scale, 10);
    let mut conn = open(path)?;
    conn.execute_batch(SCHEMA)?;

    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare(
            "INSERT INTO users (id, name, email, created_at, bio) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for id in 1..=users {
            let mut rng = Rng::derive(seed, STREAM_USERS, id);
            let first = text::word(&mut rng);
            let last = text::word(&mut rng);
            let name = format!("{first} {last}");
            let email = format!("{first}.{last}{id}@example.org");
            let mut bio = Vec::new();
            if rng.chance(0.8) {
                let n = rng.range(40, 400) as usize;
                text::prose(&mut rng, &mut bio, n);
                bio.truncate(n);
            }
            let bio = String::from_utf8(bio).expect("prose is ASCII");
            st.execute(params![
                id as i64,
                name,
                email,
                1_600_000_000 + rng.below(100_000_000) as i64,
                if bio.is_empty() { None } else { Some(bio) }
            ])?;
        }
    }
    tx.commit()?;

    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare(
            "INSERT INTO events (id, user_id, ts, kind, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut rng = Rng::derive(seed, STREAM_EVENTS, 0);
        let mut ts = 1_700_000_000i64;
        for id in 1..=events {
            ts += rng.below(20) as i64;
            st.execute(params![
                id as i64,
                rng.range(1, users + 1) as i64,
                ts,
                rng.pick(KINDS),
                text::payload(&mut rng)
            ])?;
        }
    }
    tx.commit()?;

    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare(
            "INSERT INTO attachments (id, event_id, mime, data) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut rng = Rng::derive(seed, STREAM_ATTACH, 0);
        for id in 1..=attachments {
            let event = rng.range(1, events + 1) as i64;
            let (mime, data) = attachment(&mut rng);
            st.execute(params![id as i64, event, mime, data])?;
        }
    }
    tx.commit()?;
    conn.close().map_err(|(_, e)| e)?;

    Ok(DbSummary {
        bytes: std::fs::metadata(path)?.len(),
        users,
        events,
        attachments,
    })
}

/// What [`mutate`] changed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DbMutation {
    /// Events whose payload was rewritten.
    pub events_updated: u64,
    /// Attachments whose data was rewritten.
    pub attachments_updated: u64,
    /// Events added.
    pub events_inserted: u64,
}

/// Updates `percent`% of the events and attachments of the database at
/// `path` and adds `percent`% new events, deterministically from `seed`.
pub fn mutate(path: &Path, percent: f64, seed: u64) -> Result<DbMutation> {
    let mut conn = open(path)?;
    let count = |table: &str| -> Result<u64> {
        let n: i64 = conn.query_row(
            &format!("SELECT coalesce(max(id), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    };
    let users = count("users")?.max(1);
    let events = count("events")?;
    let attachments = count("attachments")?;
    let frac = percent / 100.0;
    let n_events = (events as f64 * frac).ceil() as u64;
    let n_attach = (attachments as f64 * frac).ceil() as u64;
    let mut rng = Rng::derive(seed, STREAM_MUTATE, events);
    let mut out = DbMutation::default();

    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare("UPDATE events SET payload = ?2, kind = ?3 WHERE id = ?1")?;
        for _ in 0..n_events.min(events) {
            let id = rng.range(1, events + 1) as i64;
            out.events_updated +=
                st.execute(params![id, text::payload(&mut rng), rng.pick(KINDS)])? as u64;
        }
        let mut st = tx.prepare("UPDATE attachments SET data = ?2, mime = ?3 WHERE id = ?1")?;
        for _ in 0..n_attach.min(attachments) {
            let id = rng.range(1, attachments + 1) as i64;
            let (mime, data) = attachment(&mut rng);
            out.attachments_updated += st.execute(params![id, data, mime])? as u64;
        }
        let mut st = tx.prepare(
            "INSERT INTO events (id, user_id, ts, kind, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let ts = 1_800_000_000i64;
        for k in 1..=n_events {
            st.execute(params![
                (events + k) as i64,
                rng.range(1, users + 1) as i64,
                ts + k as i64,
                rng.pick(KINDS),
                text::payload(&mut rng)
            ])?;
            out.events_inserted += 1;
        }
    }
    tx.commit()?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(out)
}
