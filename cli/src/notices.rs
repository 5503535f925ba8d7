//! What the tool tells about the running program's code beyond a patch's answer: a patched hot
//! function that panicked on its first call (rolled back or not), and changes that only a
//! restart brings into effect.

use hotswap::protocol::HostMessage;

use crate::check::code::CodeIndex;
use crate::output;

/// Indentation of a status message's continuation lines (under the message, past the verb).
const CONTINUATION: &str = "\n             ";

/// Prints a message the host sent on its own (not an answer to a patch); returns whether
/// `message` was one.
pub(crate) fn host_event(message: &HostMessage, crate_name: &str) -> bool {
    match message {
        HostMessage::RolledBack {
            generation,
            function,
            reason,
        } => {
            output::warn(
                "Rolled back",
                format!(
                    "hot fn `{}` panicked on its first call: {reason}{CONTINUATION}the code \
                     before that patch runs again (generation {generation})",
                    short_name(function, crate_name)
                ),
            );
            true
        }
        HostMessage::Panicked {
            generation,
            function,
            reason,
        } => {
            output::warn(
                "Panicked",
                format!(
                    "hot fn `{}` panicked on its first call: {reason}{CONTINUATION}the new code \
                     stays (generation {generation}); `#[hot(rollback)]` or \
                     `hotswap::set_rollback(true)` would restore the previous code",
                    short_name(function, crate_name)
                ),
            );
            true
        }
        HostMessage::Hello { .. } | HostMessage::Applied { .. } | HostMessage::Failed { .. } => {
            false
        }
    }
}

/// Splits the changed functions (display names, if known) into those the running program will
/// run, returned, and those no hot function reaches in `code` (S19), which are reported as
/// taking effect only after a restart. The flag says that every change was of the second kind:
/// then there is nothing to send.
pub(crate) fn live_changes(
    changed: Option<Vec<String>>,
    code: Option<&CodeIndex>,
    crate_name: &str,
) -> (Option<Vec<String>>, bool) {
    let (changed, code) = match (changed, code) {
        (Some(changed), Some(code)) => (changed, code),
        (changed, _) => return (changed, false),
    };
    let restart = code.unreachable(&changed, crate_name);
    restart_only(&restart);
    let live: Vec<String> = changed
        .into_iter()
        .filter(|name| !restart.contains(name))
        .collect();
    let only_restart = !restart.is_empty() && live.is_empty();
    (Some(live), only_restart)
}

/// Warns that `names`, functions whose code changed, are reached by no hot function, so the
/// running program never runs their new code.
fn restart_only(names: &[String]) {
    if names.is_empty() {
        return;
    }
    let list = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let (pronoun, change) = if names.len() == 1 {
        ("it", "the change takes")
    } else {
        ("them", "the changes take")
    };
    output::warn(
        "Warning",
        format!(
            "{list} changed, but no hot function reaches {pronoun}: {change} effect only after \
             a restart"
        ),
    );
}

/// A hot function's path without the crate's own name: `render::frame`.
fn short_name(path: &str, crate_name: &str) -> String {
    path.strip_prefix(crate_name)
        .and_then(|rest| rest.strip_prefix("::"))
        .unwrap_or(path)
        .to_owned()
}
