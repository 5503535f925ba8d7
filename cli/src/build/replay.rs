//! Rewriting a captured rustc command line into a replay: the same crate, compiled as another
//! crate type into our own output paths.

use super::args::{self, Arg};

/// Options (with their value) that a replay drops and then sets itself, if at all.
const DROPPED_OPTIONS: &[&str] = &[
    "--crate-type",
    "--out-dir",
    "--emit",
    "--json",
    "--error-format",
    "--color",
    "-o",
];

/// Codegen options (`-C key[=value]`) that a replay drops. Crate-local ThinLTO would delete the
/// private `main` from the rlib, and with fat LTO objects hold bitcode only. The debug info
/// options are set anew (see [`DEBUG_INFO`]).
const DROPPED_CODEGEN: &[&str] = &[
    "incremental",
    "lto",
    "linker-plugin-lto",
    "linker",
    "debuginfo",
    "split-debuginfo",
    "strip",
];

/// What every replay sets: full debug info, kept in the objects (a patch's build then moves it
/// to `.dwo` files beside them: see `patch::patch_args`). The gate reads the layouts of
/// the crate's types (fields, variants, offsets) from the host's and each patch's DWARF, and
/// only full debug info describes them (`-C debuginfo=1` gives functions and line tables but no
/// members). In a dev profile this is what cargo passes anyway; other profiles pay for it in
/// the crate's own compile only, never in its dependencies'.
pub(crate) const DEBUG_INFO: [&str; 4] = ["-C", "debuginfo=2", "-C", "split-debuginfo=off"];

/// The captured arguments without the options a replay sets itself; `-C embed-bitcode` is
/// dropped too when the profile used LTO (objects would hold bitcode only). Ends with
/// [`DEBUG_INFO`].
pub(crate) fn base_args(captured: &[String]) -> Vec<String> {
    let uses_lto = args::codegen_options(captured).any(|kv| {
        kv == "lto"
            || kv
                .strip_prefix("lto=")
                .is_some_and(|v| !["off", "no", "false", "n"].contains(&v))
    });
    let mut out: Vec<String> = args::walk(captured)
        .filter(|(arg, _)| match *arg {
            Arg::Option { name, .. } => !DROPPED_OPTIONS.contains(&name),
            Arg::Codegen { key, .. } => {
                !(DROPPED_CODEGEN.contains(&key) || (uses_lto && key == "embed-bitcode"))
            }
            Arg::Other(_) => true,
        })
        .flat_map(|(_, spelled)| spelled.iter().cloned())
        .collect();
    out.extend(DEBUG_INFO.map(str::to_owned));
    out
}

/// Appends `-C key=value`.
pub(crate) fn push_codegen(args: &mut Vec<String>, key_value: impl Into<String>) {
    args.push("-C".to_owned());
    args.push(key_value.into());
}

#[cfg(test)]
mod tests {
    use super::base_args;

    use crate::build::args::split as args;

    #[test]
    fn replay_drops_outputs_and_lto_but_keeps_identity() {
        let captured = args(
            "--crate-name app --edition=2021 src/main.rs --error-format=json \
             --json=diagnostic-rendered-ansi --crate-type bin --emit=dep-info,link -C embed-bitcode=no \
             -C debuginfo=2 -C metadata=abc -C extra-filename=-abc --out-dir /t/deps \
             -C incremental=/t/inc -L dependency=/t/deps --extern log=/t/deps/liblog.rlib \
             -Clinker=clang",
        );
        assert_eq!(
            base_args(&captured),
            args(
                "--crate-name app --edition=2021 src/main.rs -C embed-bitcode=no \
                 -C metadata=abc -C extra-filename=-abc -L dependency=/t/deps \
                 --extern log=/t/deps/liblog.rlib -C debuginfo=2 -C split-debuginfo=off"
            )
        );
    }

    #[test]
    fn lto_profiles_also_drop_embed_bitcode() {
        let captured = args(
            "src/main.rs -C lto -C embed-bitcode=no -C opt-level=3 -C strip=debuginfo -C debuginfo=0",
        );
        assert_eq!(
            base_args(&captured),
            args("src/main.rs -C opt-level=3 -C debuginfo=2 -C split-debuginfo=off")
        );
    }
}
