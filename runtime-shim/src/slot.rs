//! The slot of a hot function: an atomic pointer to the newest body, or null for the original.

use std::sync::atomic::{AtomicPtr, Ordering};

/// Where a hot function's dispatcher finds the body to call.
///
/// Null until the first patch that contains the function is applied; then the address of that
/// patch's exported body. The generated code gives every slot a stable exported name
/// (`__hotswap_slot$<module path>::<name>`), so the copy of the dispatcher in every patch reaches
/// the host's one slot through ELF interposition: even old code still running calls the newest
/// version.
#[derive(Debug)]
pub struct Slot {
    body: AtomicPtr<()>,
}

impl Slot {
    /// An empty slot: calls go to the body compiled into the host.
    #[expect(
        clippy::new_without_default,
        reason = "used in `static` items, where only a const fn serves"
    )]
    pub const fn new() -> Self {
        Self {
            body: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The newest patched body, if any (an `Acquire` load, pairing with [`Slot::set`]).
    #[inline(always)]
    pub fn get(&self) -> Option<*const ()> {
        let body = self.body.load(Ordering::Acquire);
        (!body.is_null()).then_some(body.cast_const())
    }

    /// Points the slot at a new body (a `Release` store): calls that start after this see it,
    /// calls in flight finish on the body they loaded.
    ///
    /// # Safety
    ///
    /// `body` must be the address of a function with exactly the signature of the hot function
    /// this slot belongs to, in code that stays mapped for the rest of the process.
    pub unsafe fn set(&self, body: *const ()) {
        self.body.store(body.cast_mut(), Ordering::Release);
    }
}
