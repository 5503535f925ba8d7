//! The benchmarked projects, the edit made to each, and where their builds go.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A project the benchmark runs and edits.
pub struct Fixture {
    /// Its name in the table and under `<target>/bench/`.
    pub name: &'static str,
    /// The project it is made from, under `examples/` or `tests/fixtures/`.
    pub source: &'static str,
    /// What turns a copy of `source` into this fixture, if anything.
    pub generate: Option<fn(&Path)>,
    /// Whether its cold and warm starts are measured (each a build of every dependency).
    pub starts: bool,
    /// The bin target.
    pub bin: &'static str,
    /// The bin target's crate name.
    pub crate_name: &'static str,
    /// The file holding the hot function that is edited.
    pub file: &'static str,
    /// The line of that function that is edited: a `format!("…")` whose text the answer shows.
    pub line: &'static str,
    /// The HTTP path that answers through the hot function.
    pub path: &'static str,
}

/// The fixtures, in the order they run.
pub const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "time-service",
        source: "time-service",
        generate: None,
        starts: true,
        bin: "time-service",
        crate_name: "time_service",
        file: "src/main.rs",
        line: r#"    format!("The time is {hours:02}:{minutes:02}:{seconds:02} UTC")"#,
        path: "/time",
    },
    Fixture {
        name: "medium",
        source: "medium",
        generate: None,
        starts: true,
        bin: "stockroom",
        crate_name: "stockroom",
        file: "src/report.rs",
        line: STATUS_LINE,
        path: "/status",
    },
    grown("medium-10k", grow_to_10k),
    grown("medium-40k", grow_to_40k),
    Fixture {
        name: "medium-workspace",
        source: "medium",
        generate: Some(split_status_line),
        starts: false,
        bin: "stockroom",
        crate_name: "stockroom",
        file: "crates/wording/src/lib.rs",
        line: STATUS_LINE,
        path: "/status",
    },
];

/// The medium fixture grown by `generate`, edited where the medium fixture is.
const fn grown(name: &'static str, generate: fn(&Path)) -> Fixture {
    Fixture {
        name,
        source: "medium",
        generate: Some(generate),
        starts: false,
        bin: "stockroom",
        crate_name: "stockroom",
        file: "src/report.rs",
        line: STATUS_LINE,
        path: "/status",
    }
}

/// The line of the medium fixture's hot function that the benchmark edits.
const STATUS_LINE: &str =
    r#"    format!("Stockroom at {clock}: {items} items, {low} low on stock, worth {value}")"#;

/// Grows a copy of the medium fixture (about 2,300 lines) to about 10,000 lines of Rust.
fn grow_to_10k(project: &Path) {
    grow(project, 10_000);
}

/// Grows a copy of the medium fixture to about 40,000 lines of Rust.
fn grow_to_40k(project: &Path) {
    grow(project, 40_000);
}

/// Adds generated modules to the medium fixture's one crate until its sources hold about
/// `lines` lines: `src/bulk/part_NN.rs`, each a hundred functions with loops, branches, string
/// building and a serde-derived record type, all of which `main` reaches (a checksum logged at
/// start), so that a build compiles them as it would a program's own code.
fn grow(project: &Path, lines: usize) {
    let mut have = source_lines(project);
    let bulk = project.join("src/bulk");
    std::fs::create_dir_all(&bulk).expect("cannot create `src/bulk`");
    let mut parts = Vec::new();
    while have < lines {
        let part = parts.len();
        let text = bulk_part(part);
        have += text.lines().count();
        std::fs::write(bulk.join(format!("part_{part:02}.rs")), text)
            .expect("cannot write a generated module");
        parts.push(part);
    }
    let mut module = String::from(
        "//! Generated workload: the fixture grown to a size (see the benchmark's `fixture.rs`).\n\n",
    );
    for part in &parts {
        module.push_str(&format!("mod part_{part:02};\n"));
    }
    module.push_str(
        "\n/// Runs every generated function once; their results folded into one number.\n\
         pub fn checksum(seed: u64) -> u64 {\n    let words = [\"alpha\", \"beta\", \"gamma\", \"delta\"];\n    \
         let mut acc = seed;\n",
    );
    for part in &parts {
        module.push_str(&format!("    acc ^= part_{part:02}::run(acc, &words);\n"));
    }
    module.push_str("    acc\n}\n");
    std::fs::write(bulk.join("mod.rs"), module).expect("cannot write `src/bulk/mod.rs`");
    let main = project.join("src/main.rs");
    let text = std::fs::read_to_string(&main).expect("cannot read `src/main.rs`");
    let hook = "    tracing::info!(items = store.item_count(), \"catalogue generated\");\n";
    assert!(
        text.contains("mod auth;\n") && text.contains(hook),
        "the medium fixture's `main.rs` changed"
    );
    let text = text.replacen("mod auth;\n", "mod auth;\nmod bulk;\n", 1).replacen(
        hook,
        &format!("{hook}    tracing::info!(checksum = bulk::checksum(args.seed), \"bulk workload\");\n"),
        1,
    );
    std::fs::write(&main, text).expect("cannot write `src/main.rs`");
}

/// One generated module of [`grow`]: a hundred functions, each with its record type, and `run`,
/// which calls them all.
fn bulk_part(part: usize) -> String {
    let mut text = format!("//! Generated workload, part {part}.\n\n");
    let mut run = String::from(
        "/// Calls every function of this part once.\npub fn run(seed: u64, words: &[&str]) -> u64 {\n    let mut acc = seed;\n",
    );
    for i in 0..100 {
        let n = part * 100 + i;
        let (k, r, m, c, d) = (2 * n + 3, n % 61 + 1, n % 13 + 2, n % 5, n % 97 + 3);
        text.push_str(&format!(
            "/// A record of step {n}.\n\
             #[derive(Debug, Clone, serde::Serialize)]\n\
             pub struct Record{n} {{\n    pub id: u64,\n    pub label: String,\n    pub weight: f64,\n}}\n\n\
             /// Step {n} of the workload.\n\
             pub fn step_{n}(seed: u64, words: &[&str]) -> (u64, String) {{\n    \
             let mut acc = seed.wrapping_mul({k}).rotate_left({r});\n    \
             let mut text = String::with_capacity(16);\n    \
             for (n, word) in words.iter().enumerate() {{\n        \
             acc ^= (word.len() as u64) << (n % 7);\n        \
             if acc % {m} == {c} {{\n            text.push_str(word);\n        }} else {{\n            \
             text.push(char::from(b'a' + (acc % 26) as u8));\n        }}\n    }}\n    \
             let record = Record{n} {{\n        id: acc,\n        label: text.clone(),\n        \
             weight: (acc % 1000) as f64 / {d}.0,\n    }};\n    \
             let summary = format!(\"{{}}:{{:.2}}\", record.label, record.weight);\n    \
             (record.id ^ summary.len() as u64, summary)\n}}\n\n"
        ));
        run.push_str(&format!("    acc ^= step_{n}(acc, words).0;\n"));
    }
    run.push_str("    acc\n}\n");
    text.push_str(&run);
    text
}

/// Makes a copy of the medium fixture a workspace whose status line comes from a library two
/// crates below the bin: `stockroom` (the bin's package) -> `phrasing` -> `wording`, which holds
/// the line. An edit of `wording` is what users of a workspace make most: it rebuilds `wording`,
/// `phrasing` and the bin.
fn split_status_line(project: &Path) {
    let write = |relative: &str, text: &str| {
        let path = project.join(relative);
        std::fs::create_dir_all(path.parent().expect("a file has a parent"))
            .expect("cannot create a fixture directory");
        std::fs::write(&path, text).expect("cannot write a fixture file");
    };
    let crate_manifest = |name: &str, dependencies: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
             publish = false\n\n[dependencies]\n{dependencies}"
        )
    };
    write("crates/wording/Cargo.toml", &crate_manifest("wording", ""));
    write(
        "crates/wording/src/lib.rs",
        &format!(
            "//! The words of the status line.\n\n\
             /// The status line from its parts.\n\
             pub fn status(\n    clock: &str,\n    items: &dyn std::fmt::Display,\n    \
             low: &dyn std::fmt::Display,\n    value: &dyn std::fmt::Display,\n) -> String {{\n\
             {STATUS_LINE}\n}}\n"
        ),
    );
    write(
        "crates/phrasing/Cargo.toml",
        &crate_manifest("phrasing", "wording = { path = \"../wording\" }\n"),
    );
    write(
        "crates/phrasing/src/lib.rs",
        "//! Phrases of the service, from the words of `wording`.\n\n\
         /// The status line for a clock reading and the store's numbers.\n\
         pub fn status(clock: &str, items: usize, low: usize, value: &dyn std::fmt::Display) -> String {\n    \
         wording::status(clock, &items, &low, value)\n}\n",
    );
    let manifest = project.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("cannot read the manifest");
    let text = text
        .replacen(
            "[workspace]\n",
            "[workspace]\nmembers = [\"crates/*\"]\n",
            1,
        )
        .replacen(
            "[dependencies]\n",
            "[dependencies]\nphrasing = { path = \"crates/phrasing\" }\n",
            1,
        );
    std::fs::write(&manifest, text).expect("cannot write the manifest");
    let report = project.join("src/report.rs");
    let text = std::fs::read_to_string(&report).expect("cannot read `src/report.rs`");
    assert!(
        text.contains(STATUS_LINE),
        "the medium fixture's status line moved"
    );
    let text = text.replacen(
        STATUS_LINE,
        "    phrasing::status(&clock, items, low, &value)",
        1,
    );
    std::fs::write(&report, text).expect("cannot write `src/report.rs`");
}

/// The line of edit number `n`: the original text prefixed with `bench-<n> <nanoseconds>`,
/// where the new code itself reads the clock when it runs. A one-line edit, as a user makes.
pub fn edited_line(original: &str, n: usize) -> String {
    let body = original
        .strip_suffix("\")")
        .expect("the edited line ends with `\")`");
    let body = body.replacen("format!(\"", &format!("format!(\"bench-{n} {{}} "), 1);
    format!(
        "{body}\", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)\
         .map_or(0, |d| d.as_nanos()))"
    )
}

/// The text that proves edit `n` is running, as it appears in the answer and in the binary.
pub fn marker(n: usize) -> String {
    format!("bench-{n} ")
}

/// The time (nanoseconds since the epoch) that the code of edit `n` put into `body`, if the
/// body comes from that code.
pub fn stamp(body: &str, n: usize) -> Option<u64> {
    let (_, rest) = body.split_once(&marker(n))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Where one fixture's builds and logs go, under `<target>/bench/<fixture>/`.
pub struct Dirs {
    /// Target directory of `cargo hotswap run`.
    pub hotswap: PathBuf,
    /// Target directory of `cargo run` and `cargo build`.
    pub plain: PathBuf,
    /// Output and incremental directory of the floor's replays.
    pub floor: PathBuf,
    /// The wrappers' logs.
    pub logs: PathBuf,
}

impl Dirs {
    /// The directories of `fixture` (the floor's and the logs emptied). The target directories
    /// are those of every fixture made from the same project, so that its dependencies compile
    /// once for all of them (each copy's own crates have a version of their own).
    pub fn new(root: &Path, fixture: &Fixture) -> Dirs {
        let base = root.join(fixture.name);
        let shared = root.join(fixture.source);
        let dirs = Dirs {
            hotswap: shared.join("hotswap"),
            plain: shared.join("plain"),
            floor: base.join("floor"),
            logs: base.join("logs"),
        };
        for dir in [&dirs.floor, &dirs.logs] {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create `{}`: {e}", dir.display()));
        }
        dirs
    }
}

/// Downloads the project's dependencies (and settles its lock file), so that no build measures
/// the network.
pub fn fetch(project: &Path) {
    let status = Command::new(hotswap_tests::cargo())
        .args(["fetch", "--quiet", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .status()
        .expect("cannot run `cargo fetch`");
    assert!(
        status.success(),
        "`cargo fetch` failed in `{}`",
        project.display()
    );
}

/// The number of packages in the project's resolved graph for this platform (itself included).
pub fn crate_count(project: &Path) -> usize {
    let output = Command::new(hotswap_tests::cargo())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            "x86_64-unknown-linux-gnu",
            "--manifest-path",
        ])
        .arg(project.join("Cargo.toml"))
        .output()
        .expect("cannot run `cargo metadata`");
    assert!(output.status.success(), "`cargo metadata` failed");
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("`cargo metadata` prints JSON");
    metadata["resolve"]["nodes"].as_array().map_or(0, Vec::len)
}

/// Lines of the project's Rust sources under `src/`.
pub fn source_lines(project: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|entry| {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path)
                } else if path.extension().is_some_and(|e| e == "rs") {
                    std::fs::read_to_string(&path).map_or(0, |t| t.lines().count())
                } else {
                    0
                }
            })
            .sum()
    }
    walk(&project.join("src"))
}
