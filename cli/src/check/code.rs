//! What a patch's code is: a hash of every function body with its relocations masked (so that
//! moving code does not count as a change, while a changed callee or constant does), and the
//! mutable statics and thread-locals the crate defines, and which code refers to which (to tell
//! the changes that no hot function reaches). Read from the crate's own object files, which the
//! linker wrapper keeps for each patch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use anyhow::Context;
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationKind, RelocationTarget, SectionIndex,
    SectionKind, SymbolKind,
};

/// The functions and statics of one build of the crate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CodeIndex {
    /// Demangled function name (without hash) -> hash of its body(ies).
    pub(crate) functions: BTreeMap<String, u64>,
    /// Mutable statics and thread-locals the crate defines, by demangled path.
    pub(crate) statics: BTreeSet<String>,
    /// Demangled static name (without hash) -> hash of its initial value(s): code in another
    /// codegen unit reads a static through a relocation, whose bytes do not change with it.
    pub(crate) values: BTreeMap<String, u64>,
    /// Symbol (as the object file names it, mangled: one per instantiation of a generic) ->
    /// the symbols its code or data refers to (calls, function pointers, vtables), found
    /// through its relocations. Demangled names would merge every instantiation of a generic
    /// function (`FnOnce::call_once`) into one, and with it the callers of each.
    pub(crate) edges: Edges,
}

/// Symbol -> the symbols it refers to (see [`CodeIndex::edges`]).
pub(crate) type EdgeMap = BTreeMap<Arc<str>, BTreeSet<Arc<str>>>;

/// The references of a [`CodeIndex`]'s code, one [`EdgeMap`] per object, joined into one map
/// (dereferencing gives it) on first use only. Joining those of the medium benchmark fixture's
/// 256 objects takes about 6 ms, and a patch under entry redirection rarely needs them. The
/// names are shared with the objects' cached parts, so that joining them copies no string.
#[derive(Debug, Clone, Default)]
pub(crate) struct Edges {
    parts: Vec<Arc<EdgeMap>>,
    joined: OnceLock<EdgeMap>,
}

impl std::ops::Deref for Edges {
    type Target = EdgeMap;

    fn deref(&self) -> &EdgeMap {
        self.joined.get_or_init(|| match &self.parts[..] {
            [one] => (**one).clone(),
            parts => {
                let mut joined = EdgeMap::new();
                for part in parts {
                    for (name, targets) in part.iter() {
                        match joined.get_mut(name) {
                            Some(known) => known.extend(targets.iter().cloned()),
                            None => {
                                joined.insert(Arc::clone(name), targets.clone());
                            }
                        }
                    }
                }
                joined
            }
        })
    }
}

impl PartialEq for Edges {
    fn eq(&self, other: &Edges) -> bool {
        **self == **other
    }
}

impl Eq for Edges {}

impl FromIterator<(Arc<str>, BTreeSet<Arc<str>>)> for Edges {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, BTreeSet<Arc<str>>)>>(iter: I) -> Edges {
        Edges {
            parts: vec![Arc::new(iter.into_iter().collect())],
            joined: OnceLock::new(),
        }
    }
}

impl CodeIndex {
    /// Indexes every object file in `dir`, reading only the objects that are not the same files
    /// as at the last call for `dir` and `crate_name` (see [`ObjectId`]): an edit makes rustc
    /// write the objects of the codegen units it compiled again, and the other units' objects
    /// are the incremental cache's files, hard linked.
    ///
    /// # Errors
    ///
    /// When the directory or a file cannot be read, or a file is not an object file.
    pub(crate) fn read_dir(dir: &Path, crate_name: &str) -> anyhow::Result<CodeIndex> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read `{}`", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "o"))
            .collect();
        paths.sort();
        let cache_key = (dir.to_path_buf(), crate_name.to_owned());
        let mut cache = PARTS_CACHE.lock().unwrap_or_else(|e| e.into_inner());
        let previous = cache.remove(&cache_key).unwrap_or_default();
        let mut kept = HashMap::with_capacity(paths.len());
        let mut parts = Vec::with_capacity(paths.len());
        for path in paths {
            let id = ObjectId::of(&path)?;
            let part = match previous.get(&id) {
                Some(part) => Arc::clone(part),
                None => {
                    let data = std::fs::read(&path)
                        .with_context(|| format!("cannot read `{}`", path.display()))?;
                    Arc::new(ObjectPart::read(
                        &path.display().to_string(),
                        &data,
                        crate_name,
                    )?)
                }
            };
            kept.insert(id, Arc::clone(&part));
            parts.push(part);
        }
        cache.insert(cache_key, kept);
        Ok(Self::merge(parts.iter().map(|p| &**p)))
    }

    /// Indexes every object file (`*.o` member) of the rlib at `path`.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or is not an archive, or a member is not an object file.
    pub(crate) fn read_rlib(path: &Path, crate_name: &str) -> anyhow::Result<CodeIndex> {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let archive = object::read::archive::ArchiveFile::parse(&*data)
            .with_context(|| format!("`{}` is not an rlib", path.display()))?;
        let mut objects = Vec::new();
        for member in archive.members() {
            let member = member.with_context(|| format!("malformed rlib `{}`", path.display()))?;
            let name = String::from_utf8_lossy(member.name()).into_owned();
            if name.ends_with(".o") {
                let bytes = member
                    .data(&*data)
                    .with_context(|| format!("malformed rlib `{}`", path.display()))?;
                objects.push((name, bytes));
            }
        }
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        Self::index(objects.iter().map(|(n, d)| (n.as_str(), *d)), crate_name)
    }

    /// Indexes the object files `objects`, each `(name for messages, bytes)`.
    fn index<'d>(
        objects: impl Iterator<Item = (&'d str, &'d [u8])>,
        crate_name: &str,
    ) -> anyhow::Result<CodeIndex> {
        let parts = objects
            .map(|(name, data)| ObjectPart::read(name, data, crate_name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self::merge(parts.iter()))
    }

    /// The index of the objects whose contributions are `parts`.
    fn merge<'p>(parts: impl Iterator<Item = &'p ObjectPart>) -> CodeIndex {
        let mut bodies: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        let mut values: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        let mut statics = BTreeSet::new();
        let mut edges = Edges::default();
        for part in parts {
            for (name, hashes) in &part.bodies {
                bodies.entry(name).or_default().extend(hashes);
            }
            for (name, hashes) in &part.values {
                values.entry(name).or_default().extend(hashes);
            }
            statics.extend(part.statics.iter().cloned());
            edges.parts.push(Arc::clone(&part.edges));
        }
        let combined = |map: BTreeMap<&str, Vec<u64>>| -> BTreeMap<String, u64> {
            map.into_iter()
                .map(|(name, mut hashes)| {
                    hashes.sort_unstable();
                    let mut hasher = DefaultHasher::new();
                    hashes.hash(&mut hasher);
                    (name.to_owned(), hasher.finish())
                })
                .collect()
        };
        CodeIndex {
            functions: combined(bodies),
            statics,
            values: combined(values),
            edges,
        }
    }
}

/// What one object file contributes to a [`CodeIndex`].
#[derive(Debug, Default)]
struct ObjectPart {
    /// Demangled function name -> the hash of each of its bodies in this object.
    bodies: BTreeMap<String, Vec<u64>>,
    statics: BTreeSet<String>,
    /// Demangled static name -> the hash of its initial value (each definition's).
    values: BTreeMap<String, Vec<u64>>,
    edges: Arc<EdgeMap>,
}

impl ObjectPart {
    /// Reads the object file `data` (`name` for messages) of the crate `crate_name`.
    ///
    /// # Errors
    ///
    /// When `data` is not an object file.
    fn read(name: &str, data: &[u8], crate_name: &str) -> anyhow::Result<ObjectPart> {
        let file =
            object::File::parse(data).with_context(|| format!("`{name}` is not an object file"))?;
        let mut part = ObjectPart::default();
        index_object(
            &file,
            crate_name,
            &mut part.bodies,
            &mut part.statics,
            &mut part.values,
        );
        let mut edges = EdgeMap::new();
        collect_edges(&file, &mut edges);
        part.edges = Arc::new(edges);
        Ok(part)
    }
}

/// Which file an object is, to tell the objects of reused codegen units (the same inode as at the
/// last patch: rustc hard-links them out of its incremental cache, the linker wrapper hard-links
/// them again) from those rustc wrote anew. Size and modification time (ns) guard against an
/// inode number reused by another file.
///
/// An object inside an archive (a library crate's rlib) has no inode of its own: it is named by
/// the archive's identity and its offset in it ([`ObjectId::member`]), or by its bytes
/// ([`ObjectId::of_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) struct ObjectId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    /// For an archive's member, 1 + its offset in the archive (bytes); 0 for a file of its own
    /// or an identity by content.
    #[serde(default)]
    member: u64,
}

impl ObjectId {
    /// The identity of the file at `path`.
    ///
    /// # Errors
    ///
    /// When its metadata cannot be read.
    pub(crate) fn of(path: &Path) -> anyhow::Result<ObjectId> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        Ok(ObjectId {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            member: 0,
        })
    }

    /// The identity of the member at `offset` (bytes from the start of the file) of the archive
    /// whose identity is `archive`: it stays the same as long as the archive file does.
    pub(crate) fn member(archive: ObjectId, offset: u64) -> ObjectId {
        ObjectId {
            member: offset + 1,
            ..archive
        }
    }

    /// An identity by content: objects with the same bytes have the same identity (a 64-bit
    /// FNV-1a hash and the length), whatever file holds them.
    pub(crate) fn of_bytes(bytes: &[u8]) -> ObjectId {
        ObjectId {
            dev: 0,
            ino: crate::project::stable_hash(&[bytes]),
            len: bytes.len() as u64,
            mtime: (0, 0),
            member: 0,
        }
    }
}

/// Objects directory and crate -> what each object file read at the last [`CodeIndex::read_dir`]
/// contributed: the next call reads only the files that are not among them. Each call keeps only
/// the objects it saw, so the cache holds one build per directory.
type PartsCache = HashMap<(PathBuf, String), HashMap<ObjectId, Arc<ObjectPart>>>;
static PARTS_CACHE: LazyLock<Mutex<PartsCache>> = LazyLock::new(Default::default);

/// Those of `changed` (display names) that no hot function's body reaches in `code` (the
/// indexes of every crate of one patch: calls are followed across them): their new code runs
/// only in a restarted program (for example what only `main` calls at start-up). With
/// `running_hot` (the paths of the hot functions the running program has), only those count:
/// a hot function new in the patch runs only where the new code of one of them calls it.
pub(crate) fn unreachable(
    code: &[&CodeIndex],
    changed: &[String],
    crates: &Crates,
    running_hot: Option<&BTreeSet<String>>,
) -> Vec<String> {
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> = code
        .iter()
        .flat_map(|index| {
            let functions = index.functions.keys().map(String::as_str);
            index.edges.keys().map(|name| &**name).chain(functions)
        })
        .filter(|name| {
            name.strip_prefix(hotswap::protocol::IMPL_PREFIX)
                .is_some_and(|path| running_hot.is_none_or(|hot| hot.contains(path)))
        })
        .collect();
    while let Some(name) = stack.pop() {
        if !reached.insert(name) {
            continue;
        }
        for index in code {
            if let Some(targets) = index.edges.get(name) {
                stack.extend(targets.iter().map(|target| &**target));
            }
        }
    }
    let live: BTreeSet<String> = reached
        .iter()
        .filter_map(|name| crates.display(&crate::symbols::demangle(name)))
        .collect();
    changed
        .iter()
        .filter(|name| !live.contains(*name))
        .cloned()
        .collect()
}

impl CodeIndex {
    /// Functions of the crate whose body differs from `previous` or is new, as display names
    /// (see [`display_name`]), sorted and without duplicates.
    pub(crate) fn changed_since(&self, previous: &CodeIndex, crates: &Crates) -> Vec<String> {
        changed(&self.functions, &previous.functions, crates)
    }

    /// The statics whose initial value differs from `previous`'s (or that are new), as
    /// messages show them.
    pub(crate) fn values_changed_since(
        &self,
        previous: &CodeIndex,
        crates: &Crates,
    ) -> Vec<String> {
        changed(&self.values, &previous.values, crates)
    }

    /// The entry points of the global allocator that the crate defines (see
    /// [`crate::symbols::ALLOCATOR_ENTRIES`]), with the hashes of their code: empty when the
    /// crate defines none. Another allocator type gives other code.
    pub(crate) fn allocator_entries(&self) -> BTreeMap<String, u64> {
        self.functions
            .iter()
            .filter(|(name, _)| crate::symbols::is_allocator_entry(name))
            .map(|(name, hash)| (name.clone(), *hash))
            .collect()
    }

    /// The statics of the crate (`crate_name`) that the global allocator's entry points (see
    /// [`CodeIndex::allocator_entries`]) reach through the crate's code, as messages show them
    /// (`arena::NEXT`): the allocator's state. Empty when the crate defines no allocator.
    pub(crate) fn allocator_statics(&self, crate_name: &str) -> BTreeSet<String> {
        let entries = self.allocator_entries();
        let mut stack: Vec<&Arc<str>> = self
            .edges
            .keys()
            .filter(|symbol| entries.contains_key(&crate::symbols::demangle(symbol)))
            .collect();
        let mut seen: BTreeSet<&Arc<str>> = BTreeSet::new();
        let mut found = BTreeSet::new();
        while let Some(symbol) = stack.pop() {
            if !seen.insert(symbol) {
                continue;
            }
            found.extend(static_name(&crate::symbols::demangle(symbol), crate_name));
            stack.extend(self.edges.get(symbol).into_iter().flatten());
        }
        found
    }

    /// The statics whose values the index holds, as messages show them.
    pub(crate) fn static_names(&self, crates: &Crates) -> BTreeSet<String> {
        self.values
            .keys()
            .filter_map(|name| crates.display(name))
            .collect()
    }

    /// The statics with unmangled names (exported: the running program's copy is every patch's)
    /// of `previous` whose initial value differs here, as messages show them.
    pub(crate) fn exported_values_edited_since(
        &self,
        previous: &BTreeMap<String, u64>,
        crates: &Crates,
    ) -> Vec<String> {
        self.edited_values(previous, crates, |name| unmangled_owner(name).is_some())
    }

    /// The initial values of the statics with unmangled names (exported: the executable's
    /// copy interposes every patch's), by symbol.
    pub(crate) fn exported_values(&self) -> BTreeMap<String, u64> {
        self.values
            .iter()
            .filter(|(name, _)| unmangled_owner(name).is_some())
            .map(|(name, hash)| (name.clone(), *hash))
            .collect()
    }

    /// Takes the initial values of the statics with unmangled names that `running` (the
    /// [`CodeIndex::values`] of the code the program runs) gives: their values stay what the
    /// program started with whatever a patch held (see [`CodeIndex::exported_values`]).
    pub(crate) fn keep_exported_values(&mut self, running: &BTreeMap<String, u64>) {
        for (name, hash) in running {
            if unmangled_owner(name).is_some() {
                self.values.insert(name.clone(), *hash);
            }
        }
    }

    /// The statics of `previous` whose initial value differs here, as messages show them (new
    /// statics left out).
    pub(crate) fn values_edited_since(&self, previous: &CodeIndex, crates: &Crates) -> Vec<String> {
        self.edited_values(&previous.values, crates, |_| true)
    }

    /// The statics of `previous` that `keep` accepts (by symbol, demangled) whose initial
    /// value differs here, as messages show them.
    fn edited_values(
        &self,
        previous: &BTreeMap<String, u64>,
        crates: &Crates,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let kept: BTreeMap<String, u64> = self
            .values
            .iter()
            .filter(|(name, _)| previous.contains_key(*name) && keep(name))
            .map(|(name, hash)| (name.clone(), *hash))
            .collect();
        changed(&kept, previous, crates)
    }
}

/// The names of `now` whose hash differs from `before`'s (or that are new), as messages show
/// them.
fn changed(
    now: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
    crates: &Crates,
) -> Vec<String> {
    let mut changed = BTreeSet::new();
    // Both are in name order: one walk, not a search of `before` for each name.
    let mut before = before.iter().peekable();
    for (name, hash) in now {
        while before.next_if(|(old, _)| *old < name).is_some() {}
        let same = before
            .peek()
            .is_some_and(|(old, old_hash)| *old == name && *old_hash == hash);
        if !same && let Some(display) = crates.display(name) {
            changed.insert(display);
        }
    }
    changed.into_iter().collect()
}

/// Adds the functions and statics of one object file.
fn index_object(
    file: &object::File<'_>,
    crate_name: &str,
    bodies: &mut BTreeMap<String, Vec<u64>>,
    statics: &mut BTreeSet<String>,
    values: &mut BTreeMap<String, Vec<u64>>,
) {
    let mut content_hash = content_hasher(file);
    for symbol in file.symbols() {
        // Not `is_definition`: `object` does not count thread-locals as definitions.
        if symbol.is_undefined() {
            continue;
        }
        let Ok(name) = symbol.name() else { continue };
        let demangled = crate::symbols::demangle(name);
        let Some(index) = symbol.section_index() else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        // A function or static the user gave an unmangled name: the crate's (see `UNMANGLED`).
        // Such a static is exported, and every patch's code uses the program's copy of it.
        let exported = symbol.scope() == object::SymbolScope::Dynamic && is_user_unmangled(name);
        if exported {
            UNMANGLED
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(name.to_owned(), crate_name.to_owned());
        }
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
                let path = static_name(&demangled, crate_name);
                if path.is_some() || exported {
                    // An exported static is shared, never a fresh copy: not among `statics`.
                    statics.extend(path);
                    // Its initial value: code in another codegen unit reads it through a
                    // relocation, whose bytes do not change with the value.
                    let hash = body_hash(file, &section, &symbol, &mut content_hash);
                    values.entry(demangled).or_default().push(hash);
                }
            }
            SymbolKind::Data
                if matches!(
                    section.kind(),
                    SectionKind::ReadOnlyData | SectionKind::ReadOnlyDataWithRel
                ) && (exported || static_name(&demangled, crate_name).is_some()) =>
            {
                // An immutable static's value, likewise.
                let hash = body_hash(file, &section, &symbol, &mut content_hash);
                values.entry(demangled).or_default().push(hash);
            }
            _ => {}
        }
    }
}

/// A hash of a data section's bytes, cached per section, for [`body_hash`]: a panic location
/// stands for its file only, so that an edit that moves a function's lines does not change its
/// code.
///
/// The pointers in the data count too, each by what it points to (a function by name, other
/// data by its bytes, one level deep): the section's own bytes hold zeros where they go, so a
/// `&str` static of the same length, or a table of function pointers in another order, would
/// hash the same.
fn content_hasher<'f>(file: &'f object::File<'_>) -> impl FnMut(SectionIndex) -> u64 + 'f {
    let mut section_hashes: HashMap<SectionIndex, u64> = HashMap::new();
    move |index: SectionIndex| -> u64 {
        *section_hashes.entry(index).or_insert_with(|| {
            let mut hasher = DefaultHasher::new();
            if let Ok(section) = file.section_by_index(index) {
                match location_file(file, &section) {
                    Some(name) => name.hash(&mut hasher),
                    None => {
                        section.data().unwrap_or_default().hash(&mut hasher);
                        for (offset, relocation) in section.relocations() {
                            offset.hash(&mut hasher);
                            relocation.addend().hash(&mut hasher);
                            pointee(file, &relocation).hash(&mut hasher);
                        }
                    }
                }
            }
            hasher.finish()
        })
    }
}

/// What a relocation in data points to, for [`content_hasher`]: a function's or named
/// symbol's name, a merged constant's bytes, or else the bytes of the section it points into.
fn pointee<'data>(file: &object::File<'data>, relocation: &object::Relocation) -> &'data [u8] {
    let RelocationTarget::Symbol(target) = relocation.target() else {
        return &[];
    };
    let Ok(target) = file.symbol_by_index(target) else {
        return &[];
    };
    if target.kind() == SymbolKind::Text
        && let Ok(name) = target.name_bytes()
    {
        return name;
    }
    let Some(index) = target.section_index() else {
        return target.name_bytes().unwrap_or_default();
    };
    if let Some(bytes) = merged_constant(file, index, &target, relocation) {
        return bytes;
    }
    file.section_by_index(index)
        .ok()
        .and_then(|section| section.data().ok())
        .unwrap_or_default()
}

/// One global symbol an object file defines, as a thin patch's link compares it with the
/// running executable's (see `build::thin`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct GlobalSymbol {
    /// Its name as the object file spells it (mangled).
    pub(crate) name: String,
    /// A hash of its bytes and of the object's local code and data it reaches (a private
    /// helper's, a string's), each as [`CodeIndex`] hashes a function's body: equal across two
    /// builds when all that code (or data) and the names of the global symbols it refers to
    /// are.
    pub(crate) hash: u64,
    /// Whether it is mutable data of the object's own: a static in a writable section or a
    /// thread-local, but those the runtime crate's macros export (`#[hot]`'s slots, `persist!`'s
    /// statics), which a patch's code reaches in the executable by interposition. A library
    /// crate's `pub static` is not one of those: its own crate's code addresses it directly.
    pub(crate) mutable: bool,
    /// Whether it reaches, through the object's local symbols, a private static or
    /// thread-local (which rustc makes local when no other codegen unit uses it).
    pub(crate) local_state: bool,
    /// The global symbols its bytes refer to, directly or through the object's local symbols
    /// and sections (a closure's, a constant's), sorted.
    pub(crate) targets: Vec<String>,
}

/// The global symbols of one object file: those it defines and those it refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Linkage {
    /// The global symbols it defines.
    pub(crate) defined: Vec<GlobalSymbol>,
    /// The global symbols it refers to without defining them.
    pub(crate) undefined: Vec<String>,
}

/// The start of the names of the symbols that the runtime crate's macros export (`#[hot]`'s
/// implementations, slots and records, `persist!`'s statics and layouts).
pub(crate) const RUNTIME_PREFIX: &str = "__hotswap_";

/// Reads the [`Linkage`] of the object file `data`.
///
/// # Errors
///
/// When `data` is not an object file.
pub(crate) fn linkage(data: &[u8]) -> anyhow::Result<Linkage> {
    let file = object::File::parse(data).context("not an object file")?;
    let mut content_hash = content_hasher(&file);
    let mut out = Linkage::default();
    for symbol in file.symbols() {
        let Ok(name) = symbol.name() else { continue };
        if name.is_empty() || symbol.kind() == SymbolKind::Section || symbol.is_local() {
            continue;
        }
        if symbol.is_undefined() {
            out.undefined.push(name.to_owned());
            continue;
        }
        let Some(index) = symbol.section_index() else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let hidden = match symbol.flags() {
            object::SymbolFlags::Elf { st_other, .. } => st_other & 3 != object::elf::STV_DEFAULT,
            _ => false,
        };
        let interposed = !hidden && name.starts_with(RUNTIME_PREFIX);
        let mutable = !interposed
            && matches!(symbol.kind(), SymbolKind::Tls | SymbolKind::Data)
            && is_mutable(&section);
        let reach = reach(&file, index, name);
        // Its own bytes, and those of the local code and data it reaches (sorted: the walk's
        // order says nothing), but panic locations and merged strings, which the references
        // to them describe by content already.
        let mut hashes: Vec<u64> = reach
            .sections
            .iter()
            .filter_map(|&at| {
                let section = file.section_by_index(at).ok()?;
                if section.kind() == SectionKind::ReadOnlyString
                    || location_file(&file, &section).is_some()
                {
                    return None;
                }
                let len = section.data().ok()?.len();
                Some(range_hash(&file, &section, 0, len, &mut content_hash))
            })
            .collect();
        hashes.sort_unstable();
        let mut hasher = DefaultHasher::new();
        body_hash(&file, &section, &symbol, &mut content_hash).hash(&mut hasher);
        hashes.hash(&mut hasher);
        out.defined.push(GlobalSymbol {
            name: name.to_owned(),
            hash: hasher.finish(),
            mutable,
            local_state: reach.state,
            targets: reach.targets,
        });
    }
    Ok(out)
}

/// Whether `section` holds data that code may write: statics and thread-locals, not what is
/// written only while the program is loaded (`.data.rel.ro`: vtables, panic locations).
pub(crate) fn is_mutable(section: &object::Section<'_, '_>) -> bool {
    matches!(
        section.kind(),
        SectionKind::Data
            | SectionKind::UninitializedData
            | SectionKind::Tls
            | SectionKind::UninitializedTls
    ) && !section
        .name()
        .is_ok_and(|name| name.starts_with(".data.rel.ro"))
}

/// What the code or data of one section reaches through the object's local symbols: see
/// [`reach`].
struct Reach {
    /// The global symbols it refers to, sorted.
    targets: Vec<String>,
    /// The other sections it reaches.
    sections: Vec<SectionIndex>,
    /// Whether one of those is mutable data (a private static or thread-local).
    state: bool,
}

/// The global symbols that section `index` of `file` refers to, directly or through the
/// sections of the local symbols it refers to (and theirs, and so on), but `own` (the symbol
/// it defines), and the sections it reaches so. Whole sections count: rustc puts each function
/// and each static in its own.
fn reach(file: &object::File<'_>, index: SectionIndex, own: &str) -> Reach {
    let mut seen: std::collections::HashSet<SectionIndex> =
        std::collections::HashSet::from([index]);
    let mut stack = vec![index];
    let mut targets: BTreeSet<&str> = BTreeSet::new();
    let mut sections = Vec::new();
    let mut state = false;
    while let Some(at) = stack.pop() {
        let Ok(section) = file.section_by_index(at) else {
            continue;
        };
        if at != index {
            sections.push(at);
            state |= is_mutable(&section);
        }
        for (_, relocation) in section.relocations() {
            let RelocationTarget::Symbol(target) = relocation.target() else {
                continue;
            };
            let Ok(target) = file.symbol_by_index(target) else {
                continue;
            };
            if target.is_global() {
                if let Ok(name) = target.name()
                    && !name.is_empty()
                    && name != own
                {
                    targets.insert(name);
                }
            } else if let Some(next) = target.section_index()
                && seen.insert(next)
            {
                stack.push(next);
            }
        }
    }
    Reach {
        targets: targets.into_iter().map(str::to_owned).collect(),
        sections,
        state,
    }
}

/// Adds, for every defined function and data symbol of `file`, the symbols its bytes refer to.
/// A reference to a section (how local symbols are often reached) counts as one to every symbol
/// defined in that section.
fn collect_edges(file: &object::File<'_>, edges: &mut EdgeMap) {
    let mut in_section: HashMap<SectionIndex, Vec<Arc<str>>> = HashMap::new();
    let mut defined = Vec::new();
    for symbol in file.symbols() {
        if symbol.is_undefined() || !matches!(symbol.kind(), SymbolKind::Text | SymbolKind::Data) {
            continue;
        }
        let (Ok(name), Some(index)) = (symbol.name(), symbol.section_index()) else {
            continue;
        };
        let name: Arc<str> = Arc::from(name);
        in_section.entry(index).or_default().push(Arc::clone(&name));
        defined.push((name, index, symbol.address(), symbol.size()));
    }
    for (name, index, address, size) in defined {
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let start = address.saturating_sub(section.address());
        let end = if size == 0 {
            u64::MAX
        } else {
            start.saturating_add(size)
        };
        let targets = edges.entry(name).or_default();
        for (offset, relocation) in section.relocations() {
            if offset < start || offset >= end {
                continue;
            }
            let RelocationTarget::Symbol(target) = relocation.target() else {
                continue;
            };
            let Ok(target) = file.symbol_by_index(target) else {
                continue;
            };
            if target.kind() == SymbolKind::Section {
                if let Some(index) = target.section_index() {
                    section_edges(file, index, &in_section, targets);
                }
            } else if let Ok(target) = target.name()
                && !target.is_empty()
            {
                targets.insert(Arc::from(target));
            }
        }
    }
}

/// Adds to `targets` what a reference to section `index` of `file` reaches: the symbols named
/// in it (`in_section`), or, for a section without any (rustc's vtables and other anonymous
/// constants, `.data.rel.ro..Lanon.*`), what its relocations point to, through further such
/// sections.
fn section_edges(
    file: &object::File<'_>,
    index: SectionIndex,
    in_section: &HashMap<SectionIndex, Vec<Arc<str>>>,
    targets: &mut BTreeSet<Arc<str>>,
) {
    let mut seen: std::collections::HashSet<SectionIndex> = std::collections::HashSet::new();
    let mut stack = vec![index];
    while let Some(at) = stack.pop() {
        if !seen.insert(at) {
            continue;
        }
        if let Some(names) = in_section.get(&at) {
            targets.extend(names.iter().cloned());
            continue;
        }
        let Ok(section) = file.section_by_index(at) else {
            continue;
        };
        for (_, relocation) in section.relocations() {
            let RelocationTarget::Symbol(target) = relocation.target() else {
                continue;
            };
            let Ok(target) = file.symbol_by_index(target) else {
                continue;
            };
            if target.kind() == SymbolKind::Section {
                stack.extend(target.section_index());
            } else if let Ok(name) = target.name()
                && !name.is_empty()
            {
                targets.insert(Arc::from(name));
            }
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
    range_hash(file, section, start, end, content_hash)
}

/// [`body_hash`] of the bytes `start..end` of `section`.
fn range_hash(
    file: &object::File<'_>,
    section: &object::Section<'_, '_>,
    start: usize,
    end: usize,
    content_hash: &mut impl FnMut(SectionIndex) -> u64,
) -> u64 {
    let data = section.data().unwrap_or_default();
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
                Some(index) if !is_code => {
                    match merged_constant(file, index, &target, &relocation) {
                        Some(bytes) => bytes.hash(&mut hasher),
                        None => content_hash(index).hash(&mut hasher),
                    }
                }
                _ => target.name().unwrap_or_default().hash(&mut hasher),
            }
        }
    }
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// The file name of a `core::panic::Location` that is all of `section`, `None` if the section is
/// not one. rustc emits each location a panic or a `#[track_caller]` call reports as its own
/// 24-byte read-only section (`.data.rel.ro..Lanon.*`): the file name's address (one
/// relocation, to a NUL-terminated string of merged strings), its length, then the line and
/// the column as `u32`s (the layout of `Location` since Rust 1.88, as rustc 1.95 emits it).
/// A section of that shape whose string is a `.rs` path of that length is taken as one; data
/// of the user's that matches this shape exactly is compared by file name only as well.
fn location_file<'data>(
    file: &object::File<'data>,
    section: &object::Section<'data, '_>,
) -> Option<&'data [u8]> {
    let data = section.data().ok()?;
    if data.len() != 24 || !section.name().ok()?.starts_with(".data.rel.ro.") {
        return None;
    }
    let mut relocations = section.relocations();
    let (0, relocation) = relocations.next()? else {
        return None;
    };
    if relocations.next().is_some() {
        return None;
    }
    let RelocationTarget::Symbol(target) = relocation.target() else {
        return None;
    };
    let target = file.symbol_by_index(target).ok()?;
    let strings = file.section_by_index(target.section_index()?).ok()?;
    if !strings.name().ok()?.starts_with(".rodata.str") {
        return None;
    }
    let start = usize::try_from(
        i64::try_from(target.address())
            .ok()?
            .checked_add(relocation.addend())?,
    )
    .ok()?;
    let length = usize::try_from(u64::from_le_bytes(data[8..16].try_into().ok()?)).ok()?;
    let name = strings
        .data()
        .ok()?
        .get(start..start.checked_add(length)?)?;
    name.ends_with(b".rs").then_some(name)
}

/// The one constant a relocation refers to in a section of merged constants, whose other
/// entries belong to other functions (`.rodata.cst16`: 16-byte constants; `.rodata.str1.1`:
/// NUL-terminated strings); `None` for any other section, whose whole content then stands for
/// the data. Without this, an edited constant of one function would count as a change of every
/// function using a constant of the same size.
fn merged_constant<'data>(
    file: &object::File<'data>,
    index: SectionIndex,
    target: &object::Symbol<'data, '_>,
    relocation: &object::Relocation,
) -> Option<&'data [u8]> {
    let section = file.section_by_index(index).ok()?;
    let name = section.name().ok()?;
    let data = section.data().ok()?;
    let base = i64::try_from(target.address().checked_sub(section.address())?).ok()?;
    // A PC-relative field is usually the last four bytes of its instruction, so its addend is
    // the field's distance to the next instruction, -4.
    let adjust = match relocation.kind() {
        RelocationKind::Relative | RelocationKind::PltRelative | RelocationKind::GotRelative => 4,
        _ => 0,
    };
    // Checked: a crafted addend must not overflow (it would panic in a debug build).
    let offset = base
        .checked_add(relocation.addend())?
        .checked_add(adjust)?
        .max(0);
    let offset = usize::try_from(offset).ok()?;
    if let Some(size) = name.strip_prefix(".rodata.cst") {
        let size: usize = size.parse().ok().filter(|size| *size > 0)?;
        let entry = offset / size * size;
        data.get(entry..entry.checked_add(size)?)
    } else if name.starts_with(".rodata.str") {
        let rest = data.get(offset..)?;
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        rest.get(..end)
    } else {
        None
    }
}

/// The crates whose code a patch holds, for naming their functions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Crates {
    /// The bin crate's name: its functions are shown without it.
    pub(crate) bin: String,
    /// The library crates the patch rebuilds: their functions are shown with their name.
    pub(crate) libs: Vec<String>,
}

impl Crates {
    /// The patch of the bin crate `bin` alone.
    #[cfg(test)]
    pub(crate) fn bin(bin: &str) -> Crates {
        Crates {
            bin: bin.to_owned(),
            libs: Vec::new(),
        }
    }

    /// Whether a crate of the patch has the name of a crate of the standard library (`core`,
    /// `alloc`, `std`, ...): symbol names do not tell its functions from the standard
    /// library's, so the changed functions cannot be named.
    pub(crate) fn ambiguous(&self) -> bool {
        const SYSROOT: [&str; 6] = ["core", "alloc", "std", "proc_macro", "test", "panic_unwind"];
        std::iter::once(&self.bin)
            .chain(&self.libs)
            .any(|name| SYSROOT.contains(&name.as_str()))
    }

    /// How the function `demangled` is shown (see [`display_name`]): `render::frame` for the
    /// bin's, `leaf::word` for a rebuilt library's; `None` for code of no crate of the patch.
    pub(crate) fn display(&self, demangled: &str) -> Option<String> {
        display_name(demangled, &self.bin).or_else(|| {
            self.libs
                .iter()
                .find_map(|lib| display_name(demangled, lib).map(|name| qualified(lib, &name)))
        })
    }
}

/// `name` (shown without its crate) with the crate `lib` in front: `leaf::word`, and for a
/// trait method `<leaf::Price as Display>::fmt`.
pub(crate) fn qualified(lib: &str, name: &str) -> String {
    match name.strip_prefix('<') {
        Some(rest) => format!("<{lib}::{rest}"),
        None => format!("{lib}::{name}"),
    }
}

/// The global functions with unmangled names (`#[unsafe(no_mangle)]`, `#[unsafe(export_name)]`)
/// that the objects indexed so far define, each with the crate whose objects define it: their
/// names carry no crate path, so [`display_name`] takes the crate from here. A program cannot
/// define one such name twice (its link would fail), so the name alone tells the function.
static UNMANGLED: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Default::default);

/// Whether the symbol `name` of a crate's object is a function or static the user gave an
/// unmangled name:
/// not a Rust symbol (one that demangles, legacy `_ZN...E` or v0 `_R...`), not a name of the
/// implementation (`__rust_alloc` and the like of the allocator shim rustc adds to a cdylib, the
/// runtime's `__hotswap_` symbols), not a compiler-made name with a dot (a local label,
/// `DW.ref.rust_eh_personality`), not `main`.
fn is_user_unmangled(name: &str) -> bool {
    const IMPLEMENTATION: [&str; 5] = ["__rust_", "__rg_", "__rdl_", "__rustc", RUNTIME_PREFIX];
    rustc_demangle::try_demangle(name).is_err()
        && !IMPLEMENTATION.iter().any(|prefix| name.starts_with(prefix))
        && !name.contains('.')
        && !name.contains("::")
        && name != "main"
}

/// The crate whose objects define the function with the unmangled name `name`, when an object
/// indexed so far does (see [`UNMANGLED`]).
pub(crate) fn unmangled_owner(name: &str) -> Option<String> {
    UNMANGLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(name)
        .cloned()
}

/// How a function is shown to the user: without the crate's name, and a hot function's body as
/// the hot function itself; a function of the crate with an unmangled name as that name.
/// `None` for code that is not the crate's own (instantiations of dependencies' generics, the
/// standard library).
pub(crate) fn display_name(demangled: &str, crate_name: &str) -> Option<String> {
    if unmangled_owner(demangled).is_some_and(|owner| owner == crate_name) {
        return Some(demangled.to_owned());
    }
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
    // A hot function's body, `[Type::]__hotswap_impl_name`, and everything inside it (closures)
    // show as the hot function itself.
    const BODY: &str = "__hotswap_impl_";
    if let Some(at) = name.find(BODY)
        && (at == 0 || name[..at].ends_with("::"))
    {
        let rest = &name[at + BODY.len()..];
        let function = rest.split("::").next().unwrap_or(rest);
        let owner = &name[..at];
        // A trait method's body is named after the trait too: `fmt__as__Display`.
        name = match function.split_once("__as__") {
            Some((method, tr)) => format!("<{} as {tr}>::{method}", owner.trim_end_matches("::")),
            None => format!("{owner}{function}"),
        };
    }
    Some(crate::symbols::as_written(&name).replace("{{closure}}", "{closure}"))
}

/// The path of a static or thread-local as the user wrote it: `COUNTER`, `state::CACHE`.
pub(crate) fn static_name(demangled: &str, crate_name: &str) -> Option<String> {
    // `persist!` statics are shared with the host by interposition.
    if demangled.starts_with(hotswap::record::PERSIST_PREFIX)
        || demangled.starts_with(hotswap::record::LAYOUT_PREFIX)
    {
        return None;
    }
    let path = demangled.strip_prefix(crate_name)?.strip_prefix("::")?;
    // Statics that `#[hot]` generates are shared with the host by interposition.
    if path.contains("__HOTSWAP_") {
        return None;
    }
    // A `thread_local!` is `NAME::{{constant}}::{{closure}}::VAL` and the like.
    if let Some((name, _)) = path.split_once("::{{constant}}") {
        return Some(name.to_owned());
    }
    // A static declared in a function, `update::{{closure}}::CACHE`, is named by where it is;
    // one that a macro declares there (`__CALLSITE` of `tracing::info!`, by the `__` that
    // marks generated names) is not the user's to know about.
    let segments: Vec<&str> = path.split("::").filter(|s| !s.starts_with("{{")).collect();
    let (name, scope) = segments.split_last()?;
    if name.starts_with("__")
        || scope
            .iter()
            .any(|s| s.starts_with("__") && !s.starts_with("__hotswap_impl_"))
    {
        return None;
    }
    let scope: Vec<&str> = scope
        .iter()
        .map(|s| s.strip_prefix("__hotswap_impl_").unwrap_or(s))
        .collect();
    Some(if scope.is_empty() {
        (*name).to_owned()
    } else {
        format!("{}::{name}", scope.join("::"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unmangled_name_is_a_user_function_unless_the_implementation_reserves_it() {
        for name in [
            "clock_version",
            "on_event",
            "ffi_callback_2",
            "_Rate",
            "_Reset",
            "__my_callback",
        ] {
            assert!(is_user_unmangled(name), "{name}");
        }
        for name in [
            "_ZN12time_service11format_time17h0123456789abcdefE",
            "_RNvCs1234_12time_service11format_time",
            "__rust_alloc",
            "__rust_no_alloc_shim_is_unstable_v2",
            "__rg_alloc",
            "__rdl_alloc",
            "__hotswap_impl_beta",
            "main",
            ".Lanon.1",
            "DW.ref.rust_eh_personality",
        ] {
            assert!(!is_user_unmangled(name), "{name}");
        }
    }

    #[test]
    fn display_names_hide_the_crate_and_the_generated_body() {
        let name = |s| display_name(s, "app");
        assert_eq!(name("app::render::frame"), Some("render::frame".into()));
        assert_eq!(
            name("app::__hotswap_impl_format_time::{{closure}}"),
            Some("format_time".into())
        );
        assert_eq!(name("__hotswap_impl$app::m::tick"), Some("m::tick".into()));
        assert_eq!(
            name("app::Counter::__hotswap_impl_bump::{{closure}}"),
            Some("Counter::bump".into())
        );
        assert_eq!(
            name("app::Money::__hotswap_impl_fmt__as__Display"),
            Some("<Money as Display>::fmt".into())
        );
        assert_eq!(
            name("__hotswap_impl$app::Money$as$Display::fmt"),
            Some("<Money as Display>::fmt".into())
        );
        assert_eq!(
            name("app::__hotswap_impl_fetch::{{closure}}"),
            Some("fetch".into())
        );
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
        assert_eq!(
            static_name(
                "app::__hotswap_impl_create::{{closure}}::__CALLSITE::META",
                "app"
            ),
            None
        );
        assert_eq!(
            static_name("app::__hotswap_impl_create::{{closure}}::__CALLSITE", "app"),
            None
        );
        assert_eq!(
            static_name("app::main::{{closure}}::SEEN", "app"),
            Some("main::SEEN".into())
        );
        assert_eq!(
            static_name("app::__hotswap_impl_tick::HITS", "app"),
            Some("tick::HITS".into())
        );
        assert_eq!(static_name("log::LOGGER", "app"), None);
        assert_eq!(
            static_name("__hotswap_persist$app::HITS$00ff00ff00ff00ff", "app"),
            None
        );
    }

    #[test]
    fn changes_that_no_hot_function_reaches_are_told_apart() {
        let edge = |from: &str, to: &[&str]| {
            (
                Arc::from(from),
                to.iter().map(|t| Arc::from(*t)).collect::<BTreeSet<_>>(),
            )
        };
        let index = CodeIndex {
            functions: BTreeMap::new(),
            statics: BTreeSet::new(),
            values: BTreeMap::new(),
            edges: [
                edge("app::main", &["app::setup", "app::tick", "app::shared"]),
                edge("__hotswap_impl$app::tick", &["app::physics", "vtable.0"]),
                edge("vtable.0", &["<app::Ball as app::Draw>::draw"]),
                edge("app::physics", &["app::shared"]),
                edge("app::tick", &["__hotswap_slot$app::tick"]),
            ]
            .into_iter()
            .collect(),
        };
        let changed: Vec<String> = [
            "setup",
            "tick",
            "physics",
            "shared",
            "<Ball as app::Draw>::draw",
            "main",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(
            unreachable(&[&index], &changed, &Crates::bin("app"), None),
            ["setup", "main"]
        );
    }

    /// An object file of a small crate with calls, statics, constants and strings (so with
    /// relocations of each kind the index reads), compiled once by rustc.
    fn seed_object() -> &'static [u8] {
        static SEED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        SEED.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(
                dir.path().join("seed.rs"),
                "pub static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);\n\
                 #[inline(never)] pub fn helper(x: f64) -> f64 { x * 1.5 + 0.25 }\n\
                 pub fn hot(name: &str) -> String {\n\
                     COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);\n\
                     format!(\"seed {name} {}\", helper(2.0))\n\
                 }\n",
            )
            .unwrap();
            crate::check::compile_seed(
                dir.path(),
                &["--crate-type=lib", "--emit=obj", "-Ccodegen-units=1"],
                "seed.o",
            )
        })
    }

    #[test]
    fn the_seed_object_is_indexed() {
        let file = object::File::parse(seed_object()).unwrap();
        let (mut bodies, mut statics) = (BTreeMap::new(), BTreeSet::new());
        index_object(
            &file,
            "seed",
            &mut bodies,
            &mut statics,
            &mut BTreeMap::new(),
        );
        assert!(bodies.contains_key("seed::hot"), "{:?}", bodies.keys());
        assert!(statics.iter().any(|s| s.ends_with("COUNT")), "{statics:?}");
    }

    /// An object that is the same file as at the last read is taken from the cache; one
    /// written anew is read again, and one that is gone no longer counts.
    #[test]
    fn objects_are_read_again_only_when_they_are_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let seed = seed_object();
        std::fs::write(dir.path().join("a.o"), seed).unwrap();
        let first = CodeIndex::read_dir(dir.path(), "seed").unwrap();
        assert!(first.functions.contains_key("seed::hot"));
        // A second object: read, merged with the cached first.
        std::fs::copy(dir.path().join("a.o"), dir.path().join("b.o")).unwrap();
        let both = CodeIndex::read_dir(dir.path(), "seed").unwrap();
        assert_eq!(
            both.functions.keys().collect::<Vec<_>>(),
            first.functions.keys().collect::<Vec<_>>()
        );
        assert_ne!(
            both.functions["seed::hot"], first.functions["seed::hot"],
            "two bodies now"
        );
        // The first replaced by a file that is no object: read again, so an error.
        std::fs::remove_file(dir.path().join("a.o")).unwrap();
        std::fs::write(dir.path().join("a.o"), b"not an object").unwrap();
        assert!(CodeIndex::read_dir(dir.path(), "seed").is_err());
        std::fs::remove_file(dir.path().join("a.o")).unwrap();
        assert_eq!(CodeIndex::read_dir(dir.path(), "seed").unwrap(), first);
    }

    /// `source` compiled by rustc as the crate `seed`, one object `seed.o`, in a temporary
    /// directory.
    fn seed_of(source: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seed.rs"), source).unwrap();
        crate::check::compile_seed(
            dir.path(),
            &["--crate-type=lib", "--emit=obj", "-Ccodegen-units=1"],
            "seed.o",
        );
        dir
    }

    /// The function hashes of `source` compiled by rustc as the crate `seed`.
    fn hashes(source: &str) -> BTreeMap<String, u64> {
        let dir = seed_of(source);
        CodeIndex::read_dir(dir.path(), "seed").unwrap().functions
    }

    /// Moving a function's lines changes its panic locations' line numbers, not its code;
    /// a changed message or a new panic is a change.
    #[test]
    fn panic_locations_that_only_moved_are_no_change() {
        let body = "pub fn first(v: &[u32], i: usize) -> u32 { v[i] + Some(1).unwrap() }\n\
                    pub fn second(v: Option<u32>) -> u32 { v.expect(\"second\") }\n";
        let before = hashes(body);
        let moved = hashes(&format!("// a comment\n\n   {body}"));
        assert_eq!(before, moved);
        let edited = hashes(&body.replace("\"second\"", "\"2nd\""));
        assert_eq!(before["seed::first"], edited["seed::first"]);
        assert_ne!(before["seed::second"], edited["seed::second"]);
    }

    /// A table of function pointers in another order, and a `&str` static of the same length
    /// with other text, change the code that reads them: their bytes are the same (the
    /// pointers are relocations), what they point to is not.
    #[test]
    fn pointers_in_data_count_by_what_they_point_to() {
        let body = "fn one() -> u64 { 1 }\nfn two() -> u64 { 2 }\n\
                    static TABLE: [fn() -> u64; 2] = [one, two];\n\
                    pub fn call(i: usize) -> u64 { TABLE[i]() }\n\
                    pub static NAME: &str = \"name-a\";\n\
                    pub fn name() -> &'static str { NAME }\n";
        let before = hashes(body);
        let swapped = hashes(&body.replace("[one, two]", "[two, one]"));
        assert_ne!(before["seed::call"], swapped["seed::call"]);
        assert_eq!(before["seed::name"], swapped["seed::name"]);
        let renamed = hashes(&body.replace("name-a", "name-b"));
        assert_ne!(before["seed::name"], renamed["seed::name"]);
        assert_eq!(before["seed::call"], renamed["seed::call"]);
    }

    /// A method called through a trait object is reached from its caller through the vtable,
    /// which rustc emits as an anonymous constant (a section without a named symbol).
    #[test]
    fn a_trait_objects_method_is_reached_through_its_vtable() {
        let dir = seed_of(
            "pub trait Shape { fn area(&self) -> u64; }\nstruct Sq;\n\
             impl Shape for Sq { fn area(&self) -> u64 { 4 } }\n\
             #[inline(never)] fn make() -> Box<dyn Shape> { Box::new(Sq) }\n\
             pub fn total() -> u64 { make().area() }\n",
        );
        let index = CodeIndex::read_dir(dir.path(), "seed").unwrap();
        let named = |needle: &str| -> Arc<str> {
            let found: Vec<&Arc<str>> = index
                .edges
                .keys()
                .filter(|name| crate::symbols::demangle(name) == needle)
                .collect();
            assert_eq!(found.len(), 1, "{needle} in {:?}", index.edges.keys());
            Arc::clone(found[0])
        };
        let area = named("<seed::Sq as seed::Shape>::area");
        let mut reached: BTreeSet<Arc<str>> = BTreeSet::new();
        let mut stack = vec![named("seed::total")];
        while let Some(name) = stack.pop() {
            if reached.insert(Arc::clone(&name)) {
                stack.extend(index.edges.get(&name).into_iter().flatten().cloned());
            }
        }
        assert!(reached.contains(&area), "{:?}", index.edges);
    }

    /// The [`Linkage`] of `source` compiled by rustc as the crate `seed`.
    fn linkage_of(source: &str) -> Linkage {
        let dir = seed_of(source);
        linkage(&std::fs::read(dir.path().join("seed.o")).unwrap()).unwrap()
    }

    /// A function that calls another through a closure and a generic instance reaches it in
    /// the linkage's targets; an edit of the callee's body changes its hash only, not its
    /// caller's.
    #[test]
    fn linkage_follows_local_code_and_hashes_each_symbol_on_its_own() {
        let source = "#[inline(never)] pub fn callee() -> u64 { 1 }\n\
                      pub fn caller() -> u64 { (1u64..3).map(|x| x + callee()).sum() }\n\
                      pub fn other() -> u64 { 5 }\n";
        let before = linkage_of(source);
        let symbol = |linkage: &Linkage, needle: &str| -> GlobalSymbol {
            let found: Vec<&GlobalSymbol> = linkage
                .defined
                .iter()
                .filter(|d| crate::symbols::demangle(&d.name) == format!("seed::{needle}"))
                .collect();
            assert_eq!(found.len(), 1, "{needle} in {linkage:?}");
            found[0].clone()
        };
        // What `caller` reaches among the object's global symbols.
        let mut reached: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<String> = symbol(&before, "caller").targets;
        while let Some(name) = stack.pop() {
            if let Some(d) = before.defined.iter().find(|d| d.name == name)
                && reached.insert(&d.name)
            {
                stack.extend(d.targets.iter().cloned());
            }
        }
        let callee = symbol(&before, "callee");
        assert!(reached.contains(callee.name.as_str()), "{before:?}");
        assert!(!symbol(&before, "other").targets.contains(&callee.name));
        let after = linkage_of(&source.replace("{ 1 }", "{ 2 }"));
        assert_ne!(symbol(&after, "callee").hash, callee.hash);
        for same in ["caller", "other"] {
            assert_eq!(
                symbol(&after, same).hash,
                symbol(&before, same).hash,
                "{same}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// A corrupted object file indexes to something, or to nothing; never a panic (crafted
        /// relocation addends and section indices included).
        #[test]
        fn corrupted_objects_never_panic_the_code_index(
            flips in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                1..32,
            ),
        ) {
            let mut data = seed_object().to_vec();
            let len = data.len();
            for (at, byte) in &flips {
                data[at.index(len)] = *byte;
            }
            if let Ok(file) = object::File::parse(&*data) {
                let (mut bodies, mut statics, mut edges) =
                    (BTreeMap::new(), BTreeSet::new(), BTreeMap::new());
                index_object(&file, "seed", &mut bodies, &mut statics, &mut BTreeMap::new());
                collect_edges(&file, &mut edges);
            }
        }
    }
}
