//! The book's tutorial as data. The chapter "Your first hot patch" (`book/src/first-patch.md`)
//! includes every command, edit and output it shows from files in `book/src/first-patch/`; the
//! walkthrough test reads the same files, in the order the chapter includes them, and performs
//! them: it runs the commands, makes the edits and checks that the output the book shows
//! appears. So the chapter cannot drift from what the tool does.
//!
//! Two kinds of files:
//!
//! * `*.console`: a terminal transcript. A line starting with `$ ` is a command, the lines after
//!   it are its output; lines before any command are output of the running `cargo hotswap run`
//!   since the previous step; a line `^C` is Ctrl-C pressed in that terminal.
//! * `*.diff`: an edit, as the lines of one hunk of a unified diff under a `+++ path` header:
//!   ` ` context, `-` removed, `+` added. The removed text must occur exactly once in the file.
//!
//! Expected output is matched line by line. The parts that differ from run to run are written
//! in the book as one run printed them, and match any value of their kind: durations (`3.19s`,
//! `106 ms`, the `build`, `check` and `load` figures), process ids (`pid 8064`), ports
//! (`127.0.0.1:3000`), the 16-digit hexadecimal hash in a directory name, and paths starting
//! with `/home/you/`. Everything else is literal, generation numbers and line numbers included.

use std::path::Path;

/// One thing the reader does or sees, in the order of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A command (without its `$ `) and the output lines shown after it.
    Command {
        /// The command line as the reader types it.
        line: String,
        /// The lines the book shows after it.
        output: Vec<String>,
    },
    /// Output of the running session, shown without a command before it.
    Output(Vec<String>),
    /// Ctrl-C pressed in the terminal of the running session.
    Interrupt,
}

/// The steps of a `*.console` transcript.
pub fn parse_console(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for line in text.lines() {
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step::Command {
                line: command.trim().to_owned(),
                output: Vec::new(),
            });
        } else if line.trim() == "^C" {
            steps.push(Step::Interrupt);
        } else {
            match steps.last_mut() {
                Some(Step::Command { output, .. }) | Some(Step::Output(output)) => {
                    output.push(line.to_owned());
                }
                _ => steps.push(Step::Output(vec![line.to_owned()])),
            }
        }
    }
    steps
}

/// An edit: in `path`, the text `from` becomes `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The edited file, relative to the project.
    pub path: String,
    /// The lines before the edit (context and removed lines), joined with newlines.
    pub from: String,
    /// The lines after the edit (context and added lines), joined with newlines.
    pub to: String,
}

/// The edit of a `*.diff` file.
///
/// # Panics
///
/// If the file has no `+++ path` header, or a line that is not part of a hunk.
pub fn parse_diff(text: &str) -> Edit {
    let mut path = None;
    let (mut from, mut to) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("+++ ") {
            path = Some(p.trim().trim_start_matches("b/").to_owned());
        } else if line.starts_with("--- ") || line.starts_with("@@") {
            continue;
        } else if let Some(removed) = line.strip_prefix('-') {
            from.push(removed);
        } else if let Some(added) = line.strip_prefix('+') {
            to.push(added);
        } else if let Some(context) = line.strip_prefix(' ') {
            from.push(context);
            to.push(context);
        } else {
            panic!("not a line of a unified diff: {line:?}");
        }
    }
    Edit {
        path: path.expect("the diff names its file in a `+++ path` line"),
        from: from.join("\n"),
        to: to.join("\n"),
    }
}

/// A piece of an expected line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// This exact character.
    Char(char),
    /// Any number: digits, optionally with a fraction.
    Number,
    /// Any run of lowercase hexadecimal digits.
    Hex,
    /// Any path: characters up to whitespace or `)`.
    Path,
}

/// Where the book's example home directory stands for any path.
const ANY_PATH: &str = "/home/you/";

/// Digits preceded by one of these are a value that differs between runs.
const VARIABLE_AFTER: [&str; 6] = [
    "pid ",
    "build ",
    "check ",
    "load ",
    "127.0.0.1:",
    "localhost:",
];

/// The pieces of an expected output line. With `all_numbers`, every number is variable (the
/// answers of `/time`, which are times of day).
fn pieces(expected: &str, all_numbers: bool) -> Vec<Piece> {
    let chars: Vec<char> = expected.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let before: String = chars[..i].iter().collect();
        let rest: String = chars[i..].iter().collect();
        let prev = i.checked_sub(1).map(|p| chars[p]);
        if rest.starts_with(ANY_PATH) {
            out.push(Piece::Path);
            i += rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != ')')
                .count();
            continue;
        }
        let hex_len = rest
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            .count();
        if prev == Some('-') && hex_len == 16 {
            out.push(Piece::Hex);
            i += hex_len;
            continue;
        }
        // A number inside a word (`v0.1.0`, `E0425`) is literal, except in a time of day.
        let in_word = prev.is_some_and(|c| c.is_ascii_alphanumeric());
        if chars[i].is_ascii_digit() && (all_numbers || !in_word) {
            let mut len = rest.chars().take_while(char::is_ascii_digit).count();
            let after = &rest[len..];
            if after.starts_with('.') && after[1..].starts_with(|c: char| c.is_ascii_digit()) {
                len += 1 + after[1..].chars().take_while(char::is_ascii_digit).count();
            }
            let after = &rest[len..];
            let duration = after.starts_with(" ms")
                || (after.starts_with('s')
                    && !after[1..].starts_with(|c: char| c.is_ascii_alphanumeric()));
            if all_numbers || duration || VARIABLE_AFTER.iter().any(|v| before.ends_with(v)) {
                out.push(Piece::Number);
                i += len;
                continue;
            }
        }
        out.push(Piece::Char(chars[i]));
        i += 1;
    }
    out
}

/// Whether `pieces` match all of `actual`.
fn matches(pieces: &[Piece], actual: &[char]) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return actual.is_empty();
    };
    let run = |accept: &dyn Fn(char) -> bool| actual.iter().take_while(|c| accept(**c)).count();
    match first {
        Piece::Char(c) => actual.first() == Some(c) && matches(rest, &actual[1..]),
        Piece::Number => {
            let digits = run(&|c| c.is_ascii_digit());
            let mut ends: Vec<usize> = (1..=digits).collect();
            if actual.get(digits) == Some(&'.') {
                let fraction = actual[digits + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                ends.extend((1..=fraction).map(|f| digits + 1 + f));
            }
            ends.into_iter().any(|end| matches(rest, &actual[end..]))
        }
        Piece::Hex => {
            let len = run(&|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
            (1..=len).any(|end| matches(rest, &actual[end..]))
        }
        Piece::Path => {
            let len = run(&|c| !c.is_whitespace() && c != ')');
            (1..=len).any(|end| matches(rest, &actual[end..]))
        }
    }
}

/// Whether the output line `actual` is the book's `expected` line, with the parts that vary
/// between runs as wildcards (see the module documentation).
pub fn line_matches(expected: &str, actual: &str) -> bool {
    let actual: Vec<char> = actual.chars().collect();
    matches(&pieces(expected, false), &actual)
}

/// Whether an answer of `GET /time` is the book's `expected` answer, any number standing for
/// any number (it is a time of day).
pub fn time_matches(expected: &str, actual: &str) -> bool {
    let actual: Vec<char> = actual.chars().collect();
    matches(&pieces(expected, true), &actual)
}

/// The non-empty `expected` lines that match no line of `output`.
pub fn missing_lines(expected: &[String], output: &str) -> Vec<String> {
    expected
        .iter()
        .filter(|line| !line.trim().is_empty())
        .filter(|line| !output.lines().any(|actual| line_matches(line, actual)))
        .cloned()
        .collect()
}

/// The files under `book/src/` that `chapter` includes from its own directory `dir` (for
/// example `first-patch/`), in the order it includes them.
pub fn included_files(chapter: &str, dir: &str) -> Vec<String> {
    chapter
        .split("{{#include ")
        .skip(1)
        .filter_map(|rest| rest.split("}}").next())
        .map(str::trim)
        .filter(|file| file.starts_with(dir))
        .map(str::to_owned)
        .collect()
}

/// Reads a file of the book, relative to `book/src/`.
///
/// # Panics
///
/// If it cannot be read.
pub fn read_book_file(book_src: &Path, relative: &str) -> String {
    let path = book_src.join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read `{}`: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_parts_match_any_value_and_the_rest_is_literal() {
        let patched = "     Patched 1 function in 106 ms (build 106, check 0, load 0.1) \
                       generation 1: format_time";
        assert!(line_matches(
            patched,
            "     Patched 1 function in 98 ms (build 97, check 1, load 0.25) generation 1: \
             format_time"
        ));
        assert!(!line_matches(
            patched,
            "     Patched 1 function in 98 ms (build 97, check 1, load 0.2) generation 2: \
             format_time"
        ));
        assert!(!line_matches(
            patched,
            "     Patched 2 functions in 98 ms (build 97, check 1, load 0.2) generation 1: \
             format_time"
        ));
        let running = "     Running `target/hotswap/debug/time-service-77e5598815b42685/\
                       time-service` (pid 8064)";
        assert!(line_matches(
            running,
            "     Running `target/hotswap/debug/time-service-0123456789abcdef/time-service` \
             (pid 12)"
        ));
        assert!(!line_matches(
            running,
            "     Running `target/hotswap/release/time-service-0123456789abcdef/time-service` \
             (pid 12)"
        ));
        let compiling = "   Compiling hotswap v0.1.0 (/home/you/cargo-hotswap/runtime-shim)";
        assert!(line_matches(
            compiling,
            "   Compiling hotswap v0.1.0 (/work/x/runtime-shim)"
        ));
        assert!(!line_matches(
            compiling,
            "   Compiling hotswap v0.2.0 (/work/x/runtime-shim)"
        ));
        assert!(line_matches(
            "    Finished host in 3.50s",
            "    Finished host in 12.05s"
        ));
        assert!(line_matches(
            "listening on http://127.0.0.1:3000",
            "listening on http://127.0.0.1:41327"
        ));
        assert!(!line_matches(
            "  --> src/main.rs:20:45",
            "  --> src/main.rs:21:45"
        ));
    }

    #[test]
    fn time_answers_match_any_time_in_the_same_format() {
        assert!(time_matches(
            "Time: 14h02m41s (UTC)",
            "Time: 09h59m00s (UTC)"
        ));
        assert!(!time_matches(
            "Time: 14h02m41s (UTC)",
            "Time: 09h59m00s, UTC"
        ));
        assert!(!time_matches(
            "The time is 14:02:33 UTC",
            "Time: 09h59m00s (UTC)"
        ));
    }

    #[test]
    fn transcripts_and_diffs_are_read() {
        let steps = parse_console("$ curl localhost:3000/pid\n8064\n^C\n$ echo $?\n130\n");
        assert_eq!(
            steps,
            [
                Step::Command {
                    line: "curl localhost:3000/pid".into(),
                    output: vec!["8064".into()]
                },
                Step::Interrupt,
                Step::Command {
                    line: "echo $?".into(),
                    output: vec!["130".into()]
                },
            ]
        );
        let edit = parse_diff("--- a/src/main.rs\n+++ b/src/main.rs\n fn f() {\n-    1\n+    2\n");
        assert_eq!(
            edit,
            Edit {
                path: "src/main.rs".into(),
                from: "fn f() {\n    1".into(),
                to: "fn f() {\n    2".into(),
            }
        );
        assert_eq!(
            included_files(
                "{{#include first-patch/a.console}} {{#include ../x.rs:y}} {{#include first-patch/b.diff}}",
                "first-patch/"
            ),
            ["first-patch/a.console", "first-patch/b.diff"]
        );
    }
}
