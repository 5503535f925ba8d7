//! Trusting no one on the machine: the session's lock lives in a directory only the user can
//! use, opened without following symlinks; only the program the session started is sent
//! patches; the program's children never see the tool's variables and are stopped with it; a
//! change that needed a rebuild is not forgotten when that rebuild fails.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, status_messages};

use crate::{tick_field, wait_tick, wait_tick_of_new_process};

/// The path of the agent's socket in the environment `pid` was started with.
fn agent_socket(pid: &str) -> PathBuf {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(b"HOTSWAP_AGENT_SOCKET="))
        .map(|path| PathBuf::from(String::from_utf8_lossy(path).into_owned()))
        .expect("the program was started with the agent's socket in its environment")
}

/// A runtime directory for one test's session locks, as `XDG_RUNTIME_DIR`.
fn runtime_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// A session directory that another user could use (mode 0755, or another owner when the tests
/// run as root) is refused before anything is written there.
#[test]
fn a_lock_directory_that_is_not_private_is_refused() {
    let project = Project::copy("gate");
    let runtime = runtime_dir();
    let dir = runtime.path().join("cargo-hotswap");
    std::fs::DirBuilder::new().mode(0o755).create(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut session = project.run_with_env(&[], &[("XDG_RUNTIME_DIR", runtime.path())]);
    assert_eq!(session.wait_exit(START_DEADLINE), Some(1));
    let stderr = session.stderr();
    assert!(
        stderr.contains("is not a private directory of yours") && stderr.contains("mode 755"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing written"
    );
    // The tests' user, as the owner of a file they made.
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(runtime.path()).unwrap());
    if uid == 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let mut session = project.run_with_env(&[], &[("XDG_RUNTIME_DIR", runtime.path())]);
        assert_eq!(session.wait_exit(START_DEADLINE), Some(1));
        assert!(
            session.stderr().contains("(owner 65534,"),
            "{}",
            session.stderr()
        );
    } else {
        eprintln!("not root: the case of a directory owned by another user is not tried");
    }
}

/// A lock file replaced by a symlink to another file is refused; the file it points to is not
/// touched.
#[test]
fn a_symlinked_lock_file_is_refused_and_its_target_is_untouched() {
    let project = Project::copy("gate");
    let runtime = runtime_dir();
    let env = [("XDG_RUNTIME_DIR", runtime.path())];
    let mut first = project.run_with_env(&[], &env);
    wait_tick(&mut first, START_DEADLINE, &["beta-one"]);
    drop(first);
    let locks: Vec<PathBuf> = std::fs::read_dir(runtime.path().join("cargo-hotswap"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lock"))
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    let victim = runtime.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::remove_file(&locks[0]).unwrap();
    std::os::unix::fs::symlink(&victim, &locks[0]).unwrap();
    let mut second = project.run_with_env(&[], &env);
    assert_eq!(second.wait_exit(START_DEADLINE), Some(1));
    assert!(
        second.stderr().contains("error: cannot open `"),
        "{}",
        second.stderr()
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

/// Another process of the same user that connects to the agent's socket and says hello is
/// ignored: the patch goes to the program the session started, and the tool reports that
/// program's answer.
#[test]
fn another_process_on_the_agent_socket_is_never_sent_a_patch() {
    let (project, mut session, first) = crate::start_gate(&[]);
    let socket = agent_socket(tick_field(&first, "pid"));
    let mut intruder = UnixStream::connect(&socket).unwrap();
    intruder.write_all(b"hello\t1\tforged\n").unwrap();
    session.wait_stderr(
        EDIT_DEADLINE,
        "connected to the agent socket, but the program is",
    );
    crate::patch_beta(&project, &mut session, &first);
    session.wait_stderr(EDIT_DEADLINE, "generation 1: beta");
    intruder
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut received = Vec::new();
    let _ = intruder.read_to_end(&mut received);
    assert!(
        received.is_empty(),
        "the intruder received {:?}",
        String::from_utf8_lossy(&received)
    );
}

/// The processes whose command line is `sleep 1037`, the spawner fixture's child.
fn sleepers() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| cmdline == b"sleep\x001037\x00")
        .count()
}

/// The number of fixture children once it equals `expected`, or after a deadline, whatever it
/// is then.
fn sleepers_once_settled(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + EDIT_DEADLINE;
    loop {
        let count = sleepers();
        if count == expected || std::time::Instant::now() >= deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port no one listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A program that starts a long-lived child and listens on a port: its child never sees the
/// tool's variables; after five restarts in a row, no child of an old program is left and each
/// new program binds the port.
#[test]
fn the_programs_children_stop_with_it_and_never_see_the_tools_variables() {
    // Children of the fixture that earlier runs of this test left (a killed test kills the tool
    // with SIGKILL, which nothing can follow up on) do not count.
    let _ = std::process::Command::new("pkill")
        .args(["-f", "^sleep 1037$"])
        .status();
    let project = Project::copy("spawner");
    let port = free_port();
    std::fs::write(project.path().join("port.txt"), port.to_string()).unwrap();
    let mut session = project.run(&[]);
    let mut last = wait_tick(&mut session, START_DEADLINE, &["word-one"]);
    assert_eq!(tick_field(&last, "port"), port.to_string());
    session.wait_stdout(START_DEADLINE, |out| {
        out.contains("child-env=none").then_some(())
    });
    assert!(
        !session.stdout().contains("child-env=/"),
        "{}",
        session.stdout()
    );
    let mut pids = vec![tick_field(&last, "pid").to_owned()];
    for restart in 1..=5 {
        project.edit(
            "Cargo.toml",
            "[workspace]\n",
            &format!("[workspace]\n# restart {restart}\n"),
        );
        // The last tick, once it comes from a process not seen before.
        last = session.wait_stdout(EDIT_DEADLINE, |out| {
            out.lines()
                .rev()
                .find(|line| line.starts_with("tick "))
                .filter(|line| !pids.iter().any(|pid| pid == tick_field(line, "pid")))
                .map(str::to_owned)
        });
        assert_eq!(tick_field(&last, "port"), port.to_string());
        pids.push(tick_field(&last, "pid").to_owned());
    }
    assert_eq!(
        status_messages(&session.stderr(), "Restarting").len(),
        5,
        "{}",
        session.stderr()
    );
    // The newest child may still be `sh` about to `exec sleep`: wait until the count settles.
    // Leaked children of the old programs would keep it above 1.
    assert_eq!(
        sleepers_once_settled(1),
        1,
        "only the running program's child is left"
    );
    // Ctrl-C ends the session, and the program's group with it.
    assert_eq!(session.interrupt(EDIT_DEADLINE), Some(130));
    assert_eq!(
        sleepers_once_settled(0),
        0,
        "the child stops with the session"
    );
}

/// A broken manifest fails the rebuild; the next `.rs` save is not patched against the old
/// build but retries the rebuild; once the manifest builds, the program restarts with it.
#[test]
fn a_rebuild_that_failed_stays_pending_until_it_succeeds() {
    let (project, mut session, first) = crate::start_gate(&[]);
    project.edit("Cargo.toml", "[dependencies]\n", "[dependencies\n");
    session.wait_stderr_count(EDIT_DEADLINE, "      Failed the host build failed", 1);
    project.edit("src/main.rs", "\"beta-one\"", "\"beta-two\"");
    session.wait_stderr_count(EDIT_DEADLINE, "      Failed the host build failed", 2);
    session.assert_stderr_lacks("Patched");
    project.edit("Cargo.toml", "[dependencies\n", "[dependencies]\n# fixed\n");
    wait_tick_of_new_process(&mut session, EDIT_DEADLINE, &first, &["beta-two", "gen=0"]);
    assert_eq!(
        status_messages(&session.stderr(), "Restarting").len(),
        3,
        "{}",
        session.stderr()
    );
}

/// The value of `name` in the environment `pid` was started with.
fn started_env(pid: &str, name: &str) -> String {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let prefix = format!("{name}=");
    environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_else(|| panic!("no `{name}` in the environment of {pid}"))
}

/// A 100 MiB line and a line that is not UTF-8 sent to the agent: the program keeps running,
/// and the next messages are read: a patch whose bytes are not those the tool checked is
/// refused, the patch itself is applied. Here the test is the tool: it starts a host that
/// a session built, with its own socket, and sends it a patch that session built.
#[test]
fn a_huge_or_malformed_line_to_the_agent_is_dropped_and_the_next_patch_applies() {
    let (project, mut session, first) = crate::start_gate(&[]);
    project.edit("src/main.rs", "\"beta-one\"", "\"beta-two\"");
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-two", "gen=1"]);
    let pid = tick_field(&first, "pid");
    let build_id = started_env(pid, "HOTSWAP_BUILD_ID");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let session_dir = PathBuf::from(started_env(pid, "HOTSWAP_PATCH_DIR"));
    let ours = runtime_dir();
    let patch = ours.path().join("patch.so");
    std::fs::copy(session_dir.join("gate-patch-1.so"), &patch).unwrap();
    drop(session);

    let socket = ours.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let mut host = std::process::Command::new(&exe)
        .env("HOTSWAP_AGENT_SOCKET", &socket)
        .env("HOTSWAP_BUILD_ID", &build_id)
        .env("HOTSWAP_PATCH_DIR", ours.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(EDIT_DEADLINE)).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert!(line.starts_with("hello\t"), "{line:?}");
    let mut writer = stream;
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        writer.write_all(&chunk).unwrap();
    }
    writer.write_all(b"\n\xff\xfe\n").unwrap();
    let digest = hotswap::protocol::digest(&std::fs::read(&patch).unwrap());
    let message = |patch_id, digest| hotswap::protocol::ToolMessage::Patch {
        patch_id,
        build_id: build_id.clone(),
        path: patch.clone(),
        digest,
        functions: vec!["gate::beta".to_owned()],
        redirects: Vec::new(),
        binds: Vec::new(),
        changed: vec!["beta".to_owned()],
    };
    // Bytes other than those the tool checked are not loaded.
    writer
        .write_all(message(1, digest ^ 1).encode().as_bytes())
        .unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert!(
        line.starts_with("failed\t1\t") && line.contains("not those cargo-hotswap checked"),
        "{line:?}"
    );
    writer
        .write_all(message(2, digest).encode().as_bytes())
        .unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert!(line.starts_with("applied\t2\t1\t"), "{line:?}");
    assert_eq!(host.try_wait().unwrap(), None, "the program keeps running");
    // Its next ticks print the patched word.
    let mut out = std::io::BufReader::new(host.stdout.take().unwrap());
    let mut tick = String::new();
    let deadline = std::time::Instant::now() + EDIT_DEADLINE;
    while !tick.contains("beta-two") && std::time::Instant::now() < deadline {
        tick.clear();
        std::io::BufRead::read_line(&mut out, &mut tick).unwrap();
    }
    assert!(
        tick.contains("beta-two gen=1") || tick.contains("beta-two"),
        "{tick}"
    );
    let _ = host.kill();
    let _ = host.wait();
}

/// A process of another user reaches neither socket, even where the directory lets it in: the
/// session closes its connections unanswered and says so, and goes on patching. Needs root (to
/// act as another user with `setpriv`); skipped otherwise.
#[test]
fn another_user_on_the_sockets_is_rejected() {
    let (project, mut session, first) = crate::start_gate(&[]);
    let socket = agent_socket(tick_field(&first, "pid"));
    let dir = socket.parent().unwrap().to_path_buf();
    if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&dir).unwrap()) != 0 {
        eprintln!("not root: acting as another user is not possible here; not tried");
        return;
    }
    // Open the directory and the sockets to everyone, as a careless set-up would.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["agent.sock", "control.sock"] {
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    // As user 65534: connect, send a line, print what comes back (nothing: the connection is
    // closed).
    let script = "import socket, sys\n\
                  for path in sys.argv[1:]:\n\
                  \x20   s = socket.socket(socket.AF_UNIX)\n\
                  \x20   s.connect(path)\n\
                  \x20   s.settimeout(5)\n\
                  \x20   try:\n\
                  \x20       s.sendall(b'hello\\t1\\tforged\\n{\"request\":\"patch\"}\\n')\n\
                  \x20       got = s.recv(100)\n\
                  \x20   except OSError:\n\
                  \x20       got = b''\n\
                  \x20   print(path.rsplit('/', 1)[1], repr(got))\n";
    let output = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .arg(&socket)
        .arg(dir.join("control.sock"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout, "agent.sock b''\ncontrol.sock b''\n");
    session.wait_stderr(
        EDIT_DEADLINE,
        "refused a connection to the agent socket from user 65534",
    );
    crate::patch_beta(&project, &mut session, &first);
}
