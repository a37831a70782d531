//! doctor (skeleton).
fn main() {}
