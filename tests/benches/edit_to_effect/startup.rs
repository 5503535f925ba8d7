//! First start to ready: `cargo run` against `cargo hotswap run`, cold (empty target directory,
//! dependencies downloaded) and warm (everything fresh).

use std::path::Path;
use std::process::Command;

use hotswap_tests::{Project, START_DEADLINE};

use crate::fixture::{Dirs, Fixture};
use crate::process::{self, Process};
use crate::table::{Table, Unit};
use crate::wrap::{self, Invocation};
use crate::{Bench, now_ns};

/// Samples of one fixture's starts, in ms.
#[derive(Default)]
pub struct Startup {
    cold_plain: Vec<f64>,
    cold_hotswap: Vec<f64>,
    warm_plain: Vec<f64>,
    warm_hotswap: Vec<f64>,
    /// Warm `cargo hotswap run`: start to the rlib replay (cargo metadata, the fresh cargo build,
    /// reading the capture).
    warm_cargo: Vec<f64>,
    /// Warm: the crate replayed as an rlib.
    warm_rlib: Vec<f64>,
    /// Warm: the shim compiled and linked.
    warm_shim: Vec<f64>,
    /// Warm: the host link alone.
    warm_host_link: Vec<f64>,
    /// Size of the host executable, KiB.
    host_kib: Vec<f64>,
    /// Size of the plain executable, KiB.
    plain_kib: Vec<f64>,
}

/// Starts the fixture `bench.runs` times each way, warm, after one cold start each way (if
/// `bench.cold`).
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
        startup.cold_hotswap.push(to_ready(
            bench,
            fixture,
            bench.hotswap(project.path(), &dirs.hotswap, &log, &[]),
        ));
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
        wrap::read_since(&log, &mut offset);
        let started = now_ns();
        startup.warm_hotswap.push(to_ready(
            bench,
            fixture,
            bench.hotswap(project.path(), &dirs.hotswap, &log, &[]),
        ));
        startup.host_phases(&wrap::read_since(&log, &mut offset), started);
    }
    startup
        .plain_kib
        .extend(size_kib(&dirs.plain.join("debug").join(fixture.bin)));
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
    let (_, answered) = process::poll(
        &addr,
        fixture.path,
        bench.poll,
        START_DEADLINE,
        |_| Some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", process.dump()));
    (answered - start) as f64 / 1e6
}

impl Startup {
    /// Splits a warm `cargo hotswap run` start into the host build's steps, from the wrappers'
    /// records.
    fn host_phases(&mut self, records: &[Invocation], started: u64) {
        let rlib = records
            .iter()
            .find(|r| r.is_rustc_of("rlib") && r.args.iter().any(|a| a == "link-dead-code"));
        let shim = records.iter().find(|r| r.compiles("hotswap_host"));
        if let Some(rlib) = rlib {
            self.warm_cargo
                .push((rlib.start_ns.saturating_sub(started)) as f64 / 1e6);
            self.warm_rlib.push(rlib.ms());
        }
        if let Some(shim) = shim {
            self.warm_shim.push(shim.ms());
            let link = records.iter().find(|r| {
                r.link_output().is_some() && r.start_ns >= shim.start_ns && r.end_ns <= shim.end_ns
            });
            if let Some(link) = link {
                self.warm_host_link.push(link.ms());
                self.host_kib.extend(link.link_output().and_then(size_kib));
            }
        }
    }

    /// Adds the rows to the table.
    pub fn report(&self, table: &mut Table) {
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
            "  tool start, cargo metadata, cargo build (fresh)",
            Unit::Ms,
            &self.warm_cargo,
        );
        table.samples("  rlib replay", Unit::Ms, &self.warm_rlib);
        table.samples("  host shim compile + link", Unit::Ms, &self.warm_shim);
        table.samples("    of which the host link", Unit::Ms, &self.warm_host_link);
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
