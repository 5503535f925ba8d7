//! The terminal that the tool shares with the program, when the tool runs in one: the program
//! gets it whole (it can draw frames without newlines, enter raw mode and the alternate screen,
//! read keys), and the tool keeps out of its way and puts it back.
//!
//! - While the program holds the terminal in raw mode (a full-screen program: canonical input is
//!   off), a status line is not written over its screen: the line goes to the terminal's title
//!   (`OSC 2`, which terminals and tmux show outside the drawing area) and is kept; kept lines
//!   are printed once the terminal is back in canonical mode.
//! - When the program stops (a restart, the end of the session, a crash), the terminal is put
//!   back as it was when the session started (termios, via `tcsetattr`), the alternate screen is
//!   left and the cursor shown, before anything else is printed or started. Ctrl-C then reaches
//!   the tool again.

use std::io::{IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::sync::{Mutex, OnceLock};

/// The terminal's modes when the session started, and the status lines kept meanwhile.
struct Shared {
    /// The termios read at start.
    saved: libc::termios,
    /// Status lines held back while the program was full-screen, in order.
    held: Mutex<Vec<String>>,
}

static SHARED: OnceLock<Option<Shared>> = OnceLock::new();

/// The terminal's current termios, read on stderr.
fn current() -> Option<libc::termios> {
    let fd = std::io::stderr().as_raw_fd();
    // SAFETY: `termios` is plain data, valid when all-zero; `tcgetattr` writes it whole or fails.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is this process's stderr, open for its whole life; `termios` is a valid,
    // exclusive pointer for the call.
    (unsafe { libc::tcgetattr(fd, &mut termios) } == 0).then_some(termios)
}

/// Remembers the terminal's modes, when the tool's stderr is a terminal. Call once, at the
/// start of a session, before the program starts.
pub(crate) fn save() {
    SHARED.get_or_init(|| {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        current().map(|saved| Shared {
            saved,
            held: Mutex::new(Vec::new()),
        })
    });
}

/// Whether the program gets the tool's terminal as its stdin, stdout and stderr: the tool's
/// stdout is a terminal, and `json_events` (the tool's `--message-format json`) is off.
pub(crate) fn program_gets_terminal(json_events: bool) -> bool {
    std::io::stdout().is_terminal() && !json_events
}

/// Whether a full-screen program holds the terminal now: canonical input is off while the
/// session started with it on.
pub(crate) fn full_screen() -> bool {
    let Some(Some(shared)) = SHARED.get() else {
        return false;
    };
    let canonical = |t: &libc::termios| t.c_lflag & libc::ICANON != 0;
    canonical(&shared.saved) && current().is_some_and(|now| !canonical(&now))
}

/// Keeps `line` (a status line, as printed, with its newline) instead of printing it if a
/// full-screen program holds the terminal: its first line goes to the terminal's title.
/// Returns whether the line was kept.
pub(crate) fn hold(line: &str) -> bool {
    let Some(Some(shared)) = SHARED.get() else {
        return false;
    };
    if !full_screen() {
        return false;
    }
    let title: String = strip_styles(line.lines().next().unwrap_or(""))
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "\x1b]2;cargo-hotswap: {title}\x07");
    let _ = stderr.flush();
    shared
        .held
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(line.to_owned());
    true
}

/// Puts the terminal back as the session found it, if a program changed it: its termios, the
/// main screen, the cursor shown. Then prints the status lines kept meanwhile.
pub(crate) fn restore() {
    let Some(Some(shared)) = SHARED.get() else {
        return;
    };
    let changed = current().is_some_and(|now| {
        now.c_lflag != shared.saved.c_lflag
            || now.c_iflag != shared.saved.c_iflag
            || now.c_oflag != shared.saved.c_oflag
    });
    let mut stderr = std::io::stderr().lock();
    if changed {
        // SAFETY: stderr's descriptor is open for the process's life; `saved` is a termios that
        // `tcgetattr` filled for this very terminal.
        unsafe { libc::tcsetattr(stderr.as_raw_fd(), libc::TCSANOW, &shared.saved) };
        // Leave the alternate screen, show the cursor, reset colours.
        let _ = stderr.write_all(b"\x1b[?1049l\x1b[?25h\x1b[0m\r\n");
    }
    let held = std::mem::take(&mut *shared.held.lock().unwrap_or_else(|e| e.into_inner()));
    for line in held {
        let _ = stderr.write_all(line.as_bytes());
    }
    let _ = stderr.flush();
}

/// `text` without ANSI style sequences (`ESC [ ... m`).
fn strip_styles(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn styles_are_stripped_for_the_title() {
        assert_eq!(
            super::strip_styles("\x1b[1m\x1b[32m     Patched\x1b[0m 1 function"),
            "     Patched 1 function"
        );
    }
}
