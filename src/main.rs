//! The `gatehouse` command: parses flags and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A TLS data-sharing gateway between third parties and S3"
)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `gatehouse=debug`.
    #[arg(long, env = "GATEHOUSE_LOG", default_value = "info", global = true)]
    log: String,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and partner files; exits non-zero with every error found.
    Check {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
    },
    /// Partner side: get an access token with a profile's key and print it.
    Token {
        /// Partner profile JSON: endpoint, partner, external_id, key_file, ca_file, key_id.
        #[arg(long)]
        profile: PathBuf,
        /// Print the whole token response as JSON instead of the bare token.
        #[arg(long)]
        json: bool,
        /// Space-separated shares to limit the token to.
        #[arg(long)]
        scope: Option<String>,
        /// Requested lifetime in seconds (capped by the gateway).
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Data loss prevention tools.
    Dlp {
        #[command(subcommand)]
        command: DlpCommand,
    },
    /// Revoke a session, or every current session of a partner, on the running gateway.
    Revoke {
        #[arg(long, default_value = "config/gatehouse.toml")]
        config: PathBuf,
        /// The session id (`sid`, also `session_id` in the token response and the audit trail).
        #[arg(long, conflicts_with = "partner", required_unless_present = "partner")]
        session: Option<String>,
        /// The partner id: all its tokens issued until now become void.
        #[arg(long)]
        partner: Option<String>,
    },
    /// Access policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Evaluate a hypothetical request against the configuration: prints ALLOW or
    /// DENY <reason_code>, then why. Exit 0 allow, 1 deny, 2 usage or configuration error.
    Explain(gatehouse::policy::explain::ExplainArgs),
}

#[derive(Subcommand)]
enum DlpCommand {
    /// Scan a file (or `-` for stdin) with the gateway's DLP engine: masked output on stdout.
    Scan {
        /// Directory of detector files (`*.toml`); the built-in pack when absent.
        #[arg(long)]
        patterns: Option<PathBuf>,
        /// How to read the input.
        #[arg(long, value_enum, default_value_t)]
        format: gatehouse::dlp::cli::Format,
        /// Write one JSON line per finding (offsets, entity, detector, action) to this file.
        #[arg(long)]
        findings: Option<PathBuf>,
        /// Input file, or `-` for stdin.
        input: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log, cli.log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => gatehouse::cli::serve(&config).await,
            Command::Check { config } => gatehouse::cli::check(&config),
            Command::Revoke {
                config,
                session,
                partner,
            } => gatehouse::cli::revoke(&config, session.as_deref(), partner.as_deref()).await,
            Command::Policy {
                command: PolicyCommand::Explain(args),
            } => gatehouse::policy::explain::run(&args),
            Command::Dlp {
                command:
                    DlpCommand::Scan {
                        patterns,
                        format,
                        findings,
                        input,
                    },
            } => gatehouse::dlp::cli::scan(&gatehouse::dlp::cli::ScanArgs {
                patterns,
                format,
                findings,
                input,
            }),
            Command::Token {
                profile,
                json,
                scope,
                duration,
            } => token(&profile, json, scope, duration).await,
        }
    })
}

async fn token(
    profile: &std::path::Path,
    json: bool,
    scope: Option<String>,
    duration: Option<u64>,
) -> ExitCode {
    let result = async {
        let p = gatehouse::auth::client::Profile::load(profile)
            .with_context(|| format!("profile {}", profile.display()))?;
        gatehouse::auth::client::request_token(&p, scope.as_deref(), duration).await
    }
    .await;
    match result {
        Ok(resp) if json => {
            println!("{resp}");
            ExitCode::SUCCESS
        }
        Ok(resp) => match resp.get("access_token").and_then(|t| t.as_str()) {
            Some(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: the token response has no access_token");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
