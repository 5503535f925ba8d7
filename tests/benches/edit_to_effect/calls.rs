//! The cost of a hot call, measured inside a running program (`tests/benches/fixtures/calls`,
//! release profile): the same function body called directly, as a plain function under
//! `cargo run`, and through its slot under `cargo hotswap run` before and after a patch.

use std::path::{Path, PathBuf};

use hotswap_tests::{EDIT_DEADLINE, START_DEADLINE};

use crate::Bench;
use crate::process::{Line, Process};
use crate::table::{self, Table, Unit};

/// Rounds printed before measuring (the CPU settles, pages fault in).
const WARM_UP_ROUNDS: usize = 3;
/// Rounds measured per state.
const ROUNDS: usize = 15;

/// Picks one column of a round.
type Pick = fn(&Round) -> f64;

/// One round: nanoseconds per call.
#[derive(Debug, Clone, Copy)]
struct Round {
    direct: f64,
    hot: f64,
    /// An `async fn` created and polled to its end.
    direct_async: f64,
    /// The same as a hot `async fn` (its future boxed).
    hot_async: f64,
}

/// Measures the call costs and adds them to the table.
pub fn run(bench: &Bench, table: &mut Table) {
    eprintln!("bench: calls: hot call against direct call (release builds)");
    let project = copy_fixture();
    crate::fixture::fetch(project.path());
    let base = bench.root.join("calls");
    let logs = base.join("logs");
    std::fs::create_dir_all(&logs).expect("cannot create the calls log directory");
    let log = logs.join("calls.jsonl");
    let main_rs = project.path().join("src/main.rs");

    let mut plain = bench.cargo("run", project.path(), &base.join("plain"), &log);
    plain.args(["--quiet", "--release"]);
    let mut plain = Process::spawn("cargo run --release (calls)", plain);
    let plain = rounds(&mut plain, 0, "calls-one");

    let mut session = Process::spawn(
        "cargo hotswap run --release (calls)",
        bench.hotswap(project.path(), &base.join("hotswap"), &log, &["--release"]),
    );
    let before = rounds(&mut session, 0, "calls-one");
    let text = std::fs::read_to_string(&main_rs).expect("cannot read the calls fixture");
    assert_eq!(text.matches("\"calls-one\"").count(), 1);
    std::fs::write(&main_rs, text.replace("\"calls-one\"", "\"calls-two\""))
        .expect("cannot edit the calls fixture");
    // The patch replaces every hot function of the crate; `label` proves it is applied.
    let after = rounds(&mut session, 1, "calls-two");
    drop(session);

    table.section("hot call cost (release profile, inside the running program)");
    let column = |rounds: &[Round], pick: Pick| -> Vec<f64> { rounds.iter().map(pick).collect() };
    let rows: [(&str, &[Round], Pick); 6] = [
        (
            "cargo run: direct call of an #[inline(never)] fn",
            &plain,
            |r| r.direct,
        ),
        ("cargo run: the #[hot] fn (a plain fn there)", &plain, |r| {
            r.hot
        }),
        ("host, no patch yet: direct call", &before, |r| r.direct),
        (
            "host, no patch yet: the #[hot] fn (empty slot)",
            &before,
            |r| r.hot,
        ),
        ("host, after a patch: direct call", &after, |r| r.direct),
        (
            "host, after a patch: the #[hot] fn (slot -> patch)",
            &after,
            |r| r.hot,
        ),
    ];
    for (label, rounds, pick) in rows {
        table.samples(label, Unit::Ns, &column(rounds, pick));
    }
    let async_rows: [(&str, &[Round], Pick); 3] = [
        (
            "cargo run: an async fn, created and polled to its end",
            &plain,
            |r| r.direct_async,
        ),
        ("host, after a patch: the same async fn", &after, |r| {
            r.direct_async
        }),
        (
            "host, after a patch: the #[hot] async fn (boxed future)",
            &after,
            |r| r.hot_async,
        ),
    ];
    for (label, rounds, pick) in async_rows {
        table.samples(label, Unit::Ns, &column(rounds, pick));
    }
    let median = |rounds: &[Round], pick: Pick| -> f64 {
        table::median(&column(rounds, pick)).unwrap_or(f64::NAN)
    };
    table.text(
        "slot dispatch against a direct call, same host",
        format!(
            "{:+.2} ns before any patch, {:+.2} ns after (medians)",
            median(&before, |r| r.hot) - median(&before, |r| r.direct),
            median(&after, |r| r.hot) - median(&after, |r| r.direct),
        ),
    );
    table.text(
        "hot async fn (its future boxed) against the plain async fn, same host",
        format!(
            "{:+.2} ns per call after a patch (medians)",
            median(&after, |r| r.hot_async) - median(&after, |r| r.direct_async)
        ),
    );
    table.text(
        "the #[hot] fn: host after a patch against cargo run",
        format!(
            "{:+.2} ns per call (medians)",
            median(&after, |r| r.hot) - median(&plain, |r| r.hot)
        ),
    );
}

/// A copy of the calls fixture with its runtime dependency pointing at this workspace.
fn copy_fixture() -> tempfile::TempDir {
    let source = hotswap_tests::workspace_root().join("tests/benches/fixtures/calls");
    let dir = tempfile::Builder::new()
        .prefix("hotswap-calls-")
        .tempdir()
        .expect("cannot create a temporary directory");
    copy_dir(&source, dir.path());
    let manifest = dir.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("cannot read the calls manifest");
    let runtime = hotswap_tests::workspace_root().join("runtime-shim");
    let text = text.replace(
        "path = \"../../../../runtime-shim\"",
        &format!("path = {:?}", runtime.display().to_string()),
    );
    std::fs::write(&manifest, text).expect("cannot write the calls manifest");
    dir
}

/// Copies `from` to `to` recursively, without `target/`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("cannot create a directory");
    for entry in std::fs::read_dir(from)
        .expect("cannot read the fixture")
        .flatten()
    {
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let dest: PathBuf = to.join(&name);
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("cannot copy a fixture file");
        }
    }
}

/// Waits for the program's rounds with generation `generation` and label `label`; skips the
/// warm-up rounds and returns [`ROUNDS`] measured ones.
fn rounds(process: &mut Process, generation: u64, label: &str) -> Vec<Round> {
    let prefix = format!("calls gen={generation} label={label} ");
    let parse = |line: &Line| -> Option<Round> {
        let rest = line.text.strip_prefix(&prefix)?;
        let field = |name: &str| -> Option<f64> {
            rest.split(' ')
                .find_map(|f| f.strip_prefix(name))
                .and_then(|v| v.parse().ok())
        };
        Some(Round {
            direct: field("direct=")?,
            hot: field("hot=")?,
            direct_async: field("direct_async=")?,
            hot_async: field("hot_async=")?,
        })
    };
    // The first matching line may take a release build (or a patch) to arrive.
    let deadline = if generation == 0 {
        START_DEADLINE
    } else {
        EDIT_DEADLINE
    };
    let (mut index, _) = process.wait_line(0, deadline, |l| parse(l));
    let mut out = Vec::new();
    let mut seen = 0;
    while out.len() < ROUNDS {
        let (found, round) = process.wait_line(index, EDIT_DEADLINE, |l| parse(l));
        index = found + 1;
        seen += 1;
        if seen > WARM_UP_ROUNDS {
            out.push(round);
        }
    }
    out
}
