hotswap::persist! {
    static mut COUNT: u64 = 0;
}

fn main() {}
