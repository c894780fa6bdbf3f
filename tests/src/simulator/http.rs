//! The simulator's HTTP client for plain `http://` targets on loopback, on `reqwest`.
//!
//! The simulator only ever talks to local receivers (the functions under
//! `cargo lambda watch`, a test's own server). This client never follows redirects (tests
//! must see the 3xx themselves), keeps no idle connections (each test has its own runtime,
//! and a pooled connection would outlive it), ignores proxy settings of the environment and
//! refuses anything but `http://` URLs without credentials. Bodies can be read in chunks,
//! so a test can hash a 50 MB download without holding it.

use anyhow::{bail, Context, Result};

/// A complete response: status, headers in arrival order, body bytes.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header names lower-cased, values as received.
    pub headers: Vec<(String, String)>,
    /// The body after transfer decoding.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("response body is not JSON")
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A response whose body has not been read yet.
pub struct StreamingResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header names lower-cased, values as received.
    pub headers: Vec<(String, String)>,
    response: reqwest::Response,
}

impl StreamingResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The next piece of the body, `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let chunk = self.response.chunk().await.context("reading body")?;
        Ok(chunk.map(|c| c.to_vec()))
    }

    /// Reads the rest of the body into memory.
    pub async fn collect(mut self) -> Result<Response> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status: self.status,
            headers: self.headers,
            body,
        })
    }
}

/// Sends a request and reads the whole response.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response> {
    open(method, url, headers, body).await?.collect().await
}

/// Sends a request and returns once the status line and headers have arrived.
pub async fn open(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<StreamingResponse> {
    let url = check_url(url)?;
    let method = reqwest::Method::from_bytes(method.as_bytes()).context("bad method")?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .no_proxy()
        .http1_only()
        .build()
        .context("building the HTTP client")?;
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut request = client.request(method.clone(), url);
    if !has("user-agent") {
        request = request.header("user-agent", "retell-sim/0.1");
    }
    for (name, value) in headers {
        if name.contains(['\r', '\n', ':']) || value.contains(['\r', '\n']) {
            bail!("header {name:?} contains a line break or colon");
        }
        request = request.header(*name, *value);
    }
    // A body (and so a Content-Length, 0 included) on everything but a bodiless GET/HEAD.
    if !body.is_empty() || !matches!(method, reqwest::Method::GET | reqwest::Method::HEAD) {
        request = request.body(body.to_vec());
    }
    let response = request.send().await.context("sending the request")?;
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(StreamingResponse {
        status: response.status().as_u16(),
        headers,
        response,
    })
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The URL, if it is `http://` with a host and without credentials.
fn check_url(url: &str) -> Result<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).context("bad URL")?;
    if parsed.scheme() != "http" {
        bail!("only http:// URLs are supported by the simulator's client");
    }
    if parsed.host_str().is_none_or(str::is_empty)
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        bail!("URL has no host or carries credentials");
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_path() {
        let t = check_url("http://127.0.0.1:9100/v2/get-call/x?y=1").unwrap();
        assert_eq!((t.host_str(), t.port()), (Some("127.0.0.1"), Some(9100)));
        assert_eq!((t.path(), t.query()), ("/v2/get-call/x", Some("y=1")));
        let t = check_url("http://localhost").unwrap();
        assert_eq!(
            (t.host_str(), t.port_or_known_default(), t.path()),
            (Some("localhost"), Some(80), "/")
        );
    }

    #[test]
    fn refuses_https_and_credentials() {
        assert!(check_url("https://api.retellai.com/").is_err());
        assert!(check_url("http://user:pw@127.0.0.1/").is_err());
        assert!(check_url("http://user@127.0.0.1/").is_err());
    }
}
