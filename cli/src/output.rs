//! Status lines on stderr in cargo's style: a right-aligned bold verb in 12 columns.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use anstyle::{AnsiColor, Effects, Style};

/// How status lines are written; set once at start-up.
#[derive(Debug, Clone, Copy)]
struct Settings {
    color: bool,
    quiet: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

fn settings() -> Settings {
    *SETTINGS.get_or_init(|| Settings {
        color: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        quiet: false,
    })
}

/// Whether events are also written as JSON lines on stdout (`--message-format json`).
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Chooses colour (terminal and no `NO_COLOR`), quietness and JSON events for the rest of the
/// process.
pub(crate) fn init(quiet: bool, json: bool) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = SETTINGS.set(Settings { color, quiet });
    JSON.store(json, std::sync::atomic::Ordering::Relaxed);
}

/// Whether JSON events are on.
pub(crate) fn json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Writes `event` as one JSON line on stdout, with `--message-format json`. Its `reason` field
/// names the event, as in cargo's messages.
pub(crate) fn event(event: serde_json::Value) {
    if json() {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{event}");
        let _ = stdout.flush();
    }
}

/// Whether stderr gets ANSI colours (also passed on to rustc).
pub(crate) fn color() -> bool {
    settings().color
}

fn write_status(style: Style, verb: &str, message: &dyn Display) {
    let settings = settings();
    let mut stderr = std::io::stderr().lock();
    let _ = if settings.color {
        writeln!(stderr, "{style}{verb:>12}{style:#} {message}")
    } else {
        writeln!(stderr, "{verb:>12} {message}")
    };
}

/// A progress line: `   Compiling foo v0.1.0` (green).
pub(crate) fn status(verb: &str, message: impl Display) {
    if !settings().quiet {
        write_status(
            AnsiColor::Green.on_default().effects(Effects::BOLD),
            verb,
            &message,
        );
    }
}

/// A line that needs attention, shown even with `--quiet`: `     Refused ...` (yellow).
pub(crate) fn warn(verb: &str, message: impl Display) {
    write_status(
        AnsiColor::Yellow.on_default().effects(Effects::BOLD),
        verb,
        &message,
    );
}

/// An error with its chain of causes, printed once: `error: ...` then `  caused by: ...`.
pub(crate) fn error(err: &anyhow::Error) {
    let style = AnsiColor::Red.on_default().effects(Effects::BOLD);
    let mut stderr = std::io::stderr().lock();
    let (on, off) = if settings().color {
        (style.render().to_string(), style.render_reset().to_string())
    } else {
        (String::new(), String::new())
    };
    let _ = writeln!(stderr, "{on}error{off}: {err}");
    for cause in err.chain().skip(1) {
        let _ = writeln!(stderr, "\nCaused by:\n  {cause}");
    }
}
