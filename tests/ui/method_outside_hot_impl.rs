struct Counter {
    n: u64,
}

impl Counter {
    #[hotswap::hot]
    fn bump(&mut self) {
        self.n += 1;
    }
}

fn main() {
    Counter { n: 0 }.bump();
}
