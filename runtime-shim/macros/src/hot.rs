//! `#[hot]` on a free function: parse, validate, expand into a slot-dispatched function.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, GenericParam, ItemFn, ReturnType, Signature};

/// Entry point of the `#[hot]` attribute: validates the item, then expands it.
///
/// On a validation error the item is emitted unchanged next to the error, so that the user sees
/// the one error and not a cascade of "cannot find function" errors.
pub(crate) fn hot(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        // Another kind of item: say what `#[hot]` applies to.
        Err(_) if syn::parse2::<syn::Item>(item.clone()).is_ok() => {
            let err = syn::Error::new_spanned(
                &item,
                "`#[hot]` applies to free functions: `#[hotswap::hot] fn name(..) { .. }`",
            )
            .to_compile_error();
            return quote! { #err #item };
        }
        // Not valid Rust (a syntax error being typed): rustc reports it on the item itself,
        // so adding an error here would only repeat it.
        Err(_) => return item,
    };
    let errors = validate(&args, &func.sig);
    if !errors.is_empty() {
        let errors = errors.iter().map(syn::Error::to_compile_error);
        return quote! { #(#errors)* #func };
    }
    expand(func)
}

/// Every reason why `sig` cannot be a hot function (yet), each pointing at the offending tokens.
fn validate(args: &TokenStream, sig: &Signature) -> Vec<syn::Error> {
    let mut errors = Vec::new();
    if !args.is_empty() {
        errors.push(syn::Error::new_spanned(
            args,
            "`#[hot]` takes no arguments in this version",
        ));
    }
    if let Some(token) = &sig.asyncness {
        errors.push(syn::Error::new_spanned(
            token,
            "`#[hot]` does not support `async fn` yet: make a non-async hot function that does \
             the work and call it from the async one",
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
    for param in &sig.generics.params {
        if !matches!(param, GenericParam::Lifetime(_)) {
            errors.push(syn::Error::new_spanned(
                param,
                "`#[hot]` does not support generic functions: each instantiation is separate \
                 code; make a non-generic hot function for the types you use and call it",
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
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                "`#[hot]` supports free functions only in this version, not methods",
            )),
            FnArg::Typed(arg) => {
                if contains_impl_trait(&arg.ty) {
                    errors.push(syn::Error::new_spanned(
                        &arg.ty,
                        "`#[hot]` does not support `impl Trait` arguments (they make the \
                         function generic): name a concrete type or use `&dyn Trait`",
                    ));
                }
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && contains_impl_trait(ty)
    {
        errors.push(syn::Error::new_spanned(
            ty,
            "`#[hot]` does not support `impl Trait` return types (the patch's hidden type \
             may differ from the host's): return a `Box<dyn Trait>` instead",
        ));
    }
    errors
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

/// The expansion when cargo-hotswap builds the host or a patch: a dispatcher with the user's
/// signature that loads the slot and calls through it, and the body as an exported function.
#[cfg(feature = "enabled")]
fn expand(func: ItemFn) -> TokenStream {
    use quote::format_ident;
    use syn::spanned::Spanned;

    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let name = &sig.ident;
    let name_str = name.to_string();
    let span = sig.span();
    let impl_name = format_ident!("__hotswap_impl_{}", name, span = span);
    let args: Vec<_> = (0..sig.inputs.len())
        .map(|i| format_ident!("__hotswap_arg{}", i))
        .collect();
    let arg_types: Vec<_> = sig
        .inputs
        .iter()
        .map(|input| match input {
            FnArg::Typed(arg) => &*arg.ty,
            FnArg::Receiver(_) => unreachable!("rejected by validate"),
        })
        .collect();
    let output = &sig.output;
    let unsafety = &sig.unsafety;
    let lifetimes: Vec<_> = sig.generics.lifetimes().collect();
    let for_lifetimes = if lifetimes.is_empty() {
        quote! {}
    } else {
        quote! { for<#(#lifetimes),*> }
    };
    let mut dispatcher_sig = sig.clone();
    for (input, arg) in dispatcher_sig.inputs.iter_mut().zip(&args) {
        if let FnArg::Typed(typed) = input {
            typed.pat = Box::new(syn::parse_quote!(#arg));
        }
    }
    let record = crate::record::record_items(&sig, &name_str);
    let mut impl_sig = sig.clone();
    impl_sig.ident = impl_name.clone();
    let call = if unsafety.is_some() {
        quote! {
            // SAFETY: the caller of this `unsafe fn` upholds its contract, which is the same
            // for every version of its body.
            unsafe { __hotswap_f(#(#args),*) }
        }
    } else {
        quote! { __hotswap_f(#(#args),*) }
    };
    quote! {
        #(#attrs)*
        #vis #dispatcher_sig {
            #[unsafe(export_name = concat!("__hotswap_impl$", module_path!(), "::", #name_str))]
            #[doc(hidden)]
            #impl_sig #block

            #record

            #[unsafe(export_name = concat!("__hotswap_slot$", module_path!(), "::", #name_str))]
            #[doc(hidden)]
            static __HOTSWAP_SLOT: ::hotswap::__private::Slot = ::hotswap::__private::Slot::new();

            let __hotswap_f: #for_lifetimes #unsafety fn(#(#arg_types),*) #output =
                match __HOTSWAP_SLOT.get() {
                    ::core::option::Option::None => #impl_name,
                    ::core::option::Option::Some(__hotswap_ptr) => {
                        // SAFETY: the agent stores into this slot only the address of the
                        // exported body of this same hot function, taken from a patch whose
                        // signature check passed, so the pointer has exactly this type.
                        unsafe {
                            ::core::mem::transmute::<*const (), #for_lifetimes #unsafety fn(#(#arg_types),*) #output>(__hotswap_ptr)
                        }
                    }
                };
            #call
        }
    }
}

/// The expansion in every other build: exactly the plain item.
#[cfg(not(feature = "enabled"))]
fn expand(func: ItemFn) -> TokenStream {
    quote! { #func }
}
