//! Repositories in S3-compatible object storage (`s3://bucket/prefix`),
//! through the `object_store` crate.
//!
//! Create-if-absent writes look first, then put conditionally
//! (`If-None-Match: *`); every name but `config` is random or the hash of
//! the bytes, so even a server that ignores the condition cannot lose a
//! write, and locks are taken by write-then-list as on a folder. Packs above
//! [`MULTIPART_THRESHOLD`] go up in parts; a pack's name is the hash of its
//! bytes, so a racing writer of the same name writes the same bytes and the
//! unconditional multipart upload loses nothing. Transient failures (5xx,
//! dropped connections) are retried with backoff by `object_store`;
//! permanent ones (4xx) are not, and [`BackendError`] says which it was.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
    WriteMultipart,
};

use crate::backend::Backend;

/// Objects at least this large are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 16 << 20;
const PART_SIZE: usize = 8 << 20;
/// Reads longer than this many windows go to the server directly.
const MAX_WINDOWS_PER_READ: u64 = 8;
/// The size of a window, aligned to its own size within the pack.
const WINDOW: u64 = 1 << 20;
/// Blob reads a sequential reader keeps in flight.
const READ_AHEAD: usize = 6;
/// How many windows are kept: 64 MiB at most.
const WINDOWS_KEPT: usize = 64;

/// Where and how to reach an S3 repository. `None` fields fall back to the
/// standard AWS environment variables.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub path_style: bool,
    /// Retries of a transient error; default 8.
    pub retries: Option<usize>,
    /// How long one request keeps retrying; default 2 minutes.
    pub retry_timeout: Option<Duration>,
}

/// What went wrong talking to the object store, sorted by what the user
/// can do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The credentials were refused (401/403).
    Access,
    /// The bucket does not exist.
    NoBucket,
    /// The endpoint could not be reached at all.
    Unreachable,
    /// A transient error that outlasted its retries.
    Transient,
    /// A permanent error: not retried.
    Permanent,
}

/// An object-store error, carried inside `io::Error` so that the
/// repository code stays backend-neutral; [`BackendError::of`] finds it.
#[derive(Debug)]
pub struct BackendError {
    pub failure: Failure,
    pub location: String,
    pub detail: String,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.failure {
            Failure::Access => "access denied",
            Failure::NoBucket => "no such bucket",
            Failure::Unreachable => "endpoint unreachable (retried with backoff)",
            Failure::Transient => "transient error, still failing after retries with backoff",
            Failure::Permanent => "permanent error, not retried",
        };
        write!(f, "{} at {}: {}", what, self.location, self.detail)
    }
}

impl std::error::Error for BackendError {}

impl BackendError {
    /// The backend error inside `err`, if it is one.
    pub fn of(err: &io::Error) -> Option<&BackendError> {
        err.get_ref()?.downcast_ref::<BackendError>()
    }

    /// How to fix it.
    pub fn hint(&self) -> &'static str {
        match self.failure {
            Failure::Access => {
                "check [repository.s3] access_key_id and secret_access_key (or AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY), and that the key may read and write the bucket"
            }
            Failure::NoBucket => {
                "create the bucket first (ripcord creates objects, not buckets), or fix the bucket in \
                 [repository] url"
            }
            Failure::Unreachable => {
                "check [repository.s3] endpoint (or AWS_ENDPOINT_URL) and that the server is running; \
                 `path_style = true` is needed by most self-hosted servers"
            }
            Failure::Transient => {
                "the storage kept failing; run the command again when it is healthy (the repository is \
                 consistent: `ripcord verify` checks it)"
            }
            Failure::Permanent => "see the server's message above",
        }
    }

    /// Whether the user's settings, not the data, are at fault.
    pub fn is_setup(&self) -> bool {
        matches!(
            self.failure,
            Failure::Access | Failure::NoBucket | Failure::Unreachable
        )
    }
}

/// A repository under `prefix` in an S3 bucket.
pub struct S3Backend {
    store: Arc<AmazonS3>,
    /// A client that gives up quickly, for the first contact.
    probe: Arc<AmazonS3>,
    prefix: String,
    location: String,
    rt: tokio::runtime::Runtime,
    /// The windows of packs read lately, least recently used first.
    windows: std::sync::Mutex<Vec<((String, u64), bytes::Bytes)>>,
}

/// Splits `s3://bucket/prefix` into the bucket and the prefix.
pub fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?} is not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("an S3 URL names a bucket: s3://bucket/prefix".into());
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

impl S3Backend {
    /// A backend for `url` (`s3://bucket/prefix`). Nothing is sent yet;
    /// [`S3Backend::check`] makes the first contact.
    pub fn new(url: &str, opts: &S3Options) -> Result<S3Backend, String> {
        let (bucket, prefix) = parse_url(url)?;
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: opts.retries.unwrap_or(8),
            retry_timeout: opts.retry_timeout.unwrap_or(Duration::from_secs(120)),
        };
        let probe_retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(5),
            ..retry.clone()
        };
        let build = |retry: RetryConfig| -> Result<AmazonS3, String> {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(&bucket)
                .with_retry(retry);
            if let Some(e) = &opts.endpoint {
                b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
            } else if let Ok(e) = std::env::var("AWS_ENDPOINT_URL") {
                b = b.with_allow_http(e.starts_with("http://"));
            }
            if let Some(r) = &opts.region {
                b = b.with_region(r);
            }
            if let Some(k) = &opts.access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(s) = &opts.secret_access_key {
                b = b.with_secret_access_key(s);
            }
            if opts.path_style {
                b = b.with_virtual_hosted_style_request(false);
            }
            b.build()
                .map_err(|e| format!("cannot set up S3 for {url}: {e}"))
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ripcord-s3")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the S3 client: {e}"))?;
        Ok(S3Backend {
            store: Arc::new(build(retry)?),
            probe: Arc::new(build(probe_retry)?),
            prefix,
            location: url.trim_end_matches('/').to_string(),
            rt,
            windows: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Lists the repository's root once, with few retries: wrong
    /// credentials, a missing bucket and an unreachable endpoint fail here,
    /// before anything is written.
    pub fn check(&self) -> io::Result<()> {
        let prefix = self.key("");
        let probe = self.probe.clone();
        self.run(async move { probe.list_with_delimiter(Some(&prefix)).await.map(|_| ()) })
            .map_err(|e| self.classify(e, true))
    }

    fn key(&self, path: &str) -> StorePath {
        let path = path.trim_matches('/');
        match (self.prefix.is_empty(), path.is_empty()) {
            (true, _) => StorePath::from(path),
            (false, true) => StorePath::from(self.prefix.as_str()),
            (false, false) => StorePath::from(format!("{}/{}", self.prefix, path)),
        }
    }

    /// Runs `fut` on this backend's runtime from any thread, including a
    /// thread that is itself inside a tokio runtime (the server, the guard).
    fn run<F, T>(&self, fut: F) -> T
    where
        F: std::future::Future<Output = T> + Send,
        T: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| self.rt.block_on(fut))
                    .join()
                    .expect("S3 request thread")
            })
        } else {
            self.rt.block_on(fut)
        }
    }

    fn error(&self, err: object_store::Error) -> io::Error {
        self.classify(err, false)
    }

    /// Sorts `err` by what the user can do about it. An endpoint that does
    /// not answer is a setting to fix at the first contact, and an outage
    /// once the command has begun.
    fn classify(&self, err: object_store::Error, first_contact: bool) -> io::Error {
        let detail = err.to_string();
        let (kind, failure) = match &err {
            object_store::Error::NotFound { .. } if detail.contains("NoSuchBucket") => {
                (io::ErrorKind::NotFound, Some(Failure::NoBucket))
            }
            object_store::Error::NotFound { .. } => (io::ErrorKind::NotFound, None),
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => (io::ErrorKind::AlreadyExists, None),
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                (io::ErrorKind::PermissionDenied, Some(Failure::Access))
            }
            _ if detail.contains("NoSuchBucket") => {
                (io::ErrorKind::NotFound, Some(Failure::NoBucket))
            }
            _ if detail.contains("InvalidAccessKeyId")
                || detail.contains("SignatureDoesNotMatch")
                || detail.contains("AccessDenied") =>
            {
                (io::ErrorKind::PermissionDenied, Some(Failure::Access))
            }
            _ if is_connect_error(&err) && first_contact => {
                (io::ErrorKind::ConnectionRefused, Some(Failure::Unreachable))
            }
            // Once the command has begun, a server that stops answering is
            // an outage, not a setting to fix.
            _ if is_connect_error(&err) => {
                (io::ErrorKind::ConnectionRefused, Some(Failure::Transient))
            }
            _ if detail.contains(" retries") || detail.contains("status code: 5") => {
                (io::ErrorKind::Other, Some(Failure::Transient))
            }
            _ => (io::ErrorKind::Other, Some(Failure::Permanent)),
        };
        match failure {
            None => io::Error::new(kind, detail),
            Some(failure) => io::Error::new(
                kind,
                BackendError {
                    failure,
                    location: self.location.clone(),
                    detail,
                },
            ),
        }
    }

    /// `range` of `path`, or as much of it as the object holds.
    fn fetch(&self, path: &str, range: std::ops::Range<u64>) -> io::Result<bytes::Bytes> {
        let key = self.key(path);
        let store = self.store.clone();
        match self.run(async move { store.get_range(&key, range).await }) {
            Ok(b) => Ok(b),
            // Past the end of the object: nothing there.
            Err(e) if past_the_end(&e) => Ok(bytes::Bytes::new()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// `count` [`WINDOW`]s of `path` from `first`, from the cache or, for
    /// those missing, one request. The last may be short (the end of the
    /// object), and those past the end empty.
    fn windows(&self, path: &str, first: u64, count: u64) -> io::Result<Vec<bytes::Bytes>> {
        let starts: Vec<u64> = (0..count).map(|i| first + i * WINDOW).collect();
        let mut found: Vec<Option<bytes::Bytes>> = {
            let mut cache = self.windows.lock().expect("window cache");
            starts
                .iter()
                .map(|&start| {
                    let i = cache
                        .iter()
                        .position(|(k, _)| k.0 == path && k.1 == start)?;
                    let hit = cache.remove(i);
                    let bytes = hit.1.clone();
                    cache.push(hit);
                    Some(bytes)
                })
                .collect()
        };
        let missing: Vec<usize> = (0..starts.len()).filter(|&i| found[i].is_none()).collect();
        if let (Some(&lo), Some(&hi)) = (missing.first(), missing.last()) {
            let from = starts[lo];
            let got = self.fetch(path, from..starts[hi] + WINDOW)?;
            let mut cache = self.windows.lock().expect("window cache");
            for (i, slot) in found.iter_mut().enumerate().take(hi + 1).skip(lo) {
                let a = ((starts[i] - from) as usize).min(got.len());
                let b = (a + WINDOW as usize).min(got.len());
                let piece = got.slice(a..b);
                if slot.is_none() {
                    while cache.len() >= WINDOWS_KEPT {
                        cache.remove(0);
                    }
                    cache.push(((path.to_string(), starts[i]), piece.clone()));
                    *slot = Some(piece);
                }
            }
        }
        Ok(found.into_iter().map(|w| w.unwrap_or_default()).collect())
    }

    fn put_multipart(&self, key: StorePath, data: &[u8]) -> io::Result<()> {
        let store = self.store.clone();
        let bytes = bytes::Bytes::copy_from_slice(data);
        self.run(async move {
            let upload = store.put_multipart(&key).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            for part in bytes.chunks(PART_SIZE) {
                writer.wait_for_capacity(4).await?;
                writer.put(bytes.slice_ref(part));
            }
            writer.finish().await.map(|_| ())
        })
        .map_err(|e| self.error(e))
    }
}

/// Whether `err` says a range starts past the end of its object (HTTP 416,
/// or object_store's own check of the answer).
fn past_the_end(err: &object_store::Error) -> bool {
    if !matches!(err, object_store::Error::Generic { .. }) {
        return false;
    }
    let text = err.to_string();
    text.contains("416 Range Not Satisfiable") || text.contains("StartTooLarge")
}

/// Whether `err` is a connection that never got an answer.
fn is_connect_error(err: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut
            ) {
                return true;
            }
        }
        let text = e.to_string();
        if text.contains("error sending request")
            || text.contains("Connection refused")
            || text.contains("dns error")
            || text.contains("connect error")
        {
            return true;
        }
        source = e.source();
    }
    false
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn read_ahead(&self) -> usize {
        READ_AHEAD
    }

    fn get(&self, path: &str) -> io::Result<Vec<u8>> {
        let key = self.key(path);
        let store = self.store.clone();
        self.run(async move { store.get(&key).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| self.error(e))
    }

    fn get_range(&self, path: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let end = offset.checked_add(len).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{len} bytes at {offset} lie beyond the end of {path}"),
            )
        })?;
        let short = |got: usize| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{len} bytes at {offset} lie beyond the end of {path} (got {got})"),
            )
        };
        // Reads are served from aligned windows of the pack, each fetched
        // once: the blobs of small files share one request instead of
        // paying a round trip (and, on some servers, a delayed-ACK stall)
        // each, and neighbouring blobs never make the server read the same
        // stretch twice.
        let first = offset - offset % WINDOW;
        let windows = end.div_ceil(WINDOW).saturating_sub(first / WINDOW);
        if len > 0 && windows <= MAX_WINDOWS_PER_READ {
            let parts = self.windows(path, first, windows)?;
            let mut out = Vec::with_capacity(len as usize);
            let mut at = offset;
            for (i, part) in parts.iter().enumerate() {
                let start = first + i as u64 * WINDOW;
                let from = (at - start) as usize;
                let to = ((end - start).min(WINDOW) as usize).min(part.len());
                if from >= to {
                    break;
                }
                out.extend_from_slice(&part[from..to]);
                at = start + to as u64;
            }
            if out.len() as u64 != len {
                return Err(short(out.len()));
            }
            return Ok(out);
        }
        // The server returns what the object holds of the range: a length
        // read from a damaged index is never allocated up front.
        let got = self.fetch(path, offset..end)?;
        if got.len() as u64 != len {
            return Err(short(got.len()));
        }
        Ok(got.to_vec())
    }

    fn size(&self, path: &str) -> io::Result<u64> {
        let key = self.key(path);
        let store = self.store.clone();
        self.run(async move { store.head(&key).await })
            .map(|m| m.size)
            .map_err(|e| self.error(e))
    }

    fn put_if_absent(&self, path: &str, data: &[u8]) -> io::Result<bool> {
        let key = self.key(path);
        // Asked first, as well as conditionally written: some servers
        // (Garage 2.5) ignore `If-None-Match` on a put.
        if self.exists(path)? {
            return Ok(false);
        }
        if data.len() >= MULTIPART_THRESHOLD {
            self.put_multipart(key, data)?;
            return Ok(true);
        }
        let store = self.store.clone();
        let payload = PutPayload::from(bytes::Bytes::copy_from_slice(data));
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.run(async move { store.put_opts(&key, payload, opts).await }) {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<(String, u64)>> {
        let key = self.key(prefix);
        let store = self.store.clone();
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let metas = self
            .run(async move {
                let mut out = Vec::new();
                let mut stream = store.list(Some(&key));
                while let Some(meta) = stream.next().await {
                    out.push(meta?);
                }
                Ok::<_, object_store::Error>(out)
            })
            .map_err(|e| self.error(e))?;
        let mut out: Vec<(String, u64)> = metas
            .into_iter()
            .filter_map(|m| {
                let full = m.location.to_string();
                full.strip_prefix(&strip).map(|p| (p.to_string(), m.size))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn delete(&self, path: &str) -> io::Result<()> {
        let key = self.key(path);
        let store = self.store.clone();
        match self.run(async move { store.delete(&key).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        assert_eq!(
            parse_url("s3://b/some/prefix/").unwrap(),
            ("b".into(), "some/prefix".into())
        );
        assert_eq!(parse_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(parse_url("s3:///x").is_err());
        assert!(parse_url("/x").is_err());
    }
}
