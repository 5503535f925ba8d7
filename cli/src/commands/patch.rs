//! `cargo hotswap patch`: asks the running session to rebuild and patch now, and prints its
//! answer.

use clap::Args;

use crate::control::protocol::Verdict;
use crate::errors::CliError;
use crate::project::Project;

use super::{OutputArgs, TargetArgs};

/// Arguments of `cargo hotswap patch`.
#[derive(Debug, Args)]
pub(crate) struct PatchArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Asks the session to patch; prints, line for line, what the session printed meanwhile; fails,
/// with the exit code of its verdict, if the program does not run the current code.
pub(super) fn patch(args: &PatchArgs) -> Result<(), CliError> {
    args.output.init(false);
    let project = Project::load(&args.target.selection())?;
    match crate::control::request_patch(&project)? {
        verdict if verdict.is_success() => Ok(()),
        Verdict::BuildFailed => Err(CliError::BuildFailed),
        Verdict::Refused => Err(CliError::Refused),
        _ => Err(CliError::NotApplied),
    }
}
