//! Moving a store between backends (`bt coroner migrate`): every catalog table is
//! copied in key order, in transactions of bounded size, from one catalog to another
//! (blob tables land wherever the destination keeps them). A copy that stops is
//! resumed: each table goes on after the destination's last key. At the end every
//! table is verified by its count and a SHA-256 over its keys and values, read back
//! from both sides.

use std::ops::Bound;

use sha2::{Digest, Sha256};

use super::catalog::{Catalog, Str, key};
use super::schema::*;
use super::{Store, StoreError};

/// Most entries and bytes per destination transaction.
const BATCH: usize = 1000;
const BATCH_BYTES: usize = 32 << 20;
/// `c.meta` key marking a destination that a migration is filling.
const MARK: &str = "migrating_from";

/// One table's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    pub copied: u64,
    pub entries: u64,
    pub checksum: String,
}

fn digest(db: &Catalog, table: &'static str) -> Result<(u64, String), StoreError> {
    let txn = db.begin_read()?;
    let mut h = Sha256::new();
    let mut n = 0;
    for e in txn.raw().range(table, Bound::Unbounded, Bound::Unbounded)? {
        let (k, v) = e?;
        h.update((k.len() as u64).to_le_bytes());
        h.update(&k);
        h.update((v.len() as u64).to_le_bytes());
        h.update(&v);
        n += 1;
    }
    Ok((n, h.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

impl Store {
    /// Copies this store's catalog (and blobs) into `to`, which must be empty or a
    /// migration of this same store that stopped. `progress` hears each table.
    pub fn migrate_into(&self, to: &Store, mut progress: impl FnMut(&TableCopy)) -> Result<Vec<TableCopy>, StoreError> {
        let (src, dst) = (self.db(), to.db());
        let source = src.engine().describe();
        let mark_key = key::<Str, &str>(&MARK);
        {
            let txn = dst.begin_read()?;
            let marked = txn.raw().get(META.name, &mark_key)?;
            let has_projects = txn.raw().range(PROJECTS.name, Bound::Unbounded, Bound::Unbounded)?.next().is_some();
            match marked {
                Some(m) if m != source.as_bytes() => {
                    return Err(StoreError::BadInput(format!(
                        "{} is being filled by a migration from {} (not {source})",
                        dst.engine().describe(),
                        String::from_utf8_lossy(&m)
                    )));
                }
                None if has_projects => {
                    return Err(StoreError::BadInput(format!(
                        "{} already holds a store: migrate into an empty one",
                        dst.engine().describe()
                    )));
                }
                _ => {}
            }
            drop(txn);
            let w = dst.begin_write()?;
            w.raw_insert(META.name, &mark_key, source.as_bytes())?;
            w.commit()?;
        }
        let mut out = Vec::new();
        for &table in ALL_TABLES {
            // Resume after the destination's last key (batches commit in key order).
            let last = {
                let txn = dst.begin_read()?;
                let mut r = txn.raw().range(table, Bound::Unbounded, Bound::Unbounded)?;
                r.next_back().transpose()?.map(|(k, _)| k)
            };
            let lo = match last {
                Some(k) if table != META.name => Bound::Excluded(k),
                _ => Bound::Unbounded,
            };
            let txn = src.begin_read()?;
            let mut copied = 0u64;
            let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut bytes = 0;
            let flush = |batch: &mut Vec<(Vec<u8>, Vec<u8>)>| -> Result<(), StoreError> {
                if batch.is_empty() {
                    return Ok(());
                }
                let w = dst.begin_write()?;
                for (k, v) in batch.drain(..) {
                    if table == META.name && k == mark_key {
                        continue;
                    }
                    w.raw_insert(table, &k, &v)?;
                }
                w.commit()?;
                Ok(())
            };
            for e in txn.raw().range(table, lo, Bound::Unbounded)? {
                let (k, v) = e?;
                bytes += k.len() + v.len();
                batch.push((k, v));
                copied += 1;
                if batch.len() >= BATCH || bytes >= BATCH_BYTES {
                    flush(&mut batch)?;
                    bytes = 0;
                }
            }
            flush(&mut batch)?;
            drop(txn);
            let (n_src, sum_src) = digest(src, table)?;
            let (mut n_dst, mut sum_dst) = digest(dst, table)?;
            if table == META.name {
                // The destination's own keys (its mark, a change log position) aside.
                let txn = dst.begin_read()?;
                let mut h = Sha256::new();
                n_dst = 0;
                for e in txn.raw().range(table, Bound::Unbounded, Bound::Unbounded)? {
                    let (k, v) = e?;
                    if k == mark_key || (src.begin_read()?.raw().get(table, &k)?.is_none()) {
                        continue;
                    }
                    h.update((k.len() as u64).to_le_bytes());
                    h.update(&k);
                    h.update((v.len() as u64).to_le_bytes());
                    h.update(&v);
                    n_dst += 1;
                }
                sum_dst = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            }
            if (n_src, &sum_src) != (n_dst, &sum_dst) {
                return Err(StoreError::Corrupt(format!(
                    "migration check of {table}: the source has {n_src} entries (sha256 {sum_src}), the destination \
                     {n_dst} (sha256 {sum_dst})"
                )));
            }
            let c = TableCopy { table, copied, entries: n_src, checksum: sum_src };
            progress(&c);
            out.push(c);
        }
        let w = dst.begin_write()?;
        w.raw_remove(META.name, &mark_key)?;
        w.commit()?;
        Ok(out)
    }
}
