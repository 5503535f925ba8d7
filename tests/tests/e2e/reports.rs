//! Every message true: start-up edits of a server restart it (or wait, saying so), and a panic
//! in new code is told in the order it happened, without a false "never connected".

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, Session, get, status_messages};

use crate::{wait_tick, wait_tick_of_same_process};

const MAIN: &str = "src/main.rs";

/// Waits until `GET path` on the service that printed its address last answers `body`; returns
/// that address.
fn wait_served(session: &mut Session, path: &str, body: &str) -> String {
    let end = std::time::Instant::now() + EDIT_DEADLINE;
    loop {
        let addr = session.wait_listening();
        if get(&addr, path).is_ok_and(|answer| answer == body) {
            return addr;
        }
        assert!(
            std::time::Instant::now() < end,
            "`{path}` never answered `{body}`\n{}",
            session.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A new route in the time service's request handling, which only start-up code (`main`'s
/// accept loop) reaches, and a new log level set in `main`: the program restarts on its own,
/// naming the functions and the code, and serves the new route; nothing is patched.
#[test]
fn a_new_route_restarts_the_server_which_then_serves_it() {
    let project = Project::copy("time-service");
    let mut session = project.run(&[]);
    let addr = session.wait_listening();
    session.wait_stderr(START_DEADLINE, "    Watching ");
    let old_pid = get(&addr, "/pid").unwrap();
    project.edit_all(
        MAIN,
        &[
            (
                "        \"/pid\" =>",
                "        \"/hello\" => (\"200 OK\", \"hello\".to_owned()),\n        \"/pid\" =>",
            ),
            ("LevelFilter::Info", "LevelFilter::Debug"),
        ],
    );
    let addr = wait_served(&mut session, "/hello", "hello");
    assert_ne!(get(&addr, "/pid").unwrap(), old_pid);
    insta::assert_snapshot!(status_messages(&session.stderr(), "Restarting").join("\n"), @"  Restarting [HS0201] time-service (`main` at src/main.rs:74, `respond` at src/main.rs:25 changed, and no hot function reaches them; state is lost)");
    session.assert_stderr_lacks("Patched");
}

/// With `--no-restart`, an edit of `main` itself (the log level it sets) is one `Warning` line
/// naming `main` and the code, and the old program keeps serving from the same process.
#[test]
fn an_edit_of_main_waits_for_a_restart_with_one_line_under_no_restart() {
    let project = Project::copy("time-service");
    let mut session = project.run(&["--no-restart"]);
    let addr = session.wait_listening();
    session.wait_stderr(START_DEADLINE, "    Watching ");
    let pid = get(&addr, "/pid").unwrap();
    project.edit(MAIN, "LevelFilter::Info", "LevelFilter::Debug");
    session.wait_stderr(EDIT_DEADLINE, "     Warning ");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Warning").join("\n"), @"     Warning [HS0201] `main` at src/main.rs:73 changed, but no hot function reaches it: the change takes effect only after a restart");
    assert_eq!(get(&addr, "/pid").unwrap(), pid);
    for verb in ["Restarting", "Patched", "Refused"] {
        session.assert_stderr_lacks(verb);
    }
}

/// Patches compile only what the hot functions reach, yet start-up edits are still told apart,
/// whatever patches came before: a hot function's edit is patched alone; then an edit of `main`
/// (which no such patch compiles) waits for a restart naming `main` only, not the function
/// patched before; then a new `const` that the hot function reads (an item other than a
/// function, which only a build of every function can judge) is patched, naming that function
/// only, and nothing is said about `main` again.
#[test]
fn start_up_edits_are_told_apart_after_patches_of_either_build() {
    let project = Project::copy("time-service");
    let mut session = project.run(&["--no-restart"]);
    let addr = session.wait_listening();
    session.wait_stderr(START_DEADLINE, "    Watching ");
    let pid = get(&addr, "/pid").unwrap();
    project.edit(MAIN, "\"The time is ", "\"Time: ");
    wait_served_prefix(&mut session, &addr, "Time: ");
    project.edit(MAIN, "LevelFilter::Info", "LevelFilter::Debug");
    session.wait_stderr(EDIT_DEADLINE, "     Warning ");
    project.edit_all(
        MAIN,
        &[
            (
                "#[hotswap::hot]\nfn format_time",
                "const LABEL: &str = \"Clock\";\n\n#[hotswap::hot]\nfn format_time",
            ),
            ("\"Time: ", "\"{LABEL}: "),
        ],
    );
    wait_served_prefix(&mut session, &addr, "Clock: ");
    // The program serves the new code before the session has printed its `Patched` line.
    session.wait_stderr(EDIT_DEADLINE, "generation 2: ");
    assert_eq!(get(&addr, "/pid").unwrap(), pid);
    let patched: Vec<String> = status_messages(&session.stderr(), "Patched")
        .iter()
        .map(|line| {
            line.rsplit_once(") ")
                .map_or(line.clone(), |(_, end)| end.to_owned())
        })
        .collect();
    assert_eq!(
        patched,
        ["generation 1: format_time", "generation 2: format_time"],
        "{}",
        session.stderr()
    );
    insta::assert_snapshot!(status_messages(&session.stderr(), "Warning").join("\n"), @"     Warning [HS0201] `main` at src/main.rs:73 changed, but no hot function reaches it: the change takes effect only after a restart");
    session.assert_stderr_lacks("Restarting");
}

/// Waits until the time service at `addr` answers `/time` with a text starting with `prefix`.
fn wait_served_prefix(session: &mut Session, addr: &str, prefix: &str) {
    let end = std::time::Instant::now() + EDIT_DEADLINE;
    while !get(addr, "/time").is_ok_and(|answer| answer.starts_with(prefix)) {
        assert!(
            std::time::Instant::now() < end,
            "`/time` never answered `{prefix}...`\n{}",
            session.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The gate fixture with `beta` rolled back when new code panics on its first call.
fn gate_with_rollback() -> Project {
    let project = Project::copy("gate");
    project.edit(
        MAIN,
        "/// Another word the tests edit.\n#[hotswap::hot]",
        "/// Another word the tests edit.\n#[hotswap::hot(rollback)]",
    );
    project
}

/// The index in `stderr` of the first status line with `verb`.
fn line_of(stderr: &str, verb: &str) -> usize {
    let head = format!("{verb:>12} ");
    stderr
        .find(&head)
        .unwrap_or_else(|| panic!("no `{verb}` line in\n{stderr}"))
}

/// A loop program (no `catch_unwind`) whose new code panics on its first call with rollback
/// on: the code is rolled back, the panic still unwinds out of `main`, and the program exits.
/// The tool tells it in that order (`Patched`, `Rolled back`, `Exited`), and never says that
/// the program did not connect.
#[test]
fn a_panic_that_ends_a_loop_program_is_told_in_order() {
    let project = gate_with_rollback();
    let mut session = project.run(&[]);
    wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    // Past the time after which a program that never connected is reported, so that a
    // connection that closes as the program exits could be mistaken for one that never came.
    std::thread::sleep(std::time::Duration::from_secs(11));
    project.edit(MAIN, "    \"beta-one\"\n", "    panic!(\"beta-boom\")\n");
    session.wait_stderr(EDIT_DEADLINE, "      Exited ");
    let stderr = session.stderr();
    assert!(
        line_of(&stderr, "Patched") < line_of(&stderr, "Rolled back")
            && line_of(&stderr, "Rolled back") < line_of(&stderr, "Exited"),
        "{stderr}"
    );
    insta::assert_snapshot!(
        [
            status_messages(&stderr, "Rolled back"),
            status_messages(&stderr, "Exited"),
        ]
        .concat()
        .join("\n"),
        @r"
     Rolled back [HS0601] hot fn `beta` panicked on its first call: beta-boom
                 the code before that patch runs again (generation 2)
          Exited `gate` (exit status: 101); it starts again on the next successful build
    "
    );
    // The session goes on after the exit: a line said after it would come within a poll.
    std::thread::sleep(std::time::Duration::from_secs(1));
    session.assert_stderr_lacks("never connected");
}

/// A program that runs each call on a thread of its own, from a closure in `main` (as a threaded
/// server runs requests): new code that panics is rolled back, that thread ends, and the program
/// goes on in the same process with the old code; no `Exited`, no "never connected", and the
/// statics' warning does not name `main`.
#[test]
fn a_panic_on_a_worker_thread_rolls_back_and_the_program_goes_on() {
    let project = gate_with_rollback();
    project.edit(
        MAIN,
        "            beta()\n",
        "            std::thread::spawn(|| beta()).join().unwrap_or(\"beta-panicked\")\n",
    );
    let mut session = project.run(&[]);
    let first = wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit(MAIN, "    \"beta-one\"\n", "    panic!(\"beta-boom\")\n");
    session.wait_stderr(EDIT_DEADLINE, "Rolled back");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["beta-panicked"]);
    // The rollback is a generation of its own, running the old code.
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["beta-one", "gen=2"]);
    let stderr = session.stderr();
    assert!(line_of(&stderr, "Patched") < line_of(&stderr, "Rolled back"));
    // `main` has a closure and the crate has statics: the warning names the statics as written,
    // never `main`.
    insta::assert_snapshot!(status_messages(&stderr, "Warning").join("\n"), @"     Warning [HS0501] these statics and thread-locals of the crate will start fresh in the new code: `CALLS`, `LAST`");
    for text in ["Exited", "never connected", "Restarting"] {
        session.assert_stderr_lacks(text);
    }
}

/// A new hot function that only a new line of `main` calls: the running program has no hot
/// function that calls it, so the save changes only code that runs at start-up and restarts the
/// program (it was `Patched`, with nothing calling the new code).
#[test]
fn a_new_hot_function_only_main_calls_restarts_the_program() {
    let (project, mut session, first) = crate::start_gate(&[]);
    project.edit_all(
        "src/main.rs",
        &[
            (
                "fn main() {",
                "/// New in the save.\n#[hotswap::hot]\nfn gamma() -> &'static str {\n    \
                 \"gamma-one\"\n}\n\nfn main() {",
            ),
            (
                "\"tick pid={} gen={} {} {} {}\"",
                "\"tick pid={} gen={} {} {} {} {}\"",
            ),
            (
                "            beta()\n",
                "            beta(),\n            gamma()\n",
            ),
        ],
    );
    crate::wait_tick_of_new_process(&mut session, EDIT_DEADLINE, &first, &["gamma-one", "gen=0"]);
    let restarting = status_messages(&session.stderr(), "Restarting");
    assert_eq!(
        restarting,
        [
            "  Restarting [HS0201] gate (`gamma` at src/main.rs:50, `main` at src/main.rs:55 \
             changed, and no hot function reaches them; state is lost)"
        ],
        "{}",
        session.stderr()
    );
    assert!(
        status_messages(&session.stderr(), "Patched").is_empty(),
        "{}",
        session.stderr()
    );
}
