//! Operator subcommands that run inside the gateway's library: `serve` and `check`.
//!
//! Takes a config path; gives an exit code. Configuration errors are printed all at once,
//! one per line with file and line, and exit with 64.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

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
        Ok(s) => Arc::new(s),
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
    let admin = match tokio::net::TcpListener::bind(admin_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on admin address {admin_addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::admin::run(admin, state.clone(), async {
        let _ = admin_stopped.await;
    }));
    let result = crate::run(listener, state, shutdown_signal()).await;
    let _ = stop_admin.send(());
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
    let cfg = match config::load_gateway(path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let body = match (session, partner) {
        (Some(s), None) => serde_json::json!({ "session": s }),
        (None, Some(p)) => serde_json::json!({ "partner": p }),
        _ => {
            eprintln!("error: give exactly one of --session, --partner");
            return ExitCode::from(2);
        }
    };
    let token = match std::fs::read_to_string(&cfg.admin.token_file) {
        Ok(t) => t.trim().to_string(),
        Err(e) => {
            eprintln!(
                "error: admin token file {}: {e}",
                cfg.admin.token_file.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let url = format!("http://{}/revoke", cfg.admin.addr);
    let result = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await;
    match result {
        Ok(resp) if resp.status().is_success() => {
            println!("revoked");
            ExitCode::SUCCESS
        }
        Ok(resp) => {
            let status = resp.status();
            eprintln!(
                "error: the gateway refused: {status} {}",
                resp.text().await.unwrap_or_default().trim()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: cannot reach the admin listener at {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
