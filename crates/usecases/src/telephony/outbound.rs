//! Placing the outbound call for a lead that requested one (R1.5, R2.12), driven by the
//! table's stream through the telephony worker.
//!
//! Never twice: each call request of a lead (its `call_request_count`) gets a marker
//! item; a request whose marker says `placed` is not placed again when the stream
//! redelivers it. The marker says `placing` while the create call is on its way; when its
//! answer is lost (a server error, a dropped connection, a timeout), the provider may
//! have placed the call, so a redelivery that finds `placing` does not call again but
//! marks the request `unconfirmed` (audited as `call.outcome_unknown`). A failure that
//! certainly placed nothing (no connection, 429, 503) takes its attempt back, sets the
//! marker back to `requested` and the stream retries it. Every attempt that may have rung
//! is counted per phone number (blind index) and at most three attempts per number run in
//! 24 hours (R1.6), so the form cannot be used to harass someone else's number.
//!
//! Calling hours (R7.2): a request whose lead may not be called now (outside Mon–Fri
//! 08:00–20:00, Sat 09:00–18:00 Berlin time, on a Sunday or holiday, or outside the
//! person's preferred window, see `domain::calling_hours`) is not placed: its marker says
//! `scheduled` with the next allowed instant, durably in the table (a due index), audited
//! as `call.scheduled`. The dispatcher ([`Outbound::dispatch_due`], driven by a schedule)
//! places each due request through the same [`Outbound::place`], so every check runs
//! again at the slot (erased, restricted or objected, caps, calling hours); the marker's
//! conditional move to `placing` ([`CallRequests::claim_request`]) lets exactly one of two
//! dispatcher runs or a stream redelivery place it.
//!
//! Caps (R7.3), checked when a call would start: 3 attempts per number in any 24 hours,
//! 15 in any 7 days, 30 per lead over its life. A request at a cap is suppressed and
//! audited (`call.suppressed_rate_limit`, `call.suppressed_lead_cap`), not moved on: a
//! number that was tried that often should not be tried again by the machine. An attempt
//! that certainly rang nothing is given back.
//!
//! A number on the do-not-call list (R7.1, `crate::dnc`) is never called: checked before
//! anything is counted or placed, the request suppressed (`call.suppressed_do_not_call`).

use std::sync::Arc;

use chrono::Duration;
use secrecy::SecretString;

use chrono::{DateTime, Utc};
use domain::calling_hours::CallingRules;
use domain::crypto::BlindIndex;
use domain::{Clock, LeadId};

use crate::ports::{CallState, Retry, StoreError};
use crate::signup::{LeadService, ReadError};
use crate::telephony::ports::{
    AuditTrail, CallRequestResult, CallRequests, Claim, OutboundCall, Provider, ProviderError,
    ScheduledRequest,
};

/// Attempts per phone number within [`ATTEMPT_WINDOW`] (R1.6, R7.3).
pub const MAX_ATTEMPTS_PER_NUMBER: usize = 3;
pub const ATTEMPT_WINDOW: Duration = Duration::hours(24);
/// Attempts per phone number within [`ATTEMPT_WEEK`] (R7.3).
pub const MAX_ATTEMPTS_PER_NUMBER_WEEK: usize = 15;
pub const ATTEMPT_WEEK: Duration = Duration::days(7);
/// Attempts per lead over its life (R7.3).
pub const MAX_ATTEMPTS_PER_LEAD: u32 = 30;

/// The provider's bounds for `ring_duration_ms` (Retell: 5 000–300 000).
pub const RING_DURATION_MS_MIN: u32 = 5_000;
pub const RING_DURATION_MS_MAX: u32 = 300_000;
/// How long the phone rings unless configured otherwise (R7.3).
pub const RING_DURATION_MS_DEFAULT: u32 = 30_000;

/// A configured ring time clamped to the provider's bounds.
pub fn ring_duration_ms(configured: Option<u32>) -> u32 {
    configured
        .unwrap_or(RING_DURATION_MS_DEFAULT)
        .clamp(RING_DURATION_MS_MIN, RING_DURATION_MS_MAX)
}

/// Outbound call settings from the configuration.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    pub from_number: String,
    pub agent_id: String,
    pub data_storage_setting: String,
    /// Passed to the provider (see [`ring_duration_ms`]).
    pub ring_duration_ms: u32,
    /// Whose holidays apply (R7.2).
    pub calling_rules: CallingRules,
}

/// A lead's call request as the stream shows it.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub lead_id: LeadId,
    pub request: u32,
    pub phone_index: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    Placed {
        call_id: String,
    },
    AlreadyPlaced,
    /// An earlier attempt's answer was lost; not placed again (see the module doc).
    Unconfirmed,
    RateLimited,
    /// The lead is gone or past retention.
    LeadGone,
    /// The provider refused for good; the lead's call state says `failed`.
    Refused,
    /// The subject restricted processing or objected (R2.10): no call.
    NotPermitted,
    /// Outside the calling hours or the person's window: scheduled for `due_at` (R7.2).
    Scheduled {
        due_at: DateTime<Utc>,
    },
    /// The lead reached its total of attempts (R7.3).
    LeadCapReached,
    /// The number is on the do-not-call list (R7.1): no call.
    DoNotCall,
}

/// Who hands the request to [`Outbound::place`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The table's stream (a new request, a redelivery, a redrive).
    Stream,
    /// The dispatcher, for a request scheduled earlier whose time has come.
    Due,
}

/// What one dispatcher run did (counts only).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DispatchReport {
    pub due: usize,
    pub placed: usize,
    /// Not placed: gone, suppressed, taken by another run, or scheduled again.
    pub not_placed: usize,
    /// Failed with an error; they stay due and the next run tries again.
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("reading the lead failed")]
    Read(#[from] ReadError),
    #[error("provider failed")]
    Provider(#[from] ProviderError),
    #[error("provider key unavailable")]
    Key(#[from] crate::ports::KeyError),
}

impl PlaceError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Store(e) => e.retry,
            Self::Provider(e) => e.retry(),
            Self::Key(e) => e.retry,
            Self::Read(_) => Retry::Transient,
        }
    }
}

/// How long an attempt is kept beyond the longest window it counts in (its TTL).
const ATTEMPT_KEPT: Duration = Duration::days(1);

/// Most due requests one dispatcher run takes on.
pub const DISPATCH_BATCH: usize = 100;

/// How long a call request's marker is kept: as long as the lead's data may be.
const MARKER_KEPT: Duration = Duration::days(3 * 366);

pub struct Outbound {
    lead_store: Arc<dyn crate::ports::LeadStore>,
    requests: Arc<dyn CallRequests>,
    audit: Arc<dyn AuditTrail>,
    leads: LeadService,
    provider: Arc<dyn Provider>,
    clock: Arc<dyn Clock>,
    settings: OutboundSettings,
    /// The do-not-call list (R7.1); every composition root sets it.
    do_not_call: Option<crate::dnc::DoNotCallList>,
}

impl Outbound {
    pub fn new(
        lead_store: Arc<dyn crate::ports::LeadStore>,
        requests: Arc<dyn CallRequests>,
        audit: Arc<dyn AuditTrail>,
        leads: LeadService,
        provider: Arc<dyn Provider>,
        clock: Arc<dyn Clock>,
        settings: OutboundSettings,
    ) -> Self {
        Self {
            lead_store,
            requests,
            audit,
            leads,
            provider,
            clock,
            settings,
            do_not_call: None,
        }
    }

    /// Checks the do-not-call list before every call (R7.1).
    pub fn with_do_not_call(mut self, list: crate::dnc::DoNotCallList) -> Self {
        self.do_not_call = Some(list);
        self
    }

    /// The lead store behind this service.
    pub fn leads(&self) -> &Arc<dyn crate::ports::LeadStore> {
        &self.lead_store
    }

    /// Whether the number reached a cap: 3 in 24 hours or 15 in 7 days (R1.6, R7.3).
    async fn number_capped(&self, phone_index: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        if self
            .requests
            .attempts_since(phone_index, now - ATTEMPT_WINDOW)
            .await?
            >= MAX_ATTEMPTS_PER_NUMBER
        {
            return Ok(true);
        }
        Ok(self
            .requests
            .attempts_since(phone_index, now - ATTEMPT_WEEK)
            .await?
            >= MAX_ATTEMPTS_PER_NUMBER_WEEK)
    }

    /// Counts the attempt; its name (`None`: the subject was erased).
    async fn record_attempt(&self, req: &CallRequest) -> Result<Option<String>, StoreError> {
        let now = self.clock.now();
        self.requests
            .record_attempt(
                &req.phone_index,
                &req.lead_id,
                now,
                now + ATTEMPT_WEEK + ATTEMPT_KEPT,
            )
            .await
    }

    /// Marks the request (and the lead's call state) with `state`, not audited; `false`
    /// when the subject was erased meanwhile (nothing written).
    async fn mark(&self, req: &CallRequest, state: CallState) -> Result<bool, StoreError> {
        let now = self.clock.now();
        self.requests
            .finish_request(&CallRequestResult {
                lead_id: req.lead_id,
                request: req.request,
                state,
                call_id: None,
                at: now,
                marker_until: now + MARKER_KEPT,
            })
            .await
    }

    /// Sets the lead's call state, unless a newer call request replaced this one; marks
    /// the request with its result and audits it.
    async fn finish(
        &self,
        req: &CallRequest,
        state: CallState,
        call_id: Option<&str>,
        action: &str,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let written = self
            .requests
            .finish_request(&CallRequestResult {
                lead_id: req.lead_id,
                request: req.request,
                state,
                call_id: call_id.map(str::to_owned),
                at: now,
                marker_until: now + MARKER_KEPT,
            })
            .await?;
        if !written {
            return Ok(false);
        }
        self.audit
            .record("telephony-worker", action, Some(&req.lead_id), None, now)
            .await?;
        Ok(true)
    }

    /// Places the call for one request the stream delivered, at most once.
    pub async fn place(
        &self,
        req: &CallRequest,
        key: &SecretString,
    ) -> Result<PlaceOutcome, PlaceError> {
        self.place_from(req, key, Trigger::Stream).await
    }

    /// Places the due requests (R7.2): each through [`Outbound::place_from`], so every
    /// check runs again now. One request's failure does not stop the others; it stays
    /// due (or is scheduled again) for the next run.
    #[tracing::instrument(skip_all)]
    pub async fn dispatch_due(&self, key: &SecretString) -> Result<DispatchReport, PlaceError> {
        let due = self
            .requests
            .due_requests(self.clock.now(), DISPATCH_BATCH)
            .await?;
        let mut report = DispatchReport {
            due: due.len(),
            ..DispatchReport::default()
        };
        for d in due {
            let req = CallRequest {
                lead_id: d.lead_id,
                request: d.request,
                phone_index: d.phone_index,
            };
            match self.place_from(&req, key, Trigger::Due).await {
                Ok(PlaceOutcome::Placed { .. }) => report.placed += 1,
                Ok(outcome) => {
                    tracing::info!(lead_id = %req.lead_id, ?outcome, "due request not placed");
                    report.not_placed += 1;
                }
                Err(e) => {
                    tracing::warn!(lead_id = %req.lead_id, error = %e, "due request failed");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Moves the request to the next allowed instant after `now` (R7.2), audited.
    async fn schedule(
        &self,
        req: &CallRequest,
        window: Option<&domain::calling_hours::CallWindow>,
    ) -> Result<PlaceOutcome, PlaceError> {
        let now = self.clock.now();
        let Some(due_at) = self.settings.calling_rules.next_allowed(now, window) else {
            // Past the end of the calendar: nothing sensible to wait for.
            self.finish(req, CallState::Suppressed, None, "call.suppressed_no_slot")
                .await?;
            return Ok(PlaceOutcome::NotPermitted);
        };
        self.schedule_at(req, due_at).await
    }

    async fn schedule_at(
        &self,
        req: &CallRequest,
        due_at: DateTime<Utc>,
    ) -> Result<PlaceOutcome, PlaceError> {
        let now = self.clock.now();
        let written = self
            .requests
            .schedule_request(&ScheduledRequest {
                lead_id: req.lead_id,
                request: req.request,
                phone_index: req.phone_index.clone(),
                due_at,
                at: now,
                marker_until: now + MARKER_KEPT,
            })
            .await?;
        match written {
            Claim::Done => {
                self.audit
                    .record(
                        "telephony-worker",
                        "call.scheduled",
                        Some(&req.lead_id),
                        None,
                        now,
                    )
                    .await?;
                tracing::info!(%due_at, "outside the calling hours; scheduled");
                Ok(PlaceOutcome::Scheduled { due_at })
            }
            Claim::Taken => Ok(PlaceOutcome::AlreadyPlaced),
            Claim::Erased => Ok(PlaceOutcome::LeadGone),
        }
    }

    /// Places the call for one request, at most once, from the stream or the dispatcher.
    #[tracing::instrument(skip_all, fields(lead_id = %req.lead_id, request = req.request))]
    pub async fn place_from(
        &self,
        req: &CallRequest,
        key: &SecretString,
        trigger: Trigger,
    ) -> Result<PlaceOutcome, PlaceError> {
        let due = trigger == Trigger::Due;
        match self
            .requests
            .request_state(&req.lead_id, req.request)
            .await?
        {
            Some(CallState::Placed) => {
                tracing::info!("call already placed for this request");
                return Ok(PlaceOutcome::AlreadyPlaced);
            }
            // The dispatcher only takes scheduled requests; anything else was taken by
            // another run or the stream, or settled meanwhile.
            Some(state) if due && state != CallState::Scheduled => {
                tracing::info!("due request no longer scheduled");
                return Ok(PlaceOutcome::AlreadyPlaced);
            }
            None if due => return Ok(PlaceOutcome::LeadGone),
            Some(CallState::Placing) => {
                self.finish(req, CallState::Unconfirmed, None, "call.outcome_unknown")
                    .await?;
                tracing::warn!("an earlier attempt's answer was lost; not calling again");
                return Ok(PlaceOutcome::Unconfirmed);
            }
            Some(CallState::Unconfirmed) => return Ok(PlaceOutcome::Unconfirmed),
            // The dispatcher owns a scheduled request; a redelivery leaves it waiting.
            Some(CallState::Scheduled) if !due => {
                tracing::info!("request already scheduled");
                return Ok(PlaceOutcome::AlreadyPlaced);
            }
            _ => {}
        }
        // R7.1: a listed number is never called; nothing is counted, nothing placed.
        if let Some(list) = &self.do_not_call {
            if list
                .is_listed(&BlindIndex::from_stored(req.phone_index.clone()))
                .await?
            {
                self.finish(
                    req,
                    CallState::Suppressed,
                    None,
                    "call.suppressed_do_not_call",
                )
                .await?;
                tracing::info!("number on the do-not-call list; no call");
                return Ok(PlaceOutcome::DoNotCall);
            }
        }
        let Some(lead) = self.leads.read(&req.lead_id).await? else {
            if due {
                // Past its retention, not yet swept: out of the due requests.
                self.mark(req, CallState::Suppressed).await?;
            }
            tracing::info!("lead gone; no call");
            return Ok(PlaceOutcome::LeadGone);
        };
        if self.lead_store.erased(&req.lead_id).await? {
            tracing::info!("subject erased; no call");
            return Ok(PlaceOutcome::LeadGone);
        }
        if !lead.stored.may_process() {
            self.finish(
                req,
                CallState::Suppressed,
                None,
                "call.suppressed_restricted",
            )
            .await?;
            tracing::info!("subject restricted or objected; no call");
            return Ok(PlaceOutcome::NotPermitted);
        }
        if due && lead.stored.call_request_count != req.request {
            // A newer request of the lead replaced this one; that one gets the call.
            self.finish(req, CallState::Suppressed, None, "call.superseded")
                .await?;
            return Ok(PlaceOutcome::NotPermitted);
        }
        // R7.2: a call starts only in the calling hours and the person's window.
        let window = lead.stored.call_window.as_ref();
        if !self
            .settings
            .calling_rules
            .allowed(self.clock.now(), window)
        {
            return self.schedule(req, window).await;
        }
        if self.number_capped(&req.phone_index).await? {
            self.finish(
                req,
                CallState::Suppressed,
                None,
                "call.suppressed_rate_limit",
            )
            .await?;
            tracing::warn!("call suppressed: attempt limit per number reached");
            return Ok(PlaceOutcome::RateLimited);
        }
        if self.requests.lead_attempts(&req.lead_id).await? >= MAX_ATTEMPTS_PER_LEAD {
            self.finish(req, CallState::Suppressed, None, "call.suppressed_lead_cap")
                .await?;
            tracing::warn!("call suppressed: attempt limit of the lead reached");
            return Ok(PlaceOutcome::LeadCapReached);
        }
        // Conditional on the tombstone: an erasure since the read leaves no counter.
        let Some(attempt) = self.record_attempt(req).await? else {
            tracing::info!("subject erased; no call");
            return Ok(PlaceOutcome::LeadGone);
        };
        let lead_id = req.lead_id.to_string();
        let call = OutboundCall {
            from_number: &self.settings.from_number,
            to_number: lead.profile.phone.expose(),
            agent_id: &self.settings.agent_id,
            lead_id: &lead_id,
            first_name: lead.profile.first_name.expose(),
            data_storage_setting: &self.settings.data_storage_setting,
            ring_duration_ms: self.settings.ring_duration_ms,
        };
        let now = self.clock.now();
        let claim = self
            .requests
            .claim_request(&CallRequestResult {
                lead_id: req.lead_id,
                request: req.request,
                state: CallState::Placing,
                call_id: None,
                at: now,
                marker_until: now + MARKER_KEPT,
            })
            .await;
        let claim = match claim {
            Ok(claim) => claim,
            Err(e) => {
                // Nothing was placed: the attempt goes back before the error is reported.
                self.requests
                    .release_attempt(&req.phone_index, &attempt, now)
                    .await?;
                return Err(e.into());
            }
        };
        match claim {
            Claim::Done => {}
            Claim::Taken => {
                // Another run took the request between our read and now: it places the
                // call; this attempt never happened.
                self.requests
                    .release_attempt(&req.phone_index, &attempt, now)
                    .await?;
                tracing::info!("request taken by another worker");
                return Ok(PlaceOutcome::AlreadyPlaced);
            }
            Claim::Erased => {
                tracing::info!("subject erased; no call");
                return Ok(PlaceOutcome::LeadGone);
            }
        }
        match self.provider.create_phone_call(key, &call).await {
            Ok(call_id) => {
                // §7a UWG: the consent proof records the call and lives 5 years from this
                // use (R3). A failure here leaves the request `placing`: the redelivery marks
                // it unconfirmed (audited) and never calls a second time.
                self.lead_store
                    .record_consent_use(
                        &req.lead_id,
                        &BlindIndex::from_stored(req.phone_index.clone()),
                        &call_id,
                        self.clock.now(),
                    )
                    .await?;
                let marked = self
                    .finish(req, CallState::Placed, Some(&call_id), "call.placed")
                    .await?;
                if !marked {
                    // Erased while the call was placed: no marker may bring the subject
                    // back, so the provider deletes the call it just created (Art. 19).
                    self.provider.delete_call(key, &call_id).await?;
                    tracing::info!("subject erased while placing; call deleted at the provider");
                    return Ok(PlaceOutcome::LeadGone);
                }
                tracing::info!(call_id = %call_id, "call placed");
                Ok(PlaceOutcome::Placed { call_id })
            }
            Err(e) if e.retry() == Retry::Permanent => {
                self.finish(req, CallState::Failed, None, "call.refused_by_provider")
                    .await?;
                tracing::error!(error = %e, "provider refused the call");
                Ok(PlaceOutcome::Refused)
            }
            Err(e) if !e.may_have_applied() => {
                // Nothing rang: the attempt is taken back before the request is handed
                // back to the stream, so a long outage never uses up the number's limit.
                self.requests
                    .release_attempt(&req.phone_index, &attempt, self.clock.now())
                    .await?;
                self.mark(req, CallState::Requested).await?;
                if due {
                    // No stream record comes back for it: it stays due for the next run.
                    self.schedule_at(req, self.clock.now()).await?;
                }
                tracing::warn!(error = %e, "placing the call failed; it will be retried");
                Err(e.into())
            }
            Err(e) if due => {
                // No redelivery will find the marker `placing`: settle it now.
                self.finish(req, CallState::Unconfirmed, None, "call.outcome_unknown")
                    .await?;
                tracing::warn!(error = %e, "the provider's answer was lost");
                Err(e.into())
            }
            Err(e) => {
                // The marker stays `placing`: the redelivery will not call again.
                tracing::warn!(error = %e, "the provider's answer was lost");
                Err(e.into())
            }
        }
    }
}
