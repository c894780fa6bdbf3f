//! Whom a request may act on (R4.1, R4.2): only a subject reached through identifiers whose
//! possession was proven.
//!
//! The email is proven by its one-time code, a phone number (and any identifier a
//! rectification would move onto the subject) only by the staff identity check. A request
//! names up to two identifiers; each may be unknown, or point at a subject through its
//! claim. The rules:
//!
//! - Identifiers that point at two different subjects: the staff identity check decides;
//!   if every identifier is proven already, the request is ambiguous and staff deny it
//!   (one request per subject).
//! - The proven identifiers fix the subject (the anchor), or none.
//! - An unproven identifier must point at the anchor. Otherwise (it points elsewhere, at
//!   nothing, or there is no anchor) the request waits for the staff identity check and
//!   nothing is disclosed or changed. That an unknown phone also waits is deliberate: if
//!   it did not, the status of a request with one's own email and a stranger's number
//!   would tell whether we know that number.
//! - Corrections that would move an identifier onto the subject must be proven too, unless
//!   that identifier is the subject's already.
//!
//! The outcome visible to the requester thus depends only on what they proved and on
//! identifiers of their own subject: no combination lets a stranger learn or touch
//! another person's data.

use crate::LeadId;

/// One identifier named in a request (or in its corrections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named {
    /// The subject its claim points at now, if any.
    pub subject: Option<LeadId>,
    /// Whether the requester proved possession of it.
    pub proven: bool,
}

/// What a request may act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Exactly this subject.
    Subject(LeadId),
    /// Every identifier is proven and none points at a subject: we hold nothing.
    NoData,
    /// An identifier is unproven where it matters: staff check the identity first.
    NeedsIdentityCheck,
    /// Proven identifiers of two different subjects: one request per subject.
    Ambiguous,
}

/// Decides whom a request may act on; see the module documentation for the rules.
pub fn bind(given: &[Named], corrections: &[Named]) -> Binding {
    let mut subjects: Vec<LeadId> = given.iter().filter_map(|n| n.subject).collect();
    subjects.sort_by_key(|l| l.to_string());
    subjects.dedup();
    if subjects.len() > 1 {
        return if given.iter().all(|n| n.proven) {
            Binding::Ambiguous
        } else {
            Binding::NeedsIdentityCheck
        };
    }
    let anchor = given.iter().filter(|n| n.proven).find_map(|n| n.subject);
    let unproven_elsewhere = given
        .iter()
        .filter(|n| !n.proven)
        .any(|n| anchor.is_none() || n.subject != anchor);
    if unproven_elsewhere || given.iter().all(|n| !n.proven) {
        return Binding::NeedsIdentityCheck;
    }
    match anchor {
        None => Binding::NoData,
        Some(subject) => {
            let moves_unproven = corrections
                .iter()
                .any(|c| !c.proven && c.subject != Some(subject));
            if moves_unproven {
                Binding::NeedsIdentityCheck
            } else {
                Binding::Subject(subject)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(subject: Option<LeadId>, proven: bool) -> Named {
        Named { subject, proven }
    }

    /// R4.1, R4.2: every combination of one or two identifiers, each unknown, the
    /// requester's own subject, or another one, proven or not.
    #[test]
    fn a_request_binds_only_through_proven_identifiers() {
        let a = LeadId::new();
        let b = LeadId::new();
        use Binding::*;
        let table: Vec<(Vec<Named>, Binding)> = vec![
            // Email only, proven by its code.
            (vec![named(Some(a), true)], Subject(a)),
            (vec![named(None, true)], NoData),
            // Phone only, not proven: staff first, whatever it points at.
            (vec![named(Some(a), false)], NeedsIdentityCheck),
            (vec![named(None, false)], NeedsIdentityCheck),
            // Phone only after the staff check.
            (vec![named(Some(b), true)], Subject(b)),
            (vec![named(None, true)], NoData),
            // Proven email and unproven phone.
            (
                vec![named(Some(a), true), named(Some(a), false)],
                Subject(a),
            ),
            (
                vec![named(Some(a), true), named(None, false)],
                NeedsIdentityCheck,
            ),
            (
                vec![named(Some(a), true), named(Some(b), false)],
                NeedsIdentityCheck,
            ),
            (
                vec![named(None, true), named(Some(b), false)],
                NeedsIdentityCheck,
            ),
            (
                vec![named(None, true), named(None, false)],
                NeedsIdentityCheck,
            ),
            // Both proven (after the staff check).
            (vec![named(Some(a), true), named(Some(a), true)], Subject(a)),
            (vec![named(Some(a), true), named(None, true)], Subject(a)),
            (vec![named(None, true), named(Some(b), true)], Subject(b)),
            (vec![named(None, true), named(None, true)], NoData),
            (vec![named(Some(a), true), named(Some(b), true)], Ambiguous),
        ];
        for (given, expected) in table {
            assert_eq!(bind(&given, &[]), expected, "{given:?}");
        }
    }

    /// R4.6: a rectification moves an identifier onto the subject only when it is proven
    /// or the subject's already.
    #[test]
    fn corrections_that_move_an_unproven_identifier_wait_for_staff() {
        let a = LeadId::new();
        let b = LeadId::new();
        let own = [named(Some(a), true)];
        assert_eq!(bind(&own, &[named(Some(a), false)]), Binding::Subject(a));
        assert_eq!(
            bind(&own, &[named(None, false)]),
            Binding::NeedsIdentityCheck
        );
        assert_eq!(
            bind(&own, &[named(Some(b), false)]),
            Binding::NeedsIdentityCheck
        );
        assert_eq!(bind(&own, &[named(None, true)]), Binding::Subject(a));
        // Proven but taken: bound; the rectification itself refuses to take it.
        assert_eq!(bind(&own, &[named(Some(b), true)]), Binding::Subject(a));
    }
}
