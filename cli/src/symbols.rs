//! Reading symbols from object files, rlibs and patches with the `object` crate.

use std::path::Path;

use anyhow::{Context, bail};
use object::read::archive::ArchiveFile;
use object::{Object, ObjectSymbol};

/// The mangled name of `<crate_name>::main` in the rlib at `rlib`.
///
/// The rlib is compiled with `-C link-dead-code`, which makes rustc keep the private `main` as a
/// global (hidden) symbol that the host shim's objects can call.
///
/// # Errors
///
/// When the rlib cannot be read or holds no such symbol.
pub(crate) fn find_main_symbol(rlib: &Path, crate_name: &str) -> anyhow::Result<String> {
    let data = std::fs::read(rlib).with_context(|| format!("cannot read `{}`", rlib.display()))?;
    let archive = ArchiveFile::parse(&*data)
        .with_context(|| format!("`{}` is not an rlib", rlib.display()))?;
    let wanted = format!("{crate_name}::main");
    for member in archive.members() {
        let member = member.with_context(|| format!("malformed rlib `{}`", rlib.display()))?;
        if !member.name().ends_with(b".o") {
            continue;
        }
        let Ok(bytes) = member.data(&*data) else {
            continue;
        };
        let Ok(file) = object::File::parse(bytes) else {
            continue;
        };
        for symbol in file.symbols() {
            if !symbol.is_definition() {
                continue;
            }
            let Ok(name) = symbol.name() else { continue };
            if demangle(name) == wanted {
                return Ok(name.to_owned());
            }
        }
    }
    bail!(
        "`{}` defines no `{wanted}` function\nhelp: the bin target's `main` must be a plain \
         `fn main()` at the crate root",
        rlib.display()
    )
}

/// Whether the object file at `path` is rustc's allocator shim: it defines
/// `__rustc::__rust_no_alloc_shim_is_unstable_v2` (rustc 1.95; the suffix is not compared). The
/// shim defines `__rust_alloc` and the like too, unless the crate linked defines the global
/// allocator itself (`#[global_allocator]`): a codegen unit of the crate then defines those.
/// Unreadable files are not the shim: the link then reports them itself.
///
/// Every object of a patch's link is asked, so only the file's symbol table is read, and only
/// names that spell the marker are demangled: reading and demangling the medium benchmark
/// fixture's 256 objects whole took 20 ms of every patch's link.
pub(crate) fn is_allocator_shim(path: &Path) -> bool {
    const MARKER: &str = "__rust_no_alloc_shim_is_unstable";
    let Ok(data) = std::fs::read(path) else {
        return false;
    };
    let Ok(file) = object::File::parse(&*data) else {
        return false;
    };
    file.symbols().any(|symbol| {
        symbol.is_definition()
            && symbol.name().is_ok_and(|name| {
                name.contains(MARKER) && {
                    let demangled = demangle(name);
                    let last = demangled.rsplit("::").next().unwrap_or(&demangled);
                    last.starts_with(MARKER)
                }
            })
    })
}

/// Whether the rlib at `path` defines the global allocator's entry point `__rust_alloc`
/// (`#[global_allocator]` in its crate), from the archive's symbol index; `None` when it cannot
/// be read.
pub(crate) fn defines_global_allocator(path: &Path) -> Option<bool> {
    let file = std::fs::File::open(path).ok()?;
    let cache = object::read::ReadCache::new(file);
    let archive = ArchiveFile::parse(&cache).ok()?;
    let symbols = archive.symbols().ok()??;
    let mut found = false;
    for symbol in symbols {
        let name = symbol.ok()?.name();
        if name.windows(12).any(|w| w == b"__rust_alloc") {
            let name = String::from_utf8_lossy(name);
            let demangled = demangle(&name);
            found |= demangled == "__rust_alloc" || demangled.ends_with("::__rust_alloc");
        }
    }
    Some(found)
}

/// A hot function's path without the crate's own name, as messages show it: `render::frame`.
pub(crate) fn short_name(path: &str, crate_name: &str) -> String {
    as_written(
        path.strip_prefix(crate_name)
            .and_then(|rest| rest.strip_prefix("::"))
            .unwrap_or(path),
    )
}

/// A hot function's path as written: a trait method's, which `#[hot]` exports as
/// `Price$as$Display::fmt` (a linker's version script takes no `<` or space), becomes
/// `<Price as Display>::fmt`; any other path is unchanged.
pub(crate) fn as_written(path: &str) -> String {
    if let Some((owner, method)) = path.rsplit_once("::")
        && let Some((ty, tr)) = owner.split_once("$as$")
    {
        return format!("<{ty} as {tr}>::{method}");
    }
    path.to_owned()
}

/// A symbol's name as people read it: demangled, without the legacy scheme's hash
/// (`_ZN3app4main17h…E` -> `app::main`); other names unchanged.
pub(crate) fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}
