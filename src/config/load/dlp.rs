//! `[dlp]` and `[dlp.profiles.*]` into [`DlpConfig`], and the checks against the detector pack.
//!
//! Takes the raw tables; gives the typed profiles plus the lines of every entity and detector
//! they name ([`ProfileLines`]), so that once the detector pack is loaded [`check_pack`] can
//! report an unknown entity or detector at its own line. Action values are a name (`"mask"`,
//! `"redact"`, `"tokenize"`, `"tokenize_fpe"`, `"hash"`, `"block"`, `"allow"`) or an inline
//! table `{ action = "mask", char = "#", keep_last = 4 }`; anything else is an error at its
//! line. A profile using `tokenize_fpe` needs `fpe_key_file`, a readable wrapped key file (it is
//! unwrapped by the key service when the gateway starts or reloads, not here).
//! Grant overrides are checked in `partner` with [`check_override`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::checks;
use super::gateway::path_or;
use super::report::{FileReport, Report};
use crate::config::model::{Classification, DlpConfig, DlpProfile, Unscannable};
use crate::config::raw::{DlpTable, ProfileTable};
use crate::dlp::format::CsvOptions;
use crate::dlp::{Action, FpeKeyFile, Pack};

/// Where each profile wrote the names the pack must know.
#[derive(Debug, Default)]
pub struct ProfileLines {
    /// `(profile, what, name, line)`: `what` is `entity` or `detector`.
    pub names: Vec<(String, &'static str, String, usize)>,
    /// Line of each profile's table.
    pub tables: BTreeMap<String, usize>,
}

/// Builds `[dlp]`; `base` is the directory of gatehouse.toml.
pub fn build(
    f: &mut FileReport,
    raw: DlpTable,
    base: &Path,
    data_dir: &Path,
) -> (DlpConfig, ProfileLines) {
    let token_secret_file = path_or(
        f,
        "dlp.token_secret_file",
        raw.token_secret_file,
        base,
        || data_dir.join("keys").join("dlp-token.secret"),
    );
    let fpe_key_file = raw.fpe_key_file.and_then(|v| {
        let path = path_or(f, "dlp.fpe_key_file", Some(v.clone()), base, PathBuf::new);
        if path.as_os_str().is_empty() {
            return None;
        }
        if let Err(e) = FpeKeyFile::load(&path) {
            f.value(&v, format!("dlp.fpe_key_file: {e}"));
        }
        Some(path)
    });
    let mut lines = ProfileLines::default();
    let mut profiles = BTreeMap::new();
    for (name, table) in raw.profiles {
        if let Err(e) = checks::name("DLP profile name", name.get_ref()) {
            f.value(&name, e);
        }
        let n = name.into_inner();
        lines
            .tables
            .insert(n.clone(), f.src.line_of(table.span().start));
        let span = table.span();
        let profile = profile(f, &n, table.into_inner(), &mut lines);
        if profile.needs_fpe() && fpe_key_file.is_none() {
            f.at(
                Some(span),
                format!(
                    "DLP profile {n:?} uses tokenize_fpe but [dlp] has no fpe_key_file (make one with `gatehouse dlp fpe-key`)"
                ),
            );
        }
        profiles.insert(n, profile);
    }
    let config = DlpConfig {
        token_secret_file,
        fpe_key_file,
        profiles,
        checked_pack: Default::default(),
    };
    (config, lines)
}

fn profile(f: &mut FileReport, n: &str, t: ProfileTable, lines: &mut ProfileLines) -> DlpProfile {
    let mut note = |what, name: &Spanned<String>, f: &mut FileReport| {
        let line = f.src.line_of(name.span().start);
        lines
            .names
            .push((n.to_owned(), what, name.get_ref().clone(), line));
    };
    let detectors = t.detectors.map(|ds| {
        if ds.get_ref().is_empty() {
            f.value(
                &ds,
                format!(
                    "DLP profile {n:?}: detectors is empty; leave it out to run every detector"
                ),
            );
        }
        ds.into_inner()
            .into_iter()
            .map(|d| {
                note("detector", &d, f);
                d.into_inner()
            })
            .collect()
    });
    let default_action = match &t.default_action {
        Some(v) => action(f, n, "default_action", v),
        None => Action::Mask {
            with: '*',
            keep_last: 0,
        },
    };
    let mut actions = BTreeMap::new();
    for (entity, value) in &t.actions {
        note("entity", entity, f);
        actions.insert(
            entity.get_ref().clone(),
            action(f, n, entity.get_ref(), value),
        );
    }
    let mut rules = |table: &BTreeMap<Spanned<String>, Spanned<toml::Value>>, what: &str| {
        let mut out = BTreeMap::new();
        for (name, value) in table {
            if name.get_ref().trim().is_empty() {
                f.value(
                    name,
                    format!("DLP profile {n:?}: a {what} name must not be empty"),
                );
            }
            let label = format!("{what} {:?}", name.get_ref());
            out.insert(name.get_ref().clone(), action(f, n, &label, value));
        }
        out
    };
    let columns = rules(&t.columns, "column");
    let fields = rules(&t.fields, "field");
    let has_header = t.csv.and_then(|c| c.has_header).unwrap_or(true);
    if !has_header {
        for name in t.columns.keys() {
            if DlpProfile::column_position(name.get_ref()).is_none() {
                f.value(
                    name,
                    format!(
                        "DLP profile {n:?}: column {:?}: with csv.has_header = false a column is named by its position (1, 2, ...)",
                        name.get_ref()
                    ),
                );
            }
        }
    }
    let on_unscannable = match t.on_unscannable.as_ref().map(|v| v.get_ref().as_str()) {
        None | Some("block") => Unscannable::Block,
        Some("pass") => Unscannable::Pass,
        Some(other) => {
            if let Some(v) = &t.on_unscannable {
                f.value(
                    v,
                    format!(
                        "DLP profile {n:?}: on_unscannable {other:?} is not \"block\" or \"pass\""
                    ),
                );
            }
            Unscannable::Block
        }
    };
    let mut classify = BTreeMap::new();
    for (entity, class) in t.classify {
        note("entity", &entity, f);
        classify.insert(entity.into_inner(), class.into_inner().0);
    }
    DlpProfile {
        name: n.to_owned(),
        detectors,
        actions,
        default_action,
        columns,
        fields,
        on_unscannable,
        classify,
        min_classification: t.min_classification.map_or(Classification::Public, |c| c.0),
        csv: CsvOptions { has_header },
    }
}

const ACTIONS: &str = "mask, redact, tokenize, tokenize_fpe, hash, block or allow";

/// One action value: a name, or `{ action = "mask", char = "*", keep_last = 4 }`.
fn action(f: &mut FileReport, n: &str, what: &str, v: &Spanned<toml::Value>) -> Action {
    let fallback = Action::Redact;
    let named = |name: &str| match name {
        "mask" => Some(Action::Mask {
            with: '*',
            keep_last: 0,
        }),
        "redact" => Some(Action::Redact),
        "tokenize" => Some(Action::Tokenize),
        "tokenize_fpe" => Some(Action::TokenizeFpe),
        "hash" => Some(Action::Hash),
        "block" => Some(Action::Block),
        "allow" => Some(Action::Allow),
        _ => None,
    };
    match v.get_ref() {
        toml::Value::String(s) => named(s).unwrap_or_else(|| {
            f.value(
                v,
                format!("DLP profile {n:?}: {what}: unknown action {s:?} (expected {ACTIONS})"),
            );
            fallback
        }),
        toml::Value::Table(t) => {
            let mut problems = Vec::new();
            let name = t.get("action").and_then(|a| a.as_str());
            let mut with = '*';
            let mut keep_last = 0usize;
            for (k, val) in t {
                match (k.as_str(), val) {
                    ("action", _) => {}
                    ("char", toml::Value::String(c)) => {
                        let mut chars = c.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) if c.is_ascii_graphic() || c == ' ' => with = c,
                            _ => problems
                                .push(format!("char {c:?} must be one printable ASCII character")),
                        }
                    }
                    ("keep_last", toml::Value::Integer(k)) if (0..=64).contains(k) => {
                        keep_last = *k as usize;
                    }
                    ("keep_last", other) => {
                        problems.push(format!("keep_last {other} must be a whole number 0 to 64"))
                    }
                    (other, _) => problems.push(format!(
                        "unknown key {other:?} (expected action, char, keep_last)"
                    )),
                }
            }
            let action = match name {
                Some("mask") => Action::Mask { with, keep_last },
                Some(other) => match named(other) {
                    Some(a) if t.len() == 1 => a,
                    Some(_) => {
                        problems.push(format!("char and keep_last are for mask, not {other:?}"));
                        fallback
                    }
                    None => {
                        problems.push(format!("unknown action {other:?} (expected {ACTIONS})"));
                        fallback
                    }
                },
                None => {
                    problems.push("the table needs action = \"...\"".into());
                    fallback
                }
            };
            for p in problems {
                f.value(v, format!("DLP profile {n:?}: {what}: {p}"));
            }
            action
        }
        other => {
            f.value(
                v,
                format!(
                    "DLP profile {n:?}: {what}: an action is a name ({ACTIONS}) or a table like {{ action = \"mask\", keep_last = 4 }}, not {other}"
                ),
            );
            fallback
        }
    }
}

/// Reports every entity and detector the profiles name that `pack` does not have, each at its
/// line in `gatehouse`, then compiles each profile to catch anything else.
pub fn check_pack(
    report: &mut Report,
    gatehouse: &Path,
    dlp: &DlpConfig,
    lines: &ProfileLines,
    pack: &Pack,
) {
    let entities = pack.entities();
    let known = |what: &str, name: &str| match what {
        "entity" => entities.iter().any(|e| **e == *name),
        _ => pack.detectors.iter().any(|d| *d.id == *name),
    };
    let mut all_known = true;
    for (profile, what, name, line) in &lines.names {
        if !known(what, name) {
            all_known = false;
            let hint = match *what {
                "entity" => format!(
                    "known entities: {}",
                    entities.iter().map(|e| &**e).collect::<Vec<_>>().join(", ")
                ),
                _ => "see `id` in the detector files".into(),
            };
            report.push(
                gatehouse,
                Some(*line),
                format!("DLP profile {profile:?}: unknown {what} {name:?} ({hint})"),
            );
        }
    }
    if !all_known {
        return;
    }
    dlp.checked_pack.set(pack);
    // Stand-in keys: compiling checks the profile's shape, the real keys come at start.
    let key = crate::dlp::TokenKey::new([0; 32]);
    let fpe = crate::dlp::FpeKey::new([0; 32]);
    for p in dlp.profiles.values() {
        let engine = p.to_engine(Some(key.clone()), Some((fpe.clone(), "check")));
        if let Err(e) = crate::dlp::Engine::compile(pack, &engine) {
            for reason in e.0 {
                report.push(
                    gatehouse,
                    lines.tables.get(&p.name).copied(),
                    format!("DLP profile {:?}: {reason}", p.name),
                );
            }
        }
    }
}

/// Checks a grant's `dlp_profile`: it exists and is at least as strict as its share's.
pub fn check_override(
    f: &mut FileReport,
    dlp: &DlpConfig,
    share_profile: Option<&str>,
    share: &str,
    value: &Spanned<String>,
) {
    let name = value.get_ref();
    let Some(mine) = dlp.profiles.get(name) else {
        let known: Vec<&String> = dlp.profiles.keys().collect();
        f.value(
            value,
            format!(
                "grant on share {share:?} names unknown DLP profile {name:?} (profiles: {known:?})"
            ),
        );
        return;
    };
    if let Some(base) = share_profile.and_then(|b| dlp.profiles.get(b)) {
        let why = mine.weaker_than(base);
        if !why.is_empty() {
            f.value(
                value,
                format!(
                    "grant on share {share:?}: DLP profile {name:?} is weaker than the share's profile {:?}: {}",
                    base.name,
                    why.join("; ")
                ),
            );
        }
    }
}
