//! A full-screen terminal app as people write them with ratatui: an `App<'a>` that borrows its
//! settings, a frame loop that draws and reads keys. Its `impl` block is marked
//! `#[hotswap::hot]`: under `cargo hotswap run`, an edit to the rendering or to the key handling
//! shows in the next frame, while the counter and the log keep their values.
//!
//! Keys: `+` and `-` change the counter, `q` or Ctrl-C quits.

use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Block, List, Paragraph};
use ratatui::{DefaultTerminal, Frame};

/// What the app was started with.
struct Settings {
    name: String,
}

// ANCHOR: app
/// The app's state: it borrows its settings, as ratatui apps often borrow theirs.
struct App<'a> {
    settings: &'a Settings,
    counter: i64,
    log: Vec<String>,
    frames: u64,
}

#[hotswap::hot]
impl<'a> App<'a> {
    /// Draws one frame.
    fn render(&self, frame: &mut Frame) {
        let [top, bottom] =
            Layout::vertical([Constraint::Length(3), Constraint::Min(0)]).areas(frame.area());
        let title = format!(" {} (pid {}) ", self.settings.name, std::process::id());
        let counter = Paragraph::new(format!("Counter: {}", self.counter))
            .style(Style::new().bold())
            .block(Block::bordered().title(title));
        frame.render_widget(counter, top);
        let log = List::new(self.log.iter().rev().take(20).map(String::as_str))
            .block(Block::bordered().title(format!(" Log ({} frames) ", self.frames)));
        frame.render_widget(log, bottom);
    }

    /// Handles one key; returns `false` to quit.
    fn on_key(&mut self, key: KeyEvent) -> bool {
        match key.code {
            KeyCode::Char('q') => return false,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return false,
            KeyCode::Char('+') => self.counter += 1,
            KeyCode::Char('-') => self.counter -= 1,
            _ => return true,
        }
        self.log.push(format!("counter is now {}", self.counter));
        true
    }
}

// ANCHOR_END: app

/// The frame loop: draw, then wait up to 100 ms for a key.
fn run(terminal: &mut DefaultTerminal, app: &mut App<'_>) -> std::io::Result<()> {
    loop {
        terminal.draw(|frame| app.render(frame))?;
        app.frames += 1;
        if event::poll(Duration::from_millis(100))?
            && let Event::Key(key) = event::read()?
            && !app.on_key(key)
        {
            return Ok(());
        }
    }
}

fn main() -> std::io::Result<()> {
    let settings = Settings {
        name: "terminal-app".to_owned(),
    };
    let mut app = App {
        settings: &settings,
        counter: 0,
        log: Vec::new(),
        frames: 0,
    };
    let mut terminal = ratatui::init();
    let result = run(&mut terminal, &mut app);
    ratatui::restore();
    result
}
