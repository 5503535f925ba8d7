//! The book's include check: every `{{#include file:anchor}}` must name an existing file and,
//! if it names an anchor, an `ANCHOR: name` … `ANCHOR_END: name` pair enclosing at least one
//! line. mdBook only logs a missing include; this check makes it an error.

use std::path::Path;

/// Every broken include in the Markdown files under `book_src`, as `file: message` lines.
pub fn broken_includes(book_src: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut pages = Vec::new();
    collect_markdown(book_src, &mut pages);
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap_or_default();
        for include in text.split("{{#include ").skip(1) {
            let Some(spec) = include.split("}}").next() else {
                continue;
            };
            let spec = spec.trim();
            let (file, anchor) = match spec.rsplit_once(':') {
                Some((file, anchor)) if !anchor.chars().all(|c| c.is_ascii_digit()) => {
                    (file, Some(anchor))
                }
                _ => (spec.split(':').next().unwrap_or(spec), None),
            };
            let target = page.parent().unwrap_or(book_src).join(file);
            let where_ = page.strip_prefix(book_src).unwrap_or(&page).display();
            let Ok(source) = std::fs::read_to_string(&target) else {
                problems.push(format!("{where_}: included file `{file}` does not exist"));
                continue;
            };
            if let Some(anchor) = anchor {
                let lines = anchored_lines(&source, anchor);
                match lines {
                    None => problems.push(format!(
                        "{where_}: anchor `{anchor}` is missing from `{file}`"
                    )),
                    Some(0) => {
                        problems.push(format!("{where_}: anchor `{anchor}` in `{file}` is empty"))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    problems
}

/// The number of lines between `ANCHOR: name` and `ANCHOR_END: name`, or `None` if either is
/// missing.
fn anchored_lines(source: &str, anchor: &str) -> Option<usize> {
    let is_marker = |line: &str, kind: &str| {
        line.split_once(kind)
            .is_some_and(|(_, rest)| rest.trim() == anchor)
    };
    let start = source.lines().position(|l| is_marker(l, "ANCHOR: "))?;
    let len = source
        .lines()
        .skip(start + 1)
        .position(|l| is_marker(l, "ANCHOR_END: "))?;
    Some(len)
}

fn collect_markdown(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_markdown(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}
