struct Wrapper<T>(T);

#[hotswap::hot]
impl<T: Clone> Wrapper<T> {
    fn get(&self) -> T {
        self.0.clone()
    }
}

fn main() {
    let _ = Wrapper(1).get();
}
