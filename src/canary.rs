//! `gatehouse partner test-revocation`: proves, on the running gateway, that revoking a
//! session works, and how fast.
//!
//! Takes the gateway's config path, a share and how to reach the listener; gives a report
//! with timings, or the step that failed. A canary partner with one grant (read and write on
//! `gatehouse-canary/<id>/` of the share, an hour, no other data) is written and loaded by a
//! reload; its key pair lives only in this process's memory. It opens two sessions, uploads a
//! canary object and reads it back, revokes the first session only through the admin
//! listener, then checks that the first session is refused and the second still works (only
//! that session was revoked). Whatever happens, it cleans up: the object is deleted, the
//! second session revoked, the partner file removed and the gateway reloaded.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::cli::{AdminClient, Method};
use crate::config;

/// How long a revoked session may keep working before the test fails.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(5);

pub struct Args {
    pub config: PathBuf,
    pub share: String,
    /// Base URL of the partner listener; default: the origin of `token.url`.
    pub endpoint: Option<String>,
    /// CA certificate to trust for the listener; default: the dev CA when it exists, else
    /// the system roots.
    pub ca_file: Option<PathBuf>,
    pub json: bool,
}

#[derive(Debug, Default, serde::Serialize)]
struct Report {
    partner: String,
    share: String,
    reload_ms: u128,
    token_ms: u128,
    canary_read_ms: u128,
    revoke_ack_ms: u128,
    /// From sending the revocation to the first refused request.
    revoked_to_refused_ms: u128,
    other_session_still_works: bool,
    cleaned_up: bool,
}

pub async fn run(args: &Args) -> ExitCode {
    let mut canary = match Canary::prepare(args).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("test-revocation: could not start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = canary.exercise().await;
    let cleaned = canary.clean_up().await;
    canary.report.cleaned_up = cleaned.is_ok();
    if let Err(e) = &cleaned {
        eprintln!("test-revocation: clean-up incomplete: {e:#}");
    }
    match result {
        Ok(()) if cleaned.is_ok() => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&canary.report).unwrap_or_default()
                );
            } else {
                let r = &canary.report;
                println!("revocation test passed (canary partner {})", r.partner);
                println!("  reload applied            {:>6} ms", r.reload_ms);
                println!("  two sessions issued       {:>6} ms", r.token_ms);
                println!("  canary object written+read{:>6} ms", r.canary_read_ms);
                println!("  revocation acknowledged   {:>6} ms", r.revoke_ack_ms);
                println!(
                    "  revoked session refused   {:>6} ms after the revocation",
                    r.revoked_to_refused_ms
                );
                println!("  other session unaffected   yes");
                println!("  cleaned up                 yes");
            }
            ExitCode::SUCCESS
        }
        Ok(()) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("revocation test FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Canary {
    admin: AdminClient,
    http: reqwest::Client,
    profile: crate::auth::client::Profile,
    key_pem: String,
    base: String,
    object_path: String,
    partner_file: PathBuf,
    key_file: PathBuf,
    sessions: Vec<(String, String)>,
    object_written: bool,
    report: Report,
}

impl Canary {
    async fn prepare(args: &Args) -> anyhow::Result<Canary> {
        let cfg = config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !cfg.shares.contains_key(&args.share) {
            bail!("no share {:?} in the configuration", args.share);
        }
        let admin = AdminClient::from_config(&args.config)
            .await
            .map_err(|_| anyhow::anyhow!("the admin listener is not reachable"))?;
        let base = match &args.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => cfg
                .token
                .token_url
                .strip_suffix("/v1/token")
                .unwrap_or(&cfg.token.token_url)
                .to_string(),
        };
        let ca_file = args.ca_file.clone().or_else(|| {
            cfg.tls
                .dev_ca_cert_file
                .exists()
                .then(|| cfg.tls.dev_ca_cert_file.clone())
        });
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .timeout(Duration::from_secs(30))
            .no_proxy();
        if let Some(ca) = &ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("CA file {}", ca.display()))?;
            builder = builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem)?);
        }
        let http = builder.build()?;
        let suffix = ulid::Ulid::new().to_string().to_lowercase();
        let id = format!("canary-{}", &suffix[suffix.len() - 10..]);
        let (key_pem, public_pem) = crate::onboard::keygen_pair("ed25519")?;
        let external_id = crate::onboard::random_secret(32)?;
        let key_id = format!("{id}-1");
        let prefix = format!("gatehouse-canary/{id}/");
        let text = crate::onboard::PartnerEntry {
            id: &id,
            display_name: "Revocation test canary",
            owner: "gatehouse partner test-revocation",
            contract: "none",
            justification: "Proves revocation works; removed when the test ends",
            until: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
            external_id: &external_id,
            max_session: "10m",
            key_id: &key_id,
            share: &args.share,
            prefix: &prefix,
            actions: &["read", "write", "delete"],
            approved_by: Some("gatehouse partner test-revocation"),
        }
        .to_toml("Canary of `gatehouse partner test-revocation`; removed when the test ends.");
        let partner_file = cfg.partners_dir.join(format!("{id}.toml"));
        let key_file = cfg.partners_dir.join(format!("keys/{key_id}.pem"));
        let profile = crate::auth::client::Profile {
            endpoint: base.clone(),
            partner: id.clone(),
            external_id,
            key_file: PathBuf::from("(in memory)"),
            ca_file: ca_file.clone(),
            key_id: Some(key_id),
        };
        let canary = Canary {
            admin,
            http,
            profile,
            key_pem,
            object_path: format!("{base}/{}/{prefix}canary.txt", args.share),
            base,
            partner_file,
            key_file,
            sessions: Vec::new(),
            object_written: false,
            report: Report {
                partner: id,
                share: args.share.clone(),
                ..Report::default()
            },
        };
        if let Some(dir) = canary.key_file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::atomic_file::write(
            &canary.key_file,
            public_pem.as_bytes(),
            crate::atomic_file::PUBLIC,
        )?;
        if let Err(e) = crate::atomic_file::write(
            &canary.partner_file,
            text.as_bytes(),
            crate::atomic_file::PUBLIC,
        ) {
            let _ = std::fs::remove_file(&canary.key_file);
            return Err(e.into());
        }
        Ok(canary)
    }

    async fn token(&self) -> anyhow::Result<(String, String)> {
        let resp =
            crate::auth::client::request_token_with_key(&self.profile, &self.key_pem, None, None)
                .await?;
        let token = resp["access_token"]
            .as_str()
            .context("no access_token")?
            .to_string();
        let sid = resp["session_id"]
            .as_str()
            .context("no session_id in the token response")?
            .to_string();
        Ok((token, sid))
    }

    async fn status(
        &self,
        method: reqwest::Method,
        token: &str,
        body: Option<&'static [u8]>,
    ) -> anyhow::Result<u16> {
        let mut req = self
            .http
            .request(method, &self.object_path)
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("request to {} failed: {}", self.base, e.without_url()))?;
        Ok(resp.status().as_u16())
    }

    async fn exercise(&mut self) -> anyhow::Result<()> {
        let t = Instant::now();
        match self.admin.call_raw(Method::Post, "/reload", None).await {
            Ok((200, _)) => {}
            Ok((status, body)) => bail!(
                "the gateway did not load the canary: {status} {}",
                body.trim()
            ),
            Err(_) => bail!("the admin listener is not reachable"),
        }
        self.report.reload_ms = t.elapsed().as_millis();

        let t = Instant::now();
        let first = self.token().await.context("first canary session")?;
        self.sessions.push(first.clone());
        let second = self.token().await.context("second canary session")?;
        self.sessions.push(second.clone());
        self.report.token_ms = t.elapsed().as_millis();

        let t = Instant::now();
        let put = self
            .status(
                reqwest::Method::PUT,
                &first.0,
                Some(b"gatehouse revocation canary\n"),
            )
            .await?;
        if put != 200 {
            bail!("the canary upload was refused: HTTP {put}");
        }
        self.object_written = true;
        let get = self.status(reqwest::Method::GET, &first.0, None).await?;
        if get != 200 {
            bail!("the canary object could not be read before revocation: HTTP {get}");
        }
        self.report.canary_read_ms = t.elapsed().as_millis();

        let sent = Instant::now();
        self.admin
            .call(
                Method::Post,
                "/revoke",
                Some(serde_json::json!({ "session": first.1 })),
            )
            .await
            .map_err(|_| anyhow::anyhow!("the revocation was not acknowledged"))?;
        self.report.revoke_ack_ms = sent.elapsed().as_millis();
        loop {
            let status = self.status(reqwest::Method::GET, &first.0, None).await?;
            if status == 401 || status == 403 {
                self.report.revoked_to_refused_ms = sent.elapsed().as_millis();
                break;
            }
            if sent.elapsed() > REFUSAL_DEADLINE {
                bail!(
                    "the revoked session still got HTTP {status} {} ms after the revocation",
                    sent.elapsed().as_millis()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let other = self.status(reqwest::Method::GET, &second.0, None).await?;
        if other != 200 {
            bail!("revoking one session also cut another one (HTTP {other})");
        }
        self.report.other_session_still_works = true;
        Ok(())
    }

    /// Deletes the object, revokes the remaining session, removes the partner, reloads.
    async fn clean_up(&mut self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.object_written {
            let mut deleted = false;
            for (token, _) in self.sessions.iter().rev() {
                if let Ok(204 | 200) = self.status(reqwest::Method::DELETE, token, None).await {
                    deleted = true;
                    break;
                }
            }
            if !deleted {
                problems.push(format!("canary object {} not deleted", self.object_path));
            }
        }
        for (_, sid) in &self.sessions {
            let _ = self
                .admin
                .call_raw(
                    Method::Post,
                    "/revoke",
                    Some(serde_json::json!({ "session": sid })),
                )
                .await;
        }
        for f in [&self.partner_file, &self.key_file] {
            if let Err(e) = std::fs::remove_file(f)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                problems.push(format!("{}: {e}", f.display()));
            }
        }
        match self.admin.call_raw(Method::Post, "/reload", None).await {
            Ok((200, _)) => {}
            other => problems.push(format!("reload after removing the canary: {other:?}")),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("; "))
        }
    }
}
