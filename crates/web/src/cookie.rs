//! The privacy center's one cookie, `polly_request=<id>.<token>`: it carries the request
//! token so that the token never appears in a URL. The sign-up pages set no cookie.

/// The cookie's name.
pub const REQUEST_COOKIE: &str = "polly_request";

/// The `Set-Cookie` value for a request id and its token, living `max_age_secs` (at most
/// the token's remaining lifetime; the caller caps it). `id` and `token` must be
/// cookie-safe (the ids and tokens we mint are: letters, digits, `-`, `_`).
pub fn set_request_cookie(id: &str, token: &str, max_age_secs: u64) -> String {
    format!(
        "{REQUEST_COOKIE}={id}.{token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age_secs}"
    )
}

/// A `Set-Cookie` value that deletes the request cookie.
pub fn clear_request_cookie() -> String {
    format!("{REQUEST_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

/// The `(id, token)` of the request cookie in a `Cookie` header value, if present and
/// well-formed (`<id>.<token>`, both non-empty). With several `polly_request` cookies,
/// none is trusted (`None`).
pub fn read_request_cookie(cookie_header: &str) -> Option<(&str, &str)> {
    let mut found = None;
    for pair in cookie_header.split(';') {
        let Some((name, value)) = pair.trim().split_once('=') else {
            continue;
        };
        if name.trim() == REQUEST_COOKIE {
            if found.is_some() {
                return None;
            }
            found = Some(value.trim());
        }
    }
    let (id, token) = found?.split_once('.')?;
    (!id.is_empty() && !token.is_empty()).then_some((id, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_strict_http_only_and_secure() {
        assert_eq!(
            set_request_cookie("abc", "tok", 3600),
            "polly_request=abc.tok; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=3600"
        );
        assert!(clear_request_cookie().ends_with("Max-Age=0"));
    }

    #[test]
    fn the_cookie_is_read_back_and_ambiguity_is_refused() {
        assert_eq!(
            read_request_cookie("a=b; polly_request=id1.tok1; c=d"),
            Some(("id1", "tok1"))
        );
        assert_eq!(read_request_cookie("polly_request=id1"), None);
        assert_eq!(read_request_cookie("polly_request=.tok"), None);
        assert_eq!(read_request_cookie("other=x.y"), None);
        assert_eq!(
            read_request_cookie("polly_request=a.b; polly_request=c.d"),
            None
        );
    }
}
