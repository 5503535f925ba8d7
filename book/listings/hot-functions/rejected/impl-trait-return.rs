// ANCHOR: case
#[hotswap::hot]
fn evens(limit: u32) -> impl Iterator<Item = u32> {
    (0..limit).filter(|n| n % 2 == 0)
}
// ANCHOR_END: case

fn main() {
    println!("{}", evens(10).count());
}
