//! Building a patch: the captured rustc command replayed as a cdylib, linked thin
//! through the linker wrapper in patch mode, then copied to a fresh name in the session directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::build::capture::Capture;
use crate::build::crates::{LocalCrate, Replaced, make_view, read_dep_info, rewire};
use crate::build::host::{Host, WorkDir};
use crate::build::{link, replay, statics};
use crate::check::code::CodeIndex;
use crate::process::{Watch, output_watched, self_exe};

/// What a patch rebuilds besides the bin: local library crates.
#[derive(Debug, Default)]
pub(crate) struct LibPlan<'a> {
    /// The crates whose code the patch carries, in dependency order: those an edit reached,
    /// those above them, and those an earlier patch of the running program carried.
    pub(crate) crates: Vec<&'a LocalCrate>,
    /// The stems of the crates to compile again (their sources changed, or a crate below them
    /// was compiled again); the others' rlibs from the last patch serve as they are.
    pub(crate) compile: std::collections::BTreeSet<String>,
}

/// A library crate as a patch rebuilt it.
#[derive(Debug, Clone)]
pub(crate) struct BuiltLib {
    /// Its crate name, `leaf`.
    pub(crate) name: String,
    /// Its outputs' name (see [`crate::build::capture::Capture::stem`]).
    pub(crate) stem: String,
    /// Whether this patch compiled it (else its rlib is the last patch's).
    pub(crate) compiled: bool,
    /// Its source files as compiled (dep-info).
    pub(crate) sources: Vec<PathBuf>,
    /// Its functions and statics, when this patch compiled it (else the session has them
    /// from the patch that did); `None` if they could not be read.
    pub(crate) code: Option<CodeIndex>,
}

/// How much of the bin crate a patch build compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// What the exported hot functions reach, as a cdylib compiles it: the patch itself.
    Fast,
    /// Every function (`-C link-dead-code`), also those only `main` reaches, so that the code
    /// index sees edits of start-up code; built when the source diff cannot tell that the
    /// fast build is complete.
    Full,
}

impl Mode {
    /// The build's directory under the work directory, and its incremental cache's name: the
    /// two modes compile different code, and each keeps its own cache warm.
    fn dir(self) -> &'static str {
        match self {
            Mode::Fast => "patch",
            Mode::Full => "patch-full",
        }
    }

    /// Where a build of this mode keeps the crate's objects (hard links of rustc's, for the
    /// code index), under the work directory `work`.
    pub(crate) fn objects_dir(self, work: &WorkDir) -> PathBuf {
        work.root.join(self.dir()).join("objects")
    }
}

/// A patch file ready to be sent to the host.
#[derive(Debug)]
pub(crate) struct Patch {
    /// Its fresh, never reused path in the session directory.
    pub(crate) path: PathBuf,
    /// Source files of the crate as compiled for this patch (dep-info).
    pub(crate) sources: Vec<PathBuf>,
    /// Wall time of the rustc replay (compile and link).
    pub(crate) build_time: Duration,
    /// The crate's functions and statics, read from its objects (on a thread of its own, while
    /// the session reads the patch's debug info); `None` if they could not be read (then every
    /// hot function counts as changed).
    pub(crate) code: PendingIndex,
    /// rustc's warnings, when they were captured (`capture_output`); empty otherwise.
    pub(crate) messages: String,
    /// The library crates the patch carries, in dependency order.
    pub(crate) libs: Vec<BuiltLib>,
    /// How much of the bin crate it compiled.
    pub(crate) mode: Mode,
    /// For a [`Mode::Full`] patch, the code index of the fast build of the same sources (what
    /// the hot functions reach); `None` for a fast patch.
    pub(crate) reached: Option<CodeIndex>,
    /// Whether `reached` was compiled from the same sources as this patch (no save came between
    /// the two builds); when not, what changed is told from this patch's code alone.
    pub(crate) same_sources: bool,
    /// For a patch that keeps every function (entry redirection), the references of its code
    /// to the crate's mutable statics that could not be made to go through the GOT:
    /// `(function, static, why)`, mangled (see [`statics`]).
    pub(crate) unshared: Vec<(String, String, String)>,
    /// For such a patch, the functions (mangled) that reach a thread-local's storage
    /// themselves: the thread-locals' accessors (see [`statics::THREAD_LOCAL`]).
    pub(crate) thread_local_accessors: Vec<String>,
}

impl Patch {
    /// The code indexes of every crate the patch compiled: the bin crate's (when it could be
    /// read), then the library crates'.
    pub(crate) fn codes(&self) -> impl Iterator<Item = &CodeIndex> {
        self.code.get().into_iter().chain(
            self.libs
                .iter()
                .filter(|lib| lib.compiled)
                .filter_map(|lib| lib.code.as_ref()),
        )
    }
}

/// A [`CodeIndex`] that may still be being read on another thread: [`PendingIndex::get`] waits
/// for it. The index of the medium benchmark fixture's objects takes 3 to 8 ms after each patch
/// build; the reading starts as soon as the linker wrapper has kept the objects (see
/// [`LinkSignals`]), so that it runs while the patch links.
#[derive(Debug)]
pub(crate) struct PendingIndex {
    index: std::sync::OnceLock<Option<CodeIndex>>,
    reader: std::sync::Mutex<Option<std::thread::JoinHandle<Option<CodeIndex>>>>,
}

/// A pipe for rustc's linker (this executable, see [`link`]) to tell the session something
/// through: the read end, and the write end without close-on-exec, for rustc and its linker to
/// inherit.
struct Pipe {
    read: std::fs::File,
    write: std::os::fd::OwnedFd,
}

impl Pipe {
    /// A new pipe; `None` when none can be opened.
    fn open() -> Option<Pipe> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let mut fds = [0; 2];
        // SAFETY: `pipe2` writes two descriptors into the array it is given, which has room for
        // them; its result is checked.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return None;
        }
        // SAFETY: both descriptors were just opened by `pipe2` and are owned here only.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // `dup` leaves close-on-exec off: the copy is the one rustc inherits, and the other
        // closes here.
        // SAFETY: `write` is open; the result is checked.
        let inherited = unsafe { libc::dup(write.as_raw_fd()) };
        if inherited < 0 {
            return None;
        }
        Some(Pipe {
            read: read.into(),
            // SAFETY: `dup` just opened it, owned here only.
            write: unsafe { OwnedFd::from_raw_fd(inherited) },
        })
    }

    /// Names the write end to `command` in the variable `env`.
    fn pass_to(&self, command: &mut std::process::Command, env: &str) {
        use std::os::fd::AsRawFd;
        command.env(env, self.write.as_raw_fd().to_string());
    }
}

/// What the linker wrapper tells the session while a patch's rustc runs: that the crate's
/// objects are kept ([`link::OBJECTS_KEPT_FD_ENV`]), upon which a reader starts reading them for
/// the code index while the patch links; and that the patch is linked
/// ([`link::PATCH_LINKED_FD_ENV`]), upon which the session goes on without waiting for rustc's
/// end (see [`crate::process::output_watched`]).
struct LinkSignals {
    /// The write ends rustc inherits; dropped once rustc has ended or the patch is linked, so
    /// that the reader sees the end of the pipe when nothing was written.
    writers: Vec<std::os::fd::OwnedFd>,
    /// `WAITING`, then `STARTED` by the reader when the wrapper's byte came first, or
    /// `ABANDONED` by the session when rustc ended first.
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
    reader: std::thread::JoinHandle<Option<CodeIndex>>,
    /// The read end of the pipe that tells that the patch is linked, `None` when it could not be
    /// opened.
    linked: Option<std::fs::File>,
}

const WAITING: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

impl LinkSignals {
    /// Opens the pipes, has `command` (a patch's rustc) write to them, and starts the reader of
    /// the objects in `dir`; `None` when no pipe can be opened (then the objects are read once
    /// rustc has exited).
    fn start(
        command: &mut std::process::Command,
        dir: PathBuf,
        crate_name: String,
    ) -> Option<Self> {
        use std::io::Read;
        use std::sync::atomic::Ordering;
        let kept = Pipe::open()?;
        kept.pass_to(command, link::OBJECTS_KEPT_FD_ENV);
        let mut writers = Vec::new();
        let linked = Pipe::open().map(|pipe| {
            pipe.pass_to(command, link::PATCH_LINKED_FD_ENV);
            writers.push(pipe.write);
            pipe.read
        });
        writers.push(kept.write);
        let state = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(WAITING));
        let waiting = std::sync::Arc::clone(&state);
        let mut read = kept.read;
        let reader = std::thread::spawn(move || {
            let mut byte = [0u8];
            let told = read.read(&mut byte).is_ok_and(|n| n == 1);
            let started = told
                && waiting
                    .compare_exchange(WAITING, STARTED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
            if !started {
                return None;
            }
            CodeIndex::read_dir(&dir, &crate_name).ok()
        });
        Some(LinkSignals {
            writers,
            state,
            reader,
            linked,
        })
    }

    /// Once rustc has ended or the patch is linked: the index the reader is reading, or one read
    /// from now on when the wrapper told nothing (then the reader is left to end on its own).
    fn finish(self, dir: PathBuf, crate_name: String) -> PendingIndex {
        use std::sync::atomic::Ordering;
        drop(self.writers);
        let abandoned = self
            .state
            .compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if abandoned {
            return PendingIndex::read_dir(dir, crate_name);
        }
        PendingIndex::reading(self.reader)
    }
}

impl PendingIndex {
    /// Starts reading the objects in `dir` (see [`CodeIndex::read_dir`]); `None` when they cannot
    /// be read.
    fn read_dir(dir: PathBuf, crate_name: String) -> Self {
        Self::reading(std::thread::spawn(move || {
            CodeIndex::read_dir(&dir, &crate_name).ok()
        }))
    }

    /// The index that `reader` reads.
    fn reading(reader: std::thread::JoinHandle<Option<CodeIndex>>) -> Self {
        PendingIndex {
            index: std::sync::OnceLock::new(),
            reader: std::sync::Mutex::new(Some(reader)),
        }
    }

    /// The index, once read.
    pub(crate) fn get(&self) -> Option<&CodeIndex> {
        self.index
            .get_or_init(|| {
                let reader = self
                    .reader
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                // A reader that panicked read nothing: every hot function counts as changed.
                reader.and_then(|reader| reader.join().ok().flatten())
            })
            .as_ref()
    }

    /// The index, once read, by value.
    pub(crate) fn into_inner(self) -> Option<CodeIndex> {
        self.get();
        self.index.into_inner().flatten()
    }
}

/// Why a patch build did not produce a patch.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PatchBuildError {
    /// rustc reported errors; its diagnostics were shown on stderr.
    #[error("could not compile `{package}`")]
    Compile {
        /// The package whose crate failed, as cargo names it.
        package: String,
        /// rustc's rendered diagnostics, when they were captured (`capture_output`); else they were
        /// shown on stderr already.
        diagnostics: String,
    },
    /// The build was stopped (rustc killed): its sources changed again while it was
    /// speculative, or the session is interrupted; nothing was shown.
    #[error("the build was stopped")]
    Superseded,
    /// Something else failed (running rustc, copying the file).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Which patch a build makes, and how.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    /// The patch's number in the session (its file name's), 0 for a baseline.
    pub(crate) number: u64,
    /// How much of the bin crate it compiles.
    pub(crate) mode: Mode,
    /// Whether rustc's output is returned (in the patch or the error) rather than shown.
    pub(crate) capture_output: bool,
    /// Whether the patch file keeps every function compiled (entry redirection may jump to
    /// any), not only what its exported hot functions reach.
    pub(crate) keep_code: bool,
}

/// Builds the patch of `job` against `host` and moves it into `session_dir`.
/// `published` is called with the patch file's path as soon as it is in place, before the code
/// index is read (work that needs only the file can start beside it). `watch` is asked while
/// each rustc runs whether the build is still wanted (see [`output_watched`]).
///
/// The build always writes the same output path (a fresh `-o` per patch would halve rustc's
/// incremental reuse); the file is then renamed to its fresh name (copied under a temporary
/// name first when that fails), so the host never sees a half-written file.
///
/// # Errors
///
/// [`PatchBuildError::Compile`] when rustc rejects the code (diagnostics already shown),
/// [`PatchBuildError::Superseded`] when `watch` stopped it, else [`PatchBuildError::Other`]
/// naming the failed command or path.
pub(crate) fn build(
    host: &Host,
    work: &WorkDir,
    session_dir: &Path,
    plan: &LibPlan<'_>,
    job: Job,
    published: &mut dyn FnMut(&Path),
    watch: &mut dyn FnMut() -> Watch,
) -> Result<Patch, PatchBuildError> {
    let Job {
        number,
        mode,
        capture_output,
        keep_code,
    } = job;
    let started = Instant::now();
    let capture = &host.capture;
    let view = work.root.join("view");
    let (replaced, libs, mut messages) =
        build_libs(plan, work, capture, &view, capture_output, watch)?;
    let crate_name = capture.option("--crate-name").unwrap_or("patch").to_owned();
    let out_dir = work.root.join(mode.dir());
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create `{}`", out_dir.display()))?;
    // rustc names the outputs after the crate and `-C extra-filename`; with `--out-dir`, its
    // intermediate objects also go there rather than into the current directory.
    let extra = capture.option("-C extra-filename").unwrap_or("");
    let output = out_dir.join(format!("lib{crate_name}{extra}.so"));
    let dep_info = out_dir.join(format!("{crate_name}{extra}.d"));

    let args = rewire(
        &patch_args(&capture.args, &work.root, &out_dir, mode)?,
        &replaced,
        &view,
    );
    let objects_dir = mode.objects_dir(work);
    clear_aside(&objects_dir);
    remove_split_debug_info(&out_dir);
    std::fs::create_dir_all(&objects_dir)
        .with_context(|| format!("cannot create `{}`", objects_dir.display()))?;
    let mut command = capture.command(&args);
    // rustc's last steps after a silent link (removing its temporary files) are not waited
    // for: on Linux nothing rewrites the output after its link (`-C strip` is the linker's
    // work).
    let signals = LinkSignals::start(&mut command, objects_dir.clone(), crate_name.clone());
    command
        .env(crate::ROLE_ENV, "link-patch")
        .env(link::OBJECTS_DIR_ENV, &objects_dir)
        .env(link::REAL_LINKER_ENV, &host.real_linker)
        .env_remove(link::KEEP_CODE_ENV)
        .envs(keep_code.then_some((link::KEEP_CODE_ENV, "1")))
        .env(super::thin::HOST_EXE_ENV, &host.exe)
        .env(
            super::thin::HOST_LIBS_DIR_ENV,
            super::thin::host_libs_dir(&work.root),
        )
        .env(
            link::PATCH_RLIBS_ENV,
            replaced
                .values()
                .filter_map(|rlib| Some(format!("{}\n", rlib.file_name()?.to_str()?)))
                .collect::<String>(),
        );
    // On failure too, the library crates' warnings come first.
    let linked = signals.as_ref().and_then(|s| s.linked.as_ref());
    let bin = run_rustc(
        &mut command,
        capture_output,
        linked,
        capture.package(),
        watch,
    )
    .map_err(|err| match err {
        PatchBuildError::Compile {
            package,
            diagnostics,
        } => PatchBuildError::Compile {
            package,
            diagnostics: format!("{messages}{diagnostics}"),
        },
        other => other,
    })?;
    messages.push_str(&bin);
    let build_time = started.elapsed();

    let suffix = if mode == Mode::Full { "-full" } else { "" };
    let path = publish(
        &output,
        session_dir,
        &format!("{crate_name}-patch-{number}{suffix}.so"),
    )?;
    published(&path);
    let sources = read_dep_info(&dep_info, &capture.cwd)?;
    let code = match signals {
        Some(signals) => signals.finish(objects_dir.clone(), crate_name.clone()),
        None => PendingIndex::read_dir(objects_dir.clone(), crate_name.clone()),
    };
    let (accessors, unshared): (Vec<_>, Vec<_>) = if keep_code {
        statics::read_unshared(&link::shared_objects_dir(&objects_dir))
            .into_iter()
            .partition(|(_, _, why)| why == statics::THREAD_LOCAL)
    } else {
        Default::default()
    };
    let mut thread_local_accessors: Vec<String> = accessors
        .into_iter()
        .map(|(function, _, _)| function)
        .collect();
    thread_local_accessors.dedup();
    Ok(Patch {
        path,
        sources,
        build_time,
        code,
        messages,
        libs,
        mode,
        reached: None,
        same_sources: true,
        unshared,
        thread_local_accessors,
    })
}

/// The library crates of `plan`, each compiled again if it must be (in order, against the
/// ones before it, found through `view`): their rlibs by stem, what the patch knows of each, and
/// rustc's messages when `capture_output`.
///
/// # Errors
///
/// [`PatchBuildError::Compile`] when rustc rejects a crate, else [`PatchBuildError::Other`].
fn build_libs(
    plan: &LibPlan<'_>,
    work: &WorkDir,
    capture: &Capture,
    view: &Path,
    capture_output: bool,
    watch: &mut dyn FnMut() -> Watch,
) -> Result<(Replaced, Vec<BuiltLib>, String), PatchBuildError> {
    let replaced: Replaced = plan
        .crates
        .iter()
        .map(|krate| (krate.stem.clone(), lib_rlib(work, &krate.stem)))
        .collect();
    if !replaced.is_empty() {
        make_view(&capture.args, &replaced, view)?;
    }
    let mut messages = String::new();
    let mut libs = Vec::with_capacity(plan.crates.len());
    for krate in &plan.crates {
        let rlib = &replaced[&krate.stem];
        let compiled = plan.compile.contains(&krate.stem) || !rlib.is_file();
        if compiled {
            messages.push_str(&compile_lib(
                krate,
                work,
                &replaced,
                view,
                capture_output,
                watch,
            )?);
        }
        let dep_info = rlib.with_file_name(format!("{}.d", krate.stem));
        libs.push(BuiltLib {
            name: krate.name().to_owned(),
            stem: krate.stem.clone(),
            compiled,
            sources: read_dep_info(&dep_info, &krate.capture.cwd)?,
            code: compiled
                .then(|| CodeIndex::read_rlib(rlib, krate.name()).ok())
                .flatten(),
        });
    }
    Ok((replaced, libs, messages))
}

/// Moves the built patch `output` to `name` in `session_dir` (or, across file systems, copies
/// it there through a temporary name), so that the program never sees a half-written file;
/// returns the new path. The next build links a new `output`.
fn publish(output: &Path, session_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    // The session's directory goes with the work directory (`cargo clean` during a session):
    // made again, private, as the session made it.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(session_dir)
        .with_context(|| format!("cannot create `{}`", session_dir.display()))?;
    let path = session_dir.join(name);
    if std::fs::rename(output, &path).is_ok() {
        return Ok(path);
    }
    let tmp = session_dir.join(format!(".{name}.tmp"));
    std::fs::copy(output, &tmp)
        .with_context(|| format!("cannot copy `{}` to `{}`", output.display(), tmp.display()))?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("cannot rename `{}` to `{}`", tmp.display(), path.display()))?;
    Ok(path)
}

/// Removes the `.dwo` files in `out_dir`: the split debug info of the last build there, which
/// only its patch's gate read. Each build writes every codegen unit's file again under names of
/// its own (`<crate>.<codegen unit>.<build>.rcgu.dwo`), so that without this they would pile up
/// with every patch. The files are listed now, before the next build writes its own, and
/// deleted on a background thread (see [`crate::process::spawn_background`]: the build that
/// starts now has the processors first).
fn remove_split_debug_info(out_dir: &Path) {
    let stale = crate::check::dwarf::dwo_files(out_dir);
    if !stale.is_empty() {
        // Best effort: files left are deleted with the next build's.
        let _ = crate::process::spawn_background("hotswap-clean", move || {
            for path in stale {
                let _ = std::fs::remove_file(path);
            }
        });
    }
}

/// Removes the directory `dir` (the last build's objects: hundreds of files in a large crate)
/// without waiting for it: renamed aside at once, deleted on a background thread (as in
/// [`remove_split_debug_info`]), with what an earlier session that ended first left aside (one
/// session at a time uses a work directory). Best effort: what cannot be renamed is removed in
/// place.
fn clear_aside(dir: &Path) {
    static ASIDE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let number = ASIDE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = format!("{}-", std::process::id());
    let aside = dir.with_extension(format!("old-{pid}{number}"));
    if std::fs::rename(dir, &aside).is_err() {
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return;
    };
    let (parent, stale) = (
        parent.to_path_buf(),
        format!("{}.old-", name.to_string_lossy()),
    );
    // Best effort: what is left aside is deleted at the next build's.
    let _ = crate::process::spawn_background("hotswap-clean", move || {
        let _ = std::fs::remove_dir_all(&aside);
        let earlier = std::fs::read_dir(&parent).into_iter().flatten().flatten();
        for entry in earlier {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name
                .strip_prefix(&stale)
                .is_some_and(|rest| !rest.starts_with(&pid))
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
}

/// Where a patch puts the rlib of the library crate `stem`.
fn lib_rlib(work: &WorkDir, stem: &str) -> PathBuf {
    work.root
        .join("crates")
        .join(stem)
        .join(format!("lib{stem}.rlib"))
}

/// Compiles the library crate `krate` again as an rlib, with its captured command (same
/// `-C metadata`, so the same symbols as the host's), against the rebuilt crates `replaced`
/// (found through `view`), incremental in its own directory. Returns rustc's messages when
/// `capture_output`, else shows them; `watch` may stop it.
///
/// # Errors
///
/// [`PatchBuildError::Compile`] when rustc rejects the code, else [`PatchBuildError::Other`].
fn compile_lib(
    krate: &LocalCrate,
    work: &WorkDir,
    replaced: &Replaced,
    view: &Path,
    capture_output: bool,
    watch: &mut dyn FnMut() -> Watch,
) -> Result<String, PatchBuildError> {
    let rlib = &replaced[&krate.stem];
    let out_dir = rlib.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create `{}`", out_dir.display()))?;
    let incremental = work.root.join("incremental").join(&krate.stem);
    let args = rewire(
        &replay_args(&krate.capture.args, "rlib", out_dir, &incremental),
        replaced,
        view,
    );
    let mut command = krate.capture.command(&args);
    run_rustc(
        &mut command,
        capture_output,
        None,
        krate.capture.package(),
        watch,
    )
}

/// Runs the rustc `command` (stdout discarded; stderr returned when `capture_output`, else
/// shown as it comes once `watch` lets it run) and returns its messages not shown; `watch` may
/// stop it.
///
/// # Errors
///
/// [`PatchBuildError::Compile`] naming `package` when rustc fails, with its messages,
/// [`PatchBuildError::Superseded`] when `watch` stopped it, else [`PatchBuildError::Other`]
/// when it cannot run.
fn run_rustc(
    command: &mut std::process::Command,
    capture_output: bool,
    done: Option<&std::fs::File>,
    package: &str,
    watch: &mut dyn FnMut() -> Watch,
) -> Result<String, PatchBuildError> {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // Shown as it comes unless captured; what came while the build was speculative is
    // returned (shown by the caller unless the build is superseded after all).
    let result = output_watched(command, !capture_output, done, watch)?
        .ok_or(PatchBuildError::Superseded)?;
    let messages = String::from_utf8_lossy(&result.stderr).into_owned();
    if !result.status.success() {
        return Err(PatchBuildError::Compile {
            package: package.to_owned(),
            diagnostics: messages,
        });
    }
    Ok(messages)
}

/// `captured` replayed as a `crate_type` into `out_dir` (with its dep-info), incremental in
/// `incremental`, with rustc's messages coloured when the tool's are.
fn replay_args(
    captured: &[String],
    crate_type: &str,
    out_dir: &Path,
    incremental: &Path,
) -> Vec<String> {
    let mut args = replay::base_args(captured);
    args.extend(
        [
            "--crate-type",
            crate_type,
            "--emit=dep-info,link",
            "--out-dir",
        ]
        .map(String::from),
    );
    args.push(out_dir.to_string_lossy().into_owned());
    if crate::output::color() {
        args.push("--color=always".into());
    }
    replay::push_codegen(&mut args, format!("incremental={}", incremental.display()));
    args
}

/// The replay of `captured` as a thin cdylib patch into `out_dir`, incremental under `work_root`,
/// compiling what `mode` says.
fn patch_args(
    captured: &[String],
    work_root: &Path,
    out_dir: &Path,
    mode: Mode,
) -> anyhow::Result<Vec<String>> {
    let incremental = work_root.join("incremental").join(mode.dir());
    let mut args = replay_args(captured, "cdylib", out_dir, &incremental);
    // `main` and everything only it reaches are unused in a cdylib; the host build has shown
    // the crate's real dead-code warnings already.
    args.push("-Adead_code".into());
    replay::push_codegen(&mut args, format!("linker={}", self_exe()?.display()));
    // Without it, the patch's calls to its own exported functions would bind to the host's old
    // code (ELF interposition).
    replay::push_codegen(&mut args, "link-arg=-Wl,-Bsymbolic-functions");
    // Compile every function of the crate, also those only `main` reaches, which a cdylib would
    // leave out: the code index must see their edits to say that they need a restart.
    if mode == Mode::Full {
        replay::push_codegen(&mut args, "link-dead-code");
    }
    // The debug info of the crate's codegen units stays in a `.dwo` file beside each (in
    // `out_dir`, rewritten by the next build of the same mode), and the patch holds a small
    // skeleton unit per codegen unit that names it: the linker no longer copies and relocates
    // megabytes of debug info into every patch. The gate reads the `.dwo` files (see
    // `check::dwarf`). A later `-C` of the same option wins, so this overrides a profile's
    // `split-debuginfo`.
    replay::push_codegen(&mut args, "split-debuginfo=unpacked");
    Ok(args)
}
