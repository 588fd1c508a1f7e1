//! Data loss prevention: find sensitive values in object bodies and mask, redact, tokenize,
//! hash, block or allow them, in a stream, in constant memory.
//!
//! Takes detector packs (`dlp-patterns/*.toml`, [`Pack`]) and a [`Profile`] (which detectors,
//! which action per entity, the partner's token key); gives an [`Engine`] that hands out one
//! [`Scanner`] per stream, a [`ByteStream`](crate::store::ByteStream) adapter
//! ([`scan_stream`]) for the data path, and the `gatehouse dlp scan` command ([`cli`]).
//! Loading fails with every pattern problem as `file:line: reason` ([`PatternErrors`]);
//! compiling a profile fails with every mismatch ([`ProfileErrors`]); scanning never fails.
//! Findings carry offsets, entity, detector and action, never the matched bytes.
//!
//! # Layout
//! - [`pattern`]: TOML detector files into a [`Pack`]; examples checked at load
//! - [`detector`]: one compiled detector (bounded, byte-oriented, size-limited regex)
//! - [`validate`]: luhn, mod97, ssn, aba, entropy, ipv4, ipv6
//! - [`engine`]: keyword automaton + keyword-free regex set for a profile
//! - `lanes`: the interleaved DFA pass over every byte
//! - [`stream`]: the [`Scanner`]: carry-over, candidate search, overlap resolution, output
//! - [`format`](mod@format): formats, sniffing and `on_unscannable`, CSV and JSON tokenizers, field rules
//! - [`action`]: [`Profile`], [`Action`], [`TokenKey`] and the replacements
//! - [`fpe`]: FF1 tokens, the wrapped [`FpeKey`] file, detokenization
//! - [`filter`]: `ByteStream -> ByteStream` for GET and PUT
//! - [`cli`]: `gatehouse dlp scan`, `dlp detokenize`, `dlp fpe-key`

pub mod action;
pub mod cli;
pub mod detector;
pub mod engine;
pub mod filter;
pub mod format;
pub mod fpe;
mod lanes;
pub mod pattern;
pub mod stream;
pub mod validate;

pub use action::{Action, Profile, TokenKey};
pub use detector::Detector;
pub use engine::{Engine, ProfileErrors};
pub use filter::{BLOCKED, SummaryHandle, scan_stream};
pub use format::{
    CsvOptions, FieldRule, FieldTarget, Format, FormatHint, OnUnscannable, Unscannable,
};
pub use fpe::{FpeError, FpeKey, FpeKeyFile};
pub use pattern::{Pack, PatternError, PatternErrors};
pub use stream::{Finding, ScanMode, Scanner, Summary, findings_in, transform};
pub use validate::Validator;

#[cfg(test)]
mod tests;
