//! Loading: `gatehouse.toml` and the partners directory into a validated [`Config`].
//!
//! Takes the path of `gatehouse.toml`; gives the [`Config`] or [`ConfigErrors`] holding every
//! problem found in every file, each with file, line (when it belongs to one value) and the
//! bad value quoted. Loading does not stop at the first problem: a bad value is recorded and
//! replaced by its default so the remaining checks still run. Relative paths are joined to
//! the directory of the file that names them, never canonicalised (they may not exist yet).
//! TLS and signing key files are not read here (the runtime reports those); partner key and
//! external id files are.
//!
//! Layout: [`report`] (errors), [`checks`] (single values), [`gateway`] (gatehouse.toml),
//! [`storage`] (stores, shares, overlaps), [`partner`] (one partner file), [`access`]
//! (conditions, deny rules, rate and token limits), [`partners`] (the directory and
//! cross-file checks).

use std::path::{Path, PathBuf};

use super::Config;
use super::raw::GatehouseFile;

mod access;
mod alerts;
mod audit;
mod checks;
mod dlp;
mod federation;
mod gateway;
mod partner;
mod partners;
mod report;
mod storage;
#[cfg(test)]
mod tests;

pub use report::{ConfigError, ConfigErrors};
use report::{Report, Source};

/// Loads and validates `gatehouse.toml` at `path` and every partner file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_files(path, true)
}

/// Loads and validates `gatehouse.toml` alone, without reading the partners directory: the
/// returned config has no partners. For the dev bootstrap, which must run before the files
/// the demo partner names exist; `serve` then calls [`load`].
pub fn load_gateway(path: &Path) -> Result<Config, ConfigErrors> {
    load_files(path, false)
}

fn load_files(path: &Path, with_partners: bool) -> Result<Config, ConfigErrors> {
    let mut report = Report::default();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            report.push(path, None, format!("cannot read configuration file: {e}"));
            return Err(report.into_errors());
        }
    };
    let src = Source {
        path: path.to_path_buf(),
        text,
    };
    let base = config_dir(path);
    let raw = src.parse::<GatehouseFile>(&mut report);
    let (partners_dir, partners_dir_line) = partners_dir(&mut report, &src, raw.as_ref(), &base);
    let gateway = raw.map(|raw| gateway::build(&mut report.file(&src), raw, &base));
    let partners = if with_partners {
        let ctx = partner::Context {
            shares: gateway.as_ref().map(|g| &g.config.shares),
            default_session: gateway
                .as_ref()
                .map_or(gateway::DEFAULT_TOKEN_LIFETIME, |g| {
                    g.config.token.default_lifetime
                }),
            max_lifetime: gateway
                .as_ref()
                .map_or(super::MAX_TOKEN_LIFETIME, |g| g.config.token.max_lifetime),
            dlp: gateway.as_ref().map(|g| &g.config.dlp),
        };
        partners::load_all(&mut report, &partners_dir, &ctx).unwrap_or_else(|e| {
            let msg = format!("cannot read partners_dir {}: {e}", partners_dir.display());
            report.push(path, partners_dir_line, msg);
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let Some(mut gateway) = gateway else {
        return Err(report.into_errors()); // gatehouse.toml did not deserialise
    };
    gateway.config.partners_dir = partners_dir.clone();
    // Detector files are checked with everything else, each error with its file and line.
    let pack = match &gateway.config.dlp_patterns_dir {
        Some(dir) if with_partners => match crate::dlp::Pack::load_dir(dir) {
            Ok(pack) => Some(pack),
            Err(errors) => {
                for e in errors.0 {
                    let line = (e.line > 0).then_some(e.line);
                    report.push(
                        Path::new(&e.file),
                        line,
                        format!("DLP pattern: {}", e.reason),
                    );
                }
                None
            }
        },
        None if with_partners && !gateway.config.dlp.profiles.is_empty() => {
            Some(crate::dlp::Pack::builtin())
        }
        _ => None,
    };
    // Profiles are checked against the pack the gateway will run.
    if with_partners
        && !gateway.config.dlp.profiles.is_empty()
        && let Some(pack) = &pack
    {
        dlp::check_pack(
            &mut report,
            path,
            &gateway.config.dlp,
            &gateway.dlp_lines,
            pack,
        );
    }
    let source = base.join(path.file_name().map_or(path, Path::new));
    let mut protected = storage::gateway_paths(&gateway.config, &source, &partners_dir);
    for p in &partners {
        let c = &p.config;
        for k in &c.keys {
            let what = format!("public_key_file of partner {:?} key {:?}", c.id, k.id);
            protected.push(storage::Protected::new(what, &k.public_key_file));
        }
        if let Some(file) = &p.external_id_file {
            let what = format!("external_id_file of partner {:?}", c.id);
            protected.push(storage::Protected::new(what, file));
        }
    }
    storage::check_roots(&mut report, path, &gateway.fs_roots, &protected);
    gateway.config.partners = partners
        .into_iter()
        .map(|p| (p.config.id.clone(), p.config))
        .collect();
    report.finish(gateway.config)
}

/// The absolute directory of `gatehouse.toml`, against which its relative paths resolve.
fn config_dir(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// `partners_dir` joined to `base`, and its line. When the file did not deserialise, the
/// value is still read from it if the TOML syntax allows, so partner files get checked too.
fn partners_dir(
    report: &mut Report,
    src: &Source,
    raw: Option<&GatehouseFile>,
    base: &Path,
) -> (PathBuf, Option<usize>) {
    let written = match raw {
        Some(raw) => raw
            .partners_dir
            .as_ref()
            .map(|v| (v.get_ref().clone(), Some(src.line_of(v.span().start)))),
        None => toml::from_str::<toml::Table>(&src.text).ok().and_then(|t| {
            t.get("partners_dir")?
                .as_str()
                .map(|s| (s.to_owned(), None))
        }),
    };
    match written {
        Some((dir, line)) if !dir.trim().is_empty() => (base.join(dir), line),
        Some((_, line)) => {
            report.push(&src.path, line, "partners_dir must not be empty");
            (base.join("partners"), line)
        }
        None => (base.join("partners"), None),
    }
}
