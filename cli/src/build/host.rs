//! Building the host: cargo builds the bin in the project's target directory while the rustc
//! wrapper captures its command and builds the host in place of the bin (see
//! [`crate::build::compile`]); the host is then taken into the work directory, or the one there
//! reused when cargo found the bin fresh.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use cargo_metadata::Message;
use indicatif::ProgressBar;

use crate::build::capture::{self, Capture};
use crate::build::crates::{LocalCrates, stem_of};
use crate::build::link;
use crate::event::{Event, Target};
use crate::output;
use crate::process::{command_line, run};

use crate::project::Project;

/// The variable that has the runtime's macros expand `#[hot]` and `persist!` for a build of
/// cargo-hotswap's (slots, records, exported names); the macros crate documents it.
pub(crate) const HOST_BUILD_ENV: &str = "CARGO_HOTSWAP_HOST_BUILD";

/// The agent library the host shim links, for a program without the runtime crate (see
/// [`crate::build::agent`]); read by the rustc wrapper that links the host.
pub(crate) const AGENT_LIBRARY_ENV: &str = "HOTSWAP_AGENT_LIBRARY";

/// Build settings that select a distinct host build (and work directory).
#[derive(Debug, Clone, Default, Hash)]
pub(crate) struct BuildOptions {
    /// `--features`, as given.
    pub(crate) features: Vec<String>,
    /// `--all-features`.
    pub(crate) all_features: bool,
    /// `--no-default-features`.
    pub(crate) no_default_features: bool,
    /// `--profile`, or `release` for `--release`; `None` for the dev profile.
    pub(crate) profile: Option<String>,
}

/// Where cargo-hotswap keeps the artifacts of one bin in one configuration:
/// `<target>/hotswap/<profile>/<bin>-<hash>/`. The hash covers the manifest path and the build
/// options, so two copies of a project sharing a target directory never collide.
#[derive(Debug, Clone)]
pub(crate) struct WorkDir {
    /// The directory itself.
    pub(crate) root: PathBuf,
    /// cargo's target directory for host builds: the project's own, so that dependencies
    /// compiled by the user's `cargo build` serve the host too (nothing of the tool's changes
    /// their fingerprints: see `cargo_build`).
    pub(crate) cargo_target_dir: PathBuf,
    /// The captures of local library crates, `<target>/hotswap/captures/<stem>.json`: shared
    /// like the compiles they describe, and kept, so that a crate cargo finds fresh still has
    /// its command.
    pub(crate) captures_dir: PathBuf,
}

impl WorkDir {
    /// The work directory of `project` built with `options`, created if missing.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created; the message names it.
    pub(crate) fn new(project: &Project, options: &BuildOptions) -> anyhow::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let features = options.features.join(",");
        let flags = format!(
            "{} {} {}",
            options.all_features,
            options.no_default_features,
            options.profile.as_deref().unwrap_or("")
        );
        let hash = crate::project::stable_hash(&[
            project.manifest_path.as_os_str().as_bytes(),
            project.bin.as_bytes(),
            features.as_bytes(),
            flags.as_bytes(),
        ]);
        let profile_dir = match options.profile.as_deref() {
            None | Some("dev") => "debug",
            Some(other) => other,
        };
        let hotswap_dir = project.target_dir.join("hotswap");
        let root = hotswap_dir
            .join(profile_dir)
            .join(format!("{}-{hash:016x}", project.bin));
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create `{}`", root.display()))?;
        Ok(WorkDir {
            root,
            cargo_target_dir: project.target_dir.clone(),
            captures_dir: hotswap_dir.join("captures"),
        })
    }

    /// The capture of the bin's rustc command.
    pub(crate) fn capture_file(&self) -> PathBuf {
        self.root.join("rustc-command.json")
    }

    /// Where the linker wrapper writes the host's link command, with `-v`.
    fn link_log(&self) -> PathBuf {
        self.root.join("link-command.txt")
    }

    /// What the host in this directory was built from (see `host_stamp`), written once it is
    /// linked.
    fn stamp_file(&self) -> PathBuf {
        self.root.join("host-stamp")
    }
}

/// A built host, and what patches against it need.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    /// The host executable.
    pub(crate) exe: PathBuf,
    /// The bin crate's captured rustc command.
    pub(crate) capture: Capture,
    /// Identifies this build; patches carry it, and a host of another build refuses them.
    pub(crate) build_id: String,
    /// The linker the user configured (`-C linker`), or `cc`.
    pub(crate) real_linker: String,
    /// Identifies the toolchain that built the host (see [`toolchain_stamp`]).
    pub(crate) toolchain: Option<(std::time::SystemTime, u64)>,
    /// The local library crates the host links, which patches may rebuild.
    pub(crate) locals: LocalCrates,
}

/// The modification time and size of the captured rustc (a toolchain update replaces it): a
/// patch built by another compiler would not match the host's symbols.
pub(crate) fn toolchain_stamp(capture: &Capture) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(&capture.rustc).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Builds the host of `project` in `work`.
///
/// # Errors
///
/// When cargo, a replay or the link fails (their output has been shown), or an artifact is
/// missing or malformed.
pub(crate) fn build(
    project: &Project,
    options: &BuildOptions,
    work: &WorkDir,
    early: Option<EarlyBuild>,
) -> anyhow::Result<Host> {
    let started = Instant::now();
    output::event(&Event::BuildStarted {
        target: Target::Host,
        files: None,
        crates: Vec::new(),
    });
    let result = build_host(project, options, work, early, started);
    output::event(&Event::BuildFinished {
        target: Target::Host,
        success: result.is_ok(),
        build_ms: Some(started.elapsed().as_millis()),
        diagnostics: None,
    });
    result
}

/// [`build`] without its events: cargo builds the bin, whose compile (in the rustc wrapper, see
/// [`crate::build::compile`]) builds the host; the host is then taken into the work directory, or the one
/// there reused when cargo found the bin fresh.
fn build_host(
    project: &Project,
    options: &BuildOptions,
    work: &WorkDir,
    early: Option<EarlyBuild>,
    started: Instant,
) -> anyhow::Result<Host> {
    let exe = work.root.join(&project.bin);
    let built = capture(project, options, work, &exe, early)?;
    let Some(cargo_exe) = built.exe.filter(|_| built.rebuilt) else {
        // cargo found the bin fresh, its capture is the one the host was built from, and this
        // tool built that host: it is reused, with no compile and no link.
        output::detail("Fresh", format!("`{}`", exe.display()));
        output::status(
            "Finished",
            format!(
                "host in {:.2}s (unchanged since its last build)",
                started.elapsed().as_secs_f64()
            ),
        );
        return Ok(host(exe, built.capture, work));
    };
    // A host half installed must not pass for a fresh one.
    let _ = std::fs::remove_file(work.stamp_file());
    install(&cargo_exe, &exe)?;
    if output::verbose()
        && let Ok(linker) = std::fs::read_to_string(work.link_log())
    {
        output::detail("Linked", format!("`{}`", linker.trim_end()));
    }
    if let Some(stamp) = host_stamp(work) {
        crate::build::capture::write_private(&work.stamp_file(), stamp.as_bytes())
            .context("cannot record the host's build")?;
    }
    output::status(
        "Finished",
        format!("host in {:.2}s", started.elapsed().as_secs_f64()),
    );
    Ok(host(exe, built.capture, work))
}

/// Makes `to` the host cargo linked at `from`: a hard link (the same file, so that a later
/// `cargo build` replacing `from` leaves the session's host alone), or a copy where links fail.
fn install(from: &Path, to: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(to);
    std::fs::hard_link(from, to)
        .or_else(|_| std::fs::copy(from, to).map(drop))
        .with_context(|| format!("cannot copy `{}` to `{}`", from.display(), to.display()))
}

/// The [`Host`] of `exe`, built from `capture`, with a new build id.
fn host(exe: PathBuf, capture: Capture, work: &WorkDir) -> Host {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    Host {
        exe,
        real_linker: capture.option("-C linker").unwrap_or("cc").to_owned(),
        toolchain: toolchain_stamp(&capture),
        locals: LocalCrates::read(&capture, &work.captures_dir),
        capture,
        build_id: format!("{nanos:x}"),
    }
}

/// What a host was built from, as one line: the captured rustc command of the bin (its bytes
/// and modification time: cargo rewrites it whenever it compiles the bin, which it does when
/// the bin's sources, flags or dependencies changed) and this tool's executable (its size and
/// modification time: another version of the tool links another host). `None` when one of them
/// cannot be read.
fn host_stamp(work: &WorkDir) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let capture = work.capture_file();
    let tool = std::env::current_exe().ok()?;
    let (capture_meta, tool_meta) = (capture.metadata().ok()?, tool.metadata().ok()?);
    let bytes = std::fs::read(&capture).ok()?;
    let times = format!(
        "{} {} {} {} {}",
        capture_meta.mtime(),
        capture_meta.mtime_nsec(),
        tool_meta.len(),
        tool_meta.mtime(),
        tool_meta.mtime_nsec()
    );
    let hash = crate::project::stable_hash(&[
        &bytes,
        times.as_bytes(),
        tool.as_os_str().as_encoded_bytes(),
    ]);
    Some(format!("{hash:016x} {times}\n"))
}

/// What the host's cargo build gave.
struct HostBuild {
    /// The bin's captured command.
    capture: Capture,
    /// The bin's executable in cargo's target directory, when cargo named it.
    exe: Option<PathBuf>,
    /// Whether the bin was compiled (and the host linked) in this build.
    rebuilt: bool,
}

/// cargo builds the bin while the rustc wrapper records its command, and those of the local
/// library crates; when cargo finds the bin fresh, the host `exe` of the last build must still
/// be there, from the same capture and tool, or the bin is built again.
fn capture(
    project: &Project,
    options: &BuildOptions,
    work: &WorkDir,
    exe: &Path,
    early: Option<EarlyBuild>,
) -> anyhow::Result<HostBuild> {
    let capture_file = work.capture_file();
    let saved_stamp = std::fs::read_to_string(work.stamp_file()).ok();
    let (build_started, built) = match early {
        Some(early) => early.adopt(project.units_estimate),
        None => (SystemTime::now(), cargo_build(project, options, work)),
    };
    let rebuilt = || captured_after(&capture_file, Some(build_started));
    let built = built?;
    // A crate cargo found fresh ran no rustc, so nothing was captured for it if its capture was
    // removed, or this tool never saw it built, or the user's own `cargo build` compiled it last
    // (its output is newer than the capture): clean those packages and build once more.
    let mut stale: Vec<&str> = built
        .libraries
        .iter()
        .filter(|lib| {
            !captured_after(
                &work.captures_dir.join(format!("{}.json", lib.stem)),
                modified(&lib.output),
            )
        })
        .map(|lib| lib.package.as_str())
        .collect();
    let reusable = || {
        built
            .bin
            .as_ref()
            .is_some_and(|bin| captured_after(&capture_file, modified(bin)))
            && saved_stamp.is_some()
            && host_stamp(work) == saved_stamp
            && exe.is_file()
    };
    if !rebuilt() && !reusable() {
        stale.push(&project.package);
    }
    let mut bin = built.bin.clone();
    if !stale.is_empty() {
        stale.sort_unstable();
        stale.dedup();
        let mut clean = cargo_command(project, options, work, "clean", &stale);
        clean.stdout(Stdio::null()).stderr(Stdio::null());
        run(clean)?;
        bin = cargo_build(project, options, work)?.bin;
    }
    Ok(HostBuild {
        capture: Capture::read(&capture_file)?,
        exe: bin,
        rebuilt: rebuilt(),
    })
}

/// Whether `capture` exists and was written at or after `time` (the wrapper writes a capture
/// once the compile succeeded, so a capture older than the compile's output does not describe it).
fn captured_after(capture: &Path, time: Option<SystemTime>) -> bool {
    match (modified(capture), time) {
        (Some(capture), Some(time)) => capture >= time,
        _ => false,
    }
}

/// When `path` was last modified; `None` when it cannot be read.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// What a `cargo build` of the bin built or found fresh.
struct Built {
    /// The local library crates.
    libraries: Vec<BuiltLibrary>,
    /// The bin's executable, when cargo named it.
    bin: Option<PathBuf>,
}

/// A local library crate that cargo built or found fresh.
struct BuiltLibrary {
    /// Its package's name.
    package: String,
    /// Its output stem (`libleaf-0123abcd`), which names its capture.
    stem: String,
    /// Its rlib (or other output), whose time tells whether the capture describes it.
    output: PathBuf,
}

/// `cargo build` of the bin, with this executable as rustc wrapper capturing its command and
/// those of the local library crates.
///
/// Nothing here changes a fingerprint cargo keeps for a dependency, so the project's own target
/// directory serves: cargo's fingerprints do not cover `RUSTC_WRAPPER` (measured: a build
/// through a pass-through wrapper after a plain one finds every unit fresh), and the wrapper
/// passes every command through unchanged. The runtime's macros read the variable
/// `CARGO_HOTSWAP_HOST_BUILD`, which cargo tracks only for the crates that expand them (through
/// `option_env!` in the expansion), so only those are rebuilt when switching between `cargo
/// build` and `cargo hotswap run`.
fn cargo_build(project: &Project, options: &BuildOptions, work: &WorkDir) -> anyhow::Result<Built> {
    let command = build_command(project, options, work)?;
    let progress = Progress::shown(project.units_estimate);
    output::detail("Running", format!("`{}`", command_line(&command)));
    let (child, stderr) = spawn_build(project, command, false)?;
    read_build(project, child, &progress, &stderr)
}

/// The `cargo build` command of [`cargo_build`].
fn build_command(
    project: &Project,
    options: &BuildOptions,
    work: &WorkDir,
) -> anyhow::Result<Command> {
    let mut command = cargo_command(project, options, work, "build", &[&project.package]);
    command
        .arg("--bin")
        .arg(&project.bin)
        .arg("--message-format=json-render-diagnostics")
        .env(HOST_BUILD_ENV, "1");
    for (key, value) in capture::rustc_wrapper_env()? {
        command.env(key, value);
    }
    command
        .arg("--color")
        .arg(if output::color() { "always" } else { "never" })
        .env(capture::CAPTURE_FILE_ENV, work.capture_file())
        .env(capture::CAPTURE_BIN_ENV, &project.bin)
        .env(capture::CAPTURE_MANIFEST_DIR_ENV, project.package_dir())
        .env(capture::CAPTURE_LIBS_DIR_ENV, &work.captures_dir)
        .env(capture::CAPTURE_LOCAL_DIRS_ENV, local_dirs(project))
        .env(capture::HOST_DIR_ENV, &work.root)
        .stdout(Stdio::piped());
    match &project.agent_library {
        // Built again when it is gone (`cargo clean` during the session), else the host's link
        // would fail on every restart.
        Some(library) if !library.is_file() => command.env(
            AGENT_LIBRARY_ENV,
            crate::build::agent::library(&project.cargo, &project.target_dir)?,
        ),
        Some(library) => command.env(AGENT_LIBRARY_ENV, library),
        None => command.env_remove(AGENT_LIBRARY_ENV),
    };
    if output::verbose() {
        command.env(link::LOG_ENV, work.link_log());
    }
    Ok(command)
}

/// Starts `command`, with cargo's stderr forwarded line by line (so that the tool's lines never
/// cut into cargo's): held back until released when `hold`, and then without the lines that
/// only say it waited for the `cargo metadata` started beside it.
fn spawn_build(
    project: &Project,
    mut command: Command,
    hold: bool,
) -> anyhow::Result<(std::process::Child, Arc<output::Held>)> {
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{}`", project.cargo.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let held = if hold {
        output::forward_held(stderr, waits_for_metadata)
    } else {
        let held = output::forward_held(stderr, |_| false);
        held.release();
        held
    };
    Ok((child, held))
}

/// Whether `line` of cargo's stderr says that it waits for the package cache, which the
/// `cargo metadata` started beside an early build holds for a moment (see [`EarlyBuild`]).
fn waits_for_metadata(line: &str) -> bool {
    // With colour, `Blocking` comes wrapped in escape sequences.
    line.contains("Blocking")
        && line
            .trim_end()
            .ends_with("waiting for file lock on package cache")
}

/// The progress of a host build: units done, and the bar that shows them once the build is
/// known to be wanted.
#[derive(Debug)]
struct Progress {
    state: Mutex<(u64, Option<ProgressBar>)>,
}

impl Progress {
    /// A progress drawn at once (on a terminal) towards `estimate` units.
    fn shown(estimate: u64) -> Progress {
        Progress {
            state: Mutex::new((0, output::progress_bar("Building", estimate))),
        }
    }

    /// A progress not drawn yet.
    fn hidden() -> Progress {
        Progress {
            state: Mutex::new((0, None)),
        }
    }

    /// Draws the bar (on a terminal) towards `estimate`, with the units done so far.
    fn show(&self, estimate: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.1.is_none()
            && let Some(bar) = output::progress_bar("Building", estimate)
        {
            bar.set_position(state.0);
            state.1 = Some(bar);
        }
    }

    /// One more unit done: `name`'s artifact, or a build script run.
    fn unit(&self, name: Option<&str>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 += 1;
        if let Some(bar) = &state.1 {
            bar.inc(1);
            if let Some(name) = name {
                bar.set_message(name.to_owned());
            }
        }
    }

    /// Clears the bar.
    fn finish(&self) {
        output::finish(
            self.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .take(),
        );
    }
}

/// Reads cargo's JSON messages from `child` to its end: the local libraries and the bin it
/// built or found fresh.
fn read_build(
    project: &Project,
    mut child: std::process::Child,
    progress: &Progress,
    stderr: &output::Held,
) -> anyhow::Result<Built> {
    let stdout = child.stdout.take().expect("piped");
    let mut success = None;
    let mut built = Built {
        libraries: Vec::new(),
        bin: None,
    };
    for message in Message::parse_stream(std::io::BufReader::new(stdout)) {
        match message {
            Ok(Message::BuildFinished(finished)) => {
                success = Some(finished.success);
                if finished.success {
                    // cargo's last message: it still takes a few milliseconds to exit (3 to
                    // 4 ms on the time service), which `cargo run` does not wait for either
                    // (it runs the program first). It is reaped in the background, and its
                    // exit work (freeing its state, saving its caches) gives way to the
                    // program's start (niceness 19, the lowest priority): on 2 cores, the two
                    // compete.
                    crate::process::lower_priority(child.id(), 19);
                    progress.finish();
                    stderr.wait_finished(std::time::Duration::from_millis(50));
                    let reaped = std::thread::Builder::new()
                        .name("hotswap-reap".into())
                        .spawn(move || child.wait());
                    if let Err(err) = reaped {
                        bail!("cannot start a thread: {err}");
                    }
                    return Ok(built);
                }
            }
            Ok(Message::CompilerArtifact(artifact)) => {
                built.libraries.extend(local_library(project, &artifact));
                if artifact.target.is_bin()
                    && artifact.target.name == project.bin
                    && artifact.manifest_path.as_std_path() == project.manifest_path
                {
                    built.bin = artifact.executable.map(|exe| exe.into_std_path_buf());
                }
                progress.unit(Some(&artifact.target.name));
            }
            Ok(Message::BuildScriptExecuted(_)) => progress.unit(None),
            _ => {}
        }
    }
    progress.finish();
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for `{}`", project.cargo.display()))?;
    if !status.success() || success == Some(false) {
        bail!(
            "could not compile `{}`: the host build failed",
            project.package
        );
    }
    Ok(built)
}

/// The process group of the [`EarlyBuild`] running, 0 when none: outside the terminal's
/// foreground group, it does not get the terminal's Ctrl-C (see [`interrupt_early_build`]).
static EARLY_GROUP: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Passes a Ctrl-C on to the [`EarlyBuild`] running, if any, as the terminal would: cargo and
/// the compilers it started stop. Async-signal-safe (an atomic load and `kill`).
pub(crate) fn interrupt_early_build() {
    let group = EARLY_GROUP.load(std::sync::atomic::Ordering::Relaxed);
    if group > 0 {
        // SAFETY: `kill` has no memory effects; the group is the running early build's.
        unsafe {
            libc::kill(-group, libc::SIGINT);
        }
    }
}

/// A host's `cargo build` started before `cargo metadata` confirmed the project it was
/// started for: the project the last session of the same command ran (see
/// [`crate::project::Project::cached`]). Its stderr and progress bar are held back until
/// [`EarlyBuild::adopt`] takes it as the host build's first `cargo build`, or
/// [`EarlyBuild::abandon`] stops it unseen.
///
/// On a warm start, `cargo metadata` and a `cargo build` that finds everything fresh take about
/// as long each; started together, the start waits for one of them instead of both.
#[derive(Debug)]
pub(crate) struct EarlyBuild {
    /// The project it was started for.
    project: Project,
    /// Its process group: cargo's pid.
    group: u32,
    /// When it was started (the captures it made are newer).
    started: SystemTime,
    /// Its command line, for `-v`.
    command_line: String,
    progress: Arc<Progress>,
    stderr: Arc<output::Held>,
    thread: std::thread::JoinHandle<anyhow::Result<Built>>,
}

impl EarlyBuild {
    /// Starts the `cargo build` of `project`'s host with `options`.
    ///
    /// # Errors
    ///
    /// When the work directory cannot be made or cargo cannot be started.
    pub(crate) fn start(project: Project, options: &BuildOptions) -> anyhow::Result<EarlyBuild> {
        let work = WorkDir::new(&project, options)?;
        let started = SystemTime::now();
        let mut command = build_command(&project, options, &work)?;
        let command_line = command_line(&command);
        // A process group of its own, so that an abandoned build is stopped with its rustc
        // processes; and it ends with the tool, which Ctrl-C no longer reaches it through.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        // SAFETY: between fork and exec, the closure only calls `prctl`, which is
        // async-signal-safe, and allocates nothing.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (child, stderr) = spawn_build(&project, command, true)?;
        let group = child.id();
        EARLY_GROUP.store(
            libc::pid_t::try_from(group).unwrap_or_default(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let progress = Arc::new(Progress::hidden());
        let (reading, reader, held) = (project.clone(), progress.clone(), stderr.clone());
        let thread = std::thread::Builder::new()
            .name("hotswap-early-build".into())
            .spawn(move || {
                let built = read_build(&reading, child, &reader, &held);
                EARLY_GROUP.store(0, std::sync::atomic::Ordering::Relaxed);
                built
            })
            .context("cannot start a thread")?;
        Ok(EarlyBuild {
            project,
            group,
            started,
            command_line,
            progress,
            stderr,
            thread,
        })
    }

    /// The project it was started for.
    pub(crate) fn project(&self) -> &Project {
        &self.project
    }

    /// Shows its output from now on (what it printed first too) and its progress towards
    /// `estimate` units.
    fn adopt(self, estimate: u64) -> (SystemTime, anyhow::Result<Built>) {
        output::detail("Running", format!("`{}`", self.command_line));
        self.stderr.release();
        self.progress.show(estimate);
        let result = self
            .thread
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the host build's reader panicked")));
        (self.started, result)
    }

    /// Stops it (cargo and the compilers it started: what they left half done, cargo builds
    /// again) and waits for it to end, showing nothing of it.
    pub(crate) fn abandon(self) {
        self.stderr.discard();
        if let Ok(group) = libc::pid_t::try_from(self.group) {
            // SAFETY: `kill` has no memory effects; the group is cargo's, which the reader
            // thread has not reaped yet unless cargo ended (then the signal finds no process).
            unsafe {
                libc::kill(-group, libc::SIGTERM);
            }
        }
        let _ = self.thread.join();
    }
}

/// `artifact` when it is the library of a local package.
fn local_library(project: &Project, artifact: &cargo_metadata::Artifact) -> Option<BuiltLibrary> {
    let lib = project.local_libs.iter().find(|lib| {
        artifact.manifest_path.parent().map(|p| p.as_std_path()) == Some(&lib.dir)
            && artifact.target.name.replace('-', "_") == lib.crate_name
    })?;
    let (output, stem) = artifact
        .filenames
        .iter()
        .find_map(|f| Some((f, stem_of(f.as_str())?)))?;
    Some(BuiltLibrary {
        package: lib.package.clone(),
        stem: stem.to_owned(),
        output: output.clone().into_std_path_buf(),
    })
}

/// The root directories of the local packages, one per line, for the rustc wrapper.
fn local_dirs(project: &Project) -> std::ffi::OsString {
    let mut dirs = std::ffi::OsString::new();
    for dir in &project.local_package_dirs {
        dirs.push(dir);
        dirs.push("\n");
    }
    dirs
}

/// `cargo <subcommand>` for `packages` (`-p` each), with the build options, in our target
/// directory.
fn cargo_command(
    project: &Project,
    options: &BuildOptions,
    work: &WorkDir,
    subcommand: &str,
    packages: &[&str],
) -> Command {
    let mut command = Command::new(&project.cargo);
    command
        .arg(subcommand)
        .arg("--manifest-path")
        .arg(&project.manifest_path);
    for package in packages {
        command.arg("-p").arg(package);
    }
    command.arg("--target-dir").arg(&work.cargo_target_dir);
    if let Some(profile) = &options.profile {
        command.arg("--profile").arg(profile);
    }
    if subcommand == "build" {
        for features in &options.features {
            command.arg("--features").arg(features);
        }
        if options.all_features {
            command.arg("--all-features");
        }
        if options.no_default_features {
            command.arg("--no-default-features");
        }
    }
    command
}
