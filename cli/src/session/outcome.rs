//! What the stages of the pipeline hand each other, and how a run ends: the types shared by
//! the pipeline, the agent link and the report.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::build::patch::{Patch, PatchBuildError};
use crate::check::Refusal;
use crate::codes::Code;

/// How a run of the pipeline ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// No file changed in a way that matters.
    Nothing,
    /// A change that a patch cannot carry: the host is rebuilt and the program restarted.
    Restart {
        /// The reason's code.
        code: Code,
        /// Why, for the `Restarting` line.
        reason: String,
    },
    /// rustc rejected the patch; the program keeps its code.
    BuildFailed {
        /// The package whose crate failed to compile.
        package: String,
        /// rustc's diagnostics, when they were captured (else they were shown).
        diagnostics: String,
    },
    /// The patch could not be built for another reason.
    BuildError(anyhow::Error),
    /// The gate refused the patch: nothing was loaded.
    Refused(Vec<Refusal>),
    /// The patch could not be checked: nothing was loaded.
    Unchecked(anyhow::Error),
    /// Every changed function is one that no hot function reaches: nothing was sent.
    RestartOnly {
        /// The changed functions, quoted, with where each is declared.
        functions: Vec<String>,
    },
    /// No code changed: nothing was sent.
    Unchanged {
        /// What the `Unchanged` line says.
        message: String,
    },
    /// The build was speculative and a later save superseded it: nothing was shown, and its
    /// files are built again with the later save's.
    Superseded,
    /// The program applied the patch.
    Applied(Applied),
    /// The patch was sent, or could not be, and is not applied.
    NotApplied(String),
}

/// What the gate hands on: a patch that may be sent.
pub(super) struct Checked {
    /// The built patch.
    pub(super) patch: Patch,
    /// Its number in this session.
    pub(super) number: u64,
    /// The hot functions whose slots the program switches.
    pub(super) functions: Vec<String>,
    /// The changed functions' display names, if known.
    pub(super) changed: Option<Vec<String>>,
    /// The gate's time.
    pub(super) check_time: Duration,
    /// The digest of the patch file's bytes as the gate read them.
    pub(super) digest: u64,
    /// The hot functions the patch has: the running code's once it is applied.
    pub(super) hot: BTreeSet<String>,
    /// The entries it redirects (`--redirect`).
    pub(super) planned: super::redirect::Planned,
}

/// A patch the program applied, as it confirmed it.
#[derive(Debug)]
pub(super) struct Applied {
    /// The generation the program runs now.
    pub(super) generation: u64,
    /// The changed functions (or, if unknown, the swapped hot functions) by display name.
    pub(super) functions: Vec<String>,
    /// The statics with a new initial value that the patch carries, by display name.
    pub(super) statics: Vec<String>,
    /// The patch build's time, in milliseconds.
    pub(super) build_ms: u128,
    /// The gate's time, in milliseconds, rounded to tenths.
    pub(super) check_ms: f64,
    /// The program's time to load and switch, in milliseconds, rounded to tenths.
    pub(super) load_ms: f64,
    /// How long the program's threads were stopped to redirect entries, in milliseconds
    /// rounded to hundredths; `None` when none were redirected.
    pub(super) pause_ms: Option<f64>,
}

impl From<PatchBuildError> for Outcome {
    /// A patch build that failed ends the run: rustc's errors, or what else went wrong.
    fn from(err: PatchBuildError) -> Outcome {
        match err {
            PatchBuildError::Compile {
                package,
                diagnostics,
            } => Outcome::BuildFailed {
                package,
                diagnostics,
            },
            PatchBuildError::Superseded => Outcome::Superseded,
            PatchBuildError::Other(err) => Outcome::BuildError(err),
        }
    }
}
