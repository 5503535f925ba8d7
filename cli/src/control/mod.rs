//! One session per program: the session lock, and the control socket through which
//! `cargo hotswap patch` asks a running session to rebuild and patch now.
//!
//! The lock is a file `<bin>-<hash>.lock` (the hash is of the manifest's path) in the user's
//! private runtime directory (see [`runtime_dir`]), opened without following symlinks, held with
//! `flock` for the session's life (the kernel releases it if the session dies) and holding the
//! session's pid and control socket path, one per line. Both ends of the control socket check
//! that the other is of the same user.

use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::errors::CliError;
use crate::project::Project;

use self::protocol::{Reply, Request, Verdict};

pub(crate) mod protocol;

/// The held session lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct SessionLock {
    _file: File,
}

/// The user's runtime directory for session locks: `$XDG_RUNTIME_DIR/cargo-hotswap` when that
/// is set, else `cargo-hotswap-<uid>` in the system's temporary directory. Created with mode
/// 0700 if missing; an existing one must be a directory (not a symlink) of this user that no one
/// else can use.
///
/// # Errors
///
/// When it cannot be created, or is not private to this user (another user may have made it).
pub(crate) fn runtime_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = hotswap::protocol::own_uid();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("cargo-hotswap"),
        None => std::env::temp_dir().join(format!("cargo-hotswap-{uid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            return Err(err).with_context(|| format!("cannot create `{}`", dir.display()));
        }
    }
    let meta = std::fs::symlink_metadata(&dir)
        .with_context(|| format!("cannot read `{}`", dir.display()))?;
    if !meta.file_type().is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        bail!(
            "`{}` is not a private directory of yours (owner {}, mode {:o}{}), so \
             cargo-hotswap will not keep its session files there\nhelp: remove it, or set \
             `XDG_RUNTIME_DIR` to a directory only you can use",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777,
            if meta.file_type().is_symlink() {
                ", a symlink"
            } else {
                ""
            }
        );
    }
    Ok(dir)
}

/// The lock file of `project`'s bin.
///
/// It lives in the user's runtime directory ([`runtime_dir`]), keyed by the manifest's path and
/// the bin, not under the target directory: two sessions of one program with different target
/// directories would otherwise both patch it.
fn lock_path(project: &Project) -> anyhow::Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let hash = crate::project::stable_hash(&[project.manifest_path.as_os_str().as_bytes()]);
    Ok(runtime_dir()?.join(format!("{}-{hash:016x}.lock", project.bin)))
}

/// Opens the lock file at `path` (created 0600 if missing) without following a symlink, and
/// checks that it is a regular file of this user.
fn open_lock(path: &Path, create: bool) -> anyhow::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = File::options()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot open `{}`", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    if !meta.file_type().is_file() || meta.uid() != hotswap::protocol::own_uid() {
        bail!(
            "`{}` is not a regular file of yours; not using it",
            path.display()
        );
    }
    Ok(file)
}

/// Takes the session lock of `project`, recording `control_socket`.
///
/// # Errors
///
/// When another session holds it (the message names its pid), or the file cannot be written.
pub(crate) fn lock(project: &Project, control_socket: &Path) -> anyhow::Result<SessionLock> {
    let path = lock_path(project)?;
    let mut file = open_lock(&path, true)?;
    if !try_flock(&file) {
        let pid = read_session(&mut file)
            .map(|(pid, _)| pid)
            .unwrap_or_default();
        bail!(
            "another `cargo hotswap run` session (pid {pid}) is running `{}`\nhelp: use that \
             session, stop it first, or ask it to patch now with `cargo hotswap patch`",
            project.bin
        );
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}\n{}", std::process::id(), control_socket.display()))
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(SessionLock { _file: file })
}

/// Whether an exclusive lock on `file` was taken without waiting.
fn try_flock(file: &File) -> bool {
    // SAFETY: `flock` only reads the descriptor, which `file` keeps open for the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// The pid and control socket a lock file records.
fn read_session(file: &mut File) -> Option<(u32, PathBuf)> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.parse().ok()?;
    Some((pid, PathBuf::from(lines.next()?)))
}

/// `cargo hotswap patch`: asks the session running `project` to rebuild and patch now, prints
/// the lines the session printed meanwhile as they arrive, and returns its verdict.
///
/// # Errors
///
/// [`CliError::NoSession`] when no session runs `project`; [`CliError::Failed`] when it cannot
/// be reached or does not answer.
pub(crate) fn request_patch(project: &Project) -> Result<Verdict, CliError> {
    let path = lock_path(project)?;
    let mut file = open_lock(&path, false).ok();
    let running = file.as_ref().is_some_and(|f| !try_flock(f));
    let Some((pid, socket)) = file.as_mut().filter(|_| running).and_then(read_session) else {
        return Err(CliError::NoSession(anyhow!(
            "no `cargo hotswap run` session is running `{}`\nhelp: start one with `cargo hotswap \
             run` (add `--no-watch` to patch only when asked)",
            project.bin
        )));
    };
    let mut stream = UnixStream::connect(&socket).with_context(|| {
        format!(
            "cannot reach the session (pid {pid}) at `{}`",
            socket.display()
        )
    })?;
    let (_, uid) = hotswap::protocol::peer(&stream).context("cannot check the session's user")?;
    if uid != hotswap::protocol::own_uid() {
        return Err(anyhow!(
            "`{}` is served by user {uid}, not by you; not sending the request",
            socket.display()
        )
        .into());
    }
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .context("cannot set a timeout on the session's socket")?;
    stream
        .write_all(protocol::encode(&Request::Patch).as_bytes())
        .context("cannot send the request")?;
    let mut reader = BufReader::new(stream);
    loop {
        let reply = protocol::read(&mut reader)
            .with_context(|| format!("the session (pid {pid}) did not answer"))?;
        match reply {
            Some(Reply::Line { line }) => line.print(),
            Some(Reply::Answer { verdict }) => return Ok(verdict),
            None => return Err(anyhow!("the session (pid {pid}) did not answer").into()),
        }
    }
}

/// How long a `patch` request may wait for the session's answer.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
