//! Watching the local packages' sources with `notify` and a debouncer (DESIGN §6).
//!
//! Directories are watched, never single files: editors replace files on save. Events are
//! filtered by an allow-list, so editor swap, lock and backup files trigger nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

/// Quiet period after the last event before a batch is delivered.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// What a changed file means for the running program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// Rust source: may be patched.
    Source,
    /// `Cargo.toml`, `Cargo.lock`, `build.rs`, `.cargo/config.toml`: the host must be rebuilt.
    Build,
}

/// Classifies a path by the allow-list, or `None` if changes to it are ignored.
pub(crate) fn classify(path: &Path, target_dir: &Path) -> Option<FileKind> {
    if path.starts_with(target_dir) || path.components().any(|c| c.as_os_str() == ".git") {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    // Emacs lock links (`.#x.rs`) and backups (`x.rs~`).
    if name.starts_with(".#") || name.ends_with('~') {
        return None;
    }
    if matches!(name, "Cargo.toml" | "Cargo.lock" | "build.rs") {
        return Some(FileKind::Build);
    }
    let parent_is_cargo = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|p| p == ".cargo");
    if parent_is_cargo && matches!(name, "config.toml" | "config") {
        return Some(FileKind::Build);
    }
    (path.extension()? == "rs").then_some(FileKind::Source)
}

/// A running watcher; dropping it stops watching.
pub(crate) struct SourceWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    /// Directories watched recursively.
    pub(crate) recursive: Vec<PathBuf>,
}

/// Watches each package's `src/` recursively and its root (manifest, `build.rs`), the workspace
/// root (`Cargo.lock`) and `.cargo/` non-recursively; sends each debounced batch of paths.
///
/// # Errors
///
/// When the watcher cannot be created or a directory cannot be watched (the message names it and
/// mentions the inotify watch limit).
pub(crate) fn watch(
    package_dirs: &[PathBuf],
    workspace_root: &Path,
    send: impl Fn(Result<Vec<PathBuf>, String>) + Send + 'static,
) -> anyhow::Result<SourceWatcher> {
    let mut debouncer =
        new_debouncer(
            DEBOUNCE,
            None,
            move |result: DebounceEventResult| match result {
                Ok(events) => {
                    let mut paths: Vec<PathBuf> = events
                        .into_iter()
                        .flat_map(|event| event.event.paths)
                        .collect();
                    paths.sort();
                    paths.dedup();
                    send(Ok(paths));
                }
                Err(errors) => send(Err(errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "))),
            },
        )
        .context("cannot start the file watcher")?;
    let mut recursive = Vec::new();
    let mut flat = vec![workspace_root.to_path_buf(), workspace_root.join(".cargo")];
    for dir in package_dirs {
        recursive.push(dir.join("src"));
        flat.push(dir.clone());
        flat.push(dir.join(".cargo"));
    }
    flat.sort();
    flat.dedup();
    for (dirs, mode) in [
        (&recursive, RecursiveMode::Recursive),
        (&flat, RecursiveMode::NonRecursive),
    ] {
        for dir in dirs.iter().filter(|d| d.is_dir()) {
            debouncer.watch(dir, mode).with_context(|| {
                format!(
                    "cannot watch `{}`\nhelp: if the system's limit of inotify watches is reached, \
                     raise it: `sudo sysctl fs.inotify.max_user_watches=524288`",
                    dir.display()
                )
            })?;
        }
    }
    Ok(SourceWatcher {
        _debouncer: debouncer,
        recursive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_files_are_ignored_and_sources_kept() {
        let target = Path::new("/p/target");
        let kind = |p: &str| classify(Path::new(p), target);
        assert_eq!(kind("/p/src/main.rs"), Some(FileKind::Source));
        assert_eq!(kind("/p/Cargo.toml"), Some(FileKind::Build));
        assert_eq!(kind("/p/Cargo.lock"), Some(FileKind::Build));
        assert_eq!(kind("/p/build.rs"), Some(FileKind::Build));
        assert_eq!(kind("/p/.cargo/config.toml"), Some(FileKind::Build));
        for ignored in [
            "/p/src/4913",
            "/p/src/main.rs~",
            "/p/src/.main.rs.swp",
            "/p/src/.#main.rs",
            "/p/src/main.rs___jb_tmp___",
            "/p/src/main.rs___jb_old___",
            "/p/src/main.rs.bck",
            "/p/target/debug/build/x/out/gen.rs",
            "/p/.git/index",
        ] {
            assert_eq!(kind(ignored), None, "{ignored}");
        }
    }
}
