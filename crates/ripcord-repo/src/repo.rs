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

/// Readable key files, and damaged ones with what is wrong with each.
pub type KeyFiles = (Vec<(Id, KeyFile)>, Vec<(Id, Error)>);

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
        let (keys, mode) = match passphrase {
            Some(_) => (Keys::encrypted(&master), MODE_XCHACHA),
            None => {
                config.id_key = Some(Id(master.id));
                (Keys::plain(master.id), MODE_PLAIN)
            }
        };
        let mut bytes = MAGIC.to_vec();
        bytes.push(FORMAT_VERSION);
        bytes.push(mode);
        bytes.extend(keys.seal(serde_json::to_vec(&config).expect("config serializes")));
        // The key file is bound to the config's exact bytes, and written first:
        // a repository with key files is always an encrypted one.
        let key_id = passphrase
            .map(|pass| write_key_file(&*backend, &master, pass, &bytes))
            .transpose()?;
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
                crate::trust::check_plain(&*backend, passphrase.is_some())?;
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
                let (master, key_id, key_file) = unlock(&*backend, pass)?;
                let keys = Keys::encrypted(&master);
                // Damaged bytes fail the seal first (exit 1); a config that
                // opens but is not the key's own was put there (exit 3).
                keys.open(body)
                    .map_err(|e| Error::corrupt("config", e.to_string()))?;
                if !key_file.binds(&master, &bytes) {
                    return Err(Error::Untrusted {
                        location,
                        detail: format!(
                            "its config is not the one key {} was made for",
                            key_id.short()
                        ),
                        hint: "the config was replaced: restore `config` from a copy of the repository".into(),
                    });
                }
                (keys, Some(key_id))
            }
            other => return Err(Error::corrupt("config", format!("unknown mode {other}"))),
        };
        let plain = keys
            .open(body)
            .map_err(|e| Error::corrupt("config", e.to_string()))?;
        let config: RepoConfig =
            serde_json::from_slice(&plain).map_err(|e| Error::corrupt("config", e.to_string()))?;
        crate::trust::check_chunker(&config.chunker)?;
        Ok(Repository {
            backend,
            keys: Arc::new(keys),
            config,
            key_id,
        })
    }

    /// Whether the repository's config says it is encrypted, read without
    /// opening it (to know whether to ask for a passphrase).
    pub fn is_encrypted_at(backend: &dyn Backend) -> Result<bool> {
        let location = backend.location();
        let head = match backend.get_range("config", 0, 9) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotARepository { location })
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Error::corrupt("config", "too short"))
            }
            Err(e) => return Err(Error::io(format!("cannot read config in {location}"), e)),
        };
        Ok(head[8] != MODE_PLAIN)
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
        open_small_file(&self.keys, &bytes).map_err(|e| Error::corrupt(&path, e))
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
        Snapshot::decode(&bytes, &format!("snapshots/{}", id.to_hex()))
    }

    /// Every snapshot that reads, oldest first, and the ones that do not.
    pub fn snapshot_list(&self) -> Result<SnapshotList> {
        let mut list = SnapshotList::default();
        for id in self.list_ids("snapshots")? {
            match self.load_snapshot(&id) {
                Ok(s) => list.snapshots.push((id, s)),
                // Unreachable storage is not damage: stop.
                Err(e @ Error::Io { .. }) => return Err(e),
                Err(e) => list.damaged.push(DamagedSnapshot {
                    id,
                    error: e.to_string(),
                }),
            }
        }
        list.snapshots
            .sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(list)
    }

    /// The snapshots that read, oldest first; damaged manifests are left out
    /// (see [`snapshot_list`](Self::snapshot_list) to name them).
    pub fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        Ok(self.snapshot_list()?.snapshots)
    }

    /// Resolves a selector to one snapshot: an id or a unique prefix of
    /// one; `latest`, the newest snapshot that is not a safety snapshot;
    /// `latest:TAG`, the newest snapshot tagged TAG (`latest:safety` is the
    /// newest safety snapshot).
    pub fn find_snapshot(&self, selector: &str) -> Result<(Id, Snapshot)> {
        Ok(self.find_snapshot_noting(selector)?.0)
    }

    /// Like [`find_snapshot`](Self::find_snapshot), also returning the
    /// damaged manifests `latest` skipped, for the caller to warn about.
    pub fn find_snapshot_noting(
        &self,
        selector: &str,
    ) -> Result<((Id, Snapshot), Vec<DamagedSnapshot>)> {
        self.find_snapshot_where(selector, |_| true)
    }

    /// Like [`find_snapshot_noting`](Self::find_snapshot_noting); `latest`
    /// and `latest:TAG` also skip the snapshots `holds` rejects (for
    /// example, those without the target being restored).
    pub fn find_snapshot_where(
        &self,
        selector: &str,
        holds: impl Fn(&Snapshot) -> bool,
    ) -> Result<((Id, Snapshot), Vec<DamagedSnapshot>)> {
        if let Some(wanted) = latest_selector(selector) {
            let list = self.snapshot_list()?;
            let found = list
                .snapshots
                .into_iter()
                .rev()
                .find(|(_, s)| {
                    holds(s)
                        && match wanted {
                            None => !s.is_safety(),
                            Some(tag) => s.tags.iter().any(|t| t == tag),
                        }
                })
                .ok_or_else(|| Error::SnapshotNotFound {
                    id: selector.into(),
                })?;
            return Ok((found, list.damaged));
        }
        let id = self.resolve_snapshot_id(selector)?;
        Ok(((id, self.load_snapshot(&id)?), Vec::new()))
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
        self.read_blob_at(index, id, 0)
    }

    /// `depth`: how many deltas lead to this blob. The writer never stores a
    /// delta against a delta, so a longer chain (or a loop) is damage.
    fn read_blob_at(&self, index: &Index, id: &Id, depth: usize) -> Result<Vec<u8>> {
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
            Some(b) if depth >= MAX_DELTA_CHAIN => {
                return Err(Error::corrupt(
                    &path,
                    format!(
                        "blob {} is a delta against {}, itself a delta: base chains longer than {MAX_DELTA_CHAIN} are never written",
                        id.short(),
                        b.short()
                    ),
                ))
            }
            Some(b) => Some(self.read_blob_at(index, &b, depth + 1)?),
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

    /// Reads the blobs `ids` and hands them to `each` in order, with as
    /// many reads in flight ahead of it as the backend asks for
    /// ([`Backend::read_ahead`]): object storage answers each read after a
    /// round trip, a local folder right away.
    pub fn for_each_blob<E: From<Error>>(
        &self,
        index: &Index,
        ids: &[Id],
        mut each: impl FnMut(Vec<u8>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let ahead = self.backend.read_ahead().min(ids.len());
        if ahead <= 1 {
            for id in ids {
                each(self.read_blob(index, id)?)?;
            }
            return Ok(());
        }
        // Workers take the next index while it is fewer than `ahead` past the
        // one handed over; results wait in `ready` until their turn.
        struct State {
            next: usize,
            handed: usize,
            stop: bool,
            ready: std::collections::BTreeMap<usize, Result<Vec<u8>>>,
        }
        let state = std::sync::Mutex::new(State {
            next: 0,
            handed: 0,
            stop: false,
            ready: Default::default(),
        });
        let changed = std::sync::Condvar::new();
        std::thread::scope(|scope| {
            for _ in 0..ahead {
                scope.spawn(|| loop {
                    let i = {
                        let mut st = state.lock().expect("read-ahead lock");
                        while !st.stop && st.next < ids.len() && st.next >= st.handed + ahead {
                            st = changed.wait(st).expect("read-ahead lock");
                        }
                        if st.stop || st.next >= ids.len() {
                            return;
                        }
                        st.next += 1;
                        st.next - 1
                    };
                    let got = self.read_blob(index, &ids[i]);
                    state.lock().expect("read-ahead lock").ready.insert(i, got);
                    changed.notify_all();
                });
            }
            let result = (|| {
                for i in 0..ids.len() {
                    let got = {
                        let mut st = state.lock().expect("read-ahead lock");
                        loop {
                            if let Some(got) = st.ready.remove(&i) {
                                break got;
                            }
                            st = changed.wait(st).expect("read-ahead lock");
                        }
                    };
                    each(got.map_err(E::from)?)?;
                    state.lock().expect("read-ahead lock").handed = i + 1;
                    changed.notify_all();
                }
                Ok(())
            })();
            state.lock().expect("read-ahead lock").stop = true;
            changed.notify_all();
            result
        })
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

    /// The readable key files, oldest first, and the damaged ones with
    /// what is wrong with each (listed, never used).
    pub fn key_files(&self) -> Result<KeyFiles> {
        let (mut out, mut damaged) = (Vec::new(), Vec::new());
        for id in self.list_ids("keys")? {
            match read_key_file(&*self.backend, &id) {
                Ok(kf) => out.push((id, kf)),
                Err(e @ Error::Corrupt { .. }) => damaged.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|k| k.1.created);
        Ok((out, damaged))
    }

    /// Wraps the master key with a new passphrase. Data is not touched.
    pub fn add_key(&self, master_pass: &str, new_pass: &str) -> Result<Id> {
        if !self.keys.is_encrypted() {
            return Err(Error::Key(
                "this repository is not encrypted; it has no keys".into(),
            ));
        }
        let (master, _, _) = unlock(&*self.backend, master_pass)?;
        let config = self
            .backend
            .get("config")
            .map_err(|e| Error::io("cannot read config", e))?;
        write_key_file(&*self.backend, &master, new_pass, &config)
    }

    /// Removes a key file by id; a damaged one too, as it is never read.
    pub fn remove_key(&self, id: &Id) -> Result<()> {
        self.check_remove_key(id)?;
        let path = format!("keys/{}", id.to_hex());
        self.backend
            .delete(&path)
            .map_err(|e| Error::io(format!("cannot delete {path}"), e))
    }

    /// Whether [`remove_key`](Self::remove_key) would remove `id`: it
    /// exists, is not the key in use, and is not the last one.
    pub fn check_remove_key(&self, id: &Id) -> Result<()> {
        let keys = self.list_ids("keys")?;
        if !keys.contains(id) {
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
        Ok(())
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

fn write_key_file(
    backend: &dyn Backend,
    master: &MasterKey,
    pass: &str,
    config: &[u8],
) -> Result<Id> {
    let kf = KeyFile::wrap_bound(master, pass, config);
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
    let kf: KeyFile =
        serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&path, e.to_string()))?;
    kf.check().map_err(|e| {
        Error::corrupt(
            &path,
            format!("key file parameters out of range ({e}); it was not used"),
        )
    })?;
    Ok(kf)
}

/// Tries every key file with the passphrase. Damaged ones (unreadable, or
/// with key derivation parameters out of range) are skipped, never run.
fn unlock(backend: &dyn Backend, pass: &str) -> Result<(MasterKey, Id, KeyFile)> {
    let location = backend.location();
    let files = backend
        .list("keys")
        .map_err(|e| Error::io("cannot list keys/", e))?;
    let ids: Vec<Id> = files
        .iter()
        .filter_map(|(path, _)| path.rsplit('/').next().and_then(Id::from_hex))
        .collect();
    if ids.is_empty() {
        return Err(Error::NoKey { location });
    }
    let mut damaged = Vec::new();
    for id in &ids {
        match read_key_file(backend, id) {
            Ok(kf) => {
                if let Some(master) = kf.unwrap_key(pass) {
                    return Ok((master, *id, kf));
                }
            }
            Err(e) => damaged.push(e),
        }
    }
    if damaged.len() == ids.len() {
        // No key could even be tried: say so rather than blaming the passphrase.
        return Err(damaged.swap_remove(0));
    }
    Err(Error::WrongPassword { location })
}

/// Opens and decompresses a file written by `save_file`. The output is
/// bounded: at least 64 MiB, else 256 times the stored size, far above what
/// manifests and index files compress by, so a crafted zstd frame cannot
/// claim gigabytes.
pub fn open_small_file(keys: &Keys, bytes: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let compressed = keys.open(bytes).map_err(|e| e.to_string())?;
    let limit = (compressed.len() as u64)
        .saturating_mul(256)
        .max(MIN_EXPANSION_LIMIT);
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(&compressed[..])
        .map_err(|e| e.to_string())?
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > limit {
        return Err(format!(
            "expands beyond {limit} bytes from {} stored bytes",
            compressed.len()
        ));
    }
    Ok(out)
}

const MIN_EXPANSION_LIMIT: u64 = 64 << 20;

/// Deltas a read may follow: a delta's base is never itself a delta.
const MAX_DELTA_CHAIN: usize = 1;

/// What [`Repository::snapshot_list`] found.
#[derive(Default)]
pub struct SnapshotList {
    /// Oldest first.
    pub snapshots: Vec<(Id, Snapshot)>,
    /// Manifests that could not be read, decrypted or parsed.
    pub damaged: Vec<DamagedSnapshot>,
}

/// A manifest that was skipped.
#[derive(Clone, Debug)]
pub struct DamagedSnapshot {
    pub id: Id,
    pub error: String,
}

impl DamagedSnapshot {
    /// A warning that names it and says how to remove it.
    pub fn warning(&self) -> String {
        format!(
            "skipped damaged snapshot {}: {}; remove it with `ripcord forget {}`",
            self.id.short(),
            self.error,
            self.id.short()
        )
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
