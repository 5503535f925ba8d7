//! The agent link: which connection is the program's, and sending a checked patch over it and
//! waiting for the program's answer (the tool reports only what the program confirmed).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use hotswap::protocol::{HostMessage, ToolMessage};

use crate::output;
use crate::symbols::short_name;

use super::outcome::{Applied, Checked};
use super::{APPLY_DEADLINE, Session};

impl Session {
    /// A connection `id` to the agent socket: remembered as the program's link until its hello
    /// says which build it is.
    pub(super) fn connected(&mut self, id: u64, stream: UnixStream) {
        if let Some(running) = &mut self.running
            && running.link.is_none()
        {
            running.link = Some((id, stream));
        }
    }

    /// The hello of connection `id`, from process `pid` running build `build_id`: a link of
    /// another build is dropped.
    pub(super) fn hello(&mut self, id: u64, pid: u32, build_id: &str) {
        let Some(running) = &mut self.running else {
            return;
        };
        let ours = running.link.as_ref().is_some_and(|(link, _)| *link == id);
        if ours && build_id != running.build.build_id {
            output::warn(
                "Warning",
                format!(
                    "process {pid} connected with build `{build_id}`, expected `{}`; ignoring it",
                    running.build.build_id
                ),
            );
            running.link = None;
        } else if ours && running.warned_silent {
            output::status(
                "Connected",
                format!("to `{}` (pid {pid})", self.project.bin),
            );
        }
    }

    /// Connection `id` closed: if it was the program's link, there is none now.
    pub(super) fn disconnected(&mut self, id: u64) {
        if let Some(running) = &mut self.running
            && running.link.as_ref().is_some_and(|(link, _)| *link == id)
        {
            running.link = None;
        }
    }

    /// Sends `checked` to the program and waits (at most [`APPLY_DEADLINE`]) for its answer;
    /// messages it sends on its own meanwhile (a rollback) are reported as they come.
    ///
    /// # Errors
    ///
    /// Why the patch is not applied: no program or link, a failed send, no answer in time, or
    /// the program's own refusal.
    pub(super) fn apply(&mut self, checked: Checked) -> Result<Applied, String> {
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
            changed: checked
                .changed
                .clone()
                .unwrap_or_else(|| display(&checked.functions)),
            functions: checked.functions,
        };
        if let Err(err) = stream.write_all(message.encode().as_bytes()) {
            running.link = None;
            return Err(format!("cannot send the patch to the program: {err}"));
        }
        let deadline = Instant::now() + APPLY_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = match self.replies.recv_timeout(left) {
                Ok((id, reply)) if id == link_id => reply,
                Ok(_) => continue,
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
                    functions,
                } if patch_id == number => {
                    return Ok(Applied {
                        generation,
                        functions: checked.changed.unwrap_or_else(|| display(&functions)),
                        build_ms: checked.patch.build_time.as_millis(),
                        check_ms: (checked.check_time.as_secs_f64() * 10_000.0).round() / 10.0,
                        load_ms: (load_micros as f64 / 100.0).round() / 10.0,
                    });
                }
                HostMessage::Failed { patch_id, reason } if patch_id == number => {
                    return Err(format!("the program did not apply the patch: {reason}"));
                }
                other => {
                    crate::notices::host_event(&other, &crate_name);
                }
            }
        }
    }
}
