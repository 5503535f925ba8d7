//! Edit -> effect under `cargo hotswap run`, and on the same edits the bare floor (the patch's
//! rustc command replayed alone) and the restart loop (`cargo build`, start, first answer); host
//! memory over many patches.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE};

use crate::fixture::{self, Dirs, Fixture};
use crate::process::{self, Line, Process};
use crate::table::{self, Table, Unit};
use crate::wrap::{self, Invocation};
use crate::{Bench, now_ns};

/// What the tool's `Patched` line says.
pub struct Patched {
    /// When the benchmark read the line.
    at_ns: u64,
    /// The patch build as the tool timed it (rustc and link), ms.
    build_ms: Option<f64>,
    /// The compatibility gate, ms.
    pub check_ms: Option<f64>,
    /// The host's load and slot swap (and entry redirection), ms.
    pub load_ms: Option<f64>,
    /// How long the program's threads were stopped for entry redirection (`--redirect`), ms.
    pub pause_ms: Option<f64>,
}

/// Samples of one fixture's edits, in milliseconds unless named otherwise.
#[derive(Default)]
pub struct Edits {
    effect: Vec<f64>,
    first_effect: Vec<f64>,
    /// From the write to the first rustc's start: the watcher and the tool's own steps.
    watch: Vec<f64>,
    rustc: Vec<f64>,
    /// Local library crates compiled again before the bin, per edit (a workspace's).
    libraries: Vec<f64>,
    link: Vec<f64>,
    after_link: Vec<f64>,
    rustc_tail: Vec<f64>,
    check: Vec<f64>,
    load: Vec<f64>,
    tool_build: Vec<f64>,
    patch_kib: Vec<f64>,
    floor: Vec<f64>,
    /// The floor without the tool's own extra flags.
    honest_floor: Vec<f64>,
    first_floor: Vec<f64>,
    floor_link: Vec<f64>,
    restart: Vec<f64>,
    restart_build: Vec<f64>,
    restart_rustc: Vec<f64>,
    restart_link: Vec<f64>,
    restart_start: Vec<f64>,
    /// Per measured edit: edit -> effect within 1.10 x floor + 15 ms.
    floor_goal: Vec<bool>,
    /// Per measured edit: edit -> effect within 0.5 x restart loop.
    restart_goal: Vec<bool>,
    rss_before_kib: f64,
    rss_after_kib: f64,
    patches: usize,
    /// Patch builds that failed (a half-written file) before the one that succeeded.
    failed_builds: usize,
}

/// Runs the edits of `fixture` on `project`: one first edit (a session's first patch, with cold
/// incremental caches), `bench.runs` measured ones, and for time-service more patches up to
/// `bench.patches` for the memory soak.
pub fn run(bench: &Bench, fixture: &Fixture, project: &Project, dirs: &Dirs) -> Edits {
    let total = edit_count(bench, fixture);
    let log = dirs.logs.join("session.jsonl");
    let floor_log = dirs.logs.join("floor.jsonl");
    let plain_log = dirs.logs.join("plain.jsonl");
    let (mut session, addr) = start_session(bench, fixture, project, &dirs.hotswap, &log, &[]);
    let pid: u32 = hotswap_tests::get(&addr, "/pid")
        .expect("the program answers `/pid`")
        .parse()
        .expect("`/pid` answers a number");
    let mut offsets = Offsets::default();
    wrap::read_since(&log, &mut offsets.session);
    let mut edits = Edits {
        rss_before_kib: process::rss_kib(pid) as f64,
        ..Edits::default()
    };

    let mut current = fixture.line.to_owned();
    for n in 0..total {
        let from = session.line_count();
        let Applied {
            written,
            stamp,
            records,
            patched,
        } = apply_edit(
            bench,
            (fixture, project),
            (&mut session, &addr),
            (&log, &mut offsets.session),
            &mut current,
            n,
        );
        // The `Patching` line comes once the build is speculative no more (up to 10 ms after
        // rustc started): the watcher's share ends where the first rustc starts.
        session.wait_line(from, EDIT_DEADLINE, |l| status(l, "Patching").then_some(()));
        let rustc = only(&records, is_patch_rustc, "successful patch rustc run");
        // The local library crates the patch compiled again first (a workspace's), in order.
        let libraries: Vec<&Invocation> = records
            .iter()
            .filter(|r| r.is_rustc_of("rlib") && r.success)
            .collect();
        let first_rustc_start = libraries
            .iter()
            .map(|r| r.start_ns)
            .chain([rustc.start_ns])
            .min()
            .unwrap_or(rustc.start_ns);
        let libraries_ms: f64 = libraries.iter().map(|r| r.ms()).sum();
        edits.failed_builds += records
            .iter()
            .filter(|r| r.is_rustc_of("cdylib") && !r.success)
            .count();
        let link = only(&records, is_patch_link, "patch link");
        edits.patches += 1;
        if n > bench.runs {
            continue; // the memory soak: checked, not timed
        }

        let effect = ms(stamp - written);
        let floor_of = |kind: Floor| {
            let dir = (dirs.floor.as_path(), kind);
            libraries
                .iter()
                .map(|library| replay_floor(bench, library, dir, &floor_log, None))
                .sum::<f64>()
                + replay_floor(bench, rustc, dir, &floor_log, Some(n))
        };
        let floor = floor_of(Floor::Bare);
        let honest_floor = floor_of(Floor::Honest);
        if n == 0 {
            edits.first_effect.push(effect);
            edits.first_floor.push(floor);
            // The restart loop's first build also warms its caches for this source.
            restart_loop(
                bench,
                fixture,
                project,
                dirs,
                &plain_log,
                &mut offsets.plain,
                n,
            );
            continue;
        }
        edits.effect.push(effect);
        edits
            .watch
            .push(ms(first_rustc_start.saturating_sub(written)));
        edits.rustc.push(libraries_ms + up_to_link(rustc, link));
        edits.rustc_tail.push(after_link(rustc, link));
        edits.libraries.push(libraries.len() as f64);
        edits.link.push(link.ms());
        let load = patched.load_ms;
        let check = patched.check_ms;
        edits.after_link.push(
            ms(patched.at_ns.saturating_sub(link.end_ns))
                - load.unwrap_or(0.0)
                - check.unwrap_or(0.0),
        );
        edits.check.extend(check);
        edits.load.extend(load);
        edits.tool_build.extend(patched.build_ms);
        edits.patch_kib.extend(patch_kib(link));
        edits.floor.push(floor);
        edits.honest_floor.push(honest_floor);
        edits.floor_link.extend(
            wrap::read_since(&floor_log, &mut offsets.floor)
                .iter()
                .find_map(|r| r.link_output().is_some().then(|| r.ms())),
        );
        let restart = restart_loop(
            bench,
            fixture,
            project,
            dirs,
            &plain_log,
            &mut offsets.plain,
            n,
        );
        edits.floor_goal.push(effect <= floor_goal(fixture, floor));
        edits.restart_goal.push(effect <= 0.5 * restart.total);
        edits.restart.push(restart.total);
        edits.restart_build.push(restart.build);
        edits.restart_start.push(restart.start);
        edits.restart_rustc.extend(restart.rustc);
        edits.restart_link.extend(restart.link);
    }
    edits.rss_after_kib = process::rss_kib(pid) as f64;
    let applied = session
        .lines_from(0)
        .iter()
        .filter(|l| status(l, "Patched"))
        .count();
    assert_eq!(applied, total, "every edit was patched exactly once");
    edits
}

/// How many edits a session of `fixture` makes: one first edit and `bench.runs` measured ones,
/// and for the time service more, up to `bench.patches`.
pub fn edit_count(bench: &Bench, fixture: &Fixture) -> usize {
    if fixture.name == "time-service" {
        (bench.runs + 1).max(bench.patches)
    } else {
        bench.runs + 1
    }
}

/// Starts `cargo hotswap run` with `args` on `project` (target directory `target`, wrappers'
/// log `log`) and waits until the session watches and the program answers: before that it
/// builds a first patch from the unchanged sources (its baseline), which is no edit's. Returns
/// the session and the program's address.
pub fn start_session(
    bench: &Bench,
    fixture: &Fixture,
    project: &Project,
    target: &Path,
    log: &Path,
    args: &[&str],
) -> (Process, String) {
    let what = ["cargo hotswap run"]
        .into_iter()
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!(
        "bench: {}: {} edits under `{what}`",
        fixture.name,
        edit_count(bench, fixture)
    );
    let mut session = Process::spawn(&what, bench.hotswap(project.path(), target, log, args));
    let addr = session.wait_listening(START_DEADLINE);
    session.wait_line(0, START_DEADLINE, |l| status(l, "Watching").then_some(()));
    session.first_answer(&addr, fixture.path, bench.poll);
    (session, addr)
}

/// Read positions in the wrappers' logs.
#[derive(Default)]
struct Offsets {
    session: u64,
    floor: u64,
    plain: u64,
}

/// Milliseconds from nanoseconds.
fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

/// Whether `line` is the tool's status line with `verb`.
pub fn status(line: &Line, verb: &str) -> bool {
    line.stderr
        && line
            .text
            .trim_start()
            .strip_prefix(verb)
            .is_some_and(|rest| rest.starts_with(' '))
}

/// Panics, with the session's output, if the tool reported that the edit will not patch. A
/// failed build is not such a report: the tool may have read the file half-written, and builds
/// again when the write completes; those builds are counted.
fn check_not_refused(session: &Process, from: usize) {
    for line in session.lines_from(from) {
        for verb in ["Refused", "Restarting"] {
            if status(&line, verb) {
                panic!(
                    "the edit did not patch the running program: {}\n{}",
                    line.text,
                    session.dump()
                );
            }
        }
    }
}

/// The time of the patch's `rustc` run up to its `link` (the linker wrapper's own work
/// included), in ms.
pub fn up_to_link(rustc: &Invocation, link: &Invocation) -> f64 {
    ms(link.start_ns.saturating_sub(rustc.start_ns))
}

/// The time the patch's `rustc` run goes on after its `link` (removing its temporary files),
/// in ms: the tool does not wait for it.
pub fn after_link(rustc: &Invocation, link: &Invocation) -> f64 {
    ms(rustc.end_ns.saturating_sub(link.end_ns))
}

/// Whether `record` is the link of a patch (a shared object).
pub fn is_patch_link(record: &Invocation) -> bool {
    record
        .link_output()
        .is_some_and(|o| o.extension().is_some_and(|e| e == "so"))
}

/// Whether `record` is a patch's successful rustc run.
pub fn is_patch_rustc(record: &Invocation) -> bool {
    record.is_rustc_of("cdylib") && record.success
}

/// Reads the wrappers' records from `log` into `records` until one of them is `wanted`: the
/// patch's link, or its rustc run (which ends up to about 10 ms after the link, the tool not
/// waiting for it). Records of runs that started before `since` (ns since the epoch, just
/// before the edit's write) are left out: the end of a build from before the edit (the session's
/// baseline builds, whose rustc may end after the session is ready).
fn wait_record(
    session: &mut Process,
    (log, offset): (&Path, &mut u64),
    (from, since): (usize, u64),
    records: &mut Vec<Invocation>,
    wanted: fn(&Invocation) -> bool,
) {
    let end = std::time::Instant::now() + EDIT_DEADLINE;
    loop {
        records.extend(
            wrap::read_since(log, offset)
                .into_iter()
                .filter(|r| r.start_ns >= since),
        );
        if records.iter().any(wanted) {
            return;
        }
        check_not_refused(session, from);
        session.check_alive();
        assert!(
            std::time::Instant::now() < end,
            "no patch was compiled\n{}",
            session.dump()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One edit as [`apply_edit`] saw it take effect.
pub struct Applied {
    /// When the edit was written, ns since the epoch.
    pub written: u64,
    /// When the new code ran, as it reported, ns since the epoch.
    pub stamp: u64,
    /// The wrappers' records of the patch build (and of any build before it since the last
    /// edit's).
    pub records: Vec<Invocation>,
    /// The tool's `Patched` line for it.
    pub patched: Patched,
}

/// Writes edit `n` of `fixture` in `project` (replacing `current`, which becomes the edit's
/// line), waits until the patch's link has ended (read from the wrappers' `log` from
/// `offset`), then asks the program every `bench.poll` until the new code answers, and waits
/// for the tool's `Patched` line of generation `n + 1` and for the patch's rustc to end.
/// Requests start only once the new code can exist, so that they do not compete with the
/// compile for the CPU.
pub fn apply_edit(
    bench: &Bench,
    (fixture, project): (&Fixture, &Project),
    (session, addr): (&mut Process, &str),
    (log, offset): (&Path, &mut u64),
    current: &mut String,
    n: usize,
) -> Applied {
    let next = fixture::edited_line(fixture.line, n);
    let from = session.line_count();
    // Every run this edit starts begins after this (taken after the write, the time could
    // follow the start of a build the write started, were this thread descheduled between the
    // two).
    let before = now_ns();
    project.edit(fixture.file, current, &next);
    let written = now_ns();
    *current = next;
    let mut records = Vec::new();
    wait_record(
        session,
        (log, offset),
        (from, before),
        &mut records,
        is_patch_link,
    );
    let (stamp, _) = process::poll(addr, fixture.path, bench.poll, EDIT_DEADLINE, |body| {
        fixture::stamp(body, n)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", session.dump()));
    assert!(
        stamp >= written,
        "the new code reported a time before the edit was written"
    );
    let patched = wait_patched(session, from, n as u64 + 1);
    // The patch's rustc may end after the program runs the new code: its record is this
    // edit's, and the next edit's wait starts after it.
    wait_record(
        session,
        (log, offset),
        (from, before),
        &mut records,
        is_patch_rustc,
    );
    Applied {
        written,
        stamp,
        records,
        patched,
    }
}

/// Waits for the `Patched` line of `generation` and parses it.
pub fn wait_patched(session: &mut Process, from: usize, generation: u64) -> Patched {
    let wanted = format!("generation {generation}");
    let (_, patched) = session.wait_line(from, EDIT_DEADLINE, |line| {
        (status(line, "Patched") && line.text.contains(&wanted)).then(|| Patched {
            at_ns: line.at_ns,
            build_ms: number_after(&line.text, "(build "),
            check_ms: number_after(&line.text, ", check "),
            load_ms: number_after(&line.text, ", load "),
            pause_ms: number_after(&line.text, ", pause "),
        })
    });
    check_not_refused(session, from);
    patched
}

/// The number that follows `prefix` in `text`.
fn number_after(text: &str, prefix: &str) -> Option<f64> {
    let (_, rest) = text.split_once(prefix)?;
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits.parse().ok()
}

/// The one record that `pick` selects; panics naming `what` if there is not exactly one.
pub fn only<'a>(
    records: &'a [Invocation],
    pick: impl Fn(&Invocation) -> bool,
    what: &str,
) -> &'a Invocation {
    let found: Vec<&Invocation> = records.iter().filter(|r| pick(r)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {what} per edit, found: {:?}",
        found
            .iter()
            .map(|r| (r.option("--crate-type"), r.start_ns, r.end_ns))
            .collect::<Vec<_>>()
    );
    found[0]
}

/// Size of the patch the link wrote, in KiB: the tool moves it from the link's output
/// (`<work>/patch/lib<crate>.so`) to the session's directory (`<work>/sessions/<pid>/`), where
/// it is the newest patch file.
fn patch_kib(link: &Invocation) -> Option<f64> {
    let output = link.link_output()?;
    let output = if output.is_absolute() {
        output.to_path_buf()
    } else {
        link.cwd.join(output)
    };
    let sessions = output.parent()?.parent()?.join("sessions");
    let newest = std::fs::read_dir(sessions)
        .ok()?
        .flatten()
        .flat_map(|session| {
            std::fs::read_dir(session.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|file| file.file_name().to_string_lossy().contains("-patch-"))
        .filter_map(|file| {
            Some((
                file.metadata().ok()?.modified().ok()?,
                file.metadata().ok()?,
            ))
        })
        .max_by_key(|(modified, _)| *modified)?;
    Some(newest.1.len() as f64 / 1024.0)
}

/// The codegen options the tool adds to a patch's rustc command beyond cargo's: every function
/// compiled (when the source diff cannot tell that the patch holds every changed one), and the
/// debug info kept in `.dwo` files beside the objects (the gate reads it there). The honest floor
/// leaves them out.
const TOOL_CODEGEN: [&str; 2] = ["link-dead-code", "split-debuginfo=unpacked"];

/// Which floor a replay measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Floor {
    /// The tool's own rustc commands, as they ran.
    Bare,
    /// The same without the tool's extra codegen options ([`TOOL_CODEGEN`]): what no patching
    /// tool can avoid.
    Honest,
    /// The crate compiled as cargo compiles it for the restart loop: a bin (the code `main`
    /// reaches), without [`TOOL_CODEGEN`], linked by the real linker as an executable. The
    /// reference of entry redirection, whose patches hold every function of the crate: the
    /// honest floor of a cdylib without marks compiles next to nothing.
    Cargo,
}

/// The floor of one patch under entry redirection, in ms: the crate of `patch` (its rustc
/// record) compiled as cargo compiles it ([`Floor::Cargo`], into `floor`), without that
/// compile's link of the whole executable, plus the patch's own link, `link_ms` (a thin link of
/// the objects is part of the floor). Reads the wrappers' `log` from `offset` for the replay's
/// link.
pub fn cargo_floor(
    bench: &Bench,
    patch: &Invocation,
    (floor, log, offset): (&Path, &Path, &mut u64),
    link_ms: f64,
) -> f64 {
    wrap::read_since(log, offset);
    let wall = replay_floor(bench, patch, (floor, Floor::Cargo), log, None);
    let executable_link: f64 = wrap::read_since(log, offset)
        .iter()
        .filter(|r| r.link_output().is_some())
        .map(Invocation::ms)
        .sum();
    wall - executable_link + link_ms
}

/// Replays one rustc command of a patch alone (same arguments, environment and directory, and
/// for the honest floor without [`TOOL_CODEGEN`]), into the floor's own output and
/// incremental directories; with `check`, checks that the result (the patch itself) holds edit
/// `check`'s text; returns the wall time in ms.
fn replay_floor(
    bench: &Bench,
    patch: &Invocation,
    (floor, kind): (&Path, Floor),
    log: &Path,
    check: Option<usize>,
) -> f64 {
    let floor = match kind {
        Floor::Bare => floor.to_path_buf(),
        Floor::Honest => floor.join("honest"),
        Floor::Cargo => floor.join("cargo"),
    };
    let out_dir = floor.join("out");
    let incremental = floor.join("incremental");
    std::fs::create_dir_all(&out_dir).expect("cannot create the floor's directory");
    let mut args = Vec::with_capacity(patch.args.len());
    let mut iter = patch.args.iter();
    while let Some(arg) = iter.next() {
        let tools = arg == "-C"
            && iter
                .as_slice()
                .first()
                .is_some_and(|kv| TOOL_CODEGEN.contains(&kv.as_str()));
        let tools_joined = arg
            .strip_prefix("-C")
            .is_some_and(|kv| TOOL_CODEGEN.contains(&kv));
        let value = iter.as_slice().first();
        if kind != Floor::Bare && (tools || tools_joined) {
            if tools {
                iter.next();
            }
        } else if kind == Floor::Cargo && arg == "--crate-type" {
            iter.next();
            args.extend(["--crate-type".to_owned(), "bin".to_owned()]);
        } else if kind == Floor::Cargo
            && arg == "-C"
            && value.is_some_and(|kv| kv.starts_with("linker="))
        {
            iter.next();
            args.push("-C".to_owned());
            args.push(format!("linker={}", bench.linker_wrapper.display()));
        } else if arg == "--out-dir" {
            iter.next();
            args.push(arg.clone());
            args.push(out_dir.display().to_string());
        } else if arg.starts_with("--out-dir=") {
            args.push(format!("--out-dir={}", out_dir.display()));
        } else if arg == "-C"
            && iter
                .as_slice()
                .first()
                .is_some_and(|kv| kv.starts_with("incremental="))
        {
            iter.next();
            args.push("-C".to_owned());
            args.push(format!("incremental={}", incremental.display()));
        } else if arg.starts_with("-Cincremental=") {
            args.push(format!("-Cincremental={}", incremental.display()));
        } else {
            args.push(arg.clone());
        }
    }
    // Through `bench-rustc`, as the tool's own run was, so that both pay the same.
    let mut command = Command::new(&bench.rustc_wrapper);
    command
        .args(&args)
        .current_dir(&patch.cwd)
        .env_clear()
        .envs(patch.env.iter().map(|(k, v)| (k, v)))
        .env(wrap::LOG_ENV, log);
    // The tool's linker wrapper keeps the crate's objects for its code index: the floor's go to
    // a directory of its own (beside which no baseline is recorded, so they are all linked).
    if patch.env.iter().any(|(k, _)| k == "HOTSWAP_OBJECTS_DIR") {
        let objects = floor.join("objects");
        std::fs::create_dir_all(&objects).expect("cannot create the floor's objects directory");
        command.env("HOTSWAP_OBJECTS_DIR", objects);
    }
    let start = now_ns();
    let output = command.output().expect("cannot run rustc for the floor");
    let elapsed = ms(now_ns() - start);
    assert!(
        output.status.success(),
        "the floor's replay failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let Some(n) = check else {
        return elapsed;
    };
    let built = newest_with_extension(&out_dir, "so").expect("the floor's replay wrote a .so");
    let bytes = std::fs::read(&built).expect("cannot read the floor's output");
    let marker = fixture::marker(n);
    assert!(
        bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the floor's replay did not compile edit {n}"
    );
    elapsed
}

/// The most recently modified file with `extension` in `dir`.
fn newest_with_extension(dir: &Path, extension: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == extension))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// One turn of the restart loop, in ms.
struct Restart {
    /// `cargo build` to first answer.
    total: f64,
    /// `cargo build`.
    build: f64,
    /// Process start to first answer.
    start: f64,
    /// rustc of the bin crate, from the wrapper's record.
    rustc: Option<f64>,
    /// Its link.
    link: Option<f64>,
}

/// `cargo build` of the bin, then its start until the first answer, which must come from edit
/// `n`'s code.
fn restart_loop(
    bench: &Bench,
    fixture: &Fixture,
    project: &Project,
    dirs: &Dirs,
    log: &Path,
    offset: &mut u64,
    n: usize,
) -> Restart {
    let start = now_ns();
    let output = bench
        .cargo("build", project.path(), &dirs.plain, log)
        .args(["--quiet", "--bin", fixture.bin])
        .output()
        .expect("cannot run cargo build");
    assert!(
        output.status.success(),
        "`cargo build` failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = now_ns();
    let mut program = Command::new(dirs.plain.join("debug").join(fixture.bin));
    program.env("PORT", "0");
    let mut program = Process::spawn(fixture.bin, program);
    let addr = program.wait_listening(START_DEADLINE);
    let (body, answered) = process::poll(&addr, fixture.path, bench.poll, START_DEADLINE, |body| {
        Some(body.to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", program.dump()));
    drop(program);
    assert!(
        fixture::stamp(&body, n).is_some(),
        "the rebuilt program does not run edit {n}: it answered {body:?}"
    );
    let records = wrap::read_since(log, offset);
    let rustc = records
        .iter()
        .find(|r| r.compiles(fixture.crate_name) && r.is_rustc_of("bin"));
    let link = records.iter().find(|r| {
        r.link_output()
            .and_then(Path::file_name)
            .is_some_and(|f| f.to_string_lossy().starts_with(fixture.crate_name))
    });
    Restart {
        total: ms(answered - start),
        build: ms(built - start),
        start: ms(answered - built),
        rustc: rustc.map(|r| r.ms() - link.map_or(0.0, Invocation::ms)),
        link: link.map(Invocation::ms),
    }
}

impl Edits {
    /// Adds this fixture's rows to the table.
    pub fn report(&self, table: &mut Table, fixture: &Fixture) {
        table.samples("edit -> effect (cargo hotswap run)", Unit::Ms, &self.effect);
        table.samples(
            "  watch and tool before rustc (write -> rustc starts)",
            Unit::Ms,
            &self.watch,
        );
        table.samples(
            "  rustc (library crates, and patch up to its link)",
            Unit::Ms,
            &self.rustc,
        );
        if self.libraries.iter().any(|n| *n > 0.0) {
            table.samples(
                "    library crates compiled again",
                Unit::Count,
                &self.libraries,
            );
        }
        table.samples("  link (patch, real linker)", Unit::Ms, &self.link);
        table.samples("  check (compatibility gate)", Unit::Ms, &self.check);
        table.samples(
            "  tool after the link (object index, source diff, IPC)",
            Unit::Ms,
            &self.after_link,
        );
        table.samples("  load (host: dlopen + slot swap)", Unit::Ms, &self.load);
        table.samples(
            "  rustc after the link (not waited for)",
            Unit::Ms,
            &self.rustc_tail,
        );
        table.samples("  build as the tool reports it", Unit::Ms, &self.tool_build);
        table.samples("  patch size", Unit::KiB, &self.patch_kib);
        table.samples(
            "bare floor (the patch's rustc commands alone)",
            Unit::Ms,
            &self.floor,
        );
        table.samples("  its link", Unit::Ms, &self.floor_link);
        table.samples(
            "honest floor (without the tool's extra -C options)",
            Unit::Ms,
            &self.honest_floor,
        );
        table.samples(
            "restart loop (cargo build + start + answer)",
            Unit::Ms,
            &self.restart,
        );
        table.samples("  cargo build", Unit::Ms, &self.restart_build);
        table.samples(
            "    rustc (bin crate, without link)",
            Unit::Ms,
            &self.restart_rustc,
        );
        table.samples("    link (whole executable)", Unit::Ms, &self.restart_link);
        table.samples("  start -> first answer", Unit::Ms, &self.restart_start);
        table.samples(
            "first edit of a session: edit -> effect",
            Unit::Ms,
            &self.first_effect,
        );
        table.samples(
            "first edit of a session: bare floor",
            Unit::Ms,
            &self.first_floor,
        );
        if let (Some(effect), Some(floor), Some(restart)) = (
            table::median(&self.effect),
            table::median(&self.floor),
            table::median(&self.restart),
        ) {
            let met = |goals: &[bool]| goals.iter().filter(|g| **g).count();
            let runs = self.effect.len();
            table.text(
                "edit -> effect / bare floor (medians)",
                format!(
                    "{}; goal <= {} = {}: {} ({} of {runs} edits)",
                    table::format(Unit::Ratio, effect / floor),
                    floor_goal_text(fixture),
                    table::format(Unit::Ms, floor_goal(fixture, floor)),
                    verdict(effect <= floor_goal(fixture, floor)),
                    met(&self.floor_goal)
                ),
            );
            if let Some(honest) = table::median(&self.honest_floor) {
                table.text(
                    "edit -> effect / honest floor (medians)",
                    table::format(Unit::Ratio, effect / honest),
                );
            }
            let ratio = table::format(Unit::Ratio, effect / restart);
            table.text(
                "edit -> effect / restart loop (medians)",
                if fixture.name == "medium" {
                    format!(
                        "{ratio}; goal <= 0.5x: {} ({} of {runs} edits)",
                        verdict(effect <= 0.5 * restart),
                        met(&self.restart_goal)
                    )
                } else {
                    format!("{ratio} (the 0.5x goal is set for the medium fixture)")
                },
            );
        }
        if let Some(link) = table::median(&self.link) {
            table.text(
                "patch link (median)",
                format!(
                    "{}; goal <= 30 ms: {}",
                    table::format(Unit::Ms, link),
                    verdict(link <= 30.0)
                ),
            );
        }
        if let Some(size) = table::median(&self.patch_kib).filter(|_| fixture.name == "medium") {
            table.text(
                "one-function patch size (median)",
                format!(
                    "{}; goal < 4 MiB: {}",
                    table::format(Unit::KiB, size),
                    verdict(size < 4096.0)
                ),
            );
        }
        if self.failed_builds > 0 {
            table.text(
                "failed patch builds (file read half-written)",
                format!(
                    "{} in {} edits; their time is in edit -> effect",
                    self.failed_builds, self.patches
                ),
            );
        }
        if self.patches > 0 {
            let growth = self.rss_after_kib - self.rss_before_kib;
            table.text(
                format!("host RSS over {} patches", self.patches),
                format!(
                    "{} -> {}: +{}, {} per patch",
                    table::format(Unit::KiB, self.rss_before_kib),
                    table::format(Unit::KiB, self.rss_after_kib),
                    table::format(Unit::KiB, growth),
                    table::format(Unit::KiB, growth / self.patches as f64)
                ),
            );
        }
    }
}

/// The edit -> effect goal against the bare floor, in ms: the floor + 15 ms for the time
/// service (whose compile is short, so that the tool's share is mostly fixed costs), 1.05x the
/// floor + 10 ms for every other fixture.
pub fn floor_goal(fixture: &Fixture, floor: f64) -> f64 {
    if fixture.name == "time-service" {
        floor + 15.0
    } else {
        1.05 * floor + 10.0
    }
}

/// [`floor_goal`] as the table states it.
pub fn floor_goal_text(fixture: &Fixture) -> &'static str {
    if fixture.name == "time-service" {
        "floor + 15 ms"
    } else {
        "1.05x floor + 10 ms"
    }
}

/// "met" or "missed".
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}
