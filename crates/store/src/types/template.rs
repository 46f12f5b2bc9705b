//! Field-name templates (Redis 8.10's compact hashes): one shared, immutable, sorted copy of
//! a set of field names, so that hashes with the same fields keep only their values.
//!
//! A template's names are sorted shortest first, then bytewise ([`order`]), as Redis's are,
//! so a hash built on one iterates in that order and finds a field by binary search.
//!
//! Each core interns its templates in its own registry ([`intern`]): the same names give the
//! same [`Arc`], whatever order they came in. A hash holds its template by that `Arc`, so a
//! hash moved to another core or freed on the lazy-free thread needs no registry; the
//! registry drops a template once it holds the last reference ([`in_use`] sweeps).

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

/// Shortest first, then bytewise: a template's order.
pub fn order(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A set of field names, sorted by [`order`], no name twice.
pub struct Template {
    names: Box<[Box<[u8]>]>,
}

impl Template {
    pub fn names(&self) -> &[Box<[u8]>] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The index of `field`, if the template has it.
    pub fn index_of(&self, field: &[u8]) -> Option<usize> {
        self.names.binary_search_by(|name| order(name, field)).ok()
    }
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names.iter().map(|n| n.escape_ascii().to_string())).finish()
    }
}

/// The hash of sorted names, the registry's key.
fn names_hash<'a>(sorted: impl Iterator<Item = &'a [u8]>) -> u64 {
    let mut hasher = foldhash::fast::FixedState::with_seed(0x7e3a).build_hasher();
    for name in sorted {
        hasher.write_usize(name.len());
        hasher.write(name);
    }
    hasher.finish()
}

/// A core's templates by the hash of their names, and how many it holds.
#[derive(Default)]
struct Registry {
    by_hash: HashMap<u64, Vec<Arc<Template>>>,
    len: usize,
    /// `len` after the last sweep: the next comes once it doubled (see [`intern`]).
    swept_len: usize,
}

impl Registry {
    /// Drops the templates no hash uses.
    fn sweep(&mut self) {
        self.by_hash.retain(|_, bucket| {
            bucket.retain(|t| Arc::strong_count(t) > 1);
            !bucket.is_empty()
        });
        self.len = self.by_hash.values().map(Vec::len).sum();
        self.swept_len = self.len;
    }
}

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

/// The template of `sorted` (distinct names, sorted by [`order`]) on this core: the one
/// already interned, or a new one. Every time the registry doubles, it drops the templates
/// nobody uses (a hash whose fields change leaves one behind per change), so it stays
/// within twice the templates in use, plus a few.
pub fn intern(sorted: &[&[u8]]) -> Arc<Template> {
    debug_assert!(sorted.windows(2).all(|w| order(w[0], w[1]) == Ordering::Less), "names are sorted and distinct");
    let hash = names_hash(sorted.iter().copied());
    REGISTRY.with(|registry| {
        let mut registry = registry.borrow_mut();
        if let Some(found) = registry
            .by_hash
            .get(&hash)
            .and_then(|bucket| bucket.iter().find(|t| t.names.len() == sorted.len() && t.names.iter().zip(sorted).all(|(a, b)| **a == **b)))
        {
            return found.clone();
        }
        if registry.len >= 2 * registry.swept_len + 64 {
            registry.sweep();
        }
        let template = Arc::new(Template { names: sorted.iter().map(|n| Box::<[u8]>::from(*n)).collect() });
        registry.by_hash.entry(hash).or_default().push(template.clone());
        registry.len += 1;
        template
    })
}

/// Drops this core's templates that no hash uses any more, and returns how many are left
/// (INFO's `hash_templates`).
pub fn in_use() -> usize {
    REGISTRY.with(|registry| {
        let mut registry = registry.borrow_mut();
        registry.sweep();
        registry.len
    })
}

/// Hashes of this process encoded on a template (INFO's `hash_template_keys`).
static TEMPLATE_HASHES: AtomicUsize = AtomicUsize::new(0);

pub fn template_hashes() -> usize {
    TEMPLATE_HASHES.load(AtomicOrdering::Relaxed)
}

/// A hash's hold on a template: counted in [`template_hashes`] while it lives.
pub(crate) struct Held(pub(crate) Arc<Template>);

impl Held {
    pub(crate) fn new(template: Arc<Template>) -> Held {
        TEMPLATE_HASHES.fetch_add(1, AtomicOrdering::Relaxed);
        Held(template)
    }
}

impl Clone for Held {
    fn clone(&self) -> Self {
        Held::new(self.0.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        TEMPLATE_HASHES.fetch_sub(1, AtomicOrdering::Relaxed);
    }
}

impl std::ops::Deref for Held {
    type Target = Template;
    fn deref(&self) -> &Template {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sorts `names` into template order; Err(name) when a name repeats.
    fn sorted<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<&'a [u8]>, &'a [u8]> {
        let mut names: Vec<&[u8]> = names.into_iter().collect();
        names.sort_unstable_by(|a, b| order(a, b));
        match names.windows(2).find(|w| w[0] == w[1]) {
            Some(pair) => Err(pair[0]),
            None => Ok(names),
        }
    }

    #[test]
    fn names_sort_shortest_first_then_bytewise() {
        let names = sorted([&b"email"[..], b"age", b"name", b"b", b"a"]).unwrap();
        assert_eq!(names, [&b"a"[..], b"b", b"age", b"name", b"email"]);
        assert_eq!(sorted([&b"x"[..], b"y", b"x"]), Err(&b"x"[..]));
    }

    #[test]
    fn the_same_names_intern_to_one_template_whatever_their_order() {
        let a = intern(&sorted([&b"zeta"[..], b"alpha", b"mu"]).unwrap());
        let b = intern(&sorted([&b"mu"[..], b"zeta", b"alpha"]).unwrap());
        assert!(Arc::ptr_eq(&a, &b));
        let c = intern(&sorted([&b"mu"[..], b"zeta"]).unwrap());
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.index_of(b"mu"), Some(0));
        assert_eq!(a.index_of(b"zeta"), Some(1));
        assert_eq!(a.index_of(b"alpha"), Some(2));
        assert_eq!(a.index_of(b"nu"), None);
        // Held by this test and the registry: in use; once dropped, swept.
        let before = in_use();
        assert!(before >= 2);
        drop((a, b, c));
        assert_eq!(in_use(), before - 2);
    }

    #[test]
    fn the_registry_drops_unused_templates_as_it_grows() {
        let kept = intern(&[b"kept"]);
        for i in 0..10_000u32 {
            let name = i.to_be_bytes();
            drop(intern(&[&name[..]]));
            let len = REGISTRY.with(|r| r.borrow().len);
            assert!(len <= 2 * 2 + 64 + 1, "{len} templates after {i}");
        }
        assert_eq!(in_use(), 1);
        assert!(Arc::ptr_eq(&kept, &intern(&[b"kept"])));
    }
}
