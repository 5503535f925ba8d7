//! Where a type of the crate is defined in its sources, for the gate's messages: the debug info
//! gives the file and line of functions and statics, but not of types.

use std::path::{Path, PathBuf};

/// How many source files the search reads at most (a crate's `src` tree, not a vendored tree).
const MAX_FILES: usize = 4096;

/// The `file:line` (relative to `base`) of the definition of the type `path`
/// (`shop::model::Item`, `shop::Shape::Circle`) among the `.rs` files under `dir`: the line that
/// declares `struct`, `enum` or `union` with its name, in the file whose module path matches
/// best. A variant is found through its enum. `None` when no file declares it.
pub(crate) fn definition(path: &str, dir: &Path, base: &Path) -> Option<String> {
    let segments = segments(path);
    let files = rust_files(dir);
    // The type itself, else (for an enum's variant) its enum.
    for take in [segments.len(), segments.len().saturating_sub(1)] {
        let Some((name, modules)) = segments[..take].split_last() else {
            continue;
        };
        let mut found: Vec<(usize, &PathBuf, usize)> = Vec::new();
        for file in &files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            if let Some(line) = declaring_line(&text, name) {
                let score = module_score(file, dir, modules.get(1..).unwrap_or_default());
                found.push((score, file, line));
            }
        }
        if let Some((_, file, line)) = found.into_iter().max_by_key(|(score, ..)| *score) {
            let shown = file.strip_prefix(base).unwrap_or(file);
            return Some(format!("{}:{line}", shown.display()));
        }
    }
    None
}

/// The path's segments without generic arguments: `a::B<c::D>::E` -> `a`, `B`, `E`.
fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ':' if depth == 0 && chars.peek() == Some(&':') => {
                chars.next();
                out.push(std::mem::take(&mut current));
            }
            c if depth == 0 => current.push(c),
            _ => {}
        }
    }
    out.push(current);
    out
}

/// The 1-based line declaring `struct name`, `enum name` or `union name`, if any.
fn declaring_line(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let mut words = line
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty());
            let trimmed = line.trim_start();
            !trimmed.starts_with("//")
                && std::iter::from_fn(|| words.next())
                    .collect::<Vec<_>>()
                    .windows(2)
                    .any(|pair| matches!(pair[0], "struct" | "enum" | "union") && pair[1] == name)
        })
        .map(|index| index + 1)
}

/// How many of `modules` (the path's module segments below the crate) the file's path holds.
fn module_score(file: &Path, dir: &Path, modules: &[String]) -> usize {
    let relative = file.strip_prefix(dir).unwrap_or(file);
    let parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    modules.iter().filter(|m| parts.contains(m)).count()
}

/// The `.rs` files under `dir`, sorted, at most [`MAX_FILES`].
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && out.len() < MAX_FILES {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_is_found_in_the_file_of_its_module() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        for (file, text) in [
            ("main.rs", "mod model;\n// struct Item is elsewhere\n"),
            ("model/mod.rs", "pub mod item;\n"),
            (
                "model/item.rs",
                "use std::fmt;\n\n#[derive(Clone)]\npub struct Item {\n    pub name: String,\n}\n\
                 pub enum Shape { Circle(u32), Square }\n",
            ),
            ("other.rs", "struct Item;\n"),
        ] {
            let path = src.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        assert_eq!(
            definition("shop::model::item::Item", &src, dir.path()).as_deref(),
            Some("src/model/item.rs:4")
        );
        assert_eq!(
            definition("shop::model::item::Shape::Circle", &src, dir.path()).as_deref(),
            Some("src/model/item.rs:7")
        );
        assert_eq!(definition("shop::Missing", &src, dir.path()), None);
    }
}
