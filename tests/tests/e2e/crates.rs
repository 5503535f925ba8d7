//! Every local crate is patchable: a package's library target, workspace members below the bin
//! (through the crates between), their generic and `#[inline]` functions, hot functions of a
//! library, a text file a library includes, a library that fails to compile, and a local
//! procedural macro crate (restarted).

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, Session, status_messages};

use crate::{tick_field, wait_tick, wait_tick_of_new_process, wait_tick_of_same_process};

/// What each `Patched` line says after its timings: `generation 1: leaf::word`.
fn patched(stderr: &str) -> String {
    status_messages(stderr, "Patched")
        .iter()
        .map(|line| {
            line.split_once(") ")
                .map_or(line.as_str(), |(_, rest)| rest)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts `fixture` and waits for its first tick containing `parts` and for the session to
/// watch; returns the project, the session and that tick.
fn start(fixture: &str, parts: &[&str]) -> (Project, Session, String) {
    let project = Project::copy(fixture);
    let mut session = project.run(&[]);
    let first = wait_tick(&mut session, START_DEADLINE, parts);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    (project, session, first)
}

/// A package whose library (`shop_logic`) and bin (`shop-server`) are named differently from it
/// (`shop`): an edit in the library reached from the bin's hot function, one in a hot function
/// of the library that the bin's `main` calls, and one in the bin are patched in the same
/// process. A field added to a library type that the program holds behind an alias is refused
/// by the gate before anything is loaded.
#[test]
fn a_package_library_and_its_bin_are_patched_in_one_process() {
    library_and_bin(false);
}

/// The same without marks, under `--redirect`: each edit is patched alike; the refused field
/// is told as reached from a function that hands the shop to the program (`open`).
#[test]
fn a_package_library_and_its_bin_without_marks_are_patched_in_one_process() {
    library_and_bin(true);
}

/// The library-and-bin scenario, with `redirect` under `--redirect` and without marks.
fn library_and_bin(redirect: bool) {
    let parts = ["price-one:5", "label-one bin-one"];
    let (project, mut session, first) = if redirect {
        let project = Project::copy("libbin");
        assert_eq!(project.remove_hot_marks(), 2);
        let mut session = project.run(&["--redirect"]);
        let first = wait_tick(&mut session, START_DEADLINE, &parts);
        session.wait_stderr(START_DEADLINE, "    Watching ");
        (project, session, first)
    } else {
        start("libbin", &parts)
    };
    project.edit("src/lib.rs", "\"label-one\"", "\"label-two\"");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["label-two", "gen=1"]);
    project.edit("src/lib.rs", "price-one", "price-two");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["price-two", "gen=2"]);
    project.edit("src/main.rs", "bin-one", "bin-two");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["bin-two", "gen=3"]);
    session.wait_stderr(EDIT_DEADLINE, "generation 3: ");
    let stderr = session.stderr();
    assert_eq!(
        status_messages(&stderr, "Patching"),
        [
            "    Patching shop-server (`src/lib.rs` changed; rebuilding shop_logic, shop_server)",
            "    Patching shop-server (`src/lib.rs` changed; rebuilding shop_logic, shop_server)",
            "    Patching shop-server (`src/main.rs` changed)",
        ]
    );
    assert_eq!(
        patched(&stderr),
        "generation 1: shop_logic::label\ngeneration 2: shop_logic::price\ngeneration 3: line"
    );

    project.edit_all(
        "src/lib.rs",
        &[
            (
                "    pub name: String,\n",
                "    pub name: String,\n    /// Its price.\n    pub cents: u64,\n",
            ),
            (
                "name: \"apple\".to_owned(),",
                "name: \"apple\".to_owned(),\n        cents: 3,",
            ),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "     Refused [HS0102]");
    let held = if redirect {
        "the value fn `open` returns -> `Arc<Mutex<Vec<Item>>>` -> `Item`"
    } else {
        "hot fn `line(shop: &Shop)` -> `shop: &Arc<Mutex<Vec<Item>>>` -> `Item`"
    };
    assert_eq!(
        status_messages(&session.stderr(), "Refused"),
        [format!(
            "     Refused [HS0102] `Item` changed layout at src/lib.rs:7: field `cents: u64` \
             added at offset 24; size 24 -> 32 bytes\n             the running program holds \
             it: {held}"
        )]
    );
    // The restarted program runs every edit.
    wait_tick_of_new_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["gen=0 price-two:5 label-two bin-two items=apple"],
    );
}

/// A workspace `app -> mid -> leaf`, with `other` beside them and a `leaf-tests` member that
/// depends on `leaf` but not the program: an edit in `leaf` rebuilds `leaf` and `mid` (not
/// `other`, never `leaf-tests`) and is patched in the same process, as are edits of a generic
/// and an `#[inline]` function of `leaf` used by `app`, of a hot function of `mid` that `app`'s
/// `main` calls, and of a text file that `leaf` includes with `include_str!`.
#[test]
fn a_workspace_member_below_the_bin_is_patched_through_the_crates_between() {
    let (project, mut session, first) = start(
        "workspace",
        &["banner=banner-one", "mid=mid-one(leaf-one)", "inline=42"],
    );
    project.edit("leaf/src/lib.rs", "\"leaf-one\"", "\"leaf-two\"");
    wait_tick_of_same_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["(leaf-two)", "gen=1"],
    );
    project.edit("leaf/src/lib.rs", "tag-one", "tag-two");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["tag-two:7", "gen=2"]);
    project.edit("leaf/src/lib.rs", "n * 2", "n * 3");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["inline=63", "gen=3"]);
    project.edit("mid/src/lib.rs", "banner-one", "banner-two");
    wait_tick_of_same_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["banner-two", "gen=4"],
    );
    project.edit("leaf/src/greeting.txt", "hello-one", "hello-two");
    wait_tick_of_same_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["text=hello-two", "gen=5"],
    );
    // Every earlier edit is still in the code: `leaf` is carried by every later patch.
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["gen=5"]);
    assert!(
        line.contains(
            "mid=mid-one(leaf-two) text=hello-two generic=tag-two:7 inline=63 other=other-one"
        ),
        "{line}"
    );
    let stderr = session.stderr();
    insta::assert_snapshot!(status_messages(&stderr, "Patching").join("\n"), @r"
        Patching app (`leaf/src/lib.rs` changed; rebuilding leaf, mid, app)
        Patching app (`leaf/src/lib.rs` changed; rebuilding leaf, mid, app)
        Patching app (`leaf/src/lib.rs` changed; rebuilding leaf, mid, app)
        Patching app (`mid/src/lib.rs` changed; rebuilding mid, app)
        Patching app (`leaf/src/greeting.txt` changed; rebuilding leaf, mid, app)
    ");
    insta::assert_snapshot!(patched(&stderr), @r"
    generation 1: leaf::word
    generation 2: leaf::tagged
    generation 3: leaf::double
    generation 4: mid::banner
    generation 5: leaf::greeting
    ");
    assert!(!stderr.contains("leaf-tests"), "{stderr}");
}

/// An edit that breaks `mid` shows rustc's diagnostics for `mid` and keeps the program running
/// its code; fixing it patches. An edit of the local procedural macro crate restarts, saying
/// why, and the new program runs the new expansion.
#[test]
fn a_broken_member_keeps_the_program_and_a_macro_crate_restarts_it() {
    let (project, mut session, first) = start("workspace", &["mid=mid-one(leaf-one)"]);
    project.edit(
        "mid/src/lib.rs",
        "    format!(\"mid-one({})\", leaf::word())",
        "    let broken: u32 = \"no\";\n    format!(\"mid-two({})\", leaf::word())",
    );
    session.wait_stderr(EDIT_DEADLINE, "      Failed could not compile `mid`;");
    let stderr = session.stderr();
    assert!(
        stderr.contains("error[E0308]: mismatched types"),
        "{stderr}"
    );
    assert!(stderr.contains("--> mid/src/lib.rs:5:"), "{stderr}");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["mid-one", "gen=0"]);
    project.edit("mid/src/lib.rs", "    let broken: u32 = \"no\";\n", "");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["mid-two", "gen=1"]);

    project.edit("shout/src/lib.rs", "to_uppercase", "to_lowercase");
    session.wait_stderr(EDIT_DEADLINE, "  Restarting [HS0203]");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Restarting").join("\n"), @"  Restarting [HS0203] app (`shout/src/lib.rs` changed the procedural macro crate `shout`, whose expansions are compiled into the host: the host is rebuilt; state is lost)");
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["macro=quiet", "mid-two"]);
    assert_ne!(tick_field(&line, "pid"), tick_field(&first, "pid"));
}

/// A library named `core`, like the standard library's crate, which it hides from the crates
/// that depend on it: the host builds (the generated code never names `::core`), and an edit
/// of it is patched; its functions cannot be told from the standard library's by their
/// symbols, so the hot functions are listed instead of them.
#[test]
fn a_library_named_core_is_patched() {
    let project = Project::copy("libbin");
    project.edit("Cargo.toml", "name = \"shop_logic\"", "name = \"core\"");
    let main = project.path().join("src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, text.replace("shop_logic::", "core::")).unwrap();
    let mut session = project.run(&[]);
    let first = wait_tick(&mut session, START_DEADLINE, &["label-one"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit("src/lib.rs", "\"label-one\"", "\"label-two\"");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["label-two", "gen=1"]);
    insta::assert_snapshot!(patched(&session.stderr()), @"generation 1: core::price, line");
}

/// A module file saved before any `mod` declares it is not part of the program: a warning,
/// and nothing is patched. Once a `mod` line declares it, it is; a text file that it starts to
/// include is watched from then on.
#[test]
fn a_new_module_and_a_newly_included_file_are_patched() {
    let (project, mut session, first) = start("libbin", &["label-one"]);
    std::fs::write(
        project.path().join("src/extra.rs"),
        "/// A new module.\npub fn word() -> &'static str {\n    \"extra-one\"\n}\n",
    )
    .unwrap();
    session.wait_stderr(EDIT_DEADLINE, "   Unchanged ");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Warning").join("\n"), @"     Warning [HS0202] `src/extra.rs` is not part of any crate of `shop-server` (no `mod` declares it, or it is another target's): its changes are not patched");
    project.edit_all(
        "src/lib.rs",
        &[
            ("use std::sync", "mod extra;\n\nuse std::sync"),
            ("    \"label-one\"", "    extra::word()"),
        ],
    );
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["extra-one", "gen=1"]);
    std::fs::write(project.path().join("src/extra.txt"), "text-one\n").unwrap();
    project.edit(
        "src/extra.rs",
        "    \"extra-one\"",
        "    include_str!(\"extra.txt\").trim_end()",
    );
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["text-one", "gen=2"]);
    project.edit("src/extra.txt", "text-one", "text-two");
    wait_tick_of_same_process(&mut session, EDIT_DEADLINE, &first, &["text-two", "gen=3"]);
    session.assert_stderr_lacks("Restarting");
}

/// A library edit that breaks a crate above it is not forgotten: a save elsewhere builds both
/// again (and fails the same way, as `cargo build` would, rather than patching against the
/// old library), and the fix patches every change at once.
#[test]
fn a_library_edit_that_broke_another_crate_is_built_again_until_it_compiles() {
    let (project, mut session, first) = start("workspace", &["other=other-one"]);
    project.edit("leaf/src/lib.rs", "pub fn word()", "pub fn word2()");
    session.wait_stderr_count(EDIT_DEADLINE, "      Failed could not compile `mid`;", 1);
    project.edit("other/src/lib.rs", "other-one", "other-two");
    session.wait_stderr_count(EDIT_DEADLINE, "      Failed could not compile `mid`;", 2);
    project.edit("mid/src/lib.rs", "leaf::word()", "leaf::word2()");
    wait_tick_of_same_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["other=other-two", "gen=1"],
    );
    let stderr = session.stderr();
    insta::assert_snapshot!(status_messages(&stderr, "Patching").join("\n"), @r"
        Patching app (`leaf/src/lib.rs` changed; rebuilding leaf, mid, app)
        Patching app (`other/src/lib.rs` changed; rebuilding leaf, mid, other, app)
        Patching app (`mid/src/lib.rs` changed; rebuilding leaf, mid, other, app)
    ");
    insta::assert_snapshot!(patched(&stderr), @"generation 1: leaf::word2, mid::describe, other::name");
}
