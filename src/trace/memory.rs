//! The memory a snapshot keeps: every byte variable rendering read (heap objects
//! reached through pointers, strings), plus the used part of each stack, within a
//! budget, so a viewer can re-read values without the core.

use crate::capture::Memory;
use crate::snapshot::MemoryRegion;
use std::sync::Mutex;

/// Largest stack slice kept per thread.
const MAX_STACK_KEPT: u64 = 1 << 20;

/// `first`, then `then` for what `first` lacks: a released live target's copies of
/// what the variables read, over the capture's own memory.
pub(crate) struct Layered<'a>(pub &'a dyn Memory, pub &'a dyn Memory);

impl Memory for Layered<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        let n = self.0.read(addr, buf);
        if n == buf.len() {
            return n;
        }
        n + self.1.read(addr.wrapping_add(n as u64), &mut buf[n..])
    }
}

/// The modules' files as memory: what a core leaves out (read-only file-backed
/// mappings, such as a library's `.rodata`), under the target's own memory in a
/// [`Layered`].
pub(crate) struct ModuleFiles<'a>(pub &'a crate::symbols::ModuleSet);

impl Memory for ModuleFiles<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        self.0.read_code(addr, buf)
    }
}

/// A `Memory` that remembers which ranges were read successfully.
pub(crate) struct Recorder<'a> {
    inner: &'a dyn Memory,
    modules: Option<&'a crate::symbols::ModuleSet>,
    /// Sharded by reading thread, so that threads capturing variables in parallel do
    /// not queue on one lock.
    reads: Vec<Mutex<Vec<(u64, u64)>>>,
    /// What [`Recorder::coalesced`] merged so far.
    merged: Mutex<Vec<(u64, u64)>>,
    /// False: reads pass through, unrecorded (nothing is kept or copied).
    record: bool,
}

const SHARDS: usize = 16;

/// This thread's shard: threads take the next one in turn when they first read.
fn shard() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    MINE.with(|m| *m)
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(inner: &'a dyn Memory, modules: Option<&'a crate::symbols::ModuleSet>, record: bool) -> Self {
        Recorder {
            inner,
            modules,
            reads: (0..SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
            merged: Mutex::new(Vec::new()),
            record,
        }
    }

    /// Copies of every range read so far, coalesced: what rendering the variables
    /// again needs, whatever the budget keeps (for rendering after a live target is
    /// released).
    pub(crate) fn copy_reads(&self) -> Vec<MemoryRegion> {
        let merged = self.coalesced();
        merged
            .iter()
            .copied()
            .filter_map(|(a, e)| {
                let mut buf = vec![0u8; (e - a) as usize];
                let n = self.read_unrecorded(a, &mut buf);
                buf.truncate(n);
                (n > 0).then(|| MemoryRegion { address: a, label: "read".into(), bytes: buf })
            })
            .collect()
    }

    /// The regions to keep: stacks first (faulting thread first), then what variables
    /// read, coalesced, until `budget` bytes.
    /// `stacks`: (tid, rsp, highest frame sp) per thread, faulting thread first.
    pub(crate) fn keep(self, stacks: &[(i32, u64, u64)], budget: usize) -> (Vec<MemoryRegion>, Option<String>) {
        let mut wanted: Vec<(u64, u64, String)> = Vec::new();
        for &(tid, rsp, top) in stacks {
            let lo = rsp.saturating_sub(128);
            let hi = top.saturating_add(256).min(lo.saturating_add(MAX_STACK_KEPT));
            if hi > lo {
                wanted.push((lo, hi, format!("stack {tid}")));
            }
        }
        let merged = self.coalesced();
        // Objects already inside a kept stack are not kept twice.
        let mut stacks: Vec<(u64, u64)> = wanted.iter().map(|(lo, hi, _)| (*lo, *hi)).collect();
        stacks.sort_unstable();
        for (a, e) in merged {
            let i = stacks.partition_point(|(lo, _)| *lo <= a);
            let inside = i > 0 && e <= stacks[i - 1].1;
            if !inside {
                wanted.push((a, e, "object".into()));
            }
        }
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut dropped = 0u64;
        for (lo, hi, label) in wanted {
            let want = (hi - lo) as usize;
            if used + want > budget {
                dropped += want as u64;
                continue;
            }
            let mut buf = vec![0u8; want];
            let n = self.read_unrecorded(lo, &mut buf);
            if n == 0 {
                continue;
            }
            buf.truncate(n);
            used += n;
            out.push(MemoryRegion { address: lo, label, bytes: buf });
        }
        let note = (dropped > 0).then(|| {
            format!("memory budget of {budget} bytes reached: {dropped} bytes of stacks and objects not kept")
        });
        (out, note)
    }
}

/// [start, end) ranges → sorted, merged.
fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, end) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((a, end)),
        }
    }
    merged
}

impl Recorder<'_> {
    /// Every range read so far, sorted and merged; remembered, so that copying the
    /// reads and keeping them sort them once (hundreds of thousands of reads on a
    /// process of 1,000 threads). Reads made after the first call are merged in.
    fn coalesced(&self) -> Vec<(u64, u64)> {
        let mut done = self.merged.lock().unwrap_or_else(|e| e.into_inner());
        let fresh: Vec<(u64, u64)> =
            self.reads.iter().flat_map(|m| m.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()).collect();
        if !fresh.is_empty() {
            let mut all = std::mem::take(&mut *done);
            all.extend(fresh.into_iter().map(|(a, n)| (a, a.saturating_add(n))));
            *done = merge(all);
        }
        done.clone()
    }

    fn read_unrecorded(&self, addr: u64, buf: &mut [u8]) -> usize {
        let mut n = self.inner.read(addr, buf);
        if n < buf.len()
            && let Some(m) = self.modules
        {
            n += m.read_code(addr.wrapping_add(n as u64), &mut buf[n..]);
        }
        n
    }
}

impl Memory for Recorder<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        let mut n = self.inner.read(addr, buf);
        if n < buf.len()
            && let Some(m) = self.modules
        {
            // Folklore: cores leave out file-backed pages nobody wrote (.rodata string
            // literals, unmodified .data); those bytes are the module file's.
            n += m.read_code(addr.wrapping_add(n as u64), &mut buf[n..]);
        }
        if n > 0
            && self.record
            && let Ok(mut r) = self.reads[shard()].lock()
        {
            r.push((addr, n as u64));
        }
        n
    }
}
