//! Analysing the scripts of a plan read from the fixtures.

use std::path::Path;

use ripcord_migrate::analyze::{analyze, Kind, Options};
use ripcord_migrate::read;

#[test]
fn native_fixture_changes() {
    let plan =
        read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/native/good")).unwrap();
    let of = |name: &str| analyze(&plan.change(name).unwrap().up.sql, &Options::default());

    let add = of("0001_add_col");
    assert!(add.certain && add.findings.is_empty(), "{:?}", add.findings);
    assert_eq!(
        add.tables
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["accounts"]
    );

    // The backfill calls a function of the plan's own: its writes are unknown.
    let backfill = of("0002_backfill");
    assert!(!backfill.certain);
    assert!(backfill.has(Kind::Destructive));

    // Creating the function changes no rows: only calling it could.
    let function = of("0003_lookup_fn");
    assert!(
        function.certain && function.tables.is_empty(),
        "{:?}",
        function.findings
    );

    let drop = of("0004_drop_legacy");
    assert!(drop.certain && drop.has(Kind::Destructive));
    assert!(plan.change("0004_drop_legacy").unwrap().down.is_none());

    // What plan.toml declares, the SQL shows.
    let index = of("0005_index");
    assert!(index.no_transaction());
    assert!(plan.change("0005_index").unwrap().no_transaction);
    let undo = analyze(
        &plan
            .change("0005_index")
            .unwrap()
            .down
            .as_ref()
            .unwrap()
            .sql,
        &Options::default(),
    );
    assert!(undo.no_transaction());
}

#[test]
fn sqitch_scripts_manage_their_own_transaction() {
    let plan =
        read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sqitch/good")).unwrap();
    let users = analyze(&plan.change("users").unwrap().up.sql, &Options::default());
    assert_eq!(users.of_kind(Kind::OwnTransaction).count(), 2);
    assert_eq!(
        users
            .tables
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["flipr.users"]
    );
}
