//! Setting a project up as a new user does: `cargo new` and `cargo hotswap run` as it is;
//! `cargo new`, `cargo hotswap init`, one `#[hot]`, `cargo hotswap run`; `init` run twice and on a workspace root; and the runtime as its
//! package will be published, unpacked from `cargo package` and patched once.

use std::path::Path;
use std::process::{Command, Output};

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, cargo, cargo_hotswap, workspace_root};

use crate::{tick_field, wait_tick, wait_tick_of_same_process};

/// A program that prints a tick with a hot function's word every 200 ms.
const MAIN: &str = r#"#[hotswap::hot]
fn word() -> &'static str {
    "word-one"
}

fn main() {
    loop {
        println!("tick pid={} gen={} {}", std::process::id(), hotswap::generation(), word());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
"#;

/// `cargo hotswap <args>` in `dir`.
fn hotswap(dir: &Path, args: &[&str]) -> Output {
    Command::new(cargo_hotswap())
        .arg("hotswap")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", hotswap_tests::fixtures_target_dir())
        .output()
        .unwrap()
}

/// `cargo init --vcs none --name <name>` in `dir` (created if need be), with a version unique
/// to this copy (so that copies in the shared target directory do not race for one artifact).
fn cargo_init(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new(cargo())
        .args(["init", "--vcs", "none", "--quiet", "--name", name])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success());
    let manifest = dir.join("Cargo.toml");
    let unique: String = dir
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "version = \"0.1.0\"",
            &format!("version = \"0.1.0-{unique}\""),
        ),
    )
    .unwrap();
}

/// `cargo new`, `cargo hotswap init --path`, one hot function, `cargo hotswap run`: an edit is
/// patched in the same process. `init` prints the next steps.
#[test]
fn a_new_project_set_up_with_init_is_patched() {
    let project = Project::empty("init");
    cargo_init(project.path(), "fresh");
    let dir = project.path();
    let runtime = workspace_root().join("runtime-shim");
    let output = hotswap(dir, &["init", "--path", runtime.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "      Adding `cargo-hotswap-runtime` (path {}) to the dependencies of `Cargo.toml`\n",
            runtime.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("#[hotswap::hot]") && stderr.contains("cargo hotswap run"));
    std::fs::write(dir.join("src/main.rs"), MAIN).unwrap();
    let mut session = project.run(&[]);
    let first = wait_tick(&mut session, START_DEADLINE, &["word-one"]);
    project.edit("src/main.rs", "\"word-one\"", "\"word-two\"");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["word-two", "gen=1"]);
}

/// A program as `cargo new` makes it and a user writes it, with no dependency added and no
/// attribute written: `cargo hotswap run` says how it patches it, and an edit of a function the
/// loop calls runs in the same process, where the function's thread-local and static counters
/// go on counting (the patch's code uses the running program's); start-up code of `main` moved
/// into a new function restarts it with the new code (only `main` calls that function).
#[test]
fn a_new_project_without_the_runtime_is_patched_as_it_is() {
    let project = Project::empty("plain");
    cargo_init(project.path(), "plain");
    let main = r#"use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

static CALLS: AtomicU64 = AtomicU64::new(0);

fn word() -> String {
    let seen = SEEN.with(|seen| {
        seen.set(seen.get() + 1);
        seen.get()
    });
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    format!("{} tls={seen} calls={calls}", "word-one")
}

fn main() {
    let banner = "banner-one";
    loop {
        println!("tick pid={} {banner} {}", std::process::id(), word());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
"#;
    std::fs::write(project.path().join("src/main.rs"), main).unwrap();
    let mut session = project.run(&[]);
    let first = wait_tick(&mut session, START_DEADLINE, &["word-one"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    assert!(
        session.stderr().contains(
            "        Note `plain` does not depend on `cargo-hotswap-runtime`: every changed \
             function is patched by entry redirection (as with `--redirect`)"
        ),
        "{}",
        session.stderr()
    );
    project.edit("src/main.rs", "\"word-one\"", "\"word-two\"");
    let line = crate::wait_first_tick(&mut session, EDIT_DEADLINE, &["word-two"]);
    let before = crate::tick_before(&session.stdout(), &line);
    assert!(before.contains("word-one"), "{before}");
    for counter in ["tls", "calls"] {
        assert_eq!(
            crate::number(&line, counter),
            crate::number(&before, counter) + 1,
            "{before} then {line}"
        );
    }
    assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
    session.wait_stderr(EDIT_DEADLINE, "generation 1: word");
    session.assert_stderr_lacks("Warning");
    // Start-up code moved into a function of its own: only `main`, which runs once, calls it.
    project.edit_all(
        "src/main.rs",
        &[
            ("let banner = \"banner-one\";", "let banner = banner();"),
            (
                "fn main() {",
                "fn banner() -> &'static str {\n    \"banner-two\"\n}\n\nfn main() {",
            ),
        ],
    );
    crate::wait_tick_of_new_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["banner-two word-two tls=1 "],
    );
    session.wait_stderr(EDIT_DEADLINE, "  Restarting [HS0201]");
    assert_eq!(
        hotswap_tests::status_messages(&session.stderr(), "Restarting"),
        [
            "  Restarting [HS0201] plain (`banner` at src/main.rs:19, `main` at src/main.rs:23 \
          changed, and they are running (`main`) or called only by start-up code (`main` \
          outside any loop, and what only that calls), so no redirection reaches them; state \
          is lost)"
        ]
    );
    session.assert_stderr_lacks("generation 2");
}

/// A function whose signature changed is called by a thread's function in a loop that never
/// ends: that function is redirected with it, but its running call goes on calling the old
/// symbol, so the patch is refused, naming the caller, and the old code keeps running
/// (`--no-restart`).
#[test]
fn a_signature_change_called_from_an_endless_thread_loop_is_refused() {
    let project = Project::empty("endless");
    cargo_init(project.path(), "endless");
    let main = r#"fn step(n: u64) -> u64 {
    n + 1
}

fn worker() {
    let mut n = 0;
    loop {
        n = step(n);
        println!("tick pid={} worker-one n={n}", std::process::id());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn main() {
    std::thread::spawn(worker);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
"#;
    std::fs::write(project.path().join("src/main.rs"), main).unwrap();
    let mut session = project.run(&["--no-restart"]);
    let first = wait_tick(&mut session, START_DEADLINE, &["worker-one"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit_all(
        "src/main.rs",
        &[
            (
                "fn step(n: u64) -> u64 {\n    n + 1",
                "fn step(n: u64, by: u64) -> u64 {\n    n + by",
            ),
            ("n = step(n);", "n = step(n, 10);"),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "        Kept ");
    assert_eq!(
        hotswap_tests::status_messages(&session.stderr(), "Refused"),
        [
            "     Refused [HS0109] `step` at src/main.rs:1 cannot be redirected: the running program \
          has it under another symbol (its signature changed), and `worker` calls it in a loop \
          that never ends, where a running call goes on calling the old one\n             the \
          running program's calls of it would go on running the old code"
        ]
    );
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["worker-one"]);
    assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
    session.assert_stderr_lacks("Patched");
}

/// A field added to the element type of a `thread_local!` (`RefCell<Vec<Entry>>`): refused,
/// naming the thread-local as written (`--no-restart` keeps the program).
#[test]
fn a_layout_change_held_by_a_thread_local_names_it() {
    let project = Project::empty("tlslayout");
    cargo_init(project.path(), "tlslayout");
    let main = r#"use std::cell::RefCell;

struct Entry {
    n: u64,
}

thread_local! {
    static LOG: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

fn record(n: u64) -> usize {
    LOG.with_borrow_mut(|log| {
        log.push(Entry { n });
        log.len()
    })
}

fn main() {
    let mut n = 0;
    loop {
        n += 1;
        println!("tick pid={} entries={}", std::process::id(), record(n));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
"#;
    std::fs::write(project.path().join("src/main.rs"), main).unwrap();
    let mut session = project.run(&["--no-restart"]);
    wait_tick(&mut session, START_DEADLINE, &["entries="]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit_all(
        "src/main.rs",
        &[
            ("    n: u64,\n}", "    n: u64,\n    at: u64,\n}"),
            ("Entry { n }", "Entry { n, at: n }"),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "        Kept ");
    let refused = hotswap_tests::status_messages(&session.stderr(), "Refused");
    assert!(
        refused.iter().any(
            |r| r.starts_with("     Refused [HS0102] `Entry` changed layout")
                && r.contains("the running program holds it: thread-local `LOG`")
        ),
        "{refused:?}"
    );
}

/// `init` on a package that has the runtime: says so, exit 0, the manifest byte for byte as it
/// was. On a workspace root without `-p`: a clear error listing the members, nothing written;
/// with `-p`, that member is set up.
#[test]
fn init_twice_and_on_a_workspace_root() {
    let project = Project::empty("init-twice");
    let dir = project.path().join("app");
    cargo_init(&dir, "app");
    let runtime = workspace_root().join("runtime-shim");
    assert!(
        hotswap(&dir, &["init", "--path", runtime.to_str().unwrap()])
            .status
            .success()
    );
    let manifest = std::fs::read(dir.join("Cargo.toml")).unwrap();
    let output = hotswap(&dir, &["init"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "   Unchanged `Cargo.toml` already depends on `cargo-hotswap-runtime`\n"
    );
    assert_eq!(std::fs::read(dir.join("Cargo.toml")).unwrap(), manifest);

    let root = project.path().join("workspace");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"core\", \"web\"]\n",
    )
    .unwrap();
    cargo_init(&root.join("core"), "core");
    cargo_init(&root.join("web"), "web");
    let output = hotswap(&root, &["init"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.replace(&root.display().to_string(), "[root]");
    assert_eq!(
        stderr,
        "error: `[root]/Cargo.toml` is a workspace: choose the package to set up with `-p`\n\
         help: the members are: core, web\n"
    );
    let output = hotswap(
        &root,
        &["init", "-p", "web", "--path", runtime.to_str().unwrap()],
    );
    assert!(output.status.success());
    let web = std::fs::read_to_string(root.join("web/Cargo.toml")).unwrap();
    assert!(web.contains("cargo-hotswap-runtime = { path = "), "{web}");
    let core = std::fs::read_to_string(root.join("core/Cargo.toml")).unwrap();
    assert!(!core.contains("cargo-hotswap-runtime"), "{core}");
}

/// The runtime as a registry user gets it: `cargo package` of the workspace, the runtime's and
/// the macros' packages unpacked, a new project depending on the unpacked runtime (and the
/// unpacked macros in place of the registry's), patched once in the same process.
#[test]
fn the_packaged_runtime_builds_and_patches() {
    let project = Project::empty("packaged");
    let packages = project.path().join("packages");
    let status = Command::new(cargo())
        .args([
            "package",
            "--workspace",
            "--exclude",
            "hotswap-tests",
            "--exclude",
            "cargo-hotswap",
            "--no-verify",
            "--allow-dirty",
            "--quiet",
            "--target-dir",
        ])
        .arg(&packages)
        .current_dir(workspace_root())
        .status()
        .unwrap();
    assert!(status.success(), "cargo package failed");
    let unpacked = project.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    for name in ["cargo-hotswap-runtime", "cargo-hotswap-macros"] {
        let crate_file = packages
            .join("package")
            .join(format!("{name}-{}.crate", env!("CARGO_PKG_VERSION")));
        // `-m`: the files get the time of unpacking, not the package's. The target directory is
        // shared between runs, and cargo judges a path dependency's freshness by its files'
        // times: packaged times would let a build of an older runtime pass for this one.
        let status = Command::new("tar")
            .arg("-m")
            .arg("-xzf")
            .arg(&crate_file)
            .arg("-C")
            .arg(&unpacked)
            .status()
            .unwrap();
        assert!(status.success(), "cannot unpack `{}`", crate_file.display());
    }
    let version = env!("CARGO_PKG_VERSION");
    let runtime = unpacked.join(format!("cargo-hotswap-runtime-{version}"));
    let macros = unpacked.join(format!("cargo-hotswap-macros-{version}"));
    // What a package contains: sources and its manifest, no tests or fixtures.
    assert!(runtime.join("src/lib.rs").is_file() && !runtime.join("tests").exists());
    cargo_init(project.path(), "fresh");
    let dir = project.path();
    let output = hotswap(dir, &["init", "--path", runtime.to_str().unwrap()]);
    assert!(output.status.success());
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!(
            "{text}\n[patch.crates-io]\ncargo-hotswap-macros = {{ path = {:?} }}\n",
            macros.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), MAIN).unwrap();
    let mut session = project.run(&[]);
    let first = wait_tick(&mut session, START_DEADLINE, &["word-one"]);
    project.edit("src/main.rs", "\"word-one\"", "\"word-two\"");
    let patched =
        wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["word-two", "gen=1"]);
    assert_eq!(tick_field(&patched, "pid"), tick_field(&first, "pid"));
}

/// Cargo's conventions: `CARGO_TERM_COLOR` colours the output as `--color` does (the flag wins);
/// `cargo hotswap` alone prints its help.
#[test]
fn cargo_term_color_and_help_without_a_subcommand() {
    let project = Project::copy("gate");
    let patch = |env: Option<&str>, args: &[&str]| {
        let mut command = Command::new(cargo_hotswap());
        command
            .args(["hotswap", "patch"])
            .args(args)
            .current_dir(project.path())
            .env("CARGO_TARGET_DIR", hotswap_tests::fixtures_target_dir())
            .env_remove("CARGO_TERM_COLOR");
        if let Some(value) = env {
            command.env("CARGO_TERM_COLOR", value);
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(5), "no session runs the program");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(patch(None, &[]).starts_with("error: no `cargo hotswap run` session"));
    assert!(patch(Some("always"), &[]).starts_with("\u{1b}["));
    assert!(patch(Some("always"), &["--color", "never"]).starts_with("error: "));

    let output = Command::new(cargo_hotswap())
        .arg("hotswap")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stderr);
    assert!(help.contains("Usage: cargo hotswap <COMMAND>"), "{help}");
    assert!(
        help.contains("  init   Add the cargo-hotswap runtime"),
        "{help}"
    );
}

/// With `--message-format json`, a reader that goes away (`| head -1`) ends the session as
/// Ctrl-C does: the program is stopped, the tool exits 130, without a panic.
#[test]
fn a_closed_stdout_ends_the_session_quietly() {
    use std::io::BufRead;

    let project = Project::copy("gate");
    let mut child = Command::new(cargo_hotswap())
        .args(["hotswap", "run", "--message-format", "json"])
        .current_dir(project.path())
        .env("CARGO_TARGET_DIR", hotswap_tests::fixtures_target_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = hotswap_tests::collect(child.stderr.take().unwrap(), "stderr");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // Up to the program's start, then the reader goes away.
    while !line.contains("host-started") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "stdout ended early"
        );
    }
    drop(stdout);
    // The next event (the first save's) meets the closed pipe.
    project.edit("src/main.rs", "\"beta-one\"", "\"beta-two\"");
    let deadline = std::time::Instant::now() + EDIT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the session went on");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    stderr.drain(EDIT_DEADLINE);
    let stderr = stderr.text();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("     Stopped `gate` (interrupted)"),
        "{stderr}"
    );
}
