//! Turning a batch of changed files into a patch the program confirms, a refusal, or a
//! restart: one function per stage (changes -> build -> gate -> send), each handing the next
//! what it needs or ending the run with an [`Outcome`], which [`Session::report`] then tells.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::build::host::{self, Host};
use crate::build::patch::{self, Patch, PatchBuildError};
use crate::check::{self, PatchImage};
use crate::codes::Code;
use crate::control::protocol::Verdict;
use crate::event::{Event, Target};
use crate::output;
use crate::watch::FileKind;

use super::Session;
use super::files::{changed_files, relative};
use super::outcome::{Checked, Outcome};

/// What the changes stage hands on: the changed files and the build the program runs.
struct Changes {
    /// The changed files.
    paths: Vec<PathBuf>,
    /// The running program's host build, whose command a patch replays.
    host: Host,
}

impl Session {
    /// Reacts to a batch of changed paths: restart, patch, or nothing. With `force` (asked by
    /// `cargo hotswap patch`), builds a patch even if no file changed. Returns what
    /// verdict `cargo hotswap patch` answers, if anything happened.
    pub(super) fn rebuild(&mut self, paths: Vec<PathBuf>, force: bool) -> Option<Verdict> {
        let outcome = match self.stages(paths, force) {
            Ok(outcome) | Err(outcome) => outcome,
        };
        self.report(outcome)
    }

    /// The stages in order; `Err` is an outcome that ends the run early.
    fn stages(&mut self, paths: Vec<PathBuf>, force: bool) -> Result<Outcome, Outcome> {
        let changes = self.changes(paths, force)?;
        let patch = self.build_patch(&changes)?;
        let checked = self.gate(&changes, patch)?;
        Ok(self.send(checked))
    }

    /// The changed files, or the outcome when there are none that matter or when one of them
    /// (or the toolchain, or the program's absence) calls for a restart.
    fn changes(&mut self, paths: Vec<PathBuf>, force: bool) -> Result<Changes, Outcome> {
        let changed = self.changed(paths);
        if changed.is_empty() && !force {
            return Err(Outcome::Nothing);
        }
        if let Some((code, reason)) = &self.pending_restart {
            // The last rebuild that a change called for failed: the running program is older
            // than that change, so no patch built now would match it.
            return Err(Outcome::Restart {
                code: *code,
                reason: reason.clone(),
            });
        }
        // Every such file is named: the one that changed may sort after another that cargo
        // rewrote (`Cargo.lock` before `Cargo.toml`).
        let build: Vec<PathBuf> = changed
            .iter()
            .filter(|(_, kind)| *kind == FileKind::Build)
            .map(|(path, _)| path.clone())
            .collect();
        if !build.is_empty() {
            return Err(Outcome::Restart {
                code: Code::BuildFile,
                reason: format!(
                    "{} changed, which the patch cannot carry: the host is rebuilt",
                    changed_files(&build, &self.project.workspace_root)
                ),
            });
        }
        let Some(running) = &self.running else {
            // The host exited: build and start it again, from the current sources.
            return Err(Outcome::Restart {
                code: Code::NotRunning,
                reason: "the program is not running".to_owned(),
            });
        };
        let host = running.build.clone();
        if host::toolchain_stamp(&host.capture) != host.toolchain {
            return Err(Outcome::Restart {
                code: Code::Toolchain,
                reason: "the Rust toolchain changed since the program was built".to_owned(),
            });
        }
        let paths: Vec<PathBuf> = changed.into_iter().map(|(path, _)| path).collect();
        if self.only_layout_changed(&paths) {
            return Err(Outcome::Unchanged {
                message: format!(
                    "only comments or layout changed in {}; nothing to patch",
                    self.files(&paths)
                ),
            });
        }
        Ok(Changes { paths, host })
    }

    /// Builds the patch; a file the patch does not compile (another crate's) calls for a
    /// restart.
    fn build_patch(&mut self, changes: &Changes) -> Result<Patch, Outcome> {
        let number = self.next_patch + 1;
        output::status(
            "Patching",
            format!(
                "{} ({} changed)",
                self.project.bin,
                self.files(&changes.paths)
            ),
        );
        output::event(&Event::BuildStarted {
            target: Target::Patch,
            files: Some(changes.paths.clone()),
        });
        // rustc's output is captured for the JSON event, and on a terminal so that it does not
        // cross the spinner; it is shown right after.
        let capture = output::json() || output::progress_allowed() || self.serving_request;
        let spinner = output::spinner("Compiling", &self.project.crate_name);
        let result = patch::build(
            &changes.host,
            &self.work,
            &self.session_dir,
            number,
            capture,
        );
        output::finish(spinner);
        let patch = match result {
            Ok(patch) => patch,
            Err(PatchBuildError::Compile { diagnostics, .. }) => {
                return Err(Outcome::BuildFailed { diagnostics });
            }
            Err(PatchBuildError::Other(err)) => return Err(Outcome::BuildError(err)),
        };
        output::write_stderr(&patch.messages);
        output::event(&Event::BuildFinished {
            target: Target::Patch,
            success: true,
            build_ms: Some(patch.build_time.as_millis()),
            diagnostics: None,
        });
        self.next_patch = number;
        let outside: Vec<_> = changes
            .paths
            .iter()
            .filter(|path| !patch.sources.contains(path))
            .map(|path| format!("`{}`", relative(path, &self.project.workspace_root)))
            .collect();
        if !outside.is_empty() {
            return Err(Outcome::Restart {
                code: Code::OutsideCrate,
                reason: format!(
                    "{} {} outside the `{}` bin crate, and only that crate is patched yet",
                    outside.join(", "),
                    if outside.len() == 1 { "is" } else { "are" },
                    self.project.bin
                ),
            });
        }
        Ok(patch)
    }

    /// Checks the patch against the running program (see [`check`]) and tells which functions
    /// changed; a patch that changes nothing the program runs goes no further.
    fn gate(&mut self, changes: &Changes, patch: Patch) -> Result<Checked, Outcome> {
        let started = Instant::now();
        let running = self.running.as_ref().expect("the changes stage saw it");
        let image = PatchImage::read(
            &patch.path,
            self.crate_id(&changes.host),
            &running.image.held,
        )
        .map_err(|err| Outcome::Unchecked(err.context("cannot check the patch")))?;
        let accepted = match check::check(&running.image, &image, self.running_hot.as_ref()) {
            Ok(accepted) => accepted,
            Err(mut refusals) => {
                check::locate_types(
                    &mut refusals,
                    &self.source_dir(),
                    &self.project.workspace_root,
                );
                return Err(Outcome::Refused(refusals));
            }
        };
        let crate_name = &self.project.crate_name;
        let changed = match (&patch.code, &self.baseline) {
            (Some(new), Some(old)) => Some(new.changed_since(old, crate_name)),
            _ => None,
        };
        let live = check::live_changes(changed, patch.code.as_ref(), crate_name);
        let restart_only = self.located(&patch, &changes.host, &live.restart_only);
        if live.only_restart() {
            // Only code that no hot function reaches changed (start-up code): a restart runs
            // it; with `--no-restart` the change waits, and this build is the new baseline.
            if self.no_restart {
                super::report::restart_only(&restart_only);
                self.baseline = patch.code;
            }
            return Err(Outcome::RestartOnly {
                functions: restart_only,
            });
        }
        super::report::restart_only(&restart_only);
        if live.live.as_ref().is_some_and(Vec::is_empty) {
            return Err(Outcome::Unchanged {
                message: if changes.paths.is_empty() {
                    "no code changed; nothing to patch".to_owned()
                } else {
                    format!(
                        "no code changed in {}; nothing to patch",
                        self.files(&changes.paths)
                    )
                },
            });
        }
        if let Some(code) = &patch.code {
            let statics = code.statics.clone();
            self.fresh_statics(&statics);
        }
        Ok(Checked {
            number: self.next_patch,
            functions: accepted.functions,
            changed: live.live,
            check_time: started.elapsed(),
            digest: image.digest,
            hot: image.records.into_keys().collect(),
            patch,
        })
    }

    /// Sends a checked patch to the program and waits for its answer.
    fn send(&mut self, checked: Checked) -> Outcome {
        let code = checked.patch.code.clone();
        let hot = checked.hot.clone();
        match self.apply(checked) {
            Ok(applied) => {
                self.baseline = code;
                self.running_hot = Some(hot);
                Outcome::Applied(applied)
            }
            Err(message) => Outcome::NotApplied(message),
        }
    }

    /// The functions `names` (display names) as messages show them, quoted, each with where the
    /// patch's debug info says it is declared: `` `main::{closure}` at src/main.rs:41 ``.
    fn located(&self, patch: &Patch, host: &Host, names: &[String]) -> Vec<String> {
        if names.is_empty() {
            return Vec::new();
        }
        let crate_name = &self.project.crate_name;
        let shown = |name: &str| check::code::display_name(name, crate_name);
        let lines = std::fs::read(&patch.path).ok().and_then(|data| {
            let file = object::File::parse(&*data).ok()?;
            check::dwarf::function_lines(&file, self.crate_id(host).source, &|name| {
                shown(name).is_some_and(|shown| names.contains(&shown))
            })
            .ok()
        });
        let mut at: std::collections::HashMap<String, (String, u64)> = Default::default();
        for (name, (file, line)) in lines.into_iter().flatten() {
            if let Some(shown) = shown(&name) {
                let known = at.entry(shown).or_insert_with(|| (file.clone(), line));
                if line < known.1 {
                    *known = (file, line);
                }
            }
        }
        // A closure changes with the function around it: `main::{closure}` is told as `main`'s
        // when that changed too.
        let outermost = |name: &&String| {
            !names.iter().any(|outer| {
                outer != *name
                    && name
                        .strip_prefix(outer.as_str())
                        .is_some_and(|rest| rest.starts_with("::{closure}"))
            })
        };
        names
            .iter()
            .filter(outermost)
            .map(|name| match at.get(name) {
                Some((file, line)) => {
                    let file = relative(Path::new(file), &self.project.workspace_root);
                    format!("`{name}` at {file}:{line}")
                }
                None => format!("`{name}`"),
            })
            .collect()
    }

    /// The changed files as a list for messages, or `no file`.
    fn files(&self, paths: &[PathBuf]) -> String {
        if paths.is_empty() {
            "no file".to_owned()
        } else {
            changed_files(paths, &self.project.workspace_root)
        }
    }

    /// The directory whose `.rs` files define the crate's types: the package's `src`.
    fn source_dir(&self) -> PathBuf {
        let package_dir = self
            .project
            .manifest_path
            .parent()
            .unwrap_or(Path::new("."));
        let src = package_dir.join("src");
        if src.is_dir() {
            src
        } else {
            package_dir.to_path_buf()
        }
    }
}
