//! Child processes whose output lines are collected with the time each one arrived, and HTTP
//! polling of the programs they serve.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::now_ns;

/// One line a child printed.
#[derive(Debug, Clone)]
pub struct Line {
    /// When the benchmark read it, nanoseconds since the Unix epoch.
    pub at_ns: u64,
    /// Whether it came on stderr.
    pub stderr: bool,
    /// The text, without the line break.
    pub text: String,
}

/// A running child, killed when dropped.
pub struct Process {
    what: String,
    child: Child,
    lines: Arc<Mutex<Vec<Line>>>,
}

impl Process {
    /// Asks the program at `addr` for `path` every `interval` until it answers (within
    /// [`hotswap_tests::START_DEADLINE`]); returns when it answered, ns since the epoch. Panics
    /// with the process's output when it does not.
    pub fn first_answer(&self, addr: &str, path: &str, interval: Duration) -> u64 {
        poll(addr, path, interval, hotswap_tests::START_DEADLINE, |_| {
            Some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.dump()))
        .1
    }

    /// Starts `command` with piped output; `what` names it in messages.
    ///
    /// # Panics
    ///
    /// When the command cannot be started.
    pub fn spawn(what: &str, mut command: Command) -> Process {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().expect("piped"), false, &lines);
        collect(child.stderr.take().expect("piped"), true, &lines);
        Process {
            what: what.to_owned(),
            child,
            lines,
        }
    }

    /// The number of lines so far: an index for [`Process::wait_line`].
    pub fn line_count(&self) -> usize {
        self.lines.lock().expect("not poisoned").len()
    }

    /// Lines from index `from` on.
    pub fn lines_from(&self, from: usize) -> Vec<Line> {
        let lines = self.lines.lock().expect("not poisoned");
        lines[from.min(lines.len())..].to_vec()
    }

    /// Waits for the first line from index `from` on for which `find` returns `Some`.
    ///
    /// # Panics
    ///
    /// After `deadline`, or when the child exits first, showing its output.
    pub fn wait_line<T>(
        &mut self,
        from: usize,
        deadline: Duration,
        find: impl Fn(&Line) -> Option<T>,
    ) -> (usize, T) {
        let end = Instant::now() + deadline;
        loop {
            if let Some(found) = self
                .lines_from(from)
                .iter()
                .enumerate()
                .find_map(|(i, line)| find(line).map(|t| (from + i, t)))
            {
                return found;
            }
            self.check_alive();
            assert!(
                Instant::now() < end,
                "timed out waiting for output of {}\n{}",
                self.what,
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The address the program printed as `listening on http://ADDR`.
    pub fn wait_listening(&mut self, deadline: Duration) -> String {
        self.wait_line(0, deadline, |line| {
            line.text
                .strip_prefix("listening on http://")
                .map(str::to_owned)
        })
        .1
    }

    /// Panics, showing the output, if the child has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            panic!("{} exited ({status})\n{}", self.what, self.dump());
        }
    }

    /// The last lines of output, for a failure message.
    pub fn dump(&self) -> String {
        let lines = self.lines.lock().expect("not poisoned");
        let skip = lines.len().saturating_sub(60);
        lines[skip..]
            .iter()
            .map(|l| format!("[{}] {}\n", if l.stderr { "err" } else { "out" }, l.text))
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A `cargo hotswap run` host dies with the tool (PR_SET_PDEATHSIG); `cargo run` replaced
        // itself with the program (exec), so this is the program.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects a pipe into `lines` on a thread, stamping each line on arrival.
fn collect(pipe: impl Read + Send + 'static, stderr: bool, lines: &Arc<Mutex<Vec<Line>>>) {
    let lines = Arc::clone(lines);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let at_ns = now_ns();
            let text = String::from_utf8_lossy(&buffer).trim_end().to_owned();
            lines.lock().expect("not poisoned").push(Line {
                at_ns,
                stderr,
                text,
            });
        }
    });
}

/// `GET path` on `addr` until it answers 200 with a body for which `accept` returns `Some`,
/// pausing `interval` between attempts; returns the value and the time of the answer, or the
/// last answer after `deadline`.
pub fn poll<T>(
    addr: &str,
    path: &str,
    interval: Duration,
    deadline: Duration,
    mut accept: impl FnMut(&str) -> Option<T>,
) -> Result<(T, u64), String> {
    let end = Instant::now() + deadline;
    loop {
        let answer = hotswap_tests::get(addr, path);
        if let Ok(body) = &answer
            && let Some(found) = accept(body)
        {
            return Ok((found, now_ns()));
        }
        if Instant::now() >= end {
            return Err(format!(
                "`GET {path}` on {addr} never gave the expected answer; the last was {answer:?}"
            ));
        }
        std::thread::sleep(interval);
    }
}

/// The resident set size of process `pid`, in KiB (`VmRSS` in `/proc/<pid>/status`).
///
/// # Panics
///
/// When the file cannot be read or has no `VmRSS` line.
pub fn rss_kib(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read `{path}`: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("`{path}` has no VmRSS line"))
}
