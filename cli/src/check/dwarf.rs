//! The types a running program can hold, read from the compiler's own description of them: the
//! DWARF debug info of the host and of each patch (with `gimli`).
//!
//! A [`TypeGraph`] holds every type the crate's compilation units describe, by qualified name
//! (`layouts::Item`, `alloc::vec::Vec<layouts::Item, alloc::alloc::Global>`), with its size,
//! alignment, fields, variants or enumerators, and the names of the types it leads to (members,
//! pointees, array elements, generic parameters). Its roots are what the running program passes
//! to new code or keeps for it: each hot function's parameters and return type (found through the
//! exported body, `__hotswap_impl$<path>`), and every static and thread-local of the crate; with
//! entry redirection, every function's parameters and return type ([`Roots::EveryFunction`]).
//!
//! Rust describes each type in every codegen unit that uses it, and `Vec<Item>` is described
//! where it is instantiated: the crate's own units hold every type its code can reach, so only
//! they are read. Reading is bounded: a malformed section is an error, never a panic.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use gimli::{AttributeValue, EndianSlice, RunTimeEndian, UnitOffset};
use object::{Object, ObjectSection};

use crate::check::CrateId;
use crate::check::code::ObjectId;

/// How deep the reader follows the tree of debugging entries or a chain of unnamed types before
/// it calls the section malformed (rustc's nesting is a few levels of modules and types).
const MAX_DEPTH: usize = 256;

/// Prefix of the exported body of a hot function, as `#[hot]` names it.
const BODY_PREFIX: &str = "__hotswap_impl$";

type Reader<'data> = EndianSlice<'data, RunTimeEndian>;

/// Why the types of a file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DwarfError {
    /// The file has no debug info for the crate.
    #[error("it has no debug info for the crate `{0}` (built with `debug = 0` or stripped)")]
    Missing(String),
    /// The debug info is malformed.
    #[error("its debug info is malformed: {0}")]
    Malformed(String),
}

impl From<gimli::Error> for DwarfError {
    fn from(err: gimli::Error) -> Self {
        DwarfError::Malformed(err.to_string())
    }
}

/// A field of a struct or union, or the member of an enum's variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    /// Its name (`__0` for tuple fields, as rustc names them).
    pub(crate) name: String,
    /// Its offset in bytes, where known.
    pub(crate) offset: Option<u64>,
    /// The qualified name of its type.
    pub(crate) ty: String,
}

/// One variant of an enum with data (a `DW_TAG_variant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variant {
    /// The discriminant value that selects it; `None` for the variant the others' niche values
    /// leave (rustc's dataful variant).
    pub(crate) discriminant: Option<i128>,
    /// The variant's member: its name is the variant's, its type the variant's struct.
    pub(crate) field: Field,
}

/// What a type is, as far as its layout goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A struct, tuple, closure environment or union: its fields in declaration order; an enum
    /// with data is a struct whose variants follow its discriminant.
    Struct {
        /// Its direct fields.
        fields: Vec<Field>,
        /// Where the discriminant lives, for an enum with data.
        discriminant: Option<Field>,
        /// Its variants, for an enum with data.
        variants: Vec<Variant>,
    },
    /// A fieldless enum: its enumerators with their values.
    Enumeration {
        /// The enumerators' names and values, in declaration order.
        values: Vec<(String, i128)>,
    },
    /// Anything else (a pointer, a number, an array, a function type).
    Other,
}

/// One type as a compilation unit describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeDef {
    /// Size in bytes, where given.
    pub(crate) size: Option<u64>,
    /// Alignment in bytes, where given.
    pub(crate) align: Option<u64>,
    /// Fields, variants or enumerators.
    pub(crate) shape: Shape,
    /// The types it leads to, each with how (`field name`, `T`, `*`, `[]`).
    pub(crate) edges: Vec<(String, String)>,
}

/// Where the running program holds a value whose type the gate follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootKind {
    /// A parameter of a hot function, or of any function (see [`Roots::EveryFunction`]).
    Parameter {
        /// The hot function's path, as its record names it; any other function's qualified
        /// name as the debug info gives it (`app::serve`).
        function: String,
        /// Whether it is a hot function.
        hot: bool,
        /// The parameter's name.
        name: String,
    },
    /// The return value of a hot function, or of any function.
    Return {
        /// The function's path or qualified name.
        function: String,
        /// Whether it is a hot function.
        hot: bool,
    },
    /// A static or thread-local of the crate.
    Static {
        /// Its qualified name.
        name: String,
    },
}

/// A value the running program holds, and the qualified name of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Root {
    /// Where it is held.
    pub(crate) kind: RootKind,
    /// Its type.
    pub(crate) ty: String,
}

/// The types and roots of one file (host or patch), read from its DWARF.
#[derive(Debug, Default)]
pub(crate) struct TypeGraph {
    /// The crates whose types these are: those named `<crate>::...` are their own.
    pub(crate) crate_names: Vec<String>,
    /// Every named type, by qualified name (the first description wins: they are all equal,
    /// but for the names of [`TypeGraph::alternates`]).
    pub(crate) types: HashMap<String, TypeDef>,
    /// The further, different descriptions of names that several types share: those declared
    /// in an anonymous `const _: () = { .. };` block, whose path has a `_` (every
    /// `#[derive(Deserialize)]` declares a `__Visitor` there).
    pub(crate) alternates: HashMap<String, Vec<TypeDef>>,
    /// What the program holds, hot functions first (by path), then statics (by name).
    pub(crate) roots: Vec<Root>,
}

/// The wanted types one split unit describes (see [`TypeGraph::read_wanted`]), and the index of
/// its crate.
#[derive(Debug)]
struct UnitTypes {
    at: usize,
    types: Vec<(String, TypeDef)>,
}

/// The units read by the last [`TypeGraph::read_wanted`] for each hash of the wanted names and
/// crates (see [`UnitTypesById`]). Each call keeps only the units it saw; a session reads its patches
/// for one set of wanted names at a time, and at most [`UNIT_TYPE_SETS`] sets are kept.
static UNIT_TYPES: LazyLock<Mutex<HashMap<u64, UnitTypesById>>> = LazyLock::new(Default::default);

/// What [`UNIT_TYPES`] keeps for one set of wanted names and crates, by unit: its
/// `DW_AT_dwo_id` and the identity of the `.dwo` file read (see [`TypeGraph::read_wanted`]).
type UnitTypesById = HashMap<(gimli::DwoId, ObjectId), Arc<UnitTypes>>;

/// How many sets of wanted names [`UNIT_TYPES`] keeps units for.
const UNIT_TYPE_SETS: usize = 4;

/// Which values a [`TypeGraph`] counts as held by the running program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Roots {
    /// The parameters and return values of hot functions, and the crates' statics: what the
    /// program passes to new code when only hot functions are patched.
    Hot,
    /// Those, and the parameters and return values of every function the crates' units
    /// describe (generic instances such as `Vec<Item>::push` included): with entry
    /// redirection any function may run new code, so any value passed to a function may
    /// reach it. A value that never leaves the frame of the function that made it (a local
    /// used by that function only) is not held: a call running old code keeps it to itself.
    EveryFunction,
}

/// How a root reaches a type: the root, and the steps from its type (each the edge's label and
/// the type it leads to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reach<'g> {
    /// The value the program holds.
    pub(crate) root: &'g Root,
    /// `(how, type)` from the root's type to the reached type.
    pub(crate) steps: Vec<(&'g str, &'g str)>,
}

/// Whether several types can have the qualified name `name`: it is declared in an anonymous
/// `const _` block.
pub(crate) fn shared_name(name: &str) -> bool {
    name.contains("::_::")
}

impl TypeGraph {
    /// Adds `def` as a description of the type `name`: the first one of a name, or for a
    /// [`shared_name`], one different from those known.
    fn add_type(&mut self, name: &str, def: &TypeDef) {
        match self.types.get(name) {
            None => {
                self.types.insert(name.to_owned(), def.clone());
            }
            Some(first) if shared_name(name) && first != def => {
                let more = self.alternates.entry(name.to_owned()).or_default();
                if !more.contains(def) {
                    more.push(def.clone());
                }
            }
            Some(_) => {}
        }
    }

    /// Every description of the type `name` (one, unless it is a [`shared_name`]).
    pub(crate) fn descriptions(&self, name: &str) -> impl Iterator<Item = &TypeDef> {
        self.types
            .get(name)
            .into_iter()
            .chain(self.alternates.get(name).into_iter().flatten())
    }

    /// Whether every description `new` has of the type `name` is one that this graph has: the
    /// same layout, for a [`shared_name`] whichever of its types each is.
    pub(crate) fn describes_alike(&self, new: &TypeGraph, name: &str) -> bool {
        new.descriptions(name).all(|now| {
            self.descriptions(name)
                .any(|was| changes(was, now).is_empty())
        })
    }
    /// Reads the types and roots of the compilation units of the crates `crates` (each unit is
    /// named after its crate's root source file as rustc was given it, `src/main.rs`).
    /// With `wanted`, only the structs, unions and enums named there are read, and no roots
    /// (what a patch is checked for: the types the running program holds); without, the roots
    /// `roots` says.
    ///
    /// # Errors
    ///
    /// [`DwarfError::Missing`] when no compilation unit of the first crate (the bin) has debug
    /// info, [`DwarfError::Malformed`] when a section cannot be parsed.
    pub(crate) fn read(
        file: &object::File<'_>,
        crates: &[CrateId<'_>],
        wanted: Option<&HashSet<String>>,
        roots: Roots,
    ) -> Result<TypeGraph, DwarfError> {
        let mut graph = TypeGraph {
            crate_names: crates.iter().map(|c| c.name.to_owned()).collect(),
            ..TypeGraph::default()
        };
        let mut found = false;
        match wanted {
            Some(wanted) => graph.read_wanted(file, crates, wanted, &mut found)?,
            None => each_crate_unit(
                file,
                crates,
                &mut |_, _, _| Ok(None),
                &mut |dwarf, unit, at| {
                    found |= at == 0;
                    let signatures = roots == Roots::EveryFunction;
                    UnitReader::new(dwarf, unit, signatures)?.read_into(
                        &mut graph,
                        crates[at].name,
                        None,
                    )?;
                    Ok(ControlFlow::Continue(()))
                },
            )?,
        }
        if !found {
            let bin = crates.first().map_or("", |c| c.name);
            return Err(DwarfError::Missing(bin.to_owned()));
        }
        let mut roots = std::mem::take(&mut graph.roots);
        roots.sort_by(|a, b| root_order(&graph, a).cmp(&root_order(&graph, b)));
        roots.dedup();
        graph.roots = roots;
        Ok(graph)
    }

    /// Reads the structs, unions and enums named in `wanted` from the crates' units (see
    /// [`TypeGraph::read`]), the first description of each in unit order; sets `found` when a
    /// unit of the first crate was seen.
    ///
    /// A split unit read at the last call for the same `wanted` and `crates`, from the same
    /// `.dwo` file (device, inode, size and modification time) with the same `DW_AT_dwo_id`, is
    /// not read again: its types are taken from [`UNIT_TYPES`]. An edit makes rustc compile a
    /// few codegen units again, each written to a new file, and reuse the others whole: their
    /// `.dwo` files are hard links to its incremental cache's, the same files from one build to
    /// the next. So a patch's check reads only the units that changed (the medium benchmark
    /// fixture's 227 `.dwo` files were each opened and scanned for every patch before). The
    /// `DW_AT_dwo_id` alone would not do: LLVM's hash leaves out the members of a type that the
    /// unit only reaches through a pointer, so the same id can describe two layouts.
    fn read_wanted(
        &mut self,
        file: &object::File<'_>,
        crates: &[CrateId<'_>],
        wanted: &HashSet<String>,
        found: &mut bool,
    ) -> Result<(), DwarfError> {
        let mut names: Vec<&String> = wanted.iter().collect();
        names.sort();
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&names, &mut hasher);
        for krate in crates {
            std::hash::Hash::hash(&(krate.name, krate.source), &mut hasher);
        }
        let key = std::hash::Hasher::finish(&hasher);
        let mut cached = UNIT_TYPES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key)
            .unwrap_or_default();
        let kept: std::cell::RefCell<UnitTypesById> = Default::default();
        // The unit being read, when it is a split one: `first` sees its skeleton, `each` reads it.
        let current = std::cell::Cell::new(None);
        let graph = std::cell::RefCell::new(std::mem::take(self));
        // Adds a unit's types to the graph (the first description of each wins); whether every
        // wanted type is known now, so that the other units can only repeat them.
        let found_any = std::cell::Cell::new(*found);
        let add = |types: &UnitTypes| {
            found_any.set(found_any.get() || types.at == 0);
            let mut graph = graph.borrow_mut();
            for (name, def) in &types.types {
                graph.add_type(name, def);
            }
            // A shared name counts as known once one of its types is: reading on for the others
            // would read every unit of every patch (about 10 ms on the medium benchmark fixture,
            // whose serde derives declare many `__Visitor`s). The running program's side is
            // read whole (`TypeGraph::read` without wanted names), so it knows them all.
            if found_any.get() && wanted.iter().all(|n| graph.types.contains_key(n)) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        each_crate_unit(
            file,
            crates,
            &mut |_, skeleton, file| {
                let dwo_id = match skeleton.header.type_() {
                    gimli::UnitType::Skeleton(id) => Some(id),
                    _ => skeleton.dwo_id,
                };
                let id = dwo_id.zip(file.copied());
                current.set(id);
                let Some((id, types)) = id.and_then(|id| Some((id, cached.remove(&id)?))) else {
                    return Ok(None);
                };
                let flow = add(&types);
                kept.borrow_mut().insert(id, types);
                Ok(Some(flow))
            },
            &mut |dwarf, unit, at| {
                let mut types = UnitTypes {
                    at,
                    types: Vec::new(),
                };
                let mut tree = unit.entries_tree(None)?;
                let mut names = NameScan {
                    dwarf,
                    unit,
                    wanted,
                    known: &HashMap::new(),
                };
                if names.any_wanted(tree.root()?, "", 0)? {
                    let mut local = TypeGraph::default();
                    UnitReader::new(dwarf, unit, false)?.read_into(
                        &mut local,
                        crates[at].name,
                        Some(wanted),
                    )?;
                    let alternates = local.alternates.into_iter().flat_map(|(name, defs)| {
                        defs.into_iter().map(move |def| (name.clone(), def))
                    });
                    let mut read: Vec<_> = local.types.into_iter().chain(alternates).collect();
                    read.sort_by(|a, b| a.0.cmp(&b.0));
                    types.types = read;
                }
                let flow = add(&types);
                if let Some(id) = current.get() {
                    kept.borrow_mut().insert(id, Arc::new(types));
                }
                Ok(flow)
            },
        )?;
        *found = found_any.get();
        *self = graph.into_inner();
        let mut sets = UNIT_TYPES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sets.len() >= UNIT_TYPE_SETS {
            sets.clear();
        }
        sets.insert(key, kept.into_inner());
        Ok(())
    }

    /// Whether `name` is a type one of the crates defines (their own code, which a patch
    /// rebuilds).
    pub(crate) fn defines(&self, name: &str) -> bool {
        self.crate_names.iter().any(|krate| {
            name.strip_prefix(krate.as_str())
                .is_some_and(|rest| rest.starts_with("::"))
        })
    }

    /// Every type reachable from the roots, each with its shortest path from a root, in the
    /// order they are reached (roots in their order, breadth first). Hot functions and statics
    /// are followed first, then the crates' own functions, their methods, and other crates'
    /// generic instances, each group only to the types the ones before did not reach.
    pub(crate) fn reachable(&self) -> Vec<(&str, Reach<'_>)> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out: Vec<(&str, Reach<'_>)> = Vec::new();
        for tier in 0..=ROOT_TIERS {
            let roots = self
                .roots
                .iter()
                .filter(|root| root_tier(self, root) == tier);
            self.reach_from(roots, &mut seen, &mut out);
        }
        out
    }

    /// Adds to `out` the types `roots` reach that `seen` has not, breadth first.
    fn reach_from<'g>(
        &'g self,
        roots: impl Iterator<Item = &'g Root>,
        seen: &mut HashMap<&'g str, usize>,
        out: &mut Vec<(&'g str, Reach<'g>)>,
    ) {
        let mut queue = VecDeque::new();
        for root in roots {
            if !seen.contains_key(root.ty.as_str()) {
                seen.insert(&root.ty, out.len());
                out.push((
                    &root.ty,
                    Reach {
                        root,
                        steps: Vec::new(),
                    },
                ));
                queue.push_back(out.len() - 1);
            }
        }
        while let Some(index) = queue.pop_front() {
            let name = out[index].0;
            let Some(def) = self.types.get(name) else {
                continue;
            };
            for (how, next) in &def.edges {
                if seen.contains_key(next.as_str()) {
                    continue;
                }
                let mut reach = out[index].1.clone();
                reach.steps.push((how, next));
                seen.insert(next, out.len());
                out.push((next, reach));
                queue.push_back(out.len() - 1);
            }
        }
    }
}

/// The last tier [`root_tier`] gives.
const ROOT_TIERS: u8 = 3;

/// Which group of roots [`TypeGraph::reachable`] follows `root` with: 0 for hot functions and
/// statics, 1 for the crates' free functions, 2 for their methods, trait impls and closures
/// (`app::{impl#3}::default`, `app::line::{closure#0}`), 3 for other crates' generic instances
/// (`Vec<app::Item>::push`).
fn root_tier(graph: &TypeGraph, root: &Root) -> u8 {
    match &root.kind {
        RootKind::Parameter { hot: true, .. }
        | RootKind::Return { hot: true, .. }
        | RootKind::Static { .. } => 0,
        RootKind::Parameter { function, .. } | RootKind::Return { function, .. } => {
            if !graph.defines(function) {
                3
            } else if function.contains("::{impl#") || function.contains("::{closure") {
                2
            } else {
                1
            }
        }
    }
}

/// Hot functions first, by path and parameter order as read; then statics by name; then the
/// other functions by tier ([`root_tier`]) and name.
fn root_order<'r>(graph: &TypeGraph, root: &'r Root) -> (u8, u8, &'r str) {
    let tier = root_tier(graph, root);
    match &root.kind {
        RootKind::Static { name } => (tier, 1, name),
        RootKind::Parameter { function, .. } | RootKind::Return { function, .. } => {
            (tier, 0, function)
        }
    }
}

/// One debugging entry, as much of it as the gate needs.
#[derive(Debug)]
struct Die {
    tag: gimli::DwTag,
    /// `DW_AT_name`.
    name: Option<String>,
    /// The enclosing modules and types, `layouts::Shape`.
    scope: String,
    /// Whether it lies inside a function (a local variable, not a static).
    in_function: bool,
    linkage_name: Option<String>,
    ty: Option<UnitOffset>,
    size: Option<u64>,
    align: Option<u64>,
    member_offset: Option<u64>,
    discr: Option<UnitOffset>,
    discr_value: Option<i128>,
    const_value: Option<i128>,
    count: Option<u64>,
    has_location: bool,
    /// `DW_AT_declaration`: a type named here and defined in another unit (an optimised build
    /// declares a type where only its methods are, with no size or fields).
    declaration: bool,
    /// `DW_AT_specification` or `DW_AT_abstract_origin`: the entry that names a function whose
    /// concrete entry does not.
    origin: Option<UnitOffset>,
    children: Vec<UnitOffset>,
}

/// The DWARF sections of a file, each borrowed or decompressed.
type Sections<'data> = gimli::DwarfSections<Cow<'data, [u8]>>;

/// The DWARF sections of `file` (decompressed where needed), and its byte order.
fn sections<'data>(
    file: &object::File<'data>,
) -> Result<(Sections<'data>, RunTimeEndian), DwarfError> {
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'data, [u8]>, DwarfError> {
        match file.section_by_name(id.name()) {
            Some(section) => section
                .uncompressed_data()
                .map_err(|err| DwarfError::Malformed(format!("`{}`: {err}", id.name()))),
            None => Ok(Cow::Borrowed(&[][..])),
        }
    })?;
    Ok((sections, endian))
}

/// Where the functions of the crate `crate_id` in `file` are declared: demangled name (without
/// its hash, `app::main::{{closure}}`) -> `(source file as rustc names it, line)`, from each
/// subprogram's `DW_AT_decl_file` and `DW_AT_decl_line`. Of several functions with one name
/// (a function's closures), the first line is kept. Only `wanted` names are looked up. A
/// function with an unmangled name is found by that name (its `DW_AT_name`: it has no
/// `DW_AT_linkage_name`).
///
/// # Errors
///
/// When the debug info cannot be parsed.
pub(crate) fn function_lines(
    file: &object::File<'_>,
    crates: &[CrateId<'_>],
    wanted: &dyn Fn(&str) -> bool,
) -> Result<HashMap<String, (String, u64)>, DwarfError> {
    let mut lines: HashMap<String, (String, u64)> = HashMap::new();
    each_crate_unit(
        file,
        crates,
        &mut |_, _, _| Ok(None),
        &mut |dwarf, unit, _| {
            let mut entries = unit.entries();
            while let Some((_, entry)) = entries.next_dfs()? {
                if entry.tag() != gimli::DW_TAG_subprogram {
                    continue;
                }
                // A function with an unmangled name (`#[unsafe(no_mangle)]`) has no linkage
                // name: its name is its symbol.
                let symbol = match entry.attr_value(gimli::DW_AT_linkage_name)? {
                    Some(linkage) => Some(linkage),
                    None => entry.attr_value(gimli::DW_AT_name)?,
                };
                let Some(symbol) = symbol else {
                    continue;
                };
                let name =
                    crate::symbols::demangle(&dwarf.attr_string(unit, symbol)?.to_string_lossy());
                if !wanted(&name) {
                    continue;
                }
                let Some((path, line)) = declared_at(dwarf, unit, entry)? else {
                    continue;
                };
                let path = path.to_string_lossy().into_owned();
                let known = lines.entry(name).or_insert_with(|| (path.clone(), line));
                if line < known.1 {
                    *known = (path, line);
                }
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(lines)
}

/// The lines where the functions that `file` defines code for (not closures) are declared, by
/// source file (as rustc names it, joined to the unit's directory when relative): each
/// subprogram with code (`DW_AT_low_pc` or `DW_AT_ranges`) of the crates' units, its name and
/// declaration read through `DW_AT_specification` (methods are declared in their type). Only
/// files for which `wanted` holds are read, and only the units whose file table names one (a
/// declaration's `DW_AT_decl_file` is an index into that table), which spares most of the
/// debug info.
///
/// # Errors
///
/// When the debug info cannot be parsed.
pub(crate) fn defined_lines(
    file: &object::File<'_>,
    crates: &[CrateId<'_>],
    wanted: &mut dyn FnMut(&Path) -> bool,
) -> Result<HashMap<PathBuf, BTreeSet<u64>>, DwarfError> {
    let mut lines: HashMap<PathBuf, BTreeSet<u64>> = HashMap::new();
    // A unit whose file table names no wanted file declares nothing wanted: told from the
    // line program, before a split unit's `.dwo` file is read.
    let mut names_wanted = |dwarf: &Dwarf<'_>, unit: &Unit<'_>, _: Option<&ObjectId>| {
        let named = names_a_wanted_file(dwarf, unit, wanted)?;
        Ok((!named).then_some(ControlFlow::Continue(())))
    };
    let mut found = Vec::new();
    each_crate_unit(file, crates, &mut names_wanted, &mut |dwarf, unit, _| {
        let mut entries = unit.entries();
        while let Some((_, entry)) = entries.next_dfs()? {
            // The tag first: looking up an attribute reads the entry's attributes.
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            let has_code = entry.attr_value(gimli::DW_AT_low_pc)?.is_some()
                || entry.attr_value(gimli::DW_AT_ranges)?.is_some();
            if !has_code {
                continue;
            }
            let declaration = match entry.attr_value(gimli::DW_AT_specification)? {
                Some(AttributeValue::UnitRef(offset)) => unit.entry(offset)?,
                _ => entry.clone(),
            };
            let closure = match declaration.attr_value(gimli::DW_AT_name)? {
                Some(name) => dwarf.attr_string(unit, name)?.starts_with(b"{"),
                None => true,
            };
            if closure {
                continue;
            }
            if let Some((path, line)) = declared_at(dwarf, unit, &declaration)? {
                found.push((under_comp_dir(unit, path), line));
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    for (path, line) in found {
        if wanted(&path) {
            lines.entry(path).or_default().insert(line);
        }
    }
    Ok(lines)
}

/// Whether the line program's file table of `unit` names a file for which `wanted` holds.
fn names_a_wanted_file(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    unit: &gimli::Unit<Reader<'_>>,
    wanted: &mut dyn FnMut(&Path) -> bool,
) -> Result<bool, DwarfError> {
    let Some(header) = unit.line_program.as_ref().map(|program| program.header()) else {
        return Ok(false);
    };
    for file in header.file_names() {
        if wanted(&under_comp_dir(unit, file_path(dwarf, unit, header, file)?)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `path` joined to the compilation directory of `unit` when it is relative.
fn under_comp_dir(unit: &gimli::Unit<Reader<'_>>, path: PathBuf) -> PathBuf {
    match unit.comp_dir {
        Some(dir) if path.is_relative() => Path::new(&*dir.to_string_lossy()).join(path),
        _ => path,
    }
}

/// A file's DWARF, as [`each_crate_unit`] hands it out.
type Dwarf<'data> = gimli::Dwarf<Reader<'data>>;
/// One compilation unit of a [`Dwarf`].
type Unit<'data> = gimli::Unit<Reader<'data>>;

/// Calls `each` with every compilation unit of `crates` in `file` (rustc names each
/// `<source>/@/<cgu>`), the DWARF it belongs to, and the index of its crate in `crates`, until
/// `each` breaks. `first` sees each unit before: a unit for which it is false is skipped. It sees
/// the unit that holds the line program (a skeleton unit, for split debug info), before its
/// name is known.
///
/// Split debug info (`-C split-debuginfo=unpacked`, which patches are built with): the file
/// holds a skeleton unit per codegen unit (its directory, its line program, the addresses), and
/// the entries are in the `.dwo` file it names. `each` is given the split unit from that file,
/// with the skeleton's line program and directory (a declaration's `DW_AT_decl_file` indexes
/// the skeleton's file table).
///
/// # Errors
///
/// When a section cannot be parsed, a `.dwo` file cannot be read, or it is not the one the
/// skeleton was built with (its `DW_AT_dwo_id` differs: a later build wrote it again); and what
/// `each` or `first` returns.
fn each_crate_unit(
    file: &object::File<'_>,
    crates: &[CrateId<'_>],
    first: &mut FirstUnit<'_>,
    each: &mut EachUnit<'_>,
) -> Result<(), DwarfError> {
    let (sections, endian) = sections(file)?;
    let mut walk = Walk {
        prefixes: unit_prefixes(crates),
        names: crates.iter().map(|c| c.name.to_owned()).collect(),
        listings: HashMap::new(),
        first,
        each,
    };
    let dwarf = sections.borrow(|section| EndianSlice::new(section, endian));
    let mut headers = dwarf.units();
    while let Some(header) = headers.next()? {
        let unit = dwarf.unit(header)?;
        // A skeleton: DWARF 5's unit type, or before it the GNU extension's `DW_AT_GNU_dwo_id`.
        let skeleton = match unit.header.type_() {
            gimli::UnitType::Skeleton(dwo_id) => Some(dwo_id),
            _ => unit.dwo_id,
        };
        let flow = match skeleton {
            // Another crate's skeleton (a dependency built with the profile's
            // `split-debuginfo`): its `.dwo` file is not read, and may not exist (`packed`).
            Some(dwo_id) => match walk.crate_dwo(&dwarf, &unit)? {
                Some(named) => walk.split_unit(&sections, endian, header, dwo_id, &named)?,
                None => ControlFlow::Continue(()),
            },
            None => match crate_of(&unit, &walk.prefixes) {
                Some(at) => match (walk.first)(&dwarf, &unit, None)? {
                    None => (walk.each)(&dwarf, &unit, at)?,
                    Some(flow) => flow,
                },
                None => ControlFlow::Continue(()),
            },
        };
        if flow.is_break() {
            break;
        }
    }
    Ok(())
}

/// What [`each_crate_unit`] asks of a unit before it reads it whole, given the identity of its
/// `.dwo` file for a split unit: `None` to read it, or what to do instead (go on to the next
/// unit, or stop).
type FirstUnit<'f> = dyn FnMut(&Dwarf<'_>, &Unit<'_>, Option<&ObjectId>) -> Result<Option<ControlFlow<()>>, DwarfError>
    + 'f;
/// What [`each_crate_unit`] calls for each unit of the crates, with its crate's index.
type EachUnit<'f> =
    dyn FnMut(&Dwarf<'_>, &Unit<'_>, usize) -> Result<ControlFlow<()>, DwarfError> + 'f;

/// The state of one [`each_crate_unit`].
struct Walk<'a, 'f> {
    /// The crates' unit name prefixes (see [`unit_prefixes`]).
    prefixes: Vec<String>,
    /// The crates' names, `time_service`.
    names: Vec<String>,
    /// The `.dwo` files of each directory, once listed (see [`find_dwo`]).
    listings: HashMap<PathBuf, Vec<PathBuf>>,
    first: &'a mut FirstUnit<'f>,
    each: &'a mut EachUnit<'f>,
}

impl Walk<'_, '_> {
    /// The `.dwo` file the skeleton unit `skeleton` names (joined to its directory), when it is
    /// one of the crates': rustc names it `<crate>-<extra filename>.<codegen unit>...dwo` (or
    /// `<crate>.<codegen unit>...`), and the skeleton has no name of its own to tell its crate by.
    ///
    /// # Errors
    ///
    /// When the skeleton names no file, or its attributes cannot be read.
    fn crate_dwo(
        &self,
        dwarf: &Dwarf<'_>,
        skeleton: &Unit<'_>,
    ) -> Result<Option<PathBuf>, DwarfError> {
        let Some(name) = skeleton.dwo_name()? else {
            return Err(DwarfError::Malformed(
                "a skeleton unit names no `.dwo` file".to_owned(),
            ));
        };
        let name = dwarf.attr_string(skeleton, name)?.to_string_lossy();
        let file = name.rsplit('/').next().unwrap_or(&name);
        let stem = file.split('.').next().unwrap_or(file);
        let krate = stem.split('-').next().unwrap_or(stem);
        Ok(self
            .names
            .iter()
            .any(|name| name == krate)
            .then(|| under_comp_dir(skeleton, PathBuf::from(&*name))))
    }

    /// The skeleton unit `header` of `sections`: reads its `.dwo` file (`named`, see
    /// [`Walk::crate_dwo`]), checks that it is the one of `dwo_id`, and calls `each` with its
    /// split unit when it is one of the crates'.
    fn split_unit(
        &mut self,
        sections: &Sections<'_>,
        endian: RunTimeEndian,
        header: gimli::UnitHeader<Reader<'_>>,
        dwo_id: gimli::DwoId,
        named: &Path,
    ) -> Result<ControlFlow<()>, DwarfError> {
        // Borrowed here again, so that the skeleton's DWARF and the `.dwo` file's share one
        // lifetime.
        let parent = sections.borrow(|section| EndianSlice::new(section, endian));
        let skeleton = parent.unit(header)?;
        let found = find_dwo(named, &mut self.listings);
        let file = found.as_ref().ok().and_then(|path| ObjectId::of(path).ok());
        if let Some(flow) = (self.first)(&parent, &skeleton, file.as_ref())? {
            return Ok(flow);
        }
        let read = found.and_then(|path| {
            let data = std::fs::read(&path)?;
            Ok((path, data))
        });
        let (path, data) = read.map_err(|err| {
            DwarfError::Malformed(format!(
                "cannot read `{}`, the split debug info of one of its codegen units: {err} (a \
                 profile's `split-debuginfo = \"packed\"` keeps it elsewhere: use `\"unpacked\"` \
                 or `\"off\"`)",
                named.display()
            ))
        })?;
        let object = object::File::parse(&*data)
            .map_err(|err| DwarfError::Malformed(format!("`{}`: {err}", path.display())))?;
        let split = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, DwarfError> {
            match id.dwo_name().and_then(|name| object.section_by_name(name)) {
                Some(section) => section
                    .uncompressed_data()
                    .map_err(|err| DwarfError::Malformed(format!("`{}`: {err}", path.display()))),
                None => Ok(Cow::Borrowed(&[][..])),
            }
        })?;
        let mut dwarf = split.borrow(|section| EndianSlice::new(section, endian));
        dwarf.make_dwo(&parent);
        // A version 5 line program names its files in the skeleton's `.debug_line_str`.
        dwarf.debug_line_str = parent.debug_line_str;
        let mut headers = dwarf.units();
        let Some(header) = headers.next()? else {
            return Err(DwarfError::Malformed(format!(
                "`{}` holds no unit",
                path.display()
            )));
        };
        let mut unit = dwarf.unit(header)?;
        if unit.dwo_id != Some(dwo_id) {
            return Err(DwarfError::Malformed(format!(
                "`{}` is not the split debug info the patch was built with (a later build \
                 wrote it again)",
                path.display()
            )));
        }
        unit.copy_relocated_attributes(&skeleton);
        unit.line_program = skeleton.line_program.clone();
        unit.comp_dir = skeleton.comp_dir;
        match crate_of(&unit, &self.prefixes) {
            Some(at) => (self.each)(&dwarf, &unit, at),
            None => Ok(ControlFlow::Continue(())),
        }
    }
}

/// The `.dwo` files (split debug info) in `dir`; none when it cannot be read.
pub(crate) fn dwo_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "dwo"))
        .collect()
}

/// The path of the `.dwo` file a skeleton unit names as `named`. rustc names each file after
/// its build (`<crate>.<codegen unit>.<build>.rcgu.dwo`), and a codegen unit that an
/// incremental build reuses keeps the object of the build that compiled it, whose skeleton
/// names that build's file, while its `.dwo` file is copied under the new build's name beside
/// the others. So when the named file is gone, the one of the same crate and codegen unit in
/// the same directory is taken (the caller checks its `DW_AT_dwo_id`); `listings` keeps each
/// directory's `.dwo` files, listed once.
fn find_dwo(
    named: &Path,
    listings: &mut HashMap<PathBuf, Vec<PathBuf>>,
) -> std::io::Result<PathBuf> {
    let error = match std::fs::metadata(named) {
        Ok(_) => return Ok(named.to_path_buf()),
        Err(error) => error,
    };
    let (Some(dir), Some(name)) = (named.parent(), named.file_name().and_then(|n| n.to_str()))
    else {
        return Err(error);
    };
    // `<crate>.<codegen unit>.` of `<crate>.<codegen unit>.<build>.rcgu.dwo`.
    let Some(stem) = name.strip_suffix(".rcgu.dwo") else {
        return Err(error);
    };
    let Some(unit) = stem.rfind('.').map(|at| &stem[..=at]) else {
        return Err(error);
    };
    let files = listings
        .entry(dir.to_path_buf())
        .or_insert_with(|| dwo_files(dir));
    // The newest, should an older build's file still be there.
    let same_unit = files
        .iter()
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(unit) && n.ends_with(".rcgu.dwo"))
        })
        .max_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok());
    same_unit.cloned().ok_or(error)
}

/// The prefix of the names of the compilation units of each of `crates`, in order: rustc names
/// each unit `<crate root source>/@/<codegen unit>`.
fn unit_prefixes(crates: &[CrateId<'_>]) -> Vec<String> {
    crates.iter().map(|c| format!("{}/@/", c.source)).collect()
}

/// Which crate `unit` belongs to: the index of its name's prefix among `prefixes` (see
/// [`unit_prefixes`]), `None` for another crate's unit.
fn crate_of(unit: &gimli::Unit<Reader<'_>>, prefixes: &[String]) -> Option<usize> {
    let name = unit.name?;
    prefixes
        .iter()
        .position(|p| name.slice().starts_with(p.as_bytes()))
}

/// The `DW_AT_decl_file` (under its directory: relative to where rustc ran, or absolute) and
/// `DW_AT_decl_line` of `entry`, if it has both.
fn declared_at(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    unit: &gimli::Unit<Reader<'_>>,
    entry: &gimli::DebuggingInformationEntry<'_, '_, Reader<'_>>,
) -> Result<Option<(PathBuf, u64)>, DwarfError> {
    let (Some(AttributeValue::FileIndex(index)), Some(line)) = (
        entry.attr_value(gimli::DW_AT_decl_file)?,
        entry
            .attr_value(gimli::DW_AT_decl_line)?
            .and_then(|v| v.udata_value()),
    ) else {
        return Ok(None);
    };
    let Some(header) = unit.line_program.as_ref().map(|program| program.header()) else {
        return Ok(None);
    };
    let Some(file) = header.file(index) else {
        return Ok(None);
    };
    Ok(Some((file_path(dwarf, unit, header, file)?, line)))
}

/// The path of `file`, an entry of `unit`'s line program `header`: its directory, then its name.
fn file_path(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    unit: &gimli::Unit<Reader<'_>>,
    header: &gimli::LineProgramHeader<Reader<'_>>,
    file: &gimli::FileEntry<Reader<'_>>,
) -> Result<PathBuf, DwarfError> {
    let mut path = PathBuf::new();
    if let Some(directory) = file.directory(header) {
        path.push(&*dwarf.attr_string(unit, directory)?.to_string_lossy());
    }
    path.push(&*dwarf.attr_string(unit, file.path_name())?.to_string_lossy());
    Ok(path)
}

/// A quick look through one compilation unit for a wanted type not read yet: names and tags
/// only, skipping what the full reader ([`UnitReader`]) skips, so that the units that only
/// repeat known types, or describe none that is wanted, are not read in full.
struct NameScan<'a, 'data> {
    dwarf: &'a gimli::Dwarf<Reader<'data>>,
    unit: &'a gimli::Unit<Reader<'data>>,
    wanted: &'a HashSet<String>,
    known: &'a HashMap<String, TypeDef>,
}

impl<'data> NameScan<'_, 'data> {
    /// Whether `node` or an entry below it (inside `scope`) is a structure, union or enumeration
    /// whose qualified name is wanted and not known.
    fn any_wanted(
        &mut self,
        node: gimli::EntriesTreeNode<'_, '_, '_, Reader<'data>>,
        scope: &str,
        depth: usize,
    ) -> Result<bool, DwarfError> {
        nesting_allowed(depth)?;
        let entry = node.entry();
        let tag = entry.tag();
        let nested_scope = match tag {
            tag if opens_scope(tag) => {
                let name = match entry.attr_value(gimli::DW_AT_name)? {
                    Some(value) => self.dwarf.attr_string(self.unit, value)?.to_string_lossy(),
                    None => "".into(),
                };
                let qualified = join(scope, &name);
                if tag != gimli::DW_TAG_namespace
                    && self.wanted.contains(&qualified)
                    && !self.known.contains_key(&qualified)
                {
                    return Ok(true);
                }
                qualified
            }
            // As the full reader: of functions, only a hot function's body is read inside.
            gimli::DW_TAG_subprogram => {
                let hot_body = match entry.attr_value(gimli::DW_AT_linkage_name)? {
                    Some(value) => is_hot_body(&self.dwarf.attr_string(self.unit, value)?),
                    None => false,
                };
                if !hot_body {
                    return Ok(false);
                }
                scope.to_owned()
            }
            _ => scope.to_owned(),
        };
        let mut children = node.children();
        while let Some(child) = children.next()? {
            if self.any_wanted(child, &nested_scope, depth + 1)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Whether the entries below one of tag `tag` are named inside it (`module::Type::Variant`):
/// namespaces, structures, unions and enumerations. The full reader ([`UnitReader`]) and the
/// quick one ([`NameScan`]) must name types alike.
fn opens_scope(tag: gimli::DwTag) -> bool {
    matches!(
        tag,
        gimli::DW_TAG_namespace
            | gimli::DW_TAG_structure_type
            | gimli::DW_TAG_union_type
            | gimli::DW_TAG_enumeration_type
    )
}

/// Whether `linkage_name` is that of a hot function's exported body, the only function whose
/// entries below it the readers read (its parameters are roots).
fn is_hot_body(linkage_name: &[u8]) -> bool {
    linkage_name.starts_with(BODY_PREFIX.as_bytes())
}

/// An error when entries nest `depth` deep, beyond [`MAX_DEPTH`].
fn nesting_allowed(depth: usize) -> Result<(), DwarfError> {
    if depth > MAX_DEPTH {
        return Err(DwarfError::Malformed(
            "debugging entries nest too deeply".to_owned(),
        ));
    }
    Ok(())
}

/// Reads one compilation unit.
struct UnitReader<'a, 'data> {
    dies: HashMap<UnitOffset, Die>,
    order: Vec<UnitOffset>,
    names: HashMap<UnitOffset, Option<String>>,
    dwarf: &'a gimli::Dwarf<Reader<'data>>,
    unit: &'a gimli::Unit<Reader<'data>>,
    /// Whether every function's parameters are read ([`Roots::EveryFunction`]), not only hot
    /// functions'.
    signatures: bool,
}

impl<'a, 'data> UnitReader<'a, 'data> {
    /// Collects the unit's entries.
    fn new(
        dwarf: &'a gimli::Dwarf<Reader<'data>>,
        unit: &'a gimli::Unit<Reader<'data>>,
        signatures: bool,
    ) -> Result<Self, DwarfError> {
        let mut reader = UnitReader {
            dies: HashMap::new(),
            order: Vec::new(),
            names: HashMap::new(),
            dwarf,
            unit,
            signatures,
        };
        let mut tree = unit.entries_tree(None)?;
        let root = tree.root()?;
        reader.walk(root, "", false, 0)?;
        Ok(reader)
    }

    /// Records `node` and its descendants; returns the node's offset.
    fn walk(
        &mut self,
        node: gimli::EntriesTreeNode<'_, '_, '_, Reader<'data>>,
        scope: &str,
        in_function: bool,
        depth: usize,
    ) -> Result<UnitOffset, DwarfError> {
        nesting_allowed(depth)?;
        let entry = node.entry();
        let offset = entry.offset();
        let mut die = self.die(entry)?;
        die.scope = scope.to_owned();
        die.in_function = in_function;
        let nested_scope = if opens_scope(die.tag) {
            join(scope, die.name.as_deref().unwrap_or(""))
        } else {
            scope.to_owned()
        };
        let nested_in_function = in_function
            || matches!(
                die.tag,
                gimli::DW_TAG_subprogram | gimli::DW_TAG_lexical_block
            );
        // Most entries describe a function's locals: only a hot function's body is read
        // inside (its parameters are roots), and with `signatures` every function's parameters
        // (its direct children of that tag); the rest is skipped unread.
        let hot_body = die
            .linkage_name
            .as_deref()
            .is_some_and(|name| is_hot_body(name.as_bytes()));
        if die.tag == gimli::DW_TAG_subprogram && !hot_body {
            if self.signatures {
                let mut children = node.children();
                while let Some(child) = children.next()? {
                    let entry = child.entry();
                    if entry.tag() == gimli::DW_TAG_formal_parameter {
                        let param = entry.offset();
                        let mut param_die = self.die(entry)?;
                        param_die.in_function = true;
                        self.dies.insert(param, param_die);
                        die.children.push(param);
                    }
                }
            }
            self.order.push(offset);
            self.dies.insert(offset, die);
            return Ok(offset);
        }
        let mut children = node.children();
        while let Some(child) = children.next()? {
            let child = self.walk(child, &nested_scope, nested_in_function, depth + 1)?;
            die.children.push(child);
        }
        self.order.push(offset);
        self.dies.insert(offset, die);
        Ok(offset)
    }

    /// The attributes of `entry` that the gate reads.
    fn die(
        &self,
        entry: &gimli::DebuggingInformationEntry<'_, '_, Reader<'data>>,
    ) -> Result<Die, DwarfError> {
        let mut die = Die {
            tag: entry.tag(),
            name: None,
            scope: String::new(),
            in_function: false,
            linkage_name: None,
            ty: None,
            size: None,
            align: None,
            member_offset: None,
            discr: None,
            discr_value: None,
            const_value: None,
            count: None,
            has_location: false,
            declaration: false,
            origin: None,
            children: Vec::new(),
        };
        let mut attrs = entry.attrs();
        while let Some(attr) = attrs.next()? {
            let value = attr.value();
            match attr.name() {
                gimli::DW_AT_name => die.name = self.string(value)?,
                // Only hot functions' bodies are looked up by linkage name: the others (most of
                // the unit) are not copied.
                gimli::DW_AT_linkage_name => {
                    let name = self.dwarf.attr_string(self.unit, value)?;
                    if is_hot_body(name.slice()) {
                        die.linkage_name = Some(name.to_string_lossy().into_owned());
                    }
                }
                gimli::DW_AT_type => die.ty = unit_ref(&value),
                gimli::DW_AT_byte_size => die.size = value.udata_value(),
                gimli::DW_AT_alignment => die.align = value.udata_value(),
                gimli::DW_AT_data_member_location => die.member_offset = value.udata_value(),
                gimli::DW_AT_discr => die.discr = unit_ref(&value),
                gimli::DW_AT_discr_value => die.discr_value = number(&value),
                gimli::DW_AT_const_value => die.const_value = number(&value),
                gimli::DW_AT_count => die.count = value.udata_value(),
                gimli::DW_AT_upper_bound if die.count.is_none() => {
                    die.count = value.udata_value().and_then(|n| n.checked_add(1));
                }
                gimli::DW_AT_location => die.has_location = true,
                gimli::DW_AT_declaration => die.declaration = true,
                gimli::DW_AT_specification | gimli::DW_AT_abstract_origin => {
                    die.origin = unit_ref(&value);
                }
                _ => {}
            }
        }
        Ok(die)
    }

    /// A string attribute's text.
    fn string(&self, value: AttributeValue<Reader<'data>>) -> Result<Option<String>, DwarfError> {
        let text = self.dwarf.attr_string(self.unit, value)?;
        Ok(Some(text.to_string_lossy().into_owned()))
    }

    /// The qualified name of the type at `offset`; `None` for an entry that is not a type.
    fn name_of(&mut self, offset: UnitOffset, depth: usize) -> Result<Option<String>, DwarfError> {
        if let Some(name) = self.names.get(&offset) {
            return Ok(name.clone());
        }
        if depth > MAX_DEPTH {
            return Err(DwarfError::Malformed(
                "a chain of types is too long".to_owned(),
            ));
        }
        let Some(die) = self.dies.get(&offset) else {
            return Ok(None);
        };
        let (tag, name, scope, pointee, count) = (
            die.tag,
            die.name.clone(),
            die.scope.clone(),
            die.ty,
            die.children.clone(),
        );
        let pointee_name = |reader: &mut Self| -> Result<String, DwarfError> {
            Ok(match pointee {
                Some(target) => reader
                    .name_of(target, depth + 1)?
                    .unwrap_or_else(|| "?".to_owned()),
                None => "()".to_owned(),
            })
        };
        let name = match tag {
            gimli::DW_TAG_structure_type
            | gimli::DW_TAG_union_type
            | gimli::DW_TAG_enumeration_type
            | gimli::DW_TAG_typedef
            | gimli::DW_TAG_base_type
            | gimli::DW_TAG_unspecified_type => Some(join(&scope, name.as_deref().unwrap_or("?"))),
            gimli::DW_TAG_pointer_type
            | gimli::DW_TAG_reference_type
            | gimli::DW_TAG_rvalue_reference_type => Some(match name {
                Some(name) => name,
                None => format!("*{}", pointee_name(self)?),
            }),
            gimli::DW_TAG_const_type | gimli::DW_TAG_volatile_type => Some(pointee_name(self)?),
            gimli::DW_TAG_array_type => {
                let element = pointee_name(self)?;
                let len = count
                    .iter()
                    .filter_map(|child| self.dies.get(child))
                    .find(|child| child.tag == gimli::DW_TAG_subrange_type)
                    .and_then(|range| range.count);
                Some(match len {
                    Some(len) => format!("[{element}; {len}]"),
                    None => format!("[{element}]"),
                })
            }
            gimli::DW_TAG_subroutine_type => Some(name.unwrap_or_else(|| "fn(..)".to_owned())),
            _ => None,
        };
        self.names.insert(offset, name.clone());
        Ok(name)
    }

    /// Adds the unit's types and roots to `graph`.
    fn read_into(
        mut self,
        graph: &mut TypeGraph,
        crate_name: &str,
        wanted: Option<&HashSet<String>>,
    ) -> Result<(), DwarfError> {
        let crate_prefix = format!("{crate_name}::");
        for offset in std::mem::take(&mut self.order) {
            let die = &self.dies[&offset];
            let named_type = matches!(
                die.tag,
                gimli::DW_TAG_structure_type
                    | gimli::DW_TAG_union_type
                    | gimli::DW_TAG_enumeration_type
            );
            // A type's declaration has no layout: its definition (in this unit or another) has.
            if named_type && die.declaration {
                continue;
            }
            if let Some(wanted) = wanted {
                if !named_type {
                    continue;
                }
                let name = join(&die.scope, die.name.as_deref().unwrap_or("?"));
                if !wanted.contains(&name) || graph.types.contains_key(&name) && !shared_name(&name)
                {
                    continue;
                }
                let def = self.type_def(offset)?;
                graph.add_type(&name, &def);
                continue;
            }
            let Some(name) = self.name_of(offset, 0)? else {
                self.read_root(offset, graph, &crate_prefix)?;
                continue;
            };
            if graph.types.contains_key(&name) && !shared_name(&name) {
                continue;
            }
            let def = self.type_def(offset)?;
            graph.add_type(&name, &def);
        }
        Ok(())
    }

    /// The layout of the type at `offset`.
    fn type_def(&mut self, offset: UnitOffset) -> Result<TypeDef, DwarfError> {
        let die = &self.dies[&offset];
        let (tag, size, align, pointee, children) =
            (die.tag, die.size, die.align, die.ty, die.children.clone());
        let mut edges = Vec::new();
        let shape = match tag {
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
                self.struct_shape(&children, &mut edges)?
            }
            gimli::DW_TAG_enumeration_type => {
                let values = children
                    .iter()
                    .filter_map(|child| self.dies.get(child))
                    .filter(|child| child.tag == gimli::DW_TAG_enumerator)
                    .map(|child| {
                        (
                            child.name.clone().unwrap_or_default(),
                            child.const_value.unwrap_or_default(),
                        )
                    })
                    .collect();
                Shape::Enumeration { values }
            }
            _ => {
                let how = match tag {
                    gimli::DW_TAG_array_type => "[]",
                    _ => "*",
                };
                if let Some(target) = pointee
                    && let Some(name) = self.name_of(target, 0)?
                {
                    edges.push((how.to_owned(), name));
                }
                Shape::Other
            }
        };
        Ok(TypeDef {
            size,
            align,
            shape,
            edges,
        })
    }

    /// The fields, generic parameters and variants of a struct, union or enum with data, from
    /// its `children`; each adds an edge to `edges`.
    fn struct_shape(
        &mut self,
        children: &[UnitOffset],
        edges: &mut Vec<(String, String)>,
    ) -> Result<Shape, DwarfError> {
        let mut fields = Vec::new();
        let mut discriminant = None;
        let mut variants = Vec::new();
        for &child in children {
            match self.dies[&child].tag {
                gimli::DW_TAG_member => {
                    let field = self.field(child)?;
                    edges.push((field.name.clone(), field.ty.clone()));
                    fields.push(field);
                }
                gimli::DW_TAG_template_type_parameter => {
                    if let Some(ty) = self.dies[&child].ty
                        && let Some(name) = self.name_of(ty, 0)?
                    {
                        let param = self.dies[&child].name.clone();
                        edges.push((param.unwrap_or_else(|| "T".to_owned()), name));
                    }
                }
                gimli::DW_TAG_variant_part => {
                    let part = &self.dies[&child];
                    let (discr, cases) = (part.discr, part.children.clone());
                    if let Some(discr) = discr.filter(|d| self.dies.contains_key(d)) {
                        discriminant = Some(self.field(discr)?);
                    }
                    for variant in self.variants(&cases)? {
                        edges.push((variant.field.name.clone(), variant.field.ty.clone()));
                        variants.push(variant);
                    }
                }
                _ => {}
            }
        }
        Ok(Shape::Struct {
            fields,
            discriminant,
            variants,
        })
    }

    /// The variants among the children `cases` of a variant part.
    fn variants(&mut self, cases: &[UnitOffset]) -> Result<Vec<Variant>, DwarfError> {
        let mut variants = Vec::new();
        for case in cases {
            let case = &self.dies[case];
            if case.tag != gimli::DW_TAG_variant {
                continue;
            }
            let value = case.discr_value;
            let member = case
                .children
                .iter()
                .copied()
                .find(|m| self.dies[m].tag == gimli::DW_TAG_member);
            if let Some(member) = member {
                variants.push(Variant {
                    discriminant: value,
                    field: self.field(member)?,
                });
            }
        }
        Ok(variants)
    }

    /// A member entry as a field.
    fn field(&mut self, offset: UnitOffset) -> Result<Field, DwarfError> {
        let die = &self.dies[&offset];
        let (name, member_offset, ty) = (die.name.clone(), die.member_offset, die.ty);
        let ty = match ty {
            Some(ty) => self.name_of(ty, 0)?.unwrap_or_else(|| "?".to_owned()),
            None => "?".to_owned(),
        };
        Ok(Field {
            name: name.unwrap_or_else(|| "<discriminant>".to_owned()),
            offset: member_offset,
            ty,
        })
    }

    /// Adds the roots the entry at `offset` holds: a hot function's body or a static.
    fn read_root(
        &mut self,
        offset: UnitOffset,
        graph: &mut TypeGraph,
        crate_prefix: &str,
    ) -> Result<(), DwarfError> {
        let die = &self.dies[&offset];
        match die.tag {
            gimli::DW_TAG_subprogram => {
                let hot = die
                    .linkage_name
                    .as_deref()
                    .and_then(|name| name.strip_prefix(BODY_PREFIX))
                    .map(str::to_owned);
                let hot_function = hot.is_some();
                let function = match hot {
                    Some(function) => function,
                    None if self.signatures => {
                        let named = match (&die.name, die.origin) {
                            (None, Some(origin)) => self.dies.get(&origin).unwrap_or(die),
                            _ => die,
                        };
                        join(&named.scope, named.name.as_deref().unwrap_or("?"))
                    }
                    None => return Ok(()),
                };
                let (ret, children) = (die.ty, die.children.clone());
                if let Some(ret) = ret
                    && let Some(ty) = self.name_of(ret, 0)?
                {
                    graph.roots.push(Root {
                        kind: RootKind::Return {
                            function: function.clone(),
                            hot: hot_function,
                        },
                        ty,
                    });
                }
                for child in children {
                    let param = &self.dies[&child];
                    if param.tag != gimli::DW_TAG_formal_parameter {
                        continue;
                    }
                    let (name, ty) = (param.name.clone(), param.ty);
                    if let Some(ty) = ty
                        && let Some(ty) = self.name_of(ty, 0)?
                    {
                        graph.roots.push(Root {
                            kind: RootKind::Parameter {
                                function: function.clone(),
                                hot: hot_function,
                                name: name.unwrap_or_else(|| "_".to_owned()),
                            },
                            ty,
                        });
                    }
                }
            }
            gimli::DW_TAG_variable if die.has_location && !die.in_function => {
                let name = join(&die.scope, die.name.as_deref().unwrap_or("?"));
                if !name.starts_with(crate_prefix) {
                    return Ok(());
                }
                let ty = die.ty;
                if let Some(ty) = ty
                    && let Some(ty) = self.name_of(ty, 0)?
                {
                    graph.roots.push(Root {
                        kind: RootKind::Static { name },
                        ty,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `scope::name`, or `name` at the top.
fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}::{name}")
    }
}

/// A reference to another entry of the same unit.
fn unit_ref(value: &AttributeValue<Reader<'_>>) -> Option<UnitOffset> {
    match *value {
        AttributeValue::UnitRef(offset) => Some(offset),
        _ => None,
    }
}

/// A constant, signed or unsigned.
fn number(value: &AttributeValue<Reader<'_>>) -> Option<i128> {
    match *value {
        AttributeValue::Sdata(n) => Some(i128::from(n)),
        _ => value.udata_value().map(i128::from),
    }
}

/// How the layout of `name` differs between `old` and `new`, in the user's words; empty when
/// it does not.
pub(crate) fn changes(old: &TypeDef, new: &TypeDef) -> Vec<String> {
    let mut out = Vec::new();
    match (&old.shape, &new.shape) {
        (
            Shape::Struct {
                fields: old_fields,
                discriminant: old_discr,
                variants: old_variants,
            },
            Shape::Struct {
                fields: new_fields,
                discriminant: new_discr,
                variants: new_variants,
            },
        ) => {
            field_changes(old_fields, new_fields, "field", &mut out);
            if let (Some(old), Some(new)) = (old_discr, new_discr)
                && (old.offset != new.offset || old.ty != new.ty)
            {
                out.push(format!(
                    "discriminant `{}` at offset {} -> `{}` at offset {}",
                    short(&old.ty),
                    known(old.offset),
                    short(&new.ty),
                    known(new.offset)
                ));
            }
            variant_changes(old_variants, new_variants, &mut out);
        }
        (Shape::Enumeration { values: old }, Shape::Enumeration { values: new }) => {
            let old_map: BTreeMap<&str, i128> = old.iter().map(|(n, v)| (n.as_str(), *v)).collect();
            let new_map: BTreeMap<&str, i128> = new.iter().map(|(n, v)| (n.as_str(), *v)).collect();
            for (name, value) in new {
                match old_map.get(name.as_str()) {
                    None => out.push(format!("variant `{name}` added with value {value}")),
                    Some(was) if was != value => {
                        out.push(format!("variant `{name}` value {was} -> {value}"));
                    }
                    Some(_) => {}
                }
            }
            for (name, _) in old {
                if !new_map.contains_key(name.as_str()) {
                    out.push(format!("variant `{name}` removed"));
                }
            }
        }
        (old_shape, new_shape) if kind(old_shape) != kind(new_shape) => {
            out.push(format!("was {}, now {}", kind(old_shape), kind(new_shape)));
        }
        _ => {}
    }
    if old.size != new.size {
        out.push(format!(
            "size {} -> {} bytes",
            known(old.size),
            known(new.size)
        ));
    }
    if old.align != new.align {
        out.push(format!(
            "alignment {} -> {} bytes",
            known(old.align),
            known(new.align)
        ));
    }
    out
}

/// What a shape is called in a message.
fn kind(shape: &Shape) -> &'static str {
    match shape {
        Shape::Struct { variants, .. } if !variants.is_empty() => "an enum with data",
        Shape::Struct { .. } => "a struct",
        Shape::Enumeration { .. } => "a fieldless enum",
        Shape::Other => "not a struct or enum",
    }
}

/// Fields added, removed, moved or retyped, matched by name.
fn field_changes(old: &[Field], new: &[Field], what: &str, out: &mut Vec<String>) {
    for field in new {
        match old.iter().find(|f| f.name == field.name) {
            None => out.push(format!(
                "{what} `{}: {}` added at offset {}",
                field.name,
                short(&field.ty),
                known(field.offset)
            )),
            Some(was) => {
                if was.ty != field.ty {
                    out.push(format!(
                        "{what} `{}` changed type `{}` -> `{}`",
                        field.name,
                        short(&was.ty),
                        short(&field.ty)
                    ));
                }
                if was.offset != field.offset {
                    out.push(format!(
                        "{what} `{}` moved from offset {} to {}",
                        field.name,
                        known(was.offset),
                        known(field.offset)
                    ));
                }
            }
        }
    }
    for field in old {
        if !new.iter().any(|f| f.name == field.name) {
            out.push(format!(
                "{what} `{}: {}` removed (was at offset {})",
                field.name,
                short(&field.ty),
                known(field.offset)
            ));
        }
    }
}

/// Variants added, removed or given another discriminant, matched by name.
fn variant_changes(old: &[Variant], new: &[Variant], out: &mut Vec<String>) {
    for variant in new {
        let name = &variant.field.name;
        match old.iter().find(|v| v.field.name == *name) {
            None => out.push(format!("variant `{name}` added")),
            Some(was) if was.discriminant != variant.discriminant => out.push(format!(
                "variant `{name}` discriminant {} -> {}",
                discriminant(was.discriminant),
                discriminant(variant.discriminant)
            )),
            Some(_) => {}
        }
    }
    for variant in old {
        if !new.iter().any(|v| v.field.name == variant.field.name) {
            out.push(format!("variant `{}` removed", variant.field.name));
        }
    }
}

/// A variant's discriminant value, or `(niche)` for the variant the others' values leave.
fn discriminant(value: Option<i128>) -> String {
    value.map_or_else(|| "(niche)".to_owned(), |v| v.to_string())
}

/// A number the debug info may leave out (an offset, a size): `?` when it does.
fn known(value: Option<u64>) -> String {
    value.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

/// A qualified type name as a user writes it: paths cut to their last segment and the default
/// allocator left out (`alloc::sync::Arc<alloc::vec::Vec<app::Item, alloc::alloc::Global>,
/// alloc::alloc::Global>` -> `Arc<Vec<Item>>`).
pub(crate) fn short(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut segment = String::new();
    let mut chars = name.chars().peekable();
    let mut brace = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                brace += 1;
                segment.push(c);
            }
            '}' => {
                brace = brace.saturating_sub(1);
                segment.push(c);
            }
            ':' if brace == 0 && chars.peek() == Some(&':') => {
                chars.next();
                segment.clear();
            }
            c if brace == 0 && !(c.is_alphanumeric() || c == '_' || c == '#') => {
                out.push_str(&segment);
                segment.clear();
                out.push(c);
            }
            c => segment.push(c),
        }
    }
    out.push_str(&segment);
    out.replace(", Global>", ">")
        .replace("<Global>", "")
        .replace(", RandomState>", ">")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A skeleton of a codegen unit that an incremental build reused names the `.dwo` file of
    /// the build that compiled it; the file of the same unit that the last build wrote is read.
    #[test]
    fn a_reused_codegen_unit_finds_its_split_debug_info_under_the_new_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        file("app-1f.cgu1.built.rcgu.dwo", "kept");
        file("app-1f.cgu1.now.rcgu.dwo", "cgu1");
        file("app-1f.cgu10.now.rcgu.dwo", "cgu10");
        let mut listings = HashMap::new();
        let mut read = |name: &str| {
            find_dwo(&dir.path().join(name), &mut listings).and_then(|path| {
                let data = std::fs::read(&path)?;
                Ok((path.file_name().unwrap().to_owned(), data))
            })
        };
        let named = read("app-1f.cgu1.built.rcgu.dwo").unwrap();
        assert_eq!(named.1, b"kept", "the named file is read when it is there");
        std::fs::remove_file(dir.path().join("app-1f.cgu1.built.rcgu.dwo")).unwrap();
        let moved = read("app-1f.cgu1.built.rcgu.dwo").unwrap();
        assert_eq!(moved, ("app-1f.cgu1.now.rcgu.dwo".into(), b"cgu1".to_vec()));
        let other = read("app-1f.cgu10.old.rcgu.dwo").unwrap();
        assert_eq!(other.1, b"cgu10");
        let error = read("app-1f.cgu2.old.rcgu.dwo").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    }

    /// Two types named alike in anonymous `const _` blocks (as two `#[derive(Deserialize)]`s
    /// declare two `__Visitor`s) are both kept; new code that describes only one of them, or
    /// both in the other order, describes them alike, but a third layout does not.
    #[test]
    fn every_type_of_a_shared_name_is_kept_and_compared() {
        let visitor = |marker: &str| TypeDef {
            size: Some(0),
            align: Some(1),
            shape: Shape::Struct {
                fields: vec![Field {
                    name: "marker".into(),
                    offset: Some(0),
                    ty: format!("core::marker::PhantomData<{marker}>"),
                }],
                discriminant: None,
                variants: Vec::new(),
            },
            edges: Vec::new(),
        };
        let name = "app::model::_::__Visitor";
        let mut running = TypeGraph::default();
        running.add_type(name, &visitor("app::model::Order"));
        running.add_type(name, &visitor("app::model::Item"));
        running.add_type(name, &visitor("app::model::Item"));
        assert_eq!(running.descriptions(name).count(), 2);
        let mut patch = TypeGraph::default();
        patch.add_type(name, &visitor("app::model::Item"));
        assert!(running.describes_alike(&patch, name));
        patch.add_type(name, &visitor("app::model::Order"));
        assert!(running.describes_alike(&patch, name));
        patch.add_type(name, &visitor("app::model::Customer"));
        assert!(!running.describes_alike(&patch, name));
        // A name of one type keeps its first description only.
        let mut plain = TypeGraph::default();
        plain.add_type("app::model::Item", &visitor("u8"));
        plain.add_type("app::model::Item", &visitor("u16"));
        assert_eq!(plain.descriptions("app::model::Item").count(), 1);
    }

    /// An optimised build declares a type (`DW_AT_declaration`, no size, no fields) in the
    /// units where only its methods are. A declaration read before the definition is not the
    /// type's layout: an allocator type of the crate was refused on every edit of a release
    /// build as "size 0 -> ?".
    #[test]
    fn a_declaration_before_the_definition_is_not_the_types_layout() {
        use gimli::write::{AttributeValue as Value, DwarfUnit, EndianVec, Sections};
        let encoding = gimli::Encoding {
            format: gimli::Format::Dwarf32,
            version: 4,
            address_size: 8,
        };
        let mut written = DwarfUnit::new(encoding);
        let unit = &mut written.unit;
        let root = unit.root();
        let mut add = |parent, tag, attributes: Vec<(gimli::DwAt, Value)>| {
            let entry = unit.add(parent, tag);
            for (name, value) in attributes {
                unit.get_mut(entry).set(name, value);
            }
            entry
        };
        let name = |text: &str| (gimli::DW_AT_name, Value::String(text.as_bytes().to_vec()));
        let base = add(
            root,
            gimli::DW_TAG_base_type,
            vec![name("u64"), (gimli::DW_AT_byte_size, Value::Udata(8))],
        );
        let space = add(root, gimli::DW_TAG_namespace, vec![name("app")]);
        add(
            space,
            gimli::DW_TAG_structure_type,
            vec![
                name("Counting"),
                (gimli::DW_AT_declaration, Value::Flag(true)),
            ],
        );
        let defined = add(
            space,
            gimli::DW_TAG_structure_type,
            vec![
                name("Counting"),
                (gimli::DW_AT_byte_size, Value::Udata(8)),
                (gimli::DW_AT_alignment, Value::Udata(8)),
            ],
        );
        add(
            defined,
            gimli::DW_TAG_member,
            vec![
                name("count"),
                (gimli::DW_AT_type, Value::UnitRef(base)),
                (gimli::DW_AT_data_member_location, Value::Udata(0)),
            ],
        );
        let mut sections = Sections::new(EndianVec::new(RunTimeEndian::Little));
        written.write(&mut sections).unwrap();
        let dwarf = gimli::Dwarf::load(|id| -> Result<_, gimli::Error> {
            let bytes = sections.get(id).map_or(&[][..], |section| section.slice());
            Ok(EndianSlice::new(bytes, RunTimeEndian::Little))
        })
        .unwrap();
        let header = dwarf.units().next().unwrap().unwrap();
        let unit = dwarf.unit(header).unwrap();
        let mut graph = TypeGraph::default();
        UnitReader::new(&dwarf, &unit, false)
            .unwrap()
            .read_into(&mut graph, "app", None)
            .unwrap();
        let layouts: Vec<&TypeDef> = graph.descriptions("app::Counting").collect();
        assert_eq!(layouts.len(), 1);
        assert_eq!(layouts[0].size, Some(8));
        assert_eq!(
            layouts[0].shape,
            Shape::Struct {
                fields: vec![field("count", 0, "u64")],
                discriminant: None,
                variants: Vec::new(),
            }
        );
    }

    #[test]
    fn names_read_as_written() {
        assert_eq!(
            short(
                "&alloc::sync::Arc<std::sync::poison::mutex::Mutex<alloc::vec::Vec<layouts::Item, \
                 alloc::alloc::Global>>, alloc::alloc::Global>"
            ),
            "&Arc<Mutex<Vec<Item>>>"
        );
        assert_eq!(
            short(
                "std::collections::hash::map::HashMap<u32, app::Price, std::hash::random::RandomState>"
            ),
            "HashMap<u32, Price>"
        );
        assert_eq!(short("app::main::{closure_env#0}"), "{closure_env#0}");
        assert_eq!(short("(app::Pair, app::Reading)"), "(Pair, Reading)");
    }

    fn field(name: &str, offset: u64, ty: &str) -> Field {
        Field {
            name: name.into(),
            offset: Some(offset),
            ty: ty.into(),
        }
    }

    fn strukt(size: u64, fields: Vec<Field>) -> TypeDef {
        TypeDef {
            size: Some(size),
            align: Some(8),
            shape: Shape::Struct {
                fields,
                discriminant: None,
                variants: Vec::new(),
            },
            edges: Vec::new(),
        }
    }

    #[test]
    fn an_added_field_is_named_with_its_offset_and_the_new_size() {
        let old = strukt(24, vec![field("name", 0, "alloc::string::String")]);
        let new = strukt(
            32,
            vec![
                field("name", 0, "alloc::string::String"),
                field("price", 24, "u64"),
            ],
        );
        assert_eq!(
            changes(&old, &new),
            [
                "field `price: u64` added at offset 24",
                "size 24 -> 32 bytes"
            ]
        );
    }

    #[test]
    fn swapped_and_retyped_fields_are_changes_of_the_same_size() {
        let old = strukt(16, vec![field("left", 0, "u64"), field("right", 8, "u64")]);
        let new = strukt(16, vec![field("right", 0, "u64"), field("left", 8, "u64")]);
        assert_eq!(
            changes(&old, &new),
            [
                "field `right` moved from offset 8 to 0",
                "field `left` moved from offset 0 to 8"
            ]
        );
        let old = strukt(4, vec![field("value", 0, "u32")]);
        let new = strukt(4, vec![field("value", 0, "f32")]);
        assert_eq!(
            changes(&old, &new),
            ["field `value` changed type `u32` -> `f32`"]
        );
        assert!(changes(&old, &old).is_empty());
    }

    #[test]
    fn reordered_enum_variants_change_their_values() {
        let old = TypeDef {
            size: Some(1),
            align: Some(1),
            shape: Shape::Enumeration {
                values: vec![("Red".into(), 0), ("Green".into(), 1)],
            },
            edges: Vec::new(),
        };
        let new = TypeDef {
            shape: Shape::Enumeration {
                values: vec![("Green".into(), 0), ("Red".into(), 1)],
            },
            ..old.clone()
        };
        assert_eq!(
            changes(&old, &new),
            ["variant `Green` value 1 -> 0", "variant `Red` value 0 -> 1"]
        );
    }
}
