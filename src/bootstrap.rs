//! First-run dev material for the embedded default (`[dev] bootstrap = true`).
//!
//! Takes the gateway configuration; creates whatever of these is missing, never overwriting:
//! a dev CA and a server certificate for `tls.dev_names`, the token signing keys, the demo
//! partner's key pair and external id, its profile `demo-partner.json`, the DLP token secret
//! (when a DLP profile is configured), and the demo objects (with `customers.csv`, fake people
//! for the DLP masking demo).
//! Private keys are written with mode 0600, atomically (temp file, then rename). Fails with
//! the path that could not be written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::config::Config;

/// Files of the demo partner inside `dev.dir`.
pub struct DemoFiles {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub external_id: PathBuf,
    pub profile: PathBuf,
}

impl DemoFiles {
    pub fn new(dev_dir: &Path) -> DemoFiles {
        DemoFiles {
            private_key: dev_dir.join("demo-partner.key.pem"),
            public_key: dev_dir.join("demo-partner.pub.pem"),
            external_id: dev_dir.join("demo-partner.external-id"),
            profile: dev_dir.join("demo-partner.json"),
        }
    }
}

/// Creates the missing dev material. Returns the paths it created.
pub async fn run(cfg: &Config) -> Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    tls_material(cfg, &mut created)?;
    for key in &cfg.token.signing_keys {
        if !key.file.exists() {
            let kp = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
            write_file(&key.file, kp.serialize_pem().as_bytes(), true)?;
            created.push(key.file.clone());
        }
    }
    demo_partner(cfg, &mut created)?;
    dlp_token_secret(cfg, &mut created)?;
    demo_objects(cfg, &mut created).await?;
    Ok(created)
}

fn tls_material(cfg: &Config, created: &mut Vec<PathBuf>) -> Result<()> {
    let tls = &cfg.tls;
    if tls.cert_file.exists() && tls.key_file.exists() {
        return Ok(());
    }
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let ymd = |d: jiff::civil::Date| {
        rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
    };
    // The CA's parameters are rebuilt the same way each time, so an existing CA key can
    // sign a new server certificate that chains to the CA certificate on disk.
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(
        DnType::CommonName,
        "gatehouse dev CA (do not trust in production)",
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = ymd(today.yesterday()?);
    ca_params.not_after = ymd(today.saturating_add(jiff::Span::new().years(10)));
    let ca_key = if tls.dev_ca_key_file.exists() && tls.dev_ca_cert_file.exists() {
        KeyPair::from_pem(&read(&tls.dev_ca_key_file)?)?
    } else {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        write_file(
            &tls.dev_ca_key_file,
            ca_key.serialize_pem().as_bytes(),
            true,
        )?;
        write_file(&tls.dev_ca_cert_file, ca_cert.pem().as_bytes(), false)?;
        created.extend([tls.dev_ca_key_file.clone(), tls.dev_ca_cert_file.clone()]);
        ca_key
    };
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(tls.dev_names.clone())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "gatehouse dev server");
    params.not_before = ymd(today.yesterday()?);
    params.not_after = ymd(today.saturating_add(jiff::Span::new().years(1)));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;
    write_file(&tls.key_file, key.serialize_pem().as_bytes(), true)?;
    write_file(&tls.cert_file, cert.pem().as_bytes(), false)?;
    created.extend([tls.key_file.clone(), tls.cert_file.clone()]);
    Ok(())
}

fn demo_partner(cfg: &Config, created: &mut Vec<PathBuf>) -> Result<()> {
    let files = DemoFiles::new(&cfg.dev.dir);
    if !files.private_key.exists() || !files.public_key.exists() {
        let kp = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        write_file(&files.private_key, kp.serialize_pem().as_bytes(), true)?;
        write_file(&files.public_key, kp.public_key_pem().as_bytes(), false)?;
        created.extend([files.private_key.clone(), files.public_key.clone()]);
    }
    if !files.external_id.exists() {
        let mut raw = [0u8; 24];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| anyhow::anyhow!("random generator failed"))?;
        let id = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
        write_file(&files.external_id, format!("{id}\n").as_bytes(), true)?;
        created.push(files.external_id.clone());
    }
    if !files.profile.exists() {
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let external_id = read(&files.external_id)?.trim().to_string();
        let profile = serde_json::json!({
            "endpoint": format!("https://{}", cfg.listener.addr),
            "partner": "demo",
            "external_id": external_id,
            "key_id": "demo-1",
            "key_file": abs(&files.private_key),
            "ca_file": abs(&cfg.tls.dev_ca_cert_file),
        });
        write_file(
            &files.profile,
            serde_json::to_string_pretty(&profile)?.as_bytes(),
            true,
        )?;
        created.push(files.profile.clone());
    }
    Ok(())
}

/// The data owner's DLP token secret (per-partner `tokenize`/`hash` keys derive from it),
/// when a DLP profile is configured: 32 random bytes, base64url, mode 0600.
fn dlp_token_secret(cfg: &Config, created: &mut Vec<PathBuf>) -> Result<()> {
    let file = &cfg.dlp.token_secret_file;
    if cfg.dlp.profiles.is_empty() || file.exists() {
        return Ok(());
    }
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut raw[..]).map_err(|_| anyhow::anyhow!("random generator failed"))?;
    let text = zeroize::Zeroizing::new(base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &raw[..],
    ));
    write_file(file, format!("{}\n", text.as_str()).as_bytes(), true)?;
    created.push(file.clone());
    Ok(())
}

/// Fake people for the quickstart's masking demo: test card numbers (Luhn-valid), SSNs in
/// valid ranges, emails on example domains, phone numbers.
const CUSTOMERS_CSV: &[u8] = b"id,name,email,phone,card,ssn,city
1,Ada Park,ada.park@example.com,+1 415 555 0142,4111 1111 1111 1111,536-22-8845,San Francisco
2,Ben Ortiz,ben.ortiz@example.org,+1 212 555 0187,5555 5555 5555 4444,412-35-7719,New York
3,Chloe Nguyen,chloe.n@example.net,+44 20 7946 0958,3782 822463 10005,301-64-2290,London
4,Dev Rao,dev.rao@example.com,+1 312 555 0110,6011 1111 1111 1117,523-81-4402,Chicago
";

/// Demo objects, written once through the share's own store.
async fn demo_objects(cfg: &Config, created: &mut Vec<PathBuf>) -> Result<()> {
    let Some(share) = cfg.shares.get("demo") else {
        return Ok(());
    };
    let marker = cfg.dev.dir.join(".demo-objects-created");
    if marker.exists() {
        return Ok(());
    }
    let store = crate::store::open(&cfg.stores[&share.store], &share.bucket).await?;
    let objects: [(&str, &str, &[u8]); 3] = [
        (
            "hello.txt",
            "text/plain",
            b"Hello from gatehouse! This object came through the partner data path.\n",
        ),
        (
            "reports/2026/summary.csv",
            "text/csv",
            b"month,requests\n2026-10,1200\n2026-11,1350\n",
        ),
        ("customers.csv", "text/csv", CUSTOMERS_CSV),
    ];
    let keys = crate::state::key_cache(cfg).await?;
    for (key, content_type, body) in objects {
        let mut stream: crate::store::ByteStream =
            Box::pin(futures_util::stream::once(async move {
                Ok(bytes::Bytes::from_static(body))
            }));
        let mut opts = crate::store::PutOptions {
            content_type: Some(content_type.into()),
            content_length: Some(body.len() as u64),
            ..Default::default()
        };
        let ikey = format!("{}{key}", share.prefix);
        // Envelope shares get their demo objects sealed, like any upload through the gateway.
        if let (true, Some(keys)) = (share.encrypt, &keys) {
            let at = crate::crypto::ObjectLocation {
                bucket: &share.bucket,
                key: &ikey,
            };
            (stream, opts) = crate::crypto::seal_for_put(
                keys,
                share.key_id.as_deref(),
                &share.name,
                at,
                stream,
                opts,
            )
            .await?;
        }
        store.put(&ikey, stream, opts).await?;
    }
    write_file(&marker, b"", false)?;
    created.push(marker);
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes a file atomically; private files get mode 0600.
fn write_file(path: &Path, data: &[u8], private: bool) -> Result<()> {
    let mode = if private {
        crate::atomic_file::PRIVATE
    } else {
        crate::atomic_file::PUBLIC
    };
    crate::atomic_file::write(path, data, mode)
        .with_context(|| format!("writing {}", path.display()))
}
