//! The German read-me of an export package (`LIESMICH.txt`).

use super::*;

/// What the read-me of an export package needs to know about it.
/// What the read-me of an export package needs to know about it.
#[derive(Debug, Clone, Copy)]
pub struct ReadmeContext<'a> {
    pub request_id: &'a str,
    pub request_type: RequestType,
    pub created_at: DateTime<Utc>,
    /// Whether we hold any personal data for the identifiers the request named.
    pub holds_data: bool,
    /// Whether a sign-up is held; without one, what we hold are calls with the
    /// requester's number that no sign-up is linked to (metadata only).
    pub sign_up: bool,
    pub calls: usize,
    pub recordings: usize,
    pub transcripts: usize,
    /// Whether sales received a follow-up record of the subject after a call (issue 17);
    /// `data.json` then shows it under `sales_followup`.
    pub sales_followup: bool,
}

pub(crate) fn date_time_de(t: DateTime<Utc>) -> String {
    crate::retention::berlin_time(t)
        .format("%d.%m.%Y um %H:%M Uhr")
        .to_string()
}

pub(crate) fn controller_block(doc: &mut Doc) {
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

pub(crate) fn authority_block(doc: &mut Doc) {
    let sa = SUPERVISORY_AUTHORITY;
    doc.line(&format!("{} ({})", sa.name, sa.short_name));
    doc.line(sa.street);
    doc.line(sa.postal_code_city);
    doc.line(&format!("Telefon: {}", sa.phone));
    doc.line(&format!("E-Mail: {}", sa.email));
    doc.blank();
}

pub(crate) fn export_deleted_sentence(created_at: DateTime<Utc>) -> String {
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

pub(crate) fn no_data_body(doc: &mut Doc, ctx: &ReadmeContext) {
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

pub(crate) fn package_body(doc: &mut Doc, ctx: &ReadmeContext, portability: bool) {
    doc.heading("Was ist dieses Paket?", '-');
    let portable_files = portability && ctx.sign_up;
    if portability && !ctx.sign_up {
        doc.para(
            "Sie haben verlangt, die personenbezogenen Daten, die Sie uns bereitgestellt haben, \
             in einem strukturierten, gängigen und maschinenlesbaren Format zu erhalten (Art. 20 \
             DSGVO). Solche Daten (etwa aus einer Anmeldung) haben wir zu den Angaben in Ihrer \
             Anfrage nicht gespeichert; das Paket enthält deshalb keine eigene Datei dafür. Es \
             enthält alle Daten, die wir zu Ihrer Telefonnummer gespeichert haben, und die \
             Informationen nach Art. 15 DSGVO.",
        );
    } else if portability {
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
    if !ctx.sign_up {
        doc.para(&format!(
            "Eine Anmeldung haben wir zu den Angaben in Ihrer Anfrage nicht gespeichert. \
             Gespeichert sind {} Telefonat(e) mit Ihrer Telefonnummer, die wir keiner Anmeldung \
             zuordnen konnten. Von diesen Telefonaten haben wir nur die Verbindungsdaten \
             gespeichert (z. B. Beginn, Ende, Dauer, Richtung, Status, ob eingewilligt wurde), \
             keine Gesprächsinhalte, keine Aufzeichnungen und keine Transkripte.",
            ctx.calls
        ));
    }
    doc.para(&export_deleted_sentence(ctx.created_at));

    doc.heading("Inhalt des Pakets", '-');
    doc.item(&format!("{README_FILE}: diese Datei."));
    doc.item(&format!(
        "{DATA_FILE}: alle personenbezogenen Daten, die wir über Sie gespeichert haben, im \
         JSON-Format, darunter {} Telefonat(e).",
        ctx.calls
    ));
    if ctx.sales_followup {
        doc.item(&format!(
            "{DATA_FILE}, Abschnitt \"sales_followup\": der Datensatz, den unser Vertrieb nach \
             dem Telefonat erhalten hat (Name, Kontaktdaten, Ihr Wunschzeitfenster, die \
             Zusammenfassung und Auswertung des Gesprächs, der Stand Ihrer Einwilligung). \
             Transkripte und Aufzeichnungen erhält der Vertrieb nicht."
        ));
    }
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
    if portable_files {
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
pub(crate) fn information_body(doc: &mut Doc) {
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
