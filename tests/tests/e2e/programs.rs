//! The programs people really write: an axum service whose `async fn` handlers are marked
//! `#[hot]` as written (no sync twins), with a trait impl (`Display`) and an `impl<'a>` block
//! marked too.

use std::time::{Duration, Instant};

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, Session, get, post};

const MAIN: &str = "src/main.rs";

/// Starts the axum example; returns the project, the session and the service's address.
fn start_service() -> (Project, Session, String) {
    let project = Project::copy("axum-service");
    let mut session = project.run(&[]);
    let addr = session.wait_listening();
    session.wait_stderr(START_DEADLINE, "    Watching ");
    (project, session, addr)
}

/// Waits until `GET path` answers `body`.
fn wait_answer(addr: &str, path: &str, body: &str) {
    let end = Instant::now() + EDIT_DEADLINE;
    loop {
        let answer = get(addr, path);
        if answer.as_deref() == Ok(body) {
            return;
        }
        assert!(
            Instant::now() < end,
            "`{path}` never answered `{body}`; last answer: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ten edits of an `async fn` handler that awaits a timer, under continuous requests: each takes
/// effect for the next request in the same process, no request fails, every answer is one
/// version's whole answer; a request in flight during a patch completes with the code it
/// started with; the state (a todo stored at the start) is kept throughout.
#[test]
fn async_handlers_are_patched_under_load_with_requests_in_flight() {
    let (project, session, addr) = start_service();
    let pid = get(&addr, "/pid").unwrap();
    post(&addr, "/todos", r#"{"title":"keep me","cost":250}"#).unwrap();

    let load = hotswap_tests::Load::start(&addr, "/greeting", 3);

    // A request that awaits for five seconds, started before the first patch.
    let in_flight = {
        let addr = addr.clone();
        std::thread::spawn(move || (get(&addr, "/slow"), Instant::now()))
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut first_patched = None;
    let mut current = "Hello from the todo service".to_owned();
    for n in 1..=10 {
        let next = format!("Greeting version {n}");
        let mut edits = vec![(format!("\"{current}\""), format!("\"{next}\""))];
        if n == 1 {
            edits.push((
                "\"slow answer one\"".to_owned(),
                "\"slow answer two\"".to_owned(),
            ));
        }
        let edits: Vec<(&str, &str)> = edits.iter().map(|(a, b)| (&**a, &**b)).collect();
        project.edit_all(MAIN, &edits);
        wait_answer(&addr, "/greeting", &next);
        first_patched.get_or_insert_with(Instant::now);
        current = next;
    }
    let (slow, finished) = in_flight.join().unwrap();
    assert_eq!(
        slow.as_deref(),
        Ok("slow answer one"),
        "the request in flight completes with the code it started with"
    );
    assert!(
        first_patched.is_some_and(|patched| patched < finished),
        "the request was still in flight when the first patch took effect"
    );
    assert_eq!(get(&addr, "/slow").as_deref(), Ok("slow answer two"));
    let answers = load.stop();
    let failed: Vec<_> = answers.iter().filter(|a| a.is_err()).collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    for answer in answers.iter().flatten() {
        assert!(
            answer == "Hello from the todo service"
                || answer
                    .strip_prefix("Greeting version ")
                    .is_some_and(|n| n.parse::<u8>().is_ok()),
            "not one version's whole answer: {answer:?}"
        );
    }
    assert_eq!(get(&addr, "/pid").unwrap(), pid, "the same process");
    assert!(get(&addr, "/todos").unwrap().contains("keep me"));
    let stderr = session.stderr();
    assert!(stderr.contains("generation 10: greeting"), "{stderr}");
    assert!(!stderr.contains("Restarting"), "{stderr}");
}

/// A new route added in the async `main` (`#[tokio::main]`): code that only start-up reaches,
/// even though the hot handlers share generic code with it (tokio's and axum's instantiations,
/// which are told apart by symbol, not by name). The program restarts, naming `main`'s body, and
/// serves the route.
#[test]
fn a_route_added_in_async_main_restarts_the_service() {
    let (project, session, addr) = start_service();
    let pid = get(&addr, "/pid").unwrap();
    project.edit(
        MAIN,
        "        .route(\"/slow\", get(slow))\n",
        "        .route(\"/slow\", get(slow))\n        .route(\"/ping\", get(|| async { \"pong\" }))\n",
    );
    let mut session = session;
    let addr = session.wait_stdout(EDIT_DEADLINE, |out| {
        let addr = out
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("listening on http://"))?;
        (get(addr, "/ping").as_deref() == Ok("pong")).then(|| addr.to_owned())
    });
    assert_ne!(get(&addr, "/pid").unwrap(), pid);
    insta::assert_snapshot!(hotswap_tests::status_messages(&session.stderr(), "Restarting").join("\n"), @"  Restarting [HS0201] axum-service (`main::{closure}` at src/main.rs:137 changed, and no hot function reaches it; state is lost)");
    session.assert_stderr_lacks("     Patched ");
}

/// A plain function (no mark) that a hot `async fn` handler calls: an edit of it is patched in
/// the same process. The handler's body runs in its future's `poll`, which the handler reaches
/// only through the future's vtable (an anonymous constant, not a named symbol).
#[test]
fn a_plain_function_an_async_handler_calls_is_patched() {
    let project = Project::copy("axum-service");
    project.edit(
        MAIN,
        "    \"Hello from the todo service\".to_owned()\n}",
        "    greeting_text()\n}\n\n/// The greeting's words.\nfn greeting_text() -> String {\n    \
         \"Hello from the todo service\".to_owned()\n}",
    );
    let mut session = project.run(&[]);
    let addr = session.wait_listening();
    session.wait_stderr(START_DEADLINE, "    Watching ");
    let pid = get(&addr, "/pid").unwrap();
    wait_answer(&addr, "/greeting", "Hello from the todo service");
    project.edit(MAIN, "\"Hello from the todo service\"", "\"Hello again\"");
    wait_answer(&addr, "/greeting", "Hello again");
    assert_eq!(get(&addr, "/pid").unwrap(), pid);
    session.wait_stderr(EDIT_DEADLINE, "generation 1: greeting_text");
    session.assert_stderr_lacks("Restarting");
}

/// A hot `impl Display for Price` and a hot `impl<'a> Summary<'a>`: edits of both take effect
/// in the same process, and the `Patched` line names them as written.
#[test]
fn trait_impls_and_impls_with_lifetimes_are_patched() {
    let (project, mut session, addr) = start_service();
    let pid = get(&addr, "/pid").unwrap();
    post(&addr, "/todos", r#"{"title":"write docs","cost":250}"#).unwrap();
    assert_eq!(
        get(&addr, "/summary").unwrap(),
        "[ ] 1 write docs ($2.50)\ntotal: $2.50"
    );
    project.edit_all(
        MAIN,
        &[
            ("write!(f, \"${}.{:02}\"", "write!(f, \"EUR {}.{:02}\""),
            ("\"total: {}\"", "\"sum: {}\""),
        ],
    );
    wait_answer(
        &addr,
        "/summary",
        "[ ] 1 write docs (EUR 2.50)\nsum: EUR 2.50",
    );
    assert_eq!(get(&addr, "/pid").unwrap(), pid);
    session.wait_stderr(EDIT_DEADLINE, "     Patched ");
    let patched = hotswap_tests::status_messages(&session.stderr(), "Patched");
    assert!(
        patched[0].ends_with("generation 1: <Price as Display>::fmt, Summary::render"),
        "{patched:?}"
    );
    // The handlers log with `tracing`, whose macros declare statics of their own: no warning
    // names them.
    session.assert_stderr_lacks("     Warning ");
}

/// A tmux server of its own, with one 100x30 window running a shell: a real pseudo-terminal
/// whose screen and title the test reads. Killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(dir: &std::path::Path) -> Tmux {
        let socket =
            format!("hotswap-{}-{}", std::process::id(), dir.display()).replace(['/', '.'], "-");
        let tmux = Tmux { socket };
        tmux.command(&["new-session", "-d", "-s", "t", "-x", "100", "-y", "30"])
            .args(["-c"])
            .arg(dir)
            .args(["bash", "--norc", "--noprofile"])
            .status()
            .expect("tmux runs");
        tmux
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new("tmux");
        command.args(["-L", &self.socket]).args(args);
        command
    }

    /// Types `keys` (tmux key names, such as `Enter` or `C-c`).
    fn keys(&self, keys: &[&str]) {
        let status = self
            .command(&["send-keys", "-t", "t"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The screen's text.
    fn screen(&self) -> String {
        let output = self
            .command(&["capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The window's title, as the program in it last set it.
    fn title(&self) -> String {
        let output = self
            .command(&["display-message", "-p", "-t", "t", "#{pane_title}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Waits until `find` finds something on the screen; returns it.
    fn wait<T>(&self, deadline: Duration, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
        let end = Instant::now() + deadline;
        loop {
            let screen = self.screen();
            if let Some(found) = find(&screen) {
                return found;
            }
            assert!(
                Instant::now() < end,
                "the screen never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the screen contains `text`.
    fn wait_text(&self, deadline: Duration, text: &str) {
        self.wait(deadline, &format!("`{text}`"), |screen| {
            screen.contains(text).then_some(())
        });
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command(&["kill-server"]).status();
    }
}

/// The app's pid, from its frame's title `terminal-app (pid N)`.
fn app_pid(screen: &str) -> Option<String> {
    let rest = &screen[screen.find("terminal-app (pid ")? + "terminal-app (pid ".len()..];
    Some(rest[..rest.find(')')?].to_owned())
}

/// The ratatui example in a pseudo-terminal: its first frame appears; an edit of the rendering
/// changes the drawn frame in the same process, and the status line goes to the title, not over
/// the frame; a refused edit restarts it, and the tool puts the terminal back first (the new
/// program saves the terminal's modes as it finds them and restores them when it quits: had
/// the tool not restored them, the shell would be left in raw mode); after Ctrl-C the shell's
/// terminal is sane.
#[test]
fn a_full_screen_terminal_app_draws_is_patched_and_leaves_the_terminal_sane() {
    terminal_app(false);
}

/// The same with the app's `#[hot]` marks removed, under `--redirect`: the signature change is
/// refused as a function that cannot be redirected.
#[test]
fn a_full_screen_terminal_app_without_marks_is_patched_by_redirection() {
    terminal_app(true);
}

/// The terminal app's scenario, with `redirect` under `--redirect` and without marks.
fn terminal_app(redirect: bool) {
    let project = Project::copy("terminal-app");
    if redirect {
        assert!(project.remove_hot_marks() > 0);
    }
    let tmux = Tmux::start(project.path());
    let command = format!(
        "CARGO_TARGET_DIR={} {} hotswap run{}",
        hotswap_tests::fixtures_target_dir().display(),
        hotswap_tests::cargo_hotswap().display(),
        if redirect { " --redirect" } else { "" }
    );
    tmux.keys(&[&command, "Enter"]);
    let pid = tmux.wait(START_DEADLINE, "the first frame", |screen| {
        screen
            .contains("Counter: 0")
            .then(|| app_pid(screen))
            .flatten()
    });
    tmux.wait(START_DEADLINE, "the watching title", |_| {
        tmux.title().contains("Watching").then_some(())
    });
    tmux.keys(&["+"]);
    tmux.wait_text(EDIT_DEADLINE, "Counter: 1");

    project.edit(MAIN, "\"Counter: {}\"", "\"Count: {}\"");
    tmux.wait_text(EDIT_DEADLINE, "Count: 1");
    assert_eq!(app_pid(&tmux.screen()).as_deref(), Some(&*pid));
    tmux.wait(EDIT_DEADLINE, "the patched title", |_| {
        tmux.title().contains("Patched 1 function").then_some(())
    });
    assert!(!tmux.screen().contains("Patched"), "{}", tmux.screen());

    // A refused edit: `on_key` gains a parameter.
    project.edit_all(
        MAIN,
        &[
            (
                "fn on_key(&mut self, key: KeyEvent) -> bool {",
                "fn on_key(&mut self, key: KeyEvent, _step: i64) -> bool {",
            ),
            ("!app.on_key(key)", "!app.on_key(key, 1)"),
        ],
    );
    let restarted = tmux.wait(EDIT_DEADLINE, "a new process", |screen| {
        app_pid(screen).filter(|p| *p != pid && screen.contains("Count: 0"))
    });
    assert_ne!(restarted, pid);
    // Quit the app: the lines kept while it drew are printed, the refusal among them.
    tmux.keys(&["q"]);
    tmux.wait_text(EDIT_DEADLINE, "Exited `terminal-app` (exit status: 0)");
    let screen = tmux.screen();
    let refused = if redirect {
        "Refused [HS0109] `App::on_key`"
    } else {
        "Refused [HS0101]"
    };
    assert!(screen.contains(refused), "{screen}");
    tmux.keys(&["C-c"]);
    tmux.wait_text(EDIT_DEADLINE, "Stopped the session (interrupted)");
    tmux.keys(&[
        "stty -a | grep -o -e '-*icanon' -e '-*echo ' | tr -d ' \\n'; echo ':end'",
        "Enter",
    ]);
    tmux.wait_text(EDIT_DEADLINE, "icanonecho:end");
}
