//! The compatibility gate: refusals before loading, what is patched, what
//! restarts, undefined symbols, and the report of changed functions.

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, status_messages};

use crate::{start_gate, tick_field, wait_old_code_kept, wait_tick, wait_tick_of_new_process};

const MAIN: &str = "src/main.rs";

/// Waits for a tick with `parts` from the process that printed `first` (patched, not
/// restarted), and checks that nothing was refused on the way; returns the tick.
fn wait_patched_in_place(
    session: &mut hotswap_tests::Session,
    first: &str,
    parts: &[&str],
) -> String {
    let line = crate::wait_tick_of_same_process(session, EDIT_DEADLINE, first, parts);
    session.assert_stderr_lacks("Refused");
    line
}

/// A hot function gains a parameter: refused before loading with both signatures and the
/// location; with `--no-restart` the old code keeps running in the same process.
#[test]
fn s09_changed_signature_is_refused_and_old_code_keeps_running() {
    let (project, mut session, first) = start_gate(&["--no-restart"]);
    project.edit_all(
        MAIN,
        &[
            (
                "fn alpha() -> &'static str {",
                "fn alpha(times: u32) -> &'static str {\n    let _ = times;",
            ),
            ("            alpha(),", "            alpha(2),"),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "Kept");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Refused").join("\n"), @r"
         Refused [HS0101] hot fn `gate::alpha` changed its signature at src/main.rs:39
                 was `fn alpha() -> &'static str`
                 now `fn alpha(times: u32) -> &'static str`
    ");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Kept").join("\n"), @"        Kept `gate` runs its previous code (--no-restart); the next save is checked again");
    wait_old_code_kept(&mut session, EDIT_DEADLINE, &first, &["alpha-one", "gen=0"]);
}

/// A field added to a struct passed by `&mut` to a hot function: refused, naming the type
/// and both sizes; by default the program restarts, saying that state is lost.
#[test]
fn s10_changed_layout_of_a_boundary_struct_is_refused_and_restarts() {
    let (project, mut session, first) = start_gate(&[]);
    crate::add_field_to_state(&project);
    session.wait_stderr(EDIT_DEADLINE, "Restarting");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Refused").join("\n"), @r"
         Refused [HS0102] `State` changed layout at src/main.rs:17: field `extra: u64` added at offset 24; size 24 -> 32 bytes
                 the running program holds it: hot fn `step(state: &mut State)` -> `state: &mut State` -> `State`
    ");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Restarting").join("\n"), @r"
      Restarting [HS0102] gate (the patch was refused; state is lost)
                 pass `--no-restart` to keep the old code running instead
    ");
    wait_tick_of_new_process(
        &mut session,
        EDIT_DEADLINE,
        &first,
        &["step-one count=1 ", "gen=0"],
    );
}

/// A field added to a struct used only inside hot code is patched, and the state the host
/// owns carries on.
#[test]
fn s11_changed_layout_of_an_internal_struct_is_patched() {
    let (project, mut session, first) = start_gate(&[]);
    crate::add_field_to_scratch(&project);
    let line = wait_patched_in_place(&mut session, &first, &["step-two", "scratch=16", "gen=1"]);
    let count: u64 = tick_field(&line, "count").parse().unwrap();
    let first_count: u64 = tick_field(&first, "count").parse().unwrap();
    assert!(
        count > first_count,
        "the state restarted: {first} then {line}"
    );
}

/// A dependency added to the manifest is not patched: the host is rebuilt and restarted,
/// and the message says why.
#[test]
fn s13_new_dependency_rebuilds_and_restarts_the_host() {
    let (project, mut session, first) = start_gate(&[]);
    project.edit_all(
        "Cargo.toml",
        &[(
            "[dependencies]\n",
            "[dependencies]\ngate-extra = { path = \"extra\" }\n",
        )],
    );
    session.wait_stderr(EDIT_DEADLINE, "Restarting");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Restarting").join("\n"), @"  Restarting [HS0301] gate (`Cargo.toml` changed, which the patch cannot carry: the host is rebuilt; state is lost)");
    let restarted = wait_tick_of_new_process(&mut session, EDIT_DEADLINE, &first, &["gen=0"]);
    // The restarted host contains the new dependency, so a patch may now call it.
    project.edit(MAIN, "\"beta-one\"", "gate_extra::word()");
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["extra-one", "gen=1"]);
    assert_eq!(tick_field(&line, "pid"), tick_field(&restarted, "pid"));
}

/// A patch that needs a symbol the running program lacks is refused before loading, naming it.
#[test]
fn undefined_symbol_is_refused_before_loading() {
    let (project, mut session, first) = start_gate(&["--no-restart"]);
    crate::call_an_absent_symbol(&project, "    \"beta-one\"\n");
    session.wait_stderr(EDIT_DEADLINE, "Kept");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Refused").join("\n"), @r"
         Refused [HS0105] the patch needs a symbol the running program does not contain:
                 `hotswap_test_absent_symbol`
    ");
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["beta-one"]);
    assert_eq!(tick_field(&line, "pid"), tick_field(&first, "pid"));
}

/// Editing one of three hot functions reports exactly that one; editing a comment reports no
/// code change and sends nothing.
#[test]
fn changed_functions_are_reported_and_comment_edits_send_nothing() {
    let (project, mut session, _) = start_gate(&[]);
    project.edit(MAIN, "\"beta-one\"", "\"beta-two\"");
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-two", "gen=1"]);
    session.wait_stderr(EDIT_DEADLINE, "generation 1: beta");
    let patched = status_messages(&session.stderr(), "Patched");
    assert_eq!(patched.len(), 1);
    assert!(
        patched[0].starts_with("     Patched 1 function in "),
        "{patched:?}"
    );
    assert!(patched[0].ends_with(" generation 1: beta"), "{patched:?}");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Warning").join("\n"), @"     Warning [HS0501] these statics and thread-locals of the crate will start fresh in the new code: `CALLS`, `LAST`");

    project.edit(
        MAIN,
        "/// Another word the tests edit.",
        "/// Another word that tests edit.",
    );
    session.wait_stderr(EDIT_DEADLINE, "Unchanged");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Unchanged").join("\n"), @"   Unchanged no code changed in `src/main.rs`; nothing to patch");
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-two", "gen=1"]);
    assert_eq!(status_messages(&session.stderr(), "Patched").len(), 1);
}

/// A comment line inserted at the top of a file, then a hot function reformatted: the tokens are
/// the same, so nothing is built or sent: `Unchanged`, no warning, the same process and
/// generation.
#[test]
fn comment_lines_and_reformatting_are_unchanged_without_a_build() {
    let (project, mut session, first) = start_gate(&[]);
    crate::comment_and_reformat(&project, &mut session);
    insta::assert_snapshot!(status_messages(&session.stderr(), "Unchanged").join("\n"), @r"
       Unchanged only comments or layout changed in `src/main.rs`; nothing to patch
       Unchanged only comments or layout changed in `src/main.rs`; nothing to patch
    ");
    let stderr = session.stderr();
    for verb in ["Patching", "Patched", "Warning"] {
        assert!(!stderr.contains(verb), "{verb}: {stderr}");
    }
    wait_old_code_kept(&mut session, EDIT_DEADLINE, &first, &["alpha-one", "gen=0"]);
}

/// Renaming a hot function's argument changes nothing at run time: it is patched, not refused.
#[test]
fn renamed_argument_is_patched() {
    let (project, mut session, first) = start_gate(&["--no-restart"]);
    project.edit_all(
        MAIN,
        &[
            (
                "fn step(state: &mut State) -> String {",
                "fn step(world: &mut State) -> String {\n    let state = world;",
            ),
            ("\"step-one count=", "\"step-two count="),
        ],
    );
    wait_patched_in_place(&mut session, &first, &["step-two", "gen=1"]);
}

/// A dependency function never called before, for the standard library: hot code's first use of functions the program never called
/// (`HashMap`'s growth, `f64::sin` from libm) is patched, not refused.
#[test]
fn s07_first_use_of_std_functions_in_hot_code_is_patched() {
    let (project, mut session, first) = start_gate(&["--no-restart"]);
    project.edit(
        MAIN,
        "    \"beta-one\"\n",
        "    let mut words = std::collections::HashMap::new();\n    \
         words.insert(1u8, \"beta-map\");\n    \
         if 0.5f64.sin() > 2.0 { \"never\" } else { words[&1] }\n",
    );
    wait_patched_in_place(&mut session, &first, &["beta-map", "gen=1"]);
}

/// A `mod` file deleted and then restored with its old content (`git stash`, `git stash pop`)
/// is rebuilt: the restore is a change.
#[test]
fn deleted_module_file_restored_with_its_old_content_is_rebuilt() {
    let (project, mut session, _) = start_gate(&["--no-restart"]);
    std::fs::write(
        project.path().join("src/words.rs"),
        "pub fn word() -> &'static str {\n    \"beta-module\"\n}\n",
    )
    .unwrap();
    project.edit_all(
        MAIN,
        &[
            ("fn main() {", "mod words;\n\nfn main() {"),
            ("    \"beta-one\"\n", "    words::word()\n"),
        ],
    );
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-module", "gen=1"]);
    let module = project.path().join("src/words.rs");
    let saved = std::fs::read(&module).unwrap();
    std::fs::remove_file(&module).unwrap();
    project.edit(MAIN, "\"alpha-one\"", "\"alpha-two\"");
    session.wait_stderr(EDIT_DEADLINE, "      Failed could not compile `gate`");
    std::fs::write(&module, saved).unwrap();
    wait_tick(
        &mut session,
        EDIT_DEADLINE,
        &["alpha-two", "beta-module", "gen=2"],
    );
}

/// rustc reports what the linker printed after the link (the `linker_messages` lint). As a
/// warning, it is shown and the patch applies; a crate that denies the lint fails its build
/// there, after the patch was linked, and that patch is a failed build like any other: the
/// program keeps its code. (The session goes on at the link's end only when neither rustc nor
/// the linker printed anything.)
#[test]
fn what_rustc_says_after_the_link_is_shown_and_a_failure_there_fails_the_patch() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::copy("gate");
    // A linker that speaks about every shared object it links: the patches, not the program.
    let linker = project.path().join("noisy-cc");
    std::fs::write(
        &linker,
        "#!/bin/sh
case \" $* \" in\n  *\" -shared \"*) echo 'noisy linker: a shared object' >&2 ;;\n\
         esac\nexec cc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&linker, std::fs::Permissions::from_mode(0o755)).unwrap();
    project.edit(
        MAIN,
        "\nuse std::cell::Cell;",
        "\n#![warn(linker_messages)]\n\nuse std::cell::Cell;",
    );
    // As `[target.x86_64-unknown-linux-gnu] linker` in a cargo configuration would.
    let mut session = project.run_with_env(
        &[],
        &[("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER", &linker)],
    );
    let first = wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    let from = session.stderr().len();
    crate::patch_beta(&project, &mut session, &first);
    session.wait_stderr(EDIT_DEADLINE, "Patched");
    let patched = session.stderr()[from..].to_owned();
    assert!(
        patched.contains("noisy linker: a shared object") && patched.contains("1 warning emitted"),
        "{patched}"
    );

    project.edit_all(
        MAIN,
        &[
            ("#![warn(linker_messages)]", "#![deny(linker_messages)]"),
            ("\"beta-two\"", "\"beta-three\""),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "      Failed could not compile `gate`");
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-two", "gen=1"]);
    session.assert_stderr_lacks("generation 2");
}

/// A hot function renamed while the program runs: the program still calls the old name, so the
/// new code would never run. Refused, naming it, instead of a `Patched` that changes nothing.
#[test]
fn renamed_hot_function_is_refused() {
    let (project, mut session, _) = start_gate(&["--no-restart"]);
    project.edit_all(
        MAIN,
        &[
            (
                "fn beta() -> &'static str {",
                "fn gamma() -> &'static str {",
            ),
            ("            beta()", "            gamma()"),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "        Kept ");
    insta::assert_snapshot!(status_messages(&session.stderr(), "Refused").join("\n"), @r"
         Refused [HS0104] hot fn `gate::beta` is gone from the new code (renamed or removed)
                 the running program still calls it, and would not run the code that replaced it
    ");
    session.assert_stderr_lacks("Patched");
}

/// A broken manifest: the rebuild fails, nothing restarts, and the running program keeps its code
/// and its state.
#[test]
fn broken_manifest_keeps_the_program_running() {
    let (project, mut session, first) = start_gate(&[]);
    project.edit("Cargo.toml", "[dependencies]\n", "[dependencies\n");
    session.wait_stderr(
        EDIT_DEADLINE,
        "      Failed the host build failed, so nothing restarted: the running program, if any, \
         keeps its code and its state",
    );
    let count: u64 = tick_field(&first, "count").parse().unwrap();
    let later = wait_tick(
        &mut session,
        EDIT_DEADLINE,
        &[&format!("count={} ", count + 10)],
    );
    assert_eq!(tick_field(&later, "pid"), tick_field(&first, "pid"));
}

/// A profile that keeps the dependencies' debug info in `.dwo` packages (`split-debuginfo =
/// "packed"`: no `.dwo` file beside their objects): the host's skeleton units of other crates are
/// not followed, so a body edit is patched, and a held type's layout change is still refused.
#[test]
fn dependencies_with_packed_split_debug_info_leave_the_gate_working() {
    let project = Project::copy("gate");
    let manifest = project.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!("{text}\n[profile.dev]\nsplit-debuginfo = \"packed\"\n"),
    )
    .unwrap();
    let mut session = project.run(&["--no-restart"]);
    let first = wait_tick(
        &mut session,
        START_DEADLINE,
        &["step-one", "alpha-one", "beta-one"],
    );
    session.wait_stderr(START_DEADLINE, "    Watching ");
    crate::patch_beta(&project, &mut session, &first);
    crate::add_field_to_state(&project);
    session.wait_stderr(EDIT_DEADLINE, "Kept");
    let refused = status_messages(&session.stderr(), "Refused");
    assert_eq!(refused.len(), 1, "{}", session.stderr());
    assert!(
        refused[0].starts_with(
            "     Refused [HS0102] `State` changed layout at src/main.rs:17: field `extra: u64` \
             added at offset 24"
        ),
        "{}",
        session.stderr()
    );
}
