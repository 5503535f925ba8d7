// ANCHOR: case
#[hotswap::hot]
fn largest<T: PartialOrd + Copy>(items: &[T]) -> T {
    items.iter().copied().fold(items[0], |a, b| if b > a { b } else { a })
}
// ANCHOR_END: case

fn main() {
    println!("{}", largest(&[1, 3, 2]));
}
