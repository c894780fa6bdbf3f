//! Data-subject requests (R4) on fakes: the promises `tests/it/dsar*.rs` check against the
//! emulator: codes (tries, expiry), whom a request binds to, the staff deadline rules,
//! what an export holds, and what erasure, restriction, objection and withdrawal do.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::crypto::BlindIndex;
use domain::dsar::{RequestStatus, RequestType};
use domain::RequestId;
use domain::{Clock, Email, FixedClock, LeadId, LeadProfile, Notes, PersonName, PhoneNumber};
use serde_json::{json, Value};
use testkit::dsar::read_plain_archive;
use testkit::{
    FakeKeyService, MemoryCallDeleter, MemoryLeadStore, MemoryMailer, MemoryObjects,
    MemoryRequests, MemorySubjects, PlainArchives,
};
use usecases::dsar::export::{ExportOutcome, Exporter};
use usecases::dsar::intake::{DsarError, DsarService, Intake};
use usecases::dsar::ports::CallRecord;
use usecases::dsar::rights::{Rights, RightsOutcome};
use usecases::ports::{IdentifierKind, KeyService, Objects};
use usecases::signup::{LeadService, SignupOutcome, SignupRequest};

struct World {
    clock: FixedClock,
    keys: Arc<FakeKeyService>,
    leads: MemoryLeadStore,
    requests: MemoryRequests,
    subjects: MemorySubjects,
    mailer: MemoryMailer,
    recordings: MemoryObjects,
    exports: MemoryObjects,
    provider: MemoryCallDeleter,
    lead_service: Arc<LeadService>,
    service: DsarService,
    dnc: testkit::MemoryDoNotCall,
    dnc_audit: testkit::MemoryAuditTrail,
}

fn world() -> World {
    let w = testkit::World::new();
    let requests = MemoryRequests::new();
    let subjects = MemorySubjects::new(w.leads.clone());
    let clock: Arc<dyn Clock> = Arc::new(w.clock.clone());
    let service = DsarService {
        store: Arc::new(requests.clone()),
        claims: Arc::new(subjects.clone()),
        keys: w.keys.clone(),
        mailer: Arc::new(w.mailer.clone()),
        exports: Arc::new(w.exports.clone()),
        clock,
        daily_limit: 3,
        source_daily_limit: 10,
        identifier_daily_limit: 10,
        public_api_base_url: "https://api.example".into(),
        // The erasure mechanics without the cancel window (`erasure_cancel.rs` tests it).
        erasure_cancel_window: Duration::zero(),
    };
    World {
        lead_service: Arc::new(w.signup()),
        clock: w.clock,
        keys: w.keys,
        leads: w.leads,
        requests,
        subjects,
        mailer: w.mailer,
        recordings: w.recordings,
        exports: w.exports,
        provider: MemoryCallDeleter::new(),
        service,
        dnc: testkit::MemoryDoNotCall::new(),
        dnc_audit: testkit::MemoryAuditTrail::new(),
    }
}

impl World {
    fn exporter(&self) -> Exporter {
        Exporter {
            store: Arc::new(self.requests.clone()),
            claims: Arc::new(self.subjects.clone()),
            subjects: Arc::new(self.subjects.clone()),
            leads: self.lead_service.clone(),
            keys: self.keys.clone(),
            recordings: Arc::new(self.recordings.clone()),
            exports: Arc::new(self.exports.clone()),
            mailer: Arc::new(self.mailer.clone()),
            archives: Arc::new(PlainArchives),
            clock: Arc::new(self.clock.clone()),
            public_api_base_url: "https://api.example".into(),
            part_size: 5 * 1024 * 1024,
            crm: false,
        }
    }

    fn rights(&self) -> Rights {
        Rights {
            store: Arc::new(self.requests.clone()),
            claims: Arc::new(self.subjects.clone()),
            subjects: Arc::new(self.subjects.clone()),
            writes: Arc::new(self.subjects.clone()),
            lead_store: Arc::new(self.leads.clone()),
            leads: self.lead_service.clone(),
            keys: self.keys.clone(),
            recordings: Arc::new(self.recordings.clone()),
            exports: Arc::new(self.exports.clone()),
            mailer: Arc::new(self.mailer.clone()),
            clock: Arc::new(self.clock.clone()),
            public_api_base_url: "https://api.example".into(),
            provider: Some(Arc::new(self.provider.clone())),
            ledger: None,
            do_not_call: usecases::dnc::DoNotCallList::new(
                Arc::new(self.dnc.clone()),
                Arc::new(self.dnc_audit.clone()),
                Arc::new(self.clock.clone()),
            ),
            crm: false,
        }
    }

    async fn sign_up(&self, first: &str, email: &str, phone: &str) -> LeadId {
        let request = SignupRequest {
            profile: LeadProfile {
                first_name: PersonName::parse(first).unwrap(),
                last_name: PersonName::parse("Zwetschgenbaum").unwrap(),
                email: Email::parse(email).unwrap(),
                phone: PhoneNumber::parse(phone).unwrap(),
                notes: Notes::parse("Bitte nach 17 Uhr anrufen.").unwrap(),
            },
            source_ip: Some("203.0.113.7".parse().unwrap()),
            client: None,
            policy_version: "2026-11".into(),
            call_window: None,
        };
        match self.lead_service.sign_up(request).await.unwrap() {
            SignupOutcome::Created { id } => id,
            other => panic!("{other:?}"),
        }
    }

    async fn submit(
        &self,
        kind: RequestType,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> RequestId {
        self.service
            .submit(Intake {
                request_type: kind,
                email: email.map(|e| Email::parse(e).unwrap()),
                phone: phone.map(|p| PhoneNumber::parse(p).unwrap()),
                message: None,
                corrections: None,
                source: Some("198.51.100.1".parse().unwrap()),
            })
            .await
            .unwrap()
    }

    /// The code of the last code mail to `email`.
    fn code(&self, email: &str) -> String {
        let mail = self.mailer.sent_to(email).pop().expect("a code mail");
        let digits: Vec<char> = mail.text.chars().collect();
        digits
            .windows(8)
            .find(|w| w.iter().all(char::is_ascii_digit))
            .map(|w| w.iter().collect())
            .expect("an 8-digit code")
    }

    /// A verified request of `email` (and `phone`).
    async fn verified(&self, kind: RequestType, email: &str, phone: Option<&str>) -> RequestId {
        let id = self.submit(kind, Some(email), phone).await;
        self.service.verify(&id, &self.code(email)).await.unwrap();
        id
    }

    /// A call with the subject's number: a sealed analysis, a transcript and a recording.
    async fn call_of(&self, lead: LeadId, call_id: &str, summary: &str) {
        let number = self.leads.lead(&lead).unwrap().phone_index;
        self.call_to(lead, number, call_id, summary).await;
    }

    /// A call of the subject made to `number` (its blind index), which may be a number
    /// the subject no longer has.
    async fn call_to(&self, lead: LeadId, number: BlindIndex, call_id: &str, summary: &str) {
        let held = self.leads.lead(&lead).unwrap();
        let key = self
            .keys
            .unwrap_data_key(&lead, &held.lead.wrapped_key)
            .await
            .unwrap();
        let aad = |attr: &str| format!("polly:call:{call_id}:{attr}").into_bytes();
        let analysis =
            serde_json::to_vec(&json!({"call_analysis": {"call_summary": summary}})).unwrap();
        let transcript =
            serde_json::to_vec(&json!([{"role": "user", "content": summary}])).unwrap();
        let transcript_key = format!("transcripts/{lead}/{call_id}.json.sealed");
        self.recordings
            .put(
                &transcript_key,
                key.seal(&aad("transcript"), &transcript).unwrap(),
            )
            .await
            .unwrap();
        let recording_key = format!("recordings/{lead}/{call_id}.audio");
        self.recordings
            .put(&recording_key, b"RIFF-audio".to_vec())
            .await
            .unwrap();
        let mut fields = serde_json::Map::new();
        fields.insert("call_id".into(), json!(call_id));
        fields.insert("duration_ms".into(), json!(61000));
        self.subjects.add_call_of(
            lead,
            number,
            CallRecord {
                id: call_id.to_owned(),
                fields,
                sealed: vec![(
                    "call".into(),
                    key.seal(&aad("sealed_call"), &analysis).unwrap(),
                )],
                transcript_key: Some(transcript_key),
                provider_deleted: false,
                recording: Some(usecases::dsar::ports::RecordingRecord {
                    object_key: Some(recording_key),
                    fields: serde_json::Map::new(),
                }),
            },
        );
    }
}

const A_EMAIL: &str = "wilhelmine@example.org";
const A_PHONE: &str = "0170 9876543";
const B_EMAIL: &str = "ottokar@example.org";
const B_PHONE: &str = "0171 1234567";

/// R4.1, R4.2: a request waits for its code; a wrong code says how many tries remain;
/// the right one verifies the request once (a second use is refused), deletes the code
/// and gives a token without which the status is refused.
#[tokio::test]
async fn the_right_code_opens_the_request_once_and_a_wrong_one_says_how_many_tries_remain() {
    let w = world();
    let id = w.submit(RequestType::Access, Some(A_EMAIL), None).await;
    let record = w.requests.record(&id).unwrap();
    assert_eq!(record.status, RequestStatus::AwaitingVerification);
    assert!(w.requests.has_code(&id));
    let code = w.code(A_EMAIL);
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };

    let e = w.service.verify(&id, wrong).await.unwrap_err();
    assert!(matches!(e, DsarError::WrongCode { remaining: 4 }), "{e:?}");
    let verified = w.service.verify(&id, &code).await.unwrap();
    assert!(verified.token.is_some());
    // Nobody holds the email: nothing to bind, the worker completes with `no_data`.
    assert_eq!(verified.status, RequestStatus::InProgress);
    assert!(!w.requests.has_code(&id));
    assert!(matches!(
        w.service.verify(&id, &code).await.unwrap_err(),
        DsarError::AlreadyVerified
    ));
    let status = w
        .service
        .status(&id, verified.token.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(status.status, RequestStatus::InProgress);
    assert!(matches!(
        w.service.status(&id, "not-the-token").await.unwrap_err(),
        DsarError::NotAuthorised
    ));
}

/// R4.1: five wrong codes end the request (the right code is refused afterwards), and
/// so does a code past its 15 minutes; either way the request's sealed contact and key
/// go.
#[tokio::test]
async fn five_wrong_codes_or_an_expired_code_end_the_request_and_its_contact_goes() {
    let w = world();
    let id = w.submit(RequestType::Access, Some(A_EMAIL), None).await;
    let code = w.code(A_EMAIL);
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for remaining in (1..=4).rev() {
        let e = w.service.verify(&id, wrong).await.unwrap_err();
        assert!(
            matches!(e, DsarError::WrongCode { remaining: r } if r == remaining),
            "{e:?}"
        );
    }
    assert!(matches!(
        w.service.verify(&id, wrong).await.unwrap_err(),
        DsarError::TooManyAttempts
    ));
    assert_eq!(
        w.requests.record(&id).unwrap().status,
        RequestStatus::VerificationFailed
    );
    assert_eq!(w.requests.has_contact(&id), (false, false));
    // The right code comes too late.
    assert!(matches!(
        w.service.verify(&id, &code).await.unwrap_err(),
        DsarError::Ended
    ));

    let late = w.submit(RequestType::Access, Some(B_EMAIL), None).await;
    let code = w.code(B_EMAIL);
    w.requests
        .expire_code(&late, w.clock.now() - Duration::seconds(1));
    assert!(matches!(
        w.service.verify(&late, &code).await.unwrap_err(),
        DsarError::CodeExpired
    ));
    let record = w.requests.record(&late).unwrap();
    assert_eq!(record.outcome.as_deref(), Some("code_expired"));
    assert_eq!(w.requests.has_contact(&late), (false, false));
}

#[tokio::test]
async fn a_fourth_request_for_the_same_email_from_one_source_on_one_day_is_refused() {
    let w = world();
    for _ in 0..3 {
        w.submit(RequestType::Access, Some(A_EMAIL), None).await;
    }
    let e = w
        .service
        .submit(Intake {
            request_type: RequestType::Access,
            email: Some(Email::parse(A_EMAIL).unwrap()),
            phone: None,
            message: None,
            corrections: None,
            source: Some("198.51.100.1".parse().unwrap()),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, DsarError::RateLimited), "{e:?}");
    assert_eq!(w.mailer.sent_to(A_EMAIL).len(), 3);
}

/// R4.1: a request acts only on the subject its proven identifiers point at: email plus
/// another subject's phone waits for staff and changes nothing (the staff check then
/// refuses two subjects); a phone-only request sends no code and waits for the staff
/// check, which hands over the token.
#[tokio::test]
async fn a_request_acts_only_on_the_subject_its_proven_identifiers_point_at() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    w.sign_up("Ottokar", B_EMAIL, B_PHONE).await;

    // Email and the subject's own phone: acts on that subject.
    let own = w
        .verified(RequestType::Restriction, A_EMAIL, Some(A_PHONE))
        .await;
    assert_eq!(
        w.requests.record(&own).unwrap().status,
        RequestStatus::InProgress
    );

    // Email plus another subject's phone: waits for staff, nothing is done.
    let mixed = w
        .verified(RequestType::Restriction, A_EMAIL, Some(B_PHONE))
        .await;
    assert_eq!(
        w.requests.record(&mixed).unwrap().status,
        RequestStatus::AwaitingIdentityCheck
    );
    assert!(w.requests.open_list().iter().any(|o| o.request_id == mixed));
    assert_eq!(
        w.rights().carry_out(&mixed).await.unwrap(),
        RightsOutcome::Skipped
    );
    assert!(!w.leads.lead(&a).unwrap().lead.restricted);
    // The staff check proves both, and they belong to two subjects: refused.
    assert!(matches!(
        w.service
            .verify_identity(&mixed, "staff")
            .await
            .unwrap_err(),
        DsarError::AmbiguousSubject
    ));

    // Phone only: no code is sent, the request waits for the staff check.
    let before = w.mailer.sent().len();
    let phone_only = w.submit(RequestType::Access, None, Some(A_PHONE)).await;
    assert_eq!(w.mailer.sent().len(), before);
    assert_eq!(
        w.requests.record(&phone_only).unwrap().status,
        RequestStatus::AwaitingIdentityCheck
    );
    let checked = w
        .service
        .verify_identity(&phone_only, "staff")
        .await
        .unwrap();
    assert!(
        checked.token.is_some(),
        "the first token is for staff to hand over"
    );
    assert_eq!(checked.status, RequestStatus::InProgress);
}

/// R4.3, R4.10, R4.11: staff extend a deadline once, by two months from the original due
/// date (a second extension is refused), and deny with reasons, which closes the request,
/// deletes its contact and blind index, mails the subject and is audited.
#[tokio::test]
async fn staff_extend_a_deadline_once_and_deny_with_reasons_which_closes_the_request() {
    let w = world();
    let id = w.verified(RequestType::Access, A_EMAIL, None).await;
    let due = w.requests.record(&id).unwrap().due_date;
    let extended = w
        .service
        .extend(&id, 2, "Viele Anfragen", "staff")
        .await
        .unwrap();
    // R4.3: two further months from the original due date.
    assert_eq!(extended, domain::dsar::add_months(due, 2));
    assert!(matches!(
        w.service
            .extend(&id, 1, "Noch einmal", "staff")
            .await
            .unwrap_err(),
        DsarError::Extension(_)
    ));
    let open = w.requests.open_list();
    assert_eq!(open.len(), 1, "one entry per request, at the new due date");
    assert_eq!(open[0].due_date, extended);
    let mails = w.mailer.sent_to(A_EMAIL).len();

    w.service
        .deny(&id, &["Offensichtlich unbegründet".into()], "staff")
        .await
        .unwrap();
    let record = w.requests.record(&id).unwrap();
    assert_eq!(record.status, RequestStatus::Denied);
    assert!(
        record.subject_email_bidx.is_none(),
        "closed: no blind index"
    );
    assert!(w.requests.open_list().is_empty());
    assert_eq!(w.requests.has_contact(&id), (false, false));
    assert_eq!(w.mailer.sent_to(A_EMAIL).len(), mails + 1);
    assert!(matches!(
        w.service
            .deny(&id, &["x".into()], "staff")
            .await
            .unwrap_err(),
        DsarError::NotOpen
    ));
    let actions: Vec<String> = w.requests.audit().into_iter().map(|a| a.action).collect();
    assert!(actions.contains(&"dsar.extended".to_owned()));
    assert!(actions.contains(&"dsar.denied".to_owned()));
}

#[tokio::test]
async fn the_export_holds_everything_about_the_subject_decrypted_and_nothing_of_another() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let b = w.sign_up("Ottokar", B_EMAIL, B_PHONE).await;
    w.call_of(a, "call_a", "Frau Wilhelmine möchte einen Termin")
        .await;
    w.call_of(b, "call_b", "Herr Ottokar ruft zurück").await;
    let id = w.verified(RequestType::Access, A_EMAIL, None).await;

    let out = w.exporter().run(&id).await.unwrap();
    assert!(
        matches!(
            out,
            ExportOutcome::Built {
                holds_data: true,
                ..
            }
        ),
        "{out:?}"
    );
    let package = w.package(&id).await;
    let files = read_plain_archive(&package);
    for name in [
        "LIESMICH.txt",
        "information.json",
        "data.json",
        "transcripts/call_a.json",
        "recordings/call_a.audio",
    ] {
        assert!(files.contains_key(name), "{name} in {:?}", files.keys());
    }
    assert!(!files.contains_key("portable.json") && !files.contains_key("portable.csv"));
    let data: Value = serde_json::from_slice(&files["data.json"]).unwrap();
    // Every value held, decrypted: the sign-up, the technical data, the call's sealed
    // analysis and transcript, the recording's bytes.
    let subject = &data["subject"];
    assert_eq!(subject["id"], a.to_string());
    assert_eq!(
        subject["sign_up"],
        json!({
            "first_name": "Wilhelmine",
            "last_name": "Zwetschgenbaum",
            "email": A_EMAIL,
            "phone": "+491709876543",
            "notes": "Bitte nach 17 Uhr anrufen.",
            "signed_up_at": subject["sign_up"]["signed_up_at"],
            "privacy_policy_version": "2026-11",
        })
    );
    assert!(subject["sign_up"]["signed_up_at"].is_string());
    assert_eq!(subject["technical"]["source_ip"], "203.0.113.7");
    for field in ["last_contact_at", "kept_until", "call_state"] {
        assert!(subject["processing"][field].is_string(), "{field}");
    }
    assert_eq!(subject["processing"]["restricted"], false);
    let call = &data["calls"][0];
    assert_eq!(data["calls"].as_array().unwrap().len(), 1);
    assert_eq!(call["call_id"], "call_a");
    assert_eq!(call["duration_ms"], 61000);
    assert_eq!(
        call["call"]["call_analysis"]["call_summary"],
        "Frau Wilhelmine möchte einen Termin"
    );
    let transcript = json!([{"role": "user", "content": "Frau Wilhelmine möchte einen Termin"}]);
    assert_eq!(call["transcript"], transcript);
    let file: Value = serde_json::from_slice(&files["transcripts/call_a.json"]).unwrap();
    assert_eq!(file, transcript);
    assert_eq!(files["recordings/call_a.audio"], b"RIFF-audio");
    assert_eq!(data["consents"].as_array().unwrap().len(), 1);
    // The Art. 15(1)(a)–(h), 15(2) information from the registry, as it is.
    let info: Value = serde_json::from_slice(&files["information.json"]).unwrap();
    assert_eq!(info, domain::dsar::disclosure::information());
    let all = String::from_utf8_lossy(&package);
    for other in [B_EMAIL, "Ottokar", "call_b"] {
        assert!(!all.contains(other), "{other} leaked into the export");
    }
    let record = w.requests.record(&id).unwrap();
    assert_eq!(record.status, RequestStatus::Completed);
    assert_eq!(record.outcome.as_deref(), Some("export_ready"));
    assert_eq!(record.lead_id, Some(a));
    // A second run finds the request closed and builds nothing.
    assert_eq!(w.exporter().run(&id).await.unwrap(), ExportOutcome::Skipped);
}

/// R4.4: a portability package adds what the subject provided: `portable.json` (the
/// sign-up as given and the consent) and `portable.csv`, one quoted row per sign-up
/// field, a leading formula character neutralised.
#[tokio::test]
async fn a_portability_package_holds_the_provided_data_as_json_and_csv() {
    let w = world();
    let request = SignupRequest {
        profile: LeadProfile {
            first_name: PersonName::parse("Wilhelmine").unwrap(),
            last_name: PersonName::parse("Zwetschgenbaum").unwrap(),
            email: Email::parse(A_EMAIL).unwrap(),
            phone: PhoneNumber::parse(A_PHONE).unwrap(),
            notes: Notes::parse("=1+1, bitte \"abends\" anrufen").unwrap(),
        },
        source_ip: Some("203.0.113.7".parse().unwrap()),
        client: None,
        policy_version: "2026-11".into(),
        call_window: None,
    };
    let SignupOutcome::Created { id: a } = w.lead_service.sign_up(request).await.unwrap() else {
        panic!("created");
    };
    let id = w.verified(RequestType::Portability, A_EMAIL, None).await;

    w.exporter().run(&id).await.unwrap();
    let package = w.package(&id).await;
    let files = read_plain_archive(&package);
    let portable: Value = serde_json::from_slice(&files["portable.json"]).unwrap();
    let signed_up_at = portable["sign_up"]["signed_up_at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        portable["sign_up"],
        json!({
            "first_name": "Wilhelmine",
            "last_name": "Zwetschgenbaum",
            "email": A_EMAIL,
            "phone": "+491709876543",
            "notes": "=1+1, bitte \"abends\" anrufen",
            "signed_up_at": signed_up_at,
            "privacy_policy_version": "2026-11",
        })
    );
    let consents = portable["consents"].as_array().unwrap();
    assert_eq!(consents.len(), 1, "{portable}");
    let csv = String::from_utf8(files["portable.csv"].clone()).unwrap();
    assert_eq!(
        csv,
        format!(
            "field,value\r\n\"first_name\",\"Wilhelmine\"\r\n\"last_name\",\"Zwetschgenbaum\"\r\n\
             \"email\",\"{A_EMAIL}\"\r\n\"phone\",\"'+491709876543\"\r\n\
             \"notes\",\"'=1+1, bitte \"\"abends\"\" anrufen\"\r\n\
             \"signed_up_at\",\"{signed_up_at}\"\r\n\"privacy_policy_version\",\"2026-11\"\r\n"
        )
    );
    // The full access data is in the package too.
    let data: Value = serde_json::from_slice(&files["data.json"]).unwrap();
    assert_eq!(data["subject"]["id"], a.to_string());
}

/// R4.5: an erasure deletes the subject's call at the provider, destroys its key before
/// any other deletion, deletes its calls, recordings, claims and profile in batches of
/// at most 25, keeps the §7a UWG consent proof detached from lead and call ids, leaves
/// another subject untouched, and its proof of erasure names nobody.
#[tokio::test]
async fn erasure_deletes_the_calls_at_the_provider_and_shreds_the_key_before_deleting_anything() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let b = w.sign_up("Ottokar", B_EMAIL, B_PHONE).await;
    w.call_of(a, "call_a", "Termin").await;
    w.call_of(b, "call_b", "Rückruf").await;
    // The call was placed under A's consent proof (§7a UWG).
    let a_phone = w.leads.lead(&a).unwrap().phone_index;
    usecases::ports::LeadStore::record_consent_use(&w.leads, &a, &a_phone, "call_a", w.clock.now())
        .await
        .unwrap();
    let id = w.verified(RequestType::Erasure, A_EMAIL, None).await;

    let out = w.rights().carry_out(&id).await.unwrap();
    assert_eq!(
        out,
        RightsOutcome::Erased {
            calls_deleted_at_provider: 1
        }
    );
    assert_eq!(w.provider.deleted(), vec!["call_a".to_owned()]);
    assert_eq!(
        w.subjects.log().first().map(String::as_str),
        Some("shred_key")
    );
    assert!(
        w.lead_service.read(&a).await.unwrap().is_none(),
        "crypto-shredded"
    );
    assert!(w
        .recordings
        .keys()
        .iter()
        .all(|k| !k.contains(&a.to_string())));
    assert_eq!(w.subjects.call_ids(), vec!["call_b".to_owned()]);
    assert!(w
        .subjects
        .batches()
        .iter()
        .all(|n| *n <= testkit::dsar::BATCH_LIMIT));
    let email = w
        .keys
        .blind_index(
            IdentifierKind::Email,
            &Email::parse(A_EMAIL).unwrap().lookup_key(),
        )
        .await
        .unwrap();
    assert!(w
        .subjects
        .released()
        .iter()
        .any(|(k, i)| *k == IdentifierKind::Email && *i == email));
    // R4.5, R3: the §7a UWG consent proof stays (Art. 17(3)(e)), as the sweep keeps it;
    // everything else of the subject goes (before the fix the erasure deleted it).
    let deleted = w.subjects.deleted();
    assert!(deleted.iter().all(|(_, k)| !k.starts_with("CONSENT#")));
    assert!(deleted.iter().any(|(l, k)| *l == a && k == "PROFILE"));
    // Item 8: the kept proof is detached: no lead id, no call id (the count stays), so
    // the erased subject's audit events (lead and call ids) join no kept record.
    let kept: Vec<_> = w
        .leads
        .consents()
        .into_iter()
        .filter(|c| c.phone_index == a_phone)
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].lead, None);
    assert!(kept[0].calls.is_empty());
    assert_eq!(kept[0].uses, 1);
    assert!(kept[0].last_used_at.is_some());
    assert!(w.leads.consents().iter().any(|c| c.lead == Some(b)));
    // The other subject is untouched.
    assert!(w.lead_service.read(&b).await.unwrap().is_some());
    let record = w.requests.record(&id).unwrap();
    assert_eq!(record.outcome.as_deref(), Some("erased"));
    assert_eq!(record.lead_id, None, "the proof of erasure names nobody");
    assert!(record.categories.is_some());
}

/// R4.5, R3.4: an erasure under a live contract shreds no key and keeps the profile and
/// the contract, restricted until the hold ends, and the request records the hold's end.
#[tokio::test]
async fn erasure_under_a_live_contract_keeps_lead_and_contract_restricted_and_names_the_hold() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let until = w.clock.now() + Duration::days(365 * 6);
    w.subjects.add_record(
        a,
        "CONTRACT#1",
        "contract",
        json!({"kind": "contract", "expires_at": until.to_rfc3339()}),
    );
    let id = w.verified(RequestType::Erasure, A_EMAIL, None).await;

    let out = w.rights().carry_out(&id).await.unwrap();
    let RightsOutcome::Held { until: held } = out else {
        panic!("{out:?}");
    };
    assert_eq!(held.timestamp(), until.timestamp());
    assert!(!w.subjects.log().contains(&"shred_key".to_owned()));
    let deleted: Vec<String> = w.subjects.deleted().into_iter().map(|(_, k)| k).collect();
    assert!(
        !deleted.contains(&"PROFILE".to_owned()) && !deleted.contains(&"CONTRACT#1".to_owned())
    );
    // The §7a UWG consent proof stays under a hold too (its own 5 years, R3).
    assert!(deleted.iter().all(|k| !k.starts_with("CONSENT#")));
    let lead = w.leads.lead(&a).unwrap();
    assert!(lead.lead.restricted);
    assert_eq!(
        lead.hold_until.map(|t| t.timestamp()),
        Some(until.timestamp())
    );
    let record = w.requests.record(&id).unwrap();
    assert_eq!(
        record.outcome.as_deref(),
        Some("restricted_under_legal_hold")
    );
    assert_eq!(
        record.held_until.map(|t: DateTime<Utc>| t.timestamp()),
        Some(until.timestamp())
    );
}

/// R4.9: a consent withdrawal deletes the subject's recordings and transcripts and marks
/// the call `withdrawn`, with the flag set; restriction and objection set theirs; a
/// carried-out request is not carried out again.
#[tokio::test]
async fn restriction_objection_and_withdrawal_set_their_flags_and_withdrawal_deletes_recordings() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    w.call_of(a, "call_a", "Termin").await;

    let id = w.verified(RequestType::Restriction, A_EMAIL, None).await;
    assert_eq!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Restricted
    );
    assert!(w.leads.lead(&a).unwrap().lead.restricted);
    assert_eq!(w.requests.record(&id).unwrap().lead_id, Some(a));

    let id = w.verified(RequestType::Objection, A_EMAIL, None).await;
    assert_eq!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Objected
    );
    assert!(w.leads.lead(&a).unwrap().lead.objected);

    let id = w
        .verified(RequestType::WithdrawConsent, A_EMAIL, None)
        .await;
    let out = w.rights().carry_out(&id).await.unwrap();
    assert_eq!(out, RightsOutcome::RecordingsDeleted { objects: 2 });
    assert!(w.leads.lead(&a).unwrap().lead.consent_withdrawn);
    assert!(w.recordings.keys().is_empty());
    let call = w.subjects.held_call("call_a").unwrap();
    assert!(call.recording.is_none() && call.transcript_key.is_none());
    assert_eq!(call.fields["recording_state"], "withdrawn");
    // Carried out once: a repeated run changes nothing.
    assert_eq!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Skipped
    );
}

/// An analytics file (R6) with one row of each subject, written twice (two versions).
async fn analytics_file(w: &World, subjects: &[LeadId]) -> String {
    let mut body = String::new();
    for (i, lead) in subjects.iter().enumerate() {
        let subject =
            usecases::dsar::analytics::pseudonym(w.keys.as_ref(), "subject", &lead.to_string())
                .await
                .unwrap();
        body.push_str(&format!(
            "{}\n",
            json!({"call": format!("c{i}"), "subject": subject, "duration_ms": 61000})
        ));
    }
    body.push_str("{\"call\":\"unlinked\",\"subject\":null}\n");
    let key = "analytics/20261130T000000Z-x.jsonl".to_owned();
    w.exports
        .put(&key, body.clone().into_bytes())
        .await
        .unwrap();
    w.exports.put(&key, body.into_bytes()).await.unwrap();
    key
}

fn rows(w: &World, key: &str) -> Vec<Value> {
    let body = w.exports.latest(key).expect("the file stays");
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// R6, R4.5, R4.7, R4.8: an erasure, a restriction or an objection rewrites the analytics
/// files without the subject's rows and leaves no earlier version holding them; the rows of
/// others stay as they were.
#[tokio::test]
async fn erasure_restriction_and_objection_take_the_subject_out_of_every_analytics_file() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let b = w.sign_up("Ottokar", B_EMAIL, B_PHONE).await;
    let c = w
        .sign_up("Kunigunde", "kunigunde@example.org", "0172 5550101")
        .await;
    let file = analytics_file(&w, &[a, b, c]).await;
    assert_eq!(w.exports.count_versions(&file, true).await.unwrap(), 2);

    let id = w.verified(RequestType::Erasure, A_EMAIL, None).await;
    w.rights().carry_out(&id).await.unwrap();
    let calls = |w: &World| -> Vec<String> {
        rows(w, &file)
            .iter()
            .map(|r| r["call"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(calls(&w), vec!["c1", "c2", "unlinked"]);
    assert_eq!(
        w.exports.count_versions(&file, true).await.unwrap(),
        1,
        "no earlier version keeps the rows"
    );

    let id = w.verified(RequestType::Objection, B_EMAIL, None).await;
    w.rights().carry_out(&id).await.unwrap();
    let id = w
        .verified(RequestType::Restriction, "kunigunde@example.org", None)
        .await;
    w.rights().carry_out(&id).await.unwrap();
    assert_eq!(calls(&w), vec!["unlinked"]);
    assert_eq!(w.exports.count_versions(&file, true).await.unwrap(), 1);
}

/// A withdrawal of the recording consent leaves the analytics files alone (they hold no
/// recording and no identifier).
#[tokio::test]
async fn withdrawal_leaves_the_analytics_files_as_they_are() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let file = analytics_file(&w, &[a]).await;
    let before = w.exports.latest(&file);
    let id = w
        .verified(RequestType::WithdrawConsent, A_EMAIL, None)
        .await;
    w.rights().carry_out(&id).await.unwrap();
    assert_eq!(w.exports.latest(&file), before);
    assert_eq!(w.exports.count_versions(&file, true).await.unwrap(), 2);
}

/// R4.4, R4.5 (issue 12, item 1): calls belong to their subject, not to today's number.
/// A's call was made to a number that is B's now (A rectified it, B signed up with it):
/// B's export does not show it and B's erasure leaves it; A's erasure takes it (and asks
/// the provider to delete it). Found by the number, B's erasure deleted A's call and
/// A's left it behind.
#[tokio::test]
async fn calls_follow_their_subject_not_the_number_it_had() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let b = w.sign_up("Ottokar", B_EMAIL, B_PHONE).await;
    let b_number = w.leads.lead(&b).unwrap().phone_index;
    w.call_to(a, b_number, "call_a_old_number", "Termin").await;

    let access = w.verified(RequestType::Access, B_EMAIL, None).await;
    w.exporter().run(&access).await.unwrap();
    let zip = w.package(&access).await;
    let files = read_plain_archive(&zip);
    let data = String::from_utf8(files["data.json"].clone()).unwrap();
    assert!(
        !data.contains("call_a_old_number"),
        "B's export shows A's call"
    );

    let erase_b = w.verified(RequestType::Erasure, B_EMAIL, None).await;
    w.rights().carry_out(&erase_b).await.unwrap();
    assert_eq!(
        w.subjects.call_ids(),
        vec!["call_a_old_number".to_owned()],
        "B's erasure took A's call"
    );
    assert!(w.provider.deleted().is_empty());

    let erase_a = w.verified(RequestType::Erasure, A_EMAIL, None).await;
    let out = w.rights().carry_out(&erase_a).await.unwrap();
    assert_eq!(
        out,
        RightsOutcome::Erased {
            calls_deleted_at_provider: 1
        }
    );
    assert!(
        w.subjects.call_ids().is_empty(),
        "A's erasure left its call"
    );
    assert_eq!(w.provider.deleted(), vec!["call_a_old_number".to_owned()]);
}

/// R4.5 (issue 12, items 2 and 8): an erasure leaves a tombstone before anything goes
/// (later events for the subject respect it) and takes the subject's call-attempt
/// counters with it.
#[tokio::test]
async fn an_erasure_leaves_a_tombstone_first_and_takes_the_attempt_counters() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let id = w.verified(RequestType::Erasure, A_EMAIL, None).await;
    assert!(w.leads.tombstone(&a).is_none());

    w.rights().carry_out(&id).await.unwrap();
    assert_eq!(w.leads.tombstone(&a), Some(w.clock.now()));
    assert_eq!(w.subjects.attempts_deleted(), vec![a]);
}

/// R4.5, R2.9 (Art. 19): a provider outage does not block an erasure: the subject is erased
/// here, key first, the request completes, and the call waits in the outbox (only its
/// provider id) until a later drain deletes it at the provider.
#[tokio::test]
async fn a_provider_outage_does_not_block_an_erasure_and_the_outbox_deletes_later() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    w.call_of(a, "call_a", "Termin").await;
    let id = w.verified(RequestType::Erasure, A_EMAIL, None).await;
    let outbox = testkit::MemoryOutbox::new();
    let deletions = Arc::new(usecases::outbox::ProviderDeletions {
        outbox: Arc::new(outbox.clone()),
        provider: Arc::new(w.provider.clone()),
        clock: Arc::new(w.clock.clone()),
    });
    let rights = Rights {
        provider: Some(deletions.clone()),
        ..w.rights()
    };
    w.provider.fail_with(usecases::ports::Retry::Transient);

    let out = rights.carry_out(&id).await.unwrap();

    assert_eq!(
        out,
        RightsOutcome::Erased {
            calls_deleted_at_provider: 0
        }
    );
    assert_eq!(
        w.subjects.log().first().map(String::as_str),
        Some("shred_key")
    );
    assert!(w.lead_service.read(&a).await.unwrap().is_none());
    assert_eq!(
        w.requests.record(&id).unwrap().status,
        RequestStatus::Completed
    );
    let pending = outbox.entries();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].call_id, "call_a");
    assert_eq!(pending[0].attempts, 1);

    w.provider.heal();
    w.clock.advance(Duration::hours(2));
    let drained = deletions
        .drain(std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(drained.deleted, 1);
    assert_eq!(w.provider.deleted(), vec!["call_a".to_owned()]);
    assert!(outbox.entries().is_empty());
}

/// R4.10, R4.11: an export that keeps failing does not stall silently: each failed
/// attempt is counted, the last one (the stream's retries used up) leaves the request
/// `failed` with a fixed reason code, listed first for staff, who retry it (audited with
/// their principal); the retried request is carried out.
#[tokio::test]
async fn a_request_whose_retries_run_out_is_failed_listed_first_and_retried_by_staff() {
    use usecases::dsar::worker::{FailureRecorded, RequestWorker, MAX_WORKER_ATTEMPTS};
    let w = world();
    w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let older = w.verified(RequestType::Restriction, B_EMAIL, None).await;
    w.clock.advance(Duration::days(3));
    let id = w.verified(RequestType::Access, A_EMAIL, None).await;
    let dead_letters = testkit::MemoryDeadLetters::new();
    let worker = RequestWorker {
        exporter: w.exporter(),
        rights: w.rights(),
        leads: w.lead_service.clone(),
        dead_letters: Some(Arc::new(dead_letters.clone())),
    };
    w.exports.fail_with(usecases::ports::Retry::Transient);

    let mut recorded = Vec::new();
    for _ in 0..MAX_WORKER_ATTEMPTS {
        let err = worker.run(&id).await.unwrap_err();
        recorded.push(
            worker
                .record_failure(&id, "export", err.retry())
                .await
                .unwrap(),
        );
    }

    assert_eq!(
        recorded,
        vec![
            FailureRecorded::Retrying { failures: 1 },
            FailureRecorded::Retrying { failures: 2 },
            FailureRecorded::Retrying { failures: 3 },
            FailureRecorded::Failed {
                reason: "export_retries_exhausted".into()
            },
        ]
    );
    assert_eq!(
        dead_letters.given_up(),
        vec![(id, "export_retries_exhausted".to_owned())],
        "the replay message names the request and the reason only"
    );
    let record = w.requests.record(&id).unwrap();
    assert_eq!(record.status, RequestStatus::Failed);
    assert_eq!(
        record.failure_reason.as_deref(),
        Some("export_retries_exhausted")
    );
    let list = w.service.open_requests().await.unwrap();
    assert_eq!(list[0].request_id, id.to_string(), "failed first: {list:?}");
    assert_eq!(
        list[0].failure_reason.as_deref(),
        Some("export_retries_exhausted")
    );
    assert_eq!(list[1].request_id, older.to_string());
    assert!(w
        .requests
        .audit()
        .iter()
        .any(|a| a.request == id && a.action == "dsar.failed" && a.actor == "dsar-worker"));

    w.exports.heal();
    let staff = "arn:aws:sts::123456789012:assumed-role/dsar-staff/alice";
    w.service.retry(&id, staff).await.unwrap();
    let record = w.requests.record(&id).unwrap();
    assert_eq!(record.status, RequestStatus::InProgress);
    assert_eq!((record.failure_reason, record.worker_failures), (None, 0));
    assert!(w
        .requests
        .audit()
        .iter()
        .any(|a| a.request == id && a.action == "dsar.retried" && a.actor == staff));
    assert!(
        matches!(w.service.retry(&id, staff).await, Err(DsarError::NotOpen)),
        "only a failed request can be retried"
    );
    assert!(matches!(
        worker.run(&id).await.unwrap(),
        ExportOutcome::Built { .. }
    ));
    assert_eq!(
        w.requests.record(&id).unwrap().status,
        RequestStatus::Completed
    );
}

/// A permanent error fails the request at once (no stream retry could help).
#[tokio::test]
async fn a_permanent_worker_error_fails_the_request_at_once() {
    use usecases::dsar::worker::{FailureRecorded, RequestWorker};
    let w = world();
    w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let id = w.verified(RequestType::Erasure, A_EMAIL, None).await;
    let worker = RequestWorker {
        exporter: w.exporter(),
        rights: w.rights(),
        leads: w.lead_service.clone(),
        dead_letters: None,
    };
    let out = worker
        .record_failure(&id, "rights", usecases::ports::Retry::Permanent)
        .await
        .unwrap();
    assert_eq!(
        out,
        FailureRecorded::Failed {
            reason: "rights_permanent_error".into()
        }
    );
    assert_eq!(
        worker
            .record_failure(&id, "rights", usecases::ports::Retry::Transient)
            .await
            .unwrap(),
        FailureRecorded::NotInProgress
    );
}

/// A number no subject holds.
const STRANGER_PHONE: &str = "0173 5550199";

impl World {
    /// Request `id`'s export package as stored.
    async fn package(&self, id: &impl std::fmt::Display) -> Vec<u8> {
        self.exports
            .get(&format!("exports/{id}.zip"))
            .await
            .unwrap()
            .unwrap()
    }

    async fn phone_index(&self, phone: &str) -> BlindIndex {
        self.keys
            .blind_index(
                IdentifierKind::Phone,
                PhoneNumber::parse(phone).unwrap().expose(),
            )
            .await
            .unwrap()
    }

    /// A call stored without a lead with `phone`: metadata only, as the webhook keeps it.
    async fn unlinked_call(&self, phone: &str, call_id: &str) {
        let fields = json!({
            "call_id": call_id,
            "direction": "inbound",
            "duration_ms": 42000,
            "linked": false,
            "call_status": "ended",
        });
        self.subjects.add_call(
            self.phone_index(phone).await,
            CallRecord {
                id: call_id.to_owned(),
                fields: fields.as_object().cloned().unwrap(),
                ..CallRecord::default()
            },
        );
    }

    /// A phone-only request, its identity checked by staff.
    async fn phone_only(&self, kind: RequestType, phone: &str) -> RequestId {
        let id = self.submit(kind, None, Some(phone)).await;
        self.service.verify_identity(&id, "staff").await.unwrap();
        id
    }
}

/// R4.4, R4.1, R2.4 (issue 12, item 1): a person without a lead reaches the calls stored
/// without a lead with their number once staff proved the number: the export holds
/// those calls' metadata and a read-me that says no sign-up is held. A subject's call
/// made to that number stays out, and another proven number reaches nothing. Before:
/// `no_data`.
#[tokio::test]
async fn a_proven_phone_without_a_subject_gets_the_unlinked_calls_with_it_in_its_export() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let stranger = w.phone_index(STRANGER_PHONE).await;
    w.unlinked_call(STRANGER_PHONE, "call_unlinked").await;
    w.unlinked_call(B_PHONE, "call_of_another_number").await;
    w.call_to(a, stranger, "call_a_to_that_number", "Termin")
        .await;

    for kind in [RequestType::Access, RequestType::Portability] {
        let id = w.phone_only(kind, STRANGER_PHONE).await;
        let out = w.exporter().run(&id).await.unwrap();
        assert!(
            matches!(
                out,
                ExportOutcome::Built {
                    holds_data: true,
                    ..
                }
            ),
            "{out:?}"
        );
        let zip = w.package(&id).await;
        let files = read_plain_archive(&zip);
        let data: Value = serde_json::from_slice(&files["data.json"]).unwrap();
        assert_eq!(data["holds_data"], json!(true));
        assert_eq!(data["subject"], Value::Null);
        let calls = data["calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0]["call_id"], "call_unlinked");
        assert_eq!(calls[0]["duration_ms"], 42000);
        let all = String::from_utf8_lossy(&zip);
        for other in [
            "call_a_to_that_number",
            "call_of_another_number",
            "Wilhelmine",
        ] {
            assert!(!all.contains(other), "{other} in the export");
        }
        let readme = String::from_utf8(files["LIESMICH.txt"].clone()).unwrap();
        let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(readme.contains("Eine Anmeldung haben wir zu den Angaben in Ihrer Anfrage nicht"));
        assert!(readme.contains("Gespeichert sind 1 Telefonat(e) mit Ihrer Telefonnummer"));
        assert!(!files.contains_key("portable.json"));
        assert!(!readme.contains("portable.json"));
        let record = w.requests.record(&id).unwrap();
        assert_eq!(record.outcome.as_deref(), Some("export_ready"));
        assert_eq!(record.lead_id, None, "no subject to link the request to");
    }

    // Another proven number without calls: nothing.
    let id = w.phone_only(RequestType::Access, "0174 5550123").await;
    assert!(matches!(
        w.exporter().run(&id).await.unwrap(),
        ExportOutcome::Built {
            holds_data: false,
            ..
        }
    ));
    assert_eq!(
        w.requests.record(&id).unwrap().outcome.as_deref(),
        Some("no_data")
    );
}

/// R4.5, R4.1, R2.4 (issue 12, item 1): the erasure of a proven number without a subject
/// deletes the unlinked calls with that number at the provider and here; the subject's
/// call made to the same number and other numbers' calls stay. Until staff prove the
/// number, nothing is done; the other rights have nothing to act on (`no_data`).
/// Before: `no_data`, the calls stayed.
#[tokio::test]
async fn a_proven_phone_without_a_subject_erases_the_unlinked_calls_with_it_only() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let stranger = w.phone_index(STRANGER_PHONE).await;
    w.unlinked_call(STRANGER_PHONE, "call_unlinked").await;
    w.unlinked_call(B_PHONE, "call_of_another_number").await;
    w.call_to(a, stranger, "call_a_to_that_number", "Termin")
        .await;

    // Unproven: the request waits for the staff check and nothing goes.
    let id = w
        .submit(RequestType::Erasure, None, Some(STRANGER_PHONE))
        .await;
    assert_eq!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Skipped
    );
    assert_eq!(w.subjects.call_ids().len(), 3);

    // Other rights: nothing to act on without a lead (three requests a day per number).
    let other = w.phone_only(RequestType::Restriction, STRANGER_PHONE).await;
    assert_eq!(
        w.rights().carry_out(&other).await.unwrap(),
        RightsOutcome::NoData
    );
    assert_eq!(w.subjects.call_ids().len(), 3);

    w.service.verify_identity(&id, "staff").await.unwrap();
    let out = w.rights().carry_out(&id).await.unwrap();
    assert_eq!(
        out,
        RightsOutcome::Erased {
            calls_deleted_at_provider: 1
        }
    );
    assert_eq!(w.provider.deleted(), vec!["call_unlinked".to_owned()]);
    let mut left = w.subjects.call_ids();
    left.sort();
    assert_eq!(
        left,
        vec![
            "call_a_to_that_number".to_owned(),
            "call_of_another_number".to_owned()
        ]
    );
    let record = w.requests.record(&id).unwrap();
    assert_eq!(record.outcome.as_deref(), Some("erased"));
    assert_eq!(record.categories, Some(vec!["call_metadata".to_owned()]));
    assert_eq!(record.lead_id, None);
    assert!(w.leads.lead(&a).is_some(), "the subject is untouched");

    // Again: nothing left to erase.
    let again = w.phone_only(RequestType::Erasure, STRANGER_PHONE).await;
    assert_eq!(
        w.rights().carry_out(&again).await.unwrap(),
        RightsOutcome::NoData
    );
}

/// R4.8, R7.1: an objection puts the subject's number (its blind index) on the
/// do-not-call list with source `objection`, audited once; a later erasure of the subject
/// leaves the entry in place.
#[tokio::test]
async fn an_objection_lists_the_number_and_erasure_keeps_the_listing() {
    let w = world();
    let a = w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let phone = w
        .keys
        .blind_index(
            IdentifierKind::Phone,
            PhoneNumber::parse(A_PHONE).unwrap().expose(),
        )
        .await
        .unwrap();
    assert!(w.dnc.get(phone.as_str()).is_none());

    let id = w.verified(RequestType::Objection, A_EMAIL, None).await;
    assert_eq!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Objected
    );
    let entry = w.dnc.get(phone.as_str()).expect("listed");
    assert!(entry.listed());
    assert_eq!(
        entry.sources.into_iter().collect::<Vec<_>>(),
        [usecases::dnc::DncSource::Objection]
    );
    assert_eq!(entry.listed_at, w.clock.now());
    assert_eq!(w.dnc_audit.actions(), ["dnc.listed_objection"]);

    w.clock.advance(Duration::days(3));
    let id = w.verified(RequestType::Erasure, A_EMAIL, None).await;
    assert!(matches!(
        w.rights().carry_out(&id).await.unwrap(),
        RightsOutcome::Erased { .. }
    ));
    assert!(w.lead_service.read(&a).await.unwrap().is_none());
    let kept = w
        .dnc
        .get(phone.as_str())
        .expect("the listing outlives the erasure");
    assert!(kept.listed());
    assert_eq!(kept.listed_at, w.clock.now() - Duration::days(3));
    assert_eq!(w.dnc.len(), 1);
}

mod erasure_cancel;
// The per-type accountability metrics (`usecases::dsar::figures::committed`), driven
// through the real flows on this module's world.

/// `(metric, RequestType)` of every record with a `RequestType` dimension, in order.
fn typed_metrics(
    capture: &usecases::telemetry::capture::MetricCapture,
) -> Vec<(String, String, f64)> {
    capture
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0] == json!(["RequestType"]))
        .map(|v| {
            let name = v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"]
                .as_str()
                .unwrap()
                .to_owned();
            let value = v[&name].as_f64().unwrap();
            (name, v["RequestType"].as_str().unwrap().to_owned(), value)
        })
        .collect()
}

fn one_metric(name: &str, kind: &str) -> Vec<(String, String, f64)> {
    vec![(name.to_owned(), kind.to_owned(), 1.0)]
}

/// Accountability (Art. 5(2) GDPR): each state change of a request emits
/// exactly one metric record of its kind with the request type as its only dimension
/// (received, verified, extended, failed, completed with lateness and days, denied);
/// a rejected code, a retry and a conflicting commit emit none.
#[tokio::test]
async fn each_state_change_emits_one_metric_record_with_its_request_type() {
    use usecases::dsar::worker::RequestWorker;
    let w = world();
    w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let worker = RequestWorker {
        exporter: w.exporter(),
        rights: w.rights(),
        leads: w.lead_service.clone(),
        dead_letters: None,
    };

    let c = usecases::telemetry::capture::MetricCapture::start();
    let id = w.submit(RequestType::Access, Some(A_EMAIL), None).await;
    assert_eq!(typed_metrics(&c), one_metric("DsarReceived", "access"));
    drop(c);

    let c = usecases::telemetry::capture::MetricCapture::start();
    assert!(w.service.verify(&id, "00000000").await.is_err());
    assert_eq!(typed_metrics(&c), vec![], "a wrong code changes no state");
    w.service.verify(&id, &w.code(A_EMAIL)).await.unwrap();
    assert_eq!(typed_metrics(&c), one_metric("DsarVerified", "access"));
    drop(c);

    let c = usecases::telemetry::capture::MetricCapture::start();
    w.service
        .extend(&id, 1, "Viele Anfragen", "staff")
        .await
        .unwrap();
    assert_eq!(typed_metrics(&c), one_metric("DsarExtended", "access"));
    drop(c);

    let c = usecases::telemetry::capture::MetricCapture::start();
    worker
        .record_failure(&id, "export", usecases::ports::Retry::Permanent)
        .await
        .unwrap();
    assert_eq!(typed_metrics(&c), one_metric("DsarFailed", "access"));
    w.service.retry(&id, "staff").await.unwrap();
    assert_eq!(
        typed_metrics(&c).len(),
        1,
        "a retry is no new state of the count"
    );
    drop(c);

    w.clock.advance(Duration::days(3));
    let c = usecases::telemetry::capture::MetricCapture::start();
    worker.run(&id).await.unwrap();
    assert_eq!(
        typed_metrics(&c),
        vec![
            ("DsarCompleted".to_owned(), "access".to_owned(), 1.0),
            ("DsarCompletedLate".to_owned(), "access".to_owned(), 0.0),
            ("DsarDaysToComplete".to_owned(), "access".to_owned(), 3.0),
        ]
    );
    drop(c);

    let other = w.submit(RequestType::Erasure, Some(B_EMAIL), None).await;
    w.service.verify(&other, &w.code(B_EMAIL)).await.unwrap();
    let c = usecases::telemetry::capture::MetricCapture::start();
    w.service
        .deny(&other, &["Offensichtlich unbegründet".into()], "staff")
        .await
        .unwrap();
    assert_eq!(typed_metrics(&c), one_metric("DsarDenied", "erasure"));
    // A commit on a stale version conflicts: nothing was counted.
    let stale = w.requests.record(&other).unwrap();
    let commit = usecases::dsar::ports::RequestStore::commit(
        &w.requests,
        &stale,
        Some(stale.version - 1),
        vec![],
        "staff",
        "dsar.denied",
        w.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(commit, usecases::dsar::records::Commit::Conflict);
    assert_eq!(typed_metrics(&c).len(), 1);
}

/// A request completed after its due date counts as late, with its days.
#[tokio::test]
async fn a_request_completed_after_its_due_date_counts_as_late() {
    use usecases::dsar::worker::RequestWorker;
    let w = world();
    w.sign_up("Wilhelmine", A_EMAIL, A_PHONE).await;
    let id = w.verified(RequestType::Portability, A_EMAIL, None).await;
    w.clock.advance(Duration::days(40));
    let worker = RequestWorker {
        exporter: w.exporter(),
        rights: w.rights(),
        leads: w.lead_service.clone(),
        dead_letters: None,
    };
    let c = usecases::telemetry::capture::MetricCapture::start();
    worker.run(&id).await.unwrap();
    assert_eq!(c.values("DsarCompletedLate"), vec![1.0]);
    assert_eq!(c.values("DsarDaysToComplete"), vec![40.0]);
}
