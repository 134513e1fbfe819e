//! Blobs outside the catalog: the tables of submitted reports and attachments kept
//! in an S3-compatible object store (SeaweedFS, MinIO, Ceph RGW, AWS S3) instead of
//! the catalog, while every other table stays in it.
//!
//! [`Routed`] wraps an engine's transactions: the blob tables keep, in the catalog, a
//! small *reference* to an object key (`b/UUID`, or `p/UUID/OFFSET/LEN` inside a pack,
//! see [`super::packs`]) instead of the bytes. Ingest stores a submission's blobs from
//! the request thread, before the writer and outside the writers' lock, and hands the
//! writer references; any other write of bytes to a blob
//! table is stored at commit, in parallel, before the catalog commits. Removed blobs
//! go after the commit. So an acknowledged object's blob is stored; a blob that no
//! committed row refers to (a node killed in between, a refused batch) is an orphan
//! that the sweeper removes after a grace period, finding its row through
//! `c.blobrefs`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Bound;
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::packs;
use super::{RawEntry, RawRange, RawRead, RawWrite};
use crate::store::StoreError;

/// Largest blob read back (a submission is bounded far below this).
const MAX_BLOB: u64 = 1 << 30;
/// Uploads in flight at once while a batch commits.
const PARALLEL: usize = 16;

/// An object store.
pub trait BlobStore: Send + Sync {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// `len` bytes of an object from `offset` (a blob inside a pack); `None` if the
    /// object is missing.
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Option<Vec<u8>>, StoreError>;
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Objects under a prefix, in key order.
    fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError>;
    fn describe(&self) -> String;
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    pub key: String,
    /// Last modified, Unix seconds (0 if the server did not say).
    pub modified: i64,
    pub size: u64,
}

/// An S3 bucket, requests signed with SigV4 (rusty-s3) and sent with ureq.
pub struct S3 {
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
    shown: String,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("blob store: {what}: {e}"))
}

/// `aws_access_key_id = …` / `AWS_SECRET_ACCESS_KEY=…` lines (an AWS credentials file
/// or an env file).
fn credentials_file(text: &str) -> Option<(String, String)> {
    let mut id = None;
    let mut secret = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => id = Some(v),
            "aws_secret_access_key" => secret = Some(v),
            _ => {}
        }
    }
    Some((id?, secret?))
}

/// Unix seconds of an S3 time (`2026-12-05T12:00:00.000Z`); 0 if unreadable.
fn s3_time(s: &str) -> i64 {
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<i64>().ok());
    let (Some(y), Some(m), Some(d), Some(hh), Some(mm), Some(ss)) =
        (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19))
    else {
        return 0;
    };
    // Days from the civil date (proleptic Gregorian), as in H. Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

impl S3 {
    /// `s3://BUCKET?endpoint=URL&region=R`; credentials from `credentials` (a file) or
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`. The bucket is created if missing.
    pub fn connect(url: &str, credentials: Option<&std::path::Path>) -> Result<S3, StoreError> {
        let bad = |m: &str| {
            StoreError::BadInput(format!("blob store {url:?}: {m} (expected s3://BUCKET?endpoint=URL&region=R)"))
        };
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("not an s3:// URL"))?;
        let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
        let name = name.trim_end_matches('/');
        if name.is_empty() || name.contains('/') {
            return Err(bad("no bucket name"));
        }
        let mut endpoint = None;
        let mut region = "us-east-1".to_string();
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| bad("a query parameter without a value"))?;
            let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
            match k {
                "endpoint" => endpoint = Some(v),
                "region" => region = v,
                _ => return Err(bad(&format!("unknown parameter {k}"))),
            }
        }
        let endpoint = endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let parsed = endpoint.parse().map_err(|_| bad("the endpoint is not a URL"))?;
        let bucket =
            Bucket::new(parsed, UrlStyle::Path, name.to_string(), region).map_err(|e| bad(&format!("bucket: {e}")))?;
        let (id, secret) = match credentials {
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| StoreError::Io(format!("reading blob credentials {}: {e}", f.display())))?;
                credentials_file(&text).ok_or_else(|| {
                    StoreError::BadInput(format!(
                        "{}: expected aws_access_key_id = … and aws_secret_access_key = … lines",
                        f.display()
                    ))
                })?
            }
            None => match (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
                (Ok(i), Ok(s)) => (i, s),
                _ => {
                    return Err(StoreError::BadInput(
                        "blob store credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give --blobs-credentials FILE"
                            .into(),
                    ));
                }
            },
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(60)))
            .max_redirects(0)
            // Every upload thread of a commit keeps its connection between batches.
            .max_idle_connections(4 * PARALLEL)
            .max_idle_connections_per_host(4 * PARALLEL)
            .build()
            .into();
        let s3 = S3 { bucket, creds: Credentials::new(id, secret), agent, shown: format!("s3://{name} at {endpoint}") };
        s3.ensure_bucket()?;
        Ok(s3)
    }

    fn ensure_bucket(&self) -> Result<(), StoreError> {
        let url = self.bucket.head_bucket(Some(&self.creds)).sign(Duration::from_secs(300));
        let r = self.agent.head(url.as_str()).call().map_err(|e| unavailable("checking the bucket", e))?;
        match r.status().as_u16() {
            200 => Ok(()),
            404 => {
                let url = self.bucket.create_bucket(&self.creds).sign(Duration::from_secs(300));
                let mut r =
                    self.agent.put(url.as_str()).send_empty().map_err(|e| unavailable("creating the bucket", e))?;
                match r.status().as_u16() {
                    200 | 409 => Ok(()),
                    s => {
                        let text = r.body_mut().with_config().limit(64 << 10).read_to_string().unwrap_or_default();
                        let why =
                            text.split("<Message>").nth(1).and_then(|m| m.split("</Message>").next()).unwrap_or("");
                        Err(StoreError::BadInput(format!("{}: creating the bucket: HTTP {s} {why}", self.shown)))
                    }
                }
            }
            403 => Err(StoreError::BadInput(format!("{}: access denied (check the credentials)", self.shown))),
            s => Err(unavailable("checking the bucket", format!("HTTP {s}"))),
        }
    }

    fn status_error(&self, what: &str, key: &str, status: u16) -> StoreError {
        if status >= 500 || status == 429 {
            unavailable(&format!("{what} {key}"), format!("HTTP {status}"))
        } else {
            StoreError::Io(format!("blob store: {what} {key}: HTTP {status}"))
        }
    }
}

impl BlobStore for S3 {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let url = self.bucket.put_object(Some(&self.creds), key).sign(Duration::from_secs(300));
        let r = self.agent.put(url.as_str()).send(bytes).map_err(|e| unavailable(&format!("storing {key}"), e))?;
        match r.status().as_u16() {
            200 | 201 | 204 => Ok(()),
            s => Err(self.status_error("storing", key, s)),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let url = self.bucket.get_object(Some(&self.creds), key).sign(Duration::from_secs(300));
        let mut r = self.agent.get(url.as_str()).call().map_err(|e| unavailable(&format!("reading {key}"), e))?;
        match r.status().as_u16() {
            200 => Ok(Some(
                r.body_mut()
                    .with_config()
                    .limit(MAX_BLOB)
                    .read_to_vec()
                    .map_err(|e| unavailable(&format!("reading {key}"), e))?,
            )),
            404 => Ok(None),
            s => Err(self.status_error("reading", key, s)),
        }
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if len == 0 {
            return Ok(self.get(key)?.map(|_| Vec::new()));
        }
        if len > MAX_BLOB {
            return Err(StoreError::Corrupt(format!("blob store: a blob of {len} bytes in {key}")));
        }
        let url = self.bucket.get_object(Some(&self.creds), key).sign(Duration::from_secs(300));
        let range = format!("bytes={offset}-{}", offset.saturating_add(len - 1));
        let mut r = self
            .agent
            .get(url.as_str())
            .header("Range", &range)
            .call()
            .map_err(|e| unavailable(&format!("reading {key}"), e))?;
        let status = r.status().as_u16();
        let body = match status {
            206 | 200 => r
                .body_mut()
                .with_config()
                .limit(if status == 206 { len } else { MAX_BLOB })
                .read_to_vec()
                .map_err(|e| unavailable(&format!("reading {key}"), e))?,
            404 => return Ok(None),
            s => return Err(self.status_error("reading", key, s)),
        };
        // A server that ignores ranges answers 200 with the whole object.
        let bytes = if status == 200 {
            usize::try_from(offset)
                .ok()
                .and_then(|o| body.get(o..o.checked_add(len as usize)?))
                .map(<[u8]>::to_vec)
                .unwrap_or_default()
        } else {
            body
        };
        if bytes.len() as u64 != len {
            return Err(StoreError::Corrupt(format!(
                "blob store: {key} holds {} bytes at {offset}, its row names {len}",
                bytes.len()
            )));
        }
        Ok(Some(bytes))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let url = self.bucket.delete_object(Some(&self.creds), key).sign(Duration::from_secs(300));
        let r = self.agent.delete(url.as_str()).call().map_err(|e| unavailable(&format!("removing {key}"), e))?;
        match r.status().as_u16() {
            200 | 204 | 404 => Ok(()),
            s => Err(self.status_error("removing", key, s)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.creds));
            action.with_prefix(prefix);
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(Duration::from_secs(300));
            let mut r = self.agent.get(url.as_str()).call().map_err(|e| unavailable("listing", e))?;
            let status = r.status().as_u16();
            if status != 200 {
                return Err(self.status_error("listing", prefix, status));
            }
            let text =
                r.body_mut().with_config().limit(64 << 20).read_to_string().map_err(|e| unavailable("listing", e))?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text)
                .map_err(|e| StoreError::Io(format!("blob store: listing: {e}")))?;
            out.extend(page.contents.into_iter().map(|c| Listed {
                modified: c.last_modified.as_deref().map(s3_time).unwrap_or(0),
                size: c.size.unwrap_or(0),
                key: c.key,
            }));
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}

/// A catalog value that stands for a blob in the object store: `00 "btref:" KEY`.
/// No stored value starts with a zero byte (reports begin with their kind, 1 or 2;
/// attachments with zstd's magic), so a reference is never taken for data.
const REF: &[u8] = b"\0btref:";

/// The catalog value referring to object key `key`.
pub fn reference(key: &str) -> Vec<u8> {
    [REF, key.as_bytes()].concat()
}

/// The object key a catalog value refers to, if it is a reference.
pub fn referred(value: &[u8]) -> Option<&str> {
    value.strip_prefix(REF).and_then(|k| std::str::from_utf8(k).ok())
}

/// A fresh object key: blobs are named at random (`b/UUID`), so that they can be
/// stored before the object they belong to has an id, outside the writers' lock.
pub fn new_key() -> String {
    format!("b/{}", uuid::Uuid::new_v4().simple())
}

/// The prefix of the keys of blobs stored alone (packs are under [`packs::PREFIX`]).
pub const PREFIX: &str = "b/";

/// `c.blobrefs`: object key → the (table, catalog key) whose value refers to it,
/// written with the reference; the sweeper's way back from a key to its row.
pub const BLOBREFS: &str = "c.blobrefs";

fn blobref_value(table: &str, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(table.len() + 1 + key.len());
    v.extend_from_slice(table.as_bytes());
    v.push(0);
    v.extend_from_slice(key);
    v
}

/// Splits a `c.blobrefs` value into (table, catalog key).
pub fn blobref_target(v: &[u8]) -> Option<(&str, &[u8])> {
    let at = v.iter().position(|&b| b == 0)?;
    Some((std::str::from_utf8(&v[..at]).ok()?, &v[at + 1..]))
}

/// A transaction whose blob tables hold references to an object store. A value
/// written to a blob table is stored under a new key when the transaction commits
/// (in parallel, before the catalog commit) and replaced by its reference; a value
/// that is already a reference (stored beforehand, as ingest does outside the lock)
/// is kept. Reads resolve references; removals delete the blob after the commit.
pub struct Routed<'c, T: ?Sized> {
    pub inner: Box<T>,
    pub blobs: &'c dyn BlobStore,
    pub tables: &'static [&'static str],
    puts: RefCell<HashMap<String, Vec<u8>>>,
    deletes: RefCell<Vec<String>>,
}

impl<'c, T: ?Sized> Routed<'c, T> {
    pub fn new(inner: Box<T>, blobs: &'c dyn BlobStore, tables: &'static [&'static str]) -> Routed<'c, T> {
        Routed { inner, blobs, tables, puts: Default::default(), deletes: Default::default() }
    }

    fn routed(&self, table: &str) -> bool {
        self.tables.contains(&table)
    }

    /// The blob a stored value stands for (the value itself if it is not a reference).
    fn resolve(&self, value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let Some(k) = referred(&value) else { return Ok(value) };
        if let Some(v) = self.puts.borrow().get(k) {
            return Ok(v.clone());
        }
        let found = match packs::member(k) {
            Some(m) => self.blobs.get_range(m.pack, m.offset, m.len)?,
            None => self.blobs.get(k)?,
        };
        found.ok_or_else(|| StoreError::Corrupt(format!("blob store: {k} is missing (its row names it)")))
    }
}

impl<T: RawRead + ?Sized> RawRead for Routed<'_, T> {
    fn get_stored(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(table, key)
    }

    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self.inner.get(table, key)?;
        if !self.routed(table) {
            return Ok(v);
        }
        v.map(|v| self.resolve(v)).transpose()
    }

    fn range(&self, table: &'static str, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Result<RawRange<'_>, StoreError> {
        let r = self.inner.range(table, lo, hi)?;
        if !self.routed(table) {
            return Ok(r);
        }
        Ok(Box::new(r.map(move |e| {
            let (k, v) = e?;
            Ok::<RawEntry, StoreError>((k, self.resolve(v)?))
        })))
    }

    fn twin(&self) -> Result<Option<Box<dyn RawRead + Send + '_>>, StoreError> {
        self.inner.twin()
    }

    fn scan(
        &self,
        table: &'static str,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if !self.routed(table) {
            return self.inner.scan(table, lo, hi, f);
        }
        super::scan_range(self.range(table, lo, hi)?, f)
    }

    fn scan_stored(
        &self,
        table: &'static str,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.scan(table, lo, hi, f)
    }
}

impl<T: RawWrite + ?Sized> RawWrite for Routed<'_, T> {
    fn insert(&self, table: &'static str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if !self.routed(table) {
            return self.inner.insert(table, key, value);
        }
        let object_key = match referred(value) {
            Some(k) => k.to_string(),
            None => {
                let k = new_key();
                self.puts.borrow_mut().insert(k.clone(), value.to_vec());
                k
            }
        };
        self.inner.insert(table, key, &reference(&object_key))?;
        self.inner.insert(BLOBREFS, object_key.as_bytes(), &blobref_value(table, key))
    }

    fn remove(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.inner.remove(table, key)?;
        if !self.routed(table) {
            return Ok(old);
        }
        if let Some(k) = old.as_deref().and_then(referred) {
            self.inner.remove(BLOBREFS, k.as_bytes())?;
            // A pack goes with its last member, by the sweeper.
            if self.puts.borrow_mut().remove(k).is_none() && packs::member(k).is_none() {
                self.deletes.borrow_mut().push(k.to_string());
            }
        }
        Ok(old)
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let Routed { inner, blobs, puts, deletes, .. } = *self;
        let puts: Vec<(String, Vec<u8>)> = puts.into_inner().into_iter().collect();
        // Every blob is stored before the rows that name it commit.
        put_all(blobs, &puts)?;
        inner.commit()?;
        // After the commit, blobs of removed rows go; one left behind by a crash here
        // has no reference, and the sweeper takes it.
        for k in deletes.into_inner() {
            if let Err(e) = blobs.delete(&k) {
                log::warn!("{e} (the sweeper will remove it)");
            }
        }
        Ok(())
    }
}

/// Stores blobs in parallel ([`PARALLEL`] connections).
pub fn put_all(blobs: &dyn BlobStore, puts: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
    if puts.len() == 1 {
        return blobs.put(&puts[0].0, &puts[0].1);
    }
    let chunk = puts.len().div_ceil(PARALLEL).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = puts
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().try_for_each(|(k, v)| blobs.put(k, v))))
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|_| Err(StoreError::Io("a blob upload thread panicked".into()))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_times_are_unix_seconds() {
        assert_eq!(s3_time("1970-01-01T00:00:00.000Z"), 0);
        assert_eq!(s3_time("2026-12-05T12:34:56.000Z"), 1_796_474_096);
        assert_eq!(s3_time("2000-03-01T00:00:00Z"), 951_868_800);
        assert_eq!(s3_time("garbage"), 0);
    }

    #[test]
    fn references_are_never_data() {
        let k = new_key();
        assert!(k.starts_with(PREFIX) && k.len() == 34, "{k}");
        assert_eq!(referred(&reference(&k)), Some(k.as_str()));
        // A report (kind 1 or 2) and an attachment (zstd) are not references.
        assert_eq!(referred(b"\x01snapshot"), None);
        assert_eq!(referred(&zstd::encode_all(&b"log"[..], 3).expect("zstd")), None);
        let v = blobref_value("c.blobs", &[0, 0, 0, 1, 0]);
        assert_eq!(blobref_target(&v), Some(("c.blobs", &[0u8, 0, 0, 1, 0][..])));
    }

    #[test]
    fn credentials_files_of_both_spellings() {
        let ini = "[default]\naws_access_key_id = AKIA\naws_secret_access_key = s3cr=et\n";
        assert_eq!(credentials_file(ini), Some(("AKIA".into(), "s3cr=et".into())));
        assert_eq!(
            credentials_file("AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=\"b\"\n"),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(credentials_file("aws_access_key_id = a\n"), None);
    }
}
