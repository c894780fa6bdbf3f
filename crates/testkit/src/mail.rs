//! A mailer that keeps what it was asked to send, for tests to read.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use domain::dsar::mail::Mail;
use domain::Email;
use usecases::ports::{Mailer, Retry, StoreError};

use crate::fault::FaultSwitch;

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
    fault: FaultSwitch,
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
        self.fault.fail_with(retry);
    }

    pub fn heal(&self) {
        self.fault.heal();
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, to: &Email, mail: &Mail) -> Result<(), StoreError> {
        self.fault.check("send_email")?;
        self.sent.lock().unwrap().push(SentMail {
            to: to.expose().to_owned(),
            subject: mail.subject.clone(),
            text: mail.text.clone(),
            html: mail.html.clone(),
        });
        Ok(())
    }
}
