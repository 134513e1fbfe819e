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
const VERSION: u64 = 1;
/// Header words: magic, version, kind, build-id hash, unit offset, size of the file
/// holding the DWARF, payload words, checksum.
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
        Some(Key { dir, id: checksum(id.iter().map(|b| u64::from(*b))), file_len: file_len as u64 })
    }

    fn path(&self, kind: Kind, unit: usize) -> PathBuf {
        self.dir.join(format!("{unit:x}.{}", kind.name()))
    }

    fn header(&self, kind: Kind, unit: usize, payload: &[u64]) -> [u64; HEADER_WORDS] {
        let sum = checksum(payload.iter().copied());
        [MAGIC, VERSION, kind as u64, self.id, unit as u64, self.file_len, payload.len() as u64, sum]
    }

    /// The payload stored for `unit` (its `.debug_info` offset), when a valid file
    /// holds it. The file is mapped, not copied (files are only ever replaced by
    /// rename, never rewritten in place).
    pub(crate) fn load(&self, kind: Kind, unit: usize) -> Option<Payload> {
        let bytes = SharedBytes::map_file(&self.path(kind, unit)).ok()?;
        if bytes.len() % 8 != 0 || bytes.len() < HEADER_WORDS * 8 {
            return None;
        }
        let payload = Payload { bytes };
        let head: Vec<u64> = (0..HEADER_WORDS).map(|i| payload.raw(i)).collect();
        let n = payload.len();
        let want = [MAGIC, VERSION, kind as u64, self.id, unit as u64, self.file_len, n as u64];
        (head[..7] == want && head[7] == checksum(payload.words())).then_some(payload)
    }

    /// Stores `payload` for `unit`; errors are ignored (the next run rebuilds).
    pub(crate) fn store(&self, kind: Kind, unit: usize, payload: &[u64]) {
        let header = self.header(kind, unit, payload);
        super::seccache::store(&self.path(kind, unit), &[as_bytes(&header), as_bytes(payload)]);
    }
}

/// The words of a loaded cache file after its header.
pub(crate) struct Payload {
    bytes: SharedBytes,
}

impl Payload {
    fn raw(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        if let Some(b) = self.bytes.get(i * 8..i * 8 + 8) {
            w.copy_from_slice(b);
        }
        u64::from_le_bytes(w)
    }

    /// Number of payload words.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() / 8 - HEADER_WORDS
    }

    /// Payload word `i` (0 past the end).
    pub(crate) fn word(&self, i: usize) -> u64 {
        self.raw(HEADER_WORDS + i)
    }

    pub(crate) fn words(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.len()).map(|i| self.word(i))
    }
}

/// What a cache file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Outline = 1,
    LineSpans = 2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Outline => "outline",
            Kind::LineSpans => "lines",
        }
    }
}

// The file format is little endian, as the words are in memory on every target bt
// builds for (x86-64).
const _: () = assert!(cfg!(target_endian = "little"));

/// The bytes of `words` as stored (little endian, see above), without a copy.
fn as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding and u8 has no alignment or validity requirement; the
    // slice covers exactly the words' memory and borrows it for as long.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), std::mem::size_of_val(words)) }
}

/// A 64-bit checksum of `words` (a multiply-xorshift fold): it catches torn writes and
/// flipped bits, not forgeries — the cache directory is the user's own.
fn checksum(words: impl Iterator<Item = u64>) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for w in words {
        h = (h ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 32;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &std::path::Path, file_len: usize) -> Key {
        Key { dir: dir.to_path_buf(), id: 7, file_len: file_len as u64 }
    }

    #[test]
    fn round_trip_and_every_kind_of_bad_file_is_ignored() {
        let dir = std::env::temp_dir().join(format!("bt-indexcache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let k = key(&dir, 1000);
        let payload: Vec<u64> = (0..100).map(|i| i * 3).collect();
        assert!(k.load(Kind::Outline, 0x10).is_none(), "nothing stored yet");
        k.store(Kind::Outline, 0x10, &payload);
        let loaded = k.load(Kind::Outline, 0x10).map(|p| p.words().collect::<Vec<_>>());
        assert_eq!(loaded.as_deref(), Some(&payload[..]));
        // Another kind, unit, file size or build id does not match.
        assert!(k.load(Kind::LineSpans, 0x10).is_none());
        assert!(k.load(Kind::Outline, 0x20).is_none());
        assert!(key(&dir, 1001).load(Kind::Outline, 0x10).is_none());
        assert!(Key { id: 8, ..key(&dir, 1000) }.load(Kind::Outline, 0x10).is_none());
        let path = k.path(Kind::Outline, 0x10);
        let good = std::fs::read(&path).expect("cache file");
        // A flipped bit anywhere, a truncation, a stray byte: ignored.
        for at in [0, 9, 8 * HEADER_WORDS + 5, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).expect("write");
            assert!(k.load(Kind::Outline, 0x10).is_none(), "bit flipped at byte {at}");
        }
        for len in [0, 7, 8 * HEADER_WORDS, good.len() - 8] {
            std::fs::write(&path, &good[..len]).expect("write");
            assert!(k.load(Kind::Outline, 0x10).is_none(), "truncated to {len} bytes");
        }
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&path, &longer).expect("write");
        assert!(k.load(Kind::Outline, 0x10).is_none(), "one byte too many");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
