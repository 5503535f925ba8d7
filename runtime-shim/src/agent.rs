//! The agent: a thread in the host that receives patches from `cargo hotswap run`, loads them and
//! swaps the slots. Exists only with the `enabled` feature, and starts only when the tool's
//! environment variable names a socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

use crate::protocol::{self, HostMessage, ToolMessage};
use crate::slot::Slot;

/// Runs [`start`] before `main`, so that the program is patchable from its first line.
///
/// The host is linked with this crate's rlib whole (`--whole-archive`), so this entry of
/// `.init_array` is kept even though nothing refers to it.
#[used]
#[unsafe(link_section = ".init_array")]
static START: extern "C" fn() = start;

/// Starts the agent thread if `cargo hotswap run` launched this process; otherwise does nothing.
extern "C" fn start() {
    let Some(socket) = std::env::var_os(protocol::SOCKET_ENV) else {
        return;
    };
    let build_id = std::env::var(protocol::BUILD_ID_ENV).unwrap_or_default();
    let spawned = std::thread::Builder::new()
        .name("hotswap-agent".into())
        .spawn(move || {
            if let Err(err) = serve(Path::new(&socket), &build_id) {
                eprintln!(
                    "hotswap: the agent stopped: {err}; edits are no longer applied to this process"
                );
            }
        });
    if let Err(err) = spawned {
        eprintln!("hotswap: cannot start the agent thread: {err}; edits will not be applied");
    }
}

/// Connects to the tool, says hello, then applies patches until the tool hangs up.
fn serve(socket: &Path, build_id: &str) -> std::io::Result<()> {
    let stream = UnixStream::connect(socket).map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!("cannot connect to `{}`: {err}", socket.display()),
        )
    })?;
    let mut writer = stream.try_clone()?;
    let hello = HostMessage::Hello {
        pid: std::process::id(),
        build_id: build_id.to_owned(),
    };
    writer.write_all(hello.encode().as_bytes())?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let answer = match ToolMessage::decode(&line) {
            Ok(ToolMessage::Patch {
                patch_id,
                build_id: patch_build,
                path,
                functions,
            }) => {
                let started = Instant::now();
                if patch_build != build_id {
                    HostMessage::Failed {
                        patch_id,
                        reason: format!(
                            "the patch was built for host build `{patch_build}`, this process \
                             runs build `{build_id}`"
                        ),
                    }
                } else {
                    match apply(&path, &functions) {
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
            }
            Err(err) => {
                eprintln!("hotswap: ignoring a message from cargo-hotswap: {err}");
                continue;
            }
        };
        writer.write_all(answer.encode().as_bytes())?;
    }
    Ok(())
}

/// Loads the patch at `path` and points the slots of `functions` at its bodies; returns the new
/// generation. Resolves every symbol before storing any, so a failure changes nothing.
fn apply(path: &Path, functions: &[String]) -> Result<u64, String> {
    // SAFETY: loading runs the patch's initialisers. The patch is the user's own crate compiled
    // by cargo-hotswap and checked before it was sent; its initialisers are the same as the
    // host's. RTLD_LOCAL keeps its symbols from interposing on anything loaded later.
    let patch = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
        .map_err(|err| format!("cannot load `{}`: {err}", path.display()))?;
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
        swaps.push((slot, body.cast::<()>().cast_const()));
    }
    for (slot, body) in swaps {
        // SAFETY: `slot` points to a live `Slot` (see above); `body` is the same hot function's
        // body from a patch that is never unloaded (the library is leaked below).
        unsafe { (*slot).set(body) };
    }
    // Never `dlclose`: trait objects, closures, thread-local destructors and code still running
    // may point into any version.
    std::mem::forget(patch);
    Ok(crate::GENERATION.fetch_add(1, Ordering::AcqRel) + 1)
}
