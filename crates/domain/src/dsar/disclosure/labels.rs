//! German labels for the registry's codes, the fixed texts on recipients, sources,
//! automated decisions and complaints, and the helpers that turn registry entries into
//! German sentences.

use super::*;

pub(crate) const WIDTH: usize = 100;

/// Staff who see personal data (§6.1 of the policy); not a registry recipient because
/// they are part of the controller, but people are told about them.
pub(crate) const INTERNAL_RECIPIENTS_DE: &str =
    include_str!("../../../texts/de/internal_recipients.txt").trim_ascii_end();

pub(crate) const PROCESSING_AGREEMENTS_DE: &str =
    include_str!("../../../texts/de/processing_agreements.txt").trim_ascii_end();

pub(crate) const AUTOMATED_DECISIONS_DE: &str =
    include_str!("../../../texts/de/automated_decisions.txt").trim_ascii_end();

pub(crate) const COMPLAINT_DE: &str =
    include_str!("../../../texts/de/complaint.txt").trim_ascii_end();

pub(crate) const NO_OTHER_SOURCES_DE: &str =
    include_str!("../../../texts/de/no_other_sources.txt").trim_ascii_end();

/// Where the data of each category comes from (Art. 15(1)(g)). All of it comes from the
/// subject; a test checks that every registry category has a source.
pub(crate) struct Source {
    pub(crate) code: &'static str,
    pub(crate) description_de: &'static str,
    pub(crate) categories: &'static [&'static str],
}

pub(crate) const SOURCES: &[Source] = &[
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
            "do_not_call",
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
        categories: &["data_subject_requests", "do_not_call"],
    },
];

/// How long a do-not-call listing is kept (R7.1): said in the Art. 15 information.
pub const DO_NOT_CALL_RETENTION_DE: &str = "ohne feste Frist, solange Ihr Widerspruch gilt, \
     auch nach Löschung Ihrer übrigen Daten: Wir sind verpflichtet, Sie nicht mehr anzurufen, \
     und können das nur, wenn wir Ihre Nummer wiedererkennen (Art. 17 Abs. 3 lit. b, \
     Art. 21 Abs. 3 DSGVO, § 7 UWG); die Sperre endet nur, wenn Sie uns von dieser Nummer \
     aus erneut einwilligen";

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
        "do_not_call" => "Sperrliste für Anrufe",
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
        "do_not_call" => {
            "Ihre Telefonnummer nur als nicht umkehrbarer Prüfwert, Datum der Aufnahme in die \
             Sperrliste, Anlass (Ihr Widerspruch, Ihr Widerspruch im Gespräch, Ihre Angabe, sich \
             nicht angemeldet zu haben, oder durch uns) sowie Datum und Anlass einer Aufhebung"
        }
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
pub(crate) fn data_subjects_de(purpose_code: &str) -> Option<&'static str> {
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
        "CRM (sales follow-up)" => {
            "Interner Empfänger: unser Vertrieb, der analysierte Gespräche nachfasst, über sein CRM (signierter Webhook)"
        }
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
        RetentionClass::Audit => ("dem protokollierten Vorgang", " (Art. 5 Abs. 2 DSGVO)"),
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
pub(crate) fn disposal_de(disposal: Disposal) -> &'static str {
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
pub(crate) fn country_de(country: &str) -> String {
    country.replace("Germany", "Deutschland")
}

/// Whether data sent to this recipient leaves the EU/EEA. A recipient with a transfer
/// safeguard is by the registry's definition outside; so is any country not marked "(EU)",
/// which keeps a third-country recipient visible even if its safeguard were missing.
pub(crate) fn is_third_country(r: &Recipient) -> bool {
    r.transfer_safeguard.is_some() || !r.country.contains("(EU)")
}

pub(crate) fn category_label(code: &str) -> &str {
    category_label_de(code).unwrap_or(code)
}

pub(crate) fn recipient_role(r: &Recipient) -> &'static str {
    recipient_role_de(r.name).unwrap_or(r.role)
}

pub(crate) fn retention_text(c: &DataCategory) -> String {
    if c.code == crate::registry::DO_NOT_CALL {
        return DO_NOT_CALL_RETENTION_DE.to_owned();
    }
    match c.retention {
        Some(class) => retention_de(class),
        None => "keine feste Frist; solange es für den Zweck erforderlich ist".to_owned(),
    }
}

/// The registry categories of a purpose (unknown codes are caught by the registry's test).
pub(crate) fn purpose_categories(p: &Purpose) -> Vec<&'static DataCategory> {
    p.categories
        .iter()
        .filter_map(|c| registry::category(c))
        .collect()
}

/// Distinct legal bases of a purpose's categories, in registry order.
pub(crate) fn purpose_legal_bases(p: &Purpose) -> Vec<&'static str> {
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
pub(crate) fn recipients_of<'a>(
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
pub(crate) fn all_recipients() -> Vec<(Recipient, Vec<&'static str>)> {
    recipients_of(CATEGORIES)
}

pub(crate) fn labels(codes: &[&str]) -> String {
    codes
        .iter()
        .map(|c| category_label(c))
        .collect::<Vec<_>>()
        .join(", ")
}
