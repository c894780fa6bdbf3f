//! The agent's `record_objection` and `confirm_signup` tool calls (R7.1, R7.4, R4.8).
//!
//! The provider posts a tool call as `{"name", "call", "args"}`, signed like its webhooks
//! (the handler verifies it first). Whom it is about comes from our own records, never
//! from the body: the stored call item (written by the call's `call_started` webhook)
//! names the lead it was linked to and the blind index of the person's number. A tool
//! call for a call we never stored is refused ([`ToolOutcome::UnknownCall`]); one whose
//! `call.metadata.lead_id` names another subject than the stored link is refused
//! ([`ToolOutcome::OtherSubject`]); neither changes anything.
//!
//! - `record_objection` (any object as `args`): the number goes on the do-not-call list
//!   (source `call_objection`), the lead's objection flag is set at once (no calls, no
//!   analytics, R4.8), and an objection request is queued for the DSAR worker so that it
//!   also leaves the analytics files as a DSAR objection does. The answer tells the agent
//!   to end the call ([`OBJECTION_RESULT`]).
//! - `confirm_signup {"confirmed": true}`: the phone opt-in confirmed on the line; the
//!   call item keeps the evidence (time, agent version; the call id is its key).
//! - `confirm_signup {"confirmed": false}` ("I never signed up"): the call is marked so
//!   that no transcript and no recording of it is kept, whichever order its
//!   `call_ended` / `call_analyzed` and the tool call arrive in (the webhook's decision
//!   reads the mark; the store's merge strips them once it is set; the mark strips what
//!   an earlier event stored); the number is listed (`never_signed_up`), and an erasure
//!   request for the number is queued: the DSAR worker erases whoever holds the number
//!   (lead, calls, recordings, transcripts; the calls deleted at the provider through the
//!   outbox, R2.9), or, without a subject, the unlinked calls with that number.
//!
//! Lost tool calls: `call_ended` / `call_analyzed` carry the agent's tool invocations;
//! the webhook applies an objection and a "never signed up" from there too
//! ([`CallTools::apply_from_transcript`], idempotent), so one whose live call was refused
//! (it came before `call_started` was stored) or never arrived still takes effect at the
//! end of the call.
//!
//! Why a queued request and not the erasure here: the telephony webhook's role stays
//! what it was (table Get/Put/Update, transcript objects, the blind-index MAC). It gets
//! no `DeleteItem`, no key shredding, no bucket-wide deletion and no provider deletion;
//! the erasure runs in the DSAR worker under its own role, with its audit and request
//! record, exactly as a subject's own request. The request binds by the number's blind
//! index as a staff-checked identity does: the provider reached the person on that
//! number, which is the same proof. An insider with the webhook's role could queue such
//! requests; they can already write any table item, and each request is a visible record
//! (`dsar.system_erasure_requested`) in the staff list.
//!
//! Fresh consent from the number (R7.1): only `confirm_signup {"confirmed": true}` in an
//! INBOUND call, where the stored number is the caller's (`from_number`), lifts a listing
//! (audited, the entry and its sources kept). A sign-up form proves nothing about who
//! holds the number, and an outbound call was placed by us. Limit: caller ID can be
//! spoofed; the provider's network sees the number the carrier delivers. A spoofed call
//! could lift a listing, after which the next sign-up would be called once more and the
//! person could object again; staff can list the number for good. Carrier-verified
//! caller ID (STIR/SHAKEN attestation) is not passed on by the provider today.

use crate::telephony::retell::tools::AgentToolCall;
use domain::ledger::{How, LedgerEvent};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use domain::crypto::BlindIndex;
use domain::dsar::{RequestStatus, RequestType};
use domain::{Clock, LeadId, RequestId};

use crate::dnc::{DncSource, DoNotCallList, LiftReason};
use crate::dsar::ports::RequestStore;
use crate::dsar::records::{new_record, Change, OpenRecord};
use crate::ports::{Objects, Retry, StoreError};
use crate::telephony::ports::AuditTrail;
use crate::telephony::retell::model::{CallEvent, LifecycleEvent};
use crate::telephony::webhook::transcript_key;

/// The tool invocations of a call object's `transcript_with_tool_calls`, in order: name
/// and arguments (a JSON string at the provider; an object is tolerated).
fn invocations(call: &serde_json::Map<String, Value>) -> Vec<(String, Value)> {
    call.get("transcript_with_tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|t| t.get("role").and_then(Value::as_str) == Some("tool_call_invocation"))
        .filter_map(|t| {
            let name = t.get("name")?.as_str()?.to_owned();
            let args = match t.get("arguments")? {
                Value::String(s) => serde_json::from_str(s).ok()?,
                other => other.clone(),
            };
            Some((name, args))
        })
        .collect()
}

/// Name of the agent's objection tool (one name for the agent's configuration and us).
pub const OBJECTION_TOOL: &str = crate::telephony::retell::tools::RECORD_OBJECTION;
/// Name of the agent's sign-up confirmation tool.
pub const CONFIRM_SIGNUP_TOOL: &str = crate::telephony::retell::tools::CONFIRM_SIGNUP;

/// What `record_objection` answers the agent (its language model reads it).
pub const OBJECTION_RESULT: &str = "objection_recorded: end the call politely";
/// What `confirm_signup {"confirmed": true}` answers.
pub const CONFIRMED_RESULT: &str = "signup_confirmed: continue";
/// What `confirm_signup {"confirmed": false}` answers.
pub const DENIED_RESULT: &str =
    "signup_denied: nothing is recorded, the number will not be called again; apologise and end the call politely";

/// A stored call as a tool call needs it: our records, not the tool call's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineCall {
    /// The lead the call was linked to, if any.
    pub lead_id: Option<LeadId>,
    /// Blind index of the person's number (the callee, or the caller of an inbound call).
    pub phone_index: Option<BlindIndex>,
    pub inbound: bool,
}

/// The call items' side of the tool calls.
#[async_trait]
pub trait CallLines: Send + Sync {
    /// The stored call; `None` when no event of it was stored.
    async fn line_call(&self, call_id: &str) -> Result<Option<LineCall>, StoreError>;
    /// Marks the call "never signed up": its transcript pointer and recording URL go,
    /// the recording state becomes `not_kept` (unless the worker already owns it), and
    /// later merges keep neither. `false` when it was marked already.
    async fn deny_signup(&self, call_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Keeps the opt-in confirmed on the line: time and agent version on the call item.
    /// `false` when it was kept already.
    async fn confirm_signup(
        &self,
        call_id: &str,
        agent_version: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Sets the lead's objection flag (R4.8); `false` when it was set already or the
    /// lead is gone.
    async fn object(&self, lead: &LeadId, at: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// What the tool call's body says beside its name and arguments (untrusted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallFacts {
    /// `call.metadata.lead_id` as sent (compared with our link, never used to find one).
    pub named_lead: Option<String>,
    /// `call.agent_version` (a short label).
    pub agent_version: Option<String>,
}

impl ToolCallFacts {
    /// Reads the facts from a verified tool-call body.
    pub fn of(body: &[u8]) -> Self {
        let Ok(root) = serde_json::from_slice::<Value>(body) else {
            return Self::default();
        };
        let call = root.get("call");
        let named_lead = call
            .and_then(|c| c.get("metadata"))
            .and_then(|m| m.get("lead_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let agent_version = call
            .and_then(|c| c.get("agent_version"))
            .and_then(|v| match v {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .filter(|s| s.len() <= 32 && s.bytes().all(|b| b.is_ascii_graphic()));
        Self {
            named_lead,
            agent_version,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolOutcome {
    /// Applied (or applied before: a replay); the text for the agent.
    Done(&'static str),
    /// No stored call with that id (or none with the person's number).
    UnknownCall,
    /// The body names another subject than the call's stored link.
    OtherSubject,
    /// The arguments are not what the tool takes.
    BadArguments,
}

#[derive(Debug, thiserror::Error)]
#[error("store failed")]
pub struct ToolError(#[from] pub StoreError);

impl ToolError {
    pub fn retry(&self) -> Retry {
        self.0.retry
    }
}

/// The tool calls over the call items, the do-not-call list and the request store.
pub struct CallTools {
    pub lines: Arc<dyn CallLines>,
    pub do_not_call: DoNotCallList,
    /// Where the system's objection and erasure requests go (the DSAR worker carries
    /// them out).
    pub requests: Arc<dyn RequestStore>,
    /// The recordings bucket (sealed transcripts live there).
    pub transcripts: Arc<dyn Objects>,
    pub audit: Arc<dyn AuditTrail>,
    pub clock: Arc<dyn Clock>,
    /// The consent ledger (R7.6): listings, lifts and opt-ins confirmed on the line are
    /// appended before they are applied, so a failed append fails the tool call (retried).
    pub ledger: Option<Arc<crate::ledger::ConsentLedger>>,
}

const ACTOR: &str = "telephony";

impl CallTools {
    /// Our record of the call, if the body's subject (if named) is the call's.
    async fn resolve(
        &self,
        call_id: &str,
        facts: &ToolCallFacts,
    ) -> Result<Result<(LineCall, BlindIndex), ToolOutcome>, ToolError> {
        let Some(call) = self.lines.line_call(call_id).await? else {
            tracing::info!("tool call for an unknown call refused");
            return Ok(Err(ToolOutcome::UnknownCall));
        };
        if let Some(named) = &facts.named_lead {
            if call.lead_id.map(|l| l.to_string()).as_deref() != Some(named.as_str()) {
                tracing::warn!("tool call naming another subject than the call refused");
                return Ok(Err(ToolOutcome::OtherSubject));
            }
        }
        let Some(phone) = call.phone_index.clone() else {
            tracing::info!("tool call for a call without a number refused");
            return Ok(Err(ToolOutcome::UnknownCall));
        };
        Ok(Ok((call, phone)))
    }

    /// `record_objection`: see the module docs.
    #[tracing::instrument(skip_all, fields(call_id = %call_id))]
    pub async fn record_objection(
        &self,
        call_id: &str,
        facts: &ToolCallFacts,
        args: &Value,
    ) -> Result<ToolOutcome, ToolError> {
        // The parser `make agent` checks the tool's schema against (R7.4).
        if !matches!(
            AgentToolCall::parse(OBJECTION_TOOL, args),
            Ok(AgentToolCall::RecordObjection { .. })
        ) {
            return Ok(ToolOutcome::BadArguments);
        }
        let (call, phone) = match self.resolve(call_id, facts).await? {
            Ok(found) => found,
            Err(refused) => return Ok(refused),
        };
        let now = self.clock.now();
        let mut changed = self.list(&phone, DncSource::CallObjection).await?;
        if let Some(lead) = &call.lead_id {
            if self.lines.object(lead, now).await? {
                changed = true;
                // The objection as R4.8 carries it out, by the DSAR worker: the flag again
                // (idempotent), the analytics files, the request record.
                self.queue_request(
                    &phone,
                    RequestType::Objection,
                    "dsar.system_objection_requested",
                )
                .await?;
            }
        }
        if changed {
            self.audit
                .record(ACTOR, "call.objection_recorded", None, Some(call_id), now)
                .await?;
        }
        Ok(ToolOutcome::Done(OBJECTION_RESULT))
    }

    /// `confirm_signup`: see the module docs.
    #[tracing::instrument(skip_all, fields(call_id = %call_id))]
    pub async fn confirm_signup(
        &self,
        call_id: &str,
        facts: &ToolCallFacts,
        args: &Value,
    ) -> Result<ToolOutcome, ToolError> {
        let Ok(AgentToolCall::ConfirmSignup { confirmed }) =
            AgentToolCall::parse(CONFIRM_SIGNUP_TOOL, args)
        else {
            return Ok(ToolOutcome::BadArguments);
        };
        let (call, phone) = match self.resolve(call_id, facts).await? {
            Ok(found) => found,
            Err(refused) => return Ok(refused),
        };
        let now = self.clock.now();
        if confirmed {
            // The phone opt-in confirmed on the line (§7a UWG), in the ledger first.
            self.to_ledger(
                call.lead_id,
                &phone,
                LedgerEvent::OptinConfirmedOnLine {
                    call_id: call_id.to_owned(),
                },
            )
            .await?;
            let kept = self
                .lines
                .confirm_signup(call_id, facts.agent_version.as_deref(), now)
                .await?;
            if kept {
                self.audit
                    .record(
                        ACTOR,
                        "call.signup_confirmed",
                        call.lead_id.as_ref(),
                        Some(call_id),
                        now,
                    )
                    .await?;
            }
            // Fresh consent proven from the number itself: the person called us.
            if call.inbound {
                self.lift(&phone).await?;
            }
            return Ok(ToolOutcome::Done(CONFIRMED_RESULT));
        }
        let newly = self.lines.deny_signup(call_id, now).await?;
        // What an earlier event put in the bucket goes now (the mark removed its pointer).
        if let Some(lead) = &call.lead_id {
            self.transcripts
                .delete_all_versions(&transcript_key(lead, call_id))
                .await?;
        }
        self.list(&phone, DncSource::NeverSignedUp).await?;
        if newly {
            self.queue_request(
                &phone,
                RequestType::Erasure,
                "dsar.system_erasure_requested",
            )
            .await?;
            self.audit
                .record(ACTOR, "call.signup_denied", None, Some(call_id), now)
                .await?;
        }
        Ok(ToolOutcome::Done(DENIED_RESULT))
    }

    /// The backstop (R7.1, R7.4): `call_ended` and `call_analyzed` carry the agent's tool
    /// invocations in `transcript_with_tool_calls`. An objection or a "never signed up"
    /// whose live tool call was lost (refused as unknown because it came before the
    /// call's `call_started` was stored, or never delivered) is applied from there, after
    /// the event was stored. Idempotent: what the live tool call applied changes nothing.
    /// A confirmation (`true`) is taken only live: the transcript is no proof of who
    /// called.
    #[tracing::instrument(skip_all, fields(call_id = %e.call_id))]
    pub async fn apply_from_transcript(&self, e: &CallEvent<'_>) -> Result<(), ToolError> {
        if e.event < LifecycleEvent::CallEnded {
            return Ok(());
        }
        let facts = ToolCallFacts {
            named_lead: e.lead_id.map(|l| l.to_string()),
            agent_version: e.agent_version.clone(),
        };
        for (name, args) in invocations(&e.call) {
            let outcome = match name.as_str() {
                OBJECTION_TOOL => {
                    self.record_objection(e.call_id.as_str(), &facts, &args)
                        .await?
                }
                CONFIRM_SIGNUP_TOOL if args.get("confirmed") == Some(&Value::Bool(false)) => {
                    self.confirm_signup(e.call_id.as_str(), &facts, &args)
                        .await?
                }
                _ => continue,
            };
            if !matches!(outcome, ToolOutcome::Done(_)) {
                tracing::warn!(
                    ?outcome,
                    "a tool invocation of the transcript was not applied"
                );
            }
        }
        Ok(())
    }

    /// The one place a tool call lists a number.
    async fn list(&self, phone: &BlindIndex, source: DncSource) -> Result<bool, StoreError> {
        if !self.do_not_call.is_listed(phone).await? {
            self.to_ledger(None, phone, LedgerEvent::DncListed).await?;
        }
        self.do_not_call.list(phone, source, ACTOR).await
    }

    /// Appends `event` for the number (and the subject, if known) to the consent ledger.
    async fn to_ledger(
        &self,
        subject: Option<LeadId>,
        phone: &BlindIndex,
        event: LedgerEvent,
    ) -> Result<(), StoreError> {
        if let Some(ledger) = &self.ledger {
            ledger
                .append(
                    subject,
                    Some(phone.as_str().to_owned()),
                    self.clock.now(),
                    How::ToolCall,
                    event,
                )
                .await
                .map_err(crate::ledger::LedgerError::into_store)?;
        }
        Ok(())
    }

    /// The one place a tool call lifts a listing.
    async fn lift(&self, phone: &BlindIndex) -> Result<bool, StoreError> {
        if self.do_not_call.is_listed(phone).await? {
            self.to_ledger(None, phone, LedgerEvent::DncLifted).await?;
        }
        self.do_not_call
            .lift(phone, LiftReason::InboundConfirmation, ACTOR)
            .await
    }

    /// Queues a verified request of `kind` for whoever holds the number; the DSAR worker
    /// carries it out (no contact: no mail goes out).
    async fn queue_request(
        &self,
        phone: &BlindIndex,
        kind: RequestType,
        action: &str,
    ) -> Result<RequestId, StoreError> {
        let now = self.clock.now();
        let id = RequestId::new();
        let mut record = new_record(id, kind, RequestStatus::InProgress, now);
        record.subject_phone_bidx = Some(phone.as_str().to_owned());
        // The provider reached the person on this number: the proof a staff identity
        // check gives (see the module docs).
        record.identity_checked = true;
        record.verified_at = Some(now);
        let changes = vec![Change::List(OpenRecord::of(&record))];
        self.requests
            .commit(&record, None, changes, ACTOR, action, now)
            .await?;
        tracing::info!(request_id = %id, "request queued for the DSAR worker");
        Ok(id)
    }
}
