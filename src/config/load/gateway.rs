//! `gatehouse.toml` into the typed gateway settings.
//!
//! Takes the raw file and the absolute directory it lives in; gives a [`Config`] without
//! partners, with every default applied and every path joined to that directory. Each
//! invalid value is recorded in the [`FileReport`] and replaced by its default so checking
//! can go on; the caller discards the result when anything was recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use humantime::format_duration;
use toml::Spanned;

use super::report::FileReport;
use super::storage::{self, FsRoot};
use super::{access, checks};
use crate::config::model::{
    AdminConfig, Config, DevConfig, KeyServiceConfig, KeysConfig, Limits, ListenerConfig,
    MAX_TOKEN_LIFETIME, SigningKeyConfig, TlsConfig, TokenConfig,
};
use crate::config::raw::{
    AdminTable, GatehouseFile, HumanDuration, KeyServiceTable, ListenerTable, SigningKeyTable,
    TlsTable, TokenTable,
};

pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8443);
const DEFAULT_MAX_PUT_BYTES: u64 = 5 << 30;
const MAX_LEEWAY: Duration = Duration::from_secs(60);
const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The gateway part of the configuration and the fs store roots, for the overlap checks that
/// need the partner files too.
pub struct Gateway {
    pub config: Config,
    pub fs_roots: Vec<FsRoot>,
    /// Where the DLP profiles name entities and detectors, for the check against the pack.
    pub dlp_lines: super::dlp::ProfileLines,
}

/// Builds everything but the partners. `base` is the absolute directory of gatehouse.toml.
pub fn build(f: &mut FileReport, raw: GatehouseFile, base: &Path) -> Gateway {
    let data_dir = path_or(f, "data_dir", raw.data_dir, base, || base.join("data"));
    let listener = listener(f, raw.listener);
    let tls = tls(f, raw.tls, base, &data_dir);
    let token = token(f, raw.token, listener.addr, base, &data_dir);
    let max_put_bytes = raw.limits.max_put_bytes.map(|s| respan(s, |b| b.0));
    let limits = Limits {
        max_put_bytes: positive(
            f,
            "limits.max_put_bytes",
            max_put_bytes,
            DEFAULT_MAX_PUT_BYTES,
        ),
    };
    let token_limits = access::token_limits(f, raw.token_limits);
    let audit = super::audit::audit(f, raw.audit, base, &data_dir);
    let keys = keys(f, raw.key_service, base, &data_dir);
    let admin = admin(f, raw.admin, base, &data_dir);
    let dev = DevConfig {
        bootstrap: raw.dev.bootstrap.unwrap_or(false),
        dir: path_or(f, "dev.dir", raw.dev.dir, base, || data_dir.join("dev")),
    };
    let dlp_patterns_dir = raw.dlp_patterns_dir.map(|d| base.join(d.get_ref()));
    let (dlp, dlp_lines) = super::dlp::build(f, raw.dlp, base, &data_dir);
    let alerts = super::alerts::alerts(f, raw.alerts, base, &data_dir);
    let mut config = Config {
        source: f.src.path.clone(),
        data_dir,
        dlp_patterns_dir,
        partners_dir: PathBuf::new(),
        listener,
        tls,
        token,
        limits,
        token_limits,
        audit,
        keys,
        admin,
        dev,
        dlp,
        alerts,
        stores: BTreeMap::new(),
        shares: BTreeMap::new(),
        partners: BTreeMap::new(),
    };
    let fs_roots = storage::build(f, raw.stores, raw.shares, base, &mut config);
    Gateway {
        config,
        fs_roots,
        dlp_lines,
    }
}

fn listener(f: &mut FileReport, raw: ListenerTable) -> ListenerConfig {
    let secs = Duration::from_secs;
    let max_header_bytes = raw.max_header_bytes.map(|s| respan(s, |b| b.0));
    ListenerConfig {
        addr: raw.addr.map_or(DEFAULT_ADDR, |a| a.into_inner().0),
        max_connections: positive(f, "listener.max_connections", raw.max_connections, 1024),
        header_read_timeout: timeout(
            f,
            "listener.header_read_timeout",
            raw.header_read_timeout,
            secs(10),
        ),
        idle_timeout: timeout(f, "listener.idle_timeout", raw.idle_timeout, secs(60)),
        handshake_timeout: timeout(
            f,
            "listener.handshake_timeout",
            raw.handshake_timeout,
            secs(10),
        ),
        shutdown_grace: timeout(f, "listener.shutdown_grace", raw.shutdown_grace, secs(30)),
        max_header_bytes: usize::try_from(positive(
            f,
            "listener.max_header_bytes",
            max_header_bytes,
            16384,
        ))
        .unwrap_or(usize::MAX),
        proxy_protocol: match &raw.proxy_protocol {
            Some(p) if *p.get_ref() && raw.trusted_proxies.is_empty() => {
                f.value(p, "listener.proxy_protocol = true needs listener.trusted_proxies: only trusted peers are read for a PROXY header");
                false
            }
            Some(p) => *p.get_ref(),
            None => false,
        },
        trusted_proxies: raw.trusted_proxies.into_iter().map(|c| c.0).collect(),
    }
}

fn tls(f: &mut FileReport, raw: TlsTable, base: &Path, data_dir: &Path) -> TlsConfig {
    let tls_dir = data_dir.join("tls");
    let dev_names = match raw.dev_names {
        None => ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec(),
        Some(list) => {
            if list.get_ref().is_empty() {
                f.value(
                    &list,
                    "tls.dev_names is empty; list at least one host name or IP",
                );
            }
            let mut names = Vec::new();
            for n in list.into_inner() {
                if let Err(e) = checks::host(n.get_ref()) {
                    f.value(&n, format!("tls.dev_names: {e}"));
                }
                names.push(n.into_inner());
            }
            names
        }
    };
    TlsConfig {
        cert_file: path_or(f, "tls.cert_file", raw.cert_file, base, || {
            tls_dir.join("server.pem")
        }),
        key_file: path_or(f, "tls.key_file", raw.key_file, base, || {
            tls_dir.join("server.key")
        }),
        dev_ca_cert_file: path_or(
            f,
            "tls.dev_ca_cert_file",
            raw.dev_ca_cert_file,
            base,
            || tls_dir.join("ca.pem"),
        ),
        dev_ca_key_file: path_or(f, "tls.dev_ca_key_file", raw.dev_ca_key_file, base, || {
            tls_dir.join("ca.key")
        }),
        dev_names,
    }
}

fn token(
    f: &mut FileReport,
    raw: TokenTable,
    addr: SocketAddr,
    base: &Path,
    data_dir: &Path,
) -> TokenConfig {
    let dur = |v: Option<Spanned<HumanDuration>>, default| match v {
        Some(v) => (v.get_ref().0, Some(v.span())),
        None => (default, None),
    };
    let (max_lifetime, max_span) = dur(raw.max_lifetime, MAX_TOKEN_LIFETIME);
    let (default_lifetime, default_span) = dur(raw.default_lifetime, DEFAULT_TOKEN_LIFETIME);
    let (assertion, assertion_span) = dur(raw.max_assertion_lifetime, MAX_ASSERTION_LIFETIME);
    let (leeway, leeway_span) = dur(raw.leeway, MAX_LEEWAY);
    let mut check = |ok: bool, span: Option<Range<usize>>, msg: String| {
        if !ok {
            f.at(span, msg);
        }
    };
    check(
        !max_lifetime.is_zero() && max_lifetime <= MAX_TOKEN_LIFETIME,
        max_span.clone(),
        format!(
            "token.max_lifetime is {:?}; must be above 0 and at most 12h",
            show(max_lifetime)
        ),
    );
    check(
        !default_lifetime.is_zero() && default_lifetime <= max_lifetime,
        default_span.or(max_span),
        format!(
            "token.default_lifetime is {:?}; must be above 0 and at most token.max_lifetime ({})",
            show(default_lifetime),
            show(max_lifetime)
        ),
    );
    check(
        assertion >= std::time::Duration::from_secs(60) && assertion <= MAX_ASSERTION_LIFETIME,
        assertion_span,
        format!(
            "token.max_assertion_lifetime is {:?}; must be at least 60s (gatehouse token signs 60 s assertions) and at most 5m",
            show(assertion)
        ),
    );
    check(
        leeway <= MAX_LEEWAY,
        leeway_span,
        format!("token.leeway is {:?}; at most 60s allowed", show(leeway)),
    );
    let issuer_span = raw.issuer.as_ref().map(Spanned::span);
    let issuer = text_or(f, "token.issuer", raw.issuer, || format!("https://{addr}"));
    let url_span = raw.url.as_ref().map(Spanned::span);
    let token_url = text_or(f, "token.url", raw.url, || {
        format!("{}/v1/token", issuer.trim_end_matches('/'))
    });
    if let Err(e) = checks::https_url("token.url", &token_url) {
        match url_span {
            Some(span) => f.at(Some(span), e),
            None => f.at(
                issuer_span,
                format!("{e} (derived from token.issuer; set token.url)"),
            ),
        }
    }
    TokenConfig {
        token_url,
        issuer,
        audience: text_or(f, "token.audience", raw.audience, || "gatehouse".to_owned()),
        default_lifetime,
        max_lifetime,
        max_assertion_lifetime: assertion,
        leeway,
        signing_keys: signing_keys(f, raw.signing_keys, base, data_dir),
    }
}

fn signing_keys(
    f: &mut FileReport,
    raw: Option<Spanned<Vec<SigningKeyTable>>>,
    base: &Path,
    data_dir: &Path,
) -> Vec<SigningKeyConfig> {
    let Some(list) = raw else {
        return vec![SigningKeyConfig {
            id: "gw-1".to_owned(),
            file: data_dir.join("keys").join("token-signing-gw-1.pem"),
        }];
    };
    if list.get_ref().is_empty() {
        f.value(
            &list,
            "token.signing_keys is empty; at least one signing key is required",
        );
    }
    let mut seen = BTreeSet::new();
    let mut keys = Vec::new();
    for k in list.into_inner() {
        if let Err(e) = checks::name("signing key id", k.id.get_ref()) {
            f.value(&k.id, e);
        } else if !seen.insert(k.id.get_ref().clone()) {
            f.value(
                &k.id,
                format!("duplicate signing key id {:?}", k.id.get_ref()),
            );
        }
        let id = k.id.into_inner();
        let file = path_or(
            f,
            "token.signing_keys.file",
            Some(k.file),
            base,
            PathBuf::new,
        );
        keys.push(SigningKeyConfig { id, file });
    }
    keys
}

/// A path setting joined to `base`, or the default when absent. Empty is an error.
pub fn path_or(
    f: &mut FileReport,
    key: &str,
    raw: Option<Spanned<String>>,
    base: &Path,
    default: impl FnOnce() -> PathBuf,
) -> PathBuf {
    match raw {
        Some(v) if v.get_ref().trim().is_empty() => {
            f.value(&v, format!("{key} must not be empty"));
            default()
        }
        Some(v) => base.join(v.into_inner()),
        None => default(),
    }
}

/// A text setting, or the default when absent. Empty is an error.
fn text_or(
    f: &mut FileReport,
    key: &str,
    raw: Option<Spanned<String>>,
    default: impl FnOnce() -> String,
) -> String {
    match raw {
        Some(v) if v.get_ref().trim().is_empty() => {
            f.value(&v, format!("{key} must not be empty"));
            default()
        }
        Some(v) => v.into_inner(),
        None => default(),
    }
}

/// A count that must be above zero.
fn positive<T>(f: &mut FileReport, key: &str, raw: Option<Spanned<T>>, default: T) -> T
where
    T: Copy + Default + PartialEq + std::fmt::Display,
{
    match raw {
        Some(v) if *v.get_ref() == T::default() => {
            f.value(
                &v,
                format!("{key} is {}; must be greater than 0", v.get_ref()),
            );
            default
        }
        Some(v) => v.into_inner(),
        None => default,
    }
}

/// A duration (timeout, interval) that must be above zero.
pub(super) fn timeout(
    f: &mut FileReport,
    key: &str,
    raw: Option<Spanned<HumanDuration>>,
    default: Duration,
) -> Duration {
    match raw {
        Some(v) if v.get_ref().0.is_zero() => {
            f.value(
                &v,
                format!("{key} is {:?}; must be greater than 0", show(v.get_ref().0)),
            );
            default
        }
        Some(v) => v.into_inner().0,
        None => default,
    }
}

fn respan<A, B>(s: Spanned<A>, map: impl FnOnce(A) -> B) -> Spanned<B> {
    let span = s.span();
    Spanned::new(span, map(s.into_inner()))
}

/// A duration the way the configuration writes it, e.g. `15m`.
pub fn show(d: Duration) -> String {
    format_duration(d).to_string()
}

/// `[key_service]`: local key file (default) or AWS KMS, and the data-key cache.
fn keys(f: &mut FileReport, raw: KeyServiceTable, base: &Path, data_dir: &Path) -> KeysConfig {
    let kind = raw.kind.as_ref().map_or("local", |k| k.get_ref().as_str());
    let service = match kind {
        "kms" => {
            if let Some(file) = &raw.file {
                f.value(
                    file,
                    "key_service.file is for type = \"local\" only".to_string(),
                );
            }
            if let Some(url) = &raw.endpoint_url
                && let Err(e) = checks::endpoint_url(url.get_ref())
            {
                f.value(url, format!("key_service.endpoint_url: {e}"));
            }
            KeyServiceConfig::Kms {
                region: raw.region,
                endpoint_url: raw.endpoint_url.map(Spanned::into_inner),
                key_id: raw.key_id,
            }
        }
        other => {
            if other != "local"
                && let Some(k) = &raw.kind
            {
                f.value(
                    k,
                    format!("key_service.type {other:?} is not \"local\" or \"kms\""),
                );
            }
            for (present, name) in [
                (raw.region.is_some(), "region"),
                (raw.endpoint_url.is_some(), "endpoint_url"),
                (raw.key_id.is_some(), "key_id"),
            ] {
                if present && let Some(k) = &raw.kind {
                    f.value(k, format!("key_service.{name} is for type = \"kms\" only"));
                }
            }
            KeyServiceConfig::Local {
                file: path_or(f, "key_service.file", raw.file, base, || {
                    data_dir.join("keys/local-kek.json")
                }),
            }
        }
    };
    KeysConfig {
        service,
        cache_ttl: timeout(
            f,
            "key_service.cache_ttl",
            raw.cache_ttl,
            Duration::from_secs(300),
        ),
        cache_capacity: positive(f, "key_service.cache_capacity", raw.cache_capacity, 10_000),
    }
}

/// `[admin]`: loopback only until the admin listener speaks TLS.
fn admin(f: &mut FileReport, raw: AdminTable, base: &Path, data_dir: &Path) -> AdminConfig {
    let default = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9901);
    let addr = match raw.addr {
        Some(a) => {
            let addr = a.get_ref().0;
            if !addr.ip().is_loopback() {
                f.value(&a, format!("admin.addr {addr} is not a loopback address; the admin listener has no TLS yet, so it must stay on loopback"));
            }
            addr
        }
        None => default,
    };
    AdminConfig {
        addr,
        token_file: path_or(f, "admin.token_file", raw.token_file, base, || {
            data_dir.join("keys/admin.token")
        }),
        revocations_file: path_or(
            f,
            "admin.revocations_file",
            raw.revocations_file,
            base,
            || data_dir.join("revocations.json"),
        ),
    }
}
