//! Entry redirection (`cargo hotswap run --redirect`, on a copy with its `#[hot]` marks
//! removed): edit -> effect, the time to apply each patch, and how long the program's threads
//! were stopped, over the same edits as with hot functions.

use hotswap_tests::Project;

use crate::edits::{apply_edit, edit_count, start_session};
use crate::fixture::{Dirs, Fixture};
use crate::table::{Table, Unit, format, percentile};
use crate::{Bench, wrap};

/// Samples of one fixture's patches under `--redirect`, in milliseconds.
#[derive(Default)]
pub struct Redirected {
    effect: Vec<f64>,
    load: Vec<f64>,
    pause: Vec<f64>,
}

/// Runs `bench.runs` measured edits of `fixture` (and, for the time service, more up to
/// `bench.patches`, for the pause's tail) under `--redirect` on a fresh copy without marks,
/// after one first edit that is not measured.
pub fn run(bench: &Bench, fixture: &Fixture, dirs: &Dirs) -> Redirected {
    let project = Project::copy(fixture.source);
    if let Some(generate) = fixture.generate {
        generate(project.path());
    }
    assert!(
        project.remove_hot_marks() > 0,
        "{} has no marks",
        fixture.name
    );
    let total = edit_count(bench, fixture);
    let log = dirs.logs.join("redirect.jsonl");
    let (mut session, addr) = start_session(
        bench,
        fixture,
        &project,
        &dirs.hotswap,
        &log,
        &["--redirect"],
    );
    // The start's records (the host build, the baseline patch builds) are not this loop's.
    let mut offset = 0;
    wrap::read_since(&log, &mut offset);
    let mut samples = Redirected::default();
    let mut current = fixture.line.to_owned();
    for n in 0..total {
        let applied = apply_edit(
            bench,
            (fixture, &project),
            (&mut session, &addr),
            (&log, &mut offset),
            &mut current,
            n,
        );
        if n == 0 {
            continue;
        }
        if n <= bench.runs {
            samples
                .effect
                .push((applied.stamp - applied.written) as f64 / 1e6);
        }
        samples.load.extend(applied.patched.load_ms);
        samples.pause.extend(applied.patched.pause_ms);
    }
    assert_eq!(
        samples.pause.len(),
        total - 1,
        "every patch redirected entries\n{}",
        session.dump()
    );
    samples
}

impl Redirected {
    /// Adds the rows to the current section of `table`.
    pub fn report(&self, table: &mut Table) {
        table.samples(
            "edit -> effect (--redirect, marks removed)",
            Unit::Ms,
            &self.effect,
        );
        table.samples("  apply (host: dlopen + redirection)", Unit::Ms, &self.load);
        table.samples("  pause (threads stopped)", Unit::Ms, &self.pause);
        if !self.pause.is_empty() {
            table.text(
                "  pause p50 / p99",
                format!(
                    "{} / {} over {} patches",
                    format(Unit::Ms, percentile(&self.pause, 50.0)),
                    format(Unit::Ms, percentile(&self.pause, 99.0)),
                    self.pause.len()
                ),
            );
        }
    }
}
