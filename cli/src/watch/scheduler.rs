//! When to build: a pure state machine over file events and build completions, with the clock
//! passed in, so that its rules are tested without a file system.
//!
//! * A batch is ready once no event arrived for the quiet period, or once the first pending
//!   event is older than the maximum wait (constant autosave still builds).
//! * When the last event was a file closed after writing (a write known to be complete), the
//!   batch is ready at once, as a *speculative* build: until the settle period after that event
//!   has passed, an event of another change supersedes the build, which stops (rustc killed,
//!   nothing shown) and starts over with both. A save's other events (a `chmod`, a backup's
//!   removal) follow its close within microseconds, and each of them brings back the quiet
//!   period; a "save all" closes its files milliseconds apart, and the last of them is built
//!   with the others.
//! * Events that arrive during a build, after its settle period, only mark the next batch:
//!   exactly one more build follows the current one, and it reads the files then, so it
//!   contains the last save.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Quiet period: a batch waits until no event arrived for this long. Editors finish a save
/// (temporary file, renames, backup removal) within a few milliseconds; the benchmark showed
/// the quiet period is most of the tool's own share of edit-to-effect for a small crate, so it
/// is no longer than needed to gather one save's events.
pub(crate) const QUIET: Duration = Duration::from_millis(50);
/// Settle period: how long a build started by a file closed after writing stays speculative (an
/// event in it supersedes the build). Most editors end a save so (and the benchmark's edits do),
/// so that such a build starts with no wait at all. A save's own other events follow the close
/// within microseconds, but a "save all" writes its files a few milliseconds apart (4 to 6 ms
/// measured): 3 ms split such saves into two builds, the first of which could fail to compile
/// (a caller saved before its new callee); 10 ms keeps them one build.
pub(crate) const SETTLE: Duration = Duration::from_millis(10);
/// Maximum wait: a batch is ready this long after its first event, however busy the disk.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(1000);

/// The scheduler's state.
#[derive(Debug)]
pub(crate) struct Scheduler {
    quiet: Duration,
    settle: Duration,
    max_wait: Duration,
    pending: BTreeSet<PathBuf>,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Whether the last event was a file closed after writing.
    written: bool,
    building: bool,
    /// While a speculative build runs, when its settle period ends.
    settles: Option<Instant>,
    /// Whether an event came within the running speculative build's settle period.
    superseded: bool,
}

impl Scheduler {
    /// A scheduler with the given quiet period, settle period and maximum wait.
    pub(crate) fn new(quiet: Duration, settle: Duration, max_wait: Duration) -> Self {
        Scheduler {
            quiet,
            settle,
            max_wait,
            pending: BTreeSet::new(),
            first: None,
            last: None,
            written: false,
            building: false,
            settles: None,
            superseded: false,
        }
    }

    /// Records file events seen at `now` (the files the filter counts; none is no event);
    /// `written` when they are files closed after writing.
    pub(crate) fn events(
        &mut self,
        now: Instant,
        paths: impl IntoIterator<Item = PathBuf>,
        written: bool,
    ) {
        // Only the files the filter counts: a swap or temporary file closed after writing says
        // nothing about whether a watched file's save is complete.
        let mut paths = paths.into_iter().peekable();
        if paths.peek().is_none() {
            return;
        }
        let before = self.pending.len();
        self.pending.extend(paths);
        if self.pending.len() > before || self.first.is_some() {
            self.first.get_or_insert(now);
            self.last = Some(now);
            self.written = written;
            if self.building && self.settles.is_some_and(|end| now < end) {
                self.superseded = true;
            }
        }
    }

    /// How long the batch waits after its last event: nothing after a completed write (the
    /// build is speculative), else the quiet period.
    fn wait(&self) -> Duration {
        if self.written {
            Duration::ZERO
        } else {
            self.quiet
        }
    }

    /// The batch to build now, if one is ready at `now`; the scheduler then counts as building
    /// until [`Scheduler::build_finished`].
    pub(crate) fn ready(&mut self, now: Instant) -> Option<Vec<PathBuf>> {
        if self.building || self.pending.is_empty() {
            return None;
        }
        let (first, last) = (self.first?, self.last?);
        let quiet = now.saturating_duration_since(last) >= self.wait();
        let waited = now.saturating_duration_since(first) >= self.max_wait;
        if !(quiet || waited) {
            return None;
        }
        self.settles = self.written.then(|| last + self.settle);
        self.superseded = false;
        self.first = None;
        self.last = None;
        self.building = true;
        Some(std::mem::take(&mut self.pending).into_iter().collect())
    }

    /// Whether the running build is speculative and an event came within its settle period:
    /// it must stop, and its batch be given back with [`Scheduler::superseded_build`].
    pub(crate) fn superseded(&self) -> bool {
        self.building && self.superseded
    }

    /// When the running build stops being speculative, if it is: events until then supersede
    /// it.
    pub(crate) fn settles(&self) -> Option<Instant> {
        self.settles.filter(|_| self.building)
    }

    /// The build of the last ready batch ended (successfully or not).
    pub(crate) fn build_finished(&mut self) {
        self.building = false;
        self.settles = None;
        self.superseded = false;
    }

    /// The running build was superseded and stopped: its `batch` joins the events that came
    /// since, to be built with them.
    pub(crate) fn superseded_build(&mut self, batch: Vec<PathBuf>) {
        self.build_finished();
        self.pending.extend(batch);
        if let Some(last) = self.last {
            self.first.get_or_insert(last);
        }
    }

    /// When [`Scheduler::ready`] may next return a batch, if anything is pending: the loop
    /// sleeps until then.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.building || self.pending.is_empty() {
            return None;
        }
        let quiet_end = self.last? + self.wait();
        let wait_end = self.first? + self.max_wait;
        Some(quiet_end.min(wait_end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_burst_of_events_is_one_batch_after_the_quiet_period() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(ms(100), ms(10), ms(1000));
        s.events(t0, paths(&["a.rs"]), false);
        s.events(t0 + ms(30), paths(&["a.rs", "b.rs"]), false);
        s.events(t0 + ms(60), paths(&["a.rs"]), false);
        assert_eq!(s.ready(t0 + ms(100)), None, "still within the quiet period");
        assert_eq!(s.deadline(), Some(t0 + ms(160)));
        assert_eq!(s.ready(t0 + ms(160)), Some(paths(&["a.rs", "b.rs"])));
        assert_eq!(s.ready(t0 + ms(500)), None, "one batch per burst");
    }

    #[test]
    fn constant_events_still_build_after_the_maximum_wait() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(ms(100), ms(10), ms(1000));
        let mut now = t0;
        let mut batch = None;
        while batch.is_none() {
            s.events(now, paths(&["a.rs"]), false);
            now += ms(50);
            batch = s.ready(now);
        }
        assert_eq!(now, t0 + ms(1000));
    }

    #[test]
    fn saves_during_a_build_give_exactly_one_more_build_after_it() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(ms(100), ms(10), ms(1000));
        s.events(t0, paths(&["a.rs"]), false);
        assert!(s.ready(t0 + ms(100)).is_some());
        // Three saves while the build runs.
        for i in 1..=3 {
            s.events(t0 + ms(100 + i * 200), paths(&["a.rs"]), false);
            assert_eq!(s.ready(t0 + ms(100 + i * 200 + 150)), None, "building");
        }
        assert_eq!(s.deadline(), None);
        s.build_finished();
        let next = t0 + ms(2000);
        assert_eq!(s.ready(next), Some(paths(&["a.rs"])));
        s.build_finished();
        assert_eq!(s.ready(next + ms(1000)), None, "exactly one more");
    }

    #[test]
    fn a_completed_write_builds_at_once_unless_more_events_follow() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(ms(100), ms(10), ms(1000));
        s.events(t0, paths(&["a.rs"]), false);
        s.events(t0 + ms(1), paths(&["a.rs"]), true);
        assert_eq!(s.deadline(), Some(t0 + ms(1)));
        assert_eq!(s.ready(t0 + ms(1)), Some(paths(&["a.rs"])));
        assert_eq!(s.settles(), Some(t0 + ms(11)));
        s.build_finished();
        // A save that closes the file, then changes its mode and removes a backup: the events
        // after the close supersede the build and bring back the quiet period, so the save
        // stays one batch.
        s.events(t0 + ms(500), paths(&["a.rs"]), true);
        let batch = s.ready(t0 + ms(500)).expect("speculative build");
        s.events(t0 + ms(501), paths(&["a.rs"]), false);
        assert!(s.superseded());
        s.superseded_build(batch);
        assert_eq!(s.ready(t0 + ms(511)), None);
        assert_eq!(s.ready(t0 + ms(601)), Some(paths(&["a.rs"])));
        assert_eq!(
            s.settles(),
            None,
            "after the quiet period a build is not speculative"
        );
    }

    /// A "save all" closes its files a few milliseconds apart: each one within the settle
    /// period supersedes the build of those before it, so that a caller saved before its new
    /// callee is never built alone.
    #[test]
    fn a_save_all_whose_files_close_milliseconds_apart_is_one_build() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(QUIET, SETTLE, MAX_WAIT);
        s.events(t0, paths(&["app.rs"]), true);
        let first = s.ready(t0).expect("speculative build");
        s.events(t0 + ms(6), paths(&["leaf.rs"]), true);
        assert!(s.superseded());
        s.superseded_build(first);
        assert_eq!(s.ready(t0 + ms(6)), Some(paths(&["app.rs", "leaf.rs"])));
        // A save after the settle period is the next build's.
        s.events(t0 + ms(6) + SETTLE, paths(&["app.rs"]), true);
        assert!(!s.superseded());
        assert_eq!(s.ready(t0 + ms(100)), None, "building");
        s.build_finished();
        assert_eq!(s.ready(t0 + ms(100)), Some(paths(&["app.rs"])));
    }

    /// A rename save (`written` false) followed by a swap file closed after writing (filtered
    /// out: no paths) still waits for the quiet period: the build must not start before the
    /// rest of the save arrives.
    #[test]
    fn a_closed_file_the_filter_drops_does_not_start_a_build() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(ms(50), ms(10), ms(1000));
        s.events(t0, paths(&["main.rs"]), false);
        s.events(t0 + ms(1), Vec::new(), true);
        assert_eq!(s.ready(t0 + ms(2)), None);
        assert_eq!(s.deadline(), Some(t0 + ms(50)));
        assert_eq!(s.ready(t0 + ms(50)), Some(paths(&["main.rs"])));
    }

    #[test]
    fn nothing_pending_means_no_deadline() {
        let mut s = Scheduler::new(ms(100), ms(10), ms(1000));
        assert_eq!(s.deadline(), None);
        assert_eq!(s.ready(Instant::now()), None);
        s.events(Instant::now(), Vec::new(), false);
        assert_eq!(s.deadline(), None);
    }
}
