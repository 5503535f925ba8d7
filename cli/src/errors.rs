//! The top-level error of the CLI: each variant carries its exit code, and [`EXIT_CODES`] (the
//! text `--help` ends with, which the book's CLI reference includes) is the one list of them.

use std::process::ExitCode;

/// Why a command did not succeed. The exit code of each variant is documented in
/// [`EXIT_CODES`]; a test produces each of them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Anything that stops the command, with its chain of causes.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
    /// `patch`: the session could not build or apply a patch for another reason (the host did
    /// not start, the patch build could not run); its answer has been shown.
    #[error("the patch was not applied")]
    NotApplied,
    /// `patch`: the patch was refused before loading, or the program did not apply it; the
    /// session's answer has been shown.
    #[error("the patch was not applied")]
    Refused,
    /// `patch`: the patch (or the host, for a restart) did not build; the compiler's
    /// diagnostics have been shown.
    #[error("the build failed")]
    BuildFailed,
    /// `patch`: no `cargo hotswap run` session runs the program.
    #[error(transparent)]
    NoSession(anyhow::Error),
    /// `run`: interrupted (Ctrl-C, SIGINT, SIGTERM, SIGHUP) after stopping the program.
    #[error("interrupted")]
    Interrupted,
}

/// Exit code of invalid arguments (clap's).
pub(crate) const INVALID_ARGUMENTS: u8 = 2;

/// Every exit code with what it means, in the order `--help` lists them.
const CODES: &[(u8, &str)] = &[
    (
        0,
        "success (`patch`: the program runs the current code: patched, restarted with it, or \
         nothing to patch)",
    ),
    (
        1,
        "an error, described on stderr (`run`: the project cannot be built or run, or another \
         session runs it; `patch`: the session could not build or apply a patch for another \
         reason)",
    ),
    (INVALID_ARGUMENTS, "invalid arguments"),
    (
        3,
        "`patch`: the patch was refused, or the program did not apply it",
    ),
    (4, "`patch`: the patch did not compile"),
    (5, "`patch`: no session runs the program"),
    (
        130,
        "`run` was interrupted (Ctrl-C, SIGINT or SIGTERM), after stopping the program",
    ),
];

/// The `Exit status:` section of `--help`, made from [`CODES`].
pub(crate) static EXIT_CODES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut text = String::from("Exit status:");
    for (code, meaning) in CODES {
        text.push_str(&format!("\n  {code:<4} "));
        text.push_str(&wrap(meaning, 92, "\n       "));
    }
    text
});

/// `text` cut at spaces into lines of at most `width` characters, joined by `indent`.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split(' ') {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_owned());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.join(indent)
}

impl CliError {
    /// The process exit code, as [`EXIT_CODES`] lists it.
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    /// The exit code as a number.
    fn code(&self) -> u8 {
        match self {
            CliError::Failed(_) | CliError::NotApplied => 1,
            CliError::Refused => 3,
            CliError::BuildFailed => 4,
            CliError::NoSession(_) => 5,
            CliError::Interrupted => 130,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_documented_code() {
        for error in [
            CliError::Failed(anyhow::anyhow!("x")),
            CliError::NotApplied,
            CliError::Refused,
            CliError::BuildFailed,
            CliError::NoSession(anyhow::anyhow!("x")),
            CliError::Interrupted,
        ] {
            let code = error.code();
            assert!(
                CODES.iter().any(|(c, _)| *c == code),
                "{error:?} exits with {code}, which `--help` does not list"
            );
        }
    }

    #[test]
    fn the_help_text_lists_the_codes_in_columns() {
        assert!(EXIT_CODES.starts_with("Exit status:\n  0    success"));
        assert!(EXIT_CODES.contains("\n  130  `run` was interrupted"));
        assert!(EXIT_CODES.lines().all(|line| line.len() <= 100));
    }
}
