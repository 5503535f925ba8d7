//! Which functions an edit of a Rust file changed, read from the source: the trigger that lets
//! a patch be compiled without `-C link-dead-code`.
//!
//! A patch compiled as a plain cdylib holds only the code its exported hot functions reach, so
//! its code index cannot see an edit of code that only start-up reaches (what `main` calls).
//! The session therefore compares each edited file with its text at the last baseline, item by
//! item (syn's token streams, so comments and layout do not count): when only function items
//! changed and every one of them was compiled into the patch (its debug info says so), the
//! patch is complete; otherwise (a `const`, a type, a macro, a `use` changed, or a changed
//! function is not in the patch) the session also builds the crate with every function
//! compiled, and judges what only start-up reaches from that build.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use quote::ToTokens;
use syn::spanned::Spanned;

/// A function item whose tokens changed (or that is new), in the file's new text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangedFn {
    /// The function as the file scopes it: `render`, `impl Display for Money :: fmt`,
    /// `mod inner :: helper` (for messages).
    pub(crate) name: String,
    /// The 1-based lines from the item's first attribute to its name: the line rustc's debug
    /// info declares the function at (`DW_AT_decl_line`) is among them.
    pub(crate) lines: RangeInclusive<u64>,
}

/// The items of one file: its functions by scope and name, and everything else as text.
#[derive(Default)]
struct Items {
    /// `scope fn name` -> the tokens of each item of that name (two under `#[cfg]`s), with
    /// where it is.
    functions: BTreeMap<String, Vec<(String, ChangedFn)>>,
    /// Every other item (and the headers of `impl`s, traits and inline modules), as tokens.
    other: Vec<String>,
}

/// The function items of `new` whose tokens differ from those in `old`, or that `old` lacks;
/// `None` when any other item changed (or either text does not parse), which only a build with
/// every function compiled can judge. Removed functions are not listed: their callers changed.
pub(crate) fn changed_fns(old: &str, new: &str) -> Option<Vec<ChangedFn>> {
    let old = items(old)?;
    let new = items(new)?;
    let (mut old_other, mut new_other) = (old.other, new.other);
    old_other.sort_unstable();
    new_other.sort_unstable();
    if old_other != new_other {
        return None;
    }
    let mut changed = Vec::new();
    for (key, versions) in new.functions {
        let before = old.functions.get(&key);
        for (tokens, function) in versions {
            if !before.is_some_and(|b| b.iter().any(|(t, _)| *t == tokens)) {
                changed.push(function);
            }
        }
    }
    Some(changed)
}

/// The items of the Rust file `text`, `None` if it does not parse.
fn items(text: &str) -> Option<Items> {
    let file = syn::parse_file(text).ok()?;
    let mut items = Items::default();
    let attrs = file.attrs.iter().map(|a| a.to_token_stream().to_string());
    items.other.extend(attrs);
    collect(&file.items, "", &mut items);
    Some(items)
}

/// Adds `list` (in `scope`, a prefix like `mod inner :: `) to `items`.
fn collect(list: &[syn::Item], scope: &str, items: &mut Items) {
    for item in list {
        match item {
            syn::Item::Fn(function) => {
                let name = format!("{scope}{}", function.sig.ident);
                let lines = lines(function.span(), function.sig.ident.span());
                add_fn(items, name, function.to_token_stream().to_string(), lines);
            }
            syn::Item::Impl(block) => {
                let mut header = block.clone();
                header.items.clear();
                let members = block.items.iter().map(|inner| match inner {
                    syn::ImplItem::Fn(method) => Ok((&method.sig.ident, method.span(), method)),
                    other => Err(other.to_token_stream().to_string()),
                });
                add_block(items, scope, header.to_token_stream().to_string(), members);
            }
            syn::Item::Trait(definition) => {
                let mut header = definition.clone();
                header.items.clear();
                let members = definition.items.iter().map(|inner| match inner {
                    syn::TraitItem::Fn(method) if method.default.is_some() => {
                        Ok((&method.sig.ident, method.span(), method))
                    }
                    other => Err(other.to_token_stream().to_string()),
                });
                add_block(items, scope, header.to_token_stream().to_string(), members);
            }
            syn::Item::Mod(module) if module.content.is_some() => {
                let mut header = module.clone();
                header.content = None;
                items.other.push(header.to_token_stream().to_string());
                let inner = format!("{scope}mod {} :: ", module.ident);
                let content = module.content.as_ref().map_or(&[][..], |(_, c)| c);
                collect(content, &inner, items);
            }
            other => items.other.push(other.to_token_stream().to_string()),
        }
    }
}

/// Adds an `impl` or trait block of `header` (its text without items): each member is a
/// function with a body (`Ok`: its name, span and item) or the text of another item (`Err`),
/// which counts with the header.
fn add_block<'a, T: ToTokens + 'a>(
    items: &mut Items,
    scope: &str,
    header: String,
    members: impl Iterator<Item = Result<(&'a syn::Ident, proc_macro2::Span, &'a T), String>>,
) {
    let mut rest = vec![header.clone()];
    for member in members {
        match member {
            Ok((ident, span, method)) => {
                let name = format!("{scope}{header} :: {ident}");
                let lines = lines(span, ident.span());
                add_fn(items, name, method.to_token_stream().to_string(), lines);
            }
            Err(other) => rest.push(other),
        }
    }
    items.other.push(rest.join(" "));
}

/// Records the function `name` with its `tokens`.
fn add_fn(items: &mut Items, name: String, tokens: String, lines: RangeInclusive<u64>) {
    let entry = items.functions.entry(name.clone()).or_default();
    entry.push((tokens, ChangedFn { name, lines }));
}

/// The lines from the start of `item` to its name `ident`.
fn lines(item: proc_macro2::Span, ident: proc_macro2::Span) -> RangeInclusive<u64> {
    let line = |at: proc_macro2::LineColumn| u64::try_from(at.line).unwrap_or(u64::MAX);
    line(item.start())..=line(ident.start())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
const GREETING: &str = \"hi\";

/// Says hello.
#[inline(never)]
pub fn hello(name: &str) -> String {
    format!(\"{GREETING} {name}\")
}

fn setup() -> u32 { 1 }

struct Money(u64);

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, \"{}\", self.0)
    }
}

mod inner {
    pub fn helper() -> u32 { 2 }
}
";

    fn names(changed: Option<Vec<ChangedFn>>) -> Option<Vec<(String, RangeInclusive<u64>)>> {
        changed.map(|c| c.into_iter().map(|f| (f.name, f.lines)).collect())
    }

    #[test]
    fn comments_and_layout_change_no_function() {
        let after = BEFORE.replace(
            "fn setup() -> u32 { 1 }",
            "// set up\nfn setup()\n -> u32 { 1 }",
        );
        assert_eq!(names(changed_fns(BEFORE, &after)), Some(vec![]));
    }

    #[test]
    fn body_edits_are_the_changed_functions_with_their_lines() {
        let after = BEFORE
            .replace("{GREETING} {name}", "{GREETING}, {name}!")
            .replace("self.0)", "self.0 / 100)")
            .replace("{ 2 }", "{ 3 }");
        assert_eq!(
            names(changed_fns(BEFORE, &after)),
            Some(vec![
                ("hello".to_owned(), 3..=5),
                (
                    "impl std :: fmt :: Display for Money { } :: fmt".to_owned(),
                    14..=14
                ),
                ("mod inner :: helper".to_owned(), 20..=20),
            ])
        );
    }

    #[test]
    fn a_new_function_is_changed_and_a_removed_one_is_not() {
        let after = BEFORE.replace("fn setup() -> u32 { 1 }", "fn start() -> u32 { 1 }");
        assert_eq!(
            names(changed_fns(BEFORE, &after)),
            Some(vec![("start".to_owned(), 9..=9)])
        );
    }

    #[test]
    fn any_other_item_needs_every_function_compiled() {
        for (from, to) in [
            ("\"hi\"", "\"hello\""),
            ("struct Money(u64);", "struct Money(u32);"),
            (
                "impl std::fmt::Display for Money",
                "impl std::fmt::Debug for Money",
            ),
            ("mod inner {", "pub mod inner {"),
            (
                "fn setup() -> u32 { 1 }",
                "fn setup() -> u32 { 1 }\nuse std::fmt;",
            ),
        ] {
            assert!(BEFORE.contains(from), "{from}");
            let after = BEFORE.replace(from, to);
            assert_eq!(names(changed_fns(BEFORE, &after)), None, "{to}");
        }
        assert_eq!(names(changed_fns(BEFORE, "fn broken(")), None);
    }
}
