//! `persist!`: statics whose one instance, the running program's, every patch uses.
//!
//! Parse a list of `static` items, validate them, expand each into a static with a stable
//! exported name (`__hotswap_persist$<module path>::<NAME>$<type hash>`). Exported data is
//! interposed: when a patch is loaded, its references to the static resolve to the host's
//! definition, so the value carries on. The type hash comes from the type's tokens, because an
//! `export_name` must be a literal (`concat!` of literals): a change of the written type gives
//! a new name, hence a new static. A change behind the written type (a field added to a struct,
//! an alias retargeted) keeps the name; for that, a layout record (`__hotswap_layout$…`: size and
//! alignment) is exported too, and the tool refuses a patch whose layout differs from the host's.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Item, ItemStatic, StaticMutability};

/// The statics of one `persist!` invocation.
struct Statics(Vec<ItemStatic>);

impl Parse for Statics {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut statics = Vec::new();
        while !input.is_empty() {
            match input.parse::<Item>()? {
                Item::Static(item) => statics.push(item),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "`persist!` takes `static` items: \
                         `hotswap::persist! { static NAME: Type = value; }`",
                    ));
                }
            }
        }
        Ok(Statics(statics))
    }
}

/// Entry point of `persist!`.
pub(crate) fn persist(input: TokenStream) -> TokenStream {
    let Statics(statics) = match syn::parse2(input) {
        Ok(statics) => statics,
        Err(err) => return err.to_compile_error(),
    };
    let mut out = TokenStream::new();
    for item in statics {
        if let StaticMutability::Mut(token) = &item.mutability {
            let err = syn::Error::new_spanned(
                token,
                "`persist!` statics cannot be `static mut`: use a type with interior \
                 mutability (an atomic, a `Mutex`, a `OnceLock`)",
            )
            .to_compile_error();
            // The plain item too, so that uses of it do not add "cannot find" errors.
            out.extend(quote! { #err #item });
            continue;
        }
        out.extend(expand(item));
    }
    crate::tracked(out)
}

/// A stable hash (FNV-1a, 64 bits) of the type's tokens without whitespace, in hex.
fn type_hash(ty: &syn::Type) -> String {
    let text: String = quote!(#ty)
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The expansion: in a build that cargo-hotswap makes (see [`crate::host_build`]), the static
/// under a stable exported name and its layout record; in every other build, the plain static.
fn expand(item: ItemStatic) -> TokenStream {
    if !crate::host_build() {
        return quote! { #item };
    }
    let name = item.ident.to_string();
    let hash = type_hash(&item.ty);
    let ty = &item.ty;
    quote! {
        // SAFETY: the name holds the static's path and a hash of its type as written, so a
        // patch's references bind (by interposition) to the host's static only when the type is
        // spelled the same; the gate compares both layouts before a patch is loaded.
        #[unsafe(export_name = concat!("__hotswap_persist$", module_path!(), "::", #name, "$", #hash))]
        #item

        const _: () = {
            // SAFETY: plain data under a name unique to this static, read by the tool from the
            // file; no code refers to it.
            #[unsafe(export_name = concat!("__hotswap_layout$", module_path!(), "::", #name, "$", #hash))]
            static __HOTSWAP_LAYOUT: [u64; 2] = [
                ::hotswap::__private::size_of::<#ty>() as u64,
                ::hotswap::__private::align_of::<#ty>() as u64,
            ];
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_hashes_follow_the_written_type() {
        let hash = |s: &str| type_hash(&syn::parse_str(s).unwrap());
        assert_eq!(hash("Vec<u8>"), hash("Vec < u8 >"));
        assert_ne!(hash("AtomicU64"), hash("AtomicU32"));
        assert_eq!(hash("AtomicU64").len(), 16);
    }
}
