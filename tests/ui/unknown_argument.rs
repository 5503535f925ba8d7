#[hotswap::hot(fast)]
fn tick() {}

fn main() {
    tick();
}
