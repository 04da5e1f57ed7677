//! SQLite test databases.
//!
//! The bank ([`create_bank`]) keeps two invariants in every committed state:
//! the sum of all balances is constant, and the `transfers` table has exactly
//! as many rows as the counter in `meta` says. A copy that mixes pages from
//! before and after a transaction breaks them.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags};

use crate::data::Rng;

/// Opens a database for writing, the way an application would: WAL mode,
/// a busy timeout, `synchronous = NORMAL`.
pub fn open_writer(path: &Path) -> Connection {
    make_parent(path);
    let conn = Connection::open(path).expect("open database");
    conn.busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("WAL mode");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("synchronous");
    conn
}

fn make_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create the database's folder");
    }
}

/// Opens a database read-only.
pub fn open_read(path: &Path) -> Connection {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    conn
}

/// Starting balance of every account in the bank.
pub const INITIAL_BALANCE: i64 = 1_000;

/// Creates the bank: `accounts` accounts, a `transfers` log and a `meta` counter.
pub fn create_bank(path: &Path, accounts: u32) {
    let mut conn = open_writer(path);
    conn.execute_batch(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL);
         CREATE TABLE transfers (id INTEGER PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER NOT NULL,
                                 amount INTEGER NOT NULL, note TEXT NOT NULL);
         CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
         INSERT INTO meta VALUES ('transfers', 0);",
    )
    .expect("create bank schema");
    let tx = conn.transaction().expect("begin");
    for i in 0..accounts {
        tx.execute(
            "INSERT INTO accounts (id, owner, balance) VALUES (?1, ?2, ?3)",
            params![i, format!("owner-{i:05}"), INITIAL_BALANCE],
        )
        .expect("insert account");
    }
    tx.commit().expect("commit");
}

/// One transfer between two accounts, in one transaction. The note pads the
/// log so the database grows by a few pages per hundred transfers.
pub fn transfer(conn: &mut Connection, rng: &mut Rng, accounts: u32) -> rusqlite::Result<()> {
    let src = rng.below(accounts as u64) as i64;
    let dst = (src + 1 + rng.below(accounts as u64 - 1) as i64) % accounts as i64;
    let amount = 1 + rng.below(50) as i64;
    let tx = conn.transaction()?;
    tx.execute(
        "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2",
        params![amount, src],
    )?;
    tx.execute(
        "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
        params![amount, dst],
    )?;
    tx.execute(
        "INSERT INTO transfers (src, dst, amount, note) VALUES (?1, ?2, ?3, ?4)",
        params![
            src,
            dst,
            amount,
            format!(
                "transfer of {amount} from {src} to {dst}; {}",
                "x".repeat(100)
            )
        ],
    )?;
    tx.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'transfers'",
        [],
    )?;
    tx.commit()
}

/// What the bank's invariants are checked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BankState {
    pub accounts: u64,
    pub total: i64,
    pub transfer_rows: u64,
    pub counter: i64,
}

impl BankState {
    /// Panics unless the invariants hold for a bank of `accounts` accounts.
    pub fn assert_consistent(&self, accounts: u32, what: &str) {
        assert_eq!(self.accounts, accounts as u64, "{what}: account count");
        assert_eq!(
            self.total,
            accounts as i64 * INITIAL_BALANCE,
            "{what}: total balance is not constant: {self:?}"
        );
        assert_eq!(
            self.transfer_rows as i64, self.counter,
            "{what}: transfer log and counter disagree: {self:?}"
        );
    }
}

pub fn bank_state(path: &Path) -> BankState {
    let conn = open_read(path);
    let one = |sql: &str| -> i64 {
        conn.query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql} on {}: {e}", path.display()))
    };
    BankState {
        accounts: one("SELECT count(*) FROM accounts") as u64,
        total: one("SELECT coalesce(sum(balance), 0) FROM accounts"),
        transfer_rows: one("SELECT count(*) FROM transfers") as u64,
        counter: one("SELECT value FROM meta WHERE key = 'transfers'"),
    }
}

/// A small shop database with three tables: `customers` (50 rows), `orders`
/// (200 rows) and `notes` (10 rows).
pub fn create_shop(path: &Path) {
    make_parent(path);
    let mut conn = Connection::open(path).expect("open database");
    conn.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, total REAL NOT NULL, items BLOB);
         CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);",
    )
    .expect("create shop schema");
    let tx = conn.transaction().expect("begin");
    for i in 0..50 {
        tx.execute(
            "INSERT INTO customers VALUES (?1, ?2, ?3)",
            params![i, format!("customer {i}"), format!("c{i}@example.com")],
        )
        .expect("insert customer");
    }
    for i in 0..200 {
        tx.execute(
            "INSERT INTO orders VALUES (?1, ?2, ?3, ?4)",
            params![i, i % 50, i as f64 * 1.25, vec![i as u8; 16]],
        )
        .expect("insert order");
    }
    for i in 0..10 {
        tx.execute(
            "INSERT INTO notes VALUES (?1, ?2)",
            params![i, format!("note {i}")],
        )
        .expect("insert note");
    }
    tx.commit().expect("commit");
}

/// Row count of one table.
pub fn count_rows(path: &Path, table: &str) -> u64 {
    let conn = open_read(path);
    conn.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap_or_else(|e| panic!("count {table} in {}: {e}", path.display())) as u64
}

/// Every row of every user table, rendered as text, by table name: a
/// content comparison that ignores the file's page layout.
pub fn dump(path: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let conn = open_read(path);
    let mut names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .expect("list tables")
        .query_map([], |r| r.get(0))
        .expect("list tables")
        .collect::<Result<_, _>>()
        .expect("table names");
    names.sort();
    let mut out = std::collections::BTreeMap::new();
    for name in names {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY 1"))
            .expect("select");
        let cols = stmt.column_count();
        let rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut parts = Vec::with_capacity(cols);
                for i in 0..cols {
                    parts.push(format!("{:?}", r.get_ref(i)?));
                }
                Ok(parts.join("|"))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        out.insert(name, rows);
    }
    out
}
