//! Reading hot-function records (see `hotswap::record`) from a host or a patch, through their
//! exported symbols, without loading anything.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use object::{Object, ObjectSection, ObjectSymbol};

use hotswap::record::{LAYOUT_PREFIX, RECORD_PREFIX};

/// One hot function as compiled: its signature and the layout of every type it mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The hot function's path, `crate::module::name`.
    pub(crate) path: String,
    /// The signature as written, `fn name(arg: Type) -> Ret`.
    pub(crate) signature: String,
    /// The signature without argument names, `fn(Type) -> Ret`: what the gate compares.
    pub(crate) shape: String,
    /// Where it is defined, `src/main.rs:17`.
    pub(crate) location: String,
    /// Every mentioned type with its size and alignment in bytes.
    pub(crate) types: Vec<(String, u64, u64)>,
}

impl Record {
    /// Parses a record's text.
    ///
    /// # Errors
    ///
    /// When the text is not a version-1 record.
    pub(crate) fn parse(bytes: &[u8]) -> anyhow::Result<Record> {
        let text = std::str::from_utf8(bytes).context("a hot-function record is not UTF-8")?;
        let mut lines = text.lines();
        if lines.next() != Some("hotswap-record 1") {
            bail!("unknown hot-function record format");
        }
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|line| line.strip_prefix(name))
                .map(str::to_owned)
                .with_context(|| format!("a hot-function record lacks its `{}` line", name.trim()))
        };
        let path = field("fn ")?;
        let signature = field("sig ")?;
        let shape = field("shape ")?;
        let location = field("at ")?;
        let mut types = Vec::new();
        for line in lines {
            let parsed = line.strip_prefix("type ").and_then(|rest| {
                let (rest, align) = rest.rsplit_once(' ')?;
                let (ty, size) = rest.rsplit_once(' ')?;
                Some((ty.to_owned(), size.parse().ok()?, align.parse().ok()?))
            });
            types.push(parsed.with_context(|| format!("malformed record line `{line}`"))?);
        }
        Ok(Record {
            path,
            signature,
            shape,
            location,
            types,
        })
    }
}

/// Every record the object file exports, by hot-function path.
///
/// # Errors
///
/// When a record symbol points outside its section or its text is malformed.
pub(crate) fn read(file: &object::File<'_>) -> anyhow::Result<BTreeMap<String, Record>> {
    let mut records = BTreeMap::new();
    for (path, bytes) in exported_data(file, RECORD_PREFIX) {
        let bytes =
            bytes.with_context(|| format!("cannot read the record of hot function `{path}`"))?;
        let record = Record::parse(bytes)
            .with_context(|| format!("cannot read the record of hot function `{path}`"))?;
        records.insert(path.to_owned(), record);
    }
    Ok(records)
}

/// The size and alignment of every `persist!` static the object file exports, by
/// `<module path>::<NAME>$<type hash>`.
///
/// # Errors
///
/// When a layout symbol points outside its section or is not two `u64`s.
pub(crate) fn read_layouts(
    file: &object::File<'_>,
) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let mut layouts = BTreeMap::new();
    for (path, bytes) in exported_data(file, LAYOUT_PREFIX) {
        let bytes = bytes
            .with_context(|| format!("cannot read the layout of persisted static `{path}`"))?;
        let (Some(size), Some(align)) = (bytes.get(..8), bytes.get(8..16)) else {
            bail!("the layout of persisted static `{path}` is not two numbers");
        };
        let number = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
        layouts.insert(path.to_owned(), (number(size), number(align)));
    }
    Ok(layouts)
}

/// Every defined dynamic symbol named `prefix` followed by a path: the path, and the bytes the
/// symbol covers (or why they cannot be read).
fn exported_data<'data>(
    file: &object::File<'data>,
    prefix: &str,
) -> Vec<(String, anyhow::Result<&'data [u8]>)> {
    file.dynamic_symbols()
        .filter(|symbol| symbol.is_definition())
        .filter_map(|symbol| {
            let path = symbol.name().ok()?.strip_prefix(prefix)?.to_owned();
            Some((path, symbol_bytes(file, &symbol)))
        })
        .collect()
}

/// The bytes a defined data symbol covers, bounds-checked against its section.
fn symbol_bytes<'data>(
    file: &object::File<'data>,
    symbol: &object::Symbol<'data, '_>,
) -> anyhow::Result<&'data [u8]> {
    let index = symbol
        .section_index()
        .context("the symbol is not in a section")?;
    let section = file.section_by_index(index)?;
    let data = section.data()?;
    let start = symbol
        .address()
        .checked_sub(section.address())
        .context("the symbol lies before its section")?;
    let end = start
        .checked_add(symbol.size())
        .context("the symbol's size overflows")?;
    let range = usize::try_from(start)?..usize::try_from(end)?;
    data.get(range)
        .context("the symbol lies outside its section's data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse() {
        let record = Record::parse(
            b"hotswap-record 1\nfn app::update\nsig fn update(state: &mut State) -> u8\n\
              shape fn(&mut State) -> u8\n\
              at src/main.rs:12\ntype &mut State 8 8\ntype State 24 8\n",
        )
        .unwrap();
        assert_eq!(record.path, "app::update");
        assert_eq!(record.signature, "fn update(state: &mut State) -> u8");
        assert_eq!(record.location, "src/main.rs:12");
        assert_eq!(
            record.types,
            [("&mut State".to_owned(), 8, 8), ("State".to_owned(), 24, 8)]
        );
    }

    #[test]
    fn malformed_records_are_errors() {
        for bytes in [
            &b""[..],
            b"hotswap-record 2\n",
            b"hotswap-record 1\nfn a\n",
            b"hotswap-record 1\nfn a\nsig b\nshape b\nat c\ntype X 1\n",
            b"hotswap-record 1\nfn a\nsig b\nat c\n",
            b"\xff\xfe",
        ] {
            assert!(Record::parse(bytes).is_err(), "{bytes:?}");
        }
    }
}
