//! Running child processes (cargo, rustc, the linker): one place that shows a command with `-v`,
//! names it when it cannot start, and shows its stderr when it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
