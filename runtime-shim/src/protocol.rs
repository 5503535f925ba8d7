//! The wire protocol between `cargo hotswap run` (the tool) and the agent in the host.
//!
//! One message per line over a Unix stream socket that the tool listens on and the host connects
//! to. A line is UTF-8 fields separated by tabs; the first field names the message. Inside a field
//! `\` `tab` and `newline` are escaped as `\\`, `\t`, `\n`. The tool and the agent both use this
//! module, so the two sides cannot drift apart.
//!
//! ```text
//! host -> tool   hello        <pid> <build id>
//! tool -> host   patch        <patch id> <build id> <path of the patch file> <digest, hex>
//!                             <number of hot functions> <hot function>...
//!                             <number of redirections> <redirection>...
//!                             <number of bindings> <binding>... <changed function>...
//! host -> tool   applied      <patch id> <generation> <load time, µs> <pause, µs>
//!                             <redirected entries> <hot function>...
//! host -> tool   failed       <patch id> <reason>
//! host -> tool   rolled-back  <generation> <hot function> <reason>
//! host -> tool   panicked     <generation> <hot function> <reason>
//! ```
//!
//! `rolled-back` and `panicked` are not answers: the host sends them whenever a patched hot
//! function panics on its first call, with or without the rollback it asked for.
//!
//! A hot function is named by its path as `module_path!()` spells it, for example
//! `time_service::format_time`; [`impl_symbol`] and [`slot_symbol`] give its exported symbols.
//!
//! A redirection is one field, `<from>:<at>:<size>:<to>:<at bytes>:<to bytes>[:<into>]` (see
//! [`Redirect`]): numbers in hex but `from` and `into`, bytes as hex pairs. A binding is one field,
//! `<slot>:<value>:<from>:<at>:<size>` (see [`Bind`]), numbers in hex but `from`.

use std::fmt;
use std::io::BufRead;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// The longest line either side reads, in bytes (its newline included). A longer line is read
/// to its end and dropped, never kept in memory.
pub const MAX_LINE: usize = 1 << 20;

/// Environment variable naming the tool's Unix socket. Without it the agent does nothing.
pub const SOCKET_ENV: &str = "HOTSWAP_AGENT_SOCKET";
/// Environment variable carrying the id of the host build the process was started from.
pub const BUILD_ID_ENV: &str = "HOTSWAP_BUILD_ID";
/// Environment variable naming the session's directory: the agent loads patches from there
/// only.
pub const PATCH_DIR_ENV: &str = "HOTSWAP_PATCH_DIR";

/// Prefix of the exported symbol of a hot function's body (followed by its path).
pub const IMPL_PREFIX: &str = "__hotswap_impl$";
/// Prefix of the exported symbol of a hot function's slot (followed by its path).
pub const SLOT_PREFIX: &str = "__hotswap_slot$";

/// The exported symbol of the body of the hot function `path` (`a::b::f`).
pub fn impl_symbol(path: &str) -> String {
    format!("{IMPL_PREFIX}{path}")
}

/// The exported symbol of the slot of the hot function `path` (`a::b::f`).
pub fn slot_symbol(path: &str) -> String {
    format!("{SLOT_PREFIX}{path}")
}

/// A message from the host's agent to the tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMessage {
    /// Sent once, right after connecting.
    Hello {
        /// Process id of the host.
        pid: u32,
        /// The value of [`BUILD_ID_ENV`] the host was started with.
        build_id: String,
    },
    /// A patch was loaded and every listed slot now points into it.
    Applied {
        /// The id the tool gave the patch.
        patch_id: u64,
        /// The host's generation after applying it (see `hotswap::generation`).
        generation: u64,
        /// Time from receiving the message to the last slot store, in microseconds.
        load_micros: u64,
        /// How long the program's other threads were stopped to redirect entries, in
        /// microseconds (0 when none were redirected).
        pause_micros: u64,
        /// How many function entries now jump into the patch.
        redirected: u64,
        /// Paths of the hot functions whose slots were swapped.
        functions: Vec<String>,
    },
    /// The patch was not applied; every slot is as it was.
    Failed {
        /// The id the tool gave the patch.
        patch_id: u64,
        /// Why, as a lowercase message fragment.
        reason: String,
    },
    /// A patched hot function panicked on its first call, and the slots of the patch that
    /// brought it were restored to the code before it (rollback was enabled).
    RolledBack {
        /// The host's generation after the rollback.
        generation: u64,
        /// Path of the hot function that panicked.
        function: String,
        /// The panic's message.
        reason: String,
    },
    /// A patched hot function panicked on its first call; rollback was not enabled, so the new
    /// code stays in place.
    Panicked {
        /// The host's generation (unchanged).
        generation: u64,
        /// Path of the hot function that panicked.
        function: String,
        /// The panic's message.
        reason: String,
    },
}

/// A message from the tool to the host's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolMessage {
    /// Load the patch at `path` and point the slots of `functions` at its bodies.
    Patch {
        /// Increasing id chosen by the tool, echoed in the answer.
        patch_id: u64,
        /// The host build this patch was linked against; a host of another build refuses it.
        build_id: String,
        /// Absolute path of the patch file, never used for another patch.
        path: PathBuf,
        /// [`digest`] of the file's bytes as the tool checked them: the agent loads the file
        /// only if the bytes it opened have the same digest.
        digest: u64,
        /// Paths of the hot functions the patch defines.
        functions: Vec<String>,
        /// Function entries to redirect into the patch (entry redirection, see [`Redirect`]).
        redirects: Vec<Redirect>,
        /// GOT entries of the patch to point at the running program's statics (see [`Bind`]).
        binds: Vec<Bind>,
        /// Display names of the functions whose code changed (for `hotswap::on_patch`).
        changed: Vec<String>,
    },
}

/// One function entry that a patch redirects: calls of the function at `at` in the module
/// `from` continue at `to` in the patch. Addresses are as the files' symbol tables give them;
/// the agent adds each module's load bias. The expected bytes guard against a wrong address:
/// the agent writes only where memory holds `at_bytes` (or a jump it wrote itself) and jumps
/// only to where memory holds `to_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The module holding the entry: 0 for the executable, else the id of an earlier patch.
    pub from: u64,
    /// The function's address in `from`'s file (its symbol's value).
    pub at: u64,
    /// The function's size in bytes (its symbol's size).
    pub size: u64,
    /// The new body's address in the patch file (its symbol's value), or in the module `into`.
    pub to: u64,
    /// The module holding `to` when it is not the patch being applied: 0 for the executable,
    /// else an earlier patch's id. A patch's own accessor of a thread-local is redirected to
    /// the running program's, so that the thread-local stays the program's.
    pub into: Option<u64>,
    /// The entry's first bytes as `from`'s file holds them (at most 8, at most `size`).
    pub at_bytes: Vec<u8>,
    /// The new body's first bytes as the patch file holds them (at most 8).
    pub to_bytes: Vec<u8>,
}

/// One GOT entry of the patch that is made to point at a static of the running program, so
/// that the patch's code shares it instead of using its own fresh copy: the entry at `slot` in
/// the patch, which the loader set to the patch's own static at `value`, is set to the static
/// at `at` (`size` bytes) in the module `from`. Addresses are as the files give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The GOT entry's address in the patch file.
    pub slot: u64,
    /// The address in the patch file of the patch's own static, which the entry holds once
    /// loaded: the agent rebinds only an entry that holds it.
    pub value: u64,
    /// The module whose static the entry is to point at: 0 for the executable, else the id
    /// of an earlier patch.
    pub from: u64,
    /// The static's address in `from`'s file.
    pub at: u64,
    /// The static's size in bytes, the same in both.
    pub size: u64,
}

impl Bind {
    /// The binding as one protocol field.
    fn encode(&self) -> String {
        format!(
            "{:x}:{:x}:{}:{:x}:{:x}",
            self.slot, self.value, self.from, self.at, self.size
        )
    }

    /// Parses one protocol field; `None` if it is not a binding.
    fn decode(field: &str) -> Option<Bind> {
        let parts: Vec<&str> = field.split(':').collect();
        let [slot, value, from, at, size] = parts[..] else {
            return None;
        };
        Some(Bind {
            slot: u64::from_str_radix(slot, 16).ok()?,
            value: u64::from_str_radix(value, 16).ok()?,
            from: from.parse().ok()?,
            at: u64::from_str_radix(at, 16).ok()?,
            size: u64::from_str_radix(size, 16).ok()?,
        })
    }
}

impl Redirect {
    /// The redirection as one protocol field.
    fn encode(&self) -> String {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let into = self.into.map(|into| format!(":{into}")).unwrap_or_default();
        format!(
            "{}:{:x}:{:x}:{:x}:{}:{}{into}",
            self.from,
            self.at,
            self.size,
            self.to,
            hex(&self.at_bytes),
            hex(&self.to_bytes)
        )
    }

    /// Parses one protocol field; `None` if it is not a redirection.
    fn decode(field: &str) -> Option<Redirect> {
        let parts: Vec<&str> = field.split(':').collect();
        let (fields, into) = match parts.len() {
            6 => (&parts[..], None),
            7 => (&parts[..6], Some(parts[6].parse().ok()?)),
            _ => return None,
        };
        let [from, at, size, to, at_bytes, to_bytes] = fields[..] else {
            return None;
        };
        let bytes = |text: &str| -> Option<Vec<u8>> {
            if !text.len().is_multiple_of(2) || text.len() > 16 {
                return None;
            }
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                .collect()
        };
        Some(Redirect {
            from: from.parse().ok()?,
            at: u64::from_str_radix(at, 16).ok()?,
            size: u64::from_str_radix(size, 16).ok()?,
            to: u64::from_str_radix(to, 16).ok()?,
            at_bytes: bytes(at_bytes)?,
            to_bytes: bytes(to_bytes)?,
            into,
        })
    }
}

/// Why a line could not be read; after [`LineError::TooLong`] and [`LineError::NotUtf8`] the
/// stream is still usable, at the start of the next line.
#[derive(Debug)]
pub enum LineError {
    /// The line is longer than [`MAX_LINE`] bytes.
    TooLong,
    /// The line is not UTF-8.
    NotUtf8,
    /// Reading failed; the stream is not usable.
    Io(std::io::Error),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong => write!(f, "a line is longer than {MAX_LINE} bytes"),
            LineError::NotUtf8 => write!(f, "a line is not UTF-8"),
            LineError::Io(err) => write!(f, "{err}"),
        }
    }
}

/// Reads the next line of at most [`MAX_LINE`] bytes into `line` (replacing its content),
/// without its newline. Returns `Ok(false)` at the end of the stream.
///
/// # Errors
///
/// [`LineError::TooLong`] or [`LineError::NotUtf8`] for a line that is dropped (the next call
/// reads the line after it), [`LineError::Io`] when reading fails.
pub fn read_line(reader: &mut impl BufRead, line: &mut String) -> Result<bool, LineError> {
    let mut bytes = Vec::new();
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(LineError::Io(err)),
        };
        if buffer.is_empty() {
            if !read_any {
                return Ok(false);
            }
            break;
        }
        read_any = true;
        let (chunk, done) = match buffer.iter().position(|b| *b == b'\n') {
            Some(at) => (&buffer[..at], at + 1),
            None => (buffer, buffer.len()),
        };
        if bytes.len() + chunk.len() >= MAX_LINE {
            too_long = true;
            bytes = Vec::new();
        } else if !too_long {
            bytes.extend_from_slice(chunk);
        }
        let ended = done > chunk.len();
        reader.consume(done);
        if ended {
            break;
        }
    }
    if too_long {
        return Err(LineError::TooLong);
    }
    *line = String::from_utf8(bytes).map_err(|_| LineError::NotUtf8)?;
    Ok(true)
}

/// The process id and user id of the process at the other end of `stream` (`SO_PEERCRED`), as
/// they were when it connected.
///
/// # Errors
///
/// When the kernel does not say.
pub fn peer(stream: &UnixStream) -> std::io::Result<(u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given, and the descriptor is
    // the stream's own, open for the call.
    let result = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((u32::try_from(cred.pid).unwrap_or(0), cred.uid))
}

/// The digest of a patch file's bytes that the tool sends with it: FNV-1a's offset basis and
/// prime applied to 64-bit little-endian words (the tail byte by byte), each step folded with
/// `h ^= h >> 32` so that a word's high bits reach the low ones. It ties the file the agent loads
/// to the bytes the tool checked. It is no defence against a forger (only the user can write the
/// session's directory); it catches a file that changed in between. Word-wise, it reads a
/// 4 MiB patch in a few milliseconds even where the runtime is compiled without optimisation.
pub fn digest(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let words = bytes.len() / 8 * 8;
    // Indexing, casts and shifts, no iterator, closure or conversion call: the runtime is
    // usually compiled without optimisation (a dev profile), where a call per byte or word would
    // cost several times the loop itself.
    let mut at = 0;
    while at < words {
        let b = &bytes[at..at + 8];
        let word = b[0] as u64
            | (b[1] as u64) << 8
            | (b[2] as u64) << 16
            | (b[3] as u64) << 24
            | (b[4] as u64) << 32
            | (b[5] as u64) << 40
            | (b[6] as u64) << 48
            | (b[7] as u64) << 56;
        hash = (hash ^ word).wrapping_mul(PRIME);
        hash ^= hash >> 32;
        at += 8;
    }
    bytes[words..].iter().fold(hash, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// The user id of this process.
pub fn own_uid() -> u32 {
    // SAFETY: `getuid` has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// A line that is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    line: String,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed message `{}`", self.line.escape_debug())
    }
}

impl std::error::Error for ProtocolError {}

impl HostMessage {
    /// The message as one line, with its trailing newline.
    pub fn encode(&self) -> String {
        match self {
            HostMessage::Hello { pid, build_id } => line(&["hello", &pid.to_string(), build_id]),
            HostMessage::Applied {
                patch_id,
                generation,
                load_micros,
                pause_micros,
                redirected,
                functions,
            } => {
                let mut fields = vec![
                    "applied".to_owned(),
                    patch_id.to_string(),
                    generation.to_string(),
                    load_micros.to_string(),
                    pause_micros.to_string(),
                    redirected.to_string(),
                ];
                fields.extend(functions.iter().cloned());
                line(&fields)
            }
            HostMessage::Failed { patch_id, reason } => {
                line(&["failed", &patch_id.to_string(), reason])
            }
            HostMessage::RolledBack {
                generation,
                function,
                reason,
            } => line(&["rolled-back", &generation.to_string(), function, reason]),
            HostMessage::Panicked {
                generation,
                function,
                reason,
            } => line(&["panicked", &generation.to_string(), function, reason]),
        }
    }

    /// Parses one line (with or without its newline).
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] quoting the line if it is not a host message.
    pub fn decode(text: &str) -> Result<Self, ProtocolError> {
        let fields = split(text);
        let err = || ProtocolError {
            line: text.to_owned(),
        };
        let num = |i: usize| -> Result<u64, ProtocolError> {
            fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(err)
        };
        match fields.first().map(String::as_str) {
            Some("hello") if fields.len() == 3 => Ok(HostMessage::Hello {
                pid: u32::try_from(num(1)?).map_err(|_| err())?,
                build_id: fields[2].clone(),
            }),
            Some("applied") if fields.len() >= 6 => Ok(HostMessage::Applied {
                patch_id: num(1)?,
                generation: num(2)?,
                load_micros: num(3)?,
                pause_micros: num(4)?,
                redirected: num(5)?,
                functions: fields[6..].to_vec(),
            }),
            Some("failed") if fields.len() == 3 => Ok(HostMessage::Failed {
                patch_id: num(1)?,
                reason: fields[2].clone(),
            }),
            Some("rolled-back") if fields.len() == 4 => Ok(HostMessage::RolledBack {
                generation: num(1)?,
                function: fields[2].clone(),
                reason: fields[3].clone(),
            }),
            Some("panicked") if fields.len() == 4 => Ok(HostMessage::Panicked {
                generation: num(1)?,
                function: fields[2].clone(),
                reason: fields[3].clone(),
            }),
            _ => Err(err()),
        }
    }
}

impl ToolMessage {
    /// The message as one line, with its trailing newline.
    pub fn encode(&self) -> String {
        match self {
            ToolMessage::Patch {
                patch_id,
                build_id,
                path,
                digest,
                functions,
                redirects,
                binds,
                changed,
            } => {
                let mut fields = vec![
                    "patch".to_owned(),
                    patch_id.to_string(),
                    build_id.clone(),
                    path.to_string_lossy().into_owned(),
                    format!("{digest:016x}"),
                    functions.len().to_string(),
                ];
                fields.extend(functions.iter().cloned());
                fields.push(redirects.len().to_string());
                fields.extend(redirects.iter().map(Redirect::encode));
                fields.push(binds.len().to_string());
                fields.extend(binds.iter().map(Bind::encode));
                fields.extend(changed.iter().cloned());
                line(&fields)
            }
        }
    }

    /// Parses one line (with or without its newline).
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] quoting the line if it is not a tool message.
    pub fn decode(text: &str) -> Result<Self, ProtocolError> {
        let fields = split(text);
        let err = || ProtocolError {
            line: text.to_owned(),
        };
        match fields.first().map(String::as_str) {
            Some("patch") if fields.len() >= 6 => {
                // A count field, then that many fields: their range.
                let counted = |at: usize| -> Result<std::ops::Range<usize>, ProtocolError> {
                    let count: usize =
                        fields.get(at).ok_or_else(err)?.parse().map_err(|_| err())?;
                    let end = count.checked_add(at + 1).filter(|end| *end <= fields.len());
                    Ok(at + 1..end.ok_or_else(err)?)
                };
                let functions = counted(5)?;
                let redirects = counted(functions.end)?;
                let binds = counted(redirects.end)?;
                Ok(ToolMessage::Patch {
                    patch_id: fields[1].parse().map_err(|_| err())?,
                    build_id: fields[2].clone(),
                    path: PathBuf::from(&fields[3]),
                    digest: u64::from_str_radix(&fields[4], 16).map_err(|_| err())?,
                    redirects: fields[redirects.clone()]
                        .iter()
                        .map(|field| Redirect::decode(field).ok_or_else(err))
                        .collect::<Result<_, _>>()?,
                    binds: fields[binds.clone()]
                        .iter()
                        .map(|field| Bind::decode(field).ok_or_else(err))
                        .collect::<Result<_, _>>()?,
                    changed: fields[binds.end..].to_vec(),
                    functions: fields[functions].to_vec(),
                })
            }
            _ => Err(err()),
        }
    }
}

/// Joins escaped fields with tabs and ends the line.
fn line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut out = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        for c in field.as_ref().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
    }
    out.push('\n');
    out
}

/// Splits a line into unescaped fields.
fn split(text: &str) -> Vec<String> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut fields = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("never empty");
        match c {
            '\t' => fields.push(String::new()),
            '\\' => match chars.next() {
                Some('t') => field.push('\t'),
                Some('n') => field.push('\n'),
                Some(other) => field.push(other),
                None => field.push('\\'),
            },
            c => field.push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_messages_round_trip() {
        let messages = [
            HostMessage::Hello {
                pid: 42,
                build_id: "b-1".into(),
            },
            HostMessage::Applied {
                patch_id: 3,
                generation: 2,
                load_micros: 180,
                pause_micros: 310,
                redirected: 4,
                functions: vec!["app::a".into(), "app::m::b".into()],
            },
            HostMessage::Failed {
                patch_id: 4,
                reason: "cannot open `/x\ty`:\nno such file \\ directory".into(),
            },
            HostMessage::RolledBack {
                generation: 3,
                function: "app::World::step".into(),
                reason: "attempt to divide by zero".into(),
            },
            HostMessage::Panicked {
                generation: 2,
                function: "app::tick".into(),
                reason: String::new(),
            },
        ];
        for message in messages {
            let line = message.encode();
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            assert_eq!(HostMessage::decode(&line), Ok(message));
        }
    }

    #[test]
    fn tool_messages_round_trip() {
        let redirect = |from: u64, size: u64| Redirect {
            from,
            at: 0x0184_89a0,
            size,
            to: 0xe8a0,
            at_bytes: vec![0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10][..size.min(8) as usize]
                .to_vec(),
            to_bytes: vec![0x50, 0x48, 0x8d, 0x05],
            into: (from == 3).then_some(0),
        };
        let bind = Bind {
            slot: 0x3ff8,
            value: 0x5010,
            from: 2,
            at: 0x0123_4560,
            size: 8,
        };
        for (functions, redirects, binds, changed) in [
            (
                vec!["app::render".into()],
                vec![redirect(0, 0x1f0), redirect(3, 2)],
                vec![bind.clone()],
                vec!["render".into(), "draw".into()],
            ),
            (vec![], vec![redirect(0, 1)], vec![], vec!["main".into()]),
            (
                vec!["app::a".into(), "app::b".into()],
                vec![],
                vec![],
                vec![],
            ),
            (vec![], vec![], vec![bind.clone(), bind.clone()], vec![]),
            (vec![], vec![], vec![], vec![]),
        ] {
            let message = ToolMessage::Patch {
                patch_id: 7,
                build_id: "b-9".into(),
                path: PathBuf::from("/tmp/session dir/patch-7.so"),
                digest: 0x0123_4567_89ab_cdef,
                functions,
                redirects,
                binds,
                changed,
            };
            assert_eq!(ToolMessage::decode(&message.encode()), Ok(message));
        }
    }

    #[test]
    fn any_changed_bit_or_length_changes_the_digest() {
        let bytes: Vec<u8> = (0..4099_u32).map(|i| (i * 7 % 251) as u8).collect();
        let original = digest(&bytes);
        // A bit of every position in a word, and the bytes of the tail.
        for at in [0, 7, 8, 1000, 4095, 4096, 4098] {
            for bit in [0, 3, 7] {
                let mut changed = bytes.clone();
                changed[at] ^= 1 << bit;
                assert_ne!(digest(&changed), original, "byte {at}, bit {bit}");
            }
        }
        assert_ne!(digest(&bytes[..4098]), original);
        assert_ne!(digest(&[0; 8]), digest(&[0; 16]));
        assert_eq!(digest(&bytes), original);
    }

    #[test]
    fn long_and_non_utf8_lines_are_dropped_and_the_next_line_read() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\n\xff\xfe\nhello\n");
        let mut reader = std::io::BufReader::with_capacity(4096, &input[..]);
        let mut line = String::new();
        assert!(matches!(
            read_line(&mut reader, &mut line),
            Err(LineError::TooLong)
        ));
        assert!(matches!(
            read_line(&mut reader, &mut line),
            Err(LineError::NotUtf8)
        ));
        assert!(read_line(&mut reader, &mut line).unwrap());
        assert_eq!(line, "hello");
        assert!(!read_line(&mut reader, &mut line).unwrap());
    }

    #[test]
    fn a_socket_pair_has_this_process_at_both_ends() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(peer(&a).unwrap(), (std::process::id(), own_uid()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any bytes: lines, errors for the lines that are no messages, never a panic.
        #[test]
        fn any_bytes_read_as_lines_or_errors(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
            let mut reader = std::io::BufReader::with_capacity(64, &bytes[..]);
            let mut line = String::new();
            for _ in 0..=bytes.len() {
                match read_line(&mut reader, &mut line) {
                    Ok(false) => break,
                    Ok(true) => {
                        proptest::prop_assert!(!line.contains('\n'));
                        let _ = ToolMessage::decode(&line);
                        let _ = HostMessage::decode(&line);
                    }
                    Err(LineError::Io(err)) => panic!("{err}"),
                    Err(_) => {}
                }
            }
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        for line in [
            "",
            "hello\t1",
            "applied\tx\t1\t2",
            "patch",
            "patch\t1\tb\t/p\t2\tapp::a",
            "patch\t1\tb\t/p\tx",
            "patch\t1\tb\t/p\t2\t0\t1\t0:10:5:20:55:5\t0",
            "patch\t1\tb\t/p\t2\t0\t1\t0:10:5:20:5:50\t0",
            "patch\t1\tb\t/p\t2\t0\t1\t0:10:5:20:000000000000000000:50\t0",
            "patch\t1\tb\t/p\t2\t0\t0\t1\t10:20:x:30:8",
            "patch\t1\tb\t/p\t2\t0\t0\t2\t10:20:0:30:8",
            "patch\t1\tb\t/p\t2\t0\t0",
            "rolled-back\t1\tapp::a",
            "bye\t1\n",
        ] {
            assert!(HostMessage::decode(line).is_err(), "{line:?}");
            assert!(ToolMessage::decode(line).is_err(), "{line:?}");
        }
        assert_eq!(
            HostMessage::decode("nope").unwrap_err().to_string(),
            "malformed message `nope`"
        );
    }
}
