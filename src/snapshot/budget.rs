//! Decoding under a budget: a serde `Deserializer` wrapper that charges what
//! decoding allocates (each sequence element's in-memory size, string and byte
//! lengths, boxes and enums) against a byte budget, and bounds the nesting depth.
//!
//! Folklore: bincode's own limit counts encoded lengths, not memory. A varint `0`
//! (one byte) decodes into a 24-byte empty `String` or a several-hundred-byte
//! default `Frame`, and zstd turns millions of such bytes into a 2 KB file: a
//! "valid" snapshot of 2 KB became 1.7 GiB in memory. The charge here is an upper
//! bound of what the decoded value holds (some sizes are counted twice, once in
//! the container and once for the value), so a budget of B bytes never lets the
//! decoded snapshot grow much past B. Depth is bounded because serde decoding is
//! recursive: a `Value` nested 4,000 deep overflowed a 1 MiB thread stack.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

/// Limits of one decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest decompressed payload.
    pub max_inflated: u64,
    /// Most bytes the decoded snapshot may hold in memory (an upper-bound estimate).
    pub max_memory: u64,
    /// Deepest nesting of sequences, structs, enums and options.
    pub max_depth: u32,
}

/// Nesting allowed by default: a structured value of 200 levels (the renderer's
/// bound) costs about four levels each.
pub const DEFAULT_DEPTH: u32 = 1024;

impl Default for DecodeLimits {
    /// For files opened by the command line: 1 GiB inflated, 2 GiB in memory.
    fn default() -> DecodeLimits {
        DecodeLimits { max_inflated: 1 << 30, max_memory: 2 << 30, max_depth: DEFAULT_DEPTH }
    }
}

impl DecodeLimits {
    /// Limits for a submission of `body_len` bytes under a server whose largest
    /// submission is `max_submission`: memory in proportion to the input actually
    /// present (a few KB of input cannot claim GiBs), with a floor for small
    /// inputs and a ceiling tied to the server's limit.
    pub fn for_submission(body_len: u64, max_submission: u64) -> DecodeLimits {
        let ceiling = max_submission.saturating_mul(8).max(16 << 20);
        DecodeLimits {
            max_inflated: max_submission.saturating_mul(4).max(16 << 20),
            max_memory: body_len.saturating_mul(256).clamp(16 << 20, ceiling),
            max_depth: DEFAULT_DEPTH,
        }
    }
}

/// What a decode has spent.
#[derive(Debug)]
pub struct Meter {
    left: Cell<u64>,
    depth: Cell<u32>,
    max_depth: u32,
    limit: u64,
}

impl Meter {
    pub fn new(limits: &DecodeLimits) -> Meter {
        Meter {
            left: Cell::new(limits.max_memory),
            depth: Cell::new(0),
            max_depth: limits.max_depth,
            limit: limits.max_memory,
        }
    }

    /// Bytes charged so far.
    pub fn used(&self) -> u64 {
        self.limit - self.left.get()
    }

    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.left.get().checked_sub(bytes as u64) {
            Some(l) => {
                self.left.set(l);
                Ok(())
            }
            None => Err(E::custom(format_args!(
                "decoding would hold more than {} bytes in memory (the decode budget)",
                self.limit
            ))),
        }
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        let d = self.depth.get() + 1;
        if d > self.max_depth {
            return Err(E::custom(format_args!("nested deeper than {} levels", self.max_depth)));
        }
        self.depth.set(d);
        Ok(())
    }

    fn leave(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }

    /// Runs a nested decode one level deeper.
    fn nested<T, E: de::Error>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.enter::<E>()?;
        let r = f();
        self.leave();
        r
    }
}

/// A deserializer that charges `meter` for what it produces.
pub struct Metered<'m, D> {
    pub inner: D,
    pub meter: &'m Meter,
}

struct Vis<'m, V> {
    inner: V,
    meter: &'m Meter,
}

struct Seed<'m, S> {
    inner: S,
    meter: &'m Meter,
}

struct Access<'m, A> {
    inner: A,
    meter: &'m Meter,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Metered { inner: d, meter: self.meter })
    }
}

macro_rules! forward {
    ($($name:ident),*) => {$(
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$name(Vis { inner: visitor, meter: self.meter })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Metered<'_, D> {
    type Error = D::Error;

    forward!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_unit_struct(name, Vis { inner: v, meter: self.meter })
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_newtype_struct(name, Vis { inner: v, meter: self.meter })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple(len, Vis { inner: v, meter: self.meter })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple_struct(name, len, Vis { inner: v, meter: self.meter })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(name, fields, Vis { inner: v, meter: self.meter })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_enum(name, variants, Vis { inner: v, meter: self.meter })
    }
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! pass {
    ($($name:ident: $ty:ty),*) => {$(
        fn $name<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$name(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Vis<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    pass!(visit_bool: bool, visit_i8: i8, visit_i16: i16, visit_i32: i32, visit_i64: i64, visit_i128: i128,
          visit_u8: u8, visit_u16: u16, visit_u32: u32, visit_u64: u64, visit_u128: u128,
          visit_f32: f32, visit_f64: f64, visit_char: char);

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_str(v)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_borrowed_str(v)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_string(v)
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<V::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_bytes(v)
    }
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_borrowed_bytes(v)
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<V::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_byte_buf(v)
    }
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        // What the option holds may be boxed: count a box's worth.
        self.meter.charge(std::mem::size_of::<V::Value>().max(16))?;
        let meter = self.meter;
        meter.nested(|| self.inner.visit_some(Metered { inner: d, meter }))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let meter = self.meter;
        meter.nested(|| self.inner.visit_newtype_struct(Metered { inner: d, meter }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let meter = self.meter;
        meter.nested(|| self.inner.visit_seq(Access { inner: seq, meter }))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let meter = self.meter;
        meter.nested(|| self.inner.visit_map(Access { inner: map, meter }))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        // An enum may be the target of a box (a structured value's pointer target).
        self.meter.charge(std::mem::size_of::<V::Value>())?;
        let meter = self.meter;
        meter.nested(|| self.inner.visit_enum(Access { inner: data, meter }))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Access<'_, A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.meter.charge(std::mem::size_of::<T::Value>())?;
        self.inner.next_element_seed(Seed { inner: seed, meter: self.meter })
    }
    fn size_hint(&self) -> Option<usize> {
        // Containers preallocate from the hint; never let a claimed length do that.
        self.inner.size_hint().map(|n| n.min(4096))
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Access<'_, A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.meter.charge(std::mem::size_of::<K::Value>())?;
        self.inner.next_key_seed(Seed { inner: seed, meter: self.meter })
    }
    fn next_value_seed<W: DeserializeSeed<'de>>(&mut self, seed: W) -> Result<W::Value, A::Error> {
        self.meter.charge(std::mem::size_of::<W::Value>())?;
        self.inner.next_value_seed(Seed { inner: seed, meter: self.meter })
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint().map(|n| n.min(4096))
    }
}

impl<'de, 'm, A: EnumAccess<'de>> EnumAccess<'de> for Access<'m, A> {
    type Error = A::Error;
    type Variant = Access<'m, A::Variant>;
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self::Variant), A::Error> {
        let meter = self.meter;
        let (v, variant) = self.inner.variant_seed(Seed { inner: seed, meter })?;
        Ok((v, Access { inner: variant, meter }))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Access<'_, A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed { inner: seed, meter: self.meter })
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(len, Vis { inner: v, meter: self.meter })
    }
    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], v: V) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(fields, Vis { inner: v, meter: self.meter })
    }
}

/// Decodes a `T` under `limits` through serde.
pub fn decode<'de, T: serde::Deserialize<'de>, D: Deserializer<'de>>(d: D, meter: &Meter) -> Result<T, D::Error> {
    T::deserialize(Metered { inner: d, meter })
}
