trait Visit {
    fn visit<T: std::fmt::Debug>(&self, item: T) -> String;
}

struct Ball;

#[hotswap::hot]
impl Visit for Ball {
    fn visit<T: std::fmt::Debug>(&self, item: T) -> String {
        format!("{item:?}")
    }
}

fn main() {
    println!("{}", Ball.visit(1));
}
