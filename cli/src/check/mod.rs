//! The compatibility gate (DESIGN §4): everything about a patch is checked on its files, with the
//! `object` crate, before it is sent to the host, because loading runs its initialisers.
//!
//! * hot-function records: a changed signature, or a changed size or alignment of a type a hot
//!   signature mentions, is refused;
//! * `persist!` statics: a changed size or alignment is refused (the host's value would be read
//!   with the new layout);
//! * undefined symbols: each must be exported by the host or by a library the host needs;
//! * code: which functions changed since the version running now, and which statics start fresh.

pub(crate) mod code;
pub(crate) mod records;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use object::read::elf::{ElfFile64, FileHeader};
use object::{Object, ObjectSymbol};

use self::records::Record;

/// Indentation of a status message's continuation lines (under the message, past the verb).
const CONTINUATION: &str = "\n             ";

/// What the gate knows about the running host, read once per host build.
#[derive(Debug)]
pub(crate) struct HostImage {
    /// The host's hot-function records.
    pub(crate) records: BTreeMap<String, Record>,
    /// Size and alignment of the host's `persist!` statics.
    pub(crate) layouts: BTreeMap<String, (u64, u64)>,
    /// Names the host and the libraries it needs export.
    exports: HashSet<String>,
}

impl HostImage {
    /// Reads the host executable at `exe` and the shared libraries it needs.
    ///
    /// # Errors
    ///
    /// When the executable cannot be read or parsed.
    pub(crate) fn read(exe: &Path) -> anyhow::Result<HostImage> {
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
        libraries.push("ld-linux-x86-64.so.2".to_owned());
        exports.extend(library_exports(&libraries));
        Ok(HostImage {
            records,
            layouts,
            exports,
        })
    }
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
    /// What the shared libraries the patch itself needs export (`libm` for `f64::sin`, say):
    /// the loader loads them with the patch. Filled by [`PatchImage::read`] only.
    pub(crate) library_exports: HashSet<String>,
}

impl PatchImage {
    /// Reads the patch at `path`. Never panics on a malformed file: it is an error.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, is not an object file, or holds malformed records.
    pub(crate) fn read(path: &Path) -> anyhow::Result<PatchImage> {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let mut image =
            Self::parse(&data).with_context(|| format!("malformed patch `{}`", path.display()))?;
        image.library_exports = library_exports(&needed_libraries(&data));
        Ok(image)
    }

    /// Parses a patch's bytes.
    ///
    /// # Errors
    ///
    /// When the bytes are not an object file or hold malformed records.
    pub(crate) fn parse(data: &[u8]) -> anyhow::Result<PatchImage> {
        let file = object::File::parse(data).context("not an object file")?;
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
            library_exports: HashSet::new(),
        })
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
        }
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

/// Compares a patch with the running host.
///
/// # Errors
///
/// Every [`Refusal`], in the order of the hot functions' paths.
pub(crate) fn check(host: &HostImage, patch: &PatchImage) -> Result<Accepted, Vec<Refusal>> {
    let mut refusals = Vec::new();
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
        let mut compatible = true;
        for (ty, size, align) in &new.types {
            let Some((_, old_size, old_align)) = old.types.iter().find(|(t, _, _)| t == ty) else {
                continue;
            };
            if (old_size, old_align) != (size, align) {
                compatible = false;
                refusals.push(Refusal::Layout {
                    signature: new.signature.clone(),
                    ty: ty.clone(),
                    old: (*old_size, *old_align),
                    new: (*size, *align),
                    location: new.location.clone(),
                });
            }
        }
        if compatible {
            functions.push(path.clone());
        }
    }
    for (path, new) in &patch.layouts {
        if let Some(old) = host.layouts.get(path)
            && old != new
        {
            let name = path
                .rsplit_once('$')
                .map_or(path.as_str(), |(name, _)| name);
            refusals.push(Refusal::PersistLayout {
                name: name.to_owned(),
                old: *old,
                new: *new,
            });
        }
    }
    let missing: Vec<String> = patch
        .undefined
        .iter()
        .filter(|name| !host.exports.contains(*name) && !patch.library_exports.contains(*name))
        .map(|name| format!("{:#}", rustc_demangle::demangle(name)))
        .collect();
    if !missing.is_empty() {
        refusals.push(Refusal::Unresolved { symbols: missing });
    }
    if refusals.is_empty() {
        Ok(Accepted { functions })
    } else {
        Err(refusals)
    }
}

/// Names that the shared libraries `names` (as in `DT_NEEDED`) export, found where the dynamic
/// loader looks; a library that cannot be found or read adds nothing.
fn library_exports(names: &[String]) -> HashSet<String> {
    let mut exports = HashSet::new();
    for name in names {
        let Some(path) = find_library(name) else {
            continue;
        };
        if let Ok(data) = std::fs::read(&path)
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

/// The `DT_NEEDED` entries of an ELF file; empty for anything else.
fn needed_libraries(data: &[u8]) -> Vec<String> {
    let Ok(file) = ElfFile64::<object::Endianness>::parse(data) else {
        return Vec::new();
    };
    let endian = file.endian();
    let header = file.elf_header();
    let Ok(sections) = header.sections(endian, data) else {
        return Vec::new();
    };
    let Ok(Some((entries, link))) = sections.dynamic(endian, data) else {
        return Vec::new();
    };
    let Ok(strings) = sections.strings(endian, data, link) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|entry| entry.d_tag.get(endian) == u64::from(object::elf::DT_NEEDED))
        .filter_map(|entry| {
            let offset = u32::try_from(entry.d_val.get(endian)).ok()?;
            let name = strings.get(offset).ok()?;
            Some(String::from_utf8_lossy(name).into_owned())
        })
        .collect()
}

/// Where the dynamic loader would find `name` (the standard directories of x86_64 Linux).
fn find_library(name: &str) -> Option<PathBuf> {
    [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
    ]
    .iter()
    .map(|dir| Path::new(dir).join(name))
    .find(|path| path.exists())
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
    fn a_renamed_argument_is_no_change() {
        let old = record("fn update(state: &mut State)", &[]);
        let new = record("fn update(world: &mut State)", &[]);
        let accepted = check(&host(vec![old], &[]), &patch(vec![new], &[])).unwrap();
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

    fn host(records: Vec<Record>, exports: &[&str]) -> HostImage {
        HostImage {
            records: records.into_iter().map(|r| (r.path.clone(), r)).collect(),
            layouts: BTreeMap::new(),
            exports: exports.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn patch(records: Vec<Record>, undefined: &[&str]) -> PatchImage {
        PatchImage {
            records: records.into_iter().map(|r| (r.path.clone(), r)).collect(),
            layouts: BTreeMap::new(),
            undefined: undefined.iter().map(|s| (*s).to_owned()).collect(),
            library_exports: HashSet::from(["sin".to_owned()]),
        }
    }

    #[test]
    fn symbols_of_the_patchs_own_libraries_resolve() {
        let accepted = check(&host(vec![], &[]), &patch(vec![], &["sin"]));
        assert!(accepted.is_ok(), "{accepted:?}");
    }

    const SIG: &str = "fn update(state: &mut State)";

    #[test]
    fn unchanged_records_and_resolved_symbols_are_accepted() {
        let r = record(SIG, &[("&mut State", 8, 8), ("State", 24, 8)]);
        let accepted = check(
            &host(vec![r.clone()], &["memcpy"]),
            &patch(vec![r], &["memcpy"]),
        );
        assert_eq!(accepted.unwrap().functions, ["app::update"]);
    }

    #[test]
    fn a_changed_signature_is_refused_with_both_signatures() {
        let old = record(SIG, &[]);
        let new = record("fn update(state: &mut State, dt: f32)", &[]);
        let refusals = check(&host(vec![old], &[]), &patch(vec![new], &[])).unwrap_err();
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
        let refusals = check(&host(vec![old], &[]), &patch(vec![new], &[])).unwrap_err();
        assert_eq!(
            refusals[0].to_string(),
            "`State` changed layout (24 -> 32 bytes) at src/main.rs:12\n             \
             hot fn `fn update(state: &mut State)` would get it with the old layout from the \
             running program"
        );
    }

    #[test]
    fn missing_symbols_are_named_demangled() {
        let refusals = check(
            &host(vec![], &["memcpy"]),
            &patch(vec![], &["memcpy", "_ZN3std7missing17h0123456789abcdefE"]),
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
        let refusals = check(&old, &new).unwrap_err();
        assert_eq!(
            refusals[0].to_string(),
            "persisted static `app::WORLD` changed layout (24 -> 32 bytes)\n             \
             the running program's value has the old layout; rename the static to start it \
             fresh instead"
        );
        assert_eq!(refusals.len(), 1);
    }

    #[test]
    fn new_hot_functions_are_not_swapped() {
        let accepted = check(&host(vec![], &[]), &patch(vec![record(SIG, &[])], &[])).unwrap();
        assert!(accepted.functions.is_empty());
    }

    /// A small shared object with a hot-function record and an undefined symbol, compiled by
    /// rustc, as the seed of the fuzz test.
    fn seed_patch() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("seed.rs");
        let record = "hotswap-record 1\nfn seed::f\nsig fn f(x: &mut State)\nshape fn(&mut State)\n\
                      at src/main.rs:3\n\
                      type &mut State 8 8\ntype State 24 8\n";
        std::fs::write(
            &source,
            format!(
                "#[unsafe(export_name = \"__hotswap_record$seed::f\")]\n\
                 pub static RECORD: [u8; {}] = *b{record:?};\n\
                 unsafe extern \"C\" {{ fn seed_absent() -> u32; }}\n\
                 #[unsafe(no_mangle)]\n\
                 pub extern \"C\" fn seed_call() -> u32 {{ unsafe {{ seed_absent() }} }}\n",
                record.len()
            ),
        )
        .unwrap();
        let out = dir.path().join("libseed.so");
        let status = std::process::Command::new("rustc")
            .args([
                "--crate-type=cdylib",
                "--edition=2024",
                "-Clink-arg=-Wl,-z,undefs",
                "-o",
            ])
            .arg(&out)
            .arg(&source)
            .status()
            .unwrap();
        assert!(status.success(), "rustc failed to build the seed patch");
        std::fs::read(out).unwrap()
    }

    #[test]
    fn the_seed_patch_is_read_whole() {
        let image = PatchImage::parse(&seed_patch()).unwrap();
        assert_eq!(
            image.records["seed::f"].types[1],
            ("State".to_owned(), 24, 8)
        );
        assert!(
            image.undefined.contains(&"seed_absent".to_owned()),
            "{:?}",
            image.undefined
        );
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
            static SEED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            let seed = SEED.get_or_init(seed_patch);
            let mut data = seed[..cut.index(seed.len() + 1).min(seed.len())].to_vec();
            if !data.is_empty() {
                for (at, byte) in &flips {
                    let len = data.len();
                    data[at.index(len)] = *byte;
                }
            }
            let _ = PatchImage::parse(&data);
        }
    }
}
