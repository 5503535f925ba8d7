//! Rewriting a captured rustc command line into a replay: the same crate, compiled as another
//! crate type into our own output paths.

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

/// What every replay sets: full debug info, kept in the objects. The gate reads the layouts of
/// the crate's types (fields, variants, offsets) from the host's and each patch's DWARF, and
/// only full debug info describes them (`-C debuginfo=1` gives functions and line tables but no
/// members). In a dev profile this is what cargo passes anyway; other profiles pay for it in
/// the crate's own compile only, never in its dependencies'.
pub(crate) const DEBUG_INFO: [&str; 4] = ["-C", "debuginfo=2", "-C", "split-debuginfo=off"];

/// The captured arguments without the options a replay sets itself; `-C embed-bitcode` is
/// dropped too when the profile used LTO.
pub(crate) fn base_args(captured: &[String]) -> Vec<String> {
    let uses_lto = codegen_options(captured).any(|kv| {
        kv == "lto"
            || kv
                .strip_prefix("lto=")
                .is_some_and(|v| !["off", "no", "false", "n"].contains(&v))
    });
    let mut out = Vec::with_capacity(captured.len());
    let mut iter = captured.iter();
    while let Some(arg) = iter.next() {
        if DROPPED_OPTIONS.contains(&arg.as_str()) {
            iter.next();
            continue;
        }
        if DROPPED_OPTIONS.iter().any(|o| {
            arg.strip_prefix(o)
                .is_some_and(|rest| rest.starts_with('='))
        }) {
            continue;
        }
        let (codegen, separate) = if arg == "-C" {
            match iter.next() {
                Some(kv) => (Some(kv.as_str()), true),
                None => break,
            }
        } else {
            (arg.strip_prefix("-C"), false)
        };
        if let Some(kv) = codegen {
            let key = kv.split('=').next().unwrap_or(kv);
            let dropped = DROPPED_CODEGEN.contains(&key) || (uses_lto && key == "embed-bitcode");
            if !dropped {
                if separate {
                    out.push("-C".to_owned());
                }
                out.push(if separate { kv.to_owned() } else { arg.clone() });
            }
            continue;
        }
        out.push(arg.clone());
    }
    out.extend(DEBUG_INFO.map(str::to_owned));
    out
}

/// Every codegen option (`key[=value]`) in `-C kv` or `-Ckv` spelling.
fn codegen_options(args: &[String]) -> impl Iterator<Item = &str> {
    let mut iter = args.iter();
    std::iter::from_fn(move || {
        loop {
            let arg = iter.next()?;
            if arg == "-C" {
                return iter.next().map(String::as_str);
            }
            if let Some(kv) = arg.strip_prefix("-C") {
                return Some(kv);
            }
        }
    })
}

/// Appends `-C key=value`.
pub(crate) fn push_codegen(args: &mut Vec<String>, key_value: impl Into<String>) {
    args.push("-C".to_owned());
    args.push(key_value.into());
}

#[cfg(test)]
mod tests {
    use super::base_args;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

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
