//! What a person sees: the whole transcript of a session, the progress bar on a terminal, and
//! every documented exit code. (The help is checked against the book's CLI reference, in
//! `tests/tests/walkthrough.rs`.)

use std::process::Command;

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, cargo_hotswap};

/// The session transcript outside a terminal (as in a log or CI): start, one patch, one compile
/// error, one refused edit, and the exit on SIGINT with code 130. cargo's own lines, the
/// program's ticks and the variable parts (times, pids, paths) are left out.
#[test]
fn transcript_of_a_session_outside_a_terminal() {
    let project = Project::copy("gate");
    let mut session = project.run(&["--no-restart"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit("src/main.rs", "\"beta-one\"", "\"beta-two\"");
    session.wait_stderr(EDIT_DEADLINE, "generation 1: beta");
    project.edit("src/main.rs", "\"beta-two\"", "\"beta-two\" +");
    session.wait_stderr(EDIT_DEADLINE, "      Failed ");
    crate::fix_and_change_alpha_signature(&project);
    session.wait_stderr(EDIT_DEADLINE, "        Kept ");
    let pid = session.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(session.wait_exit(EDIT_DEADLINE), Some(130));

    let cargo_lines = [
        "Compiling ",
        "Updating ",
        "Locking ",
        "Blocking ",
        "Adding ",
        "Downloaded",
        "Finished `",
    ];
    let transcript: String = session
        .stderr()
        .lines()
        .filter(|l| {
            !l.starts_with("tick ") && !cargo_lines.iter().any(|c| l.trim_start().starts_with(c))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let path = project.path().display().to_string();
    insta::with_settings!({filters => vec![
        (path.as_str(), "[project]"),
        (r"pid \d+", "pid [pid]"),
        (r"in \d+(\.\d+)?s", "in [time]"),
        (r"in \d+ ms \(build \d+, check \d+\.\d, load \d+\.\d\)", "in [ms] (build [ms], check [ms], load [ms])"),
        (r"/[^ `]*/hotswap/debug/gate-[0-9a-f]+/gate", "[host]"),
    ]}, {
        insta::assert_snapshot!(transcript, @r#"
                Finished host in [time]
                 Running `[host]` (pid [pid])
                Watching src (1 package)
                Patching gate (`src/main.rs` changed)
                 Warning [HS0501] these statics and thread-locals of the crate will start fresh in the new code: `CALLS`, `LAST`
                 Patched 1 function in [ms] (build [ms], check [ms], load [ms]) generation 1: beta
                Patching gate (`src/main.rs` changed)
            error: expected expression, found `}`
              --> src/main.rs:47:1
               |
            47 | }
               | ^ expected expression

            error: aborting due to 1 previous error

                  Failed could not compile `gate`; the running program keeps its code until the next save
                Patching gate (`src/main.rs` changed)
                 Refused [HS0101] hot fn `gate::alpha` changed its signature at src/main.rs:39
                         was `fn alpha() -> &'static str`
                         now `fn alpha(n: u8) -> &'static str`
                    Kept `gate` runs its previous code (--no-restart); the next save is checked again
                 Stopped `gate` (interrupted)
                "#);
    });
}

/// On a terminal, the host build shows a progress bar fed by cargo's JSON messages, and clears
/// it when done.
#[test]
fn progress_bar_on_a_terminal_is_drawn_then_cleared() {
    let project = Project::copy("gate");
    let log = project.path().join("terminal.log");
    let command = format!(
        "{} hotswap run --manifest-path {}",
        cargo_hotswap().display(),
        project.path().join("Cargo.toml").display()
    );
    // `script` runs the session on a pseudo-terminal and logs everything written to it.
    let mut child = Command::new("script")
        .args(["-qfec", &command])
        .arg(&log)
        .env("CARGO_TARGET_DIR", hotswap_tests::fixtures_target_dir())
        .env("PORT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + START_DEADLINE;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Watching") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `Watching` on the terminal:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let bar = text
        .rfind("Building\x1b[0m [")
        .expect("the progress bar was drawn");
    let finished = text.find("host in ").expect("the host build finished");
    let clear = text[bar..].find("\x1b[2K").map(|at| bar + at);
    assert!(
        clear.is_some_and(|clear| clear < finished),
        "the bar was not cleared before `Finished host`:\n{:?}",
        &text[bar..finished]
    );
    // The bar counts the units built: `] 3/12: <crate>`.
    let counted = text[bar..finished].split("] ").skip(1).any(|rest| {
        let (done, rest) = rest.split_once('/').unwrap_or_default();
        let total: String = rest.chars().take_while(char::is_ascii_digit).collect();
        !done.is_empty() && done.chars().all(|c| c.is_ascii_digit()) && !total.is_empty()
    });
    assert!(counted, "no `] done/total` count in the bar: {text:?}");
}

/// Exit code 2: invalid arguments.
#[test]
fn invalid_arguments_exit_with_2() {
    let output = Command::new(cargo_hotswap())
        .args(["hotswap", "run", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: unexpected argument '--no-such-flag' found"),
        "{stderr}"
    );
}
