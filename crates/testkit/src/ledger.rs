//! The consent ledger's store and signing key in memory (R7.6): the store keeps the
//! conditional append of the DynamoDB one (a sequence number is taken once), the signer
//! is a real ECDSA P-256 key.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::NaiveDate;
use domain::ledger::{LedgerEntry, SignedHead};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use usecases::ledger::{HeadSigner, LedgerStore};
use usecases::ports::{KeyError, Retry, StoreError};

use crate::fault::FaultSwitch;

#[derive(Clone, Default)]
pub struct MemoryLedgerStore {
    entries: Arc<Mutex<BTreeMap<u64, LedgerEntry>>>,
    heads: Arc<Mutex<BTreeMap<NaiveDate, SignedHead>>>,
    pub fault: FaultSwitch,
}

impl MemoryLedgerStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry, in order (for assertions and tampering).
    pub fn all(&self) -> Vec<LedgerEntry> {
        self.entries.lock().unwrap().values().cloned().collect()
    }

    /// Replaces an entry as an insider with write access would.
    pub fn overwrite(&self, entry: LedgerEntry) {
        self.entries.lock().unwrap().insert(entry.seq, entry);
    }
}

#[async_trait]
impl LedgerStore for MemoryLedgerStore {
    async fn last(&self) -> Result<Option<LedgerEntry>, StoreError> {
        self.fault.check("ledger_last")?;
        Ok(self.entries.lock().unwrap().values().next_back().cloned())
    }

    async fn put_next(&self, entry: &LedgerEntry) -> Result<bool, StoreError> {
        self.fault.check("ledger_put")?;
        let mut entries = self.entries.lock().unwrap();
        if entries.contains_key(&entry.seq) {
            return Ok(false);
        }
        entries.insert(entry.seq, entry.clone());
        Ok(true)
    }

    async fn entries(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        Ok(self.all())
    }

    async fn put_head(&self, head: &SignedHead) -> Result<bool, StoreError> {
        let mut heads = self.heads.lock().unwrap();
        if heads.contains_key(&head.date) {
            return Ok(false);
        }
        heads.insert(head.date, head.clone());
        Ok(true)
    }

    async fn head(&self, date: NaiveDate) -> Result<Option<SignedHead>, StoreError> {
        Ok(self.heads.lock().unwrap().get(&date).cloned())
    }

    async fn heads(&self) -> Result<Vec<SignedHead>, StoreError> {
        Ok(self.heads.lock().unwrap().values().cloned().collect())
    }
}

/// An ECDSA P-256 signing key, like the KMS `ECC_NIST_P256` key.
pub struct MemorySigner {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Default for MemorySigner {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySigner {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("generate a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .expect("read the P-256 key");
        Self { pair, rng }
    }
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo, before the uncompressed point.
const SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[async_trait]
impl HeadSigner for MemorySigner {
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyError {
                operation: "sign",
                retry: Retry::Permanent,
                source: None,
            })
    }

    async fn public_key(&self) -> Result<Vec<u8>, KeyError> {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.pair.public_key().as_ref());
        Ok(der)
    }

    fn key_id(&self) -> &str {
        "memory-ledger-key"
    }
}
