//! Envelope encryption of personal attributes (R5.2) and the blind index type (R5.3).
//!
//! Each data subject has a 256-bit data key from KMS `GenerateDataKey`, bound to the
//! subject id by the encryption context. Only the KMS-wrapped form is stored, as its own
//! item: deleting that item makes every copy of the subject's ciphertext unreadable,
//! backups included (crypto-shredding). Attributes are sealed with AES-256-GCM under the
//! data key; the associated data binds each ciphertext to its subject, item and attribute,
//! so a ciphertext moved elsewhere does not decrypt.

use aes_gcm::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
    Aes256Gcm, Key, Nonce,
};
use zeroize::Zeroizing;

/// Format version of a sealed value, stored as its first byte.
const SEALED_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("data key has the wrong length")]
    KeyLength,
    #[error("encryption failed")]
    Seal,
    #[error("sealed value is malformed or was not made for this place")]
    Open,
}

/// A plaintext data key. Zeroed on drop; never printed.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::KeyLength)?;
        Ok(Self(Zeroizing::new(arr)))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.as_slice()))
    }

    /// Encrypts `plaintext`; `aad` must be given again, byte for byte, to open it.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != SEALED_V1 {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A data key as KMS wrapped it: safe to store, useless without KMS `Decrypt`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WrappedKey(pub Vec<u8>);

/// A keyed hash of an identifier (email or phone), used to find a subject without
/// storing the identifier (R5.3). It is still pseudonymous data: it is not logged.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BlindIndex(String);

impl BlindIndex {
    /// Builds the index value from a MAC (hex, lower case).
    pub fn from_mac(mac: &[u8]) -> Self {
        Self(hex::encode(mac))
    }

    /// Rebuilds a stored index value.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndex(<redacted>)")
    }
}

/// What the blind index is computed over: a purpose label and the normalised identifier,
/// so an email and a phone number can never produce the same index value.
pub fn blind_index_message(kind: &str, normalised: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + kind.len() + normalised.len());
    m.extend_from_slice(b"polly-bidx-v1\0");
    m.extend_from_slice(kind.as_bytes());
    m.push(0);
    m.extend_from_slice(normalised.as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> DataKey {
        DataKey::from_bytes(&[b; 32]).unwrap()
    }

    /// R5.2: a sealed value holds no plaintext and opens back to it with the same key and
    /// associated data.
    #[test]
    fn seal_and_open_round_trip() {
        let k = key(7);
        let sealed = k.seal(b"lead:1:profile", b"Anna").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"Anna"));
        assert_eq!(
            k.open(b"lead:1:profile", &sealed).unwrap().as_slice(),
            b"Anna"
        );
    }

    /// R5.2: equal plaintexts seal to different ciphertexts (a fresh nonce each time).
    #[test]
    fn nonces_differ_so_equal_plaintexts_do_not_look_equal() {
        let k = key(7);
        assert_ne!(k.seal(b"a", b"x").unwrap(), k.seal(b"a", b"x").unwrap());
    }

    /// R5.2: a ciphertext opens only under its own key and its own associated data (another
    /// subject's binding fails), and any tampering or truncation fails.
    #[test]
    fn wrong_key_wrong_place_or_tampering_fail_to_open() {
        let sealed = key(7).seal(b"lead:1:profile", b"Anna").unwrap();
        assert_eq!(
            key(8).open(b"lead:1:profile", &sealed).unwrap_err(),
            CryptoError::Open
        );
        assert_eq!(
            key(7).open(b"lead:2:profile", &sealed).unwrap_err(),
            CryptoError::Open
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            key(7).open(b"lead:1:profile", &tampered).unwrap_err(),
            CryptoError::Open
        );
        assert_eq!(
            key(7).open(b"lead:1:profile", &sealed[..10]).unwrap_err(),
            CryptoError::Open
        );
    }

    /// R5.2: only 256-bit keys are accepted (a 128-bit key is refused).
    #[test]
    fn key_length_is_checked() {
        assert!(DataKey::from_bytes(&[0; 16]).is_err());
    }

    #[test]
    fn index_messages_are_separated_by_kind() {
        assert_ne!(
            blind_index_message("email", "x"),
            blind_index_message("phone", "x")
        );
        assert_ne!(
            blind_index_message("email", "ab"),
            blind_index_message("emaila", "b")
        );
    }
}
