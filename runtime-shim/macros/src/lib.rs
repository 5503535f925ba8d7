//! Procedural macros of cargo-hotswap. Use them through the `hotswap` crate (`#[hotswap::hot]`),
//! which re-exports them; the generated code names only `::hotswap::__private`.
//!
//! Each macro is a pipeline: parse, validate (errors point at the user's tokens), expand. On a
//! validation error the plain item is still emitted, so the user sees one error, not a cascade.

use proc_macro::TokenStream;

mod hot;
mod persist;
#[cfg(any(feature = "_cargo-hotswap", test))]
#[cfg_attr(
    not(feature = "_cargo-hotswap"),
    expect(
        dead_code,
        reason = "unit tests cover the record without the expansion using it"
    )
)]
mod record;

/// Marks a function (`async fn` included), or the methods of an `impl` block (inherent or trait
/// impl), as *hot functions*: entry
/// points whose code is replaced when `cargo hotswap run` applies a patch. On an `impl` block,
/// every method is hot, or only those marked `#[hot]` inside it. `#[hot(rollback)]` restores the
/// previous code when new code panics on its first call. See the `hotswap` crate for the full
/// documentation.
///
/// In a build not made by cargo-hotswap (its internal `_cargo-hotswap` feature off) the item is emitted exactly
/// as written (without the inner markers). In a cargo-hotswap host build each hot function is
/// called through a slot (one atomic load and an indirect call), and its body is exported under
/// a stable name derived from its module path (and type), so that the host finds the new body in
/// a patch.
///
/// # Errors
///
/// A compile error, pointing at the reason, for generic functions, methods and `impl` blocks,
/// `async fn` with named lifetimes, `const fn`, non-Rust ABIs, `impl Trait` in a signature, and
/// a method marked outside a hot `impl` block.
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
///
/// # Errors
///
/// A compile error for anything but `static` items, and for `static mut`.
#[proc_macro]
pub fn persist(input: TokenStream) -> TokenStream {
    persist::persist(input.into()).into()
}
