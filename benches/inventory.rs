//! Benchmark of the inventory domain (placeholder until the domain lands).

fn main() {
    println!("inventory benchmark: not written yet");
}
