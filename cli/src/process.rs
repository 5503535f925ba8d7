//! Running child processes (cargo, rustc, the linker): one place that shows a command with `-v`,
//! names it when it cannot start, and shows its stderr when it fails.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::output;

/// A command line as text, for `-v` (arguments with spaces quoted).
pub(crate) fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if arg.contains(' ') || arg.is_empty() {
                format!("'{arg}'")
            } else {
                arg.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `command` with its output inherited; fails naming it if it does not succeed.
///
/// # Errors
///
/// When it cannot start, or exits unsuccessfully; the message names the program.
pub(crate) fn run(mut command: Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run `{}`", command.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!(
            "`{}` failed ({status})",
            command.get_program().to_string_lossy()
        );
    }
    Ok(())
}

/// Runs `command` (shown with `-v`) with its stderr captured, and shows that only if it fails;
/// `what` names the step in the error.
///
/// # Errors
///
/// When it cannot start (naming the program), or exits unsuccessfully (with its stderr).
pub(crate) fn run_quiet(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = output(command.stderr(Stdio::piped()))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(())
}

/// Runs `command` (shown with `-v`) to its end and returns what it printed where its set-up
/// pipes it, and its status, whatever that is.
///
/// # Errors
///
/// When it cannot start; the message names the program.
pub(crate) fn output(command: &mut Command) -> anyhow::Result<Output> {
    output::detail("Running", format!("`{}`", command_line(command)));
    command
        .output()
        .with_context(|| format!("cannot run `{}`", command.get_program().to_string_lossy()))
}

/// What the caller of [`output_watched`] wants while the child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// Go on, and ask again.
    Ask,
    /// Kill the child: its work is no longer wanted.
    Stop,
    /// Wait for the child's end without asking again.
    Wait,
}

/// How often [`output_watched`] asks while its caller may still stop the child.
const WATCH_INTERVAL: Duration = Duration::from_millis(1);

/// The process [`output_watched`] waits for now, if any (its pid, not yet reaped), for
/// [`interrupt_watched`].
static WATCHED: std::sync::Mutex<Option<u32>> = std::sync::Mutex::new(None);
/// Set by [`interrupt_watched`]: the session is ending, and no watched process runs again.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Kills the process [`output_watched`] waits for (a patch or baseline build's rustc), and
/// every later one before it starts, when the session is interrupted (Ctrl-C): its work is no
/// longer wanted, and the session ends without waiting for it. Safe from any thread.
pub(crate) fn interrupt_watched() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let watched = WATCHED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(pid) = *watched
        && let Ok(pid) = i32::try_from(pid)
    {
        // SAFETY: `kill` with a pid that the lock keeps unreaped (so not reused) and a signal
        // number; no memory is passed.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Whether the child `pid` ended, without reaping it (`waitid` with `WNOWAIT`), so that its
/// pid stays its own until [`WATCHED`] forgets it; with `block`, waits for its end.
fn ended(pid: u32, block: bool) -> std::io::Result<bool> {
    loop {
        // SAFETY: `siginfo_t` is plain data, zeroed as `waitid` expects for `WNOHANG`.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOWAIT | if block { 0 } else { libc::WNOHANG };
        // SAFETY: `waitid` on our own child with a valid out pointer; `WNOWAIT` leaves it
        // waitable, so `Child::wait` reaps it afterwards.
        let result = unsafe { libc::waitid(libc::P_PID, pid, &raw mut info, flags) };
        if result == 0 {
            // SAFETY: `si_pid` is set by `waitid`; 0 when no child changed state (`WNOHANG`).
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// [`output`], asking `watch` about every millisecond while the child runs whether to go on:
/// [`Watch::Stop`] kills it (SIGKILL; a process it started, such as a linker, is left to end
/// on its own) and returns `None`; [`Watch::Wait`] waits for its end without asking again.
/// With `stream`, the child's stderr (which must be piped) is copied to this process's stderr
/// as it comes once `watch` said [`Watch::Wait`], and is not returned; what it printed before
/// is held until then (returned if the child ended before). A session interrupted meanwhile
/// ([`interrupt_watched`]) kills it too, and returns `None`.
///
/// `done`, when given, is the read end of a pipe to which a process the child starts writes
/// [`DONE`] once the child's work is complete though it has not exited (a patch's rustc, once
/// its link is written, still removes its temporary files for 10 to 20 ms). When the child has
/// printed nothing by then (had it printed warnings, their count would come after), it is left
/// to end on a thread of its own (see [`wait_for_tails`]), and this returns a success. Should it
/// print something or fail after all, that is shown as a warning.
///
/// # Errors
///
/// When it cannot start (naming the program), or cannot be waited for.
pub(crate) fn output_watched(
    command: &mut Command,
    stream: bool,
    done: Option<&std::fs::File>,
    watch: &mut dyn FnMut() -> Watch,
) -> anyhow::Result<Option<Output>> {
    wait_for_tails();
    output::detail("Running", format!("`{}`", command_line(command)));
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = {
        let mut watched = WATCHED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot run `{program}`"))?;
        *watched = Some(child.id());
        child
    };
    let live = Arc::new(AtomicBool::new(false));
    let stdout = drain(child.stdout.take(), None);
    let stderr = drain(child.stderr.take(), stream.then(|| live.clone()));
    let pid = child.id();
    let waited =
        |block: bool| ended(pid, block).with_context(|| format!("cannot wait for `{program}`"));
    let (mut asking, mut stopped) = (true, false);
    let mut done = done;
    loop {
        if !asking && let Some(pipe) = done {
            match ended_or_done(pid, pipe)
                .with_context(|| format!("cannot wait for `{program}`"))?
            {
                Wait::Ended => break,
                // It printed something: what it prints at its end belongs with that.
                Wait::Done if stderr.as_ref().is_some_and(Drained::printed) => done = None,
                Wait::Done => {
                    // Its pid is forgotten first: the thread left to wait for its end reaps it.
                    *WATCHED
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                    live.store(false, Ordering::Release);
                    let output = Output {
                        status: std::os::unix::process::ExitStatusExt::from_raw(0),
                        stdout: Vec::new(),
                        stderr: Vec::new(),
                    };
                    leave_to_end(child, program, stdout, stderr);
                    return Ok(Some(output));
                }
                // Nothing more can come: the child's end is waited for.
                Wait::Closed => done = None,
            }
            continue;
        }
        if waited(!asking)? {
            break;
        }
        match watch() {
            Watch::Ask => std::thread::sleep(WATCH_INTERVAL),
            Watch::Stop => {
                let _ = child.kill();
                stopped = true;
                break;
            }
            Watch::Wait => {
                live.store(true, Ordering::Release);
                asking = false;
            }
        }
    }
    // Ended and not reaped: its pid is forgotten first, then it is reaped.
    *WATCHED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for `{program}`"))?;
    if stopped || INTERRUPTED.load(Ordering::SeqCst) {
        // The readers end when the pipes close; they are not waited for.
        return Ok(None);
    }
    Ok(Some(Output {
        status,
        stdout: stdout.map(Drained::join).unwrap_or_default(),
        stderr: stderr.map(Drained::join).unwrap_or_default(),
    }))
}

/// The byte that tells [`output_watched`] through its `done` pipe that the child's work is
/// complete.
pub(crate) const DONE: u8 = b'l';

/// What [`ended_or_done`] saw first.
enum Wait {
    /// The child ended (not reaped).
    Ended,
    /// [`DONE`] came through the pipe.
    Done,
    /// The pipe closed, or brought something else: it tells nothing more.
    Closed,
}

/// Waits for the end of the child `pid` (not reaped: see [`ended`]) or for [`DONE`] on
/// `pipe`, whichever comes first. Without a pidfd (Linux before 5.3), waits for the end.
fn ended_or_done(pid: u32, pipe: &std::fs::File) -> std::io::Result<Wait> {
    use std::os::fd::AsRawFd;
    let Some(pidfd) = pidfd_open(pid) else {
        return ended(pid, true).map(|_| Wait::Ended);
    };
    let mut fds = [
        libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `poll` reads and writes the two `pollfd`s of the array it is given, whose
        // length is passed with it.
        let polled = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if polled < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if fds[0].revents != 0 {
            return ended(pid, true).map(|_| Wait::Ended);
        }
        if fds[1].revents != 0 {
            let mut byte = [0u8];
            return Ok(match (&*pipe).read(&mut byte) {
                Ok(1) if byte[0] == DONE => Wait::Done,
                _ => Wait::Closed,
            });
        }
    }
}

/// A descriptor of the process `pid` that becomes readable when it ends (`pidfd_open(2)`);
/// `None` where the kernel has none (Linux before 5.3).
fn pidfd_open(pid: u32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: `pidfd_open` takes a pid and flags, no pointers; its result is checked.
    let opened = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let opened = i32::try_from(opened).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `pidfd_open` just opened it, owned here only.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(opened) })
}

/// Children [`output_watched`] returned before they ended: each is waited for on a thread of
/// its own.
static TAILS: std::sync::Mutex<Vec<JoinHandle<()>>> = std::sync::Mutex::new(Vec::new());

/// Leaves `child`, whose work is done, to end on a thread of its own; if it fails, what it
/// printed from now on is shown as a warning.
fn leave_to_end(
    mut child: std::process::Child,
    program: String,
    stdout: Option<Drained>,
    stderr: Option<Drained>,
) {
    let tail = std::thread::spawn(move || {
        let status = child.wait();
        let _ = stdout.map(Drained::join);
        let rest = stderr.map(Drained::join).unwrap_or_default();
        let rest = String::from_utf8_lossy(&rest);
        match status {
            Ok(status) if status.success() && rest.trim().is_empty() => {}
            Ok(status) if status.success() => output::warn(
                "Warning",
                format!(
                    "`{program}` said after its work was done:\n{}",
                    rest.trim_end()
                ),
            ),
            Ok(status) => output::warn(
                "Warning",
                format!(
                    "`{program}` failed ({status}) after its work was done:\n{}",
                    rest.trim_end()
                ),
            ),
            Err(err) => output::warn("Warning", format!("cannot wait for `{program}`: {err}")),
        }
    });
    TAILS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(tail);
}

/// Waits for the end of every child [`output_watched`] returned before it ended: a patch's
/// rustc deletes its object files in the build's output directory after the link, where the
/// next build of the same kind writes its own.
pub(crate) fn wait_for_tails() {
    let tails = std::mem::take(
        &mut *TAILS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for tail in tails {
        let _ = tail.join();
    }
}

/// A child's pipe read to its end on a thread of its own (see [`drain`]).
struct Drained {
    /// What was read and not yet copied.
    held: Arc<std::sync::Mutex<Vec<u8>>>,
    /// Whether anything was read at all (copied since, or not).
    printed: Arc<AtomicBool>,
    reader: JoinHandle<()>,
}

impl Drained {
    /// Whether the child printed anything on the pipe so far.
    fn printed(&self) -> bool {
        self.printed.load(Ordering::Acquire)
    }

    /// What was read and not copied, once the pipe has closed.
    fn join(self) -> Vec<u8> {
        let Drained { held, reader, .. } = self;
        let _ = reader.join();
        std::mem::take(
            &mut *held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Reads a child's pipe to its end on a thread of its own, if it is piped, and holds what it
/// read; with `live`, copies it to this process's stderr instead while `live` is set.
fn drain(
    pipe: Option<impl Read + Send + 'static>,
    live: Option<Arc<AtomicBool>>,
) -> Option<Drained> {
    pipe.map(|mut pipe| {
        let held = Arc::new(std::sync::Mutex::new(Vec::new()));
        let holder = Arc::clone(&held);
        let printed = Arc::new(AtomicBool::new(false));
        let printing = Arc::clone(&printed);
        let reader = std::thread::spawn(move || {
            let is_live = || live.as_ref().is_some_and(|l| l.load(Ordering::Acquire));
            let mut chunk = [0u8; 8192];
            loop {
                let read = match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(read) => read,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let mut held = holder
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                held.extend_from_slice(&chunk[..read]);
                printing.store(true, Ordering::Release);
                if is_live() {
                    let _ = std::io::stderr().write_all(&std::mem::take(&mut *held));
                }
            }
        });
        Drained {
            held,
            printed,
            reader,
        }
    })
}

/// Niceness of [`in_background`] work: the program's own threads, and the builds the user
/// asked for, come first when they compete for the cores (CFS weights nice 10 at about a
/// tenth of nice 0; `setpriority(2)`).
const BACKGROUND_NICENESS: i32 = 10;

/// Runs `work` on a thread of its own at a lower priority ([`BACKGROUND_NICENESS`]) and waits
/// for it: for work done on the tool's initiative while the program starts (reading the host's
/// debug info). The processes it starts inherit the priority; the calling
/// thread keeps its own (an unprivileged process cannot raise a priority it lowered).
///
/// # Panics
///
/// When `work` panics (the panic goes on in the caller).
pub(crate) fn in_background<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            lower_own_priority();
            work()
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Starts `work` on a thread of its own named `name`, at a lower priority
/// ([`BACKGROUND_NICENESS`]), without waiting for it: for work done ahead of the time it is
/// needed, while the session is idle.
///
/// # Errors
///
/// When the thread cannot be started.
pub(crate) fn spawn_background<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_own_priority();
            work()
        })
}

/// Lowers the calling thread's priority to [`BACKGROUND_NICENESS`].
fn lower_own_priority() {
    // SAFETY: `gettid` has no preconditions.
    let tid = unsafe { libc::gettid() };
    lower_priority(tid.cast_unsigned(), BACKGROUND_NICENESS);
}

/// Sets the niceness of the thread `id` (Linux gives each thread its own; a process's id is its
/// main thread's) to `niceness` (`setpriority(2)`): a failure, or a thread that is gone, leaves
/// things as they were.
pub(crate) fn lower_priority(id: libc::id_t, niceness: i32) {
    // SAFETY: `setpriority` takes no pointers.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, id, niceness);
    }
}

/// A path as a command-line argument.
pub(crate) fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// This executable, which rustc calls as linker wrapper and cargo as rustc wrapper. When a new
/// build or install replaced the file while this process runs, the kernel still serves the
/// running one as `/proc/<pid>/exe`, which then stands for it (the wrappers must be this
/// version, which built the host).
pub(crate) fn self_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the cargo-hotswap executable")?;
    if exe.as_os_str().to_string_lossy().ends_with(" (deleted)") {
        return Ok(PathBuf::from(format!("/proc/{}/exe", std::process::id())));
    }
    Ok(exe)
}
