// ANCHOR: case
#[hotswap::hot]
extern "C" fn on_event(code: i32) -> i32 {
    code + 1
}
// ANCHOR_END: case

fn main() {
    println!("{}", on_event(1));
}
