// ANCHOR: case
#[hotswap::hot]
struct Settings {
    verbose: bool,
}
// ANCHOR_END: case

fn main() {
    println!("{}", Settings { verbose: true }.verbose);
}
