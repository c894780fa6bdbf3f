//! The key service (KMS) in memory: data keys wrapped under a master key and bound to
//! their subject or request (unwrapping under another id fails, as KMS's encryption
//! context does), blind indexes as HMAC-SHA256 under a fixed key.

use aes_gcm::aead::{KeyInit, OsRng};
use aes_gcm::Aes256Gcm;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use domain::crypto::{blind_index_message, BlindIndex, DataKey, WrappedKey};
use domain::{LeadId, RequestId};
use usecases::ports::{IdentifierKind, KeyError, KeyService, Retry};

use crate::fault::FaultSwitch;

pub struct FakeKeyService {
    master: DataKey,
    mac_key: [u8; 32],
    fault: FaultSwitch,
}

impl Default for FakeKeyService {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeKeyService {
    pub fn new() -> Self {
        let master = Aes256Gcm::generate_key(OsRng);
        Self {
            master: DataKey::from_bytes(master.as_slice()).expect("32 bytes"),
            mac_key: [7; 32],
            fault: FaultSwitch::default(),
        }
    }

    /// Every call fails with `retry` until [`Self::heal`].
    pub fn fail_with(&self, retry: Retry) {
        self.fault.fail_with(retry);
    }

    pub fn heal(&self) {
        self.fault.heal();
    }

    fn check(&self, operation: &'static str) -> Result<(), KeyError> {
        match self.fault.current() {
            Some(retry) => Err(KeyError {
                operation,
                retry,
                source: None,
            }),
            None => Ok(()),
        }
    }

    fn generate(&self, context: String) -> Result<(DataKey, WrappedKey), KeyError> {
        self.check("generate_data_key")?;
        let bytes = Aes256Gcm::generate_key(OsRng);
        let wrapped = self
            .master
            .seal(context.as_bytes(), bytes.as_slice())
            .map_err(|_| permanent("generate_data_key"))?;
        let key =
            DataKey::from_bytes(bytes.as_slice()).map_err(|_| permanent("generate_data_key"))?;
        Ok((key, WrappedKey(wrapped)))
    }

    fn unwrap(&self, context: String, wrapped: &WrappedKey) -> Result<DataKey, KeyError> {
        self.check("decrypt")?;
        let plain = self
            .master
            .open(context.as_bytes(), &wrapped.0)
            .map_err(|_| permanent("decrypt"))?;
        DataKey::from_bytes(&plain).map_err(|_| permanent("decrypt"))
    }
}

fn permanent(operation: &'static str) -> KeyError {
    KeyError {
        operation,
        retry: Retry::Permanent,
        source: None,
    }
}

#[async_trait]
impl KeyService for FakeKeyService {
    async fn generate_data_key(&self, subject: &LeadId) -> Result<(DataKey, WrappedKey), KeyError> {
        self.generate(format!("subject={subject}"))
    }

    async fn unwrap_data_key(
        &self,
        subject: &LeadId,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        self.unwrap(format!("subject={subject}"), wrapped)
    }

    async fn generate_request_key(
        &self,
        request: &RequestId,
    ) -> Result<(DataKey, WrappedKey), KeyError> {
        self.generate(format!("dsar_request={request}"))
    }

    async fn unwrap_request_key(
        &self,
        request: &RequestId,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        self.unwrap(format!("dsar_request={request}"), wrapped)
    }

    async fn blind_index(
        &self,
        kind: IdentifierKind,
        normalised: &str,
    ) -> Result<BlindIndex, KeyError> {
        self.check("generate_mac")?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key).expect("any key length");
        mac.update(&blind_index_message(kind.code(), normalised));
        Ok(BlindIndex::from_mac(&mac.finalize().into_bytes()))
    }
}
