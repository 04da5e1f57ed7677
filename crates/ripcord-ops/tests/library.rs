//! The operations called as a library, without the `ripcord` binary: what
//! recovery runs, the guard and the server will do. A reporter records what
//! the operations tell; nothing is printed.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ripcord_core::config::Config;
use ripcord_core::{Class, Classify};
use ripcord_ops::restore::RestoreOptions;
use ripcord_ops::snapshot::SnapshotOptions;
use ripcord_ops::{Ctx, ProgressBar, Reporter};
use ripcord_repo::Repository;
use ripcord_targets::Progress;
use ripcord_testing::fingerprint::Fingerprint;

/// Keeps every message and counts the bytes the progress bars saw.
#[derive(Default)]
struct Recorder {
    said: Mutex<Vec<String>>,
    warned: Mutex<Vec<String>>,
    bars: Mutex<Vec<String>>,
    bytes: Arc<Mutex<u64>>,
}

struct CountingBar(Arc<Mutex<u64>>);

impl Progress for CountingBar {
    fn bytes(&self, n: u64) {
        *self.0.lock().unwrap() += n;
    }
}
impl ProgressBar for CountingBar {}

impl Reporter for Recorder {
    fn say(&self, text: &str) {
        self.said.lock().unwrap().push(text.to_string());
    }
    fn warn(&self, text: &str) {
        self.warned.lock().unwrap().push(text.to_string());
    }
    fn progress(&self, _total: Option<u64>, message: &str) -> Box<dyn ProgressBar> {
        self.bars.lock().unwrap().push(message.to_string());
        Box::new(CountingBar(self.bytes.clone()))
    }
    fn passphrase(&self, _prompt: &str) -> std::io::Result<Option<String>> {
        Ok(Some("library passphrase".into()))
    }
}

/// A folder with a config file, a dir target and an encrypted repository;
/// the passphrase comes from the reporter, as a prompt would give it
/// (unless RIPCORD_PASSWORD is set, which then serves both).
fn setup(root: &Path) -> (Ctx, Arc<Recorder>) {
    let app = root.join("app");
    ripcord_testing::data::standard_tree(&app, 7);
    let config_path = root.join("ripcord.toml");
    std::fs::write(
        &config_path,
        format!(
            "[repository]\nurl = \"{}\"\n\n[targets.app]\nkind = \"dir\"\npath = \"{}\"\n",
            root.join("repo").display(),
            app.display()
        ),
    )
    .unwrap();
    let config = Config::load(&config_path, &[]).unwrap();
    let recorder = Arc::new(Recorder::default());
    let ctx = Ctx::new(config, Some(config_path), recorder.clone());
    std::fs::create_dir_all(root.join("repo")).unwrap();
    let pass = ctx.passphrase("").unwrap().unwrap();
    Repository::init(ctx.backend().unwrap(), Some(&pass)).unwrap();
    (ctx, recorder)
}

#[test]
fn snapshot_and_in_place_restore_through_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, recorder) = setup(tmp.path());
    let app = tmp.path().join("app");
    let before = Fingerprint::of(&app);

    let taken = ripcord_ops::snapshot::snapshot(&ctx, &SnapshotOptions::default()).unwrap();
    assert_eq!(taken.targets, ["app"]);
    assert!(taken.files > 0);
    assert_eq!(recorder.bars.lock().unwrap().as_slice(), ["snapshot app"]);
    assert!(*recorder.bytes.lock().unwrap() > 0, "the bar saw the bytes");

    std::fs::write(app.join("stray.txt"), "left by a bad deploy").unwrap();
    let restored = ripcord_ops::restore::run(
        &ctx,
        &RestoreOptions {
            snapshot: taken.short_id.clone(),
            ..RestoreOptions::default()
        },
    )
    .unwrap();
    assert!(
        restored.safety_snapshot.is_some(),
        "an in-place restore keeps what it replaces"
    );
    assert_eq!(restored.targets.len(), 1);
    Fingerprint::of(&app)
        .without_dir_times()
        .assert_same(&before.without_dir_times(), "the restored tree");
    assert!(recorder.warned.lock().unwrap().is_empty());

    // The result serializes for --json and the server alike.
    let json = serde_json::to_value(&restored).unwrap();
    assert_eq!(json["targets"][0]["target"], "app");
}

#[test]
fn library_errors_keep_their_class_and_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, _) = setup(tmp.path());
    let Err(unknown) = ripcord_ops::snapshot::snapshot(
        &ctx,
        &SnapshotOptions {
            targets: vec!["nope".into()],
            ..SnapshotOptions::default()
        },
    ) else {
        panic!("an unknown target was snapshotted");
    };
    assert_eq!(unknown.class(), Class::Usage, "{unknown}");
    assert!(unknown.to_string().contains("nope"), "{unknown}");

    let taken = ripcord_ops::snapshot::snapshot(&ctx, &SnapshotOptions::default()).unwrap();
    let Err(wrong) = ripcord_ops::restore::run(
        &ctx,
        &RestoreOptions {
            snapshot: taken.short_id,
            targets: vec!["other".into()],
            ..RestoreOptions::default()
        },
    ) else {
        panic!("a target the snapshot lacks was restored");
    };
    assert_eq!(wrong.class(), Class::Usage);
    assert!(wrong.to_string().ends_with("it holds app"), "{wrong}");
    assert!(
        wrong
            .hint()
            .is_some_and(|h| h.contains("ripcord snapshots")),
        "{wrong}"
    );
}
