struct Ball;

#[hotswap::hot]
impl std::fmt::Display for Ball {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "o")
    }
}

fn main() {
    println!("{}", Ball);
}
