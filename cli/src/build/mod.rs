//! Building the host and the patches: capture of the final crate's rustc command, its replays,
//! and the linker wrapper.

pub(crate) mod agent;
pub(crate) mod args;
pub(crate) mod capture;
pub(crate) mod compile;
pub(crate) mod crates;
pub(crate) mod host;
pub(crate) mod link;
pub(crate) mod patch;
pub(crate) mod replay;
pub(crate) mod shim;
pub(crate) mod statics;
pub(crate) mod thin;
