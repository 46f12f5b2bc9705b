//! Twelve bytes that hold a small hash, set or sorted set whole: its listpack itself, a second
//! compact form in place (a set's intset), or a box of its other encodings. So the collection
//! lives in its key's [`crate::Value`] beside the value's tag, and a small one costs its key's
//! node and one allocation, its buffer's.
//!
//! The kind is in the low bits of the first word, where the listpack's pointer is: listpack
//! allocations are 8-aligned (`listpack::ALIGN`) and an empty listpack's pointer is null, so
//! a listpack's pointer has neither [`BOXED`] nor [`IN_PLACE`]; a box's address has
//! [`BOXED`]; an [`InPlace`] value keeps [`IN_PLACE`] in its own first word.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;

use crate::listpack::{self, Listpack};

/// The first word's low bits: a box.
const BOXED: usize = 0b01;
/// The first word's low bits: an [`InPlace`] value.
pub(crate) const IN_PLACE: usize = 0b10;
/// Both.
const KINDS: usize = BOXED | IN_PLACE;

/// A value a [`Packed`] may hold in place beside a listpack.
///
/// # Safety
///
/// An implementor is twelve bytes, at most 4-aligned, and its first eight bytes are a word
/// whose low bits are always exactly [`IN_PLACE`] (an address of an allocation aligned to
/// at least 4, tagged), whatever its methods do to it.
pub unsafe trait InPlace {}

/// No second kind (a hash's, a sorted set's).
#[derive(Clone)]
pub enum Never {}

// SAFETY: never made, so never held.
unsafe impl InPlace for Never {}

/// A listpack, an `R` in place, or a `Box<T>`.
#[repr(transparent)]
pub struct Packed<T, R: InPlace = Never> {
    /// A listpack; or, with [`BOXED`], only the box's address (never used or dropped as a
    /// listpack); or, with [`IN_PLACE`], the bytes of an `R`.
    lp: ManuallyDrop<Listpack>,
    _owns: PhantomData<(Box<T>, R)>,
}

/// What a [`Packed`] without a second kind holds, to read.
pub enum PackedRef<'a, T> {
    Listpack(&'a Listpack),
    Boxed(&'a T),
}

/// What a [`Packed`] without a second kind holds, to change.
pub enum PackedMut<'a, T> {
    Listpack(&'a mut Listpack),
    Boxed(&'a mut T),
}

/// What a [`Packed`] holds, to read.
pub enum Kind<'a, T, R> {
    Listpack(&'a Listpack),
    InPlace(&'a R),
    Boxed(&'a T),
}

/// What a [`Packed`] holds, to change.
pub enum KindMut<'a, T, R> {
    Listpack(&'a mut Listpack),
    InPlace(&'a mut R),
    Boxed(&'a mut T),
}

// SAFETY: a `Packed` owns its listpack, its `R` or its box outright, as a `Listpack`, an `R`
// or a `Box<T>` would.
unsafe impl<T: Send, R: InPlace + Send> Send for Packed<T, R> {}
// SAFETY: as above; `&Packed` only reads.
unsafe impl<T: Sync, R: InPlace + Sync> Sync for Packed<T, R> {}

impl<T, R: InPlace> Packed<T, R> {
    const ALIGNED: () = assert!(std::mem::align_of::<T>() > KINDS && listpack::ALIGN > KINDS);
    const SHAPED: () = assert!(std::mem::size_of::<R>() == std::mem::size_of::<Listpack>() || std::mem::size_of::<R>() == 0);

    pub fn listpack(lp: Listpack) -> Self {
        Packed { lp: ManuallyDrop::new(lp), _owns: PhantomData }
    }

    pub fn boxed(value: Box<T>) -> Self {
        let () = Self::ALIGNED;
        let address = Box::into_raw(value) as usize | BOXED;
        Packed { lp: ManuallyDrop::new(Listpack::holding(address)), _owns: PhantomData }
    }

    pub fn in_place(value: R) -> Self {
        let () = Self::SHAPED;
        let value = ManuallyDrop::new(value);
        // SAFETY: `R` is twelve bytes (`InPlace`); its bytes move here, and it is dropped
        // only as an `R` (see `Drop`), never as a listpack.
        let lp = unsafe { std::mem::transmute_copy::<ManuallyDrop<R>, ManuallyDrop<Listpack>>(&value) };
        Packed { lp, _owns: PhantomData }
    }

    fn kind_bits(&self) -> usize {
        self.lp.address() & KINDS
    }

    fn boxed_ptr(&self) -> *mut T {
        (self.lp.address() & !KINDS) as *mut T
    }

    /// What this holds (a set's intset included).
    pub fn kind(&self) -> Kind<'_, T, R> {
        match self.kind_bits() {
            // SAFETY: the address of a box this value owns (see `boxed`).
            BOXED => Kind::Boxed(unsafe { &*self.boxed_ptr() }),
            // SAFETY: these bytes are an `R` (see `in_place`), 4-aligned like the listpack.
            IN_PLACE => Kind::InPlace(unsafe { &*(&*self.lp as *const Listpack as *const R) }),
            _ => Kind::Listpack(&self.lp),
        }
    }

    pub fn kind_mut(&mut self) -> KindMut<'_, T, R> {
        match self.kind_bits() {
            // SAFETY: as in `kind`; `&mut self` makes the borrow unique.
            BOXED => KindMut::Boxed(unsafe { &mut *self.boxed_ptr() }),
            // SAFETY: as in `kind`; an `R` keeps its tag whatever it does (`InPlace`).
            IN_PLACE => KindMut::InPlace(unsafe { &mut *(&mut *self.lp as *mut Listpack as *mut R) }),
            // A listpack lent out stays one: whatever it reallocates to is 8-aligned.
            _ => KindMut::Listpack(&mut self.lp),
        }
    }

    /// The listpack or the box ([`Packed::kind`] for a `Packed` without a second kind).
    pub fn get(&self) -> PackedRef<'_, T> {
        match self.kind() {
            Kind::Listpack(lp) => PackedRef::Listpack(lp),
            Kind::Boxed(value) => PackedRef::Boxed(value),
            Kind::InPlace(_) => unreachable!("get is for a Packed without a second kind"),
        }
    }

    pub fn get_mut(&mut self) -> PackedMut<'_, T> {
        match self.kind_mut() {
            KindMut::Listpack(lp) => PackedMut::Listpack(lp),
            KindMut::Boxed(value) => PackedMut::Boxed(value),
            KindMut::InPlace(_) => unreachable!("get_mut is for a Packed without a second kind"),
        }
    }

    /// Bytes of the box (0 for a listpack or an `R`, which live in the value itself), for
    /// MEMORY USAGE.
    pub fn box_bytes(&self) -> usize {
        if self.kind_bits() == BOXED {
            std::mem::size_of::<T>()
        } else {
            0
        }
    }

    /// Prefetches what [`Packed::kind`] reads first: the listpack's entries, the `R`'s
    /// allocation, or the box.
    #[inline]
    pub fn prefetch(&self) {
        let address = self.lp.address() & !KINDS;
        if address != 0 {
            crate::prefetch::read(address as *const u8);
        }
    }
}

impl<T, R: InPlace> Drop for Packed<T, R> {
    fn drop(&mut self) {
        match self.kind_bits() {
            // SAFETY: made by `Box::into_raw` in `boxed`, dropped once, here.
            BOXED => drop(unsafe { Box::from_raw(self.boxed_ptr()) }),
            // SAFETY: an `R` this value owns (see `in_place`), dropped once, here.
            IN_PLACE => unsafe { std::ptr::drop_in_place(&mut *self.lp as *mut Listpack as *mut R) },
            // SAFETY: a listpack this value owns, dropped once, here.
            _ => unsafe { ManuallyDrop::drop(&mut self.lp) },
        }
    }
}

impl<T: Clone, R: InPlace + Clone> Clone for Packed<T, R> {
    fn clone(&self) -> Self {
        match self.kind() {
            Kind::Listpack(lp) => Packed::listpack(lp.clone()),
            Kind::InPlace(value) => Packed::in_place(value.clone()),
            Kind::Boxed(value) => Packed::boxed(Box::new(value.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_bytes_beside_a_value_s_tag() {
        assert_eq!(std::mem::size_of::<Packed<Vec<u8>>>(), 12);
        assert_eq!(std::mem::align_of::<Packed<Vec<u8>>>(), 4);
    }

    #[test]
    fn holds_a_listpack_or_a_box_and_frees_either() {
        let mut lp = Listpack::new();
        let mut packed: Packed<Vec<u8>> = Packed::listpack(Listpack::new());
        assert!(matches!(packed.get(), PackedRef::Listpack(lp) if lp.is_empty()));
        for i in 0..100 {
            lp.push_back(format!("entry {i}").as_bytes());
            let PackedMut::Listpack(held) = packed.get_mut() else { panic!("a listpack") };
            held.push_back(format!("entry {i}").as_bytes());
        }
        assert!(matches!(packed.get(), PackedRef::Listpack(held) if *held == lp));
        let copy = packed.clone();
        packed = Packed::boxed(Box::new(vec![1, 2, 3]));
        let PackedMut::Boxed(v) = packed.get_mut() else { panic!("a box") };
        v.push(4);
        assert!(matches!(packed.get(), PackedRef::Boxed(v) if *v == [1, 2, 3, 4]));
        assert!(matches!(copy.get(), PackedRef::Listpack(held) if held.len() == 100));
        assert!(matches!(packed.clone().get(), PackedRef::Boxed(v) if v.len() == 4));
    }
}
