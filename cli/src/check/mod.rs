//! The compatibility gate: everything about a patch is checked on its files, with the
//! `object` crate, before it is sent to the host, because loading runs its initialisers.
//!
//! * hot-function records: a changed signature, or a changed size or alignment of a type a hot
//!   signature mentions, is refused;
//! * type layouts from DWARF: every type of the crate that the running program can hold (reached
//!   from a hot function's parameters and return type or from a static, through fields,
//!   pointers, containers and generic parameters) must keep its size, alignment, fields,
//!   variants and discriminants;
//! * `persist!` statics: a changed size or alignment is refused (the host's value would be read
//!   with the new layout);
//! * undefined symbols: each must be exported by the host or by a library the host needs;
//! * code: which functions changed since the version running now, and which statics start fresh.

pub(crate) mod code;
pub(crate) mod dwarf;
pub(crate) mod entries;
pub(crate) mod locate;
pub(crate) mod records;
pub(crate) mod source;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use object::read::elf::{ElfFile64, FileHeader};
use object::{Object, ObjectSymbol};

use crate::codes::Code;
use crate::output::CONTINUATION;

pub(crate) use self::dwarf::Roots;
use self::dwarf::{Reach, RootKind, TypeGraph};
use self::records::Record;

/// What the gate knows about the running host, read once per host build.
#[derive(Debug)]
pub(crate) struct HostImage {
    /// The host's hot-function records.
    pub(crate) records: BTreeMap<String, Record>,
    /// Size and alignment of the host's `persist!` statics.
    pub(crate) layouts: BTreeMap<String, (u64, u64)>,
    /// Names the host and the libraries it needs export.
    exports: HashSet<String>,
    /// The types the crate's code describes and the values the program holds, or why they
    /// could not be read.
    pub(crate) types: Result<TypeGraph, String>,
    /// The crate's types that the program can hold (reached from a root): all a patch is read
    /// for. With [`Roots::EveryFunction`] (entry redirection) the states of closures and
    /// futures are left out: [`state_refusals`] compares those of the redirected functions.
    pub(crate) held: HashSet<String>,
}

/// What the gate needs to know of the crate whose code is patched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CrateId<'a> {
    /// Its name, `time_service`.
    pub(crate) name: &'a str,
    /// Its root source file as rustc is given it, `src/main.rs`: the prefix of the names of its
    /// compilation units in the debug info.
    pub(crate) source: &'a str,
}

impl HostImage {
    /// Reads the host executable at `exe` (the crates `crates` linked whole) and the shared
    /// libraries it needs; `roots` says which values count as held.
    ///
    /// # Errors
    ///
    /// When the executable cannot be read or parsed. Debug info that cannot be read is not an
    /// error here: every patch is then refused, saying why.
    pub(crate) fn read(
        exe: &Path,
        crates: &[CrateId<'_>],
        roots: Roots,
    ) -> anyhow::Result<HostImage> {
        let data =
            std::fs::read(exe).with_context(|| format!("cannot read `{}`", exe.display()))?;
        let file = object::File::parse(&*data)
            .with_context(|| format!("`{}` is not an executable", exe.display()))?;
        let records = records::read(&file)?;
        let layouts = records::read_layouts(&file)?;
        let mut exports = defined_dynamic_symbols(&file);
        // The libraries the host needs (libc, libm, libgcc_s, ...) and the dynamic loader, which
        // serves `__tls_get_addr` and is named by the program interpreter, not DT_NEEDED.
        let mut libraries = needed_libraries(&data);
        libraries.names.push("ld-linux-x86-64.so.2".to_owned());
        exports.extend(library_exports(&libraries, exe.parent()));
        let types = TypeGraph::read(&file, crates, None, roots).map_err(|e| e.to_string());
        let held = types.as_ref().map_or_else(
            |_| HashSet::new(),
            |graph| {
                graph
                    .reachable()
                    .into_iter()
                    .map(|(name, _)| name)
                    .filter(|name| graph.defines(name) && !(roots.skips_states() && is_state(name)))
                    .map(str::to_owned)
                    .collect()
            },
        );
        Ok(HostImage {
            records,
            layouts,
            exports,
            types,
            held,
        })
    }
}

impl Roots {
    /// Whether the states of closures and futures are left out of the layout check of held
    /// types (compared by [`state_refusals`] instead).
    fn skips_states(self) -> bool {
        self == Roots::EveryFunction
    }
}

/// Whether `name` is the state type of a closure or coroutine (see [`STATE_TYPES`]).
fn is_state(name: &str) -> bool {
    STATE_TYPES.iter().any(|state| name.contains(state))
}

/// What the gate reads from a patch file.
#[derive(Debug)]
pub(crate) struct PatchImage {
    /// The patch's hot-function records.
    pub(crate) records: BTreeMap<String, Record>,
    /// Size and alignment of the patch's `persist!` statics.
    pub(crate) layouts: BTreeMap<String, (u64, u64)>,
    /// Its undefined, non-weak dynamic symbols.
    pub(crate) undefined: Vec<String>,
    /// The shared libraries the patch itself needs (`libm` for `f64::sin`, say), which the
    /// loader loads with it, and the patch's directory (for `$ORIGIN`). They are read only for
    /// a symbol that the host does not export: nearly always, the patch needs the host's own
    /// libraries (reading libc's exports took milliseconds of every patch). Filled by
    /// [`PatchImage::read`] only.
    needed: (Needed, Option<PathBuf>),
    /// The types the patch's code describes.
    pub(crate) types: TypeGraph,
    /// The digest ([`hotswap::protocol::digest`]) of the bytes checked, which the program
    /// compares with the file it loads. Filled by [`PatchImage::read`] only.
    pub(crate) digest: u64,
}

impl PatchImage {
    /// Reads the patch at `path`, built from the crate `krate`, for the layouts of the types
    /// named in `wanted` (see [`HostImage::held`]). Never panics on a malformed
    /// file: it is an error.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, is not an object file, or holds malformed records or debug
    /// info.
    pub(crate) fn read(
        path: &Path,
        crates: &[CrateId<'_>],
        wanted: &HashSet<String>,
    ) -> anyhow::Result<PatchImage> {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let mut image = Self::parse(&data, crates, Some(wanted))
            .with_context(|| format!("malformed patch `{}`", path.display()))?;
        image.needed = (
            needed_libraries(&data),
            path.parent().map(Path::to_path_buf),
        );
        image.digest = hotswap::protocol::digest(&data);
        Ok(image)
    }

    /// Parses a patch's bytes.
    ///
    /// # Errors
    ///
    /// When the bytes are not an object file or hold malformed records or debug info.
    pub(crate) fn parse(
        data: &[u8],
        crates: &[CrateId<'_>],
        wanted: Option<&HashSet<String>>,
    ) -> anyhow::Result<PatchImage> {
        let file = object::File::parse(data).context("not an object file")?;
        let types = TypeGraph::read(&file, crates, wanted, Roots::Hot)
            .context("the types it uses cannot be checked")?;
        let records = records::read(&file)?;
        let layouts = records::read_layouts(&file)?;
        let mut undefined: Vec<String> = file
            .dynamic_symbols()
            .filter(|s| s.is_undefined() && !s.is_weak())
            .filter_map(|s| s.name().ok().filter(|n| !n.is_empty()).map(str::to_owned))
            .collect();
        undefined.sort();
        undefined.dedup();
        Ok(PatchImage {
            records,
            layouts,
            undefined,
            needed: Default::default(),
            types,
            digest: 0,
        })
    }
}

/// A [`PatchImage::read`] started on another thread as soon as the patch file is in place, so
/// that it runs beside the code index and the source diff rather than after them.
#[derive(Debug)]
pub(crate) struct ReadAhead {
    path: PathBuf,
    reader: std::thread::JoinHandle<anyhow::Result<PatchImage>>,
}

impl ReadAhead {
    /// Starts reading the patch at `path` as [`PatchImage::read`] does.
    pub(crate) fn start(path: &Path, crates: &[CrateId<'_>], wanted: &HashSet<String>) -> Self {
        let owned: Vec<(String, String)> = crates
            .iter()
            .map(|c| (c.name.to_owned(), c.source.to_owned()))
            .collect();
        let (file, wanted) = (path.to_path_buf(), wanted.clone());
        let reader = std::thread::spawn(move || {
            let crates: Vec<CrateId<'_>> = owned
                .iter()
                .map(|(name, source)| CrateId { name, source })
                .collect();
            PatchImage::read(&file, &crates, &wanted)
        });
        ReadAhead {
            path: path.to_path_buf(),
            reader,
        }
    }

    /// The image of the patch at `path`: `ahead`'s if it read that file, else read now.
    ///
    /// # Errors
    ///
    /// As [`PatchImage::read`].
    pub(crate) fn take(
        ahead: Option<ReadAhead>,
        path: &Path,
        crates: &[CrateId<'_>],
        wanted: &HashSet<String>,
    ) -> anyhow::Result<PatchImage> {
        match ahead {
            Some(ahead) if ahead.path == path => ahead
                .reader
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the reader of the patch panicked"))),
            _ => PatchImage::read(path, crates, wanted),
        }
    }
}

/// Why a patch cannot be applied to the running host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A hot function's signature changed.
    Signature {
        /// The hot function's path.
        function: String,
        /// The host's signature.
        old: String,
        /// The patch's signature.
        new: String,
        /// Where the function is defined in the new source.
        location: String,
    },
    /// A type in a hot function's signature changed size or alignment.
    Layout {
        /// The hot function's signature.
        signature: String,
        /// The type as written.
        ty: String,
        /// Size and alignment in the host, in bytes.
        old: (u64, u64),
        /// Size and alignment in the patch, in bytes.
        new: (u64, u64),
        /// Where the function is defined.
        location: String,
    },
    /// A `persist!` static's type changed size or alignment behind the same written type.
    PersistLayout {
        /// The static's path, `crate::module::NAME`.
        name: String,
        /// Size and alignment in the host, in bytes.
        old: (u64, u64),
        /// Size and alignment in the patch, in bytes.
        new: (u64, u64),
    },
    /// A type of the crate that the running program holds changed its layout: new code would
    /// read the program's values with the wrong layout.
    TypeLayout {
        /// The type as the user names it, `Item`.
        ty: String,
        /// Its qualified name, `shop::Item`.
        path: String,
        /// What changed, in order: fields, variants, size, alignment.
        changes: Vec<String>,
        /// How the running program reaches it, from a hot function or a static.
        held: String,
        /// Where it is defined in the new source, when found.
        location: Option<String>,
    },
    /// The layouts of the types the running program holds could not be read from one side.
    Unchecked {
        /// Why (which file, what is missing).
        reason: String,
    },
    /// A hot function of the running code is not in the patch: renamed or removed, while the
    /// running program still calls it.
    Gone {
        /// The hot function's path.
        function: String,
    },
    /// The patch needs symbols that neither the host nor its libraries define.
    Unresolved {
        /// The missing symbols, demangled.
        symbols: Vec<String>,
    },
    /// A changed function's entry in the running program cannot be redirected.
    Unredirectable {
        /// The function as messages show it, quoted, with where it is declared when known:
        /// `` `alpha` at src/main.rs:39 ``.
        function: String,
        /// Why.
        why: String,
        /// What would happen, and what to do instead.
        effect: String,
    },
    /// A function to redirect uses a mutable static of the crate in a way that cannot be made
    /// to reach the running program's copy: it writes or reads it in place (`static mut`), or
    /// takes the address of a part of it.
    StaticUnshared {
        /// The function, as messages show it.
        function: String,
        /// The static, as the user wrote it.
        name: String,
        /// How the function uses it.
        why: String,
    },
    /// A static of the crate has a new initial value. Redirected code uses the running
    /// program's statics, which keep the values they hold.
    StaticValue {
        /// The static, as messages show it.
        name: String,
        /// Whether it has an unmangled name (`#[unsafe(no_mangle)]`): exported, the running
        /// program's copy is the one every patch uses, hot functions' included.
        exported: bool,
    },
    /// The program's global allocator (`#[global_allocator]`) was added, removed or replaced:
    /// the running program allocates with the one it started with, whatever a patch holds.
    GlobalAllocator,
    /// A patch would have its own copy of the global allocator's state (the statics its code
    /// reaches): memory allocated with one copy would be freed with the other.
    AllocatorState {
        /// The statics, as messages show them.
        statics: Vec<String>,
    },
    /// The state of a closure or `async fn` whose code is redirected changed its layout: the
    /// running program's closures and suspended futures would be resumed by code that reads
    /// them with the new layout.
    StateLayout {
        /// The function whose closure or future it is, as messages show it: `handle`.
        function: String,
        /// The state's type as the debug info names it, `{async_fn_env#0}`.
        state: String,
        /// What changed, in order: fields, variants (an `.await` is a variant), size, alignment.
        changes: Vec<String>,
    },
}

impl Refusal {
    /// The refusal's entry in the catalogue of rude edits.
    pub(crate) fn code(&self) -> Code {
        match self {
            Refusal::Signature { .. } => Code::SignatureChanged,
            Refusal::Layout { .. } | Refusal::TypeLayout { .. } => Code::LayoutChanged,
            Refusal::PersistLayout { .. } => Code::PersistedLayoutChanged,
            Refusal::Unchecked { .. } => Code::Unchecked,
            Refusal::Gone { .. } => Code::HotFunctionGone,
            Refusal::Unresolved { .. } => Code::UnresolvedSymbol,
            Refusal::StateLayout { .. } => Code::StateLayoutChanged,
            Refusal::StaticUnshared { .. } => Code::StaticUnshared,
            Refusal::Unredirectable { .. } => Code::Unredirectable,
            Refusal::StaticValue { .. } => Code::StaticValueChanged,
            Refusal::GlobalAllocator | Refusal::AllocatorState { .. } => {
                Code::GlobalAllocatorChanged
            }
        }
    }
}

impl fmt::Display for Refusal {
    /// The message after the `Refused` verb; continuation lines are indented under it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Signature {
                function,
                old,
                new,
                location,
            } => write!(
                f,
                "hot fn `{function}` changed its signature at {location}{CONTINUATION}\
                 was `{old}`{CONTINUATION}now `{new}`"
            ),
            Refusal::Layout {
                signature,
                ty,
                old,
                new,
                location,
            } => {
                let change = layout_change(*old, *new);
                write!(
                    f,
                    "`{ty}` changed layout ({change}) at {location}{CONTINUATION}\
                     hot fn `{signature}` would get it with the old layout from the running program"
                )
            }
            Refusal::TypeLayout {
                ty,
                changes,
                held,
                location,
                ..
            } => {
                let at = location
                    .as_deref()
                    .map_or_else(String::new, |l| format!(" at {l}"));
                write!(
                    f,
                    "`{ty}` changed layout{at}: {}{CONTINUATION}\
                     the running program holds it: {held}",
                    changes.join("; ")
                )
            }
            Refusal::Unchecked { reason } => write!(
                f,
                "the layouts of the types the running program holds cannot be checked: \
                 {reason}{CONTINUATION}nothing is loaded that the gate could not check"
            ),
            Refusal::PersistLayout { name, old, new } => {
                write!(
                    f,
                    "persisted static `{name}` changed layout ({}){CONTINUATION}\
                     the running program's value has the old layout; rename the static to \
                     start it fresh instead",
                    layout_change(*old, *new)
                )
            }
            Refusal::Gone { function } => write!(
                f,
                "hot fn `{function}` is gone from the new code (renamed or removed){CONTINUATION}\
                 the running program still calls it, and would not run the code that replaced it"
            ),
            Refusal::Unresolved { symbols } => {
                write!(
                    f,
                    "the patch needs {} the running program does not contain:",
                    if symbols.len() == 1 {
                        "a symbol"
                    } else {
                        "symbols"
                    }
                )?;
                for symbol in symbols {
                    write!(f, "{CONTINUATION}`{symbol}`")?;
                }
                Ok(())
            }
            Refusal::Unredirectable {
                function,
                why,
                effect,
            } => write!(
                f,
                "{function} cannot be redirected: {why}{CONTINUATION}{effect}"
            ),
            Refusal::StaticValue {
                name,
                exported: false,
            } => write!(
                f,
                "static `{name}` has a new initial value{CONTINUATION}redirected code uses the \
                 running program's statics, which keep the values they hold; the new value is \
                 the program's once it starts again"
            ),
            Refusal::StaticValue {
                name,
                exported: true,
            } => write!(
                f,
                "static `{name}` has a new initial value{CONTINUATION}its unmangled name is \
                 exported, so every patch uses the running program's copy, which keeps the value \
                 it holds; the new value is the program's once it starts again"
            ),
            Refusal::GlobalAllocator => write!(
                f,
                "the global allocator (`#[global_allocator]`) was added, removed or replaced\
                 {CONTINUATION}the running program allocates with the one it started with, and \
                 no patch changes that; the new one is the program's once it starts again"
            ),
            Refusal::AllocatorState { statics } => write!(
                f,
                "the patch would have its own copy of the global allocator's state: {}\
                 {CONTINUATION}memory allocated with one copy would be freed with the other; \
                 the program runs the new code once it starts again",
                statics
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Refusal::StaticUnshared {
                function,
                name,
                why,
            } => write!(
                f,
                "`{function}` uses static `{name}` in a way a patch cannot share: it {why}\
                 {CONTINUATION}the new code would use a fresh copy while the running code keeps \
                 the old one; a plain `static` with an atomic or a `Mutex` inside is shared"
            ),
            Refusal::StateLayout {
                function,
                state,
                changes,
            } => {
                let (what, effect) = if state.starts_with("{closure") {
                    (
                        "closure",
                        "closures the running program made would be called by code that reads \
                         their captures with the new layout",
                    )
                } else {
                    (
                        "future",
                        "futures the running program has not finished would be resumed by code \
                         that reads them with the new layout (an `.await` added or removed, or \
                         what is kept across one changed)",
                    )
                };
                write!(
                    f,
                    "`{function}` changed the layout of its {what} (`{state}`): {}{CONTINUATION}\
                     {effect}",
                    changes.join("; ")
                )
            }
        }
    }
}

/// The names the debug info gives the state types of closures (their captures) and of
/// coroutines (an `async fn`'s or `async` block's future: one variant per suspension point,
/// with the locals it keeps across it), each followed by `#` and an index.
const STATE_TYPES: [&str; 4] = [
    "{closure_env#",
    "{async_fn_env#",
    "{async_block_env#",
    "{coroutine_env#",
];

/// The states of the closures and coroutines among `redirected` (functions of the crate
/// `krate`, by display name: `handle::{closure}`) whose layout differs between the running
/// program's types `old` and the patch file at `patch`. A closure is named after the function
/// it is written in; its state types are found in that function's namespace (for a method of
/// a trait impl, every namespace of that name: more are compared than needed, never fewer). A
/// state that only the running program has, or only the patch, is not compared.
///
/// # Errors
///
/// When the patch's debug info cannot be read.
pub(crate) fn state_refusals(
    old: &TypeGraph,
    patch: &Path,
    crates: &[CrateId<'_>],
    krate: &str,
    redirected: &BTreeSet<String>,
) -> anyhow::Result<Vec<Refusal>> {
    // The function each closure is written in, and the namespace its states are in.
    let owners: BTreeMap<String, String> = redirected
        .iter()
        .filter_map(|name| {
            let owner = &name[..name.find("::{closure}")?];
            let last = owner.rsplit("::").next().unwrap_or(owner);
            let last = last.trim_end_matches('>');
            Some((format!("::{last}::"), owner.to_owned()))
        })
        .collect();
    let own = format!("{krate}::");
    let state_of = |name: &str| -> Option<(String, String)> {
        if !name.starts_with(&own) {
            return None;
        }
        owners.iter().find_map(|(namespace, owner)| {
            let at = name.find(namespace.as_str())? + namespace.len();
            let rest = &name[at..];
            STATE_TYPES
                .iter()
                .any(|state| rest.starts_with(state))
                .then(|| (owner.clone(), rest.to_owned()))
        })
    };
    let wanted: HashSet<String> = old
        .types
        .keys()
        .filter(|name| state_of(name).is_some())
        .cloned()
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let data =
        std::fs::read(patch).with_context(|| format!("cannot read `{}`", patch.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("`{}` is not an object file", patch.display()))?;
    let new = TypeGraph::read(&file, crates, Some(&wanted), Roots::Hot)?;
    let mut names: Vec<&String> = wanted.iter().collect();
    names.sort();
    // One refusal per state: a future's variants are types of their own
    // (`{async_fn_env#0}::Suspend0`), told as part of it.
    let mut refusals: Vec<Refusal> = Vec::new();
    for name in names {
        let (Some(before), Some(after)) = (old.types.get(name), new.types.get(name)) else {
            continue;
        };
        let changes = dwarf::changes(before, after);
        if changes.is_empty() {
            continue;
        }
        let (function, state) = state_of(name).expect("wanted states only");
        let (state, part) = match state.find("}::") {
            Some(at) => (state[..=at].to_owned(), Some(state[at + 3..].to_owned())),
            None => (state, None),
        };
        let changes = changes.into_iter().map(|change| match &part {
            Some(part) => format!("`{part}`: {change}"),
            None => change,
        });
        match refusals.last_mut() {
            Some(Refusal::StateLayout {
                function: f,
                state: s,
                changes: known,
            }) if *f == function && *s == state => known.extend(changes),
            _ => refusals.push(Refusal::StateLayout {
                function,
                state,
                changes: changes.collect(),
            }),
        }
    }
    Ok(refusals)
}

/// Fills in where each type of a [`Refusal::TypeLayout`] is defined, from the `.rs` files under
/// `dir`, as a path relative to `base`.
pub(crate) fn locate_types(refusals: &mut [Refusal], dirs: &[(String, PathBuf)], base: &Path) {
    for refusal in refusals {
        if let Refusal::TypeLayout { path, location, .. } = refusal {
            let krate = path.split("::").next().unwrap_or_default();
            let dir = dirs
                .iter()
                .find(|(name, _)| name == krate)
                .or(dirs.first())
                .map(|(_, dir)| dir);
            *location = dir.and_then(|dir| locate::definition(path, dir, base));
        }
    }
}

/// Every type of `held` (the crate's types that the running program can hold, reached in `old`
/// from a root) whose layout differs in `new`; a type the new code does not describe is not
/// used by it. Types named in `said` (as written in a signature), or reached from a static named
/// there, are left out.
fn layout_refusals(
    old: &TypeGraph,
    new: &TypeGraph,
    held_types: &HashSet<String>,
    records: &BTreeMap<String, Record>,
    said: &HashSet<&str>,
) -> Vec<Refusal> {
    let changed = |name: &str| {
        let (Some(was), Some(now)) = (old.types.get(name), new.types.get(name)) else {
            return false;
        };
        was != now && !dwarf::changes(was, now).is_empty() && !old.describes_alike(new, name)
    };
    // The paths from the roots are walked only when a held type changed: most patches change
    // none, and with every function's parameters as roots (entry redirection) the walk took
    // about 30 ms of every patch of the medium benchmark fixture.
    if !held_types.iter().any(|name| changed(name)) {
        return Vec::new();
    }
    let mut refusals = Vec::new();
    for (name, reach) in old.reachable() {
        let from_said_static =
            matches!(&reach.root.kind, RootKind::Static { name } if said.contains(name.as_str()));
        if !held_types.contains(name)
            || from_said_static
            || said.contains(dwarf::short(name).as_str())
        {
            continue;
        }
        let (Some(was), Some(now)) = (old.types.get(name), new.types.get(name)) else {
            continue;
        };
        let changes = dwarf::changes(was, now);
        // A shared name's first descriptions may be of two of its types.
        if changes.is_empty() || old.describes_alike(new, name) {
            continue;
        }
        refusals.push(Refusal::TypeLayout {
            ty: dwarf::short(name),
            path: name.to_owned(),
            changes,
            held: held(old, &reach, records),
            location: None,
        });
    }
    refusals
}

/// `refusals` without those of an enum's variants (the debug info describes each variant as a
/// type of its own, `Speed::Fast`) when the enum itself is refused: the enum's refusal says it.
fn without_variants(refusals: Vec<Refusal>) -> Vec<Refusal> {
    let enums: Vec<String> = refusals
        .iter()
        .filter_map(|refusal| match refusal {
            Refusal::TypeLayout { path, .. } => Some(format!("{path}::")),
            _ => None,
        })
        .collect();
    refusals
        .into_iter()
        .filter(|refusal| {
            !matches!(refusal, Refusal::TypeLayout { path, .. }
                if enums.iter().any(|prefix| path.starts_with(prefix.as_str())))
        })
        .collect()
}

/// How the running program reaches a type, as the user wrote it where possible:
/// ``hot fn `describe(shop: &Shop)` -> `shop: &Arc<Mutex<Vec<Item>>>` -> `Item` ``. Types of the
/// crate on the way are named with the field the path leaves them by (`Machine.spare`).
fn held(graph: &TypeGraph, reach: &Reach<'_>, records: &BTreeMap<String, Record>) -> String {
    let written = |function: &str| {
        records.get(function).map_or_else(
            || format!("{function}(..)"),
            |r| {
                let signature = r.signature.strip_prefix("fn ").unwrap_or(&r.signature);
                match signature.rfind(") -> ") {
                    Some(end) => signature[..=end].to_owned(),
                    None => signature.to_owned(),
                }
            },
        )
    };
    let ty = dwarf::short(&reach.root.ty);
    let mut parts = match &reach.root.kind {
        RootKind::Parameter {
            function,
            hot: true,
            name,
        } => vec![
            format!("hot fn `{}`", written(function)),
            format!("`{name}: {ty}`"),
        ],
        RootKind::Parameter { function, name, .. } => vec![
            format!("fn `{}`", dwarf::short(function)),
            format!("`{name}: {ty}`"),
        ],
        RootKind::Return {
            function,
            hot: true,
        } => vec![
            format!("the value hot fn `{}` returns", written(function)),
            format!("`{ty}`"),
        ],
        RootKind::Return { function, .. } => vec![
            format!("the value fn `{}` returns", dwarf::short(function)),
            format!("`{ty}`"),
        ],
        RootKind::Static { name } => vec![static_shown(name), format!("`{ty}`")],
    };
    let mut current = reach.root.ty.as_str();
    for (how, next) in &reach.steps {
        if graph.defines(current)
            && let Some(last) = parts.last_mut()
        {
            *last = format!("`{}.{how}`", dwarf::short(current));
        }
        if graph.defines(next) {
            parts.push(format!("`{}`", dwarf::short(next)));
        }
        current = next;
    }
    parts.join(" -> ")
}

/// A static as the user wrote it: `static `HITS``, and for the storage `thread_local!` makes
/// (`app::LOG::{constant#0}::{closure#0}::__RUST_STD_INTERNAL_VAL`) `thread-local `LOG``.
fn static_shown(name: &str) -> String {
    match name.split_once("::{constant") {
        Some((local, _)) => format!("thread-local `{}`", dwarf::short(local)),
        None => format!("static `{}`", dwarf::short(name)),
    }
}

/// A change of size and alignment as the user reads it: `24 -> 32 bytes`.
fn layout_change(old: (u64, u64), new: (u64, u64)) -> String {
    if old.0 == new.0 {
        format!("alignment {} -> {} bytes", old.1, new.1)
    } else {
        format!("{} -> {} bytes", old.0, new.0)
    }
}

/// The gate's verdict on a patch whose records and symbols are compatible.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// Hot functions to swap: those the host has a slot for.
    pub(crate) functions: Vec<String>,
}

/// Compares a patch with the running host, whose code has the hot functions `running_hot`
/// (when known).
///
/// # Errors
///
/// Every [`Refusal`], in the order of the hot functions' paths.
pub(crate) fn check(
    host: &HostImage,
    patch: &PatchImage,
    running_hot: Option<&BTreeSet<String>>,
) -> Result<Accepted, Vec<Refusal>> {
    let mut refusals = Vec::new();
    let functions = record_refusals(host, patch, &mut refusals);
    refusals.extend(persisted_refusals(host, patch));
    match &host.types {
        Ok(old) => {
            // What the records already refused is not said twice: the type of a persisted
            // static. A type that a hot signature spells is told with what the debug info says
            // of it (fields, where it is defined) rather than by its size alone.
            let said: HashSet<&str> = refusals
                .iter()
                .filter_map(|refusal| match refusal {
                    Refusal::PersistLayout { name, .. } => Some(name.as_str()),
                    _ => None,
                })
                .collect();
            let found = layout_refusals(old, &patch.types, &host.held, &host.records, &said);
            let detailed: HashSet<String> = found
                .iter()
                .filter_map(|refusal| match refusal {
                    Refusal::TypeLayout { ty, .. } => Some(ty.clone()),
                    _ => None,
                })
                .collect();
            refusals.retain(|r| !matches!(r, Refusal::Layout { ty, .. } if detailed.contains(ty)));
            refusals.extend(without_variants(found));
        }
        Err(reason) => refusals.push(Refusal::Unchecked {
            reason: format!("the running program: {reason}"),
        }),
    }
    let mut missing: Vec<&String> = patch
        .undefined
        .iter()
        .filter(|name| !host.exports.contains(*name))
        .collect();
    if !missing.is_empty() {
        let (needed, origin) = &patch.needed;
        let exports = library_exports(needed, origin.as_deref());
        missing.retain(|name| !exports.contains(*name));
    }
    let missing: Vec<String> = missing
        .into_iter()
        .map(|name| crate::symbols::demangle(name))
        .collect();
    if !missing.is_empty() {
        refusals.push(Refusal::Unresolved { symbols: missing });
    }
    // A hot function of the running code that the patch lacks was renamed or removed: the
    // program still calls it, and would never run the code that replaced it.
    refusals.extend(
        running_hot
            .into_iter()
            .flatten()
            .filter(|path| !patch.records.contains_key(*path))
            .map(|path| Refusal::Gone {
                function: path.clone(),
            }),
    );
    if refusals.is_empty() {
        Ok(Accepted { functions })
    } else {
        Err(refusals)
    }
}

/// Compares the hot-function records: refuses changed signatures and changed layouts of the
/// types they spell (into `refusals`); returns the hot functions the program can switch.
fn record_refusals(
    host: &HostImage,
    patch: &PatchImage,
    refusals: &mut Vec<Refusal>,
) -> Vec<String> {
    let mut functions = Vec::new();
    for (path, new) in &patch.records {
        let Some(old) = host.records.get(path) else {
            // A new hot function: its slot lives in the patch, so patched code calls it, and the
            // running program has nothing to swap.
            continue;
        };
        // Compared without argument names: renaming one changes nothing at run time.
        if old.shape != new.shape {
            refusals.push(Refusal::Signature {
                function: path.clone(),
                old: old.signature.clone(),
                new: new.signature.clone(),
                location: new.location.clone(),
            });
            continue;
        }
        let before = refusals.len();
        for (ty, size, align) in &new.types {
            let Some((_, old_size, old_align)) = old.types.iter().find(|(t, _, _)| t == ty) else {
                continue;
            };
            if (old_size, old_align) != (size, align) {
                refusals.push(Refusal::Layout {
                    signature: new.signature.clone(),
                    ty: ty.clone(),
                    old: (*old_size, *old_align),
                    new: (*size, *align),
                    location: new.location.clone(),
                });
            }
        }
        if refusals.len() == before {
            functions.push(path.clone());
        }
    }
    functions
}

/// The `persist!` statics whose size or alignment changed behind the same written type.
fn persisted_refusals(host: &HostImage, patch: &PatchImage) -> Vec<Refusal> {
    patch
        .layouts
        .iter()
        .filter_map(|(path, new)| {
            let old = host.layouts.get(path).filter(|old| *old != new)?;
            let name = path
                .rsplit_once('$')
                .map_or(path.as_str(), |(name, _)| name);
            Some(Refusal::PersistLayout {
                name: name.to_owned(),
                old: *old,
                new: *new,
            })
        })
        .collect()
}

/// The changed functions of a patch, split by whether the running program runs them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LiveChanges {
    /// The changed functions (display names) that hot functions reach, if known.
    pub(crate) live: Option<Vec<String>>,
    /// The changed functions that no hot function reaches: they take effect only after a
    /// restart.
    pub(crate) restart_only: Vec<String>,
}

impl LiveChanges {
    /// Whether every change is of the restart-only kind: then there is nothing to send.
    pub(crate) fn only_restart(&self) -> bool {
        !self.restart_only.is_empty() && self.live.as_ref().is_some_and(Vec::is_empty)
    }
}

/// Splits the changed functions (display names, if known) by whether a hot function reaches
/// them in `code` (the indexes of every crate of the patch, if known); with `running_hot`, a
/// hot function the running program has (see [`code::unreachable`]).
pub(crate) fn live_changes(
    changed: Option<Vec<String>>,
    code: Option<&[&code::CodeIndex]>,
    crates: &code::Crates,
    running_hot: Option<&BTreeSet<String>>,
) -> LiveChanges {
    let (changed, code) = match (changed, code) {
        (Some(changed), Some(code)) => (changed, code),
        (live, _) => {
            return LiveChanges {
                live,
                restart_only: Vec::new(),
            };
        }
    };
    let restart_only = code::unreachable(code, &changed, crates, running_hot);
    let live = changed
        .into_iter()
        .filter(|name| !restart_only.contains(name))
        .collect();
    LiveChanges {
        live: Some(live),
        restart_only,
    }
}

/// The largest shared library the gate reads, in bytes: a name that leads elsewhere (a device,
/// a huge file) is not read.
const MAX_LIBRARY: u64 = 512 << 20;

/// Names that the shared libraries `needed` (the `DT_NEEDED` names and the `DT_RUNPATH` or
/// `DT_RPATH` directories of the file that needs them, whose own directory is `origin`) export,
/// found where the dynamic loader looks; a library that cannot be found or read adds nothing.
/// A name with a `/` is a path, not a library name: it is not read.
fn library_exports(needed: &Needed, origin: Option<&Path>) -> HashSet<String> {
    let mut exports = HashSet::new();
    for name in needed.names.iter().filter(|name| !name.contains('/')) {
        let Some(path) = find_library(name, &needed.search, origin) else {
            continue;
        };
        let small =
            std::fs::metadata(&path).is_ok_and(|meta| meta.is_file() && meta.len() <= MAX_LIBRARY);
        if small
            && let Ok(data) = std::fs::read(&path)
            && let Ok(file) = object::File::parse(&*data)
        {
            exports.extend(defined_dynamic_symbols(&file));
        }
    }
    exports
}

/// Names of the defined dynamic symbols of `file`. Not `is_definition`, which leaves out
/// indirect functions (`STT_GNU_IFUNC`: glibc's `memcmp`, `memset`, ...).
fn defined_dynamic_symbols(file: &object::File<'_>) -> HashSet<String> {
    file.dynamic_symbols()
        .filter(|s| !s.is_undefined())
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .collect()
}

/// The shared libraries an ELF file needs: names and where to look first.
#[derive(Debug, Default)]
struct Needed {
    /// The `DT_NEEDED` entries.
    names: Vec<String>,
    /// The directories of `DT_RUNPATH` (or, without it, `DT_RPATH`), as written.
    search: Vec<String>,
}

/// The libraries an ELF file needs; none for anything else.
fn needed_libraries(data: &[u8]) -> Needed {
    let Ok(file) = ElfFile64::<object::Endianness>::parse(data) else {
        return Needed::default();
    };
    let endian = file.endian();
    let header = file.elf_header();
    let Ok(sections) = header.sections(endian, data) else {
        return Needed::default();
    };
    let Ok(Some((entries, link))) = sections.dynamic(endian, data) else {
        return Needed::default();
    };
    let Ok(strings) = sections.strings(endian, data, link) else {
        return Needed::default();
    };
    let values = |tag: u32| -> Vec<String> {
        entries
            .iter()
            .filter(|entry| entry.d_tag.get(endian) == u64::from(tag))
            .filter_map(|entry| {
                let offset = u32::try_from(entry.d_val.get(endian)).ok()?;
                let value = strings.get(offset).ok()?;
                Some(String::from_utf8_lossy(value).into_owned())
            })
            .collect()
    };
    let mut search = values(object::elf::DT_RUNPATH);
    if search.is_empty() {
        search = values(object::elf::DT_RPATH);
    }
    Needed {
        names: values(object::elf::DT_NEEDED),
        search: search
            .iter()
            .flat_map(|list| list.split(':').map(str::to_owned))
            .filter(|dir| !dir.is_empty())
            .collect(),
    }
}

/// Where the dynamic loader would find `name`: the `search` directories (`$ORIGIN` replaced by
/// `origin`), then the standard directories of x86_64 Linux.
fn find_library(name: &str, search: &[String], origin: Option<&Path>) -> Option<PathBuf> {
    let origin = origin.map(|o| o.display().to_string()).unwrap_or_default();
    let standard = [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
    ];
    search
        .iter()
        .map(|dir| {
            dir.replace("${ORIGIN}", &origin)
                .replace("$ORIGIN", &origin)
        })
        .chain(standard.iter().map(|dir| (*dir).to_owned()))
        .map(|dir| Path::new(&dir).join(name))
        .find(|path| path.exists())
}

/// Compiles `seed.rs` in `dir` (crate `seed`, edition 2024) with rustc and `args` into
/// `output`, and returns its bytes: the real files the gate's readers are tested and fuzzed on.
#[cfg(test)]
pub(crate) fn compile_seed(dir: &Path, args: &[&str], output: &str) -> Vec<u8> {
    let status = std::process::Command::new("rustc")
        .args(["--crate-name=seed", "--edition=2024"])
        .args(args)
        .args(["-o", output, "seed.rs"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "rustc failed to build the seed `{output}`"
    );
    std::fs::read(dir.join(output)).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test's stand-in for the macro's shape: the signature without `name: ` parts.
    fn shape_of(sig: &str) -> String {
        let (head, rest) = sig.split_once('(').unwrap();
        let (args, tail) = rest.split_once(')').unwrap();
        let types: Vec<&str> = args
            .split(", ")
            .filter(|a| !a.is_empty())
            .map(|a| a.split_once(": ").map_or(a, |(_, t)| t))
            .collect();
        let unsafety = if head.starts_with("unsafe") {
            "unsafe "
        } else {
            ""
        };
        format!("{unsafety}fn({}){tail}", types.join(", "))
    }

    #[test]
    fn an_enums_variants_are_not_refused_besides_it() {
        let refusal = |path: &str| Refusal::TypeLayout {
            ty: path.rsplit("::").next().unwrap().to_owned(),
            path: path.to_owned(),
            changes: vec!["size 2 -> 40 bytes".to_owned()],
            held: String::new(),
            location: None,
        };
        let kept = without_variants(vec![
            refusal("cart::Speed"),
            refusal("cart::Speed::Fast"),
            refusal("cart::Speed::Slow"),
            refusal("cart::Speedometer"),
        ]);
        let paths: Vec<&str> = kept
            .iter()
            .map(|r| match r {
                Refusal::TypeLayout { path, .. } => path.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(paths, ["cart::Speed", "cart::Speedometer"]);
    }

    #[test]
    fn a_renamed_argument_is_no_change() {
        let old = record("fn update(state: &mut State)", &[]);
        let new = record("fn update(world: &mut State)", &[]);
        let accepted = check(&host(vec![old], &[]), &patch(vec![new], &[]), None).unwrap();
        assert_eq!(accepted.functions, ["app::update"]);
    }

    fn record(sig: &str, types: &[(&str, u64, u64)]) -> Record {
        Record {
            path: "app::update".into(),
            signature: sig.into(),
            shape: shape_of(sig),
            location: "src/main.rs:12".into(),
            types: types
                .iter()
                .map(|(t, s, a)| ((*t).to_owned(), *s, *a))
                .collect(),
        }
    }

    #[test]
    fn a_thread_locals_storage_is_named_as_written() {
        assert_eq!(
            static_shown("app::LOG::{constant#0}::{closure#0}::__RUST_STD_INTERNAL_VAL"),
            "thread-local `LOG`"
        );
        assert_eq!(static_shown("app::HITS"), "static `HITS`");
    }

    fn host(records: Vec<Record>, exports: &[&str]) -> HostImage {
        HostImage {
            records: records.into_iter().map(|r| (r.path.clone(), r)).collect(),
            layouts: BTreeMap::new(),
            exports: exports.iter().map(|s| (*s).to_owned()).collect(),
            types: Ok(TypeGraph::default()),
            held: HashSet::new(),
        }
    }

    fn patch(records: Vec<Record>, undefined: &[&str]) -> PatchImage {
        PatchImage {
            records: records.into_iter().map(|r| (r.path.clone(), r)).collect(),
            layouts: BTreeMap::new(),
            undefined: undefined.iter().map(|s| (*s).to_owned()).collect(),
            // `sin` is libm's.
            needed: (
                Needed {
                    names: vec!["libm.so.6".to_owned()],
                    search: Vec::new(),
                },
                None,
            ),
            types: TypeGraph::default(),
            digest: 0,
        }
    }

    #[test]
    fn a_needed_library_named_by_path_is_never_read() {
        let needed = Needed {
            names: vec!["/dev/zero".into(), "../../etc/passwd".into()],
            search: Vec::new(),
        };
        assert!(library_exports(&needed, None).is_empty());
        let libc = Needed {
            names: vec!["libc.so.6".into()],
            search: vec!["$ORIGIN/nowhere".into()],
        };
        assert!(library_exports(&libc, Some(Path::new("/tmp"))).contains("memcpy"));
    }

    #[test]
    fn symbols_of_the_patchs_own_libraries_resolve() {
        let accepted = check(&host(vec![], &[]), &patch(vec![], &["sin"]), None);
        assert!(accepted.is_ok(), "{accepted:?}");
    }

    const SIG: &str = "fn update(state: &mut State)";

    #[test]
    fn unchanged_records_and_resolved_symbols_are_accepted() {
        let r = record(SIG, &[("&mut State", 8, 8), ("State", 24, 8)]);
        let accepted = check(
            &host(vec![r.clone()], &["memcpy"]),
            &patch(vec![r], &["memcpy"]),
            None,
        );
        assert_eq!(accepted.unwrap().functions, ["app::update"]);
    }

    #[test]
    fn a_changed_signature_is_refused_with_both_signatures() {
        let old = record(SIG, &[]);
        let new = record("fn update(state: &mut State, dt: f32)", &[]);
        let refusals = check(&host(vec![old], &[]), &patch(vec![new], &[]), None).unwrap_err();
        assert_eq!(
            refusals[0].to_string(),
            "hot fn `app::update` changed its signature at src/main.rs:12\n             \
             was `fn update(state: &mut State)`\n             \
             now `fn update(state: &mut State, dt: f32)`"
        );
    }

    #[test]
    fn a_changed_layout_is_refused_with_both_sizes() {
        let old = record(SIG, &[("&mut State", 8, 8), ("State", 24, 8)]);
        let new = record(SIG, &[("&mut State", 8, 8), ("State", 32, 8)]);
        let refusals = check(&host(vec![old], &[]), &patch(vec![new], &[]), None).unwrap_err();
        assert_eq!(
            refusals[0].to_string(),
            "`State` changed layout (24 -> 32 bytes) at src/main.rs:12\n             \
             hot fn `fn update(state: &mut State)` would get it with the old layout from the \
             running program"
        );
    }

    /// A symbol the host does not export may come from a library the patch itself needs
    /// (read only then); without that library it is refused.
    #[test]
    fn the_patchs_own_libraries_resolve_what_the_host_lacks() {
        let mut image = patch(vec![], &["memcpy"]);
        image.needed.0.names = vec!["libc.so.6".to_owned()];
        assert!(check(&host(vec![], &[]), &image, None).is_ok());
        image.needed.0.names.clear();
        let refusals = check(&host(vec![], &[]), &image, None).unwrap_err();
        assert!(
            matches!(&refusals[..], [Refusal::Unresolved { symbols }] if symbols == &["memcpy"]),
            "{refusals:?}"
        );
    }

    #[test]
    fn missing_symbols_are_named_demangled() {
        let refusals = check(
            &host(vec![], &["memcpy"]),
            &patch(vec![], &["memcpy", "_ZN3std7missing17h0123456789abcdefE"]),
            None,
        )
        .unwrap_err();
        assert_eq!(
            refusals,
            [Refusal::Unresolved {
                symbols: vec!["std::missing".into()]
            }]
        );
    }

    #[test]
    fn a_persisted_static_whose_layout_changed_is_refused() {
        let mut old = host(vec![], &[]);
        old.layouts.insert("app::WORLD$0123".into(), (24, 8));
        let mut new = patch(vec![], &[]);
        new.layouts.insert("app::WORLD$0123".into(), (32, 8));
        new.layouts.insert("app::OTHER$4567".into(), (8, 8));
        let refusals = check(&old, &new, None).unwrap_err();
        assert_eq!(
            refusals[0].to_string(),
            "persisted static `app::WORLD` changed layout (24 -> 32 bytes)\n             \
             the running program's value has the old layout; rename the static to start it \
             fresh instead"
        );
        assert_eq!(refusals.len(), 1);
    }

    #[test]
    fn a_hot_function_the_patch_lacks_is_gone() {
        let running = BTreeSet::from(["app::update".to_owned(), "app::draw".to_owned()]);
        let refusals = check(
            &host(vec![record(SIG, &[])], &[]),
            &patch(vec![record(SIG, &[])], &[]),
            Some(&running),
        )
        .unwrap_err();
        assert_eq!(
            refusals,
            [Refusal::Gone {
                function: "app::draw".into()
            }]
        );
    }

    #[test]
    fn changes_no_hot_function_reaches_are_split_off() {
        let unknown = live_changes(
            Some(vec!["a".into()]),
            None,
            &code::Crates::bin("app"),
            None,
        );
        assert_eq!(unknown.live, Some(vec!["a".to_owned()]));
        assert!(!unknown.only_restart());
    }

    #[test]
    fn new_hot_functions_are_not_swapped() {
        let accepted = check(
            &host(vec![], &[]),
            &patch(vec![record(SIG, &[])], &[]),
            None,
        )
        .unwrap();
        assert!(accepted.functions.is_empty());
    }

    /// The crate of the seed patch: rustc is given `seed.rs` in its working directory.
    const SEED: CrateId<'static> = CrateId {
        name: "seed",
        source: "seed.rs",
    };

    /// A small shared object with a hot-function record, an undefined symbol, and full debug
    /// info for a hot function's body whose parameter holds a struct, compiled by rustc, as the
    /// seed of the fuzz tests.
    fn seed_patch() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let record = "hotswap-record 1\nfn seed::f\nsig fn f(x: &mut State)\nshape fn(&mut State)\n\
                      at src/main.rs:3\n\
                      type &mut State 8 8\ntype State 24 8\n";
        std::fs::write(
            dir.path().join("seed.rs"),
            format!(
                "#[unsafe(export_name = \"__hotswap_record$seed::f\")]\n\
                 pub static RECORD: [u8; {}] = *b{record:?};\n\
                 unsafe extern \"C\" {{ fn seed_absent() -> u32; }}\n\
                 pub struct Item {{ pub name: String, pub price: u64 }}\n\
                 pub struct State {{ pub items: Vec<Item>, pub mode: Mode }}\n\
                 pub enum Mode {{ Off, On(u32) }}\n\
                 #[unsafe(export_name = \"__hotswap_impl$seed::f\")]\n\
                 pub fn f(x: &mut State) -> usize {{ x.items.len() }}\n\
                 #[unsafe(no_mangle)]\n\
                 pub extern \"C\" fn seed_call() -> u32 {{ unsafe {{ seed_absent() }} }}\n",
                record.len()
            ),
        )
        .unwrap();
        compile_seed(
            dir.path(),
            &[
                "--crate-type=cdylib",
                "-Cdebuginfo=2",
                "-Clink-arg=-Wl,-z,undefs",
            ],
            "libseed.so",
        )
    }

    /// The seed patch, built once per test binary.
    fn seed() -> &'static [u8] {
        static SEED_PATCH: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        SEED_PATCH.get_or_init(seed_patch)
    }

    /// A patch's check reads each split unit's types once: a later patch that holds the same
    /// unit (as an incremental build reuses it: the same `.dwo` file, hard linked, and the same
    /// `DW_AT_dwo_id`) takes them from the cache; a unit whose file was written anew is read
    /// again, as is any unit for another set of wanted types.
    #[test]
    fn split_units_read_before_are_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("seed.rs"),
            "pub struct Kept { pub a: u64, pub b: u32 }\n\
             #[unsafe(no_mangle)]\n\
             pub extern \"C\" fn seed_kept(kept: &Kept) -> u64 { kept.a }\n",
        )
        .unwrap();
        let data = compile_seed(
            dir.path(),
            &[
                "--crate-type=cdylib",
                "-Cdebuginfo=2",
                "-Csplit-debuginfo=unpacked",
            ],
            // The `.dwo` files are named after the output, and read as the crate's when their
            // name starts with it, as rustc names a patch's (`<crate>-<extra>.<unit>...`).
            "seed.so",
        );
        let file = object::File::parse(&*data).unwrap();
        // A name no unit describes: every unit is read, none is skipped as redundant.
        let wanted: HashSet<String> = ["seed::Kept", "seed::NotInThisTestOnly"]
            .map(str::to_owned)
            .into();
        let read =
            |wanted: &HashSet<String>| TypeGraph::read(&file, &[SEED], Some(wanted), Roots::Hot);
        let first = read(&wanted).unwrap();
        assert_eq!(first.types["seed::Kept"].size, Some(16));
        // Each `.dwo` file garbled in place, its size and modification time kept: the same file
        // to the cache, unreadable to a reader.
        let split = dwarf::dwo_files(dir.path());
        assert!(!split.is_empty(), "the seed has no split debug info");
        let garble = |modified: Option<std::time::SystemTime>| {
            for path in &split {
                let was = std::fs::metadata(path).unwrap();
                std::fs::write(path, vec![0xa5; usize::try_from(was.len()).unwrap()]).unwrap();
                let file = std::fs::File::options().write(true).open(path).unwrap();
                file.set_modified(modified.unwrap_or(was.modified().unwrap()))
                    .unwrap();
            }
        };
        garble(None);
        let again = read(&wanted).unwrap();
        assert_eq!(again.types, first.types);
        let other: HashSet<String> = ["seed::Kept".to_owned()].into();
        let error = read(&other).unwrap_err();
        assert!(error.to_string().contains(".dwo"), "{error}");
        // Written anew (another modification time): read again.
        garble(Some(std::time::SystemTime::UNIX_EPOCH));
        let error = read(&wanted).unwrap_err();
        assert!(error.to_string().contains(".dwo"), "{error}");
    }

    #[test]
    fn the_seed_patch_is_read_whole() {
        let image = PatchImage::parse(seed(), &[SEED], None).unwrap();
        assert_eq!(
            image.records["seed::f"].types[1],
            ("State".to_owned(), 24, 8)
        );
        assert!(
            image.undefined.contains(&"seed_absent".to_owned()),
            "{:?}",
            image.undefined
        );
        let item = &image.types.types["seed::Item"];
        assert_eq!((item.size, item.align), (Some(32), Some(8)));
        let reached: Vec<&str> = image
            .types
            .reachable()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| image.types.defines(name))
            .collect();
        for ty in ["seed::State", "seed::Item", "seed::Mode"] {
            assert!(reached.contains(&ty), "{ty} not reached: {reached:?}");
        }
    }

    /// The byte ranges of the seed's debug sections, where the fuzz test mutates.
    fn debug_ranges(data: &[u8]) -> Vec<std::ops::Range<usize>> {
        use object::ObjectSection;
        let file = object::File::parse(data).unwrap();
        file.sections()
            .filter(|s| s.name().is_ok_and(|n| n.starts_with(".debug_")))
            .filter_map(|s| {
                let (start, len) = s.file_range()?;
                Some(usize::try_from(start).ok()?..usize::try_from(start + len).ok()?)
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// A truncated or corrupted patch file is an error or a (wrong) reading, never a panic.
        #[test]
        fn malformed_patch_files_never_panic(
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            flips in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                0..32,
            ),
        ) {
            let seed = seed();
            let mut data = seed[..cut.index(seed.len() + 1).min(seed.len())].to_vec();
            if !data.is_empty() {
                for (at, byte) in &flips {
                    let len = data.len();
                    data[at.index(len)] = *byte;
                }
            }
            let _ = PatchImage::parse(&data, &[SEED], None);
        }

        /// Corrupted debug info in a patch is an error that says the types cannot be checked,
        /// or a reading; never a panic.
        #[test]
        fn malformed_debug_info_never_panics(
            flips in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                1..16,
            ),
        ) {
            let seed = seed();
            let ranges = debug_ranges(seed);
            let bytes: Vec<usize> = ranges.iter().flat_map(Clone::clone).collect();
            let mut data = seed.to_vec();
            for (at, byte) in &flips {
                data[bytes[at.index(bytes.len())]] = *byte;
            }
            if let Err(err) = PatchImage::parse(&data, &[SEED], None) {
                let text = format!("{err:#}");
                proptest::prop_assert!(!text.is_empty());
            }
        }
    }
}
