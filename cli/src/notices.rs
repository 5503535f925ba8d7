//! What the tool tells about the running program's code beyond a patch's answer: a patched hot
//! function that panicked on its first call (rolled back or not).

use hotswap::protocol::HostMessage;

use crate::codes::Code;
use crate::event::Event;
use crate::output;
use crate::output::CONTINUATION;
use crate::symbols::short_name;

/// Prints a message the host sent on its own (not an answer to a patch); returns whether
/// `message` was one.
pub(crate) fn host_event(message: &HostMessage, crate_name: &str) -> bool {
    match message {
        HostMessage::RolledBack {
            generation,
            function,
            reason,
        } => {
            told(
                "Rolled back",
                Code::RolledBack,
                format!(
                    "hot fn `{}` panicked on its first call: {}{CONTINUATION}the code before \
                     that patch runs again (generation {generation})",
                    output::printable(&short_name(function, crate_name)),
                    output::printable(reason)
                ),
            );
            true
        }
        HostMessage::Panicked {
            generation,
            function,
            reason,
        } => {
            told(
                "Panicked",
                Code::Panicked,
                format!(
                    "hot fn `{}` panicked on its first call: {}{CONTINUATION}the new code \
                     stays (generation {generation}); `#[hot(rollback)]` or \
                     `hotswap::set_rollback(true)` would restore the previous code",
                    output::printable(&short_name(function, crate_name)),
                    output::printable(reason)
                ),
            );
            true
        }
        HostMessage::Hello { .. } | HostMessage::Applied { .. } | HostMessage::Failed { .. } => {
            false
        }
    }
}

/// A line that the program's own message gives, with its code, and its event.
fn told(verb: &str, code: Code, message: String) {
    output::warn(verb, code.tag(&message));
    output::event(&Event::Warning {
        code: Some(code),
        message,
    });
}
