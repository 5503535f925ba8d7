//! `cargo hotswap run`: one session. Builds the host, runs it, watches the sources, and turns
//! every save into a patch the host confirms, or into a restart that says why.

mod files;
mod link;
mod outcome;
mod pipeline;
mod program;
mod redirect;
mod report;
mod start;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context;
use hotswap::protocol::{self, HostMessage};

use crate::build::crates::LocalCrates;
use crate::build::host::{self, BuildOptions, Host, WorkDir};
use crate::check::HostImage;
use crate::check::code::CodeIndex;
use crate::codes::Code;
use crate::control::protocol::{self as control, Reply, Verdict};
use crate::errors::CliError;
use crate::event::Event as Report;
use crate::output;
use crate::process::Watch;
use crate::project::{Cached, Project, Selection};
use crate::watch::scheduler::{MAX_WAIT, QUIET, SETTLE, Scheduler};
use crate::watch::{self, Filter};

use self::files::relative;
use self::program::{spawn_acceptor, spawn_control};

/// Set by Ctrl-C (SIGINT, SIGTERM, SIGHUP), for waits that do not read the event channel (the
/// wait for the program's answer to a patch).
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long the host may take from start to its agent's hello before the tool says so.
const HELLO_DEADLINE: Duration = Duration::from_secs(10);
/// How long the tool waits, after the program exited, for its connection to close, so that
/// what it sent before it exited (a rollback) is told before its exit.
const LAST_WORDS: Duration = Duration::from_millis(500);
/// How long the host may take to answer a patch.
const APPLY_DEADLINE: Duration = Duration::from_secs(30);

/// Something the session reacts to.
enum Event {
    /// A debounced batch of changed paths, or the watcher's error.
    Files(Result<watch::FileEvent, String>),
    /// A process of this user connected to the agent socket: connection id, stream, its pid.
    Connected(u64, UnixStream, u32),
    /// A host said hello.
    Hello(u64, u32, String),
    /// A host's connection closed.
    Disconnected(u64),
    /// `cargo hotswap patch` asks to rebuild and patch now; the answer goes to the stream.
    Trigger(UnixStream),
    /// Ctrl-C or SIGTERM: stop the program and end the session.
    Interrupt,
}

/// The host process of the session and its connection.
struct Running {
    child: Child,
    build: Host,
    /// The host's records and exports, for the gate.
    image: HostImage,
    started: Instant,
    /// The local library crates whose code patches carry into this program.
    libs: LibState,
    /// Connection id and writer, once the agent connected and said hello with our build id.
    link: Option<(u64, UnixStream)>,
    /// The program's connection before its hello: id and writer.
    pending: Option<(u64, UnixStream)>,
    /// Whether the tool already said that the agent did not connect.
    warned_silent: bool,
    /// Whether the program's agent ever said hello: a program that did is never said to have
    /// not connected.
    connected: bool,
    /// When the tool first saw that the program exited, while its connection was still open:
    /// what the program sent before it exited (a rollback) is told first.
    exit_seen: Option<Instant>,
    /// The statics of the bin crate that are the state of the global allocator it defines
    /// (empty without one), read from the host's rlib once, when a patch first has fresh
    /// statics (see `Session::allocator_state_copied`).
    allocator_state: std::cell::OnceCell<std::collections::BTreeSet<String>>,
}

/// The local library crates of the running program that patches rebuilt, with what the
/// program runs of each.
#[derive(Debug, Default)]
struct LibState {
    /// The stems of the crates that patches built: every later patch carries them too (else
    /// its calls into them would reach the host's old code, or a change the gate refused
    /// would go unchecked).
    carried: std::collections::BTreeSet<String>,
    /// The stems of the crates whose last compile failed, or that a failed patch build was to
    /// compile: the next patch compiles them again, whatever file its save changed.
    unbuilt: std::collections::BTreeSet<String>,
    /// The code the program runs of each crate (by stem): cargo's rlib until a patch rebuilt
    /// it, to tell which functions the next rebuild changes.
    code: HashMap<String, CodeIndex>,
    /// The source files of each crate (by stem) as its last rebuild listed them, which may add
    /// files to cargo's list.
    sources: HashMap<String, Vec<PathBuf>>,
    /// The bin crate's source files, as its last patch build listed them.
    bin_sources: Vec<PathBuf>,
}

impl LibState {
    /// The crates (indexes into `locals`) whose sources include `path`; for a `.rs` file that no
    /// crate was built from (a new module, or one that failed to build), the crates whose root
    /// source file's directory holds it.
    fn owners(&self, locals: &LocalCrates, path: &Path) -> Vec<usize> {
        let built_from: Vec<usize> = (0..locals.crates.len())
            .filter(|at| {
                let krate = &locals.crates[*at];
                self.sources
                    .get(&krate.stem)
                    .unwrap_or(&krate.sources)
                    .iter()
                    .any(|source| source == path)
            })
            .collect();
        let unknown = built_from.is_empty() && !self.bin_sources.iter().any(|s| s == path);
        if !unknown || path.extension().is_none_or(|e| e != "rs") {
            return built_from;
        }
        (0..locals.crates.len())
            .filter(|at| {
                let krate = &locals.crates[*at];
                krate.capture.source().is_some_and(|root| {
                    krate
                        .capture
                        .cwd
                        .join(root)
                        .parent()
                        .is_some_and(|dir| path.starts_with(dir))
                })
            })
            .collect()
    }

    /// The code the program runs of the crate `stem`: its last rebuild's, or cargo's rlib's;
    /// `None` when that cannot be read.
    fn code(&self, locals: &LocalCrates, stem: &str) -> Option<std::borrow::Cow<'_, CodeIndex>> {
        if let Some(code) = self.code.get(stem) {
            return Some(std::borrow::Cow::Borrowed(code));
        }
        let krate = locals.crates.iter().find(|krate| krate.stem == stem)?;
        let code = CodeIndex::read_rlib(&krate.cargo_rlib()?, krate.name()).ok()?;
        Some(std::borrow::Cow::Owned(code))
    }

    /// Takes in the crates of a patch that was built: every later patch carries them, and
    /// their sources are the ones this build read.
    fn built(&mut self, libs: &[crate::build::patch::BuiltLib]) {
        self.unbuilt.clear();
        for lib in libs {
            self.carried.insert(lib.stem.clone());
            if lib.compiled {
                self.sources.insert(lib.stem.clone(), lib.sources.clone());
            }
        }
    }

    /// Takes in the crates of a patch that the program runs now (or, with `--no-restart`, whose
    /// start-up-only changes wait): their code is the running code's from now on.
    fn rebuilt(&mut self, libs: &[crate::build::patch::BuiltLib], locals: &LocalCrates) {
        for lib in libs.iter().filter(|lib| lib.compiled) {
            match &lib.code {
                Some(code) => {
                    let mut code = code.clone();
                    // The values of exported statics stay the program's.
                    if let Some(running) = self.code(locals, &lib.stem) {
                        let values = running.values.clone();
                        code.keep_exported_values(&values);
                    }
                    self.code.insert(lib.stem.clone(), code)
                }
                None => self.code.remove(&lib.stem),
            };
        }
    }
}

/// Removes the directories under `sessions` (each named by the pid of its session) whose
/// session no longer runs: a session killed before it could clean up.
fn remove_stale_sessions(sessions: &Path) {
    let Ok(entries) = std::fs::read_dir(sessions) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A Unix socket listening at `path`, readable and writable by the user only.
fn private_listener(path: &Path) -> anyhow::Result<UnixListener> {
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on `{}`", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make `{}` private", path.display()))?;
    Ok(listener)
}

/// What `cargo hotswap run` was asked for.
#[derive(Debug)]
pub(crate) struct RunOptions {
    /// Which program.
    pub(crate) selection: Selection,
    /// How to build it: features and profile.
    pub(crate) build: BuildOptions,
    /// How saves become patches.
    pub(crate) policy: Policy,
    /// The program's own arguments (after `--`).
    pub(crate) program_args: Vec<String>,
}

/// How a session turns saves into patches.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Policy {
    /// `--no-restart`: a refused patch keeps the old code running, instead of restarting the
    /// program with the new code (and losing its state).
    pub(crate) no_restart: bool,
    /// `--no-watch`: no file watcher; only `cargo hotswap patch` triggers a patch.
    pub(crate) no_watch: bool,
    /// `--poll`: compare the files periodically, where inotify does not work (network file
    /// systems, some containers).
    pub(crate) poll: bool,
    /// `--redirect`: every changed function of the bin crate takes effect, by entry
    /// redirection, not only what hot functions reach.
    pub(crate) redirect: bool,
}

/// Runs a session until it is interrupted, which ends it with [`CliError::Interrupted`].
///
/// # Errors
///
/// When the project cannot be read, the first host build fails, or the session cannot set up
/// its directory, socket or watcher.
pub(crate) fn run(mut args: RunOptions) -> Result<(), CliError> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Err(anyhow::anyhow!("cargo-hotswap supports Linux on x86_64 only, for now").into());
    }
    crate::terminal::save();
    // The sockets live in a private temporary directory: socket paths are limited to 108 bytes,
    // and the directory's mode (0700, whatever the umask) keeps other users out; the sockets
    // themselves are 0600 too.
    let socket_dir = tempfile::Builder::new()
        .prefix("cargo-hotswap-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .context("cannot create the session's socket directory")?;
    let control_socket = socket_dir.path().join("control.sock");
    let control = private_listener(&control_socket)?;
    // A project read by the last session's start from files that are all as they were then
    // is the project: its host build starts at once, before anything else the session sets up.
    // Else the host build of that project starts beside `cargo metadata`.
    let read_at = std::time::SystemTime::now();
    let (unchanged, head_start) = match Project::cached(&args.selection, &args.build) {
        Some(Cached::Unchanged(project)) => {
            let head_start = start::HeadStart::start(project.clone(), &args.build, &control_socket);
            (Some(project), head_start)
        }
        Some(Cached::Maybe(cached)) => (
            None,
            start::HeadStart::start(cached, &args.build, &control_socket),
        ),
        None => (None, None),
    };
    let confirmed = unchanged.is_none();
    let loaded = match unchanged {
        Some(project) => {
            output::detail(
                "Fresh",
                "the project (its manifests and cargo's configuration are as the last session \
                 read them)",
            );
            Ok(project)
        }
        None => Project::load(&args.selection),
    };
    let mut project = match loaded {
        Ok(project) => project,
        Err(err) => {
            if let Some(head_start) = head_start {
                head_start.build.abandon();
            }
            return Err(err.into());
        }
    };
    let head_start = if confirmed {
        head_start.and_then(|head_start| head_start.confirm(&project))
    } else {
        head_start
    };
    if !project.has_runtime {
        // Without the runtime there are no hot functions: every changed function is patched
        // by entry redirection, with the agent the tool builds.
        if !args.policy.redirect {
            output::status(
                "Note",
                format!(
                    "`{}` does not depend on `{}`: every changed function is patched by entry \
                     redirection (as with `--redirect`)",
                    project.package,
                    crate::project::RUNTIME_PACKAGE
                ),
            );
            args.policy.redirect = true;
        }
        project.agent_library = match &head_start {
            Some(head_start) => head_start.agent_library(),
            None => Some(crate::build::agent::library(
                &project.cargo,
                &project.target_dir,
            )?),
        };
    }
    // An unchanged project's record stays as it is.
    if confirmed {
        project.remember(&args.selection, &args.build, read_at);
    }
    let (_lock, snapshot, early) = match head_start {
        Some(start::HeadStart {
            lock,
            snapshot,
            build,
        }) => (lock, Some(snapshot), Some(build)),
        None => (crate::control::lock(&project, &control_socket)?, None, None),
    };
    let (events, inbox) = mpsc::channel();
    spawn_control(control, events.clone());
    let mut session = Session::new(project, &args, socket_dir.path(), &events, inbox)?;
    // The snapshot precedes the build: a save during the build differs from it, so it is seen.
    match snapshot {
        Some(snapshot) => session.use_snapshot(snapshot),
        None => session.snapshot_sources(),
    }
    // The watcher starts beside the host build (adding a directory's watch takes a while), and
    // before the program starts, so that no save after the snapshot is missed: events wait in
    // the channel.
    let watcher = (!args.policy.no_watch).then(|| {
        let watch_events = events.clone();
        let (dirs, root, poll) = (
            session.project.local_package_dirs.clone(),
            session.project.workspace_root.clone(),
            args.policy.poll,
        );
        std::thread::spawn(move || {
            watch::watch(&dirs, &root, poll, move |batch| {
                let _ = watch_events.send(Event::Files(batch));
            })
        })
    });
    let build = host::build(&session.project, &session.options, &session.work, early);
    // Ctrl-C stops the host build (see `host::interrupt_early_build`): an interrupted start,
    // not a failed build.
    if build.is_err() && INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(CliError::Interrupted);
    }
    session.refresh_lockfiles();
    if build.is_err() && !confirmed {
        // The recorded project may be what failed (a change no recorded file shows): the next
        // start reads it again.
        Project::forget(&args.selection, &args.build);
    }
    let build = build?;
    let mut watcher = match watcher.map(std::thread::JoinHandle::join) {
        None => None,
        Some(Ok(watcher)) => Some(watcher?),
        Some(Err(_)) => return Err(anyhow::anyhow!("the file watcher's set-up panicked").into()),
    };
    session.start(build)?;
    let extra = session.build_baseline();
    session.announce(watcher.as_mut(), &extra);
    session.event_loop();
    session.finish();
    Err(CliError::Interrupted)
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
    /// captured, to be printed (and recorded for the request) as one text.
    serving_request: bool,
    /// Which changed paths count.
    filter: Filter,
    /// When to build.
    scheduler: Scheduler,
    /// The code of the version running now, every function compiled (a [`Mode::Full`](crate::build::patch::Mode::Full)
    /// build), to tell which functions a patch changes that no hot function reaches.
    baseline: Option<CodeIndex>,
    /// The code of the version running now that the hot functions reach (fast builds, merged:
    /// a function keeps the hash of the last fast build that compiled it), to tell which of
    /// them a patch changes.
    fast_baseline: Option<CodeIndex>,
    /// The initial values of the bin crate's statics with unmangled names in the code the
    /// program started with ([`CodeIndex::exported_values`]): the executable's copies, which
    /// every patch reads whatever value it holds.
    start_exported: std::collections::BTreeMap<String, u64>,
    /// The gate's reading of the last fast patch, started as soon as the file was in place.
    read_ahead: Option<crate::check::ReadAhead>,
    /// The text of the Rust files the baselines were built from, where it differs from
    /// `texts`: compared item by item, it tells whether a fast patch build is complete.
    base_texts: HashMap<PathBuf, String>,
    /// The files changed since the baselines were built (every batch's), to be compared.
    since_base: std::collections::BTreeSet<PathBuf>,
    /// The hot functions (paths) of the code running now, when known.
    running_hot: Option<std::collections::BTreeSet<String>>,
    running: Option<Running>,
    /// Why the host must be rebuilt, while a rebuild that was due has not succeeded yet: every
    /// later change retries it instead of patching the old build.
    pending_restart: Option<(Code, String)>,
    next_patch: u64,
    /// Content hash of every watched file at the last build, to ignore events that change
    /// nothing (touches, swap-file churn, an editor rewriting the same bytes).
    snapshot: HashMap<PathBuf, u64>,
    /// The text of every Rust file at the last snapshot, to tell an edit of comments or layout
    /// only.
    texts: HashMap<PathBuf, String>,
    /// The statics the `Warning` has named already: each once per session.
    warned_statics: std::collections::BTreeSet<String>,
    /// `--redirect`: the running program's entries, and which a patch redirects.
    redirection: Option<self::redirect::Redirection>,
    /// Answers to patches (`applied`/`failed`) from the host's agent.
    replies: Receiver<(u64, HostMessage)>,
    /// Where file, connection and control events arrive.
    inbox: Receiver<Event>,
    /// Events taken from the inbox while a speculative build watched it for saves, to be
    /// handled before the next ones.
    deferred: std::collections::VecDeque<Event>,
}

impl Session {
    /// A session of `project` with `args`, its work and session directories created, the agent
    /// socket listening in `socket_dir`, and Ctrl-C turned into an event on `events`, which
    /// `inbox` receives.
    ///
    /// # Errors
    ///
    /// When a directory, the socket or the Ctrl-C handler cannot be set up.
    fn new(
        project: Project,
        args: &RunOptions,
        socket_dir: &Path,
        events: &mpsc::Sender<Event>,
        inbox: Receiver<Event>,
    ) -> anyhow::Result<Session> {
        let work = WorkDir::new(&project, &args.build)?;
        let sessions = work.root.join("sessions");
        remove_stale_sessions(&sessions);
        let session_dir = sessions.join(std::process::id().to_string());
        // Private: the program loads patches from here only (it checks the mode).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&session_dir)
            .with_context(|| format!("cannot create `{}`", session_dir.display()))?;
        std::fs::set_permissions(&session_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make `{}` private", session_dir.display()))?;
        let socket = socket_dir.join("agent.sock");
        let listener = private_listener(&socket)?;
        let (replies, reply_inbox) = mpsc::channel();
        spawn_acceptor(listener, events.clone(), replies);
        let interrupt = events.clone();
        ctrlc::set_handler(move || {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
            host::interrupt_early_build();
            crate::process::interrupt_watched();
            let _ = interrupt.send(Event::Interrupt);
        })
        .context("cannot install the Ctrl-C handler")?;
        let filter = Filter::new(
            &project.target_dir,
            &project.workspace_root,
            &project.local_package_dirs,
        );
        Ok(Session {
            project,
            options: args.build.clone(),
            work,
            session_dir,
            socket,
            program_args: args.program_args.clone(),
            no_restart: args.policy.no_restart,
            no_watch: args.policy.no_watch,
            serving_request: false,
            filter,
            scheduler: Scheduler::new(QUIET, SETTLE, MAX_WAIT),
            baseline: None,
            fast_baseline: None,
            start_exported: Default::default(),
            read_ahead: None,
            base_texts: HashMap::new(),
            since_base: std::collections::BTreeSet::new(),
            running_hot: None,
            running: None,
            pending_restart: None,
            next_patch: 0,
            snapshot: HashMap::new(),
            texts: HashMap::new(),
            warned_statics: std::collections::BTreeSet::new(),
            redirection: args
                .policy
                .redirect
                .then(self::redirect::Redirection::default),
            replies: reply_inbox,
            inbox,
            deferred: std::collections::VecDeque::new(),
        })
    }

    /// Says what the session waits for: saves under the watched directories (and `extra`
    /// files), or `cargo hotswap patch`.
    fn announce(&self, watcher: Option<&mut watch::SourceWatcher>, extra: &[PathBuf]) {
        let Some(watcher) = watcher else {
            output::status(
                "Waiting",
                "for `cargo hotswap patch` (--no-watch)".to_owned(),
            );
            return;
        };
        watcher.watch_files(extra);
        let packages = self.project.local_package_dirs.len();
        output::status(
            "Watching",
            format!(
                "{} ({packages} {})",
                watcher
                    .recursive
                    .iter()
                    .map(|d| relative(d, &self.project.workspace_root))
                    .collect::<Vec<_>>()
                    .join(", "),
                if packages == 1 { "package" } else { "packages" }
            ),
        );
    }

    /// Stops the program, saying so, and removes the session's directory (its patches).
    fn finish(&mut self) {
        let running = self.running.is_some();
        self.stop();
        let _ = std::fs::remove_dir_all(&self.session_dir);
        if running {
            output::status("Stopped", format!("`{}` (interrupted)", self.project.bin));
        } else {
            output::status("Stopped", "the session (interrupted)");
        }
    }

    /// Processes events until the process is interrupted.
    fn event_loop(&mut self) {
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
            let event = match self.deferred.pop_front() {
                Some(event) => Ok(event),
                None => self.inbox.recv_timeout(wait),
            };
            match event {
                Ok(Event::Interrupt) => return,
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.host_events();
            self.check_host();
        }
    }

    /// Waits out the settle period of the speculative build running now, if any, taking the
    /// file events that arrive meanwhile (other events wait); returns whether they superseded
    /// it.
    pub(super) fn settle(&mut self) -> bool {
        while let Some(end) = self.scheduler.settles() {
            let left = end.saturating_duration_since(Instant::now());
            if self.scheduler.superseded() || left.is_zero() {
                break;
            }
            match self.inbox.recv_timeout(left) {
                Ok(Event::Files(Ok(event))) => {
                    file_event(&self.filter, &mut self.scheduler, event);
                }
                Ok(other) => self.deferred.push_back(other),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.scheduler.superseded()
    }

    /// Handles the agent's connection events that arrived while a patch was built (taken from
    /// the inbox, or waiting in the queue a speculative build left); file events go to the
    /// scheduler, the others keep waiting.
    fn link_events(&mut self) {
        let mut waiting: Vec<Event> = self.deferred.drain(..).collect();
        waiting.extend(std::iter::from_fn(|| self.inbox.try_recv().ok()));
        for event in waiting {
            match event {
                Event::Connected(..) | Event::Hello(..) | Event::Disconnected(_) => {
                    self.handle(event);
                }
                Event::Files(Ok(event)) => file_event(&self.filter, &mut self.scheduler, event),
                other => self.deferred.push_back(other),
            }
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
            Event::Files(Ok(event)) => file_event(&self.filter, &mut self.scheduler, event),
            Event::Files(Err(err)) => output::warn("Warning", format!("file watcher: {err}")),
            Event::Trigger(stream) => self.serve_request(stream),
            Event::Interrupt => {}
            Event::Connected(id, stream, pid) => self.connected(id, stream, pid),
            Event::Hello(id, pid, build_id) => self.hello(id, pid, &build_id),
            Event::Disconnected(id) => self.disconnected(id),
        }
    }

    /// Serves a `cargo hotswap patch` request on `stream`: compares every watched file with the
    /// snapshot, rebuilds and patches, and replies with every line the session printed
    /// meanwhile (the compiler's diagnostics, the status lines), then the verdict.
    fn serve_request(&mut self, mut stream: UnixStream) {
        // Every watched file is compared with the snapshot: with `--no-watch` nothing
        // else saw the edits. Even with none, the patch is built: the user asked.
        let mut files = Vec::new();
        self.collect_all(&mut files);
        self.serving_request = true;
        let (verdict, lines) = output::recorded(|| {
            self.rebuild(files, true).unwrap_or_else(|| {
                output::status("Unchanged", "nothing to patch");
                Verdict::Unchanged
            })
        });
        self.serving_request = false;
        let replies = lines
            .into_iter()
            .map(|line| Reply::Line { line })
            .chain(std::iter::once(Reply::Answer { verdict }));
        for reply in replies {
            if stream
                .write_all(control::encode(&reply).as_bytes())
                .is_err()
            {
                break;
            }
        }
    }

    /// Notices a host that exited, or one whose agent never connected.
    fn check_host(&mut self) {
        let Some(running) = &mut self.running else {
            return;
        };
        match running.child.try_wait() {
            Ok(Some(_))
                if running.link.is_some()
                    && running.exit_seen.get_or_insert_with(Instant::now).elapsed()
                        < LAST_WORDS =>
            {
                // Its connection is still open: what it sent before it exited is read first.
            }
            Ok(Some(status)) => {
                self.host_events();
                crate::terminal::restore();
                output::event(&Report::HostExited {
                    status: status.to_string(),
                });
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
                if !running.connected
                    && !running.warned_silent
                    && running.started.elapsed() > HELLO_DEADLINE
                {
                    running.warned_silent = true;
                    report::warning(
                        Code::NeverConnected,
                        format!(
                            "`{}` (pid {}) never connected to cargo-hotswap, so edits cannot be \
                             applied to it\nhelp: the program must link `cargo-hotswap-runtime`, and \
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
}

/// Tells `scheduler` of the files of a watcher `event` that `filter` counts.
fn file_event(filter: &Filter, scheduler: &mut Scheduler, event: watch::FileEvent) {
    let relevant: Vec<PathBuf> = event
        .paths
        .into_iter()
        .filter(|p| filter.classify(p).is_some())
        .collect();
    scheduler.events(event.at, relevant, event.written);
}

/// Whether a running build is still wanted, asked while its rustc runs: takes the file events
/// that arrived (other events wait in `deferred`) and says [`Watch::Stop`] when they supersede
/// a speculative build, [`Watch::Wait`] once it is speculative no more.
fn watch_build(
    inbox: &Receiver<Event>,
    deferred: &mut std::collections::VecDeque<Event>,
    filter: &Filter,
    scheduler: &mut Scheduler,
) -> Watch {
    let Some(settles) = scheduler.settles() else {
        return Watch::Wait;
    };
    while let Ok(event) = inbox.try_recv() {
        match event {
            Event::Files(Ok(event)) => file_event(filter, scheduler, event),
            other => deferred.push_back(other),
        }
    }
    if scheduler.superseded() {
        Watch::Stop
    } else if Instant::now() >= settles {
        Watch::Wait
    } else {
        Watch::Ask
    }
}
