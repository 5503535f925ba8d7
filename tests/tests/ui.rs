//! Diagnostics of `#[hot]` and `persist!` for what they cannot do: each `tests/ui/*.rs` must
//! fail to compile with exactly the error in its `.stderr` file (run with `TRYBUILD=overwrite`
//! to accept new output after a deliberate change).

#[test]
fn unsupported_items_fail_with_a_clear_error() {
    trybuild::TestCases::new().compile_fail("ui/*.rs");
}
