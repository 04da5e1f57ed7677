//! Every kind of PostgreSQL table behind `migrate up` and `migrate down`:
//! partitioned tables (their rows live in their partitions), inheritance
//! trees, unlogged tables, row-level security, and tables no snapshot can
//! protect (foreign tables, tables the role may not read). Each test works
//! in databases of its own on the shared throwaway cluster.

use ripcord_testing::app::{exec, pg_database as new_db, pg_workspace, rows};
use ripcord_testing::data::write_file;
use ripcord_testing::pg::{self, PgCluster};
use ripcord_testing::Workspace;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ripcord")
}

fn cluster() -> &'static PgCluster {
    pg::shared()
}

/// A workspace whose postgres target `app` is `db` reached as `user`.
fn workspace(db: &str, user: Option<(&str, &str)>) -> Workspace {
    let url = match user {
        None => cluster().url(db),
        Some((user, password)) => format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{db}",
            cluster().port()
        ),
    };
    pg_workspace(bin(), &url, "")
}

/// One change, `0001_change`, with no down script.
fn change(ws: &Workspace, up: &str) {
    write_file(&ws.path("migrations/0001_change/up.sql"), up.as_bytes());
}

/// The shape of a partition or inheritance tree: each table, its parent,
/// its kind, persistence and partition bounds.
fn shape(db: &str) -> Vec<String> {
    rows(
        db,
        "SELECT c.relname, coalesce(p.relname, '-'), c.relkind, c.relpersistence,
                coalesce(pg_get_expr(c.relpartbound, c.oid), '-')
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'f')
         ORDER BY 1",
    )
}

/// Indexes of public tables, with the partitioned index each is attached to.
fn indexes(db: &str) -> Vec<String> {
    rows(
        db,
        "SELECT c.relname, t.relname, coalesce(p.relname, '-'), x.indisvalid
         FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent
         WHERE n.nspname = 'public' ORDER BY 1",
    )
}

/// The original bug: a partitioned table got an empty safety snapshot, so
/// after `down` the dropped column came back NULL and the deleted rows did
/// not come back. Now every row and value is back, in the same partitions.
#[test]
fn partitioned_table_comes_back_whole_in_its_partitions() {
    let db = new_db("kinds_partitioned");
    exec(
        &db,
        "CREATE TABLE events (id int NOT NULL, at date NOT NULL, note text,
             PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE events_2024 PARTITION OF events
             FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE events_2025 PARTITION OF events
             FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY RANGE (id);
         CREATE TABLE events_2025_low PARTITION OF events_2025 FOR VALUES FROM (MINVALUE) TO (1500);
         CREATE TABLE events_2025_high PARTITION OF events_2025 FOR VALUES FROM (1500) TO (MAXVALUE);
         CREATE TABLE events_other PARTITION OF events DEFAULT;
         CREATE INDEX events_note ON events (note);
         INSERT INTO events
             SELECT g, date '2023-07-01' + (g % 900), 'note ' || g FROM generate_series(1, 3000) g;",
    );
    let all = "SELECT tableoid::regclass, id, at, coalesce(note, '~') FROM events ORDER BY id, at";
    let before = rows(&db, all);
    let (shape_before, indexes_before) = (shape(&db), indexes(&db));
    assert_eq!(before.len(), 3000);
    assert!(
        before.iter().any(|r| r.starts_with("events_2025_high|"))
            && before.iter().any(|r| r.starts_with("events_other|")),
        "every partition holds rows"
    );

    let ws = workspace(&db, None);
    change(
        &ws,
        "ALTER TABLE events DROP COLUMN note;\nDELETE FROM events WHERE id % 3 = 0;\n",
    );
    ws.ok(&["migrate", "up"])
        .assert_stdout_has("safety snapshot");
    assert_eq!(rows(&db, "SELECT count(*) FROM events"), ["2000"]);
    // The application writes after the change: its row is kept.
    exec(&db, "INSERT INTO events VALUES (5001, '2025-03-03')");

    ws.ok(&["migrate", "down", "--to", "@root"])
        .assert_stdout_has("data loss: none");
    let mut want = before.clone();
    want.push("events_2025_high|5001|2025-03-03|~".into());
    want.sort_by_key(|r| {
        let id: u32 = r.split('|').nth(1).unwrap().parse().unwrap();
        id
    });
    assert_eq!(
        rows(&db, all),
        want,
        "every row and value, in its partition"
    );
    assert_eq!(shape(&db), shape_before, "the same partition tree");
    assert_eq!(indexes(&db), indexes_before, "the same indexes, attached");
    // The tree still routes new rows and enforces its key.
    exec(&db, "INSERT INTO events VALUES (7000, '2024-02-02', 'new')");
    assert_eq!(
        rows(&db, "SELECT tableoid::regclass FROM events WHERE id = 7000"),
        ["events_2024"]
    );
    assert!(cluster()
        .client(&db)
        .batch_execute("INSERT INTO events VALUES (1, date '2023-07-01' + 1, 'dup')")
        .is_err());
}

/// A change to one partition protects and puts back that partition, which
/// joins its parent again.
#[test]
fn a_partition_alone_comes_back_attached() {
    let db = new_db("kinds_partition");
    exec(
        &db,
        "CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
         CREATE TABLE m_low PARTITION OF m FOR VALUES FROM (0) TO (100);
         CREATE TABLE m_high PARTITION OF m FOR VALUES FROM (100) TO (200);
         INSERT INTO m SELECT g, 'v' || g FROM generate_series(0, 199) g;",
    );
    let all = "SELECT tableoid::regclass, id, v FROM m ORDER BY id";
    let (before, shape_before, indexes_before) = (rows(&db, all), shape(&db), indexes(&db));
    let ws = workspace(&db, None);
    change(&ws, "DELETE FROM m_low WHERE id < 50;\n");
    ws.ok(&["migrate", "up"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM m"), ["150"]);
    ws.ok(&["migrate", "down", "--to", "@root"])
        .assert_stdout_has("data loss: none");
    assert_eq!(rows(&db, all), before);
    assert_eq!(shape(&db), shape_before);
    assert_eq!(indexes(&db), indexes_before);
}

/// Inheritance: a change to the parent reaches its children; both come
/// back, each with its own rows, still inheriting.
#[test]
fn inheritance_parent_and_child_come_back() {
    let db = new_db("kinds_inherit");
    exec(
        &db,
        "CREATE TABLE vehicles (id int PRIMARY KEY, name text, colour text);
         CREATE TABLE trucks (load int) INHERITS (vehicles);
         ALTER TABLE trucks ADD PRIMARY KEY (id);
         INSERT INTO vehicles SELECT g, 'car ' || g, 'red' FROM generate_series(1, 50) g;
         INSERT INTO trucks SELECT g, 'truck ' || g, 'blue', g * 10 FROM generate_series(51, 90) g;",
    );
    let parent = "SELECT id, name, colour FROM ONLY vehicles ORDER BY id";
    let child = "SELECT id, name, colour, load FROM trucks ORDER BY id";
    let (p0, c0, shape0) = (rows(&db, parent), rows(&db, child), shape(&db));
    let ws = workspace(&db, None);
    change(
        &ws,
        "ALTER TABLE vehicles DROP COLUMN colour;\nDELETE FROM vehicles WHERE id % 4 = 0;\n",
    );
    ws.ok(&["migrate", "up"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM vehicles"), ["68"]);
    // Written since, to the child: kept in the child.
    exec(
        &db,
        "INSERT INTO trucks (id, name, load) VALUES (91, 'new truck', 5)",
    );
    ws.ok(&["migrate", "down", "--to", "@root"])
        .assert_stdout_has("data loss: none");
    assert_eq!(rows(&db, parent), p0);
    let mut want = c0.clone();
    want.push("91|new truck||5".into());
    assert_eq!(rows(&db, child), want);
    assert_eq!(shape(&db), shape0, "trucks still inherits vehicles");
}

/// An unlogged table is protected and comes back unlogged.
#[test]
fn unlogged_table_comes_back_unlogged() {
    let db = new_db("kinds_unlogged");
    exec(
        &db,
        "CREATE UNLOGGED TABLE cache (k int PRIMARY KEY, v text);
         INSERT INTO cache SELECT g, md5(g::text) FROM generate_series(1, 500) g;",
    );
    let all = "SELECT k, v FROM cache ORDER BY k";
    let (before, shape0) = (rows(&db, all), shape(&db));
    assert_eq!(shape0, ["cache|-|r|u|-"]);
    let ws = workspace(&db, None);
    change(
        &ws,
        "ALTER TABLE cache DROP COLUMN v;\nDELETE FROM cache WHERE k > 100;\n",
    );
    ws.ok(&["migrate", "up"]);
    ws.ok(&["migrate", "down", "--to", "@root"])
        .assert_stdout_has("data loss: none");
    assert_eq!(rows(&db, all), before);
    assert_eq!(shape(&db), shape0, "still unlogged");
}

/// A role name unique to one test run (roles are cluster-wide).
fn role(db: &str, base: &str) -> String {
    format!("{base}_{}", db.rsplit('_').next().unwrap())
}

/// Row-level security: a role that cannot bypass it would snapshot only
/// the rows its policies show. Refused, exit 3, nothing changed; with
/// BYPASSRLS the snapshot and the revert are exact.
#[test]
fn row_level_security_is_bypassed_or_refused() {
    let db = new_db("kinds_rls");
    let owner = role(&db, "rls_owner");
    let password = "rls-owner-pw";
    exec(
        &db,
        &format!(
            "CREATE ROLE {owner} LOGIN PASSWORD '{password}';
             GRANT CREATE ON DATABASE {db} TO {owner};
             GRANT CREATE ON SCHEMA public TO {owner};
             GRANT SET ON PARAMETER session_replication_role TO {owner};
             CREATE TABLE notes (id int PRIMARY KEY, tenant text NOT NULL, body text);
             ALTER TABLE notes OWNER TO {owner};
             INSERT INTO notes SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, 'body ' || g
                 FROM generate_series(1, 200) g;
             ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
             ALTER TABLE notes FORCE ROW LEVEL SECURITY;
             CREATE POLICY only_a ON notes USING (tenant = 'a');"
        ),
    );
    let all = "SELECT id, tenant, body FROM notes ORDER BY id";
    let before = rows(&db, all);
    assert_eq!(before.len(), 200);
    let ws = workspace(&db, Some((&owner, password)));
    change(
        &ws,
        "ALTER TABLE notes DROP COLUMN body;\nDELETE FROM notes WHERE id > 150;\n",
    );
    // The owner under FORCE ROW LEVEL SECURITY sees half the rows.
    ws.run(&["migrate", "up"])
        .assert_code(3)
        .assert_stderr_has("public.notes")
        .assert_stderr_has("row-level security")
        .assert_stderr_has("BYPASSRLS");
    assert_eq!(rows(&db, all), before, "nothing changed");
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'ripcord'"
        ),
        ["0"]
    );

    exec(&db, &format!("ALTER ROLE {owner} BYPASSRLS"));
    ws.ok(&["migrate", "up"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM notes"), ["150"]);
    ws.ok(&["migrate", "down", "--to", "@root"])
        .assert_stdout_has("data loss: none");
    assert_eq!(
        rows(&db, all),
        before,
        "every row, also those the policy hides"
    );
    assert_eq!(
        rows(
            &db,
            "SELECT relrowsecurity, relforcerowsecurity, (SELECT count(*) FROM pg_policy
                 WHERE polrelid = 'notes'::regclass) FROM pg_class WHERE oid = 'notes'::regclass"
        ),
        ["t|t|1"],
        "row-level security and its policy are back"
    );
    exec(&db, &format!("DROP OWNED BY {owner}; DROP ROLE {owner}"));
}

/// A foreign table keeps its rows on another server: `up` refuses before
/// the change, naming it, unless --allow-unprotected, which goes on and
/// says so in the report and the history.
#[test]
fn foreign_table_is_refused_unless_allowed() {
    let remote = new_db("kinds_remote");
    exec(
        &remote,
        "CREATE TABLE items (id int PRIMARY KEY, v text);
         INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 10) g;",
    );
    let db = new_db("kinds_foreign");
    exec(
        &db,
        &format!(
            "CREATE EXTENSION postgres_fdw;
             CREATE SERVER other FOREIGN DATA WRAPPER postgres_fdw
                 OPTIONS (host '127.0.0.1', port '{port}', dbname '{remote}');
             CREATE USER MAPPING FOR CURRENT_USER SERVER other
                 OPTIONS (user '{user}', password '{password}');
             CREATE FOREIGN TABLE remote_items (id int, v text) SERVER other
                 OPTIONS (table_name 'items');
             CREATE TABLE local_items (id int PRIMARY KEY, v text);
             INSERT INTO local_items VALUES (1, 'one');",
            port = cluster().port(),
            user = pg::USER,
            password = pg::PASSWORD,
        ),
    );
    assert_eq!(rows(&db, "SELECT count(*) FROM remote_items"), ["10"]);
    let ws = workspace(&db, None);
    change(
        &ws,
        "DELETE FROM remote_items WHERE id > 5;\nDELETE FROM local_items;\n",
    );
    ws.run(&["migrate", "up"])
        .assert_code(3)
        .assert_stderr_has("public.remote_items")
        .assert_stderr_has("foreign table")
        .assert_stderr_has("--allow-unprotected");
    assert_eq!(rows(&remote, "SELECT count(*) FROM items"), ["10"]);
    assert_eq!(rows(&db, "SELECT count(*) FROM local_items"), ["1"]);

    let out = ws.ok(&["--json", "migrate", "up", "--allow-unprotected"]);
    let report = out.json();
    let unprotected = report["changes"][0]["unprotected"].to_string();
    assert!(unprotected.contains("public.remote_items"), "{report}");
    assert!(out.all_text().contains("not protect"), "{out}");
    assert_eq!(rows(&remote, "SELECT count(*) FROM items"), ["5"]);
    let events = rows(
        &db,
        "SELECT detail FROM ripcord.events WHERE kind = 'deploy'",
    );
    assert!(
        events.len() == 1 && events[0].contains("not protected: public.remote_items"),
        "{events:?}"
    );
    // The local table is protected as ever.
    ws.ok(&["migrate", "down", "--to", "@root"]);
    assert_eq!(rows(&db, "SELECT id, v FROM local_items"), ["1|one"]);
}

/// A table the migrating role may not read cannot be protected: refused
/// with exit 3, naming it, before anything changes.
#[test]
fn table_without_select_right_is_refused() {
    let db = new_db("kinds_noselect");
    let user = role(&db, "mig_user");
    let password = "mig-user-pw";
    exec(
        &db,
        &format!(
            "CREATE ROLE {user} LOGIN PASSWORD '{password}';
             GRANT CREATE ON DATABASE {db} TO {user};
             CREATE TABLE secrets (id int PRIMARY KEY, v text);
             INSERT INTO secrets VALUES (1, 'a'), (2, 'b');
             GRANT DELETE ON secrets TO {user};"
        ),
    );
    let ws = workspace(&db, Some((&user, password)));
    change(&ws, "DELETE FROM secrets WHERE id = 1;\n");
    ws.run(&["migrate", "up"])
        .assert_code(3)
        .assert_stderr_has("public.secrets")
        .assert_stderr_has("SELECT");
    assert_eq!(rows(&db, "SELECT count(*) FROM secrets"), ["2"]);
    exec(&db, &format!("DROP OWNED BY {user}; DROP ROLE {user}"));
}

/// A whole-database snapshot of partition and inheritance trees restores
/// into a new database with every row in its partition and every child
/// still inheriting; the check of each restored table passes.
#[test]
fn whole_database_with_trees_restores_exactly() {
    let src = new_db("kinds_whole_src");
    exec(
        &src,
        "CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
         CREATE TABLE m_low PARTITION OF m FOR VALUES FROM (0) TO (100);
         CREATE TABLE m_high PARTITION OF m FOR VALUES FROM (100) TO (MAXVALUE);
         INSERT INTO m SELECT g, 'v' || g FROM generate_series(0, 299) g;
         CREATE TABLE vehicles (id int PRIMARY KEY, name text);
         CREATE TABLE trucks (load int) INHERITS (vehicles);
         INSERT INTO vehicles VALUES (1, 'car');
         INSERT INTO trucks VALUES (2, 'truck', 7);",
    );
    let queries = [
        "SELECT tableoid::regclass, id, v FROM m ORDER BY id",
        "SELECT tableoid::regclass, id, name FROM vehicles ORDER BY id",
    ];
    let ws = workspace(&src, None);
    let id = ws.snapshot_id(&["app"]);
    let dst = format!("{src}_copy");
    let url = cluster().url(&dst);
    ws.ok(&["restore", &id, "--into", &url, "--create"]);
    for q in queries {
        assert_eq!(rows(&dst, q), rows(&src, q), "{q}");
    }
    assert_eq!(shape(&dst), shape(&src));
    assert_eq!(indexes(&dst), indexes(&src));
}

/// Triggers on public tables, by table.
fn triggers(db: &str) -> Vec<String> {
    rows(
        db,
        "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND NOT t.tgisinternal ORDER BY 1, 2",
    )
}

/// The bug: a migration safety snapshot is taken while ripcord's change
/// capture triggers are on the tables, and a plain `restore` of it, into
/// the database or a new one, brought them back (`ripcord_capture`,
/// `ripcord_capture_truncate`), logging every later write. The user's own
/// trigger comes back; ripcord's never do.
#[test]
fn restoring_a_safety_snapshot_brings_back_no_capture_trigger() {
    let db = new_db("kinds_capture_triggers");
    exec(
        &db,
        "CREATE TABLE accounts (id int PRIMARY KEY, email text);
         INSERT INTO accounts SELECT g, 'a' || g || '@x' FROM generate_series(1, 100) g;
         CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
         CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION touch();",
    );
    let ws = workspace(&db, None);
    change(&ws, "ALTER TABLE accounts DROP COLUMN email;\n");
    ws.ok(&["migrate", "up"]);
    let id = rows(&db, "SELECT safety_snapshot FROM ripcord.changes")
        .pop()
        .expect("a safety snapshot");
    let want = ["accounts|accounts_touch"];
    // The write-mark trigger stays while the change is applied; no
    // snapshot or restore takes it along.
    assert_eq!(
        triggers(&db),
        ["accounts|accounts_touch", "accounts|ripcord_written"],
        "no capture trigger left after up"
    );
    // A snapshot of the whole database taken now does not bring it back.
    let whole = ws.snapshot_id(&["app"]);
    let dst = format!("{db}_whole");
    ws.ok(&[
        "restore",
        &whole,
        "--into",
        &cluster().url(&dst),
        "--create",
    ]);
    assert_eq!(triggers(&dst), want);
    // Into the database itself, table by table.
    exec(&db, "DROP TABLE accounts");
    ws.ok(&["restore", &id, "--tables", "accounts"]);
    assert_eq!(triggers(&db), want);
    assert_eq!(rows(&db, "SELECT count(email) FROM accounts"), ["100"]);
    // Into another database, which has the user's trigger function (a
    // table-level snapshot holds only its tables).
    let copy = new_db("kinds_capture_triggers_copy");
    exec(
        &copy,
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
    );
    ws.ok(&["restore", &id, "--into", &cluster().url(&copy)]);
    assert_eq!(triggers(&copy), want);
}

/// The report of `table` in the one change `migrate down --json` reverted.
fn reported(down: &serde_json::Value, table: &str) -> serde_json::Value {
    down["changes"][0]["tables"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["table"] == table))
        .unwrap_or_else(|| panic!("{table} is not reported: {down}"))
        .clone()
}

/// The bug: an inheritance child the application created after the change
/// (`bikes`, a child of `vehicles`) made `down` fail: the replaced parent
/// could not be dropped while the new child inherited from it. Now, under
/// `keep-new`, the new child joins the restored parent again (given the
/// columns the revert brought back) with its rows; under `snapshot` and
/// `review` the tree is the snapshot's and the new child stays, with its
/// rows, as a table of its own. Nothing is lost either way.
#[test]
fn inheritance_child_created_after_the_change_survives_the_revert() {
    for policy in ["keep-new", "snapshot", "review"] {
        let db = new_db("kinds_new_child");
        exec(
            &db,
            "CREATE TABLE vehicles (id int PRIMARY KEY, name text, colour text);
             CREATE TABLE trucks (load int) INHERITS (vehicles);
             INSERT INTO vehicles SELECT g, 'car ' || g, 'red' FROM generate_series(1, 20) g;
             INSERT INTO trucks SELECT g, 'truck ' || g, 'blue', g FROM generate_series(21, 30) g;",
        );
        let parent = "SELECT id, name, colour FROM ONLY vehicles ORDER BY id";
        let (p0, shape0) = (rows(&db, parent), shape(&db));
        let ws = workspace(&db, None);
        change(
            &ws,
            "ALTER TABLE vehicles DROP COLUMN colour;\nDELETE FROM vehicles WHERE id % 5 = 0;\n",
        );
        ws.ok(&["migrate", "up"]);
        exec(
            &db,
            "CREATE TABLE bikes (gears int NOT NULL) INHERITS (vehicles);
             INSERT INTO bikes VALUES (31, 'bike 31', 3), (32, 'bike 32', 21);",
        );
        let v = ws.json(&["migrate", "down", "--to", "@root", "--on-conflict", policy]);
        let bikes = "SELECT id, name, gears FROM bikes ORDER BY id";
        assert_eq!(
            rows(&db, bikes),
            ["31|bike 31|3", "32|bike 32|21"],
            "{policy}: the new child keeps its rows"
        );
        assert_eq!(rows(&db, parent), p0, "{policy}");
        let report = reported(&v, "public.bikes");
        assert_eq!(report["kept_rows"], 2, "{policy} {report}");
        assert_eq!(v["rows_lost"], 0, "{policy} {v}");
        if policy == "keep-new" {
            let mut want = shape0.clone();
            want.insert(0, "bikes|vehicles|r|p|-".into());
            assert_eq!(shape(&db), want, "bikes inherits the restored vehicles");
            // Read through the parent, with the column the revert brought
            // back (NULL: the rows never had it).
            assert_eq!(
                rows(
                    &db,
                    "SELECT id, colour FROM vehicles WHERE id > 30 ORDER BY id"
                ),
                ["31|", "32|"]
            );
        } else {
            let mut want = shape0.clone();
            want.insert(0, "bikes|-|r|p|-".into());
            assert_eq!(shape(&db), want, "{policy}: bikes stands alone");
            assert_eq!(rows(&db, "SELECT count(*) FROM vehicles"), ["30"]);
        }
    }
}

/// A partition the application created after the change (`orders_asia`)
/// is not the snapshot's: its rows are not taken for rows written to the
/// tree. Under `keep-new` it is attached to the restored table again, with
/// its bounds and the column the revert brought back; under `snapshot` and
/// `review` it stays a table of its own with its rows. Nothing is lost.
#[test]
fn partition_created_after_the_change_survives_the_revert() {
    for policy in ["keep-new", "snapshot", "review"] {
        let db = new_db("kinds_new_partition");
        exec(
            &db,
            "CREATE TABLE orders (id int, region text, note text, PRIMARY KEY (id, region))
                 PARTITION BY LIST (region);
             CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
             CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us');
             INSERT INTO orders SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'n' || g
                 FROM generate_series(1, 20) g;",
        );
        let all = "SELECT tableoid::regclass, id, region, note FROM orders ORDER BY id";
        let (before, shape0) = (rows(&db, all), shape(&db));
        let ws = workspace(&db, None);
        change(&ws, "ALTER TABLE orders DROP COLUMN note;\n");
        ws.ok(&["migrate", "up"]);
        exec(
            &db,
            "CREATE TABLE orders_asia PARTITION OF orders FOR VALUES IN ('asia');
             INSERT INTO orders VALUES (21, 'asia'), (22, 'asia');",
        );
        let v = ws.json(&["migrate", "down", "--to", "@root", "--on-conflict", policy]);
        assert_eq!(
            reported(&v, "public.orders_asia")["kept_rows"],
            2,
            "{policy} {v}"
        );
        let orders = reported(&v, "public.orders");
        assert_eq!(orders["three_way"], true, "{policy} {orders}");
        assert_eq!(orders["inserted_since"], 0, "{policy} {orders}");
        assert_eq!(v["rows_lost"], 0, "{policy} {v}");
        assert_eq!(
            rows(&db, "SELECT id, region FROM orders_asia ORDER BY id"),
            ["21|asia", "22|asia"],
            "{policy}"
        );
        let mut shape1 = shape0.clone();
        if policy == "keep-new" {
            let mut want = before.clone();
            want.extend([
                "orders_asia|21|asia|".to_string(),
                "orders_asia|22|asia|".into(),
            ]);
            assert_eq!(rows(&db, all), want, "{policy}");
            shape1.push("orders_asia|orders|r|p|FOR VALUES IN ('asia')".into());
        } else {
            assert_eq!(rows(&db, all), before, "{policy}");
            shape1.push("orders_asia|-|r|p|-".into());
        }
        shape1.sort();
        let mut now = shape(&db);
        now.sort();
        assert_eq!(now, shape1, "{policy}");
    }
}
