//! The command line: clap's types for `cargo hotswap` and its subcommands, each converted into
//! the plain options that an operation takes (the session, the patch request), and the exit code
//! of what it returns. Nothing below this module knows about clap.

mod init;
mod patch;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::errors::{CliError, EXIT_CODES};
use crate::output::{self, ColorChoice};
use crate::project::Selection;

use self::init::InitArgs;
use self::patch::PatchArgs;
use self::run::RunArgs;

/// Hot-patch a running Rust program: edit, save, and the same process runs the new code.
#[derive(Debug, Parser)]
#[command(
    name = "cargo",
    bin_name = "cargo",
    display_name = "cargo-hotswap",
    version,
    styles = clap_cargo_styles(),
    after_help = EXIT_CODES.as_str()
)]
enum Cargo {
    /// Hot-patch a running Rust program
    #[command(subcommand, arg_required_else_help = true)]
    Hotswap(Command),
    /// Alias of `hotswap` subcommands, for `cargo-hotswap run ..` called directly
    #[command(flatten)]
    Direct(Command),
}

/// The subcommands of `cargo hotswap`.
#[derive(Debug, Subcommand)]
#[command(after_help = EXIT_CODES.as_str(), version, display_name = "cargo-hotswap")]
enum Command {
    /// Build the program as a patchable host, run it, and patch it on every save
    #[command(after_help = EXIT_CODES.as_str())]
    Run(RunArgs),
    /// Ask the running `cargo hotswap run` session to rebuild and patch now
    #[command(after_help = EXIT_CODES.as_str())]
    Patch(PatchArgs),
    /// Add the cargo-hotswap runtime to a package's dependencies
    #[command(after_help = EXIT_CODES.as_str())]
    Init(InitArgs),
}

/// The help's headings, as cargo's.
const COMPILATION: &str = "Compilation Options";
const FEATURES: &str = "Feature Selection";
const PATCHING: &str = "Patching Options";

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
    #[arg(long, value_name = "DIRECTORY", help_heading = COMPILATION)]
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
    /// Coloring (default: `CARGO_TERM_COLOR`, else auto)
    #[arg(long, value_name = "WHEN", value_enum)]
    pub(crate) color: Option<ColorChoice>,
}

impl TargetArgs {
    /// The selection as the operations take it.
    fn selection(&self) -> Selection {
        Selection {
            package: self.package.clone(),
            bin: self.bin.clone(),
            manifest_path: self.manifest_path.clone(),
            target_dir: self.target_dir.clone(),
        }
    }
}

impl OutputArgs {
    /// Sets up the output for the rest of the process.
    fn init(&self, json: bool) {
        // As cargo: the flag, else `CARGO_TERM_COLOR`, else auto.
        let color = self.color.unwrap_or_else(|| {
            std::env::var("CARGO_TERM_COLOR")
                .ok()
                .and_then(|value| clap::ValueEnum::from_str(value.trim(), true).ok())
                .unwrap_or_default()
        });
        output::init(color, self.quiet, self.verbose, json);
    }
}

/// Parses the command line and runs the command; returns the process exit code.
pub(crate) fn main() -> ExitCode {
    let command = match Cargo::parse() {
        Cargo::Hotswap(command) | Cargo::Direct(command) => command,
    };
    let result = match command {
        Command::Run(args) => run::run(args),
        Command::Patch(args) => patch::patch(&args),
        Command::Init(args) => init::init(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let CliError::Failed(err) | CliError::NoSession(err) = &err {
                output::error(err);
            }
            err.exit_code()
        }
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
