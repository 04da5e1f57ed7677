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
}

/// Argon2id cost: 32 MiB and 3 passes, about 0.1 s on a current core.
const M_COST: u32 = 32 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 1;

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
        }
    }

    /// Returns the master key, or `None` when the passphrase is wrong.
    pub fn unwrap_key(&self, passphrase: &str) -> Option<MasterKey> {
        let salt = hex::decode(&self.salt).ok()?;
        let kek = derive(passphrase, &salt, self.m_cost, self.t_cost, self.p_cost)?;
        let cipher = XChaCha20Poly1305::new(kek.as_ref().into());
        let sealed = hex::decode(&self.data).ok()?;
        let plain = Zeroizing::new(open_with(&cipher, &sealed).ok()?);
        MasterKey::from_bytes(&plain)
    }
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
    fn blob_ids_are_keyed() {
        let a = Keys::plain([1; 32]).blob_id(b"x");
        let b = Keys::plain([2; 32]).blob_id(b"x");
        assert_ne!(a, b);
        assert_ne!(a.0, *blake3::hash(b"x").as_bytes());
    }
}
