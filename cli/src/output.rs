//! Everything the tool writes for people: status lines on stderr in cargo's style (a
//! right-aligned bold verb in 12 columns), progress bars on a terminal, the program's own output
//! passed through line by line, and JSON events on stdout with `--message-format json`.
//!
//! Every line goes out whole, under one lock, so that status lines and the program's lines are
//! never interleaved mid-line.

use std::cell::RefCell;
use std::fmt::Display;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anstyle::{AnsiColor, Effects, Style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

/// What continues a status message on its next line: a newline, then the indentation that puts
/// the text under the message, past the 12-column verb.
pub(crate) const CONTINUATION: &str = "\n             ";

/// `--color`: when to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    // Colour on a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    Always,
    Never,
}

/// How the output is written; set once at start-up.
#[derive(Debug, Clone, Copy, Default)]
struct Settings {
    color: bool,
    quiet: bool,
    verbose: bool,
    json: bool,
    terminal: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The progress bar or spinner being shown, if any; lines are printed above it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn settings() -> Settings {
    *SETTINGS.get_or_init(Settings::default)
}

/// Chooses colour, quietness, verbosity and JSON events for the rest of the process.
pub(crate) fn init(color: ColorChoice, quiet: bool, verbose: bool, json: bool) {
    let terminal = std::io::stderr().is_terminal();
    let color = match color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none(),
    };
    let _ = SETTINGS.set(Settings {
        color,
        quiet,
        verbose,
        json,
        terminal,
    });
}

/// Whether stderr gets ANSI colours (also passed on to cargo and rustc).
pub(crate) fn color() -> bool {
    settings().color
}

/// Whether `-v` was given.
pub(crate) fn verbose() -> bool {
    settings().verbose
}

/// Whether JSON events are on.
pub(crate) fn json() -> bool {
    settings().json
}

/// Whether progress bars may be drawn: stderr is a terminal that no full-screen program holds,
/// and `-q` was not given.
pub(crate) fn progress_allowed() -> bool {
    let settings = settings();
    settings.terminal && !settings.quiet && !crate::terminal::full_screen()
}

/// A line the tool printed on stderr, kept so that another process can print it again with
/// its own settings: `cargo hotswap patch` prints what the session printed, line for line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Printed {
    /// A progress line ([`status`]).
    Status {
        /// The verb, `Patched`.
        verb: String,
        /// The rest, continuation lines included.
        message: String,
    },
    /// A line that needs attention ([`warn`]).
    Warn {
        /// The verb, `Refused`.
        verb: String,
        /// The rest, continuation lines included.
        message: String,
    },
    /// Other text (the compiler's diagnostics, an error), whole lines.
    Text {
        /// The text, with its newlines.
        text: String,
    },
}

impl Printed {
    /// Prints the line again, with this process's settings (colour, `-q`).
    pub(crate) fn print(&self) {
        match self {
            Printed::Status { verb, message } => status(verb, message),
            Printed::Warn { verb, message } => warn(verb, message),
            Printed::Text { text } => write_stderr(text),
        }
    }
}

thread_local! {
    /// What this thread printed since [`recorded`] began, while it runs.
    static RECORDING: RefCell<Option<Vec<Printed>>> = const { RefCell::new(None) };
}

/// Runs `f`, returning its result and every line this thread printed meanwhile (other threads'
/// lines, the program's forwarded output among them, are not recorded).
pub(crate) fn recorded<T>(f: impl FnOnce() -> T) -> (T, Vec<Printed>) {
    let outer = RECORDING.with(|r| r.replace(Some(Vec::new())));
    let result = f();
    let lines = RECORDING.with(|r| r.replace(outer)).unwrap_or_default();
    (result, lines)
}

/// Keeps `line` if this thread is recording.
fn record(line: impl FnOnce() -> Printed) {
    RECORDING.with(|r| {
        if let Some(lines) = r.borrow_mut().as_mut() {
            lines.push(line());
        }
    });
}

/// Writes `text` (whole lines) to stderr in one call, above any progress bar.
pub(crate) fn write_stderr(text: &str) {
    record(|| Printed::Text {
        text: text.to_owned(),
    });
    emit_stderr(text);
}

/// [`write_stderr`] without recording: for lines recorded in a structured form. While a
/// full-screen program holds the terminal, the text is kept for later instead (see
/// [`crate::terminal`]).
fn emit_stderr(text: &str) {
    if crate::terminal::hold(text) {
        return;
    }
    let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
    let write = || {
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(text.as_bytes());
        let _ = stderr.flush();
    };
    match active.as_ref() {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Writes `text` (whole lines) to stdout in one call. When whoever read stdout is gone (a broken
/// pipe, as after `| head`), the tool ends as on SIGTERM: it stops the program and exits, without
/// a panic or an error message.
fn write_stdout(text: &str) {
    let _guard = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    if written.is_err_and(|err| err.kind() == std::io::ErrorKind::BrokenPipe) {
        // SAFETY: `raise` has no memory-safety preconditions; the session's SIGTERM handler
        // turns it into an orderly end, and without a session the default action ends the
        // process.
        unsafe { libc::raise(libc::SIGTERM) };
    }
}

fn write_status(style: Style, verb: &str, message: &dyn Display) {
    let line = if settings().color {
        format!("{style}{verb:>12}{style:#} {message}\n")
    } else {
        format!("{verb:>12} {message}\n")
    };
    emit_stderr(&line);
}

/// A progress line: `   Compiling foo v0.1.0` (green); not shown with `-q`.
pub(crate) fn status(verb: &str, message: impl Display) {
    let message = message.to_string();
    record(|| Printed::Status {
        verb: verb.to_owned(),
        message: message.clone(),
    });
    if !settings().quiet {
        write_status(
            AnsiColor::Green.on_default().effects(Effects::BOLD),
            verb,
            &message,
        );
    }
}

/// A `-v` detail line: `     Running `rustc ...`` (cyan); shown only with `-v`.
pub(crate) fn detail(verb: &str, message: impl Display) {
    if settings().verbose {
        write_status(
            AnsiColor::Cyan.on_default().effects(Effects::BOLD),
            verb,
            &message,
        );
    }
}

/// A line that needs attention, shown even with `-q`: `     Refused ...` (yellow).
pub(crate) fn warn(verb: &str, message: impl Display) {
    let message = message.to_string();
    record(|| Printed::Warn {
        verb: verb.to_owned(),
        message: message.clone(),
    });
    write_status(
        AnsiColor::Yellow.on_default().effects(Effects::BOLD),
        verb,
        &message,
    );
}

/// An error with its chain of causes, printed once: `error: ...` then `Caused by:` lines.
pub(crate) fn error(err: &anyhow::Error) {
    let style = AnsiColor::Red.on_default().effects(Effects::BOLD);
    let (on, off) = if settings().color {
        (style.render().to_string(), style.render_reset().to_string())
    } else {
        (String::new(), String::new())
    };
    let mut causes = String::new();
    if err.chain().nth(1).is_some() {
        causes.push_str("\nCaused by:\n");
        for cause in err.chain().skip(1) {
            causes.push_str(&format!("  {cause}\n"));
        }
    }
    record(|| Printed::Text {
        text: format!("error: {err}\n{causes}"),
    });
    emit_stderr(&format!("{on}error{off}: {err}\n{causes}"));
}

/// Writes `event` as one JSON line on stdout, with `--message-format json`. Its `reason` field
/// names the event, as in cargo's messages.
pub(crate) fn event(event: &crate::event::Event) {
    if json()
        && let Ok(text) = serde_json::to_string(event)
    {
        write_stdout(&format!("{text}\n"));
    }
}

/// A progress bar with `len` steps, drawn on a terminal only; status lines print above it.
/// Finish it with [`finish`].
pub(crate) fn progress_bar(verb: &str, len: u64) -> Option<ProgressBar> {
    if !progress_allowed() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = if settings().color {
        format!("\x1b[36;1m{verb:>12}\x1b[0m [{{bar:27}}] {{pos}}/{{len}}: {{msg}}")
    } else {
        format!("{verb:>12} [{{bar:27}}] {{pos}}/{{len}}: {{msg}}")
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
    Some(bar)
}

/// A spinner after the status `verb message`, drawn on a terminal only. Finish it with
/// [`finish`].
pub(crate) fn spinner(verb: &str, message: &str) -> Option<ProgressBar> {
    if !progress_allowed() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let template = if settings().color {
        format!("\x1b[36;1m{verb:>12}\x1b[0m {{msg}} {{spinner}}")
    } else {
        format!("{verb:>12} {{msg}} {{spinner}}")
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
    Some(bar)
}

/// Clears a progress bar or spinner from the terminal.
pub(crate) fn finish(bar: Option<ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Where a forwarded stream of the program goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sink {
    /// The tool's stdout.
    Stdout,
    /// The tool's stderr.
    Stderr,
}

/// Forwards `pipe` (the program's stdout or stderr) to `sink` on a thread: whole lines at once,
/// so that its lines and the tool's status lines never interleave mid-line, and what is left
/// without a newline (a prompt) as soon as nothing more is waiting in the pipe.
pub(crate) fn forward(pipe: impl Read + Send + 'static, sink: Sink) {
    forward_with(pipe, move |text| match sink {
        _ if text.is_empty() => {}
        Sink::Stdout => write_stdout(&text),
        Sink::Stderr => write_stderr(&text),
    });
}

/// cargo's stderr held back: kept while the build it comes from may still be abandoned, shown
/// (what was kept first) once [`Held::release`] says the build is wanted, dropped after
/// [`Held::discard`].
#[derive(Debug)]
pub(crate) struct Held {
    state: Mutex<HeldState>,
    /// Whether cargo's `Finished` line went through, and its signal.
    finished: (Mutex<bool>, std::sync::Condvar),
}

#[derive(Debug)]
enum HeldState {
    Holding(String),
    Shown,
    Dropped,
}

impl Held {
    /// Shows what was kept, and from now on every line as it comes.
    pub(crate) fn release(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let HeldState::Holding(text) = std::mem::replace(&mut *state, HeldState::Shown)
            && !text.is_empty()
        {
            write_stderr(&text);
        }
    }

    /// Drops what was kept, and every line to come.
    pub(crate) fn discard(&self) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = HeldState::Dropped;
    }

    /// Waits until cargo's `Finished` line has gone through, for at most `bound`: cargo writes
    /// it before its last JSON message, so the tool's next lines come after it.
    pub(crate) fn wait_finished(&self, bound: std::time::Duration) {
        let (finished, signal) = &self.finished;
        let finished = finished.lock().unwrap_or_else(|e| e.into_inner());
        let _ = signal.wait_timeout_while(finished, bound, |finished| !*finished);
    }
}

/// Forwards `pipe` (a build's stderr) to the tool's stderr like [`forward`], held back until
/// the returned [`Held`] is released, without the lines `unwanted` says to drop.
pub(crate) fn forward_held(
    pipe: impl Read + Send + 'static,
    unwanted: fn(&str) -> bool,
) -> std::sync::Arc<Held> {
    let held = std::sync::Arc::new(Held {
        state: Mutex::new(HeldState::Holding(String::new())),
        finished: Default::default(),
    });
    let shared = held.clone();
    // cargo writes a status line in pieces (the verb, then the rest): whole lines are kept
    // back until their end comes (or the stream's), so that they are matched whole.
    let mut pending = String::new();
    forward_with(pipe, move |piece| {
        let at_end = piece.is_empty();
        pending.push_str(&piece);
        let end = if at_end {
            pending.len()
        } else {
            pending.rfind('\n').map_or(0, |at| at + 1)
        };
        if end == 0 {
            return;
        }
        let mut text: String = pending.drain(..end).collect();
        if text.lines().any(unwanted) {
            text = text
                .split_inclusive('\n')
                .filter(|line| !unwanted(line.trim_end()))
                .collect();
        }
        // The lock is held while writing, so a release's kept lines come before these.
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *state {
            HeldState::Holding(kept) => kept.push_str(&text),
            HeldState::Shown if !text.is_empty() => write_stderr(&text),
            HeldState::Shown | HeldState::Dropped => {}
        }
        drop(state);
        // `    Finished `dev` profile [..] target(s) in 0.01s`, coloured or not.
        if text
            .lines()
            .any(|line| line.contains("Finished") && line.contains(" profile ["))
        {
            let (finished, signal) = &shared.finished;
            *finished.lock().unwrap_or_else(|e| e.into_inner()) = true;
            signal.notify_all();
        }
    });
    held
}

/// Forwards `pipe` on a thread to `write`, whole lines at once (see [`forward`]), and an empty
/// piece at its end.
fn forward_with(pipe: impl Read + Send + 'static, mut write: impl FnMut(String) + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("hotswap-output".into())
        .spawn(move || {
            let mut reader = std::io::BufReader::new(pipe);
            while let Ok(buffer) = reader.fill_buf() {
                if buffer.is_empty() {
                    break;
                }
                let end = buffer
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(buffer.len(), |at| at + 1);
                let text = String::from_utf8_lossy(&buffer[..end]).into_owned();
                reader.consume(end);
                write(text);
            }
            // The end of the stream, as an empty piece.
            write(String::new());
        });
    if let Err(err) = spawned {
        warn(
            "Warning",
            format!("cannot forward the program's output: {err}"),
        );
    }
}

/// `text` from the program (a panic message, a reason) as the tool shows it: control
/// characters, newlines included, escaped, so that it cannot move the cursor, change colours or
/// fake a status line.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_from_the_program_cannot_move_the_cursor_or_fake_a_line() {
        assert_eq!(
            super::printable("boom\x1b[2J\n     Patched everything"),
            "boom\\u{1b}[2J\\n     Patched everything"
        );
        assert_eq!(super::printable("plain `text`"), "plain `text`");
    }
}
