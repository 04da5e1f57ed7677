//! Opening, creating and reading a repository.
//!
//! Layout: `config`, `keys/<id>`, `data/<xx>/<pack id>`, `index/<id>`,
//! `snapshots/<id>`, `locks/<id>`. Every file but a lock is immutable and named
//! by the BLAKE3 of its bytes, so damage is detected before decryption.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::blob;
use crate::crypto::{KeyFile, Keys, MasterKey};
use crate::error::{Error, Result};
use crate::index::{self, Index};
use crate::manifest::{Snapshot, Tree};
use crate::pack;
use crate::Id;

/// The packs one index file lists, with their entries.
pub type IndexContents = Vec<(Id, Vec<pack::PackEntry>)>;

const MAGIC: &[u8; 7] = b"RIPCORD";
const FORMAT_VERSION: u8 = 1;
const MODE_PLAIN: u8 = 0;
const MODE_XCHACHA: u8 = 1;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min: 256 << 10,
            avg: 1 << 20,
            max: 4 << 20,
        }
    }
}

/// The sealed `config` file.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RepoConfig {
    pub id: Id,
    pub version: u32,
    pub chunker: ChunkerParams,
    /// Only in unencrypted repositories: the key for blob ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_key: Option<Id>,
}

#[derive(Clone)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    keys: Arc<Keys>,
    config: RepoConfig,
    key_id: Option<Id>,
}

impl Repository {
    /// Creates a repository. `passphrase: None` makes an unencrypted one.
    pub fn init(backend: Arc<dyn Backend>, passphrase: Option<&str>) -> Result<Repository> {
        let location = backend.location();
        if backend
            .exists("config")
            .map_err(|e| Error::io(format!("cannot reach {location}"), e))?
        {
            return Err(Error::AlreadyExists { location });
        }
        let master = MasterKey::random();
        let mut config = RepoConfig {
            id: Id::random(),
            version: 1,
            chunker: ChunkerParams::default(),
            id_key: None,
        };
        let (keys, key_id, mode) = match passphrase {
            Some(pass) => {
                let key_id = write_key_file(&*backend, &master, pass)?;
                (Keys::encrypted(&master), Some(key_id), MODE_XCHACHA)
            }
            None => {
                config.id_key = Some(Id(master.id));
                (Keys::plain(master.id), None, MODE_PLAIN)
            }
        };
        let mut bytes = MAGIC.to_vec();
        bytes.push(FORMAT_VERSION);
        bytes.push(mode);
        bytes.extend(keys.seal(serde_json::to_vec(&config).expect("config serializes")));
        backend
            .put_if_absent("config", &bytes)
            .map_err(|e| Error::io(format!("cannot write config in {location}"), e))?;
        Ok(Repository {
            backend,
            keys: Arc::new(keys),
            config,
            key_id,
        })
    }

    pub fn open(backend: Arc<dyn Backend>, passphrase: Option<&str>) -> Result<Repository> {
        let location = backend.location();
        let bytes = match backend.get("config") {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotARepository { location })
            }
            Err(e) => return Err(Error::io(format!("cannot read config in {location}"), e)),
        };
        if bytes.len() < 9 || &bytes[..7] != MAGIC {
            return Err(Error::corrupt(
                "config",
                "not a ripcord config file (bad magic)",
            ));
        }
        if bytes[7] != FORMAT_VERSION {
            return Err(Error::Invalid(format!(
                "repository format version {} is newer than this ripcord reads (format {FORMAT_VERSION}); upgrade ripcord",
                bytes[7]
            )));
        }
        let body = &bytes[9..];
        let (keys, key_id) = match bytes[8] {
            MODE_PLAIN => {
                let config: RepoConfig = serde_json::from_slice(body)
                    .map_err(|e| Error::corrupt("config", e.to_string()))?;
                let id_key = config
                    .id_key
                    .ok_or_else(|| Error::corrupt("config", "unencrypted config without id key"))?;
                (Keys::plain(id_key.0), None)
            }
            MODE_XCHACHA => {
                let pass = passphrase.ok_or(Error::PasswordRequired {
                    location: location.clone(),
                })?;
                let (master, key_id) = unlock(&*backend, pass)?;
                (Keys::encrypted(&master), Some(key_id))
            }
            other => return Err(Error::corrupt("config", format!("unknown mode {other}"))),
        };
        let plain = keys
            .open(body)
            .map_err(|e| Error::corrupt("config", e.to_string()))?;
        let config: RepoConfig =
            serde_json::from_slice(&plain).map_err(|e| Error::corrupt("config", e.to_string()))?;
        Ok(Repository {
            backend,
            keys: Arc::new(keys),
            config,
            key_id,
        })
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }
    /// The key file this session was opened with.
    pub fn key_id(&self) -> Option<Id> {
        self.key_id
    }
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Lists file ids in one folder (`snapshots`, `index`, `keys`).
    pub fn list_ids(&self, dir: &str) -> Result<Vec<Id>> {
        let files = self
            .backend
            .list(dir)
            .map_err(|e| Error::io(format!("cannot list {dir}/"), e))?;
        Ok(files
            .iter()
            .filter_map(|(p, _)| p.rsplit('/').next().and_then(Id::from_hex))
            .collect())
    }

    /// Seals, compresses and stores a small file under `dir/`, named by its bytes.
    pub fn save_file(&self, dir: &str, plaintext: &[u8]) -> Result<Id> {
        let compressed =
            zstd::bulk::compress(plaintext, 3).map_err(|e| Error::io("cannot compress", e))?;
        let bytes = self.keys.seal(compressed);
        let id = Id::of_file(&bytes);
        let path = format!("{dir}/{}", id.to_hex());
        self.backend
            .put_if_absent(&path, &bytes)
            .map_err(|e| Error::io(format!("cannot write {path}"), e))?;
        Ok(id)
    }

    /// Reads a file written by [`save_file`](Self::save_file), checking its name.
    pub fn load_file(&self, dir: &str, id: &Id) -> Result<Vec<u8>> {
        let path = format!("{dir}/{}", id.to_hex());
        let bytes = self.backend.get(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::corrupt(&path, "missing")
            } else {
                Error::io(format!("cannot read {path}"), e)
            }
        })?;
        if Id::of_file(&bytes) != *id {
            return Err(Error::corrupt(
                &path,
                "content does not match its name (modified or truncated)",
            ));
        }
        let compressed = self
            .keys
            .open(&bytes)
            .map_err(|e| Error::corrupt(&path, e.to_string()))?;
        zstd::stream::decode_all(&compressed[..]).map_err(|e| Error::corrupt(&path, e.to_string()))
    }

    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let id = self.save_file(
            "snapshots",
            &serde_json::to_vec(snapshot).expect("serializes"),
        )?;
        ripcord_core::failpoint::hit("snapshot-written");
        Ok(id)
    }

    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let bytes = self.load_file("snapshots", id)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(format!("snapshots/{}", id.to_hex()), e.to_string()))
    }

    /// All snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let mut out = Vec::new();
        for id in self.list_ids("snapshots")? {
            out.push((id, self.load_snapshot(&id)?));
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Resolves a selector to one snapshot: an id or a unique prefix of
    /// one; `latest`, the newest snapshot that is not a safety snapshot;
    /// `latest:TAG`, the newest snapshot tagged TAG (`latest:safety` is the
    /// newest safety snapshot).
    pub fn find_snapshot(&self, selector: &str) -> Result<(Id, Snapshot)> {
        if let Some(wanted) = latest_selector(selector) {
            return self
                .snapshots()?
                .into_iter()
                .rev()
                .find(|(_, s)| match wanted {
                    None => !s.is_safety(),
                    Some(tag) => s.tags.iter().any(|t| t == tag),
                })
                .ok_or_else(|| Error::SnapshotNotFound {
                    id: selector.into(),
                });
        }
        let id = self.resolve_snapshot_id(selector)?;
        Ok((id, self.load_snapshot(&id)?))
    }

    pub fn resolve_snapshot_id(&self, prefix: &str) -> Result<Id> {
        let prefix_lc = prefix.to_ascii_lowercase();
        if prefix_lc.is_empty() || !prefix_lc.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::SnapshotNotFound { id: prefix.into() });
        }
        let matches: Vec<Id> = self
            .list_ids("snapshots")?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&prefix_lc))
            .collect();
        match matches.as_slice() {
            [] => Err(Error::SnapshotNotFound { id: prefix.into() }),
            [one] => Ok(*one),
            many => Err(Error::AmbiguousSnapshot {
                id: prefix.into(),
                candidates: many.iter().map(Id::short).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    pub fn delete_snapshot(&self, id: &Id) -> Result<()> {
        let path = format!("snapshots/{}", id.to_hex());
        self.backend
            .delete(&path)
            .map_err(|e| Error::io(format!("cannot delete {path}"), e))
    }

    /// Loads every index file into memory.
    pub fn load_index(&self) -> Result<Index> {
        let mut idx = Index::new();
        for (_, packs) in self.index_files()? {
            for (pack, entries) in packs {
                idx.add_pack(pack, &entries);
            }
        }
        idx.finalize();
        Ok(idx)
    }

    pub(crate) fn index_files(&self) -> Result<Vec<(Id, IndexContents)>> {
        let ids = self.list_ids("index")?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let bytes = self.load_file("index", &id)?;
            let packs = index::decode_file(&bytes)
                .map_err(|e| Error::corrupt(format!("index/{}", id.to_hex()), e))?;
            out.push((id, packs));
        }
        Ok(out)
    }

    pub fn save_index(&self, packs: &[(Id, Vec<pack::PackEntry>)]) -> Result<Id> {
        let id = self.save_file("index", &index::encode_file(packs))?;
        ripcord_core::failpoint::hit("index-written");
        Ok(id)
    }

    /// Packs in `data/` with their sizes.
    pub fn list_packs(&self) -> Result<Vec<(Id, u64)>> {
        let files = self
            .backend
            .list("data")
            .map_err(|e| Error::io("cannot list data/", e))?;
        Ok(files
            .iter()
            .filter_map(|(p, size)| Some((Id::from_hex(p.rsplit('/').next()?)?, *size)))
            .collect())
    }

    /// Reads, decrypts, decompresses and checks one blob.
    pub fn read_blob(&self, index: &Index, id: &Id) -> Result<Vec<u8>> {
        let loc = index
            .get(id)
            .ok_or_else(|| Error::corrupt(format!("blob {}", id.short()), "not in the index"))?;
        let path = pack::path(&loc.pack);
        let sealed = self
            .backend
            .get_range(&path, loc.offset as u64, loc.length as u64)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::corrupt(&path, "pack is missing"),
                std::io::ErrorKind::UnexpectedEof => Error::corrupt(&path, "pack is truncated"),
                _ => Error::io(format!("cannot read {path}"), e),
            })?;
        let base = match loc.base {
            Some(b) if b == *id => {
                return Err(Error::corrupt(
                    &path,
                    format!("blob {} is its own base", id.short()),
                ))
            }
            Some(b) => Some(self.read_blob(index, &b)?),
            None => None,
        };
        let data = blob::decode_with_base(
            &self.keys,
            &sealed,
            loc.raw_length as usize,
            base.as_deref(),
        )
        .map_err(|e| Error::corrupt(&path, format!("blob {}: {e}", id.short())))?;
        if self.keys.blob_id(&data) != *id {
            return Err(Error::corrupt(
                &path,
                format!("blob {} does not match its id", id.short()),
            ));
        }
        Ok(data)
    }

    pub fn load_tree(&self, index: &Index, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(index, id)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(format!("tree {}", id.short()), e.to_string()))
    }

    /// Adds packs that are in `data/` but in no index file (left by an
    /// interrupted snapshot) to `index` and records them in a new index file,
    /// so their blobs are reused. Returns how many packs were recovered.
    pub fn index_orphan_packs(&self, index: &mut Index) -> Result<usize> {
        let mut found = Vec::new();
        for (pack_id, _) in self.list_packs()? {
            if index.has_pack(&pack_id) {
                continue;
            }
            // A pack whose trailer cannot be read is left for verify and prune.
            if let Ok(entries) =
                pack::read_header(&*self.backend, &self.keys, &pack::path(&pack_id))
            {
                found.push((pack_id, entries));
            }
        }
        if found.is_empty() {
            return Ok(0);
        }
        self.save_index(&found)?;
        for (id, entries) in &found {
            index.add_pack(*id, entries);
        }
        index.finalize();
        Ok(found.len())
    }

    // ----- keys -----

    pub fn key_files(&self) -> Result<Vec<(Id, KeyFile)>> {
        let mut out = Vec::new();
        for id in self.list_ids("keys")? {
            out.push((id, read_key_file(&*self.backend, &id)?));
        }
        out.sort_by_key(|k| k.1.created);
        Ok(out)
    }

    /// Wraps the master key with a new passphrase. Data is not touched.
    pub fn add_key(&self, master_pass: &str, new_pass: &str) -> Result<Id> {
        if !self.keys.is_encrypted() {
            return Err(Error::Key(
                "this repository is not encrypted; it has no keys".into(),
            ));
        }
        let (master, _) = unlock(&*self.backend, master_pass)?;
        write_key_file(&*self.backend, &master, new_pass)
    }

    pub fn remove_key(&self, id: &Id) -> Result<()> {
        let keys = self.key_files()?;
        if !keys.iter().any(|(k, _)| k == id) {
            return Err(Error::Key(format!("no key {}", id.short())));
        }
        if Some(*id) == self.key_id {
            return Err(Error::Key(
                "refusing to remove the key this session was opened with; open with another passphrase first".into(),
            ));
        }
        if keys.len() <= 1 {
            return Err(Error::Key("refusing to remove the last key".into()));
        }
        let path = format!("keys/{}", id.to_hex());
        self.backend
            .delete(&path)
            .map_err(|e| Error::io(format!("cannot delete {path}"), e))
    }
}

/// `latest` → `Some(None)`, `latest:TAG` → `Some(Some(TAG))`, anything else
/// (an id) → `None`.
fn latest_selector(selector: &str) -> Option<Option<&str>> {
    match selector.split_once(':') {
        None if selector == "latest" => Some(None),
        Some(("latest", tag)) if !tag.is_empty() => Some(Some(tag)),
        _ => None,
    }
}

fn write_key_file(backend: &dyn Backend, master: &MasterKey, pass: &str) -> Result<Id> {
    let kf = KeyFile::wrap(master, pass);
    let bytes = serde_json::to_vec_pretty(&kf).expect("key file serializes");
    let id = Id::of_file(&bytes);
    let path = format!("keys/{}", id.to_hex());
    backend
        .put_if_absent(&path, &bytes)
        .map_err(|e| Error::io(format!("cannot write {path}"), e))?;
    Ok(id)
}

fn read_key_file(backend: &dyn Backend, id: &Id) -> Result<KeyFile> {
    let path = format!("keys/{}", id.to_hex());
    let bytes = backend
        .get(&path)
        .map_err(|e| Error::io(format!("cannot read {path}"), e))?;
    if Id::of_file(&bytes) != *id {
        return Err(Error::corrupt(&path, "content does not match its name"));
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&path, e.to_string()))
}

/// Tries every key file with the passphrase.
fn unlock(backend: &dyn Backend, pass: &str) -> Result<(MasterKey, Id)> {
    let location = backend.location();
    let files = backend
        .list("keys")
        .map_err(|e| Error::io("cannot list keys/", e))?;
    let mut damaged = None;
    for (path, _) in &files {
        let Some(id) = path.rsplit('/').next().and_then(Id::from_hex) else {
            continue;
        };
        match read_key_file(backend, &id) {
            Ok(kf) => {
                if let Some(master) = kf.unwrap_key(pass) {
                    return Ok((master, id));
                }
            }
            Err(e) => damaged = Some(e),
        }
    }
    match damaged {
        // Only damaged keys and none opened: say so rather than blaming the passphrase.
        Some(e) if files.len() == 1 => Err(e),
        _ => Err(Error::WrongPassword { location }),
    }
}

#[cfg(test)]
mod tests {
    use super::latest_selector;

    #[test]
    fn latest_selectors() {
        assert_eq!(latest_selector("latest"), Some(None));
        assert_eq!(latest_selector("latest:safety"), Some(Some("safety")));
        assert_eq!(
            latest_selector("latest:pre-deploy"),
            Some(Some("pre-deploy"))
        );
        assert_eq!(latest_selector("latest:"), None);
        assert_eq!(latest_selector("1a2b3c4d"), None);
        assert_eq!(latest_selector("latestx"), None);
    }
}
