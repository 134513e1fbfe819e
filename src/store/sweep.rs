//! The sweeper of an external blob store: removes blobs that no committed catalog
//! row refers to (a submission stored but never committed: a node killed in between,
//! a refused batch; or a removal whose delete failed after its commit), once they are
//! older than a grace period that covers any submission in progress.
//!
//! Candidates are listed without a lock; each is checked again and removed inside a
//! catalog write transaction, which holds the writers' lock. A blob is referred to
//! when `c.blobrefs` names a row for it and that row's value is still its reference.

use std::ops::Bound;

use super::catalog::{RawRead, blobs, packs};
use super::{Store, StoreError};

/// What one sweep found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    pub blobs: u64,
    pub orphans: u64,
    pub removed: u64,
}

/// Most orphans removed per write transaction (each holds the writers' lock).
const PER_TXN: usize = 500;

impl Store {
    /// Removes unreferenced blobs older than `grace_secs`. Without an external blob
    /// store there is nothing to sweep (blobs live and die with their rows).
    pub fn sweep_blobs(&self, grace_secs: i64) -> Result<Sweep, StoreError> {
        let Some(store) = self.db().blob_store() else { return Ok(Sweep::default()) };
        let mut out = Sweep::default();
        let cutoff = super::now() - grace_secs;
        let mut candidates = Vec::new();
        for prefix in [blobs::PREFIX, packs::PREFIX] {
            for (k, modified) in store.list(prefix)? {
                out.blobs += 1;
                if modified <= cutoff {
                    candidates.push(k);
                }
            }
        }
        for chunk in candidates.chunks(PER_TXN) {
            let txn = self.db().begin_write()?;
            let mut gone = Vec::new();
            for k in chunk {
                if !referred(txn.raw(), k)? {
                    gone.push(k);
                }
            }
            out.orphans += gone.len() as u64;
            for k in gone {
                store.delete(k)?;
                if k.starts_with(packs::PREFIX) {
                    // Members' entries left by rows that now name another blob.
                    let (lo, hi) = packs::member_range(k);
                    let stale: Vec<Vec<u8>> = txn
                        .raw()
                        .range(blobs::BLOBREFS, Bound::Included(lo), Bound::Excluded(hi))?
                        .map(|e| e.map(|(key, _)| key))
                        .collect::<Result<_, _>>()?;
                    for key in stale {
                        txn.raw_remove(blobs::BLOBREFS, &key)?;
                    }
                } else {
                    txn.raw_remove(blobs::BLOBREFS, k.as_bytes())?;
                }
                out.removed += 1;
            }
            txn.commit()?;
        }
        Ok(out)
    }
}

/// Whether a committed row still refers to object key `k` (for a pack: to any of
/// its members).
fn referred(raw: &dyn RawRead, k: &str) -> Result<bool, StoreError> {
    if k.starts_with(packs::PREFIX) {
        let (lo, hi) = packs::member_range(k);
        for e in raw.range(blobs::BLOBREFS, Bound::Included(lo), Bound::Excluded(hi))? {
            let (member, target) = e?;
            if refers(raw, &target, &String::from_utf8_lossy(&member))? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    let Some(target) = raw.get(blobs::BLOBREFS, k.as_bytes())? else { return Ok(false) };
    refers(raw, &target, k)
}

/// Whether the row a `c.blobrefs` value names still refers to object key `k`.
fn refers(raw: &dyn RawRead, target: &[u8], k: &str) -> Result<bool, StoreError> {
    let Some((table, key)) = blobs::blobref_target(target) else { return Ok(false) };
    let Some(table) = super::schema::ALL_TABLES.iter().find(|t| **t == table) else { return Ok(false) };
    // The row as stored (a reference), not resolved: read below the blob layer.
    Ok(raw.get_stored(table, key)?.as_deref().and_then(blobs::referred) == Some(k))
}
