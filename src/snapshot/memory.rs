//! Memory behind a snapshot: the `Memory` trait every producer reads through (live
//! process, core, and the snapshot's own kept regions) and [`Regions`], the view of
//! `Snapshot::memory` that re-rendering reads.

use super::MemoryRegion;

/// Read access to the target's address space.
pub trait Memory: Send + Sync {
    /// Copies bytes starting at `addr` into `buf`; returns how many leading bytes
    /// were readable (0 when `addr` itself is unreadable). Never panics.
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize;

    fn read_exact(&self, addr: u64, buf: &mut [u8]) -> bool {
        self.read(addr, buf) == buf.len()
    }

    fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_exact(addr, &mut b).then(|| u64::from_le_bytes(b))
    }
}

/// `Snapshot::memory` as a `Memory`: reads are served from the kept regions only.
pub struct Regions<'a> {
    /// Sorted by address; regions never overlap (the recorder coalesces them).
    regions: Vec<&'a MemoryRegion>,
}

impl<'a> Regions<'a> {
    pub fn new(regions: &'a [MemoryRegion]) -> Self {
        let mut regions: Vec<&MemoryRegion> = regions.iter().collect();
        regions.sort_by_key(|r| r.address);
        Regions { regions }
    }
}

impl Memory for Regions<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr.wrapping_add(done as u64);
            // The last region starting at or before `at`; a read may span adjacent regions.
            let i = self.regions.partition_point(|r| r.address <= at);
            let Some(r) = i.checked_sub(1).map(|i| self.regions[i]) else { break };
            let off = (at - r.address) as usize;
            if off >= r.bytes.len() {
                break;
            }
            let n = (r.bytes.len() - off).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&r.bytes[off..off + n]);
            done += n;
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_within_across_and_outside_regions() {
        let regions = vec![
            MemoryRegion { address: 0x2000, label: "b".into(), bytes: vec![4, 5] },
            MemoryRegion { address: 0x1000, label: "a".into(), bytes: vec![1, 2, 3] },
            MemoryRegion { address: 0x1003, label: "c".into(), bytes: vec![9] },
        ];
        let m = Regions::new(&regions);
        let cases: &[(u64, usize, &[u8])] =
            &[(0x1000, 3, &[1, 2, 3]), (0x1001, 4, &[2, 3, 9]), (0x2001, 4, &[5]), (0x0fff, 2, &[]), (0x3000, 1, &[])];
        for (addr, len, want) in cases {
            let mut buf = vec![0u8; *len];
            let n = m.read(*addr, &mut buf);
            assert_eq!(&buf[..n], *want, "read {addr:#x}+{len}");
        }
    }
}
