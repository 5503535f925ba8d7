//! The forms of `#[hotswap::hot]` that the book's chapter "Marking hot entry points" shows. The
//! walkthrough test builds this program with and without cargo-hotswap's expansion and runs it.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

// ANCHOR: free
/// A free function: the form `#[hot]` takes.
#[hotswap::hot]
fn greeting(name: &str) -> String {
    format!("hello, {name}")
}
// ANCHOR_END: free

// ANCHOR: module
mod render {
    /// Any visibility, in any module of the crate.
    #[hotswap::hot]
    pub(crate) fn title(count: usize) -> String {
        format!("{count} items")
    }
}
// ANCHOR_END: module

// ANCHOR: lifetimes
/// Borrowed arguments and results, with elided lifetimes.
#[hotswap::hot]
fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or("")
}

/// Named lifetime parameters.
#[hotswap::hot]
fn longer<'a>(a: &'a str, b: &'a str) -> &'a str {
    if b.len() > a.len() { b } else { a }
}
// ANCHOR_END: lifetimes

// ANCHOR: unsafe
/// An `unsafe fn` keeps its contract across patches.
///
/// # Safety
///
/// `ptr` must point to a live `u32`.
#[hotswap::hot]
unsafe fn read_counter(ptr: *const u32) -> u32 {
    // SAFETY: the caller guarantees that `ptr` points to a live `u32`.
    unsafe { *ptr }
}
// ANCHOR_END: unsafe

// ANCHOR: dyn
/// A trait object instead of `impl Trait`: its type is the same in every version.
#[hotswap::hot]
fn shouter() -> Box<dyn Fn(&str) -> String> {
    Box::new(|text| text.to_uppercase())
}
// ANCHOR_END: dyn

// ANCHOR: async
/// An async handler, marked as it is written: each call runs the newest body.
#[hotswap::hot]
async fn handle(user: String) -> String {
    let unread = fetch_unread(&user).await;
    format!("{user}: {unread} unread")
}

/// Borrowed arguments and a receiver work too.
struct Inbox {
    owner: String,
}

#[hotswap::hot]
impl Inbox {
    async fn greet(&self, visitor: &str) -> String {
        format!("{visitor} visits {}", self.owner)
    }
}
// ANCHOR_END: async

// ANCHOR: generic
/// The hot part of a generic function: one hot function for the type the program uses.
#[hotswap::hot]
fn total_f64(values: &[f64]) -> f64 {
    values.iter().sum()
}

fn total<T: Copy + Into<f64>>(values: &[T]) -> f64 {
    let values: Vec<f64> = values.iter().map(|v| (*v).into()).collect();
    total_f64(&values)
}
// ANCHOR_END: generic

// ANCHOR: method
struct Counter {
    count: u64,
}

/// Every method of the block is hot.
#[hotswap::hot]
impl Counter {
    fn tick(&mut self) -> u64 {
        self.count += 1;
        self.count
    }
}

/// A trait impl: its methods are hot, and callers reach them as before (through a generic, a
/// `dyn Display` or `format!`).
#[hotswap::hot]
impl std::fmt::Display for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ticks", self.count)
    }
}

/// A type that borrows, with its lifetime on the block.
struct Page<'a> {
    title: &'a str,
}

#[hotswap::hot]
impl<'a> Page<'a> {
    fn heading(&self) -> String {
        format!("# {}", self.title)
    }
}
// ANCHOR_END: method

/// Stands for an asynchronous database call.
async fn fetch_unread(user: &str) -> usize {
    user.len()
}

/// Runs a future that never waits (this program needs no async runtime).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the futures of this program never wait"),
    }
}

fn main() {
    let counter_value = 7;
    let mut counter = Counter { count: 0 };
    counter.tick();
    println!("{}", greeting("you"));
    println!("{}", render::title(3));
    println!("{}", first_word("hot functions"));
    println!("{}", longer("hot", "functions"));
    // SAFETY: `counter_value` is a live `u32`.
    println!("{}", unsafe { read_counter(&counter_value) });
    println!("{}", shouter()("quiet"));
    println!("{}", block_on(handle("ada".to_owned())));
    let inbox = Inbox {
        owner: "ada".to_owned(),
    };
    println!("{}", block_on(inbox.greet("bob")));
    println!("{}", total(&[1u8, 2, 3]));
    println!("{}", counter.tick());
    println!("{counter}");
    println!("{}", Page { title: "hot" }.heading());
}
