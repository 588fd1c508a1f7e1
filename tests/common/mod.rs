//! Test harness: a real gateway on 127.0.0.1:0, started through the same `run` as `main`,
//! with the `fs` store or S3 served by moto on loopback, and HTTPS clients trusting its dev CA.
#![allow(dead_code)]

pub mod idp;
pub mod moto;

/// Runs each listed `async fn name(Backend)` once per backend, as `fs::name` and `s3::name`.
#[allow(unused_macros)]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Fs).await })*
        }
        mod s3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::S3).await })*
        }
    };
}

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gatehouse::audit::ocsf;
use gatehouse::auth::client::{Profile, sign_assertion};
use rcgen::KeyPair;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Fs,
    S3,
}

/// A partner the test can act as.
pub struct TestPartner {
    pub id: String,
    pub key_id: String,
    pub key_pem: String,
    pub external_id: String,
}

/// What a test gateway is made of. Partners are `(id, status, grants TOML)`.
pub struct Setup {
    pub backend: Backend,
    pub partners: Vec<(&'static str, &'static str, &'static str)>,
    pub max_put_bytes: u64,
    /// Extra lines for the `[listener]` table.
    pub listener: &'static str,
    /// Point today's audit file at /dev/full before start, so every audit write fails (ENOSPC).
    pub audit_on_full_device: bool,
    /// Tables appended to `gatehouse.toml`.
    pub gateway_extra: &'static str,
    /// Both shares are envelope-encrypted: with the local key file on `Fs`, with KMS (moto)
    /// on `S3`.
    pub encrypt: bool,
    /// Extra lines for the `[shares.exports]` table (e.g. `dlp_profile = "pii"`).
    pub exports_extra: &'static str,
}

/// Token endpoint limits loose enough for tests that mint many tokens from 127.0.0.1.
pub const LOOSE_TOKEN_LIMITS: &str = "[token_limits]\nper_ip = \"10000/s\"\nlockout_after = 1000\n";

/// Loose token limits and two DLP profiles: `pii` (masks, keeps a card's last four, blocks
/// private keys) and `strict` (redacts, tokenizes emails, same cards and keys).
pub const DLP_GATEWAY: &str = r#"
[token_limits]
per_ip = "10000/s"
lockout_after = 1000

[dlp.profiles.pii]
default_action = "mask"
[dlp.profiles.pii.actions]
CREDIT_CARD = { action = "mask", keep_last = 4 }
PRIVATE_KEY = "block"

[dlp.profiles.strict]
default_action = "redact"
[dlp.profiles.strict.actions]
CREDIT_CARD = { action = "mask", keep_last = 4 }
EMAIL_ADDRESS = "tokenize"
PRIVATE_KEY = "block"
"#;

/// A gateway with [`DLP_GATEWAY`]'s profiles and `pii` on the `exports` share.
pub async fn start_dlp(
    backend: Backend,
    partners: &[(&'static str, &'static str, &'static str)],
    encrypt: bool,
) -> Gateway {
    Gateway::start(Setup {
        backend,
        partners: partners.to_vec(),
        gateway_extra: DLP_GATEWAY,
        exports_extra: "dlp_profile = \"pii\"",
        encrypt,
        ..Setup::default()
    })
    .await
}

/// Shares every test gateway has: `exports` (internal prefix `internal/exp/`) and `other`.
pub const DEFAULT_PARTNERS: &[(&str, &str, &str)] = &[
    (
        "acme",
        "active",
        r#"
[[grants]]
share = "exports"
prefix = "acme/"
actions = ["read", "list"]
[[grants]]
share = "exports"
prefix = "acme/inbox/"
actions = ["write", "delete", "read", "list"]
"#,
    ),
    (
        "full",
        "active",
        r#"
[[grants]]
share = "exports"
prefix = ""
actions = ["read", "list", "write", "delete"]
"#,
    ),
    (
        "globex",
        "active",
        r#"
[[grants]]
share = "other"
prefix = ""
actions = ["read", "list", "write"]
"#,
    ),
    (
        "dormant",
        "suspended",
        r#"
[[grants]]
share = "exports"
prefix = ""
actions = ["read"]
"#,
    ),
];

impl Default for Setup {
    fn default() -> Self {
        Setup {
            backend: Backend::Fs,
            partners: DEFAULT_PARTNERS.to_vec(),
            max_put_bytes: 64 * 1024 * 1024,
            listener: "",
            audit_on_full_device: false,
            gateway_extra: LOOSE_TOKEN_LIMITS,
            encrypt: false,
            exports_extra: "",
        }
    }
}

pub struct Gateway {
    pub dir: TempDir,
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub ca_pem: String,
    pub partners: BTreeMap<String, TestPartner>,
    /// The state the gateway started with (audit writer, revocations and the like are the
    /// same across reloads; for the configuration in force use `live.state()`).
    pub state: Arc<gatehouse::state::State>,
    /// The configuration in force, reloadable.
    pub live: Arc<gatehouse::reload::Live>,
    /// The gateway's `gatehouse.toml`.
    pub config_path: std::path::PathBuf,
    /// The admin listener (health, revocation) of this gateway.
    pub admin_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A written configuration directory for a test gateway, not yet running.
pub struct Prepared {
    pub dir: TempDir,
    pub config_path: PathBuf,
    pub addr: SocketAddr,
    pub base: String,
    pub partners: BTreeMap<String, TestPartner>,
}

impl Prepared {
    /// Writes `gatehouse.toml` and partner files for `setup` into a temp dir, listening on `addr`.
    pub fn write(setup: &Setup, addr: SocketAddr) -> Prepared {
        let dir = tempfile::tempdir().unwrap();
        let base = format!("https://127.0.0.1:{}", addr.port());
        let store = match setup.backend {
            Backend::Fs => "type = \"fs\"\nroot = \"data/objects\"".to_string(),
            Backend::S3 => format!(
                "type = \"s3\"\nendpoint_url = \"{}\"\nforce_path_style = true\nregion = \"us-east-1\"",
                moto::endpoint()
            ),
        };
        let suffix = ulid::Ulid::new().to_string().to_lowercase();
        // Every gateway gets its own admin port, so child processes never collide on 9901.
        let admin = if setup.gateway_extra.contains("[admin]") {
            String::new()
        } else {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            format!("[admin]\naddr = \"{port}\"\n")
        };
        let encrypt = if setup.encrypt {
            "encrypt = \"envelope\""
        } else {
            ""
        };
        let config = format!(
            r#"
data_dir = "data"
[listener]
addr = "{addr}"
{grace}
{listener}
[tls]
dev_names = ["localhost", "127.0.0.1"]
[token]
url = "{base}/v1/token"
issuer = "{base}"
audience = "gatehouse-test"
[limits]
max_put_bytes = {max_put}
[dev]
bootstrap = true
[stores.main]
{store}
[shares.exports]
store = "main"
bucket = "exports-{suffix}"
prefix = "internal/exp/"
{encrypt}
{exports_extra}
[shares.other]
store = "main"
bucket = "other-{suffix}"
prefix = "other/"
{encrypt}
{extra}
{admin}
"#,
            max_put = setup.max_put_bytes,
            listener = setup.listener,
            grace = if setup.listener.contains("shutdown_grace") {
                ""
            } else {
                "shutdown_grace = \"5s\""
            },
            extra = setup.gateway_extra,
            exports_extra = setup.exports_extra
        );
        let cfg_dir = dir.path().join("config");
        std::fs::create_dir_all(cfg_dir.join("partners/keys")).unwrap();
        let config_path = cfg_dir.join("gatehouse.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut partners = BTreeMap::new();
        for (id, status, grants) in &setup.partners {
            partners.insert(id.to_string(), write_partner(&cfg_dir, id, status, grants));
        }
        Prepared {
            dir,
            config_path,
            addr,
            base,
            partners,
        }
    }
}

impl Gateway {
    pub async fn start(mut setup: Setup) -> Gateway {
        if setup.encrypt && setup.backend == Backend::S3 {
            let key_id = moto::create_kms_key().await;
            let extra = format!(
                "{}\n[key_service]\ntype = \"kms\"\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\nkey_id = \"{key_id}\"\n",
                setup.gateway_extra,
                moto::endpoint()
            );
            setup.gateway_extra = Box::leak(extra.into_boxed_str());
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Prepared::write(&setup, listener.local_addr().unwrap());
        let gw = gatehouse::config::load_gateway(&p.config_path).unwrap_or_else(|e| panic!("{e}"));
        gatehouse::bootstrap::run(&gw).await.unwrap();
        let cfg = gatehouse::config::load(&p.config_path).unwrap_or_else(|e| panic!("{e}"));
        if setup.backend == Backend::S3 {
            for share in cfg.shares.values() {
                moto::create_bucket(&share.bucket).await;
            }
        }
        if setup.audit_on_full_device {
            std::fs::create_dir_all(&cfg.audit.dir).unwrap();
            std::os::unix::fs::symlink("/dev/full", cfg.audit.dir.join(today_audit_file()))
                .unwrap();
        }
        let ca_path = cfg.tls.dev_ca_cert_file.clone();
        let state = gatehouse::state::State::build(cfg)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let live = gatehouse::reload::Live::new(state, &p.config_path);
        let state = live.state();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(gatehouse::run(listener, live.clone(), async {
            let _ = rx.await;
        }));
        // The admin listener on the configured address, so CLI commands that read the
        // config (`gatehouse reload`, `partner suspend`, ...) reach this gateway.
        let admin = tokio::net::TcpListener::bind(state.config.admin.addr)
            .await
            .unwrap();
        let admin_addr = admin.local_addr().unwrap();
        tokio::spawn(gatehouse::admin::run(
            admin,
            live.clone(),
            std::future::pending(),
        ));
        let ca_pem = std::fs::read_to_string(ca_path).unwrap();
        let client = client_for(&ca_pem, false);
        Gateway {
            dir: p.dir,
            addr: p.addr,
            base: p.base,
            client,
            ca_pem,
            partners: p.partners,
            state,
            live,
            config_path: p.config_path,
            admin_addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn partner(&self, id: &str) -> &TestPartner {
        &self.partners[id]
    }

    pub fn profile(&self, id: &str) -> Profile {
        let p = self.partner(id);
        Profile {
            endpoint: self.base.clone(),
            partner: p.id.clone(),
            external_id: p.external_id.clone(),
            key_file: PathBuf::from("unused"),
            ca_file: None,
            key_id: Some(p.key_id.clone()),
        }
    }

    /// A fresh client assertion for `id`.
    pub fn assertion(&self, id: &str) -> String {
        let p = self.partner(id);
        sign_assertion(
            &self.profile(id),
            &p.key_pem,
            &self.url("/v1/token"),
            jiff::Timestamp::now(),
        )
        .unwrap()
    }

    /// POSTs a token request form; gives status and JSON body.
    pub async fn token_request(&self, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let (status, body, _) = self.token_request_id(form).await;
        (status, body)
    }

    /// [`Gateway::token_request`], with the request id the answer carries.
    pub async fn token_request_id(
        &self,
        form: &[(&str, &str)],
    ) -> (u16, serde_json::Value, String) {
        let resp = self
            .client
            .post(self.url("/v1/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let id = request_id(&resp);
        (status, resp.json().await.unwrap(), id)
    }

    /// Gets an access token for a partner through the token endpoint.
    pub async fn token(&self, id: &str) -> String {
        let assertion = self.assertion(id);
        let (status, body) = self
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion),
                ("external_id", &self.partner(id).external_id),
            ])
            .await;
        assert_eq!(status, 200, "token for {id}: {body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    pub fn audit_dir(&self) -> PathBuf {
        self.state.config.audit.dir.clone()
    }

    /// Every audit line written so far (waits for the writer to catch up with `at_least`),
    /// each checked to be an OCSF event and given in its native view (gatehouse's names).
    pub async fn audit_lines(&self, at_least: u64) -> Vec<serde_json::Value> {
        for _ in 0..500 {
            if self.state.audit.written() >= at_least {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(self.audit_dir()).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            lines.extend(complete_lines(&text).map(|l| {
                let v = serde_json::from_str::<serde_json::Value>(l).unwrap();
                assert!(ocsf::is_ocsf(&v), "not an OCSF event: {l}");
                ocsf::native(&v)
            }));
        }
        lines
    }

    /// Every audit line written so far as it is on disk (OCSF events).
    pub async fn audit_raw_lines(&self, at_least: u64) -> Vec<serde_json::Value> {
        let _ = self.audit_lines(at_least).await;
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(self.audit_dir()).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            lines.extend(complete_lines(&text).map(|l| serde_json::from_str(l).unwrap()));
        }
        lines
    }

    /// The audit event of one request id.
    pub async fn audit_event(&self, request_id: &str) -> serde_json::Value {
        for _ in 0..500 {
            let found = self
                .audit_lines(0)
                .await
                .into_iter()
                // The request's own record, not the `request_start` written before its bytes.
                .find(|l| l["request_id"] == request_id && l["kind"] != "request_start");
            if let Some(ev) = found {
                return ev;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no audit event for request {request_id}");
    }

    /// Sends raw bytes over TLS (HTTP/1.1) and gives the raw response up to `max` bytes.
    pub async fn raw(&self, request: &[u8]) -> String {
        let mut tls = self.raw_connect().await;
        tls.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tls.read_to_end(&mut out),
        )
        .await;
        String::from_utf8_lossy(&out).into_owned()
    }

    pub async fn raw_connect(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        self.tls_over(tcp).await.unwrap()
    }

    /// A TLS connection that starts with a PROXY protocol v2 header naming `source`.
    pub async fn raw_connect_via_proxy(
        &self,
        source: &str,
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let src: SocketAddr = format!("{source}:40000").parse().unwrap();
        let header = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (src, self.addr),
        )
        .build()
        .unwrap();
        tcp.write_all(&header).await.unwrap();
        self.tls_over(tcp).await.unwrap()
    }

    /// A token request sent through a PROXY-protocol connection (HTTP/1.1, raw).
    pub async fn token_via_proxy(&self, id: &str, source: &str) -> String {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", id)
            .append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .append_pair("client_assertion", &self.assertion(id))
            .append_pair("external_id", &self.partner(id).external_id)
            .finish();
        let mut tls = self.raw_connect_via_proxy(source).await;
        let req = format!(
            "POST /v1/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
            form.len()
        );
        tls.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tls.read_to_string(&mut out).await.unwrap();
        let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
        let json: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|_| panic!("{out}"));
        json["access_token"].as_str().unwrap().to_string()
    }

    /// Runs a TLS handshake over `tcp`, trusting the gateway's dev CA.
    pub async fn tls_over(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(gatehouse::tls::provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        connector.connect(name, tcp).await
    }

    /// Writes an object straight into the `exports` share's store, bypassing the gateway
    /// (to seed data, or to tamper with what the gateway stored).
    pub async fn store_put(&self, key: &str, body: Vec<u8>, metadata: BTreeMap<String, String>) {
        let share = &self.state.shares["exports"];
        let len = body.len() as u64;
        let stream: gatehouse::store::ByteStream =
            Box::pin(futures_util::stream::once(async move {
                Ok(bytes::Bytes::from(body))
            }));
        let opts = gatehouse::store::PutOptions {
            metadata,
            content_length: Some(len),
            ..Default::default()
        };
        share
            .store
            .put(&format!("{}{key}", share.config.prefix), stream, opts)
            .await
            .unwrap();
    }

    /// Every key under `prefix` in the `exports` share's store (share prefix stripped).
    pub async fn store_list(&self, prefix: &str) -> Vec<String> {
        let share = &self.state.shares["exports"];
        let mut keys = Vec::new();
        let mut start_after = None;
        loop {
            let page = share
                .store
                .list(&gatehouse::store::ListRequest {
                    prefix: format!("{}{prefix}", share.config.prefix),
                    delimiter: None,
                    start_after: start_after.clone(),
                    max_keys: 1000,
                })
                .await
                .unwrap();
            keys.extend(page.objects.iter().map(|e| {
                e.key
                    .strip_prefix(&share.config.prefix)
                    .unwrap_or(&e.key)
                    .to_string()
            }));
            match page.objects.last() {
                Some(last) if page.is_truncated => start_after = Some(last.key.clone()),
                _ => return keys,
            }
        }
    }

    /// Reads an object straight from the `exports` share's store: stored bytes and metadata.
    pub async fn store_get(&self, key: &str) -> (Vec<u8>, gatehouse::store::ObjectMeta) {
        use futures_util::StreamExt;
        let share = &self.state.shares["exports"];
        let got = share
            .store
            .get(&format!("{}{key}", share.config.prefix), None)
            .await
            .unwrap();
        let mut body = Vec::new();
        let mut s = got.body;
        while let Some(c) = s.next().await {
            body.extend_from_slice(&c.unwrap());
        }
        (body, got.meta)
    }

    /// GET of a gateway path with a bearer token.
    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// POSTs a revocation to the admin listener with the admin token; gives the status.
    pub async fn revoke(&self, body: serde_json::Value) -> u16 {
        let token = std::fs::read_to_string(&self.state.config.admin.token_file).unwrap();
        let resp = reqwest::Client::new()
            .post(format!("http://{}/revoke", self.admin_addr))
            .bearer_auth(token.trim())
            .json(&body)
            .send()
            .await
            .unwrap();
        resp.status().as_u16()
    }

    /// Stops accepting, drains, and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

use rustls_pki_types::pem::PemObject;

/// The `<Code>` of an S3 XML error body (empty when there is none).
/// The `x-amz-request-id` of a response: the `request_id` of its audit event.
/// The lines of an audit file that are complete: the writer may be half-way through the
/// last one while a test reads the file.
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n'))
}

pub fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

pub fn s3_code(body: &str) -> &str {
    let Some(start) = body.find("<Code>").map(|i| i + 6) else {
        return "";
    };
    body[start..]
        .find("</Code>")
        .map_or("", |end| &body[start..start + end])
}

/// The name of today's audit file.
pub fn today_audit_file() -> String {
    jiff::Timestamp::now()
        .strftime("audit-%Y-%m-%d.jsonl")
        .to_string()
}

/// An HTTPS client that trusts only the gateway's dev CA.
pub fn client_for(ca_pem: &str, http2_only: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let mut b = reqwest::Client::builder().tls_certs_only([ca]).no_proxy();
    if http2_only {
        b = b.http2_prior_knowledge();
    }
    b.build().unwrap()
}

fn write_partner(cfg_dir: &Path, id: &str, status: &str, grants: &str) -> TestPartner {
    let kp = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let key_id = format!("{id}-k1");
    let key_file = cfg_dir.join(format!("partners/keys/{key_id}.pem"));
    std::fs::write(&key_file, kp.public_key_pem()).unwrap();
    let external_id = format!("ext-{id}-{}", ulid::Ulid::new());
    let toml = format!(
        r#"id = "{id}"
display_name = "Test partner {id}"
owner = "owner@example.com"
contract = "TEST-1"
justification = "integration tests"
status = "{status}"
external_id = "{external_id}"
max_session = "1h"
{grants}
[[keys]]
id = "{key_id}"
public_key_file = "keys/{key_id}.pem"
"#
    );
    std::fs::write(cfg_dir.join(format!("partners/{id}.toml")), toml).unwrap();
    TestPartner {
        id: id.into(),
        key_id,
        key_pem: kp.serialize_pem(),
        external_id,
    }
}
