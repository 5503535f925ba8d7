//! A small multi-threaded HTTP service, the seed scenario of cargo-hotswap.
//!
//! `GET /time` answers the current time through the hot function [`format_time`];
//! `GET /pid` answers the process id. Run it with `cargo hotswap run`, change the format in
//! `format_time`, save, and `/time` answers in the new format from the same process.
//!
//! Listens on `127.0.0.1:$PORT` (`PORT` from the environment, default 3000; `0` picks a free
//! port) and prints the address it listens on.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{SystemTime, UNIX_EPOCH};

// ANCHOR: format_time
/// The answer of `GET /time`: the time of day (UTC) of `now`.
#[hotswap::hot]
fn format_time(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (hours, minutes, seconds) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    format!("The time is {hours:02}:{minutes:02}:{seconds:02} UTC")
}
// ANCHOR_END: format_time

/// The status line and body answering `path`.
fn respond(path: &str) -> (&'static str, String) {
    match path {
        "/time" => ("200 OK", format_time(SystemTime::now())),
        "/pid" => ("200 OK", std::process::id().to_string()),
        _ => ("404 Not Found", "not found".to_owned()),
    }
}

/// Reads one request from `stream` and answers it; the connection is closed afterwards.
fn serve(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers: this service needs none of them.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = respond(path);
    log::debug!("GET {path} -> {status}");
    let mut stream = &stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}\n",
        body.len() + 1
    )?;
    stream.flush()
}

/// Prints `log` records at `info` and above to stderr.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("[{}] {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

fn main() -> std::io::Result<()> {
    log::set_logger(&StderrLogger).expect("no other logger is installed");
    log::set_max_level(log::LevelFilter::Info);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                std::thread::spawn(move || {
                    if let Err(err) = serve(stream) {
                        log::warn!("connection failed: {err}");
                    }
                });
            }
            Err(err) => log::warn!("accept failed: {err}"),
        }
    }
    Ok(())
}
