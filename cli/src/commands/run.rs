//! `cargo hotswap run`: its arguments, named as `cargo run` names them, and their conversion into
//! the session's options.

use clap::Args;

use crate::build::host::BuildOptions;
use crate::errors::CliError;
use crate::session::{Policy, RunOptions};

use super::{COMPILATION, FEATURES, MessageFormat, OutputArgs, PATCHING, TargetArgs};

/// Arguments of `cargo hotswap run`, named as `cargo run` names them.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Space or comma separated list of features to activate
    #[arg(short = 'F', long, value_name = "FEATURES", help_heading = FEATURES)]
    pub(crate) features: Vec<String>,
    /// Activate all available features
    #[arg(long, help_heading = FEATURES)]
    pub(crate) all_features: bool,
    /// Do not activate the `default` feature
    #[arg(long, help_heading = FEATURES)]
    pub(crate) no_default_features: bool,
    /// Build artifacts in release mode, with optimizations
    #[arg(short, long, conflicts_with = "profile", help_heading = COMPILATION)]
    pub(crate) release: bool,
    /// Build artifacts with the specified profile
    #[arg(long, value_name = "PROFILE-NAME", help_heading = COMPILATION)]
    pub(crate) profile: Option<String>,
    /// Keep the old code running when a patch is refused, instead of restarting the program
    #[arg(long, help_heading = PATCHING)]
    pub(crate) no_restart: bool,
    /// Do not watch the sources: patch only when `cargo hotswap patch` asks
    #[arg(long, help_heading = PATCHING)]
    pub(crate) no_watch: bool,
    /// Compare the files periodically instead of using inotify
    #[arg(long, conflicts_with = "no_watch", help_heading = PATCHING)]
    pub(crate) poll: bool,
    /// Patch every changed function, not only what `#[hot]` functions reach (experimental; on for
    /// a package without cargo-hotswap-runtime)
    #[arg(long, help_heading = PATCHING)]
    pub(crate) redirect: bool,
    /// The output format for events: `json` adds one JSON object per event on stdout (the
    /// program's stdout then goes to stderr)
    #[arg(long, value_name = "FMT", value_enum, default_value = "human")]
    pub(crate) message_format: MessageFormat,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Arguments for the program
    #[arg(last = true, value_name = "ARGS")]
    pub(crate) args: Vec<String>,
}

/// Runs a session with `args` until it is interrupted.
pub(super) fn run(args: RunArgs) -> Result<(), CliError> {
    args.output.init(args.message_format == MessageFormat::Json);
    crate::session::run(RunOptions {
        selection: args.target.selection(),
        build: BuildOptions {
            features: args.features,
            all_features: args.all_features,
            no_default_features: args.no_default_features,
            profile: if args.release {
                Some("release".to_owned())
            } else {
                args.profile
            },
        },
        policy: Policy {
            no_restart: args.no_restart,
            no_watch: args.no_watch,
            poll: args.poll,
            redirect: args.redirect,
        },
        program_args: args.args,
    })
}
