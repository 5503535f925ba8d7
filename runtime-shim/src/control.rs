//! What the program decides about patches: when they are applied ([`ApplyMode`],
//! [`safepoint`]), what runs after one ([`on_patch`]), and whether a panic on the first call of
//! new code restores the previous code ([`set_rollback`]).
//!
//! Every function here exists in every build. Without cargo-hotswap they do nothing that shows:
//! [`safepoint`] is one atomic load and [`on_patch`] keeps a callback that is never called, so a
//! program calls them unconditionally.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// When the agent applies a patch it has loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApplyMode {
    /// As soon as the patch is loaded, from the agent's thread (the default). Calls that start
    /// afterwards run the new code; calls in flight finish on the old code. A game loop may see
    /// one frame run partly old and partly new code.
    #[default]
    Immediate,
    /// At the next [`safepoint`] call of any thread of the program. The agent loads the patch,
    /// then waits (up to 20 seconds) for a safe point to swap the slots; if none comes, the
    /// patch is not applied and the tool says so. Suits loop-shaped programs (game loops,
    /// frame-based simulations, request loops) that call [`safepoint`] between iterations, so
    /// that each iteration runs wholly old or wholly new code.
    SafePoints,
}

/// The program's apply mode: 0 immediate, 1 at safe points.
static MODE: AtomicU8 = AtomicU8::new(0);
/// Whether a panic on the first call of patched code rolls back every hot function.
static ROLLBACK: AtomicBool = AtomicBool::new(false);

/// Chooses when patches are applied; call it early in `main`, before the first edit.
///
/// ```
/// hotswap::set_apply_mode(hotswap::ApplyMode::SafePoints);
/// loop {
///     hotswap::safepoint(); // a patch that arrived during the last frame takes effect here
///     // update, render ...
///     # break;
/// }
/// ```
pub fn set_apply_mode(mode: ApplyMode) {
    let value = match mode {
        ApplyMode::Immediate => 0,
        ApplyMode::SafePoints => 1,
    };
    MODE.store(value, Ordering::Release);
}

/// The mode chosen with [`set_apply_mode`] ([`ApplyMode::Immediate`] unless changed).
pub fn apply_mode() -> ApplyMode {
    match MODE.load(Ordering::Acquire) {
        0 => ApplyMode::Immediate,
        _ => ApplyMode::SafePoints,
    }
}

/// A point where the program is ready for new code: in [`ApplyMode::SafePoints`], a patch the
/// agent has loaded is applied here, by the calling thread, and the [`on_patch`] callbacks run
/// on it before `safepoint` returns.
///
/// Costs one atomic load when no patch is waiting (always so without cargo-hotswap).
/// In [`ApplyMode::Immediate`] it only returns.
#[inline(always)]
pub fn safepoint() {
    #[cfg(target_os = "linux")]
    crate::table::safepoint();
}

/// Enables or disables rollback for every hot function: when patched code panics on its first
/// call, the slots that its patch changed are pointed back at the code before it, the panic
/// continues (the caller sees it, as it would without cargo-hotswap), and the tool prints
/// `Rolled back`. `#[hot(rollback)]` enables it for one function (or one `impl` block).
///
/// Without rollback, such a panic is reported too, and the new code stays. Only the first call
/// of each new body is watched, so the cost is paid once per patch. Rollback needs unwinding:
/// with `panic = "abort"` the process ends at the panic, whatever this setting says.
pub fn set_rollback(enabled: bool) {
    ROLLBACK.store(enabled, Ordering::Release);
}

/// Whether [`set_rollback`] enabled rollback for every hot function.
pub fn rollback_enabled() -> bool {
    ROLLBACK.load(Ordering::Acquire)
}

/// What changed in a patch or rollback, as given to [`on_patch`] callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PatchInfo {
    /// The [`generation`](crate::generation) after the change.
    pub generation: u64,
    /// The functions whose code changed, as the tool names them (without the crate's name:
    /// `physics::step`, `World::render`); for a rollback, those of the patch that was undone.
    pub changed: Vec<String>,
    /// Whether this is a rollback to the previous code rather than a patch.
    pub rollback: bool,
}

/// A registered [`on_patch`] callback.
#[cfg(target_os = "linux")]
type Callback = std::sync::Arc<dyn Fn(&PatchInfo) + Send + Sync>;

/// The callbacks registered with [`on_patch`], in order.
#[cfg(target_os = "linux")]
static CALLBACKS: std::sync::Mutex<Vec<Callback>> = std::sync::Mutex::new(Vec::new());

/// Registers `callback` to run in this process after every applied patch and every rollback,
/// with the list of changed functions. Callbacks run in registration order, on the agent's
/// thread in [`ApplyMode::Immediate`] and on the thread calling [`safepoint`] in
/// [`ApplyMode::SafePoints`], after the slots point at the new code. A panicking callback is
/// reported on stderr and does not stop the others.
///
/// ```
/// hotswap::on_patch(|info| {
///     eprintln!("generation {}: {}", info.generation, info.changed.join(", "));
/// });
/// ```
///
/// Without cargo-hotswap, the callback is kept and never called: there will be no patch.
pub fn on_patch(callback: impl Fn(&PatchInfo) + Send + Sync + 'static) {
    #[cfg(target_os = "linux")]
    CALLBACKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(std::sync::Arc::new(callback));
    #[cfg(not(target_os = "linux"))]
    drop(callback);
}

/// Runs every [`on_patch`] callback with `info`, outside the lock, so a callback may register
/// another.
#[cfg(target_os = "linux")]
pub(crate) fn run_callbacks(info: &PatchInfo) {
    let callbacks = CALLBACKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for callback in &callbacks {
        let call = std::panic::AssertUnwindSafe(|| callback(info));
        if std::panic::catch_unwind(call).is_err() {
            eprintln!("hotswap: an `on_patch` callback panicked");
        }
    }
}
