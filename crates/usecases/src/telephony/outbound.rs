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
//! A number on the do-not-call list (R7.1, `crate::dnc`) is never called: checked before
//! anything is counted or placed, the request suppressed (`call.suppressed_do_not_call`).

use std::sync::Arc;

use chrono::Duration;
use secrecy::SecretString;

use domain::crypto::BlindIndex;
use domain::{Clock, LeadId};

use crate::ports::{CallState, Retry, StoreError};
use crate::signup::{LeadService, ReadError};
use crate::telephony::ports::{
    AuditTrail, CallRequestResult, CallRequests, OutboundCall, Provider, ProviderError,
};

/// Attempts per phone number within [`ATTEMPT_WINDOW`] (R1.6).
pub const MAX_ATTEMPTS_PER_NUMBER: usize = 3;
pub const ATTEMPT_WINDOW: Duration = Duration::hours(24);

/// Outbound call settings from the configuration.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    pub from_number: String,
    pub agent_id: String,
    pub data_storage_setting: String,
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
    /// The number is on the do-not-call list (R7.1): no call.
    DoNotCall,
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

/// How long an attempt is counted (its TTL): the window and a day of slack.
const ATTEMPT_KEPT: Duration = Duration::days(1);

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

    async fn recent_attempts(&self, phone_index: &str) -> Result<usize, StoreError> {
        let since = self.clock.now() - ATTEMPT_WINDOW;
        self.requests.attempts_since(phone_index, since).await
    }

    /// Counts the attempt; its name (`None`: the subject was erased).
    async fn record_attempt(&self, req: &CallRequest) -> Result<Option<String>, StoreError> {
        let now = self.clock.now();
        self.requests
            .record_attempt(
                &req.phone_index,
                &req.lead_id,
                now,
                now + ATTEMPT_WINDOW + ATTEMPT_KEPT,
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

    /// Places the call for one request, at most once.
    #[tracing::instrument(skip_all, fields(lead_id = %req.lead_id, request = req.request))]
    pub async fn place(
        &self,
        req: &CallRequest,
        key: &SecretString,
    ) -> Result<PlaceOutcome, PlaceError> {
        match self
            .requests
            .request_state(&req.lead_id, req.request)
            .await?
        {
            Some(CallState::Placed) => {
                tracing::info!("call already placed for this request");
                return Ok(PlaceOutcome::AlreadyPlaced);
            }
            Some(CallState::Placing) => {
                self.finish(req, CallState::Unconfirmed, None, "call.outcome_unknown")
                    .await?;
                tracing::warn!("an earlier attempt's answer was lost; not calling again");
                return Ok(PlaceOutcome::Unconfirmed);
            }
            Some(CallState::Unconfirmed) => return Ok(PlaceOutcome::Unconfirmed),
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
        if self.recent_attempts(&req.phone_index).await? >= MAX_ATTEMPTS_PER_NUMBER {
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
        let Some(lead) = self.leads.read(&req.lead_id).await? else {
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
        };
        if !self.mark(req, CallState::Placing).await? {
            tracing::info!("subject erased; no call");
            return Ok(PlaceOutcome::LeadGone);
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
                tracing::warn!(error = %e, "placing the call failed; the stream will retry");
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
