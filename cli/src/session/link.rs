//! The agent link: which connection is the program's, and sending a checked patch over it and
//! waiting for the program's answer (the tool reports only what the program confirmed).

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use hotswap::protocol::{HostMessage, ToolMessage};

use crate::output;
use crate::symbols::short_name;

use super::outcome::{Applied, Checked};
use super::{APPLY_DEADLINE, Session};

/// How often the wait for the program's answer checks that the program still runs.
const POLL: Duration = Duration::from_millis(100);

/// The program's confirmation of a patch (see [`HostMessage::Applied`]).
struct Answer {
    generation: u64,
    load_micros: u64,
    pause_micros: u64,
    redirected: u64,
    functions: Vec<String>,
}

impl Session {
    /// A connection `id` to the agent socket from process `pid`: if that is the program, it is
    /// kept until its hello; any other process (a child that kept the socket's path, another
    /// program of this user) is ignored and never sent a patch.
    pub(super) fn connected(&mut self, id: u64, stream: UnixStream, pid: u32) {
        let Some(running) = &mut self.running else {
            return;
        };
        if pid == running.child.id() {
            running.pending = Some((id, stream));
        } else {
            output::warn(
                "Warning",
                format!(
                    "process {pid} connected to the agent socket, but the program is process {}; \
                     ignoring it",
                    running.child.id()
                ),
            );
        }
    }

    /// The hello of connection `id`, from process `pid` running build `build_id`: the program's
    /// connection becomes its link if the build is the one it was started from.
    pub(super) fn hello(&mut self, id: u64, pid: u32, build_id: &str) {
        let Some(running) = &mut self.running else {
            return;
        };
        let Some(pending) = running.pending.take_if(|(link, _)| *link == id) else {
            return;
        };
        if build_id != running.build.build_id {
            output::warn(
                "Warning",
                format!(
                    "process {pid} connected with build `{build_id}`, expected `{}`; ignoring it",
                    running.build.build_id
                ),
            );
            return;
        }
        running.link = Some(pending);
        running.connected = true;
        if running.warned_silent {
            output::status(
                "Connected",
                format!("to `{}` (pid {pid})", self.project.bin),
            );
        }
    }

    /// Connection `id` closed: if it was the program's link, there is none now.
    pub(super) fn disconnected(&mut self, id: u64) {
        if let Some(running) = &mut self.running {
            if running.link.as_ref().is_some_and(|(link, _)| *link == id) {
                running.link = None;
            }
            if running
                .pending
                .as_ref()
                .is_some_and(|(link, _)| *link == id)
            {
                running.pending = None;
            }
        }
    }

    /// Sends `checked` to the program and waits (at most [`APPLY_DEADLINE`]) for its answer;
    /// messages it sends on its own meanwhile (a rollback) are reported as they come.
    ///
    /// # Errors
    ///
    /// Why the patch is not applied: no program or link, a failed send, no answer in time, or
    /// the program's own refusal.
    pub(super) fn apply(
        &mut self,
        mut checked: Checked,
    ) -> Result<(Applied, super::redirect::Planned), String> {
        let crate_name = self.project.crate_name.clone();
        let Some(running) = &mut self.running else {
            return Err("the program is not running".to_owned());
        };
        let Some((link_id, stream)) = &mut running.link else {
            return Err(format!(
                "`{}` is not connected to cargo-hotswap, so the patch cannot be applied",
                self.project.bin
            ));
        };
        let link_id = *link_id;
        let number = checked.number;
        let display = |functions: &[String]| -> Vec<String> {
            functions
                .iter()
                .map(|f| short_name(f, &crate_name))
                .collect()
        };
        let message = ToolMessage::Patch {
            patch_id: number,
            build_id: running.build.build_id.clone(),
            path: checked.patch.path.clone(),
            digest: checked.digest,
            changed: checked
                .changed
                .clone()
                .unwrap_or_else(|| display(&checked.functions)),
            functions: checked.functions,
            redirects: std::mem::take(&mut checked.planned.redirects),
            binds: std::mem::take(&mut checked.planned.binds),
        };
        if let Err(err) = stream.write_all(message.encode().as_bytes()) {
            running.link = None;
            return Err(format!("cannot send the patch to the program: {err}"));
        }
        let answer = self.answer(link_id, number)?;
        // A static's new initial value is among the changes: named apart from the functions.
        let crates = self.patch_crates(&checked.patch);
        let statics: BTreeSet<String> = checked
            .patch
            .code
            .get()
            .into_iter()
            .chain(
                checked
                    .patch
                    .libs
                    .iter()
                    .filter_map(|lib| lib.code.as_ref()),
            )
            .flat_map(|code| code.static_names(&crates))
            .collect();
        // When what changed is not known (the patch is compared with the program's own code),
        // the program says which hot functions it switched, and the plan which functions it
        // redirected.
        let changed = checked.changed.unwrap_or_else(|| {
            let mut names = display(&answer.functions);
            names.extend(checked.planned.names().iter().cloned());
            names.sort();
            names.dedup();
            names
        });
        let (statics, functions): (Vec<String>, Vec<String>) =
            changed.into_iter().partition(|name| statics.contains(name));
        let applied = Applied {
            generation: answer.generation,
            functions,
            statics,
            build_ms: checked.patch.build_time.as_millis(),
            check_ms: (checked.check_time.as_secs_f64() * 10_000.0).round() / 10.0,
            load_ms: (answer.load_micros as f64 / 100.0).round() / 10.0,
            pause_ms: (answer.redirected > 0)
                .then(|| (answer.pause_micros as f64 / 10.0).round() / 100.0),
        };
        Ok((applied, checked.planned))
    }

    /// Waits (at most [`APPLY_DEADLINE`]) for the answer of connection `link_id` to patch
    /// `number`: the generation, the load time in microseconds and the switched functions.
    /// Messages the program sends on its own meanwhile (a rollback) are reported as they come;
    /// a program that died is noticed within a [`POLL`].
    fn answer(&mut self, link_id: u64, number: u64) -> Result<Answer, String> {
        let deadline = Instant::now() + APPLY_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = match self.replies.recv_timeout(left.min(POLL)) {
                Ok((id, reply)) if id == link_id => reply,
                Ok(_) => continue,
                Err(_) if super::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) => {
                    return Err("interrupted while the program applied the patch".to_owned());
                }
                Err(_) if !left.is_zero() => {
                    if let Some(Ok(Some(status))) =
                        self.running.as_mut().map(|r| r.child.try_wait())
                    {
                        return Err(format!(
                            "`{}` exited ({status}) while applying the patch",
                            self.project.bin
                        ));
                    }
                    continue;
                }
                Err(_) => {
                    return Err(format!(
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
                    pause_micros,
                    redirected,
                    functions,
                } if patch_id == number => {
                    return Ok(Answer {
                        generation,
                        load_micros,
                        pause_micros,
                        redirected,
                        functions,
                    });
                }
                HostMessage::Failed { patch_id, reason } if patch_id == number => {
                    return Err(format!(
                        "the program did not apply the patch: {}",
                        output::printable(&reason)
                    ));
                }
                other => {
                    crate::notices::host_event(&other, &self.project.crate_name);
                }
            }
        }
    }
}
