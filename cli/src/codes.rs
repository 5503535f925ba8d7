//! The catalogue of rude edits and other outcomes that need the user's attention, each with a
//! stable code (`HS0101`), in the style of .NET Hot Reload's `ENC` diagnostics: the code is
//! printed in the status line (`Refused [HS0101] ...`), carried by the JSON event (`"code"`),
//! and explained, with what to do, by an entry of the book's troubleshooting chapter
//! (`### HS0101 ...`). A test keeps the catalogue and the book in step.
//!
//! Codes are grouped by hundreds: `HS01xx` the gate refused a patch (nothing was loaded),
//! `HS02xx` code that a patch cannot carry, `HS03xx` changes outside the code, `HS04xx` a
//! checked patch the program did not apply, `HS05xx` warnings, `HS06xx` what new code did once
//! it ran. A code, once published, keeps its meaning; a retired code is not reused.

use std::fmt;

use serde::Serialize;

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Code {
    /// A hot function's signature changed.
    SignatureChanged,
    /// A type the running program holds changed its layout.
    LayoutChanged,
    /// A `persist!` static's type changed its layout.
    PersistedLayoutChanged,
    /// A hot function of the running code is gone from the new code.
    HotFunctionGone,
    /// The patch needs a symbol that the running program does not define.
    UnresolvedSymbol,
    /// The layouts could not be read, so the patch could not be checked.
    Unchecked,
    /// A redirected closure's or `async fn`'s state (captures, locals across an `.await`)
    /// changed its layout.
    StateLayoutChanged,
    /// A function to redirect uses a static in a way a patch cannot share (`static mut`).
    StaticUnshared,
    /// A changed function's entry cannot be redirected.
    Unredirectable,
    /// A static's initial value changed, which redirection cannot bring into the running
    /// program.
    StaticValueChanged,
    /// The program's global allocator (`#[global_allocator]`) was added, removed or replaced,
    /// or a patch would have its own copy of its state.
    GlobalAllocatorChanged,
    /// Only code that no hot function reaches changed (start-up code).
    StartupOnly,
    /// A changed file belongs to no crate that a patch rebuilds.
    OutsideCrate,
    /// A local procedural macro crate changed.
    ProcMacro,
    /// A manifest, lockfile, build script or cargo configuration changed.
    BuildFile,
    /// The Rust toolchain changed since the program was built.
    Toolchain,
    /// The program is not running: it exited, or was never started.
    NotRunning,
    /// A checked patch was not applied by the program.
    NotApplied,
    /// Statics of the crate start fresh in the new code.
    FreshStatics,
    /// The program never connected to the session.
    NeverConnected,
    /// `--redirect` in an optimised build: hot functions only.
    RedirectOff,
    /// A patched hot function panicked on its first call and was rolled back.
    RolledBack,
    /// A patched hot function panicked on its first call; the new code stays.
    Panicked,
}

impl Code {
    /// Every code, in catalogue order.
    #[cfg(test)]
    pub(crate) const ALL: [Code; 23] = [
        Code::SignatureChanged,
        Code::LayoutChanged,
        Code::PersistedLayoutChanged,
        Code::HotFunctionGone,
        Code::UnresolvedSymbol,
        Code::Unchecked,
        Code::StateLayoutChanged,
        Code::StaticUnshared,
        Code::Unredirectable,
        Code::StaticValueChanged,
        Code::GlobalAllocatorChanged,
        Code::StartupOnly,
        Code::OutsideCrate,
        Code::ProcMacro,
        Code::BuildFile,
        Code::Toolchain,
        Code::NotRunning,
        Code::NotApplied,
        Code::FreshStatics,
        Code::NeverConnected,
        Code::RedirectOff,
        Code::RolledBack,
        Code::Panicked,
    ];

    /// The code as printed: `HS0101`.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Code::SignatureChanged => "HS0101",
            Code::LayoutChanged => "HS0102",
            Code::PersistedLayoutChanged => "HS0103",
            Code::HotFunctionGone => "HS0104",
            Code::UnresolvedSymbol => "HS0105",
            Code::Unchecked => "HS0106",
            Code::StateLayoutChanged => "HS0107",
            Code::StaticUnshared => "HS0108",
            Code::Unredirectable => "HS0109",
            Code::StaticValueChanged => "HS0110",
            Code::GlobalAllocatorChanged => "HS0111",
            Code::StartupOnly => "HS0201",
            Code::OutsideCrate => "HS0202",
            Code::ProcMacro => "HS0203",
            Code::BuildFile => "HS0301",
            Code::Toolchain => "HS0302",
            Code::NotRunning => "HS0303",
            Code::NotApplied => "HS0401",
            Code::FreshStatics => "HS0501",
            Code::NeverConnected => "HS0502",
            Code::RedirectOff => "HS0503",
            Code::RolledBack => "HS0601",
            Code::Panicked => "HS0602",
        }
    }

    /// A few words for the book's heading: `signature changed`.
    #[cfg(test)]
    pub(crate) fn title(self) -> &'static str {
        match self {
            Code::SignatureChanged => "signature changed",
            Code::LayoutChanged => "layout changed",
            Code::PersistedLayoutChanged => "persisted layout changed",
            Code::HotFunctionGone => "hot function gone",
            Code::UnresolvedSymbol => "unresolved symbol",
            Code::Unchecked => "layouts cannot be checked",
            Code::StateLayoutChanged => "closure or async state changed",
            Code::StaticUnshared => "static cannot be shared",
            Code::Unredirectable => "function cannot be redirected",
            Code::StaticValueChanged => "static value changed",
            Code::GlobalAllocatorChanged => "global allocator changed or copied",
            Code::StartupOnly => "start-up code changed",
            Code::OutsideCrate => "file outside the patched crates",
            Code::ProcMacro => "procedural macro changed",
            Code::BuildFile => "manifest or build script changed",
            Code::Toolchain => "toolchain changed",
            Code::NotRunning => "program not running",
            Code::NotApplied => "patch not applied",
            Code::FreshStatics => "statics start fresh",
            Code::NeverConnected => "program never connected",
            Code::RedirectOff => "no redirection in optimised builds",
            Code::RolledBack => "rolled back",
            Code::Panicked => "new code panicked",
        }
    }

    /// `message` with the code in front, as status lines show it: `[HS0101] message`.
    pub(crate) fn tag(self, message: impl fmt::Display) -> String {
        format!("[{self}] {message}")
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The codes the troubleshooting chapter has an entry for: its `### HSnnnn title` headings.
    fn book_entries() -> BTreeSet<(String, String)> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../book/src/troubleshooting.md"
        );
        let text = std::fs::read_to_string(path).expect("the book's troubleshooting chapter");
        text.lines()
            .filter_map(|line| line.strip_prefix("### HS"))
            .map(|rest| {
                let (number, title) = rest.split_once(' ').unwrap_or((rest, ""));
                (format!("HS{number}"), title.to_owned())
            })
            .collect()
    }

    #[test]
    fn every_code_has_a_book_entry_and_every_entry_a_code() {
        let catalogue: BTreeSet<(String, String)> = Code::ALL
            .iter()
            .map(|code| (code.id().to_owned(), code.title().to_owned()))
            .collect();
        assert_eq!(catalogue, book_entries());
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let ids: BTreeSet<&str> = Code::ALL.iter().map(|code| code.id()).collect();
        assert_eq!(ids.len(), Code::ALL.len());
        for id in ids {
            assert!(
                id.len() == 6
                    && id.starts_with("HS")
                    && id[2..].bytes().all(|b| b.is_ascii_digit()),
                "{id}"
            );
        }
        assert_eq!(
            Code::SignatureChanged.tag("hot fn `a` changed"),
            "[HS0101] hot fn `a` changed"
        );
    }
}
