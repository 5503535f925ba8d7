//! Entry redirection (`cargo hotswap run --redirect`, on a copy with its `#[hot]` marks
//! removed): edit -> effect, the time to apply each patch, and how long the program's threads
//! were stopped, over the same edits as with hot functions.

use hotswap_tests::Project;

use crate::edits::{
    after_link, apply_edit, cargo_floor, edit_count, floor_goal, floor_goal_text, is_patch_link,
    is_patch_rustc, only, start_session, up_to_link, verdict,
};
use crate::fixture::{Dirs, Fixture};
use crate::table::{self, Table, Unit, format, percentile};
use crate::{Bench, wrap};

/// Samples of one fixture's patches under `--redirect`, in milliseconds.
#[derive(Default)]
pub struct Redirected {
    effect: Vec<f64>,
    /// The patch's rustc run (every function of the crate) up to its link.
    rustc: Vec<f64>,
    /// The patch's rustc run after its link, which the tool does not wait for.
    rustc_tail: Vec<f64>,
    /// The patch's link, by the real linker.
    link: Vec<f64>,
    /// The gate, with the redirection's plan.
    check: Vec<f64>,
    /// The crate compiled as cargo compiles it, plus the patch's link (see [`cargo_floor`]).
    floor: Vec<f64>,
    /// Whether each edit met the goal against its floor.
    floor_goal: Vec<bool>,
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
    let floor_log = dirs.logs.join("redirect-floor.jsonl");
    let mut floor_offset = 0;
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
        if n <= bench.runs {
            let rustc = only(
                &applied.records,
                is_patch_rustc,
                "successful patch rustc run",
            );
            let link = only(&applied.records, is_patch_link, "patch link");
            // The first edit's replay warms the floor's incremental cache, as the session's
            // baseline build warmed the tool's.
            let floor = cargo_floor(
                bench,
                rustc,
                (&dirs.floor, &floor_log, &mut floor_offset),
                link.ms(),
            );
            if n > 0 {
                let effect = (applied.stamp - applied.written) as f64 / 1e6;
                samples.effect.push(effect);
                samples.rustc.push(up_to_link(rustc, link));
                samples.rustc_tail.push(after_link(rustc, link));
                samples.link.push(link.ms());
                samples.check.extend(applied.patched.check_ms);
                samples.floor.push(floor);
                samples
                    .floor_goal
                    .push(effect <= floor_goal(fixture, floor));
            }
        }
        if n == 0 {
            continue;
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
    pub fn report(&self, table: &mut Table, fixture: &Fixture) {
        table.samples(
            "edit -> effect (--redirect, marks removed)",
            Unit::Ms,
            &self.effect,
        );
        table.samples(
            "  rustc (patch of every function, up to its link)",
            Unit::Ms,
            &self.rustc,
        );
        table.samples("  link (patch, real linker)", Unit::Ms, &self.link);
        table.samples(
            "  check (compatibility gate, redirection plan)",
            Unit::Ms,
            &self.check,
        );
        table.samples("  apply (host: dlopen + redirection)", Unit::Ms, &self.load);
        table.samples(
            "  rustc after the link (not waited for)",
            Unit::Ms,
            &self.rustc_tail,
        );
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
        table.samples(
            "floor (the crate as cargo compiles it + the patch's link)",
            Unit::Ms,
            &self.floor,
        );
        if let (Some(effect), Some(floor)) =
            (table::median(&self.effect), table::median(&self.floor))
        {
            let goal = floor_goal(fixture, floor);
            table.text(
                "edit -> effect (--redirect) / floor (medians)",
                format!(
                    "{}; goal <= {} = {}: {} ({} of {} edits)",
                    format(Unit::Ratio, effect / floor),
                    floor_goal_text(fixture),
                    format(Unit::Ms, goal),
                    verdict(effect <= goal),
                    self.floor_goal.iter().filter(|g| **g).count(),
                    self.effect.len()
                ),
            );
        }
    }
}
