//! The project: which package and bin target to run, chosen with `cargo metadata` the way
//! `cargo run` chooses, and the local packages whose sources are watched.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use cargo_metadata::{Metadata, MetadataCommand, Package, Target};

use crate::build::host::BuildOptions;

/// The runtime's package name on the registry (its library is named `hotswap`).
pub(crate) const RUNTIME_PACKAGE: &str = "cargo-hotswap-runtime";
/// The runtime's macros' package name.
pub(crate) const MACROS_PACKAGE: &str = "cargo-hotswap-macros";

/// The selected bin target and everything the session derives from the project layout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Project {
    /// `cargo` to invoke (`$CARGO` when run as a cargo subcommand).
    pub(crate) cargo: PathBuf,
    /// The package's manifest.
    pub(crate) manifest_path: PathBuf,
    /// The package's name.
    pub(crate) package: String,
    /// The bin target's name (`--bin`).
    pub(crate) bin: String,
    /// The bin target's crate name (`-` replaced by `_`).
    pub(crate) crate_name: String,
    /// The workspace's target directory (`--target-dir`, `CARGO_TARGET_DIR`, `build.target-dir`).
    pub(crate) target_dir: PathBuf,
    /// The workspace root.
    pub(crate) workspace_root: PathBuf,
    /// Root directories of the local (path and workspace) packages the bin depends on, itself
    /// included.
    pub(crate) local_package_dirs: Vec<PathBuf>,
    /// The library targets of those packages (the bin's own package's included): what a patch
    /// may rebuild besides the bin.
    pub(crate) local_libs: Vec<LocalLib>,
    /// Root directories of the local packages that a build script runs: build-dependencies of
    /// the program's packages, and what they depend on. Their edits change what build scripts
    /// output, which only a new host build runs.
    pub(crate) build_script_dirs: Vec<PathBuf>,
    /// About how many units cargo builds for the bin (each package once, each build script
    /// twice: compiled and run), for the progress bar.
    pub(crate) units_estimate: u64,
    /// Whether the bin's package depends on the runtime crate (`#[hot]`, its agent).
    pub(crate) has_runtime: bool,
    /// For a package without the runtime, the agent library the host links (see
    /// [`crate::build::agent`]), once built.
    pub(crate) agent_library: Option<PathBuf>,
}

/// The library target of a local package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct LocalLib {
    /// The package's name, `shop-core`.
    pub(crate) package: String,
    /// The library's crate name, `shop_core` (or whatever `[lib] name` says).
    pub(crate) crate_name: String,
    /// The package's root directory.
    pub(crate) dir: PathBuf,
}

/// Which program, as cargo selects it (`-p`, `--bin`, `--manifest-path`, `--target-dir`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection {
    /// The package with the bin target, when the workspace has several.
    pub(crate) package: Option<String>,
    /// The bin target, when the package has several.
    pub(crate) bin: Option<String>,
    /// The manifest; the current directory's project by default.
    pub(crate) manifest_path: Option<PathBuf>,
    /// The target directory; cargo's by default.
    pub(crate) target_dir: Option<PathBuf>,
}

impl Project {
    /// Reads the project with `cargo metadata` and selects the bin target as `cargo run` would.
    ///
    /// # Errors
    ///
    /// When `cargo metadata` fails, or no or several packages or bins match.
    pub(crate) fn load(args: &Selection) -> anyhow::Result<Self> {
        let cargo = std::env::var_os("CARGO")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("cargo"));
        let mut command = MetadataCommand::new();
        command.cargo_path(&cargo);
        for (key, value) in crate::build::capture::rustc_wrapper_env()? {
            command.env(key, value);
        }
        if let Some(path) = &args.manifest_path {
            command.manifest_path(path);
        }
        let metadata = command
            .exec()
            .context("cannot read the project with `cargo metadata`")?;
        let package = select_package(&metadata, args)?;
        let target = select_bin(package, args.bin.as_deref())?;
        let has_runtime = package
            .dependencies
            .iter()
            .any(|dep| dep.name == RUNTIME_PACKAGE);
        let target_dir = match &args.target_dir {
            Some(dir) => std::path::absolute(dir)
                .with_context(|| format!("cannot resolve `{}`", dir.display()))?,
            None => metadata.target_directory.clone().into_std_path_buf(),
        };
        let locals = local_packages(&metadata, package);
        Ok(Project {
            cargo,
            manifest_path: package.manifest_path.clone().into_std_path_buf(),
            package: package.name.to_string(),
            bin: target.name.clone(),
            crate_name: target.name.replace('-', "_"),
            target_dir,
            workspace_root: metadata.workspace_root.clone().into_std_path_buf(),
            local_package_dirs: locals.iter().map(|(dir, _)| dir.clone()).collect(),
            local_libs: locals.into_iter().filter_map(|(_, lib)| lib).collect(),
            build_script_dirs: build_script_dirs(&metadata, package),
            units_estimate: units_estimate(&metadata, package),
            has_runtime,
            agent_library: None,
        })
    }

    /// The project that the last `cargo hotswap run` with the same `args` and `options` in the
    /// same directory (and the same `CARGO*` and `RUSTUP_TOOLCHAIN` variables) ran, as
    /// [`Project::remember`] recorded it; `None` when there is no record or it cannot be read.
    /// With it, whether it is [`Cached::Unchanged`]: every file `cargo metadata` read for it
    /// that could change the project (the local packages' manifests, the workspace's manifest
    /// and lockfile, cargo's configuration and toolchain files above the current directory and
    /// the workspace, and in `CARGO_HOME`) has the size and modification time it had then.
    pub(crate) fn cached(args: &Selection, options: &BuildOptions) -> Option<Cached> {
        let text = std::fs::read(cache_path(args, options)?).ok()?;
        let record: Record = serde_json::from_slice(&text).ok()?;
        let unchanged = record.inputs == stamps(&record.project);
        Some(if unchanged {
            Cached::Unchanged(record.project)
        } else {
            Cached::Maybe(record.project)
        })
    }

    /// Records the project for [`Project::cached`], in a private file of the user's runtime
    /// directory, as read by a `cargo metadata` started at `read_at`: a file modified since
    /// then counts as changed at the next start, which then reads the project again. Best
    /// effort: a record that cannot be written only costs the next start its head start.
    pub(crate) fn remember(&self, args: &Selection, options: &BuildOptions, read_at: SystemTime) {
        let mut inputs = stamps(self);
        for (_, stamp) in &mut inputs {
            let modified = stamp.map(|(_, secs, nanos)| {
                UNIX_EPOCH
                    + Duration::new(
                        secs.max(0).unsigned_abs(),
                        nanos.clamp(0, 999_999_999) as u32,
                    )
            });
            // Read before or after the change: not known, so never equal to what is found.
            if modified.is_some_and(|modified| modified >= read_at) {
                *stamp = Some((u64::MAX, 0, 0));
            }
        }
        let record = Record {
            inputs,
            project: self.clone(),
        };
        let (Some(path), Ok(text)) = (cache_path(args, options), serde_json::to_vec(&record))
        else {
            return;
        };
        let _ = crate::build::capture::write_private(&path, &text);
    }

    /// Removes the record [`Project::remember`] wrote for `args` and `options`: the next start
    /// reads the project with `cargo metadata`.
    pub(crate) fn forget(args: &Selection, options: &BuildOptions) {
        if let Some(path) = cache_path(args, options) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Whether `self` and `other` run the same bin of the same package the same way: equal but
    /// for the unit estimate and the agent library (chosen after the project is read).
    pub(crate) fn same_program(&self, other: &Project) -> bool {
        let normal = |project: &Project| Project {
            units_estimate: 0,
            agent_library: None,
            ..project.clone()
        };
        normal(self) == normal(other)
    }

    /// The package's root directory.
    pub(crate) fn package_dir(&self) -> &Path {
        self.manifest_path
            .parent()
            .expect("a manifest path has a parent")
    }
}

/// A project as the last session's start read it.
#[derive(Debug)]
pub(crate) enum Cached {
    /// None of the files it was read from changed since: it is the project `cargo metadata`
    /// would read now.
    Unchanged(Project),
    /// Some of them changed: only `cargo metadata` can say whether the project did.
    Maybe(Project),
}

/// What [`Project::remember`] writes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Record {
    project: Project,
    /// [`stamps`] of the project when it was read.
    inputs: Vec<(PathBuf, Option<Stamp>)>,
}

/// A file's size in bytes and modification time (seconds and nanoseconds since the epoch).
type Stamp = (u64, i64, i64);

/// The [`Stamp`] of every file and directory whose change may change what `cargo metadata`
/// reads for `project` (`None` for one that does not exist):
///
/// * every `Cargo.toml` in the local packages' directories and above them, in the
///   workspace's and above it, and above the current directory (a package that becomes a
///   workspace member, a dependency inherited from another workspace), and the workspace's
///   `Cargo.lock`;
/// * the directories whose entries decide targets and members: each local package's
///   directory, its `src` and `src/bin` (cargo finds `main.rs`, `lib.rs` and `src/bin/*.rs`
///   there), the directory holding it when that is in the workspace (a member glob such as
///   `crates/*`), and the workspace's;
/// * every cargo configuration and toolchain file that applies, above the current directory
///   and above the workspace, and in `CARGO_HOME`.
///
/// A directory's modification time changes whenever an entry is added, removed or renamed in
/// it, so these may count changes that change nothing: the start then confirms the project with
/// `cargo metadata`.
fn stamps(project: &Project) -> Vec<(PathBuf, Option<Stamp>)> {
    use std::os::unix::fs::MetadataExt;
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut files: Vec<PathBuf> = vec![
        project.manifest_path.clone(),
        project.workspace_root.clone(),
        project.workspace_root.join("Cargo.lock"),
    ];
    for dir in &project.local_package_dirs {
        files.extend([dir.clone(), dir.join("src"), dir.join("src/bin")]);
        // The directory holding a member, inside the workspace (outside, it is anyone's:
        // `/tmp`, `~/src`).
        files.extend(
            dir.parent()
                .filter(|parent| parent.starts_with(&project.workspace_root))
                .map(Path::to_path_buf),
        );
    }
    let above = project
        .local_package_dirs
        .iter()
        .flat_map(|dir| dir.ancestors())
        .chain(cwd.ancestors())
        .chain(project.workspace_root.ancestors());
    for dir in above {
        for name in [
            "Cargo.toml",
            ".cargo/config.toml",
            ".cargo/config",
            "rust-toolchain.toml",
            "rust-toolchain",
        ] {
            files.push(dir.join(name));
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    if let Some(home) = cargo_home {
        files.push(home.join("config.toml"));
        files.push(home.join("config"));
    }
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|file| {
            let stamp = std::fs::metadata(&file)
                .ok()
                .map(|meta| (meta.len(), meta.mtime(), meta.mtime_nsec()));
            (file, stamp)
        })
        .collect()
}

/// Where [`Project::remember`] records the project of `args` and `options` run from the
/// current directory: `<runtime dir>/start-<hash>.json`.
fn cache_path(args: &Selection, options: &BuildOptions) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    let mut variables: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
        .filter(|(name, _)| {
            name.to_str()
                .is_some_and(|name| name.starts_with("CARGO") || name == "RUSTUP_TOOLCHAIN")
        })
        .collect();
    variables.sort();
    let key = format!("{}\n{args:?}\n{options:?}\n{variables:?}", cwd.display());
    let hash = stable_hash(&[key.as_bytes()]);
    Some(
        crate::control::runtime_dir()
            .ok()?
            .join(format!("start-{hash:016x}.json")),
    )
}

/// The package named by `-p`, or the one the manifest path points to, or the workspace's only
/// package with a bin target.
fn select_package<'m>(metadata: &'m Metadata, args: &Selection) -> anyhow::Result<&'m Package> {
    let members = metadata.workspace_packages();
    if let Some(spec) = &args.package {
        return members
            .into_iter()
            .find(|p| p.name.as_str() == spec.as_str())
            .with_context(|| format!("package `{spec}` is not a member of the workspace"));
    }
    if let Some(root) = metadata.root_package() {
        return Ok(root);
    }
    let with_bins: Vec<_> = members
        .into_iter()
        .filter(|p| p.targets.iter().any(Target::is_bin))
        .collect();
    match with_bins.as_slice() {
        [one] => Ok(one),
        [] => bail!("a bin target must be available for `cargo hotswap run`"),
        many => bail!(
            "`cargo hotswap run` could not determine which package to run\nhelp: use the `-p` \
             flag to specify a package: {}",
            many.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The bin named by `--bin`, or the package's `default-run`, or its only bin.
fn select_bin<'p>(package: &'p Package, name: Option<&str>) -> anyhow::Result<&'p Target> {
    let bins: Vec<&Target> = package.targets.iter().filter(|t| t.is_bin()).collect();
    let wanted = name.or(package.default_run.as_deref());
    if let Some(wanted) = wanted {
        return bins
            .into_iter()
            .find(|t| t.name == wanted)
            .with_context(|| format!("no bin target named `{wanted}` in `{}`", package.name));
    }
    match bins.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "a bin target must be available for `cargo hotswap run`: package `{}` has none",
            package.name
        ),
        many => bail!(
            "`cargo hotswap run` could not determine which binary to run\nhelp: use the `--bin` \
             option to specify a binary, or the `default-run` manifest key\navailable binaries: {}",
            many.iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The packages `package` depends on, transitively (normal and build dependencies, as resolved),
/// counted as cargo's units: one each, two more for a build script.
fn units_estimate(metadata: &Metadata, package: &Package) -> u64 {
    if metadata.resolve.is_none() {
        return 1;
    }
    walk(metadata, vec![&package.id], |_| true)
        .iter()
        .map(|p| {
            let has_build_script = p.targets.iter().any(|t| t.is_custom_build());
            if has_build_script { 3 } else { 1 }
        })
        .sum()
}

/// Whether `package` is local (a path or workspace package: registry and git packages have a
/// source) and not the runtime, which is never patched, even when it is a path dependency.
fn is_local(package: &Package) -> bool {
    package.source.is_none() && ![RUNTIME_PACKAGE, MACROS_PACKAGE].contains(&package.name.as_str())
}

/// The root directory of `package` and of every local package it depends on through local
/// packages, each with its library target, if it has one.
fn local_packages(metadata: &Metadata, package: &Package) -> Vec<(PathBuf, Option<LocalLib>)> {
    walk(metadata, vec![&package.id], is_local)
        .into_iter()
        .filter(|pkg| is_local(pkg))
        .filter_map(|pkg| {
            let dir = pkg
                .manifest_path
                .parent()?
                .to_path_buf()
                .into_std_path_buf();
            let lib = pkg
                .targets
                .iter()
                .find(|t| t.is_lib() || t.is_rlib() || t.is_proc_macro())
                .map(|t| LocalLib {
                    package: pkg.name.to_string(),
                    crate_name: t.name.replace('-', "_"),
                    dir: dir.clone(),
                });
            Some((dir, lib))
        })
        .collect()
}

/// The root directories of the local packages that some build script of `package`'s
/// dependency graph runs: its build-dependencies (through any package of the graph), and
/// theirs, transitively.
fn build_script_dirs(metadata: &Metadata, package: &Package) -> Vec<PathBuf> {
    let Some(resolve) = &metadata.resolve else {
        return Vec::new();
    };
    let scripts: Vec<&cargo_metadata::PackageId> = walk(metadata, vec![&package.id], |_| true)
        .iter()
        .filter_map(|p| resolve.nodes.iter().find(|n| n.id == p.id))
        .flat_map(|node| &node.deps)
        .filter(|dep| {
            dep.dep_kinds
                .iter()
                .any(|k| k.kind == cargo_metadata::DependencyKind::Build)
        })
        .map(|dep| &dep.pkg)
        .collect();
    walk(metadata, scripts, |_| true)
        .into_iter()
        .filter(|p| p.source.is_none())
        .filter_map(|p| Some(p.manifest_path.parent()?.to_path_buf().into_std_path_buf()))
        .collect()
}

/// The packages reached from `roots` through the program's dependencies (see
/// [`program_deps`]), each once, roots included; the dependencies of a package are followed
/// only where `descend` says so.
fn walk<'m>(
    metadata: &'m Metadata,
    mut queue: Vec<&'m cargo_metadata::PackageId>,
    descend: impl Fn(&Package) -> bool,
) -> Vec<&'m Package> {
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    while let Some(id) = queue.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(package) = metadata.packages.iter().find(|p| &p.id == id) else {
            continue;
        };
        found.push(package);
        if !descend(package) {
            continue;
        }
        let node = metadata
            .resolve
            .as_ref()
            .and_then(|r| r.nodes.iter().find(|n| &n.id == id));
        if let Some(node) = node {
            queue.extend(program_deps(node));
        }
    }
    found
}

/// The packages `node` depends on as part of the program: normal and build dependencies, not
/// dev-dependencies.
fn program_deps(node: &cargo_metadata::Node) -> impl Iterator<Item = &cargo_metadata::PackageId> {
    node.deps
        .iter()
        .filter(|dep| {
            dep.dep_kinds
                .iter()
                .any(|k| k.kind != cargo_metadata::DependencyKind::Development)
        })
        .map(|dep| &dep.pkg)
}

/// A hash of `parts` that stays the same across Rust releases and runs (FNV-1a over the bytes,
/// each part ended by a zero byte), for names on disk: the work directory, the session lock.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = fnv::FnvHasher::default();
    for part in parts {
        hasher.write(part);
        hasher.write_u8(0);
    }
    hasher.finish()
}
