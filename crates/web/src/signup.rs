//! The sign-up pages: the form (with its errors), the thanks page and the error pages of
//! the sign-up routes, in German and English. The `signup` function parses and validates
//! with the same code as `POST /v1/signups` and hands this module the entered values and
//! the failed fields (names and codes as in the API's problem+json).

use crate::form::{self, checkbox, error_for, error_summary, hidden, textarea, FieldError, Input};
use crate::html::escape;
use crate::page::Page;
use crate::policy::format_version;
use crate::Lang;

/// The day codes of the preferred window the form offers, as the API names them. Sunday
/// is left out: no call is ever placed on a Sunday (R7.2).
pub const FORM_DAYS: [&str; 6] = ["mon", "tue", "wed", "thu", "fri", "sat"];

fn day_name(lang: Lang, code: &str) -> &'static str {
    match (lang, code) {
        (Lang::De, "mon") => "Montag",
        (Lang::De, "tue") => "Dienstag",
        (Lang::De, "wed") => "Mittwoch",
        (Lang::De, "thu") => "Donnerstag",
        (Lang::De, "fri") => "Freitag",
        (Lang::De, "sat") => "Samstag",
        (Lang::En, "mon") => "Monday",
        (Lang::En, "tue") => "Tuesday",
        (Lang::En, "wed") => "Wednesday",
        (Lang::En, "thu") => "Thursday",
        (Lang::En, "fri") => "Friday",
        (Lang::En, "sat") => "Saturday",
        _ => "",
    }
}

/// The message of a failed field in the page's language, from the API's field name and
/// error code (the same checks as the JSON route).
pub fn field_message(lang: Lang, field: &str, code: &str) -> &'static str {
    let de = lang == Lang::De;
    let pick = |d: &'static str, e: &'static str| if de { d } else { e };
    match (field, code) {
        ("first_name", "required" | "empty") => pick(
            "Bitte geben Sie Ihren Vornamen an.",
            "Please enter your first name.",
        ),
        ("last_name", "required" | "empty") => pick(
            "Bitte geben Sie Ihren Nachnamen an.",
            "Please enter your last name.",
        ),
        ("first_name" | "last_name", "too_long") => pick(
            "Der Name darf höchstens 100 Zeichen lang sein.",
            "The name may be at most 100 characters long.",
        ),
        ("first_name" | "last_name", _) => pick(
            "Der Name enthält unzulässige Zeichen (Steuerzeichen).",
            "The name contains characters that are not allowed (control characters).",
        ),
        ("email", "required" | "empty") => pick(
            "Bitte geben Sie Ihre E-Mail-Adresse an.",
            "Please enter your email address.",
        ),
        ("email", "too_long") => pick(
            "Die E-Mail-Adresse darf höchstens 254 Zeichen lang sein.",
            "The email address may be at most 254 characters long.",
        ),
        ("email", _) => pick(
            "Bitte geben Sie eine gültige E-Mail-Adresse an, z. B. name@beispiel.de.",
            "Please enter a valid email address, e.g. name@example.com.",
        ),
        ("phone", "required" | "empty") => pick(
            "Bitte geben Sie Ihre Telefonnummer an.",
            "Please enter your phone number.",
        ),
        ("phone", "too_long") => pick(
            "Die Telefonnummer ist zu lang.",
            "The phone number is too long.",
        ),
        ("phone", "forbidden_character") => pick(
            "Die Telefonnummer enthält unzulässige Zeichen; erlaubt sind Ziffern, Leerzeichen, +, -, / und Klammern.",
            "The phone number contains characters that are not allowed; use digits, spaces, +, -, / and brackets.",
        ),
        ("phone", _) => pick(
            "Bitte geben Sie eine erreichbare Telefonnummer an; ohne Ländervorwahl lesen wir sie als deutsche Nummer.",
            "Please enter a phone number we can call; without a country code we read it as a German number.",
        ),
        ("notes", "too_long") => pick(
            "Die Anmerkungen dürfen höchstens 2000 Zeichen lang sein.",
            "The notes may be at most 2000 characters long.",
        ),
        ("notes", _) => pick(
            "Die Anmerkungen enthalten unzulässige Zeichen (Steuerzeichen).",
            "The notes contain characters that are not allowed (control characters).",
        ),
        ("call_window.from", "required") => pick(
            "Bitte geben Sie an, ab wann wir Sie anrufen dürfen, oder lassen Sie das Zeitfenster ganz leer.",
            "Please enter from when we may call you, or leave the whole time window empty.",
        ),
        ("call_window.to", "required") => pick(
            "Bitte geben Sie an, bis wann wir Sie anrufen dürfen, oder lassen Sie das Zeitfenster ganz leer.",
            "Please enter until when we may call you, or leave the whole time window empty.",
        ),
        ("call_window.to", "empty_window") => pick(
            "Das Ende des Zeitfensters muss nach dem Anfang liegen.",
            "The end of the time window must be after its start.",
        ),
        ("call_window.from" | "call_window.to", _) => pick(
            "Bitte geben Sie eine Uhrzeit im Format HH:MM an (24 Stunden).",
            "Please enter a time as HH:MM (24 hours).",
        ),
        ("call_window.days", _) => pick(
            "Bitte wählen Sie Wochentage aus der Liste.",
            "Please choose days from the list.",
        ),
        ("call_window", "outside_calling_hours") => pick(
            "Dieses Zeitfenster liegt ganz außerhalb unserer Anrufzeiten (Mo–Fr 8–20 Uhr, Sa 9–18 Uhr); bitte wählen Sie ein anderes.",
            "This time window lies entirely outside our calling hours (Mon–Fri 8 am–8 pm, Sat 9 am–6 pm); please choose another one.",
        ),
        ("call_window", _) => pick(
            "Bitte prüfen Sie das Zeitfenster.",
            "Please check the time window.",
        ),
        ("consent.contact_by_phone", _) => pick(
            "Wir rufen nur an, wenn Sie zustimmen. Bitte bestätigen Sie die Einwilligung.",
            "We only call people who agree to it. Please tick the consent box.",
        ),
        ("consent.privacy_policy_version" | "consent", _) => pick(
            "Unsere Datenschutzerklärung wurde geändert. Bitte lesen Sie die aktuelle Fassung und senden Sie das Formular erneut ab.",
            "Our privacy policy has changed. Please read the current version and send the form again.",
        ),
        _ => pick("Bitte prüfen Sie diese Angabe.", "Please check this entry."),
    }
}

/// The field an error is shown at: errors on the consent object belong to its checkbox.
pub fn display_field(field: &str) -> &str {
    match field {
        "consent" | "consent.privacy_policy_version" => "consent.contact_by_phone",
        f => f,
    }
}

/// The sign-up form page. `values` are the submitted pairs (empty for a fresh form);
/// `errors` the failed fields with their messages (see [`field_message`], [`display_field`]);
/// `policy_version` the current version, sent back hidden and shown.
pub fn form_page(
    lang: Lang,
    values: &[(String, String)],
    errors: &[FieldError],
    policy_version: &str,
) -> Page {
    let de = lang == Lang::De;
    let pick = |d: &'static str, e: &'static str| if de { d } else { e };
    let v = |name: &str| form::value(values, name).unwrap_or("");
    let err = |name: &str| error_for(errors, name);
    let mut b = String::with_capacity(8192);
    b.push_str(&error_summary(lang, errors));
    b.push_str(&format!(
        "<h1>{}</h1>\n<p class=\"lead\">{}</p>\n<p>{}</p>\n",
        pick("Rückruf von Polly anfordern", "Request a call from Polly"),
        pick(
            "Tragen Sie sich ein, und Polly, unser KI-Telefonagent, ruft Sie an, um Ihr Anliegen zu besprechen.",
            "Sign up, and Polly, our AI phone agent, will call you to talk about what you need.",
        ),
        pick(
            "Alle Felder sind Pflichtfelder, außer wo „(optional)“ steht.",
            "All fields are required unless marked “(optional)”.",
        ),
    ));
    b.push_str(&format!(
        "<form method=\"post\" action=\"{}\" novalidate>\n",
        escape(&lang.path("/signup"))
    ));
    let input = |name: &'static str,
                 label: &'static str,
                 kind: &'static str,
                 auto: &'static str,
                 max: usize| {
        Input {
            kind,
            value: v(name),
            autocomplete: Some(auto),
            required: true,
            maxlength: Some(max),
            error: err(name),
            ..Input::new(name, label)
        }
    };
    b.push_str(
        &input(
            "first_name",
            pick("Vorname", "First name"),
            "text",
            "given-name",
            100,
        )
        .render(),
    );
    b.push_str(
        &input(
            "last_name",
            pick("Nachname", "Last name"),
            "text",
            "family-name",
            100,
        )
        .render(),
    );
    b.push_str(
        &Input {
            hint: Some(pick(
                "Hierhin senden wir die Bestätigung Ihrer Einwilligung.",
                "We send the confirmation of your consent to this address.",
            )),
            ..input(
                "email",
                pick("E-Mail-Adresse", "Email address"),
                "email",
                "email",
                254,
            )
        }
        .render(),
    );
    b.push_str(
        &Input {
            hint: Some(pick(
                "Ohne Ländervorwahl lesen wir die Nummer als deutsche Nummer, z. B. 0171 2345678.",
                "Without a country code we read the number as German, e.g. +49 171 2345678.",
            )),
            ..input(
                "phone",
                pick("Telefonnummer", "Phone number"),
                "tel",
                "tel",
                40,
            )
        }
        .render(),
    );
    b.push_str(&textarea(
        "notes",
        pick("Anmerkungen", "Notes"),
        v("notes"),
        2000,
        err("notes"),
    ));

    // The preferred window (R7.2): optional; times in German time.
    let window_error = err("call_window");
    b.push_str(&format!(
        "<fieldset id=\"{}\"{}>\n<legend>{} <span class=\"optional\">(optional)</span></legend>\n<p class=\"hint\">{}</p>\n{}",
        form::field_id("call_window"),
        window_error
            .map(|_| format!(" aria-describedby=\"{}\"", form::error_id("call_window")))
            .unwrap_or_default(),
        pick("Wann dürfen wir Sie anrufen?", "When may we call you?"),
        pick(
            "Wir rufen nur montags bis freitags von 8 bis 20 Uhr und samstags von 9 bis 18 Uhr an (deutsche Zeit), nie an Sonn- und Feiertagen. Wenn Sie nur zu bestimmten Zeiten erreichbar sind, geben Sie hier ein Zeitfenster an; ohne Tage gilt es an jedem Anruftag.",
            "We only call Monday to Friday from 8 am to 8 pm and Saturday from 9 am to 6 pm (German time), never on Sundays or public holidays. If you can only be reached at certain times, give a time window here; without days it applies to every calling day.",
        ),
        form::field_error("call_window", window_error),
    ));
    b.push_str("<div class=\"times\">");
    for (name, label) in [
        ("call_window.from", pick("Von (Uhrzeit)", "From (time)")),
        ("call_window.to", pick("Bis (Uhrzeit)", "Until (time)")),
    ] {
        b.push_str(
            &Input {
                kind: "time",
                value: v(name),
                autocomplete: Some("off"),
                error: err(name),
                ..Input::new(name, label)
            }
            .render(),
        );
    }
    b.push_str("</div>\n");
    let days_error = err("call_window.days");
    b.push_str(&format!(
        "<fieldset class=\"days-group\"><legend>{}</legend>{}<ul class=\"days\">",
        pick("An diesen Tagen", "On these days"),
        form::field_error("call_window.days", days_error),
    ));
    let chosen: Vec<&str> = values
        .iter()
        .filter(|(n, _)| n == "call_window.days")
        .map(|(_, v)| v.as_str())
        .collect();
    for (i, day) in FORM_DAYS.iter().enumerate() {
        // The first box carries the field's id, so the error summary can link to it.
        let id = if i == 0 {
            form::field_id("call_window.days")
        } else {
            format!("{}-{day}", form::field_id("call_window.days"))
        };
        b.push_str(&format!(
            "<li class=\"checkbox\"><input id=\"{id}\" name=\"call_window.days\" type=\"checkbox\" value=\"{day}\"{}{}><label for=\"{id}\">{}</label></li>",
            if chosen.contains(day) { " checked" } else { "" },
            form::invalid_attrs("call_window.days", days_error),
            day_name(lang, day),
        ));
    }
    b.push_str("</ul></fieldset>\n</fieldset>\n");

    // Consent (R1.1, R7.6): the wording of the policy; the version it refers to is shown
    // and sent back hidden.
    let version_shown = format_version(lang, policy_version);
    let policy_link = format!(
        "<a href=\"{}\">{}</a>",
        escape(&lang.path("/privacy-policy")),
        pick("Datenschutzerklärung", "privacy policy")
    );
    b.push_str(&format!(
        "<fieldset>\n<legend>{}</legend>\n",
        pick("Einwilligung", "Consent")
    ));
    // The checkbox label is the consent text of the version, exactly as the consent ledger
    // records it (R7.6: "with the exact text shown"): German on both pages; the English
    // page adds a translation below, the German text is what is agreed to.
    let consent_text = domain::ledger::consent_text(policy_version)
        .map(str::trim)
        .unwrap_or_default();
    let consent_label = match lang {
        Lang::De => escape(consent_text),
        Lang::En => format!("<span lang=\"de\">{}</span>", escape(consent_text)),
    };
    b.push_str(&checkbox(
        "consent.contact_by_phone",
        &consent_label,
        v("consent.contact_by_phone") == "true",
        true,
        err("consent.contact_by_phone"),
    ));
    if lang == Lang::En {
        b.push_str(&format!(
            "<p class=\"hint\">{}</p>\n",
            "In English: Yes, Polly KI may call me at the phone number given to talk about my request. I know that the call is made by an AI phone agent and that I will be asked at the start of the call whether the call may be recorded. I have read the privacy policy. I can withdraw this consent at any time with effect for the future, by email to datenschutz@pollyki.de or through the privacy request form on our website. (The German text above is the one you agree to.)"
        ));
    }
    b.push_str(&format!(
        "<p class=\"hint\">{}</p>\n",
        match lang {
            Lang::De => format!(
                "Polly gibt sich zu Beginn des Gesprächs als KI zu erkennen und bittet Sie um Ihre Einwilligung in die Aufzeichnung. Einzelheiten in unserer {policy_link}, Stand {} (Version {}).",
                escape(&version_shown),
                escape(policy_version)
            ),
            Lang::En => format!(
                "At the start of the call Polly says that it is an AI and asks for your consent to record the call. Details in our {policy_link} (in German), version of {} ({}).",
                escape(&version_shown),
                escape(policy_version)
            ),
        }
    ));
    b.push_str(&hidden("consent.privacy_policy_version", policy_version));
    b.push_str("</fieldset>\n");
    b.push_str(&format!(
        "<button type=\"submit\">{}</button>\n</form>",
        pick("Rückruf anfordern", "Request a call")
    ));
    let title = if errors.is_empty() {
        pick("Rückruf anfordern", "Request a call")
    } else {
        pick("Fehler: Rückruf anfordern", "Error: Request a call")
    };
    let mut page = Page::new(lang, title, "/signup");
    page.body_html = b;
    page
}

/// The page after a stored sign-up: what happens next; no personal data, the same for
/// every sign-up (R1.6).
pub fn thanks_page(lang: Lang) -> Page {
    let de = lang == Lang::De;
    let pick = |d: &'static str, e: &'static str| if de { d } else { e };
    let mut page = Page::new(lang, pick("Vielen Dank", "Thank you"), "/signup/thanks");
    page.body_html = format!(
        "<h1>{}</h1>\n<p class=\"lead\">{}</p>\n<ul>\n<li>{}</li>\n<li>{}</li>\n<li>{}</li>\n</ul>\n<p>{} <a href=\"{}\">{}</a></p>",
        pick("Vielen Dank, wir rufen Sie an", "Thank you, we will call you"),
        pick(
            "Ihre Anmeldung ist bei uns eingegangen.",
            "We have received your sign-up.",
        ),
        pick(
            "Polly, unser KI-Telefonagent, ruft Sie in Kürze an: montags bis freitags zwischen 8 und 20 Uhr, samstags zwischen 9 und 18 Uhr, nie an Sonn- und Feiertagen, und nur in Ihrem Zeitfenster, wenn Sie eines angegeben haben.",
            "Polly, our AI phone agent, will call you shortly: Monday to Friday between 8 am and 8 pm, Saturday between 9 am and 6 pm (German time), never on Sundays or public holidays, and only within your time window if you gave one.",
        ),
        pick(
            "Zu Beginn des Gesprächs sagt Polly, dass sie eine KI ist, und fragt, ob das Gespräch aufgezeichnet werden darf.",
            "At the start of the call Polly says that it is an AI and asks whether the call may be recorded.",
        ),
        pick(
            "Wenn Sie sich schon einmal angemeldet haben, gilt Ihre neue Anmeldung; Sie erhalten höchstens einen Anruf pro Tag.",
            "If you signed up before, your new sign-up applies; you get at most one call a day.",
        ),
        pick(
            "Sie haben es sich anders überlegt? Sie können Ihre Einwilligung jederzeit widerrufen:",
            "Changed your mind? You can withdraw your consent at any time:",
        ),
        escape(&lang.path("/privacy/withdraw")),
        pick("Einwilligung widerrufen", "Withdraw consent"),
    );
    page
}

/// Why a sign-up page request was refused before validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: not valid urlencoding, or a field given twice.
    Malformed,
    /// 413: over the body limit.
    TooLarge,
    /// 415: not `application/x-www-form-urlencoded`.
    UnsupportedMediaType,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 500: nothing was stored.
    Internal,
    /// 503: nothing was stored; try again.
    Unavailable,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Malformed => 400,
            Refusal::TooLarge => 413,
            Refusal::UnsupportedMediaType => 415,
            Refusal::NotFound => 404,
            Refusal::MethodNotAllowed => 405,
            Refusal::Internal => 500,
            Refusal::Unavailable => 503,
        }
    }
}

/// The page of a refused request: what went wrong, that nothing was stored, a way back.
pub fn error_page(lang: Lang, refusal: Refusal) -> Page {
    let de = lang == Lang::De;
    let pick = |d: &'static str, e: &'static str| if de { d } else { e };
    let (title, text) = match refusal {
        Refusal::Malformed => (
            pick("Die Anfrage ist fehlerhaft", "The request is malformed"),
            pick(
                "Das Formular kam unvollständig oder doppelt ausgefüllt an. Es wurde nichts gespeichert. Bitte füllen Sie es erneut aus.",
                "The form arrived incomplete or with a field given twice. Nothing was stored. Please fill it in again.",
            ),
        ),
        Refusal::TooLarge => (
            pick("Die Eingaben sind zu lang", "The entries are too long"),
            pick(
                "Das Formular ist zu groß. Es wurde nichts gespeichert. Bitte kürzen Sie Ihre Anmerkungen.",
                "The form is too large. Nothing was stored. Please shorten your notes.",
            ),
        ),
        Refusal::UnsupportedMediaType => (
            pick("Format nicht unterstützt", "Format not supported"),
            pick(
                "Das Formular wurde in einem Format gesendet, das wir nicht annehmen. Es wurde nichts gespeichert.",
                "The form was sent in a format we do not accept. Nothing was stored.",
            ),
        ),
        Refusal::NotFound => (
            pick("Seite nicht gefunden", "Page not found"),
            pick(
                "Diese Seite gibt es nicht.",
                "This page does not exist.",
            ),
        ),
        Refusal::MethodNotAllowed => (
            pick("Nicht erlaubt", "Not allowed"),
            pick(
                "Diese Seite unterstützt die Anfrage nicht.",
                "This page does not support the request.",
            ),
        ),
        Refusal::Internal => (
            pick("Ein Fehler ist aufgetreten", "An error occurred"),
            pick(
                "Ihre Anmeldung konnte nicht verarbeitet werden; es wurde nichts gespeichert. Bitte versuchen Sie es erneut.",
                "Your sign-up could not be processed; nothing was stored. Please try again.",
            ),
        ),
        Refusal::Unavailable => (
            pick("Vorübergehend nicht verfügbar", "Temporarily unavailable"),
            pick(
                "Ihre Anmeldung konnte gerade nicht verarbeitet werden; es wurde nichts gespeichert. Bitte versuchen Sie es in einigen Minuten erneut.",
                "Your sign-up could not be processed right now; nothing was stored. Please try again in a few minutes.",
            ),
        ),
    };
    let mut page = Page::new(lang, title, "/signup");
    page.body_html = format!(
        "<h1>{title}</h1>\n<p>{text}</p>\n<p><a href=\"{}\">{}</a></p>",
        escape(&lang.path("/signup")),
        pick("Zum Anmeldeformular", "To the sign-up form")
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_form_has_every_api_field_with_label_autocomplete_and_the_policy_version() {
        let html = form_page(Lang::De, &[], &[], "2024-04-08").render();
        for name in [
            "first_name",
            "last_name",
            "email",
            "phone",
            "notes",
            "call_window.from",
            "call_window.to",
            "call_window.days",
            "consent.contact_by_phone",
        ] {
            let id = form::field_id(name);
            assert!(
                html.contains(&format!("<label for=\"{id}\"")),
                "label of {name}"
            );
            assert!(
                html.contains(&format!("id=\"{id}\" name=\"{name}\"")),
                "input {name}"
            );
        }
        for auto in ["given-name", "family-name", "email", "tel"] {
            assert!(html.contains(&format!("autocomplete=\"{auto}\"")));
        }
        assert!(html.contains(
            "<input type=\"hidden\" name=\"consent.privacy_policy_version\" value=\"2024-04-08\">"
        ));
        assert!(
            html.contains("<a href=\"/privacy-policy\">Datenschutzerklärung</a>, Stand 08.04.2024")
        );
        assert!(html.contains("<legend>Einwilligung</legend>"));
        // The label is the ledger's consent text of the version, exactly (R7.6).
        let text = domain::ledger::consent_text("2024-04-08").unwrap().trim();
        assert!(html.contains(&format!(
            "<label for=\"f-consent-contact_by_phone\">{}</label>",
            escape(text)
        )));
        assert!(html.contains("<form method=\"post\" action=\"/signup\""));
        assert_eq!(html.matches("<h1>").count(), 1);
        assert!(!html.contains("error-summary") && !html.contains("aria-invalid"));
        // Every id is unique.
        let ids: Vec<&str> = html
            .split(" id=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "{ids:?}");
        let en = form_page(Lang::En, &[], &[], "2024-04-08").render();
        assert!(en.contains("<form method=\"post\" action=\"/en/signup\""));
        assert!(en.contains("<a href=\"/en/privacy-policy\">privacy policy</a>"));
        assert!(en.contains("Request a call"));
    }

    #[test]
    fn entered_values_come_back_escaped_with_errors_at_their_fields() {
        let values = pairs(&[
            ("first_name", "<script>alert(1)</script>"),
            ("notes", "</textarea><img src=x>"),
            ("call_window.days", "tue"),
            ("call_window.days", "sat"),
            ("consent.contact_by_phone", "true"),
        ]);
        let errors = vec![FieldError {
            field: "email".into(),
            message: field_message(Lang::De, "email", "invalid_format").into(),
        }];
        let html = form_page(Lang::De, &values, &errors, "2024-04-08").render();
        assert!(!html.contains("<script>alert") && !html.contains("<img src=x>"));
        assert!(html.contains("value=\"&lt;script&gt;alert(1)&lt;/script&gt;\""));
        assert!(html.contains("&lt;/textarea&gt;&lt;img src=x&gt;</textarea>"));
        assert!(html.contains("value=\"tue\" checked"));
        assert!(html.contains("value=\"sat\" checked"));
        assert!(!html.contains("value=\"mon\" checked"));
        assert!(html.contains("value=\"true\" checked"));
        assert!(html.contains("<p class=\"field-error\" id=\"e-email\">Bitte geben Sie eine gültige E-Mail-Adresse an"));
        assert!(html.contains("aria-invalid=\"true\" aria-describedby=\"e-email h-email\""));
        assert!(html.contains("<a href=\"#f-email\">"));
        assert!(html.contains("<title>Fehler: Rückruf anfordern"));
    }

    #[test]
    fn every_api_error_has_its_own_message_in_both_languages() {
        let cases = [
            ("first_name", "required"),
            ("first_name", "too_long"),
            ("first_name", "forbidden_character"),
            ("email", "invalid_format"),
            ("email", "too_long"),
            ("phone", "invalid_number"),
            ("phone", "forbidden_character"),
            ("notes", "too_long"),
            ("call_window.from", "invalid_time"),
            ("call_window.to", "empty_window"),
            ("call_window.days", "invalid_days"),
            ("call_window", "outside_calling_hours"),
            ("consent.contact_by_phone", "must_be_true"),
            ("consent.privacy_policy_version", "unknown_version"),
        ];
        let fallback = field_message(Lang::De, "nope", "nope");
        for lang in [Lang::De, Lang::En] {
            let mut seen = std::collections::HashSet::new();
            for (f, c) in cases {
                let m = field_message(lang, f, c);
                assert_ne!(m, field_message(lang, "nope", "nope"), "{f} {c}");
                assert!(seen.insert(m), "{f}/{c} shares its message");
            }
        }
        assert_eq!(
            display_field("consent.privacy_policy_version"),
            "consent.contact_by_phone"
        );
        assert_ne!(fallback, "");
    }

    #[test]
    fn thanks_and_error_pages_say_what_happens() {
        let t = thanks_page(Lang::De).render();
        assert!(t.contains("<h1>Vielen Dank, wir rufen Sie an</h1>"));
        assert!(t.contains("href=\"/privacy/withdraw\""));
        assert!(thanks_page(Lang::En)
            .render()
            .contains("href=\"/en/privacy/withdraw\""));
        for r in [
            Refusal::Malformed,
            Refusal::TooLarge,
            Refusal::UnsupportedMediaType,
            Refusal::Internal,
            Refusal::Unavailable,
        ] {
            let html = error_page(Lang::De, r).render();
            assert!(html.contains("nichts gespeichert"), "{r:?}");
        }
        assert_eq!(Refusal::TooLarge.status(), 413);
    }
}
