//! The retention sweep against the emulator, with the clock moved: recordings go at six
//! calendar months (every version), subjects are erased three years after their last
//! contact (key first), a dry run reports exactly what a real run then does.

use crate::common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use common::*;
use harness::simulator::scenario::CallScript;
use harness::simulator::Simulator;
use shared::adapters::calls::{call_pk, CALL_SK};
use shared::adapters::dynamo::{lead_pk, KEY_SK, LEAD_SK};
use shared::adapters::s3::BlobStore;
use shared::domain::{LeadId, RetentionClass};
use shared::sweep::{SweepRequest, Sweeper, BATCH_WRITE_LIMIT};
use shared::Clock;

/// A signed-up subject with one consented, recorded, analysed call.
struct Recorded {
    signup: TestApp,
    lead: LeadId,
    script: CallScript,
    _sim: Simulator,
}

async fn world() -> Recorded {
    let world = World::start().await;
    let (lead, script) = world.recorded_call().await;
    let World { signup, sim, .. } = world;
    Recorded {
        signup,
        lead,
        script,
        _sim: sim,
    }
}

fn sweeper(app: &TestApp) -> Sweeper {
    let config = app.stack.config_for("TelephonyWorkerFunction").unwrap();
    Sweeper::new(
        aws_sdk_dynamodb::Client::new(&app.stack.aws),
        app.stack.table.clone(),
        app.stack.key_table.clone(),
        BlobStore::new(
            harness::s3_client(&app.stack.aws),
            config.recordings_bucket.unwrap(),
            config.data_key_arn,
        ),
    )
}

/// One sweep run at `now`. Its time budget is generous: a run years ahead walks every
/// month's expiry partition of every class (about 1,200 queries to 2037), which on a
/// loaded 2-core machine with the fault matrix running beside it outlasted 60 s, and a
/// run cut off by its budget leaves the rest to the next run (tested on its own in
/// `a_run_cut_off_by_its_deadline_is_finished_by_the_next_run`).
async fn run(app: &TestApp, now: DateTime<Utc>, dry_run: bool) -> shared::sweep::SweepReport {
    let report = sweeper(app)
        .run(SweepRequest { dry_run, now }, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(report.complete, "the run finished within its budget");
    report
}

#[tokio::test]
async fn recordings_go_at_six_calendar_months_with_every_version_and_metadata_stays() {
    let w = world().await;
    let end = DateTime::from_timestamp_millis(w.script.end_ms() as i64).unwrap();
    let due = RetentionClass::Recording.due_at(end).unwrap();
    let prefix = |p: &str| format!("{p}/{}/", w.lead);
    assert!(
        w.signup
            .versions("RecordingsBucket", &prefix("recordings"))
            .await
            >= 1
    );
    assert!(
        w.signup
            .versions("RecordingsBucket", &prefix("transcripts"))
            .await
            >= 1
    );

    let report = run(&w.signup, due - chrono::Duration::days(1), false).await;
    assert_eq!(report.classes["recording"].due, 0, "nothing one day early");
    assert!(
        w.signup
            .versions("RecordingsBucket", &prefix("recordings"))
            .await
            >= 1
    );

    let report = run(&w.signup, due + chrono::Duration::days(1), false).await;
    assert_eq!(report.classes["recording"].deleted, 1);
    assert_eq!(
        w.signup
            .versions("RecordingsBucket", &prefix("recordings"))
            .await,
        0,
        "every version of the audio"
    );
    assert_eq!(
        w.signup
            .versions("RecordingsBucket", &prefix("transcripts"))
            .await,
        0,
        "every version of the transcript"
    );
    let call = w
        .signup
        .item(call_pk(w.script.call_id()), CALL_SK)
        .await
        .expect("call metadata remains");
    assert_eq!(call["recording_state"].as_s().unwrap(), "deleted");
    assert!(call.contains_key("duration_ms") || call.contains_key("end_at"));
    assert!(!call.contains_key("transcript_key"));
    assert!(w
        .signup
        .item(call_pk(w.script.call_id()), "RECORDING")
        .await
        .is_none());

    // Running twice deletes nothing more.
    let again = run(&w.signup, due + chrono::Duration::days(1), false).await;
    assert_eq!(again.classes["recording"].deleted, 0);
}

#[tokio::test]
async fn subjects_are_erased_three_years_after_the_last_contact_key_first_and_a_dry_run_tells_the_same(
) {
    let w = world().await;
    let signed_up = w.signup.clock.now();
    let end = DateTime::from_timestamp_millis(w.script.end_ms() as i64).unwrap();
    assert!(end > signed_up, "the call is the last contact");
    let due = RetentionClass::Lead.due_at(end).unwrap();

    // Three years after the sign-up, but the call moved the date: nothing happens.
    let early = RetentionClass::Lead.due_at(signed_up).unwrap() + chrono::Duration::minutes(1);
    if early < due {
        let r = run(&w.signup, early, true).await;
        assert_eq!(r.classes["lead"].due, 0);
    }

    let at = due + chrono::Duration::days(1);
    let dry = run(&w.signup, at, true).await;
    assert!(
        w.signup.item(lead_pk(&w.lead), KEY_SK).await.is_some(),
        "a dry run deletes nothing"
    );
    let sweeper = sweeper(&w.signup);
    let real = sweeper
        .run(
            SweepRequest {
                dry_run: false,
                now: at,
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(
        dry.classes, real.classes,
        "the dry run reported exactly what the run did"
    );
    assert_eq!(
        real.classes["recording"].deleted, 1,
        "the recording went in the same run"
    );
    assert!(
        real.classes["recording"].objects >= 2,
        "audio and transcript versions"
    );

    assert!(
        w.signup.item(lead_pk(&w.lead), KEY_SK).await.is_none(),
        "the key is gone"
    );
    assert!(w.signup.item(lead_pk(&w.lead), LEAD_SK).await.is_none());
    assert!(
        w.signup
            .item(call_pk(w.script.call_id()), CALL_SK)
            .await
            .is_none(),
        "the call is gone"
    );
    assert_eq!(
        w.signup
            .versions("RecordingsBucket", &format!("recordings/{}/", w.lead))
            .await,
        0
    );
    assert_eq!(
        w.signup
            .versions("RecordingsBucket", &format!("transcripts/{}/", w.lead))
            .await,
        0
    );
    // What stays: the §7a UWG consent proof (its own 5 years), the audit trail, neither
    // with personal data in clear, and the tombstone (lead id, time, TTL) that later
    // events respect. The call-attempt counters go with the subject (issue 12, item 8).
    let mut tombstones = 0;
    for item in w.signup.scan().await {
        let kind = item["kind"].as_s().unwrap().as_str().to_owned();
        assert!(
            matches!(
                kind.as_str(),
                "phone_consent" | "audit" | "erasure_tombstone"
            ),
            "left over: {kind}"
        );
        if kind == "erasure_tombstone" {
            tombstones += 1;
            assert!(item.contains_key("ttl"));
        }
    }
    assert_eq!(tombstones, 1);
    // Within the 25-item limit, always.
    let sizes = sweeper.batch_sizes.lock().unwrap().clone();
    assert!(
        !sizes.is_empty() && sizes.iter().all(|n| *n <= BATCH_WRITE_LIMIT),
        "{sizes:?}"
    );
}

#[tokio::test]
async fn a_run_cut_off_by_its_deadline_is_finished_by_the_next_run() {
    let w = world().await;
    let end = DateTime::from_timestamp_millis(w.script.end_ms() as i64).unwrap();
    let at = RetentionClass::Recording.due_at(end).unwrap() + chrono::Duration::days(1);
    let cut = sweeper(&w.signup)
        .run(
            SweepRequest {
                dry_run: false,
                now: at,
            },
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert!(!cut.complete, "the run says it stopped early");
    assert_eq!(cut.classes["recording"].deleted, 0);
    assert!(
        w.signup
            .versions("RecordingsBucket", &format!("recordings/{}/", w.lead))
            .await
            >= 1
    );

    let rest = run(&w.signup, at, false).await;
    assert!(rest.complete);
    assert_eq!(rest.classes["recording"].deleted, 1);
    assert_eq!(
        w.signup
            .versions("RecordingsBucket", &format!("recordings/{}/", w.lead))
            .await,
        0
    );
    assert_eq!(
        w.signup
            .versions("RecordingsBucket", &format!("transcripts/{}/", w.lead))
            .await,
        0
    );
}

/// R3.4, R3 (contract class): a contract ending in the last hour of the UTC year ends in
/// the next year in Berlin, and the subject is held until that year's end plus 6 years.
#[tokio::test]
async fn a_contract_holds_the_subject_until_its_statutory_period_ends() {
    use shared::contracts::{record_contract, Contract};
    use shared::domain::retention::ContractRecords;
    let w = world().await;
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let ddb = aws_sdk_dynamodb::Client::new(&w.signup.stack.aws);
    let contract = Contract {
        start: t("2026-12-01T00:00:00Z"),
        // 00:30 on 1 January 2028 in Berlin: the contract's year is 2028 (R3, §257(5)
        // HGB counts the policy's calendar year, not UTC's).
        end: t("2027-12-31T23:30:00Z"),
        records: ContractRecords::BusinessLetters,
    };
    record_contract(
        &ddb,
        &w.signup.stack.table,
        &w.lead,
        contract,
        w.signup.clock.now(),
    )
    .await
    .unwrap();

    // Recordings still go on time.
    let end = DateTime::from_timestamp_millis(w.script.end_ms() as i64).unwrap();
    let r = run(
        &w.signup,
        RetentionClass::Recording.due_at(end).unwrap() + chrono::Duration::days(1),
        false,
    )
    .await;
    assert_eq!(r.classes["recording"].deleted, 1);

    // Three years after the last contact: held and restricted, not erased.
    let r = run(
        &w.signup,
        RetentionClass::Lead.due_at(end).unwrap() + chrono::Duration::days(1),
        false,
    )
    .await;
    assert_eq!((r.classes["lead"].held, r.classes["lead"].deleted), (1, 0));
    let lead = w
        .signup
        .item(lead_pk(&w.lead), LEAD_SK)
        .await
        .expect("kept under hold");
    assert_eq!(lead["restricted"], AttributeValue::Bool(true));
    assert_eq!(
        lead["expires_at"].as_s().unwrap(),
        "2034-12-31T23:00:00.000Z",
        "until the end of 31 Dec 2034 in Berlin"
    );
    assert!(w.signup.item(lead_pk(&w.lead), KEY_SK).await.is_some());

    // The last second of the hold changes nothing (before the fix, a UTC year end let
    // the contract and the subject go a year early)…
    let r = run(&w.signup, t("2034-12-31T22:59:59Z"), false).await;
    assert_eq!(
        r.classes["contract6"].deleted + r.classes["lead"].deleted,
        0
    );
    // …the day after, the contract goes and with it the subject.
    let r = run(&w.signup, t("2034-12-31T23:00:01Z"), false).await;
    assert_eq!(r.classes["contract6"].deleted, 1);
    assert_eq!(r.classes["lead"].held, 0);
    assert!(r.classes["lead"].deleted > 0);
    assert!(w.signup.item(lead_pk(&w.lead), KEY_SK).await.is_none());
    assert!(w.signup.item(lead_pk(&w.lead), LEAD_SK).await.is_none());
}

#[tokio::test]
async fn longer_statutory_periods_hold_until_2035_and_2037() {
    use shared::contracts::{record_contract, Contract};
    use shared::domain::retention::ContractRecords;
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    for (records, class, hold_end) in [
        (
            ContractRecords::BookingVouchers,
            "contract8",
            // The end of 2035 in Berlin (R3: the policy's calendar year).
            "2035-12-31T23:00:00.000Z",
        ),
        (
            ContractRecords::Books,
            "contract10",
            "2037-12-31T23:00:00.000Z",
        ),
    ] {
        let w = world().await;
        let ddb = aws_sdk_dynamodb::Client::new(&w.signup.stack.aws);
        let contract = Contract {
            start: t("2026-12-01T00:00:00Z"),
            end: t("2027-03-15T00:00:00Z"),
            records,
        };
        record_contract(
            &ddb,
            &w.signup.stack.table,
            &w.lead,
            contract,
            w.signup.clock.now(),
        )
        .await
        .unwrap();
        let end = DateTime::from_timestamp_millis(w.script.end_ms() as i64).unwrap();
        run(
            &w.signup,
            RetentionClass::Lead.due_at(end).unwrap() + chrono::Duration::days(1),
            false,
        )
        .await;
        let lead = w
            .signup
            .item(lead_pk(&w.lead), LEAD_SK)
            .await
            .expect("held");
        assert_eq!(lead["expires_at"].as_s().unwrap(), hold_end, "{class}");
        let before = t(hold_end) - chrono::Duration::hours(1);
        let r = run(&w.signup, before, false).await;
        assert_eq!(r.classes[class].deleted, 0, "{class}");
        let r = run(&w.signup, t(hold_end) + chrono::Duration::seconds(1), false).await;
        assert_eq!(r.classes[class].deleted, 1, "{class}");
        assert!(
            w.signup.item(lead_pk(&w.lead), KEY_SK).await.is_none(),
            "{class}: erased after the hold"
        );
    }
}

#[tokio::test]
async fn every_item_with_a_finite_retention_carries_the_ttl_backstop() {
    use shared::contracts::{record_contract, Contract};
    use shared::domain::retention::ContractRecords;
    let w = world().await;
    let now = w.signup.clock.now();
    let contract = Contract {
        start: now,
        end: now + chrono::Duration::days(30),
        records: ContractRecords::Books,
    };
    record_contract(
        &aws_sdk_dynamodb::Client::new(&w.signup.stack.aws),
        &w.signup.stack.table,
        &w.lead,
        contract,
        now,
    )
    .await
    .unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for item in w.signup.scan().await {
        let kind = item["kind"].as_s().unwrap().clone();
        kinds.insert(kind.clone());
        if kind == "audit" {
            continue; // the audit trail has no finite retention in R3
        }
        let ttl = ttl(&item);
        assert!(ttl > now.timestamp(), "{kind}: ttl in the future");
    }
    for kind in [
        "lead",
        "data_key",
        "claim",
        "phone_consent",
        "call",
        "recording",
        "contract",
    ] {
        assert!(
            kinds.contains(kind),
            "the flow stored a {kind} item: {kinds:?}"
        );
    }
}

/// R3.1, R3.2: as deployed (the template's own environment), a real sweep that names `now`
/// is refused and deletes nothing, although at that time the recording and the whole
/// subject are due; a dry run with the same clock still reports them. The local stack's
/// setting lets the same payload delete, so it was the refusal that kept the data.
#[tokio::test]
async fn a_real_sweep_with_a_moved_clock_is_refused_as_deployed_and_deletes_nothing() {
    let w = world().await;
    let end = DateTime::from_timestamp_millis(w.script.end_ms() as i64).unwrap();
    let at = RetentionClass::Lead.due_at(end).unwrap() + chrono::Duration::days(1);
    let moved = at.to_rfc3339();
    let budget = Duration::from_secs(60);
    let deployed = w
        .signup
        .stack
        .template_config_for("RetentionSweepFunction")
        .unwrap();
    assert!(!deployed.sweep_allow_clock_override);
    let app = retention_sweep::App::from_aws(&deployed, &w.signup.stack.aws).unwrap();
    let items = w.signup.by_key().await;
    let objects = w.signup.versions("RecordingsBucket", "").await;
    assert!(objects >= 2, "audio and transcript stored");

    for payload in [
        serde_json::json!({"dry_run": false, "now": moved}),
        serde_json::json!({"now": moved}),
    ] {
        let err = app
            .handle(&payload, &w.signup.clock, budget)
            .await
            .expect_err("refused");
        assert!(
            matches!(err, retention_sweep::SweepError::ClockOverrideRefused),
            "{payload}: {err}"
        );
        assert!(err.to_string().contains("dry_run"), "the error says why");
    }
    assert!(
        w.signup.by_key().await == items,
        "no item changed, none deleted"
    );
    assert_eq!(
        w.signup.versions("RecordingsBucket", "").await,
        objects,
        "no object version"
    );

    let dry = app
        .handle(
            &serde_json::json!({"dry_run": true, "now": moved}),
            &w.signup.clock,
            budget,
        )
        .await
        .expect("a dry run may move the clock");
    assert_eq!(dry.classes["recording"].due, 1);
    assert_eq!(dry.classes["lead"].due, 1);
    assert!(w.signup.item(lead_pk(&w.lead), KEY_SK).await.is_some());
    assert_eq!(w.signup.versions("RecordingsBucket", "").await, objects);

    let local = w.signup.stack.config_for("RetentionSweepFunction").unwrap();
    let local = retention_sweep::App::from_aws(&local, &w.signup.stack.aws).unwrap();
    let real = local
        .handle(
            &serde_json::json!({"dry_run": false, "now": moved}),
            &w.signup.clock,
            budget,
        )
        .await
        .unwrap();
    assert_eq!(real.classes["recording"].deleted, 1);
    assert!(w.signup.item(lead_pk(&w.lead), KEY_SK).await.is_none());
}

/// R3.1: no function in the template, nor the template's globals, sets the variable that
/// allows a real sweep with a moved clock; the sweep function is there and its
/// environment is read.
#[test]
fn the_template_never_lets_a_deployed_sweep_move_its_clock() {
    let template = harness::template::Template::load().unwrap();
    let functions = template.functions();
    assert!(
        functions.iter().any(|f| f == "RetentionSweepFunction"),
        "{functions:?}"
    );
    assert!(
        template
            .function_variable_names("RetentionSweepFunction")
            .contains("TABLE_NAME"),
        "the sweep's environment is read"
    );
    for function in &functions {
        assert!(
            !template
                .function_variable_names(function)
                .contains(shared::config::SWEEP_ALLOW_CLOCK_OVERRIDE),
            "{function} sets {}",
            shared::config::SWEEP_ALLOW_CLOCK_OVERRIDE
        );
    }
}

/// R3 (lead class: R4.5 mechanics), R4.5 (Art. 19): a subject the sweep function erases
/// loses its calls at the provider too, through the outbox: a provider outage does not
/// block the erasure here (key first), the call waits in the outbox, and the hourly
/// drain deletes it once due.
#[tokio::test]
async fn the_sweep_deletes_an_erased_subjects_calls_at_the_provider_through_the_outbox() {
    use harness::simulator::Operation;
    let w = world().await;
    let sim = &w._sim;
    let end = DateTime::from_timestamp_millis(w.script.end_ms() as i64).unwrap();
    let at = RetentionClass::Lead.due_at(end).unwrap() + chrono::Duration::days(1);
    let mut config = w.signup.stack.config_for("RetentionSweepFunction").unwrap();
    config.retell_api_base_url = sim.base_url().to_owned();
    let app = |now: DateTime<Utc>| {
        retention_sweep::App::from_aws_at(
            &config,
            &w.signup.stack.aws,
            std::sync::Arc::new(shared::FixedClock::at(now)),
        )
        .unwrap()
    };
    sim.fail_next(Operation::DeleteCall, 1, 503);
    let before = sim.attempts(Operation::DeleteCall);

    let report = app(at)
        .handle_event(
            &serde_json::json!({"dry_run": false, "now": at.to_rfc3339()}),
            &shared::FixedClock::at(at),
            Duration::from_secs(60),
        )
        .await
        .unwrap();

    assert_eq!(report["classes"]["lead"]["failed"], 0, "{report}");
    assert!(
        w.signup.item(lead_pk(&w.lead), KEY_SK).await.is_none(),
        "erased, key first"
    );
    assert_eq!(sim.attempts(Operation::DeleteCall), before + 1);
    let call_id = w.script.call_id().to_owned();
    let outbox = w.signup.items_of_kind("provider_deletion").await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0]["call_id"].as_s().unwrap(), &call_id);

    let later = at + chrono::Duration::hours(2);
    let drained = app(later)
        .handle_event(
            &serde_json::json!({"outbox": true}),
            &shared::FixedClock::at(later),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(drained["outbox"]["deleted"], 1, "{drained}");
    assert_eq!(sim.attempts(Operation::DeleteCall), before + 2);
    assert!(sim.deleted_calls().contains(&call_id));
    assert!(w.signup.items_of_kind("provider_deletion").await.is_empty());
}

/// R3.3, R4.5 (issue 12, item 1): a call event naming a lead that is past its retention
/// but not yet swept links the call to that lead (call item and pointer in the lead's
/// partition), metadata only, so the sweep's erasure of the lead takes the call along;
/// the call's end does not move the lead's retention. Before: the call was stored
/// unlinked and without a pointer, and the sweep left it.
#[tokio::test]
async fn a_call_of_a_lead_past_its_retention_goes_with_the_lead_in_the_sweep() {
    use secrecy::SecretString;
    use testkit::retell::{call_object, event, Consent};

    let world = World::start().await;
    let lead = world.signup.subject().await;
    let due = RetentionClass::Lead
        .due_at(world.signup.clock.now())
        .unwrap();
    world.signup.clock.set(due + chrono::Duration::minutes(5));

    // The call ended just now, after the lead was due.
    let mut call = call_object("call_due_lead", &lead, Consent::ToolYes, true);
    call["start_timestamp"] = serde_json::json!(world.now_ms() - 60_000);
    call["end_timestamp"] = serde_json::json!(world.now_ms());
    let body = event("call_analyzed", &call);
    let sig = shared::retell::signature::sign(
        &body,
        &SecretString::from(API_KEY.to_owned()),
        world.now_ms(),
    );
    let req = harness::events::ApiRequest::post_json("/v1/telephony/retell", &body)
        .header("x-retell-signature", &sig);
    assert_eq!(
        telephony::handle(&world.webhook, req.build())
            .await
            .status(),
        204
    );
    let item = world
        .signup
        .item(call_pk("call_due_lead"), CALL_SK)
        .await
        .expect("the call is stored");
    assert_eq!(
        item.get("lead_id").and_then(|v| v.as_s().ok()),
        Some(&lead.to_string()),
        "linked to the due lead"
    );
    assert!(
        !item.keys().any(|k| k.starts_with("sealed_")),
        "metadata only"
    );
    assert!(!item.contains_key("transcript_key"));
    assert!(
        world
            .signup
            .item(lead_pk(&lead), &call_pk("call_due_lead"))
            .await
            .is_some(),
        "the lead's partition points at the call"
    );

    // The worker sees the call's end: it does not bring the due lead back.
    let expires = world.signup.lead_item(&lead).await["expires_at"].clone();
    assert_eq!(world.pump_call("call_due_lead", 1).await, 0);
    assert_eq!(
        world.signup.lead_item(&lead).await["expires_at"],
        expires,
        "the lead is still due"
    );

    run(&world.signup, world.signup.clock.now(), false).await;
    assert!(world.signup.item(lead_pk(&lead), LEAD_SK).await.is_none());
    assert!(
        world
            .signup
            .item(call_pk("call_due_lead"), CALL_SK)
            .await
            .is_none(),
        "the sweep took the call along"
    );
    world.shutdown().await.unwrap();
}
