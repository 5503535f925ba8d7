//! Watching the local packages' sources.
//!
//! Directories are watched, never single files: editors replace files on save. Events are
//! filtered by an allow-list and the packages' `.gitignore` files, so editor swap, lock and backup
//! files, and build output, trigger nothing. Reads (including the tool's own) are not events.
//! When to build is decided by the [`scheduler`].

pub(crate) mod scheduler;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::{EventKind, RecursiveMode, Watcher};

/// How often `--poll` looks at the files.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Files that may have changed, as one watcher event gives them.
#[derive(Debug)]
pub(crate) struct FileEvent {
    /// The files.
    pub(crate) paths: Vec<PathBuf>,
    /// Whether they were closed after writing (a complete write; inotify's `IN_CLOSE_WRITE`).
    pub(crate) written: bool,
    /// When the watcher received it: the settle period of a speculative build is measured
    /// from there, not from when the session got round to it (later on a busy machine).
    pub(crate) at: std::time::Instant,
}

/// What a changed file means for the running program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// Rust source (or a file the crate includes): may be patched.
    Source,
    /// `Cargo.toml`, `Cargo.lock`, `build.rs`, `.cargo/config.toml`: the host must be rebuilt.
    Build,
}

/// Which changes count: the allow-list, the target directory, `.gitignore`d paths.
#[derive(Debug)]
pub(crate) struct Filter {
    target_dir: PathBuf,
    gitignore: Gitignore,
    /// Files the last build read besides `*.rs` (dep-info: `include_str!`, ...).
    extra_sources: Vec<PathBuf>,
}

impl Filter {
    /// A filter honouring the `.gitignore` files at the roots of `package_dirs` and `workspace_root`.
    pub(crate) fn new(target_dir: &Path, workspace_root: &Path, package_dirs: &[PathBuf]) -> Self {
        let mut builder = GitignoreBuilder::new(workspace_root);
        for dir in std::iter::once(workspace_root).chain(package_dirs.iter().map(PathBuf::as_path))
        {
            let file = dir.join(".gitignore");
            if file.is_file() {
                // A malformed line is skipped by the builder; the rest still applies.
                let _ = builder.add(file);
            }
        }
        Filter {
            target_dir: target_dir.to_path_buf(),
            gitignore: builder.build().unwrap_or_else(|_| Gitignore::empty()),
            extra_sources: Vec::new(),
        }
    }

    /// Also counts these files (from the last build's dep-info) as sources.
    pub(crate) fn set_extra_sources(&mut self, sources: Vec<PathBuf>) {
        self.extra_sources = sources;
    }

    /// Also counts these files as sources, besides those counted already.
    pub(crate) fn add_extra_sources(&mut self, sources: &[PathBuf]) {
        for source in sources {
            if !self.extra_sources.contains(source) {
                self.extra_sources.push(source.clone());
            }
        }
    }

    /// Classifies a path, or `None` if changes to it are ignored.
    pub(crate) fn classify(&self, path: &Path) -> Option<FileKind> {
        let kind = classify(path, &self.target_dir).or_else(|| {
            self.extra_sources
                .iter()
                .any(|s| s == path)
                .then_some(FileKind::Source)
        })?;
        let ignored = path.starts_with(self.gitignore.path())
            && self
                .gitignore
                .matched_path_or_any_parents(path, false)
                .is_ignore();
        (!ignored).then_some(kind)
    }
}

/// Classifies a path by the allow-list alone, or `None` if changes to it are ignored.
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
    watcher: Box<dyn Watcher + Send>,
    /// Directories watched recursively.
    pub(crate) recursive: Vec<PathBuf>,
    /// Directories watched on their own.
    flat: Vec<PathBuf>,
}

impl SourceWatcher {
    /// Also watches the directories of `files` that are not watched yet (non-recursively).
    pub(crate) fn watch_files(&mut self, files: &[PathBuf]) {
        for dir in files.iter().filter_map(|f| f.parent()) {
            let covered = self.recursive.iter().any(|r| dir.starts_with(r))
                || self.flat.iter().any(|f| f == dir);
            if !covered && self.watcher.watch(dir, RecursiveMode::NonRecursive).is_ok() {
                self.flat.push(dir.to_path_buf());
            }
        }
    }
}

/// Watches each package's `src/` recursively and its root (manifest, `build.rs`), the workspace
/// root (`Cargo.lock`) and `.cargo/` non-recursively; sends the paths of every event that may
/// change a file (not reads), and of files closed after writing. With `poll`, compares the files every 200 ms instead of asking
/// the kernel (for file systems where inotify does not work, or when its limit is reached).
///
/// # Errors
///
/// When the watcher cannot be created or a directory cannot be watched (the message names it,
/// with the fix for the inotify watch limit).
pub(crate) fn watch(
    package_dirs: &[PathBuf],
    workspace_root: &Path,
    poll: bool,
    send: impl Fn(Result<FileEvent, String>) + Send + 'static,
) -> anyhow::Result<SourceWatcher> {
    use notify::event::{AccessKind, AccessMode};
    let handler = move |result: notify::Result<notify::Event>| match result {
        Ok(event) => match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => send(Ok(FileEvent {
                paths: event.paths,
                written: true,
                at: std::time::Instant::now(),
            })),
            EventKind::Access(_) => {}
            _ => send(Ok(FileEvent {
                paths: event.paths,
                written: false,
                at: std::time::Instant::now(),
            })),
        },
        Err(err) => send(Err(err.to_string())),
    };
    let mut watcher: Box<dyn Watcher + Send> = if poll {
        let config = notify::Config::default()
            .with_poll_interval(POLL_INTERVAL)
            .with_compare_contents(true);
        Box::new(notify::PollWatcher::new(handler, config).context("cannot start the file poller")?)
    } else {
        Box::new(notify::recommended_watcher(handler).context("cannot start the file watcher")?)
    };
    let mut recursive = Vec::new();
    let mut flat = vec![workspace_root.to_path_buf(), workspace_root.join(".cargo")];
    for dir in package_dirs {
        recursive.push(dir.join("src"));
        flat.push(dir.clone());
        flat.push(dir.join(".cargo"));
    }
    flat.sort();
    flat.dedup();
    recursive.retain(|d| d.is_dir());
    flat.retain(|d| d.is_dir());
    for (dirs, mode) in [
        (&recursive, RecursiveMode::Recursive),
        (&flat, RecursiveMode::NonRecursive),
    ] {
        for dir in dirs {
            watcher
                .watch(dir, mode)
                .map_err(|err| watch_error(dir, err))?;
        }
    }
    Ok(SourceWatcher {
        watcher,
        recursive,
        flat,
    })
}

/// The error for a directory that cannot be watched, with the fix where the limit is the cause.
fn watch_error(dir: &Path, err: notify::Error) -> anyhow::Error {
    let limit = matches!(err.kind, notify::ErrorKind::MaxFilesWatch)
        || matches!(&err.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENOSPC));
    if limit {
        anyhow::anyhow!(
            "cannot watch `{}`: the system's limit of inotify watches is reached\nhelp: raise it \
             with `sudo sysctl fs.inotify.max_user_watches=524288`, or pass `--poll` to compare \
             the files periodically instead",
            dir.display()
        )
    } else {
        anyhow::Error::new(err).context(format!("cannot watch `{}`", dir.display()))
    }
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

    #[test]
    fn gitignored_paths_and_extra_sources() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".gitignore"), "/generated/\n*.gen.rs\n").unwrap();
        let mut filter = Filter::new(&root.join("target"), root, &[root.to_path_buf()]);
        assert_eq!(
            filter.classify(&root.join("src/main.rs")),
            Some(FileKind::Source)
        );
        assert_eq!(filter.classify(&root.join("src/x.gen.rs")), None);
        assert_eq!(filter.classify(&root.join("generated/mod.rs")), None);
        assert_eq!(filter.classify(&root.join("src/page.html")), None);
        filter.set_extra_sources(vec![root.join("src/page.html")]);
        assert_eq!(
            filter.classify(&root.join("src/page.html")),
            Some(FileKind::Source)
        );
    }
}
