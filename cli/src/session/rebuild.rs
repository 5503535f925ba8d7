//! Turning a change into a patch the host confirms, a refusal, or a restart: build, check,
//! send, report.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotswap::protocol::{HostMessage, ToolMessage};

use crate::build::host;
use crate::build::patch::{self, PatchBuildError};
use crate::check::{self, PatchImage, Refusal};
use crate::output;
use crate::watch::FileKind;

use super::files::{changed_files, content_hash, relative, short_name};
use super::{APPLY_DEADLINE, Outcome, Session};

impl Session {
    /// Reacts to a batch of changed paths: restart, patch, or nothing. With `force` (asked by
    /// `cargo hotswap patch`), builds a patch even if no file changed.
    pub(super) fn rebuild(&mut self, paths: Vec<PathBuf>, force: bool) -> Outcome {
        let changed = self.changed(paths);
        if changed.is_empty() && !force {
            return Outcome::Nothing;
        }
        if let Some((path, _)) = changed.iter().find(|(_, kind)| *kind == FileKind::Build) {
            let reason = format!(
                "`{}` changed, which the patch cannot carry: the host is rebuilt",
                relative(path, &self.project.workspace_root)
            );
            return self.restart(&reason, None);
        }
        let Some(running) = &self.running else {
            // The host exited: build and start it again, from the current sources (S18).
            return self.restart("the program is not running", None);
        };
        let build = running.build.clone();
        if host::toolchain_stamp(&build.capture) != build.toolchain {
            return self.restart(
                "the Rust toolchain changed since the program was built",
                None,
            );
        }
        let number = self.next_patch + 1;
        let changed_paths: Vec<PathBuf> = changed.iter().map(|(p, _)| p.clone()).collect();
        let files = if changed_paths.is_empty() {
            "no file".to_owned()
        } else {
            changed_files(&changed_paths, &self.project.workspace_root)
        };
        output::status(
            "Patching",
            format!("{} ({files} changed)", self.project.bin),
        );
        output::event(serde_json::json!({
            "reason": "build-started",
            "target": "patch",
            "files": changed_paths,
        }));
        // rustc's output is captured for the JSON event, and on a terminal so that it does not
        // cross the spinner; it is shown right after.
        let capture = output::json() || output::progress_allowed() || self.serving_request;
        let spinner = output::spinner("Compiling", &self.project.crate_name);
        let result = patch::build(&build, &self.work, &self.session_dir, number, capture);
        output::finish(spinner);
        let patch = match result {
            Ok(patch) => {
                output::write_stderr(&patch.messages);
                patch
            }
            Err(PatchBuildError::Compile { diagnostics, .. }) => {
                output::write_stderr(&diagnostics);
                self.last_diagnostics.clone_from(&diagnostics);
                output::event(serde_json::json!({
                    "reason": "build-finished",
                    "target": "patch",
                    "success": false,
                    "diagnostics": diagnostics,
                }));
                // Named as cargo names it: the package.
                let message = format!(
                    "could not compile `{}`; the running program keeps its code until {}",
                    self.project.package,
                    self.next_trigger()
                );
                output::warn("Failed", &message);
                return Outcome::Done(false, format!("Failed {message}"));
            }
            Err(PatchBuildError::Other(err)) => {
                let err = err.context("the patch build failed");
                output::error(&err);
                return Outcome::Done(false, format!("Failed {err:#}"));
            }
        };
        output::event(serde_json::json!({
            "reason": "build-finished",
            "target": "patch",
            "success": true,
            "build_ms": patch.build_time.as_millis(),
        }));
        self.next_patch = number;
        let outside: Vec<_> = changed
            .iter()
            .filter(|(path, _)| !patch.sources.contains(path))
            .map(|(path, _)| format!("`{}`", relative(path, &self.project.workspace_root)))
            .collect();
        if !outside.is_empty() {
            let reason = format!(
                "{} {} outside the `{}` bin crate, and only that crate is patched yet",
                outside.join(", "),
                if outside.len() == 1 { "is" } else { "are" },
                self.project.bin
            );
            return self.restart(&reason, None);
        }
        let check_started = Instant::now();
        let running = self.running.as_ref().expect("checked above");
        let krate = self.crate_id(&running.build);
        let verdict = PatchImage::read(&patch.path, krate, &running.image.held).map(|image| {
            let mut verdict = check::check(&running.image, &image);
            // A hot function of the running code that the patch lacks was renamed or removed:
            // the program still calls it, and would never run the code that replaced it.
            let gone: Vec<Refusal> = self
                .running_hot
                .iter()
                .flatten()
                .filter(|path| !image.records.contains_key(*path))
                .map(|path| Refusal::Gone {
                    function: path.clone(),
                })
                .collect();
            if !gone.is_empty() {
                let mut refusals = verdict.err().unwrap_or_default();
                refusals.extend(gone);
                verdict = Err(refusals);
            }
            if let Err(refusals) = &mut verdict {
                let package_dir = self
                    .project
                    .manifest_path
                    .parent()
                    .unwrap_or(Path::new("."));
                let src = package_dir.join("src");
                let dir = if src.is_dir() { &src } else { package_dir };
                check::locate_types(refusals, dir, &self.project.workspace_root);
            }
            (verdict, image.records.keys().cloned().collect())
        });
        let (accepted, new_hot) = match verdict {
            Ok((Ok(accepted), hot)) => (accepted, hot),
            Ok((Err(refusals), _)) => {
                let messages: Vec<String> = refusals.iter().map(ToString::to_string).collect();
                output::event(serde_json::json!({
                    "reason": "patch-refused",
                    "refusals": messages
                        .iter()
                        .map(|m| m.replace("\n             ", "\n"))
                        .collect::<Vec<_>>(),
                }));
                for message in &messages {
                    output::warn("Refused", message);
                }
                return self.refused(&messages.join("; "));
            }
            Err(err) => {
                let err = err.context("cannot check the patch");
                output::error(&err);
                return self.refused(&format!("{err:#}"));
            }
        };
        let changed = match (&patch.code, &self.baseline) {
            (Some(new), Some(old)) => Some(new.changed_since(old, &self.project.crate_name)),
            _ => None,
        };
        let (changed, only_restart) =
            crate::notices::live_changes(changed, patch.code.as_ref(), &self.project.crate_name);
        if only_restart {
            self.baseline = patch.code;
            return Outcome::Done(
                false,
                "Warning the changed code takes effect only after a restart".to_owned(),
            );
        }
        if changed.as_ref().is_some_and(Vec::is_empty) {
            output::event(serde_json::json!({ "reason": "patch-unchanged" }));
            let message = if changed_paths.is_empty() {
                "no code changed; nothing to patch".to_owned()
            } else {
                format!("no code changed in {files}; nothing to patch")
            };
            output::status("Unchanged", &message);
            return Outcome::Done(true, format!("Unchanged {message}"));
        }
        if let Some(code) = &patch.code
            && !code.statics.is_empty()
        {
            output::warn(
                "Warning",
                format!(
                    "{} start fresh in the new code: {}",
                    if code.statics.len() == 1 {
                        "this static or thread-local of the crate will"
                    } else {
                        "these statics and thread-locals of the crate will"
                    },
                    code.statics
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        let check_time = check_started.elapsed();
        let code = patch.code.clone();
        match self.apply(patch, number, accepted.functions, changed, check_time) {
            Ok(line) => {
                self.baseline = code;
                self.running_hot = Some(new_hot);
                Outcome::Done(true, line)
            }
            Err(line) => Outcome::Done(false, line),
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

    /// After a refused patch: restart, or with `--no-restart` keep the old code.
    pub(super) fn refused(&mut self, why: &str) -> Outcome {
        if self.no_restart {
            let message = format!(
                "`{}` runs its previous code (--no-restart); {} is checked again",
                self.project.bin,
                self.next_trigger()
            );
            output::warn("Kept", &message);
            Outcome::Done(false, format!("Refused {why}"))
        } else {
            self.restart(
                "the patch was refused",
                Some("pass `--no-restart` to keep the old code running instead"),
            );
            Outcome::Done(false, format!("Refused {why}; the program was restarted"))
        }
    }

    /// Builds a patch from the unchanged sources right after a host starts: its code is the
    /// baseline that later patches are compared with, and it warms rustc's incremental cache.
    /// Returns the crate's source files besides `*.rs` (from dep-info), which are watched too.
    pub(super) fn build_baseline(&mut self) -> Vec<PathBuf> {
        let Some(running) = &self.running else {
            return Vec::new();
        };
        let build = running.build.clone();
        let (baseline, extra) = match patch::build(&build, &self.work, &self.session_dir, 0, true) {
            Ok(patch) => {
                let extra: Vec<PathBuf> = patch
                    .sources
                    .iter()
                    .filter(|p| p.extension().is_none_or(|e| e != "rs"))
                    .cloned()
                    .collect();
                // A save since the host's build may have reached this build but not the host:
                // then the baseline is not the running code, and the next patch is compared
                // with nothing.
                let current = patch
                    .sources
                    .iter()
                    .all(|path| self.snapshot.get(path) == Some(&content_hash(path)));
                // The hot functions the running code has, for the gate (renamed or removed ones).
                self.running_hot = self
                    .running
                    .as_ref()
                    .and_then(|r| {
                        PatchImage::read(&patch.path, self.crate_id(&r.build), &HashSet::new()).ok()
                    })
                    .filter(|_| current)
                    .map(|image| image.records.keys().cloned().collect());
                (if current { patch.code } else { None }, extra)
            }
            Err(err) => {
                // A save during this build is the likely cause, and its own patch build is next
                // and reports it; otherwise, say so.
                let mut files = Vec::new();
                self.collect_all(&mut files);
                let unchanged = files
                    .iter()
                    .all(|path| self.snapshot.get(path) == Some(&content_hash(path)));
                if unchanged {
                    output::warn(
                        "Warning",
                        format!("cannot build a first patch from the unchanged sources: {err}"),
                    );
                }
                self.running_hot = None;
                (None, Vec::new())
            }
        };
        self.baseline = baseline;
        for file in &extra {
            self.snapshot
                .entry(file.clone())
                .or_insert_with(|| content_hash(file));
        }
        self.filter.set_extra_sources(extra.clone());
        extra
    }

    /// Sends a built and checked patch to the host and reports what it confirmed. Returns the
    /// status line printed (verb first): `Ok` if the host applied the patch. `changed` are the
    /// changed functions' display names, if known.
    pub(super) fn apply(
        &mut self,
        patch: patch::Patch,
        number: u64,
        functions: Vec<String>,
        changed: Option<Vec<String>>,
        check_time: Duration,
    ) -> Result<String, String> {
        let refuse = |message: String| {
            output::event(serde_json::json!({ "reason": "patch-failed", "message": message }));
            output::warn("Refused", &message);
            Err(format!("Refused {message}"))
        };
        let Some(running) = &mut self.running else {
            return refuse("the program is not running".to_owned());
        };
        let Some((link_id, stream)) = &mut running.link else {
            return refuse(format!(
                "`{}` is not connected to cargo-hotswap, so the patch cannot be applied",
                self.project.bin
            ));
        };
        let link_id = *link_id;
        let message = ToolMessage::Patch {
            patch_id: number,
            build_id: running.build.build_id.clone(),
            path: patch.path.clone(),
            changed: changed.clone().unwrap_or_else(|| {
                functions
                    .iter()
                    .map(|f| short_name(f, &self.project.crate_name))
                    .collect()
            }),
            functions,
        };
        if let Err(err) = stream.write_all(message.encode().as_bytes()) {
            running.link = None;
            return refuse(format!("cannot send the patch to the program: {err}"));
        }
        let deadline = Instant::now() + APPLY_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = match self.replies.recv_timeout(left) {
                Ok((id, reply)) if id == link_id => reply,
                Ok(_) => continue,
                Err(_) => {
                    return refuse(format!(
                        "`{}` did not answer within {} s; its code may be unchanged",
                        self.project.bin,
                        APPLY_DEADLINE.as_secs()
                    ));
                }
            };
            match reply {
                HostMessage::Applied {
                    patch_id,
                    generation,
                    load_micros,
                    functions,
                } if patch_id == number => {
                    let names: Vec<String> = changed.unwrap_or_else(|| {
                        functions
                            .iter()
                            .map(|f| short_name(f, &self.project.crate_name))
                            .collect()
                    });
                    let build = patch.build_time.as_millis();
                    // Tenths of milliseconds, as the status line shows them.
                    let check = (check_time.as_secs_f64() * 10_000.0).round() / 10.0;
                    let load = (load_micros as f64 / 100.0).round() / 10.0;
                    output::event(serde_json::json!({
                        "reason": "patch-applied",
                        "generation": generation,
                        "functions": names,
                        "build_ms": build,
                        "check_ms": check,
                        "load_ms": load,
                    }));
                    let message = format!(
                        "{} {} in {} ms (build {build}, check {check:.1}, load {load:.1}) \
                         generation {generation}: {}",
                        names.len(),
                        if names.len() == 1 {
                            "function"
                        } else {
                            "functions"
                        },
                        (build as f64 + check + load).round(),
                        names.join(", ")
                    );
                    output::status("Patched", &message);
                    return Ok(format!("Patched {message}"));
                }
                HostMessage::Failed { patch_id, reason } if patch_id == number => {
                    return refuse(format!("the program did not apply the patch: {reason}"));
                }
                other => {
                    crate::notices::host_event(&other, &self.project.crate_name);
                    continue;
                }
            }
        }
    }

    /// Rebuilds the host and, if that succeeds, replaces the running program with it. `hint`
    /// goes on a line of its own.
    pub(super) fn restart(&mut self, reason: &str, hint: Option<&str>) -> Outcome {
        let hint = hint
            .map(|h| format!("\n             {h}"))
            .unwrap_or_default();
        output::event(serde_json::json!({ "reason": "host-restarting", "why": reason }));
        output::warn(
            "Restarting",
            format!("{} ({reason}; state is lost){hint}", self.project.bin),
        );
        self.snapshot_sources();
        let build = host::build(&self.project, &self.options, &self.work);
        self.refresh_lockfiles();
        let build = match build {
            Ok(build) => build,
            Err(err) => {
                output::error(&err);
                let message = "the host build failed, so nothing restarted: the running program, if any, keeps its code and its state";
                output::warn("Failed", message);
                return Outcome::Done(false, format!("Failed {message}"));
            }
        };
        self.stop();
        if let Err(err) = self.start(build) {
            output::error(&err);
            return Outcome::Done(false, format!("Failed {err:#}"));
        }
        self.build_baseline();
        Outcome::Done(true, format!("Restarted {} ({reason})", self.project.bin))
    }
}
