//! The agent: a thread in the host that receives patches from `cargo hotswap run`, loads them and
//! has them applied (see `table`). Linked only into the executable that cargo-hotswap links, whose
//! generated `main` calls [`start`]; it starts only when the tool's environment variable names a
//! socket.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

use crate::control::{self, ApplyMode};
use crate::protocol::{self, HostMessage, LineError, ToolMessage};
use crate::slot::Slot;
use crate::table::{self, Batch, Swap};

/// How long a patch waits for `hotswap::safepoint()` in [`ApplyMode::SafePoints`]; shorter than
/// the tool's wait for an answer, so that the tool hears why.
const SAFEPOINT_TIMEOUT: Duration = Duration::from_secs(20);

/// The connection to the tool, shared by the agent's answers and the reports of other threads
/// (a panic on the first call of new code).
static TOOL: Mutex<Option<UnixStream>> = Mutex::new(None);

/// Sends `message` to the tool, if connected; a failure to send is reported on stderr.
pub(crate) fn send(message: &HostMessage) {
    let mut tool = TOOL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(stream) = tool.as_mut()
        && let Err(err) = stream.write_all(message.encode().as_bytes())
    {
        eprintln!("hotswap: cannot report to cargo-hotswap: {err}");
        *tool = None;
    }
}

/// Starts the agent thread if `cargo hotswap run` launched this process; otherwise does nothing.
/// Removes the tool's variables from the environment first, so that no child of the program
/// inherits them (and connects, or is taken for the program).
///
/// Called only by the executable that cargo-hotswap links (the host), from an `.init_array`
/// entry of its generated `main`, so that the program is patchable from its first line: a plain
/// build never refers to it, and the linker leaves the agent out.
///
/// # Safety
///
/// Must run before the program starts any thread (it removes environment variables), as an
/// `.init_array` entry does.
pub unsafe fn start() {
    let Some(socket) = std::env::var_os(protocol::SOCKET_ENV) else {
        return;
    };
    let build_id = std::env::var(protocol::BUILD_ID_ENV).unwrap_or_default();
    let patch_dir = std::env::var_os(protocol::PATCH_DIR_ENV).map(PathBuf::from);
    for name in [
        protocol::SOCKET_ENV,
        protocol::BUILD_ID_ENV,
        protocol::PATCH_DIR_ENV,
    ] {
        // SAFETY: the caller runs this before the program starts any thread (the contract of
        // `start`), so nothing else reads or writes the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    let spawned = std::thread::Builder::new()
        .name("hotswap-agent".into())
        .spawn(move || {
            if let Err(err) = serve(Path::new(&socket), &build_id, patch_dir.as_deref()) {
                eprintln!(
                    "hotswap: the agent stopped: {err}; edits are no longer applied to this process"
                );
            }
        });
    if let Err(err) = spawned {
        eprintln!("hotswap: cannot start the agent thread: {err}; edits will not be applied");
    }
}

/// Connects to the tool (refusing a socket that another user serves), says hello, then applies
/// patches until the tool hangs up. A malformed message is dropped; the next one is read.
fn serve(socket: &Path, build_id: &str, patch_dir: Option<&Path>) -> std::io::Result<()> {
    let stream = UnixStream::connect(socket).map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!("cannot connect to `{}`: {err}", socket.display()),
        )
    })?;
    let (_, uid) = protocol::peer(&stream)?;
    if uid != protocol::own_uid() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "`{}` is served by user {uid}, not by this process's user",
                socket.display()
            ),
        ));
    }
    let mut writer = stream.try_clone()?;
    let hello = HostMessage::Hello {
        pid: std::process::id(),
        build_id: build_id.to_owned(),
    };
    writer.write_all(hello.encode().as_bytes())?;
    *TOOL.lock().unwrap_or_else(PoisonError::into_inner) = Some(writer);
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        match protocol::read_line(&mut reader, &mut line) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(LineError::Io(err)) => return Err(err),
            Err(err) => {
                eprintln!("hotswap: ignoring a message from cargo-hotswap: {err}");
                continue;
            }
        }
        let answer = match ToolMessage::decode(&line) {
            Ok(ToolMessage::Patch {
                patch_id,
                build_id: patch_build,
                path,
                digest,
                functions,
                changed,
            }) => {
                let started = Instant::now();
                let checked = if patch_build == build_id {
                    open_checked(&path, patch_dir, digest)
                } else {
                    Err(format!(
                        "the patch was built for host build `{patch_build}`, this process runs \
                         build `{build_id}`"
                    ))
                };
                match checked.and_then(|file| apply(file, &functions, changed)) {
                    Ok(generation) => HostMessage::Applied {
                        patch_id,
                        generation,
                        load_micros: u64::try_from(started.elapsed().as_micros())
                            .unwrap_or(u64::MAX),
                        functions,
                    },
                    Err(reason) => HostMessage::Failed { patch_id, reason },
                }
            }
            Err(err) => {
                eprintln!("hotswap: ignoring a message from cargo-hotswap: {err}");
                continue;
            }
        };
        send(&answer);
    }
}

/// Opens the patch at `path` for loading, if it may be loaded: a regular file (not a symlink)
/// of this process's user, directly in the session's directory `patch_dir`, which no other user
/// can write, whose bytes have the `digest` the tool sent for what it checked. The file stays
/// open, so that what is loaded (through `/proc/self/fd`) is what was read here.
fn open_checked(path: &Path, patch_dir: Option<&Path>, digest: u64) -> Result<File, String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let refuse = |why: &str| Err(format!("refusing to load `{}`: {why}", path.display()));
    let Some(dir) = patch_dir else {
        return refuse("the session's directory is not known");
    };
    if path.parent() != Some(dir) {
        return refuse("it is outside the session's directory");
    }
    let uid = protocol::own_uid();
    let dir_ok = std::fs::symlink_metadata(dir).is_ok_and(|meta| {
        meta.file_type().is_dir() && meta.uid() == uid && meta.mode() & 0o022 == 0
    });
    if !dir_ok {
        return refuse("the session's directory is not private to this user");
    }
    let Ok(mut file) = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    else {
        return refuse("it cannot be opened (or is a symlink)");
    };
    if !file
        .metadata()
        .is_ok_and(|meta| meta.file_type().is_file() && meta.uid() == uid)
    {
        return refuse("it is not a regular file of this user");
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() || protocol::digest(&bytes) != digest {
        return refuse("its bytes are not those cargo-hotswap checked");
    }
    Ok(file)
}

/// Loads the patch open as `file` and has the slots of `functions` pointed at its bodies, now or
/// at the next safe point; returns the new generation. Resolves every symbol before storing any,
/// so a failure changes nothing.
fn apply(file: File, functions: &[String], changed: Vec<String>) -> Result<u64, String> {
    // The open file itself, whatever its name points to now.
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    // SAFETY: loading runs the patch's initialisers. The patch is the user's own crate compiled
    // by cargo-hotswap and checked before it was sent; its initialisers are the same as the
    // host's. RTLD_LOCAL keeps its symbols from interposing on anything loaded later.
    let patch = unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_LOCAL) }
        .map_err(|err| format!("cannot load `{}`: {err}", path.display()))?;
    // The loader knows the library by that name, and returns the library already loaded for a
    // name it has seen: the descriptor stays open for the process's life (like the mapping; a
    // patch is never unloaded), so that its number, and the next patch's name, is never reused.
    std::mem::forget(file);
    let this = Library::this();
    let mut swaps = Vec::with_capacity(functions.len());
    for function in functions {
        let impl_symbol = protocol::impl_symbol(function);
        // SAFETY: the symbol is only turned into an address here; it is called through the slot,
        // whose dispatcher has the matching signature.
        let body = unsafe { patch.get::<*const ()>(impl_symbol.as_bytes()) }
            .map_err(|err| format!("the patch lacks hot function `{function}`: {err}"))?
            .into_raw();
        let slot_symbol = protocol::slot_symbol(function);
        // SAFETY: a symbol named `__hotswap_slot$…` is always a `Slot` static emitted by
        // `#[hot]` in this program, which lives for the whole process.
        let slot = unsafe { this.get::<*const Slot>(slot_symbol.as_bytes()) }
            .map_err(|err| {
                format!(
                    "hot function `{function}` is new: the running program has no slot for it \
                     ({err}); restart to use it"
                )
            })?
            .into_raw()
            .cast::<Slot>();
        // SAFETY: `slot` points to a `Slot` static of this program (see above), which lives
        // for the whole process.
        let slot: &'static Slot = unsafe { &*slot };
        swaps.push(Swap {
            slot,
            body: body.cast::<()>().cast_const(),
        });
    }
    // Never `dlclose`: trait objects, closures, thread-local destructors and code still running
    // may point into any version. Leaked before any slot points into it.
    std::mem::forget(patch);
    let batch = Batch { swaps, changed };
    match control::apply_mode() {
        ApplyMode::Immediate => Ok(table::apply_now(batch)),
        ApplyMode::SafePoints => table::apply_at_safepoint(batch, SAFEPOINT_TIMEOUT),
    }
}
