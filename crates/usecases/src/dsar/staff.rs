//! Staff actions on subjects (R4.7, R4.10, R6), behind IAM-authorised routes: view a
//! subject's record (audited), record and end contracts (legal hold for the sweep), lift
//! a restriction (the subject is told first, Art. 18(3)); the pseudonymised analytics
//! export runs as a job of its own ([`super::analytics_job`]).
//!
//! Who counts as staff is named, not "anyone with IAM" (R4.10, R5.4): [`StaffPrincipals`]
//! is the configured allow-list of IAM roles and users. Every staff action, and every
//! refusal, is an audit item naming the caller's principal ARN (R4.11).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::intake::{DsarError, DsarService, OpenView};
use super::ports::{ContractLedger, StaffStore, SubjectRights};
use crate::ports::{KeyService, LeadStore, Mailer, Objects, StoreError};
use crate::signup::{Lead, LeadService};
use domain::clock::Clock;
use domain::dsar::mail;
use domain::retention::Contract;
use domain::LeadId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiftOutcome {
    Lifted,
    NotRestricted,
    Gone,
}

/// The IAM principals admitted to the staff routes (R4.10, R5.4), from IAM role and user
/// ARNs. A role admits every session of that role: API Gateway names an assumed-role
/// caller `arn:aws:sts::<account>:assumed-role/<RoleName>/<session>`, which matches the
/// configured `arn:aws:iam::<account>:role[/path]/<RoleName>` (same partition, account and
/// role name; role names are unique in an account whatever their path). A user ARN
/// admits exactly that user. An empty list admits nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaffPrincipals {
    roles: Vec<RoleRef>,
    users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RoleRef {
    partition: String,
    account: String,
    name: String,
}

/// A configured entry that is not an IAM role or user ARN (wildcards, the account root
/// and other services are refused: they would admit more than named people).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IAM role or user ARN")]
pub struct InvalidPrincipal;

/// The parts of a global (region-less) ARN we compare:
/// `arn:<partition>:<service>::<account>:<resource>`.
struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    account: &'a str,
    resource: &'a str,
}

impl<'a> Arn<'a> {
    fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let (partition, service, region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let valid_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        (!partition.is_empty() && region.is_empty() && valid_account).then_some(Self {
            partition,
            service,
            account,
            resource,
        })
    }
}

/// IAM names: letters, digits and `+=,.@_-` (paths add `/`).
fn iam_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

impl StaffPrincipals {
    /// Parses the configured ARNs; blank entries are ignored.
    pub fn parse<S: AsRef<str>>(arns: &[S]) -> Result<Self, InvalidPrincipal> {
        let mut out = Self::default();
        for arn in arns
            .iter()
            .map(|a| a.as_ref().trim())
            .filter(|a| !a.is_empty())
        {
            let parsed = Arn::parse(arn).ok_or(InvalidPrincipal)?;
            if parsed.service != "iam" {
                return Err(InvalidPrincipal);
            }
            let (kind, path) = parsed.resource.split_once('/').ok_or(InvalidPrincipal)?;
            let segments: Vec<&str> = path.split('/').collect();
            if !segments.iter().all(|s| iam_name(s)) {
                return Err(InvalidPrincipal);
            }
            let name = segments.last().copied().ok_or(InvalidPrincipal)?;
            match kind {
                "role" => out.roles.push(RoleRef {
                    partition: parsed.partition.to_owned(),
                    account: parsed.account.to_owned(),
                    name: name.to_owned(),
                }),
                "user" => out.users.push(arn.to_owned()),
                _ => return Err(InvalidPrincipal),
            }
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.users.is_empty()
    }

    /// Whether the principal API Gateway authenticated (`userArn`) is staff.
    pub fn admits(&self, caller: &str) -> bool {
        let Some(arn) = Arn::parse(caller) else {
            return false;
        };
        match (arn.service, arn.resource.split_once('/')) {
            ("sts", Some(("assumed-role", rest))) => {
                let Some((role, session)) = rest.split_once('/') else {
                    return false;
                };
                iam_name(role)
                    && !session.is_empty()
                    && self.roles.iter().any(|r| {
                        r.partition == arn.partition && r.account == arn.account && r.name == role
                    })
            }
            ("iam", Some(("user", _))) => self.users.iter().any(|u| u == caller),
            _ => false,
        }
    }
}

/// Replaces what identifies a person in free text: the subject's own name, email and
/// number, any email address and any run of six or more digits (with the separators
/// phone numbers are written with).
pub fn redact(text: &str, known: &[&str]) -> String {
    let mut out = text.to_owned();
    // Longest first: a name inside the email address must not break the address up
    // before the address itself is replaced.
    let mut known: Vec<&str> = known.to_vec();
    known.sort_by_key(|k| std::cmp::Reverse(k.chars().count()));
    for k in known.iter().filter(|k| k.chars().count() >= 2) {
        let lower = out.to_lowercase();
        let needle = k.to_lowercase();
        let mut result = String::with_capacity(out.len());
        let mut last = 0;
        for (i, _) in lower.match_indices(&needle) {
            // Lower-casing can change byte lengths; only replace where it did not.
            if out.is_char_boundary(i) && out.is_char_boundary(i + needle.len()) && i >= last {
                result.push_str(&out[last..i]);
                result.push_str("[NAME]");
                last = i + needle.len();
            }
        }
        result.push_str(&out[last..]);
        out = result;
    }
    let words: Vec<String> = out
        .split(' ')
        .map(|w| {
            if w.contains('@') {
                // The punctuation around the address stays: `(a@b.de,` → `([E-MAIL],`.
                let core = w
                    .trim_start_matches(['(', '<', '[', '"', '\''])
                    .trim_end_matches([')', '>', ']', '"', '\'', ',', '.', ';', ':', '!', '?']);
                match w.find(core) {
                    Some(at) if core.contains('@') => {
                        format!("{}[E-MAIL]{}", &w[..at], &w[at + core.len()..])
                    }
                    _ => "[E-MAIL]".to_owned(),
                }
            } else {
                w.to_owned()
            }
        })
        .collect();
    let out = words.join(" ");
    // Digit runs: digits with + ( ) / - . and spaces between them.
    let chars: Vec<char> = out.chars().collect();
    let mut result = String::with_capacity(out.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit()
            || (chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let mut j = i;
            let mut digits = 0;
            let mut end = i;
            while j < chars.len() && (chars[j].is_ascii_digit() || " +()/-.".contains(chars[j])) {
                if chars[j].is_ascii_digit() {
                    digits += 1;
                    end = j + 1;
                }
                j += 1;
            }
            if digits >= 6 {
                result.push_str("[NUMMER]");
                i = end;
                continue;
            }
            result.extend(&chars[i..end.max(i + 1)]);
            i = end.max(i + 1);
            continue;
        }
        result.push(chars[i]);
        i += 1;
    }
    result
}

/// The staff actions on subjects. Stays in `shared` until the contracts (retention) and
/// call sealing (telephony) it uses have moved to the use-case crate.
pub struct Staff {
    /// The request side (the open list).
    pub requests: Arc<DsarService>,
    pub store: Arc<dyn StaffStore>,
    pub contracts: Arc<dyn ContractLedger>,
    /// Lifting a restriction.
    pub rights: Arc<dyn SubjectRights>,
    pub lead_store: Arc<dyn LeadStore>,
    pub leads: Arc<LeadService>,
    pub keys: Arc<dyn KeyService>,
    pub mailer: Arc<dyn Mailer>,
    pub exports: Arc<dyn Objects>,
    pub clock: Arc<dyn Clock>,
    /// The consent ledger and its signing key's public half (R7.6).
    pub ledger: Option<crate::ledger::SignedLedger>,
    /// The do-not-call list (R7.1): staff list a number, or lift it on proof of fresh
    /// consent.
    pub do_not_call: Arc<dyn crate::dnc::DoNotCall>,
}

impl Staff {
    /// Who consented to what, when, how and under which text, for `lead` (R7.6): the
    /// whole ledger verified (chain and every signed head, with the public key), then the
    /// subject's events. Answers for erased subjects too (the ledger is the §7a proof that
    /// outlives erasure); `None` when no ledger is configured. Audited as
    /// `subject.consents_viewed` by `actor`.
    pub async fn consent_history(
        &self,
        lead: &LeadId,
        actor: &str,
    ) -> Result<Option<crate::ledger::ConsentHistory>, DsarError> {
        let Some((store, signer)) = &self.ledger else {
            return Ok(None);
        };
        let ledger_failure = |e: crate::ledger::LedgerError| DsarError::from(e.into_store());
        let key = crate::ledger::public_key_of(signer.as_ref())
            .await
            .map_err(ledger_failure)?;
        let history = crate::ledger::history(store.as_ref(), &key, Some(lead), None)
            .await
            .map_err(ledger_failure)?;
        self.store
            .audit(
                actor,
                "subject.consents_viewed",
                Some(lead),
                self.clock.now(),
            )
            .await?;
        Ok(Some(history))
    }

    /// Appends a staff change of the do-not-call list to the consent ledger (R7.6).
    async fn to_ledger(
        &self,
        index: &domain::crypto::BlindIndex,
        event: domain::ledger::LedgerEvent,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), DsarError> {
        if let Some((store, _)) = &self.ledger {
            crate::ledger::ConsentLedger::new(Arc::clone(store), "dsar-staff")
                .append(
                    None,
                    Some(index.as_str().to_owned()),
                    now,
                    domain::ledger::How::Staff,
                    event,
                )
                .await
                .map_err(|e| DsarError::from(e.into_store()))?;
        }
        Ok(())
    }

    /// Lists `phone` as do-not-call (source `staff`, R7.1), by its blind index; audited as
    /// `dnc.listed_staff` by `actor` when it changed something. `false`: listed already.
    pub async fn list_number(
        &self,
        phone: &domain::PhoneNumber,
        actor: &str,
    ) -> Result<bool, DsarError> {
        self.change_listing(phone, actor, true).await
    }

    /// Lifts the listing of `phone` (R7.1; staff do so only on written proof of fresh
    /// consent from that number); audited as `dnc.lifted_staff`. `false`: not listed.
    pub async fn lift_number(
        &self,
        phone: &domain::PhoneNumber,
        actor: &str,
    ) -> Result<bool, DsarError> {
        self.change_listing(phone, actor, false).await
    }

    /// Lists (`list`) or lifts `phone`: the consent ledger first when the listing state
    /// changes (R7.6), then the list, then the audit item when something changed.
    async fn change_listing(
        &self,
        phone: &domain::PhoneNumber,
        actor: &str,
        list: bool,
    ) -> Result<bool, DsarError> {
        let now = self.clock.now();
        let index = self
            .keys
            .blind_index(crate::ports::IdentifierKind::Phone, phone.expose())
            .await?;
        let listed = self
            .do_not_call
            .entry(&index)
            .await?
            .is_some_and(|e| e.listed());
        if listed != list {
            let event = if list {
                domain::ledger::LedgerEvent::DncListed
            } else {
                domain::ledger::LedgerEvent::DncLifted
            };
            self.to_ledger(&index, event, now).await?;
        }
        let (changed, action) = if list {
            let changed = self
                .do_not_call
                .list(&index, crate::dnc::DncSource::Staff, now)
                .await?;
            // Issue 17: the number's subject leaves the sales queue, as after an objection
            // (sales cannot check the list: its role computes no blind index). After the
            // listing, and also when it was listed already, so a retry finishes it.
            if let Some(lead) = self
                .requests
                .claims
                .claim_holder(crate::ports::IdentifierKind::Phone, &index, now)
                .await?
            {
                self.rights.remove_followup(&lead).await?;
            }
            (changed, "dnc.listed_staff")
        } else {
            let changed = self
                .do_not_call
                .lift(&index, crate::dnc::LiftReason::Staff, now)
                .await?;
            (changed, "dnc.lifted_staff")
        };
        if changed {
            self.store.audit(actor, action, None, now).await?;
        }
        Ok(changed)
    }

    /// A subject's record, decrypted, for staff (audited as `subject.viewed`).
    pub async fn view_subject(
        &self,
        lead: &LeadId,
        actor: &str,
    ) -> Result<Option<Value>, DsarError> {
        let Some(l) = self.leads.read(lead).await.map_err(read_error)? else {
            return Ok(None);
        };
        self.store
            .audit(actor, "subject.viewed", Some(lead), self.clock.now())
            .await?;
        Ok(Some(subject_json(&l)))
    }

    /// Records a contract (legal hold, R3.4), audited as `contract.recorded` by `actor`;
    /// `None` when the subject is unknown.
    pub async fn record_contract(
        &self,
        lead: &LeadId,
        contract: Contract,
        actor: &str,
    ) -> Result<Option<String>, DsarError> {
        let now = self.clock.now();
        if self.leads_get(lead, now).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(
            self.contracts.record(lead, contract, actor, now).await?,
        ))
    }

    /// The open requests for staff (R4.10), audited as `dsar.listed` by `actor`: the list
    /// shows who asked for what and when.
    pub async fn list_open_requests(&self, actor: &str) -> Result<Vec<OpenView>, DsarError> {
        let list = self.requests.open_requests().await?;
        self.staff_audit(actor, "dsar.listed").await?;
        Ok(list)
    }

    /// Records that a caller was refused at the staff routes (`staff.refused`); `actor`
    /// is the principal API Gateway authenticated (R4.11, R5.4). Nothing of the request
    /// itself is kept.
    pub async fn record_staff_refusal(&self, actor: &str) -> Result<(), DsarError> {
        self.staff_audit(actor, "staff.refused").await
    }

    async fn staff_audit(&self, actor: &str, action: &str) -> Result<(), DsarError> {
        self.store
            .audit(actor, action, None, self.clock.now())
            .await?;
        Ok(())
    }

    async fn leads_get(
        &self,
        lead: &LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::ports::StoredLead>, DsarError> {
        Ok(self.lead_store.get_lead(lead, now).await?)
    }

    /// Ends a contract at `end`: its statutory period (and the hold) now runs from there.
    pub async fn end_contract(
        &self,
        lead: &LeadId,
        contract_id: &str,
        records: domain::retention::ContractRecords,
        end: DateTime<Utc>,
        actor: &str,
    ) -> Result<bool, DsarError> {
        if !self
            .store
            .end_contract(lead, contract_id, records, end)
            .await?
        {
            return Ok(false);
        }
        self.store
            .audit(actor, "contract.ended", Some(lead), self.clock.now())
            .await?;
        Ok(true)
    }

    /// Lifts a restriction (R4.7): the subject is mailed first (Art. 18(3)); only when
    /// that worked is processing allowed again.
    pub async fn lift_restriction(
        &self,
        lead: &LeadId,
        actor: &str,
    ) -> Result<LiftOutcome, DsarError> {
        let Some(l) = self.leads.read(lead).await.map_err(read_error)? else {
            return Ok(LiftOutcome::Gone);
        };
        if !l.stored.restricted {
            return Ok(LiftOutcome::NotRestricted);
        }
        self.mailer
            .send(&l.profile.email, &mail::restriction_lifted_mail())
            .await?;
        let now = self.clock.now();
        self.rights.lift_restriction(lead).await?;
        self.store
            .audit(actor, "subject.restriction_lifted", Some(lead), now)
            .await?;
        Ok(LiftOutcome::Lifted)
    }
}

fn read_error(e: crate::signup::ReadError) -> DsarError {
    match e {
        crate::signup::ReadError::Keys(k) => DsarError::Keys(k),
        crate::signup::ReadError::Store(s) => DsarError::Store(s),
        crate::signup::ReadError::Crypto(c) => DsarError::Crypto(c),
        crate::signup::ReadError::Malformed => DsarError::Store(StoreError {
            operation: "read_lead",
            retry: crate::ports::Retry::Permanent,
            source: None,
        }),
    }
}

fn subject_json(l: &Lead) -> Value {
    let p = &l.profile;
    json!({
        "lead_id": l.stored.id.to_string(),
        "first_name": p.first_name.expose(),
        "last_name": p.last_name.expose(),
        "email": p.email.expose(),
        "phone": p.phone.expose(),
        "notes": p.notes.as_ref().map(|n| n.expose()),
        "signed_up_at": l.stored.signed_up_at,
        "last_contact_at": l.stored.last_contact_at,
        "kept_until": l.stored.expires_at,
        "call_state": l.stored.call_state,
        "restricted": l.stored.restricted,
        "objected": l.stored.objected,
        "consent_withdrawn": l.stored.consent_withdrawn,
        "technical": {
            "source_ip": l.technical.source_ip,
            "accessed_at": l.technical.accessed_at,
            "client": l.technical.client,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/polly-staff";

    /// R5.4: an empty staff allow-list admits nobody.
    #[test]
    fn an_empty_allow_list_admits_nobody() {
        let p = StaffPrincipals::parse::<&str>(&[]).unwrap();
        assert!(p.is_empty());
        assert!(!p.admits("arn:aws:sts::123456789012:assumed-role/polly-staff/anna"));
        assert!(StaffPrincipals::parse(&["", " "]).unwrap().is_empty());
    }

    /// R5.4: an allow-listed role admits its sessions in its own account, and nothing that
    /// only resembles it (another account, role, case, the role itself).
    #[test]
    fn a_role_admits_its_sessions_in_its_account_only() {
        let p = StaffPrincipals::parse(&[ROLE, "arn:aws:iam::123456789012:role/ops/dpo"]).unwrap();
        for ok in [
            "arn:aws:sts::123456789012:assumed-role/polly-staff/anna",
            "arn:aws:sts::123456789012:assumed-role/dpo/anna@example.org",
        ] {
            assert!(p.admits(ok), "{ok}");
        }
        for refused in [
            // Another account, another role, a role whose name only starts the same.
            "arn:aws:sts::210987654321:assumed-role/polly-staff/anna",
            "arn:aws:sts::123456789012:assumed-role/polly-staff-2/anna",
            "arn:aws:sts::123456789012:assumed-role/polly/anna",
            "arn:aws-cn:sts::123456789012:assumed-role/polly-staff/anna",
            // No session, a case variant, a user of the same name, the role ARN itself
            // (API Gateway never reports a caller as a role), the root, garbage.
            "arn:aws:sts::123456789012:assumed-role/polly-staff",
            "arn:aws:sts::123456789012:assumed-role/Polly-Staff/anna",
            "arn:aws:iam::123456789012:user/polly-staff",
            ROLE,
            "arn:aws:iam::123456789012:root",
            "AROAEXAMPLE:anna",
            "",
        ] {
            assert!(!p.admits(refused), "{refused}");
        }
    }

    /// R5.4: an allow-listed user admits exactly that user.
    #[test]
    fn a_user_admits_exactly_that_user() {
        let user = "arn:aws:iam::123456789012:user/team/anna";
        let p = StaffPrincipals::parse(&[user]).unwrap();
        assert!(p.admits(user));
        assert!(!p.admits("arn:aws:iam::123456789012:user/anna"));
        assert!(!p.admits("arn:aws:iam::123456789012:user/team/anna2"));
        assert!(!p.admits("arn:aws:sts::123456789012:assumed-role/anna/anna"));
    }

    /// R5.4: allow-list entries that would admit more than named people (wildcards, the
    /// root, groups, sessions) are refused at start-up.
    #[test]
    fn refuses_entries_that_name_more_than_people() {
        for bad in [
            "*",
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:role/*",
            "arn:aws:iam::*:role/polly-staff",
            "arn:aws:iam::123456789012:group/staff",
            "arn:aws:sts::123456789012:assumed-role/polly-staff/anna",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam:eu-central-1:123456789012:role/polly-staff",
            "polly-staff",
        ] {
            assert_eq!(
                StaffPrincipals::parse(&[bad]),
                Err(InvalidPrincipal),
                "{bad}"
            );
        }
    }

    /// R6: redaction replaces the subject's names, email addresses and long numbers in a
    /// summary, and keeps short numbers.
    #[test]
    fn redaction_removes_names_addresses_and_numbers() {
        let t = "Frau Wilhelmine Zwetschgenbaum (wilhelmine@example.org, +49 170 9876543) \
                 wünscht einen Termin am 12.5. um 17 Uhr.";
        let r = redact(t, &["Wilhelmine", "Zwetschgenbaum"]);
        assert!(!r.contains("Wilhelmine") && !r.contains("Zwetschgenbaum"));
        assert!(!r.contains("example.org"));
        assert!(!r.contains("9876543"));
        assert!(r.contains("[NAME]") && r.contains("[E-MAIL]") && r.contains("[NUMMER]"));
        assert!(r.contains("17 Uhr"), "short numbers stay: {r}");
    }

    /// R6: the subject's email goes whole even when its name is part of it (the longer
    /// value first), and the text around an address stays.
    #[test]
    fn redaction_replaces_the_subjects_email_before_the_name_inside_it() {
        let t =
            "Wilhelmine (wilhelmine.z@example.org, Tel. +491709876543) fragt: anna@example.net.";
        let r = redact(
            t,
            &["Wilhelmine", "wilhelmine.z@example.org", "+491709876543"],
        );
        assert_eq!(r, "[NAME] ([NAME], Tel. [NAME]) fragt: [E-MAIL].");
    }
}
