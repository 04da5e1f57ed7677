//! The catalog's schema, versioned by `PRAGMA user_version`: each entry of
//! [`UPGRADES`] takes the schema one version up, and a catalog upgrades
//! itself when it is opened, in one transaction.

/// `UPGRADES[i]` takes version `i` to `i + 1`.
pub(crate) const UPGRADES: &[&str] = &[
    // 1: runs, steps, single flight, safe mode, audit.
    "CREATE TABLE runs (
         id TEXT PRIMARY KEY,
         kind TEXT NOT NULL,
         level TEXT,
         reason TEXT NOT NULL,
         trigger TEXT NOT NULL,
         actor TEXT NOT NULL,
         host TEXT NOT NULL,
         pid INTEGER NOT NULL,
         started TEXT NOT NULL,
         finished TEXT,
         result TEXT NOT NULL DEFAULT 'running'
     );
     CREATE TABLE steps (
         run TEXT NOT NULL REFERENCES runs(id),
         seq INTEGER NOT NULL,
         level TEXT,
         kind TEXT NOT NULL,
         name TEXT NOT NULL,
         state TEXT NOT NULL,
         started TEXT NOT NULL,
         finished TEXT,
         attempts INTEGER NOT NULL DEFAULT 0,
         output TEXT,
         detail TEXT,
         PRIMARY KEY (run, seq)
     );
     CREATE TABLE flight (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         run TEXT NOT NULL,
         host TEXT NOT NULL,
         pid INTEGER NOT NULL,
         pid_start INTEGER,
         started TEXT NOT NULL
     );
     CREATE TABLE safe_mode (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         run TEXT,
         since TEXT NOT NULL,
         reason TEXT NOT NULL
     );
     CREATE TABLE audit (
         seq INTEGER PRIMARY KEY,
         time TEXT NOT NULL,
         actor TEXT NOT NULL,
         command TEXT NOT NULL,
         args TEXT NOT NULL,
         reason TEXT,
         result TEXT NOT NULL,
         run TEXT,
         prev TEXT NOT NULL,
         hash TEXT NOT NULL
     );",
    // 2: the state of each migration target before its latest `migrate up`
    // (`@last-good`).
    "CREATE TABLE last_good (
         target TEXT PRIMARY KEY,
         change TEXT,
         recorded TEXT NOT NULL,
         actor TEXT NOT NULL
     );",
    // 3: the guard's samples.
    "CREATE TABLE samples (
         probe TEXT NOT NULL,
         at_ms INTEGER NOT NULL,
         ok INTEGER NOT NULL,
         latency_ms REAL NOT NULL,
         value REAL,
         observed TEXT NOT NULL
     );
     CREATE INDEX samples_by_probe ON samples (probe, at_ms);",
    // 4: restore drills.
    "CREATE TABLE drills (
         started TEXT NOT NULL,
         result TEXT NOT NULL,
         report TEXT NOT NULL
     );",
    // 5: API tokens, by the hash of each; one active token per name, a
    // revoked one kept with when it was revoked.
    "CREATE TABLE tokens (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL,
         role TEXT NOT NULL,
         hash TEXT NOT NULL UNIQUE,
         created TEXT NOT NULL,
         created_by TEXT NOT NULL,
         revoked TEXT
     );
     CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked IS NULL;",
];

/// The version this build writes.
pub(crate) fn current() -> u32 {
    UPGRADES.len() as u32
}
