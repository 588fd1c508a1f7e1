//! Operator subcommands that run inside the gateway's library: `serve` and `check`.
//!
//! Takes a config path; gives an exit code. Configuration errors are printed all at once,
//! one per line with file and line, and exit with 64.

use std::path::Path;
use std::process::ExitCode;

use crate::config;
use crate::state::State;

/// Exit code for a configuration that does not validate (sysexits EX_USAGE).
pub const EXIT_BAD_CONFIG: u8 = 64;

/// `gatehouse check`: validates everything `serve` would load.
pub fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            println!(
                "{}: OK ({} stores, {} shares, {} partners)",
                path.display(),
                cfg.stores.len(),
                cfg.shares.len(),
                cfg.partners.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s); nothing was changed", errors.0.len());
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

/// `gatehouse serve`: bootstrap (dev), load, build, listen until SIGTERM or Ctrl-C, drain.
pub async fn serve(path: &Path) -> ExitCode {
    match config::load_gateway(path) {
        Ok(gw) if gw.dev.bootstrap => match crate::bootstrap::run(&gw).await {
            Ok(created) => {
                for p in created {
                    tracing::info!(path = %p.display(), "dev bootstrap created");
                }
            }
            Err(e) => {
                eprintln!("error: dev bootstrap failed: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        Ok(_) => {}
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    }
    let cfg = match config::load(path) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s); not starting", errors.0.len());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let addr = cfg.listener.addr;
    let state = match State::build(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let admin_addr = state.config.admin.addr;
    let live = crate::reload::Live::new(state, path);
    let admin = match tokio::net::TcpListener::bind(admin_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on admin address {admin_addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (stop_admin, admin_stopped) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::spawn(crate::admin::run(
        admin,
        live.clone(),
        stopped(admin_stopped.clone()),
    ));
    tokio::spawn(crate::reload::watch(
        live.clone(),
        crate::reload::DEBOUNCE,
        stopped(admin_stopped.clone()),
    ));
    tokio::spawn(crate::sessions::sweeper(
        live.clone(),
        crate::sessions::SWEEP_EVERY,
        stopped(admin_stopped),
    ));
    let result = crate::run(listener, live.clone(), shutdown_signal()).await;
    let _ = stop_admin.send(true);
    let _ = live.state().audit.close().await;
    live.state().observers.alerts.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
}

/// `gatehouse revoke`: revokes a session or every current session of a partner on the
/// running gateway, through its admin listener (address and token from the configuration).
pub async fn revoke(path: &Path, session: Option<&str>, partner: Option<&str>) -> ExitCode {
    let body = match (session, partner) {
        (Some(s), None) => serde_json::json!({ "session": s }),
        (None, Some(p)) => serde_json::json!({ "partner": p }),
        _ => {
            eprintln!("error: give exactly one of --session, --partner");
            return ExitCode::from(2);
        }
    };
    match AdminClient::from_config(path).await {
        Ok(admin) => match admin.call(Method::Post, "/revoke", Some(body)).await {
            Ok(_) => {
                println!("revoked");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Err(code) => code,
    }
}

/// `gatehouse reload`: asks the running gateway to load its configuration again; prints
/// what changed, or every error (the old configuration then stays in force: exit 64).
pub async fn reload(path: &Path) -> ExitCode {
    let admin = match AdminClient::from_config(path).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    match admin.call_raw(Method::Post, "/reload", None).await {
        Ok((200, body)) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            println!(
                "reloaded: {} partners, {} shares",
                v["partners"], v["shares"]
            );
            if let Some(list) = v["restart_needed"].as_array().filter(|l| !l.is_empty()) {
                let names: Vec<&str> = list.iter().filter_map(|n| n.as_str()).collect();
                println!("changed settings that need a restart: {}", names.join(", "));
            }
            ExitCode::SUCCESS
        }
        Ok((422, body)) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            for e in v["errors"].as_array().into_iter().flatten() {
                eprintln!("{}", e.as_str().unwrap_or_default());
            }
            eprintln!("reload rejected; the previous configuration stays in force");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Ok((status, body)) => {
            eprintln!("error: the gateway refused: {status} {}", body.trim());
            ExitCode::FAILURE
        }
        Err(code) => code,
    }
}

/// `gatehouse sessions`: lists the running gateway's live sessions.
pub async fn sessions(path: &Path, json: bool) -> ExitCode {
    let admin = match AdminClient::from_config(path).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    let body = match admin.call(Method::Get, "/sessions", None).await {
        Ok(b) => b,
        Err(code) => return code,
    };
    if json {
        println!("{}", body.trim());
        return ExitCode::SUCCESS;
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let list = v["sessions"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<28} {:<20} {:<16} {:<21} {:<21} {:>8}",
        "SESSION", "PARTNER", "CLIENT IP", "STARTED", "EXPIRES", "REQUESTS"
    );
    let short = |t: &serde_json::Value| {
        t.as_str()
            .unwrap_or("-")
            .chars()
            .take(19)
            .collect::<String>()
    };
    for s in &list {
        println!(
            "{:<28} {:<20} {:<16} {:<21} {:<21} {:>8}",
            s["session_id"].as_str().unwrap_or("-"),
            s["partner"].as_str().unwrap_or("-"),
            s["client_ip"].as_str().unwrap_or("-"),
            short(&s["started"]),
            short(&s["expires"]),
            s["requests"]
        );
    }
    println!("{} live session(s)", list.len());
    ExitCode::SUCCESS
}

/// `gatehouse healthcheck`: exit 0 when the admin listener answers `/healthz` (or, with
/// `ready`, `/readyz`) with 200; for container health checks without curl.
pub async fn healthcheck(path: &Path, ready: bool) -> ExitCode {
    let cfg = match config::load_gateway(path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let url = format!(
        "http://{}/{}",
        cfg.admin.addr,
        if ready { "readyz" } else { "healthz" }
    );
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .no_proxy()
        .build();
    let result = match client {
        Ok(c) => c.get(&url).send().await,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(resp) if resp.status().is_success() => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Ok(resp) => {
            let status = resp.status();
            eprintln!(
                "unhealthy: {status} {}",
                resp.text().await.unwrap_or_default().trim()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: cannot reach {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy)]
pub enum Method {
    Get,
    Post,
}

/// A client of the running gateway's admin listener: address and token from the config.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// Reads the admin address and token from the configuration at `path`; on failure the
    /// error is printed and the exit code given.
    pub async fn from_config(path: &Path) -> Result<AdminClient, ExitCode> {
        let cfg = config::load_gateway(path).map_err(|errors| {
            eprintln!("{errors}");
            ExitCode::from(EXIT_BAD_CONFIG)
        })?;
        let token = std::fs::read_to_string(&cfg.admin.token_file).map_err(|e| {
            eprintln!(
                "error: admin token file {}: {e}",
                cfg.admin.token_file.display()
            );
            ExitCode::FAILURE
        })?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            })?;
        Ok(AdminClient {
            base: format!("http://{}", cfg.admin.addr),
            token: token.trim().to_string(),
            http,
        })
    }

    /// Status and body of one call; transport failures are printed.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, String), ExitCode> {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            Method::Get => self.http.get(&url),
            Method::Post => self.http.post(&url),
        };
        req = req.bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                Ok((status, resp.text().await.unwrap_or_default()))
            }
            Err(e) => {
                eprintln!("error: cannot reach the admin listener at {url}: {e}");
                Err(ExitCode::FAILURE)
            }
        }
    }

    /// The body of a successful call; any other status is printed and fails.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<String, ExitCode> {
        match self.call_raw(method, path, body).await? {
            (200..=299, text) => Ok(text),
            (status, text) => {
                eprintln!("error: the gateway refused: {status} {}", text.trim());
                Err(ExitCode::FAILURE)
            }
        }
    }
}
