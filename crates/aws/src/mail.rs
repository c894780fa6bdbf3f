//! Emails to data subjects through Amazon SES (v2 API), plain text and HTML.
//!
//! The recipient's address is used for the call and nothing else: it is never logged,
//! and a failure names the operation only.

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use domain::dsar::mail::Mail;
use domain::Email;
use usecases::ports::{Retry, StoreError};

#[derive(Debug, Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: String,
    /// The public base URL: every mail then ends with the links to "no more calls" and
    /// to withdrawing consent ([`Mail::with_privacy_links`]).
    privacy_links: Option<String>,
}

fn content(text: &str) -> Result<Content, StoreError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| StoreError {
            operation: "build_mail",
            retry: Retry::Permanent,
            source: Some(Box::new(e)),
        })
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, from: String) -> Self {
        Self {
            client,
            from,
            privacy_links: None,
        }
    }

    /// Ends every mail sent with the privacy center's links under `base`, if given.
    pub fn with_privacy_links(mut self, base: Option<String>) -> Self {
        self.privacy_links = base;
        self
    }

    pub async fn send(&self, to: &Email, mail: &Mail) -> Result<(), StoreError> {
        let linked;
        let mail = match &self.privacy_links {
            Some(base) => {
                linked = mail.clone().with_privacy_links(base);
                &linked
            }
            None => mail,
        };
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(
                Body::builder()
                    .text(content(&mail.text)?)
                    .html(content(&mail.html)?)
                    .build(),
            )
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(to.expose()).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| {
                // Any SES refusal or outage (`MailFailedAlarm`); the recipient stays out.
                usecases::telemetry::metric("MailFailed", 1.0);
                super::store_failure("ses", "send_email", e)
            })?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl usecases::ports::Mailer for SesMailer {
    async fn send(&self, to: &Email, mail: &Mail) -> Result<(), StoreError> {
        SesMailer::send(self, to, mail).await
    }
}
