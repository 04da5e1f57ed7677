//! The one HTTP client of probes, `http` steps, webhooks and the guard:
//! reqwest with rustls, driven on the calling thread, with one deadline for
//! the whole exchange (connecting, sending, the status and the body).

use std::collections::BTreeMap;
use std::time::Duration;

/// One request.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    /// Query parameters, URL-encoded onto `url`.
    pub query: &'a [(&'a str, &'a str)],
    pub headers: Option<&'a BTreeMap<String, String>>,
    pub body: Option<&'a str>,
    /// Whether redirects are followed. A health check measures the endpoint
    /// itself, not where it points.
    pub follow_redirects: bool,
    /// Read at most this many bytes of the body; none: the body is not read.
    pub read_body: Option<usize>,
}

impl<'a> Request<'a> {
    /// A GET that does not follow redirects and does not read the body.
    pub fn get(url: &'a str) -> Request<'a> {
        Request {
            method: "GET",
            url,
            query: &[],
            headers: None,
            body: None,
            follow_redirects: false,
            read_body: None,
        }
    }
}

/// What came back.
pub(crate) struct Response {
    pub status: u16,
    /// The body when it was asked for, cut at the limit.
    pub body: Vec<u8>,
    /// The body was longer than the limit.
    pub truncated: bool,
}

/// Why there was no answer.
#[derive(Debug)]
pub(crate) struct NoAnswer {
    /// Every cause, for a journal: `error sending request for url (…):
    /// client error (Connect): tcp connect error: Connection refused (os error 111)`.
    pub detail: String,
    /// The deepest cause alone, for one line: `connection refused`.
    pub cause: String,
}

impl NoAnswer {
    fn new(e: &(dyn std::error::Error + 'static)) -> NoAnswer {
        NoAnswer {
            detail: describe(e),
            cause: deepest(e),
        }
    }

    fn other(text: String) -> NoAnswer {
        NoAnswer {
            detail: text.clone(),
            cause: text,
        }
    }
}

/// Sends `req`; everything, the body included, within `timeout`.
pub(crate) fn send(req: &Request, timeout: Duration) -> Result<Response, NoAnswer> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| NoAnswer::other(format!("{:?} is not an HTTP method", req.method)))?;
    let redirects = if req.follow_redirects {
        reqwest::redirect::Policy::default()
    } else {
        reqwest::redirect::Policy::none()
    };
    let client = reqwest::Client::builder()
        // A total deadline: from connecting until the body has been read.
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(redirects)
        .build()
        .map_err(|e| NoAnswer::new(&e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NoAnswer::other(format!("cannot start an HTTP client: {e}")))?;
    runtime.block_on(async {
        let mut builder = client.request(method, req.url);
        if !req.query.is_empty() {
            builder = builder.query(req.query);
        }
        for (k, v) in req.headers.into_iter().flatten() {
            builder = builder.header(k, v);
        }
        if let Some(b) = req.body {
            builder = builder.body(b.to_string());
        }
        let mut resp = builder.send().await.map_err(|e| NoAnswer::new(&e))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let mut truncated = false;
        if let Some(limit) = req.read_body {
            while let Some(chunk) = resp.chunk().await.map_err(|e| NoAnswer::new(&e))? {
                if body.len() + chunk.len() > limit {
                    body.extend_from_slice(&chunk[..limit - body.len()]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
        }
        Ok(Response {
            status,
            body,
            truncated,
        })
    })
}

/// reqwest's error with its causes, which say what actually happened
/// (`connection refused`, `timed out`).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    ripcord_targets::postgres::redact(&text)
}

/// The innermost cause, lower case and without the OS error number:
/// `connection refused`, `operation timed out`.
fn deepest(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    let mut text = last.to_string();
    if let Some(at) = text.find(" (os error ") {
        text.truncate(at);
    }
    // "Connection refused" reads "connection refused", but "TLS…" stays.
    let mut chars = text.chars();
    if let (Some(first), Some(second)) = (chars.next(), chars.clone().next()) {
        if first.is_uppercase() && second.is_lowercase() {
            text = first.to_lowercase().chain(chars).collect();
        }
    }
    ripcord_targets::postgres::redact(&text)
}
