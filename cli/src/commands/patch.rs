//! `cargo hotswap patch`: asks the running session to rebuild and patch now, and prints its
//! answer.

use clap::Args;

use crate::control::protocol::Verdict;
use crate::errors::CliError;
use crate::output;
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

/// Prints the session's answer as the session printed it; fails, with the exit code of its
/// verdict, if the program does not run the current code.
pub(super) fn patch(args: &PatchArgs) -> Result<(), CliError> {
    args.output.init(false);
    let project = Project::load(&args.target.selection())?;
    let (verdict, verb, message) = crate::control::request_patch(&project)?;
    if verdict.is_success() {
        output::status(&verb, message);
        return Ok(());
    }
    output::warn(&verb, message);
    Err(match verdict {
        Verdict::BuildFailed => CliError::BuildFailed,
        Verdict::Refused => CliError::Refused,
        _ => CliError::NotApplied,
    })
}
