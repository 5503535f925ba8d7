//! The runtime of [cargo-hotswap]: what a program links so that `cargo hotswap run` can replace
//! the code of its *hot functions* while it runs, keeping its process, its state and its open
//! connections.
//!
//! # Use
//!
//! Depend on this crate (the package `cargo-hotswap-runtime`, whose library is `hotswap`:
//! `cargo hotswap init` adds it) and mark the entry points of the code you want to edit live with
//! [`#[hot]`](hot) (functions, `async fn` included, or the methods of an `impl` block):
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
//! # Methods
//!
//! `#[hot]` on an inherent `impl` block makes its methods hot (any receiver: `&self`,
//! `&mut self`, `self`, `self: Box<Self>`, or none). When some methods inside carry `#[hot]`
//! too, only those are:
//!
//! ```
//! struct Counter { n: u64 }
//!
//! #[hotswap::hot]
//! impl Counter {
//!     fn new() -> Self { Counter { n: 0 } } // not hot: another method is marked
//!
//!     #[hot]
//!     fn bump(&mut self) -> u64 { self.n += 1; self.n }
//! }
//! # assert_eq!(Counter::new().bump(), 1);
//! ```
//!
//! A method's slot is named after the type: `<module path>::Counter::bump`
//! (`<module path>::Counter$as$Display::fmt` in a trait impl). `#[hot]` on a method without it
//! on the block is an error that says so, because a method's attribute cannot see the type it
//! belongs to. Blocks with lifetime parameters (`impl<'a> App<'a>`) and trait impls
//! (`impl Display for Money`) are hot like inherent ones.
//!
//! `async fn` is hot as written: each call runs the newest body, whose future is boxed (one
//! allocation per call) and `Send`; a future created before a patch finishes on its own code.
//!
//! ```
//! #[hotswap::hot]
//! async fn greet(name: String) -> String {
//!     format!("hello, {name}")
//! }
//! # drop(greet("ada".into()));
//! ```
//!
//! # What cannot be hot
//!
//! Each of these is a compile error that says what to write instead:
//!
//! * generic functions, generic methods and generic `impl` blocks (each instantiation is separate
//!   code): write a non-generic hot function for the types you use, and call it;
//! * an `async fn` with named lifetime parameters: elide them;
//! * `const fn`, `extern "C" fn`, `impl Trait` in arguments or return type (the error names the
//!   concrete type to return, such as axum's `Response` for `impl IntoResponse`).
//!
//! # State across patches
//!
//! Values the program holds (locals of `main`, heap data, everything reached from them) simply
//! stay. Statics are different: a patch is compiled code with its own storage for every plain
//! `static`, `OnceLock` and `thread_local!` of your crate, so hot code sees fresh ones after a
//! patch (the tool lists them when it patches). Declare the statics whose value must carry on
//! with [`persist!`]:
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! hotswap::persist! {
//!     /// Requests served since the program started, across patches.
//!     pub static SERVED: AtomicU64 = AtomicU64::new(0);
//! }
//!
//! #[hotswap::hot]
//! fn serve() -> u64 {
//!     SERVED.fetch_add(1, Ordering::Relaxed) + 1
//! }
//! # assert_eq!(serve(), 1);
//! ```
//!
//! A persisted static's exported name includes a hash of its type as written: a change of the
//! written type makes a new static, starting from its initialiser, never a reinterpretation of
//! the old value. A change behind the written type (a field added to a struct) keeps the name,
//! so the tool compares the static's size and alignment with the running program's and refuses
//! such a patch.
//!
//! # When a patch applies
//!
//! By default the agent applies a patch as soon as it is loaded ([`ApplyMode::Immediate`]).
//! A loop-shaped program (a game loop, a simulation, a request loop) can ask for patches at
//! [`safepoint`] calls instead, so that one iteration never mixes old and new code:
//!
//! ```
//! hotswap::set_apply_mode(hotswap::ApplyMode::SafePoints);
//! hotswap::on_patch(|info| eprintln!("now running generation {}", info.generation));
//! for _frame in 0..3 {
//!     hotswap::safepoint();
//!     // update and draw the frame through hot functions
//! }
//! ```
//!
//! [`generation`] counts code changes (poll it); [`on_patch`] runs callbacks after each one,
//! with the names of the changed functions.
//!
//! # Rollback
//!
//! When a patched hot function panics on its first call, the program's panic hook reports the
//! panic as usual and the tool says which function panicked. With rollback enabled, by
//! `#[hot(rollback)]` on the function (or its `impl` block) or for every hot function by
//! [`set_rollback`], the slots that the patch changed are first pointed back at the code
//! before it; the panic then continues to the caller. A patch that fails to load changes
//! nothing in the first place. Rollback needs unwinding: with `panic = "abort"` the process ends
//! at the panic.
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
//! function as written and the agent is not linked: the macros read an environment variable that
//! only `cargo hotswap run` sets for its builds, and only the executable it links starts the
//! agent. This crate itself compiles the same either way, so switching between `cargo build` and
//! `cargo hotswap run` recompiles only your crates that use the macros, never this crate or the
//! other dependencies. In a build by cargo-hotswap a hot call costs one atomic load and an
//! indirect call.
//!
//! # Platforms
//!
//! Linux on x86_64. Elsewhere the crate compiles, but `cargo hotswap run` refuses to start.
//!
//! [cargo-hotswap]: https://github.com/cargo-hotswap/cargo-hotswap

#[cfg(feature = "macros")]
pub use hotswap_macros::{hot, persist};

pub use control::{
    ApplyMode, PatchInfo, apply_mode, on_patch, rollback_enabled, safepoint, set_apply_mode,
    set_rollback,
};

#[cfg(target_os = "linux")]
mod agent;
mod control;
pub mod protocol;
pub mod record;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod redirect;
mod slot;
#[cfg(target_os = "linux")]
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

/// This crate's sources, from which cargo-hotswap builds the agent alone (as a shared library
/// the host loads) for programs that do not depend on this crate: `(path under src/, text)`.
/// Not a public API: may change in any release.
#[doc(hidden)]
pub mod __sources {
    /// Every source file of the crate.
    pub const FILES: &[(&str, &str)] = &[
        ("agent.rs", include_str!("agent.rs")),
        ("control.rs", include_str!("control.rs")),
        ("lib.rs", include_str!("lib.rs")),
        ("protocol.rs", include_str!("protocol.rs")),
        ("record.rs", include_str!("record.rs")),
        ("redirect.rs", include_str!("redirect.rs")),
        ("slot.rs", include_str!("slot.rs")),
        ("table.rs", include_str!("table.rs")),
    ];
}

/// Items used by the code that `#[hot]` generates. Not a public API: may change in any release.
#[doc(hidden)]
pub mod __private {
    // The generated code names these through this crate, not as `::core::..` or `::std::..`: a
    // dependency of the user's crate may be named `core` (a workspace member, say) and take
    // that name over.
    pub use std::boxed::Box;
    pub use std::mem::{align_of, size_of, transmute};
    pub use std::option::Option;

    #[cfg(target_os = "linux")]
    pub use crate::agent::start as start_agent;
    pub use crate::record::{Part, record, record_len};
    pub use crate::slot::Slot;
    #[cfg(target_os = "linux")]
    pub use crate::table::{BoxFuture, first_call, first_poll};
    pub use std::option_env;
}

#[cfg(test)]
mod sources_tests {
    /// The agent that cargo-hotswap builds for programs without this crate is built from
    /// `__sources::FILES`: a source file missing there would break that build.
    #[test]
    fn every_source_file_is_carried() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".rs"))
            .collect();
        on_disk.sort();
        let carried: Vec<String> = super::__sources::FILES
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect();
        assert_eq!(carried, on_disk);
        for (name, text) in super::__sources::FILES {
            assert_eq!(
                std::fs::read_to_string(format!("{dir}/{name}")).unwrap(),
                *text
            );
        }
    }
}
