//! Says how to run the end-to-end tests when `cargo test` leaves them out.

#[path = "src/gate.rs"]
mod gate;

fn main() {
    let e2e = std::env::var_os("CARGO_FEATURE_E2E").is_some();
    for line in gate::build_script_lines(e2e) {
        println!("{line}");
    }
}
