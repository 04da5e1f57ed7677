//! Checks that the repository's files agree with each other before anything
//! is read or written: an unencrypted config swapped in for an encrypted
//! repository's must never make the next snapshot write cleartext.
//!
//! An encrypted config is sealed with the master key and bound to its key
//! files (see [`KeyFile::binds`](crate::crypto::KeyFile::binds)). An
//! unencrypted one has no secret to prove anything with, so it is only
//! trusted when nothing contradicts it: no passphrase was given, there are
//! no key files, and the manifests and index files already there are
//! unencrypted too. Packs are not checked: without an index or a manifest
//! nothing refers to them.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::repo::ChunkerParams;

/// What every file written by `save_file` starts with in an unencrypted
/// repository: the zstd frame magic. A sealed file starts with a random nonce.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

const REPLACED_HINT: &str = "if this repository was created encrypted, its config was replaced: restore `config` and `keys/` from a copy and run nothing against it until then";

/// Refuses an unencrypted config that the rest of the repository contradicts.
pub(crate) fn check_plain(backend: &dyn Backend, passphrase_given: bool) -> Result<()> {
    let location = backend.location();
    let untrusted = |detail: String, hint: String| Error::Untrusted {
        location: location.clone(),
        detail,
        hint,
    };
    let keys = backend
        .list("keys")
        .map_err(|e| Error::io("cannot list keys/", e))?;
    if !keys.is_empty() {
        return Err(untrusted(
            format!(
                "its config says it is unencrypted, but it has {}: an encrypted repository always has an encrypted config",
                ripcord_core::text::counted(keys.len() as u64, "key file")
            ),
            REPLACED_HINT.into(),
        ));
    }
    for dir in ["snapshots", "index"] {
        let files = backend
            .list(dir)
            .map_err(|e| Error::io(format!("cannot list {dir}/"), e))?;
        for (path, size) in files {
            if size < 4 {
                continue; // too short to be anything; verify reports it
            }
            let head = backend
                .get_range(&path, 0, 4)
                .map_err(|e| Error::io(format!("cannot read {path}"), e))?;
            if head != ZSTD_MAGIC {
                return Err(untrusted(
                    format!("its config says it is unencrypted, but {path} is encrypted"),
                    REPLACED_HINT.into(),
                ));
            }
        }
    }
    if passphrase_given {
        return Err(untrusted(
            "its config says it is unencrypted, but a passphrase is configured for it".into(),
            format!(
                "{REPLACED_HINT}; if it really is unencrypted, unset RIPCORD_PASSWORD and [repository] password_command"
            ),
        ));
    }
    Ok(())
}

/// FastCDC's own limits (v2020), checked before the chunker asserts them.
pub(crate) fn check_chunker(p: &ChunkerParams) -> Result<()> {
    let ok = (64..=1 << 20).contains(&p.min)
        && (256..=4 << 20).contains(&p.avg)
        && (1024..=16 << 20).contains(&p.max)
        && p.min <= p.avg
        && p.avg <= p.max;
    if ok {
        Ok(())
    } else {
        Err(Error::corrupt(
            "config",
            format!(
                "chunker parameters out of range (min {}, avg {}, max {})",
                p.min, p.avg, p.max
            ),
        ))
    }
}
