//! Twelve bytes that hold a small hash or sorted set whole: its listpack itself, or a box of
//! its other encodings. So the collection lives in its key's [`crate::Value`] beside the
//! value's tag, and a small one costs its key's node and one allocation, the listpack's.
//!
//! The box's address is kept where the listpack's pointer is, with its low bit set: listpack
//! allocations are 8-aligned (`listpack::ALIGN`) and an empty listpack's pointer is null, so
//! a listpack's pointer never has that bit.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;

use crate::listpack::{self, Listpack};

/// The low bit of the address: a box, not a listpack.
const BOXED: usize = 1;

/// A listpack, or a `Box<T>`.
#[repr(transparent)]
pub struct Packed<T> {
    /// A listpack; or, when its address has [`BOXED`], only the box's address (never used
    /// as a listpack, never dropped as one).
    lp: ManuallyDrop<Listpack>,
    _owns: PhantomData<Box<T>>,
}

/// What a [`Packed`] holds, to read.
pub enum PackedRef<'a, T> {
    Listpack(&'a Listpack),
    Boxed(&'a T),
}

/// What a [`Packed`] holds, to change.
pub enum PackedMut<'a, T> {
    Listpack(&'a mut Listpack),
    Boxed(&'a mut T),
}

// SAFETY: a `Packed<T>` owns its listpack or its box outright, as a `Listpack` or a `Box<T>`
// would.
unsafe impl<T: Send> Send for Packed<T> {}
// SAFETY: as above; `&Packed<T>` only reads.
unsafe impl<T: Sync> Sync for Packed<T> {}

impl<T> Packed<T> {
    const ALIGNED: () = assert!(std::mem::align_of::<T>() > BOXED && listpack::ALIGN > BOXED);

    pub fn listpack(lp: Listpack) -> Packed<T> {
        Packed { lp: ManuallyDrop::new(lp), _owns: PhantomData }
    }

    pub fn boxed(value: Box<T>) -> Packed<T> {
        let () = Self::ALIGNED;
        let address = Box::into_raw(value) as usize | BOXED;
        Packed { lp: ManuallyDrop::new(Listpack::holding(address)), _owns: PhantomData }
    }

    fn boxed_ptr(&self) -> Option<*mut T> {
        let address = self.lp.address();
        (address & BOXED != 0).then_some((address & !BOXED) as *mut T)
    }

    pub fn get(&self) -> PackedRef<'_, T> {
        match self.boxed_ptr() {
            // SAFETY: the address of a box this value owns (see `boxed`).
            Some(ptr) => PackedRef::Boxed(unsafe { &*ptr }),
            None => PackedRef::Listpack(&self.lp),
        }
    }

    pub fn get_mut(&mut self) -> PackedMut<'_, T> {
        match self.boxed_ptr() {
            // SAFETY: as in `get`; `&mut self` makes the borrow unique. A listpack lent out
            // stays one: whatever it reallocates to is 8-aligned.
            Some(ptr) => PackedMut::Boxed(unsafe { &mut *ptr }),
            None => PackedMut::Listpack(&mut self.lp),
        }
    }

    /// Bytes of the box (0 for a listpack, which lives in the value itself), for MEMORY USAGE.
    pub fn box_bytes(&self) -> usize {
        if self.boxed_ptr().is_some() {
            std::mem::size_of::<T>()
        } else {
            0
        }
    }

    /// Prefetches what [`Packed::get`] reads first: the listpack's entries or the box.
    #[inline]
    pub fn prefetch(&self) {
        match self.boxed_ptr() {
            Some(ptr) => crate::prefetch::read(ptr as *const u8),
            None => self.lp.prefetch(),
        }
    }
}

impl<T> Drop for Packed<T> {
    fn drop(&mut self) {
        match self.boxed_ptr() {
            // SAFETY: made by `Box::into_raw` in `boxed`, dropped once, here.
            Some(ptr) => drop(unsafe { Box::from_raw(ptr) }),
            // SAFETY: a listpack this value owns, dropped once, here.
            None => unsafe { ManuallyDrop::drop(&mut self.lp) },
        }
    }
}

impl<T: Clone> Clone for Packed<T> {
    fn clone(&self) -> Self {
        match self.get() {
            PackedRef::Listpack(lp) => Packed::listpack(lp.clone()),
            PackedRef::Boxed(value) => Packed::boxed(Box::new(value.clone())),
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
