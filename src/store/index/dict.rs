//! A project's string dictionary: every string once, in one buffer, found by a hash
//! table of ids. A unique string (a crash's uuid) costs its bytes, its end offset and
//! a table slot, some 45 bytes for a uuid, where a `Vec<String>` and a
//! `HashMap<String, u32>` held it twice with two allocations (about 150).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::cells::Packed;

#[derive(Clone, Default)]
pub struct Dict {
    /// Every string, one after the other.
    bytes: String,
    /// End offset in `bytes` of each string: string `i` is `ends[i-1]..ends[i]`.
    ends: Packed,
    /// String ids, by the hash of their text.
    table: HashTable<u32>,
    hasher: std::collections::hash_map::RandomState,
}

/// String `id` of a buffer and its end offsets ("" for an id past the end; strings
/// were pushed whole, so the offsets are character boundaries).
#[inline]
fn slice<'a>(bytes: &'a str, ends: &Packed, id: u32) -> &'a str {
    let i = id as usize;
    if i >= ends.len() {
        return "";
    }
    let start = if i == 0 { 0 } else { ends.get(i - 1) as usize };
    bytes.get(start..ends.get(i) as usize).unwrap_or_default()
}

impl std::fmt::Debug for Dict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dict({} strings, {} bytes)", self.len(), self.bytes.len())
    }
}

impl Dict {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The string with id `id`, if there is one.
    #[inline]
    pub fn get(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.len()).then(|| slice(&self.bytes, &self.ends, id))
    }

    /// The string with id `id`; "" past the end (ids come from the index itself).
    #[inline]
    pub fn text(&self, id: u32) -> &str {
        self.get(id).unwrap_or_default()
    }

    /// The id of `s`, if it is in the dictionary (the newest, were it added twice).
    pub fn id(&self, s: &str) -> Option<u32> {
        let h = self.hasher.hash_one(s);
        self.table.find(h, |&id| self.get(id) == Some(s)).copied()
    }

    /// Appends `s` with the next id and returns it. A string already present gets a
    /// second id, which [`Dict::id`] answers from then on (ids are the catalog's, and
    /// dense).
    pub fn add(&mut self, s: &str) -> u32 {
        let id = self.len() as u32;
        self.bytes.push_str(s);
        self.ends.push(self.bytes.len() as u64);
        let h = self.hasher.hash_one(s);
        let (bytes, ends, hasher) = (&self.bytes, &self.ends, &self.hasher);
        match self.table.find_mut(h, |&old| slice(bytes, ends, old) == s) {
            Some(old) => *old = id,
            None => {
                self.table.insert_unique(h, id, |&i| hasher.hash_one(slice(bytes, ends, i)));
            }
        }
        id
    }

    /// Room for `n` more strings in the table (not their bytes), so that loading a
    /// dictionary whose size is known does not rehash it as it grows. At most 16 M
    /// at once: `n` comes from a record, and a corrupt one must not size an allocation.
    pub fn reserve(&mut self, n: usize) {
        let (bytes, ends, hasher) = (&self.bytes, &self.ends, &self.hasher);
        self.table.reserve(n.min(1 << 24), |&i| hasher.hash_one(slice(bytes, ends, i)));
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.heap_bytes() + self.table.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_are_found_by_text() {
        let mut d = Dict::default();
        let words: Vec<String> = (0..5000).map(|i| format!("s{i}-ü")).collect();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(d.add(w), i as u32);
        }
        d.add("");
        for (i, w) in words.iter().enumerate() {
            assert_eq!(d.text(i as u32), w);
            assert_eq!(d.id(w), Some(i as u32));
        }
        assert_eq!(d.id(""), Some(5000));
        assert_eq!(d.text(5000), "");
        assert_eq!(d.get(5001), None);
        assert_eq!(d.id("absent"), None);
        // Added twice: the newest id answers, the old one still reads.
        assert_eq!(d.add("s7-ü"), 5001);
        assert_eq!(d.id("s7-ü"), Some(5001));
        assert_eq!(d.text(7), "s7-ü");
    }
}
