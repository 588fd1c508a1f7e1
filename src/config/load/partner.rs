//! One partner file into a [`PartnerConfig`].
//!
//! Takes the raw partner file and what it needs from gatehouse.toml ([`Context`]); reads the
//! files it names (public keys, external id) relative to the partner file's directory; gives
//! the partner plus the lines the cross-file checks point at. Every problem is recorded in
//! the [`FileReport`]. The external id itself never appears in a message.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::gateway::show;
use super::report::FileReport;
use super::{access, checks, federation};
use crate::config::model::{
    ActionSet, DlpConfig, Grant, MAX_TOKEN_LIFETIME, PartnerConfig, PartnerKey, ShareConfig,
};
use crate::config::raw::{GrantTable, KeyTable, PartnerFile};

/// Shortest accepted external id, in characters.
const MIN_EXTERNAL_ID_CHARS: usize = 16;

/// What a partner file is checked against.
pub struct Context<'a> {
    /// The shares of gatehouse.toml; `None` when it could not be read (grants unchecked).
    pub shares: Option<&'a BTreeMap<String, ShareConfig>>,
    /// `max_session` when the file does not set it: `token.default_lifetime`.
    pub default_session: Duration,
    /// `token.max_lifetime`: no partner session may be longer.
    pub max_lifetime: Duration,
    /// `[dlp]` of gatehouse.toml; `None` when it could not be read (overrides unchecked).
    pub dlp: Option<&'a DlpConfig>,
}

/// A partner, with what the cross-file checks need.
pub struct LoadedPartner {
    pub config: PartnerConfig,
    pub id_line: usize,
    /// Line of each `[[keys]]` id, parallel to `config.keys`.
    pub key_lines: Vec<usize>,
    pub external_id_file: Option<PathBuf>,
    /// Line of `[federation]`'s `issuer`, when the partner has one.
    pub federation_line: Option<usize>,
}

/// Builds one partner; `f` is bound to its file, whose path is absolute.
pub fn build(f: &mut FileReport, mut raw: PartnerFile, ctx: &Context) -> LoadedPartner {
    let file = f.src.path.clone();
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let id = raw.id.get_ref().clone();
    if let Err(e) = checks::name("partner id", &id) {
        f.value(&raw.id, e);
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem != id {
        f.value(
            &raw.id,
            format!("partner id {id:?} does not match the file name {stem:?}.toml; name the file {id}.toml"),
        );
    }
    let texts = [
        ("display_name", &raw.display_name),
        ("owner", &raw.owner),
        ("contract", &raw.contract),
        ("justification", &raw.justification),
    ];
    for (key, value) in texts {
        if value.get_ref().trim().is_empty() {
            f.value(value, format!("{key} must not be empty"));
        }
    }
    let conditions = access::conditions(
        f,
        &format!("partner {id:?}"),
        raw.take_conditions(),
        raw.valid_until.as_ref(),
    );
    let deny = access::deny_rules(f, std::mem::take(&mut raw.deny), ctx.shares);
    let rate_limits = access::rate_limits(f, &format!("partner {id:?}"), raw.rate_limits.take());
    let (external_id, external_id_file) =
        external_id(f, raw.external_id, raw.external_id_file, &dir);
    let (keys, key_lines) = keys(f, raw.keys, &dir);
    let (federation, federation_line) = federation::build(f, raw.federation.take(), &dir);
    LoadedPartner {
        config: PartnerConfig {
            id,
            display_name: raw.display_name.into_inner(),
            owner: raw.owner.into_inner(),
            contract: raw.contract.into_inner(),
            justification: raw.justification.into_inner(),
            status: raw.status.0,
            review_by: raw.review_by.map(|d| d.0),
            valid_until: raw.valid_until.map(|t| t.into_inner().0),
            conditions,
            deny,
            rate_limits,
            external_id,
            max_session: max_session(f, raw.max_session.map(|s| (s.get_ref().0, s.span())), ctx),
            keys,
            federation,
            grants: grants(f, raw.grants, ctx),
            file,
        },
        id_line: f.src.line_of(raw.id.span().start),
        key_lines,
        external_id_file,
        federation_line,
    }
}

/// The external id (from the file or inline) and the file it came from.
fn external_id(
    f: &mut FileReport,
    inline: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    dir: &Path,
) -> (String, Option<PathBuf>) {
    let (value, span, source, path) = match (inline, file) {
        (None, None) => {
            f.at(None, "set one of external_id or external_id_file");
            return (String::new(), None);
        }
        (Some(_), Some(file)) => {
            f.value(&file, "set only one of external_id and external_id_file");
            return (String::new(), None);
        }
        (Some(v), None) => (
            v.get_ref().clone(),
            v.span(),
            "external_id".to_owned(),
            None,
        ),
        (None, Some(file)) => {
            let path = dir.join(file.get_ref());
            let Some(text) = read(f, "external_id_file", &file, &path) else {
                return (String::new(), Some(path));
            };
            let source = format!("external_id from external_id_file {:?}", file.get_ref());
            (text.trim().to_owned(), file.span(), source, Some(path))
        }
    };
    let chars = value.chars().count();
    if chars < MIN_EXTERNAL_ID_CHARS {
        f.at(
            Some(span),
            format!("{source} is {chars} chars; at least {MIN_EXTERNAL_ID_CHARS} required"),
        );
    }
    (value, path)
}

fn max_session(
    f: &mut FileReport,
    raw: Option<(Duration, std::ops::Range<usize>)>,
    ctx: &Context,
) -> Duration {
    let Some((d, span)) = raw else {
        return ctx.default_session;
    };
    if d.is_zero() || d > MAX_TOKEN_LIFETIME {
        f.at(
            Some(span),
            format!(
                "max_session is {:?}; must be above 0 and at most 12h",
                show(d)
            ),
        );
    } else if d > ctx.max_lifetime {
        f.at(
            Some(span),
            format!(
                "max_session is {:?}; longer than token.max_lifetime ({}) in gatehouse.toml",
                show(d),
                show(ctx.max_lifetime)
            ),
        );
    }
    d
}

fn keys(
    f: &mut FileReport,
    raw: Option<Spanned<Vec<KeyTable>>>,
    dir: &Path,
) -> (Vec<PartnerKey>, Vec<usize>) {
    let Some(list) = raw else {
        f.at(None, "no [[keys]]: at least one public key is required");
        return (Vec::new(), Vec::new());
    };
    if list.get_ref().is_empty() {
        f.value(&list, "keys is empty: at least one public key is required");
    }
    let mut seen = BTreeSet::new();
    let (mut keys, mut lines) = (Vec::new(), Vec::new());
    for k in list.into_inner() {
        let id = k.id.get_ref().clone();
        if let Err(e) = checks::name("key id", &id) {
            f.value(&k.id, e);
        } else if !seen.insert(id.clone()) {
            f.value(&k.id, format!("duplicate key id {id:?}"));
        }
        let path = dir.join(k.public_key_file.get_ref());
        let pem = read(f, "public_key_file", &k.public_key_file, &path).unwrap_or_default();
        if !pem.is_empty()
            && let Err(e) = check_public_key(&pem)
        {
            let file = k.public_key_file.get_ref();
            f.value(
                &k.public_key_file,
                format!("public_key_file {file:?} of key {id:?}: {e}"),
            );
        }
        lines.push(f.src.line_of(k.id.span().start));
        keys.push(PartnerKey {
            id,
            public_key_file: path,
            public_key_pem: pem,
        });
    }
    (keys, lines)
}

/// Parse check of a partner public key. Never echoes the key material.
fn check_public_key(pem: &str) -> Result<(), String> {
    if pem.contains("PRIVATE KEY") {
        return Err("holds a private key; give the partner's public key only".to_owned());
    }
    crate::auth::check_public_key_pem(pem).map(|_alg| ())
}

fn grants(f: &mut FileReport, raw: Vec<GrantTable>, ctx: &Context) -> Vec<Grant> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for g in raw {
        let share = g.share.clone();
        let grant = grant(f, g, ctx);
        if !seen.insert((grant.share.clone(), grant.prefix.clone())) {
            f.value(
                &share,
                format!(
                    "a second grant on share {:?} with prefix {:?}; merge their actions into one grant",
                    grant.share, grant.prefix
                ),
            );
        }
        out.push(grant);
    }
    out
}

fn grant(f: &mut FileReport, mut g: GrantTable, ctx: &Context) -> Grant {
    let share = g.share.get_ref().clone();
    if let Some(shares) = ctx.shares
        && !shares.contains_key(&share)
    {
        let known: Vec<&String> = shares.keys().collect();
        f.value(
            &g.share,
            format!("grant names unknown share {share:?} (shares: {known:?})"),
        );
    }
    let prefix = match &g.prefix {
        None => String::new(),
        Some(p) => checks::prefix(p.get_ref()).unwrap_or_else(|e| {
            f.value(p, format!("grant on share {share:?}: {e}"));
            String::new()
        }),
    };
    if let Some(p) = &g.prefix
        && prefix.starts_with(crate::store::STAGING_PREFIX)
    {
        f.value(
            p,
            format!(
                "grant on share {share:?}: prefix {:?} is reserved for the gateway's staged uploads",
                crate::store::STAGING_PREFIX
            ),
        );
    }
    if g.actions.get_ref().is_empty() {
        f.value(
            &g.actions,
            format!("grant on share {share:?} has no actions"),
        );
    }
    let mut actions = ActionSet::default();
    for a in g.actions.get_ref() {
        let action = a.get_ref().0;
        if actions.contains(action) {
            f.value(
                a,
                format!(
                    "grant on share {share:?} lists action {:?} twice",
                    action.as_str()
                ),
            );
        }
        actions.insert(action);
    }
    let what = format!("grant on share {share:?}");
    if let (Some(p), Some(dlp)) = (&g.dlp_profile, ctx.dlp) {
        let base = ctx
            .shares
            .and_then(|s| s.get(&share))
            .and_then(|s| s.dlp_profile.as_deref());
        super::dlp::check_override(f, dlp, base, &share, p);
    }
    let conditions = access::conditions(f, &what, g.take_conditions(), None);
    let rate_limits = access::rate_limits(f, &what, g.rate_limits.take());
    let approved_by = g.approved_by.take().and_then(|a| {
        let name = a.get_ref().trim().to_string();
        if name.is_empty() {
            f.value(&a, format!("{what}: approved_by is empty"));
        }
        (!name.is_empty()).then_some(name)
    });
    Grant {
        share,
        prefix,
        actions,
        conditions,
        rate_limits,
        approved_by,
    }
}

/// Reads a file the partner file names; a failure is reported at the key naming it.
fn read(f: &mut FileReport, key: &str, written: &Spanned<String>, path: &Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            let shown = checks::normalise_path(path);
            f.value(
                written,
                format!(
                    "cannot read {key} {:?} ({}): {e}",
                    written.get_ref(),
                    shown.display()
                ),
            );
            None
        }
    }
}
