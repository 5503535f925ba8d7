//! `#[hot]` on a free function or an inherent `impl` block: parse, validate, expand each hot
//! function into a slot-dispatched dispatcher and an exported body.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Attribute, FnArg, GenericParam, ImplItem, Item, ItemImpl, ReturnType, Signature};

/// What `#[hot(..)]` was given.
#[derive(Debug, Clone, Copy, Default)]
struct Options {
    /// `#[hot(rollback)]`: a panic on the first call of new code restores the previous code.
    rollback: bool,
}

/// Entry point of the `#[hot]` attribute: validates the item, then expands it.
///
/// On a validation error the plain item is emitted next to the error, so that the user sees
/// the one error and not a cascade of "cannot find function" errors.
pub(crate) fn hot(args: TokenStream, item: TokenStream) -> TokenStream {
    let options = match parse_options(args) {
        Ok(options) => options,
        Err(err) => {
            let err = err.to_compile_error();
            return quote! { #err #item };
        }
    };
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(func)) => hot_fn(options, func),
        Ok(Item::Impl(block)) => hot_impl(options, block),
        Ok(other) => {
            let err = syn::Error::new_spanned(
                other,
                "`#[hot]` applies to functions and `impl` blocks: \
                 `#[hotswap::hot] fn name(..) { .. }`",
            )
            .to_compile_error();
            quote! { #err #item }
        }
        // Not valid Rust (a syntax error being typed): rustc reports it on the item itself,
        // so adding an error here would only repeat it.
        Err(_) => item,
    }
}

/// Parses `rollback` (or nothing).
fn parse_options(args: TokenStream) -> syn::Result<Options> {
    let mut options = Options::default();
    if args.is_empty() {
        return Ok(options);
    }
    let parser = syn::punctuated::Punctuated::<syn::Ident, syn::Token![,]>::parse_terminated;
    let idents = syn::parse::Parser::parse2(parser, args.clone())
        .map_err(|err| syn::Error::new(err.span(), "expected `#[hot]` or `#[hot(rollback)]`"))?;
    for ident in idents {
        if ident == "rollback" {
            options.rollback = true;
        } else {
            return Err(syn::Error::new_spanned(
                ident,
                "unknown `#[hot]` argument: the only one is `rollback`",
            ));
        }
    }
    Ok(options)
}

/// `#[hot]` on a function outside an `impl` block.
fn hot_fn(options: Options, func: syn::ItemFn) -> TokenStream {
    let mut errors = validate(&func.sig);
    if let Some(receiver) = func.sig.receiver() {
        errors.push(syn::Error::new_spanned(
            receiver,
            "`#[hot]` on a method goes on its `impl` block: write `#[hotswap::hot]` above \
             `impl Type { .. }` (or `impl Trait for Type { .. }`), which makes every method \
             hot, or only those marked `#[hot]` inside it",
        ));
    } else if mentions_self(&func.sig) {
        errors.push(syn::Error::new_spanned(
            &func.sig,
            "`#[hot]` on an associated function goes on its `impl` block: write \
             `#[hotswap::hot]` above `impl Type { .. }` (or `impl Trait for Type { .. }`)",
        ));
    }
    if !errors.is_empty() {
        let errors = errors.iter().map(syn::Error::to_compile_error);
        return quote! { #(#errors)* #func };
    }
    expand_fn(options, func)
}

/// `#[hot]` on an `impl` block: every method is hot, or only those marked `#[hot]`.
fn hot_impl(options: Options, mut block: ItemImpl) -> TokenStream {
    let mut errors = Vec::new();
    for param in &block.generics.params {
        if !matches!(param, GenericParam::Lifetime(_)) {
            errors.push(syn::Error::new_spanned(
                param,
                "`#[hot]` does not support generic `impl` blocks: each instantiation is separate \
                 code; write a non-generic `impl` block (or hot function) for the types you use \
                 and call it",
            ));
        }
    }
    if let Some(where_clause) = &block.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "`#[hot]` does not support `where` clauses: write a non-generic `impl` block",
        ));
    }
    // Methods marked `#[hot]` inside the block; their markers are consumed here.
    let mut marked = Vec::new();
    for (index, item) in block.items.iter_mut().enumerate() {
        if let ImplItem::Fn(method) = item {
            let mut found = None;
            method.attrs.retain(|attr| {
                let is_hot = is_hot_marker(attr);
                if is_hot {
                    found = Some(attr.clone());
                }
                !is_hot
            });
            if let Some(attr) = found {
                let args = match &attr.meta {
                    syn::Meta::Path(_) => Ok(Options::default()),
                    syn::Meta::List(list) => parse_options(list.tokens.clone()),
                    syn::Meta::NameValue(_) => parse_options(attr.meta.to_token_stream()),
                };
                match args {
                    Ok(args) => marked.push((index, args)),
                    Err(err) => errors.push(err),
                }
            }
        }
    }
    let hot: Vec<(usize, Options)> = if marked.is_empty() {
        block
            .items
            .iter()
            .enumerate()
            .filter(|(_, item)| matches!(item, ImplItem::Fn(_)))
            .map(|(index, _)| (index, options))
            .collect()
    } else {
        marked
            .into_iter()
            .map(|(index, own)| {
                let rollback = own.rollback || options.rollback;
                (index, Options { rollback })
            })
            .collect()
    };
    for (index, _) in &hot {
        if let ImplItem::Fn(method) = &block.items[*index] {
            errors.extend(validate(&method.sig));
        }
    }
    if !errors.is_empty() {
        let errors = errors.iter().map(syn::Error::to_compile_error);
        return quote! { #(#errors)* #block };
    }
    expand_impl(block, &hot)
}

/// Whether `attr` is a `#[hot]` marker (`hot`, `hotswap::hot`, `::hotswap::hot`).
fn is_hot_marker(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "hot")
}

/// Whether the signature names `Self` (then it belongs to an `impl` block).
fn mentions_self(sig: &Signature) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tree| match tree {
            proc_macro2::TokenTree::Ident(ident) => ident == "Self",
            proc_macro2::TokenTree::Group(group) => walk(group.stream()),
            _ => false,
        })
    }
    walk(sig.inputs.to_token_stream()) || walk(sig.output.to_token_stream())
}

/// Every reason why `sig` cannot be a hot function, each pointing at the offending tokens.
fn validate(sig: &Signature) -> Vec<syn::Error> {
    let mut errors = Vec::new();
    if sig.asyncness.is_some()
        && let Some(lifetime) = sig.generics.lifetimes().next()
    {
        errors.push(syn::Error::new_spanned(
            lifetime,
            "`#[hot]` on an `async fn` needs its lifetimes elided (`&self`, `&str`): every \
             version of the body returns a boxed future that borrows its arguments for one \
             lifetime, which a named lifetime of the function cannot be",
        ));
    }
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            token,
            "`#[hot]` cannot apply to a `const fn`: const evaluation happens at compile time, \
             there is nothing to patch at run time",
        ));
    }
    if let Some(abi) = &sig.abi {
        // `extern fn` without a name is the C ABI.
        let is_rust = abi.name.as_ref().is_some_and(|name| name.value() == "Rust");
        if !is_rust {
            errors.push(syn::Error::new_spanned(
                abi,
                "`#[hot]` supports only the Rust ABI yet: remove the `extern` and, if foreign \
                 code needs this function, call the hot function from an `extern` wrapper",
            ));
        }
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "`#[hot]` cannot apply to a variadic function",
        ));
    }
    validate_generics(sig, &mut errors);
    errors
}

/// Adds to `errors` what makes `sig` generic beyond lifetimes: type and const parameters,
/// `where` clauses, `impl Trait` arguments and return types.
fn validate_generics(sig: &Signature, errors: &mut Vec<syn::Error>) {
    for param in &sig.generics.params {
        if !matches!(param, GenericParam::Lifetime(_)) {
            errors.push(syn::Error::new_spanned(
                param,
                if sig.receiver().is_some() {
                    "`#[hot]` does not support generic methods: each instantiation is separate \
                     code; mark the block's other methods one by one with `#[hot]`, and make \
                     this one call a non-generic hot method for the types you use"
                } else {
                    "`#[hot]` does not support generic functions: each instantiation is \
                     separate code; make a non-generic hot function for the types you use and \
                     call it"
                },
            ));
        }
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "`#[hot]` does not support `where` clauses: make a non-generic hot function",
        ));
    }
    for input in &sig.inputs {
        if let FnArg::Typed(arg) = input
            && contains_impl_trait(&arg.ty)
        {
            errors.push(syn::Error::new_spanned(
                &arg.ty,
                "`#[hot]` does not support `impl Trait` arguments (they make the function \
                 generic): name a concrete type or use `&dyn Trait`",
            ));
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && contains_impl_trait(ty)
    {
        errors.push(syn::Error::new_spanned(
            ty,
            format!(
                "`#[hot]` does not support `impl Trait` return types (the patch's hidden type \
                 may differ from the host's): {}",
                concrete_alternative(ty)
            ),
        ));
    }
}

/// What to return instead of `ty`, an `impl Trait` type, for the traits people return most.
fn concrete_alternative(ty: &syn::Type) -> String {
    let text = crate_tidy(&ty.to_token_stream().to_string());
    let traits: Vec<&str> = text
        .trim_start_matches("impl ")
        .split('+')
        .map(|bound| bound.trim())
        .collect();
    let named = |name: &str| {
        traits.iter().any(|bound| {
            let path = bound.split(['<', '(']).next().unwrap_or(bound).trim();
            path.rsplit("::").next() == Some(name)
        })
    };
    if named("IntoResponse") {
        "return `axum::response::Response`, and end the body with `.into_response()`".to_owned()
    } else if named("Responder") {
        "return `actix_web::HttpResponse`".to_owned()
    } else if named("Widget") {
        "return the widget's own type (`Paragraph<'a>`, `List<'a>`, `Table<'a>`)".to_owned()
    } else if named("Iterator") || named("DoubleEndedIterator") || named("ExactSizeIterator") {
        "return a `Vec<_>` (collect it), or a `Box<dyn Iterator<Item = _>>`".to_owned()
    } else if named("Future") {
        "write an `async fn` instead, which `#[hot]` supports".to_owned()
    } else if named("Fn") || named("FnMut") || named("FnOnce") {
        format!(
            "return a `Box<dyn {}>`",
            traits[0].trim_start_matches("impl ")
        )
    } else if named("Display") || named("ToString") || named("Into") && text.contains("String") {
        "return a `String`".to_owned()
    } else if named("Error") {
        "return a `Box<dyn std::error::Error + Send + Sync>`".to_owned()
    } else {
        format!(
            "return a concrete type, or a `Box<dyn {}>`",
            traits.join(" + ")
        )
    }
}

/// [`crate::record::tidy`] where the record module is compiled, the plain text elsewhere.
fn crate_tidy(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" :: ", "::")
        .replace(" < ", "<")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" (", "(")
}

/// Whether `ty` mentions `impl Trait` anywhere (found textually, which is exact for types).
fn contains_impl_trait(ty: &syn::Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tree| match tree {
            proc_macro2::TokenTree::Ident(ident) => ident == "impl",
            proc_macro2::TokenTree::Group(group) => walk(group.stream()),
            _ => false,
        })
    }
    walk(quote!(#ty))
}

/// The expansion of a hot free function: in a build that cargo-hotswap makes (see
/// [`crate::host_build`]), a dispatcher with the user's signature whose body holds the slot, the
/// record and the exported body; in every other build, exactly the plain item.
fn expand_fn(options: Options, mut func: syn::ItemFn) -> TokenStream {
    crate::track(&mut func.block);
    if !crate::host_build() {
        return quote! { #func };
    }
    slotted_fn(options, func)
}

/// [`expand_fn`] in a build that cargo-hotswap makes.
fn slotted_fn(options: Options, func: syn::ItemFn) -> TokenStream {
    use quote::format_ident;

    let syn::ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let name = sig.ident.to_string();
    let impl_name = format_ident!("__hotswap_impl_{}", sig.ident, span = sig.ident.span());
    let (mut impl_sig, block) = body_of(&sig, *block);
    impl_sig.ident = impl_name.clone();
    let lint_attrs = lint_attrs(&attrs);
    let dispatch = dispatch(&sig, &name, None, options, &quote!(#impl_name));
    let body = dispatch.body;
    let dispatcher_sig = dispatch.sig;
    let cfg_attrs = attrs.iter().filter(|attr| attr.path().is_ident("cfg"));
    // The body is a sibling of the dispatcher, not an item inside it: a nested function could not
    // repeat the dispatcher's lifetime parameters (E0496).
    quote! {
        // SAFETY: the name (module path and function) is unique in the crate, so no other item
        // defines it; the host and every patch define it with the same signature (the gate
        // refuses a patch whose signature changed), so whichever definition a lookup finds has
        // the type its caller expects.
        #[unsafe(export_name = concat!("__hotswap_impl$", module_path!(), "::", #name))]
        #[doc(hidden)]
        #(#cfg_attrs)*
        #(#lint_attrs)*
        #impl_sig #block

        #(#attrs)*
        #vis #dispatcher_sig {
            #body
        }
    }
}

/// The expansion of a hot `impl` block (in a build that cargo-hotswap makes; in every other
/// build, the plain block without its `#[hot]` markers): each hot method becomes a dispatcher
/// and a hidden, exported associated function holding the body. In an inherent `impl` block the bodies sit
/// next to their dispatchers; in a trait impl (where every item must belong to the trait) they
/// go to an inherent `impl` block of the same type and generics, named after the trait too
/// (`__hotswap_impl_fmt__as__Display`), so that `Display::fmt` and `Debug::fmt` do not clash.
fn expand_impl(mut block: ItemImpl, hot: &[(usize, Options)]) -> TokenStream {
    if let Some(ImplItem::Fn(method)) = hot.first().map(|(index, _)| &mut block.items[*index]) {
        crate::track(&mut method.block);
    }
    if !crate::host_build() {
        return quote! { #block };
    }
    slotted_impl(block, hot)
}

/// [`expand_impl`] in a build that cargo-hotswap makes.
fn slotted_impl(mut block: ItemImpl, hot: &[(usize, Options)]) -> TokenStream {
    use quote::format_ident;

    let self_ty = (*block.self_ty).clone();
    let type_name = type_key(&self_ty);
    let trait_name = block
        .trait_
        .as_ref()
        .and_then(|(_, path, _)| path.segments.last())
        .map(|segment| segment.ident.clone());
    let mut items = Vec::with_capacity(block.items.len() + hot.len());
    let mut bodies: Vec<ImplItem> = Vec::new();
    for (index, item) in std::mem::take(&mut block.items).into_iter().enumerate() {
        let Some((_, options)) = hot.iter().find(|(i, _)| *i == index) else {
            items.push(item);
            continue;
        };
        let ImplItem::Fn(method) = item else {
            items.push(item);
            continue;
        };
        let method_name = &method.sig.ident;
        let (path, impl_name) = match &trait_name {
            // Exported names go into the linker's version script, which takes no `<`, space
            // or quote: `<Price as Display>::fmt` is written `Price$as$Display::fmt`.
            Some(trait_name) => (
                format!("{type_name}$as${trait_name}::{method_name}"),
                format_ident!(
                    "__hotswap_impl_{}__as__{}",
                    method_name,
                    trait_name,
                    span = method_name.span()
                ),
            ),
            None => (
                format!("{type_name}::{method_name}"),
                format_ident!("__hotswap_impl_{}", method_name, span = method_name.span()),
            ),
        };
        let (mut impl_sig, user_block) = body_of(&method.sig, method.block.clone());
        impl_sig.ident = impl_name.clone();
        let lint_attrs = lint_attrs(&method.attrs);
        let dispatch = dispatch(
            &method.sig,
            &path,
            Some(&self_ty),
            *options,
            &quote!(Self::#impl_name),
        );
        let attrs = &method.attrs;
        let vis = &method.vis;
        let defaultness = &method.defaultness;
        let dispatcher_sig = dispatch.sig;
        let body = dispatch.body;
        let dispatcher: ImplItem = syn::parse_quote! {
            #(#attrs)*
            #vis #defaultness #dispatcher_sig {
                #body
            }
        };
        let exported: ImplItem = syn::parse_quote! {
            // SAFETY: as for a hot free function: a unique name, and the same signature in the
            // host and every patch (checked by the gate).
            #[unsafe(export_name = concat!("__hotswap_impl$", module_path!(), "::", #path))]
            #[doc(hidden)]
            #[allow(non_snake_case)]
            #(#lint_attrs)*
            #impl_sig #user_block
        };
        items.push(dispatcher);
        bodies.push(exported);
    }
    if trait_name.is_none() {
        items.append(&mut bodies);
    }
    block.items = items;
    if trait_name.is_none() || bodies.is_empty() {
        return quote! { #block };
    }
    let (impl_generics, _, _) = block.generics.split_for_impl();
    quote! {
        #block

        #[doc(hidden)]
        impl #impl_generics #self_ty {
            #(#bodies)*
        }
    }
}

/// The `impl` block's type as exported names spell it: its path without generic arguments
/// (`Summary<'a>` -> `Summary`, `crate::model::Item` -> `crate::model::Item`); any other type
/// with every character a linker's version script does not take replaced by `_`.
fn type_key(ty: &syn::Type) -> String {
    if let syn::Type::Path(path) = ty
        && path.qself.is_none()
    {
        return path
            .path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect::<Vec<_>>()
            .join("::");
    }
    crate::record::tidy(&ty.to_token_stream().to_string())
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The signature and block of a hot function's exported body. For a plain function, the
/// user's own. For an `async fn`, a plain function returning the body's future boxed
/// (`BoxFuture<'life, T>`: every version of the body has this one type, whatever its state
/// machine), with every elided lifetime of the arguments named `'__hotswap_life`, the one the
/// future borrows them for (`'static` when there is none).
fn body_of(sig: &Signature, block: syn::Block) -> (Signature, Box<syn::Block>) {
    if sig.asyncness.is_none() {
        return (sig.clone(), Box::new(block));
    }
    let (impl_sig, _) = async_signature(sig);
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let block: syn::Block = syn::parse_quote! {{
        ::hotswap::__private::Box::pin(async move {
            // The annotation makes `?` and `return` in the body convert to the declared type.
            #[allow(unreachable_code, clippy::let_and_return)]
            let __hotswap_ret: #output = #block;
            __hotswap_ret
        })
    }};
    (impl_sig, Box::new(block))
}

/// The plain signature of an `async fn`'s exported body (see [`body_of`]), and whether it has
/// the lifetime `'__hotswap_life` (then the pointer type is higher-ranked over it).
fn async_signature(sig: &Signature) -> (Signature, bool) {
    use syn::visit_mut::VisitMut;

    let mut impl_sig = sig.clone();
    impl_sig.asyncness = None;
    let mut named = NameElided {
        lifetime: syn::Lifetime::new("'__hotswap_life", proc_macro2::Span::call_site()),
        found: false,
    };
    for input in &mut impl_sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                if let Some((_, lifetime)) = &mut receiver.reference
                    && lifetime.is_none()
                {
                    *lifetime = Some(named.lifetime.clone());
                    named.found = true;
                }
                named.visit_type_mut(&mut receiver.ty);
            }
            FnArg::Typed(typed) => named.visit_type_mut(&mut typed.ty),
        }
    }
    // The output's elided lifetimes are the arguments' one lifetime (the only way the
    // function compiled), so they are named too.
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => {
            let mut ty = (**ty).clone();
            if named.found {
                named.visit_type_mut(&mut ty);
            }
            quote!(#ty)
        }
    };
    let bound = if named.found {
        impl_sig
            .generics
            .params
            .push(GenericParam::Lifetime(syn::LifetimeParam::new(
                named.lifetime.clone(),
            )));
        named.lifetime.clone()
    } else {
        syn::Lifetime::new("'static", proc_macro2::Span::call_site())
    };
    impl_sig.output = syn::parse_quote!(-> ::hotswap::__private::BoxFuture<#bound, #output>);
    (impl_sig, named.found)
}

/// Names every elided lifetime of a type (`&T`, `'_`) outside `fn` pointer types and `Fn(..)`
/// bounds (where elision means something else).
struct NameElided {
    lifetime: syn::Lifetime,
    found: bool,
}

impl syn::visit_mut::VisitMut for NameElided {
    fn visit_type_reference_mut(&mut self, reference: &mut syn::TypeReference) {
        if reference.lifetime.is_none() {
            reference.lifetime = Some(self.lifetime.clone());
            self.found = true;
        }
        syn::visit_mut::visit_type_reference_mut(self, reference);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut syn::Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.lifetime.clone();
            self.found = true;
        }
    }

    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(
        &mut self,
        _: &mut syn::ParenthesizedGenericArguments,
    ) {
    }
}

/// The attributes of the user's function that must also apply to its body: lint levels.
fn lint_attrs(attrs: &[Attribute]) -> Vec<&Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("allow"))
        .collect()
}

/// A dispatcher: its signature (the user's, with plain argument names) and the statements of its
/// body (slot, record, and the call through the slot or to the original body).
struct Dispatch {
    sig: Signature,
    body: TokenStream,
}

/// The dispatcher's signature, with plain argument names (`__hotswap_arg0`, ...) and `mut
/// self` without its `mut`; the arguments as the dispatcher passes them on; and their types,
/// `Self` replaced by `self_ty`.
fn plain_arguments(
    sig: &Signature,
    self_ty: Option<&syn::Type>,
) -> (Signature, Vec<TokenStream>, Vec<syn::Type>) {
    use quote::format_ident;

    let mut dispatcher_sig = sig.clone();
    let mut args = Vec::new();
    let mut arg_types = Vec::new();
    let mut index = 0usize;
    for input in &mut dispatcher_sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                // `mut self` binds mutably only in the body, which is elsewhere.
                if receiver.reference.is_none() {
                    receiver.mutability = None;
                }
                args.push(quote!(self));
                arg_types.push(crate::record::replace_self(&receiver.ty, self_ty));
            }
            FnArg::Typed(typed) => {
                let arg = format_ident!("__hotswap_arg{}", index);
                index += 1;
                *typed.pat = syn::parse_quote!(#arg);
                args.push(quote!(#arg));
                arg_types.push(crate::record::replace_self(&typed.ty, self_ty));
            }
        }
    }
    (dispatcher_sig, args, arg_types)
}

/// The three calls a dispatcher makes with `args`: of the body compiled in (`original`), of the
/// slot's function, and of the slot's function in a closure; in `unsafe` blocks for an
/// `unsafe fn`.
fn calls(
    unsafety: bool,
    original: &TokenStream,
    args: &[TokenStream],
) -> (TokenStream, TokenStream, TokenStream) {
    if unsafety {
        (
            quote! {
                // SAFETY: the caller of this `unsafe fn` upholds its contract, which is the
                // same for every version of its body.
                unsafe { #original(#(#args),*) }
            },
            quote! {
                // SAFETY: as above.
                unsafe { __hotswap_f(#(#args),*) }
            },
            quote! {
                // SAFETY: as above.
                move || unsafe { __hotswap_f(#(#args),*) }
            },
        )
    } else {
        (
            quote! { #original(#(#args),*) },
            quote! { __hotswap_f(#(#args),*) },
            quote! { move || __hotswap_f(#(#args),*) },
        )
    }
}

/// The dispatcher of the hot function `sig` whose path below the module is `path` (`name` or
/// `Type::name`). `self_ty` replaces `Self` in the items the body defines; `original` is the
/// path of the body compiled into this build.
fn dispatch(
    sig: &Signature,
    path: &str,
    self_ty: Option<&syn::Type>,
    options: Options,
    original: &TokenStream,
) -> Dispatch {
    use syn::visit_mut::VisitMut;

    let (dispatcher_sig, args, mut arg_types) = plain_arguments(sig, self_ty);
    let mut output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(crate::record::replace_self(ty, self_ty)),
    };
    // A method's elided output lifetimes are its receiver's: the pointer type, where `Self`'s
    // own lifetimes (`App<'a>`) are inputs too, must say so.
    let mut binder = None;
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first()
        && matches!(receiver.reference, Some((_, None)))
        && let Some(syn::Type::Reference(first)) = arg_types.first_mut()
    {
        let mut named = NameElided {
            lifetime: syn::Lifetime::new("'__hotswap_self", proc_macro2::Span::call_site()),
            found: true,
        };
        first.lifetime = Some(named.lifetime.clone());
        if let Some(output) = &mut output {
            named.visit_type_mut(output);
        }
        binder = Some(quote!(for<'__hotswap_self>));
    }
    let output = output.map(|ty| quote!(-> #ty));
    let unsafety = &sig.unsafety;
    // Named lifetimes are the dispatcher's own parameters, in scope in its body: the pointer
    // type uses them as they are (a `for<'a>` would shadow them, E0496); elided ones make the
    // pointer type higher-ranked by themselves.
    let fn_type = quote! { #binder #unsafety fn(#(#arg_types),*) #output };
    let record = crate::record::record_items(sig, path, self_ty);
    let rollback = options.rollback;
    let (direct, through, in_closure) = calls(unsafety.is_some(), original, &args);
    let slot = quote! {
        #record

        // SAFETY: the name is unique to this hot function; the host and every patch define it
        // with the one type `Slot`, so when interposition binds a patch's references to the
        // host's slot (as intended: every version dispatches through one slot), they refer to an
        // object of the type they were compiled for.
        #[unsafe(export_name = concat!("__hotswap_slot$", module_path!(), "::", #path))]
        #[doc(hidden)]
        static __HOTSWAP_SLOT: ::hotswap::__private::Slot = ::hotswap::__private::Slot::new();
    };
    if sig.asyncness.is_some() {
        // The body returns its future boxed; the pointer type is that of the exported body.
        let (body_sig, higher_ranked) = async_signature(sig);
        let (_, _, body_types) = plain_arguments(&body_sig, self_ty);
        let body_output = match &body_sig.output {
            ReturnType::Default => quote!(),
            ReturnType::Type(arrow, ty) => {
                let ty = crate::record::replace_self(ty, self_ty);
                quote!(#arrow #ty)
            }
        };
        let binder = higher_ranked.then(|| quote!(for<'__hotswap_life>));
        let fn_type = quote! { #binder #unsafety fn(#(#body_types),*) #body_output };
        let body = quote! {
            #slot

            // The future is chosen and created here, at the call, so each call runs the newest
            // code; nothing but the future is kept across the `.await`.
            let __hotswap_future = match __HOTSWAP_SLOT.get() {
                ::hotswap::__private::Option::None => #direct,
                ::hotswap::__private::Option::Some(__hotswap_ptr) => {
                    // SAFETY: the agent stores into this slot only the address of the exported
                    // body of this same hot function, taken from a patch whose signature check
                    // passed, so the pointer has exactly this type.
                    let __hotswap_f = unsafe {
                        ::hotswap::__private::transmute::<*const (), #fn_type>(__hotswap_ptr)
                    };
                    let __hotswap_future = #through;
                    if __HOTSWAP_SLOT.on_probation(__hotswap_ptr) {
                        ::hotswap::__private::first_poll(
                            &__HOTSWAP_SLOT,
                            __hotswap_ptr,
                            #rollback,
                            concat!(module_path!(), "::", #path),
                            __hotswap_future,
                        )
                    } else {
                        __hotswap_future
                    }
                }
            };
            __hotswap_future.await
        };
        return Dispatch {
            sig: dispatcher_sig,
            body,
        };
    }
    let body = quote! {
        #slot

        match __HOTSWAP_SLOT.get() {
            ::hotswap::__private::Option::None => #direct,
            ::hotswap::__private::Option::Some(__hotswap_ptr) => {
                // SAFETY: the agent stores into this slot only the address of the exported body
                // of this same hot function, taken from a patch whose signature check passed,
                // so the pointer has exactly this type.
                let __hotswap_f = unsafe {
                    ::hotswap::__private::transmute::<*const (), #fn_type>(__hotswap_ptr)
                };
                if __HOTSWAP_SLOT.on_probation(__hotswap_ptr) {
                    ::hotswap::__private::first_call(
                        &__HOTSWAP_SLOT,
                        __hotswap_ptr,
                        #rollback,
                        concat!(module_path!(), "::", #path),
                        #in_closure,
                    )
                } else {
                    #through
                }
            }
        }
    };
    Dispatch {
        sig: dispatcher_sig,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::concrete_alternative;

    fn hint(ty: &str) -> String {
        concrete_alternative(&syn::parse_str(ty).unwrap())
    }

    #[test]
    fn impl_trait_hints_name_the_concrete_type_for_common_traits() {
        assert_eq!(
            hint("impl axum::response::IntoResponse"),
            "return `axum::response::Response`, and end the body with `.into_response()`"
        );
        assert_eq!(hint("impl IntoResponse + Send"), hint("impl IntoResponse"));
        assert_eq!(
            hint("impl Iterator<Item = u32>"),
            "return a `Vec<_>` (collect it), or a `Box<dyn Iterator<Item = _>>`"
        );
        assert_eq!(hint("impl std::fmt::Display"), "return a `String`");
        assert_eq!(hint("impl Into<String>"), "return a `String`");
        assert_eq!(
            hint("impl Fn(u8) -> u8"),
            "return a `Box<dyn Fn(u8) -> u8>`"
        );
        assert_eq!(
            hint("impl Future<Output = ()>"),
            "write an `async fn` instead, which `#[hot]` supports"
        );
        assert_eq!(
            hint("impl Widget"),
            "return the widget's own type (`Paragraph<'a>`, `List<'a>`, `Table<'a>`)"
        );
        assert_eq!(hint("impl Responder"), "return `actix_web::HttpResponse`");
        assert_eq!(
            hint("impl Shape"),
            "return a concrete type, or a `Box<dyn Shape>`"
        );
    }
}
