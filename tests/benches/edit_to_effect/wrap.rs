//! Pass-through wrappers that time every rustc and linker run of the benchmarked builds.
//!
//! The benchmark executable links itself into a directory as `bench-rustc` and `bench-cc` and is
//! started under those names: as `RUSTC` of every cargo it runs, and as the target's linker
//! (`CARGO_TARGET_<triple>_LINKER`). cargo-hotswap records `bench-rustc` as the rustc of the
//! captured command, so its replays (the host's rlib and shim, every patch) go through it too, and
//! it calls `bench-cc` as the real linker behind its own linker wrapper. Each wrapper runs the real
//! program with the same arguments and appends one JSON line to the file that
//! [`LOG_ENV`] names: start and end times, arguments, working directory and (for rustc) the
//! environment, which is what the bare floor replays.
//!
//! Every build in the benchmark, with cargo-hotswap or without, goes through the same wrappers,
//! so both sides pay the same small cost (one extra process start per rustc or linker run).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde::{Deserialize, Serialize};

use crate::now_ns;

/// The file the wrappers append their records to; without it they only pass through.
pub const LOG_ENV: &str = "HOTSWAP_BENCH_LOG";
/// The rustc that `bench-rustc` runs.
pub const REAL_RUSTC_ENV: &str = "HOTSWAP_BENCH_REAL_RUSTC";
/// The name under which the executable acts as rustc.
const RUSTC_NAME: &str = "bench-rustc";
/// The name under which the executable acts as the linker.
const LINKER_NAME: &str = "bench-cc";
/// The linker `bench-cc` runs: the default of the `x86_64-unknown-linux-gnu` target.
const REAL_LINKER: &str = "cc";

/// Which program a wrapper stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tool {
    /// rustc.
    Rustc,
    /// The linker driver (`cc`).
    Linker,
}

/// One timed run of rustc or the linker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invocation {
    /// Which program ran.
    pub tool: Tool,
    /// Wall-clock start, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// Wall-clock end, nanoseconds since the Unix epoch.
    pub end_ns: u64,
    /// The arguments after the program name.
    pub args: Vec<String>,
    /// The working directory.
    pub cwd: PathBuf,
    /// The environment (rustc only: the floor replays it).
    pub env: Vec<(String, String)>,
    /// Whether the program succeeded.
    pub success: bool,
}

impl Invocation {
    /// Duration in milliseconds.
    pub fn ms(&self) -> f64 {
        (self.end_ns.saturating_sub(self.start_ns)) as f64 / 1e6
    }

    /// The value of option `name` (`--crate-type`, `-o`), in `--x v` or `--x=v` spelling.
    pub fn option(&self, name: &str) -> Option<&str> {
        let mut iter = self.args.iter();
        while let Some(arg) = iter.next() {
            if arg == name {
                return iter.next().map(String::as_str);
            }
            if let Some(value) = arg.strip_prefix(name).and_then(|v| v.strip_prefix('=')) {
                return Some(value);
            }
        }
        None
    }

    /// Whether this is a rustc run compiling with crate type `crate_type`.
    pub fn is_rustc_of(&self, crate_type: &str) -> bool {
        self.tool == Tool::Rustc && self.option("--crate-type") == Some(crate_type)
    }

    /// Whether this is a rustc run compiling the crate `crate_name`.
    pub fn compiles(&self, crate_name: &str) -> bool {
        self.tool == Tool::Rustc && self.option("--crate-name") == Some(crate_name)
    }

    /// The linker's output file, if this is a linker run.
    pub fn link_output(&self) -> Option<&Path> {
        (self.tool == Tool::Linker)
            .then(|| self.option("-o").map(Path::new))
            .flatten()
    }
}

/// The wrapper this process was started as, if any (by the name it was started under).
pub fn role() -> Option<Tool> {
    let argv0 = std::env::args_os().next()?;
    match Path::new(&argv0).file_name()?.to_str()? {
        RUSTC_NAME => Some(Tool::Rustc),
        LINKER_NAME => Some(Tool::Linker),
        _ => None,
    }
}

/// Runs the real program for `tool` with this process's arguments, logs the run, and returns
/// its exit code.
pub fn wrapper_main(tool: Tool) -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let program: OsString = match tool {
        Tool::Rustc => std::env::var_os(REAL_RUSTC_ENV).unwrap_or_else(|| "rustc".into()),
        Tool::Linker => REAL_LINKER.into(),
    };
    let start_ns = now_ns();
    let status = Command::new(&program).args(&args).status();
    let end_ns = now_ns();
    let code = match &status {
        Ok(status) => status.code().unwrap_or(101),
        Err(err) => {
            eprintln!(
                "error: benchmark wrapper cannot run `{}`: {err}",
                program.to_string_lossy()
            );
            101
        }
    };
    if let Some(log) = std::env::var_os(LOG_ENV) {
        let record = Invocation {
            tool,
            start_ns,
            end_ns,
            args: args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            cwd: std::env::current_dir().unwrap_or_default(),
            env: match tool {
                Tool::Rustc => std::env::vars().collect(),
                Tool::Linker => Vec::new(),
            },
            success: code == 0,
        };
        if let Err(err) = append(Path::new(&log), &record) {
            eprintln!(
                "error: benchmark wrapper cannot write `{}`: {err}",
                Path::new(&log).display()
            );
        }
    }
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(101))
}

/// Appends `record` as one line, in one `write` call, so that concurrent wrappers (cargo runs
/// rustc in parallel) never interleave their lines.
fn append(log: &Path, record: &Invocation) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    file.write_all(&line)
}

/// The directory holding `bench-rustc` and `bench-cc`, both links to this executable.
///
/// # Panics
///
/// When the links cannot be made.
pub fn install(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir)
        .unwrap_or_else(|e| panic!("cannot create `{}`: {e}", dir.display()));
    let exe = std::env::current_exe().expect("cannot locate the benchmark executable");
    let make = |name: &str| {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&exe, &link)
            .unwrap_or_else(|e| panic!("cannot link `{}`: {e}", link.display()));
        link
    };
    (make(RUSTC_NAME), make(LINKER_NAME))
}

/// Reads the records a log gained since byte `offset`; returns them and the new offset. Only
/// complete lines are read.
pub fn read_since(log: &Path, offset: &mut u64) -> Vec<Invocation> {
    let Ok(bytes) = std::fs::read(log) else {
        return Vec::new();
    };
    let start = usize::try_from(*offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = bytes[start..]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(start, |i| start + i + 1);
    *offset = end as u64;
    bytes[start..end]
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("the wrappers write valid records"))
        .collect()
}
