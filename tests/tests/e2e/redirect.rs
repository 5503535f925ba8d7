//! Entry redirection (`cargo hotswap run --redirect`): a program without `#[hot]` marks, every
//! changed function patched in the same process.

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, get, status_messages};

use crate::{
    number, tick_before, tick_field, wait_first_tick, wait_tick, wait_tick_of_new_process,
    wait_tick_of_same_process, wait_time_prefix,
};

const MAIN: &str = "src/main.rs";

/// Starts `cargo hotswap run --redirect` (and `extra` arguments) on `project`, a service, and
/// waits until it listens and the session watches; returns the session and the address.
fn start_service(project: &Project, extra: &[&str]) -> (hotswap_tests::Session, String) {
    let args: Vec<&str> = std::iter::once("--redirect")
        .chain(extra.iter().copied())
        .collect();
    start_with(project, &args)
}

/// A copy of the time service with the Rust items `items` before its status function, and the
/// `format!` line of that function replaced by `status`.
fn time_service_with(items: &str, status: &str) -> Project {
    let project = Project::copy("time-service");
    project.edit_all(
        MAIN,
        &[
            (STATUS_DOC, &format!("{items}\n\n{STATUS_DOC}")),
            (STATUS_LINE, status),
        ],
    );
    project
}

/// The doc comment of the time service's status function, before which tests add items.
const STATUS_DOC: &str = "/// The status line and body answering";

/// The `format!` line of the time service's status function.
const STATUS_LINE: &str = "    format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC\")";

/// Starts `cargo hotswap run` with `args` on `project`, a service, and waits until it listens
/// and the session watches; returns the session and the address.
fn start_with(project: &Project, args: &[&str]) -> (hotswap_tests::Session, String) {
    let mut session = project.run(args);
    let addr = session.wait_listening();
    session.wait_stderr(START_DEADLINE, "    Watching ");
    (session, addr)
}

/// Starts `cargo hotswap run` on `project`, a service, as [`start_with`] does: with its `#[hot]`
/// marks removed and `--redirect` when `redirect`, else as it is.
fn start_in_mode(project: &Project, redirect: bool) -> (hotswap_tests::Session, String) {
    if redirect {
        assert!(project.remove_hot_marks() > 0);
        start_with(project, &["--redirect"])
    } else {
        start_with(project, &[])
    }
}

/// Removes the dependency on the runtime crate from the project's manifest.
fn remove_runtime(project: &Project) {
    let path = project.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("cargo-hotswap-runtime"))
        .collect();
    assert_eq!(kept.len() + 1, text.lines().count(), "{text}");
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
}

/// The time service with its one `#[hot]` mark and its dependency on the runtime crate removed,
/// run as it is (`cargo hotswap run`, no flag), under continuous requests: the session says
/// that every changed function is patched by entry redirection (the host links cargo-hotswap's
/// own agent); an edit of the time format, a new route in `respond` and the format edited back
/// each take effect in the same process; no request fails, every answer is one version's whole
/// answer, and each `Patched` line tells how long the program's threads were stopped. An edit
/// of `main`, which is running, restarts.
#[test]
fn a_program_without_hot_marks_is_patched_by_entry_redirection() {
    let project = Project::copy("time-service");
    assert!(project.remove_hot_marks() > 0);
    remove_runtime(&project);
    let (mut session, addr) = start_with(&project, &[]);
    assert_eq!(
        status_messages(&session.stderr(), "Note"),
        [
            "        Note `time-service` does not depend on `cargo-hotswap-runtime`: every changed \
          function is patched by entry redirection (as with `--redirect`)"
        ]
    );
    wait_time_prefix(&addr, "The time is ");
    let pid = get(&addr, "/pid").unwrap();
    let load = hotswap_tests::Load::start(&addr, "/time", 2);

    project.edit(MAIN, "\"The time is ", "\"Time now: ");
    wait_time_prefix(&addr, "Time now: ");
    session.wait_stderr(EDIT_DEADLINE, "generation 1: format_time");
    project.edit(
        MAIN,
        "\"/pid\" => ",
        "\"/hello\" => (\"200 OK\", \"hello there\".to_owned()),\n        \"/pid\" => ",
    );
    session.wait_stderr(EDIT_DEADLINE, "generation 2: respond");
    assert_eq!(get(&addr, "/hello").as_deref(), Ok("hello there"));
    // `format_time` again, with a closure after its closure and one before it (all are
    // `format_time::{closure}` to the tool; the one before renumbers the old one, which then
    // has another symbol): its entry in the executable and in the first patch jump to the
    // third patch's.
    project.edit_all(
        MAIN,
        &[
            ("\"Time now: ", "\"The time is "),
            (
                "    let secs = now",
                "    let now = [now].into_iter().map(|t| t).next().unwrap_or(now);\n    \
                 let secs = now",
            ),
            (
                "let (hours,",
                "let secs: u64 = [secs].iter().map(|s| s + 0).sum();\n    let (hours,",
            ),
        ],
    );
    wait_time_prefix(&addr, "The time is ");
    session.wait_stderr(EDIT_DEADLINE, "generation 3: format_time");

    let answers = load.stop();
    let failures: Vec<_> = answers.iter().filter(|a| a.is_err()).collect();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(answers.len() > 10, "only {} requests", answers.len());
    for answer in answers.iter().flatten() {
        assert!(
            ["The time is ", "Time now: "]
                .iter()
                .any(|p| answer.starts_with(p) && answer.ends_with(" UTC")),
            "unexpected answer {answer:?}"
        );
    }
    assert_eq!(get(&addr, "/pid").unwrap(), pid, "the process changed");
    assert_eq!(get(&addr, "/hello").as_deref(), Ok("hello there"));
    let patched = status_messages(&session.stderr(), "Patched");
    assert_eq!(patched.len(), 3, "{patched:?}");
    for line in &patched {
        assert!(line.contains(", pause "), "{line}");
    }

    // `main` runs its loop until the program ends: only a restart runs its new code.
    project.edit(
        MAIN,
        "println!(\"listening on",
        "println!(\"now listening on",
    );
    session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0201]");
    let restarting = status_messages(&session.stderr(), "Restarting");
    assert!(
        restarting[0].contains(
            "(`main` at src/main.rs:75 changed, and it runs until the program ends, where no \
             redirection reaches it; state is lost)"
        ),
        "{}",
        restarting[0]
    );
    let restarted = session.wait_stdout(START_DEADLINE, |out| {
        out.lines()
            .find_map(|l| l.strip_prefix("now listening on http://"))
            .map(str::to_owned)
    });
    assert_ne!(get(&restarted, "/pid").unwrap(), pid);
}

/// The axum example with all its `#[hot]` marks removed, under `--redirect`: an edit of an `async
/// fn` handler's body (no new `.await`) is patched in the same process and the service keeps
/// its state; adding an `.await` changes the layout of the handler's future, which unfinished
/// requests hold, so the patch is refused with HS0107, naming the handler, and the program
/// restarts.
#[test]
fn an_async_handler_is_redirected_and_a_new_await_is_refused() {
    let project = Project::copy("axum-service");
    assert!(project.remove_hot_marks() > 0);
    let (mut session, addr) = start_service(&project, &[]);
    let pid = get(&addr, "/pid").unwrap();
    hotswap_tests::post(&addr, "/todos", r#"{"title":"keep me","cost":250}"#).unwrap();

    project.edit(MAIN, "\"Hello from the todo service\"", "\"Hello again\"");
    session.wait_stderr(EDIT_DEADLINE, "generation 1: greeting::{closure}");
    assert_eq!(get(&addr, "/greeting").as_deref(), Ok("Hello again"));
    assert_eq!(get(&addr, "/pid").unwrap(), pid);
    assert!(get(&addr, "/todos").unwrap().contains("keep me"));

    project.edit(
        MAIN,
        "\"Hello again\".to_owned()",
        "tokio::task::yield_now().await;\n    \"Hello once more\".to_owned()",
    );
    session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0107]");
    let refused = status_messages(&session.stderr(), "Refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with(
            "     Refused [HS0107] `greeting` changed the layout of its future \
             (`{async_fn_env#0}`): "
        ) && refused[0].contains("variant `4` added"),
        "{}",
        refused[0]
    );
    let restarted = session.wait_stdout(START_DEADLINE, |out| {
        out.lines()
            .filter_map(|l| l.strip_prefix("listening on http://"))
            .nth(1)
            .map(str::to_owned)
    });
    assert_eq!(
        get(&restarted, "/greeting").as_deref(),
        Ok("Hello once more")
    );
    assert_ne!(get(&restarted, "/pid").unwrap(), pid);
}

/// Under `--redirect`, a plain `static` that a changed function uses is the running program's,
/// not a fresh copy: a call counter in the time service's `format_time` keeps counting through
/// three patches (no HS0501 warning). A `static mut` written in place cannot be shared: the
/// patch that writes one is refused with HS0108, naming the function and the static, and the
/// program restarts.
#[test]
fn a_static_keeps_counting_through_patches_and_a_static_mut_write_is_refused() {
    let project = time_service_with(
        "static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);",
        "    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);\n    \
         format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC call {n}\")",
    );
    assert!(project.remove_hot_marks() > 0);
    let (mut session, addr) = start_service(&project, &[]);
    let call = |answer: &str| -> u64 {
        let (_, n) = answer.rsplit_once(" call ").expect(answer);
        n.parse().expect(answer)
    };
    let mut last = call(&wait_time_prefix(&addr, "The time is "));
    for (n, (from, to)) in [
        ("The time is ", "Time now: "),
        ("Time now: ", "Clock says "),
        ("Clock says ", "The time is "),
    ]
    .into_iter()
    .enumerate()
    {
        project.edit(MAIN, &format!("\"{from}"), &format!("\"{to}"));
        session.wait_stderr(EDIT_DEADLINE, &format!("generation {}: format_time", n + 1));
        let answer = wait_time_prefix(&addr, to);
        assert!(call(&answer) > last, "{answer} after call {last}");
        last = call(&answer);
    }
    session.assert_stderr_lacks("HS0501");

    project.edit_all(
        MAIN,
        &[
            ("static CALLS:", "static mut HITS: u64 = 0;\nstatic CALLS:"),
            (
                "    let n = CALLS.fetch_add",
                "    // SAFETY: one thread at a time in this test.\n    \
                 unsafe { HITS += 1 };\n    let n = CALLS.fetch_add",
            ),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0108]");
    let refused = status_messages(&session.stderr(), "Refused");
    assert_eq!(
        refused,
        [
            "     Refused [HS0108] `format_time` uses static `HITS` in a way a patch cannot share: \
          it reads or writes it in place\n             \
          the new code would use a fresh copy while the running code keeps the old one; a \
          plain `static` with an atomic or a `Mutex` inside is shared"
        ]
    );
}

/// The time service with a module `tally` whose `hit` writes a `static mut` in place, which
/// `format_time` calls, under `--redirect`. One save edits `format_time` and another function
/// of `tally`, so the patch carries `tally`'s codegen unit, `hit` unchanged in it: the patch's
/// `hit` runs the program's, and the count goes on instead of starting again from one in a
/// fresh copy of the static; nothing is refused, nothing said to start fresh.
#[test]
fn an_unchanged_function_writing_a_static_mut_in_a_patched_unit_keeps_the_programs_static() {
    let project = time_service_with(
        "mod tally {\n    static mut HITS: u64 = 0;\n\n    \
         pub fn hit() -> u64 {\n        \
         // SAFETY: one request at a time in this test.\n        \
         unsafe {\n            HITS += 1;\n            HITS\n        }\n    }\n\n    \
         pub fn label() -> &'static str {\n        \"label-one\"\n    }\n}",
        "    format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC {} hit {}\", \
         tally::label(), tally::hit())",
    );
    assert!(project.remove_hot_marks() > 0);
    let (mut session, addr) = start_service(&project, &[]);
    let hit = |answer: &str| -> u64 {
        let (_, n) = answer.rsplit_once(" hit ").expect(answer);
        n.parse().expect(answer)
    };
    let mut last = hit(&wait_time_prefix(&addr, "The time is "));
    for _ in 0..3 {
        last = last.max(hit(&get(&addr, "/time").unwrap()));
    }
    assert!(last >= 3, "{last}");
    project.edit_all(
        MAIN,
        &[
            ("\"The time is ", "\"Time now: "),
            ("\"label-one\"", "\"label-two\""),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "generation 1: ");
    let answer = wait_time_prefix(&addr, "Time now: ");
    assert!(answer.contains(" label-two hit "), "{answer}");
    assert!(hit(&answer) > last, "{answer} after hit {last}");
    session.assert_stderr_lacks("Refused");
    session.assert_stderr_lacks("HS0501");
}

/// The time service (its `#[hot]` mark kept) with two modules: `counter::bump` counts in a
/// static, `mid::via_mid` calls it, and `format_time` calls both. An edit of `bump` takes effect
/// on both paths: the patch carries `mid` too, whose code the edit did not compile again (a hot
/// function's patch cannot leave it to the program, whose `via_mid` calls the old `bump`).
#[test]
fn a_hot_patch_runs_new_code_through_functions_the_edit_did_not_compile_again() {
    let project = time_service_with(
        "mod counter {\n    static COUNT: std::sync::atomic::AtomicU64 = \
         std::sync::atomic::AtomicU64::new(0);\n\n    pub fn bump() -> u64 {\n        \
         COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1\n    }\n}\n\n\
         mod mid {\n    pub fn via_mid() -> u64 {\n        crate::counter::bump()\n    \
         }\n}",
        "    format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC direct {} via {}\", \
         counter::bump(), mid::via_mid())",
    );
    let (mut session, addr) = start_with(&project, &[]);
    let counts = |answer: &str| -> (u64, u64) {
        let (_, rest) = answer.split_once(" direct ").expect(answer);
        let (direct, via) = rest.split_once(" via ").expect(answer);
        (direct.parse().expect(answer), via.parse().expect(answer))
    };
    let (direct, via) = counts(&wait_time_prefix(&addr, "The time is "));
    assert_eq!(via, direct + 1);
    project.edit(
        MAIN,
        "Ordering::SeqCst) + 1\n",
        "Ordering::SeqCst) + 1000\n",
    );
    session.wait_stderr(EDIT_DEADLINE, "generation 1: ");
    let (direct, via) = counts(&get(&addr, "/time").unwrap());
    assert!(direct >= 1000 && via >= 1000, "direct {direct}, via {via}");
}

/// The time service (its `#[hot]` mark kept): `format_time` passes closures to `Option::map`
/// and `Iterator::fold`, generic code that rustc may compile in codegen units an edit of the
/// closures alone does not compile again. Edited closures take effect through both: the patch
/// carries the program's code that calls them too.
#[test]
fn a_hot_patch_runs_edited_closures_through_generic_code_the_edit_did_not_compile_again() {
    let project = Project::copy("time-service");
    project.edit(
        MAIN,
        STATUS_LINE,
        "    let mapped = Some(seconds).map(|s| s + 1).unwrap_or(0) - seconds;\n    \
         let folded = (0..3u64).fold(0, |sum, i| sum + i + 1);\n    \
         format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC mapped {mapped} folded {folded}\")",
    );
    let (mut session, addr) = start_with(&project, &[]);
    let answer = wait_time_prefix(&addr, "The time is ");
    assert!(answer.ends_with(" UTC mapped 1 folded 6"), "{answer}");
    project.edit_all(
        MAIN,
        &[
            ("|s| s + 1)", "|s| s + 7)"),
            ("sum + i + 1)", "sum + i + 100)"),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "generation 1: ");
    let answer = get(&addr, "/time").unwrap();
    assert!(answer.ends_with(" UTC mapped 7 folded 303"), "{answer}");
}

/// The time service (its `#[hot]` mark kept) with a module whose public `bump` calls private
/// helpers two levels deep and counts in a private static, which `read` returns; `mid` calls
/// both. An edit of the innermost helper takes effect through `mid` too, and `read` and
/// `mid::via_read` see the same counter after the patch (the patch's: rustc makes a static
/// that one codegen unit uses a local symbol, so it is nowhere among the unit's exports).
#[test]
fn a_hot_patch_reaches_edited_private_helpers_and_one_copy_of_a_private_static() {
    let project = time_service_with(
        "mod counter {\n    use std::sync::atomic::{AtomicU64, Ordering};\n\n    \
         static COUNT: AtomicU64 = AtomicU64::new(0);\n\n    \
         pub fn bump() -> u64 {\n        COUNT.fetch_add(1, Ordering::SeqCst);\n        \
         step()\n    }\n\n    fn step() -> u64 {\n        leaf()\n    }\n\n    \
         fn leaf() -> u64 {\n        1\n    }\n\n    pub fn read() -> u64 {\n        \
         COUNT.load(Ordering::SeqCst)\n    }\n}\n\n\
         mod mid {\n    pub fn via_mid() -> u64 {\n        crate::counter::bump()\n    \
         }\n\n    pub fn via_read() -> u64 {\n        crate::counter::read()\n    }\n}",
        "    format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC direct {} via {} \
         read {} via_read {}\", counter::bump(), mid::via_mid(), counter::read(), \
         mid::via_read())",
    );
    let (mut session, addr) = start_with(&project, &[]);
    let fields = |answer: &str| -> Vec<u64> {
        let (_, rest) = answer.split_once(" UTC ").expect(answer);
        rest.split(' ')
            .skip(1)
            .step_by(2)
            .map(|n| n.parse().expect(answer))
            .collect()
    };
    let before = fields(&wait_time_prefix(&addr, "The time is "));
    assert_eq!(before[..2], [1, 1]);
    assert_eq!(before[2], before[3]);
    project.edit(
        MAIN,
        "        1\n    }\n\n    pub fn read",
        "        2\n    }\n\n    pub fn read",
    );
    session.wait_stderr(EDIT_DEADLINE, "generation 1: ");
    for _ in 0..3 {
        let answer = get(&addr, "/time").unwrap();
        let after = fields(&answer);
        assert_eq!(after[..2], [2, 2], "{answer}");
        assert_eq!(after[2], after[3], "{answer}");
    }
}

/// The time service (its `#[hot]` mark kept) with a type whose `Display` impl writes what a
/// private function returns: an edit of that function's string takes effect through
/// `format!`'s `{}` too, whose generic instance for the type rustc compiles in a codegen unit
/// the edit does not compile again.
#[test]
fn a_hot_patch_reaches_an_edited_string_through_a_display_impl() {
    let project = time_service_with(
        "struct Shown;\n\nfn label() -> &'static str {\n    \"old\"\n}\n\n\
         impl std::fmt::Display for Shown {\n    \
         fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {\n        \
         f.write_str(label())\n    }\n}",
        "    format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC display {} label {}\", \
         Shown, label())",
    );
    let (mut session, addr) = start_with(&project, &[]);
    let answer = wait_time_prefix(&addr, "The time is ");
    assert!(answer.ends_with(" UTC display old label old"), "{answer}");
    project.edit(MAIN, "\"old\"", "\"new\"");
    session.wait_stderr(EDIT_DEADLINE, "generation 1: ");
    let answer = get(&addr, "/time").unwrap();
    assert!(answer.ends_with(" UTC display new label new"), "{answer}");
}

/// The time service (its `#[hot]` mark kept) reading two statics of another module, a number
/// and a `&str`: an edit of their values is a patch (the new code reads the patch's copies),
/// although no function's bytes changed (`format_time` reads them through relocations).
#[test]
fn a_hot_patch_carries_new_values_of_statics_another_module_reads() {
    let project = time_service_with(
        "mod limits {\n    pub static LIMIT: u64 = 50;\n    pub static NAME: &str = \"name-a\";\n}",
        "    format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC limit {} {}\", \
         limits::LIMIT, limits::NAME)",
    );
    let (mut session, addr) = start_with(&project, &[]);
    let answer = wait_time_prefix(&addr, "The time is ");
    assert!(answer.ends_with(" UTC limit 50 name-a"), "{answer}");
    project.edit_all(MAIN, &[("= 50;", "= 51;"), ("\"name-a\"", "\"name-b\"")]);
    session.wait_stderr(EDIT_DEADLINE, "generation 1: ");
    let answer = get(&addr, "/time").unwrap();
    assert!(answer.ends_with(" UTC limit 51 name-b"), "{answer}");
    session.assert_stderr_lacks("Unchanged");
}

/// The workspace fixture (its `#[hot]` marks kept), its bin's `report` calling `leaf::word`
/// through a module of the bin (`via`) that no edit compiles again: an edit of `word` in the
/// library crate takes effect on that path too (the patch links the library whole and carries
/// `via`, whose program copy calls the program's old `word`).
#[test]
fn a_hot_patch_of_a_library_crate_runs_through_bin_code_the_edit_did_not_compile_again() {
    let project = Project::copy("workspace");
    project.edit_all(
        "app/src/main.rs",
        &[
            (
                "fn main() {",
                "mod via {\n    pub fn leaf_word() -> &'static str {\n        leaf::word()\n    \
                 }\n}\n\nfn main() {",
            ),
            ("\"mid={} text", "\"via={} mid={} text"),
            (
                "        mid::describe(),",
                "        via::leaf_word(),\n        mid::describe(),",
            ),
        ],
    );
    let mut session = project.run(&[]);
    let first = wait_tick(
        &mut session,
        START_DEADLINE,
        &["via=leaf-one mid=mid-one(leaf-one)"],
    );
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit("leaf/src/lib.rs", "\"leaf-one\"", "\"leaf-two\"");
    wait_tick_of_same_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["gen=1", "via=leaf-two mid=mid-one(leaf-two)"],
    );
}

/// The time service with a module of its own (`clock`: a function and a static counter) and its
/// marks removed, under `--redirect`: an edit of `format_time` makes a patch of the codegen
/// unit that defines it only. `clock::zone` and `clock::READS` are not in the patch file; the
/// new code calls the running program's `zone` and counts on with its `READS`.
#[test]
fn a_redirection_patch_links_only_the_codegen_units_the_edit_compiled_again() {
    thin_patch_of_format_time(true);
}

/// The same with `format_time`'s `#[hot]` mark kept, as a hot function's patch: nothing of
/// `clock` refers to what the edit changed, so the patch leaves it to the program, whose
/// `READS` the new code counts on with (not a fresh copy).
#[test]
fn a_hot_patch_links_only_the_codegen_units_the_edit_compiled_again() {
    thin_patch_of_format_time(false);
}

/// The time service with its marks removed, under `--redirect`, the words of its status line in
/// a `static` of a module of their own: a new value of the static, which no function's code
/// shows and which the running program's copy would keep, is refused, and the program restarts
/// with it.
#[test]
fn a_new_value_of_a_static_is_refused_under_redirection_and_the_program_restarts() {
    let project = time_service_with(
        "mod words {\n    pub static LABEL: &str = \"The time is\";\n}",
        "    format!(\"{} {hours:02}:{minutes:02}:{seconds:02} UTC\", words::LABEL)",
    );
    assert!(project.remove_hot_marks() > 0);
    let (mut session, addr) = start_service(&project, &[]);
    wait_time_prefix(&addr, "The time is ");
    project.edit(MAIN, "\"The time is\";", "\"Time now:\";");
    session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0110]");
    let refused = status_messages(&session.stderr(), "Refused");
    assert_eq!(
        refused,
        [
            "     Refused [HS0110] static `words::LABEL` has a new initial value\n             \
             redirected code uses the running program's statics, which keep the values they \
             hold; the new value is the program's once it starts again"
        ]
    );
    wait_time_prefix(&restarted_address(&mut session), "Time now: ");
}

/// A `#[unsafe(no_mangle)]` static the program started with is the executable's, which every
/// patch uses: an edit of the function that counts with it is patched without a warning, and
/// the count goes on. One added while the program runs is each patch's own copy, like any
/// static of the crate: the patch that adds it says that it starts fresh (HS0501; before, it
/// was silent, and the count started again at every later patch). In both modes.
#[test]
fn an_unmangled_static_added_while_the_program_runs_is_announced_as_starting_fresh() {
    for redirect in [false, true] {
        let project = time_service_with(
            "/// Answers given.\n#[unsafe(no_mangle)]\n\
             pub static SEEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);",
            "    let seen = SEEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;\n    \
             format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC seen={seen}\")",
        );
        let (mut session, addr) = start_in_mode(&project, redirect);
        let seen = |answer: &str| number(answer, "seen");
        let before = seen(&wait_time_prefix(&addr, "The time is "));
        project.edit(MAIN, "\"The time is ", "\"Time now: ");
        let after = seen(&wait_time_prefix(&addr, "Time now: "));
        assert!(
            after > before,
            "redirect={redirect}: seen {before}, then {after}"
        );
        session.wait_stderr(EDIT_DEADLINE, "generation 1: format_time");
        session.assert_stderr_lacks("HS0501");

        project.edit_all(
            MAIN,
            &[
                (
                    STATUS_DOC,
                    &format!(
                        "/// Answers given with the new format.\n#[unsafe(no_mangle)]\n\
                         pub static NEWLY: std::sync::atomic::AtomicU32 = \
                         std::sync::atomic::AtomicU32::new(0);\n\n{STATUS_DOC}"
                    ),
                ),
                (
                    "UTC seen={seen}\")",
                    "UTC seen={seen} new={}\", \
                     NEWLY.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)",
                ),
            ],
        );
        session.wait_stderr(EDIT_DEADLINE, "generation 2: format_time");
        assert!(wait_time_prefix(&addr, "Time now: ").contains(" new="));
        assert_eq!(
            status_messages(&session.stderr(), "Warning"),
            [
                "     Warning [HS0501] this static or thread-local of the crate will start fresh \
                 in the new code: `NEWLY`"
            ],
            "redirect={redirect}"
        );
    }
}

/// The items of a counting global allocator, which the time service's status line shows.
const COUNTING_ALLOCATOR: &str = "mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

    pub struct Counting;

    // SAFETY: forwards to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller's contract is the system allocator's.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract is the system allocator's.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;
}";

/// The number of allocations a `/time` answer of the counting time service shows.
fn allocations(answer: &str) -> u64 {
    answer
        .rsplit(", ")
        .next()
        .and_then(|count| count.strip_suffix(" allocations"))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no count of allocations in {answer:?}"))
}

/// The time service with a global allocator of its own (`#[global_allocator]` in the bin crate,
/// counting the allocations made) and its marks removed, under `--redirect`: the host builds
/// (it failed to link, with `__rust_alloc` defined twice) and the status line shows the
/// program's count; an edit of the status line takes effect in the same process and reads the
/// same count on, and an edit of the allocator's own `alloc` takes effect too (each allocation
/// then counts 1000).
#[test]
fn a_program_with_its_own_global_allocator_is_built_and_patched() {
    let project = time_service_with(
        COUNTING_ALLOCATOR,
        "    let count = counting::ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed);\n    \
         format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC, {count} allocations\")",
    );
    assert!(project.remove_hot_marks() > 0);
    let (mut session, addr) = start_service(&project, &[]);
    let before = allocations(&wait_time_prefix(&addr, "The time is "));
    assert!(before > 0, "the program's allocator counted nothing");
    project.edit(MAIN, "\"The time is ", "\"Time now: ");
    let after = allocations(&wait_time_prefix(&addr, "Time now: "));
    session.wait_stderr(EDIT_DEADLINE, "generation 1: format_time");
    assert!(after > before, "{before} allocations, then {after}");
    let pid = get(&addr, "/pid").unwrap();

    project.edit(MAIN, "fetch_add(1,", "fetch_add(1000,");
    session.wait_stderr(
        EDIT_DEADLINE,
        "generation 2: <counting::Counting as core::alloc::global::GlobalAlloc>::alloc",
    );
    let first = allocations(&get(&addr, "/time").unwrap());
    let second = allocations(&get(&addr, "/time").unwrap());
    assert!(
        second >= first + 1000,
        "one request allocated less than 1000: {first} allocations, then {second}"
    );
    assert_eq!(get(&addr, "/pid").unwrap(), pid, "the process changed");
}

/// The counting time service (see [`COUNTING_ALLOCATOR`]), in both modes: removing its
/// `#[global_allocator]` line is refused with HS0111 (the running program allocates with the
/// allocator it started with) and the program restarts without it, counting nothing; putting
/// the line back is refused the same way, and the restarted program counts again. Before, both
/// edits were "Unchanged" and the running program went on with the old allocator.
#[test]
fn adding_or_removing_the_global_allocator_restarts_the_program() {
    let refused = "     Refused [HS0111] the global allocator (`#[global_allocator]`) was added, \
                   removed or replaced\n             the running program allocates with the one \
                   it started with, and no patch changes that; the new one is the program's once \
                   it starts again";
    for redirect in [false, true] {
        let project = time_service_with(
            COUNTING_ALLOCATOR,
            "    let count = counting::ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed);\n    \
             format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC, {count} allocations\")",
        );
        let (mut session, addr) = start_in_mode(&project, redirect);
        assert!(allocations(&wait_time_prefix(&addr, "The time is ")) > 0);

        project.edit(MAIN, "    #[global_allocator]\n", "");
        session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0111]");
        assert_eq!(
            status_messages(&session.stderr(), "Refused"),
            [refused],
            "redirect={redirect}"
        );
        let restarted = restarted_address(&mut session);
        assert_eq!(
            allocations(&wait_time_prefix(&restarted, "The time is ")),
            0
        );

        project.edit(
            MAIN,
            "    static GLOBAL",
            "    #[global_allocator]\n    static GLOBAL",
        );
        session.wait_stderr_count(EDIT_DEADLINE, "Restarting [HS0111]", 2);
        let again = nth_address(&mut session, 3);
        assert!(allocations(&wait_time_prefix(&again, "The time is ")) > 0);
    }
}

/// The counting time service with its allocator beside `format_time` (at the crate's root, so
/// in its codegen unit), with its `#[hot]` mark: a hot patch of `format_time` would carry its own
/// copy of the allocator's counter, which the new code could allocate with while the program
/// frees with its own allocator. It is refused with HS0111, and the program restarts with the
/// new code. (A stateful allocator inlined into the patch by link-time optimisation crashed the
/// program with `free(): invalid pointer`.)
#[test]
fn a_hot_patch_with_its_own_copy_of_the_allocators_state_is_refused() {
    let at_root = COUNTING_ALLOCATOR
        .strip_prefix("mod counting {\n")
        .and_then(|items| items.strip_suffix("\n}"))
        .unwrap()
        .replace("pub static", "static")
        .replace("pub struct", "struct");
    let project = time_service_with(
        &at_root,
        "    let count = ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed);\n    \
         format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC, {count} allocations\")",
    );
    let (mut session, addr) = start_with(&project, &[]);
    assert!(allocations(&wait_time_prefix(&addr, "The time is ")) > 0);
    project.edit(MAIN, "\"The time is ", "\"Time now: ");
    session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0111]");
    assert_eq!(
        status_messages(&session.stderr(), "Refused"),
        [
            "     Refused [HS0111] the patch would have its own copy of the global allocator's \
             state: `ALLOCATIONS`\n             memory allocated with one copy would be freed \
             with the other; the program runs the new code once it starts again"
        ]
    );
    assert!(
        allocations(&wait_time_prefix(
            &restarted_address(&mut session),
            "Time now: "
        )) > 0
    );
}

/// A `#[unsafe(no_mangle)] extern "C"` function, whose symbol names no crate, called by the time
/// format: an edit of its body takes effect in the same process and is named in the `Patched`
/// line, through the hot function `format_time` (which the patch's calls reach) and, with the
/// marks removed, under `--redirect` (its entry redirected). Before, such an edit was
/// "Unchanged: nothing to patch", or under `--redirect` "Patched" while the old code ran on. A
/// `#[unsafe(no_mangle)]` static beside it is exported, so every patch reads the program's copy:
/// a new initial value is refused in both modes (HS0110), and the program restarts with it
/// (before, "Patched" while the old value was read on); so is a new value brought back by a
/// patch after another left the static out.
#[test]
fn an_edit_of_an_unmangled_function_takes_effect_in_the_same_process() {
    for redirect in [false, true] {
        let project = time_service_with(
            "/// The version the time format shows.\n#[unsafe(no_mangle)]\n\
             pub extern \"C\" fn clock_version() -> u32 {\n    1\n}\n\n\
             /// The unit the time format shows.\n#[unsafe(no_mangle)]\n\
             pub static CLOCK_UNIT: u32 = 7;",
            "    format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} UTC v{} s{}\", \
             clock_version(), CLOCK_UNIT)",
        );
        let (mut session, addr) = start_in_mode(&project, redirect);
        let pid = get(&addr, "/pid").unwrap();
        assert!(wait_time_prefix(&addr, "The time is ").ends_with(" v1 s7"));
        project.edit(MAIN, "    1\n}", "    2\n}");
        session.wait_stderr(EDIT_DEADLINE, "generation 1: clock_version\n");
        wait_time_suffix(&addr, " v2 s7", &session);
        assert_eq!(get(&addr, "/pid").unwrap(), pid, "the same process");
        session.assert_stderr_lacks("Unchanged");

        project.edit(MAIN, "CLOCK_UNIT: u32 = 7;", "CLOCK_UNIT: u32 = 8;");
        session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0110]");
        assert_eq!(
            status_messages(&session.stderr(), "Refused"),
            [exported_value_refused("CLOCK_UNIT")],
            "redirect={redirect}"
        );
        let restarted = restarted_address(&mut session);
        wait_time_suffix(&restarted, " v2 s8", &session);

        // A patch that leaves the static out, then one that brings it back with a new value:
        // the restarted program's copy, 8, is still what every patch reads (before, the second
        // patch was compared with the first, which had no such static, and was "Patched" while
        // 8 was read on).
        let unit = |value: u32| {
            format!(
                "/// The unit the time format shows.\n#[unsafe(no_mangle)]\n\
                 pub static CLOCK_UNIT: u32 = {value};\n\n"
            )
        };
        project.edit_all(
            MAIN,
            &[
                (&unit(8), ""),
                ("clock_version(), CLOCK_UNIT)", "clock_version(), 0)"),
            ],
        );
        wait_time_suffix(&restarted, " v2 s0", &session);
        project.edit_all(
            MAIN,
            &[
                (STATUS_DOC, &format!("{}{STATUS_DOC}", unit(9))),
                ("clock_version(), 0)", "clock_version(), CLOCK_UNIT)"),
            ],
        );
        session.wait_stderr_count(EDIT_DEADLINE, "Restarting [HS0110]", 2);
        assert_eq!(
            status_messages(&session.stderr(), "Refused").len(),
            2,
            "redirect={redirect}\n{}",
            session.stderr()
        );
        wait_time_suffix(&nth_address(&mut session, 3), " v2 s9", &session);
    }
}

/// A static with an unmangled name is one symbol in the whole program: moved from a library
/// crate into the bin with a new value (one patch removes it from `leaf`, the next defines it in
/// `app`), the executable's copy still holds the old value, and every patch reads it. The new
/// value is refused (HS0110) and the program restarts with it. Before, the bin's values were
/// compared with the bin's only: "Patched" while the old value was read on.
#[test]
fn an_exported_static_moved_to_another_crate_with_a_new_value_is_refused() {
    let project = Project::copy("workspace");
    project.edit_all(
        "leaf/src/lib.rs",
        &[(
            "/// A word that the tests edit.",
            "/// A unit that the tests move.\n#[unsafe(no_mangle)]\n\
             pub static MOVED_UNIT: u32 = 7;\n\n\
             /// The unit.\npub fn unit() -> u32 {\n    MOVED_UNIT\n}\n\n\
             /// A word that the tests edit.",
        )],
    );
    project.edit_all(
        "app/src/main.rs",
        &[
            ("\"mid={} text", "\"unit={} mid={} text"),
            (
                "        mid::describe(),",
                "        leaf::unit(),\n        mid::describe(),",
            ),
        ],
    );
    let mut session = project.run(&[]);
    wait_tick(&mut session, START_DEADLINE, &["unit=7 "]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit_all(
        "leaf/src/lib.rs",
        &[
            (
                "/// A unit that the tests move.\n#[unsafe(no_mangle)]\n\
                 pub static MOVED_UNIT: u32 = 7;\n\n",
                "",
            ),
            ("    MOVED_UNIT\n", "    0\n"),
        ],
    );
    wait_tick(&mut session, EDIT_DEADLINE, &["gen=1 ", "unit=0 "]);
    project.edit_all(
        "app/src/main.rs",
        &[
            (
                "fn main() {",
                "/// The unit, moved here.\n#[unsafe(no_mangle)]\n\
                 pub static MOVED_UNIT: u32 = 8;\n\nfn main() {",
            ),
            ("        leaf::unit(),", "        MOVED_UNIT,"),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0110]");
    assert_eq!(
        status_messages(&session.stderr(), "Refused"),
        [exported_value_refused("MOVED_UNIT")]
    );
    wait_tick(&mut session, START_DEADLINE, &["gen=0 ", "unit=8 "]);
}

/// The `Refused` message of a new value of the exported static `name` (HS0110).
fn exported_value_refused(name: &str) -> String {
    format!(
        "     Refused [HS0110] static `{name}` has a new initial value\n             \
         its unmangled name is exported, so every patch uses the running program's copy, which \
         keeps the value it holds; the new value is the program's once it starts again"
    )
}

/// The address the time service of `session` listens on once it restarted: its second
/// `listening on` line, waited for.
fn restarted_address(session: &mut hotswap_tests::Session) -> String {
    nth_address(session, 2)
}

/// The address in the `n`th `listening on` line of the time service of `session`, waited for.
fn nth_address(session: &mut hotswap_tests::Session, n: usize) -> String {
    session.wait_stdout(START_DEADLINE, |out| {
        out.lines()
            .filter_map(|l| l.strip_prefix("listening on http://"))
            .nth(n - 1)
            .map(str::to_owned)
    })
}

/// Waits until `GET /time` at `addr` answers with `suffix`; panics with `session`'s output.
fn wait_time_suffix(addr: &str, suffix: &str, session: &hotswap_tests::Session) {
    let end = std::time::Instant::now() + EDIT_DEADLINE;
    loop {
        let answer = get(addr, "/time");
        if answer.as_ref().is_ok_and(|body| body.ends_with(suffix)) {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "`/time` never ended with `{suffix}`: {answer:?}\n{}",
            session.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The symbols that the one patch file of `session` defines.
fn only_patch_definitions(session: &hotswap_tests::Session) -> Vec<String> {
    use object::{Object, ObjectSymbol};
    let patches: Vec<_> = hotswap_tests::session_dirs(session)
        .into_iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap().flatten())
        .map(|file| file.path())
        .filter(|path| path.extension().is_some_and(|e| e == "so"))
        .collect();
    assert_eq!(
        patches.len(),
        1,
        "{patches:?} in a session that wrote:\n{}",
        session.stderr()
    );
    let data = std::fs::read(&patches[0]).unwrap();
    let patch = object::File::parse(&*data).unwrap();
    patch
        .symbols()
        .filter(|symbol| symbol.is_definition())
        .filter_map(|symbol| symbol.name().ok().map(str::to_owned))
        .collect()
}

/// The workspace fixture (its `#[hot]` marks kept) with state in a module of the bin's own
/// (`tally`: a static counter, and a reader of the library's state) and in one of the library
/// crate `leaf` (`state`: a counter, and a name `main` sets at start), which `report` reads both
/// directly and through `tally`. An edit of `leaf::word` makes rustc write every codegen unit
/// of `leaf` and of the crates above it again, nearly all of them as they were: the patch
/// carries what changed and the code that reaches it, not `tally` nor `leaf::state`, whose
/// program copies count on and keep the name on every path. An edit of a library static's
/// value (`leaf::label::LABEL`, read by the bin's unchanged `tally`) takes effect.
#[test]
fn a_hot_patch_of_a_library_crate_leaves_unchanged_code_and_state_to_the_program() {
    let project = Project::copy("workspace");
    project.edit_all(
        "leaf/src/lib.rs",
        &[(
            "/// A word that the tests edit.",
            "/// State that `main` sets and patches keep.\npub mod state {\n    \
             pub static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);\n    \
             pub static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();\n\n    \
             pub fn bump() -> u64 {\n        \
             CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)\n    }\n}\n\n\
             /// A label that the tests edit.\npub mod label {\n    \
             pub static LABEL: &str = \"label-one\";\n}\n\n\
             /// A word that the tests edit.",
        )],
    );
    project.edit_all(
        "app/src/main.rs",
        &[
            (
                "fn main() {\n",
                "mod tally {\n    pub static COUNT: std::sync::atomic::AtomicU64 = \
                 std::sync::atomic::AtomicU64::new(0);\n\n    pub fn bump() -> u64 {\n        \
                 COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)\n    }\n\n    \
                 pub fn name() -> &'static str {\n        \
                 leaf::state::NAME.get().map_or(\"unset\", String::as_str)\n    }\n\n    \
                 pub fn label() -> &'static str {\n        leaf::label::LABEL\n    }\n}\n\n\
                 fn main() {\n    leaf::state::NAME.set(\"main\".to_owned()).unwrap();\n",
            ),
            (
                "\"mid={} text",
                "\"count={} leafcount={} name={} hotname={} label={} mid={} text",
            ),
            (
                "        mid::describe(),",
                "        tally::bump(),\n        leaf::state::bump(),\n        tally::name(),\n        \
                 leaf::state::NAME.get().map_or(\"unset\", String::as_str),\n        \
                 tally::label(),\n        mid::describe(),",
            ),
        ],
    );
    let mut session = project.run(&[]);
    wait_tick(&mut session, START_DEADLINE, &["name=main hotname=main"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit("leaf/src/lib.rs", "\"leaf-one\"", "\"leaf-two\"");
    let first = wait_first_tick(&mut session, EDIT_DEADLINE, &["gen=1"]);
    assert!(
        first.contains("name=main hotname=main label=label-one mid=mid-one(leaf-two)"),
        "{first}"
    );
    let before = tick_before(&session.stdout(), &first);
    assert_eq!(tick_field(&first, "pid"), tick_field(&before, "pid"));
    let field = |line: &str, name: &str| -> u64 { tick_field(line, name).parse().expect(line) };
    for counter in ["count", "leafcount"] {
        assert_eq!(
            field(&first, counter),
            field(&before, counter) + 1,
            "{counter}:\n{before}\n{first}"
        );
    }
    session.assert_stderr_lacks("HS0501");
    let defined = only_patch_definitions(&session);
    for changed in ["4leaf4word", "3mid8describe"] {
        assert!(
            defined.iter().any(|name| name.contains(changed)),
            "{changed} is not in the patch: {defined:?}"
        );
    }
    for unchanged in ["5tally4bump", "5tally5COUNT", "5state4bump", "5state5CALLS"] {
        assert!(
            !defined.iter().any(|name| name.contains(unchanged)),
            "{unchanged} is in the patch: {defined:?}"
        );
    }
    project.edit("leaf/src/lib.rs", "\"label-one\"", "\"label-two\"");
    let second = wait_first_tick(&mut session, EDIT_DEADLINE, &["gen=2"]);
    assert!(
        second.contains("name=main hotname=main label=label-two"),
        "{second}"
    );
    assert_eq!(tick_field(&second, "pid"), tick_field(&first, "pid"));
    // The static is named as one, not counted as a function.
    let patched = status_messages(&session.stderr(), "Patched");
    assert!(
        patched[1].starts_with("     Patched 1 static in ")
            && patched[1].ends_with(" generation 2: static leaf::label::LABEL"),
        "{patched:?}"
    );
}

/// The body of the two tests above, with `format_time` redirected or hot.
fn thin_patch_of_format_time(redirect: bool) {
    let project = time_service_with(
        "mod clock {\n    pub static READS: std::sync::atomic::AtomicU64 = \
         std::sync::atomic::AtomicU64::new(0);\n\n    pub fn zone() -> &'static str {\n        \
         \"UTC\"\n    }\n}",
        "    let n = clock::READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);\n    \
         format!(\"The time is {hours:02}:{minutes:02}:{seconds:02} {} read {n}\", \
         clock::zone())",
    );
    if redirect {
        assert!(project.remove_hot_marks() > 0);
    }
    let (mut session, addr) = if redirect {
        start_service(&project, &[])
    } else {
        start_with(&project, &[])
    };
    let read = |answer: &str| -> u64 {
        let (_, n) = answer.rsplit_once(" UTC read ").expect(answer);
        n.parse().expect(answer)
    };
    let before = read(&wait_time_prefix(&addr, "The time is "));
    project.edit(MAIN, "\"The time is ", "\"Time now: ");
    session.wait_stderr(EDIT_DEADLINE, "generation 1: format_time");
    let answer = wait_time_prefix(&addr, "Time now: ");
    assert!(read(&answer) > before, "{answer} after read {before}");
    session.assert_stderr_lacks("HS0501");
    let defined = only_patch_definitions(&session);
    assert!(
        defined.iter().any(|name| name.contains("format_time")),
        "{defined:?}"
    );
    for unchanged in ["5clock4zone", "5clock5READS"] {
        assert!(
            !defined.iter().any(|name| name.contains(unchanged)),
            "{unchanged} is in the patch: {defined:?}"
        );
    }
}

/// The workspace fixture with its marks removed, under `--redirect`: an edit of a function of
/// the bottom library crate (`leaf::word`, which `mid::describe` calls) and one of the bin's
/// `report` (which `main`'s loop calls) each take effect in the same process, and a counter of
/// a module of `leaf` that no edit touches counts on through both. A new value of a
/// library crate's static (`leaf::LABEL`, which `report` shows) is refused with HS0110, and the
/// program restarts with it.
#[test]
fn library_crate_and_bin_functions_of_a_workspace_are_redirected() {
    let project = Project::copy("workspace");
    assert_eq!(project.remove_hot_marks(), 2);
    project.edit(
        "leaf/src/lib.rs",
        "/// A word that the tests edit.",
        "/// A label that the tests edit.\npub static LABEL: &str = \"label-one\";\n\n\
         /// A counter in a module no edit touches.\npub mod counter {\n    \
         static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);\n\n    \
         pub fn bump() -> u64 {\n        \
         CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)\n    }\n}\n\n\
         /// A word that the tests edit.",
    );
    project.edit_all(
        "app/src/main.rs",
        &[
            ("\"mid={} text", "\"calls={} label={} mid={} text"),
            (
                "        mid::describe(),",
                "        leaf::counter::bump(),\n        leaf::LABEL,\n        mid::describe(),",
            ),
        ],
    );
    let mut session = project.run(&["--redirect"]);
    let first = wait_tick(&mut session, START_DEADLINE, &["mid=mid-one(leaf-one)"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");

    project.edit("leaf/src/lib.rs", "\"leaf-one\"", "\"leaf-two\"");
    wait_tick_of_same_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["gen=1", "mid=mid-one(leaf-two)"],
    );
    session.wait_stderr(EDIT_DEADLINE, "generation 1: leaf::word");
    project.edit("app/src/main.rs", " mid={} text", " MID={} text");
    let second = wait_first_tick(&mut session, EDIT_DEADLINE, &["gen=2"]);
    assert!(second.contains("MID=mid-one(leaf-two)"), "{second}");
    session.wait_stderr(EDIT_DEADLINE, "generation 2: report");
    // The redirected `report` of the patch, which carries `leaf` (compiled again for the first
    // edit), counts on with the running program's counter of `leaf::counter`.
    let before = tick_before(&session.stdout(), &second);
    assert_eq!(tick_field(&second, "pid"), tick_field(&first, "pid"));
    let calls = |line: &str| -> u64 { tick_field(line, "calls").parse().expect(line) };
    assert_eq!(calls(&second), calls(&before) + 1, "{before}\n{second}");
    session.assert_stderr_lacks("HS0501");

    // A library static's value is the running program's: refused, and the program restarts.
    project.edit("leaf/src/lib.rs", "\"label-one\"", "\"label-two\"");
    session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0110]");
    let refused = status_messages(&session.stderr(), "Refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]
            .starts_with("     Refused [HS0110] static `leaf::LABEL` has a new initial value"),
        "{}",
        refused[0]
    );
    wait_tick_of_new_process(&mut session, START_DEADLINE, &first, &["label=label-two"]);
}

/// Functions of the bin with unmangled names that a library crate of the workspace calls
/// (declared there in an `extern` block), under `--redirect`: one reached only at start-up,
/// from `main` through the library, needs a restart, which runs its new code (HS0201; it was
/// "Patched" while its old result was shown on, when the library's calls counted as foreign
/// code); one the library calls on every tick is patched in the same process (it was a needless
/// restart).
#[test]
fn unmangled_bin_functions_a_library_crate_calls_are_redirected_or_restart_as_their_callers_need() {
    let project = Project::copy("workspace");
    assert_eq!(project.remove_hot_marks(), 2);
    project.edit(
        "leaf/src/lib.rs",
        "/// A word that the tests edit.",
        "unsafe extern \"C\" {\n    fn start_value() -> u32;\n    fn tick_value() -> u32;\n}\n\n\
         static START: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);\n\n\
         /// Asks the program for its start value, once.\npub fn init() {\n    \
         // SAFETY: the program defines it, without arguments.\n    \
         START.store(unsafe { start_value() }, std::sync::atomic::Ordering::Relaxed);\n}\n\n\
         /// The start value `init` got.\npub fn start() -> u32 {\n    \
         START.load(std::sync::atomic::Ordering::Relaxed)\n}\n\n\
         /// Asks the program for its tick value.\npub fn each() -> u32 {\n    \
         // SAFETY: the program defines it, without arguments.\n    \
         unsafe { tick_value() }\n}\n\n\
         /// A word that the tests edit.",
    );
    project.edit_all(
        "app/src/main.rs",
        &[
            (
                "fn main() {\n",
                "#[unsafe(no_mangle)]\npub extern \"C\" fn start_value() -> u32 {\n    1\n}\n\n\
                 #[unsafe(no_mangle)]\npub extern \"C\" fn tick_value() -> u32 {\n    10\n}\n\n\
                 fn main() {\n    leaf::init();\n",
            ),
            ("\"tick pid={} gen={}", "\"tick start={} each={} pid={} gen={}"),
            (
                "            std::process::id(),",
                "            leaf::start(),\n            leaf::each(),\n            std::process::id(),",
            ),
        ],
    );
    let mut session = project.run(&["--redirect"]);
    let first = wait_tick(&mut session, START_DEADLINE, &["start=1 each=10"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");

    project.edit("app/src/main.rs", "    10\n}", "    11\n}");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["start=1 each=11"]);
    session.wait_stderr(EDIT_DEADLINE, "generation 1: tick_value");

    project.edit("app/src/main.rs", "    1\n}", "    2\n}");
    session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0201]");
    wait_tick_of_new_process(&mut session, START_DEADLINE, &first, &["start=2 each=11"]);
    assert_eq!(status_messages(&session.stderr(), "Patched").len(), 1);
    // Named by its symbol, where it is defined, like any other function.
    let restarting = status_messages(&session.stderr(), "Restarting");
    assert!(
        restarting
            .iter()
            .any(|message| message.contains("`start_value` at app/src/main.rs:2")),
        "{restarting:?}"
    );
}

/// A program with a thread that blocks every signal cannot be stopped for a redirection: the
/// patch is refused once the bound (two seconds) has passed, with nothing written, and the
/// program keeps serving its old code in the same process.
#[test]
fn a_thread_that_blocks_signals_makes_the_patch_refused_and_the_program_runs_on() {
    let project = Project::copy("time-service");
    assert!(project.remove_hot_marks() > 0);
    project.edit(
        MAIN,
        "fn main() -> std::io::Result<()> {\n",
        "unsafe extern \"C\" {\n    \
             fn sigfillset(set: *mut [u64; 16]) -> i32;\n    \
             fn pthread_sigmask(how: i32, set: *const [u64; 16], old: *mut [u64; 16]) -> i32;\n\
         }\n\n\
         fn main() -> std::io::Result<()> {\n    \
             std::thread::spawn(|| {\n        \
                 let mut all = [0u64; 16];\n        \
                 // SAFETY: glibc's sigset_t is 128 bytes; SIG_BLOCK is 0.\n        \
                 unsafe {\n            \
                     sigfillset(&mut all);\n            \
                     pthread_sigmask(0, &all, std::ptr::null_mut());\n        \
                 }\n        \
                 loop {\n            \
                     std::thread::sleep(std::time::Duration::from_millis(50));\n        \
                 }\n    \
             });\n",
    );
    let (mut session, addr) = start_service(&project, &[]);
    wait_time_prefix(&addr, "The time is ");
    let pid = get(&addr, "/pid").unwrap();

    project.edit(MAIN, "\"The time is ", "\"Time now: ");
    session.wait_stderr(EDIT_DEADLINE, "Refused [HS0401]");
    let refused = status_messages(&session.stderr(), "Refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains(
            "the program did not apply the patch: cannot redirect the changed functions: thread"
        ) && refused[0].contains("did not stop within 2000 ms (does it block signals?)"),
        "{}",
        refused[0]
    );
    session.assert_stderr_lacks("Patched");
    assert!(get(&addr, "/time").unwrap().starts_with("The time is "));
    assert_eq!(get(&addr, "/pid").unwrap(), pid);
}

/// Eight threads call three functions (a plain one, a tiny one, a generic instance) in tight
/// loops while 200 patches switch them back and forth between two versions: every result is
/// one version's, the process never changes, and the threads blocked in `read`, `sleep` (never
/// returning early) and on a condvar go on working. The fixture does not depend on the runtime.
#[test]
fn two_hundred_patches_under_eight_busy_threads_give_no_wrong_result() {
    const PATCHES: usize = 200;
    let project = Project::copy("stress");
    let mut session = project.run(&["--redirect"]);
    let first = wait_tick(&mut session, START_DEADLINE, &["version=1"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    let versions = [
        [
            ("x * 3 + 100", "x * 3 + 200"),
            ("fn tag() -> u64 {\n    1\n}", "fn tag() -> u64 {\n    2\n}"),
            ("value.into() + 1000", "value.into() + 2000"),
        ],
        [
            ("x * 3 + 200", "x * 3 + 100"),
            ("fn tag() -> u64 {\n    2\n}", "fn tag() -> u64 {\n    1\n}"),
            ("value.into() + 2000", "value.into() + 1000"),
        ],
    ];
    // The newest tick, once it shows `version` (older ticks may show it too).
    let newest = |session: &mut hotswap_tests::Session, version: &str| -> String {
        session.wait_stdout(EDIT_DEADLINE, |out| {
            let line = out.lines().rev().find(|l| l.starts_with("tick "))?;
            line.contains(version).then(|| line.to_owned())
        })
    };
    for n in 1..=PATCHES {
        project.edit_all(MAIN, &versions[(n - 1) % 2]);
        let line = newest(
            &mut session,
            if n % 2 == 1 { "version=2" } else { "version=1" },
        );
        assert_eq!(
            crate::tick_field(&line, "wrong"),
            "0",
            "after patch {n}: {line}"
        );
        assert_eq!(
            crate::tick_field(&line, "pid"),
            crate::tick_field(&first, "pid")
        );
    }
    let before = newest(&mut session, "version=1");
    std::thread::sleep(std::time::Duration::from_millis(600));
    let after = newest(&mut session, "version=1");
    for field in ["calls", "reads", "sleeps", "wakes"] {
        let count = |line: &str| crate::tick_field(line, field).parse::<u64>().unwrap();
        assert!(
            count(&after) > count(&before),
            "{field}: {before} -> {after}"
        );
    }
    for line in [&before, &after] {
        assert_eq!(crate::tick_field(line, "wrong"), "0", "{line}");
        assert_eq!(crate::tick_field(line, "early"), "0", "{line}");
        assert_eq!(
            crate::tick_field(line, "pid"),
            crate::tick_field(&first, "pid")
        );
    }
    session.assert_stderr_lacks("Refused");
    let patched = status_messages(&session.stderr(), "Patched");
    assert_eq!(patched.len(), PATCHES);
    assert!(
        patched
            .iter()
            .all(|line| line.ends_with(": pick, scaled, tag"))
    );
}

/// Without hot functions nothing tells which values new code may meet: under `--redirect`, a
/// field added to a type that `main` holds (behind an `Arc<Mutex<..>>` handed to each
/// connection's thread, reached by no hot function or static) is refused with HS0102 and the
/// program restarts, instead of redirected code misreading the running program's value.
#[test]
fn a_layout_change_of_a_type_only_main_holds_is_refused() {
    let project = Project::copy("time-service");
    assert!(project.remove_hot_marks() > 0);
    project.edit_all(
        MAIN,
        &[
            (
                "fn respond(path: &str) -> (&'static str, String) {\n    match path {",
                "fn respond(path: &str, stats: &std::sync::Mutex<Stats>) -> (&'static str, String) {\n    \
                 let mut stats = stats.lock().unwrap();\n    stats.hits += 1;\n    match path {\n        \
                 \"/hits\" => (\"200 OK\", format!(\"{} hits\", stats.hits)),",
            ),
            (
                "fn serve(stream: TcpStream) -> std::io::Result<()> {",
                "fn serve(stream: TcpStream, stats: &std::sync::Mutex<Stats>) -> std::io::Result<()> {",
            ),
            ("let (status, body) = respond(path);", "let (status, body) = respond(path, stats);"),
            (
                "    for stream in listener.incoming() {",
                "    let stats = std::sync::Arc::new(std::sync::Mutex::new(Stats::default()));\n    \
                 for stream in listener.incoming() {\n        let stats = stats.clone();",
            ),
            ("if let Err(err) = serve(stream) {", "if let Err(err) = serve(stream, &stats) {"),
            (
                "/// Prints `log` records",
                "#[derive(Default)]\nstruct Stats {\n    hits: u64,\n}\n\n/// Prints `log` records",
            ),
        ],
    );
    let (mut session, addr) = start_service(&project, &[]);
    assert_eq!(get(&addr, "/hits").as_deref(), Ok("1 hits"));

    project.edit(
        MAIN,
        "    hits: u64,\n",
        "    hits: u64,\n    names: Vec<String>,\n",
    );
    session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0102]");
    let refused = status_messages(&session.stderr(), "Refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("     Refused [HS0102] `Stats` changed layout at src/main.rs:")
            && refused[0].contains("field `names: Vec<String>` added")
            && refused[0].contains(
                "the running program holds it: fn `respond` -> `stats: &Mutex<Stats>` -> `Stats`"
            ),
        "{}",
        refused[0]
    );
    session.assert_stderr_lacks("Patched");
}

/// An optimised build cannot be patched by redirection (the compiler copies functions into
/// their callers): `--redirect --release` says so once, with HS0503, and the session goes on
/// with hot functions, which are patched as without the flag.
#[test]
fn redirection_is_off_in_an_optimised_build_and_hot_functions_still_patch() {
    let project = Project::copy("time-service");
    let (mut session, addr) = start_service(&project, &["--release"]);
    let warnings = status_messages(&session.stderr(), "Warning");
    assert_eq!(
        warnings,
        [
            "     Warning [HS0503] `--redirect` is off: `time-service` is built with optimisations \
          (opt-level 3), which inline functions where no redirection reaches; only hot \
          functions are patched"
        ]
    );
    project.edit(MAIN, "\"The time is ", "\"Time now: ");
    wait_time_prefix(&addr, "Time now: ");
    session.wait_stderr(EDIT_DEADLINE, "generation 1: format_time");
    let patched = status_messages(&session.stderr(), "Patched");
    assert!(!patched[0].contains("pause"), "{}", patched[0]);
}

/// A program without the runtime dependency, built with optimisations: no hot functions and no
/// redirection, so the session says once that every edit restarts it, and an edit does.
#[test]
fn an_optimised_program_without_the_runtime_restarts_on_every_edit() {
    let project = Project::copy("time-service");
    assert!(project.remove_hot_marks() > 0);
    remove_runtime(&project);
    let mut session = project.run(&["--release"]);
    let addr = session.wait_listening();
    session.wait_stderr(START_DEADLINE, "    Watching ");
    assert_eq!(
        status_messages(&session.stderr(), "Warning"),
        [
            "     Warning [HS0503] `--redirect` is off: `time-service` is built with optimisations \
          (opt-level 3), which inline functions where no redirection reaches; without \
          `cargo-hotswap-runtime` it has no hot functions, so every edit restarts it"
        ]
    );
    let pid = get(&addr, "/pid").unwrap();
    project.edit(MAIN, "\"The time is ", "\"Time now: ");
    session.wait_stderr(EDIT_DEADLINE, "Restarting [HS0503]");
    assert_eq!(
        status_messages(&session.stderr(), "Restarting"),
        [
            "  Restarting [HS0503] time-service (`src/main.rs` changed, and an optimised build \
          without hot functions cannot be patched; state is lost)"
        ]
    );
    let addr = session.wait_stdout(START_DEADLINE, |out| {
        let line = out
            .lines()
            .filter(|l| l.starts_with("listening on "))
            .nth(1)?;
        Some(line.trim_start_matches("listening on http://").to_owned())
    });
    wait_time_prefix(&addr, "Time now: ");
    assert_ne!(get(&addr, "/pid").unwrap(), pid);
    session.assert_stderr_lacks("Unchanged");
}
