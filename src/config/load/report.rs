//! Collecting configuration errors.
//!
//! Takes problems found anywhere during loading — a byte span in a file, a line, or just a
//! file — and gives the [`ConfigErrors`] the caller prints, one `file:line: message` a line.
//! Loading never stops at the first problem; it records it here and carries on.

use std::error::Error;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

/// One problem in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, when the problem belongs to one value.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl Error for ConfigError {}

/// Every problem found in one load, in file order and line order within a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Error for ConfigErrors {}

/// The text of one configuration file, to turn byte spans into line numbers.
pub(crate) struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// 1-based line of the byte offset `at`.
    pub fn line_of(&self, at: usize) -> usize {
        let end = at.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// Deserialises the whole file; a syntax or type error is recorded with its line.
    pub fn parse<T: serde::de::DeserializeOwned>(&self, report: &mut Report) -> Option<T> {
        match toml::from_str(&self.text) {
            Ok(v) => Some(v),
            Err(mut e) => {
                let line = e.span().map(|s| self.line_of(s.start));
                let message = e.message().trim_end().replace('\n', "; ");
                // Without the input, toml's Display names the key path: "...\nin `a.b`\n".
                e.set_input(None);
                let shown = e.to_string();
                let key = shown
                    .lines()
                    .last()
                    .and_then(|l| l.strip_prefix("in "))
                    .filter(|k| k.starts_with('`'));
                let message = match key {
                    Some(key) => format!("{key}: {message}"),
                    None => message,
                };
                report.push(&self.path, line, message);
                None
            }
        }
    }
}

/// The errors found so far.
#[derive(Debug, Default)]
pub(crate) struct Report {
    errors: Vec<ConfigError>,
}

impl Report {
    pub fn push(&mut self, file: &Path, line: Option<usize>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        });
    }

    /// A reporter bound to one file.
    pub fn file<'a>(&'a mut self, src: &'a Source) -> FileReport<'a> {
        FileReport { src, report: self }
    }

    /// `Ok(value)` when nothing was recorded, else every error, grouped by file in the order
    /// the files were first mentioned and sorted by line within a file.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.into_errors())
        }
    }

    /// Every error recorded, ordered as for [`Report::finish`].
    pub fn into_errors(self) -> ConfigErrors {
        let mut order: Vec<PathBuf> = Vec::new();
        for e in &self.errors {
            if !order.contains(&e.file) {
                order.push(e.file.clone());
            }
        }
        let mut errors = self.errors;
        errors.sort_by_key(|e| (order.iter().position(|f| *f == e.file), e.line));
        ConfigErrors(errors)
    }
}

/// Records errors against one file, turning spans into lines.
pub(crate) struct FileReport<'a> {
    pub src: &'a Source,
    report: &'a mut Report,
}

impl FileReport<'_> {
    /// An error at a byte span, or about the whole file when `span` is `None`.
    pub fn at(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let line = span.map(|s| self.src.line_of(s.start));
        self.report.push(&self.src.path, line, message);
    }

    /// An error about a written value.
    pub fn value<T>(&mut self, value: &Spanned<T>, message: impl Into<String>) {
        self.at(Some(value.span()), message);
    }

    /// An error at a known line (or none).
    pub fn line(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.report.push(&self.src.path, line, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_one_per_line_as_file_line_message() {
        let errors = ConfigErrors(vec![
            ConfigError {
                file: "a.toml".into(),
                line: Some(3),
                message: "bad".into(),
            },
            ConfigError {
                file: "b.toml".into(),
                line: None,
                message: "worse".into(),
            },
        ]);
        assert_eq!(errors.to_string(), "a.toml:3: bad\nb.toml: worse");
    }

    #[test]
    fn lines_count_from_one() {
        let src = Source {
            path: "x".into(),
            text: "a = 1\nb = 2\n".into(),
        };
        assert_eq!(src.line_of(0), 1);
        assert_eq!(src.line_of(6), 2);
        assert_eq!(src.line_of(999), 3);
    }
}
