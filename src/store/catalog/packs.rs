//! Packs: the blobs of submissions that arrive together, stored as one object.
//!
//! One signed PUT per submission is what costs an S3 server most; under load, the
//! submissions of the moment are written as one *pack* (`p/UUID`, their bytes end to
//! end) and each blob is referred to as `p/UUID/OFFSET/LENGTH`, read back with an HTTP
//! range request. Batching is a group commit: a submission whose blobs are waiting
//! while fewer than [`IN_FLIGHT`] packs are being written takes everything waiting
//! (up to [`MAX_PACK`] bytes) and writes it; the others wait for their pack. Alone,
//! a submission is a pack of one, at the cost of one PUT as before.
//!
//! A pack is never rewritten. Removing an object drops its reference only; a pack is
//! removed by the sweeper once no committed row refers to any of its blobs and it is
//! older than the grace period (which also covers a pack whose rows are still on
//! their way to the writer). Bytes of removed objects whose pack still holds live
//! ones stay until their neighbours go; retention removes objects by age, and the
//! blobs of one pack arrived together.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use super::blobs::BlobStore;
use crate::store::StoreError;

/// Packs being written at once by one node. One gives the largest packs (the
/// least work for the S3 server); two keep ingest going past one slow request.
const IN_FLIGHT: usize = 2;
/// Largest pack (the blobs waiting beyond it go in the next one).
const MAX_PACK: usize = 8 << 20;
/// Blobs from this size on are stored alone (`b/UUID`), not packed.
pub const ALONE: usize = 1 << 20;
/// The prefix of pack keys.
pub const PREFIX: &str = "p/";

/// The blob at `offset..offset + len` of pack `pack`: `p/UUID/OFFSET/LEN`.
pub struct Member<'k> {
    pub pack: &'k str,
    pub offset: u64,
    pub len: u64,
}

/// Splits a pack member's key; `None` for any other key.
pub fn member(key: &str) -> Option<Member<'_>> {
    if !key.starts_with(PREFIX) {
        return None;
    }
    let mut parts = key.rsplitn(3, '/');
    let len = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    let pack = parts.next()?;
    (pack.len() > PREFIX.len() && !pack[PREFIX.len()..].contains('/')).then_some(Member { pack, offset, len })
}

/// The first and one-past-last catalog keys of `c.blobrefs` for the members of `pack`.
pub fn member_range(pack: &str) -> (Vec<u8>, Vec<u8>) {
    (format!("{pack}/").into_bytes(), format!("{pack}0").into_bytes())
}

struct Waiting {
    ticket: u64,
    parts: Vec<Vec<u8>>,
}

#[derive(Default)]
struct State {
    waiting: Vec<Waiting>,
    in_flight: usize,
    next: u64,
    done: HashMap<u64, Result<Vec<String>, String>>,
}

/// Gathers the blobs of concurrent submissions into packs.
#[derive(Default)]
pub struct Packer {
    state: Mutex<State>,
    wake: Condvar,
}

impl Packer {
    /// Stores `parts` (one submission's blobs) and returns their keys, in order,
    /// once the pack holding them is stored.
    pub fn store(&self, blobs: &dyn BlobStore, parts: Vec<Vec<u8>>) -> Result<Vec<String>, StoreError> {
        let poisoned = |_| StoreError::Io("the blob packer's lock is poisoned".into());
        let mut st = self.state.lock().map_err(poisoned)?;
        let ticket = st.next;
        st.next += 1;
        st.waiting.push(Waiting { ticket, parts });
        loop {
            if let Some(r) = st.done.remove(&ticket) {
                return r.map_err(StoreError::Unavailable);
            }
            if st.in_flight < IN_FLIGHT && !st.waiting.is_empty() {
                let batch = take_batch(&mut st.waiting);
                st.in_flight += 1;
                drop(st);
                let results = write_pack(blobs, batch);
                st = self.state.lock().map_err(poisoned)?;
                st.in_flight -= 1;
                st.done.extend(results);
                self.wake.notify_all();
                continue;
            }
            st = self.wake.wait(st).map_err(poisoned)?;
        }
    }
}

/// The oldest waiting submissions, up to [`MAX_PACK`] bytes (at least one).
fn take_batch(waiting: &mut Vec<Waiting>) -> Vec<Waiting> {
    let mut bytes = 0;
    let mut n = 0;
    for w in waiting.iter() {
        let size: usize = w.parts.iter().map(Vec::len).sum();
        if n > 0 && bytes + size > MAX_PACK {
            break;
        }
        bytes += size;
        n += 1;
    }
    waiting.drain(..n).collect()
}

/// Writes one pack; every submission of the batch gets its keys or the same error.
fn write_pack(blobs: &dyn BlobStore, batch: Vec<Waiting>) -> Vec<(u64, Result<Vec<String>, String>)> {
    let pack = format!("{PREFIX}{}", uuid::Uuid::new_v4().simple());
    let mut bytes = Vec::with_capacity(batch.iter().flat_map(|w| &w.parts).map(Vec::len).sum());
    let mut keys = Vec::with_capacity(batch.len());
    for w in &batch {
        let ks = w
            .parts
            .iter()
            .map(|p| {
                let k = format!("{pack}/{}/{}", bytes.len(), p.len());
                bytes.extend_from_slice(p);
                k
            })
            .collect::<Vec<_>>();
        keys.push((w.ticket, ks));
    }
    match blobs.put(&pack, &bytes) {
        Ok(()) => keys.into_iter().map(|(t, ks)| (t, Ok(ks))).collect(),
        Err(e) => {
            let why = e.to_string();
            keys.into_iter().map(|(t, _)| (t, Err(why.clone()))).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_keys_round_trip_and_nothing_else_is_one() {
        let m = member("p/0123abcd/4096/77").expect("a member");
        assert_eq!((m.pack, m.offset, m.len), ("p/0123abcd", 4096, 77));
        for k in ["b/0123abcd", "p/0123abcd", "p//1/2", "p/x/y/1/2", "p/x/-1/2", "p/x/1/"] {
            assert!(member(k).is_none(), "{k}");
        }
        let (lo, hi) = member_range("p/0123abcd");
        assert!(lo.as_slice() < b"p/0123abcd/4096/77".as_slice() && b"p/0123abcd/4096/77".as_slice() < hi.as_slice());
        assert!(b"p/0123abcde/0/1".as_slice() >= hi.as_slice() || b"p/0123abcde/0/1".as_slice() < lo.as_slice());
    }

    #[test]
    fn a_batch_stops_at_the_pack_limit_but_takes_at_least_one() {
        let w = |t, n| Waiting { ticket: t, parts: vec![vec![0; n]] };
        let mut q = vec![w(0, MAX_PACK + 1), w(1, 10)];
        assert_eq!(take_batch(&mut q).len(), 1);
        let mut q = vec![w(0, 10), w(1, 20), w(2, MAX_PACK)];
        assert_eq!(take_batch(&mut q).iter().map(|w| w.ticket).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(q.len(), 1);
    }
}
