//! The hot-function record that `#[hot]` emits for the compatibility gate: the signature as
//! written and the size and alignment of every type it mentions (see `hotswap::record`).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{FnArg, GenericArgument, PathArguments, ReturnType, Signature, Type};

/// Pointee types known to be unsized, whose size cannot be taken (`&Path`, `&str`, ...). The
/// pointer itself is still recorded: a change between thin and fat pointers shows there.
const UNSIZED: &[&str] = &["str", "Path", "OsStr", "CStr", "Any"];

/// Items defining the record static of the hot function `sig`, to be placed inside its
/// dispatcher. `name` is the function's path below its module (`name` or `Type::name`);
/// `self_ty` replaces `Self` in the recorded types (an item inside a method cannot name `Self`).
pub(crate) fn record_items(sig: &Signature, name: &str, self_ty: Option<&Type>) -> TokenStream {
    let mut parts = vec![
        quote!(::hotswap::__private::Part::Str("hotswap-record 1\nfn ")),
        quote!(::hotswap::__private::Part::Str(module_path!())),
        quote!(::hotswap::__private::Part::Str("::")),
        quote!(::hotswap::__private::Part::Str(#name)),
    ];
    let text = format!(
        "\nsig {}\nshape {}\nat ",
        tidy(&sig_text(sig)),
        tidy(&shape_text(sig))
    );
    parts.push(quote!(::hotswap::__private::Part::Str(#text)));
    let line_span = sig.ident.span();
    parts.push(quote!(::hotswap::__private::Part::Str(file!())));
    parts.push(quote!(::hotswap::__private::Part::Str(":")));
    parts.push(quote_spanned!(line_span=> ::hotswap::__private::Part::Num(line!() as usize)));
    parts.push(quote!(::hotswap::__private::Part::Str("\n")));
    for ty in mentioned_types(sig) {
        // `Self` may stand for a type with the `impl` block's lifetimes (`App<'a>`), which an
        // item inside a method cannot name (E0401): they become `'static` too.
        let mut ty = replace_self(&ty, self_ty);
        StaticLifetimes.visit_type_mut(&mut ty);
        let text = format!("type {} ", tidy(&ty.to_token_stream().to_string()));
        let span = ty.span();
        parts.push(quote!(::hotswap::__private::Part::Str(#text)));
        parts.push(
            quote_spanned!(span=> ::hotswap::__private::Part::Num(::hotswap::__private::size_of::<#ty>())),
        );
        parts.push(quote!(::hotswap::__private::Part::Str(" ")));
        parts.push(
            quote_spanned!(span=> ::hotswap::__private::Part::Num(::hotswap::__private::align_of::<#ty>())),
        );
        parts.push(quote!(::hotswap::__private::Part::Str("\n")));
    }
    quote! {
        #[doc(hidden)]
        const __HOTSWAP_RECORD_PARTS: &[::hotswap::__private::Part] = &[#(#parts),*];
        // SAFETY: plain bytes under a name unique to this hot function, read by the tool from
        // the file; no code refers to it.
        #[unsafe(export_name = concat!("__hotswap_record$", module_path!(), "::", #name))]
        #[doc(hidden)]
        static __HOTSWAP_RECORD: [u8; ::hotswap::__private::record_len(__HOTSWAP_RECORD_PARTS)] =
            ::hotswap::__private::record(__HOTSWAP_RECORD_PARTS);
    }
}

/// The signature as written, without attributes or argument patterns' spans.
fn sig_text(sig: &Signature) -> String {
    sig.to_token_stream().to_string()
}

/// The signature without argument names: `fn(&mut State, f32) -> u8`. Two signatures with the
/// same shape call the same way, so renaming an argument is no change.
fn shape_text(sig: &Signature) -> String {
    let unsafety = &sig.unsafety;
    let generics = &sig.generics;
    let output = &sig.output;
    let types = sig.inputs.iter().map(|input| match input {
        FnArg::Typed(arg) => arg.ty.to_token_stream(),
        FnArg::Receiver(receiver) => receiver.ty.to_token_stream(),
    });
    quote!(#unsafety fn #generics (#(#types),*) #output).to_string()
}

/// Every type the signature mentions, outermost first, without duplicates, with lifetimes made
/// `'static` (sizes do not depend on lifetimes, and a const item cannot name the function's).
fn mentioned_types(sig: &Signature) -> Vec<Type> {
    let mut out: Vec<Type> = Vec::new();
    let mut push = |ty: &Type| {
        let mut ty = ty.clone();
        StaticLifetimes.visit_type_mut(&mut ty);
        let text = ty.to_token_stream().to_string();
        if text != "()" && !out.iter().any(|t| t.to_token_stream().to_string() == text) {
            out.push(ty);
        }
    };
    for input in &sig.inputs {
        match input {
            FnArg::Typed(arg) => walk(&arg.ty, &mut push),
            FnArg::Receiver(receiver) => walk(&receiver.ty, &mut push),
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        walk(ty, &mut push);
    }
    out
}

/// Calls `push` for `ty` if it is sized, and recurses into the types it contains or points to.
fn walk(ty: &Type, push: &mut impl FnMut(&Type)) {
    match ty {
        Type::Reference(r) => {
            push(ty);
            walk(&r.elem, push);
        }
        Type::Ptr(p) => {
            push(ty);
            walk(&p.elem, push);
        }
        Type::Paren(p) => walk(&p.elem, push),
        Type::Group(g) => walk(&g.elem, push),
        Type::Tuple(t) => {
            push(ty);
            for elem in &t.elems {
                walk(elem, push);
            }
        }
        Type::Array(a) => {
            push(ty);
            walk(&a.elem, push);
        }
        // A slice is unsized; its elements are not.
        Type::Slice(s) => walk(&s.elem, push),
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return;
            };
            if !UNSIZED.contains(&last.ident.to_string().as_str()) {
                push(ty);
            }
            if let PathArguments::AngleBracketed(args) = &last.arguments {
                for arg in &args.args {
                    if let GenericArgument::Type(inner) = arg {
                        walk(inner, push);
                    }
                }
            }
        }
        // `dyn Trait` is unsized; `fn` pointers, `!`, macros: nothing inside worth a size.
        _ => {}
    }
}

/// `ty` with every `Self` replaced by `self_ty` (unchanged without one).
pub(crate) fn replace_self(ty: &Type, self_ty: Option<&Type>) -> Type {
    let mut ty = ty.clone();
    if let Some(self_ty) = self_ty {
        ReplaceSelf(self_ty).visit_type_mut(&mut ty);
    }
    ty
}

/// Replaces the type `Self` by the `impl` block's type.
struct ReplaceSelf<'a>(&'a Type);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(path) = ty
            && path.qself.is_none()
            && path.path.is_ident("Self")
        {
            *ty = self.0.clone();
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

/// Replaces every lifetime by `'static`.
struct StaticLifetimes;

impl VisitMut for StaticLifetimes {
    fn visit_lifetime_mut(&mut self, lifetime: &mut syn::Lifetime) {
        *lifetime = syn::Lifetime::new("'static", Span::call_site());
    }
}

/// Token text with the spacing a person would write: `fn f(x: &mut State) -> Vec<u8>`.
pub(crate) fn tidy(tokens: &str) -> String {
    // Token streams print with line breaks when long: one line, single spaces.
    let mut out = tokens.split_whitespace().collect::<Vec<_>>().join(" ");
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" ::", "::"),
        (" (", "("),
        ("( ", "("),
        (" )", ")"),
        (" ,", ","),
        (" :", ":"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        ("& ", "&"),
        ("* const", "*const"),
        ("* mut", "*mut"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
        ("' ", "'"),
    ] {
        out = out.replace(from, to);
    }
    // `->` and `=>` lose their spaces above only when glued to `>`; restore them.
    out.replace(")->", ") ->")
        .replace("->", " -> ")
        .replace("  ", " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(sig: &str) -> Vec<String> {
        let sig: Signature = syn::parse_str(sig).unwrap();
        mentioned_types(&sig)
            .iter()
            .map(|t| tidy(&t.to_token_stream().to_string()))
            .collect()
    }

    #[test]
    fn long_signatures_stay_on_one_line() {
        assert_eq!(
            tidy("fn f (a : A) -> Result <\n String , E >"),
            "fn f(a: A) -> Result<String, E>"
        );
    }

    #[test]
    fn shapes_leave_out_argument_names() {
        let shape = |s: &str| tidy(&shape_text(&syn::parse_str(s).unwrap()));
        assert_eq!(
            shape("fn f(a: u8, b: &mut State) -> u8"),
            "fn(u8, &mut State) -> u8"
        );
        assert_eq!(
            shape("fn f(x: u8, y: &mut State) -> u8"),
            "fn(u8, &mut State) -> u8"
        );
        assert_eq!(
            shape("unsafe fn f<'a>(&'a self, s: &'a str)"),
            "unsafe fn<'a>(&'a Self, &'a str)"
        );
    }

    #[test]
    fn signatures_read_as_written() {
        let sig: Signature =
            syn::parse_str("fn update<'a>(state: &'a mut State, items: Vec<(u8, std::path::PathBuf)>, f: *const [u8; 4]) -> Option<&'a str>").unwrap();
        assert_eq!(
            tidy(&sig_text(&sig)),
            "fn update<'a>(state: &'a mut State, items: Vec<(u8, std::path::PathBuf)>, f: *const [u8; 4]) -> Option<&'a str>"
        );
    }

    #[test]
    fn receivers_are_recorded_with_the_impl_type() {
        let sig: Signature = syn::parse_str("fn step(&mut self, dt: f32) -> Self").unwrap();
        let self_ty: Type = syn::parse_str("World").unwrap();
        let types: Vec<String> = mentioned_types(&sig)
            .iter()
            .map(|t| {
                tidy(
                    &replace_self(t, Some(&self_ty))
                        .to_token_stream()
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(types, ["&mut World", "World", "f32"]);
    }

    #[test]
    fn every_mentioned_sized_type_is_recorded() {
        assert_eq!(
            types(
                "fn f(state: &mut State, path: &Path, any: &dyn Any, b: Box<Inner>) -> Vec<Item>"
            ),
            [
                "&mut State",
                "State",
                "&Path",
                "&dyn Any",
                "Box<Inner>",
                "Inner",
                "Vec<Item>",
                "Item"
            ]
        );
        assert_eq!(
            types("fn f<'a>(s: &'a str) -> (u8, &'a [u16])"),
            [
                "&'static str",
                "(u8, &'static [u16])",
                "u8",
                "&'static [u16]",
                "u16"
            ]
        );
    }
}
