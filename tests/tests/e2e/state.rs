//! Program state across patches: `persist!` and plain statics, hot methods and impl blocks,
//! closures made by old code, a dependency's state, rollback on a panic, and
//! changes that only a restart brings.

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, status_messages};

use crate::{
    number, tick_before, tick_field, wait_first_tick, wait_tick, wait_tick_of_new_process,
};

const MAIN: &str = "src/main.rs";

/// Starts the state fixture and waits for its first tick and the watcher.
fn start() -> (Project, hotswap_tests::Session, String) {
    start_with(&[])
}

/// Starts the state fixture with `args` and waits for its first tick.
fn start_with(args: &[&str]) -> (Project, hotswap_tests::Session, String) {
    let project = Project::copy("state");
    let mut session = project.run(args);
    let first = wait_tick(&mut session, START_DEADLINE, &["count-one", "gen=0"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    (project, session, first)
}

/// A hot function counts in a plain static and in a `persist!` static; after each of two
/// patches the persisted count carries on from the last value the old code left, the plain one
/// starts again at 1, and the tool lists the plain static (only) as starting fresh.
#[test]
fn s08_persisted_counter_continues_and_plain_static_is_warned() {
    let (project, mut session, first) = start();
    for (generation, (old, new)) in [("count-one", "count-two"), ("count-two", "count-three")]
        .into_iter()
        .enumerate()
    {
        project.edit(MAIN, &format!("\"{old} "), &format!("\"{new} "));
        let line = wait_first_tick(
            &mut session,
            EDIT_DEADLINE,
            &[new, &format!("gen={}", generation + 1)],
        );
        let before = tick_before(&session.stdout(), &line);
        assert!(before.contains(old), "{before}");
        assert_eq!(
            number(&line, "plain"),
            1,
            "the plain static did not start fresh"
        );
        assert_eq!(
            number(&line, "kept"),
            number(&before, "kept") + 1,
            "the persisted count did not carry on: {before} then {line}"
        );
        assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
    }
    // Once a session, not on every patch.
    insta::assert_snapshot!(status_messages(&session.stderr(), "Warning").join("\n"), @"     Warning [HS0501] this static or thread-local of the crate will start fresh in the new code: `PLAIN`");
}

/// A hot method marked inside an impl block, and every kind of receiver of a whole hot impl
/// block (`&mut self`, `&self`, `self`), are patched in one save; the object's state carries on.
#[test]
fn hot_method_and_impl_block_are_patched() {
    let (project, mut session, first) = start();
    project.edit_all(
        MAIN,
        &[
            ("\"meter-one ", "\"meter-two "),
            ("\"counter-one ", "\"counter-two "),
            ("\"label-one ", "\"label-two "),
            ("self.n += 1;", "self.n += 10;"),
        ],
    );
    let line = wait_first_tick(
        &mut session,
        EDIT_DEADLINE,
        &["meter-two volts=230", "counter-two", "label-two", "gen=1"],
    );
    let before = tick_before(&session.stdout(), &line);
    assert!(before.contains("counter-one"), "{before}");
    assert_eq!(
        number(&line, "n"),
        number(&before, "n") + 10,
        "the counter did not carry on with the new `bump`: {before} then {line}"
    );
    assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
    session.wait_stderr(EDIT_DEADLINE, "generation 1: ");
    let patched = status_messages(&session.stderr(), "Patched");
    assert_eq!(patched.len(), 1, "{patched:?}");
    for name in [
        "Counter::bump",
        "Counter::describe",
        "Counter::into_label",
        "Meter::reading",
    ] {
        assert!(patched[0].contains(name), "{name} missing in {patched:?}");
    }
}

/// The host keeps a closure made by a hot function; after a patch the stored closure still
/// runs (the old code stays mapped) and a fresh call makes a closure with the new code.
#[test]
fn s05_stored_closure_from_old_code_is_still_callable() {
    let (project, mut session, first) = start();
    project.edit(MAIN, "\"closure-one ", "\"closure-two ");
    let line = wait_first_tick(
        &mut session,
        EDIT_DEADLINE,
        &["stored=closure-one stored fresh=closure-two fresh", "gen=1"],
    );
    // It keeps working, tick after tick.
    let count = number(&line, "kept");
    session.wait_stdout(EDIT_DEADLINE, |out| {
        out.lines()
            .filter(|l| l.contains("stored=closure-one stored fresh=closure-two fresh"))
            .any(|l| number(l, "kept") >= count + 3)
            .then_some(())
    });
    assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
}

/// After a patch, hot code calls a function of a dependency that the host never called;
/// it sees the state the host set through another function of that dependency.
#[test]
fn s07_dependency_function_never_called_by_host() {
    let (project, mut session, first) = start();
    assert!(first.contains("dep=dep-one"), "{first}");
    project.edit(MAIN, "\"dep-one\".to_owned()", "state_dep::shout()");
    let line = wait_first_tick(&mut session, EDIT_DEADLINE, &["dep=SET-BY-HOST", "gen=1"]);
    assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
}

/// A patch makes a `#[hot(rollback)]` function panic on its first call: the panic hook
/// reports it, the previous code is restored, and the tool says so. A function without rollback
/// that panics on its first call is reported too, and keeps its new code.
#[test]
fn s17_panic_on_first_call_rolls_back() {
    let (project, mut session, first) = start();
    project.edit(
        MAIN,
        "format!(\"risky-one {}\", tick % 2)",
        "if tick > 0 { panic!(\"risky-boom\") }\n    format!(\"risky-two {}\", tick % 2)",
    );
    session.wait_stderr(EDIT_DEADLINE, "Rolled back");
    let panicked = wait_first_tick(&mut session, EDIT_DEADLINE, &["risky=panicked"]);
    let after = wait_first_tick(&mut session, EDIT_DEADLINE, &["risky=risky-one", "gen=2"]);
    assert_eq!(tick_field(&after, "pid"), tick_field(&first, "pid"));
    let stdout = session.stdout();
    assert_eq!(stdout.matches("risky=panicked").count(), 1, "{stdout}");
    assert!(!stdout.contains("risky-two"), "{stdout}");
    assert!(
        tick_field(&panicked, "gen") == "1" || tick_field(&panicked, "gen") == "2",
        "{panicked}"
    );
    let stderr = session.stderr();
    assert!(
        stderr.contains("panicked at src/main.rs:") && stderr.contains("risky-boom"),
        "the host's panic hook did not report the panic: {stderr}"
    );
    insta::assert_snapshot!(status_messages(&stderr, "Rolled back").join("\n"), @r"
     Rolled back [HS0601] hot fn `risky` panicked on its first call: risky-boom
                 the code before that patch runs again (generation 2)
    ");

    // Without rollback: reported, and the new code stays.
    project.edit_all(
        MAIN,
        &[
            (
                "if tick > 0 { panic!(\"risky-boom\") }\n    format!(\"risky-two {}\", tick % 2)",
                "format!(\"risky-one {}\", tick % 2)",
            ),
            ("\"fragile-one\".to_owned()", "panic!(\"fragile-boom\")"),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "Panicked");
    wait_first_tick(&mut session, EDIT_DEADLINE, &["fragile=panicked", "gen=3"]);
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["fragile=panicked", "gen=3"]);
    let kept = number(&line, "kept");
    session.wait_stdout(EDIT_DEADLINE, |out| {
        out.lines()
            .filter(|l| l.contains("fragile=panicked") && l.contains("gen=3"))
            .any(|l| number(l, "kept") >= kept + 2)
            .then_some(())
    });
    insta::assert_snapshot!(status_messages(&session.stderr(), "Panicked").join("\n"), @r"
        Panicked [HS0602] hot fn `fragile` panicked on its first call: fragile-boom
                 the new code stays (generation 3); `#[hot(rollback)]` or `hotswap::set_rollback(true)` would restore the previous code
    ");
}

/// An edit of a function only `main` calls at start-up sends no patch: the tool says the
/// change takes effect only after a restart. With a hot edit in the same save, the patch carries
/// the hot change, and the warning names the other.
#[test]
fn s19_change_no_hot_function_reaches_needs_a_restart() {
    let (project, mut session, first) = start_with(&["--no-restart"]);
    project.edit(MAIN, "\"banner-one\"", "\"banner-two\"");
    session.wait_stderr(EDIT_DEADLINE, "Warning");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Warning").join("\n"), @"     Warning [HS0201] `banner` at src/main.rs:107 changed, but no hot function reaches it: the change takes effect only after a restart");
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["count-one"]);
    assert_eq!(tick_field(&line, "gen"), "0");
    session.assert_stderr_lacks("Patched");

    project.edit_all(
        MAIN,
        &[
            ("\"banner-two\"", "\"banner-three\""),
            ("\"meter-one ", "\"meter-two "),
        ],
    );
    let patched_line = wait_first_tick(&mut session, EDIT_DEADLINE, &["meter-two", "gen=1"]);
    session.wait_stderr_count(EDIT_DEADLINE, "no hot function reaches", 2);
    session.wait_stderr(EDIT_DEADLINE, "generation 1: ");
    let patched = status_messages(&session.stderr(), "Patched");
    assert!(patched[0].contains("Meter::reading"), "{patched:?}");
    assert!(!patched[0].contains("banner"), "{patched:?}");
    assert_eq!(tick_field(&patched_line, "pid"), tick_field(&first, "pid"));
}

/// An edit of code that only `main` runs at start-up (a changed start-up string): by default the
/// program restarts with the new code on its own, saying which function forced it and that
/// state is lost.
#[test]
fn s25_startup_only_edit_restarts_with_the_new_code() {
    let (project, mut session, first) = start();
    project.edit(MAIN, "\"banner-one\"", "\"banner-two\"");
    wait_tick_of_new_process(&mut session, EDIT_DEADLINE, &first, &["count-one", "gen=0"]);
    insta::assert_snapshot!(status_messages(&session.stderr(), "Restarting").join("\n"), @"  Restarting [HS0201] state (`banner` at src/main.rs:107 changed, and no hot function reaches it; state is lost)");
    assert!(
        session.stdout().contains("banner-two"),
        "{}",
        session.stdout()
    );
    session.assert_stderr_lacks("Patched");
}

/// Waits for the first frame line of the game loop containing all of `parts`; returns it.
fn wait_first_frame(session: &mut hotswap_tests::Session, parts: &[&str]) -> String {
    session.wait_stdout(EDIT_DEADLINE, |out| {
        out.lines()
            .find(|line| line.starts_with("frame=") && parts.iter().all(|p| line.contains(p)))
            .map(str::to_owned)
    })
}

/// Safe points: the game loop applies patches at `hotswap::safepoint()`, once per frame. A patch
/// of its physics arrives mid-frame (a frame is two physics substeps with a wait after each),
/// yet no frame mixes old and new physics; the new code first runs in the frame at whose start
/// `on_patch` reported the patch; and the simulation carries on (same frame count, score and
/// persisted draw count).
#[test]
fn safe_point_mode_applies_a_patch_only_at_the_next_safepoint() {
    let project = Project::copy("game-loop");
    let mut session = project.run(&[]);
    session.wait_stdout(START_DEADLINE, |out| {
        out.lines().find(|l| l.starts_with("frame=")).map(|_| ())
    });
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit("src/physics.rs", "\"bounce-one\"", "\"bounce-two\"");
    let report = session.wait_stdout(EDIT_DEADLINE, |out| {
        out.lines()
            .find(|l| l.starts_with("patched before frame="))
            .map(str::to_owned)
    });
    assert!(
        report.ends_with(" gen=1: physics::step"),
        "on_patch was not told the changed function: {report}"
    );
    let reported = number(&report, "frame");
    let first_new = wait_first_frame(&mut session, &["bounce-two"]);
    assert_eq!(
        number(&first_new, "frame"),
        reported,
        "the new code first ran in another frame than the safe point that applied it"
    );
    assert_eq!(tick_field(&first_new, "gen"), "1", "{first_new}");
    assert_eq!(
        tick_field(&first_new, "physics"),
        "bounce-two+bounce-two",
        "{first_new}"
    );
    let previous = wait_first_frame(&mut session, &[&format!("frame={} ", reported - 1)]);
    assert_eq!(
        tick_field(&previous, "physics"),
        "bounce-one+bounce-one",
        "{previous}"
    );
    assert!(number(&first_new, "score") >= number(&previous, "score"));
    assert_eq!(number(&first_new, "drawn"), number(&previous, "drawn") + 1);
    // A few more frames, then no frame may have mixed old and new substeps.
    wait_first_frame(&mut session, &[&format!("frame={} ", reported + 5)]);
    for line in session.stdout().lines().filter(|l| l.starts_with("frame=")) {
        let physics = tick_field(line, "physics");
        let (a, b) = physics.split_once('+').expect("two substeps");
        assert_eq!(a, b, "a frame mixed old and new code: {line}");
    }
    session.wait_stderr(EDIT_DEADLINE, "generation 1: physics::step");
}

/// A dependency's global state in full: the host installs a `log` logger and a `tracing` subscriber and runs a tokio
/// runtime; a patch makes the hot function log, enter a span, emit an event, and use
/// `Handle::current()` to inspect the runtime and spawn a task. All of it reaches the host's
/// logger, subscriber and runtime (one copy of each dependency's state).
#[test]
fn s06_tracing_and_tokio_handle_work_in_patched_code() {
    let project = Project::copy("runtime");
    let mut session = project.run(&[]);
    let first = wait_tick(&mut session, START_DEADLINE, &["report-one", "gen=0"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit(
        MAIN,
        "    format!(\"report-one tick={tick}\")\n",
        "    log::info!(\"log-two tick={tick}\");\n    \
         let span = tracing::info_span!(\"report_span\", version = \"two\");\n    \
         let _entered = span.enter();\n    \
         tracing::info!(tick, \"event-two\");\n    \
         let handle = tokio::runtime::Handle::current();\n    \
         handle.spawn(async move { println!(\"spawned-two tick={tick}\") });\n    \
         format!(\"report-two tick={tick} flavor={:?}\", handle.runtime_flavor())\n",
    );
    let line = wait_first_tick(
        &mut session,
        EDIT_DEADLINE,
        &["report-two", "flavor=MultiThread", "gen=1"],
    );
    let tick = tick_field(&line, "tick").to_owned();
    session.wait_stdout(EDIT_DEADLINE, |out| {
        out.contains(&format!("spawned-two tick={tick}\n"))
            .then_some(())
    });
    session.wait_stderr(
        EDIT_DEADLINE,
        &format!("[host-logger] log-two tick={tick}\n"),
    );
    session.wait_stderr(
        EDIT_DEADLINE,
        &format!("INFO report_span{{version=\"two\"}}: event-two tick={tick}\n"),
    );
    assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
}

/// A field added to the type of a `persist!` static (its written type unchanged): refused
/// before loading, naming the static and both sizes, since the running program's value has the
/// old layout.
#[test]
fn persisted_static_with_a_changed_layout_is_refused() {
    let (project, mut session, first) = start();
    project.edit_all(
        MAIN,
        &[
            (
                "struct Totals {\n    calls: u64,\n}",
                "struct Totals {\n    calls: u64,\n    extra: u64,\n}",
            ),
            ("Totals { calls: 0 }", "Totals { calls: 0, extra: 0 }"),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "Restarting");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Refused").join("\n"), @r"
         Refused [HS0103] persisted static `state::TOTALS` changed layout (16 -> 24 bytes)
                 the running program's value has the old layout; rename the static to start it fresh instead
    ");
    crate::wait_tick_of_new_process(&mut session, EDIT_DEADLINE, &first, &["gen=0"]);
}
