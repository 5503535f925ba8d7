//! The session's view of the sources: the content snapshot that tells a real change from
//! event churn, and the paths in messages.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::watch::{FileKind, Filter};

use super::Session;

/// The snapshot's mark for a file that was deleted (no content hashes to it in practice).
const GONE: u64 = u64::MAX;

impl Session {
    /// Records the content hash of every watched file, before a build reads them.
    pub(super) fn snapshot_sources(&mut self) {
        let mut files = Vec::new();
        self.collect_all(&mut files);
        for file in files {
            let hash = content_hash(&file);
            self.snapshot.insert(file, hash);
        }
    }

    /// Every file under the watched directories that the filter counts.
    pub(super) fn collect_all(&self, files: &mut Vec<PathBuf>) {
        for dir in &self.project.local_package_dirs {
            collect_watched(dir, &self.filter, files);
        }
        collect_watched(&self.project.workspace_root, &self.filter, files);
        files.sort();
        files.dedup();
    }

    /// Takes the content of `Cargo.lock` files into the snapshot after a host build: cargo
    /// writes them itself (a new dependency gets locked), which must not trigger another build.
    pub(super) fn refresh_lockfiles(&mut self) {
        for (path, hash) in &mut self.snapshot {
            if path.file_name().is_some_and(|n| n == "Cargo.lock") {
                *hash = content_hash(path);
            }
        }
    }

    /// The paths among `paths` whose content differs from the snapshot, updating it.
    pub(super) fn changed(&mut self, paths: Vec<PathBuf>) -> Vec<(PathBuf, FileKind)> {
        let mut changed = Vec::new();
        for path in paths {
            let Some(kind) = self.filter.classify(&path) else {
                continue;
            };
            // A file that is gone is mid-save (vim and JetBrains rename the old one away
            // first) or deleted along with its `mod` line, which is itself a change: no build
            // now, but the snapshot remembers it is gone, so that the file's return, even with
            // its old content (`git stash pop`), is a change.
            if !path.exists() {
                self.snapshot.insert(path, GONE);
                continue;
            }
            let hash = content_hash(&path);
            if self.snapshot.insert(path.clone(), hash) != Some(hash) {
                changed.push((path, kind));
            }
        }
        changed
    }
}

/// Appends every allow-listed file under `dir` (not descending into the target directory).
pub(super) fn collect_watched(dir: &Path, filter: &Filter, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            // Not the target directory, `.git` or anything ignored (the filter says so for
            // any file below them).
            if filter.classify(&path.join("x.rs")).is_some() {
                collect_watched(&path, filter, out);
            }
        } else if filter.classify(&path).is_some() {
            out.push(path);
        }
    }
}

/// A hash of the file's content; a missing file hashes as empty.
pub(super) fn content_hash(path: &Path) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    std::fs::read(path).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

/// The files as a list for messages: `` `src/a.rs`, `src/b.rs` ``.
pub(super) fn changed_files(paths: &[PathBuf], base: &Path) -> String {
    paths
        .iter()
        .map(|p| format!("`{}`", relative(p, base)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `path` relative to `base` where it is inside it, for messages.
pub(super) fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}
