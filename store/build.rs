//! Rebuilds the store when a migration changes: `sqlx::migrate!` embeds the migrations at
//! compile time, and on stable Rust it cannot tell cargo which files it read.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
