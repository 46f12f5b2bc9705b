//! The hash value: a map from field to value, in Redis's two encodings.
//!
//! A hash starts as a `listpack`: field, value, field, value ... in one [`Listpack`], in
//! insertion order (an update keeps the field's place), so a small hash costs a few bytes per
//! pair and replies in the order Redis's does. Past `hash-max-listpack-entries` fields, or
//! when a field or value longer than `hash-max-listpack-value` bytes arrives, it converts to
//! a `hashtable` (the store's [`Dict`], values as [`ThinBytes`]: up to 7 bytes inside the
//! node, longer ones in one allocation) and
//! never converts back, as in Redis.
//!
//! This module knows nothing of commands or replies: it stores, finds, removes, iterates and
//! samples pairs; the command family decides what a reply looks like.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::dict::Dict;
use crate::listpack::{Listpack, Pos};
use crate::thin::ThinBytes;
use crate::types::template::{self, Held};
use crate::types::{Limits, Packed, PackedMut, PackedRef};

/// A listpack never grows past this, whatever the directives say (Redis's `lpSafeToAdd`):
/// every write copies it, so a huge one would stall its core.
pub const LISTPACK_BYTES_MAX: u64 = 1 << 30;

enum Encoding {
    /// Field, value, field, value ...: an even number of entries.
    Listpack(Listpack),
    /// Boxed so that an `Encoding` stays two words (a hash's box holds a [`Repr`]).
    Table(Box<Dict<ThinBytes>>),
    /// Redis 8.10's compact hash: the field names in a shared [`template::Template`], the
    /// values here in its order. Never carries field TTLs (a TTL converts it back).
    Template(Box<Templated>),
}

/// A hash's encoding, to read (see [`Hash::enc`]).
enum Enc<'a> {
    Listpack(&'a Listpack),
    Table(&'a Dict<ThinBytes>),
    Template(&'a Templated),
}

/// A hash's encoding, to change (see [`Hash::enc_mut`]).
enum EncMut<'a> {
    Listpack(&'a mut Listpack),
    Table(&'a mut Dict<ThinBytes>),
    Template(&'a mut Templated),
}

impl Encoding {
    fn view(&self) -> Enc<'_> {
        match self {
            Encoding::Listpack(lp) => Enc::Listpack(lp),
            Encoding::Table(dict) => Enc::Table(dict),
            Encoding::Template(t) => Enc::Template(t),
        }
    }

    fn view_mut(&mut self) -> EncMut<'_> {
        match self {
            Encoding::Listpack(lp) => EncMut::Listpack(lp),
            Encoding::Table(dict) => EncMut::Table(dict),
            Encoding::Template(t) => EncMut::Template(t),
        }
    }
}

/// A hash on a template: `values[i]` belongs to the template's `i`th name.
#[derive(Clone)]
struct Templated {
    template: Held,
    values: Values,
}

/// A templated hash's values: in a listpack while within the `hash-max-listpack-*` limits
/// ("template-listpack"), else one [`ThinBytes`] each ("template-array"), never back.
#[derive(Clone)]
enum Values {
    Listpack(Listpack),
    Array(Box<[ThinBytes]>),
}

impl Templated {
    /// A hash of `values` (in template order) on the template of `sorted`; an array when
    /// `array` or past the listpack limits.
    fn build<'a>(sorted: &[&[u8]], values: impl ExactSizeIterator<Item = &'a [u8]> + Clone, array: bool, limits: &Limits) -> Templated {
        let template = Held::new(template::intern(sorted));
        let array = array
            || sorted.len() as u64 > limits.hash_max_listpack_entries
            || values.clone().any(|v| v.len() as u64 > limits.hash_max_listpack_value)
            || values.clone().map(|v| v.len() as u64).sum::<u64>() > LISTPACK_BYTES_MAX;
        let values = if array {
            Values::Array(values.map(ThinBytes::new).collect())
        } else {
            let mut lp = Listpack::new();
            values.for_each(|v| lp.push_back(v));
            Values::Listpack(lp)
        };
        Templated { template, values }
    }

    fn value(&self, index: usize) -> &[u8] {
        match &self.values {
            Values::Listpack(lp) => lp.get(index as i64).expect("a value per name"),
            Values::Array(values) => values[index].as_bytes(),
        }
    }

    fn values(&self) -> ValueIter<'_> {
        match &self.values {
            Values::Listpack(lp) => ValueIter::Listpack(lp.iter()),
            Values::Array(values) => ValueIter::Array(values.iter()),
        }
    }

    fn set_value(&mut self, index: usize, value: &[u8]) {
        match &mut self.values {
            Values::Listpack(lp) => {
                let pos = lp.seek(index as i64).expect("a value per name");
                lp.replace_at(pos, value);
            }
            Values::Array(values) => values[index] = ThinBytes::new(value),
        }
    }

    /// This hash with `field` (not on the template) added: on the template with its name.
    fn with_field(&self, field: &[u8], value: &[u8], limits: &Limits) -> Templated {
        let names = self.template.names();
        let at = names.binary_search_by(|name| template::order(name, field)).expect_err("a new field");
        let mut sorted: Vec<&[u8]> = names.iter().map(|n| &n[..]).collect();
        sorted.insert(at, field);
        let mut values: Vec<&[u8]> = self.values().collect();
        values.insert(at, value);
        Templated::build(&sorted, values.into_iter(), matches!(self.values, Values::Array(_)), limits)
    }

    /// This hash without its `index`th field: on the template of the other names; None when
    /// it was the last.
    fn without(&self, index: usize) -> Option<Templated> {
        if self.template.len() == 1 {
            return None;
        }
        let sorted: Vec<&[u8]> = self.template.names().iter().enumerate().filter(|&(i, _)| i != index).map(|(_, n)| &n[..]).collect();
        let template = Held::new(template::intern(&sorted));
        let values = match &self.values {
            Values::Listpack(lp) => {
                let mut lp = lp.clone();
                let pos = lp.seek(index as i64).expect("a value per name");
                lp.remove_at(pos);
                Values::Listpack(lp)
            }
            Values::Array(values) => Values::Array(values.iter().enumerate().filter(|&(i, _)| i != index).map(|(_, v)| v.clone()).collect()),
        };
        Some(Templated { template, values })
    }

    /// The same pairs without the template: a listpack from "template-listpack", a
    /// hashtable from "template-array" (as Redis converts one for a field TTL).
    fn untemplated(&self) -> Encoding {
        let names = self.template.names().iter().map(|n| &n[..]);
        match &self.values {
            Values::Listpack(_) => {
                let mut lp = Listpack::new();
                for (field, value) in names.zip(self.values()) {
                    lp.push_back(field);
                    lp.push_back(value);
                }
                Encoding::Listpack(lp)
            }
            Values::Array(values) => {
                let mut dict = Dict::new();
                for (field, value) in names.zip(values.iter()) {
                    dict.insert_new(field, value.clone());
                }
                Encoding::Table(Box::new(dict))
            }
        }
    }

    fn allocated(&self) -> usize {
        std::mem::size_of::<Templated>()
            + match &self.values {
                Values::Listpack(lp) => lp.allocated(),
                Values::Array(values) => values.iter().map(|v| std::mem::size_of::<ThinBytes>() + v.allocated()).sum(),
            }
    }
}

/// A templated hash's values, in template order.
#[derive(Clone)]
enum ValueIter<'a> {
    Listpack(crate::listpack::Iter<'a>),
    Array(std::slice::Iter<'a, ThinBytes>),
}

impl<'a> Iterator for ValueIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            ValueIter::Listpack(entries) => entries.next(),
            ValueIter::Array(values) => values.next().map(ThinBytes::as_bytes),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            ValueIter::Listpack(entries) => entries.size_hint(),
            ValueIter::Array(values) => values.size_hint(),
        }
    }
}

impl ExactSizeIterator for ValueIter<'_> {}

/// A hash's encoding, and its fields' TTLs once a command gave any field one (Redis 7.4's
/// hash field expiration): boxed beside the encoding, so that a hash without them costs
/// nothing more. What a [`Hash`] boxes: a plain listpack is never here, but in the hash.
enum Repr {
    Plain(Encoding),
    Volatile(Box<Volatile>),
}

struct Volatile {
    encoding: Encoding,
    ttls: FieldTtls,
}

/// The TTLs of a hash's fields.
#[derive(Clone, Default, PartialEq, Eq)]
struct FieldTtls {
    /// Field -> absolute expiry, Unix milliseconds.
    at: HashMap<Box<[u8]>, u64>,
    /// (expiry, field) for every field of `at`, earliest first.
    order: BTreeSet<(u64, Box<[u8]>)>,
    /// The expiry under which the database's index of such hashes lists this one, if it
    /// does (see `Db`'s `field_expires`): kept by the database, not by the hash.
    indexed: Option<u64>,
}

impl FieldTtls {
    fn set(&mut self, field: &[u8], at_ms: u64) {
        if let Some(old) = self.at.insert(field.into(), at_ms) {
            self.order.remove(&(old, field.into()));
        }
        self.order.insert((at_ms, field.into()));
    }

    fn remove(&mut self, field: &[u8]) -> Option<u64> {
        let old = self.at.remove(field)?;
        self.order.remove(&(old, field.into()));
        Some(old)
    }
}

/// Whether any hash of this process ever had a field TTL. The log writes HINCRBYFLOAT as
/// HSET (which Redis before 8 can replay) until then, and as HSETEX KEEPTTL after, which
/// keeps the field's TTL at replay.
static FIELD_TTLS_USED: AtomicBool = AtomicBool::new(false);

/// See [`FIELD_TTLS_USED`].
pub fn field_ttls_used() -> bool {
    FIELD_TTLS_USED.load(Ordering::Relaxed)
}

/// A hash: fields and their values, both byte strings. Twelve bytes, so that it sits in its
/// key's [`crate::Value`]: a plain listpack itself, anything else (a hashtable, a template,
/// field TTLs) boxed.
pub struct Hash {
    repr: Packed<Repr>,
}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

impl Clone for Hash {
    fn clone(&self) -> Self {
        let encoding = match self.enc() {
            Enc::Listpack(lp) => Encoding::Listpack(lp.clone()),
            Enc::Table(dict) => {
                let mut copy = Dict::new();
                for (field, value) in dict.iter() {
                    copy.insert_new(field, value.clone());
                }
                Encoding::Table(Box::new(copy))
            }
            Enc::Template(t) => Encoding::Template(Box::new(t.clone())),
        };
        match self.ttls() {
            None => Hash::plain(encoding),
            // The copy is not in any database's index yet.
            Some(ttls) => {
                Hash { repr: Packed::boxed(Box::new(Repr::Volatile(Box::new(Volatile { encoding, ttls: FieldTtls { indexed: None, ..ttls.clone() } })))) }
            }
        }
    }
}

/// Two hashes are equal when they hold the same pairs, whatever their encodings and orders.
impl PartialEq for Hash {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.iter().all(|(field, value)| other.get(field) == Some(value))
            && self.field_ttls().all(|(field, at)| other.field_ttl(field) == Some(at))
            && self.field_ttls().count() == other.field_ttls().count()
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(field, value)| (field.escape_ascii().to_string(), value.escape_ascii().to_string()))).finish()
    }
}

/// Iterates any encoding's pairs without boxing.
enum Pairs<A, B, C> {
    Listpack(A),
    Table(B),
    Template(C),
}

impl<'a, A, B, C> Iterator for Pairs<A, B, C>
where
    A: Iterator<Item = (&'a [u8], &'a [u8])>,
    B: Iterator<Item = (&'a [u8], &'a [u8])>,
    C: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Pairs::Listpack(a) => a.next(),
            Pairs::Table(b) => b.next(),
            Pairs::Template(c) => c.next(),
        }
    }
}

/// The position of `field`'s value in a listpack of pairs.
fn listpack_find(lp: &Listpack, field: &[u8]) -> Option<(Pos, Pos)> {
    let mut at = lp.first();
    while let Some(field_pos) = at {
        let value_pos = lp.next(field_pos).expect("a field is followed by its value");
        if lp.get_at(field_pos) == field {
            return Some((field_pos, value_pos));
        }
        at = lp.next(value_pos);
    }
    None
}

impl Hash {
    /// A hash of `encoding` without field TTLs: a listpack in place, anything else boxed.
    fn plain(encoding: Encoding) -> Hash {
        let repr = match encoding {
            Encoding::Listpack(lp) => Packed::listpack(lp),
            other => Packed::boxed(Box::new(Repr::Plain(other))),
        };
        Hash { repr }
    }

    fn enc(&self) -> Enc<'_> {
        match self.repr.get() {
            PackedRef::Listpack(lp) => Enc::Listpack(lp),
            PackedRef::Boxed(Repr::Plain(encoding)) => encoding.view(),
            PackedRef::Boxed(Repr::Volatile(v)) => v.encoding.view(),
        }
    }

    fn enc_mut(&mut self) -> EncMut<'_> {
        match self.repr.get_mut() {
            PackedMut::Listpack(lp) => EncMut::Listpack(lp),
            PackedMut::Boxed(Repr::Plain(encoding)) => encoding.view_mut(),
            PackedMut::Boxed(Repr::Volatile(v)) => v.encoding.view_mut(),
        }
    }

    /// Makes `encoding` the hash's, keeping its field TTLs.
    fn set_encoding(&mut self, encoding: Encoding) {
        match self.repr.get_mut() {
            PackedMut::Boxed(Repr::Volatile(v)) => v.encoding = encoding,
            _ => *self = Hash::plain(encoding),
        }
    }

    /// The encoding of a hash without field TTLs, taken out (an empty listpack left).
    fn take_plain_encoding(&mut self) -> Encoding {
        match self.repr.get_mut() {
            PackedMut::Listpack(lp) => Encoding::Listpack(std::mem::take(lp)),
            PackedMut::Boxed(Repr::Plain(encoding)) => std::mem::replace(encoding, Encoding::Listpack(Listpack::new())),
            PackedMut::Boxed(Repr::Volatile(_)) => unreachable!("a hash without field TTLs"),
        }
    }

    fn ttls(&self) -> Option<&FieldTtls> {
        match self.repr.get() {
            PackedRef::Boxed(Repr::Volatile(v)) => Some(&v.ttls),
            _ => None,
        }
    }

    fn ttls_mut(&mut self) -> Option<&mut FieldTtls> {
        match self.repr.get_mut() {
            PackedMut::Boxed(Repr::Volatile(v)) => Some(&mut v.ttls),
            _ => None,
        }
    }

    /// The TTLs, made room for: from here on the hash is "listpackex" while a listpack, as
    /// Redis's becomes on its first field expiration command, even once none is left.
    fn ttls_or_new(&mut self) -> &mut FieldTtls {
        self.untemplate();
        if self.ttls().is_none() {
            FIELD_TTLS_USED.store(true, Ordering::Relaxed);
            let encoding = self.take_plain_encoding();
            self.repr = Packed::boxed(Box::new(Repr::Volatile(Box::new(Volatile { encoding, ttls: FieldTtls::default() }))));
        }
        self.ttls_mut().expect("made")
    }

    // ---- Field TTLs (Redis 7.4's hash field expiration) ----------------------------------

    /// `field`'s absolute expiry (Unix ms), if it has one. Says nothing of whether the field
    /// exists: one without a TTL has none.
    pub fn field_ttl(&self, field: &[u8]) -> Option<u64> {
        self.ttls().and_then(|ttls| ttls.at.get(field).copied())
    }

    /// Gives existing `field` the absolute expiry `at_ms`; false when there is no such field.
    pub fn set_field_ttl(&mut self, field: &[u8], at_ms: u64) -> bool {
        if !self.contains(field) {
            return false;
        }
        self.ttls_or_new().set(field, at_ms);
        true
    }

    /// Removes `field`'s TTL (HPERSIST); returns whether it had one.
    pub fn clear_field_ttl(&mut self, field: &[u8]) -> bool {
        self.ttls_mut().is_some_and(|ttls| ttls.remove(field).is_some())
    }

    /// Whether any field has a TTL.
    pub fn has_field_ttls(&self) -> bool {
        self.ttls().is_some_and(|ttls| !ttls.at.is_empty())
    }

    /// The earliest field expiry, if any field has a TTL.
    pub fn next_field_expiry(&self) -> Option<u64> {
        self.ttls().and_then(|ttls| ttls.order.first().map(|(at, _)| *at))
    }

    /// The fields with a TTL and their expiries, earliest first.
    pub fn field_ttls(&self) -> impl Iterator<Item = (&[u8], u64)> + '_ {
        self.ttls().into_iter().flat_map(|ttls| ttls.order.iter().map(|(at, field)| (&field[..], *at)))
    }

    /// Removes the fields whose expiry has passed at `now_ms` (an expiry before it, as
    /// Redis's `hfieldIsExpired`); returns them, earliest first.
    pub fn expire_fields(&mut self, now_ms: u64) -> Vec<Box<[u8]>> {
        let mut expired = Vec::new();
        while let Some(ttls) = self.ttls_mut() {
            match ttls.order.first() {
                Some((at, _)) if *at < now_ms => {
                    let (_, field) = ttls.order.pop_first().expect("first exists");
                    ttls.at.remove(&field);
                    self.remove_field_only(&field);
                    expired.push(field);
                }
                _ => break,
            }
        }
        expired
    }

    /// The expiry under which the database's index lists this hash (see `Db`).
    pub fn indexed_expiry(&self) -> Option<u64> {
        self.ttls().and_then(|ttls| ttls.indexed)
    }

    /// Records the expiry under which the database's index lists this hash.
    pub fn set_indexed_expiry(&mut self, at_ms: Option<u64>) {
        if let Some(ttls) = self.ttls_mut() {
            ttls.indexed = at_ms;
        }
    }

    /// An empty hash, listpack-encoded.
    pub fn new() -> Hash {
        Hash { repr: Packed::listpack(Listpack::new()) }
    }

    /// Number of fields.
    /// A listpack hash of `pairs`, whose fields the caller has checked are distinct and
    /// within the listpack limits (a hash loaded from a file): no search per field.
    pub fn listpack_from_distinct<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Hash {
        let mut lp = Listpack::new();
        for (field, value) in pairs {
            lp.push_back(field);
            lp.push_back(value);
        }
        Hash { repr: Packed::listpack(lp) }
    }

    /// A hash of `fields` and their `values` (pairs by position) on the template of those
    /// names (HIMPORT SET): "template-listpack" within the listpack limits, else
    /// "template-array". Err(field) when a field repeats.
    pub fn from_template<'a>(fields: &[&'a [u8]], values: &[&[u8]], limits: &Limits) -> Result<Hash, &'a [u8]> {
        assert_eq!(fields.len(), values.len(), "a value per field");
        let mut order: Vec<usize> = (0..fields.len()).collect();
        order.sort_unstable_by(|&a, &b| template::order(fields[a], fields[b]));
        let sorted: Vec<&[u8]> = order.iter().map(|&i| fields[i]).collect();
        if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(pair[0]);
        }
        assert!(!sorted.is_empty(), "a templated hash has fields");
        let templated = Templated::build(&sorted, order.iter().map(|&i| values[i]), false, limits);
        Ok(Hash::plain(Encoding::Template(Box::new(templated))))
    }

    pub fn len(&self) -> usize {
        match self.enc() {
            Enc::Listpack(lp) => lp.len() / 2,
            Enc::Table(dict) => dict.len(),
            Enc::Template(t) => t.template.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        match (self.enc(), self.ttls().is_some()) {
            (Enc::Listpack(_), true) => "listpackex",
            (Enc::Listpack(_), false) => "listpack",
            (Enc::Table(_), _) => "hashtable",
            (Enc::Template(t), _) if matches!(t.values, Values::Listpack(_)) => "template-listpack",
            (Enc::Template(_), _) => "template-array",
        }
    }

    /// Heap bytes this hash uses, for MEMORY USAGE (the value holds its twelve bytes): the
    /// box of any encoding but a plain listpack, then a listpack's buffer exactly, or a hashtable's boxed [`Dict`], bucket
    /// array and nodes with the values' heap bytes, sampled over the first `samples` fields
    /// (all when 0; see [`Dict::heap_bytes`]). The allocator's rounding up is not counted.
    pub fn memory_usage(&self, samples: usize) -> usize {
        let repr = match self.enc() {
            Enc::Listpack(lp) => lp.allocated(),
            Enc::Table(dict) => std::mem::size_of::<Dict<ThinBytes>>() + dict.heap_bytes(samples, ThinBytes::allocated),
            // The template is shared: a key costs its values (as Redis's MEMORY USAGE says).
            Enc::Template(t) => t.allocated(),
        };
        // Field TTLs: the box, and per field its name twice (map and order) and the nodes.
        let ttls = self.ttls().map_or(0, |ttls| {
            const PER_FIELD: usize = 2 * std::mem::size_of::<(u64, Box<[u8]>)>() + 16;
            std::mem::size_of::<Volatile>() + ttls.at.keys().map(|field| 2 * field.len() + PER_FIELD).sum::<usize>()
        });
        self.repr.box_bytes() + repr + ttls
    }

    /// Whether the hash is listpack-encoded (so it iterates in insertion order).
    pub fn is_listpack(&self) -> bool {
        matches!(self.enc(), Enc::Listpack(_))
    }

    /// Warms the cache for lookups of `fields` that follow soon (a pipelined batch; see
    /// [`crate::prefetch`]). Only the hashtable form has misses worth overlapping: a
    /// listpack is one allocation.
    /// Prefetches what reading the hash touches first: its listpack, or the box of its
    /// other encodings (see [`crate::prefetch`]).
    #[inline]
    pub fn prefetch(&self) {
        self.repr.prefetch();
    }

    /// Once [`Hash::prefetch`] brought a box: prefetches its table's or template's header.
    #[inline]
    pub fn prefetch_inner(&self) {
        match self.enc() {
            Enc::Listpack(_) => {}
            Enc::Table(dict) => crate::prefetch::read(dict as *const Dict<ThinBytes> as *const u8),
            Enc::Template(t) => crate::prefetch::read(t as *const Templated as *const u8),
        }
    }

    pub fn prefetch_fields(&self, fields: &[&[u8]]) {
        if let Enc::Table(dict) = self.enc() {
            dict.prefetch(fields, ThinBytes::prefetch);
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self.enc() {
            Enc::Listpack(lp) => listpack_find(lp, field).map(|(_, value_pos)| lp.get_at(value_pos)),
            Enc::Table(dict) => dict.get(field).map(ThinBytes::as_bytes),
            Enc::Template(t) => t.template.index_of(field).map(|i| t.value(i)),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Converts a listpack to a hashtable when any of `items` (fields and values about to be
    /// written) is longer than `hash-max-listpack-value`, or when they would take the
    /// listpack past [`LISTPACK_BYTES_MAX`], before they are written, as Redis's
    /// `hashTypeTryConversion` does: so HSET converts even when it only updates fields.
    pub fn convert_for<'a>(&mut self, items: impl IntoIterator<Item = &'a [u8]>, limits: &Limits) {
        if let EncMut::Template(t) = self.enc_mut() {
            if let Values::Listpack(lp) = &t.values {
                if items.into_iter().any(|item| item.len() as u64 > limits.hash_max_listpack_value) {
                    t.values = Values::Array(lp.iter().map(ThinBytes::new).collect());
                }
            }
            return;
        }
        let Enc::Listpack(lp) = self.enc() else {
            return;
        };
        let mut total = lp.bytes_len() as u64;
        for item in items {
            if item.len() as u64 > limits.hash_max_listpack_value {
                return self.convert_to_table();
            }
            total += item.len() as u64;
        }
        if total > LISTPACK_BYTES_MAX {
            self.convert_to_table();
        }
    }

    /// Sets `field` to `value`; returns true when the field is new. Converts to a hashtable
    /// first when either is too long for a listpack, and after when the hash has too many
    /// fields. An existing field loses its TTL, as HSET's does in Redis.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: &Limits) -> bool {
        if let Some(ttls) = self.ttls_mut() {
            ttls.remove(field);
        }
        self.set_keeping_ttl(field, value, limits)
    }

    /// [`Hash::set`], except that an existing field keeps its TTL (HINCRBY, HSETEX KEEPTTL).
    pub fn set_keeping_ttl(&mut self, field: &[u8], value: &[u8], limits: &Limits) -> bool {
        self.write_field(field, value, limits)
    }

    /// Moves a plain hash (no field TTLs) to a template once it has at least
    /// `hash-min-template-entries` fields and at most `hash-max-template-entries`, as Redis
    /// 8.10 does after a command wrote it: "template-listpack" within the listpack limits,
    /// else "template-array". Once per command, not per field: each new field of a templated
    /// hash moves it to another template.
    /// Takes the hash off its template: a listpack from "template-listpack", a hashtable
    /// from "template-array". Nothing for a hash not on one.
    pub fn untemplate(&mut self) {
        if let Enc::Template(t) = self.enc() {
            let plain = t.untemplated();
            self.set_encoding(plain);
        }
    }

    /// How many hashes hold this one's template, itself included (None: not on one).
    pub fn template_holders(&self) -> Option<usize> {
        match self.enc() {
            // Less the registry's own hold.
            Enc::Template(t) => Some(std::sync::Arc::strong_count(&t.template.0).saturating_sub(1).max(1)),
            _ => None,
        }
    }

    pub fn template_if_due(&mut self, limits: &Limits) {
        self.template_if_within(limits.hash_min_template_entries, limits.hash_max_template_entries, limits);
    }

    /// Moves a plain hash (no field TTLs) of at least `min` fields (0: never) and at most
    /// `max` (0: no bound) to a template.
    pub fn template_if_within(&mut self, min: u64, max: u64, limits: &Limits) {
        let len = self.len() as u64;
        if min == 0 || len < min || (max != 0 && len > max) {
            return;
        }
        if self.ttls().is_some() || matches!(self.enc(), Enc::Template(_)) {
            return;
        }
        let mut pairs: Vec<(&[u8], &[u8])> = self.iter().collect();
        pairs.sort_unstable_by(|a, b| template::order(a.0, b.0));
        let sorted: Vec<&[u8]> = pairs.iter().map(|p| p.0).collect();
        let templated = Templated::build(&sorted, pairs.iter().map(|p| p.1), false, limits);
        *self = Hash::plain(Encoding::Template(Box::new(templated)));
    }

    /// Writes one field in place (converting first as [`Hash::convert_for`] says).
    fn write_field(&mut self, field: &[u8], value: &[u8], limits: &Limits) -> bool {
        self.convert_for([field, value], limits);
        match self.enc_mut() {
            EncMut::Listpack(lp) => {
                let new = match listpack_find(lp, field) {
                    Some((_, value_pos)) => {
                        lp.replace_at(value_pos, value);
                        false
                    }
                    None => {
                        lp.push_back(field);
                        lp.push_back(value);
                        true
                    }
                };
                if self.len() as u64 > limits.hash_max_listpack_entries {
                    self.convert_to_table();
                }
                new
            }
            EncMut::Table(dict) => match dict.get_mut(field) {
                Some(slot) => {
                    *slot = ThinBytes::new(value);
                    false
                }
                None => {
                    dict.insert_new(field, ThinBytes::new(value));
                    true
                }
            },
            // A new field moves the hash to the template with its name, as in Redis.
            EncMut::Template(t) => match t.template.index_of(field) {
                Some(index) => {
                    t.set_value(index, value);
                    false
                }
                None => {
                    *t = t.with_field(field, value, limits);
                    true
                }
            },
        }
    }

    /// Removes `field`; returns whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let removed = self.remove_field_only(field);
        if removed {
            if let Some(ttls) = self.ttls_mut() {
                ttls.remove(field);
            }
        }
        removed
    }

    /// Removes `field` from the encoding, leaving the TTLs alone.
    fn remove_field_only(&mut self, field: &[u8]) -> bool {
        match self.enc_mut() {
            EncMut::Listpack(lp) => match listpack_find(lp, field) {
                Some((field_pos, _)) => {
                    lp.remove_range_at(field_pos, 2);
                    true
                }
                None => false,
            },
            EncMut::Table(dict) => dict.remove(field).is_some(),
            // The hash moves to the template without the name (the last one empties it).
            EncMut::Template(t) => {
                let Some(index) = t.template.index_of(field) else {
                    return false;
                };
                match t.without(index) {
                    Some(rest) => *t = rest,
                    None => self.set_encoding(Encoding::Listpack(Listpack::new())),
                }
                true
            }
        }
    }

    /// An empty hash already in its hashtable form, with room for `fields`: a load of a hash
    /// with more fields than `hash-max-listpack-entries` (Redis converts such a hash before
    /// it reads the fields, rather than growing a listpack first).
    pub fn table_with_capacity(fields: usize) -> Hash {
        let mut dict = Dict::new();
        dict.reserve(fields);
        Hash::plain(Encoding::Table(Box::new(dict)))
    }

    fn convert_to_table(&mut self) {
        let Enc::Listpack(lp) = self.enc() else {
            return;
        };
        let mut dict = Dict::new();
        let mut entries = lp.iter();
        while let (Some(field), Some(value)) = (entries.next(), entries.next()) {
            dict.insert_new(field, ThinBytes::new(value));
        }
        self.set_encoding(Encoding::Table(Box::new(dict)));
    }

    /// The (field, value) pairs: insertion order for a listpack, table order otherwise.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        match self.enc() {
            Enc::Listpack(lp) => {
                let mut entries = lp.iter();
                Pairs::Listpack(std::iter::from_fn(move || Some((entries.next()?, entries.next()?))))
            }
            Enc::Table(dict) => Pairs::Table(dict.iter().map(|(field, value)| (field, value.as_bytes()))),
            Enc::Template(t) => Pairs::Template(t.template.names().iter().map(|name| &name[..]).zip(t.values())),
        }
    }

    /// One pair chosen at random, None when empty.
    pub fn random_pair(&self, rng: &mut impl rand::Rng) -> Option<(&[u8], &[u8])> {
        match self.enc() {
            Enc::Listpack(lp) => {
                if lp.is_empty() {
                    return None;
                }
                let index = rng.random_range(0..self.len()) as i64;
                let field_pos = lp.seek(2 * index).expect("the index is in range");
                let value_pos = lp.next(field_pos).expect("a field is followed by its value");
                Some((lp.get_at(field_pos), lp.get_at(value_pos)))
            }
            Enc::Table(dict) => dict.random_entry(rng).map(|(field, value)| (field, value.as_bytes())),
            Enc::Template(t) => {
                let index = rng.random_range(0..t.template.len());
                Some((&t.template.names()[index], t.value(index)))
            }
        }
    }

    /// Calls `visit` with `count` pairs chosen at random, repeats allowed (HRANDFIELD with a
    /// negative count). Memory is bounded by the hash's size, never by `count`.
    pub fn sample_with_repeats(&self, count: usize, rng: &mut impl rand::Rng, mut visit: impl FnMut(&[u8], &[u8])) {
        if self.is_empty() {
            return;
        }
        match self.enc() {
            Enc::Listpack(lp) => {
                // Walking a listpack to an index is linear; locate every field once instead.
                let fields: Vec<Pos> = std::iter::successors(lp.first(), |&pos| lp.next(pos).and_then(|value| lp.next(value))).collect();
                for _ in 0..count {
                    let field_pos = fields[rng.random_range(0..fields.len())];
                    let value_pos = lp.next(field_pos).expect("a field is followed by its value");
                    visit(lp.get_at(field_pos), lp.get_at(value_pos));
                }
            }
            Enc::Table(dict) => {
                for _ in 0..count {
                    let (field, value) = dict.random_entry(rng).expect("not empty");
                    visit(field, value.as_bytes());
                }
            }
            Enc::Template(t) => {
                let values: Vec<&[u8]> = t.values().collect();
                for _ in 0..count {
                    let index = rng.random_range(0..values.len());
                    visit(&t.template.names()[index], values[index]);
                }
            }
        }
    }

    /// Calls `visit` with `count` distinct pairs chosen at random, in iteration order; every
    /// pair when `count` is at least the size (HRANDFIELD with a positive count).
    pub fn sample_distinct(&self, count: usize, rng: &mut impl rand::Rng, mut visit: impl FnMut(&[u8], &[u8])) {
        let len = self.len();
        if count >= len {
            self.iter().for_each(|(field, value)| visit(field, value));
            return;
        }
        let mut chosen = rand::seq::index::sample(rng, len, count).into_vec();
        chosen.sort_unstable();
        let mut chosen = chosen.into_iter().peekable();
        for (index, (field, value)) in self.iter().enumerate() {
            match chosen.peek() {
                None => break,
                Some(&next) if next == index => {
                    chosen.next();
                    visit(field, value);
                }
                Some(_) => {}
            }
        }
    }

    /// One step of HSCAN from `cursor`: a listpack visits every pair and returns 0, as Redis
    /// does; a hashtable visits one bucket and returns the next cursor (0 when done).
    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&[u8], &[u8])) -> u64 {
        match self.enc() {
            Enc::Listpack(_) | Enc::Template(_) => {
                self.iter().for_each(|(field, value)| visit(field, value));
                0
            }
            Enc::Table(dict) => dict.scan_step(cursor, |field, value| visit(field, value.as_bytes())),
        }
    }

    /// Asserts the invariants: a listpack holds whole pairs without repeated fields; a table
    /// is consistent.
    pub fn check_invariants(&self) {
        match self.enc() {
            Enc::Listpack(lp) => {
                assert_eq!(lp.len() % 2, 0, "a listpack holds whole pairs");
                let mut fields = std::collections::HashSet::new();
                for (field, _) in self.iter() {
                    assert!(fields.insert(field), "a field appears once");
                }
            }
            Enc::Table(dict) => dict.check_invariants(),
            Enc::Template(t) => {
                let names = t.template.names();
                assert!(!names.is_empty(), "an empty hash is not on a template");
                assert!(names.windows(2).all(|w| template::order(&w[0], &w[1]).is_lt()), "names are sorted and distinct");
                assert_eq!(t.values().len(), names.len(), "a value per name");
                assert_eq!(t.values().count(), names.len(), "a value per name");
                assert!(self.ttls().is_none(), "a templated hash has no field TTLs");
            }
        }
        if let Some(ttls) = self.ttls() {
            assert_eq!(ttls.at.len(), ttls.order.len(), "every TTL is in the order once");
            for (at, field) in &ttls.order {
                assert_eq!(ttls.at.get(field), Some(at), "the order agrees with the map");
                assert!(self.contains(field), "a TTL belongs to a field that exists");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    fn limits(entries: u64, value: u64) -> Limits {
        Limits { hash_max_listpack_entries: entries, hash_max_listpack_value: value, ..Limits::default() }
    }

    #[test]
    fn a_table_value_is_one_word() {
        assert_eq!(std::mem::size_of::<ThinBytes>(), 8);
        assert_eq!(ThinBytes::new(b"").as_bytes(), b"");
        assert_eq!(ThinBytes::new(&[7u8; 23]).as_bytes(), &[7u8; 23]);
    }

    #[test]
    fn a_listpack_keeps_insertion_order_and_updates_in_place() {
        let limits = Limits::default();
        let mut h = Hash::new();
        assert!(h.set(b"b", b"1", &limits));
        assert!(h.set(b"a", b"2", &limits));
        assert!(!h.set(b"b", b"3", &limits));
        let pairs: Vec<_> = h.iter().collect();
        assert_eq!(pairs, vec![(&b"b"[..], &b"3"[..]), (&b"a"[..], &b"2"[..])]);
        assert_eq!(h.encoding_name(), "listpack");
        h.check_invariants();
    }

    #[test]
    fn field_ttls_follow_the_fields_they_belong_to() {
        let limits = limits(4, 64);
        let mut h = Hash::new();
        for field in [&b"a"[..], b"b", b"c"] {
            h.set(field, b"v", &limits);
        }
        assert!(!h.set_field_ttl(b"missing", 10), "only an existing field gets a TTL");
        assert_eq!(h.encoding_name(), "listpack");
        assert!(h.set_field_ttl(b"a", 30) && h.set_field_ttl(b"b", 10) && h.set_field_ttl(b"c", 20));
        assert_eq!(h.encoding_name(), "listpackex");
        assert_eq!(h.next_field_expiry(), Some(10));
        assert!(!h.set_keeping_ttl(b"b", b"w", &limits));
        assert_eq!(h.field_ttl(b"b"), Some(10), "HINCRBY keeps the TTL");
        assert!(!h.set(b"b", b"x", &limits));
        assert_eq!(h.field_ttl(b"b"), None, "HSET drops it");
        assert!(h.remove(b"c"));
        assert_eq!(h.field_ttls().collect::<Vec<_>>(), vec![(&b"a"[..], 30)]);
        h.set(b"c", b"v", &limits);
        assert_eq!(h.field_ttl(b"c"), None, "a field set again after HDEL has no TTL");
        // A hashtable keeps them.
        h.set(b"d", b"v", &limits);
        h.set(b"e", b"v", &limits);
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.field_ttl(b"a"), Some(30));
        let copy = h.clone();
        assert_eq!(copy, h);
        assert!(h.set_field_ttl(b"d", 5));
        assert_ne!(copy, h, "TTLs count in equality");
        assert_eq!(h.expire_fields(30), vec![Box::from(&b"d"[..])], "30 is not before 30");
        assert_eq!(h.expire_fields(31), vec![Box::from(&b"a"[..])]);
        assert!(!h.contains(b"a") && !h.has_field_ttls());
        assert!(!h.clear_field_ttl(b"a"));
        h.check_invariants();
        // HPERSIST: the listpack stays listpackex, as Redis's.
        let mut small = Hash::new();
        small.set(b"f", b"v", &limits);
        small.set_field_ttl(b"f", 7);
        assert!(small.clear_field_ttl(b"f"));
        assert!(!small.has_field_ttls());
        assert_eq!(small.encoding_name(), "listpackex");
        small.check_invariants();
    }

    #[test]
    fn too_many_fields_convert_to_a_hashtable() {
        let limits = limits(3, 64);
        let mut h = Hash::new();
        for field in [&b"a"[..], b"b", b"c"] {
            h.set(field, b"v", &limits);
        }
        assert_eq!(h.encoding_name(), "listpack");
        h.set(b"d", b"v", &limits);
        assert_eq!(h.encoding_name(), "hashtable");
        h.remove(b"d");
        h.remove(b"c");
        assert_eq!(h.encoding_name(), "hashtable", "never back");
        assert_eq!(h.len(), 2);
        h.check_invariants();
    }

    #[test]
    fn a_long_field_or_value_converts_even_on_update() {
        let limits = limits(128, 4);
        let mut h = Hash::new();
        h.set(b"f", b"1234", &limits);
        assert_eq!(h.encoding_name(), "listpack");
        h.set(b"f", b"12345", &limits);
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.get(b"f"), Some(&b"12345"[..]));
        let mut h = Hash::new();
        h.set(b"f", b"v", &limits);
        h.convert_for([&b"f"[..], b"long value"], &limits);
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.get(b"f"), Some(&b"v"[..]));
    }

    /// A hash of `fields` fields "field:NNNNNN" with 10-byte values, listpack-encoded while
    /// `listpack` and the default limits allow it, else a hashtable from the start.
    fn uniform_hash(fields: usize, listpack: bool) -> Hash {
        let limits = if listpack { Limits::default() } else { limits(0, 64) };
        let mut h = Hash::new();
        for i in 0..fields {
            h.set(format!("field:{i:06}").as_bytes(), format!("value:{i:04}").as_bytes(), &limits);
        }
        assert_eq!(h.encoding_name(), if listpack { "listpack" } else { "hashtable" });
        h
    }

    #[test]
    fn a_hashtables_estimate_grows_about_linearly_with_its_fields() {
        let (small, big) = (uniform_hash(100, false).memory_usage(0), uniform_hash(1000, false).memory_usage(0));
        // Ten times the nodes and value buffers (29 + 11 bytes a field); what is not ten
        // times is the fixed part (72 bytes) and the bucket array (64 and 512 slots: 5 and
        // 4 bytes a field), so the ratio stays within 9x to 11x (9.6x when written).
        assert!(big > small * 9, "1000 fields: {big} bytes, 100 fields: {small} bytes");
        assert!(big < small * 11, "1000 fields: {big} bytes, 100 fields: {small} bytes");
    }

    #[test]
    fn a_hashtables_estimate_from_five_samples_is_close_to_the_full_count() {
        let h = uniform_hash(10_000, false);
        let (exact, sampled) = (h.memory_usage(0), h.memory_usage(5));
        // Every field and value has the same length, so only rounding separates the two.
        assert!(sampled.abs_diff(exact) * 4 < exact, "sampled {sampled} bytes, exact {exact} bytes");
        assert_eq!(uniform_hash(3, false).memory_usage(5), uniform_hash(3, false).memory_usage(0), "fewer fields than samples: all measured");
    }

    #[test]
    fn a_listpack_hash_is_smaller_than_the_same_pairs_in_a_hashtable() {
        let (listpack, table) = (uniform_hash(100, true).memory_usage(0), uniform_hash(100, false).memory_usage(0));
        assert!(listpack < table, "listpack {listpack} bytes, hashtable {table} bytes");
        // A listpack is its buffer (its twelve bytes are the value's): a field of 12 bytes
        // and a value of 10 take 1 + 12 + 1 and 1 + 10 + 1 bytes.
        assert_eq!(listpack, 100 * (14 + 12));
    }

    #[test]
    fn sampling_distinct_pairs_returns_each_at_most_once() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for entries in [1000, 2] {
            let limits = limits(entries, 64);
            let mut h = Hash::new();
            for i in 0..20 {
                h.set(format!("f{i}").as_bytes(), format!("v{i}").as_bytes(), &limits);
            }
            for count in [0, 1, 5, 19, 20, 100] {
                let mut seen = BTreeSet::new();
                h.sample_distinct(count, &mut rng, |field, value| {
                    assert_eq!(h.get(field), Some(value));
                    assert!(seen.insert(field.to_vec()), "distinct");
                });
                assert_eq!(seen.len(), count.min(20));
            }
            let mut n = 0;
            h.sample_with_repeats(50, &mut rng, |field, value| {
                assert_eq!(h.get(field), Some(value));
                n += 1;
            });
            assert_eq!(n, 50);
            assert!(h.random_pair(&mut rng).is_some_and(|(f, v)| h.get(f) == Some(v)));
        }
        assert_eq!(Hash::new().random_pair(&mut rng), None);
    }

    #[test]
    fn a_full_scan_of_a_table_returns_every_pair() {
        let limits = limits(0, 64);
        let mut h = Hash::new();
        for i in 0..100 {
            h.set(format!("f{i}").as_bytes(), b"v", &limits);
        }
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        loop {
            cursor = h.scan_step(cursor, |field, _| {
                seen.insert(field.to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 100);
    }

    /// The count of templated hashes is the process's: tests that make them take turns.
    static TEMPLATE_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_templated_hash_shares_its_names_and_moves_between_templates() {
        let _alone = TEMPLATE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let limits = Limits::default();
        let before = template::template_hashes();
        let a = Hash::from_template(&[b"name", b"email", b"age"], &[b"alice", b"a@x", b"30"], &limits).unwrap();
        let b = Hash::from_template(&[b"age", b"name", b"email"], &[b"25", b"bob", b"b@x"], &limits).unwrap();
        assert_eq!(template::template_hashes(), before + 2);
        assert_eq!(a.encoding_name(), "template-listpack");
        // Shortest name first, then bytewise, whatever order the fields came in.
        let pairs: Vec<(&[u8], &[u8])> = b.iter().collect();
        assert_eq!(pairs, [(&b"age"[..], &b"25"[..]), (b"name", b"bob"), (b"email", b"b@x")]);
        let (Enc::Template(ta), Enc::Template(tb)) = (a.enc(), b.enc()) else { panic!("templated") };
        assert!(Arc::ptr_eq(&ta.template.0, &tb.template.0), "one template for the same names");
        assert_eq!(template::in_use(), 1);

        // An update keeps the template; a new field moves to another; so does a removal.
        let mut c = a.clone();
        assert!(!c.set(b"age", b"31", &limits));
        assert!(c.set(b"city", b"Paris", &limits));
        assert_eq!(c.encoding_name(), "template-listpack");
        assert_eq!(c.get(b"city"), Some(&b"Paris"[..]));
        assert_eq!(c.iter().map(|(f, _)| f).collect::<Vec<_>>(), [&b"age"[..], b"city", b"name", b"email"]);
        assert!(c.remove(b"city") && c.remove(b"email") && !c.remove(b"email"));
        assert_eq!(c.iter().collect::<Vec<_>>(), [(&b"age"[..], &b"31"[..]), (b"name", b"alice")]);
        assert_eq!(template::in_use(), 2);
        assert!(c.remove(b"age") && c.remove(b"name"));
        assert!(c.is_empty());
        assert_eq!(template::in_use(), 1);
        assert_eq!(a.get(b"age"), Some(&b"30"[..]), "the original is untouched");

        // A long value makes it an array; a field TTL takes it off templates.
        let mut d = b.clone();
        d.set(b"bio", &[b'x'; 100], &limits);
        assert_eq!(d.encoding_name(), "template-array");
        assert_eq!(d.get(b"bio").map(<[u8]>::len), Some(100));
        assert!(d.set_field_ttl(b"age", 1_000));
        assert_eq!(d.encoding_name(), "hashtable");
        let mut e = b.clone();
        assert!(e.set_field_ttl(b"age", 1_000));
        assert_eq!(e.encoding_name(), "listpackex");
        assert_eq!(e.len(), 3);
        drop((a, b, c, d, e));
        assert_eq!(template::template_hashes(), before);
        assert_eq!(template::in_use(), 0);
    }

    #[test]
    fn a_template_needs_distinct_fields_and_uses_an_array_past_the_limits() {
        let _alone = TEMPLATE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(Hash::from_template(&[b"a", b"b", b"a"], &[b"1", b"2", b"3"], &Limits::default()).unwrap_err(), b"a");
        let h = Hash::from_template(&[b"a", b"b", b"c"], &[b"1", b"2", b"3"], &limits(2, 64)).unwrap();
        assert_eq!(h.encoding_name(), "template-array");
        assert_eq!(h.get(b"c"), Some(&b"3"[..]));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, Vec<u8>),
        Remove(u8),
        Get(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let value = prop_oneof![proptest::collection::vec(any::<u8>(), 0..6), proptest::collection::vec(any::<u8>(), 20..40)];
        prop_oneof![
            4 => (0u8..24, value).prop_map(|(f, v)| Op::Set(f, v)),
            2 => (0u8..24).prop_map(Op::Remove),
            1 => (0u8..24).prop_map(Op::Get),
        ]
    }

    /// Field names: mostly short, some long enough to force a conversion.
    fn field(n: u8) -> Vec<u8> {
        if n % 11 == 10 {
            vec![b'F'; 10 + n as usize]
        } else {
            format!("f{n}").into_bytes()
        }
    }

    proptest! {
        #[test]
        fn hash_behaves_like_a_map(ops in proptest::collection::vec(op(), 0..120), entries in 0u64..12, value in 0u64..24) {
            let limits = limits(entries, value);
            let mut h = Hash::new();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            // Insertion order, which a listpack must keep.
            let mut order: Vec<Vec<u8>> = Vec::new();
            let mut converted = false;
            for op in ops {
                match op {
                    Op::Set(f, v) => {
                        let f = field(f);
                        let too_long = f.len() as u64 > value || v.len() as u64 > value;
                        let new = h.set(&f, &v, &limits);
                        prop_assert_eq!(new, model.insert(f.clone(), v).is_none());
                        if new {
                            order.push(f);
                        }
                        converted |= too_long || model.len() as u64 > entries;
                    }
                    Op::Remove(f) => {
                        let f = field(f);
                        prop_assert_eq!(h.remove(&f), model.remove(&f).is_some());
                        order.retain(|o| o != &f);
                    }
                    Op::Get(f) => {
                        let f = field(f);
                        prop_assert_eq!(h.get(&f), model.get(&f).map(|v| v.as_slice()));
                    }
                }
                h.check_invariants();
                prop_assert_eq!(h.len(), model.len());
                prop_assert_eq!(h.encoding_name(), if converted { "hashtable" } else { "listpack" });
                let pairs: BTreeMap<Vec<u8>, Vec<u8>> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
                prop_assert_eq!(&pairs, &model);
                if h.is_listpack() {
                    let fields: Vec<Vec<u8>> = h.iter().map(|(f, _)| f.to_vec()).collect();
                    prop_assert_eq!(&fields, &order);
                }
                let copy = h.clone();
                prop_assert_eq!(&copy, &h);
                prop_assert_eq!(copy.encoding_name(), h.encoding_name());
            }
        }

        #[test]
        fn a_templated_hash_behaves_like_a_map(start in proptest::collection::btree_map(0u8..24, proptest::collection::vec(any::<u8>(), 0..30), 1..10), ops in proptest::collection::vec(op(), 0..80), entries in 0u64..12, value in 0u64..24) {
            let _alone = TEMPLATE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
            let limits = limits(entries, value);
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = start.iter().map(|(&f, v)| (field(f), v.clone())).collect();
            let fields: Vec<&[u8]> = model.keys().map(|f| &f[..]).collect();
            let values: Vec<&[u8]> = model.values().map(|v| &v[..]).collect();
            let mut h = Hash::from_template(&fields, &values, &limits).unwrap();
            let mut array = h.encoding_name() == "template-array";
            prop_assert_eq!(array, model.len() as u64 > entries || model.values().any(|v| v.len() as u64 > value));
            let mut ttl = false;
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Set(f, v) => {
                        let f = field(f);
                        array |= v.len() as u64 > value || f.len() as u64 > value || (model.len() + usize::from(!model.contains_key(&f))) as u64 > entries;
                        prop_assert_eq!(h.set(&f, &v, &limits), model.insert(f, v).is_none());
                    }
                    Op::Remove(f) => {
                        let f = field(f);
                        prop_assert_eq!(h.remove(&f), model.remove(&f).is_some());
                    }
                    Op::Get(f) => {
                        let f = field(f);
                        prop_assert_eq!(h.get(&f), model.get(&f).map(|v| v.as_slice()));
                        // Now and then a field TTL: the hash leaves its template for good.
                        if i % 17 == 16 && h.contains(&f) {
                            h.set_field_ttl(&f, u64::MAX);
                            ttl = true;
                        }
                    }
                }
                h.check_invariants();
                prop_assert_eq!(h.len(), model.len());
                let pairs: BTreeMap<Vec<u8>, Vec<u8>> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
                prop_assert_eq!(&pairs, &model);
                if model.is_empty() {
                    // An emptied hash is deleted with its key; this one starts over plain.
                    ttl = true;
                    continue;
                }
                if !ttl {
                    prop_assert_eq!(h.encoding_name(), if array { "template-array" } else { "template-listpack" });
                    // Template order: shortest name first, then bytewise.
                    let names: Vec<&[u8]> = h.iter().map(|(f, _)| f).collect();
                    prop_assert!(names.windows(2).all(|w| template::order(w[0], w[1]).is_lt()));
                }
                let copy = h.clone();
                prop_assert_eq!(&copy, &h);
                prop_assert_eq!(copy.encoding_name(), h.encoding_name());
            }
        }
    }
}
