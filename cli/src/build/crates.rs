//! The local crates of the program: the library crates of the workspace members and path
//! dependencies that the bin links, found through the rustc commands the wrapper captured for
//! each (`target/hotswap/captures/<crate><extra-filename>.json`), and linked to each other by
//! their `--extern`s. A patch replays the ones an edit reaches as rlibs, in dependency order,
//! each against the new rlibs of the ones below it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::build::capture::Capture;

/// One local library crate as cargo compiled it for the host.
#[derive(Debug, Clone)]
pub(crate) struct LocalCrate {
    /// cargo's rustc command for it.
    pub(crate) capture: Capture,
    /// Its outputs' name, `leaf-1f2e3d4c5b6a7988` (see [`Capture::stem`]).
    pub(crate) stem: String,
    /// The local crates it depends on directly, as indexes into [`LocalCrates::crates`].
    pub(crate) deps: Vec<usize>,
    /// Its source files, from the dep-info cargo had rustc write (absolute).
    pub(crate) sources: Vec<PathBuf>,
}

impl LocalCrate {
    /// The crate's name, `leaf`.
    pub(crate) fn name(&self) -> &str {
        self.capture.crate_name()
    }

    /// The rlib cargo built, which the host links.
    pub(crate) fn cargo_rlib(&self) -> Option<PathBuf> {
        let out_dir = self.capture.option("--out-dir")?;
        Some(
            self.capture
                .cwd
                .join(out_dir)
                .join(format!("lib{}.rlib", self.stem)),
        )
    }
}

/// The local library crates the bin links, in dependency order (a crate after every crate it
/// depends on).
#[derive(Debug, Clone, Default)]
pub(crate) struct LocalCrates {
    /// The crates.
    pub(crate) crates: Vec<LocalCrate>,
}

/// The output name (`leaf-1f2e3d4c5b6a7988`) of a library file that an `--extern` names
/// (`/t/deps/libleaf-1f2e3d4c5b6a7988.rmeta`, `.rlib` or `.so`).
pub(crate) fn stem_of(path: &str) -> Option<&str> {
    let name = Path::new(path).file_name()?.to_str()?;
    let name = name.strip_prefix("lib")?;
    [".rlib", ".rmeta", ".so"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
}

impl LocalCrates {
    /// The local crates that `bin` links, transitively, among the captures in `dir`
    /// (`<stem>.json`: only the ones reached are read). A crate whose capture is missing or
    /// unreadable is left out (with the crates only it leads to).
    pub(crate) fn read(bin: &Capture, dir: &Path) -> LocalCrates {
        let mut found = LocalCrates::default();
        let mut index: HashMap<String, Option<usize>> = HashMap::new();
        for (_, path) in bin.externs() {
            if let Some(stem) = stem_of(path) {
                found.visit(stem, dir, &mut index);
            }
        }
        found
    }

    /// Adds the crate `stem` after the crates it depends on (depth first); returns its index, or
    /// `None` when it is not a local crate (no capture of it in `dir`).
    fn visit(
        &mut self,
        stem: &str,
        dir: &Path,
        index: &mut HashMap<String, Option<usize>>,
    ) -> Option<usize> {
        if let Some(known) = index.get(stem) {
            return *known;
        }
        // Registry crates have no capture; a cycle is impossible between crates, and the mark
        // also guards against a corrupt capture.
        index.insert(stem.to_owned(), None);
        let capture = Capture::read(&dir.join(format!("{stem}.json"))).ok()?;
        let deps = capture
            .externs()
            .into_iter()
            .filter_map(|(_, path)| stem_of(path))
            .filter_map(|dep| self.visit(dep, dir, index))
            .collect();
        let sources = capture
            .dep_info()
            .and_then(|d| read_dep_info(&d, &capture.cwd).ok())
            .unwrap_or_default();
        self.crates.push(LocalCrate {
            capture,
            stem: stem.to_owned(),
            deps,
            sources,
        });
        let at = self.crates.len() - 1;
        index.insert(stem.to_owned(), Some(at));
        Some(at)
    }

    /// The crates that depend on one of `changed` (indexes), transitively, with `changed`
    /// themselves: what must be rebuilt, in dependency order.
    pub(crate) fn dependents(&self, changed: &[usize]) -> Vec<usize> {
        let mut dirty = vec![false; self.crates.len()];
        // Dependency order: a crate's dependencies come before it, so one pass suffices.
        for (at, krate) in self.crates.iter().enumerate() {
            dirty[at] = changed.contains(&at) || krate.deps.iter().any(|d| dirty[*d]);
        }
        (0..self.crates.len()).filter(|at| dirty[*at]).collect()
    }
}

/// The rlibs that replace cargo's for the crates a patch rebuilds: stem -> rlib path.
pub(crate) type Replaced = BTreeMap<String, PathBuf>;

/// `args` (a captured rustc command, as a replay has it) with every `--extern` of a replaced
/// crate pointed at its new rlib, and every `-L dependency=` directory replaced by `view`,
/// which holds the same files but the replaced crates' (see [`make_view`]): rustc finds the
/// crates a dependency needs by searching those directories, and an old and a new build of one
/// crate side by side would be ambiguous to it.
pub(crate) fn rewire(args: &[String], replaced: &Replaced, view: &Path) -> Vec<String> {
    if replaced.is_empty() {
        return args.to_vec();
    }
    let mut out = Vec::with_capacity(args.len());
    let mut viewed = false;
    for (arg, spelled) in super::args::walk(args) {
        match arg {
            super::args::Arg::Option {
                name: "--extern",
                value,
            } => {
                let new = value.split_once('=').and_then(|(left, path)| {
                    let rlib = replaced.get(stem_of(path)?)?;
                    Some(format!("{left}={}", rlib.display()))
                });
                match new {
                    Some(new) => out.extend(["--extern".to_owned(), new]),
                    None => out.extend(spelled.iter().cloned()),
                }
            }
            super::args::Arg::Option { name: "-L", value } if value.starts_with("dependency=") => {
                // The view holds the files of every such directory: it is searched once.
                if !std::mem::replace(&mut viewed, true) {
                    out.extend(["-L".to_owned(), format!("dependency={}", view.display())]);
                }
            }
            _ => out.extend(spelled.iter().cloned()),
        }
    }
    out
}

/// Fills `view` with a symbolic link to every file of the `-L dependency=` directories of `args`
/// but the replaced crates' outputs, and one to each replaced rlib. A view made for the same
/// crates from directories that did not change since (their modification times: cargo adds
/// and removes files there, it does not rewrite them in place under the same name without a
/// new host build) is kept as it is.
///
/// # Errors
///
/// When a directory cannot be read or created, or a link cannot be made; the message names it.
pub(crate) fn make_view(args: &[String], replaced: &Replaced, view: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dirs: Vec<&str> = super::args::walk(args)
        .filter_map(|(arg, _)| match arg {
            super::args::Arg::Option { name: "-L", value } => value.strip_prefix("dependency="),
            _ => None,
        })
        .collect();
    let mut stamp = String::new();
    for dir in &dirs {
        let meta = std::fs::metadata(dir).with_context(|| format!("cannot read `{dir}`"))?;
        stamp.push_str(&format!("{dir} {} {}\n", meta.mtime(), meta.mtime_nsec()));
    }
    for (stem, rlib) in replaced {
        stamp.push_str(&format!("{stem} {}\n", rlib.display()));
    }
    let stamp_file = view.join(".hotswap-view");
    if std::fs::read_to_string(&stamp_file).is_ok_and(|old| old == stamp) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(view);
    std::fs::create_dir_all(view).with_context(|| format!("cannot create `{}`", view.display()))?;
    for dir in dirs {
        let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read `{dir}`"))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let replaced_output = name
                .to_str()
                .and_then(stem_of)
                .is_some_and(|stem| replaced.contains_key(stem));
            let link = view.join(&name);
            if replaced_output || link.exists() {
                continue;
            }
            std::os::unix::fs::symlink(entry.path(), &link)
                .with_context(|| format!("cannot link `{}`", link.display()))?;
        }
    }
    for rlib in replaced.values() {
        let link = view.join(rlib.file_name().unwrap_or_default());
        std::os::unix::fs::symlink(rlib, &link)
            .with_context(|| format!("cannot link `{}`", link.display()))?;
    }
    std::fs::write(&stamp_file, stamp)
        .with_context(|| format!("cannot write `{}`", stamp_file.display()))
}

/// Source files listed by a rustc dep-info file (Makefile syntax, `\ ` escapes a space), made
/// absolute against `cwd`, the directory rustc ran in.
///
/// # Errors
///
/// When the file cannot be read.
pub(crate) fn read_dep_info(path: &Path, cwd: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut sources = Vec::new();
    let first = text.lines().find(|l| !l.is_empty() && !l.starts_with('#'));
    if let Some((_, deps)) = first.and_then(|line| line.split_once(": ")) {
        let mut current = String::new();
        let mut chars = deps.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                ' ' => {
                    if !current.is_empty() {
                        sources.push(cwd.join(std::mem::take(&mut current)));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            sources.push(cwd.join(current));
        }
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::build::args::split as args;

    #[test]
    fn stems_of_library_files() {
        assert_eq!(stem_of("/t/deps/libleaf-1f2e.rmeta"), Some("leaf-1f2e"));
        assert_eq!(stem_of("/t/deps/libleaf-1f2e.rlib"), Some("leaf-1f2e"));
        assert_eq!(stem_of("/t/deps/libmacros-9a.so"), Some("macros-9a"));
        assert_eq!(stem_of("/t/deps/leaf.o"), None);
    }

    #[test]
    fn rewiring_points_replaced_externs_at_new_rlibs_and_searches_the_view() {
        let replaced: Replaced = [(
            "leaf-1".to_owned(),
            PathBuf::from("/w/crates/libleaf-1.rlib"),
        )]
        .into_iter()
        .collect();
        let out = rewire(
            &args(
                "--crate-name mid src/lib.rs -L dependency=/t/deps --extern leaf=/t/deps/libleaf-1.rmeta \
                 --extern noprelude:log=/t/deps/liblog-2.rmeta -Ldependency=/t/other",
            ),
            &replaced,
            Path::new("/w/view"),
        );
        assert_eq!(
            out,
            args(
                "--crate-name mid src/lib.rs -L dependency=/w/view --extern leaf=/w/crates/libleaf-1.rlib \
                 --extern noprelude:log=/t/deps/liblog-2.rmeta"
            )
        );
        assert_eq!(rewire(&out, &Replaced::new(), Path::new("/x")), out);
    }

    #[test]
    fn dep_info_lists_sources() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(
            b"/t/deps/app-1: src/main.rs /p/src/a\\ b.rs\n\nsrc/main.rs:\n# env-dep:X=1\n",
        )
        .unwrap();
        assert_eq!(
            read_dep_info(file.path(), Path::new("/p")).unwrap(),
            vec![
                PathBuf::from("/p/src/main.rs"),
                PathBuf::from("/p/src/a b.rs")
            ]
        );
    }
}
