//! The privacy center's pages: German and English texts and their markup. Every value
//! that came from a visitor or a record is escaped; no inline script or style.

use shared::domain::dsar::mail::date_de;
use shared::domain::retention::berlin_time;
use shared::domain::RequestId;
use shared::dsar::service::StatusView;
use shared::dsar::{RequestStatus, RequestType};
use shared::http::FieldProblem;

use super::ui::{document, Lang, Pick};
use super::{error_for, esc, field_id, RequestForm};

/// A right: its name, one or two plain sentences, the article.
fn right(lang: Lang, t: RequestType) -> (&'static str, &'static str) {
    match t {
        RequestType::Access => (
            lang.t("Auskunft", "Access"),
            lang.t(
                "Sie erfahren, welche Daten wir über Sie gespeichert haben, wofür und wie lange, und erhalten eine Kopie davon.",
                "Find out which data we hold about you, why and for how long, and get a copy of it.",
            ),
        ),
        RequestType::Portability => (
            lang.t("Datenübertragbarkeit", "Data portability"),
            lang.t(
                "Sie erhalten die Daten, die Sie uns gegeben haben, in einem maschinenlesbaren Format (JSON und CSV), etwa um sie an einen anderen Anbieter zu geben.",
                "Get the data you gave us in a machine-readable format (JSON and CSV), for example to take it to another provider.",
            ),
        ),
        RequestType::Rectification => (
            lang.t("Berichtigung", "Rectification"),
            lang.t(
                "Sind Angaben über Sie falsch oder unvollständig, berichtigen wir sie.",
                "If data about you is wrong or incomplete, we correct it.",
            ),
        ),
        RequestType::Erasure => (
            lang.t("Löschung", "Erasure"),
            lang.t(
                "Wir löschen Ihre Daten. Müssen wir etwas gesetzlich aufbewahren, sperren wir es stattdessen und löschen es, sobald die Frist endet.",
                "We erase your data. Anything the law makes us keep is locked away instead and erased when that period ends.",
            ),
        ),
        RequestType::Restriction => (
            lang.t("Einschränkung der Verarbeitung", "Restriction of processing"),
            lang.t(
                "Wir bewahren Ihre Daten auf, verwenden sie aber nicht mehr, etwa solange geklärt wird, ob sie richtig sind.",
                "We keep your data but stop using it, for example while we check whether it is correct.",
            ),
        ),
        RequestType::Objection => (
            lang.t("Widerspruch – keine Anrufe mehr", "Objection – no more calls"),
            lang.t(
                "Sie widersprechen der Verarbeitung Ihrer Daten; wir rufen Sie nicht mehr an.",
                "You object to the processing of your data; we will not call you again.",
            ),
        ),
        RequestType::WithdrawConsent => (
            lang.t("Einwilligung widerrufen", "Withdraw consent"),
            lang.t(
                "Sie widerrufen Ihre Einwilligung in Anrufe und Aufzeichnung, so einfach, wie Sie sie gegeben haben. Was bis dahin geschah, bleibt rechtmäßig.",
                "Withdraw your consent to calls and recording as easily as you gave it. What happened before stays lawful.",
            ),
        ),
    }
}

/// `GET /privacy`.
pub fn rights_page(lang: Lang) -> String {
    let p = lang.prefix();
    let mut body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n<ul class=\"rights\">\n",
        lang.t("Ihre Datenschutzrechte", "Your privacy rights"),
        lang.t(
            "Hier können Sie Ihre Rechte nach der Datenschutz-Grundverordnung ausüben. Wählen Sie ein Recht; wir antworten innerhalb eines Monats.",
            "Here you can exercise your rights under the General Data Protection Regulation. Choose a right; we answer within one month.",
        )
    );
    for t in RequestType::ALL {
        let (name, text) = right(lang, t);
        body.push_str(&format!(
            "<li><h2><a href=\"{p}/privacy/request?type={code}\">{name}</a></h2>\n<p>{text} <span class=\"article\">({article})</span></p></li>\n",
            code = t.code(),
            article = t.article(),
        ));
    }
    body.push_str("</ul>\n");
    document(
        lang,
        "/privacy",
        lang.t("Datenschutz-Center", "Privacy center"),
        &body,
    )
}

/// The visitor's language for an API field problem (same field names, same checks).
fn field_message(lang: Lang, e: &FieldProblem) -> String {
    let s: &str = match (e.field.as_str(), e.code) {
        ("type", _) => lang.t(
            "Bitte wählen Sie, welches Recht Sie ausüben möchten.",
            "Please choose the right you want to exercise.",
        ),
        ("email", "required") => lang.t(
            "Bitte geben Sie Ihre E-Mail-Adresse oder Ihre Telefonnummer an.",
            "Please give your email address or your phone number.",
        ),
        ("email", _) | ("corrections.email", _) => lang.t(
            "Bitte geben Sie eine gültige E-Mail-Adresse an, z. B. name@beispiel.de.",
            "Please give a valid email address, e.g. name@example.com.",
        ),
        ("phone", _) | ("corrections.phone", _) => lang.t(
            "Bitte geben Sie eine gültige Telefonnummer an, z. B. +49 30 1234567.",
            "Please give a valid phone number, e.g. +49 30 1234567.",
        ),
        ("message", _) | ("corrections.notes", _) => lang.t(
            "Bitte höchstens 2000 Zeichen und keine Steuerzeichen.",
            "At most 2000 characters and no control characters, please.",
        ),
        ("corrections.first_name", _) | ("corrections.last_name", _) => lang.t(
            "Bitte geben Sie einen Namen mit höchstens 100 Zeichen an, ohne Ziffern oder Steuerzeichen.",
            "Please give a name of at most 100 characters, without digits or control characters.",
        ),
        ("corrections", "not_allowed") => lang.t(
            "Korrekturen gehören zu einem Antrag auf Berichtigung; bitte wählen Sie „Berichtigung“ oder lassen Sie diese Felder leer.",
            "Corrections belong to a rectification request; please choose “Rectification” or leave these fields empty.",
        ),
        ("corrections", _) => lang.t(
            "Bitte nennen Sie mindestens eine Angabe, die wir berichtigen sollen.",
            "Please name at least one detail we should correct.",
        ),
        _ => lang.t(
            "Das Formular enthielt ein Feld, das es nicht kennt. Bitte laden Sie die Seite neu.",
            "The form held a field it does not know. Please reload the page.",
        ),
    };
    s.to_owned()
}

/// Where an error shows: the id of its field (or of the form).
fn anchor(field: &str) -> String {
    match field {
        "type" => "f-type-access".to_owned(),
        "body" => "request-form".to_owned(),
        f => format!("f-{}", field_id(f)),
    }
}

fn error_summary(lang: Lang, errors: &[FieldProblem]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "<div class=\"error-summary\" role=\"alert\" tabindex=\"-1\" aria-labelledby=\"error-summary-title\">\n<h2 id=\"error-summary-title\">{}</h2>\n<ul>\n",
        lang.t("Bitte prüfen Sie Ihre Angaben", "Please check your entries")
    );
    for e in errors {
        s.push_str(&format!(
            "<li><a href=\"#{}\">{}</a></li>\n",
            anchor(&e.field),
            esc(&field_message(lang, e))
        ));
    }
    s.push_str("</ul>\n</div>\n");
    s
}

struct Input<'a> {
    name: &'a str,
    label: &'a str,
    kind: &'a str,
    autocomplete: &'a str,
    hint: Option<&'a str>,
    extra: &'a str,
}

fn input(lang: Lang, form: &RequestForm, errors: &[FieldProblem], i: Input) -> String {
    let id = field_id(i.name);
    let err = error_for(errors, i.name);
    let mut described = Vec::new();
    let hint = i
        .hint
        .map(|h| {
            described.push(format!("h-{id}"));
            format!("<p class=\"hint\" id=\"h-{id}\">{h}</p>\n")
        })
        .unwrap_or_default();
    let error = err
        .map(|e| {
            described.push(format!("e-{id}"));
            format!(
                "<p class=\"field-error\" id=\"e-{id}\">{}</p>\n",
                esc(&field_message(lang, e))
            )
        })
        .unwrap_or_default();
    let aria = match (err.is_some(), described.is_empty()) {
        // The contract's markup: an invalid input is described by its error.
        (true, _) => format!(" aria-invalid=\"true\" aria-describedby=\"e-{id}\""),
        (false, false) => format!(" aria-describedby=\"{}\"", described.join(" ")),
        (false, true) => String::new(),
    };
    let value = esc(form.value(i.name));
    let control = if i.kind == "textarea" {
        format!(
            "<textarea id=\"f-{id}\" name=\"{name}\" rows=\"5\"{extra}{aria}>{value}</textarea>",
            name = i.name,
            extra = i.extra
        )
    } else {
        format!(
            "<input id=\"f-{id}\" name=\"{name}\" type=\"{kind}\" autocomplete=\"{ac}\" value=\"{value}\"{extra}{aria}>",
            name = i.name,
            kind = i.kind,
            ac = i.autocomplete,
            extra = i.extra
        )
    };
    format!(
        "<div class=\"field{cls}\">\n<label for=\"f-{id}\">{label}</label>\n{hint}{error}{control}\n</div>\n",
        cls = if err.is_some() { " field--error" } else { "" },
        label = i.label,
    )
    .replace("{lang}", lang.code())
}

/// The request form; `path` is the GET path it was reached by (for the language switch).
pub fn request_page(lang: Lang, path: &str, form: &RequestForm, errors: &[FieldProblem]) -> String {
    let p = lang.prefix();
    let chosen = form.request_type.as_deref().and_then(RequestType::parse);
    let (title, intro) = match chosen {
        Some(RequestType::WithdrawConsent) if path == "/privacy/withdraw" => (
            lang.t("Einwilligung widerrufen", "Withdraw consent"),
            lang.t(
                "Geben Sie die E-Mail-Adresse oder Telefonnummer an, mit der Sie sich angemeldet haben. Wir rufen Sie danach nicht mehr an.",
                "Give the email address or phone number you signed up with. We will not call you again.",
            ),
        ),
        Some(RequestType::Objection) if path == "/privacy/no-calls" => (
            lang.t("Keine Anrufe mehr", "No more calls"),
            lang.t(
                "Geben Sie die E-Mail-Adresse oder Telefonnummer an, unter der wir Sie erreicht haben. Wir rufen Sie danach nicht mehr an.",
                "Give the email address or phone number we reached you at. We will not call you again.",
            ),
        ),
        _ => (
            lang.t("Antrag stellen", "Make a request"),
            lang.t(
                "Mit einer E-Mail-Adresse schicken wir Ihnen einen Code, mit dem Sie den Antrag bestätigen. Nur mit einer Telefonnummer prüft unser Team Ihre Identität.",
                "With an email address we send you a code to confirm the request. With a phone number only, our team checks your identity.",
            ),
        ),
    };
    let mut body = format!("<h1>{title}</h1>\n");
    body.push_str(&error_summary(lang, errors));
    body.push_str(&format!(
        "<p>{intro}</p>\n<form id=\"request-form\" method=\"post\" action=\"{p}/privacy/request\" novalidate>\n"
    ));
    // The right.
    let type_err = error_for(errors, "type");
    body.push_str(&format!(
        "<fieldset class=\"field{}\"{}>\n<legend>{}</legend>\n",
        if type_err.is_some() {
            " field--error"
        } else {
            ""
        },
        if type_err.is_some() {
            " aria-invalid=\"true\" aria-describedby=\"e-type\""
        } else {
            ""
        },
        lang.t(
            "Welches Recht möchten Sie ausüben?",
            "Which right do you want to exercise?"
        )
    ));
    if let Some(e) = type_err {
        body.push_str(&format!(
            "<p class=\"field-error\" id=\"e-type\">{}</p>\n",
            esc(&field_message(lang, e))
        ));
    }
    for t in RequestType::ALL {
        let (name, _) = right(lang, t);
        body.push_str(&format!(
            "<div class=\"choice\"><input type=\"radio\" id=\"f-type-{code}\" name=\"type\" value=\"{code}\"{checked}><label for=\"f-type-{code}\">{name} <span class=\"article\">({article})</span></label></div>\n",
            code = t.code(),
            checked = if chosen == Some(t) { " checked" } else { "" },
            article = t.article(),
        ));
    }
    body.push_str("</fieldset>\n");
    // Who.
    body.push_str(&format!(
        "<fieldset>\n<legend>{}</legend>\n",
        lang.t("Wie finden wir Ihre Daten?", "How do we find your data?")
    ));
    body.push_str(&input(
        lang,
        form,
        errors,
        Input {
            name: "email",
            label: lang.t("E-Mail-Adresse", "Email address"),
            kind: "email",
            autocomplete: "email",
            hint: Some(lang.t(
                "An diese Adresse schicken wir den Bestätigungscode.",
                "We send the confirmation code to this address.",
            )),
            extra: " maxlength=\"254\" spellcheck=\"false\"",
        },
    ));
    body.push_str(&input(
        lang,
        form,
        errors,
        Input {
            name: "phone",
            label: lang.t("Telefonnummer (optional)", "Phone number (optional)"),
            kind: "tel",
            autocomplete: "tel",
            hint: None,
            extra: " maxlength=\"32\"",
        },
    ));
    body.push_str("</fieldset>\n");
    body.push_str(&input(
        lang,
        form,
        errors,
        Input {
            name: "message",
            label: lang.t("Nachricht an uns (optional)", "Message to us (optional)"),
            kind: "textarea",
            autocomplete: "off",
            hint: None,
            extra: " maxlength=\"2000\"",
        },
    ));
    // Rectification: the right values.
    let corr_err = error_for(errors, "corrections");
    body.push_str(&format!(
        "<fieldset id=\"f-corrections\" class=\"corrections{}\"{}>\n<legend>{}</legend>\n<p class=\"hint\">{}</p>\n",
        if corr_err.is_some() { " field--error" } else { "" },
        if corr_err.is_some() {
            " aria-invalid=\"true\" aria-describedby=\"e-corrections\""
        } else {
            ""
        },
        lang.t("Nur bei Berichtigung: die richtigen Angaben", "Rectification only: the correct details"),
        lang.t(
            "Füllen Sie nur aus, was wir ändern sollen.",
            "Fill in only what we should change.",
        ),
    ));
    if let Some(e) = corr_err {
        body.push_str(&format!(
            "<p class=\"field-error\" id=\"e-corrections\">{}</p>\n",
            esc(&field_message(lang, e))
        ));
    }
    for (name, label, kind, ac) in [
        (
            "corrections.first_name",
            lang.t("Vorname", "First name"),
            "text",
            "given-name",
        ),
        (
            "corrections.last_name",
            lang.t("Nachname", "Last name"),
            "text",
            "family-name",
        ),
        (
            "corrections.email",
            lang.t("E-Mail-Adresse", "Email address"),
            "email",
            "email",
        ),
        (
            "corrections.phone",
            lang.t("Telefonnummer", "Phone number"),
            "tel",
            "tel",
        ),
        (
            "corrections.notes",
            lang.t("Anmerkungen", "Notes"),
            "textarea",
            "off",
        ),
    ] {
        body.push_str(&input(
            lang,
            form,
            errors,
            Input {
                name,
                label,
                kind,
                autocomplete: ac,
                hint: None,
                extra: "",
            },
        ));
    }
    body.push_str("</fieldset>\n");
    body.push_str(&format!(
        "<button type=\"submit\">{}</button>\n</form>\n<p><a href=\"{p}/privacy\">{}</a></p>\n",
        lang.t("Antrag absenden", "Send request"),
        lang.t("Zurück zur Übersicht Ihrer Rechte", "Back to your rights"),
    ));
    let path_q = match (path, chosen) {
        ("/privacy/request", Some(t)) => format!("/privacy/request?type={}", t.code()),
        _ => path.to_owned(),
    };
    document(lang, &path_q, title, &body)
}

pub enum CodeError {
    Required,
    Wrong(u32),
}

/// The code page. `again`: reached from the status page without a valid cookie (the
/// same page for any id: it tells nothing about the request).
pub fn code_page(lang: Lang, id: &RequestId, error: Option<CodeError>, again: bool) -> String {
    let p = lang.prefix();
    let title = lang.t("Code eingeben", "Enter your code");
    let mut body = format!("<h1>{title}</h1>\n");
    let message = error.map(|e| match e {
        CodeError::Required => lang
            .t(
                "Bitte geben Sie den Code aus der E-Mail ein.",
                "Please enter the code from the email.",
            )
            .to_owned(),
        CodeError::Wrong(n) => match lang {
            Lang::De => format!("Der Code ist nicht richtig. Sie haben noch {n} Versuch(e)."),
            Lang::En => format!("The code is not correct. You have {n} more attempt(s)."),
        },
    });
    if let Some(m) = &message {
        body.push_str(&format!(
            "<div class=\"error-summary\" role=\"alert\" tabindex=\"-1\" aria-labelledby=\"error-summary-title\">\n<h2 id=\"error-summary-title\">{}</h2>\n<ul><li><a href=\"#f-code\">{}</a></li></ul>\n</div>\n",
            lang.t("Bitte prüfen Sie Ihre Angaben", "Please check your entries"),
            esc(m)
        ));
    }
    let intro = if again {
        lang.t(
            "Um den Stand dieses Antrags zu sehen, geben Sie bitte den Code aus unserer E-Mail ein. Haben Sie den Code schon verwendet, öffnen Sie die Seite bitte auf dem Gerät, auf dem Sie ihn eingegeben haben; über jeden Schritt informieren wir Sie außerdem per E-Mail.",
            "To see the status of this request, please enter the code from our email. If you have used the code already, open this page on the device you entered it on; we also tell you about every step by email.",
        )
    } else {
        lang.t(
            "Wenn wir Sie unter der angegebenen E-Mail-Adresse erreichen können, haben wir Ihnen einen Code geschickt. Er gilt 15 Minuten.",
            "If we can reach you at the email address given, we have sent you a code. It is valid for 15 minutes.",
        )
    };
    let (err_html, aria) = match &message {
        Some(m) => (
            format!("<p class=\"field-error\" id=\"e-code\">{}</p>\n", esc(m)),
            " aria-invalid=\"true\" aria-describedby=\"e-code\"",
        ),
        None => (String::new(), ""),
    };
    body.push_str(&format!(
        "<p>{intro}</p>\n<form method=\"post\" action=\"{p}/privacy/requests/{id}/code\" novalidate>\n\
<div class=\"field{cls}\">\n<label for=\"f-code\">{label}</label>\n{err_html}\
<input id=\"f-code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"32\" spellcheck=\"false\"{aria}>\n</div>\n\
<button type=\"submit\">{button}</button>\n</form>\n<p><a href=\"{p}/privacy\">{back}</a></p>\n",
        cls = if message.is_some() { " field--error" } else { "" },
        label = lang.t("Code aus der E-Mail", "Code from the email"),
        button = lang.t("Bestätigen", "Confirm"),
        back = lang.t("Einen neuen Antrag stellen", "Make a new request"),
    ));
    let path = if again {
        format!("/privacy/requests/{id}")
    } else {
        format!("/privacy/requests/{id}/code")
    };
    document(lang, &path, title, &body)
}

fn type_label(lang: Lang, t: RequestType) -> &'static str {
    right(lang, t).0
}

fn status_label(lang: Lang, s: RequestStatus) -> &'static str {
    match s {
        RequestStatus::AwaitingVerification => lang.t(
            "Wartet auf den Code aus der E-Mail",
            "Waiting for the code from the email",
        ),
        RequestStatus::AwaitingIdentityCheck => {
            lang.t("Wir prüfen Ihre Identität", "We are checking your identity")
        }
        RequestStatus::InProgress => lang.t("In Bearbeitung", "In progress"),
        RequestStatus::Completed => lang.t("Erledigt", "Completed"),
        RequestStatus::Denied => lang.t(
            "Abgelehnt (Begründung per E-Mail)",
            "Denied (reasons by email)",
        ),
        RequestStatus::VerificationFailed => {
            lang.t("Beendet ohne Bestätigung", "Ended without confirmation")
        }
        RequestStatus::Failed => lang.t(
            "In Bearbeitung (verzögert, unser Team kümmert sich)",
            "In progress (delayed, our team is on it)",
        ),
        RequestStatus::Cancelled => lang.t("Abgebrochen", "Cancelled"),
    }
}

fn outcome_label(lang: Lang, code: &str) -> String {
    let known = match code {
        "export_ready" => Some(lang.t(
            "Ihre Daten stehen zum Herunterladen bereit.",
            "Your data is ready to download.",
        )),
        "no_data" => Some(lang.t(
            "Wir haben keine Daten zu Ihnen gespeichert.",
            "We hold no data about you.",
        )),
        "denied" => Some(lang.t("Abgelehnt", "Denied")),
        "cancelled" => Some(lang.t("Abgebrochen", "Cancelled")),
        "code_expired" => Some(lang.t("Der Code ist abgelaufen.", "The code expired.")),
        "too_many_attempts" => Some(lang.t(
            "Der Code wurde zu oft falsch eingegeben.",
            "The code was entered wrongly too often.",
        )),
        _ => None,
    };
    known.map(str::to_owned).unwrap_or_else(|| match lang {
        Lang::De => format!("Erledigt ({})", esc(code)),
        Lang::En => format!("Done ({})", esc(code)),
    })
}

fn when(lang: Lang, t: chrono::DateTime<chrono::Utc>) -> String {
    let b = berlin_time(t);
    match lang {
        Lang::De => b.format("%d.%m.%Y, %H:%M Uhr").to_string(),
        Lang::En => b.format("%Y-%m-%d %H:%M (Berlin time)").to_string(),
    }
}

/// The status page of the cookie's holder.
pub fn status_page(lang: Lang, v: &StatusView) -> String {
    let p = lang.prefix();
    let title = lang.t("Stand Ihres Antrags", "Status of your request");
    let due = match lang {
        Lang::De => date_de(v.due_at),
        Lang::En => v.due_at.format("%Y-%m-%d").to_string(),
    };
    let days = if v.days_left >= 0 {
        v.days_left.to_string()
    } else {
        lang.t("überfällig", "overdue").to_owned()
    };
    let mut rows = vec![
        (
            "type",
            lang.t("Art des Antrags", "Type of request"),
            format!(
                "{} ({})",
                type_label(lang, v.request_type),
                v.request_type.article()
            ),
        ),
        (
            "status",
            lang.t("Stand", "Status"),
            status_label(lang, v.status).to_owned(),
        ),
        ("due_at", lang.t("Frist bis", "Due by"), due),
        ("days_left", lang.t("Tage übrig", "Days left"), days),
        (
            "extended",
            lang.t("Frist verlängert", "Deadline extended"),
            if v.extended {
                lang.t("Ja", "Yes")
            } else {
                lang.t("Nein", "No")
            }
            .to_owned(),
        ),
    ];
    if v.extended {
        rows.push((
            "extension_reason",
            lang.t("Grund der Verlängerung", "Reason for the extension"),
            // The request record holds no free text (the reason is staff's words and
            // may name people); the reason went out with the extension mail.
            lang.t(
                "Den Grund haben wir Ihnen mit der Verlängerung per E-Mail mitgeteilt.",
                "We gave you the reason by email with the extension.",
            )
            .to_owned(),
        ));
    }
    if let Some(o) = &v.outcome {
        rows.push((
            "outcome",
            lang.t("Ergebnis", "Outcome"),
            outcome_label(lang, o),
        ));
    }
    let mut body = format!(
        "<h1>{title}</h1>\n<p>{} <code>{}</code></p>\n<dl class=\"status\">\n",
        lang.t("Anfragenummer:", "Request number:"),
        esc(&v.request_id)
    );
    for (field, label, value) in rows {
        body.push_str(&format!(
            "<dt>{label}</dt><dd data-field=\"{field}\">{value}</dd>\n"
        ));
    }
    body.push_str("</dl>\n");
    if let Some(at) = v.erasure_scheduled_at {
        body.push_str(&format!(
            "<p class=\"notice\" data-field=\"erasure_scheduled_at\">{} {}. {}</p>\n",
            lang.t(
                "Die Löschung ist geplant für",
                "The erasure is scheduled for"
            ),
            when(lang, at),
            lang.t(
                "Bis dahin können Sie sie mit dem Link aus unserer Eingangsbestätigung abbrechen.",
                "Until then you can cancel it with the link in our acknowledgement email.",
            )
        ));
    }
    if let Some(url) = &v.download_url {
        let until = v
            .download_expires_at
            .map(|t| when(lang, t))
            .unwrap_or_default();
        body.push_str(&format!(
            "<p><a id=\"download\" class=\"button\" href=\"{}\" download>{}</a></p>\n<p class=\"hint\">{} {until}. {}</p>\n",
            esc(url),
            lang.t("Ihre Daten herunterladen (ZIP)", "Download your data (ZIP)"),
            lang.t("Der Link gilt bis", "The link is valid until"),
            lang.t(
                "Laden Sie diese Seite neu, um einen neuen Link zu erhalten.",
                "Reload this page for a new link.",
            ),
        ));
    }
    body.push_str(&format!(
        "<p><a href=\"{p}/privacy\">{}</a></p>\n",
        lang.t("Zur Übersicht Ihrer Rechte", "To your rights")
    ));
    document(
        lang,
        &format!("/privacy/requests/{}", esc(&v.request_id)),
        title,
        &body,
    )
}

/// What a plain message page says.
#[derive(Clone, Copy)]
pub enum Notice {
    NotFound,
    Method,
    TooLarge,
    WrongContentType,
    Malformed,
    RateLimited,
    Ambiguous,
    AlreadyVerified,
    Ended,
    Unavailable,
    Internal,
}

pub fn notice_page(lang: Lang, n: Notice) -> String {
    let (title, text) = match n {
        Notice::NotFound => (
            lang.t("Seite nicht gefunden", "Page not found"),
            lang.t("Diese Seite gibt es nicht.", "This page does not exist."),
        ),
        Notice::Method => (
            lang.t("Nicht möglich", "Not possible"),
            lang.t("Diese Seite nimmt diese Anfrage nicht an.", "This page does not accept this request."),
        ),
        Notice::TooLarge => (
            lang.t("Zu viel Text", "Too much text"),
            lang.t(
                "Das Formular war zu groß. Bitte kürzen Sie Ihre Nachricht.",
                "The form was too large. Please shorten your message.",
            ),
        ),
        Notice::WrongContentType | Notice::Malformed => (
            lang.t("Formular nicht lesbar", "Form not readable"),
            lang.t(
                "Wir konnten das Formular nicht lesen. Bitte laden Sie die Seite neu und senden Sie es noch einmal.",
                "We could not read the form. Please reload the page and send it again.",
            ),
        ),
        Notice::RateLimited => (
            lang.t("Zu viele Anträge", "Too many requests"),
            lang.t(
                "Für heute sind es zu viele Anträge. Bitte versuchen Sie es morgen noch einmal oder schreiben Sie uns.",
                "There were too many requests today. Please try again tomorrow or write to us.",
            ),
        ),
        Notice::Ambiguous => (
            lang.t("Bitte ein Antrag pro Person", "One request per person, please"),
            lang.t(
                "Die E-Mail-Adresse und die Telefonnummer gehören zu verschiedenen Personen. Bitte stellen Sie je Person einen eigenen Antrag.",
                "The email address and the phone number belong to different people. Please make one request per person.",
            ),
        ),
        Notice::AlreadyVerified => (
            lang.t("Schon bestätigt", "Already confirmed"),
            lang.t(
                "Dieser Antrag ist schon bestätigt; ein Code gilt nur einmal. Über jeden weiteren Schritt informieren wir Sie per E-Mail.",
                "This request is confirmed already; a code works only once. We tell you about every further step by email.",
            ),
        ),
        Notice::Ended => (
            lang.t("Antrag beendet", "Request ended"),
            lang.t(
                "Der Code ist abgelaufen oder wurde zu oft falsch eingegeben; der Antrag ist beendet. Bitte stellen Sie einen neuen.",
                "The code expired or was entered wrongly too often; the request has ended. Please make a new one.",
            ),
        ),
        Notice::Unavailable => (
            lang.t("Vorübergehend nicht erreichbar", "Temporarily unavailable"),
            lang.t("Bitte versuchen Sie es gleich noch einmal.", "Please try again in a moment."),
        ),
        Notice::Internal => (
            lang.t("Fehler", "Error"),
            lang.t(
                "Etwas ist schiefgegangen. Bitte schreiben Sie uns, wenn es wieder passiert.",
                "Something went wrong. Please write to us if it happens again.",
            ),
        ),
    };
    let p = lang.prefix();
    let body = format!(
        "<h1>{title}</h1>\n<p>{text}</p>\n<p><a href=\"{p}/privacy\">{}</a></p>\n",
        lang.t("Zum Datenschutz-Center", "To the privacy center")
    );
    document(lang, "/privacy", title, &body)
}
