//! The telephony worker, driven by the table's stream (filtered in the template to lead
//! items asking for a call and call items with a recording to copy).
//!
//! Each record is handled on its own; a record that fails with a retryable error is
//! reported as a batch item failure, so Lambda retries from it (and, after the retries
//! the template allows, sends it to the dead-letter queue) while the others are done.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use shared::adapters::secrets::ProviderKeySource;
use shared::domain::LeadId;
use shared::ingest::{Ingest, IngestError, SETTLED_STATES};
use shared::outbound::{CallRequest, DispatchReport, Outbound, PlaceError};
use shared::ports::{KeyError, Retry};

pub struct Worker {
    pub outbound: Outbound,
    pub ingest: Ingest,
    pub provider_keys: ProviderKeySource,
    /// Issue 17: the follow-up record of an analysed, settled call, for sales.
    pub followups: usecases::sales::FollowUpHandoff,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("placing the call failed")]
    Place(#[from] PlaceError),
    #[error("handling the recording failed")]
    Ingest(#[from] IngestError),
    #[error("provider key unavailable")]
    Key(#[from] KeyError),
    #[error("writing the follow-up record failed")]
    Sales(#[from] usecases::sales::SalesError),
}

impl WorkerError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Place(e) => e.retry(),
            Self::Ingest(e) => e.retry(),
            Self::Key(e) => e.retry,
            Self::Sales(e) => e.retry(),
        }
    }
}

type Image = HashMap<String, AttributeValue>;

fn text<'a>(image: &'a Image, name: &str) -> Option<&'a str> {
    image.get(name)?.as_s().ok().map(String::as_str)
}

fn number(image: &Image, name: &str) -> Option<u32> {
    image.get(name)?.as_n().ok()?.parse().ok()
}

/// What a stream record asks the worker to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Work {
    PlaceCall(CallRequestKey),
    /// Copy the call's consented recording.
    IngestRecording(String),
    /// The call is analysed and its recording settled: delete it at the provider.
    DeleteAtProvider(String),
    /// The call ended: its end is the lead's last contact (R2.11).
    RecordContact {
        lead_id: String,
        end_at: String,
    },
    Nothing,
}

#[derive(Debug, PartialEq, Eq)]
pub struct CallRequestKey {
    pub lead_id: String,
    pub request: u32,
    pub phone_index: String,
}

/// Decides from a record's images; pure, so the stream filter's logic is tested directly.
pub fn work_for(event_name: &str, new: &Image, old: &Image) -> Work {
    if event_name == "REMOVE" {
        return Work::Nothing;
    }
    if text(new, "kind") == Some("lead") && text(new, "call_state") == Some("requested") {
        let request = number(new, "call_request_count");
        // `make redrive` touches a dead-lettered item (`redriven_at`): the request is
        // delivered again; placing is at most once per request, so this is safe.
        let redriven =
            new.contains_key("redriven_at") && text(old, "redriven_at") != text(new, "redriven_at");
        let is_new_request =
            event_name == "INSERT" || number(old, "call_request_count") != request || redriven;
        if let (true, Some(request), Some(lead), Some(phone)) = (
            is_new_request,
            request,
            text(new, "lead_id"),
            text(new, "phone_bidx"),
        ) {
            return Work::PlaceCall(CallRequestKey {
                lead_id: lead.to_owned(),
                request,
                phone_index: phone.to_owned(),
            });
        }
    }
    if text(new, "kind") == Some("call") {
        let Some(call_id) = text(new, "call_id") else {
            return Work::Nothing;
        };
        let ended_now = text(new, "end_at").is_some() && text(old, "end_at") != text(new, "end_at");
        if let (true, Some(lead), Some(end)) =
            (ended_now, text(new, "lead_id"), text(new, "end_at"))
        {
            return Work::RecordContact {
                lead_id: lead.to_owned(),
                end_at: end.to_owned(),
            };
        }
        let state = text(new, "recording_state");
        if state == Some("pending") {
            return Work::IngestRecording(call_id.to_owned());
        }
        let analysed = new
            .get("events")
            .and_then(|v| v.as_ss().ok())
            .is_some_and(|e| e.iter().any(|x| x == "call_analyzed"));
        if analysed
            && state.is_some_and(|st| SETTLED_STATES.contains(&st))
            && !new.contains_key("provider_deleted_at")
            // Handed to the outbox (R2.9): its drain deletes and marks the call.
            && !new.contains_key("provider_deletion_queued_at")
        {
            return Work::DeleteAtProvider(call_id.to_owned());
        }
    }
    Work::Nothing
}

async fn process(worker: &Worker, record: EventRecord) -> Result<(), WorkerError> {
    let new: Image = record.change.new_image.into();
    let old: Image = record.change.old_image.into();
    match work_for(&record.event_name, &new, &old) {
        Work::PlaceCall(key) => {
            let Ok(lead_id) = LeadId::parse(&key.lead_id) else {
                tracing::error!("stream record with a malformed lead id skipped");
                return Ok(());
            };
            let keys = worker.provider_keys.keys().await?;
            let request = CallRequest {
                lead_id,
                request: key.request,
                phone_index: key.phone_index,
            };
            let outcome = worker.outbound.place(&request, &keys.current).await?;
            tracing::info!(?outcome, "call request handled");
            Ok(())
        }
        Work::IngestRecording(call_id) => {
            let outcome = worker.ingest.ingest(&call_id).await?;
            tracing::info!(?outcome, "recording handled");
            Ok(())
        }
        Work::DeleteAtProvider(call_id) => settled(worker, &call_id).await,
        Work::RecordContact { lead_id, end_at } => {
            let (Ok(lead), Ok(end)) = (
                LeadId::parse(&lead_id),
                chrono::DateTime::parse_from_rfc3339(&end_at),
            ) else {
                return Ok(());
            };
            worker
                .ingest
                .record_contact(&lead, end.with_timezone(&chrono::Utc))
                .await?;
            // The same record may also settle the recording; handle it in this pass.
            process_call_state(worker, &new).await
        }
        Work::Nothing => Ok(()),
    }
}

/// The recording and provider steps of a call record (after any contact update).
async fn process_call_state(worker: &Worker, new: &Image) -> Result<(), WorkerError> {
    let mut without_end = new.clone();
    without_end.remove("end_at");
    match work_for("MODIFY", &without_end, &Image::new()) {
        Work::IngestRecording(call_id) => {
            worker.ingest.ingest(&call_id).await?;
        }
        Work::DeleteAtProvider(call_id) => settled(worker, &call_id).await?,
        _ => {}
    }
    Ok(())
}

/// The call is analysed and its recording settled (the worker's final state of it): the
/// lead's follow-up record is written for sales (issue 17), and the call is deleted at
/// the provider (R2.9). The deletion runs whatever the handoff did, so a record that
/// cannot be built never keeps the call at the provider; a redelivery (the deletion's
/// retry) finds the record written and leaves it.
async fn settled(worker: &Worker, call_id: &str) -> Result<(), WorkerError> {
    let handoff = worker.followups.handoff(call_id).await;
    match &handoff {
        Ok(outcome) => tracing::info!(?outcome, "follow-up handoff"),
        Err(e) => tracing::error!(error = %e, "follow-up handoff failed"),
    }
    let keys = worker.provider_keys.keys().await?;
    worker
        .ingest
        .delete_at_provider(call_id, &keys.current)
        .await?;
    handoff?;
    Ok(())
}

/// What the schedule sends the worker (the template's `DispatchDue` event input): place
/// the scheduled call requests that are due (R7.2).
pub const DISPATCH_JOB: &str = "dispatch-due";

/// Whether an invocation's payload is the dispatcher's schedule rather than a stream batch.
pub fn is_dispatch(payload: &serde_json::Value) -> bool {
    payload.get("job").and_then(serde_json::Value::as_str) == Some(DISPATCH_JOB)
}

/// The dispatcher's run: places the due call requests through the same checks as the
/// stream (see `Outbound::dispatch_due`). A failed request stays due for the next run,
/// so the run itself fails only when the due requests cannot be read at all.
#[tracing::instrument(name = "call_dispatcher", skip_all)]
pub async fn dispatch(worker: &Worker) -> Result<DispatchReport, WorkerError> {
    let keys = worker.provider_keys.keys().await?;
    let report = worker.outbound.dispatch_due(&keys.current).await?;
    tracing::info!(
        due = report.due,
        placed = report.placed,
        not_placed = report.not_placed,
        failed = report.failed,
        "due call requests handled"
    );
    Ok(report)
}

/// Handles one batch; failed records are reported for retry.
#[tracing::instrument(name = "telephony_worker", skip_all, fields(records = event.records.len()))]
pub async fn handle(worker: &Worker, event: Event) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in event.records {
        let id = record.change.sequence_number.clone().unwrap_or_default();
        if let Err(e) = process(worker, record).await {
            let retry = e.retry();
            tracing::error!(error = %e, ?retry, "stream record failed");
            // Permanent failures were recorded on the lead; only retryable ones come back.
            if retry == Retry::Transient {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(id);
                response.batch_item_failures.push(failure);
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(pairs: &[(&str, AttributeValue)]) -> Image {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn lead(state: &str, count: u32) -> Image {
        img(&[
            ("kind", AttributeValue::S("lead".into())),
            (
                "lead_id",
                AttributeValue::S("01a2235f-2d5a-7731-9aab-eea22f1bd4c3".into()),
            ),
            ("phone_bidx", AttributeValue::S("ab".into())),
            ("call_state", AttributeValue::S(state.into())),
            ("call_request_count", AttributeValue::N(count.to_string())),
        ])
    }

    /// R1.5: a new lead (INSERT) or a new call request (its count moved) asks for a call.
    #[test]
    fn a_new_lead_or_a_new_request_places_a_call() {
        assert!(
            matches!(work_for("INSERT", &lead("requested", 1), &Image::new()), Work::PlaceCall(k) if k.request == 1)
        );
        assert!(
            matches!(work_for("MODIFY", &lead("requested", 2), &lead("placed", 1)), Work::PlaceCall(k) if k.request == 2)
        );
    }

    /// R1.5: a call request dead-lettered and touched by `make redrive` is delivered again.
    #[test]
    fn a_redriven_call_request_is_placed_again() {
        let mut touched = lead("requested", 1);
        touched.insert(
            "redriven_at".into(),
            AttributeValue::S("2026-11-30T08:00:00.000Z".into()),
        );
        assert!(
            matches!(work_for("MODIFY", &touched, &lead("requested", 1)), Work::PlaceCall(k) if k.request == 1)
        );
        assert_eq!(
            work_for("MODIFY", &touched, &touched),
            Work::Nothing,
            "an unrelated change after the touch places nothing"
        );
    }

    /// R1.5: a change that is no new request (contact moved, the worker's own update, a
    /// removal, a call item) asks for no call.
    #[test]
    fn other_changes_place_nothing() {
        // Contact time moved, request unchanged.
        assert_eq!(
            work_for("MODIFY", &lead("requested", 1), &lead("requested", 1)),
            Work::Nothing
        );
        assert_eq!(
            work_for("MODIFY", &lead("placed", 1), &lead("requested", 1)),
            Work::Nothing
        );
        assert_eq!(
            work_for("REMOVE", &Image::new(), &lead("requested", 1)),
            Work::Nothing
        );
        let call = img(&[("kind", AttributeValue::S("call".into()))]);
        assert_eq!(work_for("INSERT", &call, &Image::new()), Work::Nothing);
    }
}
