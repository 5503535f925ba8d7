//! cargo-hotswap hot-patches a running Rust program: `cargo hotswap run` builds the program as a
//! *host* that exports all its symbols, starts it, watches the sources, and on every save builds
//! a thin *patch* (a cdylib with only the edited crate's code) that the host loads and switches
//! its hot functions to.
//!
//! This crate is the command-line tool; it has no stable API. The same executable also serves as
//! the rustc wrapper that captures the final crate's rustc command and as the linker wrapper of
//! the host and patch links; [`ROLE_ENV`] selects which.

mod build;
mod check;
mod codes;
mod commands;
mod control;
mod errors;
mod event;
mod notices;
mod output;
mod process;
mod project;
mod session;
mod symbols;
mod terminal;
mod watch;

use std::process::ExitCode;

/// Environment variable that makes this executable act as a wrapper instead of the CLI:
/// `rustc` (rustc wrapper for the host's cargo build), `link-host` or `link-patch` (linker).
pub const ROLE_ENV: &str = "HOTSWAP_ROLE";

/// Runs the executable in the role the environment selects; returns the process exit code.
pub fn main() -> ExitCode {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("rustc") => build::capture::rustc_wrapper_main(),
        Ok("link-host") => build::link::linker_main(build::link::Mode::Host),
        Ok("link-patch") => build::link::linker_main(build::link::Mode::Patch),
        _ => commands::main(),
    }
}
