//! The Art. 30(1) record of processing activities and the technical and organisational
//! measures it lists.

use super::*;

/// The technical and organisational measures (Art. 30(1)(g), Art. 32).
pub(crate) fn measures_de() -> Vec<String> {
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
         (`crates/domain/src/registry.rs`), derselben Quelle, aus der die Löschroutine und \
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
        (
            "Prüfprotokoll (wer hat wann was getan; nur zufällige Kennungen, keine Namen, \
             Adressen oder Nummern)",
            RetentionClass::Audit,
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

pub(crate) fn ropa_purpose(doc: &mut Doc, number: usize, p: &Purpose) {
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

/// [`ropa`], with the CRM (`registry::CRM`) as a recipient of the callback purpose's
/// follow-up records when one is configured (`CRM_WEBHOOK_URL`).
pub fn ropa_with(crm: bool) -> String {
    let text = ropa();
    if !crm {
        return text;
    }
    let r = registry::CRM;
    let section = format!(
        "## Empfänger bei konfiguriertem CRM (lit. d)\n\n- {}, {}. {}: erhält je analysiertem Gespräch den Nachfass-Datensatz (Kategorien: {}) und Mitteilungen nach Art. 19 DSGVO (Berichtigung, Einschränkung, Widerspruch, Löschung).\n\n",
        r.name,
        country_de(r.country),
        recipient_role(&r),
        super::information::CRM_CATEGORIES.join(", ")
    );
    match text.find("## Technische und organisatorische Maßnahmen") {
        Some(at) => format!("{}{}{}", &text[..at], section, &text[at..]),
        None => text + &section,
    }
}
