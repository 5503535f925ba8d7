//! What a patch's code is: a hash of every function body with its relocations masked (so that
//! moving code does not count as a change, while a changed callee or constant does), and the
//! mutable statics and thread-locals the crate defines. Read from the crate's own object files,
//! which the linker wrapper keeps for each patch.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use anyhow::Context;
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionIndex, SectionKind, SymbolKind,
};

/// The functions and statics of one build of the crate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CodeIndex {
    /// Demangled function name (without hash) -> hash of its body(ies).
    pub(crate) functions: BTreeMap<String, u64>,
    /// Mutable statics and thread-locals the crate defines, by demangled path.
    pub(crate) statics: BTreeSet<String>,
}

impl CodeIndex {
    /// Indexes every object file in `dir`.
    ///
    /// # Errors
    ///
    /// When the directory or a file cannot be read, or a file is not an object file.
    pub(crate) fn read_dir(dir: &Path, crate_name: &str) -> anyhow::Result<CodeIndex> {
        let mut bodies: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut statics = BTreeSet::new();
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read `{}`", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "o"))
            .collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            let file = object::File::parse(&*data)
                .with_context(|| format!("`{}` is not an object file", path.display()))?;
            index_object(&file, crate_name, &mut bodies, &mut statics);
        }
        let functions = bodies
            .into_iter()
            .map(|(name, mut hashes)| {
                hashes.sort_unstable();
                let mut hasher = DefaultHasher::new();
                hashes.hash(&mut hasher);
                (name, hasher.finish())
            })
            .collect();
        Ok(CodeIndex { functions, statics })
    }

    /// Functions of the crate whose body differs from `previous` or is new, as display names
    /// (see [`display_name`]), sorted and without duplicates.
    pub(crate) fn changed_since(&self, previous: &CodeIndex, crate_name: &str) -> Vec<String> {
        let mut changed = BTreeSet::new();
        for (name, hash) in &self.functions {
            if previous.functions.get(name) != Some(hash)
                && let Some(display) = display_name(name, crate_name)
            {
                changed.insert(display);
            }
        }
        changed.into_iter().collect()
    }
}

/// Adds the functions and statics of one object file.
fn index_object(
    file: &object::File<'_>,
    crate_name: &str,
    bodies: &mut BTreeMap<String, Vec<u64>>,
    statics: &mut BTreeSet<String>,
) {
    let mut section_hashes: std::collections::HashMap<SectionIndex, u64> = Default::default();
    let mut content_hash = |index: SectionIndex| -> u64 {
        *section_hashes.entry(index).or_insert_with(|| {
            let mut hasher = DefaultHasher::new();
            if let Ok(section) = file.section_by_index(index) {
                section.data().unwrap_or_default().hash(&mut hasher);
            }
            hasher.finish()
        })
    };
    for symbol in file.symbols() {
        // Not `is_definition`: `object` does not count thread-locals as definitions.
        if symbol.is_undefined() {
            continue;
        }
        let Ok(name) = symbol.name() else { continue };
        let demangled = format!("{:#}", rustc_demangle::demangle(name));
        let Some(index) = symbol.section_index() else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        match symbol.kind() {
            SymbolKind::Text => {
                let hash = body_hash(file, &section, &symbol, &mut content_hash);
                bodies.entry(demangled).or_default().push(hash);
            }
            SymbolKind::Data | SymbolKind::Tls
                if matches!(
                    section.kind(),
                    SectionKind::Data
                        | SectionKind::UninitializedData
                        | SectionKind::Tls
                        | SectionKind::UninitializedTls
                ) =>
            {
                if let Some(path) = static_name(&demangled, crate_name) {
                    statics.insert(path);
                }
            }
            _ => {}
        }
    }
}

/// A hash of a function's bytes with every relocation's field zeroed and described instead by
/// what it points to: a function by name, data by its content.
fn body_hash(
    file: &object::File<'_>,
    section: &object::Section<'_, '_>,
    symbol: &object::Symbol<'_, '_>,
    content_hash: &mut impl FnMut(SectionIndex) -> u64,
) -> u64 {
    let data = section.data().unwrap_or_default();
    let start = symbol.address().saturating_sub(section.address());
    let end = if symbol.size() == 0 {
        data.len() as u64
    } else {
        start.saturating_add(symbol.size())
    };
    let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
        return 0;
    };
    let mut bytes = data
        .get(start..end.min(data.len()))
        .unwrap_or_default()
        .to_vec();
    let mut hasher = DefaultHasher::new();
    for (offset, relocation) in section.relocations() {
        let Some(at) = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_sub(start))
        else {
            continue;
        };
        if at >= bytes.len() {
            continue;
        }
        let width = usize::from(relocation.size() / 8).max(1);
        for byte in bytes.iter_mut().skip(at).take(width) {
            *byte = 0;
        }
        at.hash(&mut hasher);
        relocation.addend().hash(&mut hasher);
        format!("{:?}", relocation.flags()).hash(&mut hasher);
        if let RelocationTarget::Symbol(target) = relocation.target()
            && let Ok(target) = file.symbol_by_index(target)
        {
            let is_code = target.kind() == SymbolKind::Text;
            match target.section_index() {
                Some(index) if !is_code => content_hash(index).hash(&mut hasher),
                _ => target.name().unwrap_or_default().hash(&mut hasher),
            }
        }
    }
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// How a function is shown to the user: without the crate's name, and a hot function's body as
/// the hot function itself. `None` for code that is not the crate's own (instantiations of
/// dependencies' generics, the standard library).
pub(crate) fn display_name(demangled: &str, crate_name: &str) -> Option<String> {
    // A hot function's body is exported under a stable, unmangled name.
    let demangled = demangled
        .strip_prefix(hotswap::protocol::IMPL_PREFIX)
        .unwrap_or(demangled);
    let prefix = format!("{crate_name}::");
    let own = demangled.starts_with(&prefix) || demangled.starts_with(&format!("<{prefix}"));
    if !own {
        return None;
    }
    let mut name = demangled.replacen(&prefix, "", 1);
    if let Some(at) = name.find("::__hotswap_impl_") {
        name.truncate(at);
    }
    Some(name.replace("{{closure}}", "{closure}"))
}

/// The path of a static or thread-local as the user wrote it: `COUNTER`, `state::CACHE`.
fn static_name(demangled: &str, crate_name: &str) -> Option<String> {
    let path = demangled.strip_prefix(crate_name)?.strip_prefix("::")?;
    // Statics that `#[hot]` generates are shared with the host by interposition.
    if path.contains("__HOTSWAP_") {
        return None;
    }
    // A `thread_local!` is `NAME::{{constant}}::{{closure}}::VAL` and the like.
    let path = path.split("::{{").next().unwrap_or(path);
    Some(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_hide_the_crate_and_the_generated_body() {
        let name = |s| display_name(s, "app");
        assert_eq!(name("app::render::frame"), Some("render::frame".into()));
        assert_eq!(
            name("app::format_time::__hotswap_impl_format_time"),
            Some("format_time".into())
        );
        assert_eq!(name("__hotswap_impl$app::m::tick"), Some("m::tick".into()));
        assert_eq!(
            name("app::main::{{closure}}"),
            Some("main::{closure}".into())
        );
        assert_eq!(
            name("<app::Logger as log::Log>::log"),
            Some("<Logger as log::Log>::log".into())
        );
        assert_eq!(name("core::ptr::drop_in_place<app::State>"), None);
        assert_eq!(name("application::x"), None);
    }

    #[test]
    fn static_names_are_the_written_paths() {
        assert_eq!(static_name("app::COUNTER", "app"), Some("COUNTER".into()));
        assert_eq!(
            static_name("app::CACHE::{{constant}}::{{closure}}::VAL", "app"),
            Some("CACHE".into())
        );
        assert_eq!(static_name("app::f::__HOTSWAP_SLOT", "app"), None);
        assert_eq!(static_name("log::LOGGER", "app"), None);
    }
}
