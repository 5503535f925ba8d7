//! The slot of a hot function: an atomic pointer to the newest body, or null for the original.

use std::sync::atomic::{AtomicPtr, Ordering};

/// Where a hot function's dispatcher finds the body to call.
///
/// Null until the first patch that contains the function is applied; then the address of that
/// patch's exported body. The generated code gives every slot a stable exported name
/// (`__hotswap_slot$<module path>::<name>`), so the copy of the dispatcher in every patch reaches
/// the host's one slot through ELF interposition: even old code still running calls the newest
/// version.
///
/// A body is *on probation* from the moment a patch stores it until its first call returns: the
/// dispatcher then runs the call under `catch_unwind`, so that a panic can roll the patch back
/// (see `hotswap::set_rollback`). The slot remembers which body is on probation, so that the
/// first call of an older body (one a thread loaded before the newest patch) cannot end the
/// newest body's probation.
#[derive(Debug)]
pub struct Slot {
    body: AtomicPtr<()>,
    /// The body on probation, or null.
    probation: AtomicPtr<()>,
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
            probation: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The newest patched body, if any (one `Acquire` load, pairing with [`Slot::set`]).
    #[inline(always)]
    pub fn get(&self) -> Option<*const ()> {
        let body = self.body.load(Ordering::Acquire);
        (!body.is_null()).then_some(body.cast_const())
    }

    /// Whether `body` (returned by [`Slot::get`]) has not yet completed a call.
    ///
    /// A `Relaxed` load: the agent marks the body before its `Release` store of it, so a caller
    /// that saw the new body also sees the mark.
    #[inline(always)]
    pub fn on_probation(&self, body: *const ()) -> bool {
        std::ptr::eq(self.probation.load(Ordering::Relaxed), body)
    }

    /// Ends the probation of `body`, if it is the one on probation: it completed a call.
    pub fn end_probation(&self, body: *const ()) {
        let _ = self.probation.compare_exchange(
            body.cast_mut(),
            std::ptr::null_mut(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
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

    /// Points the slot at `body`, puts it on probation, and returns the previous value (null for
    /// the host's own body).
    ///
    /// # Safety
    ///
    /// As for [`Slot::set`].
    #[cfg(target_os = "linux")]
    pub(crate) unsafe fn replace(&self, body: *const ()) -> *const () {
        self.probation.store(body.cast_mut(), Ordering::Relaxed);
        self.body
            .swap(body.cast_mut(), Ordering::AcqRel)
            .cast_const()
    }

    /// Points the slot back at `old` if it still holds `new`; returns whether it did. Ends the
    /// probation of `new` either way.
    ///
    /// # Safety
    ///
    /// `old` must be null or satisfy the contract of [`Slot::set`].
    #[cfg(target_os = "linux")]
    pub(crate) unsafe fn restore(&self, new: *const (), old: *const ()) -> bool {
        let restored = self
            .body
            .compare_exchange(
                new.cast_mut(),
                old.cast_mut(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        self.end_probation(new);
        restored
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn older() {}
    fn newer() {}

    #[test]
    fn an_older_bodys_first_call_keeps_the_newer_body_on_probation() {
        static SLOT: Slot = Slot::new();
        let (older, newer) = (older as *const (), newer as *const ());
        // SAFETY: both are functions of the slot's (unit) signature, in this test's code.
        unsafe {
            SLOT.replace(older);
            SLOT.replace(newer);
        }
        // A thread that loaded `older` before the second patch completes its first call.
        SLOT.end_probation(older);
        assert!(
            SLOT.on_probation(newer),
            "the newer body is still on probation"
        );
        assert!(!SLOT.on_probation(older));
        SLOT.end_probation(newer);
        assert!(!SLOT.on_probation(newer));
    }
}
