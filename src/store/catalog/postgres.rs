//! The PostgreSQL catalog engine: every catalog table in one relation
//! `bt_catalog (t, k, v)` ordered by `(t, k)` with `bytea` keys, which sort bytewise
//! as the catalog's key encoding requires. Several `bt serve` nodes share it.
//!
//! - A write transaction takes a transaction-level advisory lock first, so writers of
//!   every node are serialized as redb's single writer is; the change log's sequence
//!   numbers are therefore in commit order.
//! - A read transaction is `REPEATABLE READ READ ONLY`: one snapshot, like redb's.
//! - Connections are pooled; a connection that failed is dropped, not reused. A
//!   server that cannot be reached is [`StoreError::Unavailable`] (503 to clients).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Mutex;

use postgres::{Client, NoTls, Statement};

use super::{Engine, RawEntry, RawRange, RawRead, RawWrite};
use crate::store::StoreError;

/// The advisory lock every writer holds until its commit ("bt" in ASCII).
const WRITE_LOCK: i64 = 0x6274;
/// Rows fetched per round trip by a range.
const PAGE: i64 = 2048;
/// Connections kept idle: enough for every request thread of a busy node, since a
/// new PostgreSQL connection costs a process fork on the server.
const POOL: usize = 64;

/// One connection and its prepared statements.
struct Conn {
    client: Client,
    stmts: HashMap<String, Statement>,
}

impl Conn {
    fn stmt(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.stmts.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

/// A PostgreSQL database as the catalog.
pub struct Postgres {
    config: postgres::Config,
    /// TLS as the URL's `sslmode` asks (None: plain).
    tls: Option<super::pgtls::Connector>,
    shown: String,
    pool: Mutex<Vec<Conn>>,
}

/// A lost or refused connection, a server shutting down or out of resources, a
/// serialization failure: the client may retry (503); anything else is a fault.
fn pg_error(e: postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        // The causes too: "error performing TLS handshake" alone does not say why.
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            let more = c.to_string();
            if !text.contains(&more) {
                text = format!("{text}: {more}");
            }
            cause = c.source();
        }
        return StoreError::Unavailable(format!("catalog: {text}"));
    };
    let code = db.code().code();
    if e.is_closed() || ["08", "53", "57P", "40001", "40P01"].iter().any(|c| code.starts_with(c)) {
        StoreError::Unavailable(format!("catalog: {}", db.message()))
    } else {
        StoreError::Catalog(format!("{} ({code})", db.message()))
    }
}

/// The password of `user@host:port/db` in a `.pgpass` file (`*` matches anything).
fn pgpass(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ':' => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let port = port.to_string();
        let want = [host, port.as_str(), db, user];
        if fields[..4].iter().zip(want).all(|(f, w)| f == "*" || f == w) {
            return Some(fields[4].clone());
        }
    }
    None
}

impl Postgres {
    /// Connects to `postgres://USER@HOST:PORT/DB`; the password comes from the URL,
    /// `PGPASSWORD`, or `.pgpass` (`PGPASSFILE`, else `~/.pgpass`).
    pub fn connect(url: &str) -> Result<Postgres, StoreError> {
        let (theirs, tls) = super::pgtls::split(url)?;
        let tls = super::pgtls::connector(&tls)?;
        let mut config: postgres::Config =
            theirs.parse().map_err(|e| StoreError::BadInput(format!("catalog URL {url:?}: {e}")))?;
        if config.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            } else {
                let file = std::env::var_os("PGPASSFILE")
                    .map(std::path::PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")));
                if let Some(text) = file.and_then(|f| std::fs::read_to_string(f).ok()) {
                    let host = match config.get_hosts().first() {
                        Some(postgres::config::Host::Tcp(h)) => h.clone(),
                        _ => "localhost".to_string(),
                    };
                    let port = config.get_ports().first().copied().unwrap_or(5432);
                    let user = config.get_user().unwrap_or("").to_string();
                    let db = config.get_dbname().unwrap_or(&user).to_string();
                    if let Some(p) = pgpass(&text, &host, port, &db, &user) {
                        config.password(p);
                    }
                }
            }
        }
        config.application_name("bt");
        config.connect_timeout(std::time::Duration::from_secs(5));
        // The URL without its password, for messages.
        let shown = match url.split_once('@') {
            Some((scheme_user, rest)) => {
                let user = scheme_user.split(':').take(2).collect::<Vec<_>>().join(":");
                format!("{user}@{rest}")
            }
            None => url.to_string(),
        };
        let pg = Postgres { config, tls, shown, pool: Mutex::new(Vec::new()) };
        drop(pg.conn()?);
        Ok(pg)
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        if let Some(c) = self.pool.lock().map_err(|_| StoreError::Io("catalog pool poisoned".into()))?.pop() {
            if !c.client.is_closed() {
                return Ok(c);
            }
        }
        let client = match &self.tls {
            None => self.config.connect(NoTls),
            #[cfg(feature = "tls")]
            Some(tls) => self.config.connect(tls.clone()),
            #[cfg(not(feature = "tls"))]
            Some(never) => match *never {},
        }
        .map_err(pg_error)?;
        Ok(Conn { client, stmts: HashMap::new() })
    }

    fn give_back(&self, c: Conn) {
        if c.client.is_closed() {
            return;
        }
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < POOL
        {
            pool.push(c);
        }
    }
}

/// A transaction on one pooled connection; ended (commit or rollback) before the
/// connection goes back.
struct Txn<'p> {
    pg: &'p Postgres,
    conn: RefCell<Option<Conn>>,
    /// Writes not yet sent: (table, key) → value, `None` for a removal. They go in
    /// one statement per kind before a range, and before the commit; a read of a
    /// written key is answered from here. A batch of a thousand objects is then a
    /// few round trips instead of thousands.
    pending: RefCell<std::collections::BTreeMap<(&'static str, Vec<u8>), Option<Vec<u8>>>>,
}

/// Pending writes sent per statement at most (PostgreSQL's parameter arrays).
const FLUSH_ROWS: usize = 5000;

impl Txn<'_> {
    fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, postgres::Error>) -> Result<T, StoreError> {
        let mut slot = self.conn.borrow_mut();
        let c = slot.as_mut().ok_or_else(|| StoreError::Unavailable("catalog: the connection was lost".into()))?;
        match f(c) {
            Ok(t) => Ok(t),
            Err(e) => {
                // A failed statement aborts a PostgreSQL transaction: nothing more runs in it.
                let err = pg_error(e);
                if let Some(mut c) = slot.take() {
                    let _ = c.client.batch_execute("ROLLBACK");
                    self.pg.give_back(c);
                }
                Err(err)
            }
        }
    }

    /// The query of a range: its SQL and arguments, in key order (or descending).
    fn range_sql<'a>(
        table: &'a &'static str,
        lo: &'a Bound<Vec<u8>>,
        hi: &'a Bound<Vec<u8>>,
        desc: bool,
    ) -> (String, Vec<&'a (dyn postgres::types::ToSql + Sync)>) {
        let mut sql = String::from("SELECT k, v FROM bt_catalog WHERE t = $1");
        let mut args: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![table];
        for (b, incl, excl) in [(lo, ">=", ">"), (hi, "<=", "<")] {
            let (op, k) = match b {
                Bound::Included(k) => (incl, k),
                Bound::Excluded(k) => (excl, k),
                Bound::Unbounded => continue,
            };
            args.push(k);
            sql += &format!(" AND k {op} ${}", args.len());
        }
        sql += if desc { " ORDER BY k DESC" } else { " ORDER BY k" };
        (sql, args)
    }

    fn page(
        &self,
        table: &'static str,
        lo: &Bound<Vec<u8>>,
        hi: &Bound<Vec<u8>>,
        desc: bool,
    ) -> Result<Vec<RawEntry>, StoreError> {
        let (mut sql, args) = Self::range_sql(&table, lo, hi, desc);
        sql += &format!(" LIMIT {PAGE}");
        self.with(|c| {
            let s = c.stmt(&sql)?;
            let rows = c.client.query(&s, &args)?;
            Ok(rows.into_iter().map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1))).collect())
        })
    }

    /// Sends the pending writes (upserts, then removals).
    fn flush(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        if pending.is_empty() {
            return Ok(());
        }
        let (mut put, mut del): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, v)| v.is_some());
        while !put.is_empty() {
            let part: Vec<_> = put.drain(..put.len().min(FLUSH_ROWS)).collect();
            let t: Vec<&str> = part.iter().map(|((t, _), _)| *t).collect();
            let k: Vec<&[u8]> = part.iter().map(|((_, k), _)| k.as_slice()).collect();
            let v: Vec<&[u8]> = part.iter().map(|(_, v)| v.as_deref().unwrap_or_default()).collect();
            self.with(|c| {
                let s = c.stmt(
                    "INSERT INTO bt_catalog (t, k, v) SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) \
                     ON CONFLICT (t, k) DO UPDATE SET v = EXCLUDED.v",
                )?;
                c.client.execute(&s, &[&t, &k, &v])?;
                Ok(())
            })?;
        }
        while !del.is_empty() {
            let part: Vec<_> = del.drain(..del.len().min(FLUSH_ROWS)).collect();
            let t: Vec<&str> = part.iter().map(|((t, _), _)| *t).collect();
            let k: Vec<&[u8]> = part.iter().map(|((_, k), _)| k.as_slice()).collect();
            self.with(|c| {
                let s =
                    c.stmt("DELETE FROM bt_catalog WHERE (t, k) IN (SELECT * FROM unnest($1::text[], $2::bytea[]))")?;
                c.client.execute(&s, &[&t, &k])?;
                Ok(())
            })?;
        }
        Ok(())
    }

    fn end(&self, sql: &str) -> Result<(), StoreError> {
        let mut c = self
            .conn
            .borrow_mut()
            .take()
            .ok_or_else(|| StoreError::Unavailable("catalog: the connection was lost".into()))?;
        let r = c.client.batch_execute(sql).map_err(pg_error);
        self.pg.give_back(c);
        r
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.conn.borrow_mut().take() {
            if c.client.batch_execute("ROLLBACK").is_ok() {
                self.pg.give_back(c);
            }
        }
    }
}

/// A range read page by page from both ends; the ends never cross because each page
/// is bounded by what the other end has already taken.
struct Pages<'t, 'p> {
    txn: &'t Txn<'p>,
    table: &'static str,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    front: std::collections::VecDeque<RawEntry>,
    back: std::collections::VecDeque<RawEntry>,
    done: bool,
    failed: bool,
}

impl Pages<'_, '_> {
    fn fill(&mut self, desc: bool) -> Option<Result<(), StoreError>> {
        if self.done || self.failed {
            return None;
        }
        match self.txn.page(self.table, &self.lo, &self.hi, desc) {
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
            Ok(rows) => {
                if (rows.len() as i64) < PAGE {
                    self.done = true;
                }
                if desc {
                    if let Some((k, _)) = rows.last() {
                        self.hi = Bound::Excluded(k.clone());
                    }
                    self.back.extend(rows);
                } else {
                    if let Some((k, _)) = rows.last() {
                        self.lo = Bound::Excluded(k.clone());
                    }
                    self.front.extend(rows);
                }
                Some(Ok(()))
            }
        }
    }
}

impl Iterator for Pages<'_, '_> {
    type Item = Result<RawEntry, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.front.pop_front() {
                return Some(Ok(e));
            }
            match self.fill(false) {
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(())) if !self.front.is_empty() => continue,
                _ => return self.back.pop_back().map(Ok),
            }
        }
    }
}

impl DoubleEndedIterator for Pages<'_, '_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.back.pop_front() {
                return Some(Ok(e));
            }
            match self.fill(true) {
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(())) if !self.back.is_empty() => continue,
                _ => return self.front.pop_back().map(Ok),
            }
        }
    }
}

impl RawRead for Txn<'_> {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.pending.borrow().get(&(table, key.to_vec())) {
            return Ok(v.clone());
        }
        self.with(|c| {
            let s = c.stmt("SELECT v FROM bt_catalog WHERE t = $1 AND k = $2")?;
            Ok(c.client.query_opt(&s, &[&table, &key])?.map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    fn range(&self, table: &'static str, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Result<RawRange<'_>, StoreError> {
        self.flush()?;
        Ok(Box::new(Pages {
            txn: self,
            table,
            lo,
            hi,
            front: Default::default(),
            back: Default::default(),
            done: false,
            failed: false,
        }))
    }

    /// A transaction on another connection that imports this one's snapshot
    /// (`pg_export_snapshot`), as `pg_dump --jobs` shares one view between workers.
    fn twin(&self) -> Result<Option<Box<dyn RawRead + Send + '_>>, StoreError> {
        let id: String = self.with(|c| Ok(c.client.query_one("SELECT pg_export_snapshot()", &[])?.get(0)))?;
        if !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(StoreError::Corrupt(format!("catalog: an unexpected snapshot name {id:?}")));
        }
        let mut c = self.pg.conn()?;
        c.client
            .batch_execute(&format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{id}'"))
            .map_err(pg_error)?;
        Ok(Some(Box::new(Txn { pg: self.pg, conn: RefCell::new(Some(c)), pending: Default::default() })))
    }

    /// One query whose rows stream in as the server produces them (the client reads
    /// a bounded buffer ahead): no page boundaries, no copies of the rows.
    fn scan(
        &self,
        table: &'static str,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.flush()?;
        let (sql, args) = Self::range_sql(&table, &lo, &hi, false);
        self.with(|c| {
            use postgres::fallible_iterator::FallibleIterator;
            let s = c.stmt(&sql)?;
            let mut rows = c.client.query_raw(&s, args)?;
            while let Some(r) = rows.next()? {
                if !f(r.get::<_, &[u8]>(0), r.get::<_, &[u8]>(1)) {
                    break;
                }
            }
            Ok(())
        })
    }
}

impl RawWrite for Txn<'_> {
    fn insert(&self, table: &'static str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.pending.borrow_mut().insert((table, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    fn remove(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.get(table, key)?;
        if old.is_some() {
            self.pending.borrow_mut().insert((table, key.to_vec()), None);
        }
        Ok(old)
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.flush()?;
        self.end("COMMIT")
    }
}

impl Engine for Postgres {
    fn begin_read(&self) -> Result<Box<dyn RawRead + '_>, StoreError> {
        let mut c = self.conn()?;
        c.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").map_err(pg_error)?;
        Ok(Box::new(Txn { pg: self, conn: RefCell::new(Some(c)), pending: Default::default() }))
    }

    fn begin_write(&self) -> Result<Box<dyn RawWrite + '_>, StoreError> {
        let mut c = self.conn()?;
        c.client.batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")).map_err(pg_error)?;
        Ok(Box::new(Txn { pg: self, conn: RefCell::new(Some(c)), pending: Default::default() }))
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn shared(&self) -> bool {
        true
    }

    fn prepare(&self) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        // Two nodes starting at once: the lock makes the second wait for the first's DDL.
        c.client
            .batch_execute(&format!(
                "SET client_min_messages = warning; BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK});
                 CREATE TABLE IF NOT EXISTS bt_catalog (t text NOT NULL, k bytea NOT NULL, v bytea NOT NULL,
                     PRIMARY KEY (t, k));
                 COMMIT"
            ))
            .map_err(pg_error)?;
        self.give_back(c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::pgpass;

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        let text = "# comment\nother:5432:*:*:nope\n127.0.0.1:*:bt:alice:s\\:ecret\n*:*:*:*:fallback\n";
        assert_eq!(pgpass(text, "127.0.0.1", 5544, "bt", "alice").as_deref(), Some("s:ecret"));
        assert_eq!(pgpass(text, "127.0.0.1", 5544, "bt", "bob").as_deref(), Some("fallback"));
        assert_eq!(pgpass("", "h", 1, "d", "u"), None);
    }
}
