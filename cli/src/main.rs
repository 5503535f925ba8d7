//! `cargo-hotswap`: the cargo subcommand, and the rustc and linker wrapper it installs for its own
//! builds (selected by the `HOTSWAP_ROLE` environment variable).

fn main() -> std::process::ExitCode {
    cargo_hotswap::main()
}
