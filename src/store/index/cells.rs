//! Narrow columns: the cells of an index column take the fewest bytes that hold every
//! value written so far (1, 2, 4 or 8) and widen in place when a larger value comes.
//! A string column keeps its own small dictionary (column code → project string id),
//! so a column of a dozen host names costs a byte a row however many strings the
//! project has; an integer column stores its values from a base, so timestamps of two
//! months cost 4 bytes, not 8. This is what keeps a node's index near 100 bytes an
//! object (STORE.md, "Memory").

use std::collections::HashMap;

use super::UNSET_INT;

/// Unsigned cells of one width.
#[derive(Debug, Clone)]
pub enum Packed {
    W8(Vec<u8>),
    W16(Vec<u16>),
    W32(Vec<u32>),
    W64(Vec<u64>),
}

impl Default for Packed {
    fn default() -> Packed {
        Packed::W8(Vec::new())
    }
}

/// Bytes needed for `v`.
fn width_of(v: u64) -> u8 {
    if v <= u8::MAX as u64 {
        1
    } else if v <= u16::MAX as u64 {
        2
    } else if v <= u32::MAX as u64 {
        4
    } else {
        8
    }
}

impl Packed {
    /// `n` cells of 0.
    pub fn zeros(n: usize) -> Packed {
        Packed::W8(vec![0; n])
    }

    pub fn len(&self) -> usize {
        match self {
            Packed::W8(v) => v.len(),
            Packed::W16(v) => v.len(),
            Packed::W32(v) => v.len(),
            Packed::W64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn width(&self) -> u8 {
        match self {
            Packed::W8(_) => 1,
            Packed::W16(_) => 2,
            Packed::W32(_) => 4,
            Packed::W64(_) => 8,
        }
    }

    /// The cell at `i`; panics past the end, as a slice does.
    #[inline]
    pub fn get(&self, i: usize) -> u64 {
        match self {
            Packed::W8(v) => v[i] as u64,
            Packed::W16(v) => v[i] as u64,
            Packed::W32(v) => v[i] as u64,
            Packed::W64(v) => v[i],
        }
    }

    #[inline]
    pub fn set(&mut self, i: usize, x: u64) {
        self.fit(x);
        match self {
            Packed::W8(v) => v[i] = x as u8,
            Packed::W16(v) => v[i] = x as u16,
            Packed::W32(v) => v[i] = x as u32,
            Packed::W64(v) => v[i] = x,
        }
    }

    #[inline]
    pub fn push(&mut self, x: u64) {
        self.fit(x);
        match self {
            Packed::W8(v) => v.push(x as u8),
            Packed::W16(v) => v.push(x as u16),
            Packed::W32(v) => v.push(x as u32),
            Packed::W64(v) => v.push(x),
        }
    }

    /// Appends a 0 (an unset cell): it fits any width.
    #[inline]
    pub fn push_zero(&mut self) {
        match self {
            Packed::W8(v) => v.push(0),
            Packed::W16(v) => v.push(0),
            Packed::W32(v) => v.push(0),
            Packed::W64(v) => v.push(0),
        }
    }

    /// Widens the cells, if needed, so that `x` fits.
    #[inline]
    pub fn fit(&mut self, x: u64) {
        let need = width_of(x);
        if need > self.width() {
            self.widen(need);
        }
    }

    /// Rewrites the cells at `width` bytes each, keeping the capacity reserved.
    fn widen(&mut self, width: u8) {
        let (n, cap) = (self.len(), self.capacity());
        let values = (0..n).map(|i| self.get(i));
        *self = match width {
            1 => unreachable!("cells never narrow"),
            2 => Packed::W16(with_cap(cap, values.map(|x| x as u16))),
            4 => Packed::W32(with_cap(cap, values.map(|x| x as u32))),
            _ => Packed::W64(with_cap(cap, values)),
        };
    }

    fn capacity(&self) -> usize {
        match self {
            Packed::W8(v) => v.capacity(),
            Packed::W16(v) => v.capacity(),
            Packed::W32(v) => v.capacity(),
            Packed::W64(v) => v.capacity(),
        }
    }

    /// Heap bytes held (capacity, not length: what the allocator gave).
    pub fn heap_bytes(&self) -> usize {
        self.capacity() * self.width() as usize
    }
}

fn with_cap<T>(cap: usize, it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v = Vec::with_capacity(cap);
    v.extend(it);
    v
}

/// An integer column: cell 0 is unset, cell k is `base + k - 1`. The base only moves
/// down, and then by at least the span of the values already held, so a column whose
/// values keep coming in lower is rewritten a logarithmic number of times, not once a
/// row.
#[derive(Debug, Clone, Default)]
pub struct IntColumn {
    base: i64,
    cells: Packed,
    /// No cell is above this (0: none was ever set).
    top: u64,
}

impl IntColumn {
    pub fn unset(n: usize) -> IntColumn {
        IntColumn { base: 0, cells: Packed::zeros(n), top: 0 }
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// The value at `row`, or [`UNSET_INT`].
    #[inline]
    pub fn get(&self, row: usize) -> i64 {
        match self.cells.get(row) {
            0 => UNSET_INT,
            k => self.base.wrapping_add((k - 1) as i64),
        }
    }

    pub fn push(&mut self, v: i64) {
        self.cells.push_zero();
        self.set(self.cells.len() - 1, v);
    }

    /// Appends an unset cell.
    #[inline]
    pub fn push_unset(&mut self) {
        self.cells.push_zero();
    }

    pub fn set(&mut self, row: usize, v: i64) {
        if v == UNSET_INT {
            self.cells.set(row, 0);
            return;
        }
        if self.top == 0 {
            // Nothing set yet: the first value is the base.
            self.base = v;
        } else if v < self.base {
            // The span the cells hold, and as much again below the new value.
            let span = self.top - 1;
            let floor = UNSET_INT as i128 + 1;
            let new_base = (v as i128 - span as i128).max(floor) as i64;
            let shift = (self.base as i128 - new_base as i128) as u64;
            // Every value stays within i64, so top + shift stays below u64::MAX.
            self.top += shift;
            self.cells.fit(self.top);
            for i in 0..self.cells.len() {
                let k = self.cells.get(i);
                if k != 0 {
                    self.cells.set(i, k + shift);
                }
            }
            self.base = new_base;
        }
        // At most i64::MAX - (i64::MIN + 1) + 1 = u64::MAX: always fits.
        let k = (v as i128 - self.base as i128 + 1) as u64;
        self.top = self.top.max(k);
        self.cells.set(row, k);
    }

    pub fn heap_bytes(&self) -> usize {
        self.cells.heap_bytes()
    }
}

/// A column's own dictionary, while it has at most [`LOCAL_MAX`] distinct values.
#[derive(Debug, Clone, Default)]
struct Local {
    /// Column code - 1 → project string id + 1.
    sids: Vec<u32>,
    /// Project string id + 1 → column code. Ids are the project's own numbers, not
    /// chosen by a client: a fast hash serves.
    codes: HashMap<u32, u32, foldhash::fast::RandomState>,
}

/// Distinct values past which a string column's cells hold project string ids
/// directly: they would need 4 bytes anyway, and the local dictionary would only
/// cost more.
const LOCAL_MAX: usize = 1 << 16;

/// A string column. [`StrColumn::get`] answers the project string id + 1 (0 = unset)
/// whatever the column stores.
#[derive(Debug, Clone, Default)]
pub struct StrColumn {
    cells: Packed,
    /// None: the cells hold project string ids + 1 themselves.
    local: Option<Local>,
}

impl StrColumn {
    pub fn unset(n: usize) -> StrColumn {
        StrColumn { cells: Packed::zeros(n), local: Some(Local::default()) }
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// The project string id + 1 at `row`; 0 = unset.
    #[inline]
    pub fn get(&self, row: usize) -> u32 {
        let c = self.cells.get(row);
        match &self.local {
            None => c as u32,
            Some(_) if c == 0 => 0,
            Some(l) => l.sids[c as usize - 1],
        }
    }

    /// The column code at `row`: what [`StrColumn::sid1_of`] turns into the string id
    /// + 1. Codes are dense below [`StrColumn::code_bound`], so a scan can memoise
    /// per code in a small table.
    #[inline]
    pub fn code(&self, row: usize) -> u32 {
        self.cells.get(row) as u32
    }

    /// The project string id + 1 a code stands for (0 = unset).
    #[inline]
    pub fn sid1_of(&self, code: u32) -> u32 {
        match &self.local {
            None => code,
            Some(_) if code == 0 => 0,
            Some(l) => l.sids[code as usize - 1],
        }
    }

    /// Every code is below this; `n_strings` is the project dictionary's size.
    pub fn code_bound(&self, n_strings: usize) -> usize {
        match &self.local {
            None => n_strings + 1,
            Some(l) => l.sids.len() + 1,
        }
    }

    pub fn push(&mut self, sid1: u32) {
        self.cells.push_zero();
        self.set(self.cells.len() - 1, sid1);
    }

    /// Appends an unset cell.
    #[inline]
    pub fn push_unset(&mut self) {
        self.cells.push_zero();
    }

    /// Sets `row` to the project string id + 1 `sid1` (0 = unset).
    pub fn set(&mut self, row: usize, sid1: u32) {
        if sid1 == 0 {
            self.cells.set(row, 0);
            return;
        }
        let Some(l) = &mut self.local else {
            self.cells.set(row, sid1 as u64);
            return;
        };
        let code = match l.codes.get(&sid1) {
            Some(&c) => c,
            None if l.sids.len() < LOCAL_MAX => {
                l.sids.push(sid1);
                let c = l.sids.len() as u32;
                l.codes.insert(sid1, c);
                c
            }
            None => {
                self.go_direct();
                self.cells.set(row, sid1 as u64);
                return;
            }
        };
        self.cells.set(row, code as u64);
    }

    /// Drops the local dictionary: every cell becomes the string id + 1 it names.
    fn go_direct(&mut self) {
        let Some(l) = self.local.take() else { return };
        let mut direct = Packed::W32(Vec::with_capacity(self.cells.len().max(self.cells.capacity())));
        for i in 0..self.cells.len() {
            let c = self.cells.get(i);
            direct.push(if c == 0 { 0 } else { l.sids[c as usize - 1] as u64 });
        }
        self.cells = direct;
    }

    pub fn heap_bytes(&self) -> usize {
        self.cells.heap_bytes() + self.local.as_ref().map_or(0, |l| l.sids.capacity() * 4 + l.codes.capacity() * 9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_widen_and_keep_their_values() {
        let mut p = Packed::default();
        for x in [0u64, 7, 255] {
            p.push(x);
        }
        assert!(matches!(p, Packed::W8(_)));
        p.push(256);
        assert!(matches!(p, Packed::W16(_)));
        p.set(1, 1 << 40);
        assert!(matches!(p, Packed::W64(_)));
        assert_eq!((0..p.len()).map(|i| p.get(i)).collect::<Vec<_>>(), [0, 1 << 40, 255, 256]);
    }

    #[test]
    fn integers_of_any_range_and_order_round_trip() {
        let values = [1_700_000_000, 1_699_999_000, UNSET_INT, 5, i64::MAX, UNSET_INT + 1, -3, 1_700_000_001, 0];
        let mut c = IntColumn::default();
        for &v in &values {
            c.push(v);
        }
        assert_eq!((0..c.len()).map(|i| c.get(i)).collect::<Vec<_>>(), values);
        c.set(3, UNSET_INT);
        c.set(2, 42);
        assert_eq!(c.get(3), UNSET_INT);
        assert_eq!(c.get(2), 42);
        assert_eq!(c.get(4), i64::MAX);
    }

    #[test]
    fn close_integers_take_narrow_cells_and_falling_values_rebase_rarely() {
        let mut c = IntColumn::unset(0);
        let t0 = 1_700_000_000i64;
        for i in 0..10_000 {
            // Two months of timestamps, in no order.
            c.push(t0 + (i * 7919 % 5_184_000));
        }
        assert!(matches!(c.cells, Packed::W32(_)));
        assert!(c.heap_bytes() <= 10_000 * 4 * 2);
        // Values that keep falling: the base moves by doublings.
        let mut f = IntColumn::default();
        let mut moves = 0;
        for i in 0..100_000i64 {
            let before = f.base;
            f.push(-i);
            moves += (f.base != before) as u32;
        }
        assert!(moves < 40, "{moves} rebases");
        assert!((0..100_000).all(|i| f.get(i) == -(i as i64)));
    }

    #[test]
    fn string_columns_use_a_local_dictionary_then_go_direct() {
        let mut c = StrColumn::unset(2);
        c.set(0, 1_000_000);
        c.push(0);
        c.push(1_000_000);
        c.push(3);
        assert!(matches!(c.cells, Packed::W8(_)), "two distinct values fit a byte");
        assert_eq!((0..c.len()).map(|i| c.get(i)).collect::<Vec<_>>(), [1_000_000, 0, 0, 1_000_000, 3]);
        for s in 0..(LOCAL_MAX as u32 + 10) {
            c.push(s + 10);
        }
        assert!(c.local.is_none());
        assert_eq!(c.get(0), 1_000_000);
        assert_eq!(c.get(4), 3);
        assert_eq!(c.get(c.len() - 1), LOCAL_MAX as u32 + 19);
        c.set(1, 77);
        assert_eq!(c.get(1), 77);
    }
}
