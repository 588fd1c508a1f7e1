//! Placeholder: replaced by the config implementation.
