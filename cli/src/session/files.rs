//! The session's view of the sources: the content snapshot that tells a real change from
//! event churn, and the paths in messages.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::check::source::ChangedFn;
use crate::project::Project;
use crate::watch::{FileKind, Filter};

use super::Session;

/// The snapshot's mark for a file that was deleted (no content hashes to it in practice).
const GONE: u64 = u64::MAX;

/// The function items changed since the baselines (see [`Session::changed_fns`]), being found.
pub(super) type ChangedFns = std::thread::JoinHandle<Option<Vec<(PathBuf, ChangedFn)>>>;

/// The content of every watched file at one moment: its hash, and a Rust file's text.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    hashes: HashMap<PathBuf, u64>,
    texts: HashMap<PathBuf, String>,
}

impl Snapshot {
    /// Reads every file watched for `project` (as the session's filter sees them).
    pub(super) fn take(project: &Project) -> Snapshot {
        let filter = Filter::new(
            &project.target_dir,
            &project.workspace_root,
            &project.local_package_dirs,
        );
        let mut files = Vec::new();
        collect_all(project, &filter, &mut files);
        let mut snapshot = Snapshot::default();
        for file in files {
            // Read once: the hash, and the text of a Rust file.
            let bytes = std::fs::read(&file).unwrap_or_default();
            let hash = hash_of(&bytes);
            if is_rust(&file)
                && let Ok(text) = String::from_utf8(bytes)
            {
                snapshot.texts.insert(file.clone(), text);
            }
            snapshot.hashes.insert(file, hash);
        }
        snapshot
    }
}

/// The session's view of some files before a build read them: their snapshot hashes and texts,
/// and whether they had changed since the baselines. Restored when the build is superseded, so
/// that the build that replaces it sees their changes as this one did.
#[derive(Debug)]
pub(super) struct Mark(Vec<MarkedFile>);

/// One file of a [`Mark`].
#[derive(Debug)]
struct MarkedFile {
    path: PathBuf,
    hash: Option<u64>,
    text: Option<String>,
    since_base: bool,
    base_text: Option<String>,
}

impl Mark {
    /// The marked files.
    pub(super) fn paths(&self) -> Vec<PathBuf> {
        self.0.iter().map(|file| file.path.clone()).collect()
    }
}

impl Session {
    /// The session's view of `paths` now (see [`Mark`]).
    pub(super) fn mark(&self, paths: &[PathBuf]) -> Mark {
        Mark(
            paths
                .iter()
                .map(|path| MarkedFile {
                    path: path.clone(),
                    hash: self.snapshot.get(path).copied(),
                    text: self.texts.get(path).cloned(),
                    since_base: self.since_base.contains(path),
                    base_text: self.base_texts.get(path).cloned(),
                })
                .collect(),
        )
    }

    /// Puts the session's view of the files of `mark` back as it was then.
    pub(super) fn restore(&mut self, mark: Mark) {
        fn put<V>(map: &mut HashMap<PathBuf, V>, path: &Path, value: Option<V>) {
            match value {
                Some(value) => map.insert(path.to_path_buf(), value),
                None => map.remove(path),
            };
        }
        for file in mark.0 {
            put(&mut self.snapshot, &file.path, file.hash);
            put(&mut self.texts, &file.path, file.text);
            put(&mut self.base_texts, &file.path, file.base_text);
            if !file.since_base {
                self.since_base.remove(&file.path);
            }
        }
    }

    /// Records the content hash of every watched file, before a build reads them.
    pub(super) fn snapshot_sources(&mut self) {
        self.use_snapshot(Snapshot::take(&self.project));
    }

    /// Takes `snapshot` (of this session's project) as the session's view of the sources.
    pub(super) fn use_snapshot(&mut self, snapshot: Snapshot) {
        self.snapshot.extend(snapshot.hashes);
        self.texts.extend(snapshot.texts);
    }

    /// Whether every one of `paths` (changed since the snapshot) is a Rust file whose tokens
    /// are those it had: only comments, blank lines or formatting changed, so the compiled code
    /// is the same but for line numbers. Takes their new text into the snapshot.
    pub(super) fn only_layout_changed(&mut self, paths: &[PathBuf]) -> bool {
        let mut same = !paths.is_empty();
        for path in paths {
            let new = std::fs::read_to_string(path).ok();
            let old = match &new {
                Some(text) if is_rust(path) => self.texts.insert(path.clone(), text.clone()),
                _ => self.texts.remove(path),
            };
            same &= matches!((&old, new), (Some(old), Some(new)) if same_tokens(old, &new));
            self.keep_base_text(path, old);
        }
        same
    }

    /// Remembers `old`, the text `path` had before its first change since the baselines were
    /// built (`None`: no text, a file that is not Rust or did not exist).
    fn keep_base_text(&mut self, path: &Path, old: Option<String>) {
        if self.since_base.insert(path.to_path_buf())
            && let Some(old) = old
        {
            self.base_texts.insert(path.to_path_buf(), old);
        }
    }

    /// Takes the current texts as those the baselines were built from.
    pub(super) fn rebase_texts(&mut self) {
        self.since_base.clear();
        self.base_texts.clear();
    }

    /// The function items changed since the baselines were built, with their files, when only
    /// function items of Rust files changed; `None` when something else did (another item, a
    /// file that is not Rust, one that appeared or went), which only a build with every function
    /// compiled can judge.
    ///
    /// Started on a thread of its own when a build starts, from the texts it compiles (parsing
    /// both texts of a file with syn takes milliseconds), and waited for once the build is done.
    pub(super) fn changed_fns(&self) -> ChangedFns {
        let texts: Option<Vec<(PathBuf, String, String)>> = self
            .since_base
            .iter()
            .map(|path| {
                let old = self.base_texts.get(path)?;
                let new = self.texts.get(path)?;
                Some((path.clone(), old.clone(), new.clone()))
            })
            .collect();
        std::thread::spawn(move || {
            let mut changed = Vec::new();
            for (path, old, new) in texts? {
                let functions = crate::check::source::changed_fns(&old, &new)?;
                changed.extend(functions.into_iter().map(|f| (path.clone(), f)));
            }
            Some(changed)
        })
    }

    /// Every file under the watched directories that the filter counts.
    pub(super) fn collect_all(&self, files: &mut Vec<PathBuf>) {
        collect_all(&self.project, &self.filter, files);
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
                let old = self.texts.remove(&path);
                self.keep_base_text(&path, old);
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

/// Every file of `project`'s local packages and workspace that `filter` watches, sorted.
fn collect_all(project: &Project, filter: &Filter, files: &mut Vec<PathBuf>) {
    for dir in &project.local_package_dirs {
        collect_watched(dir, filter, files);
    }
    collect_watched(&project.workspace_root, filter, files);
    files.sort();
    files.dedup();
}

/// Whether `path` is a Rust source file.
fn is_rust(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "rs")
}

/// Whether `old` and `new` are the same Rust tokens (comments and whitespace aside; doc comments
/// are tokens). Text that does not tokenize counts as different.
pub(super) fn same_tokens(old: &str, new: &str) -> bool {
    use std::str::FromStr;
    match (
        proc_macro2::TokenStream::from_str(old),
        proc_macro2::TokenStream::from_str(new),
    ) {
        (Ok(old), Ok(new)) => tokens(old) == tokens(new),
        _ => false,
    }
}

/// Rust's operators of more than one character, longest first.
const OPERATORS: &[&str] = &[
    "<<=", ">>=", "...", "..=", "::", "->", "=>", "==", "!=", "<=", ">=", "&&", "||", "+=", "-=",
    "*=", "/=", "%=", "^=", "&=", "|=", "<<", ">>", "..",
];

/// The tokens of `stream` as text, punctuation glued into operators as Rust reads them, so that
/// `->&'a` and `-> &'a` give the same tokens while `&&` and `& &` do not.
fn tokens(stream: proc_macro2::TokenStream) -> Vec<String> {
    use proc_macro2::{Delimiter, Spacing, TokenTree};
    let mut out = Vec::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut Vec<String>| {
        let mut rest = run.as_str();
        while !rest.is_empty() {
            let len = OPERATORS
                .iter()
                .find(|op| rest.starts_with(**op))
                .map_or_else(
                    || rest.chars().next().map_or(1, char::len_utf8),
                    |op| op.len(),
                );
            out.push(rest[..len].to_owned());
            rest = &rest[len..];
        }
        run.clear();
    };
    for tree in stream {
        match tree {
            TokenTree::Punct(punct) => {
                run.push(punct.as_char());
                if punct.spacing() == Spacing::Alone {
                    flush(&mut run, &mut out);
                }
            }
            TokenTree::Group(group) => {
                flush(&mut run, &mut out);
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                out.push(open.to_owned());
                out.extend(tokens(group.stream()));
                out.push(close.to_owned());
            }
            other => {
                flush(&mut run, &mut out);
                out.push(other.to_string());
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A hash of the file's content; a missing file hashes as empty.
pub(super) fn content_hash(path: &Path) -> u64 {
    hash_of(&std::fs::read(path).unwrap_or_default())
}

/// The hash [`content_hash`] gives a file with content `bytes`.
fn hash_of(bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
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

#[cfg(test)]
mod tests {
    use super::same_tokens;

    #[test]
    fn comments_and_layout_are_no_change_but_tokens_are() {
        let original = "/// Doc.\nfn alpha() -> &'static str {\n    \"alpha-one\"\n}\n";
        assert!(same_tokens(
            original,
            "// A note.\n\n/// Doc.\nfn alpha()->&'static str{ \"alpha-one\" }"
        ));
        assert!(!same_tokens(original, &original.replace("one", "two")));
        assert!(!same_tokens(original, &original.replace("Doc.", "Docs.")));
        assert!(!same_tokens("a && b", "a & &b"));
        assert!(
            !same_tokens("fn f() {", "fn f() {}"),
            "text that does not tokenize"
        );
    }
}
