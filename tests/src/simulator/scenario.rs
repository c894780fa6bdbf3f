//! Scripted calls and the webhook payloads RetellAI would send for them.
//!
//! A [`CallScript`] is one call played out by a [`Scenario`] with the caller's
//! [`CallParams`] (numbers, agent, lead metadata, clock). It yields the call object at
//! each stage and the `call_started` / `call_ended` / `call_analyzed` events: `call_ended`
//! carries the whole call without `call_analysis`, `call_analyzed` adds it, and calls that
//! never connect get no `call_started`. Payloads also carry fields the backend does not
//! know, as the provider adds fields without notice.
//!
//! All personal data in the texts is made up (Wilhelmine Zwetschgenbaum, plum cake).

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use super::webhook::WebhookEvent;

/// Event names of the default voice-call webhooks.
pub const CALL_STARTED: &str = "call_started";
/// See [`CALL_STARTED`].
pub const CALL_ENDED: &str = "call_ended";
/// See [`CALL_STARTED`].
pub const CALL_ANALYZED: &str = "call_analyzed";

/// The opening that discloses the AI and the recording, then asks for consent.
pub const OPENING_WITH_DISCLOSURE: &str = "Hallo, hier ist Polly, eine digitale Assistentin mit künstlicher Intelligenz (KI). Dieses Gespräch wird aufgezeichnet. Sind Sie damit einverstanden?";
/// An opening that discloses neither the AI nor the recording but still asks "agreed?".
pub const OPENING_WITHOUT_DISCLOSURE: &str =
    "Hallo, hier ist Polly von der Beispiel GmbH. Ich hätte ein paar kurze Fragen. Sind Sie damit einverstanden?";
/// An opening that discloses the AI but neither mentions recording nor asks for consent.
pub const OPENING_NO_CONSENT_QUESTION: &str =
    "Hallo, hier ist Polly, eine digitale Assistentin mit künstlicher Intelligenz (KI).";
/// The user's yes.
pub const USER_YES: &str = "Ja, das ist in Ordnung.";
/// The user's no.
pub const USER_NO: &str = "Nein, das möchte ich nicht.";
/// Name of the agent's consent tool.
pub const CONSENT_TOOL: &str = "record_consent";
/// Name of the agent's objection tool (R7.1).
pub const OBJECTION_TOOL: &str = "record_objection";
/// Name of the agent's sign-up confirmation tool (R7.4).
pub const CONFIRM_SIGNUP_TOOL: &str = "confirm_signup";
/// What the backend answers `record_objection`.
pub const OBJECTION_TOOL_RESULT: &str = "objection_recorded: end the call politely";
/// The agent's sign-up question.
pub const SIGNUP_QUESTION: &str =
    "Sie hatten sich auf unserer Website angemeldet — ist das richtig?";
/// The person objects to further calls.
pub const USER_OBJECTION: &str = "Bitte rufen Sie mich nicht mehr an.";
/// The person never signed up.
pub const USER_NEVER_SIGNED_UP: &str = "Nein, ich habe mich nirgends angemeldet.";

/// Fictional first name used when the dynamic variables carry none.
pub const FAKE_FIRST_NAME: &str = "Wilhelmine";
/// Fictional last name used when the dynamic variables carry none.
pub const FAKE_LAST_NAME: &str = "Zwetschgenbaum";
/// Fictional caller-id of the agent's line.
pub const FAKE_FROM_NUMBER: &str = "+493012345678";
/// Fictional number of the lead.
pub const FAKE_TO_NUMBER: &str = "+491709876543";

/// How a scripted call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Disclosure, "yes", `record_consent {"granted": true}`, analysis says consent.
    ConsentYes,
    /// Disclosure, "no", `record_consent {"granted": false}`, analysis says no consent.
    ConsentNo,
    /// AI disclosure only; no consent question, tool call or consent in the analysis.
    ConsentNeverAsked,
    /// Disclosure and "yes", but no tool call: consent only in `custom_analysis_data`.
    ConsentOnlyInAnalysis,
    /// Opening without the AI/recording sentences, yet a `record_consent` with `true`.
    DisclosureMissing,
    /// Nobody answers: `not_connected`, no start, transcript or recording, no `call_started`.
    DialNoAnswer,
    /// Consent yes, then "no more calls, please": `record_objection` (R7.1).
    Objection,
    /// Consent yes, then "I never signed up": `confirm_signup {"confirmed": false}` (R7.4).
    NeverSignedUp,
    /// Consent yes, then this many minutes of conversation with per-word timings.
    LongCall {
        /// Length of the conversation after the consent exchange.
        minutes: u32,
    },
}

impl Scenario {
    /// Names accepted by [`Scenario::from_str`] (`long-call` takes an optional `-<minutes>`).
    pub const NAMES: &'static [&'static str] = &[
        "consent-yes",
        "consent-no",
        "consent-never-asked",
        "consent-only-in-analysis",
        "disclosure-missing",
        "dial-no-answer",
        "objection",
        "never-signed-up",
        "long-call[-MINUTES]",
    ];

    /// Whether the callee picks up.
    pub fn connects(&self) -> bool {
        !matches!(self, Scenario::DialNoAnswer)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::ConsentYes => f.write_str("consent-yes"),
            Scenario::ConsentNo => f.write_str("consent-no"),
            Scenario::ConsentNeverAsked => f.write_str("consent-never-asked"),
            Scenario::ConsentOnlyInAnalysis => f.write_str("consent-only-in-analysis"),
            Scenario::DisclosureMissing => f.write_str("disclosure-missing"),
            Scenario::DialNoAnswer => f.write_str("dial-no-answer"),
            Scenario::Objection => f.write_str("objection"),
            Scenario::NeverSignedUp => f.write_str("never-signed-up"),
            Scenario::LongCall { minutes } => write!(f, "long-call-{minutes}"),
        }
    }
}

impl FromStr for Scenario {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "consent-yes" => Scenario::ConsentYes,
            "consent-no" => Scenario::ConsentNo,
            "consent-never-asked" => Scenario::ConsentNeverAsked,
            "consent-only-in-analysis" => Scenario::ConsentOnlyInAnalysis,
            "disclosure-missing" => Scenario::DisclosureMissing,
            "dial-no-answer" => Scenario::DialNoAnswer,
            "objection" => Scenario::Objection,
            "never-signed-up" => Scenario::NeverSignedUp,
            "long-call" => Scenario::LongCall { minutes: 60 },
            other => match other
                .strip_prefix("long-call-")
                .and_then(|m| m.parse().ok())
            {
                Some(minutes) => Scenario::LongCall { minutes },
                None => bail!(
                    "unknown scenario; expected one of {}",
                    Scenario::NAMES.join(", ")
                ),
            },
        })
    }
}

/// What the recording URLs of a call serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingContent {
    /// Pattern WAVs the length of the call, mono and stereo (see
    /// [`super::recordings::PatternWav`]).
    Wav,
    /// The same in another header layout.
    WavLayout(super::recordings::WavLayout),
    /// Deterministic bytes of this length (see [`super::recordings::synthetic_fill`]).
    Synthetic(u64),
}

/// Everything about a call that the caller decides; the scenario decides the rest.
#[derive(Clone)]
pub struct CallParams {
    /// `call_<32 hex>`.
    pub call_id: String,
    /// Agent of the call.
    pub agent_id: String,
    /// Agent version of the call.
    pub agent_version: u64,
    /// Caller id (E.164).
    pub from_number: String,
    /// Callee (E.164).
    pub to_number: String,
    /// Our metadata, echoed by the provider (e.g. `{"lead_id": "…"}`); `Null` leaves it out.
    pub metadata: Value,
    /// `retell_llm_dynamic_variables`; `Null` leaves them out.
    pub dynamic_variables: Value,
    /// When the callee picked up (ms since epoch); for unanswered calls, when dialling began.
    pub start_ms: u64,
    /// `everything` | `everything_except_pii` | `basic_attributes_only`.
    pub data_storage_setting: String,
    /// Whether recording URLs look like signed URLs.
    pub opt_in_signed_url: bool,
    /// What the recording URLs serve.
    pub recording: RecordingContent,
    /// Base URL of the simulator that serves the recordings (`http://127.0.0.1:port`).
    pub base_url: String,
}

/// Ids and sizes only: numbers, metadata and variables are personal data.
impl fmt::Debug for CallParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallParams")
            .field("call_id", &self.call_id)
            .field("agent_id", &self.agent_id)
            .field("start_ms", &self.start_ms)
            .field("recording", &self.recording)
            .finish_non_exhaustive()
    }
}

/// A fresh `call_<32 hex>` id.
pub fn new_call_id() -> String {
    format!("call_{}", uuid::Uuid::now_v7().simple())
}

impl CallParams {
    /// Fictional numbers, agent `agent_sim`, version 1, metadata `{"lead_id": lead_id}`.
    pub fn new(base_url: &str, lead_id: &str, start_ms: u64) -> Self {
        Self {
            call_id: new_call_id(),
            agent_id: "agent_00000000000000000000000000sim".to_owned(),
            agent_version: 1,
            from_number: FAKE_FROM_NUMBER.to_owned(),
            to_number: FAKE_TO_NUMBER.to_owned(),
            metadata: json!({ "lead_id": lead_id }),
            dynamic_variables: json!({
                "first_name": FAKE_FIRST_NAME,
                "last_name": FAKE_LAST_NAME,
            }),
            start_ms,
            data_storage_setting: "everything".to_owned(),
            opt_in_signed_url: false,
            recording: RecordingContent::Wav,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// Parameters of a call created through the REST API (its call object).
    pub fn from_call(base_url: &str, call: &Value, start_ms: u64) -> Self {
        let text = |key: &str, default: &str| {
            call.get(key)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_owned()
        };
        let mut params = Self::new(base_url, "", start_ms);
        params.call_id = text("call_id", &params.call_id);
        params.agent_id = text("agent_id", &params.agent_id);
        params.agent_version = call
            .get("agent_version")
            .and_then(Value::as_u64)
            .unwrap_or(params.agent_version);
        params.from_number = text("from_number", &params.from_number);
        params.to_number = text("to_number", &params.to_number);
        params.metadata = call.get("metadata").cloned().unwrap_or(Value::Null);
        params.dynamic_variables = call
            .get("retell_llm_dynamic_variables")
            .cloned()
            .unwrap_or(Value::Null);
        params.data_storage_setting = text("data_storage_setting", &params.data_storage_setting);
        params.opt_in_signed_url = call
            .get("opt_in_signed_url")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        params
    }

    /// Sets the lead id in the metadata (keeping other metadata keys).
    pub fn with_lead_id(mut self, lead_id: &str) -> Self {
        if !self.metadata.is_object() {
            self.metadata = json!({});
        }
        self.metadata["lead_id"] = json!(lead_id);
        self
    }

    fn display_name(&self) -> String {
        let var = |k: &str| {
            self.dynamic_variables
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        match (var("first_name"), var("last_name")) {
            (Some(first), Some(last)) => format!("{first} {last}"),
            (None, Some(last)) => format!("Frau {last}"),
            (Some(first), None) => first.to_owned(),
            (None, None) => format!("Frau {FAKE_LAST_NAME}"),
        }
    }

    fn url(&self, path: &str) -> String {
        let url = format!("{}/recordings/{}/{path}", self.base_url, self.call_id);
        if self.opt_in_signed_url {
            // Looks like a signed URL; the simulator ignores the query.
            let expires = (self.start_ms / 1000) + 86_400;
            format!("{url}?Expires={expires}&Signature=c2ltdWxhdGVk&Key-Pair-Id=SIMULATOR")
        } else {
            url
        }
    }
}

/// Who says a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Agent,
    User,
}

/// One entry of `transcript_with_tool_calls`.
#[derive(Debug, Clone)]
enum Entry {
    Turn {
        role: Role,
        content: String,
        /// Seconds since the call started, per word: (word, start, end).
        words: Vec<(String, f64, f64)>,
    },
    ToolInvocation {
        id: String,
        name: String,
        arguments: String,
    },
    ToolResult {
        id: String,
        content: String,
    },
}

/// One call played out: its call objects and webhook events.
#[derive(Clone)]
pub struct CallScript {
    /// How the call went.
    pub scenario: Scenario,
    /// The caller's parameters.
    pub params: CallParams,
    entries: Vec<Entry>,
    duration_ms: u64,
}

impl fmt::Debug for CallScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallScript")
            .field("scenario", &self.scenario)
            .field("params", &self.params)
            .field("entries", &self.entries.len())
            .field("duration_ms", &self.duration_ms)
            .finish()
    }
}

/// Speaks turns one after another, giving every word a start and end time.
struct Speaker {
    t: f64,
    entries: Vec<Entry>,
    tool_calls: u32,
}

impl Speaker {
    fn new() -> Self {
        Self {
            t: 0.8,
            entries: Vec::new(),
            tool_calls: 0,
        }
    }

    fn say(&mut self, role: Role, content: &str) {
        let mut words = Vec::new();
        for word in content.split_whitespace() {
            // About 150 words a minute, a usual pace for a phone conversation.
            let length = 0.09 + 0.04 * word.chars().count() as f64;
            let start = round3(self.t);
            let end = round3(self.t + length);
            words.push((word.to_owned(), start, end));
            self.t = end + 0.05;
        }
        self.t += 0.5;
        self.entries.push(Entry::Turn {
            role,
            content: content.to_owned(),
            words,
        });
    }

    fn tool(&mut self, call_id: &str, name: &str, arguments: Value, result: &str) {
        self.tool_calls += 1;
        let id = format!(
            "tool_call_{}_{}",
            call_id.trim_start_matches("call_").get(..8).unwrap_or("0"),
            self.tool_calls
        );
        self.entries.push(Entry::ToolInvocation {
            id: id.clone(),
            name: name.to_owned(),
            arguments: arguments.to_string(),
        });
        self.entries.push(Entry::ToolResult {
            id,
            content: result.to_owned(),
        });
        self.t += 0.4;
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A tiny deterministic generator (SplitMix64) for filler conversation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = usize::try_from(self.next() % items.len() as u64).unwrap_or(0);
        items.get(i).copied().unwrap_or("")
    }
}

const AGENT_FILLER: &[&str] = &[
    "Verstehe, das notiere ich mir gern für unser Beratungsgespräch.",
    "Darf ich fragen, wie oft Sie im Monat Pflaumenkuchen backen?",
    "Unser Abo liefert jede Woche frische Zwetschgen direkt vor Ihre Haustür.",
    "Das ist eine sehr gute Frage, die kläre ich gern mit der Kollegin aus dem Vertrieb.",
    "Wir können den Liefertag jederzeit flexibel anpassen, ganz wie es Ihnen passt.",
    "Möchten Sie zusätzlich Informationen zu unseren Streuselvarianten erhalten?",
];
const USER_FILLER: &[&str] = &[
    "Ja, das klingt interessant.",
    "Hm, da muss ich kurz überlegen.",
    "Meistens am Wochenende, manchmal auch unter der Woche.",
    "Wie teuer ist das denn ungefähr im Monat?",
    "Können Sie das bitte noch einmal wiederholen?",
    "Nein, Streusel mag ich eigentlich nicht so gern.",
    "Gut, dann machen wir das so.",
];

/// A plain `Agent: …\nUser: …\n` transcript of at least `target_bytes` bytes (filler talk).
pub fn long_transcript(target_bytes: usize) -> String {
    let mut rng = Rng(42);
    let mut text = String::with_capacity(target_bytes + 256);
    while text.len() < target_bytes {
        text.push_str("Agent: ");
        text.push_str(rng.pick(AGENT_FILLER));
        text.push_str("\nUser: ");
        text.push_str(rng.pick(USER_FILLER));
        text.push('\n');
    }
    text
}

impl CallScript {
    /// Plays `scenario` with `params`.
    pub fn new(scenario: Scenario, params: CallParams) -> Self {
        let mut s = Speaker::new();
        let id = params.call_id.clone();
        let name = params.display_name();
        let consent_result =
            |granted: bool| json!({ "status": "recorded", "granted": granted }).to_string();
        let main_part = |s: &mut Speaker| {
            s.say(
                Role::Agent,
                &format!("Vielen Dank. Spreche ich mit {name}?"),
            );
            s.say(Role::User, "Ja, am Apparat.");
            s.say(
                Role::Agent,
                "Sie hatten sich für einen Rückruf zu unserem Pflaumenkuchen-Abo angemeldet. Wann passt Ihnen ein Beratungstermin?",
            );
            s.say(Role::User, "Am Dienstag nach 17 Uhr, bitte.");
        };
        let closing = |s: &mut Speaker| {
            s.say(
                Role::Agent,
                "Notiert: Dienstag nach 17 Uhr. Vielen Dank und auf Wiederhören!",
            );
            s.say(Role::User, "Tschüss.");
        };
        match scenario {
            Scenario::ConsentYes | Scenario::LongCall { .. } => {
                s.say(Role::Agent, OPENING_WITH_DISCLOSURE);
                s.say(Role::User, USER_YES);
                s.tool(
                    &id,
                    CONSENT_TOOL,
                    json!({ "granted": true }),
                    &consent_result(true),
                );
                main_part(&mut s);
                if let Scenario::LongCall { minutes } = scenario {
                    let until = s.t + f64::from(minutes) * 60.0;
                    let mut rng = Rng(u64::from(minutes) ^ 0x5157);
                    while s.t < until {
                        s.say(Role::Agent, rng.pick(AGENT_FILLER));
                        s.say(Role::User, rng.pick(USER_FILLER));
                    }
                }
                closing(&mut s);
            }
            Scenario::ConsentNo => {
                s.say(Role::Agent, OPENING_WITH_DISCLOSURE);
                s.say(Role::User, USER_NO);
                s.tool(
                    &id,
                    CONSENT_TOOL,
                    json!({ "granted": false }),
                    &consent_result(false),
                );
                s.say(
                    Role::Agent,
                    "Kein Problem. Dann beende ich das Gespräch jetzt. Auf Wiederhören!",
                );
            }
            Scenario::ConsentNeverAsked => {
                s.say(Role::Agent, OPENING_NO_CONSENT_QUESTION);
                main_part(&mut s);
                closing(&mut s);
            }
            Scenario::ConsentOnlyInAnalysis => {
                s.say(Role::Agent, OPENING_WITH_DISCLOSURE);
                s.say(Role::User, USER_YES);
                main_part(&mut s);
                closing(&mut s);
            }
            Scenario::DisclosureMissing => {
                s.say(Role::Agent, OPENING_WITHOUT_DISCLOSURE);
                s.say(Role::User, USER_YES);
                s.tool(
                    &id,
                    CONSENT_TOOL,
                    json!({ "granted": true }),
                    &consent_result(true),
                );
                main_part(&mut s);
                closing(&mut s);
            }
            Scenario::Objection => {
                s.say(Role::Agent, OPENING_WITH_DISCLOSURE);
                s.say(Role::User, USER_YES);
                s.tool(
                    &id,
                    CONSENT_TOOL,
                    json!({ "granted": true }),
                    &consent_result(true),
                );
                main_part(&mut s);
                s.say(Role::User, USER_OBJECTION);
                s.tool(&id, OBJECTION_TOOL, json!({}), OBJECTION_TOOL_RESULT);
                s.say(
                    Role::Agent,
                    "Verstanden, wir rufen Sie nicht mehr an. Auf Wiederhören!",
                );
            }
            Scenario::NeverSignedUp => {
                s.say(Role::Agent, OPENING_WITH_DISCLOSURE);
                s.say(Role::User, USER_YES);
                s.tool(
                    &id,
                    CONSENT_TOOL,
                    json!({ "granted": true }),
                    &consent_result(true),
                );
                s.say(Role::Agent, SIGNUP_QUESTION);
                s.say(Role::User, USER_NEVER_SIGNED_UP);
                s.tool(
                    &id,
                    CONFIRM_SIGNUP_TOOL,
                    json!({ "confirmed": false }),
                    "signup_denied",
                );
                s.say(
                    Role::Agent,
                    "Dann entschuldige ich mich für die Störung. Wir rufen Sie nicht wieder an. Auf Wiederhören!",
                );
            }
            Scenario::DialNoAnswer => {}
        }
        let duration_ms = if scenario.connects() {
            (s.t * 1000.0).round() as u64 + 1200
        } else {
            0
        };
        Self {
            scenario,
            params,
            entries: s.entries,
            duration_ms,
        }
    }

    /// The call id.
    pub fn call_id(&self) -> &str {
        &self.params.call_id
    }

    /// When the call ended (ms since epoch): hang-up, or giving up after ~30 s of ringing.
    pub fn end_ms(&self) -> u64 {
        if self.scenario.connects() {
            self.params.start_ms + self.duration_ms
        } else {
            self.params.start_ms + 30_000
        }
    }

    /// `recording_url` of the call, `None` if it never connected.
    pub fn recording_url(&self) -> Option<String> {
        self.scenario
            .connects()
            .then(|| self.params.url("recording.wav"))
    }

    /// `recording_multi_channel_url` of the call, `None` if it never connected.
    pub fn recording_multi_channel_url(&self) -> Option<String> {
        self.scenario
            .connects()
            .then(|| self.params.url("recording_multichannel.wav"))
    }

    /// The call's length in ms (0 when it never connected).
    pub fn duration_ms(&self) -> u64 {
        self.duration_ms
    }

    /// Where the stored recording must begin (R7.5): the start of the first word of the
    /// person's last turn before the last `record_consent` invocation, in ms rounded down;
    /// `None` without such an invocation saying yes.
    pub fn consent_cut_ms(&self) -> Option<u64> {
        let at = self.entries.iter().rposition(
            |e| matches!(e, Entry::ToolInvocation { name, .. } if name == CONSENT_TOOL),
        )?;
        if self.consent_tool_granted() != Some(true) {
            return None;
        }
        self.entries[..at].iter().rev().find_map(|e| match e {
            Entry::Turn {
                role: Role::User,
                words,
                ..
            } => words
                .first()
                .map(|(_, start, _)| (start * 1000.0).floor() as u64),
            _ => None,
        })
    }

    /// Whether `record_consent` was called, and with what.
    pub fn consent_tool_granted(&self) -> Option<bool> {
        self.entries.iter().find_map(|e| match e {
            Entry::ToolInvocation {
                name, arguments, ..
            } if name == CONSENT_TOOL => serde_json::from_str::<Value>(arguments)
                .ok()
                .and_then(|v| v.get("granted").and_then(Value::as_bool)),
            _ => None,
        })
    }

    /// The agent's tool calls as the provider posts them to our URL during the call, in
    /// order: `{"name", "call" (the ongoing call object), "args"}` (R7.1, R7.4).
    pub fn tool_call_bodies(&self) -> Vec<Vec<u8>> {
        let mut call = self.base("ongoing");
        call.insert("start_timestamp".into(), json!(self.params.start_ms));
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::ToolInvocation {
                    name, arguments, ..
                } => {
                    let args: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
                    serde_json::to_vec(&json!({"name": name, "call": call, "args": args})).ok()
                }
                _ => None,
            })
            .collect()
    }

    /// Fields every stage shares.
    fn base(&self, status: &str) -> Map<String, Value> {
        let p = &self.params;
        let mut call = Map::new();
        call.insert("call_id".into(), json!(p.call_id));
        call.insert("call_type".into(), json!("phone_call"));
        call.insert("agent_id".into(), json!(p.agent_id));
        call.insert("agent_version".into(), json!(p.agent_version));
        call.insert("call_status".into(), json!(status));
        call.insert("direction".into(), json!("outbound"));
        call.insert("from_number".into(), json!(p.from_number));
        call.insert("to_number".into(), json!(p.to_number));
        if !p.metadata.is_null() {
            call.insert("metadata".into(), p.metadata.clone());
        }
        if !p.dynamic_variables.is_null() {
            call.insert(
                "retell_llm_dynamic_variables".into(),
                p.dynamic_variables.clone(),
            );
        }
        call.insert("data_storage_setting".into(), json!(p.data_storage_setting));
        call.insert("opt_in_signed_url".into(), json!(p.opt_in_signed_url));
        // Fields the backend does not know: they must be ignored, not rejected.
        call.insert(
            "telephony_identifier".into(),
            json!({ "twilio_call_sid": format!("CA{}", p.call_id.trim_start_matches("call_")) }),
        );
        call.insert(
            "x_sim_future_field".into(),
            json!({ "note": "providers add fields without notice", "values": [1, 2, 3] }),
        );
        call
    }

    /// The call object of `call_started` (`None` for calls that never connect).
    pub fn started_call(&self) -> Option<Value> {
        if !self.scenario.connects() {
            return None;
        }
        let mut call = self.base("ongoing");
        call.insert("start_timestamp".into(), json!(self.params.start_ms));
        Some(Value::Object(call))
    }

    /// The call object of `call_ended`: everything except `call_analysis`.
    pub fn ended_call(&self) -> Value {
        let p = &self.params;
        if !self.scenario.connects() {
            let mut call = self.base("not_connected");
            call.insert("end_timestamp".into(), json!(self.end_ms()));
            call.insert("disconnection_reason".into(), json!("dial_no_answer"));
            call.insert(
                "call_cost".into(),
                json!({ "product_costs": [], "total_duration_seconds": 0,
                        "total_duration_unit_price": 0, "combined_cost": 0 }),
            );
            call.insert(
                "public_log_url".into(),
                json!(format!("{}/logs/{}/public.log", p.base_url, p.call_id)),
            );
            return Value::Object(call);
        }
        let mut call = self.base("ended");
        call.insert("start_timestamp".into(), json!(p.start_ms));
        call.insert("end_timestamp".into(), json!(self.end_ms()));
        call.insert("duration_ms".into(), json!(self.duration_ms));
        let reason = match self.scenario {
            Scenario::ConsentNo | Scenario::Objection | Scenario::NeverSignedUp => "agent_hangup",
            _ => "user_hangup",
        };
        call.insert("disconnection_reason".into(), json!(reason));
        call.insert("transcript".into(), json!(self.transcript()));
        call.insert("transcript_object".into(), self.transcript_object(false));
        call.insert(
            "transcript_with_tool_calls".into(),
            self.transcript_object(true),
        );
        if let Some(url) = self.recording_url() {
            call.insert("recording_url".into(), json!(url));
        }
        if let Some(url) = self.recording_multi_channel_url() {
            call.insert("recording_multi_channel_url".into(), json!(url));
        }
        call.insert(
            "public_log_url".into(),
            json!(format!("{}/logs/{}/public.log", p.base_url, p.call_id)),
        );
        let seconds = self.duration_ms.div_ceil(1000);
        call.insert(
            "call_cost".into(),
            json!({
                "product_costs": [
                    { "product": "elevenlabs_tts", "unit_price": 0.07, "cost": round3(seconds as f64 * 0.07) },
                    { "product": "gpt_4o_mini", "unit_price": 0.006, "cost": round3(seconds as f64 * 0.006) }
                ],
                "total_duration_seconds": seconds,
                "total_duration_unit_price": 0.076,
                "combined_cost": round3(seconds as f64 * 0.076)
            }),
        );
        let stats = |p50: u64| {
            json!({ "p50": p50, "p90": p50 * 3 / 2, "p95": p50 * 7 / 4, "p99": p50 * 2,
                    "max": p50 * 5 / 2, "min": p50 / 2, "num": 12 })
        };
        call.insert(
            "latency".into(),
            json!({ "e2e": stats(900), "llm": stats(450), "tts": stats(220) }),
        );
        call.insert(
            "llm_token_usage".into(),
            json!({ "values": [812, 1024, 1310], "average": 1048.7, "num_requests": 3 }),
        );
        Value::Object(call)
    }

    /// The call object of `call_analyzed`: the ended call plus `call_analysis`.
    pub fn analyzed_call(&self) -> Value {
        let mut call = self.ended_call();
        call["call_analysis"] = self.call_analysis();
        call
    }

    fn call_analysis(&self) -> Value {
        let consent = match self.scenario {
            Scenario::ConsentYes
            | Scenario::LongCall { .. }
            | Scenario::ConsentOnlyInAnalysis
            | Scenario::DisclosureMissing
            | Scenario::Objection
            | Scenario::NeverSignedUp => Some(true),
            Scenario::ConsentNo => Some(false),
            Scenario::ConsentNeverAsked | Scenario::DialNoAnswer => None,
        };
        let mut custom = Map::new();
        if let Some(consent) = consent {
            custom.insert("recording_consent".into(), json!(consent));
        }
        if matches!(self.scenario, Scenario::ConsentNo | Scenario::DialNoAnswer) {
            custom.insert("appointment_requested".into(), json!(false));
        } else {
            custom.insert("appointment_requested".into(), json!(true));
            // The structured fields sales receives (issue 17).
            custom.insert("needs".into(), json!(SIM_NEEDS));
            custom.insert("interest".into(), json!(SIM_INTEREST));
        }
        let (summary, sentiment, successful) = match self.scenario {
            Scenario::DialNoAnswer => ("Der Anruf wurde nicht angenommen.", "Unknown", false),
            Scenario::ConsentNo => (
                "Die angerufene Person hat der Aufzeichnung widersprochen; das Gespräch wurde beendet.",
                "Neutral",
                false,
            ),
            _ => (
                "Die angerufene Person wünscht einen Beratungstermin am Dienstag nach 17 Uhr.",
                "Positive",
                true,
            ),
        };
        json!({
            "call_summary": summary,
            "user_sentiment": sentiment,
            "in_voicemail": false,
            "call_successful": successful,
            "custom_analysis_data": custom,
        })
    }

    /// The `transcript` string: `Agent: …` / `User: …` lines.
    pub fn transcript(&self) -> String {
        let mut text = String::new();
        for entry in &self.entries {
            if let Entry::Turn { role, content, .. } = entry {
                text.push_str(match role {
                    Role::Agent => "Agent: ",
                    Role::User => "User: ",
                });
                text.push_str(content);
                text.push('\n');
            }
        }
        text
    }

    fn transcript_object(&self, with_tools: bool) -> Value {
        let mut out = Vec::new();
        for entry in &self.entries {
            match entry {
                Entry::Turn {
                    role,
                    content,
                    words,
                } => out.push(json!({
                    "role": match role { Role::Agent => "agent", Role::User => "user" },
                    "content": content,
                    "words": words.iter().map(|(w, start, end)| json!({
                        "word": w, "start": start, "end": end
                    })).collect::<Vec<_>>(),
                })),
                Entry::ToolInvocation {
                    id,
                    name,
                    arguments,
                } if with_tools => out.push(json!({
                    "role": "tool_call_invocation",
                    "tool_call_id": id,
                    "name": name,
                    "arguments": arguments,
                })),
                Entry::ToolResult { id, content } if with_tools => out.push(json!({
                    "role": "tool_call_result",
                    "tool_call_id": id,
                    "content": content,
                })),
                _ => {}
            }
        }
        Value::Array(out)
    }

    /// The call object as `GET /v2/get-call` shows it once everything is done.
    pub fn final_call(&self) -> Value {
        self.analyzed_call()
    }

    /// One event by name (`None` for `call_started` of calls that never connect).
    pub fn event(&self, name: &str) -> Result<Option<WebhookEvent>> {
        let call = match name {
            CALL_STARTED => self.started_call(),
            CALL_ENDED => Some(self.ended_call()),
            CALL_ANALYZED => Some(self.analyzed_call()),
            other => bail!("the simulator does not script {other} events"),
        };
        call.map(|call| WebhookEvent::new(name, &call)).transpose()
    }

    /// The events in the provider's order: `call_started` (if connected), `call_ended`,
    /// `call_analyzed`.
    pub fn events(&self) -> Result<Vec<WebhookEvent>> {
        let mut events = Vec::new();
        for name in [CALL_STARTED, CALL_ENDED, CALL_ANALYZED] {
            if let Some(event) = self.event(name)? {
                events.push(event);
            }
        }
        Ok(events)
    }
}

/// `custom_analysis_data.needs` of an answered call (issue 17: what sales receives).
pub const SIM_NEEDS: &str = "Beratung zu einer Wärmepumpe für ein Einfamilienhaus";
/// `custom_analysis_data.interest` of an answered call.
pub const SIM_INTEREST: &str = "hoch";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_round_trip() {
        for s in [
            Scenario::ConsentYes,
            Scenario::ConsentNo,
            Scenario::ConsentNeverAsked,
            Scenario::ConsentOnlyInAnalysis,
            Scenario::DisclosureMissing,
            Scenario::DialNoAnswer,
            Scenario::Objection,
            Scenario::NeverSignedUp,
            Scenario::LongCall { minutes: 7 },
        ] {
            assert_eq!(s.to_string().parse::<Scenario>().unwrap(), s);
        }
        assert!("consent-maybe".parse::<Scenario>().is_err());
    }

    #[test]
    fn word_timings_increase() {
        let script = CallScript::new(
            Scenario::ConsentYes,
            CallParams::new("http://127.0.0.1:1", "lead-1", 1_700_000_000_000),
        );
        let mut last = 0.0;
        for entry in &script.entries {
            if let Entry::Turn { words, .. } = entry {
                for (_, start, end) in words {
                    assert!(*start >= last && end > start);
                    last = *end;
                }
            }
        }
        assert!(script.duration_ms > (last * 1000.0) as u64);
    }
}
