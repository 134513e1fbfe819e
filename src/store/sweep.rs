//! The sweeper of an external blob store: removes blobs that no committed catalog
//! row refers to (a submission stored but never committed: a node killed in between,
//! a refused batch; or a removal whose delete failed after its commit), once they are
//! older than a grace period that covers any submission in progress.
//!
//! The bucket is listed and the blob tables' references are read in one streamed
//! pass, both without a lock; only the blobs that no reference names are checked
//! again, and removed, inside catalog write transactions, which hold the writers'
//! lock (a row committed meanwhile keeps its blob). There a blob is referred to when
//! `c.blobrefs` names a row for it and that row's value is still its reference.
//!
//! The sweeper also compacts packs: a pack past the grace period whose live members
//! hold at most half its bytes has them copied into a new pack, and their rows are
//! pointed at the copies inside a write transaction, each checked again there (a row
//! removed or moved meanwhile keeps what it names; its copy is an orphan). The old
//! pack is then named by no row and goes with the next sweep, not this one, so that a
//! read that resolved the old reference just before the commit still finds it.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;

use super::catalog::blobs::BlobStore;
use super::catalog::{RawRead, blobs, packs};
use super::{Store, StoreError};

/// What one sweep found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    pub blobs: u64,
    pub orphans: u64,
    pub removed: u64,
    /// Packs whose live members were copied into new packs (they go with the next
    /// sweep).
    pub compacted: u64,
    /// Blobs copied by that.
    pub moved: u64,
}

/// Most orphans removed, or rows pointed at a new pack, per write transaction (each
/// holds the writers' lock).
const PER_TXN: usize = 500;
/// A pack is compacted when its live members hold at most this percentage of its
/// bytes.
const COMPACT_AT: u64 = 50;

impl Store {
    /// Removes unreferenced blobs older than `grace_secs`. Without an external blob
    /// store there is nothing to sweep (blobs live and die with their rows).
    pub fn sweep_blobs(&self, grace_secs: i64) -> Result<Sweep, StoreError> {
        let Some(store) = self.db().blob_store() else { return Ok(Sweep::default()) };
        let mut out = Sweep::default();
        let cutoff = super::now() - grace_secs;
        let mut old = Vec::new();
        for prefix in [blobs::PREFIX, packs::PREFIX] {
            for listed in store.list(prefix)? {
                out.blobs += 1;
                if listed.modified <= cutoff {
                    old.push(listed);
                }
            }
        }
        if old.is_empty() {
            return Ok(out);
        }
        // What the committed rows name, read in one pass over the blob tables without
        // the lock: only the blobs that look unnamed are checked again under it.
        let named = self.named_blobs()?;
        let mut candidates = Vec::new();
        let mut sparse = Vec::new();
        {
            let read = self.db().begin_read()?;
            for listed in &old {
                let k = &listed.key;
                if !k.starts_with(packs::PREFIX) {
                    if !named.blobs.contains(k.as_str()) {
                        candidates.push(k);
                    }
                    continue;
                }
                match pack_id(k).and_then(|id| named.packs.get(&id)) {
                    None => candidates.push(k),
                    Some(&bytes) if bytes * 100 <= listed.size * COMPACT_AT => {
                        // Checked again when their rows are rewritten.
                        let live = live_members(read.raw(), k)?;
                        if !live.is_empty() {
                            sparse.push((k.clone(), live));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        for chunk in candidates.chunks(PER_TXN) {
            let txn = self.db().begin_write()?;
            let mut gone = Vec::new();
            for &k in chunk {
                let referred = if k.starts_with(packs::PREFIX) {
                    !live_members(txn.raw(), k)?.is_empty()
                } else {
                    blob_referred(txn.raw(), k)?
                };
                if !referred {
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
        self.compact(store, sparse, &mut out)?;
        Ok(out)
    }

    /// The blobs that committed rows of the blob tables name: stored alone, and the
    /// live bytes of each pack. One streamed read of each table's references.
    fn named_blobs(&self) -> Result<Named, StoreError> {
        let mut named = Named::default();
        let read = self.db().begin_read()?;
        for table in super::BLOB_TABLES {
            read.raw().scan_stored(table, Bound::Unbounded, Bound::Unbounded, &mut |_, v| {
                if let Some(k) = blobs::referred(v) {
                    match packs::member(k) {
                        Some(m) => match pack_id(m.pack) {
                            Some(id) => *named.packs.entry(id).or_default() += m.len,
                            None => {
                                named.blobs.insert(m.pack.to_string());
                            }
                        },
                        None => {
                            named.blobs.insert(k.to_string());
                        }
                    }
                }
                true
            })?;
        }
        Ok(named)
    }

    /// Copies the live members of `sparse` packs (with their `c.blobrefs` values) into
    /// new packs.
    fn compact(
        &self,
        store: &dyn BlobStore,
        sparse: Vec<(String, Vec<(String, Vec<u8>)>)>,
        out: &mut Sweep,
    ) -> Result<(), StoreError> {
        let mut group: Vec<Moving> = Vec::new();
        let mut size = 0;
        for (pack, live) in sparse {
            // One read of the pack for all its live members.
            let Some(bytes) = store.get(&pack)? else { continue };
            let slice = |member: &str| {
                let m = packs::member(member)?;
                let (at, len) = (usize::try_from(m.offset).ok()?, usize::try_from(m.len).ok()?);
                bytes.get(at..at.checked_add(len)?)
            };
            if let Some((member, _)) = live.iter().find(|(member, _)| slice(member).is_none()) {
                // Left as it is (reading that row says what is wrong); the others go on.
                log::warn!("blob store: {pack} holds {} bytes, a row names {member}: not compacted", bytes.len());
                continue;
            }
            for (member, target) in live {
                let data = slice(&member).map(<[u8]>::to_vec).unwrap_or_default();
                size += data.len();
                group.push(Moving { from: member, target, data });
            }
            out.compacted += 1;
            if size >= packs::MAX_PACK {
                out.moved += self.move_into_pack(store, std::mem::take(&mut group), size)?;
                size = 0;
            }
        }
        if !group.is_empty() {
            out.moved += self.move_into_pack(store, group, size)?;
        }
        Ok(())
    }

    /// Stores `group` as one new pack and points the rows that still name the old
    /// members at their copies; returns how many did.
    fn move_into_pack(&self, store: &dyn BlobStore, group: Vec<Moving>, size: usize) -> Result<u64, StoreError> {
        let (key, bytes, keys) = packs::pack(group.iter().map(|g| g.data.as_slice()), size);
        store.put(&key, &bytes)?;
        let mut moved = 0;
        let pairs: Vec<(&Moving, &String)> = group.iter().zip(&keys).collect();
        for chunk in pairs.chunks(PER_TXN) {
            let txn = self.db().begin_write()?;
            for (m, new) in chunk {
                let Some((table, row)) = row_of(txn.raw(), &m.target, &m.from)? else { continue };
                txn.raw_insert(table, row, &blobs::reference(new))?;
                txn.raw_remove(blobs::BLOBREFS, m.from.as_bytes())?;
                moved += 1;
            }
            txn.commit()?;
        }
        Ok(moved)
    }
}

/// What the committed rows name (see [`Store::named_blobs`]).
#[derive(Default)]
struct Named {
    /// Blobs stored alone (and packs whose name is not bt's own form).
    blobs: HashSet<String>,
    /// Live bytes per pack, by its UUID: 24 bytes a pack, for millions of them.
    packs: HashMap<u128, u64>,
}

/// A pack's UUID (`p/` and 32 hex digits) as a number.
fn pack_id(pack: &str) -> Option<u128> {
    let hex = pack.strip_prefix(packs::PREFIX)?;
    (hex.len() == 32).then(|| u128::from_str_radix(hex, 16).ok()).flatten()
}

/// A live pack member on its way to a new pack.
struct Moving {
    from: String,
    /// Its `c.blobrefs` value: the row that names it.
    target: Vec<u8>,
    data: Vec<u8>,
}

/// The members of `pack` that a committed row still names, with their `c.blobrefs`
/// values.
fn live_members(raw: &dyn RawRead, pack: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let (lo, hi) = packs::member_range(pack);
    let mut live = Vec::new();
    for e in raw.range(blobs::BLOBREFS, Bound::Included(lo), Bound::Excluded(hi))? {
        let (member, target) = e?;
        let member = String::from_utf8_lossy(&member).into_owned();
        if row_of(raw, &target, &member)?.is_some() {
            live.push((member, target));
        }
    }
    Ok(live)
}

/// Whether a committed row still refers to the blob stored alone under `k`.
fn blob_referred(raw: &dyn RawRead, k: &str) -> Result<bool, StoreError> {
    let Some(target) = raw.get(blobs::BLOBREFS, k.as_bytes())? else { return Ok(false) };
    Ok(row_of(raw, &target, k)?.is_some())
}

/// The (table, key) of the row a `c.blobrefs` value names, if that row still refers
/// to object key `k`.
fn row_of<'t>(raw: &dyn RawRead, target: &'t [u8], k: &str) -> Result<Option<(&'static str, &'t [u8])>, StoreError> {
    let Some((table, key)) = blobs::blobref_target(target) else { return Ok(None) };
    let Some(table) = super::schema::ALL_TABLES.iter().copied().find(|t| *t == table) else { return Ok(None) };
    // The row as stored (a reference), not resolved: read below the blob layer.
    let names = raw.get_stored(table, key)?.as_deref().and_then(blobs::referred) == Some(k);
    Ok(names.then_some((table, key)))
}
