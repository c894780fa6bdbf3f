//! Access and portability exports (R4.4), built by the dsar worker.
//!
//! The package is a ZIP streamed straight into a multipart upload in the exports bucket
//! (SSE-KMS): entries go through an [`Archive`] (ZIP) into a buffer that is sent as a
//! part whenever it holds `part_size` bytes, and recordings are copied from the
//! recordings bucket chunk by chunk. Memory stays at about two parts whatever the size of
//! the recordings.
//!
//! Contents: `LIESMICH.txt` and `information.json` (Art. 15(1)(a)–(h), 15(2)),
//! `data.json` (everything held about the subject, decrypted), `transcripts/`,
//! `recordings/`, and for portability `portable.json` / `portable.csv` (what the subject
//! provided). A request about someone we hold nothing on gets a short package that says so.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use domain::crypto::{CryptoError, DataKey};
use domain::dsar::disclosure::{self, ReadmeContext};
use domain::dsar::{mail, RequestStatus, RequestType};
use domain::sales::{followup_aad, FOLLOWUP_KIND};
use domain::{Clock, LeadId, RequestId, RetentionClass};

use super::common::{proven_phone, resolve_subject, ContactMail, Resolved};
use super::ports::{
    Archive, ArchiveError, ArchiveFormat, CallRecord, ClaimLookup, HeldRecord, RequestStore,
    SubjectData,
};
use super::records::{
    close, subject_link, Change, Commit, Expiry, ExportRecord, OpenRecord, RequestRecord,
};
use crate::ports::{KeyError, KeyService, Mailer, ObjectUpload, Objects, Retry, StoreError};
use crate::signup::{Lead, LeadService, ReadError};

/// Stands for the calls array while the rest of `data.json` is rendered.
const CALLS_SLOT: &str = "\u{0}polly-calls\u{0}";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("store failed")]
    Store(#[from] StoreError),
    #[error("key service failed")]
    Keys(#[from] KeyError),
    #[error("reading the subject failed")]
    Read(#[from] ReadError),
    #[error("a sealed value of the subject does not open")]
    Sealed,
    #[error("writing the archive failed")]
    Zip(#[from] ArchiveError),
    #[error("reading a recording failed")]
    Stream,
    #[error("the package could not be rendered")]
    Render,
}

impl ExportError {
    pub fn retry(&self) -> Retry {
        match self {
            Self::Store(e) => e.retry,
            Self::Keys(e) => e.retry,
            Self::Read(ReadError::Store(e)) => e.retry,
            Self::Read(ReadError::Keys(e)) => e.retry,
            Self::Stream => Retry::Transient,
            _ => Retry::Permanent,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportOutcome {
    Built {
        bytes: u64,
        holds_data: bool,
    },
    /// Not an open access or portability request (already done, or another type).
    Skipped,
}

pub struct Exporter {
    pub store: Arc<dyn RequestStore>,
    pub claims: Arc<dyn ClaimLookup>,
    pub subjects: Arc<dyn SubjectData>,
    pub leads: Arc<LeadService>,
    pub keys: Arc<dyn KeyService>,
    pub recordings: Arc<dyn Objects>,
    pub exports: Arc<dyn Objects>,
    pub mailer: Arc<dyn Mailer>,
    /// The archive format of the package (ZIP).
    pub archives: Arc<dyn ArchiveFormat>,
    pub clock: Arc<dyn Clock>,
    pub public_api_base_url: String,
    /// Bytes per multipart part (≥ 5 MiB).
    pub part_size: usize,
    /// A CRM webhook is configured: the Art. 15 information names the CRM as a recipient.
    pub crm: bool,
}

/// The archive on its way into the upload.
struct Package<'a> {
    zip: Box<dyn Archive>,
    upload: &'a mut Box<dyn ObjectUpload>,
    part_size: usize,
    created: DateTime<Utc>,
}

impl Package<'_> {
    async fn drain(&mut self, at_least: usize) -> Result<(), ExportError> {
        if self.zip.buffered() >= at_least {
            let part = self.zip.take(self.part_size + 64 * 1024);
            self.upload.part(part).await?;
        }
        Ok(())
    }

    /// Appends to the current entry, never letting the buffer grow past a part: a chunk
    /// is split at the part boundary and the full part sent before the rest is written
    /// (S3 hands out chunks of varying size; without the split the buffer would regrow).
    async fn write(&mut self, mut data: &[u8]) -> Result<(), ExportError> {
        while !data.is_empty() {
            let room = self.part_size.saturating_sub(self.zip.buffered()).max(1);
            let (now, rest) = data.split_at(room.min(data.len()));
            self.zip.write_all(now)?;
            self.drain(self.part_size).await?;
            data = rest;
        }
        Ok(())
    }

    async fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), ExportError> {
        self.zip.start_file(name, self.created)?;
        self.write(bytes).await
    }

    async fn json(&mut self, name: &str, value: &Value) -> Result<(), ExportError> {
        let bytes = zeroize::Zeroizing::new(serde_json::to_vec_pretty(value).unwrap_or_default());
        self.file(name, &bytes).await
    }

    async fn finish(self) -> Result<(), ExportError> {
        let Package { zip, upload, .. } = self;
        let rest = zip.finish()?;
        upload.part(rest).await?;
        Ok(())
    }
}

/// One call of the subject, gathered.
struct CallData {
    id: String,
    json: Value,
    transcript_key: Option<String>,
    recording_key: Option<String>,
}

/// Everything gathered about a subject, before writing.
struct Subject {
    lead: Lead,
    key: DataKey,
    records: Vec<HeldRecord>,
    calls: Vec<CallData>,
}

/// The follow-up record sales received of the subject (`crate::sales`) as the export
/// shows it: the sealed record opened, as sales reads it; the item's plain attributes
/// fill in what the sealed copy lacks or leaves empty (the call it came from, when
/// sales marked it done).
fn followup_data(record: &HeldRecord, lead: &LeadId, key: &DataKey) -> Result<Value, ExportError> {
    let mut shown = match &record.sealed {
        Some(sealed) => {
            let plain = key
                .open(&followup_aad(lead), sealed)
                .map_err(|_| ExportError::Sealed)?;
            serde_json::from_slice::<Map<String, Value>>(&plain).map_err(|_| ExportError::Sealed)?
        }
        None => Map::new(),
    };
    for (name, value) in &record.fields {
        if shown.get(name).is_none_or(Value::is_null) {
            shown.insert(name.clone(), value.clone());
        }
    }
    Ok(Value::Object(shown))
}

/// Associated data of a sealed call attribute (the telephony use cases seal with it).
fn call_aad(call_id: &str, attribute: &str) -> Vec<u8> {
    format!("polly:call:{call_id}:{attribute}").into_bytes()
}

fn open_call(
    key: &DataKey,
    call_id: &str,
    attribute: &str,
    sealed: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    key.open(&call_aad(call_id, attribute), sealed)
}

/// A CSV field: quoted, quotes doubled, and a leading formula character neutralised so
/// spreadsheet programs show the value instead of evaluating it.
fn csv_field(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

fn extension(content_type: Option<&str>) -> &'static str {
    match content_type.unwrap_or_default() {
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/ogg" => "ogg",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => "m4a",
        "audio/webm" => "webm",
        _ => "audio",
    }
}

impl Exporter {
    /// Builds the export of an open access or portability request, then closes it.
    #[tracing::instrument(skip_all, fields(request_id = %id))]
    pub async fn run(&self, id: &RequestId) -> Result<ExportOutcome, ExportError> {
        let now = self.clock.now();
        let Some(record) = self.store.request(id).await? else {
            return Ok(ExportOutcome::Skipped);
        };
        if record.status != RequestStatus::InProgress || !record.request_type.builds_export() {
            return Ok(ExportOutcome::Skipped);
        }
        let resolved =
            resolve_subject(self.claims.as_ref(), self.store.as_ref(), &record, now).await?;
        let no_subject = matches!(resolved, Resolved::NoData);
        let subject = match resolved {
            Resolved::Waiting => return Ok(ExportOutcome::Skipped),
            Resolved::NoData => None,
            Resolved::Subject(lead) => self.gather(&lead).await?,
        };
        // No subject, but a number proven by the staff identity check: the calls stored
        // without a lead with that number are the requester's (see `proven_phone`).
        let unlinked: Vec<Value> = match proven_phone(&record).filter(|_| no_subject) {
            Some(phone) => self
                .subjects
                .unlinked_calls(&phone)
                .await?
                .into_iter()
                .map(unlinked_call)
                .collect(),
            None => Vec::new(),
        };
        let holds_data = subject.is_some() || !unlinked.is_empty();
        let object_key = format!("exports/{id}.zip");
        let mut upload = self
            .exports
            .start_upload(&object_key, "application/zip")
            .await?;
        let written = self
            .write(&mut upload, &record, subject.as_ref(), &unlinked, now)
            .await;
        if let Err(e) = written {
            upload.abort().await;
            return Err(e);
        }
        let bytes = upload.complete().await?;

        let contact = self.store.contact(id).await?;
        let old = record.version;
        let open = OpenRecord::of(&record);
        let mut updated = record;
        close(
            &mut updated,
            RequestStatus::Completed,
            if holds_data {
                "export_ready"
            } else {
                "no_data"
            },
            now,
        );
        let expiry = Expiry::of(RetentionClass::Export, now);
        updated.export_key = Some(object_key.clone());
        updated.export_expires_at = DateTime::parse_from_rfc3339(&expiry.expires_at)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        let mut changes = vec![
            Change::PutExport(ExportRecord {
                request_id: *id,
                object_key: object_key.clone(),
                bytes,
                created_at: now,
                expiry,
            }),
            Change::Unlist(open),
            Change::DeleteContact,
        ];
        if let Some(s) = &subject {
            updated.lead_id = Some(s.lead.stored.id);
            changes.push(subject_link(&updated, s.lead.stored.id));
        }
        if self
            .store
            .commit(
                &updated,
                Some(old),
                changes,
                "dsar-worker",
                "dsar.export_completed",
                now,
            )
            .await?
            == Commit::Conflict
        {
            // Another run finished first: this copy is not referenced by anything.
            self.exports.delete_all_versions(&object_key).await?;
            return Ok(ExportOutcome::Skipped);
        }
        if let Some(c) = contact {
            let url = format!("{}/v1/dsar/{id}", self.public_api_base_url);
            let mail = mail::completion_mail(&id.to_string(), updated.request_type, &url);
            ContactMail {
                keys: self.keys.as_ref(),
                mailer: self.mailer.as_ref(),
                store: self.store.as_ref(),
            }
            .send(id, &c, &mail, now)
            .await;
        }
        tracing::info!(bytes, holds_data, "export built");
        Ok(ExportOutcome::Built { bytes, holds_data })
    }

    /// Reads what we hold about a subject.
    async fn gather(&self, lead_id: &LeadId) -> Result<Option<Subject>, ExportError> {
        let Some((lead, key)) = self.leads.read_with_key(lead_id).await? else {
            return Ok(None);
        };
        let held = self.subjects.subject(lead_id).await?;
        let (records, call_ids) = match held {
            Some(h) => (h.records, h.calls),
            None => (Vec::new(), Vec::new()),
        };
        let mut calls = Vec::new();
        for call_id in &call_ids {
            if let Some(call) = self.subjects.call(call_id).await? {
                calls.push(call_data(call, &key)?);
            }
        }
        Ok(Some(Subject {
            lead,
            key,
            records,
            calls,
        }))
    }

    /// A call's transcript, opened: the provider's JSON text as it was received.
    async fn transcript(
        &self,
        call_id: &str,
        object: &str,
        key: &DataKey,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, ExportError> {
        let Some(sealed) = self.recordings.get(object).await? else {
            return Ok(None);
        };
        open_call(key, call_id, "transcript", &sealed)
            .map(Some)
            .map_err(|_| ExportError::Sealed)
    }

    async fn write(
        &self,
        upload: &mut Box<dyn ObjectUpload>,
        record: &RequestRecord,
        subject: Option<&Subject>,
        unlinked: &[Value],
        now: DateTime<Utc>,
    ) -> Result<(), ExportError> {
        let mut pkg = Package {
            zip: self.archives.start(self.part_size + 64 * 1024),
            upload,
            part_size: self.part_size,
            created: now,
        };
        let id = record.request_id.to_string();
        let mut history = match subject {
            Some(s) => self.store.subject_requests(&s.lead.stored.id).await?,
            None => Vec::new(),
        };
        // This request is linked when it closes, after the package is written.
        if !history.iter().any(|r| r.request_id == record.request_id) {
            history.push(record.clone());
        }
        let requests: Vec<Value> = history
            .iter()
            .map(|r| {
                json!({
                    "request_id": r.request_id.to_string(),
                    "type": r.request_type,
                    "status": r.status,
                    "received_at": r.received_at,
                    "due_at": r.due_date,
                    "extended": r.extended,
                    "closed_at": r.closed_at,
                    "outcome": r.outcome,
                })
            })
            .collect();
        let recordings = subject.map_or(0, |s| {
            s.calls.iter().filter(|c| c.recording_key.is_some()).count()
        });
        let transcripts = subject.map_or(0, |s| {
            s.calls
                .iter()
                .filter(|c| c.transcript_key.is_some())
                .count()
        });
        let readme = disclosure::liesmich(&ReadmeContext {
            request_id: &id,
            request_type: record.request_type,
            created_at: now,
            holds_data: subject.is_some() || !unlinked.is_empty(),
            sign_up: subject.is_some(),
            calls: subject.map_or(unlinked.len(), |s| s.calls.len()),
            recordings,
            transcripts,
            sales_followup: subject
                .is_some_and(|s| s.records.iter().any(|r| r.kind == FOLLOWUP_KIND)),
        });
        pkg.file("LIESMICH.txt", readme.as_bytes()).await?;
        pkg.json("information.json", &disclosure::information_with(self.crm))
            .await?;

        let Some(s) = subject else {
            let mut data = json!({
                "format": "polly-ki-export/1",
                "request_id": id,
                "generated_at": now,
                "holds_data": !unlinked.is_empty(),
                "subject": null,
                "requests": requests,
            });
            if !unlinked.is_empty() {
                data["calls"] = Value::Array(unlinked.to_vec());
            }
            pkg.json("data.json", &data).await?;
            return pkg.finish().await;
        };

        let lead = &s.lead;
        let p = &lead.profile;
        let mut sign_up = json!({
            "first_name": p.first_name.expose(),
            "last_name": p.last_name.expose(),
            "email": p.email.expose(),
            "phone": p.phone.expose(),
            "notes": p.notes.as_ref().map(|n| n.expose()),
            "signed_up_at": lead.stored.signed_up_at,
            "privacy_policy_version": lead.stored.consent_policy_version,
        });
        // The preferred call window (R7.2), as the form took it, when one was given.
        if let Some(w) = &lead.stored.call_window {
            sign_up["call_window"] = json!({
                "from": w.from().format("%H:%M").to_string(),
                "to": w.to().format("%H:%M").to_string(),
                "days": w.days(),
            });
        }
        let technical = json!({
            "source_ip": lead.technical.source_ip,
            "accessed_at": lead.technical.accessed_at,
            "client": lead.technical.client,
        });
        let mut by_kind: HashMap<&str, Vec<Value>> = HashMap::new();
        let mut sales_followup = None;
        for record in &s.records {
            let kind = record.kind.as_str();
            if matches!(kind, "lead" | "key" | "dsar_link" | "call_link") {
                continue;
            }
            if kind == FOLLOWUP_KIND {
                sales_followup = Some(followup_data(record, &lead.stored.id, &s.key)?);
                continue;
            }
            by_kind
                .entry(kind)
                .or_default()
                .push(Value::Object(record.fields.clone()));
        }
        let mut data = json!({
            "format": "polly-ki-export/1",
            "request_id": id,
            "generated_at": now,
            "holds_data": true,
            "subject": {
                "id": lead.stored.id.to_string(),
                "sign_up": sign_up,
                "technical": technical,
                "processing": {
                    "last_contact_at": lead.stored.last_contact_at,
                    "call_state": lead.stored.call_state,
                    "call_request_count": lead.stored.call_request_count,
                    "restricted": lead.stored.restricted,
                    "objected": lead.stored.objected,
                    "consent_withdrawn": lead.stored.consent_withdrawn,
                    "kept_until": lead.stored.expires_at,
                },
            },
            "consents": by_kind.remove("phone_consent").unwrap_or_default(),
            "contracts": by_kind.remove("contract").unwrap_or_default(),
            "calls": CALLS_SLOT,
            "requests": requests,
        });
        // What sales received after the call (summary, analysis, contact details), opened:
        // it is data about the subject like any other (Art. 15(1), (3)).
        if let Some(followup) = sales_followup {
            data["sales_followup"] = followup;
        }
        if !by_kind.is_empty() {
            let other: Map<String, Value> = by_kind
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::Array(v)))
                .collect();
            data["other_records"] = Value::Object(other);
        }
        // The calls are written one at a time, each with its transcript, so memory holds
        // one transcript however many long calls a subject had.
        let text = zeroize::Zeroizing::new(serde_json::to_string_pretty(&data).unwrap_or_default());
        drop(data);
        // The slot renders with escaped control characters, which no value in this part
        // of the document can contain (names and notes refuse them; call content and
        // transcripts are written below).
        let slot = serde_json::to_string(CALLS_SLOT).unwrap_or_default();
        let Some((head, tail)) = text.split_once(&slot) else {
            return Err(ExportError::Render);
        };
        pkg.zip.start_file("data.json", now)?;
        pkg.write(head.as_bytes()).await?;
        pkg.write(b"[").await?;
        for (i, c) in s.calls.iter().enumerate() {
            let mut call = c.json.clone();
            if let Some(object) = c.transcript_key.as_ref().filter(|_| recording_live(c, now)) {
                if let Some(t) = self.transcript(&c.id, object, &s.key).await? {
                    call["transcript"] = serde_json::from_slice(&t).unwrap_or(Value::Null);
                    call["transcript_file"] = json!(format!("transcripts/{}.json", c.id));
                }
            }
            if i > 0 {
                pkg.write(b",").await?;
            }
            let bytes = zeroize::Zeroizing::new(serde_json::to_vec(&call).unwrap_or_default());
            pkg.write(&bytes).await?;
        }
        pkg.write(b"]").await?;
        pkg.write(tail.as_bytes()).await?;

        if record.request_type == RequestType::Portability {
            let portable = json!({
                "format": "polly-ki-portable/1",
                "sign_up": sign_up,
                "consents": data_consents(&s.records),
            });
            pkg.json("portable.json", &portable).await?;
            let mut csv = String::from("field,value\r\n");
            for field in [
                "first_name",
                "last_name",
                "email",
                "phone",
                "notes",
                "signed_up_at",
                "privacy_policy_version",
            ] {
                let value = match &sign_up[field] {
                    Value::String(v) => v.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                csv.push_str(&format!("{},{}\r\n", csv_field(field), csv_field(&value)));
            }
            pkg.file("portable.csv", csv.as_bytes()).await?;
        }

        for c in s.calls.iter().filter(|c| recording_live(c, now)) {
            if let Some(object) = &c.transcript_key {
                if let Some(t) = self.transcript(&c.id, object, &s.key).await? {
                    pkg.file(&format!("transcripts/{}.json", c.id), &t).await?;
                }
            }
        }
        for c in s.calls.iter().filter(|c| recording_live(c, now)) {
            let Some(object) = &c.recording_key else {
                continue;
            };
            let Some(stream) = self.recordings.open(object).await? else {
                continue;
            };
            let name = format!(
                "recordings/{}.{}",
                c.id,
                extension(stream.content_type.as_deref())
            );
            pkg.zip.start_file(&name, now)?;
            let mut body = stream.body;
            while let Some(chunk) = body.next_chunk().await.map_err(|_| ExportError::Stream)? {
                pkg.write(&chunk).await?;
            }
        }
        pkg.finish().await
    }
}

/// Whether a call's recording is within its six months (R3.3: a recording past its
/// expiry that the sweep has not removed yet is not read; neither its audio nor its
/// transcript goes into a package). Calls without a recording item pass.
fn recording_live(c: &CallData, now: DateTime<Utc>) -> bool {
    c.json["recording"]["expires_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_none_or(|t| t.with_timezone(&Utc) > now)
}

/// The consents the subject gave, for the portability file.
fn data_consents(records: &[HeldRecord]) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r.kind == "phone_consent")
        .map(|r| {
            json!({
                "given_at": r.text("given_at"),
                "privacy_policy_version": r.text("policy_version"),
                "method": r.text("method"),
            })
        })
        .collect()
}

/// A call stored without a subject, as its requester sees it: its plain attributes and
/// its recording's metadata. Such a call holds nothing sealed (no subject, no key); were
/// anything sealed, it would stay out, as no key opens it.
fn unlinked_call(call: CallRecord) -> Value {
    let mut obj = call.fields;
    obj.remove("lead_id");
    if let Some(r) = call.recording {
        obj.insert("recording".into(), Value::Object(r.fields));
    }
    Value::Object(obj)
}

/// A call's metadata and its sealed attributes opened (`sealed_<field>` → `<field>`),
/// with its recording's metadata.
fn call_data(call: CallRecord, key: &DataKey) -> Result<CallData, ExportError> {
    let mut obj = call.fields;
    for (field, sealed) in &call.sealed {
        let opened = open_call(key, &call.id, &format!("sealed_{field}"), sealed)
            .map_err(|_| ExportError::Sealed)?;
        let value = serde_json::from_slice(&opened)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&opened).into_owned()));
        obj.insert(field.clone(), value);
    }
    let recording_key = call.recording.as_ref().and_then(|r| r.object_key.clone());
    if let Some(r) = call.recording {
        obj.insert("recording".into(), Value::Object(r.fields));
    }
    Ok(CallData {
        id: call.id,
        transcript_key: call.transcript_key,
        recording_key,
        json: Value::Object(obj),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(csv_field("+49170"), "\"'+49170\"");
        assert_eq!(csv_field("Anna"), "\"Anna\"");
    }

    #[test]
    fn recordings_get_an_extension_from_their_media_type() {
        assert_eq!(extension(Some("audio/wav")), "wav");
        assert_eq!(extension(Some("audio/mpeg")), "mp3");
        assert_eq!(extension(None), "audio");
    }
}
