//! The runtime of [cargo-hotswap]: what a program links so that `cargo hotswap run` can replace
//! the code of its *hot functions* while it runs, keeping its process, its state and its open
//! connections.
//!
//! # Use
//!
//! Depend on this crate and mark the entry points of the code you want to edit live with
//! [`#[hot]`](hot):
//!
//! ```
//! #[hotswap::hot]
//! fn greeting(name: &str) -> String {
//!     format!("hello, {name}")
//! }
//! # assert_eq!(greeting("you"), "hello, you");
//! ```
//!
//! Then run the program with `cargo hotswap run` instead of `cargo run`, edit, save: the next
//! call of `greeting` runs the new code. Everything a hot function calls inside the same crate is
//! new code after a patch; code that no hot function reaches (for example `main`'s set-up) keeps
//! running as it was.
//!
//! # How it works
//!
//! `cargo hotswap run` builds a *host*: your crate as an rlib linked whole into a small generated
//! executable that exports all its symbols (dynamic symbol table). Each edit is compiled as a
//! thin *patch*, a cdylib holding only your crate's own code, whose references to dependencies
//! and the standard library bind to the host's copies when it is loaded. So there is one copy of
//! every dependency's global state (loggers, runtimes, `OnceLock`s), and the `TypeId` of your
//! types is the same in the host and in every patch.
//!
//! Each hot function has a *slot*: an exported atomic pointer, loaded with `Acquire` on every
//! call. The *agent*, a thread this crate starts before `main` when cargo-hotswap launched the
//! program, receives each patch over a Unix socket, loads it with `dlopen`, and stores the new
//! bodies' addresses in the slots (`Release`). Calls already running finish on the old code;
//! patches are never unloaded, so closures and trait objects created by old code stay valid.
//! Every applied patch increments the [`generation`].
//!
//! # Cost
//!
//! Without cargo-hotswap (a plain `cargo build` or `cargo run`), `#[hot]` expands to exactly the
//! function as written and no agent exists: the `enabled` feature that turns both on is set only
//! by `cargo hotswap run`. With it, a hot call costs one atomic load and an indirect call.
//!
//! # Platforms
//!
//! Linux on x86_64. Elsewhere the crate compiles, but `cargo hotswap run` refuses to start.
//!
//! [cargo-hotswap]: https://github.com/cargo-hotswap/cargo-hotswap

pub use hotswap_macros::{hot, persist};

pub use control::{
    ApplyMode, PatchInfo, apply_mode, on_patch, rollback_enabled, safepoint, set_apply_mode,
    set_rollback,
};

#[cfg(feature = "enabled")]
mod agent;
mod control;
pub mod protocol;
pub mod record;
mod slot;
#[cfg(feature = "enabled")]
mod table;

use std::sync::atomic::{AtomicU64, Ordering};

/// Count of changes to this process's code: 0 for the code it was started with, then one more for
/// every applied patch and every rollback.
///
/// Level-triggered: poll it (for example once per frame or per request) and compare with the
/// value seen last time; [`on_patch`] is the edge-triggered alternative. It stays 0 in a program
/// not run by `cargo hotswap run`.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// The host's one generation counter; patches reach it through the host's dynamic symbol table.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Items used by the code that `#[hot]` generates. Not a public API: may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::record::{Part, record, record_len};
    pub use crate::slot::Slot;
    #[cfg(feature = "enabled")]
    pub use crate::table::first_call;
}
