//! The catalog: the store's transactional, ordered key-value tables, on one of two
//! engines — the embedded redb file (the default) or a PostgreSQL database shared by
//! several `bt serve` nodes. Everything above this module reads and writes typed
//! tables ([`Table`]) inside transactions and never names an engine.
//!
//! Keys are encoded so that byte order is the order of the typed key, element by
//! element (integers big-endian, strings escaped and terminated), which is what both
//! engines sort by (redb's `&[u8]` keys, PostgreSQL's `bytea`). A write transaction is
//! the only writer of the whole catalog while it is open (redb's single writer; a
//! transaction-level advisory lock on PostgreSQL), so read-modify-write of counters
//! and group records is safe across nodes.

pub mod blobs;
pub mod embedded;
pub mod packs;
pub mod pgtls;
pub mod postgres;

use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use super::StoreError;

/// One raw entry: encoded key, value.
pub type RawEntry = (Vec<u8>, Vec<u8>);
/// A raw range, in key order from both ends.
pub type RawRange<'a> = Box<dyn DoubleEndedIterator<Item = Result<RawEntry, StoreError>> + 'a>;

/// What an engine's transaction can read.
pub trait RawRead {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn range(&self, table: &'static str, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Result<RawRange<'_>, StoreError>;
    /// The value as the catalog holds it: a blob table's reference, not the blob.
    fn get_stored(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(table, key)
    }
    /// A second reader of this transaction's snapshot, for another thread: two tables
    /// then load at once. It reads the catalog's own tables (not a blob store's).
    /// `None` where the engine cannot share a snapshot; the tables then load in turn.
    fn twin(&self) -> Result<Option<Box<dyn RawRead + Send + '_>>, StoreError> {
        Ok(None)
    }
    /// Calls `f` on every entry of a range in key order until it answers false: the
    /// bulk read of a node's catch-up, without an owned copy of each entry where the
    /// engine can lend it.
    fn scan(
        &self,
        table: &'static str,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        scan_range(self.range(table, lo, hi)?, f)
    }
    /// [`RawRead::scan`] of the values as the catalog holds them: a blob table's
    /// references, not the blobs.
    fn scan_stored(
        &self,
        table: &'static str,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.scan(table, lo, hi, f)
    }
}

/// [`RawRead::scan`] over a range's owned entries.
pub fn scan_range(range: RawRange<'_>, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
    for e in range {
        let (k, v) = e?;
        if !f(&k, &v) {
            break;
        }
    }
    Ok(())
}

/// What an engine's write transaction adds. Nothing is visible to others before
/// `commit`; dropping the transaction without it aborts.
pub trait RawWrite: RawRead {
    fn insert(&self, table: &'static str, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn remove(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A catalog engine.
pub trait Engine: Send + Sync {
    fn begin_read(&self) -> Result<Box<dyn RawRead + '_>, StoreError>;
    fn begin_write(&self) -> Result<Box<dyn RawWrite + '_>, StoreError>;
    /// Where the catalog lives, for messages.
    fn describe(&self) -> String;
    /// Whether other processes may write the same catalog (then the index follows
    /// the change log).
    fn shared(&self) -> bool;
    /// Makes the engine's own structures (tables, an older file's layout) current.
    fn prepare(&self) -> Result<(), StoreError>;
}

/// The catalog of one store, on its engine.
pub struct Catalog {
    engine: Box<dyn Engine>,
    /// Tables whose changes a shared catalog logs for the other nodes' indexes.
    followed: &'static [&'static str],
    /// Where the blob tables live when not in the catalog.
    blobs: Option<(Box<dyn blobs::BlobStore>, &'static [&'static str])>,
}

/// The change log of a shared catalog: sequence → the keys one commit wrote in the
/// followed tables. Sequences are taken under the writers' lock, so they are in
/// commit order; the oldest entries are pruned ([`LOG_KEEP`] are kept).
pub const LOG: Table<u64, Bytes> = Table::new("c.log");
/// `c.meta` key of the last sequence taken.
const LOG_SEQ: &str = "log_seq";
/// Log entries kept; a node further behind reloads its index.
pub const LOG_KEEP: u64 = 20_000;

/// One commit's changes: (followed table, encoded key) pairs.
pub type Change = Vec<(&'static str, Vec<u8>)>;

impl Catalog {
    /// A catalog on `engine`; with `blobs`, the named tables live in that object store.
    pub fn new(
        engine: Box<dyn Engine>,
        followed: &'static [&'static str],
        blobs: Option<(Box<dyn blobs::BlobStore>, &'static [&'static str])>,
    ) -> Result<Catalog, StoreError> {
        engine.prepare()?;
        Ok(Catalog { engine, followed, blobs })
    }
    pub fn begin_read(&self) -> Result<ReadTxn<'_>, StoreError> {
        let raw = self.engine.begin_read()?;
        Ok(ReadTxn::new(match &self.blobs {
            Some((b, tables)) => Box::new(blobs::Routed::new(raw, &**b, tables)),
            None => raw,
        }))
    }
    pub fn begin_write(&self) -> Result<WriteTxn<'_>, StoreError> {
        let raw = self.engine.begin_write()?;
        let raw: Box<dyn RawWrite + '_> = match &self.blobs {
            Some((b, tables)) => Box::new(blobs::Routed::new(raw, &**b, tables)),
            None => raw,
        };
        let mut txn = WriteTxn::new(raw);
        if self.engine.shared() {
            txn.followed = self.followed;
        }
        Ok(txn)
    }
    pub fn engine(&self) -> &dyn Engine {
        &*self.engine
    }
    pub fn shared(&self) -> bool {
        self.engine.shared()
    }
    /// The object store of the blob tables, if they are not in the catalog.
    pub fn blob_store(&self) -> Option<&dyn blobs::BlobStore> {
        self.blobs.as_ref().map(|(b, _)| &**b)
    }

    /// The log entries after `after`, in order, read in `txn`. `None` when entries
    /// after it were pruned (the reader must reload).
    /// At most `limit` entries are read, so that a node far behind holds a bounded
    /// part of the log at a time.
    pub fn log_since(
        &self,
        raw: &dyn RawRead,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<(u64, Change)>>, StoreError> {
        let mut out = Vec::new();
        let lo = key::<u64, u64>(&after);
        for e in raw.range(LOG.name, Bound::Excluded(lo), Bound::Unbounded)?.take(limit) {
            let (k, v) = e?;
            let seq = u64::decode(&mut k.as_slice()).ok_or_else(|| StoreError::Corrupt("a change log key".into()))?;
            if out.is_empty() && seq != after + 1 {
                return Ok(None);
            }
            out.push((seq, self.decode_change(&v)?));
        }
        if out.is_empty() {
            let last = last_seq(raw)?;
            if last > after {
                return Ok(None);
            }
        }
        Ok(Some(out))
    }

    fn decode_change(&self, mut b: &[u8]) -> Result<Change, StoreError> {
        let bad = || StoreError::Corrupt("a change log entry".into());
        let mut out = Vec::new();
        while let Some((&t, rest)) = b.split_first() {
            let table = *self.followed.get(t as usize).ok_or_else(bad)?;
            let (n, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
            let n = u32::from_le_bytes(*n) as usize;
            if rest.len() < n {
                return Err(bad());
            }
            out.push((table, rest[..n].to_vec()));
            b = &rest[n..];
        }
        Ok(out)
    }
}

/// The last sequence of the change log (0: none yet).
pub fn last_seq(raw: &dyn RawRead) -> Result<u64, StoreError> {
    Ok(raw
        .get("c.meta", &key::<Str, &str>(&LOG_SEQ))?
        .and_then(|v| v.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))))
        .unwrap_or(0))
}

// ---------------------------------------------------------------------------
// Keys

/// A string element of a key.
pub struct Str;
/// A table whose values are bytes.
pub struct Bytes;
/// A table whose values are UTF-8 text.
pub struct Text;

/// A key type: how its owned form decodes.
pub trait KeyDef {
    type Owned;
    fn decode(b: &mut &[u8]) -> Option<Self::Owned>;
}

/// A value that encodes as key type `K`.
pub trait EncodeKey<K: KeyDef> {
    fn encode(&self, out: &mut Vec<u8>);
}

impl KeyDef for u32 {
    type Owned = u32;
    fn decode(b: &mut &[u8]) -> Option<u32> {
        let (h, t) = b.split_first_chunk::<4>()?;
        *b = t;
        Some(u32::from_be_bytes(*h))
    }
}
impl KeyDef for u64 {
    type Owned = u64;
    fn decode(b: &mut &[u8]) -> Option<u64> {
        let (h, t) = b.split_first_chunk::<8>()?;
        *b = t;
        Some(u64::from_be_bytes(*h))
    }
}
impl KeyDef for Str {
    type Owned = String;
    fn decode(b: &mut &[u8]) -> Option<String> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            match *b.get(i)? {
                0 => match *b.get(i + 1)? {
                    0 => break,
                    0xff => out.push(0),
                    _ => return None,
                },
                c => {
                    out.push(c);
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        *b = &b[i + 2..];
        String::from_utf8(out).ok()
    }
}

impl EncodeKey<u32> for u32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}
impl EncodeKey<u64> for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}
/// A string sorts as its bytes: NUL is escaped (`00 ff`) and `00 00` ends it, so a
/// string that is a prefix of another sorts first, also inside a tuple.
impl EncodeKey<Str> for str {
    fn encode(&self, out: &mut Vec<u8>) {
        for &c in self.as_bytes() {
            out.push(c);
            if c == 0 {
                out.push(0xff);
            }
        }
        out.extend_from_slice(&[0, 0]);
    }
}
impl EncodeKey<Str> for &str {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out)
    }
}
impl EncodeKey<Str> for String {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_str().encode(out)
    }
}
impl EncodeKey<Str> for &String {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_str().encode(out)
    }
}

impl<A: KeyDef, B: KeyDef> KeyDef for (A, B) {
    type Owned = (A::Owned, B::Owned);
    fn decode(b: &mut &[u8]) -> Option<Self::Owned> {
        Some((A::decode(b)?, B::decode(b)?))
    }
}
impl<A: KeyDef, B: KeyDef, C: KeyDef> KeyDef for (A, B, C) {
    type Owned = (A::Owned, B::Owned, C::Owned);
    fn decode(b: &mut &[u8]) -> Option<Self::Owned> {
        Some((A::decode(b)?, B::decode(b)?, C::decode(b)?))
    }
}
impl<A: KeyDef, B: KeyDef, X: EncodeKey<A>, Y: EncodeKey<B>> EncodeKey<(A, B)> for (X, Y) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
}
impl<A: KeyDef, B: KeyDef, C: KeyDef, X: EncodeKey<A>, Y: EncodeKey<B>, Z: EncodeKey<C>> EncodeKey<(A, B, C)>
    for (X, Y, Z)
{
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
        self.2.encode(out);
    }
}

/// Encodes one key.
pub fn key<K: KeyDef, Q: EncodeKey<K> + ?Sized>(q: &Q) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    q.encode(&mut out);
    out
}

fn bound<K: KeyDef, Q: EncodeKey<K>>(b: Bound<&Q>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(q) => Bound::Included(key::<K, Q>(q)),
        Bound::Excluded(q) => Bound::Excluded(key::<K, Q>(q)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

// ---------------------------------------------------------------------------
// Values

/// A value type: how a stored value is viewed.
pub trait ValueDef {
    type View<'a>;
    fn view(b: &[u8]) -> Self::View<'_>;
}
impl ValueDef for Bytes {
    type View<'a> = &'a [u8];
    fn view(b: &[u8]) -> &[u8] {
        b
    }
}
impl ValueDef for Text {
    type View<'a> = &'a str;
    /// Text is written only from `&str`; a corrupt value reads as empty text.
    fn view(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap_or("")
    }
}

/// A stored value, as read.
pub struct ValueGuard<V> {
    bytes: Vec<u8>,
    _v: PhantomData<fn() -> V>,
}
impl<V: ValueDef> ValueGuard<V> {
    pub fn value(&self) -> V::View<'_> {
        V::view(&self.bytes)
    }
}

/// A stored key, as read.
pub struct KeyGuard<K: KeyDef> {
    owned: K::Owned,
}
impl<K: KeyDef> KeyGuard<K>
where
    K::Owned: Clone,
{
    pub fn value(&self) -> K::Owned {
        self.owned.clone()
    }
}

// ---------------------------------------------------------------------------
// Tables and transactions

/// A typed table of the catalog.
pub struct Table<K, V> {
    pub name: &'static str,
    _p: PhantomData<fn() -> (K, V)>,
}
impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Table<K, V> {}
impl<K, V> Table<K, V> {
    pub const fn new(name: &'static str) -> Table<K, V> {
        Table { name, _p: PhantomData }
    }
}

/// A read transaction: one consistent view of the catalog.
pub struct ReadTxn<'c> {
    raw: Box<dyn RawRead + 'c>,
}

/// A write transaction; dropped without [`WriteTxn::commit`], it leaves nothing.
pub struct WriteTxn<'c> {
    raw: Box<dyn RawWrite + 'c>,
    /// On a shared catalog: the tables whose written keys go to the change log.
    followed: &'static [&'static str],
    touched: std::cell::RefCell<Vec<(u8, Vec<u8>)>>,
}

/// A table read through any transaction's reads.
pub fn table<K: KeyDef, V: ValueDef>(raw: &dyn RawRead, t: Table<K, V>) -> TableRef<'_, K, V> {
    TableRef { raw, t }
}

impl<'c> ReadTxn<'c> {
    pub fn new(raw: Box<dyn RawRead + 'c>) -> ReadTxn<'c> {
        ReadTxn { raw }
    }
    pub fn raw(&self) -> &dyn RawRead {
        &*self.raw
    }
    pub fn open_table<K: KeyDef, V: ValueDef>(&self, t: Table<K, V>) -> Result<TableRef<'_, K, V>, StoreError> {
        Ok(TableRef { raw: &*self.raw, t })
    }
}

impl<'c> WriteTxn<'c> {
    pub fn new(raw: Box<dyn RawWrite + 'c>) -> WriteTxn<'c> {
        WriteTxn { raw, followed: &[], touched: Default::default() }
    }
    pub fn open_table<K: KeyDef, V: ValueDef>(&self, t: Table<K, V>) -> Result<TableMut<'_, K, V>, StoreError> {
        let follow = self.followed.iter().position(|&n| n == t.name).map(|i| (i as u8, &self.touched));
        Ok(TableMut { raw: &*self.raw, t, follow })
    }
    /// The transaction's reads, for the change log.
    pub fn raw(&self) -> &dyn RawRead {
        &*self.raw
    }
    /// Writes encoded entries as they are (copies between catalogs); not logged for
    /// followers, so only while no node serves the destination.
    pub fn raw_insert(&self, table: &'static str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.raw.insert(table, key, value)
    }
    pub fn raw_remove(&self, table: &'static str, key: &[u8]) -> Result<(), StoreError> {
        self.raw.remove(table, key).map(|_| ())
    }
    /// Commits; on a shared catalog, with the change log entry of what was written
    /// (its sequence is returned).
    pub fn commit(self) -> Result<Option<u64>, StoreError> {
        let touched = self.touched.into_inner();
        let mut seq = None;
        if !touched.is_empty() {
            let s = last_seq(&*self.raw)? + 1;
            let mut entry = Vec::new();
            for (t, k) in &touched {
                entry.push(*t);
                entry.extend_from_slice(&(k.len() as u32).to_le_bytes());
                entry.extend_from_slice(k);
            }
            self.raw.insert(LOG.name, &key::<u64, u64>(&s), &entry)?;
            self.raw.insert("c.meta", &key::<Str, &str>(&LOG_SEQ), &s.to_le_bytes())?;
            if s > LOG_KEEP {
                self.raw.remove(LOG.name, &key::<u64, u64>(&(s - LOG_KEEP)))?;
            }
            seq = Some(s);
        }
        self.raw.commit()?;
        Ok(seq)
    }
}

/// A table read inside a transaction.
pub struct TableRef<'t, K, V> {
    raw: &'t dyn RawRead,
    t: Table<K, V>,
}

/// A table written inside a write transaction.
pub struct TableMut<'t, K, V> {
    raw: &'t dyn RawWrite,
    t: Table<K, V>,
    /// The table's number among the followed ones and the transaction's log.
    follow: Option<(u8, &'t std::cell::RefCell<Vec<(u8, Vec<u8>)>>)>,
}

/// Entries of a range, typed.
pub struct Range<'t, K, V> {
    inner: RawRange<'t>,
    _p: PhantomData<fn() -> (K, V)>,
}

/// One typed entry.
pub type Entry<K, V> = (KeyGuard<K>, ValueGuard<V>);

fn typed<K: KeyDef, V>(table: &str, r: Result<RawEntry, StoreError>) -> Result<Entry<K, V>, StoreError> {
    let (k, v) = r?;
    let owned = K::decode(&mut k.as_slice()).ok_or_else(|| StoreError::Corrupt(format!("a key of table {table}")))?;
    Ok((KeyGuard { owned }, ValueGuard { bytes: v, _v: PhantomData }))
}

impl<K: KeyDef, V> Iterator for Range<'_, K, V> {
    type Item = Result<Entry<K, V>, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|r| typed::<K, V>("", r))
    }
}
impl<K: KeyDef, V> DoubleEndedIterator for Range<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back().map(|r| typed::<K, V>("", r))
    }
}

macro_rules! read_methods {
    () => {
        pub fn get<Q: EncodeKey<K>>(&self, q: Q) -> Result<Option<ValueGuard<V>>, StoreError> {
            Ok(self.raw.get(self.t.name, &key::<K, Q>(&q))?.map(|bytes| ValueGuard { bytes, _v: PhantomData }))
        }
        pub fn range<Q: EncodeKey<K>>(&self, r: impl RangeBounds<Q>) -> Result<Range<'_, K, V>, StoreError> {
            let lo = bound::<K, Q>(r.start_bound());
            let hi = bound::<K, Q>(r.end_bound());
            Ok(Range { inner: self.raw.range(self.t.name, lo, hi)?, _p: PhantomData })
        }
        pub fn iter(&self) -> Result<Range<'_, K, V>, StoreError> {
            Ok(Range { inner: self.raw.range(self.t.name, Bound::Unbounded, Bound::Unbounded)?, _p: PhantomData })
        }
        pub fn first(&self) -> Result<Option<Entry<K, V>>, StoreError> {
            self.iter()?.next().transpose()
        }
        pub fn last(&self) -> Result<Option<Entry<K, V>>, StoreError> {
            self.iter()?.next_back().transpose()
        }
    };
}

impl<K: KeyDef, V: ValueDef> TableRef<'_, K, V> {
    read_methods!();
}

impl<K: KeyDef, V: ValueDef> TableMut<'_, K, V> {
    read_methods!();

    pub fn insert<Q: EncodeKey<K>>(&mut self, q: Q, value: impl AsRef<[u8]>) -> Result<(), StoreError> {
        let k = key::<K, Q>(&q);
        self.raw.insert(self.t.name, &k, value.as_ref())?;
        self.note(k);
        Ok(())
    }

    pub fn remove<Q: EncodeKey<K>>(&mut self, q: Q) -> Result<Option<ValueGuard<V>>, StoreError> {
        let k = key::<K, Q>(&q);
        let old = self.raw.remove(self.t.name, &k)?;
        if old.is_some() {
            self.note(k);
        }
        Ok(old.map(|bytes| ValueGuard { bytes, _v: PhantomData }))
    }

    fn note(&self, k: Vec<u8>) {
        if let Some((t, log)) = self.follow {
            log.borrow_mut().push((t, k));
        }
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(K::Owned, V::View<'_>) -> bool) -> Result<(), StoreError> {
        self.retain_raw(Bound::Unbounded, Bound::Unbounded, keep)
    }

    /// Keeps the entries of a range for which `keep` is true.
    pub fn retain_in<Q: EncodeKey<K>>(
        &mut self,
        r: impl RangeBounds<Q>,
        keep: impl FnMut(K::Owned, V::View<'_>) -> bool,
    ) -> Result<(), StoreError> {
        self.retain_raw(bound::<K, Q>(r.start_bound()), bound::<K, Q>(r.end_bound()), keep)
    }

    fn retain_raw(
        &mut self,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        mut keep: impl FnMut(K::Owned, V::View<'_>) -> bool,
    ) -> Result<(), StoreError> {
        let mut gone = Vec::new();
        for e in self.raw.range(self.t.name, lo, hi)? {
            let (k, v) = e?;
            let owned = K::decode(&mut k.as_slice())
                .ok_or_else(|| StoreError::Corrupt(format!("a key of table {}", self.t.name)))?;
            if !keep(owned, V::view(&v)) {
                gone.push(k);
            }
        }
        for k in gone {
            self.raw.remove(self.t.name, &k)?;
            self.note(k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_their_typed_values() {
        let cases: Vec<(u32, &str, u64)> = vec![
            (1, "", 0),
            (1, "", 5),
            (1, "a", 0),
            (1, "a\0", 0),
            (1, "a\0b", 0),
            (1, "ab", 0),
            (1, "b", 9),
            (2, "", 0),
        ];
        let enc: Vec<Vec<u8>> = cases.iter().map(|c| key::<(u32, Str, u64), _>(c)).collect();
        for w in enc.windows(2) {
            assert!(w[0] < w[1], "{:?} !< {:?}", w[0], w[1]);
        }
        for (c, e) in cases.iter().zip(&enc) {
            let back = <(u32, Str, u64)>::decode(&mut e.as_slice()).expect("decodes");
            assert_eq!(back, (c.0, c.1.to_string(), c.2));
        }
    }

    #[test]
    fn truncated_keys_do_not_decode() {
        let e = key::<(u32, Str), _>(&(7u32, "abc"));
        for n in 0..e.len() {
            assert!(<(u32, Str)>::decode(&mut &e[..n]).is_none(), "prefix of {n} bytes");
        }
    }
}
