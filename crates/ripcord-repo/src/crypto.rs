//! Keys, keyed blob ids and authenticated encryption.
//!
//! The master key is 64 random bytes: 32 for XChaCha20-Poly1305 and 32 for the
//! keyed BLAKE3 that names blobs. It is stored once per passphrase in
//! `keys/<id>`, wrapped with a key derived by Argon2id, so adding or changing a
//! passphrase never touches data.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Id;

const NONCE: usize = 24;
const TAG: usize = 16;

/// Sealing (encryption) and blob naming for one repository.
pub struct Keys {
    cipher: Option<XChaCha20Poly1305>,
    id_key: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
#[error("authentication failed: the data was modified, truncated, or sealed with another key")]
pub struct OpenError;

impl Keys {
    pub fn encrypted(master: &MasterKey) -> Keys {
        Keys {
            cipher: Some(XChaCha20Poly1305::new((&master.enc).into())),
            id_key: master.id,
        }
    }
    /// An unencrypted repository still names blobs with a keyed hash.
    pub fn plain(id_key: [u8; 32]) -> Keys {
        Keys {
            cipher: None,
            id_key,
        }
    }
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }
    /// Bytes a sealed message adds to its plaintext.
    pub fn overhead(&self) -> usize {
        if self.cipher.is_some() {
            NONCE + TAG
        } else {
            0
        }
    }
    pub fn seal(&self, plaintext: Vec<u8>) -> Vec<u8> {
        match &self.cipher {
            None => plaintext,
            Some(cipher) => seal_with(cipher, &plaintext),
        }
    }
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        match &self.cipher {
            None => Ok(sealed.to_vec()),
            Some(cipher) => open_with(cipher, sealed),
        }
    }
}

fn seal_with(cipher: &XChaCha20Poly1305, plaintext: &[u8]) -> Vec<u8> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ct = cipher
        .encrypt(&nonce, plaintext)
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
    let mut out = Vec::with_capacity(NONCE + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(cipher: &XChaCha20Poly1305, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < NONCE + TAG {
        return Err(OpenError);
    }
    let (nonce, ct) = sealed.split_at(NONCE);
    cipher
        .decrypt(XNonce::from_slice(nonce), ct)
        .map_err(|_| OpenError)
}

/// The repository's random master key.
pub struct MasterKey {
    pub enc: [u8; 32],
    pub id: [u8; 32],
}

impl MasterKey {
    pub fn random() -> MasterKey {
        let mut m = MasterKey {
            enc: [0; 32],
            id: [0; 32],
        };
        rand::Rng::fill(&mut OsRng, &mut m.enc);
        rand::Rng::fill(&mut OsRng, &mut m.id);
        m
    }
    fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(64));
        v.extend_from_slice(&self.enc);
        v.extend_from_slice(&self.id);
        v
    }
    fn from_bytes(b: &[u8]) -> Option<MasterKey> {
        if b.len() != 64 {
            return None;
        }
        let mut m = MasterKey {
            enc: [0; 32],
            id: [0; 32],
        };
        m.enc.copy_from_slice(&b[..32]);
        m.id.copy_from_slice(&b[32..]);
        Some(m)
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.enc);
        zeroize::Zeroize::zeroize(&mut self.id);
    }
}

/// `keys/<id>`: the master key wrapped with one passphrase.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct KeyFile {
    pub created: chrono::DateTime<chrono::Utc>,
    pub host: String,
    pub user: String,
    pub kdf: String,
    /// Argon2id memory cost in KiB.
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: String,
    /// Nonce, ciphertext and tag of the 64-byte master key, hex.
    pub data: String,
    /// MAC of the repository's `config` file under the master key, hex: the
    /// key only opens the repository whose config it was made for. Absent in
    /// key files written before the binding existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// Argon2id cost: 32 MiB and 3 passes, about 0.1 s on a current core.
const M_COST: u32 = 32 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 1;

/// Bounds on the Argon2id parameters a key file may ask for. Key files are
/// not authenticated until they are opened, so a planted one must not make
/// every command spin: at most 1 GiB, 16 passes and 16 lanes, and at most
/// 64 times the default work (memory × passes).
const MAX_M_COST: u32 = 1 << 20;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 16;
const MAX_WORK: u64 = 64 * M_COST as u64 * T_COST as u64;
/// Salt bytes accepted (Argon2 needs at least 8).
const SALT_LEN: std::ops::RangeInclusive<usize> = 8..=64;

fn derive(passphrase: &str, salt: &[u8], m: u32, t: u32, p: u32) -> Option<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(m, t, p, Some(32)).ok()?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
        .ok()?;
    Some(out)
}

impl KeyFile {
    pub fn wrap(master: &MasterKey, passphrase: &str) -> KeyFile {
        let mut salt = [0u8; 16];
        rand::Rng::fill(&mut OsRng, &mut salt);
        let kek =
            derive(passphrase, &salt, M_COST, T_COST, P_COST).expect("valid Argon2 parameters");
        let cipher = XChaCha20Poly1305::new(kek.as_ref().into());
        let sealed = seal_with(&cipher, &master.to_bytes());
        KeyFile {
            created: chrono::Utc::now(),
            host: crate::hostname(),
            user: crate::username(),
            kdf: "argon2id".into(),
            m_cost: M_COST,
            t_cost: T_COST,
            p_cost: P_COST,
            salt: hex::encode(salt),
            data: hex::encode(sealed),
            config: None,
        }
    }

    /// Wraps the master key and binds the key file to the repository's `config` bytes.
    pub fn wrap_bound(master: &MasterKey, passphrase: &str, config: &[u8]) -> KeyFile {
        let mut kf = KeyFile::wrap(master, passphrase);
        kf.config = Some(hex::encode(config_mac(master, config)));
        kf
    }

    /// Checks the parameters before anything is derived. An error says which
    /// one is out of range: the key file is damaged (or planted) and unused.
    pub fn check(&self) -> Result<(), String> {
        if self.kdf != "argon2id" {
            return Err(format!("unknown key derivation {:?}", self.kdf));
        }
        let range = |name: &str, v: u32, lo: u32, hi: u32| {
            if v < lo || v > hi {
                Err(format!("{name} {v} is outside {lo}..={hi}"))
            } else {
                Ok(())
            }
        };
        range("p_cost", self.p_cost, 1, MAX_P_COST)?;
        range("t_cost", self.t_cost, 1, MAX_T_COST)?;
        range("m_cost", self.m_cost, 8 * self.p_cost, MAX_M_COST)?;
        let work = self.m_cost as u64 * self.t_cost as u64;
        if work > MAX_WORK {
            return Err(format!(
                "m_cost × t_cost = {work} exceeds the limit of {MAX_WORK}"
            ));
        }
        let salt_len = hex::decode(&self.salt).map_or(0, |s| s.len());
        if !SALT_LEN.contains(&salt_len) {
            return Err(format!(
                "salt {:?} is not {}..={} bytes of hex",
                self.salt,
                SALT_LEN.start(),
                SALT_LEN.end()
            ));
        }
        if self.data.len() != 2 * (NONCE + 64 + TAG) {
            return Err(format!(
                "wrapped key is {} hex digits, not {}",
                self.data.len(),
                2 * (NONCE + 64 + TAG)
            ));
        }
        if let Some(c) = &self.config {
            if c.len() != 64 {
                return Err("config binding is not 32 bytes of hex".into());
            }
        }
        Ok(())
    }

    /// Whether this key file was made for `config` (true for old key files
    /// without a binding).
    pub fn binds(&self, master: &MasterKey, config: &[u8]) -> bool {
        match &self.config {
            None => true,
            Some(mac) => {
                let want = config_mac(master, config);
                hex::decode(mac).is_ok_and(|m| constant_time_eq(&m, &want))
            }
        }
    }

    /// Returns the master key, or `None` when the passphrase is wrong.
    /// Call [`check`](Self::check) first: parameters are used as they are.
    pub fn unwrap_key(&self, passphrase: &str) -> Option<MasterKey> {
        if self.check().is_err() {
            return None;
        }
        let salt = hex::decode(&self.salt).ok()?;
        let kek = derive(passphrase, &salt, self.m_cost, self.t_cost, self.p_cost)?;
        let cipher = XChaCha20Poly1305::new(kek.as_ref().into());
        let sealed = hex::decode(&self.data).ok()?;
        let plain = Zeroizing::new(open_with(&cipher, &sealed).ok()?);
        MasterKey::from_bytes(&plain)
    }
}

/// Keyed BLAKE3 of the config file under a key derived from the master key.
fn config_mac(master: &MasterKey, config: &[u8]) -> [u8; 32] {
    let mut material = Zeroizing::new([0u8; 64]);
    material[..32].copy_from_slice(&master.enc);
    material[32..].copy_from_slice(&master.id);
    let key = Zeroizing::new(blake3::derive_key(
        "ripcord 2026 repository config binding",
        material.as_ref(),
    ));
    *blake3::keyed_hash(&key, config).as_bytes()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper_detection() {
        let master = MasterKey::random();
        let keys = Keys::encrypted(&master);
        let sealed = keys.seal(b"hello".to_vec());
        assert_eq!(sealed.len(), 5 + keys.overhead());
        assert_eq!(keys.open(&sealed).unwrap(), b"hello");
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(keys.open(&bad).is_err());
        assert!(keys.open(&sealed[..sealed.len() - 1]).is_err());
    }

    #[test]
    fn key_file_wraps_master_key() {
        let master = MasterKey::random();
        let kf = KeyFile::wrap(&master, "correct horse");
        let back = kf.unwrap_key("correct horse").unwrap();
        assert_eq!(back.enc, master.enc);
        assert!(kf.unwrap_key("wrong").is_none());
    }

    #[test]
    fn key_file_with_huge_kdf_cost_is_damaged_and_never_run() {
        let master = MasterKey::random();
        let mut kf = KeyFile::wrap(&master, "pw");
        kf.t_cost = 1_000_000;
        let start = std::time::Instant::now();
        assert!(kf.check().unwrap_err().contains("t_cost 1000000"));
        assert!(kf.unwrap_key("pw").is_none());
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        let mut kf = KeyFile::wrap(&master, "pw");
        kf.m_cost = u32::MAX;
        assert!(kf.check().unwrap_err().contains("m_cost"));
        let mut kf = KeyFile::wrap(&master, "pw");
        kf.m_cost = MAX_M_COST;
        kf.t_cost = MAX_T_COST;
        assert!(kf.check().unwrap_err().contains("exceeds"));
        assert!(KeyFile::wrap(&master, "pw").check().is_ok());
    }

    #[test]
    fn key_file_binds_the_config() {
        let master = MasterKey::random();
        let kf = KeyFile::wrap_bound(&master, "pw", b"config one");
        assert!(kf.check().is_ok());
        assert!(kf.binds(&master, b"config one"));
        assert!(!kf.binds(&master, b"config two"));
        // Key files from before the binding open any config.
        assert!(KeyFile::wrap(&master, "pw").binds(&master, b"config two"));
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = Keys::plain([1; 32]).blob_id(b"x");
        let b = Keys::plain([2; 32]).blob_id(b"x");
        assert_ne!(a, b);
        assert_ne!(a.0, *blake3::hash(b"x").as_bytes());
    }
}
