//! The security headers of every page and asset response.

/// The Content-Security-Policy of every page and asset: same-origin script, style and
/// images only, no inline script or style, forms only to ourselves, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers every HTML page response carries (`Content-Type` included).
pub fn page_headers() -> Vec<(&'static str, String)> {
    let mut h = security_headers();
    h.push(("Cache-Control", "no-store".to_owned()));
    h.push(("Content-Type", "text/html; charset=utf-8".to_owned()));
    h
}

/// The headers of a static asset: the page's security headers, cached for a day.
pub fn asset_headers(content_type: &'static str) -> Vec<(&'static str, String)> {
    let mut h = security_headers();
    h.push(("Cache-Control", "public, max-age=86400".to_owned()));
    h.push(("Content-Type", content_type.to_owned()));
    h
}

fn security_headers() -> Vec<(&'static str, String)> {
    vec![
        ("Content-Security-Policy", CSP.to_owned()),
        ("Referrer-Policy", "no-referrer".to_owned()),
        ("X-Content-Type-Options", "nosniff".to_owned()),
        ("X-Frame-Options", "DENY".to_owned()),
        ("X-Robots-Tag", "noindex, nofollow".to_owned()),
        (
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()".to_owned(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(h: &'a [(&'static str, String)], name: &str) -> Vec<&'a str> {
        h.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn pages_carry_the_contract_headers_once_each() {
        let h = page_headers();
        assert_eq!(get(&h, "content-security-policy"), [CSP]);
        assert!(!CSP.contains("unsafe"));
        assert_eq!(get(&h, "referrer-policy"), ["no-referrer"]);
        assert_eq!(get(&h, "x-content-type-options"), ["nosniff"]);
        assert_eq!(get(&h, "x-frame-options"), ["DENY"]);
        assert_eq!(get(&h, "x-robots-tag"), ["noindex, nofollow"]);
        assert_eq!(get(&h, "cache-control"), ["no-store"]);
        assert_eq!(get(&h, "content-type"), ["text/html; charset=utf-8"]);
        assert_eq!(
            get(&h, "permissions-policy"),
            ["camera=(), microphone=(), geolocation=()"]
        );
        assert!(get(&h, "set-cookie").is_empty());
        assert_eq!(h.len(), 8);
    }

    #[test]
    fn assets_are_cached_for_a_day_under_the_same_policy() {
        let h = asset_headers("text/css; charset=utf-8");
        assert_eq!(get(&h, "content-security-policy"), [CSP]);
        assert_eq!(get(&h, "cache-control"), ["public, max-age=86400"]);
        assert_eq!(get(&h, "content-type"), ["text/css; charset=utf-8"]);
        assert_eq!(get(&h, "x-robots-tag"), ["noindex, nofollow"]);
    }
}
