//! `cargo hotswap run`: one session. Builds the host, runs it, watches the sources, and turns
//! every save into a patch the host confirms, or into a restart that says why.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::Context;
use hotswap::protocol::{self, HostMessage, ToolMessage};

use crate::build::host::{self, BuildOptions, Host, WorkDir};
use crate::build::patch::{self, PatchBuildError};
use crate::check::code::CodeIndex;
use crate::check::{self, HostImage, PatchImage};
use crate::cli::RunArgs;
use crate::errors::{CliError, Success};
use crate::output;
use crate::project::Project;
use crate::watch::scheduler::{MAX_WAIT, QUIET, Scheduler};
use crate::watch::{self, FileKind, Filter};

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
    /// `cargo hotswap patch` asks to rebuild and patch now; the answer goes to the stream.
    Trigger(UnixStream),
    /// Ctrl-C or SIGTERM: stop the program and end the session.
    Interrupt,
}

/// What a rebuild led to, as `cargo hotswap patch` reports it.
#[derive(Debug)]
enum Outcome {
    /// No file changed in a way that matters.
    Nothing,
    /// The status line that was printed (verb first), and whether it is a success.
    Done(bool, String),
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
pub(crate) fn run(args: RunArgs) -> Result<Success, CliError> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Err(anyhow::anyhow!("cargo-hotswap supports Linux on x86_64 only, for now").into());
    }
    let project = Project::load(&args.target)?;
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
    let control_socket = socket_dir.path().join("control.sock");
    let control = UnixListener::bind(&control_socket)
        .with_context(|| format!("cannot listen on `{}`", control_socket.display()))?;
    let _lock = crate::control::lock(&project, &control_socket)?;

    let (events, inbox) = mpsc::channel();
    let (replies, reply_inbox) = mpsc::channel();
    spawn_acceptor(listener, events.clone(), replies);
    spawn_control(control, events.clone());
    let interrupt = events.clone();
    ctrlc::set_handler(move || {
        let _ = interrupt.send(Event::Interrupt);
    })
    .context("cannot install the Ctrl-C handler")?;
    let filter = Filter::new(
        &project.target_dir,
        &project.workspace_root,
        &project.local_package_dirs,
    );

    let mut session = Session {
        project,
        options,
        work,
        session_dir,
        socket,
        program_args: args.args,
        no_restart: args.no_restart,
        no_watch: args.no_watch,
        serving_request: false,
        last_diagnostics: String::new(),
        filter,
        scheduler: Scheduler::new(QUIET, MAX_WAIT),
        baseline: None,
        running: None,
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
    let mut watcher = if args.no_watch {
        None
    } else {
        let watch_events = events.clone();
        Some(watch::watch(
            &session.project.local_package_dirs,
            &session.project.workspace_root,
            args.poll,
            move |batch| {
                let _ = watch_events.send(Event::Files(batch));
            },
        )?)
    };
    session.start(build)?;
    let extra = session.build_baseline();
    match &mut watcher {
        Some(watcher) => {
            watcher.watch_files(&extra);
            let packages = session.project.local_package_dirs.len();
            output::status(
                "Watching",
                format!(
                    "{} ({packages} {})",
                    watcher
                        .recursive
                        .iter()
                        .map(|d| relative(d, &session.project.workspace_root))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if packages == 1 { "package" } else { "packages" }
                ),
            );
        }
        None => output::status(
            "Waiting",
            "for `cargo hotswap patch` (--no-watch)".to_owned(),
        ),
    }
    session.event_loop(&inbox);
    let running = session.running.is_some();
    session.stop();
    if running {
        output::status(
            "Stopped",
            format!("`{}` (interrupted)", session.project.bin),
        );
    } else {
        output::status("Stopped", "the session (interrupted)");
    }
    Ok(Success::Interrupted)
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
    /// `--no-watch`: only `cargo hotswap patch` triggers a patch.
    no_watch: bool,
    /// Whether a `cargo hotswap patch` request is being served: rustc's diagnostics are then
    /// captured for its answer.
    serving_request: bool,
    /// rustc's diagnostics of the last failed patch build, if they were captured.
    last_diagnostics: String,
    /// Which changed paths count.
    filter: Filter,
    /// When to build.
    scheduler: Scheduler,
    /// The code of the version running now, to tell which functions a patch changes.
    baseline: Option<CodeIndex>,
    running: Option<Running>,
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
            let now = Instant::now();
            if let Some(batch) = self.scheduler.ready(now) {
                self.rebuild(batch, false);
                self.scheduler.build_finished();
                continue;
            }
            let wait = self
                .scheduler
                .deadline()
                .map_or(Duration::from_millis(200), |d| {
                    d.saturating_duration_since(now)
                })
                .min(Duration::from_millis(200));
            match inbox.recv_timeout(wait) {
                Ok(Event::Interrupt) => return,
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
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
            Event::Files(Ok(paths)) => {
                let relevant: Vec<PathBuf> = paths
                    .into_iter()
                    .filter(|p| self.filter.classify(p).is_some())
                    .collect();
                self.scheduler.events(Instant::now(), relevant);
            }
            Event::Files(Err(err)) => output::warn("Warning", format!("file watcher: {err}")),
            Event::Trigger(mut stream) => {
                // Every watched file is compared with the snapshot: with `--no-watch` nothing
                // else saw the edits. Even with none, the patch is built: the user asked.
                let mut files = Vec::new();
                self.collect_all(&mut files);
                self.serving_request = true;
                self.last_diagnostics.clear();
                let outcome = self.rebuild(files, true);
                self.serving_request = false;
                // rustc's diagnostics first, each line marked, then the answer.
                for line in self.last_diagnostics.lines() {
                    let _ = writeln!(stream, "| {line}");
                }
                let answer = match outcome {
                    Outcome::Nothing => "ok Unchanged nothing to patch".to_owned(),
                    Outcome::Done(ok, line) => {
                        format!(
                            "{} {}",
                            if ok { "ok" } else { "err" },
                            line.replace('\n', " ")
                        )
                    }
                };
                let _ = writeln!(stream, "{answer}");
            }
            Event::Interrupt => {}
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
                output::event(serde_json::json!({
                    "reason": "host-exited",
                    "status": status.to_string(),
                }));
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
        self.collect_all(&mut files);
        for file in files {
            let hash = content_hash(&file);
            self.snapshot.insert(file, hash);
        }
    }

    /// Every file under the watched directories that the filter counts.
    fn collect_all(&self, files: &mut Vec<PathBuf>) {
        for dir in &self.project.local_package_dirs {
            collect_watched(dir, &self.filter, files);
        }
        collect_watched(&self.project.workspace_root, &self.filter, files);
        files.sort();
        files.dedup();
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
            let Some(kind) = self.filter.classify(&path) else {
                continue;
            };
            // A file that is gone is mid-save (vim and JetBrains rename the old one away
            // first) or deleted along with its `mod` line, which is itself a change.
            if !path.exists() {
                continue;
            }
            let hash = content_hash(&path);
            if self.snapshot.insert(path.clone(), hash) != Some(hash) {
                changed.push((path, kind));
            }
        }
        changed
    }

    /// Reacts to a batch of changed paths: restart, patch, or nothing. With `force` (asked by
    /// `cargo hotswap patch`), builds a patch even if no file changed.
    fn rebuild(&mut self, paths: Vec<PathBuf>, force: bool) -> Outcome {
        let changed = self.changed(paths);
        if changed.is_empty() && !force {
            return Outcome::Nothing;
        }
        if let Some((path, _)) = changed.iter().find(|(_, kind)| *kind == FileKind::Build) {
            let reason = format!(
                "`{}` changed, which the patch cannot carry: the host is rebuilt",
                relative(path, &self.project.workspace_root)
            );
            return self.restart(&reason, None);
        }
        let Some(running) = &self.running else {
            // The host exited: build and start it again, from the current sources (S18).
            return self.restart("the program is not running", None);
        };
        let build = running.build.clone();
        if host::toolchain_stamp(&build.capture) != build.toolchain {
            return self.restart(
                "the Rust toolchain changed since the program was built",
                None,
            );
        }
        let number = self.next_patch + 1;
        let changed_paths: Vec<PathBuf> = changed.iter().map(|(p, _)| p.clone()).collect();
        let files = if changed_paths.is_empty() {
            "no file".to_owned()
        } else {
            changed_files(&changed_paths, &self.project.workspace_root)
        };
        output::status(
            "Patching",
            format!("{} ({files} changed)", self.project.bin),
        );
        output::event(serde_json::json!({
            "reason": "build-started",
            "target": "patch",
            "files": changed_paths,
        }));
        // rustc's output is captured for the JSON event, and on a terminal so that it does not
        // cross the spinner; it is shown right after.
        let capture = output::json() || output::progress_allowed() || self.serving_request;
        let spinner = output::spinner("Compiling", &self.project.crate_name);
        let result = patch::build(&build, &self.work, &self.session_dir, number, capture);
        output::finish(spinner);
        let patch = match result {
            Ok(patch) => {
                output::write_stderr(&patch.messages);
                patch
            }
            Err(PatchBuildError::Compile { diagnostics, .. }) => {
                output::write_stderr(&diagnostics);
                self.last_diagnostics.clone_from(&diagnostics);
                output::event(serde_json::json!({
                    "reason": "build-finished",
                    "target": "patch",
                    "success": false,
                    "diagnostics": diagnostics,
                }));
                // Named as cargo names it: the package.
                let message = format!(
                    "could not compile `{}`; the running program keeps its code until {}",
                    self.project.package,
                    self.next_trigger()
                );
                output::warn("Failed", &message);
                return Outcome::Done(false, format!("Failed {message}"));
            }
            Err(PatchBuildError::Other(err)) => {
                let err = err.context("the patch build failed");
                output::error(&err);
                return Outcome::Done(false, format!("Failed {err:#}"));
            }
        };
        output::event(serde_json::json!({
            "reason": "build-finished",
            "target": "patch",
            "success": true,
            "build_ms": patch.build_time.as_millis(),
        }));
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
            return self.restart(&reason, None);
        }
        let check_started = Instant::now();
        let verdict = PatchImage::read(&patch.path).map(|image| {
            let running = self.running.as_ref().expect("checked above");
            check::check(&running.image, &image)
        });
        let accepted = match verdict {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(refusals)) => {
                let messages: Vec<String> = refusals.iter().map(ToString::to_string).collect();
                output::event(serde_json::json!({
                    "reason": "patch-refused",
                    "refusals": messages
                        .iter()
                        .map(|m| m.replace("\n             ", "\n"))
                        .collect::<Vec<_>>(),
                }));
                for message in &messages {
                    output::warn("Refused", message);
                }
                return self.refused(&messages.join("; "));
            }
            Err(err) => {
                let err = err.context("cannot check the patch");
                output::error(&err);
                return self.refused(&format!("{err:#}"));
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
            return Outcome::Done(
                false,
                "Warning the changed code takes effect only after a restart".to_owned(),
            );
        }
        if changed.as_ref().is_some_and(Vec::is_empty) {
            output::event(serde_json::json!({ "reason": "patch-unchanged" }));
            let message = if changed_paths.is_empty() {
                "no code changed; nothing to patch".to_owned()
            } else {
                format!("no code changed in {files}; nothing to patch")
            };
            output::status("Unchanged", &message);
            return Outcome::Done(true, format!("Unchanged {message}"));
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
        match self.apply(patch, number, accepted.functions, changed, check_time) {
            Ok(line) => {
                self.baseline = code;
                Outcome::Done(true, line)
            }
            Err(line) => Outcome::Done(false, line),
        }
    }

    /// What brings the next patch: a save, or with `--no-watch` a request.
    fn next_trigger(&self) -> &'static str {
        if self.no_watch {
            "the next `cargo hotswap patch`"
        } else {
            "the next save"
        }
    }

    /// After a refused patch: restart, or with `--no-restart` keep the old code.
    fn refused(&mut self, why: &str) -> Outcome {
        if self.no_restart {
            let message = format!(
                "`{}` runs its previous code (--no-restart); {} is checked again",
                self.project.bin,
                self.next_trigger()
            );
            output::warn("Kept", &message);
            Outcome::Done(false, format!("Refused {why}"))
        } else {
            self.restart(
                "the patch was refused",
                Some("pass `--no-restart` to keep the old code running instead"),
            );
            Outcome::Done(false, format!("Refused {why}; the program was restarted"))
        }
    }

    /// Builds a patch from the unchanged sources right after a host starts: its code is the
    /// baseline that later patches are compared with, and it warms rustc's incremental cache.
    /// Returns the crate's source files besides `*.rs` (from dep-info), which are watched too.
    fn build_baseline(&mut self) -> Vec<PathBuf> {
        let Some(running) = &self.running else {
            return Vec::new();
        };
        let build = running.build.clone();
        let (baseline, extra) = match patch::build(&build, &self.work, &self.session_dir, 0, true) {
            Ok(patch) => {
                let extra: Vec<PathBuf> = patch
                    .sources
                    .iter()
                    .filter(|p| p.extension().is_none_or(|e| e != "rs"))
                    .cloned()
                    .collect();
                // A save since the host's build may have reached this build but not the host:
                // then the baseline is not the running code, and the next patch is compared
                // with nothing.
                let current = patch
                    .sources
                    .iter()
                    .all(|path| self.snapshot.get(path) == Some(&content_hash(path)));
                (if current { patch.code } else { None }, extra)
            }
            Err(err) => {
                // A save during this build is the likely cause, and its own patch build is next
                // and reports it; otherwise, say so.
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
                (None, Vec::new())
            }
        };
        self.baseline = baseline;
        for file in &extra {
            self.snapshot
                .entry(file.clone())
                .or_insert_with(|| content_hash(file));
        }
        self.filter.set_extra_sources(extra.clone());
        extra
    }

    /// Sends a built and checked patch to the host and reports what it confirmed. Returns the
    /// status line printed (verb first): `Ok` if the host applied the patch. `changed` are the
    /// changed functions' display names, if known.
    fn apply(
        &mut self,
        patch: patch::Patch,
        number: u64,
        functions: Vec<String>,
        changed: Option<Vec<String>>,
        check_time: Duration,
    ) -> Result<String, String> {
        let refuse = |message: String| {
            output::event(serde_json::json!({ "reason": "patch-failed", "message": message }));
            output::warn("Refused", &message);
            Err(format!("Refused {message}"))
        };
        let Some(running) = &mut self.running else {
            return refuse("the program is not running".to_owned());
        };
        let Some((link_id, stream)) = &mut running.link else {
            return refuse(format!(
                "`{}` is not connected to cargo-hotswap, so the patch cannot be applied",
                self.project.bin
            ));
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
            running.link = None;
            return refuse(format!("cannot send the patch to the program: {err}"));
        }
        let deadline = Instant::now() + APPLY_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = match self.replies.recv_timeout(left) {
                Ok((id, reply)) if id == link_id => reply,
                Ok(_) => continue,
                Err(_) => {
                    return refuse(format!(
                        "`{}` did not answer within {} s; its code may be unchanged",
                        self.project.bin,
                        APPLY_DEADLINE.as_secs()
                    ));
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
                    // Tenths of milliseconds, as the status line shows them.
                    let check = (check_time.as_secs_f64() * 10_000.0).round() / 10.0;
                    let load = (load_micros as f64 / 100.0).round() / 10.0;
                    output::event(serde_json::json!({
                        "reason": "patch-applied",
                        "generation": generation,
                        "functions": names,
                        "build_ms": build,
                        "check_ms": check,
                        "load_ms": load,
                    }));
                    let message = format!(
                        "{} {} in {} ms (build {build}, check {check:.1}, load {load:.1}) \
                         generation {generation}: {}",
                        names.len(),
                        if names.len() == 1 {
                            "function"
                        } else {
                            "functions"
                        },
                        (build as f64 + check + load).round(),
                        names.join(", ")
                    );
                    output::status("Patched", &message);
                    return Ok(format!("Patched {message}"));
                }
                HostMessage::Failed { patch_id, reason } if patch_id == number => {
                    return refuse(format!("the program did not apply the patch: {reason}"));
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
    fn restart(&mut self, reason: &str, hint: Option<&str>) -> Outcome {
        let hint = hint
            .map(|h| format!("\n             {h}"))
            .unwrap_or_default();
        output::event(serde_json::json!({ "reason": "host-restarting", "why": reason }));
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
                let message = "the host build failed; the running program, if any, keeps its code";
                output::warn("Failed", message);
                return Outcome::Done(false, format!("Failed {message}"));
            }
        };
        self.stop();
        if let Err(err) = self.start(build) {
            output::error(&err);
            return Outcome::Done(false, format!("Failed {err:#}"));
        }
        self.build_baseline();
        Outcome::Done(true, format!("Restarted {} ({reason})", self.project.bin))
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
        let image = HostImage::read(&build.exe)?;
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

/// Accepts `cargo hotswap patch` requests on the control socket.
fn spawn_control(listener: UnixListener, events: Sender<Event>) {
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

/// Appends every allow-listed file under `dir` (not descending into the target directory).
fn collect_watched(dir: &Path, filter: &Filter, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            // Not the target directory, `.git` or anything ignored (the filter says so for
            // any file below them).
            if filter.classify(&path.join("x.rs")).is_some() {
                collect_watched(&path, filter, out);
            }
        } else if filter.classify(&path).is_some() {
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
