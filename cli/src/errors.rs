//! The top-level error of the CLI and the exit codes it maps to, as `--help` and the book's CLI
//! reference list them.

use std::process::ExitCode;

/// The exit codes of `cargo hotswap`; each is produced by an end-to-end test.
pub(crate) const EXIT_CODES: &str = "\
Exit status:
  0    success (`patch`: the patch was applied, or no code changed)
  1    an error, described on stderr (`run`: the project cannot be built or run, or another
       session runs it; `patch`: the patch was not applied, or no session runs)
  2    invalid arguments
  130  `run` was interrupted (Ctrl-C, SIGINT or SIGTERM), after stopping the program";

/// Why a command failed, mapped to its exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Anything that stops the command, with its chain of causes (exit code 1).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
    /// `patch`: the session answered, but did not apply a patch; the answer has been shown
    /// (exit code 1).
    #[error("the patch was not applied")]
    NotApplied,
}

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Success {
    /// It did what was asked (exit code 0).
    Done,
    /// `run` was interrupted and stopped the program (exit code 130).
    Interrupted,
}

impl Success {
    /// The process exit code.
    pub(crate) fn exit_code(self) -> ExitCode {
        match self {
            Success::Done => ExitCode::SUCCESS,
            Success::Interrupted => ExitCode::from(130),
        }
    }
}

impl CliError {
    /// The process exit code.
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::FAILURE
    }
}
