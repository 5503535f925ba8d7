//! First start to ready: `cargo run` against `cargo hotswap run`, cold (empty target directory,
//! dependencies downloaded) and warm (everything fresh).

use std::path::Path;
use std::process::Command;

use hotswap_tests::{Project, START_DEADLINE};

use crate::fixture::{Dirs, Fixture};
use crate::process::Process;
use crate::table::{self, Table, Unit};
use crate::wrap::{self, Invocation};
use crate::{Bench, now_ns};

/// Samples of one fixture's starts, in ms.
#[derive(Default)]
pub struct Startup {
    cold_plain: Vec<f64>,
    cold_hotswap: Vec<f64>,
    warm_plain: Vec<f64>,
    warm_hotswap: Vec<f64>,
    /// `cargo hotswap run` in the target directory of the `cargo run`s, right after them.
    after_build: Vec<f64>,
    /// Crates outside the project that rustc compiled in that start.
    after_build_foreign: Vec<f64>,
    /// A `cargo build` right after that session.
    build_after: Vec<f64>,
    /// Crates outside the project that rustc compiled in that build.
    build_after_foreign: Vec<f64>,
    /// What the tool added to that target directory, KiB.
    added_kib: Vec<f64>,
    /// The bin compiled as the host's rlib, beside cargo's check of it (a cold or after-build
    /// start).
    host_rlib: Vec<f64>,
    /// The check beside it.
    host_check: Vec<f64>,
    /// The host shim compiled and linked.
    host_shim: Vec<f64>,
    /// Of which the host link.
    host_link: Vec<f64>,
    /// Size of the host executable, KiB.
    host_kib: Vec<f64>,
    /// Size of the plain executable, KiB.
    plain_kib: Vec<f64>,
}

/// Starts the fixture `bench.runs` times each way, warm, after one cold start each way (if
/// `bench.cold`); then once with cargo-hotswap in the plain target directory, right after its
/// `cargo run`s, and a `cargo build` after that.
pub fn run(bench: &Bench, fixture: &Fixture, project: &Project, dirs: &Dirs) -> Startup {
    let mut startup = Startup::default();
    let log = dirs.logs.join("startup.jsonl");
    let mut offset = 0;
    if bench.cold {
        eprintln!(
            "bench: {}: cold starts (every dependency compiles, twice)",
            fixture.name
        );
        for dir in [&dirs.plain, &dirs.hotswap] {
            let _ = std::fs::remove_dir_all(dir);
        }
        startup.cold_plain.push(to_ready(
            bench,
            fixture,
            cargo_run(bench, project, dirs, &log),
        ));
        wrap::read_since(&log, &mut offset);
        startup.cold_hotswap.push(to_ready(
            bench,
            fixture,
            bench.hotswap(project.path(), &dirs.hotswap, &log, &[]),
        ));
        startup.host_phases(&wrap::read_since(&log, &mut offset));
    } else {
        // Builds whatever is missing, untimed.
        to_ready(bench, fixture, cargo_run(bench, project, dirs, &log));
        to_ready(
            bench,
            fixture,
            bench.hotswap(project.path(), &dirs.hotswap, &log, &[]),
        );
    }
    eprintln!(
        "bench: {}: {} warm starts each way",
        fixture.name, bench.runs
    );
    wrap::read_since(&log, &mut offset);
    for _ in 0..bench.runs {
        startup.warm_plain.push(to_ready(
            bench,
            fixture,
            cargo_run(bench, project, dirs, &log),
        ));
        startup.warm_hotswap.push(to_ready(
            bench,
            fixture,
            bench.hotswap(project.path(), &dirs.hotswap, &log, &[]),
        ));
    }
    startup
        .plain_kib
        .extend(size_kib(&dirs.plain.join("debug").join(fixture.bin)));
    startup.after_build(bench, fixture, project, dirs, &log, &mut offset);
    startup
}

/// `cargo run` of the project's bin.
fn cargo_run(bench: &Bench, project: &Project, dirs: &Dirs, log: &Path) -> Command {
    let mut command = bench.cargo("run", project.path(), &dirs.plain, log);
    command.arg("--quiet");
    command
}

/// Runs `command` until the program answers its first request; returns the time that took.
fn to_ready(bench: &Bench, fixture: &Fixture, command: Command) -> f64 {
    let start = now_ns();
    let mut process = Process::spawn("the program", command);
    let addr = process.wait_listening(START_DEADLINE);
    let answered = process.first_answer(&addr, fixture.path, bench.poll);
    (answered - start) as f64 / 1e6
}

impl Startup {
    /// `cargo hotswap run` in the target directory that the `cargo run`s built, then a
    /// `cargo build` there: the time to the first answer, the crates from outside the project
    /// compiled by each, and the disk the tool added.
    fn after_build(
        &mut self,
        bench: &Bench,
        fixture: &Fixture,
        project: &Project,
        dirs: &Dirs,
        log: &Path,
        offset: &mut u64,
    ) {
        eprintln!(
            "bench: {}: cargo hotswap run after cargo build, and back",
            fixture.name
        );
        let before = disk_bytes(&dirs.plain);
        wrap::read_since(log, offset);
        self.after_build.push(to_ready(
            bench,
            fixture,
            bench.hotswap(project.path(), &dirs.plain, log, &[]),
        ));
        let records = wrap::read_since(log, offset);
        self.after_build_foreign
            .push(foreign_compiles(&records, project.path()));
        self.host_phases(&records);
        self.added_kib
            .push((disk_bytes(&dirs.plain).saturating_sub(before)) as f64 / 1024.0);
        let started = now_ns();
        let status = bench
            .cargo("build", project.path(), &dirs.plain, log)
            .arg("--quiet")
            .status()
            .expect("cannot run `cargo build`");
        assert!(status.success(), "`cargo build` after the session failed");
        self.build_after
            .push((now_ns().saturating_sub(started)) as f64 / 1e6);
        self.build_after_foreign.push(foreign_compiles(
            &wrap::read_since(log, offset),
            project.path(),
        ));
    }

    /// The host's compile (the bin as an rlib, beside cargo's check of it) and its shim and
    /// link, from the wrappers' records of a start that built the host.
    fn host_phases(&mut self, records: &[Invocation]) {
        let rlib = records
            .iter()
            .find(|r| r.is_rustc_of("rlib") && r.args.iter().any(|a| a == "link-dead-code"));
        let check = records
            .iter()
            .find(|r| r.is_rustc_of("bin") && r.args.iter().any(|a| a.contains("metadata=")));
        let shim = records.iter().find(|r| r.compiles("hotswap_host"));
        self.host_rlib.extend(rlib.map(Invocation::ms));
        self.host_check.extend(check.map(Invocation::ms));
        if let Some(shim) = shim {
            self.host_shim.push(shim.ms());
            let link = records.iter().find(|r| {
                r.link_output().is_some() && r.start_ns >= shim.start_ns && r.end_ns <= shim.end_ns
            });
            if let Some(link) = link {
                self.host_link.push(link.ms());
                self.host_kib.extend(link.link_output().and_then(size_kib));
            }
        }
    }

    /// Adds the rows to the table, with the start goals' verdicts (warm within 1.2x `cargo run`,
    /// cold within 1.1x, medians).
    pub fn report(&self, table: &mut Table) {
        self.rows(table);
        for (label, hotswap, plain, goal) in [
            (
                "cold start: cargo hotswap run / cargo run",
                &self.cold_hotswap,
                &self.cold_plain,
                1.1,
            ),
            (
                "warm start: cargo hotswap run / cargo run",
                &self.warm_hotswap,
                &self.warm_plain,
                1.2,
            ),
        ] {
            if let (Some(hotswap), Some(plain)) = (table::median(hotswap), table::median(plain)) {
                table.text(
                    label,
                    format!(
                        "{}; goal <= {goal}x: {}",
                        table::format(Unit::Ratio, hotswap / plain),
                        crate::edits::verdict(hotswap <= goal * plain)
                    ),
                );
            }
        }
    }

    /// The measured rows.
    fn rows(&self, table: &mut Table) {
        table.samples(
            "cold start -> first answer: cargo run",
            Unit::Ms,
            &self.cold_plain,
        );
        table.samples(
            "cold start -> first answer: cargo hotswap run",
            Unit::Ms,
            &self.cold_hotswap,
        );
        table.samples(
            "warm start -> first answer: cargo run",
            Unit::Ms,
            &self.warm_plain,
        );
        table.samples(
            "warm start -> first answer: cargo hotswap run",
            Unit::Ms,
            &self.warm_hotswap,
        );
        table.samples(
            "  host build: the bin compiled as an rlib",
            Unit::Ms,
            &self.host_rlib,
        );
        table.samples(
            "  host build: cargo's check of the bin, beside it",
            Unit::Ms,
            &self.host_check,
        );
        table.samples(
            "  host build: shim compiled and linked",
            Unit::Ms,
            &self.host_shim,
        );
        table.samples("    of which the host link", Unit::Ms, &self.host_link);
        table.samples(
            "first cargo hotswap run after cargo build -> first answer",
            Unit::Ms,
            &self.after_build,
        );
        table.samples(
            "  crates from outside the project compiled",
            Unit::Count,
            &self.after_build_foreign,
        );
        table.samples(
            "  disk the tool added to the target directory",
            Unit::KiB,
            &self.added_kib,
        );
        table.samples(
            "cargo build after that session",
            Unit::Ms,
            &self.build_after,
        );
        table.samples(
            "  crates from outside the project compiled",
            Unit::Count,
            &self.build_after_foreign,
        );
        table.samples("executable size: plain", Unit::KiB, &self.plain_kib);
        table.samples("executable size: host", Unit::KiB, &self.host_kib);
    }
}

/// The size of the file at `path` in KiB, if it exists.
fn size_kib(path: &Path) -> Option<f64> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.len() as f64 / 1024.0)
}

/// How many rustc runs among `records` compiled a crate from outside the project at `project`
/// (a registry crate, or the runtime): cargo runs rustc in the package's directory. cargo's
/// probes of the target (`rustc - --crate-name ___ --print=file-names`, run again whenever the
/// rustc wrapper changes) compile nothing and do not count.
fn foreign_compiles(records: &[Invocation], project: &Path) -> f64 {
    records
        .iter()
        .filter(|r| r.tool == wrap::Tool::Rustc)
        .filter(|r| r.option("--crate-name").is_some_and(|name| name != "___"))
        .filter(|r| !r.cwd.starts_with(project))
        .count() as f64
}

/// The bytes of the files under `dir`, each file once however many links it has.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}
