// ANCHOR: case
#[hotswap::hot]
const fn buffer_size() -> usize {
    4096
}
// ANCHOR_END: case

fn main() {
    println!("{}", buffer_size());
}
