//! The scenario catalogue under `cargo hotswap run --redirect`, on fixtures whose `#[hot]` marks
//! are removed: the same edits as the tests of each capability, with what a user sees in this
//! mode. Where the mode's rules differ the test says how (a plain static keeps counting, a
//! signature change is refused by its symbol, a type is held when any function takes or returns
//! it); everything else is told exactly as with marks.

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, Session, status_messages};

use crate::{
    comment_and_reformat, number, tick_before, tick_field, wait_first_tick, wait_tick,
    wait_tick_of_new_process, wait_tick_of_same_process,
};

const MAIN: &str = "src/main.rs";

/// Copies `fixture`, removes its `#[hot]` marks, and starts `cargo hotswap run --redirect` with
/// `args`; waits for a tick line with `parts` and for the session to watch. Returns the
/// project, the session and that tick.
fn start(fixture: &str, args: &[&str], parts: &[&str]) -> (Project, Session, String) {
    let project = Project::copy(fixture);
    assert!(project.remove_hot_marks() > 0, "{fixture} has no marks");
    let args: Vec<&str> = std::iter::once("--redirect")
        .chain(args.iter().copied())
        .collect();
    let mut session = project.run(&args);
    let first = wait_tick(&mut session, START_DEADLINE, parts);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    (project, session, first)
}

/// The gate's scenarios on the gate fixture without marks, in one process (`--no-restart`):
/// a second session is refused naming the first (S14: one session per program); a comment line
/// and a reformatted function are `Unchanged` (S24); a field added to a struct used only inside
/// one function is patched and the state carries on, with the static and the thread-local
/// that function counts in (S11: no other function takes the struct, so no running value can
/// meet the new layout); a compile error keeps the old code and its fix
/// patches (S12); a field added to the struct `step` takes by `&mut` is refused naming the
/// function that takes it (S10); a changed parameter list is refused (S09).
#[test]
fn gate_scenarios_without_marks() {
    let (project, mut session, first) = start(
        "gate",
        &["--no-restart"],
        &["step-one", "alpha-one", "beta-one"],
    );
    let pid = tick_field(&first, "pid").to_owned();

    // One session per program.
    let mut second = project.run(&["--redirect"]);
    assert_eq!(second.wait_exit(START_DEADLINE), Some(1));
    let expected = format!(
        "error: another `cargo hotswap run` session (pid {}) is running `gate`",
        session.pid()
    );
    assert!(second.stderr().contains(&expected), "{}", second.stderr());

    // Comments and layout.
    comment_and_reformat(&project, &mut session);
    session.assert_stderr_lacks("Patching");

    // A type no function takes or returns.
    crate::add_field_to_scratch(&project);
    let line =
        wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["step-two", "gen=1"]);
    assert!(line.contains("scratch=16"), "{line}");
    let count = |line: &str| tick_field(line, "count").parse::<u64>().unwrap();
    assert!(count(&line) > count(&first), "{first} then {line}");
    session.assert_stderr_lacks("Refused");
    // `step` counts in a static and a thread-local: both stay the program's.
    session.assert_stderr_lacks("Warning [HS0501]");

    // A compile error, then its fix.
    project.edit(MAIN, "\"beta-one\"", "\"beta-two\" +");
    session.wait_stderr(EDIT_DEADLINE, "could not compile `gate`");
    project.edit(MAIN, "\"beta-two\" +", "\"beta-two\"");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["beta-two", "gen=2"]);

    // A field added to the state `step` takes by `&mut`.
    crate::add_field_to_state(&project);
    session.wait_stderr(EDIT_DEADLINE, "Kept");
    let refused = status_messages(&session.stderr(), "Refused");
    assert!(
        refused.iter().any(|r| r.contains(
            "[HS0102] `State` changed layout at src/main.rs:19: field `extra: u64` added at \
             offset 24; size 24 -> 32 bytes\n             the running program holds it: fn \
             `step` -> `state: &mut State` -> `State`"
        )),
        "{refused:?}"
    );
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["step-two", "gen=2"]);

    // The field removed again, and `alpha` given a parameter.
    project.edit_all(
        MAIN,
        &[
            (
                "    label: &'static str,\n    extra: u64,\n}",
                "    label: &'static str,\n}",
            ),
            (
                "count: 0, label: \"state\", extra: 1 }",
                "count: 0, label: \"state\" }",
            ),
            ("state.count += state.extra;", "state.count += 1;"),
            (
                "fn alpha()->&'static str{",
                "fn alpha(times: u32)->&'static str{\n    let _ = times;",
            ),
            ("            alpha(),", "            alpha(2),"),
        ],
    );
    session.wait_stderr_count(EDIT_DEADLINE, "Kept", 2);
    let refused = status_messages(&session.stderr(), "Refused");
    assert_eq!(
        refused.last().map(String::as_str),
        Some(
            "     Refused [HS0109] `alpha` at src/main.rs:40 cannot be redirected: the running \
             program has it under another symbol (its signature changed), and `main` calls it \
             and is not redirected\n             the \
             running program's calls of it would go on running the old code"
        ),
        "{refused:?}"
    );
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["alpha-one", "gen=2"]);
    assert_eq!(tick_field(&first, "pid"), pid);
}

/// The state scenarios on the state fixture without marks, in one process until the last edit:
/// a plain static and a `persist!` static both carry on through a patch, and no static is
/// warned about (S08: the patch's references to the crate's statics are bound to the running
/// program's); methods with every kind of receiver are patched and the object's state carries on;
/// a closure the program stored runs the new code of its body, as a fresh one does (S05: its
/// captures kept their layout); new code calls a dependency function the program never called
/// and sees the state the program set (S07); new code that panics is reported by the program's
/// panic hook and the program goes on (S17: without `#[hot(rollback)]` there is no rollback);
/// an edit of code only `main` runs at start-up restarts with the new code (S25).
#[test]
fn state_scenarios_without_marks() {
    let (project, mut session, first) = start("state", &[], &["count-one", "gen=0"]);

    project.edit_all(
        MAIN,
        &[
            ("\"count-one ", "\"count-two "),
            ("\"counter-one ", "\"counter-two "),
            ("self.n += 1;", "self.n += 10;"),
        ],
    );
    let patched = wait_first_tick(&mut session, EDIT_DEADLINE, &["count-two", "gen=1"]);
    // The first tick of the new `count`: the program reads the generation before it calls
    // `count`, so a patch applied in between shows as new code at generation 0.
    let line = wait_first_tick(&mut session, EDIT_DEADLINE, &["count-two"]);
    let before = tick_before(&session.stdout(), &line);
    assert!(before.contains("count-one"), "{before}");
    assert_eq!(
        number(&line, "plain"),
        number(&before, "plain") + 1,
        "{before} then {line}"
    );
    assert_eq!(
        number(&line, "kept"),
        number(&before, "kept") + 1,
        "{before} then {line}"
    );
    // The new `bump` adds 10 from one tick to the next.
    let next = session.wait_stdout(EDIT_DEADLINE, |out| {
        let ticks: Vec<&str> = out.lines().filter(|l| l.starts_with("tick ")).collect();
        let at = ticks.iter().position(|l| *l == patched)?;
        ticks.get(at + 1).map(|l| (*l).to_owned())
    });
    assert!(next.contains("counter-two"), "{next}");
    assert_eq!(
        number(&next, "n"),
        number(&patched, "n") + 10,
        "{patched} then {next}"
    );
    assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
    session.wait_stderr(EDIT_DEADLINE, "generation 1: ");
    session.assert_stderr_lacks("Warning");

    project.edit(MAIN, "\"closure-one ", "\"closure-two ");
    wait_first_tick(
        &mut session,
        EDIT_DEADLINE,
        &["stored=closure-two stored fresh=closure-two fresh", "gen=2"],
    );

    project.edit(MAIN, "\"dep-one\".to_owned()", "state_dep::shout()");
    wait_first_tick(&mut session, EDIT_DEADLINE, &["dep=SET-BY-HOST", "gen=3"]);

    project.edit(
        MAIN,
        "format!(\"risky-one {}\", tick % 2)",
        "if tick > 0 { panic!(\"risky-boom\") }\n    format!(\"risky-two {}\", tick % 2)",
    );
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["risky=panicked", "gen=4"]);
    assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
    let stderr = session.stderr();
    assert!(
        stderr.contains("panicked at src/main.rs:") && stderr.contains("risky-boom"),
        "the program's panic hook did not report the panic: {stderr}"
    );
    session.assert_stderr_lacks("Rolled back");

    project.edit(MAIN, "\"banner-one\"", "\"banner-two\"");
    wait_tick_of_new_process(&mut session, EDIT_DEADLINE, &first, &["count-two", "gen=0"]);
    let restarting = status_messages(&session.stderr(), "Restarting");
    assert_eq!(
        restarting,
        [
            "  Restarting [HS0201] state (`banner` at src/main.rs:100 changed, and it is called \
          only by start-up code (`main` outside any loop, and what only that calls), so no \
          redirection reaches it; state is lost)"
        ]
    );
    assert!(
        session.stdout().contains("banner-two"),
        "{}",
        session.stdout()
    );
}

/// The program's surroundings without marks: a program that changes its working directory at
/// start-up is patched (S16), and its patched code logs through the logger the program
/// installed and downcasts the program's values behind `dyn Any` (S06); killed, it restarts on
/// the next edit from the current sources, and the next edit patches the new process (S18: its
/// entries are found anew, nothing planned for the dead one is applied).
#[test]
fn surroundings_scenarios_without_marks() {
    let (project, mut session, first) = start("probe", &[], &["report-one found=marker"]);
    assert_eq!(
        tick_field(&first, "cwd"),
        std::env::temp_dir().display().to_string()
    );
    session.wait_stderr(EDIT_DEADLINE, "[host-logger] report says log-one");
    project.edit_all(
        MAIN,
        &[
            ("report says log-one", "report says log-two"),
            ("\"report-one found=", "\"report-two found="),
        ],
    );
    wait_tick_of_same_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["gen=1", "report-two found=marker"],
    );
    session.wait_stderr(EDIT_DEADLINE, "[host-logger] report says log-two");

    let killed = std::process::Command::new("kill")
        .args(["-9", tick_field(&first, "pid")])
        .status()
        .unwrap();
    assert!(killed.success());
    session.wait_stderr(EDIT_DEADLINE, "      Exited `probe` (signal: 9 (SIGKILL))");
    project.edit(MAIN, "\"report-two found=", "\"report-three found=");
    session.wait_stderr(
        EDIT_DEADLINE,
        "  Restarting [HS0303] probe (the program is not running; state is lost)",
    );
    let second = wait_tick_of_new_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["gen=0", "report-three found=marker"],
    );
    project.edit(MAIN, "\"report-three found=", "\"report-four found=");
    wait_tick_of_same_process(
        &mut session,
        EDIT_DEADLINE,
        &second,
        &["gen=1", "report-four found=marker"],
    );
}

/// A dependency added to the manifest of the gate fixture without marks: no patch, the host is
/// rebuilt and restarted, saying why (S13); the restarted program is patched to call the new
/// dependency. A patch that needs a symbol the program lacks is refused before loading.
#[test]
fn manifest_and_symbol_scenarios_without_marks() {
    let (project, mut session, first) = start("gate", &[], &["beta-one"]);
    project.edit(
        "Cargo.toml",
        "[dependencies]\n",
        "[dependencies]\ngate-extra = { path = \"extra\" }\n",
    );
    session.wait_stderr(EDIT_DEADLINE, "Restarting");
    assert_eq!(
        status_messages(&session.stderr(), "Restarting"),
        [
            "  Restarting [HS0301] gate (`Cargo.toml` changed, which the patch cannot carry: the \
          host is rebuilt; state is lost)"
        ]
    );
    let restarted = wait_tick_of_new_process(&mut session, EDIT_DEADLINE, &first, &["gen=0"]);
    project.edit(MAIN, "\"beta-one\"", "gate_extra::word()");
    wait_tick_of_same_process(
        &mut session,
        EDIT_DEADLINE,
        &restarted,
        &["extra-one", "gen=1"],
    );

    crate::call_an_absent_symbol(&project, "    gate_extra::word()\n");
    session.wait_stderr(EDIT_DEADLINE, "Refused [HS0105]");
    assert!(
        status_messages(&session.stderr(), "Refused").contains(
            &"     Refused [HS0105] the patch needs a symbol the running program does not \
              contain:\n             `hotswap_test_absent_symbol`"
                .to_owned()
        ),
        "{}",
        session.stderr()
    );
}
