//! The layout gate: types of the crate that the running program holds behind an alias, a
//! container, a pointer or a static, read from the debug info of the host and of each patch. An
//! edit that changes one of them is refused before anything is loaded, naming the type, what
//! changed, where it is defined and how the program reaches it. The fixture's profile has no
//! debug info and strips the executable: the tool adds what the gate needs.

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, status_messages};

use crate::{tick_field, wait_old_code_kept, wait_tick, wait_tick_of_new_process};

const MAIN: &str = "src/main.rs";

/// Starts the layouts fixture with `args` and waits until it ticks and the session watches.
fn start(args: &[&str]) -> (Project, hotswap_tests::Session, String) {
    let project = Project::copy("layouts");
    let mut session = project.run(args);
    let first = wait_tick(
        &mut session,
        START_DEADLINE,
        &["shop=apple+pear", "word=one"],
    );
    session.wait_stderr(START_DEADLINE, "    Watching ");
    (project, session, first)
}

/// The edit of the shop example: a field added to `Item`, which the program holds as
/// `Shop = Arc<Mutex<Vec<Item>>>`, a type no hot signature spells.
fn add_price_to_item(project: &Project) {
    project.edit_all(
        MAIN,
        &[
            (
                "pub struct Item {\n    pub name: String,\n}",
                "pub struct Item {\n    pub name: String,\n    pub price: u64,\n}",
            ),
            (
                "Item { name: \"apple\".into() }",
                "Item { name: \"apple\".into(), price: 1 }",
            ),
            (
                "Item { name: \"pear\".into() }",
                "Item { name: \"pear\".into(), price: 2 }",
            ),
        ],
    );
}

/// A field added to a type behind an alias (`Shop = Arc<Mutex<Vec<Item>>>`): refused before
/// loading, naming `Item`, the change and the path from the hot function; by default the program
/// restarts with the new code, saying that state is lost.
#[test]
fn s23_field_added_to_a_type_behind_an_alias_is_refused_and_restarts() {
    let (project, mut session, first) = start(&[]);
    add_price_to_item(&project);
    session.wait_stderr(EDIT_DEADLINE, "Restarting");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Refused").join("\n"), @r"
         Refused [HS0102] `Item` changed layout at src/main.rs:12: field `price: u64` added at offset 24; size 24 -> 32 bytes
                 the running program holds it: hot fn `describe(shop: &Shop)` -> `shop: &Arc<Mutex<Vec<Item>>>` -> `Item`
    ");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Restarting").join("\n"), @r"
      Restarting [HS0102] layouts (the patch was refused; state is lost)
                 pass `--no-restart` to keep the old code running instead
    ");
    wait_tick_of_new_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["shop=apple+pear", "gen=0"],
    );
    session.assert_stderr_lacks("Patched");
}

/// The same edit with `--no-restart`: refused, and the old code keeps running in the same
/// process, its state intact.
#[test]
fn s23_field_added_behind_an_alias_with_no_restart_keeps_the_old_code() {
    let (project, mut session, first) = start(&["--no-restart"]);
    add_price_to_item(&project);
    session.wait_stderr(EDIT_DEADLINE, "Kept");
    assert_eq!(
        status_messages(&session.stderr(), "Refused").len(),
        1,
        "{}",
        session.stderr()
    );
    // A tick printed after the refusal, by the first process with its first code.
    let ticks = session.stdout().lines().count();
    session.wait_stdout(EDIT_DEADLINE, |out| {
        (out.lines().count() > ticks).then_some(())
    });
    wait_old_code_kept(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["gen=0 shop=apple+pear"],
    );
}

/// One save that changes every other kind of held type: through `HashMap<u32, Price>` behind an
/// alias, `Option<Box<Part>>` in a struct field, a `static REGISTRY: Mutex<Vec<Entry>>`, two
/// `u64` fields swapped (same size) and a `u32` field made `f32` (same size). Each is refused,
/// with how the program reaches it.
#[test]
fn every_held_type_is_checked_through_containers_pointers_statics_and_same_size_changes() {
    let (project, mut session, first) = start(&["--no-restart"]);
    project.edit_all(
        MAIN,
        &[
            ("pub cents: u64,", "pub cents: u64,\n    pub tax: u8,"),
            ("Price { cents: 250 }", "Price { cents: 250, tax: 1 }"),
            ("pub serial: u32,", "pub serial: u32,\n    pub batch: u32,"),
            ("Part { serial: 42 }", "Part { serial: 42, batch: 1 }"),
            (
                "pub key: &'static str,",
                "pub key: &'static str,\n    pub rank: u8,",
            ),
            (
                "Entry { key: \"first\" }",
                "Entry { key: \"first\", rank: 0 }",
            ),
            (
                "    pub left: u64,\n    pub right: u64,",
                "    pub right: u64,\n    pub left: u64,",
            ),
            ("pub value: u32,", "pub value: f32,"),
            ("Reading { value: 3 }", "Reading { value: 3.0 }"),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "Kept");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Refused").join("\n"), @r"
         Refused [HS0102] `Pair` changed layout at src/main.rs:49: field `right` moved from offset 8 to 0; field `left` moved from offset 0 to 8
                 the running program holds it: hot fn `gauges(gauges: &Gauges)` -> `gauges: &(Pair, Reading)` -> `Pair`
         Refused [HS0102] `Reading` changed layout at src/main.rs:55: field `value` changed type `u32` -> `f32`
                 the running program holds it: hot fn `gauges(gauges: &Gauges)` -> `gauges: &(Pair, Reading)` -> `Reading`
         Refused [HS0102] `Price` changed layout at src/main.rs:20: field `tax: u8` added at offset 8; size 8 -> 16 bytes
                 the running program holds it: hot fn `price(prices: &Prices)` -> `prices: &HashMap<u32, Price>` -> `Price`
         Refused [HS0102] `Entry` changed layout at src/main.rs:40: field `rank: u8` added at offset 16; size 16 -> 24 bytes
                 the running program holds it: static `REGISTRY` -> `Mutex<Vec<Entry>>` -> `Entry`
         Refused [HS0102] `Part` changed layout at src/main.rs:29: field `batch: u32` added at offset 4; size 4 -> 8 bytes
                 the running program holds it: hot fn `spare(machine: &Machine)` -> `machine: &Machine` -> `Machine.spare` -> `Part`
    ");
    wait_old_code_kept(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["gen=0", "reading=3 "],
    );
}

/// A type used only inside new code (built and dropped within one call) may change freely: the
/// edit is patched in the same process, with no layout message.
#[test]
fn a_type_only_new_code_uses_may_change_and_is_patched() {
    let (project, mut session, first) = start(&[]);
    project.edit_all(
        MAIN,
        &[
            (
                "struct Scratch {\n    a: u32,\n}",
                "struct Scratch {\n    a: u32,\n    b: u64,\n}",
            ),
            ("Scratch { a: 1 }", "Scratch { a: 1, b: 2 }"),
            ("scratch={} word=one", "scratch={} word=two"),
        ],
    );
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["word=two", "gen=1"]);
    assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
    let stderr = session.stderr();
    assert!(!stderr.contains("Refused"), "{stderr}");
    assert!(!stderr.contains("changed layout"), "{stderr}");
}
