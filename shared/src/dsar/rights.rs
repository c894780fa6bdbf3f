//! Carrying out verified requests other than exports (R4.5, R4.7–R4.9): erasure,
//! restriction, objection and consent withdrawal, by the dsar worker.
//!
//! Every step is idempotent, so a retried or repeated request converges: deleting what
//! is gone is a no-op, flags are set, and the request closes once (on its version).
//!
//! Erasure destroys the subject's data key first (crypto-shredding: every copy of its
//! ciphertext, backups included, becomes unreadable), after the provider has deleted
//! the subject's calls (Art. 19). What a live contract needs (§257 HGB, §147 AO) is kept
//! and restricted instead (§35(3) BDSG), and the answer names the hold and its end. What
//! remains of an erasure is the request record: id, dates, categories, no personal data.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::export::{ExportError, Exporter, Resolved};
use super::service::{send_to_contact, subject_link};
use super::{mail, RequestStatus, RequestType};
use crate::adapters::calls::{call_pk, calls_by_phone, CALL_SK};
use crate::adapters::dsar::{
    close, request_pk, Commit, OpenRecord, RequestRecord, Write, EXPORT_SK, OPEN_PK,
};
use crate::adapters::dynamo::{
    batch_delete, failure, lead_pk, query_partition, s, schema, Item, CLAIM_SK, LEAD_SK,
};
use crate::adapters::retell::RetellClient;
use crate::adapters::secrets::ProviderKeySource;
use crate::crypto::BlindIndex;
use crate::domain::registry::CATEGORIES;
use crate::domain::LeadId;
use crate::ports::{LeadStore, StoreError};

/// The provider, to delete the subject's calls there (Art. 19).
pub struct Provider {
    pub client: RetellClient,
    pub keys: ProviderKeySource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RightsOutcome {
    Erased {
        calls_deleted_at_provider: usize,
    },
    /// A live contract bars erasure: the subject is restricted until `until`.
    Held {
        until: DateTime<Utc>,
    },
    Restricted,
    Objected,
    RecordingsDeleted {
        objects: usize,
    },
    /// Corrections applied; each recipient recorded as informed or not holding the data.
    Rectified {
        recipients: std::collections::BTreeMap<String, String>,
    },
    /// The corrections cannot be applied (invalid now, or the new email or phone
    /// belongs to another subject).
    RectificationRefused,
    NoData,
    /// Not an open request this module carries out.
    Skipped,
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// An update of an item that may be gone already: gone is fine, anything else fails.
fn unless_missing(
    operation: &'static str,
    e: aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
) -> Result<(), ExportError> {
    if e.as_service_error()
        .is_some_and(|s| s.is_conditional_check_failed_exception())
    {
        Ok(())
    } else {
        Err(failure(operation, e).into())
    }
}

fn provider_failure(e: crate::adapters::retell::ProviderError) -> ExportError {
    let retry = e.retry();
    tracing::warn!(?retry, "provider call failed");
    ExportError::Store(StoreError {
        operation: "delete_call_at_provider",
        retry,
        source: Some(Box::new(e)),
    })
}

/// What is known about a subject when a request is carried out.
struct Subject {
    id: LeadId,
    partition: Vec<Item>,
    email_index: Option<String>,
    phone_index: Option<String>,
    calls: Vec<String>,
}

impl Exporter {
    /// Carries out an open erasure, restriction, objection or withdrawal request.
    #[tracing::instrument(skip_all, fields(request_id = %id))]
    pub async fn carry_out(
        &self,
        id: &crate::domain::RequestId,
    ) -> Result<RightsOutcome, ExportError> {
        let provider = self.provider.as_ref();
        let now = self.clock.now();
        let Some(record) = self.store.request(id).await? else {
            return Ok(RightsOutcome::Skipped);
        };
        if record.status != RequestStatus::InProgress {
            return Ok(RightsOutcome::Skipped);
        }
        let subject = match self.resolve_subject(&record, now).await? {
            Resolved::Waiting => return Ok(RightsOutcome::Skipped),
            Resolved::NoData => None,
            Resolved::Subject(lead) => self.subject(lead).await?,
        };
        let outcome = match (record.request_type, &subject) {
            (RequestType::Access | RequestType::Portability, _) => {
                return Ok(RightsOutcome::Skipped)
            }
            (_, None) => RightsOutcome::NoData,
            (RequestType::Erasure, Some(s)) => self.erase(s, provider, now).await?,
            (RequestType::Restriction, Some(s)) => {
                self.set_flag(&s.id, "restricted").await?;
                RightsOutcome::Restricted
            }
            (RequestType::Objection, Some(s)) => {
                self.set_flag(&s.id, "objected").await?;
                RightsOutcome::Objected
            }
            (RequestType::WithdrawConsent, Some(s)) => self.withdraw(s).await?,
            (RequestType::Rectification, Some(s)) => {
                self.rectify(&record, s, provider, now).await?
            }
        };
        self.close_request(record, subject.as_ref().map(|s| s.id), &outcome, now)
            .await?;
        tracing::info!(?outcome, "request carried out");
        Ok(outcome)
    }

    async fn subject(&self, id: LeadId) -> Result<Option<Subject>, ExportError> {
        let partition = query_partition(&self.ddb, &self.table, &lead_pk(&id)).await?;
        let Some(profile) = partition.iter().find(|i| text(i, "kind") == Some("lead")) else {
            return Ok(None);
        };
        let email_index = text(profile, schema::EMAIL_INDEX_ATTR).map(str::to_owned);
        let phone_index = text(profile, schema::PHONE_INDEX_ATTR).map(str::to_owned);
        let calls = match &phone_index {
            Some(phone) => calls_by_phone(&self.ddb, &self.table, phone).await?,
            None => Vec::new(),
        };
        Ok(Some(Subject {
            id,
            partition,
            email_index,
            phone_index,
            calls,
        }))
    }

    /// Deletes items in batches of 25, retrying unprocessed parts.
    async fn delete_items(&self, keys: Vec<(String, String)>) -> Result<usize, ExportError> {
        Ok(batch_delete(&self.ddb, &self.table, keys, None).await?)
    }

    async fn erase(
        &self,
        subject: &Subject,
        provider: Option<&Provider>,
        now: DateTime<Utc>,
    ) -> Result<RightsOutcome, ExportError> {
        // Art. 19: the provider deletes the subject's calls first; a failure is retried
        // through the stream before anything here is gone.
        let mut at_provider = 0;
        if let Some(p) = provider {
            let keys = p.keys.keys().await?;
            for call in &subject.calls {
                p.client
                    .delete_call(&keys.current, call)
                    .await
                    .map_err(provider_failure)?;
                at_provider += 1;
            }
        }
        let hold = subject
            .partition
            .iter()
            .filter(|i| text(i, "kind") == Some("contract"))
            .filter_map(|i| text(i, "expires_at"))
            .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > now)
            .max();
        let pk = lead_pk(&subject.id);

        // What goes in both cases: calls, consent proofs, request links, everything
        // under the subject's prefixes and the subject's earlier exports.
        let mut keys = Vec::new();
        for call in &subject.calls {
            keys.push((call_pk(call), CALL_SK.to_owned()));
            keys.push((call_pk(call), "RECORDING".to_owned()));
        }
        let kept_under_hold =
            |i: &Item| text(i, "sk") == Some(LEAD_SK) || text(i, "kind") == Some("contract");
        for i in &subject.partition {
            let sk = text(i, "sk").unwrap_or_default();
            if hold.is_some() && kept_under_hold(i) {
                continue;
            }
            keys.push((pk.clone(), sk.to_owned()));
        }
        let history = self.store.subject_requests(&subject.id).await?;
        for r in &history {
            if self.store.export(&r.request_id).await?.is_some() {
                self.exports
                    .delete_all_versions(&format!("exports/{}.zip", r.request_id))
                    .await?;
                keys.push((request_pk(&r.request_id), EXPORT_SK.to_owned()));
            }
        }
        if let Some(until) = hold {
            self.delete_items(keys).await?;
            for prefix in self.prefixes(&subject.id) {
                self.recordings.delete_all_versions_under(&prefix).await?;
            }
            self.lead_store.hold_until(&subject.id, until, now).await?;
            return Ok(RightsOutcome::Held { until });
        }
        // Crypto-shredding first, then everything else.
        self.lead_store.shred_key(&subject.id).await?;
        for (index, prefix) in [
            (&subject.email_index, "EMAIL#"),
            (&subject.phone_index, "PHONE#"),
        ] {
            if let Some(i) = index {
                keys.push((format!("{prefix}{i}"), CLAIM_SK.to_owned()));
                // The per-identifier request counters (two days at most).
                let counters =
                    query_partition(&self.ddb, &self.table, &format!("DSARLIMIT#{i}")).await?;
                for c in counters {
                    keys.push((
                        format!("DSARLIMIT#{i}"),
                        text(&c, "sk").unwrap_or_default().to_owned(),
                    ));
                }
            }
        }
        self.delete_items(keys).await?;
        for prefix in self.prefixes(&subject.id) {
            self.recordings.delete_all_versions_under(&prefix).await?;
        }
        // Earlier requests of the subject keep their records, no longer linked to it.
        for r in &history {
            self.ddb
                .update_item()
                .table_name(&self.table)
                .key(schema::PK, s(request_pk(&r.request_id)))
                .key(schema::SK, s("REQUEST"))
                .update_expression("REMOVE lead_id")
                .condition_expression("attribute_exists(pk)")
                .send()
                .await
                .map(|_| ())
                .or_else(|e| unless_missing("unlink_request", e))?;
        }
        Ok(RightsOutcome::Erased {
            calls_deleted_at_provider: at_provider,
        })
    }

    /// Rectification (R4.6): the corrections from the request, validated like the
    /// sign-up, re-sealed; changed identifiers move their blind indexes and claims.
    /// The provider (and its sub-processors) got the number and first name for calls;
    /// calls still held there are deleted, so it holds no old value (Art. 19).
    async fn rectify(
        &self,
        record: &RequestRecord,
        subject: &Subject,
        provider: Option<&Provider>,
        now: DateTime<Utc>,
    ) -> Result<RightsOutcome, ExportError> {
        let id = record.request_id;
        let Some(contact) = self.store.contact(&id).await? else {
            return Ok(RightsOutcome::RectificationRefused);
        };
        let contact = super::service::open_contact(self.keys.as_ref(), &id, &contact)
            .await
            .map_err(|_| ExportError::Sealed)?;
        let corrections = contact.corrections.unwrap_or_default();
        let Some((lead, key)) = self.leads.read_with_key(&subject.id).await? else {
            return Ok(RightsOutcome::NoData);
        };
        let Ok((profile, sealed)) = crate::leads::reseal_corrected(&lead, &key, &corrections)
        else {
            return Ok(RightsOutcome::RectificationRefused);
        };
        let new_email = self
            .keys
            .blind_index(
                crate::ports::IdentifierKind::Email,
                &profile.email.lookup_key(),
            )
            .await?;
        let new_phone = self
            .keys
            .blind_index(crate::ports::IdentifierKind::Phone, profile.phone.expose())
            .await?;
        let old_email = subject.email_index.clone().map(BlindIndex::from_stored);
        let old_phone = subject.phone_index.clone().map(BlindIndex::from_stored);
        let applied = self
            .lead_store
            .rectify(
                &subject.id,
                sealed,
                old_email.as_ref().map(|o| (o, &new_email)),
                old_phone.as_ref().map(|o| (o, &new_phone)),
                now,
            )
            .await?;
        if !applied {
            return Ok(RightsOutcome::RectificationRefused);
        }
        let mut provider_holds = false;
        for call in &subject.calls {
            let item = self
                .ddb
                .get_item()
                .table_name(&self.table)
                .key(schema::PK, s(call_pk(call)))
                .key(schema::SK, s(CALL_SK))
                .send()
                .await
                .map_err(|e| failure("get_call", e))?
                .item
                .unwrap_or_default();
            if item.contains_key("provider_deleted_at") {
                continue;
            }
            match provider {
                Some(p) => {
                    let keys = p.keys.keys().await?;
                    p.client
                        .delete_call(&keys.current, call)
                        .await
                        .map_err(provider_failure)?;
                }
                None => provider_holds = true,
            }
        }
        let mut recipients = std::collections::BTreeMap::new();
        recipients.insert(
            crate::domain::registry::AWS.name.to_owned(),
            "updated (our processor; holds only the corrected value)".to_owned(),
        );
        for r in [
            crate::domain::registry::RETELL_AI,
            crate::domain::registry::OPENAI,
            crate::domain::registry::ELEVENLABS,
        ] {
            recipients.insert(
                r.name.to_owned(),
                if provider_holds {
                    "to_inform (calls still held at the provider)".to_owned()
                } else {
                    "not_holding (calls deleted at the provider)".to_owned()
                },
            );
        }
        Ok(RightsOutcome::Rectified { recipients })
    }

    fn prefixes(&self, lead: &LeadId) -> [String; 2] {
        [
            format!("recordings/{lead}/"),
            format!("transcripts/{lead}/"),
        ]
    }

    /// Sets a processing flag on the subject's lead item (R4.7, R4.8, R4.9).
    async fn set_flag(&self, lead: &LeadId, flag: &str) -> Result<(), ExportError> {
        let result = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key(schema::PK, s(lead_pk(lead)))
            .key(schema::SK, s(LEAD_SK))
            .update_expression("SET #f = :t ADD version :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#f", flag)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        result
            .map(|_| ())
            .or_else(|e| unless_missing("set_flag", e))
    }

    /// Consent withdrawn (R4.9): every recording and transcript version goes now; the
    /// flag makes later calls keep none, whatever they say.
    async fn withdraw(&self, subject: &Subject) -> Result<RightsOutcome, ExportError> {
        self.set_flag(&subject.id, "consent_withdrawn").await?;
        let mut objects = 0;
        for prefix in self.prefixes(&subject.id) {
            objects += self.recordings.delete_all_versions_under(&prefix).await?;
        }
        let mut keys = Vec::new();
        for call in &subject.calls {
            keys.push((call_pk(call), "RECORDING".to_owned()));
            self.ddb
                .update_item()
                .table_name(&self.table)
                .key(schema::PK, s(call_pk(call)))
                .key(schema::SK, s(CALL_SK))
                .update_expression(
                    "SET recording_state = :w REMOVE transcript_key, sealed_recording_url, recording_key",
                )
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":w", s("withdrawn"))
                .send()
                .await
                .map(|_| ())
                .or_else(|e| unless_missing("withdraw_call", e))?;
        }
        self.delete_items(keys).await?;
        Ok(RightsOutcome::RecordingsDeleted { objects })
    }

    async fn close_request(
        &self,
        record: RequestRecord,
        subject: Option<LeadId>,
        outcome: &RightsOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), ExportError> {
        let id = record.request_id;
        let contact = self.store.contact(&id).await?;
        let old = record.version;
        let open = OpenRecord::of(&record);
        let mut updated = record;
        let code = match outcome {
            RightsOutcome::Erased { .. } => "erased",
            RightsOutcome::Held { .. } => "restricted_under_legal_hold",
            RightsOutcome::Restricted => "restricted",
            RightsOutcome::Objected => "objection_recorded",
            RightsOutcome::RecordingsDeleted { .. } => "recordings_deleted",
            RightsOutcome::Rectified { .. } => "rectified",
            RightsOutcome::RectificationRefused => "rectification_refused",
            RightsOutcome::NoData => "no_data",
            RightsOutcome::Skipped => return Ok(()),
        };
        close(&mut updated, RequestStatus::Completed, code, now);
        match outcome {
            RightsOutcome::Erased { .. } => {
                // The proof of erasure: id, dates, categories; not whom it was about.
                updated.lead_id = None;
                updated.categories = Some(CATEGORIES.iter().map(|c| c.code.to_owned()).collect());
            }
            RightsOutcome::Rectified { recipients } => {
                updated.recipients = Some(recipients.clone());
            }
            RightsOutcome::Held { until } => {
                updated.held_until = Some(*until);
                updated.categories = Some(
                    CATEGORIES
                        .iter()
                        .map(|c| c.code)
                        .filter(|c| !matches!(*c, "signup" | "contract"))
                        .map(str::to_owned)
                        .collect(),
                );
                updated.held_categories = Some(vec!["signup".into(), "contract".into()]);
            }
            _ => {}
        }
        let mut writes = vec![Write::delete(OPEN_PK, open.sk)];
        writes.extend(Write::delete_contact(&id));
        // The subject's request history; an erasure leaves none (under a legal hold
        // only the contract and what it needs stay).
        let erasure = matches!(
            outcome,
            RightsOutcome::Erased { .. } | RightsOutcome::Held { .. }
        );
        if let (Some(lead), false) = (subject, erasure) {
            updated.lead_id = Some(lead);
            writes.push(subject_link(&updated, lead)?);
        }
        let action = format!("dsar.{code}");
        if self
            .store
            .commit(&updated, Some(old), writes, "dsar-worker", &action, now)
            .await?
            == Commit::Conflict
        {
            return Ok(());
        }
        if let Some(c) = contact {
            let url = format!("{}/v1/dsar/{id}", self.public_api_base_url);
            let mail = mail::completion_mail(&id.to_string(), updated.request_type, &url);
            send_to_contact(
                self.keys.as_ref(),
                &self.mailer,
                &self.store,
                &id,
                &c,
                &mail,
                now,
            )
            .await;
        }
        Ok(())
    }
}
