//! The walking skeleton: the time service patched while serving, compile errors, logging and
//! `TypeId`s across the boundary, edits in library crates that only start-up code reaches, zero
//! cost when off.
use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, Session, get, status_messages};

use crate::{tick_field, wait_tick, wait_time_prefix};

const FORMAT_TIME: &str = "src/main.rs";

/// The main job: the time service keeps serving, from the same process, while its time format
/// is edited three times (the third edit reverts to the original text); a client issuing
/// requests the whole time sees no failure and only whole answers of one format or another.
#[test]
fn s01_time_service_is_patched_while_serving_continuously() {
    let project = Project::copy("time-service");
    let mut session = project.run(&[]);
    let addr = session.wait_listening();
    session.wait_stderr(START_DEADLINE, "    Watching ");
    let first = wait_time_prefix(&addr, "The time is ");
    let pid = get(&addr, "/pid").unwrap();

    let load = hotswap_tests::Load::start(&addr, "/time", 1);

    project.edit(FORMAT_TIME, "\"The time is ", "\"Time now: ");
    wait_time_prefix(&addr, "Time now: ");
    session.wait_stderr(EDIT_DEADLINE, "generation 1: format_time");
    project.edit(FORMAT_TIME, "\"Time now: ", "\"Clock says ");
    wait_time_prefix(&addr, "Clock says ");
    project.edit(FORMAT_TIME, "\"Clock says ", "\"The time is ");
    let last = wait_time_prefix(&addr, "The time is ");
    session.wait_stderr(EDIT_DEADLINE, "generation 3: format_time");

    let answers = load.stop();
    let failures: Vec<_> = answers.iter().filter(|a| a.is_err()).collect();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(
        answers.len() > 10,
        "the client made only {} requests",
        answers.len()
    );
    for answer in answers.iter().flatten() {
        assert!(
            ["The time is ", "Time now: ", "Clock says "]
                .iter()
                .any(|p| answer.starts_with(p) && answer.ends_with(" UTC")),
            "unexpected answer {answer:?}"
        );
    }
    assert_eq!(get(&addr, "/pid").unwrap(), pid, "the process changed");
    assert!(first.ends_with(" UTC") && last.ends_with(" UTC"));
    assert_eq!(
        session.stderr().matches("     Patched 1 function").count(),
        3
    );
}

/// A syntax error is shown once, the old code keeps serving, the fix patches.
#[test]
fn s12_compile_error_keeps_old_code_and_the_fix_patches() {
    let project = Project::copy("time-service");
    let mut session = project.run(&[]);
    let addr = session.wait_listening();
    session.wait_stderr(START_DEADLINE, "    Watching ");
    wait_time_prefix(&addr, "The time is ");
    let pid = get(&addr, "/pid").unwrap();

    project.edit(FORMAT_TIME, "let secs = now", "let secs = = now");
    session.wait_stderr(EDIT_DEADLINE, "could not compile `time-service`");
    let stderr = session.stderr();
    assert_eq!(
        stderr
            .matches("error: expected expression, found `=`")
            .count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("src/main.rs:"),
        "the diagnostic names the file: {stderr}"
    );
    assert!(get(&addr, "/time").unwrap().starts_with("The time is "));

    project.edit(FORMAT_TIME, "let secs = = now", "let secs = now");
    project.edit(FORMAT_TIME, "\"The time is ", "\"Fixed: ");
    wait_time_prefix(&addr, "Fixed: ");
    assert_eq!(get(&addr, "/pid").unwrap(), pid);
}

/// A dependency's global state (first half) and `TypeId`s: after a patch, hot code logs through the logger the host
/// installed, and finds the host's value of a user type behind `dyn Any` by downcast.
#[test]
fn s06_patched_code_logs_to_host_logger_and_downcasts_host_values() {
    let project = Project::copy("probe");
    let mut session = project.run(&[]);
    let first = wait_tick(
        &mut session,
        START_DEADLINE,
        &["gen=0", "report-one found=marker"],
    );
    session.wait_stderr(EDIT_DEADLINE, "[host-logger] report says log-one");

    project.edit("src/main.rs", "report says log-one", "report says log-two");
    project.edit("src/main.rs", "\"report-one found=", "\"report-two found=");
    let line = wait_tick(
        &mut session,
        EDIT_DEADLINE,
        &["gen=1", "report-two found=marker"],
    );
    session.wait_stderr(EDIT_DEADLINE, "[host-logger] report says log-two");
    assert_eq!(
        tick_field(&line, "pid"),
        tick_field(&first, "pid"),
        "the process changed"
    );
}

/// An edit in the package's lib target, to a function only `main` calls, is built and then
/// restarted with the reason (only start-up code reaches it), naming the function with its crate
/// and where it is; the new program runs the new lib code.
#[test]
fn lib_function_only_main_calls_restarts_naming_it() {
    let project = Project::copy("probe");
    let mut session = project.run(&[]);
    let first = wait_tick(&mut session, START_DEADLINE, &["lib=lib-one"]);

    project.edit("src/lib.rs", "\"lib-one\"", "\"lib-two\"");
    session.wait_stderr(EDIT_DEADLINE, "  Restarting [HS0201] probe (");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Restarting").join("\n"), @"  Restarting [HS0201] probe (`lib_word` at src/lib.rs:4 changed, and no hot function reaches it; state is lost)");
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["lib=lib-two", "gen=0"]);
    assert_ne!(
        tick_field(&line, "pid"),
        tick_field(&first, "pid"),
        "the program was not restarted"
    );
}

/// The same for another workspace member: the `Patching` line names the crates rebuilt.
#[test]
fn workspace_member_function_only_main_calls_restarts_naming_it() {
    let project = Project::copy("probe");
    let mut session = project.run(&[]);
    let first = wait_tick(&mut session, START_DEADLINE, &["util=util-one"]);

    project.edit("util/src/lib.rs", "\"util-one\"", "\"util-two\"");
    session.wait_stderr(EDIT_DEADLINE, "  Restarting [HS0201] probe (");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Patching").join("\n"), @"    Patching probe (`util/src/lib.rs` changed; rebuilding probe_util, probe, probe (bin))");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Restarting").join("\n"), @"  Restarting [HS0201] probe (`probe_util::word` at util/src/lib.rs:4 changed, and no hot function reaches it; state is lost)");
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["util=util-two"]);
    assert_ne!(
        tick_field(&line, "pid"),
        tick_field(&first, "pid"),
        "the program was not restarted"
    );
}

/// Zero cost when off: a plain `cargo build` has no slot code (the exported body symbol of the
/// hot function is absent), while the host that `cargo hotswap run` built has it.
#[test]
fn plain_cargo_build_contains_no_slot_code() {
    let project = Project::copy("time-service");
    let target = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(hotswap_tests::cargo())
        .args(["build", "--quiet", "--manifest-path"])
        .arg(project.path().join("Cargo.toml"))
        .env(
            "CARGO_TARGET_DIR",
            hotswap_tests::fixtures_target_dir().join("plain"),
        )
        .status()
        .unwrap();
    assert!(status.success());
    let plain =
        std::fs::read(hotswap_tests::fixtures_target_dir().join("plain/debug/time-service"))
            .unwrap();
    let symbol = b"__hotswap_impl$time_service::format_time";
    assert!(!contains(&plain, symbol), "the plain binary has slot code");
    assert!(
        !contains(&plain, b"__hotswap_slot$"),
        "the plain binary has a slot"
    );

    let mut session = project.run(&[]);
    session.wait_listening();
    let host = find_file(
        &hotswap_tests::fixtures_target_dir().join("hotswap/debug"),
        |p| {
            p.file_name().is_some_and(|n| n == "time-service")
                && p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|d| d.to_string_lossy().starts_with("time-service-"))
                && std::fs::read(p).is_ok_and(|bytes| contains(&bytes, symbol))
        },
    );
    assert!(
        host.is_some(),
        "no host executable exports `{}`",
        String::from_utf8_lossy(symbol)
    );
    drop(target);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn find_file(
    dir: &std::path::Path,
    pred: impl Fn(&std::path::Path) -> bool + Copy,
) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, pred) {
                return Some(found);
            }
        } else if pred(&path) {
            return Some(path);
        }
    }
    None
}

/// The HTTP service under continuous concurrent requests while 20 patches and several
/// refused edits happen (`--no-restart`, so that a refusal keeps the process): no request fails,
/// and every answer is one version's whole answer.
#[test]
fn s22_service_under_load_through_20_patches_and_refusals() {
    service_under_load(false);
}

/// The same without the `#[hot]` mark, under `--redirect`: the signature changes are patched,
/// since every caller of the function is redirected with it.
#[test]
fn s22_service_without_marks_under_load_through_20_patches_and_refusals() {
    service_under_load(true);
}

/// The service-under-load scenario, with `redirect` under `--redirect` and without marks.
fn service_under_load(redirect: bool) {
    let project = Project::copy("time-service");
    let mut args = vec!["--no-restart"];
    if redirect {
        assert_eq!(project.remove_hot_marks(), 1);
        args.push("--redirect");
    }
    let mut session = project.run(&args);
    let addr = session.wait_listening();
    session.wait_stderr(START_DEADLINE, "    Watching ");
    let pid = get(&addr, "/pid").unwrap();

    let load = hotswap_tests::Load::start(&addr, "/time", 3);

    let mut current = "The time is ".to_owned();
    // Under `--redirect`, the generation of the last patch (each one is waited for in turn).
    let mut generation = 0;
    let mut patched = |session: &mut Session, names: &str| {
        generation += 1;
        session.wait_stderr(
            EDIT_DEADLINE,
            &format!("generation {generation}: {names}\n"),
        );
    };
    for n in 1..=20 {
        let next = format!("Version {n}: ");
        project.edit(FORMAT_TIME, &format!("\"{current}"), &format!("\"{next}"));
        wait_time_prefix(&addr, &next);
        if redirect {
            patched(&mut session, "format_time");
        }
        current = next;
        if n % 5 == 0 {
            // `format_time` gains a parameter, and its caller passes it: with hot functions, a
            // refused edit (the old code keeps serving); under `--redirect`, patched (its only
            // caller, `respond`, is redirected too), then patched back.
            let kept = session.stderr().matches("        Kept ").count();
            project.edit_all(
                FORMAT_TIME,
                &[
                    (
                        "fn format_time(now: SystemTime) -> String {",
                        "fn format_time(now: SystemTime, _zone: i8) -> String {",
                    ),
                    (
                        "format_time(SystemTime::now())",
                        "format_time(SystemTime::now(), 0)",
                    ),
                ],
            );
            if redirect {
                patched(&mut session, "format_time, respond");
            } else {
                session.wait_stderr_count(EDIT_DEADLINE, "        Kept ", kept + 1);
            }
            assert!(get(&addr, "/time").unwrap().starts_with(&current));
            project.edit_all(
                FORMAT_TIME,
                &[
                    (
                        "fn format_time(now: SystemTime, _zone: i8) -> String {",
                        "fn format_time(now: SystemTime) -> String {",
                    ),
                    (
                        "format_time(SystemTime::now(), 0)",
                        "format_time(SystemTime::now())",
                    ),
                ],
            );
            if redirect {
                patched(&mut session, "format_time, respond");
            }
        }
    }
    if !redirect {
        session.wait_stderr(EDIT_DEADLINE, "generation 20: format_time");
    }
    let answers = load.stop();
    let failures: Vec<_> = answers.iter().filter(|a| a.is_err()).collect();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    for answer in answers.iter().flatten() {
        let version_ok = answer.starts_with("The time is ")
            || (1..=20).any(|n| answer.starts_with(&format!("Version {n}: ")));
        assert!(
            version_ok && answer.ends_with(" UTC"),
            "unexpected answer {answer:?}"
        );
    }
    assert_eq!(get(&addr, "/pid").unwrap(), pid, "the process changed");
    let refused = status_messages(&session.stderr(), "Refused");
    if redirect {
        assert!(refused.is_empty(), "{refused:?}");
    } else {
        assert_eq!(refused.len(), 4, "{refused:?}");
        assert!(
            refused.iter().all(|r| r.contains("[HS0101]")),
            "{refused:?}"
        );
    }
}
