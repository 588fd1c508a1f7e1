//! The partners directory: which files are partner files, and checks across them.
//!
//! Takes the directory; gives every partner file in it (`*.toml`, not hidden, not an editor
//! lock or backup file), loaded through [`partner::build`], in file-name order. Across files
//! it rejects a partner id used twice and a public key given to two partners (either partner
//! could then sign as the other). Fails with the I/O error when the directory can't be listed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::federation;
use super::partner::{self, Context, LoadedPartner};
use super::report::{Report, Source};
use crate::config::raw::PartnerFile;

/// Loads every partner file in `dir`.
pub fn load_all(report: &mut Report, dir: &Path, ctx: &Context) -> io::Result<Vec<LoadedPartner>> {
    let mut loaded = Vec::new();
    for path in partner_files(dir)? {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                report.push(&path, None, format!("cannot read partner file: {e}"));
                continue;
            }
        };
        let src = Source { path, text };
        if let Some(raw) = src.parse::<PartnerFile>(report) {
            loaded.push(partner::build(&mut report.file(&src), raw, ctx));
        }
    }
    cross_check(report, &loaded);
    federation::cross_check(report, &loaded);
    Ok(loaded)
}

/// `*.toml` regular files (symbolic links followed), sorted by name. Skips hidden files and
/// editor files: `.#x.toml` (Emacs lock), `#x.toml#`, `x.toml~`, `.x.toml.swp`.
fn partner_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if is_partner_file_name(&name) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn is_partner_file_name(name: &str) -> bool {
    name.len() > ".toml".len() && name.ends_with(".toml") && !name.starts_with(['.', '#'])
}

fn cross_check(report: &mut Report, loaded: &[LoadedPartner]) {
    let mut ids: BTreeMap<&str, &Path> = BTreeMap::new();
    let mut keys: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    for p in loaded {
        let c = &p.config;
        if let Some(first) = ids.insert(&c.id, &c.file) {
            let msg = format!("partner id {:?} is also used by {}", c.id, first.display());
            report.push(&c.file, Some(p.id_line), msg);
        }
        for (key, line) in c.keys.iter().zip(&p.key_lines) {
            let material: String = key.public_key_pem.split_whitespace().collect();
            if material.is_empty() {
                continue;
            }
            if let Some((other, other_key)) = keys.get(&material) {
                let msg = format!(
                    "key {:?} is the same public key as key {other_key:?} of partner {other:?}; each partner needs its own key",
                    key.id
                );
                report.push(&c.file, Some(*line), msg);
            } else {
                keys.insert(material, (&c.id, &key.id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_partner_file_name;

    #[test]
    fn editor_and_hidden_files_are_not_partner_files() {
        assert!(is_partner_file_name("demo.toml"));
        for name in [
            ".demo.toml",
            ".#demo.toml",
            "#demo.toml#",
            "demo.toml~",
            ".demo.toml.swp",
            "demo.swp",
            ".toml",
            "demo.txt",
        ] {
            assert!(!is_partner_file_name(name), "{name}");
        }
    }
}
