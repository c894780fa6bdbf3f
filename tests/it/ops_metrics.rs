//! The adapters' failure metrics the alarms watch (`KmsFailedAlarm`, `MailFailedAlarm`),
//! raised by real refusals of the emulator: a key that does not exist, a sender that is
//! not a verified identity. The records carry the metric name only.

use harness::stack::Stack;
use shared::adapters::kms::KmsKeyService;
use shared::adapters::mail::SesMailer;
use shared::domain::dsar::mail::Mail;
use shared::domain::Email;
use shared::ports::{IdentifierKind, KeyService, Mailer};

use ::dsar::digest::MetricCapture;

/// R5.3: a KMS call the service refuses emits one `KmsFailed` record, which names
/// neither the identifier being indexed nor the key.
#[tokio::test]
async fn a_refused_kms_call_emits_kms_failed_without_the_identifier() {
    let stack = Stack::isolated().await.expect("provision");
    let keys = KmsKeyService::new(
        aws_sdk_kms::Client::new(&stack.aws),
        "alias/polly-no-such-key".into(),
        "alias/polly-no-such-key".into(),
    );
    let metrics = MetricCapture::start();
    let secret = "kms-failure-subject@example.org";
    assert!(keys
        .blind_index(IdentifierKind::Email, secret)
        .await
        .is_err());
    assert_eq!(metrics.values("KmsFailed"), vec![1.0]);
    for line in metrics.lines() {
        assert!(
            !line.contains(secret) && !line.contains("no-such-key"),
            "{line}"
        );
    }
}

/// R5.3: a mail SES refuses emits one `MailFailed` record, without the recipient.
#[tokio::test]
async fn a_refused_mail_emits_mail_failed_without_the_recipient() {
    let stack = Stack::isolated().await.expect("provision");
    let mailer = SesMailer::new(
        aws_sdk_sesv2::Client::new(&stack.aws),
        "sender@not-verified.invalid".into(),
    );
    let to = "mail-failure-subject@example.org";
    let mail = Mail {
        subject: "Betreff".into(),
        text: "Text".into(),
        html: "<p>Text</p>".into(),
    };
    let metrics = MetricCapture::start();
    assert!(Mailer::send(&mailer, &Email::parse(to).unwrap(), &mail)
        .await
        .is_err());
    assert_eq!(metrics.values("MailFailed"), vec![1.0]);
    for line in metrics.lines() {
        assert!(!line.contains(to), "{line}");
    }
}
