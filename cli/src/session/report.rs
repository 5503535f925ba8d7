//! Telling how a run of the pipeline ended: status lines for people (with the code of the
//! catalogue, [`Code`], where one applies), an [`Event`] for `--message-format json`, and the
//! [`Verdict`] that decides `cargo hotswap patch`'s exit code.

use std::collections::BTreeSet;

use crate::check::Refusal;
use crate::codes::Code;
use crate::control::protocol::Verdict;
use crate::event::{Coded, Event, Target};
use crate::output;
use crate::output::CONTINUATION;

use super::Session;
use super::outcome::{Applied, Outcome};

impl Session {
    /// Reports `outcome` (a refusal or a restart-worthy change also acts on it: restart, or
    /// keep the old code); returns the verdict for `cargo hotswap patch`, `None` for nothing.
    pub(super) fn report(&mut self, outcome: Outcome) -> Option<Verdict> {
        Some(match outcome {
            Outcome::Nothing | Outcome::Superseded => return None,
            Outcome::Restart { code, reason } => self.restart(code, &reason, None),
            Outcome::BuildFailed {
                package,
                diagnostics,
            } => self.build_failed(&package, diagnostics),
            Outcome::BuildError(err) => {
                output::error(&err.context("the patch build failed"));
                Verdict::Failed
            }
            Outcome::Refused(refusals) => {
                output::event(&Event::PatchRefused {
                    refusals: refusals
                        .iter()
                        .map(|refusal| Coded {
                            code: refusal.code(),
                            message: refusal.to_string().replace(CONTINUATION, "\n"),
                        })
                        .collect(),
                });
                for refusal in &refusals {
                    output::warn("Refused", refusal.code().tag(refusal));
                }
                self.refused(refusals.first().map_or(Code::Unchecked, Refusal::code))
            }
            Outcome::Unchecked(err) => {
                let message =
                    format!("{err:#}{CONTINUATION}nothing is loaded that the gate could not check");
                output::event(&Event::PatchRefused {
                    refusals: vec![Coded {
                        code: Code::Unchecked,
                        message: message.replace(CONTINUATION, "\n"),
                    }],
                });
                output::warn("Refused", Code::Unchecked.tag(message));
                self.refused(Code::Unchecked)
            }
            // The pipeline warned already: the change waits for a restart.
            Outcome::RestartOnly { .. } if self.no_restart => Verdict::Refused,
            Outcome::RestartOnly { functions } => self.restart(
                Code::StartupOnly,
                &format!(
                    "{} changed, and {}",
                    functions.join(", "),
                    unreached(&functions, self.redirection.is_some())
                ),
                None,
            ),
            Outcome::Unchanged { message } => {
                output::event(&Event::PatchUnchanged);
                output::status("Unchanged", &message);
                Verdict::Unchanged
            }
            Outcome::Applied(applied) => patched(applied),
            Outcome::NotApplied(message) => {
                output::event(&Event::PatchFailed {
                    code: Code::NotApplied,
                    message: message.clone(),
                });
                output::warn("Refused", Code::NotApplied.tag(message));
                Verdict::Refused
            }
        })
    }

    /// After a patch build that rustc refused: its diagnostics, and that the program keeps
    /// its code. `package` is named as cargo names it.
    fn build_failed(&self, package: &str, diagnostics: String) -> Verdict {
        output::write_stderr(&diagnostics);
        output::event(&Event::BuildFinished {
            target: Target::Patch,
            success: false,
            build_ms: None,
            diagnostics: Some(diagnostics),
        });
        output::warn(
            "Failed",
            format!(
                "could not compile `{package}`; the running program keeps its code until {}",
                self.next_trigger()
            ),
        );
        Verdict::BuildFailed
    }

    /// After a refused patch (`code`, the first refusal's): restart, or with `--no-restart`
    /// keep the old code.
    fn refused(&mut self, code: Code) -> Verdict {
        if self.no_restart {
            let message = format!(
                "`{}` runs its previous code (--no-restart); {} is checked again",
                self.project.bin,
                self.next_trigger()
            );
            output::warn("Kept", &message);
            output::event(&Event::Kept { code, message });
            Verdict::Refused
        } else {
            self.restart(
                code,
                "the patch was refused",
                Some("pass `--no-restart` to keep the old code running instead"),
            );
            Verdict::Refused
        }
    }

    /// What brings the next patch: a save, or with `--no-watch` a request.
    pub(super) fn next_trigger(&self) -> &'static str {
        if self.no_watch {
            "the next `cargo hotswap patch`"
        } else {
            "the next save"
        }
    }
}

/// The `Patched` line and event of a patch the program applied.
fn patched(applied: Applied) -> Verdict {
    let Applied {
        generation,
        functions,
        statics,
        build_ms,
        check_ms,
        load_ms,
        pause_ms,
    } = applied;
    let pause = pause_ms.map_or(String::new(), |ms| format!(", pause {ms:.2}"));
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let counted = match (functions.len(), statics.len()) {
        (n, 0) => count(n, "function"),
        (0, m) => count(m, "static"),
        (n, m) => format!("{} and {}", count(n, "function"), count(m, "static")),
    };
    let names: Vec<String> = functions
        .iter()
        .cloned()
        .chain(statics.iter().map(|name| format!("static {name}")))
        .collect();
    let message = format!(
        "{counted} in {} ms (build {build_ms}, check {check_ms:.1}, load {load_ms:.1}{pause}) \
         generation {generation}: {}",
        (build_ms as f64 + check_ms + load_ms).round(),
        names.join(", ")
    );
    output::event(&Event::PatchApplied {
        generation,
        functions,
        statics,
        build_ms,
        check_ms,
        load_ms,
        pause_ms,
    });
    output::status("Patched", &message);
    Verdict::Applied
}

/// Who calls a function that no redirection reaches though it is not `main` (see
/// `Functions::start_up_only`): it ran as the program started, maybe more than once, or it is
/// still running (a loop of its own).
const START_UP_CALLERS: &str =
    "called only by start-up code (`main` outside any loop, and what only that calls)";

/// Why the changed functions `names` (quoted, as [`Session::located`] shows them) run their
/// new code only after a restart: no hot function reaches them, or (entry redirection,
/// `redirecting`) they are running (`main`) or only start-up code calls them (see
/// [`START_UP_CALLERS`]).
fn unreached(names: &[String], redirecting: bool) -> String {
    let one = names.len() == 1;
    let main_only = names.iter().all(|name| name.starts_with("`main`"));
    match (redirecting, one, main_only) {
        (false, true, _) => "no hot function reaches it".to_owned(),
        (false, false, _) => "no hot function reaches them".to_owned(),
        (true, true, true) => {
            "it runs until the program ends, where no redirection reaches it".to_owned()
        }
        (true, true, false) => format!("it is {START_UP_CALLERS}, so no redirection reaches it"),
        (true, false, _) => format!(
            "they are running (`main`) or {START_UP_CALLERS}, so no redirection reaches them"
        ),
    }
}

/// Warns that `names`, functions whose code changed (quoted, as [`Session::located`] shows
/// them), are reached by no hot function (or, `redirecting`, are running), so the running
/// program never runs their new code: it waits for a restart.
pub(super) fn restart_only(names: &[String], redirecting: bool) {
    if names.is_empty() {
        return;
    }
    let change = if names.len() == 1 {
        "the change takes"
    } else {
        "the changes take"
    };
    warning(
        Code::StartupOnly,
        format!(
            "{} changed, but {}: {change} effect only after a restart",
            names.join(", "),
            unreached(names, redirecting)
        ),
    );
}

/// A `Warning` line with its code, and its event.
pub(crate) fn warning(code: Code, message: String) {
    output::warn("Warning", code.tag(&message));
    output::event(&Event::Warning {
        code: Some(code),
        message,
    });
}

impl Session {
    /// Warns, once per session for each, that the statics and thread-locals `names` of the
    /// crate start fresh in a patch.
    pub(super) fn fresh_statics(&mut self, names: &BTreeSet<String>) {
        let names: Vec<String> = names
            .iter()
            .filter(|name| self.warned_statics.insert((*name).clone()))
            .cloned()
            .collect();
        if names.is_empty() {
            return;
        }
        warning(
            Code::FreshStatics,
            format!(
                "{} start fresh in the new code: {}",
                if names.len() == 1 {
                    "this static or thread-local of the crate will"
                } else {
                    "these statics and thread-locals of the crate will"
                },
                quoted(&names)
            ),
        );
    }
}

/// `` `a`, `b` ``.
fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
