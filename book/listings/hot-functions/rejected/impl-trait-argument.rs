// ANCHOR: case
#[hotswap::hot]
fn describe(value: impl std::fmt::Display) -> String {
    format!("<{value}>")
}
// ANCHOR_END: case

fn main() {
    println!("{}", describe(1));
}
