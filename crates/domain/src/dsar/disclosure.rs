//! What we tell a data subject about our processing: the Art. 15(1)(a)–(h) and 15(2)
//! information (`information.json` in an export), the German read-me of the export
//! (`LIESMICH.txt`) and the Art. 30(1) record of processing activities (`ropa`).
//!
//! Everything here is derived from the processing registry (`domain::registry`) and the
//! retention classes (`domain::retention`), the single source the retention sweep also
//! uses, so what we tell people cannot drift from what the system does. This module adds
//! only what the registry does not hold: the controller's and the supervisory authority's
//! contact data, German labels for the registry's codes, and the fixed texts on rights,
//! sources and automated decisions. A test fails when a registry entry has no German label.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::RequestType;
use crate::registry::{self, DataCategory, Purpose, Recipient, CATEGORIES, PURPOSES};
use crate::retention::{Anchor, Disposal, Period, RetentionClass};

/// The controller (Art. 4(7) GDPR), as named in §1 and §12 of the privacy policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controller {
    pub name: &'static str,
    pub street: &'static str,
    pub postal_code_city: &'static str,
    pub country: &'static str,
    pub representative: &'static str,
    pub email: &'static str,
    pub privacy_email: &'static str,
    pub website: &'static str,
}

pub const CONTROLLER: Controller = Controller {
    name: "KoBra Dataworks GmbH",
    street: "Am Bugapark 60",
    postal_code_city: "45899 Gelsenkirchen",
    country: "Deutschland",
    representative: "Geschäftsführer Jan Koch",
    email: "team@kobra-dataworks.de",
    privacy_email: "datenschutz@pollyki.de",
    website: "https://pollyki.de",
};

/// Where the current privacy policy is published (§11 of the policy).
pub const PRIVACY_POLICY_URL: &str = "https://pollyki.de/datenschutz";

/// The supervisory authority competent for the controller (§10.8 of the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisoryAuthority {
    pub name: &'static str,
    pub short_name: &'static str,
    pub street: &'static str,
    pub postal_code_city: &'static str,
    pub phone: &'static str,
    pub email: &'static str,
}

pub const SUPERVISORY_AUTHORITY: SupervisoryAuthority = SupervisoryAuthority {
    name: "Landesbeauftragte für Datenschutz und Informationsfreiheit Nordrhein-Westfalen",
    short_name: "LDI NRW",
    street: "Kavalleriestraße 2-4",
    postal_code_city: "40213 Düsseldorf",
    phone: "0211/38424-0",
    email: "poststelle@ldi.nrw.de",
};

/// The public route through which every right is exercised (R4.1).
pub const DSAR_ROUTE: &str = "POST /v1/dsar";

/// File names inside an export package (R4.4).
pub const README_FILE: &str = "LIESMICH.txt";
pub const DATA_FILE: &str = "data.json";
pub const INFORMATION_FILE: &str = "information.json";
pub const RECORDINGS_DIR: &str = "recordings/";
pub const TRANSCRIPTS_DIR: &str = "transcripts/";
pub const PORTABLE_JSON_FILE: &str = "portable.json";
pub const PORTABLE_CSV_FILE: &str = "portable.csv";

/// Maximum line width of the plain-text documents.
const WIDTH: usize = 100;

/// Staff who see personal data (§6.1 of the policy); not a registry recipient because
/// they are part of the controller, but people are told about them.
const INTERNAL_RECIPIENTS_DE: &str = "Innerhalb der KoBra Dataworks GmbH erhalten nur \
     berechtigte Mitarbeiterinnen und Mitarbeiter (Vertrieb, Kundenservice, IT) Zugriff, \
     soweit sie die Daten für ihre Aufgaben benötigen.";

const PROCESSING_AGREEMENTS_DE: &str = "Mit allen Dienstleistern haben wir Verträge zur \
     Auftragsverarbeitung nach Art. 28 DSGVO geschlossen. An andere Dritte geben wir Ihre \
     Daten nur weiter, wenn wir gesetzlich dazu verpflichtet sind oder Sie ausdrücklich \
     eingewilligt haben.";

const AUTOMATED_DECISIONS_DE: &str = "Unser KI-Telefonagent Polly KI führt das Gespräch \
     mit Ihnen, und der Gesprächsinhalt wird automatisiert ausgewertet (Zusammenfassung und \
     Ihre Antworten). Eine ausschließlich auf automatisierter Verarbeitung beruhende \
     Entscheidung, die Ihnen gegenüber rechtliche Wirkung entfaltet oder Sie in ähnlicher \
     Weise erheblich beeinträchtigt, findet nicht statt. Es gibt kein Profiling im Sinne von \
     Art. 22 DSGVO.";

const COMPLAINT_DE: &str = "Sie haben das Recht, sich bei einer Datenschutz-Aufsichtsbehörde \
     zu beschweren, wenn Sie der Ansicht sind, dass die Verarbeitung Ihrer personenbezogenen \
     Daten gegen die DSGVO verstößt (Art. 77 DSGVO). Zuständig für uns ist:";

const NO_OTHER_SOURCES_DE: &str = "Wir erheben alle Daten bei Ihnen selbst. Aus anderen \
     Quellen, etwa von Adresshändlern oder aus öffentlichen Verzeichnissen, erhalten wir \
     keine Daten über Sie.";

/// Where the data of each category comes from (Art. 15(1)(g)). All of it comes from the
/// subject; a test checks that every registry category has a source.
struct Source {
    code: &'static str,
    description_de: &'static str,
    categories: &'static [&'static str],
}

const SOURCES: &[Source] = &[
    Source {
        code: "signup_form",
        description_de: "das Anmeldeformular auf pollyki.de: Ihre Angaben bei der Anmeldung \
             und Ihre Einwilligung in den Anruf",
        categories: &["signup", "consent_evidence"],
    },
    Source {
        code: "browser",
        description_de: "Ihr Browser beim Absenden des Formulars: IP-Adresse, Zeitpunkt, \
             Endgerät, Betriebssystem und Browser (aus der Kennung, die Ihr Browser mitsendet)",
        categories: &["technical", "consent_evidence"],
    },
    Source {
        code: "phone_call",
        description_de: "das Telefonat mit Polly KI: Verbindungsdaten, was Sie im Gespräch \
             sagen, Ihre Antwort auf die Frage nach der Aufzeichnung und, wenn Sie \
             eingewilligt haben, Aufzeichnung und Transkript",
        categories: &[
            "call_metadata",
            "call_content",
            "recording",
            "consent_evidence",
        ],
    },
    Source {
        code: "contract",
        description_de: "ein Vertrag, den Sie mit uns schließen",
        categories: &["contract"],
    },
    Source {
        code: "data_subject_requests",
        description_de: "Ihre Anfragen nach der DSGVO, wie diese",
        categories: &["data_subject_requests"],
    },
];

/// German name of a data category.
pub fn category_label_de(code: &str) -> Option<&'static str> {
    Some(match code {
        "signup" => "Anmeldedaten",
        "technical" => "Technische Daten",
        "call_metadata" => "Verbindungsdaten der Telefonate",
        "call_content" => "Gesprächsinhalte",
        "recording" => "Gesprächsaufzeichnungen und Transkripte",
        "consent_evidence" => "Nachweise Ihrer Einwilligungen",
        "contract" => "Vertragsdaten",
        "data_subject_requests" => "Anfragen nach der DSGVO",
        _ => return None,
    })
}

/// German list of the fields of a data category.
pub fn category_fields_de(code: &str) -> Option<&'static str> {
    Some(match code {
        "signup" => {
            "Vor- und Nachname, E-Mail-Adresse, Telefonnummer, Zeitpunkt der Anmeldung, \
             Anmerkungen"
        }
        "technical" => {
            "IP-Adresse, Zeitpunkt des Zugriffs, Art und Version von Endgerät, Betriebssystem \
             und Browser"
        }
        "call_metadata" => {
            "Gesprächs-ID, Beginn, Ende, Dauer, Richtung, Telefonnummern, Grund des \
             Gesprächsendes, ID und Version des KI-Agenten"
        }
        "call_content" => "Auswertung des Gesprächs: Zusammenfassung und Ihre Antworten",
        "recording" => "Audioaufzeichnung und wörtliches Transkript des Gesprächs",
        "consent_evidence" => {
            "Inhalt der Einwilligung (Textversion), Zeitpunkt, Art (Formular oder Gespräch), \
             IP-Adresse oder Gesprächs-ID"
        }
        "contract" => "Vertragsbeginn, Vertragsende, Vertragsreferenz",
        "data_subject_requests" => "Art, Status, Daten und Ergebnis der Anfrage",
        _ => return None,
    })
}

/// Short German name of a purpose.
pub fn purpose_label_de(code: &str) -> Option<&'static str> {
    Some(match code {
        "callback" => "Rückruf und Angebote",
        "call_recording" => "Aufzeichnung von Gesprächen",
        "contract_records" => "Aufbewahrung von Vertragsunterlagen",
        "data_subject_rights" => "Bearbeitung Ihrer Rechte nach der DSGVO",
        _ => return None,
    })
}

/// German description of a purpose.
pub fn purpose_description_de(code: &str) -> Option<&'static str> {
    Some(match code {
        "callback" => {
            "Wir rufen Personen an, die über das Anmeldeformular um einen Anruf gebeten haben, \
             erfassen im Gespräch mit unserem KI-Telefonagenten ihr Interesse und unterbreiten \
             danach passende Angebote."
        }
        "call_recording" => {
            "Wenn Sie im Gespräch eingewilligt haben, zeichnen wir das Gespräch auf und \
             transkribieren es, zur Dokumentation Ihrer Anfrage, zur Qualitätssicherung und \
             für die weitere Bearbeitung."
        }
        "contract_records" => {
            "Wir bewahren Unterlagen zu geschlossenen Verträgen auf, wie es das Handels- und \
             Steuerrecht verlangt."
        }
        "data_subject_rights" => {
            "Wir bearbeiten Anfragen nach Art. 15 bis 21 DSGVO und weisen nach, dass wir sie \
             bearbeitet haben."
        }
        _ => return None,
    })
}

/// German description of the people whose data a purpose concerns (Art. 30(1)(c)).
fn data_subjects_de(purpose_code: &str) -> Option<&'static str> {
    Some(match purpose_code {
        "callback" => {
            "Interessentinnen und Interessenten, die sich über das Anmeldeformular angemeldet \
             haben und angerufen werden"
        }
        "call_recording" => {
            "Gesprächspartnerinnen und Gesprächspartner von Polly KI, die in die Aufzeichnung \
             eingewilligt haben"
        }
        "contract_records" => "Kundinnen und Kunden, die einen Vertrag mit uns geschlossen haben",
        "data_subject_rights" => "Personen, die Rechte nach Art. 15 bis 21 DSGVO geltend machen",
        _ => return None,
    })
}

/// German description of a recipient's role, by the registry's recipient name.
pub fn recipient_role_de(name: &str) -> Option<&'static str> {
    Some(match name {
        "RetellAI, Inc." => "Auftragsverarbeiter: Plattform für Telefonie und KI-Sprachagenten",
        "ElevenLabs" => "Unterauftragsverarbeiter: Sprachsynthese für den KI-Agenten",
        "OpenAI, L.L.C." => "Unterauftragsverarbeiter: Verarbeitung der Gesprächsinhalte",
        "Amazon Web Services EMEA SARL" => {
            "Auftragsverarbeiter: Hosting in Frankfurt am Main (AWS-Region eu-central-1)"
        }
        _ => return None,
    })
}

/// German name of a request type.
pub fn request_type_de(t: RequestType) -> &'static str {
    match t {
        RequestType::Access => "Auskunft",
        RequestType::Portability => "Datenübertragbarkeit",
        RequestType::Erasure => "Löschung",
        RequestType::Rectification => "Berichtigung",
        RequestType::Restriction => "Einschränkung der Verarbeitung",
        RequestType::Objection => "Widerspruch",
        RequestType::WithdrawConsent => "Widerruf einer Einwilligung",
    }
}

/// German description of the right a request type exercises.
pub fn right_description_de(t: RequestType) -> &'static str {
    match t {
        RequestType::Access => {
            "Auskunft darüber, ob und welche personenbezogenen Daten wir über Sie verarbeiten, \
             mit einer Kopie dieser Daten und den Informationen in dieser Datei."
        }
        RequestType::Portability => {
            "Die Daten, die Sie uns bereitgestellt haben, in einem strukturierten, gängigen und \
             maschinenlesbaren Format erhalten (JSON und CSV) oder an einen anderen \
             Verantwortlichen übermitteln lassen."
        }
        RequestType::Erasure => {
            "Löschung Ihrer personenbezogenen Daten. Steht eine gesetzliche Aufbewahrungspflicht \
             entgegen, schränken wir die Verarbeitung stattdessen ein und löschen, sobald die \
             Pflicht endet."
        }
        RequestType::Rectification => {
            "Berichtigung unrichtiger und Vervollständigung unvollständiger Daten."
        }
        RequestType::Restriction => {
            "Ihre Daten bleiben gespeichert, werden aber nicht weiter verarbeitet; insbesondere \
             rufen wir Sie nicht mehr an."
        }
        RequestType::Objection => {
            "Widerspruch gegen die Verarbeitung auf Grundlage berechtigter Interessen (Art. 6 \
             Abs. 1 lit. f DSGVO), etwa die Auswertung von Gesprächen in pseudonymisierter \
             Form; danach rufen wir Sie auch nicht mehr an."
        }
        RequestType::WithdrawConsent => {
            "Widerruf einer Einwilligung, etwa in die Aufzeichnung von Gesprächen, jederzeit mit \
             Wirkung für die Zukunft; Aufzeichnungen und Transkripte löschen wir dann sofort. \
             Die Rechtmäßigkeit der Verarbeitung bis zum Widerruf bleibt unberührt."
        }
    }
}

/// A length of time in German ("6 Kalendermonate", "1 Tag").
pub fn period_de(period: Period) -> String {
    let (n, one, many) = match period {
        Period::Minutes(n) => (n, "Minute", "Minuten"),
        Period::Days(n) => (n, "Tag", "Tage"),
        Period::Months(n) => (n, "Kalendermonat", "Kalendermonate"),
        Period::Years(n) => (n, "Jahr", "Jahre"),
    };
    format!("{n} {}", if n == 1 { one } else { many })
}

/// German description of how long data of a retention class is kept and from when.
pub fn retention_de(class: RetentionClass) -> String {
    let (event, law) = match class {
        RetentionClass::Recording => ("Gesprächsende", ""),
        RetentionClass::Lead => ("dem letzten Kontakt", ""),
        RetentionClass::Contract(_) => ("des Vertragsendes", " (§ 257 HGB, § 147 AO)"),
        RetentionClass::PhoneConsentProof => (
            "Erteilung und jeder Nutzung der Einwilligung",
            " (§ 7a UWG)",
        ),
        RetentionClass::Export => ("Erstellung des Pakets", ""),
        RetentionClass::Verification => ("Versand des Codes", ""),
        RetentionClass::Request => ("Abschluss der Anfrage", ""),
        RetentionClass::Logs => ("Protokollierung", ""),
    };
    let period = period_de(class.period());
    match class.anchor() {
        Anchor::Event => format!("{period} ab {event}{law}"),
        Anchor::EndOfCalendarYear => {
            format!("{period} ab Ende des Kalenderjahres {event}{law}")
        }
    }
}

/// German description of what happens when a retention period ends (Art. 30(1)(f)).
fn disposal_de(disposal: Disposal) -> &'static str {
    match disposal {
        Disposal::DeleteRecording => {
            "Löschung der Aufzeichnung in allen gespeicherten Versionen und des Transkripts"
        }
        Disposal::EraseSubject => {
            "Löschung aller Daten der Person; zuerst wird ihr Datenschlüssel vernichtet, sodass \
             auch Sicherungskopien unlesbar werden"
        }
        Disposal::Delete => "Löschung",
        Disposal::LogGroupRetention => "automatische Löschung durch die Protokollablage",
    }
}

/// Renders the registry's English legal references in German notation:
/// "Art. 6(1)(b), (f) GDPR; §257 HGB" becomes "Art. 6 Abs. 1 lit. b, lit. f DSGVO; § 257 HGB".
/// Phrases it does not know stay as they are.
pub fn legal_de(s: &str) -> String {
    let s = s
        .replace(
            "standard contractual clauses",
            "Standardvertragsklauseln der EU-Kommission",
        )
        .replace(
            "consent given in the call",
            "Einwilligung, im Gespräch erteilt",
        )
        .replace("GDPR", "DSGVO");
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s.as_str();
    while let Some(i) = rest.find(['(', '§']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix('§') {
            out.push('§');
            if !after.starts_with(' ') {
                out.push(' ');
            }
            rest = after;
            continue;
        }
        let inner_end = tail.find(')');
        let inner = inner_end.map(|end| &tail[1..end]);
        match (inner, inner_end) {
            (Some(inner), Some(end))
                if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit()) =>
            {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
                out.push_str("Abs. ");
                out.push_str(inner);
                rest = &tail[end + 1..];
            }
            (Some(inner), Some(end))
                if inner.len() == 1 && inner.chars().all(|c| c.is_ascii_lowercase()) =>
            {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
                out.push_str("lit. ");
                out.push_str(inner);
                rest = &tail[end + 1..];
            }
            _ => {
                out.push('(');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// German rendering of a registry country ("Germany (EU)" → "Deutschland (EU)").
fn country_de(country: &str) -> String {
    country.replace("Germany", "Deutschland")
}

/// Whether data sent to this recipient leaves the EU/EEA. A recipient with a transfer
/// safeguard is by the registry's definition outside; so is any country not marked "(EU)",
/// which keeps a third-country recipient visible even if its safeguard were missing.
fn is_third_country(r: &Recipient) -> bool {
    r.transfer_safeguard.is_some() || !r.country.contains("(EU)")
}

fn category_label(code: &str) -> &str {
    category_label_de(code).unwrap_or(code)
}

fn recipient_role(r: &Recipient) -> &'static str {
    recipient_role_de(r.name).unwrap_or(r.role)
}

fn retention_text(c: &DataCategory) -> String {
    match c.retention {
        Some(class) => retention_de(class),
        None => "keine feste Frist; solange es für den Zweck erforderlich ist".to_owned(),
    }
}

/// The registry categories of a purpose (unknown codes are caught by the registry's test).
fn purpose_categories(p: &Purpose) -> Vec<&'static DataCategory> {
    p.categories
        .iter()
        .filter_map(|c| registry::category(c))
        .collect()
}

/// Distinct legal bases of a purpose's categories, in registry order.
fn purpose_legal_bases(p: &Purpose) -> Vec<&'static str> {
    let mut bases: Vec<&'static str> = Vec::new();
    for c in purpose_categories(p) {
        if !bases.contains(&c.legal_basis) {
            bases.push(c.legal_basis);
        }
    }
    bases
}

/// Distinct recipients of the given categories, in order of first appearance, each with
/// the codes of the categories it receives.
fn recipients_of<'a>(
    categories: impl IntoIterator<Item = &'a DataCategory>,
) -> Vec<(Recipient, Vec<&'static str>)> {
    let mut out: Vec<(Recipient, Vec<&'static str>)> = Vec::new();
    for c in categories {
        for r in c.recipients {
            match out.iter_mut().find(|(known, _)| known.name == r.name) {
                Some((_, codes)) => codes.push(c.code),
                None => out.push((*r, vec![c.code])),
            }
        }
    }
    out
}

/// Every distinct recipient in the registry with the categories it receives.
fn all_recipients() -> Vec<(Recipient, Vec<&'static str>)> {
    recipients_of(CATEGORIES)
}

fn labels(codes: &[&str]) -> String {
    codes
        .iter()
        .map(|c| category_label(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Art. 15(1)(a)–(h) and Art. 15(2) GDPR information, built from the registry. This is
/// `information.json` in an export package; the keys are English, the texts written for the
/// data subject German, the registry's own descriptions English.
pub fn information() -> Value {
    let c = CONTROLLER;
    let controller = json!({
        "name": c.name,
        "representative": c.representative,
        "street": c.street,
        "postal_code_city": c.postal_code_city,
        "country": c.country,
        "email": c.email,
        "privacy_email": c.privacy_email,
        "website": c.website,
        "privacy_policy": PRIVACY_POLICY_URL,
    });

    let purposes: Vec<Value> = PURPOSES
        .iter()
        .map(|p| {
            json!({
                "code": p.code,
                "label_de": purpose_label_de(p.code),
                "description": p.description,
                "description_de": purpose_description_de(p.code),
                "legal_bases": purpose_legal_bases(p),
                "categories": p.categories,
            })
        })
        .collect();

    let categories: Vec<Value> = CATEGORIES
        .iter()
        .map(|c| {
            json!({
                "code": c.code,
                "label_de": category_label_de(c.code),
                "fields": c.fields,
                "fields_de": category_fields_de(c.code),
                "legal_basis": c.legal_basis,
                "legal_basis_de": legal_de(c.legal_basis),
            })
        })
        .collect();

    let recipients: Vec<Value> = all_recipients()
        .into_iter()
        .map(|(r, codes)| {
            json!({
                "name": r.name,
                "role": r.role,
                "role_de": recipient_role_de(r.name),
                "country": r.country,
                "third_country": is_third_country(&r),
                "transfer_safeguard": r.transfer_safeguard,
                "categories": codes,
            })
        })
        .collect();

    let retention: Vec<Value> = CATEGORIES
        .iter()
        .map(|c| {
            json!({
                "category": c.code,
                "class": c.retention.map(RetentionClass::code),
                "description": retention_text(c),
                "then": c.retention.map(|class| disposal_de(class.disposal())),
            })
        })
        .collect();

    let rights: Vec<Value> = RequestType::ALL
        .iter()
        .map(|t| {
            json!({
                "type": t.code(),
                "right": request_type_de(*t),
                "article": t.article(),
                "description": right_description_de(*t),
                "how_to_exercise": {
                    "route": DSAR_ROUTE,
                    "body": { "type": t.code() },
                    "or_email": c.privacy_email,
                },
            })
        })
        .collect();

    let sa = SUPERVISORY_AUTHORITY;
    let complaint = json!({
        "article": "Art. 77 DSGVO",
        "description": COMPLAINT_DE,
        "supervisory_authority": {
            "name": sa.name,
            "short_name": sa.short_name,
            "street": sa.street,
            "postal_code_city": sa.postal_code_city,
            "phone": sa.phone,
            "email": sa.email,
        },
    });

    let sources: Vec<Value> = SOURCES
        .iter()
        .map(|s| {
            json!({
                "code": s.code,
                "description": s.description_de,
                "categories": s.categories,
            })
        })
        .collect();
    let source = json!({
        "collected_from_data_subject": true,
        "other_sources": false,
        "description": NO_OTHER_SOURCES_DE,
        "sources": sources,
    });

    let automated_decision_making = json!({
        "exists": false,
        "profiling": false,
        "article": "Art. 22 DSGVO",
        "description": AUTOMATED_DECISIONS_DE,
    });

    let third_country_transfers: Vec<Value> = all_recipients()
        .into_iter()
        .filter(|(r, _)| is_third_country(r))
        .map(|(r, codes)| {
            json!({
                "recipient": r.name,
                "country": r.country,
                "safeguard": r.transfer_safeguard,
                "safeguard_de": r.transfer_safeguard.map(legal_de),
                "categories": codes,
            })
        })
        .collect();

    json!({
        "controller": controller,
        "purposes": purposes,
        "categories": categories,
        "recipients": recipients,
        "retention": retention,
        "rights": rights,
        "complaint": complaint,
        "source": source,
        "automated_decision_making": automated_decision_making,
        "third_country_transfers": third_country_transfers,
    })
}

/// What the read-me of an export package needs to know about it.
#[derive(Debug, Clone, Copy)]
pub struct ReadmeContext<'a> {
    pub request_id: &'a str,
    pub request_type: RequestType,
    pub created_at: DateTime<Utc>,
    /// Whether we hold any personal data for the identifiers the request named.
    pub holds_data: bool,
    pub calls: usize,
    pub recordings: usize,
    pub transcripts: usize,
}

/// A plain-text document with word-wrapped paragraphs and list items.
struct Doc {
    out: String,
}

impl Doc {
    fn new() -> Self {
        Self { out: String::new() }
    }

    /// A title underlined with `rule` (plain text) followed by a blank line.
    fn heading(&mut self, title: &str, rule: char) {
        self.out.push_str(title);
        self.out.push('\n');
        self.out
            .extend(std::iter::repeat_n(rule, title.chars().count().min(WIDTH)));
        self.out.push_str("\n\n");
    }

    fn para(&mut self, text: &str) {
        self.wrapped(text, "", "");
        self.blank();
    }

    /// One unwrapped-looking line (wrapped only if too long), no blank line after.
    fn line(&mut self, text: &str) {
        self.wrapped(text, "", "");
    }

    fn item(&mut self, text: &str) {
        self.wrapped(text, "- ", "  ");
    }

    fn sub_item(&mut self, text: &str) {
        self.wrapped(text, "  - ", "    ");
    }

    fn blank(&mut self) {
        self.out.push('\n');
    }

    fn wrapped(&mut self, text: &str, first: &str, rest: &str) {
        let mut line = String::from(first);
        let mut len = first.chars().count();
        let mut has_word = false;
        for word in glued_words(text) {
            let word = word.as_str();
            let word_len = word.chars().count();
            if has_word && len + 1 + word_len > WIDTH {
                self.out.push_str(line.trim_end());
                self.out.push('\n');
                line = String::from(rest);
                len = rest.chars().count();
                has_word = false;
            }
            if has_word {
                line.push(' ');
                len += 1;
            }
            line.push_str(word);
            len += word_len;
            has_word = true;
        }
        self.out.push_str(line.trim_end());
        self.out.push('\n');
    }

    fn finish(self) -> String {
        self.out
    }
}

/// The words of `text`, with references and numbers kept together with what follows them
/// ("§ 257", "Art. 6 Abs. 1 lit. b", "7 Tage"), so wrapping never splits them.
fn glued_words(text: &str) -> Vec<String> {
    const GLUE: [&str; 5] = ["§", "Art.", "Abs.", "lit.", "Nr."];
    let mut units = Vec::new();
    let mut open: Option<String> = None;
    for word in text.split_whitespace() {
        let mut unit = match open.take() {
            Some(mut unit) => {
                unit.push(' ');
                unit.push_str(word);
                unit
            }
            None => word.to_owned(),
        };
        if GLUE.iter().any(|g| word.ends_with(g)) || word.chars().all(|c| c.is_ascii_digit()) {
            open = Some(std::mem::take(&mut unit));
        } else {
            units.push(unit);
        }
    }
    units.extend(open);
    units
}

fn date_time_de(t: DateTime<Utc>) -> String {
    t.format("%d.%m.%Y um %H:%M Uhr (UTC)").to_string()
}

fn controller_block(doc: &mut Doc) {
    let c = CONTROLLER;
    doc.line(c.name);
    doc.line(c.street);
    doc.line(c.postal_code_city);
    doc.line(c.country);
    doc.line(&format!("Vertreten durch: {}", c.representative));
    doc.line(&format!("E-Mail: {}", c.email));
    doc.line(&format!("Datenschutz: {}", c.privacy_email));
    doc.line(&format!("Website: {}", c.website));
    doc.blank();
}

fn authority_block(doc: &mut Doc) {
    let sa = SUPERVISORY_AUTHORITY;
    doc.line(&format!("{} ({})", sa.name, sa.short_name));
    doc.line(sa.street);
    doc.line(sa.postal_code_city);
    doc.line(&format!("Telefon: {}", sa.phone));
    doc.line(&format!("E-Mail: {}", sa.email));
    doc.blank();
}

fn export_deleted_sentence(created_at: DateTime<Utc>) -> String {
    let export = RetentionClass::Export;
    let period = period_de(export.period());
    match export.due_at(created_at) {
        Some(due) => format!(
            "Wir löschen dieses Paket {period} nach seiner Erstellung, also am {}. Bitte \
             speichern Sie es, wenn Sie es behalten möchten, und bewahren Sie es sicher auf: \
             es enthält personenbezogene Daten.",
            due.format("%d.%m.%Y")
        ),
        None => format!("Wir löschen dieses Paket {period} nach seiner Erstellung."),
    }
}

/// The German read-me (`LIESMICH.txt`) of an export package: what the package is and
/// contains, then the Art. 15 information in plain German. Lines are at most 100 characters.
pub fn liesmich(ctx: &ReadmeContext) -> String {
    let portability = ctx.request_type == RequestType::Portability;
    let kind = if portability {
        RequestType::Portability
    } else {
        RequestType::Access
    };
    let mut doc = Doc::new();
    doc.heading(
        &format!(
            "LIESMICH: {} nach {}",
            request_type_de(kind),
            kind.article()
        ),
        '=',
    );
    doc.line(&format!("Anfragenummer: {}", ctx.request_id));
    doc.line(&format!(
        "Art der Anfrage: {} ({})",
        request_type_de(kind),
        kind.article()
    ));
    doc.line(&format!("Erstellt am: {}", date_time_de(ctx.created_at)));
    doc.line(&format!("Verantwortlich: {}", CONTROLLER.name));
    doc.blank();

    if !ctx.holds_data {
        no_data_body(&mut doc, ctx);
    } else {
        package_body(&mut doc, ctx, portability);
        information_body(&mut doc);
    }

    doc.heading("Kontakt", '-');
    doc.para(&format!(
        "Fragen zu diesem Paket oder zum Datenschutz richten Sie bitte unter Angabe der \
         Anfragenummer an {}. Verantwortlich ist:",
        CONTROLLER.privacy_email
    ));
    controller_block(&mut doc);
    doc.finish()
}

fn no_data_body(doc: &mut Doc, ctx: &ReadmeContext) {
    doc.heading("Ergebnis", '-');
    doc.para(
        "Zu den Angaben in Ihrer Anfrage (E-Mail-Adresse und/oder Telefonnummer) haben wir \
         keine personenbezogenen Daten über Sie gespeichert und verarbeiten keine.",
    );
    doc.para(&format!(
        "Gespeichert ist nur der Datensatz zu dieser Anfrage selbst (Art, Status, Daten und \
         Ergebnis). Ihn bewahren wir zum Nachweis {} auf und löschen ihn danach.",
        retention_de(RetentionClass::Request)
    ));
    doc.para(&export_deleted_sentence(ctx.created_at));
    doc.heading("Inhalt des Pakets", '-');
    doc.item(&format!("{README_FILE}: diese Datei."));
    doc.item(&format!(
        "{DATA_FILE}: nur der Datensatz zu Ihrer Anfrage, keine weiteren Daten."
    ));
    doc.item(&format!(
        "{INFORMATION_FILE}: die allgemeinen Informationen nach Art. 15 DSGVO zu unserer \
         Datenverarbeitung in maschinenlesbarer Form."
    ));
    doc.blank();
    doc.para(&format!(
        "Wie wir personenbezogene Daten verarbeiten, beschreibt unsere Datenschutzerklärung \
         unter {PRIVACY_POLICY_URL}."
    ));
    doc.heading("Beschwerderecht (Art. 77 DSGVO)", '-');
    doc.para(COMPLAINT_DE);
    authority_block(doc);
}

fn package_body(doc: &mut Doc, ctx: &ReadmeContext, portability: bool) {
    doc.heading("Was ist dieses Paket?", '-');
    if portability {
        doc.para(&format!(
            "Sie haben verlangt, die personenbezogenen Daten, die Sie uns bereitgestellt haben, \
             in einem strukturierten, gängigen und maschinenlesbaren Format zu erhalten (Art. 20 \
             DSGVO). Diese Daten finden Sie in {PORTABLE_JSON_FILE} und {PORTABLE_CSV_FILE}. \
             Außerdem enthält das Paket alle Daten, die wir über Sie gespeichert haben, und die \
             Informationen nach Art. 15 DSGVO."
        ));
    } else {
        doc.para(
            "Sie haben Auskunft über die personenbezogenen Daten verlangt, die wir über Sie \
             verarbeiten (Art. 15 DSGVO). Dieses Paket enthält eine Kopie aller Daten, die wir \
             zu den Angaben in Ihrer Anfrage gespeichert haben, und die Informationen nach \
             Art. 15 Abs. 1 und 2 DSGVO.",
        );
    }
    doc.para(&export_deleted_sentence(ctx.created_at));

    doc.heading("Inhalt des Pakets", '-');
    doc.item(&format!("{README_FILE}: diese Datei."));
    doc.item(&format!(
        "{DATA_FILE}: alle personenbezogenen Daten, die wir über Sie gespeichert haben, im \
         JSON-Format, darunter {} Telefonat(e).",
        ctx.calls
    ));
    doc.item(&format!(
        "{INFORMATION_FILE}: die Informationen nach Art. 15 Abs. 1 und 2 DSGVO in \
         maschinenlesbarer Form (dieselben wie unten)."
    ));
    doc.item(&format!(
        "{RECORDINGS_DIR}: Gesprächsaufzeichnungen als Audiodateien, Anzahl: {}.",
        ctx.recordings
    ));
    doc.item(&format!(
        "{TRANSCRIPTS_DIR}: wörtliche Transkripte der aufgezeichneten Gespräche, Anzahl: {}.",
        ctx.transcripts
    ));
    if portability {
        doc.item(&format!(
            "{PORTABLE_JSON_FILE}: die Daten, die Sie uns bereitgestellt haben, im JSON-Format."
        ));
        doc.item(&format!(
            "{PORTABLE_CSV_FILE}: dieselben Daten als CSV-Tabelle, z. B. für Tabellenkalkulationen."
        ));
    }
    doc.blank();
}

/// The Art. 15(1)(a)–(h) and 15(2) information in plain German.
fn information_body(doc: &mut Doc) {
    doc.heading(
        "Zwecke und Rechtsgrundlagen (Art. 15 Abs. 1 lit. a DSGVO)",
        '-',
    );
    for p in PURPOSES {
        let bases: Vec<String> = purpose_legal_bases(p).into_iter().map(legal_de).collect();
        doc.item(&format!(
            "{}: {} Rechtsgrundlagen: {}. Daten: {}.",
            purpose_label_de(p.code).unwrap_or(p.code),
            purpose_description_de(p.code).unwrap_or(p.description),
            bases.join("; "),
            labels(p.categories)
        ));
    }
    doc.blank();

    doc.heading("Kategorien personenbezogener Daten (lit. b)", '-');
    for c in CATEGORIES {
        doc.item(&format!(
            "{}: {}. Rechtsgrundlage: {}.",
            category_label(c.code),
            category_fields_de(c.code).unwrap_or(c.fields),
            legal_de(c.legal_basis)
        ));
    }
    doc.blank();

    doc.heading("Empfänger (lit. c)", '-');
    for (r, codes) in all_recipients() {
        doc.item(&format!(
            "{}, {}. {}. Erhält: {}.",
            r.name,
            country_de(r.country),
            recipient_role(&r),
            labels(&codes)
        ));
    }
    doc.blank();
    doc.para(INTERNAL_RECIPIENTS_DE);
    doc.para(PROCESSING_AGREEMENTS_DE);

    doc.heading("Übermittlung in Drittländer (Art. 15 Abs. 2 DSGVO)", '-');
    let transfers: Vec<_> = all_recipients()
        .into_iter()
        .filter(|(r, _)| is_third_country(r))
        .collect();
    if transfers.is_empty() {
        doc.para("Wir übermitteln keine personenbezogenen Daten in Drittländer.");
    } else {
        doc.para(
            "Folgende Empfänger verarbeiten Daten außerhalb der EU bzw. des EWR. Die \
             Übermittlung ist jeweils so abgesichert:",
        );
        for (r, codes) in transfers {
            let safeguard = r
                .transfer_safeguard
                .map(legal_de)
                .unwrap_or_else(|| "keine Garantie hinterlegt".to_owned());
            doc.item(&format!(
                "{}, {}: {}. Betrifft: {}.",
                r.name,
                country_de(r.country),
                safeguard,
                labels(&codes)
            ));
        }
        doc.blank();
    }

    doc.heading("Speicherdauer (lit. d)", '-');
    for c in CATEGORIES {
        doc.item(&format!(
            "{}: {}.",
            category_label(c.code),
            retention_text(c)
        ));
    }
    doc.blank();
    doc.para("Nach Ablauf der Frist löschen wir die Daten.");

    doc.heading("Ihre Rechte (lit. e)", '-');
    for t in RequestType::ALL {
        doc.item(&format!(
            "{} ({}): {}",
            request_type_de(t),
            t.article(),
            right_description_de(t)
        ));
    }
    doc.blank();
    doc.para(&format!(
        "So machen Sie ein Recht geltend: per E-Mail an {} oder über unsere Schnittstelle für \
         Datenschutzanfragen ({DSAR_ROUTE}) mit dem Feld \"type\" und dem Code des Rechts: {}.",
        CONTROLLER.privacy_email,
        RequestType::ALL
            .iter()
            .map(|t| format!("\"{}\" ({})", t.code(), request_type_de(*t)))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    doc.heading("Beschwerderecht (lit. f, Art. 77 DSGVO)", '-');
    doc.para(COMPLAINT_DE);
    authority_block(doc);

    doc.heading("Herkunft der Daten (lit. g)", '-');
    doc.para("Wir erhalten Ihre Daten aus folgenden Quellen:");
    for s in SOURCES {
        doc.item(&format!(
            "{} (betrifft: {}).",
            s.description_de,
            labels(s.categories)
        ));
    }
    doc.blank();
    doc.para(NO_OTHER_SOURCES_DE);

    doc.heading("Automatisierte Entscheidungen (lit. h)", '-');
    doc.para(AUTOMATED_DECISIONS_DE);
}

/// The technical and organisational measures (Art. 30(1)(g), Art. 32).
fn measures_de() -> Vec<String> {
    vec![
        "Verarbeitung und Speicherung ausschließlich in der AWS-Region eu-central-1 (Frankfurt \
         am Main); die Infrastrukturvorlage lehnt jede andere Region ab."
            .to_owned(),
        "Verschlüsselung ruhender Daten: S3 (SSE-KMS) und DynamoDB mit einem \
         kundenverwalteten KMS-Schlüssel mit automatischer Rotation; Bucket-Richtlinien weisen \
         Uploads ohne KMS-Verschlüsselung ab."
            .to_owned(),
        "Zusätzliche Verschlüsselung der personenbezogenen Attribute mit AES-256-GCM und einem \
         eigenen Datenschlüssel je betroffener Person (KMS GenerateDataKey, an die Personen-ID \
         gebunden); Löschung durch Vernichtung des Schlüssels macht auch Sicherungen unlesbar."
            .to_owned(),
        "Übertragung nur über TLS; Bucket-Richtlinien verweigern Zugriffe ohne TLS \
         (aws:SecureTransport)."
            .to_owned(),
        "Zugriff nach dem Prinzip der geringsten Rechte: eine eigene IAM-Rolle je Funktion; \
         Schnittstellen für Mitarbeiter nur mit IAM-Autorisierung; öffentliche Schnittstellen \
         gedrosselt."
            .to_owned(),
        "Suche nach E-Mail-Adresse oder Telefonnummer nur über Blind-Indizes (HMAC mit einem \
         KMS-Schlüssel); keine personenbezogenen Daten im Klartext in Schlüsseln, Indizes oder \
         Objektnamen."
            .to_owned(),
        format!(
            "Strukturierte Protokolle ohne personenbezogene Daten, aufbewahrt {}; jeder \
             Verarbeitungsschritt wird mit opaken IDs protokolliert (Audit).",
            period_de(RetentionClass::Logs.period())
        ),
        "Prüfung der Signatur jedes Webhooks des Telefonie-Anbieters; Datenminimierung beim \
         Anbieter: Gespräche werden dort gelöscht, sobald unsere Kopie gesichert ist."
            .to_owned(),
        "Automatische Löschung nach den Fristen: tägliche Löschroutine, dazu DynamoDB-TTL und \
         S3-Lebenszyklusregeln als Rückfallebene."
            .to_owned(),
        format!(
            "Betroffenenanfragen werden mit einem Einmalcode bestätigt (gültig {}, nur als \
             Hash gespeichert); Datenpakete bleiben nur {} gespeichert.",
            period_de(RetentionClass::Verification.period()),
            period_de(RetentionClass::Export.period())
        ),
    ]
}

/// The Art. 30(1) GDPR record of processing activities, in German, as Markdown. Printed by
/// the `ropa` binary.
pub fn ropa() -> String {
    let c = CONTROLLER;
    let sa = SUPERVISORY_AUTHORITY;
    let mut doc = Doc::new();
    doc.line("# Verzeichnis von Verarbeitungstätigkeiten (Art. 30 Abs. 1 DSGVO)");
    doc.blank();
    doc.para(
        "Polly KI, KI-Telefonagent. Erzeugt aus dem Verarbeitungsregister im Code \
         (`shared/src/domain/registry.rs`), derselben Quelle, aus der die Löschroutine und \
         die Auskünfte nach Art. 15 DSGVO entstehen.",
    );

    doc.line("## Verantwortlicher (lit. a)");
    doc.blank();
    doc.item(&format!(
        "{}, {}, {}, {}",
        c.name, c.street, c.postal_code_city, c.country
    ));
    doc.item(&format!("Vertreten durch: {}", c.representative));
    doc.item(&format!("E-Mail: {}; Website: {}", c.email, c.website));
    doc.item(&format!("Datenschutzkontakt: {}", c.privacy_email));
    doc.item(&format!(
        "Zuständige Aufsichtsbehörde: {} ({}), {}, {}",
        sa.name, sa.short_name, sa.street, sa.postal_code_city
    ));
    doc.blank();

    doc.line("## Verarbeitungstätigkeiten");
    doc.blank();
    for (i, p) in PURPOSES.iter().enumerate() {
        ropa_purpose(&mut doc, i + 1, p);
    }

    doc.line("## Weitere Fristen");
    doc.blank();
    for (what, class) in [
        (
            "Datenpakete zu Auskunft und Datenübertragbarkeit",
            RetentionClass::Export,
        ),
        (
            "Einmalcodes zur Bestätigung von Anfragen",
            RetentionClass::Verification,
        ),
        (
            "Anwendungsprotokolle, ohne personenbezogene Daten",
            RetentionClass::Logs,
        ),
    ] {
        doc.item(&format!(
            "{what} (`{}`): {}; danach {}.",
            class.code(),
            retention_de(class),
            disposal_de(class.disposal())
        ));
    }
    doc.item(&format!(
        "Vertragsunterlagen je nach Art: {}.",
        RetentionClass::ALL
            .iter()
            .filter(|class| matches!(class, RetentionClass::Contract(_)))
            .map(|class| format!("`{}` {}", class.code(), retention_de(*class)))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    doc.blank();

    doc.line("## Technische und organisatorische Maßnahmen (lit. g, Art. 32 DSGVO)");
    doc.blank();
    for m in measures_de() {
        doc.item(&m);
    }
    doc.finish()
}

fn ropa_purpose(doc: &mut Doc, number: usize, p: &Purpose) {
    let categories = purpose_categories(p);
    let recipients = recipients_of(categories.iter().copied());

    doc.line(&format!(
        "### {number}. {} (`{}`)",
        purpose_label_de(p.code).unwrap_or(p.code),
        p.code
    ));
    doc.blank();
    doc.item(&format!(
        "**Zweck (lit. b):** {}",
        purpose_description_de(p.code).unwrap_or(p.description)
    ));
    let bases: Vec<String> = purpose_legal_bases(p).into_iter().map(legal_de).collect();
    doc.item(&format!("**Rechtsgrundlagen:** {}", bases.join("; ")));
    doc.item(&format!(
        "**Kategorien betroffener Personen (lit. c):** {}",
        data_subjects_de(p.code).unwrap_or("betroffene Personen")
    ));
    doc.item("**Kategorien personenbezogener Daten (lit. c):**");
    for c in &categories {
        doc.sub_item(&format!(
            "{} (`{}`): {}",
            category_label(c.code),
            c.code,
            category_fields_de(c.code).unwrap_or(c.fields)
        ));
    }
    doc.item("**Empfänger (lit. d):**");
    for (r, _) in &recipients {
        doc.sub_item(&format!(
            "{}, {}. {}",
            r.name,
            country_de(r.country),
            recipient_role(r)
        ));
    }
    doc.sub_item(
        "Intern: berechtigte Mitarbeiterinnen und Mitarbeiter (Vertrieb, Kundenservice, IT)",
    );
    let transfers: Vec<_> = recipients
        .iter()
        .filter(|(r, _)| is_third_country(r))
        .collect();
    if transfers.is_empty() {
        doc.item("**Übermittlungen in Drittländer (lit. e):** keine");
    } else {
        doc.item("**Übermittlungen in Drittländer (lit. e):**");
        for (r, _) in transfers {
            doc.sub_item(&format!(
                "{}, {}: {}",
                r.name,
                country_de(r.country),
                r.transfer_safeguard
                    .map(legal_de)
                    .unwrap_or_else(|| "KEINE GARANTIE HINTERLEGT".to_owned())
            ));
        }
    }
    doc.item("**Löschfristen (lit. f):**");
    for c in &categories {
        let then = c
            .retention
            .map(|class| format!("; danach {}", disposal_de(class.disposal())))
            .unwrap_or_default();
        doc.sub_item(&format!(
            "{}: {}{then}",
            category_label(c.code),
            retention_text(c)
        ));
    }
    doc.blank();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn ctx(request_type: RequestType, holds_data: bool) -> ReadmeContext<'static> {
        ReadmeContext {
            request_id: "req-0192f0c4",
            request_type,
            created_at: DateTime::parse_from_rfc3339("2027-02-28T14:05:00Z")
                .unwrap()
                .with_timezone(&Utc),
            holds_data,
            calls: 3,
            recordings: 2,
            transcripts: 1,
        }
    }

    #[test]
    fn every_registry_category_has_a_german_label_and_field_list() {
        for c in CATEGORIES {
            assert!(category_label_de(c.code).is_some(), "{}", c.code);
            assert!(category_fields_de(c.code).is_some(), "{}", c.code);
        }
        assert_eq!(category_label_de("no_such_category"), None);
    }

    #[test]
    fn every_registry_purpose_has_a_german_label_description_and_data_subjects() {
        for p in PURPOSES {
            assert!(purpose_label_de(p.code).is_some(), "{}", p.code);
            assert!(purpose_description_de(p.code).is_some(), "{}", p.code);
            assert!(data_subjects_de(p.code).is_some(), "{}", p.code);
        }
        assert_eq!(purpose_label_de("no_such_purpose"), None);
    }

    #[test]
    fn every_registry_recipient_has_a_german_role() {
        for (r, _) in all_recipients() {
            assert!(recipient_role_de(r.name).is_some(), "{}", r.name);
        }
    }

    #[test]
    fn every_retention_class_has_a_german_description() {
        for class in RetentionClass::ALL {
            let text = retention_de(class);
            assert!(text.contains(" ab "), "{text}");
            assert!(!text.trim().is_empty());
        }
        assert_eq!(
            retention_de(RetentionClass::Recording),
            "6 Kalendermonate ab Gesprächsende"
        );
        assert_eq!(
            retention_de(RetentionClass::Lead),
            "3 Jahre ab dem letzten Kontakt"
        );
        assert_eq!(
            retention_de(RetentionClass::Contract(
                crate::retention::ContractRecords::BookingVouchers
            )),
            "8 Jahre ab Ende des Kalenderjahres des Vertragsendes (§ 257 HGB, § 147 AO)"
        );
        assert_eq!(
            retention_de(RetentionClass::Verification),
            "15 Minuten ab Versand des Codes"
        );
    }

    #[test]
    fn legal_references_are_rendered_in_german_notation() {
        assert_eq!(
            legal_de("Art. 6(1)(b), (f) GDPR"),
            "Art. 6 Abs. 1 lit. b, lit. f DSGVO"
        );
        assert_eq!(
            legal_de("Art. 6(1)(b), (c) GDPR; §257 HGB, §147 AO"),
            "Art. 6 Abs. 1 lit. b, lit. c DSGVO; § 257 HGB, § 147 AO"
        );
        assert_eq!(
            legal_de("standard contractual clauses, Art. 46(2)(c) GDPR"),
            "Standardvertragsklauseln der EU-Kommission, Art. 46 Abs. 2 lit. c DSGVO"
        );
        for c in CATEGORIES {
            let de = legal_de(c.legal_basis);
            assert!(!de.contains("GDPR") && !de.contains("consent"), "{de}");
        }
    }

    #[test]
    fn information_has_every_art_15_item_and_none_is_empty() {
        let info = information();
        let keys = [
            "controller",
            "purposes",
            "categories",
            "recipients",
            "retention",
            "rights",
            "complaint",
            "source",
            "automated_decision_making",
            "third_country_transfers",
        ];
        let object = info.as_object().unwrap();
        assert_eq!(object.len(), keys.len());
        for key in keys {
            let value = &info[key];
            let non_empty = match value {
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => false,
            };
            assert!(non_empty, "{key} missing or empty");
        }
        assert_eq!(info["purposes"].as_array().unwrap().len(), PURPOSES.len());
        assert_eq!(
            info["categories"].as_array().unwrap().len(),
            CATEGORIES.len()
        );
        assert_eq!(
            info["retention"].as_array().unwrap().len(),
            CATEGORIES.len()
        );
        assert_eq!(info["automated_decision_making"]["exists"], false);
        assert_eq!(info["source"]["other_sources"], false);
        assert_eq!(
            info["complaint"]["supervisory_authority"]["email"],
            "poststelle@ldi.nrw.de"
        );
        assert_eq!(
            info["controller"]["privacy_email"],
            "datenschutz@pollyki.de"
        );
    }

    #[test]
    fn information_lists_every_right_with_its_article_and_request_type() {
        let info = information();
        let rights = info["rights"].as_array().unwrap();
        for t in RequestType::ALL {
            let right = rights
                .iter()
                .find(|r| r["type"] == t.code())
                .unwrap_or_else(|| panic!("{} missing", t.code()));
            assert_eq!(right["article"], t.article());
            assert_eq!(right["how_to_exercise"]["route"], "POST /v1/dsar");
        }
    }

    #[test]
    fn every_us_recipient_appears_in_third_country_transfers_with_its_safeguard() {
        let info = information();
        let transfers = info["third_country_transfers"].as_array().unwrap();
        let mut us = 0;
        for c in CATEGORIES {
            for r in c.recipients.iter().filter(|r| r.country == "USA") {
                us += 1;
                let t = transfers
                    .iter()
                    .find(|t| t["recipient"] == r.name)
                    .unwrap_or_else(|| panic!("{} missing", r.name));
                assert_eq!(t["country"], "USA");
                assert_eq!(t["safeguard"], r.transfer_safeguard.unwrap());
            }
        }
        assert!(us > 0, "the registry names US recipients");
        assert!(transfers
            .iter()
            .all(|t| t["recipient"] != registry::AWS.name));
    }

    #[test]
    fn information_recipients_are_distinct_and_carry_their_categories() {
        let info = information();
        let recipients = info["recipients"].as_array().unwrap();
        let mut names: Vec<_> = recipients.iter().map(|r| r["name"].clone()).collect();
        names.dedup();
        assert_eq!(names.len(), recipients.len());
        let openai = recipients
            .iter()
            .find(|r| r["name"] == registry::OPENAI.name)
            .unwrap();
        assert_eq!(openai["categories"], json!(["call_content", "recording"]));
    }

    #[test]
    fn every_category_has_a_source() {
        for c in CATEGORIES {
            assert!(
                SOURCES.iter().any(|s| s.categories.contains(&c.code)),
                "{}",
                c.code
            );
        }
    }

    #[test]
    fn wrapping_keeps_references_and_numbers_with_what_follows() {
        assert_eq!(
            glued_words("nach (§ 257 HGB) und Art. 6 Abs. 1 lit. b, 7 Tage"),
            [
                "nach",
                "(§ 257 HGB)",
                "und",
                "Art. 6 Abs. 1 lit. b,",
                "7 Tage"
            ]
        );
    }

    #[test]
    fn liesmich_contains_the_key_facts_and_every_file() {
        let text = liesmich(&ctx(RequestType::Access, true));
        let flat = flat(&text);
        for fact in [
            "Art. 15 DSGVO",
            "LDI NRW",
            "Kavalleriestraße 2-4",
            "40213 Düsseldorf",
            "0211/38424-0",
            "poststelle@ldi.nrw.de",
            "Art. 77 DSGVO",
            "7 Tage",
            "07.03.2027",
            "28.02.2027 um 14:05 Uhr",
            "req-0192f0c4",
            "LIESMICH.txt",
            "data.json",
            "information.json",
            "recordings/",
            "transcripts/",
            "3 Telefonat",
            "Anzahl: 2",
            "Anzahl: 1",
            "Standardvertragsklauseln",
            "6 Kalendermonate ab Gesprächsende",
            "POST /v1/dsar",
            "Art. 22 DSGVO",
            "datenschutz@pollyki.de",
            "Am Bugapark 60",
        ] {
            assert!(flat.contains(fact), "missing {fact:?}");
        }
        for p in PURPOSES {
            assert!(
                flat.contains(purpose_label_de(p.code).unwrap()),
                "{}",
                p.code
            );
        }
        for (r, _) in all_recipients() {
            assert!(flat.contains(r.name), "{}", r.name);
        }
        assert!(!flat.contains("portable.json"));
    }

    #[test]
    fn liesmich_for_portability_names_the_portable_files() {
        let flat = flat(&liesmich(&ctx(RequestType::Portability, true)));
        assert!(flat.contains("Art. 20 DSGVO"));
        assert!(flat.contains("portable.json"));
        assert!(flat.contains("portable.csv"));
        assert!(flat.contains("data.json"));
    }

    #[test]
    fn liesmich_lines_are_at_most_100_characters() {
        for holds_data in [true, false] {
            for t in [RequestType::Access, RequestType::Portability] {
                let text = liesmich(&ctx(t, holds_data));
                for line in text.lines() {
                    assert!(line.chars().count() <= 100, "too long: {line}");
                }
            }
        }
        for line in ropa().lines() {
            assert!(line.chars().count() <= 100, "too long: {line}");
        }
    }

    #[test]
    fn liesmich_without_data_says_we_hold_none_and_names_the_authority() {
        let flat = flat(&liesmich(&ctx(RequestType::Access, false)));
        assert!(flat.contains("keine personenbezogenen Daten über Sie gespeichert"));
        assert!(flat.contains("Datensatz zu dieser Anfrage selbst"));
        assert!(flat.contains("LDI NRW"));
        assert!(flat.contains("Art. 77 DSGVO"));
        assert!(flat.contains("Kavalleriestraße 2-4"));
        assert!(flat.contains("datenschutz@pollyki.de"));
        assert!(flat.contains("data.json: nur der Datensatz zu Ihrer Anfrage"));
        assert!(flat.contains("information.json"));
        assert!(!flat.contains("recordings/"));
        assert!(!flat.contains("Empfänger (lit. c)"));
    }

    #[test]
    fn ropa_names_every_purpose_recipient_and_measure() {
        let text = ropa();
        let flat = flat(&text);
        for p in PURPOSES {
            assert!(flat.contains(&format!("`{}`", p.code)), "{}", p.code);
            assert!(
                flat.contains(purpose_label_de(p.code).unwrap()),
                "{}",
                p.code
            );
        }
        for c in CATEGORIES {
            for r in c.recipients {
                assert!(flat.contains(r.name), "{}", r.name);
            }
        }
        for fact in [
            "Art. 30 Abs. 1 DSGVO",
            "KoBra Dataworks GmbH",
            "Standardvertragsklauseln",
            "eu-central-1",
            "AES-256-GCM",
            "TLS",
            "IAM",
            "Blind-Indizes",
            "30 Tage",
            "lit. g",
        ] {
            assert!(flat.contains(fact), "missing {fact:?}");
        }
    }
}
