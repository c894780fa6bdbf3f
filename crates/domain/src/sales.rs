//! The sales handoff (issue 17): what sales receives of a lead once its call is analysed
//! and settled, and nothing more. The policy names sales as an internal recipient (§6.1)
//! for the first purpose (§4.1: suitable offers after the call); the record is the least
//! data that does that job: name, contact details, the preferred calling window, the
//! agent's summary and the structured analysis fields, the consent state and the call
//! date. Never a transcript, a recording or the raw provider payload.
//!
//! The JSON names are a contract (the sales API, the CRM webhook): don't rename them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::calling_hours::CallWindow;
use crate::LeadId;

/// A lead's follow-up record: sealed under the subject's data key in its partition, one per
/// lead (a later call replaces it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpRecord {
    pub lead_id: LeadId,
    pub first_name: String,
    pub last_name: String,
    /// The email as stored (domain lower-cased).
    pub email: String,
    /// E.164.
    pub phone: String,
    /// The person's preferred calling window from the sign-up, if they gave one.
    pub call_window: Option<FollowUpWindow>,
    /// When the call took place (its end, else its start), RFC 3339 in UTC.
    pub call_date: DateTime<Utc>,
    /// The agent's post-call summary (`call_analysis.call_summary`); empty when none.
    pub summary: String,
    pub analysis: FollowUpAnalysis,
    pub consent: FollowUpConsent,
    /// When the lead became ready for follow-up (the call was analysed and settled).
    pub ready_at: DateTime<Utc>,
    /// When sales marked it done.
    pub done_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for FollowUpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowUpRecord")
            .field("lead_id", &self.lead_id)
            .field("call_date", &self.call_date)
            .field("ready_at", &self.ready_at)
            .field("done_at", &self.done_at)
            .finish_non_exhaustive()
    }
}

/// A calling window as sales reads it: local Berlin times `HH:MM` and day codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpWindow {
    pub from: String,
    pub to: String,
    pub days: Vec<String>,
}

impl From<&CallWindow> for FollowUpWindow {
    fn from(w: &CallWindow) -> Self {
        Self {
            from: w.from().format("%H:%M").to_string(),
            to: w.to().format("%H:%M").to_string(),
            days: w.days().into_iter().map(str::to_owned).collect(),
        }
    }
}

/// The structured fields of the agent's post-call analysis that sales needs: what the
/// person needs and how interested they are (`custom_analysis_data.needs` /
/// `.interest`), and the provider's own verdicts. Everything else the analysis holds
/// (the recording-consent answer, free-form extras) stays out.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FollowUpAnalysis {
    pub needs: Option<String>,
    pub interest: Option<String>,
    /// `call_analysis.user_sentiment` (`Positive`, `Neutral`, …).
    pub user_sentiment: Option<String>,
    /// `call_analysis.call_successful`.
    pub call_successful: Option<bool>,
}

impl std::fmt::Debug for FollowUpAnalysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowUpAnalysis")
            .field("user_sentiment", &self.user_sentiment)
            .field("call_successful", &self.call_successful)
            .finish_non_exhaustive()
    }
}

/// Longest analysis text kept (characters); a longer one is cut.
pub const MAX_ANALYSIS_TEXT: usize = 2000;

impl FollowUpAnalysis {
    /// Takes the fields from the provider's `call_analysis` object; anything of the wrong
    /// type reads as absent.
    pub fn from_call_analysis(analysis: &serde_json::Value) -> Self {
        let custom = analysis.get("custom_analysis_data");
        let text = |v: Option<&serde_json::Value>| {
            v.and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.chars().take(MAX_ANALYSIS_TEXT).collect::<String>())
        };
        Self {
            needs: text(custom.and_then(|c| c.get("needs"))),
            interest: text(custom.and_then(|c| c.get("interest"))),
            user_sentiment: text(analysis.get("user_sentiment")),
            call_successful: analysis
                .get("call_successful")
                .and_then(serde_json::Value::as_bool),
        }
    }

    /// The agent's summary from the same object (`call_summary`), cut like the fields.
    pub fn summary_of(analysis: &serde_json::Value) -> String {
        analysis
            .get("call_summary")
            .and_then(serde_json::Value::as_str)
            .map(|s| s.trim().chars().take(MAX_ANALYSIS_TEXT).collect())
            .unwrap_or_default()
    }
}

/// The consent state sales may rely on: phone contact (sign-up), recording (the call's
/// answer), and the privacy-policy version consented to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpConsent {
    pub contact_by_phone: bool,
    pub recording: bool,
    pub policy_version: String,
}

/// One line of the queue (`GET /v1/sales/follow-ups`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLine {
    pub lead_id: LeadId,
    pub first_name: String,
    pub last_name: String,
    pub call_date: DateTime<Utc>,
    pub interest: Option<String>,
    pub ready_at: DateTime<Utc>,
}

impl std::fmt::Debug for QueueLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueLine")
            .field("lead_id", &self.lead_id)
            .field("ready_at", &self.ready_at)
            .finish_non_exhaustive()
    }
}

impl From<&FollowUpRecord> for QueueLine {
    fn from(r: &FollowUpRecord) -> Self {
        Self {
            lead_id: r.lead_id,
            first_name: r.first_name.clone(),
            last_name: r.last_name.clone(),
            call_date: r.call_date,
            interest: r.analysis.interest.clone(),
            ready_at: r.ready_at,
        }
    }
}

/// The `kind` of the follow-up item in the subject's partition.
pub const FOLLOWUP_KIND: &str = "followup";

/// Associated data of a sealed follow-up record: bound to its subject and purpose.
pub fn followup_aad(lead: &LeadId) -> Vec<u8> {
    format!("polly:lead:{lead}:followup").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The analysis keeps exactly its four fields; the recording-consent answer and any
    /// other extra stay out.
    #[test]
    fn analysis_takes_only_its_fields() {
        let a = FollowUpAnalysis::from_call_analysis(&json!({
            "call_summary": "  Sucht Angebot.  ",
            "user_sentiment": "Positive",
            "call_successful": true,
            "custom_analysis_data": {"needs": "Photovoltaik", "interest": "hoch",
                "recording_consent": true, "secret": "x"}
        }));
        assert_eq!(a.needs.as_deref(), Some("Photovoltaik"));
        assert_eq!(a.interest.as_deref(), Some("hoch"));
        assert_eq!(a.user_sentiment.as_deref(), Some("Positive"));
        assert_eq!(a.call_successful, Some(true));
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            v,
            json!({"needs": "Photovoltaik", "interest": "hoch", "user_sentiment": "Positive", "call_successful": true})
        );
        assert_eq!(
            FollowUpAnalysis::summary_of(&json!({"call_summary": "  Sucht Angebot.  "})),
            "Sucht Angebot."
        );
        let empty =
            FollowUpAnalysis::from_call_analysis(&json!({"custom_analysis_data": {"needs": 5}}));
        assert_eq!(empty, FollowUpAnalysis::default());
    }

    /// The record's JSON carries exactly the contract's names, and `Debug` no personal data.
    #[test]
    fn record_json_names_and_redacted_debug() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let window = CallWindow::parse("10:00", "12:00", Some(&["mon", "fri"])).unwrap();
        let r = FollowUpRecord {
            lead_id: LeadId::new(),
            first_name: "Erika".into(),
            last_name: "Mustermann".into(),
            email: "erika@example.org".into(),
            phone: "+4917012345678".into(),
            call_window: Some((&window).into()),
            call_date: at,
            summary: "Sucht Angebot".into(),
            analysis: FollowUpAnalysis::default(),
            consent: FollowUpConsent {
                contact_by_phone: true,
                recording: false,
                policy_version: "2024-04-08".into(),
            },
            ready_at: at,
            done_at: None,
        };
        let v = serde_json::to_value(&r).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "analysis",
                "call_date",
                "call_window",
                "consent",
                "done_at",
                "email",
                "first_name",
                "last_name",
                "lead_id",
                "phone",
                "ready_at",
                "summary"
            ]
        );
        assert_eq!(
            v["call_window"],
            json!({"from": "10:00", "to": "12:00", "days": ["mon", "fri"]})
        );
        assert_eq!(v["call_date"], "2026-11-30T10:00:00Z");
        let back: FollowUpRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let debug = format!("{r:?} {:?}", QueueLine::from(&r));
        for secret in ["Erika", "Mustermann", "erika@", "+49170", "Sucht"] {
            assert!(!debug.contains(secret), "{secret} in Debug");
        }
    }
}
