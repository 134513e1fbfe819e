//! The object store: projects, tokens and users, ingest with group commit, the
//! columnar index and the query engine, retention — all on one redb file.
//!
//! Boundaries: only `store` names redb. Everything durable is written by redb
//! transactions; the in-memory [`index`] is rebuilt from them at open and updated
//! only after a commit succeeded, so a reader never sees an uncommitted object.
//!
#![doc = include_str!("STORE.md")]

pub mod auth;
pub mod catalog;
mod follow;
pub mod index;
pub mod ingest;
mod maintain;
pub mod migrate;
pub mod outbox;
mod overlay;
mod projects;
pub mod query;
pub mod schema;
pub mod summary;
pub mod sweep;
pub mod symbols;
pub mod triage;
pub mod workflow;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};

use catalog::{Catalog, WriteTxn};

use crate::dedup::RuleSet;
use index::ProjectIndex;
use schema::*;

pub use ingest::{Format, Submission};
pub use schema::{AttrType, Scope};

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "store.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("no such project: {0}")]
    NoProject(String),
    #[error("project {0} already exists")]
    ProjectExists(String),
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the data directory {} is in use by another bt process (a running server?)", .0.display())]
    Busy(PathBuf),
    #[error("{} was written by a newer bt (schema {found}, this bt knows {SCHEMA_VERSION})", .path.display())]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(String),
    #[error("the store is shutting down")]
    Closed,
    /// The catalog or blob server cannot be reached (a 503: retry later).
    #[error("{0}")]
    Unavailable(String),
    #[error("catalog: {0}")]
    Catalog(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError { StoreError::Db(e.into()) }
        }
    )*};
}
from_redb!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError, redb::DatabaseError);

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The reply to an acknowledged submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub rxid: u64,
    pub fingerprint: String,
    pub unique: bool,
    /// What ingest renamed, truncated or dropped to store the report.
    pub warnings: Vec<String>,
}

/// Object ids travel as lowercase hex.
pub fn format_object_id(id: u64) -> String {
    format!("{id:x}")
}

/// Parses an object id strictly: 1 to 16 hex digits, nothing else (no paths, no signs).
pub fn parse_object_id(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// A project as `coroner project list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectInfo {
    pub name: String,
    pub record: ProjectRecord,
    pub objects: u64,
}

/// A stored object as `GET /api/get` returns it.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: BlobKind,
    /// The bytes as submitted (JSON decompressed).
    pub bytes: Vec<u8>,
}

/// Retention settings of a project; `None` leaves a setting unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    pub max_age: Option<u64>,
    pub max_bytes: Option<u64>,
}

pub(crate) type SharedIndex = Arc<RwLock<HashMap<String, Arc<ProjectIndex>>>>;

/// The store: one redb database plus the in-memory index and the writer thread.
pub struct Store {
    dir: PathBuf,
    db: Arc<Catalog>,
    index: SharedIndex,
    jobs: Mutex<Option<mpsc::Sender<writer::Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    default_rules: Arc<RuleSet>,
    rules: Mutex<HashMap<String, Arc<RuleSet>>>,
    /// The change log position the index reflects (a shared catalog); held by
    /// whoever applies entries or writes, so both happen in commit order.
    follow: Arc<Mutex<u64>>,
    /// Tells the follower thread to end.
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// The server's largest submission, which bounds what decoding one may
    /// allocate (0: the command line's limits).
    max_submission: std::sync::atomic::AtomicU64,
    /// Gathers concurrent submissions' blobs into one object (an external blob store).
    packer: catalog::packs::Packer,
    /// Project tokens recently checked.
    tokens: auth::TokenCache,
}

fn lock_poisoned<T>(_: T) -> StoreError {
    StoreError::Io("internal lock poisoned".into())
}

/// Where a store keeps its catalog: the data directory's redb file (the default),
/// or a PostgreSQL database that several `bt serve` nodes share.
#[derive(Debug, Clone, Default)]
pub struct Backend {
    /// `postgres://USER@HOST:PORT/DB`; `None`: `DATA/store.redb`.
    pub catalog: Option<String>,
    /// `s3://BUCKET?endpoint=URL&region=R`: reports and attachments in that bucket;
    /// `None`: in the catalog.
    pub blobs: Option<String>,
    /// A file with the bucket's credentials (else `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY`).
    pub blobs_credentials: Option<PathBuf>,
}

impl Backend {
    /// The backend named by `BT_CATALOG`, `BT_BLOBS` and `BT_BLOBS_CREDENTIALS` (how
    /// `bt morgue --data` reaches a distributed store; flags of `bt serve` and
    /// `bt coroner` fall back to them too).
    pub fn from_env() -> Backend {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Backend {
            catalog: var("BT_CATALOG"),
            blobs: var("BT_BLOBS"),
            blobs_credentials: var("BT_BLOBS_CREDENTIALS").map(PathBuf::from),
        }
    }

    /// Whether the catalog lives outside the data directory.
    pub fn is_distributed(&self) -> bool {
        self.catalog.is_some()
    }
}

/// The catalog tables whose values an external blob store holds (the catalog keeps
/// references).
const BLOB_TABLES: &[&str] = &[BLOBS.name, ATTACHMENTS.name];

/// How often a node on a shared catalog applies the other nodes' changes.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl Store {
    /// Opens (creating if needed) the store in `dir`, loads the index and starts the
    /// writer. Only one process may open a data directory at a time.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, &Backend::default())
    }

    /// [`Store::open`] on a chosen backend. On a shared catalog a follower thread
    /// applies the other nodes' commits to the index every [`FOLLOW_EVERY`].
    pub fn open_with(dir: &Path, backend: &Backend) -> Result<Store, StoreError> {
        let store = Store::open_admin_with(dir, backend)?;
        store.load_index()?;
        if store.db.shared() {
            let db = store.db.clone();
            let index = store.index.clone();
            let follow = store.follow.clone();
            let stop = store.stop.clone();
            std::thread::Builder::new()
                .name("store-follower".into())
                .spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(FOLLOW_EVERY);
                        let Ok(mut last) = follow.lock() else { return };
                        let r = db.begin_read().and_then(|txn| follow::catch_up(&db, txn.raw(), &index, &mut last));
                        if let Err(e) = r {
                            log::warn!("following the catalog {}: {e}", db.engine().describe());
                        }
                    }
                })
                .map_err(|e| StoreError::Io(format!("starting the follower thread: {e}")))?;
        }
        let (tx, rx) = mpsc::channel();
        let db = store.db.clone();
        let index = store.index.clone();
        let follow = store.follow.clone();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(db, index, follow, rx))
            .map_err(|e| StoreError::Io(format!("starting the writer thread: {e}")))?;
        *store.jobs.lock().map_err(lock_poisoned)? = Some(tx);
        *store.writer.lock().map_err(lock_poisoned)? = Some(handle);
        Ok(store)
    }

    /// Opens the database for administration only: no index, no writer.
    pub fn open_admin(dir: &Path) -> Result<Store, StoreError> {
        Store::open_admin_with(dir, &Backend::default())
    }

    /// [`Store::open_admin`] on a chosen backend.
    pub fn open_admin_with(dir: &Path, backend: &Backend) -> Result<Store, StoreError> {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("creating {}: {e}", dir.display())))?;
            // Crash data can be sensitive: a new data directory is private to its owner.
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let path = dir.join(DB_FILE);
        let engine: Box<dyn catalog::Engine> = match &backend.catalog {
            None => Box::new(catalog::embedded::Embedded::open(&path, dir)?),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Box::new(catalog::postgres::Postgres::connect(url)?)
            }
            Some(other) => {
                return Err(StoreError::BadInput(format!("catalog {other:?}: expected postgres://USER@HOST:PORT/DB")));
            }
        };
        let blobs: Option<(Box<dyn catalog::blobs::BlobStore>, _)> = match &backend.blobs {
            None => None,
            Some(url) => {
                let s3 = catalog::blobs::S3::connect(url, backend.blobs_credentials.as_deref())?;
                Some((Box::new(s3), BLOB_TABLES))
            }
        };
        let db = Catalog::new(engine, follow::FOLLOWED, blobs)?;
        let store = Store {
            dir: dir.to_path_buf(),
            db: Arc::new(db),
            index: Arc::new(RwLock::new(HashMap::new())),
            jobs: Mutex::new(None),
            writer: Mutex::new(None),
            default_rules: Arc::new(RuleSet::default_rules()),
            rules: Mutex::new(HashMap::new()),
            follow: Arc::new(Mutex::new(0)),
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            max_submission: std::sync::atomic::AtomicU64::new(0),
            packer: Default::default(),
            tokens: Default::default(),
        };
        store.init_schema(&path)?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn begin_write(&self) -> Result<WriteTxn<'_>, StoreError> {
        self.db.begin_write()
    }

    fn init_schema(&self, path: &Path) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema")?.map(|v| {
                let b = v.value();
                u32::from_le_bytes([
                    b.first().copied().unwrap_or(0),
                    b.get(1).copied().unwrap_or(0),
                    b.get(2).copied().unwrap_or(0),
                    b.get(3).copied().unwrap_or(0),
                ])
            });
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::NewerSchema { path: path.to_path_buf(), found: v });
                }
                // Older schemas were migrated by the engine (schema 4 moved redb's
                // typed tables to the catalog's) or only lacked tables, which the
                // catalog creates on first write.
                Some(v) if v == SCHEMA_VERSION => {}
                _ => {
                    meta.insert("schema", SCHEMA_VERSION.to_le_bytes().as_slice())?;
                }
            }
            meta.insert("schema", SCHEMA_VERSION.to_le_bytes().as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Rebuilds the in-memory index from the tables (and, on a shared catalog, notes
    /// the change log position it reflects).
    fn load_index(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let (all, seq) = follow::load_all(txn.raw())?;
        *self.index.write().map_err(lock_poisoned)? = all;
        *self.follow.lock().map_err(lock_poisoned)? = seq;
        Ok(())
    }

    /// Read access to the index (short: to take a project's `Arc` or to look).
    pub(crate) fn index(
        &self,
    ) -> Result<std::sync::RwLockReadGuard<'_, HashMap<String, Arc<ProjectIndex>>>, StoreError> {
        self.index.read().map_err(lock_poisoned)
    }

    /// What each project's in-memory index holds: (project, rows, heap bytes by
    /// part, largest first).
    pub fn index_memory(&self) -> Result<Vec<(String, usize, Vec<(String, usize)>)>, StoreError> {
        let index = self.index()?;
        let mut out: Vec<_> = index.values().map(|p| (p.name.clone(), p.ids.len(), p.heap_bytes())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// One project's index, shared: queries run on it without holding the lock.
    pub(crate) fn project_index(&self, project: &str) -> Result<Arc<ProjectIndex>, StoreError> {
        self.index()?.get(project).cloned().ok_or_else(|| StoreError::NoProject(project.to_string()))
    }

    // ---------------------------------------------------------------------------
    // Ingest

    /// The rules of a project: its `rules/PROJECT/*.rules` files over the defaults.
    /// Loaded once per project and cached; a restart picks up edits.
    pub fn rules_for(&self, project: &str) -> Result<Arc<RuleSet>, StoreError> {
        let mut cache = self.rules.lock().map_err(lock_poisoned)?;
        if let Some(r) = cache.get(project) {
            return Ok(r.clone());
        }
        let dir = self.dir.join("rules").join(project);
        let rules = if dir.is_dir() {
            Arc::new(RuleSet::load(&dir).map_err(|e| StoreError::Io(format!("project {project} rules: {e}")))?)
        } else {
            self.default_rules.clone()
        };
        cache.insert(project.to_string(), rules.clone());
        Ok(rules)
    }

    /// Ties what decoding a submission may allocate to the server's largest
    /// submission (`DecodeLimits::for_submission`).
    pub fn limit_decoding(&self, max_submission: u64) {
        self.max_submission.store(max_submission, std::sync::atomic::Ordering::Relaxed);
    }

    /// Validates, fingerprints and stores one submission; returns once it is durable.
    pub fn submit(&self, sub: Submission) -> Result<Ack, StoreError> {
        if !self.index()?.contains_key(&sub.project) {
            return Err(StoreError::NoProject(sub.project));
        }
        let rules = self.rules_for(&sub.project)?;
        let limits = match self.max_submission.load(std::sync::atomic::Ordering::Relaxed) {
            0 => crate::snapshot::DecodeLimits::default(),
            max => crate::snapshot::DecodeLimits::for_submission(sub.body.len() as u64, max),
        };
        let mut prepared = ingest::prepare(sub, &rules, now(), &limits)?;
        if let Some(blobs) = self.db.blob_store() {
            // Stored here, outside the writers' lock, packed with the blobs of
            // concurrent requests (large ones alone); the writer commits references.
            // A blob whose commit never comes is the sweeper's.
            let slots = std::iter::once(&mut prepared.blob).chain(prepared.attachments.iter_mut().map(|(_, b)| b));
            let (alone, mut packed): (Vec<&mut Vec<u8>>, Vec<&mut Vec<u8>>) =
                slots.partition(|b| b.len() >= catalog::packs::ALONE);
            let mut puts = Vec::with_capacity(alone.len());
            for slot in alone {
                let key = catalog::blobs::new_key();
                puts.push((key.clone(), std::mem::replace(slot, catalog::blobs::reference(&key))));
            }
            if !packed.is_empty() {
                let parts = packed.iter_mut().map(|b| std::mem::take(&mut **b)).collect();
                let keys = self.packer.store(blobs, parts)?;
                for (slot, key) in packed.into_iter().zip(keys) {
                    *slot = catalog::blobs::reference(&key);
                }
            }
            if !puts.is_empty() {
                catalog::blobs::put_all(blobs, &puts)?;
            }
        }
        let (tx, rx) = mpsc::channel();
        self.send(writer::Job::Ingest(Box::new(prepared), tx))?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    fn send(&self, job: writer::Job) -> Result<(), StoreError> {
        let jobs = self.jobs.lock().map_err(lock_poisoned)?;
        let tx = jobs.as_ref().ok_or(StoreError::Closed)?;
        tx.send(job).map_err(|_| StoreError::Closed)
    }

    /// The stored report of an object.
    pub fn get(&self, project: &str, id: u64) -> Result<Object, StoreError> {
        let pid = self.project_id(project)?;
        let txn = self.db.begin_read()?;
        // A blob is served only with its committed row: an external blob store may
        // hold one whose commit never happened, until the sweeper removes it.
        if txn.open_table(OBJECTS)?.get((pid, id))?.is_none() {
            return Err(StoreError::NotFound(format!("object {}", format_object_id(id))));
        }
        let blobs = txn.open_table(BLOBS)?;
        let v =
            blobs.get((pid, id))?.ok_or_else(|| StoreError::NotFound(format!("object {}", format_object_id(id))))?;
        let raw = v.value();
        let kind = raw
            .first()
            .and_then(|&b| BlobKind::from_byte(b))
            .ok_or_else(|| StoreError::Corrupt(format!("object {id:x}: unknown blob kind")))?;
        let bytes = match kind {
            BlobKind::Snapshot => raw[1..].to_vec(),
            BlobKind::JsonZstd => {
                zstd::stream::decode_all(&raw[1..]).map_err(|e| StoreError::Corrupt(format!("object {id:x}: {e}")))?
            }
        };
        Ok(Object { kind, bytes })
    }

    /// One attachment of an object, decompressed.
    pub fn get_attachment(&self, project: &str, id: u64, name: &str) -> Result<Vec<u8>, StoreError> {
        let pid = self.project_id(project)?;
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ATTACHMENTS)?;
        let v = t
            .get((pid, id, name))?
            .ok_or_else(|| StoreError::NotFound(format!("attachment {name} of object {id:x}")))?;
        zstd::stream::decode_all(v.value())
            .map_err(|e| StoreError::Corrupt(format!("attachment {name} of object {id:x}: {e}")))
    }

    /// The attachments of an object: (name, size in bytes as stored, compressed).
    pub fn attachment_names(&self, project: &str, id: u64) -> Result<Vec<(String, u64)>, StoreError> {
        let pid = self.project_id(project)?;
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(OBJECTS)?;
        let row: ObjectRow = match objects.get((pid, id))? {
            Some(v) => decode(v.value(), "object")?,
            None => return Err(StoreError::NotFound(format!("object {}", format_object_id(id)))),
        };
        let t = txn.open_table(ATTACHMENTS)?;
        let mut out = Vec::new();
        for name in row.attachments {
            let size = t.get((pid, id, name.as_str()))?.map(|v| v.value().len() as u64).unwrap_or(0);
            out.push((name, size));
        }
        Ok(out)
    }

    /// Adds an attachment to a stored object (sent after the report, as
    /// @backtrace/node does). A name the object already has is replaced.
    pub fn add_attachment(&self, project: &str, id: u64, name: &str, bytes: &[u8]) -> Result<String, StoreError> {
        let pid = self.project_id(project)?;
        let name = if ingest::valid_attachment_name(name) {
            name.to_string()
        } else {
            return Err(StoreError::BadInput(format!("bad attachment name {name:?}")));
        };
        let z = zstd::bulk::compress(bytes, 3).map_err(|e| StoreError::Io(format!("compressing attachment: {e}")))?;
        let txn = self.begin_write()?;
        {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut row: ObjectRow = match objects.get((pid, id))? {
                Some(v) => decode(v.value(), "object")?,
                None => return Err(StoreError::NotFound(format!("object {}", format_object_id(id)))),
            };
            if !row.attachments.contains(&name) {
                row.attachments.push(name.clone());
                objects.insert((pid, id), encode(&row)?.as_slice())?;
            }
            txn.open_table(ATTACHMENTS)?.insert((pid, id, name.as_str()), z.as_slice())?;
        }
        txn.commit()?;
        Ok(name)
    }

    fn project_id(&self, project: &str) -> Result<u32, StoreError> {
        self.index()?.get(project).map(|p| p.record.id).ok_or_else(|| StoreError::NoProject(project.to_string()))
    }

    /// Deletes objects by id; returns how many existed.
    pub fn delete(&self, project: &str, ids: Vec<u64>) -> Result<usize, StoreError> {
        let (tx, rx) = mpsc::channel();
        self.send(writer::Job::Delete { project: project.to_string(), ids, reply: tx })?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// Deletes what a query's filter selects, oldest first, at most `limit`
    /// objects. Refuses a filter on an attribute the project does not have (with
    /// `is-not-set` it would select everything), and a filter that selects every
    /// object unless `all` is given. Returns how many were deleted.
    pub fn delete_matching(
        &self,
        project: &str,
        q: &query::Query,
        limit: Option<usize>,
        all: bool,
    ) -> Result<usize, StoreError> {
        let p = self.project_index(project)?;
        for c in &q.filter {
            if c.attr != "object" && c.attr != "_rxid" && p.attr(&c.attr).is_none() {
                return Err(StoreError::BadInput(format!(
                    "refusing to delete by a filter on {:?}: project {project} has no such attribute",
                    c.attr
                )));
            }
        }
        if q.filter.is_empty() && !all {
            return Err(StoreError::BadInput(
                "refusing to delete without a filter: pass all to delete every object of the project".into(),
            ));
        }
        let mut ids = query::matching_ids(&p, q)?;
        if let Some(l) = limit {
            ids.truncate(l);
        }
        if !all && !ids.is_empty() && ids.len() == p.n_alive {
            return Err(StoreError::BadInput(format!(
                "this filter selects all {} objects of {project}: pass all to delete a whole project",
                ids.len()
            )));
        }
        drop(p);
        let mut deleted = 0;
        for chunk in ids.chunks(10_000) {
            deleted += self.delete(project, chunk.to_vec())?;
        }
        Ok(deleted)
    }

    /// Runs a query (see [`query`]).
    pub fn query(&self, project: &str, q: &query::Query) -> Result<query::Output, StoreError> {
        let p = self.project_index(project)?;
        query::run(&p, q)
    }

    /// The attributes of a project: name, type, and how many live objects have a value.
    pub fn describe(&self, project: &str) -> Result<Vec<(String, AttrType, u64)>, StoreError> {
        let p = self.project_index(project)?;
        let mut out: Vec<(String, AttrType, u64)> = p
            .attrs
            .iter()
            .map(|a| {
                let set = (0..p.ids.len()).filter(|&row| p.alive[row] && a.column.is_set(row)).count() as u64;
                (a.name.clone(), a.ty, set)
            })
            .collect();
        // The triage of each object's group, filterable like any attribute.
        if p.attr("fingerprint").is_some() {
            for f in triage::FIELDS {
                out.push((format!("fingerprint;issues;{f}"), AttrType::Str, p.n_alive as u64));
            }
            out.push(("fingerprint;original".into(), AttrType::Str, p.n_alive as u64));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Ids of the live objects a query's filter selects.
    pub fn select_ids(&self, project: &str, q: &query::Query) -> Result<Vec<u64>, StoreError> {
        let p = self.project_index(project)?;
        query::matching_ids(&p, q)
    }

    /// The groups of the live objects a query's filter selects.
    pub fn select_fingerprints(&self, project: &str, q: &query::Query) -> Result<Vec<String>, StoreError> {
        let p = self.project_index(project)?;
        query::matching_fingerprints(&p, q)
    }

    /// Sets attributes of stored objects (morgue's `set`); returns how many objects
    /// were changed. Attributes the store computes (`fingerprint`, `timestamp`,
    /// …) cannot be set; names and values follow ingest's limits.
    pub fn set_attributes(
        &self,
        project: &str,
        ids: Vec<u64>,
        values: Vec<(String, String)>,
    ) -> Result<usize, StoreError> {
        if values.is_empty() {
            return Err(StoreError::BadInput("nothing to set".into()));
        }
        if values.len() > ingest::MAX_ATTRS {
            return Err(StoreError::BadInput(format!("at most {} attributes at once", ingest::MAX_ATTRS)));
        }
        for (k, v) in &values {
            if ingest::RESERVED.contains(&k.as_str()) || k == "timestamp" || k == ingest::WARNINGS {
                return Err(StoreError::BadInput(format!("attribute {k} is computed by the store and cannot be set")));
            }
            if !ingest::valid_attr_name(k) {
                return Err(StoreError::BadInput(format!(
                    "attribute name {k:?}: letters, digits, '.', '_' and '-', at most {} bytes",
                    ingest::MAX_ATTR_NAME
                )));
            }
            if v.len() > ingest::MAX_ATTR_VALUE {
                return Err(StoreError::BadInput(format!(
                    "value of {k} is {} bytes long, at most {}",
                    v.len(),
                    ingest::MAX_ATTR_VALUE
                )));
            }
        }
        let (tx, rx) = mpsc::channel();
        self.send(writer::Job::SetAttrs { project: project.to_string(), ids, values, reply: tx })?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// Stops the writer after the jobs already queued; later submissions fail.
    pub fn close(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Ok(mut w) = self.writer.lock()
            && let Some(h) = w.take()
        {
            let _ = h.join();
        }
    }

    /// Size of the database file in bytes.
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(self.dir.join(DB_FILE)).map(|m| m.len()).unwrap_or(0)
    }

    /// Total bytes of the blobs of live objects, per project.
    pub fn blob_bytes(&self, project: &str) -> Result<(usize, u64), StoreError> {
        let index = self.index()?;
        let p = index.get(project).ok_or_else(|| StoreError::NoProject(project.to_string()))?;
        Ok((p.n_alive, p.alive_bytes))
    }

    pub(crate) fn db(&self) -> &Catalog {
        &self.db
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_strict_hex() {
        assert_eq!(parse_object_id("1f"), Some(31));
        for bad in ["", "../1", "1/2", "-1", "0x1", "g", "11111111111111111", " 1", "%2e%2e"] {
            assert_eq!(parse_object_id(bad), None, "{bad:?}");
        }
        assert_eq!(parse_object_id(&format_object_id(u64::MAX)), Some(u64::MAX));
    }
}
