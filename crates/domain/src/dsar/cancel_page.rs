//! The small German pages of the erasure cancel link (`GET /v1/dsar/{id}/cancel?t=…`):
//! a confirmation page whose button cancels (a GET never does: mail scanners prefetch
//! links) and the answers to the button. Self-contained HTML: no scripts, no third-party
//! assets, inline styles only.

use super::mail::escape_html;

/// What the button's POST came to, as the subject reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAnswer {
    /// Cancelled now, or already before (the same answer: a replay changes nothing).
    Cancelled,
    /// The window has passed or the erasure has started: nothing can be cancelled.
    TooLate,
    /// Unknown request, wrong or used-up link: the same answer for all, so a stranger
    /// learns nothing.
    Invalid,
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"de\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n<title>{}</title>\n</head>\n\
         <body style=\"font-family: Arial, Helvetica, sans-serif; line-height: 1.5; \
         color: #222222; max-width: 640px; margin: 2em auto; padding: 0 1em;\">\n\
         <h1 style=\"font-size: 1.4em;\">{}</h1>\n{}</body>\n</html>\n",
        escape_html(title),
        escape_html(title),
        body
    )
}

/// The confirmation page: explains what the button does and POSTs the link's token to
/// `action` (a path on the same origin). Opening it changes nothing.
pub fn confirm_page(action: &str, token: &str) -> String {
    page(
        "Löschung widerrufen?",
        &format!(
            "<p>Sie haben die Löschung Ihrer Daten bei der Polly KI verlangt. Solange die \
             Löschung noch nicht begonnen hat, können Sie die Anfrage hier widerrufen. Dann \
             löschen wir nichts, und die vorläufige Einschränkung der Verarbeitung wird \
             aufgehoben.</p>\n\
             <p>Das Öffnen dieser Seite allein ändert nichts.</p>\n\
             <form method=\"post\" action=\"{}\">\n\
             <input type=\"hidden\" name=\"t\" value=\"{}\">\n\
             <button type=\"submit\" style=\"font-size: 1em; padding: 0.5em 1em;\">\
             Löschung widerrufen</button>\n</form>\n\
             <p>Möchten Sie die Löschung, müssen Sie nichts tun.</p>\n",
            escape_html(action),
            escape_html(token)
        ),
    )
}

/// The answer page to the button.
pub fn answer_page(answer: CancelAnswer) -> String {
    match answer {
        CancelAnswer::Cancelled => page(
            "Löschung widerrufen",
            "<p>Ihre Löschanfrage ist widerrufen. Wir haben nichts gelöscht; die vorläufige \
             Einschränkung der Verarbeitung wird aufgehoben. Sie erhalten eine Bestätigung \
             per E-Mail.</p>\n",
        ),
        CancelAnswer::TooLate => page(
            "Widerruf nicht mehr möglich",
            "<p>Die Löschung hat bereits begonnen oder ist abgeschlossen; sie kann nicht mehr \
             widerrufen werden.</p>\n",
        ),
        CancelAnswer::Invalid => page(
            "Link ungültig",
            &format!(
                "<p>Dieser Link ist ungültig. Bitte verwenden Sie den vollständigen Link aus \
                 unserer E-Mail, oder schreiben Sie uns an {}.</p>\n",
                escape_html(super::disclosure::CONTROLLER.privacy_email)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirmation_page_posts_the_token_and_escapes_what_it_echoes() {
        let html = confirm_page("/v1/dsar/x/cancel", "a\"><script>b");
        assert!(html.contains("<form method=\"post\" action=\"/v1/dsar/x/cancel\">"));
        assert!(html.contains("value=\"a&quot;&gt;&lt;script&gt;b\""));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn each_answer_has_its_own_text() {
        let pages = [
            answer_page(CancelAnswer::Cancelled),
            answer_page(CancelAnswer::TooLate),
            answer_page(CancelAnswer::Invalid),
        ];
        assert!(pages[0].contains("ist widerrufen"));
        assert!(pages[1].contains("nicht mehr"));
        assert!(pages[2].contains("ungültig"));
    }
}
