//! Procedural macros of cargo-hotswap. Use them through the `hotswap` crate (`#[hotswap::hot]`),
//! which re-exports them; the generated code names only `::hotswap::__private`.
//!
//! Each macro is a pipeline: parse, validate (errors point at the user's tokens), expand. On a
//! validation error the plain item is still emitted, so the user sees one error, not a cascade.

use proc_macro::TokenStream;

mod hot;
mod persist;
#[cfg(any(feature = "enabled", test))]
#[cfg_attr(
    not(feature = "enabled"),
    expect(
        dead_code,
        reason = "unit tests cover the record without the expansion using it"
    )
)]
mod record;

/// Marks a function as a *hot function*: an entry point whose code is replaced when
/// `cargo hotswap run` applies a patch. See the `hotswap` crate for the full documentation.
///
/// In a build not made by cargo-hotswap (the `enabled` feature off) the function is emitted
/// exactly as written. In a cargo-hotswap host build it is called through a slot (one atomic
/// load and an indirect call), and its body is exported under a stable name derived from its
/// module path, so that the host finds the new body in a patch.
#[proc_macro_attribute]
pub fn hot(args: TokenStream, item: TokenStream) -> TokenStream {
    hot::hot(args.into(), item.into()).into()
}

/// Declares statics whose value survives patches: every patch uses the running program's
/// instance instead of fresh storage of its own. Written like `thread_local!`: any number of
/// `static` items, with attributes and any visibility. See the `hotswap` crate for the full
/// documentation.
///
/// In a build not made by cargo-hotswap, each item is emitted as the plain static.
#[proc_macro]
pub fn persist(input: TokenStream) -> TokenStream {
    persist::persist(input.into()).into()
}
