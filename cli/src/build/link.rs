//! The linker wrapper, in host mode and patch mode.
//!
//! rustc calls this executable as its linker (`-C linker=`) for the two links cargo-hotswap makes
//! itself; it rewrites the arguments and calls the real linker: the user's configured one, or `cc`.
//!
//! * Host mode: every rlib (the user's crate, all its dependencies, and the standard library's
//!   crates, whose non-generic functions a patch may call first: `HashMap`'s growth, say) is
//!   wrapped in `-Wl,--whole-archive … -Wl,--no-whole-archive` in place, and `-rdynamic` is
//!   added, so the host contains and exports every symbol a later patch may need. Only
//!   `compiler_builtins` is left as it is: its symbols are weak intrinsics every object may
//!   define.
//! * Patch mode: only the crate's own objects are linked, and the rlibs of the local library
//!   crates the patch rebuilt (whole, or the objects of them that differ: see [`super::thin`]). Every other `.rlib`, rustc's `symbols.o` and the
//!   allocator shim are dropped; references to them stay undefined (`-z undefs` is the default
//!   for `-shared`) and bind to the host when the patch is loaded. Of the crate's objects, only
//!   those of the codegen units the edit compiled again, and what their code needs, are linked
//!   (see [`super::thin`]); under entry redirection their references to the crate's statics
//!   are made to go through the GOT (see [`super::statics`]).

use std::path::Path;
use std::process::{Command, ExitCode};

/// The linker to call in the end (absolute path or a name on `PATH`).
pub(crate) const REAL_LINKER_ENV: &str = "HOTSWAP_REAL_LINKER";
/// `-v`: a file to write the final linker command line to (rustc hides the linker's output).
pub(crate) const LOG_ENV: &str = "HOTSWAP_LINK_LOG";
/// Patch mode: a directory to copy the crate's own objects into, for the gate to read (rustc
/// deletes them after the link).
pub(crate) const OBJECTS_DIR_ENV: &str = "HOTSWAP_OBJECTS_DIR";
/// Patch mode: the file names of the rlibs the patch rebuilt (local library crates), one per
/// line: they are linked whole, while every other rlib is left to the host.
pub(crate) const PATCH_RLIBS_ENV: &str = "HOTSWAP_PATCH_RLIBS";
/// Patch mode: set when the patch keeps every function of its objects (entry redirection
/// jumps to any of them), not only what its exported hot functions reach.
pub(crate) const KEEP_CODE_ENV: &str = "HOTSWAP_KEEP_CODE";

/// Patch mode: the number of an inherited file descriptor, the write end of a pipe, to which
/// the wrapper writes one byte once the crate's objects are kept in [`OBJECTS_DIR_ENV`]'s
/// directory (and closes): the session reads them for the code index while the patch links.
pub(crate) const OBJECTS_KEPT_FD_ENV: &str = "HOTSWAP_OBJECTS_KEPT_FD";
/// Patch mode: the number of an inherited file descriptor, the write end of a pipe, to which
/// the wrapper writes [`crate::process::DONE`] once the real linker has written the patch
/// without a word of output (see [`link_and_tell`]): the session goes on without waiting for
/// rustc's end.
pub(crate) const PATCH_LINKED_FD_ENV: &str = "HOTSWAP_PATCH_LINKED_FD";

/// Host mode: where to write the copy of rustc's allocator shim whose definitions are weak (see
/// [`weak_allocator_shim`]).
pub(crate) const ALLOCATOR_SHIM_COPY_ENV: &str = "HOTSWAP_ALLOCATOR_SHIM_COPY";

/// Patch mode: the file, beside the objects directory, that names the codegen unit of rustc's
/// allocator shim at the last link (see [`allocator_shim`]).
const ALLOCATOR_SHIM_UNIT: &str = "allocator-shim-unit";

/// Which link this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The host executable: whole, exporting everything.
    Host,
    /// A patch cdylib: the crate's own objects only.
    Patch,
}

/// Entry point in a linker role: rewrites the arguments for `mode` and runs the real linker.
pub(crate) fn linker_main(mode: Mode) -> ExitCode {
    let args: Vec<Vec<String>> = match std::env::args().skip(1).map(expand_response_file).collect()
    {
        Ok(args) => args,
        Err(err) => {
            eprintln!("error: cargo-hotswap linker wrapper: {err}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = args.into_iter().flatten().collect();
    let mut args = args;
    if mode == Mode::Host
        && let Some(dir) = std::env::var_os(super::thin::HOST_LIBS_DIR_ENV)
        && let Some(captures) = std::env::var_os(super::capture::CAPTURE_LIBS_DIR_ENV)
    {
        match super::thin::keep_host_libs(args.clone(), Path::new(&dir), Path::new(&captures)) {
            Ok(copies) => args = copies,
            Err(err) => {
                // Not fatal: the host links cargo's rlibs, and patches link the library
                // crates they rebuild whole (each of their symbols counts as changed).
                let _ = std::fs::remove_dir_all(&dir);
                eprintln!("warning: cargo-hotswap linker wrapper: {err:#}");
            }
        }
    }
    if mode == Mode::Host
        && let Some(copy) = std::env::var_os(ALLOCATOR_SHIM_COPY_ENV)
    {
        match weak_allocator_shim(args.clone(), Path::new(&copy)) {
            Ok(weak) => args = weak,
            Err(err) => {
                eprintln!("error: cargo-hotswap linker wrapper: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let args = match mode {
        Mode::Host => host_args(args),
        Mode::Patch => patch_args(args, &std::env::var(PATCH_RLIBS_ENV).unwrap_or_default()),
    };
    let mut args = args;
    if mode == Mode::Patch
        && let Some(dir) = std::env::var_os(OBJECTS_DIR_ENV)
    {
        // The objects as rustc wrote them are kept (the code index compares them); the patch
        // links those of them that it needs, some as rewritten copies (see `thin`).
        let dir = Path::new(&dir);
        // Only what changed (see `thin`); under redirection, with its statics shared.
        let kept = keep_objects(&args, dir);
        if kept.is_ok() {
            tell_objects_kept();
        }
        let shared = kept.and_then(|()| {
            let redirected = std::env::var_os(KEEP_CODE_ENV).is_some();
            let thin = match std::env::var_os(super::thin::HOST_EXE_ENV) {
                Some(host) => super::thin::thin(
                    args.clone(),
                    dir,
                    Path::new(&host),
                    &dir.with_file_name("thin-objects"),
                    !redirected,
                )?,
                None => args.clone(),
            };
            if redirected {
                super::statics::share(thin, &shared_objects_dir(dir))
            } else {
                Ok(thin)
            }
        });
        match shared {
            Ok(shared) => args = shared,
            Err(err) => {
                eprintln!("error: cargo-hotswap linker wrapper: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let linker = std::env::var_os(REAL_LINKER_ENV).unwrap_or_else(|| "cc".into());
    let mut command = Command::new(linker);
    command
        .args(&args)
        .env_remove(crate::ROLE_ENV)
        .env_remove(OBJECTS_KEPT_FD_ENV)
        .env_remove(PATCH_LINKED_FD_ENV);
    if let Some(log) = std::env::var_os(LOG_ENV) {
        // Best effort: `-v` output only.
        let _ = std::fs::write(log, crate::process::command_line(&command));
    }
    match (mode == Mode::Patch)
        .then(|| inherited_pipe(PATCH_LINKED_FD_ENV))
        .flatten()
    {
        Some(linked) => link_and_tell(command, linked),
        None => crate::build::capture::exec(command),
    }
}

/// Runs the real linker `command`, passes what it printed on, and writes
/// [`crate::process::DONE`] to `linked` when it succeeded without printing anything: rustc
/// then has nothing left to do that the session waits for. A linker that printed something
/// gets no word: rustc reports its output after the link (the `linker_messages` lint, which a
/// crate may deny, failing the build), and the session waits for rustc's end.
fn link_and_tell(mut command: Command, mut linked: std::fs::File) -> ExitCode {
    use std::io::Write;
    let output = match command.output() {
        Ok(output) => output,
        Err(err) => return crate::build::capture::cannot_run(&command, &err),
    };
    let _ = std::io::stdout().write_all(&output.stdout);
    let _ = std::io::stderr().write_all(&output.stderr);
    if output.status.success() && output.stdout.is_empty() && output.stderr.is_empty() {
        let _ = linked.write_all(&[crate::process::DONE]);
    }
    crate::build::capture::exit_code(output.status)
}

/// Host mode: whole-archive every rlib but `compiler_builtins` in place, export everything. (The
/// local library crates' rlibs are copies by then: see [`super::thin::keep_host_libs`].)
fn host_args(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 64);
    for arg in args {
        let whole = arg.ends_with(".rlib")
            && !Path::new(&arg)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libcompiler_builtins-"));
        if whole {
            out.push("-Wl,--whole-archive".to_owned());
            out.push(arg);
            out.push("-Wl,--no-whole-archive".to_owned());
        } else {
            out.push(arg);
        }
    }
    out.push("-rdynamic".to_owned());
    out
}

/// Host mode: `args` with rustc's allocator shim replaced by a copy at `copy` whose
/// definitions are weak (see [`super::thin::weak_definitions`]); `args` as they are without a
/// shim.
///
/// rustc links the host's shim crate, which names the bin crate's rlib as a native library
/// (see [`super::compile`]), so it does not know that the bin crate may define the global
/// allocator (`#[global_allocator]`): the allocator shim it adds then defines `__rust_alloc`
/// and the like as well as the rlib, and the link failed with duplicate symbols. Weak, the
/// shim's definitions give way to the crate's, and serve when the crate has none. The copy is
/// written because the object may be a hard link into rustc's incremental cache.
///
/// # Errors
///
/// When the shim cannot be read or the copy written; the message names the file.
fn weak_allocator_shim(mut args: Vec<String>, copy: &Path) -> Result<Vec<String>, String> {
    let Some(shim) = allocator_shim(&args, None).map(str::to_owned) else {
        return Ok(args);
    };
    let bytes = std::fs::read(&shim).map_err(|err| format!("cannot read `{shim}`: {err}"))?;
    let weak = super::thin::weak_definitions(&bytes)
        .map_err(|err| format!("malformed allocator shim `{shim}`: {err}"))?;
    super::capture::write_private(copy, &weak).map_err(|err| format!("{err:#}"))?;
    for arg in &mut args {
        if *arg == shim {
            *arg = copy.display().to_string();
        }
    }
    Ok(args)
}

/// The object among `args` that is rustc's allocator shim (see
/// [`crate::symbols::is_allocator_shim`]), if any. rustc makes one per link, in a codegen unit
/// whose name is the same from one build to the next: the objects are asked in turn until it is
/// found, first that of the codegen unit named in the file `remembered` (the last link's), which
/// is written when another is found. Reading every object took 20 ms of each link of the medium
/// benchmark fixture's 256.
fn allocator_shim<'a>(args: &'a [String], remembered: Option<&Path>) -> Option<&'a str> {
    let unit_of = |arg: &str| {
        let name = Path::new(arg)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        super::thin::codegen_unit(name).to_owned()
    };
    let last = remembered.and_then(|path| std::fs::read_to_string(path).ok());
    let (first, others): (Vec<&String>, Vec<&String>) = args
        .iter()
        .filter(|arg| arg.ends_with(".o") && !arg.starts_with('-'))
        .partition(|arg| last.as_deref() == Some(unit_of(arg).as_str()));
    let shim = first
        .into_iter()
        .chain(others)
        .find(|arg| crate::symbols::is_allocator_shim(Path::new(arg)))?;
    if let Some(path) = remembered
        && last.as_deref() != Some(unit_of(shim).as_str())
    {
        // Best effort: the next link asks every object again.
        let _ = super::capture::write_private(path, unit_of(shim).as_bytes());
    }
    Some(shim)
}

/// Patch mode: keep the crate's own objects, the rebuilt rlibs (`rebuilt`: file names, one per
/// line; linked whole) and the system libraries, drop everything the host already has.
fn patch_args(args: Vec<String>, rebuilt: &str) -> Vec<String> {
    let rebuilt = |arg: &str| {
        Path::new(arg)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|name| rebuilt.lines().any(|r| r == name))
    };
    let remembered = std::env::var_os(OBJECTS_DIR_ENV)
        .map(|dir| Path::new(&dir).with_file_name(ALLOCATOR_SHIM_UNIT));
    let shim = allocator_shim(&args, remembered.as_deref()).map(str::to_owned);
    let mut args: Vec<String> = args
        .into_iter()
        .flat_map(|arg| {
            if arg.ends_with(".rlib") && rebuilt(&arg) {
                vec![
                    "-Wl,--whole-archive".to_owned(),
                    arg,
                    "-Wl,--no-whole-archive".to_owned(),
                ]
            } else {
                vec![arg]
            }
        })
        .filter(|arg| {
            if arg.ends_with(".rlib") {
                return rebuilt(arg);
            }
            // rustc asks that every symbol its export list names be defined (see below).
            if arg == "-Wl,--no-undefined-version" {
                return false;
            }
            if arg.ends_with(".o") && !arg.starts_with('-') {
                return Path::new(arg).file_name().is_none_or(|n| n != "symbols.o")
                    && shim.as_deref() != Some(arg.as_str());
            }
            true
        })
        .collect();
    // A full patch is compiled with `-C link-dead-code`, so that its objects hold every function
    // (the gate needs the code only start-up reaches, to say that it changed); rustc then omits
    // `--gc-sections`. The patch file itself needs only what its exported hot functions reach,
    // unless entries are redirected into it.
    let keep_code = std::env::var_os(KEEP_CODE_ENV).is_some();
    if !keep_code && !args.iter().any(|a| a.contains("--gc-sections")) {
        args.push("-Wl,--gc-sections".to_owned());
    }
    // The export list names the exported hot functions of every local library crate, which the
    // patch defines only when it rebuilt that crate; the others are the host's, and an export
    // the patch lacks is no error (LLD's default, and rustc's flag, say otherwise).
    args.push("-Wl,--undefined-version".to_owned());
    args
}

/// Where the objects rewritten to share statics (see [`super::statics`]) are written, for the
/// objects kept in `objects_dir`.
pub(crate) fn shared_objects_dir(objects_dir: &Path) -> std::path::PathBuf {
    objects_dir.with_file_name("shared-objects")
}

/// Hard-links (or, across file systems, copies) every object file among `args` into `dir`. A
/// link costs nothing whatever the object's size, and keeps the identity of the objects rustc
/// took from its incremental cache, which lets the code index skip them.
fn keep_objects(args: &[String], dir: &Path) -> Result<(), String> {
    for arg in args
        .iter()
        .filter(|a| a.ends_with(".o") && !a.starts_with('-'))
    {
        let from = Path::new(arg);
        let Some(name) = from.file_name() else {
            continue;
        };
        let to = dir.join(name);
        if same_file(from, &to) {
            // rustc took the object from its incremental cache, as at the last link: the link
            // kept then is this one (most objects of a patch; it spares two directory writes).
            continue;
        }
        // Never written through: a file of that name is another build's hard link, maybe to
        // rustc's incremental cache.
        let _ = std::fs::remove_file(&to);
        if std::fs::hard_link(from, &to).is_ok() {
            continue;
        }
        std::fs::copy(from, &to).map_err(|err| {
            format!(
                "cannot copy `{}` to `{}`: {err}",
                from.display(),
                to.display()
            )
        })?;
    }
    Ok(())
}

/// Writes one byte to the pipe [`OBJECTS_KEPT_FD_ENV`] names, and closes it. Best effort: a
/// session that hears nothing reads the objects once rustc has exited.
fn tell_objects_kept() {
    use std::io::Write;
    if let Some(mut pipe) = inherited_pipe(OBJECTS_KEPT_FD_ENV) {
        let _ = pipe.write_all(b"k");
    }
}

/// The pipe whose write end the environment variable `env` numbers, inherited from the session,
/// with close-on-exec set so that the real linker does not inherit it too; `None` when the
/// variable is unset or names no pipe.
fn inherited_pipe(env: &str) -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    let fd = std::env::var(env)
        .ok()?
        .parse::<std::os::fd::RawFd>()
        .ok()
        .filter(|fd| *fd > 2)?;
    // SAFETY: `fstat` writes only into the zeroed `stat` it is given; a descriptor that is not
    // open makes it fail, which is checked.
    let is_pipe = unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &raw mut stat) == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFIFO
    };
    if !is_pipe {
        return None;
    }
    // SAFETY: `fcntl` on an open descriptor (checked above) takes no pointers.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // SAFETY: the descriptor is open (checked above) and nothing else in this process uses it:
    // the session passed it to this process for this alone. The `File` owns and closes it.
    Some(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Whether `a` and `b` are links to one file (device and inode); `false` when either is missing.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// `@file` arguments (a response file, one argument a line, `\` escapes) become their contents.
fn expand_response_file(arg: String) -> Result<Vec<String>, String> {
    let Some(path) = arg.strip_prefix('@') else {
        return Ok(vec![arg]);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read response file `{path}`: {err}"))?;
    Ok(text
        .lines()
        .map(|line| {
            let mut out = String::with_capacity(line.len());
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    out.extend(chars.next());
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::args::split as args;

    #[test]
    fn host_mode_whole_archives_rlibs_in_place_but_compiler_builtins() {
        let out = host_args(args(
            "-m64 /t/deps/libapp.rlib /sys/lib/libstd-1.rlib /sys/lib/libcompiler_builtins-2.rlib -lc",
        ));
        assert_eq!(
            out,
            args(
                "-m64 -Wl,--whole-archive /t/deps/libapp.rlib -Wl,--no-whole-archive \
                 -Wl,--whole-archive /sys/lib/libstd-1.rlib -Wl,--no-whole-archive \
                 /sys/lib/libcompiler_builtins-2.rlib -lc -rdynamic"
            )
        );
    }

    #[test]
    fn patch_mode_drops_rlibs_and_symbols_object() {
        let out = patch_args(
            args(
                "-m64 /tmp/rustcX/symbols.o /t/app.app.1-cgu.0.rcgu.o /t/deps/liblog.rlib \
                 /w/view/libleaf-1.rlib -Wl,--no-undefined-version -shared -lc",
            ),
            "libmid-2.rlib\nlibleaf-1.rlib\n",
        );
        // The object does not exist, so it cannot be the allocator shim: kept.
        assert_eq!(
            out,
            args(
                "-m64 /t/app.app.1-cgu.0.rcgu.o -Wl,--whole-archive /w/view/libleaf-1.rlib \
                 -Wl,--no-whole-archive -shared -lc -Wl,--gc-sections -Wl,--undefined-version"
            )
        );
    }

    #[test]
    fn response_files_are_expanded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("linker-arguments");
        std::fs::write(&file, "-m64\n/a\\ b/x.o\n").unwrap();
        let arg = format!("@{}", file.display());
        assert_eq!(
            expand_response_file(arg).unwrap(),
            vec!["-m64".to_owned(), "/a b/x.o".to_owned()]
        );
    }
}
