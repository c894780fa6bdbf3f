//! The German emails a data subject receives about a request (R4): the one-time code, the
//! receipt with its due date, an extension, the completion and a denial.
//!
//! Each mail is built once as a list of blocks and rendered twice, as plain text and as
//! HTML, so both parts always say the same. Every interpolated value is HTML-escaped in the
//! HTML part (staff-written reasons are free text). A mail holds no personal data beyond
//! what the caller passes in: no names, no email addresses or phone numbers, only the
//! request id, dates, the code and the reasons.

use chrono::{DateTime, NaiveDate, Utc};

use super::disclosure::{
    period_de, request_type_de, CONTROLLER, PORTABLE_CSV_FILE, PORTABLE_JSON_FILE, README_FILE,
    SUPERVISORY_AUTHORITY,
};
use super::{RequestType, MAX_EXTENSION_MONTHS};
use crate::retention::{Period, RetentionClass};

/// Lifetime of one presigned download link for an export package (R4.4: at most 15 minutes).
pub const DOWNLOAD_LINK_VALID_MINUTES: u32 = 15;

/// An email ready to send: subject, plain-text part and HTML part.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The two pages every mail links (Art. 7(3), Art. 21): a path under the public base URL.
pub const NO_CALLS_PATH: &str = "/privacy/no-calls";
pub const WITHDRAW_PATH: &str = "/privacy/withdraw";

impl Mail {
    /// The mail with the links to "no more calls" and to withdrawing consent at its end
    /// (both parts), full URLs under `base` (the public base URL, no trailing slash):
    /// each page is the request form preset, so either is two clicks from any mail.
    /// Adding them twice changes nothing.
    pub fn with_privacy_links(mut self, base: &str) -> Mail {
        let base = base.trim_end_matches('/');
        let no_calls = format!("{base}{NO_CALLS_PATH}");
        let withdraw = format!("{base}{WITHDRAW_PATH}");
        if self.text.contains(&no_calls) {
            return self;
        }
        if !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        self.text.push_str(&format!(
            "\nKeine Anrufe mehr: {no_calls}\nEinwilligung widerrufen: {withdraw}\n"
        ));
        let links = format!(
            "<p style=\"font-size: 12px; color: #666666;\"><a href=\"{nc}\">Keine Anrufe mehr</a> · \
             <a href=\"{wd}\">Einwilligung widerrufen</a></p>\n",
            nc = escape_html(&no_calls),
            wd = escape_html(&withdraw),
        );
        match self.html.rfind("</body>") {
            Some(at) => self.html.insert_str(at, &links),
            None => self.html.push_str(&links),
        }
        self
    }
}

// The one-time code in a code mail is a secret: keep it out of any debug output.
impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .field("text", &"<redacted>")
            .field("html", &"<redacted>")
            .finish()
    }
}

/// A date in German notation: `28.02.2027`.
pub fn date_de(date: NaiveDate) -> String {
    date.format("%d.%m.%Y").to_string()
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A subject line is a mail header: no line breaks or other control characters.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// One piece of a mail body, rendered as text and as HTML.
enum Block {
    Para(String),
    /// Lines kept together (an address, request details).
    Lines(Vec<String>),
    Items(Vec<String>),
    /// The one-time code, set apart.
    Code(String),
    Link(String),
}

fn render(subject: String, blocks: Vec<Block>) -> Mail {
    let subject = one_line(&subject);
    let mut text = String::from("Guten Tag,\n\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"de\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n</head>\n\
         <body style=\"font-family: Arial, Helvetica, sans-serif; line-height: 1.5; \
         color: #222222; max-width: 640px;\">\n<p>Guten Tag,</p>\n",
        escape_html(&subject)
    );
    for block in blocks.iter().chain(signature().iter()) {
        match block {
            Block::Para(p) => {
                text.push_str(p);
                html.push_str(&format!("<p>{}</p>\n", escape_html(p)));
            }
            Block::Lines(lines) => {
                text.push_str(&lines.join("\n"));
                let escaped: Vec<String> = lines.iter().map(|l| escape_html(l)).collect();
                html.push_str(&format!("<p>{}</p>\n", escaped.join("<br>\n")));
            }
            Block::Items(items) => {
                let lines: Vec<String> = items.iter().map(|i| format!("- {i}")).collect();
                text.push_str(&lines.join("\n"));
                html.push_str("<ul>\n");
                for i in items {
                    html.push_str(&format!("<li>{}</li>\n", escape_html(i)));
                }
                html.push_str("</ul>\n");
            }
            Block::Code(code) => {
                text.push_str("    ");
                text.push_str(code);
                html.push_str(&format!(
                    "<p style=\"font-family: monospace; font-size: 28px; font-weight: bold; \
                     letter-spacing: 4px;\">{}</p>\n",
                    escape_html(code)
                ));
            }
            Block::Link(url) => {
                text.push_str(url);
                let url = escape_html(url);
                html.push_str(&format!("<p><a href=\"{url}\">{url}</a></p>\n"));
            }
        }
        text.push_str("\n\n");
    }
    let footer = footer();
    text.push_str("-- \n");
    text.push_str(&footer.join("\n"));
    text.push('\n');
    let footer_html: Vec<String> = footer.iter().map(|l| escape_html(l)).collect();
    html.push_str(&format!(
        "<hr>\n<p style=\"font-size: 12px; color: #666666;\">{}</p>\n</body>\n</html>\n",
        footer_html.join("<br>\n")
    ));
    Mail {
        subject,
        text,
        html,
    }
}

fn signature() -> [Block; 1] {
    [Block::Lines(vec![
        "Mit freundlichen Grüßen".to_owned(),
        format!("Ihr Datenschutz-Team der {}", CONTROLLER.name),
    ])]
}

fn footer() -> Vec<String> {
    let c = CONTROLLER;
    vec![
        format!(
            "{}, {}, {}, {}",
            c.name, c.street, c.postal_code_city, c.country
        ),
        format!("Vertreten durch den {}", c.representative),
        format!(
            "Fragen zum Datenschutz: {} · {}",
            c.privacy_email, c.website
        ),
    ]
}

fn request_lines(request_id: &str, request_type: RequestType) -> Vec<String> {
    vec![
        format!("Anfragenummer: {}", one_line(request_id)),
        format!(
            "Art der Anfrage: {} ({})",
            request_type_de(request_type),
            request_type.article()
        ),
    ]
}

fn contact_para() -> Block {
    Block::Para(format!(
        "Bei Fragen erreichen Sie uns unter {}. Bitte geben Sie dabei Ihre Anfragenummer an.",
        CONTROLLER.privacy_email
    ))
}

fn extension_months_de() -> String {
    match MAX_EXTENSION_MONTHS {
        1 => "einen weiteren Monat".to_owned(),
        2 => "zwei weitere Monate".to_owned(),
        n => format!("{n} weitere Monate"),
    }
}

/// The one-time code that verifies a request (R4.1).
pub fn code_mail(
    code: &str,
    request_id: &str,
    request_type: RequestType,
    valid_minutes: u32,
) -> Mail {
    let validity = period_de(Period::Minutes(valid_minutes));
    let subject = "Polly KI: Ihr Bestätigungscode für Ihre Datenschutzanfrage".to_owned();
    let blocks = vec![
        Block::Para(format!(
            "Sie haben bei Polly KI eine Datenschutzanfrage gestellt: {} ({}). Damit wir \
             sicher sind, dass die Anfrage von Ihnen stammt, bestätigen Sie sie bitte mit \
             diesem Code:",
            request_type_de(request_type),
            request_type.article()
        )),
        Block::Code(code.to_owned()),
        Block::Para(format!("Vorgangsnummer: {request_id}")),
        Block::Para(format!(
            "Der Code ist {validity} gültig und kann nur einmal verwendet werden. Geben Sie \
             ihn dort ein, wo Sie Ihre Anfrage gestellt haben. Geben Sie den Code an niemanden \
             weiter; wir fragen Sie nie per Telefon oder E-Mail danach."
        )),
        Block::Para(
            "Wenn Sie keine Anfrage gestellt haben, ignorieren Sie diese E-Mail einfach. Es \
             passiert dann nichts: Ohne den Code wird die Anfrage nicht bearbeitet und verfällt."
                .to_owned(),
        ),
        Block::Para(format!(
            "Bei Fragen erreichen Sie uns unter {}.",
            CONTROLLER.privacy_email
        )),
    ];
    render(subject, blocks)
}

/// Confirms receipt of a verified request with its due date (Art. 12(3) GDPR).
pub fn receipt_mail(
    request_id: &str,
    request_type: RequestType,
    received: DateTime<Utc>,
    due: NaiveDate,
) -> Mail {
    let subject = format!("Polly KI: Eingangsbestätigung Ihrer Datenschutzanfrage {request_id}");
    let mut blocks = receipt_blocks(request_id, request_type, received, due);
    blocks.push(contact_para());
    render(subject, blocks)
}

/// The receipt's content without the closing contact paragraph.
fn receipt_blocks(
    request_id: &str,
    request_type: RequestType,
    received: DateTime<Utc>,
    due: NaiveDate,
) -> Vec<Block> {
    let due = date_de(due);
    let mut details = request_lines(request_id, request_type);
    let received = crate::retention::berlin_time(received);
    details.push(format!(
        "Eingegangen am: {} um {} Uhr",
        date_de(received.date_naive()),
        received.format("%H:%M")
    ));
    details.push(format!("Antwort spätestens bis: {due}"));
    vec![
        Block::Para(
            "wir haben Ihre Datenschutzanfrage erhalten und bestätigen hiermit den Eingang."
                .to_owned(),
        ),
        Block::Lines(details),
        Block::Para(format!(
            "Nach Art. 12 Abs. 3 DSGVO beantworten wir Ihre Anfrage unverzüglich, spätestens \
             aber innerhalb eines Monats nach Eingang, also bis zum {due}. Ist die Anfrage \
             besonders komplex oder erreichen uns sehr viele Anfragen, können wir die Frist \
             um höchstens {} verlängern. Darüber und über die Gründe informieren wir Sie vor \
             Ablauf der ersten Frist.",
            extension_months_de()
        )),
    ]
}

/// Tells the subject that the deadline was extended, and why (Art. 12(3) sentences 2-3).
pub fn extension_mail(
    request_id: &str,
    request_type: RequestType,
    new_due: NaiveDate,
    reason: &str,
) -> Mail {
    let new_due = date_de(new_due);
    let subject = format!("Polly KI: Fristverlängerung für Ihre Datenschutzanfrage {request_id}");
    let mut details = request_lines(request_id, request_type);
    details.push(format!("Neue Frist: {new_due}"));
    let sa = SUPERVISORY_AUTHORITY;
    let blocks = vec![
        Block::Para(format!(
            "wir benötigen für die Bearbeitung Ihrer Datenschutzanfrage mehr Zeit. Nach Art. 12 \
             Abs. 3 Satz 2 und 3 DSGVO verlängern wir die Frist daher um bis zu {}. Wir \
             beantworten Ihre Anfrage spätestens bis zum {new_due}, wenn möglich früher.",
            extension_months_de()
        )),
        Block::Lines(details),
        Block::Para("Grund für die Verlängerung:".to_owned()),
        Block::Para(reason.trim().to_owned()),
        Block::Para(format!(
            "Wenn Sie mit der Verlängerung nicht einverstanden sind, können Sie sich an uns \
             wenden oder sich bei der Aufsichtsbehörde beschweren (Art. 77 DSGVO), für uns ist \
             das die {} ({}), {}, {}.",
            sa.name, sa.short_name, sa.street, sa.postal_code_city
        )),
        contact_para(),
    ];
    render(subject, blocks)
}

/// What was done, per request type, for requests without an export package.
fn outcome_de(request_type: RequestType) -> String {
    match request_type {
        RequestType::Access | RequestType::Portability => String::new(),
        RequestType::Erasure => format!(
            "wir haben Ihre personenbezogenen Daten gelöscht, einschließlich aller gespeicherten \
             Versionen, und die Löschung der Gespräche bei unserem Telefonie-Dienstleister \
             veranlasst (Art. 17 und 19 DSGVO). Soweit Daten gesetzlichen Aufbewahrungspflichten \
             unterliegen (etwa Vertragsunterlagen nach § 257 HGB und § 147 AO), dürfen wir sie \
             noch nicht löschen; ihre Verarbeitung haben wir stattdessen eingeschränkt, und wir \
             löschen sie, sobald die Frist endet. Zum Nachweis der Löschung bewahren wir nur \
             Anfragenummer, Datum und die betroffenen Datenkategorien auf, {}. Aufbewahrt \
             bleibt außerdem der Nachweis Ihrer Einwilligung in unsere Anrufe (§ 7a UWG): \
             Zeitpunkt, Fassung der Einwilligung und Ihre Telefonnummer nur als nicht \
             umkehrbarer Prüfwert, keine Gesprächsinhalte. Wir bewahren ihn allein auf, um uns \
             gegen Ansprüche wegen dieser Anrufe verteidigen zu können (Art. 17 Abs. 3 lit. e \
             DSGVO), verwenden ihn für nichts anderes und löschen ihn {} nach dem letzten \
             Anruf. Steht Ihre Telefonnummer auf unserer Sperrliste für Anrufe (weil Sie \
             widersprochen, uns am Telefon gesagt haben, dass Sie keine Anrufe möchten oder sich \
             nicht angemeldet haben), bleibt dieser Eintrag bestehen: nur Ihre Nummer als nicht \
             umkehrbarer Prüfwert, das Datum und der Anlass. Wir sind gesetzlich verpflichtet, \
             Sie nicht wieder anzurufen, auch wenn jemand Ihre Nummer erneut bei uns angibt \
             (Art. 17 Abs. 3 lit. b und Art. 21 Abs. 3 DSGVO, § 7 UWG).",
            super::disclosure::retention_de(RetentionClass::Request),
            period_de(RetentionClass::PhoneConsentProof.period())
        ),
        RequestType::Rectification => "wir haben Ihre Daten wie gewünscht berichtigt und \
             Empfänger, die diese Daten erhalten haben, darüber informiert (Art. 16 und 19 \
             DSGVO)."
            .to_owned(),
        RequestType::Restriction => "wir haben die Verarbeitung Ihrer Daten eingeschränkt \
             (Art. 18 DSGVO): Ihre Daten bleiben gespeichert, werden aber nicht weiter \
             verarbeitet; insbesondere rufen wir Sie nicht mehr an. Bevor wir die Einschränkung \
             aufheben, informieren wir Sie."
            .to_owned(),
        RequestType::Objection => "wir haben Ihren Widerspruch umgesetzt (Art. 21 DSGVO): Wir \
             werten Ihre Gespräche nicht mehr aus und rufen Sie nicht mehr an."
            .to_owned(),
        RequestType::WithdrawConsent => "wir haben Ihren Widerruf umgesetzt (Art. 7 Abs. 3 \
             DSGVO): Ihre Gesprächsaufzeichnungen und Transkripte sind gelöscht, und künftige \
             Gespräche zeichnen wir nicht auf. Die Rechtmäßigkeit der Verarbeitung bis zum \
             Widerruf bleibt davon unberührt."
            .to_owned(),
    }
}

/// Tells the subject that the request is done; for access and portability, how to
/// download the package through the status route.
pub fn completion_mail(request_id: &str, request_type: RequestType, status_url: &str) -> Mail {
    let subject = format!("Polly KI: Ihre Datenschutzanfrage {request_id} ist erledigt");
    let mut blocks = Vec::new();
    if request_type.builds_export() {
        let mut ready = format!(
            "Ihre Datenschutzanfrage ist erledigt, Ihr Datenpaket steht bereit. Eine \
             Erläuterung des Inhalts finden Sie in der Datei {README_FILE} im Paket."
        );
        if request_type == RequestType::Portability {
            ready.push_str(&format!(
                " Die Daten, die Sie uns bereitgestellt haben, finden Sie in \
                 {PORTABLE_JSON_FILE} und {PORTABLE_CSV_FILE}."
            ));
        }
        blocks.push(Block::Para(ready));
        blocks.push(Block::Lines(request_lines(request_id, request_type)));
        blocks.push(Block::Para(
            "Sie können das Paket über diese Statusadresse herunterladen. Dazu benötigen Sie \
             das Anfrage-Token, das Sie bei der Bestätigung Ihrer Anfrage erhalten haben; aus \
             Sicherheitsgründen steht es nicht in dieser E-Mail."
                .to_owned(),
        ));
        blocks.push(Block::Link(status_url.to_owned()));
        blocks.push(Block::Para(format!(
            "Mit dem Token erhalten Sie dort einen Download-Link. Jeder ausgegebene Link ist {} \
             gültig; danach können Sie einfach einen neuen abrufen. Das Paket selbst löschen \
             wir {} nach seiner Erstellung. Bitte speichern Sie es, wenn Sie es behalten \
             möchten, und bewahren Sie es sicher auf.",
            period_de(Period::Minutes(DOWNLOAD_LINK_VALID_MINUTES)),
            period_de(RetentionClass::Export.period())
        )));
    } else {
        blocks.push(Block::Para(outcome_de(request_type)));
        blocks.push(Block::Lines(request_lines(request_id, request_type)));
        blocks.push(Block::Para(
            "Den Stand Ihrer Anfrage können Sie mit dem Anfrage-Token, das Sie bei der \
             Bestätigung erhalten haben, unter dieser Adresse abrufen:"
                .to_owned(),
        ));
        blocks.push(Block::Link(status_url.to_owned()));
    }
    blocks.push(contact_para());
    render(subject, blocks)
}

/// Refuses a request with the reasons and the remedies (Art. 12(4) GDPR).
pub fn denial_mail(request_id: &str, request_type: RequestType, reasons: &[String]) -> Mail {
    let subject = format!("Polly KI: Entscheidung zu Ihrer Datenschutzanfrage {request_id}");
    let reasons: Vec<String> = reasons
        .iter()
        .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|r| !r.is_empty())
        .collect();
    let sa = SUPERVISORY_AUTHORITY;
    let mut blocks = vec![
        Block::Para(
            "wir haben Ihre Datenschutzanfrage geprüft und werden ihr nicht nachkommen.".to_owned(),
        ),
        Block::Lines(request_lines(request_id, request_type)),
    ];
    if reasons.is_empty() {
        blocks.push(Block::Para(format!(
            "Nach Art. 12 Abs. 4 DSGVO nennen wir Ihnen die Gründe dafür; bitte wenden Sie \
             sich dazu an {}.",
            CONTROLLER.privacy_email
        )));
    } else {
        blocks.push(Block::Para(
            "Nach Art. 12 Abs. 4 DSGVO teilen wir Ihnen die Gründe dafür mit:".to_owned(),
        ));
        blocks.push(Block::Items(reasons));
    }
    blocks.push(Block::Para(
        "Sie haben das Recht, sich bei einer Datenschutz-Aufsichtsbehörde zu beschweren \
         (Art. 77 DSGVO). Zuständig für uns ist:"
            .to_owned(),
    ));
    blocks.push(Block::Lines(vec![
        format!("{} ({})", sa.name, sa.short_name),
        sa.street.to_owned(),
        sa.postal_code_city.to_owned(),
        format!("Telefon: {}", sa.phone),
        format!("E-Mail: {}", sa.email),
    ]));
    blocks.push(Block::Para(
        "Außerdem haben Sie das Recht auf einen wirksamen gerichtlichen Rechtsbehelf \
         (Art. 79 DSGVO), etwa eine Klage vor dem zuständigen Gericht."
            .to_owned(),
    ));
    blocks.push(Block::Para(format!(
        "Wenn Sie Fragen haben oder uns Angaben nachreichen möchten, die unsere Entscheidung \
         ändern könnten, schreiben Sie uns unter Angabe Ihrer Anfragenummer an {}.",
        CONTROLLER.privacy_email
    )));
    render(subject, blocks)
}

/// Tells a subject that the restriction of processing is lifted, before it is
/// (Art. 18(3) GDPR).
pub fn restriction_lifted_mail() -> Mail {
    let subject =
        "Polly KI: Die Einschränkung der Verarbeitung Ihrer Daten wird aufgehoben".to_owned();
    let blocks = vec![
        Block::Para(
            "Sie hatten die Einschränkung der Verarbeitung Ihrer personenbezogenen Daten \
             (Art. 18 DSGVO) erwirkt. Wir teilen Ihnen hiermit vor der Aufhebung mit \
             (Art. 18 Abs. 3 DSGVO), dass diese Einschränkung aufgehoben wird. Danach \
             verarbeiten wir Ihre Daten wieder zu den in unserer Datenschutzerklärung \
             genannten Zwecken."
                .to_owned(),
        ),
        Block::Para(format!(
            "Wenn Sie damit nicht einverstanden sind, können Sie jederzeit erneut die \
             Einschränkung verlangen, der Verarbeitung widersprechen oder die Löschung \
             verlangen. Schreiben Sie uns an {}. Sie haben außerdem das Recht, sich bei der \
             {} zu beschweren.",
            CONTROLLER.privacy_email, SUPERVISORY_AUTHORITY.name
        )),
    ];
    render(subject, blocks)
}

/// The receipt of a verified erasure request that waits in its cancel window: the
/// receipt's content, when the erasure runs, and the link that cancels it. The link opens
/// a confirmation page; only its button cancels (mail scanners prefetch links).
pub fn erasure_receipt_mail(
    request_id: &str,
    received: DateTime<Utc>,
    due: NaiveDate,
    scheduled_at: DateTime<Utc>,
    cancel_url: &str,
) -> Mail {
    let subject = format!("Polly KI: Eingangsbestätigung Ihrer Datenschutzanfrage {request_id}");
    let at = crate::retention::berlin_time(scheduled_at);
    let mut blocks = receipt_blocks(request_id, RequestType::Erasure, received, due);
    blocks.extend([
        Block::Para(format!(
            "Wir löschen Ihre Daten am {} um {} Uhr. Bis dahin verarbeiten wir sie nicht \
             mehr: Wir rufen Sie nicht an und werten Ihre Daten nicht aus (Einschränkung \
             der Verarbeitung, wie nach Art. 18 DSGVO).",
            date_de(at.date_naive()),
            at.format("%H:%M")
        )),
        Block::Para(
            "Haben Sie es sich anders überlegt, können Sie die Löschung bis dahin über den \
             folgenden Link widerrufen. Der Link öffnet eine Seite, auf der Sie den Widerruf \
             noch einmal bestätigen; erst dann bleibt alles, wie es war. Geben Sie den Link \
             nicht weiter."
                .to_owned(),
        ),
        Block::Link(cancel_url.to_owned()),
        contact_para(),
    ]);
    render(subject, blocks)
}

/// Confirms that an erasure was cancelled inside its window: nothing was erased, the
/// restriction the request set is lifted.
pub fn erasure_cancelled_mail(request_id: &str) -> Mail {
    let subject = format!("Polly KI: Ihre Löschanfrage {request_id} ist widerrufen");
    let blocks = vec![
        Block::Para(
            "Sie haben Ihre Anfrage auf Löschung Ihrer Daten (Art. 17 DSGVO) widerrufen. Wir \
             haben nichts gelöscht, und die vorläufige Einschränkung der Verarbeitung, die \
             mit der Anfrage verbunden war, ist aufgehoben. Eine Einschränkung, die Sie \
             gesondert verlangt haben, bleibt bestehen."
                .to_owned(),
        ),
        Block::Lines(request_lines(request_id, RequestType::Erasure)),
        Block::Para(format!(
            "Waren Sie das nicht, oder möchten Sie doch die Löschung, stellen Sie bitte eine \
             neue Anfrage oder schreiben Sie uns an {}.",
            CONTROLLER.privacy_email
        )),
    ];
    render(subject, blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &str = "<script>alert(\"x\")</script> & 'y'";

    fn received() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2027-01-31T09:07:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn assert_in_both(mail: &Mail, facts: &[&str]) {
        assert!(!mail.subject.trim().is_empty());
        for fact in facts {
            assert!(mail.text.contains(fact), "text lacks {fact:?}");
            assert!(mail.html.contains(fact), "html lacks {fact:?}");
        }
    }

    fn assert_common(mail: &Mail) {
        assert_in_both(mail, &["datenschutz@pollyki.de", "KoBra Dataworks GmbH"]);
        assert!(mail.html.starts_with("<!DOCTYPE html>"));
        assert!(mail.html.trim_end().ends_with("</html>"));
        assert!(!mail.subject.contains('\n'));
    }

    fn assert_escaped(mail: &Mail) {
        assert!(!mail.html.contains("<script>"), "{}", mail.html);
        assert!(mail
            .html
            .contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        assert!(mail.html.contains("&amp; &#39;y&#39;"));
        assert!(mail.text.contains(NASTY));
    }

    #[test]
    fn escape_html_escapes_the_five_special_characters() {
        assert_eq!(
            escape_html(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape_html("Grüße"), "Grüße");
    }

    #[test]
    fn german_date_format() {
        assert_eq!(date_de(date("2027-02-28")), "28.02.2027");
    }

    /// R4.1: the code mail states the code (not in the subject, not in debug output), its
    /// 15-minute validity, the request type and that ignoring it is safe.
    #[test]
    fn code_mail_states_the_code_its_validity_and_that_ignoring_it_is_safe() {
        let mail = code_mail("482913", "019a-req", RequestType::Erasure, 15);
        assert_common(&mail);
        assert!(
            !mail.subject.contains("482913"),
            "code stays out of the subject"
        );
        assert_in_both(
            &mail,
            &[
                "482913",
                "15 Minuten",
                "Löschung",
                "Art. 17 DSGVO",
                "ignorieren Sie diese E-Mail",
                "Es passiert dann nichts",
            ],
        );
        assert!(!format!("{mail:?}").contains("482913"));
    }

    #[test]
    fn code_mail_escapes_the_code() {
        assert_escaped(&code_mail(NASTY, "019a-req", RequestType::Access, 15));
    }

    #[test]
    fn receipt_mail_names_the_request_and_the_due_date() {
        let mail = receipt_mail(
            "req-42",
            RequestType::Access,
            received(),
            date("2027-02-28"),
        );
        assert_common(&mail);
        assert!(mail.subject.contains("req-42"));
        assert_in_both(
            &mail,
            &[
                "req-42",
                "Auskunft",
                "Art. 15 DSGVO",
                "31.01.2027",
                // 09:07 UTC is 10:07 in Berlin (winter time).
                "10:07",
                "28.02.2027",
                "Art. 12 Abs. 3 DSGVO",
                "zwei weitere Monate",
            ],
        );
    }

    #[test]
    fn receipt_mail_escapes_the_request_id() {
        let mail = receipt_mail(NASTY, RequestType::Access, received(), date("2027-02-28"));
        assert_escaped(&mail);
    }

    /// R4.3: the extension mail gives the new due date, the legal basis and the staff's
    /// reason.
    #[test]
    fn extension_mail_gives_the_new_date_and_the_reason() {
        let reason = "Umfangreiche Aufzeichnungen aus 40 Telefonaten";
        let mail = extension_mail(
            "req-42",
            RequestType::Portability,
            date("2027-04-30"),
            reason,
        );
        assert_common(&mail);
        assert!(mail.subject.contains("req-42"));
        assert_in_both(
            &mail,
            &[
                "req-42",
                "Datenübertragbarkeit",
                "30.04.2027",
                "Art. 12 Abs. 3 Satz 2 und 3 DSGVO",
                "zwei weitere Monate",
                reason,
                "LDI NRW",
            ],
        );
    }

    #[test]
    fn extension_mail_escapes_the_reason() {
        let mail = extension_mail("req-42", RequestType::Access, date("2027-04-30"), NASTY);
        assert_escaped(&mail);
    }

    #[test]
    fn completion_mail_for_exports_explains_the_download() {
        let url = "https://api.pollyki.de/v1/dsar/req-42";
        for t in [RequestType::Access, RequestType::Portability] {
            let mail = completion_mail("req-42", t, url);
            assert_common(&mail);
            assert!(mail.subject.contains("req-42"));
            assert_in_both(
                &mail,
                &[
                    "req-42",
                    url,
                    "Anfrage-Token",
                    "15 Minuten",
                    "7 Tage",
                    "LIESMICH.txt",
                    t.article(),
                ],
            );
            assert!(mail.html.contains(&format!("<a href=\"{url}\">")));
        }
        let portability = completion_mail("req-42", RequestType::Portability, url);
        assert_in_both(&portability, &["portable.json", "portable.csv"]);
        let access = completion_mail("req-42", RequestType::Access, url);
        assert!(!access.text.contains("portable.json"));
    }

    #[test]
    fn completion_mail_for_other_types_says_what_was_done() {
        let url = "https://api.pollyki.de/v1/dsar/req-7";
        let expected = [
            (RequestType::Erasure, "gelöscht"),
            (RequestType::Rectification, "berichtigt"),
            (RequestType::Restriction, "eingeschränkt"),
            (RequestType::Objection, "Widerspruch umgesetzt"),
            (
                RequestType::WithdrawConsent,
                "Gesprächsaufzeichnungen und Transkripte sind gelöscht",
            ),
        ];
        for (t, fact) in expected {
            let mail = completion_mail("req-7", t, url);
            assert_common(&mail);
            assert_in_both(&mail, &["req-7", url, fact, t.article()]);
            assert!(!mail.text.contains("LIESMICH.txt"), "{}", t.code());
        }
    }

    /// R4.5 (Art. 17(3)(e)): the erasure answer says that the §7a UWG consent proof is
    /// kept, what it holds, why, and until when.
    #[test]
    fn the_erasure_answer_names_the_kept_consent_proof() {
        let mail = completion_mail("req-7", RequestType::Erasure, "https://x.example/s");
        assert_in_both(
            &mail,
            &[
                "§ 7a UWG",
                "Art. 17 Abs. 3 lit. e",
                "nicht umkehrbarer Prüfwert",
                "5 Jahre nach dem letzten Anruf",
            ],
        );
    }

    #[test]
    fn completion_mail_escapes_the_url_and_id() {
        let mail = completion_mail(NASTY, RequestType::Access, NASTY);
        assert_escaped(&mail);
        assert!(!mail.html.contains("href=\"<"));
    }

    /// R4.10: the denial mail lists the staff's reasons and the remedies (complaint to the
    /// supervisory authority with its address, court).
    #[test]
    fn denial_mail_lists_the_reasons_and_the_remedies() {
        let reasons = vec![
            "Identität nicht nachgewiesen".to_owned(),
            "Offenkundig unbegründet".to_owned(),
        ];
        let mail = denial_mail("req-42", RequestType::Erasure, &reasons);
        assert_common(&mail);
        assert!(mail.subject.contains("req-42"));
        let sa = SUPERVISORY_AUTHORITY;
        assert_in_both(
            &mail,
            &[
                "req-42",
                "Art. 12 Abs. 4 DSGVO",
                "Identität nicht nachgewiesen",
                "Offenkundig unbegründet",
                "Art. 77 DSGVO",
                "Art. 79 DSGVO",
                "gerichtlichen Rechtsbehelf",
                sa.name,
                sa.street,
                sa.postal_code_city,
                sa.phone,
                sa.email,
            ],
        );
        assert!(mail.html.contains("<li>Identität nicht nachgewiesen</li>"));
    }

    #[test]
    fn denial_mail_escapes_staff_written_reasons() {
        let mail = denial_mail("req-42", RequestType::Access, &[NASTY.to_owned()]);
        assert_escaped(&mail);
    }

    #[test]
    fn denial_mail_without_reasons_still_points_to_the_contact() {
        let mail = denial_mail("req-42", RequestType::Access, &["  ".to_owned()]);
        assert!(!mail.html.contains("<ul>"));
        assert_in_both(&mail, &["Art. 12 Abs. 4 DSGVO", "datenschutz@pollyki.de"]);
    }

    #[test]
    fn subjects_carry_no_line_breaks_even_from_a_hostile_id() {
        let mail = receipt_mail(
            "a\r\nBcc: x@example.org",
            RequestType::Access,
            received(),
            date("2027-02-28"),
        );
        assert!(!mail.subject.contains('\r') && !mail.subject.contains('\n'));
    }

    /// R7.1: the erasure answer says that a do-not-call listing of the number stays, what
    /// it holds and why.
    #[test]
    fn the_erasure_answer_says_the_do_not_call_listing_stays() {
        let mail = completion_mail("req-7", RequestType::Erasure, "https://x.example/s");
        assert_in_both(
            &mail,
            &[
                "Sperrliste für Anrufe",
                "bleibt dieser Eintrag bestehen",
                "Art. 21 Abs. 3 DSGVO, § 7 UWG",
            ],
        );
    }

    /// R4.1: every mail to a subject can end with the two links of the privacy center
    /// ("no more calls", withdraw consent) as full URLs, in the text and the HTML part,
    /// still a whole document, and once only however often it is applied.
    #[test]
    fn every_mail_gets_the_no_calls_and_withdraw_links_once() {
        let base = "https://api.example.org/";
        for mail in [
            code_mail("48291377", "r-1", RequestType::Access, 15),
            receipt_mail("r-1", RequestType::Access, received(), date("2027-03-02")),
            completion_mail("r-1", RequestType::Access, "https://x/v1/dsar/r-1"),
            denial_mail("r-1", RequestType::Erasure, &["Grund".to_owned()]),
            restriction_lifted_mail(),
            erasure_cancelled_mail("r-1"),
            crate::ledger::receipt_mail("2026-01", received()),
        ] {
            let linked = mail
                .clone()
                .with_privacy_links(base)
                .with_privacy_links(base);
            for url in [
                "https://api.example.org/privacy/no-calls",
                "https://api.example.org/privacy/withdraw",
            ] {
                assert_eq!(linked.text.matches(url).count(), 1, "{}", linked.text);
                assert_eq!(
                    linked.html.matches(&format!("href=\"{url}\"")).count(),
                    1,
                    "{}",
                    linked.html
                );
            }
            assert!(linked.text.contains("Keine Anrufe mehr"));
            assert!(linked.text.contains("Einwilligung widerrufen"));
            assert!(linked.html.trim_end().ends_with("</html>"));
            assert!(
                linked.html.find("/privacy/withdraw").unwrap()
                    < linked.html.find("</body>").unwrap()
            );
            assert_eq!(linked.subject, mail.subject);
        }
    }
}
