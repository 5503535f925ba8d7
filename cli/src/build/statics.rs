//! Shared statics for entry redirection: the patch's code is made to reach the crate's mutable
//! statics through its global offset table (GOT), whose entries the agent then points at the
//! running program's copies, so that a plain `static COUNTER: AtomicU64` keeps counting through
//! patches instead of starting fresh.
//!
//! In a debug build, code takes a static's address with `lea S(%rip), %reg` (`REX.W 8d`, a
//! RIP-relative operand) and an `R_X86_64_PC32` relocation of addend -4. That becomes
//! `mov S@GOTPCREL(%rip), %reg` (`REX.W 8b`, same operand, same length) with an
//! `R_X86_64_GOTPCREL` relocation: the register receives the address stored in the GOT entry
//! instead of the address itself. Plain `GOTPCREL`, not the relaxable `REX_GOTPCRELX`, so that
//! the linker cannot turn it back into `lea`; for the same reason relaxable GOT loads the
//! compiler emitted become plain ones. Since the symbol is the patch's own, the linker fills
//! the entry with an `R_X86_64_RELATIVE` relocation to the patch's copy, which is what the
//! program uses until the agent rebinds it.
//!
//! Any other reference to a mutable static from code (a load or store of its value, as
//! `static mut` code does, or the address of one of its fields) cannot be redirected this way:
//! it is listed in [`UNSHARED`] next to the objects, and a function that makes one is not
//! redirected (the gate refuses the patch).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use object::LittleEndian as LE;

use crate::check::code::ObjectId;
use object::elf;
use object::read::elf::{FileHeader, Rela, SectionHeader, SectionTable, Sym};

/// The file, next to the rewritten objects, that lists the references that could not be
/// rewritten: one per line, `<function>\t<static>\t<why>` (mangled names).
pub(crate) const UNSHARED: &str = "unshared-statics";

/// The `why` of an entry of [`UNSHARED`] that is no refusal: the function reaches a
/// thread-local's storage itself (it is the thread-local's accessor). The running program's
/// accessor of the same name stands for it, so that the thread-local stays the program's.
pub(crate) const THREAD_LOCAL: &str = "thread-local";

/// `REX.W lea`'s opcode, and `REX.W mov r64, r/m64`'s.
const LEA: u8 = 0x8d;
const MOV_LOAD: u8 = 0x8b;

/// One rewrite of an object file: a byte of code and a relocation's type.
pub(super) struct Rewrite {
    /// File offset of the `lea` opcode byte, when the instruction changes.
    pub(super) opcode: Option<usize>,
    /// File offset of the relocation's `r_info`.
    pub(super) info: usize,
    /// Its symbol index.
    pub(super) symbol: u32,
}

/// Applies `rewrites` to the object file `data`: each `lea` becomes a `mov` load, and each
/// relocation a plain `R_X86_64_GOTPCREL` of the same symbol.
pub(super) fn apply_rewrites(data: &mut [u8], rewrites: &[Rewrite]) {
    for rewrite in rewrites {
        if let Some(at) = rewrite.opcode {
            data[at] = MOV_LOAD;
        }
        let info = (u64::from(rewrite.symbol) << 32) | u64::from(elf::R_X86_64_GOTPCREL);
        data[rewrite.info..rewrite.info + 8].copy_from_slice(&info.to_le_bytes());
    }
}

/// The file offset of the opcode of the instruction whose RIP-relative operand a relocation at
/// `at` (an offset into the code section at file offset `code_start`, `code_len` bytes) fills,
/// when that instruction is `REX.W lea` (the address of the target, nothing else).
pub(super) fn lea_opcode(
    data: &[u8],
    code_start: usize,
    code_len: usize,
    at: usize,
) -> Option<usize> {
    if at < 3 || at + 4 > code_len {
        return None;
    }
    let bytes = &data[code_start + at - 3..code_start + at];
    let rex_w = bytes[0] & 0xf8 == 0x48;
    let rip_relative = bytes[2] & 0xc7 == 0x05;
    (rex_w && bytes[1] == LEA && rip_relative).then_some(code_start + at - 2)
}

/// Rewrites the objects among `args` (the crate's own, as the patch link gets them) whose code
/// refers to the crate's mutable statics, writing the rewritten copies into `dir` and the
/// references left as they were into `dir/`[`UNSHARED`]; returns `args` with each rewritten
/// object's path replaced by its copy's.
///
/// An edit makes rustc write the objects of the codegen units it compiled again; the others
/// are its incremental cache's files, hard linked, the same files as at the last patch. What
/// the last call found for each file is kept in `dir/`[`SHARE_CACHE`]: a file seen then is not
/// read again for the statics it defines, and, when the crate's statics are the ones they were,
/// its rewritten copy and its references serve as they are (the medium fixture: 203 of 256
/// objects rewritten, 48 MB, 62 ms for every patch before; only the changed ones since).
///
/// # Errors
///
/// When an object cannot be read or parsed, or `dir` cannot be written.
pub(crate) fn share(args: Vec<String>, dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|err| format!("cannot create `{}`: {err}", dir.display()))?;
    let cache_path = dir.join(SHARE_CACHE);
    let cache: ShareCache = std::fs::read(&cache_path)
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default();
    let known_objects: std::collections::HashMap<ObjectId, &SharedObject> = cache
        .objects
        .iter()
        .map(|(id, shared)| (*id, shared))
        .collect();
    struct Object {
        path: String,
        key: ObjectId,
        data: Option<Vec<u8>>,
        statics: Vec<String>,
    }
    let read =
        |path: &str| std::fs::read(path).map_err(|err| format!("cannot read `{path}`: {err}"));
    let mut objects = Vec::new();
    for path in args
        .iter()
        .filter(|a| a.ends_with(".o") && !a.starts_with('-'))
    {
        let key = ObjectId::of(Path::new(path)).map_err(|err| format!("{err:#}"))?;
        let (data, statics) = match known_objects.get(&key) {
            Some(known) => (None, known.statics.clone()),
            None => {
                let data = read(path)?;
                let mut statics = HashSet::new();
                defined_statics(&data, &mut statics).map_err(|err| format!("`{path}`: {err}"))?;
                (Some(data), statics.into_iter().collect())
            }
        };
        objects.push(Object {
            path: path.clone(),
            key,
            data,
            statics,
        });
    }
    // Statics that other codegen units of the crate define: a reference to one is undefined
    // in the object that makes it.
    let statics: HashSet<String> = objects
        .iter()
        .flat_map(|object| object.statics.iter().cloned())
        .collect();
    let mut sorted: Vec<&str> = statics.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let digest = crate::project::stable_hash(&[sorted.join("\n").as_bytes()]);
    let mut unshared = BTreeSet::new();
    let mut replaced = std::collections::HashMap::new();
    let mut next = ShareCache {
        statics: digest,
        objects: Vec::with_capacity(objects.len()),
    };
    for object in objects {
        let name = Path::new(&object.path)
            .file_name()
            .ok_or_else(|| format!("`{}` has no file name", object.path))?;
        let to = dir.join(name);
        let known = known_objects
            .get(&object.key)
            .filter(|known| cache.statics == digest && (!known.rewritten || to.is_file()));
        let shared = match known {
            Some(known) => (*known).clone(),
            None => {
                let data = match object.data {
                    Some(data) => data,
                    None => read(&object.path)?,
                };
                let mut references = BTreeSet::new();
                let rewrites = rewrites(&data, &statics, &mut references)
                    .map_err(|err| format!("`{}`: {err}", object.path))?;
                if !rewrites.is_empty() {
                    let mut data = data;
                    apply_rewrites(&mut data, &rewrites);
                    // A new file: the last patch's copy of an older object of this name may
                    // still be open.
                    let _ = std::fs::remove_file(&to);
                    super::capture::write_private(&to, &data).map_err(|err| format!("{err:#}"))?;
                }
                SharedObject {
                    statics: object.statics,
                    rewritten: !rewrites.is_empty(),
                    unshared: references.into_iter().collect(),
                }
            }
        };
        if shared.rewritten {
            replaced.insert(object.path, to.display().to_string());
        }
        unshared.extend(shared.unshared.iter().cloned());
        next.objects.push((object.key, shared));
    }
    // Copies of objects this patch no longer has (codegen units renamed or gone).
    remove_other_copies(dir, replaced.values());
    let list: String = unshared
        .iter()
        .map(|(function, name, why)| format!("{function}\t{name}\t{why}\n"))
        .collect();
    let list_path = dir.join(UNSHARED);
    super::capture::write_private(&list_path, list.as_bytes()).map_err(|err| format!("{err:#}"))?;
    // Best effort: without the record, the next patch reads every object again.
    if let Ok(text) = serde_json::to_vec(&next) {
        let _ = super::capture::write_private(&cache_path, &text);
    }
    Ok(args
        .into_iter()
        .map(|arg| replaced.get(&arg).cloned().unwrap_or(arg))
        .collect())
}

/// Removes the object files in `dir` other than `kept` (paths of rewritten copies in it): the
/// copies a former patch needed and this one does not.
pub(super) fn remove_other_copies<'a>(dir: &Path, kept: impl Iterator<Item = &'a String>) {
    let kept: HashSet<&str> = kept.map(String::as_str).collect();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "o")
            && !kept.contains(path.display().to_string().as_str())
        {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The file, next to the rewritten objects, in which [`share`] keeps what it found for each
/// object file, for the next patch.
const SHARE_CACHE: &str = "share-cache.json";

/// What [`share`] found for the objects of one patch.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ShareCache {
    /// A digest of the names of the crate's mutable statics then: the rewrites of an object
    /// depend on them.
    statics: u64,
    /// Each object file, by its identity.
    objects: Vec<(ObjectId, SharedObject)>,
}

/// What [`share`] found for one object file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SharedObject {
    /// The mutable statics it defines.
    statics: Vec<String>,
    /// Whether its rewritten copy is in the directory, under its file name.
    rewritten: bool,
    /// Its references that could not be rewritten: `(function, static, why)`.
    unshared: Vec<(String, String, String)>,
}

/// Reads the references listed in `dir/`[`UNSHARED`]: `(function, static, why)`, mangled.
/// An absent or unreadable list reads as empty.
pub(crate) fn read_unshared(dir: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(dir.join(UNSHARED)).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            Some((
                fields.next()?.to_owned(),
                fields.next()?.to_owned(),
                fields.next()?.to_owned(),
            ))
        })
        .collect()
}

/// The ELF pieces of an object file.
pub(super) struct Parsed<'d> {
    pub(super) sections: SectionTable<'d, elf::FileHeader64<LE>>,
    pub(super) symbols: object::read::elf::SymbolTable<'d, elf::FileHeader64<LE>>,
}

pub(super) fn parse(data: &[u8]) -> Result<Parsed<'_>, String> {
    let header = elf::FileHeader64::<LE>::parse(data).map_err(|err| err.to_string())?;
    let sections = header.sections(LE, data).map_err(|err| err.to_string())?;
    let symbols = sections
        .symbols(LE, data, elf::SHT_SYMTAB)
        .map_err(|err| err.to_string())?;
    Ok(Parsed { sections, symbols })
}

/// Whether section `index` holds mutable, non-thread-local data.
fn is_static_data(sections: &SectionTable<'_, elf::FileHeader64<LE>>, index: usize) -> bool {
    let Ok(section) = sections.section(object::SectionIndex(index)) else {
        return false;
    };
    let flags = section.sh_flags(LE);
    let wanted = u64::from(elf::SHF_ALLOC | elf::SHF_WRITE);
    flags & wanted == wanted
        && flags & u64::from(elf::SHF_EXECINSTR | elf::SHF_TLS) == 0
        && matches!(section.sh_type(LE), elf::SHT_PROGBITS | elf::SHT_NOBITS)
}

/// Adds the names of the mutable statics `data` defines to `out`.
fn defined_statics(data: &[u8], out: &mut HashSet<String>) -> Result<(), String> {
    let parsed = parse(data)?;
    for (index, symbol) in parsed.symbols.iter().enumerate() {
        if symbol.st_type() == elf::STT_OBJECT
            && is_static_data(&parsed.sections, section_of(&parsed, index))
            && let Ok(name) = parsed.symbols.symbol_name(LE, symbol)
        {
            out.insert(String::from_utf8_lossy(name).into_owned());
        }
    }
    Ok(())
}

/// The rewrites that make the code of `data` reach the crate's mutable statics (defined in it,
/// or named in `statics`) through the GOT; the references that cannot be rewritten are added
/// to `unshared` as `(function, static, why)`.
fn rewrites(
    data: &[u8],
    statics: &HashSet<String>,
    unshared: &mut BTreeSet<(String, String, String)>,
) -> Result<Vec<Rewrite>, String> {
    let parsed = parse(data)?;
    // The static a symbol stands for, if it is one of the crate's mutable statics.
    let name_of = |index: u32| -> Option<String> {
        let symbol = parsed
            .symbols
            .symbol(object::SymbolIndex(index as usize))
            .ok()?;
        let shndx = section_of(&parsed, index as usize);
        if symbol.st_type() == elf::STT_SECTION {
            // A section symbol: the section's name says which static it is.
            let section = parsed.sections.section(object::SectionIndex(shndx)).ok()?;
            let name = parsed.sections.section_name(LE, section).ok()?;
            let name = String::from_utf8_lossy(name).into_owned();
            return is_static_data(&parsed.sections, shndx).then_some(name);
        }
        let name = String::from_utf8_lossy(parsed.symbols.symbol_name(LE, symbol).ok()?);
        let ours = if symbol.is_undefined(LE) {
            statics.contains(&*name)
        } else {
            symbol.st_type() == elf::STT_OBJECT && is_static_data(&parsed.sections, shndx)
        };
        ours.then(|| name.into_owned())
    };
    // The thread-local a symbol stands for: a `STT_TLS` symbol, or a section symbol of a
    // thread-local data section (named after the section).
    let thread_local_of = |index: u32| -> Option<String> {
        let symbol = parsed
            .symbols
            .symbol(object::SymbolIndex(index as usize))
            .ok()?;
        if symbol.st_type() == elf::STT_TLS {
            let name = parsed.symbols.symbol_name(LE, symbol).ok()?;
            return Some(String::from_utf8_lossy(name).into_owned());
        }
        let shndx = section_of(&parsed, index as usize);
        let section = parsed.sections.section(object::SectionIndex(shndx)).ok()?;
        if symbol.st_type() != elf::STT_SECTION
            || section.sh_flags(LE) & u64::from(elf::SHF_TLS) == 0
        {
            return None;
        }
        let name = parsed.sections.section_name(LE, section).ok()?;
        Some(String::from_utf8_lossy(name).into_owned())
    };
    // The function of each code section (rustc gives each function its own section).
    let mut functions = std::collections::HashMap::new();
    for (index, symbol) in parsed.symbols.iter().enumerate() {
        if symbol.st_type() == elf::STT_FUNC
            && let Ok(name) = parsed.symbols.symbol_name(LE, symbol)
        {
            functions
                .entry(section_of(&parsed, index))
                .or_insert_with(|| String::from_utf8_lossy(name).into_owned());
        }
    }
    let mut out = Vec::new();
    for (index, section) in parsed.sections.iter().enumerate() {
        let Some((relocations, _symbols)) = section.rela(LE, data).map_err(|e| e.to_string())?
        else {
            continue;
        };
        // `sh_info` of a relocation section: the section its relocations apply to.
        let target = object::SectionIndex(section.sh_info(LE) as usize);
        let Ok(code) = parsed.sections.section(target) else {
            continue;
        };
        if code.sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) == 0 {
            continue;
        }
        let code_start = code.sh_offset(LE) as usize;
        let code_len = code.sh_size(LE) as usize;
        let function = functions
            .get(&target.0)
            .cloned()
            .unwrap_or_else(|| format!("section {index}"));
        let rela_start = section.sh_offset(LE) as usize;
        for (i, relocation) in relocations.iter().enumerate() {
            let symbol = relocation.r_sym(LE, false);
            let kind = relocation.r_type(LE, false);
            if is_thread_local_access(kind) {
                if let Some(name) = thread_local_of(symbol) {
                    unshared.insert((function.clone(), name, THREAD_LOCAL.to_owned()));
                }
                continue;
            }
            let Some(name) = name_of(symbol) else {
                continue;
            };
            let at = relocation.r_offset(LE) as usize;
            let info = rela_start + i * std::mem::size_of::<elf::Rela64<LE>>() + 8;
            match kind {
                elf::R_X86_64_GOTPCREL => {}
                elf::R_X86_64_GOTPCRELX | elf::R_X86_64_REX_GOTPCRELX => out.push(Rewrite {
                    opcode: None,
                    info,
                    symbol,
                }),
                elf::R_X86_64_PC32 if at >= 3 && at + 4 <= code_len => {
                    match lea_opcode(data, code_start, code_len, at) {
                        Some(opcode) if relocation.r_addend(LE) == -4 => out.push(Rewrite {
                            opcode: Some(opcode),
                            info,
                            symbol,
                        }),
                        lea => {
                            let why = if lea.is_some() {
                                "takes the address of a part of it"
                            } else {
                                "reads or writes it in place"
                            };
                            unshared.insert((function.clone(), name, why.to_owned()));
                        }
                    }
                }
                _ => {
                    unshared.insert((function.clone(), name, "refers to it in place".to_owned()));
                }
            }
        }
    }
    Ok(out)
}

/// Whether a relocation of type `kind` reaches thread-local storage (any of x86-64's TLS
/// models).
fn is_thread_local_access(kind: u32) -> bool {
    matches!(
        kind,
        elf::R_X86_64_TLSGD
            | elf::R_X86_64_TLSLD
            | elf::R_X86_64_DTPOFF32
            | elf::R_X86_64_DTPOFF64
            | elf::R_X86_64_GOTTPOFF
            | elf::R_X86_64_TPOFF32
            | elf::R_X86_64_TPOFF64
            | elf::R_X86_64_GOTPC32_TLSDESC
            | elf::R_X86_64_TLSDESC_CALL
    )
}

/// The index of the section symbol number `index` is defined in (0 when undefined), through
/// the extended index table when there are that many sections.
fn section_of(parsed: &Parsed<'_>, index: usize) -> usize {
    parsed
        .symbols
        .symbol(object::SymbolIndex(index))
        .ok()
        .and_then(|symbol| {
            parsed
                .symbols
                .symbol_section(LE, symbol, object::SymbolIndex(index))
                .ok()
                .flatten()
        })
        .map_or(0, |section| section.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};

    /// Compiles `source` as a library's object file with rustc, as a debug build compiles it.
    fn compile(dir: &Path, source: &str) -> std::path::PathBuf {
        let src = dir.join("lib.rs");
        std::fs::write(&src, source).unwrap();
        let status = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
            .args([
                "--crate-type=lib",
                "--crate-name=shared",
                "--emit=obj",
                "-Copt-level=0",
            ])
            .args(["-Ccodegen-units=1", "-o"])
            .arg(dir.join("shared.o"))
            .arg(&src)
            .status()
            .unwrap();
        assert!(status.success());
        dir.join("shared.o")
    }

    /// The code relocations of the object at `path` to symbols whose name contains `name`:
    /// `(relocation type, the instruction's opcode byte)`.
    fn references(path: &Path, name: &str) -> Vec<(u32, u8)> {
        let data = std::fs::read(path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let mut found = Vec::new();
        for section in file
            .sections()
            .filter(|s| s.kind() == object::SectionKind::Text)
        {
            let code = section.data().unwrap();
            for (at, relocation) in section.relocations() {
                let RelocationTarget::Symbol(index) = relocation.target() else {
                    continue;
                };
                let symbol = file.symbol_by_index(index).unwrap();
                // A section symbol stands for its section, named after the static.
                let target = match symbol.section_index() {
                    Some(section) if symbol.kind() == object::SymbolKind::Section => file
                        .section_by_index(section)
                        .unwrap()
                        .name()
                        .unwrap()
                        .to_owned(),
                    _ => symbol.name().unwrap().to_owned(),
                };
                if !target.contains(name) {
                    continue;
                }
                let object::RelocationFlags::Elf { r_type } = relocation.flags() else {
                    continue;
                };
                found.push((r_type, code[at as usize - 2]));
            }
        }
        found
    }

    #[test]
    fn address_takes_of_statics_go_through_the_got_and_in_place_writes_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let object = compile(
            dir.path(),
            "use std::sync::atomic::{AtomicU64, Ordering};\n\
             static COUNTER: AtomicU64 = AtomicU64::new(0);\n\
             static mut TOTAL: u64 = 0;\n\
             pub fn bump() -> u64 { COUNTER.fetch_add(1, Ordering::Relaxed) }\n\
             pub fn add(n: u64) { unsafe { TOTAL += n } }\n",
        );
        assert!(
            references(&object, "COUNTER").contains(&(elf::R_X86_64_PC32, LEA)),
            "{:?}",
            references(&object, "COUNTER")
        );
        let out = dir.path().join("shared");
        let args = vec!["-m64".to_owned(), object.display().to_string()];
        let linked = share(args, &out).unwrap();
        let copy = out.join("shared.o");
        assert_eq!(linked, ["-m64".to_owned(), copy.display().to_string()]);
        let counter = references(&copy, "COUNTER");
        assert!(!counter.is_empty());
        assert!(
            counter
                .iter()
                .all(|r| *r == (elf::R_X86_64_GOTPCREL, MOV_LOAD)),
            "{counter:?}"
        );
        // The original is left as rustc wrote it (the code index reads it).
        assert!(references(&object, "COUNTER").contains(&(elf::R_X86_64_PC32, LEA)));
        let unshared = read_unshared(&out);
        assert!(!unshared.is_empty());
        for (function, name, why) in &unshared {
            assert!(function.contains("3add"), "{function}");
            assert!(name.contains("5TOTAL"), "{name}");
            assert_eq!(why, "reads or writes it in place");
        }
    }

    /// A second patch of the same object reuses the rewritten copy and the references the first
    /// found, without writing the copy again; an object compiled anew under the same name (an
    /// edited codegen unit) is read and rewritten again, and its new references replace the old.
    #[test]
    fn an_object_seen_at_the_last_patch_is_not_rewritten_again() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let source = |body: &str| {
            format!(
                "use std::sync::atomic::{{AtomicU64, Ordering}};\n\
                 static COUNTER: AtomicU64 = AtomicU64::new(0);\n\
                 static mut TOTAL: u64 = 0;\n\
                 pub fn bump() -> u64 {{ COUNTER.fetch_add(1, Ordering::Relaxed) }}\n\
                 pub fn add(n: u64) {{ {body} }}\n"
            )
        };
        let object = compile(dir.path(), &source("unsafe { TOTAL += n }"));
        let out = dir.path().join("shared");
        let args = vec![object.display().to_string()];
        share(args.clone(), &out).unwrap();
        let copy = out.join("shared.o");
        let first = std::fs::metadata(&copy).unwrap();
        let listed = read_unshared(&out);
        assert_eq!(listed.len(), 1, "{listed:?}");

        assert_eq!(
            share(args.clone(), &out).unwrap(),
            [copy.display().to_string()]
        );
        let second = std::fs::metadata(&copy).unwrap();
        assert_eq!(
            (first.ino(), first.mtime(), first.mtime_nsec()),
            (second.ino(), second.mtime(), second.mtime_nsec())
        );
        assert_eq!(read_unshared(&out), listed);

        // The same name, compiled anew: `add` no longer writes `TOTAL` in place.
        let object = compile(
            dir.path(),
            &source("COUNTER.fetch_add(n, Ordering::Relaxed);"),
        );
        share(vec![object.display().to_string()], &out).unwrap();
        let third = std::fs::metadata(&copy).unwrap();
        assert_ne!(
            (first.mtime(), first.mtime_nsec()),
            (third.mtime(), third.mtime_nsec())
        );
        assert!(
            references(&copy, "COUNTER")
                .iter()
                .all(|r| *r == (elf::R_X86_64_GOTPCREL, MOV_LOAD))
        );
        assert_eq!(read_unshared(&out), []);
    }

    #[test]
    fn the_accessor_of_a_thread_local_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let object = compile(
            dir.path(),
            "use std::cell::Cell;\n\
             thread_local! { static SEEN: Cell<u64> = const { Cell::new(0) }; }\n\
             pub fn seen() -> u64 { SEEN.with(|s| { s.set(s.get() + 1); s.get() }) }\n",
        );
        let out = dir.path().join("shared");
        share(vec![object.display().to_string()], &out).unwrap();
        let listed = read_unshared(&out);
        let accessors: Vec<&str> = listed
            .iter()
            .filter(|(_, _, why)| why == THREAD_LOCAL)
            .map(|(function, _, _)| function.as_str())
            .collect();
        // `SEEN::{constant}::{closure}`: the macro's accessor, not `seen` (which calls it).
        assert_eq!(accessors.len(), 1, "{listed:?}");
        assert!(
            accessors[0].contains("4SEEN") && !accessors[0].contains("4seen"),
            "{accessors:?}"
        );
    }
}
