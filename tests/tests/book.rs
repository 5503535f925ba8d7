//! The book's includes resolve, and the check that says so can fail.

use hotswap_tests::book::broken_includes;
use hotswap_tests::workspace_root;

#[test]
fn every_book_include_names_an_existing_file_and_anchor() {
    let problems = broken_includes(&workspace_root().join("book/src"));
    assert!(
        problems.is_empty(),
        "broken includes:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_include_check_fails_when_an_anchor_is_removed_or_empty() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("book/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("page.md"),
        "```rust\n{{#include ../code.rs:present}}\n{{#include ../code.rs:gone}}\n\
         {{#include ../code.rs:empty}}\n{{#include ../missing.rs}}\n```\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("book/code.rs"),
        "// ANCHOR: present\nfn f() {}\n// ANCHOR_END: present\n// ANCHOR: empty\n// ANCHOR_END: empty\n",
    )
    .unwrap();
    assert_eq!(
        broken_includes(&src),
        [
            "page.md: anchor `gone` is missing from `../code.rs`",
            "page.md: anchor `empty` in `../code.rs` is empty",
            "page.md: included file `../missing.rs` does not exist",
        ]
    );
}

/// README.md's Rust listing is the time service's `format_time`, to the letter.
#[test]
fn readme_listing_is_the_compiled_example() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples/time-service/src/main.rs")).unwrap();
    let anchored = example
        .split("// ANCHOR: format_time\n")
        .nth(1)
        .and_then(|rest| rest.split("// ANCHOR_END: format_time").next())
        .expect("the example has the `format_time` anchor");
    let listing = readme
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has a Rust listing");
    assert_eq!(listing, anchored);
}
