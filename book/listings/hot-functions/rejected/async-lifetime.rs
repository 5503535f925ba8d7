// ANCHOR: case
#[hotswap::hot]
async fn longest<'a>(a: &'a str, b: &'a str) -> &'a str {
    if b.len() > a.len() { b } else { a }
}
// ANCHOR_END: case

fn main() {
    drop(longest("a", "bc"));
}
