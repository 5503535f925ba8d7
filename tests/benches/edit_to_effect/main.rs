//! The benchmark of cargo-hotswap: what users feel, next to the alternatives.
//!
//! `cargo bench -p hotswap-tests --bench edit_to_effect` builds the tool (release, as
//! `cargo install` would), then, on copies of `examples/time-service`, the medium fixture
//! (`tests/fixtures/medium`, about 2,000 lines and 260 crates) and the medium fixture made a
//! workspace whose edited line is two crates below the bin (`medium-workspace`):
//!
//! 1. starts `cargo run` and `cargo hotswap run` until each answers its first request, cold
//!    (empty target directory) and warm;
//! 2. edits the hot function's text again and again while `cargo hotswap run` serves, and
//!    measures edit -> effect: from the moment the file is written to the timestamp the *new*
//!    code puts in its answer, with the phases in between;
//! 3. on the same edits, times the bare floor (the patch's rustc command, replayed alone) and
//!    the restart loop (incremental `cargo build`, then start until the first answer);
//! 4. measures host memory growth over many patches, and the cost of a hot call next to a
//!    direct one inside a running program (`tests/benches/fixtures/calls`);
//! 5. for the time service and the medium fixture, repeats the edits under `--redirect` on a
//!    copy without `#[hot]` marks: edit -> effect, the time to apply a patch, and how long the
//!    program's threads were stopped (p50 and p99 over the time service's many patches).
//!
//! Every patch is checked to have changed what the program answers; a no-op proves nothing.
//! The table goes to stdout, progress to stderr. See `book/src/performance.md` for the method.
//!
//! Environment: `HOTSWAP_BENCH_RUNS` (measured edits and warm starts per fixture, default 10),
//! `HOTSWAP_BENCH_PATCHES` (patches of the memory soak, default 100), `HOTSWAP_BENCH_COLD=0`
//! (skip cold starts, which rebuild every dependency), `HOTSWAP_BENCH_ONLY` (comma-separated
//! subset of `time-service`, `medium`, `medium-10k`, `medium-40k`, `medium-workspace`, `calls`).

mod calls;
mod edits;
mod fixture;
mod process;
mod redirect;
mod startup;
mod table;
mod wrap;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fixture::{FIXTURES, Fixture};
use crate::table::Table;

/// Wall-clock time in nanoseconds since the Unix epoch: comparable across processes, which is
/// what lets the new code's own timestamp end the edit -> effect interval.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Settings and paths shared by every part of the benchmark.
pub struct Bench {
    /// Measured edits (and warm starts) per fixture.
    pub runs: usize,
    /// Patches of the memory soak (time-service).
    pub patches: usize,
    /// Whether to measure cold starts.
    pub cold: bool,
    /// Interval of the HTTP polling that detects the new code.
    pub poll: Duration,
    /// `<target>/bench`: target directories, logs and wrapper links.
    pub root: PathBuf,
    /// The release build of cargo-hotswap.
    pub tool: PathBuf,
    /// The real rustc, which `bench-rustc` runs.
    pub real_rustc: PathBuf,
    /// `bench-rustc`.
    pub rustc_wrapper: PathBuf,
    /// `bench-cc`.
    pub linker_wrapper: PathBuf,
    only: Option<Vec<String>>,
}

impl Bench {
    /// Whether the part `name` is selected by `HOTSWAP_BENCH_ONLY`.
    pub fn selected(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name))
    }

    /// Sets what every benchmarked build gets: the timing wrappers, the log they write, and a
    /// free port for the program.
    pub fn prepare(&self, command: &mut Command, log: &Path) {
        command
            .env("RUSTC", &self.rustc_wrapper)
            .env(wrap::REAL_RUSTC_ENV, &self.real_rustc)
            .env(
                "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER",
                &self.linker_wrapper,
            )
            .env(wrap::LOG_ENV, log)
            .env("PORT", "0")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR");
    }

    /// `cargo <subcommand>` of the project at `project` in target directory `target`.
    pub fn cargo(&self, subcommand: &str, project: &Path, target: &Path, log: &Path) -> Command {
        let mut command = Command::new(hotswap_tests::cargo());
        command
            .arg(subcommand)
            .arg("--manifest-path")
            .arg(project.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target);
        self.prepare(&mut command, log);
        command
    }

    /// `cargo hotswap run` of the project at `project` in target directory `target`.
    pub fn hotswap(&self, project: &Path, target: &Path, log: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(&self.tool);
        command
            .args(["hotswap", "run", "--manifest-path"])
            .arg(project.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target)
            .args(args);
        self.prepare(&mut command, log);
        command
    }
}

/// Reads a count from the environment.
fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("`{name}` must be a number, not `{text}`")),
        Err(_) => default,
    }
}

/// Builds cargo-hotswap in release mode and returns its path.
fn build_tool(target: &Path) -> PathBuf {
    let status = Command::new(hotswap_tests::cargo())
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "cargo-hotswap",
            "--bin",
            "cargo-hotswap",
        ])
        .current_dir(hotswap_tests::workspace_root())
        .status()
        .expect("cannot run cargo");
    assert!(status.success(), "building cargo-hotswap failed");
    target.join("release/cargo-hotswap")
}

/// The sysroot's rustc, so that the wrapper does not go through a rustup proxy.
fn real_rustc() -> PathBuf {
    let output = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("cannot run `rustc --print sysroot`");
    assert!(output.status.success(), "`rustc --print sysroot` failed");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join("bin/rustc")
}

/// The benchmarked commit (with `+changes` when the worktree differs from it).
fn revision() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(hotswap_tests::workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "(unknown revision)".to_owned();
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit}+changes")
    } else {
        commit
    }
}

/// One line on the machine and toolchain, for the table's header.
fn describe_machine(rustc: &Path) -> String {
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| {
            format!(", {} GiB", (kib + 512 * 1024) / (1024 * 1024))
        });
    format!("{version}, {cpus} CPUs{memory}")
}

/// How to read the table; printed under it.
const NOTES: &[&str] = &[
    "edit -> effect ends at the timestamp the new code itself puts in its answer; requests start \
     when the patch's link ends, then every 1 ms.",
    "phases come from the tool's status lines (read as they arrive) and from pass-through rustc \
     and linker wrappers that every build here goes through, with or without cargo-hotswap.",
    "check: the compatibility gate as the tool times it (records, type layouts from DWARF, \
     undefined symbols, changed functions), the part that runs after the code index and the \
     source diff (it starts reading the patch beside them); \"tool after the link\" is the rest \
     between the patch's link and the `Patched` line. The tool goes on once the patch is \
     linked; rustc's last step, removing its temporary files, ends on its own meanwhile \
     (\"rustc after the link\"; the floors include it).",
    "restart loop: incremental cargo build of the bin, then a fresh process until its first \
     answer; no file watcher (cargo-watch would add its own debounce).",
];

fn main() -> ExitCode {
    if let Some(tool) = wrap::role() {
        return wrap::wrapper_main(tool);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| hotswap_tests::workspace_root().join("target"));
    let root = target.join("bench");
    let (rustc_wrapper, linker_wrapper) = wrap::install(&root.join("bin"));
    let bench = Bench {
        runs: env_count("HOTSWAP_BENCH_RUNS", 10).max(1),
        patches: env_count("HOTSWAP_BENCH_PATCHES", 100),
        cold: env_count("HOTSWAP_BENCH_COLD", 1) != 0,
        poll: Duration::from_millis(1),
        tool: {
            eprintln!("bench: building cargo-hotswap (release)");
            build_tool(&target)
        },
        real_rustc: real_rustc(),
        root,
        rustc_wrapper,
        linker_wrapper,
        only: std::env::var("HOTSWAP_BENCH_ONLY")
            .ok()
            .map(|s| s.split(',').map(|p| p.trim().to_owned()).collect()),
    };

    let mut table = Table::default();
    for fixture in FIXTURES {
        if bench.selected(fixture.name) {
            run_fixture(&bench, fixture, &mut table);
        }
    }
    if bench.selected("calls") {
        calls::run(&bench, &mut table);
    }

    println!(
        "cargo-hotswap {} benchmark, {} runs; {}",
        revision(),
        bench.runs,
        describe_machine(&bench.real_rustc)
    );
    println!();
    print!("{}", table.render());
    println!();
    for note in NOTES {
        println!("{note}");
    }
    ExitCode::SUCCESS
}

/// All measurements of one fixture, on one copy of it.
fn run_fixture(bench: &Bench, fixture: &Fixture, table: &mut Table) {
    eprintln!("bench: {}: copying and fetching", fixture.name);
    let project = hotswap_tests::Project::copy(fixture.source);
    if let Some(generate) = fixture.generate {
        generate(project.path());
    }
    let dirs = fixture::Dirs::new(&bench.root, fixture);
    fixture::fetch(project.path());
    let crates = fixture::crate_count(project.path());
    let lines = fixture::source_lines(project.path());
    table.section(format!(
        "{} ({lines} lines of Rust, {crates} crates in the graph)",
        fixture.name
    ));
    let start = fixture
        .starts
        .then(|| startup::run(bench, fixture, &project, &dirs));
    let edits = edits::run(bench, fixture, &project, &dirs);
    edits.report(table, fixture);
    if matches!(fixture.name, "time-service" | "medium") {
        redirect::run(bench, fixture, &dirs).report(table, fixture);
    }
    if let Some(start) = start {
        start.report(table);
    }
}
