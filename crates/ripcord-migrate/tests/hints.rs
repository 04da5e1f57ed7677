//! Hints read as one sentence: a string literal continued on the next line
//! without `\` would carry the indentation into the text.

use ripcord_core::Classify;
use ripcord_migrate::Error;

#[test]
fn revert_and_irreversible_hints_have_no_embedded_indentation() {
    let errors = [
        Error::Revert {
            change: "0002_drop_email".into(),
            detail: "down script: boom".into(),
        },
        Error::Irreversible {
            change: "0002_drop_email".into(),
            reason: "it has no down script and no safety snapshot".into(),
        },
        Error::Locked {
            holder: "backend pid 1".into(),
        },
        Error::NotRecorded { change: "x".into() },
    ];
    for e in errors {
        let hint = e.hint().expect("a hint");
        assert!(!hint.contains("  "), "{hint:?}");
        assert!(!hint.contains('\n'), "{hint:?}");
    }
}
