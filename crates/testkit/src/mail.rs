//! A mailer that keeps what it was asked to send, for tests to read.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use domain::dsar::mail::Mail;
use domain::Email;
use usecases::ports::{Mailer, Retry, StoreError};

/// One mail as sent.
#[derive(Clone)]
pub struct SentMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Clone, Default)]
pub struct MemoryMailer {
    sent: Arc<Mutex<Vec<SentMail>>>,
    fail: Arc<Mutex<Option<Retry>>>,
}

impl MemoryMailer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sent(&self) -> Vec<SentMail> {
        self.sent.lock().unwrap().clone()
    }

    /// The mails sent to `to`.
    pub fn sent_to(&self, to: &str) -> Vec<SentMail> {
        self.sent().into_iter().filter(|m| m.to == to).collect()
    }

    pub fn fail_with(&self, retry: Retry) {
        *self.fail.lock().unwrap() = Some(retry);
    }

    pub fn heal(&self) {
        *self.fail.lock().unwrap() = None;
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, to: &Email, mail: &Mail) -> Result<(), StoreError> {
        if let Some(retry) = *self.fail.lock().unwrap() {
            return Err(StoreError {
                operation: "send_email",
                retry,
                source: None,
            });
        }
        self.sent.lock().unwrap().push(SentMail {
            to: to.expose().to_owned(),
            subject: mail.subject.clone(),
            text: mail.text.clone(),
            html: mail.html.clone(),
        });
        Ok(())
    }
}
