//! What every storage backend promises the repository, checked on a local
//! folder and on a real S3 server (Garage) through one suite.

use std::io::ErrorKind;
use std::sync::Arc;

use ripcord_repo::backend::{Backend, LocalBackend};
use ripcord_repo::s3::{S3Backend, S3Options, MULTIPART_THRESHOLD};
use ripcord_testing::garage;

/// A fresh, empty repository location on each backend.
fn backends() -> Vec<(Arc<dyn Backend>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
    let g = garage::shared();
    let opts = S3Options {
        endpoint: Some(g.endpoint()),
        region: Some(garage::REGION.into()),
        access_key_id: Some(garage::KEY_ID.into()),
        secret_access_key: Some(garage::SECRET.into()),
        path_style: true,
        ..Default::default()
    };
    let s3 = S3Backend::new(&garage::fresh_url("contract"), &opts).unwrap();
    s3.check().unwrap();
    vec![(local, Some(dir)), (Arc::new(s3), None)]
}

#[test]
fn create_if_absent_never_overwrites() {
    for (b, _dir) in backends() {
        let at = b.location();
        assert!(b.put_if_absent("data/ab/x", b"one").unwrap(), "{at}");
        assert!(!b.put_if_absent("data/ab/x", b"two").unwrap(), "{at}");
        assert_eq!(b.get("data/ab/x").unwrap(), b"one", "{at}");
        assert!(b.exists("data/ab/x").unwrap() && !b.exists("data/ab/y").unwrap());
        assert_eq!(
            b.get("nothing").unwrap_err().kind(),
            ErrorKind::NotFound,
            "{at}"
        );
    }
}

#[test]
fn ranged_reads_stay_inside_the_object() {
    for (b, _dir) in backends() {
        let at = b.location();
        b.put_if_absent("data/cd/r", b"0123456789").unwrap();
        assert_eq!(b.size("data/cd/r").unwrap(), 10, "{at}");
        assert_eq!(b.get_range("data/cd/r", 3, 4).unwrap(), b"3456", "{at}");
        // A length read from a damaged index is refused, not allocated.
        let e = b.get_range("data/cd/r", 8, u32::MAX as u64).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{at}");
        assert!(b.get_range("data/cd/r", u64::MAX, 2).is_err(), "{at}");
    }
}

#[test]
fn listing_is_by_prefix_and_deletion_is_idempotent() {
    for (b, _dir) in backends() {
        let at = b.location();
        for p in ["snapshots/a", "snapshots/b", "index/c", "data/00/d"] {
            b.put_if_absent(p, p.as_bytes()).unwrap();
        }
        assert_eq!(
            b.list("snapshots").unwrap(),
            vec![("snapshots/a".into(), 11), ("snapshots/b".into(), 11)],
            "{at}"
        );
        assert_eq!(b.list("data").unwrap().len(), 1, "{at}");
        assert!(b.list("keys").unwrap().is_empty(), "{at}");
        b.delete("snapshots/a").unwrap();
        b.delete("snapshots/a").unwrap();
        assert_eq!(b.list("snapshots").unwrap().len(), 1, "{at}");
    }
}

#[test]
fn large_objects_round_trip_whole_and_in_ranges() {
    for (b, _dir) in backends() {
        let at = b.location();
        // Above the multipart threshold on S3: several parts.
        let big = ripcord_testing::data::random_bytes(9, MULTIPART_THRESHOLD + (3 << 20) + 17);
        assert!(b.put_if_absent("data/ef/big", &big).unwrap(), "{at}");
        assert!(!b.put_if_absent("data/ef/big", b"other").unwrap(), "{at}");
        assert_eq!(b.size("data/ef/big").unwrap(), big.len() as u64, "{at}");
        assert!(b.get("data/ef/big").unwrap() == big, "{at}");
        // Small reads: inside one window, and across the edge of two.
        for off in [
            0u64,
            5_000,
            (4 << 20) - 50,
            (8 << 20) + 1,
            big.len() as u64 - 10,
        ] {
            let got = b
                .get_range("data/ef/big", off, 10.min(big.len() as u64 - off))
                .unwrap();
            assert!(
                got == big[off as usize..off as usize + got.len()],
                "{at} at {off}"
            );
            assert!(!got.is_empty());
        }
        let e = b
            .get_range("data/ef/big", big.len() as u64 - 5, 10)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{at}");
        let off = (9 << 20) - 5;
        assert!(
            b.get_range("data/ef/big", off, 100).unwrap() == big[off as usize..off as usize + 100]
        );
    }
}
