//! A manifest whose target name is not a plain name is refused (exit 3)
//! wherever it is read: such a name can only have been planted.

use ripcord_testing::repo_hashes;

use crate::common::*;

#[test]
fn manifest_with_a_path_as_target_name_is_refused() {
    let s = DirSetup::new(98);
    let id = s.ws.snapshot_id(&[] as &[&str]);
    for evil in ["../x", "/tmp/ripcord-escape-test", "a/b", ""] {
        let repo = open_repo(&s.ws);
        let mut snap = repo.load_snapshot(&self::id(&id)).unwrap();
        snap.targets[0].name = evil.to_string();
        let planted = repo.save_snapshot(&snap).unwrap().to_hex();
        let before = repo_hashes(&s.ws.repo());
        for args in [
            vec!["restore", planted.as_str(), "--into", "out"],
            vec!["show", planted.as_str()],
        ] {
            s.ws.run(&args)
                .assert_code(3)
                .assert_stderr_has("is not a plain name")
                .assert_stderr_has(&format!("ripcord forget {planted}"));
        }
        assert_eq!(repo_hashes(&s.ws.repo()), before);
        assert!(!s.ws.path("out").exists() && !s.ws.path("x").exists());
        assert!(!std::path::Path::new("/tmp/ripcord-escape-test").exists());
        s.ws.ok(&["forget", &planted]);
    }
}
