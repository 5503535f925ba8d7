//! The book's tutorial, performed literally: the chapter "Your first hot patch" shows commands,
//! edits and output from files in `book/src/first-patch/`; this test reads those files in the
//! order the chapter includes them, runs the same commands in a copy of the same example (from
//! its directory, with its own target directory, as a reader on a fresh machine would), makes the
//! same edits, and checks that the output the book shows appears (see
//! `hotswap_tests::walkthrough` for how values that vary between runs are matched).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotswap_tests::walkthrough::{
    Edit, Step, included_files, line_matches, missing_lines, parse_console, parse_diff,
    read_book_file, time_matches,
};
use hotswap_tests::{
    Collected, EDIT_DEADLINE, Project, START_DEADLINE, cargo_hotswap, collect, get, workspace_root,
};

#[test]
fn first_patch_chapter_works_as_written() {
    let book_src = workspace_root().join("book/src");
    let chapter = read_book_file(&book_src, "first-patch.md");
    let files = included_files(&chapter, "first-patch/");
    assert!(
        files.iter().any(|f| f.ends_with(".diff")) && files.iter().any(|f| f.ends_with(".console")),
        "the chapter includes no tutorial steps: {files:?}"
    );
    let mut reader = Reader::default();
    for file in &files {
        let text = read_book_file(&book_src, file);
        eprintln!("=== {file}");
        if file.ends_with(".diff") {
            reader.edit(&parse_diff(&text));
        } else if file.ends_with(".console") {
            for step in parse_console(&text) {
                reader.step(step);
            }
        } else {
            panic!("`{file}` is neither a transcript (`.console`) nor an edit (`.diff`)");
        }
    }
    assert!(
        reader
            .terminal
            .as_mut()
            .is_none_or(|t| t.child.try_wait().unwrap().is_some()),
        "the chapter leaves `cargo hotswap run` running"
    );
}

/// The CLI reference shows the help that the tool prints, word for word.
#[test]
fn cli_reference_shows_the_help_the_tool_prints() {
    let book_src = workspace_root().join("book/src");
    for (args, file) in [
        (&["hotswap", "--help"][..], "cli/help.txt"),
        (&["hotswap", "run", "--help"][..], "cli/run-help.txt"),
        (&["hotswap", "patch", "--help"][..], "cli/patch-help.txt"),
        (&["hotswap", "init", "--help"][..], "cli/init-help.txt"),
    ] {
        let output = Command::new(cargo_hotswap()).args(args).output().unwrap();
        assert!(output.status.success(), "`cargo {}` failed", args.join(" "));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            read_book_file(&book_src, file),
            "`cargo {}` prints other help than `book/src/{file}` shows",
            args.join(" ")
        );
    }
}

/// The chapter on hot functions shows listings from `book/listings/hot-functions`: the accepted
/// forms build and run, with and without cargo-hotswap's expansion (the variable
/// `CARGO_HOTSWAP_HOST_BUILD=1`, which `cargo hotswap run` sets for its builds), and each rejected
/// form fails with the errors its `.stderr` file shows.
#[test]
fn hot_function_listings_build_and_rejected_forms_fail_as_shown() {
    let listing = workspace_root().join("book/listings/hot-functions");
    let dir = tempfile::Builder::new()
        .prefix("hotswap-book-listing-")
        .tempdir()
        .unwrap();
    for file in ["Cargo.toml", "Cargo.lock", "src/main.rs"] {
        let text = std::fs::read_to_string(listing.join(file)).unwrap();
        let runtime = workspace_root().join("runtime-shim");
        let text = text.replace(
            "path = \"../../../runtime-shim\"",
            &format!("path = {:?}", runtime.display().to_string()),
        );
        std::fs::create_dir_all(dir.path().join(file).parent().unwrap()).unwrap();
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let cargo_with = |args: &[&str], host_build: &str| {
        Command::new(hotswap_tests::cargo())
            .args(args)
            .current_dir(dir.path())
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .env("CARGO_HOTSWAP_HOST_BUILD", host_build)
            .output()
            .unwrap()
    };
    let cargo = |args: &[&str]| cargo_with(args, "");
    for host_build in ["", "1"] {
        let output = cargo_with(&["run"], host_build);
        assert!(
            output.status.success(),
            "`CARGO_HOTSWAP_HOST_BUILD={host_build} cargo run` of the listing failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut cases: Vec<PathBuf> = std::fs::read_dir(listing.join("rejected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    for case in cases {
        std::fs::copy(&case, dir.path().join("src/main.rs")).unwrap();
        let expected_file = case.with_extension("stderr");
        let expected: Vec<String> = std::fs::read_to_string(&expected_file)
            .unwrap_or_else(|e| panic!("`{}`: {e}", expected_file.display()))
            .lines()
            .map(str::to_owned)
            .collect();
        let output = cargo(&["build"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "`{}` compiled", case.display());
        let missing = missing_lines(&expected, &stderr);
        assert!(
            missing.is_empty(),
            "`{}` does not print these lines of `{}`:\n{}\n--- printed ---\n{stderr}",
            case.display(),
            expected_file.display(),
            missing.join("\n")
        );
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error")).count(),
            expected.iter().filter(|l| l.starts_with("error")).count(),
            "`{}` prints other errors than `{}` shows:\n{stderr}",
            case.display(),
            expected_file.display()
        );
    }
}

/// What the reader has: a copy of the example, a terminal running `cargo hotswap run`.
#[derive(Default)]
struct Reader {
    project: Option<Project>,
    terminal: Option<Terminal>,
    /// Where the program listens (the book says `localhost:3000`).
    addr: Option<String>,
    /// The host's pid, from the `Running` line.
    host_pid: Option<String>,
    /// The pid the book shows in its `Running` line.
    book_pid: Option<String>,
    /// The exit status of the last command that ended.
    status: Option<i32>,
}

impl Reader {
    fn project(&self) -> &Project {
        self.project
            .as_ref()
            .expect("the chapter runs a command before `cd` into an example")
    }

    fn terminal(&mut self) -> &mut Terminal {
        self.terminal
            .as_mut()
            .expect("the chapter expects output before `cargo hotswap run`")
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Command { line, output } => self.command(&line, &output),
            Step::Output(lines) => self.terminal().expect_lines(&lines, EDIT_DEADLINE),
            Step::Interrupt => {
                // The session stays, exited, so that the lines it printed on its way out can
                // be checked.
                let terminal = self.terminal.as_mut().expect("Ctrl-C without a session");
                let status = Command::new("kill")
                    .args(["-INT", &terminal.child.id().to_string()])
                    .status()
                    .expect("cannot run `kill`");
                assert!(status.success());
                self.status = Some(terminal.wait_exit());
            }
        }
    }

    fn command(&mut self, line: &str, output: &[String]) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["cd", dir] => {
                let name = dir
                    .strip_prefix("examples/")
                    .unwrap_or_else(|| panic!("the chapter changes into `{dir}`, not an example"));
                self.project = Some(copy_as_cloned(name));
                assert!(output.is_empty(), "`cd` prints nothing: {output:?}");
            }
            ["cargo", "hotswap", "run"] => {
                let mut terminal = Terminal::start(self.project().path().to_path_buf());
                terminal.expect_lines(output, START_DEADLINE);
                let stdout = terminal.stdout();
                self.addr = stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("listening on http://"))
                    .map(str::to_owned);
                self.host_pid = pid_in(&terminal.stderr());
                self.book_pid = output.iter().find_map(|l| pid_in(l));
                self.terminal = Some(terminal);
            }
            ["curl", url] => {
                let path = url
                    .strip_prefix("localhost:3000")
                    .unwrap_or_else(|| panic!("the chapter asks `{url}`, not the service"));
                let addr = self.addr.as_deref().expect("no program is listening");
                let body = get(addr, path).unwrap_or_else(|err| panic!("`{line}`: {err}"));
                let [expected] = output else {
                    panic!(
                        "`{line}` shows {} lines, the service answers one",
                        output.len()
                    );
                };
                match path {
                    "/time" => assert!(
                        time_matches(expected, &body),
                        "`{line}` answered `{body}`, the book shows `{expected}`"
                    ),
                    "/pid" => {
                        assert_eq!(
                            Some(expected),
                            self.book_pid.as_ref(),
                            "the book's `/pid` answer is not the pid of its `Running` line"
                        );
                        assert_eq!(
                            Some(&body),
                            self.host_pid.as_ref(),
                            "`/pid` is not the pid that `cargo hotswap run` started"
                        );
                    }
                    _ => assert!(
                        line_matches(expected, &body),
                        "`{line}` answered `{body}`, the book shows `{expected}`"
                    ),
                }
            }
            ["echo", "$?"] => {
                let status = self.status.take().expect("no command has ended");
                assert_eq!(output, [status.to_string()], "the exit status");
            }
            _ => panic!("the walkthrough does not know how to perform `{line}`"),
        }
    }

    fn edit(&mut self, edit: &Edit) {
        if let Some(terminal) = &mut self.terminal {
            terminal.mark();
        }
        self.project().edit(&edit.path, &edit.from, &edit.to);
    }
}

/// A copy of `examples/<name>` as the reader has it in a clone of the repository: the manifest
/// unchanged except for the runtime's path (which must be absolute in a copy).
fn copy_as_cloned(name: &str) -> Project {
    let original = workspace_root().join("examples").join(name);
    assert!(original.is_dir(), "no example `{name}`");
    let project = Project::copy(name);
    let manifest = std::fs::read_to_string(original.join("Cargo.toml")).unwrap();
    let runtime = workspace_root().join("runtime-shim");
    let manifest = manifest.replace(
        "path = \"../../runtime-shim\"",
        &format!("path = {:?}", runtime.display().to_string()),
    );
    std::fs::write(project.path().join("Cargo.toml"), manifest).unwrap();
    project
}

/// The number in the first `(pid N)` of `text`.
fn pid_in(text: &str) -> Option<String> {
    let rest = text.split("(pid ").nth(1)?;
    Some(rest.split(')').next()?.to_owned())
}

/// A terminal running `cargo hotswap run` in the project's directory.
struct Terminal {
    child: Child,
    stdout: Collected,
    stderr: Collected,
    /// Lengths of stdout and stderr when the last step started: its output comes after.
    since: (usize, usize),
}

impl Terminal {
    /// Runs `cargo hotswap run` in `dir`, as the book does: no `--manifest-path`, the project's
    /// own target directory. `PORT=0` lets the system pick the port, so that tests can run side
    /// by side; the book's `localhost:3000` is the address the program prints.
    fn start(dir: PathBuf) -> Terminal {
        let mut child = Command::new(cargo_hotswap())
            .args(["hotswap", "run"])
            .current_dir(dir)
            .env("PORT", "0")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start cargo-hotswap");
        let stdout = collect(child.stdout.take().unwrap(), "stdout");
        let stderr = collect(child.stderr.take().unwrap(), "stderr");
        Terminal {
            child,
            stdout,
            stderr,
            since: (0, 0),
        }
    }

    fn stdout(&self) -> String {
        self.stdout.text()
    }

    fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Starts a new step: later expectations look only at output from now on.
    fn mark(&mut self) {
        self.since = (self.stdout().len(), self.stderr().len());
    }

    /// Everything printed since the step started, stdout then stderr.
    fn since_mark(&self) -> String {
        format!(
            "{}\n{}",
            &self.stdout()[self.since.0..],
            &self.stderr()[self.since.1..]
        )
    }

    /// Waits until every line of `expected` appears in the step's output; then starts the next
    /// step.
    fn expect_lines(&mut self, expected: &[String], deadline: Duration) {
        let end = Instant::now() + deadline;
        loop {
            let missing = missing_lines(expected, &self.since_mark());
            if missing.is_empty() {
                self.mark();
                return;
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > end {
                // Everything printed so far is read: to the pipes' end once the tool exited.
                if exited.is_some() {
                    self.stdout.drain(EDIT_DEADLINE);
                    self.stderr.drain(EDIT_DEADLINE);
                }
                let missing = missing_lines(expected, &self.since_mark());
                if missing.is_empty() {
                    self.mark();
                    return;
                }
                panic!(
                    "the book shows lines that {} did not print:\n{}\n--- printed ---\n{}",
                    match exited {
                        Some(status) => format!("`cargo hotswap run` ({status})"),
                        None => format!("`cargo hotswap run` (in {} s)", deadline.as_secs()),
                    },
                    missing.join("\n"),
                    self.since_mark()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for `cargo hotswap run` to exit; its exit code.
    fn wait_exit(&mut self) -> i32 {
        let end = Instant::now() + EDIT_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().expect("exited, not killed by a signal");
            }
            assert!(Instant::now() < end, "`cargo hotswap run` did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // The host dies with the tool (it is started with PR_SET_PDEATHSIG).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
