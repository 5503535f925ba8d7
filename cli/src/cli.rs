//! Command-line parsing (clap) and dispatch to the operations.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::errors::{CliError, EXIT_CODES, Success};
use crate::output::{self, ColorChoice};

/// Hot-patch a running Rust program: edit, save, and the same process runs the new code.
#[derive(Debug, Parser)]
#[command(
    name = "cargo",
    bin_name = "cargo",
    display_name = "cargo-hotswap",
    version,
    styles = clap_cargo_styles(),
    after_help = EXIT_CODES
)]
enum Cargo {
    /// Hot-patch a running Rust program
    #[command(subcommand)]
    Hotswap(Command),
    /// Alias of `hotswap` subcommands, for `cargo-hotswap run ..` called directly
    #[command(flatten)]
    Direct(Command),
}

/// The subcommands of `cargo hotswap`.
#[derive(Debug, Subcommand)]
#[command(after_help = EXIT_CODES, version, display_name = "cargo-hotswap")]
enum Command {
    /// Build the program as a patchable host, run it, and patch it on every save
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// Ask the running `cargo hotswap run` session to rebuild and patch now
    #[command(after_help = EXIT_CODES)]
    Patch(PatchArgs),
}

/// Which program: cargo's package and target selection.
#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    /// Package with the target to run
    #[arg(short, long, value_name = "SPEC", help_heading = "Package Selection")]
    pub(crate) package: Option<String>,
    /// Name of the bin target to run
    #[arg(long, value_name = "NAME", help_heading = "Target Selection")]
    pub(crate) bin: Option<String>,
    /// Path to Cargo.toml
    #[arg(long, value_name = "PATH", help_heading = "Manifest Options")]
    pub(crate) manifest_path: Option<PathBuf>,
    /// Directory for all generated artifacts
    #[arg(long, value_name = "DIRECTORY", help_heading = "Compilation Options")]
    pub(crate) target_dir: Option<PathBuf>,
}

/// The format of the events `cargo hotswap run` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum MessageFormat {
    Human,
    Json,
}

/// How the tool writes its messages, named as cargo names them.
#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    /// Use verbose output (the captured rustc and linker commands, each phase's time)
    #[arg(short, long)]
    pub(crate) verbose: bool,
    /// Do not print cargo-hotswap's status messages (warnings and errors still show)
    #[arg(short, long, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// Coloring
    #[arg(long, value_name = "WHEN", value_enum, default_value = "auto")]
    pub(crate) color: ColorChoice,
}

/// Arguments of `cargo hotswap run`, named as `cargo run` names them.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Space or comma separated list of features to activate
    #[arg(
        short = 'F',
        long,
        value_name = "FEATURES",
        help_heading = "Feature Selection"
    )]
    pub(crate) features: Vec<String>,
    /// Activate all available features
    #[arg(long, help_heading = "Feature Selection")]
    pub(crate) all_features: bool,
    /// Do not activate the `default` feature
    #[arg(long, help_heading = "Feature Selection")]
    pub(crate) no_default_features: bool,
    /// Build artifacts in release mode, with optimizations
    #[arg(
        short,
        long,
        conflicts_with = "profile",
        help_heading = "Compilation Options"
    )]
    pub(crate) release: bool,
    /// Build artifacts with the specified profile
    #[arg(
        long,
        value_name = "PROFILE-NAME",
        help_heading = "Compilation Options"
    )]
    pub(crate) profile: Option<String>,
    /// Keep the old code running when a patch is refused, instead of restarting the program
    #[arg(long, help_heading = "Patching Options")]
    pub(crate) no_restart: bool,
    /// Do not watch the sources: patch only when `cargo hotswap patch` asks
    #[arg(long, help_heading = "Patching Options")]
    pub(crate) no_watch: bool,
    /// Compare the files periodically instead of using inotify
    #[arg(long, conflicts_with = "no_watch", help_heading = "Patching Options")]
    pub(crate) poll: bool,
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

/// Arguments of `cargo hotswap patch`.
#[derive(Debug, Args)]
pub(crate) struct PatchArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Parses the command line and runs the command; returns the process exit code.
pub(crate) fn main() -> ExitCode {
    let command = match Cargo::parse() {
        Cargo::Hotswap(command) | Cargo::Direct(command) => command,
    };
    let result = match command {
        Command::Run(args) => {
            let o = &args.output;
            output::init(
                o.color,
                o.quiet,
                o.verbose,
                args.message_format == MessageFormat::Json,
            );
            crate::session::run(args)
        }
        Command::Patch(args) => {
            let o = &args.output;
            output::init(o.color, o.quiet, o.verbose, false);
            patch(&args)
        }
    };
    match result {
        Ok(success) => success.exit_code(),
        Err(err) => {
            if let CliError::Failed(err) = &err {
                output::error(err);
            }
            err.exit_code()
        }
    }
}

/// `cargo hotswap patch`: prints the session's answer; fails if the patch was not applied.
fn patch(args: &PatchArgs) -> Result<Success, CliError> {
    let project = crate::project::Project::load(&args.target)?;
    let (ok, answer) = crate::control::request_patch(&project)?;
    let (verb, message) = answer
        .split_once(' ')
        .unwrap_or(("Answered", answer.as_str()));
    if ok {
        output::status(verb, message);
        Ok(Success::Done)
    } else {
        output::warn(verb, message);
        Err(CliError::NotApplied)
    }
}

/// The colours cargo uses in its help.
fn clap_cargo_styles() -> clap::builder::Styles {
    use anstyle::{AnsiColor, Effects};
    clap::builder::Styles::styled()
        .header(AnsiColor::Green.on_default().effects(Effects::BOLD))
        .usage(AnsiColor::Green.on_default().effects(Effects::BOLD))
        .literal(AnsiColor::Cyan.on_default().effects(Effects::BOLD))
        .placeholder(AnsiColor::Cyan.on_default())
}
