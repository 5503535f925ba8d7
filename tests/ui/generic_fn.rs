#[hotswap::hot]
fn largest<T: PartialOrd>(items: &[T]) -> Option<&T> {
    items.iter().reduce(|a, b| if b > a { b } else { a })
}

fn main() {
    let _ = largest(&[1, 2]);
}
