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

/// R3, R3.2: a recording is not due a day before six calendar months after the call's
/// end and gone a day after: every version of the audio and of the transcript and the
/// recording item; the call's metadata stays, marked deleted; a second run deletes
/// nothing more.
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
    for kept in ["start_at", "end_at", "duration_ms"] {
        assert!(call.contains_key(kept), "call metadata {kept} stays");
    }
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

/// R3, R3.1, R3.2, R4.5 (mechanics of the lead class): a call 40 days after the sign-up
/// moves the subject's retention: three years after the sign-up nothing of it is due;
/// three years after the call a dry run reports exactly the counts the real run then
/// has, and the real run erases the subject (key, profile, call, every recording and
/// transcript version, the identifier claims) leaving only the consent proof, the audit
/// trail and one tombstone, in batches of at most 25.
#[tokio::test]
async fn subjects_are_erased_three_years_after_the_last_contact_key_first_and_a_dry_run_tells_the_same(
) {
    // The call comes 40 days after the sign-up, so the two dates are far apart.
    let world = World::start().await;
    let lead = world.signup.subject().await;
    let signed_up = world.signup.clock.now();
    world.signup.clock.advance(chrono::Duration::days(40));
    world
        .sim
        .advance_clock(std::time::Duration::from_secs(40 * 86_400));
    let script = world.script(harness::simulator::scenario::Scenario::ConsentYes, &lead);
    for event in ["call_ended", "call_analyzed"] {
        world.deliver(&script, event).await;
    }
    assert_eq!(world.pump_call(script.call_id(), 1).await, 0);
    let World { signup, sim, .. } = world;
    let w = Recorded {
        signup,
        lead,
        script,
        _sim: sim,
    };
    let end = DateTime::from_timestamp_millis(w.script.end_ms() as i64).unwrap();
    assert!(
        end > signed_up + chrono::Duration::days(39),
        "the call is the last contact"
    );
    let due = RetentionClass::Lead.due_at(end).unwrap();

    // Three years (and a day) after the sign-up, but the call moved the date: nothing
    // of the subject is due; the recording is.
    let early = RetentionClass::Lead.due_at(signed_up).unwrap() + chrono::Duration::days(1);
    assert!(early < due);
    let r = run(&w.signup, early, true).await;
    assert_eq!(r.classes["lead"].due, 0, "the call moved the last contact");
    assert_eq!(r.classes["recording"].due, 1);

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
                // The consent ledger (R7.6) is kept whole: the §7a proof outlives erasure.
                "phone_consent"
                    | "audit"
                    | "erasure_tombstone"
                    | "ledger_entry"
                    | "ledger_head"
                    | "sweep_cursor"
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

/// R3.2: a run whose budget is spent before it starts deletes nothing and says it is
/// incomplete; the next run deletes the due recording, every version.
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

/// R3, R3.4: under a live contract the recording still goes at six months (every
/// version); three years after the last contact the subject is restricted and held, key
/// and profile kept, not erased; a contract ending in the last hour of the UTC year ends
/// in the next year in Berlin, so the hold lasts until the end of 2034 there (6 years),
/// and the second after, the contract and the subject go.
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
    for prefix in ["recordings", "transcripts"] {
        assert_eq!(
            w.signup
                .versions("RecordingsBucket", &format!("{prefix}/{}/", w.lead))
                .await,
            0,
            "{prefix}: gone at six months despite the contract"
        );
    }

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

/// R3, R3.4: a contract of booking vouchers holds its subject until the end of 2035 and
/// one of books until the end of 2037 (contract end 2027 + 8 / 10 years, Berlin time);
/// an hour before nothing goes, a second after the contract and the subject do.
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

/// R3.3: every item a subject with a recorded call and a contract leaves (lead, key,
/// claim, consent proof, call, recording, contract) carries a DynamoDB TTL in the
/// future; only the audit trail has none.
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
        if kind == "ledger_entry" || kind == "ledger_head" {
            // The consent ledger is kept whole (R7.6): a TTL would cut entries out of its
            // hash chain; see the README's known limits.
            continue;
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

/// R3.1: as deployed (the template's own environment), a real sweep that names `now`
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

/// R2.9, R3 (lead class: R4.5 mechanics), R4.5: a subject the sweep function erases
/// loses its calls at the provider too (Art. 19), through the outbox: a provider outage
/// does not block the erasure here (key first), the call waits in the outbox, and the
/// hourly drain (`{"outbox": true}`) retries and deletes it once due.
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

/// R3, R3.2 (issue 12, item 1): a call event naming a lead that is past its retention
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

/// The sweep's DynamoDB wire, bent where the emulator cannot: moto applies every item
/// of a BatchWriteItem and never answers `UnprocessedItems`, as DynamoDB does under
/// load. This interceptor holds items back the way DynamoDB would: it takes them out of
/// the request before it is signed (so the emulator does not apply them) and puts them
/// into the answer's `UnprocessedItems`. It can also slow each batch down, so that a
/// run's time budget runs out between batches.
mod wire {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aws_sdk_dynamodb::config::interceptors::{
        BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
    };
    use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
    use aws_sdk_dynamodb::error::BoxError;
    use serde_json::{json, Map, Value};

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Mode {
        /// Every batch as sent.
        Off,
        /// The next `calls` batches keep every second item back.
        HoldBackHalf { calls: usize },
        /// Every batch keeps all its items back, for good, but the key table's
        /// (`<stack>-keys`) go through: the keys are shredded, everything after fails.
        HoldBackAllButKeys,
        /// Each batch waits this long before it is sent.
        Slow(Duration),
    }

    #[derive(Debug)]
    struct State {
        mode: Mode,
        /// The items held back from the batch in flight, for its answer.
        held: Option<Map<String, Value>>,
        held_back: usize,
        /// The number of items of every BatchWriteItem the sweep sent.
        sizes: Vec<usize>,
        /// Every DynamoDB operation sent, by name.
        operations: Vec<String>,
    }

    #[derive(Clone, Debug)]
    pub struct Wire(Arc<Mutex<State>>);

    impl Wire {
        pub fn new(mode: Mode) -> Self {
            Self(Arc::new(Mutex::new(State {
                mode,
                held: None,
                held_back: 0,
                sizes: Vec::new(),
                operations: Vec::new(),
            })))
        }

        pub fn set(&self, mode: Mode) {
            self.0.lock().unwrap().mode = mode;
        }

        /// Items held back so far, and the size of every batch sent.
        pub fn stats(&self) -> (usize, Vec<usize>) {
            let s = self.0.lock().unwrap();
            (s.held_back, s.sizes.clone())
        }

        /// Every DynamoDB operation sent through the wire, by name.
        pub fn operations(&self) -> Vec<String> {
            self.0.lock().unwrap().operations.clone()
        }

        /// A DynamoDB client on `aws` with this wire.
        pub fn client(&self, aws: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
            aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(aws)
                    .interceptor(self.clone())
                    .build(),
            )
        }
    }

    impl Intercept for Wire {
        fn name(&self) -> &'static str {
            "retention-test-wire"
        }

        fn modify_before_signing(
            &self,
            ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
            _rc: &RuntimeComponents,
            _cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let req = ctx.request_mut();
            let target = req
                .headers()
                .get("x-amz-target")
                .unwrap_or_default()
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            self.0.lock().unwrap().operations.push(target.clone());
            if target != "BatchWriteItem" {
                return Ok(());
            }
            let mut body: Value = serde_json::from_slice(req.body().bytes().ok_or("no body")?)?;
            let mut s = self.0.lock().unwrap();
            let tables = body["RequestItems"]
                .as_object_mut()
                .ok_or("no RequestItems")?;
            s.sizes
                .extend(tables.values().map(|r| r.as_array().map_or(0, Vec::len)));
            let hold: fn(usize) -> bool = match s.mode {
                Mode::Off | Mode::HoldBackHalf { calls: 0 } => return Ok(()),
                Mode::Slow(d) => {
                    std::thread::sleep(d);
                    return Ok(());
                }
                Mode::HoldBackHalf { calls } => {
                    s.mode = Mode::HoldBackHalf { calls: calls - 1 };
                    |i| i % 2 == 1
                }
                Mode::HoldBackAllButKeys => |_| true,
            };
            let spare_keys = s.mode == Mode::HoldBackAllButKeys;
            let mut held = Map::new();
            let mut kept_any = false;
            for (table, requests) in tables.iter_mut() {
                if spare_keys && table.ends_with("-keys") {
                    kept_any = true;
                    continue;
                }
                let all = requests.as_array_mut().ok_or("not a list")?;
                let (back, kept): (Vec<_>, Vec<_>) = std::mem::take(all)
                    .into_iter()
                    .enumerate()
                    .partition(|(i, _)| hold(*i));
                s.held_back += back.len();
                kept_any |= !kept.is_empty();
                *all = kept.into_iter().map(|(_, r)| r).collect();
                held.insert(
                    table.clone(),
                    Value::Array(back.into_iter().map(|(_, r)| r).collect()),
                );
            }
            s.held = Some(held);
            let body = if kept_any {
                body.to_string()
            } else {
                // Nothing left to write: ask something harmless instead, and answer the
                // batch with all of it unprocessed.
                req.headers_mut()
                    .insert("x-amz-target", "DynamoDB_20120810.ListTables");
                json!({}).to_string()
            };
            req.headers_mut()
                .insert("content-length", body.len().to_string());
            *req.body_mut() = body.into();
            Ok(())
        }

        fn modify_before_deserialization(
            &self,
            ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
            _rc: &RuntimeComponents,
            _cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let Some(held) = self.0.lock().unwrap().held.take() else {
                return Ok(());
            };
            let body = json!({ "UnprocessedItems": held }).to_string();
            let resp = ctx.response_mut();
            resp.headers_mut().remove("x-amz-crc32");
            resp.headers_mut()
                .insert("content-length", body.len().to_string());
            *resp.body_mut() = body.into();
            Ok(())
        }
    }
}

/// The sweep function as the local stack configures it (a real run may move its clock),
/// its DynamoDB client on `wire`, the provider at `provider_url`.
fn sweep_app(
    stack: &harness::stack::Stack,
    wire: &wire::Wire,
    provider_url: Option<&str>,
    now: DateTime<Utc>,
) -> retention_sweep::App {
    let mut config = stack.config_for("RetentionSweepFunction").unwrap();
    assert!(config.sweep_allow_clock_override);
    if let Some(url) = provider_url {
        config.retell_api_base_url = url.to_owned();
    }
    retention_sweep::App::from_aws_with(
        &config,
        &stack.aws,
        wire.client(&stack.aws),
        std::sync::Arc::new(shared::FixedClock::at(now)),
    )
    .unwrap()
}

fn real_run(now: DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({"dry_run": false, "now": now.to_rfc3339()})
}

/// The `retention.run` audit records, oldest first: (counts per class, complete).
async fn run_records(app: &TestApp) -> Vec<(serde_json::Value, bool)> {
    let mut runs: Vec<_> = app
        .items_of_kind("audit")
        .await
        .into_iter()
        .filter(|i| i["action"].as_s().unwrap() == "retention.run")
        .collect();
    runs.sort_by(|a, b| a["sk"].as_s().unwrap().cmp(b["sk"].as_s().unwrap()));
    runs.iter()
        .map(|i| {
            (
                serde_json::from_str(i["counts"].as_s().unwrap()).unwrap(),
                *i["complete"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// R3.2, R3.5: a BatchWriteItem that answers part of its items as unprocessed (three
/// batches in a row keep every second item back) is retried with exactly those items
/// until none is left: through the sweep function's handler, all 60 due consent proofs
/// go, found by queries of the expiry index (no Scan), and the run counts 60 deleted and
/// no failure in its answer and its metrics.
#[tokio::test]
async fn unprocessed_batch_items_are_retried_until_every_due_item_is_gone() {
    let stack = harness::stack::Stack::isolated().await.expect("provision");
    let due = t("2031-11-28T10:00:00Z");
    stack.seed_due_consent_proofs(60, due).await.unwrap();
    let now = due + chrono::Duration::days(1);
    let wire = wire::Wire::new(wire::Mode::HoldBackHalf { calls: 3 });
    let app = sweep_app(&stack, &wire, None, now);

    let metrics = retention_sweep::MetricCapture::start();
    let report = app
        .handle_event(
            &real_run(now),
            &shared::FixedClock::at(now),
            Duration::from_secs(600),
        )
        .await
        .expect("every item went in the end");

    let (held, sizes) = wire.stats();
    assert_eq!(held, 12 + 6 + 3, "the wire held items back");
    assert_eq!(
        sizes,
        [25, 12, 6, 3, 25, 10, 9],
        "each retry sends exactly the unprocessed items (then the 9 classes' cursors)"
    );
    assert_eq!(
        report["classes"]["phone_consent"]["deleted"], 60,
        "{report}"
    );
    assert_eq!(report["classes"]["phone_consent"]["failed"], 0, "{report}");
    let left = stack_items(&stack).await;
    assert_eq!(left, vec!["audit".to_owned()], "only the run's record");
    assert_eq!(metrics.values("SweepFailed"), vec![0.0]);
    assert_eq!(metrics.values("Swept_phone_consent"), vec![60.0]);
    let operations = wire.operations();
    assert!(operations.iter().any(|o| o == "Query"), "{operations:?}");
    assert!(
        !operations.iter().any(|o| o == "Scan"),
        "due items come from the expiry index, never a table scan"
    );
}

/// The kinds of every item in the stack's main table but the sweep's cursors.
async fn stack_items(stack: &harness::stack::Stack) -> Vec<String> {
    let out = aws_sdk_dynamodb::Client::new(&stack.aws)
        .scan()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .map(|i| i["kind"].as_s().unwrap().clone())
        .filter(|k| k != "sweep_cursor")
        .collect()
}

/// R3.2, R3.5: a subject's erasure failing after its key went (every BatchWriteItem of
/// the main table answering all its items unprocessed, for good; the key table's go
/// through): the function's handler returns an error, `SweepFailed` says 3 (the
/// recording's item, the subject, the cursors), the run's audit
/// record counts due 1 / deleted 0 / failed 1 for both classes; the key is gone, every
/// object version too, no personal value is in clear anywhere, and the subject's
/// indexed item is still there. The next run, with the wire healed, finishes it: only
/// the consent proof, the audit trail and the tombstone remain.
#[tokio::test]
async fn a_failure_mid_erasure_is_an_error_with_a_metric_and_counts_and_the_next_run_finishes() {
    let w = world().await;
    let end = DateTime::from_timestamp_millis(w.script.end_ms() as i64).unwrap();
    let at = RetentionClass::Lead.due_at(end).unwrap() + chrono::Duration::days(1);
    let wire = wire::Wire::new(wire::Mode::HoldBackAllButKeys);
    let app = sweep_app(&w.signup.stack, &wire, Some(w._sim.base_url()), at);
    let clock = shared::FixedClock::at(at);
    let budget = Duration::from_secs(600);

    let metrics = retention_sweep::MetricCapture::start();
    let err = app
        .handle_event(&real_run(at), &clock, budget)
        .await
        .expect_err("the run reports the failure");
    assert!(
        matches!(err, retention_sweep::SweepError::Failed(_)),
        "{err}"
    );
    // The recording's item, the subject, and the cursors of the classes that passed
    // (their write held back too: the next run reads their months again).
    assert_eq!(metrics.values("SweepFailed"), vec![3.0]);
    drop(metrics);
    let runs = run_records(&w.signup).await;
    assert_eq!(runs.len(), 1);
    let (counts, complete) = &runs[0];
    assert!(complete);
    for class in ["recording", "lead"] {
        let c = &counts[class];
        assert_eq!(
            (&c["due"], &c["deleted"], &c["failed"]),
            (&1.into(), &0.into(), &1.into()),
            "{class}: {counts}"
        );
    }
    assert!(
        w.signup.item(lead_pk(&w.lead), KEY_SK).await.is_none(),
        "the key went first"
    );
    for prefix in ["recordings", "transcripts"] {
        assert_eq!(
            w.signup
                .versions("RecordingsBucket", &format!("{prefix}/{}/", w.lead))
                .await,
            0,
            "{prefix}"
        );
    }
    let mut values = Vec::new();
    for item in w.signup.scan().await {
        for v in item.values() {
            flatten(v, &mut values);
        }
    }
    for personal in PERSONAL {
        assert!(
            !values.iter().any(|v| contains_ci(v, personal)),
            "{personal} in clear"
        );
    }
    assert!(
        w.signup.item(lead_pk(&w.lead), LEAD_SK).await.is_some(),
        "the indexed item stays, so the next run finds the subject"
    );

    wire.set(wire::Mode::Off);
    let report = app
        .handle_event(&real_run(at), &clock, budget)
        .await
        .expect("the next run finishes the subject");
    assert_eq!(report["classes"]["lead"]["failed"], 0, "{report}");
    assert_eq!(report["classes"]["recording"]["deleted"], 1, "{report}");
    assert!(w.signup.item(lead_pk(&w.lead), LEAD_SK).await.is_none());
    assert!(w
        .signup
        .item(call_pk(w.script.call_id()), CALL_SK)
        .await
        .is_none());
    for item in w.signup.scan().await {
        let kind = item["kind"].as_s().unwrap();
        assert!(
            matches!(
                kind.as_str(),
                // The consent ledger (R7.6) is kept whole: the §7a proof outlives erasure.
                "phone_consent"
                    | "audit"
                    | "erasure_tombstone"
                    | "ledger_entry"
                    | "ledger_head"
                    | "sweep_cursor"
            ),
            "left over: {kind}"
        );
    }
    let runs = run_records(&w.signup).await;
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[1].0["lead"]["deleted"], report["classes"]["lead"]["deleted"],
        "the record holds the run's numbers"
    );
    assert!(runs[1].0["lead"]["deleted"].as_u64().unwrap() >= 4);
}

/// R3.2: the function's handler, given what is left of a 15 s invocation, stops between
/// batches before its budget (12 s) runs out (each batch here takes 3 s, six would be
/// needed) and says so in its answer; after the budget it only records the cursors of
/// the classes it finished (one batch); the next run deletes exactly the rest, and the
/// two runs together deleted all 150 due items.
#[tokio::test]
async fn the_handler_stops_before_the_deadline_and_the_next_run_continues() {
    let stack = harness::stack::Stack::isolated().await.expect("provision");
    let due = t("2031-11-28T10:00:00Z");
    stack.seed_due_consent_proofs(150, due).await.unwrap();
    let now = due + chrono::Duration::days(1);
    // Under the SDK's 5 s attempt timeout of the test stack.
    let wire = wire::Wire::new(wire::Mode::Slow(Duration::from_secs(3)));
    let app = sweep_app(&stack, &wire, None, now);
    let clock = shared::FixedClock::at(now);
    let budget = retention_sweep::budget(Duration::from_secs(15));
    assert_eq!(budget, Duration::from_secs(12));

    let started = std::time::Instant::now();
    let cut = app
        .handle_event(&real_run(now), &clock, budget)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(cut["complete"], false, "{cut}");
    let first = cut["classes"]["phone_consent"]["deleted"].as_u64().unwrap();
    assert!(
        [25, 50, 75, 100].contains(&first),
        "whole batches, not all: {first}"
    );
    // The budget, the batch begun just before it, the cursors' batch (both through the
    // 3 s wire), and slack.
    assert!(
        took < Duration::from_secs(12)
            + Duration::from_secs(3)
            + Duration::from_secs(3)
            + Duration::from_secs(2),
        "no deletion batch begun after the budget: {took:?}"
    );
    assert_eq!(
        stack_items(&stack)
            .await
            .iter()
            .filter(|k| *k == "phone_consent")
            .count() as u64,
        150 - first
    );

    wire.set(wire::Mode::Off);
    let rest = app
        .handle_event(&real_run(now), &clock, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(rest["complete"], true);
    assert_eq!(
        rest["classes"]["phone_consent"]["deleted"]
            .as_u64()
            .unwrap(),
        150 - first
    );
    assert_eq!(stack_items(&stack).await, ["audit", "audit"]);
}

/// R3.3: reads ignore what is past its expiry while it is still stored (no sweep runs
/// here): a one-time code 16 minutes old is refused (410); an access export made a day
/// after the call's recording passed its six months holds neither the audio nor the
/// transcript, though both are still in the bucket (the call's metadata is there); a
/// minute past the export's 7 days its status offers no download although the package
/// and its item remain; three years after the request closed, its status with the right
/// token answers exactly as a wrong token does, although the record remains. (The lead
/// class: `signup::after_retention_the_old_lead_is_not_read_and_a_new_signup_is_a_new_subject`.)
/// Before, the export carried the expired recording and the status served the record.
#[tokio::test]
async fn reads_ignore_what_is_past_its_expiry_before_the_sweep_removes_it() {
    use chrono::Duration as Days;
    use common::dsar::unzip;
    use serde_json::json;

    let d = World::on_mail_emulator().await;
    let (lead, script) = d.recorded_call().await;

    // Verification class: the code is stored but past its 15 minutes.
    let (status, body) = d.submit(&json!({"type": "access", "email": EMAIL})).await;
    assert_eq!(status, 202, "{body}");
    let first = body["request_id"].as_str().unwrap().to_owned();
    let code = d.latest_code(EMAIL, &first).await;
    d.signup.clock.advance(Days::minutes(16));
    assert!(d
        .signup
        .item(format!("DSAR#{first}"), "CODE")
        .await
        .is_some());
    let (status, body) = d.verify(&first, &code).await;
    assert_eq!(status, 410, "{body}");
    assert!(body.get("request_token").is_none());

    // Recording class: a day past six months, audio and transcript still stored.
    let end = DateTime::from_timestamp_millis(script.end_ms() as i64).unwrap();
    d.signup
        .clock
        .set(RetentionClass::Recording.due_at(end).unwrap() + Days::days(1));
    for prefix in ["recordings", "transcripts"] {
        assert!(
            d.signup
                .versions("RecordingsBucket", &format!("{prefix}/{lead}/"))
                .await
                >= 1,
            "{prefix} still stored"
        );
    }
    let (id, token) = d.verified("access", EMAIL).await;
    assert_eq!(d.pump(&id, 1).await, 0);
    let (status, view) = d.status(&id, Some(&token)).await;
    assert_eq!(status, 200, "{view}");
    let files = unzip(&d.download(view["download_url"].as_str().unwrap()).await);
    assert!(
        !files
            .keys()
            .any(|k| k.starts_with("recordings/") || k.starts_with("transcripts/")),
        "{:?}",
        files.keys().collect::<Vec<_>>()
    );
    let data: serde_json::Value = serde_json::from_slice(&files["data.json"]).unwrap();
    let calls = data["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "the call's metadata is there");
    assert_eq!(calls[0]["call_id"], script.call_id());
    assert!(calls[0].get("transcript").is_none(), "{}", calls[0]);

    // Export class: a minute past 7 days, package and item still stored.
    d.signup.clock.advance(Days::days(7) + Days::minutes(1));
    let object = format!("exports/{id}.zip");
    assert_eq!(d.signup.versions("ExportsBucket", &object).await, 1);
    assert!(d
        .signup
        .item(format!("DSAR#{id}"), "EXPORT")
        .await
        .is_some());
    let (status, view) = d.status(&id, Some(&token)).await;
    assert_eq!(status, 200, "{view}");
    assert!(view.get("download_url").is_none(), "{view}");

    // Request class: three years (and a day) after it closed, the record still stored.
    d.signup.clock.advance(Days::days(3 * 366));
    assert!(!d.request_item(&id).await.is_empty());
    let right = d.status(&id, Some(&token)).await;
    let wrong = d.status(&id, Some("not-the-token")).await;
    assert_ne!(right.0, 200, "{}", right.1);
    assert_eq!(right, wrong, "as if the record were gone");
    d.shutdown().await.unwrap();
}
