//! Thin patches under entry redirection: a patch links only the codegen units an edit compiled
//! again, and its references to the rest of the crate bind to the running executable's copies.
//!
//! Under redirection every function whose code changed is redirected in the running program,
//! so the program's code of a unit the edit did not touch behaves as the new code would: a
//! patch needs only the objects that define a changed or new function (and those that define
//! hot functions: their records are read from every patch). A hot function's patch without
//! redirection cannot be thin: the program's unchanged code that its new code calls would go
//! on calling the old code of what changed. Which objects changed, the linker wrapper tells
//! from their identity ([`ObjectId`]): rustc hard-links the object of a codegen unit it did not
//! compile again out of its incremental cache, so an object whose identity is one of the
//! baseline build's (the unchanged sources the executable was built from, see
//! [`record_baseline`]) holds exactly the code the executable runs.
//!
//! Two things stand between such a patch and the executable's copies:
//!
//! * rustc gives the crate's private functions, and the generic instances it compiles for
//!   itself, hidden visibility (`STV_HIDDEN`), which a linker never puts in the dynamic symbol
//!   table. [`export_hidden`] makes them default in the rlib the host is linked from (one byte
//!   of each symbol, in place), so that the host exports them with the rest (`-rdynamic`).
//! * In the patch's objects the references to them are hidden too, and code takes an address
//!   with `lea S(%rip)`, which cannot reach another module. [`thin`] makes those references
//!   default and rewrites each such `lea` into a load from the global offset table, as
//!   [`super::statics`] does for statics.
//!
//! Whatever cannot be left to the executable (a symbol it does not export, a reference of
//! another kind: a thread-local's, a load in place) brings the object that defines it into the
//! patch, and so on until nothing is missing: a patch is never less than correct, only bigger.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, Rela, SectionHeader, Sym};

use crate::check::code::ObjectId;

use super::statics::{Parsed, Rewrite, apply_rewrites, lea_opcode, parse, remove_other_copies};

/// The file, beside a patch build's kept objects, that lists the identities of the baseline
/// build's objects (JSON, a list of [`ObjectId`]); absent when there is no baseline of the
/// running executable's sources.
const BASELINE_OBJECTS: &str = "baseline-objects.json";

/// The start of the names of the symbols that the runtime crate's macros export (`#[hot]`'s
/// implementations, slots and records, `persist!`'s statics and layouts).
const RUNTIME_PREFIX: &str = "__hotswap_";

/// Patch mode: the host executable, whose dynamic symbol table says what a thin patch can
/// leave to it.
pub(crate) const HOST_EXE_ENV: &str = "HOTSWAP_HOST_EXE";

/// Where the baseline's object identities are kept for the objects directory `objects_dir`.
fn baseline_file(objects_dir: &Path) -> std::path::PathBuf {
    objects_dir.with_file_name(BASELINE_OBJECTS)
}

/// Records the identities of the objects in `objects_dir` (a baseline build's, just built from
/// the sources the running executable was built from), for the patches after it.
///
/// # Errors
///
/// When the directory cannot be listed or the record cannot be written; then no record is left
/// (every later patch links every object).
pub(crate) fn record_baseline(objects_dir: &Path) -> anyhow::Result<()> {
    forget_baseline(objects_dir);
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(objects_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "o") {
            ids.push(ObjectId::of(&path)?);
        }
    }
    let text = serde_json::to_vec(&ids)?;
    super::capture::write_private(&baseline_file(objects_dir), &text)
}

/// Removes the record of [`record_baseline`] for `objects_dir`: called before a new executable's
/// baseline is built, so that no patch is ever thinned against another executable's code.
pub(crate) fn forget_baseline(objects_dir: &Path) {
    let _ = std::fs::remove_file(baseline_file(objects_dir));
}

/// Makes every hidden symbol that an object of the rlib at `rlib` defines (functions and data,
/// global or weak), and every hidden reference to one, default, in place, so that the executable linked from it with `-rdynamic`
/// exports them. Returns how many symbols changed. Sizes and offsets stay as they are: only
/// each symbol's `st_other` byte changes, and the archive's own symbol index does not record
/// visibility.
///
/// # Errors
///
/// When the file cannot be read or written, or is not an archive of ELF objects.
pub(crate) fn export_hidden(rlib: &Path) -> anyhow::Result<usize> {
    use anyhow::Context;
    use std::os::unix::fs::FileExt;
    let data = std::fs::read(rlib).with_context(|| format!("cannot read `{}`", rlib.display()))?;
    let archive = object::read::archive::ArchiveFile::parse(&*data)
        .with_context(|| format!("`{}` is not an rlib", rlib.display()))?;
    let mut changes: Vec<(u64, u8)> = Vec::new();
    for member in archive.members() {
        let member = member.with_context(|| format!("malformed rlib `{}`", rlib.display()))?;
        if !member.name().ends_with(b".o") {
            continue;
        }
        let (start, size) = member.file_range();
        let Some(bytes) = usize::try_from(start)
            .ok()
            .and_then(|start| data.get(start..start + usize::try_from(size).ok()?))
        else {
            continue;
        };
        let Ok(header) = elf::FileHeader64::<LE>::parse(bytes) else {
            continue;
        };
        let sections = header
            .sections(LE, bytes)
            .with_context(|| format!("malformed object in `{}`", rlib.display()))?;
        for section in sections.iter() {
            if section.sh_type(LE) != elf::SHT_SYMTAB {
                continue;
            }
            let table = section.sh_offset(LE);
            let entry = std::mem::size_of::<elf::Sym64<LE>>() as u64;
            let symbols: &[elf::Sym64<LE>] = section
                .data_as_array(LE, bytes)
                .map_err(|err| anyhow::anyhow!("`{}`: {err}", rlib.display()))?;
            for (index, symbol) in symbols.iter().enumerate() {
                // A reference's visibility counts too: the linker gives a symbol the most
                // constraining one of its definition and every reference to it.
                let defined = symbol.st_shndx(LE) != elf::SHN_UNDEF;
                let exportable = if defined {
                    matches!(symbol.st_type(), elf::STT_FUNC | elf::STT_OBJECT)
                } else {
                    symbol.st_type() == elf::STT_NOTYPE
                };
                let exportable = exportable
                    && matches!(symbol.st_bind(), elf::STB_GLOBAL | elf::STB_WEAK)
                    && symbol.st_visibility() == elf::STV_HIDDEN;
                if exportable {
                    // `st_other` is the sixth byte of an `Elf64_Sym`.
                    let at = start + table + index as u64 * entry + 5;
                    changes.push((at, (symbol.st_other & !3) | elf::STV_DEFAULT));
                }
            }
        }
    }
    if !changes.is_empty() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(rlib)
            .with_context(|| format!("cannot write `{}`", rlib.display()))?;
        for (at, byte) in &changes {
            file.write_all_at(&[*byte], *at)
                .with_context(|| format!("cannot write `{}`", rlib.display()))?;
        }
    }
    Ok(changes.len())
}

/// What an object refers to that it does not define: for each undefined global symbol, whether
/// every reference to it can bind to another module (after the rewrites listed), and where its
/// symbol table entries are.
#[derive(Default)]
struct Refs {
    /// The undefined symbols by name.
    by_name: HashMap<String, Ref>,
}

/// The references of one object to one undefined symbol.
#[derive(Default)]
struct Ref {
    /// Whether every reference can bind to another module: a call through the PLT, a load
    /// from the GOT, an address in writable data or in debug info, or an address taken with a
    /// `lea` that [`Ref::leas`] rewrites into a GOT load.
    leavable: bool,
    /// File offsets of the `st_other` bytes of its symbol table entries.
    entries: Vec<usize>,
    /// The `lea` rewrites that its references need to bind elsewhere.
    leas: Vec<Rewrite>,
}

/// Reads the undefined global symbols of the object `data` and how it refers to each.
fn references(data: &[u8]) -> Result<Refs, String> {
    let Parsed { sections, symbols } = parse(data)?;
    let symtab_offset = sections
        .iter()
        .find(|s| s.sh_type(LE) == elf::SHT_SYMTAB)
        .map_or(0, |s| s.sh_offset(LE) as usize);
    let entry = std::mem::size_of::<elf::Sym64<LE>>();
    // Symbol index -> name, for the undefined global ones.
    let mut undefined: HashMap<usize, String> = HashMap::new();
    let mut refs = Refs::default();
    for (index, symbol) in symbols.iter().enumerate() {
        if symbol.st_shndx(LE) != elf::SHN_UNDEF || symbol.st_bind() == elf::STB_LOCAL {
            continue;
        }
        let Ok(name) = symbols.symbol_name(LE, symbol) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let at = symtab_offset + index * entry + 5;
        let found = refs.by_name.entry(name.clone()).or_insert_with(|| Ref {
            leavable: symbol.st_type() != elf::STT_TLS,
            ..Ref::default()
        });
        found.entries.push(at);
        undefined.insert(index, name);
    }
    for section in sections.iter() {
        let Some((relocations, _)) = section.rela(LE, data).map_err(|e| e.to_string())? else {
            continue;
        };
        let target = object::SectionIndex(section.sh_info(LE) as usize);
        let Ok(applied) = sections.section(target) else {
            continue;
        };
        let flags = applied.sh_flags(LE);
        let code = flags & u64::from(elf::SHF_EXECINSTR) != 0;
        let writable = flags & u64::from(elf::SHF_WRITE) != 0;
        let allocated = flags & u64::from(elf::SHF_ALLOC) != 0;
        let code_start = applied.sh_offset(LE) as usize;
        let code_len = applied.sh_size(LE) as usize;
        let rela_start = section.sh_offset(LE) as usize;
        for (i, relocation) in relocations.iter().enumerate() {
            let symbol = relocation.r_sym(LE, false);
            let Some(name) = undefined.get(&(symbol as usize)) else {
                continue;
            };
            let Some(found) = refs.by_name.get_mut(name) else {
                continue;
            };
            let at = relocation.r_offset(LE) as usize;
            let leavable = match relocation.r_type(LE, false) {
                elf::R_X86_64_PLT32
                | elf::R_X86_64_GOTPCREL
                | elf::R_X86_64_GOTPCRELX
                | elf::R_X86_64_REX_GOTPCRELX => true,
                elf::R_X86_64_64 => writable || !allocated,
                elf::R_X86_64_32 => !allocated,
                elf::R_X86_64_PC32 if code && relocation.r_addend(LE) == -4 => {
                    match lea_opcode(data, code_start, code_len, at) {
                        Some(opcode) => {
                            found.leas.push(Rewrite {
                                opcode: Some(opcode),
                                info: rela_start + i * std::mem::size_of::<elf::Rela64<LE>>() + 8,
                                symbol,
                            });
                            true
                        }
                        None => false,
                    }
                }
                _ => false,
            };
            found.leavable &= leavable;
        }
    }
    Ok(refs)
}

/// The names of the global symbols the object `data` defines.
fn definitions(data: &[u8]) -> Result<Vec<String>, String> {
    let Parsed { symbols, .. } = parse(data)?;
    Ok(symbols
        .iter()
        .filter(|s| s.st_bind() != elf::STB_LOCAL && s.st_shndx(LE) != elf::SHN_UNDEF)
        .filter_map(|s| symbols.symbol_name(LE, s).ok())
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect())
}

/// The file, beside the thin patch's rewritten objects, that keeps what [`thin`] read of each
/// object's definitions (JSON: `(ObjectId, names)` pairs), for the next patch.
const DEFINITIONS_CACHE: &str = "definitions-cache.json";

/// The host executable's dynamic symbol table, looked up through its GNU hash table (the file
/// is read only where a lookup goes: an executable's `.dynstr` alone is megabytes).
struct Exports {
    cache: object::read::ReadCache<std::fs::File>,
}

impl Exports {
    fn open(path: &Path) -> Result<Exports, String> {
        let file = std::fs::File::open(path)
            .map_err(|err| format!("cannot read `{}`: {err}", path.display()))?;
        Ok(Exports {
            cache: object::read::ReadCache::new(file),
        })
    }

    /// Which of `names` the executable defines and exports.
    fn defined<'n>(
        &self,
        names: impl Iterator<Item = &'n str>,
    ) -> Result<HashSet<&'n str>, String> {
        let data = &self.cache;
        let header = elf::FileHeader64::<LE>::parse(data).map_err(|err| err.to_string())?;
        let sections = header.sections(LE, data).map_err(|err| err.to_string())?;
        let symbols = sections
            .symbols(LE, data, elf::SHT_DYNSYM)
            .map_err(|err| err.to_string())?;
        let Some((hash, _)) = sections.gnu_hash(LE, data).map_err(|err| err.to_string())? else {
            return Ok(HashSet::new());
        };
        let versions = sections
            .versions(LE, data)
            .map_err(|err| err.to_string())?
            .unwrap_or_default();
        Ok(names
            .filter(|name| {
                let bytes = name.as_bytes();
                hash.find(LE, bytes, elf::gnu_hash(bytes), None, &symbols, &versions)
                    .is_some_and(|(_, symbol)| symbol.st_shndx(LE) != elf::SHN_UNDEF)
            })
            .collect())
    }
}

/// Thins a redirection patch's link: of the crate's objects among `args` (each kept, under its
/// file name, in `objects_dir`), drops those whose identity is one of the baseline's, and makes
/// the references of the others to what they define bind to the executable at `host`, which
/// exports it (see the module's documentation). Returns `args` with the dropped objects gone
/// and each rewritten object's path replaced by its copy's (in `dir`).
///
/// Only sound under entry redirection: there every function that changed is redirected in the
/// running program too, so the program's unchanged code that the patch calls reaches the new
/// code of whatever it calls in turn, and the crate's statics are shared (see
/// [`super::statics`]). A hot function's patch must carry everything its new code can reach.
///
/// Without a baseline record, or when every object changed, `args` are returned as they are.
///
/// # Errors
///
/// When an object or the executable cannot be read or parsed, or `dir` cannot be written.
pub(crate) fn thin(
    args: Vec<String>,
    objects_dir: &Path,
    host: &Path,
    dir: &Path,
) -> Result<Vec<String>, String> {
    let Some(baseline) = std::fs::read(baseline_file(objects_dir))
        .ok()
        .and_then(|text| serde_json::from_slice::<HashSet<ObjectId>>(&text).ok())
    else {
        return Ok(args);
    };
    struct Unit {
        arg: usize,
        path: String,
        id: ObjectId,
    }
    let mut units = Vec::new();
    for (arg, path) in args.iter().enumerate() {
        if !path.ends_with(".o") || path.starts_with('-') {
            continue;
        }
        let Some(name) = Path::new(path).file_name() else {
            continue;
        };
        let id = ObjectId::of(&objects_dir.join(name)).map_err(|err| format!("{err:#}"))?;
        units.push(Unit {
            arg,
            path: path.clone(),
            id,
        });
    }
    if units.iter().all(|u| !baseline.contains(&u.id)) {
        return Ok(args);
    }
    std::fs::create_dir_all(dir)
        .map_err(|err| format!("cannot create `{}`: {err}", dir.display()))?;
    let read =
        |path: &str| std::fs::read(path).map_err(|err| format!("cannot read `{path}`: {err}"));
    // Who defines what, from the cache for the objects seen before.
    let cache_path = dir.join(DEFINITIONS_CACHE);
    let known: HashMap<ObjectId, Vec<String>> = std::fs::read(&cache_path)
        .ok()
        .and_then(|text| serde_json::from_slice::<Vec<(ObjectId, Vec<String>)>>(&text).ok())
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default();
    let mut defined_by: Vec<Vec<String>> = Vec::with_capacity(units.len());
    let mut data: HashMap<usize, Vec<u8>> = HashMap::new();
    for (index, unit) in units.iter().enumerate() {
        let found = match known.get(&unit.id) {
            Some(found) => found.clone(),
            None => {
                let bytes = read(&unit.path)?;
                let found = definitions(&bytes).map_err(|err| format!("`{}`: {err}", unit.path))?;
                data.insert(index, bytes);
                found
            }
        };
        defined_by.push(found);
    }
    let next: Vec<(ObjectId, &Vec<String>)> =
        units.iter().map(|u| u.id).zip(defined_by.iter()).collect();
    if let Ok(text) = serde_json::to_vec(&next) {
        let _ = std::fs::write(&cache_path, text);
    }
    // The changed objects, and those that define what the runtime crate's macros export (hot
    // functions, their records and slots, persisted statics): the gate and the agent read
    // those from every patch.
    let mut included: Vec<bool> = units
        .iter()
        .zip(&defined_by)
        .map(|(unit, found)| {
            !baseline.contains(&unit.id) || found.iter().any(|n| n.starts_with(RUNTIME_PREFIX))
        })
        .collect();
    let mut definer: HashMap<&str, usize> = HashMap::new();
    for (index, found) in defined_by.iter().enumerate() {
        for name in found {
            definer.entry(name.as_str()).or_insert(index);
        }
    }
    let exports = Exports::open(host)?;
    // The objects the patch links: the changed ones, and whatever they need that cannot be
    // left to the executable, until nothing more is needed.
    let mut refs: HashMap<usize, Refs> = HashMap::new();
    loop {
        for index in 0..units.len() {
            if included[index] && !refs.contains_key(&index) {
                let bytes = match data.remove(&index) {
                    Some(bytes) => bytes,
                    None => read(&units[index].path)?,
                };
                let found =
                    references(&bytes).map_err(|err| format!("`{}`: {err}", units[index].path))?;
                data.insert(index, bytes);
                refs.insert(index, found);
            }
        }
        let elsewhere: Vec<(&str, bool)> = refs
            .values()
            .flat_map(|r| r.by_name.iter())
            .filter(|(name, _)| definer.get(name.as_str()).is_some_and(|&d| !included[d]))
            .map(|(name, r)| (name.as_str(), r.leavable))
            .collect();
        let exported = exports.defined(elsewhere.iter().map(|(name, _)| *name))?;
        let mut added = false;
        for (name, leavable) in &elsewhere {
            if !(*leavable && exported.contains(name)) {
                let d = definer[name];
                added |= !included[d];
                included[d] = true;
            }
        }
        if !added {
            break;
        }
    }
    // Rewrite the references left to the executable.
    let mut replaced: HashMap<usize, String> = HashMap::new();
    for (&index, found) in &refs {
        let mut bytes: Option<Vec<u8>> = None;
        for (name, r) in &found.by_name {
            if definer.get(name.as_str()).is_none_or(|&d| included[d]) {
                continue;
            }
            let bytes = bytes.get_or_insert_with(|| data.remove(&index).unwrap_or_default());
            for &at in &r.entries {
                bytes[at] = (bytes[at] & !3) | elf::STV_DEFAULT;
            }
            apply_rewrites(bytes, &r.leas);
        }
        if let Some(bytes) = bytes {
            let unit = &units[index];
            let name = Path::new(&unit.path)
                .file_name()
                .ok_or_else(|| format!("`{}` has no file name", unit.path))?;
            let to = dir.join(name);
            let _ = std::fs::remove_file(&to);
            std::fs::write(&to, &bytes)
                .map_err(|err| format!("cannot write `{}`: {err}", to.display()))?;
            replaced.insert(unit.arg, to.display().to_string());
        }
    }
    // Copies a former patch needed and this one does not.
    remove_other_copies(dir, replaced.values());
    let dropped: HashSet<usize> = units
        .iter()
        .zip(&included)
        .filter(|(_, i)| !**i)
        .map(|(u, _)| u.arg)
        .collect();
    Ok(args
        .into_iter()
        .enumerate()
        .filter(|(arg, _)| !dropped.contains(arg))
        .map(|(arg, path)| replaced.remove(&arg).unwrap_or(path))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::read::archive::ArchiveFile;

    /// The (binding, visibility, defined) of every global symbol named like `needle` in the
    /// objects of the rlib at `rlib`.
    fn visibilities(rlib: &Path, needle: &str) -> Vec<(u8, u8, bool)> {
        let data = std::fs::read(rlib).unwrap();
        let archive = ArchiveFile::parse(&*data).unwrap();
        let mut out = Vec::new();
        for member in archive.members() {
            let member = member.unwrap();
            if !member.name().ends_with(b".o") {
                continue;
            }
            let bytes = member.data(&*data).unwrap();
            let header = elf::FileHeader64::<LE>::parse(bytes).unwrap();
            let sections = header.sections(LE, bytes).unwrap();
            let symbols = sections.symbols(LE, bytes, elf::SHT_SYMTAB).unwrap();
            for symbol in symbols.iter() {
                let name = symbols.symbol_name(LE, symbol).unwrap();
                if symbol.st_bind() != elf::STB_LOCAL
                    && String::from_utf8_lossy(name).contains(needle)
                {
                    let defined = symbol.st_shndx(LE) != elf::SHN_UNDEF;
                    out.push((symbol.st_bind(), symbol.st_visibility(), defined));
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// A private function that another codegen unit calls is hidden, where it is defined and
    /// where it is called, as rustc compiles an rlib; `export_hidden` makes both default, in
    /// place, and a second call finds nothing left to change.
    #[test]
    fn a_private_function_called_across_codegen_units_becomes_exported() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("lib.rs");
        std::fs::write(
            &src,
            "mod a {\n    pub(crate) fn helper_only_b_calls(x: u64) -> u64 { x * 3 }\n}\n\
             mod b {\n    pub fn entry(x: u64) -> u64 { super::a::helper_only_b_calls(x) + 1 }\n}\n\
             pub use b::entry;\n",
        )
        .unwrap();
        let status = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
            .args([
                "--crate-type=rlib",
                "--crate-name=thin",
                "-Copt-level=0",
                "-Ccodegen-units=4",
                "--out-dir",
            ])
            .arg(dir.path())
            .arg(&src)
            .status()
            .unwrap();
        assert!(status.success());
        let rlib = dir.path().join("libthin.rlib");
        let hidden = (elf::STB_GLOBAL, elf::STV_HIDDEN);
        let before = visibilities(&rlib, "helper_only_b_calls");
        assert_eq!(
            before,
            [(hidden.0, hidden.1, false), (hidden.0, hidden.1, true)],
            "rustc compiled the helper differently than expected"
        );
        let size = std::fs::metadata(&rlib).unwrap().len();
        assert!(export_hidden(&rlib).unwrap() >= 2);
        let exported = (elf::STB_GLOBAL, elf::STV_DEFAULT);
        assert_eq!(
            visibilities(&rlib, "helper_only_b_calls"),
            [
                (exported.0, exported.1, false),
                (exported.0, exported.1, true)
            ]
        );
        assert_eq!(std::fs::metadata(&rlib).unwrap().len(), size);
        assert_eq!(export_hidden(&rlib).unwrap(), 0);
    }
}
