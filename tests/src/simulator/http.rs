//! A minimal HTTP/1.1 client for plain `http://` targets on loopback.
//!
//! The simulator only ever talks to local receivers (the functions under
//! `cargo lambda watch`, a test's own server), so a full client with TLS, pooling and
//! redirect handling would be dead weight. This one sends one request per connection
//! (`Connection: close`), never follows redirects (tests must see the 3xx themselves) and
//! reads bodies framed by `Content-Length`, chunked transfer coding or end of stream.
//! Bodies can be read in chunks, so a test can hash a 50 MB download without holding it.

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest status line plus headers accepted from a server.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Size of the pieces [`StreamingResponse::next_chunk`] hands out.
const READ_CHUNK: usize = 64 * 1024;

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

/// How the body of a response is delimited on the wire.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A response whose body has not been read yet.
pub struct StreamingResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header names lower-cased, values as received.
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    framing: Framing,
    /// Bytes left in the current chunk (chunked) or the whole body (length).
    remaining: u64,
    done: bool,
}

impl StreamingResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The next piece of the body, `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        match self.framing {
            Framing::Empty => {
                self.done = true;
                Ok(None)
            }
            Framing::Length(_) => {
                if self.remaining == 0 {
                    self.done = true;
                    return Ok(None);
                }
                let want =
                    usize::try_from(self.remaining.min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
                let mut buf = vec![0u8; want];
                let n = self.reader.read(&mut buf).await.context("reading body")?;
                if n == 0 {
                    bail!(
                        "connection closed with {} body bytes missing",
                        self.remaining
                    );
                }
                buf.truncate(n);
                self.remaining -= n as u64;
                Ok(Some(buf))
            }
            Framing::UntilClose => {
                let mut buf = vec![0u8; READ_CHUNK];
                let n = self.reader.read(&mut buf).await.context("reading body")?;
                if n == 0 {
                    self.done = true;
                    return Ok(None);
                }
                buf.truncate(n);
                Ok(Some(buf))
            }
            Framing::Chunked => {
                if self.remaining == 0 {
                    let size = self.read_chunk_size().await?;
                    if size == 0 {
                        // Trailers (if any) up to the empty line.
                        loop {
                            let line = self.read_line().await?;
                            if line.is_empty() {
                                break;
                            }
                        }
                        self.done = true;
                        return Ok(None);
                    }
                    self.remaining = size;
                }
                let want =
                    usize::try_from(self.remaining.min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
                let mut buf = vec![0u8; want];
                let n = self.reader.read(&mut buf).await.context("reading chunk")?;
                if n == 0 {
                    bail!("connection closed inside a chunk");
                }
                buf.truncate(n);
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    let line = self.read_line().await?;
                    if !line.is_empty() {
                        bail!("chunk not followed by CRLF");
                    }
                }
                Ok(Some(buf))
            }
        }
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

    async fn read_chunk_size(&mut self) -> Result<u64> {
        let line = self.read_line().await?;
        let size = line.split(';').next().unwrap_or("").trim();
        u64::from_str_radix(size, 16).map_err(|_| anyhow!("bad chunk size line"))
    }

    async fn read_line(&mut self) -> Result<String> {
        read_line(&mut self.reader).await
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
    let target = Target::parse(url)?;
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .with_context(|| format!("connecting to {}:{}", target.host, target.port))?;
    let mut reader = BufReader::new(stream);

    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        target.path_and_query, target.authority
    );
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("user-agent") {
        head.push_str("User-Agent: retell-sim/0.1\r\n");
    }
    if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        if name.contains(['\r', '\n', ':']) || value.contains(['\r', '\n']) {
            bail!("header {name:?} contains a line break or colon");
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let stream = reader.get_mut();
    stream
        .write_all(head.as_bytes())
        .await
        .context("sending request head")?;
    stream.write_all(body).await.context("sending body")?;
    stream.flush().await.context("sending body")?;

    // Skip interim 1xx responses (100 Continue) until the final one.
    let (status, headers) = loop {
        let (status, headers) = read_head(&mut reader).await?;
        if !(100..200).contains(&status) {
            break (status, headers);
        }
    };
    let chunked = find_header(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = find_header(&headers, "content-length")
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| anyhow!("bad content-length"))
        })
        .transpose()?;
    let framing = if method == "HEAD" || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = length {
        Framing::Length(length)
    } else {
        Framing::UntilClose
    };
    Ok(StreamingResponse {
        status,
        headers,
        reader,
        framing,
        remaining: match framing {
            Framing::Length(n) => n,
            _ => 0,
        },
        done: false,
    })
}

async fn read_head(reader: &mut BufReader<TcpStream>) -> Result<(u16, Vec<(String, String)>)> {
    let status_line = read_line(reader).await?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x response");
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("bad status line"))?;
    let mut headers = Vec::new();
    let mut total = status_line.len();
    loop {
        let line = read_line(reader).await?;
        total += line.len() + 2;
        if total > MAX_HEAD_BYTES {
            bail!("response head longer than {MAX_HEAD_BYTES} bytes");
        }
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| anyhow!("bad header line"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok((status, headers))
}

/// One line without its CRLF; bounded so a hostile peer cannot make it grow forever.
async fn read_line(reader: &mut BufReader<TcpStream>) -> Result<String> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_HEAD_BYTES as u64)
        .read_until(b'\n', &mut line)
        .await
        .context("reading response")?;
    if n == 0 {
        bail!("connection closed before the response was complete");
    }
    if line.last() != Some(&b'\n') {
        bail!("line longer than {MAX_HEAD_BYTES} bytes");
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| anyhow!("response head is not UTF-8"))
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The parts of an `http://` URL the client needs.
struct Target {
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("only http:// URLs are supported by the simulator's client"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        if authority.is_empty() || authority.contains('@') {
            bail!("URL has no host or carries credentials");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| anyhow!("bad IPv6 host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| anyhow!("bad port"))?,
                None => 80,
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (
                    host.to_owned(),
                    port.parse().map_err(|_| anyhow!("bad port"))?,
                ),
                None => (authority.to_owned(), 80),
            }
        };
        Ok(Self {
            host,
            port,
            authority: authority.to_owned(),
            path_and_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_path() {
        let t = Target::parse("http://127.0.0.1:9100/v2/get-call/x?y=1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 9100));
        assert_eq!(t.path_and_query, "/v2/get-call/x?y=1");
        let t = Target::parse("http://localhost").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path_and_query.as_str()),
            ("localhost", 80, "/")
        );
    }

    #[test]
    fn refuses_https_and_credentials() {
        assert!(Target::parse("https://api.retellai.com/").is_err());
        assert!(Target::parse("http://user:pw@127.0.0.1/").is_err());
    }
}
