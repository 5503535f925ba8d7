//! The events of a session, one type for all of them: with `--message-format json` each is
//! written as one JSON object on stdout, its `reason` naming it as in cargo's messages.

use std::path::PathBuf;

use serde::Serialize;

use crate::codes::Code;

/// What a build makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Target {
    /// The host: the whole program, built by cargo and linked by the tool.
    Host,
    /// A patch: the crate's own code, as a thin shared library.
    Patch,
}

/// Something that happened in a session. Times are in milliseconds: whole for builds, in
/// tenths for the gate and the load (as the `Patched` line shows them).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub(crate) enum Event {
    /// A build started; for a patch, the files whose change started it.
    BuildStarted {
        /// What is built.
        target: Target,
        /// The changed files (absolute paths), for a patch.
        #[serde(skip_serializing_if = "Option::is_none")]
        files: Option<Vec<PathBuf>>,
        /// The local library crates a patch compiles again besides the bin, in dependency
        /// order; absent when none.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        crates: Vec<String>,
    },
    /// A build ended.
    BuildFinished {
        /// What was built.
        target: Target,
        /// Whether it succeeded.
        success: bool,
        /// How long it took, where measured.
        #[serde(skip_serializing_if = "Option::is_none")]
        build_ms: Option<u128>,
        /// rustc's diagnostics of a failed patch build.
        #[serde(skip_serializing_if = "Option::is_none")]
        diagnostics: Option<String>,
    },
    /// The program started.
    HostStarted {
        /// Its process id.
        pid: u32,
    },
    /// The program exited on its own.
    HostExited {
        /// Its exit status, as the standard library displays it.
        status: String,
    },
    /// The program is rebuilt and restarted; its state is lost.
    HostRestarting {
        /// The reason's code.
        code: Code,
        /// Why.
        why: String,
    },
    /// The program applied a patch.
    PatchApplied {
        /// The generation it runs now.
        generation: u64,
        /// The changed functions (or the swapped hot functions) by display name.
        functions: Vec<String>,
        /// The statics with a new initial value the patch carries, by display name.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        statics: Vec<String>,
        /// The patch build's time.
        build_ms: u128,
        /// The gate's time.
        check_ms: f64,
        /// The program's time to load the patch and switch.
        load_ms: f64,
        /// How long the program's threads were stopped to redirect function entries
        /// (`--redirect`), in hundredths.
        #[serde(skip_serializing_if = "Option::is_none")]
        pause_ms: Option<f64>,
    },
    /// No code changed: nothing was sent.
    PatchUnchanged,
    /// The gate refused the patch; nothing was loaded.
    PatchRefused {
        /// Each refusal, its message's lines joined by `\n`.
        refusals: Vec<Coded>,
    },
    /// The patch was sent but not applied.
    PatchFailed {
        /// Its code.
        code: Code,
        /// Why.
        message: String,
    },
    /// The program keeps its previous code after a refusal (`--no-restart`).
    Kept {
        /// The first refusal's code.
        code: Code,
        /// The status message.
        message: String,
    },
    /// Something that needs the user's attention but changes nothing (statics that start
    /// fresh, changes that wait for a restart, new code that panicked).
    Warning {
        /// Its code, if the catalogue has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<Code>,
        /// The status message, without the code.
        message: String,
    },
}

/// A message with its code from the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Coded {
    /// The code.
    pub(crate) code: Code,
    /// The message, its lines joined by `\n`.
    pub(crate) message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cargo_style_json_objects() {
        let line = |event: Event| serde_json::to_string(&event).unwrap();
        assert_eq!(
            line(Event::BuildStarted {
                target: Target::Host,
                files: None,
                crates: Vec::new(),
            }),
            r#"{"reason":"build-started","target":"host"}"#
        );
        assert_eq!(
            line(Event::BuildStarted {
                target: Target::Patch,
                files: Some(vec!["/w/leaf/src/lib.rs".into()]),
                crates: vec!["leaf".into(), "mid".into()],
            }),
            r#"{"reason":"build-started","target":"patch","files":["/w/leaf/src/lib.rs"],"crates":["leaf","mid"]}"#
        );
        assert_eq!(
            line(Event::BuildFinished {
                target: Target::Patch,
                success: false,
                build_ms: None,
                diagnostics: Some("error".into()),
            }),
            r#"{"reason":"build-finished","target":"patch","success":false,"diagnostics":"error"}"#
        );
        assert_eq!(
            line(Event::PatchUnchanged),
            r#"{"reason":"patch-unchanged"}"#
        );
    }
}
