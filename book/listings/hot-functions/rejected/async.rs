// ANCHOR: case
#[hotswap::hot]
async fn handle(user: String) -> String {
    format!("hello, {user}")
}
// ANCHOR_END: case

fn main() {
    drop(handle("ada".to_owned()));
}
