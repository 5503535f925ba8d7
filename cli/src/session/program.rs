//! The program under the session: starting, stopping and restarting the host, the baseline
//! patch built right after a start, and the sockets the program and `cargo hotswap patch`
//! reach the session through.

use std::collections::HashSet;
use std::io::{BufReader, IsTerminal};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use anyhow::Context;
use hotswap::protocol::{self, HostMessage};

use crate::build::host::{self, Host};
use crate::build::patch;
use crate::check::{CrateId, HostImage, PatchImage, Roots};
use crate::codes::Code;
use crate::control::protocol::{self as control, Request, Verdict};
use crate::event::Event as Report;
use crate::output;

use super::files::{content_hash, relative};
use super::{Event, Running, Session};

/// The files among `sources` (a build's dep-info) that are not `*.rs` files, sorted, once each.
pub(super) fn read_files<'p>(sources: impl Iterator<Item = &'p PathBuf>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = sources
        .filter(|p| p.extension().is_none_or(|e| e != "rs"))
        .cloned()
        .collect();
    files.sort();
    files.dedup();
    files
}

impl Session {
    /// What the gate needs to know of the crates `build` compiled: the bin first, then the local
    /// library crates (not the procedural macros, which the program does not contain), each
    /// with its name and root source.
    pub(super) fn crate_ids<'a>(&'a self, build: &'a Host) -> Vec<CrateId<'a>> {
        crate_ids(&self.project.crate_name, build)
    }

    /// Starts the host executable of `build` with the session's environment.
    pub(super) fn start(&mut self, build: Host) -> anyhow::Result<()> {
        let mut command = Command::new(&build.exe);
        command
            .args(&self.program_args)
            .env(protocol::SOCKET_ENV, &self.socket)
            .env(protocol::BUILD_ID_ENV, &build.build_id)
            .env(protocol::PATCH_DIR_ENV, &self.session_dir)
            .env("CARGO_MANIFEST_DIR", self.project.package_dir())
            .env("CARGO_PKG_NAME", &self.project.package);
        // In a terminal, the program gets it (see `crate::terminal`). Elsewhere its output goes
        // through the tool line by line, so that its lines and the status lines never cross;
        // with JSON events on stdout, its stdout goes to stderr.
        if !crate::terminal::program_gets_terminal(output::json()) {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
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
        // Its own process group, so that stopping it stops what it started too (a server's
        // worker processes, a `sleep` it spawned). Not when the tool reads a terminal: a program
        // outside the terminal's foreground group would be stopped as it reads its input.
        if !std::io::stdin().is_terminal() {
            command.process_group(0);
        }
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
        output::event(&Report::HostStarted { pid: child.id() });
        output::status(
            "Running",
            format!(
                "`{}` (pid {})",
                relative(&build.exe, &self.project.workspace_root),
                child.id()
            ),
        );
        // Optimised code inlines and specialises a function into its callers, where no
        // redirection reaches: such a build keeps hot functions only (said once per session).
        let optimised = build
            .capture
            .option("-C opt-level")
            .is_some_and(|level| level != "0");
        if optimised && self.redirection.take().is_some() {
            let patched = if self.project.has_runtime {
                "only hot functions are patched".to_owned()
            } else {
                format!(
                    "without `{}` it has no hot functions, so every edit restarts it",
                    crate::project::RUNTIME_PACKAGE
                )
            };
            super::report::warning(
                Code::RedirectOff,
                format!(
                    "`--redirect` is off: `{}` is built with optimisations (opt-level {}), which \
                     inline functions where no redirection reaches; {patched}",
                    self.project.bin,
                    build.capture.option("-C opt-level").unwrap_or("?")
                ),
            );
        }
        // The program starts while the gate reads what it holds (the host's debug info, which
        // takes a while for a large program); only patches wait for it.
        // Redirected code may meet any value passed to any function, not only what hot
        // functions and statics reach.
        let roots = if self.redirection.is_some() {
            Roots::EveryFunction
        } else {
            Roots::Hot
        };
        // At a lower priority: the program's start comes first.
        let ids = self.crate_ids(&build);
        let image = match crate::process::in_background(|| HostImage::read(&build.exe, &ids, roots))
        {
            Ok(image) => image,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        self.running = Some(Running {
            child,
            build,
            image,
            started: Instant::now(),
            libs: super::LibState::default(),
            link: None,
            pending: None,
            warned_silent: false,
            connected: false,
            exit_seen: None,
            allocator_state: std::cell::OnceCell::new(),
        });
        Ok(())
    }

    /// Builds patches from the unchanged sources right after a host starts, a fast one and one
    /// with every function compiled (see [`patch::Mode`]; only the latter under entry
    /// redirection, whose patches are all of that kind): their code is the baseline that later
    /// patches are compared with, and they warm rustc's incremental caches. Returns the crate's
    /// source files besides `*.rs` (from dep-info), which are watched too.
    pub(super) fn build_baseline(&mut self) -> Vec<PathBuf> {
        let Some(running) = &self.running else {
            return Vec::new();
        };
        let build = running.build.clone();
        let no_libs = patch::LibPlan::default();
        let mut extra = Vec::new();
        let (mut fast, mut full) = (None, None);
        // Under entry redirection every patch is a full build: a fast baseline would be
        // compiled for nothing (and compete with the first edit for the cores).
        let modes: &[patch::Mode] = if self.redirection.is_some() {
            &[patch::Mode::Full]
        } else {
            &[patch::Mode::Fast, patch::Mode::Full]
        };
        // The last executable's baseline says nothing of this one's code: until this one's is
        // built, every patch links all of the crate's objects.
        for mode in [patch::Mode::Fast, patch::Mode::Full] {
            crate::build::thin::forget_baseline(&mode.objects_dir(&self.work));
        }
        for &mode in modes {
            let first = mode == modes[0];
            let built = patch::build(
                &build,
                &self.work,
                &self.session_dir,
                &no_libs,
                patch::Job {
                    number: 0,
                    mode,
                    capture_output: true,
                    // A baseline is never sent.
                    keep_code: false,
                },
                &mut |_| {},
                &mut || crate::process::Watch::Wait,
            );
            let patch = match built {
                Ok(patch) => patch,
                // Stopped: the session is interrupted.
                Err(patch::PatchBuildError::Superseded) => break,
                Err(err) => {
                    self.baseline_failed(&err);
                    break;
                }
            };
            if first {
                // The library crates' too: `include_str!` in any crate of the program.
                let libraries = build.locals.crates.iter().flat_map(|krate| &krate.sources);
                extra = read_files(patch.sources.iter().chain(libraries));
                if let Some(running) = &mut self.running {
                    running.libs.bin_sources.clone_from(&patch.sources);
                }
            }
            // A save since the host's build may have reached this build but not the host:
            // then the baseline is not the running code, and the next patch is compared
            // with nothing.
            let current = patch
                .sources
                .iter()
                .all(|path| self.snapshot.get(path) == Some(&content_hash(path)));
            if !current {
                break;
            }
            if let Err(err) = crate::build::thin::record_baseline(&mode.objects_dir(&self.work)) {
                // Patches then link every object: bigger, as correct.
                if crate::output::verbose() {
                    crate::output::detail("Baseline", format!("objects not recorded: {err:#}"));
                }
            }
            if first {
                // The hot functions the running code has, for the gate (renamed or removed ones).
                // Read for the types the program holds, as a patch is checked: the gate then
                // keeps the types of each codegen unit, and a patch's check reads only the units
                // its edit compiled again, the first patch's too.
                self.running_hot = self
                    .running
                    .as_ref()
                    .and_then(|r| {
                        let ids = self.crate_ids(&r.build);
                        PatchImage::read(&patch.path, &ids, &r.image.held)
                            .or_else(|_| PatchImage::read(&patch.path, &ids, &HashSet::new()))
                            .ok()
                    })
                    .map(|image| image.records.keys().cloned().collect());
            }
            match mode {
                patch::Mode::Fast => fast = patch.code.into_inner(),
                patch::Mode::Full => full = patch.code.into_inner(),
            }
        }
        // The baselines are read; their patch files are never sent.
        self.discard_patch_files(0);
        if fast.is_none() && full.is_none() {
            self.running_hot = None;
        }
        // The host's own objects: an rlib's, whose calls of generic functions may name other
        // instances than a patch's.
        let host_rlib = || {
            let rlib = crate::build::compile::host_rlib(&build.capture, &self.work.root);
            crate::check::code::CodeIndex::read_rlib(&rlib, &self.project.crate_name).ok()
        };
        // The values of the exported statics: from the code of a baseline built from the
        // running sources (a fast build compiles every exported item too), else (a save while
        // the program started) from the host's own objects.
        self.start_exported = full
            .as_ref()
            .or(fast.as_ref())
            .map(crate::check::code::CodeIndex::exported_values)
            .or_else(|| host_rlib().map(|code| code.exported_values()))
            .unwrap_or_default();
        self.fast_baseline = fast;
        let local = self.local_crates();
        if let Some(redirection) = &mut self.redirection {
            // The code the program runs: the full baseline when it was built from the running
            // sources; else the host's own objects: more functions compare as changed (and
            // are redirected to the same code), never fewer.
            let host_code = full
                .clone()
                .filter(|_| std::env::var_os("HOTSWAP_DEBUG_RLIB").is_none())
                .or_else(host_rlib);
            let pid = self
                .running
                .as_ref()
                .map_or(0, |running| running.child.id());
            *redirection = super::redirect::Redirection::started(host_code, pid, local);
        }
        self.baseline = full;
        self.rebase_texts();
        self.filter.set_extra_sources(Vec::new());
        self.track_read_files(&extra);
        extra
    }

    /// Warns that a baseline could not be built from the unchanged sources, unless a save
    /// since the host's build is the likely cause (its own patch build is next and reports it).
    fn baseline_failed(&self, err: &patch::PatchBuildError) {
        let mut files = Vec::new();
        self.collect_all(&mut files);
        let unchanged = files
            .iter()
            .all(|path| self.snapshot.get(path) == Some(&content_hash(path)));
        if unchanged {
            output::warn(
                "Warning",
                format!("cannot build a first patch from the unchanged sources: {err}"),
            );
        }
    }

    /// Counts `files` (besides `*.rs` files, what the compiler read: `include_str!` and the
    /// like) as sources from now on, with their content as it is now.
    pub(super) fn track_read_files(&mut self, files: &[PathBuf]) {
        for file in files {
            self.snapshot
                .entry(file.clone())
                .or_insert_with(|| content_hash(file));
        }
        self.filter.add_extra_sources(files);
    }

    /// Rebuilds the host and, if that succeeds, replaces the running program with it; `code`
    /// and `reason` say why. `hint` goes on a line of its own.
    pub(super) fn restart(&mut self, code: Code, reason: &str, hint: Option<&str>) -> Verdict {
        let hint = hint
            .map(|h| format!("{}{h}", output::CONTINUATION))
            .unwrap_or_default();
        output::event(&Report::HostRestarting {
            code,
            why: reason.to_owned(),
        });
        output::warn(
            "Restarting",
            code.tag(format_args!(
                "{} ({reason}; state is lost){hint}",
                self.project.bin
            )),
        );
        self.snapshot_sources();
        let build = host::build(&self.project, &self.options, &self.work, None);
        self.refresh_lockfiles();
        let build = match build {
            Ok(build) => build,
            Err(err) => {
                output::error(&err);
                self.pending_restart = Some((code, reason.to_owned()));
                output::warn(
                    "Failed",
                    "the host build failed, so nothing restarted: the running program, if any, \
                     keeps its code and its state",
                );
                return Verdict::BuildFailed;
            }
        };
        self.pending_restart = None;
        self.stop();
        if let Err(err) = self.start(build) {
            output::error(&err);
            return Verdict::Failed;
        }
        self.build_baseline();
        Verdict::Restarted
    }

    /// Stops the running host, if any, with what it started in its process group: SIGTERM,
    /// then SIGKILL after a grace period.
    pub(super) fn stop(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let group = !std::io::stdin().is_terminal();
        // A reaped child's pid may be reused: it is signalled only while unreaped; its group
        // while members of the group may live.
        let exited = |child: &mut std::process::Child| matches!(child.try_wait(), Ok(Some(_)));
        if group || !exited(&mut running.child) {
            signal(&running.child, libc::SIGTERM, group);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && !exited(&mut running.child) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // What is left of the group (the program, or children that ignored SIGTERM).
        if group || !exited(&mut running.child) {
            signal(&running.child, libc::SIGKILL, group);
        }
        let _ = running.child.wait();
        // A full-screen program stopped from outside cannot put the terminal back itself.
        crate::terminal::restore();
    }
}

/// Sends `signal` to `child`, or with `group` to its whole process group (whose id is its pid).
fn signal(child: &std::process::Child, signal: i32, group: bool) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    // SAFETY: `kill` has no memory-safety preconditions. The pid is our own child's (the caller
    // signals the child only while it is unreaped), and its group's id: the kernel does not
    // reuse it while the child is unreaped or any member of the group lives.
    unsafe { libc::kill(if group { -pid } else { pid }, signal) };
}

/// Accepts agent connections of this user's processes (checked with `SO_PEERCRED`); each gets a
/// reader thread that forwards its messages. Lines are bounded; a malformed one is reported and
/// skipped.
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
                let Ok((pid, uid)) = protocol::peer(&stream) else {
                    continue;
                };
                if uid != protocol::own_uid() {
                    output::warn(
                        "Warning",
                        format!("refused a connection to the agent socket from user {uid}"),
                    );
                    continue;
                }
                let Ok(reader) = stream.try_clone() else {
                    continue;
                };
                if events.send(Event::Connected(id, stream, pid)).is_err() {
                    return;
                }
                let events = events.clone();
                let replies = replies.clone();
                std::thread::spawn(move || {
                    read_agent(id, reader, &events, &replies);
                    let _ = events.send(Event::Disconnected(id));
                });
            }
        })
        .expect("cannot spawn the socket acceptor thread");
}

/// Forwards the messages of connection `id` until it closes: hellos as events, the rest as
/// replies.
fn read_agent(
    id: u64,
    stream: std::os::unix::net::UnixStream,
    events: &Sender<Event>,
    replies: &Sender<(u64, HostMessage)>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        match protocol::read_line(&mut reader, &mut line) {
            Ok(true) => {}
            Ok(false) | Err(protocol::LineError::Io(_)) => return,
            Err(err) => {
                output::warn("Warning", format!("from the program: {err}"));
                continue;
            }
        }
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
}

/// Accepts `cargo hotswap patch` requests on the control socket.
pub(super) fn spawn_control(listener: UnixListener, events: Sender<Event>) {
    std::thread::Builder::new()
        .name("hotswap-control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                // Only this user may drive the session (and read the compiler's diagnostics).
                if !protocol::peer(&stream).is_ok_and(|(_, uid)| uid == protocol::own_uid()) {
                    continue;
                }
                // A client that connects and says nothing must not hold up the next one.
                if stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .is_err()
                {
                    continue;
                }
                let Ok(reader) = stream.try_clone() else {
                    continue;
                };
                let request = control::read::<Request>(&mut BufReader::new(reader));
                if let Ok(Some(Request::Patch)) = request
                    && events.send(Event::Trigger(stream)).is_err()
                {
                    return;
                }
            }
        })
        .expect("cannot spawn the control socket thread");
}

/// [`Session::crate_ids`] of a session whose bin crate is `crate_name`.
pub(super) fn crate_ids<'a>(crate_name: &'a str, build: &'a Host) -> Vec<CrateId<'a>> {
    let bin = CrateId {
        name: crate_name,
        source: build.capture.source().unwrap_or("src/main.rs"),
    };
    let libs = build.locals.crates.iter().filter_map(|krate| {
        (!krate.capture.is_proc_macro()).then_some(CrateId {
            name: krate.name(),
            source: krate.capture.source()?,
        })
    });
    std::iter::once(bin).chain(libs).collect()
}
