//! Tests of `load` on real files in temporary directories. Here: the shipped config,
//! defaults, path resolution and which files count as partner files. `syntax.rs`: unknown keys
//! and bad typed values; `gateway.rs` and `partners.rs`: semantic checks; `reporting.rs`:
//! several files at once and the printed form.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::config::{Action, ConfigError, PartnerStatus, StoreConfig};

mod access;
mod dlp;
mod docs;
mod federation;
mod gateway;
mod partners;
mod reporting;
mod syntax;

/// A `config/` + `data/` tree in a temporary directory.
pub struct Fixture {
    pub root: TempDir,
}

/// A gatehouse.toml with one fs store and one share (a share table comes last, so tests
/// can append share keys).
pub const GATEHOUSE: &str = r#"data_dir = "../data"

[stores.local]
type = "fs"
root = "../data/objects"

[shares.demo]
store = "local"
bucket = "demo"
"#;

/// A valid partner file for partner `acme`, with key file `acme.pub.pem`.
pub const ACME: &str = r#"
id = "acme"
display_name = "Acme"
owner = "owner@example.com"
contract = "C-1"
justification = "tests"
status = "active"
external_id = "0123456789abcdef"

[[keys]]
id = "k1"
public_key_file = "acme.pub.pem"

[[grants]]
share = "demo"
actions = ["read"]
"#;

impl Fixture {
    /// An empty tree with `config/partners/`.
    pub fn empty() -> Fixture {
        let f = Fixture {
            root: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(f.path("config/partners")).unwrap();
        f
    }

    /// `GATEHOUSE` plus the valid partner `acme` and its key.
    pub fn valid() -> Fixture {
        let f = Fixture::empty();
        f.write("config/gatehouse.toml", GATEHOUSE);
        f.partner("acme", ACME);
        f
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes `config/partners/<id>.toml` and a fresh public key `<id>.pub.pem` beside it.
    pub fn partner(&self, id: &str, text: &str) -> PathBuf {
        self.write(&format!("config/partners/{id}.pub.pem"), &public_key_pem());
        self.write(&format!("config/partners/{id}.toml"), text)
    }

    pub fn load(&self) -> Result<Config, ConfigErrors> {
        load(&self.path("config/gatehouse.toml"))
    }

    /// Loads, expecting success.
    pub fn config(&self) -> Config {
        self.load()
            .unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
    }

    /// Loads, expecting failure.
    pub fn errors(&self) -> Vec<ConfigError> {
        match self.load() {
            Ok(_) => panic!("expected configuration errors"),
            Err(e) => e.0,
        }
    }
}

/// A fresh P-256 public key in SPKI PEM.
pub fn public_key_pem() -> String {
    rcgen::KeyPair::generate().unwrap().public_key_pem()
}

/// 1-based line of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in text"))
        + 1
}

/// Asserts that one error is in a file named `file`, at `line`, and mentions every `parts`.
#[track_caller]
pub fn assert_error(errors: &[ConfigError], file: &str, line: Option<usize>, parts: &[&str]) {
    let found = errors.iter().any(|e| {
        e.file.file_name().is_some_and(|n| n == file)
            && e.line == line
            && parts.iter().all(|p| e.message.contains(p))
    });
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        found,
        "no error in {file} at {line:?} with {parts:?}; got:\n{}",
        all.join("\n")
    );
}

/// Copies the shipped `config/` directory into the fixture.
fn copy_shipped_config(f: &Fixture) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for rel in ["gatehouse.toml", "partners/demo.toml"] {
        let text = std::fs::read_to_string(shipped.join(rel)).unwrap();
        f.write(&format!("config/{rel}"), &text);
    }
    // The shipped file names ../dlp-patterns: bring the detector files along.
    let patterns = Path::new(env!("CARGO_MANIFEST_DIR")).join("dlp-patterns");
    for entry in std::fs::read_dir(patterns).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        f.write(
            &format!("dlp-patterns/{name}"),
            &std::fs::read_to_string(&path).unwrap(),
        );
    }
}

#[test]
fn shipped_config_loads_once_dev_files_exist() {
    let f = Fixture::empty();
    copy_shipped_config(&f);
    f.write(
        "data/dev/demo-partner.external-id",
        "  demo-external-id-0123456789\n",
    );
    f.write("data/dev/demo-partner.pub.pem", &public_key_pem());
    let c = f.config();
    let base = f.path("config");
    assert_eq!(c.data_dir, base.join("../data"));
    assert_eq!(c.tls.cert_file, base.join("../data/tls/server.pem"));
    assert_eq!(
        c.token.signing_keys[0].file,
        base.join("../data/keys/token-signing-gw-1.pem")
    );
    assert_eq!(c.token.token_url, "https://127.0.0.1:8443/v1/token");
    assert_eq!(c.limits.max_put_bytes, 5 << 30);
    assert!(c.dev.bootstrap);
    assert_eq!(
        c.stores["local"],
        StoreConfig::Fs {
            root: base.join("../data/objects")
        }
    );
    let demo = &c.partners["demo"];
    assert_eq!(demo.external_id, "demo-external-id-0123456789", "trimmed");
    assert_eq!(demo.max_session, Duration::from_secs(3600));
    assert_eq!(demo.review_by, Some(jiff::civil::date(2027, 6, 30)));
    assert_eq!(
        demo.keys[0].public_key_file,
        base.join("partners/../../data/dev/demo-partner.pub.pem")
    );
    assert!(
        demo.keys[0]
            .public_key_pem
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let grant = &demo.grants[0];
    assert_eq!((grant.share.as_str(), grant.prefix.as_str()), ("demo", ""));
    let actions: Vec<Action> = grant.actions.iter().collect();
    assert_eq!(actions, [Action::Read, Action::List, Action::Write]);
}

#[test]
fn shipped_config_reports_missing_dev_files_before_bootstrap() {
    let f = Fixture::empty();
    copy_shipped_config(&f);
    let errors = f.errors();
    let demo = std::fs::read_to_string(f.path("config/partners/demo.toml")).unwrap();
    let id_line = line_of(&demo, "external_id_file");
    assert_error(
        &errors,
        "demo.toml",
        Some(id_line),
        &["demo-partner.external-id", "cannot read"],
    );
    let key_line = line_of(&demo, "public_key_file");
    let resolved = f.path("data/dev/demo-partner.pub.pem");
    assert_error(
        &errors,
        "demo.toml",
        Some(key_line),
        &[&resolved.display().to_string()],
    );
    assert_eq!(
        errors.len(),
        2,
        "TLS and signing key files are not checked: {errors:?}"
    );
}

#[test]
fn defaults_applied() {
    let f = Fixture::empty();
    f.write("config/gatehouse.toml", "");
    let c = f.config();
    let data = f.path("config/data");
    assert_eq!(c.data_dir, data);
    let l = &c.listener;
    assert_eq!(l.addr, "127.0.0.1:8443".parse().unwrap());
    assert_eq!(l.max_connections, 1024);
    assert_eq!(l.header_read_timeout, Duration::from_secs(10));
    assert_eq!(l.idle_timeout, Duration::from_secs(60));
    assert_eq!(l.handshake_timeout, Duration::from_secs(10));
    assert_eq!(l.shutdown_grace, Duration::from_secs(30));
    assert_eq!(l.max_header_bytes, 16384);
    assert_eq!(c.tls.cert_file, data.join("tls/server.pem"));
    assert_eq!(c.tls.key_file, data.join("tls/server.key"));
    assert_eq!(c.tls.dev_ca_cert_file, data.join("tls/ca.pem"));
    assert_eq!(c.tls.dev_ca_key_file, data.join("tls/ca.key"));
    assert_eq!(c.tls.dev_names, ["localhost", "127.0.0.1", "::1"]);
    let t = &c.token;
    assert_eq!(t.issuer, "https://127.0.0.1:8443");
    assert_eq!(t.token_url, "https://127.0.0.1:8443/v1/token");
    assert_eq!(t.audience, "gatehouse");
    assert_eq!(t.default_lifetime, Duration::from_secs(15 * 60));
    assert_eq!(t.max_lifetime, Duration::from_secs(12 * 3600));
    assert_eq!(t.max_assertion_lifetime, Duration::from_secs(5 * 60));
    assert_eq!(t.leeway, Duration::from_secs(60));
    assert_eq!(t.signing_keys.len(), 1);
    assert_eq!(t.signing_keys[0].id, "gw-1");
    assert_eq!(
        t.signing_keys[0].file,
        data.join("keys/token-signing-gw-1.pem")
    );
    assert_eq!(c.limits.max_put_bytes, 5 << 30);
    assert_eq!(c.audit.dir, data.join("audit"));
    assert!(!c.dev.bootstrap);
    assert_eq!(c.dev.dir, data.join("dev"));
    assert!(c.stores.is_empty() && c.shares.is_empty() && c.partners.is_empty());
}

#[test]
fn issuer_and_url_default_from_listener_addr() {
    let f = Fixture::empty();
    f.write(
        "config/gatehouse.toml",
        "[listener]\naddr = \"[::1]:9443\"\n",
    );
    let c = f.config();
    assert_eq!(c.token.issuer, "https://[::1]:9443");
    assert_eq!(c.token.token_url, "https://[::1]:9443/v1/token");
}

#[test]
fn partner_defaults_and_relative_paths() {
    let f = Fixture::valid();
    let c = f.config();
    let acme = &c.partners["acme"];
    assert_eq!(acme.status, PartnerStatus::Active);
    assert_eq!(
        acme.max_session, c.token.default_lifetime,
        "max_session defaults to token.default_lifetime"
    );
    assert_eq!(acme.display_name, "Acme");
    assert_eq!(acme.file, f.path("config/partners/acme.toml"));
    assert_eq!(
        acme.keys[0].public_key_file,
        f.path("config/partners/acme.pub.pem")
    );
    assert!(acme.valid_until.is_none() && acme.review_by.is_none());
}

#[test]
fn relative_config_path_resolves_against_its_directory() {
    let f = Fixture::valid();
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(&f.path("config/gatehouse.toml"), &cwd);
    let c = load(&rel).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source, rel);
    assert!(c.data_dir.is_absolute(), "{}", c.data_dir.display());
}

/// `path` relative to `from` (both absolute), with `..` as needed.
fn pathdiff(path: &Path, from: &Path) -> PathBuf {
    let common = path
        .components()
        .zip(from.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in from.components().skip(common) {
        out.push("..");
    }
    out.extend(path.components().skip(common));
    out
}

#[test]
fn editor_temp_files_ignored() {
    let f = Fixture::valid();
    for name in [
        ".#acme.toml",
        "acme.toml~",
        ".acme.toml.swp",
        "#acme.toml#",
        "notes.txt",
        ".hidden.toml",
    ] {
        f.write(
            &format!("config/partners/{name}"),
            "this is = not [valid toml",
        );
    }
    std::fs::create_dir(f.path("config/partners/archive.toml")).unwrap();
    let c = f.config();
    assert_eq!(c.partners.keys().collect::<Vec<_>>(), ["acme"]);
}

#[test]
fn missing_config_file_and_partners_dir_are_errors() {
    let f = Fixture::empty();
    let errors = f.errors();
    assert_error(
        &errors,
        "gatehouse.toml",
        None,
        &["cannot read configuration file"],
    );

    let f = Fixture::empty();
    f.write("config/gatehouse.toml", "partners_dir = \"nowhere\"\n");
    let errors = f.errors();
    assert_error(
        &errors,
        "gatehouse.toml",
        Some(1),
        &["cannot read partners_dir", "nowhere"],
    );
}
