//! The daily digest function (`dsar-digest`) against the emulator: the requests as
//! stored, at a moved clock, mailed through SES to the privacy team's address only, with
//! request ids, types and due dates and nothing of the requesters.

use crate::common;

use std::sync::Arc;

use ::dsar::digest::{digest_from_aws, handle, MetricCapture};
use chrono::Duration;
use common::dsar::*;
use common::*;

/// R4.3, R4.10: 35 days after receipt an unfinished request is in the digest as overdue
/// and stuck (in progress since its verification), a completed one is absent; the mail
/// goes to the configured team address and nobody else, names ids, types and due dates
/// and neither requester's address; `DsarRequestsOverdue` carries the count.
#[tokio::test]
async fn the_digest_mails_the_team_the_overdue_and_stuck_requests_and_nothing_of_the_requesters() {
    let d = World::on_mail_emulator().await;
    let stack = &d.signup.stack;
    let team = unique_email();
    let mut config = stack.config_for("DsarDigestFunction").unwrap();
    assert_eq!(
        config.privacy_team_email, "datenschutz@pollyki.de",
        "the template's default"
    );
    config.privacy_team_email = team.clone();
    let job = digest_from_aws(&config, &stack.aws, Arc::new(d.signup.clock.clone())).unwrap();

    let (first, second) = (unique_email(), unique_email());
    let (open, _) = d.verified("rectification", &first).await;
    let (done, _) = d.verified("access", &second).await;
    assert_eq!(d.pump(&done, 1).await, 0);
    d.signup.clock.advance(Duration::days(35));

    let metrics = MetricCapture::start();
    let counts = handle(&job).await.unwrap();

    assert_eq!(counts["overdue"], 1, "{counts}");
    assert_eq!(counts["stuck"], 1, "{counts}");
    assert_eq!(counts["due_in_3"], 0, "{counts}");
    assert_eq!(metrics.values("DsarRequestsOverdue"), vec![1.0]);
    assert_eq!(metrics.values("DsarDigestSent"), vec![1.0]);
    let mails = stack.sent_mail(&team).await.unwrap();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.source, config.mail_from.clone().unwrap());
    assert!(
        mail.subject.contains("1 overdue") && mail.subject.contains("1 stuck"),
        "{}",
        mail.subject
    );
    assert!(
        mail.body.contains(&open) && mail.body.contains("rectification"),
        "{}",
        mail.body
    );
    assert!(!mail.body.contains(&done), "a completed request is absent");
    for requester in [&first, &second] {
        assert!(!mail.body.contains(requester.as_str()));
        assert!(!mail.subject.contains(requester.as_str()));
    }
    let raw = raw_mails_naming(&d, &open).await;
    let to_team: Vec<_> = raw
        .iter()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains("digest")))
        .collect();
    assert_eq!(to_team.len(), 1, "{raw:#?}");
    assert_only_to(to_team[0], &team);
}

/// A day with nothing to report still mails the team ("all clear"), so a missing mail
/// means the job did not run.
#[tokio::test]
async fn a_quiet_day_mails_an_all_clear() {
    let d = World::on_mail_emulator().await;
    let stack = &d.signup.stack;
    let team = unique_email();
    let mut config = stack.config_for("DsarDigestFunction").unwrap();
    config.privacy_team_email = team.clone();
    let job = digest_from_aws(&config, &stack.aws, Arc::new(d.signup.clock.clone())).unwrap();
    let counts = handle(&job).await.unwrap();
    assert_eq!(counts["overdue"], 0);
    let mails = stack.sent_mail(&team).await.unwrap();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].subject.ends_with("all clear"),
        "{}",
        mails[0].subject
    );
}
