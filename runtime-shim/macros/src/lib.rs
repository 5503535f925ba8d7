//! Procedural macros of cargo-hotswap. Use them through the `hotswap` crate (`#[hotswap::hot]`),
//! which re-exports them; the generated code names only `::hotswap::__private`.
//!
//! Each macro is a pipeline: parse, validate (errors point at the user's tokens), expand. On a
//! validation error the plain item is still emitted, so the user sees one error, not a cascade.

use proc_macro::TokenStream;

mod hot;
mod persist;
mod record;

/// The environment variable that `cargo hotswap run` sets (to `1`) for the cargo builds it
/// makes, and only those: with it, `#[hot]` and `persist!` expand to slots, records and exported
/// names; without it, to the plain items. It is read when the macro expands, in the rustc
/// process that compiles the user's crate.
///
/// A cargo feature would do the same, but a feature of the runtime (a registry crate) changes
/// the fingerprints of the runtime and of everything built on it, so a `cargo build` and a
/// `cargo hotswap run` would compile those crates over and over. The variable changes only the
/// crates that use the macros, which cargo rebuilds because every expansion names the variable
/// in `option_env!` (see [`track`]).
const HOST_BUILD_ENV: &str = "CARGO_HOTSWAP_HOST_BUILD";

/// Whether this expansion is part of a build that cargo-hotswap makes (see [`HOST_BUILD_ENV`]).
fn host_build() -> bool {
    std::env::var_os(HOST_BUILD_ENV).is_some_and(|value| value == "1")
}

/// Puts an unnamed constant that reads [`HOST_BUILD_ENV`] with `option_env!` at the start of
/// `block` (a hot function's body; an item there changes nothing the function does, and is valid
/// wherever the function is): rustc lists the variable in the crate's dep-info
/// (`# env-dep:`), and cargo rebuilds the crate when its value differs from that of the last
/// build. Without it, a `cargo build` after a `cargo hotswap run` would find the crate fresh and
/// keep its slots, and the next `cargo hotswap run` would find it fresh without them.
fn track(block: &mut syn::Block) {
    block.stmts.insert(0, syn::Stmt::Item(tracking_item()));
}

/// `expansion` followed by the constant of [`track`], as an item of its own (for `persist!`,
/// whose statics are items).
fn tracked(expansion: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let item = tracking_item();
    quote::quote! { #expansion #item }
}

/// The constant of [`track`].
fn tracking_item() -> syn::Item {
    syn::parse_quote! {
        const _: ::hotswap::__private::Option<&str> =
            ::hotswap::__private::option_env!(#HOST_BUILD_ENV);
    }
}

/// Marks a function (`async fn` included), or the methods of an `impl` block (inherent or trait
/// impl), as *hot functions*: entry
/// points whose code is replaced when `cargo hotswap run` applies a patch. On an `impl` block,
/// every method is hot, or only those marked `#[hot]` inside it. `#[hot(rollback)]` restores the
/// previous code when new code panics on its first call. See the `hotswap` crate for the full
/// documentation.
///
/// In a build not made by cargo-hotswap the item is emitted exactly as written (without the inner
/// markers), with an unnamed constant at the start of the body that has cargo rebuild the crate
/// when the next build is made by cargo-hotswap. In a cargo-hotswap host build each hot function is
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
