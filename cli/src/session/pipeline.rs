//! Turning a batch of changed files into a patch the program confirms, a refusal, or a
//! restart: one function per stage (changes -> build -> gate -> send), each handing the next
//! what it needs or ending the run with an [`Outcome`], which [`Session::report`] then tells.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::build::host::{self, Host};
use crate::build::patch::{self, Job, LibPlan, Mode, Patch, PatchBuildError};
use crate::check::code::{CodeIndex, Crates};
use crate::check::{self, LiveChanges, ReadAhead, Refusal};
use crate::codes::Code;
use crate::control::protocol::Verdict;
use crate::event::{Event, Target};
use crate::output;
use crate::process::Watch;
use crate::watch::FileKind;

use super::Session;
use super::files::{ChangedFns, changed_files, relative};
use super::outcome::{Checked, Outcome};

/// What the changes stage hands on: the changed files and the build the program runs.
pub(super) struct Changes {
    /// The changed files.
    paths: Vec<PathBuf>,
    /// The running program's host build, whose command a patch replays.
    pub(super) host: Host,
}

/// The `Patching` line and `build-started` event of a build, told when it starts for good.
struct Announcement {
    line: String,
    event: Event,
}

impl Announcement {
    /// Prints the line and emits the event.
    fn show(&self) {
        output::status("Patching", &self.line);
        output::event(&self.event);
    }
}

impl Session {
    /// Reacts to a batch of changed paths: restart, patch, or nothing. With `force` (asked by
    /// `cargo hotswap patch`), builds a patch even if no file changed. Returns what
    /// verdict `cargo hotswap patch` answers, if anything happened.
    pub(super) fn rebuild(&mut self, paths: Vec<PathBuf>, force: bool) -> Option<Verdict> {
        let number = self.next_patch + 1;
        // A speculative build's view of its files is put back if a later save supersedes it.
        let mark = self.scheduler.settles().map(|_| self.mark(&paths));
        let outcome = match self.stages(paths, force) {
            Ok(outcome) | Err(outcome) => outcome,
        };
        let sent = matches!(outcome, Outcome::Applied(_) | Outcome::NotApplied(_));
        // A patch that was not sent is never loaded: its files go (a session would otherwise
        // keep every build's, 4 MiB each for a mid-sized crate). One sent but not confirmed
        // stays: the program may load it yet.
        if !sent {
            self.discard_patch_files(number);
        }
        // What was not sent is not told until the settle period is over: a later save may
        // supersede it (a "save all" whose first file alone said "unchanged" or failed to
        // compile).
        if let Some(mark) = mark
            && !sent
            && self.settle()
        {
            output::detail(
                "Superseded",
                format!(
                    "the build of {}: a file changed again",
                    self.files(&mark.paths())
                ),
            );
            self.scheduler.superseded_build(mark.paths());
            self.restore(mark);
            return None;
        }
        self.report(outcome)
    }

    /// Removes the files of patch number `number` (fast and full builds) from the session's
    /// directory. Best effort: a file left behind goes with the directory when the session ends.
    pub(super) fn discard_patch_files(&self, number: u64) {
        let (fast, full) = (
            format!("-patch-{number}.so"),
            format!("-patch-{number}-full.so"),
        );
        let Ok(entries) = std::fs::read_dir(&self.session_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(&fast) || name.ends_with(&full) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
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
        if self.redirection.is_none() && !self.project.has_runtime {
            // Without the runtime there are no hot functions, and an optimised build turned
            // redirection off: nothing of a patch could run.
            return Err(Outcome::Restart {
                code: Code::RedirectOff,
                reason: format!(
                    "{} changed, and an optimised build without hot functions cannot be patched",
                    self.files(&paths)
                ),
            });
        }
        Ok(Changes { paths, host })
    }

    /// Builds the patch: the bin crate, and the local library crates the changes reach (with
    /// every crate above them, and those an earlier patch carried). A file that no crate of the
    /// patch is built from, or one of a procedural macro crate, calls for a restart.
    fn build_patch(&mut self, changes: &Changes) -> Result<Patch, Outcome> {
        let number = self.next_patch + 1;
        let plan = self.lib_plan(changes)?;
        // Told once the build is speculative no more: a superseded build says nothing.
        let announcement = self.announcement(changes, &plan);
        // rustc's output is captured for the JSON event, and on a terminal so that it does not
        // cross the spinner; it is shown right after. (A speculative build holds it until it is
        // speculative no more, so that a superseded build shows none.)
        let capture = output::json() || output::progress_allowed() || self.serving_request;
        let spinner = output::spinner("Compiling", &self.project.crate_name);
        let ids = super::program::crate_ids(&self.project.crate_name, &changes.host);
        // What the source diff says changed, found while rustc runs (a fast build only).
        let diff = self.redirection.is_none().then(|| self.changed_fns());
        let mut read_ahead = None;
        let held = self.running.as_ref().map(|running| &running.image.held);
        let mut announced = false;
        let (inbox, deferred, filter, scheduler) = (
            &self.inbox,
            &mut self.deferred,
            &self.filter,
            &mut self.scheduler,
        );
        let result = patch::build(
            &changes.host,
            &self.work,
            &self.session_dir,
            &plan,
            Job {
                number,
                // Redirection needs every changed function compiled.
                mode: if self.redirection.is_some() {
                    Mode::Full
                } else {
                    Mode::Fast
                },
                capture_output: capture,
                keep_code: self.redirection.is_some(),
            },
            &mut |path| read_ahead = held.map(|held| ReadAhead::start(path, &ids, held)),
            &mut || {
                let watch = super::watch_build(inbox, deferred, filter, scheduler);
                if watch == Watch::Wait && !announced {
                    announced = true;
                    announcement.show();
                }
                watch
            },
        );
        self.read_ahead = read_ahead;
        output::finish(spinner);
        if matches!(result, Err(PatchBuildError::Superseded)) || (!announced && self.settle()) {
            return Err(Outcome::Superseded);
        }
        if !announced {
            announcement.show();
        }
        if let Some(running) = &mut self.running {
            match &result {
                Ok(patch) => running.libs.built(&patch.libs),
                Err(_) => running.libs.unbuilt.extend(plan.compile.iter().cloned()),
            }
        }
        let patch = self.complete(changes, result?, &plan, diff)?;
        output::write_stderr(&patch.messages);
        output::event(&Event::BuildFinished {
            target: Target::Patch,
            success: true,
            build_ms: Some(patch.build_time.as_millis()),
            diagnostics: None,
        });
        self.next_patch = number;
        if let Some(running) = &mut self.running {
            running.libs.bin_sources.clone_from(&patch.sources);
        }
        // A file that a crate started to include during the session is watched from now on.
        let libraries = patch.libs.iter().flat_map(|lib| &lib.sources);
        let read = super::program::read_files(patch.sources.iter().chain(libraries));
        self.track_read_files(&read);
        self.inside_patch(changes, &patch)?;
        Ok(patch)
    }

    /// `fast` when the source diff shows that it holds every changed function (see
    /// [`crate::check::source`]), else a [`Mode::Full`] build of the same sources, which
    /// carries `fast`'s code index as what the hot functions reach.
    fn complete(
        &self,
        changes: &Changes,
        fast: Patch,
        plan: &LibPlan<'_>,
        diff: Option<ChangedFns>,
    ) -> Result<Patch, Outcome> {
        if fast.mode == Mode::Full {
            return Ok(fast);
        }
        let diff = diff.unwrap_or_else(|| self.changed_fns());
        let Some(reason) = self.incomplete(&changes.host, &fast, diff) else {
            return Ok(fast);
        };
        output::detail(
            "Compiling",
            format!("every function of `{}`: {reason}", self.project.crate_name),
        );
        // The library crates are built already: the fast build's serve.
        let built = LibPlan {
            crates: plan.crates.clone(),
            compile: Default::default(),
        };
        let spinner = output::spinner("Compiling", &self.project.crate_name);
        // Its warnings are the fast build's, shown already; its errors are returned.
        let result = patch::build(
            &changes.host,
            &self.work,
            &self.session_dir,
            &built,
            Job {
                number: self.next_patch + 1,
                mode: Mode::Full,
                capture_output: true,
                keep_code: false,
            },
            &mut |_| {},
            &mut || Watch::Wait,
        );
        output::finish(spinner);
        let mut full = result?;
        // The fast patch is never sent now (its gate reading, if started, keeps its own open
        // file).
        let _ = std::fs::remove_file(&fast.path);
        full.messages = fast.messages;
        full.libs = fast.libs;
        full.build_time += fast.build_time;
        full.reached = fast.code.into_inner();
        // A save during the two builds may have reached the second only.
        full.same_sources = full
            .sources
            .iter()
            .chain(full.libs.iter().flat_map(|lib| &lib.sources))
            .all(|path| {
                // Files the session does not watch (a build script's output) are not compared.
                self.snapshot
                    .get(path)
                    .is_none_or(|hash| *hash == super::files::content_hash(path))
            });
        Ok(full)
    }

    /// Why the fast patch `fast` may lack a changed function, `None` if it holds them all: every
    /// file changed since the baselines differs in function items only, and each changed
    /// function is compiled into the patch (its debug info declares it on the function's lines).
    /// A function the hot functions do not reach is not compiled, and only a build with every
    /// function compiled tells that it changed. `diff` is the source diff's finding (see
    /// [`Session::changed_fns`]).
    fn incomplete(&self, host: &Host, fast: &Patch, diff: ChangedFns) -> Option<String> {
        let Some(functions) = diff.join().ok().flatten() else {
            return Some("an item other than a function changed".to_owned());
        };
        if functions.is_empty() {
            return None;
        }
        // Paths as the debug info names them -> the changed file they are, if any.
        let canonical = |path: &Path| std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
        let changed: HashSet<PathBuf> = functions.iter().map(|(path, _)| canonical(path)).collect();
        // A path is made canonical (a system call per component) only when its file name is
        // one of the changed files': the units name hundreds of the standard library's and
        // the dependencies' files.
        let names: HashSet<&std::ffi::OsStr> =
            changed.iter().filter_map(|path| path.file_name()).collect();
        let mut seen: HashMap<PathBuf, bool> = HashMap::new();
        let mut wanted = |path: &Path| {
            *seen.entry(path.to_path_buf()).or_insert_with(|| {
                path.file_name().is_some_and(|name| names.contains(name))
                    && changed.contains(&canonical(path))
            })
        };
        let defined = std::fs::read(&fast.path).ok().and_then(|data| {
            let file = object::File::parse(&*data).ok()?;
            check::dwarf::defined_lines(&file, &self.crate_ids(host), &mut wanted).ok()
        });
        let Some(defined) = defined else {
            return Some("the patch's debug info cannot be read".to_owned());
        };
        let defined: HashMap<PathBuf, _> = defined
            .into_iter()
            .map(|(path, lines)| (canonical(&path), lines))
            .collect();
        functions.into_iter().find_map(|(path, function)| {
            let compiled = defined
                .get(&canonical(&path))
                .is_some_and(|lines| lines.range(function.lines.clone()).next().is_some());
            // A patch links only the objects that differ from the running program's: a
            // function whose code is back to what the program started with (an edit undone) is
            // not in it either.
            (!compiled).then(|| {
                format!(
                    "`{}` is not in the fast build's patch (no hot function reaches it, or its \
                     code is back to what the program started with)",
                    function.name
                )
            })
        })
    }

    /// The local library crates the patch for `changes` carries and compiles, or the restart
    /// that an edit of a procedural macro crate (or of a crate one depends on) calls for.
    fn lib_plan<'h>(&self, changes: &'h Changes) -> Result<LibPlan<'h>, Outcome> {
        let running = self.running.as_ref().expect("the changes stage saw it");
        let locals = &changes.host.locals;
        let unbuilt = (0..locals.crates.len())
            .filter(|at| running.libs.unbuilt.contains(&locals.crates[*at].stem));
        let owned: Vec<usize> = changes
            .paths
            .iter()
            .flat_map(|path| running.libs.owners(locals, path))
            .chain(unbuilt)
            .collect();
        let dirty = locals.dependents(&owned);
        if let Some(proc_macro) = dirty
            .iter()
            .map(|at| &locals.crates[*at])
            .find(|krate| krate.capture.is_proc_macro())
        {
            return Err(Outcome::Restart {
                code: Code::ProcMacro,
                reason: format!(
                    "{} changed the procedural macro crate `{}`, whose expansions are compiled \
                     into the host: the host is rebuilt",
                    self.files(&changes.paths),
                    proc_macro.name()
                ),
            });
        }
        if let Some(script_input) = dirty.iter().map(|at| &locals.crates[*at]).find(|krate| {
            krate.capture.env.iter().any(|(key, dir)| {
                key == "CARGO_MANIFEST_DIR"
                    && self
                        .project
                        .build_script_dirs
                        .iter()
                        .any(|d| d.as_os_str() == dir.as_str())
            })
        }) {
            return Err(Outcome::Restart {
                code: Code::BuildFile,
                reason: format!(
                    "{} changed the crate `{}`, which a build script runs: the host is rebuilt",
                    self.files(&changes.paths),
                    script_input.name()
                ),
            });
        }
        Ok(LibPlan {
            crates: locals
                .crates
                .iter()
                .enumerate()
                .filter(|(at, krate)| {
                    dirty.contains(at) || running.libs.carried.contains(&krate.stem)
                })
                .map(|(_, krate)| krate)
                .collect(),
            compile: dirty
                .iter()
                .map(|at| locals.crates[*at].stem.clone())
                .collect(),
        })
    }

    /// What says that a patch builds: the `Patching` line, with the crates compiled again, and
    /// the `build-started` event.
    fn announcement(&self, changes: &Changes, plan: &LibPlan<'_>) -> Announcement {
        let compiled: Vec<String> = plan
            .crates
            .iter()
            .filter(|krate| plan.compile.contains(&krate.stem))
            .map(|krate| krate.name().to_owned())
            .collect();
        let rebuilding = if compiled.is_empty() {
            String::new()
        } else {
            // A package's library and bin share a crate name unless one is renamed.
            let bin = &self.project.crate_name;
            let bin = if compiled.contains(bin) {
                format!("{bin} (bin)")
            } else {
                bin.clone()
            };
            format!("; rebuilding {}, {bin}", compiled.join(", "))
        };
        Announcement {
            line: format!(
                "{} ({} changed{rebuilding})",
                self.project.bin,
                self.files(&changes.paths)
            ),
            event: Event::BuildStarted {
                target: Target::Patch,
                files: Some(changes.paths.clone()),
                crates: compiled,
            },
        }
    }

    /// Warns about changed files that no crate of the patch was built from (a `.rs` file that
    /// no `mod` declares yet, another target's file): their changes are not patched. When no
    /// changed file is part of the program, nothing is.
    fn inside_patch(&self, changes: &Changes, patch: &Patch) -> Result<(), Outcome> {
        let outside: Vec<_> = changes
            .paths
            .iter()
            .filter(|path| {
                !patch.sources.contains(path)
                    && !patch.libs.iter().any(|lib| lib.sources.contains(path))
            })
            .map(|path| format!("`{}`", relative(path, &self.project.workspace_root)))
            .collect();
        if outside.is_empty() {
            return Ok(());
        }
        let files = outside.join(", ");
        super::report::warning(
            Code::OutsideCrate,
            format!(
                "{files} {} not part of any crate of `{}` (no `mod` declares {}, or {} another \
                 target's): {} not patched",
                if outside.len() == 1 { "is" } else { "are" },
                self.project.bin,
                if outside.len() == 1 { "it" } else { "them" },
                if outside.len() == 1 {
                    "it is"
                } else {
                    "they are"
                },
                if outside.len() == 1 {
                    "its changes are"
                } else {
                    "their changes are"
                },
            ),
        );
        if outside.len() == changes.paths.len() {
            return Err(Outcome::Unchanged {
                message: "no crate of the program changed; nothing to patch".to_owned(),
            });
        }
        Ok(())
    }

    /// Checks the patch against the running program (see [`check`]) and tells which functions
    /// changed; a patch that changes nothing the program runs goes no further.
    fn gate(&mut self, changes: &Changes, patch: Patch) -> Result<Checked, Outcome> {
        let started = Instant::now();
        let ahead = self.read_ahead.take();
        let running = self.running.as_ref().expect("the changes stage saw it");
        let image = ReadAhead::take(
            ahead,
            &patch.path,
            &self.crate_ids(&changes.host),
            &running.image.held,
        )
        .map_err(|err| Outcome::Unchecked(err.context("cannot check the patch")))?;
        let accepted = match check::check(&running.image, &image, self.running_hot.as_ref()) {
            Ok(accepted) => accepted,
            Err(mut refusals) => {
                check::locate_types(
                    &mut refusals,
                    &self.source_dirs(&changes.host),
                    &self.project.workspace_root,
                );
                return Err(Outcome::Refused(refusals));
            }
        };
        let checked = started.elapsed();
        let crates = self.patch_crates(&patch);
        if self.allocator_changed(changes, &patch) {
            return Err(Outcome::Refused(vec![Refusal::GlobalAllocator]));
        }
        // A static with an unmangled name is exported: every patch's code uses the running
        // program's copy (the executable's symbol interposes the patch's), so its new initial
        // value would not take effect in either mode.
        let exported = self.exported_values_edited(changes, &patch, &crates);
        if !exported.is_empty() {
            return Err(Outcome::Refused(
                exported
                    .into_iter()
                    .map(|name| Refusal::StaticValue {
                        name,
                        exported: true,
                    })
                    .collect(),
            ));
        }
        if self.redirection.is_some() {
            // Redirected code uses the running program's statics (see `plan_redirects`).
            let edited: Vec<Refusal> = self
                .libs_edited(changes, &patch, |new, old| {
                    new.values_edited_since(old, &crates)
                })
                .into_iter()
                .map(|name| Refusal::StaticValue {
                    name,
                    exported: false,
                })
                .collect();
            if !edited.is_empty() {
                return Err(Outcome::Refused(edited));
            }
        }
        let mut live = self.live_changes(changes, &patch, &crates);
        if self.redirection.is_some()
            && let Some(mut changed) = live.live.take()
        {
            // Every changed function runs its new code but `main`. (When what changed is not
            // known, the patch is sent: the entries are found against the host's own code.)
            changed.append(&mut live.restart_only);
            changed.sort();
            live.restart_only = self.runs_once(&changed, &crates, patch.code.get());
            changed.retain(|name| !live.restart_only.contains(name));
            live.live = Some(changed);
        }
        let restart_only = self.located(&patch, &changes.host, &live.restart_only, &crates);
        output::detail(
            "Timing",
            format!(
                "gate: patch read and checked {:.1} ms, changed functions {:.1} ms",
                checked.as_secs_f64() * 1e3,
                (started.elapsed() - checked).as_secs_f64() * 1e3
            ),
        );
        if live.only_restart() {
            // Only code that no hot function reaches changed (start-up code): a restart runs
            // it; with `--no-restart` the change waits, and this build is the new baseline.
            if self.no_restart {
                super::report::restart_only(&restart_only, self.redirection.is_some());
                self.advance_baselines(patch.mode, patch.code.into_inner(), patch.reached);
                if let Some(running) = &mut self.running {
                    running.libs.rebuilt(&patch.libs, &running.build.locals);
                }
            }
            return Err(Outcome::RestartOnly {
                functions: restart_only,
            });
        }
        super::report::restart_only(&restart_only, self.redirection.is_some());
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
        let hot: std::collections::BTreeSet<String> = image.records.keys().cloned().collect();
        let changed = live.live.as_deref().unwrap_or_default();
        let planned = match self.plan_redirects(&patch, &crates, &hot, changed) {
            Err(Outcome::Refused(mut refusals)) => {
                for refusal in &mut refusals {
                    if let Refusal::Unredirectable { function, .. } = refusal {
                        let name = function.trim_matches('`').to_owned();
                        if let [at] = &self.located(&patch, &changes.host, &[name], &crates)[..] {
                            function.clone_from(at);
                        }
                    }
                }
                return Err(Outcome::Refused(refusals));
            }
            planned => planned?,
        };
        self.check_states(changes, &patch, &planned)?;
        let fresh = self.patch_statics(changes, &patch, &crates, &planned.bound);
        let copied = self.allocator_state_copied(&fresh);
        if !copied.is_empty() {
            return Err(Outcome::Refused(vec![Refusal::AllocatorState {
                statics: copied,
            }]));
        }
        self.fresh_statics(&fresh);
        Ok(Checked {
            number: self.next_patch,
            functions: accepted.functions,
            changed: live.live,
            check_time: started.elapsed(),
            digest: image.digest,
            hot,
            planned,
            patch,
        })
    }

    /// The statics and thread-locals of the crates `patch` compiled, which start fresh in it,
    /// but those it shares with the running program (`bound`), as messages show them. A static
    /// with an unmangled name is the executable's, shared by every patch, when the program
    /// started with it; one added since is each patch's own like any other.
    fn patch_statics(
        &self,
        changes: &Changes,
        patch: &Patch,
        crates: &Crates,
        bound: &std::collections::BTreeSet<String>,
    ) -> std::collections::BTreeSet<String> {
        let mut statics = std::collections::BTreeSet::new();
        if let Some(code) = patch.code.get() {
            // A static the patch file does not define (a thin patch leaves the codegen units
            // the edit did not compile again to the running program) is the program's.
            let defined_here = defined_symbols(&patch.path);
            let started = self.start_exported_values(changes);
            let added_exported = patch
                .codes()
                .flat_map(|code| code.exported_values().into_keys())
                .filter(|name| !started.contains_key(name))
                .filter(|name| {
                    defined_here
                        .iter()
                        .any(|(symbol, writable)| *writable && symbol == name)
                })
                .collect::<Vec<_>>();
            let symbols: Vec<String> = defined_here.into_iter().map(|(name, _)| name).collect();
            let defined = |crate_name: &str| -> std::collections::BTreeSet<String> {
                // Both manglings spell a crate's name with its length first: the other
                // symbols (most of a workspace patch's) need no demangling.
                let spelled = format!("{}{crate_name}", crate_name.len());
                symbols
                    .iter()
                    .filter(|name| name.contains(&spelled))
                    .filter_map(|name| {
                        check::code::static_name(&crate::symbols::demangle(name), crate_name)
                    })
                    .collect()
            };
            let of_bin = defined(&self.project.crate_name);
            statics = code
                .statics
                .difference(bound)
                .filter(|name| of_bin.contains(*name))
                .cloned()
                .collect();
            for lib in patch
                .libs
                .iter()
                .filter(|lib| lib.compiled && !crates.ambiguous())
            {
                let of_lib = defined(&lib.name);
                let own = lib.code.iter().flat_map(|code| &code.statics);
                statics.extend(
                    own.filter(|name| of_lib.contains(*name))
                        .map(|name| check::code::qualified(&lib.name, name))
                        .filter(|name| !bound.contains(name)),
                );
            }
            statics.extend(added_exported);
        }
        statics
    }

    /// Those of the bin crate's statics `fresh` in a patch that are the state of the global
    /// allocator the crate defines (see [`CodeIndex::allocator_statics`], read from the host's
    /// rlib, whose code is never inlined across functions, once per running host): a patch with
    /// its own copy of them could allocate with the copy what the running program frees with
    /// its allocator (with link-time optimisation the allocator is inlined into the patch's
    /// functions), and crash it. Empty when the crate defines no allocator.
    fn allocator_state_copied(&self, fresh: &std::collections::BTreeSet<String>) -> Vec<String> {
        let Some(running) = self.running.as_ref().filter(|_| !fresh.is_empty()) else {
            return Vec::new();
        };
        let state = running.allocator_state.get_or_init(|| {
            let rlib = crate::build::compile::host_rlib(&running.build.capture, &self.work.root);
            if crate::symbols::defines_global_allocator(&rlib) != Some(true) {
                return Default::default();
            }
            CodeIndex::read_rlib(&rlib, &self.project.crate_name)
                .map(|host| host.allocator_statics(&self.project.crate_name))
                .unwrap_or_default()
        });
        state.intersection(fresh).cloned().collect()
    }

    /// The running code that the bin crate's code in `patch` is compared with: the fast
    /// baseline for a fast build that holds all it compiled, else the full one.
    fn bin_base(&self, patch: &Patch) -> Option<&CodeIndex> {
        match (&patch.reached, patch.mode) {
            (None, Mode::Fast) => self.fast_baseline.as_ref(),
            _ => self.baseline.as_ref(),
        }
    }

    /// The statics with unmangled names (exported) whose initial value `patch` changes, in
    /// every crate it compiled, as messages show them.
    fn exported_values_edited(
        &self,
        changes: &Changes,
        patch: &Patch,
        crates: &Crates,
    ) -> Vec<String> {
        let new: Vec<&CodeIndex> = patch.codes().collect();
        if new.iter().all(|code| code.exported_values().is_empty()) {
            return Vec::new();
        }
        // Compared with the values the program started with, never with an earlier patch's
        // (one that left such a static out would have it compared with nothing).
        let start = self.start_exported_values(changes);
        let mut edited: Vec<String> = new
            .iter()
            .flat_map(|code| code.exported_values_edited_since(&start, crates))
            .collect();
        edited.sort();
        edited.dedup();
        edited
    }

    /// Whether the global allocator's entry points (see [`CodeIndex::allocator_entries`]) in
    /// the crates `patch` compiled differ from those of the code the program runs: one was
    /// added, removed, or is of another type. A patch cannot change the allocator of a running
    /// program, which frees with it what it allocated. `false` when either code is unknown.
    fn allocator_changed(&self, changes: &Changes, patch: &Patch) -> bool {
        let Some(new) = patch.code.get() else {
            return false;
        };
        let Some(old) = self.bin_base(patch) else {
            // No baseline yet (a save while the program started): whether the crate's rlib in
            // the host defines one.
            let Some(running) = &self.running else {
                return false;
            };
            let rlib = crate::build::compile::host_rlib(&running.build.capture, &self.work.root);
            return crate::symbols::defines_global_allocator(&rlib)
                .is_some_and(|had| had == new.allocator_entries().is_empty());
        };
        let mut new = new.allocator_entries();
        let mut old = old.allocator_entries();
        if let Some(running) = &self.running {
            for lib in patch.libs.iter().filter(|lib| lib.compiled) {
                let (Some(code), Some(was)) = (
                    lib.code.as_ref(),
                    running.libs.code(&changes.host.locals, &lib.stem),
                ) else {
                    return false;
                };
                new.extend(code.allocator_entries());
                old.extend(was.allocator_entries());
            }
        }
        new != old
    }

    /// The statics with unmangled names that the program started with (the executable's,
    /// which every patch's code uses), by symbol, with the hash of their initial values: those
    /// of every local crate, whichever crate defines one now (an unmangled name is one symbol
    /// in the whole program, and a static moved to another crate is still the executable's
    /// copy).
    fn start_exported_values(&self, changes: &Changes) -> std::collections::BTreeMap<String, u64> {
        let mut start = self.start_exported.clone();
        if let Some(running) = &self.running {
            for krate in &changes.host.locals.crates {
                if let Some(code) = running.libs.code(&changes.host.locals, &krate.stem) {
                    for (name, hash) in code.exported_values() {
                        start.entry(name).or_insert(hash);
                    }
                }
            }
        }
        start
    }

    /// What `edited` finds (given the new code and the running code) in each library crate
    /// `patch` compiled, where both are known, joined.
    fn libs_edited(
        &self,
        changes: &Changes,
        patch: &Patch,
        edited: impl Fn(&CodeIndex, &CodeIndex) -> Vec<String>,
    ) -> Vec<String> {
        let Some(running) = &self.running else {
            return Vec::new();
        };
        patch
            .libs
            .iter()
            .filter(|lib| lib.compiled)
            .filter_map(|lib| {
                let old = running.libs.code(&changes.host.locals, &lib.stem)?;
                Some(edited(lib.code.as_ref()?, &old))
            })
            .flatten()
            .collect()
    }

    /// The crates whose code `patch` holds: the bin and the library crates it rebuilt.
    pub(super) fn patch_crates(&self, patch: &Patch) -> Crates {
        Crates {
            bin: self.project.crate_name.clone(),
            libs: patch.libs.iter().map(|lib| lib.name.clone()).collect(),
        }
    }

    /// The functions whose code `patch` changes since the running code (in every crate it
    /// compiled), split by whether a hot function reaches them: calls are followed across the
    /// crates of the patch. Under redirection none is told apart: see [`Session::runs_once`].
    fn live_changes(&self, changes: &Changes, patch: &Patch, crates: &Crates) -> LiveChanges {
        let running = self.running.as_ref().expect("the changes stage saw it");
        // Unknown (`None`): the patch is sent, and every hot function counts as changed.
        let mut changed = self.bin_changes(patch, crates);
        for lib in patch.libs.iter().filter(|lib| lib.compiled) {
            let old = running.libs.code(&changes.host.locals, &lib.stem);
            match (&mut changed, &lib.code, old) {
                (Some(changed), Some(new), Some(old)) => {
                    changed.extend(new.changed_since(&old, crates));
                    // A static's new value: the patch carries the static's new copy (see
                    // `bin_changes`; under redirection the gate refuses it first).
                    changed.extend(new.values_changed_since(&old, crates));
                }
                _ => changed = None,
            }
        }
        if let Some(changed) = &mut changed {
            changed.sort();
            changed.dedup();
        }
        let code: Option<Vec<&CodeIndex>> = patch.code.get().map(|bin| {
            std::iter::once(bin)
                .chain(patch.libs.iter().filter_map(|lib| {
                    lib.code
                        .as_ref()
                        .or_else(|| running.libs.code.get(&lib.stem))
                }))
                .collect()
        });
        if self.redirection.is_some() {
            // Every changed function is redirected: what runs only once is told by the gate
            // (`runs_once`), not by what hot functions reach.
            return LiveChanges {
                live: changed,
                restart_only: Vec::new(),
            };
        }
        // A hot function new in the patch runs only where one the program has calls it.
        check::live_changes(changed, code.as_deref(), crates, self.running_hot.as_ref())
    }

    /// The functions of the bin crate whose code `patch` changes, `None` if unknown. What the
    /// hot functions reach is compared with the fast baseline; in a [`Mode::Full`] patch, the
    /// functions its fast build did not compile with the full baseline.
    fn bin_changes(&self, patch: &Patch, crates: &Crates) -> Option<Vec<String>> {
        if crates.ambiguous() {
            return None;
        }
        let code = patch.code.get()?;
        let base = self.bin_base(patch)?;
        // A static's new initial value, which no function's bytes show when the code reading
        // it is in another codegen unit: a hot function's patch carries the static's new copy
        // (and the code reading it, see `build::thin`). Under redirection the code keeps the
        // running program's copy of every static: such a patch is refused (see
        // `plan_redirects`).
        let values = code.values_changed_since(base, crates);
        let Some(reached) = &patch.reached else {
            let mut changed = code.changed_since(base, crates);
            changed.extend(values);
            return Some(changed);
        };
        if !patch.same_sources {
            // The fast build may hold older code: everything is compared with the full baseline,
            // which may name functions that an earlier fast patch changed already (never fewer).
            let mut changed = code.changed_since(base, crates);
            changed.extend(values);
            return Some(changed);
        }
        let mut changed = reached.changed_since(self.fast_baseline.as_ref()?, crates);
        changed.extend(values);
        let compiled: std::collections::BTreeSet<String> = reached
            .functions
            .keys()
            .filter_map(|name| crates.display(name))
            .collect();
        let others = code.changed_since(self.baseline.as_ref()?, crates);
        changed.extend(others.into_iter().filter(|name| !compiled.contains(name)));
        Some(changed)
    }

    /// Takes the code a patch build of `mode` read (`code`, and for a [`Mode::Full`] build the
    /// fast build's `reached`) as the running code's: the patch was applied, or its change
    /// waits for a restart. The fast baseline keeps the functions the build did not compile.
    fn advance_baselines(
        &mut self,
        mode: Mode,
        code: Option<CodeIndex>,
        reached: Option<CodeIndex>,
    ) {
        let fast = match mode {
            Mode::Fast => code,
            Mode::Full => {
                self.baseline = code;
                reached
            }
        };
        self.fast_baseline = match (self.fast_baseline.take(), fast) {
            (Some(mut base), Some(new)) => {
                base.functions.extend(new.functions);
                // A static a patch added, or gave a new value, is the running code's now: the
                // next patch does not count it as changed again.
                base.values.extend(new.values);
                Some(base)
            }
            (_, new) => new,
        };
        self.rebase_texts();
    }

    /// Sends a checked patch to the program and waits for its answer.
    fn send(&mut self, checked: Checked) -> Outcome {
        let mode = checked.patch.mode;
        let code = checked.patch.code.get().cloned();
        let reached = checked.patch.reached.clone();
        let libs = checked.patch.libs.clone();
        let hot = checked.hot.clone();
        let number = checked.number;
        // The program's agent may have connected while the patch was built.
        self.link_events();
        match self.apply(checked) {
            Ok((applied, planned)) => {
                if let Some(redirection) = &mut self.redirection {
                    redirection.applied(number, planned);
                }
                self.advance_baselines(mode, code, reached);
                if let Some(running) = &mut self.running {
                    running.libs.rebuilt(&libs, &running.build.locals);
                }
                self.running_hot = Some(hot);
                Outcome::Applied(applied)
            }
            Err(message) => Outcome::NotApplied(message),
        }
    }

    /// The functions `names` (display names) as messages show them, quoted, each with where the
    /// patch's debug info says it is declared: `` `main::{closure}` at src/main.rs:41 ``.
    fn located(
        &self,
        patch: &Patch,
        host: &Host,
        names: &[String],
        crates: &Crates,
    ) -> Vec<String> {
        if names.is_empty() {
            return Vec::new();
        }
        let shown = |name: &str| crates.display(name);
        let lines = std::fs::read(&patch.path).ok().and_then(|data| {
            let file = object::File::parse(&*data).ok()?;
            check::dwarf::function_lines(&file, &self.crate_ids(host), &|name| {
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

    /// The directories whose `.rs` files define each crate's types, by crate name: the bin's
    /// package's `src` first, then each local library crate's root source file's directory.
    fn source_dirs(&self, host: &Host) -> Vec<(String, PathBuf)> {
        let package_dir = self
            .project
            .manifest_path
            .parent()
            .unwrap_or(Path::new("."));
        let src = package_dir.join("src");
        let bin = if src.is_dir() {
            src
        } else {
            package_dir.to_path_buf()
        };
        let libs = host.locals.crates.iter().filter_map(|krate| {
            let root = krate.capture.cwd.join(krate.capture.source()?);
            Some((krate.name().to_owned(), root.parent()?.to_path_buf()))
        });
        std::iter::once((self.project.crate_name.clone(), bin))
            .chain(libs)
            .collect()
    }
}

/// The names of the symbols that the module at `path` (a patch file) defines, from its symbol
/// table, each with whether it is in writable data (a static's or thread-local's state); empty
/// when it cannot be read (then no static counts as the patch's own).
fn defined_symbols(path: &std::path::Path) -> Vec<(String, bool)> {
    use object::{Object, ObjectSymbol};
    let Ok(data) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(file) = object::File::parse(&*data) else {
        return Vec::new();
    };
    file.symbols()
        .filter(|symbol| symbol.is_definition())
        .filter_map(|symbol| {
            let writable = symbol
                .section_index()
                .and_then(|index| file.section_by_index(index).ok())
                .is_some_and(|section| check::code::is_mutable(&section));
            symbol.name().ok().map(|name| (name.to_owned(), writable))
        })
        .collect()
}
