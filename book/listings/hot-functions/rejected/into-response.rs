/// Stands for `axum::response::IntoResponse`.
trait IntoResponse {}

impl IntoResponse for String {}

// ANCHOR: case
#[hotswap::hot]
async fn index() -> impl IntoResponse {
    "hello".to_owned()
}
// ANCHOR_END: case

fn main() {
    drop(index());
}
