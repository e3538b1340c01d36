//! Benchmark of the movements domain (placeholder until the domain lands).

fn main() {
    println!("movements benchmark: not written yet");
}
