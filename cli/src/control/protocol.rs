//! The control protocol between `cargo hotswap patch` (the client) and a `cargo hotswap run`
//! session, over the session's control socket: one JSON object a line, each at most
//! [`MAX_LINE`] bytes. The client sends one [`Request`]; the session replies with every line it
//! printed while serving it ([`Reply::Line`]), then one [`Reply::Answer`].

use std::io::{BufRead, Read};

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::output::Printed;

/// The longest line either side reads, in bytes (newline included): a longer one is an error,
/// not an allocation.
pub(crate) const MAX_LINE: u64 = 1 << 20;

/// What the client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub(crate) enum Request {
    /// Compare every watched file with the running code, rebuild and patch now.
    Patch,
}

/// How a request ended, which decides the client's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Verdict {
    /// The program applied a patch.
    Applied,
    /// No code changed: nothing to apply.
    Unchanged,
    /// The program was restarted with the current code (its state is lost).
    Restarted,
    /// The patch was refused before loading, or the program did not apply it.
    Refused,
    /// The patch, or the host for a restart, did not compile.
    BuildFailed,
    /// Anything else went wrong; the message says what.
    Failed,
}

impl Verdict {
    /// Whether the program runs the current code afterwards.
    pub(crate) fn is_success(self) -> bool {
        matches!(
            self,
            Verdict::Applied | Verdict::Unchanged | Verdict::Restarted
        )
    }
}

/// What the session sends back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub(crate) enum Reply {
    /// A line the session printed while it served the request (a status line, the compiler's
    /// diagnostics), for the client to print again.
    Line {
        /// The line.
        line: Printed,
    },
    /// How the request ended; the last reply.
    Answer {
        /// The outcome.
        verdict: Verdict,
    },
}

/// `message` as one line of the protocol.
pub(crate) fn encode<T: Serialize>(message: &T) -> String {
    let mut line = serde_json::to_string(message).expect("protocol messages serialize");
    line.push('\n');
    line
}

/// Reads one message; `None` at the end of the stream.
///
/// # Errors
///
/// When the line is longer than [`MAX_LINE`], is not UTF-8, or is not such a message.
pub(crate) fn read<T: DeserializeOwned>(reader: &mut impl BufRead) -> anyhow::Result<Option<T>> {
    let mut line = Vec::new();
    let read = reader
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .context("cannot read from the control socket")?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") && read as u64 == MAX_LINE {
        bail!("a control message is longer than {MAX_LINE} bytes");
    }
    let text = std::str::from_utf8(&line).context("a control message is not UTF-8")?;
    serde_json::from_str(text.trim_end())
        .map(Some)
        .with_context(|| format!("malformed control message `{}`", text.trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(message: T) {
        let line = encode(&message);
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line}"
        );
        let read: Option<T> = read(&mut line.as_bytes()).unwrap();
        assert_eq!(read, Some(message));
    }

    #[test]
    fn messages_round_trip() {
        round_trip(Request::Patch);
        round_trip(Reply::Line {
            line: Printed::Text {
                text: "error: expected expression, found `}`\n".into(),
            },
        });
        round_trip(Reply::Line {
            line: Printed::Warn {
                verb: "Refused".into(),
                message: "hot fn `a` changed its signature\n             was `fn a()`".into(),
            },
        });
        round_trip(Reply::Answer {
            verdict: Verdict::Refused,
        });
    }

    #[test]
    fn the_wire_format_is_one_json_object_a_line() {
        assert_eq!(encode(&Request::Patch), "{\"request\":\"patch\"}\n");
    }

    #[test]
    fn bad_lines_are_errors_and_the_end_is_none() {
        let empty: Option<Request> = read(&mut &b""[..]).unwrap();
        assert_eq!(empty, None);
        for bad in [&b"patch\n"[..], b"{\"request\":\"other\"}\n", b"\xff\n"] {
            assert!(read::<Request>(&mut &bad[..]).is_err(), "{bad:?}");
        }
        let long = vec![b'x'; MAX_LINE as usize + 10];
        assert!(read::<Request>(&mut &long[..]).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any bytes from the other end: messages or errors, never a panic.
        #[test]
        fn any_bytes_read_as_messages_or_errors(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ) {
            let mut reader = &bytes[..];
            for _ in 0..=bytes.len() {
                match read::<Reply>(&mut reader) {
                    Ok(None) | Err(_) => break,
                    Ok(Some(_)) => {}
                }
            }
            let _ = read::<Request>(&mut &bytes[..]);
        }
    }
}
