//! Reading a rustc command line: the one walker that splits it into options with their values,
//! codegen options and the rest, keeping each argument's own spelling, so that a replay can drop
//! or keep an option whichever way cargo wrote it (`--x v` or `--x=v`, `-C k=v` or `-Ck=v`,
//! `-L p` or `-Lp`).

/// rustc's options that take their value as the next argument.
const TAKES_VALUE: &[&str] = &[
    "--crate-name",
    "--crate-type",
    "--edition",
    "--emit",
    "--out-dir",
    "-o",
    "--extern",
    "-L",
    "-l",
    "--cfg",
    "--check-cfg",
    "--cap-lints",
    "--error-format",
    "--json",
    "--color",
    "--target",
    "--sysroot",
    "--print",
    "--remap-path-prefix",
    "--diagnostic-width",
    "-A",
    "-W",
    "-D",
    "-F",
    "--allow",
    "--warn",
    "--deny",
    "--forbid",
    "--force-warn",
    "-Z",
];

/// Short options that also take their value joined: `-Lpath`, `-lfoo`, `-Awarnings`.
const SHORT_JOINED: &[&str] = &["-L", "-l", "-o", "-A", "-W", "-D", "-F", "-Z"];

/// One argument of a rustc command line, as the walker reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arg<'a> {
    /// An option with its value, `--crate-name app`, `--edition=2024`, `-Lpath`.
    Option {
        /// Its name, `--crate-name`, `-L`.
        name: &'a str,
        /// Its value.
        value: &'a str,
    },
    /// A codegen option, `-C opt-level=3`, `-Cdebuginfo=2`.
    Codegen {
        /// Its key, `opt-level`.
        key: &'a str,
        /// `key=value` as written after `-C`.
        key_value: &'a str,
    },
    /// Anything else: a flag without a value, or the crate's root source file.
    Other(&'a str),
}

/// The arguments of `args`, one [`Arg`] each, with the arguments it spans as written.
pub(crate) fn walk(args: &[String]) -> impl Iterator<Item = (Arg<'_>, &[String])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let arg = args.get(at)?.as_str();
        let (parsed, len) = if arg == "-C" {
            match args.get(at + 1) {
                Some(kv) => (codegen(kv), 2),
                None => (Arg::Other(arg), 1),
            }
        } else if let Some(kv) = arg.strip_prefix("-C") {
            (codegen(kv), 1)
        } else if let Some((name, value)) = arg.split_once('=').filter(|_| arg.starts_with("--")) {
            (Arg::Option { name, value }, 1)
        } else if TAKES_VALUE.contains(&arg) {
            match args.get(at + 1) {
                Some(value) => (Arg::Option { name: arg, value }, 2),
                None => (Arg::Other(arg), 1),
            }
        } else if let Some(name) = SHORT_JOINED.iter().find(|n| arg.starts_with(**n)) {
            (
                Arg::Option {
                    name,
                    value: &arg[name.len()..],
                },
                1,
            )
        } else {
            (Arg::Other(arg), 1)
        };
        let spelled = &args[at..at + len];
        at += len;
        Some((parsed, spelled))
    })
}

/// A codegen option's parts.
fn codegen(key_value: &str) -> Arg<'_> {
    Arg::Codegen {
        key: key_value.split('=').next().unwrap_or(key_value),
        key_value,
    }
}

/// The value of option `name` (`--crate-name`), or of codegen option `-C key` when `name` is
/// written so (`-C extra-filename`).
pub(crate) fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let codegen_key = name.strip_prefix("-C ");
    walk(args).find_map(|(arg, _)| match (arg, codegen_key) {
        (Arg::Codegen { key, key_value, .. }, Some(wanted)) if key == wanted => {
            key_value.split_once('=').map(|(_, v)| v)
        }
        (Arg::Option { name: n, value, .. }, None) if n == name => Some(value),
        _ => None,
    })
}

/// The crate's root source file: the argument that is no option and names a `.rs` file.
pub(crate) fn source(args: &[String]) -> Option<&str> {
    walk(args).find_map(|(arg, _)| match arg {
        Arg::Other(file) if !file.starts_with('-') && file.ends_with(".rs") => Some(file),
        _ => None,
    })
}

/// The `--extern` values (`name=path`, `noprelude:name=path`) as `(name, path)`; a value
/// without a path is left out.
pub(crate) fn externs(args: &[String]) -> Vec<(&str, &str)> {
    walk(args)
        .filter_map(|(arg, _)| match arg {
            Arg::Option {
                name: "--extern",
                value,
            } => {
                let (left, path) = value.split_once('=')?;
                Some((left.rsplit(':').next().unwrap_or(left), path))
            }
            _ => None,
        })
        .collect()
}

/// Every codegen option's `key[=value]`.
pub(crate) fn codegen_options(args: &[String]) -> impl Iterator<Item = &str> {
    walk(args).filter_map(|(arg, _)| match arg {
        Arg::Codegen { key_value, .. } => Some(key_value),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) fn split(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_in_every_spelling() {
        let args = split(
            "--crate-name app --edition=2024 src/main.rs -C metadata=abc -Cextra-filename=-x \
             -L dependency=/d -Lnative=/n --extern log=/d/liblog.rlib -Awarnings --test",
        );
        assert_eq!(value(&args, "--crate-name"), Some("app"));
        assert_eq!(value(&args, "--edition"), Some("2024"));
        assert_eq!(value(&args, "-C metadata"), Some("abc"));
        assert_eq!(value(&args, "-C extra-filename"), Some("-x"));
        assert_eq!(value(&args, "-C opt-level"), None);
        assert_eq!(value(&args, "--target"), None);
        assert_eq!(source(&args), Some("src/main.rs"));
        let short: Vec<&str> = walk(&args)
            .filter_map(|(arg, _)| match arg {
                Arg::Option {
                    name: "-L", value, ..
                } => Some(value),
                _ => None,
            })
            .collect();
        assert_eq!(short, ["dependency=/d", "native=/n"]);
        assert_eq!(
            codegen_options(&args).collect::<Vec<_>>(),
            ["metadata=abc", "extra-filename=-x"]
        );
        let spans: usize = walk(&args).map(|(_, spelled)| spelled.len()).sum();
        assert_eq!(spans, args.len(), "every argument is read once");
    }
}
