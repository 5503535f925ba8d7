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
