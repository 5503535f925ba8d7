//! Changes to the slot table: applying a loaded patch (at once, or at the program's next safe
//! point), the history of what each patch replaced, and the rollback of a patch whose new code
//! panics on its first call.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::control::{self, PatchInfo};
use crate::protocol::HostMessage;
use crate::slot::Slot;

/// One slot to point at a new body.
pub(crate) struct Swap {
    /// The host's slot (found through the host's dynamic symbol table).
    pub(crate) slot: &'static Slot,
    /// The new body, in a patch that is never unloaded.
    pub(crate) body: *const (),
}

/// A loaded patch, ready to be applied: every symbol was resolved, nothing was stored yet.
pub(crate) struct Batch {
    /// The slots to change.
    pub(crate) swaps: Vec<Swap>,
    /// Display names of the changed functions, for [`PatchInfo`].
    pub(crate) changed: Vec<String>,
}

// SAFETY: the raw pointers are addresses of functions in code that stays mapped for the whole
// process; they are data like any integer, valid on every thread.
unsafe impl Send for Batch {}

/// What one applied patch replaced, for its rollback.
struct Applied {
    /// `(slot, previous body or null, the patch's body)`.
    entries: Vec<(&'static Slot, *const (), *const ())>,
    /// Display names of the functions the patch changed.
    changed: Vec<String>,
}

// SAFETY: as for `Batch`: the pointers are addresses of code that is never unmapped.
unsafe impl Send for Applied {}

/// Every applied patch not rolled back, oldest first. Held while slots are stored, so that a
/// rollback never sees a half-applied patch.
static HISTORY: Mutex<Vec<Applied>> = Mutex::new(Vec::new());

/// The patch waiting for a safe point, and the generation it became once applied.
struct Queue {
    batch: Option<Batch>,
    applied: Option<u64>,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    batch: None,
    applied: None,
});
/// Signalled when a safe point applied the queued patch.
static APPLIED: Condvar = Condvar::new();
/// Whether a patch waits in [`QUEUE`]: the one load a safe point costs when none does.
static WAITING: AtomicBool = AtomicBool::new(false);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Applies `batch` now and runs the `on_patch` callbacks; returns the new generation.
pub(crate) fn apply_now(batch: Batch) -> u64 {
    let info = store(batch);
    control::run_callbacks(&info);
    info.generation
}

/// Queues `batch` for the next [`safepoint`] and waits up to `timeout` for it; returns the new
/// generation.
///
/// # Errors
///
/// When no safe point came in time; the patch is then withdrawn and nothing changed.
pub(crate) fn apply_at_safepoint(batch: Batch, timeout: Duration) -> Result<u64, String> {
    let mut queue = lock(&QUEUE);
    queue.batch = Some(batch);
    queue.applied = None;
    WAITING.store(true, Ordering::Release);
    let (mut queue, _) = APPLIED
        .wait_timeout_while(queue, timeout, |queue| queue.applied.is_none())
        .unwrap_or_else(PoisonError::into_inner);
    WAITING.store(false, Ordering::Release);
    // Decided under the lock: either a safe point applied it, or it is withdrawn here.
    match queue.applied.take() {
        Some(generation) => Ok(generation),
        None => {
            queue.batch = None;
            Err(format!(
                "the program did not call `hotswap::safepoint()` within {} s (apply mode \
                 `SafePoints`); the patch was withdrawn",
                timeout.as_secs()
            ))
        }
    }
}

/// Applies the patch waiting for a safe point, if any, on the calling thread.
#[inline(always)]
pub(crate) fn safepoint() {
    if WAITING.load(Ordering::Acquire) {
        apply_queued();
    }
}

#[cold]
fn apply_queued() {
    let mut queue = lock(&QUEUE);
    let Some(batch) = queue.batch.take() else {
        return;
    };
    let info = store(batch);
    queue.applied = Some(info.generation);
    APPLIED.notify_all();
    drop(queue);
    control::run_callbacks(&info);
}

/// Stores the new bodies, records what they replaced, and bumps the generation.
fn store(batch: Batch) -> PatchInfo {
    let mut history = lock(&HISTORY);
    let mut entries = Vec::with_capacity(batch.swaps.len());
    for swap in batch.swaps {
        // SAFETY: the agent resolved `body` as the exported body of the hot function this slot
        // belongs to, in a patch whose records the tool checked and which is never unloaded.
        let old = unsafe { swap.slot.replace(swap.body) };
        entries.push((swap.slot, old, swap.body));
    }
    let generation = crate::GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    history.push(Applied {
        entries,
        changed: batch.changed.clone(),
    });
    PatchInfo {
        generation,
        changed: batch.changed,
        rollback: false,
    }
}

/// Runs `call`, the first call of `body` through `slot` since a patch stored it, under
/// `catch_unwind`; on a panic, reports it and, with `rollback` (or [`control::set_rollback`]),
/// restores the code before that patch, then lets the panic continue.
pub fn first_call<R>(
    slot: &'static Slot,
    body: *const (),
    rollback: bool,
    function: &'static str,
    call: impl FnOnce() -> R,
) -> R {
    match std::panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(value) => {
            slot.end_probation(body);
            value
        }
        Err(payload) => {
            panicked(
                slot,
                body,
                rollback || control::rollback_enabled(),
                function,
                &*payload,
            );
            std::panic::resume_unwind(payload)
        }
    }
}

/// A hot `async fn`'s future, boxed as every version of its body returns it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The first future of `body`, a hot `async fn`'s body that a patch stored in `slot`: polled
/// under `catch_unwind` until it completes, so that a panic anywhere in it (before or after an
/// `.await`) is handled as [`first_call`] handles one. One more allocation, on this call only.
pub fn first_poll<'a, T: 'a>(
    slot: &'static Slot,
    body: *const (),
    rollback: bool,
    function: &'static str,
    future: BoxFuture<'a, T>,
) -> BoxFuture<'a, T> {
    Box::pin(FirstPoll {
        slot,
        body: body.addr(),
        rollback,
        function,
        future,
    })
}

/// See [`first_poll`].
struct FirstPoll<'a, T> {
    slot: &'static Slot,
    /// The body's address (a number, so that the future stays `Send`).
    body: usize,
    rollback: bool,
    function: &'static str,
    future: BoxFuture<'a, T>,
}

impl<T> Future for FirstPoll<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // Every field is `Unpin` (the inner future is boxed), so this is a plain `&mut`.
        let this = &mut *self;
        let body = std::ptr::without_provenance::<()>(this.body);
        match std::panic::catch_unwind(AssertUnwindSafe(|| this.future.as_mut().poll(cx))) {
            Ok(Poll::Ready(value)) => {
                this.slot.end_probation(body);
                Poll::Ready(value)
            }
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                panicked(
                    this.slot,
                    body,
                    this.rollback || control::rollback_enabled(),
                    this.function,
                    &*payload,
                );
                std::panic::resume_unwind(payload)
            }
        }
    }
}

/// Handles a panic in the first call of `body`.
#[cold]
fn panicked(
    slot: &'static Slot,
    body: *const (),
    rollback: bool,
    function: &str,
    payload: &(dyn Any + Send),
) {
    let reason = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    if !rollback {
        slot.end_probation(body);
        crate::agent::send(&HostMessage::Panicked {
            generation: crate::generation(),
            function: function.to_owned(),
            reason,
        });
        return;
    }
    let mut history = lock(&HISTORY);
    let Some(index) = history.iter().rposition(|applied| {
        applied
            .entries
            .iter()
            .any(|(s, _, new)| std::ptr::eq(*s, slot) && std::ptr::eq(*new, body))
    }) else {
        // Another thread's first call already rolled this patch back.
        slot.end_probation(body);
        return;
    };
    let applied = history.remove(index);
    for (slot, old, new) in &applied.entries {
        // SAFETY: `old` is what this slot held before the patch: null, the host's body, or a
        // body from an earlier patch, which is never unloaded.
        unsafe { slot.restore(*new, *old) };
    }
    let generation = crate::GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    drop(history);
    crate::agent::send(&HostMessage::RolledBack {
        generation,
        function: function.to_owned(),
        reason,
    });
    control::run_callbacks(&PatchInfo {
        generation,
        changed: applied.changed,
        rollback: true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    static SLOT: Slot = Slot::new();

    fn one() -> u32 {
        1
    }

    fn two() -> u32 {
        2
    }

    fn batch(body: fn() -> u32) -> Batch {
        Batch {
            swaps: vec![Swap {
                slot: &SLOT,
                body: body as *const (),
            }],
            changed: vec!["f".to_owned()],
        }
    }

    /// One test, because the table is global: immediate apply, a safe point, a rollback and a
    /// withdrawn patch, in sequence.
    #[test]
    fn patches_apply_at_once_or_at_a_safepoint_and_roll_back_on_a_first_call_panic() {
        let start = crate::generation();
        assert_eq!(apply_now(batch(one)), start + 1);
        assert_eq!(SLOT.get(), Some(one as *const ()));
        assert!(SLOT.on_probation(one as *const ()));
        assert_eq!(first_call(&SLOT, one as *const (), true, "t::f", one), 1);
        assert!(
            !SLOT.on_probation(one as *const ()),
            "a returned first call ends the probation"
        );

        let waiting =
            std::thread::spawn(|| apply_at_safepoint(batch(two), Duration::from_secs(20)));
        while !WAITING.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        assert_eq!(
            SLOT.get(),
            Some(one as *const ()),
            "applied before a safe point"
        );
        safepoint();
        assert_eq!(waiting.join().unwrap(), Ok(start + 2));
        assert_eq!(SLOT.get(), Some(two as *const ()));

        let panicked = std::panic::catch_unwind(|| {
            first_call(&SLOT, two as *const (), true, "t::f", || -> u32 {
                panic!("boom")
            })
        });
        assert!(panicked.is_err(), "the panic continues to the caller");
        assert_eq!(SLOT.get(), Some(one as *const ()), "not rolled back");
        assert_eq!(crate::generation(), start + 3);
        assert!(!SLOT.on_probation(two as *const ()));

        let withdrawn = apply_at_safepoint(batch(two), Duration::from_millis(20)).unwrap_err();
        assert!(withdrawn.contains("withdrawn"), "{withdrawn}");
        safepoint();
        assert_eq!(
            SLOT.get(),
            Some(one as *const ()),
            "a withdrawn patch applied"
        );
        assert_eq!(crate::generation(), start + 3);
    }
}
