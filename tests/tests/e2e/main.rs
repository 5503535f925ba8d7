//! End-to-end tests: real `cargo hotswap run` sessions on copies of the fixture projects, real
//! edits on disk, real sockets. Each asserts what a user would see. One binary, one module per
//! capability.

mod catalogue;
mod crates;
mod gate;
mod layouts;
mod programs;
mod redirect;
mod reports;
mod session;
mod setup;
mod skeleton;
mod state;
mod terminal;
mod trust;
mod watch;

use std::time::Duration;

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, Session};

/// Starts the gate fixture with `args` and waits for its first tick and for the session to
/// watch; returns the project, the session and that tick.
pub(crate) fn start_gate(args: &[&str]) -> (Project, Session, String) {
    let project = Project::copy("gate");
    let mut session = project.run(args);
    let first = wait_tick(
        &mut session,
        START_DEADLINE,
        &["step-one", "alpha-one", "beta-one"],
    );
    session.wait_stderr(START_DEADLINE, "    Watching ");
    (project, session, first)
}

/// Waits for a tick line (the fixtures print `tick pid=.. gen=.. ...`) containing all of
/// `parts`; returns it.
pub(crate) fn wait_tick(session: &mut Session, deadline: Duration, parts: &[&str]) -> String {
    session.wait_stdout(deadline, |out| {
        out.lines()
            .rev()
            .find(|line| line.starts_with("tick ") && parts.iter().all(|p| line.contains(p)))
            .map(str::to_owned)
    })
}

/// Waits for the first tick line containing all of `parts`; returns it.
pub(crate) fn wait_first_tick(session: &mut Session, deadline: Duration, parts: &[&str]) -> String {
    session.wait_stdout(deadline, |out| {
        out.lines()
            .find(|line| line.starts_with("tick ") && parts.iter().all(|p| line.contains(p)))
            .map(str::to_owned)
    })
}

/// The tick line just before `line` in `stdout`.
pub(crate) fn tick_before(stdout: &str, line: &str) -> String {
    let ticks: Vec<&str> = stdout.lines().filter(|l| l.starts_with("tick ")).collect();
    let at = ticks
        .iter()
        .position(|l| *l == line)
        .unwrap_or_else(|| panic!("{line:?} is not a tick line of the output"));
    assert!(at > 0, "{line:?} is the first tick line");
    ticks[at - 1].to_owned()
}

/// Waits for a tick line of a process other than the one that printed `first`, containing all of
/// `parts`; returns it.
pub(crate) fn wait_tick_of_new_process(
    session: &mut Session,
    deadline: Duration,
    first: &str,
    parts: &[&str],
) -> String {
    let pid = tick_field(first, "pid").to_owned();
    session.wait_stdout(deadline, |out| {
        out.lines()
            .rev()
            .find(|line| {
                line.starts_with("tick ")
                    && tick_field(line, "pid") != pid
                    && parts.iter().all(|p| line.contains(p))
            })
            .map(str::to_owned)
    })
}

/// Waits for a tick line containing all of `parts`, and checks that the process that printed
/// `first` printed it (no restart); returns it.
pub(crate) fn wait_tick_of_same_process(
    session: &mut Session,
    deadline: Duration,
    first: &str,
    parts: &[&str],
) -> String {
    let line = wait_tick(session, deadline, parts);
    assert_eq!(tick_field(&line, "pid"), tick_field(first, "pid"));
    line
}

/// Waits for a tick line containing all of `parts` from the process that printed `first`, and
/// checks that nothing was patched: the old code kept running in the same process.
pub(crate) fn wait_old_code_kept(
    session: &mut Session,
    deadline: Duration,
    first: &str,
    parts: &[&str],
) -> String {
    let line = wait_tick_of_same_process(session, deadline, first, parts);
    session.assert_stderr_lacks("Patched");
    line
}

/// In the gate fixture started as `first`: edits `beta`'s word and waits until the same process
/// runs it (generation 1).
pub(crate) fn patch_beta(project: &Project, session: &mut Session, first: &str) {
    project.edit("src/main.rs", "\"beta-one\"", "\"beta-two\"");
    wait_tick_of_same_process(session, EDIT_DEADLINE, first, &["beta-two", "gen=1"]);
}

/// The number after `name=` in a tick line.
pub(crate) fn number(line: &str, name: &str) -> u64 {
    tick_field(line, name)
        .parse()
        .unwrap_or_else(|_| panic!("`{name}=` is not a number in {line:?}"))
}

/// Replaces the line `line` of the gate fixture's `src/main.rs` (with its indentation and line
/// end) by a call of `hotswap_test_absent_symbol`, a symbol no program defines, which returns
/// `"beta-two"` if it ever returned: the gate must refuse the patch (HS0105).
pub(crate) fn call_an_absent_symbol(project: &Project, line: &str) {
    project.edit(
        "src/main.rs",
        line,
        "    unsafe extern \"C\" {\n        fn hotswap_test_absent_symbol() -> u32;\n    }\n    \
         // SAFETY: never called: the gate refuses the patch.\n    \
         if unsafe { hotswap_test_absent_symbol() } == 1 { \"never\" } else { \"beta-two\" }\n",
    );
}

/// In the gate fixture: a comment line added at the top of `src/main.rs`, then `alpha`
/// reformatted; waits for the two `Unchanged` lines.
pub(crate) fn comment_and_reformat(project: &Project, session: &mut Session) {
    let text = std::fs::read_to_string(project.path().join("src/main.rs")).unwrap();
    std::fs::write(
        project.path().join("src/main.rs"),
        format!("// A note about this file.\n\n{text}"),
    )
    .unwrap();
    session.wait_stderr(EDIT_DEADLINE, "Unchanged");
    project.edit(
        "src/main.rs",
        "fn alpha() -> &'static str {\n    \"alpha-one\"\n}",
        "fn alpha()->&'static str{\n        \"alpha-one\" }",
    );
    session.wait_stderr_count(EDIT_DEADLINE, "Unchanged", 2);
}

/// In the gate fixture: a field added to `State`, which `step` takes by `&mut` and `main`
/// holds, and used.
pub(crate) fn add_field_to_state(project: &Project) {
    project.edit_all(
        "src/main.rs",
        &[
            (
                "    label: &'static str,\n}",
                "    label: &'static str,\n    extra: u64,\n}",
            ),
            (
                "count: 0, label: \"state\" }",
                "count: 0, label: \"state\", extra: 1 }",
            ),
            ("state.count += 1;", "state.count += state.extra;"),
        ],
    );
}

/// In the gate fixture: a field added to `Scratch`, which only `step` uses (a local), and
/// `step`'s output changed to `step-two ... scratch=16`.
pub(crate) fn add_field_to_scratch(project: &Project) {
    project.edit_all(
        "src/main.rs",
        &[
            (
                "struct Scratch {\n    a: u32,\n}",
                "struct Scratch {\n    a: u32,\n    b: u64,\n}",
            ),
            ("Scratch { a: 7 };", "Scratch { a: 7, b: 9 };"),
            (
                "\"step-one count={} scratch={} {}\", state.count, scratch.a,",
                "\"step-two count={} scratch={} {}\", state.count, scratch.a + scratch.b as u32,",
            ),
        ],
    );
}

/// The value of field `name=` in a tick line.
pub(crate) fn tick_field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no `{name}=` in {line:?}"))
}

/// In the gate fixture, after `"beta-two" +` broke the build: one save that fixes it and gives
/// the hot function `alpha` a parameter (a refused patch).
pub(crate) fn fix_and_change_alpha_signature(project: &Project) {
    project.edit_all(
        "src/main.rs",
        &[
            ("\"beta-two\" +", "\"beta-two\""),
            (
                "fn alpha() -> &'static str {",
                "fn alpha(n: u8) -> &'static str {\n    let _ = n;",
            ),
            ("            alpha(),", "            alpha(1),"),
        ],
    );
}

/// Waits until `GET /time` answers with a body starting with `prefix`.
pub(crate) fn wait_time_prefix(addr: &str, prefix: &str) -> String {
    let end = std::time::Instant::now() + EDIT_DEADLINE;
    loop {
        let answer = hotswap_tests::get(addr, "/time");
        if let Ok(body) = &answer
            && body.starts_with(prefix)
        {
            return body.clone();
        }
        assert!(
            std::time::Instant::now() < end,
            "`/time` never answered with `{prefix}`; last answer: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
