trait IntoResponse {}

impl IntoResponse for String {}

#[hotswap::hot]
async fn index() -> impl IntoResponse {
    "hello".to_owned()
}

fn main() {
    drop(index());
}
