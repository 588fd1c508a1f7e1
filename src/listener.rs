//! Placeholder.
pub async fn run() {}
