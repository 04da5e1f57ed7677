//! Reading every supported format from the fixtures, and the errors that
//! broken plans give.

use std::path::{Path, PathBuf};

use ripcord_core::{Class, Classify};
use ripcord_migrate::{checksum, detect, read, read_as, Error, Format, Plan, Target};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn good(format: &str) -> Plan {
    read(&fixture(&format!("{format}/good"))).unwrap()
}

fn names(plan: &Plan) -> Vec<&str> {
    plan.changes.iter().map(|c| c.name.as_str()).collect()
}

fn ordered(plan: &Plan) -> Vec<&str> {
    plan.order()
        .unwrap()
        .into_iter()
        .map(|c| c.name.as_str())
        .collect()
}

fn broken(path: &str) -> Error {
    let err = read(&fixture(path)).unwrap_err();
    assert_eq!(err.class(), Class::Usage, "{err}");
    assert!(err.hint().is_some(), "no hint for {err}");
    err
}

fn file_name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

#[test]
fn detects_every_format() {
    for (dir, format) in [
        ("native/good", Format::Native),
        ("sqitch/good", Format::Sqitch),
        ("flyway/good", Format::Flyway),
        ("golang-migrate/good", Format::GolangMigrate),
        ("dbmate/good", Format::Dbmate),
        ("timestamp/good", Format::Timestamp),
    ] {
        assert_eq!(detect(&fixture(dir)).unwrap(), format, "{dir}");
    }
}

#[test]
fn detect_refuses_to_guess() {
    let err = detect(&fixture("detect/ambiguous")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("flyway (V1__create_users.sql)"), "{text}");
    assert!(
        text.contains("golang-migrate (1_create_users.up.sql)"),
        "{text}"
    );
    assert_eq!(err.class(), Class::Usage);

    let err = detect(&fixture("detect/empty")).unwrap_err();
    assert!(
        err.to_string().starts_with("no migrations found in"),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("sqitch.plan"));

    let err = detect(&fixture("detect/outer")).unwrap_err();
    assert!(
        err.hint().unwrap().contains("migrations"),
        "{:?}",
        err.hint()
    );

    let err = detect(&fixture("detect/no-such-folder")).unwrap_err();
    assert!(matches!(err, Error::NotADirectory { .. }), "{err}");
    assert_eq!(err.class(), Class::Usage);
}

#[test]
fn native_plan() {
    let plan = good("native");
    assert_eq!(plan.format, Format::Native);
    assert_eq!(
        names(&plan),
        [
            "0001_add_col",
            "0002_backfill",
            "0003_lookup_fn",
            "0004_drop_legacy",
            "0005_index"
        ]
    );
    // The backfill needs the function defined after it.
    assert_eq!(
        ordered(&plan),
        [
            "0001_add_col",
            "0003_lookup_fn",
            "0002_backfill",
            "0004_drop_legacy",
            "0005_index"
        ]
    );
    let add = plan.change("0001_add_col").unwrap();
    assert!(add.down.is_some() && add.verify.is_some());
    assert_eq!(add.phase.as_deref(), Some("expand"));
    assert_eq!(
        file_name(&add.up.path),
        "up.sql",
        "scripts keep their paths"
    );
    let backfill = plan.change("0002_backfill").unwrap();
    assert_eq!(backfill.requires, ["0001_add_col", "0003_lookup_fn"]);
    assert!(backfill.down.as_ref().unwrap().is_blank());
    let drop = plan.change("0004_drop_legacy").unwrap();
    assert!(drop.down.is_none() && drop.verify.is_none());
    let index = plan.change("0005_index").unwrap();
    assert!(index.no_transaction);
    assert_eq!(index.phase, None);
    assert!(plan.changes.iter().all(|c| c.version.is_none()));

    assert_eq!(plan.phases.len(), 2);
    assert_eq!(
        plan.phase("contract").unwrap().changes,
        ["0004_drop_legacy"]
    );
    assert_eq!(
        plan.resolve_target("@expand").unwrap(),
        Target::Phase {
            name: "expand".into(),
            last: "0002_backfill".into()
        }
    );
    assert_eq!(
        plan.resolve_target("0004_drop_legacy").unwrap(),
        Target::Change("0004_drop_legacy".into())
    );
    // Native changes have no versions.
    assert!(plan.resolve_target("1").is_err());
}

#[test]
fn sqitch_plan() {
    let plan = good("sqitch");
    assert_eq!(plan.format, Format::Sqitch);
    // The reworked `users` keeps its latest definition, at its latest place.
    assert_eq!(
        names(&plan),
        ["appschema", "flips", "widgets", "users", "hashtags"]
    );
    assert_eq!(
        ordered(&plan),
        ["appschema", "users", "flips", "widgets", "hashtags"]
    );
    let users = plan.change("users").unwrap();
    assert!(
        users.up.sql.contains("ADD COLUMN email"),
        "{}",
        users.up.sql
    );
    assert!(users
        .down
        .as_ref()
        .unwrap()
        .sql
        .contains("DROP COLUMN email"));
    assert!(users.verify.is_some());
    assert!(users.requires.is_empty(), "{:?}", users.requires);
    assert_eq!(users.phase.as_deref(), Some("v1.1"));

    let widgets = plan.change("widgets").unwrap();
    assert_eq!(widgets.requires, ["users", "appschema"]);
    assert_eq!(widgets.conflicts, ["gadgets"]);
    assert_eq!(widgets.external_requires, ["otherproj:base"]);
    assert!(widgets.verify.is_none());

    let hashtags = plan.change("hashtags").unwrap();
    assert_eq!(hashtags.requires, ["users", "flips"], "@v1.1 is on users");
    assert!(hashtags.down.is_none());
    assert_eq!(hashtags.phase, None);

    let phases: Vec<(&str, Vec<&str>)> = plan
        .phases
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.changes.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        phases,
        [
            ("v1.0", vec!["appschema", "flips"]),
            ("v1.1", vec!["widgets", "users"])
        ]
    );
    assert_eq!(plan.resolve_target("@v1.0").unwrap().change(), "flips");
    assert_eq!(plan.resolve_target("@v1.1").unwrap().change(), "widgets");
    assert_eq!(
        plan.resolve_target("hashtags").unwrap(),
        Target::Change("hashtags".into())
    );
}

#[test]
fn flyway_plan() {
    let plan = good("flyway");
    assert_eq!(plan.format, Format::Flyway);
    assert_eq!(
        names(&plan),
        [
            "V1__create_users",
            "V1_1__add_email",
            "V2__backfill",
            "V3__orders",
            "V10__index",
            "R__functions",
            "R__views"
        ]
    );
    assert_eq!(ordered(&plan), names(&plan));
    let versions: Vec<Option<&str>> = plan.changes.iter().map(|c| c.version.as_deref()).collect();
    assert_eq!(
        versions,
        [
            Some("1"),
            Some("1.1"),
            Some("2"),
            Some("3"),
            Some("10"),
            None,
            None
        ]
    );
    let add_email = plan.change("V1_1__add_email").unwrap();
    assert_eq!(
        file_name(&add_email.down.as_ref().unwrap().path),
        "U1_1__add_email.sql"
    );
    assert!(plan.change("V1__create_users").unwrap().down.is_none());
    assert!(plan
        .change("V3__orders")
        .unwrap()
        .up
        .path
        .ends_with("release-2/V3__orders.sql"));
    assert!(plan.change("V10__index").unwrap().no_transaction);
    assert!(!plan.change("V2__backfill").unwrap().no_transaction);
    assert!(plan.changes.iter().filter(|c| c.repeatable).count() == 2);
    assert!(plan.changes[5..].iter().all(|c| c.repeatable));

    for (spec, change) in [
        ("1.1", "V1_1__add_email"),
        ("1_1", "V1_1__add_email"),
        ("10", "V10__index"),
        ("01", "V1__create_users"),
        ("R__views", "R__views"),
    ] {
        assert_eq!(
            plan.resolve_target(spec).unwrap(),
            Target::Change(change.into()),
            "{spec}"
        );
    }
}

#[test]
fn golang_migrate_plan() {
    let plan = good("golang-migrate");
    assert_eq!(plan.format, Format::GolangMigrate);
    // Numeric, not file-name, order: 10 comes after 2.
    assert_eq!(
        names(&plan),
        ["1_create_users", "2_add_email", "10_add_index"]
    );
    assert!(plan.change("2_add_email").unwrap().down.is_some());
    assert!(plan.change("10_add_index").unwrap().down.is_none());
    assert_eq!(plan.resolve_target("2").unwrap().change(), "2_add_email");
    assert_eq!(
        plan.resolve_target("0010").unwrap().change(),
        "10_add_index"
    );
}

#[test]
fn dbmate_plan() {
    let plan = good("dbmate");
    assert_eq!(plan.format, Format::Dbmate);
    assert_eq!(
        names(&plan),
        [
            "20240101120000_create_users",
            "20240102120000_add_index",
            "20240103120000_seed"
        ]
    );
    let users = &plan.changes[0];
    assert!(users.up.sql.starts_with("CREATE TABLE users"));
    assert!(!users.up.sql.contains("migrate:down"));
    assert_eq!(users.down.as_ref().unwrap().sql, "DROP TABLE users;\n");
    assert!(!users.no_transaction);
    assert!(plan.changes[1].no_transaction);
    let seed = &plan.changes[2];
    assert!(seed.down.is_none());
    assert_eq!(
        seed.up.sql,
        "INSERT INTO users (id, name) VALUES (1, 'admin');\r\n"
    );
    assert_eq!(seed.version.as_deref(), Some("20240103120000"));
    assert_eq!(
        plan.resolve_target("20240102120000").unwrap().change(),
        "20240102120000_add_index"
    );
}

#[test]
fn timestamp_plan() {
    let plan = good("timestamp");
    assert_eq!(plan.format, Format::Timestamp);
    assert_eq!(
        names(&plan),
        [
            "202401011200_create_users",
            "202401021200_add_email",
            "202401031200_add_index"
        ]
    );
    let users = &plan.changes[0];
    assert_eq!(
        file_name(&users.down.as_ref().unwrap().path),
        "202401011200_create_users_rollback.sql"
    );
    assert!(plan.changes[1].down.is_none());
    assert_eq!(
        plan.resolve_target("202401031200").unwrap().change(),
        "202401031200_add_index"
    );
}

#[test]
fn checksums_ignore_line_endings() {
    let flyway = good("flyway");
    let crlf = &flyway.change("V1__create_users").unwrap().up;
    assert!(crlf.sql.contains("\r\n"), "the fixture must keep its CRLF");
    let golang = good("golang-migrate");
    let lf = &golang.change("1_create_users").unwrap().up;
    assert!(!lf.sql.contains('\r'));
    assert_eq!(crlf.checksum, lf.checksum);
    assert_eq!(crlf.checksum, checksum(&crlf.sql.replace("\r\n", "\n")));
    assert_eq!(crlf.checksum.len(), 64);
    // A real change is drift.
    assert_ne!(crlf.checksum, golang.changes[1].up.checksum);

    let dbmate = good("dbmate");
    let seed = &dbmate.changes[2].up;
    assert_eq!(
        seed.checksum,
        checksum("INSERT INTO users (id, name) VALUES (1, 'admin');\n")
    );
}

#[test]
fn unknown_targets_suggest_near_matches() {
    let plan = good("native");
    let err = plan.resolve_target("0002_bakfill").unwrap_err();
    assert!(matches!(&err, Error::UnknownTarget { near, .. } if near == &["0002_backfill"]));
    assert_eq!(err.hint().unwrap(), "did you mean 0002_backfill?");
    let err = plan.resolve_target("@expnad").unwrap_err();
    assert_eq!(err.hint().unwrap(), "did you mean @expand?");
    let err = plan.resolve_target("expand").unwrap_err();
    assert!(err.hint().unwrap().contains("@expand"), "{:?}", err.hint());
    let err = plan.resolve_target("zzzzzzzzzzzz").unwrap_err();
    assert_eq!(err.hint().unwrap(), "name a change, or a phase as @phase");

    let flyway = good("flyway");
    let err = flyway.resolve_target("4").unwrap_err();
    assert!(err.to_string().contains("\"4\""), "{err}");
    assert_eq!(err.hint().unwrap(), "did you mean 3, 10?");
    let err = flyway.resolve_target("0.5").unwrap_err();
    assert_eq!(err.hint().unwrap(), "did you mean 1?");
    let err = flyway.resolve_target("nope").unwrap_err();
    assert!(err.hint().unwrap().contains("version"), "{:?}", err.hint());

    let sqitch = good("sqitch");
    let err = sqitch.resolve_target("@v2.0").unwrap_err();
    assert!(err.hint().unwrap().contains("@v1.0"), "{:?}", err.hint());
}

#[test]
fn read_as_names_the_format() {
    let plan = read_as(&fixture("timestamp/good"), Format::Timestamp).unwrap();
    assert_eq!(plan.changes.len(), 3);
    assert_eq!(
        "golang-migrate".parse::<Format>().unwrap(),
        Format::GolangMigrate
    );
    let err = "liquibas".parse::<Format>().unwrap_err();
    assert!(err.hint().unwrap().contains("dbmate"));
}

#[test]
fn missing_deploy_script() {
    let err = broken("sqitch/broken-missing-deploy");
    let Error::MissingScript { change, path, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(change, "users");
    assert!(path.ends_with("deploy/users.sql"));
    assert!(err.to_string().contains("deploy/users.sql"), "{err}");
    assert!(
        err.hint().unwrap().contains("sqitch.plan:5"),
        "{:?}",
        err.hint()
    );
}

#[test]
fn native_folder_without_up_script() {
    let err = broken("native/broken-no-up");
    assert!(err.to_string().contains("0002_b"), "{err}");
    assert!(err.to_string().contains("up.sql"), "{err}");
}

#[test]
fn dependency_cycles() {
    let err = broken("native/broken-cycle");
    assert_eq!(
        err.to_string(),
        "changes depend on each other in a cycle: 0001_a -> 0003_c -> 0002_b -> 0001_a"
    );
    let err = broken("sqitch/broken-cycle");
    assert!(
        err.to_string().ends_with("users -> flips -> users"),
        "{err}"
    );
}

#[test]
fn unknown_dependencies() {
    let err = broken("native/broken-unknown-dep");
    assert_eq!(
        err.to_string(),
        "change 0002_b requires 0001_aa, which is not in the plan"
    );
    assert_eq!(err.hint().unwrap(), "did you mean 0001_a?");
    let err = broken("sqitch/broken-unknown-dep");
    assert!(
        err.to_string().contains("users requires appschemas"),
        "{err}"
    );
    assert_eq!(err.hint().unwrap(), "did you mean appschema?");
}

#[test]
fn plan_toml_naming_an_unknown_change() {
    let err = broken("native/broken-unknown-change");
    assert!(
        err.to_string()
            .contains("plan.toml names change 0002_bakfill"),
        "{err}"
    );
    assert_eq!(err.hint().unwrap(), "did you mean 0002_backfill?");
}

#[test]
fn malformed_plan_files_give_file_and_line() {
    let err = broken("sqitch/broken-malformed");
    let text = err.to_string();
    assert!(text.contains("sqitch.plan:5:"), "{text}");
    assert!(text.contains("no closing ']'"), "{text}");

    let err = broken("native/broken-toml");
    let text = err.to_string();
    assert!(text.contains("plan.toml:6:"), "{text}");
    assert!(text.contains("reqires"), "{text}");
}

#[test]
fn duplicate_changes() {
    let err = broken("sqitch/broken-duplicate");
    let text = err.to_string();
    assert!(text.starts_with("change users is defined twice"), "{text}");
    assert!(
        text.contains("sqitch.plan:3") && text.contains("sqitch.plan:5"),
        "{text}"
    );

    let err = broken("flyway/broken-duplicate-version");
    let text = err.to_string();
    assert!(text.contains("V1__create_users.sql"), "{text}");
    assert!(text.contains("V1.0__create_orders.sql"), "{text}");

    let err = broken("golang-migrate/broken-duplicate-version");
    assert!(matches!(err, Error::DuplicateVersion { .. }), "{err}");
}

#[test]
fn misnamed_and_orphaned_files() {
    for (dir, file) in [
        ("flyway/broken-misnamed", "V2_add_email.sql"),
        ("flyway/broken-orphan-undo", "U2__add_email.sql"),
        ("golang-migrate/broken-orphan-down", "2_add_email.down.sql"),
        (
            "timestamp/broken-orphan-rollback",
            "202401021200_add_email_rollback.sql",
        ),
    ] {
        let err = broken(dir);
        assert!(err.to_string().contains(file), "{dir}: {err}");
    }
}

#[test]
fn dbmate_file_without_up_section() {
    let err = broken("dbmate/broken-no-up");
    let text = err.to_string();
    assert!(text.contains("20240102120000_add_email.sql:1:"), "{text}");
    assert!(text.contains("-- migrate:up"), "{text}");
}
