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

/// The global allocator's entry points, which `#[global_allocator]` makes rustc generate in the
/// crate that has it (calling the allocator's methods), and its allocator shim otherwise:
/// `__rust_alloc` first.
pub(crate) const ALLOCATOR_ENTRIES: [&str; 4] = [
    "__rust_alloc",
    "__rust_dealloc",
    "__rust_realloc",
    "__rust_alloc_zeroed",
];

/// Whether the demangled symbol `name` is one of the [`ALLOCATOR_ENTRIES`], in whatever crate
/// (`app::__rust_alloc`, `__rustc::__rust_alloc`). Names are compared by their ending, not
/// split: most names are long, and few end like an entry point.
pub(crate) fn is_allocator_entry(name: &str) -> bool {
    ALLOCATOR_ENTRIES.iter().any(|entry| {
        name.strip_suffix(entry)
            .is_some_and(|rest| rest.is_empty() || rest.ends_with("::"))
    })
}

/// Whether the rlib at `path` defines the global allocator's entry points (see
/// [`ALLOCATOR_ENTRIES`]: `#[global_allocator]` in its crate), from the archive's symbol index;
/// `None` when it cannot be read. Only names that spell `__rust_` are demangled.
pub(crate) fn defines_global_allocator(path: &Path) -> Option<bool> {
    let names = archive_symbols(path).ok()?;
    Some(
        names
            .iter()
            .any(|name| name.contains("__rust_") && is_allocator_entry(&demangle(name))),
    )
}

/// The names of the symbols the archive at `path` defines, from its symbol index (the archive
/// itself is read only that far).
///
/// # Errors
///
/// When the file cannot be read or is not an archive.
pub(crate) fn archive_symbols(path: &Path) -> Result<Vec<String>, String> {
    let file = std::fs::File::open(path)
        .map_err(|err| format!("cannot read `{}`: {err}", path.display()))?;
    let cache = object::read::ReadCache::new(file);
    let archive =
        ArchiveFile::parse(&cache).map_err(|err| format!("`{}`: {err}", path.display()))?;
    let mut names = Vec::new();
    for symbol in archive
        .symbols()
        .map_err(|err| format!("`{}`: {err}", path.display()))?
        .into_iter()
        .flatten()
    {
        let symbol = symbol.map_err(|err| format!("`{}`: {err}", path.display()))?;
        names.push(String::from_utf8_lossy(symbol.name()).into_owned());
    }
    Ok(names)
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
