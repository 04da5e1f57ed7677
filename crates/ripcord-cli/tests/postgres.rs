//! End-to-end tests of PostgreSQL targets: the `ripcord` binary against real
//! throwaway clusters. Tests share one cluster (`pg::shared()`) and each works
//! in databases of its own; tests that stop the server start their own.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ripcord_testing::pg::{self, PgCluster};
use ripcord_testing::{process, repo_hashes, Output, Workspace};
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

fn cluster() -> &'static PgCluster {
    pg::shared()
}

fn new_db(c: &PgCluster, name: &str) -> String {
    c.create_database(name)
        .unwrap_or_else(|e| panic!("create database {name}: {e}"))
}

/// A name for a database that does not exist yet (for `--create`).
fn fresh_name(base: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{base}_{:08x}_{}", nanos ^ std::process::id(), next_seq())
}

fn next_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A workspace with an initialised repository and one postgres target `app`.
fn workspace_for(url: &str, split_mb: Option<u64>) -> Workspace {
    let mut ws = Workspace::new(bin());
    let mut target = format!("[targets.app]\nkind = \"postgres\"\nurl = \"{url}\"\n");
    if let Some(n) = split_mb {
        target.push_str(&format!("split_mb = {n}\n"));
    }
    ws.append_config(&target);
    ws.init();
    ws
}

/// The single value of a one-row, one-column query.
fn scalar(c: &PgCluster, db: &str, sql: &str) -> String {
    let rows = c.psql(db, sql);
    assert_eq!(rows.len(), 1, "{sql}: expected one row, got {rows:?}");
    rows[0][0].clone().unwrap_or_else(|| panic!("{sql}: NULL"))
}

fn scalar_i64(c: &PgCluster, db: &str, sql: &str) -> i64 {
    let v = scalar(c, db, sql);
    v.parse()
        .unwrap_or_else(|_| panic!("{sql}: {v:?} is not an integer"))
}

/// User tables, as quoted `schema.table`.
fn user_tables(c: &PgCluster, db: &str) -> Vec<String> {
    c.psql(
        db,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .into_iter()
    .map(|r| r[0].clone().expect("table name"))
    .collect()
}

/// Row count and an order-independent digest of every row's text form.
fn table_digest(c: &PgCluster, db: &str, table: &str) -> String {
    scalar(
        c,
        db,
        &format!(
            "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '-')
             FROM {table} t"
        ),
    )
}

/// Rows of a two-column query as a map, keys prefixed with `kind`.
fn pairs(c: &PgCluster, db: &str, kind: &str, sql: &str, out: &mut BTreeMap<String, String>) {
    for r in c.psql(db, sql) {
        let key = r[0].clone().expect("key");
        let value = r[1].clone().unwrap_or_else(|| "NULL".into());
        out.insert(format!("{kind} {key}"), value);
    }
}

const USER_SCHEMAS: &str = "NOT IN ('pg_catalog', 'information_schema')";

/// Schema (tables, columns, indexes, constraints, views, sequences) and data
/// of a database, comparable between two databases.
fn db_state(c: &PgCluster, db: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    pairs(
        c,
        db,
        "column",
        &format!(
            "SELECT table_schema || '.' || table_name || '.' || column_name,
                    concat_ws(' | ', ordinal_position, data_type, character_maximum_length,
                              numeric_precision, numeric_scale, is_nullable, column_default,
                              is_generated, generation_expression, is_identity)
             FROM information_schema.columns WHERE table_schema {USER_SCHEMAS}"
        ),
        &mut out,
    );
    pairs(
        c,
        db,
        "index",
        &format!(
            "SELECT schemaname || '.' || indexname, indexdef FROM pg_indexes
             WHERE schemaname {USER_SCHEMAS}"
        ),
        &mut out,
    );
    pairs(
        c,
        db,
        "constraint",
        &format!(
            "SELECT c.conrelid::regclass::text || '.' || c.conname,
                    pg_get_constraintdef(c.oid) || CASE WHEN c.convalidated THEN '' ELSE ' (not valid)' END
             FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE n.nspname {USER_SCHEMAS}"
        ),
        &mut out,
    );
    pairs(
        c,
        db,
        "view",
        &format!(
            "SELECT schemaname || '.' || viewname, definition FROM pg_views
             WHERE schemaname {USER_SCHEMAS}"
        ),
        &mut out,
    );
    pairs(
        c,
        db,
        "sequence",
        &format!(
            "SELECT schemaname || '.' || sequencename, coalesce(last_value::text, 'not called')
             FROM pg_sequences WHERE schemaname {USER_SCHEMAS}"
        ),
        &mut out,
    );
    for t in user_tables(c, db) {
        let digest = table_digest(c, db, &t);
        out.insert(format!("data {t}"), digest);
    }
    out
}

fn assert_same_state(got: &BTreeMap<String, String>, want: &BTreeMap<String, String>, what: &str) {
    let mut diffs = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => diffs.push(format!("missing {k} = {v}")),
            Some(g) if g != v => diffs.push(format!("{k}: {g}\n      expected {v}")),
            _ => {}
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            diffs.push(format!("unexpected {k} = {v}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} difference(s):\n  {}",
        diffs.len(),
        diffs.join("\n  ")
    );
}

/// `ripcord --json restore ARGS`, checked to succeed and report a matching
/// checksum for every table it restored. Returns the JSON report.
fn restore_json(ws: &Workspace, args: &[&str]) -> Value {
    let mut all = vec!["restore"];
    all.extend_from_slice(args);
    let v = ws.json(&all);
    let dbs = v["databases"]
        .as_array()
        .unwrap_or_else(|| panic!("restore --json has no databases: {v}"));
    assert_eq!(dbs.len(), 1, "one database restored: {v}");
    let checks = dbs[0]["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {v}"));
    assert!(!checks.is_empty(), "no table was checked: {v}");
    for c in checks {
        assert_eq!(c["checksum_matches"], true, "checksum of {c} after restore");
        assert_eq!(c["rows"], c["expected_rows"], "rows of {c} after restore");
    }
    v
}

/// The tables of the postgres target `app` in `show ID --json`.
fn shown_tables(ws: &Workspace, id: &str) -> Vec<Value> {
    let v = ws.json(&["show", id]);
    let targets = v["manifest"]["targets"].as_array().expect("targets");
    let app = targets
        .iter()
        .find(|t| t["name"] == "app")
        .unwrap_or_else(|| panic!("no target app in {v}"));
    assert_eq!(app["kind"], "postgres", "kind of target app: {v}");
    app["tables"].as_array().expect("tables").clone()
}

fn shown_table<'a>(tables: &'a [Value], schema: &str, name: &str) -> &'a Value {
    tables
        .iter()
        .find(|t| t["schema"] == schema && t["name"] == name)
        .unwrap_or_else(|| panic!("no table {schema}.{name} in {tables:?}"))
}

fn snapshot_tags(ws: &Workspace) -> Vec<(String, Vec<String>)> {
    let v = ws.json(&["snapshots"]);
    v.as_array()
        .expect("snapshots --json is a list")
        .iter()
        .map(|s| {
            (
                s["snapshot"].as_str().expect("id").to_string(),
                s["tags"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .map(|x| x.as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Checks the repository with `verify --deep`.
fn verify_deep(ws: &Workspace) {
    let out = ws.run(&["verify", "--deep"]);
    assert_eq!(out.code, Some(0), "verify --deep must pass\n{out}");
}

fn expect_failure(out: &Output, code: i32, phrases: &[&str]) {
    out.assert_code(code);
    for p in phrases {
        out.assert_stderr_has(p);
    }
}

// ---------------------------------------------------------------------------
// 1. Whole-database round trip
// ---------------------------------------------------------------------------

const RICH_SCHEMA: &str = r#"
CREATE SCHEMA sales;
CREATE TABLE customers (
    id serial PRIMARY KEY,
    name text NOT NULL,
    email text UNIQUE,
    created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE items (
    id bigint PRIMARY KEY,
    qty int,
    price numeric(12,2),
    ratio numeric,
    attrs jsonb,
    blob bytea,
    note text,
    seen timestamptz
);
CREATE INDEX items_attrs_idx ON items USING gin (attrs);
CREATE INDEX items_price_idx ON items (price) WHERE note IS NOT NULL;
CREATE TABLE sales.orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    item_id bigint REFERENCES items (id) ON DELETE SET NULL,
    qty int NOT NULL CHECK (qty > 0),
    unit_price numeric(12,2) NOT NULL,
    total numeric GENERATED ALWAYS AS (qty * unit_price) STORED
);
CREATE INDEX orders_customer_idx ON sales.orders (customer_id, id DESC);
CREATE VIEW sales.order_totals AS
    SELECT customer_id, sum(total) AS spent, count(*) AS n FROM sales.orders GROUP BY customer_id;
CREATE TABLE empty_table (id int, label varchar(20));
CREATE SEQUENCE invoice_no START 1000;
SELECT setval('invoice_no', 4242);

INSERT INTO customers (name, email, created)
SELECT 'Kundin ' || i || E' \u00e9\u00df "q" \t' || repeat('x', i % 13),
       CASE WHEN i % 5 = 0 THEN NULL ELSE 'c' || i || '@example.org' END,
       '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 hour 3.141592 seconds'
FROM generate_series(1, 2000) i;

INSERT INTO items
SELECT i,
       CASE WHEN i % 7 = 0 THEN NULL ELSE (i * 37) % 1000 - 500 END,
       (i * 3.17)::numeric(12,2),
       CASE WHEN i % 11 = 0 THEN NULL ELSE i::numeric / 7 END,
       CASE WHEN i % 9 = 0 THEN NULL
            ELSE jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 5, null),
                                    'nested', jsonb_build_object('x', i::float8 / 3, 's', 'é' || i)) END,
       CASE WHEN i % 13 = 0 THEN NULL
            ELSE decode(md5(i::text) || '00ff00', 'hex') || int8send(i::bigint * 1000000007) END,
       CASE WHEN i % 3 = 0 THEN NULL ELSE E'line1\nline2 ' || i END,
       CASE WHEN i % 17 = 0 THEN NULL
            ELSE '2023-06-15 12:00:00.123456+02'::timestamptz + i * interval '37 minutes 13.123456 seconds' END
FROM generate_series(1, 5000) i;

INSERT INTO sales.orders (customer_id, item_id, qty, unit_price)
SELECT 1 + (i * 7) % 2000,
       CASE WHEN i % 10 = 0 THEN NULL ELSE 1 + (i * 13) % 5000 END,
       1 + i % 9,
       (i % 500) * 1.25
FROM generate_series(1, 8000) i;
"#;

#[test]
fn whole_database_round_trip_into_a_new_database() {
    let c = cluster();
    let src = new_db(c, "roundtrip_src");
    c.psql(&src, RICH_SCHEMA);
    let want = db_state(c, &src);
    assert!(want.contains_key("data sales.orders"), "{want:?}");
    assert_eq!(want["sequence public.invoice_no"], "4242");

    let ws = workspace_for(&c.url(&src), None);
    let id = ws.snapshot_id(&["app", "--jobs", "2"]);
    let tables = shown_tables(&ws, &id);
    assert_eq!(tables.len(), 4, "tables in the snapshot: {tables:?}");
    assert_eq!(shown_table(&tables, "public", "items")["rows"], 5000);
    assert_eq!(shown_table(&tables, "sales", "orders")["rows"], 8000);
    assert_eq!(shown_table(&tables, "public", "empty_table")["rows"], 0);

    let dst = fresh_name("roundtrip_dst");
    let v = restore_json(
        &ws,
        &[&id, "--into", &c.url(&dst), "--create", "--jobs", "2"],
    );
    let checks = v["databases"][0]["checks"].as_array().expect("checks");
    let checked: Vec<&str> = checks
        .iter()
        .map(|c| c["table"].as_str().expect("table"))
        .collect();
    assert_eq!(checks.len(), 4, "every table is checked: {checked:?}");
    assert_eq!(v["databases"][0]["created"], true);

    assert_same_state(&db_state(c, &dst), &want, "restored database");
    // The source is untouched.
    assert_same_state(&db_state(c, &src), &want, "source database");
    // The generated column is computed again, and the view works.
    assert_eq!(
        scalar(c, &dst, "SELECT sum(spent)::text FROM sales.order_totals"),
        scalar(c, &src, "SELECT sum(spent)::text FROM sales.order_totals")
    );
    // Constraints are enforced in the copy.
    let mut client = c.client(&dst);
    let err = client
        .batch_execute(
            "INSERT INTO sales.orders (customer_id, qty, unit_price) VALUES (999999, 1, 1)",
        )
        .expect_err("the foreign key is enforced");
    assert_eq!(err.code().map(|s| s.code()), Some("23503"), "{err}");
    // Sequences continue where they were.
    assert_eq!(
        scalar_i64(c, &dst, "SELECT nextval('customers_id_seq')"),
        2001
    );
    c.drop_database(&dst).ok();
    c.drop_database(&src).ok();
}

/// A whole-database restore was slower than pg_restore: rows were written
/// unfrozen (the read-back then set every hint bit and rewrote every page)
/// and the read-back waited for every table and index. Now each table is
/// loaded in one transaction with FREEZE and read back as soon as it is in.
#[test]
fn slow_whole_database_restore_loads_frozen_and_checks_while_loading() {
    let c = cluster();
    let src = new_db(c, "frozen_src");
    c.psql(
        &src,
        // Three tables of one size: none is more than a worker's share, so
        // each is loaded whole, in parts, in one transaction.
        "CREATE TABLE big (id int PRIMARY KEY, body text);
         INSERT INTO big SELECT i, repeat(md5(i::text), 2) FROM generate_series(1, 20000) i;
         CREATE TABLE big2 (LIKE big INCLUDING ALL);
         INSERT INTO big2 SELECT * FROM big;
         CREATE TABLE big3 (id int PRIMARY KEY REFERENCES big (id), body text);
         INSERT INTO big3 SELECT * FROM big;
         CREATE TABLE nothing (id int);",
    );
    let want = db_state(c, &src);
    let ws = workspace_for(&c.url(&src), Some(1));
    let id = ws.snapshot_id(&["app", "--jobs", "2"]);
    let parts = shown_table(&shown_tables(&ws, &id), "public", "big")["parts"]
        .as_array()
        .expect("parts")
        .len();
    assert!(parts >= 2, "big is split: {parts} part(s)");

    let dst = fresh_name("frozen_dst");
    let v = restore_json(
        &ws,
        &[&id, "--into", &c.url(&dst), "--create", "--jobs", "2"],
    );
    let db = &v["databases"][0];
    let checks = db["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 4, "every table is checked: {checks:?}");
    let phases: Vec<&str> = db["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["phase"].as_str().expect("phase"))
        .collect();
    assert_eq!(
        phases,
        ["create", "connect", "schema", "load", "indexes", "check"],
        "{db}"
    );
    assert_same_state(&db_state(c, &dst), &want, "restored database");

    // Every row is frozen (committed and frozen bits set), every page all-visible.
    c.psql(&dst, "CREATE EXTENSION pageinspect");
    for t in ["big", "big2", "big3"] {
        let unfrozen = scalar_i64(
            c,
            &dst,
            &format!(
                "SELECT count(*) FROM generate_series(0, pg_relation_size('{t}') / 8192 - 1) p,
                        LATERAL heap_page_items(get_raw_page('{t}', p::int)) i
                 WHERE i.lp_flags = 1 AND i.t_infomask & 768 <> 768"
            ),
        );
        assert_eq!(unfrozen, 0, "rows of {t} restored unfrozen");
        let pages_not_visible = scalar_i64(
            c,
            &dst,
            &format!(
                "SELECT count(*) FROM generate_series(0, pg_relation_size('{t}') / 8192 - 1) p
                 WHERE (page_header(get_raw_page('{t}', p::int))).flags & 4 = 0"
            ),
        );
        assert_eq!(
            pages_not_visible, 0,
            "pages of {t} restored without all-visible"
        );
    }
    c.drop_database(&dst).ok();
    c.drop_database(&src).ok();
}

/// A whole-database restore built every index only after the last table
/// was loaded and read back, so the index builds of large tables waited
/// for everything else. Now a large table's own indexes and key
/// constraints are built as soon as it is checked, while the others still
/// load; foreign keys come at the end. Killed right after the first such
/// build, the restore leaves that table indexed and the foreign key not yet
/// made, and a `--clean` restore then finishes the job.
#[test]
fn slow_restore_builds_a_large_tables_indexes_as_soon_as_it_is_checked() {
    let c = cluster();
    let src = new_db(c, "early_idx_src");
    c.psql(
        &src,
        "CREATE TABLE big (id int PRIMARY KEY, code text UNIQUE, body text);
         INSERT INTO big SELECT i, 'c' || i, repeat(md5(i::text), 3) FROM generate_series(1, 120000) i;
         CREATE INDEX big_body_idx ON big (left(body, 8));
         CREATE TABLE refs (id int PRIMARY KEY, big_id int REFERENCES big (id));
         INSERT INTO refs SELECT i, i FROM generate_series(1, 1000) i;",
    );
    let size = scalar_i64(c, &src, "SELECT pg_relation_size('big')");
    assert!(size > 12 << 20, "big is only {size} bytes");
    let want = db_state(c, &src);
    let ws = workspace_for(&c.url(&src), Some(1));
    let id = ws.snapshot_id(&["app", "--jobs", "2"]);

    let dst = fresh_name("early_idx_dst");
    let out = ws.run_env(
        &[
            "restore",
            &id,
            "--into",
            &c.url(&dst),
            "--create",
            "--jobs",
            "2",
        ],
        &[("RIPCORD_FAILPOINT", "pg-table-indexed:1")],
    );
    assert_eq!(
        out.signal,
        Some(9),
        "the failpoint kills the restore\n{out}"
    );
    let indexes = scalar_i64(
        c,
        &dst,
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'big'",
    );
    assert_eq!(indexes, 3, "big's key, unique and plain indexes are built");
    let foreign_keys = scalar_i64(
        c,
        &dst,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f'",
    );
    assert_eq!(foreign_keys, 0, "the foreign key comes after every table");
    verify_deep(&ws);

    let v = restore_json(
        &ws,
        &[&id, "--into", &c.url(&dst), "--clean", "--jobs", "2"],
    );
    let checks = v["databases"][0]["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 2, "every table is checked: {checks:?}");
    assert_same_state(&db_state(c, &dst), &want, "restored after the kill");
    c.drop_database(&dst).ok();

    let fresh = fresh_name("early_idx_fresh");
    restore_json(
        &ws,
        &[&id, "--into", &c.url(&fresh), "--create", "--jobs", "2"],
    );
    assert_same_state(&db_state(c, &fresh), &want, "restored database");
    c.drop_database(&fresh).ok();
    c.drop_database(&src).ok();
}

// ---------------------------------------------------------------------------
// 2. Consistency while the application writes
// ---------------------------------------------------------------------------

const ACCOUNTS: i64 = 200_000;
const START_BALANCE: i64 = 1000;

fn create_bank(c: &PgCluster, db: &str) {
    c.psql(
        db,
        &format!(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, ops int NOT NULL);
             INSERT INTO accounts SELECT i, {START_BALANCE}, 0 FROM generate_series(1, {ACCOUNTS}) i;
             CREATE TABLE ledger (id bigserial PRIMARY KEY, src int NOT NULL, dst int NOT NULL,
                                  amount bigint NOT NULL);"
        ),
    );
    c.psql(db, "VACUUM ANALYZE accounts");
}

/// Every transfer moves money between two accounts, counts one operation on
/// each and writes one ledger row, in one transaction. A copy that saw part
/// of the accounts (or the ledger) at another moment than the rest breaks
/// one of these.
fn assert_bank_consistent(c: &PgCluster, db: &str, what: &str) -> i64 {
    let accounts = scalar_i64(c, db, "SELECT count(*) FROM accounts");
    assert_eq!(accounts, ACCOUNTS, "{what}: accounts");
    let total = scalar_i64(c, db, "SELECT sum(balance) FROM accounts");
    assert_eq!(total, ACCOUNTS * START_BALANCE, "{what}: total balance");
    let transfers = scalar_i64(c, db, "SELECT count(*) FROM ledger");
    let ops = scalar_i64(c, db, "SELECT sum(ops) FROM accounts");
    assert_eq!(
        ops,
        2 * transfers,
        "{what}: the balances reflect {} transfers, the ledger holds {transfers}",
        ops / 2
    );
    let wrong = scalar_i64(
        c,
        db,
        &format!(
            "SELECT count(*) FROM accounts a LEFT JOIN (
                 SELECT id, sum(delta) AS delta, count(*) AS n FROM (
                     SELECT src AS id, -amount AS delta FROM ledger
                     UNION ALL SELECT dst, amount FROM ledger) x GROUP BY id) l USING (id)
             WHERE a.balance <> {START_BALANCE} + coalesce(l.delta, 0) OR a.ops <> coalesce(l.n, 0)"
        ),
    );
    assert_eq!(wrong, 0, "{what}: accounts disagreeing with the ledger");
    let max_id = scalar_i64(c, db, "SELECT coalesce(max(id), 0) FROM ledger");
    assert_eq!(max_id, transfers, "{what}: the ledger has no gaps");
    transfers
}

#[test]
fn snapshots_are_consistent_while_the_application_writes() {
    let c = cluster();
    let src = new_db(c, "bank");
    create_bank(c, &src);
    let ws = workspace_for(&c.url(&src), Some(1));

    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let ids = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut client = c.client(&src);
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            while !stop.load(Ordering::Relaxed) {
                let from = 1 + next() % ACCOUNTS as u64;
                let mut to = 1 + next() % ACCOUNTS as u64;
                if to == from {
                    to = 1 + to % ACCOUNTS as u64;
                }
                let amount = 1 + next() % 100;
                client
                    .batch_execute(&format!(
                        "BEGIN;
                         UPDATE accounts SET balance = balance - {amount}, ops = ops + 1 WHERE id = {from};
                         UPDATE accounts SET balance = balance + {amount}, ops = ops + 1 WHERE id = {to};
                         INSERT INTO ledger (src, dst, amount) VALUES ({from}, {to}, {amount});
                         COMMIT;"
                    ))
                    .expect("transfer");
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
        assert!(
            process::wait_until(Duration::from_secs(30), || done.load(Ordering::Relaxed)
                >= 100),
            "the writer does not make progress"
        );
        let mut ids = Vec::new();
        for _ in 0..2 {
            let before = done.load(Ordering::Relaxed);
            let id = ws.snapshot_id(&["app", "--jobs", "4"]);
            let after = done.load(Ordering::Relaxed);
            println!(
                "snapshot {id}: {} transfers committed while it ran",
                after - before
            );
            assert!(after > before, "no transfer happened during the snapshot");
            ids.push(id);
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer thread");
        ids
    });

    let mut seen = Vec::new();
    for id in &ids {
        let tables = shown_tables(&ws, id);
        let accounts = shown_table(&tables, "public", "accounts");
        let parts = accounts["parts"].as_array().expect("parts").len();
        assert!(
            parts >= 4,
            "accounts should be split in several parts, has {parts}"
        );
        let dst = fresh_name("bank_copy");
        restore_json(
            &ws,
            &[id, "--into", &c.url(&dst), "--create", "--jobs", "4"],
        );
        let transfers = assert_bank_consistent(c, &dst, &format!("snapshot {id}"));
        println!("snapshot {id}: {parts} parts of accounts, {transfers} transfers");
        assert!(transfers > 0, "snapshot {id} holds no transfer");
        seen.push(transfers);
        c.drop_database(&dst).ok();
    }
    assert!(seen[1] > seen[0], "the second snapshot is later: {seen:?}");
    assert_bank_consistent(c, &src, "the live database");
    c.drop_database(&src).ok();
}

// ---------------------------------------------------------------------------
// 3. Large tables split into parallel block ranges
// ---------------------------------------------------------------------------

#[test]
fn large_tables_are_split_and_restored_exactly() {
    let c = cluster();
    let src = new_db(c, "split");
    c.psql(
        &src,
        "CREATE TABLE big (id int PRIMARY KEY, grp int NOT NULL, payload text, at timestamptz);
         INSERT INTO big SELECT i, i % 97, md5(i::text) || repeat(chr(65 + i % 26), i % 60),
                                '2020-01-01'::timestamptz + i * interval '1 second'
         FROM generate_series(1, 60000) i;
         CREATE INDEX big_grp_idx ON big (grp);
         DELETE FROM big WHERE id % 10 = 3;
         UPDATE big SET payload = 'changed ' || id WHERE id % 100 = 42;
         CREATE TABLE small (id int PRIMARY KEY, big_id int REFERENCES big (id));
         INSERT INTO small SELECT i, i * 10 FROM generate_series(1, 100) i;",
    );
    let size = scalar_i64(c, &src, "SELECT pg_relation_size('big')");
    assert!(size > 4 << 20, "big is only {size} bytes");
    let want = db_state(c, &src);

    let ws = workspace_for(&c.url(&src), Some(1));
    let id = ws.snapshot_id(&["app", "--jobs", "2"]);
    let tables = shown_tables(&ws, &id);
    let big = shown_table(&tables, "public", "big");
    let parts = big["parts"].as_array().expect("parts");
    println!("big: {size} bytes in {} parts", parts.len());
    assert!(
        parts.len() >= 4,
        "big should be split, has {} part(s)",
        parts.len()
    );
    assert_eq!(big["rows"], 54000);
    let total: u64 = parts
        .iter()
        .map(|p| p["size"].as_u64().expect("size"))
        .sum();
    assert_eq!(big["size"].as_u64(), Some(total), "part sizes add up");
    assert_eq!(
        shown_table(&tables, "public", "small")["parts"]
            .as_array()
            .expect("parts")
            .len(),
        1,
        "small tables are one part"
    );

    let dst = fresh_name("split_copy");
    restore_json(
        &ws,
        &[&id, "--into", &c.url(&dst), "--create", "--jobs", "2"],
    );
    assert_same_state(&db_state(c, &dst), &want, "restored split table");
    c.drop_database(&dst).ok();
    c.drop_database(&src).ok();
}

// ---------------------------------------------------------------------------
// 4. Table-level snapshots and restores
// ---------------------------------------------------------------------------

fn fk_from_orders(c: &PgCluster, db: &str) -> Vec<String> {
    c.psql(
        db,
        "SELECT conname || ': ' || pg_get_constraintdef(oid) || CASE WHEN convalidated THEN '' ELSE ' (not valid)' END
         FROM pg_constraint WHERE contype = 'f' AND conrelid = 'orders'::regclass ORDER BY 1",
    )
    .into_iter()
    .map(|r| r[0].clone().expect("constraint"))
    .collect()
}

#[test]
fn single_tables_are_snapshotted_and_restored_in_place() {
    let c = cluster();
    let db = new_db(c, "tables");
    c.psql(
        &db,
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, vip boolean DEFAULT false);
         CREATE UNIQUE INDEX customers_email_idx ON customers (lower(email));
         INSERT INTO customers SELECT i, 'name ' || i, 'c' || i || '@example.org', i % 10 = 0
         FROM generate_series(1, 3000) i;
         CREATE TABLE orders (id serial PRIMARY KEY,
                              customer_id int NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
                              amount numeric(10,2) NOT NULL);
         CREATE INDEX orders_customer_idx ON orders (customer_id);
         INSERT INTO orders (customer_id, amount)
         SELECT 1 + i % 1500, (i % 1000) / 10.0 FROM generate_series(1, 6000) i;
         CREATE TABLE events (id bigint PRIMARY KEY, body text);
         INSERT INTO events SELECT i, repeat(md5(i::text), 8) FROM generate_series(1, 60000) i;",
    );
    let ws = workspace_for(&c.url(&db), None);

    let customers0 = table_digest(c, &db, "customers");
    let orders0 = table_digest(c, &db, "orders");
    let fk0 = fk_from_orders(c, &db);
    assert_eq!(fk0.len(), 1, "{fk0:?}");
    let state0 = db_state(c, &db);

    let started = Instant::now();
    let full = ws.snapshot_id(&["app", "--jobs", "2"]);
    let full_time = started.elapsed();
    let started = Instant::now();
    let v = ws.snapshot(&["app", "--tables", "customers", "--jobs", "2"]);
    let cust_time = started.elapsed();
    let cust = v["snapshot"].as_str().expect("id").to_string();
    println!("whole database: {full_time:?}, customers only: {cust_time:?}");
    let tables = shown_tables(&ws, &cust);
    let names: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "{}.{}",
                t["schema"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        ["public.customers"],
        "only customers is in the snapshot"
    );
    let full_tables = shown_tables(&ws, &full);
    let events_size = shown_table(&full_tables, "public", "events")["size"]
        .as_u64()
        .expect("size");
    let cust_size = shown_table(&tables, "public", "customers")["size"]
        .as_u64()
        .expect("size");
    let snap_size = v["bytes"].as_u64().expect("bytes");
    assert!(
        snap_size <= cust_size + (64 << 10) && snap_size * 4 < events_size,
        "the customers snapshot read {snap_size} bytes (customers {cust_size}, events {events_size})"
    );

    // Change customers (rows of it that orders references too), restore
    // customers alone, in place.
    c.psql(
        &db,
        "UPDATE customers SET name = 'renamed ' || id, vip = NOT vip WHERE id % 7 = 0;
         UPDATE customers SET email = NULL WHERE id BETWEEN 10 AND 20;
         DELETE FROM customers WHERE id > 2500;",
    );
    assert_ne!(table_digest(c, &db, "customers"), customers0);
    let v = restore_json(&ws, &[&cust, "--tables", "customers", "--jobs", "2"]);
    assert!(v["safety_snapshot"].is_string(), "a safety snapshot: {v}");
    assert_eq!(
        v["databases"][0]["checks"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    assert_eq!(
        table_digest(c, &db, "customers"),
        customers0,
        "customers restored"
    );
    assert_eq!(table_digest(c, &db, "orders"), orders0, "orders untouched");
    assert_eq!(
        fk_from_orders(c, &db),
        fk0,
        "the foreign key from orders, valid"
    );

    // Orders written since the snapshot that reference a customer the
    // snapshot does not have: orders keeps them, and the key cannot stay
    // valid; it is kept NOT VALID, with a warning.
    c.psql(
        &db,
        "INSERT INTO customers VALUES (9001, 'new', 'new@example.org', true);
         INSERT INTO orders (customer_id, amount) VALUES (9001, 12.50), (3, 1.00);",
    );
    let orders1 = table_digest(c, &db, "orders");
    let out = ws.run(&["--json", "restore", &cust, "--tables", "customers"]);
    out.assert_ok();
    out.assert_stderr_has("orders_customer_id_fkey")
        .assert_stderr_has("NOT VALID");
    assert_eq!(
        table_digest(c, &db, "customers"),
        customers0,
        "customers restored"
    );
    assert_eq!(table_digest(c, &db, "orders"), orders1, "orders untouched");
    let fk = fk_from_orders(c, &db);
    assert_eq!(fk.len(), 1, "the foreign key from orders exists: {fk:?}");
    assert!(fk[0].ends_with("(not valid)"), "{fk:?}");
    assert!(
        fk[0].contains("REFERENCES customers(id) ON DELETE CASCADE"),
        "{fk:?}"
    );

    // Back to the state of the whole snapshot for the next steps.
    c.psql(
        &db,
        "DELETE FROM orders WHERE customer_id = 9001 OR id > 6000;
         ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_id_fkey;",
    );
    assert_eq!(table_digest(c, &db, "orders"), orders0);
    assert_eq!(fk_from_orders(c, &db), fk0, "the key is valid again");

    // A dropped table comes back with its index and foreign key.
    c.psql(&db, "DROP TABLE orders");
    let v = restore_json(&ws, &[&full, "--tables", "orders", "--jobs", "2"]);
    assert_eq!(
        v["databases"][0]["checks"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    assert_eq!(table_digest(c, &db, "orders"), orders0, "orders restored");
    assert_eq!(fk_from_orders(c, &db), fk0, "the foreign key of orders");
    assert_same_state(
        &db_state(c, &db),
        &state0,
        "after restoring the dropped table",
    );
    assert_eq!(
        scalar_i64(c, &db, "SELECT nextval('orders_id_seq')"),
        6001,
        "the sequence of orders continues"
    );
    c.psql(&db, "SELECT setval('orders_id_seq', 6000)");

    // A table that lost a column gets it back, and keeps the key from orders.
    c.psql(&db, "ALTER TABLE customers DROP COLUMN name");
    let v = restore_json(&ws, &[&cust, "--tables", "customers"]);
    assert!(v["safety_snapshot"].is_string(), "{v}");
    assert_eq!(
        table_digest(c, &db, "customers"),
        customers0,
        "customers with name"
    );
    assert_eq!(table_digest(c, &db, "orders"), orders0, "orders untouched");
    assert_eq!(fk_from_orders(c, &db), fk0, "the foreign key from orders");
    assert_same_state(
        &db_state(c, &db),
        &state0,
        "after restoring the changed table",
    );
    c.drop_database(&db).ok();
}

// ---------------------------------------------------------------------------
// 5. In-place restore of the whole database
// ---------------------------------------------------------------------------

#[test]
fn in_place_restore_takes_a_safety_snapshot_first() {
    let c = cluster();
    let db = new_db(c, "inplace");
    c.psql(&db, RICH_SCHEMA);
    let want = db_state(c, &db);
    let ws = workspace_for(&c.url(&db), None);
    let id = ws.snapshot_id(&["app", "--jobs", "2"]);

    // Everyday damage: rows changed and deleted, a column added, an index
    // dropped, a sequence moved, and new tables and a view, some depending on
    // the snapshot's tables (they go: the database is to equal the snapshot).
    c.psql(
        &db,
        "UPDATE items SET price = price * 2, attrs = NULL WHERE id % 3 = 0;
         DELETE FROM sales.orders WHERE id % 4 = 0;
         INSERT INTO customers (name) VALUES ('late');
         ALTER TABLE customers ADD COLUMN phone text;
         DROP INDEX items_price_idx;
         SELECT setval('invoice_no', 99999);
         CREATE TABLE added_later (id int PRIMARY KEY, customer_id int REFERENCES customers (id));
         INSERT INTO added_later VALUES (1, 1), (2, 2);
         CREATE VIEW sales.late_view AS SELECT o.id, c.name FROM sales.orders o JOIN customers c
             ON c.id = o.customer_id;
         CREATE TABLE sales.late_notes (id int, note text);",
    );
    let damaged = db_state(c, &db);
    assert_ne!(damaged, want);

    let v = restore_json(&ws, &[&id, "--jobs", "2"]);
    let safety = v["safety_snapshot"]
        .as_str()
        .unwrap_or_else(|| panic!("no safety snapshot: {v}"))
        .to_string();
    assert_same_state(&db_state(c, &db), &want, "database restored in place");

    let listed = snapshot_tags(&ws);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (sid, tags) = listed
        .iter()
        .find(|(_, tags)| tags.iter().any(|t| t == "safety"))
        .unwrap_or_else(|| panic!("no snapshot tagged safety: {listed:?}"));
    assert_eq!(*sid, safety, "the safety snapshot is the one reported");
    assert!(
        tags.iter().any(|t| t.starts_with("before-restore")),
        "{tags:?}"
    );

    // The safety snapshot holds the damaged state.
    let dst = fresh_name("inplace_safety");
    restore_json(&ws, &[&safety, "--into", &c.url(&dst), "--create"]);
    assert_same_state(&db_state(c, &dst), &damaged, "the safety snapshot");
    c.drop_database(&dst).ok();
    c.drop_database(&db).ok();
}

// ---------------------------------------------------------------------------
// 6. Deduplication between snapshots
// ---------------------------------------------------------------------------

#[test]
fn unchanged_rows_are_not_stored_twice() {
    let c = cluster();
    let db = new_db(c, "dedup");
    c.psql(
        &db,
        "CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL,
                                        filler char(84));
         INSERT INTO pgbench_accounts
         SELECT i, 1 + i / 100000, 0, md5(i::text) || md5((i * 7)::text) || lpad(i::text, 20, '0')
         FROM generate_series(1, 200000) i;",
    );
    c.psql(&db, "VACUUM ANALYZE pgbench_accounts");
    let ws = workspace_for(&c.url(&db), None);
    let first = ws.snapshot(&["app", "--jobs", "2"]);
    c.psql(
        &db,
        "UPDATE pgbench_accounts SET abalance = abalance + 17 WHERE aid % 100 = 7",
    );
    let second = ws.snapshot(&["app", "--jobs", "2"]);
    let stored = |v: &Value| v["stats"]["stored_bytes"].as_u64().expect("stored_bytes");
    let new = |v: &Value| v["stats"]["new_bytes"].as_u64().expect("new_bytes");
    println!(
        "first snapshot: {} new, {} stored; after updating 1% of rows: {} new, {} stored",
        new(&first),
        stored(&first),
        new(&second),
        stored(&second)
    );
    assert!(stored(&first) > 1 << 20, "{first}");
    assert!(
        stored(&second) * 10 <= stored(&first),
        "the second snapshot stored {} bytes, more than 10% of the first's {}",
        stored(&second),
        stored(&first)
    );
    // And it restores exactly.
    let want = table_digest(c, &db, "pgbench_accounts");
    let dst = fresh_name("dedup_copy");
    let id = second["snapshot"].as_str().expect("id");
    restore_json(&ws, &[id, "--into", &c.url(&dst), "--create"]);
    assert_eq!(table_digest(c, &dst, "pgbench_accounts"), want);
    c.drop_database(&dst).ok();
    c.drop_database(&db).ok();
}

// ---------------------------------------------------------------------------
// 7. diff
// ---------------------------------------------------------------------------

#[test]
fn diff_reports_table_changes() {
    let c = cluster();
    let db = new_db(c, "diff");
    c.psql(
        &db,
        "CREATE TABLE orders (id int PRIMARY KEY, amount int);
         INSERT INTO orders SELECT i, i FROM generate_series(1, 10) i;
         CREATE TABLE doomed (id int);
         INSERT INTO doomed VALUES (1), (2), (3);
         CREATE TABLE customers (id int PRIMARY KEY, name text);
         INSERT INTO customers VALUES (1, 'a'), (2, 'b');
         CREATE TABLE stable (id int);
         INSERT INTO stable VALUES (1);
         CREATE TABLE prices (id int, price int);
         INSERT INTO prices VALUES (1, 10), (2, 20);",
    );
    let ws = workspace_for(&c.url(&db), None);
    let a = ws.snapshot_id(&["app"]);
    c.psql(
        &db,
        "INSERT INTO orders VALUES (11, 11), (12, 12);
         DROP TABLE doomed;
         CREATE TABLE fresh (id int);
         INSERT INTO fresh VALUES (1), (2), (3), (4);
         ALTER TABLE customers ADD COLUMN email text;
         UPDATE prices SET price = 11 WHERE id = 1;",
    );
    let b = ws.snapshot_id(&["app"]);
    let v = ws.json(&["diff", &a, &b]);
    let targets = v["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 1, "{v}");
    // Structured entries: tables with their rows before and after.
    let entries = targets[0]["entries"].as_array().expect("entries");
    let of = |change: &str| -> Vec<&Value> {
        entries.iter().filter(|e| e["change"] == change).collect()
    };
    let (added, removed, modified) = (of("added"), of("removed"), of("modified"));
    assert!(entries.iter().all(|e| e["kind"] == "table"), "{v}");
    assert_eq!(added.len(), 1, "{v}");
    assert_eq!(
        (&added[0]["path"], &added[0]["rows_after"]),
        (&"public.fresh".into(), &4.into()),
        "{v}"
    );
    assert_eq!(removed.len(), 1, "{v}");
    assert_eq!(removed[0]["path"], "public.doomed", "{v}");
    assert_eq!(modified.len(), 3, "{v}");
    assert_eq!(targets[0]["modified_count"], 3, "{v}");
    let find = |path: &str| {
        modified
            .iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path} not modified: {v}"))
    };
    let orders = find("public.orders");
    assert_eq!(
        (
            orders["rows_before"].as_u64(),
            orders["rows_after"].as_u64()
        ),
        (Some(10), Some(12)),
        "{v}"
    );
    assert_eq!(find("public.customers")["schema_changed"], true, "{v}");
    assert_eq!(find("public.prices")["content_changed"], true, "{v}");

    // The text form says the same.
    let out = ws.ok(&["diff", &a, &b]);
    out.assert_stdout_has("public.fresh")
        .assert_stdout_has("public.doomed")
        .assert_stdout_has("rows 10 -> 12");
    c.drop_database(&db).ok();
}

// ---------------------------------------------------------------------------
// 8. Bad input
// ---------------------------------------------------------------------------

/// Runs a snapshot that must fail, and checks that it left no trace.
fn failed_snapshot(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Output {
    let before = repo_hashes(&ws.repo());
    let ids = ws.snapshot_ids();
    let mut all = vec!["snapshot"];
    all.extend_from_slice(args);
    let out = ws.run_env(&all, env);
    assert_eq!(ws.snapshot_ids(), ids, "no snapshot is recorded\n{out}");
    assert_eq!(
        repo_hashes(&ws.repo()),
        before,
        "the repository is unchanged\n{out}"
    );
    out
}

fn fake_tools(dir: &std::path::Path, version: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for tool in ["pg_dump", "pg_restore"] {
        let path = dir.join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho '{tool} (PostgreSQL) {version}'\nexit 0\n"),
        )
        .expect("write fake tool");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

#[test]
fn unreachable_server_fails_without_a_trace() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{port}/nowhere",
        pg::USER,
        pg::PASSWORD
    );
    let ws = workspace_for(&url, None);
    let out = failed_snapshot(&ws, &["app"], &[]);
    expect_failure(&out, 1, &["cannot reach PostgreSQL", &port.to_string()]);
    assert!(
        !out.stderr.contains(pg::PASSWORD),
        "the password is not shown\n{out}"
    );
}

#[test]
fn wrong_password_is_a_usage_error() {
    let c = cluster();
    let db = new_db(c, "badpw");
    c.psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let url = format!(
        "postgres://{}:not-the-password@127.0.0.1:{}/{db}",
        pg::USER,
        c.port()
    );
    let ws = workspace_for(&url, None);
    let out = failed_snapshot(&ws, &["app"], &[]);
    expect_failure(&out, 2, &["credentials", "password"]);
    assert!(
        !out.stderr.contains("not-the-password"),
        "the password is not shown\n{out}"
    );
    c.drop_database(&db).ok();
}

#[test]
fn missing_or_mismatched_pg_dump_is_a_usage_error() {
    let c = cluster();
    let db = new_db(c, "tools");
    c.psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let ws = workspace_for(&c.url(&db), None);

    let empty = ws.path("no-tools");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let empty = empty.display().to_string();
    let out = failed_snapshot(&ws, &["app"], &[("RIPCORD_PG_BINDIR", &empty)]);
    expect_failure(&out, 2, &["pg_dump", "not found", "RIPCORD_PG_BINDIR"]);

    let old = ws.path("old-tools");
    fake_tools(&old, "9.6.0");
    let old = old.display().to_string();
    let out = failed_snapshot(&ws, &["app"], &[("RIPCORD_PG_BINDIR", &old)]);
    expect_failure(&out, 2, &["pg_dump", "version 9", "15"]);

    // With the right tools it works.
    ws.snapshot_id(&["app"]);
    c.drop_database(&db).ok();
}

#[test]
fn unknown_table_is_a_usage_error() {
    let c = cluster();
    let db = new_db(c, "unknown");
    c.psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let ws = workspace_for(&c.url(&db), None);
    let out = failed_snapshot(&ws, &["app", "--tables", "t,no_such_table"], &[]);
    expect_failure(&out, 2, &["no_such_table", "does not exist"]);

    // And in a restore.
    let id = ws.snapshot_id(&["app"]);
    let before = repo_hashes(&ws.repo());
    let state = db_state(c, &db);
    let out = ws.run(&["restore", &id, "--tables", "no_such_table"]);
    expect_failure(&out, 2, &["no_such_table"]);
    // A near miss names the table meant.
    let out = ws.run(&["restore", &id, "--tables", "public.tt"]);
    expect_failure(&out, 2, &["public.tt", "did you mean public.t?"]);
    assert_eq!(
        repo_hashes(&ws.repo()),
        before,
        "repository unchanged\n{out}"
    );
    assert_eq!(ws.snapshot_ids(), [id], "no safety snapshot either\n{out}");
    assert_same_state(
        &db_state(c, &db),
        &state,
        "database after a refused restore",
    );
    c.drop_database(&db).ok();
}

#[test]
fn restore_into_a_non_empty_database_is_refused() {
    let c = cluster();
    let src = new_db(c, "refuse_src");
    c.psql(
        &src,
        "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);",
    );
    let ws = workspace_for(&c.url(&src), None);
    let id = ws.snapshot_id(&["app"]);

    let other = new_db(c, "refuse_dst");
    c.psql(
        &other,
        "CREATE TABLE precious (id int PRIMARY KEY, v text);
         INSERT INTO precious VALUES (1, 'keep me'), (2, 'me too');",
    );
    let state = db_state(c, &other);
    let before = repo_hashes(&ws.repo());
    let out = ws.run(&["restore", &id, "--into", &c.url(&other)]);
    expect_failure(&out, 3, &["not empty", "--clean"]);
    assert_same_state(&db_state(c, &other), &state, "the refused database");
    assert_eq!(
        repo_hashes(&ws.repo()),
        before,
        "repository unchanged\n{out}"
    );

    // --create on an existing database is refused too.
    let out = ws.run(&["restore", &id, "--into", &c.url(&other), "--create"]);
    expect_failure(&out, 3, &["already exists"]);
    assert_same_state(&db_state(c, &other), &state, "the refused database");

    // With --clean it is replaced.
    restore_json(&ws, &[&id, "--into", &c.url(&other), "--clean"]);
    assert_eq!(table_digest(c, &other, "t"), table_digest(c, &src, "t"));
    c.drop_database(&other).ok();
    c.drop_database(&src).ok();
}

#[test]
fn server_killed_during_a_snapshot() {
    let own = PgCluster::start().expect("start a PostgreSQL cluster");
    let db = new_db(&own, "dying");
    own.psql(
        &db,
        "CREATE TABLE big (id int PRIMARY KEY, body text);
         INSERT INTO big SELECT i, repeat(md5(i::text), 6) FROM generate_series(1, 200000) i;",
    );
    let ws = workspace_for(&own.url(&db), None);
    let before = repo_hashes(&ws.repo());

    let child = ws
        .command(&["snapshot", "app", "--jobs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ripcord");
    let mut watcher = own.client("postgres");
    let copying = process::wait_until(Duration::from_secs(60), || {
        let rows = watcher
            .query(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %TO STDOUT%' AND state = 'active'",
                &[],
            )
            .expect("pg_stat_activity");
        rows[0].get::<_, i64>(0) > 0
    });
    assert!(copying, "the snapshot never started copying");
    std::thread::sleep(Duration::from_millis(100));
    own.kill();
    let out = child.wait_with_output().expect("wait for ripcord");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the snapshot cannot succeed: {stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a dead server is a failure (1): {stderr}"
    );
    assert!(
        stderr.contains("PostgreSQL"),
        "the message names the cause: {stderr}"
    );
    println!("snapshot with the server killed: {}", stderr.trim());
    assert!(ws.snapshot_ids().is_empty(), "no snapshot is recorded");
    verify_deep(&ws);
    let after = repo_hashes(&ws.repo());
    // Packs written before the failure may remain; the configuration, keys
    // and snapshot list do not change.
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "{k} changed");
    }
    assert!(
        !after.keys().any(|k| k.starts_with("snapshots/")),
        "{after:?}"
    );
}

// ---------------------------------------------------------------------------
// 9. Crashes of ripcord itself
// ---------------------------------------------------------------------------

#[test]
fn crash_while_copying_or_loading_parts() {
    let c = cluster();
    let src = new_db(c, "crash");
    c.psql(
        &src,
        "CREATE TABLE big (id int PRIMARY KEY, body text);
         INSERT INTO big SELECT i, repeat(md5(i::text), 2) FROM generate_series(1, 40000) i;
         CREATE TABLE refs (id int PRIMARY KEY, big_id int REFERENCES big (id));
         INSERT INTO refs SELECT i, i FROM generate_series(1, 1000) i;",
    );
    let want = db_state(c, &src);
    let ws = workspace_for(&c.url(&src), Some(1));

    let out = ws.run_env(
        &["snapshot", "app", "--jobs", "2"],
        &[("RIPCORD_FAILPOINT", "pg-part-copied:2")],
    );
    assert_eq!(
        out.signal,
        Some(9),
        "the failpoint kills the snapshot\n{out}"
    );
    verify_deep(&ws);
    assert!(ws.snapshot_ids().is_empty(), "no snapshot is recorded");

    let id = ws.snapshot_id(&["app", "--jobs", "2"]);
    assert_eq!(ws.snapshot_ids(), std::slice::from_ref(&id));
    let parts = shown_table(&shown_tables(&ws, &id), "public", "big")["parts"]
        .as_array()
        .expect("parts")
        .len();
    assert!(parts >= 2, "big is split: {parts} part(s)");

    let dst = fresh_name("crash_copy");
    let out = ws.run_env(
        &[
            "restore",
            &id,
            "--into",
            &c.url(&dst),
            "--create",
            "--jobs",
            "2",
        ],
        &[("RIPCORD_FAILPOINT", "pg-part-loaded:1")],
    );
    assert_eq!(
        out.signal,
        Some(9),
        "the failpoint kills the restore\n{out}"
    );
    verify_deep(&ws);
    assert_eq!(ws.snapshot_ids(), std::slice::from_ref(&id));

    restore_json(
        &ws,
        &[&id, "--into", &c.url(&dst), "--clean", "--jobs", "2"],
    );
    assert_same_state(
        &db_state(c, &dst),
        &want,
        "restored after a crashed restore",
    );
    c.drop_database(&dst).ok();
    c.drop_database(&src).ok();
}

/// `--into DIR` gives every target DIR/<name>; a PostgreSQL target is a
/// database, so a folder given for it among other targets is refused with
/// the two commands to run instead, and nothing is written.
#[test]
fn into_a_folder_with_a_postgres_target_among_others_is_refused_clearly() {
    let c = cluster();
    let db = new_db(c, "into_folder");
    c.psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let mut ws = Workspace::new(bin());
    ws.append_config(&format!(
        "[targets.app]\nkind = \"postgres\"\nurl = \"{}\"\n",
        c.url(&db)
    ));
    let files = ws.dir_target("files", "files", &[]);
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a.txt"), b"a\n").unwrap();
    ws.init();
    let id = ws.snapshot_id(&[] as &[&str]);
    // `ls` shows the database's tables with rows and stored bytes.
    let listed = ws.json(&["ls", &id, "app"]);
    let t = &listed["entries"][0];
    assert_eq!(
        (&t["path"], &t["kind"], &t["rows"]),
        (&"public.t".into(), &"table".into(), &1.into()),
        "{listed}"
    );
    assert!(t["bytes"].as_u64().is_some_and(|b| b > 0), "{listed}");
    let into = ws.path("check");
    let out = ws.run(&["restore", &id, "--into", into.to_str().unwrap()]);
    expect_failure(
        &out,
        2,
        &[
            "target \"app\" is a PostgreSQL database",
            "not the folder",
            "--target app --into postgres://",
            "--target files --into",
        ],
    );
    assert!(!into.exists(), "nothing written\n{out}");
    // The two commands the hint gives work.
    ws.ok(&[
        "restore",
        &id,
        "--target",
        "files",
        "--into",
        into.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(into.join("files/a.txt")).unwrap(), b"a\n");
    let copy = fresh_name("into_folder_copy");
    ws.ok(&[
        "restore",
        &id,
        "--target",
        "app",
        "--into",
        &c.url(&copy),
        "--create",
    ]);
    assert_eq!(scalar(c, &copy, "SELECT count(*)::text FROM t"), "1");
    // A URL for both: one database cannot take two targets.
    let out = ws.run(&["restore", &id, "--into", &c.url(&copy)]);
    expect_failure(&out, 2, &["is one database; this restore has 2 targets"]);
    c.drop_database(&copy).ok();
    c.drop_database(&db).ok();
}
