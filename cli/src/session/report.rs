//! Telling how a run of the pipeline ended: status lines for people, an [`Event`] for
//! `--message-format json`, and the [`Answer`] that `cargo hotswap patch` prints.

use std::collections::BTreeSet;

use crate::control::protocol::Verdict;
use crate::event::{Event, Target};
use crate::output;
use crate::output::CONTINUATION;

use super::outcome::{Applied, Outcome};
use super::{Answer, Session};

impl Session {
    /// Reports `outcome` (a refusal or a restart-worthy change also acts on it: restart, or
    /// keep the old code); returns the answer for `cargo hotswap patch`, `None` for nothing.
    pub(super) fn report(&mut self, outcome: Outcome) -> Option<Answer> {
        Some(match outcome {
            Outcome::Nothing => return None,
            Outcome::Restart { reason } => self.restart(&reason, None),
            Outcome::BuildFailed { diagnostics } => {
                output::write_stderr(&diagnostics);
                self.last_diagnostics.clone_from(&diagnostics);
                output::event(&Event::BuildFinished {
                    target: Target::Patch,
                    success: false,
                    build_ms: None,
                    diagnostics: Some(diagnostics),
                });
                // Named as cargo names it: the package.
                let message = format!(
                    "could not compile `{}`; the running program keeps its code until {}",
                    self.project.package,
                    self.next_trigger()
                );
                output::warn("Failed", &message);
                Answer::new(Verdict::BuildFailed, "Failed", message)
            }
            Outcome::BuildError(err) => {
                let err = err.context("the patch build failed");
                output::error(&err);
                Answer::new(Verdict::Failed, "Failed", format!("{err:#}"))
            }
            Outcome::Refused(refusals) => {
                let messages: Vec<String> = refusals.iter().map(ToString::to_string).collect();
                output::event(&Event::PatchRefused {
                    refusals: messages
                        .iter()
                        .map(|m| m.replace(CONTINUATION, "\n"))
                        .collect(),
                });
                for message in &messages {
                    output::warn("Refused", message);
                }
                self.refused(&messages.join("\n     Refused "))
            }
            Outcome::Unchecked(err) => {
                output::error(&err);
                self.refused(&format!("{err:#}"))
            }
            Outcome::RestartOnly { functions } if self.no_restart => Answer::new(
                Verdict::Refused,
                "Warning",
                format!(
                    "{} changed, but no hot function reaches it: the change takes effect only \
                     after a restart",
                    quoted(&functions)
                ),
            ),
            Outcome::RestartOnly { functions } => self.restart(
                &format!(
                    "{} changed, and only start-up code reaches {}",
                    quoted(&functions),
                    if functions.len() == 1 { "it" } else { "them" }
                ),
                None,
            ),
            Outcome::Unchanged { message } => {
                output::event(&Event::PatchUnchanged);
                output::status("Unchanged", &message);
                Answer::new(Verdict::Unchanged, "Unchanged", message)
            }
            Outcome::Applied(applied) => patched(applied),
            Outcome::NotApplied(message) => {
                output::event(&Event::PatchFailed {
                    message: message.clone(),
                });
                output::warn("Refused", &message);
                Answer::new(Verdict::Refused, "Refused", message)
            }
        })
    }

    /// After a refused patch: restart, or with `--no-restart` keep the old code.
    fn refused(&mut self, why: &str) -> Answer {
        if self.no_restart {
            let message = format!(
                "`{}` runs its previous code (--no-restart); {} is checked again",
                self.project.bin,
                self.next_trigger()
            );
            output::warn("Kept", &message);
            output::event(&Event::Kept { message });
            Answer::new(Verdict::Refused, "Refused", why)
        } else {
            self.restart(
                "the patch was refused",
                Some("pass `--no-restart` to keep the old code running instead"),
            );
            Answer::new(
                Verdict::Refused,
                "Refused",
                format!("{why}{CONTINUATION}the program was restarted (state is lost)"),
            )
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
fn patched(applied: Applied) -> Answer {
    let Applied {
        generation,
        functions,
        build_ms,
        check_ms,
        load_ms,
    } = applied;
    let message = format!(
        "{} {} in {} ms (build {build_ms}, check {check_ms:.1}, load {load_ms:.1}) generation \
         {generation}: {}",
        functions.len(),
        if functions.len() == 1 {
            "function"
        } else {
            "functions"
        },
        (build_ms as f64 + check_ms + load_ms).round(),
        functions.join(", ")
    );
    output::event(&Event::PatchApplied {
        generation,
        functions,
        build_ms,
        check_ms,
        load_ms,
    });
    output::status("Patched", &message);
    Answer::new(Verdict::Applied, "Patched", message)
}

/// Warns that `names`, functions whose code changed, are reached by no hot function, so the
/// running program never runs their new code.
pub(super) fn restart_only(names: &[String]) {
    if names.is_empty() {
        return;
    }
    let (pronoun, change) = if names.len() == 1 {
        ("it", "the change takes")
    } else {
        ("them", "the changes take")
    };
    warning(format!(
        "{} changed, but no hot function reaches {pronoun}: {change} effect only after a restart",
        quoted(names)
    ));
}

/// A `Warning` line, and its event.
fn warning(message: String) {
    output::warn("Warning", &message);
    output::event(&Event::Warning { message });
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
        warning(format!(
            "{} start fresh in the new code: {}",
            if names.len() == 1 {
                "this static or thread-local of the crate will"
            } else {
                "these statics and thread-locals of the crate will"
            },
            quoted(&names)
        ));
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
