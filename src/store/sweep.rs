//! The sweeper of an external blob store: removes blobs that no committed catalog
//! row names (an upload whose commit never happened: a node killed between the two,
//! or a removal whose delete failed after its commit), once they are older than a
//! grace period that covers any commit in progress.
//!
//! Candidates are listed without a lock; each is checked again and removed inside a
//! catalog write transaction, which holds the writers' lock: no node can store a blob
//! under the same key and commit its row in between.

use super::catalog::{Str, blobs};
use super::schema::*;
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
        for table in [BLOBS.name, ATTACHMENTS.name] {
            for (k, modified) in store.list(&format!("{table}/"))? {
                out.blobs += 1;
                if modified > cutoff {
                    continue;
                }
                match blobs::catalog_key(table, &k) {
                    Some(ck) => candidates.push((table, ck, k)),
                    // Not a key this store writes: not ours to remove.
                    None => log::warn!("blob store: {k} is not a bt key; left alone"),
                }
            }
        }
        for chunk in candidates.chunks(PER_TXN) {
            let txn = self.db().begin_write()?;
            let objects = txn.open_table(OBJECTS)?;
            let mut gone = Vec::new();
            for (table, ck, k) in chunk {
                if !referenced(&objects, table, ck)? {
                    gone.push(k);
                }
            }
            out.orphans += gone.len() as u64;
            for k in gone {
                store.delete(k)?;
                out.removed += 1;
            }
            // Nothing was written: the transaction only held the lock.
            drop(objects);
            drop(txn);
        }
        Ok(out)
    }
}

/// Whether the committed rows name this blob (`c.blobs`: its object's row exists;
/// `c.attachments`: the row lists the attachment).
fn referenced(
    objects: &super::catalog::TableMut<'_, (u32, u64), super::catalog::Bytes>,
    table: &str,
    ck: &[u8],
) -> Result<bool, StoreError> {
    use super::catalog::KeyDef;
    let (pid, id, name) = if table == ATTACHMENTS.name {
        match <(u32, u64, Str)>::decode(&mut &ck[..]) {
            Some((p, i, n)) => (p, i, Some(n)),
            None => return Ok(true),
        }
    } else {
        match <(u32, u64)>::decode(&mut &ck[..]) {
            Some((p, i)) => (p, i, None),
            None => return Ok(true),
        }
    };
    let Some(v) = objects.get((pid, id))? else { return Ok(false) };
    Ok(match name {
        None => true,
        Some(n) => decode::<ObjectRow>(v.value(), "object")?.attachments.contains(&n),
    })
}
