//! Entry redirection (`--redirect`): every changed function of the bin crate takes effect, not
//! only what hot functions reach. Each patch is a build with every function compiled; the
//! entries of the functions that changed since the program started (in the executable, and in
//! every patch loaded before, whose own calls stay inside it) jump to the new patch's.

use std::collections::BTreeSet;

use hotswap::protocol::{Bind, Redirect};

use crate::build::patch::Patch;
use crate::check::code::{CodeIndex, Crates, static_name};
use crate::check::entries::{self, Functions};
use crate::check::{self, Refusal};
use crate::symbols::{demangle, short_name};

use super::Session;
use super::outcome::Outcome;

/// The display name of the function that runs once: its new code takes effect only on a
/// restart, whatever is redirected.
const MAIN: &str = "main";

/// What the session knows of the running program's entries.
#[derive(Debug, Default)]
pub(super) struct Redirection {
    /// The bin crate's code as the running program was started with it (the baseline built
    /// from the host's sources), `None` if it could not be built.
    host_code: Option<CodeIndex>,
    /// The executable's functions of the local crates, with what their code refers to: taken
    /// from `reading` at the first patch (or read then, when it could not be started).
    host: Option<Functions>,
    /// The reading of `host` started ahead, once the program's baseline was built (for a
    /// large program it takes a good part of a second, which the first patch would wait for).
    reading: Option<std::thread::JoinHandle<anyhow::Result<Functions>>>,
    /// The functions (display names) the running program calls only while it starts (see
    /// [`Functions::start_up_only`]), found with `host`.
    start_up_only: BTreeSet<String>,
    /// The display names of `host`'s functions, found with it.
    host_names: BTreeSet<String>,
    /// The functions of each patch the program loaded, by patch number.
    applied: Vec<(u64, Functions)>,
    /// The functions (display names) redirected so far: every later patch redirects them
    /// again, so that one changed and changed back leaves no entry in an older patch.
    names: BTreeSet<String>,
}

/// The entries a checked patch redirects, and what to remember once it is applied.
#[derive(Debug, Default)]
pub(super) struct Planned {
    /// The redirections, for the patch message.
    pub(super) redirects: Vec<Redirect>,
    /// The patch's GOT entries to point at the running program's statics, for the message.
    pub(super) binds: Vec<Bind>,
    /// The statics (as the user wrote them) the patch shares with the running program.
    pub(super) bound: BTreeSet<String>,
    /// The patch's functions, kept to redirect their entries later.
    functions: Option<Functions>,
    /// The functions (display names) the redirections make run.
    names: BTreeSet<String>,
}

impl Planned {
    /// The functions (display names) the redirections make run.
    pub(super) fn names(&self) -> &BTreeSet<String> {
        &self.names
    }

    /// Whether a closure or an `async` body is among the redirected functions.
    fn has_closures(&self) -> bool {
        self.names.iter().any(|name| name.contains("::{closure}"))
    }
}

impl Redirection {
    /// The state for the program `pid`, of the local crates `local` (the bin's first), started
    /// from code `host_code` (no patch loaded yet); its executable's functions are read on a
    /// thread of their own from now on.
    pub(super) fn started(
        host_code: Option<CodeIndex>,
        pid: u32,
        local: Vec<String>,
    ) -> Redirection {
        let reading = crate::process::spawn_background("hotswap-host-functions", move || {
            host_functions_of(pid, &local)
        })
        .ok();
        Redirection {
            host_code,
            reading,
            ..Redirection::default()
        }
    }

    /// Records that patch `number`, planned as `planned`, was applied.
    pub(super) fn applied(&mut self, number: u64, planned: Planned) {
        self.names.extend(planned.names);
        if let Some(functions) = planned.functions {
            self.applied.push((number, functions));
        }
    }
}

/// The functions of the local crates `local` in the executable of the process `pid`, with what
/// their code refers to. A mangled name holds its crate's; an unmangled one is known from the
/// crates' objects (see [`crate::check::code::unmangled_owner`]).
///
/// # Errors
///
/// When the executable cannot be read.
fn host_functions_of(pid: u32, local: &[String]) -> anyhow::Result<Functions> {
    let exe = std::path::PathBuf::from(format!("/proc/{pid}/exe"));
    let keep = |name: &str| {
        local.iter().any(|krate| name.contains(krate.as_str()))
            || crate::check::code::unmangled_owner(name).is_some_and(|owner| local.contains(&owner))
    };
    Functions::read_with_references(&exe, &keep)
}

impl Session {
    /// The changed functions (display names) that the running program cannot run after a
    /// redirection: `main` (its frame runs the old code until it returns), what it calls
    /// only once (outside its loops, and from nothing else), and a function new in the patch
    /// (`code`, its index) that only such functions refer to (start-up code moved into a
    /// function of its own). When the executable cannot be read, `main` only: the error is
    /// told by [`Session::plan_redirects`].
    pub(super) fn runs_once(
        &mut self,
        changed: &[String],
        crates: &Crates,
        code: Option<&CodeIndex>,
    ) -> Vec<String> {
        let Ok(redirection) = self.host_functions() else {
            return changed
                .iter()
                .filter(|name| *name == MAIN)
                .cloned()
                .collect();
        };
        let shown = |mangled: &str| crates.display(&demangle(mangled));
        let mut once: BTreeSet<String> = changed
            .iter()
            .filter(|name| *name == MAIN || redirection.start_up_only.contains(*name))
            .cloned()
            .collect();
        let running = &redirection.host_names;
        // Only a function new in the patch can run once for want of other referrers: the
        // program's functions are told by `start_up_only`. Most patches add none, and the
        // referrers below take every symbol the crate's code refers to (about 18 ms of every
        // patch of the medium benchmark fixture).
        let added = changed
            .iter()
            .any(|name| !once.contains(name) && !running.contains(name));
        if let (Some(code), Some(_), true) = (code, &redirection.host, added) {
            // Who refers to each function of the patch; `None` for a referrer that is no
            // function of the crates (another crate's code, a vtable): it may call it any time.
            // Only the changed functions' referrers are asked for; each symbol is demangled
            // once (the edges name tens of thousands of them, most many times).
            let wanted: BTreeSet<&str> = changed.iter().map(String::as_str).collect();
            let mut names: std::collections::HashMap<&str, Option<String>> = Default::default();
            let mut referrers: std::collections::BTreeMap<String, Vec<Option<String>>> =
                Default::default();
            for (from, targets) in code.edges.iter() {
                let mut from_shown = None;
                for target in targets.iter() {
                    let target = names.entry(target).or_insert_with(|| shown(target));
                    let Some(target) = target.as_ref().filter(|t| wanted.contains(t.as_str()))
                    else {
                        continue;
                    };
                    let from = from_shown.get_or_insert_with(|| shown(from)).clone();
                    referrers.entry(target.clone()).or_default().push(from);
                }
            }
            let mut grew = true;
            while grew {
                grew = false;
                for name in changed {
                    if once.contains(name) || running.contains(name) {
                        continue;
                    }
                    let only_once = referrers.get(name).is_some_and(|from| {
                        from.iter()
                            .all(|from| from.as_ref().is_some_and(|f| once.contains(f)))
                    });
                    if only_once {
                        once.insert(name.clone());
                        grew = true;
                    }
                }
            }
        }
        changed
            .iter()
            .filter(|name| once.contains(*name))
            .cloned()
            .collect()
    }

    /// The redirection state with the executable's functions of the local crates read (once
    /// per program), from the running image itself (`/proc/<pid>/exe`), even if its file was
    /// replaced since.
    ///
    /// # Errors
    ///
    /// When the program is not running, the session does not redirect, or the executable
    /// cannot be read.
    fn host_functions(&mut self) -> anyhow::Result<&mut Redirection> {
        let Some(running) = &self.running else {
            anyhow::bail!("the program is not running");
        };
        let pid = running.child.id();
        let local = self.local_crates();
        let Some(redirection) = &mut self.redirection else {
            anyhow::bail!("the session does not redirect");
        };
        if redirection.host.is_none() {
            let host = match redirection.reading.take() {
                Some(reading) => reading.join().unwrap_or_else(|_| {
                    Err(anyhow::anyhow!("the reading of the executable panicked"))
                })?,
                None => host_functions_of(pid, &local)?,
            };
            // Named with every local crate, not only those a patch rebuilds: a library's
            // function that calls a start-up function of the bin is the program's own code.
            let all = Crates {
                bin: local[0].clone(),
                libs: local[1..].to_vec(),
            };
            let shown = |mangled: &str| all.display(&demangle(mangled));
            let main = host
                .names()
                .find(|name| shown(name).as_deref() == Some(MAIN))
                .map(str::to_owned);
            redirection.host_names = host.names().filter_map(shown).collect();
            if let Some(main) = main {
                redirection.start_up_only = host
                    .start_up_only(&main, &|name| shown(name).is_some())
                    .iter()
                    .filter_map(|name| shown(name))
                    .collect();
            }
            redirection.host = Some(host);
        }
        Ok(redirection)
    }

    /// The names of the local crates of the running program: the bin's, then its local
    /// libraries'.
    pub(super) fn local_crates(&self) -> Vec<String> {
        std::iter::once(self.project.crate_name.clone())
            .chain(self.running.iter().flat_map(|running| {
                running
                    .build
                    .locals
                    .crates
                    .iter()
                    .map(|c| c.name().to_owned())
            }))
            .collect()
    }

    /// Refuses `planned` when a redirected closure's or `async` body's state changed its
    /// layout since the program started (see [`check::state_refusals`]): the running
    /// program's closures and unfinished futures would be misread.
    pub(super) fn check_states(
        &self,
        changes: &super::pipeline::Changes,
        patch: &Patch,
        planned: &Planned,
    ) -> Result<(), Outcome> {
        if !planned.has_closures() {
            return Ok(());
        }
        let running = self.running.as_ref().expect("the changes stage saw it");
        let old = match &running.image.types {
            Ok(old) => old,
            Err(reason) => {
                return Err(Outcome::Refused(vec![Refusal::Unchecked {
                    reason: reason.clone(),
                }]));
            }
        };
        let refusals = check::state_refusals(
            old,
            &patch.path,
            &self.crate_ids(&changes.host),
            &self.project.crate_name,
            &planned.names,
        )
        .map_err(|err| Outcome::Unchecked(err.context("cannot check the patch")))?;
        if refusals.is_empty() {
            Ok(())
        } else {
            Err(Outcome::Refused(refusals))
        }
    }

    /// The entries `patch` redirects in `--redirect` mode: those of every function of the bin
    /// crate whose code differs from the program's start, of the library crates' functions
    /// that the patch changes (`changed`, display names), and of every function an earlier
    /// patch redirected; but `main`, what runs only while the program starts, and the hot
    /// functions `hot` (paths; their slots switch them). A function whose symbol changed (its
    /// signature) is not redirected but left to its new callers when every function that calls
    /// its old symbol is redirected. And the GOT entries of the patch that are to point at the
    /// running program's statics, and the patch's thread-local accessors, redirected to the
    /// running program's.
    ///
    /// # Errors
    ///
    /// [`Refusal::StaticUnshared`] when a function to redirect uses a static in a way that
    /// cannot be shared, [`Refusal::StaticValue`] when a static of the crate has a new initial
    /// value; [`Outcome::Unchecked`] when the entries cannot be found: the code of
    /// the start or of the patch is unknown, or the executable or the patch cannot be read.
    pub(super) fn plan_redirects(
        &mut self,
        patch: &Patch,
        crates: &Crates,
        hot: &BTreeSet<String>,
        changed: &[String],
    ) -> Result<Planned, Outcome> {
        let unchecked = |reason: String| {
            Outcome::Unchecked(anyhow::anyhow!(
                "cannot find the entries to redirect: {reason}"
            ))
        };
        let crate_name = self.project.crate_name.clone();
        let this_patch = self.next_patch;
        if self.redirection.is_none() {
            return Ok(Planned::default());
        }
        let redirection = self
            .host_functions()
            .map_err(|err| unchecked(format!("{err:#}")))?;
        let (Some(start), Some(code)) = (&redirection.host_code, patch.code.get()) else {
            return Err(unchecked(
                "the code of the running program or of the patch could not be read".to_owned(),
            ));
        };
        let hot: BTreeSet<String> = hot.iter().map(|h| short_name(h, &crate_name)).collect();
        let mut names: BTreeSet<String> = code
            .changed_since(start, crates)
            .into_iter()
            .chain(changed.iter().cloned())
            .chain(redirection.names.iter().cloned())
            .filter(|name| name != MAIN && !hot.contains(name))
            // What runs only while the program starts would never run its new code (see
            // `runs_once`): it is not redirected, and calls from it are not redirected calls.
            .filter(|name| !redirection.start_up_only.contains(name))
            .collect();
        // A closure of a hot function shows as the hot function: its body's own.
        names.retain(|name| !hot.iter().any(|h| name.starts_with(&format!("{h}::"))));
        let shown = |mangled: &str| crates.display(&demangle(mangled));
        let refusals: Vec<Refusal> = patch
            .unshared
            .iter()
            .filter_map(|(function, name, why)| {
                let function = shown(function).filter(|f| names.contains(f))?;
                let name =
                    static_of(name, &crate_name).unwrap_or_else(|| demangle(unsection(name)));
                Some(Refusal::StaticUnshared {
                    function,
                    name,
                    why: why.clone(),
                })
            })
            .collect();
        // A static's initial value is in no function's code: the running program's copy, which
        // redirected code uses, keeps the value it holds. (A new static is the new code's.)
        let refusals: Vec<Refusal> = refusals
            .into_iter()
            .chain(
                code.values_edited_since(start, crates)
                    .into_iter()
                    .map(|name| Refusal::StaticValue {
                        name,
                        exported: false,
                    }),
            )
            .collect();
        if !refusals.is_empty() {
            return Err(Outcome::Refused(refusals));
        }
        let functions =
            Functions::read(&patch.path, &|_| true).map_err(|err| unchecked(format!("{err:#}")))?;
        let host = redirection.host.as_ref().expect("read above");
        let modules: Vec<(u64, &Functions)> = std::iter::once((0, host))
            .chain(redirection.applied.iter().map(|(n, f)| (*n, f)))
            .collect();
        let wanted = |mangled: &str| shown(mangled).is_some_and(|name| names.contains(&name));
        let found = entries::redirects(&functions, &wanted, &modules);
        // A function the running program has under another symbol (its signature, or a type
        // in it, changed) cannot be redirected: the old code would go on running.
        let host_names = &redirection.host_names;
        // A function whose symbol changed needs no redirection when every call of its old
        // symbol is in a function redirected too (the new callers call the new symbol).
        let blocked: BTreeSet<String> = found.blocked.iter().filter_map(|m| shown(m)).collect();
        // The running program's symbols of `name` that the patch no longer has: the function
        // under its old symbol. None when the patch still has them all: the unmatched symbol
        // is a new function of the same name (a closure added next to others, whose names
        // are all `f::{closure}`).
        let gone = |name: &str| -> Vec<&str> {
            host.names()
                .filter(|old| shown(old).as_deref() == Some(name) && functions.get(old).is_none())
                .collect()
        };
        let kept_callers = |name: &str| -> Option<String> {
            let (mut kept, mut endless) = (BTreeSet::new(), BTreeSet::new());
            for old in gone(name) {
                let callers = match host.callers(old) {
                    None => {
                        return Some("its address is taken, so its calls cannot be told".into());
                    }
                    // A closure of a redirected function, called through another crate's
                    // code: the new function makes and calls the new closure; a value the old
                    // code made keeps the old one (as a stored closure keeps its code).
                    Some(callers)
                        if callers.is_empty()
                            && name
                                .find("::{closure}")
                                .is_some_and(|at| names.contains(&name[..at])) =>
                    {
                        continue;
                    }
                    Some(callers) if callers.is_empty() => {
                        return Some(
                            "no call of it was found in the program's code (it is called \
                             through another crate's, as a closure handed to a library is)"
                                .into(),
                        );
                    }
                    Some(callers) => callers,
                };
                for (mangled, how) in callers {
                    let caller = shown(mangled);
                    let redirected = caller.as_ref().is_some_and(|caller| {
                        caller != MAIN && names.contains(caller) && !blocked.contains(caller)
                    });
                    let caller = caller.unwrap_or_else(|| demangle(mangled));
                    if !redirected {
                        kept.insert(format!("`{caller}`"));
                    } else if how == entries::Use::CallInEndlessLoop {
                        endless.insert(format!("`{caller}`"));
                    }
                }
            }
            let kept: Vec<String> = kept.into_iter().collect();
            let endless: Vec<String> = endless.into_iter().collect();
            let mut why = Vec::new();
            match kept.len() {
                0 => {}
                1 => why.push(format!("{} calls it and is not redirected", kept[0])),
                _ => why.push(format!(
                    "{} call it and are not redirected",
                    kept.join(", ")
                )),
            }
            // A redirected caller whose running call never ends goes on calling the old one.
            match endless.len() {
                0 => {}
                1 => why.push(format!(
                    "{} calls it in a loop that never ends, where a running call goes on \
                     calling the old one",
                    endless[0]
                )),
                _ => why.push(format!(
                    "{} call it in loops that never end, where running calls go on calling \
                     the old one",
                    endless.join(", ")
                )),
            }
            (!why.is_empty()).then(|| why.join("; "))
        };
        let renamed = found.unmatched.iter().filter_map(|mangled| {
            let name = shown(mangled).filter(|name| host_names.contains(name))?;
            if gone(&name).is_empty() {
                return None;
            }
            Some((mangled, kept_callers(&name)?))
        });
        let refusals: Vec<Refusal> = found
            .blocked
            .iter()
            .map(|mangled| {
                (
                    mangled,
                    "its code loops back into its first bytes",
                    "a thread going round that loop would run the middle of the jump; a loop \
                     whose body is a function of its own can be patched",
                )
            })
            .map(|(mangled, why, effect)| (mangled, why.to_owned(), effect))
            .chain(renamed.map(|(mangled, callers)| {
                // Closures are numbered in the order they are written: one added or removed
                // before another gives that one another symbol, its signature unchanged.
                let cause = if shown(mangled).is_some_and(|name| name.contains("{closure}")) {
                    "a closure added or removed before it in the same function, or its \
                     signature, changed"
                } else {
                    "its signature changed"
                };
                (
                    mangled,
                    format!(
                        "the running program has it under another symbol ({cause}), and \
                         {callers}"
                    ),
                    "the running program's calls of it would go on running the old code",
                )
            }))
            .filter_map(|(mangled, why, effect)| {
                Some(Refusal::Unredirectable {
                    function: format!("`{}`", shown(mangled)?),
                    why,
                    effect: effect.to_owned(),
                })
            })
            .fold(Vec::new(), |mut unique, refusal| {
                // Closures of one function share a name: each refusal is told once.
                if !unique.contains(&refusal) {
                    unique.push(refusal);
                }
                unique
            });
        if !refusals.is_empty() {
            return Err(Outcome::Refused(refusals));
        }
        let mut redirects = found.redirects;
        // Each of the patch's statics binds to the first module that has it: the executable,
        // or for a static new since, the first patch that brought it.
        let mut binds = Vec::new();
        let mut bound = BTreeSet::new();
        // A static as messages show it: the bin crate's by its path, a library crate's with
        // the crate's name.
        let static_shown = |demangled: &str| -> Option<String> {
            static_name(demangled, &crate_name).or_else(|| {
                crates.libs.iter().find_map(|lib| {
                    static_name(demangled, lib)
                        .map(|name| crate::check::code::qualified(lib, &name))
                })
            })
        };
        let got = functions
            .got_statics(&patch.path)
            .map_err(|err| unchecked(format!("{err:#}")))?;
        for (slot, value, name) in got {
            let size = functions.static_named(&name).map_or(0, |(_, size)| size);
            let found = modules.iter().find_map(|(from, module)| {
                let (at, old_size) = module.static_named(&name)?;
                Some((*from, at, old_size))
            });
            // A static whose size changed is the new code's own (it starts fresh).
            if let Some((from, at, old_size)) = found.filter(|found| found.2 == size) {
                binds.push(Bind {
                    slot,
                    value,
                    from,
                    at,
                    size: old_size,
                });
                bound.extend(static_shown(&demangle(&name)));
            }
        }
        // Each thread-local's accessor in the patch (the one function that reaches its storage)
        // runs the executable's accessor of the same symbol: the thread-local stays the running
        // program's, on every thread. An accessor that changed, or is new, is the patch's own.
        //
        // Likewise an unchanged function that the patch carries (its codegen unit was compiled
        // again for another function) and that reads or writes a static in place, which no GOT
        // entry can rebind: the patch's code calls its copy, which runs the executable's, so
        // that the static stays the running program's (a changed one is refused above).
        let accessors = patch.thread_local_accessors.iter().map(|f| (f, f));
        let in_place = patch.unshared.iter().map(|(f, name, _)| (f, name));
        let mut seen = BTreeSet::new();
        for (function, name) in accessors.chain(in_place) {
            if shown(function).is_some_and(|name| names.contains(&name)) {
                continue;
            }
            let (Some(own), Some(running)) = (functions.get(function), host.get(function)) else {
                continue;
            };
            if seen.insert(function) {
                redirects.push(Redirect {
                    from: this_patch,
                    at: own.address,
                    size: own.size,
                    to: running.address,
                    at_bytes: own.bytes.clone(),
                    to_bytes: running.bytes.clone(),
                    into: Some(0),
                });
            }
            bound.extend(static_shown(&demangle(unsection(name))));
        }
        Ok(Planned {
            redirects,
            binds,
            bound,
            functions: Some(functions),
            names,
        })
    }
}

/// A static's symbol, or for a static the compiler named only by its section (`.bss.<symbol>`,
/// `.data.<symbol>`), the symbol.
fn unsection(name: &str) -> &str {
    name.trim_start_matches(".bss.")
        .trim_start_matches(".data.")
}

/// The static of the crate `crate_name` (as written, see [`static_name`]) that the symbol or
/// section `name` holds, if it is one.
fn static_of(name: &str, crate_name: &str) -> Option<String> {
    static_name(&demangle(unsection(name)), crate_name)
}
