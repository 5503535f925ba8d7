//! The agent: a thread in the host that receives patches from `cargo hotswap run`, loads them and
//! has them applied (see `table`). Linked only into the executable that cargo-hotswap links, whose
//! generated `main` calls [`start`]; it starts only when the tool's environment variable names a
//! socket.

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

use crate::control::{self, ApplyMode};
use crate::protocol::{self, Bind, HostMessage, LineError, Redirect, ToolMessage};
#[cfg(target_arch = "x86_64")]
use crate::redirect::{self, Entry};
use crate::slot::Slot;
use crate::table::{self, Batch, Swap};

/// How long a patch waits for `hotswap::safepoint()` in [`ApplyMode::SafePoints`]; shorter than
/// the tool's wait for an answer, so that the tool hears why.
const SAFEPOINT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a redirection waits for the program's threads to stop, and separately for none of
/// them to be inside an entry's first bytes; shorter than the tool's wait for an answer.
const REDIRECT_BOUND: Duration = Duration::from_secs(2);

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
                redirects,
                binds,
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
                let applied = checked.and_then(|file| {
                    let entries = Entries {
                        redirects: &redirects,
                        binds: &binds,
                    };
                    apply(file, patch_id, &functions, entries, changed)
                });
                match applied {
                    Ok((generation, redirected)) => HostMessage::Applied {
                        patch_id,
                        generation,
                        load_micros: u64::try_from(started.elapsed().as_micros())
                            .unwrap_or(u64::MAX),
                        pause_micros: redirected.map_or(0, |pause| {
                            u64::try_from(pause.as_micros()).unwrap_or(u64::MAX)
                        }),
                        redirected: redirects.len() as u64,
                        functions,
                    },
                    Err(reason) => HostMessage::Failed { patch_id, reason },
                }
            }
            // A patch this agent cannot read (a runtime of another version than the tool's):
            // the tool waits for an answer.
            Err(err) if line.starts_with("patch\t") => {
                let patch_id = line.split('\t').nth(1).and_then(|id| id.parse().ok());
                let Some(patch_id) = patch_id else {
                    eprintln!("hotswap: ignoring a message from cargo-hotswap: {err}");
                    continue;
                };
                HostMessage::Failed {
                    patch_id,
                    reason: format!(
                        "it cannot read the patch message (is its cargo-hotswap-runtime {} \
                         the version of cargo-hotswap?)",
                        env!("CARGO_PKG_VERSION")
                    ),
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

/// What a patch changes besides slots: the running program's function entries that jump into
/// it, and its GOT entries that point at the running program's statics.
#[derive(Clone, Copy)]
struct Entries<'a> {
    redirects: &'a [Redirect],
    binds: &'a [Bind],
}

/// Loads the patch open as `file` (the tool's patch `patch_id`), points its GOT entries of
/// `entries` at the running program's statics, redirects the function entries of `entries`
/// into it at once, and has the slots of `functions` pointed at its bodies, now or at the next
/// safe point; returns the new generation and what the redirection cost. Resolves every symbol
/// and checks every entry before writing any, so a failure changes nothing in the running
/// code (the patch stays loaded, unused).
fn apply(
    file: File,
    patch_id: u64,
    functions: &[String],
    entries: Entries<'_>,
    changed: Vec<String>,
) -> Result<(u64, Option<Duration>), String> {
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
    // may point into any version. Leaked before any slot or entry points into it.
    let patch_map = link_map(patch.into_raw())?;
    MODULES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((patch_id, patch_map as usize));
    // Before any of the patch's code can run (the loader ran no code of the crate's own: Rust
    // statics need no initialiser).
    bind_statics(patch_map, entries.binds)?;
    let redirected = if entries.redirects.is_empty() {
        None
    } else if control::apply_mode() == ApplyMode::SafePoints {
        // A redirection takes effect at once, for every thread: it would not wait for the
        // safe point the program asked for.
        return Err(
            "the program applies patches at safe points (`hotswap::set_apply_mode`), \
                    which entry redirection does not wait for; run without `--redirect`"
                .to_owned(),
        );
    } else {
        Some(redirect_into(patch_map, entries.redirects)?)
    };
    let batch = Batch { swaps, changed };
    let generation = match control::apply_mode() {
        ApplyMode::Immediate => table::apply_now(batch),
        ApplyMode::SafePoints => table::apply_at_safepoint(batch, SAFEPOINT_TIMEOUT)?,
    };
    Ok((generation, redirected))
}

/// The start of glibc's `struct link_map` (`<link.h>`): the module's load bias, which added to
/// an address of its file gives the address in memory.
#[repr(C)]
struct LinkMap {
    l_addr: usize,
}

/// `dladdr1`'s request for the link map of the module holding an address (glibc's `<dlfcn.h>`).
const RTLD_DL_LINKMAP: libc::c_int = 2;

/// The modules whose entries a patch may redirect: (patch id, link map address), the
/// executable as 0 (added at its first use).
static MODULES: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());

/// The entries redirected so far (addresses in memory): they hold a jump, not their file's bytes.
static REDIRECTED: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

/// The link map of the module loaded as `handle` (a `dlopen` handle).
fn link_map(handle: *mut c_void) -> Result<*const LinkMap, String> {
    let mut map: *mut c_void = std::ptr::null_mut();
    // SAFETY: `handle` is a live `dlopen` handle (never closed); `RTLD_DI_LINKMAP` stores one
    // pointer into `map`.
    let failed = unsafe {
        libc::dlinfo(
            handle,
            libc::RTLD_DI_LINKMAP,
            (&raw mut map).cast::<c_void>(),
        )
    } != 0;
    if failed || map.is_null() {
        return Err("the loader does not tell where the patch is loaded".to_owned());
    }
    Ok(map.cast::<LinkMap>().cast_const())
}

/// Whether `address` lies in a loaded segment of the module whose link map is `map`.
fn inside(map: *const LinkMap, address: usize) -> bool {
    // SAFETY: `Dl_info` is plain data, valid zeroed.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut found: *mut c_void = std::ptr::null_mut();
    // SAFETY: `dladdr1` only looks `address` up among the loaded modules' segments (it never
    // reads it) and writes `info` and one pointer into `found`.
    let known = unsafe {
        libc::dladdr1(
            address as *const c_void,
            &mut info,
            &mut found,
            RTLD_DL_LINKMAP,
        )
    } != 0;
    known && std::ptr::eq(found.cast_const().cast::<LinkMap>(), map)
}

/// Whether memory at `address` holds `bytes`, every byte of it in a loaded segment of `map`.
fn holds(map: *const LinkMap, address: usize, bytes: &[u8]) -> bool {
    if bytes.is_empty() || !inside(map, address) || !inside(map, address + bytes.len() - 1) {
        return false;
    }
    // SAFETY: both ends lie in one module's loaded segments (checked above), which are mapped
    // readable for the process's life (modules are never unloaded).
    let memory = unsafe { std::slice::from_raw_parts(address as *const u8, bytes.len()) };
    memory == bytes
}

/// The link map of the module `from` (0: the executable, else a loaded patch's id).
fn module(from: u64) -> Result<*const LinkMap, String> {
    let mut modules = MODULES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&(_, map)) = modules.iter().find(|(id, _)| *id == from) {
        return Ok(map as *const LinkMap);
    }
    if from != 0 {
        return Err(format!("patch {from} is not loaded in this process"));
    }
    // The executable's, looked up once: each `dlopen(NULL)` takes a reference that is never
    // given back.
    let map = link_map(Library::this().into_raw())?;
    modules.push((0, map as usize));
    Ok(map)
}

/// Points the GOT entries of `binds` in the patch whose link map is `patch` at the running
/// program's statics, after checking each (the entry lies in the patch and holds the patch's
/// own static, the static lies in its module). The GOT is read-only once loaded (RELRO): each
/// page is made writable for the store, then read-only again.
fn bind_statics(patch: *const LinkMap, binds: &[Bind]) -> Result<(), String> {
    let mut stores = Vec::with_capacity(binds.len());
    // SAFETY: `patch` is the link map of a loaded module, never unloaded.
    let patch_bias = unsafe { (*patch).l_addr };
    for (n, bind) in binds.iter().enumerate() {
        let from = module(bind.from)?;
        // SAFETY: as above, for `from`.
        let from_bias = unsafe { (*from).l_addr };
        let at = |base: usize, offset: u64| usize::try_from(offset).ok()?.checked_add(base);
        let (Some(slot), Some(value), Some(target), Ok(size)) = (
            at(patch_bias, bind.slot),
            at(patch_bias, bind.value),
            at(from_bias, bind.at),
            usize::try_from(bind.size),
        ) else {
            return Err(format!("static {n} of the patch is out of range"));
        };
        if !holds(patch, slot, &value.to_ne_bytes()) {
            return Err(format!(
                "static {n} of the patch: its GOT entry at {:#x} does not hold the address \
                 cargo-hotswap read",
                bind.slot
            ));
        }
        if size == 0 || !inside(from, target) || !inside(from, target + size - 1) {
            return Err(format!(
                "static {n} of the patch: {:#x} is not a static of the running program",
                bind.at
            ));
        }
        stores.push((slot, target));
    }
    let page = page_size();
    for (slot, target) in stores {
        let start = slot & !(page - 1);
        let pages = (slot + std::mem::size_of::<usize>()).div_ceil(page) * page - start;
        // SAFETY: `start..start + pages` are whole pages of the patch's GOT (checked above to
        // lie in its loaded segments); making them writable and back read-only changes nothing
        // else.
        let writable = unsafe {
            libc::mprotect(
                start as *mut c_void,
                pages,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if writable != 0 {
            return Err(format!(
                "cannot make the patch's GOT writable: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: the slot is an aligned GOT entry of the patch (the loader stored an address
        // there), writable now; no code of the patch runs yet.
        unsafe { std::ptr::write_volatile(slot as *mut usize, target) };
        // SAFETY: as above.
        unsafe { libc::mprotect(start as *mut c_void, pages, libc::PROT_READ) };
    }
    Ok(())
}

/// The system's page size, in bytes.
fn page_size() -> usize {
    // SAFETY: `sysconf` reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Entry redirection is written for x86_64 only.
#[cfg(not(target_arch = "x86_64"))]
fn redirect_into(_: *const LinkMap, _: &[Redirect]) -> Result<Duration, String> {
    Err("entry redirection is supported on x86_64 only".to_owned())
}

/// Redirects the entries of `redirects` into the patch whose link map is `patch`, after
/// checking each (its module is loaded, both addresses lie in it, and memory holds the bytes
/// the tool read from the files, or a jump an earlier redirection wrote); returns how long the
/// program's other threads were stopped.
#[cfg(target_arch = "x86_64")]
fn redirect_into(patch: *const LinkMap, redirects: &[Redirect]) -> Result<Duration, String> {
    let mut redirected = REDIRECTED.lock().unwrap_or_else(PoisonError::into_inner);
    let mut entries = Vec::with_capacity(redirects.len());
    for (n, r) in redirects.iter().enumerate() {
        let from = module(r.from)?;
        // A thread-local's accessor in the patch goes to the running program's (`into`).
        let target = match r.into {
            Some(into) => module(into)?,
            None => patch,
        };
        // SAFETY: `from` and `target` are link maps of loaded modules, never unloaded.
        let (from_bias, patch_bias) = unsafe { ((*from).l_addr, (*target).l_addr) };
        let at = usize::try_from(r.at)
            .ok()
            .and_then(|at| at.checked_add(from_bias));
        let to = usize::try_from(r.to)
            .ok()
            .and_then(|to| to.checked_add(patch_bias));
        let (Some(at), Some(to), Ok(size)) = (at, to, usize::try_from(r.size)) else {
            return Err(format!("entry {n} of the patch is out of range"));
        };
        let end_inside = size > 0 && inside(from, at + size - 1);
        let entry_ok = end_inside && (redirected.contains(&at) || holds(from, at, &r.at_bytes));
        if !entry_ok {
            return Err(format!(
                "entry {n} of the patch ({:#x} in {}) does not hold the code cargo-hotswap read",
                r.at,
                if r.from == 0 {
                    "the executable".to_owned()
                } else {
                    format!("patch {}", r.from)
                }
            ));
        }
        if !holds(target, to, &r.to_bytes) {
            return Err(format!(
                "entry {n} of the patch: its new body at {:#x} does not hold the code \
                 cargo-hotswap read",
                r.to
            ));
        }
        entries.push(Entry {
            at,
            size,
            to,
            again: redirected.contains(&at),
        });
    }
    // SAFETY: each entry starts a function of this process (its module's symbol table gave it,
    // and memory holds its bytes or the jump written there before), and each target is the
    // patch's body of the same function, compiled from the same signature by the gate's rules,
    // or (a thread-local's accessor in the patch) the running program's own function of the same
    // symbol; no module is ever unloaded.
    let done = unsafe { redirect::redirect(&entries, REDIRECT_BOUND) }
        .map_err(|err| format!("cannot redirect the changed functions: {err}"))?;
    redirected.extend(entries.iter().map(|entry| entry.at));
    Ok(done.pause)
}
