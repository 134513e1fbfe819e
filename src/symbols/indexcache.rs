//! A persistent cache of the per-unit indexes that point lookups build from a big
//! compile unit — its outline (`lookup::Outline`) and the sequence spans of its line
//! program (`linetable`) — keyed by the build id of the file holding the DWARF, under
//! `$XDG_CACHE_HOME/bt/index` (else `~/.cache/bt/index`), next to the section cache.
//! `BT_NO_CACHE` set (to anything) disables it.
//!
//! The cache is never trusted blindly: a file is used only when its header names the
//! same format version, kind, build id, unit and file size, its length is
//! exactly what the header says, and the checksum over its contents matches; the
//! decoders then check every entry against the unit (offsets inside it, ranges
//! ordered) before anything is used. Anything else is ignored and rebuilt, and every
//! failure here only costs the rebuild: the cache is never a source of errors.

use super::elf::SharedBytes;
use std::path::PathBuf;

/// `btindex\0`, little endian.
const MAGIC: u64 = u64::from_le_bytes(*b"btindex\0");
/// Bumped whenever an encoding below or the meaning of an index changes.
const VERSION: u64 = 2;
/// Header words (little endian): magic, version, kind, build-id hash, unit offset,
/// size of the file holding the DWARF, payload bytes, checksum. The payload follows:
/// ULEB128 numbers (`Writer`), deltas where the index is sorted, which keeps the files
/// a third of fixed-width words (writing them is most of what a cold trace pays).
const HEADER_WORDS: usize = 8;

/// Where one DWARF file's indexes live, and what every one of them must state.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    dir: PathBuf,
    id: u64,
    file_len: u64,
}

impl Key {
    /// The key of a DWARF file with `build_id` and `file_len` bytes;
    /// None without a build id or when the cache is disabled.
    pub(crate) fn new(build_id: Option<&[u8]>, file_len: usize) -> Option<Key> {
        let id = build_id.filter(|id| !id.is_empty())?;
        let dir = super::seccache::cache_dir("index")?.join(super::elf::hex(id));
        Some(Key { dir, id: checksum(id), file_len: file_len as u64 })
    }

    fn path(&self, kind: Kind, unit: usize) -> PathBuf {
        self.dir.join(format!("{unit:x}.{}", kind.name()))
    }

    fn header(&self, kind: Kind, unit: usize, payload: &[u8]) -> [u8; HEADER_WORDS * 8] {
        let words =
            [MAGIC, VERSION, kind as u64, self.id, unit as u64, self.file_len, payload.len() as u64, checksum(payload)];
        let mut out = [0u8; HEADER_WORDS * 8];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// The payload stored for `unit` (its `.debug_info` offset), when a valid file
    /// holds it. The file is mapped, not copied (files are only ever replaced by
    /// rename, never rewritten in place).
    pub(crate) fn load(&self, kind: Kind, unit: usize) -> Option<Payload> {
        let bytes = SharedBytes::map_file(&self.path(kind, unit)).ok()?;
        let payload = bytes.get(HEADER_WORDS * 8..)?;
        (bytes.get(..HEADER_WORDS * 8)? == self.header(kind, unit, payload)).then_some(Payload { bytes })
    }

    /// Stores `payload` for `unit`; errors are ignored (the next run rebuilds).
    pub(crate) fn store(&self, kind: Kind, unit: usize, payload: &Writer) {
        let header = self.header(kind, unit, &payload.0);
        super::seccache::store(&self.path(kind, unit), &[&header, &payload.0]);
    }
}

/// A loaded cache file; `reader` walks its payload.
pub(crate) struct Payload {
    bytes: SharedBytes,
}

impl Payload {
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader { bytes: self.bytes.get(HEADER_WORDS * 8..).unwrap_or_default(), pos: 0 }
    }
}

/// Builds a payload: ULEB128 numbers.
#[derive(Default)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn with_capacity(bytes: usize) -> Writer {
        Writer(Vec::with_capacity(bytes))
    }

    /// The shape every index here has: a count, then per entry a key stored as the
    /// step from the previous one (`entries` are sorted by it) and two more numbers.
    pub(crate) fn sorted_triples(entries: impl ExactSizeIterator<Item = [u64; 3]>) -> Writer {
        let mut w = Writer::with_capacity(6 * entries.len() + 10);
        w.put(entries.len() as u64);
        let mut prev = 0;
        for [key, a, b] in entries {
            w.put(key.wrapping_sub(prev));
            w.put(a);
            w.put(b);
            prev = key;
        }
        w
    }

    pub(crate) fn put(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
}

/// Reads a payload's numbers back; None past the end or on an overlong number.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    pub(crate) fn get(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// What `Writer::sorted_triples` wrote, followed by nothing else. None when the
    /// payload is shorter, longer, or a key step overflows.
    pub(crate) fn sorted_triples(mut self) -> Option<Vec<[u64; 3]>> {
        let n = self.count(3)?;
        let mut out = Vec::with_capacity(n);
        let mut key = 0u64;
        for _ in 0..n {
            key = key.checked_add(self.get()?)?;
            out.push([key, self.get()?, self.get()?]);
        }
        self.at_end().then_some(out)
    }

    /// A count of items that each take at least `min_bytes` more bytes: never more
    /// than what is left could hold (so a corrupt count cannot make a huge allocation).
    pub(crate) fn count(&mut self, min_bytes: usize) -> Option<usize> {
        let n = usize::try_from(self.get()?).ok()?;
        (n.checked_mul(min_bytes)? <= self.bytes.len() - self.pos).then_some(n)
    }

    /// True when every byte was read (a payload with trailing bytes is not ours).
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

/// What a cache file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An outline's functions and nodes (`lookup::Outline`).
    Functions = 1,
    Nodes = 3,
    LineSpans = 2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Functions => "functions",
            Kind::Nodes => "nodes",
            Kind::LineSpans => "lines",
        }
    }
}

/// A 64-bit checksum of `bytes` (a multiply-xorshift fold over 8-byte words): it
/// catches torn writes and flipped bits, not forgeries — the cache directory is the
/// user's own.
fn checksum(bytes: &[u8]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    let mut mix = |w: u64| {
        h = (h ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 32;
    };
    for c in chunks.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        mix(u64::from_le_bytes(w));
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    mix(u64::from_le_bytes(tail));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &std::path::Path, file_len: usize) -> Key {
        Key { dir: dir.to_path_buf(), id: 7, file_len: file_len as u64 }
    }

    #[test]
    fn numbers_round_trip_and_bad_payloads_read_as_none() {
        let values = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let mut w = Writer::default();
        for v in values {
            w.put(v);
        }
        let mut r = Reader { bytes: &w.0, pos: 0 };
        for v in values {
            assert_eq!(r.get(), Some(v));
        }
        assert!(r.at_end());
        assert_eq!(r.get(), None, "past the end");
        // Eleven continuation bytes: longer than any u64.
        let mut r = Reader { bytes: &[0xff; 11], pos: 0 };
        assert_eq!(r.get(), None);
        // A count larger than the rest could hold.
        let mut w = Writer::default();
        w.put(1000);
        w.put(5);
        let mut r = Reader { bytes: &w.0, pos: 0 };
        assert_eq!(r.count(1), None);
    }

    #[test]
    fn round_trip_and_every_kind_of_bad_file_is_ignored() {
        let dir = std::env::temp_dir().join(format!("bt-indexcache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let k = key(&dir, 1000);
        let mut payload = Writer::default();
        for i in 0..100 {
            payload.put(i * 3);
        }
        assert!(k.load(Kind::Functions, 0x10).is_none(), "nothing stored yet");
        k.store(Kind::Functions, 0x10, &payload);
        let loaded = k.load(Kind::Functions, 0x10).map(|p| {
            let mut r = p.reader();
            (0..100).map(|_| r.get()).collect::<Option<Vec<_>>>()
        });
        assert_eq!(loaded, Some(Some((0..100).map(|i| i * 3).collect())));
        // Another kind, unit, file size or build id does not match.
        assert!(k.load(Kind::LineSpans, 0x10).is_none());
        assert!(k.load(Kind::Functions, 0x20).is_none());
        assert!(key(&dir, 1001).load(Kind::Functions, 0x10).is_none());
        assert!(Key { id: 8, ..key(&dir, 1000) }.load(Kind::Functions, 0x10).is_none());
        let path = k.path(Kind::Functions, 0x10);
        let good = std::fs::read(&path).expect("cache file");
        // A flipped bit anywhere, a truncation, a stray byte: ignored.
        for at in [0, 9, 8 * HEADER_WORDS + 5, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).expect("write");
            assert!(k.load(Kind::Functions, 0x10).is_none(), "bit flipped at byte {at}");
        }
        for len in [0, 7, 8 * HEADER_WORDS, good.len() - 8] {
            std::fs::write(&path, &good[..len]).expect("write");
            assert!(k.load(Kind::Functions, 0x10).is_none(), "truncated to {len} bytes");
        }
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&path, &longer).expect("write");
        assert!(k.load(Kind::Functions, 0x10).is_none(), "one byte too many");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
