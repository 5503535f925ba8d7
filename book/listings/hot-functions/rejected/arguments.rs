// ANCHOR: case
#[hotswap::hot(fast)]
fn render() -> String {
    "page".to_owned()
}
// ANCHOR_END: case

fn main() {
    println!("{}", render());
}
