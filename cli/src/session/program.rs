//! The program under the session: starting and stopping the host, and the sockets it and
//! `cargo hotswap patch` reach the session through.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use anyhow::Context;
use hotswap::protocol::{self, HostMessage};

use crate::build::host::Host;
use crate::check::{CrateId, HostImage};
use crate::output;

use super::files::relative;
use super::{Event, Running, Session};

impl Session {
    /// What the gate needs to know of the crate `build` compiled: its name and root source.
    pub(super) fn crate_id<'a>(&'a self, build: &'a Host) -> CrateId<'a> {
        CrateId {
            name: &self.project.crate_name,
            source: build.capture.source().unwrap_or("src/main.rs"),
        }
    }

    /// Starts the host executable of `build` with the session's environment.
    pub(super) fn start(&mut self, build: Host) -> anyhow::Result<()> {
        let mut command = Command::new(&build.exe);
        command
            .args(&self.program_args)
            .env(protocol::SOCKET_ENV, &self.socket)
            .env(protocol::BUILD_ID_ENV, &build.build_id)
            .env("CARGO_MANIFEST_DIR", self.project.package_dir())
            .env("CARGO_PKG_NAME", &self.project.package);
        // The program's output goes through the tool line by line, so that its lines and the
        // status lines never cross; with JSON events on stdout, its stdout goes to stderr.
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and only calls `prctl`,
        // which is async-signal-safe. It ties the host's life to this process, so that a killed
        // session never leaves an orphaned host behind.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let image = HostImage::read(&build.exe, self.crate_id(&build))?;
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run `{}`", build.exe.display()))?;
        if let Some(stdout) = child.stdout.take() {
            let sink = if output::json() {
                output::Sink::Stderr
            } else {
                output::Sink::Stdout
            };
            output::forward(stdout, sink);
        }
        if let Some(stderr) = child.stderr.take() {
            output::forward(stderr, output::Sink::Stderr);
        }
        output::event(serde_json::json!({ "reason": "host-started", "pid": child.id() }));
        output::status(
            "Running",
            format!(
                "`{}` (pid {})",
                relative(&build.exe, &self.project.workspace_root),
                child.id()
            ),
        );
        self.running = Some(Running {
            child,
            build,
            image,
            started: Instant::now(),
            link: None,
            warned_silent: false,
        });
        Ok(())
    }

    /// Stops the running host, if any: SIGTERM, then SIGKILL after a grace period.
    pub(super) fn stop(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(running.child.id()) {
            // SAFETY: `kill` has no memory-safety preconditions; the pid is our own child, not
            // yet reaped, so it cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = running.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = running.child.kill();
        let _ = running.child.wait();
    }
}

/// Accepts agent connections; each gets a reader thread that forwards its messages.
pub(super) fn spawn_acceptor(
    listener: UnixListener,
    events: Sender<Event>,
    replies: Sender<(u64, HostMessage)>,
) {
    std::thread::Builder::new()
        .name("hotswap-accept".into())
        .spawn(move || {
            for (id, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let id = id as u64;
                let Ok(reader) = stream.try_clone() else {
                    continue;
                };
                if events.send(Event::Connected(id, stream)).is_err() {
                    return;
                }
                let events = events.clone();
                let replies = replies.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(reader).lines() {
                        let Ok(line) = line else { break };
                        match HostMessage::decode(&line) {
                            Ok(HostMessage::Hello { pid, build_id }) => {
                                let _ = events.send(Event::Hello(id, pid, build_id));
                            }
                            Ok(answer) => {
                                let _ = replies.send((id, answer));
                            }
                            Err(err) => output::warn("Warning", format!("from the program: {err}")),
                        }
                    }
                    let _ = events.send(Event::Disconnected(id));
                });
            }
        })
        .expect("cannot spawn the socket acceptor thread");
}

/// Accepts `cargo hotswap patch` requests on the control socket.
pub(super) fn spawn_control(listener: UnixListener, events: Sender<Event>) {
    std::thread::Builder::new()
        .name("hotswap-control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mut request = String::new();
                let Ok(reader) = stream.try_clone() else {
                    continue;
                };
                if BufReader::new(reader).read_line(&mut request).is_ok()
                    && request.trim() == "patch"
                    && events.send(Event::Trigger(stream)).is_err()
                {
                    return;
                }
            }
        })
        .expect("cannot spawn the control socket thread");
}
