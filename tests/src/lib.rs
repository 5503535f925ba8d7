//! Support code for the end-to-end tests: copies of fixture projects in temporary directories,
//! real `cargo hotswap run` sessions with their output collected, edits on disk, and HTTP
//! requests to the running programs.
//!
//! Every fixture project is built into one shared target directory (`target/e2e-fixtures`), so
//! dependencies compile once for the whole suite.

pub mod book;
pub mod walkthrough;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a session may take to build its host and start (dependencies may compile first).
pub const START_DEADLINE: Duration = Duration::from_secs(300);
/// How long the output of an exited `cargo hotswap` may take to be read to its end.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long an edit may take to show its effect.
pub const EDIT_DEADLINE: Duration = Duration::from_secs(120);

/// The cargo-hotswap workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The workspace's target directory.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The `cargo` running the tests.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| "cargo".into())
}

/// The target directory all fixture projects share.
pub fn fixtures_target_dir() -> PathBuf {
    target_dir().join("e2e-fixtures")
}

/// The session directories (where a session publishes its patch files) of `session`, in every
/// project's work directory under [`fixtures_target_dir`]: one, once the session has started.
/// A directory of the same name that an earlier session with the same pid left (in another
/// project's work directory, the target directory being shared) was last written before this
/// session started, and is left out.
pub fn session_dirs(session: &Session) -> Vec<PathBuf> {
    let pattern = fixtures_target_dir().join("hotswap/debug");
    std::fs::read_dir(&pattern)
        .into_iter()
        .flatten()
        .flatten()
        .map(|dir| dir.path().join("sessions").join(session.pid().to_string()))
        .filter(|dir| {
            std::fs::metadata(dir)
                .and_then(|meta| meta.modified())
                .is_ok_and(|written| written >= session.started)
        })
        .collect()
}

/// The `cargo-hotswap` executable, built once per test run (a no-op when it is fresh).
pub fn cargo_hotswap() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let status = Command::new(cargo())
            .args([
                "build",
                "--quiet",
                "-p",
                "cargo-hotswap",
                "--bin",
                "cargo-hotswap",
            ])
            .current_dir(workspace_root())
            .status()
            .expect("cannot run cargo");
        assert!(status.success(), "building cargo-hotswap failed");
        target_dir().join("debug/cargo-hotswap")
    })
}

/// A fixture project copied into a temporary directory.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// Copies `examples/<name>` or `tests/fixtures/<name>` (without `target/`), pointing its
    /// path dependency on the runtime at this workspace's `runtime-shim`.
    pub fn copy(name: &str) -> Project {
        let root = workspace_root();
        let source = [
            root.join("examples").join(name),
            root.join("tests/fixtures").join(name),
        ]
        .into_iter()
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no fixture named `{name}`"));
        let dir = tempfile::Builder::new()
            .prefix(&format!("hotswap-{name}-"))
            .tempdir()
            .expect("cannot create a temporary directory");
        copy_dir(&source, dir.path());
        let runtime = root.join("runtime-shim");
        let unique: String = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .rsplit('-')
            .next()
            .unwrap()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let unique = format!("copy{unique}");
        for manifest in find_manifests(dir.path()) {
            let text = std::fs::read_to_string(&manifest).unwrap();
            let absolute = format!("path = {:?}", runtime.display().to_string());
            // cargo hashes a path package by its path relative to the workspace root, so two
            // copies of one fixture would share (and race for) artifacts in the shared target
            // directory; a pre-release version unique to this copy keeps them apart.
            let text = text
                .replace(
                    "version = \"0.1.0\"",
                    &format!("version = \"0.1.0-{unique}\""),
                )
                .replace("path = \"../../../../runtime-shim\"", &absolute)
                .replace("path = \"../../../runtime-shim\"", &absolute)
                .replace("path = \"../../runtime-shim\"", &absolute);
            std::fs::write(&manifest, text).unwrap();
        }
        Project { dir }
    }

    /// A new, empty temporary directory for a project the test writes itself (with
    /// `cargo new`, say), named `hotswap-<name>-<unique>`.
    pub fn empty(name: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix(&format!("hotswap-{name}-"))
            .tempdir()
            .expect("cannot create a temporary directory");
        Project { dir }
    }

    /// The project's root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the only occurrence of `from` by `to` in the file at `relative`, as an editor
    /// that rewrites the file in place would. Panics if `from` does not occur exactly once.
    pub fn edit(&self, relative: &str, from: &str, to: &str) {
        let path = self.path().join(relative);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` must occur once in `{relative}`"
        );
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// Makes every replacement of `edits` (each `from` must occur exactly once) in the file at
    /// `relative`, then writes it once: one save.
    pub fn edit_all(&self, relative: &str, edits: &[(&str, &str)]) {
        let path = self.path().join(relative);
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (from, to) in edits {
            assert_eq!(
                text.matches(from).count(),
                1,
                "`{from}` must occur once in `{relative}`"
            );
            text = text.replacen(from, to, 1);
        }
        std::fs::write(&path, text).unwrap();
    }

    /// Removes every `#[hot]` mark (`#[hotswap::hot]`, `#[hotswap::hot(rollback)]`, `#[hot]`
    /// on a line of its own) from the project's `.rs` files: the project as a user who never
    /// wrote one has it, for `--redirect`. Returns how many were removed.
    pub fn remove_hot_marks(&self) -> usize {
        const MARKS: [&str; 3] = ["#[hotswap::hot]", "#[hotswap::hot(rollback)]", "#[hot]"];
        let mut removed = 0;
        for file in find_files(self.path(), "rs") {
            let text = std::fs::read_to_string(&file).unwrap();
            let kept: Vec<&str> = text
                .lines()
                .filter(|line| !MARKS.contains(&line.trim()))
                .collect();
            let count = text.lines().count() - kept.len();
            if count > 0 {
                std::fs::write(&file, kept.join("\n") + "\n").unwrap();
                removed += count;
            }
        }
        removed
    }

    /// Starts `cargo hotswap run` on the project with `args` after `run`.
    pub fn run(&self, args: &[&str]) -> Session {
        self.run_command(Command::new(cargo_hotswap()), args)
    }

    /// Starts `cargo hotswap run` like [`Project::run`], with the environment variables `env`
    /// set too.
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &Path)]) -> Session {
        let mut command = Command::new(cargo_hotswap());
        for (key, value) in env {
            command.env(key, value);
        }
        self.run_command(command, args)
    }

    /// Starts `cargo hotswap run` like [`Project::run`], with the file mode creation mask
    /// `umask` (octal, as `sh`'s `umask` takes it).
    pub fn run_under_umask(&self, umask: &str, args: &[&str]) -> Session {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(cargo_hotswap());
        self.run_command(command, args)
    }

    /// Starts `command` (which runs `cargo-hotswap` with the arguments it is given) as
    /// `cargo hotswap run` on the project with `args`.
    fn run_command(&self, mut command: Command, args: &[&str]) -> Session {
        command
            .args(["hotswap", "run", "--manifest-path"])
            .arg(self.path().join("Cargo.toml"))
            .args(args)
            .env("CARGO_TARGET_DIR", fixtures_target_dir())
            .env("PORT", "0")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Session::spawn(command)
    }
}

/// A running `cargo hotswap run`, killed (with its host) when dropped.
pub struct Session {
    child: Child,
    stdout: Collected,
    stderr: Collected,
    /// When the process was started.
    started: std::time::SystemTime,
}

impl Session {
    fn spawn(mut command: Command) -> Session {
        let started = std::time::SystemTime::now();
        let mut child = command.spawn().expect("cannot start cargo-hotswap");
        let stdout = collect(child.stdout.take().unwrap(), "stdout");
        let stderr = collect(child.stderr.take().unwrap(), "stderr");
        Session {
            child,
            stdout,
            stderr,
            started,
        }
    }

    /// The process id of `cargo hotswap run`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGINT to the tool, as Ctrl-C in its terminal does, and returns its exit code once
    /// it has exited (`None` for a signal or after `deadline`).
    pub fn interrupt(&mut self, deadline: Duration) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -INT {} failed", self.pid());
        self.wait_exit(deadline)
    }

    /// Everything the session (the tool and its program) wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Everything the session (the tool and its program) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits until the tool's output pipes closed and were read to their end.
    fn drain(&self) {
        self.stdout.drain(DRAIN_DEADLINE);
        self.stderr.drain(DRAIN_DEADLINE);
    }

    /// Waits until `find` returns `Some` for the session's stdout, or panics after `deadline`.
    pub fn wait_stdout<T>(&mut self, deadline: Duration, find: impl Fn(&str) -> Option<T>) -> T {
        self.wait(deadline, "stdout", |s| find(&s.stdout()))
    }

    /// Waits until the session's stderr contains `text` `count` times, or panics after `deadline`.
    pub fn wait_stderr_count(&mut self, deadline: Duration, text: &str, count: usize) {
        self.wait(deadline, &format!("{count} × `{text}` on stderr"), |s| {
            (s.stderr().matches(text).count() >= count).then_some(())
        })
    }

    /// Asserts that nothing the session wrote to stderr so far contains `text`.
    pub fn assert_stderr_lacks(&self, text: &str) {
        let stderr = self.stderr();
        assert!(!stderr.contains(text), "`{text}` on stderr:\n{stderr}");
    }

    /// Waits until the session's stderr contains `text`, or panics after `deadline`.
    pub fn wait_stderr(&mut self, deadline: Duration, text: &str) {
        self.wait_stderr_count(deadline, text, 1)
    }

    /// Polls `find` until it returns `Some`; panics with the session's output after `deadline`
    /// or if the session exited.
    pub fn wait<T>(
        &mut self,
        deadline: Duration,
        what: &str,
        find: impl Fn(&Session) -> Option<T>,
    ) -> T {
        let end = Instant::now() + deadline;
        loop {
            if let Some(found) = find(self) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain();
                if let Some(found) = find(self) {
                    return found;
                }
                panic!(
                    "cargo-hotswap exited ({status}) while waiting for {what}\n{}",
                    self.dump()
                );
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the tool to exit and returns its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let end = Instant::now() + deadline;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain();
                return status.code();
            }
            assert!(
                Instant::now() < end,
                "cargo-hotswap did not exit\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address the program printed as `listening on http://ADDR`.
    pub fn wait_listening(&mut self) -> String {
        self.wait_stdout(START_DEADLINE, |out| {
            out.lines()
                .rev()
                .find_map(|l| l.strip_prefix("listening on http://"))
                .map(str::to_owned)
        })
    }

    fn dump(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The host dies with the tool (it is started with PR_SET_PDEATHSIG).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every status message with verb `verb` in `stderr` (cargo's layout: the verb right-aligned in
/// 12 columns), with its continuation lines (indented 13 columns), one string each.
pub fn status_messages(stderr: &str, verb: &str) -> Vec<String> {
    let head = format!("{verb:>12} ");
    let mut messages: Vec<String> = Vec::new();
    let mut inside = false;
    for line in stderr.lines() {
        if line.starts_with(&head) {
            messages.push(line.to_owned());
            inside = true;
        } else if inside && line.starts_with(&" ".repeat(13)) {
            let last = messages.last_mut().expect("inside a message");
            last.push('\n');
            last.push_str(line);
        } else {
            inside = false;
        }
    }
    messages
}

/// A pipe being read into a string on a thread.
pub struct Collected {
    text: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Collected {
    /// Everything read so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits until the pipe has closed and every byte was read (the writer exited), at most
    /// `deadline`: a process the writer left behind may hold the pipe open.
    pub fn drain(&self, deadline: Duration) {
        let end = Instant::now() + deadline;
        while !self.reader.is_finished() && Instant::now() < end {
            std::thread::yield_now();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Collects a pipe into a string on a thread, echoing each line to the test's output with
/// `[name]` in front; the string grows as the pipe is read.
pub fn collect(pipe: impl Read + Send + 'static, name: &'static str) -> Collected {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            eprint!("[{name}] {line}");
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    Collected { text, reader }
}

/// `GET path` over a fresh connection to `addr`; the body without its trailing newline.
///
/// # Errors
///
/// Any connection or protocol failure, or a status other than 200, as a message.
pub fn get(addr: &str, path: &str) -> Result<String, String> {
    request(addr, "GET", path, None)
}

/// `POST path` with the JSON `body` over a fresh connection to `addr`; the answer's body
/// without its trailing newline.
///
/// # Errors
///
/// Any connection or protocol failure, or a status other than 2xx, as a message.
pub fn post(addr: &str, path: &str, body: &str) -> Result<String, String> {
    request(addr, "POST", path, Some(body))
}

/// One HTTP/1.1 request with `connection: close`; the answer's body if its status is 2xx.
fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let body_headers = body.map_or_else(String::new, |body| {
        format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        )
    });
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n{body_headers}\r\n{}",
        body.unwrap_or("")
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("malformed response {response:?}"))?;
    if !head.starts_with("HTTP/1.1 2") {
        return Err(format!("status {head:?}"));
    }
    Ok(body.trim_end_matches('\n').to_owned())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn find_manifests(dir: &Path) -> Vec<PathBuf> {
    find_paths(dir, &|path| {
        path.file_name().is_some_and(|n| n == "Cargo.toml")
    })
}

/// Every file under `dir` whose extension is `extension`.
fn find_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    find_paths(dir, &|path| {
        path.extension().is_some_and(|e| e == extension)
    })
}

/// Every file under `dir` that `wanted` accepts.
fn find_paths(dir: &Path, wanted: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(find_paths(&path, wanted));
        } else if wanted(&path) {
            out.push(path);
        }
    }
    out
}

/// Continuous `GET` requests from a few client threads, each on a fresh connection, until
/// [`Load::stop`].
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<std::thread::JoinHandle<()>>,
    answers: std::sync::mpsc::Receiver<Result<String, String>>,
}

impl Load {
    /// Starts `clients` threads requesting `GET path` from `addr` in a loop.
    pub fn start(addr: &str, path: &str, clients: usize) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sender, answers) = std::sync::mpsc::channel();
        let clients = (0..clients)
            .map(|_| {
                let (stop, addr, path) = (stop.clone(), addr.to_owned(), path.to_owned());
                let sender = sender.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if sender.send(get(&addr, &path)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            clients,
            answers,
        }
    }

    /// Stops the clients; every answer they got, in order of arrival.
    pub fn stop(self) -> Vec<Result<String, String>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for client in self.clients {
            client.join().expect("a client thread panicked");
        }
        self.answers.try_iter().collect()
    }
}
