//! `cargo hotswap run`: one session. Builds the host, runs it, watches the sources, and turns
//! every save into a patch the host confirms, or into a restart that says why.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::Context;
use hotswap::protocol::{self, HostMessage, ToolMessage};

use crate::build::host::{self, BuildOptions, Host, WorkDir};
use crate::build::patch::{self, PatchBuildError};
use crate::check::code::CodeIndex;
use crate::check::{self, HostImage, PatchImage};
use crate::cli::RunArgs;
use crate::output;
use crate::project::Project;
use crate::watch::{self, FileKind};

/// How long the host may take from start to its agent's hello before the tool says so.
const HELLO_DEADLINE: Duration = Duration::from_secs(10);
/// How long the host may take to answer a patch.
const APPLY_DEADLINE: Duration = Duration::from_secs(30);

/// Something the session reacts to.
enum Event {
    /// A debounced batch of changed paths, or the watcher's error.
    Files(Result<Vec<PathBuf>, String>),
    /// A host connected to the socket.
    Connected(u64, UnixStream),
    /// A host said hello.
    Hello(u64, u32, String),
    /// A host's connection closed.
    Disconnected(u64),
}

/// The host process of the session and its connection.
struct Running {
    child: Child,
    build: Host,
    /// The host's records and exports, for the gate.
    image: HostImage,
    started: Instant,
    /// Connection id and writer, once the agent connected and said hello with our build id.
    link: Option<(u64, UnixStream)>,
    /// Whether the tool already said that the agent did not connect.
    warned_silent: bool,
}

/// Runs a session until interrupted; returns the exit code.
///
/// # Errors
///
/// When the project cannot be read, the first host build fails, or the session cannot set up
/// its directory, socket or watcher.
pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        anyhow::bail!("cargo-hotswap supports Linux on x86_64 only, for now");
    }
    let project = Project::load(&args)?;
    let options = BuildOptions {
        features: args.features.clone(),
        all_features: args.all_features,
        no_default_features: args.no_default_features,
        profile: if args.release {
            Some("release".to_owned())
        } else {
            args.profile.clone()
        },
    };
    let work = WorkDir::new(&project, &options)?;
    let session_dir = work
        .root
        .join("sessions")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&session_dir)
        .with_context(|| format!("cannot create `{}`", session_dir.display()))?;
    // The socket lives in a private temporary directory: socket paths are limited to 108 bytes,
    // and the directory's mode (0700) keeps other users out.
    let socket_dir = tempfile::Builder::new()
        .prefix("cargo-hotswap-")
        .tempdir()
        .context("cannot create the session's socket directory")?;
    let socket = socket_dir.path().join("agent.sock");
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on `{}`", socket.display()))?;

    let (events, inbox) = mpsc::channel();
    let (replies, reply_inbox) = mpsc::channel();
    spawn_acceptor(listener, events.clone(), replies);

    let mut session = Session {
        project,
        options,
        work,
        session_dir,
        socket,
        program_args: args.args,
        no_restart: args.no_restart,
        baseline: None,
        running: None,
        next_connection: 0,
        next_patch: 0,
        snapshot: HashMap::new(),
        replies: reply_inbox,
    };
    // The snapshot precedes the build: a save during the build differs from it, so it is seen.
    session.snapshot_sources();
    let build = host::build(&session.project, &session.options, &session.work);
    session.refresh_lockfiles();
    let build = build?;
    // Watch before the program starts, so that no save is missed while it starts and while the
    // first patch builds: events wait in the channel.
    let watch_events = events.clone();
    let watcher = watch::watch(
        &session.project.local_package_dirs,
        &session.project.workspace_root,
        move |batch| {
            let _ = watch_events.send(Event::Files(batch));
        },
    )?;
    session.start(build)?;
    session.build_baseline();
    output::status(
        "Watching",
        format!(
            "{} ({} {})",
            watcher
                .recursive
                .iter()
                .map(|d| relative(d, &session.project.workspace_root))
                .collect::<Vec<_>>()
                .join(", "),
            session.project.local_package_dirs.len(),
            if session.project.local_package_dirs.len() == 1 {
                "package"
            } else {
                "packages"
            }
        ),
    );
    session.event_loop(&inbox);
    Ok(ExitCode::SUCCESS)
}

/// The state of a session.
struct Session {
    project: Project,
    options: BuildOptions,
    work: WorkDir,
    session_dir: PathBuf,
    socket: PathBuf,
    program_args: Vec<String>,
    /// `--no-restart`: a refused patch keeps the old code running.
    no_restart: bool,
    /// The code of the version running now, to tell which functions a patch changes.
    baseline: Option<CodeIndex>,
    running: Option<Running>,
    next_connection: u64,
    next_patch: u64,
    /// Content hash of every watched file at the last build, to ignore events that change
    /// nothing (touches, swap-file churn, an editor rewriting the same bytes).
    snapshot: HashMap<PathBuf, u64>,
    /// Answers to patches (`applied`/`failed`) from the host's agent.
    replies: Receiver<(u64, HostMessage)>,
}

impl Session {
    /// Processes events until the process is interrupted.
    fn event_loop(&mut self, inbox: &Receiver<Event>) {
        loop {
            let event = match inbox.recv_timeout(Duration::from_millis(200)) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            match event {
                Some(Event::Files(Ok(paths))) => {
                    // Saves that arrived while the previous batch was handled join this one:
                    // exactly one more build, with the latest content.
                    let mut paths = paths;
                    let mut others = Vec::new();
                    while let Ok(event) = inbox.try_recv() {
                        match event {
                            Event::Files(Ok(more)) => paths.extend(more),
                            other => others.push(other),
                        }
                    }
                    for other in others {
                        self.handle(other);
                    }
                    self.files_changed(paths);
                }
                Some(event) => self.handle(event),
                None => {}
            }
            self.check_host();
            self.host_events();
        }
    }

    /// Prints what the host reported on its own since the last look (a rollback, a panic).
    fn host_events(&mut self) {
        while let Ok((_, message)) = self.replies.try_recv() {
            crate::notices::host_event(&message, &self.project.crate_name);
        }
    }

    /// Handles a connection event or a watcher error.
    fn handle(&mut self, event: Event) {
        match event {
            Event::Files(Ok(paths)) => self.files_changed(paths),
            Event::Files(Err(err)) => output::warn("Warning", format!("file watcher: {err}")),
            Event::Connected(id, stream) => {
                // Remembered until hello says which build it is.
                if let Some(running) = &mut self.running
                    && running.link.is_none()
                {
                    running.link = Some((id, stream));
                }
            }
            Event::Hello(id, pid, build_id) => {
                let Some(running) = &mut self.running else {
                    return;
                };
                let ours = running.link.as_ref().is_some_and(|(link, _)| *link == id);
                if ours && build_id != running.build.build_id {
                    output::warn(
                        "Warning",
                        format!(
                            "process {pid} connected with build `{build_id}`, expected `{}`; \
                             ignoring it",
                            running.build.build_id
                        ),
                    );
                    running.link = None;
                } else if ours && running.warned_silent {
                    output::status(
                        "Connected",
                        format!("to `{}` (pid {pid})", self.project.bin),
                    );
                }
            }
            Event::Disconnected(id) => {
                if let Some(running) = &mut self.running
                    && running.link.as_ref().is_some_and(|(link, _)| *link == id)
                {
                    running.link = None;
                }
            }
        }
    }

    /// Notices a host that exited, or one whose agent never connected.
    fn check_host(&mut self) {
        let Some(running) = &mut self.running else {
            return;
        };
        match running.child.try_wait() {
            Ok(Some(status)) => {
                output::warn(
                    "Exited",
                    format!(
                        "`{}` ({status}); it starts again on the next successful build",
                        self.project.bin
                    ),
                );
                self.running = None;
            }
            Ok(None) => {
                if running.link.is_none()
                    && !running.warned_silent
                    && running.started.elapsed() > HELLO_DEADLINE
                {
                    running.warned_silent = true;
                    output::warn(
                        "Warning",
                        format!(
                            "`{}` (pid {}) never connected to cargo-hotswap, so edits cannot be \
                             applied to it\nhelp: the program must link the `hotswap` crate, and \
                             must pass its environment (`{}`) on if it re-executes itself",
                            self.project.bin,
                            running.child.id(),
                            protocol::SOCKET_ENV
                        ),
                    );
                }
            }
            Err(_) => {}
        }
    }

    /// Records the content hash of every watched file, before a build reads them.
    fn snapshot_sources(&mut self) {
        let mut files = Vec::new();
        for dir in &self.project.local_package_dirs {
            collect_watched(dir, &self.project.target_dir, &mut files);
        }
        collect_watched(
            &self.project.workspace_root,
            &self.project.target_dir,
            &mut files,
        );
        for file in files {
            let hash = content_hash(&file);
            self.snapshot.insert(file, hash);
        }
    }

    /// Takes the content of `Cargo.lock` files into the snapshot after a host build: cargo
    /// writes them itself (a new dependency gets locked), which must not trigger another build.
    fn refresh_lockfiles(&mut self) {
        for (path, hash) in &mut self.snapshot {
            if path.file_name().is_some_and(|n| n == "Cargo.lock") {
                *hash = content_hash(path);
            }
        }
    }

    /// The paths among `paths` whose content differs from the snapshot, updating it.
    fn changed(&mut self, paths: Vec<PathBuf>) -> Vec<(PathBuf, FileKind)> {
        let mut changed = Vec::new();
        for path in paths {
            let Some(kind) = watch::classify(&path, &self.project.target_dir) else {
                continue;
            };
            let hash = content_hash(&path);
            if self.snapshot.insert(path.clone(), hash) != Some(hash) {
                changed.push((path, kind));
            }
        }
        changed
    }

    /// Reacts to a batch of file events: restart, patch, or nothing.
    fn files_changed(&mut self, paths: Vec<PathBuf>) {
        let changed = self.changed(paths);
        if changed.is_empty() {
            return;
        }
        if let Some((path, _)) = changed.iter().find(|(_, kind)| *kind == FileKind::Build) {
            let reason = format!(
                "`{}` changed, which the patch cannot carry: the host is rebuilt",
                relative(path, &self.project.workspace_root)
            );
            self.restart(&reason, None);
            return;
        }
        let Some(running) = &self.running else {
            // The host exited: build and start it again, from the current sources (S18).
            self.restart("the program is not running", None);
            return;
        };
        let build = running.build.clone();
        let number = self.next_patch + 1;
        let changed_paths: Vec<PathBuf> = changed.iter().map(|(p, _)| p.clone()).collect();
        output::status(
            "Patching",
            format!(
                "{} ({} changed)",
                self.project.bin,
                changed_files(&changed_paths, &self.project.workspace_root)
            ),
        );
        let patch = match patch::build(&build, &self.work, &self.session_dir, number, false) {
            Ok(patch) => patch,
            Err(PatchBuildError::Compile { crate_name }) => {
                output::warn(
                    "Failed",
                    format!(
                        "could not compile `{crate_name}`; the running program keeps its code \
                         until the next save"
                    ),
                );
                return;
            }
            Err(PatchBuildError::Other(err)) => {
                output::error(&err.context("the patch build failed"));
                return;
            }
        };
        self.next_patch = number;
        let outside: Vec<_> = changed
            .iter()
            .filter(|(path, _)| !patch.sources.contains(path))
            .map(|(path, _)| format!("`{}`", relative(path, &self.project.workspace_root)))
            .collect();
        if !outside.is_empty() {
            let reason = format!(
                "{} {} outside the `{}` bin crate, and only that crate is patched yet",
                outside.join(", "),
                if outside.len() == 1 { "is" } else { "are" },
                self.project.bin
            );
            self.restart(&reason, None);
            return;
        }
        let check_started = Instant::now();
        let verdict = PatchImage::read(&patch.path).map(|image| {
            let running = self.running.as_ref().expect("checked above");
            check::check(&running.image, &image)
        });
        let accepted = match verdict {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(refusals)) => {
                for refusal in refusals {
                    output::warn("Refused", refusal);
                }
                self.refused();
                return;
            }
            Err(err) => {
                output::error(&err.context("cannot check the patch"));
                self.refused();
                return;
            }
        };
        let changed = match (&patch.code, &self.baseline) {
            (Some(new), Some(old)) => Some(new.changed_since(old, &self.project.crate_name)),
            _ => None,
        };
        let (changed, only_restart) =
            crate::notices::live_changes(changed, patch.code.as_ref(), &self.project.crate_name);
        if only_restart {
            self.baseline = patch.code;
            return;
        }
        if changed.as_ref().is_some_and(Vec::is_empty) {
            output::status(
                "Unchanged",
                format!(
                    "no code changed in {}; nothing to patch",
                    changed_files(&changed_paths, &self.project.workspace_root)
                ),
            );
            return;
        }
        if let Some(code) = &patch.code
            && !code.statics.is_empty()
        {
            output::warn(
                "Warning",
                format!(
                    "{} start fresh in the new code: {}",
                    if code.statics.len() == 1 {
                        "this static or thread-local of the crate will"
                    } else {
                        "these statics and thread-locals of the crate will"
                    },
                    code.statics
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        let check_time = check_started.elapsed();
        let code = patch.code.clone();
        if self.apply(patch, number, accepted.functions, changed, check_time) {
            self.baseline = code;
        }
    }

    /// After a refused patch: restart, or with `--no-restart` keep the old code.
    fn refused(&mut self) {
        if self.no_restart {
            output::warn(
                "Kept",
                format!(
                    "`{}` runs its previous code (--no-restart); the next save is checked again",
                    self.project.bin
                ),
            );
        } else {
            self.restart(
                "the patch was refused",
                Some("pass `--no-restart` to keep the old code running instead"),
            );
        }
    }

    /// Builds a patch from the unchanged sources right after a host starts: its code is the
    /// baseline that later patches are compared with, and it warms rustc's incremental cache.
    fn build_baseline(&mut self) {
        let Some(running) = &self.running else { return };
        let build = running.build.clone();
        self.baseline = match patch::build(&build, &self.work, &self.session_dir, 0, true) {
            // A save since the host's build may have reached this build but not the host: then
            // the baseline is not the running code, and the next patch is compared with nothing.
            Ok(patch)
                if patch
                    .sources
                    .iter()
                    .all(|path| self.snapshot.get(path) == Some(&content_hash(path))) =>
            {
                patch.code
            }
            Ok(_) => None,
            Err(err) => {
                output::warn(
                    "Warning",
                    format!("cannot build a first patch from the unchanged sources: {err}"),
                );
                None
            }
        };
    }

    /// Sends a built and checked patch to the host and reports what it confirmed; returns
    /// whether the host applied it. `changed` are the changed functions' display names, if known.
    fn apply(
        &mut self,
        patch: patch::Patch,
        number: u64,
        functions: Vec<String>,
        changed: Option<Vec<String>>,
        check_time: Duration,
    ) -> bool {
        let Some(running) = &mut self.running else {
            return false;
        };
        let Some((link_id, stream)) = &mut running.link else {
            output::warn(
                "Refused",
                format!(
                    "`{}` is not connected to cargo-hotswap, so the patch cannot be applied",
                    self.project.bin
                ),
            );
            return false;
        };
        let link_id = *link_id;
        let message = ToolMessage::Patch {
            patch_id: number,
            build_id: running.build.build_id.clone(),
            path: patch.path.clone(),
            changed: changed.clone().unwrap_or_else(|| {
                functions
                    .iter()
                    .map(|f| short_name(f, &self.project.crate_name))
                    .collect()
            }),
            functions,
        };
        if let Err(err) = stream.write_all(message.encode().as_bytes()) {
            output::warn(
                "Refused",
                format!("cannot send the patch to the program: {err}"),
            );
            running.link = None;
            return false;
        }
        let deadline = Instant::now() + APPLY_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = match self.replies.recv_timeout(left) {
                Ok((id, reply)) if id == link_id => reply,
                Ok(_) => continue,
                Err(_) => {
                    output::warn(
                        "Refused",
                        format!(
                            "`{}` did not answer within {} s; its code may be unchanged",
                            self.project.bin,
                            APPLY_DEADLINE.as_secs()
                        ),
                    );
                    return false;
                }
            };
            match reply {
                HostMessage::Applied {
                    patch_id,
                    generation,
                    load_micros,
                    functions,
                } if patch_id == number => {
                    let names: Vec<String> = changed.unwrap_or_else(|| {
                        functions
                            .iter()
                            .map(|f| short_name(f, &self.project.crate_name))
                            .collect()
                    });
                    let build = patch.build_time.as_millis();
                    let check = check_time.as_millis();
                    let load = load_micros as f64 / 1000.0;
                    output::status(
                        "Patched",
                        format!(
                            "{} {} in {} ms (build {build}, check {check}, load {load:.1}) \
                             generation {generation}: {}",
                            names.len(),
                            if names.len() == 1 {
                                "function"
                            } else {
                                "functions"
                            },
                            build + check + u128::from(load_micros / 1000),
                            names.join(", ")
                        ),
                    );
                    return true;
                }
                HostMessage::Failed { patch_id, reason } if patch_id == number => {
                    output::warn(
                        "Refused",
                        format!("the program did not apply the patch: {reason}"),
                    );
                    return false;
                }
                other => {
                    crate::notices::host_event(&other, &self.project.crate_name);
                    continue;
                }
            }
        }
    }

    /// Rebuilds the host and, if that succeeds, replaces the running program with it. `hint`
    /// goes on a line of its own.
    fn restart(&mut self, reason: &str, hint: Option<&str>) {
        let hint = hint
            .map(|h| format!("\n             {h}"))
            .unwrap_or_default();
        output::warn(
            "Restarting",
            format!("{} ({reason}; state is lost){hint}", self.project.bin),
        );
        self.snapshot_sources();
        let build = host::build(&self.project, &self.options, &self.work);
        self.refresh_lockfiles();
        let build = match build {
            Ok(build) => build,
            Err(err) => {
                output::error(&err);
                output::warn(
                    "Failed",
                    "the host build failed; the running program, if any, keeps its code",
                );
                return;
            }
        };
        self.stop();
        if let Err(err) = self.start(build) {
            output::error(&err);
            return;
        }
        self.build_baseline();
    }

    /// Starts the host executable of `build` with the session's environment.
    fn start(&mut self, build: Host) -> anyhow::Result<()> {
        let mut command = Command::new(&build.exe);
        command
            .args(&self.program_args)
            .env(protocol::SOCKET_ENV, &self.socket)
            .env(protocol::BUILD_ID_ENV, &build.build_id)
            .env("CARGO_MANIFEST_DIR", self.project.package_dir())
            .env("CARGO_PKG_NAME", &self.project.package);
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
        let image = HostImage::read(&build.exe)?;
        let child = command
            .spawn()
            .with_context(|| format!("cannot run `{}`", build.exe.display()))?;
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
        self.next_connection += 1;
        Ok(())
    }

    /// Stops the running host, if any: SIGTERM, then SIGKILL after a grace period.
    fn stop(&mut self) {
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
fn spawn_acceptor(
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

/// Appends every allow-listed file under `dir` (not descending into the target directory).
fn collect_watched(dir: &Path, target_dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.starts_with(target_dir) || entry.file_name() == ".git" {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_watched(&path, target_dir, out);
        } else if watch::classify(&path, target_dir).is_some() {
            out.push(path);
        }
    }
}

/// A hash of the file's content; a missing file hashes as empty.
fn content_hash(path: &Path) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    std::fs::read(path).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

/// The files as a list for messages: `` `src/a.rs`, `src/b.rs` ``.
fn changed_files(paths: &[PathBuf], base: &Path) -> String {
    paths
        .iter()
        .map(|p| format!("`{}`", relative(p, base)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `path` relative to `base` where it is inside it, for messages.
fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A hot function's path without the crate's own name: `render::frame`.
fn short_name(path: &str, crate_name: &str) -> String {
    path.strip_prefix(crate_name)
        .and_then(|rest| rest.strip_prefix("::"))
        .unwrap_or(path)
        .to_owned()
}
