//! Formats: which structure a body has, and whether it can be scanned at all.
//!
//! Takes a Content-Type, an object name and the first bytes of a body; gives the [`Format`] the
//! scanner parses (text, CSV, TSV, JSON, NDJSON) or the reason the body is [`Unscannable`]
//! (compressed or archive magic, NUL bytes, mostly invalid UTF-8). The declared type is a hint
//! for the format only: the first [`SNIFF_LEN`] bytes are always checked for binary content,
//! whatever the partner declares. Also holds the profile's structural rules ([`FieldRule`]:
//! CSV columns, JSON paths) and the streaming tokenizers ([`csv`], [`json`]) that find cells
//! and values by absolute byte offset in constant memory. Nothing here fails: undecidable input
//! is text, and unparsable structure is reported and scanned as text.

pub mod csv;
pub mod json;
pub mod path;
mod sniff;

pub use path::{FieldPath, FieldPathError};
pub use sniff::{SNIFF_LEN, Sniffed, sniff};

use super::action::Action;

/// How a body is parsed for structure (CSV cells, JSON values) before detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum Format {
    /// Unstructured: detectors only.
    #[default]
    Text,
    /// RFC 4180 comma-separated values; the first record is the header (see [`CsvOptions`]).
    Csv,
    /// Tab-separated values: CSV with a tab delimiter.
    Tsv,
    /// One JSON document (or several concatenated); a syntax error turns the rest into text.
    Json,
    /// Newline-delimited JSON: a syntax error turns the rest of its line into text.
    Ndjson,
}

impl Format {
    /// The name used in config, findings and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        }
    }

    /// The format a Content-Type names (parameters and case ignored), if it names one.
    /// `text/*` (other than the structured ones) is text; binary types give `None`.
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let f = match essence.as_str() {
            "text/csv" | "application/csv" | "text/comma-separated-values" => Format::Csv,
            "text/tab-separated-values" => Format::Tsv,
            "application/json" | "text/json" => Format::Json,
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines"
            | "application/json-seq" => Format::Ndjson,
            e if e.ends_with("+json") => Format::Json,
            e if e.starts_with("text/") => Format::Text,
            "application/xml" | "application/x-yaml" | "application/yaml" | "application/toml" => {
                Format::Text
            }
            _ => return None,
        };
        Some(f)
    }

    /// The format an object name's extension names (case ignored), if it names one.
    pub fn from_extension(name: &str) -> Option<Format> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        let f = match ext.as_str() {
            "csv" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            "json" => Format::Json,
            "ndjson" | "jsonl" => Format::Ndjson,
            "txt" | "log" | "md" | "xml" | "yaml" | "yml" | "toml" | "ini" | "conf" | "env"
            | "sql" | "html" | "htm" | "pem" | "key" => Format::Text,
            _ => return None,
        };
        Some(f)
    }

    /// Whether cells or values are parsed (structural rules and context apply).
    pub fn is_structured(self) -> bool {
        self != Format::Text
    }
}

/// What the caller knows about a body before reading it.
#[derive(Debug, Clone, Copy, Default)]
pub struct FormatHint<'a> {
    /// The declared Content-Type (upstream metadata or the partner's header).
    pub content_type: Option<&'a str>,
    /// The object key or file name (for its extension).
    pub name: Option<&'a str>,
    /// A format chosen by the operator (CLI `--format`, profile); beats the two above.
    pub forced: Option<Format>,
}

impl FormatHint<'_> {
    /// The format the hint names: forced, then Content-Type, then extension. `None`: sniff.
    pub fn declared(&self) -> Option<Format> {
        self.forced
            .or_else(|| self.content_type.and_then(Format::from_content_type))
            .or_else(|| self.name.and_then(Format::from_extension))
    }
}

/// Why a body cannot be scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unscannable {
    /// Compressed or archive magic at the start (`gzip`, `zip`, `zstd`, `bzip2`, `xz`, `7z`).
    Compressed(&'static str),
    /// NUL bytes in the first bytes: binary content.
    Binary,
    /// Mostly invalid UTF-8 in the first bytes.
    NotText,
}

impl Unscannable {
    /// A short reason for summaries and audit events.
    pub fn reason(&self) -> String {
        match self {
            Unscannable::Compressed(kind) => format!("compressed ({kind})"),
            Unscannable::Binary => "binary (NUL bytes)".into(),
            Unscannable::NotText => "not text (invalid UTF-8)".into(),
        }
    }
}

/// What a scan does with a body it cannot scan. Config: `on_unscannable = "block" | "pass"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnUnscannable {
    /// The scan reports blocked and outputs nothing (the default: fail closed).
    #[default]
    Block,
    /// The body passes unchanged and unscanned; the summary still says why.
    Pass,
}

impl OnUnscannable {
    pub fn name(self) -> &'static str {
        match self {
            OnUnscannable::Block => "block",
            OnUnscannable::Pass => "pass",
        }
    }
}

/// Which cells or values a [`FieldRule`] covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldTarget {
    /// A CSV/TSV column by header name (trimmed, case-insensitive).
    Column(String),
    /// A CSV/TSV column by position, 0-based (for files without a header).
    ColumnIndex(usize),
    /// A JSON/NDJSON path (`customer.ssn`, `$.items[*].card`, see [`FieldPath`]); a path to an
    /// object or array covers every string and number below it. Keys are never changed.
    Path(String),
}

/// "Apply `action` to this column / field whatever it contains". A rule's finding is the whole
/// cell (inside its quotes) or the whole JSON string (inside its quotes) or number; it beats
/// any detector finding inside it. Values longer than the engine's carry-over are transformed
/// in pieces of that length (each piece masked, redacted or tokenized on its own).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRule {
    pub target: FieldTarget,
    pub action: Action,
    /// The entity its findings report (default `FIELD`); `[A-Z0-9_]`.
    pub entity: String,
}

impl FieldRule {
    /// A rule on a CSV/TSV column named `name`.
    pub fn column(name: &str, action: Action) -> FieldRule {
        FieldRule {
            target: FieldTarget::Column(name.to_string()),
            action,
            entity: "FIELD".into(),
        }
    }

    /// A rule on a JSON/NDJSON path.
    pub fn path(path: &str, action: Action) -> FieldRule {
        FieldRule {
            target: FieldTarget::Path(path.to_string()),
            action,
            entity: "FIELD".into(),
        }
    }

    /// The same rule reporting `entity`.
    pub fn with_entity(mut self, entity: &str) -> FieldRule {
        self.entity = entity.to_string();
        self
    }

    /// The detector name its findings carry: `column:ssn`, `column#3`, `path:$.customer.ssn`.
    pub fn label(&self) -> String {
        match &self.target {
            FieldTarget::Column(n) => format!("column:{n}"),
            FieldTarget::ColumnIndex(i) => format!("column#{i}"),
            FieldTarget::Path(p) => format!("path:{p}"),
        }
    }
}

/// CSV dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvOptions {
    /// The first record names the columns (default true).
    pub has_header: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { has_header: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_then_extension_name_the_format() {
        let f = Format::from_content_type;
        assert_eq!(f("text/csv; charset=utf-8"), Some(Format::Csv));
        assert_eq!(f("Application/JSON"), Some(Format::Json));
        assert_eq!(f("application/vnd.api+json"), Some(Format::Json));
        assert_eq!(f("application/x-ndjson"), Some(Format::Ndjson));
        assert_eq!(f("text/plain"), Some(Format::Text));
        assert_eq!(f("application/octet-stream"), None);
        assert_eq!(Format::from_extension("a/b/people.CSV"), Some(Format::Csv));
        assert_eq!(Format::from_extension("events.jsonl"), Some(Format::Ndjson));
        assert_eq!(Format::from_extension("noext"), None);
        let hint = FormatHint {
            content_type: Some("application/octet-stream"),
            name: Some("x.tsv"),
            forced: None,
        };
        assert_eq!(hint.declared(), Some(Format::Tsv));
        let hint = FormatHint {
            content_type: Some("application/json"),
            name: Some("x.csv"),
            forced: None,
        };
        assert_eq!(hint.declared(), Some(Format::Json));
        let forced = FormatHint {
            forced: Some(Format::Text),
            ..hint
        };
        assert_eq!(forced.declared(), Some(Format::Text));
    }
}
