//! The session around the program: one session per program, a program that moves its
//! working directory, a program that exits, `cargo hotswap patch` with `--no-watch`,
//! the JSON event stream, and the session's files being private to the user.

use std::process::Command;
use std::time::Duration;

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, cargo_hotswap, status_messages};

use crate::{tick_field, wait_tick, wait_tick_of_new_process};

/// A second session on the same project is refused, naming the running session's pid.
#[test]
fn s14_second_session_is_refused_naming_the_first() {
    let project = Project::copy("gate");
    let mut first = project.run(&[]);
    wait_tick(&mut first, START_DEADLINE, &["beta-one"]);
    let mut second = project.run(&[]);
    assert_eq!(second.wait_exit(START_DEADLINE), Some(1));
    let expected = format!(
        "error: another `cargo hotswap run` session (pid {}) is running `gate`",
        first.pid()
    );
    assert!(second.stderr().contains(&expected), "{}", second.stderr());
    // Also with another target directory: the lock belongs to the program, not to its builds.
    let other = tempfile::tempdir().unwrap();
    let other = other.path().display().to_string();
    let mut third = project.run(&["--target-dir", &other]);
    assert_eq!(third.wait_exit(START_DEADLINE), Some(1));
    assert!(third.stderr().contains(&expected), "{}", third.stderr());
    // The first one is unaffected.
    project.edit("src/main.rs", "\"beta-one\"", "\"beta-two\"");
    wait_tick(&mut first, EDIT_DEADLINE, &["beta-two", "gen=1"]);
}

/// The program changes its working directory at start-up; patches still load.
#[test]
fn s16_program_that_changes_its_directory_is_still_patched() {
    let project = Project::copy("probe");
    let mut session = project.run(&[]);
    let first = wait_tick(&mut session, START_DEADLINE, &["report-one"]);
    let temp = std::env::temp_dir();
    assert_eq!(tick_field(&first, "cwd"), temp.display().to_string());
    project.edit("src/main.rs", "\"report-one found=", "\"report-two found=");
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["report-two", "gen=1"]);
    assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
}

/// The program is killed; the tool says so; the next edit starts it again from the current
/// sources, and no patch built for the dead process is applied to the new one.
#[test]
fn s18_killed_program_restarts_from_current_sources_on_the_next_edit() {
    let (project, mut session, first) = crate::start_gate(&[]);
    let pid = tick_field(&first, "pid");
    assert!(
        Command::new("kill")
            .args(["-9", pid])
            .status()
            .unwrap()
            .success()
    );
    session.wait_stderr(EDIT_DEADLINE, "      Exited `gate` (signal: 9 (SIGKILL))");
    project.edit("src/main.rs", "\"beta-one\"", "\"beta-two\"");
    session.wait_stderr(
        EDIT_DEADLINE,
        "  Restarting [HS0303] gate (the program is not running; state is lost)",
    );
    let line = wait_tick_of_new_process(&mut session, EDIT_DEADLINE, &first, &["beta-two"]);
    assert!(
        line.contains("gen=0"),
        "the new program runs the current source: {line}"
    );
    session.assert_stderr_lacks("Patched");
}

/// `cargo hotswap patch` asks a `--no-watch` session to patch; without it, edits wait.
#[test]
fn patch_command_patches_a_no_watch_session() {
    let project = Project::copy("gate");
    let mut session = project.run(&["--no-watch"]);
    wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    session.wait_stderr(
        START_DEADLINE,
        "     Waiting for `cargo hotswap patch` (--no-watch)",
    );
    project.edit("src/main.rs", "\"beta-one\"", "\"beta-two\"");
    let patch = || {
        Command::new(cargo_hotswap())
            .args(["hotswap", "patch", "--manifest-path"])
            .arg(project.path().join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", hotswap_tests::fixtures_target_dir())
            .output()
            .unwrap()
    };
    let output = patch();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // What the session printed, line for line: the warning too.
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[0], "    Patching gate (`src/main.rs` changed)",
        "{stderr}"
    );
    assert_eq!(
        lines[1],
        "     Warning [HS0501] these statics and thread-locals of the crate will start fresh in \
         the new code: `CALLS`, `LAST`"
    );
    assert!(
        lines[2].starts_with("     Patched 1 function in "),
        "{stderr}"
    );
    assert!(
        stderr.trim_end().ends_with("generation 1: beta"),
        "{stderr}"
    );
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-two", "gen=1"]);

    // Nothing changed since: the session says so, and succeeds.
    let output = patch();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr,
        "    Patching gate (no file changed)\n   Unchanged no code changed; nothing to patch\n"
    );
    // A compile error: the request shows rustc's diagnostics and fails with exit code 4.
    project.edit("src/main.rs", "\"beta-two\"", "\"beta-two\" +");
    let output = patch();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("error: expected expression, found `}`"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(
            "      Failed could not compile `gate`; the running program keeps its code until the \
             next `cargo hotswap patch`\n"
        ),
        "{stderr}"
    );
    // A refused patch: the refusal as the session printed it, line for line, and exit code 3.
    crate::fix_and_change_alpha_signature(&project);
    let output = patch();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.starts_with(
            "    Patching gate (`src/main.rs` changed)\n     \
             Refused [HS0101] hot fn `gate::alpha` changed its signature at src/main.rs:39\n             \
             was `fn alpha() -> &'static str`\n             \
             now `fn alpha(n: u8) -> &'static str`\n  \
             Restarting [HS0101] gate (the patch was refused; state is lost)\n             \
             pass `--no-restart` to keep the old code running instead\n"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("     Running `"), "{stderr}");
    drop(session);
    // Without a session, the command says so and fails with exit code 5.
    let output = patch();
    assert_eq!(output.status.code(), Some(5));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .starts_with("error: no `cargo hotswap run` session is running `gate`"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `--message-format json`: one JSON object per event on stdout, codes included, for a session
/// with one of each outcome (applied, compile error, refused and kept, unchanged after a build
/// and without one, start-up code waiting, restart); the program's own output goes to stderr.
#[test]
fn json_events_of_a_session() {
    let project = Project::copy("gate");
    let mut session = project.run(&["--message-format", "json", "--no-restart"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit("src/main.rs", "\"beta-one\"", "\"beta-two\"");
    session.wait_stdout(EDIT_DEADLINE, |out| {
        out.contains("patch-applied").then_some(())
    });
    project.edit("src/main.rs", "\"beta-two\"", "\"beta-two\" +");
    session.wait_stdout(EDIT_DEADLINE, |out| {
        out.contains("\"success\":false").then_some(())
    });
    crate::fix_and_change_alpha_signature(&project);
    session.wait_stdout(EDIT_DEADLINE, |out| {
        out.contains("\"reason\":\"kept\"").then_some(())
    });
    // Back to the running code: built, and no code changed.
    project.edit_all(
        "src/main.rs",
        &[
            (
                "fn alpha(n: u8) -> &'static str {\n    let _ = n;",
                "fn alpha() -> &'static str {",
            ),
            ("            alpha(1),", "            alpha(),"),
        ],
    );
    session.wait_stdout(EDIT_DEADLINE, |out| {
        out.contains("patch-unchanged").then_some(())
    });
    // A comment: not even built.
    project.edit("src/main.rs", "fn main() {", "// The loop.\nfn main() {");
    session.wait_stdout(EDIT_DEADLINE, |out| {
        (out.matches("patch-unchanged").count() == 2).then_some(())
    });
    // Start-up code: waits for a restart (`--no-restart`).
    project.edit("src/main.rs", "label: \"state\"", "label: \"state-two\"");
    session.wait_stdout(EDIT_DEADLINE, |out| out.contains("HS0201").then_some(()));
    // The manifest: a restart, whatever the policy.
    project.edit(
        "Cargo.toml",
        "[dependencies]\n",
        "[dependencies]\n# restart\n",
    );
    session.wait_stdout(EDIT_DEADLINE, |out| {
        (out.matches("host-started").count() == 2).then_some(())
    });
    assert!(
        session.stderr().contains("tick pid="),
        "the program's output goes to stderr"
    );
    let stdout = session.stdout();
    assert!(!stdout.contains("tick pid="), "{stdout}");
    for line in stdout.lines() {
        assert!(line.starts_with("{\"reason\":"), "not a JSON event: {line}");
    }
    let path = project.path().display().to_string();
    insta::with_settings!({filters => vec![
        (r#""pid":\d+"#, r#""pid":[pid]"#),
        (r#""(build|check|load)_ms":[\d.]+"#, r#""${1}_ms":[ms]"#),
        (path.as_str(), "[project]"),
        (r#""diagnostics":"[^"]*(\\"[^"]*)*""#, r#""diagnostics":[diagnostics]"#),
    ]}, {
        insta::assert_snapshot!(stdout, @r#"
        {"reason":"build-started","target":"host"}
        {"reason":"build-finished","target":"host","success":true,"build_ms":[ms]}
        {"reason":"host-started","pid":[pid]}
        {"reason":"build-started","target":"patch","files":["[project]/src/main.rs"]}
        {"reason":"build-finished","target":"patch","success":true,"build_ms":[ms]}
        {"reason":"warning","code":"HS0501","message":"these statics and thread-locals of the crate will start fresh in the new code: `CALLS`, `LAST`"}
        {"reason":"patch-applied","generation":1,"functions":["beta"],"build_ms":[ms],"check_ms":[ms],"load_ms":[ms]}
        {"reason":"build-started","target":"patch","files":["[project]/src/main.rs"]}
        {"reason":"build-finished","target":"patch","success":false,"diagnostics":[diagnostics]}
        {"reason":"build-started","target":"patch","files":["[project]/src/main.rs"]}
        {"reason":"build-finished","target":"patch","success":true,"build_ms":[ms]}
        {"reason":"patch-refused","refusals":[{"code":"HS0101","message":"hot fn `gate::alpha` changed its signature at src/main.rs:39\nwas `fn alpha() -> &'static str`\nnow `fn alpha(n: u8) -> &'static str`"}]}
        {"reason":"kept","code":"HS0101","message":"`gate` runs its previous code (--no-restart); the next save is checked again"}
        {"reason":"build-started","target":"patch","files":["[project]/src/main.rs"]}
        {"reason":"build-finished","target":"patch","success":true,"build_ms":[ms]}
        {"reason":"patch-unchanged"}
        {"reason":"patch-unchanged"}
        {"reason":"build-started","target":"patch","files":["[project]/src/main.rs"]}
        {"reason":"build-finished","target":"patch","success":true,"build_ms":[ms]}
        {"reason":"warning","code":"HS0201","message":"`main` at src/main.rs:50 changed, but no hot function reaches it: the change takes effect only after a restart"}
        {"reason":"host-restarting","code":"HS0301","why":"`Cargo.toml` changed, which the patch cannot carry: the host is rebuilt"}
        {"reason":"build-started","target":"host"}
        {"reason":"build-finished","target":"host","success":true,"build_ms":[ms]}
        {"reason":"host-started","pid":[pid]}
        "#);
    });
    assert_eq!(status_messages(&session.stderr(), "Refused").len(), 1);
    let diagnostics = stdout
        .lines()
        .find(|l| l.contains("\"success\":false"))
        .unwrap();
    assert!(
        diagnostics.contains("expected expression, found `}`")
            && diagnostics.contains("aborting due to 1 previous error"),
        "rustc's diagnostics, once: {diagnostics}"
    );
}

/// The mode bits (permissions) of `path`, not following a symlink.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Under umask 000, the session's socket directory is 0700, its sockets 0600, the recorded
/// rustc command (whose environment may hold tokens) 0600, and so are the files the linker
/// wrapper writes for a patch: no other user can talk to the program's agent, drive the
/// session, or read the capture.
#[test]
fn session_files_are_private_to_the_user_under_umask_000() {
    let project = Project::copy("gate");
    let mut session = project.run_under_umask("000", &[]);
    let first = wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    let pid = tick_field(&first, "pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let socket = environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(b"HOTSWAP_AGENT_SOCKET="))
        .map(|path| std::path::PathBuf::from(String::from_utf8_lossy(path).into_owned()))
        .expect("the program has the agent's socket in its environment");
    let dir = socket.parent().unwrap();
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    assert_eq!(mode(&socket), 0o600, "{}", socket.display());
    assert_eq!(mode(&dir.join("control.sock")), 0o600);
    // The host executable lies next to the capture of its rustc command.
    let stderr = session.stderr();
    let exe = stderr
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("Running `"))
        .and_then(|rest| rest.split('`').next())
        .expect("a `Running` line names the host");
    let exe = project.path().join(exe);
    let capture = exe.parent().unwrap().join("rustc-command.json");
    assert_eq!(mode(&capture), 0o600, "{}", capture.display());
    // What the linker wrapper writes for a patch: the symbols of the program's objects, and
    // the objects it rewrote.
    project.edit("src/main.rs", "\"beta-one\"", "\"beta-two\"");
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-two", "gen=1"]);
    let written: Vec<_> = std::fs::read_dir(exe.parent().unwrap().join("patch/thin-objects"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(
        written
            .iter()
            .any(|path| path.ends_with("baseline-symbols.bin")),
        "{written:?}"
    );
    for path in &written {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
}

/// The dependencies a `cargo build` compiled serve `cargo hotswap run` as they are, and the
/// other way round: switching between the two compiles the project's own crate (its `#[hot]`
/// expansion differs, and cargo says so), never a registry crate (`log`) or the runtime. The
/// session still patches the program.
#[test]
fn a_cargo_build_and_a_session_compile_no_dependency_of_each_other() {
    let project = Project::copy("time-service");
    let cargo_build = || {
        let output = Command::new(hotswap_tests::cargo())
            .args(["build", "-v", "--manifest-path"])
            .arg(project.path().join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", hotswap_tests::fixtures_target_dir())
            .env_remove("CARGO_HOTSWAP_HOST_BUILD")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        stderr
    };
    let compiled = |stderr: &str| -> Vec<String> {
        stderr
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("Compiling "))
            .map(|unit| unit.split(' ').next().unwrap_or(unit).to_owned())
            .collect()
    };
    cargo_build();

    let mut session = project.run(&[]);
    let addr = session.wait_listening();
    session.wait_stderr(START_DEADLINE, "    Watching ");
    assert_eq!(
        compiled(&session.stderr()),
        ["time-service"],
        "{}",
        session.stderr()
    );
    project.edit("src/main.rs", "The time is", "It is");
    session.wait_stderr(EDIT_DEADLINE, "     Patched ");
    let answer = hotswap_tests::get(&addr, "/time").unwrap();
    assert!(answer.starts_with("It is "), "{answer}");
    assert_eq!(session.interrupt(EDIT_DEADLINE), Some(130));

    let after = cargo_build();
    assert_eq!(compiled(&after), ["time-service"], "{after}");
    assert!(
        after.contains("the environment variable CARGO_HOTSWAP_HOST_BUILD changed"),
        "{after}"
    );
}

/// A second `cargo hotswap run` of a project that did not change reuses the host the first one
/// built: cargo compiles nothing and no host is linked, and the reused
/// host is patched like a new one. An edit made between two sessions builds a new host.
#[test]
fn an_unchanged_project_starts_on_the_host_of_its_last_session() {
    let (project, mut session, _) = crate::start_gate(&["-v"]);
    let stderr = session.stderr();
    assert!(
        stderr.contains("   Compiling gate") && stderr.contains("      Linked `"),
        "the first session builds its host:\n{stderr}"
    );
    assert_eq!(session.interrupt(EDIT_DEADLINE), Some(130));

    let mut session = project.run(&["-v"]);
    let first = wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    let stderr = session.stderr();
    assert!(
        stderr.contains("(unchanged since its last build)\n"),
        "{stderr}"
    );
    for built in ["   Compiling gate", "      Linked `"] {
        assert!(!stderr.contains(built), "`{built}` in\n{stderr}");
    }
    crate::patch_beta(&project, &mut session, &first);
    assert_eq!(session.interrupt(EDIT_DEADLINE), Some(130));

    // The edit above is in the sources now: the next host is built again, with it.
    let mut session = project.run(&["-v"]);
    wait_tick(&mut session, START_DEADLINE, &["beta-two", "gen=0"]);
    let stderr = session.stderr();
    assert!(stderr.contains("   Compiling gate"), "{stderr}");
    assert!(
        !stderr.contains("unchanged since its last build"),
        "{stderr}"
    );
}

/// A start reads the project with `cargo metadata` again only when a file it was read from
/// changed: a start of an unchanged project takes the project the last one read (the first
/// start's own writes, the lockfile and the target directory, count as changes once); after
/// its manifest was saved as it was, `cargo metadata` confirms the project while the host
/// build started for it runs; after an edit that renames the bin, the build started for the old
/// name is dropped unseen and the renamed bin runs.
#[test]
fn a_start_reads_the_project_again_only_when_a_manifest_changed() {
    let (project, mut session, _) = crate::start_gate(&[]);
    assert_eq!(session.interrupt(EDIT_DEADLINE), Some(130));
    let mut session = project.run(&[]);
    wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    assert_eq!(session.interrupt(EDIT_DEADLINE), Some(130));

    let mut session = project.run(&["-v"]);
    wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    let stderr = session.stderr();
    assert!(
        stderr.contains(
            "       Fresh the project (its manifests and cargo's configuration are as the last \
             session read them)\n"
        ),
        "{stderr}"
    );
    assert_eq!(session.interrupt(EDIT_DEADLINE), Some(130));

    // Saved as it was: only its modification time is new.
    let manifest = project.path().join("Cargo.toml");
    let text = std::fs::read(&manifest).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&manifest, text).unwrap();
    let mut session = project.run(&["-v"]);
    wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    let stderr = session.stderr();
    assert!(
        stderr.contains(
            "     Reusing the last session's project (confirmed by `cargo metadata`): its host \
             build started with `cargo metadata`\n"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("       Fresh the project"), "{stderr}");
    // The build waited for the package cache while `cargo metadata` held it: not worth a line.
    assert!(
        !stderr.contains("Blocking waiting for file lock on package cache"),
        "{stderr}"
    );
    assert_eq!(session.interrupt(EDIT_DEADLINE), Some(130));

    project.edit(
        "Cargo.toml",
        "[dependencies]",
        "[[bin]]\nname = \"gate-renamed\"\npath = \"src/main.rs\"\n\n[dependencies]",
    );
    let mut session = project.run(&["-v"]);
    wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    let stderr = session.stderr();
    assert!(
        stderr.contains(
            "  Discarding the host build started for the last session's project: the project \
             changed\n"
        ),
        "{stderr}"
    );
    // The dropped build asked for the old bin, which cargo no longer knows: none of it shows.
    assert!(!stderr.contains("no bin target named"), "{stderr}");
    assert!(
        stderr.lines().any(|line| line.starts_with("     Running `")
            && line.contains("/gate-renamed` (pid ")),
        "{stderr}"
    );
}

/// A bin cargo finds by its file (`src/main.rs` moved to `src/bin/server.rs`, with no manifest
/// edit) is the one the next start runs: the start sees that `src` changed and reads the
/// project again.
#[test]
fn a_bin_moved_into_src_bin_is_the_one_the_next_start_runs() {
    let (project, mut session, _) = crate::start_gate(&[]);
    assert_eq!(session.interrupt(EDIT_DEADLINE), Some(130));

    std::fs::create_dir(project.path().join("src/bin")).unwrap();
    std::fs::rename(
        project.path().join("src/main.rs"),
        project.path().join("src/bin/server.rs"),
    )
    .unwrap();
    let mut session = project.run(&["-v"]);
    wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    let stderr = session.stderr();
    assert!(!stderr.contains("       Fresh the project"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("     Running `") && line.contains("/server` (pid ")),
        "{stderr}"
    );
}

/// The session's directory keeps the patches the program loaded, and no other: the baselines
/// built at the start, a save that changes no code and a refused patch leave no file there
/// (each is about the size of the crate's debug info).
#[test]
fn only_applied_patches_stay_in_the_session_directory() {
    let (project, mut session, first) = crate::start_gate(&["--no-restart"]);
    crate::patch_beta(&project, &mut session, &first);
    project.edit("src/main.rs", "fn beta()", "// A comment.\nfn beta()");
    session.wait_stderr(EDIT_DEADLINE, "   Unchanged ");
    // A hot function's new signature is refused; `--no-restart` keeps the program. One write,
    // so that no second build (which removes the first's split debug info) follows it.
    project.edit(
        "src/main.rs",
        "fn beta() -> &'static str {\n    \"beta-two\"",
        "fn beta() -> String {\n    \"beta-three\".to_owned()",
    );
    session.wait_stderr(EDIT_DEADLINE, "     Refused [HS0101]");
    let sessions = hotswap_tests::session_dirs(&session);
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let mut files: Vec<String> = std::fs::read_dir(&sessions[0])
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".so"))
        .collect();
    files.sort();
    assert_eq!(files, ["gate-patch-1.so"], "{}", session.stderr());
    // The split debug info of the builds (`<crate>.<codegen unit>.<build>.rcgu.dwo`, a set per
    // build) does not pile up either: each build directory holds its last build's only (the
    // fast builds' directory has seen three builds).
    let work = sessions[0].parent().unwrap().parent().unwrap();
    for build in ["patch", "patch-full"] {
        let builds: std::collections::BTreeSet<String> = std::fs::read_dir(work.join(build))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|f| {
                let name = f.file_name().to_string_lossy().into_owned();
                let stem = name.strip_suffix(".rcgu.dwo")?;
                Some(stem.rsplit('.').next()?.to_owned())
            })
            .collect();
        assert!(builds.len() <= 1, "`{build}`: {builds:?}");
        if build == "patch" {
            assert_eq!(
                builds.len(),
                1,
                "the fast build's split debug info is there"
            );
        }
    }
}
