//! Configuration: `gatehouse.toml` plus one file per partner.
//!
//! Takes file paths, gives a validated [`Config`] or every problem found, each with file,
//! line and the bad value ([`ConfigErrors`]). Serde structs stay in `raw.rs`; the rest of the
//! crate sees only the typed model in `model.rs`.

mod load;
mod model;
mod raw;

pub use load::{ConfigError, ConfigErrors, load, load_gateway};
pub use model::*;
