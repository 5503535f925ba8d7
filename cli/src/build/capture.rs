//! The rustc wrapper: during the host's cargo build, records the exact rustc command line and
//! environment of the selected bin crate and of every local library crate, so that the host's
//! rlib, the library replays and every patch compile with the same `-C metadata`, `--extern`s and
//! flags, hence the same mangled symbols and `TypeId`s. For the selected bin it also builds the
//! host in place of the bin (see [`crate::build::compile`]).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Where the wrapper writes the capture (absolute path). Without it, the wrapper only forwards.
pub(crate) const CAPTURE_FILE_ENV: &str = "HOTSWAP_CAPTURE_FILE";
/// `CARGO_MANIFEST_DIR` of the package whose bin is captured.
pub(crate) const CAPTURE_MANIFEST_DIR_ENV: &str = "HOTSWAP_CAPTURE_MANIFEST_DIR";
/// Name of the bin target whose compile is captured (`CARGO_BIN_NAME`).
pub(crate) const CAPTURE_BIN_ENV: &str = "HOTSWAP_CAPTURE_BIN";
/// The host's work directory: the selected bin's compile builds the host (see
/// [`crate::build::compile`]). Without it, the bin is compiled as cargo asks.
pub(crate) const HOST_DIR_ENV: &str = "HOTSWAP_HOST_DIR";
/// A `RUSTC_WRAPPER` the user had set, which the wrapper then calls in turn.
pub(crate) const INNER_WRAPPER_ENV: &str = "HOTSWAP_INNER_RUSTC_WRAPPER";
/// The directory where the wrapper writes the captures of local library crates, one file each.
pub(crate) const CAPTURE_LIBS_DIR_ENV: &str = "HOTSWAP_CAPTURE_LIBS_DIR";
/// `CARGO_MANIFEST_DIR` of every local package whose library is captured, one per line.
pub(crate) const CAPTURE_LOCAL_DIRS_ENV: &str = "HOTSWAP_CAPTURE_LOCAL_DIRS";

/// One rustc invocation as cargo made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Capture {
    /// The rustc that cargo runs.
    pub(crate) rustc: PathBuf,
    /// The arguments after the rustc path.
    pub(crate) args: Vec<String>,
    /// The environment cargo set for rustc (`CARGO_*`, `OUT_DIR`, ...).
    pub(crate) env: Vec<(String, String)>,
    /// The working directory of the invocation.
    pub(crate) cwd: PathBuf,
}

impl Capture {
    /// Reads a capture written by the wrapper.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or is not a capture; the message names the path.
    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("malformed capture `{}`", path.display()))
    }

    /// The value of the rustc option `name` (`--crate-name`, `-C extra-filename`, ...), in either
    /// spelling (`--x v`, `--x=v`; `-C k=v`, `-Ck=v`).
    pub(crate) fn option(&self, name: &str) -> Option<&str> {
        super::args::value(&self.args, name)
    }

    /// The crate's root source file as rustc was given it (`src/main.rs`).
    pub(crate) fn source(&self) -> Option<&str> {
        super::args::source(&self.args)
    }

    /// The crate's name, `--crate-name` (`time_service`).
    pub(crate) fn crate_name(&self) -> &str {
        self.option("--crate-name").unwrap_or("unknown")
    }

    /// The name of the package the crate belongs to (`CARGO_PKG_NAME`), or else its crate name.
    pub(crate) fn package(&self) -> &str {
        self.env
            .iter()
            .find(|(key, _)| key == "CARGO_PKG_NAME")
            .map_or_else(|| self.crate_name(), |(_, value)| value.as_str())
    }

    /// What names this compile's outputs: the crate name and `-C extra-filename`
    /// (`leaf-1f2e3d4c5b6a7988`). The library is `lib<stem>.rlib`, its dep-info `<stem>.d`.
    pub(crate) fn stem(&self) -> String {
        format!(
            "{}{}",
            self.crate_name(),
            self.option("-C extra-filename").unwrap_or("")
        )
    }

    /// Whether this compiles a procedural macro crate.
    pub(crate) fn is_proc_macro(&self) -> bool {
        super::args::walk(&self.args).any(|(arg, _)| {
            arg == super::args::Arg::Option {
                name: "--crate-type",
                value: "proc-macro",
            }
        })
    }

    /// The `--extern` values (`name=path`, `noprelude:name=path`) as `(name, path)`; a value
    /// without a path is left out.
    pub(crate) fn externs(&self) -> Vec<(&str, &str)> {
        super::args::externs(&self.args)
    }

    /// The dep-info file cargo had rustc write next to the outputs: the crate's source files.
    pub(crate) fn dep_info(&self) -> Option<PathBuf> {
        let out_dir = self.option("--out-dir")?;
        Some(self.cwd.join(out_dir).join(format!("{}.d", self.stem())))
    }

    /// A `Command` running the captured rustc with `args`, in the captured directory and
    /// environment, minus what must not leak into a replay (the jobserver, this wrapper's role).
    pub(crate) fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(&self.rustc);
        command.args(args).current_dir(&self.cwd);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
            .env_remove("CARGO_MAKEFLAGS")
            .env_remove(crate::ROLE_ENV)
            .env_remove(CAPTURE_FILE_ENV);
        command
    }
}

/// The environment that makes this executable cargo's rustc wrapper, passing every command
/// through (to the user's own `RUSTC_WRAPPER`, if one is set) unless a capture is asked for too.
/// `cargo metadata` gets it as well as `cargo build`: cargo keeps rustc's answers to its probes
/// (`rustc -vV`, `--print`) in the target directory's `.rustc_info.json`, valid for one wrapper,
/// so two commands with different wrappers each discard the other's and probe rustc again
/// (three rustc runs, about 40 ms of every start).
///
/// # Errors
///
/// When this executable cannot be located.
pub(crate) fn rustc_wrapper_env() -> anyhow::Result<Vec<(&'static str, std::ffi::OsString)>> {
    let mut env = vec![
        (
            "RUSTC_WRAPPER",
            crate::process::self_exe()?.into_os_string(),
        ),
        (crate::ROLE_ENV, "rustc".into()),
    ];
    if let Some(inner) = std::env::var_os("RUSTC_WRAPPER") {
        env.push((INNER_WRAPPER_ENV, inner));
    }
    Ok(env)
}

/// Entry point in the rustc-wrapper role: `cargo-hotswap <rustc> <args>...`. Forwards to rustc
/// (through the user's own wrapper, if any); the selected bin's compile builds the host instead
/// of the plain executable (see [`crate::build::compile`]). Once the compile succeeded,
/// records the command of the selected bin or of a local library: a capture is newer than the
/// outputs of the compile it describes, and one older than them was overtaken by a compile this
/// wrapper did not see (a `cargo build` of the user's own, in the same target directory).
pub(crate) fn rustc_wrapper_main() -> ExitCode {
    let mut argv = std::env::args_os().skip(1);
    let Some(rustc) = argv.next() else {
        eprintln!("error: cargo-hotswap was run as a rustc wrapper without a rustc path");
        return ExitCode::FAILURE;
    };
    let args: Vec<_> = argv.collect();
    // Not a compile cargo-hotswap replays when an argument is not UTF-8: its paths would not
    // survive a round trip.
    let utf8: Option<Vec<String>> = args.iter().map(|a| a.to_str().map(str::to_owned)).collect();
    let selected = utf8.as_deref().and_then(selected);
    let host_dir = std::env::var_os(HOST_DIR_ENV);
    if let (Some(Selected::Bin(file)), Some(args), Some(dir)) = (&selected, &utf8, &host_dir) {
        return host_compile(&rustc, args, file, Path::new(dir));
    }
    let mut command = match std::env::var_os(INNER_WRAPPER_ENV).filter(|w| !w.is_empty()) {
        Some(inner) => {
            let mut command = Command::new(inner);
            command.arg(&rustc);
            command
        }
        None => Command::new(&rustc),
    };
    command.args(&args);
    let code = exec(command);
    if code != ExitCode::SUCCESS {
        return code;
    }
    let (Some(selected), Some(args)) = (selected, utf8) else {
        return code;
    };
    let written = capture_of(&rustc, args).and_then(|capture| match selected {
        Selected::Bin(file) => write_capture(&file, &capture),
        Selected::Library(dir) => write_library_capture(&capture, &dir),
    });
    if let Err(err) = written {
        eprintln!("error: cargo-hotswap could not record the rustc command: {err:#}");
        return ExitCode::FAILURE;
    }
    code
}

/// The selected bin's compile in a host build: the host is built in `work_root` (see
/// [`crate::build::compile::host`]) and the command recorded in `file` once it is.
fn host_compile(
    rustc: &std::ffi::OsStr,
    args: &[String],
    file: &Path,
    work_root: &Path,
) -> ExitCode {
    let result = capture_of(rustc, args.to_vec()).and_then(|capture| {
        let code = crate::build::compile::host(&capture, work_root)?;
        if code == ExitCode::SUCCESS {
            write_capture(file, &capture)?;
        }
        Ok(code)
    });
    result.unwrap_or_else(|err| {
        eprintln!("error: cargo-hotswap could not build the host: {err:#}");
        ExitCode::FAILURE
    })
}

/// A compile whose command the wrapper records.
enum Selected {
    /// The selected bin target's; the capture goes to this file.
    Bin(PathBuf),
    /// A local library crate's; the capture goes to this directory, named after its outputs.
    Library(PathBuf),
}

/// Whether this invocation (`args`) compiles the selected bin target, or the library of a local
/// package, and where its capture goes. `None` outside a host build.
fn selected(args: &[String]) -> Option<Selected> {
    let bin_file = std::env::var_os(CAPTURE_FILE_ENV)?;
    let env = |key: &str| std::env::var_os(key);
    let crate_types: Vec<&str> = super::args::walk(args)
        .filter_map(|(arg, _)| match arg {
            super::args::Arg::Option {
                name: "--crate-type",
                value,
            } => Some(value),
            _ => None,
        })
        .collect();
    let test = args.iter().any(|a| a == "--test");
    let bin = env("CARGO_BIN_NAME").is_some()
        && env("CARGO_BIN_NAME") == env(CAPTURE_BIN_ENV)
        && env("CARGO_MANIFEST_DIR") == env(CAPTURE_MANIFEST_DIR_ENV)
        && crate_types.contains(&"bin")
        && !test;
    if bin {
        return Some(Selected::Bin(PathBuf::from(bin_file)));
    }
    let local = env("CARGO_MANIFEST_DIR").is_some_and(|dir| {
        env(CAPTURE_LOCAL_DIRS_ENV)
            .is_some_and(|dirs| dirs.to_string_lossy().lines().any(|d| *d == *dir))
    });
    let library = local
        && !test
        && crate_types
            .iter()
            .any(|t| ["lib", "rlib", "proc-macro"].contains(t));
    let dir = env(CAPTURE_LIBS_DIR_ENV)?;
    library.then(|| Selected::Library(PathBuf::from(dir)))
}

/// The capture of `args`, run with `rustc` in this process's directory and environment (minus
/// this tool's variables and `RUSTC_WRAPPER`).
fn capture_of(rustc: &std::ffi::OsStr, args: Vec<String>) -> anyhow::Result<Capture> {
    Ok(Capture {
        rustc: PathBuf::from(rustc),
        args,
        env: std::env::vars()
            .filter(|(k, _)| !k.starts_with("HOTSWAP_") && k != "RUSTC_WRAPPER")
            .collect(),
        cwd: std::env::current_dir().context("cannot read the current directory")?,
    })
}

/// Writes the capture of a local library crate into `dir`, named after its outputs, so that the
/// captures of every configuration are kept.
fn write_library_capture(capture: &Capture, dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    write_capture(&dir.join(format!("{}.json", capture.stem())), capture)
}

/// Writes `capture` to `file` as JSON. The environment may hold secrets (tokens): the file is
/// the user's alone.
fn write_capture(file: &Path, capture: &Capture) -> anyhow::Result<()> {
    write_private(file, &serde_json::to_vec_pretty(capture)?)
}

/// Writes `bytes` to `file`, readable and writable by the user only (mode 0600 whatever the
/// umask), whole or not at all: through a new temporary file renamed over it.
///
/// # Errors
///
/// When the temporary file cannot be created or written, or renamed; the message names it.
pub(crate) fn write_private(file: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = file.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut out| out.write_all(bytes))
        .with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot write `{}`", file.display()))
}

/// The exit code that passes `status` on: its own, or 101 (rustc's for an internal error) when a
/// signal ended the process.
pub(crate) fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    ExitCode::from(status.code().unwrap_or(101).clamp(0, 255) as u8)
}

/// Runs `command` with inherited stdio and returns its exit code.
pub(crate) fn exec(mut command: Command) -> ExitCode {
    match command.status() {
        Ok(status) => exit_code(status),
        Err(err) => cannot_run(&command, &err),
    }
}

/// Says that `command` could not be started (`err`), and returns the failure exit code.
pub(crate) fn cannot_run(command: &Command, err: &std::io::Error) -> ExitCode {
    eprintln!(
        "error: cannot run `{}`: {err}",
        command.get_program().to_string_lossy()
    );
    ExitCode::FAILURE
}
