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
//! A pack is never written again. Removing an object drops its reference only; a pack
//! is removed by the sweeper once no committed row refers to any of its blobs and it
//! is older than the grace period (which also covers a pack whose rows are still on
//! their way to the writer). A pack past the grace period whose live blobs hold at
//! most half its bytes is compacted by the sweeper: they are copied into a new pack
//! and their rows repointed (`src/store/sweep.rs`), and the old pack goes with a later
//! sweep.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use super::blobs::BlobStore;
use crate::store::StoreError;

/// Packs being written at once by one node. One gives the largest packs: the S3
/// server's cost is per request (SeaweedFS spends ~2.5 ms of CPU on each), and a pack
/// grows while the one before it is being written. Measured beside two (`make
/// bench-scale`, 50,000 submissions, same machine and run): 1,641/s against 1,555/s
/// with one node, 1,243/s against 1,064/s with two.
const IN_FLIGHT: usize = 1;
/// Largest pack (the blobs waiting beyond it go in the next one).
pub const MAX_PACK: usize = 8 << 20;
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
    let len: u64 = parts.next()?.parse().ok()?;
    let offset: u64 = parts.next()?.parse().ok()?;
    let pack = parts.next()?;
    // A range past the end of any object (a corrupt row) is no member.
    offset.checked_add(len)?;
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
                let mut flight = Flight { packer: self, tickets: batch.iter().map(|w| w.ticket).collect(), done: None };
                flight.done = Some(write_pack(blobs, batch));
                drop(flight);
                st = self.state.lock().map_err(poisoned)?;
                continue;
            }
            st = self.wake.wait(st).map_err(poisoned)?;
        }
    }
}

/// One pack being written. Its end, even by a panic in the upload, frees the slot and
/// answers every submission of the batch, so that none waits for ever.
struct Flight<'p> {
    packer: &'p Packer,
    tickets: Vec<u64>,
    done: Option<Vec<(u64, Result<Vec<String>, String>)>>,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let results = self.done.take().unwrap_or_else(|| {
            self.tickets.iter().map(|&t| (t, Err("blob store: storing a pack failed unexpectedly".into()))).collect()
        });
        let mut st = self.packer.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.in_flight -= 1;
        st.done.extend(results);
        self.packer.wake.notify_all();
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

/// A new pack of `parts`, end to end: its key, its bytes and each part's member key.
pub fn pack<'a>(parts: impl IntoIterator<Item = &'a [u8]>, size: usize) -> (String, Vec<u8>, Vec<String>) {
    let pack = format!("{PREFIX}{}", uuid::Uuid::new_v4().simple());
    let mut bytes = Vec::with_capacity(size);
    let keys = parts
        .into_iter()
        .map(|p| {
            let k = format!("{pack}/{}/{}", bytes.len(), p.len());
            bytes.extend_from_slice(p);
            k
        })
        .collect();
    (pack, bytes, keys)
}

/// Writes one pack; every submission of the batch gets its keys or the same error.
fn write_pack(blobs: &dyn BlobStore, batch: Vec<Waiting>) -> Vec<(u64, Result<Vec<String>, String>)> {
    let size = batch.iter().flat_map(|w| &w.parts).map(Vec::len).sum();
    let (pack, bytes, mut keys) = pack(batch.iter().flat_map(|w| &w.parts).map(Vec::as_slice), size);
    let mut each = Vec::with_capacity(batch.len());
    for w in batch.iter().rev() {
        each.push((w.ticket, keys.split_off(keys.len() - w.parts.len())));
    }
    match blobs.put(&pack, &bytes) {
        Ok(()) => each.into_iter().map(|(t, ks)| (t, Ok(ks))).collect(),
        Err(e) => {
            let why = e.to_string();
            each.into_iter().map(|(t, _)| (t, Err(why.clone()))).collect()
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
        for k in ["b/0123abcd", "p/0123abcd", "p//1/2", "p/x/y/1/2", "p/x/-1/2", "p/x/1/", "p/x/18446744073709551615/2"]
        {
            assert!(member(k).is_none(), "{k}");
        }
        let (lo, hi) = member_range("p/0123abcd");
        assert!(lo.as_slice() < b"p/0123abcd/4096/77".as_slice() && b"p/0123abcd/4096/77".as_slice() < hi.as_slice());
        assert!(b"p/0123abcde/0/1".as_slice() >= hi.as_slice() || b"p/0123abcde/0/1".as_slice() < lo.as_slice());
    }

    /// A bucket in memory; `fail` makes every upload fail, `panic` panic.
    #[derive(Default)]
    struct Memory {
        objects: Mutex<HashMap<String, Vec<u8>>>,
        fail: bool,
        panic: bool,
    }

    impl BlobStore for Memory {
        fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
            assert!(!self.panic, "an upload panicked");
            if self.fail {
                return Err(StoreError::Unavailable("blob store: down".into()));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            self.objects.lock().unwrap().insert(key.into(), bytes.to_vec());
            Ok(())
        }
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.objects.lock().unwrap().get(key).cloned())
        }
        fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.get(key)?.map(|b| b[offset as usize..(offset + len) as usize].to_vec()))
        }
        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.objects.lock().unwrap().remove(key);
            Ok(())
        }
        fn list(&self, _: &str) -> Result<Vec<super::super::blobs::Listed>, StoreError> {
            let objects = self.objects.lock().unwrap();
            Ok(objects
                .iter()
                .map(|(k, v)| super::super::blobs::Listed { key: k.clone(), modified: 0, size: v.len() as u64 })
                .collect())
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    fn store_from_threads(
        packer: &Packer,
        bucket: &Memory,
        n: u64,
    ) -> Vec<(Vec<Vec<u8>>, Result<Vec<String>, StoreError>)> {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..n)
                .map(|i| {
                    s.spawn(move || {
                        let parts = vec![format!("report {i}").into_bytes(), vec![i as u8; i as usize]];
                        (parts.clone(), packer.store(bucket, parts))
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("thread")).collect()
        })
    }

    #[test]
    fn concurrent_blobs_share_packs_and_each_reads_back_as_stored() {
        let (packer, bucket) = (Packer::default(), Memory::default());
        for (parts, keys) in store_from_threads(&packer, &bucket, 32) {
            let keys = keys.expect("stored");
            assert_eq!(keys.len(), parts.len());
            for (part, key) in parts.iter().zip(&keys) {
                let m = member(key).expect("a pack member");
                assert_eq!(bucket.get_range(m.pack, m.offset, m.len).expect("read").as_ref(), Some(part), "{key}");
            }
        }
        let packs = bucket.objects.lock().unwrap().len();
        assert!(packs < 32, "32 concurrent submissions made {packs} packs");
        let st = packer.state.lock().unwrap();
        assert!(st.waiting.is_empty() && st.done.is_empty() && st.in_flight == 0);
    }

    #[test]
    fn a_failed_or_panicking_upload_answers_every_waiting_submission() {
        let packer = Packer::default();
        let down = Memory { fail: true, ..Default::default() };
        for (_, r) in store_from_threads(&packer, &down, 8) {
            assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        }
        let broken = Memory { panic: true, ..Default::default() };
        let answered = std::thread::scope(|s| {
            let workers: Vec<_> =
                (0..8).map(|_| s.spawn(|| packer.store(&broken, vec![b"x".to_vec()]).is_err())).collect();
            // A thread whose upload panicked ends with the panic; the others hear an error.
            workers.into_iter().filter_map(|w| w.join().ok()).collect::<Vec<bool>>()
        });
        assert!(answered.iter().all(|&failed| failed), "{answered:?}");
        assert_eq!(packer.state.lock().unwrap().in_flight, 0, "the slots are free again");
        let bucket = Memory::default();
        assert!(packer.store(&bucket, vec![b"after".to_vec()]).is_ok(), "the packer still works");
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
