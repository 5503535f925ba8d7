struct Counter {
    count: u64,
}

// ANCHOR: case
impl Counter {
    #[hotswap::hot]
    fn tick(&mut self) -> u64 {
        self.count += 1;
        self.count
    }
}
// ANCHOR_END: case

fn main() {
    println!("{}", Counter { count: 0 }.tick());
}
