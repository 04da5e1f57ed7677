//! The Liquibase formatted SQL reader: changesets and their attributes,
//! rollback lines and blocks, master changelogs, and broken files.

use std::path::Path;

use ripcord_core::{Class, Classify};
use ripcord_migrate::{detect, read, Error, Format};

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const CHANGELOG: &str = "\
--liquibase formatted sql

--changeset ann:1
--comment: the users
CREATE TABLE users (id int PRIMARY KEY, name text);
-- a plain comment stays in the SQL
--rollback DROP TABLE users;

--changeset \"Bob Ray\":seed-users runInTransaction:false context:dev
INSERT INTO users VALUES (1, 'ann');
INSERT INTO users VALUES (2, 'bob');
/* liquibase rollback
DELETE FROM users WHERE id = 2;
DELETE FROM users WHERE id = 1;
*/

--changeset ann:3 endDelimiter:GO runOnChange:true
CREATE VIEW v AS SELECT 1 AS one
GO
--rollback DROP VIEW v
--rollback GO

--changeset ann:4 runAlways:true
UPDATE users SET name = name;
--rollback not required
";

#[test]
fn reads_changesets_with_their_attributes_and_rollbacks() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "changelog.sql", CHANGELOG);
    assert_eq!(detect(dir.path()).unwrap(), Format::Liquibase);
    let plan = read(dir.path()).unwrap();
    let names: Vec<&str> = plan.changes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["ann:1", "Bob Ray:seed-users", "ann:3", "ann:4"]);

    let c = &plan.changes[0];
    assert!(c.up.sql.contains("CREATE TABLE users"));
    assert!(c.up.sql.contains("-- a plain comment"));
    assert!(!c.up.sql.contains("rollback"));
    assert!(!c.up.sql.contains("the users"), "{}", c.up.sql);
    assert_eq!(c.down.as_ref().unwrap().sql, "DROP TABLE users;\n");
    assert_eq!(c.source.as_deref(), Some("changelog.sql"));
    assert!(!c.no_transaction && !c.repeatable);

    let c = &plan.changes[1];
    assert!(c.no_transaction);
    assert_eq!(
        c.down.as_ref().unwrap().sql,
        "DELETE FROM users WHERE id = 2;\nDELETE FROM users WHERE id = 1;\n"
    );

    let c = &plan.changes[2];
    assert!(c.repeatable && !c.run_always);
    assert_eq!(c.up.sql, "CREATE VIEW v AS SELECT 1 AS one\n;\n");
    assert_eq!(c.down.as_ref().unwrap().sql, "DROP VIEW v\n;\n");

    let c = &plan.changes[3];
    assert!(c.repeatable && c.run_always);
    assert!(c.down.is_none(), "rollback not required runs nothing");
    // Liquibase's own checksum of each changeset, version 9.
    assert!(plan.changes.iter().all(|c| c
        .tool_checksum
        .as_deref()
        .is_some_and(|s| s.starts_with("9:"))));
}

#[test]
fn liquibase_checksums_ignore_blanks_only() {
    let a = tempfile::tempdir().unwrap();
    write(
        a.path(),
        "c.sql",
        "--liquibase formatted sql\n--changeset a:1\nCREATE TABLE t (id int);\n--rollback DROP TABLE t;\n",
    );
    let b = tempfile::tempdir().unwrap();
    write(
        b.path(),
        "c.sql",
        "--liquibase formatted sql\n\n--changeset a:1 runOnChange:false\nCREATE   TABLE t\r\n  (id int);\n\n--rollback DROP TABLE t2;\n",
    );
    let c = tempfile::tempdir().unwrap();
    write(
        c.path(),
        "c.sql",
        "--liquibase formatted sql\n--changeset a:1\nCREATE TABLE t (id bigint);\n",
    );
    let sum = |d: &Path| read(d).unwrap().changes[0].tool_checksum.clone().unwrap();
    assert_eq!(sum(a.path()), sum(b.path()));
    assert_ne!(sum(a.path()), sum(c.path()));
}

#[test]
fn a_master_changelog_sets_the_order() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "db.changelog-master.yaml",
        "databaseChangeLog:\n  - include:\n      file: changes/002.sql\n  - include:\n      file: changes/001.sql\n",
    );
    write(
        dir.path(),
        "changes/001.sql",
        "--liquibase formatted sql\n--changeset a:one\nCREATE TABLE one (id int);\n",
    );
    write(
        dir.path(),
        "changes/002.sql",
        "--liquibase formatted sql\n--changeset a:two\nCREATE TABLE two (id int);\n",
    );
    assert_eq!(detect(dir.path()).unwrap(), Format::Liquibase);
    let plan = read(dir.path()).unwrap();
    let names: Vec<&str> = plan.changes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a:two", "a:one"]);
    assert_eq!(plan.changes[0].source.as_deref(), Some("changes/002.sql"));

    let xml = tempfile::tempdir().unwrap();
    write(
        xml.path(),
        "changelog.xml",
        "<databaseChangeLog>\n  <includeAll path=\"changes/\"/>\n</databaseChangeLog>\n",
    );
    write(
        xml.path(),
        "changes/b.sql",
        "--liquibase formatted sql\n--changeset a:b\nCREATE TABLE b (id int);\n",
    );
    write(
        xml.path(),
        "changes/a.sql",
        "--liquibase formatted sql\n--changeset a:a\nCREATE TABLE a (id int);\n",
    );
    let plan = read(xml.path()).unwrap();
    let names: Vec<&str> = plan.changes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a:a", "a:b"]);
}

fn broken(text: &str) -> Error {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "changelog.sql", text);
    let err = read(dir.path()).unwrap_err();
    assert_eq!(err.class(), Class::Usage, "{err}");
    assert!(err.hint().is_some(), "no hint for {err}");
    err
}

#[test]
fn broken_changelogs_name_file_and_line() {
    for (text, line, words) in [
        (
            "--liquibase formatted sql\n--changeset ann\nselect 1;\n",
            2,
            "author:id",
        ),
        (
            "--liquibase formatted sql\n--changeset ann:1\n",
            2,
            "has no SQL",
        ),
        (
            "--liquibase formatted sql\n--changeset ann:1\nselect 1;\n/* liquibase rollback\nselect 2;\n",
            4,
            "no closing",
        ),
        (
            "--liquibase formatted sql\n--changeset ann:1 runInTransation:false\nselect 1;\n",
            2,
            "runInTransation",
        ),
        (
            "--liquibase formatted sql\n--changeset ann:1\n--preconditions onFail:MARK_RAN\nselect 1;\n",
            3,
            "preconditions",
        ),
        (
            "--liquibase formatted sql\nselect 1;\n--changeset ann:1\nselect 1;\n",
            2,
            "belongs to no changeset",
        ),
        (
            "--liquibase formatted sql\n--changeset ann:1 runAlways:yes\nselect 1;\n",
            2,
            "true or false",
        ),
    ] {
        let err = broken(text);
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("changelog.sql:{line}:")) && msg.contains(words),
            "{text:?}: {msg}"
        );
    }
    let err = broken(
        "--liquibase formatted sql\n--changeset ann:1\nselect 1;\n--rollback changesetId:9 changesetAuthor:ann\n",
    );
    assert!(err.to_string().contains("changelog.sql:4:"), "{err}");
    let err = broken("--liquibase formatted sql\n--include file:other.sql\n");
    assert!(err.to_string().contains("changelog.sql:2:"), "{err}");
    // The same author:id twice in a plan.
    let err = broken(
        "--liquibase formatted sql\n--changeset ann:1\nselect 1;\n--changeset ann:1\nselect 2;\n",
    );
    assert!(err.to_string().contains("ann:1"), "{err}");
}

#[test]
fn a_rollback_may_name_another_changeset() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "changelog.sql",
        "--liquibase formatted sql\n\
         --changeset ann:drop-view\nDROP VIEW IF EXISTS v;\n\n\
         --changeset ann:view\nCREATE VIEW v AS SELECT 1 AS one;\n\
         --rollback changesetId:drop-view changesetAuthor:ann\n",
    );
    let plan = read(dir.path()).unwrap();
    assert_eq!(
        plan.changes[1].down.as_ref().unwrap().sql,
        "DROP VIEW IF EXISTS v;\n"
    );
}

/// The MD5SUMs Liquibase 4.28.1 itself recorded in DATABASECHANGELOG for this
/// changelog on PostgreSQL (comments, tabs, blank lines, a quoted author,
/// `endDelimiter`, `runInTransaction`, `runOnChange`, rollback blocks).
#[test]
fn checksums_are_the_ones_liquibase_records() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/liquibase/checksums");
    let plan = read(&dir).unwrap();
    let sums: Vec<(&str, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.name.as_str(), c.tool_checksum.as_deref().unwrap()))
        .collect();
    assert_eq!(
        sums,
        [
            ("Ann Lee:create-users", "9:161f7de53d36665482b75fa2bf42c5fa"),
            ("bob:seed", "9:0fdf33cb2f68f0fe7b4a7521aaf73627"),
            ("bob:idx", "9:d2d58ea4f4ab88131769901b6d7ac600"),
            ("bob:fn", "9:0520c20bde20e4b8404b11600936c692"),
            ("bob:view", "9:f39d5f08a8ba07e84edfdb8041d750ca"),
        ]
    );
}
