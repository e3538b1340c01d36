//! Benchmark of the indicators domain (placeholder until the domain lands).

fn main() {
    println!("indicators benchmark: not written yet");
}
