//! Hot-function records: the compile-time description of each hot function that the
//! compatibility gate of `cargo hotswap` compares between the host and a patch.
//!
//! `#[hot]` emits one record per hot function as an exported static byte array named
//! `__hotswap_record$<module path>::<name>`, built at compile time from [`Part`]s. It is UTF-8
//! text, one field a line:
//!
//! ```text
//! hotswap-record 1
//! fn time_service::format_time
//! sig fn format_time(now: SystemTime) -> String
//! shape fn(SystemTime) -> String
//! at src/main.rs:17
//! type SystemTime 16 8
//! type String 24 8
//! ```
//!
//! `type` lines give the size and alignment in bytes of every type the signature mentions:
//! arguments, the return type, and every type they reference or contain (`&mut State` gives both
//! `&mut State` and `State`). Being plain bytes without relocations, a record can be read
//! straight from the file through its symbol, before anything is loaded.

/// Prefix of a record's exported symbol (followed by the hot function's path).
pub const RECORD_PREFIX: &str = "__hotswap_record$";

/// Prefix of the exported symbol of a `persist!` static (followed by
/// `<module path>::<NAME>$<type hash>`).
pub const PERSIST_PREFIX: &str = "__hotswap_persist$";

/// Prefix of the exported layout of a `persist!` static: two native-endian `u64`s, its size and
/// alignment in bytes (followed by the same `<module path>::<NAME>$<type hash>`).
pub const LAYOUT_PREFIX: &str = "__hotswap_layout$";

/// A piece of a record: text, or a number written in decimal.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    /// Text, copied as is.
    Str(&'static str),
    /// A number, written in decimal.
    Num(usize),
}

/// The length in bytes of the record made of `parts`.
pub const fn record_len(parts: &[Part]) -> usize {
    let mut len = 0;
    let mut i = 0;
    while i < parts.len() {
        len += match parts[i] {
            Part::Str(s) => s.len(),
            Part::Num(n) => digits(n),
        };
        i += 1;
    }
    len
}

/// The record made of `parts`; `N` must be [`record_len`] of `parts` (else compilation fails).
pub const fn record<const N: usize>(parts: &[Part]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let mut i = 0;
    while i < parts.len() {
        match parts[i] {
            Part::Str(s) => {
                let bytes = s.as_bytes();
                let mut j = 0;
                while j < bytes.len() {
                    out[at] = bytes[j];
                    at += 1;
                    j += 1;
                }
            }
            Part::Num(n) => {
                let len = digits(n);
                let mut rest = n;
                let mut j = len;
                while j > 0 {
                    out[at + j - 1] = b'0' + (rest % 10) as u8;
                    rest /= 10;
                    j -= 1;
                }
                at += len;
            }
        }
        i += 1;
    }
    assert!(at == N, "record length mismatch");
    out
}

/// The number of decimal digits of `n`.
const fn digits(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_built_at_compile_time() {
        const PARTS: &[Part] = &[
            Part::Str("type String "),
            Part::Num(24),
            Part::Str(" "),
            Part::Num(8),
            Part::Str(" "),
            Part::Num(0),
            Part::Str(" "),
            Part::Num(1234567),
        ];
        const RECORD: [u8; record_len(PARTS)] = record(PARTS);
        assert_eq!(
            std::str::from_utf8(&RECORD).unwrap(),
            "type String 24 8 0 1234567"
        );
    }
}
