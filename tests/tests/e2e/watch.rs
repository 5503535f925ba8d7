//! The watch loop against the real watcher: every editor's way of saving gives exactly one patch
//! with the whole new content, one save's many events give one build, saves during a
//! build give exactly one more.

use std::fs;
use std::path::Path;

use hotswap_tests::{EDIT_DEADLINE, Project, START_DEADLINE, Session, status_messages};

use crate::wait_tick;

/// The gate fixture, started, with its first tick seen.
fn start() -> (Project, Session) {
    start_in(false)
}

/// The gate fixture, started (with `redirect`, without its marks under `--redirect`), with its
/// first tick seen.
fn start_in(redirect: bool) -> (Project, Session) {
    let project = Project::copy("gate");
    let mut session = if redirect {
        assert!(project.remove_hot_marks() > 0);
        project.run(&["--redirect"])
    } else {
        project.run(&[])
    };
    wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    (project, session)
}

/// `src/main.rs` with `beta-one` replaced by `word`.
fn content(project: &Project, word: &str) -> String {
    fs::read_to_string(project.path().join("src/main.rs"))
        .unwrap()
        .replace("\"beta-one\"", &format!("\"{word}\""))
}

/// Swap, lock and backup files that editors write while a file is open: none may trigger a
/// build.
fn churn(src: &Path) {
    fs::write(src.join(".main.rs.swp"), b"vim swap").unwrap();
    fs::write(src.join(".main.rs.swp"), b"vim swap, updated").unwrap();
    fs::write(src.join("4913"), b"").unwrap();
    fs::remove_file(src.join("4913")).unwrap();
    std::os::unix::fs::symlink("user@host.42:1700000000", src.join(".#main.rs")).unwrap();
    fs::remove_file(src.join(".#main.rs")).unwrap();
    fs::write(src.join("main.rs~"), b"old").unwrap();
    fs::remove_file(src.join("main.rs~")).unwrap();
    fs::write(src.join("main.rs___jb_tmp___"), b"tmp").unwrap();
    fs::remove_file(src.join("main.rs___jb_tmp___")).unwrap();
    fs::write(src.join("main.rs.bck"), b"bck").unwrap();
    fs::remove_file(src.join("main.rs.bck")).unwrap();
    fs::remove_file(src.join(".main.rs.swp")).unwrap();
}

/// Saves `word` into `beta` the way `save` does, then churns, then saves again; asserts one
/// patch per save with the complete new content, and nothing from the churn.
fn one_patch_per_save(save: impl Fn(&Path, &str)) {
    one_patch_per_save_in(false, save);
}

/// [`one_patch_per_save`], with `redirect` under `--redirect` and without marks.
fn one_patch_per_save_in(redirect: bool, save: impl Fn(&Path, &str)) {
    let (project, mut session) = start_in(redirect);
    let src = project.path().join("src");
    save(&src, &content(&project, "beta-two"));
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-two", "gen=1"]);
    churn(&src);
    let next = content(&project, "beta-three").replace("\"beta-two\"", "\"beta-three\"");
    save(&src, &next);
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-three", "gen=2"]);
    let stderr = session.stderr();
    assert_eq!(status_messages(&stderr, "Patching").len(), 2, "{stderr}");
    assert_eq!(status_messages(&stderr, "Patched").len(), 2, "{stderr}");
    assert!(
        !stderr.contains("Failed") && !stderr.contains("Restarting"),
        "{stderr}"
    );
}

#[test]
fn s20_vim_save_backup_rename_and_swap() {
    one_patch_per_save(vim_save);
}

/// The same under `--redirect`, without marks: the watcher is the same, each save one patch.
#[test]
fn s20_vim_save_without_marks_under_redirect() {
    one_patch_per_save_in(true, vim_save);
}

/// Saves `text` as vim does: a swap file, the `4913` probe, the file renamed to its backup and
/// written anew.
fn vim_save(src: &Path, text: &str) {
    fs::write(src.join(".main.rs.swp"), b"swap").unwrap();
    fs::write(src.join("4913"), b"").unwrap();
    fs::remove_file(src.join("4913")).unwrap();
    fs::rename(src.join("main.rs"), src.join("main.rs~")).unwrap();
    fs::write(src.join("main.rs"), text).unwrap();
    fs::remove_file(src.join("main.rs~")).unwrap();
    fs::write(src.join(".main.rs.swp"), b"swap, saved").unwrap();
}

#[test]
fn s20_emacs_save_lock_link_and_backup() {
    one_patch_per_save(|src, text| {
        std::os::unix::fs::symlink("user@host.7:1700000000", src.join(".#main.rs")).unwrap();
        fs::rename(src.join("main.rs"), src.join("main.rs~")).unwrap();
        fs::write(src.join("main.rs"), text).unwrap();
        fs::remove_file(src.join(".#main.rs")).unwrap();
    });
}

#[test]
fn s20_jetbrains_safe_write() {
    one_patch_per_save(|src, text| {
        fs::write(src.join("main.rs___jb_tmp___"), text).unwrap();
        fs::rename(src.join("main.rs"), src.join("main.rs___jb_old___")).unwrap();
        fs::rename(src.join("main.rs___jb_tmp___"), src.join("main.rs")).unwrap();
        fs::remove_file(src.join("main.rs___jb_old___")).unwrap();
    });
}

#[test]
fn s20_vscode_and_zed_truncate_then_write() {
    one_patch_per_save(|src, text| {
        let file = fs::File::create(src.join("main.rs")).unwrap();
        drop(file);
        fs::OpenOptions::new()
            .write(true)
            .open(src.join("main.rs"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .unwrap();
    });
}

#[test]
fn s20_helix_backup_copy() {
    one_patch_per_save(|src, text| {
        fs::copy(src.join("main.rs"), src.join("main.rs.bck")).unwrap();
        fs::write(src.join("main.rs"), text).unwrap();
        fs::remove_file(src.join("main.rs.bck")).unwrap();
    });
}

/// One save that produces several events (write to a temporary file, rename over, chmod,
/// touch) gives exactly one build and one patch.
#[test]
fn s04_one_save_with_many_events_builds_once() {
    use std::os::unix::fs::PermissionsExt;
    let (project, mut session) = start();
    let src = project.path().join("src");
    fs::write(src.join(".main.rs.tmp"), content(&project, "beta-two")).unwrap();
    fs::rename(src.join(".main.rs.tmp"), src.join("main.rs")).unwrap();
    fs::set_permissions(src.join("main.rs"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(src.join("main.rs"))
        .unwrap();
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-two", "gen=1"]);
    // A later save proves the loop is idle again, and that nothing else was built in between.
    project.edit("src/main.rs", "\"beta-two\"", "\"beta-three\"");
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-three", "gen=2"]);
    let stderr = session.stderr();
    assert_eq!(status_messages(&stderr, "Patching").len(), 2, "{stderr}");
}

/// A "save all" that writes a caller before its new callee: the build that the first file's
/// save starts at once (the caller alone does not compile) is superseded by the second file's
/// save and shows nothing; one build of both follows, and it is patched.
#[test]
fn a_save_all_writing_a_caller_before_its_callee_is_one_patch() {
    let (project, mut session) = start();
    let src = project.path().join("src");
    let main = fs::read_to_string(src.join("main.rs"))
        .unwrap()
        .replacen(
            "use std::cell::Cell;",
            "mod words;\n\nuse std::cell::Cell;",
            1,
        )
        .replace("    \"beta-one\"", "    words::BETA");
    fs::write(src.join("main.rs"), main).unwrap();
    fs::write(
        src.join("words.rs"),
        "/// The word `beta` says.\npub const BETA: &str = \"beta-two\";\n",
    )
    .unwrap();
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-two", "gen=1"]);
    let stderr = session.stderr();
    assert_eq!(
        status_messages(&stderr, "Patching"),
        ["    Patching gate (`src/main.rs`, `src/words.rs` changed)"],
        "{stderr}"
    );
    assert!(
        !stderr.contains("error") && !stderr.contains("Failed"),
        "the superseded build showed its errors: {stderr}"
    );
}

/// Ctrl-C while a patch builds stops the session at once: the build's rustc is killed, nothing
/// of it is applied, and the program stops.
#[test]
fn an_interrupt_during_a_patch_build_stops_the_session_without_waiting_for_it() {
    let (project, mut session) = start();
    // A constant that would take rustc minutes to evaluate.
    project.edit(
        "src/main.rs",
        "    \"beta-one\"",
        "    #[allow(long_running_const_eval)]\n    const _: u64 = {\n        let mut i = 0u64;\n\
         \x20       let mut acc = 0u64;\n        while i < 200_000_000 {\n            acc = \
         acc.wrapping_mul(31).wrapping_add(i);\n            i += 1;\n        }\n        acc\n\
         \x20   };\n    \"beta-two\"",
    );
    session.wait_stderr(EDIT_DEADLINE, "constant evaluation is taking a long time");
    let asked = std::time::Instant::now();
    assert_eq!(session.interrupt(EDIT_DEADLINE), Some(130));
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "the session waited {:?} for the build",
        asked.elapsed()
    );
    let stderr = session.stderr();
    assert!(
        stderr.contains("     Stopped `gate` (interrupted)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Patched") && !stderr.contains("Failed"),
        "{stderr}"
    );
    assert!(!session.stdout().contains("beta-two"));
}

/// Saves that arrive while a (deliberately slow) build runs give exactly one more build
/// after it, with the content of the last save.
#[test]
fn s21_saves_during_a_build_give_exactly_one_more_build() {
    let (project, mut session) = start();
    // A constant that takes rustc seconds to evaluate makes this build slow. It is in the hot
    // function's body, so that only the hot function changes: the patch is the one build
    // (an item outside it would call for a second build with every function compiled, which
    // would read the later saves).
    project.edit(
        "src/main.rs",
        "    \"beta-one\"",
        "    #[allow(long_running_const_eval)]\n    const _: u64 = {\n        let mut i = 0u64;\n\
         \x20       let mut acc = 0u64;\n        while i < 1_500_000 {\n            acc = \
         acc.wrapping_mul(31).wrapping_add(i);\n            i += 1;\n        }\n        acc\n\
         \x20   };\n    \"beta-two\"",
    );
    // rustc has read the sources once it reports the slow constant: these saves are too late
    // for this build.
    session.wait_stderr(EDIT_DEADLINE, "constant evaluation is taking a long time");
    project.edit("src/main.rs", "\"beta-two\"", "\"beta-three\"");
    project.edit("src/main.rs", "\"beta-three\"", "\"beta-four\"");
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["beta-four"]);
    let stderr = session.stderr();
    assert_eq!(status_messages(&stderr, "Patching").len(), 2, "{stderr}");
    assert!(line.contains("gen=2"), "{line}");
    assert!(
        !session.stdout().contains("beta-three"),
        "an intermediate save was built"
    );
}

/// A save that lands between the two builds of one patch (a new item outside any function
/// calls for the second, with every function compiled, and it reads the files as they are
/// then): the patch is applied, the save is built again once after it, and no intermediate
/// save ever runs. Which of the two patches first shows the last save depends on when rustc
/// reads the files, so both are accepted.
#[test]
fn a_save_between_the_two_builds_of_a_patch_is_built_once_more() {
    let (project, mut session) = start();
    project.edit_all(
        "src/main.rs",
        &[
            (
                "fn main() {",
                "#[allow(long_running_const_eval)]\nconst _: u64 = {\n    let mut i = 0u64;\n    \
                 let mut acc = 0u64;\n    while i < 1_500_000 {\n        acc = \
                 acc.wrapping_mul(31).wrapping_add(i);\n        i += 1;\n    }\n    acc\n};\n\nfn \
                 main() {",
            ),
            ("\"beta-one\"", "\"beta-two\""),
        ],
    );
    session.wait_stderr(EDIT_DEADLINE, "constant evaluation is taking a long time");
    project.edit("src/main.rs", "\"beta-two\"", "\"beta-three\"");
    project.edit("src/main.rs", "\"beta-three\"", "\"beta-four\"");
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-four"]);
    session.wait_stderr(EDIT_DEADLINE, "generation 2");
    let stderr = session.stderr();
    assert_eq!(status_messages(&stderr, "Patching").len(), 2, "{stderr}");
    assert!(!stderr.contains("Restarting"), "{stderr}");
    assert!(
        !session.stdout().contains("beta-three"),
        "an intermediate save was built"
    );
    let line = wait_tick(&mut session, EDIT_DEADLINE, &["gen=2"]);
    assert!(line.contains("beta-four"), "{line}");
}

/// `--poll` (for file systems without inotify) sees a save and patches it, once.
#[test]
fn poll_mode_patches_a_save() {
    let project = Project::copy("gate");
    let mut session = project.run(&["--poll"]);
    wait_tick(&mut session, START_DEADLINE, &["beta-one"]);
    session.wait_stderr(START_DEADLINE, "    Watching ");
    project.edit("src/main.rs", "\"beta-one\"", "\"beta-two\"");
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-two", "gen=1"]);
    project.edit("src/main.rs", "\"beta-two\"", "\"beta-three\"");
    wait_tick(&mut session, EDIT_DEADLINE, &["beta-three", "gen=2"]);
    assert_eq!(status_messages(&session.stderr(), "Patching").len(), 2);
}
