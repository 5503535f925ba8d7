//! Thin patches: a patch links only the codegen units an edit compiled again (and what their
//! new code needs), and its references to the rest of the crate bind to the running
//! executable's copies.
//!
//! A patch needs the objects that define a changed or new function, and those that define hot
//! functions (their records are read from every patch). Under entry redirection that is all:
//! every function whose code changed is redirected in the running program, so the program's
//! code of a unit the edit did not touch behaves as the new code would. A hot function's patch
//! also needs every object whose code the new code can reach through the program's and that
//! calls what changed (compared symbol by symbol with the baseline's objects: see [`Callers`])
//! or uses a static the patch has its own copy of: left to the program, that code would call
//! the old definition of what changed. Which objects changed, the linker wrapper tells from
//! their identity ([`ObjectId`]): rustc hard-links the object of a codegen unit it did not
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
//! The objects of a library crate the patch rebuilt are units too, each compared with the object
//! of the same codegen unit in the copy of the crate's rlib the host was linked from
//! ([`keep_host_libs`], which exports their hidden symbols as [`export_hidden`] does the bin
//! crate's), and linked as files of their own when they differ: rustc writes every codegen unit
//! of the crates above an edited one again, nearly all of them as they were. Under entry
//! redirection every object of the crate is linked, each as a file of its own, so that its
//! statics are shared like the bin crate's (see [`super::statics`]); a crate without such a
//! copy is linked whole.
//!
//! Whatever cannot be left to the executable (a symbol it does not export, a reference of
//! another kind: a thread-local's, a load in place) brings the object that defines it into the
//! patch, and so on until nothing is missing: a patch is never less than correct, only bigger.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, Rela, SectionHeader, Sym};

use crate::check::code::{Linkage, ObjectId, RUNTIME_PREFIX, linkage};

use super::statics::{Parsed, Rewrite, apply_rewrites, lea_opcode, parse, remove_other_copies};

/// The file, beside a patch build's kept objects, that lists the identities of the baseline
/// build's objects (JSON, a list of [`ObjectId`]); absent when there is no baseline of the
/// running executable's sources.
const BASELINE_OBJECTS: &str = "baseline-objects.json";

/// Patch mode: the host executable, whose dynamic symbol table says what a thin patch can
/// leave to it.
pub(crate) const HOST_EXE_ENV: &str = "HOTSWAP_HOST_EXE";

/// Host and patch mode: the directory holding copies of the local library crates' rlibs as the
/// host was linked from them (see [`keep_host_libs`]).
pub(crate) const HOST_LIBS_DIR_ENV: &str = "HOTSWAP_HOST_LIBS_DIR";

/// Where [`keep_host_libs`] keeps the host's library crates, in the work directory `work_root`.
pub(crate) fn host_libs_dir(work_root: &Path) -> std::path::PathBuf {
    work_root.join("host-libs")
}

/// Host mode: copies the rlibs of the local library crates among the host link's `args` into
/// `dir` (mode 0600; whatever was there goes first), with their hidden symbols made default
/// ([`export_hidden`]), and returns `args` with each copy in place of its rlib: the host
/// exports the crates' private functions, which thin patches bind to, and a patch that rebuilds
/// such a crate can tell which of its codegen units hold the code the executable runs, even
/// after cargo has built the crate again (see [`thin`]). A crate is local when the rustc wrapper
/// captured its command: `<captures>/<stem>.json` exists, `stem` being the rlib's name without
/// `lib` and `.rlib`.
///
/// # Errors
///
/// When `dir` cannot be created or a copy cannot be written or read; a copy is whole or absent.
pub(crate) fn keep_host_libs(
    args: Vec<String>,
    dir: &Path,
    captures: &Path,
) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    // An earlier host's copies go first: a copy left from it would be taken for this host's.
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let local = arg.ends_with(".rlib")
            && !arg.starts_with('-')
            && Path::new(&arg)
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("lib")?.strip_suffix(".rlib"))
                .is_some_and(|stem| captures.join(format!("{stem}.json")).exists());
        if !local {
            out.push(arg);
            continue;
        }
        let name = Path::new(&arg).file_name().unwrap_or_default();
        let to = dir.join(name);
        let tmp = to.with_extension("tmp");
        std::fs::copy(&arg, &tmp)
            .and_then(|_| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)))
            .with_context(|| format!("cannot copy `{arg}` to `{}`", tmp.display()))?;
        export_hidden(&tmp)?;
        std::fs::rename(&tmp, &to).with_context(|| format!("cannot rename `{}`", tmp.display()))?;
        out.push(to.display().to_string());
    }
    Ok(out)
}

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
/// global or weak), and every hidden reference to one, default, in place, so that the
/// executable linked from it with `-rdynamic` exports them. Returns how many symbols changed.
/// Sizes and offsets stay as they are: only each symbol's `st_other` byte changes (see
/// [`hidden_symbols`]), and the archive's own symbol index does not record visibility.
///
/// # Errors
///
/// When the file cannot be read or written, or is not an archive of ELF objects.
pub(crate) fn export_hidden(rlib: &Path) -> anyhow::Result<usize> {
    use anyhow::Context;
    use std::os::unix::fs::FileExt;
    let data = std::fs::read(rlib).with_context(|| format!("cannot read `{}`", rlib.display()))?;
    let shown = rlib.display().to_string();
    let mut changes: Vec<usize> = Vec::new();
    for (_, range) in members(&data, &shown).map_err(anyhow::Error::msg)? {
        let found = hidden_symbols(&data[range.clone()])
            .map_err(|err| anyhow::anyhow!("malformed object in `{shown}`: {err}"))?;
        changes.extend(found.into_iter().map(|at| range.start + at));
    }
    if !changes.is_empty() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(rlib)
            .with_context(|| format!("cannot write `{shown}`"))?;
        for &at in &changes {
            file.write_all_at(&[(data[at] & !3) | elf::STV_DEFAULT], at as u64)
                .with_context(|| format!("cannot write `{shown}`"))?;
        }
    }
    Ok(changes.len())
}

/// The offsets in the ELF object `bytes` of the `st_other` byte of each symbol that
/// [`export_hidden`] makes default: the hidden global or weak definitions of functions and data,
/// and the hidden references (a linker gives a symbol the most constraining visibility of its
/// definition and every reference to it). Not an ELF object: none.
///
/// # Errors
///
/// When the object's section or symbol tables are malformed.
fn hidden_symbols(bytes: &[u8]) -> Result<Vec<usize>, String> {
    Ok(symbol_entries(bytes, |symbol| {
        let exportable = if symbol.st_shndx(LE) != elf::SHN_UNDEF {
            matches!(symbol.st_type(), elf::STT_FUNC | elf::STT_OBJECT)
        } else {
            symbol.st_type() == elf::STT_NOTYPE
        };
        exportable
            && matches!(symbol.st_bind(), elf::STB_GLOBAL | elf::STB_WEAK)
            && symbol.st_visibility() == elf::STV_HIDDEN
    })?
    .into_iter()
    // `st_other` is the sixth byte of an `Elf64_Sym`.
    .map(|entry| entry + 5)
    .collect())
}

/// The ELF object `bytes` with every global definition made weak (`st_info`'s binding, in
/// place: sizes and offsets stay as they are), so that a strong definition of the same name
/// elsewhere in the link takes precedence instead of being a duplicate. Not an ELF object: an
/// error.
///
/// # Errors
///
/// When `bytes` is not a 64-bit ELF object or its tables are malformed.
pub(crate) fn weak_definitions(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if elf::FileHeader64::<LE>::parse(bytes).is_err() {
        return Err("not a 64-bit ELF object".to_owned());
    }
    let mut out = bytes.to_vec();
    for entry in symbol_entries(bytes, |symbol| {
        symbol.st_shndx(LE) != elf::SHN_UNDEF && symbol.st_bind() == elf::STB_GLOBAL
    })? {
        // `st_info` is the fifth byte of an `Elf64_Sym`: binding in the high nibble.
        out[entry + 4] = (elf::STB_WEAK << 4) | (out[entry + 4] & 0xf);
    }
    Ok(out)
}

/// The file offsets in the ELF object `bytes` of the symbol table entries (`Elf64_Sym`) for
/// which `wanted` holds. Not an ELF object: none.
///
/// # Errors
///
/// When the object's section or symbol tables are malformed.
fn symbol_entries(
    bytes: &[u8],
    wanted: impl Fn(&elf::Sym64<LE>) -> bool,
) -> Result<Vec<usize>, String> {
    let Ok(header) = elf::FileHeader64::<LE>::parse(bytes) else {
        return Ok(Vec::new());
    };
    let sections = header.sections(LE, bytes).map_err(|err| err.to_string())?;
    let mut found = Vec::new();
    for section in sections.iter() {
        if section.sh_type(LE) != elf::SHT_SYMTAB {
            continue;
        }
        let table = section.sh_offset(LE) as usize;
        let entry = std::mem::size_of::<elf::Sym64<LE>>();
        let symbols: &[elf::Sym64<LE>] = section
            .data_as_array(LE, bytes)
            .map_err(|err| err.to_string())?;
        found.extend(
            symbols
                .iter()
                .enumerate()
                .filter(|(_, symbol)| wanted(symbol))
                .map(|(index, _)| table + index * entry),
        );
    }
    Ok(found)
}

/// The ELF object `bytes` as [`export_hidden`] leaves it in the host's rlibs: what a patch's
/// object of the same codegen unit is compared with.
fn exported(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for at in hidden_symbols(bytes).unwrap_or_default() {
        out[at] = (out[at] & !3) | elf::STV_DEFAULT;
    }
    out
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

/// The file, beside the thin patch's rewritten objects, that keeps what [`thin`] read of the
/// baseline build's objects (a [`CacheFile`], encoded with `postcard`): written by the build
/// before a baseline is recorded, which is the baseline build, and read by every patch after it.
/// Binary, and read in place (see [`Symbols`]), because every patch's link reads it: the medium
/// benchmark fixture's (12,000 names, 1.3 MB of them) took 13 ms of each link to read as JSON
/// into strings of their own, and takes 5 ms now.
const BASELINE_SYMBOLS: &str = "baseline-symbols.bin";

/// The same for the objects of the last patch that are not the baseline's (few: those of the
/// codegen units the session's edits compiled again).
const PATCH_SYMBOLS: &str = "patch-symbols.bin";

/// The same for the objects of the local library crates' rlibs: those of the host's copies
/// (see [`keep_host_libs`]) and those of the last patch's rlibs.
const LIB_SYMBOLS: &str = "lib-symbols.bin";

/// One global symbol an object defines, with its name and targets as indices into the names of
/// a [`Symbols`] (`GlobalSymbol` interned): name, hash, whether it holds or uses state of the
/// object's own (it is a private static or thread-local, or reaches one through local
/// symbols: a copy of the object has its own), targets.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Defined(u32, u64, bool, Vec<u32>);

/// A [`Linkage`] with its names interned: what it defines, and what it refers to.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Packed(Vec<Defined>, Vec<u32>);

/// The version of [`CacheFile`]'s contents: a file of another version (what [`linkage`] found
/// by other rules) is not read.
const CACHE_VERSION: u32 = 3;

/// What a symbols file holds: the names (borrowed from the file's bytes when read), and each
/// object's symbols by index into them.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct CacheFile<'a> {
    /// [`CACHE_VERSION`] when written.
    version: u32,
    #[serde(borrow)]
    names: Vec<&'a str>,
    objects: Vec<(ObjectId, Packed)>,
}

/// The global symbols of the crate's objects, read from the symbols files (whose bytes, `'a`,
/// the names are borrowed from) and the objects, with every name interned once (an object
/// refers to thousands of names that others define). The linker wrapper is a new process for
/// every link, in which each allocation touches new memory: copying the medium benchmark
/// fixture's 12,000 names twice took 5 to 8 ms of every patch's link. The names are hashed with
/// foldhash, not the standard library's SipHash: they are long, and no one chooses them to
/// collide (they are the crate's own symbols).
#[derive(Default)]
struct Symbols<'a> {
    names: Vec<Cow<'a, str>>,
    ids: HashMap<Cow<'a, str>, u32, foldhash::fast::RandomState>,
    objects: HashMap<ObjectId, Packed>,
}

impl<'a> Symbols<'a> {
    /// The index of `name`, added if new.
    fn intern(&mut self, name: Cow<'a, str>) -> u32 {
        if let Some(&id) = self.ids.get(&*name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    /// Adds the objects of the symbols file whose bytes are `bytes`, if they are one of this
    /// version.
    fn load(&mut self, bytes: &'a [u8]) {
        let Some(file) = postcard::from_bytes::<CacheFile<'a>>(bytes)
            .ok()
            .filter(|file| file.version == CACHE_VERSION)
        else {
            return;
        };
        self.ids.reserve(file.names.len());
        let map: Vec<u32> = file
            .names
            .iter()
            .map(|n| self.intern(Cow::Borrowed(n)))
            .collect();
        let remap = |id: &mut u32| *id = map.get(*id as usize).copied().unwrap_or(u32::MAX);
        for (id, Packed(mut defined, mut undefined)) in file.objects {
            for Defined(name, _, _, targets) in &mut defined {
                remap(name);
                targets.iter_mut().for_each(remap);
            }
            undefined.iter_mut().for_each(remap);
            self.objects.insert(id, Packed(defined, undefined));
        }
    }

    /// Adds an object's symbols as read from it.
    fn add(&mut self, id: ObjectId, linkage: Linkage) {
        let defined = linkage
            .defined
            .iter()
            .map(|d| {
                let targets = d
                    .targets
                    .iter()
                    .map(|t| self.intern(Cow::Owned(t.clone())))
                    .collect();
                Defined(
                    self.intern(Cow::Owned(d.name.clone())),
                    d.hash,
                    d.mutable || d.local_state,
                    targets,
                )
            })
            .collect();
        let undefined = linkage
            .undefined
            .iter()
            .map(|n| self.intern(Cow::Owned(n.clone())))
            .collect();
        self.objects.insert(id, Packed(defined, undefined));
    }

    /// Writes the objects `ids` to a symbols file at `path` (with only the names they use).
    fn save<'s>(&'s self, ids: impl Iterator<Item = ObjectId>, path: &Path) {
        let mut file: CacheFile<'s> = CacheFile {
            version: CACHE_VERSION,
            ..CacheFile::default()
        };
        let mut map: HashMap<u32, u32> = HashMap::new();
        let mut local = |id: u32, names: &mut Vec<&'s str>| -> u32 {
            *map.entry(id).or_insert_with(|| {
                names.push(self.names.get(id as usize).map_or("", |n| &**n));
                u32::try_from(names.len() - 1).unwrap_or(u32::MAX)
            })
        };
        for id in ids {
            let Some(Packed(defined, undefined)) = self.objects.get(&id) else {
                continue;
            };
            let defined = defined
                .iter()
                .map(|Defined(name, hash, mutable, targets)| {
                    let targets = targets.iter().map(|&t| local(t, &mut file.names)).collect();
                    Defined(local(*name, &mut file.names), *hash, *mutable, targets)
                })
                .collect();
            let undefined = undefined
                .iter()
                .map(|&n| local(n, &mut file.names))
                .collect();
            file.objects.push((id, Packed(defined, undefined)));
        }
        if let Ok(bytes) = postcard::to_stdvec(&file) {
            let _ = super::capture::write_private(path, &bytes);
        }
    }
}

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

/// Thins a patch's link: of the crate's objects among `args` (each kept, under its file name,
/// in `objects_dir`), drops those whose identity is one of the baseline's, and makes the
/// references of the others to what they define bind to the executable at `host`, which
/// exports it (see the module's documentation). Returns `args` with the dropped objects gone
/// and each rewritten object's path replaced by its copy's (in `dir`).
///
/// Under entry redirection (`callers_too` false) every function that changed is redirected in
/// the running program too, so the program's unchanged code that the patch calls reaches the
/// new code of whatever it calls in turn, and the crate's statics are shared (see
/// [`super::statics`]). A hot function's patch (`callers_too`) also links every object that
/// its code reaches through the program's and that refers to anything the patch defines (see
/// [`Callers`]), so that no path from the new code leads back to old code of
/// what changed, or to the program's copy of a static the patch has its own of.
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
    callers_too: bool,
) -> Result<Vec<String>, String> {
    let baseline: Option<HashSet<ObjectId>> = std::fs::read(baseline_file(objects_dir))
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok());
    if baseline.is_none() && !callers_too {
        return Ok(args);
    }
    struct Unit {
        /// The index of its argument: the object's, or its rlib's.
        arg: usize,
        /// Its path, or `<rlib>(<member>)`.
        path: String,
        id: ObjectId,
        /// For an object of an rlib: the archive (an index into `archives`), its bytes there and
        /// its name.
        member: Option<(usize, std::ops::Range<usize>, String)>,
    }
    let read =
        |path: &str| std::fs::read(path).map_err(|err| format!("cannot read `{path}`: {err}"));
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
            member: None,
        });
    }
    // The library crates the patch rebuilt: their objects are units too. Each is compared with
    // the object of the same codegen unit in the host's copy of the crate's rlib (see
    // `keep_host_libs`): the same bytes, once its hidden symbols are made default as there, are
    // the code the executable runs. Under redirection every one of them is linked (the session
    // redirects again what earlier patches redirected, which the patch must define), as a file
    // of its own, so that its statics are shared like the bin crate's. A crate without a copy
    // is linked whole, and each of its symbols counts as changed.
    let mut archives: Vec<Vec<u8>> = Vec::new();
    let mut host_members: Vec<(ObjectId, usize, std::ops::Range<usize>)> = Vec::new();
    let mut whole: Vec<&str> = Vec::new();
    if baseline.is_some() {
        let host_libs = std::env::var_os(HOST_LIBS_DIR_ENV).map(std::path::PathBuf::from);
        for (arg, path) in args
            .iter()
            .enumerate()
            .filter(|(_, a)| a.ends_with(".rlib") && !a.starts_with('-'))
        {
            let copy = Path::new(path)
                .file_name()
                .zip(host_libs.as_deref())
                .map(|(name, dir)| dir.join(name))
                .filter(|copy| copy.exists());
            let Some(copy) = copy else {
                whole.push(path);
                continue;
            };
            let host_id = ObjectId::of(&copy).map_err(|err| format!("{err:#}"))?;
            let host = archives.len();
            archives.push(read(&copy.display().to_string())?);
            archives.push(read(path)?);
            let by_unit: HashMap<String, (ObjectId, std::ops::Range<usize>)> =
                members(&archives[host], &copy.display().to_string())?
                    .into_iter()
                    .map(|(name, range)| {
                        let id = ObjectId::member(host_id, range.start as u64);
                        (codegen_unit(&name).to_owned(), (id, range))
                    })
                    .collect();
            for (name, range) in members(&archives[host + 1], path)? {
                let bytes = &archives[host + 1][range.clone()];
                let id = match by_unit.get(codegen_unit(&name)) {
                    Some((id, r))
                        if r.len() == bytes.len()
                            && archives[host][r.clone()] == *exported(bytes) =>
                    {
                        *id
                    }
                    _ => ObjectId::of_bytes(bytes),
                };
                units.push(Unit {
                    arg,
                    path: format!("{path}({name})"),
                    id,
                    member: Some((host + 1, range, name)),
                });
            }
            host_members.extend(by_unit.into_values().map(|(id, range)| (id, host, range)));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|err| format!("cannot create `{}`: {err}", dir.display()))?;
    // Who defines and refers to what, from the symbols files for the objects seen before.
    // The baseline's objects are what the executable runs: a hot function's patch compares
    // the symbols of the objects the edit compiled again with theirs. Without a baseline
    // record this is the baseline build (or one before it): its objects are kept (those the
    // files do not have yet are read).
    let baseline_symbols = dir.join(BASELINE_SYMBOLS);
    let patch_symbols = dir.join(PATCH_SYMBOLS);
    let lib_symbols = dir.join(LIB_SYMBOLS);
    let read_symbols = |path: &Path, wanted: bool| {
        wanted
            .then(|| std::fs::read(path).ok())
            .flatten()
            .unwrap_or_default()
    };
    let baseline_bytes = read_symbols(&baseline_symbols, true);
    let patch_bytes = read_symbols(&patch_symbols, true);
    let lib_bytes = read_symbols(&lib_symbols, !archives.is_empty());
    let mut symbols = Symbols::default();
    for bytes in [&baseline_bytes, &patch_bytes, &lib_bytes] {
        symbols.load(bytes);
    }
    let mut data: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut read_any = false;
    let mut read_lib = false;
    for (index, unit) in units.iter().enumerate() {
        if symbols.objects.contains_key(&unit.id) {
            continue;
        }
        let bytes = match &unit.member {
            Some((archive, range, _)) => &archives[*archive][range.clone()],
            None => &*data.entry(index).or_insert(read(&unit.path)?),
        };
        let found = linkage(bytes).map_err(|err| format!("`{}`: {err:#}", unit.path))?;
        symbols.add(unit.id, found);
        read_any |= unit.member.is_none();
        read_lib |= unit.member.is_some();
    }
    for (id, archive, range) in &host_members {
        if !symbols.objects.contains_key(id) {
            let found = linkage(&archives[*archive][range.clone()])
                .map_err(|err| format!("the host's library crates: {err:#}"))?;
            symbols.add(*id, found);
            read_lib = true;
        }
    }
    if read_lib {
        let ids = host_members.iter().map(|(id, _, _)| *id);
        let ids = ids.chain(units.iter().filter(|u| u.member.is_some()).map(|u| u.id));
        symbols.save(ids, &lib_symbols);
    }
    let Some(baseline) = baseline else {
        symbols.save(units.iter().map(|u| u.id), &baseline_symbols);
        let _ = std::fs::remove_file(&patch_symbols);
        return Ok(args);
    };
    let mut baseline = baseline;
    baseline.extend(host_members.iter().map(|(id, _, _)| *id));
    let new: Vec<bool> = units.iter().map(|u| !baseline.contains(&u.id)).collect();
    if read_any {
        let ids = units
            .iter()
            .zip(&new)
            .filter(|(u, n)| u.member.is_none() && **n);
        symbols.save(ids.map(|(u, _)| u.id), &patch_symbols);
    }
    let packed: Vec<&Packed> = units.iter().map(|u| &symbols.objects[&u.id]).collect();
    // What the executable runs: its symbols' hashes, from the baseline's objects.
    let mut running: Vec<Option<u64>> = vec![None; symbols.names.len()];
    for (_, found) in symbols
        .objects
        .iter()
        .filter(|(id, _)| baseline.contains(id))
    {
        for symbol in &found.0 {
            if let Some(hash) = running.get_mut(symbol.0 as usize) {
                *hash = Some(symbol.1);
            }
        }
    }
    // An object rustc wrote anew whose every symbol is the executable's, byte for byte, has
    // not changed: rustc writes every codegen unit of a crate again when a crate below it
    // changed, most of them the same. Under redirection, every object written anew counts:
    // what the code index finds changed is redirected to the patch's copy, which must exist.
    let changed: Vec<bool> = new
        .iter()
        .zip(&packed)
        .map(|(new, found)| {
            *new && (!callers_too
                || found
                    .0
                    .iter()
                    .any(|d| running.get(d.0 as usize).copied().flatten() != Some(d.1)))
        })
        .collect();
    // Nothing to leave out of the bin crate; a library crate's objects still take the place of
    // its rlib (under redirection, their statics are shared as files of their own).
    if archives.is_empty() && changed.iter().all(|c| *c) {
        return Ok(args);
    }
    let name = |id: u32| symbols.names.get(id as usize).map_or("", |n| &**n);
    // The changed objects, and those that define what the runtime crate's macros export (hot
    // functions, their records and slots, persisted statics): the gate and the agent read
    // those from every patch.
    let mut included: Vec<bool> = packed
        .iter()
        .zip(&changed)
        .zip(&units)
        .map(|((found, changed), unit)| {
            *changed
                || (!callers_too && unit.member.is_some())
                || found
                    .0
                    .iter()
                    .any(|d| name(d.0).starts_with(RUNTIME_PREFIX))
        })
        .collect();
    // The object defining each name, by name index (`usize::MAX`: none of the crate's).
    let mut definer_of: Vec<usize> = vec![usize::MAX; symbols.names.len()];
    for (index, found) in packed.iter().enumerate() {
        for symbol in &found.0 {
            if let Some(d) = definer_of.get_mut(symbol.0 as usize)
                && *d == usize::MAX
            {
                *d = index;
            }
        }
    }
    let definer = |name: &str| -> Option<usize> {
        let &id = symbols.ids.get(name)?;
        definer_of
            .get(id as usize)
            .copied()
            .filter(|&d| d != usize::MAX)
    };
    // A library crate linked whole: the patch has its own copy of each of its symbols, which
    // count as new code for `Callers` (a hot function's patch).
    let mut rebuilt: Vec<u32> = Vec::new();
    if callers_too {
        for rlib in whole {
            for name in crate::symbols::archive_symbols(Path::new(rlib))? {
                rebuilt.extend(symbols.ids.get(name.as_str()));
            }
        }
    }
    let callers = callers_too.then(|| {
        let mut callers = Callers::new(&packed, &changed, &running, &definer_of);
        callers.changed.extend(rebuilt);
        callers
    });
    let exports = Exports::open(host)?;
    // The objects the patch links: the changed ones, and whatever they need that cannot be
    // left to the executable, until nothing more is needed.
    let mut refs: HashMap<usize, Refs> = HashMap::new();
    loop {
        let mut added = false;
        if let Some(callers) = &callers {
            added |= callers.include(&mut included);
        }
        for index in 0..units.len() {
            if included[index] && !refs.contains_key(&index) {
                let bytes = match (data.remove(&index), &units[index].member) {
                    (Some(bytes), _) => bytes,
                    (None, Some((archive, range, _))) => archives[*archive][range.clone()].to_vec(),
                    (None, None) => read(&units[index].path)?,
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
            .filter(|(name, _)| definer(name).is_some_and(|d| !included[d]))
            .map(|(name, r)| (name.as_str(), r.leavable))
            .collect();
        let exported = exports.defined(elsewhere.iter().map(|(name, _)| *name))?;
        for (name, leavable) in &elsewhere {
            if !(*leavable && exported.contains(name))
                && let Some(d) = definer(name)
            {
                added |= !included[d];
                included[d] = true;
            }
        }
        if !added {
            break;
        }
    }
    // Rewrite the references left to the executable. An rlib's objects the patch links are
    // written out, rewritten or not: they take the place of their rlib.
    let mut replaced: HashMap<usize, Vec<String>> = HashMap::new();
    for unit in units.iter().filter(|u| u.member.is_some()) {
        replaced.entry(unit.arg).or_default();
    }
    for (&index, found) in &refs {
        let mut bytes: Option<Vec<u8>> = None;
        for (name, r) in &found.by_name {
            if definer(name).is_none_or(|d| included[d]) {
                continue;
            }
            let bytes = bytes.get_or_insert_with(|| data.remove(&index).unwrap_or_default());
            for &at in &r.entries {
                bytes[at] = (bytes[at] & !3) | elf::STV_DEFAULT;
            }
            apply_rewrites(bytes, &r.leas);
        }
        let unit = &units[index];
        let name =
            match &unit.member {
                Some((_, _, name)) => name.as_str(),
                None if bytes.is_some() => Path::new(&unit.path)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| format!("`{}` has no file name", unit.path))?,
                None => continue,
            };
        let bytes = match bytes {
            Some(bytes) => bytes,
            None => data.remove(&index).unwrap_or_default(),
        };
        let to = dir.join(name);
        // A new file, private to the user: never written through a link to another.
        let _ = std::fs::remove_file(&to);
        super::capture::write_private(&to, &bytes).map_err(|err| format!("{err:#}"))?;
        replaced
            .entry(unit.arg)
            .or_default()
            .push(to.display().to_string());
    }
    // Copies a former patch needed and this one does not.
    remove_other_copies(dir, replaced.values().flatten());
    let dropped: HashSet<usize> = units
        .iter()
        .zip(&included)
        .filter(|(u, i)| !**i && u.member.is_none())
        .map(|(u, _)| u.arg)
        .collect();
    Ok(args
        .into_iter()
        .enumerate()
        .filter(|(arg, _)| !dropped.contains(arg))
        .flat_map(|(arg, path)| replaced.remove(&arg).unwrap_or_else(|| vec![path]))
        .collect())
}

/// The object files of the archive `data` (read from `path`, for messages): each one's name and
/// where its bytes are in `data`.
///
/// # Errors
///
/// When `data` is not an archive.
fn members(data: &[u8], path: &str) -> Result<Vec<(String, std::ops::Range<usize>)>, String> {
    let archive = object::read::archive::ArchiveFile::parse(data)
        .map_err(|err| format!("`{path}`: {err}"))?;
    let mut out = Vec::new();
    for member in archive.members() {
        let member = member.map_err(|err| format!("`{path}`: {err}"))?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        if !name.ends_with(".o") {
            continue;
        }
        let (start, size) = member.file_range();
        let range = usize::try_from(start)
            .ok()
            .zip(usize::try_from(size).ok())
            .map(|(start, size)| start..start.saturating_add(size))
            .filter(|range| range.end <= data.len())
            .ok_or_else(|| format!("`{path}`: the member `{name}` is out of range"))?;
        out.push((name, range));
    }
    Ok(out)
}

/// The codegen unit an rlib's object holds: its name without the build's own suffix (rustc
/// names it `<crate>-<hash>.<unit>.<suffix>.rcgu.o`, and the suffix differs between two builds
/// of the same code).
pub(super) fn codegen_unit(name: &str) -> &str {
    let base = name.strip_suffix(".rcgu.o").unwrap_or(name);
    base.rsplit_once('.').map_or(base, |(unit, _)| unit)
}

/// Which objects a hot function's patch must link besides those the edit compiled again: the
/// objects whose code the patch's code reaches through the executable's (the patch calls the
/// executable's copy of whatever it does not define, and that code calls the executable's
/// copies in turn) and that define a symbol whose code would behave otherwise there than in
/// the new program. Such a symbol *differs*: one whose bytes changed since the running
/// executable's (or that is new), a static or thread-local the patch has its own copy of (an
/// object it links defines it) or code of such an object that uses a private one, or one that
/// refers to a symbol that differs. Left to the executable, such code would call the old
/// definition of what changed, or use the program's copy of a static beside the patch's own.
struct Callers<'l> {
    /// The objects' symbols, by object.
    objects: &'l [&'l Packed],
    /// The object defining each symbol, by name index (`usize::MAX`: none of the crate's).
    definer: &'l [usize],
    /// The symbols that differ whatever the patch links: changed or new bytes.
    changed: Vec<u32>,
    /// Each symbol (by name index) -> the symbols of the crate that refer to it.
    referrers: Vec<Vec<u32>>,
    /// Each defined symbol (by name index) -> what it refers to.
    targets: Vec<&'l [u32]>,
}

impl<'l> Callers<'l> {
    /// `changed[i]`: whether object `i` was compiled again; `running`: each symbol's hash in
    /// the executable, by name index; `definer`: as [`Callers::definer`].
    fn new(
        objects: &'l [&'l Packed],
        changed: &[bool],
        running: &[Option<u64>],
        definer: &'l [usize],
    ) -> Callers<'l> {
        let names = definer.len();
        let mut referrers: Vec<Vec<u32>> = vec![Vec::new(); names];
        let mut targets: Vec<&[u32]> = vec![&[]; names];
        for symbol in objects.iter().flat_map(|p| &p.0) {
            if let Some(t) = targets.get_mut(symbol.0 as usize) {
                *t = &symbol.3;
            }
            for &target in &symbol.3 {
                if let Some(r) = referrers.get_mut(target as usize) {
                    r.push(symbol.0);
                }
            }
        }
        let changed = objects
            .iter()
            .zip(changed)
            .filter(|(_, c)| **c)
            .flat_map(|(p, _)| &p.0)
            .filter(|d| running.get(d.0 as usize).copied().flatten() != Some(d.1))
            .map(|d| d.0)
            .collect();
        Callers {
            objects,
            definer,
            changed,
            referrers,
            targets,
        }
    }

    /// Includes the objects that `included` makes necessary (see [`Callers`]), until none is
    /// missing. Returns whether any was added.
    fn include(&self, included: &mut [bool]) -> bool {
        let names = self.definer.len();
        let mut added = false;
        loop {
            // What differs with these objects in the patch.
            let mut differs = vec![false; names];
            let own = self
                .objects
                .iter()
                .zip(included.iter())
                .filter(|(_, i)| **i)
                .flat_map(|(p, _)| p.0.iter().filter(|d| d.2))
                .map(|d| d.0);
            let mut stack: Vec<u32> = self.changed.iter().copied().chain(own).collect();
            while let Some(name) = stack.pop() {
                if let Some(d) = differs.get_mut(name as usize)
                    && !*d
                {
                    *d = true;
                    stack.extend(&self.referrers[name as usize]);
                }
            }
            // What the patch's code reaches of the executable's.
            let mut reached = vec![false; names];
            let mut stack: Vec<u32> = self
                .objects
                .iter()
                .zip(included.iter())
                .filter(|(_, i)| **i)
                .flat_map(|(p, _)| p.1.iter().copied())
                .collect();
            let mut more = false;
            while let Some(name) = stack.pop() {
                let name = name as usize;
                let Some(&d) = self.definer.get(name) else {
                    continue;
                };
                if d == usize::MAX || included[d] || reached[name] {
                    continue;
                }
                reached[name] = true;
                if differs[name] {
                    included[d] = true;
                    more = true;
                    continue;
                }
                stack.extend(self.targets[name]);
            }
            if !more {
                return added;
            }
            added = true;
        }
    }
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
    fn an_rlib_object_is_named_by_its_codegen_unit_whatever_the_build() {
        // Two builds of the same crate (cargo's and a patch's), incremental and not.
        assert_eq!(
            codegen_unit("wording-0c1abd1f1797148a.6ggcl48910p0s3074r2jyp0w8.1q4l1er.rcgu.o"),
            codegen_unit("wording-0c1abd1f1797148a.6ggcl48910p0s3074r2jyp0w8.02p0t2c.rcgu.o"),
        );
        assert_ne!(
            codegen_unit("wording-0c1abd1f1797148a.6ggcl48910p0s3074r2jyp0w8.1q4l1er.rcgu.o"),
            codegen_unit("wording-0c1abd1f1797148a.cd7kf857txzu4vasnx1quz3su.1q4l1er.rcgu.o"),
        );
        assert_eq!(
            codegen_unit("leaf-1f2e.leaf.a1b2c3d4-cgu.0.rcgu.o"),
            "leaf-1f2e.leaf.a1b2c3d4-cgu"
        );
    }

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

    /// Objects of a made-up crate, each `(defines [(name, mutable, targets)], refers to)`, by
    /// name index: 0 `edited` (compiled again, its hash changed), 1 `hot_impl` (a hot
    /// function's object: linked), 2 `calls_edited`, 3 `leaf`, 4 `reads_state`, 5 `state` (a
    /// static of object 1), 6 `unreached` (calls `edited`, but nothing the patch reaches
    /// calls it), 7 `via` (calls `calls_edited`).
    #[test]
    fn a_hot_patch_links_the_programs_code_its_code_reaches_that_reaches_what_changed() {
        let object = |defined: &[(u32, bool, &[u32])], undefined: &[u32]| {
            Packed(
                defined
                    .iter()
                    .map(|&(name, mutable, targets)| Defined(name, 7, mutable, targets.to_vec()))
                    .collect(),
                undefined.to_vec(),
            )
        };
        let objects = [
            object(&[(0, false, &[])], &[]),
            object(&[(1, false, &[7, 3, 4]), (5, true, &[])], &[7, 3, 4]),
            object(&[(2, false, &[0])], &[0]),
            object(&[(3, false, &[])], &[]),
            object(&[(4, false, &[5])], &[5]),
            object(&[(6, false, &[0])], &[0]),
            object(&[(7, false, &[2])], &[2]),
        ];
        let packed: Vec<&Packed> = objects.iter().collect();
        // Where each name is defined.
        let definer = vec![0, 1, 2, 3, 4, 1, 5, 6];
        // `edited` ran other code; everything else as the executable has it.
        let mut running = vec![Some(7); 8];
        running[0] = Some(1);
        let changed = [true, false, false, false, false, false, false];
        let callers = Callers::new(&packed, &changed, &running, &definer);
        let mut included = vec![true, true, false, false, false, false, false];
        assert!(callers.include(&mut included));
        // `via` and `calls_edited` lead back to `edited`; `reads_state` reads the patch's
        // `state`; `leaf` behaves the same in the program; nothing reaches `unreached`.
        assert_eq!(included, [true, true, true, false, true, false, true]);
        assert!(!callers.include(&mut included));
    }
}
