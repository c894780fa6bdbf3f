//! The static assets, compiled in: one stylesheet and one script for every page, served
//! same-origin by the `signup` function under `/assets/`.

/// `/assets/site.css`.
pub const SITE_CSS: &str = include_str!("../assets/site.css");
/// `/assets/site.js`: progressive enhancement only (focus on the error summary, no double
/// submit); every page works without it.
pub const SITE_JS: &str = include_str!("../assets/site.js");

/// An asset by its path below `/assets/` (`site.css`): `(content type, body)`.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "site.css" => Some(("text/css; charset=utf-8", SITE_CSS)),
        "site.js" => Some(("text/javascript; charset=utf-8", SITE_JS)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_assets_are_served_and_nothing_else() {
        assert!(asset("site.css").unwrap().1.contains(":focus-visible"));
        assert!(asset("site.js").unwrap().1.contains("error-summary"));
        assert_eq!(asset("../Cargo.toml"), None);
        assert_eq!(asset("site.css.map"), None);
        // No third-party anything: no absolute URLs, no imports.
        for body in [SITE_CSS, SITE_JS] {
            assert!(
                !body.contains("http://")
                    && !body.contains("https://")
                    && !body.contains("@import")
            );
        }
    }
}
