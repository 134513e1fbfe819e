//! The embedded catalog engine: one redb file, one `&[u8] → &[u8]` table per catalog
//! table (named `c.NAME`), durable commits with quick repair.

use std::ops::Bound;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Engine, RawRange, RawRead, RawWrite};
use crate::store::StoreError;

/// The redb file of one data directory.
pub struct Embedded {
    db: Database,
    path: std::path::PathBuf,
}

impl Embedded {
    /// Opens (creating) the file; `Busy` when another process holds it.
    pub fn open(path: &Path, dir: &Path) -> Result<Embedded, StoreError> {
        let db = match Database::builder().create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::Busy(dir.to_path_buf())),
            Err(e) => return Err(e.into()),
        };
        Ok(Embedded { db, path: path.to_path_buf() })
    }

    /// The database, for the migration of older files.
    pub fn db(&self) -> &Database {
        &self.db
    }
}

/// redb names of the catalog's tables; the prefix keeps them apart from the typed
/// tables of schema ≤ 3.
fn def(table: &'static str) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(table)
}

fn as_slices(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// An empty range when the bounds are crossed (redb panics on those).
fn crossed(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b)) | (Bound::Excluded(a), Bound::Included(b)) => {
            a >= b
        }
        _ => false,
    }
}

struct Read {
    txn: redb::ReadTransaction,
}

struct Write {
    txn: redb::WriteTransaction,
}

impl Read {
    /// The table, or None if nothing was ever written to it.
    fn table(
        &self,
        table: &'static str,
    ) -> Result<Option<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>, StoreError> {
        match self.txn.open_table(def(table)) {
            Ok(t) => Ok(Some(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl RawRead for Read {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(t) = self.table(table)? else { return Ok(None) };
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    fn range(&self, table: &'static str, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Result<RawRange<'_>, StoreError> {
        let Some(t) = self.table(table)? else { return Ok(Box::new(std::iter::empty())) };
        if crossed(&lo, &hi) {
            return Ok(Box::new(std::iter::empty()));
        }
        let r = t.range::<&[u8]>((as_slices(&lo), as_slices(&hi)))?;
        Ok(Box::new(r.map(|e| {
            let (k, v) = e?;
            Ok((k.value().to_vec(), v.value().to_vec()))
        })))
    }

    /// redb's read transactions may be read from several threads at once.
    fn twin(&self) -> Result<Option<Box<dyn RawRead + Send + '_>>, StoreError> {
        Ok(Some(Box::new(Twin(self))))
    }

    fn scan(
        &self,
        table: &'static str,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let Some(t) = self.table(table)? else { return Ok(()) };
        if crossed(&lo, &hi) {
            return Ok(());
        }
        for e in t.range::<&[u8]>((as_slices(&lo), as_slices(&hi)))? {
            let (k, v) = e?;
            if !f(k.value(), v.value()) {
                break;
            }
        }
        Ok(())
    }
}

/// A read transaction lent to a second thread.
struct Twin<'r>(&'r Read);

impl RawRead for Twin<'_> {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(table, key)
    }
    fn range(&self, table: &'static str, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Result<RawRange<'_>, StoreError> {
        self.0.range(table, lo, hi)
    }
    fn scan(
        &self,
        table: &'static str,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.0.scan(table, lo, hi, f)
    }
}

impl RawRead for Write {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.txn.open_table(def(table))?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    fn range(&self, table: &'static str, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Result<RawRange<'_>, StoreError> {
        if crossed(&lo, &hi) {
            return Ok(Box::new(std::iter::empty()));
        }
        // A write transaction's table borrows it; ranges written through are short
        // (a project's tokens, a group's history), so they are read at once.
        let t = self.txn.open_table(def(table))?;
        let mut out = Vec::new();
        for e in t.range::<&[u8]>((as_slices(&lo), as_slices(&hi)))? {
            let (k, v) = e?;
            out.push(Ok((k.value().to_vec(), v.value().to_vec())));
        }
        Ok(Box::new(out.into_iter()))
    }
}

impl RawWrite for Write {
    fn insert(&self, table: &'static str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.txn.open_table(def(table))?.insert(key, value)?;
        Ok(())
    }

    fn remove(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut t = self.txn.open_table(def(table))?;
        Ok(t.remove(key)?.map(|v| v.value().to_vec()))
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.txn.commit()?;
        Ok(())
    }
}

impl Engine for Embedded {
    fn begin_read(&self) -> Result<Box<dyn RawRead + '_>, StoreError> {
        Ok(Box::new(Read { txn: self.db.begin_read()? }))
    }

    fn begin_write(&self) -> Result<Box<dyn RawWrite + '_>, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_quick_repair(true);
        Ok(Box::new(Write { txn }))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn shared(&self) -> bool {
        false
    }

    fn prepare(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_quick_repair(true);
        match legacy::old_schema(&txn)? {
            Some(v) if v >= 4 => return Ok(()),
            Some(_) => legacy::migrate(&txn)?,
            None => {}
        }
        // bt before schema 4 reads only the bare `meta` table: it must find a newer
        // schema there and refuse the file, not take it for an empty one.
        legacy::mark(&txn, crate::store::schema::SCHEMA_VERSION)?;
        txn.commit()?;
        Ok(())
    }
}

/// Files of schema ≤ 3 kept typed redb tables under bare names; schema 4 moved them
/// to the catalog's byte keys. The migration copies every table in one transaction
/// and drops the old ones, so a file is either all old or all new.
pub mod legacy {
    use redb::{ReadableTable, TableDefinition, TableHandle};

    use super::super::{EncodeKey, KeyDef, Str, key};
    use crate::store::StoreError;

    /// The schema an old file says it has (its `meta` table), if it is one.
    pub fn old_schema(txn: &redb::WriteTransaction) -> Result<Option<u32>, StoreError> {
        const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
        let exists = txn.list_tables()?.any(|h| h.name() == "meta");
        if !exists {
            return Ok(None);
        }
        let t = txn.open_table(META)?;
        Ok(t.get("schema")?.map(|v| {
            let b = v.value();
            let mut a = [0u8; 4];
            let n = b.len().min(4);
            a[..n].copy_from_slice(&b[..n]);
            u32::from_le_bytes(a)
        }))
    }

    /// Writes `schema` into the bare `meta` table that older bt reads.
    pub fn mark(txn: &redb::WriteTransaction, schema: u32) -> Result<(), StoreError> {
        const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
        txn.open_table(META)?.insert("schema", schema.to_le_bytes().as_slice())?;
        Ok(())
    }

    fn copy<K: redb::Key + 'static>(
        txn: &redb::WriteTransaction,
        (name, new_name): (&'static str, &'static str),
        encode: impl Fn(K::SelfType<'_>) -> Vec<u8>,
    ) -> Result<u64, StoreError> {
        if !txn.list_tables()?.any(|h| h.name() == name) {
            return Ok(0);
        }
        let old: TableDefinition<K, &[u8]> = TableDefinition::new(name);
        let mut n = 0;
        {
            let src = txn.open_table(old)?;
            let mut dst = txn.open_table(super::def(new_name))?;
            for e in src.iter()? {
                let (k, v) = e?;
                dst.insert(encode(k.value()).as_slice(), v.value())?;
                n += 1;
            }
        }
        txn.delete_table(old)?;
        Ok(n)
    }

    fn copy_text(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        const OLD: TableDefinition<(u32, u32), &str> = TableDefinition::new("strings");
        if !txn.list_tables()?.any(|h| h.name() == "strings") {
            return Ok(());
        }
        {
            let src = txn.open_table(OLD)?;
            let mut dst = txn.open_table(super::def("c.strings"))?;
            for e in src.iter()? {
                let (k, v) = e?;
                dst.insert(key::<(u32, u32), _>(&k.value()).as_slice(), v.value().as_bytes())?;
            }
        }
        txn.delete_table(OLD)?;
        Ok(())
    }

    fn s(v: &str) -> Vec<u8> {
        key::<Str, _>(&v)
    }
    fn enc<K: KeyDef, Q: EncodeKey<K>>(q: Q) -> Vec<u8> {
        key::<K, Q>(&q)
    }

    /// Moves every typed table of an old file to the catalog's tables.
    pub fn migrate(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        for names in [
            ("meta", "c.meta"),
            ("projects", "c.projects"),
            ("tokens", "c.tokens"),
            ("users", "c.users"),
            ("sessions", "c.sessions"),
            ("members", "c.members"),
        ] {
            copy::<&str>(txn, names, s)?;
        }
        for names in [("attrs", "c.attrs"), ("rules", "c.rules")] {
            copy::<(u32, u32)>(txn, names, enc::<(u32, u32), (u32, u32)>)?;
        }
        copy_text(txn)?;
        for names in [("objects", "c.objects"), ("blobs", "c.blobs")] {
            copy::<(u32, u64)>(txn, names, enc::<(u32, u64), (u32, u64)>)?;
        }
        copy::<(u32, u64, &str)>(txn, ("attachments", "c.attachments"), |k| enc::<(u32, u64, Str), _>(k))?;
        for names in [("groups", "c.groups"), ("triage", "c.triage"), ("integrations", "c.integrations")] {
            copy::<(u32, &str)>(txn, names, |k| enc::<(u32, Str), _>(k))?;
        }
        for names in [("history", "c.history"), ("deliveries", "c.deliveries")] {
            copy::<(u32, &str, u64)>(txn, names, |k| enc::<(u32, Str, u64), _>(k))?;
        }
        copy::<u64>(txn, ("outbox", "c.outbox"), enc::<u64, u64>)?;
        copy::<(u32, u32, &str)>(txn, ("notified", "c.notified"), |k| enc::<(u32, u32, Str), _>(k))?;
        Ok(())
    }
}
