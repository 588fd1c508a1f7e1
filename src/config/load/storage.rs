//! `[stores.*]` and `[shares.*]`, and the rules that keep storage apart.
//!
//! Takes the raw store and share tables; fills `Config::stores` and `Config::shares` and
//! gives the fs store roots. Rejects two fs roots that overlap, two shares that reach the
//! same objects (same store and bucket, overlapping prefixes), and — in [`check_roots`], once
//! the partner files are known — an fs root that contains or sits inside the gateway's own
//! directories and files. Paths are compared after lexical normalisation, because they may
//! not exist yet; symbolic links are not followed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::checks;
use super::gateway::path_or;
use super::report::{FileReport, Report};
use crate::config::model::{Config, ShareConfig, StoreConfig};
use crate::config::raw::{ShareTable, StoreKind, StoreTable};

/// The root directory of one fs store.
pub struct FsRoot {
    pub store: String,
    /// Joined to the config directory and normalised lexically.
    pub path: PathBuf,
    /// Line of `root` in gatehouse.toml.
    pub line: usize,
}

/// A directory or file the gateway itself owns, which no fs root may overlap.
pub struct Protected {
    pub what: String,
    pub path: PathBuf,
}

impl Protected {
    pub fn new(what: impl Into<String>, path: &Path) -> Protected {
        Protected {
            what: what.into(),
            path: checks::normalise_path(path),
        }
    }
}

/// Builds stores and shares into `config`; gives the fs roots.
pub fn build(
    f: &mut FileReport,
    stores: BTreeMap<Spanned<String>, StoreTable>,
    shares: BTreeMap<Spanned<String>, ShareTable>,
    base: &Path,
    config: &mut Config,
) -> Vec<FsRoot> {
    let mut roots: Vec<FsRoot> = Vec::new();
    for (name, table) in stores {
        if let Err(e) = checks::name("store name", name.get_ref()) {
            f.value(&name, e);
        }
        let (store, root_line) = store(f, &name, table, base);
        if let (StoreConfig::Fs { root }, Some(line)) = (&store, root_line) {
            let path = checks::normalise_path(root);
            if let Some(other) = roots.iter().find(|r| checks::paths_overlap(&r.path, &path)) {
                f.line(
                    Some(line),
                    format!(
                        "fs store {:?} root {} overlaps the root of fs store {:?} ({}); fs roots must be disjoint",
                        name.get_ref(),
                        path.display(),
                        other.store,
                        other.path.display()
                    ),
                );
            }
            roots.push(FsRoot {
                store: name.get_ref().clone(),
                path,
                line,
            });
        }
        config.stores.insert(name.into_inner(), store);
    }
    for (name, table) in shares {
        let share = share(f, &name, table, config);
        config.shares.insert(name.into_inner(), share);
    }
    roots
}

/// The store, and for an fs store with a usable root the line of `root`.
fn store(
    f: &mut FileReport,
    name: &Spanned<String>,
    t: StoreTable,
    base: &Path,
) -> (StoreConfig, Option<usize>) {
    let n = name.get_ref();
    match t.kind.get_ref() {
        StoreKind::Fs => {
            let s3_only = [
                ("region", t.region.map(|v| v.span())),
                ("endpoint_url", t.endpoint_url.map(|v| v.span())),
                ("force_path_style", t.force_path_style.map(|v| v.span())),
            ];
            for (key, span) in s3_only {
                if span.is_some() {
                    f.at(
                        span,
                        format!("store {n:?}: {key} is only allowed with type = \"s3\""),
                    );
                }
            }
            let line = match &t.root {
                None => {
                    f.value(name, format!("fs store {n:?} has no root directory"));
                    None
                }
                Some(r) if r.get_ref().trim().is_empty() => None,
                Some(r) => Some(f.src.line_of(r.span().start)),
            };
            let root = path_or(f, "root", t.root, base, PathBuf::new);
            (StoreConfig::Fs { root }, line)
        }
        StoreKind::S3 => {
            if let Some(root) = &t.root {
                f.value(
                    root,
                    format!("store {n:?}: root is only allowed with type = \"fs\""),
                );
            }
            if let Some(region) = &t.region
                && region.get_ref().trim().is_empty()
            {
                f.value(region, format!("store {n:?}: region must not be empty"));
            }
            if let Some(url) = &t.endpoint_url
                && let Err(e) = checks::endpoint_url(url.get_ref())
            {
                f.value(url, format!("store {n:?}: {e}"));
            }
            let store = StoreConfig::S3 {
                region: t.region.map(Spanned::into_inner),
                endpoint_url: t.endpoint_url.map(Spanned::into_inner),
                force_path_style: t.force_path_style.is_some_and(Spanned::into_inner),
            };
            (store, None)
        }
    }
}

fn share(
    f: &mut FileReport,
    name: &Spanned<String>,
    t: ShareTable,
    config: &Config,
) -> ShareConfig {
    let (stores, earlier) = (&config.stores, &config.shares);
    let n = name.get_ref();
    if let Some(p) = &t.dlp_profile
        && !config.dlp.profiles.contains_key(p.get_ref())
    {
        let known: Vec<&String> = config.dlp.profiles.keys().collect();
        f.value(
            p,
            format!(
                "share {n:?} names unknown DLP profile {:?} (profiles: {known:?})",
                p.get_ref()
            ),
        );
    }
    if let Err(e) = checks::share_name(n) {
        f.value(name, e);
    }
    if !stores.contains_key(t.store.get_ref()) {
        let known: Vec<&String> = stores.keys().collect();
        f.value(
            &t.store,
            format!(
                "share {n:?} names unknown store {:?} (stores: {known:?})",
                t.store.get_ref()
            ),
        );
    }
    if let Err(e) = checks::bucket(t.bucket.get_ref()) {
        f.value(&t.bucket, format!("share {n:?}: {e}"));
    }
    let prefix = match &t.prefix {
        None => String::new(),
        Some(p) => checks::prefix(p.get_ref()).unwrap_or_else(|e| {
            f.value(p, format!("share {n:?}: {e}"));
            String::new()
        }),
    };
    let share = ShareConfig {
        name: n.clone(),
        store: t.store.into_inner(),
        bucket: t.bucket.get_ref().clone(),
        prefix,
        description: t.description,
        default_classification: t.default_classification.map(|c| c.0).unwrap_or_default(),
        encrypt: match t.encrypt.as_ref().map(|e| e.get_ref().as_str()) {
            None | Some("none") => false,
            Some("envelope") => true,
            Some(other) => {
                let msg = format!("share {n:?}: encrypt {other:?} is not \"envelope\" or \"none\"");
                if let Some(e) = &t.encrypt {
                    f.value(e, msg);
                }
                false
            }
        },
        key_id: t.key_id,
        accept_plaintext: t.accept_plaintext.unwrap_or(false),
        dlp_profile: t.dlp_profile.map(Spanned::into_inner),
    };
    let clash = earlier.values().find(|o| {
        o.store == share.store
            && o.bucket == share.bucket
            && checks::prefixes_overlap(&o.prefix, &share.prefix)
    });
    if let Some(o) = clash {
        f.value(
            &t.bucket,
            format!(
                "share {n:?} reaches the same objects as share {:?}: store {:?}, bucket {:?}, prefixes {:?} and {:?} overlap",
                o.name, share.store, share.bucket, share.prefix, o.prefix
            ),
        );
    }
    share
}

/// The gateway's own directories and files, which fs roots must stay clear of.
pub fn gateway_paths(config: &Config, source: &Path, partners_dir: &Path) -> Vec<Protected> {
    let dir = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    let tls = &config.tls;
    let mut out = vec![
        Protected::new("gatehouse.toml", source),
        Protected::new("partners_dir", partners_dir),
        Protected::new("the directory of tls.cert_file", &dir(&tls.cert_file)),
        Protected::new("the directory of tls.key_file", &dir(&tls.key_file)),
        Protected::new(
            "the directory of tls.dev_ca_cert_file",
            &dir(&tls.dev_ca_cert_file),
        ),
        Protected::new(
            "the directory of tls.dev_ca_key_file",
            &dir(&tls.dev_ca_key_file),
        ),
        Protected::new("audit.dir", &config.audit.dir),
        Protected::new("dev.dir", &config.dev.dir),
    ];
    for k in &config.token.signing_keys {
        out.push(Protected::new(
            format!("the directory of signing key {:?}", k.id),
            &dir(&k.file),
        ));
    }
    out.push(Protected::new(
        "the directory of dlp.token_secret_file",
        &dir(&config.dlp.token_secret_file),
    ));
    out.push(Protected::new(
        "the directory of audit.signing_key_file",
        &dir(&config.audit.signing_key_file),
    ));
    if let Some(fpe) = &config.dlp.fpe_key_file {
        out.push(Protected::new(
            "the directory of dlp.fpe_key_file",
            &dir(fpe),
        ));
    }
    if let crate::config::KeyServiceConfig::Local { file } = &config.keys.service {
        out.push(Protected::new(
            "the directory of the local key service's file",
            &dir(file),
        ));
    }
    out.retain(|p| !p.path.as_os_str().is_empty()); // a path already reported as empty
    out
}

/// Reports every fs root that equals, contains or sits inside a protected path.
pub fn check_roots(
    report: &mut Report,
    gatehouse: &Path,
    roots: &[FsRoot],
    protected: &[Protected],
) {
    for root in roots {
        let mut seen: Vec<&Path> = Vec::new();
        let mut hits: Vec<String> = Vec::new();
        for p in protected
            .iter()
            .filter(|p| checks::paths_overlap(&root.path, &p.path))
        {
            if !seen.contains(&p.path.as_path()) {
                seen.push(&p.path);
                hits.push(format!("{} ({})", p.what, p.path.display()));
            }
        }
        if !hits.is_empty() {
            report.push(
                gatehouse,
                Some(root.line),
                format!(
                    "fs store {:?} root {} overlaps {}; an fs root must not contain or sit inside the gateway's own files",
                    root.store,
                    root.path.display(),
                    hits.join(", ")
                ),
            );
        }
    }
}
